//! Helpers for integration tests: a cyclone application on 127.0.0.1:0 in
//! its own thread (one IOLoop per thread), stopped when the guard drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cyclone::ioloop::IOLoop;
use cyclone::testing::TestServer;
use cyclone::web::Application;

/// A server running in a background thread: `cyclone::testing`'s
/// [`TestServer`], with its address as a field and a raw socket to it.
pub struct Server {
    pub addr: SocketAddr,
    inner: TestServer,
}

impl Server {
    /// Builds the application with `build` inside the server thread and listens on 127.0.0.1:0.
    pub fn start(build: impl FnOnce() -> Application + Send + 'static) -> Server {
        Server::wrap(TestServer::start(build))
    }

    /// Runs `listen` (build an application, listen on 127.0.0.1, return
    /// the bound address) inside the server thread: for listeners other
    /// than `listen_on` (TLS).
    pub fn start_with(listen: impl FnOnce() -> SocketAddr + Send + 'static) -> Server {
        Server::wrap(TestServer::start_with(listen))
    }

    fn wrap(inner: TestServer) -> Server {
        Server {
            addr: inner.addr(),
            inner,
        }
    }

    pub fn ws_url(&self, path: &str) -> String {
        self.inner.ws_url(path)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

/// Reads one HTTP response (head + Content-Length body) from `s`.
pub fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let no_body = head.starts_with("HTTP/1.1 101") || head.contains("X-Head-Only");
            let want = end + 4 + if no_body { 0 } else { len };
            while buf.len() < want {
                let n = s.read(&mut tmp).expect("read body");
                assert!(n > 0, "EOF inside body");
                buf.extend_from_slice(&tmp[..n]);
            }
            let status = head[9..12].parse().unwrap();
            let body = buf[end + 4..want].to_vec();
            // Put back anything after this response (pipelining).
            PENDING.with(|p| p.borrow_mut().extend_from_slice(&buf[want..]));
            return (status, head, body);
        }
        assert!(Instant::now() < deadline, "timed out reading a response");
        let mut n = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let n = p.len();
            buf.extend_from_slice(&p);
            p.clear();
            n
        });
        if n == 0 {
            n = s.read(&mut tmp).expect("read");
            assert!(
                n > 0,
                "EOF before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&tmp[..n]);
        }
    }
}

thread_local! {
    static PENDING: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Sends `raw` and reads one response.
pub fn request(server: &Server, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = server.connect();
    s.write_all(raw).unwrap();
    read_response(&mut s)
}

/// Waits until the connection is closed by the peer (EOF or reset), bounded.
pub fn wait_closed(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut tmp = [0u8; 1024];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match s.read(&mut tmp) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

/// A raw WebSocket upgrade request for `path`.
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A masked client frame (fin, opcode, payload).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len < 65536 {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one unmasked server frame: (fin, opcode, payload).
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<(bool, u8, Vec<u8>)> {
    // Bytes `read_response` read past its response (a frame that came in
    // the same segment as a 101) come first.
    let mut s = Pending(s);
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b)?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    assert_eq!(h[1] & 0x80, 0, "server frames must not be masked");
    let mut p = vec![0u8; len as usize];
    s.read_exact(&mut p)?;
    Ok((h[0] & 0x80 != 0, h[0] & 0x0f, p))
}

/// Reads what `read_response` put back (`PENDING`) before the socket.
struct Pending<'a>(&'a mut TcpStream);

impl Read for Pending<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let n = p.len().min(buf.len());
            buf[..n].copy_from_slice(&p[..n]);
            p.drain(..n);
            n
        });
        if n > 0 {
            return Ok(n);
        }
        self.0.read(buf)
    }
}

/// Opens a raw WebSocket on `path` (handshake done, 101 checked).
pub fn raw_ws(server: &Server, path: &str) -> TcpStream {
    let mut s = server.connect();
    s.write_all(upgrade_request(path, "").as_bytes()).unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    s
}

// ---- helpers added for tests/hardening.rs and tests/soak.rs ----

impl Server {
    /// The server loop's metrics, read inside its thread.
    pub fn metrics(&self) -> cyclone::ioloop::Metrics {
        self.inner.on_loop(|| IOLoop::current().metrics())
    }
}

/// Resident set size of this process (the in-process server's too), KiB.
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The soft RLIMIT_NOFILE of this process.
pub fn nofile_limit() -> usize {
    let s = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// xorshift64*: a small deterministic generator for randomized tests (one
/// seed, one sequence). Seed with an odd number.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `0 .. n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `1 ..= max`, log-uniform: most sizes small, some large.
    pub fn log_size(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as usize - max.leading_zeros() as usize);
        let base = 1usize << bits;
        (base + self.below(base)).min(max)
    }
}

/// How [`read_within`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer closed cleanly (EOF).
    Eof,
    /// An error: a reset.
    Reset,
    /// `within` passed with the connection still open.
    Timeout,
}

/// Reads until EOF, an error (a reset) or `within`: what arrived, and how
/// the read ended.
pub fn read_within(s: &mut TcpStream, within: Duration) -> (Vec<u8>, ReadEnd) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, ReadEnd::Timeout);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut tmp) {
            Ok(0) => return (got, ReadEnd::Eof),
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (got, ReadEnd::Timeout)
            }
            Err(_) => return (got, ReadEnd::Reset),
        }
    }
}

/// Runs the test named `name` alone in a child process (this test binary
/// again, filtered to it, one thread) and returns true in the parent once
/// the child passed; returns false in the child, which then runs the body.
/// For tests that measure process-wide figures (`VmRSS`, `VmHWM`): other
/// tests running in the same process at the same time move them.
///
/// ```ignore
/// if util::isolated("my_test") { return; }
/// ```
pub fn isolated(name: &str) -> bool {
    isolated_under(&[], name)
}

/// [`isolated`], with the child started through the command `wrapper`
/// (e.g. `["nohup"]`), which runs the test binary.
pub fn isolated_under(wrapper: &[&str], name: &str) -> bool {
    const VAR: &str = "CYCLONE_ISOLATED_TEST";
    if std::env::var(VAR).as_deref() == Ok(name) {
        return false;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    let mut child = cmd
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .stdin(std::process::Stdio::null())
        .env(VAR, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the isolated test");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the isolated test") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("isolated test {name} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.success() && out.contains("1 passed"),
        "isolated test {name} failed ({status}):\n{out}\n{err}"
    );
    true
}

/// A directory of its own under the system's temp dir (`prefix`, the
/// process id and a counter), removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cyclone-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `contents` to `name` (parent directories made), returning
    /// its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` on a thread of its own and returns what it returns (its panic
/// goes on); a test that would hang fails instead: the thread is left
/// behind if `f` does not return within `limit`.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("still running after {limit:?}: deadlocked"),
    }
}

/// Counts in `ended` the end of the calling thread: puts a guard in its
/// thread-locals (once, however often called), which adds one when the
/// thread has ended (its locals dropped, as a join waits for).
pub fn mark_thread(ended: &std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    struct ThreadEnded(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for ThreadEnded {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    thread_local! {
        static THREAD_ENDED: std::cell::RefCell<Option<ThreadEnded>> =
            const { std::cell::RefCell::new(None) };
    }
    THREAD_ENDED.with(|e| {
        e.borrow_mut()
            .get_or_insert_with(|| ThreadEnded(ended.clone()));
    });
}

/// Runs `setup` on a thread of its own, then, as that thread ends, the
/// closure `setup` returned, from a thread-local's destructor that runs
/// after the thread's IOLoop was dropped: the thread-local is first used
/// before the loop is made, and thread-locals drop in the reverse order
/// of their first use. Returns what that closure returned (what it
/// captured is dropped there too). A panic in a destructor aborts the
/// process: call it in a child process ([`isolated`]).
pub fn after_the_loop<T: Send + 'static>(
    setup: impl FnOnce() -> Box<dyn FnOnce() -> T> + Send + 'static,
) -> T {
    struct OnDrop(Option<Box<dyn FnOnce()>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    thread_local! {
        static HELD: std::cell::RefCell<Option<OnDrop>> = const { std::cell::RefCell::new(None) };
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        HELD.with(|h| assert!(h.borrow().is_none()));
        let _ = IOLoop::current();
        let then = setup();
        let last = OnDrop(Some(Box::new(move || {
            let _ = tx.send(then());
        })));
        HELD.with(|h| *h.borrow_mut() = Some(last));
    })
    .join()
    .expect("the thread panicked");
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the destructor did not run to its end")
}
