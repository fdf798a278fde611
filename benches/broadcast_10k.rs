//! Broadcast of one 1 KiB message to 10,000 connections (issue 7): how long
//! until the server has written the last byte, and until the last client
//! has received it.
//!
//! ```sh
//! cargo bench --bench broadcast_10k            # 10,000 subscribers, 5 rounds
//! cargo bench --bench broadcast_10k -- 2000 3  # subscribers, rounds
//! cargo bench --bench broadcast_10k -- --topics # through a topic
//! ```
//!
//! With `--topics`, the subscribers `subscribe("all")` and the publisher
//! calls `ws.publish("all", msg)` instead of `broadcast` over its own list
//! of ids: what the topic registry costs on top of `broadcast`.
//!
//! The server (an in-process cyclone loop) runs in this process; the
//! clients run in a child process (this binary again), so each side needs
//! about 10,000 descriptors: the soft `ulimit -n` is raised through `sh`
//! when it is lower. Server side: from the start of `on_message` on
//! `/publish` (which calls `broadcast`) to the first loop callback that
//! sees every frame's bytes counted as written (`WsBytesOut`); callbacks
//! run after the end-of-iteration flush, so this is when the last `send`
//! returned. Client side: from the publisher's `write` to the moment the
//! last of the N subscribers has read the whole frame.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cyclone::ioloop::{ConnId, Counter, IOLoop};
use cyclone::web::Application;
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};

const PAYLOAD: usize = 1024;
/// Server frame: 2-byte header + 2-byte extended length + payload.
const FRAME: usize = PAYLOAD + 4;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let subs: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    if let Ok(addr) = std::env::var("CYCLONE_BCAST_SERVER") {
        clients(addr.parse().expect("server address"), subs, rounds);
        return;
    }
    if nofile_soft() < subs + 1000 && std::env::var_os("CYCLONE_BCAST_RAISED").is_none() {
        // Re-run with a raised soft limit (the hard limit allows it here).
        let exe = std::env::current_exe().expect("current exe");
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {} && exec \"$0\" \"$@\"",
                subs * 2 + 1000
            ))
            .arg(exe)
            .args(std::env::args().skip(1))
            .env("CYCLONE_BCAST_RAISED", "1")
            .status()
            .expect("sh");
        std::process::exit(status.code().unwrap_or(1));
    }
    server(subs, rounds);
}

fn nofile_soft() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

type Subscribers = Rc<RefCell<Vec<ConnId>>>;

/// The topic the subscribers join with `--topics`.
const TOPIC: &str = "all";

/// A subscriber: in the shared list, or (`--topics`) in [`TOPIC`].
struct Sub(Subscribers, bool);

impl WebSocketHandler for Sub {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        if self.1 {
            ws.subscribe(TOPIC);
        } else {
            self.0.borrow_mut().push(ws.id());
        }
    }
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

struct Pub(Subscribers, bool);

impl WebSocketHandler for Pub {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let t0 = Instant::now();
        let lp = ws.io_loop().clone();
        let base = lp.metrics().get(Counter::WsBytesOut);
        let n = if self.1 {
            ws.publish(TOPIC, msg)
        } else {
            let ids = self.0.borrow().clone();
            ws.broadcast(ids, msg)
        };
        let queued = t0.elapsed();
        let want = base + (n * FRAME) as u64;
        fn check(lp: IOLoop, t0: Instant, queued: Duration, want: u64, n: usize) {
            if lp.metrics().get(Counter::WsBytesOut) >= want {
                println!(
                    "server: {n} receivers, broadcast() returned after {:.2} ms, last byte written after {:.2} ms",
                    queued.as_secs_f64() * 1e3,
                    t0.elapsed().as_secs_f64() * 1e3
                );
            } else if t0.elapsed() < Duration::from_secs(10) {
                let l2 = lp.clone();
                lp.add_callback(move || check(l2, t0, queued, want, n));
            } else {
                println!("server: bytes not all written after 10 s");
            }
        }
        let l2 = lp.clone();
        lp.add_callback(move || check(l2, t0, queued, want, n));
    }
}

fn server(subs: usize, rounds: usize) {
    let topics = std::env::args().any(|a| a == "--topics");
    println!(
        "server: {}",
        if topics {
            "ws.publish(topic)"
        } else {
            "ws.broadcast(ids)"
        }
    );
    let list: Subscribers = Rc::default();
    let (l1, l2) = (list.clone(), list.clone());
    let app = Application::builder()
        .websocket("/broadcast", move |_| Sub(l1.clone(), topics))
        .websocket("/publish", move |_| Pub(l2.clone(), topics))
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([subs.to_string(), rounds.to_string()])
        .env("CYCLONE_BCAST_SERVER", addr.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn clients");
    let out = child.stdout.take().expect("stdout");
    let handle = IOLoop::current().handle();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
        }
        handle.add_callback(|| IOLoop::current().stop());
    });
    IOLoop::current().start();
    let status = child.wait().expect("wait");
    assert!(status.success(), "client process failed: {status}");
}

fn handshake(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("101");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "no 101 for {path}");
    s
}

fn clients(addr: SocketAddr, n: usize, rounds: usize) {
    let t = Instant::now();
    let subs: Vec<mio::net::TcpStream> = (0..n)
        .map(|_| {
            let s = handshake(addr, "/broadcast");
            s.set_nonblocking(true).unwrap();
            mio::net::TcpStream::from_std(s)
        })
        .collect();
    let mut publisher = handshake(addr, "/publish");
    println!(
        "clients: {n} subscribers connected in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut poll = mio::Poll::new().unwrap();
    let mut subs = subs;
    for (i, s) in subs.iter_mut().enumerate() {
        poll.registry()
            .register(s, mio::Token(i), mio::Interest::READABLE)
            .unwrap();
    }
    let mut events = mio::Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut times = Vec::new();
    for round in 0..rounds {
        let mut got = vec![0usize; n];
        let mut done = 0;
        // A masked 1 KiB binary frame (mask key 0: payload unchanged).
        let mut frame = vec![
            0x82,
            0x80 | 126,
            (PAYLOAD >> 8) as u8,
            PAYLOAD as u8,
            0,
            0,
            0,
            0,
        ];
        frame.extend(std::iter::repeat_n(round as u8, PAYLOAD));
        let t0 = Instant::now();
        publisher.write_all(&frame).unwrap();
        while done < n {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "round {round}: only {done} of {n} received"
            );
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            for ev in events.iter() {
                let i = ev.token().0;
                loop {
                    match subs[i].read(&mut buf) {
                        Ok(0) => panic!("subscriber {i} closed"),
                        Ok(k) => {
                            let before = got[i];
                            got[i] += k;
                            if before < FRAME && got[i] >= FRAME {
                                done += 1;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("subscriber {i}: {e}"),
                    }
                }
            }
        }
        let took = t0.elapsed();
        assert!(
            got.iter().all(|g| *g == FRAME),
            "a subscriber got extra bytes"
        );
        println!(
            "clients: round {round}: last of {n} subscribers had the 1 KiB message after {:.2} ms",
            took.as_secs_f64() * 1e3
        );
        times.push(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    times.sort();
    println!(
        "clients: median {:.2} ms over {rounds} rounds",
        times[times.len() / 2].as_secs_f64() * 1e3
    );
}
