//! A server connection's byte stream (`http::reader::RequestReader`, what
//! `HttpConn` reads into): pipelined requests, bodies, empty lines between
//! requests, fed whole, split into reads, and (short inputs) byte by byte.
//!
//! Input: byte 0 selects the limits (head size, header count, body size),
//! byte 1 seeds the read split, the rest is what the peer sent.
//!
//! Invariants: no panic; every request's body is its `Content-Length`;
//! the requests yielded, and how the stream ends (a refusal, or the
//! pending head and unconsumed bytes), are the same whole, split and byte
//! by byte. Two allowed differences, after the same requests: a head
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
        keep_alive: req.keep_alive(),
        body: req.body().to_vec(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The stream ended with this head pending (its body incomplete), or
    /// none, and these bytes not consumed.
    Open(Option<Seen>, Vec<u8>),
    /// A head the server refuses (the connection closes).
    Refused(ParseError),
    /// A `Content-Length` over the body limit (413).
    BodyTooLarge,
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Seen>,
    end: End,
}

fn run(stream: &[u8], chunks: &[usize], limits: &HeadLimits, max_body: u64) -> Outcome {
    let mut r = RequestReader::new();
    let mut requests = Vec::new();
    let mut pos = 0;
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
                    Ok(HeadPoll::Head) => {
                        let p = r.pending().expect("Head means a pending request");
                        if p.content_length() > max_body {
                            return Outcome {
                                requests,
                                end: End::BodyTooLarge,
                            };
                        }
                    }
                }
            }
            let Some(req) = r.take_request() else {
                assert!(
                    (r.buffered().len() as u64) < r.pending().expect("pending").content_length()
                );
                break;
            };
            assert_eq!(req.body().len() as u64, req.content_length());
            requests.push(seen(&req));
        }
    }
    assert_eq!(pos, stream.len());
    let pending = r.pending().map(seen);
    Outcome {
        requests,
        end: End::Open(pending, r.buffered().to_vec()),
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

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let b = data[0];
    let limits = HeadLimits {
        max_head_bytes: [64, 512, 8192, 65536][usize::from(b & 3)],
        max_headers: [1, 4, 32, 100][usize::from((b >> 2) & 3)],
    };
    let max_body = [0, 16, 1024, 1 << 20][usize::from((b >> 4) & 3)];
    let stream = &data[2..];
    let whole = run(stream, &[stream.len()], &limits, max_body);
    let chunks = split::chunk_lengths(u64::from(data[1]), stream.len());
    agree(
        &whole,
        &run(stream, &chunks, &limits, max_body),
        &limits,
        "split",
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
