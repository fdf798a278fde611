//! HTTP/1.1 server behaviour over raw sockets (the peer is not cyclone).

mod util;

use std::io::Write;
use std::time::Duration;

use cyclone::web::{Application, RequestContext, RequestHandler};
use util::{read_response, request, Server};

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

fn server() -> Server {
    Server::start(|| {
        let dir = std::env::temp_dir().join(format!("cyclone-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), "static file").unwrap();
        Application::builder()
            .route("/", || Hello)
            .route(r"/items/(\w+)/(\d+)", || Echo)
            .route("/echo", || Echo)
            .route("/panic", || Panics)
            .route("/metrics", || cyclone::web::MetricsHandler)
            .static_path(dir)
            .max_header_size(4096)
            .max_body_size(1024)
            .build()
    })
}

#[test]
fn request_split_byte_by_byte() {
    let srv = server();
    let mut s = srv.connect();
    s.set_nodelay(true).unwrap();
    for b in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
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
    let mut s = srv.connect();
    s.set_nodelay(true).unwrap();
    for b in raw {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
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
    let (s, _, _) = request(&srv, b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
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
