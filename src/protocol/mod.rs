//! Sans-IO RFC 6455 / RFC 7692 core (placeholder).
