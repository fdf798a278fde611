//! Tornado's `decompress_request` setting: request bodies sent with
//! `Content-Encoding: gzip`, over raw sockets. The expectations are what
//! Tornado 6.6's `HTTPServer(decompress_request=True, max_body_size=1000)`
//! answers to the same requests.

mod util;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use cyclone::testing::ExpectLog;
use cyclone::web::{Application, RequestContext, RequestHandler};
use flate2::{write::GzEncoder, Compression};
use util::{read_response, request, wait_closed, Server};

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// What the handler saw: the arguments, the encoding headers (every line
/// joined, as Tornado's `headers.get`), the declared length and the
/// body's length.
struct Echo;
impl RequestHandler for Echo {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let r = cx.request();
        let seen = format!(
            "a={:?} b={:?} c={:?} ce={:?} xce={:?} cl={:?} len={}",
            cx.get_arguments("a"),
            cx.get_arguments("b"),
            cx.get_arguments("c"),
            r.header_joined("Content-Encoding"),
            r.header_joined("X-Consumed-Content-Encoding"),
            r.header("Content-Length"),
            r.body().len(),
        );
        cx.write(seen);
    }
}

/// A streamed body: what `data_received` got, and whether the handler
/// learnt of a body cut short.
struct Upload(Rc<RefCell<Vec<String>>>, Vec<u8>);
impl RequestHandler for Upload {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn data_received(&mut self, _cx: &mut RequestContext<'_>, chunk: &[u8]) {
        self.1.extend_from_slice(chunk);
    }
    fn on_connection_close(&mut self) {
        self.0
            .borrow_mut()
            .push(format!("closed after {}", self.1.len()));
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let xce = cx.request().header("X-Consumed-Content-Encoding");
        let text = format!("{} {xce:?}", String::from_utf8_lossy(&self.1));
        cx.write(text);
    }
}

/// `GET /log`: the uploads' `on_connection_close` lines.
struct Log(Rc<RefCell<Vec<String>>>);
impl RequestHandler for Log {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let text = self.0.borrow().join(";");
        cx.write(text);
    }
}

fn server(on: bool) -> Server {
    Server::start(move || {
        let log = Rc::new(RefCell::new(Vec::new()));
        let (l1, l2) = (log.clone(), log);
        Application::builder()
            .route("/", || Echo)
            .route("/upload", move || Upload(l1.clone(), Vec::new()))
            .stream_request_body()
            .route("/log", move || Log(l2.clone()))
            .max_body_size(1000)
            .decompress_request(on)
            .build()
    })
}

fn post(path: &str, coding: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         {coding}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// A request the server refuses as Tornado does: 400, then the
/// connection closes.
fn refused(srv: &Server, raw: &[u8]) -> String {
    let mut s = srv.connect();
    s.write_all(raw).unwrap();
    let (status, _, body) = read_response(&mut s);
    assert!(wait_closed(&mut s, Duration::from_secs(5)), "not closed");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body).into_owned()
}

const GZ: &str = "Content-Encoding: gzip\r\n";

#[test]
fn a_gzip_form_body_is_decompressed_and_its_header_renamed() {
    let srv = server(true);
    let body = gz(b"a=1&b=hello");
    let (status, _, seen) = request(&srv, &post("/", GZ, &body));
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        format!(
            "a=[\"1\"] b=[\"hello\"] c=[] ce=None xce=Some(\"gzip\") cl=Some(\"{}\") len=11",
            body.len()
        )
    );
    // The coding's case is kept; members one after another are all read;
    // a chunked body too; an empty body is an empty body.
    let (_, _, seen) = request(&srv, &post("/", "Content-Encoding: GZIP\r\n", &body));
    assert!(String::from_utf8(seen)
        .unwrap()
        .contains("xce=Some(\"GZIP\")"));
    let mut two = body.clone();
    two.extend(gz(b"&c=3"));
    let (_, _, seen) = request(&srv, &post("/", GZ, &two));
    assert!(String::from_utf8(seen)
        .unwrap()
        .starts_with("a=[\"1\"] b=[\"hello\"] c=[\"3\"]"));
    let mut chunked = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         {GZ}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (status, _, seen) = request(&srv, &chunked);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        "a=[\"1\"] b=[\"hello\"] c=[] ce=None xce=Some(\"gzip\") cl=None len=11"
    );
    let (status, _, seen) = request(&srv, &post("/", GZ, b""));
    assert_eq!(status, 200);
    assert!(String::from_utf8(seen).unwrap().ends_with("len=0"));
    // On a keep-alive connection, the next request is read as sent.
    let mut s = srv.connect();
    s.write_all(&post("/", GZ, &body)).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    s.write_all(&post("/", "", b"a=2")).unwrap();
    let (status, _, seen) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        "a=[\"2\"] b=[] c=[] ce=None xce=None cl=Some(\"3\") len=3"
    );
}

/// The encoding headers as Tornado 6.6 leaves them (its
/// `_GzipMessageDelegate` reads `headers.get("Content-Encoding")`, every
/// line joined with `,`, and `add`s the renamed header): an
/// `X-Consumed-Content-Encoding` the client sent itself is kept, before or
/// after its `Content-Encoding`, and the consumed coding is added after it
/// (`foo,gzip`); `gzip` with whitespace around is consumed, the value
/// trimmed. `Content-Encoding: gzip` sent twice is `gzip,gzip`, which is
/// not `gzip`: nothing is consumed, and the form body is refused as any
/// other coding is, the warning naming every line (as Tornado's
/// `Unsupported Content-Encoding: gzip,gzip`).
#[test]
fn encoding_headers_are_consumed_as_tornado_does() {
    let srv = server(true);
    let body = gz(b"a=1");
    let answer = |coding: &str| {
        let (status, _, seen) = request(&srv, &post("/", coding, &body));
        (status, String::from_utf8(seen).unwrap())
    };
    let mine = "X-Consumed-Content-Encoding: foo\r\n";
    for coding in [format!("{mine}{GZ}"), format!("{GZ}{mine}")] {
        let (status, seen) = answer(&coding);
        assert_eq!(status, 200, "{coding:?}: {seen}");
        assert!(
            seen.starts_with("a=[\"1\"] b=[] c=[] ce=None xce=Some(\"foo,gzip\")"),
            "{coding:?}: {seen}"
        );
    }
    let (status, seen) = answer("Content-Encoding:   gzip  \r\n");
    assert_eq!(status, 200, "{seen}");
    assert!(seen.contains(" ce=None xce=Some(\"gzip\")"), "{seen}");
    let warned = ExpectLog::new(
        "cyclone",
        r"400 POST / \(127\.0\.0\.1\): Invalid body: Unsupported Content-Encoding: (gzip,gzip|gzip, gzip|,gzip)$",
    );
    for twice in [
        format!("{GZ}{GZ}"),
        "Content-Encoding: gzip, gzip\r\n".to_owned(),
        format!("Content-Encoding: \r\n{GZ}"),
    ] {
        assert_eq!(answer(&twice).0, 400, "{twice:?}");
    }
    assert!(
        warned.wait(3, Duration::from_secs(5)),
        "{:?}",
        warned.logged()
    );
    assert!(warned
        .logged()
        .iter()
        .all(|(level, _)| *level == log::Level::Warn));
    // A coding that is not UTF-8 is a coding too (Tornado reads it as
    // Latin-1): the form body is not parsed as if it had none, and the
    // warning names it as Tornado 6.6's does, its bytes read as Latin-1
    // (UTF-8 `é` is `Ã©` there).
    let latin1_warned = ExpectLog::new(
        "cyclone",
        r"400 POST / \(127\.0\.0\.1\): Invalid body: Unsupported Content-Encoding: (é|cafÃ©|gzip,ÿ)$",
    );
    let mut latin1 = post("/", "Content-Encoding: \u{1}\r\n", b"a=1");
    let at = latin1.iter().position(|&b| b == 1).unwrap();
    latin1[at] = 0xe9;
    assert_eq!(request(&srv, &latin1).0, 400);
    let utf8 = post("/", "Content-Encoding: café\r\n", b"a=1");
    assert_eq!(request(&srv, &utf8).0, 400);
    let mut two = post(
        "/",
        "Content-Encoding: gzip\r\nContent-Encoding: \u{1}\r\n",
        b"a=1",
    );
    let at = two.iter().position(|&b| b == 1).unwrap();
    two[at] = 0xff;
    assert_eq!(request(&srv, &two).0, 400);
    assert!(
        latin1_warned.wait(3, Duration::from_secs(5)),
        "{:?}",
        latin1_warned.logged()
    );
}

#[test]
fn the_decompressed_body_is_bounded_by_max_body_size() {
    let srv = server(true);
    let mut exact = b"a=".to_vec();
    exact.resize(1000, b'x');
    let (status, _, seen) = request(&srv, &post("/", GZ, &gz(&exact)));
    assert_eq!(status, 200);
    assert!(String::from_utf8(seen).unwrap().ends_with("len=1000"));
    exact.push(b'x');
    let compressed = gz(&exact);
    assert!(compressed.len() < 100);
    refused(&srv, &post("/", GZ, &compressed));
    // Far beyond: refused without decompressing it all.
    let bomb = gz(&vec![b'x'; 800 << 10]);
    assert!(bomb.len() < 1000);
    refused(&srv, &post("/", GZ, &bomb));
}

#[test]
fn data_that_is_not_gzip_is_refused() {
    let srv = server(true);
    let body = gz(b"a=1");
    let mut junk = body.clone();
    junk.extend(b"xx");
    let mut corrupt = body.clone();
    let n = corrupt.len();
    corrupt[n - 6] ^= 0xff; // the CRC
    for bad in [&b"a=1"[..], &body[..n - 1], &junk, &corrupt] {
        let why = refused(&srv, &post("/", GZ, bad));
        assert!(!why.contains("Unsupported Content-Encoding"), "{why}");
    }
}

#[test]
fn without_the_setting_a_gzip_form_body_is_refused_as_before() {
    let srv = server(false);
    let body = gz(b"a=1");
    let (status, _, page) = request(&srv, &post("/", GZ, &body));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&page));
    // Other codings are left alone with the setting on.
    let srv = server(true);
    let (status, _, _) = request(&srv, &post("/", "Content-Encoding: br\r\n", b"a=1"));
    assert_eq!(status, 400);
}

#[test]
fn a_streamed_body_gets_the_decompressed_bytes() {
    let srv = server(true);
    let mut big = Vec::new();
    for i in 0..150 {
        big.extend_from_slice(format!("{i:03}.").as_bytes());
    }
    let body = gz(&big);
    // In pieces, so the handler gets several.
    let raw = post("/upload", GZ, &body);
    let mut s = srv.connect();
    for piece in raw.chunks(40) {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
    }
    let (status, _, seen) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        format!("{} Some(\"gzip\")", String::from_utf8(big).unwrap())
    );
    // Corrupt partway: 400, and the handler learns its body ended.
    let mut corrupt = gz(b"hello");
    let n = corrupt.len();
    corrupt[n - 6] ^= 0xff;
    refused(&srv, &post("/upload", GZ, &corrupt));
    // Too large once decompressed.
    refused(&srv, &post("/upload", GZ, &gz(&[b'x'; 1001])));
    // (`on_connection_close` runs as a loop callback: asked until seen,
    // a bounded number of times.)
    let mut log = String::new();
    for _ in 0..250 {
        let (_, _, body) = request(&srv, b"GET /log HTTP/1.1\r\nHost: x\r\n\r\n");
        log = String::from_utf8(body).unwrap();
        if log.matches("closed").count() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // (Nothing of a piece that fails reaches the handler, as in Tornado.)
    assert_eq!(log, "closed after 0;closed after 0");
}
