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
    workers.join();
    assert_eq!(
        seen.len(),
        2,
        "all 64 connections went to one worker: {seen:?}"
    );
}
