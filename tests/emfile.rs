//! Running out of file descriptors while accepting: the listener pauses
//! and retries, one retry at a time however many connections arrive
//! meanwhile, and accepts again once descriptors are free.
//!
//! The limit is per process, so the server runs in a child (this test
//! binary again, under `ulimit -n`) and the connections come from here.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cyclone::http::{HttpLimits, Reply, Request, Response, Service};
use cyclone::ioloop::{Counter, IOLoop};

const NAME: &str = "running_out_of_fds_arms_one_retry_at_a_time";
const CHILD: &str = "CYCLONE_EMFILE_CHILD";

struct Ok200;
impl Service for Ok200 {
    fn dispatch(&self, _req: Request) -> Reply {
        Reply::Response(Response::text(200, "ok"))
    }
}

/// The server's side: listens, says where, and runs the loop for 3 s,
/// noting the most timers pending at once and whether accept ran out.
fn child() {
    let lp = IOLoop::current();
    // Accepted at once, without waiting for a request (the connections
    // here send none).
    let limits = HttpLimits {
        defer_accept: None,
        ..HttpLimits::default()
    };
    let addr = cyclone::http::listen("127.0.0.1:0".parse().unwrap(), Rc::new(Ok200), limits)
        .expect("listen");
    println!("port={}", addr.port());
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(3) {
        lp.run_once(Some(Duration::from_millis(10))).unwrap();
        most = most.max(lp.pending_timeouts());
    }
    let emfile = lp.metrics().get(Counter::AcceptEmfile);
    println!("most={most} emfile={emfile}");
}

#[test]
fn running_out_of_fds_arms_one_retry_at_a_time() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 24 && exec "$0" "$@""#)
        .arg(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the server");
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    let port: u16 = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the server said no port"
        );
        // (The harness's "test ... " may share the line.)
        if let Some((_, p)) = line.trim().split_once("port=") {
            break p.parse().unwrap();
        }
    };
    // 100 connections a few ms apart, each raising an edge, most of them
    // while the server has no descriptor left.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conns = Vec::new();
    for _ in 0..100 {
        conns.push(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"));
        std::thread::sleep(Duration::from_millis(3));
    }
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = server.wait().unwrap();
    drop(conns);
    assert!(status.success(), "the server failed: {rest}");
    let report = rest
        .lines()
        .find(|l| l.starts_with("most="))
        .unwrap_or_else(|| panic!("no report in {rest}"));
    let field = |name: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert!(field("emfile") >= 1, "accept never ran out: {report}");
    // Connections' own deadlines are not timers; one retry at most.
    assert!(field("most") <= 1, "retries piled up: {report}");
}
