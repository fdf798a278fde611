//! The client's handshake-response parser (`parse_client_response`) with a
//! fixed key and offered subprotocols, fed whole and as growing prefixes.
//!
//! Input: byte 0 seeds the read split, the rest is the server's response.
//!
//! Invariants: no panic; `head_len <= buf.len()`; the first prefix that is
//! not `Ok(None)` gives the same answer as the whole buffer (for
//! `BadStatus` the body is what followed the head so far, so it must be a
//! prefix of the whole buffer's body); an accepted response's extensions
//! go through `client_accept` without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::protocol::deflate::client_accept;
use cyclone::protocol::handshake::{parse_client_response, ClientResponse};
use cyclone::protocol::{CompressionOptions, HandshakeError};

#[path = "../common/split.rs"]
mod split;

const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";

fn parse(buf: &[u8], offered: &[String]) -> Result<Option<ClientResponse>, HandshakeError> {
    let r = parse_client_response(buf, KEY, offered);
    match &r {
        Ok(Some(resp)) => {
            assert_eq!(resp.status, 101);
            assert!(resp.head_len <= buf.len());
            if let Some(p) = &resp.subprotocol {
                assert!(offered.contains(p));
            }
            if let Some(ext) = &resp.extensions {
                let _ = client_accept(ext, &CompressionOptions::default());
                let opts = CompressionOptions {
                    server_max_window_bits: 10,
                    client_max_window_bits: 9,
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    ..CompressionOptions::default()
                };
                let _ = client_accept(ext, &opts);
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.status();
            let _ = format!("{e:?}");
        }
    }
    r
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let offered = vec!["chat".to_owned(), "superchat".to_owned()];
    let buf = &data[1..];
    let whole = parse(buf, &offered);
    for end in split::split_points(u64::from(data[0]), buf.len()) {
        let r = parse(&buf[..end], &offered);
        match (&r, &whole) {
            (Ok(None), _) => continue,
            (
                Err(HandshakeError::BadStatus { status: s1, body: b1, .. }),
                Err(HandshakeError::BadStatus { status: s2, body: b2, .. }),
            ) => {
                assert_eq!(s1, s2);
                assert!(b2.starts_with(b1), "BadStatus body is not a prefix");
            }
            _ => assert_eq!(r, whole, "prefix of {end} bytes disagrees with the whole buffer"),
        }
        return;
    }
    assert_eq!(whole, Ok(None));
});
