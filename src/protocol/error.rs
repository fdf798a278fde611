//! Protocol and handshake errors, each knowing its consequence: a close
//! code for [`ProtocolError`], an HTTP status for [`HandshakeError`].

use std::fmt;

use super::opcode::CloseCode;

/// A violation of RFC 6455 / RFC 7692 by the peer (or a limit it exceeded).
///
/// The connection must be failed with [`close_code`](Self::close_code);
/// [`Session::fail`](super::Session::fail) does that.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1/2/3 set without an extension defining them (1002).
    ReservedBits,
    /// An opcode in 3–7 or 0xB–0xF (1002).
    ReservedOpcode(u8),
    /// Server role: a client frame without a mask (1002).
    UnmaskedFrameFromClient,
    /// Client role: a server frame with a mask (1002).
    MaskedFrameFromServer,
    /// A control frame without FIN (1002).
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (1002).
    ControlFrameTooBig,
    /// A continuation frame with no message in progress (1002).
    UnexpectedContinuation,
    /// A new Text/Binary frame while a fragmented message is in progress (1002).
    ExpectedContinuation,
    /// A 64-bit payload length with its most significant bit set (1002).
    InvalidFrameLength,
    /// Text (or a close reason) that is not UTF-8 (1007).
    InvalidUtf8,
    /// A close code outside the ranges of RFC 6455 §7.4 (1002).
    InvalidCloseCode(u16),
    /// A close payload of exactly one byte (1002).
    InvalidClosePayload,
    /// The message exceeds the configured limit (1009).
    MessageTooBig {
        /// Bytes the message has (or declares) so far, fragment overhead
        /// included; with `inflated`, the bytes inflated so far.
        size: u64,
        /// The configured `max_message_size`.
        limit: usize,
        /// Whether the limit was passed by a permessage-deflate message's
        /// inflated data (its compressed frames were within it). The Close
        /// frame's reason says which, as Tornado's: "message too big after
        /// decompression" rather than "message too big".
        inflated: bool,
    },
    /// permessage-deflate data that does not inflate (1007).
    InvalidCompressedData,
    /// RSV1 on a control frame (1002).
    CompressedControlFrame,
    /// RSV1 on a continuation frame (1002).
    CompressedContinuation,
    /// A frame after the peer's Close frame (1002).
    FrameAfterClose,
}

impl ProtocolError {
    /// The close code to fail the connection with: 1002 for framing errors,
    /// 1007 for invalid UTF-8 and corrupt compressed data, 1009 for size.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::MessageTooBig { .. } => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits => {
                f.write_str("reserved bits set without a negotiated extension")
            }
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::UnmaskedFrameFromClient => f.write_str("unmasked frame from client"),
            ProtocolError::MaskedFrameFromServer => f.write_str("masked frame from server"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooBig => {
                f.write_str("control frame payload over 125 bytes")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is in progress")
            }
            ProtocolError::InvalidFrameLength => {
                f.write_str("payload length with the most significant bit set")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::InvalidClosePayload => f.write_str("close payload of one byte"),
            ProtocolError::MessageTooBig {
                size,
                limit,
                inflated: false,
            } => write!(f, "message of {size} bytes exceeds the limit of {limit}"),
            ProtocolError::MessageTooBig {
                size,
                limit,
                inflated: true,
            } => write!(
                f,
                "message inflating to {size} bytes exceeds the limit of {limit}"
            ),
            ProtocolError::InvalidCompressedData => f.write_str("invalid permessage-deflate data"),
            ProtocolError::CompressedControlFrame => f.write_str("RSV1 set on a control frame"),
            ProtocolError::CompressedContinuation => {
                f.write_str("RSV1 set on a continuation frame")
            }
            ProtocolError::FrameAfterClose => f.write_str("frame received after the close frame"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A failed opening handshake.
///
/// Server-side variants map to the HTTP status to answer with
/// ([`status`](Self::status)); their `Display` text is the reason body,
/// worded like Tornado's. Client-side variants describe a bad server
/// response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not a GET request (405; Tornado's WebSocketHandler only has `get`).
    MethodNotAllowed,
    /// Not HTTP/1.1 (400: the server speaks HTTP/1.0, the upgrade needs 1.1).
    UnsupportedHttpVersion,
    /// No `Host` header, or more than one (400; RFC 6455 §4.2.1 item 2).
    BadHost,
    /// `Upgrade` does not contain `websocket` (400).
    BadUpgrade,
    /// `Connection` does not contain `upgrade` (400).
    BadConnection,
    /// `Sec-WebSocket-Version` missing or not 13 (426; add
    /// `Sec-WebSocket-Version: 13` to the response).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes of base64 (400).
    BadKey,
    /// `check_origin` refused the `Origin` (403).
    OriginRejected,
    /// A header the request may carry only once was repeated (400):
    /// `Sec-WebSocket-Version` (RFC 6455 §11.3.5) or `Origin` (RFC 6454
    /// §7.3), whose meaning would depend on which copy a server read.
    RepeatedHeader(&'static str),
    /// Client: the server answered something other than 101.
    BadStatus {
        /// The response status.
        status: u16,
        /// The body: `Content-Length` bytes, a chunked one decoded, or,
        /// with neither, what came before the server closed (RFC 9112
        /// §6.3); what had come if the connect timeout passed first.
        body: Vec<u8>,
        /// Every header of the response, in order (values not UTF-8 read
        /// lossily; Tornado's `HTTPClientError.response.headers`): the
        /// `Location` of a redirect, which the client does not follow (nor
        /// does Tornado's), `WWW-Authenticate`, `Retry-After`…
        headers: Vec<(String, String)>,
    },
    /// Client: the server's 101 is not HTTP/1.1 (an `HTTP/1.0 101`).
    /// RFC 6455 §4.1/§4.2.2 answer the HTTP/1.1 upgrade with an HTTP/1.1
    /// 101; the `Upgrade` mechanism is HTTP/1.1's (RFC 9110 §7.8), and an
    /// HTTP/1.0 server or intermediary has no 1xx answers (RFC 9110 §15.2),
    /// so such a 101 comes from something that does not speak the
    /// handshake. Tornado's client accepts it (it checks only the status
    /// code); cyclone refuses it on purpose, as tungstenite does. Other
    /// statuses in an HTTP/1.0 head are still reported as
    /// [`BadStatus`](Self::BadStatus) (a refusal either way).
    UnsupportedResponseVersion,
    /// Client: `Sec-WebSocket-Accept` missing or wrong.
    BadAccept,
    /// Client: the server accepted an extension we did not offer.
    UnrequestedExtension(String),
    /// Client: the server picked a subprotocol we did not offer.
    UnrequestedSubprotocol(String),
    /// Client: malformed response (bad head, missing upgrade headers,
    /// invalid extension parameters).
    InvalidResponse(String),
}

impl HandshakeError {
    /// The HTTP status a server answers with. Client-side variants return the
    /// received status for [`BadStatus`](Self::BadStatus) and 0 otherwise
    /// (no response is sent for them).
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedHttpVersion
            | HandshakeError::BadHost
            | HandshakeError::BadUpgrade
            | HandshakeError::BadConnection
            | HandshakeError::BadKey
            | HandshakeError::RepeatedHeader(_) => 400,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginRejected => 403,
            HandshakeError::BadStatus { status, .. } => *status,
            _ => 0,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::MethodNotAllowed => f.write_str("Method Not Allowed"),
            HandshakeError::UnsupportedHttpVersion => {
                f.write_str("WebSocket upgrade requires HTTP/1.1")
            }
            HandshakeError::BadHost => f.write_str("Exactly one Host header is required"),
            HandshakeError::BadUpgrade => f.write_str("Can \"Upgrade\" only to \"WebSocket\"."),
            HandshakeError::BadConnection => f.write_str("\"Connection\" must be \"Upgrade\"."),
            HandshakeError::UnsupportedVersion => f.write_str("Upgrade Required"),
            HandshakeError::BadKey => f.write_str("Missing/Invalid WebSocket key"),
            HandshakeError::OriginRejected => f.write_str("Cross origin websockets not allowed"),
            HandshakeError::RepeatedHeader(name) => write!(f, "Repeated {name} header"),
            HandshakeError::BadStatus {
                status, headers, ..
            } => {
                write!(f, "unexpected response status {status}")?;
                let location = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("location"));
                match location {
                    Some((_, to)) if (300..400).contains(status) => {
                        write!(f, " (redirect to {to:?}, not followed)")
                    }
                    _ => Ok(()),
                }
            }
            HandshakeError::UnsupportedResponseVersion => {
                f.write_str("the server's 101 is not HTTP/1.1")
            }
            HandshakeError::BadAccept => f.write_str("invalid Sec-WebSocket-Accept"),
            HandshakeError::UnrequestedExtension(e) => {
                write!(f, "server accepted an extension we did not offer: {e}")
            }
            HandshakeError::UnrequestedSubprotocol(p) => {
                write!(f, "server chose a subprotocol we did not offer: {p}")
            }
            HandshakeError::InvalidResponse(why) => write!(f, "invalid handshake response: {why}"),
        }
    }
}

impl std::error::Error for HandshakeError {}
