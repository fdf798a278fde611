//! A parsed HTTP/1.1 request head (and body), kept compact.
//!
//! The raw head is stored once in an exact-size `Box<[u8]>`; the method,
//! target and header names/values are offsets into it. This is what a
//! WebSocket handler's `request()` returns after the upgrade, so it must be
//! cheap to keep for every idle connection (PERF-NOTES §1).

use std::fmt;
use std::net::SocketAddr;

use crate::protocol::handshake::header_has_token;
pub(crate) use crate::protocol::handshake::is_tchar;

/// Span of bytes inside the raw head: `(start, end)`.
type Span = (u32, u32);

/// Why a request head could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The head is not valid HTTP/1.x (400).
    Malformed(&'static str),
    /// More header lines than allowed (431).
    TooManyHeaders,
    /// The head is larger than allowed (431).
    HeadTooLarge,
    /// `Content-Length` is not a number (nor a list repeating one number,
    /// RFC 9110 §8.6), or appears twice with different values (400).
    BadContentLength,
    /// The body is larger than allowed (413): a declared `Content-Length`,
    /// or a chunked body as it is decoded (a chunk whose size would take
    /// it over the limit is refused before its data arrives).
    BodyTooLarge,
    /// A `Transfer-Encoding` the message cannot be framed with (400): next
    /// to `Content-Length` (RFC 9112 §6.3 lets a server refuse it; it is
    /// how requests are smuggled), on an HTTP/1.0 request (§6.1), a list
    /// that is malformed or empty, `chunked` not the final coding (§6.3:
    /// the body length cannot be determined, MUST be 400; so also
    /// `identity`, `gzip` or `chunked, gzip`), or `chunked` more than once
    /// (§6.1), also across repeated `Transfer-Encoding` fields, which
    /// combine into one list.
    BadTransferEncoding(&'static str),
    /// `chunked` is the final transfer coding but others come before it,
    /// such as `gzip, chunked` (501, RFC 9112 §6.1: a coding the server
    /// does not implement).
    UnsupportedTransferCoding,
    /// A chunked body (RFC 9112 §7.1) that is malformed or over a framing
    /// limit (400): a chunk size that is not 1 to 16 hex digits, a line
    /// not ended by CRLF (a bare LF is refused), chunk data not followed
    /// by CRLF, a control character in an extension or trailer field, a
    /// chunk-size line (with its extensions) over 4 KiB, or too much
    /// framing for the data it carries (see `http::reader`). Trailer
    /// fields over the head limits are [`HeadTooLarge`](Self::HeadTooLarge)
    /// or [`TooManyHeaders`](Self::TooManyHeaders) (431).
    BadChunk(&'static str),
    /// A well-formed HTTP version whose major version is not 1, such as
    /// `HTTP/2.0` (505; `HTTP/1.2` is read as HTTP/1.1, RFC 9110 §2.5); a
    /// malformed one is [`Malformed`](Self::Malformed).
    UnsupportedVersion,
    /// The request line alone is larger than the head limit: the target is
    /// longer than the server parses (414, RFC 9112 §3). The server answers
    /// this for a [`HeadTooLarge`](Self::HeadTooLarge) head whose request
    /// line is over the limit; [`Request::parse_head`] itself reports
    /// `HeadTooLarge`.
    UriTooLong,
    /// A method longer than 255 bytes, longer than any this server
    /// implements (501, RFC 9112 §3: "A server that receives a method
    /// longer than any that it implements SHOULD respond with a 501").
    /// A shorter method the handler does not list reaches the application,
    /// which answers 405.
    MethodTooLong,
}

impl ParseError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_)
            | ParseError::BadContentLength
            | ParseError::BadTransferEncoding(_)
            | ParseError::BadChunk(_) => 400,
            ParseError::TooManyHeaders | ParseError::HeadTooLarge => 431,
            ParseError::BodyTooLarge => 413,
            ParseError::UnsupportedTransferCoding | ParseError::MethodTooLong => 501,
            ParseError::UnsupportedVersion => 505,
            ParseError::UriTooLong => 414,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Malformed(what) => write!(f, "Malformed HTTP request: {what}"),
            ParseError::TooManyHeaders => f.write_str("Too many request headers"),
            ParseError::HeadTooLarge => f.write_str("Request header fields too large"),
            ParseError::BadContentLength => f.write_str("Invalid Content-Length"),
            ParseError::BodyTooLarge => f.write_str("Request body too large"),
            ParseError::BadTransferEncoding(what) => write!(f, "Bad Transfer-Encoding: {what}"),
            ParseError::UnsupportedTransferCoding => {
                f.write_str("Transfer codings other than chunked are not implemented")
            }
            ParseError::BadChunk(what) => write!(f, "Malformed chunked body: {what}"),
            ParseError::UnsupportedVersion => f.write_str("HTTP version not supported"),
            ParseError::UriTooLong => f.write_str("Request target too long"),
            ParseError::MethodTooLong => f.write_str("Request method too long"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Maximum bytes of the request line plus headers (431 beyond).
    pub max_head_bytes: usize,
    /// Maximum number of header lines (431 beyond).
    pub max_headers: usize,
}

/// Result of [`Request::parse_head`] on a buffer.
#[derive(Debug)]
pub enum HeadStatus {
    /// The head is complete: the request and the number of bytes it used.
    Complete(Request, usize),
    /// More bytes are needed.
    Partial,
}

/// `Connection: close` was seen.
const CONN_CLOSE: u8 = 1;
/// `Connection: keep-alive` was seen.
const CONN_KEEP_ALIVE: u8 = 2;
/// Not a `Connection` token: the request came over TLS
/// ([`Request::protocol`] is `"https"`). Kept in the same byte so that a
/// `Request`, which every WebSocket connection keeps, does not grow.
const VIA_TLS: u8 = 0x80;

/// `Expect: 100-continue` was seen.
const EXPECT_CONTINUE: u8 = 1;
/// An `Expect` value other than `100-continue` was seen (417).
const EXPECT_OTHER: u8 = 2;
/// The body is `Transfer-Encoding: chunked` (then `content_length` is 0).
const CHUNKED: u8 = 4;

/// The [`EXPECT_CONTINUE`] / [`EXPECT_OTHER`] bits of one `Expect` value.
fn expect_tokens(value: &[u8]) -> u8 {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .fold(0, |bits, t| {
            bits | if t.eq_ignore_ascii_case(b"100-continue") {
                EXPECT_CONTINUE
            } else {
                EXPECT_OTHER
            }
        })
}

/// The error for a request line httparse refused for its version:
/// [`ParseError::UnsupportedVersion`] (505) when the version is well-formed
/// (`HTTP/D.D` then the line's end, RFC 9112 §2.3: `HTTP/2.0`, `HTTP/0.9`;
/// the caller reads `HTTP/1.2` as HTTP/1.1 first, see [`higher_minor`]),
/// [`ParseError::Malformed`] (400) as soon as it leaves that
/// shape (`HTTP/1.1x`, `HTTP/2`, `HTTP/1.10`), and `None` (wait for more)
/// while its bytes so far are a beginning of it: httparse refuses a
/// version at its first byte past `HTTP/1.`, before the rest has come, so
/// that a prefix of the head refused for its version gets the same answer
/// as the whole head.
fn version_error(buf: &[u8]) -> Option<ParseError> {
    match version_field(buf) {
        // `HTTP/D.D` (RFC 9112 §2.3), or so far as the bytes go, that
        // httparse refused: a version this server does not speak (505);
        // anything else is malformed.
        Some(version) => match version_shape(version) {
            Shape::Whole => Some(ParseError::UnsupportedVersion),
            Shape::SoFar => None,
            Shape::Other => Some(ParseError::Malformed("bad version")),
        },
        None => Some(ParseError::Malformed("bad version")),
    }
}

/// The bytes of `buf` from the request line's version on (to the end of
/// `buf`), `None` when the line has no two spaces.
fn version_field(buf: &[u8]) -> Option<&[u8]> {
    // httparse skips empty lines before the request line, then reads
    // `method SP target SP version`.
    let line = &buf[buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())..];
    let mut parts = line.splitn(3, |&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(version)) => Some(version),
        _ => None,
    }
}

/// Where in `buf` the minor digit of a whole `HTTP/1.D` version with `D`
/// above 1 is (httparse refuses them): RFC 9110 §2.5, "A recipient that
/// receives a message with a major version number that it implements and a
/// minor version number higher than what it implements SHOULD process the
/// message as if it were in the highest minor version within that major
/// version to which the recipient is conformant", as Tornado serves it.
fn higher_minor(buf: &[u8]) -> Option<usize> {
    let version = version_field(buf)?;
    let minor = *version.get(7)?;
    (matches!(version_shape(version), Shape::Whole)
        && version.starts_with(b"HTTP/1.")
        && minor > b'1')
        .then_some(buf.len() - version.len() + 7)
}

/// How the bytes from the version on compare with `HTTP/D.D` and a line
/// end.
enum Shape {
    /// That shape, whole.
    Whole,
    /// A beginning of it: the bytes end first.
    SoFar,
    /// Something else.
    Other,
}

fn version_shape(rest: &[u8]) -> Shape {
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let (version, complete) = (&rest[..end], end < rest.len());
    let shape = b"HTTP/0.0";
    let fits = version.len() <= shape.len()
        && version.iter().zip(shape).all(|(&b, &want)| match want {
            b'0' => b.is_ascii_digit(),
            _ => b == want,
        });
    match (fits, complete) {
        (false, _) => Shape::Other,
        (true, true) if version.len() == shape.len() => Shape::Whole,
        (true, true) => Shape::Other,
        (true, false) => Shape::SoFar,
    }
}

/// The error for a head over `max` bytes: [`ParseError::UriTooLong`] (414)
/// when its request line alone (after any empty lines) is over `max` and has
/// a method and the start of a target, else [`ParseError::HeadTooLarge`]
/// (431): RFC 9112 §3 answers a target longer than the server parses with
/// 414, and 431 is for header fields.
pub(crate) fn head_too_large(buf: &[u8], max: usize) -> ParseError {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    let line_len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    if line_len > max && rest[..line_len].contains(&b' ') {
        ParseError::UriTooLong
    } else {
        ParseError::HeadTooLarge
    }
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9112 §3.2: a
/// Host field with an invalid value is answered 400): a reg-name or IPv4
/// address (unreserved, percent-encoded, sub-delims), or an IP literal in
/// brackets (those characters and colons), then a colon and digits or
/// nothing. No space, `/`, `@`, `<`... which would reach handlers that
/// build URLs from it, nor a port that is not a number (`x:abc`, a second
/// colon) that one comparing the port would take in. Empty is valid (a
/// target without authority).
fn valid_host(value: &[u8]) -> bool {
    let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b);
    let (host_ok, port) = match value.strip_prefix(b"[") {
        // IP-literal = "[" ( IPv6address / IPvFuture ) "]" (RFC 3986 §3.2.2).
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(close) => (
                close > 0 && literal[..close].iter().all(|&b| reg_name(b) || b == b':'),
                &literal[close + 1..],
            ),
            None => return false,
        },
        None => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            (value[..end].iter().all(|&b| reg_name(b)), &value[end..])
        }
    };
    // port = *DIGIT, after a colon.
    host_ok
        && match port.split_first() {
            None => true,
            Some((&colon, digits)) => colon == b':' && digits.iter().all(u8::is_ascii_digit),
        }
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// The `Transfer-Encoding` fields of a request, combined into one list
/// (RFC 9110 §5.3), as far as framing needs them.
#[derive(Default)]
struct Codings {
    /// A `Transfer-Encoding` field was seen.
    present: bool,
    /// Codings in the list (empty elements are not codings).
    count: u32,
    /// How many of them are `chunked`.
    chunked: u32,
    /// The last one is `chunked`.
    last_chunked: bool,
    /// An element is not `token *( OWS ";" OWS token BWS "=" BWS value )`,
    /// or `chunked` has parameters (it takes none).
    malformed: bool,
}

impl Codings {
    /// Adds one `Transfer-Encoding` field value to the list.
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for element in value.split(|&b| b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() {
                // RFC 9110 §5.6.1: empty list elements are ignored.
                continue;
            }
            let mut parts = element.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let mut params = 0;
            for param in parts {
                params += 1;
                // A parameter with a quoted-string value holding `,` or
                // `;` is split here and refused: no transfer coding the
                // server could decode has such parameters.
                let ok = split_once_byte(param, b'=').is_some_and(|(n, v)| {
                    is_token(n.trim_ascii()) && is_param_value(v.trim_ascii())
                });
                self.malformed |= !ok;
            }
            self.malformed |= !is_token(name);
            self.count += 1;
            self.last_chunked = name.eq_ignore_ascii_case(b"chunked");
            if self.last_chunked {
                self.chunked += 1;
                self.malformed |= params > 0;
            }
        }
    }

    /// Whether the body is chunked (`Ok(false)`: no `Transfer-Encoding`),
    /// or why the request is refused.
    fn framing(&self) -> Result<bool, ParseError> {
        if !self.present {
            return Ok(false);
        }
        if self.malformed || self.count == 0 {
            return Err(ParseError::BadTransferEncoding("malformed list of codings"));
        }
        if !self.last_chunked {
            return Err(ParseError::BadTransferEncoding(
                "chunked is not the final coding",
            ));
        }
        if self.chunked > 1 {
            return Err(ParseError::BadTransferEncoding(
                "chunked applied more than once",
            ));
        }
        if self.count > 1 {
            return Err(ParseError::UnsupportedTransferCoding);
        }
        Ok(true)
    }
}

/// `s` split around the first `b`.
fn split_once_byte(s: &[u8], b: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&c| c == b)?;
    Some((&s[..at], &s[at + 1..]))
}

/// Whether `v` is a token or a quoted-string (RFC 9110 §5.6.4; a
/// backslash escape is taken as two characters of text).
fn is_param_value(v: &[u8]) -> bool {
    let text = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
    is_token(v)
        || (v.len() >= 2
            && v[0] == b'"'
            && v[v.len() - 1] == b'"'
            && v[1..v.len() - 1].iter().all(|&b| text(b)))
}

/// The part of a request target that holds its path and query (RFC 9112
/// §3.2): an origin-form target (`/p?q`) whole; after the authority for an
/// absolute-form one (`http://host/p?q` gives `/p?q`; `http://host?q`
/// gives `?q`, whose path is `/`). The asterisk-form (`*`), and any target
/// of `CONNECT` (authority-form), are kept whole as before: they route as
/// they are (no route matches them).
///
/// # Errors
/// 400 for a target of none of these forms, an absolute-form whose scheme
/// is not `http` or `https` (any case), or whose authority is empty, holds
/// userinfo (`user@`) or a character a `Host` value cannot have.
fn origin_part<'a>(target: &'a [u8], method: &str) -> Result<&'a [u8], ParseError> {
    if target.first() == Some(&b'/') || target == b"*" || method == "CONNECT" {
        return Ok(target);
    }
    let invalid = ParseError::Malformed("invalid request target");
    let (scheme, rest) = split_once_byte(target, b':').ok_or(invalid.clone())?;
    // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid_scheme {
        return Err(invalid);
    }
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return Err(ParseError::Malformed(
            "request target scheme is not http or https",
        ));
    }
    // RFC 9110 §4.2.1: "http" "://" authority path-abempty [ "?" query ].
    let rest = rest.strip_prefix(b"//").ok_or(invalid)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    // RFC 9110 §4.2.1: an empty host is invalid; §4.2.4: userinfo is
    // treated as an error (`valid_host` has no `@`).
    if authority.is_empty() || !valid_host(authority) {
        return Err(ParseError::Malformed("invalid authority in request target"));
    }
    Ok(&rest[end..])
}

/// The [`CONN_CLOSE`] / [`CONN_KEEP_ALIVE`] bits of one `Connection` value.
fn connection_tokens(value: &[u8]) -> u8 {
    let mut bits = 0;
    if header_has_token(value, "close") {
        bits |= CONN_CLOSE;
    }
    if header_has_token(value, "keep-alive") {
        bits |= CONN_KEEP_ALIVE;
    }
    bits
}

/// An HTTP request: method, target, headers, body and peer address.
#[derive(Clone)]
pub struct Request {
    /// The raw head from the method on (empty lines received before the
    /// request line are not part of it), then the body.
    head: Box<[u8]>,
    /// The method is `head[..method_len]`; the request target follows it
    /// after one space.
    method_len: u8,
    /// The path is `head[path.0..path.1]`: inside the target, after the
    /// authority of an absolute-form one. Empty only for an absolute-form
    /// target without a path (`http://host`, `http://host?q`), whose path
    /// is `/`.
    path: Span,
    /// The query (after `?`) ends here, as does the target; `0` when there
    /// is no `?`.
    query_end: u32,
    version_minor: u8,
    /// `Connection` tokens seen while parsing: [`CONN_CLOSE`] and
    /// [`CONN_KEEP_ALIVE`] bits, so `keep_alive()` needs no header scan;
    /// and the [`VIA_TLS`] bit.
    connection: u8,
    /// `Expect` values seen while parsing: [`EXPECT_CONTINUE`] and
    /// [`EXPECT_OTHER`] bits (not for HTTP/1.0, where `Expect` is
    /// ignored); [`CHUNKED`]; and the [`NO_CONTENT_TYPE`]... bits of the
    /// headers the framework looks up on most requests, when absent (all
    /// in this byte, so the request stays 72 bytes: it is kept for every
    /// WebSocket connection).
    expect: u8,
    /// Declared body length (bodies over 4 GiB are refused with 413 at parse time).
    content_length: u32,
    /// Where the head ends in `head` (the body, if any, follows it in the
    /// same allocation).
    head_len: u32,
    peer: Option<SocketAddr>,
}

/// No `Content-Type` came (bits of `Request::expect`, set while parsing).
const NO_CONTENT_TYPE: u8 = 0x10;
/// No `If-None-Match` came.
const NO_IF_NONE_MATCH: u8 = 0x20;
/// No `Accept-Encoding` came.
const NO_ACCEPT_ENCODING: u8 = 0x40;
/// No `Cookie` came.
const NO_COOKIE: u8 = 0x80;
const NO_ANY: u8 = NO_CONTENT_TYPE | NO_IF_NONE_MATCH | NO_ACCEPT_ENCODING | NO_COOKIE;

/// The bit of a header the framework looks up on most requests (the body
/// parser's `Content-Type`, the Etag check's `If-None-Match`, gzip's
/// `Accept-Encoding`, cookies and XSRF's `Cookie`): parsing notes which
/// are absent, so their lookups skip the scan of the head, about 400
/// instructions each on a short one (`benches/callgrind_http.sh`).
fn looked_up(name: &[u8]) -> Option<u8> {
    let (bit, known): (u8, &[u8]) = match name.len() {
        12 => (NO_CONTENT_TYPE, b"content-type"),
        13 => (NO_IF_NONE_MATCH, b"if-none-match"),
        15 => (NO_ACCEPT_ENCODING, b"accept-encoding"),
        6 => (NO_COOKIE, b"cookie"),
        _ => return None,
    };
    // `known` is lowercase letters and `-`: setting bit 5 lowercases a
    // letter and leaves `-`; only a CR could pass for `-` too, and no
    // header name holds one. One branchless pass, where
    // `eq_ignore_ascii_case` lowercases both sides byte by byte.
    let diff = name
        .iter()
        .zip(known)
        .fold(0, |acc, (&a, &k)| acc | ((a | 0x20) ^ k));
    (diff == 0).then_some(bit)
}

const MAX_HEADERS_STACK: usize = 128;

fn span_of(base: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// The lines of one header joined with `,`, as Tornado's `HTTPHeaders`
/// joins a repeated header (`headers["X"]`), each line read by `decode`:
/// `None` without a line, as `decode` gives it for a single one (borrowed
/// by [`String::from_utf8_lossy`], bytes that are not UTF-8 as U+FFFD).
/// [`Request::header_joined`]'s (and, with [`latin1`],
/// `header_joined_latin1`'s), and the WebSocket client's for the server's
/// `101`.
pub(crate) fn join_header_lines<'a>(
    mut lines: impl Iterator<Item = &'a [u8]>,
    decode: impl Fn(&'a [u8]) -> std::borrow::Cow<'a, str>,
) -> Option<std::borrow::Cow<'a, str>> {
    let mut joined = decode(lines.next()?);
    for next in lines {
        let text = joined.to_mut();
        text.push(',');
        text.push_str(&decode(next));
    }
    Some(joined)
}

/// `bytes` read as Latin-1, as Tornado reads every header: each byte the
/// character of the same code point.
pub(crate) fn latin1(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    bytes
        .iter()
        .map(|&b| char::from(b))
        .collect::<String>()
        .into()
}

impl Request {
    /// Parses a request head from the start of `buf`.
    ///
    /// `buf` may hold more than the head (body bytes, pipelined requests);
    /// only the head is copied into the request. Parsing is a single pass
    /// over the bytes received so far: callers should only call again once
    /// more bytes arrived and the head is still incomplete; to keep the cost
    /// linear they can first look for the `\r\n\r\n` terminator.
    ///
    /// Empty lines before the request line are skipped (RFC 9112 §2.2);
    /// they count in the bytes used but are not part of the request.
    ///
    /// The body is framed by `Content-Length`, or by `Transfer-Encoding:
    /// chunked` ([`is_chunked`](Self::is_chunked); the body is decoded by
    /// `http::reader`, not here). An absolute-form target
    /// (`http://host/p?q`, RFC 9112 §3.2.2) is accepted, its path and query
    /// are those after the authority, which is what [`host`](Self::host)
    /// returns; the `Host` header is still required and checked as for any
    /// request (it is not compared with the authority).
    ///
    /// # Errors
    /// A [`ParseError`] whose [`status`](ParseError::status) is the HTTP
    /// answer: 400 (malformed; an invalid request target, one with raw
    /// bytes that are not UTF-8 — RFC 9112 §3.2 allows ASCII alone, raw
    /// UTF-8 is taken; Tornado reads such bytes as Latin-1 — or an
    /// absolute-form one whose scheme is not `http`/`https`; a
    /// `Transfer-Encoding` the body cannot be framed with, see
    /// [`ParseError::BadTransferEncoding`]), 413 (a `Content-Length` over
    /// 4 GiB; the configured limit is applied by the caller), 431, 501
    /// (a transfer coding before `chunked`), 505. An HTTP/1.1 request
    /// without a `Host` header, or any request with more than one, is
    /// malformed (400, RFC 9112 §3.2).
    pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<HeadStatus, ParseError> {
        Ok(match Self::parse_spans(buf, limits)? {
            Some((mut req, skip, used)) => {
                req.head = buf[skip..used].into();
                HeadStatus::Complete(req, used)
            }
            None => HeadStatus::Partial,
        })
    }

    /// [`parse_head`](Self::parse_head) on `buf[*pos..]`, moving `*pos`
    /// past the head (the bytes after it stay): when `buf` holds exactly
    /// the head, as after a request that arrived in one read, its
    /// allocation becomes the request's, with no copy, and `buf` is left
    /// empty (`*pos` 0). `None` while incomplete.
    pub(crate) fn parse_head_at(
        buf: &mut Vec<u8>,
        pos: &mut usize,
        limits: &HeadLimits,
    ) -> Result<Option<Request>, ParseError> {
        let Some((mut req, skip, used)) = Self::parse_spans(&buf[*pos..], limits)? else {
            return Ok(None);
        };
        req.head = if *pos == 0 && skip == 0 && used == buf.len() {
            std::mem::take(buf).into_boxed_slice()
        } else {
            let head = buf[*pos + skip..*pos + used].into();
            *pos += used;
            if *pos == buf.len() {
                buf.clear();
                *pos = 0;
            }
            head
        };
        Ok(Some(req))
    }

    /// Parses the head at the start of `buf` into a request whose `head`
    /// is still empty, the bytes before its request line (`skip`: empty
    /// lines) and the bytes used; `None` while incomplete. The callers fill
    /// `head` in with `buf[skip..used]` (copied or moved): the spans are
    /// relative to its start.
    fn parse_spans(
        buf: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<(Request, usize, usize)>, ParseError> {
        let max = limits.max_headers.min(MAX_HEADERS_STACK);
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_STACK];
        let mut req = httparse::Request::new(&mut storage[..max]);
        let used = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if buf.len() > limits.max_head_bytes {
                    return Err(ParseError::HeadTooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
            Err(httparse::Error::Version) => {
                if let Some(at) = higher_minor(buf) {
                    // Parsed as HTTP/1.1 (the copy has `1` for the minor
                    // digit); the spans are offsets, the same in `buf`.
                    let mut as_http11 = buf.to_vec();
                    as_http11[at] = b'1';
                    return Self::parse_spans(&as_http11, limits);
                }
                match version_error(buf) {
                    Some(e) => return Err(e),
                    None if buf.len() > limits.max_head_bytes => {
                        return Err(ParseError::HeadTooLarge)
                    }
                    None => return Ok(None),
                }
            }
            Err(httparse::Error::Token) => return Err(ParseError::Malformed("bad token")),
            Err(httparse::Error::HeaderName) => {
                return Err(ParseError::Malformed("bad header name"))
            }
            Err(httparse::Error::HeaderValue) => {
                return Err(ParseError::Malformed("bad header value"))
            }
            Err(httparse::Error::NewLine) => return Err(ParseError::Malformed("bad line ending")),
            Err(httparse::Error::Status) => return Err(ParseError::Malformed("bad status")),
        };
        if used > limits.max_head_bytes {
            return Err(ParseError::HeadTooLarge);
        }
        let version_minor = req.version.unwrap_or(1);
        let method = req.method.unwrap_or("");
        let method_len = u8::try_from(method.len()).map_err(|_| ParseError::MethodTooLong)?;
        // httparse skipped any empty lines before the request line (RFC 9112
        // §2.2): the head starts at the method, and the spans count from it.
        let skip = if method.is_empty() {
            0
        } else {
            span_of(buf, method.as_bytes()).0 as usize
        };
        let base = &buf[skip..];
        let target = req.path.unwrap_or("").as_bytes();
        if target.is_empty() {
            return Err(ParseError::Malformed("empty request target"));
        }
        // `uri()` finds the target after the method and one space (all
        // httparse accepts without its lenient options).
        if span_of(base, target).0 != u32::from(method_len) + 1 {
            return Err(ParseError::Malformed("bad request line"));
        }
        let origin = origin_part(target, method)?;
        let (path, query_end) = match origin.iter().position(|&b| b == b'?') {
            Some(q) => (span_of(base, &origin[..q]), span_of(base, origin).1),
            None => (span_of(base, origin), 0),
        };
        let mut content_length: Option<u64> = None;
        let mut connection = 0;
        let mut expect = 0;
        let mut hosts = 0u32;
        let mut codings = Codings::default();
        let mut absent = NO_ANY;
        for h in req.headers.iter() {
            if let Some(bit) = looked_up(h.name.as_bytes()) {
                absent &= !bit;
            } else if h.name.eq_ignore_ascii_case("connection") {
                connection |= connection_tokens(h.value);
            } else if h.name.eq_ignore_ascii_case("host") {
                hosts += 1;
                if !valid_host(h.value) {
                    return Err(ParseError::Malformed("invalid Host header"));
                }
            } else if h.name.eq_ignore_ascii_case("expect") {
                expect |= expect_tokens(h.value);
            } else if h.name.eq_ignore_ascii_case("content-length") {
                // RFC 9110 §8.6: "Content-Length: 42, 42" is two lines of
                // the same value combined by an upstream (§5.3), read as
                // the value once, as the two lines are; a value that
                // differs, or an empty member, is invalid.
                for member in h.value.split(|&b| b == b',') {
                    let v = std::str::from_utf8(member)
                        .ok()
                        .map(str::trim)
                        .and_then(|s| {
                            if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                                s.parse::<u64>().ok()
                            } else {
                                None
                            }
                        })
                        .ok_or(ParseError::BadContentLength)?;
                    if content_length.is_some_and(|c| c != v) {
                        return Err(ParseError::BadContentLength);
                    }
                    content_length = Some(v);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                codings.add(h.value);
            }
        }
        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
        // status code to any HTTP/1.1 request message that lacks a Host
        // header field and to any request message that contains more than
        // one Host header field".
        if hosts > 1 {
            return Err(ParseError::Malformed("more than one Host header"));
        }
        if hosts == 0 && version_minor >= 1 {
            return Err(ParseError::Malformed("missing Host header"));
        }
        if codings.present {
            // RFC 9112 §6.3: a request with both could be framed either
            // way by different parsers (request smuggling): refused.
            if content_length.is_some() {
                return Err(ParseError::BadTransferEncoding(
                    "Transfer-Encoding with Content-Length",
                ));
            }
            // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; its framing
            // is faulty.
            if version_minor == 0 {
                return Err(ParseError::BadTransferEncoding(
                    "Transfer-Encoding in HTTP/1.0",
                ));
            }
        }
        let chunked = codings.framing()?;
        let request = Request {
            head: Box::default(),
            method_len,
            path,
            query_end,
            version_minor,
            connection,
            // RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored.
            expect: if version_minor >= 1 { expect } else { 0 }
                | if chunked { CHUNKED } else { 0 }
                | absent,
            content_length: u32::try_from(content_length.unwrap_or(0))
                .map_err(|_| ParseError::BodyTooLarge)?,
            head_len: (used - skip) as u32,
            peer: None,
        };
        Ok(Some((request, skip, used)))
    }

    /// Builds a request by hand (for tests and the client): `GET path?query HTTP/1.1`,
    /// with `Host: localhost` unless `headers` has a `Host` (HTTP/1.1 requires one).
    ///
    /// # Panics
    /// If the pieces do not form a valid request head (a bug in the caller: this is for tests and examples).
    pub fn synthetic(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
        let mut raw = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            raw.push_str("Host: localhost\r\n");
        }
        for (n, v) in headers {
            raw.push_str(n);
            raw.push_str(": ");
            raw.push_str(v);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        let limits = HeadLimits {
            max_head_bytes: usize::MAX,
            max_headers: MAX_HEADERS_STACK,
        };
        match Request::parse_head(raw.as_bytes(), &limits) {
            Ok(HeadStatus::Complete(r, _)) => r,
            _ => panic!("synthetic request {target:?} does not parse"),
        }
    }

    fn text(&self, span: Span) -> &str {
        // Header values may hold obs-text; those are reported as "" by `header`.
        std::str::from_utf8(&self.head[span.0 as usize..span.1 as usize]).unwrap_or("")
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.text((0, self.method_len as u32))
    }

    /// The path part of the request target, still percent-encoded (`/a%20b`).
    /// For an absolute-form target (`http://host/a?q`, RFC 9112 §3.2.2) the
    /// path after its authority (`/a`), and `/` when it has none
    /// (`http://host`).
    pub fn path(&self) -> &str {
        if self.path.0 == self.path.1 {
            "/"
        } else {
            self.text(self.path)
        }
    }

    /// The query string without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        if self.query_end == 0 {
            ""
        } else {
            self.text((self.path.1 + 1, self.query_end))
        }
    }

    /// The whole request target as received (Tornado's `request.uri`):
    /// `/path?query`, or `http://host/path?query` for an absolute-form one,
    /// whose [`path`](Self::path) and [`query`](Self::query) are the parts
    /// after the authority.
    pub fn uri(&self) -> &str {
        self.text((u32::from(self.method_len) + 1, self.target_end()))
    }

    /// Where the request target ends in `head`: after its query, or its
    /// path when it has none.
    fn target_end(&self) -> u32 {
        if self.query_end == 0 {
            self.path.1
        } else {
            self.query_end
        }
    }

    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub fn version_minor(&self) -> u8 {
        self.version_minor
    }

    /// The first header named `name` (case-insensitive) as text, if present and valid UTF-8.
    ///
    /// Only the first line of a repeated header: Tornado's
    /// `request.headers["X"]` and `.get("X")` join every line with `,`,
    /// which is [`header_joined`](Self::header_joined). A value that is
    /// not UTF-8 is `None` here although the header came
    /// ([`header_bytes`](Self::header_bytes) has it), where Tornado, which
    /// reads every header as Latin-1, gives its Latin-1 text; valid UTF-8
    /// beyond ASCII is read as UTF-8 (`é`, which is `Ã©` in Tornado).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header named `name` (case-insensitive) as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.raw_headers_named(name)
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every header as `(name, raw value)`, in the order received
    /// (Tornado's `request.headers.get_all()`, which differs in two ways:
    /// it groups the lines of one name together, at the place of the
    /// name's first line, and gives each name normalized, `Content-Type`
    /// for `content-type`; here each line keeps its place and its name
    /// as sent).
    ///
    /// Headers are not indexed: the head (already validated by httparse)
    /// is scanned on each call, so a retained request costs only its raw
    /// bytes (PERF-NOTES §1).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        // Names are tokens (httparse checked them): ASCII, so this never
        // drops a header.
        self.raw_headers()
            .filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, v)))
    }

    /// [`headers`](Self::headers) with the names as bytes: lookups compare
    /// them without a UTF-8 check per line.
    pub(crate) fn raw_headers(&self) -> RawHeaders<'_> {
        let head = &self.head[..self.head_len as usize];
        // The request line ends at the first line feed after the target
        // (httparse also accepts a bare LF there).
        let target_end = self.path.1.max(self.query_end) as usize;
        let start =
            memchr::memchr(b'\n', &head[target_end..]).map_or(head.len(), |p| target_end + p + 1);
        RawHeaders {
            rest: &head[start..],
        }
    }

    /// [`raw_headers`](Self::raw_headers) for a lookup of `name`: none at
    /// all, without a scan, when parsing saw that no such header came
    /// ([`looked_up`]'s names: a GET has no `Content-Type` to find).
    fn raw_headers_named(&self, name: &str) -> RawHeaders<'_> {
        match looked_up(name.as_bytes()) {
            Some(bit) if self.expect & bit != 0 => RawHeaders { rest: &[] },
            _ => self.raw_headers(),
        }
    }

    /// All values of the header `name` (case-insensitive), one per line,
    /// in the order received, as raw bytes (Tornado's
    /// `request.headers.get_list("X")`, whose values are text; a line
    /// holding `a, b` is one value in both).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.raw_headers_named(name)
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every line of the header `name` (case-insensitive) joined with
    /// `,`, as Tornado's `HTTPHeaders` joins a repeated header
    /// (`request.headers["X"]` and `request.headers.get("X")`): `None`
    /// without one (where `headers["X"]` raises `KeyError`), borrowed for
    /// a single line. Read as UTF-8, bytes that are not UTF-8 as U+FFFD,
    /// where Tornado reads every header as Latin-1: only ASCII reads the
    /// same (`é` sent in UTF-8 is `é` here and `Ã©` there, a lone byte
    /// `0xE9` is U+FFFD here and `é` there).
    pub fn header_joined(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        join_header_lines(
            self.raw_headers_named(name)
                .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v),
            String::from_utf8_lossy,
        )
    }

    /// [`header_joined`](Self::header_joined) with the bytes read as
    /// Latin-1, as Tornado reads every header (`é` sent in UTF-8 is `Ã©`):
    /// for a message that quotes a header as Tornado's does.
    pub(crate) fn header_joined_latin1(&self, name: &str) -> Option<String> {
        join_header_lines(self.header_all(name), latin1).map(std::borrow::Cow::into_owned)
    }

    /// The declared `Content-Length` (0 when absent, as for a chunked
    /// body: then [`body`](Self::body)'s length is what was decoded).
    pub fn content_length(&self) -> u64 {
        u64::from(self.content_length)
    }

    /// Whether the body came with `Transfer-Encoding: chunked` (RFC 9112
    /// §7.1). Once the server has read it, [`body`](Self::body) is the
    /// decoded body (chunk extensions and trailer fields are dropped), as
    /// for a `Content-Length` body.
    pub fn is_chunked(&self) -> bool {
        self.expect & CHUNKED != 0
    }

    /// Whether the client sent `Expect: 100-continue` (HTTP/1.1): it may
    /// wait for `100 Continue` before sending the body.
    pub(crate) fn expects_continue(&self) -> bool {
        self.expect & EXPECT_CONTINUE != 0
    }

    /// Whether the client sent an `Expect` value other than `100-continue`
    /// (HTTP/1.1), which the server cannot meet (417, RFC 9110 §10.1.1).
    pub(crate) fn has_unmet_expectation(&self) -> bool {
        self.expect & EXPECT_OTHER != 0
    }

    /// The request body.
    pub fn body(&self) -> &[u8] {
        &self.head[self.head_len as usize..]
    }

    /// Sets the body (the server connection does this once it has arrived).
    pub fn set_body(&mut self, body: Vec<u8>) {
        let mut all = Vec::with_capacity(self.head_len as usize + body.len());
        all.extend_from_slice(&self.head[..self.head_len as usize]);
        all.extend_from_slice(&body);
        self.head = all.into_boxed_slice();
    }

    /// The peer's address, when the request came from a socket: with the
    /// `xheaders` setting, the client's address the proxy reported (the
    /// proxy's port kept).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client's IP address (Tornado's `remote_ip`): [`peer`](Self::peer)'s.
    /// With the `xheaders` setting, the address the proxy's header denotes,
    /// without an IPv6 zone (`010.1.1.1` is `8.1.1.1`, `fe80::1%eth0` is
    /// `fe80::1`; Tornado keeps the header's text).
    pub fn remote_ip(&self) -> Option<std::net::IpAddr> {
        self.peer.map(|p| p.ip())
    }

    /// Tornado's `_apply_xheaders` (the `xheaders` setting): the client's
    /// address from `X-Real-Ip`, else the last `X-Forwarded-For` address
    /// that is not in `trusted` (all of the header's lines, as one
    /// list), when Tornado's `is_valid_ip` takes it (see
    /// [`HttpLimits::xheaders`](super::HttpLimits::xheaders)); the scheme from the last entry of
    /// `X-Scheme`, else `X-Forwarded-Proto`, when it is `http` or `https`.
    pub(crate) fn apply_xheaders(&mut self, trusted: &[String]) {
        let joined = |name: &str| self.header_joined(name).map(std::borrow::Cow::into_owned);
        let socket_ip = self.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let forwarded = joined("X-Forwarded-For").unwrap_or_else(|| socket_ip.clone());
        let mut ip = "";
        for candidate in forwarded.rsplit(',').map(str::trim) {
            ip = candidate;
            if !trusted.iter().any(|t| t == candidate) {
                break;
            }
        }
        let real = joined("X-Real-Ip");
        let ip = super::ip::parse_ip(real.as_deref().unwrap_or(ip));
        let proto = joined("X-Scheme").or_else(|| joined("X-Forwarded-Proto"));
        let https = match proto
            .as_deref()
            .and_then(|p| p.rsplit(',').next())
            .map(str::trim)
        {
            Some("https") => Some(true),
            Some("http") => Some(false),
            _ => None,
        };
        if let (Some((addr, scope)), Some(peer)) = (ip, self.peer) {
            self.peer = Some(match addr {
                std::net::IpAddr::V4(v4) => SocketAddr::from((v4, peer.port())),
                std::net::IpAddr::V6(v6) => {
                    std::net::SocketAddrV6::new(v6, peer.port(), 0, scope).into()
                }
            });
        }
        if let Some(https) = https {
            self.set_https(https);
        }
    }

    /// For the `decompress_request` setting, as Tornado's
    /// `_GzipMessageDelegate`: when `Content-Encoding` (all its lines
    /// joined) is `gzip` in any case, the header is renamed
    /// `X-Consumed-Content-Encoding` (added after the others, with the
    /// value as sent; one the client sent itself is kept, as Tornado's
    /// `headers.add` keeps it) and `true` is returned: the body is then to be
    /// decompressed. `Content-Length` is left as sent (the compressed
    /// length), as there. Other codings are left alone.
    pub(crate) fn consume_gzip_encoding(&mut self) -> bool {
        let value = match self.header_joined("Content-Encoding") {
            Some(v) if v.eq_ignore_ascii_case("gzip") => v.into_owned(),
            _ => return false,
        };
        let head = &self.head[..self.head_len as usize];
        let target_end = self.path.1.max(self.query_end) as usize;
        let start =
            memchr::memchr(b'\n', &head[target_end..]).map_or(head.len(), |p| target_end + p + 1);
        let mut out = Vec::with_capacity(self.head.len() + 32);
        out.extend_from_slice(&head[..start]);
        let mut rest = &head[start..];
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = &rest[..=end];
            rest = &rest[end + 1..];
            let text = line.trim_ascii_end();
            if text.is_empty() {
                break;
            }
            let name = memchr::memchr(b':', text).map_or(text, |c| &text[..c]);
            if !name.eq_ignore_ascii_case(b"content-encoding") {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(b"X-Consumed-Content-Encoding: ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        let head_len = out.len();
        out.extend_from_slice(self.body());
        self.head = out.into_boxed_slice();
        self.head_len = head_len as u32;
        true
    }

    /// Records the peer's address.
    pub fn set_peer(&mut self, peer: Option<SocketAddr>) {
        self.peer = peer;
    }

    /// `"https"` for a request that came over TLS, else `"http"`
    /// (Tornado's `HTTPServerRequest.protocol`). A WebSocket handler sees
    /// it through `ws.request()`.
    pub fn protocol(&self) -> &'static str {
        if self.connection & VIA_TLS != 0 {
            "https"
        } else {
            "http"
        }
    }

    /// Records whether the request came over TLS (the server connection
    /// does this; see [`protocol`](Self::protocol)).
    pub fn set_https(&mut self, https: bool) {
        if https {
            self.connection |= VIA_TLS;
        } else {
            self.connection &= !VIA_TLS;
        }
    }

    /// The request's host: the `Host` header, if any; for an absolute-form
    /// target (`GET http://h:8080/p`) the authority in it (`h:8080`),
    /// whatever `Host` says, as RFC 9112 §3.2.2 requires ("the origin
    /// server MUST ignore the received Host header field (if any) and
    /// instead use the host information of the request-target").
    pub fn host(&self) -> Option<&str> {
        let target = u32::from(self.method_len) + 1;
        if self.path.0 > target {
            // Only an absolute-form target has bytes before its path;
            // `origin_part` checked `scheme "://" authority`.
            let scheme_and_authority = self.text((target, self.path.0));
            return scheme_and_authority.split_once("://").map(|(_, a)| a);
        }
        self.header("host")
    }

    /// The URL the request was for (Tornado's `request.full_url()`):
    /// [`protocol`](Self::protocol), `://`, [`host`](Self::host) (Tornado's
    /// `127.0.0.1` when the request names none, as an HTTP/1.0 one may
    /// not) and the path with its query, as received:
    /// `https://example.com/a%20b?x=1`. With the `xheaders` setting, the
    /// protocol is the one the proxy reported. For an absolute-form target
    /// (`GET http://other:81/x?q=1` with `Host: h:80`) it is
    /// `http://other:81/x?q=1`, where Tornado glues its `Host` header to
    /// the whole target (`http://h:80http://other:81/x?q=1`).
    pub fn full_url(&self) -> String {
        let origin = self.text((self.path.0, self.target_end()));
        let slash = if origin.starts_with('/') { "" } else { "/" };
        let host = self.host().filter(|h| !h.is_empty()).unwrap_or("127.0.0.1");
        format!("{}://{host}{slash}{origin}", self.protocol())
    }

    /// Whether the connection stays open after this request (HTTP/1.1 default,
    /// `Connection: close`/`keep-alive` honoured).
    pub fn keep_alive(&self) -> bool {
        // `close` wins over `keep-alive` in either version (RFC 9112 §9.3).
        self.connection & CONN_CLOSE == 0
            && (self.version_minor >= 1 || self.connection & CONN_KEEP_ALIVE != 0)
    }

    /// Query arguments named `name`, percent-decoded (`+` is a space), in
    /// order. Names and values are read as UTF-8, invalid sequences as
    /// U+FFFD (Tornado reads names as Latin-1: see
    /// `RequestContext::get_arguments`).
    pub fn query_arguments(&self, name: &str) -> Vec<String> {
        qs_values(self.query(), name).collect()
    }

    /// The last query argument named `name`, percent-decoded (Tornado's
    /// `get_query_argument` returns the last value).
    pub fn query_argument(&self, name: &str) -> Option<String> {
        self.query_arguments(name).pop()
    }

    /// The cookie named `name`, from the `Cookie` headers. A value in
    /// double quotes is unquoted as Tornado's `parse_cookie` does (Python's
    /// `http.cookies`: `\"` and `\\` escapes, `\ooo` octal ones); any other
    /// value is taken as it is. Each `Cookie` header is read on its own
    /// (Tornado joins several with `,`, making `a=1` and `b=2` one cookie
    /// `a` of value `1,b=2`; RFC 6265 lets a browser send one), as UTF-8
    /// (Tornado reads header bytes as Latin-1: `é` sent in UTF-8 is `Ã©`
    /// there). A cookie whose name no `Set-Cookie` of
    /// Tornado's or cyclone's can carry (not an RFC 6265 token, or an
    /// attribute name such as `path`) is not read: Tornado's
    /// `request.cookies` drops it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookie_pairs()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| unquote_cookie(v))
    }

    /// Each `name=value` of the `Cookie` headers, both trimmed, in order,
    /// but those whose name `set_cookie` refuses.
    fn cookie_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_all("cookie")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.trim(), v.trim()))
            })
            .filter(|(k, _)| crate::web::cookie::name_ok(k))
    }

    /// The names of the request's cookies, each once, in the order they
    /// first appear (Tornado's `request.cookies` keys).
    pub fn cookie_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (k, _) in self.cookie_pairs() {
            if !names.iter().any(|n| n == k) {
                names.push(k.to_string());
            }
        }
        names
    }

    /// The signed cookie `name` ([`crate::web::signed`]): its value if it was
    /// signed with `secret` for this name within 31 days, as Tornado's
    /// `get_secure_cookie` (which reads the application's `cookie_secret`;
    /// so do `RequestContext::get_secure_cookie` and
    /// `WebSocket::get_secure_cookie`). With rotated secrets (Tornado's
    /// `cookie_secret` dictionary), use
    /// [`CookieSecret::decode_signed_value`](crate::web::CookieSecret::decode_signed_value)
    /// on [`cookie`](Self::cookie)`(name)`.
    pub fn signed_cookie(&self, secret: &str, name: &str) -> Option<Vec<u8>> {
        crate::web::decode_signed_value(secret, name, &self.cookie(name)?)
    }

    /// Bytes this request keeps on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.head.len()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("uri", &self.uri())
            .field("version", &format_args!("1.{}", self.version_minor))
            .field("headers", &self.headers().count())
            .field("body", &self.body().len())
            .field("peer", &self.peer)
            .finish()
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is true); invalid
/// escapes are kept literally, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus: bool) -> String {
    lossy(percent_decode_bytes(s, plus))
}

/// [`percent_decode`], or the bytes decoded when they are not UTF-8
/// (where Tornado's `decode_argument` answers 400, logging them).
pub(crate) fn percent_decode_utf8(s: &str, plus: bool) -> Result<String, Vec<u8>> {
    String::from_utf8(percent_decode_bytes(s, plus)).map_err(std::string::FromUtf8Error::into_bytes)
}

pub(crate) fn percent_decode_bytes(s: &str, plus: bool) -> Vec<u8> {
    percent_decode_raw(s.as_bytes(), plus)
}

fn percent_decode_raw(b: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The decoded values of the pairs named `name` in an
/// `application/x-www-form-urlencoded` string, in order. Only the matching
/// values are decoded and kept: the cost of a lookup is one pass over `qs`,
/// however many pairs it holds.
pub(crate) fn qs_values<'a>(qs: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    qs_values_bytes(qs.as_bytes(), name)
}

/// [`qs_values`] over bytes that need not be UTF-8 (a request body): each
/// name and value is percent-decoded to bytes first and then read as UTF-8
/// (invalid sequences replaced), so that a character sent part raw, part
/// escaped (`\xc3%A9`) is the `é` Tornado reads, not two U+FFFD.
pub(crate) fn qs_values_bytes<'a>(
    qs: &'a [u8],
    name: &'a str,
) -> impl Iterator<Item = String> + 'a {
    qs_pairs(qs).filter_map(move |(k, v)| {
        let matches = if k.iter().any(|&b| b == b'%' || b == b'+' || !b.is_ascii()) {
            lossy(percent_decode_raw(k, true)) == name
        } else {
            k == name.as_bytes()
        };
        matches.then(|| lossy(percent_decode_raw(v, true)))
    })
}

/// The non-empty `&`-separated pairs of an urlencoded string, split at
/// their first `=` (none: an empty value), not decoded.
fn qs_pairs(qs: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    qs.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        })
}

/// Bytes read as UTF-8, invalid sequences as U+FFFD, without a copy when
/// they are UTF-8.
fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Splits an `application/x-www-form-urlencoded` string into decoded pairs.
pub fn parse_qs(qs: &str) -> impl Iterator<Item = (String, String)> + '_ {
    parse_qs_bytes(qs.as_bytes())
}

/// [`parse_qs`] over bytes that need not be UTF-8 (a request body): each
/// name and value is percent-decoded to bytes, then read as UTF-8
/// (invalid sequences replaced), when it is reached, so the body is
/// neither checked nor copied whole, and a character sent part raw, part
/// escaped (`\xc3%A9`) is `é`, as Tornado reads it.
pub(crate) fn parse_qs_bytes(qs: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    qs_pairs(qs).map(|(k, v)| {
        (
            lossy(percent_decode_raw(k, true)),
            lossy(percent_decode_raw(v, true)),
        )
    })
}

/// Tornado's `parse_qs_bytes`: the pairs of an
/// `application/x-www-form-urlencoded` string with names and values
/// percent-decoded to bytes, kept as sent (no UTF-8 reading).
pub(crate) fn parse_qs_raw(qs: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    qs_pairs(qs).map(|(k, v)| (percent_decode_raw(k, true), percent_decode_raw(v, true)))
}

/// [`Request::raw_headers`]: the header lines of a head httparse has
/// validated, split with `memchr` (a handshake's headers are scanned
/// once per upgrade: 16,099 → 15,772 user-space instructions per
/// handshake against the byte loops, `benches/callgrind.sh` in e).
pub(crate) struct RawHeaders<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (line, rest) = match memchr::memchr(b'\n', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &b""[..]),
            };
            self.rest = rest;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = memchr::memchr(b':', line) {
                return Some((&line[..colon], line[colon + 1..].trim_ascii()));
            }
        }
        None
    }
}

/// Python's `http.cookies._unquote`, which Tornado's `parse_cookie`
/// applies: a value in double quotes loses them, `\ooo` (octal, up to
/// 0o377) becomes that character and `\c` becomes `c`. A value not
/// quoted at both ends is kept whole.
fn unquote_cookie(v: &str) -> String {
    // (A lone `"` is no quoted value: stripped of its one quote, nothing
    // is left to end with another.)
    let Some(inner) = v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.as_str().as_bytes();
        match rest {
            [a @ b'0'..=b'3', b @ b'0'..=b'7', d @ b'0'..=b'7', ..] => {
                let code = (a - b'0') * 64 + (b - b'0') * 8 + (d - b'0');
                out.push(char::from(code));
                chars = chars.as_str()[3..].chars();
            }
            _ => match chars.next() {
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_head_bytes: 8192,
        max_headers: 100,
    };

    fn parse(raw: &str) -> Request {
        match Request::parse_head(raw.as_bytes(), &LIMITS).unwrap() {
            HeadStatus::Complete(r, n) => {
                assert_eq!(n, raw.find("\r\n\r\n").unwrap() + 4);
                r
            }
            HeadStatus::Partial => panic!("partial"),
        }
    }

    #[test]
    fn headers_noted_absent_while_parsing_are_still_found_when_present() {
        let bare = parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        for name in ["content-type", "If-None-Match", "ACCEPT-ENCODING", "Cookie"] {
            assert_eq!(bare.header(name), None, "{name}");
            assert_eq!(bare.header_joined(name), None, "{name}");
            assert_eq!(bare.header_all(name).count(), 0, "{name}");
        }
        let full = parse(
            "GET / HTTP/1.1\r\nHost: h\r\ncontent-TYPE: text/plain\r\nIF-NONE-MATCH: \"a\"\r\n\
             Accept-Encoding: gzip\r\ncookie: a=1\r\nCookie: b=2\r\nX-Other: o\r\n\r\n",
        );
        assert_eq!(full.header("Content-Type"), Some("text/plain"));
        assert_eq!(
            full.header_joined("if-none-match").as_deref(),
            Some("\"a\"")
        );
        assert_eq!(full.header("accept-encoding"), Some("gzip"));
        assert_eq!(full.header_joined("COOKIE").as_deref(), Some("a=1,b=2"));
        assert_eq!(full.cookie("b").as_deref(), Some("2"));
        assert_eq!(full.header("x-other"), Some("o"));
        // Only one of them present: the others are still absent.
        let one = parse("POST / HTTP/1.1\r\nHost: h\r\nCookie: c=3\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(one.cookie("c").as_deref(), Some("3"));
        assert_eq!(one.header("content-type"), None);
        // HTTP/1.0 (whose Expect bits are dropped) keeps them too.
        let old = parse("GET / HTTP/1.0\r\nContent-Type: a/b\r\n\r\n");
        assert_eq!(old.header("content-type"), Some("a/b"));
        assert_eq!(old.header("cookie"), None);
    }

    #[test]
    fn header_joined_joins_repeated_lines_with_commas() {
        let raw =
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\nx-b: 1\r\nX-B: 2, 3\r\nX-b: \xff\r\n\r\n";
        let HeadStatus::Complete(r, _) = Request::parse_head(raw, &LIMITS).unwrap() else {
            panic!("partial");
        };
        let one = r.header_joined("x-a").unwrap();
        assert!(matches!(one, std::borrow::Cow::Borrowed("one")), "{one:?}");
        let several = r.header_joined("X-B").unwrap();
        assert!(matches!(several, std::borrow::Cow::Owned(_)), "{several:?}");
        assert_eq!(several, "1,2, 3,\u{fffd}");
        assert_eq!(r.header_joined("x-c"), None);
    }

    #[test]
    fn parses_target_headers_and_arguments() {
        let r = parse("GET /a/b?x=1&y=hello+world&x=%41%zz HTTP/1.1\r\nHost: h\r\nCookie: a=1; sid=\"abc\"\r\n\r\n");
        assert_eq!(r.method(), "GET");
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.query(), "x=1&y=hello+world&x=%41%zz");
        assert_eq!(r.uri(), "/a/b?x=1&y=hello+world&x=%41%zz");
        assert_eq!(r.header("HOST"), Some("h"));
        let all: Vec<_> = r.headers().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], ("Cookie", &b"a=1; sid=\"abc\""[..]));
        let spaced = parse("GET / HTTP/1.1\r\nHost: h\r\nX-A:   padded value \t\r\nX-B:\r\n\r\n");
        assert_eq!(spaced.header("x-a"), Some("padded value"));
        assert_eq!(spaced.header("x-b"), Some(""));
        assert_eq!(r.query_arguments("x"), vec!["1", "A%zz"]);
        assert_eq!(r.query_argument("y").as_deref(), Some("hello world"));
        assert!(r.body().is_empty());
        let mut with_body = r.clone();
        with_body.set_body(b"abc".to_vec());
        assert_eq!(with_body.body(), b"abc");
        assert_eq!(
            with_body.header("host"),
            Some("h"),
            "headers unaffected by the body"
        );
        assert_eq!(r.cookie("sid").as_deref(), Some("abc"));
        assert_eq!(r.cookie("nope"), None);
        // Quoted values are unquoted as Python's http.cookies does; others
        // are kept whole (an unbalanced quote included).
        let r = parse(
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: q=\"a b\\\"c\\\\d\\303\\251\"; \
             half=\"abc; end=abc\"; two=\"\"x\"\"; lone=\"a\\\"\r\n\r\n",
        );
        assert_eq!(r.cookie("q").as_deref(), Some("a b\"c\\d\u{c3}\u{a9}"));
        assert_eq!(r.cookie("half").as_deref(), Some("\"abc"));
        assert_eq!(r.cookie("end").as_deref(), Some("abc\""));
        assert_eq!(r.cookie("two").as_deref(), Some("\"x\""));
        assert_eq!(r.cookie("lone").as_deref(), Some("a\\"));
        assert!(r.keep_alive());
    }

    #[test]
    fn cookies_tornado_drops_are_not_read() {
        // Tornado 6.6.1's request.cookies for this header: keys ["c", "$v"];
        // get_cookie of every other name here is None (http.cookies
        // refuses the name, so request.cookies drops the cookie).
        let r = Request::synthetic(
            "GET",
            "/",
            &[(
                "Cookie",
                "a b=1; path=2; Expires=3; a/b=4; \u{e9}=5; =6; c=7; $v=8; Secure=9",
            )],
        );
        assert_eq!(r.cookie_names(), ["c", "$v"]);
        for name in ["a b", "path", "Expires", "a/b", "\u{e9}", "", "Secure"] {
            assert_eq!(r.cookie(name), None, "{name:?}");
        }
        assert_eq!(r.cookie("c").as_deref(), Some("7"));
    }

    #[test]
    fn bare_lf_line_ends_keep_every_header() {
        let raw = b"GET /p?q=1 HTTP/1.1\nHost: a\nX-Two: b\r\n\n";
        let r = match Request::parse_head(raw, &LIMITS).unwrap() {
            HeadStatus::Complete(r, n) => {
                assert_eq!(n, raw.len());
                r
            }
            HeadStatus::Partial => panic!("partial"),
        };
        // The first header follows a bare LF: it must not be skipped.
        assert_eq!(r.host(), Some("a"));
        assert_eq!(r.header("x-two"), Some("b"));
        assert_eq!(r.headers().count(), 2);
        assert_eq!(r.query(), "q=1");
    }

    /// The memchr scan of `raw_headers` gives exactly httparse's headers
    /// (names, trimmed values, order), whatever the line ends, colons in
    /// values, empty values or lengths around the SIMD block sizes.
    #[test]
    fn header_scan_matches_httparse() {
        let mut heads = vec![
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nX: a:b::c\r\nY:\r\nZ: \t v \t\r\n\r\n"
                .to_string(),
            "GET /x?y HTTP/1.1\nHost: h\nA: 1\r\nB: 2\n\n".to_string(),
        ];
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 200] {
            heads.push(format!(
                "GET /{} HTTP/1.1\r\nHost: h\r\nV{n}: {}\r\nK: {}:{}\r\n\r\n",
                "p".repeat(n),
                "v".repeat(n),
                "a".repeat(n),
                "b".repeat(n)
            ));
        }
        for head in &heads {
            let mut storage = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut storage);
            assert!(req.parse(head.as_bytes()).unwrap().is_complete());
            let want: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
            let HeadStatus::Complete(r, _) = Request::parse_head(head.as_bytes(), &LIMITS).unwrap()
            else {
                panic!("partial: {head:?}")
            };
            let got: Vec<(&str, &[u8])> = r.headers().collect();
            let want: Vec<(&str, Vec<u8>)> = want
                .iter()
                .map(|(n, v)| (*n, v.trim_ascii().to_vec()))
                .collect();
            let got: Vec<(&str, Vec<u8>)> = got.iter().map(|(n, v)| (*n, v.to_vec())).collect();
            assert_eq!(got, want, "{head:?}");
        }
    }

    #[test]
    fn partial_and_limits() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n";
        for n in 0..raw.len() {
            assert!(matches!(
                Request::parse_head(&raw[..n], &LIMITS),
                Ok(HeadStatus::Partial)
            ));
        }
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(
            Request::parse_head(big.as_bytes(), &LIMITS).unwrap_err(),
            ParseError::HeadTooLarge
        );
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..101 {
            many.push_str(&format!("H{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            Request::parse_head(many.as_bytes(), &LIMITS).unwrap_err(),
            ParseError::TooManyHeaders
        );
        let cl = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(
            Request::parse_head(cl.as_bytes(), &LIMITS).unwrap_err(),
            ParseError::BadContentLength
        );
        assert!(Request::parse_head(b"GARBAGE\r\n\r\n", &LIMITS).is_err());
        let huge = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4294967296\r\n\r\n";
        let err = Request::parse_head(huge.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!((err.clone(), err.status()), (ParseError::BodyTooLarge, 413));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n").keep_alive());
        assert!(
            parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, x-close\r\n\r\n").keep_alive()
        );
        // Tokens anywhere in a list, and in any of several Connection fields
        // (RFC 9110 §5.3: they combine into one list).
        assert!(
            !parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade , CLOSE\r\n\r\n").keep_alive()
        );
        assert!(!parse(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n"
        )
        .keep_alive());
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: te\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive()
        );
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        let missing = ParseError::Malformed("missing Host header");
        let two = ParseError::Malformed("more than one Host header");
        let err = |raw: &str| Request::parse_head(raw.as_bytes(), &LIMITS).unwrap_err();
        assert_eq!(err("GET / HTTP/1.1\r\n\r\n"), missing);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), two);
        assert_eq!(err("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), two);
        assert_eq!(missing.status(), 400);
        // HTTP/1.0 predates Host.
        assert_eq!(parse("GET / HTTP/1.0\r\n\r\n").host(), None);
        assert_eq!(
            Request::synthetic("GET", "/", &[]).host(),
            Some("localhost")
        );
    }

    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        for raw in [
            &b"\r\nPOST /p?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"\n\r\n\nPOST /p?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            let HeadStatus::Complete(mut r, n) = Request::parse_head(raw, &LIMITS).unwrap() else {
                panic!("partial");
            };
            assert_eq!(n, raw.len());
            assert_eq!((r.method(), r.uri(), r.query()), ("POST", "/p?q=1", "q=1"));
            assert_eq!(r.host(), Some("h"));
            r.set_body(b"xy".to_vec());
            // The empty lines are not kept: the head starts at the method.
            let skipped = raw.iter().position(|&b| b == b'P').unwrap();
            assert_eq!(
                (r.body(), r.heap_bytes()),
                (&b"xy"[..], raw.len() - skipped + 2)
            );
            let mut buf = b"xx".to_vec();
            buf.extend_from_slice(raw);
            buf.extend_from_slice(b"next");
            let mut pos = 2;
            let r = Request::parse_head_at(&mut buf, &mut pos, &LIMITS)
                .unwrap()
                .unwrap();
            assert_eq!((r.method(), &buf[pos..]), ("POST", &b"next"[..]));
            // Exactly the head: the buffer itself becomes the request's.
            let mut buf = raw.to_vec();
            let mut pos = 0;
            let r = Request::parse_head_at(&mut buf, &mut pos, &LIMITS)
                .unwrap()
                .unwrap();
            assert_eq!((r.host(), buf.len(), pos), (Some("h"), 0, 0));
        }
    }

    #[test]
    fn well_formed_other_versions_are_505() {
        let err = |raw: &[u8]| Request::parse_head(raw, &LIMITS).unwrap_err();
        for raw in [
            &b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/2.0\n",
            b"\r\nGET / HTTP/2.2\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
        ] {
            let e = err(raw);
            assert_eq!(
                (e.status(), &e),
                (505, &ParseError::UnsupportedVersion),
                "{raw:?}"
            );
        }
        for raw in [
            &b"GET / HTTX/1.1\r\n\r\n"[..],
            b"GET / HTTP/x\r\n\r\n",
            b"GET / HTTP/a",
            b"GET / HTTP/1.1x\r\n\r\n",
            b"GET / HTTP/1.10\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"GET / HTTP/2.x",
        ] {
            assert_eq!(err(raw).status(), 400, "{raw:?}");
        }
        // Still a beginning of HTTP/D.D: no answer yet (the whole head's
        // answer may be either).
        for raw in [&b"GET / HTTP/2"[..], b"GET / HTTP/2.", b"GET / HTTP/2.0"] {
            assert!(
                matches!(Request::parse_head(raw, &LIMITS), Ok(HeadStatus::Partial)),
                "{raw:?}"
            );
        }
    }

    /// RFC 9110 §2.5: a higher minor version of HTTP/1 is processed as
    /// HTTP/1.1, whole or in pieces, after empty lines too.
    #[test]
    fn higher_minor_versions_are_http_1_1() {
        let raw = b"\r\nPOST /p?q HTTP/1.7\r\nHost: h\r\nContent-Length: 2\r\n\r\nab";
        let Ok(HeadStatus::Complete(r, used)) = Request::parse_head(raw, &LIMITS) else {
            panic!("HTTP/1.7 does not parse");
        };
        assert_eq!(
            (r.method(), r.path(), r.query(), r.version_minor()),
            ("POST", "/p", "q", 1)
        );
        assert_eq!(
            (r.host(), r.content_length(), used),
            (Some("h"), 2, raw.len() - 2)
        );
        assert!(r.keep_alive());
        for end in 0..raw.len() - 3 {
            assert!(
                matches!(
                    Request::parse_head(&raw[..end], &LIMITS),
                    Ok(HeadStatus::Partial)
                ),
                "{:?}",
                &raw[..end]
            );
        }
        // Still HTTP/1.1's rules: a Host is required.
        let e = Request::parse_head(b"GET / HTTP/1.2\r\n\r\n", &LIMITS).unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn expectations() {
        let r = parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n");
        assert!(r.expects_continue() && !r.has_unmet_expectation());
        let r = parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, x\r\n\r\n");
        assert!(r.has_unmet_expectation());
        let r = parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n");
        assert!(!r.expects_continue() && r.has_unmet_expectation());
        let r = parse("POST / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(!r.expects_continue() && !r.has_unmet_expectation());
        // Ignored in HTTP/1.0 (RFC 9110 §10.1.1).
        let r = parse("POST / HTTP/1.0\r\nExpect: 100-continue, x\r\n\r\n");
        assert!(!r.expects_continue() && !r.has_unmet_expectation());
    }

    /// `Transfer-Encoding`: exactly `chunked` (any case, list syntax,
    /// empty elements) frames the body; anything else is refused with the
    /// status RFC 9112 §6 gives it. `LengthRequired` (411) is gone.
    #[test]
    fn transfer_encoding_framing() {
        let head = |te: &str| format!("POST /p HTTP/1.1\r\nHost: h\r\n{te}\r\n");
        for te in [
            "Transfer-Encoding: chunked\r\n",
            "transfer-encoding: CHUNKED\r\n",
            "Transfer-Encoding:  chunked \t\r\n",
            "Transfer-Encoding: ,chunked,\r\n",
            "Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n",
        ] {
            let r = parse(&head(te));
            assert!(r.is_chunked(), "{te:?}");
            assert_eq!(r.content_length(), 0);
        }
        assert!(!parse(&head("")).is_chunked());
        let err = |raw: &str| Request::parse_head(raw.as_bytes(), &LIMITS).unwrap_err();
        for (te, status) in [
            ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
            ("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", 400),
            ("Transfer-Encoding: gzip, chunked\r\n", 501),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                501,
            ),
            ("Transfer-Encoding: x;q=\"1\", chunked\r\n", 501),
            ("Transfer-Encoding: chunked, gzip\r\n", 400),
            ("Transfer-Encoding: identity\r\n", 400),
            ("Transfer-Encoding: gzip\r\n", 400),
            ("Transfer-Encoding: chunked, chunked\r\n", 400),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                400,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                400,
            ),
            ("Transfer-Encoding:\r\n", 400),
            ("Transfer-Encoding: ,\r\n", 400),
            ("Transfer-Encoding: chunked;x=1\r\n", 400),
            ("Transfer-Encoding: chun ked\r\n", 400),
            ("Transfer-Encoding: \"chunked\"\r\n", 400),
            ("Transfer-Encoding: gzip;, chunked\r\n", 400),
        ] {
            let e = err(&head(te));
            assert_eq!(e.status(), status, "{te:?}: {e:?}");
            assert!(
                matches!(
                    e,
                    ParseError::BadTransferEncoding(_) | ParseError::UnsupportedTransferCoding
                ),
                "{te:?}: {e:?}"
            );
        }
        let e = err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(
            (e.status(), e),
            (
                400,
                ParseError::BadTransferEncoding("Transfer-Encoding in HTTP/1.0")
            )
        );
        assert_eq!(ParseError::UnsupportedTransferCoding.status(), 501);
        assert_eq!(ParseError::BadChunk("x").status(), 400);
        // RFC 9112 §3: a method longer than any implemented is a 501; one
        // that fits reaches the application (a 405 there).
        let long = |n: usize| format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "M".repeat(n));
        let e = err(&long(256));
        assert_eq!((e.status(), e), (501, ParseError::MethodTooLong));
        assert_eq!(parse(&long(255)).method().len(), 255);
    }

    /// RFC 9112 §3.2.2: "a server MUST accept the absolute-form in
    /// requests": the path and query are those after the authority (`/`
    /// without a path); `uri()` is the target as received.
    #[test]
    fn absolute_form_targets() {
        for (target, path, query) in [
            ("http://example.com/a/b?q=1&r", "/a/b", "q=1&r"),
            ("HTTPS://Example.COM:8443/x", "/x", ""),
            ("http://example.com", "/", ""),
            ("http://example.com?q=1", "/", "q=1"),
            ("http://example.com/", "/", ""),
            ("http://[::1]:80/v6?", "/v6", ""),
            ("http://h//double", "//double", ""),
        ] {
            let r = parse(&format!(
                "GET {target} HTTP/1.1\r\nHost: other\r\nX: y\r\n\r\n"
            ));
            assert_eq!((r.path(), r.query(), r.uri()), (path, query, target));
            // The Host header is kept; `host()` is the target's authority.
            let authority = target.split('/').nth(2).unwrap().split('?').next();
            assert_eq!((r.host(), r.header("x")), (authority, Some("y")));
            assert_eq!(r.header("host"), Some("other"));
            assert_eq!(r.query_argument("q").is_some(), query.contains("q="));
        }
        // Origin-form, asterisk-form and CONNECT's authority-form as before.
        let r = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path(), r.uri(), r.host()), ("*", "*", Some("h")));
        let r = parse("CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.path(), r.host()), ("example.com:443", Some("h")));
        let r = parse("GET /p HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.host(), Some("h"));
        let err = |target: &str| {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            Request::parse_head(raw.as_bytes(), &LIMITS).unwrap_err()
        };
        for target in [
            "ftp://example.com/x",
            "ws://example.com/x",
            "mailto:a@b",
            "http:/example.com/x",
            "http:example.com",
            "http:///x",
            "http://?q",
            "http://user@example.com/",
            "http://exa\"mple/",
            "1http://example.com/",
            "example.com/x",
            "?q=1",
            "**",
        ] {
            let e = err(target);
            assert!(matches!(e, ParseError::Malformed(_)), "{target}: {e:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2e%2E/x%", false), "../x%");
        assert_eq!(percent_decode("a+b%20c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%4", false), "%4");
    }

    /// An urlencoded body is percent-decoded to bytes before it is read as
    /// UTF-8, as Tornado decodes it (then `decode_argument` reads UTF-8):
    /// a character sent part raw, part escaped is that character.
    #[test]
    fn form_bodies_decode_escapes_before_reading_utf8() {
        let body = b"a=\xc3%A9&b=%E2\x82%AC&%C3\xa9=n&c=\xe9&d=%e9";
        let pairs: Vec<(String, String)> = parse_qs_bytes(body).collect();
        let want = [
            ("a", "\u{e9}"),
            ("b", "\u{20ac}"),
            ("\u{e9}", "n"),
            ("c", "\u{fffd}"),
            ("d", "\u{fffd}"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, want);
        for (name, value) in &want {
            let got: Vec<String> = qs_values_bytes(body, name).collect();
            assert_eq!(got, std::slice::from_ref(value), "{name}");
        }
    }
}

#[cfg(test)]
mod xheaders_tests {
    use super::*;

    /// Expected values printed by Tornado 6.6's
    /// `_HTTPRequestContext._apply_xheaders` for a request from
    /// 10.0.0.1:4242 over `http` and over `https`.
    #[test]
    fn xheaders_as_tornado_applies_them() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            &'a str,
            [&'a str; 2],
        );
        let cases: &[Case<'_>] = &[
            (&[], &[], "10.0.0.1", ["http", "https"]),
            (
                &[("X-Forwarded-For", "1.2.3.4")],
                &[],
                "1.2.3.4",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-For", "1.2.3.4, 5.6.7.8")],
                &[],
                "5.6.7.8",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-For", "1.2.3.4, 5.6.7.8")],
                &["5.6.7.8"],
                "1.2.3.4",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-For", "1.2.3.4, 5.6.7.8")],
                &["5.6.7.8", "1.2.3.4"],
                "1.2.3.4",
                ["http", "https"],
            ),
            (
                &[
                    ("X-Forwarded-For", "1.2.3.4"),
                    ("X-Forwarded-For", "9.9.9.9"),
                ],
                &[],
                "9.9.9.9",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-For", "not-an-ip")],
                &[],
                "10.0.0.1",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-For", "1.2.3.4"), ("X-Real-Ip", "2001:db8::1")],
                &[],
                "2001:db8::1",
                ["http", "https"],
            ),
            (
                &[("X-Real-Ip", "bogus")],
                &[],
                "10.0.0.1",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-For", "1.2.3.4,")],
                &[],
                "10.0.0.1",
                ["http", "https"],
            ),
            (
                &[("X-Forwarded-Proto", "https")],
                &[],
                "10.0.0.1",
                ["https", "https"],
            ),
            (
                &[("X-Forwarded-Proto", "https, http")],
                &[],
                "10.0.0.1",
                ["http", "http"],
            ),
            (
                &[("X-Forwarded-Proto", "http,https")],
                &[],
                "10.0.0.1",
                ["https", "https"],
            ),
            (
                &[("X-Scheme", "http"), ("X-Forwarded-Proto", "https")],
                &[],
                "10.0.0.1",
                ["http", "http"],
            ),
            (&[("X-Scheme", "ftp")], &[], "10.0.0.1", ["http", "https"]),
            (&[("X-Scheme", "")], &[], "10.0.0.1", ["http", "https"]),
            (
                &[("X-Forwarded-Proto", "HTTPS")],
                &[],
                "10.0.0.1",
                ["http", "https"],
            ),
        ];
        for (headers, trusted, ip, protos) in cases {
            for (tls, proto) in [false, true].into_iter().zip(protos) {
                let mut req = Request::synthetic("GET", "/", headers);
                req.set_peer(Some("10.0.0.1:4242".parse().unwrap()));
                req.set_https(tls);
                let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
                req.apply_xheaders(&trusted);
                let got = (req.remote_ip().unwrap().to_string(), req.protocol());
                assert_eq!(
                    got,
                    (ip.to_string(), *proto),
                    "{headers:?} {trusted:?} tls {tls}"
                );
                assert_eq!(req.peer().unwrap().port(), 4242);
            }
        }
    }

    /// The forms Tornado's `is_valid_ip` (glibc's numeric `getaddrinfo`)
    /// takes beyond the canonical ones, and some it refuses: `remote_ip`
    /// is the address denoted (Tornado keeps the text), the zone goes to
    /// `peer`'s scope id. The whole table is in `http::ip`.
    #[test]
    fn xheaders_take_what_is_valid_ip_takes() {
        let lo = std::path::Path::new("/sys/class/net/lo").exists();
        let cases: &[(&str, &str, &str, u32)] = &[
            ("X-Real-Ip", "001.2.3.4", "1.2.3.4", 0),
            ("X-Real-Ip", "010.1.1.1", "8.1.1.1", 0),
            ("X-Forwarded-For", "9.9.9.9, 127.1", "127.0.0.1", 0),
            ("X-Forwarded-For", "0x7f000001", "127.0.0.1", 0),
            ("X-Real-Ip", "2001:db8::1%7", "2001:db8::1", 7),
            ("X-Real-Ip", "fe80::1%lo", "fe80::1", 1),
            ("X-Real-Ip", "08.1.1.1", "10.0.0.1", 0),
            ("X-Real-Ip", "1.2.3.4.5", "10.0.0.1", 0),
            ("X-Real-Ip", "256.1.1.1", "10.0.0.1", 0),
            ("X-Real-Ip", "::1%", "10.0.0.1", 0),
            ("X-Real-Ip", "::1%lo", "10.0.0.1", 0),
            (
                "X-Forwarded-For",
                "1.2.3.4, fe80::1%nosuchif0",
                "10.0.0.1",
                0,
            ),
        ];
        for &(name, value, ip, scope) in cases {
            if value.ends_with("%lo") && !lo {
                continue;
            }
            let mut req = Request::synthetic("GET", "/", &[(name, value)]);
            req.set_peer(Some("10.0.0.1:4242".parse().unwrap()));
            req.apply_xheaders(&[]);
            let got = req.remote_ip().unwrap().to_string();
            assert_eq!(got, ip, "{name}: {value}");
            let peer = req.peer().unwrap();
            assert_eq!(peer.port(), 4242, "{value}");
            let got_scope = match peer {
                SocketAddr::V6(v6) => v6.scope_id(),
                SocketAddr::V4(_) => 0,
            };
            assert_eq!(got_scope, scope, "{value}");
        }
    }
}

#[cfg(test)]
mod full_url_tests {
    use super::*;

    fn parse(raw: &str) -> Request {
        let limits = HeadLimits {
            max_head_bytes: usize::MAX,
            max_headers: MAX_HEADERS_STACK,
        };
        match Request::parse_head(raw.as_bytes(), &limits) {
            Ok(HeadStatus::Complete(r, _)) => r,
            _ => panic!("{raw:?} does not parse"),
        }
    }

    /// Tornado's `request.full_url()`: `protocol + "://" + host + uri`,
    /// the host `127.0.0.1` when the request names none.
    #[test]
    fn full_url_as_tornado_builds_it() {
        let req = Request::synthetic("GET", "/a%20b?x=1&y", &[("Host", "example.com:8080")]);
        assert_eq!(req.full_url(), "http://example.com:8080/a%20b?x=1&y");
        let mut req = Request::synthetic("GET", "/p?", &[("Host", "h")]);
        req.set_https(true);
        assert_eq!(req.full_url(), "https://h/p?");
        // HTTP/1.0 without Host.
        let req = parse("GET /p HTTP/1.0\r\n\r\n");
        assert_eq!(req.full_url(), "http://127.0.0.1/p");
        // An absolute-form target: its authority is the host (RFC 9112
        // §3.2.2), written once.
        let req = parse("GET http://other:81/q?z HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.full_url(), "http://other:81/q?z");
        let req = parse("GET http://other HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(req.full_url(), "http://other/");
    }
}
