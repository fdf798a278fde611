//! IOLoop behaviour: timers, callbacks, cross-thread wake-ups, the executor,
//! PeriodicCallback and stale ids. Each test runs its loop in a fresh thread
//! (one IOLoop per thread).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cyclone::ioloop::{IOLoop, PeriodicCallback};

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

/// A panic out of a callback unwinds out of `start()`; the loop must not
/// stay marked as running (else it can never be started again).
#[test]
fn loop_is_restartable_after_a_callback_panic() {
    let (running_after, restart) = in_thread(|| {
        let lp = IOLoop::current();
        lp.add_callback(|| panic!("boom in callback"));
        let first = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(first.is_err());
        let running_after = lp.is_running();
        lp.call_later(Duration::from_millis(10), || IOLoop::current().stop());
        let restart = catch_unwind(AssertUnwindSafe(|| lp.start())).is_ok();
        (running_after, restart)
    });
    assert!(
        !running_after && restart,
        "after a callback panic: is_running() = {running_after}, second start() ok = {restart}"
    );
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

/// A task that panics unwinds out of `run_sync`/`start`; its slot is freed
/// and the tasks woken with it still run when the loop is started again.
#[test]
fn a_panicking_task_frees_its_slot_and_spares_the_others() {
    let (pending, other_ran) = in_thread(|| {
        let lp = IOLoop::current();
        let ran = Rc::new(Cell::new(false));
        lp.spawn(async { panic!("boom in task") });
        let r = ran.clone();
        lp.spawn(async move { r.set(true) });
        let first = catch_unwind(AssertUnwindSafe(|| lp.start()));
        assert!(
            first.is_err(),
            "the task's panic did not unwind out of start"
        );
        lp.call_later(Duration::from_millis(10), || IOLoop::current().stop());
        lp.start();
        (lp.pending_tasks(), ran.get())
    });
    assert_eq!(pending, 0, "the panicked task still holds its slot");
    assert!(
        other_ran,
        "the task queued behind the panicking one never ran"
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
