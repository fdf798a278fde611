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
    let needle = "exceeds the limit of 1000";
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut about = records_with(needle);
    while about.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        about = records_with(needle);
    }
    assert!(!about.is_empty(), "nothing logged about the 1009");
    assert!(
        about.iter().all(|(l, _)| *l <= log::Level::Warn),
        "the size limit was logged below warn: {about:?}"
    );
    assert!(about.iter().any(|(_, m)| m.contains("1009")), "{about:?}");
}
