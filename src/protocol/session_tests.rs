//! Session tests: every frame sequence is fed whole, byte by byte (growing
//! the input one byte at a time) and split at every offset, and all three
//! must agree.

use super::deflate::{CompressionOptions, DeflateParams, Deflater};
use super::frame::FrameHeader;
use super::session::{Event, Role, Session, SessionConfig, State};
use super::{CloseCode, OpCode, ProtocolError};

#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Err(ProtocolError),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Text(p) => Ev::Text(p.into_owned().into_bytes()),
        Event::Binary(p) => Ev::Binary(p.into_vec()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close { code, reason } => Ev::Close(code, reason.to_owned()),
    }
}

/// Feeds `chunks` in order; returns events (an error ends the run), the
/// bytes the session wrote and its final state.
fn feed(s: &mut Session, chunks: &[&[u8]]) -> (Vec<Ev>, Vec<u8>, State) {
    let mut buf = Vec::new();
    let mut pos = 0;
    let mut evs = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.drain(..pos);
        pos = 0;
        buf.extend_from_slice(c);
        loop {
            match s.read_event(&mut buf[pos..], &mut out) {
                Ok(r) => {
                    if r.consumed == 0 {
                        assert!(r.event.is_none());
                        break;
                    }
                    let consumed = r.consumed;
                    if let Some(e) = r.event {
                        evs.push(own(e));
                    }
                    pos += consumed;
                }
                Err(e) => {
                    s.fail(&e, &mut out);
                    evs.push(Ev::Err(e));
                    return (evs, unmask_all(&out), s.state());
                }
            }
        }
    }
    (evs, unmask_all(&out), s.state())
}

/// Output with client masks removed (they are random), so runs compare.
fn unmask_all(mut out: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    while let Some((h, n)) = FrameHeader::parse(out) {
        let end = n + h.payload_len as usize;
        let mut payload = out[n..end].to_vec();
        if let Some(m) = h.mask {
            super::mask::apply_mask(&mut payload, m);
        }
        FrameHeader { mask: None, ..h }.encode(&mut plain);
        plain.extend_from_slice(&payload);
        out = &out[end..];
    }
    assert!(out.is_empty());
    plain
}

fn server() -> Session {
    Session::new(
        Role::Server,
        SessionConfig::default(),
        None,
        &CompressionOptions::default(),
    )
}

/// Runs `wire` through fresh sessions from `mk` whole, byte by byte and
/// split at every offset; asserts they agree and returns the whole-run result.
fn run_all(mk: &dyn Fn() -> Session, wire: &[u8]) -> (Vec<Ev>, Vec<u8>, State) {
    let whole = feed(&mut mk(), &[wire]);
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(feed(&mut mk(), &bytes), whole, "byte by byte");
    for k in 0..=wire.len() {
        assert_eq!(
            feed(&mut mk(), &[&wire[..k], &wire[k..]]),
            whole,
            "split at {k}"
        );
    }
    whole
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it (masked), with raw header control.
fn cf(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader {
        fin,
        rsv1: rsv & 4 != 0,
        rsv2: rsv & 2 != 0,
        rsv3: rsv & 1 != 0,
        opcode,
        mask: Some(MASK),
        payload_len: payload.len() as u64,
    }
    .encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    super::mask::apply_mask(&mut out[start..], MASK);
    out
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn err_code(evs: &[Ev]) -> Option<u16> {
    match evs.last() {
        Some(Ev::Err(e)) => Some(e.close_code().0),
        _ => None,
    }
}

#[test]
fn session_is_small() {
    assert!(
        std::mem::size_of::<Session>() <= 64,
        "{}",
        std::mem::size_of::<Session>()
    );
}

#[test]
fn rfc_5_7_examples() {
    // Masked "Hello" from the RFC, to a server.
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let (evs, out, st) = run_all(&server, &wire);
    assert_eq!(evs, [Ev::Text(b"Hello".to_vec())]);
    assert!(out.is_empty());
    assert_eq!(st, State::Open);
    // Zero copy for a single frame.
    let mut s = server();
    let mut buf = wire.to_vec();
    let r = s.read_event(&mut buf, &mut Vec::new()).unwrap();
    assert!(matches!(
        r.event,
        Some(Event::Text(std::borrow::Cow::Borrowed("Hello")))
    ));

    // Unmasked "Hello" and fragmented "Hel"+"lo", to a client.
    let client = || {
        Session::new(
            Role::Client,
            SessionConfig::default(),
            None,
            &CompressionOptions::default(),
        )
    };
    let (evs, _, _) = run_all(&client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(evs, [Ev::Text(b"Hello".to_vec())]);
    let (evs, _, _) = run_all(
        &client,
        &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
    );
    assert_eq!(evs, [Ev::Text(b"Hello".to_vec())]);

    // Masked ping "Hello" to a server: unmasked pong "Hello" back.
    let (evs, out, _) = run_all(&server, &cf(true, 0, 9, b"Hello"));
    assert_eq!(evs, [Ev::Ping(b"Hello".to_vec())]);
    assert_eq!(out, [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn protocol_violations_and_their_codes() {
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("rsv1 without deflate", cf(true, 4, 1, b"x"), 1002),
        ("rsv2", cf(true, 2, 2, b"x"), 1002),
        ("rsv3", cf(true, 1, 9, b""), 1002),
        ("opcode 3", cf(true, 0, 3, b""), 1002),
        ("opcode 0xB", cf(true, 0, 0xB, b""), 1002),
        ("unmasked from client", vec![0x81, 0x01, b'x'], 1002),
        ("fragmented ping", cf(false, 0, 9, b""), 1002),
        ("ping of 126 bytes", cf(true, 0, 9, &[0; 126]), 1002),
        ("close of 126 bytes", cf(true, 0, 8, &[3; 126]), 1002),
        ("bare continuation", cf(true, 0, 0, b"x"), 1002),
        (
            "text inside fragmented message",
            cat(&[cf(false, 0, 1, b"a"), cf(true, 0, 1, b"b")]),
            1002,
        ),
        (
            "binary inside fragmented message",
            cat(&[cf(false, 0, 2, b"a"), cf(true, 0, 2, b"b")]),
            1002,
        ),
        (
            "invalid utf-8",
            cf(
                true,
                0,
                1,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            ),
            1007,
        ),
        ("truncated utf-8", cf(true, 0, 1, b"ab\xe2\x82"), 1007),
        (
            "truncated utf-8 over fragments",
            cat(&[cf(false, 0, 1, b"ab"), cf(true, 0, 0, b"\xe2\x82")]),
            1007,
        ),
        ("close payload of 1 byte", cf(true, 0, 8, &[3]), 1002),
        (
            "close code 999",
            cf(true, 0, 8, &999u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1005",
            cf(true, 0, 8, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1006",
            cf(true, 0, 8, &1006u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 1015",
            cf(true, 0, 8, &1015u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 2000",
            cf(true, 0, 8, &2000u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 5000",
            cf(true, 0, 8, &5000u16.to_be_bytes()),
            1002,
        ),
        (
            "close reason not utf-8",
            cf(true, 0, 8, b"\x03\xe8\xff"),
            1007,
        ),
        (
            "64-bit length msb",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            1002,
        ),
        (
            "frame after close",
            cat(&[cf(true, 0, 8, b""), cf(true, 0, 1, b"x")]),
            1002,
        ),
    ];
    for (name, wire, code) in cases {
        let (evs, out, st) = run_all(&server, &wire);
        assert_eq!(err_code(&evs), Some(code), "{name}: {evs:?}");
        assert_eq!(st, State::Closed, "{name}");
        if name != "frame after close" {
            // Failing sends a close with the code (unmasked: server role).
            assert_eq!(
                out,
                [&[0x88, 0x02][..], &code.to_be_bytes()].concat(),
                "{name}"
            );
        }
    }
    // A server frame with a mask, to a client.
    let client = || {
        Session::new(
            Role::Client,
            SessionConfig::default(),
            None,
            &CompressionOptions::default(),
        )
    };
    let (evs, out, _) = run_all(&client, &cf(true, 0, 1, b"x"));
    assert_eq!(evs, [Ev::Err(ProtocolError::MaskedFrameFromServer)]);
    assert_eq!(out, [0x88, 0x02, 0x03, 0xea]);
    // On the wire, the client's close is masked.
    let mut s = client();
    let mut raw = Vec::new();
    s.fail(&ProtocolError::MaskedFrameFromServer, &mut raw);
    assert_eq!((raw[0], raw[1], raw.len()), (0x88, 0x82, 8));
}

#[test]
fn valid_close_codes_are_echoed() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        let (evs, out, st) = run_all(
            &server,
            &cf(true, 0, 8, &[&code.to_be_bytes()[..], b"bye"].concat()),
        );
        assert_eq!(evs, [Ev::Close(Some(code), "bye".into())]);
        assert_eq!(out, [&[0x88, 0x02][..], &code.to_be_bytes()].concat());
        assert_eq!(st, State::Closed);
    }
    let (evs, out, _) = run_all(&server, &cf(true, 0, 8, b""));
    assert_eq!(evs, [Ev::Close(None, String::new())]);
    assert_eq!(out, [0x88, 0x00]);
}

#[test]
fn close_we_started_is_not_echoed() {
    let mut s = server();
    let mut out = Vec::new();
    s.send_close(Some(CloseCode::GOING_AWAY), "bye", &mut out)
        .unwrap();
    assert_eq!(out, [0x88, 0x05, 0x03, 0xe9, b'b', b'y', b'e']);
    assert_eq!(s.state(), State::CloseSent);
    assert!(s.state().can_read() && !s.state().can_send());
    assert_eq!(
        s.send_message(OpCode::Text, b"x", &mut out),
        Err(super::session::Closed)
    );
    // Data and pings may still arrive; no pong after our close.
    let (evs, out, st) = feed(
        &mut s,
        &[
            &cf(true, 0, 9, b"p"),
            &cf(true, 0, 2, b"d"),
            &cf(true, 0, 8, &[3, 0xe9]),
        ],
    );
    assert_eq!(
        evs,
        [
            Ev::Ping(b"p".to_vec()),
            Ev::Binary(b"d".to_vec()),
            Ev::Close(Some(1001), String::new())
        ]
    );
    assert!(out.is_empty());
    assert_eq!(st, State::Closed);
    assert!(st.is_closed());
}

/// `abort` (a user's `terminate`) writes nothing, drops a message half
/// assembled, and leaves nothing to send: no data, ping or Close.
#[test]
fn abort_ends_the_session_without_a_frame() {
    let mut s = server();
    let (evs, out, st) = feed(&mut s, &[&cf(false, 0, 1, b"half")]);
    assert!(evs.is_empty() && out.is_empty());
    assert_eq!(st, State::Open);
    let mut out = Vec::new();
    s.abort();
    assert_eq!(s.state(), State::Closed);
    let closed = Err(super::session::Closed);
    assert_eq!(s.send_message(OpCode::Text, b"x", &mut out), closed);
    assert_eq!(s.send_ping(b"p", &mut out), closed);
    assert!(s.send_close(Some(CloseCode::NORMAL), "", &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn close_reason_truncated_at_char_boundary() {
    let mut s = server();
    let mut out = Vec::new();
    let reason = "é".repeat(100); // 200 bytes
    s.send_close(Some(CloseCode::NORMAL), &reason, &mut out)
        .unwrap();
    assert_eq!(out[1] as usize, out.len() - 2);
    assert!(out.len() - 2 <= 125);
    assert_eq!(out.len() - 4, 122); // 61 two-byte chars
    assert!(std::str::from_utf8(&out[4..]).is_ok());
    // Unsendable codes go out as an empty close.
    let mut s = server();
    let mut out = Vec::new();
    s.send_close(Some(CloseCode::NO_STATUS), "x", &mut out)
        .unwrap();
    assert_eq!(out, [0x88, 0x00]);
}

/// Tornado's `close(None, reason)`: a reason needs a code, 1000 is used;
/// with neither the Close is empty.
#[test]
fn close_reason_without_code_is_sent_with_1000() {
    let mut s = server();
    let mut out = Vec::new();
    s.send_close(None, "bye", &mut out).unwrap();
    assert_eq!(out, [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    let mut s = server();
    let mut out = Vec::new();
    s.send_close(None, "", &mut out).unwrap();
    assert_eq!(out, [0x88, 0x00]);
}

#[test]
fn interleaved_ping_inside_fragments() {
    let wire = cat(&[
        cf(false, 0, 1, b"Hel"),
        cf(true, 0, 9, b"ping"),
        cf(false, 0, 0, b"l"),
        cf(true, 0, 10, b"pong"),
        cf(true, 0, 0, b"o"),
    ]);
    let (evs, out, _) = run_all(&server, &wire);
    assert_eq!(
        evs,
        [
            Ev::Ping(b"ping".to_vec()),
            Ev::Pong(b"pong".to_vec()),
            Ev::Text(b"Hello".to_vec())
        ]
    );
    assert_eq!(out, [&[0x8a, 0x04][..], b"ping"].concat());
}

#[test]
fn utf8_fails_fast_per_fragment() {
    // The final fragment never arrives: the invalid first fragment is enough.
    let (evs, _, _) = run_all(&server, &cf(false, 0, 1, b"ok\xf4\x90"));
    assert_eq!(evs, [Ev::Err(ProtocolError::InvalidUtf8)]);
    // A code point split across fragments is fine.
    let euro = "€".as_bytes();
    let wire = cat(&[
        cf(false, 0, 1, &euro[..1]),
        cf(false, 0, 0, &euro[1..2]),
        cf(true, 0, 0, &euro[2..]),
    ]);
    let (evs, _, _) = run_all(&server, &wire);
    assert_eq!(evs, [Ev::Text(euro.to_vec())]);
}

/// Text long enough for the SIMD validator (64 bytes and more), in one
/// frame and in fragments: valid multi-byte text arrives whole, and a bad
/// byte anywhere in it ends the connection with 1007.
#[test]
fn long_text_is_validated_in_one_frame_and_in_fragments() {
    let text = "héllo wörld ✓ 😀 ".repeat(6);
    let t = text.as_bytes();
    assert!(t.len() >= super::utf8::SIMD_MIN * 2);
    let (evs, _, _) = run_all(&server, &cf(true, 0, 1, t));
    assert_eq!(evs, [Ev::Text(t.to_vec())]);
    let (a, b) = t.split_at(t.len() / 2 + 1); // inside a code point
    let (evs, _, _) = run_all(&server, &cat(&[cf(false, 0, 1, a), cf(true, 0, 0, b)]));
    assert_eq!(evs, [Ev::Text(t.to_vec())]);
    for at in [0, 63, 64, 100, t.len() - 1] {
        let mut bad = t.to_vec();
        bad[at] = 0xFF;
        let (evs, out, _) = run_all(&server, &cf(true, 0, 1, &bad));
        assert_eq!(evs, [Ev::Err(ProtocolError::InvalidUtf8)], "byte {at}");
        assert_eq!(err_code(&evs), Some(1007));
        assert_eq!(&out[..4], &[0x88, 0x02, 0x03, 0xEF], "close 1007 sent");
        // Fragmented, the fragment with the bad byte fails without a final one.
        let (evs, _, _) = run_all(&server, &cf(false, 0, 1, &bad));
        assert_eq!(evs, [Ev::Err(ProtocolError::InvalidUtf8)], "fragment {at}");
    }
}

#[test]
fn size_limits_checked_from_the_header() {
    let cfg = SessionConfig {
        max_message_size: 100,
        fragment_overhead: 16,
    };
    let mk = || Session::new(Role::Server, cfg, None, &CompressionOptions::default());
    // Only the header of a 101-byte frame: fails before the payload.
    let wire = cf(true, 0, 2, &[0; 101]);
    let (evs, out, _) = feed(&mut mk(), &[&wire[..6]]);
    assert!(
        matches!(
            evs[..],
            [Ev::Err(ProtocolError::MessageTooBig {
                size: 101,
                limit: 100,
                inflated: false
            })]
        ),
        "{evs:?}"
    );
    let mut close = vec![0x88, 17, 0x03, 0xf1];
    close.extend_from_slice(b"message too big");
    assert_eq!(out, close);
    // Exactly 100 is fine.
    let (evs, _, _) = feed(&mut mk(), &[&cf(true, 0, 2, &[0; 100])]);
    assert_eq!(evs, [Ev::Binary(vec![0; 100])]);
    // Fragments: the payload alone is held to the limit, as in Tornado:
    // 100 bytes in 2 or 4 fragments pass (4 × 16 of charges stay under
    // twice the limit), 101 in 2 fail.
    for n in [2usize, 4] {
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|i| cf(i + 1 == n, 0, if i == 0 { 2 } else { 0 }, &vec![1; 100 / n]))
            .collect();
        let (evs, _, _) = run_all(&mk, &cat(&frames));
        assert_eq!(evs, [Ev::Binary(vec![1; 100])], "{n} fragments");
    }
    let wire = cat(&[cf(false, 0, 2, &[1; 50]), cf(true, 0, 0, &[1; 51])]);
    let (evs, _, _) = run_all(&mk, &wire);
    assert_eq!(err_code(&evs), Some(1009));
    // Payload plus 16 per fragment is held to twice the limit:
    // 5 × (20 + 16) = 180 passes.
    let many = |n: usize, each: usize| {
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|i| cf(i + 1 == n, 0, if i == 0 { 2 } else { 0 }, &vec![1; each]))
            .collect();
        run_all(&mk, &cat(&frames)).0
    };
    assert_eq!(many(5, 20), [Ev::Binary(vec![1; 100])]);
    // Empty fragments are charged too: 13 × 16 = 208 > 200.
    assert_eq!(err_code(&many(13, 0)), Some(1009));
    assert_eq!(many(12, 0), [Ev::Binary(vec![])]);
}

#[test]
fn many_fragments() {
    let mut frames = vec![cf(false, 0, 1, b"a")];
    frames.extend((1..999).map(|_| cf(false, 0, 0, b"a")));
    frames.push(cf(true, 0, 0, b"a"));
    let (evs, _, _) = feed(&mut server(), &[&cat(&frames)]);
    assert_eq!(evs, [Ev::Text(vec![b'a'; 1000])]);
    // 9.3.1-like: 4 MiB in 65,536 fragments of 64 bytes, default limits.
    let chunk = [b'*'; 64];
    let mut wire = Vec::with_capacity(65_536 * 70);
    for i in 0..65_536u32 {
        let op = if i == 0 { 1 } else { 0 };
        wire.extend_from_slice(&cf(i == 65_535, 0, op, &chunk));
    }
    let (evs, _, _) = feed(&mut server(), &[&wire]);
    assert!(matches!(&evs[..], [Ev::Text(t)] if t.len() == 4 << 20));
}

#[test]
fn client_to_server_round_trip() {
    let mut c = Session::new(
        Role::Client,
        SessionConfig::default(),
        None,
        &CompressionOptions::default(),
    );
    let mut s = server();
    let mut wire = Vec::new();
    c.send_message(OpCode::Text, "héllo".as_bytes(), &mut wire)
        .unwrap();
    c.send_message(OpCode::Binary, &[0u8; 70_000], &mut wire)
        .unwrap();
    c.send_ping(b"p", &mut wire).unwrap();
    c.send_close(Some(CloseCode::NORMAL), "done", &mut wire)
        .unwrap();
    let (evs, echo, st) = feed(&mut s, &[&wire]);
    assert_eq!(
        evs,
        [
            Ev::Text("héllo".as_bytes().to_vec()),
            Ev::Binary(vec![0; 70_000]),
            Ev::Ping(b"p".to_vec()),
            Ev::Close(Some(1000), "done".into())
        ]
    );
    assert_eq!(st, State::Closed);
    // The server's pong and close echo reach the client unmasked.
    let (evs, out, st) = feed(&mut c, &[&echo]);
    assert_eq!(
        evs,
        [
            Ev::Pong(b"p".to_vec()),
            Ev::Close(Some(1000), String::new())
        ]
    );
    assert!(out.is_empty());
    assert_eq!(st, State::Closed);
}

fn p15() -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

fn deflate_pair(nct: bool) -> (Session, Session) {
    let p = DeflateParams {
        server_no_context_takeover: nct,
        client_no_context_takeover: nct,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let o = CompressionOptions {
        min_size: 0,
        ..CompressionOptions::default()
    };
    (
        Session::new(Role::Client, SessionConfig::default(), Some(p), &o),
        Session::new(Role::Server, SessionConfig::default(), Some(p), &o),
    )
}

#[test]
fn compressed_round_trip_both_ways() {
    for nct in [false, true] {
        let (mut c, mut s) = deflate_pair(nct);
        for i in 0..100 {
            // ASCII and multi-byte text, below and above utf8::SIMD_MIN.
            let unit = if i % 2 == 0 {
                "hello world "
            } else {
                "héllo wörld ✓ 😀 "
            };
            let msg = format!("message {i}: {}", unit.repeat(i % 10));
            let mut wire = Vec::new();
            c.send_message(OpCode::Text, msg.as_bytes(), &mut wire)
                .unwrap();
            assert_eq!(wire[0], 0xc1, "RSV1 set");
            let (evs, _, _) = feed(&mut s, &[&wire]);
            assert_eq!(
                evs,
                [Ev::Text(msg.clone().into_bytes())],
                "c->s {i} nct {nct}"
            );
            let mut wire = Vec::new();
            s.send_message(OpCode::Binary, msg.as_bytes(), &mut wire)
                .unwrap();
            let (evs, _, _) = feed(&mut c, &[&wire]);
            assert_eq!(evs, [Ev::Binary(msg.into_bytes())], "s->c {i} nct {nct}");
        }
    }
}

#[test]
fn rfc_7692_hello_to_client_and_split_compressed_message() {
    let mk = || deflate_pair(false).0;
    let (evs, _, _) = run_all(&mk, &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(evs, [Ev::Text(b"Hello".to_vec())]);
    // §7.2.3.1 fragmented: compressed over two frames, RSV1 on the first only.
    let (evs, _, _) = run_all(
        &mk,
        &[
            0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
        ],
    );
    assert_eq!(evs, [Ev::Text(b"Hello".to_vec())]);
    // Context takeover: the second "Hello" of §7.2.3.2.
    let (evs, _, _) = feed(
        &mut mk(),
        &[
            &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
        ],
    );
    assert_eq!(
        evs,
        [Ev::Text(b"Hello".to_vec()), Ev::Text(b"Hello".to_vec())]
    );
    // Uncompressed messages are still allowed with deflate negotiated.
    let (evs, _, _) = run_all(&mk, &[0x82, 0x01, 0x07]);
    assert_eq!(evs, [Ev::Binary(vec![7])]);
}

#[test]
fn compressed_rule_violations() {
    let mk = || deflate_pair(false).1;
    let mut d = Deflater::new(p15(), Role::Client, 6);
    let mut z = Vec::new();
    d.compress(b"Hello", &mut z);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("rsv1 on ping", cf(true, 4, 9, b""), 1002),
        (
            "rsv1 on continuation",
            cat(&[cf(false, 4, 1, &z), cf(true, 4, 0, b"")]),
            1002,
        ),
        ("rsv2 with deflate", cf(true, 2, 1, b"x"), 1002),
        ("corrupt data", cf(true, 4, 2, &[0xff, 0xff, 0xff]), 1007),
        (
            "invalid utf-8 after inflate",
            {
                let mut z = Vec::new();
                Deflater::new(p15(), Role::Client, 6).compress(b"\xff\xfe", &mut z);
                cf(true, 4, 1, &z)
            },
            1007,
        ),
    ];
    for (name, wire, code) in cases {
        let (evs, _, _) = run_all(&mk, &wire);
        assert_eq!(err_code(&evs), Some(code), "{name}: {evs:?}");
    }
    // A small bomb against a small limit: 1009.
    let (mut s, z) = inflating_server(1000, &[b'a'; 5000]);
    let (evs, _, _) = feed(&mut s, &[&cf(true, 4, 2, &z)]);
    assert_eq!(err_code(&evs), Some(1009));
}

/// A server session with permessage-deflate (15 bits both ways) and the
/// given message limit, and `data` compressed as a client would send it.
fn inflating_server(max_message_size: usize, data: &[u8]) -> (Session, Vec<u8>) {
    let cfg = SessionConfig {
        max_message_size,
        fragment_overhead: 16,
    };
    let p = p15();
    let s = Session::new(Role::Server, cfg, Some(p), &CompressionOptions::default());
    let mut z = Vec::new();
    Deflater::new(p, Role::Client, 6).compress(data, &mut z);
    (s, z)
}

#[test]
fn fail_after_close_sent_sends_nothing() {
    let mut s = server();
    let mut out = Vec::new();
    s.send_close(None, "", &mut out).unwrap();
    out.clear();
    s.fail(&ProtocolError::ReservedBits, &mut out);
    assert!(out.is_empty());
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.send_ping(b"", &mut out), Err(super::session::Closed));
}

#[test]
fn bytes_needed_hint() {
    let wire = cf(true, 0, 2, &[0; 300]);
    assert_eq!(Session::bytes_needed(&wire[..0]), 2);
    assert_eq!(Session::bytes_needed(&wire[..2]), 6);
    assert_eq!(Session::bytes_needed(&wire[..8]), 300);
    assert_eq!(Session::bytes_needed(&wire), 0);
}

/// The small-message fast path in `read_event` gives exactly what the
/// general path gives: every first byte, both mask bits, lengths up to the
/// 7-bit limit (125), valid and invalid UTF-8, both roles, a message already
/// in progress, a tight size limit, and each frame whole and one byte short.
#[test]
fn fast_path_matches_general_path() {
    use super::session::FAST_PATH;
    let roles = [Role::Server, Role::Client];
    let limits = [SessionConfig::default().max_message_size, 10];
    // What precedes the frame: nothing, or an unfinished text message.
    let prefixes: [&[u8]; 2] = [&[], &[0x01, 0x02, b'a', b'b']];
    let mut checked = 0;
    for role in roles {
        for max in limits {
            let mk = || {
                let cfg = SessionConfig {
                    max_message_size: max,
                    ..SessionConfig::default()
                };
                Session::new(role, cfg, None, &CompressionOptions::default())
            };
            for prefix in prefixes {
                for b0 in 0..=255u8 {
                    for masked in [false, true] {
                        for len in [0usize, 1, 5, 11, 16, 125] {
                            for payload_byte in [b'x', 0xff] {
                                let payload = vec![payload_byte; len];
                                let mut frame = vec![b0, len as u8 | (masked as u8) << 7];
                                if masked {
                                    frame.extend_from_slice(&MASK);
                                }
                                let start = frame.len();
                                frame.extend_from_slice(&payload);
                                if masked {
                                    super::mask::apply_mask(&mut frame[start..], MASK);
                                }
                                // The unfinished message, framed for the role.
                                let mut wire = Vec::new();
                                if !prefix.is_empty() {
                                    let p = &prefix[2..];
                                    if role == Role::Server {
                                        wire.extend(cf(false, 0, 1, p));
                                    } else {
                                        wire.extend_from_slice(prefix);
                                    }
                                }
                                wire.extend_from_slice(&frame);
                                // Also a truncated frame: the general path may
                                // fail from the header alone.
                                for cut in [wire.len(), wire.len() - len.min(1)] {
                                    FAST_PATH.with(|f| f.set(true));
                                    let fast = feed(&mut mk(), &[&wire[..cut]]);
                                    FAST_PATH.with(|f| f.set(false));
                                    let slow = feed(&mut mk(), &[&wire[..cut]]);
                                    FAST_PATH.with(|f| f.set(true));
                                    assert_eq!(
                                        fast, slow,
                                        "{role:?} max {max} prefix {prefix:?} b0 {b0:#x} \
                                         masked {masked} len {len} byte {payload_byte:#x} cut {cut}"
                                    );
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 20_000, "{checked}");
}

/// `max_message_size: usize::MAX` ("no limit") with a compressed message:
/// the inflater's growth step computed `max + 1` and panicked with an
/// overflow (debug; the peer's frame unwound the whole loop) or, wrapped
/// to 0 (release), left no room to inflate into and spun forever.
#[test]
fn unlimited_message_size_inflates_compressed_messages() {
    let (mut s, z) = inflating_server(usize::MAX, &[b'a'; 5000]);
    let (evs, _, _) = feed(&mut s, &[&cf(true, 4, 2, &z)]);
    assert_eq!(evs, [Ev::Binary(vec![b'a'; 5000])]);
    // Larger than one growth step, in two fragments.
    let (mut s, z) = inflating_server(usize::MAX, &[b'b'; 100_000]);
    let (a, b) = z.split_at(z.len() / 2);
    let wire = cat(&[cf(false, 4, 2, a), cf(true, 0, 0, b)]);
    let (evs, _, _) = feed(&mut s, &[&wire]);
    assert_eq!(evs, [Ev::Binary(vec![b'b'; 100_000])]);
}

// ---- compressed messages at their edges -----------------------------------

fn limited_server(max: usize) -> Session {
    let cfg = SessionConfig {
        max_message_size: max,
        fragment_overhead: 16,
    };
    Session::new(
        Role::Server,
        cfg,
        Some(p15()),
        &CompressionOptions::default(),
    )
}

/// A compressed bomb split over many fragments: 1009 at the fragment that
/// passes the limit, not at the end.
#[test]
fn fragmented_bomb_fails_mid_way() {
    let mut z = Vec::new();
    Deflater::new(p15(), Role::Client, 9).compress(&vec![0u8; 4 << 20], &mut z);
    let parts: Vec<&[u8]> = z.chunks(z.len() / 16 + 1).collect();
    assert!(parts.len() >= 16);
    let mut s = limited_server(100_000);
    let mut failed_at = None;
    for (i, p) in parts.iter().enumerate() {
        let fin = i + 1 == parts.len();
        let f = cf(
            fin,
            if i == 0 { 4 } else { 0 },
            if i == 0 { 2 } else { 0 },
            p,
        );
        let (evs, _, _) = feed(&mut s, &[&f]);
        if let Some(Ev::Err(e)) = evs.last() {
            assert_eq!(e.close_code().0, 1009, "{e:?}");
            failed_at = Some(i);
            break;
        }
    }
    assert!(matches!(failed_at, Some(i) if i < 3), "{failed_at:?}");
}

/// Exactly the limit inflated over fragments passes; one more byte is 1009.
#[test]
fn limit_exact_in_fragments() {
    for (len, ok) in [(70_000usize, true), (70_001, false)] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut z = Vec::new();
        Deflater::new(p15(), Role::Client, 6).compress(&data, &mut z);
        let parts: Vec<&[u8]> = z.chunks(z.len() / 5 + 1).collect();
        let mut wire = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let fin = i + 1 == parts.len();
            wire.extend(cf(
                fin,
                if i == 0 { 4 } else { 0 },
                if i == 0 { 2 } else { 0 },
                p,
            ));
        }
        let (evs, _, _) = feed(&mut limited_server(70_000), &[&wire]);
        if ok {
            assert_eq!(evs, [Ev::Binary(data)]);
        } else {
            assert_eq!(err_code(&evs), Some(1009), "{len}");
        }
    }
}

/// Compressed multi-byte text, one compressed byte per fragment, a ping
/// between every two fragments; then a second message (context takeover).
#[test]
fn compressed_text_bytewise_fragments_with_pings() {
    let msg = "héllo wörld ✓ 😀 ".repeat(20);
    let mut d = Deflater::new(p15(), Role::Client, 6);
    let mut wire = Vec::new();
    for round in 0..2 {
        let mut z = Vec::new();
        d.compress(msg.as_bytes(), &mut z);
        for (i, b) in z.iter().enumerate() {
            let fin = i + 1 == z.len();
            wire.extend(cf(
                fin,
                if i == 0 { 4 } else { 0 },
                if i == 0 { 1 } else { 0 },
                &[*b],
            ));
            if !fin {
                wire.extend(cf(true, 0, 9, &[round, i as u8]));
            }
        }
    }
    let (evs, out, st) = feed(&mut limited_server(1 << 20), &[&wire]);
    assert_eq!(st, State::Open);
    let texts: Vec<_> = evs.iter().filter(|e| matches!(e, Ev::Text(_))).collect();
    assert_eq!(texts.len(), 2, "{:?}", evs.last());
    assert!(texts
        .iter()
        .all(|t| **t == Ev::Text(msg.clone().into_bytes())));
    assert!(!out.is_empty());
}

/// A peer that ends its deflate stream (BFINAL) in each message.
#[test]
fn bfinal_messages_then_takeover() {
    use flate2::{Compress, Compression, FlushCompress};
    let fin_msg = |data: &[u8]| {
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Finish)
            .unwrap();
        out
    };
    let mut wire = Vec::new();
    wire.extend(cf(true, 4, 1, &fin_msg(b"first")));
    wire.extend(cf(true, 4, 1, &fin_msg(b"second")));
    let mut d = Deflater::new(p15(), Role::Client, 6);
    let mut z = Vec::new();
    d.compress(b"third", &mut z);
    wire.extend(cf(true, 4, 1, &z));
    z.clear();
    d.compress(b"third", &mut z);
    wire.extend(cf(true, 4, 1, &z));
    let (evs, _, _) = feed(&mut limited_server(1 << 20), &[&wire]);
    assert_eq!(
        evs,
        [
            Ev::Text(b"first".to_vec()),
            Ev::Text(b"second".to_vec()),
            Ev::Text(b"third".to_vec()),
            Ev::Text(b"third".to_vec())
        ]
    );
}

/// Control frames with RSV1 between compressed fragments; a continuation
/// with RSV1 of an uncompressed message.
#[test]
fn rsv1_rules_mid_message() {
    let mut z = Vec::new();
    Deflater::new(p15(), Role::Client, 6).compress(b"Hello Hello Hello", &mut z);
    let (a, b) = z.split_at(3);
    for (name, wire) in [
        (
            "rsv1 pong mid",
            cat(&[
                cf(false, 4, 1, a),
                cf(true, 4, 0xA, b"x"),
                cf(true, 0, 0, b),
            ]),
        ),
        (
            "rsv1 close mid",
            cat(&[
                cf(false, 4, 1, a),
                cf(true, 4, 8, &[3, 232]),
                cf(true, 0, 0, b),
            ]),
        ),
        (
            "rsv1 cont of plain",
            cat(&[cf(false, 0, 1, b"ab"), cf(true, 4, 0, b"cd")]),
        ),
    ] {
        let (evs, _, _) = feed(&mut limited_server(1 << 20), &[&wire]);
        assert_eq!(err_code(&evs), Some(1002), "{name}: {evs:?}");
    }
}

/// Random messages, compressed or not, split at random points with pings
/// between fragments, against random limits: the session agrees with a
/// model (message, or 1009 once the inflated size passes the limit). 300
/// runs here (about 3 s in a debug build); 3,000 passed in review.
#[test]
fn random_fragmentation_model() {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    for iter in 0..300 {
        let nct = rnd(2) == 0;
        let p = DeflateParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: nct,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let max = [1usize, 100, 16384, 16385, 32768, 40000, 70000][rnd(7) as usize];
        let cfg = SessionConfig {
            max_message_size: max,
            fragment_overhead: 16,
        };
        let mut s = Session::new(Role::Server, cfg, Some(p), &CompressionOptions::default());
        let mut d = Deflater::new(p, Role::Client, rnd(10) as u32);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for _ in 0..4 {
            let len = [0usize, 1, 100, 16383, 16384, 16385, 32768, 40000, 70001][rnd(9) as usize];
            let mut data = vec![0u8; len];
            let alpha = 1 + rnd(255);
            for b in data.iter_mut() {
                *b = b'a' + (rnd(alpha) % 26) as u8;
            }
            let compressed = rnd(3) != 0;
            let body = if compressed {
                let mut z = Vec::new();
                d.compress(&data, &mut z);
                z
            } else {
                data.clone()
            };
            // header-level limit for uncompressed; inflated size for compressed
            let nfrag = 1 + rnd(6) as usize;
            let too_big = data.len() > max
                || body.len() > max
                || (nfrag > 1 && body.len() + nfrag * 16 > 2 * max);
            let mut cuts: Vec<usize> = (0..nfrag - 1)
                .map(|_| rnd(body.len() as u64 + 1) as usize)
                .collect();
            cuts.sort();
            let mut prev = 0;
            let mut pieces = Vec::new();
            for c in cuts.into_iter().chain([body.len()]) {
                pieces.push(&body[prev..c]);
                prev = c;
            }
            for (i, piece) in pieces.iter().enumerate() {
                let fin = i + 1 == pieces.len();
                let rsv = if i == 0 && compressed { 4 } else { 0 };
                let op = if i == 0 { 1 } else { 0 };
                wire.extend(cf(fin, rsv, op, piece));
                if !fin && rnd(2) == 0 {
                    wire.extend(cf(true, 0, 9, b"p"));
                    want.push(Ev::Ping(b"p".to_vec()));
                }
            }
            if too_big {
                want.push(Ev::Err(ProtocolError::MessageTooBig {
                    size: 0,
                    limit: max,
                    inflated: false,
                }));
                break;
            }
            want.push(Ev::Text(data));
        }
        let (evs, _, _) = feed(&mut s, &[&wire]);
        // Compare, ignoring the sizes in MessageTooBig and pings after the error point.
        let norm = |v: &[Ev]| -> Vec<String> {
            v.iter()
                .map(|e| match e {
                    Ev::Err(e) => format!("err {}", e.close_code().0),
                    Ev::Text(t) => format!("text {}", t.len()),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        let (got, exp) = (norm(&evs), norm(&want));
        // A too-big message may fail before some of its pings arrive.
        let got_np: Vec<_> = got.iter().filter(|e| !e.starts_with("Ping")).collect();
        let exp_np: Vec<_> = exp.iter().filter(|e| !e.starts_with("Ping")).collect();
        assert_eq!(got_np, exp_np, "iter {iter} max {max}");
        for (g, e) in evs.iter().zip(&want) {
            if let (Ev::Text(a), Ev::Text(b)) = (g, e) {
                assert!(a == b, "iter {iter}: text differs");
            }
        }
    }
}

/// An RSV1 frame with an empty payload (no deflate data at all), then a
/// context-takeover message.
#[test]
fn empty_compressed_payload_then_takeover() {
    let mut d = Deflater::new(p15(), Role::Client, 6);
    let mut z1 = Vec::new();
    d.compress(b"Hello", &mut z1);
    let mut z2 = Vec::new();
    d.compress(b"Hello again", &mut z2);
    let wire = cat(&[
        cf(true, 4, 1, &z1),
        cf(true, 4, 1, b""),
        cf(true, 4, 1, &z2),
    ]);
    let (evs, _, _) = feed(&mut limited_server(1 << 20), &[&wire]);
    assert_eq!(
        evs,
        [
            Ev::Text(b"Hello".to_vec()),
            Ev::Text(b"".to_vec()),
            Ev::Text(b"Hello again".to_vec())
        ]
    );
}
