//! The WebSocket client (Tornado's `websocket_connect`), in coroutine and
//! callback styles, on the same connection type (`WsConn`) and [`WebSocketHandler`] seam as
//! the server: the client is a connecting [`Pollable`] (`ClientHandshake`)
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
//! Host names are resolved on a helper thread whose answer comes back
//! through [`IOLoopHandle::add_callback`](crate::ioloop::IOLoopHandle), so
//! the loop never blocks; IP literals are used directly. The resolved
//! addresses are tried in order until one accepts the TCP connection
//! (within the one `connect_timeout`).

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Interest;

use super::connection::{with_websocket, with_websocket_later, WebSocket, WsConn, WsParts};
use super::handler::WebSocketHandler;
use super::message::{Message, WebSocketClosedError};
use super::settings::WebSocketSettings;
use crate::ioloop::{Action, ConnId, IOLoop, Pollable, Readiness};
use crate::protocol::handshake::{
    generate_key, parse_client_response, write_client_request, ClientResponse,
};
use crate::protocol::{deflate, CompressionOptions, HandshakeError, Role, Session, SessionConfig};

/// Largest response head (plus error body) read during the handshake.
const MAX_RESPONSE: usize = 1024 * 1024;

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
    /// Extra request headers (cookies, authorization, `Origin`…). Headers
    /// containing CR or LF are dropped.
    pub headers: Vec<(String, String)>,
    /// Offer permessage-deflate with these options (default: none).
    pub compression_options: Option<CompressionOptions>,
    /// Send a ping this often (default: none).
    pub ping_interval: Option<Duration>,
    /// Close if no pong arrives within this time (defaults to the interval
    /// and never exceeds it).
    pub ping_timeout: Option<Duration>,
    /// Larger incoming messages close the connection with 1009 (10 MiB).
    pub max_message_size: usize,
    /// `TCP_NODELAY` (default true).
    pub nodelay: bool,
    /// Cap on bytes queued for the connection before it is closed with
    /// 1008 (default 16 MiB); raise it to send larger messages.
    pub max_write_buffer: usize,
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
    /// The URL is not `ws://host[:port][/path][?query]`.
    InvalidUrl(String),
    /// `wss://` URLs: TLS is not supported yet.
    Tls,
    /// The host name did not resolve.
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        error: io::Error,
    },
    /// Connecting, reading or writing failed (refused, reset, closed
    /// before the handshake completed…).
    Io(io::Error),
    /// `connect_timeout` passed before the handshake completed.
    Timeout,
    /// The server's response was refused: a status other than 101
    /// ([`HandshakeError::BadStatus`] carries status and body), a wrong
    /// `Sec-WebSocket-Accept`, an unrequested extension or subprotocol.
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
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(why) => write!(f, "invalid WebSocket URL: {why}"),
            ConnectError::Tls => f.write_str("TLS not supported yet (wss:// URL)"),
            ConnectError::Resolve { host, error } => write!(f, "cannot resolve {host}: {error}"),
            ConnectError::Io(e) => write!(f, "connection failed: {e}"),
            ConnectError::Timeout => f.write_str("connect timeout"),
            ConnectError::Handshake(e) => write!(f, "WebSocket handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Resolve { error, .. } | ConnectError::Io(error) => Some(error),
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

/// A parsed `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or IP literal (without IPv6 brackets).
    pub host: String,
    /// Port (80 unless given).
    pub port: u16,
    /// Request target: `/path?query` (at least `/`).
    pub resource: String,
    /// `Host` header value: the URL's authority as written.
    pub host_header: String,
}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]` (IPv6 literals in brackets).
    /// A fragment is ignored.
    ///
    /// # Errors
    /// [`ConnectError::Tls`] for `wss://`, [`ConnectError::InvalidUrl`] otherwise.
    pub fn parse(url: &str) -> Result<WsUrl, ConnectError> {
        let bad = |why: &str| ConnectError::InvalidUrl(format!("{why}: {url:?}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        if scheme.eq_ignore_ascii_case("wss") {
            return Err(ConnectError::Tls);
        }
        if !scheme.eq_ignore_ascii_case("ws") {
            return Err(bad("scheme must be ws"));
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
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
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
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
        };
        Ok(WsUrl {
            host: host.to_owned(),
            port,
            resource,
            host_header: authority.to_owned(),
        })
    }
}

// ---- the connecting Pollable ----------------------------------------------

type OnDone = Box<dyn FnOnce(Result<ConnId, ConnectError>)>;

/// A client connection before the 101: resolving, connecting, or in the
/// opening handshake.
struct ClientHandshake {
    url: WsUrl,
    opts: ConnectOptions,
    stream: Option<TcpStream>,
    connected: bool,
    key: [u8; 24],
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    deadline: Instant,
    handler: Option<Box<dyn WebSocketHandler>>,
    on_done: Option<OnDone>,
    /// Addresses not tried yet, the next one last.
    fallback: Vec<SocketAddr>,
}

impl ClientHandshake {
    fn fail(&mut self, e: ConnectError) -> Action {
        log::debug!(
            "WebSocket connect to {}:{} failed: {e}",
            self.url.host,
            self.url.port
        );
        if let Some(done) = self.on_done.take() {
            done(Err(e));
        }
        Action::Remove
    }

    /// Starts the non-blocking TCP connect to `addr`.
    fn connect_addr(
        &mut self,
        lp: &IOLoop,
        id: ConnId,
        addr: SocketAddr,
    ) -> Result<(), ConnectError> {
        let mut stream = TcpStream::connect(addr).map_err(ConnectError::Io)?;
        lp.register(&mut stream, id, Interest::READABLE | Interest::WRITABLE)
            .map_err(ConnectError::Io)?;
        self.stream = Some(stream);
        Ok(())
    }

    /// Starts connecting to the first of `addrs`, keeping the rest to try
    /// if it fails.
    fn connect_first(
        &mut self,
        lp: &IOLoop,
        id: ConnId,
        mut addrs: Vec<SocketAddr>,
    ) -> Result<(), ConnectError> {
        addrs.reverse();
        self.fallback = addrs;
        self.connect_next(lp, id, None)
    }

    /// Drops the current socket and connects to the next address; `last`
    /// is the previous address's error, returned when none is left.
    fn connect_next(
        &mut self,
        lp: &IOLoop,
        id: ConnId,
        mut last: Option<ConnectError>,
    ) -> Result<(), ConnectError> {
        // Closing the fd also removes it from the poller.
        self.stream = None;
        while let Some(addr) = self.fallback.pop() {
            match self.connect_addr(lp, id, addr) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    log::debug!("{id} connect to {addr} failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ConnectError::Io(io::Error::new(io::ErrorKind::NotFound, "no addresses"))
        }))
    }

    fn resolved(&mut self, lp: &IOLoop, id: ConnId, res: io::Result<Vec<SocketAddr>>) -> Action {
        if self.on_done.is_none() {
            return Action::Remove;
        }
        let addrs = match res {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) => {
                let error = io::Error::new(io::ErrorKind::NotFound, "no addresses");
                let host = self.url.host.clone();
                return self.fail(ConnectError::Resolve { host, error });
            }
            Err(error) => {
                let host = self.url.host.clone();
                return self.fail(ConnectError::Resolve { host, error });
            }
        };
        match self.connect_first(lp, id, addrs) {
            Ok(()) => Action::Keep,
            Err(e) => self.fail(e),
        }
    }

    fn step(&mut self, lp: &IOLoop, id: ConnId) -> Result<Option<Action>, ConnectError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None); // still resolving
        };
        if !self.connected {
            if let Some(e) = stream.take_error().map_err(ConnectError::Io)? {
                return Err(ConnectError::Io(e));
            }
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
                Err(e) => return Err(ConnectError::Io(e)),
            }
            self.connected = true;
            if let Err(e) = stream.set_nodelay(self.opts.nodelay) {
                log::debug!("{id} set_nodelay: {e}");
            }
            let offer = self
                .opts
                .compression_options
                .as_ref()
                .map(deflate::client_offer);
            write_client_request(
                &mut self.out,
                &self.url.host_header,
                &self.url.resource,
                &self.key,
                &self.opts.subprotocols,
                offer.as_deref(),
                &self.opts.headers,
            );
        }
        while self.written < self.out.len() {
            match stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(ConnectError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnectError::Io(e)),
            }
        }
        let mut eof = false;
        let mut chunk = [0u8; 8192];
        loop {
            if !self.inbuf.is_empty() || eof {
                if let Some(resp) = self.check(eof)? {
                    return self.finish(lp, id, resp).map(Some);
                }
            }
            let stream = self.stream.as_mut().unwrap_or_else(|| unreachable!());
            match stream.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnectError::Io(e)),
            }
        }
    }

    /// Checks what arrived so far: `Ok(None)` = need more bytes.
    fn check(&mut self, eof: bool) -> Result<Option<ClientResponse>, ConnectError> {
        match parse_client_response(&self.inbuf, &self.key, &self.opts.subprotocols) {
            Ok(Some(resp)) => Ok(Some(resp)),
            Ok(None) if eof => Err(ConnectError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the WebSocket handshake",
            ))),
            Ok(None) if self.inbuf.len() > MAX_RESPONSE => Err(ConnectError::Handshake(
                HandshakeError::InvalidResponse("response head too large".into()),
            )),
            Ok(None) => Ok(None),
            Err(HandshakeError::BadStatus { status, body }) => {
                // Wait for the whole body when its length is announced.
                let want = content_length(&self.inbuf).unwrap_or(0);
                if !eof && body.len() < want && self.inbuf.len() < MAX_RESPONSE {
                    return Ok(None);
                }
                let mut body = body;
                body.truncate(want.max(body.len().min(MAX_RESPONSE)));
                Err(ConnectError::Handshake(HandshakeError::BadStatus {
                    status,
                    body,
                }))
            }
            Err(e) => Err(ConnectError::Handshake(e)),
        }
    }

    /// The 101 checked out: become a client-role `WsConn` in this slot.
    fn finish(
        &mut self,
        lp: &IOLoop,
        id: ConnId,
        resp: ClientResponse,
    ) -> Result<Action, ConnectError> {
        let params = match (
            resp.extensions.as_deref().map(str::trim),
            &self.opts.compression_options,
        ) {
            (None | Some(""), _) => None,
            (Some(ext), Some(co)) => Some(deflate::client_accept(ext, co)?),
            (Some(ext), None) => {
                return Err(HandshakeError::UnrequestedExtension(ext.to_owned()).into())
            }
        };
        let config = SessionConfig {
            max_message_size: self.opts.max_message_size,
            ..SessionConfig::default()
        };
        let session = Session::new(
            Role::Client,
            config,
            params,
            &self.opts.compression_options.clone().unwrap_or_default(),
        );
        let (Some(stream), Some(handler)) = (self.stream.take(), self.handler.take()) else {
            return Err(ConnectError::Io(io::Error::other("handshake state lost")));
        };
        let leftover = self.inbuf[resp.head_len..].to_vec();
        let conn = WsConn::new(
            handler,
            WsParts {
                stream,
                session,
                settings: Rc::new(self.opts.settings()),
                request: None,
                subprotocol: resp.subprotocol,
                args: Vec::new(),
                leftover,
                unsent: Vec::new(),
                id,
                is_client: true,
            },
        );
        log::debug!(
            "{id} WebSocket connected to {}:{}",
            self.url.host,
            self.url.port
        );
        lp.count(crate::ioloop::Counter::ClientConnected, 1);
        // Runs `open` and any frames that came with the 101 next turn.
        lp.mark_readable(id);
        if let Some(done) = self.on_done.take() {
            done(Ok(id));
        }
        Ok(Action::Replace(Box::new(conn)))
    }
}

fn content_length(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(buf).ok()?;
    let h = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))?;
    std::str::from_utf8(h.value).ok()?.trim().parse().ok()
}

impl Pollable for ClientHandshake {
    fn ready(&mut self, lp: &IOLoop, id: ConnId, _r: Readiness) -> Action {
        match self.step(lp, id) {
            Ok(Some(action)) => action,
            Ok(None) => Action::Keep,
            Err(e) if !self.connected && !self.fallback.is_empty() => {
                log::debug!("{id} connect failed: {e}; trying the next address");
                match self.connect_next(lp, id, Some(e)) {
                    Ok(()) => Action::Keep,
                    Err(e) => self.fail(e),
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn deadline(&self, _lp: &IOLoop) -> Option<Instant> {
        Some(self.deadline)
    }

    fn on_deadline(&mut self, _lp: &IOLoop, _id: ConnId, now: Instant) -> Action {
        if now >= self.deadline {
            return self.fail(ConnectError::Timeout);
        }
        Action::Keep
    }

    fn shutdown(&mut self, _lp: &IOLoop, _id: ConnId) -> Action {
        self.fail(ConnectError::Io(io::Error::other("IOLoop shutting down")))
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Starts connecting: immediate errors are returned (and `on_done` is not
/// called); later ones go to `on_done`, as does the success.
fn start_connect(
    url: &str,
    opts: ConnectOptions,
    handler: Box<dyn WebSocketHandler>,
    on_done: OnDone,
) -> Result<ConnId, ConnectError> {
    let url = WsUrl::parse(url)?;
    let literal = url
        .host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| vec![SocketAddr::new(ip, url.port)]);
    start_connect_to(url, literal, opts, handler, on_done)
}

/// [`start_connect`] with the addresses to try in order, or `None` to
/// resolve the URL's host on a helper thread.
fn start_connect_to(
    url: WsUrl,
    addrs: Option<Vec<SocketAddr>>,
    opts: ConnectOptions,
    handler: Box<dyn WebSocketHandler>,
    on_done: OnDone,
) -> Result<ConnId, ConnectError> {
    let lp = IOLoop::current();
    let host = url.host.clone();
    let port = url.port;
    let hs = ClientHandshake {
        deadline: lp.time() + opts.connect_timeout,
        url,
        opts,
        stream: None,
        connected: false,
        key: generate_key(),
        out: Vec::new(),
        written: 0,
        inbuf: Vec::new(),
        handler: Some(handler),
        on_done: Some(on_done),
        fallback: Vec::new(),
    };
    let id = lp.insert(move |_| Box::new(hs));
    match addrs {
        Some(addrs) => {
            let res = lp.with_conn_now(id, |p| {
                match p.as_any_mut().downcast_mut::<ClientHandshake>() {
                    Some(h) => h.connect_first(&lp, id, addrs),
                    None => Err(ConnectError::Io(io::Error::other("handshake vanished"))),
                }
            });
            if let Some(Err(e)) = res {
                lp.remove(id);
                return Err(e);
            }
        }
        None => {
            let handle = lp.handle();
            let spawned = std::thread::Builder::new()
                .name("cyclone-resolve".into())
                .spawn(move || {
                    let res = (host.as_str(), port)
                        .to_socket_addrs()
                        .map(Iterator::collect::<Vec<_>>);
                    handle.add_callback(move || {
                        IOLoop::current().with_conn_serve(id, move |p, lp, id| {
                            match p.as_any_mut().downcast_mut::<ClientHandshake>() {
                                Some(h) => h.resolved(lp, id, res),
                                None => Action::Keep,
                            }
                        });
                    });
                });
            if let Err(e) = spawned {
                lp.remove(id);
                return Err(ConnectError::Io(e));
            }
        }
    }
    Ok(id)
}

// ---- callback style -------------------------------------------------------

/// Connects and drives `handler` (the same trait as server handlers; `open`
/// runs once the handshake is done, with no arguments). Returns the
/// connection's id at once; URL errors and immediate connect errors are
/// returned, later failures (resolution, refused, timeout, handshake) are
/// logged at `warn` — use [`websocket_connect_with_result`] to get them.
///
/// # Errors
/// An invalid or `wss://` URL, or a connect that failed at once.
pub fn websocket_connect_with(
    url: &str,
    options: ConnectOptions,
    handler: impl WebSocketHandler,
) -> Result<ConnId, ConnectError> {
    let u = url.to_owned();
    websocket_connect_with_result(url, options, handler, move |res| {
        if let Err(e) = res {
            log::warn!("WebSocket connect to {u} failed: {e}");
        }
    })
}

/// [`websocket_connect_with`], with `on_result` called once when the
/// handshake completes (`Ok(id)`, before `open`) or fails later.
///
/// # Errors
/// An invalid or `wss://` URL, or a connect that failed at once (then
/// `on_result` is not called).
pub fn websocket_connect_with_result(
    url: &str,
    options: ConnectOptions,
    handler: impl WebSocketHandler,
    on_result: impl FnOnce(Result<ConnId, ConnectError>) + 'static,
) -> Result<ConnId, ConnectError> {
    start_connect(url, options, Box::new(handler), Box::new(on_result))
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
/// connection with [`write_to`](super::write_to) and the returned id.
///
/// # Errors
/// An invalid or `wss://` URL, or a connect that failed at once.
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
            log::warn!("WebSocket connect to {u} failed: {e}");
            (f2.borrow_mut())(None);
        }
    })
}

// ---- coroutine style ------------------------------------------------------

#[derive(Default)]
struct ClientState {
    queue: VecDeque<Message<'static>>,
    closed: bool,
    read_waker: Option<Waker>,
    drain_wakers: Vec<Waker>,
    close_code: Option<u16>,
    close_reason: Option<String>,
    subprotocol: Option<String>,
}

impl ClientState {
    fn wake_drains(&mut self) {
        for w in self.drain_wakers.drain(..) {
            w.wake();
        }
    }
}

/// The handler behind [`WebSocketClientConnection`]: queues messages for
/// `read_message` and wakes it.
struct ChannelHandler {
    state: Rc<RefCell<ClientState>>,
}

impl WebSocketHandler for ChannelHandler {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        self.state.borrow_mut().subprotocol = ws.selected_subprotocol().map(str::to_owned);
    }

    fn on_message(&mut self, _ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let mut s = self.state.borrow_mut();
        s.queue.push_back(msg.into_owned());
        if let Some(w) = s.read_waker.take() {
            w.wake();
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        s.close_code = ws.close_code();
        s.close_reason = ws.close_reason().map(str::to_owned);
        if let Some(w) = s.read_waker.take() {
            w.wake();
        }
        s.wake_drains();
    }

    fn on_drain(&mut self, _ws: &mut WebSocket<'_>) {
        self.state.borrow_mut().wake_drains();
    }
}

/// One-shot slot for the connect result.
type ConnectSlot = Rc<RefCell<(Option<Result<ConnId, ConnectError>>, Option<Waker>)>>;

/// Connects with default options (Tornado's `websocket_connect(url)`).
///
/// # Errors
/// See [`ConnectError`].
pub async fn websocket_connect(url: &str) -> Result<WebSocketClientConnection, ConnectError> {
    websocket_connect_opts(url, ConnectOptions::default()).await
}

/// Connects with `options`; resolves once the handshake completed.
///
/// # Errors
/// See [`ConnectError`].
pub async fn websocket_connect_opts(
    url: &str,
    options: ConnectOptions,
) -> Result<WebSocketClientConnection, ConnectError> {
    let state = Rc::new(RefCell::new(ClientState::default()));
    let slot: ConnectSlot = Rc::new(RefCell::new((None, None)));
    let s2 = slot.clone();
    let handler = ChannelHandler {
        state: state.clone(),
    };
    start_connect(
        url,
        options,
        Box::new(handler),
        Box::new(move |res| {
            let mut s = s2.borrow_mut();
            s.0 = Some(res);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        }),
    )?;
    let id = std::future::poll_fn(|cx| {
        let mut s = slot.borrow_mut();
        match s.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await?;
    Ok(WebSocketClientConnection { id, state })
}

/// An open client connection in coroutine style (Tornado's
/// `WebSocketClientConnection`). Dropping it starts the closing handshake
/// with 1000 (what was written before is sent first); call
/// [`close`](Self::close) to choose the code or to wait for the answer.
pub struct WebSocketClientConnection {
    id: ConnId,
    state: Rc<RefCell<ClientState>>,
}

impl fmt::Debug for WebSocketClientConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClientConnection")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for WebSocketClientConnection {
    fn drop(&mut self) {
        if self.state.borrow().closed {
            return;
        }
        if let Some(lp) = IOLoop::existing() {
            if with_websocket(&lp, self.id, |ws| ws.close(Some(1000), "")).is_none() {
                with_websocket_later(&lp, self.id, |ws| ws.close(Some(1000), ""));
            }
        }
    }
}

impl WebSocketClientConnection {
    /// The connection's id (usable with [`write_to`](super::write_to)).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The next message; `None` once the connection is closed (messages
    /// received before the close are still returned first).
    pub fn read_message(&self) -> ReadMessage {
        ReadMessage {
            state: self.state.clone(),
        }
    }

    /// Queues a text or binary message (masked with a fresh key). The
    /// returned future resolves once this connection's write queue is down
    /// to [`WRITE_HIGH_WATER`] bytes (or it closed): await it for flow
    /// control, or drop it.
    ///
    /// # Errors
    /// [`WebSocketClosedError`] once the connection is closing or closed.
    pub fn write_message<'m>(
        &self,
        msg: impl Into<Message<'m>>,
    ) -> Result<WriteFuture, WebSocketClosedError> {
        if self.state.borrow().closed {
            return Err(WebSocketClosedError);
        }
        let msg = msg.into();
        let lp = IOLoop::current();
        let mut msg = Some(msg);
        match with_websocket(&lp, self.id, |ws| {
            ws.write_message(msg.take().unwrap_or_else(|| unreachable!()))
        }) {
            Some(r) => {
                r?;
            }
            None => {
                // Being served right now (called from inside a handler): queue
                // the write for when it is put back.
                let owned = msg.take().map(Message::into_owned);
                let queued = owned.is_some_and(|m| {
                    with_websocket_later(&lp, self.id, move |ws| {
                        let _ = ws.write_message(m);
                    })
                });
                if !queued {
                    return Err(WebSocketClosedError);
                }
            }
        }
        Ok(self.wait_below(WRITE_HIGH_WATER))
    }

    /// Sends a ping (at most 125 bytes are sent).
    ///
    /// # Errors
    /// [`WebSocketClosedError`] once closed.
    pub fn ping(&self, data: &[u8]) -> Result<(), WebSocketClosedError> {
        let lp = IOLoop::current();
        if self.state.borrow().closed {
            return Err(WebSocketClosedError);
        }
        match with_websocket(&lp, self.id, |ws| ws.ping(data)) {
            Some(r) => r,
            None => {
                let data = data.to_vec();
                if with_websocket_later(&lp, self.id, move |ws| {
                    let _ = ws.ping(&data);
                }) {
                    Ok(())
                } else {
                    Err(WebSocketClosedError)
                }
            }
        }
    }

    /// Starts the closing handshake; `read_message` then yields `None` once
    /// the server answered (or the close timeout passed).
    pub fn close(&self, code: Option<u16>, reason: &str) {
        let lp = IOLoop::current();
        if with_websocket(&lp, self.id, |ws| ws.close(code, reason)).is_none() {
            let reason = reason.to_owned();
            with_websocket_later(&lp, self.id, move |ws| ws.close(code, &reason));
        }
    }

    /// Resolves once everything queued was handed to the kernel (or the
    /// connection closed).
    pub fn flush(&self) -> WriteFuture {
        self.wait_below(0)
    }

    /// Bytes queued and not yet taken by the kernel (0 once closed).
    pub fn buffered_amount(&self) -> usize {
        with_websocket(&IOLoop::current(), self.id, |ws| ws.buffered_amount()).unwrap_or(0)
    }

    /// Whether the connection is closed (`read_message` may still return
    /// queued messages).
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// The close code the server sent, once closed.
    pub fn close_code(&self) -> Option<u16> {
        self.state.borrow().close_code
    }

    /// The close reason the server sent, once closed.
    pub fn close_reason(&self) -> Option<String> {
        self.state.borrow().close_reason.clone()
    }

    /// The subprotocol the server selected.
    pub fn selected_subprotocol(&self) -> Option<String> {
        let s = self.state.borrow().subprotocol.clone();
        s.or_else(|| {
            with_websocket(&IOLoop::current(), self.id, |ws| {
                ws.selected_subprotocol().map(str::to_owned)
            })
            .flatten()
        })
    }

    fn wait_below(&self, mark: usize) -> WriteFuture {
        WriteFuture {
            id: self.id,
            state: self.state.clone(),
            mark,
            rechecked: false,
        }
    }
}

/// Future of [`WebSocketClientConnection::read_message`].
pub struct ReadMessage {
    state: Rc<RefCell<ClientState>>,
}

impl Future for ReadMessage {
    type Output = Option<Message<'static>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.borrow_mut();
        if let Some(m) = s.queue.pop_front() {
            return Poll::Ready(Some(m));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Flow control for [`WebSocketClientConnection::write_message`] and
/// [`flush`](WebSocketClientConnection::flush): resolves once the write
/// queue is at or below its mark, or the connection closed.
pub struct WriteFuture {
    id: ConnId,
    state: Rc<RefCell<ClientState>>,
    mark: usize,
    rechecked: bool,
}

impl Future for WriteFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.borrow().closed {
            return Poll::Ready(());
        }
        let lp = IOLoop::current();
        let Some(queued) = with_websocket(&lp, self.id, |ws| ws.buffered_amount()) else {
            return Poll::Ready(());
        };
        if queued <= self.mark {
            return Poll::Ready(());
        }
        self.state
            .borrow_mut()
            .drain_wakers
            .push(cx.waker().clone());
        if !self.rechecked {
            // The queue is flushed at the end of this turn; if that empties it
            // at once there is no `on_drain`, so look again next turn. After
            // that, a non-empty queue is backlogged and `on_drain` will come.
            self.rechecked = true;
            let w = cx.waker().clone();
            lp.add_callback(move || w.wake());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;

    impl WebSocketHandler for Quiet {
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
    }

    /// Connects to `addrs` in order; Some(true) once the handshake is done.
    fn try_addrs(url: &str, addrs: Vec<SocketAddr>) -> Option<Result<(), String>> {
        let lp = IOLoop::current();
        let got: Rc<RefCell<Option<Result<(), String>>>> = Rc::default();
        let g2 = got.clone();
        let url = WsUrl::parse(url).expect("url");
        let started = start_connect_to(
            url,
            Some(addrs),
            ConnectOptions::default(),
            Box::new(Quiet),
            Box::new(move |res| {
                *g2.borrow_mut() = Some(res.map(|_| ()).map_err(|e| e.to_string()));
                IOLoop::current().stop();
            }),
        );
        if let Err(e) = started {
            return Some(Err(e.to_string()));
        }
        let t = lp.call_later(Duration::from_secs(10), || IOLoop::current().stop());
        lp.start();
        lp.remove_timeout(t);
        got.take()
    }

    #[test]
    fn every_resolved_address_is_tried_until_one_connects() {
        // A port with nothing listening (bound, then closed).
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let app = crate::web::Application::builder()
            .websocket("/", |_| Quiet)
            .build();
        let good = app.listen_on("127.0.0.1:0").expect("listen");
        let url = format!("ws://{good}/");
        assert_eq!(try_addrs(&url, vec![closed, closed, good]), Some(Ok(())));
        // Nothing accepts: the last address's error is reported.
        match try_addrs(&url, vec![closed, closed]) {
            Some(Err(e)) => assert!(e.to_lowercase().contains("refused"), "{e}"),
            other => panic!("expected a refused connection, got {other:?}"),
        }
    }
}
