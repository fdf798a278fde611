//! The shape of Tornado's WebSocket chat demo (`demos/websocket`), with
//! templates: `/` renders `templates/index.html`, which lists the last 200
//! messages, each through `templates/message.html`; `/chatsocket` takes
//! `{"body": "..."}` messages, renders each with the same `message.html`
//! (`ws.render_string`, as the demo's `render_string` in `on_message`),
//! keeps it, and sends every open page `{"id", "body", "html"}` (one
//! encoded frame for all). Compression is on (the demo's
//! `get_compression_options` returning `{}`).
//!
//! ```text
//! cargo run --example chatdemo        # then open http://127.0.0.1:8888/ in two tabs
//! ```

mod common;

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use cyclone::http::Request;
use cyclone::ioloop::{ConnId, IOLoop};
use cyclone::protocol::CompressionOptions;
use cyclone::web::{Application, RequestContext, RequestHandler};
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
use serde_json::{json, Value};

const USAGE: &str = "chatdemo: Tornado's WebSocket chat demo, with its templates

Usage: chatdemo [--port PORT] [--address ADDR]

  --port PORT     port to listen on (default 8888)
  --address ADDR  address to bind (default 127.0.0.1)

Open http://ADDR:PORT/ in several tabs. The socket at /chatsocket takes
{\"body\": \"...\"} and sends every page {\"id\":..., \"body\":..., \"html\":...},
the html rendered with templates/message.html (also used for the messages
the page lists when it loads). RUST_LOG=info for logs.";

/// Messages kept for pages that load later (the demo's `cache_size`).
const CACHE_SIZE: usize = 200;

/// What the page and the socket share: the last messages and the open
/// sockets (the demo's class attributes `cache` and `waiters`).
#[derive(Default)]
struct Room {
    cache: VecDeque<Value>,
    waiters: BTreeSet<ConnId>,
    next_id: u64,
}

type Shared = Rc<RefCell<Room>>;

/// `/`: the page, with the cached messages.
struct MainHandler {
    room: Shared,
}

impl RequestHandler for MainHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let messages: Vec<Value> = self.room.borrow().cache.iter().cloned().collect();
        cx.render_with("index.html", &json!({ "messages": messages }));
    }
}

/// `/chatsocket`.
struct ChatSocket {
    room: Shared,
}

impl WebSocketHandler for ChatSocket {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        self.room.borrow_mut().waiters.insert(ws.id());
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let body = msg
            .as_text()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v.get("body").and_then(Value::as_str).map(str::to_owned));
        let Some(body) = body else {
            log::info!("{}: not a {{\"body\": ...}} message", ws.id());
            return;
        };
        let id = {
            let mut room = self.room.borrow_mut();
            room.next_id += 1;
            format!("{}-{}", ws.id().key(), room.next_id)
        };
        let mut chat = json!({ "id": id, "body": body });
        match ws.render_string("message.html", &json!({ "message": chat })) {
            Ok(html) => chat["html"] = Value::String(html),
            Err(e) => {
                log::error!("message.html: {e}");
                return;
            }
        }
        let mut room = self.room.borrow_mut();
        room.cache.push_back(chat.clone());
        while room.cache.len() > CACHE_SIZE {
            room.cache.pop_front();
        }
        log::info!("sending message to {} waiters", room.waiters.len());
        ws.broadcast(room.waiters.iter().copied(), chat.to_string());
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        self.room.borrow_mut().waiters.remove(&ws.id());
    }
}

fn main() {
    let args = common::Args::parse(USAGE, &[("port", true), ("address", true)]);
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());

    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/chatdemo");
    // The page's `_("...")` strings in Spanish and French, for browsers
    // that ask for them (`Accept-Language`).
    if let Err(e) = cyclone::locale::load_translations(format!("{here}/locale")) {
        log::warn!("chatdemo: no translations: {e}");
    }
    let room: Shared = Rc::default();
    let page_room = room.clone();
    let app = Application::builder()
        .template_path(format!("{here}/templates"))
        .static_path(format!("{here}/static"))
        .compression(CompressionOptions::default())
        .route("/", move || MainHandler {
            room: page_room.clone(),
        })
        .route("/metrics", || cyclone::web::MetricsHandler)
        .websocket("/chatsocket", move |_req: &Request| ChatSocket {
            room: room.clone(),
        })
        .build();
    match app.listen_on((address.as_str(), port)) {
        Ok(addr) => log::info!("chatdemo listening on http://{addr}/"),
        Err(e) => {
            eprintln!("chatdemo: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
