//! The connecting [`Pollable`] (`ClientHandshake`): resolve, connect (each
//! resolved address in turn), over TLS for `wss://`, send the opening
//! handshake, check the 101, then replace itself with a client-role
//! `WsConn` in the same slot.

use std::any::Any;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use super::{ConnectError, ConnectOptions, WsUrl};
use crate::http::reader::{find_head_end, ChunkedDecoder};
use crate::http::request::{HeadLimits, HeadStatus};
use crate::http::{Request, Stream};
use crate::ioloop::{Action, ConnId, IOLoop, Pollable, Readiness};
use crate::protocol::handshake::{
    generate_key, parse_client_response, write_client_request, ClientResponse,
};
use crate::protocol::{deflate, CloseCode, HandshakeError, Role, Session, SessionConfig};
use crate::websocket::connection::{WsConn, WsParts};
use crate::websocket::handler::WebSocketHandler;
use crate::websocket::CloseReason;

/// Largest response head (plus error body) read during the handshake.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Interim (1xx) responses skipped before the 101 at most; one more is
/// taken as the answer (a `BadStatus`), so a server cannot keep the
/// handshake going with them until the connect timeout.
const MAX_INTERIM: usize = 8;

// ---- the connecting Pollable ----------------------------------------------

pub(super) type OnDone = Box<dyn FnOnce(Result<ConnId, ConnectError>)>;

#[cfg(feature = "tls")]
type Tls = (
    std::sync::Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
);
#[cfg(not(feature = "tls"))]
type Tls = std::convert::Infallible;

/// The TLS settings of a `wss://` connect (`None` for `ws://`).
///
/// # Errors
/// `ConnectOptions::ca_certs` cannot be read or holds no usable
/// certificate; the host is not a valid TLS server name.
#[cfg(feature = "tls")]
fn tls_for(url: &WsUrl, opts: &ConnectOptions) -> Result<Option<Tls>, ConnectError> {
    if !url.secure {
        return Ok(None);
    }
    let config = match (&opts.tls_config, &opts.ca_certs) {
        (Some(c), _) => c.clone(),
        (None, Some(path)) => {
            // Unreadable or unusable, the error names the file.
            let ca_error = |e: io::Error| {
                ConnectError::Io(io::Error::new(
                    e.kind(),
                    format!("ca_certs {}: {e}", path.display()),
                ))
            };
            let pem = std::fs::read(path).map_err(ca_error)?;
            crate::tls::client_config(Some(&pem)).map_err(ca_error)?
        }
        (None, None) => crate::tls::default_client_config(),
    };
    // IP literals are server names too (checked against the
    // certificate's IP addresses; not sent as SNI).
    let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|_| {
        ConnectError::InvalidUrl(format!("{:?} is not a valid TLS server name", url.host))
    })?;
    Ok(Some((config, name)))
}

#[cfg(not(feature = "tls"))]
fn tls_for(url: &WsUrl, _opts: &ConnectOptions) -> Result<Option<Tls>, ConnectError> {
    if url.secure {
        return Err(ConnectError::Tls);
    }
    Ok(None)
}

/// A client connection before the 101: resolving, connecting, or in the
/// opening handshake.
struct ClientHandshake {
    url: WsUrl,
    opts: ConnectOptions,
    /// Plain, or TLS (`wss://`) from the start: the ClientHello waits in
    /// rustls until the TCP connect completes.
    stream: Option<Stream>,
    /// `wss://`: the configuration and the server name (SNI) each address
    /// is tried with.
    tls: Option<Tls>,
    connected: bool,
    key: [u8; 24],
    out: Vec<u8>,
    written: usize,
    response: ResponseReader,
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
        let tcp = TcpStream::connect(addr).map_err(ConnectError::Io)?;
        let mut stream = match &self.tls {
            None => Stream::plain(tcp),
            #[cfg(feature = "tls")]
            Some((config, name)) => Stream::tls_client(tcp, config.clone(), name.clone())
                .map_err(ConnectError::TlsHandshake)?,
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
        };
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
            if let Some(e) = stream.tcp().take_error().map_err(ConnectError::Io)? {
                return Err(ConnectError::Io(e));
            }
            match stream.tcp().peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
                Err(e) => return Err(ConnectError::Io(e)),
            }
            self.connected = true;
            if let Err(e) = stream.tcp().set_nodelay(self.opts.nodelay) {
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
                Err(e) => return Err(stream_error(stream, e)),
            }
        }
        // TLS records the kernel refused (the ClientHello, a later flight,
        // the request once the handshake is done); none for plain TCP.
        stream
            .flush_pending()
            .map_err(|e| stream_error(stream, e))?;
        let mut eof = false;
        let mut chunk = [0u8; 8192];
        loop {
            if !self.response.is_empty() || eof {
                let res = self
                    .response
                    .poll(eof, &self.key, &self.opts.subprotocols)?;
                if let Some(resp) = res {
                    return self.finish(lp, id, resp).map(Some);
                }
            }
            let stream = self.stream.as_mut().unwrap_or_else(|| unreachable!());
            match stream.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(n) => self.response.push(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(stream_error(stream, e)),
            }
        }
    }

    /// The upgrade request this client sent, as the `Request` its
    /// handler's `ws.request()` returns (Tornado's
    /// `WebSocketClientConnection.request`): method, path, query and
    /// headers as written, `peer()` the server's address, `protocol()`
    /// `https` over `wss://`.
    fn sent_request(&self, stream: &Stream) -> Request {
        let parse = |head: &[u8]| {
            let limits = HeadLimits {
                max_head_bytes: head.len(),
                max_headers: self.opts.headers.len() + 16,
            };
            match Request::parse_head(head, &limits) {
                Ok(HeadStatus::Complete(r, _)) => Some(r),
                _ => None,
            }
        };
        // Our own head parses (names and values are checked when written);
        // should httparse refuse a caller's header anyway, keep the
        // request line and the Host.
        let resource = match self.url.resource.as_str() {
            "" => "/",
            r => r,
        };
        let minimal = format!(
            "GET {resource} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.url.host_header
        );
        let mut request = parse(&self.out)
            .or_else(|| parse(minimal.as_bytes()))
            .or_else(|| parse(b"GET / HTTP/1.1\r\n\r\n"))
            .expect("a constant request head parses");
        request.set_peer(stream.tcp().peer_addr().ok());
        request.set_https(stream.is_tls());
        request
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
        let leftover = self.response.after_head(resp.head_len).to_vec();
        let request = self.sent_request(&stream);
        let conn = WsConn::new(
            handler,
            WsParts {
                stream,
                session,
                settings: Rc::new(self.opts.settings().into()),
                request,
                subprotocol: resp.subprotocol,
                args: Vec::new(),
                kwargs: Vec::new(),
                leftover,
                unsent: Vec::new(),
                id,
                is_client: true,
                namespace: None,
                response_headers: resp.headers,
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

/// A read or write error of the handshake's stream: over TLS, a TLS
/// failure (`InvalidData`: an untrusted certificate, an alert from the
/// server) is [`ConnectError::TlsHandshake`].
fn stream_error(stream: &Stream, e: io::Error) -> ConnectError {
    if stream.is_tls() && e.kind() == io::ErrorKind::InvalidData {
        ConnectError::TlsHandshake(e)
    } else {
        ConnectError::Io(e)
    }
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

    fn sweep_span(&self) -> Option<std::time::Duration> {
        Some(self.opts.connect_timeout)
    }

    fn on_deadline(&mut self, _lp: &IOLoop, _id: ConnId, now: Instant) -> Action {
        if now >= self.deadline {
            // A refusal whose body never came whole is still a refusal.
            let e = self.response.cut_short().unwrap_or(ConnectError::Timeout);
            return self.fail(e);
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

/// The owner of connect `id` went away before taking the connection (the
/// `websocket_connect` future was dropped, e.g. by a timeout): stop
/// connecting — the socket is closed and nothing is reported — or, if the
/// handshake already completed, start closing the connection nobody will
/// read from (1001), so it neither stays open nor queues messages forever.
pub(super) fn abandon(lp: &IOLoop, id: ConnId) {
    lp.with_conn_serve(id, |p, lp, id| {
        let p = p.as_any_mut();
        if let Some(h) = p.downcast_mut::<ClientHandshake>() {
            log::debug!("{id} WebSocket connect abandoned");
            h.on_done = None;
            return Action::Remove;
        }
        if let Some(c) = p.downcast_mut::<WsConn>() {
            // Nobody reads its messages: no hold on reading either, so
            // that the server's Close is seen.
            c.core.ctx(lp).hold_reading(false);
            c.core
                .start_close(lp, Some(CloseCode::GOING_AWAY), "", CloseReason::Local);
        }
        Action::Keep
    });
}

/// `close_connection` on a connect still in progress (its id is returned
/// at once, before the handshake): stop connecting — the socket is closed
/// — and report it to the caller's `on_done` as a failed connect, from the
/// loop's next iteration (as a close reaches `on_close` later, never
/// inside the call). `None` if `p` is not a connect in progress.
pub(crate) fn cancel(p: &mut dyn Pollable, lp: &IOLoop, id: ConnId) -> Option<Action> {
    let h = p.as_any_mut().downcast_mut::<ClientHandshake>()?;
    log::debug!("{id} WebSocket connect cancelled by close_connection");
    if let Some(done) = h.on_done.take() {
        lp.add_callback(move || {
            done(Err(ConnectError::Cancelled));
        });
    }
    Some(Action::Remove)
}

/// Starts connecting: immediate errors are returned (and `on_done` is not
/// called); later ones go to `on_done`, as does the success.
pub(super) fn start_connect(
    url: &str,
    mut opts: ConnectOptions,
    handler: Box<dyn WebSocketHandler>,
    on_done: OnDone,
) -> Result<ConnId, ConnectError> {
    let url = WsUrl::parse(url)?;
    // The URL's user info is sent as Basic credentials; as in Tornado, they
    // replace an `Authorization` among the extra headers.
    if let Some(auth) = url.authorization() {
        opts.headers
            .retain(|(name, _)| !name.trim().eq_ignore_ascii_case("authorization"));
        opts.headers.push(("Authorization".to_owned(), auth));
    }
    offer_header_subprotocols(&mut opts);
    // With `compression_options`, the handshake offers permessage-deflate
    // itself; a second offer among the extra headers goes (Tornado's offer
    // overwrites it too).
    if opts.compression_options.is_some() {
        opts.headers.retain(|(name, _)| {
            let own = name.trim().eq_ignore_ascii_case("sec-websocket-extensions");
            if own {
                log::warn!("dropping request header {name:?}: `compression_options` sets it");
            }
            !own
        });
    }
    check_subprotocols(&opts.subprotocols)?;
    let tls = tls_for(&url, &opts)?;
    let literal = url
        .host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| vec![SocketAddr::new(ip, url.port)]);
    start_connect_to(url, tls, literal, opts, handler, on_done)
}

/// A `Sec-WebSocket-Protocol` among the extra headers (Tornado's
/// `HTTPRequest(headers=...)` way of offering subprotocols) is taken out of
/// them: without [`ConnectOptions::subprotocols`] its comma-separated names
/// become the offer, so that the server's choice among them is accepted
/// (sent as a header of their own, they were not counted as offered, and
/// the server's pick failed the handshake as unrequested); with
/// `subprotocols`, those win and the header is dropped, as Tornado's
/// `subprotocols` overwrites it.
fn offer_header_subprotocols(opts: &mut ConnectOptions) {
    let from_options = !opts.subprotocols.is_empty();
    let mut offered = Vec::new();
    opts.headers.retain(|(name, value)| {
        if !name.trim().eq_ignore_ascii_case("sec-websocket-protocol") {
            return true;
        }
        if from_options {
            log::warn!("dropping request header {name:?}: `subprotocols` sets it");
        } else {
            offered.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        }
        false
    });
    opts.subprotocols.extend(offered);
}

/// RFC 6455 §4.1: the subprotocols offered are tokens, each once (one
/// with a comma, a space or a line end would be read as several, or as
/// another header).
fn check_subprotocols(offered: &[String]) -> Result<(), ConnectError> {
    for (i, p) in offered.iter().enumerate() {
        let token = !p.is_empty() && p.bytes().all(crate::protocol::handshake::is_tchar);
        if !token || offered[..i].contains(p) {
            return Err(ConnectError::InvalidSubprotocol(p.clone()));
        }
    }
    Ok(())
}

/// [`start_connect`] with the addresses to try in order, or `None` to
/// resolve the URL's host on a helper thread.
fn start_connect_to(
    url: WsUrl,
    tls: Option<Tls>,
    addrs: Option<Vec<SocketAddr>>,
    opts: ConnectOptions,
    handler: Box<dyn WebSocketHandler>,
    on_done: OnDone,
) -> Result<ConnId, ConnectError> {
    // No loop in a thread-local's destructor that runs after the loop's
    // (a reconnect asked there): an error, not the panic that aborts.
    let lp = IOLoop::try_current().map_err(ConnectError::Io)?;
    // A short connect timeout must not wait for the next 250 ms sweep.
    lp.sweep_within(opts.connect_timeout);
    let host = url.host.clone();
    let port = url.port;
    let hs = ClientHandshake {
        deadline: lp.deadline_after(opts.connect_timeout),
        url,
        opts,
        stream: None,
        tls,
        connected: false,
        key: generate_key(),
        out: Vec::new(),
        written: 0,
        response: ResponseReader::default(),
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

// ---- the response, read in pieces -------------------------------------------

/// A non-101 response whose head arrived: its body is awaited.
struct BodyWait {
    status: u16,
    head_len: usize,
    /// The announced `Content-Length`; `None`: the body ends with the
    /// connection (or, chunked, with its last chunk).
    want: Option<usize>,
    /// `Transfer-Encoding: chunked` (RFC 9112 §6.3: it overrides any
    /// `Content-Length`): the body is decoded as it arrives and awaited up
    /// to its last chunk.
    chunked: Option<ChunkedWait>,
    /// Every header of the response, for the error.
    headers: Vec<(String, String)>,
}

/// The decoding of a chunked non-101 body.
#[derive(Default)]
struct ChunkedWait {
    dec: ChunkedDecoder,
    /// Body bytes (after the head) fed to `dec` so far.
    fed: usize,
    /// The framing was malformed: the body is what was decoded before.
    failed: bool,
}

impl ChunkedWait {
    /// Decodes what arrived after the `fed` bytes of `body_bytes` (the
    /// bytes after the head); whether the body is complete (or
    /// malformed: nothing more will be decoded).
    fn feed(&mut self, body_bytes: &[u8]) -> bool {
        if !self.failed && self.fed < body_bytes.len() {
            match self.dec.feed(&body_bytes[self.fed..], MAX_RESPONSE) {
                Ok(n) => self.fed += n,
                Err(e) => {
                    log::debug!("malformed chunked body of a refusal: {e}");
                    self.failed = true;
                }
            }
        }
        self.failed || self.dec.is_done()
    }
}

/// The server's handshake response, however it is cut into reads: bytes
/// in ([`push`](Self::push)), the checked 101 out ([`poll`](Self::poll)).
///
/// Parsing cost is linear in the bytes received, as on the server side
/// (`http::reader`): a head that arrived whole is parsed on first sight;
/// one still arriving is parsed again only once its status line completed
/// (so that a peer that is not an HTTP server is refused early), once its
/// end (an empty line) arrived, or when the reading stops (EOF, or over
/// [`MAX_RESPONSE`]); the end search resumes where the previous one
/// stopped. A non-101 head is parsed once (and its `Content-Length`
/// read once); its body is then only awaited. Re-parsing the whole buffer
/// after every read made a head trickled in small pieces cost quadratic
/// time.
#[derive(Default)]
struct ResponseReader {
    buf: Vec<u8>,
    /// The empty lines (CRLF or LF) before the status line, which httparse
    /// skips: the head's end is searched for after them.
    lead: usize,
    /// How far `buf` has been searched for the end of the head.
    scanned: usize,
    /// Whether the head was parsed once already (its first bytes).
    looked: bool,
    /// Whether a line (the status line) ended after `lead`.
    line_seen: bool,
    /// The head is a non-101 one: waiting for its body.
    body: Option<BodyWait>,
    /// Interim (1xx) heads skipped before the answer.
    interim: usize,
    /// Full parses of the buffer so far, and the bytes they went over.
    #[cfg(test)]
    parses: (usize, usize),
}

impl ResponseReader {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A non-101 answer whose announced body is still awaited, as its
    /// status with what of the body arrived.
    fn cut_short(&self) -> Option<ConnectError> {
        let w = self.body.as_ref()?;
        let body = match &w.chunked {
            Some(c) => c.dec.body().to_vec(),
            None => self.buf[w.head_len..].to_vec(),
        };
        Some(ConnectError::Handshake(HandshakeError::BadStatus {
            status: w.status,
            body,
            headers: w.headers.clone(),
        }))
    }

    /// What arrived after a head `head_len` long (the first frames).
    fn after_head(&self, head_len: usize) -> &[u8] {
        &self.buf[head_len..]
    }

    /// Checks what arrived so far (`eof`: nothing more will): `Ok(None)` =
    /// need more bytes.
    fn poll(
        &mut self,
        eof: bool,
        key: &[u8; 24],
        offered_protocols: &[String],
    ) -> Result<Option<ClientResponse>, ConnectError> {
        while self.body.is_none() {
            match self.poll_head(eof, key, offered_protocols) {
                Err(HandshakeError::BadStatus { status, body, .. })
                    if (100..200).contains(&status) && self.interim < MAX_INTERIM =>
                {
                    // An interim answer before the 101 (RFC 9110 §15.2: a
                    // client parses 1xx responses it did not expect) is
                    // skipped, and the head after it read afresh.
                    let head_len = self.buf.len() - body.len();
                    self.buf.drain(..head_len);
                    *self = ResponseReader {
                        buf: std::mem::take(&mut self.buf),
                        interim: self.interim + 1,
                        #[cfg(test)]
                        parses: self.parses,
                        ..ResponseReader::default()
                    };
                }
                Err(HandshakeError::BadStatus {
                    status,
                    body,
                    headers,
                }) => {
                    let head_len = self.buf.len() - body.len();
                    let (want, chunked) = match body_length(&self.buf[..head_len]) {
                        // RFC 9112 §6.3 item 1: no body, whatever the head says.
                        _ if matches!(status, 204 | 304) => (Some(0), None),
                        BodyLength::Chunked => (None, Some(ChunkedWait::default())),
                        BodyLength::Length(n) => (Some(n), None),
                        // Item 8: neither, so the body ends with the
                        // connection (or at the connect timeout,
                        // `cut_short`).
                        BodyLength::Unknown => (None, None),
                    };
                    #[cfg(test)]
                    {
                        self.parses.0 += 1;
                        self.parses.1 += head_len;
                    }
                    self.body = Some(BodyWait {
                        status,
                        head_len,
                        want,
                        chunked,
                        headers,
                    });
                }
                Err(e) => return Err(ConnectError::Handshake(e)),
                Ok(None) if eof => {
                    return Err(ConnectError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the WebSocket handshake",
                    )))
                }
                Ok(None) if self.buf.len() > MAX_RESPONSE => {
                    return Err(ConnectError::Handshake(HandshakeError::InvalidResponse(
                        "response head too large".into(),
                    )))
                }
                Ok(r) => return Ok(r),
            }
        }
        let Some(w) = &mut self.body else {
            return Ok(None);
        };
        if let Some(c) = &mut w.chunked {
            let complete = c.feed(&self.buf[w.head_len..]);
            if !complete && !eof && self.buf.len() < MAX_RESPONSE {
                return Ok(None);
            }
            return Err(ConnectError::Handshake(HandshakeError::BadStatus {
                status: w.status,
                body: c.dec.body().to_vec(),
                headers: w.headers.clone(),
            }));
        }
        // Wait for the whole body: its announced length, or the close.
        let have = self.buf.len() - w.head_len;
        let complete = w.want.is_some_and(|n| have >= n);
        if !eof && !complete && self.buf.len() < MAX_RESPONSE {
            return Ok(None);
        }
        let mut body = self.buf[w.head_len..].to_vec();
        body.truncate(w.want.unwrap_or(MAX_RESPONSE).min(MAX_RESPONSE));
        Err(ConnectError::Handshake(HandshakeError::BadStatus {
            status: w.status,
            body,
            headers: w.headers.clone(),
        }))
    }

    /// Parses the head if something that may decide it arrived (see the
    /// type's docs); `Ok(None)` = incomplete.
    fn poll_head(
        &mut self,
        eof: bool,
        key: &[u8; 24],
        offered_protocols: &[String],
    ) -> Result<Option<ClientResponse>, HandshakeError> {
        let b = &self.buf;
        while let Some(rest) = b.get(self.lead..) {
            match rest {
                [b'\n', ..] => self.lead += 1,
                [b'\r', b'\n', ..] => self.lead += 2,
                _ => break,
            }
        }
        // The end's first LF ends a line after `lead`; an end cut across
        // reads is at most 3 bytes long, so its start is within the 3
        // bytes searched last time.
        let from = self.scanned.saturating_sub(3).max(self.lead).min(b.len());
        let end = find_head_end(&b[from..]).is_some();
        let new_line =
            !self.line_seen && b[self.scanned.max(self.lead).min(b.len())..].contains(&b'\n');
        self.line_seen |= new_line;
        self.scanned = b.len();
        let first = !self.looked;
        self.looked = true;
        if !(first || new_line || end || eof || b.len() > MAX_RESPONSE) {
            return Ok(None);
        }
        #[cfg(test)]
        {
            self.parses.0 += 1;
            self.parses.1 += self.buf.len();
        }
        parse_client_response(&self.buf, key, offered_protocols)
    }
}

/// How the body of a non-101 response head ends.
enum BodyLength {
    /// `Transfer-Encoding` ending in `chunked`.
    Chunked,
    /// `Content-Length`.
    Length(usize),
    /// Neither (or an unreadable length): the body ends with the
    /// connection.
    Unknown,
}

/// The body framing of a response head (RFC 9112 §6.3: a
/// `Transfer-Encoding` whose last coding is `chunked` overrides any
/// `Content-Length`).
fn body_length(buf: &[u8]) -> BodyLength {
    crate::protocol::handshake::with_header_slots(buf, |slots| {
        let mut resp = httparse::Response::new(slots);
        if resp.parse(buf).is_err() {
            return BodyLength::Unknown;
        }
        let chunked = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .rfind(|c| !c.trim_ascii().is_empty())
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if chunked {
            return BodyLength::Chunked;
        }
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .map_or(BodyLength::Unknown, BodyLength::Length)
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;
    use crate::websocket::{Message, WebSocket};

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
            None,
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

    const KEY: [u8; 24] = *b"dGhlIHNhbXBsZSBub25jZQ==";

    /// A 101 head accepting [`KEY`], with `pad` bytes of extra headers.
    fn head_101(pad: usize) -> Vec<u8> {
        let accept = crate::protocol::handshake::accept_key(&KEY);
        let mut h = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: "
            .to_vec();
        h.extend_from_slice(&accept);
        h.extend_from_slice(b"\r\n");
        pad_headers(&mut h, pad);
        h.extend_from_slice(b"\r\n");
        h
    }

    /// Appends about `pad` bytes of headers, in at most 50 of them.
    fn pad_headers(h: &mut Vec<u8>, pad: usize) {
        if pad == 0 {
            return;
        }
        let per = pad.div_ceil(50);
        for i in 0..pad.div_ceil(per) {
            h.extend_from_slice(format!("X-Pad-{i}: ").as_bytes());
            h.extend(std::iter::repeat_n(b'p', per));
            h.extend_from_slice(b"\r\n");
        }
    }

    type Polled = Result<Option<ClientResponse>, ConnectError>;

    fn poll(r: &mut ResponseReader, eof: bool) -> Polled {
        r.poll(eof, &KEY, &[])
    }

    /// Pushes `bytes` in pieces of 1 to 13 bytes, polling after each,
    /// until a poll decides; returns that and how many bytes were pushed.
    /// The parse count is checked as it goes (so that quadratic re-parsing
    /// fails fast).
    fn trickle(r: &mut ResponseReader, bytes: &[u8]) -> (Polled, usize) {
        let mut at = 0;
        let mut piece = 0;
        loop {
            let n = (piece % 13 + 1).min(bytes.len() - at);
            piece += 1;
            r.push(&bytes[at..at + n]);
            at += n;
            let res = poll(r, false);
            assert!(r.parses.0 <= 5, "{} full parses", r.parses.0);
            assert!(
                r.parses.1 <= 5 * r.buf.len(),
                "{} bytes parsed for {}",
                r.parses.1,
                r.buf.len()
            );
            if !matches!(res, Ok(None)) || at == bytes.len() {
                return (res, at);
            }
        }
    }

    /// A 101 head of almost `MAX_RESPONSE` trickled in pieces of 1 to 13
    /// bytes (about 140 000 reads) is parsed a bounded number of times
    /// (re-parsing all of it after every read was quadratic), then
    /// accepted, with the frame that came with it left for the connection.
    #[test]
    fn head_trickled_near_the_limit_is_parsed_a_bounded_number_of_times() {
        let head = head_101(MAX_RESPONSE - 1024);
        assert!(head.len() > MAX_RESPONSE - 1024 && head.len() < MAX_RESPONSE);
        let frame = [0x81, 2, b'h', b'i'];
        let mut stream = head.clone();
        stream.extend_from_slice(&frame);
        let mut r = ResponseReader::default();
        let (res, at) = trickle(&mut r, &stream);
        let resp = res.expect("valid").expect("complete");
        assert_eq!(resp.head_len, head.len());
        assert!(at >= head.len() && at < head.len() + 13);
        // What came with the last piece is left for the connection.
        assert_eq!(r.after_head(resp.head_len), &stream[head.len()..at]);
        assert!(r.parses.0 <= 3, "{} full parses", r.parses.0);
    }

    /// The same for a non-101 head near the limit followed by a body that
    /// trickles in too: the head is parsed (and its Content-Length read)
    /// once, then the body is only awaited; the error carries it whole.
    #[test]
    fn non_101_head_and_body_trickled_are_parsed_a_bounded_number_of_times() {
        let body = vec![b'b'; 20_000];
        let mut stream = b"HTTP/1.1 503 Busy\r\n".to_vec();
        pad_headers(&mut stream, 900_000);
        stream.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        let head_len = stream.len();
        stream.extend_from_slice(&body);
        let mut r = ResponseReader::default();
        match trickle(&mut r, &stream).0 {
            Err(ConnectError::Handshake(HandshakeError::BadStatus {
                status: 503,
                body: b,
                ..
            })) => {
                assert_eq!(b, body)
            }
            other => panic!("{other:?}"),
        }
        // First look, the status line, the head's end, its Content-Length.
        assert!(r.parses.0 <= 4, "{} full parses", r.parses.0);
        assert!(r.parses.1 <= 4 * head_len, "{} bytes parsed", r.parses.1);
    }

    /// A 101 (CRLF or bare-LF lines, with or without empty lines before
    /// it) followed by a frame, cut into two reads at every position, and
    /// three around the head's end, is accepted once the head is whole,
    /// with the frame left over: a head end cut anywhere (`\r\n\r` +
    /// `\n`, `\r\n` + `\r\n`, ...) is found.
    #[test]
    fn a_101_cut_anywhere_is_accepted_with_its_frame() {
        let frame = [0x81, 2, b'h', b'i'];
        let crlf = head_101(0);
        let lf: Vec<u8> = String::from_utf8(crlf.clone())
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes();
        let mut led = b"\r\n\n\r\n".to_vec();
        led.extend_from_slice(&crlf);
        for head in [crlf, lf, led] {
            let mut stream = head.clone();
            stream.extend_from_slice(&frame);
            let check = |cuts: &[usize]| {
                let mut r = ResponseReader::default();
                let mut at = 0;
                for &end in cuts.iter().chain([stream.len()].iter()) {
                    r.push(&stream[at..end]);
                    at = end;
                    let res = poll(&mut r, false).expect("valid");
                    assert_eq!(res.is_some(), end >= head.len(), "cuts {cuts:?} at {end}");
                    if let Some(resp) = res {
                        assert_eq!(resp.head_len, head.len(), "cuts {cuts:?}");
                        assert_eq!(r.after_head(resp.head_len), &stream[head.len()..end]);
                        return;
                    }
                }
                panic!("cuts {cuts:?}: never complete");
            };
            for cut in 1..stream.len() {
                check(&[cut]);
            }
            for i in head.len() - 6..head.len() {
                for j in i + 1..=head.len() {
                    check(&[i, j]);
                }
            }
            check(&(1..stream.len()).collect::<Vec<_>>());
        }
    }

    /// A 101 with more headers than the 64 slots on the stack (here 300,
    /// after empty lines, in CRLF and bare-LF forms) is accepted with every
    /// header kept; so is a non-101 one's `Content-Length` after as many.
    #[test]
    fn a_101_with_hundreds_of_headers_is_accepted() {
        let accept = crate::protocol::handshake::accept_key(&KEY);
        let mut head = b"\r\n\nHTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for i in 0..300 {
            head.extend_from_slice(format!("X-Many-{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        head.extend_from_slice(b"Sec-WebSocket-Accept: ");
        head.extend_from_slice(&accept);
        head.extend_from_slice(b"\r\n\r\n");
        let lf = String::from_utf8(head.clone())
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes();
        for head in [head, lf] {
            let mut r = ResponseReader::default();
            r.push(&head);
            let resp = poll(&mut r, false).expect("accepted").expect("complete");
            assert_eq!(resp.headers.len(), 303);
            assert_eq!(resp.headers[299], ("X-Many-299".into(), "299".into()));
        }
        let mut bad = b"HTTP/1.1 403 Forbidden\r\n".to_vec();
        for i in 0..100 {
            bad.extend_from_slice(format!("X-Many-{i}: {i}\r\n").as_bytes());
        }
        bad.extend_from_slice(b"Content-Length: 2\r\n\r\nno");
        let mut r = ResponseReader::default();
        r.push(&bad);
        match poll(&mut r, true) {
            Err(ConnectError::Handshake(HandshakeError::BadStatus { status, body, .. })) => {
                assert_eq!((status, &body[..]), (403, &b"no"[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    /// What the reader refuses, as before: EOF within the head, a head over
    /// `MAX_RESPONSE` (trickled: parsed a bounded number of times), a
    /// status line that is not HTTP (refused once that line ends, before
    /// the head does), a body cut short by EOF (what came is kept).
    #[test]
    fn eof_oversized_head_bad_status_line_and_short_body() {
        let mut r = ResponseReader::default();
        r.push(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: web");
        assert!(matches!(poll(&mut r, false), Ok(None)));
        match poll(&mut r, true) {
            Err(ConnectError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }

        let mut big = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        pad_headers(&mut big, MAX_RESPONSE + 100);
        let mut r = ResponseReader::default();
        let mut refused = None;
        for piece in big.chunks(7) {
            r.push(piece);
            let res = poll(&mut r, false);
            assert!(r.parses.0 <= 3, "{} full parses", r.parses.0);
            match res {
                Ok(None) => assert!(r.buf.len() <= MAX_RESPONSE),
                Ok(Some(_)) => panic!("accepted"),
                Err(e) => {
                    refused = Some(e.to_string());
                    break;
                }
            }
        }
        let refused = refused.expect("refused");
        assert!(refused.contains("response head too large"), "{refused}");

        let mut r = ResponseReader::default();
        let mut refused = false;
        for (i, b) in b"HTTP/1.1 1O1 Nope\r\nUpgrade: websocket\r\n"
            .iter()
            .enumerate()
        {
            r.push(&[*b]);
            if let Err(ConnectError::Handshake(HandshakeError::InvalidResponse(_))) =
                poll(&mut r, false)
            {
                assert!(i <= 18, "refused at {i}");
                refused = true;
                break;
            }
        }
        assert!(refused);

        let mut r = ResponseReader::default();
        r.push(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nnot ");
        assert!(matches!(poll(&mut r, false), Ok(None)));
        r.push(b"al");
        assert!(matches!(poll(&mut r, false), Ok(None)));
        match poll(&mut r, true) {
            Err(ConnectError::Handshake(HandshakeError::BadStatus {
                status: 403, body, ..
            })) => {
                assert_eq!(body, b"not al")
            }
            other => panic!("{other:?}"),
        }
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
