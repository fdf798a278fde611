//! `PeriodicCallback`: calls a function every `interval`, scheduled from the
//! previous *scheduled* time (not from when the callback ran), so lateness
//! does not accumulate; missed periods are skipped, not run in a burst
//! (Tornado's behaviour).
//!
//! While started, the loop's pending timer owns the state, as Tornado's
//! loop keeps a started `PeriodicCallback` alive:
//! `PeriodicCallback::new(f, d).start();` as a statement keeps calling `f`.
//! Keep a clone to [`stop`](PeriodicCallback::stop) it.
//!
//! A panic in the callback is caught, logged at error level and counted in
//! [`Counter::CallbackPanics`](super::Counter::CallbackPanics), and the
//! callback stays scheduled: Tornado's `PeriodicCallback._run` logs the
//! exception and schedules the next call in a `finally`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{deadline_after, IOLoop, Kind, TimeoutHandle};

struct State {
    callback: RefCell<Box<dyn FnMut()>>,
    interval: Duration,
    running: Cell<bool>,
    next: Cell<Option<Instant>>,
    handle: Cell<Option<TimeoutHandle>>,
}

/// Calls a function periodically on the current thread's loop. Clones
/// control the same callback; dropping them does not stop it (the loop's
/// timer keeps it alive until [`stop`](Self::stop)).
///
/// A call that panics is logged at error level and counted in
/// [`Counter::CallbackPanics`](super::Counter::CallbackPanics); the callback
/// stays scheduled and is called again at the next period (as Tornado).
/// Stop it from the callback before panicking to end it instead.
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

/// The next deadline after `prev` that is later than `now`: `prev` plus a
/// whole number of intervals (however many were missed; computed in 128
/// bits, so no count of missed periods wraps around into a burst).
pub(crate) fn next_tick(prev: Instant, interval: Duration, now: Instant) -> Instant {
    let next = deadline_after(prev, interval);
    if next > now {
        return next;
    }
    let behind = now - next;
    let step = interval.as_nanos();
    let skip_ns = (behind.as_nanos() / step + 1) * step;
    let skip = Duration::new(
        (skip_ns / 1_000_000_000).min(u64::MAX as u128) as u64,
        (skip_ns % 1_000_000_000) as u32,
    );
    deadline_after(next, skip)
}

fn schedule(state: &Rc<State>, lp: &IOLoop) {
    let now = lp.time();
    let prev = state.next.get().unwrap_or(now);
    let next = next_tick(prev, state.interval, now);
    state.next.set(Some(next));
    let state2 = state.clone();
    let h = lp.call_at(next, move || {
        let state = state2;
        if !state.running.get() {
            return;
        }
        state.handle.set(None);
        let lp = IOLoop::current();
        if let Ok(mut cb) = state.callback.try_borrow_mut() {
            // Caught here, not by the timer's guard, so that the next call
            // is still scheduled. The borrow ends with the call, panic or not.
            lp.guard(Kind::Periodic, &mut *cb);
        }
        // Not if the callback stopped and restarted it: `start` scheduled
        // a timer already, and a second one would double the rate.
        if state.running.get() && state.handle.get().is_none() {
            schedule(&state, &lp);
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
