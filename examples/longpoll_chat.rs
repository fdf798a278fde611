//! Tornado's long-polling chat demo (`demos/chat`) on cyclone's
//! asynchronous answers: each page keeps one `POST /a/message/updates`
//! open (`cx.asynchronous()`), answered when someone posts; a page that
//! closes is forgotten at once (`on_connection_close`). Beside the demo,
//! `/a/message/events` streams the same messages as Server-Sent Events
//! (`flush()`), and `/a/status` says how many answers are open.
//!
//! ```text
//! cargo run --example longpoll_chat     # then open http://127.0.0.1:8888/ in two tabs
//! ```

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, AsyncResponse, RequestContext, RequestHandler};
use serde_json::{json, Value};

const USAGE: &str = "longpoll_chat: Tornado's long-polling chat demo

Usage: longpoll_chat [--port PORT] [--address ADDR]

  --port PORT     port to listen on (default 8888)
  --address ADDR  address to bind (default 127.0.0.1)

Open http://ADDR:PORT/ in several tabs. Routes:
  GET  /                     the page, with the last 200 messages
  POST /a/message/new        body=...: the message as JSON {id, body, html}
                             (or a redirect to `next`); XSRF-checked
  POST /a/message/updates    cursor=ID: the messages after ID, at once if
                             there are any, else when the next is posted
  GET  /a/message/events     every new message as a Server-Sent Event
  GET  /a/status             {\"waiters\": open polls, \"streams\": open event streams}
  GET  /metrics              the loop's metrics (Prometheus text)
On Ctrl-C, open polls get 2 s to be answered, then the connections close.
RUST_LOG=info for logs.";

/// Messages kept (the demo's `cache_size`).
const CACHE_SIZE: usize = 200;

/// The demo's `MessageBuffer`: the last messages, the polls waiting for
/// the next one, and (beyond the demo) the open event streams.
#[derive(Default)]
struct Buffer {
    cache: VecDeque<Value>,
    waiters: Vec<Waiter>,
    streams: Vec<AsyncResponse>,
    next_id: u64,
}

struct Waiter {
    later: AsyncResponse,
    cursor: Option<String>,
}

type Shared = Rc<RefCell<Buffer>>;

impl Buffer {
    /// The messages after the one whose id is `cursor` (all of them for
    /// an unknown or missing cursor), oldest first.
    fn messages_since(&self, cursor: Option<&str>) -> Vec<Value> {
        let mut newer: Vec<Value> = self
            .cache
            .iter()
            .rev()
            .take_while(|m| cursor.is_none_or(|c| m["id"] != c))
            .cloned()
            .collect();
        newer.reverse();
        newer
    }
}

/// Keeps `message` and answers every waiting poll and stream.
fn add_message(buffer: &Shared, message: Value) {
    let (waiters, streams) = {
        let mut b = buffer.borrow_mut();
        b.cache.push_back(message.clone());
        while b.cache.len() > CACHE_SIZE {
            b.cache.pop_front();
        }
        b.streams.retain(|s| !s.is_closed());
        (std::mem::take(&mut b.waiters), b.streams.clone())
    };
    log::info!(
        "sending a new message to {} listeners and {} streams",
        waiters.len(),
        streams.len()
    );
    for w in waiters {
        let messages = buffer.borrow().messages_since(w.cursor.as_deref());
        w.later.write_json(&json!({ "messages": messages }));
        // Dropping the handle finishes the answer.
    }
    let id = message["id"].as_str().unwrap_or_default();
    let event = format!("id: {id}\ndata: {message}\n\n");
    for s in streams {
        s.write(event.as_bytes());
        s.flush();
    }
}

/// `/`: the page, with the cached messages.
struct MainHandler(Shared);
impl RequestHandler for MainHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let messages: Vec<Value> = self.0.borrow().cache.iter().cloned().collect();
        cx.render_with("index.html", &json!({ "messages": messages }));
    }
}

/// `POST /a/message/new`.
struct MessageNew(Shared);
impl RequestHandler for MessageNew {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let Some(body) = cx.require_argument("body") else {
            return;
        };
        let id = {
            let mut b = self.0.borrow_mut();
            b.next_id += 1;
            b.next_id.to_string()
        };
        let mut message = json!({ "id": id, "body": body });
        match cx.render_string("message.html", &json!({ "message": message })) {
            Ok(html) => message["html"] = Value::String(html),
            Err(e) => {
                log::error!("message.html: {e}");
                cx.send_error(500);
                return;
            }
        }
        match cx.get_argument("next") {
            Some(next) => cx.redirect(&next, false),
            None => cx.write_json(&message),
        }
        add_message(&self.0, message);
    }
}

/// `POST /a/message/updates`: the demo's `MessageUpdatesHandler`.
struct MessageUpdates(Shared);
impl RequestHandler for MessageUpdates {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let cursor = cx.get_argument("cursor");
        let messages = self.0.borrow().messages_since(cursor.as_deref());
        if !messages.is_empty() {
            cx.write_json(&json!({ "messages": messages }));
            return;
        }
        let later = cx.asynchronous();
        self.0.borrow_mut().waiters.push(Waiter { later, cursor });
    }
    fn on_connection_close(&mut self) {
        // The demo cancels its wait; here the closed answer is dropped.
        self.0.borrow_mut().waiters.retain(|w| !w.later.is_closed());
    }
}

/// `GET /a/message/events`: new messages as Server-Sent Events.
struct MessageEvents(Shared);
impl RequestHandler for MessageEvents {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        cx.set_header("Content-Type", "text/event-stream");
        cx.set_header("Cache-Control", "no-cache");
        cx.write(": connected\n\n");
        let later = cx.asynchronous();
        later.flush();
        self.0.borrow_mut().streams.push(later);
    }
    fn on_connection_close(&mut self) {
        self.0.borrow_mut().streams.retain(|s| !s.is_closed());
    }
}

/// `GET /a/status`.
struct Status(Shared);
impl RequestHandler for Status {
    fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let b = self.0.borrow();
        let waiters = b.waiters.iter().filter(|w| !w.later.is_closed()).count();
        let streams = b.streams.iter().filter(|s| !s.is_closed()).count();
        cx.write_json(&json!({ "waiters": waiters, "streams": streams }));
    }
}

fn main() {
    let args = common::Args::parse(USAGE, &[("port", true), ("address", true)]);
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());

    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/longpoll_chat");
    let buffer: Shared = Rc::default();
    let (b1, b2, b3, b4, b5) = (
        buffer.clone(),
        buffer.clone(),
        buffer.clone(),
        buffer.clone(),
        buffer,
    );
    let app = Application::builder()
        .template_path(format!("{here}/templates"))
        .static_path(format!("{here}/static"))
        .cookie_secret("__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__")
        .xsrf_cookies(true)
        .route("/", move || MainHandler(b1.clone()))
        .route("/a/message/new", move || MessageNew(b2.clone()))
        .route("/a/message/updates", move || MessageUpdates(b3.clone()))
        .route("/a/message/events", move || MessageEvents(b4.clone()))
        .route("/a/status", move || Status(b5.clone()))
        .route("/metrics", || cyclone::web::MetricsHandler)
        .build();
    match app.listen_on((address.as_str(), port)) {
        Ok(addr) => log::info!("longpoll_chat listening on http://{addr}/"),
        Err(e) => {
            eprintln!("longpoll_chat: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
