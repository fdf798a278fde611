//! Request bodies taken as they arrive (`stream_request_body`, Tornado's
//! `@stream_request_body`), over raw sockets.

mod util;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, RequestContext, RequestHandler};
use util::{read_response, request, Server};

/// What the upload handlers saw, for `/progress`.
#[derive(Default, Clone)]
struct Seen {
    bytes: Rc<Cell<u64>>,
    pieces: Rc<Cell<u32>>,
    log: Rc<RefCell<Vec<String>>>,
}

/// `/upload/(big|small)`: counts the body as it comes; `big` raises the
/// body limit in `prepare`. `X-Deny` is refused in `prepare`; a body
/// holding `STOP` is refused in `data_received`; `PANIC` panics there.
struct Upload {
    seen: Seen,
    sum: u64,
    len: u64,
}

impl RequestHandler for Upload {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST", "PUT"]
    }
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        self.seen.log.borrow_mut().push("prepare".into());
        if cx.request().header("X-Deny").is_some() {
            cx.send_error_message(403, Some("denied from the head"));
            return;
        }
        if cx.path_kwarg("size") == Some("big") {
            cx.set_max_body_size(1 << 20);
        }
    }
    fn data_received(&mut self, cx: &mut RequestContext<'_>, chunk: &[u8]) {
        if chunk.windows(4).any(|w| w == b"STOP") {
            cx.send_error_message(400, Some("STOP in the body"));
            return;
        }
        assert!(
            !chunk.windows(5).any(|w| w == b"PANIC"),
            "PANIC in the body"
        );
        self.len += chunk.len() as u64;
        self.sum = chunk.iter().fold(self.sum, |s, &b| {
            s.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        self.seen
            .bytes
            .set(self.seen.bytes.get() + chunk.len() as u64);
        self.seen.pieces.set(self.seen.pieces.get() + 1);
    }
    fn on_connection_close(&mut self) {
        self.seen
            .log
            .borrow_mut()
            .push(format!("closed after {}", self.len));
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        self.seen.log.borrow_mut().push("post".into());
        assert!(cx.request().body().is_empty());
        cx.write(format!("len={} sum={}", self.len, self.sum));
    }
    fn put(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        // Answered later, after the streamed body.
        let text = format!("later len={}", self.len);
        let later = cx.asynchronous();
        IOLoop::current().add_callback(move || later.write(text));
    }
}

/// `/progress`: the bytes the uploads took so far.
struct Progress(Seen);
impl RequestHandler for Progress {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.write(format!(
            "bytes={} pieces={} log={}",
            self.0.bytes.get(),
            self.0.pieces.get(),
            self.0.log.borrow().join(",")
        ));
    }
}

/// `/buffered`: an ordinary route, its body whole.
struct Buffered;
impl RequestHandler for Buffered {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let n = cx.request().body().len();
        cx.write(format!("buffered {n}"));
    }
}

fn server(xsrf: bool) -> Server {
    Server::start(move || {
        let seen = Seen::default();
        let (s1, s2) = (seen.clone(), seen);
        Application::builder()
            .route("/upload/(?P<size>big|small)", move || Upload {
                seen: s1.clone(),
                sum: 0,
                len: 0,
            })
            .stream_request_body()
            .route("/progress", move || Progress(s2.clone()))
            .route("/buffered", || Buffered)
            .max_body_size(1024)
            .xsrf_cookies(xsrf)
            .build()
    })
}

fn checksum(body: &[u8]) -> u64 {
    body.iter()
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)))
}

fn progress(srv: &Server) -> String {
    let (_, _, body) = request(srv, b"GET /progress HTTP/1.1\r\nHost: x\r\n\r\n");
    String::from_utf8(body).unwrap()
}

fn progress_reaches(srv: &Server, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = progress(srv);
        if p.contains(want) || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn body_reaches_data_received_before_it_ends() {
    let srv = server(false);
    let body = body_of(300_000);
    let mut s = srv.connect();
    s.write_all(
        format!(
            "POST /upload/big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body[..100_000]).unwrap();
    // The handler has the first part while the rest is not even sent.
    let p = progress_reaches(&srv, "bytes=100000");
    assert!(
        p.contains("bytes=100000") && p.contains("log=prepare"),
        "{p}"
    );
    s.write_all(&body[100_000..]).unwrap();
    let (status, _, answer) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        format!("len=300000 sum={}", checksum(&body))
    );
    // Over the application's 1 KiB limit, which `prepare` raised; the
    // connection goes on.
    s.write_all(b"GET /progress HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _, p) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(String::from_utf8(p).unwrap().ends_with("log=prepare,post"));
}

#[test]
fn chunked_body_is_decoded_piece_by_piece() {
    let srv = server(false);
    let mut s = srv.connect();
    s.write_all(b"POST /upload/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    for (i, piece) in [&b"hello "[..], b"streamed ", b"world"].iter().enumerate() {
        s.write_all(format!("{:x};ext=1\r\n", piece.len()).as_bytes())
            .unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
        all.extend_from_slice(piece);
        let p = progress_reaches(&srv, &format!("bytes={}", all.len()));
        assert!(p.contains(&format!("pieces={}", i + 1)), "{p}");
    }
    s.write_all(b"0\r\nX-Trailer: t\r\n\r\n").unwrap();
    let (status, _, answer) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        format!("len=20 sum={}", checksum(&all))
    );
}

#[test]
fn limits_apply_to_streamed_bodies() {
    let srv = server(false);
    // `small` keeps the application's 1 KiB: refused from the head.
    let raw = format!(
        "POST /upload/small HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        2000
    );
    let (status, _, _) = request(&srv, raw.as_bytes());
    assert_eq!(status, 413);
    // `big` raised it to 1 MiB: 2 MiB is refused before any of it is read.
    let raw = format!(
        "POST /upload/big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    let (status, _, _) = request(&srv, raw.as_bytes());
    assert_eq!(status, 413);
    assert!(progress(&srv).contains("bytes=0"));
    // A chunked body is refused once it would pass the limit, and the
    // handler, whose prepare and data_received ran, learns that its body
    // ends there: `on_connection_close`, as Tornado calls it (it used to
    // be dropped without a word: a partial upload was never cleaned up).
    let mut s = srv.connect();
    s.write_all(b"POST /upload/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    s.write_all(b"200\r\n").unwrap();
    s.write_all(&[b'x'; 0x200]).unwrap();
    s.write_all(b"\r\n").unwrap();
    assert!(progress_reaches(&srv, "bytes=512").contains("bytes=512"));
    s.write_all(b"300\r\n").unwrap();
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 413);
    assert!(util::wait_closed(&mut s, Duration::from_secs(5)));
    // The two refused from their Content-Length, after `prepare` (the
    // limit is the one it set), learnt it too, with nothing streamed.
    // (Each learns it from a callback: the order of the entries varies.)
    let p = progress_reaches(&srv, "closed after 512");
    let mut log: Vec<&str> = p.split("log=").nth(1).unwrap_or("").split(',').collect();
    log.sort_unstable();
    assert_eq!(
        log,
        [
            "closed after 0",
            "closed after 0",
            "closed after 512",
            "prepare",
            "prepare",
            "prepare"
        ],
        "{p}"
    );
    // An ordinary route still buffers its body whole.
    let (status, _, body) = request(
        &srv,
        b"POST /buffered HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!((status, &body[..]), (200, &b"buffered 5"[..]));
}

#[test]
fn refused_early_is_answered_before_the_body_and_closes() {
    let srv = server(false);
    // Refused in `prepare`: the answer comes before the body is sent,
    // and the connection closes after it.
    let mut s = srv.connect();
    s.write_all(
        b"POST /upload/big HTTP/1.1\r\nHost: x\r\nX-Deny: 1\r\nContent-Length: 100000\r\n\r\n",
    )
    .unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 403);
    assert!(head.contains("Connection: close"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("denied from the head"));
    assert!(util::wait_closed(&mut s, Duration::from_secs(5)));
    // Refused in `data_received`.
    let mut s = srv.connect();
    s.write_all(
        b"POST /upload/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabcSTOPdef",
    )
    .unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("STOP in the body"));
    assert!(util::wait_closed(&mut s, Duration::from_secs(5)));
    // A panic in `data_received`: 500, closed, the server goes on.
    let mut s = srv.connect();
    s.write_all(b"POST /upload/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nPANIC")
        .unwrap();
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 500);
    assert!(util::wait_closed(&mut s, Duration::from_secs(5)));
    assert!(progress(&srv).starts_with("bytes=0"));
}

#[test]
fn expect_continue_then_streamed_then_answered_later() {
    let srv = server(false);
    let mut s = srv.connect();
    s.write_all(b"PUT /upload/big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2048\r\n\r\n")
        .unwrap();
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 100);
    s.write_all(&[b'z'; 2048]).unwrap();
    // `put` answers later (`asynchronous`), after the whole body.
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, &body[..]), (200, &b"later len=2048"[..]));
}

#[test]
fn xsrf_is_checked_before_the_body() {
    let srv = server(true);
    let mut s = srv.connect();
    s.write_all(b"POST /upload/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let (status, _, _) = read_response(&mut s);
    assert_eq!(status, 403);
    assert!(progress(&srv).contains("bytes=0 pieces=0 log="));
    // With the token in the header (the body is not parsed for it).
    let raw = "POST /upload/small HTTP/1.1\r\nHost: x\r\nCookie: _xsrf=tok\r\nX-XSRFToken: tok\r\nContent-Length: 3\r\n\r\nabc";
    let (status, _, body) = request(&srv, raw.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn upload_cut_short_is_noticed() {
    let srv = server(false);
    let mut s = srv.connect();
    s.write_all(b"POST /upload/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    s.write_all(&[b'q'; 4000]).unwrap();
    assert!(progress_reaches(&srv, "bytes=4000").contains("bytes=4000"));
    drop(s);
    let p = progress_reaches(&srv, "closed after 4000");
    assert!(p.ends_with("log=prepare,closed after 4000"), "{p}");
}
