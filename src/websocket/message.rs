//! WebSocket messages and errors.

use std::borrow::Cow;
use std::fmt;

/// A whole WebSocket message: text (valid UTF-8) or binary.
///
/// Received messages borrow the loop's read buffer when they arrived in one
/// uncompressed frame (zero copy); use [`Message::into_owned`] to keep one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message.
    Text(Cow<'a, str>),
    /// A binary message.
    Binary(Cow<'a, [u8]>),
}

impl<'a> Message<'a> {
    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t),
            Message::Binary(_) => None,
        }
    }

    /// The payload bytes (UTF-8 bytes for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An owned copy that outlives the read buffer.
    pub fn into_owned(self) -> Message<'static> {
        match self {
            Message::Text(t) => Message::Text(Cow::Owned(t.into_owned())),
            Message::Binary(b) => Message::Binary(Cow::Owned(b.into_owned())),
        }
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(s: &'a str) -> Self {
        Message::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Message<'static> {
    fn from(s: String) -> Self {
        Message::Text(Cow::Owned(s))
    }
}

impl<'a> From<&'a String> for Message<'a> {
    fn from(s: &'a String) -> Self {
        Message::Text(Cow::Borrowed(s.as_str()))
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(b: &'a [u8]) -> Self {
        Message::Binary(Cow::Borrowed(b))
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Message<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Message::Binary(Cow::Borrowed(&b[..]))
    }
}

impl From<Vec<u8>> for Message<'static> {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(Cow::Owned(b))
    }
}

/// Returned by writes on a connection that is closing or closed (Tornado's
/// `WebSocketClosedError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketClosedError;

impl fmt::Display for WebSocketClosedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebSocket is closed")
    }
}

impl std::error::Error for WebSocketClosedError {}

/// Why a connection closed, beyond the close code: closes the library
/// starts itself reach `on_close` with one of these (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer sent a close frame (its code and reason are in
    /// `close_code()`/`close_reason()`). Also when the handler had called
    /// `close` but its Close never left: still queued behind what the peer
    /// did not read when the close timeout dropped the connection, or when
    /// the handler called [`terminate`](super::WebSocket::terminate),
    /// while the peer's own Close had arrived (it closed without seeing
    /// ours).
    Peer,
    /// The handler called `close`, and the close handshake completed (if
    /// the peer does not answer within the close timeout, the reason is
    /// [`CloseTimeout`](Self::CloseTimeout) instead, or
    /// [`Peer`](Self::Peer) if the peer's own Close arrived while ours
    /// could not leave; if it hangs up or
    /// resets instead of answering, [`Abnormal`](Self::Abnormal); if it
    /// breaks the protocol, [`ProtocolError`](Self::ProtocolError) or
    /// [`MessageTooBig`](Self::MessageTooBig)).
    Local,
    /// The peer broke the protocol; we sent the close code shown.
    ProtocolError,
    /// A message exceeded `websocket_max_message_size` (1009).
    MessageTooBig,
    /// No pong within `websocket_ping_timeout`.
    PingTimeout,
    /// The peer did not answer our close frame within the close timeout.
    CloseTimeout,
    /// The write queue stayed above its cap (slow consumer).
    SlowConsumer,
    /// No traffic within the idle timeout.
    IdleTimeout,
    /// The server is shutting down (1001).
    Shutdown,
    /// A handler callback panicked (1011).
    HandlerPanic,
    /// The TCP connection ended without a close frame (reset or EOF).
    Abnormal,
    /// The handler called [`terminate`](super::WebSocket::terminate): the
    /// connection was dropped without a closing handshake (after the
    /// peer's Close arrived, it is [`Peer`](Self::Peer)).
    Terminated,
}

impl CloseReason {
    /// The metrics counter of closes for this reason.
    pub(crate) fn counter(self) -> crate::ioloop::Counter {
        use crate::ioloop::Counter;
        match self {
            CloseReason::Peer => Counter::ClosedPeer,
            CloseReason::Local => Counter::ClosedLocal,
            CloseReason::ProtocolError => Counter::ClosedProtocolError,
            CloseReason::MessageTooBig => Counter::ClosedMessageTooBig,
            CloseReason::PingTimeout => Counter::ClosedPingTimeout,
            CloseReason::CloseTimeout => Counter::ClosedCloseTimeout,
            CloseReason::SlowConsumer => Counter::ClosedSlowConsumer,
            CloseReason::IdleTimeout => Counter::ClosedIdleTimeout,
            CloseReason::Shutdown => Counter::ClosedShutdown,
            CloseReason::HandlerPanic => Counter::ClosedHandlerPanic,
            CloseReason::Abnormal => Counter::ClosedAbnormal,
            CloseReason::Terminated => Counter::ClosedTerminated,
        }
    }
}
