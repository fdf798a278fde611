//! Request framing on a server connection's byte stream, without the
//! socket: bytes in (`push`, in whatever pieces reads return), requests out
//! (`poll_head`, then `take_request` once the body is here, or
//! `take_body_piece` for a body handed on as it arrives). The server
//! connection (`server::HttpConn`) reads into one of these, answers what
//! it yields and keeps the timers and the socket; the `http_stream` fuzz
//! target feeds one the same stream whole and split.
//!
//! Parsing cost is linear in the bytes received: a head that arrived whole
//! is parsed on first sight; one still arriving is parsed again only once
//! its end (an empty line) has arrived or a new line completed, and the
//! end search resumes where the previous one stopped (re-parsing a growing
//! head on every read is how CVE-2023-43669 happened).
//!
//! A body is framed by `Content-Length` (taken whole once it is all
//! buffered) or by `Transfer-Encoding: chunked` (RFC 9112 §7.1), decoded
//! as it arrives by a state machine kept between reads: each received byte
//! of a chunked body is looked at once and consumed (chunk data is copied
//! to the decoded body in runs), however the stream is cut, so nothing is
//! re-scanned and nothing of it stays buffered once decoded. Chunk
//! extensions and trailer fields are checked and dropped. Strict framing
//! (request smuggling lives in lenient chunk parsers): a chunk size is 1
//! to 16 hex digits, then optional whitespace only before a `;`
//! extension; every line ends with CRLF (a bare LF or CR is a
//! [`ParseError::BadChunk`], 400), as does every chunk's data. Bounds:
//! the decoded body is held to the body limit (413, a chunk that would
//! pass it is refused from its size line); a chunk-size line, extensions
//! included, to [`MAX_CHUNK_LINE`] bytes (400); the framing of all chunks
//! together (size lines and CRLFs) to 16 bytes plus twice the data per
//! chunk, with [`MAX_CHUNK_EXCESS`] bytes of slack per body (400: however
//! it is chunked, a body costs at most 19 bytes on the wire per decoded
//! byte plus that slack, so a flood of tiny chunks or long extensions is
//! bounded by the body limit); the trailer section to the head limits
//! (431).

use super::request::{head_too_large, is_tchar, HeadLimits, ParseError, Request};

/// Longest chunk-size line, chunk extensions and CRLF included (400
/// beyond).
pub const MAX_CHUNK_LINE: usize = 4096;

/// Framing bytes of a chunked body beyond the allowance of 16 bytes plus
/// twice the data per chunk (as Go's `net/http`): at most this many over
/// the whole body (400 beyond).
pub const MAX_CHUNK_EXCESS: u64 = 16 * 1024;

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
    /// The pending request's chunked body, decoded so far.
    chunked: Option<ChunkedBody>,
    /// Bytes of the pending request's `Content-Length` body already given
    /// out by [`take_body_piece`](RequestReader::take_body_piece).
    body_seen: u64,
}

/// A piece of a body taken as it arrives
/// ([`RequestReader::take_body_piece`]).
#[derive(Debug)]
pub struct BodyPiece {
    /// The bytes that arrived since the last piece (decoded, for a chunked
    /// body; possibly empty).
    pub data: Vec<u8>,
    /// The request, once its body is complete (its `body()` is empty: the
    /// body went out in pieces).
    pub done: Option<Request>,
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
    /// what arrived after the pending request's head (for a chunked body,
    /// after what was decoded: while the body is incomplete, nothing once
    /// `take_request` has looked at it).
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

    /// The pending request, to complete what its head does not say (the
    /// peer's address) before anything reads it.
    pub fn pending_mut(&mut self) -> Option<&mut Request> {
        self.pending.as_mut()
    }

    /// The pending request's body as far as it has arrived, without
    /// keeping it (Tornado's `@stream_request_body`): the bytes since the
    /// last call, and the request once the body is complete. `None`
    /// without a pending request. The same framing checks and bounds as
    /// [`take_request`](Self::take_request), `max_body` counting the whole
    /// body.
    ///
    /// # Errors
    /// As [`take_request`](Self::take_request).
    pub fn take_body_piece(
        &mut self,
        limits: &HeadLimits,
        max_body: u64,
    ) -> Result<Option<BodyPiece>, ParseError> {
        let Some(pending) = self.pending.as_ref() else {
            return Ok(None);
        };
        let (data, done) = if pending.is_chunked() {
            let dec = self.decode_chunked(limits, max_body)?;
            let data = std::mem::take(&mut dec.body);
            let done = dec.is_done();
            if done {
                self.chunked = None;
            }
            (data, done)
        } else {
            let length = pending.content_length();
            if length > max_body {
                return Err(ParseError::BodyTooLarge);
            }
            let left = length - self.body_seen;
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let data = self.buf.take(n);
            self.body_seen += n as u64;
            (data, self.body_seen == length)
        };
        let done = if done {
            self.body_seen = 0;
            let req = self.pending.take();
            self.buf.trim();
            req
        } else {
            None
        };
        Ok(Some(BodyPiece { data, done }))
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
    /// (`None` before, or without a pending request). A chunked body is
    /// decoded as far as it has arrived on each call; the request's
    /// [`body`](Request::body) is the decoded body. `limits` bound the
    /// trailer section, `max_body` the body.
    ///
    /// # Errors
    /// The connection answers [`ParseError::status`] and closes:
    /// [`ParseError::BodyTooLarge`] (413) for a `Content-Length` over
    /// `max_body` or a chunked body that would grow over it,
    /// [`ParseError::BadChunk`] (400) for a malformed chunked body or one
    /// over a framing bound (see the module docs), 431 for trailer fields
    /// over `limits`.
    pub fn take_request(
        &mut self,
        limits: &HeadLimits,
        max_body: u64,
    ) -> Result<Option<Request>, ParseError> {
        let Some(pending) = self.pending.as_ref() else {
            return Ok(None);
        };
        let body = if pending.is_chunked() {
            let dec = self.decode_chunked(limits, max_body)?;
            if !dec.is_done() {
                return Ok(None);
            }
            self.chunked.take().map(|d| d.body).unwrap_or_default()
        } else {
            if pending.content_length() > max_body {
                return Err(ParseError::BodyTooLarge);
            }
            let Ok(need) = usize::try_from(pending.content_length()) else {
                return Err(ParseError::BodyTooLarge);
            };
            if self.buf.len() < need {
                return Ok(None);
            }
            self.buf.take(need)
        };
        let req = self.pending.take().map(|mut req| {
            if !body.is_empty() {
                req.set_body(body);
            }
            req
        });
        self.buf.trim();
        Ok(req)
    }

    /// Decodes what arrived of the pending request's chunked body.
    fn decode_chunked(
        &mut self,
        limits: &HeadLimits,
        max_body: u64,
    ) -> Result<&mut ChunkedBody, ParseError> {
        let dec = self.chunked.get_or_insert_with(ChunkedBody::default);
        let used = dec.decode(self.buf.bytes(), limits, max_body)?;
        self.buf.consume(used);
        Ok(dec)
    }

    /// Everything buffered (after an upgrade: the first frames).
    pub fn take_all(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.chunked = None;
        self.body_seen = 0;
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

/// Where a chunked body's decoder is (RFC 9112 §7.1):
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Chunk {
    /// In the chunk size's hex digits.
    #[default]
    Size,
    /// Whitespace after the size: a `;` must follow.
    SizeSpace,
    /// In the extensions (ignored), up to CR.
    Ext,
    /// The size line's CR was seen: LF must follow.
    SizeLf,
    /// In the chunk's data.
    Data,
    /// After the data: CR, then LF, must follow.
    DataCr,
    DataLf,
    /// At the start of a trailer field line, or of the final empty line.
    TrailerStart,
    /// In a trailer field's name, then its value (ignored).
    TrailerName,
    TrailerValue,
    /// A trailer line's CR was seen: LF must follow.
    TrailerLf,
    /// The final empty line's CR was seen: LF must follow.
    EndLf,
    /// The body is complete.
    Done,
}

/// The data of a whole chunked body held in memory (a response read to
/// its end, by `cyclone::testing`'s `fetch`), decoded as strictly as a
/// request's, with no size bound: `None` if it is malformed or ends
/// before its last chunk. What follows the body is ignored.
pub(crate) fn decode_chunked_whole(input: &[u8]) -> Option<Vec<u8>> {
    let mut dec = ChunkedBody::default();
    let limits = HeadLimits {
        max_head_bytes: usize::MAX,
        max_headers: usize::MAX,
    };
    dec.decode(input, &limits, u64::MAX).ok()?;
    dec.is_done().then_some(dec.body)
}

/// A chunked response body decoded as it arrives (the WebSocket client's
/// answer other than 101, `websocket::client`): the same strict decoder
/// as a request's, fed the bytes after those it used before.
#[derive(Default)]
pub(crate) struct ChunkedDecoder(ChunkedBody);

impl ChunkedDecoder {
    /// Decodes from the start of `input`: the bytes used (all of them
    /// unless the body ended before). `Err` if the framing is malformed or
    /// the data passes `max` bytes (what was decoded is kept).
    pub(crate) fn feed(&mut self, input: &[u8], max: usize) -> Result<usize, ParseError> {
        let limits = HeadLimits {
            max_head_bytes: max,
            max_headers: 100,
        };
        self.0.decode(input, &limits, max as u64)
    }

    /// Whether the last chunk and the trailer section arrived.
    pub(crate) fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// The data decoded so far.
    pub(crate) fn body(&self) -> &[u8] {
        &self.0.body
    }
}

/// A chunked body being decoded: the state between reads, and the body.
#[derive(Default)]
struct ChunkedBody {
    state: Chunk,
    /// The chunk size read so far, and its digits.
    size: u64,
    digits: u8,
    /// Data bytes left in the current chunk.
    left: u64,
    /// Bytes of the current chunk-size line.
    line: usize,
    /// Framing bytes not covered by the per-chunk allowance.
    excess: u64,
    /// Data bytes announced by the chunk sizes so far (checked against
    /// the body limit; the body itself may have been taken in pieces).
    decoded: u64,
    /// Bytes and field lines of the trailer section.
    trailer_bytes: usize,
    trailer_lines: usize,
    /// The decoded body.
    body: Vec<u8>,
}

impl ChunkedBody {
    fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Decodes from the start of `input`: the bytes used (all of them
    /// unless the body ended before).
    fn decode(
        &mut self,
        input: &[u8],
        limits: &HeadLimits,
        max_body: u64,
    ) -> Result<usize, ParseError> {
        let mut i = 0;
        while i < input.len() && self.state != Chunk::Done {
            if self.state == Chunk::Data {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                self.body.extend_from_slice(&input[i..i + n]);
                i += n;
                self.left -= n as u64;
                if self.left == 0 {
                    self.state = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.framing_byte(b, limits, max_body)?;
        }
        Ok(i)
    }

    /// One byte of framing (anything but chunk data).
    fn framing_byte(
        &mut self,
        b: u8,
        limits: &HeadLimits,
        max_body: u64,
    ) -> Result<(), ParseError> {
        use Chunk::*;
        let bad = ParseError::BadChunk;
        match self.state {
            Size | SizeSpace | Ext | SizeLf | DataCr | DataLf => {
                self.excess += 1;
                if self.excess > MAX_CHUNK_EXCESS {
                    return Err(bad("too much framing for the data"));
                }
            }
            _ => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > limits.max_head_bytes {
                    return Err(ParseError::HeadTooLarge);
                }
            }
        }
        if matches!(self.state, Size | SizeSpace | Ext | SizeLf) {
            self.line += 1;
            if self.line > MAX_CHUNK_LINE {
                return Err(bad("chunk-size line too long"));
            }
        }
        // Inside an extension or a field value: HTAB, SP, VCHAR, obs-text.
        let text = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
        self.state = match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                self.digits += 1;
                if self.digits > 16 {
                    return Err(bad("chunk size over 16 hex digits"));
                }
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(bad("chunk size overflows"))?;
                Size
            }
            (Size, _) if self.digits == 0 => return Err(bad("invalid chunk size")),
            (Size | Ext, b'\r') => SizeLf,
            (Size | SizeSpace | Ext, b'\n') => return Err(bad("bare LF ends a chunk-size line")),
            (Size | SizeSpace, b' ' | b'\t') => SizeSpace,
            (Size | SizeSpace, b';') => Ext,
            (Size, _) => return Err(bad("invalid chunk size")),
            (SizeSpace, _) => return Err(bad("whitespace in a chunk-size line")),
            (Ext, _) if text(b) => Ext,
            (Ext, _) => return Err(bad("invalid byte in a chunk extension")),
            (SizeLf, b'\n') => self.size_line_done(max_body)?,
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(bad("chunk data not followed by CRLF")),
            (DataLf, b'\n') => Size,
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, _) if is_tchar(b) => {
                self.trailer_lines += 1;
                if self.trailer_lines > limits.max_headers {
                    return Err(ParseError::TooManyHeaders);
                }
                TrailerName
            }
            (TrailerStart, b'\n') => return Err(bad("bare LF in the trailer section")),
            (TrailerStart, _) => return Err(bad("invalid trailer field")),
            (TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerName, _) => return Err(bad("invalid trailer field name")),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if text(b) => TrailerValue,
            (TrailerValue, _) => return Err(bad("invalid byte in a trailer field")),
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (SizeLf | DataLf | TrailerLf | EndLf, _) => return Err(bad("CR without LF")),
            (Data | Done, _) => unreachable!("not framing"),
        };
        Ok(())
    }

    /// A chunk-size line ended: the chunk's data follows, or the trailer
    /// section after the last chunk.
    fn size_line_done(&mut self, max_body: u64) -> Result<Chunk, ParseError> {
        let size = std::mem::take(&mut self.size);
        self.digits = 0;
        self.line = 0;
        if size == 0 {
            return Ok(Chunk::TrailerStart);
        }
        if self.decoded.saturating_add(size) > max_body {
            return Err(ParseError::BodyTooLarge);
        }
        self.decoded += size;
        self.excess = self
            .excess
            .saturating_sub(size.saturating_mul(2).saturating_add(16));
        self.left = size;
        Ok(Chunk::Data)
    }
}

/// Where the head ends in `b` (just past its empty line), if it does: CRLF
/// CRLF, or a bare LF in either place, which httparse accepts too (RFC 9112
/// §2.2 lets a recipient take LF as a line terminator; Tornado does). So a
/// head is served the same whether it arrived whole or in pieces. (The
/// client's handshake reads the server's response head with it too.)
pub(crate) fn find_head_end(b: &[u8]) -> Option<usize> {
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
    use super::{find_head_end, HeadPoll, RequestReader, MAX_CHUNK_EXCESS, MAX_CHUNK_LINE};
    use crate::http::request::{HeadLimits, ParseError};

    const LIMITS: HeadLimits = HeadLimits {
        max_head_bytes: 4096,
        max_headers: 32,
    };

    /// The body limit in these tests.
    const MAX_BODY: u64 = 1 << 20;

    /// The requests' URIs and bodies, and what is left buffered.
    type Fed = (Vec<(String, Vec<u8>)>, Vec<u8>);

    /// Feeds `stream` in the given pieces: what [`Fed`] says, or the
    /// error that stopped it (after the requests before it).
    fn try_feed(stream: &[u8], cuts: &[usize]) -> Result<Fed, (Fed, ParseError)> {
        let mut r = RequestReader::new();
        let mut got = Vec::new();
        let mut at = 0;
        for &end in cuts.iter().chain([stream.len()].iter()) {
            r.push(&stream[at..end]);
            at = end;
            loop {
                if r.pending().is_none() {
                    match r.poll_head(&LIMITS) {
                        Ok(HeadPoll::Idle | HeadPoll::Partial) => break,
                        Ok(HeadPoll::Head) => {}
                        Err(e) => return Err(((got, r.buffered().to_vec()), e)),
                    }
                }
                match r.take_request(&LIMITS, MAX_BODY) {
                    Ok(Some(req)) => got.push((req.uri().to_owned(), req.body().to_vec())),
                    Ok(None) => break,
                    Err(e) => return Err(((got, r.buffered().to_vec()), e)),
                }
            }
        }
        Ok((got, r.buffered().to_vec()))
    }

    fn feed(stream: &[u8], cuts: &[usize]) -> Fed {
        try_feed(stream, cuts).expect("valid stream")
    }

    /// The error `stream` stops with, the same whole, cut anywhere once,
    /// and byte by byte.
    fn refusal(stream: &[u8]) -> ParseError {
        let (_, e) = try_feed(stream, &[]).expect_err("refused");
        for cut in 1..stream.len() {
            assert_eq!(
                try_feed(stream, &[cut]).err().map(|x| x.1),
                Some(e.clone()),
                "cut at {cut}"
            );
        }
        let ones: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(
            try_feed(stream, &ones).err().map(|x| x.1),
            Some(e.clone()),
            "byte by byte"
        );
        e
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

    /// Chunked bodies (extensions, trailers, upper-case hex, leading
    /// zeros, an empty body) pipelined with others: the decoded bodies,
    /// the same whole, cut anywhere once or twice, and byte by byte; after
    /// the last request only the start of the next head is buffered.
    #[test]
    fn chunked_stream_cut_anywhere_gives_the_same_requests() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=value\r\nhello\r\n1 ; q=\"a b\"\r\n \r\n0000A\r\n0123456789\r\n\
            0;last\r\nX-Trailer: t\r\nX-Empty:\r\n\r\n\
            GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /c HTTP/1.1\r\nHost: x\r\ntransfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n\
            POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\n\r\n\n\r\n0\r\n\r\n\r\n\
            PUT /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\
            GET /f HTTP/1.1\r\nHo";
        let whole = feed(stream, &[]);
        let want: Vec<(String, Vec<u8>)> = [
            ("/a", &b"hello 0123456789"[..]),
            ("/b", b""),
            ("/c", b""),
            ("/d", b"\r\n\n"),
            ("/e", b"ok"),
        ]
        .iter()
        .map(|(u, b)| (u.to_string(), b.to_vec()))
        .collect();
        assert_eq!(whole, (want, b"GET /f HTTP/1.1\r\nHo".to_vec()));
        for cut in 1..stream.len() {
            assert_eq!(feed(stream, &[cut]), whole, "cut at {cut}");
            for cut2 in (cut + 1..stream.len()).step_by(7) {
                assert_eq!(feed(stream, &[cut, cut2]), whole, "cut at {cut}, {cut2}");
            }
        }
        let ones: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(feed(stream, &ones), whole, "byte by byte");
    }

    /// A chunked body still arriving leaves nothing buffered: each byte is
    /// decoded (consumed) once, never scanned again on the next read.
    #[test]
    fn chunked_body_is_consumed_as_it_arrives() {
        let mut r = RequestReader::new();
        r.push(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.poll_head(&LIMITS), Ok(HeadPoll::Head));
        let body = b"4;x=y\r\nabcd\r\n3\r\nefg\r\n0\r\nT: v\r\n\r\nnext";
        for (i, b) in body.iter().enumerate() {
            r.push(&[*b]);
            let got = r.take_request(&LIMITS, MAX_BODY).expect("valid");
            if let Some(req) = got {
                assert_eq!(req.body(), b"abcdefg");
                assert!(req.is_chunked() && req.content_length() == 0);
                assert_eq!(i, body.len() - 5, "done as the final LF arrives");
                r.push(&body[i + 1..]);
                assert_eq!(r.buffered(), b"next");
                return;
            }
            assert!(r.buffered().is_empty(), "byte {i} left buffered");
        }
        panic!("the body never completed");
    }

    /// Chunked framing refused, the same however it is cut: sizes that
    /// are not 1 to 16 hex digits, whitespace, bare LF or CR, data not
    /// followed by CRLF, controls in extensions and trailers.
    #[test]
    fn malformed_chunked_bodies_are_refused_as_bad_chunks() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            &b"+5\r\nhello\r\n0\r\n\r\n"[..],
            b"-5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"\r\n5\r\nhello\r\n0\r\n\r\n",
            b"g\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\rhello\r\n0\r\n\r\n",
            b"5;a\nhello\r\n0\r\n\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\nT: v\n\r\n",
            b"5\r\nhello\r\n0\r\nT v\r\n\r\n",
            b"5\r\nhello\r\n0\r\n T: v\r\n\r\n",
            b"5\r\nhello\r\n0\r\nT: \x01\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\rx",
        ] {
            let mut stream = head.to_vec();
            stream.extend_from_slice(body);
            let e = refusal(&stream);
            assert!(matches!(e, ParseError::BadChunk(_)), "{body:?}: {e:?}");
            assert_eq!(e.status(), 400);
        }
    }

    /// The bounds of a chunked body: the decoded size (413, refused from
    /// the size line before the data), the size line with its extensions,
    /// framing out of proportion to the data (tiny chunks with long
    /// extensions; 400) and the trailer section (431).
    #[test]
    fn chunked_body_bounds() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let with = |body: &[u8]| [&head[..], body].concat();
        // Exactly the limit is fine; one byte more is 413 from its size line.
        let max = usize::try_from(MAX_BODY).unwrap();
        let mut body = format!("{:x}\r\n", max - 1).into_bytes();
        body.extend(std::iter::repeat_n(b'a', max - 1));
        body.extend_from_slice(b"\r\n1\r\nb\r\n0\r\n\r\n");
        let (got, _) = feed(&with(&body), &[]);
        assert_eq!(got[0].1.len(), max);
        let over = with(&body);
        let over = [&over[..over.len() - 11], b"2\r\n"].concat();
        assert_eq!(
            try_feed(&over, &[]).err().map(|x| x.1),
            Some(ParseError::BodyTooLarge)
        );
        assert_eq!(
            refusal(&with(b"ffffffffffffffff\r\n")),
            ParseError::BodyTooLarge
        );
        // A chunk-size line over MAX_CHUNK_LINE.
        let long = with(format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE)).as_bytes());
        assert!(matches!(refusal(&long), ParseError::BadChunk(_)));
        // Extensions within the line limit, on tiny chunks: the excess
        // over the per-chunk allowance adds up.
        let ext = format!("1;{}\r\nx\r\n", "e".repeat(1000));
        let n = usize::try_from(MAX_CHUNK_EXCESS).unwrap() / 980 + 1;
        let flood = with(ext.repeat(n).as_bytes());
        let e = try_feed(&flood, &[]).err().map(|x| x.1);
        assert!(matches!(e, Some(ParseError::BadChunk(_))), "{e:?}");
        // Many tiny chunks with ordinary framing are fine (16 bytes a chunk).
        let tiny = with(&[&b"1\r\nx\r\n".repeat(100_000)[..], b"0\r\n\r\n"].concat());
        assert_eq!(feed(&tiny, &[]).0[0].1.len(), 100_000);
        // Padded sizes are framing out of proportion to one byte of data.
        let padded = with(&b"0000000000000001\r\nx\r\n".repeat(100_000));
        let e = try_feed(&padded, &[]).err().map(|x| x.1);
        assert!(matches!(e, Some(ParseError::BadChunk(_))), "{e:?}");
        // Trailers: the head limits.
        let big = with(format!("0\r\nT: {}\r\n\r\n", "v".repeat(LIMITS.max_head_bytes)).as_bytes());
        assert_eq!(refusal(&big), ParseError::HeadTooLarge);
        let many =
            with(format!("0\r\n{}\r\n", "T: v\r\n".repeat(LIMITS.max_headers + 1)).as_bytes());
        assert_eq!(refusal(&many), ParseError::TooManyHeaders);
        let fine = with(format!("0\r\n{}\r\n", "T: v\r\n".repeat(LIMITS.max_headers)).as_bytes());
        assert_eq!(feed(&fine, &[]).0.len(), 1);
    }

    /// A `Content-Length` over the body limit is refused by `take_request`
    /// too (the server refuses it from the head, before any 100 Continue).
    #[test]
    fn content_length_over_the_limit_is_413() {
        let mut r = RequestReader::new();
        r.push(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
        assert_eq!(r.poll_head(&LIMITS), Ok(HeadPoll::Head));
        assert_eq!(
            r.take_request(&LIMITS, 10).err(),
            Some(ParseError::BodyTooLarge)
        );
        assert_eq!(r.take_request(&LIMITS, 11).map(|r| r.is_some()), Ok(false));
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
