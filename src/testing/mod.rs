//! Testing an application: Tornado's `tornado.testing`
//! (`AsyncHTTPTestCase`, `gen_test`) for cyclone.
//!
//! [`TestServer::start`] serves an [`Application`] on 127.0.0.1 at a free
//! port, on a loop of its own in a background thread (Tornado's
//! `get_app` and `get_http_port`), and stops it when dropped.
//! [`TestServer::fetch`] is `self.fetch(path)`: a blocking HTTP/1.1
//! request that returns the response whatever its status, redirects
//! followed ([`TestServer::request`] takes `fetch`'s other arguments).
//! [`ExpectLog`] expects a log record and keeps it out of the output.
//! [`gen_test`] runs a future on the test thread's own loop with a time
//! limit ([`async_test_timeout`] is Tornado's default), which is where
//! cyclone's client
//! ([`websocket_connect`](crate::websocket::websocket_connect)) talks to
//! the server:
//!
//! ```
//! use cyclone::testing::{async_test_timeout, gen_test, TestServer};
//! use cyclone::web::{Application, RequestContext, RequestHandler};
//! use cyclone::websocket::{websocket_connect, Message, WebSocket, WebSocketHandler};
//!
//! struct Hello;
//! impl RequestHandler for Hello {
//!     fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
//!         cx.write("Hello, world");
//!     }
//! }
//! struct Echo;
//! impl WebSocketHandler for Echo {
//!     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
//!         ws.write_message(msg).unwrap();
//!     }
//! }
//!
//! let server = TestServer::start(|| {
//!     Application::builder()
//!         .route("/", || Hello)
//!         .websocket("/echo", |_req| Echo)
//!         .build()
//! });
//! let response = server.fetch("/").unwrap();
//! assert_eq!((response.code, response.text()), (200, "Hello, world".to_owned()));
//! assert_eq!(server.fetch("/nowhere").unwrap().code, 404);
//!
//! let url = server.ws_url("/echo");
//! let echoed = gen_test(async_test_timeout(), async move {
//!     let conn = websocket_connect(&url).await.unwrap();
//!     conn.write_message("hi").unwrap();
//!     conn.read_message().await
//! });
//! assert_eq!(echoed.unwrap().as_text(), Some("hi"));
//! ```

mod expect_log;
mod fetch;

pub use expect_log::{init_logging, init_logging_with, ExpectLog};
pub use fetch::Fetch;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ioloop::{with_timeout, IOLoop, IOLoopHandle};
use crate::web::Application;

/// How long [`TestServer::start`] waits for the application to listen,
/// and [`TestServer::fetch`] for each read of the response.
const WAIT: Duration = Duration::from_secs(10);

/// The client configuration [`TestServer::fetch`] speaks TLS with (none
/// without the `tls` feature).
#[cfg(feature = "tls")]
type ClientTls = std::sync::Arc<rustls::ClientConfig>;
#[cfg(not(feature = "tls"))]
type ClientTls = std::convert::Infallible;

/// cyclone's test certificate authority (PEM), which signed
/// [`TestServer::start_tls`]'s certificate (for `localhost`, 127.0.0.1
/// and ::1, valid until 2126), as Tornado ships `test.crt`: give it to a
/// client that should trust the test server (a Python peer's
/// `ssl_context`, say). For tests only: its key is public.
pub const TEST_CA_PEM: &str = include_str!("certs/ca.pem");

/// An application served on 127.0.0.1 at a free port, on its own loop in
/// a background thread; stopped (the loop stopped, the thread joined)
/// when dropped. Tornado's `AsyncHTTPTestCase` server
/// ([`start`](Self::start)), or its `AsyncHTTPSTestCase` one
/// ([`start_tls`](Self::start_tls)).
pub struct TestServer {
    addr: SocketAddr,
    handle: IOLoopHandle,
    thread: Option<JoinHandle<()>>,
    /// Set for a server started with TLS: `fetch` and the URLs use it.
    tls: Option<ClientTls>,
}

impl TestServer {
    /// Builds the application with `build` in the server's thread (an
    /// `Application` and its handlers stay on their loop's thread) and
    /// serves it on 127.0.0.1 at a port the kernel picks.
    ///
    /// # Panics
    /// If the application cannot listen, or has not within 10 s.
    pub fn start(build: impl FnOnce() -> Application + Send + 'static) -> TestServer {
        TestServer::start_with(move || build().listen_on("127.0.0.1:0").expect("listen"))
    }

    /// As [`start`](Self::start), with `listen` doing the listening (for
    /// [`Application::listen_on_tls`](crate::web::Application), say) and
    /// returning the bound address.
    ///
    /// # Panics
    /// If `listen` panics, or has not returned within 10 s.
    pub fn start_with(listen: impl FnOnce() -> SocketAddr + Send + 'static) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cyclone-test-server".into())
            .spawn(move || {
                let addr = listen();
                let lp = IOLoop::current();
                let _ = tx.send((addr, lp.handle()));
                lp.start();
            })
            .expect("spawn the test server's thread");
        let Ok((addr, handle)) = rx.recv_timeout(WAIT) else {
            // The thread panicked (its message is printed) or hangs.
            panic!("the test server did not start");
        };
        TestServer {
            addr,
            handle,
            thread: Some(thread),
            tls: None,
        }
    }

    /// As [`start`](Self::start), serving HTTPS and `wss://` with cyclone's
    /// test certificate (Tornado's `AsyncHTTPSTestCase`):
    /// [`fetch`](Self::fetch) speaks TLS, [`url`](Self::url) and
    /// [`ws_url`](Self::ws_url) say `https://` and `wss://`, and
    /// [`client_tls`](Self::client_tls) is a client configuration that
    /// trusts the certificate (for `ConnectOptions::tls_config`).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    #[cfg(feature = "tls")]
    pub fn start_tls(build: impl FnOnce() -> Application + Send + 'static) -> TestServer {
        let mut server = TestServer::start_with(move || {
            let tls = crate::tls::ServerTls::from_pem(
                include_bytes!("certs/server.pem"),
                include_bytes!("certs/server.key"),
            )
            .expect("cyclone's test certificate");
            build().listen_on_tls("127.0.0.1:0", tls).expect("listen")
        });
        server.tls = Some(
            crate::tls::client_config(Some(TEST_CA_PEM.as_bytes()))
                .expect("cyclone's test certificate authority"),
        );
        server
    }

    /// For a server started with [`start_tls`](Self::start_tls): a client
    /// configuration that trusts its certificate, for
    /// [`ConnectOptions::tls_config`](crate::websocket::ConnectOptions);
    /// `None` for a plain one.
    #[cfg(feature = "tls")]
    pub fn client_tls(&self) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// `"https"` for a server started with TLS, else `"http"`.
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port (Tornado's `get_http_port`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` and `path` (Tornado's `get_url`;
    /// `https://` for [`start_tls`](Self::start_tls)).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme(), self.addr)
    }

    /// `ws://127.0.0.1:PORT` and `path`, for
    /// [`websocket_connect`](crate::websocket::websocket_connect)
    /// (`wss://` for [`start_tls`](Self::start_tls)).
    pub fn ws_url(&self, path: &str) -> String {
        let ws = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{ws}://{}{path}", self.addr)
    }

    /// The handle of the server's loop: `handle.add_callback(..)` runs
    /// code there.
    pub fn handle(&self) -> &IOLoopHandle {
        &self.handle
    }

    /// Runs `f` on the server's loop and returns what it returned:
    /// `server.on_loop(|| IOLoop::current().metrics())`.
    ///
    /// # Panics
    /// If `f` panics (it is caught and logged there; the loop goes on), or
    /// has not run within 10 s.
    pub fn on_loop<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.handle.add_callback(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(WAIT)
            .expect("the callback did not return on the server's loop")
    }

    /// `GET path` (Tornado's `self.fetch(path)`): the response, whatever
    /// its status (a 404 is `Ok`, with `code` 404), after following up to
    /// five redirects on this server as Tornado does. For another method,
    /// headers, a body or redirects not followed, see
    /// [`request`](Self::request).
    ///
    /// # Errors
    /// What the socket returned (the server is gone, a read took over 10
    /// s), or `InvalidData` for a response that is not HTTP/1.x.
    pub fn fetch(&self, path: &str) -> io::Result<TestResponse> {
        self.request("GET", path).send()
    }

    /// A request to build, with Tornado's `fetch` keyword arguments as
    /// methods, and [`send`](Fetch::send):
    /// `server.request("POST", "/login").header("X-A", "1").body("x=1").send()`.
    pub fn request(&self, method: &str, path: &str) -> Fetch<'_> {
        Fetch::new(self, method, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response [`TestServer::fetch`] read: Tornado's `HTTPResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResponse {
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields, in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The body, its chunked framing taken off.
    pub body: Vec<u8>,
    /// The URL this response answered: the one asked for, or where the
    /// last redirect followed led (Tornado's `effective_url`).
    pub effective_url: String,
}

impl TestResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A whole response read to the end of the connection.
    pub(super) fn parse(raw: &[u8], head_only: bool) -> io::Result<TestResponse> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
        let (mut response, head_len) =
            crate::protocol::handshake::with_header_slots(raw, |slots| {
                let mut parsed = httparse::Response::new(slots);
                let head_len = match parsed.parse(raw) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) => {
                        return Err(bad("the response ended in its head"))
                    }
                    Err(e) => return Err(bad(&format!("not an HTTP response: {e}"))),
                };
                let response = TestResponse {
                    code: parsed.code.unwrap_or(0),
                    reason: parsed.reason.unwrap_or_default().to_owned(),
                    headers: crate::protocol::handshake::owned_headers(parsed.headers),
                    body: Vec::new(),
                    effective_url: String::new(),
                };
                Ok((response, head_len))
            })?;
        let code = response.code;
        let rest = &raw[head_len..];
        if head_only || code < 200 || code == 204 || code == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        response.body = if chunked {
            crate::http::reader::decode_chunked_whole(rest)
                .ok_or_else(|| bad("a malformed chunked body"))?
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| bad("a bad Content-Length"))?;
            rest.get(..len)
                .ok_or_else(|| bad("the body ended before its Content-Length"))?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(response)
    }
}

/// A listener bound to a free port on 127.0.0.1, and the port (Tornado's
/// `bind_unused_port`): for a raw peer in a test, or a port to hand to
/// something that listens itself once this listener is dropped.
///
/// # Errors
/// Binding failed (no free port, no loopback interface).
pub fn bind_unused_port() -> io::Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Tornado's default time limit for a test coroutine
/// (`get_async_test_timeout`): the `ASYNC_TEST_TIMEOUT` environment
/// variable, in seconds (fractions allowed), or 5 s when it is unset or
/// not a positive number. A slow CI machine raises it without a change to
/// the tests: `gen_test(async_test_timeout(), ..)`.
pub fn async_test_timeout() -> Duration {
    timeout_from(std::env::var("ASYNC_TEST_TIMEOUT").ok().as_deref())
}

/// [`async_test_timeout`] for the variable's value `var`.
fn timeout_from(var: Option<&str>) -> Duration {
    var.and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(5))
}

/// Runs `future` on this thread's loop until it completes, as Tornado's
/// `@gen_test` runs a test coroutine, and returns its output.
///
/// # Panics
/// If `future` has not completed within `timeout` (Tornado's default is
/// [`async_test_timeout`]), with a message saying so; with `future`'s own
/// panic; or if this thread's loop is running already.
pub fn gen_test<T: 'static>(timeout: Duration, future: impl Future<Output = T> + 'static) -> T {
    match IOLoop::current().run_sync(with_timeout(timeout, future)) {
        Ok(value) => value,
        Err(_) => panic!("gen_test: the test did not complete within {timeout:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_ports_are_free_and_bound() {
        let (a, pa) = bind_unused_port().unwrap();
        let (b, pb) = bind_unused_port().unwrap();
        assert_ne!(pa, pb);
        assert_ne!(pa, 0);
        assert_eq!(a.local_addr().unwrap().port(), pa);
        assert_eq!(b.local_addr().unwrap().ip().to_string(), "127.0.0.1");
        // Bound: a client connects before anything accepts.
        assert!(std::net::TcpStream::connect(("127.0.0.1", pa)).is_ok());
    }

    #[test]
    fn the_default_time_limit_is_tornados() {
        let secs = |v| timeout_from(v).as_secs_f64();
        assert_eq!(secs(None), 5.0);
        assert_eq!(secs(Some("30")), 30.0);
        assert_eq!(secs(Some(" 0.5 ")), 0.5);
        for bad in ["", "x", "0", "-3", "nan", "inf", "1e300"] {
            assert_eq!(secs(Some(bad)), 5.0, "{bad}");
        }
    }

    #[test]
    fn responses_parse_with_any_framing() {
        let r = TestResponse::parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n\
              5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.code, r.reason.as_str()), (200, "OK"));
        assert_eq!(
            (r.text(), r.header("x-a")),
            ("hello world".into(), Some("1"))
        );
        let r = TestResponse::parse(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef",
            false,
        )
        .unwrap();
        assert_eq!((r.code, r.body.as_slice()), (404, &b"abc"[..]));
        let r = TestResponse::parse(b"HTTP/1.0 200 OK\r\n\r\nto the end", false).unwrap();
        assert_eq!(r.text(), "to the end");
        let r = TestResponse::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert!(r.unwrap().body.is_empty());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Len"[..],
            b"SSH-2.0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let e = TestResponse::parse(bad, false).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
