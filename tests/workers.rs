//! `run_workers`: n loops on n threads share one port through SO_REUSEPORT.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cyclone::testing::ExpectLog;
use cyclone::web::{Application, RequestContext, RequestHandler};

mod util;

struct WhoAmI;
impl RequestHandler for WhoAmI {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write(std::thread::current().name().unwrap_or("?"));
    }
}

/// The name of the worker thread that answers a GET on `addr`.
fn who_answers(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body.rsplit("\r\n\r\n").next().unwrap().to_string()
}

#[test]
fn connections_spread_over_workers() {
    let workers = cyclone::run_workers(2, "127.0.0.1:0".parse().unwrap(), || {
        Application::builder().route("/", || WhoAmI).build()
    })
    .expect("workers");
    let addr = workers.local_addr();
    let mut seen = HashSet::new();
    for _ in 0..64 {
        seen.insert(who_answers(addr));
    }
    workers.stop();
    workers.join().expect("a worker panicked");
    assert_eq!(
        seen.len(),
        2,
        "all 64 connections went to one worker: {seen:?}"
    );
}

/// A worker whose loop is kept alive by a callback that captured it (here
/// a timer that would stop it) still closes its listener once its thread
/// ends: a listener left open in the `SO_REUSEPORT` group would go on
/// taking its share of new connections, which nobody accepts.
#[test]
fn a_joined_worker_closes_its_listener_even_when_its_loop_is_in_a_cycle() {
    let workers = cyclone::run_workers(2, "127.0.0.1:0".parse().unwrap(), || {
        let lp = cyclone::ioloop::IOLoop::current();
        let lp2 = lp.clone();
        lp.call_later(Duration::from_secs(3600), move || lp2.stop());
        Application::builder().route("/", || WhoAmI).build()
    })
    .expect("workers");
    let addr = workers.local_addr();
    workers.stop();
    workers.join().expect("a worker panicked");
    let r = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(
        r.is_err(),
        "a connection to stopped workers was taken by a listener still open: {r:?}"
    );
}

/// A factory that panics while a worker starts makes `run_workers` fail
/// with the panic's message, not with a bare "died": the caller logs the
/// error it gets, and that is the one place it can learn why.
#[test]
fn a_factory_panic_reaches_run_workers_error_with_its_message() {
    let err = match cyclone::run_workers(2, "127.0.0.1:0".parse().unwrap(), || {
        panic!("no database URL in the environment")
    }) {
        Ok(w) => {
            w.stop();
            w.join().expect("a worker panicked");
            panic!("run_workers succeeded with a panicking factory");
        }
        Err(e) => e,
    };
    assert!(
        err.to_string()
            .contains("no database URL in the environment"),
        "{err}"
    );
}

/// Two workers whose threads count themselves in `ended` when they end.
fn counted_workers(ended: &Arc<AtomicUsize>) -> cyclone::Workers {
    let ended = ended.clone();
    cyclone::run_workers(2, "127.0.0.1:0".parse().unwrap(), move || {
        util::mark_thread(&ended);
        Application::builder().route("/", || WhoAmI).build()
    })
    .expect("workers")
}

/// A `Workers` dropped without `join` stops its workers and joins their
/// threads: by the time the drop returns they have ended, and their
/// listeners are closed (the port takes no more connections).
#[test]
fn dropping_workers_stops_and_joins_their_threads() {
    util::within(Duration::from_secs(20), || {
        let ended = Arc::new(AtomicUsize::new(0));
        let workers = counted_workers(&ended);
        let addr = workers.local_addr();
        drop(workers);
        assert_eq!(
            ended.load(Ordering::SeqCst),
            2,
            "the drop returned before the worker threads ended"
        );
        let r = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
        assert!(
            r.is_err(),
            "a dropped worker's listener is still open: {r:?}"
        );
    });
}

/// Dropped on one of its own worker threads, a `Workers` stops every
/// worker and joins the others, never the current thread (which cannot
/// join itself): that one ends once the callback returns.
#[test]
fn workers_dropped_on_a_worker_thread_end_without_joining_it() {
    let unjoinable = ExpectLog::new("cyclone", ".*(join|deadlock)")
        .level(log::Level::Error)
        .not_required();
    util::within(Duration::from_secs(20), move || {
        let ended = Arc::new(AtomicUsize::new(0));
        let workers = counted_workers(&ended);
        let addr = workers.local_addr();
        let first = workers.handles()[0].clone();
        assert!(first.add_callback(move || drop(workers)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while ended.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(ended.load(Ordering::SeqCst), 2, "the workers did not end");
        let r = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
        assert!(
            r.is_err(),
            "a dropped worker's listener is still open: {r:?}"
        );
        assert_eq!(unjoinable.logged(), vec![], "a worker tried to join itself");
    });
}

/// A `Workers` dropped from a thread-local's destructor that runs after
/// the thread's IOLoop was dropped (the thread-local first used before
/// the loop): on a thread of its own, and on one of its workers, moved
/// there by a callback into a thread-local the factory first used. The
/// drop stops the workers and joins the others as anywhere else, and
/// workers started from such a destructor serve.
#[test]
fn workers_dropped_by_a_thread_local_after_the_loop() {
    const NAME: &str = "workers_dropped_by_a_thread_local_after_the_loop";
    struct DropsWorkers(
        Option<cyclone::Workers>,
        Arc<AtomicUsize>,
        mpsc::Sender<usize>,
    );
    impl Drop for DropsWorkers {
        fn drop(&mut self) {
            drop(self.0.take());
            let _ = self.2.send(self.1.load(Ordering::SeqCst));
        }
    }
    thread_local! {
        static KEEPS: RefCell<Option<DropsWorkers>> = const { RefCell::new(None) };
    }
    if util::isolated(NAME) {
        return;
    }
    let ended = Arc::new(AtomicUsize::new(0));
    let e = ended.clone();
    let (joined, answered) = util::after_the_loop(move || {
        let workers = counted_workers(&e);
        Box::new(move || {
            drop(workers);
            let joined = e.load(Ordering::SeqCst);
            let again = cyclone::run_workers(1, "127.0.0.1:0".parse().unwrap(), || {
                Application::builder().route("/", || WhoAmI).build()
            })
            .expect("workers started from the destructor");
            let answered = who_answers(again.local_addr());
            again.stop();
            again.join().expect("a worker panicked");
            (joined, answered)
        })
    });
    assert_eq!(
        joined, 2,
        "the drop returned before the worker threads ended"
    );
    assert_eq!(answered, "cyclone-worker-0");

    // On a worker's thread: worker 0 keeps the `Workers`, then stops.
    let ended = Arc::new(AtomicUsize::new(0));
    let e = ended.clone();
    let workers = cyclone::run_workers(2, "127.0.0.1:0".parse().unwrap(), move || {
        // Counted after the drop below, which is first used before the
        // worker's loop: dropped after it.
        util::mark_thread(&e);
        KEEPS.with(|k| assert!(k.borrow().is_none()));
        Application::builder().route("/", || WhoAmI).build()
    })
    .expect("workers");
    let addr = workers.local_addr();
    let first = workers.handles()[0].clone();
    let (tx, rx) = mpsc::channel();
    let e = ended.clone();
    assert!(first.add_callback(move || {
        KEEPS.with(|k| *k.borrow_mut() = Some(DropsWorkers(Some(workers), e, tx)));
        cyclone::ioloop::IOLoop::current().stop();
    }));
    let seen = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the worker's thread-local was not dropped to its end");
    assert_eq!(seen, 1, "the drop returned before the other worker ended");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ended.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ended.load(Ordering::SeqCst), 2, "worker 0 did not end");
    let r = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(
        r.is_err(),
        "a dropped worker's listener is still open: {r:?}"
    );
}
