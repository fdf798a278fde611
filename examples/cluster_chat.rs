//! The chat room of `chat.rs`, on any number of stateless nodes behind a
//! load balancer, with cross-node broadcast through a pub/sub broker.
//!
//! A node serves the same page at `/` and the same `/chatsocket`, but it
//! never broadcasts to its own clients directly. It keeps two client
//! connections to the broker:
//!
//! - `BROKER/publish`: every chat event (join, message, leave) is encoded
//!   once, in chat's JSON, and written there;
//! - `BROKER/broadcast`: everything arriving there is relayed, as is, to
//!   every local client.
//!
//! The sender's own message comes back through the broker too, so every
//! client of every node sees the same events in the broker's order. The
//! only state a node holds is its own open connections, which no other
//! node needs: any node can take any client, and one can be added or
//! restarted at any time. Ids are `NODE-N` strings (a random tag per
//! node process), unique across the cluster; the page shows them as is.
//!
//! The broker here is `echo_server`, whose `/publish` relays to every
//! `/broadcast` connection. Any pub/sub broker fits the same two hooks:
//! `Node::publish` (Redis `PUBLISH chat`, NATS `PUB chat`) and the
//! subscription's `BrokerSocket::on_message` (Redis `SUBSCRIBE chat`, NATS
//! `SUB chat`), which relays whatever arrives, as is; only the code behind
//! them (that broker's client protocol) changes.
//!
//! When the broker cannot be reached or goes away, the node keeps serving
//! its page and its local sockets, logs a warning and reconnects after
//! 0.5 s, 1 s, 2 s, 4 s, then every 5 s. Until it is back, whatever a
//! client sends is answered, to that client only, with
//! `{"type": "error", "error": "...", "text": <the unsent text>}` (chat's
//! page shows it as a notice). A join that could not go out is sent before
//! that client's first message once the broker is back; a leave is dropped
//! with a log line. Messages in flight when the link breaks are lost: the
//! broker is a relay, not a log.
//!
//! ```text
//! cargo run --example echo_server                           # the broker, :9001
//! cargo run --example cluster_chat -- --port 8888
//! cargo run --example cluster_chat -- --port 8889           # then open both
//! ```

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

use cyclone::http::Request;
use cyclone::ioloop::{ConnId, IOLoop};
use cyclone::web::Application;
use cyclone::websocket::client::WsUrl;
use cyclone::websocket::{self, CloseReason, ConnectOptions, Message, WebSocket, WebSocketHandler};
use serde_json::json;

const USAGE: &str = "cluster_chat: the chat room on several nodes sharing a pub/sub broker

Usage: cluster_chat [--port PORT] [--address ADDR] [--broker URL]

  --port PORT     port to listen on (default 8888)
  --address ADDR  address to bind (default 127.0.0.1)
  --broker URL    broker base URL (default ws://127.0.0.1:9001): events are
                  published to URL/publish, and URL/broadcast is relayed to
                  this node's clients

Run a broker and two nodes, then open http://127.0.0.1:8888/ and
http://127.0.0.1:8889/: a message sent on one appears on both.

  cargo run --example echo_server                  # broker on ws://127.0.0.1:9001
  cargo run --example cluster_chat -- --port 8888
  cargo run --example cluster_chat -- --port 8889

The socket at /chatsocket speaks chat's JSON ({\"type\":\"join\"|\"leave\",
\"id\":ID}, {\"type\":\"message\",\"id\":ID,\"text\":\"...\"}, ids \"NODE-N\"). While the
broker is unreachable the node serves its clients, answers what they send
with {\"type\":\"error\",...}, and reconnects (0.5 s doubling to 5 s).
RUST_LOG=info for logs.";

const PAGE: &str = include_str!("pages/chat.html");
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(5);
const BROKER_DOWN: &str = "the chat relay (broker) is unreachable: not sent, retry shortly";

/// What a node shares between its sockets: its local clients and its link
/// to the broker.
struct Node {
    tag: String,
    broker: String,
    clients: RefCell<BTreeSet<ConnId>>,
    link: RefCell<Link>,
}

/// The broker link: both connections, open (`Some`) or not yet.
#[derive(Default)]
struct Link {
    /// Bumped on each loss: events of older connections are ignored.
    generation: u64,
    publish: Option<ConnId>,
    subscribe: Option<ConnId>,
    /// The next backoff (zero: the first).
    retry: Duration,
    /// Ctrl-C: no more reconnecting.
    stopping: bool,
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Publish,
    Subscribe,
}

impl Node {
    /// Opens both broker connections (a new generation's).
    fn connect(self: &Rc<Self>) {
        let generation = self.link.borrow().generation;
        let options = ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            // Notice a broker that vanished without closing the TCP connection.
            ping_interval: Some(Duration::from_secs(10)),
            ..ConnectOptions::default()
        };
        for (role, path) in [(Role::Publish, "publish"), (Role::Subscribe, "broadcast")] {
            let url = format!("{}/{path}", self.broker);
            let socket = BrokerSocket {
                node: self.clone(),
                generation,
                role,
            };
            let (node, u) = (self.clone(), url.clone());
            let on_result = move |res: Result<ConnId, _>| {
                if let Err(e) = res {
                    node.lost(generation, &format!("cannot connect to {u}: {e}"));
                }
            };
            let res =
                websocket::websocket_connect_with_result(&url, options.clone(), socket, on_result);
            if let Err(e) = res {
                self.lost(generation, &format!("cannot connect to {url}: {e}"));
                return;
            }
        }
    }

    /// A broker connection of `generation` is open: the link is up once both are.
    fn opened(&self, generation: u64, role: Role, id: ConnId) -> bool {
        let mut link = self.link.borrow_mut();
        if generation != link.generation || link.stopping {
            return false; // a late success of a connection already given up
        }
        match role {
            Role::Publish => link.publish = Some(id),
            Role::Subscribe => link.subscribe = Some(id),
        }
        if link.publish.is_some() && link.subscribe.is_some() {
            log::info!("node {}: linked to the broker at {}", self.tag, self.broker);
            link.retry = Duration::ZERO;
        }
        true
    }

    /// A broker connection of `generation` failed or closed: drop the other
    /// one and reconnect both after the backoff (once per generation).
    fn lost(self: &Rc<Self>, generation: u64, why: &str) {
        let (delay, stale) = {
            let mut link = self.link.borrow_mut();
            if generation != link.generation || link.stopping {
                return;
            }
            link.generation += 1;
            let delay = link.retry.max(FIRST_RETRY);
            link.retry = (delay * 2).min(MAX_RETRY);
            (delay, [link.publish.take(), link.subscribe.take()])
        };
        log::warn!(
            "node {}: broker link down ({why}); retrying in {delay:?}",
            self.tag
        );
        for id in stale.into_iter().flatten() {
            websocket::close_connection(id, Some(1001), "reconnecting");
        }
        let node = self.clone();
        IOLoop::current().call_later(delay, move || node.connect());
    }

    /// Hook 1: hands one event to the broker. False when the link is down.
    fn publish(&self, event: &str) -> bool {
        let link = self.link.borrow();
        match (link.publish, link.subscribe) {
            (Some(id), Some(_)) => websocket::write_to(id, event),
            _ => false,
        }
    }

    fn id_of(&self, id: ConnId) -> String {
        format!("{}-{}", self.tag, id.key())
    }
}

/// One of the two broker connections (client side).
struct BrokerSocket {
    node: Rc<Node>,
    generation: u64,
    role: Role,
}

impl WebSocketHandler for BrokerSocket {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        if !self.node.opened(self.generation, self.role, ws.id()) {
            ws.close(Some(1001), "stale");
        }
    }

    /// Hook 2: the subscription relays every event to the local clients
    /// (not a stale one still closing: the new one relays the same events).
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let current = self.generation == self.node.link.borrow().generation;
        if let (Role::Subscribe, Some(text), true) = (self.role, msg.as_text(), current) {
            ws.broadcast(self.node.clients.borrow().iter().copied(), text);
        }
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        if ws.closed_by() == Some(CloseReason::Shutdown) {
            self.node.link.borrow_mut().stopping = true; // Ctrl-C: no reconnect
            return;
        }
        let why = format!("{:?} connection closed ({:?})", self.role, ws.closed_by());
        self.node.lost(self.generation, &why);
    }
}

/// `/chatsocket`: publishes what chat would broadcast.
struct ChatSocket {
    node: Rc<Node>,
    /// Whether this client's join went out (it is owed while the broker is
    /// down, and sent before its first message once it is back).
    joined: bool,
}

impl ChatSocket {
    /// Publishes `event`, after this client's join if still owed. When the
    /// broker is down, tells this client (only), with a message's text.
    fn send(&mut self, ws: &mut WebSocket<'_>, event: Option<serde_json::Value>) {
        if !self.joined {
            let join = json!({"type": "join", "id": self.node.id_of(ws.id())});
            self.joined = self.node.publish(&join.to_string());
        }
        let publish = |e: &serde_json::Value| self.node.publish(&e.to_string());
        if !(self.joined && event.as_ref().is_none_or(publish)) {
            let mut error = json!({"type": "error", "error": BROKER_DOWN});
            if let Some(text) = event.as_ref().and_then(|e| e.get("text")) {
                error["text"] = text.clone();
            }
            let _ = ws.write_json(&error);
        }
    }
}

impl WebSocketHandler for ChatSocket {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        ws.set_nodelay(true);
        let mut clients = self.node.clients.borrow_mut();
        clients.insert(ws.id());
        log::info!("{} joined ({} on this node)", ws.id(), clients.len());
        drop(clients);
        self.send(ws, None);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let Some(text) = msg.as_text() else {
            log::info!("{}: ignoring a binary message", ws.id());
            return;
        };
        let id = self.node.id_of(ws.id());
        self.send(ws, Some(json!({"type": "message", "id": id, "text": text})));
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        let mut clients = self.node.clients.borrow_mut();
        clients.remove(&ws.id());
        log::info!("{} left ({} on this node)", ws.id(), clients.len());
        let leave = json!({"type": "leave", "id": self.node.id_of(ws.id())});
        if self.joined && !self.node.publish(&leave.to_string()) {
            log::info!("{}: leave not published (broker link down)", ws.id());
        }
    }
}

fn main() {
    let flags = [("port", true), ("address", true), ("broker", true)];
    let args = common::Args::parse(USAGE, &flags);
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let broker: String = args.get("broker", "ws://127.0.0.1:9001".to_string());
    let broker = broker.trim_end_matches('/').to_string();
    if let Err(e) = WsUrl::parse(&broker) {
        eprintln!("cluster_chat: invalid --broker {broker}: {e}\n\n{USAGE}");
        std::process::exit(2);
    }

    // A random tag per process: client ids stay unique across nodes.
    let tag = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let node = Rc::new(Node {
        tag: format!("{:06x}", tag & 0xff_ffff),
        broker,
        clients: RefCell::default(),
        link: RefCell::default(),
    });
    let n = node.clone();
    let app = Application::builder()
        .route("/", || common::Page(PAGE))
        .route("/metrics", || cyclone::web::MetricsHandler)
        .websocket("/chatsocket", move |_req: &Request| ChatSocket {
            node: n.clone(),
            joined: false,
        })
        .build();
    match app.listen_on((address.as_str(), port)) {
        Ok(addr) => log::info!("cluster_chat node {} on http://{addr}/", node.tag),
        Err(e) => {
            eprintln!("cluster_chat: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    node.connect();
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
