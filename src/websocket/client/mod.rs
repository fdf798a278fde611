//! The WebSocket client (Tornado's `websocket_connect`), in coroutine and
//! callback styles, on the same connection type (`WsConn`) and [`WebSocketHandler`] seam as
//! the server: the client is a connecting [`Pollable`](crate::ioloop::Pollable) (`ClientHandshake`)
//! that replaces itself, in the same slot and under the same [`ConnId`],
//! with a client-role `WsConn` once the server's `101` checks out.
//!
//! ```no_run
//! use cyclone::ioloop::IOLoop;
//! use cyclone::websocket::client::websocket_connect;
//!
//! IOLoop::current().run_sync(async {
//!     let conn = websocket_connect("ws://127.0.0.1:9001/").await.expect("connect");
//!     conn.write_message("hi").expect("open");
//!     while let Some(msg) = conn.read_message().await {
//!         println!("{msg:?}");
//!         conn.close(Some(1000), "bye");
//!     }
//! });
//! ```
//!
//! `wss://` URLs (feature `tls`, on by default) run TLS over the connected
//! socket with the URL's host as the server name (SNI; IP addresses too),
//! verified against Mozilla's roots, plus [`ConnectOptions::ca_certs`]
//! (Tornado's `ssl_options={"ca_certs": ...}`), or with a whole rustls
//! configuration ([`ConnectOptions::tls_config`]).
//!
//! Host names are resolved on a helper thread whose answer comes back
//! through [`IOLoopHandle::add_callback`](crate::ioloop::IOLoopHandle), so
//! the loop never blocks; IP literals are used directly. The resolved
//! addresses are tried in order until one accepts the TCP connection
//! (within the one `connect_timeout`).

mod coroutine;
mod handshake;

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use super::connection::WebSocket;
use super::handler::WebSocketHandler;
use super::message::Message;
use super::settings::WebSocketSettings;
use crate::ioloop::ConnId;
use crate::protocol::{CompressionOptions, HandshakeError};

pub use coroutine::{
    websocket_connect, websocket_connect_opts, websocket_connect_then, Messages, ReadMessage,
    WebSocketClientConnection, WriteFuture, READ_QUEUE_HIGH_WATER,
};
pub(crate) use handshake::cancel as cancel_connect;
use handshake::start_connect;

/// [`WriteFuture`]s resolve once this connection's queue is at most this
/// many bytes.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;

// ---- options and errors ---------------------------------------------------

/// Options of [`websocket_connect_opts`] and the callback-style functions
/// (Tornado's `websocket_connect` arguments).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Time allowed for resolution, TCP connect and the opening handshake
    /// (default 20 s, as Tornado).
    pub connect_timeout: Duration,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in preference order.
    pub subprotocols: Vec<String>,
    /// Extra request headers (cookies, authorization, `Origin`…), names
    /// sent without surrounding whitespace. Headers whose name is not a
    /// token (empty, with a space or a `:`) or whose value holds a control
    /// character other than a tab (CR, LF, NUL…) are dropped with a
    /// warning, rather than sent for the server to refuse or misread, as
    /// are `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key` and `Sec-WebSocket-Version`, which the handshake
    /// sets itself (Tornado's client overwrites them likewise). A
    /// `Sec-WebSocket-Protocol` here is read as the offer when
    /// [`subprotocols`](Self::subprotocols) is empty (its comma-separated
    /// names, checked and compared with the server's choice as those of
    /// `subprotocols` are), and dropped otherwise (Tornado's `subprotocols`
    /// overwrites it). A `Sec-WebSocket-Extensions` here is dropped when
    /// [`compression_options`](Self::compression_options) is set (the
    /// handshake offers permessage-deflate itself, as Tornado's overwrites
    /// the header), and sent as given otherwise: a server accepting an
    /// extension offered that way fails the handshake
    /// ([`HandshakeError::UnrequestedExtension`], as Tornado's client
    /// refuses it too), since only `compression_options` turns
    /// permessage-deflate on.
    pub headers: Vec<(String, String)>,
    /// Offer permessage-deflate with these options (default: none).
    pub compression_options: Option<CompressionOptions>,
    /// Send a ping this often (default: none; zero or 24.8 days or more:
    /// never).
    pub ping_interval: Option<Duration>,
    /// Drop the connection if no pong arrives within this time (defaults to
    /// the interval and never exceeds it; zero or 24.8 days or more: no
    /// timeout). The TCP connection is closed without a Close frame
    /// ([`closed_by`](WebSocketClientConnection::closed_by)
    /// `PingTimeout`), where Tornado sends Close 1000 "ping timed out" and
    /// waits up to 5 s more for the answer of a server that answered no
    /// ping.
    pub ping_timeout: Option<Duration>,
    /// Larger incoming messages close the connection with 1009 (10 MiB).
    pub max_message_size: usize,
    /// `TCP_NODELAY` (default true).
    pub nodelay: bool,
    /// Cap on bytes queued for the connection before it is closed with
    /// 1008 (default 16 MiB); raise it to send larger messages.
    pub max_write_buffer: usize,
    /// `wss://`: a PEM file of extra certificates to trust as roots besides
    /// Mozilla's (Tornado's `ssl_options={"ca_certs": path}`), e.g. a
    /// self-signed server certificate or a private CA. Read at each
    /// connect: for many connections build the configuration once with
    /// [`crate::tls::client_config`] and pass it as
    /// [`tls_config`](Self::tls_config).
    #[cfg(feature = "tls")]
    pub ca_certs: Option<std::path::PathBuf>,
    /// `wss://`: the whole rustls client configuration (roots, client
    /// certificates, protocol versions…); takes precedence over
    /// [`ca_certs`](Self::ca_certs). Default: Mozilla's roots, built once
    /// per thread.
    #[cfg(feature = "tls")]
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        let s = WebSocketSettings::default();
        ConnectOptions {
            connect_timeout: Duration::from_secs(20),
            subprotocols: Vec::new(),
            headers: Vec::new(),
            compression_options: None,
            ping_interval: s.ping_interval,
            ping_timeout: s.ping_timeout,
            max_message_size: s.max_message_size,
            nodelay: s.nodelay,
            max_write_buffer: s.max_write_buffer,
            #[cfg(feature = "tls")]
            ca_certs: None,
            #[cfg(feature = "tls")]
            tls_config: None,
        }
    }
}

impl ConnectOptions {
    /// The connection settings these options give.
    pub fn settings(&self) -> WebSocketSettings {
        WebSocketSettings {
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            max_message_size: self.max_message_size,
            nodelay: self.nodelay,
            max_write_buffer: self.max_write_buffer,
            compression: self.compression_options.clone(),
            ..WebSocketSettings::default()
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not `ws[s]://[user[:password]@]host[:port][/path][?query]`.
    InvalidUrl(String),
    /// A subprotocol of [`ConnectOptions::subprotocols`] (or of a
    /// `Sec-WebSocket-Protocol` among [`ConnectOptions::headers`]) is not a token
    /// (RFC 6455 §4.1: printable ASCII without separators, not empty) or
    /// is offered twice; nothing was sent.
    InvalidSubprotocol(String),
    /// A `wss://` URL in a build without the `tls` feature.
    Tls,
    /// The TLS handshake of a `wss://` connection failed: the server's
    /// certificate is not trusted (unknown issuer, expired, issued for
    /// another name…), or the server refused the session. The error wraps
    /// rustls' reason ([`ConnectError::tls_error`]).
    TlsHandshake(io::Error),
    /// The host name did not resolve.
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        error: io::Error,
    },
    /// Connecting, reading or writing failed (refused, reset, closed
    /// before the handshake completed…); or there is no loop to connect
    /// on: the thread's loop could not be made, or was dropped already
    /// (a connect from a thread-local's destructor at thread exit; see
    /// [`IOLoop::try_current`](crate::ioloop::IOLoop::try_current)).
    Io(io::Error),
    /// `connect_timeout` passed before the handshake completed.
    Timeout,
    /// [`close_connection`](super::close_connection) was called with the
    /// connection's id before the handshake completed.
    Cancelled,
    /// The server's response was refused: a status other than 101
    /// ([`HandshakeError::BadStatus`] carries status, headers and
    /// body; redirects are not followed, as in Tornado), a 101 that is not
    /// HTTP/1.1 ([`HandshakeError::UnsupportedResponseVersion`], which
    /// Tornado accepts), a wrong `Sec-WebSocket-Accept`, an unrequested
    /// extension or subprotocol.
    Handshake(HandshakeError),
}

impl ConnectError {
    /// The HTTP status of a non-101 answer, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectError::Handshake(HandshakeError::BadStatus { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// rustls' reason for a failed TLS handshake
    /// ([`ConnectError::TlsHandshake`]), e.g.
    /// `rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)`.
    #[cfg(feature = "tls")]
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            ConnectError::TlsHandshake(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(why) => write!(f, "invalid WebSocket URL: {why}"),
            ConnectError::InvalidSubprotocol(p) => {
                write!(
                    f,
                    "invalid or repeated subprotocol {p:?} (a token is required)"
                )
            }
            ConnectError::Tls => {
                f.write_str("wss:// URL, but cyclone was built without its `tls` feature")
            }
            ConnectError::TlsHandshake(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectError::Resolve { host, error } => write!(f, "cannot resolve {host}: {error}"),
            ConnectError::Io(e) => write!(f, "connection failed: {e}"),
            ConnectError::Timeout => f.write_str("connect timeout"),
            ConnectError::Cancelled => {
                f.write_str("closed with close_connection before the handshake completed")
            }
            ConnectError::Handshake(e) => write!(f, "WebSocket handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Resolve { error, .. }
            | ConnectError::Io(error)
            | ConnectError::TlsHandshake(error) => Some(error),
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HandshakeError> for ConnectError {
    fn from(e: HandshakeError) -> Self {
        ConnectError::Handshake(e)
    }
}

// ---- URL ------------------------------------------------------------------

/// A parsed `ws://` or `wss://` URL. Its `Debug` shows the user info's
/// password as `***`, as logs should.
#[derive(Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: TLS.
    pub secure: bool,
    /// Host name or IP literal (without IPv6 brackets).
    pub host: String,
    /// Port (80 unless given; 443 for `wss://`).
    pub port: u16,
    /// Request target: `/path?query` (at least `/`).
    pub resource: String,
    /// `Host` header value: the URL's authority as written, without its
    /// user info.
    pub host_header: String,
    /// The user info before the authority's last `@` (`user:password` as
    /// written), sent as a Basic `Authorization` header
    /// ([`authorization`](Self::authorization)), as Tornado's client does.
    pub userinfo: Option<String>,
}

impl std::fmt::Debug for WsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let userinfo = self
            .userinfo
            .as_deref()
            .map(|info| match info.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => info.to_owned(),
            });
        f.debug_struct("WsUrl")
            .field("secure", &self.secure)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("resource", &self.resource)
            .field("host_header", &self.host_header)
            .field("userinfo", &userinfo)
            .finish()
    }
}

impl WsUrl {
    /// Parses `ws[s]://[user[:password]@]host[:port][/path][?query]` (IPv6
    /// literals in brackets). A fragment is ignored.
    ///
    /// # Errors
    /// [`ConnectError::Tls`] for `wss://` in a build without the `tls`
    /// feature, [`ConnectError::InvalidUrl`] otherwise.
    pub fn parse(url: &str) -> Result<WsUrl, ConnectError> {
        let bad = |why: &str| ConnectError::InvalidUrl(format!("{why}: {:?}", redacted(url)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let secure = scheme.eq_ignore_ascii_case("wss");
        if secure && !cfg!(feature = "tls") {
            return Err(ConnectError::Tls);
        }
        if !secure && !scheme.eq_ignore_ascii_case("ws") {
            return Err(bad("scheme must be ws or wss"));
        }
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let resource = match target.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{target}"),
            Some(_) => target.to_owned(),
        };
        if resource.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("space or control character in path"));
        }
        if authority.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("space or control character in the host"));
        }
        // The host is after the last `@` (as Tornado's client reads it).
        let (userinfo, authority) = match authority.rsplit_once('@') {
            Some((user, rest)) => (Some(user.to_owned()), rest),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed IPv6 bracket"))?;
            h.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("invalid IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("junk after IPv6 address"))?,
                ),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.contains(':') && !authority.starts_with('[') {
            return Err(bad("IPv6 addresses need brackets"));
        }
        // An empty port is the default one (RFC 3986 §3.2.3); a port is
        // digits only (`+80` would reach the Host header).
        let port = match port {
            None | Some("") if secure => 443,
            None | Some("") => 80,
            Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => return Err(bad("invalid port")),
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
        };
        Ok(WsUrl {
            secure,
            host: host.to_owned(),
            port,
            resource,
            host_header: authority.to_owned(),
            userinfo,
        })
    }

    /// The `Authorization` header value for the URL's user info, if it has
    /// one: `Basic` with `user:password` in base64, the password empty when
    /// none is given (Tornado's client sends the same). Unlike Tornado,
    /// which sends them as written, `%XX` escapes in the user name and
    /// password are decoded first (RFC 3986 §3.2.1; curl and `requests`
    /// decode them too), so that a `:` or `@` in either can be written.
    pub fn authorization(&self) -> Option<String> {
        use base64::Engine;
        let info = self.userinfo.as_deref()?;
        let (user, password) = info.split_once(':').unwrap_or((info, ""));
        let mut plain = crate::http::request::percent_decode_bytes(user, false);
        plain.push(b':');
        plain.extend(crate::http::request::percent_decode_bytes(password, false));
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(plain)
        ))
    }
}

/// `url` without the user info of its authority (`ws://host/` for
/// `ws://user:secret@host/`), for logs and errors.
fn redacted(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]).into(),
        None => url.into(),
    }
}

// ---- callback style -------------------------------------------------------

/// Connects and drives `handler` (the same trait as server handlers; `open`
/// runs once the handshake is done, with no arguments). Returns the
/// connection's id at once; URL errors and immediate connect errors are
/// returned, later failures (resolution, refused, timeout, handshake) are
/// logged at `warn` — use [`websocket_connect_with_result`] to get them.
///
/// # Errors
/// An invalid URL (or `wss://` without the `tls` feature), unreadable
/// [`ConnectOptions::ca_certs`], or a connect that failed at once; a
/// connect from a destructor after the thread's loop was dropped (at
/// thread exit) is one: [`ConnectError::Io`], safe there.
pub fn websocket_connect_with(
    url: &str,
    options: ConnectOptions,
    handler: impl WebSocketHandler,
) -> Result<ConnId, ConnectError> {
    let u = url.to_owned();
    websocket_connect_with_result(url, options, handler, move |res| {
        if let Err(e) = res {
            log_failed_connect(&u, &e);
        }
    })
}

/// [`websocket_connect_with`], with `on_result` called once when the
/// handshake completes (`Ok(id)`, before `open`) or fails later.
///
/// # Errors
/// An invalid URL (or `wss://` without the `tls` feature), unreadable
/// [`ConnectOptions::ca_certs`], or a connect that failed at once (then
/// `on_result` is not called), as one from a destructor after the
/// thread's loop was dropped (at thread exit) does: [`ConnectError::Io`].
pub fn websocket_connect_with_result(
    url: &str,
    options: ConnectOptions,
    handler: impl WebSocketHandler,
    on_result: impl FnOnce(Result<ConnId, ConnectError>) + 'static,
) -> Result<ConnId, ConnectError> {
    start_connect(url, options, Box::new(handler), Box::new(on_result))
}

/// A failed connect of the callback-style clients, which have no other
/// way to say it: `warn`, except for one the caller cancelled.
fn log_failed_connect(url: &str, e: &ConnectError) {
    let url = redacted(url);
    if matches!(e, ConnectError::Cancelled) {
        log::debug!("WebSocket connect to {url} cancelled");
    } else {
        log::warn!("WebSocket connect to {url} failed: {e}");
    }
}

struct CallbackHandler<F> {
    f: Rc<RefCell<F>>,
}

impl<F: FnMut(Option<Message<'_>>) + 'static> WebSocketHandler for CallbackHandler<F> {
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, msg: Message<'_>) {
        (self.f.borrow_mut())(Some(msg));
    }

    fn on_close(&mut self, _ws: &mut WebSocket<'_>) {
        (self.f.borrow_mut())(None);
    }
}

/// The simplest client (Tornado's `on_message_callback`): `on_message`
/// receives each message, then `None` once the connection is closed — or
/// once connecting failed (the error is logged at `warn`). Write to the
/// connection with [`write_to`](super::write_to) and the returned id, and
/// close it with [`close_connection`](super::close_connection).
///
/// # Errors
/// An invalid URL (or `wss://` without the `tls` feature), unreadable
/// [`ConnectOptions::ca_certs`], or a connect that failed at once (then
/// `on_message` is not called), as one from a destructor after the
/// thread's loop was dropped (at thread exit) does: [`ConnectError::Io`].
pub fn websocket_connect_callback(
    url: &str,
    options: ConnectOptions,
    on_message: impl FnMut(Option<Message<'_>>) + 'static,
) -> Result<ConnId, ConnectError> {
    let f = Rc::new(RefCell::new(on_message));
    let f2 = f.clone();
    let u = url.to_owned();
    websocket_connect_with_result(url, options, CallbackHandler { f }, move |res| {
        if let Err(e) = res {
            log_failed_connect(&u, &e);
            (f2.borrow_mut())(None);
        }
    })
}
