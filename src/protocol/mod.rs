//! Sans-IO RFC 6455 / RFC 7692 core: bytes in, events and bytes out.
//!
//! Nothing here knows about sockets, the reactor or the clock. The IO layer
//! feeds received bytes to a [`Session`] and writes what it appends to the
//! output buffer.

pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod opcode;
pub mod utf8;

pub use error::{HandshakeError, ProtocolError};
pub use opcode::{CloseCode, OpCode};
