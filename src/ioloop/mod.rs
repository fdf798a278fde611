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
//! run the timers that are due and were set before the tick (what those
//! callbacks set waits for the next one, as in Tornado 6 on asyncio), sweep
//! connection deadlines (four times a second, or more often for connections
//! with short timeouts: see `WebSocketSettings`), flush connections with queued output, `poll` with
//! a timeout of the earliest deadline (zero when work is pending), dispatch
//! readiness, poll woken futures, flush again.
//!
//! Futures are polled in the tasks' phase, not among the callbacks: a task
//! woken by a callback or a timer (an [`Event`](crate::locks::Event) set,
//! a [`Queue`](crate::queues::Queue) put) runs later in the same
//! iteration, ahead of the callbacks queued around its wake-up, where
//! Tornado queues the coroutine's resumption behind the callbacks already
//! queued (Tornado: `go, cbA, task, cbB` for a timer that queues `cbA`,
//! wakes the task, queues `cbB`; cyclone: `go, task, cbA, cbB`). This is
//! deliberate: a wake-up is a push onto the ready list, not a boxed
//! callback.
//!
//! ## Panics in user code
//! As Tornado logs "Exception in callback ..." and goes on, a panic in a
//! callback ([`IOLoop::add_callback`], also from another thread through
//! [`IOLoopHandle::add_callback`]), a timer ([`IOLoop::call_later`],
//! [`IOLoop::call_at`]), a [`PeriodicCallback`] tick, a spawned task
//! ([`IOLoop::spawn`]), an [`IOLoop::add_handler`] callback or a signal
//! callback is caught where the loop calls it, logged at error level as
//! `<what> panicked: <message>` (e.g. `IOLoop timer callback panicked:
//! boom`) and counted in [`Counter::CallbackPanics`]; the loop goes on
//! with the next one.
//! Connection handlers catch their own panics (their connection closes
//! with 1011, counted in [`Counter::HandlerPanics`]). Only the future given
//! to [`IOLoop::run_sync`] is different: it is the caller's own work, so
//! its panic reaches `run_sync`'s caller (Tornado re-raises there too).
//!
//! Connection deadlines (handshake, ping, close, idle) are not timers: each
//! connection exposes its next deadline and a periodic sweep compares them
//! (uWS's tick counters, PERF-NOTES §4), so nothing timer-related happens
//! per message.

mod blocking;
mod conn_id;
mod executor;
mod handle;
mod metrics;
mod periodic;
mod pollable;
mod signals;
mod slots;
mod thread_pool;
mod timer;
mod warn;

pub(crate) use warn::warn_limited;

pub use conn_id::ConnId;
pub use executor::{multi, sleep, with_timeout, Multi, Sleep, TimeoutError, WithTimeout};
pub use handle::IOLoopHandle;
pub use metrics::{Counter, Metrics};
pub use periodic::PeriodicCallback;
pub use pollable::{Action, Pollable, Readiness};
pub use thread_pool::{InExecutor, ShutdownError, ThreadPool};
pub use timer::TimeoutHandle;

use blocking::Phase;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token};
use slab::Slab;

use handle::Shared;
use timer::TimerQueue;

const WAKER_TOKEN: Token = Token(usize::MAX);
/// Loop-wide read buffer (PERF-NOTES §2: allocated and zeroed once).
pub(crate) const READ_BUF_SIZE: usize = 256 * 1024;
/// Spill buffers the loop keeps for reuse, and the largest one it keeps.
pub(crate) const SPILL_POOL_BUFS: usize = 16;
pub(crate) const SPILL_POOL_MAX: usize = 1024 * 1024;
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest sweep interval a connection can ask for
/// ([`IOLoop::sweep_within`]).
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(2);

type Deferred = Box<dyn FnOnce(&mut dyn Pollable, &IOLoop, ConnId)>;

/// How often to sweep for deadlines `span` apart: an eighth of it, from
/// [`MIN_SWEEP_INTERVAL`] to [`SWEEP_INTERVAL`].
fn sweep_interval_for(span: Duration) -> Duration {
    (span / 8).clamp(MIN_SWEEP_INTERVAL, SWEEP_INTERVAL)
}

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
    /// Time between sweeps: [`SWEEP_INTERVAL`], or less while a connection
    /// with short timeouts is registered ([`IOLoop::sweep_within`]).
    sweep_interval: Cell<Duration>,
    dirty: RefCell<Vec<ConnId>>,
    still_readable: RefCell<Vec<ConnId>>,
    deferred: RefCell<Vec<(ConnId, Deferred)>>,
    read_buf: RefCell<Vec<u8>>,
    out_buf: RefCell<Vec<u8>>,
    spill_pool: RefCell<Vec<Vec<u8>>>,
    cork: RefCell<crate::websocket::Cork>,
    events: RefCell<Option<Events>>,
    counters: metrics::Counters,
    ticks: Cell<u64>,
    local: RefCell<Vec<Box<dyn Any>>>,
    pending_removals: RefCell<Vec<ConnId>>,
    /// `add_handler`s whose descriptor was still registered by a handler
    /// that removed itself from its own callback: registered once that one
    /// is put back.
    waiting_registrations: RefCell<Vec<ConnId>>,
    shutting_down: Cell<bool>,
    ready_local: RefCell<Vec<usize>>,
    signals: RefCell<Option<signals::Signals>>,
    /// `run_in_executor`'s pool, started at its first use.
    executor: RefCell<Option<ThreadPool>>,
}

/// The event loop of this thread (Tornado's `IOLoop`). Cloning gives another
/// reference to the same loop.
#[derive(Clone)]
pub struct IOLoop {
    pub(crate) inner: Rc<Inner>,
}

/// The thread's loop; when the thread ends, its handles refuse callbacks
/// and what the loop holds is dropped ([`IOLoop::release`]), even when the
/// loop itself lives on in a reference cycle (a timer, task or signal
/// callback that captured a clone of it).
struct Current(RefCell<Option<IOLoop>>);

impl Drop for Current {
    fn drop(&mut self) {
        if let Some(lp) = self.0.get_mut().as_ref() {
            lp.inner.shared.close();
            lp.release();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

thread_local! {
    static CURRENT: Current = const { Current(RefCell::new(None)) };
}

impl IOLoop {
    /// The current thread's loop, created on first use. Also Tornado's
    /// `IOLoop.instance()` (seed 004's `IOLoop.instance().start()`): there
    /// is no process-wide loop, one per thread.
    ///
    /// In a job on a [`ThreadPool`] thread ([`run_in_executor`]), this is
    /// a loop of that thread, not the loop that submitted the job, and it
    /// lasts for the job only: a job may run it (`run_sync`, say for a
    /// client of its own), but a callback, timer or task left on it when
    /// the job returns would never run, so it is dropped with a warning
    /// (as Tornado, which makes such a loop too, loses it silently). To
    /// hand work back to the submitting loop, capture its
    /// [`handle`](Self::handle) before submitting, or return the value.
    ///
    /// [`run_in_executor`]: Self::run_in_executor
    ///
    /// # Panics
    /// If the OS refuses an epoll instance or an eventfd (out of file
    /// descriptors), or if called from a thread-local's destructor that
    /// runs after the thread's loop was dropped (thread-locals drop in the
    /// reverse order of their first use on Linux: a value first used
    /// before the loop is dropped after it), where a panic aborts the
    /// process. [`IOLoop::try_current`] returns the error instead; the
    /// library's calls a destructor may make ([`PeriodicCallback::stop`],
    /// a client connection's `close`, `terminate`, `write_message`,
    /// `ping` or `read_message_then`, `websocket::close_connection`,
    /// `write_to`, `broadcast` and
    /// `publish`, [`shutdown`](crate::shutdown), `AsyncResponse::on_close`,
    /// a dropped future, the `websocket_connect` functions) find nothing
    /// left there and do nothing, or say so (false, 0, the closed error,
    /// `ConnectError::Io`; a callback that would run on the loop, as
    /// `read_message_then`'s or `websocket_connect_then`'s, is dropped
    /// uncalled).
    #[doc(alias = "instance")]
    pub fn current() -> IOLoop {
        IOLoop::try_current().expect("cannot create the IOLoop (epoll/eventfd)")
    }

    /// Called on a [`ThreadPool`] thread after each job: the loop the job
    /// made there with [`IOLoop::current`] (if it did) is taken out of the
    /// thread and dropped, so that the next job starts without it. Nothing
    /// runs that loop but the job itself (`run_sync`), so a callback,
    /// timer, task or registration still on it is work nobody will do:
    /// usually meant for the loop that submitted the job (Tornado's
    /// `IOLoop.current()` on an executor thread makes the same mistake
    /// silent). That is logged as a warning, then dropped.
    pub(crate) fn end_pool_job() {
        let taken = CURRENT
            .try_with(|c| c.0.try_borrow_mut().ok().and_then(|mut c| c.take()))
            .ok()
            .flatten();
        let Some(lp) = taken else { return };
        let left = lp.unrun_work();
        if left > 0 {
            log::warn!(
                "IOLoop::current() on a pool thread: a run_in_executor job left {left} \
                 callback(s), timer(s), task(s) or registration(s) on that thread's own \
                 loop, which nothing runs; dropped. To reach the loop that submitted \
                 the job, capture its IOLoop::handle() before run_in_executor"
            );
        }
        lp.inner.shared.close();
        lp.release();
    }

    /// Callbacks, timers, tasks and registrations the loop holds: what a
    /// run would still do (or wait for).
    fn unrun_work(&self) -> usize {
        let inner = &self.inner;
        let from_handles = inner
            .shared
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        inner.callbacks.borrow().len()
            + inner.timers.borrow().len()
            + inner.tasks.borrow().len()
            + inner.slots.borrow().len()
            + from_handles
    }

    /// The current thread's loop if it exists (never creates one; `None`
    /// during thread-local teardown too). For destructors.
    pub(crate) fn existing() -> Option<IOLoop> {
        CURRENT
            .try_with(|c| c.0.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten()
    }

    /// [`current`](Self::current) (created on first use, and the same
    /// panic if that fails), or `None` once the thread's loop was dropped
    /// at thread exit (called from a thread-local's destructor): for the
    /// calls that make the loop when there is none yet, safe in a
    /// destructor.
    pub(crate) fn current_unless_gone() -> Option<IOLoop> {
        CURRENT.try_with(|_| ()).ok()?;
        Some(IOLoop::current())
    }

    /// The current thread's loop, created on first use.
    ///
    /// # Errors
    /// Creating the poller or its waker failed; or the thread is ending
    /// and its loop was dropped already (called from a thread-local's
    /// destructor that runs after the loop's): what the loop held was
    /// dropped with it, and no new loop is made for a thread whose
    /// storage is being torn down.
    pub fn try_current() -> io::Result<IOLoop> {
        CURRENT
            .try_with(|c| {
                if let Some(lp) = c.0.borrow().as_ref() {
                    return Ok(lp.clone());
                }
                let lp = IOLoop::new()?;
                *c.0.borrow_mut() = Some(lp.clone());
                Ok(lp)
            })
            .unwrap_or_else(|_| {
                Err(io::Error::other(
                    "the thread's IOLoop was dropped: its thread-locals are being destroyed",
                ))
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
                    closed: Default::default(),
                    progress: Default::default(),
                }),
                tasks: RefCell::new(Slab::new()),
                running: Cell::new(false),
                stopped: Cell::new(false),
                now: Cell::new(now),
                epoch: now,
                clock_offset: Cell::new(Duration::ZERO),
                next_sweep: Cell::new(now + SWEEP_INTERVAL),
                sweep_interval: Cell::new(SWEEP_INTERVAL),
                dirty: RefCell::new(Vec::new()),
                still_readable: RefCell::new(Vec::new()),
                deferred: RefCell::new(Vec::new()),
                read_buf: RefCell::new(Vec::new()),
                out_buf: RefCell::new(Vec::new()),
                spill_pool: RefCell::new(Vec::new()),
                cork: RefCell::default(),
                events: RefCell::new(Some(Events::with_capacity(1024))),
                counters: Default::default(),
                ticks: Cell::new(0),
                local: RefCell::new(Vec::new()),
                pending_removals: RefCell::new(Vec::new()),
                waiting_registrations: RefCell::new(Vec::new()),
                shutting_down: Cell::new(false),
                ready_local: RefCell::new(Vec::new()),
                signals: RefCell::new(None),
                executor: RefCell::new(None),
            }),
        })
    }

    /// Drops everything the loop holds: registrations (listeners and
    /// connections close), timers, callbacks, tasks, signal handlers (the
    /// signals' default actions come back), the executor and loop-local
    /// state. Called as the loop's thread ends: nothing runs the loop any
    /// more, and a callback that captured a clone of the loop (a timer
    /// that stops it, a signal handler that calls `lp.stop()`) would
    /// otherwise keep it, and with it every descriptor it holds, alive
    /// forever: a `SO_REUSEPORT` listener of a stopped worker would go on
    /// taking its share of new connections, never accepted, and a handled
    /// SIGINT would be swallowed. Dropping these breaks such cycles; what
    /// their drops queue is dropped in turn. A panic in a drop is caught
    /// and logged (it would abort in a thread-local destructor).
    fn release(&self) {
        let inner = &self.inner;
        for _ in 0..16 {
            let slots = std::mem::take(&mut *inner.slots.borrow_mut());
            let tasks = std::mem::take(&mut *inner.tasks.borrow_mut());
            let timers = std::mem::take(&mut *inner.timers.borrow_mut());
            let callbacks = std::mem::take(&mut *inner.callbacks.borrow_mut());
            let deferred = std::mem::take(&mut *inner.deferred.borrow_mut());
            let signals = inner.signals.borrow_mut().take();
            let executor = inner.executor.borrow_mut().take();
            let local = std::mem::take(&mut *inner.local.borrow_mut());
            let empty = slots.is_empty()
                && tasks.is_empty()
                && timers.len() == 0
                && callbacks.is_empty()
                && deferred.is_empty()
                && signals.is_none()
                && executor.is_none()
                && local.is_empty();
            // No borrow is held: what these drop may touch the loop.
            self.guard(Kind::Release, move || drop(slots));
            self.guard(Kind::Release, move || drop(tasks));
            self.guard(Kind::Release, move || drop(timers));
            self.guard(Kind::Release, move || drop(callbacks));
            self.guard(Kind::Release, move || drop(deferred));
            self.guard(Kind::Release, move || drop(signals));
            self.guard(Kind::Release, move || drop(executor));
            self.guard(Kind::Release, move || drop(local));
            if empty {
                break;
            }
        }
    }

    /// A `Send` handle for other threads.
    pub fn handle(&self) -> IOLoopHandle {
        IOLoopHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// The loop's clock (Tornado's `IOLoop.time()`): the monotonic clock
    /// read now, plus whatever [`advance_clock`](Self::advance_clock) added.
    /// Read fresh on every call (a vDSO read, tens of nanoseconds), so a
    /// deadline set after slow work in a callback or handler counts from
    /// when it was set, not from the start of the tick.
    pub fn time(&self) -> Instant {
        self.refresh_clock();
        self.inner.now.get() + self.inner.clock_offset.get()
    }

    /// The clock as last read (by this tick or the last [`time`](Self::time)),
    /// without reading it again: for the deadline sweep, which asks every
    /// connection for its next deadline and wants one consistent "now".
    pub(crate) fn cached_time(&self) -> Instant {
        self.inner.now.get() + self.inner.clock_offset.get()
    }

    fn refresh_clock(&self) {
        self.inner.now.set(Instant::now());
    }

    /// `time() + d`, or a time about a century away when that does not fit
    /// in an `Instant` (`Duration::MAX` means "never", as Tornado's
    /// `timeout=None`; the poller caps its own sleep).
    pub(crate) fn deadline_after(&self, d: Duration) -> Instant {
        deadline_after(self.time(), d)
    }

    /// The instant the loop was created (connections keep deadlines as
    /// small offsets from it).
    pub(crate) fn epoch(&self) -> Instant {
        self.inner.epoch
    }

    /// Connection deadlines are checked by the sweep, so one can be late by
    /// up to a sweep interval (250 ms). A connection whose deadlines are
    /// `span` apart (its shortest ping interval or timeout) calls this so
    /// that they are late by at most about an eighth of `span` (never less
    /// than 2 ms): the loop sweeps that often while a registration's
    /// [`Pollable::sweep_span`] asks for it, then goes back to 250 ms. With
    /// Tornado's defaults (close timeout 5 s, no ping) nothing changes.
    pub(crate) fn sweep_within(&self, span: Duration) {
        let want = sweep_interval_for(span);
        let inner = &self.inner;
        if want < inner.sweep_interval.get() {
            inner.sweep_interval.set(want);
            let next = self.time() + want;
            if next < inner.next_sweep.get() {
                inner.next_sweep.set(next);
            }
        }
    }

    /// The sweep's interval from the shortest span the live registrations
    /// ask for (`None`: the default 250 ms), and the next sweep `now` plus
    /// that.
    pub(crate) fn set_sweep_interval(&self, now: Instant, span: Option<Duration>) {
        let want = span.map_or(SWEEP_INTERVAL, sweep_interval_for);
        self.inner.sweep_interval.set(want);
        self.inner.next_sweep.set(now + want);
    }

    /// Moves the loop's clock forward by `d` (for tests: timers and
    /// connection deadlines see the new time at once). A `d` too large for
    /// an `Instant` (`Duration::MAX`) moves it a century ahead, past every
    /// timer, those "never" due included.
    pub fn advance_clock(&self, d: Duration) {
        let target = deadline_after(self.time(), d);
        let inner = &self.inner;
        inner.clock_offset.set(target - inner.now.get());
        inner.next_sweep.set(self.time());
    }

    // ---- callbacks and timers -------------------------------------------

    /// Runs `f` on the next iteration of the loop.
    ///
    /// A panic in `f` is caught, logged at error level and counted in
    /// [`Counter::CallbackPanics`]; the loop goes on (Tornado's "Exception
    /// in callback").
    pub fn add_callback(&self, f: impl FnOnce() + 'static) {
        self.inner.callbacks.borrow_mut().push_back(Box::new(f));
    }

    /// Runs `f` after `delay` (loop clock).
    /// A delay too large for an `Instant` (`Duration::MAX`) never comes due.
    ///
    /// A panic in `f` is caught, logged at error level and counted in
    /// [`Counter::CallbackPanics`]; the other due timers still run.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimeoutHandle {
        self.call_at(self.deadline_after(delay), f)
    }

    /// Runs `f` at `when` (loop clock). A `when` already past counts as
    /// now, as Tornado's `call_at` (`call_later(max(0, when - time()))`):
    /// the timers already due run before it, in the order they were set.
    /// A timer set by a timer callback runs on a later iteration even if
    /// `when` has passed (so chains of them cannot starve the loop). A
    /// panic in `f` is caught and logged, as for
    /// [`call_later`](Self::call_later).
    #[doc(alias = "add_timeout")]
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimeoutHandle {
        let when = when.max(self.time());
        self.inner.timers.borrow_mut().insert(when, Box::new(f))
    }

    /// Cancels a timer; returns whether it had not fired yet (false for a
    /// handle from another thread's loop).
    pub fn remove_timeout(&self, h: TimeoutHandle) -> bool {
        let cb = self.inner.timers.borrow_mut().cancel(h);
        cb.is_some()
    }

    /// Whether the timer `h` of this loop is still to fire.
    pub(crate) fn timeout_pending(&self, h: TimeoutHandle) -> bool {
        self.inner.timers.borrow().is_pending(h)
    }

    /// Timers still pending.
    pub fn pending_timeouts(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    // ---- running -----------------------------------------------------------

    /// Runs the loop until [`stop`](Self::stop) (or a handle's `stop`).
    /// If `stop` was called while the loop was not running, returns at once
    /// (Tornado: "the next call to start() will return immediately").
    ///
    /// A panic in a callback, timer, periodic callback, spawned task or
    /// `add_handler` callback does not end `start`: it is logged at error
    /// level (`IOLoop callback panicked: <message>`, `spawned task
    /// panicked: ...`, and so on), counted in
    /// [`Counter::CallbackPanics`], and the loop goes on (Tornado's
    /// `handle_callback_exception`). A connection handler's panic closes
    /// only its own connection with 1011. Should anything else unwind out
    /// of `start` (the loop's own bug), the loop is left stopped and
    /// usable: what was still queued runs when it is started again.
    ///
    /// # Panics
    /// If the loop is already running (a nested `start` from a callback),
    /// or if polling the OS fails (`IOLoop poll failed: <error>`; an
    /// interrupted wait is retried), as Tornado's `start` raises. The loop
    /// is left stopped.
    pub fn start(&self) {
        assert!(
            !self.inner.running.get(),
            "IOLoop::start called while the loop is running"
        );
        /// Marks the loop stopped however `start` ends, unwinding included.
        struct Running<'a>(&'a Inner);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.shared.progress.enter(Phase::Idle);
                self.0.running.set(false);
                self.0.stopped.set(false);
                self.0.shared.stop.store(false, Ordering::SeqCst);
            }
        }
        self.inner.running.set(true);
        let _running = Running(&self.inner);
        while !self.stop_requested() {
            if let Err(e) = self.tick(None) {
                // Tornado's start() raises; returning would look like a stop.
                panic!("IOLoop poll failed: {e}");
            }
        }
    }

    fn stop_requested(&self) -> bool {
        self.inner.stopped.get() || self.inner.shared.stop.load(Ordering::SeqCst)
    }

    /// Stops the loop: `start()` returns after the current iteration.
    pub fn stop(&self) {
        self.inner.stopped.set(true);
    }

    /// Whether `start`, `run_sync` or `run_once` is running this loop.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Runs one iteration, waiting at most `timeout` for events (`None` =
    /// until something happens). For programs that embed the loop in their
    /// own main loop. The loop [`is_running`](Self::is_running) meanwhile.
    ///
    /// # Errors
    /// `poll` failed.
    ///
    /// # Panics
    /// If called while the loop is running (from one of its callbacks): a
    /// nested iteration would take the readiness of the registration
    /// being served, and with edge-triggered polling it is not reported
    /// again.
    pub fn run_once(&self, timeout: Option<Duration>) -> io::Result<()> {
        assert!(
            !self.inner.running.get(),
            "IOLoop::run_once called while the loop is running"
        );
        /// Marks the loop not running however the iteration ends.
        struct Once<'a>(&'a Inner);
        impl Drop for Once<'_> {
            fn drop(&mut self) {
                self.0.running.set(false);
            }
        }
        self.inner.running.set(true);
        let _once = Once(&self.inner);
        self.tick(timeout)
    }

    fn tick(&self, max_wait: Option<Duration>) -> io::Result<()> {
        let inner = &self.inner;
        let progress = &inner.shared.progress;
        inner.ticks.set(inner.ticks.get() + 1);
        progress.next_iteration();
        progress.enter(Phase::Callbacks);
        self.refresh_clock();
        self.drain_shared_callbacks();

        // Timers set from here on (by the callbacks below too) wait for
        // the next iteration, as asyncio collects the due timers before it
        // runs the ready callbacks: a callback's `call_later(0)` runs after
        // a callback it adds with `add_callback`, as in Tornado.
        let before = {
            let mut timers = inner.timers.borrow_mut();
            timers.unpark();
            timers.next_seq()
        };
        // Callbacks queued before this tick; new ones wait for the next.
        let n = inner.callbacks.borrow().len();
        // Each is taken out of the queue before it runs (no borrow is held
        // across user code), so a caught panic leaves the queue consistent.
        for _ in 0..n {
            let cb = inner.callbacks.borrow_mut().pop_front();
            match cb {
                Some(cb) => {
                    self.guard(Kind::Callback, cb);
                }
                None => break,
            }
        }
        // Due timers set before the tick, earliest first.
        progress.enter(Phase::Timers);
        let now = self.time();
        loop {
            let cb = inner.timers.borrow_mut().pop_due(now, before);
            match cb {
                Some(cb) => {
                    self.guard(Kind::Timer, cb);
                }
                None => break,
            }
        }
        inner.timers.borrow_mut().unpark();
        if now >= inner.next_sweep.get() {
            progress.enter(Phase::Sweep);
            self.sweep(now);
        }
        progress.enter(Phase::Tasks);
        self.run_ready_tasks();
        progress.enter(Phase::Flush);
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
        progress.enter(Phase::Idle);
        let res = inner.poll.borrow_mut().poll(&mut events, timeout);
        inner.shared.polling.store(false, Ordering::SeqCst);
        if let Err(e) = res {
            inner.events.borrow_mut().replace(events);
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        progress.enter(Phase::Events);
        self.refresh_clock();
        for ev in events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            if ev.token() == signals::SIGNAL_TOKEN {
                self.run_signal_handlers();
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
        progress.enter(Phase::Tasks);
        self.run_ready_tasks();
        progress.enter(Phase::Flush);
        self.flush_dirty();
        progress.enter(Phase::Idle);
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

    /// Runs user code handed to the loop. A panic is caught, logged at error
    /// level with what panicked and its message, counted in
    /// [`Counter::CallbackPanics`], and the loop goes on: `None` then.
    /// `catch_unwind` costs nothing on the path that does not panic.
    #[inline]
    pub(crate) fn guard<R>(&self, what: impl fmt::Display, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.callback_panicked(&what, payload);
                None
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn callback_panicked(&self, what: &dyn fmt::Display, payload: Box<dyn Any + Send>) {
        log::error!("{what} panicked: {}", panic_message(&payload));
        self.count(Counter::CallbackPanics, 1);
        drop_panic_payload(payload);
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
    /// A buffer with less capacity than the one already there is dropped.
    pub(crate) fn give_out_buf(&self, mut b: Vec<u8>) {
        b.clear();
        if b.capacity() > 1024 * 1024 {
            b.shrink_to(64 * 1024);
        }
        let mut slot = self.inner.out_buf.borrow_mut();
        if b.capacity() > slot.capacity() {
            *slot = b;
        }
    }

    /// The frames held for one `writev` per read batch (see
    /// `crate::websocket::Cork`).
    pub(crate) fn cork(&self) -> std::cell::RefMut<'_, crate::websocket::Cork> {
        self.inner.cork.borrow_mut()
    }

    /// [`cork`](Self::cork), to read.
    #[inline]
    pub(crate) fn cork_ref(&self) -> std::cell::Ref<'_, crate::websocket::Cork> {
        self.inner.cork.borrow()
    }

    /// Takes an empty buffer for a connection's partial frame, with the
    /// capacity an earlier spill left (a connection receiving frames larger
    /// than one read fills and empties its spill once per frame; without
    /// the pool each frame regrew a fresh buffer by doubling, copying it
    /// on every `realloc`: 2 % of server time in scenario c).
    pub(crate) fn take_spill_buf(&self) -> Vec<u8> {
        self.inner.spill_pool.borrow_mut().pop().unwrap_or_default()
    }

    /// Returns a spill buffer emptied by its connection. The pool keeps at
    /// most [`SPILL_POOL_BUFS`] buffers of at most [`SPILL_POOL_MAX`] bytes,
    /// so idle connections hold none and the loop holds at most 16 MiB.
    pub(crate) fn give_spill_buf(&self, mut b: Vec<u8>) {
        if b.capacity() == 0 || b.capacity() > SPILL_POOL_MAX {
            return;
        }
        let mut pool = self.inner.spill_pool.borrow_mut();
        if pool.len() < SPILL_POOL_BUFS {
            b.clear();
            pool.push(b);
        }
    }

    // ---- metrics and loop-local state --------------------------------------

    /// Adds `n` to a counter.
    #[inline]
    pub fn count(&self, c: Counter, n: u64) {
        self.inner.counters.add(c, n);
    }

    /// A snapshot of the loop's counters (a few dozen loads) and gauges (the
    /// queued-bytes gauge walks the registrations: O(connections)).
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

/// What kind of user code panicked, for the log line.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `add_callback`, from the loop's thread or through a handle.
    Callback,
    /// `call_later`/`call_at`.
    Timer,
    /// A `PeriodicCallback` tick.
    Periodic,
    /// A future given to `spawn`, while polled.
    Task,
    /// A `spawn`ed future while dropped after it ended or panicked.
    TaskDrop,
    /// What the loop held, dropped as its thread ends.
    Release,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Callback => "IOLoop callback",
            Kind::Timer => "IOLoop timer callback",
            Kind::Periodic => "PeriodicCallback callback",
            Kind::Task => "spawned task",
            Kind::TaskDrop => "drop of a spawned task",
            Kind::Release => "drop of the IOLoop's state at its thread's end",
        })
    }
}

/// The message of a panic payload (`panic!` with a literal or a format
/// string), or "unknown panic".
pub(crate) fn panic_message(p: &Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// `base + d`, or about a century after `base` when that does not fit.
pub(crate) fn deadline_after(base: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    base.checked_add(d)
        .unwrap_or_else(|| base.checked_add(CENTURY).unwrap_or(base))
}

/// Drops a caught panic's payload; one whose own drop panics is forgotten,
/// so that nothing unwinds out of the loop (or a pool thread) from here.
pub(crate) fn drop_panic_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Runs `future` on the current thread's loop (Tornado's `IOLoop.spawn_callback`
/// for coroutines).
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    IOLoop::current().spawn(future)
}

#[cfg(test)]
/// Runs the test `name` (its full path) alone in a child process,
/// this test binary again; true in the parent once the child passed,
/// false in the child, which then runs the test's body. For a test
/// that installs the process's logger, or whose failure is an abort
/// (a panic in a thread-local destructor).
pub(crate) fn isolated(name: &str) -> bool {
    const VAR: &str = "CYCLONE_ISOLATED_UNIT_TEST";
    if std::env::var(VAR).as_deref() == Ok(name) {
        return false;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = std::process::Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the isolated test");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait for the child").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("isolated test {name} did not finish in 60 s (deadlocked?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("the child's output");
    assert!(
        out.status.success(),
        "isolated test {name} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registration with no source that only asks for a sweep span.
    struct Spanned(Duration);
    impl Pollable for Spanned {
        fn ready(&mut self, _: &IOLoop, _: ConnId, _: Readiness) -> Action {
            Action::Keep
        }
        fn sweep_span(&self) -> Option<Duration> {
            Some(self.0)
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    }

    #[test]
    fn the_sweep_interval_follows_the_registrations_that_ask_for_it() {
        let lp = IOLoop::current();
        let interval = || lp.inner.sweep_interval.get();
        let sweep = || {
            lp.advance_clock(SWEEP_INTERVAL);
            lp.run_once(Some(Duration::ZERO)).unwrap();
        };
        assert_eq!(interval(), SWEEP_INTERVAL);
        let a = lp.insert(|_| Box::new(Spanned(Duration::from_millis(80))));
        lp.sweep_within(Duration::from_millis(80));
        assert_eq!(interval(), Duration::from_millis(10));
        let b = lp.insert(|_| Box::new(Spanned(Duration::from_millis(800))));
        sweep();
        assert_eq!(interval(), Duration::from_millis(10), "a still asks");
        assert!(lp.remove(a).is_some());
        sweep();
        assert_eq!(interval(), Duration::from_millis(100), "b's eighth");
        assert!(lp.remove(b).is_some());
        lp.insert(|_| Box::new(Spanned(Duration::from_millis(1))));
        sweep();
        assert_eq!(interval(), MIN_SWEEP_INTERVAL, "never below 2 ms");
        let ids = lp.all_ids();
        for id in ids {
            lp.remove(id);
        }
        sweep();
        assert_eq!(interval(), SWEEP_INTERVAL, "back to 250 ms");
    }

    #[test]
    fn spill_pool_reuses_capacity_within_its_bounds() {
        let lp = IOLoop::current();
        assert_eq!(
            lp.take_spill_buf().capacity(),
            0,
            "empty pool: no allocation"
        );
        let mut b = Vec::with_capacity(70_000);
        b.extend_from_slice(&[7; 100]);
        lp.give_spill_buf(b);
        let b = lp.take_spill_buf();
        assert!(
            b.is_empty() && b.capacity() >= 70_000,
            "capacity kept, cleared"
        );
        // Oversized buffers are dropped, not pooled.
        lp.give_spill_buf(Vec::with_capacity(SPILL_POOL_MAX + 1));
        assert_eq!(lp.take_spill_buf().capacity(), 0);
        // At most SPILL_POOL_BUFS are kept.
        for _ in 0..SPILL_POOL_BUFS + 5 {
            lp.give_spill_buf(Vec::with_capacity(1024));
        }
        let kept = std::iter::from_fn(|| Some(lp.take_spill_buf()))
            .take_while(|b| b.capacity() > 0)
            .count();
        assert_eq!(kept, SPILL_POOL_BUFS);
    }
}
