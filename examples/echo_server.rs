//! Echo server used by Autobahn, the benchmarks and the stress tests.
//!
//! Every path echoes text and binary messages, except that messages
//! received on `/publish` are relayed to every connection open on
//! `/broadcast` (one encoded frame shared by all; nothing is echoed on
//! either). Origins are not checked.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use cyclone::http::Request;
use cyclone::ioloop::{ConnId, IOLoop};
use cyclone::protocol::CompressionOptions;
use cyclone::web::Application;
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};

const USAGE: &str =
    "echo_server: WebSocket echo on every path but /metrics; /publish relays to /broadcast

Usage: echo_server [PORT] [--port PORT] [--address ADDR] [--deflate] [--max-message-size BYTES]

  --port PORT               port to listen on (default 9001; a bare first argument also works)
  --address ADDR            address to bind (default 127.0.0.1)
  --deflate                 negotiate permessage-deflate (RFC 7692) when offered
  --max-message-size BYTES  websocket_max_message_size (default 10485760)

Messages sent on /publish go to every connection on /broadcast; every other
path echoes text and binary messages back. GET /metrics answers the loop's
counters in the Prometheus text format. Logs warnings by default;
RUST_LOG=info adds connection and access lines.";

/// The open `/broadcast` connections, in a `Vec`: a publish walks all of
/// them, which a contiguous list does in a few instructions per receiver
/// (a `BTreeSet` walk cost about 30 in callgrind); a close finds its id
/// with a linear search.
type Subscribers = Rc<RefCell<Vec<ConnId>>>;

/// Echoes every message. Zero-sized: an idle echo connection allocates
/// nothing for its handler.
struct Echo;

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.write_message(msg);
    }

    fn check_origin(&self, _origin: &str, _req: &Request) -> bool {
        true
    }
}

/// `/publish`: relays every message to every `/broadcast` connection, the
/// frame encoded once (`WebSocket::broadcast`).
struct Publisher(Subscribers);

impl WebSocketHandler for Publisher {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        // `broadcast` runs no handler, so the list may stay borrowed.
        ws.broadcast(self.0.borrow().iter().copied(), msg);
    }

    fn check_origin(&self, _origin: &str, _req: &Request) -> bool {
        true
    }
}

/// `/broadcast`: registered while open; receives what `/publish` relays.
struct Subscriber(Subscribers);

impl WebSocketHandler for Subscriber {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        self.0.borrow_mut().push(ws.id());
    }

    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        let mut subs = self.0.borrow_mut();
        if let Some(i) = subs.iter().position(|&id| id == ws.id()) {
            subs.swap_remove(i);
        }
    }

    fn check_origin(&self, _origin: &str, _req: &Request) -> bool {
        true
    }
}

fn main() {
    let args = common::Args::parse(
        USAGE,
        &[
            ("port", true),
            ("address", true),
            ("deflate", false),
            ("max-message-size", true),
        ],
    );
    // The benchmark and Autobahn server logs warnings and errors only unless
    // RUST_LOG says otherwise (an access line per handshake costs a write).
    common::init_logging_default("warn");
    let default_port: u16 = args
        .positional
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let port: u16 = args.get("port", default_port);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let max: usize = args.get("max-message-size", 10 * 1024 * 1024);

    let subs: Subscribers = Rc::default();
    let mut builder = Application::builder().websocket_max_message_size(max);
    if args.has("deflate") {
        // Compress every message, as Tornado does (min_size 0): the kosoku
        // Autobahn runner mishandles uncompressed messages in a deflate
        // session (it hashes them as str), which would turn cases 12.x.1 and
        // 13.x.1 (16-byte messages) into harness ERRORs.
        builder = builder.compression(CompressionOptions {
            min_size: 0,
            ..CompressionOptions::default()
        });
    }
    let (s1, s2) = (subs.clone(), subs);
    let app = builder
        .route("/metrics", || cyclone::web::MetricsHandler)
        .websocket("/publish", move |_req: &Request| Publisher(s1.clone()))
        .websocket("/broadcast", move |_req: &Request| Subscriber(s2.clone()))
        .websocket(".*", |_req: &Request| Echo)
        .build();
    match app.listen_on((address.as_str(), port)) {
        Ok(addr) => log::info!("echo_server listening on ws://{addr}/"),
        Err(e) => {
            eprintln!("echo_server: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
