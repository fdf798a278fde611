//! When `RequestHandler::on_finish` runs: as in Tornado's `finish()`
//! (`flush()`, the connection's `finish()`, `_log()`, `on_finish()`),
//! once the answer is queued for the client and its access line logged.

mod util;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cyclone::ioloop::IOLoop;
use cyclone::testing::ExpectLog;
use cyclone::web::{Application, AsyncResponse, RequestContext, RequestHandler};
use util::{read_response, request, Server};

/// What each `on_finish` saw: its status, and the access lines of its
/// request logged by then.
type Seen = Arc<Mutex<Vec<(u16, Vec<String>)>>>;

/// Records in `seen` what an `on_finish` of the request `uri` sees: its
/// `status` and the access lines of `uri` logged by then.
fn record(seen: &Seen, access: &ExpectLog, uri: &str, status: u16) {
    let mine = format!(" {uri} ");
    let lines = access
        .logged()
        .into_iter()
        .map(|(_, line)| line)
        .filter(|line| line.contains(&mine))
        .collect();
    seen.lock().unwrap().push((status, lines));
}

/// Answers `/order/<how>?n=..` at once, later, streamed, or with a 1xx
/// that is sent as 500; records what its `on_finish` saw.
struct Ordered {
    access: Arc<ExpectLog>,
    seen: Seen,
    uri: String,
}

impl RequestHandler for Ordered {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "POST"]
    }
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        self.uri = cx.request().uri().to_owned();
        if cx.request().path() == "/order/refused" {
            // Decided from the head of a streamed body: sent early.
            cx.send_error(403);
        }
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        match args[0] {
            "now" => cx.write("ok"),
            "early" => cx.set_status(103),
            "later" => {
                cx.set_status(201);
                let later = cx.asynchronous();
                IOLoop::current().add_callback(move || later.write("ok"));
            }
            "stream" => {
                cx.set_header("Content-Length", "8");
                cx.write("one;");
                let later = cx.asynchronous();
                later.flush();
                IOLoop::current().add_callback(move || {
                    later.write("two;");
                    later.finish();
                });
            }
            other => panic!("no {other}"),
        }
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.write("ok");
    }
    fn on_finish(&mut self, status: u16) {
        record(&self.seen, &self.access, &self.uri, status);
    }
}

/// The access line of each answer is logged, with the status sent, before
/// its `on_finish` runs: for an answer given at once, one whose 103 is
/// sent as 500, one finished later, a streamed one, and the answers after
/// a streamed request body (at its end, and refused from its head). It
/// ran before the answer was even serialized, so before its access line.
#[test]
fn on_finish_runs_after_the_access_line() {
    let access = Arc::new(ExpectLog::new("cyclone::access", r"\d+ (GET|POST) /order/"));
    let seen = Seen::default();
    let (a, s) = (access.clone(), seen.clone());
    let srv = Server::start(move || {
        let make = move || Ordered {
            access: a.clone(),
            seen: s.clone(),
            uri: String::new(),
        };
        Application::builder()
            .route("/order/(streamed|refused)", make.clone())
            .stream_request_body()
            .route("/order/(.*)", make)
            .build()
    });
    let mut c = srv.connect();
    let cases: [(&str, u16, &[u8]); 6] = [
        ("GET /order/now?n=1", 200, b"ok"),
        ("GET /order/early?n=2", 500, b""),
        ("GET /order/later?n=3", 201, b"ok"),
        ("GET /order/stream?n=4", 200, b"one;two;"),
        ("POST /order/streamed?n=5", 200, b"ok"),
        ("POST /order/refused?n=6", 403, b""),
    ];
    for (n, (line, status, body)) in cases.iter().enumerate() {
        if n == 5 {
            // Refused from its head: the answer closes the connection.
            c = srv.connect();
        }
        let raw = if line.starts_with("POST") {
            format!("{line} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        } else {
            format!("{line} HTTP/1.1\r\nHost: x\r\n\r\n")
        };
        c.write_all(raw.as_bytes()).unwrap();
        let (got, head, got_body) = read_response(&mut c);
        assert_eq!(got, *status, "{line}: {head}");
        if !body.is_empty() {
            assert_eq!(got_body, *body, "{line}");
        }
    }
    // `on_finish` may run after the client has its answer: wait for all.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < cases.len() {
        assert!(Instant::now() < deadline, "{:?}", seen.lock().unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(srv);
    let seen = seen.lock().unwrap().clone();
    for (n, (line, status, _)) in cases.iter().enumerate() {
        let uri = line.split(' ').nth(1).unwrap();
        let (finish_status, lines) = &seen[n];
        assert_eq!(finish_status, status, "{line}");
        assert_eq!(lines.len(), 1, "{line}: on_finish saw {lines:?}");
        let method = line.split(' ').next().unwrap();
        let want = format!("{status} {method} {uri} (127.0.0.1) ");
        assert!(lines[0].starts_with(&want), "{line}: {lines:?}");
    }
}

/// `/gone/wait?n=..` waits (status 202) until `/gone/release` finishes
/// the waiters whose client went, or `/gone/finish` all of them; records
/// what `on_finish` saw.
struct Gone {
    access: Arc<ExpectLog>,
    seen: Seen,
    waiters: Rc<RefCell<Vec<AsyncResponse>>>,
    uri: String,
}

impl RequestHandler for Gone {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.uri = cx.request().uri().to_owned();
        if args[0] == "wait" {
            cx.set_status(202);
            self.waiters.borrow_mut().push(cx.asynchronous());
            return;
        }
        let mut waiters = self.waiters.borrow_mut();
        if args[0] == "finish" {
            // Finishes (drops) every waiter.
            cx.write(format!("finished {}", waiters.len()));
            waiters.clear();
            return;
        }
        // Finishes (drops) the waiters whose client went.
        let before = waiters.len();
        waiters.retain(|w| !w.is_closed());
        cx.write(format!("released {}", before - waiters.len()));
    }
    fn on_finish(&mut self, status: u16) {
        if self.uri.starts_with("/gone/wait") {
            record(&self.seen, &self.access, &self.uri, status);
        }
    }
}

/// A server of `/gone/busy` and `Gone`'s `/gone/...`, and what the
/// `on_finish`es of the requests whose access lines match `lines` saw
/// (the expectation is the caller's to keep until the end).
fn gone_server(lines: &str) -> (Arc<ExpectLog>, Seen, Server) {
    let access = Arc::new(ExpectLog::new("cyclone::access", lines));
    let seen = Seen::default();
    let (a, s) = (access.clone(), seen.clone());
    let srv = Server::start(move || {
        let waiters = Rc::new(RefCell::new(Vec::new()));
        Application::builder()
            .route("/gone/busy", || Busy)
            .route("/gone/(.*)", move || Gone {
                access: a.clone(),
                seen: s.clone(),
                waiters: waiters.clone(),
                uri: String::new(),
            })
            .build()
    });
    (access, seen, srv)
}

/// An answer finished after its client went sends nothing, but Tornado's
/// `finish()` still logs its access line, with the status set, and then
/// runs `on_finish`. Here `on_finish` ran with no access line at all.
#[test]
fn an_answer_finished_after_the_client_went_is_logged_before_on_finish() {
    let (_access, seen, srv) = gone_server(r"\d+ GET /gone/wait\?n=7");
    let mut w = srv.connect();
    w.write_all(b"GET /gone/wait?n=7 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The server has the request once `/gone/release` sees it waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    let release = |expect: &[u8]| loop {
        let (_, _, body) = request(&srv, b"GET /gone/release HTTP/1.1\r\nHost: x\r\n\r\n");
        if body == expect {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    release(b"released 0");
    drop(w);
    release(b"released 1");
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "on_finish did not run");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(srv);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (status, lines) = &seen[0];
    assert_eq!(*status, 202);
    assert_eq!(lines.len(), 1, "on_finish saw {lines:?}");
    assert!(
        lines[0].starts_with("202 GET /gone/wait?n=7 (127.0.0.1) "),
        "{lines:?}"
    );
}

/// `/gone/busy` holds the loop for a while, so that what the client does
/// meanwhile reaches the server in one batch of events.
struct Busy;

impl RequestHandler for Busy {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        std::thread::sleep(Duration::from_millis(400));
        cx.write("done");
    }
}

/// The client of a waiting answer goes in the same batch of events as the
/// request that finishes the answer: after it (the connection is dropped
/// with the finished answer not yet taken) or before it (the answer is
/// finished on a connection already gone, which it learns only then).
/// Either way nothing is sent, and, as Tornado's `finish()` on a closed
/// connection, the access line is logged and then `on_finish` runs. Here
/// neither logged it.
#[test]
fn an_answer_finished_as_its_client_goes_is_logged_before_on_finish() {
    let (_access, seen, srv) = gone_server(r"\d+ GET /gone/wait\?n=[89]");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut finisher = srv.connect();
    finisher
        .write_all(b"GET /gone/release HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut finisher).2, b"released 0");
    for (n, close_first) in [(8, false), (9, true)] {
        let mut w = srv.connect();
        w.write_all(format!("GET /gone/wait?n={n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        // The server has the request once `/gone/release` sees it waiting
        // (asked on the finisher's connection: an established one).
        loop {
            finisher
                .write_all(b"GET /gone/release HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            if read_response(&mut finisher).2 == b"released 0" {
                break;
            }
            assert!(Instant::now() < deadline);
        }
        let mut busy = srv.connect();
        busy.write_all(b"GET /gone/busy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // `/gone/finish` finishes every waiter (`release` those gone).
        let finish = b"GET /gone/finish HTTP/1.1\r\nHost: x\r\n\r\n";
        if close_first {
            drop(w);
            std::thread::sleep(Duration::from_millis(40));
            finisher.write_all(finish).unwrap();
        } else {
            finisher.write_all(finish).unwrap();
            std::thread::sleep(Duration::from_millis(40));
            drop(w);
        }
        assert_eq!(read_response(&mut busy).2, b"done");
        assert_eq!(read_response(&mut finisher).2, b"finished 1");
        while seen.lock().unwrap().len() < n - 7 {
            assert!(Instant::now() < deadline, "on_finish did not run");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    drop(srv);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (n, (status, lines)) in [8, 9].iter().zip(&seen) {
        assert_eq!(*status, 202);
        assert_eq!(lines.len(), 1, "n={n}: on_finish saw {lines:?}");
        let want = format!("202 GET /gone/wait?n={n} (127.0.0.1) ");
        assert!(lines[0].starts_with(&want), "{lines:?}");
    }
}
