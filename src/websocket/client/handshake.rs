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
use crate::http::Stream;
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
            let pem = std::fs::read(path).map_err(|e| {
                ConnectError::Io(io::Error::new(
                    e.kind(),
                    format!("ca_certs {}: {e}", path.display()),
                ))
            })?;
            crate::tls::client_config(Some(&pem)).map_err(|e| {
                ConnectError::Io(io::Error::new(
                    e.kind(),
                    format!("ca_certs {}: {e}", path.display()),
                ))
            })?
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
                Err(e) => return Err(stream_error(stream, e)),
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

/// Starts connecting: immediate errors are returned (and `on_done` is not
/// called); later ones go to `on_done`, as does the success.
pub(super) fn start_connect(
    url: &str,
    opts: ConnectOptions,
    handler: Box<dyn WebSocketHandler>,
    on_done: OnDone,
) -> Result<ConnId, ConnectError> {
    let url = WsUrl::parse(url)?;
    let tls = tls_for(&url, &opts)?;
    let literal = url
        .host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| vec![SocketAddr::new(ip, url.port)]);
    start_connect_to(url, tls, literal, opts, handler, on_done)
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
    let lp = IOLoop::current();
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
