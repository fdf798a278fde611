//! Session tests (frame sequences fed whole, byte by byte and split).
