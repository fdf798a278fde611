//! Blocking work off the loop: Tornado's `IOLoop.run_in_executor` and
//! `set_default_executor`, with a [`ThreadPool`] standing for Python's
//! `concurrent.futures.ThreadPoolExecutor`.
//!
//! The loop's thread must never block (every connection waits while it
//! does). A database driver, a file read or a CPU-heavy computation goes
//! to a pool thread; the task awaiting it is woken on the loop when the
//! result is there, and whatever the pool thread computed comes back to
//! the loop's thread to be used there.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::IOLoop;

type Job = Box<dyn FnOnce() + Send>;

/// A pool of threads for blocking work: Python's `ThreadPoolExecutor`.
/// Threads are started as work arrives, up to `max_threads`, and wait
/// for more once started; they end when the last clone of the pool is
/// dropped and the work queued before is done. Cloning gives another
/// handle to the same pool; it may be shared by several loops' threads.
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
    shared: Arc<PoolShared>,
}

struct PoolShared {
    jobs: Mutex<Sender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    max_threads: usize,
    /// Threads started so far.
    threads: AtomicUsize,
    /// Threads done with their last job and not yet given another (a
    /// semaphore, as Python's `_idle_semaphore`: a submit claims one).
    idle: Arc<AtomicUsize>,
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least one).
    pub fn new(max_threads: usize) -> ThreadPool {
        let (tx, rx) = mpsc::channel();
        ThreadPool {
            shared: Arc::new(PoolShared {
                jobs: Mutex::new(tx),
                queue: Arc::new(Mutex::new(rx)),
                max_threads: max_threads.max(1),
                threads: AtomicUsize::new(0),
                idle: Arc::new(AtomicUsize::new(0)),
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
        self.shared.max_threads
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
    pub fn run<T, F>(&self, f: F) -> InExecutor<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            state: State::Queued(Box::new(f)),
            waker: None,
        }));
        let job_slot = Arc::clone(&slot);
        let job: Job = Box::new(move || run_job(&job_slot));
        self.submit(job);
        InExecutor { slot }
    }

    fn submit(&self, job: Job) {
        let s = &self.shared;
        let sent = s.jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        // The receiver lives as long as `s` does: sending cannot fail.
        debug_assert!(sent.is_ok());
        // An idle thread takes the job; without one, a thread more if
        // there is room.
        let claimed = s
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !claimed {
            let started = s
                .threads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < s.max_threads).then_some(n + 1)
                })
                .is_ok();
            if started {
                self.start_thread();
            }
        }
    }

    fn start_thread(&self) {
        let queue = Arc::clone(&self.shared.queue);
        let idle = Arc::clone(&self.shared.idle);
        let spawned = std::thread::Builder::new()
            .name("cyclone-executor".into())
            .spawn(move || loop {
                // Started for a job, or idle again and claimed by one.
                let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                match job {
                    // `f`'s own panic is the awaiting task's (caught in
                    // `run`); one out of the job's bookkeeping (a waker's
                    // `wake`, the drop here of a result whose future was
                    // dropped) must not end the thread: the pool would go
                    // on counting it, and with every thread gone later
                    // jobs would wait forever.
                    Ok(job) => {
                        if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
                            log::error!(
                                "run_in_executor: a job panicked after its function returned: {}",
                                super::panic_message(&panic)
                            );
                            super::drop_panic_payload(panic);
                        }
                    }
                    // Every handle to the pool is gone: nothing more comes.
                    Err(_) => return,
                }
                idle.fetch_add(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            // The jobs wait for the threads already running; with none,
            // they wait for the next submit to try again.
            self.shared.threads.fetch_sub(1, Ordering::SeqCst);
            log::error!("run_in_executor: cannot start a thread: {e}");
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("max_threads", &self.shared.max_threads)
            .field("threads", &self.shared.threads.load(Ordering::SeqCst))
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
    pub fn run_in_executor<T, F>(&self, f: F) -> InExecutor<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let pool = self
            .inner
            .executor
            .borrow_mut()
            .get_or_insert_with(ThreadPool::with_default_size)
            .clone();
        pool.run(f)
    }

    /// The pool [`run_in_executor`](Self::run_in_executor) uses from now
    /// on: Tornado's `IOLoop.set_default_executor(executor)`. Work already
    /// given to the previous pool finishes there.
    pub fn set_default_executor(&self, pool: ThreadPool) {
        *self.inner.executor.borrow_mut() = Some(pool);
    }
}
