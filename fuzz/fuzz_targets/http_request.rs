//! The HTTP request head parser (`Request::parse_head`) and the WebSocket
//! upgrade check over its headers.
//!
//! Input: byte 0 selects the limits, byte 1 seeds the read split, the rest
//! is what the peer sent.
//!
//! Invariants: no panic (parser and every accessor); parsing the buffer
//! whole and parsing the growing prefixes a server would see (`Partial`
//! until complete) give the same result; `used <= buf.len()` and
//! `used <= max_head_bytes`; a chunked request has no `Content-Length`;
//! the path of an absolute-form target (`http://host/p?q`) is the part
//! after its authority, `/` when it has none, and the target ends with
//! `path` then `?query`. One allowed difference: a prefix that is
//! still incomplete past `max_head_bytes` is `HeadTooLarge` while the whole
//! buffer may be `Malformed` further on (both are refusals).
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::http::request::{HeadLimits, HeadStatus, ParseError, Request};
use cyclone::protocol::deflate::negotiate_server;
use cyclone::protocol::handshake::check_upgrade;
use cyclone::protocol::CompressionOptions;

#[path = "../common/split.rs"]
mod split;

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    used: usize,
    method: String,
    path: String,
    query: String,
    uri: String,
    version_minor: u8,
    headers: Vec<(String, Vec<u8>)>,
    content_length: u64,
    chunked: bool,
    keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Res {
    Partial,
    Complete(Seen),
    Err(ParseError),
}

fn exercise(req: &Request) {
    let uri = req.uri();
    let (path, query) = (req.path(), req.query());
    if req.is_chunked() {
        assert_eq!(req.content_length(), 0);
    }
    if uri.is_empty() {
        // Not UTF-8 (the accessors then answer ""): nothing to compare.
    } else if !uri.starts_with('/') && uri != "*" && req.method() != "CONNECT" {
        // Absolute-form: only http(s), and the path after the authority.
        let lower = uri.to_ascii_lowercase();
        assert!(
            lower.starts_with("http://") || lower.starts_with("https://"),
            "{uri}"
        );
        assert!(path.starts_with('/'), "{uri} -> {path}");
        let after = &uri[uri.find("//").unwrap() + 2..];
        let authority_end = after.find(['/', '?']).unwrap_or(after.len());
        assert!(
            authority_end > 0 && !after[..authority_end].contains('@'),
            "empty authority or userinfo accepted: {uri}"
        );
        let origin = &after[authority_end..];
        let tail = if origin.contains('?') {
            format!("{path}?{query}")
        } else {
            path.to_owned()
        };
        if origin.starts_with('/') {
            assert_eq!(origin, tail);
        } else {
            assert_eq!(path, "/");
            assert_eq!(origin, &tail[1..]);
        }
    } else {
        let end = if uri.contains('?') {
            format!("{path}?{query}")
        } else {
            path.to_owned()
        };
        assert_eq!(uri, end);
    }
    let _ = req.host();
    let _ = req.heap_bytes();
    let _ = req.body();
    let names: Vec<String> = req.headers().map(|(n, _)| n.to_owned()).collect();
    for n in &names {
        assert!(req.header_bytes(n).is_some());
        let _ = req.header(n);
        assert!(req.header_all(n).count() >= 1);
    }
    for (k, _) in cyclone::http::request::parse_qs(req.query()) {
        let _ = req.query_arguments(&k);
        let _ = req.query_argument(&k);
    }
    for v in req.header_all("cookie") {
        if let Ok(v) = std::str::from_utf8(v) {
            for pair in v.split(';') {
                if let Some((k, _)) = pair.split_once('=') {
                    let _ = req.cookie(k.trim());
                }
            }
        }
    }
    let _ = req.cookie("session");
    let _ = cyclone::http::request::percent_decode(req.path(), false);
    let _ = cyclone::http::request::percent_decode(req.query(), true);
    let headers: Vec<(&str, &[u8])> = req.headers().collect();
    if let Ok(up) = check_upgrade(req.method(), req.version_minor(), &headers) {
        assert_eq!(up.key.len(), 24);
        let _ = negotiate_server(&up.extensions, &CompressionOptions::default());
    } else if let Err(e) = check_upgrade(req.method(), req.version_minor(), &headers) {
        let _ = e.status();
    }
}

fn parse(buf: &[u8], limits: &HeadLimits) -> Res {
    match Request::parse_head(buf, limits) {
        Ok(HeadStatus::Partial) => {
            assert!(buf.len() <= limits.max_head_bytes);
            Res::Partial
        }
        Ok(HeadStatus::Complete(req, used)) => {
            assert!(used <= buf.len());
            assert!(used <= limits.max_head_bytes);
            exercise(&req);
            Res::Complete(Seen {
                used,
                method: req.method().to_owned(),
                path: req.path().to_owned(),
                query: req.query().to_owned(),
                uri: req.uri().to_owned(),
                version_minor: req.version_minor(),
                headers: req
                    .headers()
                    .map(|(n, v)| (n.to_owned(), v.to_vec()))
                    .collect(),
                content_length: req.content_length(),
                chunked: req.is_chunked(),
                keep_alive: req.keep_alive(),
            })
        }
        Err(e) => {
            let _ = e.status();
            let _ = e.to_string();
            Res::Err(e)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = HeadLimits {
        max_head_bytes: [64, 512, 8192, 65536][(data[0] & 3) as usize],
        max_headers: [0, 1, 4, 32, 100, 128, 200, 1000][((data[0] >> 2) & 7) as usize],
    };
    let buf = &data[2..];
    let whole = parse(buf, &limits);
    // What a server sees: the head grows read by read; it parses again
    // only while the result is Partial.
    for end in split::split_points(u64::from(data[1]), buf.len()) {
        let r = parse(&buf[..end], &limits);
        if r == Res::Partial {
            continue;
        }
        // A head still incomplete past max_head_bytes is refused (431)
        // before the rest arrives; the whole buffer may instead show a
        // malformation (400) further on. Both refuse the request.
        if r == Res::Err(ParseError::HeadTooLarge) {
            assert!(
                matches!(whole, Res::Err(_)),
                "431 on a prefix, {whole:?} whole"
            );
            return;
        }
        assert_eq!(
            r, whole,
            "prefix of {end} bytes disagrees with the whole buffer"
        );
        return;
    }
    // Every prefix was Partial, including the whole buffer.
    assert_eq!(whole, Res::Partial);
});
