//! A bounded soak (issue 8): an in-process echo server on 127.0.0.1 and
//! 2,000 connections for `CYCLONE_SOAK_SECS` seconds (default 60).
//!
//! - 90 % "stayers": cyclone's own client, several IOLoop threads, each
//!   connection pipelining numbered binary messages of random sizes
//!   (1 B – 64 KiB, log-uniform), one in ten negotiating permessage-deflate;
//!   every message must come back exactly once and in order.
//! - 10 % "churners": raw std sockets that exchange a message now and then
//!   and disconnect abruptly (SO_LINGER 0: a RST) and reconnect.
//!
//! Afterwards every server connection is gone and the process RSS is back
//! within 64 MiB of its baseline. The connection count scales down (and
//! says so) when the soft `ulimit -n` is below 5,000.

mod util;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use cyclone::ioloop::IOLoop;
use cyclone::protocol::CompressionOptions;
use cyclone::web::Application;
use cyclone::websocket::{
    websocket_connect_opts, ConnectOptions, Message, WebSocket, WebSocketHandler,
};
use util::{client_frame, nofile_limit, read_frame, read_response, rss_kib, upgrade_request, Rng};

struct Echo;

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.write_message(msg);
    }
}

fn soak_secs() -> u64 {
    std::env::var("CYCLONE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// Message `seq` of connection `conn`: recognisable and compressible.
fn payload(conn: u64, seq: u64, size: usize) -> Vec<u8> {
    let head = [conn.to_be_bytes(), seq.to_be_bytes()].concat();
    (0..size)
        .map(|j| {
            if j < 16 {
                head[j]
            } else {
                (seq as usize + j / 7) as u8
            }
        })
        .collect()
}

const WINDOW: u64 = 2;

/// One staying connection: pipelines messages until `deadline`, checks
/// each echo, then closes and checks that nothing more arrives.
async fn stayer(
    url: String,
    conn_no: u64,
    deflate: bool,
    deadline: Instant,
) -> Result<u64, String> {
    let mut opts = ConnectOptions::default();
    if deflate {
        opts.compression_options = Some(CompressionOptions::default());
    }
    let conn = websocket_connect_opts(&url, opts)
        .await
        .map_err(|e| format!("conn {conn_no}: connect: {e:?}"))?;
    let mut rng = Rng(conn_no.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut sizes = VecDeque::new();
    loop {
        while sent - got < WINDOW && Instant::now() < deadline {
            let size = rng.log_size(64 * 1024);
            sizes.push_back(size);
            conn.write_message(Message::Binary(payload(conn_no, sent, size).into()))
                .map_err(|_| format!("conn {conn_no}: closed while sending {sent}"))?;
            sent += 1;
        }
        if got == sent {
            break;
        }
        let msg = conn.read_message().await.ok_or_else(|| {
            format!(
                "conn {conn_no}: closed after {got} of {sent} echoes ({:?})",
                conn.close_code()
            )
        })?;
        let size = sizes.pop_front().unwrap_or_default();
        if msg.as_bytes() != payload(conn_no, got, size).as_slice() {
            let b = msg.as_bytes();
            return Err(format!(
                "conn {conn_no}: echo {got} wrong: len {} (want {size}), head {:?}",
                b.len(),
                &b[..b.len().min(16)]
            ));
        }
        got += 1;
    }
    conn.close(Some(1000), "done");
    if let Some(m) = conn.read_message().await {
        return Err(format!(
            "conn {conn_no}: an extra message after {got} echoes (len {})",
            m.len()
        ));
    }
    Ok(got)
}

/// A client thread: one IOLoop running `conns` stayers.
fn stayer_thread(
    url: String,
    conns: Vec<(u64, bool)>,
    deadline: Instant,
) -> Vec<Result<u64, String>> {
    let n = conns.len();
    let results: Rc<RefCell<Vec<Result<u64, String>>>> = Rc::default();
    let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    let lp = IOLoop::current();
    for (no, deflate) in conns {
        let (results, waker, url) = (results.clone(), waker.clone(), url.clone());
        lp.spawn(async move {
            let r = stayer(url, no, deflate, deadline).await;
            results.borrow_mut().push(r);
            if let Some(w) = waker.borrow_mut().take() {
                w.wake();
            }
        });
    }
    let (r2, w2) = (results.clone(), waker.clone());
    lp.run_sync(std::future::poll_fn(move |cx| {
        if r2.borrow().len() == n {
            Poll::Ready(())
        } else {
            *w2.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }));
    results.take()
}

fn raw_connect(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(upgrade_request("/ws", "").as_bytes()).unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    s
}

/// A churn thread: `k` raw connections; each turn one of them exchanges a
/// message (checked) or is reset and replaced. Returns the resets done.
fn churn_thread(addr: std::net::SocketAddr, k: usize, seed: u64, deadline: Instant) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut conns: Vec<TcpStream> = (0..k).map(|_| raw_connect(addr)).collect();
    let mut resets = 0;
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let i = rng.next() as usize % k;
        if rng.next() % 2 == 0 {
            let s = std::mem::replace(&mut conns[i], raw_connect(addr));
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s);
            resets += 1;
        } else {
            let size = rng.log_size(64 * 1024).min(4096);
            let p = payload(u64::MAX - seed, seq, size);
            conns[i].write_all(&client_frame(true, 0x2, &p)).unwrap();
            let (fin, op, got) = read_frame(&mut conns[i]).expect("churn echo");
            assert!(fin && op == 0x2 && got == p, "churn echo {seq} wrong");
            seq += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for s in conns {
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    resets
}

#[test]
fn soak_every_message_echoed_once_in_order_and_memory_returns() {
    let secs = soak_secs();
    let limit = nofile_limit();
    // Client and server ends both live in this process.
    let mut total = 2000usize;
    if limit < 5000 {
        total = (limit.saturating_sub(300) / 2).min(total);
        eprintln!("soak: ulimit -n is {limit}; scaling down to {total} connections");
    }
    let churners = total / 10;
    let stayers = total - churners;
    let server = util::Server::start(|| {
        Application::builder()
            .websocket("/ws", |_| Echo)
            .compression(CompressionOptions::default())
            .build()
    });
    std::thread::sleep(Duration::from_millis(100));
    let base = rss_kib();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    eprintln!(
        "soak: {stayers} stayers + {churners} churners for {secs} s, baseline RSS {} MiB",
        base / 1024
    );

    let threads = 4usize;
    let (tx, rx) = mpsc::channel();
    for t in 0..threads {
        let conns: Vec<(u64, bool)> = (0..stayers)
            .filter(|c| c % threads == t)
            .map(|c| (c as u64, c % 10 == 0))
            .collect();
        let (tx, url) = (tx.clone(), server.ws_url("/ws"));
        std::thread::spawn(move || {
            let _ = tx.send(stayer_thread(url, conns, deadline));
        });
    }
    let churn: Vec<_> = (0..2u64)
        .map(|t| {
            let addr = server.addr;
            let k = churners / 2 + (churners % 2) * t as usize;
            std::thread::spawn(move || churn_thread(addr, k.max(1), 7 + t, deadline))
        })
        .collect();

    let mut echoed = 0u64;
    let mut errors = Vec::new();
    let mut done = 0;
    for _ in 0..threads {
        let left = (deadline + Duration::from_secs(25)).saturating_duration_since(Instant::now());
        let results = rx
            .recv_timeout(left)
            .expect("a stayer thread did not finish 25 s after the soak deadline");
        for r in results {
            match r {
                Ok(n) => {
                    echoed += n;
                    done += 1;
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let resets: u64 = churn.into_iter().map(|h| h.join().unwrap()).sum();
    let peak_elapsed = start.elapsed();
    eprintln!(
        "soak: {done} stayers echoed {echoed} messages, {resets} abrupt resets, in {peak_elapsed:?}"
    );
    assert!(
        errors.is_empty(),
        "{} stayers failed, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(done, stayers);
    assert!(echoed >= stayers as u64, "every stayer echoed something");

    // Every server connection goes away.
    let t = Instant::now();
    let mut regs = usize::MAX;
    while t.elapsed() < Duration::from_secs(10) {
        regs = server.metrics().registrations;
        if regs <= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(regs <= 1, "{regs} registrations left after the soak");

    // And memory returns close to the baseline.
    let t = Instant::now();
    let mut rss = rss_kib();
    while rss > base + 64 * 1024 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
        rss = rss_kib();
    }
    eprintln!("soak: RSS {} MiB -> {} MiB", base / 1024, rss / 1024);
    assert!(
        rss <= base + 64 * 1024,
        "RSS {} MiB after the soak, baseline {} MiB",
        rss / 1024,
        base / 1024
    );
}
