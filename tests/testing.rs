//! `cyclone::testing`, Tornado's `tornado.testing`: a `TestServer` on a
//! free port answering `fetch` (statuses, headers, chunked and
//! `Content-Length` bodies, `HEAD`, a `POST` body, a redirect not
//! followed), `on_loop` on its loop, `gen_test` with cyclone's client and
//! its time limit, and the server gone once dropped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use cyclone::ioloop::{sleep, Counter, IOLoop};
use cyclone::testing::{async_test_timeout, gen_test, TestServer};
use cyclone::web::{Application, RequestContext, RequestHandler};
use cyclone::websocket::{websocket_connect, Message, WebSocket, WebSocketHandler};

struct Page;
impl RequestHandler for Page {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.set_header("X-Test", "yes");
        cx.write("a page");
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let body = cx.request().body().to_vec();
        cx.set_status(201);
        cx.write(b"got ");
        cx.write(body);
    }
}

/// Three pieces, flushed 10 ms apart: a chunked body.
struct Stream;
impl RequestHandler for Stream {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let answer = cx.asynchronous();
        IOLoop::current().spawn(async move {
            for piece in ["one ", "two ", "three"] {
                answer.write(piece);
                answer.flush();
                sleep(Duration::from_millis(10)).await;
            }
            answer.finish();
        });
    }
}

struct Away;
impl RequestHandler for Away {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.redirect("/page", false);
    }
}

struct Echo;
impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        ws.write_message(msg).unwrap();
    }
}

fn server() -> TestServer {
    TestServer::start(|| {
        Application::builder()
            .route("/page", || Page)
            .route("/stream", || Stream)
            .route("/away", || Away)
            .websocket("/echo", |_req| Echo)
            .build()
    })
}

#[test]
fn fetch_returns_every_response_as_sent() {
    let srv = server();
    assert_eq!(srv.url("/x"), format!("http://127.0.0.1:{}/x", srv.port()));
    let r = srv.fetch("/page").unwrap();
    assert_eq!(
        (r.code, r.reason.as_str(), r.text()),
        (200, "OK", "a page".into())
    );
    assert_eq!(r.header("x-test"), Some("yes"));
    assert_eq!(r.header("Content-Length"), Some("6"));

    let r = srv.fetch("/stream").unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "one two three");

    let r = srv
        .fetch_with("POST", "/page", &[("X-Any", "1")], b"a body")
        .unwrap();
    assert_eq!((r.code, r.text()), (201, "got a body".into()));
    // A POST without a body says `Content-Length: 0`.
    let r = srv.fetch_with("POST", "/page", &[], b"").unwrap();
    assert_eq!((r.code, r.text()), (201, "got ".into()));

    let r = srv.fetch_with("HEAD", "/page", &[], b"").unwrap();
    assert_eq!((r.code, r.header("content-length")), (200, Some("6")));
    assert!(r.body.is_empty());

    let r = srv.fetch("/away").unwrap();
    assert_eq!((r.code, r.header("location")), (302, Some("/page")));
    assert_eq!(srv.fetch("/nowhere").unwrap().code, 404);
    let r = srv.fetch_with("DELETE", "/page", &[], b"").unwrap();
    assert_eq!(r.code, 405);

    // The eight connections were accepted by this server's loop.
    let accepted = srv.on_loop(|| {
        IOLoop::current()
            .metrics()
            .get(Counter::ConnectionsAccepted)
    });
    assert_eq!(accepted, 8);
}

#[test]
fn gen_test_drives_the_client_and_bounds_the_test() {
    let srv = server();
    let url = srv.ws_url("/echo");
    let echoed = gen_test(async_test_timeout(), async move {
        let conn = websocket_connect(&url).await.unwrap();
        let mut got = Vec::new();
        for text in ["one", "two"] {
            conn.write_message(text).unwrap();
            got.push(
                conn.read_message()
                    .await
                    .unwrap()
                    .as_text()
                    .unwrap()
                    .to_owned(),
            );
        }
        conn.close(Some(1000), "done");
        assert!(conn.read_message().await.is_none());
        (got, conn.close_code())
    });
    assert_eq!(
        echoed,
        (vec!["one".to_owned(), "two".to_owned()], Some(1000))
    );

    // A test that does not end in time fails with a message saying so,
    // and the thread's loop can run the next one.
    let t = Instant::now();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        gen_test(Duration::from_millis(100), sleep(Duration::from_secs(30)))
    }))
    .unwrap_err();
    let says = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(says.contains("did not complete within 100ms"), "{says}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(gen_test(Duration::from_secs(1), async { 7 }), 7);
}

#[test]
fn a_dropped_server_is_gone() {
    let srv = server();
    let addr = srv.addr();
    assert_eq!(srv.fetch("/page").unwrap().code, 200);
    drop(srv);
    assert!(std::net::TcpStream::connect(addr).is_err());
}
