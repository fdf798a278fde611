//! Sans-IO RFC 6455 / RFC 7692 core: bytes in, events and bytes out.
//!
//! Nothing here knows about sockets, the reactor or the clock. The IO layer
//! feeds received bytes to a [`Session`] and writes what it appends to the
//! output buffer; the handshake helpers work on parsed headers and byte
//! buffers.

pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod opcode;
pub mod session;
pub mod utf8;

#[cfg(test)]
mod session_tests;

pub use deflate::{CompressionOptions, DeflateParams};
pub use error::{HandshakeError, ProtocolError};
pub use opcode::{CloseCode, OpCode};
pub use session::{Closed, Event, Payload, Readout, Role, Session, SessionConfig, State};
