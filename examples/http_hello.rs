//! Tornado's "Hello, world" web application in cyclone: `GET /` answers
//! `Hello, world`. Used to compare plain HTTP throughput with Tornado
//! (`wrk -t1 -c50 http://127.0.0.1:8888/`).

mod common;

use std::time::Duration;

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, RequestContext, RequestHandler};

const USAGE: &str = "http_hello: GET / answers \"Hello, world\" (Tornado's hello world);
GET /metrics answers the loop's counters (Prometheus text format)

Usage: http_hello [--port PORT] [--address ADDR]

  --port PORT     port to listen on (default 8888)
  --address ADDR  address to bind (default 127.0.0.1)";

struct MainHandler;

impl RequestHandler for MainHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write("Hello, world");
    }
}

fn main() {
    let args = common::Args::parse(USAGE, &[("port", true), ("address", true)]);
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let app = Application::builder()
        .route("/", || MainHandler)
        .route("/metrics", || cyclone::web::MetricsHandler)
        .build();
    if let Err(e) = app.listen_on((address.as_str(), port)) {
        eprintln!("http_hello: cannot listen on {address}:{port}: {e}");
        std::process::exit(1);
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(1));
    IOLoop::current().start();
}
