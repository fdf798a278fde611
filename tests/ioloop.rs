//! IOLoop behaviour: timers, callbacks, cross-thread wake-ups, the executor,
//! PeriodicCallback and stale ids. Each test runs its loop in a fresh thread
//! (one IOLoop per thread).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cyclone::ioloop::{multi, sleep, Counter, IOLoop, PeriodicCallback};
use cyclone::testing::ExpectLog;

mod util;

fn in_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("test thread panicked")
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_never_fire() {
    let fired = in_thread(|| {
        let lp = IOLoop::current();
        let log = Rc::new(RefCell::new(Vec::new()));
        for (name, ms) in [("c", 30u64), ("a", 10), ("b", 20), ("x", 15)] {
            let l = log.clone();
            let h = lp.call_later(Duration::from_millis(ms), move || l.borrow_mut().push(name));
            if name == "x" {
                assert!(lp.remove_timeout(h));
                assert!(!lp.remove_timeout(h));
            }
        }
        let l = log.clone();
        lp.call_later(Duration::from_millis(40), move || {
            l.borrow_mut().push("end");
            IOLoop::current().stop();
        });
        lp.start();
        let v = log.borrow().clone();
        v
    });
    assert_eq!(fired, vec!["a", "b", "c", "end"]);
}

#[test]
fn timer_set_inside_callback_fires_and_loop_apis_reenter() {
    let n = in_thread(|| {
        let lp = IOLoop::current();
        let hits = Rc::new(RefCell::new(0));
        let h = hits.clone();
        lp.add_callback(move || {
            // Re-entrant use of the loop from inside a callback.
            let lp = IOLoop::current();
            let h2 = h.clone();
            lp.call_later(Duration::from_millis(5), move || {
                *h2.borrow_mut() += 1;
                let h3 = h2.clone();
                IOLoop::current().add_callback(move || {
                    *h3.borrow_mut() += 1;
                    IOLoop::current().stop();
                });
            });
        });
        lp.start();
        let v = *hits.borrow();
        v
    });
    assert_eq!(n, 2);
}

#[test]
fn add_callback_from_another_thread_wakes_a_sleeping_loop() {
    let waited = in_thread(|| {
        let lp = IOLoop::current();
        let handle = lp.handle();
        let t0 = Instant::now();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let h2 = handle.clone();
            handle.add_callback(move || h2.stop());
        });
        // No timers, no sources: poll would sleep forever without the waker.
        lp.start();
        other.join().unwrap();
        t0.elapsed()
    });
    assert!(waited >= Duration::from_millis(90), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn periodic_callback_keeps_its_period() {
    let (count, elapsed) = in_thread(|| {
        let lp = IOLoop::current();
        let count = Rc::new(RefCell::new(0u32));
        let c = count.clone();
        let t0 = Instant::now();
        let pc = PeriodicCallback::new(
            move || {
                *c.borrow_mut() += 1;
                // Each call is slow; the schedule must not drift by it.
                std::thread::sleep(Duration::from_millis(10));
                if *c.borrow() == 20 {
                    IOLoop::current().stop();
                }
            },
            Duration::from_millis(20),
        );
        pc.start();
        lp.start();
        pc.stop();
        let n = *count.borrow();
        (n, t0.elapsed())
    });
    assert_eq!(count, 20);
    // 20 periods of 20 ms: 400 ms. Scheduling from when each (10 ms) call
    // ended would drift to 600 ms; the bound sits between the two so a
    // loaded machine does not make it flaky.
    assert!(elapsed >= Duration::from_millis(395), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(550), "{elapsed:?}");
}

#[test]
fn run_sync_returns_the_futures_value_and_spawned_tasks_run() {
    let v = in_thread(|| {
        let lp = IOLoop::current();
        let (tx, rx) = mpsc::channel::<u32>();
        lp.spawn(async move {
            tx.send(7).unwrap();
        });
        let v = lp.run_sync(async { 40 + 2 });
        (v, rx.try_recv().ok())
    });
    assert_eq!(v, (42, Some(7)));
}

/// Tornado's `IOLoop.add_future`: the callback gets the future's value
/// once it completes, not before; a panicking callback is caught and
/// counted, and the loop goes on to the next.
#[test]
fn add_future_calls_back_with_the_value_once_complete() {
    let (got, panics) = in_thread(|| {
        let lp = IOLoop::current();
        let got: Rc<RefCell<Vec<(u32, Duration)>>> = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        lp.add_future(
            async {
                panic!("in the callback's future");
            },
            |()| unreachable!("a panicked future has no value"),
        );
        let g = got.clone();
        lp.add_future(
            async {
                sleep(Duration::from_millis(30)).await;
                5
            },
            move |v: u32| {
                g.borrow_mut().push((v, start.elapsed()));
                IOLoop::current().stop();
            },
        );
        lp.add_future(async { 1 }, |_: u32| panic!("in the callback"));
        let g = got.clone();
        lp.add_future(async { 2 }, move |v| {
            g.borrow_mut().push((v, start.elapsed()))
        });
        lp.call_later(Duration::from_secs(10), || panic!("timed out"));
        lp.start();
        let got = got.borrow().clone();
        (got, lp.metrics().get(Counter::CallbackPanics))
    });
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![2, 5]);
    assert!(got[1].1 >= Duration::from_millis(30), "{got:?}");
    assert_eq!(panics, 2);
}

#[test]
fn stale_conn_id_is_refused() {
    in_thread(|| {
        let lp = IOLoop::current();
        let (a, b) = mio::net::UnixStream::pair().unwrap();
        let id = lp
            .add_handler(a, mio::Interest::READABLE, |_s, _r| {})
            .unwrap();
        assert!(lp.contains(id));
        assert!(lp.remove_handler(id));
        assert!(!lp.contains(id));
        assert!(!lp.remove_handler(id));
        // The slot is reused with a new generation: the old id stays dead.
        let (c, _d) = mio::net::UnixStream::pair().unwrap();
        let id2 = lp
            .add_handler(c, mio::Interest::READABLE, |_s, _r| {})
            .unwrap();
        assert_eq!(id2.key(), id.key());
        assert_ne!(id2.generation(), id.generation());
        assert!(!lp.contains(id));
        assert!(lp.contains(id2));
        drop(b);
    });
}

#[test]
fn add_handler_reports_readiness_and_run_once_embeds_the_loop() {
    let got = in_thread(|| {
        use std::io::{Read, Write};
        let lp = IOLoop::current();
        let (a, mut b) = mio::net::UnixStream::pair().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        lp.add_handler(a, mio::Interest::READABLE, move |s, r| {
            if r.readable {
                let mut buf = [0u8; 16];
                if let Ok(n) = s.read(&mut buf) {
                    g.borrow_mut().extend_from_slice(&buf[..n]);
                }
            }
        })
        .unwrap();
        b.write_all(b"ping").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.borrow().is_empty() && Instant::now() < deadline {
            lp.run_once(Some(Duration::from_millis(50))).unwrap();
        }
        let v = got.borrow().clone();
        v
    });
    assert_eq!(got, b"ping");
}

#[test]
fn advance_clock_drives_timers() {
    in_thread(|| {
        let lp = IOLoop::current();
        let fired = Rc::new(RefCell::new(false));
        let f = fired.clone();
        lp.call_later(Duration::from_secs(3600), move || *f.borrow_mut() = true);
        lp.advance_clock(Duration::from_secs(3601));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert!(*fired.borrow());
    });
}

#[test]
fn advance_clock_by_duration_max_saturates_and_fires_every_timer() {
    in_thread(|| {
        let lp = IOLoop::current();
        let fired = Rc::new(RefCell::new(0));
        for d in [Duration::from_secs(3600 * 24 * 365), Duration::MAX] {
            let f = fired.clone();
            lp.call_later(d, move || *f.borrow_mut() += 1);
        }
        let before = lp.time();
        lp.advance_clock(Duration::MAX);
        lp.advance_clock(Duration::MAX);
        assert!(lp.time() > before + Duration::from_secs(3600 * 24 * 365 * 50));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert_eq!(*fired.borrow(), 2);
    });
}

#[test]
fn sleep_completes_after_its_delay_and_a_dropped_sleep_cancels_its_timer() {
    in_thread(|| {
        let lp = IOLoop::current();
        let before = lp.pending_timeouts();
        let (slept, pending_after_drop) = lp.run_sync(async {
            let t = Instant::now();
            cyclone::ioloop::sleep(Duration::from_millis(50)).await;
            let slept = t.elapsed();
            // Polled once (timer armed), then dropped: the timer goes.
            let mut s = Box::pin(cyclone::ioloop::sleep(Duration::from_secs(60)));
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            assert!(s.as_mut().poll(&mut cx).is_pending());
            drop(s);
            (slept, IOLoop::current().pending_timeouts())
        });
        assert!(slept >= Duration::from_millis(50), "woke after {slept:?}");
        assert!(slept < Duration::from_secs(2), "woke after {slept:?}");
        assert_eq!(pending_after_drop, before);
    });
}

/// Tornado: "If the event loop is not currently running, the next call to
/// start() will return immediately."
#[test]
fn stop_before_start_makes_start_return_immediately() {
    let elapsed = in_thread(|| {
        let lp = IOLoop::current();
        // Watchdog: stop the loop from another thread after 2 s so the test
        // ends either way.
        let h = lp.handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            h.stop();
        });
        lp.stop();
        let t0 = Instant::now();
        lp.start();
        t0.elapsed()
    });
    assert!(
        elapsed < Duration::from_millis(500),
        "start() after stop() ran until the watchdog: {elapsed:?}"
    );
}

/// A zero-delay timer re-armed from its own callback (Tornado's
/// `call_later(0, f)` chain) must let the loop run other work between
/// iterations: Tornado collects the due timers before running them, so a
/// timer scheduled by a timer callback runs on the next iteration.
#[test]
fn zero_delay_timer_chain_does_not_starve_callbacks() {
    let (chain_runs_before_callback, total) = in_thread(|| {
        let lp = IOLoop::current();
        let runs = Rc::new(Cell::new(0u32));
        let seen_at: Rc<Cell<Option<u32>>> = Rc::new(Cell::new(None));
        const LIMIT: u32 = 100_000;
        fn arm(runs: Rc<Cell<u32>>, seen_at: Rc<Cell<Option<u32>>>) {
            IOLoop::current().call_later(Duration::ZERO, move || {
                let n = runs.get() + 1;
                runs.set(n);
                if n == 1 {
                    let r = runs.clone();
                    let s = seen_at.clone();
                    IOLoop::current().add_callback(move || s.set(Some(r.get())));
                }
                if n < LIMIT && seen_at.get().is_none() {
                    arm(runs, seen_at);
                } else {
                    IOLoop::current().stop();
                }
            });
        }
        arm(runs.clone(), seen_at.clone());
        lp.start();
        (seen_at.get(), runs.get())
    });
    assert!(
        matches!(chain_runs_before_callback, Some(n) if n < 10),
        "add_callback queued by the first timer ran only after {chain_runs_before_callback:?} \
         chained call_later(0) runs (total {total})"
    );
}

/// `PeriodicCallback::new(f, d).start()` — the README's translation of
/// Tornado's `PeriodicCallback(cb, ms).start()` — must keep calling `f`.
#[test]
fn periodic_callback_started_as_a_statement_keeps_running() {
    let calls = in_thread(|| {
        let lp = IOLoop::current();
        let calls = Rc::new(Cell::new(0u32));
        let c = calls.clone();
        PeriodicCallback::new(move || c.set(c.get() + 1), Duration::from_millis(10)).start();
        lp.call_later(Duration::from_millis(200), || IOLoop::current().stop());
        lp.start();
        calls.get()
    });
    assert!(
        calls > 0,
        "PeriodicCallback never ran ({calls} calls in 200 ms)"
    );
}

/// Missed periods are skipped, not run in a burst: after the clock jumps,
/// one call, then the next one a period later.
#[test]
fn periodic_callback_skips_missed_periods_after_a_long_stall() {
    let calls = in_thread(|| {
        let lp = IOLoop::current();
        let calls = Rc::new(Cell::new(0u32));
        let c = calls.clone();
        let pc = PeriodicCallback::new(move || c.set(c.get() + 1), Duration::from_micros(1));
        pc.start();
        // A stall of 2^32 + 5 periods (about 72 minutes).
        lp.advance_clock(Duration::from_micros((1u64 << 32) + 5));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        pc.stop();
        calls.get()
    });
    assert_eq!(calls, 1, "missed periods were run in a burst");
}

/// A far-future delay (Tornado: `call_later(1e12, f)` is simply never due;
/// `connect_timeout=None` means no timeout) must not panic the caller.
#[test]
fn huge_delays_do_not_panic() {
    let panicked = in_thread(|| {
        let lp = IOLoop::current();
        let mut panicked = Vec::new();
        let ok = |f: &mut dyn FnMut()| catch_unwind(AssertUnwindSafe(f)).is_ok();
        if !ok(&mut || {
            let h = lp.call_later(Duration::MAX, || {});
            lp.remove_timeout(h);
        }) {
            panicked.push("call_later(Duration::MAX)");
        }
        if !ok(&mut || {
            let pc = PeriodicCallback::new(|| {}, Duration::MAX);
            pc.start();
            pc.stop();
        }) {
            panicked.push("PeriodicCallback::new(f, Duration::MAX).start()");
        }
        if !ok(&mut || {
            let opts = cyclone::websocket::ConnectOptions {
                connect_timeout: Duration::MAX,
                ..Default::default()
            };
            let _ =
                cyclone::websocket::websocket_connect_callback("ws://127.0.0.1:9/", opts, |_| {});
        }) {
            panicked.push("ConnectOptions { connect_timeout: Duration::MAX }");
        }
        panicked
    });
    assert!(panicked.is_empty(), "panicked: {panicked:?}");
}

/// Tornado's `call_later(delay, f)`: "Runs the callback after delay seconds
/// have passed." A timer set by a callback that ran for a while must not
/// fire before `delay` has passed since it was set.
#[test]
fn call_later_from_a_slow_callback_does_not_fire_early() {
    let waited = in_thread(|| {
        let lp = IOLoop::current();
        let waited: Rc<RefCell<Option<Duration>>> = Rc::default();
        let w = waited.clone();
        lp.add_callback(move || {
            // Some work in the callback (a handler parsing a message, ...).
            std::thread::sleep(Duration::from_millis(300));
            let set_at = Instant::now();
            // Unrelated activity 20 ms later (a message from another
            // thread; any I/O event does the same).
            let h = IOLoop::current().handle();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                h.add_callback(|| {});
            });
            IOLoop::current().call_later(Duration::from_millis(200), move || {
                *w.borrow_mut() = Some(set_at.elapsed());
                IOLoop::current().stop();
            });
        });
        let h = lp.handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            h.stop();
        });
        lp.start();
        let v = *waited.borrow();
        v
    });
    let waited = waited.expect("timer never fired");
    assert!(
        waited >= Duration::from_millis(195),
        "call_later(200 ms) fired {waited:?} after it was set"
    );
}

/// The same through `sleep`: `sleep(d).await` returns before `d` passed
/// when the task ran for a while in the same tick.
#[test]
fn sleep_after_slow_work_in_a_task_waits_its_full_delay() {
    let slept = in_thread(|| {
        let lp = IOLoop::current();
        lp.run_sync(async {
            std::thread::sleep(Duration::from_millis(300));
            let t = Instant::now();
            let h = IOLoop::current().handle();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                h.add_callback(|| {});
            });
            cyclone::ioloop::sleep(Duration::from_millis(200)).await;
            t.elapsed()
        })
    });
    assert!(
        slept >= Duration::from_millis(195),
        "sleep(200 ms) returned after {slept:?}"
    );
}

/// A timeout handle given to another thread's loop cancels nothing there.
#[test]
fn a_timeout_handle_from_another_loop_cancels_nothing() {
    let h = in_thread(|| IOLoop::current().call_later(Duration::from_secs(60), || {}));
    let (cancelled, fired) = in_thread(move || {
        let lp = IOLoop::current();
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        // The first timer of this loop has the same sequence number as `h`.
        lp.call_later(Duration::from_millis(5), move || f.set(true));
        let cancelled = lp.remove_timeout(h);
        lp.call_later(Duration::from_millis(30), || IOLoop::current().stop());
        lp.start();
        (cancelled, fired.get())
    });
    assert!(!cancelled, "another loop's handle cancelled a timer here");
    assert!(fired, "this loop's own timer did not fire");
}

/// Once the loop's thread has ended, `add_callback` refuses instead of
/// queueing callbacks that never run.
#[test]
fn add_callback_to_a_loop_whose_thread_ended_is_refused() {
    let (handle, before) = in_thread(|| {
        let lp = IOLoop::current();
        let h = lp.handle();
        let queued = h.add_callback(|| {});
        lp.run_once(Some(Duration::ZERO)).unwrap();
        (h, queued)
    });
    assert!(before, "a live loop refused a callback");
    let dropped = std::sync::Arc::new(());
    let d = dropped.clone();
    assert!(
        !handle.add_callback(move || drop(d)),
        "a callback was queued for a loop whose thread ended"
    );
    assert_eq!(
        std::sync::Arc::strong_count(&dropped),
        1,
        "the refused callback was kept"
    );
}

/// Stopping and restarting a PeriodicCallback from its own callback keeps
/// one timer chain (not two, which would double the rate).
#[test]
fn periodic_callback_restarted_from_its_own_callback_keeps_its_rate() {
    let calls = in_thread(|| {
        let lp = IOLoop::current();
        let calls = Rc::new(Cell::new(0u32));
        let slot: Rc<RefCell<Option<PeriodicCallback>>> = Rc::default();
        let (c, s) = (calls.clone(), slot.clone());
        let pc = PeriodicCallback::new(
            move || {
                c.set(c.get() + 1);
                if let Some(pc) = s.borrow().as_ref() {
                    pc.stop();
                    pc.start();
                }
            },
            Duration::from_millis(20),
        );
        *slot.borrow_mut() = Some(pc.clone());
        pc.start();
        lp.call_later(Duration::from_millis(210), || IOLoop::current().stop());
        lp.start();
        pc.stop();
        slot.borrow_mut().take();
        calls.get()
    });
    assert!(
        (5..=11).contains(&calls),
        "{calls} calls in 210 ms at a 20 ms period"
    );
}

/// A timer that re-arms itself at a deadline already past (a retry loop
/// "run at X" whose X has passed) must not starve other due timers: the
/// due batch is collected per iteration (Tornado, asyncio), and newer due
/// timers in front of older ones are set aside, not a stop.
#[test]
fn past_deadline_chain_does_not_starve_other_due_timers() {
    let ran_at = in_thread(|| {
        let lp = IOLoop::current();
        let t0 = lp.time();
        let spins = Rc::new(Cell::new(0u32));
        // How many chain iterations had run when the other timer ran.
        let other_ran_at = Rc::new(Cell::new(None::<u32>));
        {
            let (s, o) = (spins.clone(), other_ran_at.clone());
            lp.call_at(t0 + Duration::from_millis(1), move || o.set(Some(s.get())));
        }
        fn chain(t0: Instant, spins: Rc<Cell<u32>>, other: Rc<Cell<Option<u32>>>) {
            let lp = IOLoop::current();
            spins.set(spins.get() + 1);
            if other.get().is_some() || spins.get() >= 2000 {
                lp.stop();
                return;
            }
            lp.call_at(t0, move || chain(t0, spins, other));
        }
        {
            let (s, o) = (spins.clone(), other_ran_at.clone());
            lp.call_at(t0, move || chain(t0, s, o));
        }
        std::thread::sleep(Duration::from_millis(5));
        lp.start();
        other_ran_at.get()
    });
    // Both were due on the first iteration: Tornado runs both there.
    assert!(
        matches!(ran_at, Some(n) if n <= 2),
        "a due timer was starved by a timer re-arming at a past deadline: it ran after {:?} \
         iterations of the chain (only when the chain stopped itself at 2000)",
        ran_at
    );
}

// ---- panics in user code: logged, counted, and the loop goes on ----------

/// Claims this thread's error records (each test runs its loop in a
/// thread of its own, so tests running in parallel do not see each
/// other's records).
fn capture_logs() -> ExpectLog {
    ExpectLog::new("", "")
        .level(log::Level::Error)
        .on_this_thread()
        .not_required()
}

/// The error records `logs` claimed that contain `needle`.
fn errors_with(logs: &ExpectLog, needle: &str) -> Vec<String> {
    logs.logged()
        .into_iter()
        .filter(|(_, m)| m.contains(needle))
        .map(|(_, m)| m)
        .collect()
}

/// Stops `lp` after 5 s, should a test's own stop never come.
fn safety_stop(lp: &IOLoop) -> cyclone::ioloop::TimeoutHandle {
    lp.call_later(Duration::from_secs(5), || IOLoop::current().stop())
}

fn callback_panics(lp: &IOLoop) -> u64 {
    lp.metrics().get(Counter::CallbackPanics)
}

/// Tornado logs "Exception in callback" and goes on: a panicking callback
/// neither ends `start` nor keeps the callbacks behind it from running;
/// `IOLoop::current()` still names the loop inside and after, and the loop
/// stops and starts again as usual.
#[test]
fn a_panicking_callback_is_logged_and_the_loop_goes_on() {
    in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        let ran = Rc::new(Cell::new(0u32));
        lp.add_callback(|| panic!("boom in callback"));
        let r = ran.clone();
        lp.add_callback(move || {
            r.set(r.get() + 1);
            let r = r.clone();
            IOLoop::current().add_callback(move || {
                r.set(r.get() + 1);
                IOLoop::current().stop();
            });
        });
        let safety = safety_stop(&lp);
        let first = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(first.is_ok(), "the callback's panic unwound out of start");
        assert_eq!(ran.get(), 2, "the callbacks after the panicking one");
        assert!(!lp.is_running());
        let errors = errors_with(&logs, "boom in callback");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("IOLoop callback panicked"), "{errors:?}");
        assert_eq!(callback_panics(&lp), 1);
        assert!(lp
            .metrics()
            .to_prometheus()
            .contains("\ncyclone_callback_panics_total 1\n"));
        // Started again, it runs and stops as usual.
        lp.call_later(Duration::from_millis(5), || IOLoop::current().stop());
        let t0 = Instant::now();
        lp.start();
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "stopped by the safety timer"
        );
        assert!(lp.remove_timeout(safety));
    });
}

/// A panicking timer is logged; the timers due with it (before and after)
/// still run, and its entry is gone from the queue.
#[test]
fn a_panicking_timer_is_logged_and_the_other_due_timers_run() {
    in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        let ran = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (ran.clone(), ran.clone());
        let due = lp.time() + Duration::from_millis(5);
        lp.call_at(due, move || a.borrow_mut().push("before"));
        lp.call_at(due, || panic!("boom in timer"));
        lp.call_at(due, move || b.borrow_mut().push("after"));
        lp.call_later(Duration::from_millis(20), || IOLoop::current().stop());
        let safety = safety_stop(&lp);
        let res = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(res.is_ok(), "the timer's panic unwound out of start");
        assert!(lp.remove_timeout(safety), "stopped by the safety timer");
        assert_eq!(*ran.borrow(), ["before", "after"]);
        assert_eq!(
            lp.pending_timeouts(),
            0,
            "the panicked timer is still queued"
        );
        let errors = errors_with(&logs, "boom in timer");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("timer"), "{errors:?}");
        assert_eq!(callback_panics(&lp), 1);
    });
}

/// Tornado's `PeriodicCallback._run` logs the exception and schedules the
/// next call in a `finally`: a callback that panics on every call keeps
/// being called at its period.
#[test]
fn a_panicking_periodic_callback_is_logged_and_stays_scheduled() {
    in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        let calls = Rc::new(Cell::new(0u32));
        let c = calls.clone();
        let pc = PeriodicCallback::new(
            move || {
                c.set(c.get() + 1);
                if c.get() == 3 {
                    IOLoop::current().stop();
                }
                panic!("boom in periodic call {}", c.get());
            },
            Duration::from_millis(5),
        );
        pc.start();
        let safety = safety_stop(&lp);
        let res = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(
            res.is_ok(),
            "the periodic callback's panic unwound out of start"
        );
        assert_eq!(calls.get(), 3);
        assert!(pc.is_running());
        // Its next call and the safety timer.
        assert_eq!(lp.pending_timeouts(), 2, "not rescheduled after its panic");
        pc.stop();
        assert!(lp.remove_timeout(safety));
        assert_eq!(lp.pending_timeouts(), 0);
        let errors = errors_with(&logs, "boom in periodic call");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.contains("PeriodicCallback")),
            "{errors:?}"
        );
        assert_eq!(callback_panics(&lp), 3);
    });
}

/// A task that panics (on its first poll, or on a later one after a
/// wake-up) is logged and dropped: its slot is freed, its state dropped,
/// and the other tasks (one queued right behind it) still run.
#[test]
fn a_panicking_task_is_dropped_logged_and_the_other_tasks_run() {
    in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        let held = Rc::new(());
        let ran = Rc::new(Cell::new(0u32));
        let h = held.clone();
        lp.spawn(async move {
            let _h = h;
            panic!("boom in task on its first poll");
        });
        let r = ran.clone();
        lp.spawn(async move { r.set(r.get() + 1) });
        let h = held.clone();
        lp.spawn(async move {
            let _h = h;
            sleep(Duration::from_millis(2)).await;
            panic!("boom in task after a wake-up");
        });
        let r = ran.clone();
        lp.spawn(async move {
            sleep(Duration::from_millis(10)).await;
            r.set(r.get() + 1);
            IOLoop::current().stop();
        });
        let safety = safety_stop(&lp);
        let res = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(res.is_ok(), "the task's panic unwound out of start");
        assert!(lp.remove_timeout(safety), "stopped by the safety timer");
        assert_eq!(ran.get(), 2, "the other tasks did not all run");
        assert_eq!(
            lp.pending_tasks(),
            0,
            "a panicked task still holds its slot"
        );
        assert_eq!(
            Rc::strong_count(&held),
            1,
            "a panicked task was not dropped"
        );
        let errors = errors_with(&logs, "boom in task");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.contains("spawned task")),
            "{errors:?}"
        );
        assert_eq!(callback_panics(&lp), 2);
    });
}

/// A panicking `add_handler` callback is logged and the handler stays
/// registered (Tornado keeps a handler whose callback raised): the next
/// readiness event calls it again.
#[test]
fn a_panicking_add_handler_callback_is_logged_and_the_handler_kept() {
    in_thread(|| {
        use std::io::{Read, Write};
        let logs = capture_logs();
        let lp = IOLoop::current();
        let (a, b) = mio::net::UnixStream::pair().unwrap();
        let b = Rc::new(RefCell::new(b));
        let got = Rc::new(RefCell::new(Vec::new()));
        let (g, b2) = (got.clone(), b.clone());
        let id = lp
            .add_handler(a, mio::Interest::READABLE, move |s, r| {
                let mut buf = [0u8; 16];
                let n = match s.read(&mut buf) {
                    Ok(n) if r.readable && n > 0 => n,
                    _ => return,
                };
                g.borrow_mut().extend_from_slice(&buf[..n]);
                if g.borrow().len() == 1 {
                    // The second byte comes once this call has panicked.
                    let b = b2.clone();
                    IOLoop::current().add_callback(move || b.borrow_mut().write_all(b"b").unwrap());
                    panic!("boom in add_handler callback");
                }
                IOLoop::current().stop();
            })
            .unwrap();
        b.borrow_mut().write_all(b"a").unwrap();
        let safety = safety_stop(&lp);
        let res = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(res.is_ok(), "the handler's panic unwound out of start");
        assert!(lp.remove_timeout(safety), "stopped by the safety timer");
        assert_eq!(&*got.borrow(), b"ab");
        assert!(lp.contains(id), "the handler was dropped after its panic");
        let errors = errors_with(&logs, "boom in add_handler callback");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(&format!("add_handler callback for {id}")),
            "{errors:?}"
        );
        assert_eq!(callback_panics(&lp), 1);
        assert!(lp.remove_handler(id));
    });
}

/// A callback sent from another thread (`handle().add_callback`) that
/// panics is logged like a local one; the next one sent still runs.
#[test]
fn a_panicking_callback_from_another_thread_is_logged_and_the_loop_goes_on() {
    in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        let handle = lp.handle();
        let (tx, rx) = mpsc::channel();
        let other = std::thread::spawn(move || {
            // The loop is asleep in poll by then.
            std::thread::sleep(Duration::from_millis(20));
            assert!(handle.add_callback(|| panic!("boom in a cross-thread callback")));
            let h2 = handle.clone();
            assert!(handle.add_callback(move || {
                let lp = IOLoop::current();
                tx.send(lp.metrics().get(Counter::CallbackPanics)).unwrap();
                h2.stop();
            }));
        });
        let safety = safety_stop(&lp);
        let res = catch_unwind(AssertUnwindSafe(|| lp.start()));
        other.join().unwrap();
        assert!(res.is_ok(), "the callback's panic unwound out of start");
        assert!(lp.remove_timeout(safety), "stopped by the safety timer");
        assert_eq!(rx.try_recv(), Ok(1), "the callback after the panicking one");
        let errors = errors_with(&logs, "boom in a cross-thread callback");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("IOLoop callback panicked"), "{errors:?}");
    });
}

/// The future given to `run_sync` is the caller's own work: its panic
/// reaches `run_sync`'s caller (Tornado re-raises the function's exception)
/// — that one, not another task's, which is only logged — and the loop is
/// left usable.
#[test]
fn run_sync_reraises_its_own_panic_and_only_logs_the_others() {
    in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        lp.spawn(async { panic!("boom in another task") });
        let res = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(async {
                sleep(Duration::from_millis(2)).await;
                panic!("boom in run_sync's future");
            })
        }));
        let payload = res.expect_err("run_sync's own panic did not reach its caller");
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        assert_eq!(msg.as_deref(), Some("boom in run_sync's future"));
        assert!(!lp.is_running());
        assert_eq!(lp.pending_tasks(), 0);
        // Only the other task's panic was caught by the loop.
        assert_eq!(errors_with(&logs, "boom in another task").len(), 1);
        assert!(errors_with(&logs, "boom in run_sync").is_empty());
        assert_eq!(callback_panics(&lp), 1);
        // Usable: run_sync again, with IOLoop::current() inside.
        let v = lp.run_sync(async {
            sleep(Duration::from_millis(1)).await;
            (IOLoop::current().is_running(), 42)
        });
        assert_eq!(v, (true, 42));
    });
}

/// Panics of callbacks, timers and tasks that run during `run_sync` are
/// logged; `run_sync` still returns its future's value.
#[test]
fn run_sync_returns_its_value_despite_panics_of_other_callbacks() {
    let (v, panics, logged) = in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        lp.add_callback(|| panic!("boom in a callback during run_sync"));
        lp.call_later(Duration::from_millis(1), || {
            panic!("boom in a timer during run_sync")
        });
        lp.spawn(async { panic!("boom in a task during run_sync") });
        let v = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(async {
                sleep(Duration::from_millis(10)).await;
                42
            })
        }));
        let logged = errors_with(&logs, "during run_sync").len();
        (v.ok(), callback_panics(&lp), logged)
    });
    assert_eq!((v, panics), (Some(42), 3));
    assert_eq!(logged, 3, "one error record for each panic");
}

/// Connection handlers keep their own panic handling: a WebSocket
/// handler's panic (in `on_message`, or in `on_timeout`, which the loop
/// reaches through a timer) closes its connection with 1011 and counts as
/// a handler panic, not as a loop callback panic.
#[test]
fn websocket_handler_panics_still_close_with_1011_and_are_not_callback_panics() {
    use cyclone::web::Application;
    use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    use std::io::Write;

    struct Panics;
    impl WebSocketHandler for Panics {
        fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
            match msg.as_text() {
                Some("timeout") => {
                    ws.add_timeout(Duration::from_millis(1), 7);
                }
                Some("panic") => panic!("boom in on_message"),
                _ => {}
            }
        }
        fn on_timeout(&mut self, _ws: &mut WebSocket<'_>, _token: u64) {
            panic!("boom in on_timeout");
        }
    }

    let srv = util::Server::start(|| {
        Application::builder()
            .websocket(r"/ws", |_req| Panics)
            .build()
    });
    for what in ["panic", "timeout"] {
        let mut s = util::raw_ws(&srv, "/ws");
        s.write_all(&util::client_frame(true, 1, what.as_bytes()))
            .unwrap();
        let (_, op, p) = util::read_frame(&mut s).unwrap();
        assert_eq!((op, &p[..2]), (0x8, &1011u16.to_be_bytes()[..]), "{what}");
    }
    let m = srv.metrics();
    assert_eq!(m.get(Counter::HandlerPanics), 2, "{m:?}");
    assert_eq!(m.get(Counter::CallbackPanics), 0, "{m:?}");
}

/// A daemon started under `nohup` ignores SIGHUP. Handling it for a while
/// and then removing the handler must leave it ignored: with the default
/// action back (terminate), the next hang-up would kill the daemon.
#[test]
fn sighup_ignored_under_nohup_stays_ignored_after_its_handler_is_removed() {
    const NAME: &str = "sighup_ignored_under_nohup_stays_ignored_after_its_handler_is_removed";
    if util::isolated_under(&["nohup"], NAME) {
        return;
    }
    // The child, under nohup.
    // nohup did its part: SIGHUP (bit 0 of SigIgn) is ignored.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let ign = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(ign & 1, 1, "SIGHUP not ignored under nohup: {status}");
    let lp = IOLoop::current();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    lp.add_signal_handler(libc::SIGHUP, move || n2.set(n2.get() + 1))
        .unwrap();
    signal_hook::low_level::raise(libc::SIGHUP).unwrap();
    for _ in 0..200 {
        if n.get() == 1 {
            break;
        }
        lp.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(n.get(), 1, "the handler did not run");
    assert!(lp.remove_signal_handler(libc::SIGHUP));
    // Ignored again: this process survives it, and nothing runs.
    signal_hook::low_level::raise(libc::SIGHUP).unwrap();
    lp.run_once(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(n.get(), 1, "the removed handler ran");
}

/// Tornado's `run_in_executor`: blocking work runs on a pool thread while
/// the loop goes on (a 10 ms timer fires while a job sleeps 300 ms), the
/// result comes back to the awaiting task, and a pool never runs more
/// jobs at once than its size, nor fewer than it can (four 100 ms jobs on
/// two threads run two at a time).
#[test]
fn run_in_executor_runs_blocking_work_off_the_loop() {
    use cyclone::ioloop::ThreadPool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    in_thread(|| {
        let lp = IOLoop::current();
        lp.call_later(Duration::from_secs(20), || panic!("test timed out"));
        let loop_thread = std::thread::current().id();
        let ticked = Rc::new(Cell::new(false));
        let t = ticked.clone();
        lp.call_later(Duration::from_millis(10), move || t.set(true));
        let (on, ticked_first) = lp.run_sync(async move {
            let on = IOLoop::current()
                .run_in_executor(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    std::thread::current().id()
                })
                .await;
            (on, ticked.get())
        });
        assert_ne!(on, loop_thread, "the job ran on the loop's thread");
        assert!(ticked_first, "the loop was blocked while the job ran");

        // Two threads: never three jobs at once, and two at a time.
        lp.set_default_executor(ThreadPool::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..4u64)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                IOLoop::current().run_in_executor(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                })
            })
            .collect();
        let started = Instant::now();
        let results = lp.run_sync(async move {
            let mut out = Vec::new();
            for job in jobs {
                out.push(job.await);
            }
            out
        });
        assert_eq!(results, [0, 10, 20, 30]);
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() >= Duration::from_millis(200));
    });
}

/// A panic in the pool is the awaiting task's: `run_sync` re-raises it
/// with its message, and the pool's thread lives on for the next job.
#[test]
fn a_panic_in_the_executor_reaches_the_awaiting_task() {
    use cyclone::ioloop::ThreadPool;
    in_thread(|| {
        let lp = IOLoop::current();
        let pool = ThreadPool::new(1);
        let p = pool.clone();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(async move { p.run(|| -> u32 { panic!("no such row") }).await })
        }))
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"no such row"));
        let p = pool.clone();
        assert_eq!(lp.run_sync(async move { p.run(|| 7).await }), 7);
        // One thread served both: the panic did not take it down.
        assert_eq!(
            format!("{pool:?}"),
            "ThreadPool { max_threads: 1, threads: 1 }"
        );
    });
}

/// A panic out of a job's own bookkeeping rather than out of `f` (here the
/// drop, on the pool's thread, of a result whose future was dropped) must
/// not end the pool's thread: the pool would go on counting it, and with
/// its only thread gone every later job would wait forever.
#[test]
fn a_pool_thread_outlives_a_panic_in_a_discarded_result_s_drop() {
    use cyclone::ioloop::{with_timeout, ThreadPool};
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop of a discarded result");
        }
    }
    in_thread(|| {
        let lp = IOLoop::current();
        let pool = ThreadPool::new(1);
        let (started_tx, started) = mpsc::channel::<()>();
        let (go, wait) = mpsc::channel::<()>();
        let discarded = pool.run(move || {
            started_tx.send(()).unwrap();
            wait.recv_timeout(Duration::from_secs(10)).unwrap();
            PanicOnDrop
        });
        // Dropped after the job started (before, it would never run) and
        // before it ends: the result is dropped on the pool's thread,
        // which is where the panic happens.
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the job did not start");
        drop(discarded);
        go.send(()).unwrap();
        let p = pool.clone();
        let next =
            lp.run_sync(async move { with_timeout(Duration::from_secs(5), p.run(|| 7)).await });
        assert_eq!(next, Ok(7), "the pool's only thread died");
        assert_eq!(
            format!("{pool:?}"),
            "ThreadPool { max_threads: 1, threads: 1 }"
        );
    });
}

/// Gives `pool` a job that holds its thread until the returned sender
/// sends (or 10 s pass; the job then returns false), once that job has
/// started.
fn occupy(
    pool: &cyclone::ioloop::ThreadPool,
) -> (cyclone::ioloop::InExecutor<bool>, mpsc::Sender<()>) {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, blocked) = mpsc::channel::<()>();
    let job = pool.run(move || {
        started_tx.send(()).unwrap();
        blocked.recv_timeout(Duration::from_secs(10)).is_ok()
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the first job did not start");
    (job, release)
}

/// asyncio's `run_in_executor` future, cancelled, cancels the
/// `concurrent.futures.Future` under it, which then never runs if no
/// thread had taken it. Dropping an `InExecutor` (or `cancel`) before the
/// pool's only thread is free skips the job: its closure is dropped at
/// once and never called. A job already running finishes.
#[test]
fn a_job_whose_future_is_dropped_before_it_starts_never_runs() {
    use cyclone::ioloop::{with_timeout, ThreadPool};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    in_thread(|| {
        let lp = IOLoop::current();
        let pool = ThreadPool::new(1);
        let (first, release) = occupy(&pool);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        drop(pool.run(move || r.store(true, Ordering::SeqCst)));
        let r = ran.clone();
        assert!(pool.run(move || r.store(true, Ordering::SeqCst)).cancel());
        assert_eq!(
            Arc::strong_count(&ran),
            1,
            "a cancelled job's closure was kept"
        );
        release.send(()).unwrap();
        let first = lp.run_sync(async move { with_timeout(Duration::from_secs(10), first).await });
        assert_eq!(first, Ok(true));
        // FIFO on one thread: this one runs after the two given up.
        let p = pool.clone();
        let next =
            lp.run_sync(async move { with_timeout(Duration::from_secs(10), p.run(|| 7)).await });
        assert_eq!(next, Ok(7));
        assert!(
            !ran.load(Ordering::SeqCst),
            "a job whose future was dropped before it started ran"
        );

        // Given up while running: it finishes, and `cancel` says so.
        let (started_tx, started) = mpsc::channel::<()>();
        let (release, blocked) = mpsc::channel::<()>();
        let (finished_tx, finished) = mpsc::channel::<()>();
        let running = pool.run(move || {
            started_tx.send(()).unwrap();
            blocked.recv_timeout(Duration::from_secs(10)).unwrap();
            finished_tx.send(()).unwrap();
        });
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the job did not start");
        assert!(!running.cancel(), "a running job cannot be cancelled");
        release.send(()).unwrap();
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("a running job given up did not finish");
    });
}

/// Python's `executor.shutdown(wait=True)`: the jobs queued before it
/// still run, and it returns once every thread has ended (joined: a
/// thread-local a job left behind has been dropped by then); the pool
/// then refuses work with Python's "cannot schedule new futures after
/// shutdown".
#[test]
fn shutdown_runs_what_was_queued_then_joins_the_threads() {
    use cyclone::ioloop::{ShutdownError, ThreadPool};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let pool = ThreadPool::new(2);
    let (done, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let jobs: Vec<_> = (0..4)
        .map(|_| {
            let (done, ended, threads) = (done.clone(), ended.clone(), threads.clone());
            pool.run(move || {
                std::thread::sleep(Duration::from_millis(30));
                util::mark_thread(&ended);
                threads.lock().unwrap().insert(std::thread::current().id());
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    pool.shutdown(true);
    assert_eq!(done.load(Ordering::SeqCst), 4, "queued jobs did not run");
    let used = threads.lock().unwrap().len();
    assert!(used >= 1);
    assert_eq!(
        ended.load(Ordering::SeqCst),
        used,
        "shutdown(true) returned before its threads ended"
    );
    drop(jobs);
    assert_eq!(pool.try_run(|| 1).err(), Some(ShutdownError));
    let refused = catch_unwind(AssertUnwindSafe(|| drop(pool.run(|| 1)))).unwrap_err();
    assert_eq!(
        refused.downcast_ref::<String>().map(String::as_str),
        Some("cannot schedule new futures after shutdown")
    );
    // Again, and without waiting: nothing left to do.
    pool.shutdown(true);
    pool.clone().shutdown(false);
}

/// Several threads calling `shutdown(true)` at once all return after the
/// pool's thread has ended, its thread-locals dropped, as Python's
/// `shutdown(wait=True)` from several threads does: not only the caller
/// that happens to join it. The thread's end is held (a thread-local's
/// drop waits) while both callers are in `shutdown`; neither may return
/// in the meantime.
#[test]
fn concurrent_shutdown_with_wait_callers_all_wait_for_the_join() {
    use cyclone::ioloop::ThreadPool;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct HoldsTheEnd(mpsc::Receiver<()>, Arc<AtomicBool>);
    impl Drop for HoldsTheEnd {
        fn drop(&mut self) {
            let _ = self.0.recv_timeout(Duration::from_secs(10));
            self.1.store(true, Ordering::SeqCst);
        }
    }
    thread_local! {
        static HOLD: std::cell::RefCell<Option<HoldsTheEnd>> =
            const { std::cell::RefCell::new(None) };
    }
    util::within(Duration::from_secs(30), || {
        let pool = ThreadPool::new(1);
        let ended = Arc::new(AtomicBool::new(false));
        let (release, held) = mpsc::channel::<()>();
        let e = ended.clone();
        let job = pool.run(move || HOLD.with(|h| *h.borrow_mut() = Some(HoldsTheEnd(held, e))));
        let (tx, returned) = mpsc::channel();
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (p, tx, e) = (pool.clone(), tx.clone(), ended.clone());
                std::thread::spawn(move || {
                    p.shutdown(true);
                    tx.send(e.load(Ordering::SeqCst)).unwrap();
                })
            })
            .collect();
        // A window for a caller to return early (the bug); nothing to
        // await, as with the fix nothing happens in it.
        if let Ok(saw_ended) = returned.recv_timeout(Duration::from_secs(1)) {
            assert!(
                saw_ended,
                "a shutdown(true) caller returned before the thread ended"
            );
        }
        release.send(()).unwrap();
        for _ in 0..2 {
            let saw_ended = returned
                .recv_timeout(Duration::from_secs(10))
                .expect("a shutdown(true) caller never returned");
            assert!(
                saw_ended,
                "a shutdown(true) caller returned before the thread ended"
            );
        }
        for c in callers {
            c.join().unwrap();
        }
        drop(job);
    });
}

/// Dropping a pool's last handle is `shutdown(true)`, Rust's stand-in
/// for Python joining its executors' threads at exit: the drop returns
/// once the running and queued jobs are done and the threads joined.
/// After an explicit `shutdown(false)` it does not wait.
#[test]
fn dropping_the_last_handle_waits_for_the_jobs_and_joins_the_threads() {
    use cyclone::ioloop::ThreadPool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    util::within(Duration::from_secs(20), || {
        let (done, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pool = ThreadPool::new(1);
        let jobs: Vec<_> = (0..3)
            .map(|_| {
                let (done, ended) = (done.clone(), ended.clone());
                pool.run(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    util::mark_thread(&ended);
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        drop(pool.clone());
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "a handle that was not the last waited"
        );
        drop(pool);
        assert_eq!(
            done.load(Ordering::SeqCst),
            3,
            "the queued jobs were not done"
        );
        assert_eq!(ended.load(Ordering::SeqCst), 1, "the thread was not joined");
        drop(jobs);

        // Detached by an explicit shutdown(false): the drop does not wait
        // for a job that waits for this thread.
        let pool = ThreadPool::new(1);
        let (first, release) = occupy(&pool);
        pool.shutdown(false);
        let t = Instant::now();
        drop(pool);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "dropping a pool shut down without waiting waited"
        );
        release.send(()).unwrap();
        drop(first);
    });
}

/// The last handle dropped by a job, on one of the pool's own threads,
/// does not wait: not for itself, and not for another job, which may be
/// waiting for this one (here, for a message it sends after the drop).
/// What was queued still runs.
#[test]
fn the_last_handle_dropped_by_a_job_does_not_wait() {
    use cyclone::ioloop::ThreadPool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    util::within(Duration::from_secs(20), || {
        let pool = ThreadPool::new(2);
        let (tx, rx) = mpsc::channel::<()>();
        let (got_tx, got) = mpsc::channel();
        let waiter = pool.run(move || {
            got_tx
                .send(rx.recv_timeout(Duration::from_secs(10)))
                .unwrap()
        });
        let (p, (go, wait_go)) = (pool.clone(), mpsc::channel::<()>());
        let holder = pool.run(move || {
            wait_go.recv_timeout(Duration::from_secs(10)).unwrap();
            drop(p);
            tx.send(()).unwrap();
        });
        let after = Arc::new(AtomicUsize::new(0));
        let a = after.clone();
        let queued = pool.run(move || a.fetch_add(1, Ordering::SeqCst));
        // The job's clone is now the last handle.
        drop(pool);
        go.send(()).unwrap();
        assert_eq!(
            got.recv_timeout(Duration::from_secs(15))
                .expect("the waiting job never ended"),
            Ok(()),
            "the job dropping the last handle waited for the job waiting for it"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while after.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            after.load(Ordering::SeqCst),
            1,
            "the queued job did not run"
        );
        drop((waiter, holder, queued));
    });
}

/// Two pools whose jobs each hold the other's last handle: a job dropping
/// it waited (joined the other pool's thread) while that pool's job,
/// dropping this pool's last handle, waited for this job's thread. A last
/// handle dropped on any pool thread does not wait; what was queued still
/// runs and the threads end.
#[test]
fn pools_whose_jobs_drop_each_other_s_last_handle_do_not_wait_for_each_other() {
    use cyclone::ioloop::ThreadPool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    let ended = Arc::new(AtomicUsize::new(0));
    let e = ended.clone();
    util::within(Duration::from_secs(20), move || {
        let (a, b) = (ThreadPool::new(1), ThreadPool::new(1));
        // Both jobs hold their handles until the test's own are gone.
        let go = Arc::new(Barrier::new(3));
        let (tx, rx) = mpsc::channel();
        let jobs: Vec<_> = [(&a, b.clone()), (&b, a.clone())]
            .into_iter()
            .map(|(on, other)| {
                let (go, tx, e) = (go.clone(), tx.clone(), e.clone());
                on.run(move || {
                    util::mark_thread(&e);
                    go.wait();
                    drop(other);
                    tx.send(()).unwrap();
                })
            })
            .collect();
        drop((a, b));
        go.wait();
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a job dropping the other pool's last handle never returned");
        }
        drop(jobs);
    });
    // Detached: each pool's thread ends by itself, its queue being empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ended.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        ended.load(Ordering::SeqCst),
        2,
        "a pool's thread never ended"
    );
}

/// The pool a loop starts for `run_in_executor` is joined when the
/// loop's thread ends: a job still running then finishes first, and the
/// pool's threads have ended (their thread-locals dropped) by the time
/// the loop's thread is joined. Replacing that pool with
/// `set_default_executor` does not block the loop on it.
#[test]
fn a_loop_s_thread_ending_waits_for_its_default_executor() {
    use cyclone::ioloop::ThreadPool;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (done, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (d, e) = (done.clone(), ended.clone());
    util::within(Duration::from_secs(20), move || {
        std::thread::spawn(move || {
            let (started_tx, started) = mpsc::channel();
            let job = IOLoop::current().run_in_executor(move || {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                util::mark_thread(&e);
                d.fetch_add(1, Ordering::SeqCst);
            });
            started.recv_timeout(Duration::from_secs(10)).unwrap();
            // Running: dropping the future lets it finish.
            drop(job);
        })
        .join()
        .unwrap();
    });
    assert_eq!(
        done.load(Ordering::SeqCst),
        1,
        "the loop's thread ended before its job"
    );
    assert_eq!(
        ended.load(Ordering::SeqCst),
        1,
        "the pool's thread was not joined"
    );

    util::within(Duration::from_secs(20), || {
        let lp = IOLoop::current();
        let (first, release) = occupy_default(&lp);
        lp.set_default_executor(ThreadPool::new(1));
        release.send(()).unwrap();
        drop(first);
    });
}

/// A job that never returns would keep the loop's thread from ending (the
/// last handle's drop waits for it): `default_executor()` gives the
/// pool the loop started, and `shutdown(false)` on it leaves the job
/// behind, so the thread ends. The loop's `run_in_executor` then refuses
/// work, as asyncio's does after `shutdown_default_executor()`.
#[test]
fn the_default_executor_shut_down_without_waiting_lets_the_loop_s_thread_end() {
    let (release_tx, release) = mpsc::channel();
    let (refused_tx, refused) = mpsc::channel();
    util::within(Duration::from_secs(10), move || {
        std::thread::spawn(move || {
            let lp = IOLoop::current();
            // Blocked (30 s) for as long as the test lasts: its release
            // outlives this thread.
            let (job, release) = occupy_default(&lp);
            release_tx.send(release).unwrap();
            drop(job);
            lp.default_executor().shutdown(false);
            let r = catch_unwind(AssertUnwindSafe(|| drop(lp.run_in_executor(|| ()))));
            refused_tx.send(r.is_err()).unwrap();
        })
        .join()
        .unwrap();
    });
    assert_eq!(
        refused.try_recv(),
        Ok(true),
        "run_in_executor took work after shutdown"
    );
    drop(release);
}

/// [`occupy`] on the loop's default executor.
fn occupy_default(lp: &IOLoop) -> (cyclone::ioloop::InExecutor<bool>, mpsc::Sender<()>) {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, blocked) = mpsc::channel::<()>();
    let job = lp.run_in_executor(move || {
        started_tx.send(()).unwrap();
        blocked.recv_timeout(Duration::from_secs(30)).is_ok()
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the first job did not start");
    (job, release)
}

/// `cancel_futures=True`: the queued jobs are cancelled (the awaiting
/// task gets a panic, Python's `CancelledError`), the running one
/// finishes; without it, and when the last handle is dropped, queued jobs
/// still run.
#[test]
fn shutdown_cancel_futures_skips_the_queued_jobs() {
    use cyclone::ioloop::{with_timeout, ThreadPool};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    in_thread(|| {
        let lp = IOLoop::current();
        let pool = ThreadPool::new(1);
        let (first, release) = occupy(&pool);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let queued = pool.run(move || r.store(true, Ordering::SeqCst));
        pool.shutdown_cancel_futures(false);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(async move { with_timeout(Duration::from_secs(10), queued).await })
        }))
        .expect_err("a cancelled job's future resolved");
        let why = caught.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(why.contains("cancelled"), "{why}");
        release.send(()).unwrap();
        let first = lp.run_sync(async move { with_timeout(Duration::from_secs(10), first).await });
        assert_eq!(first, Ok(true), "the running job did not finish");
        pool.shutdown(true);
        assert!(!ran.load(Ordering::SeqCst), "a cancelled job ran");

        // The last handle dropped: what was queued still runs.
        let pool = ThreadPool::new(1);
        let (first, release) = occupy(&pool);
        let queued = pool.run(|| 7);
        release.send(()).unwrap();
        drop(pool);
        let got = lp.run_sync(async move {
            let first = with_timeout(Duration::from_secs(10), first).await;
            (first, with_timeout(Duration::from_secs(10), queued).await)
        });
        assert_eq!(got, (Ok(true), Ok(7)));
    });
}

/// `IOLoop::current()` in a pool job is the pool thread's loop, which
/// nothing runs: a callback or timer a job leaves there (meant, most
/// likely, for the loop that submitted it) is dropped with a warning when
/// the job returns, and the next job on that thread starts without that
/// loop. A job that runs its loop itself (`run_sync`) gets no warning.
#[test]
fn a_pool_job_s_own_loop_is_dropped_with_what_it_left_when_the_job_returns() {
    use cyclone::ioloop::{with_timeout, ThreadPool};
    use std::sync::Arc;
    let warned = Arc::new(
        ExpectLog::new("cyclone::ioloop", "IOLoop::current\\(\\) on a pool thread")
            .level(log::Level::Warn),
    );
    let w = warned.clone();
    in_thread(move || {
        let warned = w;
        let lp = IOLoop::current();
        let pool = ThreadPool::new(1);
        let token = Arc::new(());
        let (t1, t2) = (token.clone(), token.clone());
        let p = pool.clone();
        let left = lp.run_sync(async move {
            let wait = Duration::from_secs(10);
            with_timeout(
                wait,
                p.run(move || {
                    let here = IOLoop::current();
                    here.add_callback(move || drop(t1));
                    here.call_later(Duration::from_secs(3600), move || drop(t2));
                }),
            )
            .await
            .unwrap();
            // The same (only) thread, after the first job's end.
            with_timeout(wait, p.run(|| IOLoop::current().pending_timeouts()))
                .await
                .unwrap()
        });
        assert_eq!(left, 0, "the next job saw the first job's loop");
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "what the job left on its loop was kept"
        );
        assert!(warned.wait(1, Duration::from_secs(10)), "no warning");
        let p = pool.clone();
        let ran = lp.run_sync(async move {
            let wait = Duration::from_secs(10);
            let ran = with_timeout(
                wait,
                p.run(|| {
                    IOLoop::current().run_sync(async {
                        cyclone::ioloop::sleep(Duration::from_millis(1)).await;
                        5
                    })
                }),
            )
            .await;
            with_timeout(wait, p.run(|| ())).await.unwrap();
            ran
        });
        assert_eq!(ran, Ok(5));
        pool.shutdown(true);
    });
    assert_eq!(
        warned.logged().len(),
        1,
        "a job that ran its own loop was warned about: {:?}",
        warned.logged()
    );
}

/// Tornado's `gen.with_timeout`: the value when the future is first, a
/// `TimeoutError` when the time is; a future given up is dropped (its
/// timer never fires).
#[test]
fn with_timeout_gives_the_value_or_gives_up() {
    use cyclone::ioloop::{with_timeout, TimeoutError};
    in_thread(|| {
        let lp = IOLoop::current();
        lp.call_later(Duration::from_secs(20), || panic!("test timed out"));
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let (quick, slow, pool) = lp.run_sync(async move {
            let quick = with_timeout(Duration::from_secs(5), async { 7 }).await;
            let slow = with_timeout(Duration::from_millis(30), async move {
                sleep(Duration::from_millis(200)).await;
                f.set(true);
            })
            .await;
            let job = IOLoop::current().run_in_executor(|| "row");
            let pool = with_timeout(Duration::from_secs(5), job).await;
            sleep(Duration::from_millis(300)).await;
            (quick, slow, pool)
        });
        assert_eq!(quick, Ok(7));
        assert_eq!(slow, Err(TimeoutError));
        assert_eq!(pool, Ok("row"));
        assert!(!fired.get(), "the future given up ran on");
        assert_eq!(TimeoutError.to_string(), "Timeout");
    });
}

/// A source that does not own its descriptor (mio's `SourceFd`, Tornado's
/// `add_handler(fd)`): only deregistering takes it out of the poll set.
struct BorrowedFd(std::os::fd::RawFd);

impl mio::event::Source for BorrowedFd {
    fn register(
        &mut self,
        r: &mio::Registry,
        t: mio::Token,
        i: mio::Interest,
    ) -> std::io::Result<()> {
        mio::unix::SourceFd(&self.0).register(r, t, i)
    }
    fn reregister(
        &mut self,
        r: &mio::Registry,
        t: mio::Token,
        i: mio::Interest,
    ) -> std::io::Result<()> {
        mio::unix::SourceFd(&self.0).reregister(r, t, i)
    }
    fn deregister(&mut self, r: &mio::Registry) -> std::io::Result<()> {
        mio::unix::SourceFd(&self.0).deregister(r)
    }
}

/// `fd` is out of the loop's poll set: adding it works (then it is removed).
fn assert_fd_can_be_added_again(lp: &IOLoop, fd: std::os::fd::RawFd) {
    let again = lp.add_handler(BorrowedFd(fd), mio::Interest::READABLE, |_, _| {});
    let again = again.expect("the descriptor was left in the poll set");
    assert!(lp.remove_handler(again));
}

/// `remove_handler` from the handler's own callback deregisters its
/// source, as from outside it: the descriptor can be added again.
#[test]
fn remove_handler_from_its_own_callback_deregisters_the_source() {
    in_thread(|| {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let lp = IOLoop::current();
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let me: Rc<Cell<Option<cyclone::ioloop::ConnId>>> = Rc::default();
        let calls = Rc::new(Cell::new(0));
        let (me2, calls2) = (me.clone(), calls.clone());
        let id = lp
            .add_handler(
                BorrowedFd(a.as_raw_fd()),
                mio::Interest::READABLE,
                move |_, _| {
                    calls2.set(calls2.get() + 1);
                    assert!(IOLoop::current().remove_handler(me2.get().unwrap()));
                },
            )
            .unwrap();
        me.set(Some(id));
        b.write_all(b"x").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lp.contains(id) && Instant::now() < deadline {
            lp.run_once(Some(Duration::from_millis(20))).unwrap();
        }
        assert!(!lp.contains(id));
        assert_eq!(calls.get(), 1);
        assert_fd_can_be_added_again(&lp, a.as_raw_fd());
    });
}

/// A task's drop runs user code (whatever its future holds): a panic
/// there, after the task ended, is logged and counted like one in its
/// poll, and the loop goes on.
#[test]
fn a_panic_dropping_a_finished_task_is_caught() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("boom dropping a task");
        }
    }
    let (got, errors, panics) = in_thread(|| {
        let logs = capture_logs();
        let lp = IOLoop::current();
        // Ends at its first poll, and holds what panics until dropped (an
        // `async` block would drop it inside its last poll).
        struct Ends(#[allow(dead_code)] PanicsOnDrop);
        impl Future for Ends {
            type Output = ();
            fn poll(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<()> {
                std::task::Poll::Ready(())
            }
        }
        lp.spawn(Ends(PanicsOnDrop));
        let got = lp.run_sync(async {
            sleep(Duration::from_millis(20)).await;
            7
        });
        (
            got,
            errors_with(&logs, "boom dropping a task"),
            callback_panics(&lp),
        )
    });
    assert_eq!(got, 7);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("drop of a spawned task"), "{errors:?}");
    assert_eq!(panics, 1);
}

// ---- timers, handlers, stop and shutdown at their edges -----------------

/// An RAII guard that cancels a timer when dropped (a common Rust
/// pattern: a deadline owned by a request, a retry, a connection).
struct CancelOnDrop(Option<cyclone::ioloop::TimeoutHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            IOLoop::current().remove_timeout(h);
        }
    }
}

/// Tornado's `remove_timeout` just cancels; whatever the callback held is
/// released like any other object. The cancelled callback is dropped once
/// the loop's timer queue is no longer borrowed, so a captured value whose
/// `Drop` cancels another timer works (it used to panic inside
/// `remove_timeout`, leaving the other timer pending).
#[test]
fn remove_timeout_of_a_callback_whose_capture_cancels_another_timer() {
    let out = in_thread(|| {
        let lp = IOLoop::current();
        let inner = lp.call_later(Duration::from_secs(3600), || {});
        let guard = CancelOnDrop(Some(inner));
        let outer = lp.call_later(Duration::from_secs(3600), move || drop(guard));
        let r = catch_unwind(AssertUnwindSafe(|| lp.remove_timeout(outer)));
        (r.is_ok(), lp.pending_timeouts())
    });
    assert_eq!(out, (true, 0), "(remove_timeout returned, timers left)");
}

/// Tornado's `PeriodicCallback(cb, callback_time, jitter)` takes any
/// period; `Duration::MAX` ("never") works without a jitter (see
/// `huge_delays_do_not_panic`) and with one: the jittered period saturates
/// (`Duration::mul_f64` used to overflow for about half the draws, and
/// `start` panicked).
#[test]
fn periodic_callback_with_jitter_and_a_huge_interval_does_not_panic() {
    let panics = in_thread(|| {
        let mut panics = 0;
        for _ in 0..32 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                let pc = PeriodicCallback::with_jitter(|| {}, Duration::MAX, 0.1);
                pc.start();
                pc.stop();
            }));
            if r.is_err() {
                panics += 1;
            }
        }
        panics
    });
    assert_eq!(panics, 0, "{panics} of 32 starts panicked");
}

/// `crate::shutdown` ends with `abort_all`, which drops an `add_handler`
/// registration after deregistering its source: a descriptor the handler
/// did not own (Tornado's `add_handler(fd)`, mio's `SourceFd`) leaves the
/// poll set, so adding it again works (it used to fail with EEXIST).
#[test]
fn abort_all_deregisters_add_handler_sources() {
    in_thread(|| {
        use std::os::fd::AsRawFd;
        let lp = IOLoop::current();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let id = lp
            .add_handler(
                BorrowedFd(a.as_raw_fd()),
                mio::Interest::READABLE,
                |_, _| {},
            )
            .unwrap();
        lp.abort_all();
        assert!(!lp.contains(id));
        assert_fd_can_be_added_again(&lp, a.as_raw_fd());
    });
}

/// `shutdown(grace)` "waits up to `grace` for the close handshakes": with
/// no connection at all, only an `add_handler` registration (a pipe, a
/// signalfd...), it stops at once (it used to count the handler as a
/// connection still closing and wait out the whole grace).
#[test]
fn shutdown_does_not_wait_the_grace_for_add_handler_registrations() {
    let elapsed = in_thread(|| {
        let lp = IOLoop::current();
        let (a, _b) = mio::net::UnixStream::pair().unwrap();
        lp.add_handler(a, mio::Interest::READABLE, |_, _| {})
            .unwrap();
        let watchdog = safety_stop(&lp);
        lp.add_callback(|| cyclone::shutdown(Duration::from_secs(3)));
        let t0 = Instant::now();
        lp.start();
        lp.remove_timeout(watchdog);
        t0.elapsed()
    });
    assert!(
        elapsed < Duration::from_secs(1),
        "shutdown with no connection took {elapsed:?}"
    );
}

/// Callbacks sent through a handle before its `stop` (Tornado:
/// `add_callback(x)` then `add_callback(loop.stop)` from another thread:
/// x runs first) have run when `start` returns (they used to be left
/// queued, and a worker thread that then ended dropped them unrun).
#[test]
fn handle_callbacks_sent_before_stop_run_before_start_returns() {
    let ran = in_thread(|| {
        let lp = IOLoop::current();
        let handle = lp.handle();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r2 = ran.clone();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            handle.add_callback(move || r2.store(true, std::sync::atomic::Ordering::SeqCst));
            handle.stop();
        });
        let watchdog = safety_stop(&lp);
        lp.start();
        lp.remove_timeout(watchdog);
        other.join().unwrap();
        ran.load(std::sync::atomic::Ordering::SeqCst)
    });
    assert!(
        ran,
        "a callback sent before stop() had not run when start() returned"
    );
}

/// Tornado's `run_sync`: "If the event loop is stopped before the function
/// completes, raises RuntimeError('Event loop stopped before Future
/// completed.')". A `stop()` 50 ms into a 2 s future ends `run_sync` at
/// once, with that panic (it used to restart the loop and wait).
#[test]
fn run_sync_panics_when_the_loop_is_stopped_first() {
    let (elapsed, message) = in_thread(|| {
        let lp = IOLoop::current();
        lp.call_later(Duration::from_millis(50), || IOLoop::current().stop());
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(async { sleep(Duration::from_secs(2)).await })
        }));
        let message = r.err().map(|p| match p.downcast::<&str>() {
            Ok(s) => s.to_string(),
            Err(p) => p.downcast::<String>().map(|s| *s).unwrap_or_default(),
        });
        (t0.elapsed(), message)
    });
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(
        message.as_deref(),
        Some("the IOLoop stopped before the future completed")
    );
}

/// `WebSocket::add_timeout`: "the timer dies with the connection". The
/// loop's timer is cancelled when the connection ends (it used to stay
/// queued, holding its closure, until its delay passed: with an hour's
/// timeout, every connection of the last hour kept an entry).
#[test]
fn websocket_add_timeout_dies_with_its_connection() {
    use cyclone::web::Application;
    use cyclone::websocket::{WebSocket, WebSocketHandler};

    struct Idle;
    impl WebSocketHandler for Idle {
        fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
            ws.add_timeout(Duration::from_secs(3600), 1);
        }
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: cyclone::websocket::Message<'_>) {}
    }
    let srv = cyclone::testing::TestServer::start(|| {
        Application::builder()
            .websocket(r"/ws", |_req| Idle)
            .build()
    });
    let pending = || srv.on_loop(|| IOLoop::current().pending_timeouts());
    let regs = || srv.on_loop(|| IOLoop::current().registrations());
    let (before, listeners) = (pending(), regs());
    for _ in 0..20 {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(srv.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(util::upgrade_request("/ws", "").as_bytes())
            .unwrap();
        assert_eq!(util::read_response(&mut s).0, 101);
    }
    // Every connection closed: wait until the server has seen them go.
    let deadline = Instant::now() + Duration::from_secs(5);
    while regs() > listeners && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(regs(), listeners, "connections still open");
    let after = pending();
    assert_eq!(
        after - before,
        0,
        "timers of 20 closed connections still queued"
    );
}

/// Tornado: `remove_handler(fd)` takes the descriptor out of the poller at
/// once, so a handler may remove itself and add the descriptor again (with
/// another callback or other events) in the same call. Here the removal
/// from a handler's own callback waits until the callback returns, and so
/// does the new registration (adding it used to fail with EEXIST).
#[test]
fn remove_handler_then_add_handler_again_from_its_own_callback() {
    let result = in_thread(|| {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let lp = IOLoop::current();
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let fd = a.as_raw_fd();
        let me: Rc<Cell<Option<cyclone::ioloop::ConnId>>> = Rc::default();
        let result: Rc<RefCell<Option<Result<(), String>>>> = Rc::default();
        let second = Rc::new(Cell::new(0));
        let (me2, result2, second2) = (me.clone(), result.clone(), second.clone());
        let id = lp
            .add_handler(BorrowedFd(fd), mio::Interest::READABLE, move |_, _| {
                let lp = IOLoop::current();
                assert!(lp.remove_handler(me2.get().unwrap()));
                let second3 = second2.clone();
                let again = lp.add_handler(BorrowedFd(fd), mio::Interest::READABLE, move |_, _| {
                    second3.set(second3.get() + 1)
                });
                *result2.borrow_mut() = Some(again.map(|_| ()).map_err(|e| e.to_string()));
            })
            .unwrap();
        me.set(Some(id));
        // Unread: the new registration reports it.
        b.write_all(b"x").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while second.get() == 0 && Instant::now() < deadline {
            lp.run_once(Some(Duration::from_millis(20))).unwrap();
        }
        let r = result.borrow_mut().take();
        drop(a);
        (r, second.get(), lp.registrations())
    });
    // Added, then called with the byte still waiting; the first is gone.
    assert_eq!(result, (Some(Ok(())), 1, 1));
}

/// `run_once` from one of the loop's own callbacks would run a nested
/// iteration that takes the readiness of the registration being served
/// (edge-triggered: never reported again). It panics instead, as `start`
/// does, whether the outer iteration is `start`'s or `run_once`'s; the
/// loop reports itself running meanwhile.
#[test]
fn run_once_from_inside_the_loop_panics() {
    let seen = in_thread(|| {
        let lp = IOLoop::current();
        let seen: Rc<RefCell<Vec<(bool, bool)>>> = Rc::default();
        let record = |seen: Rc<RefCell<Vec<(bool, bool)>>>| {
            move || {
                let lp = IOLoop::current();
                let nested = catch_unwind(AssertUnwindSafe(|| lp.run_once(Some(Duration::ZERO))));
                seen.borrow_mut().push((lp.is_running(), nested.is_err()));
            }
        };
        lp.add_callback(record(seen.clone()));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        assert!(!lp.is_running());
        lp.add_callback(record(seen.clone()));
        lp.add_callback(|| IOLoop::current().stop());
        let watchdog = safety_stop(&lp);
        lp.start();
        lp.remove_timeout(watchdog);
        let got = seen.borrow().clone();
        got
    });
    assert_eq!(seen, [(true, true), (true, true)]);
}

/// A loop whose signal callback captured a clone of the loop (the usual
/// `lp.add_signal_handler(SIGINT, move || lp2.stop())`) is a reference
/// cycle. When its thread ends, the handler must still be removed, so the
/// signal's default action is back: otherwise the signal is caught and
/// swallowed for the rest of the process, with no loop to run the
/// callback (Ctrl-C no longer stops the program). Run in a child process,
/// which the signal is expected to kill.
#[test]
fn a_signal_handler_is_removed_when_its_loops_thread_ends() {
    const NAME: &str = "a_signal_handler_is_removed_when_its_loops_thread_ends";
    const VAR: &str = "CYCLONE_ISOLATED_TEST";
    if std::env::var(VAR).as_deref() == Ok(NAME) {
        // The child: a thread handles SIGUSR1 with a callback holding its
        // loop, then ends.
        std::thread::spawn(|| {
            let lp = IOLoop::current();
            let lp2 = lp.clone();
            lp.add_signal_handler(libc::SIGUSR1, move || lp2.stop())
                .unwrap();
            lp.run_once(Some(Duration::ZERO)).unwrap();
        })
        .join()
        .unwrap();
        // SIGUSR1's default action terminates this process here.
        signal_hook::low_level::raise(libc::SIGUSR1).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--test-threads=1"])
        .env(VAR, NAME)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.signal(),
        Some(libc::SIGUSR1),
        "SIGUSR1 was swallowed by the handler of a loop whose thread ended ({status})"
    );
}

/// `shutdown` called a second time while one is in progress (a second
/// Ctrl-C; SIGINT and SIGTERM both handled) must not leave a second grace
/// check behind: once the first has stopped the loop, that one fired on
/// the loop's next run, stopping it (here `run_sync` panicked, "stopped
/// before the future completed") and dropping whatever connections that
/// run had by then.
#[test]
fn a_second_shutdown_leaves_nothing_to_stop_the_next_run() {
    use cyclone::web::Application;
    use cyclone::websocket::WebSocketHandler;
    use std::io::Write;
    struct Silent;
    impl WebSocketHandler for Silent {
        fn on_message(
            &mut self,
            _ws: &mut cyclone::websocket::WebSocket<'_>,
            _msg: cyclone::websocket::Message<'_>,
        ) {
        }
    }
    let (release, held) = mpsc::channel::<()>();
    let outcome = in_thread(move || {
        let lp = IOLoop::current();
        let app = Application::builder()
            .websocket("/s", |_r: &cyclone::http::Request| Silent)
            .build();
        let addr = app.listen_on("127.0.0.1:0").unwrap();
        // A client that never answers the 1001: the loop waits its grace.
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(util::upgrade_request("/s", "").as_bytes())
                .unwrap();
            let (status, _, _) = util::read_response(&mut s);
            assert_eq!(status, 101);
            let _ = held.recv_timeout(Duration::from_secs(10));
        });
        let watchdog = safety_stop(&lp);
        lp.call_later(Duration::from_millis(100), || {
            cyclone::shutdown(Duration::from_millis(300))
        });
        lp.call_later(Duration::from_millis(150), || {
            cyclone::shutdown(Duration::from_millis(300))
        });
        lp.start();
        lp.remove_timeout(watchdog);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(async {
                sleep(Duration::from_millis(300)).await;
                "ran to the end"
            })
        }))
        .map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .unwrap_or_default()
        });
        drop(release);
        client.join().unwrap();
        outcome
    });
    assert_eq!(outcome, Ok("ran to the end"));
}

#[test]
fn periodic_callback_stopped_by_a_thread_local_dropped_after_the_loop() {
    // A panic in a thread-local's destructor aborts the process: in a
    // child process, so that the parent sees the abort as a failure.
    const NAME: &str = "periodic_callback_stopped_by_a_thread_local_dropped_after_the_loop";
    struct StopsOnDrop(PeriodicCallback, mpsc::Sender<(bool, bool, String)>);
    impl Drop for StopsOnDrop {
        fn drop(&mut self) {
            self.0.stop();
            let stopped = !self.0.is_running();
            let again = IOLoop::try_current();
            let msg = again.as_ref().err().map(ToString::to_string);
            let _ = self
                .1
                .send((stopped, again.is_err(), msg.unwrap_or_default()));
        }
    }
    thread_local! {
        static STOPS: RefCell<Option<StopsOnDrop>> = const { RefCell::new(None) };
    }
    if util::isolated(NAME) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // Used before the loop, so dropped after it (the reverse order of
        // first use).
        STOPS.with(|s| assert!(s.borrow().is_none()));
        let lp = IOLoop::current();
        let pc = PeriodicCallback::new(|| {}, Duration::from_secs(3600));
        pc.start();
        assert_eq!(lp.pending_timeouts(), 1);
        STOPS.with(|s| *s.borrow_mut() = Some(StopsOnDrop(pc, tx)));
    });
    t.join().expect("the thread panicked");
    let (stopped, refused, msg) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the destructor did not run to its end");
    assert!(stopped, "the callback still runs");
    assert!(refused, "try_current made a loop for an ending thread");
    assert!(msg.contains("IOLoop was dropped"), "{msg}");
}

#[test]
fn client_connection_closed_by_a_thread_local_dropped_after_the_loop() {
    // As above, for the cleanup calls of a client connection and of
    // `close_connection`: the connection went with the loop. A last read
    // asked there has no loop to answer it: its callback is dropped.
    use cyclone::websocket::{close_connection, WebSocketClientConnection};
    const NAME: &str = "client_connection_closed_by_a_thread_local_dropped_after_the_loop";
    struct ClosesOnDrop(WebSocketClientConnection, mpsc::Sender<bool>);
    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            self.0
                .read_message_then(|_| panic!("ran after the loop was gone"));
            self.0.close(Some(1001), "bye");
            self.0.terminate();
            let found = close_connection(self.0.id(), None, "");
            let _ = self.1.send(found);
        }
    }
    thread_local! {
        static CLOSES: RefCell<Option<ClosesOnDrop>> = const { RefCell::new(None) };
    }
    if util::isolated(NAME) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // Used before the loop, so dropped after it.
        CLOSES.with(|c| assert!(c.borrow().is_none()));
        let conn = echo_client_on_this_thread();
        CLOSES.with(|c| *c.borrow_mut() = Some(ClosesOnDrop(conn, tx)));
    });
    t.join().expect("the thread panicked");
    let found = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the destructor did not run to its end");
    assert!(!found, "close_connection found a connection of a gone loop");
}

/// An echo server on this thread's loop, subscribing each connection to
/// "room", and a client connected to it (for the destructor tests around
/// it).
fn echo_client_on_this_thread() -> cyclone::websocket::WebSocketClientConnection {
    use cyclone::web::Application;
    use cyclone::websocket::{websocket_connect, Message, WebSocket, WebSocketHandler};
    struct Echo;
    impl WebSocketHandler for Echo {
        fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
            assert!(ws.subscribe("room"));
        }
        fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
            let _ = ws.write_message(msg);
        }
    }
    let app = Application::builder()
        .websocket(r"/echo", |_req| Echo)
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    let lp = IOLoop::current();
    let guard = lp.call_later(Duration::from_secs(10), || panic!("connect timed out"));
    let conn = lp.run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        conn.write_message("hi").expect("open");
        assert_eq!(conn.read_message().await.unwrap().as_text(), Some("hi"));
        conn
    });
    lp.remove_timeout(guard);
    conn
}

#[test]
fn websocket_sends_from_a_thread_local_dropped_after_the_loop() {
    // As above, for the free calls that send to connections (a goodbye,
    // a leave notice published): none is there to receive it, and a
    // panic in the destructor would abort the process.
    use cyclone::websocket::{broadcast, publish, subscribers, write_to, ConnId};
    const NAME: &str = "websocket_sends_from_a_thread_local_dropped_after_the_loop";
    struct SaysByeOnDrop(ConnId, mpsc::Sender<(usize, usize, usize, bool)>);
    impl Drop for SaysByeOnDrop {
        fn drop(&mut self) {
            let n = subscribers("room");
            let published = publish("room", "left");
            let sent = broadcast([self.0], "bye");
            let written = write_to(self.0, "bye");
            let _ = self.1.send((n, published, sent, written));
        }
    }
    thread_local! {
        static SAYS: RefCell<Option<SaysByeOnDrop>> = const { RefCell::new(None) };
    }
    if util::isolated(NAME) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // Used before the loop and the topics, so dropped after them.
        SAYS.with(|s| assert!(s.borrow().is_none()));
        let conn = echo_client_on_this_thread();
        let lp = IOLoop::current();
        let guard = lp.call_later(Duration::from_secs(10), || panic!("echo timed out"));
        let id = conn.id();
        let conn = lp.run_sync(async move {
            // The same calls while the loop is there reach the connections.
            assert_eq!(subscribers("room"), 1);
            assert_eq!(publish("room", "p"), 1);
            assert!(write_to(id, "w"));
            assert_eq!(broadcast([id], "b"), 1);
            assert_eq!(conn.read_message().await.unwrap().as_text(), Some("p"));
            for echoed in ["w", "b"] {
                assert_eq!(conn.read_message().await.unwrap().as_text(), Some(echoed));
            }
            conn
        });
        lp.remove_timeout(guard);
        SAYS.with(|s| *s.borrow_mut() = Some(SaysByeOnDrop(id, tx)));
        drop(conn);
    });
    t.join().expect("the thread panicked");
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the destructor did not run to its end");
    assert_eq!(
        got,
        (0, 0, 0, false),
        "sent to the connections of a gone loop"
    );
}

#[test]
fn client_connection_writes_from_a_thread_local_dropped_after_the_loop() {
    // As above, for a client connection's goodbye: the connection went
    // with the loop, and each call says it is closed.
    use cyclone::websocket::{PingError, WebSocketClientConnection, WebSocketClosedError};
    const NAME: &str = "client_connection_writes_from_a_thread_local_dropped_after_the_loop";
    type Said = (bool, Result<(), PingError>, usize, bool);
    struct WritesOnDrop(WebSocketClientConnection, mpsc::Sender<Said>);
    impl Drop for WritesOnDrop {
        fn drop(&mut self) {
            let written = matches!(self.0.write_message("bye"), Err(WebSocketClosedError));
            let pinged = self.0.ping(b"bye");
            let queued = self.0.buffered_amount();
            // Not kept (the connection never closed, no subprotocol), so
            // asked of the gone loop: none; the 101's headers are kept.
            let kept = self.0.request().is_none()
                && self.0.selected_subprotocol().is_none()
                && !self.0.headers().is_empty();
            let _ = self.1.send((written, pinged, queued, kept));
        }
    }
    thread_local! {
        static WRITES: RefCell<Option<WritesOnDrop>> = const { RefCell::new(None) };
    }
    if util::isolated(NAME) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // Used before the loop, so dropped after it.
        WRITES.with(|w| assert!(w.borrow().is_none()));
        let conn = echo_client_on_this_thread();
        // While the loop is there, the same calls reach the connection.
        assert!(conn.write_message("queued").is_ok());
        assert_eq!(conn.ping(b"p"), Ok(()));
        assert!(conn.buffered_amount() > 0);
        WRITES.with(|w| *w.borrow_mut() = Some(WritesOnDrop(conn, tx)));
    });
    t.join().expect("the thread panicked");
    let (written, pinged, queued, kept) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the destructor did not run to its end");
    assert!(
        written,
        "write_message did not say the connection is closed"
    );
    assert_eq!(pinged, Err(PingError::Closed));
    assert_eq!(queued, 0);
    assert!(kept, "the request, subprotocol or headers were misreported");
}

#[test]
fn client_connects_from_a_thread_local_dropped_after_the_loop() {
    // As above, for the connect calls (a reconnect asked from a
    // destructor): no loop is left to connect on, and none is made for an
    // ending thread. Each says so with an error, and a callback that
    // would run on the loop is dropped uncalled.
    use cyclone::websocket::{
        websocket_connect, websocket_connect_callback, websocket_connect_then,
        websocket_connect_with, websocket_connect_with_result, ConnectError, ConnectOptions,
        Message, WebSocket, WebSocketHandler,
    };
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    const NAME: &str = "client_connects_from_a_thread_local_dropped_after_the_loop";
    const URL: &str = "ws://127.0.0.1:9/never";
    struct Never;
    impl WebSocketHandler for Never {
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {
            panic!("a message after the loop was gone");
        }
    }
    /// The error's text when it is the one of a gone loop.
    fn gone<T>(res: Result<T, ConnectError>) -> Option<String> {
        match res {
            Err(ConnectError::Io(e)) => Some(e.to_string()),
            _ => None,
        }
    }
    struct ConnectsOnDrop(mpsc::Sender<Vec<Option<String>>>);
    impl Drop for ConnectsOnDrop {
        fn drop(&mut self) {
            let opts = ConnectOptions::default;
            let mut said = Vec::new();
            let mut connect = pin!(websocket_connect(URL));
            said.push(
                match connect
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(res) => gone(res),
                    Poll::Pending => Some("pending: it would wait forever".to_owned()),
                },
            );
            said.push(gone(websocket_connect_with(URL, opts(), Never)));
            said.push(gone(websocket_connect_with_result(
                URL,
                opts(),
                Never,
                |_| panic!("on_result ran after the loop was gone"),
            )));
            said.push(gone(websocket_connect_callback(URL, opts(), |_| {
                panic!("on_message ran after the loop was gone")
            })));
            websocket_connect_then(URL, opts(), |_| panic!("ran after the loop was gone"));
            let _ = self.0.send(said);
        }
    }
    thread_local! {
        static CONNECTS: RefCell<Option<ConnectsOnDrop>> = const { RefCell::new(None) };
    }
    if util::isolated(NAME) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // Used before the loop, so dropped after it.
        CONNECTS.with(|c| assert!(c.borrow().is_none()));
        let _ = IOLoop::current();
        CONNECTS.with(|c| *c.borrow_mut() = Some(ConnectsOnDrop(tx)));
    });
    t.join().expect("the thread panicked");
    let said = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the destructor did not run to its end");
    assert_eq!(said.len(), 4);
    for msg in said {
        let msg = msg.expect("not the error of a gone loop");
        assert!(msg.contains("IOLoop was dropped"), "{msg}");
    }
}
#[test]
fn shutdown_and_on_close_from_a_thread_local_dropped_after_the_loop() {
    // As above, for `shutdown` and for `AsyncResponse::on_close` on a
    // response whose client went: nothing is left to shut down, nothing
    // would run the callback.
    use cyclone::web::{Application, AsyncResponse, RequestContext, RequestHandler};
    use std::io::Write;
    const NAME: &str = "shutdown_and_on_close_from_a_thread_local_dropped_after_the_loop";
    struct CleansUpOnDrop(AsyncResponse, mpsc::Sender<bool>);
    impl Drop for CleansUpOnDrop {
        fn drop(&mut self) {
            self.0.on_close(|| panic!("ran after the loop was gone"));
            cyclone::shutdown(Duration::ZERO);
            let _ = self.1.send(self.0.is_closed());
        }
    }
    thread_local! {
        static CLEANS: RefCell<Option<CleansUpOnDrop>> = const { RefCell::new(None) };
    }
    /// Keeps its answer open, and stops the loop once it has it.
    struct Holds(Rc<RefCell<Option<AsyncResponse>>>);
    impl RequestHandler for Holds {
        fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
            let later = cx.asynchronous();
            later.on_close(|| IOLoop::current().stop());
            *self.0.borrow_mut() = Some(later);
            IOLoop::current().stop();
        }
    }
    if util::isolated(NAME) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // Used before the loop, so dropped after it.
        CLEANS.with(|c| assert!(c.borrow().is_none()));
        let held = Rc::new(RefCell::new(None));
        let slot = held.clone();
        let app = Application::builder()
            .route(r"/", move || Holds(slot.clone()))
            .build();
        let addr = app.listen_on("127.0.0.1:0").expect("listen");
        let lp = IOLoop::current();
        let guard = lp.call_later(Duration::from_secs(10), || panic!("timed out"));
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        // Until the handler holds the answer, then until the client's
        // going closed it.
        lp.start();
        drop(client);
        lp.start();
        lp.remove_timeout(guard);
        let later = held.borrow_mut().take().expect("the handler ran");
        assert!(later.is_closed());
        CLEANS.with(|c| *c.borrow_mut() = Some(CleansUpOnDrop(later, tx)));
    });
    t.join().expect("the thread panicked");
    let closed = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the destructor did not run to its end");
    assert!(closed);
}

#[test]
fn locks_and_queues_from_a_thread_local_dropped_after_the_loop() {
    // Tornado's locks and queues wake tasks of a loop: once that loop is
    // gone (the thread ending), a notify, set, release or put there
    // wakes nothing, and each still does its part on the primitive.
    use cyclone::locks::{Condition, Event, Lock, Semaphore};
    use cyclone::queues::Queue;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    const NAME: &str = "locks_and_queues_from_a_thread_local_dropped_after_the_loop";
    if util::isolated(NAME) {
        return;
    }
    let got = util::after_the_loop(|| {
        let lp = IOLoop::current();
        let (cond, event, sem, lock) = (
            Condition::new(),
            Event::new(),
            Semaphore::new(1),
            Lock::new(),
        );
        let (empty, full) = (Queue::<u32>::new(0), Queue::<u32>::new(1));
        let sem_held = sem.try_acquire().expect("a free place");
        let lock_held = lock.try_acquire().expect("a free lock");
        full.put_nowait(1).unwrap();
        // Tasks left waiting on each when the thread ends, ahead of the
        // waits below: dropped with the loop, their places are skipped.
        let (c, e, s, l) = (cond.clone(), event.clone(), sem.clone(), lock.clone());
        let (q, f, j) = (empty.clone(), full.clone(), full.clone());
        lp.spawn(async move { c.wait().await });
        lp.spawn(async move { e.wait().await });
        lp.spawn(async move { drop(s.acquire().await) });
        lp.spawn(async move { drop(l.acquire().await) });
        lp.spawn(async move {
            q.get().await;
        });
        lp.spawn(async move { f.put(0).await });
        lp.spawn(async move { j.join().await });
        // Waits whose futures outlive the loop, polled by one of its tasks
        // (their wakers are the gone loop's).
        let waits = Rc::new(RefCell::new(Some((
            cond.wait(),
            event.wait(),
            sem.acquire(),
            lock.acquire(),
            empty.get(),
            full.put(2),
            full.join(),
        ))));
        let polled = waits.clone();
        lp.run_sync(std::future::poll_fn(move |cx| {
            let mut w = polled.borrow_mut();
            let w = w.as_mut().unwrap();
            let pending = [
                Pin::new(&mut w.0).poll(cx).is_pending(),
                Pin::new(&mut w.1).poll(cx).is_pending(),
                Pin::new(&mut w.2).poll(cx).is_pending(),
                Pin::new(&mut w.3).poll(cx).is_pending(),
                Pin::new(&mut w.4).poll(cx).is_pending(),
                Pin::new(&mut w.5).poll(cx).is_pending(),
                Pin::new(&mut w.6).poll(cx).is_pending(),
            ];
            assert_eq!(pending, [true; 7]);
            Poll::Ready(())
        }));
        Box::new(move || {
            let (mut cw, mut ew, mut sa, mut la, mut get, mut put, mut join) =
                waits.borrow_mut().take().unwrap();
            cond.notify(1);
            cond.notify_all();
            event.set();
            drop(sem_held);
            drop(lock_held);
            let taken = full.get_nowait();
            let done = full.task_done();
            let handed = empty.put_nowait(7);
            let mut cx = Context::from_waker(Waker::noop());
            let woken = [
                Pin::new(&mut cw).poll(&mut cx).is_ready(),
                Pin::new(&mut ew).poll(&mut cx).is_ready(),
                Pin::new(&mut put).poll(&mut cx).is_ready(),
            ];
            let sem_guard = Pin::new(&mut sa).poll(&mut cx);
            let lock_guard = Pin::new(&mut la).poll(&mut cx);
            let places = (
                sem_guard.is_ready(),
                lock_guard.is_ready(),
                lock.is_locked(),
            );
            drop((sem_guard, lock_guard));
            let item = Pin::new(&mut get).poll(&mut cx);
            // The put's 2 is in, not done yet: join still waits.
            let joined = Pin::new(&mut join).poll(&mut cx).is_pending();
            let rest = (
                full.get_nowait(),
                full.task_done(),
                sem.value(),
                lock.is_locked(),
            );
            (taken, done, handed, woken, places, item, joined, rest)
        })
    });
    assert_eq!(
        got,
        (
            Ok(1),
            Ok(()),
            Ok(()),
            [true; 3],
            (true, true, true),
            Poll::Ready(7),
            true,
            (Ok(2), Ok(()), 1, false)
        )
    );
}

#[test]
fn timers_from_a_thread_local_dropped_after_the_loop() {
    // Timers outliving their loop: a handle from call_later or call_at
    // (Tornado's add_timeout), a sleep and a with_timeout polled once,
    // a PeriodicCallback never stopped. The timers went with the loop:
    // removing one through a kept clone of the loop finds nothing, the
    // futures' drops remove nothing, and none of the callbacks runs.
    use cyclone::ioloop::with_timeout;
    use std::pin::Pin;
    const NAME: &str = "timers_from_a_thread_local_dropped_after_the_loop";
    if util::isolated(NAME) {
        return;
    }
    let got = util::after_the_loop(|| {
        let lp = IOLoop::current();
        let fired = Rc::new(Cell::new(0));
        let hour = Duration::from_secs(3600);
        let f = fired.clone();
        let later = lp.call_later(hour, move || f.set(f.get() + 1));
        let f = fired.clone();
        let at = lp.call_at(lp.time() + hour, move || f.set(f.get() + 1));
        let f = fired.clone();
        let pc = PeriodicCallback::new(move || f.set(f.get() + 1), hour);
        pc.start();
        let naps = Rc::new(RefCell::new((
            sleep(hour),
            with_timeout(hour, std::future::pending::<()>()),
        )));
        let polled = naps.clone();
        lp.run_sync(std::future::poll_fn(move |cx| {
            let mut n = polled.borrow_mut();
            assert!(Pin::new(&mut n.0).poll(cx).is_pending());
            assert!(Pin::new(&mut n.1).poll(cx).is_pending());
            std::task::Poll::Ready(())
        }));
        assert_eq!(lp.pending_timeouts(), 5);
        Box::new(move || {
            let removed = (lp.remove_timeout(later), lp.remove_timeout(at));
            let left = lp.pending_timeouts();
            drop(naps);
            drop(pc);
            (removed, left, fired.get())
        })
    });
    assert_eq!(got, ((false, false), 0, 0));
}

#[test]
fn signal_handlers_from_a_thread_local_dropped_after_the_loop() {
    // A signal handler went with its loop: removing it through a kept
    // clone of the loop finds none.
    const NAME: &str = "signal_handlers_from_a_thread_local_dropped_after_the_loop";
    if util::isolated(NAME) {
        return;
    }
    let got = util::after_the_loop(|| {
        let lp = IOLoop::current();
        lp.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
        Box::new(move || lp.remove_signal_handler(libc::SIGUSR2))
    });
    assert!(!got, "a handler of the gone loop was still there");
}

#[test]
fn suspensions_dropped_by_a_thread_local_after_the_loop() {
    // A WebSocket handler's Suspension (its own, and the one a
    // `ws.spawn` future holds, dropped with the loop's tasks) outliving
    // the loop: its connection went with the loop, and the drop finds
    // nothing to resume.
    use cyclone::web::Application;
    use cyclone::websocket::{
        websocket_connect, with_websocket_of, Message, Suspension, WebSocket, WebSocketHandler,
    };
    const NAME: &str = "suspensions_dropped_by_a_thread_local_after_the_loop";
    struct Holds(Rc<RefCell<Option<Suspension>>>);
    impl WebSocketHandler for Holds {
        fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
            *self.0.borrow_mut() = Some(ws.suspend());
            ws.spawn(std::future::pending());
        }
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
    }
    if util::isolated(NAME) {
        return;
    }
    let found = util::after_the_loop(|| {
        let held = Rc::new(RefCell::new(None));
        let slot = held.clone();
        let app = Application::builder()
            .websocket(r"/held", move |_req| Holds(slot.clone()))
            .build();
        let addr = app.listen_on("127.0.0.1:0").expect("listen");
        let lp = IOLoop::current();
        let guard = lp.call_later(Duration::from_secs(10), || panic!("connect timed out"));
        let opened = held.clone();
        let conn = lp.run_sync(async move {
            let conn = websocket_connect(&format!("ws://{addr}/held"))
                .await
                .expect("connect");
            while opened.borrow().is_none() {
                sleep(Duration::from_millis(1)).await;
            }
            conn
        });
        lp.remove_timeout(guard);
        let hold = held.borrow_mut().take().expect("the handler opened");
        Box::new(move || {
            let id = hold.id();
            drop(hold);
            let found = with_websocket_of(id, |_| ()).is_some();
            drop(conn);
            found
        })
    });
    assert!(!found, "found a connection of the gone loop");
}

#[test]
fn executor_futures_from_a_thread_local_dropped_after_the_loop() {
    // run_in_executor's futures outliving the loop that awaited them: one
    // still queued is cancelled, one running finishes (waking the gone
    // loop's task: nothing) and is there to take, as is the job of the
    // loop's own pool, which the loop's end waited for.
    use cyclone::ioloop::ThreadPool;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    const NAME: &str = "executor_futures_from_a_thread_local_dropped_after_the_loop";
    if util::isolated(NAME) {
        return;
    }
    let got = util::after_the_loop(|| {
        let lp = IOLoop::current();
        let pool = ThreadPool::new(1);
        let (release, held) = mpsc::channel::<()>();
        let running =
            Rc::new(RefCell::new(pool.run(move || {
                held.recv_timeout(Duration::from_secs(10)).is_ok()
            })));
        let queued = pool.run(|| panic!("a cancelled job ran"));
        let own = lp.run_in_executor(|| 6 * 7);
        let polled = running.clone();
        lp.run_sync(std::future::poll_fn(move |cx| {
            assert!(Pin::new(&mut *polled.borrow_mut()).poll(cx).is_pending());
            Poll::Ready(())
        }));
        Box::new(move || {
            let cancelled = queued.cancel();
            release.send(()).unwrap();
            pool.shutdown(true);
            let mut cx = Context::from_waker(Waker::noop());
            let ran = Pin::new(&mut *running.borrow_mut()).poll(&mut cx);
            let mut own = own;
            let own = Pin::new(&mut own).poll(&mut cx);
            (cancelled, ran, own)
        })
    });
    assert_eq!(got, (true, Poll::Ready(true), Poll::Ready(42)));
}

/// Tornado's `gen.sleep(d)` and `gen.with_timeout(d, f)` count `d` from
/// the call, not from the first `await`: a sleep made, then awaited after
/// `d` passed, is over at once, as is a timeout.
#[test]
fn sleep_and_with_timeout_count_from_when_they_are_made() {
    use cyclone::ioloop::{with_timeout, TimeoutError};
    in_thread(|| {
        let lp = IOLoop::current();
        lp.call_later(Duration::from_secs(20), || panic!("test timed out"));
        let (slept, timed_out, gave_up_after) = lp.run_sync(async {
            let lp = IOLoop::current();
            let s = sleep(Duration::from_secs(5));
            let w = with_timeout(Duration::from_secs(5), std::future::pending::<()>());
            lp.advance_clock(Duration::from_secs(6));
            let t = Instant::now();
            s.await;
            let slept = t.elapsed();
            let t = Instant::now();
            let timed_out = w.await;
            (slept, timed_out, t.elapsed())
        });
        assert!(slept < Duration::from_secs(1), "slept {slept:?}");
        assert_eq!(timed_out, Err(TimeoutError));
        assert!(gave_up_after < Duration::from_secs(1), "{gave_up_after:?}");
    });
}

/// Tornado's `call_at` with a deadline already past schedules for now
/// (`call_later(max(0, when - time()))`): it runs after the timers already
/// due that were set before it, not ahead of them.
#[test]
fn call_at_in_the_past_runs_after_timers_due_and_set_before_it() {
    let order = in_thread(|| {
        let lp = IOLoop::current();
        let order = Rc::new(RefCell::new(Vec::new()));
        let (a, b, c) = (order.clone(), order.clone(), order.clone());
        lp.add_callback(move || a.borrow_mut().push("callback"));
        lp.call_later(Duration::ZERO, move || b.borrow_mut().push("later0"));
        let past = lp.time() - Duration::from_secs(10);
        lp.call_at(past, move || c.borrow_mut().push("at_past"));
        lp.run_once(Some(Duration::ZERO)).unwrap();
        let order = order.borrow().clone();
        order
    });
    assert_eq!(order, ["callback", "later0", "at_past"]);
}

/// The order of callbacks and zero-delay timers, as Tornado 6.6 runs them
/// (on asyncio): callbacks queued before an iteration, then the timers
/// due that were set before it; what a callback adds, a callback or a
/// `call_later(0)`, waits for the next iteration, the callback first.
/// Tornado prints `['cb1', 'cb2', 'outer', 'later0', 'at_past',
/// 'nested_cb', 'nested_later0']` for the same calls.
#[test]
fn callbacks_and_zero_delay_timers_run_in_tornado_s_order() {
    let order = in_thread(|| {
        let lp = IOLoop::current();
        let order = Rc::new(RefCell::new(Vec::new()));
        let push = |what: &'static str| {
            let order = order.clone();
            move || order.borrow_mut().push(what)
        };
        lp.add_callback(push("cb1"));
        lp.call_later(Duration::ZERO, push("later0"));
        lp.call_at(lp.time() - Duration::from_secs(10), push("at_past"));
        lp.add_callback(push("cb2"));
        let (nested_cb, nested_later0) = (push("nested_cb"), push("nested_later0"));
        let outer = push("outer");
        lp.add_callback(move || {
            outer();
            let lp = IOLoop::current();
            lp.add_callback(nested_cb);
            lp.call_later(Duration::ZERO, nested_later0);
        });
        for _ in 0..3 {
            lp.run_once(Some(Duration::ZERO)).unwrap();
        }
        let order = order.borrow().clone();
        order
    });
    assert_eq!(
        order,
        [
            "cb1",
            "cb2",
            "outer",
            "later0",
            "at_past",
            "nested_cb",
            "nested_later0"
        ]
    );
}

/// A deliberate difference, pinned: a task woken by a callback or a timer
/// (an `Event` set, say) is polled in the same iteration, in the tasks'
/// phase after the callbacks and timers, so before the callbacks queued
/// around its wake-up. Tornado queues the coroutine's resumption behind
/// the callbacks already queued: it prints `['go', 'cbA', 'task', 'cbB']`
/// for the same calls.
#[test]
fn a_woken_task_runs_in_the_same_iteration_before_callbacks_queued_around_its_wake_up() {
    let order = in_thread(|| {
        let lp = IOLoop::current();
        let order = Rc::new(RefCell::new(Vec::new()));
        let ev = cyclone::locks::Event::new();
        let (o, e) = (order.clone(), ev.clone());
        lp.spawn(async move {
            e.wait().await;
            o.borrow_mut().push("task");
        });
        let o = order.clone();
        lp.call_later(Duration::from_millis(1), move || {
            let lp = IOLoop::current();
            let a = o.clone();
            lp.add_callback(move || a.borrow_mut().push("cbA"));
            ev.set();
            let b = o.clone();
            lp.add_callback(move || b.borrow_mut().push("cbB"));
            o.borrow_mut().push("go");
        });
        let safety = Instant::now() + Duration::from_secs(10);
        while order.borrow().len() < 4 && Instant::now() < safety {
            lp.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        let order = order.borrow().clone();
        order
    });
    assert_eq!(order, ["go", "task", "cbA", "cbB"]);
}

/// `run_sync` from inside the loop panics (Tornado raises `RuntimeError:
/// This event loop is already running`) without leaving its future
/// behind: Tornado's stays queued, runs later and stops the loop under
/// whoever runs it next. Here it is never spawned.
#[test]
fn nested_run_sync_panics_and_leaves_no_task_behind() {
    let (nested_failed, ran, next) = in_thread(|| {
        let lp = IOLoop::current();
        let watchdog = safety_stop(&lp);
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let nested_failed = lp.run_sync(async move {
            let inner = catch_unwind(AssertUnwindSafe(|| {
                IOLoop::current().run_sync(async move { r.set(true) })
            }));
            sleep(Duration::from_millis(5)).await;
            inner.is_err()
        });
        let next = lp.run_sync(async {
            sleep(Duration::from_millis(5)).await;
            "next"
        });
        lp.remove_timeout(watchdog);
        (nested_failed, ran.get(), next)
    });
    assert!(nested_failed);
    assert!(!ran, "the nested run_sync's future ran after all");
    assert_eq!(next, "next");
}

/// Tornado's `PeriodicCallback` awaits a callback that returns an
/// awaitable: the next call is scheduled once it completes, on the
/// schedule's grid, so calls never overlap and the periods missed
/// meanwhile are skipped. A call that panics is logged and the callback
/// stays scheduled. (Tornado: calls at 21, 81, 142, 201 ms for a 20 ms
/// period and a 50 ms coroutine.)
#[test]
fn an_async_periodic_callback_is_awaited_before_the_next_call() {
    let (starts, max_overlap, panicked_calls) = in_thread(|| {
        let lp = IOLoop::current();
        let t0 = lp.time();
        let starts: Rc<RefCell<Vec<Duration>>> = Rc::default();
        let (running, max_overlap) = (Rc::new(Cell::new(0u32)), Rc::new(Cell::new(0u32)));
        let (s, r, m) = (starts.clone(), running.clone(), max_overlap.clone());
        let pc = PeriodicCallback::new_async(
            move || {
                let (s, r, m) = (s.clone(), r.clone(), m.clone());
                async move {
                    s.borrow_mut().push(IOLoop::current().time() - t0);
                    r.set(r.get() + 1);
                    m.set(m.get().max(r.get()));
                    sleep(Duration::from_millis(50)).await;
                    r.set(r.get() - 1);
                }
            },
            Duration::from_millis(20),
        );
        pc.start();
        let calls = Rc::new(Cell::new(0u32));
        let c = calls.clone();
        let panicky = PeriodicCallback::new_async(
            move || {
                let c = c.clone();
                async move {
                    c.set(c.get() + 1);
                    sleep(Duration::from_millis(1)).await;
                    panic!("async periodic boom");
                }
            },
            Duration::from_millis(20),
        );
        panicky.start();
        lp.call_later(Duration::from_millis(230), || IOLoop::current().stop());
        lp.start();
        pc.stop();
        panicky.stop();
        let starts = starts.borrow().clone();
        (starts, max_overlap.get(), calls.get())
    });
    assert_eq!(max_overlap, 1, "calls overlapped: {starts:?}");
    assert!((2..=5).contains(&starts.len()), "{starts:?}");
    for w in starts.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(55), "{starts:?}");
    }
    assert!(
        panicked_calls >= 3,
        "a panicking call ended it: {panicked_calls}"
    );
}

/// Pinned beside Tornado 6.6: `remove_timeout` of a timer that fired is a
/// no-op (false here, `None` there); `time()` never goes back; a zero
/// period panics (Tornado's `ValueError: Periodic callback must have a
/// positive callback_time`); a `PeriodicCallback` stopped from its own
/// callback is not running there already and is called no more, and
/// started again it runs one period later (Tornado: one call, then one
/// more after the restart).
#[test]
fn fired_timeouts_clock_and_periodic_stop_restart_as_tornado() {
    let (removed, calls_stopped, calls_restarted) = in_thread(|| {
        let lp = IOLoop::current();
        let watchdog = safety_stop(&lp);
        let h = lp.call_later(Duration::ZERO, || {});
        lp.run_once(Some(Duration::ZERO)).unwrap();
        let removed = lp.remove_timeout(h);
        let mut last = lp.time();
        for _ in 0..1000 {
            let now = lp.time();
            assert!(now >= last);
            last = now;
        }
        let zero = catch_unwind(|| PeriodicCallback::new(|| {}, Duration::ZERO));
        assert!(zero.is_err(), "a zero period was taken");

        let calls = Rc::new(Cell::new(0u32));
        let slot: Rc<RefCell<Option<PeriodicCallback>>> = Rc::default();
        let (c, s) = (calls.clone(), slot.clone());
        let pc = PeriodicCallback::new(
            move || {
                c.set(c.get() + 1);
                let pc = s.borrow().clone().unwrap();
                pc.stop();
                assert!(!pc.is_running());
            },
            Duration::from_millis(10),
        );
        *slot.borrow_mut() = Some(pc.clone());
        pc.start();
        assert!(pc.is_running());
        lp.run_sync(sleep(Duration::from_millis(100)));
        let stopped = calls.get();
        pc.start();
        lp.run_sync(sleep(Duration::from_millis(5)));
        let early = calls.get();
        lp.run_sync(sleep(Duration::from_millis(60)));
        assert_eq!(early, stopped, "called before its period");
        slot.borrow_mut().take();
        lp.remove_timeout(watchdog);
        (removed, stopped, calls.get())
    });
    assert!(!removed);
    assert_eq!(calls_stopped, 1);
    assert_eq!(calls_restarted, 2);
}

/// Tornado's `gen.multi([a, b])` is `multi(vec![a, b])`: the futures run
/// together in the awaiting task, for the longest one and not the sum;
/// the outputs come in the order given, not the order the futures
/// completed in; an empty input resolves at once to an empty `Vec`.
#[test]
fn multi_waits_together_in_input_order_as_gen_multi() {
    let (outs, took, empty) = in_thread(|| {
        let lp = IOLoop::current();
        let watchdog = safety_stop(&lp);
        let done: Rc<RefCell<Vec<u64>>> = Rc::default();
        let got = lp.run_sync(async move {
            let t = Instant::now();
            let after = |ms: u64| {
                let done = done.clone();
                async move {
                    sleep(Duration::from_millis(ms)).await;
                    done.borrow_mut().push(ms);
                    ms
                }
            };
            let outs = multi(vec![after(80), after(20), after(50), after(0)]).await;
            assert_eq!(
                *done.borrow(),
                [0, 20, 50, 80],
                "completed in another order"
            );
            let took = t.elapsed();
            let empty = multi(Vec::<std::future::Ready<u8>>::new()).await;
            (outs, took, empty)
        });
        lp.remove_timeout(watchdog);
        got
    });
    assert_eq!(outs, [80, 20, 50, 0]);
    assert!(took >= Duration::from_millis(80), "{took:?}");
    assert!(took < Duration::from_millis(150), "{took:?}");
    assert!(empty.is_empty());
}

/// A panic in one of `multi`'s futures propagates as from any future on
/// the loop: out of `run_sync`, and in a spawned task logged, counted and
/// the task dropped (with the other futures) while the loop goes on.
#[test]
fn multi_propagates_a_panic_as_the_loops_other_futures() {
    let (from_run_sync, logged, panics, after_panic) = in_thread(|| {
        let lp = IOLoop::current();
        let watchdog = safety_stop(&lp);
        let fails = |ms: u64, boom: bool| async move {
            sleep(Duration::from_millis(ms)).await;
            assert!(!boom, "boom in multi");
            ms
        };
        let from_run_sync = catch_unwind(AssertUnwindSafe(|| {
            lp.run_sync(multi(vec![fails(10, false), fails(20, true)]))
        }))
        .map_err(|p| p.downcast_ref::<&str>().copied());

        let logs = capture_logs();
        let after_panic = Rc::new(Cell::new(false));
        let a = after_panic.clone();
        lp.spawn(async move {
            multi(vec![fails(10, true), fails(40, false)]).await;
            a.set(true);
        });
        lp.run_sync(sleep(Duration::from_millis(80)));
        let logged = errors_with(&logs, "boom in multi").len();
        lp.remove_timeout(watchdog);
        (
            from_run_sync,
            logged,
            callback_panics(&lp),
            after_panic.get(),
        )
    });
    let msg = from_run_sync
        .expect_err("run_sync returned")
        .unwrap_or_default();
    assert!(msg.contains("boom in multi"), "{msg:?}");
    assert_eq!(logged, 1);
    assert_eq!(panics, 1);
    assert!(!after_panic);
}

/// Tornado's `pc.callback_time = ms` while it runs (Tornado 6.6, run
/// beside this): set from the callback, the next call is one new period
/// later (50 ms calls, set to 200 at the second: 50, 101, 307, 501, 701);
/// set between calls, the call already scheduled keeps its time and the
/// new period counts from it (100 ms, set to 20 at 30 ms: 106, 121, 141,
/// 161). A zero period panics, as at construction.
#[test]
fn periodic_callback_time_changed_while_running_as_tornado() {
    /// The times of the first `calls` calls of a `period` callback that
    /// calls `on_call(pc, n)` at its n-th call (from 1), and `on_call(pc,
    /// 0)` before it is started; with `is_async`, a `new_async` callback
    /// whose future calls it after an await, before it ends.
    fn run(
        period: Duration,
        calls: usize,
        is_async: bool,
        on_call: fn(&PeriodicCallback, usize),
    ) -> Vec<Duration> {
        let lp = IOLoop::current();
        let t0 = lp.time();
        let times: Rc<RefCell<Vec<Duration>>> = Rc::default();
        let slot: Rc<RefCell<Option<PeriodicCallback>>> = Rc::default();
        let (t, s) = (times.clone(), slot.clone());
        let call = move || {
            t.borrow_mut().push(IOLoop::current().time() - t0);
            let pc = s.borrow().clone().unwrap();
            let n = t.borrow().len();
            on_call(&pc, n);
            if n == calls {
                pc.stop();
                IOLoop::current().stop();
            }
        };
        let pc = if is_async {
            let call = Rc::new(call);
            PeriodicCallback::new_async(
                move || {
                    let call = call.clone();
                    async move {
                        cyclone::ioloop::sleep(Duration::ZERO).await;
                        call();
                    }
                },
                period,
            )
        } else {
            PeriodicCallback::new(call, period)
        };
        *slot.borrow_mut() = Some(pc.clone());
        on_call(&pc, 0);
        pc.start();
        lp.start();
        slot.borrow_mut().take();
        let times = times.borrow().clone();
        times
    }
    let ms = Duration::from_millis;
    let gaps = |t: &[Duration]| t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>();
    for is_async in [false, true] {
        let (inside, outside) = in_thread(move || {
            let lp = IOLoop::current();
            let watchdog = safety_stop(&lp);
            let inside = run(Duration::from_millis(20), 4, is_async, |pc, n| {
                if n == 2 {
                    assert_eq!(pc.callback_time(), Duration::from_millis(20));
                    pc.set_callback_time(Duration::from_millis(120));
                    assert_eq!(pc.callback_time(), Duration::from_millis(120));
                }
            });
            let outside = run(Duration::from_millis(100), 4, is_async, |pc, n| {
                if n == 0 {
                    let pc = pc.clone();
                    IOLoop::current().call_later(Duration::from_millis(30), move || {
                        pc.set_callback_time(Duration::from_millis(20));
                    });
                }
            });
            let zero = catch_unwind(AssertUnwindSafe(|| {
                PeriodicCallback::new(|| {}, Duration::from_secs(1))
                    .set_callback_time(Duration::ZERO)
            }));
            assert!(zero.is_err(), "a zero period was taken");
            lp.remove_timeout(watchdog);
            (inside, outside)
        });
        let g = gaps(&inside);
        // 20 ms, then 120 ms from the second call on (an async callback's
        // change, made before its future ends, too).
        assert!(g[0] < ms(60), "async {is_async}: {inside:?}");
        assert!(
            g[1] >= ms(110) && g[2] >= ms(110),
            "async {is_async}: {inside:?}"
        );
        // The pending call keeps its 100 ms; 20 ms periods after it.
        assert!(outside[0] >= ms(95), "async {is_async}: {outside:?}");
        assert!(
            gaps(&outside).iter().all(|g| *g < ms(80)),
            "async {is_async}: {outside:?}"
        );
    }
}

/// Tornado takes any `jitter` float (Tornado 6.6, run beside this: 50 ms
/// with `jitter` 3, -0.5 or 2.5 calls 5 or 6 times in 300 ms): a negative
/// one draws as its magnitude, a larger one can draw a period of zero or
/// less, which calls again at once. Only a NaN or infinite one, which
/// breaks Tornado's schedule at the first call, panics here.
#[test]
fn periodic_callback_takes_any_finite_jitter_as_tornado() {
    let counts = in_thread(|| {
        let lp = IOLoop::current();
        let watchdog = safety_stop(&lp);
        let counts: Vec<u32> = [-0.5, 2.5, 3.0]
            .iter()
            .map(|&jitter| {
                let calls = Rc::new(Cell::new(0u32));
                let c = calls.clone();
                let pc = PeriodicCallback::with_jitter(
                    move || c.set(c.get() + 1),
                    Duration::from_millis(50),
                    jitter,
                );
                pc.start();
                lp.run_sync(sleep(Duration::from_millis(300)));
                pc.stop();
                calls.get()
            })
            .collect();
        for jitter in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let taken = catch_unwind(|| {
                PeriodicCallback::with_jitter(|| {}, Duration::from_secs(1), jitter)
            });
            assert!(taken.is_err(), "jitter {jitter} was taken");
        }
        lp.remove_timeout(watchdog);
        counts
    });
    // Not a burst: a period of zero or less is drawn now and then (1 in 6
    // with jitter 3), a call at once, then a period drawn anew.
    assert!(counts.iter().all(|&n| (2..=100).contains(&n)), "{counts:?}");
}
