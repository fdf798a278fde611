//! `cyclone::testing`, Tornado's `tornado.testing`: a `TestServer` on a
//! free port answering `fetch` (statuses, headers, chunked and
//! `Content-Length` bodies, `HEAD`, a `POST` body, redirects followed
//! as Tornado's client follows them or not), `on_loop` on its loop, `gen_test` with cyclone's client and
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

/// `/countdown/N` redirects to `/countdown/N-1`, and `/countdown/0`
/// says so (Tornado's own redirect tests).
struct Countdown;
impl RequestHandler for Countdown {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        match args[0].parse::<u32>().unwrap() {
            0 => cx.write("zero"),
            n => cx.redirect(&format!("/countdown/{}", n - 1), false),
        }
    }
}

/// Redirects with the status its `?code=` names to its `?to=`, whatever
/// the method (a redirect in `prepare` finishes the request).
struct Bounce;
impl RequestHandler for Bounce {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST", "PUT"]
    }
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        let code: u16 = cx.get_argument("code").unwrap().parse().unwrap();
        let to = cx.get_argument("to").unwrap_or_else(|| "/method".into());
        cx.redirect_with_status(&to, code);
    }
}

/// Says which method, body and `Content-Type` it was asked with.
struct Method;
impl RequestHandler for Method {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST", "PUT"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let req = cx.request();
        let said = format!(
            "{} [{}] {}",
            req.method(),
            String::from_utf8_lossy(req.body()),
            req.header("content-type").unwrap_or("-")
        );
        cx.set_header("X-Method", req.method().to_owned());
        cx.write(said);
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }
    fn put(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }
}

fn server() -> TestServer {
    TestServer::start(|| {
        Application::builder()
            .route("/page", || Page)
            .route("/stream", || Stream)
            .route("/away", || Away)
            .route(r"/countdown/(\d+)", || Countdown)
            .route("/bounce", || Bounce)
            .route("/method", || Method)
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
        .request("POST", "/page")
        .header("X-Any", "1")
        .body("a body")
        .send()
        .unwrap();
    assert_eq!((r.code, r.text()), (201, "got a body".into()));
    // A POST without a body says `Content-Length: 0`.
    let r = srv.request("POST", "/page").send().unwrap();
    assert_eq!((r.code, r.text()), (201, "got ".into()));

    let r = srv.request("HEAD", "/page").send().unwrap();
    assert_eq!((r.code, r.header("content-length")), (200, Some("6")));
    assert!(r.body.is_empty());

    let r = srv
        .request("GET", "/away")
        .follow_redirects(false)
        .send()
        .unwrap();
    assert_eq!((r.code, r.header("location")), (302, Some("/page")));
    assert_eq!(r.effective_url, srv.url("/away"));
    assert_eq!(srv.fetch("/nowhere").unwrap().code, 404);
    let r = srv.request("DELETE", "/page").send().unwrap();
    assert_eq!(r.code, 405);

    // The eight connections were accepted by this server's loop.
    let accepted = srv.on_loop(|| {
        IOLoop::current()
            .metrics()
            .get(Counter::ConnectionsAccepted)
    });
    assert_eq!(accepted, 8);
}

/// Tornado's client follows redirects for `self.fetch`: up to five, a
/// 303 (and a 301 or 302 after a `POST`) as a `GET` without the body, a
/// 307 or 308 as it was; never off the server.
#[test]
fn fetch_follows_redirects_as_tornado_does() {
    let srv = server();
    let r = srv.fetch("/away").unwrap();
    assert_eq!((r.code, r.text()), (200, "a page".into()));
    assert_eq!(r.effective_url, srv.url("/page"));

    // Five by default, then the redirect itself is the answer.
    let r = srv.fetch("/countdown/5").unwrap();
    assert_eq!((r.code, r.text()), (200, "zero".into()));
    assert_eq!(r.effective_url, srv.url("/countdown/0"));
    let r = srv.fetch("/countdown/6").unwrap();
    assert_eq!((r.code, r.header("location")), (302, Some("/countdown/0")));
    assert_eq!(r.effective_url, srv.url("/countdown/1"));
    // Tornado's test_max_redirects.
    let r = srv
        .request("GET", "/countdown/5")
        .max_redirects(3)
        .send()
        .unwrap();
    assert_eq!(r.code, 302);
    assert_eq!(r.effective_url, srv.url("/countdown/2"));
    assert_eq!(r.header("location"), Some("/countdown/1"));

    let form = "application/x-www-form-urlencoded";
    let cases = [
        ("POST", 301, "GET [] -"),
        ("POST", 302, "GET [] -"),
        ("POST", 303, "GET [] -"),
        ("PUT", 303, "GET [] -"),
        ("PUT", 302, "PUT [a=1] application/x-www-form-urlencoded"),
        ("POST", 307, "POST [a=1] application/x-www-form-urlencoded"),
        ("POST", 308, "POST [a=1] application/x-www-form-urlencoded"),
    ];
    for (method, code, said) in cases {
        let r = srv
            .request(method, &format!("/bounce?code={code}"))
            .header("Content-Type", form)
            .body("a=1")
            .send()
            .unwrap();
        assert_eq!((r.code, r.text()), (200, said.into()), "{method} {code}");
        assert_eq!(r.effective_url, srv.url("/method"));
    }
    // A HEAD stays a HEAD after a 303.
    let r = srv.request("HEAD", "/bounce?code=303").send().unwrap();
    assert_eq!((r.code, r.header("x-method")), (200, Some("HEAD")));

    // Absolute and relative locations on this server are followed.
    let to = srv.url("/method?x=1");
    let r = srv
        .request(
            "GET",
            &format!(
                "/bounce?code=302&to={}",
                cyclone::web::escape::url_escape(&to, false)
            ),
        )
        .send()
        .unwrap();
    assert_eq!((r.code, r.effective_url), (200, to));
    let r = srv.fetch("/bounce?code=302&to=page").unwrap();
    assert_eq!((r.code, r.text()), (200, "a page".into()));
    // One that leaves it, or has no Location, is the answer.
    for to in [
        "http%3A%2F%2Fexample.invalid%2F",
        "https%3A%2F%2F127.0.0.1%2F",
    ] {
        let r = srv.fetch(&format!("/bounce?code=302&to={to}")).unwrap();
        assert_eq!(r.code, 302, "{to}");
    }
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
