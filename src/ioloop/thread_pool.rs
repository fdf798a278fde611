//! Blocking work off the loop: Tornado's `IOLoop.run_in_executor` and
//! `set_default_executor`, with a [`ThreadPool`] standing for Python's
//! `concurrent.futures.ThreadPoolExecutor`.
//!
//! The loop's thread must never block (every connection waits while it
//! does). A database driver, a file read or a CPU-heavy computation goes
//! to a pool thread; the task awaiting it is woken on the loop when the
//! result is there, and whatever the pool thread computed comes back to
//! the loop's thread to be used there.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use super::IOLoop;

/// A queued job: run by a pool thread, or cancelled by
/// [`ThreadPool::shutdown_cancel_futures`] (or by a shutdown that finds
/// no thread to run it), `why` being the panic awaiting it resumes.
trait Job: Send {
    fn run(self: Box<Self>);
    fn cancel(self: Box<Self>, why: &'static str);
}

/// A pool of threads for blocking work: Python's `ThreadPoolExecutor`.
/// Threads are started as work arrives, up to `max_threads`, and wait
/// for more once started. Cloning gives another handle to the same pool;
/// it may be shared by several loops' threads.
///
/// [`shutdown`](Self::shutdown) ends the pool as Python's
/// `executor.shutdown(wait)` does: no more work is taken, what was queued
/// is done, then the threads end (and are joined with `wait`).
///
/// Dropping the last handle is `shutdown(true)`: the drop returns once
/// the queued work has run and the threads are joined. That is Rust's
/// stand-in for Python joining its executors' threads at interpreter exit
/// (`threading._register_atexit`), so that queued work finishes: Rust has
/// no exit hook for threads (a thread still running when `main` returns
/// is killed with the process), but the handles' owners are dropped, the
/// loop's default executor when the loop's thread ends (see
/// [`IOLoop::set_default_executor`]). Two exceptions, where the drop
/// shuts the pool down without waiting and the threads end by
/// themselves once the queue is empty:
/// - the last handle is dropped on a pool thread, of this pool or of any
///   other [`ThreadPool`] (a job held it, or a thread-local of a pool
///   thread did): a thread cannot join itself, another job may be
///   waiting for this one, and two pools whose jobs each drop the
///   other's last handle would each wait for the other's thread. Only a
///   thread outside every pool waits in a drop, and it waits only for
///   pool threads, which never wait in one: such waits cannot form a
///   cycle. (Python's executors are joined at exit, outside them all.)
/// - the pool was shut down with `shutdown(false)` (or
///   `shutdown_cancel_futures(false)`) before: the explicit way to leave
///   long jobs running, detached, when the handles go.
///
/// A drop that waits blocks its thread while the jobs run: a job that
/// waits for the thread dropping the pool (say for an answer from its
/// loop) keeps both waiting, as it would Python's exit.
///
/// ```no_run
/// use cyclone::ioloop::{IOLoop, ThreadPool};
///
/// // Tornado: IOLoop.current().set_default_executor(ThreadPoolExecutor(4))
/// IOLoop::current().set_default_executor(ThreadPool::new(4));
/// let n = IOLoop::current().run_sync(async {
///     // Tornado: await IOLoop.current().run_in_executor(None, count_rows)
///     IOLoop::current().run_in_executor(|| 42).await
/// });
/// assert_eq!(n, 42);
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<Handles>,
}

/// What the handles share: when the last one goes, the pool is shut down
/// (its threads hold the [`Core`], not this).
struct Handles {
    core: Arc<Core>,
}

impl Drop for Handles {
    /// `shutdown(true)`, but on a pool thread (of any pool) or after an
    /// explicit `shutdown(false)`: see [`ThreadPool`].
    fn drop(&mut self) {
        let wait = !self.core.lock().detached && !ON_POOL_THREAD.with(Cell::get);
        self.core.shutdown(wait, false);
    }
}

thread_local! {
    /// Set for the whole life of a pool thread (of any [`ThreadPool`]),
    /// thread-local destructors included: a last handle dropped there
    /// does not wait (see [`ThreadPool`]), and a `shutdown(true)` called
    /// there is a pool thread's, even once `OWN_POOL` is gone.
    static ON_POOL_THREAD: Cell<bool> = const { Cell::new(false) };

    /// The pool whose jobs this thread runs, for the thread's whole life:
    /// where it is listed while it waits in a `shutdown(true)` of any pool
    /// (see [`ThreadPool::shutdown`]), from a job or from a thread-local's
    /// destructor once the jobs are over. Set before the first job runs,
    /// it is dropped after every thread-local a job set where they drop
    /// in the reverse order of their first use (as on Linux); a
    /// destructor run after it finds no pool, and its thread is then not
    /// listed.
    static OWN_POOL: RefCell<Option<Weak<Core>>> = const { RefCell::new(None) };
}

struct Core {
    max_threads: usize,
    state: Mutex<Queue>,
    /// Signalled when a job is queued or the pool is shut down.
    work: Condvar,
    /// Signalled when a thread ends, when one is joined, or when one
    /// starts waiting in `shutdown(wait = true)`.
    ended: Condvar,
}

struct Queue {
    jobs: VecDeque<Box<dyn Job>>,
    /// `shutdown` was called: no more jobs are taken, and the threads end
    /// once the queue is empty.
    shut_down: bool,
    /// `shutdown(false)` (or `shutdown_cancel_futures(false)`) was called:
    /// dropping the last handle does not wait for the threads either.
    detached: bool,
    /// Threads started so far.
    started: usize,
    /// The threads not ended yet.
    alive: Vec<std::thread::ThreadId>,
    /// Threads waiting for a job.
    waiting: usize,
    /// The threads not joined yet.
    threads: Vec<JoinHandle<()>>,
    /// This pool's threads waiting in a `shutdown(wait = true)`, of this
    /// pool or of another, from a job or from a thread-local's destructor
    /// (their jobs over): a pool thread waiting in one does not wait for
    /// these, nor joins them.
    waiting_in_shutdown: Vec<std::thread::ThreadId>,
    /// Ended threads being joined by a `shutdown(wait = true)` caller
    /// (out of `threads`, their thread-locals maybe still dropping): the
    /// other callers wait for these joins too, but for the caller's own
    /// and, for a pool thread, those of threads in `waiting_in_shutdown`.
    joining: Vec<std::thread::ThreadId>,
}

/// [`ThreadPool::try_run`] after [`ThreadPool::shutdown`]: Python's
/// `RuntimeError('cannot schedule new futures after shutdown')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownError;

impl std::fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot schedule new futures after shutdown")
    }
}

impl std::error::Error for ShutdownError {}

/// What a job cancelled by [`ThreadPool::shutdown_cancel_futures`] gives
/// the task that awaits it (Python's `CancelledError`), as a panic.
const CANCELLED: &str =
    "run_in_executor: the job was cancelled by ThreadPool::shutdown_cancel_futures";

/// What a job queued when its pool was shut down gives the task that
/// awaits it, as a panic, when the pool had no thread and could start
/// none to run it (see [`ThreadPool::shutdown`]).
const NO_THREAD: &str = "run_in_executor: the job was cancelled: its pool was shut down \
     without a thread to run it (the OS refused to start one)";

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least one).
    pub fn new(max_threads: usize) -> ThreadPool {
        ThreadPool {
            shared: Arc::new(Handles {
                core: Arc::new(Core {
                    max_threads: max_threads.max(1),
                    state: Mutex::new(Queue {
                        jobs: VecDeque::new(),
                        shut_down: false,
                        detached: false,
                        started: 0,
                        alive: Vec::new(),
                        waiting: 0,
                        threads: Vec::new(),
                        waiting_in_shutdown: Vec::new(),
                        joining: Vec::new(),
                    }),
                    work: Condvar::new(),
                    ended: Condvar::new(),
                }),
            }),
        }
    }

    /// The pool a loop uses until [`IOLoop::set_default_executor`] gives
    /// it another: Python's default `ThreadPoolExecutor` size, five
    /// threads per CPU.
    pub fn with_default_size() -> ThreadPool {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        ThreadPool::new(cpus * 5)
    }

    /// The most threads this pool starts.
    pub fn max_threads(&self) -> usize {
        self.shared.core.max_threads
    }

    /// Runs `f` on one of the pool's threads: Python's
    /// `executor.submit(f)` wrapped for the loop. The returned future
    /// resolves to what `f` returns; if `f` panics, the panic is resumed
    /// in the task awaiting it (as the exception reaches the coroutine
    /// awaiting it in Python). `f` starts whether or not the future is
    /// awaited, unless the future is dropped (or
    /// [`cancel`](InExecutor::cancel)led) before a thread takes the job:
    /// then `f` never runs and is dropped, as cancelling asyncio's
    /// wrapped future cancels a `concurrent.futures.Future` that has not
    /// started. Dropping the future once `f` is running lets it finish
    /// and discards its result.
    ///
    /// # Panics
    /// If the pool was [`shutdown`](Self::shutdown), with
    /// [`ShutdownError`]'s message, as Python's `submit` raises
    /// `RuntimeError`; [`try_run`](Self::try_run) returns the error.
    pub fn run<T, F>(&self, f: F) -> InExecutor<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.try_run(f) {
            Ok(fut) => fut,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`run`](Self::run), or an error if the pool was shut down.
    ///
    /// # Errors
    /// [`ShutdownError`] after [`shutdown`](Self::shutdown) (or
    /// [`shutdown_cancel_futures`](Self::shutdown_cancel_futures)); `f`
    /// is dropped.
    pub fn try_run<T, F>(&self, f: F) -> Result<InExecutor<T>, ShutdownError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            state: State::Queued(Box::new(f)),
            waker: None,
        }));
        self.shared
            .core
            .submit(Box::new(JobSlot(Arc::clone(&slot))))?;
        Ok(InExecutor { slot })
    }

    /// Python's `executor.shutdown(wait)`: the pool takes no more work
    /// ([`run`](Self::run) panics, [`try_run`](Self::try_run) fails, on
    /// every handle), the jobs already queued still run, and then its
    /// threads end. With `wait`, returns once they have ended (joined:
    /// their thread-locals dropped too). Calling it again is harmless.
    ///
    /// A pool whose every thread the OS refused to start (out of memory
    /// or processes) has its jobs wait for the next [`run`](Self::run) to
    /// try again; none comes after `shutdown`, which so tries once more
    /// itself. If that fails too, the queued jobs can never run: they are
    /// cancelled, and a task awaiting one gets a panic saying so, rather
    /// than waiting for ever. (Python's `submit` raises there instead,
    /// leaving the job queued.)
    ///
    /// Called with `wait` from a job, on one of the pool's own threads,
    /// it cannot wait for that thread, which is running the job: it
    /// returns once every *other* thread of the pool has ended. Called
    /// with `wait` from a job of any pool (this one or another), it does
    /// not wait for the threads that are themselves waiting in a
    /// `shutdown(true)` called from a job, of whichever pool: it returns
    /// once the pool's other threads have ended, and those then finish
    /// their jobs, run what is still queued and end. Jobs so never wait
    /// for each other in a cycle: two jobs that shut their own pool down
    /// at once, or a job of pool A shutting B down while one of B shuts
    /// A down, return (once the rest are done) where Python's
    /// `executor.shutdown(wait=True)` deadlocks (and a single job
    /// shutting its own pool down raises "cannot join current thread"
    /// there). A thread-local's destructor on a pool thread, run once the
    /// thread's jobs are over (it has left the pool but is not joined
    /// yet), counts as a job here: called with `wait` from there,
    /// `shutdown` does not wait for that thread, nor for the threads
    /// waiting in a `shutdown(true)`; and while the thread waits there,
    /// the jobs' and destructors' calls do not wait for it (nor join it).
    /// A cycle through a destructor (pool A's thread-local shutting B
    /// down while a job of B shuts A down) so returns too, where Python
    /// deadlocks as well. A caller outside every pool waits for all the
    /// threads, those included. Callers waiting at once (from threads
    /// outside the pools) all return once every thread has ended and been
    /// joined, whichever of them joined it, as Python's
    /// `shutdown(wait=True)` called from several threads does.
    ///
    /// ```
    /// use cyclone::ioloop::{IOLoop, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2);
    /// let rows = pool.run(|| 42);
    /// pool.shutdown(true);
    /// assert_eq!(IOLoop::current().run_sync(rows), 42);
    /// assert!(pool.try_run(|| 7).is_err());
    /// ```
    pub fn shutdown(&self, wait: bool) {
        self.shared.core.shutdown(wait, false);
    }

    /// Python's `executor.shutdown(wait, cancel_futures=True)`: as
    /// [`shutdown`](Self::shutdown), but the jobs still queued are
    /// cancelled instead of run (a running job finishes). A task awaiting
    /// a cancelled job gets a panic saying so (Python's `CancelledError`).
    pub fn shutdown_cancel_futures(&self, wait: bool) {
        self.shared.core.shutdown(wait, true);
    }
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(self: &Arc<Self>, job: Box<dyn Job>) -> Result<(), ShutdownError> {
        let mut q = self.lock();
        if q.shut_down {
            return Err(ShutdownError);
        }
        q.jobs.push_back(job);
        // A waiting thread takes the job; without one, a thread more if
        // there is room.
        let started = if q.waiting >= q.jobs.len() {
            self.work.notify_one();
            Ok(())
        } else if q.started < self.max_threads {
            self.start_thread(&mut q)
        } else {
            Ok(())
        };
        drop(q);
        if let Err(e) = started {
            refused(&e);
        }
        Ok(())
    }

    /// Starts a thread, under the pool's lock (`q`). A refusal is
    /// returned, for the caller to log once the lock is released (see
    /// [`refused`]).
    fn start_thread(self: &Arc<Self>, q: &mut Queue) -> std::io::Result<()> {
        let core = Arc::clone(self);
        // The unit tests' stand-in for the OS refusing a thread.
        #[cfg(test)]
        if tests::REFUSE_THREADS.with(Cell::get) {
            return Err(std::io::Error::other("refused by the test"));
        }
        let t = std::thread::Builder::new()
            .name("cyclone-executor".into())
            .spawn(move || core.serve())?;
        // Under the lock: the thread cannot end (and take its id out)
        // before its id is in.
        q.started += 1;
        q.alive.push(t.thread().id());
        q.threads.push(t);
        Ok(())
    }

    /// A pool thread: jobs until the pool is shut down and the queue empty.
    fn serve(self: &Arc<Self>) {
        ON_POOL_THREAD.with(|on| on.set(true));
        OWN_POOL.with(|own| *own.borrow_mut() = Some(Arc::downgrade(self)));
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if let Some(job) = q.jobs.pop_front() {
                        break Some(job);
                    }
                    if q.shut_down {
                        break None;
                    }
                    q.waiting += 1;
                    q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.waiting -= 1;
                }
            };
            let Some(job) = job else { break };
            // `f`'s own panic is the awaiting task's (caught in the job);
            // one out of the job's bookkeeping (a waker's `wake`, the
            // drop here of a result whose future was dropped) must not
            // end the thread: with every thread gone later jobs would
            // wait forever.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| job.run())) {
                log::error!(
                    "run_in_executor: a job panicked after its function returned: {}",
                    super::panic_message(&panic)
                );
                super::drop_panic_payload(panic);
            }
            // A loop the job made here with `IOLoop::current()` is for
            // the job only: the next one starts without it.
            if let Err(panic) = catch_unwind(IOLoop::end_pool_job) {
                log::error!(
                    "run_in_executor: dropping a job's IOLoop panicked: {}",
                    super::panic_message(&panic)
                );
                super::drop_panic_payload(panic);
            }
        }
        // OWN_POOL stays set: a thread-local's destructor calling
        // `shutdown(true)` is listed as waiting as a job calling it is.
        let me = std::thread::current().id();
        let mut q = self.lock();
        q.alive.retain(|&t| t != me);
        self.ended.notify_all();
    }

    /// Lists `me`, one of this pool's threads, as waiting in a
    /// `shutdown(wait = true)` (of any pool), or takes it out.
    fn set_waiting_in_shutdown(&self, me: std::thread::ThreadId, waiting: bool) {
        let mut q = self.lock();
        if waiting {
            q.waiting_in_shutdown.push(me);
            // A pool thread waiting for this pool's threads in a shutdown
            // may stop waiting for this one.
            self.ended.notify_all();
        } else {
            q.waiting_in_shutdown.retain(|&t| t != me);
        }
    }

    fn shutdown(self: &Arc<Self>, wait: bool, cancel: bool) {
        let mut started = Ok(());
        let (cancelled, why) = {
            let mut q = self.lock();
            q.shut_down = true;
            q.detached |= !wait;
            self.work.notify_all();
            // No thread: every start was refused (threads end only after
            // a shutdown, once the queue is empty). The queued jobs waited
            // for the next submit to try again, and none comes now: one
            // more try, and without a thread they are cancelled rather
            // than left pending for ever.
            if !cancel && !q.jobs.is_empty() && q.alive.is_empty() {
                started = self.start_thread(&mut q);
            }
            if cancel {
                (std::mem::take(&mut q.jobs), CANCELLED)
            } else if q.alive.is_empty() && !q.jobs.is_empty() {
                (std::mem::take(&mut q.jobs), NO_THREAD)
            } else {
                (VecDeque::new(), CANCELLED)
            }
        };
        if let Err(e) = started {
            refused(&e);
        }
        if why == NO_THREAD {
            log::error!(
                "ThreadPool::shutdown: no thread to run the {} queued job(s); cancelled",
                cancelled.len()
            );
        }
        // Outside the lock: a cancelled job's closure may do anything in
        // its drop (submit more, panic); a panic there must not keep the
        // other jobs from being cancelled, nor the threads from being
        // joined.
        for job in cancelled {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| job.cancel(why))) {
                log::error!(
                    "ThreadPool::shutdown: the drop of a cancelled job panicked: {}",
                    super::panic_message(&panic)
                );
                super::drop_panic_payload(panic);
            }
        }
        if wait {
            self.wait_for_threads();
        }
    }

    /// `shutdown(wait = true)`'s wait: until every thread has ended and
    /// been joined, but the caller's own and, for a caller that is a pool
    /// thread (of any pool, in a job or in a thread-local's destructor),
    /// those waiting in a `shutdown(wait = true)` too, of any pool (see
    /// [`ThreadPool::shutdown`]). A thread found ended is joined here,
    /// outside the lock; one another caller took to join is waited for
    /// until that join returns.
    fn wait_for_threads(&self) {
        let me = std::thread::current().id();
        // Listed in its own pool (not under this pool's lock: one lock at
        // a time), so that a pool thread waiting for it stops doing so.
        let own = OWN_POOL
            .try_with(|own| own.borrow().as_ref().and_then(Weak::upgrade))
            .ok()
            .flatten();
        if let Some(own) = &own {
            own.set_waiting_in_shutdown(me, true);
        }
        let pool_thread = own.is_some() || ON_POOL_THREAD.with(Cell::get);
        // The threads not waited for: the caller, and for a pool thread
        // those waiting in a shutdown (alive, ended or being joined).
        let skipped = |q: &Queue, t: &std::thread::ThreadId| {
            *t == me || (pool_thread && q.waiting_in_shutdown.contains(t))
        };
        let mut q = self.lock();
        loop {
            let ended = q.threads.iter().position(|t| {
                let id = t.thread().id();
                !skipped(&q, &id) && !q.alive.contains(&id)
            });
            if let Some(i) = ended {
                let t = q.threads.swap_remove(i);
                let id = t.thread().id();
                q.joining.push(id);
                drop(q);
                // A pool thread catches every panic: it cannot end in one.
                let _ = t.join();
                q = self.lock();
                q.joining.retain(|&t| t != id);
                self.ended.notify_all();
                continue;
            }
            let others = q.alive.iter().chain(&q.joining).any(|t| !skipped(&q, t));
            if !others {
                break;
            }
            q = self.ended.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        drop(q);
        if let Some(own) = own {
            own.set_waiting_in_shutdown(me, false);
        }
    }
}

/// Logs a thread the OS refused to start. Never under the pool's lock: a
/// logger may use the pool itself (write through
/// [`ThreadPool::run`], say), which would then wait for that lock for
/// ever. The jobs wait for the threads already running; with none, they
/// wait for the next submit to try again (or for the shutdown, which
/// tries once more, else cancels them).
fn refused(e: &std::io::Error) {
    log::error!("run_in_executor: cannot start a thread: {e}");
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.shared.core;
        f.debug_struct("ThreadPool")
            .field("max_threads", &core.max_threads)
            .field("threads", &core.lock().started)
            .finish()
    }
}

/// A job's state, behind the mutex that both the pool's thread and the
/// awaiting side take: whichever takes it first decides whether a job
/// dropped as a thread picks it up runs (Python's
/// `set_running_or_notify_cancel`).
enum State<T> {
    /// Waiting for a thread; `f` is here.
    Queued(Box<dyn FnOnce() -> T + Send>),
    /// A thread is running `f`.
    Running,
    /// `f` returned or panicked; the awaiting side has not taken it yet.
    Done(std::thread::Result<T>),
    /// Cancelled by `shutdown_cancel_futures` before it ran (awaiting
    /// it panics with [`CANCELLED`]), or by a shutdown without a thread
    /// to run it ([`NO_THREAD`]).
    Cancelled(&'static str),
    /// Taken by the awaiting side, or given up by it: nothing more comes
    /// (a result that comes after is dropped on the pool's thread).
    Over,
}

struct Slot<T> {
    state: State<T>,
    waker: Option<Waker>,
}

fn lock<T>(slot: &Mutex<Slot<T>>) -> std::sync::MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// A job on a pool thread: runs `f` unless its future was given up first,
/// and hands the result over unless it was given up meanwhile.
fn run_job<T>(slot: &Mutex<Slot<T>>) {
    let f = {
        let mut s = lock(slot);
        match std::mem::replace(&mut s.state, State::Running) {
            State::Queued(f) => f,
            // Given up before this thread took it: never runs.
            other => {
                s.state = other;
                return;
            }
        }
    };
    let result = catch_unwind(AssertUnwindSafe(f));
    let (waker, discarded) = {
        let mut s = lock(slot);
        if matches!(s.state, State::Running) {
            s.state = State::Done(result);
            (s.waker.take(), None)
        } else {
            (None, Some(result))
        }
    };
    // A result nobody awaits any more is dropped here, on the pool's
    // thread and outside the lock (its drop may panic: the thread's loop
    // catches that).
    drop(discarded);
    if let Some(w) = waker {
        w.wake();
    }
}

/// A queued job: its future's slot, which holds `f` until a thread takes it.
struct JobSlot<T>(Arc<Mutex<Slot<T>>>);

impl<T: Send> Job for JobSlot<T> {
    fn run(self: Box<Self>) {
        run_job(&self.0);
    }

    fn cancel(self: Box<Self>, why: &'static str) {
        let (f, waker) = {
            let mut s = lock(&self.0);
            match std::mem::replace(&mut s.state, State::Cancelled(why)) {
                State::Queued(f) => (f, s.waker.take()),
                // Given up by its future meanwhile.
                other => {
                    s.state = other;
                    return;
                }
            }
        };
        drop(f);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The result of [`IOLoop::run_in_executor`] or [`ThreadPool::run`], to
/// await on the loop. Dropping it before a pool thread took the job
/// cancels the job (it never runs); dropping it later discards the result.
#[must_use = "the result is lost unless the future is awaited"]
pub struct InExecutor<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> InExecutor<T> {
    /// Gives the job up: Python's `Future.cancel()`. Returns `true` if no
    /// thread had taken it yet (it will never run and its closure is
    /// dropped now), `false` if it is running or done (it finishes and its
    /// result is discarded). Dropping the future does the same.
    pub fn cancel(self) -> bool {
        self.give_up()
    }

    fn give_up(&self) -> bool {
        let (f, result) = {
            let mut s = lock(&self.slot);
            s.waker = None;
            match std::mem::replace(&mut s.state, State::Over) {
                State::Queued(f) => (Some(f), None),
                // Running: the thread sees `Over` and drops the result.
                State::Cancelled(_) => return true,
                State::Running | State::Over => (None, None),
                State::Done(r) => (None, Some(r)),
            }
        };
        // Dropped outside the lock: a drop that panics must not poison it
        // (nor hold it while user code runs).
        let cancelled = f.is_some();
        drop(f);
        drop(result);
        cancelled
    }
}

impl<T> Drop for InExecutor<T> {
    fn drop(&mut self) {
        self.give_up();
    }
}

impl<T> Future for InExecutor<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = lock(&self.slot);
        match std::mem::replace(&mut s.state, State::Over) {
            State::Done(Ok(value)) => Poll::Ready(value),
            State::Done(Err(panic)) => {
                drop(s);
                resume_unwind(panic)
            }
            State::Cancelled(why) => {
                drop(s);
                resume_unwind(Box::new(why))
            }
            other => {
                s.state = other;
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for InExecutor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InExecutor")
    }
}

impl IOLoop {
    /// Runs the blocking `f` on the loop's executor and gives a future of
    /// its result: Tornado's `IOLoop.run_in_executor(None, f)`. The pool
    /// is [`ThreadPool::with_default_size`], started at the first call,
    /// unless [`set_default_executor`](Self::set_default_executor) gave
    /// another; [`ThreadPool::run`] uses a given one. A panic in `f` is
    /// resumed in the task that awaits the future.
    ///
    /// ```no_run
    /// use cyclone::ioloop::IOLoop;
    /// use cyclone::websocket::{write_to, Message, WebSocket, WebSocketHandler};
    ///
    /// fn slow_lookup(key: &str) -> String {
    ///     std::thread::sleep(std::time::Duration::from_millis(50)); // a blocking driver
    ///     format!("{key}: 1")
    /// }
    ///
    /// struct Query;
    /// impl WebSocketHandler for Query {
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         let (id, key) = (ws.id(), msg.as_text().unwrap_or_default().to_owned());
    ///         // Tornado: async def on_message(self, key):
    ///         //     self.write_message(await IOLoop.current().run_in_executor(None, slow_lookup, key))
    ///         ws.spawn(async move {
    ///             let row = IOLoop::current().run_in_executor(move || slow_lookup(&key)).await;
    ///             write_to(id, row);
    ///         });
    ///     }
    /// }
    /// ```
    ///
    /// # Panics
    /// If the pool given to [`set_default_executor`](Self::set_default_executor)
    /// was [`shutdown`](ThreadPool::shutdown), as asyncio's
    /// `run_in_executor` raises `RuntimeError` then.
    pub fn run_in_executor<T, F>(&self, f: F) -> InExecutor<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.default_executor().run(f)
    }

    /// The pool [`run_in_executor`](Self::run_in_executor) uses from now
    /// on: Tornado's `IOLoop.set_default_executor(executor)`. Work already
    /// given to the previous pool finishes there; if the loop held the
    /// previous pool's only handle (the pool it started itself, say), that
    /// pool is shut down without waiting (the loop's thread must not block
    /// on it), its threads ending once that work is done.
    ///
    /// When the loop's thread ends (the loop is dropped with the thread's
    /// locals, even when a callback holding a clone keeps it in a cycle),
    /// the loop drops its handle to the pool. The pool it started itself
    /// has no other handle, so that is [`ThreadPool`]'s last-handle drop:
    /// the thread's end waits for the queued jobs and joins the pool's
    /// threads, as Python joins its executors' threads at interpreter exit.
    /// On Linux (glibc) that includes the main thread, when `main` returns
    /// or calls [`std::process::exit`]: both run the main thread's
    /// thread-local destructors. (A loop whose thread is itself a pool
    /// thread, a job's own loop, does not wait: see [`ThreadPool`].) (asyncio's `loop.close()` shuts its
    /// default executor down without waiting, `asyncio.run` waits, with
    /// `loop.shutdown_default_executor()`.) A pool given here is shut down
    /// when its last handle goes, or by [`ThreadPool::shutdown`]: it may
    /// serve other loops too (one pool for every
    /// [`run_workers`](crate::run_workers) worker), and shutting it down
    /// with one of them would break the others.
    ///
    /// A job that may never return (blocked on a socket without a
    /// timeout, say) would so keep the loop's thread, and the process
    /// when that is the main thread, from ending: shut the pool down
    /// without waiting first, through
    /// [`default_executor`](Self::default_executor).
    pub fn set_default_executor(&self, pool: ThreadPool) {
        let previous = self.inner.executor.borrow_mut().replace(pool);
        if let Some(previous) = previous {
            // The only handle (the pool this loop started): nobody else can
            // use it any more, so it is shut down detached.
            if Arc::strong_count(&previous.shared) == 1 {
                previous.shared.core.shutdown(false, false);
            }
            drop(previous);
        }
    }

    /// A handle to the pool [`run_in_executor`](Self::run_in_executor)
    /// uses: the one given to
    /// [`set_default_executor`](Self::set_default_executor), or the one
    /// the loop started itself (started now, without threads, if there is
    /// none yet). Tornado keeps it private (`IOLoop._executor`, asyncio's
    /// `loop._default_executor`); here it is how a program leaves jobs
    /// that may never return behind: `shutdown(false)` on it, and the end
    /// of the loop's thread no longer waits for them (see
    /// [`ThreadPool`]), as asyncio's `loop.close()` does not. After that
    /// `run_in_executor` panics, as asyncio's does after
    /// `shutdown_default_executor()`.
    ///
    /// ```
    /// use cyclone::ioloop::IOLoop;
    /// use std::time::Duration;
    ///
    /// std::thread::spawn(|| {
    ///     // A job that may never return.
    ///     let stuck = IOLoop::current().run_in_executor(|| std::thread::sleep(Duration::from_secs(3600)));
    ///     drop(stuck);
    ///     // The thread's end (main returning, for the main thread) does not wait for it.
    ///     IOLoop::current().default_executor().shutdown(false);
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    ///
    /// Holding the handle keeps the pool: when the loop's is not the last
    /// one any more, the loop's end does not shut it down, and
    /// `set_default_executor` does not either; the last handle's drop
    /// does.
    pub fn default_executor(&self) -> ThreadPool {
        self.inner
            .executor
            .borrow_mut()
            .get_or_insert_with(ThreadPool::with_default_size)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioloop::isolated;

    thread_local! {
        /// Set, a pool thread started from this thread fails to start,
        /// as when the OS refuses one (out of memory or of processes).
        pub(super) static REFUSE_THREADS: Cell<bool> = const { Cell::new(false) };
    }

    /// Polls `job` once: its result, or the panic awaiting it resumes.
    fn poll_once<T>(job: &mut InExecutor<T>) -> std::thread::Result<Poll<T>> {
        let mut cx = Context::from_waker(Waker::noop());
        catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *job).poll(&mut cx)))
    }

    /// A pool that could start no thread (the OS refused each one): its
    /// jobs waited for the next submit to try again, but after
    /// `shutdown` none comes, and their futures were left pending for
    /// ever while `shutdown(true)` returned as if they had run. The
    /// shutdown tries once more; a thread started then runs them.
    #[test]
    fn shutdown_starts_a_thread_for_jobs_queued_when_none_could_start() {
        let pool = ThreadPool::new(2);
        REFUSE_THREADS.with(|r| r.set(true));
        let mut job = pool.run(|| 42);
        REFUSE_THREADS.with(|r| r.set(false));
        assert_eq!(pool.shared.core.lock().alive.len(), 0);
        pool.shutdown(true);
        assert!(
            matches!(poll_once(&mut job), Ok(Poll::Ready(42))),
            "the queued job did not run"
        );
    }

    /// The same, with the shutdown's thread refused too: the jobs can
    /// never run, and are cancelled (awaiting one panics, saying why).
    #[test]
    fn shutdown_cancels_jobs_that_no_thread_can_run() {
        let pool = ThreadPool::new(2);
        REFUSE_THREADS.with(|r| r.set(true));
        let mut job = pool.run(|| 42);
        pool.shutdown(true);
        REFUSE_THREADS.with(|r| r.set(false));
        let panic = match poll_once(&mut job) {
            Err(panic) => panic,
            Ok(Poll::Pending) => panic!("the job's future was left pending"),
            Ok(Poll::Ready(_)) => panic!("the job ran without a thread"),
        };
        assert_eq!(panic.downcast_ref::<&str>(), Some(&NO_THREAD));
    }

    /// A refused thread was logged under the pool's lock: a logger that
    /// writes through the pool (`pool.run(...)`) waited for that lock for
    /// ever. The logger here looks at the lock instead, for each refusal
    /// (from `run` and from `shutdown`'s last try).
    #[test]
    fn a_refused_thread_is_logged_outside_the_pools_lock() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{OnceLock, TryLockError};
        static CORE: OnceLock<Arc<Core>> = OnceLock::new();
        static FREE: AtomicUsize = AtomicUsize::new(0);
        static HELD: AtomicUsize = AtomicUsize::new(0);
        struct LooksAtThePool;
        impl log::Log for LooksAtThePool {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                true
            }
            fn log(&self, record: &log::Record<'_>) {
                let Some(core) = CORE.get() else { return };
                if !record.args().to_string().contains("cannot start a thread") {
                    return;
                }
                let held = matches!(core.state.try_lock(), Err(TryLockError::WouldBlock));
                (if held { &HELD } else { &FREE }).fetch_add(1, Ordering::SeqCst);
            }
            fn flush(&self) {}
        }
        if isolated("ioloop::thread_pool::tests::a_refused_thread_is_logged_outside_the_pools_lock")
        {
            return;
        }
        log::set_logger(&LooksAtThePool).expect("the child's first logger");
        log::set_max_level(log::LevelFilter::Trace);
        let pool = ThreadPool::new(2);
        assert!(CORE.set(Arc::clone(&pool.shared.core)).is_ok());
        REFUSE_THREADS.with(|r| r.set(true));
        let job = pool.run(|| 42);
        pool.shutdown(true);
        REFUSE_THREADS.with(|r| r.set(false));
        drop(job);
        assert_eq!(
            HELD.load(Ordering::SeqCst),
            0,
            "logged under the pool's lock"
        );
        assert_eq!(FREE.load(Ordering::SeqCst), 2, "not both refusals logged");
    }

    /// Waits until `what` holds of `core`'s queue, 10 s at most; whether
    /// it does. What the pool signals on `ended` (a thread listed as
    /// waiting in a shutdown, one ended or joined) is seen at once; a
    /// thread taken to join, which nothing signals, at the next look, a
    /// millisecond later.
    fn wait_until(core: &Core, what: impl Fn(&Queue) -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut q = core.lock();
        while !what(&q) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let tick = left.min(std::time::Duration::from_millis(1));
            q = core
                .ended
                .wait_timeout(q, tick)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// The thread-local of the two tests below: dropped when its pool
    /// thread ends, it waits until a caller outside the pools has taken
    /// that thread to join, and a thread of each other pool in `.1` too
    /// (inside `shutdown(true)`, which joins a thread once it has ended),
    /// then shuts `.0` down with wait and says it returned, and whether
    /// those joins were under way.
    struct ShutsDownWhenJoined(ThreadPool, Vec<Arc<Core>>, std::sync::mpsc::Sender<bool>);

    impl Drop for ShutsDownWhenJoined {
        fn drop(&mut self) {
            let me = std::thread::current().id();
            let own = OWN_POOL.with(|own| own.borrow().as_ref().and_then(Weak::upgrade));
            let joined = own.is_some_and(|own| wait_until(&own, |q| q.joining.contains(&me)))
                && self
                    .1
                    .iter()
                    .all(|core| wait_until(core, |q| !q.joining.is_empty()));
            self.0.shutdown(true);
            let _ = self.2.send(joined);
        }
    }

    thread_local! {
        static SHUTS_DOWN: RefCell<Option<ShutsDownWhenJoined>> = const { RefCell::new(None) };
    }

    /// A pool thread's thread-local destructor calling `shutdown(true)` on
    /// its own pool while a caller outside the pool joins that thread: it
    /// waited for that join, of its own thread, for ever. It now returns
    /// (it has no other thread to wait for), and the outside caller once
    /// the thread has ended. In a child process: a deadlock would leave
    /// threads behind that hold the pool.
    #[test]
    fn a_pool_thread_s_destructor_shutting_its_own_pool_down_does_not_wait_for_its_join() {
        if isolated(
            "ioloop::thread_pool::tests::\
             a_pool_thread_s_destructor_shutting_its_own_pool_down_does_not_wait_for_its_join",
        ) {
            return;
        }
        let pool = ThreadPool::new(1);
        let (tx, returned) = std::sync::mpsc::channel();
        let p = pool.clone();
        let arm = pool.run(move || {
            SHUTS_DOWN.with(|d| *d.borrow_mut() = Some(ShutsDownWhenJoined(p, Vec::new(), tx)));
        });
        pool.shutdown(true);
        assert_eq!(
            returned.try_recv(),
            Ok(true),
            "shutdown(true) returned before the thread's destructor did, or \
             the destructor ran before its thread was taken to join"
        );
        drop(arm);
    }

    /// Two pools whose threads' thread-locals, dropped when the threads
    /// end, shut the other pool down with wait, while two callers outside
    /// the pools (`a.shutdown(true)`, `b.shutdown(true)`) each join one of
    /// those threads: each destructor waited for the join of the other's
    /// thread, for ever. Each now skips the other, listed as waiting in a
    /// shutdown, and the outside callers return once both threads have
    /// ended. In a child process, as above.
    #[test]
    fn pool_threads_destructors_shutting_each_other_s_pool_down_while_joined_do_not_wait() {
        if isolated(
            "ioloop::thread_pool::tests::\
             pool_threads_destructors_shutting_each_other_s_pool_down_while_joined_do_not_wait",
        ) {
            return;
        }
        let (a, b) = (ThreadPool::new(1), ThreadPool::new(1));
        let (tx, returned) = std::sync::mpsc::channel();
        let arms: Vec<_> = [(&a, &b), (&b, &a)]
            .into_iter()
            .map(|(on, other)| {
                let (other, tx) = (other.clone(), tx.clone());
                let also = vec![Arc::clone(&other.shared.core)];
                on.run(move || {
                    SHUTS_DOWN
                        .with(|d| *d.borrow_mut() = Some(ShutsDownWhenJoined(other, also, tx)));
                })
            })
            .collect();
        let on_b = b.clone();
        let outside = std::thread::spawn(move || on_b.shutdown(true));
        a.shutdown(true);
        outside.join().unwrap();
        b.shutdown(true);
        for _ in 0..2 {
            assert_eq!(
                returned.try_recv(),
                Ok(true),
                "shutdown(true) outside the pools returned before a thread's destructor did, \
                 or a destructor ran before both threads were taken to join"
            );
        }
        drop(arms);
    }

    /// Whether every thread of `pools` has ended and been joined.
    fn all_joined(pools: &[&ThreadPool]) -> bool {
        pools.iter().all(|p| {
            let q = p.shared.core.lock();
            q.alive.is_empty() && q.threads.is_empty() && q.joining.is_empty()
        })
    }

    /// Jobs that call `shutdown(true)` on their own pool: each waits for the
    /// pool's other threads (here a slow job's, which ends only once both
    /// wait in their shutdown) but not for itself, nor for another job
    /// waiting there too. Python deadlocks with two such jobs (each joins
    /// the other) and raises "cannot join current thread" with one. A
    /// caller outside the pool then waits for every thread, those two
    /// included, and the job queued behind them still runs. In a child
    /// process: a deadlock would leave threads behind that hold the pool.
    #[test]
    fn jobs_shutting_their_own_pool_down_with_wait_do_not_wait_for_each_other() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{mpsc, Barrier};
        use std::time::Duration;
        if isolated(
            "ioloop::thread_pool::tests::\
             jobs_shutting_their_own_pool_down_with_wait_do_not_wait_for_each_other",
        ) {
            return;
        }
        let pool = ThreadPool::new(3);
        let slow_done = Arc::new(AtomicBool::new(false));
        let (s, core) = (slow_done.clone(), Arc::clone(&pool.shared.core));
        let mut slow = pool.run(move || {
            let both_waited = wait_until(&core, |q| q.waiting_in_shutdown.len() == 2);
            s.store(true, Ordering::SeqCst);
            both_waited
        });
        let both = Arc::new(Barrier::new(2));
        let (tx, rx) = mpsc::channel();
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (p, b, s, tx) = (pool.clone(), both.clone(), slow_done.clone(), tx.clone());
                pool.run(move || {
                    b.wait();
                    p.shutdown(true);
                    tx.send(s.load(Ordering::SeqCst)).unwrap();
                })
            })
            .collect();
        let after = Arc::new(AtomicUsize::new(0));
        let a = after.clone();
        let queued = pool.run(move || a.fetch_add(1, Ordering::SeqCst));
        for _ in 0..2 {
            let saw_slow_done = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a job shutting its own pool down with wait never returned");
            assert!(
                saw_slow_done,
                "shutdown(true) did not wait for the other threads"
            );
        }
        pool.shutdown(true);
        assert_eq!(
            after.load(Ordering::SeqCst),
            1,
            "the queued job did not run"
        );
        assert!(
            matches!(poll_once(&mut slow), Ok(Poll::Ready(true))),
            "the slow job ended before both callers waited in their shutdown"
        );
        drop((callers, queued));

        // Alone on a one-thread pool: returns at once, and what is queued
        // behind the job runs after it.
        let pool = ThreadPool::new(1);
        let p = pool.clone();
        let (tx, rx) = mpsc::channel();
        let job = pool.run(move || {
            p.shutdown(true);
            tx.send("returned").unwrap();
        });
        let a = after.clone();
        let queued = pool.run(move || a.fetch_add(1, Ordering::SeqCst));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("returned"));
        pool.shutdown(true);
        assert_eq!(
            after.load(Ordering::SeqCst),
            2,
            "the queued job did not run"
        );
        drop((job, queued));
    }

    /// A job of pool A calling `b.shutdown(true)` while a job of B calls
    /// `a.shutdown(true)`: each waited for the other's thread, which
    /// Python's executors do for ever. Each now waits for the other pool's
    /// threads but the one waiting in a shutdown too (here each pool's slow
    /// job, which ends only once the other pool's job waits in its
    /// shutdown), and a caller outside both pools then waits for every
    /// thread. In a child process, as above.
    #[test]
    fn jobs_shutting_each_other_s_pool_down_with_wait_do_not_wait_for_each_other() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Barrier};
        use std::time::Duration;
        if isolated(
            "ioloop::thread_pool::tests::\
             jobs_shutting_each_other_s_pool_down_with_wait_do_not_wait_for_each_other",
        ) {
            return;
        }
        let (a, b) = (ThreadPool::new(2), ThreadPool::new(2));
        // The four jobs run at once, each on a thread of its own.
        let all = Arc::new(Barrier::new(4));
        let slow_done = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        // A's slow job waits for B's job to wait in `a.shutdown(true)`,
        // and B's for A's.
        let mut slow: Vec<_> = [(&a, &b), (&b, &a)]
            .into_iter()
            .zip(&slow_done)
            .map(|((on, other), done)| {
                let (all, done) = (all.clone(), done.clone());
                let other = Arc::clone(&other.shared.core);
                on.run(move || {
                    all.wait();
                    let waited = wait_until(&other, |q| q.waiting_in_shutdown.len() == 1);
                    done.store(true, Ordering::SeqCst);
                    waited
                })
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        // A's job shuts B down (and sees B's slow job done), B's shuts A down.
        let callers: Vec<_> = [(&a, b.clone(), 1), (&b, a.clone(), 0)]
            .into_iter()
            .map(|(on, other, i)| {
                let (all, tx, s) = (all.clone(), tx.clone(), slow_done[i].clone());
                on.run(move || {
                    all.wait();
                    other.shutdown(true);
                    tx.send(s.load(Ordering::SeqCst)).unwrap();
                })
            })
            .collect();
        for _ in 0..2 {
            let saw_slow_done = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a job shutting the other pool down with wait never returned");
            assert!(
                saw_slow_done,
                "shutdown(true) did not wait for the other pool's threads"
            );
        }
        a.shutdown(true);
        b.shutdown(true);
        assert!(
            all_joined(&[&a, &b]),
            "shutdown(true) outside the pools returned before their threads ended"
        );
        for job in &mut slow {
            assert!(
                matches!(poll_once(job), Ok(Poll::Ready(true))),
                "a slow job ended before the other pool's job waited in its shutdown"
            );
        }
        drop(callers);
    }

    /// A pool thread's thread-local destructor, run once its job loop has
    /// ended, calling `shutdown(true)` is a pool thread waiting in a
    /// shutdown as a job calling it is. Here pool A's thread drops a
    /// thread-local that calls `b.shutdown(true)` while a job of B, which
    /// shut A down, waits in `a.shutdown(true)`: the destructor waited for
    /// B's job and the job for A's thread (its join), for ever. The
    /// destructor now waits for B's other threads (a slow job's, which
    /// ends only once the destructor waits in its shutdown) but not for
    /// that job, which returns once A's other threads (none) have ended.
    /// In a child process, as above.
    #[test]
    fn a_pool_thread_s_destructor_waiting_in_a_shutdown_is_not_waited_for() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Barrier};
        use std::time::Duration;
        struct ShutsDown(
            ThreadPool,
            Arc<AtomicBool>,
            mpsc::Sender<(&'static str, bool)>,
        );
        impl Drop for ShutsDown {
            fn drop(&mut self) {
                self.0.shutdown(true);
                let _ = self.2.send(("destructor", self.1.load(Ordering::SeqCst)));
            }
        }
        thread_local! {
            static SHUTS_DOWN_B: RefCell<Option<ShutsDown>> = const { RefCell::new(None) };
        }
        if isolated(
            "ioloop::thread_pool::tests::\
             a_pool_thread_s_destructor_waiting_in_a_shutdown_is_not_waited_for",
        ) {
            return;
        }
        let (a, b) = (ThreadPool::new(1), ThreadPool::new(2));
        let slow_done = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        // A's only thread keeps a thread-local that shuts B down with
        // wait when the thread ends.
        let (armed_tx, armed) = mpsc::channel();
        let (on_b, s, t) = (b.clone(), slow_done.clone(), tx.clone());
        let arm = a.run(move || {
            SHUTS_DOWN_B.with(|d| *d.borrow_mut() = Some(ShutsDown(on_b, s, t)));
            armed_tx.send(()).unwrap();
        });
        armed
            .recv_timeout(Duration::from_secs(10))
            .expect("A's job did not run");
        // B: a slow job, ending once A's thread waits in its shutdown, and
        // one (on a thread of its own) that shuts A down with wait: A's
        // thread then ends and drops the thread-local.
        let both = Arc::new(Barrier::new(2));
        let (all, s, core_a) = (both.clone(), slow_done.clone(), Arc::clone(&a.shared.core));
        let mut slow = b.run(move || {
            all.wait();
            let waited = wait_until(&core_a, |q| q.waiting_in_shutdown.len() == 1);
            s.store(true, Ordering::SeqCst);
            waited
        });
        let on_a = a.clone();
        let caller = b.run(move || {
            both.wait();
            on_a.shutdown(true);
            tx.send(("job", true)).unwrap();
        });
        let mut returned = Vec::new();
        for _ in 0..2 {
            let (who, saw_slow_done) = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a shutdown(true) from a job or a pool thread's destructor never returned");
            assert!(
                saw_slow_done,
                "shutdown(true) from a pool thread's destructor did not wait for the other pool's threads"
            );
            returned.push(who);
        }
        returned.sort_unstable();
        assert_eq!(returned, ["destructor", "job"]);
        a.shutdown(true);
        b.shutdown(true);
        assert!(
            matches!(poll_once(&mut slow), Ok(Poll::Ready(true))),
            "the slow job ended before the destructor waited in its shutdown"
        );
        drop((arm, caller));
    }
}
