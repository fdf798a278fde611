//! IOLoop behaviour: timers, callbacks, cross-thread wake-ups, the executor,
//! PeriodicCallback and stale ids. Each test runs its loop in a fresh thread
//! (one IOLoop per thread).

use std::cell::RefCell;
use std::future::Future;
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
