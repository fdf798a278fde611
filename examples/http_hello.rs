//! Tornado's "Hello, world" web application in cyclone: `GET /` answers
//! `Hello, world`. Used to compare plain HTTP throughput with Tornado
//! (`wrk -t1 -c50 http://127.0.0.1:8888/`). `GET /cookie` is the signed
//! cookie example of Tornado's user guide ("Cookies and signed cookies").

mod common;

use std::time::Duration;

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, RequestContext, RequestHandler};

const USAGE: &str = "http_hello: GET / answers \"Hello, world\" (Tornado's hello world);
GET /metrics answers the loop's counters (Prometheus text format);
GET /cookie is Tornado's signed-cookie example: the first visit sets the
signed cookie `mycookie` (set_secure_cookie), later visits show its value
(get_secure_cookie). A cookie signed by a Tornado application with the same
secret is read too.

Usage: http_hello [--port PORT] [--address ADDR] [--cookie-secret SECRET]

  --port PORT             port to listen on (default 8888)
  --address ADDR          address to bind (default 127.0.0.1)
  --cookie-secret SECRET  cookie_secret (default: random at each start, so
                          cookies do not outlive the process)";

struct MainHandler;

impl RequestHandler for MainHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write("Hello, world");
    }
}

/// Tornado's user-guide example, with the value shown.
struct CookieHandler;

impl RequestHandler for CookieHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        match cx.get_secure_cookie("mycookie") {
            Some(v) => {
                let v = String::from_utf8_lossy(&v).into_owned();
                cx.write(format!("Your cookie was set: {v}"));
            }
            None => {
                cx.set_secure_cookie("mycookie", "myvalue");
                cx.write("Your cookie was not set yet!");
            }
        }
    }
}

/// 32 random bytes as hex.
fn random_secret() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let args = common::Args::parse(
        USAGE,
        &[("port", true), ("address", true), ("cookie-secret", true)],
    );
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let secret: String = args.get("cookie-secret", String::new());
    let secret = if secret.is_empty() {
        random_secret()
    } else {
        secret
    };
    let app = Application::builder()
        .route("/", || MainHandler)
        .route("/metrics", || cyclone::web::MetricsHandler)
        .route("/cookie", || CookieHandler)
        .cookie_secret(secret)
        .build();
    if let Err(e) = app.listen_on((address.as_str(), port)) {
        eprintln!("http_hello: cannot listen on {address}:{port}: {e}");
        std::process::exit(1);
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(1));
    IOLoop::current().start();
}
