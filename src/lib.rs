//! # cyclone
//!
//! Tornado's `tornado.websocket` (with the slice of `tornado.ioloop` and
//! `tornado.web` around it) rebuilt in Rust as a single-threaded
//! [mio](https://docs.rs/mio) reactor.
//!
//! ```text
//! examples/, user code
//!   └─ web        Application (regex routes, settings), RequestHandler, StaticFiles
//!   └─ locale     translations (CSV, gettext) and locale-aware formatting
//!   └─ websocket  WebSocketHandler, WebSocket context, Message, accept, client
//!   └─ http       HTTP/1.1 server connection (httparse), Request, Response
//!   └─ ioloop     IOLoop: mio Poll, slab of connections, timers, executor, waker
//!   └─ protocol   sans-IO RFC 6455/7692: frames, masking, UTF-8, handshake, deflate
//! locks, queues   tornado.locks and tornado.queues for the loop's tasks
//! testing         tornado.testing: TestServer and fetch, gen_test, ExpectLog
//! ```
//!
//! Data flows down on read and up on write; no layer reaches upward.
//!
//! ```no_run
//! use cyclone::ioloop::IOLoop;
//! use cyclone::web::Application;
//! use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
//!
//! struct EchoWebSocket;
//!
//! impl WebSocketHandler for EchoWebSocket {
//!     fn open(&mut self, _ws: &mut WebSocket<'_>, _args: &[&str]) {
//!         log::info!("WebSocket opened");
//!     }
//!     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
//!         if let Some(text) = msg.as_text() {
//!             let _ = ws.write_message(format!("You said: {text}"));
//!         }
//!     }
//!     fn on_close(&mut self, _ws: &mut WebSocket<'_>) {
//!         log::info!("WebSocket closed");
//!     }
//! }
//!
//! let app = Application::builder()
//!     .websocket(r"/websocket", |_req| EchoWebSocket)
//!     .build();
//! app.listen(8888).expect("listen");
//! IOLoop::current().start();
//! ```
#![deny(missing_docs)]
// Without TLS, the docs' links to TLS-only items (`start_tls`, `ca_certs`,
// ...) have nothing to point at; the default build checks every link.
#![cfg_attr(not(feature = "tls"), allow(rustdoc::broken_intra_doc_links))]
// One `unsafe` block in the crate, allowed where it is: the setsockopt for
// TCP_DEFER_ACCEPT (src/http/server.rs), measured in benches/README.md.
#![deny(unsafe_code)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod http;
pub mod ioloop;
pub mod locale;
pub mod locks;
pub mod protocol;
pub mod queues;
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
pub mod web;
pub mod websocket;
mod workers;

#[cfg(feature = "tls")]
pub use workers::run_workers_tls;
pub use workers::{run_workers, Workers};

use std::time::Duration;

use ioloop::IOLoop;

/// Graceful shutdown of the current thread's loop: new connections and new
/// HTTP requests (handshakes included) are answered 503, idle HTTP
/// connections close, every WebSocket gets a 1001 (Going Away) close frame
/// after what is already queued for it; the loop waits up to `grace` for
/// the close handshakes, then drops what remains and `start()` returns.
///
/// Called again while a shutdown is in progress (a second Ctrl-C, or both
/// SIGINT and SIGTERM handled), it shuts down what came since and keeps
/// the one shutdown going, ending by the earlier of the two deadlines.
///
/// Safe in a destructor, a thread-local's included: once the thread's
/// loop is gone (the thread is ending and the loop was dropped first),
/// there is nothing left to shut down, and this does nothing.
pub fn shutdown(grace: Duration) {
    let Some(lp) = IOLoop::current_unless_gone() else {
        return;
    };
    lp.set_shutting_down(true);
    lp.shutdown_all();
    let deadline = lp.deadline_after(grace);
    let current = lp.local::<ShutdownDeadline>();
    if let Some(earlier) = current.0.get() {
        // One grace check at a time: a second one would outlive the
        // first's stop and stop the loop's next run (and drop its
        // connections at its own deadline).
        current.0.set(Some(earlier.min(deadline)));
        return;
    }
    current.0.set(Some(deadline));
    fn check(current: ShutdownDeadline) {
        let lp = IOLoop::current();
        let draining = http::server::Draining::listeners(&lp);
        let deadline = current.0.get().unwrap_or_else(|| lp.time());
        if lp.awaited_by_shutdown() <= draining || lp.time() >= deadline {
            http::server::Draining::finish(&lp);
            if lp.registrations() > 0 {
                log::info!(
                    "shutdown grace over: dropping {} connection(s)",
                    lp.registrations()
                );
                lp.abort_all();
            }
            lp.stop();
            // Over (a `shutdown` from what `abort_all` ran joined this one).
            current.0.set(None);
        } else {
            lp.call_later(Duration::from_millis(20), move || check(current));
        }
    }
    check(current);
}

/// The deadline of the loop's shutdown in progress, if one is.
#[derive(Default, Clone)]
struct ShutdownDeadline(std::rc::Rc<std::cell::Cell<Option<std::time::Instant>>>);
