//! TLS: HTTPS and `wss://` served by `Application::listen_on_tls`, against
//! tungstenite over rustls, std sockets with a rustls client session, raw
//! sockets that do not speak TLS, and cyclone's own client.
//!
//! Certificates are made at test time with rcgen: a CA, and a leaf for
//! `localhost` and 127.0.0.1 signed by it; clients trust the CA.
#![cfg(feature = "tls")]

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cyclone::ioloop::Counter;
use cyclone::testing::ExpectLog;
use cyclone::tls::{rustls, ServerTls};
use cyclone::web::{Application, RequestContext, RequestHandler};
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
use tungstenite::Message as TMsg;
use util::{read_within, ReadEnd, Server, TempDir};

/// A CA and a leaf certificate it signed for `localhost` and 127.0.0.1,
/// as PEM.
struct Certs {
    ca: String,
    cert: String,
    key: String,
}

fn make_certs() -> Certs {
    make_certs_for(&["localhost", "127.0.0.1"])
}

/// A CA and a leaf it signed for `names` (DNS names or IP addresses).
fn make_certs_for(names: &[&str]) -> Certs {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cyclone test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Certs {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Echoes messages; `close-me` closes with 4001; `big N` sends N bytes
/// (a pattern) then `done`; `big-close N` sends N bytes and closes with
/// 4002 at once; `protocol` answers the request's protocol.
struct Echo;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let text = msg.as_text().map(str::to_owned);
        match text.as_deref() {
            Some("close-me") => ws.close(Some(4001), "asked to"),
            Some("protocol") => {
                let p = ws.request().protocol();
                ws.write_message(p.to_string()).unwrap();
            }
            Some(t) if t.starts_with("big ") => {
                let n = t[4..].parse().unwrap();
                ws.write_message(pattern(n)).unwrap();
                ws.write_message("done").unwrap();
            }
            Some(t) if t.starts_with("big-close ") => {
                let n = t[10..].parse().unwrap();
                ws.write_message(pattern(n)).unwrap();
                ws.close(Some(4002), "after big");
            }
            _ => {
                let _ = ws.write_message(msg);
            }
        }
    }
}

struct Hello;

impl RequestHandler for Hello {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let proto = cx.request().protocol();
        cx.write(format!("hello over {proto}"));
    }
}

fn app(request_timeout: Duration) -> Application {
    Application::builder()
        .route("/hello", || Hello)
        .websocket("/echo", |_| Echo)
        .request_timeout(request_timeout)
        .defer_accept(None)
        // Messages of several MiB are queued at once.
        .websocket_max_write_buffer(64 << 20)
        .build()
}

/// A TLS server for `certs` with `request_timeout`.
fn tls_server(certs: &Certs, request_timeout: Duration) -> Server {
    serve_tls(certs, move || app(request_timeout))
}

/// Serves the application `build` makes over TLS with `certs`, on a free
/// port, in a loop thread of its own.
fn serve_tls(certs: &Certs, build: impl FnOnce() -> Application + Send + 'static) -> Server {
    let tls = ServerTls::from_pem(certs.cert.as_bytes(), certs.key.as_bytes()).unwrap();
    Server::start_with(move || build().listen_on_tls("127.0.0.1:0", tls).expect("listen"))
}

fn client_config(certs: &Certs) -> Arc<rustls::ClientConfig> {
    cyclone::tls::client_config(Some(certs.ca.as_bytes())).unwrap()
}

type Tws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// tungstenite over rustls to `wss://localhost:port/echo`, trusting the CA.
fn tws(server: &Server, certs: &Certs) -> Tws {
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("wss://localhost:{}/echo", server.addr.port());
    let connector = tungstenite::Connector::Rustls(client_config(certs));
    let (ws, resp) = tungstenite::client_tls_with_config(url, tcp, None, Some(connector))
        .expect("wss handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// A std TLS stream to the server (SNI `localhost`).
fn tls_stream(
    server: &Server,
    certs: &Certs,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client_config(certs), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

const SHORT: Duration = Duration::from_secs(10);

#[test]
fn wss_echo_text_binary_and_close_with_code() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut ws = tws(&server, &certs);
    ws.send(TMsg::text("hello tls")).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::text("hello tls"));
    ws.send(TMsg::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::binary(vec![0u8, 1, 2, 255]));
    // The handler learns the connection is TLS (Tornado's request.protocol).
    ws.send(TMsg::text("protocol")).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::text("https"));
    ws.send(TMsg::text("close-me")).unwrap();
    match ws.read().unwrap() {
        TMsg::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4001);
            assert_eq!(f.reason.as_str(), "asked to");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // tungstenite answers the close; the server then ends the stream.
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("after the close: {e}"),
        }
    }
    assert!(server.metrics().get(Counter::WsClosed) >= 1);
}

/// A 1 MiB message each way, and messages of several MiB from the
/// server to a client that reads only after a pause: rustls holds the
/// records the kernel refuses and the writable edge sends them.
#[test]
fn wss_large_messages_cross_intact() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut ws = tws(&server, &certs);
    let big = pattern(1 << 20);
    ws.send(TMsg::binary(big.clone())).unwrap();
    match ws.read().unwrap() {
        TMsg::Binary(b) => assert!(b[..] == big[..], "1 MiB echo differs"),
        other => panic!("{other:?}"),
    }
    for n in [3 << 20, 8 << 20] {
        ws.send(TMsg::text(format!("big {n}"))).unwrap();
        // The server fills the socket and its TLS buffer meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        match ws.read().unwrap() {
            TMsg::Binary(b) => {
                assert_eq!(b.len(), n);
                assert!(b[..] == pattern(n)[..], "{n}-byte message differs");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ws.read().unwrap(), TMsg::text("done"));
    }
}

/// A close right after a large message: the close frame (and the
/// connection's end) waits until every record of the message has left.
#[test]
fn wss_close_after_large_message_loses_nothing() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut ws = tws(&server, &certs);
    let n = 6 << 20;
    ws.send(TMsg::text(format!("big-close {n}"))).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    match ws.read().unwrap() {
        TMsg::Binary(b) => assert!(b.len() == n && b[..] == pattern(n)[..]),
        other => panic!("{other:?}"),
    }
    match ws.read().unwrap() {
        TMsg::Close(Some(f)) => assert_eq!(u16::from(f.code), 4002),
        other => panic!("expected the close frame, got {other:?}"),
    }
}

#[test]
fn wss_many_pipelined_messages() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut ws = tws(&server, &certs);
    let count = 2000;
    for i in 0..count {
        // Queued without flushing: many frames per TLS record and read.
        ws.write(TMsg::text(format!("m{i}"))).unwrap();
    }
    ws.flush().unwrap();
    for i in 0..count {
        assert_eq!(ws.read().unwrap(), TMsg::text(format!("m{i}")));
    }
}

#[test]
fn https_get_over_tls() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut s = tls_stream(&server, &certs);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    // The server closes after the answer (close_notify, then FIN).
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello over https"), "{text}");
    assert_eq!(
        s.conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN http/1.1 negotiated"
    );
}

/// Keep-alive over one TLS session: two requests, two answers.
#[test]
fn https_keep_alive_serves_several_requests() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut s = tls_stream(&server, &certs);
    for _ in 0..2 {
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).ends_with("hello over https") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }
}

/// Expects the warning a TLS error on the connection from `client` is
/// logged with (`what`: the handshake's failure, or a later error), as
/// Tornado's `SSL Error on <fd> <peer>: ...` and `error on read: ...`
/// warnings.
fn expect_tls_warning(client: SocketAddr, what: &str) -> ExpectLog {
    let pattern = format!("TLS {what} {}:{}", client.ip(), client.port()).replace('.', r"\.");
    ExpectLog::new("cyclone", &pattern).level(log::Level::Warn)
}

/// A client speaking plain HTTP to the TLS port is closed (a TLS alert at
/// most, never an HTTP answer), with a warning naming it; a TLS client
/// beside it is not disturbed.
#[test]
fn plain_client_on_tls_port_is_closed_alone() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut good = tws(&server, &certs);
    good.send(TMsg::text("before")).unwrap();
    assert_eq!(good.read().unwrap(), TMsg::text("before"));
    let before = server.metrics().get(Counter::TlsErrors);
    let mut plain = TcpStream::connect(server.addr).unwrap();
    let warned = expect_tls_warning(plain.local_addr().unwrap(), "handshake with");
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (got, end) = read_within(&mut plain, Duration::from_secs(5));
    assert_ne!(end, ReadEnd::Timeout, "plain client not closed");
    assert!(
        got.is_empty() || got[0] == 0x15,
        "only a TLS alert may come back: {got:?}"
    );
    assert!(!got.starts_with(b"HTTP/"));
    assert_eq!(server.metrics().get(Counter::TlsErrors), before + 1);
    assert!(warned.wait(1, Duration::from_secs(5)), "no warning");
    good.send(TMsg::text("after")).unwrap();
    assert_eq!(good.read().unwrap(), TMsg::text("after"));
}

/// A record that does not decrypt after the handshake ends that
/// connection with a warning naming the peer (Tornado's `error on read`).
#[test]
fn bad_record_after_the_handshake_is_warned_about() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut s = tls_stream(&server, &certs);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = [0; 12];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 200");
    let warned = expect_tls_warning(s.sock.local_addr().unwrap(), "error from");
    // Application data (0x17) that is not sealed with the session's keys.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    record.extend([0xab; 0x20]);
    s.sock.write_all(&record).unwrap();
    let (_, end) = read_within(&mut s.sock, Duration::from_secs(5));
    assert_ne!(end, ReadEnd::Timeout, "not closed");
    assert!(warned.wait(1, Duration::from_secs(5)), "no warning");
}

/// A record that is not a valid ClientHello gets a TLS alert and the
/// connection ends.
#[test]
fn garbage_client_hello_is_refused_with_an_alert() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let mut s = TcpStream::connect(server.addr).unwrap();
    // A handshake record (0x16, TLS 1.0) holding a ClientHello (type 1)
    // whose body is junk.
    s.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x00, 0x06, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01,
    ])
    .unwrap();
    let (got, end) = read_within(&mut s, Duration::from_secs(5));
    assert_ne!(end, ReadEnd::Timeout, "not closed");
    assert_eq!(got.first(), Some(&0x15), "a TLS alert record: {got:?}");
    // Level fatal (2).
    assert_eq!(got.get(5), Some(&2), "{got:?}");
    assert!(server.metrics().get(Counter::TlsErrors) >= 1);
}

/// A peer that connects and never completes the handshake (silent, or
/// half a ClientHello) is dropped at `request_timeout`, counted from
/// accept.
#[test]
fn stalled_handshake_is_dropped_by_the_request_timeout() {
    let certs = make_certs();
    let server = tls_server(&certs, Duration::from_millis(400));
    let start = Instant::now();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut half = TcpStream::connect(server.addr).unwrap();
    // The first bytes of a ClientHello record announcing 512 bytes.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .unwrap();
    for s in [&mut silent, &mut half] {
        let (got, end) = read_within(s, Duration::from_secs(5));
        assert_ne!(end, ReadEnd::Timeout, "stalled handshake kept open");
        assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // A complete handshake on the same server still works.
    let mut ws = tws(&server, &certs);
    ws.send(TMsg::text("ok")).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::text("ok"));
}

/// A client that does not trust the server's CA fails its handshake; the
/// server ends that connection and serves the next.
#[test]
fn untrusting_client_fails_and_server_goes_on() {
    let certs = make_certs();
    let server = tls_server(&certs, SHORT);
    let other = make_certs();
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(SHORT)).unwrap();
    let url = format!("wss://localhost:{}/echo", server.addr.port());
    let connector = tungstenite::Connector::Rustls(client_config(&other));
    let Err(err) = tungstenite::client_tls_with_config(url, tcp, None, Some(connector)) else {
        panic!("an untrusted certificate must fail");
    };
    assert!(format!("{err}").contains("certificate"), "{err}");
    let mut ws = tws(&server, &certs);
    ws.send(TMsg::text("still here")).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::text("still here"));
}

#[test]
fn from_pem_files_loads_and_reports_bad_files() {
    let certs = make_certs();
    let dir = TempDir::new("tls");
    let cert = dir.file("cert.pem", &certs.cert);
    let key = dir.file("key.pem", &certs.key);
    // Tornado's ssl_options={"certfile": ..., "keyfile": ...}.
    let tls = ServerTls::from_pem_files(&cert, &key).expect("valid pair");
    assert_eq!(tls.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    // Both in one file works too.
    let both = dir.file("both.pem", format!("{}{}", certs.cert, certs.key));
    ServerTls::from_pem_files(&both, &both).expect("one file");

    let missing = dir.0.join("missing.pem");
    let e = ServerTls::from_pem_files(&missing, &key).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("missing.pem"), "{e}");

    // A key file without a key.
    let e = ServerTls::from_pem_files(&cert, &cert).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        e.to_string().contains("cert.pem") && e.to_string().contains("no private key"),
        "{e}"
    );
    // A certificate file without a certificate.
    let e = ServerTls::from_pem_files(&key, &key).unwrap_err();
    assert!(e.to_string().contains("no certificate"), "{e}");
    // A key that is not the certificate's.
    let wrong = dir.file("wrong.pem", &make_certs().key);
    let e = ServerTls::from_pem_files(&cert, &wrong).unwrap_err();
    assert!(e.to_string().contains("wrong.pem"), "{e}");

    // The pair from files serves a TLS client.
    let server = Server::start_with(move || {
        app(SHORT)
            .listen_on_tls("127.0.0.1:0", tls)
            .expect("listen")
    });
    let mut ws = tws(&server, &certs);
    ws.send(TMsg::text("files")).unwrap();
    assert_eq!(ws.read().unwrap(), TMsg::text("files"));
}

/// `run_workers_tls`: every worker serves TLS on the shared port.
#[test]
fn workers_serve_tls() {
    let certs = make_certs();
    let tls = ServerTls::from_pem(certs.cert.as_bytes(), certs.key.as_bytes()).unwrap();
    let workers =
        cyclone::run_workers_tls(2, SocketAddr::from(([127, 0, 0, 1], 0)), tls, || app(SHORT))
            .unwrap();
    let port = workers.local_addr().port();
    for i in 0..4 {
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(SHORT)).unwrap();
        let connector = tungstenite::Connector::Rustls(client_config(&certs));
        let (mut ws, _) = tungstenite::client_tls_with_config(
            format!("wss://localhost:{port}/echo"),
            tcp,
            None,
            Some(connector),
        )
        .unwrap();
        ws.send(TMsg::text(format!("w{i}"))).unwrap();
        assert_eq!(ws.read().unwrap(), TMsg::text(format!("w{i}")));
    }
    workers.stop();
    workers.join().expect("a worker panicked");
}

// ---- hostile and unlucky peers ---------------------------------------------

/// A rustls client session over a std socket, driven by hand so that a
/// test decides which records leave in which TCP write.
struct RawTls {
    tcp: TcpStream,
    conn: rustls::ClientConnection,
}

impl RawTls {
    /// Connects and completes the handshake.
    fn connect(server: &Server, certs: &Certs) -> RawTls {
        RawTls::over(TcpStream::connect(server.addr).unwrap(), certs)
    }

    /// A session over `tcp`.
    fn over(mut tcp: TcpStream, certs: &Certs) -> RawTls {
        tcp.set_read_timeout(Some(SHORT)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(client_config(certs), name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        RawTls { tcp, conn }
    }

    /// Encrypts `plain` (then a close_notify if `close_notify`) and
    /// writes every record in one TCP write; the TCP connection stays open.
    fn send(&mut self, plain: &[u8], close_notify: bool) {
        self.conn.writer().write_all(plain).unwrap();
        if close_notify {
            self.conn.send_close_notify();
        }
        let mut wire = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut wire).unwrap();
        }
        self.tcp.write_all(&wire).unwrap();
    }

    /// Plaintext until `done` says it is enough, the session ends
    /// (close_notify or TCP EOF: `true`), or `within` passes (`false`).
    fn read_until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> (Vec<u8>, bool) {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => return (got, true),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return (got, true),
                }
            }
            if done(&got) {
                return (got, false);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (got, false);
            }
            self.tcp.set_read_timeout(Some(left)).unwrap();
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => {}
                Ok(_) => {
                    if self.conn.process_new_packets().is_err() {
                        return (got, true);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (got, false)
                }
                Err(_) => return (got, true),
            }
        }
    }
}

fn https_app(idle: Duration) -> Application {
    /// Keeps the loop busy for a while (what arrives meanwhile is read
    /// together afterwards).
    struct Sleep;
    impl RequestHandler for Sleep {
        fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
            std::thread::sleep(Duration::from_millis(300));
            cx.write("slept");
        }
    }
    /// A 48 KiB answer, then a graceful shutdown (from a callback: once
    /// the answer went to the kernel and rustls). The grace is long for
    /// a loaded machine: without it, a connection holding records in
    /// rustls was dropped at once.
    struct Quit;
    impl RequestHandler for Quit {
        fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
            cx.write(pattern(args[0].parse().unwrap()));
            cyclone::ioloop::IOLoop::current()
                .add_callback(|| cyclone::shutdown(Duration::from_secs(10)));
        }
    }
    Application::builder()
        .route("/hello", || Hello)
        .route("/sleep", || Sleep)
        .route(r"/quit/(\d+)", || Quit)
        .websocket("/echo", |_| Echo)
        .defer_accept(None)
        .idle_timeout(idle)
        .build()
}

fn https_server(certs: &Certs, idle: Duration) -> Server {
    serve_tls(certs, move || https_app(idle))
}

/// A client that sends its request and its close_notify in the same TCP
/// write (a TLS half-close) and keeps the TCP connection open, waiting for
/// the answer and the end of the stream: the server answers, sees the end
/// (no readiness event reports a close_notify, unlike a FIN) and closes,
/// as it does after a plain TCP half-close; not at the idle timeout.
#[test]
fn https_close_notify_with_the_request_ends_the_connection() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_secs(30));
    let mut c = RawTls::connect(&server, &certs);
    c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", true);
    let (got, ended) = c.read_until(Duration::from_secs(5), |_| false);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello over https"), "{text}");
    assert!(ended, "the server kept the half-closed session open");
}

/// A WebSocket peer that sends a message and its close_notify together
/// and keeps the TCP connection open: the message is answered and the
/// connection ends at once (the end of the stream is read), instead of
/// staying open until a ping or idle timeout.
#[test]
fn wss_close_notify_after_a_message_ends_the_connection() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_secs(30));
    let mut c = RawTls::connect(&server, &certs);
    c.send(util::upgrade_request("/echo", "").as_bytes(), false);
    let (head, _) = c.read_until(SHORT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let before = server.metrics().get(Counter::WsClosed);
    c.send(&util::client_frame(true, 1, b"last words"), true);
    let (got, ended) = c.read_until(Duration::from_secs(5), |_| false);
    assert!(
        got.windows(10).any(|w| w == b"last words"),
        "echo missing: {got:?}"
    );
    assert!(ended, "the server kept the session open after close_notify");
    let t = Instant::now();
    while server.metrics().get(Counter::WsClosed) == before && t.elapsed() < SHORT {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.metrics().get(Counter::WsClosed), before + 1);
}

/// A peer that sends its last message and its Close, then aborts the
/// connection (a reset, as a close with unread bytes makes): what arrived
/// before the reset is decrypted in the same read that meets the reset,
/// and is still delivered (the message, the close code), as over plain
/// TCP, rather than dropped with the error.
#[test]
fn wss_last_message_before_a_reset_is_delivered() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_secs(30));
    let mut c = RawTls::connect(&server, &certs);
    c.send(util::upgrade_request("/echo", "").as_bytes(), false);
    let (head, _) = c.read_until(SHORT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let m = server.metrics();
    let (msgs, closes) = (
        m.get(Counter::WsMessagesIn),
        m.get(Counter::for_close_code(Some(1000))),
    );
    // The loop is busy meanwhile: the records and the reset are read
    // together.
    let mut busy = tls_stream(&server, &certs);
    busy.write_all(b"GET /sleep HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut last = util::client_frame(true, 1, b"last words");
    last.extend_from_slice(&util::client_frame(true, 8, &[0x03, 0xe8]));
    c.send(&last, false);
    // SO_LINGER 0: the close sends a reset right behind the records.
    socket2::SockRef::from(&c.tcp)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    let t = Instant::now();
    while server.metrics().get(Counter::WsClosed) == 0 && t.elapsed() < SHORT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = server.metrics();
    assert_eq!(m.get(Counter::WsMessagesIn), msgs + 1, "message lost");
    assert_eq!(
        m.get(Counter::for_close_code(Some(1000))),
        closes + 1,
        "close code lost"
    );
}

/// A graceful shutdown while the end of a response waits in rustls (the
/// kernel refused it: the client, with a small receive buffer, has not
/// read yet) and the connection's own queue is empty: the connection
/// stays until those records have left, instead of being dropped with
/// them (the client would get a truncated body).
///
/// Which sizes leave the queue empty with records in rustls depends on
/// how much the kernel takes (about 2.8 MB on Linux loopback, with the
/// send buffer sized from loopback's MSS): sizes around it, in steps
/// smaller than rustls' 64 KiB buffer, each with its own server, run side
/// by side.
#[test]
fn https_graceful_shutdown_keeps_records_waiting_in_rustls() {
    fn case(size: usize) -> Result<(), String> {
        let certs = make_certs();
        let server = https_server(&certs, Duration::from_secs(30));
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&server.addr.into()).unwrap();
        let mut c = RawTls::over(sock.into(), &certs);
        let req = format!("GET /quit/{size} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        c.send(req.as_bytes(), false);
        // The shutdown runs meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        let (got, _) = c.read_until(Duration::from_secs(20), |_| false);
        let body = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| &got[p + 4..])
            .unwrap_or_default();
        if body.len() != size {
            return Err(format!("{size}-byte body cut at {}", body.len()));
        }
        if body != &pattern(size)[..] {
            return Err(format!("{size}-byte body differs"));
        }
        Ok(())
    }
    let cases: Vec<_> = (0..24)
        .map(|i| std::thread::spawn(move || case(2_200_000 + i * 50_000)))
        .collect();
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

/// A wss client that asks for a flood and never reads: the queue and
/// rustls' records together stay bounded (rustls holds at most its 64 KiB
/// buffer beyond `max_write_buffer`), the slow-consumer policy fires, and
/// the connection is closed by the close timeout although records keep
/// waiting in rustls.
#[test]
fn wss_slow_consumer_that_never_reads_is_closed() {
    struct Flood;
    impl WebSocketHandler for Flood {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, _msg: Message<'_>) {
            for _ in 0..64 {
                if ws.write_message(pattern(256 << 10)).is_err() {
                    break;
                }
            }
        }
    }
    let certs = make_certs();
    let server = serve_tls(&certs, move || {
        Application::builder()
            .websocket("/flood", |_| Flood)
            .defer_accept(None)
            .websocket_max_write_buffer(1 << 20)
            .websocket_close_timeout(Duration::from_millis(500))
            .build()
    });
    let mut c = RawTls::connect(&server, &certs);
    c.send(util::upgrade_request("/flood", "").as_bytes(), false);
    let (head, _) = c.read_until(SHORT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    c.send(&util::client_frame(true, 1, b"go"), false);
    let start = Instant::now();
    while server.metrics().get(Counter::WsClosed) == 0 && start.elapsed() < SHORT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = server.metrics();
    assert_eq!(m.get(Counter::WsSlowConsumerCloses), 1);
    assert_eq!(m.get(Counter::WsClosed), 1, "not closed within {SHORT:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

/// A burst of small messages larger than one tick's read budget, with a
/// large answer at its start that pauses reading (the queue goes over
/// `write_high_water`) while plaintext may sit inside rustls: the last
/// message of the burst is answered once the client reads, without any
/// further traffic from it (edge-triggered readiness raises no new event
/// for what is already buffered).
#[test]
fn wss_burst_over_the_read_budget_with_a_pause_is_all_delivered() {
    struct Count(usize);
    impl WebSocketHandler for Count {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
            match msg.as_text() {
                Some("big") => {
                    ws.write_message(pattern(8 << 20)).unwrap();
                }
                Some("count?") => {
                    ws.write_message(format!("{}", self.0)).unwrap();
                }
                _ => self.0 += 1,
            }
        }
    }
    let certs = make_certs();
    let server = serve_tls(&certs, move || {
        Application::builder()
            .websocket("/count", |_| Count(0))
            .defer_accept(None)
            .websocket_max_write_buffer(64 << 20)
            .build()
    });
    let mut c = RawTls::connect(&server, &certs);
    c.send(util::upgrade_request("/count", "").as_bytes(), false);
    let (head, _) = c.read_until(SHORT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let n = 120_000; // ~1.6 MB of frames: more than 4 reads of 256 KiB.
    let mut plain = util::client_frame(true, 1, b"big");
    for i in 0..n {
        plain.extend_from_slice(&util::client_frame(true, 1, format!("m{i:07}").as_bytes()));
    }
    plain.extend_from_slice(&util::client_frame(true, 1, b"count?"));
    c.conn.set_buffer_limit(None);
    c.conn.writer().write_all(&plain).unwrap();
    let mut wire = Vec::new();
    while c.conn.wants_write() {
        c.conn.write_tls(&mut wire).unwrap();
    }
    // Written from another thread: the server stops reading while its
    // answer waits, so the write may block until this side reads.
    let mut tcp = c.tcp.try_clone().unwrap();
    let writer = std::thread::spawn(move || tcp.write_all(&wire).unwrap());
    // The server fills the socket with the big answer and pauses reading.
    std::thread::sleep(Duration::from_millis(300));
    let count = format!("{n}");
    let total = 10 + (8 << 20) + 2 + count.len();
    let (got, _) = c.read_until(Duration::from_secs(20), |b| b.len() >= total);
    writer.join().unwrap();
    assert_eq!(got.len(), total, "answers missing");
    assert!(
        got.ends_with(count.as_bytes()),
        "{:?}",
        &got[got.len() - 8..]
    );
}

// ---- cyclone's client over wss:// ------------------------------------------

mod client {
    use super::*;
    use cyclone::ioloop::IOLoop;
    use cyclone::websocket::{websocket_connect_opts, ConnectError, ConnectOptions};

    fn watchdog() {
        IOLoop::current().call_later(Duration::from_secs(30), || panic!("test timed out"));
    }

    /// The TLS server in this thread's loop.
    fn local_server(certs: &Certs) -> SocketAddr {
        let tls = ServerTls::from_pem(certs.cert.as_bytes(), certs.key.as_bytes()).unwrap();
        watchdog();
        app(SHORT).listen_on_tls("127.0.0.1:0", tls).unwrap()
    }

    /// `wss://localhost` trusting the CA from a file (Tornado's
    /// `ca_certs`), and `wss://127.0.0.1` (an IP as the server name)
    /// with a whole rustls configuration: echo, a 1 MiB message, close.
    #[test]
    fn cyclone_client_over_wss() {
        let certs = make_certs();
        let dir = TempDir::new("tls");
        let ca = dir.file("ca.pem", &certs.ca);
        let addr = local_server(&certs);
        let by_file = ConnectOptions {
            ca_certs: Some(ca),
            ..ConnectOptions::default()
        };
        let by_config = ConnectOptions {
            tls_config: Some(client_config(&certs)),
            ..ConnectOptions::default()
        };
        let port = addr.port();
        IOLoop::current().run_sync(async move {
            for (url, opts) in [
                (format!("wss://localhost:{port}/echo"), by_file),
                (format!("wss://127.0.0.1:{port}/echo"), by_config),
            ] {
                let conn = websocket_connect_opts(&url, opts).await.expect(&url);
                let sent = conn.request().expect("open");
                assert_eq!((sent.uri(), sent.protocol()), ("/echo", "https"));
                assert_eq!(sent.peer(), Some(addr));
                conn.write_message("hello wss").expect("open");
                assert_eq!(conn.read_message().await, Some(Message::from("hello wss")));
                conn.write_message("protocol").expect("open");
                assert_eq!(conn.read_message().await, Some(Message::from("https")));
                let big = pattern(1 << 20);
                conn.write_message(big.clone()).expect("open").await;
                assert_eq!(conn.read_message().await, Some(Message::from(big)));
                conn.close(Some(1000), "bye");
                assert_eq!(conn.read_message().await, None);
                assert_eq!(conn.close_code(), Some(1000));
            }
        });
    }

    /// A client whose Close the server answered, but that keeps the TCP
    /// connection open: the client stops waiting for it to close (RFC 6455
    /// §7.1.1) after its close wait, and ends its TLS with a close_notify
    /// first (RFC 8446 §6.1), so the server reads a clean end, not a
    /// truncation.
    #[test]
    fn the_client_sends_close_notify_when_it_stops_waiting() {
        let certs = make_certs();
        let tls = ServerTls::from_pem(certs.cert.as_bytes(), certs.key.as_bytes()).unwrap();
        let config = tls.config().clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut b = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                head.extend_from_slice(&b[..n]);
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .trim()
                .to_owned();
            let accept = cyclone::protocol::handshake::accept_key(key.as_bytes());
            let accept = std::str::from_utf8(&accept).unwrap().to_owned();
            write!(
                s,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .unwrap();
            s.flush().unwrap();
            let _ = s.read(&mut b); // the client's Close
            s.write_all(&[0x88, 2, 0x03, 0xe8]).unwrap();
            s.flush().unwrap();
            let end = loop {
                match s.read(&mut b) {
                    Ok(0) => break "close_notify".to_owned(),
                    Ok(_) => {}
                    Err(e) => break e.to_string(),
                }
            };
            tx.send(end).unwrap();
        });
        watchdog();
        let opts = ConnectOptions {
            tls_config: Some(client_config(&certs)),
            ..ConnectOptions::default()
        };
        IOLoop::current().run_sync(async move {
            let url = format!("wss://localhost:{port}/");
            let conn = websocket_connect_opts(&url, opts).await.expect("connect");
            conn.close(Some(1000), "");
            assert_eq!(conn.read_message().await, None);
            assert_eq!(conn.close_code(), Some(1000));
            // The loop runs on while the client waits for the server.
            let end = loop {
                if let Ok(end) = rx.try_recv() {
                    break end;
                }
                cyclone::ioloop::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(
                end, "close_notify",
                "the server's TLS read ended with an error"
            );
        });
    }

    /// A server whose certificate the client does not trust: a typed
    /// error with rustls' reason, and the server counts the failed
    /// handshake (the client's alert).
    #[test]
    fn cyclone_client_refuses_an_untrusted_certificate() {
        let certs = make_certs();
        let addr = local_server(&certs);
        let url = format!("wss://localhost:{}/echo", addr.port());
        let res = IOLoop::current().run_sync(async move {
            // Mozilla's roots only: the test CA is not among them.
            websocket_connect_opts(&url, ConnectOptions::default())
                .await
                .map(|_| ())
        });
        let err = res.expect_err("untrusted certificate accepted");
        assert!(matches!(err, ConnectError::TlsHandshake(_)), "{err:?}");
        assert!(
            matches!(
                err.tls_error(),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("TLS handshake failed"), "{err}");
        // Both sides of the failed handshake are in this loop.
        assert!(IOLoop::current().metrics().get(Counter::TlsErrors) >= 1);
    }

    /// A certificate from a trusted CA but for another name is refused
    /// too; unreadable `ca_certs` is an immediate error naming the file.
    #[test]
    fn cyclone_client_checks_the_name_and_reports_bad_ca_files() {
        let certs = make_certs_for(&["other.example"]);
        let addr = local_server(&certs);
        let dir = TempDir::new("tls");
        let ca = dir.file("ca.pem", &certs.ca);
        let missing = dir.0.join("nope.pem");
        let port = addr.port();
        let (wrong_name, bad_file) = IOLoop::current().run_sync(async move {
            let opts = ConnectOptions {
                ca_certs: Some(ca),
                ..ConnectOptions::default()
            };
            let wrong = websocket_connect_opts(&format!("wss://localhost:{port}/echo"), opts)
                .await
                .map(|_| ());
            let opts = ConnectOptions {
                ca_certs: Some(missing),
                ..ConnectOptions::default()
            };
            let bad = websocket_connect_opts(&format!("wss://localhost:{port}/echo"), opts)
                .await
                .map(|_| ());
            (wrong, bad)
        });
        let e = wrong_name.expect_err("certificate for another name accepted");
        assert!(
            matches!(
                e.tls_error(),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{e:?}"
        );
        match &bad_file {
            Err(ConnectError::Io(io)) => {
                assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
                assert!(io.to_string().contains("nope.pem"), "{io}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A hand-made wss server for one connection: the 101, and then
    /// `after` on the session (its records not yet written: they leave
    /// with the 101's, in one TCP write).
    fn one_shot_server(
        certs: &Certs,
        after: impl FnOnce(&mut rustls::ServerConnection) + Send + 'static,
    ) -> SocketAddr {
        let tls = ServerTls::from_pem(certs.cert.as_bytes(), certs.key.as_bytes()).unwrap();
        let config = tls.config().clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(SHORT)).unwrap();
            let mut conn = rustls::ServerConnection::new(config).unwrap();
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                conn.complete_io(&mut tcp).unwrap();
                let mut buf = [0u8; 4096];
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let key = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| v.trim().to_string())
                })
                .unwrap();
            let accept = cyclone::protocol::handshake::accept_key(key.as_bytes());
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                std::str::from_utf8(&accept).unwrap()
            );
            conn.writer().write_all(resp.as_bytes()).unwrap();
            after(&mut conn);
            let mut wire = Vec::new();
            while conn.wants_write() {
                conn.write_tls(&mut wire).unwrap();
            }
            tcp.write_all(&wire).unwrap();
            // Keep the TCP connection open until the client ends it.
            let mut sink = [0u8; 4096];
            while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
        });
        addr
    }

    /// The 101 and a first frame in one TLS record: the frame is not lost
    /// between the handshake's buffer and the connection.
    #[test]
    fn cyclone_client_gets_a_frame_sent_with_the_101() {
        let certs = make_certs();
        watchdog();
        let addr = one_shot_server(&certs, |conn| {
            // Appended to the 101's plaintext: one record.
            conn.writer().write_all(&[0x81, 5]).unwrap();
            conn.writer().write_all(b"first").unwrap();
        });
        let opts = ConnectOptions {
            tls_config: Some(client_config(&certs)),
            ..ConnectOptions::default()
        };
        let url = format!("wss://localhost:{}/", addr.port());
        IOLoop::current().run_sync(async move {
            let conn = websocket_connect_opts(&url, opts).await.expect("connect");
            assert_eq!(conn.read_message().await, Some(Message::from("first")));
        });
    }

    /// A server that sends close_notify right after the 101 (keeping the
    /// TCP connection open): the client sees the end of the stream at
    /// once, not at a timeout.
    #[test]
    fn cyclone_client_sees_close_notify_right_after_the_101() {
        let certs = make_certs();
        watchdog();
        let addr = one_shot_server(&certs, |conn| conn.send_close_notify());
        let opts = ConnectOptions {
            tls_config: Some(client_config(&certs)),
            ..ConnectOptions::default()
        };
        let url = format!("wss://localhost:{}/", addr.port());
        let start = Instant::now();
        IOLoop::current().run_sync(async move {
            let conn = websocket_connect_opts(&url, opts).await.expect("connect");
            assert_eq!(conn.read_message().await, None);
        });
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}

/// FNV-1a: a digest of a message for the server to answer with.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The server reads TLS records in large chunks and feeds rustls from
/// them, keeping what rustls has not taken for the next read: a message
/// of several MiB between many small ones, each small one in its own
/// record, with the ciphertext written in pieces cut at awkward places
/// (inside a record header, a byte after a record, around 4 and 16 KiB,
/// larger than the server's read) arrives exactly. The server answers
/// each message with its length and digest, so the answers stay small
/// while the client writes.
#[test]
fn wss_records_cut_at_awkward_places_arrive_exactly() {
    struct Digest;
    impl WebSocketHandler for Digest {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
            let b = msg.as_bytes();
            ws.write_message(format!("{} {:016x}", b.len(), fnv(b)))
                .unwrap();
        }
    }
    let certs = make_certs();
    let server = serve_tls(&certs, move || {
        Application::builder()
            .websocket("/digest", |_| Digest)
            .defer_accept(None)
            .websocket_max_message_size(16 << 20)
            .build()
    });
    let mut c = RawTls::connect(&server, &certs);
    c.tcp.set_nodelay(true).unwrap();
    c.send(util::upgrade_request("/digest", "").as_bytes(), false);
    let (head, _) = c.read_until(SHORT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let head_len = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(head.len(), head_len, "nothing but the head yet");

    // Messages: small ones of varied sizes, a large one in the middle.
    let mut msgs: Vec<Vec<u8>> = (0..400usize)
        .map(|i| {
            pattern(1 + i * 37 % 700)
                .into_iter()
                .map(|b| b ^ i as u8)
                .collect()
        })
        .collect();
    msgs.insert(150, pattern((5 << 20) + 12_345));
    msgs.insert(300, pattern(70_001));
    // Every frame its own writer call: small frames make small records.
    c.conn.set_buffer_limit(None);
    let mut wire = Vec::new();
    for m in &msgs {
        c.conn
            .writer()
            .write_all(&util::client_frame(true, 2, m))
            .unwrap();
        while c.conn.wants_write() {
            c.conn.write_tls(&mut wire).unwrap();
        }
    }
    let cuts = [
        1, 3, 5, 6, 4095, 4096, 4097, 16_405, 16_406, 16_407, 65_536, 300_001, 2, 8191,
    ];
    let writer = {
        let mut tcp = c.tcp.try_clone().unwrap();
        std::thread::spawn(move || {
            let (mut at, mut i) = (0, 0);
            while at < wire.len() {
                let end = (at + cuts[i % cuts.len()]).min(wire.len());
                tcp.write_all(&wire[at..end]).unwrap();
                // Small pieces arrive alone, in reads of their own.
                if end - at < 20_000 {
                    std::thread::sleep(Duration::from_micros(300));
                }
                (at, i) = (end, i + 1);
            }
        })
    };
    let want: String = msgs
        .iter()
        .map(|m| format!("{} {:016x}", m.len(), fnv(m)))
        .collect();
    let (got, _) = c.read_until(Duration::from_secs(30), |b| {
        // Server frames: 2-byte headers (answers are < 126 bytes).
        let mut text = String::new();
        let mut p = 0;
        while p + 2 <= b.len() && p + 2 + usize::from(b[p + 1]) <= b.len() {
            text.push_str(std::str::from_utf8(&b[p + 2..p + 2 + usize::from(b[p + 1])]).unwrap());
            p += 2 + usize::from(b[p + 1]);
        }
        text.len() >= want.len()
    });
    writer.join().unwrap();
    let mut text = String::new();
    let mut p = 0;
    while p + 2 <= got.len() {
        assert_eq!(got[p], 0x81, "a text frame");
        let n = usize::from(got[p + 1]);
        text.push_str(std::str::from_utf8(&got[p + 2..p + 2 + n]).unwrap());
        p += 2 + n;
    }
    assert_eq!(text, want);
}

/// Everything until the session ends: `Ok` when it ended with the
/// server's close_notify, rustls' `UnexpectedEof` when the TCP connection
/// closed without one (what a TLS client reports as a truncation).
fn read_to_clean_end(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
) -> (Vec<u8>, std::io::Result<()>) {
    read_paced(s, |_| {})
}

/// [`read_to_clean_end`], calling `pace` with the bytes so far after each
/// read (to read slowly, or to bound the time).
fn read_paced(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    mut pace: impl FnMut(usize),
) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
        pace(got.len());
    }
}

/// Sends `raw` on a fresh TLS connection and reads to the end: the text,
/// and how the stream ended (`Ok` after the server's close_notify).
fn exchange_to_clean_end(
    server: &Server,
    certs: &Certs,
    raw: &[u8],
) -> (String, std::io::Result<()>) {
    let mut s = tls_stream(server, certs);
    s.write_all(raw).unwrap();
    let (got, end) = read_to_clean_end(&mut s);
    (String::from_utf8_lossy(&got).into_owned(), end)
}

/// An HTTP error answer over HTTPS (400, then a lingering close) ends
/// with the server's close_notify: the client's TLS sees a clean end.
#[test]
fn https_error_answer_ends_with_close_notify() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_secs(30));
    let raw = b"GET /hello HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n";
    let (text, end) = exchange_to_clean_end(&server, &certs, raw);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    end.expect("the 400 ends with a close_notify");
}

/// A WebSocket protocol error over wss (an unmasked client frame): the
/// server's Close 1002, then its close_notify, while it lingers.
#[test]
fn wss_protocol_error_close_ends_with_close_notify() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_secs(30));
    // Unmasked: a protocol error (RFC 6455 §5.1).
    let unmasked: &[u8] = &[0x81, 0x02, b'h', b'i'];
    upgrade_then_close_and_close_notify(&server, &certs, unmasked, &[0x88, 0x02, 0x03, 0xea]);
}

/// Upgrades on `/echo` over TLS and sends `then`; the server must answer
/// 101, then a Close starting with `close` (its first four bytes), then
/// end the session with a close_notify (rustls reports `UnexpectedEof`
/// otherwise).
fn upgrade_then_close_and_close_notify(server: &Server, certs: &Certs, then: &[u8], close: &[u8]) {
    let mut s = tls_stream(server, certs);
    s.write_all(util::upgrade_request("/echo", "").as_bytes())
        .unwrap();
    s.write_all(then).unwrap();
    let (got, end) = read_to_clean_end(&mut s);
    let head = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got.starts_with(b"HTTP/1.1 101"), "{got:?}");
    assert_eq!(&got[head..head + close.len()], close, "the Close frame");
    end.expect("the Close is followed by a close_notify");
}

/// An HTTPS keep-alive connection dropped at the idle timeout gets the
/// server's close_notify first.
#[test]
fn https_idle_timeout_ends_with_close_notify() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_millis(300));
    let t = Instant::now();
    let raw = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (text, end) = exchange_to_clean_end(&server, &certs, raw);
    assert!(t.elapsed() < SHORT);
    assert!(text.ends_with("hello over https"), "{text}");
    end.expect("the idle close ends with a close_notify");
}

/// A wss connection closed for idleness (Close 1001) whose peer never
/// answers is dropped at the close timeout with a close_notify.
#[test]
fn wss_unanswered_idle_close_ends_with_close_notify() {
    let certs = make_certs();
    let server = serve_tls(&certs, move || {
        Application::builder()
            .websocket("/echo", |_| Echo)
            .defer_accept(None)
            .websocket_idle_timeout(Duration::from_millis(200))
            .websocket_close_timeout(Duration::from_millis(300))
            .build()
    });
    // Close 1001 with a 12-byte reason, then the close timeout.
    upgrade_then_close_and_close_notify(&server, &certs, &[], &[0x88, 0x0e, 0x03, 0xe9]);
}

/// A graceful shutdown drops idle HTTPS keep-alive connections with a
/// close_notify.
#[test]
fn https_graceful_shutdown_sends_close_notify_to_idle_connections() {
    let certs = make_certs();
    let server = https_server(&certs, Duration::from_secs(30));
    let mut idle = tls_stream(&server, &certs);
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut quit = tls_stream(&server, &certs);
    std::thread::sleep(Duration::from_millis(100));
    quit.write_all(b"GET /quit/10 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (got, end) = read_to_clean_end(&mut idle);
    let text = String::from_utf8_lossy(&got);
    assert!(text.ends_with("hello over https"), "{text}");
    end.expect("the shutdown ends the idle session with a close_notify");
}

/// A download that takes several idle timeouts (the client reads
/// through a small receive buffer) while the connection's own queue
/// empties early and its last records wait in rustls, then in the kernel:
/// the peer keeps taking bytes, so nothing is cut; the session then ends
/// at the idle timeout with a close_notify behind the whole body.
#[test]
fn https_slow_download_arrives_whole_then_ends_with_close_notify() {
    struct Big;
    impl RequestHandler for Big {
        fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
            cx.write(pattern(args[0].parse().unwrap()));
        }
    }
    let certs = make_certs();
    let server = serve_tls(&certs, move || {
        Application::builder()
            .route(r"/big/(\d+)", || Big)
            .defer_accept(None)
            .idle_timeout(Duration::from_millis(200))
            .build()
    });
    // More than the kernel and rustls take together (tcp_wmem allows
    // 4 MiB): the connection's queue empties while the client still has
    // more than an idle timeout of reading to do.
    let size = 6_000_000;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&server.addr.into()).unwrap();
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(SHORT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&certs), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(format!("GET /big/{size} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    // A few MB/s: several idle timeouts for the whole body.
    let t = Instant::now();
    let (got, end) = read_paced(&mut s, |_| {
        std::thread::sleep(Duration::from_millis(3));
        assert!(t.elapsed() < Duration::from_secs(20));
    });
    let body = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| &got[p + 4..])
        .unwrap_or_default();
    assert_eq!(body.len(), size, "body cut");
    assert!(body == &pattern(size)[..], "body differs");
    end.expect("the idle close after the body ends with a close_notify");
}

/// A static file over HTTPS is sent from the file in pieces (through
/// rustls' buffer and its pending records): 6 MiB read slowly arrive
/// whole and in order, then a pipelined range of it, then the end with a
/// close_notify.
#[test]
fn https_static_file_streams_whole_and_in_order() {
    let certs = make_certs();
    let dir = TempDir::new("tls-static");
    let size = 6 << 20;
    let data: Vec<u8> = (0..size).map(|i: usize| (i % 251) as u8).collect();
    dir.file("big.bin", &data);
    let root = dir.0.clone();
    let server = serve_tls(&certs, move || {
        Application::builder()
            .static_path(root.clone())
            .defer_accept(None)
            .build()
    });
    let mut s = tls_stream(&server, &certs);
    s.write_all(
        b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=-1000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    // Slowly at first: the server's pieces wait in rustls and in the
    // kernel.
    let (got, end) = read_paced(&mut s, |n| {
        if n < 2 << 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let head_end = |from: usize| {
        from + got[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4
    };
    let body1 = head_end(0);
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(
        got[body1..].len() > size,
        "cut: {} bytes",
        got.len() - body1
    );
    assert!(got[body1..body1 + size] == data[..], "the file differs");
    let second = body1 + size;
    let body2 = head_end(second);
    let head2 = String::from_utf8_lossy(&got[second..body2]);
    assert!(head2.starts_with("HTTP/1.1 206"), "{head2}");
    assert!(head2.contains(&format!(
        "Content-Range: bytes {}-{}/{size}",
        size - 1000,
        size - 1
    )));
    assert!(got[body2..] == data[size - 1000..], "the range differs");
    end.expect("the response ends with a close_notify");
}

/// Over `wss://` as over plain TCP: while `ws.spawn` holds a connection,
/// a peer that sent nothing since a ping did not answer it, and the ping
/// timeout ends its connection; a peer whose answer may wait behind a
/// held message (both records read in one go) keeps its connection.
#[test]
fn wss_ping_timeout_while_held_reaches_only_a_silent_peer() {
    use cyclone::websocket::WebSocketSettings;
    struct Held;
    impl WebSocketHandler for Held {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, _msg: Message<'_>) {
            ws.spawn(cyclone::ioloop::sleep(Duration::from_secs(30)));
        }
    }
    let certs = make_certs();
    let server = serve_tls(&certs, || {
        let settings = WebSocketSettings {
            ping_interval: Some(Duration::from_millis(100)),
            ping_timeout: Some(Duration::from_millis(200)),
            ..WebSocketSettings::default()
        };
        Application::builder()
            .websocket_with("/held", settings, |_| Held)
            .defer_accept(None)
            .build()
    });
    let open = |frames: &[&[u8]]| {
        let mut c = RawTls::connect(&server, &certs);
        c.send(util::upgrade_request("/held", "").as_bytes(), false);
        let (head, _) = c.read_until(SHORT, |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        let wire: Vec<u8> = frames
            .iter()
            .flat_map(|f| util::client_frame(true, 1, f))
            .collect();
        c.send(&wire, false);
        c
    };
    let mut silent = open(&[b"hold"]);
    let mut behind = open(&[b"hold", b"held"]);
    let t = Instant::now();
    let (_, ended) = silent.read_until(Duration::from_secs(5), |_| false);
    assert!(ended, "the silent peer is still connected");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let (pings, ended) = behind.read_until(Duration::from_millis(1500), |_| false);
    assert!(!ended, "the peer with a held message was dropped");
    // Pings went on meanwhile: 0x89, an empty payload.
    assert!(pings.windows(2).any(|w| w == [0x89, 0x00]), "{pings:?}");
}

/// Tornado's `AsyncHTTPSTestCase`: `TestServer::start_tls` serves with
/// cyclone's test certificate; `fetch` speaks TLS (a redirect followed
/// on `https://`), the URLs say `https://` and `wss://`, and the client
/// trusts the server through `client_tls()`; a client that does not
/// fails the handshake, typed.
#[test]
fn test_server_over_tls_is_fetched_and_connected_to() {
    use cyclone::testing::{async_test_timeout, gen_test, TestServer};
    use cyclone::websocket::{websocket_connect_opts, ConnectError, ConnectOptions};

    struct Scheme;
    impl RequestHandler for Scheme {
        fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
            let protocol = cx.request().protocol().to_owned();
            cx.write(protocol);
        }
    }
    struct Away;
    impl RequestHandler for Away {
        fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
            cx.redirect("/scheme", false);
        }
    }
    struct Echo;
    impl WebSocketHandler for Echo {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
            ws.write_message(msg).unwrap();
        }
    }
    let srv = TestServer::start_tls(|| {
        Application::builder()
            .route("/scheme", || Scheme)
            .route("/away", || Away)
            .websocket("/echo", |_r: &cyclone::http::Request| Echo)
            .build()
    });
    assert!(srv.url("/x").starts_with("https://127.0.0.1:"));
    assert!(srv.ws_url("/x").starts_with("wss://127.0.0.1:"));
    let r = srv.fetch("/away").unwrap();
    assert_eq!((r.code, r.text()), (200, "https".to_owned()));
    assert_eq!(r.effective_url, srv.url("/scheme"));

    let (url, trusted) = (srv.ws_url("/echo"), srv.client_tls());
    let echoed = gen_test(async_test_timeout(), async move {
        let opts = ConnectOptions {
            tls_config: trusted,
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&url, opts).await.unwrap();
        conn.write_message("over tls").unwrap();
        let echoed = conn.read_message().await;
        // Mozilla's roots alone do not know the test authority.
        let stranger = websocket_connect_opts(&url, ConnectOptions::default()).await;
        (echoed, stranger.err())
    });
    assert_eq!(echoed.0.unwrap().as_text(), Some("over tls"));
    assert!(
        matches!(echoed.1, Some(ConnectError::TlsHandshake(_))),
        "{:?}",
        echoed.1
    );
    assert!(cyclone::testing::TEST_CA_PEM.starts_with("-----BEGIN CERTIFICATE-----"));
}
