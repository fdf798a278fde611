//! Tornado's `EchoWebSocket` (seed 000) with the page of seed 004.
//!
//! `/` serves a page with Connect / Send / Close buttons and a log of the
//! socket's events; `/websocket` (and `/socket/`, seed 004's path) answers
//! every text message with `You said: <message>`. `--ping-interval` sets
//! `websocket_ping_interval` and `on_pong` logs each pong, and
//! `--any-origin` makes `check_origin` accept every origin, like seed 004
//! (so its page works when opened from a file or another host).
//!
//! ```text
//! cargo run --example hello            # then open http://127.0.0.1:8888/
//! ```

mod common;

use std::time::Duration;

use cyclone::http::Request;
use cyclone::ioloop::IOLoop;
use cyclone::web::Application;
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};

const USAGE: &str = "hello: Tornado's EchoWebSocket with a page to drive it

Usage: hello [--port PORT] [--address ADDR] [--ping-interval SECS] [--any-origin]

  --port PORT           port to listen on (default 8888)
  --address ADDR        address to bind (default 127.0.0.1)
  --ping-interval SECS  websocket_ping_interval in seconds, fractions allowed
                        (default: no pings); each pong is logged
  --any-origin          check_origin accepts every origin (seed 004's
                        override; default: same host only, else 403)

Open http://ADDR:PORT/ in a browser: Connect, Send, Close. The socket at
/websocket (also /socket/, seed 004's path) answers
\"You said: <message>\". RUST_LOG=info for logs.";

/// The page of seed 004, with the log written into the page.
const PAGE: &str = include_str!("pages/hello.html");

/// Seed 000's `EchoWebSocket`, with seed 004's `check_origin` when
/// `any_origin`.
struct EchoWebSocket {
    any_origin: bool,
}

impl WebSocketHandler for EchoWebSocket {
    fn check_origin(&self, origin: &str, req: &Request) -> bool {
        self.any_origin
            || cyclone::websocket::handler::same_origin(origin, req.host().unwrap_or(""))
    }

    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        log::info!("WebSocket opened ({})", ws.id());
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        match msg.as_text() {
            Some(text) => {
                let _ = ws.write_message(format!("You said: {text}"));
            }
            None => log::info!("ignoring a binary message of {} bytes", msg.len()),
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        log::info!("WebSocket closed ({}, code {:?})", ws.id(), ws.close_code());
    }

    fn on_pong(&mut self, ws: &mut WebSocket<'_>, data: &[u8]) {
        log::info!("on_pong ({}): {:?}", ws.id(), String::from_utf8_lossy(data));
    }
}

fn main() {
    let args = common::Args::parse(
        USAGE,
        &[
            ("port", true),
            ("address", true),
            ("ping-interval", true),
            ("any-origin", false),
        ],
    );
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let any_origin = args.has("any-origin");

    let mut builder = Application::builder();
    if args.has("ping-interval") {
        let secs: f64 = args.get("ping-interval", 0.0);
        let interval = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero());
        let Some(interval) = interval else {
            eprintln!("hello: --ping-interval must be a positive number of seconds");
            std::process::exit(2);
        };
        builder = builder.websocket_ping_interval(interval);
    }
    let app = builder
        .route("/", || common::Page(PAGE))
        .route("/metrics", || cyclone::web::MetricsHandler)
        .websocket("/websocket", move |_req: &Request| EchoWebSocket {
            any_origin,
        })
        .websocket("/socket/", move |_req: &Request| EchoWebSocket {
            any_origin,
        })
        .build();
    match app.listen_on((address.as_str(), port)) {
        Ok(addr) => log::info!("hello listening on http://{addr}/"),
        Err(e) => {
            eprintln!("hello: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
