//! permessage-deflate on the server: negotiation answers and a
//! decompression bomb (raw sockets; the peer is not cyclone).

mod util;

use std::io::Write;
use std::time::Duration;

use cyclone::http::Request;
use cyclone::protocol::CompressionOptions;
use cyclone::web::Application;
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
use util::{read_frame, read_response, Server};

struct Echo;
impl WebSocketHandler for Echo {
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.write_message(msg);
    }
}

const LIMIT: usize = 8 * 1024 * 1024;

fn server() -> Server {
    Server::start(|| {
        Application::builder()
            .compression(CompressionOptions::default())
            .websocket_max_message_size(LIMIT)
            .websocket("/.*", |_r: &Request| Echo)
            .build()
    })
}

fn handshake(srv: &Server, extensions: &str) -> (std::net::TcpStream, String) {
    let mut s = srv.connect();
    let req = util::upgrade_request("/", &format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    s.write_all(req.as_bytes()).unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 101, "{head}");
    (s, head)
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = util::client_frame(true, first & 0x0f, payload);
    f[0] = first;
    f
}

#[test]
fn negotiation_answers() {
    let srv = server();
    let (_, head) = handshake(&srv, "permessage-deflate; client_max_window_bits");
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate"),
        "{head}"
    );
    // An offer with an unknown parameter is declined; the next one is taken.
    let (_, head) = handshake(
        &srv,
        "permessage-deflate; foo=1, permessage-deflate; server_no_context_takeover",
    );
    let line = head
        .lines()
        .find(|l| l.starts_with("Sec-WebSocket-Extensions"))
        .expect("extension accepted");
    assert!(line.contains("server_no_context_takeover"), "{line}");
    // Only unknown extensions: none negotiated.
    let (_, head) = handshake(&srv, "x-webkit-deflate-frame");
    assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
}

#[test]
fn compressed_hello_round_trip_rfc7692_example() {
    let srv = server();
    let (mut s, _) = handshake(&srv, "permessage-deflate");
    // RFC 7692 §7.2.3.1: "Hello" compressed.
    s.write_all(&masked(0xc1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]))
        .unwrap();
    let (fin, op, payload) = read_frame(&mut s).unwrap();
    assert!(fin);
    assert_eq!(op, 1);
    // The echo may be compressed (RSV1) or not (under min_size); either way it is valid.
    assert!(
        payload == b"Hello" || payload == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        "{payload:?}"
    );
}

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A raw-deflate stream of `blocks` MiB of zeros, ~1 KiB per MiB: one
/// sync-flushed block repeated (each copy back-references the zeros before
/// it), with the final `00 00 ff ff` removed (RFC 7692 §7.2.1).
fn bomb(blocks: usize) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut block = Vec::with_capacity(64 * 1024);
    c.compress_vec(&zeros, &mut block, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(block.ends_with(&[0, 0, 0xff, 0xff]));
    let mut out = Vec::with_capacity(block.len() * blocks);
    for _ in 0..blocks {
        out.extend_from_slice(&block);
    }
    out.truncate(out.len() - 4);
    out
}

#[test]
fn decompression_bomb_closes_1009_with_bounded_memory() {
    let srv = server();
    let (mut s, _) = handshake(&srv, "permessage-deflate");
    let payload = bomb(1024); // inflates to 1 GiB
    assert!(
        payload.len() < 2 * 1024 * 1024,
        "bomb is {} bytes",
        payload.len()
    );
    let before = vm_rss_kib();
    s.write_all(&masked(0xc2, &payload)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (_, op, p) = read_frame(&mut s).expect("close frame");
    assert_eq!(op, 0x8);
    assert_eq!(&p[..2], &1009u16.to_be_bytes());
    let grown = vm_rss_kib().saturating_sub(before);
    assert!(
        (grown as usize) * 1024 < 2 * LIMIT,
        "RSS grew by {grown} KiB for a limit of {} KiB",
        LIMIT / 1024
    );
}

/// A compressed message within the limit on the wire that inflates past it
/// closes with 1009 and Tornado's reason for that case, "message too big
/// after decompression"; one too big on the wire keeps "message too big".
#[test]
fn inflated_past_the_limit_closes_with_tornados_reason() {
    let srv = server();
    let (mut s, _) = handshake(&srv, "permessage-deflate");
    let payload = bomb(16); // 16 KiB that inflate to 16 MiB
    assert!(payload.len() < LIMIT);
    s.write_all(&masked(0xc2, &payload)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (_, op, p) = read_frame(&mut s).expect("close frame");
    assert_eq!(op, 0x8);
    assert_eq!(&p[..2], &1009u16.to_be_bytes());
    assert_eq!(
        String::from_utf8_lossy(&p[2..]),
        "message too big after decompression"
    );

    // Only the header of a compressed frame one byte over the limit.
    let (mut s, _) = handshake(&srv, "permessage-deflate");
    let len = (LIMIT + 1) as u64;
    let mut head = vec![0xc2, 0x80 | 127];
    head.extend_from_slice(&len.to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&head).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (_, op, p) = read_frame(&mut s).expect("close frame");
    assert_eq!(op, 0x8);
    assert_eq!(&p[..2], &1009u16.to_be_bytes());
    assert_eq!(String::from_utf8_lossy(&p[2..]), "message too big");
}

/// A server whose own `client_max_window_bits` option is 8 asks for 9, not
/// for a window a cyclone client refuses (zlib cannot compress with 8): the
/// two ends of the library agree.
#[test]
fn server_client_max_window_bits_8_is_raised_to_9() {
    use cyclone::protocol::deflate::{client_accept, client_offer, negotiate_server};
    let srv = cyclone::protocol::CompressionOptions {
        client_max_window_bits: 8,
        ..Default::default()
    };
    let cli = cyclone::protocol::CompressionOptions::default();
    let offer = client_offer(&cli);
    let (params, response) = negotiate_server(&[offer.as_bytes()], &srv)
        .unwrap()
        .expect("accepted");
    assert_eq!(params.client_max_window_bits, 9, "{response}");
    let accepted = client_accept(&response, &cli);
    assert!(
        accepted.is_ok(),
        "{offer:?} -> {response:?} -> {accepted:?}"
    );
}
