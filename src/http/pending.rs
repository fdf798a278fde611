//! A response finished after [`Service::dispatch`](super::Service::dispatch)
//! returned: Tornado's asynchronous handlers (`@asynchronous` in 4.3, a
//! coroutine `get` since), long polling, and responses streamed with
//! `flush()` (Server-Sent Events, a slow report written as it is made).
//!
//! The service answers [`Reply::Pending`](super::Reply::Pending) with a
//! [`PendingReply`] and keeps a clone. The connection waits for it:
//! requests pipelined behind this one stay buffered, no request or idle
//! timeout runs while nothing is queued (a long poll may wait minutes), and
//! a peer that closes the connection is noticed at once
//! ([`on_close`](PendingReply::on_close)). The clone then answers from
//! anywhere on the loop's thread (a timer, another connection's handler, a
//! task): [`respond`](PendingReply::respond) with a whole response, or
//! [`start`](PendingReply::start), [`write`](PendingReply::write) and
//! [`end`](PendingReply::end) for a streamed one (`Transfer-Encoding:
//! chunked` to HTTP/1.1, the body up to the close to HTTP/1.0, or as it is
//! within a `Content-Length` the head announces). Each call
//! asks the loop to flush the connection at the end of the tick, so many
//! writes in one callback leave in one `write`.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{AfterAnswer, Response, Upgrade};
use crate::ioloop::{ConnId, IOLoop};

/// The answer to one request, given later. Clones share it. Not `Send`: it
/// lives on the thread of the loop that serves the connection.
#[derive(Clone, Default)]
pub struct PendingReply(Rc<RefCell<State>>);

#[derive(Default)]
struct State {
    /// An upgrade not yet taken by the connection (a WebSocket handshake
    /// decided later: `ApplicationBuilder::websocket_async`).
    upgrade: Option<Box<dyn Upgrade>>,
    /// The connection waiting for this answer, once it took it.
    conn: Option<ConnId>,
    /// When the request started arriving, for the access line of an
    /// answer finished after the connection went.
    started: Option<Instant>,
    /// A response not yet taken by the connection: the whole answer, or
    /// (`streaming`) the head with the first part of the body.
    head: Option<Response>,
    streaming: bool,
    /// Body bytes written after the head, not yet taken by the connection.
    body: Vec<u8>,
    /// The answer is complete (`respond` or `end` was called).
    done: bool,
    /// The connection is gone (or was never there to take it).
    closed: bool,
    /// The answer failed after its head went out: the connection is cut
    /// after what was sent, so the client sees a truncated body.
    aborted: bool,
    /// Bytes the connection has queued and the peer has not taken yet.
    queued: usize,
    /// The connection is already asked to flush this tick: many writes in
    /// one callback ask once.
    woken: bool,
    on_close: Option<Box<dyn FnOnce()>>,
    /// Runs once the complete answer is queued and logged
    /// ([`then`](PendingReply::then)).
    after: Option<AfterAnswer>,
    /// The status of the answer's head, for `after` when the connection
    /// goes before taking the answer.
    status: u16,
    /// Tasks waiting for the queued bytes to reach the kernel
    /// ([`drained`](PendingReply::drained)).
    drain_wakers: Vec<std::task::Waker>,
}

/// What a connection takes from a [`PendingReply`] on a flush.
pub(crate) enum Taken {
    /// Nothing new.
    Nothing,
    /// The whole response.
    Whole(Response),
    /// The head of a streamed response (its body so far included), then
    /// maybe more body; `done` when it ended too.
    Head(Response, Vec<u8>, bool),
    /// More of a streamed body; `done` when it ended.
    Body(Vec<u8>, bool),
    /// The answer failed: close after what is queued, without ending it.
    Abort,
    /// Switch protocols: the connection is handed to this upgrade.
    Upgrade(Box<dyn Upgrade>),
}

impl PendingReply {
    /// A reply no connection waits for yet.
    pub fn new() -> PendingReply {
        PendingReply::default()
    }

    /// Answers with the whole `response` (its `Content-Length` framing, a
    /// file body too), unless the reply was started or answered already
    /// (then it is ignored and logged).
    pub fn respond(&self, response: Response) {
        self.first_answer("respond()", |st| {
            st.status = response.status();
            st.head = Some(response);
            st.done = true;
        });
    }

    /// The first answer (`call` names it): `set` puts it in the state and
    /// the connection is woken to take it, unless the reply was answered
    /// or started already (then it is ignored and logged).
    fn first_answer(&self, call: &str, set: impl FnOnce(&mut State)) {
        {
            let mut st = self.0.borrow_mut();
            if st.done || st.streaming {
                log::warn!("{call} ignored: this reply was already answered or started");
                return;
            }
            set(&mut st);
        }
        self.wake();
    }

    /// Answers with an upgrade (the 101 and the connection it becomes),
    /// unless the reply was started or answered already (then it is
    /// dropped and logged) or the connection is gone (then it is dropped).
    pub(crate) fn upgrade(&self, up: Box<dyn Upgrade>) {
        let mut unused = None;
        self.first_answer("upgrade", |st| {
            if st.closed {
                unused = Some(up);
            } else {
                st.upgrade = Some(up);
                st.done = true;
            }
        });
        // The connection is gone: the upgrade (its handler) is dropped
        // here, outside the borrow.
        drop(unused);
    }

    /// Sends `head` (status, headers and the body written so far) now, and
    /// streams what [`write`](Self::write) adds until [`end`](Self::end):
    /// `Transfer-Encoding: chunked` for an HTTP/1.1 request, the body up
    /// to the connection's close for HTTP/1.0. A valid `Content-Length` in
    /// `head` is kept instead and the body sent as it is (Tornado's
    /// `HTTP1Connection`): more bytes than it says are not sent, and
    /// fewer at the end, like more, close the connection short of the
    /// length, with an error logged and this reply closed, so the client
    /// never takes a wrong body for a whole one. A `Transfer-Encoding`
    /// header of `head` is replaced by the framing. Ignored (and logged)
    /// once started or answered.
    pub fn start(&self, head: Response) {
        self.first_answer("start()", |st| {
            st.status = head.status();
            st.head = Some(head);
            st.streaming = true;
        });
    }

    /// Appends to a started body (an empty `data` sends nothing). Before
    /// [`start`](Self::start), after [`end`](Self::end) or once the
    /// connection closed, the bytes are dropped.
    pub fn write(&self, data: &[u8]) {
        {
            let mut st = self.0.borrow_mut();
            if !st.streaming || st.done || st.closed || data.is_empty() {
                if !st.streaming || st.done {
                    log::warn!("write() ignored: the reply is not streaming");
                }
                return;
            }
            st.body.extend_from_slice(data);
        }
        self.wake();
    }

    /// Ends a started body (the last chunk). Answering without
    /// [`start`](Self::start) is [`respond`](Self::respond).
    pub fn end(&self) {
        {
            let mut st = self.0.borrow_mut();
            if !st.streaming || st.done {
                log::warn!("end() ignored: the reply is not streaming");
                return;
            }
            st.done = true;
        }
        self.wake();
    }

    /// Runs `after` once the answer is complete on the connection: the
    /// whole response (or the streamed body's end) queued for the peer
    /// and its access line logged, given the status sent. When the
    /// connection goes before taking the answer, `after` runs anyway
    /// (on the loop, as a callback) with the answer's status, nothing
    /// being sent: at once if it is gone already. Not on an aborted
    /// answer. A second `after` runs after the first.
    pub(crate) fn then(&self, after: AfterAnswer) {
        let mut st = self.0.borrow_mut();
        let after = match st.after.take() {
            Some(first) => Box::new(move |status| {
                first(status);
                after(status);
            }),
            None => after,
        };
        if !st.closed {
            st.after = Some(after);
            return;
        }
        let status = final_status(st.status);
        drop(st);
        after(status);
    }

    /// The status of a complete answer the connection has not taken (the
    /// whole response, or a streamed body's end), not aborted; `None`
    /// otherwise.
    pub(crate) fn untaken_status(&self) -> Option<u16> {
        let st = self.0.borrow();
        (st.done && !st.aborted && !st.closed && st.upgrade.is_none())
            .then(|| final_status(st.status))
    }

    /// The [`then`](Self::then) hook, for the connection to run once it
    /// queued and logged the complete answer.
    pub(crate) fn take_after(&self) -> Option<AfterAnswer> {
        self.0.borrow_mut().after.take()
    }

    /// Gives up on a reply: a 500 if nothing was sent yet; a started body
    /// is cut short (the connection closes after what it holds, with no
    /// last chunk, so the client cannot take it for complete).
    pub fn abort(&self) {
        {
            let mut st = self.0.borrow_mut();
            if st.done {
                return;
            }
            if !st.streaming {
                drop(st);
                self.respond(Response::error(500, None));
                return;
            }
            st.done = true;
            st.aborted = true;
        }
        self.wake();
    }

    /// Whether the connection closed before the reply was complete (the
    /// peer went away, the server shut down, the peer stopped reading for
    /// the idle timeout). What is sent then goes nowhere.
    pub fn is_closed(&self) -> bool {
        self.0.borrow().closed
    }

    /// Whether the reply is complete ([`respond`](Self::respond) or
    /// [`end`](Self::end) was called).
    pub fn is_done(&self) -> bool {
        self.0.borrow().done
    }

    /// Response bytes the connection holds that the peer has not taken
    /// yet, as of the last flush: a producer streaming faster than its
    /// client reads can wait while this is large (or await
    /// [`drained`](Self::drained)).
    pub fn queued_bytes(&self) -> usize {
        let st = self.0.borrow();
        st.queued + st.body.len()
    }

    /// A future that completes once everything written so far has reached
    /// the kernel (or the connection closed): what awaiting Tornado's
    /// `flush()` waits for. A task streaming a large answer awaits it
    /// between pieces, so it never holds more than a piece beyond what the
    /// client takes.
    pub fn drained(&self) -> Drained {
        Drained(self.clone())
    }

    fn is_drained(st: &State) -> bool {
        st.closed || (st.head.is_none() && st.body.is_empty() && st.queued == 0)
    }

    /// Runs `f` (on the loop, as a callback) when the connection closes
    /// before the reply is complete: Tornado's `on_connection_close`.
    /// Replaces an earlier `f`; runs at once (as a callback) if it closed
    /// already.
    pub fn on_close(&self, f: impl FnOnce() + 'static) {
        let mut st = self.0.borrow_mut();
        if !st.closed {
            st.on_close = Some(Box::new(f));
            return;
        }
        drop(st);
        if let Some(lp) = IOLoop::existing() {
            lp.add_callback(f);
        }
    }

    /// The connection `id` waits for this reply, to a request that
    /// started arriving at `started`.
    pub(crate) fn attach(&self, id: ConnId, started: Option<Instant>) {
        let mut st = self.0.borrow_mut();
        st.conn = Some(id);
        st.started = started;
    }

    /// The time since the request started arriving (zero if unknown), as
    /// an access line gives it.
    pub(crate) fn elapsed(&self) -> Duration {
        let started = self.0.borrow().started;
        match (started, IOLoop::existing()) {
            (Some(s), Some(lp)) => lp.time().saturating_duration_since(s),
            _ => Duration::ZERO,
        }
    }

    /// Asks the waiting connection's flush for the end of this tick.
    fn wake(&self) {
        let mut st = self.0.borrow_mut();
        if st.woken {
            return;
        }
        if let (Some(id), Some(lp)) = (st.conn, IOLoop::existing()) {
            st.woken = true;
            drop(st);
            lp.mark_dirty(id);
        }
    }

    /// What the connection has not taken yet.
    pub(crate) fn take(&self) -> Taken {
        let mut st = self.0.borrow_mut();
        st.woken = false;
        if st.aborted {
            st.head = None;
            st.body = Vec::new();
            return Taken::Abort;
        }
        if let Some(up) = st.upgrade.take() {
            return Taken::Upgrade(up);
        }
        let body = std::mem::take(&mut st.body);
        match st.head.take() {
            Some(head) if st.streaming => Taken::Head(head, body, st.done),
            Some(whole) => Taken::Whole(whole),
            None if st.streaming && (!body.is_empty() || st.done) => Taken::Body(body, st.done),
            None => Taken::Nothing,
        }
    }

    /// The connection has `n` bytes queued for the peer.
    pub(crate) fn set_queued(&self, n: usize) {
        let wakers = {
            let mut st = self.0.borrow_mut();
            st.queued = n;
            if st.drain_wakers.is_empty() || !Self::is_drained(&st) {
                return;
            }
            std::mem::take(&mut st.drain_wakers)
        };
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// The connection is gone: marks the reply closed and runs the close
    /// callback on the loop (not here, inside the loop's own bookkeeping).
    pub(crate) fn close(&self) {
        let f = {
            let mut st = self.0.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.conn = None;
            st.head = None;
            st.body = Vec::new();
            let status = if st.upgrade.is_some() {
                101
            } else {
                final_status(st.status)
            };
            (
                st.on_close.take(),
                std::mem::take(&mut st.drain_wakers),
                st.upgrade.take(),
                st.after.take().map(|after| (after, status)),
            )
        };
        // An upgrade never taken (its handler dropped) outside the borrow.
        let (f, wakers, _upgrade, after) = f;
        wakers.into_iter().for_each(std::task::Waker::wake);
        if let Some(lp) = IOLoop::existing() {
            if let Some(f) = f {
                lp.add_callback(f);
            }
            // A complete answer the connection did not take.
            if let Some((after, status)) = after {
                lp.add_callback(move || after(status));
            }
        }
    }
}

/// The status a connection sends for a final answer of `status`: a 1xx,
/// or a code past 599, is sent as 500 (see the server's `final_response`).
fn final_status(status: u16) -> u16 {
    if (200..=599).contains(&status) {
        status
    } else {
        500
    }
}

/// The future of [`PendingReply::drained`].
#[derive(Debug)]
pub struct Drained(PendingReply);

impl std::future::Future for Drained {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut st = (self.0).0.borrow_mut();
        if PendingReply::is_drained(&st) {
            return std::task::Poll::Ready(());
        }
        if !st.drain_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.drain_wakers.push(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

impl fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.0.borrow();
        f.debug_struct("PendingReply")
            .field("streaming", &st.streaming)
            .field("done", &st.done)
            .field("closed", &st.closed)
            .finish()
    }
}
