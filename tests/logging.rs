//! What the library logs, and at which level, seen through
//! `cyclone::testing::ExpectLog` (Tornado's `ExpectLog`); and `ExpectLog`
//! itself: what it claims, what it lets through to the output, and its
//! failure when nothing it expects comes. The logger is process-wide, so
//! these tests live in their own binary, and each expects only records
//! it provokes.

mod util;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cyclone::http::Request;
use cyclone::testing::{init_logging_with, ExpectLog};
use cyclone::web::Application;
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
use log::Level;
use util::{client_frame, raw_ws, read_frame, Server};

/// The output behind cyclone's test logger: keeps every record no
/// expectation claimed, (level, message).
struct Output;

static PASSED: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

impl log::Log for Output {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            PASSED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// Installs the test logger with [`Output`] behind it, before any
/// `ExpectLog` would install the default one.
fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        assert!(init_logging_with(Box::new(Output), log::LevelFilter::Info));
    });
}

/// The messages that reached [`Output`] and contain `needle`.
fn passed_with(needle: &str) -> Vec<String> {
    PASSED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, m)| m.contains(needle))
        .map(|(_, m)| m.clone())
        .collect()
}

/// Expects records from cyclone containing `needle`.
fn expect(needle: &str) -> ExpectLog {
    ExpectLog::new("cyclone", &format!(".*{}", regex_escape(needle)))
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// An `ExpectLog` keeps what matches its target (or a module under it),
/// its pattern from the start, its level and its thread, the newest
/// expectation first; everything else reaches the output.
#[test]
fn expect_log_claims_what_it_expects_and_passes_the_rest() {
    capture_logs();
    let t = "expect_log_test::a";
    let claims = ExpectLog::new(t, r"claimed \d").on_this_thread();
    // While an expectation of any level is alive, debug records are
    // logged although the output takes `info` at most.
    assert_eq!(log::max_level(), log::LevelFilter::Trace);
    log::info!(target: "expect_log_test::a::sub", "claimed 1");
    log::info!(target: "expect_log_test::ab", "claimed 2");
    log::info!(target: t, "not claimed 3");
    std::thread::spawn(move || log::info!(target: t, "claimed 4"))
        .join()
        .unwrap();
    log::warn!(target: t, "claimed 5");
    log::debug!(target: t, "claimed 6");
    {
        let warnings = ExpectLog::new(t, "claimed").level(Level::Warn);
        log::warn!(target: t, "claimed 7");
        log::error!(target: t, "claimed 8");
        assert_eq!(warnings.logged(), [(Level::Warn, "claimed 7".to_owned())]);
    }
    assert_eq!(
        claims.logged(),
        [
            (Level::Info, "claimed 1".to_owned()),
            (Level::Warn, "claimed 5".to_owned()),
            (Level::Debug, "claimed 6".to_owned()),
            (Level::Error, "claimed 8".to_owned()),
        ]
    );
    drop(claims);
    log::info!(target: t, "claimed 9");
    for n in 1..=9 {
        let reached = passed_with(&format!("claimed {n}"));
        let want = usize::from([2, 3, 4, 9].contains(&n));
        assert_eq!(reached.len(), want, "claimed {n}: {reached:?}");
    }
}

/// Tornado's `ExpectLog` fails the test when what it expects is not
/// logged, unless `required=False`; a test failing for another reason
/// fails with its own message.
#[test]
fn an_expectation_not_met_fails_the_test() {
    capture_logs();
    let failure = catch_unwind(|| {
        let _e = ExpectLog::new("expect_log_test::b", "never logged");
        log::warn!(target: "expect_log_test::b", "something else");
    })
    .unwrap_err();
    let says = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        says.contains(r#"no record from "expect_log_test::b" matching "^(?:never logged)""#),
        "{says}"
    );
    assert_eq!(passed_with("something else").len(), 1);

    let quiet = ExpectLog::new("expect_log_test::b", "never logged").not_required();
    assert!(!quiet.wait(1, Duration::from_millis(50)));
    drop(quiet);

    let failure = catch_unwind(AssertUnwindSafe(|| {
        let _e = ExpectLog::new("expect_log_test::b", "never logged");
        panic!("the test's own failure");
    }))
    .unwrap_err();
    assert_eq!(
        failure.downcast_ref::<&str>(),
        Some(&"the test's own failure")
    );

    let bad = catch_unwind(|| ExpectLog::new("", "(unclosed")).unwrap_err();
    let says = bad.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(says.contains("is not a regular expression"), "{says}");
}

struct Quiet;

impl WebSocketHandler for Quiet {
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

/// DESIGN.md §4: exceeding a limit closes the connection with the proper
/// code (1009 for size) and logs at `warn`, so that the default `info` /
/// `warn` filters show it. The record names the limit, so it is told
/// apart from whatever else runs in this process.
#[test]
fn message_over_the_size_limit_is_logged_at_warn() {
    capture_logs();
    let logged = expect("exceeds the limit of 1000");
    let srv = Server::start(|| {
        Application::builder()
            .websocket_max_message_size(1000)
            .websocket("/ws", |_req: &Request| Quiet)
            .build()
    });
    let mut s = raw_ws(&srv, "/ws");
    s.write_all(&client_frame(true, 2, &[7u8; 2000])).unwrap();
    let (_, op, payload) = read_frame(&mut s).expect("close frame");
    assert_eq!(op, 8);
    assert_eq!(payload[..2], 1009u16.to_be_bytes());
    // Logged before the Close is written; allow for a slow record anyway.
    assert!(
        logged.wait(1, Duration::from_secs(2)),
        "nothing logged about the 1009"
    );
    let about = logged.logged();
    assert!(
        about.iter().all(|(l, _)| *l <= log::Level::Warn),
        "the size limit was logged below warn: {about:?}"
    );
    assert!(about.iter().any(|(_, m)| m.contains("1009")), "{about:?}");
}

/// A `select_subprotocol` that answers a name the client did not offer
/// is a handler bug: Tornado's handshake fails its assertion (a 500 and a
/// logged traceback). cyclone answers the 101 without a subprotocol, as
/// RFC 6455 §4.2.2 allows, but must say so at `warn` rather than drop the
/// name silently.
#[test]
fn a_subprotocol_the_client_did_not_offer_is_logged_at_warn() {
    struct Picky;
    impl WebSocketHandler for Picky {
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
        fn select_subprotocol(&self, _offered: &[&str]) -> Option<String> {
            Some("graphql-ws".into())
        }
    }
    capture_logs();
    let logged = expect("\"graphql-ws\", which the client did not offer");
    let srv = Server::start(|| {
        Application::builder()
            .websocket("/ws", |_req: &Request| Picky)
            .build()
    });
    let mut s = srv.connect();
    s.write_all(
        util::upgrade_request("/ws", "Sec-WebSocket-Protocol: chat, superchat\r\n").as_bytes(),
    )
    .unwrap();
    let (status, head, _) = util::read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    assert!(
        logged.wait(1, Duration::from_secs(2)),
        "nothing logged about the subprotocol"
    );
    let about = logged.logged();
    assert!(
        about.iter().all(|(l, _)| *l == log::Level::Warn),
        "{about:?}"
    );
    assert!(
        about.iter().any(|(_, m)| m.contains("chat, superchat")),
        "{about:?}"
    );
}

/// Ping timeouts of many connections at once (a network partition) are
/// logged at `warn`, but folded: one line for the burst, not one per
/// connection. The metrics still count each.
#[test]
fn ping_timeouts_are_logged_at_warn_once_per_burst() {
    capture_logs();
    let logged = expect("ping timeout: no pong");
    let srv = Server::start(|| {
        Application::builder()
            .websocket_ping_interval(Duration::from_millis(100))
            .websocket_ping_timeout(Duration::from_millis(100))
            .websocket("/ws", |_req: &Request| Quiet)
            .build()
    });
    // Peers that never read, so never answer a ping.
    let peers: Vec<_> = (0..8).map(|_| raw_ws(&srv, "/ws")).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.metrics().get(cyclone::ioloop::Counter::WsPingTimeouts) < 8 {
        assert!(Instant::now() < deadline, "the peers were not timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let about = logged.logged();
    assert!(!about.is_empty(), "nothing logged about the ping timeouts");
    assert!(
        about.iter().all(|(l, _)| *l == log::Level::Warn),
        "{about:?}"
    );
    // They all expire within a few milliseconds of each other.
    assert!(about.len() < 8, "one line per connection: {about:?}");
    drop(peers);
}

/// Connections over `max_connections` get a 503 and a `warn` line naming
/// the limit (folded as above when they come in a flood).
#[test]
fn refusals_over_max_connections_are_logged_at_warn() {
    capture_logs();
    let logged = expect("max_connections (2) reached");
    let srv = Server::start(|| {
        Application::builder()
            .max_connections(2)
            .websocket("/ws", |_req: &Request| Quiet)
            .build()
    });
    let mut held = Vec::new();
    let mut refused = false;
    for _ in 0..8 {
        let mut s = srv.connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, _, _) = util::read_response(&mut s);
        if status == 503 {
            refused = true;
            break;
        }
        held.push(s);
    }
    assert!(refused, "no 503 after {} connections", held.len());
    assert!(
        logged.wait(1, Duration::from_secs(2)),
        "nothing logged about the refusal"
    );
    let about = logged.logged();
    assert!(
        about.iter().all(|(l, _)| *l == log::Level::Warn),
        "{about:?}"
    );
}

/// Tornado's `set_blocking_log_threshold`: a timer that blocks the loop's
/// thread for 400 ms is reported once as it happens (with what the loop
/// was doing) and once when it ends (how long, about); the loop waiting
/// in `poll` for longer is not blocked; with the threshold taken away,
/// the same block says nothing.
#[test]
fn a_blocked_loop_is_reported_with_what_it_was_doing() {
    use cyclone::ioloop::IOLoop;
    capture_logs();
    let blocked = "IOLoop blocked for more than 50 ms (running timers)";
    let ended = "IOLoop was blocked for about";
    let blocked_log = expect(blocked);
    let ended_log = expect(ended);
    let run = |watch: bool| {
        std::thread::spawn(move || {
            let lp = IOLoop::current();
            lp.set_blocking_log_threshold(Some(Duration::from_millis(50)));
            if !watch {
                lp.set_blocking_log_threshold(None);
            }
            lp.call_later(Duration::from_millis(20), || {
                std::thread::sleep(Duration::from_millis(400));
            });
            // Then 500 ms waiting in poll: not blocked.
            lp.call_later(Duration::from_millis(900), || IOLoop::current().stop());
            lp.start();
        })
        .join()
        .unwrap();
    };
    run(true);
    assert!(ended_log.wait(1, Duration::from_secs(2)));
    let warned = ended_log.logged();
    assert_eq!(blocked_log.logged().len(), 1, "{:?}", blocked_log.logged());
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].0, log::Level::Warn);
    let ms: u64 = warned[0].1[ended.len()..]
        .trim()
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!((300..2000).contains(&ms), "{ms} ms");
    run(false);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(blocked_log.logged().len(), 1);
    assert_eq!(ended_log.logged().len(), 1);
}

/// `WebSocket::require_argument` without the argument logs what Tornado's
/// `log_exception` logs for the `MissingArgumentError` a callback raised:
/// `400 GET /uri (ip): Missing argument name`, at `warn`.
#[test]
fn require_argument_on_an_open_connection_is_logged_at_warn() {
    struct NeedsPlanet;
    impl WebSocketHandler for NeedsPlanet {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, _msg: Message<'_>) {
            let _ = ws.require_argument("planet");
        }
    }
    capture_logs();
    let logged = expect("400 GET /planet?moon=1 (127.0.0.1): Missing argument planet");
    let srv = Server::start(|| {
        Application::builder()
            .websocket("/planet", |_req: &Request| NeedsPlanet)
            .build()
    });
    let mut s = raw_ws(&srv, "/planet?moon=1");
    s.write_all(&client_frame(true, 1, b"hi")).unwrap();
    assert!(
        logged.wait(1, Duration::from_secs(5)),
        "nothing logged about the missing argument"
    );
    let about = logged.logged();
    assert!(
        about.iter().all(|(l, _)| *l == log::Level::Warn),
        "{about:?}"
    );
}

/// A `websocket_ping_timeout` longer than the interval is cut to it, and
/// Tornado 6.5 says so at `warn` (once however many routes share it); a
/// timeout within the interval is not mentioned.
#[test]
fn a_ping_timeout_longer_than_the_interval_is_logged_at_warn() {
    capture_logs();
    let logged = expect("websocket_ping_timeout (60s) cannot be longer");
    let _app = Application::builder()
        .websocket_ping_interval(Duration::from_secs(20))
        .websocket_ping_timeout(Duration::from_secs(60))
        .websocket("/a", |_req: &Request| Quiet)
        .websocket("/b", |_req: &Request| Quiet)
        .build();
    let _fine = Application::builder()
        .websocket_ping_interval(Duration::from_secs(20))
        .websocket_ping_timeout(Duration::from_secs(10))
        .websocket("/a", |_req: &Request| Quiet)
        .build();
    assert!(
        logged.wait(1, Duration::from_secs(2)),
        "nothing logged about the ping timeout"
    );
    let about = logged.logged();
    assert_eq!(about.len(), 1, "{about:?}");
    assert_eq!(about[0].0, log::Level::Warn);
    assert!(
        about[0].1.ends_with("Setting websocket_ping_timeout=20s"),
        "{about:?}"
    );
    assert!(passed_with("cannot be longer").is_empty());
}
