//! What the library logs, and at which level. The logger is process-wide,
//! so these tests live in their own binary, and each looks only at the
//! records it provokes.

mod util;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cyclone::http::Request;
use cyclone::web::Application;
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
use util::{client_frame, raw_ws, read_frame, Server};

/// Keeps every record: (level, message).
struct Capture;

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, _m: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((r.level(), r.args().to_string()));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("no other logger in this binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The records so far whose message contains `needle`.
fn records_with(needle: &str) -> Vec<(log::Level, String)> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, m)| m.contains(needle))
        .cloned()
        .collect()
}

/// [`records_with`], waiting up to `within` for a first one (a record may
/// be written a moment after what provoked it is seen).
fn records_within(needle: &str, within: Duration) -> Vec<(log::Level, String)> {
    let deadline = Instant::now() + within;
    let mut about = records_with(needle);
    while about.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        about = records_with(needle);
    }
    about
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
    let about = records_within("exceeds the limit of 1000", Duration::from_secs(2));
    assert!(!about.is_empty(), "nothing logged about the 1009");
    assert!(
        about.iter().all(|(l, _)| *l <= log::Level::Warn),
        "the size limit was logged below warn: {about:?}"
    );
    assert!(about.iter().any(|(_, m)| m.contains("1009")), "{about:?}");
}

/// Ping timeouts of many connections at once (a network partition) are
/// logged at `warn`, but folded: one line for the burst, not one per
/// connection. The metrics still count each.
#[test]
fn ping_timeouts_are_logged_at_warn_once_per_burst() {
    capture_logs();
    let srv = Server::start(|| {
        Application::builder()
            .websocket_ping_interval(Duration::from_millis(100))
            .websocket_ping_timeout(Duration::from_millis(100))
            .websocket("/ws", |_req: &Request| Quiet)
            .build()
    });
    // Peers that never read, so never answer a ping.
    let peers: Vec<_> = (0..8).map(|_| raw_ws(&srv, "/ws")).collect();
    let needle = "ping timeout: no pong";
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.metrics().get(cyclone::ioloop::Counter::WsPingTimeouts) < 8 {
        assert!(Instant::now() < deadline, "the peers were not timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let about = records_with(needle);
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
    let about = records_within("max_connections (2) reached", Duration::from_secs(2));
    assert!(!about.is_empty(), "nothing logged about the refusal");
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
    let warned = records_within(ended, Duration::from_secs(2));
    assert_eq!(
        records_with(blocked).len(),
        1,
        "{:?}",
        records_with("IOLoop")
    );
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
    assert_eq!(records_with(blocked).len(), 1);
    assert_eq!(records_with(ended).len(), 1);
}
