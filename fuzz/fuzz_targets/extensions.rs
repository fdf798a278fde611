//! `Sec-WebSocket-Extensions` parsing and permessage-deflate negotiation.
//!
//! Input: byte 0 selects the server's options, the rest is split on '\n'
//! into up to 8 header values.
//!
//! Invariants: no panic in `parse_extensions`, `negotiate_server` or
//! `client_accept`; `negotiate_server` never returns `Err`; when it agrees,
//! its response header parses as exactly one permessage-deflate element
//! and a client that offered with default options accepts it with the
//! same parameters the server chose -- except `client_max_window_bits=8`,
//! which `client_accept` refuses on purpose (zlib cannot compress with an
//! 8-bit window, see the deflate module docs; a cyclone client never
//! offers 8, only other clients do).
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::protocol::deflate::{client_accept, client_offer, negotiate_server};
use cyclone::protocol::handshake::parse_extensions;
use cyclone::protocol::CompressionOptions;

fn opts_from(b: u8) -> CompressionOptions {
    CompressionOptions {
        server_max_window_bits: 8 + (b & 7),
        client_max_window_bits: 8 + ((b >> 3) & 7),
        server_no_context_takeover: b & 0x40 != 0,
        client_no_context_takeover: b & 0x80 != 0,
        ..CompressionOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let opts = opts_from(data[0]);
    let values: Vec<&[u8]> = data[1..].split(|&b| b == b'\n').take(8).collect();
    for v in &values {
        if let Ok(offers) = parse_extensions(v) {
            for o in &offers {
                assert!(!o.name.is_empty());
            }
        }
        let s = String::from_utf8_lossy(v);
        let _ = client_accept(&s, &CompressionOptions::default());
        let _ = client_accept(&s, &opts);
    }
    let answer = negotiate_server(&values, &opts).expect("negotiate_server never fails today");
    if let Some((params, resp)) = answer {
        assert!((9..=15).contains(&params.server_max_window_bits));
        assert!((8..=15).contains(&params.client_max_window_bits));
        let parsed = parse_extensions(resp.as_bytes()).expect("our own response parses");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].name, "permessage-deflate");
        match client_accept(&resp, &CompressionOptions::default()) {
            Ok(p) => assert_eq!(p, params, "client and server disagree on {resp:?}"),
            Err(e) => assert_eq!(
                params.client_max_window_bits, 8,
                "client refuses {resp:?}: {e:?}"
            ),
        }
    }
    // Our own offer for these options is always accepted by our server.
    let offer = client_offer(&opts);
    let mine = negotiate_server(&[offer.as_bytes()], &CompressionOptions::default())
        .expect("never fails");
    let (params, resp) = mine.expect("a cyclone offer is accepted");
    assert_eq!(client_accept(&resp, &opts).expect("and the answer accepted"), params);
});
