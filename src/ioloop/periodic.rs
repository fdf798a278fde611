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
//! An async callback ([`PeriodicCallback::new_async`]) is awaited before
//! the next call is scheduled, as Tornado awaits a coroutine callback.
//!
//! With a jitter ([`PeriodicCallback::jitter`], Tornado's `jitter=`),
//! each period is drawn anew around the interval, so that many callbacks
//! started together (a ping timer per connection, say) drift apart.
//!
//! A panic in the callback is caught, logged at error level and counted in
//! [`Counter::CallbackPanics`](super::Counter::CallbackPanics), and the
//! callback stays scheduled: Tornado's `PeriodicCallback._run` logs the
//! exception and schedules the next call in a `finally`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::{deadline_after, IOLoop, Kind, TimeoutHandle};

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

enum Callback {
    Sync(Box<dyn FnMut()>),
    /// Each call's future is awaited before the next call is scheduled.
    Async(Box<dyn FnMut() -> LocalFuture>),
}

struct State {
    callback: RefCell<Callback>,
    /// Tornado's `callback_time`: read each time the next call is
    /// scheduled, so a change applies from the call after the pending one.
    interval: Cell<Duration>,
    /// Tornado's `jitter`: each period is `interval × (1 + jitter × (r −
    /// ½))`, `r` uniform in [0, 1).
    jitter: Cell<f64>,
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
        PeriodicCallback::make(Callback::Sync(Box::new(f)), interval)
    }

    /// A periodic callback of an async `f` (Tornado's `PeriodicCallback`
    /// of a coroutine function): each call's future runs on the loop as a
    /// task and is awaited before the next call is scheduled, so calls
    /// never overlap; the next one is then at the first period of the
    /// schedule still ahead, the periods missed meanwhile skipped, as
    /// Tornado awaits the callback's awaitable and then schedules. A panic
    /// in `f` or in its future is logged and counted as
    /// [`new`](Self::new)'s, and the callback stays scheduled.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cyclone::ioloop::{sleep, IOLoop, PeriodicCallback};
    ///
    /// // A check that takes a while: every 10 s, never two at once.
    /// PeriodicCallback::new_async(
    ///     || async { sleep(Duration::from_secs(3)).await },
    ///     Duration::from_secs(10),
    /// )
    /// .start();
    /// IOLoop::current().start();
    /// ```
    ///
    /// # Panics
    /// If `interval` is zero.
    pub fn new_async<F>(mut f: impl FnMut() -> F + 'static, interval: Duration) -> PeriodicCallback
    where
        F: Future<Output = ()> + 'static,
    {
        let f = move || -> LocalFuture { Box::pin(f()) };
        PeriodicCallback::make(Callback::Async(Box::new(f)), interval)
    }

    /// Sets Tornado's `jitter`, for a callback made by [`new`](Self::new)
    /// or [`new_async`](Self::new_async) alike: each period is
    /// `interval × (1 + jitter × (r − ½))` for a new random `r` in [0, 1),
    /// so with `jitter` 0.1 a period falls between 95 % and 105 % of
    /// `interval`. As in Tornado, periods still count from the previous
    /// scheduled time, and missed ones are skipped.
    ///
    /// Any finite `jitter` is taken, with Tornado's formula: a negative one
    /// draws as its magnitude does, and from a magnitude of 2 on a draw can
    /// make a period of zero or less, which calls again at once (Tornado's
    /// schedule does not advance then; a period of exactly zero raises its
    /// `ZeroDivisionError` where cyclone waits a microsecond).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cyclone::ioloop::{IOLoop, PeriodicCallback};
    ///
    /// // Every 30 s, give or take 1.5 s.
    /// PeriodicCallback::new(|| log::info!("tick"), Duration::from_secs(30))
    ///     .jitter(0.1)
    ///     .start();
    /// IOLoop::current().start();
    /// ```
    ///
    /// Like Tornado's `pc.jitter = x`, it may be set on a started callback
    /// (through a clone), and applies from the next call scheduled.
    ///
    /// # Panics
    /// If `jitter` is NaN or infinite (Tornado's schedule then fails at
    /// the first call).
    pub fn jitter(self, jitter: f64) -> PeriodicCallback {
        assert!(
            jitter.is_finite(),
            "PeriodicCallback jitter must be finite, not {jitter}"
        );
        self.state.jitter.set(jitter);
        self
    }

    /// [`new`](Self::new)`(f, interval)`[`.jitter(jitter)`](Self::jitter).
    ///
    /// # Panics
    /// If `interval` is zero, or `jitter` is NaN or infinite.
    pub fn with_jitter(
        f: impl FnMut() + 'static,
        interval: Duration,
        jitter: f64,
    ) -> PeriodicCallback {
        PeriodicCallback::new(f, interval).jitter(jitter)
    }

    fn make(callback: Callback, interval: Duration) -> PeriodicCallback {
        assert_positive(interval);
        PeriodicCallback {
            state: Rc::new(State {
                callback: RefCell::new(callback),
                interval: Cell::new(interval),
                jitter: Cell::new(0.0),
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
    ///
    /// Safe in a destructor, a thread-local's included: once the thread's
    /// loop is gone (the thread is ending and the loop was dropped first),
    /// its timer went with it, and there is nothing left to remove.
    pub fn stop(&self) {
        self.state.running.set(false);
        if let Some(h) = self.state.handle.take() {
            if let Some(lp) = IOLoop::existing() {
                lp.remove_timeout(h);
            }
        }
    }

    /// Whether it is started.
    pub fn is_running(&self) -> bool {
        self.state.running.get()
    }

    /// The period (Tornado's `callback_time` attribute, read).
    pub fn callback_time(&self) -> Duration {
        self.state.interval.get()
    }

    /// Changes the period (Tornado's `pc.callback_time = ms`), also while
    /// started and from the callback itself. As in Tornado, the new period
    /// applies when the next call is scheduled: set from the callback (a
    /// sync one, or an async one before its future ends), the next call is
    /// `interval` after the current one's scheduled time; set between
    /// calls, the call already scheduled keeps its time and the new period
    /// counts from it.
    ///
    /// # Panics
    /// If `interval` is zero, as [`new`](Self::new) does.
    pub fn set_callback_time(&self, interval: Duration) {
        assert_positive(interval);
        self.state.interval.set(interval);
    }
}

/// Tornado's `ValueError: Periodic callback must have a positive
/// callback_time`.
fn assert_positive(interval: Duration) {
    assert!(!interval.is_zero(), "PeriodicCallback interval must be > 0");
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

/// One period: `interval × (1 + jitter × (r − ½))` (Tornado's
/// `_update_next`), at least a microsecond. A factor of zero or less (a
/// `jitter` of 2 or more in magnitude) is that microsecond: Tornado's
/// schedule does not advance then, and the next call is at once.
fn jittered(interval: Duration, jitter: f64, r: f64) -> Duration {
    let secs = interval.as_secs_f64() * (1.0 + jitter * (r - 0.5));
    if secs <= 0.0 {
        return Duration::from_micros(1);
    }
    // `mul_f64` panics when the product does not fit (a `Duration::MAX`
    // period, "never"): saturate instead.
    Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::MAX)
        .max(Duration::from_micros(1))
}

/// A uniform draw from [0, 1).
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("OS entropy source");
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn schedule(state: &Rc<State>, lp: &IOLoop) {
    let now = lp.time();
    let prev = state.next.get().unwrap_or(now);
    let interval = state.interval.get();
    let jitter = state.jitter.get();
    let period = if jitter != 0.0 {
        jittered(interval, jitter, unit_random())
    } else {
        interval
    };
    let next = next_tick(prev, period, now);
    state.next.set(Some(next));
    let state2 = state.clone();
    let h = lp.call_at(next, move || {
        let state = state2;
        if !state.running.get() {
            return;
        }
        state.handle.set(None);
        let lp = IOLoop::current();
        // Caught here, not by the timer's guard, so that the next call is
        // still scheduled. The borrow ends with the call, panic or not.
        let pending = match state.callback.try_borrow_mut().as_deref_mut() {
            Ok(Callback::Sync(f)) => {
                lp.guard(Kind::Periodic, f);
                None
            }
            Ok(Callback::Async(f)) => lp.guard(Kind::Periodic, f),
            Err(_) => None,
        };
        match pending {
            None => schedule_again(&state, &lp),
            Some(mut call) => lp.spawn(async move {
                std::future::poll_fn(|cx| {
                    match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
                        Ok(poll) => poll,
                        Err(payload) => {
                            IOLoop::current().callback_panicked(&Kind::Periodic, payload);
                            Poll::Ready(())
                        }
                    }
                })
                .await;
                schedule_again(&state, &IOLoop::current());
            }),
        }
    });
    state.handle.set(Some(h));
}

/// The next call after one ended, unless the callback stopped it, or
/// stopped and restarted it: `start` scheduled a timer already, and a
/// second one would double the rate.
fn schedule_again(state: &Rc<State>, lp: &IOLoop) {
    if state.running.get() && state.handle.get().is_none() {
        schedule(state, lp);
    }
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

    #[test]
    fn jitter_draws_each_period_around_the_interval() {
        let i = Duration::from_millis(100);
        assert_eq!(jittered(i, 0.1, 0.0), Duration::from_millis(95));
        assert_eq!(jittered(i, 0.1, 0.5), i);
        assert_eq!(jittered(i, 1.0, 0.0), Duration::from_millis(50));
        // Any jitter, as Tornado: a negative one mirrors its magnitude, a
        // factor of zero or less is the shortest period (not "never").
        assert_eq!(jittered(i, -0.1, 0.0), Duration::from_millis(105));
        assert_eq!(jittered(i, 1.5, 0.0), Duration::from_millis(25));
        assert_eq!(jittered(i, 3.0, 0.0), Duration::from_micros(1));
        assert_eq!(jittered(i, -3.0, 0.999), Duration::from_micros(1));
        assert_eq!(jittered(i, 3.0, 0.9), Duration::from_millis(220));
        assert!(jittered(i, 0.1, 0.999_999) < Duration::from_millis(105));
        let draws: Vec<f64> = (0..1000).map(|_| unit_random()).collect();
        assert!(draws.iter().all(|r| (0.0..1.0).contains(r)));
        assert!(draws.iter().any(|&r| r < 0.1) && draws.iter().any(|&r| r > 0.9));

        // On a loop (a fresh thread's), a sync callback's and an async
        // one's alike: the scheduled times (not when the calls ran) are
        // 37.5 to 62.5 ms apart, and not all alike.
        for is_async in [false, true] {
            let gaps = jittered_gaps(is_async);
            assert_jittered(&gaps);
        }
        assert_eq!(
            PeriodicCallback::with_jitter(|| {}, i, 0.25)
                .state
                .jitter
                .get(),
            0.25
        );
    }

    /// The gaps between the scheduled times of 12 calls of a 50 ms callback
    /// with a jitter of 0.5, on a fresh thread's loop.
    fn jittered_gaps(is_async: bool) -> Vec<Duration> {
        let times = std::thread::spawn(move || {
            let lp = IOLoop::current();
            let times = Rc::new(RefCell::new(Vec::new()));
            let times2 = times.clone();
            let slot = Rc::new(RefCell::new(None::<PeriodicCallback>));
            let slot2 = slot.clone();
            let record = move || {
                let p = slot2.borrow().clone().unwrap();
                times2.borrow_mut().push(p.state.next.get().unwrap());
                if times2.borrow().len() == 12 {
                    p.stop();
                    IOLoop::current().stop();
                }
            };
            let period = Duration::from_millis(50);
            let pc = if is_async {
                PeriodicCallback::new_async(
                    move || {
                        record();
                        std::future::ready(())
                    },
                    period,
                )
            } else {
                PeriodicCallback::new(record, period)
            }
            .jitter(0.5);
            *slot.borrow_mut() = Some(pc.clone());
            pc.start();
            lp.start();
            slot.borrow_mut().take();
            let times = times.borrow().clone();
            times
        })
        .join()
        .unwrap();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn assert_jittered(gaps: &[Duration]) {
        let (lo, hi) = (Duration::from_micros(37_500), Duration::from_micros(62_500));
        // A call late by a whole period skips one (as without a jitter).
        let in_range = gaps.iter().filter(|g| (lo..=hi).contains(*g)).count();
        assert!(gaps.iter().all(|g| *g >= lo), "{gaps:?}");
        assert!(in_range >= gaps.len() / 2, "{gaps:?}");
        let mut distinct = gaps.to_vec();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 5, "{gaps:?}");
    }
}
