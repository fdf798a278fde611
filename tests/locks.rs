//! `cyclone::locks` and `cyclone::queues`, Tornado's `tornado.locks` and
//! `tornado.queues`, between tasks of one loop: order of wake-ups, waits
//! given up (Tornado's `timeout=`, here `with_timeout`) skipped, and
//! nothing lost when a wait is given up after it was served. Each test
//! runs on its own thread's loop, bounded by `run_sync`'s own limit.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use cyclone::ioloop::{sleep, with_timeout, IOLoop, TimeoutError};
use cyclone::locks::{Condition, Event, Lock, Semaphore};
use cyclone::queues::{Queue, QueueEmpty, QueueFull, TooManyTaskDone};

type Log = Rc<RefCell<Vec<String>>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `f` on this thread's loop, failing past 10 s.
fn run<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    IOLoop::current()
        .run_sync(with_timeout(Duration::from_secs(10), f))
        .expect("the test did not finish in 10 s")
}

fn note(log: &Log, what: impl Into<String>) {
    log.borrow_mut().push(what.into());
}

#[test]
fn event_wakes_waiters_and_stays_set_until_cleared() {
    run(async {
        let ev = Event::new();
        let log: Log = Rc::default();
        for i in 0..3 {
            let (ev, log) = (ev.clone(), log.clone());
            IOLoop::current().spawn(async move {
                ev.wait().await;
                note(&log, format!("woke {i}"));
            });
        }
        sleep(ms(10)).await;
        assert!(log.borrow().is_empty());
        ev.set();
        sleep(ms(10)).await;
        assert_eq!(*log.borrow(), ["woke 0", "woke 1", "woke 2"]);
        // Set: ready at once. Cleared: waits again, and times out.
        ev.wait().await;
        ev.clear();
        assert!(!ev.is_set());
        assert_eq!(with_timeout(ms(20), ev.wait()).await, Err(TimeoutError));
        // A wait begun before a set and a clear is woken by the set.
        let early = ev.wait();
        ev.set();
        ev.clear();
        with_timeout(ms(100), early)
            .await
            .expect("woken by the set");
    });
}

#[test]
fn condition_notifies_in_order_and_skips_waits_given_up() {
    run(async {
        let cond = Condition::new();
        let log: Log = Rc::default();
        for i in 0..4 {
            let (cond, log) = (cond.clone(), log.clone());
            IOLoop::current().spawn(async move {
                if i == 0 {
                    // Tornado's test_notify_n_with_timeout: this one gives
                    // up, and the notification goes to the next.
                    if with_timeout(ms(10), cond.wait()).await.is_err() {
                        note(&log, "0 timed out");
                    }
                    return;
                }
                cond.wait().await;
                note(&log, format!("woke {i}"));
            });
        }
        sleep(ms(30)).await;
        assert_eq!(cond.waiting(), 3);
        cond.notify(1);
        sleep(ms(5)).await;
        assert_eq!(*log.borrow(), ["0 timed out", "woke 1"]);
        cond.notify(5);
        sleep(ms(5)).await;
        assert_eq!(*log.borrow(), ["0 timed out", "woke 1", "woke 2", "woke 3"]);
        assert_eq!(cond.waiting(), 0);
        // notify_all wakes whoever waits then, not later waits.
        let (a, b) = (cond.wait(), cond.wait());
        cond.notify_all();
        let late = cond.wait();
        a.await;
        b.await;
        assert_eq!(with_timeout(ms(10), late).await, Err(TimeoutError));
    });
}

/// A wait dropped after its notification but before it returned (a
/// timeout that fired in the same iteration) hands the notification to
/// the next waiter, as asyncio's `Condition` does since 3.13: it used to
/// be lost, and the next waiter slept on. One that returned keeps it.
#[test]
fn a_notification_to_a_wait_dropped_before_it_returned_goes_to_the_next() {
    run(async {
        let cond = Condition::new();
        let (first, second) = (cond.wait(), cond.wait());
        cond.notify(1);
        drop(first);
        with_timeout(ms(100), second)
            .await
            .expect("the notification passed on");
        let (a, b) = (cond.wait(), cond.wait());
        cond.notify(1);
        a.await;
        assert_eq!(with_timeout(ms(10), b).await, Err(TimeoutError));
        // An Event's wait has nothing to pass on: every waiter was woken.
        let ev = Event::new();
        let (c, d) = (ev.wait(), ev.wait());
        ev.set();
        drop(c);
        with_timeout(ms(100), d)
            .await
            .expect("set wakes every wait");
    });
}

#[test]
fn semaphore_admits_value_tasks_in_order_and_loses_no_place() {
    run(async {
        let sem = Semaphore::new(2);
        let log: Log = Rc::default();
        let first = sem.acquire().await;
        let second = sem.try_acquire().expect("a second place");
        assert_eq!(sem.value(), 0);
        assert!(sem.try_acquire().is_none());
        for i in 0..3 {
            let (sem, log) = (sem.clone(), log.clone());
            IOLoop::current().spawn(async move {
                let _held = sem.acquire().await;
                note(&log, format!("in {i}"));
                sleep(ms(10)).await;
            });
        }
        sleep(ms(5)).await;
        assert!(log.borrow().is_empty());
        drop(first);
        sleep(ms(2)).await;
        assert_eq!(*log.borrow(), ["in 0"]);
        drop(second);
        sleep(ms(150)).await;
        assert_eq!(*log.borrow(), ["in 0", "in 1", "in 2"]);
        assert_eq!(sem.value(), 2);

        // A wait given up is skipped; a place handed to an acquire that is
        // then dropped unpolled comes back.
        let a = sem.acquire().await;
        let b = sem.acquire().await;
        assert_eq!(
            with_timeout(ms(10), sem.acquire()).await.err(),
            Some(TimeoutError)
        );
        let waiting = sem.acquire();
        drop(a);
        drop(waiting);
        assert_eq!(sem.value(), 1);
        drop(b);
        assert_eq!(sem.value(), 2);
    });
}

#[test]
fn lock_excludes_and_serves_in_order() {
    run(async {
        let lock = Lock::new();
        let log: Log = Rc::default();
        for i in 0..3 {
            let (lock, log) = (lock.clone(), log.clone());
            IOLoop::current().spawn(async move {
                let _held = lock.acquire().await;
                note(&log, format!("start {i}"));
                sleep(ms(5)).await;
                note(&log, format!("end {i}"));
            });
        }
        sleep(ms(2)).await;
        assert!(lock.is_locked());
        assert!(lock.try_acquire().is_none());
        sleep(ms(150)).await;
        assert_eq!(
            *log.borrow(),
            ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
        );
        assert!(!lock.is_locked());
        assert!(lock.try_acquire().is_some());
    });
}

#[test]
fn bounded_queue_makes_producers_wait_and_keeps_order() {
    run(async {
        let q: Queue<u32> = Queue::new(2);
        let log: Log = Rc::default();
        let (producer, plog) = (q.clone(), log.clone());
        IOLoop::current().spawn(async move {
            for n in 0..5 {
                producer.put(n).await;
                note(&plog, format!("put {n}"));
            }
        });
        sleep(ms(5)).await;
        // Two fit, the third waits.
        assert_eq!(*log.borrow(), ["put 0", "put 1"]);
        assert!(q.full());
        assert!(matches!(q.put_nowait(9), Err(QueueFull(9))));
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(q.get().await);
            sleep(ms(1)).await;
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(log.borrow().len(), 5);
        assert!(q.empty());
        assert_eq!(q.get_nowait(), Err(QueueEmpty));
    });
}

#[test]
fn getters_wait_in_order_and_nothing_is_lost_when_one_gives_up() {
    run(async {
        let q: Queue<&'static str> = Queue::new(0);
        let log: Log = Rc::default();
        for i in 0..2 {
            let (q, log) = (q.clone(), log.clone());
            IOLoop::current().spawn(async move {
                let item = q.get().await;
                note(&log, format!("{i} got {item}"));
            });
        }
        // A get that gives up is skipped.
        assert_eq!(with_timeout(ms(5), q.get()).await, Err(TimeoutError));
        q.put_nowait("a").unwrap();
        q.put("b").await;
        sleep(ms(2)).await;
        assert_eq!(*log.borrow(), ["0 got a", "1 got b"]);

        // An item handed to a get that is dropped before it is polled
        // goes back to the queue; one taken at once, too.
        let served = q.get();
        q.put_nowait("c").unwrap();
        assert_eq!(q.qsize(), 0);
        drop(served);
        assert_eq!(q.qsize(), 1);
        drop(q.get());
        assert_eq!(q.get_nowait(), Ok("c"));

        // A put given up on a full queue puts nothing.
        let bounded: Queue<u8> = Queue::new(1);
        bounded.put(1).await;
        assert_eq!(with_timeout(ms(5), bounded.put(2)).await, Err(TimeoutError));
        assert_eq!(bounded.get().await, 1);
        assert!(bounded.empty());
    });
}

/// A get dropped after an item was handed to it, once puts refilled the
/// bounded queue: the item leaves next, but the queue stays within
/// `maxsize` (Tornado's queue never holds more), and the puts waiting
/// for room still wait their turn behind it.
#[test]
fn an_item_given_back_to_a_full_queue_keeps_it_within_maxsize() {
    run(async {
        let q: Queue<&'static str> = Queue::new(1);
        let served = q.get();
        q.put_nowait("a").unwrap(); // handed to `served`
        q.put_nowait("b").unwrap(); // room again, as in Tornado
        let waiting_put = q.put("c");
        drop(served);
        assert_eq!(q.qsize(), 1, "within maxsize");
        assert!(q.full());
        assert_eq!(q.put_nowait("d"), Err(QueueFull("d")));
        assert_eq!(q.get_nowait(), Ok("a"), "the item given back leaves next");
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.get_nowait(), Ok("b"));
        waiting_put.await; // let in by that get
        assert_eq!(q.get_nowait(), Ok("c"));
        assert_eq!(q.get_nowait(), Err(QueueEmpty));
        for _ in 0..3 {
            q.task_done().unwrap();
        }
        assert_eq!(q.task_done(), Err(TooManyTaskDone));

        // A priority queue lets the lowest out first, the item given back
        // among them.
        let pq: Queue<u8> = Queue::priority(1);
        let served = pq.get();
        pq.put_nowait(2).unwrap();
        pq.put_nowait(1).unwrap();
        drop(served);
        assert_eq!(pq.qsize(), 1);
        assert_eq!(pq.get_nowait(), Ok(1));
        assert_eq!(pq.get_nowait(), Ok(2));
        assert!(pq.empty());
    });
}

#[test]
fn join_waits_for_every_task_done() {
    run(async {
        let q: Queue<u32> = Queue::new(0);
        q.join().await; // nothing outstanding
        for n in 0..3 {
            q.put_nowait(n).unwrap();
        }
        let log: Log = Rc::default();
        let (worker, wlog) = (q.clone(), log.clone());
        IOLoop::current().spawn(async move {
            for _ in 0..3 {
                let n = worker.get().await;
                sleep(ms(3)).await;
                note(&wlog, format!("done {n}"));
                worker.task_done().unwrap();
            }
        });
        q.join().await;
        assert_eq!(*log.borrow(), ["done 0", "done 1", "done 2"]);
        assert_eq!(q.task_done(), Err(TooManyTaskDone));
    });
}

/// Tornado's `LifoQueue` and `PriorityQueue`: the same queue, items
/// leaving last first or lowest first (equal ones in the order they
/// came); an item a dropped get had taken leaves next again.
#[test]
fn lifo_and_priority_queues_leave_in_their_order() {
    run(async {
        let lifo: Queue<u32> = Queue::lifo(0);
        for n in 1..=3 {
            lifo.put_nowait(n).unwrap();
        }
        drop(lifo.get()); // took 3, gave it back
        let mut got = Vec::new();
        while let Ok(n) = lifo.get_nowait() {
            got.push(n);
        }
        assert_eq!(got, [3, 2, 1]);

        let pq: Queue<(u8, &'static str)> = Queue::priority(0);
        for item in [(3, "c"), (1, "a"), (2, "b"), (1, "a2")] {
            pq.put(item).await;
        }
        drop(pq.get());
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(pq.get().await);
        }
        assert_eq!(got, [(1, "a"), (1, "a2"), (2, "b"), (3, "c")]);

        // Bounded: a get lets a waiting put in first, as Tornado's does, so
        // the lowest of both leaves (asyncio's would give 5 first).
        let bounded: Queue<u8> = Queue::priority(1);
        bounded.put(5).await;
        let waiting = bounded.clone();
        IOLoop::current().spawn(async move { waiting.put(1).await });
        sleep(ms(2)).await;
        assert_eq!(bounded.qsize(), 1);
        assert_eq!(bounded.get().await, 1);
        assert_eq!(bounded.get().await, 5);
        // And a LIFO queue gives the newest.
        let stack: Queue<u8> = Queue::lifo(1);
        stack.put(1).await;
        let waiting = stack.clone();
        IOLoop::current().spawn(async move { waiting.put(2).await });
        sleep(ms(2)).await;
        assert_eq!(stack.get().await, 2);
        assert_eq!(stack.get().await, 1);
        assert!(stack.empty());
    });
}

#[test]
fn items_stream_gets_in_order_and_gives_back_on_drop() {
    use futures_core::Stream;
    run(async {
        let q: Queue<u32> = Queue::new(2);
        let producer = q.clone();
        IOLoop::current().spawn(async move {
            for n in 1..=5 {
                producer.put(n).await;
            }
        });
        // Tornado's `async for item in q`, left with `break`.
        let mut got = Vec::new();
        let mut items = q.items();
        while let Some(n) = items.next().await {
            got.push(n);
            q.task_done().unwrap();
            if got.len() == 5 {
                break;
            }
        }
        assert_eq!(got, [1, 2, 3, 4, 5]);
        q.join().await;

        // A stream polled on an empty queue waits in line as a get does;
        // dropped after an item was handed to it, it gives the item back.
        let mut waiting = q.items();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(std::pin::Pin::new(&mut waiting)
            .poll_next(&mut cx)
            .is_pending());
        let behind = q.get();
        q.put_nowait(6).unwrap();
        assert_eq!(q.qsize(), 0, "handed to the waiting stream");
        drop(waiting);
        assert_eq!(behind.await, 6, "the get behind it takes the item");
        // Through `Stream` itself, as a StreamExt would poll it.
        q.put_nowait(7).unwrap();
        let mut items = q.items();
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut items).poll_next(cx));
        assert_eq!(next.await, Some(7));
    });
}

/// Tornado's `Semaphore.release()` without an `acquire` adds a place
/// (`Semaphore(0)` as a count of things ready: each `release` lets one
/// waiter in, first come first served); `add_permits(n)` is that.
/// Released through guards only, the semaphore never goes above its
/// value, as Tornado's `BoundedSemaphore`.
#[test]
fn add_permits_is_tornado_s_unpaired_release() {
    run(async {
        let sem = Semaphore::new(0);
        let log: Log = Rc::default();
        for i in 0..3 {
            let (sem, log) = (sem.clone(), log.clone());
            IOLoop::current().spawn(async move {
                let held = sem.acquire().await;
                note(&log, format!("in {i}"));
                std::mem::forget(held); // consumed, as a Tornado acquire never released
            });
        }
        sleep(ms(2)).await;
        assert!(log.borrow().is_empty());
        sem.add_permits(2);
        sleep(ms(2)).await;
        assert_eq!(*log.borrow(), ["in 0", "in 1"]);
        assert_eq!(sem.value(), 0);
        sem.add_permits(3);
        sleep(ms(2)).await;
        assert_eq!(*log.borrow(), ["in 0", "in 1", "in 2"]);
        assert_eq!(sem.value(), 2, "beyond the waiters, places are free");

        let bounded = Semaphore::new(1);
        drop(bounded.acquire().await);
        drop(bounded.try_acquire());
        assert_eq!(bounded.value(), 1, "guards give back only what they took");
    });
}

/// What Tornado 6.6 printed for the same calls: an unbounded queue
/// (`maxsize` 0) is never full; `join(timeout=)`, `Lock.acquire(timeout=)`
/// and `Event.wait(timeout=)` raise `TimeoutError` (here `with_timeout`'s
/// `Err`), and `Condition.wait(timeout=)` gives false, then true once
/// notified (here `Err`, then `Ok`).
#[test]
fn timeouts_and_an_unbounded_queue_as_tornado() {
    run(async {
        let q: Queue<u32> = Queue::new(0);
        assert!((q.qsize(), q.empty(), q.full()) == (0, true, false));
        for n in 0..10_000 {
            q.put_nowait(n).unwrap();
        }
        assert!(!q.full());
        assert_eq!(q.maxsize(), 0);
        assert_eq!(with_timeout(ms(10), q.join()).await, Err(TimeoutError));

        let lock = Lock::new();
        let _held = lock.acquire().await;
        assert!(with_timeout(ms(10), lock.acquire()).await.is_err());

        let cond = Condition::new();
        assert!(with_timeout(ms(10), cond.wait()).await.is_err());
        let w = cond.wait();
        cond.notify(1);
        assert!(with_timeout(ms(10), w).await.is_ok());
        assert_eq!(
            with_timeout(ms(10), Event::new().wait()).await,
            Err(TimeoutError)
        );
    });
}
