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

/// `GET /`: the hello page's buttons and log (tests/peers/PAGE-CONTRACT.md,
/// "tls_echo"), on the echo at `/echo`; `%PROTO%` becomes the request's
/// protocol. The socket URL follows the page's scheme, so over https it is
/// `wss://` (a browser refuses `ws://` from an https page).
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>cyclone: tls_echo</title>
<style>
  body { font-family: sans-serif; margin: 2em; }
  #log { background: #f4f4f4; border: 1px solid #ccc; padding: 0.5em; min-height: 8em; }
  button { margin-right: 0.3em; }
</style>
</head>
<body>
<h1>cyclone: tls_echo</h1>
<p id="proto">cyclone over %PROTO%; WebSocket echo on /echo</p>
<p>
  <button id="connect" type="button">Connect</button>
  <input id="message" type="text" value="Hello, world" size="40">
  <button id="send" type="button">Send</button>
  <button id="close" type="button">Close</button>
</p>
<pre id="log"></pre>
<script>
(function () {
  "use strict";
  var ws = null;
  var logEl = document.getElementById("log");
  function log(line) {
    logEl.appendChild(document.createTextNode(line + "\n"));
  }
  function url() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/echo";
  }
  document.getElementById("connect").onclick = function () {
    if (ws && ws.readyState <= WebSocket.OPEN) {
      return;
    }
    ws = new WebSocket(url());
    ws.onopen = function () { log("open " + ws.url); };
    ws.onmessage = function (evt) { log("message: " + evt.data); };
    ws.onclose = function (evt) { log("close: " + evt.code); };
    ws.onerror = function () { log("error"); };
  };
  document.getElementById("send").onclick = function () {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(document.getElementById("message").value);
    } else {
      log("not connected");
    }
  };
  document.getElementById("close").onclick = function () {
    if (ws) {
      ws.close(1000);
    }
  };
})();
</script>
</body>
</html>
"#;

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
        cx.write(PAGE.replace("%PROTO%", proto));
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
