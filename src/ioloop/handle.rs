//! State shared with other threads: the cross-thread callback queue, the
//! stop request, the executor's ready queue and the `mio::Waker` that
//! interrupts a sleeping `poll`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) type SendCallback = Box<dyn FnOnce() + Send>;

pub(crate) struct Shared {
    pub(crate) waker: mio::Waker,
    pub(crate) callbacks: Mutex<Vec<SendCallback>>,
    pub(crate) ready_tasks: Mutex<Vec<usize>>,
    pub(crate) stop: AtomicBool,
    /// True while the loop thread is inside (or about to enter) `poll`:
    /// only then must a wake-up go through the waker's syscall.
    pub(crate) polling: AtomicBool,
    /// Set when something was queued; cleared by the loop when it drains.
    pub(crate) pending: AtomicBool,
    /// The loop is gone (its thread ended or it was dropped): callbacks
    /// sent to it are refused instead of piling up.
    pub(crate) closed: AtomicBool,
    /// What the loop is doing, for `set_blocking_log_threshold`'s watch.
    pub(crate) progress: super::blocking::Progress,
}

impl Shared {
    /// Marks the loop gone and drops what was queued for it.
    pub(crate) fn close(&self) {
        let queued = {
            let mut q = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
            self.closed.store(true, Ordering::SeqCst);
            std::mem::take(&mut *q)
        };
        drop(queued);
        let mut ready = self.ready_tasks.lock().unwrap_or_else(|e| e.into_inner());
        *ready = Vec::new();
    }

    /// Queues `item` on `queue` (one of ours) and wakes the loop; false,
    /// dropping `item`, once the loop is gone. `closed` is read under the
    /// queue's lock, which `close` takes too, so nothing is queued after
    /// `close` emptied the queue.
    fn send<T>(&self, queue: &Mutex<Vec<T>>, item: T) -> bool {
        {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::SeqCst) {
                return false;
            }
            q.push(item);
        }
        self.notify();
        true
    }

    pub(crate) fn notify(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if self.polling.load(Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("IOLoop waker failed: {e}");
            }
        }
    }
}

/// A `Send + Sync + Clone` handle to an [`IOLoop`](super::IOLoop), for
/// other threads: `add_callback` and `stop` wake a loop sleeping in `poll`
/// through `mio::Waker`.
#[derive(Clone)]
pub struct IOLoopHandle {
    pub(crate) shared: Arc<Shared>,
}

impl IOLoopHandle {
    /// Runs `f` on the loop's thread at its next iteration. Returns false,
    /// dropping `f`, if the loop is gone (its thread ended, or the loop was
    /// dropped): Tornado raises "IOLoop is closing" there. A panic in `f`
    /// is caught on the loop's thread and logged, as for
    /// [`IOLoop::add_callback`](super::IOLoop::add_callback).
    pub fn add_callback(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.shared.send(&self.shared.callbacks, Box::new(f))
    }

    /// Asks the loop to stop: `start()` returns after the current iteration.
    pub fn stop(&self) {
        // Through the callback queue, so that callbacks this thread sent
        // before still run first (Tornado: `add_callback(loop.stop)`).
        let sent = self.shared.send(
            &self.shared.callbacks,
            Box::new(|| super::IOLoop::current().stop()),
        );
        if !sent {
            self.shared.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for IOLoopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IOLoopHandle")
    }
}

/// The waker given to futures spawned on the loop.
pub(crate) struct TaskWaker {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
}

impl std::task::Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A loop that is gone polls nothing: its ids are not piled up.
        self.shared.send(&self.shared.ready_tasks, self.id);
    }
}
