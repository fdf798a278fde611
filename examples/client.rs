//! Coroutine-style WebSocket client: sends each stdin line as a text
//! message and prints every message that arrives on its own line (binary
//! messages as `<binary N bytes: hex>`). When stdin closes it sends a close
//! frame and exits once the server answers; it also exits when the server
//! closes. permessage-deflate is offered.
//!
//! stdin is read on a helper thread; lines reach the loop through
//! `IOLoopHandle::add_callback`, so the loop never blocks.
//!
//! ```text
//! cargo run --example echo_server &
//! cargo run --example client ws://127.0.0.1:9001/
//! cargo run --example client -- --ca-certs cert.pem wss://localhost:8443/echo
//! ```

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::BufRead;
use std::rc::Rc;
use std::task::{Poll, Waker};

use cyclone::ioloop::IOLoop;
use cyclone::protocol::CompressionOptions;
use cyclone::websocket::{websocket_connect_opts, ConnectOptions, Message};

const USAGE: &str = "client: send stdin lines to a WebSocket server, print what arrives

Usage: client [--ca-certs PATH] URL

  URL               ws://host[:port]/path, or wss://host[:port]/path (TLS; the
                    server's certificate is checked against Mozilla's roots)
  --ca-certs PATH   wss://: also trust the certificates in this PEM file, e.g.
                    a self-signed server certificate or a private CA (Tornado's
                    ssl_options={\"ca_certs\": PATH}; ConnectOptions::ca_certs)

Exits when stdin closes (after a close handshake) or when the server closes.
RUST_LOG=info for logs.";

/// Lines from stdin (`None` = end of input), filled by loop callbacks.
#[derive(Default)]
struct Inbox {
    lines: VecDeque<Option<String>>,
    waker: Option<Waker>,
}

thread_local! {
    static INBOX: RefCell<Inbox> = RefCell::new(Inbox::default());
}

fn deliver(line: Option<String>) {
    INBOX.with(|i| {
        let mut i = i.borrow_mut();
        i.lines.push_back(line);
        if let Some(w) = i.waker.take() {
            w.wake();
        }
    });
}

async fn next_line() -> Option<String> {
    poll_fn(|cx| {
        INBOX.with(|i| {
            let mut i = i.borrow_mut();
            match i.lines.pop_front() {
                Some(l) => Poll::Ready(l),
                None => {
                    i.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    })
    .await
}

fn print_message(m: &Message<'_>) {
    match m {
        Message::Text(t) => println!("{t}"),
        Message::Binary(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            println!("<binary {} bytes: {hex}>", b.len());
        }
    }
}

fn main() {
    let args = common::Args::parse(USAGE, &[("ca-certs", true)]);
    common::init_logging();
    let Some(url) = args.positional.first().cloned() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let ca_certs: String = args.get("ca-certs", String::new());
    #[cfg(not(feature = "tls"))]
    if !ca_certs.is_empty() {
        eprintln!("client: --ca-certs needs cyclone's `tls` feature (built without it)");
        std::process::exit(2);
    }
    let lp = IOLoop::current();
    let handle = lp.handle();
    common::close_on_ctrl_c(std::time::Duration::from_secs(2));
    let result = lp.run_sync(async move {
        // Offer permessage-deflate; servers that do not support it ignore the offer.
        #[allow(unused_mut)]
        let mut opts = ConnectOptions {
            compression_options: Some(CompressionOptions::default()),
            ..ConnectOptions::default()
        };
        #[cfg(feature = "tls")]
        if !ca_certs.is_empty() {
            opts.ca_certs = Some(ca_certs.into());
        }
        let conn = Rc::new(websocket_connect_opts(&url, opts).await?);
        log::info!("connected to {url}");
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(l) => {
                        // False once the loop has ended: stop reading.
                        if !handle.add_callback(move || deliver(Some(l))) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            handle.add_callback(|| deliver(None));
        });
        let writer = conn.clone();
        IOLoop::current().spawn(async move {
            while let Some(line) = next_line().await {
                match writer.write_message(line) {
                    Ok(flow) => flow.await,
                    Err(_) => return,
                }
            }
            writer.close(Some(1000), "");
        });
        while let Some(m) = conn.read_message().await {
            print_message(&m);
        }
        log::info!(
            "closed (code {:?}, reason {:?})",
            conn.close_code(),
            conn.close_reason()
        );
        Ok::<(), cyclone::websocket::ConnectError>(())
    });
    if let Err(e) = result {
        eprintln!("client: {e}");
        std::process::exit(1);
    }
}
