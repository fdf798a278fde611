//! HTTP/1.1 server behaviour over raw sockets (the peer is not cyclone).

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, CookieSecret, RequestContext, RequestHandler};
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
use util::{
    read_response, read_within, request, upgrade_request, wait_closed, ReadEnd, Server, TempDir,
};

struct Hello;
impl RequestHandler for Hello {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write("Hello, world");
    }
}

struct Echo;
impl RequestHandler for Echo {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        cx.write(format!("args={}", args.join(",")));
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let body = cx.request().body().to_vec();
        cx.write(body);
    }
}

struct Panics;
impl RequestHandler for Panics {
    fn get(&mut self, _cx: &mut RequestContext<'_>, _args: &[&str]) {
        panic!("boom");
    }
}

/// `/status/(\d+)`: answers with that status.
struct Status;
impl RequestHandler for Status {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        cx.set_status(args[0].parse().unwrap());
        cx.write("x");
    }
}

/// Tries to inject header lines through header names.
struct BadHeaderNames;
impl RequestHandler for BadHeaderNames {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.set_header("X-A\r\nSet-Cookie", "a=1");
        cx.add_header("X-B: b\r\nX-Injected", "yes");
        cx.add_header("X-Fine", "ok");
        cx.write("x");
    }
}

/// `/target`: how the request's target and body were seen.
struct TargetInfo;
impl RequestHandler for TargetInfo {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let r = cx.request();
        let out = format!(
            "path={} query={} uri={} host={} chunked={} length={} body={}",
            r.path(),
            r.query(),
            r.uri(),
            r.host().unwrap_or("-"),
            r.is_chunked(),
            r.content_length(),
            String::from_utf8_lossy(r.body())
        );
        cx.write(out);
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }
}

struct WsEcho;
impl WebSocketHandler for WsEcho {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.write_message(msg);
    }
}

fn server() -> Server {
    Server::start(|| {
        let dir = std::env::temp_dir().join(format!("cyclone-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Every server of this process shares the directory: written
        // under a name of its own, then renamed (atomic), so a test
        // reading `a.txt` never sees it truncated by another's write.
        let tmp = dir.join(format!("a.txt.{:?}", std::thread::current().id()));
        std::fs::write(&tmp, "static file").unwrap();
        std::fs::rename(&tmp, dir.join("a.txt")).unwrap();
        Application::builder()
            .route("/", || Hello)
            .route(r"/items/(\w+)/(\d+)", || Echo)
            .route("/echo", || Echo)
            .route("/panic", || Panics)
            .route("/metrics", || cyclone::web::MetricsHandler)
            .route(r"/status/(\d+)", || Status)
            .route("/bad-header", || BadHeaderNames)
            .route("/target", || TargetInfo)
            .websocket("/ws", |_| WsEcho)
            .static_path(dir)
            .max_header_size(4096)
            .max_body_size(1024)
            .build()
    })
}

/// A connection to `srv` that was sent `raw` one byte at a time, 1 ms
/// apart (so the server reads it in as many pieces).
fn trickle(srv: &Server, raw: &[u8]) -> std::net::TcpStream {
    let mut s = srv.connect();
    s.set_nodelay(true).unwrap();
    for b in raw {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    s
}

#[test]
fn request_split_byte_by_byte() {
    let srv = server();
    let mut s = trickle(&srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(body, b"Hello, world");
    assert!(head.contains("Content-Length: 12\r\n"));
    assert!(head.contains("Date: "));
}

#[test]
fn bare_lf_heads_are_served_whole_or_in_pieces() {
    let srv = server();
    let raw = b"GET /items/lf/7 HTTP/1.1\nHost: x\n\n";
    // Whole: parsed on first sight.
    let (status, _, body) = request(&srv, raw);
    assert_eq!((status, body.as_slice()), (200, &b"args=lf,7"[..]));
    // In pieces: the end-of-head search has to recognise the bare LF too.
    let mut s = trickle(&srv, raw.as_ref());
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"args=lf,7"[..]));
}

#[test]
fn pipelined_requests_answered_in_order_and_keep_alive() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(b"GET /items/a/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/b/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/c/3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    for want in ["args=a,1", "args=b,2", "args=c,3"] {
        let (status, head, body) = read_response(&mut s);
        assert_eq!(status, 200);
        assert!(head.contains("Connection: keep-alive"));
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }
    // The same connection is reused.
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn errors_have_statuses_and_reasons() {
    let srv = server();
    let (s, _, _) = request(&srv, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 404);
    let (s, head, _) = request(&srv, b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let (s, _, _) = request(&srv, b"GET\x01 / HTTP/1.1\r\n\r\n");
    assert_eq!(s, 400);
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(8000));
    let (s, _, _) = request(&srv, big.as_bytes());
    assert_eq!(s, 431);
    let (s, _, _) = request(
        &srv,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    assert_eq!(s, 413);
}

#[test]
fn static_files_and_traversal() {
    let srv = server();
    let (s, head, body) = request(&srv, b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 200);
    assert!(head.contains("Content-Type: text/plain"), "{head}");
    assert_eq!(body, b"static file");
    for path in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E%2FCargo.toml",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (s, _, body) = request(&srv, raw.as_bytes());
        assert!(s == 403 || s == 404, "{path} -> {s}");
        assert!(!String::from_utf8_lossy(&body).contains("[package]"));
    }
}

#[test]
fn panicking_handler_answers_500_and_others_are_served() {
    let srv = server();
    let mut other = srv.connect();
    let (s, head, _) = request(&srv, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 500);
    assert!(head.contains("Connection: close"));
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (s, _, body) = read_response(&mut other);
    assert_eq!((s, body.as_slice()), (200, &b"Hello, world"[..]));
}

/// A handler that panics where asked (`/p/sync` in its method,
/// `/p/later` in an asynchronous answer's callback), with default
/// headers and a page of its own for its errors.
struct PanicsWithPages;
impl RequestHandler for PanicsWithPages {
    fn set_default_headers(&mut self, cx: &mut RequestContext<'_>) {
        cx.set_header("X-Default", "yes");
    }
    fn write_error(&mut self, cx: &mut RequestContext<'_>, status: u16) {
        cx.write(format!("custom {status}"));
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        match args[0] {
            "sync" => panic!("in the method"),
            _ => cx.asynchronous().with(|_| panic!("in the answer")),
        }
    }
}

/// A handshake handler with default headers whose `prepare` panics.
struct PanicsInPrepare;
impl WebSocketHandler for PanicsInPrepare {
    fn prepare(&mut self, _req: &cyclone::http::Request) -> Result<(), cyclone::http::Response> {
        panic!("in prepare")
    }
    fn set_default_headers(
        &mut self,
        _req: &cyclone::http::Request,
        headers: &mut cyclone::websocket::HandshakeHeaders<'_>,
    ) {
        headers.set_header("X-Default", "yes");
    }
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

/// A panic in a handler's code answers the plain 500 page: neither the
/// handler's `set_default_headers` nor its `write_error` runs again after
/// it, where Tornado's `send_error(500)` calls both (a deliberate
/// difference: the handler's state after a panic is suspect), in a
/// method, an asynchronous answer and a handshake's `prepare` alike.
#[test]
fn a_panic_answers_the_plain_500_without_the_handlers_pages() {
    let srv = Server::start(|| {
        Application::builder()
            .route("/p/(.*)", || PanicsWithPages)
            .websocket("/ws", |_| PanicsInPrepare)
            .build()
    });
    let plain = "<html><title>500: Internal Server Error</title>\
                 <body>500: Internal Server Error</body></html>";
    for raw in [
        "GET /p/sync HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "GET /p/later HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        upgrade_request("/ws", ""),
    ] {
        let (status, head, body) = request(&srv, raw.as_bytes());
        assert_eq!(
            (status, String::from_utf8_lossy(&body).as_ref()),
            (500, plain),
            "{raw}"
        );
        assert!(!head.contains("X-Default"), "{raw}: {head}");
    }
}

#[test]
fn head_has_length_but_no_body() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Read raw: the HEAD response must be followed directly by the GET's status line.
    let mut all = Vec::new();
    let mut tmp = [0u8; 4096];
    while !String::from_utf8_lossy(&all).contains("Hello, world") {
        let n = std::io::Read::read(&mut s, &mut tmp).unwrap();
        assert!(n > 0);
        all.extend_from_slice(&tmp[..n]);
    }
    let text = String::from_utf8_lossy(&all);
    let second = text
        .find("HTTP/1.1 200")
        .and_then(|i| text[i + 1..].find("HTTP/1.1 200").map(|j| i + 1 + j))
        .unwrap();
    assert!(text[..second].ends_with("\r\n\r\n"));
    assert!(text[..second].contains("Content-Length: 12"));
}

#[test]
fn malformed_request_line_is_refused_before_the_head_ends() {
    let srv = server();
    let mut s = srv.connect();
    // One bad line, and the head never ends: refused at once, not at the timeout.
    s.write_all(b"GET\x01/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t0 = std::time::Instant::now();
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 400);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

/// A request the connection refuses before any handler gets cyclone's
/// error page naming the reason, `debug` or not (a deliberate difference,
/// in the README's limits: Tornado's `HTTP1Connection` writes a bare
/// `HTTP/1.1 400 Bad Request` head and closes, its reason only logged at
/// `info`); with `Connection: close`, and the connection ends.
#[test]
fn a_connection_level_refusal_names_its_reason() {
    let srv = server();
    for (raw, status, page) in [
        (
            &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"[..],
            413,
            "<html><title>413: Content Too Large</title>\
             <body>413: Content Too Large: Request body too large</body></html>",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n",
            417,
            "<html><title>417: Expectation Failed</title>\
             <body>417: Expectation Failed: Unsupported Expect value</body></html>",
        ),
    ] {
        let mut s = srv.connect();
        s.write_all(raw).unwrap();
        let (got, head, body) = read_response(&mut s);
        assert_eq!(
            (got, String::from_utf8_lossy(&body).as_ref()),
            (status, page)
        );
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(wait_closed(&mut s, Duration::from_secs(10)), "{status}");
    }
}

#[test]
fn metrics_in_prometheus_text_format() {
    let srv = server();
    let _ = request(&srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, head, body) = request(&srv, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let text = String::from_utf8(body).unwrap();
    let accepted: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cyclone_connections_accepted_total "))
        .and_then(|v| v.parse().ok())
        .expect("counter line");
    assert!(accepted >= 2, "{text}");
    assert!(text.contains("# TYPE cyclone_websocket_messages_in_total counter"));
}

#[cfg(target_os = "linux")]
#[test]
fn accepted_connections_have_tcp_nodelay() {
    // The server side of an accepted connection is not reachable from here,
    // so check the inheritance cyclone relies on: a socket accepted from a
    // listener with TCP_NODELAY has it too (Linux copies it).
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.set_nodelay(true).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(8).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let _c = std::net::TcpStream::connect(addr).unwrap();
    let (a, _) = l.accept().unwrap();
    assert!(
        a.nodelay().unwrap(),
        "TCP_NODELAY not inherited from the listener"
    );
}

/// TCP_DEFER_ACCEPT (the default): a connection that has sent nothing is
/// not handed to the loop; its first bytes bring it in and it is served.
/// With the option off, the same connection is accepted at once.
#[cfg(target_os = "linux")]
#[test]
fn silent_connections_wait_in_the_kernel_with_defer_accept() {
    use cyclone::ioloop::Counter;
    for defer in [true, false] {
        let server = Server::start(move || {
            let b = Application::builder().route("/", || Hello);
            if defer { b } else { b.defer_accept(None) }.build()
        });
        let mut s = server.connect();
        let deadline = std::time::Instant::now() + Duration::from_millis(400);
        let mut accepted = 0;
        while std::time::Instant::now() < deadline && accepted == 0 {
            std::thread::sleep(Duration::from_millis(20));
            accepted = server.metrics().get(Counter::ConnectionsAccepted);
        }
        assert_eq!(accepted, u64::from(!defer), "defer_accept {defer}");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut s);
        assert_eq!((status, body.as_slice()), (200, &b"Hello, world"[..]));
        assert_eq!(server.metrics().get(Counter::ConnectionsAccepted), 1);
    }
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
/// to any HTTP/1.1 request message that lacks a Host header field and to any
/// request message that contains more than one Host header field".
/// HTTP/1.0 predates Host: its requests are served without one.
#[test]
fn http11_request_without_host_or_with_two_hosts_is_400() {
    let srv = server();
    let (no_host, _, _) = request(&srv, b"GET / HTTP/1.1\r\n\r\n");
    let (two_hosts, _, _) = request(
        &srv,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    );
    let (http10, _, _) = request(&srv, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        (no_host, two_hosts, http10),
        (400, 400, 200),
        "(no Host, two Hosts, HTTP/1.0 without Host) were answered"
    );
}

/// RFC 6455 §4.2.1 item 2: the opening handshake MUST carry a Host header;
/// otherwise the server "MUST stop processing the client's handshake and
/// return an HTTP response with an appropriate error code (such as 400)".
#[test]
fn websocket_handshake_without_host_is_refused() {
    let srv = server();
    let (status, head, _) = request(
        &srv,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(status, 400, "handshake without Host answered: {head}");
}

/// RFC 9110 §10.1.1: a server that receives `Expect: 100-continue` "MUST
/// either respond with 100 (Continue) status and continue to read from the
/// input stream, or respond with a final status code" (Tornado sends the
/// 100). A request refused from its head gets its final status instead, and
/// an expectation the server cannot meet gets 417.
#[test]
fn expect_100_continue_gets_an_interim_or_final_answer() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    // The client waits for the 100 before sending its body.
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; interim.len()];
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.read_exact(&mut got)
        .expect("an interim answer within 1.5 s");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(interim)
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"hello").unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));

    // The body came with the head: no 100 needed, none sent.
    let (status, _, body) = request(
        &srv,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    );
    assert_eq!((status, body.as_slice()), (200, &b"hi"[..]));
    // Refused from its head (max_body_size is 1024): the final status only.
    let (status, _, _) = request(
        &srv,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(status, 413);
    let (status, head, _) = request(
        &srv,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 200-ok\r\n\r\n",
    );
    assert_eq!(status, 417, "{head}");
    assert!(
        head.starts_with("HTTP/1.1 417 Expectation Failed\r\n"),
        "{head}"
    );
}

/// `RequestContext::set_status`: "the reason phrase is the standard one",
/// for every registered code; others are "Unknown".
#[test]
fn standard_statuses_have_their_standard_reason_phrase() {
    let srv = server();
    let mut wrong = Vec::new();
    for (code, reason) in [
        (202, "Accepted"),
        (206, "Partial Content"),
        (226, "IM Used"),
        (406, "Not Acceptable"),
        (409, "Conflict"),
        (410, "Gone"),
        (415, "Unsupported Media Type"),
        (422, "Unprocessable Content"),
        (451, "Unavailable For Legal Reasons"),
        (502, "Bad Gateway"),
        (504, "Gateway Timeout"),
        (511, "Network Authentication Required"),
        (299, "Unknown"),
    ] {
        let raw = format!("GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (status, head, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, code);
        let line = head.lines().next().unwrap_or("").to_string();
        if line != format!("HTTP/1.1 {code} {reason}") {
            wrong.push(line);
        }
    }
    assert!(
        wrong.is_empty(),
        "status lines with a wrong reason: {wrong:?}"
    );
}

/// RFC 9112 §2.2: "a server that is expecting to receive and parse a
/// request-line SHOULD ignore at least one empty line (CRLF) received prior
/// to the request-line" (old clients send one after a POST body). The
/// method must not become "\r\nG" (which got 405), for a plain request or a
/// WebSocket handshake.
#[test]
fn empty_line_before_request_line_keeps_the_method() {
    let srv = server();
    let mut s = srv.connect();
    // A POST whose client adds the legacy CRLF after the body, then a GET.
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\n\
          GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let (first, _, body) = read_response(&mut s);
    assert_eq!((first, body.as_slice()), (200, &b"hello"[..]));
    let (second, head, _) = read_response(&mut s);
    // Several empty lines, bare LF too, before a handshake.
    let mut w = srv.connect();
    w.write_all(format!("\r\n\n\r\n{}", upgrade_request("/ws", "")).as_bytes())
        .unwrap();
    let (ws, ws_head, _) = read_response(&mut w);
    assert_eq!(
        (second, ws),
        (200, 101),
        "GET after an empty line: {:?}; handshake after empty lines: {:?}",
        head.lines().next(),
        ws_head.lines().next()
    );
}

/// `PROPFIND /dav`: a method beyond the seven, served by `other_method`.
struct Dav;
impl RequestHandler for Dav {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "PROPFIND"]
    }
    fn other_method(&mut self, cx: &mut RequestContext<'_>, method: &str, _args: &[&str]) {
        cx.set_status(207);
        let body = String::from_utf8_lossy(cx.request().body()).into_owned();
        cx.write(format!("{method} {body}"));
    }
}

/// RFC 9110 §9.1: a method is any token, and one the server does not know
/// reaches the application (405 here, as in Tornado), its body framed as
/// any other's, so the connection goes on.
#[test]
fn methods_beyond_the_seven_reach_the_handler_over_the_wire() {
    let srv = Server::start(|| Application::builder().route("/dav", || Dav).build());
    let mut s = srv.connect();
    s.write_all(
        b"PROPFIND /dav HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          BREW /dav HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntea\
          M-SEARCH /dav HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (207, &b"PROPFIND hello"[..]));
    for _ in 0..2 {
        let (status, head, _) = read_response(&mut s);
        assert_eq!(status, 405, "{head}");
        assert!(head.contains("\r\nAllow: GET, PROPFIND\r\n"), "{head}");
    }
    // Not a token: refused by the HTTP layer, as Tornado does.
    let (status, _, _) = request(&srv, b"PROP(FIND /dav HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 400);
    // RFC 9112 §3: longer than any method implemented, 501; one byte
    // shorter, the handler's 405.
    for (len, want) in [(255, 405), (256, 501)] {
        let raw = format!("{} /dav HTTP/1.1\r\nHost: x\r\n\r\n", "M".repeat(len));
        let (status, head, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, want, "{len}: {head}");
    }
}

/// Answers `ok` (at once, later through `asynchronous`, or after a
/// streamed body) and panics in `on_finish`.
struct PanicsOnFinish {
    later: bool,
}
impl RequestHandler for PanicsOnFinish {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        if self.later {
            let later = cx.asynchronous();
            IOLoop::current().add_callback(move || later.write("ok"));
        } else {
            cx.write("ok");
        }
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write("ok");
    }
    fn on_finish(&mut self, _status: u16) {
        panic!("on_finish failed");
    }
}

/// Tornado runs `on_finish` once the answer was written (`finish()`:
/// `flush()`, the connection's `finish()`, the access log, `on_finish`), so
/// an exception there is logged and the client keeps its answer and its
/// connection. Here too, for an answer given at once, later, or after a
/// streamed body.
#[test]
fn a_panic_in_on_finish_leaves_the_answer() {
    let srv = Server::start(|| {
        Application::builder()
            .route("/now", || PanicsOnFinish { later: false })
            .route("/later", || PanicsOnFinish { later: true })
            .route("/streamed", || PanicsOnFinish { later: false })
            .stream_request_body()
            .build()
    });
    let mut s = srv.connect();
    for raw in [
        "GET /now HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /later HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /streamed HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "GET /now HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        s.write_all(raw.as_bytes()).unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"ok"[..]),
            "{raw}: {head}"
        );
    }
}

/// `ParseError::UnsupportedVersion` is 505: a well-formed version the
/// server does not speak gets it; a malformed one stays 400.
#[test]
fn other_http_versions_get_505() {
    let srv = server();
    let (status, head, _) = request(&srv, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(status, 505, "{head}");
    assert!(head.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"));
    let (status, _, _) = request(&srv, b"GET / HTTP/3\r\nHost: x\r\n\r\n");
    assert_eq!(status, 400);
    for bad in ["HTTP/x.y", "HTTP/1.1x", "HTTP/1.10", "HTTP/11.1"] {
        let raw = format!("GET / {bad}\r\nHost: x\r\n\r\n");
        let (status, _, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, 400, "{bad}");
    }
}

/// RFC 9110 §2.5: "A recipient that receives a message with a major version
/// number that it implements and a minor version number higher than what it
/// implements SHOULD process the message as if it were in the highest minor
/// version within that major version to which the recipient is conformant."
/// `HTTP/1.2` was answered 505 (Tornado serves it): it is HTTP/1.1 here, so
/// it needs a Host, keeps the connection open and can upgrade.
#[test]
fn higher_minor_version_is_served_as_http_1_1() {
    let srv = server();
    for v in ["HTTP/1.2", "HTTP/1.9"] {
        let mut s = srv.connect();
        let raw = format!("GET / {v}\r\nHost: x\r\n\r\nGET /echo {v}\r\nHost: x\r\n\r\n");
        s.write_all(raw.as_bytes()).unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"Hello, world"[..]),
            "{v}: {head}"
        );
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(!head.contains("Connection: close"), "{v}: {head}");
        let (status, _, body) = read_response(&mut s);
        assert_eq!((status, body.as_slice()), (200, &b"args="[..]), "{v}");
    }
    let (status, _, _) = request(&srv, b"GET / HTTP/1.2\r\n\r\n");
    assert_eq!(status, 400, "HTTP/1.2 without Host");
    let raw = upgrade_request("/ws", "").replacen("HTTP/1.1", "HTTP/1.2", 1);
    let (status, head, _) = request(&srv, raw.as_bytes());
    assert_eq!(status, 101, "{head}");
    // A major version other than 1 is still 505.
    let (status, _, _) = request(&srv, b"GET / HTTP/2.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 505);
}

/// RFC 9110 §8.6: "Content-Length: 42, 42" is what an upstream that combines
/// duplicate field lines (§5.3) makes of two `Content-Length: 42` lines,
/// which are served. The list of one value repeated was answered 400 (and
/// the connection closed) where Tornado serves it; values that differ stay
/// 400, in either form.
#[test]
fn content_length_list_of_one_value_is_that_length() {
    let srv = server();
    for cl in [
        "Content-Length: 5, 5",
        "Content-Length: 5,5",
        "Content-Length: 5 , 5, 005",
        "Content-Length: 5\r\nContent-Length: 5, 5",
    ] {
        let mut s = srv.connect();
        let raw = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\n{cl}\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        s.write_all(raw.as_bytes()).unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"hello"[..]),
            "{cl}: {head}"
        );
        let (status, _, body) = read_response(&mut s);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"Hello, world"[..]),
            "{cl}"
        );
    }
    for cl in [
        "Content-Length: 5, 6",
        "Content-Length: 5\r\nContent-Length: 5, 6",
        "Content-Length: 5,",
        "Content-Length: ,5",
        "Content-Length: 5,,5",
        "Content-Length: 5, x",
        "Content-Length: 5, -5",
    ] {
        let raw = format!("POST /echo HTTP/1.1\r\nHost: x\r\n{cl}\r\n\r\nhello!");
        let (status, _, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, 400, "{cl}");
    }
}

/// A handler cannot inject header lines through a header name (CR/LF, or
/// anything else that is not a token, is refused), as through a value.
#[test]
fn response_header_names_cannot_inject_lines() {
    let srv = server();
    let (status, head, body) = request(&srv, b"GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status, body.as_slice()), (200, &b"x"[..]));
    assert!(head.contains("\r\nX-Fine: ok\r\n"), "{head}");
    for injected in ["Set-Cookie", "X-Injected", "X-A", "X-B"] {
        assert!(!head.contains(injected), "{injected} in {head}");
    }
}

struct Silent;

impl WebSocketHandler for Silent {
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

/// README, "Metrics": handshakes are counted by result, 405 included — a
/// POST's, answered after the handler's `prepare`, and that of a method
/// no handler takes, which the application refuses before making one.
#[test]
fn handshake_refused_with_405_is_counted() {
    let srv = Server::start(|| {
        Application::builder()
            .route("/metrics", || cyclone::web::MetricsHandler)
            .websocket("/ws", |_req: &cyclone::http::Request| Silent)
            .build()
    });
    let post = upgrade_request("/ws", "Content-Length: 0\r\n").replacen("GET", "POST", 1);
    let (status, head, _) = request(&srv, post.as_bytes());
    assert_eq!(status, 405, "{head}");
    let propfind = upgrade_request("/ws", "").replacen("GET", "PROPFIND", 1);
    let (status, head, _) = request(&srv, propfind.as_bytes());
    assert_eq!(status, 405, "{head}");
    let bad_version = upgrade_request("/ws", "").replace("Version: 13", "Version: 8");
    let (status, head, _) = request(&srv, bad_version.as_bytes());
    assert_eq!(status, 426, "{head}");

    let (status, _, body) = request(&srv, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let value = |label: &str| {
        let key = format!("cyclone_websocket_handshakes_total{{result=\"{label}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(value("426").as_deref(), Some("1"), "{text}");
    assert_eq!(value("405").as_deref(), Some("2"), "{text}");
}

fn header_lines<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

struct NoServer;
impl RequestHandler for NoServer {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.clear_header("Server");
        cx.write("x");
    }
}

struct CustomServer;
impl RequestHandler for CustomServer {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_header("Server", "MyApp/1.0");
        cx.set_header("Date", "Thu, 01 Jan 1970 00:00:00 GMT");
        cx.write("x");
    }
}

/// Tornado: `set_header("Server", ..)` replaces the default `Server`
/// header (and `clear_header("Server")` removes it), and so for `Date`: one
/// line each, the handler's.
#[test]
fn set_header_server_replaces_default() {
    let server = Server::start(|| {
        Application::builder()
            .route("/", || CustomServer)
            .route("/bare", || NoServer)
            .build()
    });
    let (status, head, _) = request(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    let servers = header_lines(&head, "Server");
    let dates = header_lines(&head, "Date");
    assert_eq!(
        servers.len(),
        1,
        "duplicate Server headers: {servers:?}\n{head}"
    );
    assert_eq!(dates.len(), 1, "duplicate Date headers: {dates:?}\n{head}");
    assert_eq!(servers, vec!["Server: MyApp/1.0"], "{head}");
    let (status, head, _) = request(&server, b"GET /bare HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(header_lines(&head, "Server").is_empty(), "{head}");
    assert_eq!(header_lines(&head, "Date").len(), 1, "{head}");
}

struct ClosesAfter;
impl RequestHandler for ClosesAfter {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_header("Connection", "Close");
        cx.write("last");
    }
}

/// A handler's `Connection: close` ends the connection after its answer,
/// which says so once (RFC 9112 §9.6). It used to be dropped and the
/// connection kept; Tornado sends it and keeps serving, which the RFC
/// forbids.
#[test]
fn a_handler_s_connection_close_closes_after_its_answer() {
    let server = Server::start(|| {
        Application::builder()
            .route("/close", || ClosesAfter)
            .route("/bare", || NoServer)
            .build()
    });
    let mut s = server.connect();
    s.write_all(b"GET /bare HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /bare HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(
        header_lines(&head, "Connection"),
        ["Connection: keep-alive"]
    );
    let (status, head, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"last"[..]));
    assert_eq!(
        header_lines(&head, "Connection"),
        ["Connection: close"],
        "{head}"
    );
    assert!(
        wait_closed(&mut s, Duration::from_secs(5)),
        "third request answered"
    );
}

struct HeadLen;
impl RequestHandler for HeadLen {
    fn head(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        // Tornado's idiom (StaticFileHandler.head): announce the size, no body.
        cx.set_header("Content-Length", "1234");
        // Tells util::read_response that no body follows.
        cx.set_header("X-Head-Only", "1");
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.write(vec![b'a'; 1234]);
    }
}

/// Tornado only computes `Content-Length` when the handler did not set it,
/// so a `head()` may announce the entity's size without a body.
#[test]
fn head_keeps_explicit_content_length() {
    let server = Server::start(|| Application::builder().route("/", || HeadLen).build());
    let (status, head, _) = request(&server, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    let cl = header_lines(&head, "Content-Length");
    assert_eq!(cl, vec!["Content-Length: 1234"], "{head}");
}

struct ClearCookie;
impl RequestHandler for ClearCookie {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        // A cookie name taken from the request.
        let name = cx.get_argument("name").unwrap_or_default();
        cx.clear_cookie(&name);
        // set_cookie refuses the same name.
        cx.set_cookie(&name, "v");
    }
}

/// `clear_cookie` refuses the names `set_cookie` refuses (`;`, spaces,
/// `=`...): a name from the request must not add attributes (`Domain=`,
/// `Path=`) or a whole different cookie to `Set-Cookie`. `set_cookie`
/// then answers 500, as Tornado's raises.
#[test]
fn clear_cookie_validates_name() {
    let server = Server::start(|| Application::builder().route("/", || ClearCookie).build());
    let (status, head, _) = request(
        &server,
        b"GET /?name=sid%3Dhijack%3B%20Domain%3Devil.example%3B%20Max-Age%3D99999%3B%20x HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 500);
    let cookies = header_lines(&head, "Set-Cookie");
    assert!(
        cookies.is_empty(),
        "invalid cookie name reached Set-Cookie: {cookies:?}"
    );
}

// ---- hostile clients and careless handlers ----

/// Serializes the tests below that measure this process's memory, and
/// those that make it allocate much.
static MEMORY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn memory_lock() -> std::sync::MutexGuard<'static, ()> {
    MEMORY.lock().unwrap_or_else(|e| e.into_inner())
}

/// `VmRSS` or `VmHWM` (peak) of this process, KiB.
fn proc_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `POST /len`: the body's length.
struct BodyLen;
impl RequestHandler for BodyLen {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let n = cx.request().body().len();
        cx.write(n.to_string());
    }
}

/// `POST /form`: the form argument `name`.
struct FormName;
impl RequestHandler for FormName {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let v = cx.get_argument("name").unwrap_or_default();
        cx.write(v);
    }
}

/// `GET /big/(\d+)`: that many KiB of `x`.
struct BigBody;
impl RequestHandler for BigBody {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let kib: usize = args[0].parse().unwrap();
        cx.write(vec![b'x'; kib * 1024]);
    }
}

fn big_server() -> Server {
    Server::start(|| {
        Application::builder()
            .route("/", || Hello)
            .route("/len", || BodyLen)
            .route("/form", || FormName)
            .route(r"/big/(\d+)", || BigBody)
            .max_body_size(16 * 1024 * 1024)
            .build()
    })
}

/// Memory per connection stays bounded by what the connection holds now,
/// not by the largest request it ever received: an idle keep-alive
/// connection that once carried a 2 MiB body must not keep a 2 MiB receive
/// buffer (32 such connections kept 90 MiB resident).
#[test]
fn idle_keep_alive_connection_does_not_keep_its_largest_body() {
    // VmRSS/VmHWM are the process's: measured in a process of its own.
    if util::isolated("idle_keep_alive_connection_does_not_keep_its_largest_body") {
        return;
    }
    let srv = big_server();
    let body = vec![b'b'; 2 * 1024 * 1024];
    let head = format!(
        "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // Warm up the allocator with one connection (then closed).
    {
        let mut s = srv.connect();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let (status, _, _) = read_response(&mut s);
        assert_eq!(status, 200);
    }
    std::thread::sleep(Duration::from_millis(100));
    let before = proc_kib("VmRSS");
    let mut idle = Vec::new();
    for _ in 0..32 {
        let mut s = srv.connect();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        // The empty line old clients send after a POST body (RFC 9112
        // §2.2): the buffer is not empty after the body.
        s.write_all(b"\r\n").unwrap();
        let (status, _, got) = read_response(&mut s);
        assert_eq!((status, got), (200, body.len().to_string().into_bytes()));
        idle.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    let grew_mib = proc_kib("VmRSS").saturating_sub(before) / 1024;
    assert!(
        grew_mib < 24,
        "32 idle keep-alive connections that each carried a 2 MiB body keep {grew_mib} MiB"
    );
    // They are still usable.
    for s in &mut idle {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, _, _) = read_response(s);
        assert_eq!(status, 200);
    }
}

/// A form body of many tiny fields (`a&a&a...`) must not cost tens of times
/// its size when a handler asks for one argument: looking up `name` in a
/// 4 MiB body of 2 million fields made every field a pair of `String`s
/// (about 160 MiB at the peak).
#[test]
fn form_with_millions_of_fields_is_refused_without_amplifying_memory() {
    // VmRSS/VmHWM are the process's: measured in a process of its own.
    if util::isolated("form_with_millions_of_fields_is_refused_without_amplifying_memory") {
        return;
    }
    let srv = big_server();
    let mut body = b"a&".repeat(2 * 1024 * 1024);
    body.extend_from_slice(b"name=found");
    let head = format!(
        "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // Warm up with a small form.
    let small = "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nname=w";
    let (status, _, got) = request(&srv, small.as_bytes());
    assert_eq!((status, got.as_slice()), (200, &b"w"[..]));
    let before = proc_kib("VmHWM");
    let mut s = srv.connect();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    // Over Tornado's 1,000 fields: refused before the handler (which
    // would scan the body for each argument it looks up), and the body is
    // never expanded into fields.
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 400);
    let grew_mib = proc_kib("VmHWM").saturating_sub(before) / 1024;
    assert!(
        grew_mib < 48,
        "refusing a 4 MiB form of 2 M fields raised the peak by {grew_mib} MiB"
    );
    // The server serves on.
    let (status, _, got) = request(&srv, small.as_bytes());
    assert_eq!((status, got.as_slice()), (200, &b"w"[..]));
}

/// A response the server has accepted to send is not lost when the
/// connection closes after it (`Connection: close`, HTTP/1.0) while the
/// peer has sent more bytes the server will not read: closing a socket
/// with unread bytes makes Linux send a reset and discard the part of the
/// response still queued in the kernel. The 4 MiB body must arrive whole,
/// followed by a clean EOF.
#[test]
fn response_before_a_close_is_not_cut_by_a_reset_when_the_peer_sent_more() {
    let _m = memory_lock();
    let srv = big_server();
    for first in [
        "GET /big/4096 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /big/4096 HTTP/1.0\r\n\r\n",
    ] {
        let mut s = srv.connect();
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(32 * 1024);
        s.write_all(first.as_bytes()).unwrap();
        // Let the server fill the socket buffers, then send more (a
        // pipelined request it must not answer).
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (got, end_of_read) = read_within(&mut s, Duration::from_secs(5));
        let end = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let head = String::from_utf8_lossy(&got[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            (got.len() - end, end_of_read),
            (4096 * 1024, ReadEnd::Eof),
            "{first:?}: body cut short (or a reset)"
        );
    }
}

/// RFC 9112 §3: "A server that receives a request-target longer than any
/// URI it wishes to parse MUST respond with a 414 (URI Too Long) status
/// code" — not 431, which is about header fields. A head whose request
/// line fits but whose fields do not stays 431; so does a long target
/// trickled in pieces.
#[test]
fn request_target_over_the_head_limit_gets_414() {
    let srv = server();
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
    let (status, head, _) = request(&srv, long.as_bytes());
    assert_eq!(status, 414, "{head}");
    assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
    let mut s = srv.connect();
    s.write_all(format!("GET /{}", "a".repeat(3000)).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all("b".repeat(3000).as_bytes()).unwrap();
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 414);
    let fields = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    let (status, _, _) = request(&srv, fields.as_bytes());
    assert_eq!(status, 431);
}

/// The value of the first `name` header line of `head`.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    let line = header_lines(head, name).into_iter().next()?;
    line.split_once(':').map(|(_, v)| v.trim())
}

/// `Range` on a static file (`a.txt` holds `static file`, 11 bytes): 206
/// with `Content-Range` for a part, 200 for the whole file or a range it
/// ignores, 416 past the end or backwards; HEAD gets the part's length.
#[test]
fn static_file_ranges() {
    let srv = server();
    let get = |range: &str| {
        let raw = format!("GET /static/a.txt HTTP/1.1\r\nHost: x\r\nRange: {range}\r\n\r\n");
        request(&srv, raw.as_bytes())
    };
    for (range, status, content_range, body) in [
        ("bytes=2-5", 206, Some("bytes 2-5/11"), "atic"),
        ("bytes=7-", 206, Some("bytes 7-10/11"), "file"),
        ("bytes=-4", 206, Some("bytes 7-10/11"), "file"),
        ("bytes=0-0", 206, Some("bytes 0-0/11"), "s"),
        ("bytes=0-", 200, None, "static file"),
        ("bytes=-100", 200, None, "static file"),
        ("bytes=1-2,4-5", 200, None, "static file"),
        ("lines=1-2", 200, None, "static file"),
        ("bytes=11-", 416, Some("bytes */11"), ""),
        ("bytes=-0", 416, Some("bytes */11"), ""),
        // Ends before it begins: Tornado's 416 (RFC 9110 §14.1.1).
        ("bytes=5-2", 416, Some("bytes */11"), ""),
    ] {
        let (s, head, got) = get(range);
        assert_eq!(
            (
                s,
                header(&head, "content-range"),
                String::from_utf8_lossy(&got).as_ref()
            ),
            (status, content_range, body),
            "{range}: {head}"
        );
        assert_eq!(header(&head, "accept-ranges"), Some("bytes"), "{head}");
        if status == 416 {
            // Tornado's 416: text/plain, not the default text/html.
            assert_eq!(header(&head, "content-type"), Some("text/plain"), "{head}");
        }
    }
    // HEAD: the part's length, and nothing after the head.
    let mut s = srv.connect();
    s.write_all(
        b"HEAD /static/a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-5\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a body after HEAD's head: {text}"
    );
    assert_eq!(header(&text, "content-length"), Some("4"), "{text}");
}

/// The static file's `ETag`: `If-None-Match` naming it (also weakly, or
/// `*`) is a 304 without a body; another tag is a 200 even with an
/// `If-Modified-Since` that alone would give 304 (If-None-Match decides).
/// A server of its own whose `/static/a.txt` holds `static file` and is
/// written once: the shared `server()` fixture rewrites its `a.txt` for
/// every test, which changes the ETag and Last-Modified under a test that
/// compares them.
fn own_static_server(name: &str) -> (TempDir, Server) {
    let dir = TempDir::new(name);
    dir.file("a.txt", "static file");
    let srv = static_server(&dir);
    (dir, srv)
}

#[test]
fn static_file_etag_and_if_none_match() {
    let (_dir, srv) = own_static_server("etag");
    let (s, head, _) = request(&srv, b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 200);
    let etag = header(&head, "etag").expect("ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with("-b\""), "{etag}");
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    for (inm, ims, status, body) in [
        (etag.clone(), None, 304, ""),
        (format!("W/{etag}"), None, 304, ""),
        (format!("\"other\", {etag}"), None, 304, ""),
        ("*".to_string(), None, 304, ""),
        ("\"other\"".to_string(), Some(future), 200, "static file"),
        ("\"other\"".to_string(), None, 200, "static file"),
    ] {
        let ims = ims.map_or(String::new(), |d| format!("If-Modified-Since: {d}\r\n"));
        let raw =
            format!("GET /static/a.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {inm}\r\n{ims}\r\n");
        let (s, head, got) = request(&srv, raw.as_bytes());
        assert_eq!(
            (s, String::from_utf8_lossy(&got).as_ref()),
            (status, body),
            "{inm}: {head}"
        );
        assert_eq!(header(&head, "etag"), Some(etag.as_str()), "{head}");
    }
    // Without If-None-Match, If-Modified-Since still works.
    let raw =
        format!("GET /static/a.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {future}\r\n\r\n");
    assert_eq!(request(&srv, raw.as_bytes()).0, 304);
}

/// Writes `cx.static_url("a.txt")`.
/// GETs the versioned static URL `link`: the file `a.txt` ("static file")
/// with ten years of `Cache-Control`. Returns the response head.
fn fetch_versioned(srv: &Server, link: &str) -> String {
    let raw = format!("GET {link} HTTP/1.1\r\nHost: x\r\n\r\n");
    let (s, head, body) = request(srv, raw.as_bytes());
    assert_eq!((s, body.as_slice()), (200, &b"static file"[..]), "{head}");
    assert_eq!(
        header(&head, "cache-control"),
        Some("max-age=315360000"),
        "{head}"
    );
    head
}

struct StaticLink;

impl RequestHandler for StaticLink {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        match cx.static_url("a.txt") {
            Ok(url) => cx.write(url),
            Err(e) => cx.send_error(e.status()),
        }
    }
}

/// A page links `static_url("a.txt")`: `?v=` and the SHA-1 of the file;
/// fetching that URL gets the file with ten years of `Cache-Control` and
/// `Expires`, the plain URL neither.
#[test]
fn static_url_links_a_file_cached_for_ten_years() {
    let dir = TempDir::new("static-url");
    dir.file("a.txt", "static file");
    let root = dir.0.clone();
    let srv = Server::start(move || {
        Application::builder()
            .static_path(root.clone())
            .route("/page", || StaticLink)
            .build()
    });
    let (s, _, link) = request(&srv, b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 200);
    let link = String::from_utf8(link).unwrap();
    let hash = sha1_hex("static file");
    assert_eq!(link, format!("/static/a.txt?v={hash}"));
    let head = fetch_versioned(&srv, &link);
    let expires = header(&head, "expires").expect("Expires");
    let year = |date: &str| -> i64 { date.split(' ').nth(3).unwrap().parse().unwrap() };
    let this_year = year(&cyclone::http::http_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    ));
    assert!(
        expires.ends_with(" GMT") && (9..=10).contains(&(year(expires) - this_year)),
        "{expires}"
    );
    let (s, head, _) = request(&srv, b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 200);
    assert_eq!(
        (header(&head, "cache-control"), header(&head, "expires")),
        (None, None),
        "{head}"
    );
}

/// Renders `page.html` with `render_with` (`/with`) or with `render`'s
/// string pairs (`/pairs`).
struct StaticPage;

impl RequestHandler for StaticPage {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        match args[0] {
            "with" => cx.render_with("page.html", &serde_json::json!({ "file": "a.txt" })),
            _ => cx.render("page.html", &[("file", "a.txt")]),
        }
    }
}

/// A template's `{{ static_url("a.txt") }}` is `cx.static_url("a.txt")`:
/// `?v=` and the SHA-1 of the file, through `render_with` and `render`,
/// from a literal and from a path; the link serves the file.
#[test]
fn template_static_url_links_the_versioned_file() {
    let dir = TempDir::new("static-url-template");
    dir.file("static/a.txt", "static file");
    dir.file(
        "templates/page.html",
        "<link href=\"{{ static_url(\"a.txt\") }}\">\n<a href='{{ static_url(file) }}'>",
    );
    let (statics, templates) = (dir.0.join("static"), dir.0.join("templates"));
    let srv = Server::start(move || {
        Application::builder()
            .static_path(statics)
            .template_path(templates)
            .route("/page/(with|pairs)", || StaticPage)
            .build()
    });
    let hash = sha1_hex("static file");
    let url = format!("/static/a.txt?v={hash}");
    for page in ["/page/with", "/page/pairs"] {
        let raw = format!("GET {page} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (s, head, body) = request(&srv, raw.as_bytes());
        assert_eq!(s, 200, "{page}: {head}");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("<link href=\"{url}\">\n<a href='{url}'>"),
            "{page}"
        );
    }
    fetch_versioned(&srv, &url);
}

/// The byte at `offset` of the test files written by `pattern_file`.
fn pattern_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// Writes `size` bytes of `pattern_byte` to `name` in `dir`, 1 MiB at a
/// time (never all in memory: the memory test measures the peak).
fn pattern_file(dir: &TempDir, name: &str, size: usize) {
    let mut f = std::fs::File::create(dir.0.join(name)).unwrap();
    let mut at = 0;
    while at < size {
        let n = (size - at).min(1 << 20);
        let chunk: Vec<u8> = (at..at + n).map(pattern_byte).collect();
        f.write_all(&chunk).unwrap();
        at += n;
    }
}

fn static_server(dir: &TempDir) -> Server {
    let root = dir.0.clone();
    Server::start(move || Application::builder().static_path(root.clone()).build())
}

/// Reads one response whose body is `pattern_byte`s from `first` on,
/// checking them as they arrive (nothing kept): the body's length.
fn read_pattern_response(s: &mut std::net::TcpStream, first: usize) -> (String, usize) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < len {
        let n = s.read(&mut buf[..(len - got).min(64 * 1024)]).unwrap();
        assert!(n > 0, "EOF after {got} of {len} bytes");
        for (i, &byte) in buf[..n].iter().enumerate() {
            assert_eq!(byte, pattern_byte(first + got + i), "byte {}", got + i);
        }
        got += n;
    }
    (head, len)
}

/// A large static file is sent in pieces read as the client takes them:
/// downloading 96 MiB raises the server's peak memory by far less than
/// the file (it was read whole, then copied into the response buffer:
/// about twice its size).
#[test]
fn large_static_file_is_streamed_not_read_whole() {
    // VmHWM is the process's: measured in a process of its own.
    if util::isolated("large_static_file_is_streamed_not_read_whole") {
        return;
    }
    let dir = TempDir::new("static-big");
    let size = 96 << 20;
    pattern_file(&dir, "big.bin", size);
    pattern_file(&dir, "small.bin", 1000);
    let srv = static_server(&dir);
    let (status, _, body) = request(&srv, b"GET /static/small.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status, body.len()), (200, 1000));
    let before = proc_kib("VmHWM");
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, len) = read_pattern_response(&mut s, 0);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(len, size);
    let grew_mib = proc_kib("VmHWM").saturating_sub(before) / 1024;
    assert!(
        grew_mib < 24,
        "a {} MiB download raised the peak by {grew_mib} MiB",
        size >> 20
    );
}

/// Requests pipelined behind a file being sent wait for it, then are
/// answered in order: a range of a 3 MiB file, then the whole small file,
/// then a 404, on one connection written at once.
#[test]
fn requests_pipelined_behind_a_static_file_are_answered_after_it() {
    let dir = TempDir::new("static-pipelined");
    pattern_file(&dir, "big.bin", 3 << 20);
    pattern_file(&dir, "small.bin", 1000);
    let srv = static_server(&dir);
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /static/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\n\r\n\
          GET /static/small.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /static/none.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_pattern_response(&mut s, 0).1, 3 << 20);
    let (head, len) = read_pattern_response(&mut s, 1000);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(len, (3 << 20) - 1000);
    assert_eq!(read_pattern_response(&mut s, 0).1, 1000);
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 404);
}

/// A malformed `If-Modified-Since` is ignored (RFC 9110 §13.1.3), whatever
/// its numbers: a year of 17 digits made the date arithmetic overflow, and
/// the static file answered 500 instead of 200.
#[test]
fn static_file_ignores_an_if_modified_since_with_absurd_numbers() {
    let srv = server();
    for date in [
        "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
        "Sun, 06 Nov -9999999999999999 08:49:37 GMT",
        "Sun, 06 Nov 1994 -8:-49:-37 GMT",
        "Sun, 06 Nov 1994 99999999999999999:00:00 GMT",
    ] {
        let raw =
            format!("GET /static/a.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {date}\r\n\r\n");
        let (status, _, body) = request(&srv, raw.as_bytes());
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"static file"[..]),
            "{date}"
        );
    }
}

/// Sets the framing headers the HTTP layer owns, and header values with
/// control characters.
struct CarelessHeaders;
impl RequestHandler for CarelessHeaders {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        match args[0] {
            "te" => cx.set_header("Transfer-Encoding", "chunked"),
            "long" => cx.set_header("Content-Length", "10"),
            "short" => cx.set_header("Content-Length", "2"),
            _ => cx.set_header("X-Ctl", "a\0b\x01c\x7fd\te"),
        }
        cx.write("hello");
    }
}

/// The HTTP layer frames every response with `Content-Length`; a handler's
/// `Transfer-Encoding: chunked` next to it (RFC 9112 §6.1: a sender MUST NOT
/// send both) makes a client read "hello" as a chunk size and lose the
/// next response on the connection.
#[test]
fn handler_transfer_encoding_does_not_break_response_framing() {
    let srv = Server::start(|| {
        Application::builder()
            .route("/", || Hello)
            .route("/careless/(.*)", || CarelessHeaders)
            .build()
    });
    let mut s = srv.connect();
    s.write_all(b"GET /careless/te HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    assert!(
        header_lines(&head, "Transfer-Encoding").is_empty(),
        "Transfer-Encoding sent with Content-Length: {head}"
    );
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"Hello, world"[..]));
}

/// Deliberately not Tornado (documented on `RequestContext::set_header`):
/// a handler's `Content-Length` that is not its body's, on an answer sent
/// whole, is replaced by the body's, and the connection stays usable.
/// Tornado sends the handler's and then cuts the connection: after the
/// short body (10 announced, 5 sent), or before any byte when the body
/// is longer (2 announced).
#[test]
fn a_handlers_wrong_content_length_is_replaced_by_the_bodys() {
    let srv = Server::start(|| {
        Application::builder()
            .route("/", || Hello)
            .route("/careless/(.*)", || CarelessHeaders)
            .build()
    });
    for case in ["long", "short"] {
        let mut s = srv.connect();
        s.write_all(
            format!(
                "GET /careless/{case} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]), "{case}");
        assert_eq!(
            header_lines(&head, "Content-Length"),
            ["Content-Length: 5"],
            "{case}"
        );
        let (status, _, body) = read_response(&mut s);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"Hello, world"[..]),
            "{case}"
        );
    }
}

/// RFC 9110 §5.5: field values never hold NUL or other control characters
/// (tab aside); a strict client (httparse, hence hyper) refuses the whole
/// response if one does. A handler's value with one is answered 500, as
/// Tornado's `set_header` raises (`Response` itself drops them when it
/// writes, so no response can carry one).
#[test]
fn handler_header_values_with_control_characters_answer_500() {
    let srv = Server::start(|| {
        Application::builder()
            .route("/careless/(.*)", || CarelessHeaders)
            .build()
    });
    let mut s = srv.connect();
    s.write_all(b"GET /careless/ctl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = resp.parse(&raw);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(_))),
        "{parsed:?}: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(resp.code, Some(500));
    assert!(!resp.headers.iter().any(|h| h.name == "X-Ctl"));
}

/// A 1xx is an interim status (RFC 9110 §15.2): sent as a handler's answer
/// it leaves the client waiting for the final one, and the next pipelined
/// response becomes this request's. It is answered 500 instead, and the
/// next request still gets its own answer.
#[test]
fn handler_informational_status_is_not_sent_as_the_final_answer() {
    let srv = server();
    for code in ["100", "101", "103"] {
        let mut s = srv.connect();
        let raw = format!(
            "GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        s.write_all(raw.as_bytes()).unwrap();
        let (status, head, _) = read_response(&mut s);
        assert_eq!(status, 500, "{code}: {head}");
        let (status, _, body) = read_response(&mut s);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"Hello, world"[..]),
            "{code}"
        );
    }
}

/// RFC 9110 §15.3.6: "a server MUST NOT generate content in a 205
/// response" and frames it as empty (`Content-Length: 0`). What the
/// handler wrote was sent as the body (Tornado does the same; it drops a
/// body only for 1xx, 204 and 304); it is dropped now, and the next
/// pipelined request still gets its own answer.
#[test]
fn reset_content_carries_no_content() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(b"GET /status/205 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (205, &b""[..]), "{head}");
    assert!(head.contains("\r\nContent-Length: 0\r\n"), "{head}");
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"Hello, world"[..]));
}

/// Pipelined requests cost linear time however many arrive in one buffer:
/// each answered request used to move everything after it to the front of
/// the receive buffer, so 8 MiB of tiny pipelined requests (300,000) cost
/// O(n²) — seconds of CPU in which the loop served no one else. Another
/// client is answered promptly while they are worked through.
#[test]
fn pipelined_flood_does_not_stall_other_clients() {
    let _m = memory_lock();
    let srv = big_server();
    let flood = srv.connect();
    let one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let all = one.repeat(8 * 1024 * 1024 / one.len());
    let mut w = flood.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&all);
    });
    // Take the answers as fast as they come, so the server is never paused
    // by its write buffer.
    let mut r = flood.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut tmp = vec![0u8; 256 * 1024];
        let _ = r.set_read_timeout(Some(Duration::from_secs(30)));
        while matches!(r.read(&mut tmp), Ok(n) if n > 0) {}
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let (status, _, _) = request(&srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, 200);
        worst = worst.max(t.elapsed());
    }
    let _ = flood.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    reader.join().unwrap();
    assert!(
        worst < Duration::from_secs(1),
        "a client waited {worst:?} while another pipelined 8 MiB of requests"
    );
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
/// code to any HTTP/1.1 request message that lacks a Host header field and
/// to any request message that contains more than one Host header field
/// line or a Host header field with an invalid field value." A Host that
/// cannot be `uri-host[:port]` (a path, userinfo, spaces, markup) was
/// served, and reached handlers that build URLs from it.
#[test]
fn invalid_host_value_is_400() {
    let srv = server();
    for host in [
        "evil.example/x",
        "user@evil.example",
        "a b",
        "<script>",
        "a\"b",
        "a\\b",
        // Not `uri-host [ ":" port ]`: a port that is not digits, a second
        // colon outside brackets, unbalanced or misplaced brackets.
        "x:abc",
        "x:80:80",
        "a:b:c",
        "[::1",
        "[::1]x",
        "[::1]:8a",
        "x]:80",
        "a[::1]",
        "[]",
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let (status, _, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, 400, "Host: {host}");
    }
    for host in [
        "a-b.example:8080",
        "[::1]:80",
        "127.0.0.1",
        "xn--bcher-kva.example",
        "",
        "x:",
        "[::1]",
        "[v1.fe:x]:8",
        "127.0.0.1:8888",
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let (status, _, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, 200, "Host: {host}");
    }
}

/// `GET|HEAD|POST /pipe/(\w+)`: names the request it answers (method, path,
/// the `q` query argument, the body's length), then echoes the body.
struct PipeEcho;
impl RequestHandler for PipeEcho {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let q = cx.get_query_argument("q").unwrap_or_default();
        let req = cx.request();
        let mut out = pipe_summary(req.method(), req.path(), &q, req.body().len()).into_bytes();
        out.extend_from_slice(req.body());
        cx.write(out);
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }
}

fn pipe_summary(method: &str, path: &str, q: &str, len: usize) -> String {
    format!("{method} {path} q={q} len={len}\n")
}

/// xorshift64: a fixed-seed PRNG, so a failing seed reproduces.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// One pipelined request and what its answer must be.
struct PipeReq {
    method: &'static str,
    path: String,
    q: String,
    body: Vec<u8>,
}

/// Builds `n` random pipelined requests and their concatenation: GET and
/// POST (bodies of 0..70 KiB, a third of them chunked in random pieces
/// with extensions and trailers now and then), one HEAD, random extra
/// headers (some lower-case framing headers, some with bare-LF line
/// endings), empty lines before some request lines (RFC 9112 §2.2); the
/// last one asks to close.
/// Also the offsets where heads end, to cut the stream near them.
fn pipeline(rng: &mut XorShift, n: usize) -> (Vec<PipeReq>, Vec<u8>, Vec<usize>) {
    let head_at = 1 + rng.below(n as u64 - 2) as usize;
    let mut reqs = Vec::with_capacity(n);
    let mut wire = Vec::new();
    let mut head_ends = Vec::with_capacity(n);
    for i in 0..n {
        let method = if i == head_at {
            "HEAD"
        } else if rng.chance(2) {
            "POST"
        } else {
            "GET"
        };
        let body: Vec<u8> = if method == "POST" {
            let len = match rng.below(4) {
                0 => 0,
                1 => rng.below(64) as usize,
                _ => rng.below(70 * 1024) as usize,
            };
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            Vec::new()
        };
        let path = format!("/pipe/r{i}");
        let q = format!("v{i}x{}", rng.below(1_000_000));
        let eol = if rng.chance(10) { "\n" } else { "\r\n" };
        for _ in 0..(if rng.chance(8) { 1 + rng.below(3) } else { 0 }) {
            wire.extend_from_slice(if rng.chance(2) { b"\r\n" } else { b"\n" });
        }
        let mut head = format!(
            "{method} {path}?a={}&q={q}&z=1 HTTP/1.1{eol}",
            rng.below(99)
        );
        let mut lines = vec![format!("Host: 127.0.0.1{eol}")];
        for k in 0..rng.below(8) {
            let len = rng.below(200) as usize;
            let value: String = (0..len)
                .map(|_| (b' ' + 1 + rng.below(94) as u8) as char)
                .collect();
            lines.push(format!("X-Pad-{k}: {value}{eol}"));
        }
        let chunked = method == "POST" && rng.chance(3);
        if chunked {
            let name = if rng.chance(3) {
                "transfer-encoding"
            } else {
                "Transfer-Encoding"
            };
            lines.push(format!("{name}: chunked{eol}"));
        } else if method == "POST" && (!body.is_empty() || rng.chance(2)) {
            let name = if rng.chance(3) {
                "content-length"
            } else {
                "Content-Length"
            };
            lines.push(format!("{name}: {}{eol}", body.len()));
        }
        if i == n - 1 {
            lines.push(format!("Connection: close{eol}"));
        } else if rng.chance(5) {
            lines.push(format!("Connection: keep-alive{eol}"));
        }
        // Host first or anywhere among the others.
        let at = rng.below(lines.len() as u64) as usize;
        lines.swap(0, at);
        for l in lines {
            head.push_str(&l);
        }
        head.push_str(eol);
        wire.extend_from_slice(head.as_bytes());
        head_ends.push(wire.len());
        if chunked {
            // The chunked body's own lines end in CRLF whatever the head's.
            let mut at = 0;
            while at < body.len() {
                let max = [16, 1024, 16 * 1024][rng.below(3) as usize];
                let len = (1 + rng.below(max) as usize).min(body.len() - at);
                let size = if rng.chance(2) {
                    format!("{len:x}")
                } else {
                    format!("{len:X}")
                };
                let ext = if rng.chance(5) { ";ext=\"v\"" } else { "" };
                wire.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                wire.extend_from_slice(&body[at..at + len]);
                wire.extend_from_slice(b"\r\n");
                at += len;
            }
            wire.extend_from_slice(b"0\r\n");
            if rng.chance(4) {
                wire.extend_from_slice(b"X-Trailer: t\r\n");
            }
            wire.extend_from_slice(b"\r\n");
        } else {
            wire.extend_from_slice(&body);
        }
        reqs.push(PipeReq {
            method,
            path,
            q,
            body,
        });
    }
    (reqs, wire, head_ends)
}

/// One response from `buf` (refilled from `s`): status, head, body. A
/// HEAD's answer has a Content-Length but no body. `None` on EOF or time out.
fn next_pipe_response(
    s: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Option<(u16, String, Vec<u8>)> {
    let mut tmp = vec![0u8; 64 * 1024];
    let mut fill = |buf: &mut Vec<u8>| match s.read(&mut tmp) {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
        _ => false,
    };
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if !fill(buf) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.get(9..12)?.parse().ok()?;
    let len = header_lines(&head, "Content-Length")
        .first()
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())?;
    let want = end + if head_only { 0 } else { len };
    while buf.len() < want {
        if !fill(buf) {
            return None;
        }
    }
    let body = buf[end..want].to_vec();
    buf.drain(..want);
    Some((status, head, body))
}

/// A few hundred pipelined requests, sent split at random points (1 byte to
/// 100 KiB, with short pauses) while a reader collects the answers: every
/// request gets its own answer, in order, complete, and nothing more. This
/// exercises the server's receive buffer (`InBuf`: the read position,
/// dropping consumed bytes before the next read, taking bodies, trimming)
/// and the head parser on heads and bodies cut at any byte.
#[test]
fn randomly_split_pipelined_requests_are_all_answered_in_order() {
    // Megabytes in flight: not beside the tests that measure RSS.
    let _m = memory_lock();
    let srv = Server::start(|| {
        Application::builder()
            .route(r"/pipe/(\w+)", || PipeEcho)
            .max_header_size(8192)
            .max_body_size(128 * 1024)
            .build()
    });
    let started = std::time::Instant::now();
    for seed in [
        0x9e37_79b9_7f4a_7c15_u64,
        1,
        2,
        0xdead_beef,
        0x0123_4567_89ab_cdef,
    ] {
        let mut rng = XorShift(seed ^ 0x2545_f491_4f6c_dd1d);
        for _ in 0..8 {
            rng.next();
        }
        let n = 200 + rng.below(100) as usize;
        let (reqs, wire, head_ends) = pipeline(&mut rng, n);
        let s = srv.connect();
        s.set_nodelay(true).unwrap();
        let mut r = s.try_clone().unwrap();
        let head_only: Vec<bool> = reqs.iter().map(|q| q.method == "HEAD").collect();
        // Every other seed, the answers are not read at first: the server
        // stops reading once its unsent answers pass its high-water mark,
        // the requests pile up in the kernel, and on resuming it reads
        // them up to its buffer cap, more than one read's worth.
        let slow_reader = seed % 2 == 1;
        let reader = std::thread::spawn(move || {
            if slow_reader {
                std::thread::sleep(Duration::from_millis(300));
            }
            r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for &h in &head_only {
                match next_pipe_response(&mut r, &mut buf, h) {
                    Some(resp) => got.push(resp),
                    None => break,
                }
            }
            // After the last answer (`Connection: close`): EOF, nothing more.
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            buf.extend_from_slice(&rest);
            (got, buf)
        });
        let mut w = s;
        let mut at = 0;
        let mut write_err = None;
        let mut next_end = 0;
        while at < wire.len() {
            // A third of the cuts fall in or just before the next head's
            // final empty line, and the server gets time to see that
            // partial head (so the end-of-head search has to resume across
            // reads); the others are random.
            while next_end < head_ends.len() && head_ends[next_end] <= at + 4 {
                next_end += 1;
            }
            let near_end = next_end < head_ends.len() && rng.chance(3);
            let end = if near_end {
                head_ends[next_end] - 1 - rng.below(4) as usize
            } else {
                let len = match rng.below(4) {
                    0 => 1 + rng.below(16),
                    1 => 1 + rng.below(2048),
                    _ => 1 + rng.below(100 * 1024),
                } as usize;
                (at + len).min(wire.len())
            };
            if let Err(e) = w.write_all(&wire[at..end]) {
                write_err = Some(e);
                break;
            }
            at = end;
            if near_end {
                std::thread::sleep(Duration::from_micros(500 + rng.below(1500)));
            } else if rng.chance(25) {
                std::thread::sleep(Duration::from_micros(rng.below(2000)));
            }
        }
        let (got, trailing) = reader.join().unwrap();
        for (i, (req, resp)) in reqs.iter().zip(&got).enumerate() {
            let (status, head, body) = resp;
            let want = pipe_summary(req.method, &req.path, &req.q, req.body.len());
            let mut want_body = want.clone().into_bytes();
            want_body.extend_from_slice(&req.body);
            assert_eq!(*status, 200, "seed {seed:#x}, request {i}: {head}");
            if req.method == "HEAD" {
                assert!(body.is_empty());
                assert!(
                    head.contains(&format!("Content-Length: {}\r\n", want_body.len())),
                    "seed {seed:#x}, HEAD {i}: {head}"
                );
                continue;
            }
            let summary_len = body.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
            assert_eq!(
                String::from_utf8_lossy(&body[..summary_len]),
                want,
                "seed {seed:#x}, request {i}: answered out of order or for another request"
            );
            assert!(
                *body == want_body,
                "seed {seed:#x}, request {i}: body of {} bytes differs ({} sent)",
                body.len() - summary_len,
                req.body.len()
            );
        }
        assert_eq!(
            got.len(),
            reqs.len(),
            "seed {seed:#x}: {} of {} answered (write error: {write_err:?})",
            got.len(),
            reqs.len()
        );
        assert!(write_err.is_none(), "seed {seed:#x}: {write_err:?}");
        assert!(
            trailing.is_empty(),
            "seed {seed:#x}: {} bytes after the last answer",
            trailing.len()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

// ---- chunked request bodies and absolute-form targets ----

/// A chunked request head for `path` with `extra` header lines.
fn chunked_head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{extra}\r\n")
}

/// `Transfer-Encoding: chunked` (RFC 9112 §7.1, Tornado's
/// `_read_chunked_body`): the handler sees the decoded body, as it would a
/// `Content-Length` one; chunk extensions and trailer fields are dropped.
/// (Was 411 "Chunked request bodies are not supported".)
#[test]
fn chunked_request_body_reaches_the_handler_decoded() {
    let srv = server();
    let mut raw = chunked_head("/echo", "").into_bytes();
    raw.extend_from_slice(
        b"5;ext=1\r\nhello\r\n7 ;a=\"b c\";z\r\n, world\r\n00B\r\n 0123\r\n5678\r\n\
          0;last=yes\r\nX-Checksum: abc\r\nX-Other:\r\n\r\n",
    );
    let (status, head, body) = request(&srv, &raw);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "hello, world 0123\r\n5678"),
        "{head}"
    );
    // Header name and value in any case; an empty body; what the
    // request says about itself.
    let raw = "POST /target HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n\
               3\r\nabc\r\n0\r\n\r\n";
    let (status, _, body) = request(&srv, raw.as_bytes());
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            200,
            "path=/target query= uri=/target host=x chunked=true length=0 body=abc"
        )
    );
    let (status, _, body) = request(
        &srv,
        format!("{}0\r\n\r\n", chunked_head("/echo", "")).as_bytes(),
    );
    assert_eq!((status, body.as_slice()), (200, &b""[..]));
}

/// The chunked body is consumed exactly: the requests pipelined after it
/// (chunked, Content-Length or none) are answered in order on the same
/// connection.
#[test]
fn chunked_body_then_pipelined_requests_in_order() {
    let srv = server();
    let mut s = srv.connect();
    let mut raw = chunked_head("/echo", "").into_bytes();
    raw.extend_from_slice(b"3\r\nabc\r\n0\r\nT: 1\r\n\r\n");
    raw.extend_from_slice(b"GET /items/a/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nxy");
    raw.extend_from_slice(chunked_head("/echo", "Connection: close\r\n").as_bytes());
    raw.extend_from_slice(b"1\r\nz\r\n0\r\n\r\n");
    s.write_all(&raw).unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let (status, _, body) = read_response(&mut s);
        got.push((status, String::from_utf8(body).unwrap()));
    }
    let want: Vec<(u16, String)> = [(200, "abc"), (200, "args=a,1"), (200, "xy"), (200, "z")]
        .iter()
        .map(|(s, b)| (*s, b.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(util::wait_closed(&mut s, Duration::from_secs(5)));
}

/// `Expect: 100-continue` with a chunked body: the interim answer comes
/// once the head is in, as for a `Content-Length` body, and not when the
/// body came with the head.
#[test]
fn expect_100_continue_with_a_chunked_body() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(chunked_head("/echo", "Expect: 100-continue\r\n").as_bytes())
        .unwrap();
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; interim.len()];
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.read_exact(&mut got)
        .expect("an interim answer within 1.5 s");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(interim)
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"4\r\nbody\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b"0\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"body"[..]));

    // The body came with the head: the final answer first.
    let mut raw = chunked_head("/echo", "Expect: 100-continue\r\n").into_bytes();
    raw.extend_from_slice(b"2\r\nhi\r\n0\r\n\r\n");
    let (status, head, body) = request(&srv, &raw);
    assert_eq!((status, body.as_slice()), (200, &b"hi"[..]), "{head}");
}

/// Refused framing, with the status each gets (RFC 9112 §6.1, §6.3,
/// §7.1): 400 for Transfer-Encoding with Content-Length, on HTTP/1.0,
/// `chunked` not final or twice (also across two fields), malformed
/// chunk sizes and lines; 501 for a coding before `chunked`. (All were
/// 411.)
#[test]
fn chunked_refusals_have_their_statuses() {
    let srv = server();
    let body = "5\r\nhello\r\n0\r\n\r\n";
    let mut cases: Vec<(String, u16)> = [
        ("Transfer-Encoding: chunked\r\nContent-Length: 15\r\n", 400),
        ("Content-Length: 15\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: chunked, gzip\r\n", 400),
        ("Transfer-Encoding: identity\r\n", 400),
        ("Transfer-Encoding: chunked, chunked\r\n", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            400,
        ),
        ("Transfer-Encoding: chunked;foo=bar\r\n", 400),
        ("Transfer-Encoding: \r\n", 400),
    ]
    .iter()
    .map(|(h, st)| {
        (
            format!("POST /echo HTTP/1.1\r\nHost: x\r\n{h}\r\n{body}"),
            *st,
        )
    })
    .collect();
    cases.push((
        format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
        400,
    ));
    for bad in [
        "+5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5 5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "00000000000000005\r\nhello\r\n0\r\n\r\n",
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\n",
        "5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n",
    ] {
        cases.push((format!("{}{bad}", chunked_head("/echo", "")), 400));
    }
    let mut wrong = Vec::new();
    for (raw, want) in &cases {
        let (status, head, _) = request(&srv, raw.as_bytes());
        let reason_ok = match want {
            501 => head.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
            _ => head.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        };
        if status != *want || !reason_ok || !head.contains("Connection: close") {
            wrong.push(format!("{raw:?} -> {:?}", head.lines().next()));
        }
    }
    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");
}

/// The decoded body is held to `max_body_size` (1024 here) as a
/// `Content-Length` one is (413): a chunk that would pass it is refused
/// from its size line, before its data is sent.
#[test]
fn chunked_body_over_max_body_size_is_413() {
    let srv = server();
    let a = "a".repeat(1000);
    let raw = format!(
        "{}3e8\r\n{a}\r\n18\r\n{}\r\n0\r\n\r\n",
        chunked_head("/echo", ""),
        "b".repeat(24)
    );
    let (status, _, body) = request(&srv, raw.as_bytes());
    assert_eq!((status, body.len()), (200, 1024), "exactly the limit");
    let raw = format!(
        "{}3e8\r\n{a}\r\n19\r\n{}\r\n0\r\n\r\n",
        chunked_head("/echo", ""),
        "b".repeat(25)
    );
    let (status, _, _) = request(&srv, raw.as_bytes());
    assert_eq!(status, 413, "one byte over");
    // A huge chunk announced: answered without waiting for its data.
    let mut s = srv.connect();
    s.write_all(format!("{}100000\r\nabc", chunked_head("/echo", "")).as_bytes())
        .unwrap();
    let (got, _) = util::read_within(&mut s, Duration::from_secs(3));
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{got:?}"
    );
}

/// Encoded overhead is bounded, not only the decoded body: one-byte chunks
/// stop at the body limit (413); a chunk-size line over 4 KiB of
/// extensions, extensions out of proportion to the data they carry, and
/// trailers over the head limit are refused (400, 400, 431); the server
/// goes on serving others meanwhile.
#[test]
fn chunked_framing_floods_are_bounded() {
    let srv = server();
    let tiny = "1\r\nx\r\n";
    let raw = format!(
        "{}{}0\r\n\r\n",
        chunked_head("/echo", ""),
        tiny.repeat(1024)
    );
    let (status, _, body) = request(&srv, raw.as_bytes());
    assert_eq!((status, body.len()), (200, 1024));
    let raw = format!("{}{}", chunked_head("/echo", ""), tiny.repeat(5000));
    let (status, _, _) = request(&srv, raw.as_bytes());
    assert_eq!(status, 413, "a tiny-chunk flood stops at the body limit");
    let long_ext = format!(
        "{}1;{}\r\nx\r\n0\r\n\r\n",
        chunked_head("/echo", ""),
        "e".repeat(5000)
    );
    let (status, _, _) = request(&srv, long_ext.as_bytes());
    assert_eq!(status, 400, "a chunk-size line over 4 KiB");
    let ext_flood = format!(
        "{}{}0\r\n\r\n",
        chunked_head("/echo", ""),
        format!("1;{}\r\nx\r\n", "e".repeat(2000)).repeat(20)
    );
    let (status, _, _) = request(&srv, ext_flood.as_bytes());
    assert_eq!(status, 400, "40 KB of extensions for 20 bytes of data");
    let trailers = format!(
        "{}0\r\n{}\r\n",
        chunked_head("/echo", ""),
        "X-T: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n".repeat(200)
    );
    let (status, _, _) = request(&srv, trailers.as_bytes());
    assert_eq!(status, 431, "trailers over the 4 KiB head limit");
    let (status, _, _) = request(&srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
}

/// Two MiB in one-byte chunks (12 MiB on the wire) against a 16 MiB
/// limit: decoded as it arrives, in time linear in the bytes.
#[test]
fn chunked_tiny_chunk_flood_is_decoded_in_linear_time() {
    let _m = memory_lock();
    let srv = big_server();
    let n = 2 * 1024 * 1024;
    let mut raw = chunked_head("/len", "").into_bytes();
    raw.reserve(6 * n + 5);
    for _ in 0..n {
        raw.extend_from_slice(b"1\r\nx\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let started = std::time::Instant::now();
    let (status, _, body) = request(&srv, &raw);
    assert_eq!((status, body), (200, n.to_string().into_bytes()));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A chunked body trickled one byte per write (the decoder keeps its state
/// between reads).
#[test]
fn chunked_body_delivered_byte_by_byte() {
    let srv = server();
    let mut raw = chunked_head("/echo", "").into_bytes();
    raw.extend_from_slice(b"3;e=\"x\"\r\nabc\r\n0a\r\n0123456789\r\n0\r\nT: v\r\n\r\n");
    let mut s = trickle(&srv, raw.as_ref());
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (200, &b"abc0123456789"[..]));
}

/// RFC 9112 §3.2.2: "a server MUST accept the absolute-form in requests":
/// routed by the path after the authority (`/` without one), with its
/// query; the Host header is still required, and `host()` is the
/// authority (RFC 9112 §3.2.2: the Host header is then ignored).
/// Schemes other than http(s), an empty authority and userinfo are 400.
/// (All were 404.)
#[test]
fn absolute_form_targets_route_by_their_path() {
    let srv = server();
    let get = |target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (status, _, body) = request(&srv, raw.as_bytes());
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(
        get("http://example.com/items/a/1"),
        (200, "args=a,1".into())
    );
    assert_eq!(get("http://example.com"), (200, "Hello, world".into()));
    assert_eq!(get("http://example.com?q=1"), (200, "Hello, world".into()));
    assert_eq!(
        get("HTTPS://Example.COM:8443/target?q=1&r=2"),
        (
            200,
            "path=/target query=q=1&r=2 uri=HTTPS://Example.COM:8443/target?q=1&r=2 host=Example.COM:8443 \
             chunked=false length=0 body="
                .into()
        )
    );
    for bad in [
        "ftp://example.com/",
        "ws://example.com/ws",
        "http:///",
        "http://user@example.com/",
        "http:example.com/",
        "example.com/",
    ] {
        assert_eq!(get(bad).0, 400, "{bad}");
    }
    // A WebSocket handshake in absolute-form.
    let mut w = srv.connect();
    w.write_all(upgrade_request("http://127.0.0.1/ws", "").as_bytes())
        .unwrap();
    let (status, head, _) = read_response(&mut w);
    assert_eq!(status, 101, "{head}");
}

/// `/history?n=`: the last `n` messages rendered with `render_with`, as
/// Tornado's chat demo renders its message cache server-side.
struct History;
impl RequestHandler for History {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        #[derive(serde::Serialize)]
        struct Message {
            id: usize,
            from: &'static str,
            body: String,
            mine: bool,
        }
        #[derive(serde::Serialize)]
        struct Page {
            title: &'static str,
            messages: Vec<Message>,
        }
        let n: usize = cx
            .get_argument("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let messages = (1..=n)
            .map(|id| Message {
                id,
                from: if id % 2 == 0 { "bob" } else { "ann" },
                body: format!("<m{id}>"),
                mine: id % 2 == 1,
            })
            .collect();
        let page = Page {
            title: "Room & board",
            messages,
        };
        cx.render_with("chat/index.html", &page);
    }
}

/// `render_with` over a socket: a list with `{% for %}` and `{% if %}`, each
/// element through an `{% include %}` resolved relative to the page; an
/// empty list takes the `{% else %}` branch, on the same connection.
#[test]
fn render_with_loops_conditionals_and_includes_over_http() {
    let dir = std::env::temp_dir().join(format!("cyclone-templates-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("chat")).unwrap();
    std::fs::write(
        dir.join("chat/index.html"),
        "<h1>{{ title }}</h1>\n{% if messages %}<ul>\
         {% for message in messages %}{% include \"message.html\" %}{% end %}\
         </ul>{% else %}<p>No messages yet</p>{% end %}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("chat/message.html"),
        "<li id=\"m{{ message.id }}\"{% if message.mine %} class=\"mine\"{% end %}>\
         {{ message.from }}: {{ message.body }}</li>",
    )
    .unwrap();
    let templates = dir.clone();
    let srv = Server::start(move || {
        Application::builder()
            .template_path(templates)
            .route("/history", || History)
            .build()
    });
    let mut s = srv.connect();
    let mut get = |target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(raw.as_bytes()).unwrap();
        let (status, _, body) = read_response(&mut s);
        (status, String::from_utf8(body).unwrap())
    };
    assert_eq!(
        get("/history?n=3"),
        (
            200,
            "<h1>Room &amp; board</h1>\n<ul>\
             <li id=\"m1\" class=\"mine\">ann: &lt;m1&gt;</li>\
             <li id=\"m2\">bob: &lt;m2&gt;</li>\
             <li id=\"m3\" class=\"mine\">ann: &lt;m3&gt;</li>\
             </ul>\n"
                .into()
        )
    );
    assert_eq!(
        get("/history"),
        (
            200,
            "<h1>Room &amp; board</h1>\n<p>No messages yet</p>\n".into()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that takes a large file as fast as the loop sends it does not
/// hold the loop: another connection's request is answered while the
/// download is still under way. (The file's budget per flush asked for a
/// flush "next tick" through the dirty list, but the loop's flush of the
/// dirty list runs until the list is empty, so the whole file went in one
/// flush whenever the kernel kept up, and every other connection waited.)
#[test]
fn a_fast_download_does_not_hold_the_loop() {
    let dir = TempDir::new("static-fast");
    // Sparse: 4 GiB of zeros, read from no disk.
    let big = std::fs::File::create(dir.0.join("big.bin")).unwrap();
    big.set_len(4 << 30).unwrap();
    drop(big);
    dir.file("small.txt", "small");
    let srv = static_server(&dir);
    let mut a = srv.connect();
    a.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (done, stop) = (done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0u64;
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && std::time::Instant::now() < until
            {
                match a.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n as u64,
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            got
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let t0 = std::time::Instant::now();
    let (status, _, body) = request(&srv, b"GET /static/small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let waited = t0.elapsed();
    let download_over = done.load(std::sync::atomic::Ordering::SeqCst);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let got = reader.join().unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"small"[..]));
    assert!(
        !download_over && waited < Duration::from_secs(2),
        "the small request waited {waited:?} for the download ({got} bytes, over: {download_over})"
    );
}

/// `If-Range` (RFC 9110 §13.1.5): the range is sent only while the file
/// still has the validator the client holds (its ETag, compared strongly,
/// or its Last-Modified date); otherwise the whole file with 200. A client
/// resuming a download of a file changed since got a 206 of the new file
/// and spliced it onto the old one.
#[test]
fn static_file_range_with_if_range() {
    let (_dir, srv) = own_static_server("if-range");
    let (_, head, _) = request(&srv, b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let etag = header(&head, "etag").expect("ETag").to_string();
    let modified = header(&head, "last-modified")
        .expect("Last-Modified")
        .to_string();
    for (if_range, status, body) in [
        (etag.clone(), 206, "atic"),
        (modified.clone(), 206, "atic"),
        ("\"other\"".to_string(), 200, "static file"),
        (format!("W/{etag}"), 200, "static file"),
        (
            "Sun, 06 Nov 1994 08:49:37 GMT".to_string(),
            200,
            "static file",
        ),
        ("garbage".to_string(), 200, "static file"),
    ] {
        let raw = format!(
            "GET /static/a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-5\r\nIf-Range: {if_range}\r\n\r\n"
        );
        let (s, head, got) = request(&srv, raw.as_bytes());
        assert_eq!(
            (s, String::from_utf8_lossy(&got).as_ref()),
            (status, body),
            "If-Range: {if_range}: {head}"
        );
    }
}

/// A static file server with a short idle timeout.
fn static_server_idle(dir: &TempDir, idle: Duration) -> Server {
    let root = dir.0.clone();
    Server::start(move || {
        Application::builder()
            .static_path(root.clone())
            .idle_timeout(idle)
            .build()
    })
}

/// Reads a response head byte by byte.
fn read_head(s: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A client that stops reading in the middle of a file is dropped at the
/// idle timeout (not kept while the file lasts), and a file cut short
/// while it is sent ends the connection after what it had: the client
/// never waits for bytes that will not come.
#[test]
fn a_stalled_download_is_dropped_and_a_truncated_file_ends_the_connection() {
    let dir = TempDir::new("static-stall");
    let size = 256u64 << 20;
    for name in ["stall.bin", "cut.bin"] {
        let f = std::fs::File::create(dir.0.join(name)).unwrap();
        f.set_len(size).unwrap();
    }
    let srv = static_server_idle(&dir, Duration::from_millis(200));
    let mut s = srv.connect();
    s.write_all(b"GET /static/stall.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(1500));
    let (got, end) = read_within(&mut s, Duration::from_secs(10));
    assert!(
        end != ReadEnd::Timeout && (got.len() as u64) < size,
        "{end:?} after {} bytes",
        got.len()
    );

    let mut s = srv.connect();
    s.write_all(b"GET /static/cut.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut s);
    assert_eq!(header(&head, "content-length"), Some("268435456"), "{head}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.0.join("cut.bin"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let (got, end) = read_within(&mut s, Duration::from_secs(10));
    assert!(
        end != ReadEnd::Timeout && (got.len() as u64) < size,
        "{end:?} after {} bytes",
        got.len()
    );
}

/// Offsets past 4 GiB: a range near the end of a 5 GiB (sparse) file is
/// the right bytes with the right `Content-Range`.
#[test]
fn static_file_range_past_4_gib() {
    use std::io::{Seek, SeekFrom};
    let dir = TempDir::new("static-huge");
    let size: u64 = 5 << 30;
    let mut f = std::fs::File::create(dir.0.join("huge.bin")).unwrap();
    f.set_len(size).unwrap();
    f.seek(SeekFrom::Start((9 << 29) + 1)).unwrap();
    f.write_all(b"marker").unwrap();
    drop(f);
    let srv = static_server(&dir);
    let first = 9u64 << 29;
    let raw = format!(
        "GET /static/huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={first}-{}\r\n\r\n",
        first + 9
    );
    let (status, head, body) = request(&srv, raw.as_bytes());
    assert_eq!(status, 206, "{head}");
    let want = format!("bytes {first}-{}/{size}", first + 9);
    assert_eq!(header(&head, "content-range"), Some(want.as_str()));
    assert_eq!(body, b"\0marker\0\0\0");
    let (status, head, body) = request(
        &srv,
        b"GET /static/huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-3\r\n\r\n",
    );
    assert_eq!((status, body.as_slice()), (206, &b"\0\0\0"[..]), "{head}");
}

/// A WebSocket upgrade pipelined behind a static file is answered after
/// the whole file, and the WebSocket then works, frames sent with the
/// upgrade included.
#[test]
fn upgrade_pipelined_behind_a_static_file() {
    let srv = server();
    let mut s = srv.connect();
    let mut raw = b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=-4\r\n\r\n".to_vec();
    raw.extend_from_slice(upgrade_request("/ws", "").as_bytes());
    raw.extend_from_slice(&util::client_frame(true, 1, b"hi"));
    s.write_all(&raw).unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!((status, body.as_slice()), (206, &b"file"[..]), "{head}");
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    let (_, op, payload) = util::read_frame(&mut s).unwrap();
    assert_eq!((op, payload.as_slice()), (1, &b"hi"[..]));
}

/// Reports the route's named captures and its positional args.
struct Kwargs;

impl RequestHandler for Kwargs {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let said = format!(
            "{:?} {:?} {:?} {args:?}",
            cx.path_kwarg("year"),
            cx.path_kwarg("slug"),
            cx.path_kwarg("nope")
        );
        cx.write(said);
    }
}

/// Named groups reach a handler as Tornado's `get(**kwargs)` through
/// `path_kwarg`, percent-decoded; `args` keeps every capture in order.
#[test]
fn named_route_captures_reach_the_handler() {
    let srv = Server::start(|| {
        Application::builder()
            .route(r"/articles/(?P<year>\d{4})/(\w+)/(?P<slug>[^/]*)", || {
                Kwargs
            })
            .build()
    });
    let (status, _, body) = request(
        &srv,
        b"GET /articles/2026/news/caf%C3%A9-au-lait HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"Some("2026") Some("café-au-lait") None ["2026", "news", "café-au-lait"]"#
    );
}

// ---- signed cookies (Tornado's set_secure_cookie / get_secure_cookie) ----

const COOKIE_SECRET: &str = "test secret: not for production";

/// `/login?user=..` signs `user`; `/whoami` reads it back.
struct Login;
impl RequestHandler for Login {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let user = cx.get_argument("user").unwrap_or_default();
        cx.set_secure_cookie("user", user.as_bytes());
        cx.write("ok");
    }
}

struct WhoAmI;
impl RequestHandler for WhoAmI {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        match cx.get_secure_cookie("user") {
            Some(u) => cx.write(u),
            None => cx.send_error(403),
        }
    }
}

/// Whoever the signed cookie names, refused before the upgrade without one.
struct Members {
    user: String,
}
impl WebSocketHandler for Members {
    fn prepare(&mut self, req: &cyclone::http::Request) -> Result<(), cyclone::http::Response> {
        if req.query_argument("panic").is_some() {
            panic!("prepare panicked");
        }
        match req.signed_cookie(COOKIE_SECRET, "user") {
            Some(u) => {
                self.user = String::from_utf8(u).unwrap();
                Ok(())
            }
            None => Err(cyclone::http::Response::error(403, Some("log in first"))),
        }
    }
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        // The same cookie through the route's cookie_secret.
        let again = ws.get_secure_cookie("user").unwrap();
        let _ = ws.write_message(format!("hello {} ({})", self.user, again.len()));
    }
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

fn cookie_server(secret: Option<&'static str>) -> Server {
    Server::start(move || {
        let b = Application::builder()
            .route("/login", || Login)
            .route("/whoami", || WhoAmI)
            .websocket("/members", |_r| Members {
                user: String::new(),
            });
        match secret {
            Some(s) => b.cookie_secret(s).build(),
            None => b.build(),
        }
    })
}

fn get_with_cookie(srv: &Server, path: &str, cookie: &str) -> (u16, String, Vec<u8>) {
    request(
        srv,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: other=1; {cookie}\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn secure_cookie_round_trip_and_forgeries_refused() {
    let srv = cookie_server(Some(COOKIE_SECRET));
    let (status, head, _) = request(
        &srv,
        b"GET /login?user=alice HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    let line = head
        .lines()
        .find(|l| l.starts_with("Set-Cookie: user="))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    // user=2|1:0|10:<ts>|4:user|8:YWxpY2U=|<sig>; Expires=<30 days>; Path=/
    let value = line["Set-Cookie: ".len()..].split(';').next().unwrap();
    assert!(value.starts_with("user=2|1:0|10:"), "{line}");
    assert!(value.contains("|4:user|8:YWxpY2U=|"), "{line}");
    assert!(
        line.contains("; Expires=") && line.ends_with("; Path=/"),
        "{line}"
    );
    let (status, _, body) = get_with_cookie(&srv, "/whoami", value);
    assert_eq!((status, body.as_slice()), (200, &b"alice"[..]));

    // The value re-signed under another name, another secret, a changed
    // payload (bob) with alice's signature: all refused.
    let signed = &value["user=".len()..];
    let forged = [
        format!("user={}", signed.replace("YWxpY2U=", "Ym9iYm9i")),
        format!(
            "user={}",
            cyclone::web::create_signed_value("guessed", "user", b"alice")
        ),
        format!(
            "user={}",
            cyclone::web::create_signed_value(COOKIE_SECRET, "admin", b"alice")
        ),
        "user=alice".to_owned(),
    ];
    for f in &forged {
        let (status, _, _) = get_with_cookie(&srv, "/whoami", f);
        assert_eq!(status, 403, "{f}");
    }
    // Python's SimpleCookie (a Tornado application) writes this value in
    // double quotes, because of its '=' and '/': it is read the same.
    let quoted = cyclone::web::create_signed_value(COOKIE_SECRET, "user", b"carol");
    let (status, _, body) = get_with_cookie(&srv, "/whoami", &format!("user=\"{quoted}\""));
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"carol"[..]),
        "a quoted value (as Python's SimpleCookie writes it) is read"
    );
}

#[test]
fn websocket_prepare_refuses_before_the_upgrade_and_reads_the_signed_cookie() {
    let srv = cookie_server(Some(COOKIE_SECRET));
    // No cookie: the handler's own 403, no upgrade.
    let (status, _, body) = request(&srv, upgrade_request("/members", "").as_bytes());
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("log in first"));
    // A panic in prepare answers 500, and the server goes on.
    let (status, _, _) = request(&srv, upgrade_request("/members?panic=1", "").as_bytes());
    assert_eq!(status, 500);
    // With the cookie: 101, and open reads the cookie again through the
    // application's cookie_secret.
    let cookie = cyclone::web::create_signed_value(COOKIE_SECRET, "user", b"dave");
    let mut s = srv.connect();
    s.write_all(upgrade_request("/members", &format!("Cookie: user={cookie}\r\n")).as_bytes())
        .unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    let (_, op, payload) = util::read_frame(&mut s).unwrap();
    assert_eq!((op, payload.as_slice()), (1, &b"hello dave (4)"[..]));
}

#[test]
fn secure_cookie_without_a_secret_is_a_500_not_an_unsigned_cookie() {
    let srv = cookie_server(None);
    let (status, head, _) = request(
        &srv,
        b"GET /login?user=alice HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(status, 500, "{head}");
    assert!(!head.contains("Set-Cookie"), "{head}");
    let cookie = cyclone::web::create_signed_value(COOKIE_SECRET, "user", b"erin");
    let (status, _, _) = get_with_cookie(&srv, "/whoami", &format!("user={cookie}"));
    assert_eq!(status, 403);
}

// ---- Tornado's RequestHandler hooks: set_default_headers, prepare, write_error, on_finish ----

/// `/hooks/(\w+)`: `prepare` refuses `deny` (403) and redirects `old`;
/// `get` answers `ok`, or sends a 404 for `missing`; errors are JSON from
/// `write_error` unless the path is `plain`; every response gets the
/// default headers; `on_finish` records the status.
struct Hooks {
    finished: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
}
impl RequestHandler for Hooks {
    fn set_default_headers(&mut self, cx: &mut RequestContext<'_>) {
        cx.set_header("Access-Control-Allow-Origin", "*");
        cx.set_header("X-Frame-Options", "DENY");
    }
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        match cx.request().path() {
            "/hooks/deny" => cx.send_error(403),
            "/hooks/old" => cx.redirect("/hooks/new", true),
            _ => {}
        }
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        match args[0] {
            "deny" | "old" => panic!("the method ran after prepare finished"),
            "missing" | "plain" => cx.send_error(404),
            _ => cx.write("ok"),
        }
    }
    fn write_error(&mut self, cx: &mut RequestContext<'_>, status: u16) {
        if cx.request().path() != "/hooks/plain" {
            cx.write_json(&serde_json::json!({ "error": status }));
        }
    }
    fn on_finish(&mut self, status: u16) {
        self.finished.lock().unwrap().push(status);
    }
}

#[test]
fn request_handler_hooks_as_in_tornado() {
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let f = finished.clone();
    let srv = Server::start(move || {
        Application::builder()
            .route(r"/hooks/(\w+)", move || Hooks {
                finished: f.clone(),
            })
            .build()
    });
    let get = |path: &str, method: &str| {
        request(
            &srv,
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
    };
    let defaults = |head: &str| {
        head.contains("\r\nAccess-Control-Allow-Origin: *\r\n")
            && head.contains("\r\nX-Frame-Options: DENY\r\n")
    };
    let (status, head, body) = get("/hooks/fine", "GET");
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    assert!(defaults(&head), "{head}");
    // An error from the method: the handler's page and its default headers.
    let (status, head, body) = get("/hooks/missing", "GET");
    assert_eq!(status, 404);
    assert_eq!(body, br#"{"error":404}"#);
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert!(defaults(&head), "{head}");
    // write_error writing nothing keeps Tornado's page.
    let (status, head, body) = get("/hooks/plain", "GET");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("<title>404: Not Found</title>"));
    assert!(defaults(&head), "{head}");
    // prepare finishing the response: the method never runs.
    let (status, head, body) = get("/hooks/deny", "GET");
    assert_eq!((status, body.as_slice()), (403, &br#"{"error":403}"#[..]));
    assert!(defaults(&head), "{head}");
    let (status, head, _) = get("/hooks/old", "GET");
    assert_eq!(status, 301);
    assert!(head.contains("Location: /hooks/new"), "{head}");
    assert!(defaults(&head), "{head}");
    // A method the handler does not support: 405, still dressed.
    let (status, head, body) = get("/hooks/fine", "POST");
    assert_eq!((status, body.as_slice()), (405, &br#"{"error":405}"#[..]));
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    assert!(defaults(&head), "{head}");
    assert_eq!(
        *finished.lock().unwrap(),
        vec![200, 404, 404, 403, 301, 405]
    );
}

/// An empty `cookie_secret` is no secret: HMAC with an empty key is
/// anyone's to compute. Tornado's `require_setting` treats it as missing
/// (`if not settings.get("cookie_secret")`: raises), so signing must be
/// the 500 of a missing secret and a value "signed" with "" must not be
/// accepted — by a handler or by a WebSocket route.
#[test]
fn an_empty_cookie_secret_is_no_secret() {
    let srv = cookie_server(Some(""));
    let (status, head, _) = request(
        &srv,
        b"GET /login?user=alice HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(status, 500, "signing with an empty secret: {head}");
    assert!(!head.contains("Set-Cookie"), "{head}");
    let forged = cyclone::web::create_signed_value("", "user", b"admin");
    let (status, _, body) = get_with_cookie(&srv, "/whoami", &format!("user={forged}"));
    assert_eq!(
        status,
        403,
        "a cookie anyone can sign was accepted: {:?}",
        String::from_utf8_lossy(&body)
    );
}

/// `cyclone_websocket_handshakes_total` counts server handshakes "by
/// result (ok, or the HTTP status answered)": one refused by the
/// handler's `prepare` with a 403 is a handshake answered 403, as one
/// refused by `check_origin` is (and the router's 405 is counted too).
#[test]
fn a_handshake_refused_by_prepare_is_counted_by_its_status() {
    use cyclone::ioloop::Counter;
    let srv = cookie_server(Some(COOKIE_SECRET));
    let (status, _, _) = request(&srv, upgrade_request("/members", "").as_bytes());
    assert_eq!(status, 403);
    let m = srv.metrics();
    assert_eq!(
        (m.get(Counter::HandshakeForbidden), m.get(Counter::Upgrades)),
        (1, 0),
        "{m:?}"
    );
}

/// `{:?}` of the application or its settings (a startup log line) says
/// there is a secret, never what it is.
#[test]
fn the_cookie_secret_is_not_in_debug_output() {
    let app = Application::builder()
        .cookie_secret("hunter2-very-secret")
        .websocket("/members", |_r| Members {
            user: String::new(),
        })
        .build();
    let dbg = format!("{app:?} {:?}", app.settings());
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("cookie_secret: Some(\"<redacted>\")"), "{dbg}");
    // Rotated secrets: none of them, on the application or its WebSocket
    // routes; the key versions may show.
    let app = Application::builder()
        .cookie_secrets([(1, "hunter1-retired"), (2, "hunter2-current")])
        .key_version(2)
        .websocket("/members", |_r| Members {
            user: String::new(),
        })
        .build();
    let secret = app.settings().cookie_secret.clone().unwrap();
    let dbg = format!("{app:?} {:?} {secret:?}", app.settings());
    assert!(!dbg.contains("hunter"), "{dbg}");
    assert!(dbg.contains("cookie_secret: Some(\"<redacted>\")"), "{dbg}");
    assert!(dbg.contains("key_version: Some(2)"), "{dbg}");
    assert!(
        dbg.contains("Versioned({1: <redacted>, 2: <redacted>})"),
        "{dbg}"
    );
}

// ---- key rotation (Tornado's cookie_secret dictionary and key_version) ----

const OLD_KEY: &str = "retired secret: signed last month's cookies";
const NEW_KEY: &str = "current secret: signs from now on";

/// `/rotating`: the user the signed cookie names, with the cookie signed
/// again with the current key when another key signed it (the rotation
/// idiom); the key version it had in `X-Key-Version`.
struct Rotating;
impl RequestHandler for Rotating {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let Some(user) = cx.get_secure_cookie("user") else {
            return cx.send_error(403);
        };
        let kv = cx.get_secure_cookie_key_version("user");
        if kv != cx.settings().key_version {
            cx.set_secure_cookie("user", &user);
        }
        cx.set_header("X-Key-Version", format!("{kv:?}"));
        cx.write(user);
    }
}

/// A WebSocket route saying whom the signed cookie names.
struct WhoOverWebSocket;
impl WebSocketHandler for WhoOverWebSocket {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        let who = ws.get_secure_cookie("user").map(String::from_utf8);
        let _ = ws.write_message(format!("{who:?}"));
    }
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

fn rotated_server(key_version: Option<u32>) -> Server {
    Server::start(move || {
        let b = Application::builder()
            .cookie_secrets([(1, OLD_KEY), (2, NEW_KEY)])
            .route("/login", || Login)
            .route("/whoami", || WhoAmI)
            .route("/rotating", || Rotating)
            .websocket("/who", |_r| WhoOverWebSocket);
        match key_version {
            Some(v) => b.key_version(v).build(),
            None => b.build(),
        }
    })
}

fn set_cookie_value(head: &str) -> Option<&str> {
    let line = head.lines().find(|l| l.starts_with("Set-Cookie: user="))?;
    line["Set-Cookie: ".len()..].split(';').next()
}

#[test]
fn rotated_secrets_read_the_old_key_and_sign_with_the_current_one() {
    use cyclone::web::signed::get_signature_key_version;
    let srv = rotated_server(Some(2));
    // A cookie of last month's application, which had key 1 only.
    let by_old = CookieSecret::versioned([(1, OLD_KEY)])
        .create_signed_value(Some(1), "user", b"alice")
        .unwrap();
    assert!(by_old.starts_with("2|1:1|10:"), "{by_old}");
    let (status, head, body) = get_with_cookie(&srv, "/rotating", &format!("user={by_old}"));
    assert_eq!((status, body.as_slice()), (200, &b"alice"[..]), "{head}");
    assert!(head.contains("\r\nX-Key-Version: Some(1)\r\n"), "{head}");
    // Signed again with key 2, which key 1 alone does not read.
    let renewed = set_cookie_value(&head).unwrap_or_else(|| panic!("not signed again: {head}"));
    let signed = &renewed["user=".len()..];
    assert!(signed.starts_with("2|1:2|10:"), "{renewed}");
    assert_eq!(get_signature_key_version(signed), Some(2));
    assert_eq!(
        CookieSecret::versioned([(2, NEW_KEY)])
            .decode_signed_value("user", signed)
            .as_deref(),
        Some(&b"alice"[..])
    );
    assert_eq!(
        CookieSecret::versioned([(1, OLD_KEY)]).decode_signed_value("user", signed),
        None
    );
    // Tornado's str secret ignores the key version: the new key alone reads it.
    assert_eq!(
        cyclone::web::decode_signed_value(NEW_KEY, "user", signed).as_deref(),
        Some(&b"alice"[..])
    );
    // The renewed cookie is read and left alone.
    let (status, head, body) = get_with_cookie(&srv, "/rotating", renewed);
    assert_eq!((status, body.as_slice()), (200, &b"alice"[..]), "{head}");
    assert!(head.contains("\r\nX-Key-Version: Some(2)\r\n"), "{head}");
    assert_eq!(set_cookie_value(&head), None, "{head}");
    // A login signs with key 2.
    let (status, head, _) = request(
        &srv,
        b"GET /login?user=bob HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    let login = set_cookie_value(&head).unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(login.starts_with("user=2|1:2|10:"), "{login}");
    let (status, _, body) = get_with_cookie(&srv, "/whoami", login);
    assert_eq!((status, body.as_slice()), (200, &b"bob"[..]));

    // Refused: a key version the dictionary lacks (even signed with one of
    // its keys), an old key claiming the new version, key version 0 (what
    // a single secret writes).
    let forged = [
        CookieSecret::versioned([(3, NEW_KEY)]).create_signed_value(Some(3), "user", b"eve"),
        CookieSecret::versioned([(2, OLD_KEY)]).create_signed_value(Some(2), "user", b"eve"),
        Some(cyclone::web::create_signed_value(NEW_KEY, "user", b"eve")),
    ];
    for f in forged {
        let f = f.unwrap();
        let (status, _, _) = get_with_cookie(&srv, "/whoami", &format!("user={f}"));
        assert_eq!(status, 403, "{f}");
    }

    // A WebSocket route reads the old key's cookie through the same
    // dictionary.
    let mut s = srv.connect();
    s.write_all(upgrade_request("/who", &format!("Cookie: user={by_old}\r\n")).as_bytes())
        .unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    let (_, op, payload) = util::read_frame(&mut s).unwrap();
    assert_eq!((op, payload.as_slice()), (1, &b"Some(Ok(\"alice\"))"[..]));
}

/// Tornado raises when a dictionary of secrets has no `key_version`
/// setting, or one that is not in it: signing is a 500 (reading works).
#[test]
fn rotated_secrets_without_a_usable_key_version_cannot_sign() {
    let by_old = CookieSecret::versioned([(1, OLD_KEY)])
        .create_signed_value(Some(1), "user", b"alice")
        .unwrap();
    for key_version in [None, Some(3)] {
        let srv = rotated_server(key_version);
        let (status, head, _) = request(
            &srv,
            b"GET /login?user=bob HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        );
        assert_eq!(status, 500, "{key_version:?}: {head}");
        assert!(!head.contains("Set-Cookie"), "{head}");
        let (status, _, body) = get_with_cookie(&srv, "/whoami", &format!("user={by_old}"));
        assert_eq!((status, body.as_slice()), (200, &b"alice"[..]));
    }
}

/// `get_secure_cookie_with(name, max_age_days, min_version)`: Tornado's
/// `min_version=2` refuses a version 1 cookie.
#[test]
fn min_version_two_refuses_a_version_one_cookie() {
    struct MinVersion;
    impl RequestHandler for MinVersion {
        fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
            // 100 years: the version 1 value below is from 2025-12-05.
            match cx.get_secure_cookie_with("user", 36500.0, args[0].parse().unwrap()) {
                Some(u) => cx.write(u),
                None => cx.send_error(403),
            }
        }
    }
    // Tornado 6.6.1: create_signed_value("n0t-s0-s3cret|with:odd=chars",
    // "user", b"bob", version=1, clock=lambda: 1764921600.7)
    const SECRET: &str = "n0t-s0-s3cret|with:odd=chars";
    let v1 = "user=Ym9i|1764921600|7ca174fd3c7dd862da2ce2a5c459821d104e5d9e";
    let v2 = format!(
        "user={}",
        cyclone::web::create_signed_value(SECRET, "user", b"bob")
    );
    let srv = Server::start(|| {
        Application::builder()
            .cookie_secret(SECRET)
            .route(r"/min/(\d)", || MinVersion)
            .build()
    });
    for (path, cookie, expected) in [
        ("/min/1", v1, 200),
        ("/min/2", v1, 403),
        ("/min/2", v2.as_str(), 200),
        ("/min/3", v2.as_str(), 403),
    ] {
        let (status, _, body) = get_with_cookie(&srv, path, cookie);
        assert_eq!(status, expected, "{path} {cookie}");
        if status == 200 {
            assert_eq!(body, b"bob");
        }
    }
}

/// `/account`: Tornado's `@authenticated` page (the `user` signed cookie).
struct Account {
    user: String,
}
impl RequestHandler for Account {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST"]
    }
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        match cx.get_secure_cookie("user") {
            Some(u) => self.user = String::from_utf8(u).unwrap(),
            None => cx.require_login(),
        }
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write(format!("hello {}", self.user));
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write(format!("posted by {}", self.user));
    }
}

#[test]
fn require_login_redirects_as_tornados_authenticated() {
    let serve = |login: Option<&'static str>| {
        Server::start(move || {
            let b = Application::builder()
                .cookie_secret(COOKIE_SECRET)
                .route("/account", || Account {
                    user: String::new(),
                });
            match login {
                Some(l) => b.login_url(l).build(),
                None => b.build(),
            }
        })
    };
    let ask = |srv: &Server, method: &str, cookie: &str| {
        request(
            srv,
            format!(
                "{method} /account?x=1&y=a%20b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n{cookie}\r\n"
            )
            .as_bytes(),
        )
    };
    let srv = serve(Some("/login"));
    let (status, head, _) = ask(&srv, "GET", "");
    assert_eq!(status, 302, "{head}");
    // Python: "/login?" + urlencode(dict(next="/account?x=1&y=a%20b"))
    assert!(
        head.contains("\r\nLocation: /login?next=%2Faccount%3Fx%3D1%26y%3Da%2520b\r\n"),
        "{head}"
    );
    let (status, _, _) = ask(&srv, "POST", "");
    assert_eq!(status, 403);
    let cookie = format!(
        "Cookie: user={}\r\n",
        cyclone::web::create_signed_value(COOKIE_SECRET, "user", b"alice")
    );
    let (status, _, body) = ask(&srv, "GET", &cookie);
    assert_eq!((status, body.as_slice()), (200, &b"hello alice"[..]));
    let (status, _, body) = ask(&srv, "POST", &cookie);
    assert_eq!((status, body.as_slice()), (200, &b"posted by alice"[..]));
    drop(srv);

    // An absolute login_url gets the full URL as next; one with a query
    // is used as it is; none at all is a 500.
    let srv = serve(Some("https://auth.example/login"));
    let (_, head, _) = ask(&srv, "GET", "");
    assert!(
        head.contains("Location: https://auth.example/login?next=http%3A%2F%2F127.0.0.1%2Faccount%3Fx%3D1%26y%3Da%2520b\r\n"),
        "{head}"
    );
    drop(srv);
    let srv = serve(Some("/login?from=account"));
    let (_, head, _) = ask(&srv, "GET", "");
    assert!(
        head.contains("\r\nLocation: /login?from=account\r\n"),
        "{head}"
    );
    drop(srv);
    let srv = serve(None);
    let (status, _, _) = ask(&srv, "GET", "");
    assert_eq!(status, 500);
}

/// The lowercase hex SHA-1 of `s` (a static file's `?v=` version).
fn sha1_hex(s: &str) -> String {
    sha1_smol::Sha1::from(s).digest().to_string()
}

/// The client's address and scheme as a handler sees them.
struct Who;
impl RequestHandler for Who {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let r = cx.request();
        let ip = r.remote_ip().map_or("-".to_string(), |ip| ip.to_string());
        cx.write(format!("{ip} {}", r.protocol()));
    }
}

/// Tornado's xheaders: behind a proxy, the address and scheme it reports;
/// per request on a keep-alive connection; ignored without the setting.
#[test]
fn xheaders_give_the_proxied_client_address_and_scheme() {
    for on in [true, false] {
        let server = Server::start(move || {
            Application::builder()
                .route("/", || Who)
                .xheaders(on)
                .trusted_downstream(["10.1.1.1"])
                .build()
        });
        let mut s = server.connect();
        let mut ask = |headers: &str| {
            let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
            s.write_all(raw.as_bytes()).unwrap();
            let (status, _, body) = read_response(&mut s);
            assert_eq!(status, 200);
            String::from_utf8(body).unwrap()
        };
        let proxied = ask("X-Forwarded-For: 203.0.113.7, 10.1.1.1\r\nX-Forwarded-Proto: https\r\n");
        let direct = ask("");
        // Forms Tornado's is_valid_ip takes (inet_aton's octal), and one
        // it refuses (08 is no octal number).
        let octal = ask("X-Real-Ip: 010.1.1.1\r\n");
        let refused = ask("X-Real-Ip: 08.1.1.1\r\n");
        if on {
            assert_eq!(proxied, "203.0.113.7 https");
            assert_eq!(octal, "8.1.1.1 http");
        } else {
            assert_eq!(proxied, "127.0.0.1 http");
            assert_eq!(octal, "127.0.0.1 http");
        }
        assert_eq!(refused, "127.0.0.1 http");
        // The next request on the connection starts from the socket again.
        assert_eq!(direct, "127.0.0.1 http");
    }
}

/// An error answered before the handler (here 413 for a declared body
/// over the limit) to a HEAD request has no content either (RFC 9110
/// §9.3.2), as the handler's own answers to HEAD have none.
#[test]
fn error_answers_to_head_have_no_content() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    let end = text.find("\r\n\r\n").expect("a whole head") + 4;
    assert_eq!(&text[end..], "", "content after a HEAD's answer: {text}");
    // The same request as GET gets the page.
    let (status, _, body) = request(
        &srv,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    assert_eq!(status, 413);
    assert!(!body.is_empty());
}

/// `Connection: close` wins over `keep-alive` whatever the version
/// (RFC 9112 §9.3; Tornado keeps an HTTP/1.0 connection only for exactly
/// `keep-alive`).
#[test]
fn close_wins_over_keep_alive() {
    let srv = server();
    for raw in [
        &b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
    ] {
        let mut s = srv.connect();
        s.write_all(raw).unwrap();
        let (status, head, _) = read_response(&mut s);
        assert_eq!(status, 200);
        assert!(head.contains("Connection: close"), "{head}");
        assert!(util::wait_closed(&mut s, Duration::from_secs(5)));
    }
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let (_, head, _) = read_response(&mut s);
    assert!(head.contains("Connection: keep-alive"), "{head}");
}

/// A `Service` answering with the status of its path.
struct StatusOfPath;
impl cyclone::http::Service for StatusOfPath {
    fn dispatch(&self, req: cyclone::http::Request) -> cyclone::http::Reply {
        let status = req.path().trim_start_matches('/').parse().unwrap_or(500);
        cyclone::http::Reply::Response(cyclone::http::Response::text(status, "body"))
    }
}

/// A raw `Service`'s final status must be 200-599: an interim one (1xx)
/// or one of four digits becomes a 500 (with an error logged), as
/// `set_status` refuses them in a handler.
#[test]
fn a_service_status_outside_200_to_599_becomes_500() {
    let srv = Server::start_with(|| {
        cyclone::http::listen(
            "127.0.0.1:0".parse().unwrap(),
            std::rc::Rc::new(StatusOfPath),
            cyclone::http::HttpLimits::default(),
        )
        .expect("listen")
    });
    for (asked, sent) in [(200, 200), (599, 599), (101, 500), (600, 500), (1000, 500)] {
        let raw = format!("GET /{asked} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (status, _, _) = request(&srv, raw.as_bytes());
        assert_eq!(status, sent, "asked {asked}");
    }
}
