//! Request framing on a server connection's byte stream, without the
//! socket: bytes in (`push`, in whatever pieces reads return), requests out
//! (`poll_head`, then `take_request` once the body is here). The server
//! connection (`server::HttpConn`) reads into one of these, answers what
//! it yields and keeps the timers and the socket; the `http_stream` fuzz
//! target feeds one the same stream whole and split.
//!
//! Parsing cost is linear in the bytes received: a head that arrived whole
//! is parsed on first sight; one still arriving is parsed again only once
//! its end (an empty line) has arrived or a new line completed, and the
//! end search resumes where the previous one stopped (re-parsing a growing
//! head on every read is how CVE-2023-43669 happened).

use super::request::{head_too_large, HeadLimits, ParseError, Request};

/// Receive-buffer capacity a connection keeps between requests; a larger
/// one (left by a large body or head) is released once it is drained.
const BUF_KEEP: usize = 64 * 1024;

/// What [`RequestReader::poll_head`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPoll {
    /// No request has started: nothing is buffered but, at most, a CR
    /// whose LF has yet to come (empty lines before a request line are
    /// dropped, RFC 9112 §2.2).
    Idle,
    /// A request has started and its head is incomplete.
    Partial,
    /// A head is complete: [`RequestReader::pending`] is the request, whose
    /// body may still be arriving.
    Head,
}

/// Received bytes not yet consumed: `data[pos..]`. A request is consumed
/// by moving `pos` past it; the consumed bytes are dropped from the front
/// only before the next read, so a buffer of many pipelined requests costs
/// one move of what is left per read, not one per request (which made `n`
/// requests in one buffer cost O(n²) and let one peer stall the loop for
/// seconds).
#[derive(Default)]
struct InBuf {
    data: Vec<u8>,
    pos: usize,
}

impl InBuf {
    fn bytes(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    fn len(&self) -> usize {
        self.data.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the consumed prefix (a move of what is left).
    fn compact(&mut self) {
        if self.pos > 0 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        self.compact();
        self.data.extend_from_slice(bytes);
    }

    /// Marks `n` more bytes consumed.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
    }

    /// The next `n` bytes, consumed (the allocation itself when they are
    /// all there is).
    fn take(&mut self, n: usize) -> Vec<u8> {
        if self.pos == 0 && n == self.data.len() {
            return std::mem::take(&mut self.data);
        }
        let v = self.bytes()[..n].to_vec();
        self.consume(n);
        v
    }

    /// Everything not consumed.
    fn take_all(&mut self) -> Vec<u8> {
        self.compact();
        std::mem::take(&mut self.data)
    }

    /// Releases a buffer grown by a large head or body once little of it
    /// is in use, so an idle keep-alive connection costs what it holds, not
    /// the largest request it ever received.
    fn trim(&mut self) {
        if self.data.capacity() > BUF_KEEP {
            if self.is_empty() {
                self.data = Vec::new();
                self.pos = 0;
            } else if self.len() <= self.data.capacity() / 4 {
                self.compact();
                self.data.shrink_to_fit();
            }
        }
    }
}

/// The requests in a connection's byte stream, however it is cut into
/// reads: see the module docs.
#[derive(Default)]
pub struct RequestReader {
    /// Received bytes not yet consumed (after `pending`'s head).
    buf: InBuf,
    /// How far `buf` (its unconsumed bytes) has been searched for the end
    /// of the head.
    scanned: usize,
    /// A request whose head arrived and whose body is still arriving.
    pending: Option<Request>,
}

impl RequestReader {
    /// An empty reader.
    pub fn new() -> RequestReader {
        RequestReader::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.append(bytes);
    }

    /// The bytes received and not yet consumed: the start of a head, or
    /// what arrived after the pending request's head.
    pub fn buffered(&self) -> &[u8] {
        self.buf.bytes()
    }

    /// Whether nothing is buffered and no request is pending.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.pending.is_none()
    }

    /// The request whose head is complete, waiting for its body.
    pub fn pending(&self) -> Option<&Request> {
        self.pending.as_ref()
    }

    /// Looks for the next request's head (call again after each `push`
    /// while it answers `Partial`). `Head` once it is complete (also when
    /// one is already pending).
    ///
    /// # Errors
    /// The head cannot be a valid request (or is over `limits`): the
    /// connection answers [`ParseError::status`] and closes. A head over
    /// `max_head_bytes` whose request line alone is over it is
    /// [`ParseError::UriTooLong`] (414), else [`ParseError::HeadTooLarge`].
    pub fn poll_head(&mut self, limits: &HeadLimits) -> Result<HeadPoll, ParseError> {
        self.poll_head_inner(limits).map_err(|e| {
            if e == ParseError::HeadTooLarge {
                head_too_large(self.buf.bytes(), limits.max_head_bytes)
            } else {
                e
            }
        })
    }

    fn poll_head_inner(&mut self, limits: &HeadLimits) -> Result<HeadPoll, ParseError> {
        if self.pending.is_some() {
            return Ok(HeadPoll::Head);
        }
        if self.scanned == 0 && matches!(self.buf.bytes().first(), Some(b'\r' | b'\n')) {
            self.skip_empty_lines();
        }
        // Nothing, or a lone CR whose LF has yet to come (an empty line
        // split across reads): no request has started.
        if self.buf.is_empty() || (self.scanned == 0 && self.buf.bytes() == b"\r") {
            return Ok(HeadPoll::Idle);
        }
        // A head that arrived whole (the usual case: one read after
        // accept) is parsed at once. Only once it is known to be arriving
        // in pieces does the terminator search below gate re-parsing.
        let first_look = self.scanned == 0;
        let from = self.scanned.saturating_sub(3);
        if !first_look && find_head_end(&self.buf.bytes()[from..]).is_none() {
            // A line completed in the new bytes? Only then re-validate
            // what arrived so far (a malformed request line is refused
            // early): at most once per line, so a peer trickling bytes
            // costs linear, not quadratic, parsing.
            let new_line = self.buf.bytes()[self.scanned.min(self.buf.len())..].contains(&b'\n');
            self.head_arriving(limits)?;
            if new_line {
                Request::parse_head(self.buf.bytes(), limits)?;
            }
            return Ok(HeadPoll::Partial);
        }
        match Request::parse_head_at(&mut self.buf.data, &mut self.buf.pos, limits)? {
            Some(req) => {
                self.scanned = 0;
                self.pending = Some(req);
                Ok(HeadPoll::Head)
            }
            None => {
                // First look at a head still arriving: from now on only
                // the new bytes are searched for its end.
                self.head_arriving(limits)?;
                Ok(HeadPoll::Partial)
            }
        }
    }

    /// The pending request with its body, once the body has arrived
    /// (`None` before, or without a pending request).
    pub fn take_request(&mut self) -> Option<Request> {
        let need = usize::try_from(self.pending.as_ref()?.content_length()).ok()?;
        if self.buf.len() < need {
            return None;
        }
        let mut req = self.pending.take()?;
        if need > 0 {
            req.set_body(self.buf.take(need));
        }
        self.buf.trim();
        Some(req)
    }

    /// Everything buffered (after an upgrade: the first frames).
    pub fn take_all(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.buf.take_all()
    }

    /// Drops the empty lines (CRLF or LF) before a request line: RFC 9112
    /// §2.2 says to ignore them (old clients send one after a POST body).
    /// Dropped here, bytes that start no request leave the connection idle
    /// rather than make it wait for a request with `request_timeout`.
    fn skip_empty_lines(&mut self) {
        let bytes = self.buf.bytes();
        let mut n = 0;
        while let Some(rest) = bytes.get(n..) {
            match rest {
                [b'\n', ..] => n += 1,
                [b'\r', b'\n', ..] => n += 2,
                _ => break,
            }
        }
        self.buf.consume(n);
    }

    /// The head is incomplete: marks what arrived as searched and refuses
    /// it once it is over the size limit.
    fn head_arriving(&mut self, limits: &HeadLimits) -> Result<(), ParseError> {
        self.scanned = self.buf.len();
        if self.scanned > limits.max_head_bytes {
            return Err(ParseError::HeadTooLarge);
        }
        Ok(())
    }
}

/// Where the head ends in `b` (just past its empty line), if it does: CRLF
/// CRLF, or a bare LF in either place, which httparse accepts too (RFC 9112
/// §2.2 lets a recipient take LF as a line terminator; Tornado does). So a
/// head is served the same whether it arrived whole or in pieces.
fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'\n') {
        let at = i + p;
        match (b.get(at + 1), b.get(at + 2)) {
            (Some(b'\n'), _) => return Some(at + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{find_head_end, HeadPoll, RequestReader};
    use crate::http::request::HeadLimits;

    const LIMITS: HeadLimits = HeadLimits {
        max_head_bytes: 4096,
        max_headers: 32,
    };

    /// Feeds `stream` in the given pieces; the requests' URIs and bodies,
    /// and what is left buffered.
    fn feed(stream: &[u8], cuts: &[usize]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
        let mut r = RequestReader::new();
        let mut got = Vec::new();
        let mut at = 0;
        for &end in cuts.iter().chain([stream.len()].iter()) {
            r.push(&stream[at..end]);
            at = end;
            loop {
                if r.pending().is_none() {
                    match r.poll_head(&LIMITS).expect("valid stream") {
                        HeadPoll::Idle | HeadPoll::Partial => break,
                        HeadPoll::Head => {}
                    }
                }
                match r.take_request() {
                    Some(req) => got.push((req.uri().to_owned(), req.body().to_vec())),
                    None => break,
                }
            }
        }
        (got, r.buffered().to_vec())
    }

    /// Pipelined requests (bodies, bare LF heads, empty lines between
    /// requests) give the same requests cut anywhere once, and byte by
    /// byte: a head end cut across reads (`\r\n\r` + `\n`) is found
    /// when nothing follows it.
    #[test]
    fn pipelined_stream_cut_anywhere_gives_the_same_requests() {
        let stream = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\n\
            \nGET /c HTTP/1.1\nHost: x\n\n\
            POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
            GET /e HTTP/1.1\r\nHo";
        let whole = feed(stream, &[]);
        assert_eq!(
            whole.0.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(),
            ["/a", "/b", "/c", "/d"]
        );
        assert_eq!(whole.0[1].1, b"hello");
        assert_eq!(whole.1, b"GET /e HTTP/1.1\r\nHo");
        for cut in 1..stream.len() {
            assert_eq!(feed(stream, &[cut]), whole, "cut at {cut}");
        }
        let ones: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(feed(stream, &ones), whole, "byte by byte");
    }

    #[test]
    fn head_end_with_crlf_and_bare_lf() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"),
            Some(24)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nA: b\n\nbody"), Some(21));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nA: b\r\n\n"), Some(22));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\n\r\n"), Some(23));
        for partial in [
            &b"GET / HTTP/1.1\r\nA: b\r\n\r"[..],
            b"\r\nA\r\n",
            b"",
            b"\n",
            b"\n\r",
        ] {
            assert_eq!(find_head_end(partial), None, "{partial:?}");
        }
    }
}
