//! HTTP/1.1 server connections on httparse: requests split across reads,
//! pipelining, keep-alive, `Content-Length` and chunked bodies,
//! absolute-form targets, limits (431, 413), a request timeout, HEAD,
//! answers given later or streamed ([`PendingReply`]), bodies handed on as
//! they arrive ([`BodySink`]), and the hand-off of
//! an upgraded stream.

pub(crate) mod gunzip;
pub(crate) mod ip;
pub(crate) mod linger;
pub mod pending;
pub mod reader;
pub mod request;
pub mod response;
pub mod server;
pub mod stream;

pub use pending::{Drained, PendingReply};
pub use request::{percent_decode, HeadLimits, ParseError, Request};
pub use response::{html_escape, http_date, reason_phrase, Response};
pub use stream::Stream;

use std::time::Duration;

/// Limits of the HTTP layer (DESIGN.md §4). Every one has a reason:
/// they bound memory and time a peer can make the server spend before a
/// request is complete.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Request line + headers, bytes (default 16 KiB; 431 beyond).
    pub max_header_size: usize,
    /// Header lines (default 100, as hyper; 431 beyond). At most 128: the
    /// parser's header array lives on the stack, and a larger value is
    /// treated as 128.
    pub max_header_count: usize,
    /// Request body, bytes (default 10 MiB; 413 beyond).
    pub max_body_size: usize,
    /// Time for a request (head and body) to arrive once started: one
    /// deadline from its first byte, however slowly the rest trickles in;
    /// for a new connection's first request, from accept (default 10 s; the
    /// connection is dropped after answering 408 if possible).
    pub request_timeout: Duration,
    /// Time an idle keep-alive connection is kept (default 60 s); while a
    /// response is being written, the time the peer may go without taking
    /// any of it.
    pub idle_timeout: Duration,
    /// Response bytes a connection may queue for a peer that does not read
    /// them (default 1 MiB): beyond it, no further pipelined request is
    /// read or answered until the kernel has taken the excess.
    pub write_high_water: usize,
    /// Default `TCP_NODELAY` for accepted sockets (default true).
    pub nodelay: bool,
    /// Maximum simultaneous connections; beyond it new ones are answered
    /// 503 and closed (default 100,000).
    pub max_connections: usize,
    /// Linux `TCP_DEFER_ACCEPT` on the listener (default 10 s): the kernel
    /// hands a connection to `accept` only once its first bytes arrived, so
    /// the request is read right after accept with no empty read and no
    /// extra wake-up, and a peer that connects and says nothing costs the
    /// loop nothing for this long (then `request_timeout` applies). About
    /// 15 % less server CPU per connection in handshake churn
    /// (benches/README.md). `None` or zero turns it off.
    pub defer_accept: Option<Duration>,
    /// Tornado's `xheaders`: behind a reverse proxy, take the client's
    /// address from `X-Real-Ip` or `X-Forwarded-For` and the scheme from
    /// `X-Scheme` or `X-Forwarded-Proto`, per request, as
    /// [`Request::peer`] / [`Request::remote_ip`] and
    /// [`Request::protocol`] (access log, handlers, WebSocket handlers).
    /// The address is taken when Tornado's `is_valid_ip` would take it
    /// (glibc's numeric `getaddrinfo`): besides the usual forms, IPv4 as
    /// `inet_aton` reads it (`127.1`, `0x7f.0.0.1`, `010.1.1.1` read as
    /// octal, `8.1.1.1`) and IPv6 with a zone (`fe80::1%eth0`, `::1%2`);
    /// else the socket's address stays. `remote_ip` is then the address the
    /// text denotes (`8.1.1.1`, `fe80::1`), where Tornado keeps the text as
    /// given, and the zone is `peer`'s scope id (the interface's index).
    /// Only for a server that every request reaches through the proxy: a
    /// client talking to it directly could claim any address. Default
    /// `false`.
    pub xheaders: bool,
    /// Tornado's `trusted_downstream`: proxies in front of the first one
    /// whose addresses `X-Forwarded-For` lists; the client is the last
    /// address of that list that is not one of these. Default none.
    pub trusted_downstream: Vec<String>,
    /// Tornado's `decompress_request`: a request body sent with
    /// `Content-Encoding: gzip` (in any case) is decompressed before the
    /// service sees it, buffered or streamed ([`BodySink::data`] gets the
    /// decompressed bytes), and the header is renamed
    /// `X-Consumed-Content-Encoding`; `Content-Length` stays the
    /// compressed length, as there. The decompressed body may be
    /// [`max_body_size`](Self::max_body_size) bytes, the server's even
    /// where a [`BodySink`] allows more (as Tornado's
    /// `_GzipMessageDelegate` takes the connection's limit); beyond it,
    /// and for data that is not gzip (corrupt, truncated, followed by
    /// something other than another gzip member), 400 and the connection
    /// closes, as Tornado answers its `HTTPInputError` (there a bare 400,
    /// here with a page naming the reason). Default `false`:
    /// such a form body is refused with 400 as one Tornado cannot parse.
    pub decompress_request: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_size: 16 * 1024,
            max_header_count: 100,
            max_body_size: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_high_water: 1024 * 1024,
            nodelay: true,
            max_connections: 100_000,
            defer_accept: Some(Duration::from_secs(10)),
            xheaders: false,
            trusted_downstream: Vec::new(),
            decompress_request: false,
        }
    }
}

/// What a [`Service`] answers a request with.
pub enum Reply {
    /// A complete response.
    Response(Response),
    /// Switch protocols: the connection is handed to this upgrade.
    Upgrade(Box<dyn Upgrade>),
    /// The answer comes later, through the service's clone of this
    /// [`PendingReply`]; the connection waits for it (see `pending`).
    Pending(PendingReply),
}

/// What a service runs once its answer is complete on the connection:
/// the response serialized and queued for the peer and its access line
/// logged ([`Service::log_request`]), given the status sent. The web
/// layer's `RequestHandler::on_finish` runs so, as Tornado's `finish()`
/// calls `on_finish` after the connection's `finish()` and `_log()`. A
/// panic in it is logged and counted; the answer stands.
pub type AfterAnswer = Box<dyn FnOnce(u16)>;

/// Takes over a connection after a successful upgrade (implemented by the
/// websocket layer; the http layer knows nothing about WebSocket).
pub trait Upgrade {
    /// The status line and headers to send before handing over (101).
    fn response_head(&mut self, out: &mut Vec<u8>);
    /// Turns the stream (plain TCP or TLS, already registered with the
    /// loop under `id`) into the upgraded connection. `leftover` holds
    /// bytes received after the request head; `unsent` is the part of the
    /// response head the kernel did not take yet (usually empty), to be
    /// written before anything else; `nodelay` is the stream's current
    /// `TCP_NODELAY` state (set by the listener).
    fn into_connection(
        self: Box<Self>,
        stream: Stream,
        leftover: Vec<u8>,
        unsent: Vec<u8>,
        id: crate::ioloop::ConnId,
        nodelay: bool,
    ) -> Box<dyn crate::ioloop::Pollable>;
}

/// A request body taken as it arrives instead of buffered whole
/// (Tornado's `@stream_request_body`): made by [`Service::stream_body`]
/// once the head is here. A panic in any method answers 500 and closes the
/// connection.
pub trait BodySink {
    /// The most body bytes this request may have (413 beyond, or the
    /// connection closed once a chunked body passes it); `None`:
    /// [`HttpLimits::max_body_size`]. Asked after
    /// [`Service::stream_body`] and before each piece.
    fn max_body_size(&self) -> Option<u64> {
        None
    }
    /// The answer, when it is decided before the body ended (the request
    /// was refused from its head, or while its body arrived): the
    /// connection sends it and closes without reading the rest, then runs
    /// its [`AfterAnswer`]. Asked after [`Service::stream_body`] and after
    /// each piece.
    fn early_reply(&mut self) -> Option<(Reply, Option<AfterAnswer>)> {
        None
    }
    /// The next body bytes (decoded, for a chunked body), in order.
    fn data(&mut self, chunk: &[u8]);
    /// The body is complete: the answer to `req` (its head; its
    /// [`body`](Request::body) is empty), and what to run once it is sent
    /// (as [`Service::dispatch_then`]).
    fn finish(self: Box<Self>, req: Request) -> (Reply, Option<AfterAnswer>);
    /// The connection closed before the body ended (Tornado's
    /// `on_connection_close` for a streamed body). Runs on the loop, as a
    /// callback.
    fn on_connection_close(&mut self) {}
}

/// Something that answers HTTP requests: `web::Application` implements it.
pub trait Service: 'static {
    /// Answers one request. A panic here is caught by the connection: the
    /// request gets 500 and the connection closes.
    fn dispatch(&self, req: Request) -> Reply;
    /// [`dispatch`](Self::dispatch) as the HTTP connection calls it: the
    /// reply, and what to run once it is complete on the connection (a
    /// [`Reply::Response`] serialized and its access line logged, a
    /// [`Reply::Pending`] once its answer is, an upgrade after its 101),
    /// given the status sent. `dispatch` has no connection behind it, so
    /// a service overriding this runs that part itself there, at once.
    /// Default: `dispatch`, nothing after.
    fn dispatch_then(&self, req: Request) -> (Reply, Option<AfterAnswer>) {
        (self.dispatch(req), None)
    }
    /// Whether `req` (its head just arrived, with a body to come) takes its
    /// body as it arrives: a [`BodySink`] then gets the body in pieces and
    /// gives the answer, and [`dispatch`](Self::dispatch) is not called.
    /// `None` (the default): the body is buffered (up to
    /// [`HttpLimits::max_body_size`]) and `dispatch` gets it whole.
    fn stream_body(&self, req: &Request) -> Option<Box<dyn BodySink>> {
        let _ = req;
        None
    }
    /// Logs the access line for a finished request.
    fn log_request(&self, req: &Request, status: u16, elapsed: Duration) {
        let _ = (req, status, elapsed);
    }
}

#[cfg(feature = "tls")]
pub use server::listen_tls;
pub use server::{listen, listen_with};
