//! The floor for the shared harness's scenarios a, b, e and f: the fewest
//! instructions a server can spend around the same system calls cyclone
//! makes (`TCP_DEFER_ACCEPT`, the request read right after `accept`, one
//! read per readiness unless the buffer filled, writable interest only
//! while the kernel refuses bytes, the close reply then `close()`). It
//! trusts its peer (the loadgen): no validation, no UTF-8 check, no limits,
//! no timers, no handler objects, no slab generations. Not a WebSocket
//! server anyone should run; see benches/README.md, "The floor".
//!
//!   floor --port PORT
//!
//! `/publish` frames go to every `/broadcast` connection (one `send` per
//! subscriber per tick of whatever accumulated); any other path echoes.

use std::io::{self, Read, Write};

use base64::Engine;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(PartialEq)]
enum Kind {
    Http,
    Echo,
    Publish,
    Broadcast,
}

struct Conn {
    s: TcpStream,
    kind: Kind,
    inb: Vec<u8>,
    out: Vec<u8>,
    /// Registered for writable readiness too (only while `out` holds bytes
    /// the kernel refused).
    writable: bool,
}

/// Asks for writable readiness while `out` holds refused bytes, and stops
/// asking once it is empty.
fn interest(r: &mio::Registry, c: &mut Conn, id: usize) -> io::Result<()> {
    let want = !c.out.is_empty();
    if want != c.writable {
        c.writable = want;
        let i = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        r.reregister(&mut c.s, Token(id), i)?;
    }
    Ok(())
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
}

/// The 101 for a request head, and the path's kind.
fn upgrade(head: &[u8], out: &mut Vec<u8>) -> Kind {
    let line_end = find(head, b"\r\n").unwrap_or(head.len());
    let line = &head[..line_end];
    let kind = if find(line, b" /publish ").is_some() {
        Kind::Publish
    } else if find(line, b" /broadcast ").is_some() {
        Kind::Broadcast
    } else {
        Kind::Echo
    };
    let at = find(head, b"\r\nsec-websocket-key:").expect("key") + 20;
    let rest = &head[at..];
    let end = find(rest, b"\r\n").unwrap_or(rest.len());
    let key = rest[..end].trim_ascii();
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    kind
}

fn header(out: &mut Vec<u8>, b0: u8, len: usize) {
    out.push(b0);
    if len < 126 {
        out.push(len as u8);
    } else if len < 65536 {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Parses the complete client frames in `inb`, unmasks them and appends the
/// server frames for data to `out`, a close reply to `ctrl`. Returns the
/// bytes consumed and whether a close frame came.
fn frames(inb: &mut [u8], out: &mut Vec<u8>, ctrl: &mut Vec<u8>) -> (usize, bool) {
    let mut at = 0;
    while inb.len() - at >= 6 {
        let b0 = inb[at];
        let l7 = (inb[at + 1] & 0x7f) as usize;
        let (len, hl) = match l7 {
            126 if inb.len() - at >= 8 => {
                (u16::from_be_bytes([inb[at + 2], inb[at + 3]]) as usize, 8)
            }
            127 if inb.len() - at >= 14 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&inb[at + 2..at + 10]);
                (u64::from_be_bytes(b) as usize, 14)
            }
            126 | 127 => break,
            n => (n, 6),
        };
        if inb.len() - at < hl + len {
            break;
        }
        let mut key = [0u8; 4];
        key.copy_from_slice(&inb[at + hl - 4..at + hl]);
        let p = &mut inb[at + hl..at + hl + len];
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        at += hl + len;
        match b0 & 0x0f {
            0x8 => {
                header(ctrl, 0x88, 2.min(len));
                ctrl.extend_from_slice(&inb[at - len..at - len + 2.min(len)]);
                return (at, true);
            }
            0x9 | 0xa => {}
            _ => {
                header(out, b0, len);
                out.extend_from_slice(&inb[at - len..at]);
            }
        }
    }
    (at, false)
}

fn send_all(s: &mut TcpStream, data: &[u8], backlog: &mut Vec<u8>) -> bool {
    if !backlog.is_empty() {
        backlog.extend_from_slice(data);
        return true;
    }
    let mut off = 0;
    while off < data.len() {
        match s.write(&data[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                backlog.extend_from_slice(&data[off..]);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Handles one chunk of input: the request head while in `Http`, then
/// frames. Returns the bytes used and whether a close frame came.
fn process(
    kind: &mut Kind,
    data: &mut [u8],
    published: &mut Vec<u8>,
    reply: &mut Vec<u8>,
) -> (usize, bool) {
    let mut used = 0;
    if *kind == Kind::Http {
        match find(data, b"\r\n\r\n") {
            Some(end) => {
                *kind = upgrade(&data[..end], reply);
                used = end + 4;
            }
            None => return (0, false),
        }
    }
    let rest = &mut data[used..];
    let (n, close) = if *kind == Kind::Publish {
        frames(rest, published, reply)
    } else {
        let mut ctrl = Vec::new();
        let r = frames(rest, reply, &mut ctrl);
        reply.extend_from_slice(&ctrl);
        r
    };
    (used + n, close)
}

/// Reads until a short read (the socket is drained then), parsing in place
/// in `buf` and keeping only an incomplete tail in `c.inb`. Returns whether
/// the connection is done.
fn on_readable(c: &mut Conn, buf: &mut [u8], published: &mut Vec<u8>, reply: &mut Vec<u8>) -> bool {
    loop {
        let n = match c.s.read(buf) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        };
        reply.clear();
        let close = if c.inb.is_empty() {
            let (used, close) = process(&mut c.kind, &mut buf[..n], published, reply);
            c.inb.extend_from_slice(&buf[used..n]);
            close
        } else {
            c.inb.extend_from_slice(&buf[..n]);
            let (used, close) = process(&mut c.kind, &mut c.inb, published, reply);
            c.inb.drain(..used);
            close
        };
        if !reply.is_empty() && !send_all(&mut c.s, reply, &mut c.out) {
            return true;
        }
        // After our close reply, `close()` at once (the server closes first).
        if close {
            return true;
        }
        if n < buf.len() {
            return false;
        }
    }
}

/// `TCP_DEFER_ACCEPT` as cyclone sets it: accept only once the request
/// has arrived, so the first read after `accept` finds it.
fn defer_accept(l: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    let secs: libc::c_int = 1;
    // SAFETY: `l` is an open socket for the whole call; the value points to
    // a live `c_int` and the length is its size; the kernel keeps no pointer.
    let r = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "TCP_DEFER_ACCEPT");
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map_or(9000, |p| p.parse().expect("port"));
    let mut poll = Poll::new()?;
    let std_lis = std::net::TcpListener::bind(("127.0.0.1", port))?;
    defer_accept(&std_lis);
    std_lis.set_nonblocking(true)?;
    let mut lis = TcpListener::from_std(std_lis);
    poll.registry()
        .register(&mut lis, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut subs: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut published: Vec<u8> = Vec::new();
    let mut reply: Vec<u8> = Vec::new();
    let mut done: Vec<usize> = Vec::new();
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut s, _)) = lis.accept() {
                    s.set_nodelay(true)?;
                    let id = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry()
                        .register(&mut s, Token(id), Interest::READABLE)?;
                    let mut c = Conn {
                        s,
                        kind: Kind::Http,
                        inb: Vec::new(),
                        out: Vec::new(),
                        writable: false,
                    };
                    // The request is usually there already (deferred accept).
                    if on_readable(&mut c, &mut buf, &mut published, &mut reply) {
                        free.push(id);
                        continue;
                    }
                    if c.kind == Kind::Broadcast {
                        subs.push(id);
                    }
                    interest(poll.registry(), &mut c, id)?;
                    conns[id] = Some(c);
                }
                continue;
            }
            let id = ev.token().0;
            let Some(c) = conns[id].as_mut() else {
                continue;
            };
            let was_http = c.kind == Kind::Http;
            let mut dead = false;
            if ev.is_writable() && !c.out.is_empty() {
                let pending = std::mem::take(&mut c.out);
                dead |= !send_all(&mut c.s, &pending, &mut c.out);
            }
            if ev.is_readable() && !dead {
                dead = on_readable(c, &mut buf, &mut published, &mut reply);
            }
            if was_http && c.kind == Kind::Broadcast {
                subs.push(id);
            }
            if dead {
                done.push(id);
            } else {
                interest(poll.registry(), c, id)?;
            }
        }
        for id in done.drain(..) {
            if let Some(c) = conns[id].take() {
                free.push(id);
                if c.kind == Kind::Broadcast {
                    subs.retain(|&s| s != id);
                }
            }
        }
        if !published.is_empty() {
            let r = poll.registry();
            subs.retain(|&id| match conns[id].as_mut() {
                Some(c) => {
                    if send_all(&mut c.s, &published, &mut c.out) && interest(r, c, id).is_ok() {
                        return true;
                    }
                    conns[id] = None;
                    free.push(id);
                    false
                }
                None => false,
            });
            published.clear();
        }
    }
}
