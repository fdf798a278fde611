//! WebSocket connections: the handler trait, the per-connection context,
//! messages, settings, the server upgrade and the client.

pub mod connection;
pub mod handler;
pub mod message;
pub mod settings;

pub use connection::WebSocket;
pub use handler::WebSocketHandler;
pub use message::{CloseReason, Message, WebSocketClosedError};
pub use settings::WebSocketSettings;

use std::rc::Rc;

use crate::http::{Reply, Request, Response};

/// Validates a WebSocket handshake request for `handler` and answers it:
/// a 101 upgrade, or the HTTP error Tornado would send (400 with a reason,
/// 403 for a rejected origin, 426 for an unsupported version).
/// `args` are the route captures passed to `open`.
pub fn accept(
    req: Request,
    args: Vec<String>,
    handler: Box<dyn WebSocketHandler>,
    settings: Rc<WebSocketSettings>,
) -> Reply {
    let _ = (req, args, handler, settings);
    Reply::Response(Response::error(501, Some("not yet")))
}
