//! cyclone client ↔ cyclone server in one thread (each test has its own
//! thread, hence its own IOLoop), plus handshake failures against raw
//! listeners. Every test is bounded by a loop timer that panics.

use std::cell::RefCell;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use cyclone::http::Request;
use cyclone::ioloop::IOLoop;
use cyclone::protocol::handshake::accept_key;
use cyclone::protocol::{CompressionOptions, HandshakeError};
use cyclone::web::Application;
use cyclone::websocket::client::WsUrl;
use cyclone::websocket::{
    close_connection, websocket_connect, websocket_connect_callback, websocket_connect_opts,
    websocket_connect_with, write_to, CloseReason, ConnectError, ConnectOptions, HandshakeHeaders,
    Message, PingError, WebSocket, WebSocketHandler,
};

struct Echo;

impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        if msg.as_text() == Some("close me") {
            ws.close(Some(4000), "as you wish");
            return;
        }
        let _ = ws.write_message(msg);
    }

    fn select_subprotocol(&self, offered: &[&str]) -> Option<String> {
        offered
            .iter()
            .find(|p| **p == "chat")
            .map(|p| p.to_string())
    }
}

struct Greeter;

impl WebSocketHandler for Greeter {
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        let _ = ws.write_message("hello");
        ws.close(Some(1000), "done");
    }

    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

struct NoOrigin;

impl WebSocketHandler for NoOrigin {
    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}

    fn check_origin(&self, _origin: &str, _req: &Request) -> bool {
        false
    }
}

/// Adds a header and a cookie to its 101; says how many 101 headers the
/// server side sees (none: they are a client's).
struct Stamped;

impl WebSocketHandler for Stamped {
    fn set_default_headers(&mut self, _req: &Request, headers: &mut HandshakeHeaders<'_>) {
        headers.set_header("X-Served-By", "stamp");
        headers.add_header("X-Served-By", "again");
        headers.set_cookie("seen", "1");
    }

    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        let seen = format!("server side: {}", ws.response_headers().len());
        let _ = ws.write_message(seen);
    }

    fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
}

/// Starts the test server on 127.0.0.1:0 in this thread's loop and arms a
/// watchdog.
fn server() -> SocketAddr {
    let app = Application::builder()
        .websocket(r"/echo", |_req| Echo)
        .websocket(r"/greet", |_req| Greeter)
        .websocket(r"/forbidden", |_req| NoOrigin)
        .websocket(r"/stamped", |_req| Stamped)
        .compression(CompressionOptions::default())
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    watchdog(Duration::from_secs(30));
    addr
}

/// What a callback-style client received: texts, then `None` at the end.
type Received = Rc<RefCell<Vec<Option<String>>>>;

/// The messages a callback-style client gets (text, `None` at the end),
/// and the callback that records them and stops the loop at the end.
fn recorder() -> (Received, impl FnMut(Option<Message<'_>>) + 'static) {
    let got: Received = Rc::default();
    let g = got.clone();
    let record = move |m: Option<Message<'_>>| {
        let end = m.is_none();
        g.borrow_mut()
            .push(m.map(|m| m.as_text().unwrap_or("").to_owned()));
        if end {
            IOLoop::current().stop();
        }
    };
    (got, record)
}

fn watchdog(limit: Duration) {
    IOLoop::current().call_later(limit, || panic!("test timed out"));
}

#[test]
fn text_binary_and_subprotocol() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            subprotocols: vec!["superchat".into(), "chat".into()],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .expect("connect");
        assert_eq!(conn.selected_subprotocol().as_deref(), Some("chat"));
        conn.write_message("héllo").expect("open").await;
        assert_eq!(conn.read_message().await, Some(Message::from("héllo")));
        conn.write_message(vec![0u8, 1, 2, 255]).expect("open");
        assert_eq!(
            conn.read_message().await,
            Some(Message::from(vec![0u8, 1, 2, 255]))
        );
        conn.write_message("").expect("open");
        assert_eq!(conn.read_message().await, Some(Message::from("")));
        conn.ping(b"p").expect("open");
        conn.close(Some(1000), "bye");
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.close_code(), Some(1000));
        assert!(conn.write_message("late").is_err());
    });
}

#[test]
fn one_mib_message_and_deflate() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        conn.write_message(big.clone()).expect("open").await;
        conn.flush().await;
        assert_eq!(conn.read_message().await, Some(Message::from(big.clone())));
        conn.close(None, "");
        assert_eq!(conn.read_message().await, None);

        // The same with permessage-deflate negotiated.
        let opts = ConnectOptions {
            compression_options: Some(CompressionOptions::default()),
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .expect("connect");
        let text = "abc".repeat(400_000);
        conn.write_message(text.clone()).expect("open");
        assert_eq!(conn.read_message().await, Some(Message::from(text)));
        conn.write_message(big.clone()).expect("open");
        assert_eq!(conn.read_message().await, Some(Message::from(big)));
        conn.close(Some(1000), "");
        assert_eq!(conn.read_message().await, None);
    });
}

#[test]
fn thousand_messages_in_order() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        for i in 0..1000 {
            conn.write_message(format!("message {i}")).expect("open");
        }
        for i in 0..1000 {
            let m = conn.read_message().await.expect("message");
            assert_eq!(m.as_text(), Some(format!("message {i}").as_str()));
        }
        conn.close(Some(1000), "");
        assert_eq!(conn.read_message().await, None);
    });
}

#[test]
fn messages_stream_ends_at_the_close() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        for i in 0..100 {
            conn.write_message(format!("message {i}")).expect("open");
        }
        conn.write_message("close me").expect("open");
        let mut messages = conn.messages();
        let mut got = Vec::new();
        while let Some(m) = messages.next().await {
            got.push(m.as_text().expect("text").to_owned());
        }
        let want: Vec<String> = (0..100).map(|i| format!("message {i}")).collect();
        assert_eq!(got, want);
        assert_eq!(conn.close_code(), Some(4000));
        // Ended for good: polled again (as a StreamExt may), still None.
        assert_eq!(messages.next().await, None);
        let mut more = conn.messages();
        let end = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut more), cx)
        });
        assert_eq!(end.await, None);
    });
}

#[test]
fn server_close_code_reaches_client() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        conn.write_message("close me").expect("open");
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.close_code(), Some(4000));
        assert_eq!(conn.close_reason().as_deref(), Some("as you wish"));
    });
}

/// Unlike Tornado's, whose close puts one `None` in the read queue (the
/// first read gets it, any other read, waiting then or asked later,
/// waits forever), every read after the close gets `None`: each reader
/// waiting at the close, each read asked later, in both styles.
#[test]
fn every_read_after_the_close_gets_none() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let conn = Rc::new(
            websocket_connect(&format!("ws://{addr}/echo"))
                .await
                .expect("connect"),
        );
        let got: Rc<RefCell<Vec<Option<Message<'static>>>>> = Rc::default();
        for _ in 0..2 {
            let (c, g) = (conn.clone(), got.clone());
            cyclone::ioloop::spawn(async move {
                let m = c.read_message().await;
                g.borrow_mut().push(m);
            });
        }
        // Let both tasks wait before the server closes.
        cyclone::ioloop::sleep(Duration::from_millis(20)).await;
        conn.write_message("close me").expect("open");
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.borrow().len() < 2 && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*got.borrow(), vec![None, None], "a waiting reader");
        assert_eq!(conn.close_code(), Some(4000));
        for _ in 0..3 {
            assert_eq!(conn.read_message().await, None);
        }
        let g = got.clone();
        conn.read_message_then(move |m| g.borrow_mut().push(m));
        while got.borrow().len() < 3 && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*got.borrow(), vec![None; 3], "read_message_then");
    });
}

/// Dropping the connection handle closes with 1000 after what was
/// written: the server sees the message, then the close code.
#[test]
fn dropping_the_connection_closes_it_with_1000() {
    type Log = Rc<RefCell<Vec<String>>>;
    struct Recorder(Log);
    impl WebSocketHandler for Recorder {
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, msg: Message<'_>) {
            self.0
                .borrow_mut()
                .push(msg.as_text().unwrap_or("?").to_owned());
        }
        fn on_close(&mut self, ws: &mut WebSocket<'_>) {
            self.0
                .borrow_mut()
                .push(format!("close {:?}", ws.close_code()));
        }
    }
    let log: Log = Rc::default();
    let l2 = log.clone();
    let app = Application::builder()
        .websocket("/rec", move |_| Recorder(l2.clone()))
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    watchdog(Duration::from_secs(30));
    let l3 = log.clone();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/rec"))
            .await
            .expect("connect");
        // A clone keeps the connection open after the first handle goes.
        let clone = conn.clone();
        drop(conn);
        clone.write_message("from the clone").expect("open");
        cyclone::ioloop::sleep(Duration::from_millis(50)).await;
        assert!(!clone.is_closed());
        clone.write_message("last words").expect("open");
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(5);
        while l3.borrow().len() < 3 && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(10)).await;
        }
    });
    assert_eq!(
        *log.borrow(),
        vec![
            "from the clone".to_string(),
            "last words".to_string(),
            "close Some(1000)".to_string()
        ]
    );
}

#[test]
fn host_name_is_resolved_off_loop() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let url = format!("ws://localhost:{}/echo", addr.port());
        let conn = match websocket_connect(&url).await {
            Ok(c) => c,
            // localhost may resolve to ::1 first where we only listen on v4.
            Err(ConnectError::Io(e)) => {
                eprintln!("localhost connect failed ({e}); skipping");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        conn.write_message("hi").expect("open");
        assert_eq!(conn.read_message().await, Some(Message::from("hi")));
        conn.close(None, "");
    });
}

/// Callback style: a `WebSocketHandler` drives the client end.
#[test]
fn callback_style_handler() {
    struct Client {
        got: Rc<RefCell<Vec<String>>>,
        /// What `ws.request()` said in `open`.
        sent: Rc<RefCell<String>>,
    }
    impl WebSocketHandler for Client {
        fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
            // The upgrade request this client sent, as Tornado's
            // WebSocketClientConnection.request.
            let r = ws.request();
            *self.sent.borrow_mut() = format!(
                "{} {} x-trace={:?} {} {:?}",
                r.method(),
                r.uri(),
                r.header("x-trace"),
                r.protocol(),
                r.peer()
            );
            for i in 0..100 {
                ws.write_message(format!("m{i}")).expect("open");
            }
        }
        fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
            self.got
                .borrow_mut()
                .push(msg.as_text().expect("text").to_owned());
            if self.got.borrow().len() == 100 {
                ws.close(Some(1000), "enough");
            }
        }
        fn on_close(&mut self, ws: &mut WebSocket<'_>) {
            ws.io_loop().stop();
        }
    }
    let addr = server();
    let got = Rc::new(RefCell::new(Vec::new()));
    let sent = Rc::new(RefCell::new(String::new()));
    websocket_connect_with(
        &format!("ws://{addr}/echo?x=1"),
        ConnectOptions {
            headers: vec![("X-Trace".to_owned(), "t-42".to_owned())],
            ..ConnectOptions::default()
        },
        Client {
            got: got.clone(),
            sent: sent.clone(),
        },
    )
    .expect("connect");
    IOLoop::current().start();
    let want: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(*got.borrow(), want);
    assert_eq!(
        *sent.borrow(),
        format!("GET /echo?x=1 x-trace=Some(\"t-42\") http Some({addr})")
    );
}

/// Tornado's `WebSocketClientConnection.headers`: the server's 101 as the
/// client got it, with what the server's `set_default_headers` added;
/// kept after the close; a repeated header's lines joined with `,` by
/// `header_joined`, as Tornado's `conn.headers["X"]` joins them, the
/// first alone by `header`. A callback-style handler reads the same in
/// `open`.
#[test]
fn the_servers_101_headers_reach_the_client() {
    let addr = server();
    let url = format!("ws://{addr}/stamped");
    let u = url.clone();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&u).await.expect("connect");
        assert_eq!(conn.header("x-served-by").as_deref(), Some("stamp"));
        assert_eq!(
            conn.header_joined("x-served-by").as_deref(),
            Some("stamp,again")
        );
        assert_eq!(conn.header_joined("x-absent"), None);
        assert_eq!(conn.header("Set-Cookie").as_deref(), Some("seen=1; Path=/"));
        assert_eq!(
            conn.header_joined("Set-Cookie").as_deref(),
            Some("seen=1; Path=/")
        );
        let names: Vec<String> = conn.headers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "Upgrade",
                "Connection",
                "Sec-WebSocket-Accept",
                "X-Served-By",
                "X-Served-By",
                "Set-Cookie"
            ]
        );
        let seen = conn.read_message().await.expect("message");
        assert_eq!(seen.as_text(), Some("server side: 0"));
        conn.close(Some(1000), "");
        while conn.read_message().await.is_some() {}
        assert_eq!(conn.header("x-served-by").as_deref(), Some("stamp"));
    });
    struct Reader(Rc<RefCell<Vec<Option<String>>>>);
    impl WebSocketHandler for Reader {
        fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
            *self.0.borrow_mut() = vec![
                ws.response_header("set-cookie").map(str::to_owned),
                ws.response_header("X-Served-By").map(str::to_owned),
                ws.response_header_joined("x-served-by").map(String::from),
                ws.response_header_joined("x-absent").map(String::from),
            ];
            ws.close(Some(1000), "");
        }
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
        fn on_close(&mut self, ws: &mut WebSocket<'_>) {
            ws.io_loop().stop();
        }
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    websocket_connect_with(&url, ConnectOptions::default(), Reader(seen.clone())).expect("connect");
    IOLoop::current().start();
    assert_eq!(
        *seen.borrow(),
        [
            Some("seen=1; Path=/".to_string()),
            Some("stamp".to_string()),
            Some("stamp,again".to_string()),
            None
        ]
    );
}

/// The simplest callback: messages, then `None`.
#[test]
fn callback_closure() {
    let addr = server();
    let (got, record) = recorder();
    websocket_connect_callback(
        &format!("ws://{addr}/greet"),
        ConnectOptions::default(),
        record,
    )
    .expect("connect");
    IOLoop::current().start();
    assert_eq!(*got.borrow(), vec![Some("hello".to_owned()), None]);

    // write_to works on a callback-style client connection, too.
    let got: Rc<RefCell<Vec<Option<String>>>> = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let id = websocket_connect_callback(
        &format!("ws://{addr}/echo"),
        ConnectOptions::default(),
        move |m| {
            g.borrow_mut()
                .push(m.map(|m| m.as_text().unwrap_or("").to_owned()));
            IOLoop::current().stop();
        },
    )
    .expect("connect");
    let lp = IOLoop::current();
    fn send_when_open(id: cyclone::ioloop::ConnId) {
        if !write_to(id, "echo me") {
            IOLoop::current().call_later(Duration::from_millis(5), move || send_when_open(id));
        }
    }
    lp.add_callback(move || send_when_open(id));
    lp.start();
    assert_eq!(*got.borrow(), vec![Some("echo me".to_owned())]);
}

#[test]
fn connect_timeout_fires_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(10));
        drop(held);
    });
    watchdog(Duration::from_secs(10));
    let start = Instant::now();
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(500),
            ..ConnectOptions::default()
        };
        websocket_connect_opts(&format!("ws://{addr}/"), opts)
            .await
            .map(|_| ())
    });
    let took = start.elapsed();
    assert!(matches!(res, Err(ConnectError::Timeout)), "{res:?}");
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn forbidden_and_not_found_are_typed() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            headers: vec![("Origin".into(), "http://evil.example".into())],
            ..ConnectOptions::default()
        };
        let err = websocket_connect_opts(&format!("ws://{addr}/forbidden"), opts)
            .await
            .expect_err("403");
        assert_eq!(err.status(), Some(403), "{err}");
        match &err {
            ConnectError::Handshake(HandshakeError::BadStatus { body, .. }) => {
                assert!(
                    String::from_utf8_lossy(body).contains("Cross origin"),
                    "{body:?}"
                )
            }
            e => panic!("{e:?}"),
        }
        let err = websocket_connect(&format!("ws://{addr}/nope"))
            .await
            .expect_err("404");
        assert_eq!(err.status(), Some(404), "{err}");
    });
}

/// Reads the client's request head; `None` if it closed first.
fn read_head(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    Some(head)
}

/// A one-connection raw server: `serve` gets the client's stream and its
/// request head once the head has been read (nothing, if it closed first).
fn after_head(serve: impl FnOnce(std::net::TcpStream, Vec<u8>) + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            if let Some(head) = read_head(&mut s) {
                serve(s, head);
            }
        }
    });
    addr
}

/// A raw server answering the handshake with `respond(key)` (after reading
/// the request head); the receiver gets what the client sent afterwards
/// (until EOF or 2 s) and whether the client closed the connection (EOF
/// or reset) rather than keeping it open for those 2 s.
fn raw_server(respond: fn(&str) -> Vec<u8>) -> (SocketAddr, mpsc::Receiver<(Vec<u8>, bool)>) {
    let (tx, rx) = mpsc::channel();
    let addr = after_head(move |mut s, head| {
        let mut b = [0u8; 1024];
        let key = key_of(&head);
        let _ = s.write_all(&respond(&key));
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut after = Vec::new();
        let closed = loop {
            match s.read(&mut b) {
                Ok(0) => break true,
                Ok(n) => after.extend_from_slice(&b[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break false
                }
                Err(_) => break true,
            }
        };
        let _ = tx.send((after, closed));
    });
    (addr, rx)
}

fn accept_of(key: &str) -> String {
    String::from_utf8(accept_key(key.as_bytes()).to_vec()).expect("base64")
}

/// The `Sec-WebSocket-Key` of a request head ("" if none).
fn key_of(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// A plain 101 answer to the request with `Sec-WebSocket-Key: key`.
fn switching_protocols(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_of(key)
    )
}

/// The client refused the server's 101 as malformed.
fn assert_invalid_response(res: Result<(), ConnectError>) {
    assert!(
        matches!(
            res,
            Err(ConnectError::Handshake(HandshakeError::InvalidResponse(_)))
        ),
        "{res:?}"
    );
}

fn connect_raw(respond: fn(&str) -> Vec<u8>) -> Result<(), ConnectError> {
    let (addr, _) = raw_server(respond);
    watchdog(Duration::from_secs(10));
    IOLoop::current().run_sync(async move {
        websocket_connect(&format!("ws://{addr}/"))
            .await
            .map(|_| ())
    })
}

/// An empty port is the scheme's (RFC 3986 §3.2.3).
#[test]
fn an_empty_port_is_the_default_one() {
    assert_eq!(
        WsUrl::parse("ws://example.com:/").map(|u| u.port).ok(),
        Some(80)
    );
    assert_eq!(WsUrl::parse("ws://[::1]:/x").map(|u| u.port).ok(), Some(80));
    #[cfg(feature = "tls")]
    assert_eq!(
        WsUrl::parse("wss://example.com:").map(|u| u.port).ok(),
        Some(443)
    );
}

/// A subprotocol is a token, offered once (RFC 6455 §4.1): one with a line
/// end, a comma or a space is refused before anything is sent (a line end
/// would add a header of its own).
#[test]
fn subprotocols_that_are_not_tokens_are_refused_unsent() {
    let (addr, rx) = raw_server(|key| switching_protocols(key).into_bytes());
    watchdog(Duration::from_secs(10));
    for bad in [
        &["chat\r\nX-Injected: yes"][..],
        &["a, b"],
        &["a b"],
        &[""],
        &["chat", "chat"],
    ] {
        let opts = ConnectOptions {
            subprotocols: bad.iter().map(|p| p.to_string()).collect(),
            ..ConnectOptions::default()
        };
        let res = IOLoop::current().run_sync(async move {
            websocket_connect_opts(&format!("ws://{addr}/"), opts)
                .await
                .map(|_| ())
        });
        assert!(
            matches!(res, Err(ConnectError::InvalidSubprotocol(_))),
            "{bad:?}: {res:?}"
        );
    }
    // The raw server answers one connection: the valid offer gets it, so
    // none of the refused ones connected.
    drop(rx);
    let opts = ConnectOptions {
        subprotocols: vec!["chat".into(), "v2.chat".into()],
        ..ConnectOptions::default()
    };
    let res = IOLoop::current().run_sync(async move {
        websocket_connect_opts(&format!("ws://{addr}/"), opts)
            .await
            .map(|_| ())
    });
    assert!(res.is_ok(), "{res:?}");
}

/// RFC 6455 §4.1 item 2: the 101's `Upgrade` is `websocket` and nothing
/// else; a list naming it among others, or two `Upgrade` headers, fail.
#[test]
fn an_upgrade_field_other_than_websocket_fails_the_client() {
    let listed: fn(&str) -> Vec<u8> = |key| {
        switching_protocols(key)
            .replace("Upgrade: websocket", "Upgrade: h2c, websocket")
            .into_bytes()
    };
    let twice: fn(&str) -> Vec<u8> = |key| {
        switching_protocols(key)
            .replace("Upgrade: websocket", "Upgrade: websocket\r\nUpgrade: h2c")
            .into_bytes()
    };
    let cased: fn(&str) -> Vec<u8> = |key| {
        switching_protocols(key)
            .replace("Upgrade: websocket", "Upgrade:  WebSocket ")
            .into_bytes()
    };
    for respond in [listed, twice] {
        assert_invalid_response(connect_raw(respond));
    }
    assert!(connect_raw(cased).is_ok());
}

/// Interim answers before the 101 (`100 Continue`, `103 Early Hints`) are
/// skipped (RFC 9110 §15.2); a server sending nothing else gets its
/// status back after a few of them.
#[test]
fn interim_responses_before_the_101_are_skipped() {
    let res = connect_raw(|key| {
        format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n{}",
            switching_protocols(key)
        )
        .into_bytes()
    });
    assert!(res.is_ok(), "{res:?}");
    let res = connect_raw(|_| "HTTP/1.1 100 Continue\r\n\r\n".repeat(20).into_bytes());
    assert_eq!(res.err().and_then(|e| e.status()), Some(100));
}

/// An empty `Sec-WebSocket-Protocol` names no subprotocol (as Tornado's
/// client reads it), rather than an unrequested one.
#[test]
fn an_empty_subprotocol_header_names_none() {
    let res = connect_raw(|key| {
        switching_protocols(key)
            .replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: \r\n\r\n")
            .into_bytes()
    });
    assert!(res.is_ok(), "{res:?}");
}

/// A refusal whose announced body does not come whole before the connect
/// timeout is reported as the refusal (its status, the body so far), not
/// as a bare timeout.
#[test]
fn a_refusal_cut_short_keeps_its_status() {
    let (addr, _rx) =
        raw_server(|_| b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\npartial".to_vec());
    watchdog(Duration::from_secs(10));
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let res = IOLoop::current().run_sync(async move {
        websocket_connect_opts(&format!("ws://{addr}/"), opts)
            .await
            .map(|_| ())
    });
    match res {
        Err(ConnectError::Handshake(HandshakeError::BadStatus { status, body, .. })) => {
            assert_eq!((status, body.as_slice()), (503, &b"partial"[..]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_accept_key_is_typed() {
    let res = connect_raw(|_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            .into()
    });
    assert!(
        matches!(res, Err(ConnectError::Handshake(HandshakeError::BadAccept))),
        "{res:?}"
    );
}

/// RFC 6455 §4.1/§4.2.2: the 101 is HTTP/1.1's; an `HTTP/1.0 101` with
/// otherwise valid headers is refused, typed (Tornado accepts it), and no
/// connection opens on it.
#[test]
fn an_http_1_0_101_is_refused() {
    let (addr, rx) = raw_server(|key| {
        switching_protocols(key)
            .replace("HTTP/1.1 101", "HTTP/1.0 101")
            .into_bytes()
    });
    watchdog(Duration::from_secs(10));
    let res = IOLoop::current().run_sync(async move {
        websocket_connect(&format!("ws://{addr}/"))
            .await
            .map(|_| ())
    });
    match res {
        Err(ConnectError::Handshake(HandshakeError::UnsupportedResponseVersion)) => {}
        other => panic!("{other:?}"),
    }
    // The client closed the socket without sending a frame.
    let (after, closed) = rx.recv_timeout(Duration::from_secs(5)).expect("server");
    assert!(after.is_empty() && closed, "{after:?} {closed}");
    // The same head in HTTP/1.1 is accepted.
    assert!(connect_raw(|key| switching_protocols(key).into_bytes()).is_ok());
}

/// RFC 6455 §4.1: `Sec-WebSocket-Accept` must be there once with the
/// right value; a second one (even a right one after a wrong one) fails
/// the connection instead of the last one winning.
#[test]
fn duplicate_accept_header_fails_the_connection() {
    let wrong_then_right: fn(&str) -> Vec<u8> = |key| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_of(key)
        )
        .into()
    };
    let right_twice: fn(&str) -> Vec<u8> = |key| {
        let a = accept_of(key);
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Accept: {a}\r\n\r\n"
        )
        .into()
    };
    for respond in [wrong_then_right, right_twice] {
        assert_invalid_response(connect_raw(respond));
    }
}

/// Dropping the `websocket_connect` future before the handshake completes
/// (here under a timeout) abandons the attempt: the socket is closed and
/// no connection is left open with nobody to read it.
#[test]
fn dropping_the_connect_future_abandons_the_attempt() {
    // Answers 300 ms after the request: after the client gave up.
    let (addr, seen) = raw_server(|key| {
        std::thread::sleep(Duration::from_millis(300));
        switching_protocols(key).into()
    });
    watchdog(Duration::from_secs(10));
    let lp = IOLoop::current();
    let gave_up = lp.run_sync(async move {
        let url = format!("ws://{addr}/");
        let mut connect = Box::pin(websocket_connect(&url));
        let mut timeout = Box::pin(cyclone::ioloop::sleep(Duration::from_millis(100)));
        let gave_up = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = connect.as_mut().poll(cx) {
                return Poll::Ready(r.map(|_| ()).map_err(|e| e.to_string()));
            }
            timeout
                .as_mut()
                .poll(cx)
                .map(|()| Err("timeout".to_owned()))
        })
        .await;
        drop(connect);
        // Past the server's answer.
        cyclone::ioloop::sleep(Duration::from_millis(600)).await;
        gave_up
    });
    assert_eq!(gave_up, Err("timeout".to_owned()));
    assert_eq!(lp.registrations(), 0, "the connection lives on");
    let (sent, closed) = seen.recv_timeout(Duration::from_secs(5)).expect("server");
    assert!(closed, "client kept the connection open (sent {sent:?})");
}

/// The same when the handshake completed but the future was dropped before
/// it was polled again: the unclaimed connection is closed with 1001.
#[test]
fn dropping_the_connect_future_closes_an_unclaimed_connection() {
    let (addr, seen) = raw_server(|key| switching_protocols(key).into());
    watchdog(Duration::from_secs(10));
    IOLoop::current().run_sync(async move {
        let url = format!("ws://{addr}/");
        let mut connect = Box::pin(websocket_connect(&url));
        // Started, with a waker that never wakes anyone: the result waits.
        let mut cx = Context::from_waker(Waker::noop());
        assert!(connect.as_mut().poll(&mut cx).is_pending());
        cyclone::ioloop::sleep(Duration::from_millis(300)).await;
        drop(connect);
        cyclone::ioloop::sleep(Duration::from_millis(300)).await;
    });
    let (sent, _) = seen.recv_timeout(Duration::from_secs(5)).expect("server");
    // A masked close frame carrying 1001.
    assert!(sent.len() >= 8, "{sent:?}");
    assert_eq!(sent[0], 0x88, "{sent:?}");
    let key = &sent[2..6];
    let code = [sent[6] ^ key[0], sent[7] ^ key[1]];
    assert_eq!(u16::from_be_bytes(code), 1001);
}

#[test]
fn unrequested_extension_and_subprotocol_are_typed() {
    let res = connect_raw(|key| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            accept_of(key)
        )
        .into()
    });
    assert!(
        matches!(
            res,
            Err(ConnectError::Handshake(
                HandshakeError::UnrequestedExtension(_)
            ))
        ),
        "{res:?}"
    );
    let res = connect_raw(|key| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
            accept_of(key)
        )
        .into()
    });
    assert!(
        matches!(
            res,
            Err(ConnectError::Handshake(
                HandshakeError::UnrequestedSubprotocol(_)
            ))
        ),
        "{res:?}"
    );
}

/// The parameter names of the server's permessage-deflate answer are read
/// in any case (HTTP tokens; the server side reads offers so too).
#[test]
fn deflate_parameter_names_in_any_case_are_accepted() {
    let (addr, _rx) = raw_server(|key| {
        switching_protocols(key)
            .replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate; \
                 Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS=10\r\n\r\n",
            )
            .into_bytes()
    });
    watchdog(Duration::from_secs(10));
    let opts = ConnectOptions {
        compression_options: Some(CompressionOptions::default()),
        ..ConnectOptions::default()
    };
    let res = IOLoop::current().run_sync(async move {
        websocket_connect_opts(&format!("ws://{addr}/"), opts)
            .await
            .map(|_| ())
    });
    assert!(res.is_ok(), "{res:?}");
}

#[test]
fn non_101_carries_status_and_body() {
    let res = connect_raw(|_| "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".into());
    match res {
        Err(ConnectError::Handshake(HandshakeError::BadStatus {
            status: 200, body, ..
        })) => {
            assert_eq!(body, b"hello")
        }
        r => panic!("{r:?}"),
    }
}

/// A refusal with a chunked body (`Transfer-Encoding: chunked`, as
/// Tornado's own error pages and most frameworks send one of unknown
/// length) carries the body decoded, as Tornado's `HTTPClientError` and
/// websockets' `InvalidStatus` give it, not its chunk framing; chunks that
/// come in later writes are waited for up to the last one.
#[test]
fn a_chunked_refusal_carries_its_decoded_body() {
    let addr = after_head(|mut s, _| {
        let _ = s.write_all(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        );
        std::thread::sleep(Duration::from_millis(50));
        let _ = s.write_all(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
        // Kept open: the last chunk ends the body, not the close.
        std::thread::sleep(Duration::from_secs(2));
    });
    watchdog(Duration::from_secs(10));
    let started = Instant::now();
    let res = IOLoop::current().run_sync(async move {
        websocket_connect(&format!("ws://{addr}/"))
            .await
            .map(|_| ())
    });
    match res {
        Err(ConnectError::Handshake(HandshakeError::BadStatus { status, body, .. })) => {
            assert_eq!((status, body.as_slice()), (403, &b"hello world"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A refusal with neither `Content-Length` nor `Transfer-Encoding` has a
/// body that ends with the connection (RFC 9112 §6.3 item 8): it is read
/// until the server closes, as Tornado and websockets read it, instead of
/// being cut to what came with the head. A server that keeps such a
/// connection open gets its status reported at the connect timeout, with
/// what of the body came.
#[test]
fn a_refusal_without_length_is_read_to_the_close() {
    fn refuse(keep_open: bool) -> Result<(), ConnectError> {
        let addr = after_head(move |mut s, _| {
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
            std::thread::sleep(Duration::from_millis(100));
            let _ = s.write_all(b"late body");
            if keep_open {
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(if keep_open { 400 } else { 5000 }),
            ..ConnectOptions::default()
        };
        IOLoop::current().run_sync(async move {
            websocket_connect_opts(&format!("ws://{addr}/"), opts)
                .await
                .map(|_| ())
        })
    }
    watchdog(Duration::from_secs(10));
    for keep_open in [false, true] {
        match refuse(keep_open) {
            Err(ConnectError::Handshake(HandshakeError::BadStatus { status, body, .. })) => {
                assert_eq!(
                    (status, body.as_slice()),
                    (403, &b"late body"[..]),
                    "kept open: {keep_open}"
                );
            }
            other => panic!("kept open: {keep_open}: {other:?}"),
        }
    }
}

/// A refusal's headers reach the caller (Tornado's `HTTPClientError.response.headers`,
/// websockets' `InvalidStatus.response.headers`): the `Location` of a
/// redirect, which neither Tornado's client nor this one follows, so that
/// the caller can; `WWW-Authenticate`, `Retry-After`. The message names
/// the redirect's target.
#[test]
fn a_refusals_headers_reach_the_caller() {
    let res = connect_raw(|_| {
        b"HTTP/1.1 302 Found\r\nLocation: /elsewhere?x=1\r\nRetry-After: 5\r\n\
          Content-Length: 3\r\n\r\nbye"
            .to_vec()
    });
    let e = res.expect_err("refused");
    let text = e.to_string();
    assert!(
        text.contains("302") && text.contains("/elsewhere?x=1"),
        "{text}"
    );
    match e {
        ConnectError::Handshake(HandshakeError::BadStatus {
            status,
            body,
            headers,
        }) => {
            assert_eq!((status, body.as_slice()), (302, &b"bye"[..]));
            assert_eq!(
                headers,
                vec![
                    ("Location".to_owned(), "/elsewhere?x=1".to_owned()),
                    ("Retry-After".to_owned(), "5".to_owned()),
                    ("Content-Length".to_owned(), "3".to_owned()),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A server frame with the mask bit set fails the connection (1002).
#[test]
fn masked_server_frame_fails_connection() {
    let (addr, sent) = raw_server(|key| {
        let head = switching_protocols(key);
        let mut out = head.into_bytes();
        // FIN + text, MASK bit + length 2, a mask key, "hi" masked.
        out.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        out
    });
    watchdog(Duration::from_secs(10));
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        assert_eq!(conn.read_message().await, None);
    });
    // The client answered with a masked close frame carrying 1002.
    let (sent, _) = sent
        .recv_timeout(Duration::from_secs(5))
        .expect("client bytes");
    assert!(sent.len() >= 8, "{sent:?}");
    assert_eq!(sent[0], 0x88, "{sent:?}");
    assert!(sent[1] & 0x80 != 0, "client frames are masked");
    let len = (sent[1] & 0x7f) as usize;
    assert!(len >= 2);
    let key = &sent[2..6];
    let code = [sent[6] ^ key[0], sent[7] ^ key[1]];
    assert_eq!(u16::from_be_bytes(code), 1002);
}

#[test]
fn refused_and_bad_urls() {
    // Find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    watchdog(Duration::from_secs(10));
    let res = IOLoop::current().run_sync(async move {
        websocket_connect(&format!("ws://127.0.0.1:{port}/"))
            .await
            .map(|_| ())
    });
    assert!(matches!(res, Err(ConnectError::Io(_))), "{res:?}");

    // wss:// (tests/tls.rs connects to a TLS server).
    #[cfg(feature = "tls")]
    {
        let u = WsUrl::parse("wss://example.com/chat").expect("wss url");
        assert!(u.secure);
        assert_eq!((u.host.as_str(), u.port), ("example.com", 443));
        assert!(!WsUrl::parse("ws://example.com/").expect("url").secure);
    }
    #[cfg(not(feature = "tls"))]
    {
        let res = IOLoop::current()
            .run_sync(async { websocket_connect("wss://example.com/").await.map(|_| ()) });
        let err = res.expect_err("tls");
        assert!(matches!(err, ConnectError::Tls));
        assert!(err.to_string().contains("without its `tls` feature"));
    }
    for bad in [
        "http://x/",
        "ws://",
        "ws://host:99999/",
        "ws://::1/",
        "ws://[::1/",
        "nonsense",
        "ws://host:+80/",
        "ws://host:8 0/",
        "ws://ho st/",
        "ws://host\r\nX-Injected: yes/",
    ] {
        assert!(
            matches!(WsUrl::parse(bad), Err(ConnectError::InvalidUrl(_))),
            "{bad}"
        );
    }
}

#[test]
fn url_parsing() {
    let u = WsUrl::parse("ws://example.com/chat?room=1#frag").expect("url");
    assert_eq!(
        (u.host.as_str(), u.port, u.resource.as_str()),
        ("example.com", 80, "/chat?room=1")
    );
    assert_eq!(u.host_header, "example.com");
    let u = WsUrl::parse("ws://127.0.0.1:9001").expect("url");
    assert_eq!(
        (u.host.as_str(), u.port, u.resource.as_str()),
        ("127.0.0.1", 9001, "/")
    );
    let u = WsUrl::parse("WS://[::1]:8080?x=1").expect("url");
    assert_eq!(
        (u.host.as_str(), u.port, u.resource.as_str()),
        ("::1", 8080, "/?x=1")
    );
    assert_eq!(u.host_header, "[::1]:8080");
    let u = WsUrl::parse("ws://[::1]/").expect("url");
    assert_eq!(u.port, 80);
}

/// When the client fails the connection itself, the caller learns what
/// the server broke, typed (websockets says it in its exception; Tornado
/// and `closed_by` alone only say that something was): a masked frame, a
/// text that is not UTF-8, a message over `max_message_size`, each with
/// the close code the client sent.
#[test]
fn the_servers_violation_is_typed_on_the_client() {
    use cyclone::protocol::ProtocolError;
    fn fail_with(respond: fn(&str) -> Vec<u8>) -> (Option<CloseReason>, Option<ProtocolError>) {
        let (addr, _sent) = raw_server(respond);
        let opts = ConnectOptions {
            max_message_size: 10,
            ..ConnectOptions::default()
        };
        IOLoop::current().run_sync(async move {
            let conn = websocket_connect_opts(&format!("ws://{addr}/"), opts)
                .await
                .expect("connect");
            assert_eq!(conn.read_message().await, None);
            assert_eq!(conn.close_code(), None);
            (conn.closed_by(), conn.protocol_error())
        })
    }
    fn with_frame(key: &str, frame: &[u8]) -> Vec<u8> {
        let mut out = switching_protocols(key).into_bytes();
        out.extend_from_slice(frame);
        out
    }
    watchdog(Duration::from_secs(20));
    let masked = fail_with(|key| with_frame(key, &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]));
    assert_eq!(
        masked,
        (
            Some(CloseReason::ProtocolError),
            Some(ProtocolError::MaskedFrameFromServer)
        )
    );
    assert_eq!(masked.1.map(|e| e.close_code().0), Some(1002));
    let not_utf8 = fail_with(|key| with_frame(key, &[0x81, 2, 0xff, 0xfe]));
    assert_eq!(
        not_utf8,
        (
            Some(CloseReason::ProtocolError),
            Some(ProtocolError::InvalidUtf8)
        )
    );
    let (by, e) = fail_with(|key| with_frame(key, &[0x82, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert_eq!(by, Some(CloseReason::MessageTooBig));
    assert!(
        matches!(e, Some(ProtocolError::MessageTooBig { limit: 10, .. })),
        "{e:?}"
    );
}

/// Frames that arrive in the same read as the 101 are not lost.
#[test]
fn frames_right_after_101_are_delivered() {
    let (addr, _) = raw_server(|key| {
        let head = switching_protocols(key);
        let mut out = head.into_bytes();
        out.extend_from_slice(&[0x81, 2, b'h', b'i', 0x82, 1, 7]);
        out.extend_from_slice(&[0x88, 2, 0x03, 0xe8]);
        out
    });
    watchdog(Duration::from_secs(10));
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        assert_eq!(conn.read_message().await, Some(Message::from("hi")));
        assert_eq!(conn.read_message().await, Some(Message::from(vec![7u8])));
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.close_code(), Some(1000));
    });
}

/// A raw server thread that completes the handshake on the first
/// connection and hands the socket to `then`, whose result `join` returns.
fn raw_ws_server<T: Send + 'static>(
    then: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        complete_upgrade(&mut s);
        then(s)
    });
    (addr, server)
}

/// Reads the client's upgrade request byte by byte (nothing after the head
/// is consumed) and answers 101 with the right accept key.
fn complete_upgrade(s: &mut std::net::TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("request head");
        head.push(b[0]);
    }
    s.write_all(switching_protocols(&key_of(&head)).as_bytes())
        .unwrap();
}

/// Runs the loop until `done` has a value (or `limit` passes); returns it.
async fn wait_for<T>(done: &mpsc::Receiver<T>, limit: Duration) -> Option<T> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(v) = done.try_recv() {
            return Some(v);
        }
        cyclone::ioloop::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// RFC 6455 §7.1.1, as the session's contract says: after the closing
/// handshake the client waits for the server to close the TCP connection
/// (the server then holds TIME_WAIT), while `on_close` (here: `read_message`
/// yielding `None`) comes as soon as the server's Close arrives. Once the
/// server closes, the client's slot is freed.
#[test]
fn client_waits_for_the_server_to_close_tcp() {
    let (closing_tx, closing_rx) = mpsc::channel::<()>();
    let (addr, server) = raw_ws_server(move |mut s| {
        // The client's Close: 2 + 4 (mask) + 2 (code) bytes.
        let mut close = [0u8; 8];
        s.read_exact(&mut close).unwrap();
        assert_eq!(close[0], 0x88);
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let sent = Instant::now();
        let mut tmp = [0u8; 64];
        let read = s.read(&mut tmp).map_err(|e| e.kind());
        let after = sent.elapsed();
        // Now the server closes.
        drop(s);
        let _ = closing_tx.send(());
        (read, after)
    });
    watchdog(Duration::from_secs(20));
    let lp = IOLoop::current();
    let (took, freed) = lp.run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        let t0 = Instant::now();
        conn.close(Some(1000), "");
        assert_eq!(conn.read_message().await, None);
        let took = t0.elapsed();
        assert_eq!(conn.close_code(), Some(1000));
        // The loop goes on while the server decides.
        wait_for(&closing_rx, Duration::from_secs(5))
            .await
            .expect("server");
        let deadline = Instant::now() + Duration::from_secs(2);
        while IOLoop::current().registrations() > 0 && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(10)).await;
        }
        (took, IOLoop::current().registrations() == 0)
    });
    let (read, after) = server.join().unwrap();
    assert!(
        !matches!(read, Ok(0)),
        "the client closed TCP {after:?} after the server's Close echo, \
         without waiting for the server to close it"
    );
    assert!(
        took < Duration::from_millis(400),
        "on_close waited for the TCP close: {took:?}"
    );
    assert!(freed, "the client's slot outlived the server's close");
}

/// The wait for the server's TCP close is bounded: a server that sends
/// Close, reads the echo and then keeps the connection open does not keep
/// the client's slot (the client closes about 1 s after the handshake).
#[test]
fn client_does_not_wait_forever_for_a_server_that_never_closes() {
    let (closed_tx, closed_rx) = mpsc::channel::<Duration>();
    let (addr, server) = raw_ws_server(move |mut s| {
        // The server closes the handshake first.
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        let mut echo = [0u8; 8];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo[0], 0x88);
        let echoed = Instant::now();
        // Then never closes; waits for the client to.
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut tmp = [0u8; 64];
        let read = s.read(&mut tmp).map_err(|e| e.kind());
        assert_eq!(read, Ok(0), "the client did not close");
        let _ = closed_tx.send(echoed.elapsed());
        s
    });
    watchdog(Duration::from_secs(20));
    let lp = IOLoop::current();
    let after = lp.run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.close_code(), Some(1000));
        wait_for(&closed_rx, Duration::from_secs(8)).await
    });
    let after = after.expect("the client never closed the TCP connection");
    assert_eq!(lp.registrations(), 0, "the client's slot is still taken");
    drop(server.join().unwrap());
    // About 1 s (deadlines are swept every 250 ms), not at once.
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(3),
        "the client closed {after:?} after its echo"
    );
}

/// `write_message`'s future resolves once the connection's queue is down
/// to `WRITE_HIGH_WATER`, not only once it is empty. The peer announces a
/// small MSS and has the smallest receive buffer, which keeps the client's
/// send buffer small (its autotuning follows the congestion window), so
/// the kernel takes the 1 MiB queue in steps well below the mark (about
/// 27 KB on Linux 6) while the peer reads slowly: the future must resolve
/// with the queue still non-empty (and at most the mark), not at the end.
#[test]
fn write_future_resolves_at_the_high_water_mark() {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // Both are inherited by the accepted socket: the SYN-ACK announces
    // the MSS, and the window stays small (1: the kernel's minimum).
    sock.set_mss(536).unwrap();
    sock.set_recv_buffer_size(1).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    sock.listen(1).unwrap();
    let listener: TcpListener = sock.into();
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        complete_upgrade(&mut s);
        // Read slowly, 2 KiB a millisecond, until told to stop.
        go_rx.recv().unwrap();
        let mut v = [0u8; 2048];
        while !stop2.load(std::sync::atomic::Ordering::Relaxed)
            && matches!(s.read(&mut v), Ok(n) if n > 0)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    watchdog(Duration::from_secs(30));
    let (q0, at) = IOLoop::current().run_sync(async move {
        let conn = Rc::new(
            websocket_connect(&format!("ws://{addr}/"))
                .await
                .expect("connect"),
        );
        let fut = conn.write_message(vec![0u8; 1024 * 1024]).expect("write");
        let q0 = conn.buffered_amount();
        // The queue when the future resolved.
        let at = Rc::new(std::cell::Cell::new(None));
        let (at2, conn2) = (at.clone(), conn.clone());
        IOLoop::current().spawn(async move {
            fut.await;
            at2.set(Some(conn2.buffered_amount()));
        });
        cyclone::ioloop::sleep(Duration::from_millis(100)).await;
        go_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while at.get().is_none() && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(5)).await;
        }
        (q0, at.get())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    println!("queued {q0}, future resolved at {at:?}");
    let mark = cyclone::websocket::client::WRITE_HIGH_WATER;
    assert!(q0 > 2 * mark, "setup: only {q0} bytes queued");
    let at = at.expect("the write future never resolved");
    assert!(
        at > 0 && at <= mark,
        "the write future resolved with {at} bytes queued (mark {mark})"
    );
}

/// A `Host` among the client's extra headers replaces its own (virtual
/// hosting; Tornado's client adds Host only when absent): one Host goes
/// out, which the server's "exactly one Host" check accepts.
#[test]
fn client_host_header_override_is_accepted_by_server() {
    let app = Application::builder()
        .websocket(r"/echo", |_req| Echo)
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    IOLoop::current().call_later(Duration::from_secs(20), || panic!("test timed out"));
    let res = IOLoop::current().run_sync(async move {
        let opts = cyclone::websocket::ConnectOptions {
            headers: vec![("Host".into(), "example.com".into())],
            ..cyclone::websocket::ConnectOptions::default()
        };
        match cyclone::websocket::websocket_connect_opts(&format!("ws://{addr}/echo"), opts).await {
            Ok(c) => {
                c.close(None, "");
                Ok(())
            }
            Err(e) => Err(format!("{e} (status {:?})", e.status())),
        }
    });
    assert!(res.is_ok(), "{res:?}");
}

/// The handshake's own request headers are the client's: among the extra
/// headers, `Upgrade`, `Connection`, `Sec-WebSocket-Key` and
/// `Sec-WebSocket-Version` are dropped (Tornado's client overwrites them
/// with its own), rather than sent a second time — RFC 6455 §11.3.1 and
/// §11.3.5 allow the key and the version once, and the server refused the
/// request with 400. Other extra headers go out as given.
#[test]
fn extra_headers_do_not_repeat_the_handshakes_own() {
    let app = Application::builder()
        .websocket(r"/echo", |_req| Echo)
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    watchdog(Duration::from_secs(20));
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            headers: vec![
                (
                    "Sec-WebSocket-Key".into(),
                    "AAAAAAAAAAAAAAAAAAAAAA==".into(),
                ),
                ("sec-websocket-version".into(), "8".into()),
                ("Upgrade".into(), "h2c".into()),
                ("Connection".into(), "keep-alive".into()),
                ("X-Kept".into(), "1".into()),
            ],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .map_err(|e| format!("{e} (status {:?})", e.status()))?;
        let req = conn.request().expect("request");
        let count = |name: &str| {
            req.headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count()
        };
        for name in [
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
            "Upgrade",
            "Connection",
            "X-Kept",
        ] {
            assert_eq!(count(name), 1, "{name}");
        }
        assert_eq!(req.header("Sec-WebSocket-Version"), Some("13"));
        assert_eq!(req.header("Upgrade"), Some("websocket"));
        conn.write_message("hi").expect("open");
        let echoed = conn.read_message().await;
        conn.close(None, "");
        Ok::<_, String>(echoed.and_then(|m| m.as_text().map(str::to_owned)))
    });
    assert_eq!(res, Ok(Some("hi".to_owned())));
}

/// Subprotocols offered as a `Sec-WebSocket-Protocol` among the extra
/// headers (Tornado's `HTTPRequest(headers=...)` way) are the offer: the
/// server's choice among them is accepted (it failed the handshake as
/// unrequested, as only `subprotocols` counted), and the header goes out
/// once. With `subprotocols` too, those win and the header is dropped, as
/// Tornado's `subprotocols` overwrites it.
#[test]
fn a_subprotocol_header_among_the_extra_headers_is_the_offer() {
    let addr = server();
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            headers: vec![("sec-websocket-protocol".into(), "superchat, chat".into())],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .map_err(|e| e.to_string())?;
        let req = conn.request().expect("request");
        let offers: Vec<String> = req
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert_eq!(offers, ["superchat, chat"]);
        let chosen = conn.selected_subprotocol();
        conn.close(None, "");

        let opts = ConnectOptions {
            subprotocols: vec!["chat".into()],
            headers: vec![("Sec-WebSocket-Protocol".into(), "superchat".into())],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .map_err(|e| e.to_string())?;
        let req = conn.request().expect("request");
        let offers: Vec<String> = req
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert_eq!(offers, ["chat"]);
        conn.close(None, "");
        Ok::<_, String>(chosen)
    });
    assert_eq!(res, Ok(Some("chat".to_owned())));
}

/// With `compression_options`, a `Sec-WebSocket-Extensions` among the
/// extra headers is dropped: the handshake's own offer goes out once (it
/// went out beside the header's, two offers), as Tornado's offer
/// overwrites the header.
#[test]
fn an_extensions_header_gives_way_to_compression_options() {
    let addr = server();
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            compression_options: Some(CompressionOptions::default()),
            headers: vec![(
                "Sec-WebSocket-Extensions".into(),
                "permessage-deflate; server_no_context_takeover".into(),
            )],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .map_err(|e| e.to_string())?;
        let req = conn.request().expect("request");
        let offers: Vec<String> = req
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        conn.close(None, "");
        Ok::<_, String>(offers)
    });
    let offers = res.expect("connects");
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert!(
        !offers[0].contains("server_no_context_takeover"),
        "{offers:?}"
    );
}

/// `ws://user:password@host/` connects with the user info as Basic
/// credentials, as Tornado's client does (it was refused as an invalid
/// URL): `%XX` escapes decoded, the host after the last `@`, the `Host`
/// header without the user info, an `Authorization` among the extra
/// headers replaced (Tornado's URL credentials overwrite it too).
#[test]
fn user_info_in_the_url_is_sent_as_basic_credentials() {
    let (tx, rx) = mpsc::channel();
    let addr = after_head(move |mut s, head| {
        let _ = s.write_all(switching_protocols(&key_of(&head)).as_bytes());
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
    });
    watchdog(Duration::from_secs(10));
    let url = format!("ws://us%20er:p%40ss:w@rd@{addr}/path");
    let parsed = WsUrl::parse(&url).expect("parses");
    assert_eq!(parsed.host, "127.0.0.1");
    assert_eq!(parsed.host_header, addr.to_string());
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            headers: vec![("authorization".into(), "Bearer other".into())],
            ..ConnectOptions::default()
        };
        websocket_connect_opts(&url, opts).await.map(|_| ())
    });
    assert!(res.is_ok(), "{res:?}");
    let head = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("request head");
    let auth: Vec<&str> = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .collect();
    // base64("us er:p@ss:w@rd")
    assert_eq!(
        auth,
        ["Authorization: Basic dXMgZXI6cEBzczp3QHJk"],
        "{head}"
    );
    assert!(head.contains(&format!("\r\nHost: {addr}\r\n")), "{head}");
    assert!(head.starts_with("GET /path HTTP/1.1\r\n"), "{head}");
    // The password stays out of errors and of `Debug`.
    let err = WsUrl::parse("ws://user:secret@host:port/").expect_err("bad port");
    assert!(!err.to_string().contains("secret"), "{err}");
    let shown = format!("{:?}", WsUrl::parse("ws://user:secret@host/").unwrap());
    assert!(
        shown.contains("user:***") && !shown.contains("secret"),
        "{shown}"
    );
}

/// Extra headers are sent as lines a server reads: a name is sent without
/// the whitespace around it (led by a space, the line folded into the
/// previous header and the server refused the request with 400), and a
/// header whose name is not a token or whose value has a control character
/// is dropped rather than sent; a tab in a value is kept.
#[test]
fn extra_headers_that_no_server_would_read_are_dropped() {
    let app = Application::builder()
        .websocket(r"/echo", |_req| Echo)
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    watchdog(Duration::from_secs(20));
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            headers: vec![
                (" X-Spaced ".into(), "ok".into()),
                ("X-Bad Name".into(), "1".into()),
                ("X-Colon:".into(), "1".into()),
                ("".into(), "1".into()),
                ("X-Nul".into(), "a\0b".into()),
                ("X-Tab".into(), "a\tb".into()),
            ],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo"), opts)
            .await
            .map_err(|e| format!("{e} (status {:?})", e.status()))?;
        let req = conn.request().expect("request");
        let extra: Vec<(String, String)> = req
            .headers()
            .filter(|(n, _)| n.starts_with("X-"))
            .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        conn.close(None, "");
        Ok::<_, String>(extra)
    });
    let want = [("X-Spaced", "ok"), ("X-Tab", "a\tb")].map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(res, Ok(want.to_vec()));
}

/// The upgrade request stays readable after the server closed the
/// connection (Tornado's `WebSocketClientConnection.request` does): path,
/// query and headers as sent.
#[test]
fn the_request_outlives_the_connection() {
    let addr = server();
    let res = IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            headers: vec![("X-Trace".into(), "t-42".into())],
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{addr}/echo?room=7"), opts)
            .await
            .map_err(|e| e.to_string())?;
        // Open (the echo server closes only when asked): the connection's own.
        conn.write_message("hi").map_err(|e| e.to_string())?;
        let first = conn
            .read_message()
            .await
            .map(|m| m.as_text().map(str::to_owned));
        let open = conn.request().ok_or("no request while open")?;
        let _ = conn.write_message("close me");
        let end = conn.read_message().await;
        // The server's Close came and the client's side is finished.
        let closed = (conn.is_closed(), conn.close_code(), end.is_none());
        let after = conn.request().ok_or("no request after the close")?;
        Ok::<_, String>((open, first, closed, after))
    });
    let (open, first, closed, after) = res.expect("connect");
    assert_eq!(first, Some(Some("hi".to_owned())));
    assert_eq!(closed, (true, Some(4000), true));
    for req in [&open, &after] {
        assert_eq!((req.path(), req.query()), ("/echo", "room=7"));
        assert_eq!(req.header("X-Trace"), Some("t-42"));
        assert_eq!(req.header("Host"), Some(addr.to_string().as_str()));
        assert_eq!(req.peer(), Some(addr));
    }
}

/// The third (maximum) field of `/proc/sys/net/ipv4/{name}`, in bytes.
fn tcp_mem_max(name: &str) -> usize {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(6 << 20)
}

/// Numbered 64 KiB binary frames a raw server floods the client with.
const FLOOD_FRAME: usize = 64 * 1024;

/// Kernel socket buffers on both ends, plus the client's unread queue and
/// one read batch, with room to spare: what a client that stops reading
/// may still take.
fn flood_bound() -> usize {
    tcp_mem_max("tcp_rmem") + tcp_mem_max("tcp_wmem") + (8 << 20)
}

/// Writes numbered frames to `s` until a write stalls for 500 ms (the
/// client stopped reading) or `cap` bytes went. Returns the bytes written,
/// the number of frames begun, and the unsent rest of the last one (to
/// write before anything else).
fn flood_until_stalled(s: &mut std::net::TcpStream, cap: usize) -> (usize, u64, Vec<u8>) {
    let frame = |seq: u64| {
        let mut f = vec![0x82u8, 127];
        f.extend_from_slice(&(FLOOD_FRAME as u64).to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.resize(10 + FLOOD_FRAME, seq as u8);
        f
    };
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut seq, mut pushed, mut off) = (0u64, 0usize, 0usize);
    let mut cur = frame(0);
    while pushed < cap {
        match s.write(&cur[off..]) {
            Ok(n) => {
                pushed += n;
                off += n;
                if off == cur.len() {
                    seq += 1;
                    cur = frame(seq);
                    off = 0;
                }
            }
            Err(_) => break,
        }
    }
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    if off == 0 {
        return (pushed, seq, Vec::new());
    }
    (pushed, seq + 1, cur.split_off(off))
}

/// A server that sends faster than the application calls `read_message`
/// is throttled by TCP: the client stops reading once
/// `READ_QUEUE_HIGH_WATER` bytes wait unread, instead of queueing all of
/// it (it queued over 1 GiB in 3 s before). Once the application reads,
/// every message arrives, once and in order, then the server's Close.
#[test]
fn unread_messages_are_bounded_and_then_all_delivered() {
    let bound = flood_bound();
    let (pushed_tx, pushed_rx) = mpsc::channel();
    let (addr, server) = raw_ws_server(move |mut s| {
        let (pushed, frames, rest) = flood_until_stalled(&mut s, 4 * bound);
        pushed_tx.send(pushed).unwrap();
        s.write_all(&rest).unwrap();
        s.write_all(&[0x88, 2, 0x03, 0xe8]).unwrap();
        // The client's echo (the test ends once the Close is read).
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        frames
    });
    watchdog(Duration::from_secs(30));
    let (pushed, got) = IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        let pushed = wait_for(&pushed_rx, Duration::from_secs(20))
            .await
            .expect("the server never reported");
        let mut got = 0u64;
        while let Some(m) = conn.read_message().await {
            let Message::Binary(b) = m else {
                panic!("not binary")
            };
            assert_eq!(b.len(), FLOOD_FRAME);
            assert_eq!(b[..8], got.to_be_bytes(), "message {got} out of order");
            got += 1;
        }
        assert_eq!(conn.close_code(), Some(1000));
        (pushed, got)
    });
    assert!(
        pushed <= bound,
        "the client took {pushed} bytes it was not asked for (bound {bound})"
    );
    assert_eq!(got, server.join().expect("server"), "messages lost");
}

/// Dropping a connection whose reading is held (unread messages over the
/// mark) still closes it promptly: its unread messages are discarded and
/// reading resumes, so the server's Close behind them is seen, rather
/// than the close waiting out the close timeout.
#[test]
fn dropping_a_held_connection_discards_and_closes_promptly() {
    let (stalled_tx, stalled_rx) = mpsc::channel();
    let (addr, server) = raw_ws_server(move |mut s| {
        let (_, _, rest) = flood_until_stalled(&mut s, 4 * flood_bound());
        stalled_tx.send(()).unwrap();
        // The client's Close: masked, code 1000.
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut close = [0u8; 8];
        s.read_exact(&mut close).expect("the client's close");
        assert_eq!(close[..2], [0x88, 0x82], "{close:?}");
        let code = [close[6] ^ close[2], close[7] ^ close[3]];
        assert_eq!(u16::from_be_bytes(code), 1000);
        // Our Close, behind all the client has not read yet, then FIN.
        let t = Instant::now();
        s.write_all(&rest).expect("the rest of the last frame");
        s.write_all(&[0x88, 2, 0x03, 0xe8]).expect("close echo");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        t.elapsed()
    });
    watchdog(Duration::from_secs(30));
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        wait_for(&stalled_rx, Duration::from_secs(20))
            .await
            .expect("the server never stalled");
        drop(conn);
        // Run the loop while the close completes (the close timeout is 5 s).
        cyclone::ioloop::sleep(Duration::from_secs(3)).await;
    });
    let took = server.join().expect("server");
    assert!(
        took < Duration::from_secs(2),
        "the client took {took:?} to finish closing"
    );
}

/// A pong that waits unread behind messages the application has not taken
/// yet is not the server's fault: while reading is held, the keep-alive
/// ping does not time out, and once the application reads, everything
/// arrives and the connection ends with the server's Close, not with a
/// ping timeout.
#[test]
fn holding_unread_messages_does_not_time_out_the_keepalive() {
    let bound = flood_bound();
    let (addr, server) = raw_ws_server(move |mut s| {
        let (_, frames, rest) = flood_until_stalled(&mut s, 4 * bound);
        // Blocks until the client reads again, several ping intervals on.
        s.write_all(&rest).unwrap();
        // Now answer the client's pings (masked, empty) for a while: the
        // pongs queue behind everything it has not read yet.
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let until = Instant::now() + Duration::from_millis(1000);
        let mut ping = [0u8; 6];
        while Instant::now() < until {
            match s.read_exact(&mut ping) {
                Ok(()) => {
                    assert_eq!(ping[..2], [0x89, 0x80], "an empty ping");
                    s.write_all(&[0x8a, 0]).unwrap();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
        s.write_all(&[0x88, 2, 0x03, 0xe8]).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut after = Vec::new();
        let _ = s.read_to_end(&mut after);
        frames
    });
    watchdog(Duration::from_secs(30));
    let opts = ConnectOptions {
        ping_interval: Some(Duration::from_millis(300)),
        ..ConnectOptions::default()
    };
    let (got, code) = IOLoop::current().run_sync(async move {
        let conn = websocket_connect_opts(&format!("ws://{addr}/"), opts)
            .await
            .expect("connect");
        // Not reading while the server floods, stalls and waits.
        cyclone::ioloop::sleep(Duration::from_millis(2500)).await;
        let mut got = 0u64;
        while conn.read_message().await.is_some() {
            got += 1;
        }
        (got, conn.close_code())
    });
    let frames = server.join().expect("server");
    assert_eq!((got, code), (frames, Some(1000)));
}

/// A 101 cut into two writes at every byte (within `\r\n\r\n` too, and
/// within the text frame glued after it), the second 5 ms after the first
/// so that the client reads them apart: every connection is accepted and
/// its frame delivered (the client resumes its search for the head's end
/// across reads instead of re-parsing everything it has).
#[test]
fn a_101_cut_at_every_byte_is_accepted_with_its_frame() {
    const FRAME: [u8; 4] = [0x81, 2, b'h', b'i'];
    // Keys are 24 base64 characters: the 101's length does not vary.
    let total = switching_protocols(&"k".repeat(24)).len() + FRAME.len();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        for cut in 1..total {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).expect("request head");
                head.push(b[0]);
            }
            let mut out = switching_protocols(&key_of(&head)).into_bytes();
            out.extend_from_slice(&FRAME);
            assert_eq!(out.len(), total);
            s.write_all(&out[..cut]).expect("write");
            std::thread::sleep(Duration::from_millis(5));
            s.write_all(&out[cut..]).expect("write");
            // Until the client's Close (it drops the connection) or EOF.
            let _ = s.read(&mut [0u8; 64]);
        }
    });
    watchdog(Duration::from_secs(30));
    IOLoop::current().run_sync(async move {
        for cut in 1..total {
            let conn = websocket_connect(&format!("ws://{addr}/"))
                .await
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let got = conn.read_message().await;
            assert_eq!(got, Some(Message::from("hi")), "cut at {cut}");
        }
    });
    server.join().expect("server");
}

/// `closed_by` says who closed: the server (its Close, with its code) or
/// the client (`close`, answered by the server); `None` while open.
#[test]
fn closed_by_says_who_closed() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        assert_eq!(conn.closed_by(), None);
        conn.write_message("close me").expect("open");
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.closed_by(), Some(CloseReason::Peer));
        assert_eq!(conn.close_code(), Some(4000));

        let conn = websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        conn.close(Some(4001), "client done");
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.closed_by(), Some(CloseReason::Local));
        // The server echoed the code.
        assert_eq!(conn.close_code(), Some(4001));
    });
}

/// `closed_by` for the closes no Close frame explains: a server that
/// never answers pings (`PingTimeout`), one that drops the TCP connection
/// (`Abnormal`); neither has a close code.
#[test]
fn closed_by_tells_a_ping_timeout_from_a_dropped_connection() {
    // Reads (and ignores) what the client sends until it hangs up.
    let (silent, silent_done) = raw_ws_server(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 256];
        while matches!(s.read(&mut b), Ok(n) if n > 0) {}
    });
    let (dropper, dropper_done) = raw_ws_server(drop);
    watchdog(Duration::from_secs(20));
    IOLoop::current().run_sync(async move {
        let opts = ConnectOptions {
            ping_interval: Some(Duration::from_millis(100)),
            ping_timeout: Some(Duration::from_millis(100)),
            ..ConnectOptions::default()
        };
        let conn = websocket_connect_opts(&format!("ws://{silent}/"), opts)
            .await
            .expect("connect");
        let start = Instant::now();
        assert_eq!(conn.read_message().await, None);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(conn.closed_by(), Some(CloseReason::PingTimeout));
        assert_eq!(conn.close_code(), None);

        let conn = websocket_connect(&format!("ws://{dropper}/"))
            .await
            .expect("connect");
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.closed_by(), Some(CloseReason::Abnormal));
        assert_eq!(conn.close_code(), None);
    });
    silent_done.join().expect("silent server");
    dropper_done.join().expect("dropping server");
}

/// `terminate` drops the connection with no Close frame, and what was
/// queued in the same tick with it: the server reads nothing more and
/// sees the end; `read_message` yields `None`, `closed_by` is
/// `Terminated`, with no close code.
#[test]
fn terminate_drops_the_client_connection_without_a_close() {
    // What the server read before the connection ended, and whether it
    // ended (EOF or reset) rather than timing out.
    let (addr, server) = raw_ws_server(|mut s| {
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        loop {
            match s.read(&mut b) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
                Err(_) => return (got, false),
            }
        }
    });
    watchdog(Duration::from_secs(20));
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&format!("ws://{addr}/"))
            .await
            .expect("connect");
        conn.write_message("never sent").expect("open");
        conn.terminate();
        assert_eq!(conn.read_message().await, None);
        assert_eq!(conn.closed_by(), Some(CloseReason::Terminated));
        assert_eq!(conn.close_code(), None);
        assert!(conn.write_message("late").is_err());
    });
    let (got, ended) = server.join().expect("server");
    assert!(got.is_empty(), "the server read {} bytes", got.len());
    assert!(ended, "the connection was not dropped");
}

/// RFC 6455 §5.5: a ping's payload is at most 125 bytes. The client's
/// `ping` (coroutine and callback style) refuses 126 with
/// `PingError::TooLong` and sends nothing (it used to send the payload
/// cut to 125); 125 bytes go out intact, and the pong brings them back.
#[test]
fn client_ping_over_125_bytes_is_refused_and_125_sent_intact() {
    type Log = Rc<RefCell<Vec<String>>>;
    struct Pinged(Log);
    impl WebSocketHandler for Pinged {
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, msg: Message<'_>) {
            let text = msg.as_text().unwrap_or("?").to_owned();
            self.0.borrow_mut().push(format!("message {text}"));
        }
        fn on_ping(&mut self, _ws: &mut WebSocket<'_>, data: &[u8]) {
            let data = String::from_utf8_lossy(data);
            self.0.borrow_mut().push(format!("ping {data}"));
        }
    }
    let log: Log = Rc::default();
    let l2 = log.clone();
    let app = Application::builder()
        .websocket("/pinged", move |_| Pinged(l2.clone()))
        .build();
    let addr = app.listen_on("127.0.0.1:0").expect("listen");
    watchdog(Duration::from_secs(20));
    let url = format!("ws://{addr}/pinged");
    let long = [b'L'; 126];
    let fits = [b'P'; 125];
    let fits_text = "P".repeat(125);

    let l3 = log.clone();
    let u2 = url.clone();
    IOLoop::current().run_sync(async move {
        let conn = websocket_connect(&u2).await.expect("connect");
        assert_eq!(conn.ping(&long), Err(PingError::TooLong { len: 126 }));
        assert_eq!(conn.ping(&fits), Ok(()));
        conn.write_message("done").expect("open");
        let deadline = Instant::now() + Duration::from_secs(5);
        while l3.borrow().len() < 2 && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(10)).await;
        }
    });
    assert_eq!(
        *log.borrow(),
        vec![format!("ping {fits_text}"), "message done".to_owned()]
    );

    // Callback style: the same refusal from `WebSocket::ping`, and the
    // pong's payload.
    struct Pinger(Rc<RefCell<Vec<Result<(), PingError>>>>, Log);
    impl WebSocketHandler for Pinger {
        fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
            self.0.borrow_mut().push(ws.ping(&[b'L'; 126]));
            self.0.borrow_mut().push(ws.ping(&[b'P'; 125]));
        }
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
        fn on_pong(&mut self, ws: &mut WebSocket<'_>, data: &[u8]) {
            let data = String::from_utf8_lossy(data);
            self.1.borrow_mut().push(format!("pong {data}"));
            ws.io_loop().stop();
        }
    }
    let results: Rc<RefCell<Vec<Result<(), PingError>>>> = Rc::default();
    let pongs: Log = Rc::default();
    log.borrow_mut().clear();
    websocket_connect_with(
        &url,
        ConnectOptions::default(),
        Pinger(results.clone(), pongs.clone()),
    )
    .expect("connect");
    IOLoop::current().start();
    assert_eq!(
        *results.borrow(),
        vec![Err(PingError::TooLong { len: 126 }), Ok(())]
    );
    assert_eq!(*pongs.borrow(), vec![format!("pong {fits_text}")]);
    assert_eq!(*log.borrow(), vec![format!("ping {fits_text}")]);
}

/// The callback-style client has only a `ConnId`: `close_connection`
/// closes it (Tornado's `conn.close()`), after which the callback gets
/// `None`. `/greet` never closes by itself.
#[test]
fn callback_client_is_closed_by_id() {
    let addr = server();
    let got: Rc<RefCell<Vec<Option<String>>>> = Rc::new(RefCell::new(Vec::new()));
    let id = Rc::new(std::cell::Cell::new(None));
    let (g, i) = (got.clone(), id.clone());
    let conn = websocket_connect_callback(
        &format!("ws://{addr}/greet"),
        ConnectOptions::default(),
        move |m| match m {
            Some(m) => {
                g.borrow_mut()
                    .push(Some(m.as_text().unwrap_or("").to_owned()));
                assert!(close_connection(i.get().unwrap(), Some(1000), "done"));
            }
            None => {
                g.borrow_mut().push(None);
                IOLoop::current().stop();
            }
        },
    )
    .expect("connect");
    id.set(Some(conn));
    let watchdog =
        IOLoop::current().call_later(Duration::from_secs(10), || IOLoop::current().stop());
    IOLoop::current().start();
    IOLoop::current().remove_timeout(watchdog);
    assert_eq!(*got.borrow(), vec![Some("hello".to_owned()), None]);
}

/// `websocket_connect_callback` returns the id at once, before the
/// handshake: `close_connection` with it then (a user cancelling, a
/// timeout shorter than the handshake) must not leave the connection to
/// open anyway. The callback gets `None` and nothing else; `/echo` never
/// sends or closes by itself.
#[test]
fn callback_client_closed_by_id_while_connecting_does_not_open() {
    let addr = server();
    let (got, record) = recorder();
    let id = websocket_connect_callback(
        &format!("ws://{addr}/echo"),
        ConnectOptions::default(),
        record,
    )
    .expect("connect");
    assert!(close_connection(id, Some(1000), "never mind"));
    // Had it opened, this would come back as an echo.
    let lp = IOLoop::current();
    let opened = Rc::new(std::cell::Cell::new(false));
    let o = opened.clone();
    lp.call_later(Duration::from_millis(300), move || {
        o.set(write_to(id, "still open?"));
    });
    let watchdog = lp.call_later(Duration::from_secs(2), || IOLoop::current().stop());
    lp.start();
    lp.remove_timeout(watchdog);
    assert!(
        !opened.get(),
        "the connection opened after close_connection"
    );
    assert_eq!(*got.borrow(), vec![None]);
}

/// Tornado's `websocket_connect(url, callback=...)` and
/// `read_message(callback)`: two reads asked for before anything arrived
/// each get their own message, in the order asked, and reads after the
/// close get `None`.
#[test]
fn callback_style_connect_and_reads_in_order() {
    let addr = server();
    type Got = Rc<RefCell<Vec<Option<String>>>>;
    let got: Got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let record = |g: &Got, tag: &'static str| {
        let g = g.clone();
        move |m: Option<Message<'static>>| {
            g.borrow_mut()
                .push(m.map(|m| format!("{tag}:{}", m.as_text().unwrap_or("?"))));
        }
    };
    cyclone::websocket::websocket_connect_then(
        &format!("ws://{addr}/echo"),
        ConnectOptions::default(),
        move |res| {
            let conn = res.expect("connect");
            conn.read_message_then(record(&g, "first"));
            conn.read_message_then(record(&g, "second"));
            conn.write_message("a").expect("open");
            conn.write_message("b").expect("open");
            // The server closes with 4000 on this one instead of echoing
            // it, so the third read and the one after it get `None`.
            conn.write_message("close me").expect("open");
            let (g, c) = (g.clone(), conn.clone());
            conn.read_message_then(move |m| {
                g.borrow_mut()
                    .push(m.map(|m| m.as_text().unwrap_or("?").to_owned()));
                let g = g.clone();
                c.read_message_then(move |m| {
                    assert!(m.is_none(), "after the close: {m:?}");
                    g.borrow_mut().push(None);
                    IOLoop::current().stop();
                });
            });
        },
    );
    IOLoop::current().start();
    assert_eq!(
        *got.borrow(),
        vec![
            Some("first:a".to_owned()),
            Some("second:b".to_owned()),
            None,
            None
        ]
    );
}

/// `read_message_then` asked while the loop is not running (after
/// `run_sync` returned, before `start`): the callback waits for the loop's
/// next run, then gets the message, or `None` when the connection closed
/// meanwhile; as Tornado's `read_message(callback)` with a stopped loop.
#[test]
fn read_message_then_while_the_loop_is_stopped_is_answered_once_it_runs() {
    let addr = server();
    let lp = IOLoop::current();
    let conn = lp.run_sync(async move {
        websocket_connect(&format!("ws://{addr}/echo"))
            .await
            .expect("connect")
    });
    let got: Received = Rc::default();
    let ask = |conn: &cyclone::websocket::WebSocketClientConnection| {
        let g = got.clone();
        conn.read_message_then(move |m| {
            g.borrow_mut()
                .push(m.map(|m| m.as_text().unwrap_or("?").to_owned()));
            IOLoop::current().stop();
        });
    };
    conn.write_message("a").expect("open");
    ask(&conn);
    assert!(got.borrow().is_empty(), "answered before the loop ran");
    lp.start();
    assert_eq!(*got.borrow(), vec![Some("a".to_owned())]);
    // The server closes with 4000 on this one.
    conn.write_message("close me").expect("open");
    assert!(lp.run_sync(conn.read_message()).is_none());
    ask(&conn);
    assert_eq!(got.borrow().len(), 1, "answered before the loop ran");
    lp.start();
    assert_eq!(*got.borrow(), vec![Some("a".to_owned()), None]);
}

/// The callback of `websocket_connect_then` gets the error of a bad URL
/// and of a refused connection as a value.
#[test]
fn callback_style_connect_reports_errors() {
    watchdog(Duration::from_secs(30));
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let errs: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    for url in [
        "http://example.invalid/".to_owned(),
        format!("ws://{refused}/"),
    ] {
        let e = errs.clone();
        cyclone::websocket::websocket_connect_then(&url, ConnectOptions::default(), move |r| {
            let err = r.expect_err("cannot connect");
            e.borrow_mut().push(format!("{err:?}"));
            if e.borrow().len() == 2 {
                IOLoop::current().stop();
            }
        });
    }
    IOLoop::current().start();
    let errs = errs.borrow();
    assert!(errs[0].starts_with("InvalidUrl("), "{errs:?}");
    assert!(errs[1].starts_with("Io("), "{errs:?}");
}

/// Two tasks awaiting `read_message` at once: each is woken for its own
/// message (one waker slot used to be overwritten, so the first never
/// woke), and a waiting read that is dropped gives its place to the next.
#[test]
fn concurrent_readers_each_get_a_message_and_a_dropped_one_yields() {
    let addr = server();
    IOLoop::current().run_sync(async move {
        let conn = Rc::new(
            websocket_connect(&format!("ws://{addr}/echo"))
                .await
                .expect("connect"),
        );
        // A read polled once (so it holds the front place), then dropped.
        {
            let mut early = Box::pin(conn.read_message());
            let w = Waker::noop();
            assert!(early
                .as_mut()
                .poll(&mut Context::from_waker(w))
                .is_pending());
        }
        let got: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
        for _ in 0..2 {
            let (c, g) = (conn.clone(), got.clone());
            cyclone::ioloop::spawn(async move {
                let m = c.read_message().await.expect("a message");
                g.borrow_mut().push(m.as_text().unwrap().to_owned());
            });
        }
        // Let both tasks wait before anything is sent.
        cyclone::ioloop::sleep(Duration::from_millis(20)).await;
        conn.write_message("x").expect("open");
        conn.write_message("y").expect("open");
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.borrow().len() < 2 && Instant::now() < deadline {
            cyclone::ioloop::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*got.borrow(), vec!["x".to_owned(), "y".to_owned()]);
    });
}

/// The cancel is typed: `websocket_connect_with_result`'s callback gets
/// `ConnectError::Cancelled`, once, and the handler never opens.
#[test]
fn close_connection_while_connecting_is_reported_as_cancelled() {
    let addr = server();
    struct NeverOpens;
    impl WebSocketHandler for NeverOpens {
        fn open(&mut self, _ws: &mut WebSocket<'_>, _args: &[&str]) {
            panic!("opened after close_connection");
        }
        fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
    }
    let results: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let r = results.clone();
    let id = cyclone::websocket::websocket_connect_with_result(
        &format!("ws://{addr}/echo"),
        ConnectOptions::default(),
        NeverOpens,
        move |res| r.borrow_mut().push(format!("{res:?}")),
    )
    .expect("connect");
    assert!(close_connection(id, None, ""));
    assert!(!close_connection(id, None, ""), "the id is gone");
    let lp = IOLoop::current();
    let stop = lp.call_later(Duration::from_millis(300), || IOLoop::current().stop());
    lp.start();
    lp.remove_timeout(stop);
    assert_eq!(*results.borrow(), vec!["Err(Cancelled)".to_owned()]);
}
