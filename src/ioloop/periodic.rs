//! `PeriodicCallback`: calls a function every `interval`, scheduled from the
//! previous *scheduled* time (not from when the callback ran), so lateness
//! does not accumulate; missed periods are skipped, not run in a burst
//! (Tornado's behaviour).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::{IOLoop, TimeoutHandle};

struct State {
    callback: RefCell<Box<dyn FnMut()>>,
    interval: Duration,
    running: Cell<bool>,
    next: Cell<Option<Instant>>,
    handle: Cell<Option<TimeoutHandle>>,
}

/// Calls a function periodically on the current thread's loop.
#[derive(Clone)]
pub struct PeriodicCallback {
    state: Rc<State>,
}

impl PeriodicCallback {
    /// A periodic callback of `f` every `interval` (not started).
    ///
    /// # Panics
    /// If `interval` is zero.
    pub fn new(f: impl FnMut() + 'static, interval: Duration) -> PeriodicCallback {
        assert!(!interval.is_zero(), "PeriodicCallback interval must be > 0");
        PeriodicCallback {
            state: Rc::new(State {
                callback: RefCell::new(Box::new(f)),
                interval,
                running: Cell::new(false),
                next: Cell::new(None),
                handle: Cell::new(None),
            }),
        }
    }

    /// Starts calling; the first call is one interval from now.
    pub fn start(&self) {
        if self.state.running.replace(true) {
            return;
        }
        let lp = IOLoop::current();
        self.state.next.set(Some(lp.time()));
        schedule(&self.state, &lp);
    }

    /// Stops calling (a call in progress finishes).
    pub fn stop(&self) {
        self.state.running.set(false);
        if let Some(h) = self.state.handle.take() {
            IOLoop::current().remove_timeout(h);
        }
    }

    /// Whether it is started.
    pub fn is_running(&self) -> bool {
        self.state.running.get()
    }
}

/// The next deadline after `prev` that is later than `now`.
pub(crate) fn next_tick(prev: Instant, interval: Duration, now: Instant) -> Instant {
    let mut next = prev + interval;
    if next <= now {
        let behind = now - next;
        let skip = behind.as_nanos() / interval.as_nanos() + 1;
        next += interval * skip as u32;
    }
    next
}

fn schedule(state: &Rc<State>, lp: &IOLoop) {
    let prev = state.next.get().unwrap_or_else(|| lp.time());
    let next = next_tick(prev, state.interval, lp.time());
    state.next.set(Some(next));
    let weak: Weak<State> = Rc::downgrade(state);
    let h = lp.call_at(next, move || {
        let Some(state) = weak.upgrade() else { return };
        if !state.running.get() {
            return;
        }
        state.handle.set(None);
        if let Ok(mut cb) = state.callback.try_borrow_mut() {
            cb();
        }
        if state.running.get() {
            schedule(&state, &IOLoop::current());
        }
    });
    state.handle.set(Some(h));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_skips_missed_periods_without_drift() {
        let t0 = Instant::now();
        let i = Duration::from_millis(100);
        assert_eq!(next_tick(t0, i, t0), t0 + i);
        assert_eq!(
            next_tick(t0, i, t0 + Duration::from_millis(150)),
            t0 + i * 2
        );
        assert_eq!(
            next_tick(t0, i, t0 + Duration::from_millis(200)),
            t0 + i * 3
        );
        assert_eq!(next_tick(t0, i, t0 + Duration::from_millis(99)), t0 + i);
    }
}
