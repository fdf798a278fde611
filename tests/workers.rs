//! `run_workers`: n loops on n threads share one port through SO_REUSEPORT.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

#[test]
fn connections_spread_over_workers() {
    let workers = cyclone::run_workers(2, "127.0.0.1:0".parse().unwrap(), || {
        Application::builder().route("/", || WhoAmI).build()
    })
    .expect("workers");
    let addr = workers.local_addr();
    let mut seen = HashSet::new();
    for _ in 0..64 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        seen.insert(body.rsplit("\r\n\r\n").next().unwrap().to_string());
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
