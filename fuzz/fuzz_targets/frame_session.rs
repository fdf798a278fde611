//! Frame parser + message assembly (+ permessage-deflate inflation) through
//! `Session::read_event`, fed whole and split into reads.
//!
//! Input: byte 0 selects the configuration (role, deflate, context
//! takeover, message size limit, mode), byte 1 seeds the read split, the
//! rest is the byte stream from the peer -- or, in round-trip mode (bit 7
//! of byte 0), a list of messages the peer's own `Session` sends.
//!
//! Invariants: no panic; `consumed <= input.len()`; `consumed == 0` comes
//! without an event; a data message never exceeds `max_message_size`
//! (compressed or not); after an `Err` (and `fail`) no further event; the
//! outcome (events, final error, and for the server the reply bytes) is
//! the same whole and split. Round trip: what a `Session` of the other
//! role sends (`send_message` with or without permessage-deflate at any
//! level, window and `min_size`, `send_ping`, `send_pong`, `send_close`)
//! is read back exactly, with no error, whole and split.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::protocol::{
    CloseCode, CompressionOptions, DeflateParams, Event, OpCode, ProtocolError, Role, Session,
    SessionConfig,
};

#[path = "../common/split.rs"]
mod split;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    error: Option<ProtocolError>,
    /// Reply bytes (pongs, close echo, fail close); compared for the
    /// server only (a client masks with random keys).
    out: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Cfg {
    role: Role,
    deflate: Option<DeflateParams>,
    config: SessionConfig,
}

fn cfg_from(b: u8) -> Cfg {
    let role = if b & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let deflate = (b & 2 != 0).then_some(DeflateParams {
        server_no_context_takeover: b & 4 != 0,
        client_no_context_takeover: b & 8 != 0,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    });
    let max_message_size = [125, 1024, 16 * 1024, 64 * 1024][((b >> 4) & 3) as usize];
    let fragment_overhead = if b & 0x40 != 0 { 0 } else { 16 };
    Cfg {
        role,
        deflate,
        config: SessionConfig {
            max_message_size,
            fragment_overhead,
        },
    }
}

fn run(cfg: Cfg, stream: &[u8], chunks: &[usize]) -> Outcome {
    let mut s = Session::new(
        cfg.role,
        cfg.config,
        cfg.deflate,
        &CompressionOptions::default(),
    );
    let max = cfg.config.max_message_size;
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut pos = 0;
    for &n in chunks {
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            let len = buf.len();
            match s.read_event(&mut buf, &mut out) {
                Ok(r) => {
                    assert!(r.consumed <= len, "consumed {} > input {}", r.consumed, len);
                    let consumed = r.consumed;
                    if let Some(e) = r.event {
                        let ev = match e {
                            Event::Text(p) => {
                                assert!(p.len() <= max, "text message {} > {}", p.len(), max);
                                Ev::Text(p.as_bytes().to_vec())
                            }
                            Event::Binary(p) => {
                                assert!(p.len() <= max, "binary message {} > {}", p.len(), max);
                                Ev::Binary(p.to_vec())
                            }
                            Event::Ping(p) => {
                                assert!(p.len() <= 125);
                                Ev::Ping(p.to_vec())
                            }
                            Event::Pong(p) => {
                                assert!(p.len() <= 125);
                                Ev::Pong(p.to_vec())
                            }
                            Event::Close { code, reason } => {
                                assert!(reason.len() <= 123);
                                Ev::Close(code, reason.to_owned())
                            }
                        };
                        assert!(consumed > 0, "event without consuming input");
                        events.push(ev);
                    }
                    if consumed == 0 {
                        break;
                    }
                    buf.drain(..consumed);
                }
                Err(e) => {
                    s.fail(&e, &mut out);
                    assert!(s.state().is_closed());
                    // The caller stops reading; if it did not, nothing more
                    // may come out of the session.
                    let mut rest = buf.clone();
                    rest.extend_from_slice(&stream[pos..]);
                    let mut sink = Vec::new();
                    match s.read_event(&mut rest, &mut sink) {
                        Ok(r) => assert!(r.event.is_none() && r.consumed == 0),
                        Err(_) => {}
                    }
                    assert!(sink.is_empty(), "bytes written after fail");
                    return Outcome {
                        events,
                        error: Some(e),
                        out,
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        out,
    }
}

/// Round trip: `spec` is a list of `(kind/length byte, payload)` messages
/// that a peer `Session` sends; the receiver must see exactly them.
fn roundtrip(b: u8, seed: u8, spec: &[u8]) {
    let role = if b & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let peer = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let bits = 9 + (seed >> 4) % 7;
    let deflate = (b & 2 != 0).then_some(DeflateParams {
        server_no_context_takeover: b & 4 != 0,
        client_no_context_takeover: b & 8 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    });
    let opts = CompressionOptions {
        level: u32::from(seed % 10),
        min_size: [0, 1, 64, 256][usize::from((b >> 4) & 3)],
        ..CompressionOptions::default()
    };
    let config = SessionConfig {
        max_message_size: 64 * 1024,
        fragment_overhead: 16,
    };
    let mut sender = Session::new(peer, config, deflate, &opts);
    let mut wire = Vec::new();
    let mut want = Vec::new();
    let mut rest = spec;
    while let Some((&k, tail)) = rest.split_first() {
        let len = (usize::from(k >> 2) * usize::from(k >> 2)).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        match k & 3 {
            0 => {
                let text = String::from_utf8_lossy(payload).into_owned();
                sender
                    .send_message(OpCode::Text, text.as_bytes(), &mut wire)
                    .expect("open");
                want.push(Ev::Text(text.into_bytes()));
            }
            1 => {
                sender
                    .send_message(OpCode::Binary, payload, &mut wire)
                    .expect("open");
                want.push(Ev::Binary(payload.to_vec()));
            }
            2 => {
                sender.send_ping(payload, &mut wire).expect("open");
                want.push(Ev::Ping(payload[..len.min(125)].to_vec()));
            }
            _ => {
                sender.send_pong(payload, &mut wire).expect("open");
                want.push(Ev::Pong(payload[..len.min(125)].to_vec()));
            }
        }
    }
    if seed & 1 != 0 {
        sender
            .send_close(
                Some(CloseCode(1000 + u16::from(seed >> 1) % 14)),
                "bye",
                &mut wire,
            )
            .expect("open");
        let code = 1000 + u16::from(seed >> 1) % 14;
        let code = CloseCode(code).is_sendable().then_some(code);
        let reason = if code.is_some() { "bye" } else { "" };
        want.push(Ev::Close(code, reason.to_owned()));
    }
    let cfg = Cfg {
        role,
        deflate,
        config,
    };
    let whole = run(cfg, &wire, &[wire.len()]);
    assert_eq!(whole.error, None, "our own frames refused");
    assert_eq!(whole.events, want, "sent and received messages differ");
    let chunks = split::chunk_lengths(u64::from(seed), wire.len());
    let split = run(cfg, &wire, &chunks);
    assert_eq!(split.error, None, "our own frames refused (split)");
    assert_eq!(
        split.events, want,
        "sent and received messages differ (split)"
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    if data[0] & 0x80 != 0 {
        roundtrip(data[0], data[1], &data[2..]);
        return;
    }
    let cfg = cfg_from(data[0]);
    let stream = &data[2..];
    let whole = run(cfg, stream, &[stream.len()]);
    let chunks = split::chunk_lengths(u64::from(data[1]), stream.len());
    let split = run(cfg, stream, &chunks);
    assert_eq!(whole.events, split.events, "events differ whole vs split");
    assert_eq!(whole.error, split.error, "error differs whole vs split");
    if cfg.role == Role::Server {
        assert_eq!(whole.out, split.out, "replies differ whole vs split");
    }
    // Byte-at-a-time feeding for short inputs: the worst case for
    // header parsing.
    if stream.len() <= 64 {
        let ones = vec![1; stream.len()];
        let bytewise = run(cfg, stream, &ones);
        assert_eq!(whole.events, bytewise.events);
        assert_eq!(whole.error, bytewise.error);
    }
});
