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
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
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
    check(port);

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
