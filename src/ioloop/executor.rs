//! A small single-threaded futures executor driven by the loop: `spawn`
//! and `run_sync`. A task's waker pushes its id onto the loop's ready queue
//! (and wakes a sleeping `poll` through the `mio::Waker` when called from
//! another thread or while the loop sleeps).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::handle::TaskWaker;
use super::IOLoop;

pub(crate) struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    waker: Waker,
}

impl IOLoop {
    /// Runs `future` on this loop; it is first polled on the next iteration
    /// (Tornado's `spawn_callback` with a coroutine).
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
        /// If a task panics while polled (the panic unwinds out of `start`):
        /// frees its slot, and queues the tasks after it again so they are
        /// not forgotten. Forgotten on the normal path, so it costs nothing.
        struct Unwinding<'a> {
            lp: &'a IOLoop,
            ids: &'a [usize],
            at: usize,
        }
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                let id = self.ids[self.at];
                let mut tasks = self.lp.inner.tasks.borrow_mut();
                if tasks.contains(id) {
                    tasks.remove(id);
                }
                drop(tasks);
                let rest = &self.ids[self.at + 1..];
                self.lp
                    .inner
                    .ready_local
                    .borrow_mut()
                    .extend_from_slice(rest);
            }
        }
        for (at, &id) in ids.iter().enumerate() {
            let task = self
                .inner
                .tasks
                .borrow_mut()
                .get_mut(id)
                .and_then(Option::take);
            let Some(mut task) = task else { continue };
            let mut cx = Context::from_waker(&task.waker);
            let unwinding = Unwinding {
                lp: self,
                ids: &ids,
                at,
            };
            let poll = task.future.as_mut().poll(&mut cx);
            std::mem::forget(unwinding);
            match poll {
                Poll::Ready(()) => {
                    let mut tasks = self.inner.tasks.borrow_mut();
                    if tasks.contains(id) {
                        tasks.remove(id);
                    }
                }
                Poll::Pending => {
                    if let Some(slot) = self.inner.tasks.borrow_mut().get_mut(id) {
                        *slot = Some(task);
                    }
                }
            }
        }
    }

    /// Runs the loop until `future` completes and returns its output
    /// (Tornado's `IOLoop.run_sync`).
    ///
    /// # Panics
    /// If called while the loop is running (from inside a callback).
    pub fn run_sync<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> T {
        let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        let out = slot.clone();
        let lp = self.clone();
        self.spawn(async move {
            let v = future.await;
            *out.borrow_mut() = Some(v);
            lp.stop();
        });
        loop {
            self.start();
            if let Some(v) = slot.borrow_mut().take() {
                return v;
            }
        }
    }
}

/// A future that completes after `delay` on the current thread's loop
/// (Tornado's `gen.sleep`). Dropping it before then cancels its timer.
pub fn sleep(delay: std::time::Duration) -> Sleep {
    Sleep { delay, state: None }
}

/// The future returned by [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    delay: std::time::Duration,
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
        let delay = self.delay;
        let (shared, _) = self.state.get_or_insert_with(|| {
            let shared = Rc::new(SleepShared::default());
            let s2 = shared.clone();
            let h = IOLoop::current().call_later(delay, move || {
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
