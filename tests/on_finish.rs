//! When `RequestHandler::on_finish` runs: as in Tornado's `finish()`
//! (`flush()`, the connection's `finish()`, `_log()`, `on_finish()`),
//! once the answer is queued for the client and its access line logged.

mod util;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cyclone::ioloop::IOLoop;
use cyclone::testing::ExpectLog;
use cyclone::web::{Application, RequestContext, RequestHandler};
use util::{read_response, Server};

/// What each `on_finish` saw: its status, and the access lines of its
/// request logged by then.
type Seen = Arc<Mutex<Vec<(u16, Vec<String>)>>>;

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
        let mine = format!(" {} ", self.uri);
        let lines = self
            .access
            .logged()
            .into_iter()
            .map(|(_, line)| line)
            .filter(|line| line.contains(&mine))
            .collect();
        self.seen.lock().unwrap().push((status, lines));
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.lock().unwrap().len() < cases.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
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
