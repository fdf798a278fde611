//! A small single-threaded futures executor driven by the loop: `spawn`
//! and `run_sync`. A task's waker pushes its id onto the loop's ready queue
//! (and wakes a sleeping `poll` through the `mio::Waker` when called from
//! another thread or while the loop sleeps).

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::handle::TaskWaker;
use super::{IOLoop, Kind};

pub(crate) struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    waker: Waker,
}

impl IOLoop {
    /// Runs `future` on this loop; it is first polled on the next iteration
    /// (Tornado's `spawn_callback` with a coroutine), in the iteration's
    /// tasks' phase, after its callbacks and timers (see the
    /// [module](super)'s "One tick").
    ///
    /// A panic while the future is polled is caught, logged at error level
    /// and counted in [`Counter::CallbackPanics`](super::Counter::CallbackPanics),
    /// as Tornado logs a spawned callback's exception (and tokio catches a
    /// task's panic): the task is dropped there, never polled again, and the
    /// loop goes on with the other tasks. There is no join handle; a task
    /// whose result matters sends it somewhere (a channel, an `Rc` cell)
    /// that sees the panic as a value that never came.
    #[doc(alias = "spawn_callback")]
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) {
        let mut tasks = self.inner.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let id = entry.key();
        let waker = Waker::from(Arc::new(TaskWaker {
            id,
            shared: self.inner.shared.clone(),
        }));
        entry.insert(Some(Task {
            future: Box::pin(future),
            waker,
        }));
        drop(tasks);
        self.inner.ready_local.borrow_mut().push(id);
    }

    /// Calls `callback` with `future`'s output once it completes (Tornado's
    /// `IOLoop.add_future(future, callback)`; the callback gets the value
    /// where Tornado's gets the finished future). The future runs as a task
    /// of this loop, so a panic in it or in `callback` is caught and logged
    /// as for [`spawn`](Self::spawn), and `callback` is not called.
    ///
    /// ```no_run
    /// use cyclone::ioloop::{sleep, IOLoop};
    /// use std::time::Duration;
    ///
    /// let lp = IOLoop::current();
    /// lp.add_future(sleep(Duration::from_millis(10)), |()| IOLoop::current().stop());
    /// lp.start();
    /// ```
    pub fn add_future<T: 'static>(
        &self,
        future: impl Future<Output = T> + 'static,
        callback: impl FnOnce(T) + 'static,
    ) {
        self.spawn(async move { callback(future.await) });
    }

    /// Tasks spawned and not finished.
    pub fn pending_tasks(&self) -> usize {
        self.inner.tasks.borrow().len()
    }

    pub(crate) fn run_ready_tasks(&self) {
        // Wakes from other threads (or from wakers used off the loop's own
        // bookkeeping) land in the shared queue and raise `pending`; the one
        // drain moves them here, locking only when something is pending.
        self.drain_shared_callbacks();
        let ids = std::mem::take(&mut *self.inner.ready_local.borrow_mut());
        for id in ids {
            // The task is out of its slot (and no borrow is held) while it
            // is polled: a task that wakes itself or spawns others from its
            // poll touches only the queues.
            let task = self
                .inner
                .tasks
                .borrow_mut()
                .get_mut(id)
                .and_then(Option::take);
            let Some(mut task) = task else { continue };
            let mut cx = Context::from_waker(&task.waker);
            let poll = self.guard(Kind::Task, || task.future.as_mut().poll(&mut cx));
            match poll {
                Some(Poll::Pending) => {
                    if let Some(slot) = self.inner.tasks.borrow_mut().get_mut(id) {
                        *slot = Some(task);
                    }
                }
                _ => {
                    // Finished, or panicked (logged): its slot is freed and
                    // it is never polled again. It is dropped under a guard
                    // too: what it holds runs user code in its `Drop`, and
                    // a panicked one's state may be half-updated.
                    {
                        let mut tasks = self.inner.tasks.borrow_mut();
                        if tasks.contains(id) {
                            tasks.remove(id);
                        }
                    }
                    self.guard(Kind::TaskDrop, move || drop(task));
                }
            }
        }
    }

    /// Runs the loop until `future` completes and returns its output
    /// (Tornado's `IOLoop.run_sync`).
    ///
    /// Panics of other callbacks and tasks that run meanwhile are caught and
    /// logged as in [`start`](Self::start); `future` is the caller's own
    /// work, so its panic is not: the loop stops (left usable, what was
    /// still queued runs when it is started again) and the panic resumes in
    /// the caller of `run_sync`, as Tornado's `run_sync` re-raises the
    /// function's exception.
    ///
    /// If the loop stops before `future` completes (a [`stop`](Self::stop)
    /// from elsewhere, or [`crate::shutdown`]'s), `run_sync` panics with
    /// "the IOLoop stopped before the future completed", as Tornado's
    /// raises `RuntimeError("Event loop stopped before Future completed.")`;
    /// the future stays spawned on the loop.
    ///
    /// Tornado's `run_sync(func, timeout=)` is `run_sync(with_timeout(d,
    /// future))`: `Err(TimeoutError)` after `d` where Tornado raises
    /// `TimeoutError("Operation timed out after d seconds")`, the future
    /// dropped then (Tornado cancels it too).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cyclone::ioloop::{with_timeout, IOLoop, TimeoutError};
    ///
    /// let never = std::future::pending::<()>();
    /// let got = IOLoop::current().run_sync(with_timeout(Duration::from_millis(10), never));
    /// assert_eq!(got, Err(TimeoutError));
    /// ```
    ///
    /// # Panics
    /// If called while the loop is running (from inside a callback or a
    /// task: Tornado's "This event loop is already running"; `future` is
    /// dropped unpolled, where Tornado's stays queued and stops the loop
    /// once it ends), if
    /// the loop stops first, if polling fails (as [`start`](Self::start)),
    /// or with `future`'s own panic.
    pub fn run_sync<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> T {
        // Before the spawn: a future left spawned by a nested call would
        // run later and stop the loop under the run that is going on.
        assert!(
            !self.inner.running.get(),
            "IOLoop::run_sync called while the loop is running"
        );
        let slot: Rc<RefCell<Option<std::thread::Result<T>>>> = Rc::new(RefCell::new(None));
        let out = slot.clone();
        let lp = self.clone();
        self.spawn(async move {
            let mut future = std::pin::pin!(future);
            let v = std::future::poll_fn(|cx| {
                match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
                    Err(panic) => Poll::Ready(Err(panic)),
                }
            })
            .await;
            *out.borrow_mut() = Some(v);
            lp.stop();
        });
        self.start();
        let done = slot.borrow_mut().take();
        match done {
            Some(Ok(v)) => v,
            Some(Err(panic)) => resume_unwind(panic),
            None => panic!("the IOLoop stopped before the future completed"),
        }
    }
}

/// A future that completes after `delay` on the current thread's loop
/// (Tornado's `gen.sleep`). Dropping it before then cancels its timer.
///
/// `delay` counts from this call, not from the first `await`, as
/// Tornado's `gen.sleep` sets its timer when called (and tokio's `sleep`
/// takes its deadline then): a sleep made, then awaited after slow work,
/// waits only for what is left of `delay`. (Called from a thread-local's
/// destructor after the thread's loop is gone, it counts from its first
/// poll instead.)
pub fn sleep(delay: std::time::Duration) -> Sleep {
    let deadline = IOLoop::current_unless_gone().map(|lp| lp.deadline_after(delay));
    Sleep {
        delay,
        deadline,
        state: None,
    }
}

/// The future returned by [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    delay: std::time::Duration,
    /// When it is over, on the loop's clock: from when it was made.
    deadline: Option<std::time::Instant>,
    /// (fired, waker to wake, timer) once first polled.
    state: Option<(Rc<SleepShared>, super::TimeoutHandle)>,
}

#[derive(Debug, Default)]
struct SleepShared {
    fired: std::cell::Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (delay, deadline) = (self.delay, self.deadline);
        let (shared, _) = self.state.get_or_insert_with(|| {
            let shared = Rc::new(SleepShared::default());
            let s2 = shared.clone();
            let lp = IOLoop::current();
            let when = deadline.unwrap_or_else(|| lp.deadline_after(delay));
            let h = lp.call_at(when, move || {
                s2.fired.set(true);
                if let Some(w) = s2.waker.borrow_mut().take() {
                    w.wake();
                }
            });
            (shared, h)
        });
        if shared.fired.get() {
            return Poll::Ready(());
        }
        *shared.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((shared, h)) = self.state.take() {
            if !shared.fired.get() {
                if let Some(lp) = IOLoop::existing() {
                    lp.remove_timeout(h);
                }
            }
        }
    }
}

/// `future`, given up after `timeout` (Tornado's `gen.with_timeout`,
/// asyncio's `wait_for`): resolves to the future's value, or to
/// [`TimeoutError`] once `timeout` passed on the current thread's loop
/// first. `timeout` counts from this call, as Tornado's (see [`sleep`]).
/// Giving up drops the future (Tornado leaves it running): what it
/// started elsewhere, such as work in a [`ThreadPool`](super::ThreadPool),
/// goes on there, and its result is discarded. Nothing is logged for it
/// later either, so there is no counterpart to Tornado's
/// `quiet_exceptions`. Tornado's absolute deadline is
/// `with_timeout(deadline.saturating_duration_since(lp.time()), future)`.
///
/// ```no_run
/// use std::time::Duration;
/// use cyclone::ioloop::{with_timeout, IOLoop};
///
/// IOLoop::current().run_sync(async {
///     let slow = IOLoop::current().run_in_executor(|| std::thread::sleep(Duration::from_secs(5)));
///     assert!(with_timeout(Duration::from_millis(100), slow).await.is_err());
/// });
/// ```
pub fn with_timeout<F: Future>(timeout: std::time::Duration, future: F) -> WithTimeout<F> {
    WithTimeout {
        future: Box::pin(future),
        deadline: sleep(timeout),
    }
}

/// The future returned by [`with_timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct WithTimeout<F> {
    future: Pin<Box<F>>,
    deadline: Sleep,
}

impl<F: Future> Future for WithTimeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(value) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match Pin::new(&mut self.deadline).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimeoutError)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> std::fmt::Debug for WithTimeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithTimeout")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// [`with_timeout`] gave up (Tornado's `tornado.util.TimeoutError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutError;

impl std::fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timeout")
    }
}

impl std::error::Error for TimeoutError {}

/// Waits for all of `futures` together and resolves to their outputs in
/// the order given, whatever order they complete in (Tornado's
/// `gen.multi([a, b])` / `await asyncio.gather(a, b)`, the `futures`
/// crate's `join_all`). They run concurrently in the awaiting task, so
/// waiting takes as long as the slowest, not the sum; an empty input
/// resolves at once to an empty `Vec`.
///
/// Each wake-up polls the futures still pending (not only the one that
/// woke): cheap for the handful of futures a handler waits on; for many
/// independent jobs, [`spawn`](IOLoop::spawn) them instead.
///
/// Where Tornado's `multi` raises the first exception and logs the
/// others, `multi` of `Result`s gives every `Result`; collect them
/// (`.into_iter().collect::<Result<Vec<_>, _>>()`) for the first error.
/// A panic in one of the futures propagates out of `multi` as from any
/// other future: a [`spawn`](IOLoop::spawn)ed task is dropped and the
/// panic logged and counted, and [`run_sync`](IOLoop::run_sync) panics.
/// The others are dropped with it. Tornado's `multi({"a": a, "b": b})`
/// is `multi` of the values, zipped back with the keys.
///
/// ```no_run
/// use std::time::Duration;
/// use cyclone::ioloop::{multi, sleep, IOLoop};
///
/// let got = IOLoop::current().run_sync(async {
///     let fetch = |ms: u64| async move {
///         sleep(Duration::from_millis(ms)).await;
///         ms
///     };
///     multi(vec![fetch(30), fetch(10), fetch(20)]).await
/// });
/// assert_eq!(got, [30, 10, 20]); // in ~30 ms
/// ```
pub fn multi<F: Future>(futures: impl IntoIterator<Item = F>) -> Multi<F> {
    Multi {
        slots: futures
            .into_iter()
            .map(|f| MultiSlot::Pending(Box::pin(f)))
            .collect(),
    }
}

/// The future returned by [`multi`].
#[must_use = "futures do nothing unless awaited"]
pub struct Multi<F: Future> {
    slots: Vec<MultiSlot<F>>,
}

// The futures are boxed and the outputs never pinned, so moving a
// `Multi` moves nothing pinned (as the `futures` crate's `JoinAll`).
impl<F: Future> Unpin for Multi<F> {}

enum MultiSlot<F: Future> {
    Pending(Pin<Box<F>>),
    Done(F::Output),
    /// Handed out: `multi` completed.
    Taken,
}

impl<F: Future> Future for Multi<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        let mut pending = false;
        for slot in self.slots.iter_mut() {
            if let MultiSlot::Pending(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = MultiSlot::Done(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        let outputs = self
            .slots
            .iter_mut()
            .map(|slot| match std::mem::replace(slot, MultiSlot::Taken) {
                MultiSlot::Done(v) => v,
                _ => panic!("`multi` polled after it completed"),
            })
            .collect();
        Poll::Ready(outputs)
    }
}

impl<F: Future> std::fmt::Debug for Multi<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self
            .slots
            .iter()
            .filter(|s| matches!(s, MultiSlot::Pending(_)))
            .count();
        f.debug_struct("Multi")
            .field("len", &self.slots.len())
            .field("pending", &pending)
            .finish()
    }
}
