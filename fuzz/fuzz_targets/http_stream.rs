//! A server connection's byte stream (`http::reader::RequestReader`, what
//! `HttpConn` reads into): pipelined requests, `Content-Length` and chunked
//! bodies, empty lines between requests, fed whole, split into reads, and
//! (short inputs) byte by byte.
//!
//! Input: byte 0 selects the limits (head size, header count, body size)
//! and the mode, byte 1 seeds the read split, the rest is what the peer
//! sent. In chunked round-trip mode (bit 6 of byte 0) the rest is instead
//! the body of a chunked POST, cut into chunks by its own bytes (each
//! chunk's first byte is its control byte: size 1 to 32, hex case, a
//! leading zero, an extension), with or without a trailer (bit 0 of byte
//! 1), and followed by a pipelined GET: the decoded body must be exactly
//! those bytes (or 413 over the body limit), then the GET.
//!
//! Invariants: no panic; every request's body is its `Content-Length`, or
//! for a chunked one its decoded body; while a chunked body is incomplete
//! nothing is left buffered (every byte is decoded once, as it arrives);
//! the requests yielded, and how the stream ends (a refusal, or the
//! pending head and unconsumed bytes), are the same whole, split and byte
//! by byte; and the same again when bodies are taken as they arrive
//! (`take_body_piece`, for `stream_request_body`), split the same way: the
//! pieces of each body, joined, are its body, and what a pending
//! `Content-Length` body gave out plus what is buffered is what stays
//! buffered without streaming. Two allowed differences, after the same requests: a head
//! refused as too large (431/414) while still arriving, where the whole
//! stream shows another refusal further on (as in `http_request`); and a
//! head whose error is in its last, incomplete line, refused whole but
//! still waiting for that line's end when it arrived in pieces (a head
//! arriving in pieces is re-validated once per completed line, to keep
//! parsing linear); then the bytes buffered are refused when parsed, and
//! parse as incomplete up to their last line end.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::http::reader::{HeadPoll, RequestReader};
use cyclone::http::request::{HeadLimits, HeadStatus, ParseError, Request};

#[path = "../common/split.rs"]
mod split;

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    uri: String,
    version_minor: u8,
    headers: Vec<(String, Vec<u8>)>,
    content_length: u64,
    chunked: bool,
    keep_alive: bool,
    body: Vec<u8>,
}

fn seen(req: &Request) -> Seen {
    Seen {
        method: req.method().to_owned(),
        uri: req.uri().to_owned(),
        version_minor: req.version_minor(),
        headers: req
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect(),
        content_length: req.content_length(),
        chunked: req.is_chunked(),
        keep_alive: req.keep_alive(),
        body: req.body().to_vec(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The stream ended with this head pending (its body incomplete), or
    /// none, and these bytes not consumed.
    Open(Option<Seen>, Vec<u8>),
    /// A head or body the server refuses (the connection closes): a
    /// `Content-Length` or chunked body over the body limit is
    /// `BodyTooLarge` (413).
    Refused(ParseError),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Seen>,
    end: End,
}

fn run(stream: &[u8], chunks: &[usize], limits: &HeadLimits, max_body: u64) -> Outcome {
    run_as(stream, chunks, limits, max_body, false)
}

/// `run`, bodies taken whole (`take_request`) or in pieces as they
/// arrive (`streamed`: `take_body_piece`).
fn run_as(
    stream: &[u8],
    chunks: &[usize],
    limits: &HeadLimits,
    max_body: u64,
    streamed: bool,
) -> Outcome {
    let mut r = RequestReader::new();
    let mut requests = Vec::new();
    let mut pos = 0;
    // The pending body's pieces so far (streamed).
    let mut taken: Vec<u8> = Vec::new();
    for &n in chunks {
        r.push(&stream[pos..pos + n]);
        pos += n;
        loop {
            if r.pending().is_none() {
                match r.poll_head(limits) {
                    Ok(HeadPoll::Idle | HeadPoll::Partial) => break,
                    Err(e) => {
                        return Outcome {
                            requests,
                            end: End::Refused(e),
                        }
                    }
                    Ok(HeadPoll::Head) => {}
                }
            }
            if streamed {
                match r.take_body_piece(limits, max_body) {
                    Ok(Some(piece)) => {
                        taken.extend_from_slice(&piece.data);
                        match piece.done {
                            Some(req) => {
                                assert!(req.body().is_empty());
                                let mut s = seen(&req);
                                s.body = std::mem::take(&mut taken);
                                if req.is_chunked() {
                                    assert!(s.body.len() as u64 <= max_body);
                                } else {
                                    assert_eq!(s.body.len() as u64, req.content_length());
                                }
                                requests.push(s);
                                continue;
                            }
                            None => {
                                if r.pending().expect("pending").is_chunked() {
                                    assert!(r.buffered().is_empty(), "chunked bytes left undecoded");
                                }
                                break;
                            }
                        }
                    }
                    Ok(None) => unreachable!("a pending request"),
                    Err(e) => {
                        return Outcome {
                            requests,
                            end: End::Refused(e),
                        }
                    }
                }
            }
            let req = match r.take_request(limits, max_body) {
                Ok(Some(req)) => req,
                Ok(None) => {
                    let p = r.pending().expect("pending");
                    if p.is_chunked() {
                        assert!(r.buffered().is_empty(), "chunked bytes left undecoded");
                    } else {
                        assert!((r.buffered().len() as u64) < p.content_length());
                    }
                    break;
                }
                Err(e) => {
                    return Outcome {
                        requests,
                        end: End::Refused(e),
                    }
                }
            };
            if req.is_chunked() {
                assert_eq!(req.content_length(), 0);
                assert!(req.body().len() as u64 <= max_body);
            } else {
                assert_eq!(req.body().len() as u64, req.content_length());
            }
            requests.push(seen(&req));
        }
    }
    assert_eq!(pos, stream.len());
    let pending = r.pending().map(seen);
    // A `Content-Length` body given out in pieces was buffered whole
    // without streaming; a chunked one's decoded part is not kept then.
    let mut buffered = Vec::new();
    if r.pending().is_some_and(|p| !p.is_chunked()) {
        buffered = taken;
    }
    buffered.extend_from_slice(r.buffered());
    Outcome {
        requests,
        end: End::Open(pending, buffered),
    }
}

fn agree(whole: &Outcome, other: &Outcome, limits: &HeadLimits, how: &str) {
    if let End::Refused(ParseError::HeadTooLarge | ParseError::UriTooLong) = other.end {
        if matches!(whole.end, End::Refused(_)) {
            assert_eq!(whole.requests, other.requests, "{how}: requests differ");
            return;
        }
    }
    // A head arriving in pieces is re-validated only when a line completes
    // (linear cost): an error in its last, incomplete line shows once that
    // line ends, while the whole stream shows it at once. Then what is
    // buffered is refused as a whole, and is fine up to its last line end.
    if let (End::Refused(_), End::Open(None, rest)) = (&whole.end, &other.end) {
        assert_eq!(whole.requests, other.requests, "{how}: requests differ");
        let lines = rest.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        assert!(
            matches!(
                Request::parse_head(&rest[..lines], limits),
                Ok(HeadStatus::Partial)
            ),
            "{how}: an error in a complete line was not refused"
        );
        assert!(
            Request::parse_head(rest, limits).is_err(),
            "{how}: refused whole, but what is buffered parses"
        );
        return;
    }
    assert_eq!(
        whole, other,
        "{how}: outcome differs from the whole stream's"
    );
}

/// The chunked round-trip stream for `body_spec` (see the module docs), and
/// the body it carries.
fn chunked_stream(body_spec: &[u8], trailer: bool) -> (Vec<u8>, Vec<u8>) {
    let mut stream = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut body = Vec::new();
    let mut rest = body_spec;
    while let [control, tail @ ..] = rest {
        let len = usize::from(control & 31) + 1;
        let data = &tail[..len.min(tail.len())];
        if data.is_empty() {
            break;
        }
        let size = if control & 32 != 0 {
            format!("{:X}", data.len())
        } else {
            format!("{:x}", data.len())
        };
        if control & 64 != 0 {
            stream.push(b'0');
        }
        stream.extend_from_slice(size.as_bytes());
        if control & 128 != 0 {
            stream.extend_from_slice(b" ; e=\"v;\"");
        }
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(data);
        stream.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        rest = &tail[data.len()..];
    }
    stream.extend_from_slice(b"0\r\n");
    if trailer {
        stream.extend_from_slice(b"X-Sum: 1\r\n");
    }
    stream.extend_from_slice(b"\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    (stream, body)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let b = data[0];
    let round_trip = b & 64 != 0;
    let limits = if round_trip {
        HeadLimits {
            max_head_bytes: 8192,
            max_headers: 32,
        }
    } else {
        HeadLimits {
            max_head_bytes: [64, 512, 8192, 65536][usize::from(b & 3)],
            max_headers: [1, 4, 32, 100][usize::from((b >> 2) & 3)],
        }
    };
    let max_body = [0, 16, 1024, 1 << 20][usize::from((b >> 4) & 3)];
    let built;
    let stream = if round_trip {
        let (s, body) = chunked_stream(&data[2..], data[1] & 1 != 0);
        let got = run(&s, &[s.len()], &limits, max_body);
        if body.len() as u64 > max_body {
            assert_eq!(got.end, End::Refused(ParseError::BodyTooLarge));
            assert!(got.requests.is_empty());
        } else {
            assert_eq!(got.end, End::Open(None, Vec::new()));
            let uris: Vec<&str> = got.requests.iter().map(|r| r.uri.as_str()).collect();
            assert_eq!(uris, ["/c", "/after"]);
            assert!(got.requests[0].chunked);
            assert!(got.requests[0].body == body, "decoded body differs");
        }
        built = s;
        &built[..]
    } else {
        &data[2..]
    };
    let whole = run(stream, &[stream.len()], &limits, max_body);
    let chunks = split::chunk_lengths(u64::from(data[1]), stream.len());
    let split = run(stream, &chunks, &limits, max_body);
    agree(&whole, &split, &limits, "split");
    assert_eq!(
        run_as(stream, &[stream.len()], &limits, max_body, true),
        whole,
        "whole, streamed: outcome differs"
    );
    assert_eq!(
        run_as(stream, &chunks, &limits, max_body, true),
        split,
        "split, streamed: outcome differs"
    );
    if stream.len() <= 512 {
        let ones = vec![1; stream.len()];
        agree(
            &whole,
            &run(stream, &ones, &limits, max_body),
            &limits,
            "byte by byte",
        );
    }
});
