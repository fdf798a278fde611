//! The listener and the HTTP/1.1 server connection. The requests are
//! framed in the received bytes by a [`RequestReader`] (linear parsing
//! cost, pipelining, bodies; see `reader`).

use std::any::Any;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::Interest;

use super::gunzip::Gunzip;
use super::linger::{Lingering, HTTP_LINGER};
use super::pending::{PendingReply, Taken};
use super::reader::{HeadPoll, RequestReader};
use super::request::{HeadLimits, Request};
use super::response::{http_date_now, BodyFraming, FileBody, Response};
use super::stream::Stream;
use super::{AfterAnswer, BodySink, HttpLimits, Reply, Service, Upgrade};
use crate::ioloop::{deadline_after, panic_message, Action, ConnId, IOLoop, Pollable, Readiness};

/// Accepts handled per readiness event before yielding to other work.
const ACCEPT_BUDGET: usize = 512;
/// Back-off when the process is out of file descriptors.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// How much of a file body ([`Response::set_file_body`]) is read at once:
/// Tornado's `StaticFileHandler` piece.
const FILE_PIECE: usize = 64 * 1024;

/// How many file pieces one flush sends at most (1 MiB): a fast client
/// downloading a large file must not hold the loop for the whole file.
const FILE_PIECES_PER_FLUSH: usize = 16;

/// Starts serving `service` on `addr` in the current thread's IOLoop and
/// returns the bound address (port 0 picks a free port).
///
/// # Errors
/// Binding or registering the listener failed.
pub fn listen(
    addr: SocketAddr,
    service: Rc<dyn Service>,
    limits: HttpLimits,
) -> io::Result<SocketAddr> {
    listen_with(addr, service, limits, false)
}

/// Like [`listen`], with `SO_REUSEPORT` when `reuse_port` (for one
/// listener per worker thread).
///
/// # Errors
/// Binding or registering the listener failed.
///
/// # Panics
/// Never in practice: the registration just inserted is looked up by its own id.
pub fn listen_with(
    addr: SocketAddr,
    service: Rc<dyn Service>,
    limits: HttpLimits,
    reuse_port: bool,
) -> io::Result<SocketAddr> {
    listen_inner(addr, service, limits, reuse_port, None)
}

/// Like [`listen_with`], serving HTTPS (and `wss://`): every accepted
/// connection is a TLS session with `tls` (Tornado's
/// `HTTPServer(app, ssl_options=...)`). The handshake counts against
/// `limits.request_timeout`, which runs from accept: one not done by then
/// is closed quietly (Tornado has no handshake timeout of its own; there
/// it counts against the header timeout, `idle_connection_timeout` or one
/// hour). A failed handshake is logged at `warn` with the peer's address,
/// as Tornado's `SSL Error on ...`.
///
/// # Errors
/// Binding or registering the listener failed.
#[cfg(feature = "tls")]
pub fn listen_tls(
    addr: SocketAddr,
    service: Rc<dyn Service>,
    limits: HttpLimits,
    reuse_port: bool,
    tls: &crate::tls::ServerTls,
) -> io::Result<SocketAddr> {
    listen_inner(
        addr,
        service,
        limits,
        reuse_port,
        Some(tls.config().clone()),
    )
}

/// The TLS configuration of a listener (`None`: plain HTTP).
#[cfg(feature = "tls")]
type TlsConfig = Option<std::sync::Arc<rustls::ServerConfig>>;
#[cfg(not(feature = "tls"))]
type TlsConfig = Option<std::convert::Infallible>;

fn listen_inner(
    addr: SocketAddr,
    service: Rc<dyn Service>,
    limits: HttpLimits,
    reuse_port: bool,
    tls: TlsConfig,
) -> io::Result<SocketAddr> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    sock.set_nonblocking(true)?;
    // Linux copies TCP_NODELAY from the listener to every accepted socket,
    // which saves one setsockopt per connection (see `accept_one`).
    sock.set_nodelay(limits.nodelay)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    if let Some(d) = limits.defer_accept.filter(|d| !d.is_zero()) {
        // An old kernel without it still serves; just less efficiently.
        if let Err(e) = set_defer_accept(&sock, d) {
            log::debug!("TCP_DEFER_ACCEPT: {e}");
        }
    }
    let std_listener: std::net::TcpListener = sock.into();
    let listener = TcpListener::from_std(std_listener);
    let local = listener.local_addr()?;
    let lp = IOLoop::current();
    let head_limits = HeadLimits {
        max_head_bytes: limits.max_header_size,
        max_headers: limits.max_header_count,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shared = Rc::new(ConnShared {
        service,
        limits,
        head_limits,
        tls,
    });
    let mut pending = Some(listener);
    let id = lp.insert(|_| {
        Box::new(Listener {
            listener: pending.take().unwrap_or_else(|| unreachable!()),
            shared,
            emfile: false,
            retry_armed: Rc::default(),
        })
    });
    let res = lp.with_conn_now(id, |p| {
        let l = p.as_any_mut().downcast_mut::<Listener>().expect("listener");
        lp.register(&mut l.listener, id, Interest::READABLE)
    });
    if let Some(Err(e)) = res {
        lp.remove(id);
        return Err(e);
    }
    log::info!("listening on {scheme}://{local}");
    Ok(local)
}

pub(crate) struct ConnShared {
    pub(crate) service: Rc<dyn Service>,
    pub(crate) limits: HttpLimits,
    head_limits: HeadLimits,
    tls: TlsConfig,
}

struct Listener {
    listener: TcpListener,
    shared: Rc<ConnShared>,
    emfile: bool,
    /// A retry after running out of file descriptors is scheduled (its
    /// timer clears this when it fires).
    retry_armed: Rc<std::cell::Cell<bool>>,
}

/// Listeners kept open during a graceful shutdown (`cyclone::shutdown`):
/// while the loop is shutting down they answer new connections with 503,
/// and HTTP requests get 503 instead of reaching the application.
#[derive(Default, Clone)]
pub(crate) struct Draining(Rc<std::cell::RefCell<Vec<ConnId>>>);

impl Draining {
    /// Listeners still open and answering 503.
    pub(crate) fn listeners(lp: &IOLoop) -> usize {
        lp.local::<Draining>().0.borrow().len()
    }

    /// The shutdown is over: close the draining listeners and serve
    /// normally again if the loop is ever restarted.
    pub(crate) fn finish(lp: &IOLoop) {
        let ids = std::mem::take(&mut *lp.local::<Draining>().0.borrow_mut());
        for id in ids {
            lp.remove_handler(id);
        }
        lp.set_shutting_down(false);
    }
}

/// Answers 503 and closes (over plain HTTP; a TLS listener just closes:
/// the answer would need a handshake first).
fn refuse_503(stream: &mut TcpStream, reason: &str, plain: bool) {
    // Read what already arrived (with TCP_DEFER_ACCEPT, the request): a
    // socket closed with unread bytes sends RST, which can destroy the 503
    // before the client reads it; drained, the close is a FIN.
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        match stream.read(&mut sink) {
            Ok(n) if n == sink.len() => continue,
            _ => break,
        }
    }
    if !plain {
        return;
    }
    let mut out = Vec::new();
    Response::error(503, Some(reason)).serialize(&mut out, false, false, &http_date_now());
    let _ = stream.write(&out);
}

impl Pollable for Listener {
    fn shutdown(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        // Keep listening during the grace period, answering 503, so new
        // clients get a clear answer rather than a refused connection.
        // Once, however many times `shutdown` is called: the count of
        // draining listeners is what the grace check compares with.
        let draining = lp.local::<Draining>();
        let mut ids = draining.0.borrow_mut();
        if !ids.contains(&id) {
            log::info!("listener draining: new connections get 503");
            ids.push(id);
        }
        Action::Keep
    }

    fn deregister(&mut self, registry: &mio::Registry) {
        let _ = registry.deregister(&mut self.listener);
    }

    fn ready(&mut self, lp: &IOLoop, id: ConnId, _r: Readiness) -> Action {
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if self.emfile {
                        log::info!("accepting again after running out of file descriptors");
                        self.emfile = false;
                    }
                    self.accept_one(lp, stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Action::Keep,
                Err(e) if is_fd_exhaustion(&e) => {
                    // Neither spin nor die: pause accepting, retry shortly.
                    // One retry at a time: every connection arriving
                    // meanwhile raises an edge, and a timer for each
                    // would multiply the retries.
                    if !self.emfile {
                        log::warn!("accept: {e}; pausing accepts for {EMFILE_BACKOFF:?}");
                        lp.count(crate::ioloop::Counter::AcceptEmfile, 1);
                        self.emfile = true;
                    }
                    if !self.retry_armed.replace(true) {
                        let armed = Rc::clone(&self.retry_armed);
                        lp.call_later(EMFILE_BACKOFF, move || {
                            armed.set(false);
                            let lp = IOLoop::current();
                            lp.serve_now(id, Readiness::readable());
                        });
                    }
                    return Action::Keep;
                }
                Err(e) => {
                    log::debug!("accept: {e}");
                }
            }
        }
        lp.mark_readable(id);
        Action::Keep
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Sets `TCP_DEFER_ACCEPT` (whole seconds, at least 1) on a listener.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_defer_accept(sock: &socket2::Socket, d: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs: libc::c_int = d.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
    // SAFETY: `sock` is an open socket borrowed for the whole call; the
    // option value points to a live `c_int` on this stack frame and the
    // length passed is exactly its size; setsockopt does not keep the pointer.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_defer_accept(_sock: &socket2::Socket, _d: Duration) -> io::Result<()> {
    Ok(())
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == 24 || code == 23)
}

impl Listener {
    fn accept_one(&mut self, lp: &IOLoop, mut stream: TcpStream, peer: SocketAddr) {
        let limits = &self.shared.limits;
        // Inherited from the listener on Linux; elsewhere set it here.
        if limits.nodelay && !cfg!(target_os = "linux") {
            let _ = stream.set_nodelay(true);
        }
        if lp.is_shutting_down() {
            lp.count(crate::ioloop::Counter::HttpRefused503, 1);
            refuse_503(
                &mut stream,
                "server shutting down",
                self.shared.tls.is_none(),
            );
            return;
        }
        if lp.registrations() > limits.max_connections {
            lp.count(crate::ioloop::Counter::HttpRefused503, 1);
            crate::ioloop::warn_limited("max_connections", || {
                format!(
                    "{peer} refused with 503: max_connections ({}) reached",
                    limits.max_connections
                )
            });
            refuse_503(
                &mut stream,
                "too many connections",
                self.shared.tls.is_none(),
            );
            return;
        }
        let stream = match &self.shared.tls {
            None => Stream::plain(stream),
            #[cfg(feature = "tls")]
            Some(config) => match Stream::tls_server(stream, config.clone()) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("TLS session for {peer} refused: {e}");
                    return;
                }
            },
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
        };
        let conn = HttpConn {
            stream: Some(stream),
            peer,
            reader: RequestReader::new(),
            out: Vec::new(),
            out_at: 0,
            file: None,
            sent: 0,
            more_file: false,
            shared: self.shared.clone(),
            deadline: Some(lp.deadline_after(limits.request_timeout)),
            started: None,
            paused: false,
            close_after_flush: false,
            linger: false,
            peer_eof: false,
            more: false,
            served: 0,
            waiting: None,
            upgrading: None,
            sink: None,
            gunzip: None,
        };
        let mut conn = Some(Box::new(conn));
        let cid = lp.insert(|_| conn.take().unwrap_or_else(|| unreachable!()) as Box<dyn Pollable>);
        let ok = lp.with_conn_now(cid, |p| {
            let c = p
                .as_any_mut()
                .downcast_mut::<HttpConn>()
                .expect("http conn");
            let s = c.stream.as_mut().expect("stream");
            lp.register(s, cid, Interest::READABLE | Interest::WRITABLE)
        });
        match ok {
            Some(Ok(())) => {
                log::debug!("{cid} accepted from {peer}");
                lp.count(crate::ioloop::Counter::ConnectionsAccepted, 1);
                // On loopback the request is usually queued already.
                lp.serve_now(cid, Readiness::readable());
            }
            _ => {
                lp.remove(cid);
            }
        }
    }
}

/// An HTTP/1.1 server connection (before any upgrade).
struct HttpConn {
    stream: Option<Stream>,
    peer: SocketAddr,
    /// Received bytes not yet consumed, and the request whose head
    /// arrived and whose body is still arriving.
    reader: RequestReader,
    /// Response bytes; the kernel has taken `out[..out_at]`. Emptied
    /// (and `out_at` zeroed) once it took all, so `out.is_empty()` means
    /// nothing is queued.
    out: Vec<u8>,
    /// How much of `out` the kernel has taken: a large response leaves in
    /// many writes, and moving the rest to the front after each was
    /// quadratic in its size.
    out_at: usize,
    /// The rest of a file that ends the response in `out`
    /// ([`Response::set_file_body`]): read into `out` a piece at a time
    /// once `out` has left. While it lasts, no further request is answered.
    file: Option<FileBody>,
    /// Response bytes the kernel has taken, in all: progress, for the idle
    /// deadline.
    sent: u64,
    /// The last flush stopped at its file budget with the kernel still
    /// taking bytes: no writable edge will come, so the loop is asked to
    /// serve the connection again next tick (other connections are served
    /// in between).
    more_file: bool,
    shared: Rc<ConnShared>,
    /// When the connection is dropped (408 first if a request is under
    /// way): the idle timeout between requests, pushed back while a
    /// response is being taken by the peer; `request_timeout` from a
    /// request's first byte (or from accept for the first request).
    deadline: Option<Instant>,
    /// When the current request's first byte was seen; `None` between
    /// requests.
    started: Option<Instant>,
    /// Reading and parsing are paused: more than `write_high_water` bytes
    /// of responses wait for the peer (see [`HttpConn::backed_up`]).
    paused: bool,
    close_after_flush: bool,
    /// The close follows an error answer: linger (see `linger`) instead of
    /// closing with the peer's unread bytes.
    linger: bool,
    /// The peer closed its sending side (a read returned 0): nothing more
    /// can arrive, so closing cannot turn into a reset.
    peer_eof: bool,
    /// The last read stopped at the buffer cap, not at an empty socket:
    /// read again once the requests read are answered.
    more: bool,
    served: u64,
    /// The request being answered later ([`Reply::Pending`]): until its
    /// answer is complete, no further request is answered.
    waiting: Option<Box<Waiting>>,
    /// Where the pending request's body goes as it arrives, when the
    /// service takes it so ([`Service::stream_body`]).
    sink: Option<Box<dyn BodySink>>,
    /// The pending request's body is gzip to decompress
    /// ([`HttpLimits::decompress_request`](super::HttpLimits::decompress_request)).
    gunzip: Option<Box<Gunzip>>,
    /// The awaited reply turned out to be an upgrade, taken by `pump`:
    /// the connection switches protocols as soon as its caller can.
    upgrading: Option<Box<dyn Upgrade>>,
}

/// A request whose answer is given later ([`PendingReply`]).
struct Waiting {
    reply: PendingReply,
    /// The request, for the access line (when access lines are logged).
    req: Option<Request>,
    head_only: bool,
    keep_alive: bool,
    /// HTTP/1.1: a streamed body goes as chunks (else up to the close).
    chunked: bool,
    /// How the streamed body's pieces go out, once the head has.
    body: BodyFraming,
    /// The streamed response's status, for the access line.
    status: u16,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        // Whatever dropped the connection (the peer, an error, the idle
        // timeout, shutdown), a reply still awaited learns it.
        if let Some(w) = self.waiting.take() {
            // A complete answer it goes before taking is logged all the
            // same, as Tornado's `finish()` logs it on a closed
            // connection; the reply's hook (`on_finish`) runs after.
            if let (Some(status), Some(req)) = (w.reply.untaken_status(), &w.req) {
                let elapsed = match (self.started, IOLoop::existing()) {
                    (Some(s), Some(lp)) => lp.time().saturating_duration_since(s),
                    _ => Duration::ZERO,
                };
                self.shared.service.log_request(req, status, elapsed);
            }
            w.reply.close();
        }
        // A body still arriving: its handler learns it (as a callback:
        // not inside the loop's own bookkeeping).
        // (`existing` only then: every upgraded connection drops one of
        // these.)
        if let Some(mut sink) = self.sink.take() {
            if let Some(lp) = IOLoop::existing() {
                lp.add_callback(move || sink.on_connection_close());
            }
        }
    }
}

/// A final answer cannot be interim (1xx): it would leave the client
/// waiting for the real one, and the next response would be taken as this
/// request's. Nor can it be 600 or more, which has no status line. Such a
/// response becomes a 500.
fn final_response(resp: Response, peer: SocketAddr, req: Option<&Request>) -> Response {
    if (200..=599).contains(&resp.status()) {
        return resp;
    }
    log::error!(
        "{peer} answered {} with {} as its final status: sent 500",
        req.map_or("a request", |r| r.uri()),
        resp.status()
    );
    Response::error(500, None)
}

/// Runs a service's [`AfterAnswer`] with the `status` sent, logging and
/// counting a panic instead of unwinding into the loop.
fn run_after(lp: &IOLoop, after: Option<AfterAnswer>, status: u16) {
    let Some(after) = after else {
        return;
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| after(status))) {
        log::error!("a hook after an answer panicked: {}", panic_message(&panic));
        lp.count(crate::ioloop::Counter::HandlerPanics, 1);
    }
}

enum Step {
    /// Nothing more can be done until more bytes arrive.
    NeedMore,
    /// One request answered; try the next.
    Again,
    /// Stop reading: the connection will close after flushing.
    Close,
    /// The answer comes later: stop answering requests until it is done.
    Wait,
    /// The connection was upgraded.
    Upgrade(Box<dyn Upgrade>),
}

impl HttpConn {
    /// Reads what the kernel has. `closed` is the readiness' hang-up or
    /// error flag: the peer's FIN/RST may have arrived in the same
    /// edge-triggered event as its last bytes, so a short read does not
    /// mean the socket is drained of its EOF; read on until 0 or an error
    /// (otherwise the connection lingers until the request timeout).
    fn read_some(&mut self, lp: &IOLoop, closed: bool) -> io::Result<bool> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(true);
        };
        let limits = &self.shared.limits;
        // While an answer is awaited, reading is only to notice the peer
        // leaving: what it pipelines meanwhile is kept up to one head and
        // one read's worth, the rest waits in the kernel.
        let cap = match self.waiting {
            Some(_) => limits.max_header_size + 65536,
            None => limits.max_header_size + limits.max_body_size + 65536,
        };
        if self.reader.buffered().len() > cap {
            // Nothing was consumed since the cap was reached (an answer is
            // awaited): leave the rest in the kernel, whose window then
            // stops the peer, and read again once this is consumed.
            self.more = true;
            return Ok(false);
        }
        let mut rbuf = lp.take_read_buf();
        let mut eof = false;
        loop {
            match stream.read(&mut rbuf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.reader.push(&rbuf[..n]);
                    if self.reader.buffered().len() > cap {
                        // More may be waiting, and no new edge will say
                        // so: read again once this is consumed. (Checked
                        // at every read: while an answer is awaited,
                        // short reads add up too.)
                        self.more = true;
                        break;
                    }
                    // Drained, unless a TLS close_notify (which raises no
                    // hang-up flag) ended the read: then read the 0.
                    if n < rbuf.len() && !closed && !stream.eof_pending() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    lp.give_read_buf(rbuf);
                    return Err(e);
                }
            }
        }
        lp.give_read_buf(rbuf);
        Ok(eof)
    }

    /// Queues `resp` for the peer and logs its access line; returns its
    /// status.
    fn respond(
        &mut self,
        lp: &IOLoop,
        req: Option<&Request>,
        head_only: bool,
        mut resp: Response,
        keep_alive: bool,
    ) -> u16 {
        let keep_alive = keep_alive && !resp.asks_close();
        with_date(lp, |date| {
            resp.serialize(&mut self.out, head_only, keep_alive, date)
        });
        self.file = resp.take_file_body(head_only);
        let elapsed = self
            .started
            .map(|s| lp.time().saturating_duration_since(s))
            .unwrap_or_default();
        if let Some(req) = req {
            self.shared.service.log_request(req, resp.status(), elapsed);
        }
        self.served += 1;
        if !keep_alive {
            self.close_after_flush = true;
        }
        resp.status()
    }

    /// Takes what the awaited reply has for the peer into `out`. Returns
    /// true once no reply is awaited any more (it was complete): the
    /// connection then goes on to the requests behind it.
    fn pump(&mut self, lp: &IOLoop, id: ConnId) -> bool {
        let Some(w) = self.waiting.as_mut() else {
            return true;
        };
        let done = match w.reply.take() {
            Taken::Nothing => false,
            Taken::Abort => {
                // No last chunk: the client sees the body cut short.
                if let Some(w) = self.waiting.take() {
                    w.reply.set_queued(0);
                    // (An aborted answer is not finished: no hook.)
                    drop(w.reply.take_after());
                }
                self.close_after_flush = true;
                self.linger = true;
                return true;
            }
            Taken::Upgrade(up) => {
                let w = self.waiting.take().expect("waiting");
                w.reply.set_queued(0);
                if self.refused_for_shutdown(lp) {
                    return true;
                }
                if let Some(req) = &w.req {
                    self.shared.service.log_request(req, 101, Duration::ZERO);
                }
                self.upgrading = Some(up);
                run_after(lp, w.reply.take_after(), 101);
                return true;
            }
            Taken::Whole(resp) => {
                let w = self.waiting.take().expect("waiting");
                let resp = final_response(resp, self.peer, w.req.as_ref());
                let keep_alive = w.keep_alive && !self.close_after_flush;
                let status = self.respond(lp, w.req.as_ref(), w.head_only, resp, keep_alive);
                // The answer is the connection's now: nothing is awaited.
                w.reply.set_queued(0);
                self.end_wait(lp, id);
                run_after(lp, w.reply.take_after(), status);
                return true;
            }
            Taken::Head(resp, more, done) => {
                let resp = final_response(resp, self.peer, w.req.as_ref());
                let keep_alive = w.keep_alive && !self.close_after_flush && !resp.asks_close();
                w.body = with_date(lp, |date| {
                    resp.serialize_streaming(
                        &mut self.out,
                        w.head_only,
                        w.chunked,
                        keep_alive,
                        date,
                    )
                });
                if !keep_alive || w.body == BodyFraming::UntilClose {
                    // HTTP/1.0 without a length: the body ends with the
                    // connection.
                    self.close_after_flush = true;
                }
                w.status = resp.status();
                let _ = w.body.write(&mut self.out, &more);
                done
            }
            Taken::Body(more, done) => {
                let _ = w.body.write(&mut self.out, &more);
                done
            }
        };
        if !done && w.body != BodyFraming::Overrun {
            return false;
        }
        let w = self.waiting.take().expect("waiting");
        // Taken before a short or long body closes the reply (which
        // would run it as a callback): it runs after the access line.
        let after = w.reply.take_after();
        if w.body.end(&mut self.out).is_err() {
            // Tornado's `HTTPOutputError`: more or fewer bytes than the
            // handler's Content-Length. The client sees a body cut short.
            log::error!(
                "streamed answer does not match its Content-Length ({}); closing the connection",
                if w.body == BodyFraming::Overrun {
                    "more bytes written"
                } else {
                    "fewer bytes written"
                }
            );
            w.reply.close();
            self.close_after_flush = true;
            self.linger = true;
        }
        if let Some(req) = &w.req {
            let elapsed = self
                .started
                .map(|s| lp.time().saturating_duration_since(s))
                .unwrap_or_default();
            self.shared.service.log_request(req, w.status, elapsed);
        }
        self.served += 1;
        // The answer is the connection's now: nothing is awaited.
        w.reply.set_queued(0);
        self.end_wait(lp, id);
        run_after(lp, after, w.status);
        true
    }

    /// The awaited answer is complete: the connection is between requests
    /// again, and those that arrived meanwhile are answered next tick.
    fn end_wait(&mut self, lp: &IOLoop, id: ConnId) {
        self.started = None;
        self.deadline = Some(lp.deadline_after(self.shared.limits.idle_timeout));
        if !self.reader.is_empty() || self.more {
            lp.mark_readable(id);
        }
    }

    fn error(&mut self, lp: &IOLoop, status: u16, msg: &str) {
        if self.file.is_some() {
            // A file is still being sent: the error cannot follow it
            // inside its Content-Length; the connection ends after it.
            log::warn!(target: "cyclone::access", "{status} ({}) {msg}; closing after the file being sent", self.peer.ip());
            self.close_after_flush = true;
            self.linger = true;
            return;
        }
        // A HEAD's answer has no content, an error's neither (RFC 9110 §9.3.2).
        let head_only = self.reader.pending().is_some_and(|r| r.method() == "HEAD");
        let resp = Response::error(status, Some(msg));
        with_date(lp, |date| {
            resp.serialize(&mut self.out, head_only, false, date)
        });
        log::warn!(target: "cyclone::access", "{status} ({}) {msg}", self.peer.ip());
        self.close_after_flush = true;
        self.linger = true;
    }

    /// Whether more response bytes wait for the peer than
    /// `HttpLimits::write_high_water`: then no further request is read or
    /// answered until the kernel has taken the excess, so a peer that
    /// pipelines requests and does not read the answers cannot make the
    /// server buffer them without bound.
    fn backed_up(&self) -> bool {
        self.file.is_some() || self.queued() > self.shared.limits.write_high_water
    }

    /// Every response byte reached the kernel: none waits in `out`, in a
    /// file, or as TLS records rustls holds (the writable edge that comes
    /// for those flushes them).
    fn all_sent(&self) -> bool {
        self.out.is_empty()
            && self.file.is_none()
            && !self.stream.as_ref().is_some_and(Stream::has_pending)
    }

    /// Response bytes the kernel has not taken yet.
    fn queued(&self) -> usize {
        self.out.len() - self.out_at
    }

    fn step(&mut self, lp: &IOLoop, id: ConnId) -> Step {
        // Whether the pending request's head completed in this call: it
        // then gets its `100 Continue` if its body is not all here.
        let mut new_head = false;
        if self.reader.pending().is_none() {
            let polled = self.reader.poll_head(&self.shared.head_limits);
            if polled == Ok(HeadPoll::Idle) {
                return Step::NeedMore;
            }
            if self.started.is_none() {
                // A request starts: from its first byte it has
                // `request_timeout` to arrive whole, however it trickles
                // (the first one since accept, which set that deadline).
                let now = lp.time();
                self.started = Some(now);
                if self.served > 0 {
                    self.deadline = Some(deadline_after(now, self.shared.limits.request_timeout));
                }
            }
            match polled {
                Ok(HeadPoll::Idle | HeadPoll::Partial) => return Step::NeedMore,
                Err(e) => {
                    self.error(lp, e.status(), &e.to_string());
                    return Step::Close;
                }
                Ok(HeadPoll::Head) => {}
            }
            let tls = self.stream.as_ref().is_some_and(Stream::is_tls);
            let limits = &self.shared.limits;
            let req = self.reader.pending_mut().expect("a complete head");
            req.set_peer(Some(self.peer));
            if tls {
                req.set_https(true);
            }
            if limits.xheaders {
                req.apply_xheaders(&limits.trusted_downstream);
            }
            self.gunzip = (limits.decompress_request && req.consume_gzip_encoding())
                .then(|| Box::new(Gunzip::new(limits.max_body_size as u64)));
            if req.has_unmet_expectation() {
                self.error(lp, 417, "Unsupported Expect value");
                return Step::Close;
            }
            if (req.content_length() > 0 || req.is_chunked()) && !lp.is_shutting_down() {
                // Does the service take this body as it arrives?
                let service = self.shared.service.clone();
                let req = self.reader.pending().expect("a complete head");
                match catch_unwind(AssertUnwindSafe(|| service.stream_body(req))) {
                    Ok(sink) => self.sink = sink,
                    Err(panic) => return self.handler_panicked(lp, &panic, true),
                }
            }
            // (A streamed body's length is checked after the sink's early
            // answer: a request refused from its head gets that answer.)
            let req = self.reader.pending().expect("a complete head");
            if self.sink.is_none() && req.content_length() > self.max_body() {
                self.error(lp, 413, "Request body too large");
                return Step::Close;
            }
            new_head = true;
        }
        if self.sink.is_some() {
            return self.step_streamed(lp, id, new_head);
        }
        // The deadline stays the one set when the request started.
        let max_body = self.shared.limits.max_body_size as u64;
        let req = match self.reader.take_request(&self.shared.head_limits, max_body) {
            Ok(Some(req)) => req,
            Ok(None) => {
                self.continue_if_expected(new_head);
                return Step::NeedMore;
            }
            Err(e) => {
                // A chunked body that is malformed or over a limit (413,
                // 400, 431), found as it arrives.
                self.error(lp, e.status(), &e.to_string());
                return Step::Close;
            }
        };
        let req = match self.gunzip.take() {
            Some(mut gunzip) => match inflate(&mut gunzip, req) {
                Ok(req) => req,
                Err(why) => {
                    self.error(lp, 400, &why);
                    return Step::Close;
                }
            },
            None => req,
        };
        let service = self.shared.service.clone();
        self.answer(lp, id, req, false, |req| service.dispatch_then(req))
    }

    /// A streamed body refused partway (not gzip, too large once
    /// decompressed): the handler learns that its body ends here, as in
    /// `step_streamed`, and the peer gets `why` with a 400.
    fn refuse_streamed(&mut self, lp: &IOLoop, why: &str) -> Step {
        if let Some(mut sink) = self.sink.take() {
            lp.add_callback(move || sink.on_connection_close());
        }
        self.gunzip = None;
        self.error(lp, 400, why);
        Step::Close
    }

    /// The body limit of the pending request: its sink's, else the
    /// connection's.
    fn max_body(&self) -> u64 {
        self.sink
            .as_ref()
            .and_then(|s| s.max_body_size())
            .unwrap_or(self.shared.limits.max_body_size as u64)
    }

    /// RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` may
    /// wait for this before sending the body (`Content-Length` or
    /// chunked). A request refused from its head alone got its final
    /// status instead; a body already here needs no invitation.
    fn continue_if_expected(&mut self, new_head: bool) {
        if new_head && self.reader.pending().is_some_and(Request::expects_continue) {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
    }

    /// The pending request's body goes to its [`BodySink`] as it arrives.
    fn step_streamed(&mut self, lp: &IOLoop, id: ConnId, new_head: bool) -> Step {
        loop {
            let sink = self.sink.as_mut().expect("a sink");
            match catch_unwind(AssertUnwindSafe(|| sink.early_reply())) {
                Ok(None) => {}
                Ok(Some(reply)) => {
                    // Decided before the body ended: answered, then the
                    // connection closes (lingering over the unread rest).
                    self.sink = None;
                    self.linger = true;
                    let req = self.reader.pending().expect("a pending request").clone();
                    return self.answer(lp, id, req, true, |_| reply);
                }
                Err(panic) => return self.handler_panicked(lp, &panic, true),
            }
            let max_body = self.max_body();
            let piece = match self
                .reader
                .take_body_piece(&self.shared.head_limits, max_body)
            {
                Ok(Some(piece)) => piece,
                Ok(None) => unreachable!("a pending request"),
                Err(e) => {
                    // Refused partway (over the limit, malformed): the
                    // handler learns that its body ends here, as Tornado
                    // calls `on_connection_close` (a callback, as in
                    // `drop`).
                    if let Some(mut sink) = self.sink.take() {
                        lp.add_callback(move || sink.on_connection_close());
                    }
                    self.error(lp, e.status(), &e.to_string());
                    return Step::Close;
                }
            };
            let sink = self.sink.as_mut().expect("a sink");
            if !piece.data.is_empty() {
                let gunzip = self.gunzip.as_deref_mut();
                let fed = catch_unwind(AssertUnwindSafe(|| match gunzip {
                    Some(gunzip) => gunzip.feed(&piece.data, &mut |data| sink.data(data)),
                    None => {
                        sink.data(&piece.data);
                        Ok(())
                    }
                }));
                match fed {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => return self.refuse_streamed(lp, &why),
                    Err(panic) => return self.handler_panicked(lp, &panic, true),
                }
                // A streamed body may be large: `request_timeout` runs
                // between its pieces, not over all of it.
                self.deadline = Some(lp.deadline_after(self.shared.limits.request_timeout));
            }
            let Some(req) = piece.done else {
                if piece.data.is_empty() {
                    self.continue_if_expected(new_head);
                    return Step::NeedMore;
                }
                continue;
            };
            if let Some(gunzip) = self.gunzip.take() {
                if let Err(why) = gunzip.finish() {
                    return self.refuse_streamed(lp, &why);
                }
            }
            let sink = self.sink.as_mut().expect("a sink");
            match catch_unwind(AssertUnwindSafe(|| sink.early_reply())) {
                Ok(None) => {}
                Ok(Some(reply)) => {
                    self.sink = None;
                    return self.answer(lp, id, req, false, |_| reply);
                }
                Err(panic) => return self.handler_panicked(lp, &panic, false),
            }
            let sink = self.sink.take().expect("a sink");
            return self.answer(lp, id, req, false, |req| sink.finish(req));
        }
    }

    /// A handler panicked outside `answer` (taking a body, or deciding to):
    /// 500, and the connection closes.
    fn handler_panicked(&mut self, lp: &IOLoop, panic: &Box<dyn Any + Send>, linger: bool) -> Step {
        self.sink = None;
        let route = self
            .reader
            .pending()
            .map(|r| format!("{} {}", r.method(), r.uri()));
        log::error!(
            "{} handler for {} panicked: {}",
            self.peer,
            route.as_deref().unwrap_or("a request"),
            panic_message(panic)
        );
        lp.count(crate::ioloop::Counter::HandlerPanics, 1);
        self.linger |= linger;
        let head_only = self.reader.pending().is_some_and(|r| r.method() == "HEAD");
        let for_log = self.reader.pending().cloned();
        self.respond(
            lp,
            for_log.as_ref(),
            head_only,
            Response::error(500, None),
            false,
        );
        Step::Close
    }

    /// Answers `req` with what `call` gives (the service's dispatch, or a
    /// body sink's answer): a response, an answer given later, an upgrade;
    /// then runs its [`AfterAnswer`] once that is queued and logged.
    /// `close` ends the connection after the answer.
    fn answer(
        &mut self,
        lp: &IOLoop,
        id: ConnId,
        req: Request,
        close: bool,
        call: impl FnOnce(Request) -> (Reply, Option<AfterAnswer>),
    ) -> Step {
        if self.refused_for_shutdown(lp) {
            return Step::Close;
        }
        let keep_alive = req.keep_alive() && !close;
        let head_only = req.method() == "HEAD";
        let http11 = req.version_minor() >= 1;
        // The access log needs the request after `dispatch` consumed it:
        // copy it only when access lines can be logged at all (the copy is
        // the raw head, one allocation).
        let for_log =
            log::log_enabled!(target: "cyclone::access", log::Level::Error).then(|| req.clone());
        let reply = catch_unwind(AssertUnwindSafe(|| call(req)));
        match reply {
            Ok((Reply::Response(resp), after)) => {
                let resp = final_response(resp, self.peer, for_log.as_ref());
                let status = self.respond(lp, for_log.as_ref(), head_only, resp, keep_alive);
                run_after(lp, after, status);
            }
            Ok((Reply::Pending(reply), after)) => {
                if let Some(after) = after {
                    reply.then(after);
                }
                reply.attach(id, self.started);
                self.waiting = Some(Box::new(Waiting {
                    reply,
                    req: for_log,
                    head_only,
                    keep_alive,
                    chunked: http11,
                    body: BodyFraming::None,
                    status: 0,
                }));
                if close {
                    self.close_after_flush = true;
                }
                // No request or idle timeout while the answer is awaited
                // (a long poll waits as long as it needs); bytes queued
                // for a peer that does not take them set one again.
                self.deadline = None;
                if !self.pump(lp, id) {
                    return Step::Wait;
                }
                if let Some(up) = self.upgrading.take() {
                    return Step::Upgrade(up);
                }
            }
            Ok((Reply::Upgrade(up), after)) => {
                if let Some(req) = &for_log {
                    self.shared.service.log_request(req, 101, Duration::ZERO);
                }
                run_after(lp, after, 101);
                return Step::Upgrade(up);
            }
            Err(panic) => {
                let what = panic_message(&panic);
                let route = for_log
                    .as_ref()
                    .map(|r| format!("{} {}", r.method(), r.uri()));
                log::error!(
                    "{} handler for {} panicked: {what}",
                    self.peer,
                    route.as_deref().unwrap_or("a request")
                );
                lp.count(crate::ioloop::Counter::HandlerPanics, 1);
                let resp = Response::error(500, None);
                self.respond(lp, for_log.as_ref(), head_only, resp, false);
                return Step::Close;
            }
        }
        self.started = None;
        self.deadline = Some(lp.deadline_after(self.shared.limits.idle_timeout));
        if self.close_after_flush {
            Step::Close
        } else {
            Step::Again
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        self.more_file = false;
        let mut pieces = 0;
        loop {
            while self.out_at < self.out.len() {
                match stream.write(&self.out[self.out_at..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.out_at += n;
                        self.sent += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if self.out_at < self.out.len() {
                // The kernel is full.
                break;
            }
            self.out.clear();
            self.out_at = 0;
            // All of `out` left: the file's next piece.
            let Some(file) = self.file.as_mut() else {
                break;
            };
            if pieces == FILE_PIECES_PER_FLUSH {
                self.more_file = true;
                break;
            }
            pieces += 1;
            file.read_piece(&mut self.out, FILE_PIECE)?;
            if file.remaining() == 0 {
                self.file = None;
            }
        }
        if self.out_at > self.out.len() / 2 {
            // Compacted when more than half is sent: each byte moves at
            // most once on average, and appended responses reuse the room.
            self.out.drain(..self.out_at);
            self.out_at = 0;
        }
        // TLS records the kernel refused (none for plain TCP).
        stream.flush_pending()?;
        if self.out.is_empty() && self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// At the idle deadline with a response still queued (in `out`, or as
    /// TLS records): whether the peer took some of it since the last
    /// writable edge. The kernel wakes a writer only once a third of its
    /// send buffer is free, and that buffer grows to megabytes, so a
    /// client reading a large response slowly but steadily can go longer
    /// than `idle_timeout` between edges; a write now tells. A peer that
    /// took nothing is still dropped.
    fn taking_its_response(&mut self) -> bool {
        if self.started.is_some() || self.linger || self.all_sent() {
            return false;
        }
        let sent = |c: &Self| c.sent + c.stream.as_ref().map_or(0, Stream::records_sent);
        let before = sent(self);
        self.flush().is_ok() && sent(self) != before
    }

    /// Before an HTTPS connection is dropped between responses (idle
    /// timeout, graceful shutdown): its `close_notify`, so that the peer's
    /// TLS sees the end of the session rather than a truncation (RFC 8446
    /// §6.1). Not when part of a response is still unsent: an alert behind
    /// a cut response would make the cut look like a clean end. Best
    /// effort (what the kernel refuses is dropped with the connection); a
    /// no-op for plain TCP.
    fn close_notify_if_idle(&mut self) {
        if self.all_sent() {
            if let Some(stream) = self.stream.as_mut().filter(|s| s.is_tls()) {
                stream.shut_write();
            }
        }
    }

    fn after_io(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        if self.flush().is_err() {
            return Action::Remove;
        }
        if let Some(w) = &self.waiting {
            w.reply.set_queued(self.queued());
            if self.all_sent() {
                // Nothing for the peer to take: no deadline while waiting.
                self.deadline = None;
            } else if self.deadline.is_none() {
                self.deadline = Some(lp.deadline_after(self.shared.limits.idle_timeout));
            }
        }
        if self.more_file {
            // Next tick, after the other connections' events: not
            // `mark_dirty`, whose list the loop flushes until it is empty
            // (the whole file would go in one tick whenever the kernel
            // keeps up). A readable call while the file is pending only
            // flushes (`backed_up`).
            lp.mark_readable(id);
        }
        if self.paused && !self.backed_up() && !self.close_after_flush {
            // The kernel took the excess without filling up, so no writable
            // edge will come: resume reading next tick.
            lp.mark_readable(id);
        }
        if self.close_after_flush && self.all_sent() && self.waiting.is_none() {
            // Lingering also after a plain close (`Connection: close`,
            // HTTP/1.0, a handler's 500): a peer that sent more than the
            // server read (pipelined requests) would otherwise get a reset,
            // which discards the part of the response still in the kernel.
            // Over TLS, Lingering sends the close_notify first.
            if self.linger || !self.peer_eof || self.stream.as_ref().is_some_and(Stream::is_tls) {
                if let Some(stream) = self.stream.take() {
                    return Lingering::start(lp, id, stream, HTTP_LINGER);
                }
            }
            return Action::Remove;
        }
        Action::Keep
    }

    /// During a shutdown, answers 503 (and closes after it) instead of
    /// serving a request or upgrading; whether it did.
    fn refused_for_shutdown(&mut self, lp: &IOLoop) -> bool {
        if !lp.is_shutting_down() {
            return false;
        }
        lp.count(crate::ioloop::Counter::HttpRefused503, 1);
        self.error(lp, 503, "server shutting down");
        true
    }

    /// Writes the upgrade's 101 and hands the stream to the connection it
    /// becomes.
    fn switch(&mut self, lp: &IOLoop, id: ConnId, mut up: Box<dyn Upgrade>) -> Action {
        // The 101 is written from the loop's out buffer: no
        // per-handshake allocation for it.
        if self.out.is_empty() {
            self.out = lp.take_out_buf();
        }
        up.response_head(&mut self.out);
        if self.flush().is_err() {
            return Action::Remove;
        }
        let stream = self.stream.take().expect("stream");
        // What the kernel did not take of the 101 (rare) leads
        // the upgraded connection's write queue.
        // (An empty buffer's capacity must not follow the idle
        // WebSocket: PERF-NOTES §1.)
        let unsent = if self.out.is_empty() {
            lp.give_out_buf(std::mem::take(&mut self.out));
            Vec::new()
        } else {
            self.out.drain(..std::mem::take(&mut self.out_at));
            std::mem::take(&mut self.out)
        };
        let leftover = self.reader.take_all();
        let pending = !leftover.is_empty();
        let conn = up.into_connection(stream, leftover, unsent, id, self.shared.limits.nodelay);
        // `open` runs when the connection is first served: right
        // away through the dirty list (no read syscall), or as a
        // read if frames already arrived behind the request.
        if pending {
            lp.mark_readable(id);
        } else {
            lp.mark_dirty(id);
        }
        lp.count(crate::ioloop::Counter::Upgrades, 1);
        Action::Replace(conn)
    }
}

impl Pollable for HttpConn {
    fn ready(&mut self, lp: &IOLoop, id: ConnId, r: Readiness) -> Action {
        if r.writable && !self.all_sent() {
            let before = self.sent;
            if self.flush().is_err() {
                return Action::Remove;
            }
            if self.sent > before
                && (self.started.is_none() || self.waiting.is_some())
                && !self.linger
            {
                // The peer is taking a response: that is activity, so a
                // slow download is not cut off by the idle timeout. (While
                // a request is under way its own deadline stands.)
                self.deadline = Some(lp.deadline_after(self.shared.limits.idle_timeout));
            }
        }
        if self.waiting.is_some() {
            if r.readable || r.read_closed || r.error {
                // Read on while the answer is awaited, to notice the peer
                // closing (Tornado's `on_connection_close`); a request it
                // pipelines meanwhile waits in the reader (up to the
                // usual cap, then in the kernel).
                match self.read_some(lp, r.read_closed || r.error) {
                    Ok(false) => {}
                    // Gone, or half-closed (Tornado closes then too):
                    // dropping the connection tells the reply.
                    Ok(true) | Err(_) => return Action::Remove,
                }
            }
            return self.after_io(lp, id);
        }
        let resuming = self.paused && !self.backed_up();
        if !resuming && !r.readable && !r.read_closed && !r.error {
            return self.after_io(lp, id);
        }
        if self.close_after_flush {
            return self.after_io(lp, id);
        }
        if self.backed_up() {
            // Leave the peer's bytes in the kernel (its window then stops
            // it) until the responses drain; `after_io` or the next
            // writable edge resumes.
            self.paused = true;
            return self.after_io(lp, id);
        }
        self.paused = false;
        // Readiness that arrived while paused was not acted on: read until
        // the kernel is drained, so a FIN that came meanwhile is seen.
        self.more = false;
        let eof = match self.read_some(lp, r.read_closed || r.error || resuming) {
            Ok(eof) => eof,
            Err(_) => return Action::Remove,
        };
        self.peer_eof |= eof;
        loop {
            match self.step(lp, id) {
                Step::Again if self.backed_up() => {
                    // Requests already read stay in `buf` until it drains.
                    self.paused = true;
                    break;
                }
                Step::Again => continue,
                Step::NeedMore | Step::Wait => break,
                Step::Close => return self.after_io(lp, id),
                Step::Upgrade(up) => return self.switch(lp, id, up),
            }
        }
        if eof && !self.paused {
            // The peer half-closed: answer what was complete, then close.
            // (When paused, the rest is answered first: reading again on
            // resuming sees the EOF again.)
            self.close_after_flush = true;
        }
        if self.more && !self.paused {
            // Bytes left in the kernel raise no new edge: come back for them.
            lp.mark_readable(id);
        }
        self.after_io(lp, id)
    }

    fn deadline(&self, _lp: &IOLoop) -> Option<Instant> {
        self.deadline
    }

    /// Flushes what is queued; `after_io` also resumes the requests that
    /// waited behind a file once it is done.
    fn flush(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        // The awaited reply has news (`PendingReply` marked us dirty).
        self.pump(lp, id);
        if let Some(up) = self.upgrading.take() {
            return self.switch(lp, id, up);
        }
        self.after_io(lp, id)
    }

    fn on_deadline(&mut self, lp: &IOLoop, id: ConnId, now: Instant) -> Action {
        match self.deadline {
            Some(d) if d <= now && self.waiting.is_some() => {
                // Part of an awaited answer is queued: dropped only if the
                // peer took none of it for the idle timeout.
                let before = self.sent + self.stream.as_ref().map_or(0, Stream::records_sent);
                if self.flush().is_err() {
                    return Action::Remove;
                }
                let after = self.sent + self.stream.as_ref().map_or(0, Stream::records_sent);
                if after == before && !self.all_sent() {
                    log::debug!("{id} dropped: the peer took none of a streamed answer");
                    return Action::Remove;
                }
                self.deadline = None;
                self.after_io(lp, id)
            }
            Some(d) if d <= now => {
                if self.taking_its_response() {
                    // Still downloading: activity, as on a writable edge.
                    self.deadline = Some(lp.deadline_after(self.shared.limits.idle_timeout));
                    return self.after_io(lp, id);
                }
                // A request under way gets 408; a connection idle, or whose
                // peer stopped taking its responses, is just dropped.
                if !self.close_after_flush && self.started.is_some() {
                    log::debug!("{id} request timeout");
                    lp.count(crate::ioloop::Counter::HttpRequestTimeouts, 1);
                    self.error(lp, 408, "Request timeout");
                    // A peer that does not take the 408 either is dropped
                    // at the next deadline.
                    self.deadline = Some(now + HTTP_LINGER);
                    return self.after_io(lp, id);
                }
                self.close_notify_if_idle();
                Action::Remove
            }
            _ => Action::Keep,
        }
    }

    fn shutdown(&mut self, _lp: &IOLoop, _id: ConnId) -> Action {
        // A response still leaving (TLS records included) is finished
        // first, then the connection closes.
        if self.reader.is_empty() && self.all_sent() && self.waiting.is_none() {
            self.close_notify_if_idle();
            Action::Remove
        } else {
            self.close_after_flush = true;
            Action::Keep
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[derive(Default, Clone)]
struct DateCache(Rc<std::cell::RefCell<(Option<Instant>, String)>>);

/// Calls `f` with the `Date` header value, formatted at most once a
/// second per loop and lent, not cloned, for each answer.
fn with_date<R>(lp: &IOLoop, f: impl FnOnce(&str) -> R) -> R {
    let cache: DateCache = lp.local();
    let mut c = cache.0.borrow_mut();
    let now = lp.time();
    if c.0
        .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
    {
        *c = (Some(now), http_date_now());
    }
    f(&c.1)
}

/// A buffered body sent as gzip, decompressed
/// ([`HttpLimits::decompress_request`](super::HttpLimits::decompress_request)).
fn inflate(gunzip: &mut Gunzip, mut req: Request) -> Result<Request, String> {
    let mut body = Vec::new();
    gunzip.feed(req.body(), &mut |data| body.extend_from_slice(data))?;
    gunzip.finish()?;
    req.set_body(body);
    Ok(req)
}
