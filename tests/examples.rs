//! Runs each example as a user would: `--help`, then start it on a free
//! port, check it serves, Ctrl-C (SIGINT) and expect a clean exit 0.
//!
//! The examples are built here with `cargo build --example NAME` (cargo
//! gives tests no `CARGO_BIN_EXE_*` for examples).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// One `cargo build` at a time: parallel builds would only wait on cargo's lock.
static BUILD: Mutex<()> = Mutex::new(());

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir)
            }
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// Builds example `name` (debug profile) and returns its path.
fn build_example(name: &str) -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let status = Command::new(env!("CARGO"))
        .args(["build", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name}: {status}");
    let exe = target_dir()
        .join("debug")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(exe.is_file(), "{} was not built", exe.display());
    exe
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn wait_for_port(child: &mut Child, port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the example exited before listening on {port}: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nothing listening on 127.0.0.1:{port} after {within:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the example did not exit within {within:?} of SIGINT");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A raw HTTP/1.1 `GET path`; returns (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_with(port, path, "")
}

/// `GET path` with `headers` (each line ending in `\r\n`) added.
fn http_get_with(port: u16, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_string())
}

fn check_help(exe: &PathBuf) {
    let out = Command::new(exe)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success(), "--help exited with {}", out.status);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("--port"),
        "--help does not mention --port:\n{text}"
    );
}

/// `--help`, then start on a free port, run `check`, SIGINT, expect exit 0.
fn run_example(name: &str, check: impl FnOnce(u16)) {
    run_example_with(name, &[], check);
}

/// [`run_example`] with `extra` flags after `--port`.
fn run_example_with(name: &str, extra: &[&str], check: impl FnOnce(u16)) {
    let exe = build_example(name);
    check_help(&exe);

    let port = free_port();
    let mut child = Command::new(&exe)
        .args(["--port", &port.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the example");
    wait_for_port(&mut child, port, Duration::from_secs(10));
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(port))) {
        // The example must not outlive a failed check.
        let _ = child.kill();
        let _ = child.wait();
        std::panic::resume_unwind(panic);
    }

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill -INT");
    assert!(kill.success(), "kill -INT failed: {kill}");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "{name} exited with {status} after SIGINT"
    );
}

/// README: "every example serves it on `/metrics`".
fn assert_metrics(port: u16) {
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, 200, "GET /metrics answered {status}");
    assert!(
        body.contains("cyclone_websocket_handshakes_total"),
        "no counters in /metrics:\n{body}"
    );
}

#[test]
fn echo_server_help_start_stop() {
    run_example("echo_server", assert_metrics);
}

#[test]
fn http_hello_help_start_serve_stop() {
    run_example("http_hello", |port| {
        let (status, body) = http_get(port, "/");
        assert_eq!((status, body.as_str()), (200, "Hello, world"));
        // Tornado's signed-cookie example; the round trip is in
        // scripts/interop, against Tornado's own functions.
        let (status, body) = http_get(port, "/cookie");
        assert_eq!(
            (status, body.as_str()),
            (200, "Your cookie was not set yet!")
        );
        assert_metrics(port);
    });
}

/// A ping interval too large for a `Duration` is a usage error (exit 2),
/// not a panic.
#[test]
fn hello_refuses_an_unrepresentable_ping_interval() {
    let exe = build_example("hello");
    for bad in ["1e20", "0", "-1", "nan"] {
        let out = Command::new(&exe)
            .args(["--port", "0", "--ping-interval", bad])
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .output()
            .expect("run hello");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--ping-interval {bad}: {}\n{err}",
            out.status
        );
        assert!(err.contains("--ping-interval"), "{err}");
    }
}

#[test]
fn hello_help_start_serve_stop() {
    run_example("hello", |port| {
        let (status, body) = http_get(port, "/");
        assert_eq!(status, 200, "GET / answered {status}");
        assert!(body.contains(r#"id="connect""#), "no #connect in the page");
        assert!(
            body.contains(r#"value="Hello, world""#),
            "no default message"
        );
        assert_metrics(port);
    });
}

/// Opens a WebSocket on `path` with `Origin: origin` and says "hi":
/// the handshake's status, and the answer when it was a 101.
fn say_hi(port: u16, path: &str, origin: &str) -> (u16, Option<String>) {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match tungstenite::client(req, stream) {
        Ok((mut ws, resp)) => {
            ws.send(tungstenite::Message::text("hi")).unwrap();
            let answer = ws.read().unwrap().into_text().unwrap().to_string();
            let _ = ws.close(None);
            (resp.status().as_u16(), Some(answer))
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            (resp.status().as_u16(), None)
        }
        Err(e) => panic!("handshake on {path}: {e}"),
    }
}

/// Seed 004's page connects to `/socket/` and overrides `check_origin` to
/// accept any origin (its page may be opened from a file: `Origin: null`).
/// `hello` serves that path, and `--any-origin` is that override; without
/// it a foreign origin gets 403, as Tornado's default.
#[test]
fn hello_serves_seed_004s_socket_with_any_origin() {
    run_example_with("hello", &["--any-origin"], |port| {
        for path in ["/socket/", "/websocket"] {
            assert_eq!(
                say_hi(port, path, "null"),
                (101, Some("You said: hi".to_owned())),
                "{path}"
            );
        }
    });
    run_example("hello", |port| {
        assert_eq!(say_hi(port, "/socket/", "null"), (403, None));
        let own = format!("http://127.0.0.1:{port}");
        assert_eq!(
            say_hi(port, "/socket/", &own),
            (101, Some("You said: hi".to_owned()))
        );
    });
}

#[test]
fn chat_help_start_serve_stop() {
    run_example("chat", |port| {
        let (status, body) = http_get(port, "/");
        assert_eq!(status, 200, "GET / answered {status}");
        assert!(
            body.contains(r#"id="messages""#),
            "no #messages in the page"
        );
        assert_metrics(port);
    });
}

/// `chat --robot`: seed 003's robot, a blocking call on the loop's thread
/// pool awaited in the handler's future. While it thinks (1 s a message),
/// the room goes on: another client's message reaches the first before
/// its robot answer. A sender's next message waits for the answer to the
/// one before (Tornado's `async def on_message`), so it sees each message
/// followed by its answer; the answers go to the sender only.
#[test]
fn chat_robot_answers_in_order_while_the_room_goes_on() {
    run_example_with("chat", &["--robot", "--robot-delay", "1000"], |port| {
        let (mut a, mut b) = (chat_client(port), chat_client(port));
        let pair = |t: &str, x: &str| (t.to_owned(), x.to_owned());
        type Said = Vec<(String, String)>;
        // Adds the messages and robot answers `ws` gets to `seen` until
        // `enough(seen)`.
        let collect = |ws: &mut ChatWs, seen: &mut Said, enough: &dyn Fn(&Said) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(15);
            while !enough(seen) {
                let left = deadline.saturating_duration_since(Instant::now());
                let ev = next_event(ws, left).expect("the awaited events in time");
                let kind = ev["type"].as_str().unwrap_or_default().to_owned();
                if kind == "message" || kind == "robot" {
                    seen.push((kind, ev["text"].as_str().unwrap_or_default().to_owned()));
                }
            }
        };
        let robots =
            |n: usize| move |seen: &Said| seen.iter().filter(|(t, _)| t == "robot").count() >= n;
        for text in ["one", "two three"] {
            a.send(tungstenite::Message::text(text)).unwrap();
        }
        // b speaks once the room has a's first message, while its robot
        // thinks.
        let mut at_a = Vec::new();
        collect(&mut a, &mut at_a, &|seen: &Said| {
            seen.contains(&pair("message", "one"))
        });
        b.send(tungstenite::Message::text("hello")).unwrap();
        collect(&mut a, &mut at_a, &robots(2));
        assert_eq!(
            at_a,
            [
                pair("message", "one"),
                pair("message", "hello"),
                pair("robot", "You said 1 word: \"one\""),
                pair("message", "two three"),
                pair("robot", "You said 2 words: \"two three\""),
            ]
        );
        // b: its own answer only, also after a's second one went out.
        let mut at_b = Vec::new();
        collect(&mut b, &mut at_b, &robots(1));
        while let Some(ev) = next_event(&mut b, Duration::from_millis(1500)) {
            at_b.push((
                ev["type"].as_str().unwrap_or_default().to_owned(),
                String::new(),
            ));
        }
        let answers: Vec<_> = at_b.iter().filter(|(t, _)| t == "robot").collect();
        assert_eq!(answers, [&pair("robot", "You said 1 word: \"hello\"")]);
    });
}

/// `longpoll_chat`: the page, a poll that waits until a message is
/// posted, and SIGINT with a poll still open: the graceful shutdown ends
/// it (exit 0) and its connection closes.
#[test]
fn longpoll_chat_help_serve_poll_stop() {
    let mut held = None;
    run_example("longpoll_chat", |port| {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains(r#"id="inbox""#), "no #inbox in the page");
        let token = page
            .split("_xsrf=")
            .nth(1)
            .and_then(|t| t.split([';', '\r']).next())
            .expect("an _xsrf cookie")
            .to_string();
        let post = |path: &str, body: &str| {
            let body = format!("_xsrf={token}&{body}");
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nCookie: _xsrf={token}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        // A poll, answered by the next message.
        let mut poll = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        poll.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        poll.write_all(post("/a/message/updates", "").as_bytes())
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !http_get(port, "/a/status").1.contains(r#""waiters":1"#) {
            assert!(
                std::time::Instant::now() < deadline,
                "the poll is not counted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut new = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        new.write_all(post("/a/message/new", "body=hi").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let mut tmp = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(r#""body":"hi""#) {
            let n = poll.read(&mut tmp).expect("the poll's answer");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&tmp[..n]);
        }
        // A second poll stays open into the shutdown.
        let id = "1";
        poll.write_all(post("/a/message/updates", &format!("cursor={id}")).as_bytes())
            .unwrap();
        while !http_get(port, "/a/status").1.contains(r#""waiters":1"#) {
            assert!(
                std::time::Instant::now() < deadline,
                "the second poll is not counted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_metrics(port);
        held = Some(poll);
    });
    // The example exited 0 after SIGINT with the poll open: the poll's
    // connection is closed now, unanswered.
    let mut poll = held.expect("the poll");
    let mut rest = Vec::new();
    let _ = poll.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

/// `tls_echo`: `--help` names the openssl command; with a self-signed
/// pair made here it serves HTTPS (its page) and `wss://` echo, also to the
/// `client` example given the pair with `--ca-certs` (and refused without
/// it); SIGINT ends it.
#[cfg(feature = "tls")]
#[test]
fn tls_echo_help_start_serve_stop() {
    use cyclone::tls::rustls;
    let exe = build_example("tls_echo");
    check_help(&exe);
    let help = Command::new(&exe).arg("--help").output().expect("--help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("openssl req -x509"));
    // Without a certificate it says what is missing.
    let out = Command::new(&exe).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cert and --key are required"));

    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("cyclone-tls-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();

    let port = free_port();
    let mut child = Command::new(&exe)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start tls_echo");
    wait_for_port(&mut child, port, Duration::from_secs(10));

    let config = cyclone::tls::client_config(Some(pair.cert.pem().as_bytes())).unwrap();
    let connect = || {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // HTTPS.
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect());
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = Vec::new();
    tls.read_to_end(&mut page).unwrap();
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("cyclone over https"), "{page}");
    assert!(
        page.contains(r#"id="connect""#),
        "no #connect on the page: {page}"
    );
    // wss:// echo.
    let (mut ws, _) = tungstenite::client_tls_with_config(
        format!("wss://localhost:{port}/echo"),
        connect(),
        None,
        Some(tungstenite::Connector::Rustls(config)),
    )
    .expect("wss handshake");
    ws.send(tungstenite::Message::text("over tls")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("over tls"));
    drop(ws);

    // The `client` example: `--ca-certs` trusts the pair; one line echoed, then
    // stdin closes and it exits 0 after the close handshake.
    let client = build_example("client");
    let help = Command::new(&client)
        .arg("--help")
        .output()
        .expect("--help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--ca-certs PATH"));
    let url = format!("wss://localhost:{port}/echo");
    let run_client = |ca: Option<&PathBuf>| {
        let mut cmd = Command::new(&client);
        if let Some(ca) = ca {
            cmd.arg("--ca-certs").arg(ca);
        }
        let mut c = cmd
            .arg(&url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start client");
        let mut stdin = c.stdin.take().unwrap();
        // Without the CA the client may already have exited: ignore EPIPE.
        let _ = stdin.write_all(b"over tls from client\n");
        drop(stdin);
        let status = wait_exit(&mut c, Duration::from_secs(10));
        let (mut out, mut err) = (String::new(), String::new());
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status, out, err)
    };
    let (status, out, err) = run_client(Some(&cert));
    assert_eq!(status.code(), Some(0), "client --ca-certs: {status}; {err}");
    assert_eq!(
        out, "over tls from client\n",
        "client --ca-certs stdout; stderr: {err}"
    );
    let (status, _, err) = run_client(None);
    assert_eq!(
        status.code(),
        Some(1),
        "client without --ca-certs: {status}; {err}"
    );
    assert!(
        err.contains("certificate"),
        "client without --ca-certs: {err}"
    );

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill -INT");
    assert!(kill.success());
    let status = wait_exit(&mut child, Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(0), "tls_echo exited with {status}");
}

// ---- cluster_chat: nodes relaying through a broker ------------------------

/// A started example, with its stderr collected. Dropped without
/// [`Proc::interrupt`] (a failed assertion, a broker stopped on purpose), it
/// is killed by its PID; when the test is failing, its log is printed.
struct Proc {
    name: String,
    child: Child,
    log: std::sync::Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `exe` with `--port port` and `args`, and waits until it listens.
    fn start(exe: &PathBuf, name: &str, port: u16, args: &[&str]) -> Proc {
        let mut child = Command::new(exe)
            .args(["--port", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
        let log = std::sync::Arc::new(Mutex::new(String::new()));
        let (mut stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        wait_for_port(&mut child, port, Duration::from_secs(10));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGINT, and expect a clean exit 0 within 5 s.
    fn interrupt(mut self) {
        let kill = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill -INT");
        assert!(kill.success(), "kill -INT failed: {kill}");
        let status = wait_exit(&mut self.child, Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "{} exited with {status} after SIGINT; log:\n{}",
            self.name,
            self.log()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
    }
}

type ChatWs = tungstenite::WebSocket<TcpStream>;

/// A chat client on `port`'s `/chatsocket` (reads time out after 100 ms).
fn chat_client(port: u16) -> ChatWs {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/chatsocket")
        .into_client_request()
        .unwrap();
    let origin = format!("http://127.0.0.1:{port}");
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    tungstenite::client(req, stream)
        .expect("chatsocket handshake")
        .0
}

/// The next JSON event on `ws` within `within`, or `None`.
fn next_event(ws: &mut ChatWs, within: Duration) -> Option<serde_json::Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                return Some(serde_json::from_str(&t).unwrap_or_else(|e| panic!("{t:?}: {e}")))
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("chat client: {e}"),
        }
    }
    None
}

/// Skips events on `ws` until one that `want` accepts (within `within`).
fn wait_for(
    ws: &mut ChatWs,
    within: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    while let Some(ev) = next_event(ws, deadline.saturating_duration_since(Instant::now())) {
        if want(&ev) {
            return ev;
        }
    }
    panic!("no such event within {within:?}");
}

/// A client of the node on `port` once that node is linked to the broker: a
/// message it sent came back through the broker (which also tells its id;
/// its first event may be another client's). Returns it and its id.
fn linked_chat_client(port: u16, within: Duration) -> (ChatWs, String) {
    let deadline = Instant::now() + within;
    for n in 0.. {
        let mut ws = chat_client(port);
        let whoami = format!("whoami {port} {n}");
        ws.send(tungstenite::Message::text(whoami.clone())).unwrap();
        // Its message relayed, or refused (the join's error has no text).
        let ev = wait_for(&mut ws, Duration::from_secs(5), |ev| {
            ev["text"] == whoami.as_str()
        });
        if ev["type"] == "message" {
            let id = ev["id"].as_str().expect("a string id").to_owned();
            return (ws, id);
        }
        assert_eq!(ev["type"], "error", "{ev}");
        let _ = ws.close(None);
        assert!(
            Instant::now() < deadline,
            "node :{port} not linked to the broker within {within:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

/// Sends probes from `from` until one reaches `to` through the broker; the
/// events `to` received meanwhile, the probe last.
fn relayed_within(from: &mut ChatWs, to: &mut ChatWs, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "no message relayed within {within:?}"
        );
        let probe = format!("probe {n}");
        from.send(tungstenite::Message::text(probe.clone()))
            .unwrap();
        while let Some(ev) = next_event(to, Duration::from_millis(300)) {
            let done = ev["type"] == "message" && ev["text"] == probe.as_str();
            seen.push(ev);
            if done {
                return seen;
            }
        }
    }
    unreachable!()
}

/// The text of the next `count` message events on `ws` (other events skipped).
fn message_texts(ws: &mut ChatWs, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.len() < count {
        let ev = next_event(ws, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("only {texts:?} of {count} messages arrived"));
        if ev["type"] == "message" {
            texts.push(ev["text"].as_str().unwrap().to_owned());
        }
    }
    texts
}

/// A node, pointed at `broker_port`, on a free port.
fn cluster_node(exe: &PathBuf, name: &str, broker_port: u16) -> (Proc, u16) {
    let port = free_port();
    let broker = format!("ws://127.0.0.1:{broker_port}");
    (Proc::start(exe, name, port, &["--broker", &broker]), port)
}

#[test]
fn cluster_chat_help() {
    let exe = build_example("cluster_chat");
    check_help(&exe);
    let out = Command::new(&exe).arg("--help").output().expect("--help");
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--broker URL",
        "ws://127.0.0.1:9001",
        "/publish",
        "/broadcast",
        "cargo run --example echo_server",
        "--port 8889",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    // A broker URL that is not ws[s]:// is a usage error.
    let out = Command::new(&exe)
        .args(["--port", "0", "--broker", "http://127.0.0.1:9001"])
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run cluster_chat");
    assert_eq!(out.status.code(), Some(2), "bad --broker: {}", out.status);
}

/// Two nodes and an `echo_server` broker: a message sent on node A reaches
/// the clients of both nodes in chat's format, both see every message in
/// the same (the broker's) order, and a leave on B reaches A.
#[test]
fn cluster_chat_relays_across_nodes() {
    let (broker_exe, exe) = (build_example("echo_server"), build_example("cluster_chat"));
    let bp = free_port();
    let broker = Proc::start(&broker_exe, "broker", bp, &[]);
    let (node_a, pa) = cluster_node(&exe, "node A", bp);
    let (node_b, pb) = cluster_node(&exe, "node B", bp);

    let (status, page) = http_get(pa, "/");
    assert_eq!(status, 200, "GET / on node A answered {status}");
    assert!(page.contains(r#"id="messages""#), "not chat's page");
    assert_metrics(pb);

    let (mut a, a_id) = linked_chat_client(pa, Duration::from_secs(10));
    let (mut b, b_id) = linked_chat_client(pb, Duration::from_secs(10));
    assert_ne!(a_id, b_id, "client ids must be unique across nodes");
    // A sees B's join, through the broker, in chat's format.
    let join = serde_json::json!({"type": "join", "id": b_id});
    wait_for(&mut a, Duration::from_secs(5), |ev| *ev == join);

    a.send(tungstenite::Message::text("hello from A")).unwrap();
    let want = serde_json::json!({"type": "message", "id": a_id, "text": "hello from A"});
    for ws in [&mut b, &mut a] {
        let got = wait_for(ws, Duration::from_secs(5), |ev| {
            ev["text"] == "hello from A"
        });
        assert_eq!(got, want);
    }

    // Interleaved senders: one order, the broker's, on both nodes.
    for n in 0..5 {
        a.send(tungstenite::Message::text(format!("a{n}"))).unwrap();
        b.send(tungstenite::Message::text(format!("b{n}"))).unwrap();
    }
    let (seen_a, seen_b) = (message_texts(&mut a, 10), message_texts(&mut b, 10));
    assert_eq!(seen_a, seen_b, "the nodes saw different orders");
    for prefix in ["a", "b"] {
        let own: Vec<String> = seen_a
            .iter()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect();
        let sent: Vec<String> = (0..5).map(|n| format!("{prefix}{n}")).collect();
        assert_eq!(own, sent, "{prefix}'s messages out of order");
    }

    b.close(None).unwrap();
    let leave = serde_json::json!({"type": "leave", "id": b_id});
    wait_for(&mut a, Duration::from_secs(5), |ev| *ev == leave);

    drop(a);
    node_a.interrupt();
    node_b.interrupt();
    broker.interrupt();
}

/// The broker is down at first, comes up, is killed, comes back on the same
/// port: the nodes serve their page and sockets throughout, answer what is
/// sent while the broker is down with an error, log a warning, and relay
/// across nodes again (the same client sockets) once it is back.
#[test]
fn cluster_chat_survives_a_broker_restart() {
    let (broker_exe, exe) = (build_example("echo_server"), build_example("cluster_chat"));
    let bp = free_port();
    let (node_a, pa) = cluster_node(&exe, "node A", bp);
    let (node_b, pb) = cluster_node(&exe, "node B", bp);

    // No broker yet: the node serves, and says it could not send.
    let check_down = |a: &mut ChatWs, what: &str| {
        let (status, page) = http_get(pa, "/");
        assert_eq!(status, 200, "GET / on node A answered {status} {what}");
        assert!(page.contains(r#"id="messages""#), "not chat's page {what}");
        let mut fresh = chat_client(pa);
        let ev = next_event(&mut fresh, Duration::from_secs(5));
        assert_eq!(
            ev.as_ref().map(|e| &e["type"]),
            Some(&"error".into()),
            "{what}: {ev:?}"
        );
        let _ = fresh.close(None);
        // The node may take a moment to notice the loss: send until refused.
        let deadline = Instant::now() + Duration::from_secs(5);
        for n in 0.. {
            assert!(Instant::now() < deadline, "no error answer {what}");
            let text = format!("{what} {n}");
            a.send(tungstenite::Message::text(text.clone())).unwrap();
            let answer = std::iter::from_fn(|| next_event(a, Duration::from_millis(300)))
                .find(|ev| ev["type"] == "error" && ev["text"] == text.as_str());
            if let Some(ev) = answer {
                assert!(ev["error"].as_str().is_some_and(|e| !e.is_empty()), "{ev}");
                break;
            }
        }
    };
    let mut a = chat_client(pa);
    check_down(&mut a, "before the broker");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node_a.log().contains("WARN") || !node_a.log().contains("broker link down") {
        assert!(
            Instant::now() < deadline,
            "no warning logged:\n{}",
            node_a.log()
        );
        thread::sleep(Duration::from_millis(50));
    }

    // The broker comes up: messages flow, from the client opened before it.
    let broker = Proc::start(&broker_exe, "broker", bp, &[]);
    let (mut b, _) = linked_chat_client(pb, Duration::from_secs(10));
    let seen = relayed_within(&mut a, &mut b, Duration::from_secs(10));
    // A's join, owed since it opened, went out before its first message.
    let a_id = &seen.last().unwrap()["id"];
    let join = serde_json::json!({"type": "join", "id": a_id});
    assert_eq!(seen[seen.len() - 2..][0], join, "{seen:?}");

    // Killed (no close frame): both nodes keep serving.
    drop(broker);
    check_down(&mut a, "after the broker died");
    let (status, _) = http_get(pb, "/");
    assert_eq!(status, 200, "GET / on node B answered {status}");

    // Back on the same port: the same sockets are relayed again.
    let broker = Proc::start(&broker_exe, "broker again", bp, &[]);
    let started = Instant::now();
    relayed_within(&mut a, &mut b, Duration::from_secs(10));
    relayed_within(&mut b, &mut a, Duration::from_secs(2));
    eprintln!(
        "relayed again {:?} after the broker restarted",
        started.elapsed()
    );

    drop((a, b));
    node_a.interrupt();
    node_b.interrupt();
    broker.interrupt();
}

/// `render`: `--help`, a template (with an include from its directory)
/// rendered with JSON values to standard output exactly, and exit 1 with
/// the line for a template error.
#[test]
fn render_prints_a_template_and_reports_errors() {
    let exe = build_example("render");
    let out = Command::new(&exe).arg("--help").output().expect("--help");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Usage: render [--whitespace MODE] [--translations DIR [--gettext-domain D]"));
    let dir = std::env::temp_dir().join(format!("cyclone-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (t, v, bad) = (dir.join("t.html"), dir.join("v.json"), dir.join("bad.html"));
    std::fs::write(
        &t,
        "{% for u in users %}{% include \"li.html\" %}{% end %}{% raw json_encode(state) %}",
    )
    .unwrap();
    std::fs::write(
        &v,
        r#"{"users": ["ann", "<bob>"], "state": {"a": [1, 0.5]}}"#,
    )
    .unwrap();
    std::fs::write(&bad, "ok\n{% if %}").unwrap();
    // Includes are files of the template's directory.
    std::fs::write(dir.join("li.html"), "<li>{{ u }}</li>").unwrap();
    let out = Command::new(&exe).args([&t, &v]).output().expect("render");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"<li>ann</li><li>&lt;bob&gt;</li>{"a": [1, 0.5]}"#
    );
    let out = Command::new(&exe).arg(&bad).output().expect("render");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{out:?}"
    );
    // Translations: the closest of --locale's codes.
    let tr = dir.join("translations");
    std::fs::create_dir_all(&tr).unwrap();
    std::fs::write(
        tr.join("es.csv"),
        "\"%(n)s item\",\"%(n)s artículos\",\"plural\"\n",
    )
    .unwrap();
    let hello = dir.join("hello.txt");
    std::fs::write(
        &hello,
        "{{ locale.code }}: {{ _(\"%(n)s item\", \"x\", 2) % {\"n\": 2} }}",
    )
    .unwrap();
    let render_in = |codes: &str| {
        let out = Command::new(&exe)
            .arg("--translations")
            .arg(&tr)
            .args(["--locale", codes])
            .arg(&hello)
            .output()
            .expect("render");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // The plural row is keyed by the plural message ("x"): no match.
    assert_eq!(render_in("fr,es-MX"), "es: x");
    assert_eq!(render_in("fr"), "en_US: x");
    std::fs::write(&hello, "{{ _(\"a\", \"%(n)s item\", 2) % {\"n\": 2} }}").unwrap();
    assert_eq!(render_in("es"), "2 artículos");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `chatdemo`: the page lists nothing, then a message sent on the socket
/// comes back to every socket with the HTML `message.html` made of it
/// (escaped, its URL a link), and the page lists it when loaded again.
#[test]
fn chatdemo_renders_messages_with_its_templates() {
    run_example("chatdemo", |port| {
        let (status, page) = http_get(port, "/");
        assert_eq!(status, 200, "GET / answered {status}");
        assert!(page.contains(r#"<div id="inbox">"#), "{page}");
        assert!(page.contains(r#"value="Post""#), "{page}");
        assert!(page.contains(r#"<html lang="en-US">"#), "{page}");
        assert!(page.contains(r#"action="/""#), "{page}");
        // Its translations, chosen by Accept-Language.
        let (_, es) = http_get_with(port, "/", "Accept-Language: es-ES, fr;q=0.5\r\n");
        assert!(es.contains(r#"value="Enviar""#), "{es}");
        assert!(
            es.contains("<title>demo de chat de cyclone</title>"),
            "{es}"
        );
        assert!(es.contains(r#"<html lang="es">"#), "{es}");
        let (_, fr) = http_get_with(port, "/", "Accept-Language: de, fr-CA;q=0.8\r\n");
        assert!(fr.contains(r#"value="Envoyer""#), "{fr}");
        assert!(page.contains("/static/chat.js?v="), "{page}");
        let (status, js) = http_get(port, "/static/chat.js");
        assert_eq!(status, 200);
        assert!(js.contains("/chatsocket"));

        let connect = || {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let url = format!("ws://127.0.0.1:{port}/chatsocket");
            tungstenite::client(url, stream)
                .expect("chatsocket handshake")
                .0
        };
        let (mut a, mut b) = (connect(), connect());
        // Both sockets are registered before the message goes out: a
        // ping answered means `open` has run for it.
        for ws in [&mut a, &mut b] {
            ws.send(tungstenite::Message::Ping(b"x".to_vec().into()))
                .unwrap();
            while !matches!(ws.read().unwrap(), tungstenite::Message::Pong(_)) {}
        }
        a.send(tungstenite::Message::text(
            r#"{"body": "<b>hi</b> see http://example.com/x"}"#,
        ))
        .unwrap();
        for ws in [&mut a, &mut b] {
            let chat: serde_json::Value =
                serde_json::from_str(ws.read().unwrap().to_text().unwrap()).unwrap();
            assert_eq!(chat["body"], "<b>hi</b> see http://example.com/x");
            let html = chat["html"].as_str().unwrap();
            assert!(
                html.contains("&lt;b&gt;hi&lt;/b&gt; see <a href=\"http://example.com/x\">"),
                "{html}"
            );
            assert!(html.contains(&format!("id=\"m{}\"", chat["id"].as_str().unwrap())));
        }
        let (_, page) = http_get(port, "/");
        assert!(page.contains("&lt;b&gt;hi&lt;/b&gt;"), "{page}");
        let _ = a.close(None);
        let _ = b.close(None);
        assert_metrics(port);
    });
}
