//! WebSocket connections: the handler trait, the per-connection context,
//! messages, settings, the server upgrade and the client.

pub mod client;
pub mod connection;
mod context;
mod core;
pub mod handler;
mod headers;
pub mod message;
pub mod server;
pub mod settings;
pub mod topics;

pub(crate) use self::core::Cork;
pub use crate::ioloop::ConnId;
pub use crate::protocol::CloseCode;
pub use client::{
    websocket_connect, websocket_connect_callback, websocket_connect_opts, websocket_connect_then,
    websocket_connect_with, websocket_connect_with_result, ConnectError, ConnectOptions,
    WebSocketClientConnection, READ_QUEUE_HIGH_WATER,
};
pub use connection::{broadcast, close_connection, write_to, WebSocket};
pub use context::{drained, with_websocket_of, Drained, PingError, Suspension, MAX_PING_PAYLOAD};
pub use handler::{
    check_trusted_origin, get_arguments_unstripped, get_secure_cookie, require_argument,
    WebSocketHandler,
};
pub use headers::HandshakeHeaders;
pub use message::{CloseReason, Message, WebSocketClosedError};
pub use server::accept;
pub use settings::{SlowConsumerPolicy, WebSocketSettings};
pub use topics::{publish, subscribers};
