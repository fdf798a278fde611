//! Answers completed after the handler method returned
//! (`RequestContext::asynchronous`): long polling, streamed bodies,
//! the connection's close, over raw sockets.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, AsyncResponse, RequestContext, RequestHandler};
use util::{read_response, Server};

/// Handles waiting for `/publish` (a long poll), and how many closes the
/// handlers saw.
#[derive(Default, Clone)]
struct Board {
    waiters: Rc<RefCell<Vec<AsyncResponse>>>,
    /// Streams waiting for `/release` to go on.
    streams: Rc<RefCell<Vec<AsyncResponse>>>,
    closes: Rc<Cell<u32>>,
    on_close_callbacks: Rc<Cell<u32>>,
    finishes: Rc<RefCell<Vec<u16>>>,
    /// The most bytes `/bulk` saw queued right after a flush.
    most_queued: Rc<Cell<usize>>,
}

/// `/wait`: a long poll, answered by the next `/publish`.
struct Wait(Board);
impl RequestHandler for Wait {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_header("X-Set-Before", "yes");
        cx.write("[");
        let later = cx.asynchronous();
        let calls = self.0.on_close_callbacks.clone();
        later.on_close(move || calls.set(calls.get() + 1));
        let mut w = self.0.waiters.borrow_mut();
        w.retain(|w| !w.is_closed());
        w.push(later);
    }
    fn on_connection_close(&mut self) {
        self.0.closes.set(self.0.closes.get() + 1);
    }
    fn on_finish(&mut self, status: u16) {
        self.0.finishes.borrow_mut().push(status);
    }
}

/// `/publish?m=..`: answers every waiter (their answers end as the
/// handles drop) and says how many it reached.
struct Publish(Board);
impl RequestHandler for Publish {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let m = cx.get_argument("m").unwrap_or_default();
        let mut n = 0;
        for w in self.0.waiters.borrow_mut().drain(..) {
            if !w.is_closed() {
                n += 1;
            }
            w.write(m.clone());
            w.write("]");
        }
        cx.write(format!("reached {n}"));
    }
}

/// `/count`: closes seen by handlers and by `on_close` callbacks, and the
/// statuses `on_finish` saw.
struct Count(Board);
impl RequestHandler for Count {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.write(format!(
            "closes={} callbacks={} finishes={:?} waiting={} most_queued={}",
            self.0.closes.get(),
            self.0.on_close_callbacks.get(),
            self.0.finishes.borrow(),
            self.0.waiters.borrow().len(),
            self.0.most_queued.get()
        ));
    }
}

/// `/later/(\d+)`: answers after that many milliseconds, from a timer.
struct Later;
impl RequestHandler for Later {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let ms: u64 = args[0].parse().unwrap();
        let later = cx.asynchronous();
        IOLoop::current().call_later(Duration::from_millis(ms), move || {
            later.set_status_and_write(201, format!("after {ms} ms"));
            later.finish();
        });
    }
}

trait StatusWrite {
    fn set_status_and_write(&self, status: u16, body: String);
}
impl StatusWrite for AsyncResponse {
    fn set_status_and_write(&self, status: u16, body: String) {
        self.with(move |cx| {
            cx.set_status(status);
            cx.write(body);
        });
    }
}

/// `/stream`: flushes "one", then waits for `/release` to flush "two" and
/// finish with "three".
struct Stream(Board);
impl RequestHandler for Stream {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_header("Content-Type", "text/plain");
        cx.set_cookie("s", "1");
        cx.write("one;");
        let later = cx.asynchronous();
        later.flush();
        // Too late: the head went out with the flush (ignored with a
        // warning, as Tornado's set_header then changes nothing; a
        // redirect ends the answer, see
        // `send_error_after_a_flush_finishes_with_what_was_written`).
        later.with(|cx| cx.set_header("X-After-Flush", "1"));
        self.0.streams.borrow_mut().push(later);
    }
    fn on_finish(&mut self, status: u16) {
        self.0.finishes.borrow_mut().push(status);
    }
}

/// `/release`: the waiting streams go on to their end.
struct Release(Board);
impl RequestHandler for Release {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let streams: Vec<AsyncResponse> = self.0.streams.borrow_mut().drain(..).collect();
        cx.write(format!("released {}", streams.len()));
        for s in streams {
            s.write("two;");
            s.flush();
            s.write("three");
            s.finish();
        }
    }
}

/// `/flood`: streams 16 MiB once released, and reports the bytes still
/// queued when the connection closed.
struct Flood(Board);
impl RequestHandler for Flood {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let later = cx.asynchronous();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..16 {
            later.write(chunk.clone());
            later.flush();
        }
        let queued = later.clone();
        let board = self.0.clone();
        later.on_close(move || {
            let q = queued.queued_bytes();
            board.finishes.borrow_mut().push(if q > 0 { 1 } else { 0 });
        });
        self.0.streams.borrow_mut().push(later);
    }
    fn on_connection_close(&mut self) {
        self.0.closes.set(self.0.closes.get() + 1);
    }
}

/// `/countdown`: a task (Tornado's coroutine) streams three lines a few
/// milliseconds apart; its end finishes the answer.
struct Countdown;
impl RequestHandler for Countdown {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_header("Content-Type", "text/plain");
        let later = cx.asynchronous();
        cyclone::ioloop::spawn(async move {
            for n in (1..=3).rev() {
                later.write(format!("{n}\n"));
                later.flush();
                cyclone::ioloop::sleep(Duration::from_millis(5)).await;
            }
            later.write("liftoff\n");
        });
    }
}

/// `/bulk`: a task streams 4 MiB in 64 KiB pieces, awaiting `flushed()`
/// after each, and records the most bytes queued right after a flush.
struct Bulk(Board);
impl RequestHandler for Bulk {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let later = cx.asynchronous();
        let most = self.0.most_queued.clone();
        cyclone::ioloop::spawn(async move {
            let piece = vec![b'b'; 64 * 1024];
            for _ in 0..64 {
                later.write(piece.clone());
                later.flush();
                most.set(most.get().max(later.queued_bytes()));
                later.flushed().await;
            }
        });
    }
}

/// `/dropped`: takes the handle and drops it in the method.
struct Dropped;
impl RequestHandler for Dropped {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let later = cx.asynchronous();
        later.write("written through the handle;");
        drop(later);
        cx.write("written through cx;");
    }
}

/// `/(panics|aborts)/(open|streaming)`: a later operation panics, or the
/// answer is given up with `abort()`.
struct PanicsLater;
impl RequestHandler for PanicsLater {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let aborts = args[0] == "aborts";
        let streaming = args[1] == "streaming";
        let later = cx.asynchronous();
        if streaming {
            cx.write("first;");
            later.flush();
        }
        IOLoop::current().add_callback(move || {
            if aborts {
                later.abort();
            } else {
                later.with(|_| panic!("a later operation panics"));
            }
            // Ignored: the answer failed.
            later.write("never");
            later.finish();
        });
    }
}

/// `/error-later`: a later `send_error` gets the handler's error page.
struct ErrorLater;
impl RequestHandler for ErrorLater {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let later = cx.asynchronous();
        IOLoop::current().add_callback(move || later.send_error(503));
    }
    fn write_error(&mut self, cx: &mut RequestContext<'_>, status: u16) {
        cx.write(format!("custom error page {status}"));
    }
}

/// `/error-streaming`: flushes "one;", then writes "two;" and sends an
/// error, which can no longer be sent; records what `on_finish` saw.
/// `/error-streaming/redirect` redirects instead of the error.
struct ErrorStreaming(Board);
impl RequestHandler for ErrorStreaming {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        cx.write("one;");
        let later = cx.asynchronous();
        later.flush();
        let redirect = args[0] == "redirect";
        IOLoop::current().add_callback(move || {
            later.write("two;");
            if redirect {
                later.with(|cx| cx.redirect("/elsewhere", false));
            } else {
                later.send_error(503);
            }
            later.write("ignored");
        });
    }
    fn on_finish(&mut self, status: u16) {
        self.0.finishes.borrow_mut().push(status);
    }
}

/// `/interim-flush`: sets a 1xx status, flushes "one;", then writes
/// "two;" and finishes; records what `on_finish` saw.
struct InterimFlush(Board);
impl RequestHandler for InterimFlush {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_status(102);
        cx.write("one;");
        let later = cx.asynchronous();
        later.flush();
        IOLoop::current().add_callback(move || {
            later.write("two;");
            later.finish();
        });
    }
    fn on_finish(&mut self, status: u16) {
        self.0.finishes.borrow_mut().push(status);
    }
}

/// `/finished-anyway`: calls `asynchronous`, then finishes in the method.
struct FinishedAnyway;
impl RequestHandler for FinishedAnyway {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let later = cx.asynchronous();
        cx.redirect("/elsewhere", false);
        IOLoop::current().add_callback(move || later.write("ignored"));
    }
}

/// `/sized/(exact|over|under)`: announces `Content-Length: 10`, flushes
/// "hello", then from a callback writes 5, 6 or 3 more bytes and finishes.
struct Sized;
impl RequestHandler for Sized {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let rest = match args[0] {
            "exact" => "world",
            "over" => "world!",
            _ => "wor",
        };
        cx.set_header("Content-Type", "text/plain");
        cx.set_header("Content-Length", "10");
        cx.write("hello");
        let later = cx.asynchronous();
        later.flush();
        IOLoop::current().add_callback(move || {
            later.write(rest);
            later.finish();
        });
    }
    fn head(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }
}

/// `/queued/(error|panic)`: work queued during the method behind an
/// operation that ends the answer (an error page, or a panic), holding a
/// handle: it is dropped unrun, and its handle with it.
struct QueuedBehindTheEnd;
impl RequestHandler for QueuedBehindTheEnd {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let later = cx.asynchronous();
        if args[0] == "error" {
            later.send_error(503);
        } else {
            later.with(|_| panic!("boom in a queued operation"));
        }
        let again = later.clone();
        later.with(move |cx| {
            cx.write("never");
            drop(again);
        });
    }
}

fn server() -> Server {
    server_with(false)
}

fn server_with(gzip: bool) -> Server {
    Server::start(move || {
        let b = Board::default();
        let (b1, b2, b3, b4, b5) = (b.clone(), b.clone(), b.clone(), b.clone(), b.clone());
        let b6 = b.clone();
        let b7 = b.clone();
        let b8 = b.clone();
        let b9 = b.clone();
        Application::builder()
            .route("/wait", move || Wait(b1.clone()))
            .route("/publish", move || Publish(b2.clone()))
            .route("/count", move || Count(b3.clone()))
            .route(r"/later/(\d+)", || Later)
            .route("/stream", move || Stream(b4.clone()))
            .route("/release", move || Release(b5.clone()))
            .route("/dropped", || Dropped)
            .route("/countdown", || Countdown)
            .route("/bulk", move || Bulk(b7.clone()))
            .route("/(panics|aborts)/(open|streaming)", || PanicsLater)
            .route("/error-later", || ErrorLater)
            .route(r"/error-streaming/?(\w*)", move || {
                ErrorStreaming(b8.clone())
            })
            .route("/finished-anyway", || FinishedAnyway)
            .route("/interim-flush", move || InterimFlush(b9.clone()))
            .route("/flood", move || Flood(b6.clone()))
            .route("/sized/(exact|over|under)", || Sized)
            .route("/queued/(error|panic)", || QueuedBehindTheEnd)
            .compress_response(gzip)
            .idle_timeout(Duration::from_millis(300))
            .build()
    })
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

fn post(path: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// Reads from `s` into `buf` until `buf` holds `want`, bounded.
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tmp = [0u8; 4096];
    while !buf.windows(want.len()).any(|w| w == want) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {:?} in {:?}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(buf)
        );
        let n = s.read(&mut tmp).expect("read");
        assert!(
            n > 0,
            "EOF before {:?}: {:?}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Whether nothing arrives on `s` within `within`.
fn silent(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut tmp = [0u8; 64];
    let quiet = matches!(s.read(&mut tmp), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    quiet
}

/// Decodes a chunked body that starts at `body` and ends with its last
/// chunk: the data, and whether the last chunk was there.
fn dechunk(mut body: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let len = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
        if len == 0 {
            return (out, &body[eol..] == b"\r\n\r\n");
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + len]);
        body = &body[eol + 2 + len + 2..];
    }
}

/// A complete chunked body, dechunked and inflated (one gzip stream).
fn gunzip_chunked(body: &[u8]) -> Vec<u8> {
    let (data, complete) = dechunk(body);
    assert!(complete, "no last chunk");
    let mut all = Vec::new();
    flate2::read::GzDecoder::new(&data[..])
        .read_to_end(&mut all)
        .unwrap();
    all
}

fn count(srv: &Server) -> String {
    let mut s = srv.connect();
    s.write_all(&get("/count")).unwrap();
    String::from_utf8(read_response(&mut s).2).unwrap()
}

/// Polls `/count` until it contains `want`, bounded.
fn count_reaches(srv: &Server, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = count(srv);
        if c.contains(want) || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn long_poll_is_answered_by_another_request() {
    let srv = server();
    let mut waiters: Vec<TcpStream> = (0..3).map(|_| srv.connect()).collect();
    for w in &mut waiters {
        w.write_all(&get("/wait")).unwrap();
    }
    // Each is registered before the publish (the count says so), and
    // none is answered yet.
    assert!(count_reaches(&srv, "waiting=3").contains("waiting=3"));
    assert!(silent(&mut waiters[0], Duration::from_millis(100)));
    // Longer than the idle timeout (300 ms): an awaited answer has none.
    std::thread::sleep(Duration::from_millis(500));
    let mut p = srv.connect();
    p.write_all(&post("/publish?m=hello")).unwrap();
    let (status, _, body) = read_response(&mut p);
    assert_eq!((status, &body[..]), (200, &b"reached 3"[..]));
    for w in &mut waiters {
        let (status, head, body) = read_response(w);
        assert_eq!(status, 200);
        assert!(head.contains("X-Set-Before: yes"), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        // What the method wrote comes first.
        assert_eq!(body, b"[hello]");
    }
    // The connection serves the next request.
    waiters[0].write_all(&get("/count")).unwrap();
    let (_, _, body) = read_response(&mut waiters[0]);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("closes=0 callbacks=0 finishes=[200, 200, 200]"),
        "{body}"
    );
}

#[test]
fn client_closing_a_long_poll_is_noticed() {
    let srv = server();
    let w = srv.connect();
    let mut w = w;
    w.write_all(&get("/wait")).unwrap();
    assert!(count_reaches(&srv, "waiting=1").contains("waiting=1"));
    drop(w);
    let c = count_reaches(&srv, "closes=1 callbacks=1");
    assert!(c.contains("closes=1 callbacks=1 finishes=[]"), "{c}");
    // A publish after the close reaches nobody, and nothing breaks; its
    // dropping the waiter's handle finishes the answer, which sends
    // nothing but runs `on_finish`, as Tornado's `finish()` does on a
    // closed connection (it used not to run).
    let mut p = srv.connect();
    p.write_all(&post("/publish?m=x")).unwrap();
    assert_eq!(read_response(&mut p).2, b"reached 0");
    let c = count_reaches(&srv, "finishes=[200]");
    assert!(c.contains("closes=1 callbacks=1 finishes=[200]"), "{c}");
}

#[test]
fn timer_answers_later_and_pipelined_requests_wait_in_order() {
    let srv = server();
    let mut s = srv.connect();
    // Three requests at once: the first is answered from a timer, the
    // others wait behind it and come in order.
    let mut raw = get("/later/50");
    raw.extend(get("/dropped"));
    raw.extend(get("/later/1"));
    let t0 = Instant::now();
    s.write_all(&raw).unwrap();
    let (status, _, body) = read_response(&mut s);
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert_eq!((status, &body[..]), (201, &b"after 50 ms"[..]));
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 200);
    // Dropping the last handle in the method finished the answer: the
    // method's writes first, then the handle's queued one.
    assert_eq!(body, b"written through cx;written through the handle;");
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, &body[..]), (201, &b"after 1 ms"[..]));
}

#[test]
fn streamed_body_arrives_before_the_answer_ends() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(&get("/stream")).unwrap();
    let mut buf = Vec::new();
    // The first piece arrives while the answer is still open: `/release`
    // has not been sent yet.
    read_until(&mut s, &mut buf, b"one;\r\n");
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    assert!(head.contains("Set-Cookie: s=1"), "{head}");
    assert!(!head.contains("X-After-Flush"), "{head}");
    assert!(silent(&mut s, Duration::from_millis(100)));
    let mut r = srv.connect();
    r.write_all(&post("/release")).unwrap();
    assert_eq!(read_response(&mut r).2, b"released 1");
    read_until(&mut s, &mut buf, b"0\r\n\r\n");
    let (body, complete) = dechunk(&buf[end + 4..]);
    assert!(complete);
    assert_eq!(body, b"one;two;three");
    // Keep-alive: the connection answers again.
    s.write_all(&get("/count")).unwrap();
    let (_, _, body) = read_response(&mut s);
    assert!(String::from_utf8(body).unwrap().contains("finishes=[200]"));
}

#[test]
fn http10_stream_ends_with_the_connection_and_head_has_no_body() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"one;");
    let mut r = srv.connect();
    r.write_all(&post("/release")).unwrap();
    assert_eq!(read_response(&mut r).2, b"released 1");
    let (rest, end) = util::read_within(&mut s, Duration::from_secs(10));
    assert!(matches!(end, util::ReadEnd::Eof));
    buf.extend(rest);
    let text = String::from_utf8(buf).unwrap();
    assert!(text.contains("Connection: close"), "{text}");
    assert!(!text.contains("Transfer-Encoding"), "{text}");
    assert!(text.ends_with("\r\n\r\none;two;three"), "{text}");

    // HEAD: the head of the streamed answer, no body bytes at all.
    let mut s = srv.connect();
    s.write_all(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n\r\n");
    let mut r = srv.connect();
    r.write_all(&post("/release")).unwrap();
    assert_eq!(read_response(&mut r).2, b"released 1");
    s.write_all(&get("/count")).unwrap();
    read_until(&mut s, &mut buf, b"finishes=");
    let text = String::from_utf8(buf).unwrap();
    // The HEAD answer is its head alone: the next response follows it
    // directly, with no chunk between.
    let second = 1 + text[1..].find("HTTP/1.1 200").unwrap();
    let first = &text[..second];
    assert!(first.ends_with("\r\n\r\n"), "{text}");
    assert_eq!(first.matches("\r\n\r\n").count(), 1, "{text}");
    // No framing header either: Tornado omits the payload header fields
    // for HEAD (it said `Transfer-Encoding: chunked` here).
    assert!(!first.contains("Transfer-Encoding"), "{text}");
    assert!(!first.contains("Content-Length"), "{text}");
    assert!(first.contains("Content-Type: "), "{text}");
}

#[test]
fn gzip_stream_is_inflatable_piece_by_piece() {
    let srv = server_with(true);
    let mut s = srv.connect();
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n\r\n");
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    assert!(head.contains("Vary: Accept-Encoding"), "{head}");
    // The first piece, sync-flushed, inflates to "one;" before the rest
    // exists.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let (data, _) = dechunk(&buf[end + 4..]);
        let mut got = Vec::new();
        let _ = flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut got);
        if got == b"one;" {
            break got;
        }
        assert!(Instant::now() < deadline, "{:?}", got);
        let mut tmp = [0u8; 1024];
        let n = s.read(&mut tmp).unwrap();
        buf.extend_from_slice(&tmp[..n]);
    };
    assert_eq!(first, b"one;");
    let mut r = srv.connect();
    r.write_all(&post("/release")).unwrap();
    read_response(&mut r);
    read_until(&mut s, &mut buf, b"\r\n0\r\n\r\n");
    assert_eq!(gunzip_chunked(&buf[end + 4..]), b"one;two;three");
}

#[test]
fn failures_later_answer_500_or_cut_the_stream() {
    let srv = server();
    for how in ["panics", "aborts"] {
        let (status, _, body) = util::request(&srv, &get(&format!("/{how}/open")));
        assert_eq!(status, 500, "{how}");
        assert!(!String::from_utf8_lossy(&body).contains("never"), "{how}");
        // A streamed answer that fails is cut: no last chunk, then the close.
        let mut s = srv.connect();
        s.write_all(&get(&format!("/{how}/streaming"))).unwrap();
        let (got, end) = util::read_within(&mut s, Duration::from_secs(10));
        assert!(
            matches!(end, util::ReadEnd::Eof | util::ReadEnd::Reset),
            "{how}"
        );
        let text = String::from_utf8_lossy(&got).to_string();
        assert!(text.contains("first;"), "{how}: {text}");
        assert!(
            !text.contains("never") && !text.ends_with("0\r\n\r\n"),
            "{how}: {text}"
        );
    }
    // A later send_error gets the handler's page.
    let (status, _, body) = util::request(&srv, &get("/error-later"));
    assert_eq!((status, &body[..]), (503, &b"custom error page 503"[..]));
    // A method that finished the response itself answers now.
    let (status, head, _) = util::request(&srv, &get("/finished-anyway"));
    assert_eq!(status, 302);
    assert!(head.contains("Location: /elsewhere"), "{head}");
    // The server is fine.
    let (status, _, _) = util::request(&srv, &get("/count"));
    assert_eq!(status, 200);
}

/// Tornado's `send_error` once the head is out logs "Cannot send error
/// response after headers written" and finishes: what was written before
/// it is sent, the body ends with its last chunk, and the status stays
/// the one the client got. Here the error page replaced the response:
/// "two;" was lost, and `on_finish` was told 503 for a 200.
///
/// Tornado's `redirect` then raises ("Cannot redirect after headers have
/// been written"), which ends the answer the same way; here it was
/// ignored and the answer went on ("ignored" sent, and no end until the
/// handler finished).
#[test]
fn send_error_after_a_flush_finishes_with_what_was_written() {
    let srv = server();
    for (n, path) in ["/error-streaming", "/error-streaming/redirect"]
        .into_iter()
        .enumerate()
    {
        let mut s = srv.connect();
        s.write_all(&get(path)).unwrap();
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n0\r\n\r\n");
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"), "{path}");
        let (body, complete) = dechunk(&buf[end + 4..]);
        assert!(complete, "{path}");
        assert_eq!(String::from_utf8_lossy(&body), "one;two;", "{path}");
        let want = if n == 0 {
            "finishes=[200]"
        } else {
            "finishes=[200, 200]"
        };
        assert!(count_reaches(&srv, want).contains(want), "{path}");
    }
}

/// A 1xx cannot be a final status: flushed, the answer is the 500 error
/// page, whole, and what the handler writes after is not sent (it used to
/// be a bare 500 head followed by the handler's chunks, "one;two;", and
/// `on_finish` was told 102).
#[test]
fn a_flushed_interim_status_is_the_500_page() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(&get("/interim-flush")).unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n0\r\n\r\n");
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let (body, complete) = dechunk(&buf[end + 4..]);
    assert!(complete);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("500: Internal Server Error"), "{body}");
    assert!(!body.contains("one;") && !body.contains("two;"), "{body}");
    assert!(count_reaches(&srv, "finishes=[500]").contains("finishes=[500]"));
}

#[test]
fn finished_later_gets_its_etag_and_304() {
    let srv = server();
    let (status, head, _) = util::request(&srv, &get("/dropped"));
    assert_eq!(status, 200);
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("Etag: "))
        .expect("an Etag")
        .to_string();
    let raw = format!("GET /dropped HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n");
    let (status, _, body) = util::request(&srv, raw.as_bytes());
    assert_eq!((status, body.len()), (304, 0));
}

#[test]
fn client_that_stops_reading_a_stream_is_dropped_after_the_idle_timeout() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(&get("/flood")).unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n\r\n");
    // The client reads nothing more: 16 MiB cannot all be queued in the
    // kernel; after the idle timeout (300 ms) without progress the server
    // drops the connection and the handler hears of it.
    let c = count_reaches(&srv, "closes=1");
    assert!(c.contains("closes=1"), "{c}");
    // The stream's queued bytes were still there when it closed.
    assert!(c.contains("finishes=[1]"), "{c}");
    drop(s);
}

#[test]
fn a_task_streams_and_its_end_finishes_the_answer() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(&get("/countdown")).unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n0\r\n\r\n");
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(String::from_utf8_lossy(&buf[..end]).contains("Transfer-Encoding: chunked"));
    let (body, complete) = dechunk(&buf[end + 4..]);
    assert!(complete);
    assert_eq!(body, b"3\n2\n1\nliftoff\n");
}

#[test]
fn awaiting_flushed_holds_a_slow_client_to_one_piece() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(&get("/bulk")).unwrap();
    // A slow client: 16 KiB at a time, with pauses.
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !buf.ends_with(b"\r\n0\r\n\r\n") {
        assert!(Instant::now() < deadline, "the stream did not end");
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "closed early");
        buf.extend_from_slice(&tmp[..n]);
        if buf.len() % (512 * 1024) < n {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let (body, complete) = dechunk(&buf[end + 4..]);
    assert!(complete);
    assert_eq!(body.len(), 4 << 20);
    assert!(body.iter().all(|&b| b == b'b'));
    // Never more than a piece (and its chunk line) waited in the server.
    let c = count(&srv);
    let most: usize = c.rsplit("most_queued=").next().unwrap().parse().unwrap();
    assert!((64 * 1024..=64 * 1024 + 64).contains(&most), "{c}");
}

/// Splits what arrived into the head and the rest.
fn head_and_rest(buf: &[u8]) -> (String, Vec<u8>) {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    (
        String::from_utf8_lossy(&buf[..end + 4]).to_string(),
        buf[end + 4..].to_vec(),
    )
}

#[test]
fn a_streamed_answer_keeps_the_content_length_its_handler_set() {
    let srv = server();
    // Exactly the length: sent as it is, no chunks, and the connection
    // serves the next request.
    let mut s = srv.connect();
    s.write_all(&get("/sized/exact")).unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Length: 10\r\n"), "{head}");
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    assert!(head.contains("Connection: keep-alive"), "{head}");
    assert_eq!(body, b"helloworld");
    s.write_all(&get("/count")).unwrap();
    assert_eq!(read_response(&mut s).0, 200);

    // HEAD: the announced length, no body; the next answer follows it.
    let mut s = srv.connect();
    s.write_all(b"HEAD /sized/exact HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.write_all(&get("/count")).unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"closes=");
    let text = String::from_utf8(buf).unwrap();
    let second = text.find("\r\n\r\nHTTP/1.1 200").expect(&text) + 4;
    assert!(text[..second].contains("Content-Length: 10\r\n"), "{text}");
    assert!(!text[..second].contains("Transfer-Encoding"), "{text}");

    // HTTP/1.0 with a length: framed by it, not by the close.
    let mut s = srv.connect();
    s.write_all(b"GET /sized/exact HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let (_, head, body) = read_response(&mut s);
    assert!(head.contains("Content-Length: 10\r\n"), "{head}");
    assert!(head.contains("Connection: keep-alive"), "{head}");
    assert_eq!(body, b"helloworld");

    // More or fewer bytes than announced (Tornado's HTTPOutputError): what
    // fits is sent, then the close, so the client sees the body cut short.
    for (path, want) in [
        ("/sized/over", &b"hello"[..]),
        ("/sized/under", b"hellowor"),
    ] {
        let mut s = srv.connect();
        s.write_all(&get(path)).unwrap();
        let (buf, end) = util::read_within(&mut s, Duration::from_secs(10));
        assert!(!matches!(end, util::ReadEnd::Timeout), "{path}: not closed");
        let (head, body) = head_and_rest(&buf);
        assert!(head.contains("Content-Length: 10\r\n"), "{path}: {head}");
        assert_eq!(body, want, "{path}");
    }
}

#[test]
fn a_gzipped_stream_drops_the_uncompressed_length() {
    let srv = server_with(true);
    let mut s = srv.connect();
    s.write_all(b"GET /sized/exact HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n0\r\n\r\n");
    let (head, rest) = head_and_rest(&buf);
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert_eq!(gunzip_chunked(&rest), b"helloworld");
}

/// Over a mebibyte, a static text file under `compress_response` is one
/// gzip stream sent a piece at a time (Tornado's `StaticFileHandler`
/// flushes every 64 KiB), with the weak ETag of the gzipped form; without
/// `Accept-Encoding: gzip` it goes out as it is, with its length.
#[test]
fn a_large_static_text_file_is_streamed_gzipped() {
    let dir = util::TempDir::new("static-stream-gzip");
    let text: String = (0..150_000).map(|i| format!("line {i}\n")).collect();
    assert!(text.len() > 1 << 20);
    dir.file("static/big.txt", &text);
    let root = dir.0.join("static");
    let srv = Server::start(move || {
        Application::builder()
            .static_path(root)
            .compress_response(true)
            .build()
    });
    let mut s = srv.connect();
    s.write_all(b"GET /static/big.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n0\r\n\r\n");
    let (head, rest) = head_and_rest(&buf);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert!(head.contains("Vary: Accept-Encoding"), "{head}");
    assert!(head.contains("ETag: W/\""), "{head}");
    // Many pieces, and together far smaller than the file.
    assert!(
        rest.windows(2).filter(|w| w == b"\r\n").count() > 20,
        "one piece?"
    );
    assert!(rest.len() < text.len() / 3, "{} bytes", rest.len());
    let all = gunzip_chunked(&rest);
    assert!(
        all == text.as_bytes(),
        "inflated {} bytes, not the file",
        all.len()
    );
    // The connection serves the next request.
    s.write_all(b"GET /static/big.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert!(body == text.as_bytes());
}

/// While an answer is awaited the connection reads on only to notice the
/// peer leaving: what the peer sends meanwhile is kept up to one head and
/// one read, the rest waits in the kernel, whose window then stops the
/// peer. (Reads shorter than the read buffer used to skip the cap.)
#[test]
fn bytes_sent_while_an_answer_is_awaited_are_bounded() {
    let srv = server();
    let mut s = srv.connect();
    s.write_all(&get("/wait")).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Short writes, so that the server's reads are short too.
    let piece = vec![b'a'; 8 * 1024];
    let (mut sent, start) = (0usize, Instant::now());
    while sent < 64 << 20 && start.elapsed() < Duration::from_secs(20) {
        match s.write(&piece) {
            Ok(n) => {
                sent += n;
                std::thread::sleep(Duration::from_micros(200));
            }
            // The server stopped reading: the kernel's buffers are full.
            Err(_) => break,
        }
    }
    eprintln!("sent {} KiB before the window closed", sent >> 10);
    assert!(
        sent < 16 << 20,
        "the server took {} MiB while the answer was awaited",
        sent >> 20
    );
    // The loop serves others meanwhile, and the waiting request is still
    // answered when its message comes.
    let (status, _, body) = util::request(&srv, &post("/publish?m=hi"));
    assert_eq!((status, body.as_slice()), (200, &b"reached 1"[..]));
    let mut got = Vec::new();
    read_until(&mut s, &mut got, b"[hi]");
}

/// Operations queued behind one that ended the answer are dropped with
/// the handles they hold, after the answer's state is released: the error
/// page (or the 500 of a panic) is what the client gets, and only the
/// panic that happened is counted.
#[test]
fn work_queued_behind_the_end_is_dropped_cleanly() {
    let srv = server();
    let (status, _, body) = util::request(&srv, &get("/queued/error"));
    assert_eq!(status, 503);
    assert!(!String::from_utf8_lossy(&body).contains("never"));
    let panics = || srv.metrics().get(cyclone::ioloop::Counter::HandlerPanics);
    assert_eq!(panics(), 0);
    let _expect = cyclone::testing::ExpectLog::new("", "asynchronous response failed")
        .level(log::Level::Error)
        .not_required();
    let (status, _, _) = util::request(&srv, &get("/queued/panic"));
    assert_eq!(status, 500);
    assert_eq!(panics(), 1);
}
