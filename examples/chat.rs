//! Seed 003's chat room, and with `--robot` its robot.
//!
//! `/` serves a page with an input and a message list; `/chatsocket` keeps
//! the set of open connections (Tornado's `ws_clients = set()`), turns
//! Nagle off like the seed's `self.stream.set_nodelay(True)`, and sends
//! every client, as JSON:
//!
//! - `{"type": "join", "id": N}` when connection `N` opens (itself included),
//! - `{"type": "message", "id": N, "text": "..."}` for each text message,
//! - `{"type": "leave", "id": N}` when it closes (to the others).
//!
//! The seed's handler calls a robot's web API with `requests.post` inside
//! `on_message`, which blocks Tornado's loop for the whole call. With
//! `--robot`, each message also gets the robot's answer, to its sender
//! only: `{"type": "robot", "text": "..."}`. The robot here is a stand-in
//! (this machine reaches no outside API): a blocking function that takes
//! `--robot-delay` milliseconds. It runs on the loop's thread pool
//! (`IOLoop::run_in_executor`), awaited in the handler's `ws.spawn`
//! future, so the room goes on meanwhile, and a sender's answers come in
//! the order of its messages, as Tornado's `async def on_message` gives.
//!
//! ```text
//! cargo run --example chat             # then open http://127.0.0.1:8888/ in two tabs
//! cargo run --example chat -- --robot  # and talk to the robot
//! ```

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use cyclone::http::Request;
use cyclone::ioloop::{ConnId, IOLoop};
use cyclone::web::Application;
use cyclone::websocket::{self, Message, WebSocket, WebSocketHandler};
use serde_json::json;

const USAGE: &str = "chat: a chat room; every message goes to every open page

Usage: chat [--port PORT] [--address ADDR] [--robot [--robot-delay MS]]

  --port PORT         port to listen on (default 8888)
  --address ADDR      address to bind (default 127.0.0.1)
  --robot             seed 003's robot: each message also gets its answer,
                      to the sender only, as {\"type\":\"robot\",\"text\":\"...\"}
  --robot-delay MS    how long the (blocking) robot takes (default 200); it
                      runs on a thread pool, so the room goes on meanwhile

Open http://ADDR:PORT/ in several tabs. The socket at /chatsocket sends
JSON: {\"type\":\"join\"|\"leave\",\"id\":N} and
{\"type\":\"message\",\"id\":N,\"text\":\"...\"}. RUST_LOG=info for logs.";

const PAGE: &str = include_str!("pages/chat.html");

/// The open chat connections (the seed's `ws_clients`).
type Clients = Rc<RefCell<BTreeSet<ConnId>>>;

/// `/chatsocket`: one per connection, all sharing `clients`.
struct ChatSocket {
    clients: Clients,
    /// `--robot`: how long the robot thinks.
    robot: Option<Duration>,
}

/// The seed's robot API, standing in: a blocking call that takes `delay`
/// (the seed's `requests.post` to a remote robot) and answers.
fn ask_robot(text: &str, delay: Duration) -> String {
    std::thread::sleep(delay);
    let words = text.split_whitespace().count();
    format!(
        "You said {words} word{}: \"{text}\"",
        if words == 1 { "" } else { "s" }
    )
}

impl WebSocketHandler for ChatSocket {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        ws.set_nodelay(true);
        let id = ws.id();
        self.clients.borrow_mut().insert(id);
        log::info!(
            "{} joined ({} in the room)",
            id.key(),
            self.clients.borrow().len()
        );
        let join = json!({"type": "join", "id": id.key()}).to_string();
        ws.broadcast(self.clients.borrow().iter().copied(), join);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let Some(text) = msg.as_text() else {
            log::info!("{}: ignoring a binary message", ws.id());
            return;
        };
        // Encoded once, sent to everyone as one shared frame. `broadcast`
        // only queues (no handler runs during it), so the set may stay
        // borrowed for the call.
        let line = json!({"type": "message", "id": ws.id().key(), "text": text}).to_string();
        ws.broadcast(self.clients.borrow().iter().copied(), line);
        if let Some(delay) = self.robot {
            // Tornado: answer = await IOLoop.current().run_in_executor(None, ask_robot, text)
            let (id, text) = (ws.id(), text.to_owned());
            ws.spawn(async move {
                let answer = IOLoop::current()
                    .run_in_executor(move || ask_robot(&text, delay))
                    .await;
                websocket::write_to(id, json!({"type": "robot", "text": answer}).to_string());
            });
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        let id = ws.id();
        self.clients.borrow_mut().remove(&id);
        log::info!(
            "{} left ({} in the room)",
            id.key(),
            self.clients.borrow().len()
        );
        let leave = json!({"type": "leave", "id": id.key()}).to_string();
        websocket::broadcast(self.clients.borrow().iter().copied(), leave);
    }
}

fn main() {
    let args = common::Args::parse(
        USAGE,
        &[
            ("port", true),
            ("address", true),
            ("robot", false),
            ("robot-delay", true),
        ],
    );
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let robot = args
        .has("robot")
        .then(|| Duration::from_millis(args.get("robot-delay", 200)));

    let clients: Clients = Rc::default();
    let app = Application::builder()
        .route("/", || common::Page(PAGE))
        .route("/metrics", || cyclone::web::MetricsHandler)
        .websocket("/chatsocket", move |_req: &Request| ChatSocket {
            clients: clients.clone(),
            robot,
        })
        .build();
    match app.listen_on((address.as_str(), port)) {
        Ok(addr) => log::info!("chat listening on http://{addr}/"),
        Err(e) => {
            eprintln!("chat: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
