//! HTTP/1.1 responses: status, headers, body, serialized with a correct
//! `Content-Length`, a cached `Date` and `Connection` handling.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// An HTTP response being built by a handler.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    reason: Option<String>,
    /// Names and values; those cyclone itself sets (the default
    /// `Content-Type`, `Etag`...) borrowed from static text, so the common
    /// answer allocates no string for them ([`Response::set_header_static`]).
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Vec<u8>,
    /// A region of a file sent after `body`, read as the peer takes it.
    file: Option<FileBody>,
    /// Which default headers ([`DEFAULT_SERVER`], [`DEFAULT_DATE`]) are
    /// still sent: a handler's own `Server` or `Date` replaces the default,
    /// and clearing the header removes it (Tornado's default headers).
    defaults: u8,
}

/// `Server: cyclone` is sent.
const DEFAULT_SERVER: u8 = 1;
/// The loop's cached `Date` is sent.
const DEFAULT_DATE: u8 = 2;

/// A region of a file that ends a response body
/// ([`Response::set_file_body`]).
#[derive(Debug, Clone)]
pub(crate) struct FileBody {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl FileBody {
    /// Bytes still to send.
    pub(crate) fn remaining(&self) -> u64 {
        self.len
    }

    /// Appends the next piece (at most `max` bytes) to `out`. A file that
    /// ends early is `UnexpectedEof`: the `Content-Length` sent cannot be
    /// kept.
    pub(crate) fn read_piece(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<()> {
        let want = usize::try_from(self.len).unwrap_or(usize::MAX).min(max);
        let start = out.len();
        out.resize(start + want, 0);
        let got = loop {
            match read_at(&self.file, &mut out[start..], self.offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        let n = match got {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than the Content-Length sent",
            )),
            r => r,
        };
        out.truncate(start + *n.as_ref().unwrap_or(&0));
        let n = n?;
        self.offset += n as u64;
        self.len -= n as u64;
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// The default-header bit a header name overrides (0 for other names).
fn default_bit(name: &str) -> u8 {
    if name.eq_ignore_ascii_case("server") {
        DEFAULT_SERVER
    } else if name.eq_ignore_ascii_case("date") {
        DEFAULT_DATE
    } else {
        0
    }
}

impl Default for Response {
    fn default() -> Self {
        Response::new(200)
    }
}

impl Response {
    /// A response with `status` and no headers or body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: None,
            headers: Vec::new(),
            body: Vec::new(),
            file: None,
            defaults: DEFAULT_SERVER | DEFAULT_DATE,
        }
    }

    /// A response with `status`, a plain-text body and the matching content type.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut r = Response::new(status);
        r.set_header_static("Content-Type", "text/plain; charset=UTF-8");
        r.body = body.into().into_bytes();
        r
    }

    /// An error page in Tornado's style: `<title>404: Not Found</title>`,
    /// the reason HTML-escaped as Tornado's `write_error` escapes it
    /// (`418: I&#x27;m a Teapot`).
    pub fn error(status: u16, message: Option<&str>) -> Response {
        let reason = html_escape(reason_phrase(status));
        let mut r = Response::new(status);
        r.set_header_static("Content-Type", "text/html; charset=UTF-8");
        let detail = message.map(html_escape).unwrap_or_default();
        r.body = format!(
            "<html><title>{status}: {reason}</title><body>{status}: {reason}{}{detail}</body></html>",
            if detail.is_empty() { "" } else { ": " }
        )
        .into_bytes();
        r
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Sets the status code (and optionally a custom reason phrase).
    ///
    /// A code outside 100–599 cannot be written as HTTP's three-digit
    /// status: it is refused, logged at `error`, and the status stays as it
    /// was. A `reason` that is not an RFC 9112 §4 `reason-phrase` (empty,
    /// a control character other than tab, a character beyond Latin-1) or
    /// that holds `<` is sent as `Unknown`, as Tornado 6.6's `set_status`
    /// replaces it, so a reason can neither break the status line nor
    /// carry markup into a page that shows it.
    pub fn set_status(&mut self, status: u16, reason: Option<&str>) {
        if !valid_status(status) {
            log::error!("refused status code {status}: not in 100-599");
            return;
        }
        self.status = status;
        self.reason = reason.map(|r| {
            if valid_reason(r) {
                r.to_string()
            } else {
                log::warn!("reason phrase {r:?} sent as \"Unknown\"");
                "Unknown".to_string()
            }
        });
    }

    /// Replaces every header named `name` with one `name: value`.
    ///
    /// A `name` that is not an HTTP token (RFC 9110 §5.1: no CR, LF, space,
    /// colon...) is refused with a warning and changes nothing, so a
    /// handler cannot inject header lines; control characters other than
    /// tab in `value` (CR and LF among them) are dropped when the response
    /// is serialized. `Content-Length`, `Connection` and `Transfer-Encoding`
    /// are the HTTP layer's (it frames every response itself): a handler's
    /// are not sent, except a `Content-Length` announced for a bodiless
    /// `HEAD` answer.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        if valid_name(name) {
            self.clear_header(name);
            self.headers
                .push((Cow::Owned(name.to_owned()), Cow::Owned(value.into())));
        }
    }

    /// [`set_header`](Self::set_header) for a name cyclone itself sets (a
    /// valid token, checked in debug builds) and a value that may be
    /// static: no allocation for either when both are.
    pub(crate) fn set_header_static(
        &mut self,
        name: &'static str,
        value: impl Into<Cow<'static, str>>,
    ) {
        debug_assert!(valid_name(name), "{name:?}");
        self.clear_header(name);
        self.headers.push((Cow::Borrowed(name), value.into()));
    }

    /// Adds a header line (keeps existing ones, e.g. for `Set-Cookie`).
    /// An invalid `name` is refused as by [`set_header`](Self::set_header).
    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        if valid_name(name) {
            self.defaults &= !default_bit(name);
            self.headers
                .push((Cow::Owned(name.to_owned()), Cow::Owned(value.into())));
        }
    }

    /// Removes every header named `name`.
    pub fn clear_header(&mut self, name: &str) {
        self.defaults &= !default_bit(name);
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Every header named `name`, in order.
    pub(crate) fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Whether the handler set `Connection: close` (a token of any
    /// `Connection` header): the connection then closes after this answer,
    /// which says `Connection: close` (RFC 9112 §9.6). The header itself
    /// is the framing layer's to write.
    pub(crate) fn asks_close(&self) -> bool {
        self.header_values("connection")
            .any(|v| crate::protocol::handshake::header_has_token(v.as_bytes(), "close"))
    }

    /// The headers set, taken out, for a head another layer writes (the
    /// WebSocket 101).
    pub(crate) fn take_headers(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.headers)
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect()
    }

    /// Keeps only the headers `keep(name, value)` accepts.
    pub(crate) fn retain_headers(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.headers.retain(|(n, v)| keep(n, v));
    }

    /// Appends to the body.
    pub fn write(&mut self, data: impl AsRef<[u8]>) {
        self.body.extend_from_slice(data.as_ref());
    }

    /// The body, to replace in place.
    pub(crate) fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// The body so far.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Replaces the body (and drops a [`set_file_body`](Self::set_file_body)).
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
        self.file = None;
    }

    /// Ends the body with `len` bytes of `file` from `offset`, after what
    /// was written: the connection reads it in 64 KiB pieces as the peer
    /// takes them, so a large download costs one piece of memory, not its
    /// size (Tornado's `StaticFileHandler` streams likewise). The length
    /// counts in `Content-Length` at once; a file that turns out shorter
    /// ends the connection after what it had.
    pub fn set_file_body(&mut self, file: File, offset: u64, len: u64) {
        self.file = Some(FileBody {
            file: Arc::new(file),
            offset,
            len,
        });
    }

    /// The length of the file part of the body (0 without one).
    pub fn file_body_len(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.len)
    }

    /// The body with its file part read in (for the unit tests).
    #[cfg(test)]
    pub(crate) fn full_body(&self) -> Vec<u8> {
        let mut all = self.body.clone();
        if let Some(mut f) = self.file.clone() {
            while f.len > 0 {
                f.read_piece(&mut all, 1 << 20).unwrap();
            }
        }
        all
    }

    /// The file part of the body, for the connection that sends it (not
    /// for a HEAD answer, nor a status without content).
    pub(crate) fn take_file_body(&mut self, head_only: bool) -> Option<FileBody> {
        let file = self.file.take()?;
        (!head_only && !self.no_body() && !self.empty_content() && file.len > 0).then_some(file)
    }

    /// 1xx, 204 and 304 carry no content (RFC 9110 §6.4.1).
    fn no_body(&self) -> bool {
        self.status == 204 || self.status == 304 || self.status < 200
    }

    /// 205 has a body, always empty: "a server MUST NOT generate content
    /// in a 205 response" and frames it as such, `Content-Length: 0` (RFC
    /// 9110 §15.3.6). What the handler wrote is dropped.
    fn empty_content(&self) -> bool {
        self.status == 205
    }

    /// Serializes into `out`. `head_only` omits the body (HEAD) but keeps its
    /// `Content-Length`; `keep_alive` chooses the `Connection` header.
    pub fn serialize(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool, date: &str) {
        out.reserve(128 + self.body.len());
        let framing = if self.no_body() {
            Framing::None
        } else if self.empty_content() {
            Framing::Length(0)
        } else {
            // The body's length, except for a HEAD answer without a body
            // whose handler announced the length itself (Tornado: a `head`
            // that sets Content-Length keeps it).
            Framing::Length(
                (head_only && self.body.is_empty())
                    .then(|| self.header("content-length"))
                    .flatten()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(self.body.len() as u64 + self.file_body_len()),
            )
        };
        self.write_head(out, framing, keep_alive, date);
        if !head_only && !self.no_body() && !self.empty_content() {
            out.extend_from_slice(&self.body);
        }
    }

    /// Serializes the head of a response whose body follows in pieces
    /// ([`PendingReply::start`](super::PendingReply::start)) and the body so
    /// far, and says how the rest is to be framed. A `Content-Length` the
    /// handler set is kept and the body sent as it is, up to that length
    /// (Tornado's `HTTP1Connection` chunks only when no length was given);
    /// otherwise `chunked` (HTTP/1.1) says `Transfer-Encoding: chunked`,
    /// and without it the body runs to the close. HEAD, 1xx, 204 and 304
    /// answers get [`BodyFraming::None`]: no body bytes follow; so does a
    /// 205, whose head says `Content-Length: 0`. A HEAD answer without a
    /// declared length names no framing, as Tornado omits it for HEAD.
    pub(crate) fn serialize_streaming(
        &self,
        out: &mut Vec<u8>,
        head_only: bool,
        chunked: bool,
        keep_alive: bool,
        date: &str,
    ) -> BodyFraming {
        let declared = self
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (framing, keep_alive) = if self.no_body() {
            (Framing::None, keep_alive)
        } else if self.empty_content() {
            (Framing::Length(0), keep_alive)
        } else if let Some(length) = declared {
            (Framing::Length(length), keep_alive)
        } else if head_only {
            // Tornado: "Omit payload header field for HEAD request"; no
            // body follows, so none has to run to the close either.
            (Framing::Unnamed, keep_alive)
        } else if chunked {
            (Framing::Chunked, keep_alive)
        } else {
            (Framing::UntilClose, false)
        };
        self.write_head(out, framing, keep_alive, date);
        let mut body = match framing {
            _ if head_only || self.empty_content() => BodyFraming::None,
            Framing::None => BodyFraming::None,
            Framing::Length(length) => BodyFraming::Length(length),
            Framing::Chunked => BodyFraming::Chunked,
            Framing::UntilClose => BodyFraming::UntilClose,
            Framing::Unnamed => BodyFraming::None,
        };
        // The body so far cannot overrun a declared length: the caller's
        // check for every later piece applies to the first one too.
        if body.write(out, &self.body).is_err() {
            body = BodyFraming::Overrun;
        }
        body
    }

    fn write_head(&self, out: &mut Vec<u8>, framing: Framing, keep_alive: bool, date: &str) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        match self.reason.as_deref() {
            Some(reason) => push_field_value(out, reason),
            None => out.extend_from_slice(reason_phrase(self.status).as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        if self.defaults & DEFAULT_SERVER != 0 {
            out.extend_from_slice(b"Server: cyclone\r\n");
        }
        if self.defaults & DEFAULT_DATE != 0 {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // A 205's body is empty whatever was written: nothing for the
        // representation headers to describe either.
        let no_body = matches!(framing, Framing::None) || self.empty_content();
        for (n, v) in &self.headers {
            // The framing is this layer's: `Content-Length` (or none) and
            // `Connection`; a handler's `Transfer-Encoding` beside them would
            // make the client read the body as chunks (RFC 9112 §6.1).
            if n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("connection")
                || n.eq_ignore_ascii_case("transfer-encoding")
                // A response without content describes no representation:
                // Tornado's `_clear_representation_headers` for 204 and
                // 304, and RFC 9110 §15.4.5's list for 304.
                || (no_body && REPRESENTATION.iter().any(|r| n.eq_ignore_ascii_case(r)))
            {
                continue;
            }
            push_header_line(out, n, v);
        }
        match framing {
            Framing::Length(length) => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, length);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::UntilClose | Framing::None | Framing::Unnamed => {}
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n" as &[u8]
        } else {
            b"Connection: close\r\n\r\n"
        });
    }
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy)]
enum Framing {
    /// No body at all (1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// The body ends where the connection does (HTTP/1.0 streaming).
    UntilClose,
    /// A HEAD answer to a streamed body of unknown length: no framing
    /// header at all (the content's headers stay), no body.
    Unnamed,
}

/// How the rest of a streamed answer's body goes out, once its head has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body bytes follow (HEAD, 1xx, 204, 205, 304): pieces are dropped.
    None,
    /// Each piece as a chunk; the last chunk ends the body.
    Chunked,
    /// As they are, this many bytes still to come (the handler's
    /// `Content-Length`).
    Length(u64),
    /// As they are, up to the close (HTTP/1.0 without a length).
    UntilClose,
    /// A piece passed the declared length: nothing more is sent, and the
    /// connection closes short of the length, so the client sees the body
    /// cut rather than a wrong one complete.
    Overrun,
}

impl BodyFraming {
    /// Appends `data` to the body. An empty `data` writes nothing (an empty
    /// chunk would end the body). `Err` when `data` would pass the declared
    /// length (then nothing is written and `self` is `Overrun`).
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), ()> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            BodyFraming::None => {}
            BodyFraming::Chunked => {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            BodyFraming::UntilClose => out.extend_from_slice(data),
            BodyFraming::Length(left) => {
                if data.len() as u64 > *left {
                    *self = BodyFraming::Overrun;
                    return Err(());
                }
                *left -= data.len() as u64;
                out.extend_from_slice(data);
            }
            BodyFraming::Overrun => return Err(()),
        }
        Ok(())
    }

    /// Ends the body: the last chunk, or nothing. `Err` when the body
    /// cannot end complete (fewer bytes than declared, or an overrun): the
    /// connection must then close.
    pub(crate) fn end(&self, out: &mut Vec<u8>) -> Result<(), ()> {
        match self {
            BodyFraming::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
            BodyFraming::Length(0) | BodyFraming::None | BodyFraming::UntilClose => {}
            BodyFraming::Length(_) | BodyFraming::Overrun => return Err(()),
        }
        Ok(())
    }
}

/// Whether `b` may stand in a field value or reason phrase: tab, or not a
/// control character (RFC 9110 §5.5 `field-value`, RFC 9112 §4
/// `reason-phrase`); the others (CR and LF among them) are dropped.
/// Appends the header line `name: value`. Never let a handler smuggle a
/// header break into a response, nor send a value a strict client
/// refuses: control characters other than tab are dropped from the value
/// (RFC 9110 §5.5 field-value). `name` was checked when it was set.
pub(crate) fn push_header_line(out: &mut Vec<u8>, name: &str, value: &str) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_field_value(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `value` without the bytes [`field_byte`] refuses. A value that
/// has none (nearly every one) is copied whole after one branchless pass
/// (about three instructions a byte), where filtering pushed it byte by
/// byte at about ten (`benches/callgrind_http.sh`).
fn push_field_value(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if bytes.iter().fold(true, |ok, &b| ok & field_byte(b)) {
        out.extend_from_slice(bytes);
    } else {
        out.extend(bytes.iter().copied().filter(|&b| field_byte(b)));
    }
}

/// Appends `n` in decimal, without the `String` that `to_string` makes.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Whether `b` may stand in a field value as written (RFC 9110 §5.5: no
/// control character but tab).
pub(crate) fn field_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

/// Whether `status` can be written as HTTP's three-digit status code.
pub(crate) fn valid_status(status: u16) -> bool {
    (100..=599).contains(&status)
}

/// Whether `reason` may stand on the status line as it is: Tornado 6.6's
/// `_ABNF.reason_phrase` (tab, space, visible ASCII, and U+0080–U+00FF
/// for `obs-text`), at least one character, and no `<`.
fn valid_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason.chars().all(|c| match c {
            '<' => false,
            '\t' | ' '..='~' | '\u{80}'..='\u{ff}' => true,
            _ => false,
        })
}

/// The representation headers a body-less status (1xx, 204, 304) and a
/// 205 drop.
const REPRESENTATION: [&str; 3] = ["content-type", "content-encoding", "content-language"];

/// Whether `name` is an HTTP token (RFC 9110 §5.1 `field-name`); logs a
/// warning when it is not.
fn valid_name(name: &str) -> bool {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        log::warn!("refused response header with an invalid name {name:?}");
    }
    ok
}

/// Escapes `<`, `>`, `&`, `"` and `'` for HTML text.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_html_escaped(&mut out, s);
    out
}

/// [`html_escape`] of `s` appended to `out` (what templates write into
/// the page they are building): the text between the five characters is
/// copied in runs.
pub(crate) fn push_html_escaped(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '<' => "&lt;",
            '>' => "&gt;",
            '&' => "&amp;",
            '"' => "&quot;",
            '\'' => "&#x27;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// The standard reason phrase for `status` (`"Unknown"` for others): the
/// codes of RFC 9110 and the other registered ones Tornado's
/// `httputil.responses` knows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        306 => "(Unused)",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a Teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

/// Formats a Unix time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86400;
    let secs = unix_secs % 86400;
    let weekday = DAYS[(days % 7) as usize];
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{weekday}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The current time as an HTTP date.
pub fn http_date_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    http_date(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn serialize_sets_length_and_connection() {
        let mut r = Response::text(200, "hi");
        r.set_header("X-Evil", "a\r\nSet-Cookie: x=1");
        let mut out = Vec::new();
        r.serialize(&mut out, false, true, "D");
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.contains("Connection: keep-alive\r\n\r\nhi"));
        assert!(s.contains("X-Evil: aSet-Cookie: x=1\r\n"));
        // A name that is not a token cannot inject a header line either.
        let mut bad = Response::text(200, "hi");
        bad.set_header("X-A\r\nSet-Cookie", "x=1");
        bad.add_header("X-B: y\r\nX-C", "z");
        bad.add_header("", "empty");
        bad.add_header("X Space", "s");
        assert_eq!(bad.header("X-A\r\nSet-Cookie"), None);
        let mut out = Vec::new();
        bad.serialize(&mut out, false, true, "D");
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("Set-Cookie") && !s.contains("X-C") && !s.contains("empty"));
        assert!(!s.contains("X Space"), "{s}");
        let mut head = Vec::new();
        r.serialize(&mut head, true, false, "D");
        let h = String::from_utf8(head).unwrap();
        assert!(h.ends_with("Connection: close\r\n\r\n"));
        assert!(h.contains("Content-Length: 2\r\n"));
    }

    #[test]
    fn decimals_and_field_values_are_written_as_to_string_and_filter_would() {
        for n in [0, 7, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
        for value in [
            "",
            "plain",
            "tab\there",
            "a\r\nb",
            "\0\x7f\x1f end",
            "caf\u{e9}",
        ] {
            let mut out = Vec::new();
            push_field_value(&mut out, value);
            let kept: Vec<u8> = value.bytes().filter(|&b| field_byte(b)).collect();
            assert_eq!(out, kept, "{value:?}");
        }
    }

    fn serialized(r: &Response) -> String {
        let mut out = Vec::new();
        r.serialize(&mut out, false, true, "D");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn status_codes_and_reasons_stay_on_the_status_line() {
        let mut r = Response::text(200, "hi");
        for bad in [0, 99, 600, 1000, u16::MAX] {
            r.set_status(bad, Some("Bad"));
            assert_eq!(r.status(), 200, "{bad} refused");
        }
        assert!(serialized(&r).starts_with("HTTP/1.1 200 OK\r\n"));
        r.set_status(599, None);
        assert!(serialized(&r).starts_with("HTTP/1.1 599 Unknown\r\n"));
        // A custom reason cannot end the status line or add a header.
        r.set_status(418, Some("Tea\r\nSet-Cookie: x=1\0\x7f\tpot"));
        let s = serialized(&r);
        assert!(s.starts_with("HTTP/1.1 418 Unknown\r\n"), "{s}");
        assert_eq!(s.matches("\r\n").count(), 7, "{s}");
        r.set_status(418, Some("I'm a\tTeapot"));
        assert!(serialized(&r).starts_with("HTTP/1.1 418 I'm a\tTeapot\r\n"));
    }

    /// RFC 9110 §15.3.6: a 205 says `Content-Length: 0` and sends none of
    /// what was written, whole or streamed.
    #[test]
    fn reset_content_is_framed_empty() {
        let mut r = Response::text(205, "written");
        r.set_header("Content-Length", "7");
        r.set_header("Content-Encoding", "gzip");
        let s = serialized(&r);
        assert!(
            !s.contains("Content-Encoding") && !s.contains("Content-Type"),
            "{s}"
        );
        assert!(s.contains("\r\nContent-Length: 0\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n"), "{s}");
        let mut out = Vec::new();
        let body = r.serialize_streaming(&mut out, false, true, true, "D");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(body, BodyFraming::None);
        assert!(
            s.contains("\r\nContent-Length: 0\r\n") && s.ends_with("\r\n\r\n"),
            "{s}"
        );
        assert!(!s.contains("Transfer-Encoding"), "{s}");
    }

    /// A HEAD answer streamed without a length names no framing, as
    /// Tornado omits the payload header fields for HEAD, and keeps the
    /// connection of an HTTP/1.0 client that asked for it (no body runs
    /// to a close). It said `Transfer-Encoding: chunked`, and closed the
    /// HTTP/1.0 one.
    #[test]
    fn a_streamed_head_answer_names_no_framing() {
        let mut r = Response::text(200, "hi");
        r.set_header("X-A", "1");
        for chunked in [true, false] {
            let mut out = Vec::new();
            let body = r.serialize_streaming(&mut out, true, chunked, true, "D");
            let s = String::from_utf8(out).unwrap();
            assert_eq!(body, BodyFraming::None);
            assert!(
                !s.contains("Transfer-Encoding") && !s.contains("Content-Length"),
                "{s}"
            );
            assert!(s.contains("Content-Type: text/plain"), "{s}");
            assert!(s.ends_with("Connection: keep-alive\r\n\r\n"), "{s}");
        }
    }

    #[test]
    fn bodyless_statuses_drop_representation_headers() {
        for status in [101, 204, 304] {
            let mut r = Response::text(200, "");
            r.set_status(status, None);
            r.set_header("Content-Type", "text/plain");
            r.set_header("Content-Encoding", "gzip");
            r.set_header("Content-Language", "en");
            r.set_header("ETag", "\"v1\"");
            let s = serialized(&r);
            for gone in ["Content-Type", "Content-Encoding", "Content-Language"] {
                assert!(!s.contains(gone), "{status}: {s}");
            }
            assert!(s.contains("ETag: \"v1\"\r\n"), "{status}: {s}");
            assert!(!s.contains("Content-Length"), "{status}: {s}");
        }
        let mut r = Response::text(200, "");
        r.set_header("Content-Type", "text/plain");
        assert!(serialized(&r).contains("Content-Type: text/plain\r\n"));
    }
}
