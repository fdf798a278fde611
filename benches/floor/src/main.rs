//! The floor for the shared harness's scenarios a and f: the fewest
//! instructions a server can spend around the same system calls cyclone
//! makes. It trusts its peer (the loadgen): no validation, no UTF-8 check,
//! no limits, no timers, no handler objects, no slab generations. Not a
//! WebSocket server anyone should run; see benches/README.md, "The floor".
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

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map_or(9000, |p| p.parse().expect("port"));
    let mut poll = Poll::new()?;
    let mut lis = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    poll.registry()
        .register(&mut lis, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut subs: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut published: Vec<u8> = Vec::new();
    let mut scratch: Vec<u8> = Vec::new();
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
                    poll.registry().register(
                        &mut s,
                        Token(id),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns[id] = Some(Conn {
                        s,
                        kind: Kind::Http,
                        inb: Vec::new(),
                        out: Vec::new(),
                    });
                }
                continue;
            }
            let id = ev.token().0;
            let Some(c) = conns[id].as_mut() else {
                continue;
            };
            let mut dead = false;
            if ev.is_writable() && !c.out.is_empty() {
                let pending = std::mem::take(&mut c.out);
                dead |= !send_all(&mut c.s, &pending, &mut c.out);
            }
            if ev.is_readable() {
                loop {
                    match c.s.read(&mut buf) {
                        Ok(0) => {
                            dead = true;
                            break;
                        }
                        Ok(n) => c.inb.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            dead = true;
                            break;
                        }
                    }
                }
                scratch.clear();
                if c.kind == Kind::Http {
                    if let Some(end) = find(&c.inb, b"\r\n\r\n") {
                        c.kind = upgrade(&c.inb[..end], &mut scratch);
                        c.inb.drain(..end + 4);
                        if c.kind == Kind::Broadcast {
                            subs.push(id);
                        }
                    }
                }
                let mut close = false;
                if c.kind != Kind::Http && !c.inb.is_empty() {
                    let (used, cl) = if c.kind == Kind::Publish {
                        frames(&mut c.inb, &mut published, &mut scratch)
                    } else {
                        let mut ctrl = Vec::new();
                        let r = frames(&mut c.inb, &mut scratch, &mut ctrl);
                        scratch.extend_from_slice(&ctrl);
                        r
                    };
                    c.inb.drain(..used);
                    close = cl;
                }
                if !scratch.is_empty() {
                    dead |= !send_all(&mut c.s, &scratch, &mut c.out);
                }
                dead |= close;
            }
            if dead {
                if let Some(c) = conns[id].take() {
                    free.push(id);
                    if c.kind == Kind::Broadcast {
                        subs.retain(|&s| s != id);
                    }
                }
            }
        }
        if !published.is_empty() {
            subs.retain(|&id| match conns[id].as_mut() {
                Some(c) => {
                    send_all(&mut c.s, &published, &mut c.out) || {
                        conns[id] = None;
                        free.push(id);
                        false
                    }
                }
                None => false,
            });
            published.clear();
        }
    }
}
