//! WebSocket echo over TLS (`wss://`) and a page over HTTPS: Tornado's
//! `app.listen(8443, ssl_options={"certfile": ..., "keyfile": ...})`.
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//!     -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
//!     -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!     -addext basicConstraints=critical,CA:FALSE
//! cargo run --example tls_echo -- --cert cert.pem --key key.pem
//! ```

mod common;

use std::time::Duration;

use cyclone::http::Request;
use cyclone::ioloop::IOLoop;
use cyclone::tls::ServerTls;
use cyclone::web::{Application, RequestContext, RequestHandler};
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};

const USAGE: &str = "tls_echo: WebSocket echo on wss://HOST:PORT/echo, a page on https://HOST:PORT/

Usage: tls_echo --cert CERT.pem --key KEY.pem [--port PORT] [--address ADDR]

  --cert FILE     PEM certificate chain, leaf first (Tornado's ssl_options certfile)
  --key FILE      PEM private key: PKCS#8, RSA or EC (keyfile); may be the cert file
  --port PORT     port to listen on (default 8443)
  --address ADDR  address to bind (default 127.0.0.1)

A self-signed pair for localhost (browsers warn about it; cyclone's client
trusts it with ConnectOptions::ca_certs = cert.pem, Python's websockets with
ssl.create_default_context(cafile=\"cert.pem\")):

  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \\
      -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \\
      -addext basicConstraints=critical,CA:FALSE

(CA:FALSE matters: without it openssl marks the certificate a CA, and
rustls, so cyclone's client, refuses it as a server's own: CaUsedAsEndEntity.)

The page at / (open https://127.0.0.1:8443/ and accept the warning) has
Connect / Send / Close buttons driving the wss:// echo, with a log of the
socket's events (the ids of the hello page in tests/peers/PAGE-CONTRACT.md).
GET /metrics answers the loop's counters (cyclone_tls_errors_total among them).";

/// The hello page (examples/pages/hello.html, the same buttons and log:
/// tests/peers/PAGE-CONTRACT.md, "tls_echo") pointed at the echo on
/// `/echo`, with a line naming the request's protocol. The socket URL
/// follows the page's scheme, so over https it is `wss://` (a browser
/// refuses `ws://` from an https page).
fn page(proto: &str) -> String {
    const HELLO: &str = include_str!("pages/hello.html");
    const INTRO: &str =
        "<p>Tornado's <code>EchoWebSocket</code> on <code>/websocket</code>: it answers
<code>You said: &lt;message&gt;</code>.</p>";
    let mut page = HELLO.to_owned();
    for (from, to) in [
        ("cyclone: hello", "cyclone: tls_echo".to_owned()),
        (
            INTRO,
            format!("<p id=\"proto\">cyclone over {proto}; WebSocket echo on /echo</p>"),
        ),
        ("+ \"/websocket\"", "+ \"/echo\"".to_owned()),
    ] {
        // hello.html changed under us: fail loudly rather than serve a page
        // whose socket points at the wrong path.
        assert!(
            page.contains(from),
            "examples/pages/hello.html lost {from:?}"
        );
        page = page.replace(from, &to);
    }
    page
}

struct Echo;

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.write_message(msg);
    }
}

struct Page;

impl RequestHandler for Page {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        // "https": the request came over TLS (Tornado's request.protocol).
        let proto = cx.request().protocol();
        cx.set_header("Content-Type", "text/html; charset=UTF-8");
        cx.write(page(proto));
    }
}

fn main() {
    let args = common::Args::parse(
        USAGE,
        &[
            ("cert", true),
            ("key", true),
            ("port", true),
            ("address", true),
        ],
    );
    common::init_logging();
    let (cert, key): (String, String) = (
        args.get("cert", String::new()),
        args.get("key", String::new()),
    );
    if cert.is_empty() || key.is_empty() {
        eprintln!("tls_echo: --cert and --key are required\n\n{USAGE}");
        std::process::exit(2);
    }
    let tls = match ServerTls::from_pem_files(&cert, &key) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tls_echo: {e}");
            std::process::exit(1);
        }
    };
    let port: u16 = args.get("port", 8443);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let app = Application::builder()
        .route("/metrics", || cyclone::web::MetricsHandler)
        .route("/", || Page)
        .websocket("/echo", |_req: &Request| Echo)
        .build();
    match app.listen_on_tls((address.as_str(), port), tls) {
        Ok(addr) => log::info!("tls_echo listening on wss://{addr}/echo and https://{addr}/"),
        Err(e) => {
            eprintln!("tls_echo: cannot listen on {address}:{port}: {e}");
            std::process::exit(1);
        }
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(2));
    IOLoop::current().start();
}
