//! The IOLoop: a single-threaded reactor on mio (Tornado's `tornado.ioloop`).
//!
//! One loop per thread. [`IOLoop::current`] returns the thread's loop
//! (created on first use); [`IOLoop::start`] runs it until [`IOLoop::stop`].
//! Every API may be called from inside a callback, a timer, a future or a
//! connection handler: the loop never holds a borrow of its own state while
//! user code runs (connections are taken out of their slab slot while they
//! are served; writes aimed at a connection that is being served are
//! deferred until it is put back).
//!
//! ## One tick
//! As Tornado's `PollIOLoop.start`: run the callbacks queued before the tick,
//! run the timers that are due, sweep connection deadlines (about four times
//! a second), flush connections with queued output, `poll` with a timeout of
//! the earliest deadline (zero when work is pending), dispatch readiness,
//! poll woken futures, flush again.
//!
//! Connection deadlines (handshake, ping, close, idle) are not timers: each
//! connection exposes its next deadline and a periodic sweep compares them
//! (uWS's tick counters, PERF-NOTES §4), so nothing timer-related happens
//! per message.

mod conn_id;
mod executor;
mod handle;
mod metrics;
mod periodic;
mod timer;

pub use conn_id::ConnId;
pub use executor::{sleep, Sleep};
pub use handle::IOLoopHandle;
pub use metrics::{Counter, Metrics};
pub use periodic::PeriodicCallback;
pub use timer::TimeoutHandle;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use handle::Shared;
use timer::TimerQueue;

const WAKER_TOKEN: Token = Token(usize::MAX);
/// Loop-wide read buffer (PERF-NOTES §2: allocated and zeroed once).
pub(crate) const READ_BUF_SIZE: usize = 256 * 1024;
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Readiness reported for a registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Readable (or a pending accept).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// The peer closed its write half (`EPOLLRDHUP`/`EPOLLHUP`).
    pub read_closed: bool,
    /// The write half is closed.
    pub write_closed: bool,
    /// An error is pending on the socket.
    pub error: bool,
}

impl Readiness {
    fn from_event(ev: &mio::event::Event) -> Readiness {
        Readiness {
            readable: ev.is_readable(),
            writable: ev.is_writable(),
            read_closed: ev.is_read_closed(),
            write_closed: ev.is_write_closed(),
            error: ev.is_error(),
        }
    }

    /// Readiness used to resume a connection left on the "still readable" list.
    pub(crate) fn readable() -> Readiness {
        Readiness {
            readable: true,
            ..Readiness::default()
        }
    }
}

/// What a [`Pollable`] wants after being served.
pub enum Action {
    /// Keep it registered.
    Keep,
    /// Drop it (its socket closes; the slot and id are freed).
    Remove,
    /// Replace it in the same slot (same `ConnId`): an HTTP connection
    /// becoming a WebSocket.
    Replace(Box<dyn Pollable>),
}

/// Something the loop drives: listeners, HTTP and WebSocket connections,
/// user handlers from [`IOLoop::add_handler`].
///
/// Implementations live in the upper layers; the loop knows nothing of
/// HTTP or WebSocket.
pub trait Pollable: Any {
    /// Readiness arrived for this registration.
    fn ready(&mut self, lp: &IOLoop, id: ConnId, r: Readiness) -> Action;

    /// Called once per tick for registrations that asked to be flushed
    /// (writes queued from elsewhere): write queued output.
    fn flush(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        let _ = (lp, id);
        Action::Keep
    }

    /// The next deadline of this registration, checked by the sweep.
    fn deadline(&self, lp: &IOLoop) -> Option<Instant> {
        let _ = lp;
        None
    }

    /// A deadline from [`deadline`](Self::deadline) passed.
    fn on_deadline(&mut self, lp: &IOLoop, id: ConnId, now: Instant) -> Action {
        let _ = (lp, id, now);
        Action::Keep
    }

    /// Graceful shutdown was requested (see `Application::shutdown`).
    fn shutdown(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        let _ = (lp, id);
        Action::Keep
    }

    /// The shutdown grace ran out: drop now (a WebSocket runs `on_close`).
    fn abort(&mut self, lp: &IOLoop, id: ConnId) -> Action {
        let _ = (lp, id);
        Action::Remove
    }

    /// Removes the source from the poller before the registration is dropped
    /// by `remove_handler`.
    fn deregister(&mut self, registry: &Registry) {
        let _ = registry;
    }

    /// Bytes waiting to be written (for [`IOLoop::metrics`]' queued-bytes gauge).
    fn queued_bytes(&self) -> usize {
        0
    }

    /// Downcasting, for layers that address their own connection type by id.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

type Deferred = Box<dyn FnOnce(&mut dyn Pollable, &IOLoop, ConnId)>;

struct Slot {
    gen: u32,
    item: Option<Box<dyn Pollable>>,
}

pub(crate) struct Inner {
    poll: RefCell<Poll>,
    registry: Registry,
    slots: RefCell<Slab<Slot>>,
    gens: RefCell<Vec<u32>>,
    timers: RefCell<TimerQueue>,
    callbacks: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    shared: Arc<Shared>,
    tasks: RefCell<Slab<Option<executor::Task>>>,
    running: Cell<bool>,
    stopped: Cell<bool>,
    now: Cell<Instant>,
    epoch: Instant,
    clock_offset: Cell<Duration>,
    next_sweep: Cell<Instant>,
    dirty: RefCell<Vec<ConnId>>,
    still_readable: RefCell<Vec<ConnId>>,
    deferred: RefCell<Vec<(ConnId, Deferred)>>,
    read_buf: RefCell<Vec<u8>>,
    out_buf: RefCell<Vec<u8>>,
    events: RefCell<Option<Events>>,
    counters: metrics::Counters,
    ticks: Cell<u64>,
    local: RefCell<Vec<Box<dyn Any>>>,
    pending_removals: RefCell<Vec<ConnId>>,
    shutting_down: Cell<bool>,
    ready_local: RefCell<Vec<usize>>,
}

/// The event loop of this thread (Tornado's `IOLoop`). Cloning gives another
/// reference to the same loop.
#[derive(Clone)]
pub struct IOLoop {
    pub(crate) inner: Rc<Inner>,
}

thread_local! {
    static CURRENT: RefCell<Option<IOLoop>> = const { RefCell::new(None) };
}

impl IOLoop {
    /// The current thread's loop, created on first use.
    ///
    /// # Panics
    /// If the OS refuses an epoll instance or an eventfd (out of file
    /// descriptors); [`IOLoop::try_current`] returns the error instead.
    pub fn current() -> IOLoop {
        IOLoop::try_current().expect("cannot create the IOLoop (epoll/eventfd)")
    }

    /// The current thread's loop if it exists (never creates one; `None`
    /// during thread-local teardown too). For destructors.
    pub(crate) fn existing() -> Option<IOLoop> {
        CURRENT
            .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten()
    }

    /// The current thread's loop, created on first use.
    ///
    /// # Errors
    /// Creating the poller or its waker failed.
    pub fn try_current() -> io::Result<IOLoop> {
        CURRENT.with(|c| {
            if let Some(lp) = c.borrow().as_ref() {
                return Ok(lp.clone());
            }
            let lp = IOLoop::new()?;
            *c.borrow_mut() = Some(lp.clone());
            Ok(lp)
        })
    }

    fn new() -> io::Result<IOLoop> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let now = Instant::now();
        Ok(IOLoop {
            inner: Rc::new(Inner {
                poll: RefCell::new(poll),
                registry,
                slots: RefCell::new(Slab::new()),
                gens: RefCell::new(Vec::new()),
                timers: RefCell::new(TimerQueue::default()),
                callbacks: RefCell::new(VecDeque::new()),
                shared: Arc::new(Shared {
                    waker,
                    callbacks: Mutex::new(Vec::new()),
                    ready_tasks: Mutex::new(Vec::new()),
                    stop: Default::default(),
                    polling: Default::default(),
                    pending: Default::default(),
                }),
                tasks: RefCell::new(Slab::new()),
                running: Cell::new(false),
                stopped: Cell::new(false),
                now: Cell::new(now),
                epoch: now,
                clock_offset: Cell::new(Duration::ZERO),
                next_sweep: Cell::new(now + SWEEP_INTERVAL),
                dirty: RefCell::new(Vec::new()),
                still_readable: RefCell::new(Vec::new()),
                deferred: RefCell::new(Vec::new()),
                read_buf: RefCell::new(Vec::new()),
                out_buf: RefCell::new(Vec::new()),
                events: RefCell::new(Some(Events::with_capacity(1024))),
                counters: Default::default(),
                ticks: Cell::new(0),
                local: RefCell::new(Vec::new()),
                pending_removals: RefCell::new(Vec::new()),
                shutting_down: Cell::new(false),
                ready_local: RefCell::new(Vec::new()),
            }),
        })
    }

    /// A `Send` handle for other threads.
    pub fn handle(&self) -> IOLoopHandle {
        IOLoopHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// The loop's clock (Tornado's `IOLoop.time()`): refreshed once per
    /// tick, plus whatever [`advance_clock`](Self::advance_clock) added.
    pub fn time(&self) -> Instant {
        self.inner.now.get() + self.inner.clock_offset.get()
    }

    fn refresh_clock(&self) {
        self.inner.now.set(Instant::now());
    }

    /// The instant the loop was created (connections keep deadlines as
    /// small offsets from it).
    pub(crate) fn epoch(&self) -> Instant {
        self.inner.epoch
    }

    /// Moves the loop's clock forward by `d` (for tests: timers and
    /// connection deadlines see the new time at once).
    pub fn advance_clock(&self, d: Duration) {
        self.inner
            .clock_offset
            .set(self.inner.clock_offset.get() + d);
        self.inner.next_sweep.set(self.time());
    }

    // ---- callbacks and timers -------------------------------------------

    /// Runs `f` on the next iteration of the loop.
    pub fn add_callback(&self, f: impl FnOnce() + 'static) {
        self.inner.callbacks.borrow_mut().push_back(Box::new(f));
    }

    /// Runs `f` after `delay` (loop clock).
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimeoutHandle {
        self.call_at(self.time() + delay, f)
    }

    /// Runs `f` at `when` (loop clock).
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimeoutHandle {
        self.inner.timers.borrow_mut().insert(when, Box::new(f))
    }

    /// Cancels a timer; returns whether it had not fired yet.
    pub fn remove_timeout(&self, h: TimeoutHandle) -> bool {
        self.inner.timers.borrow_mut().cancel(h)
    }

    /// Timers still pending.
    pub fn pending_timeouts(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    // ---- running -----------------------------------------------------------

    /// Runs the loop until [`stop`](Self::stop) (or a handle's `stop`).
    ///
    /// # Panics
    /// If the loop is already running (a nested `start` from a callback).
    pub fn start(&self) {
        assert!(
            !self.inner.running.get(),
            "IOLoop::start called while the loop is running"
        );
        self.inner.stopped.set(false);
        self.inner.running.set(true);
        while !self.stop_requested() {
            if let Err(e) = self.tick(None) {
                log::error!("IOLoop poll failed: {e}");
                break;
            }
        }
        self.inner.running.set(false);
        self.inner.stopped.set(false);
        self.inner.shared.stop.store(false, Ordering::SeqCst);
    }

    fn stop_requested(&self) -> bool {
        self.inner.stopped.get() || self.inner.shared.stop.load(Ordering::SeqCst)
    }

    /// Stops the loop: `start()` returns after the current iteration.
    pub fn stop(&self) {
        self.inner.stopped.set(true);
    }

    /// Whether `start`/`run_sync` is running this loop.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Runs one iteration, waiting at most `timeout` for events (`None` =
    /// until something happens). For programs that embed the loop in their
    /// own main loop.
    ///
    /// # Errors
    /// `poll` failed.
    pub fn run_once(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tick(timeout)
    }

    fn tick(&self, max_wait: Option<Duration>) -> io::Result<()> {
        let inner = &self.inner;
        inner.ticks.set(inner.ticks.get() + 1);
        self.refresh_clock();
        self.drain_shared_callbacks();

        // Callbacks queued before this tick; new ones wait for the next.
        let n = inner.callbacks.borrow().len();
        for _ in 0..n {
            let cb = inner.callbacks.borrow_mut().pop_front();
            match cb {
                Some(cb) => cb(),
                None => break,
            }
        }
        // Due timers, earliest first.
        let now = self.time();
        loop {
            let cb = inner.timers.borrow_mut().pop_due(now);
            match cb {
                Some(cb) => cb(),
                None => break,
            }
        }
        if now >= inner.next_sweep.get() {
            inner.next_sweep.set(now + SWEEP_INTERVAL);
            self.sweep(now);
        }
        self.run_ready_tasks();
        self.flush_dirty();

        // How long may poll sleep?
        let busy = !inner.callbacks.borrow().is_empty()
            || !inner.still_readable.borrow().is_empty()
            || !inner.ready_local.borrow().is_empty()
            || self.stop_requested();
        let mut timeout = if busy {
            Some(Duration::ZERO)
        } else {
            let next_timer = inner.timers.borrow_mut().next_deadline();
            let sweep = if inner.slots.borrow().is_empty() {
                None
            } else {
                Some(inner.next_sweep.get())
            };
            let deadline = match (next_timer, sweep) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            deadline.map(|d| d.saturating_duration_since(self.time()))
        };
        if let Some(m) = max_wait {
            timeout = Some(timeout.map_or(m, |t| t.min(m)));
        }
        inner.shared.polling.store(true, Ordering::SeqCst);
        if inner.shared.pending.load(Ordering::SeqCst) {
            timeout = Some(Duration::ZERO);
        }
        let mut events = inner
            .events
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        let res = inner.poll.borrow_mut().poll(&mut events, timeout);
        inner.shared.polling.store(false, Ordering::SeqCst);
        if let Err(e) = res {
            inner.events.borrow_mut().replace(events);
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        self.refresh_clock();
        for ev in events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            let id = ConnId::from_token(ev.token());
            self.dispatch(id, Readiness::from_event(ev));
        }
        inner.events.borrow_mut().replace(events);
        // Connections whose read was capped by their budget last time.
        let again = std::mem::take(&mut *inner.still_readable.borrow_mut());
        for id in again {
            self.dispatch(id, Readiness::readable());
        }
        self.drain_shared_callbacks();
        self.run_ready_tasks();
        self.flush_dirty();
        Ok(())
    }

    pub(crate) fn drain_shared_callbacks(&self) {
        let shared = &self.inner.shared;
        if !shared.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let cbs = std::mem::take(&mut *shared.callbacks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut q = self.inner.callbacks.borrow_mut();
        for cb in cbs {
            q.push_back(cb);
        }
        drop(q);
        let ready =
            std::mem::take(&mut *shared.ready_tasks.lock().unwrap_or_else(|e| e.into_inner()));
        if !ready.is_empty() {
            self.inner.pending_ready().extend(ready);
        }
    }

    // ---- registrations -----------------------------------------------------

    /// Inserts a registration built by `make` (which receives its id) and
    /// registers `source` for it. Used by listeners and connections.
    pub(crate) fn insert(&self, make: impl FnOnce(ConnId) -> Box<dyn Pollable>) -> ConnId {
        let mut slots = self.inner.slots.borrow_mut();
        let entry = slots.vacant_entry();
        let key = entry.key();
        let mut gens = self.inner.gens.borrow_mut();
        if gens.len() <= key {
            gens.resize(key + 1, 0);
        }
        gens[key] = gens[key].wrapping_add(1);
        let id = ConnId::new(key, gens[key]);
        entry.insert(Slot {
            gen: id.gen,
            item: None,
        });
        drop(gens);
        drop(slots);
        let item = make(id);
        if let Some(slot) = self.inner.slots.borrow_mut().get_mut(key) {
            slot.item = Some(item);
        }
        id
    }

    /// Registers `source` with the poller under `id`.
    pub(crate) fn register(
        &self,
        source: &mut impl Source,
        id: ConnId,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.registry.register(source, id.token(), interest)
    }

    /// Removes a registration without running it (used when a `make` failed).
    pub(crate) fn remove(&self, id: ConnId) -> Option<Box<dyn Pollable>> {
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get(id.key()) {
            Some(s) if s.gen == id.gen => slots.remove(id.key()).item,
            _ => None,
        }
    }

    /// Whether `id` still names a live registration (false for a stale id).
    pub fn contains(&self, id: ConnId) -> bool {
        matches!(self.inner.slots.borrow().get(id.key()), Some(s) if s.gen == id.gen)
    }

    /// Number of live registrations.
    pub fn registrations(&self) -> usize {
        self.inner.slots.borrow().len()
    }

    /// Takes the item out of its slot (the slot stays, marked busy).
    fn take(&self, id: ConnId) -> Option<Box<dyn Pollable>> {
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get_mut(id.key()) {
            Some(s) if s.gen == id.gen => s.item.take(),
            _ => None,
        }
    }

    /// Puts an item back after it was served, applying its action and any
    /// operations deferred while it was out.
    fn put_back(&self, id: ConnId, mut item: Box<dyn Pollable>, action: Action) {
        let mut action = action;
        loop {
            {
                let mut rm = self.inner.pending_removals.borrow_mut();
                if let Some(i) = rm.iter().position(|r| *r == id) {
                    rm.swap_remove(i);
                    action = Action::Remove;
                }
            }
            match action {
                Action::Keep => {}
                Action::Replace(new) => item = new,
                Action::Remove => {
                    let mut slots = self.inner.slots.borrow_mut();
                    if matches!(slots.get(id.key()), Some(s) if s.gen == id.gen) {
                        slots.remove(id.key());
                    }
                    drop(slots);
                    self.inner.deferred.borrow_mut().retain(|(d, _)| *d != id);
                    drop(item);
                    return;
                }
            }
            // Apply deferred operations aimed at this id.
            let pending: Vec<Deferred> = {
                let mut d = self.inner.deferred.borrow_mut();
                if d.is_empty() {
                    Vec::new()
                } else {
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while i < d.len() {
                        if d[i].0 == id {
                            mine.push(d.remove(i).1);
                        } else {
                            i += 1;
                        }
                    }
                    mine
                }
            };
            if pending.is_empty() {
                break;
            }
            for f in pending {
                f(item.as_mut(), self, id);
            }
            action = Action::Keep;
        }
        let mut slots = self.inner.slots.borrow_mut();
        match slots.get_mut(id.key()) {
            Some(s) if s.gen == id.gen => s.item = Some(item),
            _ => {}
        }
    }

    /// Serves `id` right now as if `r` had been reported by the poller.
    pub(crate) fn serve_now(&self, id: ConnId, r: Readiness) {
        self.dispatch(id, r)
    }

    fn dispatch(&self, id: ConnId, r: Readiness) {
        if let Some(mut item) = self.take(id) {
            let action = item.ready(self, id, r);
            self.put_back(id, item, action);
        }
    }

    /// Runs `f` on the registration `id` (now, or — if it is being served
    /// right now — as soon as it is put back). Returns false for a stale id.
    /// `f` must not run user code; it queues data and marks the id dirty.
    pub(crate) fn with_conn(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable, &IOLoop, ConnId) + 'static,
    ) -> bool {
        let busy = {
            let slots = self.inner.slots.borrow();
            match slots.get(id.key()) {
                Some(s) if s.gen == id.gen => s.item.is_none(),
                _ => return false,
            }
        };
        if busy {
            self.inner.deferred.borrow_mut().push((id, Box::new(f)));
            return true;
        }
        if let Some(mut item) = self.take(id) {
            f(item.as_mut(), self, id);
            self.put_back(id, item, Action::Keep);
        }
        true
    }

    /// Serves `id` with `f` (which may run user code and decides the
    /// registration's fate), now if it is idle or when it is put back.
    pub(crate) fn with_conn_serve(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable, &IOLoop, ConnId) -> Action + 'static,
    ) -> bool {
        match self.take(id) {
            Some(mut item) => {
                let action = f(item.as_mut(), self, id);
                self.put_back(id, item, action);
                true
            }
            None => self.with_conn(id, move |p, lp, id| {
                if let Action::Remove = f(p, lp, id) {
                    lp.inner.pending_removals.borrow_mut().push(id);
                }
            }),
        }
    }

    /// Runs `f` on the registration `id` right now if it is idle (not being
    /// served), returning its result; `None` for a stale or busy id.
    pub(crate) fn with_conn_now<R>(
        &self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Pollable) -> R,
    ) -> Option<R> {
        let mut item = self.take(id)?;
        let r = f(item.as_mut());
        self.put_back(id, item, Action::Keep);
        Some(r)
    }

    /// Asks for `id`'s [`Pollable::flush`] at the end of this tick.
    pub(crate) fn mark_dirty(&self, id: ConnId) {
        self.inner.dirty.borrow_mut().push(id);
    }

    /// Asks for another `ready(readable)` for `id` next tick (its read budget
    /// ran out; edge-triggered readiness will not repeat).
    pub(crate) fn mark_readable(&self, id: ConnId) {
        self.inner.still_readable.borrow_mut().push(id);
    }

    fn flush_dirty(&self) {
        loop {
            let dirty = std::mem::take(&mut *self.inner.dirty.borrow_mut());
            if dirty.is_empty() {
                return;
            }
            for id in dirty {
                if let Some(mut item) = self.take(id) {
                    let action = item.flush(self, id);
                    self.put_back(id, item, action);
                }
            }
        }
    }

    fn sweep(&self, now: Instant) {
        let due: Vec<ConnId> = self
            .inner
            .slots
            .borrow()
            .iter()
            .filter_map(|(key, s)| {
                let d = s.item.as_ref()?.deadline(self)?;
                (d <= now).then_some(ConnId::new(key, s.gen))
            })
            .collect();
        for id in due {
            if let Some(mut item) = self.take(id) {
                let action = item.on_deadline(self, id, now);
                self.put_back(id, item, action);
            }
        }
    }

    /// The ids of every live registration.
    fn all_ids(&self) -> Vec<ConnId> {
        self.inner
            .slots
            .borrow()
            .iter()
            .map(|(k, s)| ConnId::new(k, s.gen))
            .collect()
    }

    /// Calls [`Pollable::shutdown`] on every registration (graceful shutdown;
    /// see [`crate::shutdown`]). A registration being served right now
    /// (shutdown called from its own handler) is shut down as soon as it is
    /// put back.
    pub fn shutdown_all(&self) {
        for id in self.all_ids() {
            self.with_conn_serve(id, |p, lp, id| p.shutdown(lp, id));
        }
    }

    /// Drops every registration now ([`Pollable::abort`]): the end of a
    /// graceful shutdown whose grace ran out.
    pub fn abort_all(&self) {
        for id in self.all_ids() {
            self.with_conn_serve(id, |p, lp, id| p.abort(lp, id));
        }
    }

    // ---- user handlers (Tornado's add_handler) ---------------------------

    /// Registers any mio [`Source`] and calls `callback` with it on each
    /// readiness event (Tornado's `add_handler(fd, handler, events)`).
    ///
    /// # Errors
    /// Registration with the poller failed.
    ///
    /// # Panics
    /// Never in practice: the registration just inserted is looked up by its own id and type.
    pub fn add_handler<S, F>(
        &self,
        source: S,
        interest: Interest,
        callback: F,
    ) -> io::Result<ConnId>
    where
        S: Source + 'static,
        F: FnMut(&mut S, Readiness) + 'static,
    {
        let mut entry = Some(Box::new(UserHandler { source, callback }));
        let id =
            self.insert(|_| entry.take().unwrap_or_else(|| unreachable!()) as Box<dyn Pollable>);
        let res = self.with_conn_now(id, |p| {
            let h = p
                .as_any_mut()
                .downcast_mut::<UserHandler<S, F>>()
                .expect("user handler type");
            self.inner
                .registry
                .register(&mut h.source, id.token(), interest)
        });
        match res {
            Some(Ok(())) => Ok(id),
            Some(Err(e)) => {
                self.remove(id);
                Err(e)
            }
            None => Err(io::Error::other("handler vanished")),
        }
    }

    /// Deregisters and drops a handler added with [`add_handler`](Self::add_handler)
    /// (or any registration). Returns false for a stale id. Safe to call from
    /// inside that handler's own callback.
    pub fn remove_handler(&self, id: ConnId) -> bool {
        if !self.contains(id) {
            return false;
        }
        match self.take(id) {
            Some(mut item) => {
                item.deregister(&self.inner.registry);
                self.put_back(id, item, Action::Remove);
            }
            // Being served right now (called from its own callback): removed
            // when it is put back.
            None => {
                self.with_conn(id, |p, lp, _| p.deregister(&lp.inner.registry));
                self.inner.pending_removals.borrow_mut().push(id);
            }
        }
        true
    }

    // ---- loop-wide buffers -------------------------------------------------

    /// Takes the loop-wide read buffer (allocated and zeroed once).
    pub(crate) fn take_read_buf(&self) -> Vec<u8> {
        let mut b = std::mem::take(&mut *self.inner.read_buf.borrow_mut());
        if b.len() < READ_BUF_SIZE {
            b = vec![0; READ_BUF_SIZE];
        }
        b
    }

    /// Returns the loop-wide read buffer.
    pub(crate) fn give_read_buf(&self, b: Vec<u8>) {
        *self.inner.read_buf.borrow_mut() = b;
    }

    /// Takes the loop-wide output buffer (empty, with capacity kept).
    pub(crate) fn take_out_buf(&self) -> Vec<u8> {
        std::mem::take(&mut *self.inner.out_buf.borrow_mut())
    }

    /// Returns the loop-wide output buffer (cleared; oversized ones shrink).
    pub(crate) fn give_out_buf(&self, mut b: Vec<u8>) {
        b.clear();
        if b.capacity() > 1024 * 1024 {
            b.shrink_to(64 * 1024);
        }
        *self.inner.out_buf.borrow_mut() = b;
    }

    // ---- metrics and loop-local state --------------------------------------

    /// Adds `n` to a counter.
    #[inline]
    pub fn count(&self, c: Counter, n: u64) {
        self.inner.counters.add(c, n);
    }

    /// A snapshot of the loop's counters (cheap: a few dozen loads).
    pub fn metrics(&self) -> Metrics {
        metrics::snapshot(
            &self.inner.counters,
            self.registrations(),
            self.inner.ticks.get(),
            self.queued_bytes(),
        )
    }

    /// Bytes queued on registrations that are not being served right now.
    fn queued_bytes(&self) -> u64 {
        let slots = self.inner.slots.borrow();
        slots
            .iter()
            .filter_map(|(_, s)| s.item.as_ref())
            .map(|p| p.queued_bytes() as u64)
            .sum()
    }

    /// Whether a graceful shutdown is in progress (checked on every accept
    /// and request, so a plain flag rather than a loop-local lookup).
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.get()
    }

    pub(crate) fn set_shutting_down(&self, on: bool) {
        self.inner.shutting_down.set(on);
    }

    /// Loop-local singleton of type `T` (created with `Default` on first use).
    pub(crate) fn local<T: Any + Default + Clone>(&self) -> T {
        let mut l = self.inner.local.borrow_mut();
        for b in l.iter() {
            if let Some(t) = b.downcast_ref::<T>() {
                return t.clone();
            }
        }
        let t = T::default();
        l.push(Box::new(t.clone()));
        t
    }
}

impl Inner {
    fn pending_ready(&self) -> std::cell::RefMut<'_, Vec<usize>> {
        self.ready_local.borrow_mut()
    }
}

struct UserHandler<S, F> {
    source: S,
    callback: F,
}

impl<S: Source + 'static, F: FnMut(&mut S, Readiness) + 'static> Pollable for UserHandler<S, F> {
    fn ready(&mut self, _lp: &IOLoop, _id: ConnId, r: Readiness) -> Action {
        (self.callback)(&mut self.source, r);
        Action::Keep
    }

    fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.source);
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Runs `future` on the current thread's loop (Tornado's `IOLoop.spawn_callback`
/// for coroutines).
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    IOLoop::current().spawn(future)
}
