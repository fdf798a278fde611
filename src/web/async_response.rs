//! Answers completed after the handler method returned
//! ([`RequestContext::asynchronous`]): Tornado's asynchronous handlers,
//! long polling, and streamed responses (`flush()`: Server-Sent Events).
//!
//! The handle queues its work as operations on the request's context; they
//! run in order as soon as the handler method has returned (work asked for
//! during the method waits for it), each on a [`RequestContext`] made again
//! from what the method left, so everything a method can do to the
//! response ([`with`](AsyncResponse::with)) can be done later too. The HTTP
//! connection waits on a [`PendingReply`] meanwhile.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use serde::Serialize;

use super::application::Shared as AppShared;
use super::context::{vary_on_accept_encoding, would_gzip, Parts};
use super::handler::finish_response;
use super::{RequestContext, RequestHandler};
use crate::http::{PendingReply, Request, Response};

/// The shared state of one answer given later.
#[derive(Clone, Default)]
pub(crate) struct Shared(Rc<RefCell<State>>);

#[derive(Default)]
struct State {
    /// User handles alive ([`AsyncResponse`] clones): the answer finishes
    /// when the last one goes, as a coroutine's end finishes Tornado's.
    handles: usize,
    ops: VecDeque<Op>,
    /// The request and what the method left, once it returned; taken out
    /// while an operation runs (one asked for meanwhile is queued).
    held: Option<Box<Held>>,
    /// The method returned (`held` was put in place once).
    begun: bool,
    phase: Phase,
    reply: PendingReply,
    /// [`AsyncResponse::on_close`] callbacks.
    on_close: Vec<Box<dyn FnOnce()>>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Nothing sent yet.
    #[default]
    Open,
    /// The head went out; the body follows as it is flushed.
    Streaming,
    /// The answer is complete.
    Done,
    /// The connection closed first.
    Closed,
}

enum Op {
    With(Box<dyn FnOnce(&mut RequestContext<'_>)>),
    Flush,
    Finish,
    Abort,
}

struct Held {
    request: Request,
    shared: Rc<AppShared>,
    parts: Option<Parts>,
    handler: Option<Box<dyn RequestHandler>>,
    /// `compress_response` over a streamed body: each flush is a sync
    /// flush of one gzip stream (Tornado's `GZipContentEncoding`).
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

/// The open answer of a request whose handler called
/// [`RequestContext::asynchronous`]. Clones share it; the answer finishes
/// when [`finish`](Self::finish) is called or the last clone is dropped.
///
/// Every method may be called while the handler method still runs (the
/// work then waits for it to return) and from anywhere on the loop's
/// thread afterwards; after the answer is finished, or once the client
/// closed the connection ([`is_closed`](Self::is_closed)), they do
/// nothing, except that finishing an answer whose client has gone (by
/// [`finish`](Self::finish) or by dropping the last clone) still runs the
/// handler's `on_finish`, as Tornado's `finish()` does. Not `Send`: it
/// lives on the thread of the loop serving the request.
///
/// A coroutine, as Tornado's `async def get`: the task awaits, writes,
/// and its end (dropping the handle) finishes the answer.
///
/// ```
/// use std::time::Duration;
/// use cyclone::ioloop::{sleep, spawn};
/// use cyclone::web::{RequestContext, RequestHandler};
///
/// struct Countdown;
/// impl RequestHandler for Countdown {
///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
///         cx.set_header("Content-Type", "text/plain");
///         let later = cx.asynchronous();
///         spawn(async move {
///             for n in (1..=3).rev() {
///                 later.write(format!("{n}\n"));
///                 later.flush(); // each line as it is ready
///                 sleep(Duration::from_secs(1)).await;
///             }
///             later.write("liftoff\n");
///         });
///     }
/// }
/// ```
///
/// A long poll, as in Tornado's chat demo: the handler keeps the handle
/// where new messages are published, and the connection's close is
/// noticed.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use cyclone::web::{AsyncResponse, RequestContext, RequestHandler};
///
/// #[derive(Default, Clone)]
/// struct Waiters(Rc<RefCell<Vec<AsyncResponse>>>);
///
/// impl Waiters {
///     fn publish(&self, text: &str) {
///         for w in self.0.borrow_mut().drain(..) {
///             w.write_json(&serde_json::json!({ "message": text }));
///         } // each answer finishes as its handle is dropped
///     }
/// }
///
/// struct Poll(Waiters);
/// impl RequestHandler for Poll {
///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
///         let later = cx.asynchronous();
///         let mut waiters = self.0 .0.borrow_mut();
///         waiters.retain(|w| !w.is_closed());
///         waiters.push(later);
///     }
/// }
/// ```
pub struct AsyncResponse {
    shared: Shared,
}

impl AsyncResponse {
    pub(crate) fn new(shared: Shared) -> AsyncResponse {
        shared.0.borrow_mut().handles += 1;
        AsyncResponse { shared }
    }

    /// Runs `f` on the request's context: anything a handler method can
    /// do (`write`, `set_header`, `render`, `redirect`, `send_error`,
    /// cookies, arguments). A response `f` finishes (`render`, `redirect`,
    /// `send_error`) is sent at once, as Tornado's `render` finishes.
    /// Queued behind the work asked for before it.
    pub fn with(&self, f: impl FnOnce(&mut RequestContext<'_>) + 'static) {
        self.push(Op::With(Box::new(f)));
    }

    /// Appends to the body.
    pub fn write(&self, data: impl AsRef<[u8]>) {
        let data = data.as_ref().to_vec();
        self.with(move |cx| cx.write(data));
    }

    /// Appends `value` as JSON ([`RequestContext::write_json`]).
    pub fn write_json<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_value(value) {
            Ok(v) => self.with(move |cx| cx.write_json(&v)),
            Err(e) => {
                log::error!("write_json: {e}: the answer is a 500");
                self.send_error(500);
            }
        }
    }

    /// Sends the head (the first time) and what was written so far, and
    /// keeps the answer open for more: `Transfer-Encoding: chunked` to an
    /// HTTP/1.1 client (the body runs to the close for HTTP/1.0), gzipped
    /// as one stream under `compress_response` when the client accepts it.
    /// A `Content-Length` the handler set is kept (not when gzipped) and
    /// the body must then come to exactly that length, as in Tornado: a
    /// body that does not is cut and the connection closed.
    /// From then on the status, headers and cookies stay as sent
    /// (changes are logged and ignored); no ETag is computed. Tornado's
    /// `flush()`.
    pub fn flush(&self) {
        self.push(Op::Flush);
    }

    /// Ends the answer (Tornado's `finish()`): a response never flushed is
    /// sent whole, with the handler's error page, its ETag and 304, and
    /// gzip, as a method's return would send it; a streamed one gets its
    /// last piece. The handler's `on_finish` runs (also when the client
    /// has gone: then nothing is sent).
    pub fn finish(&self) {
        self.push(Op::Finish);
    }

    /// Answers `status` with the handler's error page
    /// ([`RequestContext::send_error`]). After a flush the page cannot be
    /// sent: the error is logged and the answer ends (what was written
    /// before goes out, the status stays the one sent), as Tornado's.
    pub fn send_error(&self, status: u16) {
        self.with(move |cx| cx.send_error(status));
    }

    /// Gives the answer up: a 500 if nothing was sent yet, else the
    /// connection closes without the body's end (no last chunk, or short
    /// of its length), so the client cannot take what it got for the
    /// whole body. For a producer that fails midway (a source that ends
    /// early, an upstream that breaks); an error is logged and the
    /// handler's `on_finish` does not run.
    pub fn abort(&self) {
        self.push(Op::Abort);
    }

    /// Whether the client closed the connection before the answer ended
    /// (or the server dropped it: shutdown, a client that took none of a
    /// streamed answer for the idle timeout). A long poll drops such
    /// handles instead of writing to them.
    pub fn is_closed(&self) -> bool {
        self.shared.0.borrow().phase == Phase::Closed
    }

    /// Whether the answer ended ([`finish`](Self::finish), or a response
    /// finished through [`with`](Self::with)).
    pub fn is_finished(&self) -> bool {
        self.shared.0.borrow().phase == Phase::Done
    }

    /// Response bytes flushed and not yet taken by the client: a producer
    /// streaming faster than its client reads can hold back while this is
    /// large (or await [`flushed`](Self::flushed)).
    pub fn queued_bytes(&self) -> usize {
        self.shared.0.borrow().reply.queued_bytes()
    }

    /// A future that completes once everything flushed so far has reached
    /// the kernel, or the connection closed: awaiting Tornado's
    /// `flush()`. A task streaming a large answer awaits it after each
    /// [`flush`](Self::flush), so it holds at most a piece beyond what the
    /// client takes.
    ///
    /// ```
    /// use cyclone::ioloop::spawn;
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Export;
    /// impl RequestHandler for Export {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let later = cx.asynchronous();
    ///         spawn(async move {
    ///             for row in 0..1_000_000 {
    ///                 later.write(format!("{row}\n"));
    ///                 if row % 10_000 == 0 {
    ///                     later.flush();
    ///                     later.flushed().await;
    ///                     if later.is_closed() {
    ///                         return;
    ///                     }
    ///                 }
    ///             }
    ///         });
    ///     }
    /// }
    /// ```
    pub fn flushed(&self) -> crate::http::Drained {
        self.shared.0.borrow().reply.drained()
    }

    /// Runs `f` on the loop if the connection closes before the answer
    /// ends (after the handler's
    /// [`on_connection_close`](RequestHandler::on_connection_close)); on
    /// the loop's next iteration if it closed already.
    ///
    /// Safe in a destructor, a thread-local's included: once the thread's
    /// loop is gone (the thread is ending and the loop was dropped first),
    /// nothing would run `f`, and it is dropped.
    pub fn on_close(&self, f: impl FnOnce() + 'static) {
        let mut st = self.shared.0.borrow_mut();
        match st.phase {
            Phase::Open | Phase::Streaming => st.on_close.push(Box::new(f)),
            Phase::Done => {}
            Phase::Closed => {
                drop(st);
                if let Some(lp) = crate::ioloop::IOLoop::existing() {
                    lp.add_callback(f);
                }
            }
        }
    }

    fn push(&self, op: Op) {
        {
            let mut st = self.shared.0.borrow_mut();
            if matches!(st.phase, Phase::Done | Phase::Closed) {
                if st.phase == Phase::Done {
                    log::warn!("ignored: the asynchronous response is already finished");
                } else if matches!(op, Op::Finish) && st.begun {
                    drop(st);
                    finish_closed(&self.shared);
                }
                return;
            }
            st.ops.push_back(op);
        }
        run(&self.shared);
    }
}

impl Clone for AsyncResponse {
    fn clone(&self) -> Self {
        AsyncResponse::new(self.shared.clone())
    }
}

impl Drop for AsyncResponse {
    fn drop(&mut self) {
        let last = {
            let mut st = self.shared.0.borrow_mut();
            st.handles -= 1;
            st.handles == 0 && st.begun && matches!(st.phase, Phase::Open | Phase::Streaming)
        };
        if !last {
            let closed = {
                let st = self.shared.0.borrow();
                st.handles == 0 && st.begun && st.phase == Phase::Closed
            };
            if closed && !std::thread::panicking() {
                finish_closed(&self.shared);
            }
            return;
        }
        if std::thread::panicking() {
            // No handler code during an unwind (a second panic aborts).
            let mut st = self.shared.0.borrow_mut();
            let dropped = fail(&mut st, "the last handle was dropped by a panic");
            drop(st);
            drop(dropped);
            return;
        }
        self.shared.0.borrow_mut().ops.push_back(Op::Finish);
        run(&self.shared);
    }
}

impl fmt::Debug for AsyncResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResponse")
            .field("phase", &self.shared.0.borrow().phase)
            .finish()
    }
}

/// The handler method returned with the answer open: keeps what the
/// answer needs, runs the work asked for meanwhile, and gives the reply
/// the connection waits on.
pub(crate) fn begin(
    shared: Shared,
    request: Request,
    app: Rc<AppShared>,
    parts: Parts,
    handler: Box<dyn RequestHandler>,
) -> PendingReply {
    let reply = {
        let mut st = shared.0.borrow_mut();
        st.held = Some(Box::new(Held {
            request,
            shared: app,
            parts: Some(parts),
            handler: Some(handler),
            gzip: None,
        }));
        st.begun = true;
        if st.handles == 0 {
            // Every handle was dropped by the method: it is done.
            st.ops.push_back(Op::Finish);
        }
        st.reply.clone()
    };
    let weak = Rc::downgrade(&shared.0);
    reply.on_close(move || closed(&weak));
    run(&shared);
    reply
}

/// The connection closed before the answer ended.
fn closed(weak: &Weak<RefCell<State>>) {
    let Some(state) = weak.upgrade() else {
        return;
    };
    let (held, callbacks, dropped) = {
        let mut st = state.borrow_mut();
        if matches!(st.phase, Phase::Done | Phase::Closed) {
            return;
        }
        st.phase = Phase::Closed;
        // Dropped once the state is free: an operation may hold a handle,
        // whose drop looks at the state.
        let dropped = std::mem::take(&mut st.ops);
        (st.held.take(), std::mem::take(&mut st.on_close), dropped)
    };
    drop(dropped);
    if let Some(mut held) = held {
        if let Some(handler) = held.handler.as_mut() {
            guarded("on_connection_close", || handler.on_connection_close());
        }
        state.borrow_mut().held = Some(held);
    }
    for f in callbacks {
        guarded("an on_close callback", f);
    }
}

/// The answer is finished (`finish()`, or its last handle dropped) after
/// the client went: nothing is sent; its access line is logged, with the
/// status set so far, and then the handler's `on_finish` runs, once, as
/// Tornado's `finish()` does on a closed connection (`_log()`, then
/// `on_finish()`).
fn finish_closed(shared: &Shared) {
    let (held, reply) = {
        let mut st = shared.0.borrow_mut();
        if st.phase != Phase::Closed {
            return;
        }
        // None: an operation is running; it cannot finish it any more.
        let Some(held) = st.held.take() else {
            return;
        };
        st.phase = Phase::Done;
        (held, st.reply.clone())
    };
    let mut held = held;
    let Held {
        request,
        shared: app,
        parts,
        handler,
        ..
    } = &mut *held;
    let status = match parts.take() {
        Some(p) => {
            let cx = RequestContext::from_parts(request, app, p, None);
            let status = cx.get_status();
            *parts = Some(cx.into_parts().0);
            status
        }
        None => 200,
    };
    super::application::log_access(request, status, reply.elapsed());
    if let Some(handler) = handler.as_mut() {
        super::handler::run_on_finish(&mut **handler, status);
    }
    shared.0.borrow_mut().held = Some(held);
}

/// Runs `f`, logging and counting a panic instead of unwinding into the loop.
pub(crate) fn guarded(what: &str, f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(p) => {
            log::error!("{what} panicked: {}", crate::ioloop::panic_message(&p));
            if let Some(lp) = crate::ioloop::IOLoop::existing() {
                lp.count(crate::ioloop::Counter::HandlerPanics, 1);
            }
            false
        }
    }
}

/// Ends an answer that cannot go on: a 500 if nothing was sent, else the
/// connection is cut (a streamed body must not look complete). Returns the
/// operations still queued, for the caller to drop once it no longer
/// borrows the state (one may hold a handle, whose drop borrows it).
#[must_use = "drop them after the state's borrow ends"]
fn fail(st: &mut State, why: &str) -> VecDeque<Op> {
    log::error!("asynchronous response failed: {why}");
    give_up(&st.reply, st.phase);
    st.phase = Phase::Done;
    std::mem::take(&mut st.ops)
}

/// A 500 for an answer nothing of which was sent, else the stream cut
/// (no end: a streamed body must not look complete). The plain 500 page,
/// with no `set_default_headers` or `write_error`: after a panic the
/// handler's state is suspect, so none of its code runs (Tornado's
/// `send_error(500)` calls both; a deliberate difference).
fn give_up(reply: &PendingReply, phase: Phase) {
    match phase {
        Phase::Open => reply.respond(Response::error(500, None)),
        Phase::Streaming => reply.abort(),
        Phase::Done | Phase::Closed => {}
    }
}

/// Runs the queued operations, unless one is running already (it runs the
/// rest when it returns) or the method has not returned yet.
fn run(shared: &Shared) {
    loop {
        let (op, mut held, phase) = {
            let mut st = shared.0.borrow_mut();
            if matches!(st.phase, Phase::Done | Phase::Closed) {
                let dropped = std::mem::take(&mut st.ops);
                drop(st);
                drop(dropped);
                return;
            }
            if st.ops.is_empty() {
                return;
            }
            let Some(held) = st.held.take() else {
                return;
            };
            let op = st.ops.pop_front().expect("an op");
            (op, held, st.phase)
        };
        let reply = shared.0.borrow().reply.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            apply(shared, &mut held, &reply, phase, op)
        }));
        let mut st = shared.0.borrow_mut();
        let mut dropped = VecDeque::new();
        match outcome {
            // The connection may have closed meanwhile (`closed` ran from
            // a callback only, never inside an operation).
            Ok(next) if st.phase == phase => st.phase = next,
            Ok(_) => {}
            Err(p) => {
                let what = crate::ioloop::panic_message(&p);
                if let Some(lp) = crate::ioloop::IOLoop::existing() {
                    lp.count(crate::ioloop::Counter::HandlerPanics, 1);
                }
                dropped = fail(
                    &mut st,
                    &format!("the handler panicked on {}: {what}", held.request.uri()),
                );
            }
        }
        st.held = Some(held);
        drop(st);
        drop(dropped);
    }
}

/// One operation on the answer in `phase`; returns the phase after it.
fn apply(shared: &Shared, held: &mut Held, reply: &PendingReply, phase: Phase, op: Op) -> Phase {
    let Some(parts) = held.parts.take() else {
        return Phase::Done;
    };
    let Held {
        request,
        shared: app,
        handler,
        gzip,
        ..
    } = held;
    let mut cx = RequestContext::from_parts(request, app, parts, Some(shared.clone()));
    let finish = match op {
        Op::With(f) => {
            f(&mut cx);
            cx.is_finished()
        }
        Op::Flush => {
            flush(&mut cx, gzip, reply, phase);
            held.parts = Some(cx.into_parts().0);
            return Phase::Streaming;
        }
        Op::Finish => true,
        Op::Abort => {
            log::error!("the answer to {} was aborted", request.uri());
            give_up(reply, phase);
            return Phase::Done;
        }
    };
    if !finish {
        held.parts = Some(cx.into_parts().0);
        return phase;
    }
    let status = if phase == Phase::Streaming {
        if cx.response_mut().file_body_len() > 0 {
            log::error!(
                "write_file on {} after its head was sent: the file is not sent",
                request.uri()
            );
        }
        let last = cx.take_body();
        let mut bytes = transform(gzip, last);
        if let Some(gz) = gzip.as_mut() {
            let _ = gz.try_finish();
            bytes.append(gz.get_mut());
        }
        reply.write(&bytes);
        reply.end();
        cx.response_mut().status()
    } else {
        finish_response(&mut **handler.as_mut().expect("the handler"), &mut cx);
        let response = cx.into_response();
        let status = response.status();
        reply.respond(response);
        status
    };
    let mut handler = handler.take().expect("the handler");
    if reply.is_closed() {
        // The client went, and this answer learns it only now (the close
        // callback has not run yet): nothing is sent, and no connection
        // logs it. Tornado's `finish()` on a closed connection: the access
        // line, then `on_finish`.
        super::application::log_access(request, status, reply.elapsed());
        super::handler::run_on_finish(&mut *handler, status);
    } else {
        // Tornado's `finish()`: `on_finish` once the answer is queued and
        // logged, which the connection does when it takes it.
        reply.then(super::handler::on_finish_after(handler));
    }
    Phase::Done
}

/// Sends the head (first time) and the body written since the last flush.
fn flush(
    cx: &mut RequestContext<'_>,
    gzip: &mut Option<flate2::write::GzEncoder<Vec<u8>>>,
    reply: &PendingReply,
    phase: Phase,
) {
    if phase == Phase::Open && !cx.head_sent() {
        // A 1xx cannot be the final status, nor a 204 or 304 with a
        // body: the answer is the 500 page,
        // finished (later writes are ignored), not a 500 head the
        // connection would put before the handler's chunks.
        cx.refuse_unsendable_status();
        let settings = cx.settings();
        if settings.compress_response {
            let response = cx.response_mut();
            vary_on_accept_encoding(response);
            let ctype = response.header("Content-Type").unwrap_or("").to_string();
            let status = response.status();
            // Tornado gzips a streamed body whatever its length.
            if would_gzip(settings, cx.request(), &ctype, usize::MAX)
                && cx.response_mut().header("Content-Encoding").is_none()
                && !matches!(status, 204 | 304)
            {
                cx.response_mut()
                    .set_header_static("Content-Encoding", "gzip");
                // A length the handler announced was the uncompressed one
                // (Tornado's `transform_first_chunk` drops it too).
                cx.response_mut().clear_header("Content-Length");
                *gzip = Some(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(6),
                ));
            }
        }
        let mut head = cx.take_head();
        let body = std::mem::take(head.body_mut());
        *head.body_mut() = transform(gzip, body);
        reply.start(head);
    } else {
        let body = cx.take_body();
        let bytes = transform(gzip, body);
        reply.write(&bytes);
    }
}

/// `data` through the stream's gzip (sync-flushed, so the client can
/// inflate all of it now), or as it is.
fn transform(gzip: &mut Option<flate2::write::GzEncoder<Vec<u8>>>, data: Vec<u8>) -> Vec<u8> {
    let Some(gz) = gzip.as_mut() else {
        return data;
    };
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&data);
    let _ = gz.flush();
    std::mem::take(gz.get_mut())
}
