//! Coordination between the tasks of one loop: Tornado's `tornado.locks`
//! ([`Event`], [`Condition`], [`Semaphore`], [`Lock`]).
//!
//! As in Tornado they are not thread-safe: they belong to the loop whose
//! tasks ([`IOLoop::spawn`](crate::ioloop::IOLoop::spawn),
//! [`WebSocket::spawn`](crate::websocket::WebSocket::spawn),
//! [`run_sync`](crate::ioloop::IOLoop::run_sync)) await them. Clones share
//! one primitive. A wait has no time limit of its own: Tornado's
//! `timeout=` is [`with_timeout`](crate::ioloop::with_timeout) around it,
//! and a wait given up (its future dropped) is skipped by the next
//! notification, as Tornado skips a waiter that timed out; one dropped
//! between a [`Condition`]'s notification and its return passes the
//! notification on, as asyncio's does.
//!
//! ```
//! use std::time::Duration;
//! use cyclone::ioloop::{sleep, IOLoop};
//! use cyclone::locks::Condition;
//!
//! let lp = IOLoop::current();
//! let cond = Condition::new();
//! let waiter = cond.clone();
//! let said = lp.run_sync(async move {
//!     IOLoop::current().spawn(async move {
//!         sleep(Duration::from_millis(5)).await;
//!         cond.notify_all();
//!     });
//!     waiter.wait().await;
//!     "notified"
//! });
//! assert_eq!(said, "notified");
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One task waiting: woken (and `done`) by whoever it waits for, or
/// `gone` (its future dropped) before that.
#[derive(Default)]
pub(crate) struct Waiter {
    done: Cell<bool>,
    gone: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Waiter {
    /// Whether it was woken: `Ready` then, else the task's waker is kept.
    pub(crate) fn poll_done(&self, cx: &Context<'_>) -> Poll<()> {
        if self.done.get() {
            return Poll::Ready(());
        }
        let mut waker = self.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.get()
    }

    /// Its future is dropped: a wake-up is no longer for it.
    pub(crate) fn leave(&self) {
        self.gone.set(true);
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone.get()
    }

    /// Marks it woken and wakes its task.
    pub(crate) fn wake(&self) {
        self.done.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// `item` joins the end of `line`. Places given up (`gone`) leave here
/// too, not only at the front, so a task that keeps timing out on a wait
/// nobody answers does not grow the line: the line is pruned whenever its
/// length reaches a power of two from 32 on (amortised constant).
pub(crate) fn join_line<T>(line: &mut VecDeque<T>, item: T, gone: impl Fn(&T) -> bool) {
    if line.len() >= 32 && line.len().is_power_of_two() {
        line.retain(|x| !gone(x));
    }
    line.push_back(item);
}

/// Tasks waiting, first come first served.
#[derive(Default)]
pub(crate) struct Waiters(VecDeque<Rc<Waiter>>);

impl Waiters {
    /// A new waiter at the end of the line.
    pub(crate) fn add(&mut self) -> Rc<Waiter> {
        let w = Rc::new(Waiter::default());
        join_line(&mut self.0, Rc::clone(&w), |w| w.gone.get());
        w
    }

    /// Wakes the first waiter still there; whether there was one.
    pub(crate) fn wake_one(&mut self) -> bool {
        while let Some(w) = self.0.pop_front() {
            if w.gone.get() {
                continue;
            }
            w.wake();
            return true;
        }
        false
    }

    /// Wakes every waiter.
    pub(crate) fn wake_all(&mut self) {
        while self.wake_one() {}
    }

    /// Waiters still there.
    pub(crate) fn len(&self) -> usize {
        self.0.iter().filter(|w| !w.gone.get()).count()
    }
}

/// The future of a wait ([`Event::wait`], [`Condition::wait`],
/// [`Queue::join`](crate::queues::Queue::join)): `()` once woken.
#[must_use = "futures do nothing unless awaited"]
pub struct Wait {
    waiter: Rc<Waiter>,
    /// A [`Condition`]'s line: a notification this wait was given but
    /// never returned (dropped first, as by a timeout racing the notify)
    /// goes to the next waiter, as asyncio's `Condition` (3.13) passes it
    /// on; Tornado's loses it.
    line: Option<std::rc::Weak<RefCell<Waiters>>>,
    returned: bool,
}

impl Wait {
    fn new(waiter: Rc<Waiter>, line: Option<std::rc::Weak<RefCell<Waiters>>>) -> Wait {
        Wait {
            waiter,
            line,
            returned: false,
        }
    }
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ready = self.waiter.poll_done(cx);
        if ready.is_ready() {
            self.returned = true;
        }
        ready
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.waiter.leave();
        if self.waiter.is_done() && !self.returned {
            if let Some(line) = self.line.as_ref().and_then(std::rc::Weak::upgrade) {
                // Not while a notify holds the line (a waker dropping this
                // wait): that notify goes on waking in order anyway.
                if let Ok(mut waiters) = line.try_borrow_mut() {
                    waiters.wake_one();
                }
            }
        }
    }
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("done", &self.waiter.is_done())
            .finish()
    }
}

/// Tornado's `locks.Event`: a flag tasks wait for. While it is set,
/// [`wait`](Self::wait) is ready at once.
#[derive(Clone, Default)]
pub struct Event(Rc<RefCell<EventState>>);

#[derive(Default)]
struct EventState {
    set: bool,
    waiters: Waiters,
}

impl Event {
    /// An event not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        self.0.borrow().set
    }

    /// Sets it: every task waiting is woken, and waits begun from now on
    /// are ready at once (until [`clear`](Self::clear)).
    pub fn set(&self) {
        let mut st = self.0.borrow_mut();
        st.set = true;
        st.waiters.wake_all();
    }

    /// Clears it: waits begun from now on wait for the next
    /// [`set`](Self::set). A wait the last `set` woke stays woken.
    pub fn clear(&self) {
        self.0.borrow_mut().set = false;
    }

    /// Waits until it is set (Tornado's `wait(timeout=)`, which raises
    /// `TimeoutError`, is `with_timeout(d, ev.wait())`, which gives
    /// `Err(TimeoutError)`). The wait begins here, not at the first
    /// poll: a `set` then `clear` in between still wakes it (as Tornado's
    /// future, created by the call).
    pub fn wait(&self) -> Wait {
        let mut st = self.0.borrow_mut();
        let waiter = st.waiters.add();
        if st.set {
            st.waiters.wake_all();
        }
        Wait::new(waiter, None)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

/// Tornado's `locks.Condition`: tasks [`wait`](Self::wait) until another
/// [`notify`](Self::notify)s them, first come first served.
#[derive(Clone, Default)]
pub struct Condition(Rc<RefCell<Waiters>>);

impl Condition {
    /// A condition nobody waits for.
    pub fn new() -> Condition {
        Condition::default()
    }

    /// Waits for a notification. The wait begins here (a `notify` before
    /// the first poll wakes it). Tornado's `wait(timeout=)`, true when
    /// notified and false once the time passed, is
    /// `with_timeout(d, cond.wait()).await.is_ok()`. A wait dropped after it was notified but
    /// before it returned passes the notification on to the next waiter.
    pub fn wait(&self) -> Wait {
        let waiter = self.0.borrow_mut().add();
        Wait::new(waiter, Some(Rc::downgrade(&self.0)))
    }

    /// Wakes `n` waiting tasks, the longest waiting first; waits given up
    /// (dropped) are skipped, and one dropped between its notification and
    /// its return hands the notification to the next.
    pub fn notify(&self, n: usize) {
        let mut waiters = self.0.borrow_mut();
        for _ in 0..n {
            if !waiters.wake_one() {
                break;
            }
        }
    }

    /// Wakes every waiting task.
    pub fn notify_all(&self) {
        self.0.borrow_mut().wake_all();
    }

    /// Tasks waiting.
    pub fn waiting(&self) -> usize {
        self.0.borrow().len()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// Tornado's `locks.Semaphore`: at most `value` tasks hold it at once.
/// [`acquire`](Self::acquire) gives a [`SemaphoreGuard`] that releases it
/// when dropped (Tornado's `async with sem:`), so releasing more than was
/// acquired (Tornado's `BoundedSemaphore` error) cannot happen: this is
/// Tornado's `BoundedSemaphore` too. Tornado's unpaired `release()`, which
/// adds a place, is [`add_permits`](Self::add_permits); an `acquire` never
/// released is `std::mem::forget` of its guard. A negative value (Tornado's
/// `ValueError`) cannot be given (`usize`).
#[derive(Clone)]
pub struct Semaphore(Rc<RefCell<SemState>>);

struct SemState {
    value: usize,
    waiters: Waiters,
}

impl Semaphore {
    /// A semaphore `value` tasks may hold at once.
    pub fn new(value: usize) -> Semaphore {
        Semaphore(Rc::new(RefCell::new(SemState {
            value,
            waiters: Waiters::default(),
        })))
    }

    /// How many more tasks may hold it now.
    pub fn value(&self) -> usize {
        self.0.borrow().value
    }

    /// Waits for a place, first come first served; the place is the
    /// [`SemaphoreGuard`]'s until it is dropped. Taken here if one is
    /// free; a wait given up gives back a place it was handed.
    pub fn acquire(&self) -> Acquire {
        let mut st = self.0.borrow_mut();
        // A free place means nobody waits: `release` hands places to
        // waiters before it counts them free.
        let state = if st.value > 0 {
            st.value -= 1;
            AcquireState::Held
        } else {
            AcquireState::Waiting(st.waiters.add())
        };
        Acquire {
            sem: self.clone(),
            state,
        }
    }

    /// A place if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard> {
        let mut st = self.0.borrow_mut();
        if st.value > 0 {
            st.value -= 1;
            Some(SemaphoreGuard(self.clone()))
        } else {
            None
        }
    }

    /// Adds `n` places, each handed to the first task still waiting, or
    /// free when none waits: Tornado's `Semaphore.release()` called
    /// without a matching `acquire` (a `Semaphore(0)` counting what is
    /// ready, say), `n` times. The value may so go above the one the
    /// semaphore was made with; without this call it never does, since
    /// only guards give places back (Tornado's `BoundedSemaphore`, whose
    /// extra `release` raises `ValueError`, has nothing to refuse here).
    pub fn add_permits(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    /// A place is free again: it goes to the first task still waiting,
    /// if any.
    fn release(&self) {
        let mut st = self.0.borrow_mut();
        if !st.waiters.wake_one() {
            st.value += 1;
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.0.borrow();
        f.debug_struct("Semaphore")
            .field("value", &st.value)
            .field("waiting", &st.waiters.len())
            .finish()
    }
}

/// The future of [`Semaphore::acquire`] (and [`Lock::acquire`]).
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire {
    sem: Semaphore,
    state: AcquireState,
}

enum AcquireState {
    /// A place is this future's (taken at once, or handed to it).
    Held,
    Waiting(Rc<Waiter>),
    /// The place went to the guard.
    Given,
}

impl Future for Acquire {
    type Output = SemaphoreGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphoreGuard> {
        if let AcquireState::Waiting(w) = &self.state {
            if w.poll_done(cx).is_pending() {
                return Poll::Pending;
            }
            self.state = AcquireState::Held;
        }
        match std::mem::replace(&mut self.state, AcquireState::Given) {
            AcquireState::Held => Poll::Ready(SemaphoreGuard(self.sem.clone())),
            _ => panic!("Acquire polled after it completed"),
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        match &self.state {
            AcquireState::Held => self.sem.release(),
            // Handed a place after the last poll: it goes on.
            AcquireState::Waiting(w) if w.is_done() => self.sem.release(),
            AcquireState::Waiting(w) => w.leave(),
            AcquireState::Given => {}
        }
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").finish_non_exhaustive()
    }
}

/// A place in a [`Semaphore`] (or a held [`Lock`]), released when
/// dropped.
#[must_use = "the place is released as soon as the guard is dropped"]
pub struct SemaphoreGuard(Semaphore);

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl fmt::Debug for SemaphoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// Tornado's `locks.Lock`: one task holds it at a time, the others wait
/// in line. [`acquire`](Self::acquire) gives a guard that releases it when
/// dropped (Tornado's `async with lock:`), so releasing a lock nobody
/// holds (Tornado's `RuntimeError`) cannot happen. Tornado's
/// `acquire(timeout=)` is `with_timeout(d, lock.acquire())`.
#[derive(Clone, Debug)]
pub struct Lock(Semaphore);

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// A lock nobody holds.
    pub fn new() -> Lock {
        Lock(Semaphore::new(1))
    }

    /// Waits until the lock is this task's; it is the guard's until the
    /// guard is dropped.
    pub fn acquire(&self) -> Acquire {
        self.0.acquire()
    }

    /// The lock, if nobody holds it or waits for it now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard> {
        self.0.try_acquire()
    }

    /// Whether some task holds it.
    pub fn is_locked(&self) -> bool {
        self.0.value() == 0
    }
}
