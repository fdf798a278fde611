//! `run_workers`: n loops on n threads share one port through SO_REUSEPORT.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cyclone::web::{Application, RequestContext, RequestHandler};

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
