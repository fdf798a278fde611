//! Opening handshake (RFC 6455 §4): accept key, request checks, the 101
//! response, the client's request and the check of the server's response,
//! and the `Sec-WebSocket-Extensions` grammar.
//!
//! HTTP parsing itself (httparse) belongs to the caller on the server side;
//! [`check_upgrade`] works on parsed headers. A request split across reads
//! is simply "not complete yet" for the caller's parser.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::{alphabet, Engine};

use super::error::HandshakeError;

/// The decoder of `Sec-WebSocket-Key`: the standard alphabet with padding,
/// which leaves the bits of the last character that the 16 bytes do not
/// use alone (`...ZR==` decodes as `...ZQ==` does): RFC 6455 §4.1's
/// grammar takes any base64 character there, and RFC 4648 §3.5 lets a
/// decoder ignore them. Clients that draw 22 random base64 characters for
/// a key and add `==` make such keys.
const KEY_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
///
/// # Panics
/// Never: base64 of a 20-byte digest is always 28 bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.digest().bytes();
    let mut out = [0u8; 28];
    let n = STANDARD
        .encode_slice(digest, &mut out)
        .expect("20 bytes encode to 28");
    debug_assert_eq!(n, 28);
    out
}

#[inline]
fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Whether a comma-separated header value contains `token`
/// (ASCII case-insensitive, spaces and tabs around elements ignored).
pub fn header_has_token(value: &[u8], token: &str) -> bool {
    // The usual value is the token alone (`Upgrade: websocket`,
    // `Connection: Upgrade`): one compare, no split.
    if value.eq_ignore_ascii_case(token.as_bytes()) {
        return true;
    }
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// What a valid upgrade request carries for the handler and negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest<'a> {
    /// The `Sec-WebSocket-Key` value (trimmed; 24 base64 characters).
    pub key: &'a [u8],
    /// `Origin` (or the pre-RFC `Sec-WebSocket-Origin`), if sent.
    pub origin: Option<&'a str>,
    /// Whether [`origin`](Self::origin) is the pre-RFC
    /// `Sec-WebSocket-Origin`, no `Origin` having come. The cross-origin
    /// rule reads `Origin` only, as Tornado's does.
    pub origin_is_legacy: bool,
    /// The first `Sec-Fetch-Site` (Fetch Metadata), if sent and UTF-8:
    /// read in the same pass, so the cross-origin rule needs no lookup.
    pub fetch_site: Option<&'a str>,
    /// `Host`, if sent and UTF-8.
    pub host: Option<&'a str>,
    /// Subprotocols from all `Sec-WebSocket-Protocol` headers, in order.
    pub protocols: Vec<&'a str>,
    /// Raw values of all `Sec-WebSocket-Extensions` headers, in order.
    pub extensions: Vec<&'a [u8]>,
}

/// Checks a server-side upgrade request (RFC 6455 §4.2.1).
///
/// `version_minor` is httparse's minor HTTP version (1 for HTTP/1.1).
/// A non-UTF-8 `Origin` is rejected as [`HandshakeError::OriginRejected`]
/// rather than treated as absent, so it cannot slip past `check_origin`.
///
/// # Errors
/// A [`HandshakeError`] whose `status()` is the HTTP answer: 405 (not GET), 400 (not HTTP/1.1, no `Host` or more than one ([`HandshakeError::BadHost`]), bad `Upgrade`/`Connection`, missing or invalid key, a repeated `Origin` or `Sec-WebSocket-Version` ([`HandshakeError::RepeatedHeader`])), 426 (unsupported version).
pub fn check_upgrade<'a>(
    method: &str,
    version_minor: u8,
    headers: &[(&'a str, &'a [u8])],
) -> Result<UpgradeRequest<'a>, HandshakeError> {
    check_upgrade_iter(method, version_minor, headers.iter().copied())
}

/// [`check_upgrade`] over any iterator of `(name, value)` pairs, such as
/// [`Request::headers`](crate::http::Request::headers): no list of headers
/// is collected per handshake.
///
/// # Errors
/// As [`check_upgrade`].
pub fn check_upgrade_iter<'a, N: AsRef<[u8]>>(
    method: &str,
    version_minor: u8,
    headers: impl IntoIterator<Item = (N, &'a [u8])>,
) -> Result<UpgradeRequest<'a>, HandshakeError> {
    // 1. "An HTTP/1.1 or higher GET request" (RFC 6455 §4.2.1)
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if version_minor < 1 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut version_ok = false;
    let mut key: Option<&'a [u8]> = None;
    let mut key_count = 0;
    let mut host_count = 0;
    let mut version_count = 0;
    let mut origin_count = 0;
    let mut fetch_site_seen = false;
    let mut req = UpgradeRequest {
        key: b"",
        origin: None,
        origin_is_legacy: false,
        fetch_site: None,
        host: None,
        protocols: Vec::new(),
        extensions: Vec::new(),
    };
    for (name, value) in headers {
        let name = name.as_ref();
        if name.eq_ignore_ascii_case(b"upgrade") {
            // 3. "An |Upgrade| header field containing the value "websocket",
            // treated as an ASCII case-insensitive value."
            upgrade |= header_has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case(b"connection") {
            // 4. "A |Connection| header field that includes the token
            // "Upgrade", treated as an ASCII case-insensitive value."
            connection |= header_has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case(b"sec-websocket-key") {
            key_count += 1;
            key = Some(trim(value));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-version") {
            // 6. "A |Sec-WebSocket-Version| header field, with a value of 13."
            version_count += 1;
            version_ok = trim(value) == b"13";
        } else if name.eq_ignore_ascii_case(b"origin")
            || name.eq_ignore_ascii_case(b"sec-websocket-origin")
        {
            let is_origin = name.eq_ignore_ascii_case(b"origin");
            origin_count += usize::from(is_origin);
            if req.origin.is_none() || is_origin {
                let v =
                    std::str::from_utf8(trim(value)).map_err(|_| HandshakeError::OriginRejected)?;
                req.origin = Some(v);
                req.origin_is_legacy = !is_origin;
            }
        } else if name.eq_ignore_ascii_case(b"sec-fetch-site") {
            if !fetch_site_seen {
                // As `Request::header` reads it: the first line, absent
                // when not UTF-8.
                fetch_site_seen = true;
                req.fetch_site = std::str::from_utf8(value).ok();
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            host_count += 1;
            req.host = std::str::from_utf8(trim(value)).ok();
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            if let Ok(v) = std::str::from_utf8(value) {
                req.protocols.extend(
                    v.split(',')
                        .map(|p| p.trim_matches(|c| c == ' ' || c == '\t'))
                        .filter(|p| !p.is_empty()),
                );
            }
        } else if name.eq_ignore_ascii_case(b"sec-websocket-extensions") {
            req.extensions.push(value);
        }
    }
    // 2. "A |Host| header field containing the server's authority." One
    // exactly: RFC 9112 §3.2 makes an HTTP/1.1 request without it, or any
    // request with two, a 400.
    if host_count != 1 {
        return Err(HandshakeError::BadHost);
    }
    if origin_count > 1 {
        return Err(HandshakeError::RepeatedHeader("Origin"));
    }
    if !upgrade {
        return Err(HandshakeError::BadUpgrade);
    }
    if !connection {
        return Err(HandshakeError::BadConnection);
    }
    if version_count > 1 {
        return Err(HandshakeError::RepeatedHeader("Sec-WebSocket-Version"));
    }
    if !version_ok {
        // "If this version does not match a version understood by the server,
        // the server MUST abort the WebSocket handshake described in this
        // section and instead send an appropriate HTTP error code (such as 426
        // Upgrade Required) and a |Sec-WebSocket-Version| header field"
        return Err(HandshakeError::UnsupportedVersion);
    }
    // 5. "A |Sec-WebSocket-Key| header field with a base64-encoded value that,
    // when decoded, is 16 bytes in length."
    let key = match key {
        Some(k) if key_count == 1 && k.len() == 24 => k,
        _ => return Err(HandshakeError::BadKey),
    };
    let mut decoded = [0u8; 18];
    match KEY_DECODER.decode_slice(key, &mut decoded) {
        Ok(16) => {}
        _ => return Err(HandshakeError::BadKey),
    }
    req.key = key;
    Ok(req)
}

const RESPONSE_101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: ";

/// Appends the `101 Switching Protocols` response.
pub fn write_101(
    out: &mut Vec<u8>,
    accept: &[u8; 28],
    subprotocol: Option<&str>,
    extensions: Option<&str>,
) {
    out.reserve(RESPONSE_101.len() + 28 + 4 + 64);
    out.extend_from_slice(RESPONSE_101);
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n");
    if let Some(p) = subprotocol {
        header_line(out, b"Sec-WebSocket-Protocol: ", p);
    }
    if let Some(e) = extensions {
        header_line(out, b"Sec-WebSocket-Extensions: ", e);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `name` (with its `": "`), `value` and CRLF.
fn header_line(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.extend_from_slice(name);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes from the OS, base64-encoded
/// (RFC 6455 §4.1: "randomly selected 16-byte value").
///
/// # Panics
///
/// If the OS entropy source fails (getrandom), which std itself treats as fatal.
pub fn generate_key() -> [u8; 24] {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("OS entropy source");
    let mut out = [0u8; 24];
    STANDARD
        .encode_slice(raw, &mut out)
        .expect("16 bytes encode to 24");
    out
}

fn has_crlf(s: &str) -> bool {
    s.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// The headers of the client's upgrade request that it sets itself and
/// that extra headers may not repeat: RFC 6455 §11.3.1 and §11.3.5 allow
/// `Sec-WebSocket-Key` and `Sec-WebSocket-Version` once (a server refuses
/// a second one, or takes the wrong key), and another `Upgrade` or
/// `Connection` value would make the upgrade ask for something else.
const OWN_REQUEST_HEADERS: [&str; 4] = [
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
];

/// Appends the client's upgrade request (RFC 6455 §4.1).
///
/// `host_header` is the `Host` value (`host[:port]`), `resource` the
/// request target (`/path?query`); a `Host` among `extra_headers` is sent
/// instead of `host_header`. Extra headers' names are sent without the
/// whitespace around them; a header whose name is then not a token (empty,
/// or with a space, a `:`…) or whose value holds a control character other
/// than a tab (CR, LF, NUL…) is dropped (with a warning) rather than let it
/// inject headers, fold into the previous one or make the server refuse
/// the request, and so are those this request sets itself (`Upgrade`, `Connection`,
/// `Sec-WebSocket-Key`, `Sec-WebSocket-Version`: Tornado's client
/// overwrites them too), which would otherwise go out twice.
pub fn write_client_request(
    out: &mut Vec<u8>,
    host_header: &str,
    resource: &str,
    key: &[u8; 24],
    protocols: &[String],
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(if resource.is_empty() {
        b"/"
    } else {
        resource.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let extra: Vec<(&str, &str)> = extra_headers
        .iter()
        .filter_map(|(raw_name, value)| {
            let name = raw_name.trim();
            if has_crlf(raw_name) || has_crlf(value) {
                log::warn!("dropping request header {raw_name:?}: contains CR/LF");
                return None;
            }
            // A name with a space or a `:` in it, or none, makes a line a
            // server refuses (or, led by whitespace, folds into the
            // previous header); a control character in a value too.
            if name.is_empty() || !name.bytes().all(is_tchar) {
                log::warn!("dropping request header {raw_name:?}: the name is not a token");
                return None;
            }
            if !value.bytes().all(crate::http::response::field_byte) {
                log::warn!("dropping request header {raw_name:?}: control character in the value");
                return None;
            }
            if OWN_REQUEST_HEADERS
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                log::warn!("dropping request header {raw_name:?}: the handshake sets it");
                return None;
            }
            Some((name, value.as_str()))
        })
        .collect();
    // A `Host` among the extra headers replaces ours (virtual hosting;
    // Tornado's client does the same): a request must carry exactly one.
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host_header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
    if !protocols.is_empty() {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        for (i, p) in protocols.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(p.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(e) = extensions {
        header_line(out, b"Sec-WebSocket-Extensions: ", e);
    }
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A server's accepted `101` response, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    /// Always 101.
    pub status: u16,
    /// The subprotocol the server selected (one we offered).
    pub subprotocol: Option<String>,
    /// Raw `Sec-WebSocket-Extensions` (several headers joined with ", "),
    /// for [`deflate::client_accept`](super::deflate::client_accept). If we
    /// offered none and this is `Some`, fail with `UnrequestedExtension`.
    pub extensions: Option<String>,
    /// Every header of the response, in order (values not UTF-8 read
    /// lossily): Tornado's `WebSocketClientConnection.headers`.
    pub headers: Vec<(String, String)>,
    /// Length of the response head; WebSocket frames start after it.
    pub head_len: usize,
}

/// Parses and checks the server's response (RFC 6455 §4.1, "the client MUST
/// validate the server's response as follows"). `Ok(None)`: head incomplete.
///
/// # Errors
/// [`HandshakeError::BadStatus`] for a status other than 101, [`HandshakeError::UnsupportedResponseVersion`] for an `HTTP/1.0 101`, [`HandshakeError::BadAccept`] for a missing or wrong `Sec-WebSocket-Accept`, [`HandshakeError::UnrequestedSubprotocol`] (also for a repeated `Sec-WebSocket-Protocol`), [`HandshakeError::InvalidResponse`] for a malformed head or a repeated `Sec-WebSocket-Accept`.
pub fn parse_client_response(
    buf: &[u8],
    key: &[u8; 24],
    offered_protocols: &[String],
) -> Result<Option<ClientResponse>, HandshakeError> {
    with_header_slots(buf, |slots| {
        check_response(buf, slots, key, offered_protocols)
    })
}

fn check_response<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    key: &[u8; 24],
    offered_protocols: &[String],
) -> Result<Option<ClientResponse>, HandshakeError> {
    let mut resp = httparse::Response::new(slots);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::InvalidResponse(e.to_string())),
    };
    let status = resp.code.unwrap_or(0);
    // 1. "If the status code received from the server is not 101, the client
    // handles the response per HTTP procedures."
    if status != 101 {
        return Err(HandshakeError::BadStatus {
            status,
            body: buf[head_len..].to_vec(),
            headers: owned_headers(resp.headers),
        });
    }
    // The 101 answers an HTTP/1.1 upgrade in HTTP/1.1 (RFC 6455 §4.2.2);
    // httparse reads only HTTP/1.x, so this refuses `HTTP/1.0 101`, which
    // Tornado accepts (see `UnsupportedResponseVersion`).
    if resp.version != Some(1) {
        return Err(HandshakeError::UnsupportedResponseVersion);
    }
    // RFC 6455 §4.1 item 2: the `Upgrade` field must be `websocket`, no
    // more (a second `Upgrade` header makes the field a list).
    let mut upgrade: Option<bool> = None;
    let mut connection = false;
    // Whether the one `Sec-WebSocket-Accept` seen so far is right.
    let mut accept_ok: Option<bool> = None;
    let mut subprotocol: Option<String> = None;
    let mut extensions: Option<String> = None;
    let expected = accept_key(key);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(upgrade.is_none() && trim(h.value).eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= header_has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            // RFC 6455 §4.1: the header must be there once with the right
            // value; two of them (one possibly right) fail the connection
            // rather than letting the last one win.
            if accept_ok.is_some() {
                return Err(HandshakeError::InvalidResponse(
                    "duplicate Sec-WebSocket-Accept".into(),
                ));
            }
            accept_ok = Some(trim(h.value) == expected);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            let p = std::str::from_utf8(trim(h.value))
                .map_err(|_| HandshakeError::InvalidResponse("non-UTF-8 subprotocol".into()))?;
            if p.is_empty() {
                // An empty field names none (Tornado reads it so too).
                continue;
            }
            // "If the response includes a |Sec-WebSocket-Protocol| header field
            // and this header field indicates the use of a subprotocol that was
            // not present in the client's handshake [...] the client MUST
            // _Fail the WebSocket Connection_."
            if subprotocol.is_some() || !offered_protocols.iter().any(|o| o == p) {
                return Err(HandshakeError::UnrequestedSubprotocol(p.to_owned()));
            }
            subprotocol = Some(p.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| HandshakeError::InvalidResponse("non-UTF-8 extensions".into()))?;
            match &mut extensions {
                Some(all) => {
                    all.push_str(", ");
                    all.push_str(v);
                }
                None => extensions = Some(v.to_owned()),
            }
        }
    }
    if upgrade != Some(true) {
        return Err(HandshakeError::InvalidResponse(
            "missing Upgrade: websocket".into(),
        ));
    }
    if !connection {
        return Err(HandshakeError::InvalidResponse(
            "missing Connection: Upgrade".into(),
        ));
    }
    if accept_ok != Some(true) {
        return Err(HandshakeError::BadAccept);
    }
    let headers = owned_headers(resp.headers);
    Ok(Some(ClientResponse {
        status,
        subprotocol,
        extensions,
        headers,
        head_len,
    }))
}

/// Runs `f` with room for every header of the response head at the start
/// of `buf`: 64 slots on the stack, or, for a head with more lines than
/// that, one slot per line on the heap. A response head has no header
/// count limit of its own (RFC 9110); the callers bound its size.
pub(crate) fn with_header_slots<'b, R>(
    buf: &'b [u8],
    f: impl FnOnce(&mut [httparse::Header<'b>]) -> R,
) -> R {
    const STACK: usize = 64;
    let lines = head_lines(buf);
    if lines <= STACK {
        f(&mut [httparse::EMPTY_HEADER; STACK])
    } else {
        f(&mut vec![httparse::EMPTY_HEADER; lines])
    }
}

/// The lines of the head at the start of `buf` up to its empty line (or
/// all of `buf`'s while incomplete): at least its header count. httparse
/// ends lines with `\n` or `\r\n`, and skips empty lines before the
/// status line.
fn head_lines(buf: &[u8]) -> usize {
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let buf = &buf[lead..];
    let mut n = 0;
    for i in memchr::memchr_iter(b'\n', buf) {
        n += 1;
        if matches!(&buf[i + 1..], [b'\n', ..] | [b'\r', b'\n', ..]) {
            break;
        }
    }
    n
}

/// A parsed head's fields as owned (name, value) pairs, in order (a value
/// that is not UTF-8 with its bad bytes replaced).
pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_owned(), value)
        })
        .collect()
}

/// One element of a `Sec-WebSocket-Extensions` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// Extension token, as sent.
    pub name: String,
    /// Parameters in order; quoted-string values are unescaped.
    pub params: Vec<(String, Option<String>)>,
}

/// Whether `b` may be part of a token (RFC 7230 §3.2.6 `tchar`): what
/// extension names and subprotocols (RFC 6455 §4.1) are made of.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn ows(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] == b' ' || self.s[self.i] == b'\t') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn token(&mut self) -> Result<String, ()> {
        let start = self.i;
        while self.i < self.s.len() && is_tchar(self.s[self.i]) {
            self.i += 1;
        }
        if self.i == start {
            return Err(());
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> Result<String, ()> {
        // RFC 7230 §3.2.6 quoted-string; opening DQUOTE already seen.
        self.i += 1;
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => return Err(()),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(v).map_err(|_| ());
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or(())?;
                    if c < 0x20 && c != b'\t' || c == 0x7f {
                        return Err(());
                    }
                    v.push(c);
                    self.i += 2;
                }
                Some(c) if c == b'\t' || (c >= 0x20 && c != 0x7f) => {
                    v.push(c);
                    self.i += 1;
                }
                Some(_) => return Err(()),
            }
        }
    }
}

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1 over RFC 7230
/// token / quoted-string): `ext; p1; p2=v, ext2`. Empty list elements are
/// skipped (RFC 7230 §7); anything else malformed is `Err(())`.
///
/// # Errors
/// `Err(())` when the value does not follow the RFC 7230 token / quoted-string grammar.
#[allow(clippy::result_unit_err)]
pub fn parse_extensions(value: &[u8]) -> Result<Vec<ExtensionOffer>, ()> {
    let mut lx = Lexer { s: value, i: 0 };
    let mut offers = Vec::new();
    loop {
        lx.ows();
        match lx.peek() {
            None => break,
            Some(b',') => {
                lx.i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = lx.token()?;
        let mut params = Vec::new();
        loop {
            lx.ows();
            match lx.peek() {
                None => break,
                Some(b',') => {
                    lx.i += 1;
                    break;
                }
                Some(b';') => {
                    lx.i += 1;
                    lx.ows();
                    let pname = lx.token()?;
                    lx.ows();
                    let val = if lx.peek() == Some(b'=') {
                        lx.i += 1;
                        lx.ows();
                        Some(if lx.peek() == Some(b'"') {
                            lx.quoted()?
                        } else {
                            lx.token()?
                        })
                    } else {
                        None
                    };
                    params.push((pname, val));
                }
                Some(_) => return Err(()),
            }
        }
        offers.push(ExtensionOffer { name, params });
    }
    Ok(offers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1_3_accept_key() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn tokens() {
        assert!(header_has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(header_has_token(b"\tUPGRADE\t", "upgrade"));
        assert!(!header_has_token(b"upgrades", "upgrade"));
        assert!(!header_has_token(b"", "upgrade"));
    }

    fn good<'a>() -> Vec<(&'a str, &'a [u8])> {
        vec![
            ("Host", b"example.com"),
            ("Upgrade", b"WebSocket"),
            ("Connection", b"keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", b"13"),
            ("Origin", b"http://example.com"),
            ("Sec-WebSocket-Protocol", b"chat, superchat"),
            ("Sec-WebSocket-Protocol", b"v2"),
            (
                "Sec-WebSocket-Extensions",
                b"permessage-deflate; client_max_window_bits",
            ),
        ]
    }

    #[test]
    fn check_upgrade_accepts_rfc_request() {
        let h = good();
        let r = check_upgrade("GET", 1, &h).unwrap();
        assert_eq!(r.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(r.origin, Some("http://example.com"));
        assert_eq!(r.host, Some("example.com"));
        assert_eq!(r.protocols, ["chat", "superchat", "v2"]);
        assert_eq!(r.extensions.len(), 1);
    }

    #[test]
    fn check_upgrade_rejections() {
        let h = good();
        assert_eq!(check_upgrade("POST", 1, &h).unwrap_err().status(), 405);
        assert_eq!(
            check_upgrade("GET", 0, &h).unwrap_err(),
            HandshakeError::UnsupportedHttpVersion
        );
        let without = |n: &str| -> Vec<(&str, &[u8])> {
            good().into_iter().filter(|(k, _)| *k != n).collect()
        };
        assert_eq!(
            check_upgrade("GET", 1, &without("Upgrade")).unwrap_err(),
            HandshakeError::BadUpgrade
        );
        assert_eq!(
            HandshakeError::BadUpgrade.to_string(),
            "Can \"Upgrade\" only to \"WebSocket\"."
        );
        assert_eq!(
            check_upgrade("GET", 1, &without("Connection")).unwrap_err(),
            HandshakeError::BadConnection
        );
        // RFC 6455 §4.2.1 item 2: exactly one Host (400).
        let e = check_upgrade("GET", 1, &without("Host")).unwrap_err();
        assert_eq!((e.status(), e), (400, HandshakeError::BadHost));
        let mut h = good();
        h.push(("host", b"other.example"));
        assert_eq!(check_upgrade("GET", 1, &h).unwrap_err().status(), 400);
        let e = check_upgrade("GET", 1, &without("Sec-WebSocket-Version")).unwrap_err();
        assert_eq!((e.status(), e), (426, HandshakeError::UnsupportedVersion));
        assert_eq!(
            check_upgrade("GET", 1, &without("Sec-WebSocket-Key")).unwrap_err(),
            HandshakeError::BadKey
        );
        let mut h = without("Sec-WebSocket-Key");
        h.push(("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ"));
        assert_eq!(check_upgrade("GET", 1, &h).unwrap_err().status(), 400);
        let mut h = without("Sec-WebSocket-Key");
        h.push(("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ!!"));
        assert_eq!(
            check_upgrade("GET", 1, &h).unwrap_err(),
            HandshakeError::BadKey
        );
        let mut h = good();
        h.push(("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(
            check_upgrade("GET", 1, &h).unwrap_err(),
            HandshakeError::BadKey
        );
        let mut h = without("Sec-WebSocket-Version");
        h.push(("Sec-WebSocket-Version", b"8"));
        assert_eq!(
            check_upgrade("GET", 1, &h).unwrap_err(),
            HandshakeError::UnsupportedVersion
        );
        let mut h = without("Origin");
        h.push(("Origin", b"\xff"));
        assert_eq!(check_upgrade("GET", 1, &h).unwrap_err().status(), 403);
        // Headers a request may carry once: a second copy, even an equal
        // one, is a 400 naming the header (RFC 6455 §11.3.5, RFC 6454 §7.3).
        for (name, value) in [
            ("Sec-WebSocket-Version", b"13" as &[u8]),
            ("Origin", b"http://example.com"),
        ] {
            let mut h = good();
            h.push((name, value));
            let e = check_upgrade("GET", 1, &h).unwrap_err();
            assert_eq!(
                (e.status(), &e),
                (400, &HandshakeError::RepeatedHeader(name))
            );
            assert_eq!(e.to_string(), format!("Repeated {name} header"));
        }
        // The pre-RFC Sec-WebSocket-Origin beside Origin is not a repeat:
        // Origin wins.
        let mut h = good();
        h.push(("Sec-WebSocket-Origin", b"http://other.example"));
        assert_eq!(
            check_upgrade("GET", 1, &h).unwrap().origin,
            Some("http://example.com")
        );
        assert!(!check_upgrade("GET", 1, &h).unwrap().origin_is_legacy);
        // Alone, it is the origin, marked as the legacy header.
        let mut h = good();
        h.retain(|(n, _)| *n != "Origin");
        h.push(("Sec-WebSocket-Origin", b"http://other.example"));
        let r = check_upgrade("GET", 1, &h).unwrap();
        assert_eq!(r.origin, Some("http://other.example"));
        assert!(r.origin_is_legacy);
    }

    #[test]
    fn check_upgrade_notes_the_first_sec_fetch_site() {
        let r = check_upgrade("GET", 1, &good()).unwrap();
        assert_eq!(r.fetch_site, None);
        for (lines, want) in [
            (&[&b"cross-site"[..]][..], Some("cross-site")),
            (&[&b"same-origin"[..], b"cross-site"], Some("same-origin")),
            // Not UTF-8: absent, and the next line does not stand in.
            (&[&b"\xff"[..], b"same-origin"], None),
        ] {
            let mut h = good();
            h.extend(lines.iter().map(|v| ("Sec-Fetch-Site", *v)));
            assert_eq!(check_upgrade("GET", 1, &h).unwrap().fetch_site, want);
        }
    }

    #[test]
    fn response_101() {
        let mut out = Vec::new();
        write_101(
            &mut out,
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            Some("chat"),
            Some("permessage-deflate"),
        );
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        );
    }

    #[test]
    fn client_request_and_response() {
        let key = generate_key();
        assert_ne!(key, generate_key());
        let mut decoded = [0u8; 18];
        assert_eq!(STANDARD.decode_slice(key, &mut decoded), Ok(16));
        let mut req = Vec::new();
        let protos = vec!["chat".to_string(), "v2".to_string()];
        write_client_request(
            &mut req,
            "localhost:8888",
            "/ws?x=1",
            &key,
            &protos,
            Some("permessage-deflate"),
            &[
                ("X-A".into(), "b".into()),
                ("Bad".into(), "x\r\nEvil: 1".into()),
            ],
        );
        // The server side accepts what the client writes.
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Request::new(&mut hs);
        let n = match r.parse(&req).unwrap() {
            httparse::Status::Complete(n) => n,
            _ => panic!("incomplete"),
        };
        assert_eq!(n, req.len());
        assert_eq!(r.path, Some("/ws?x=1"));
        let pairs: Vec<(&str, &[u8])> = r.headers.iter().map(|h| (h.name, h.value)).collect();
        assert!(!pairs.iter().any(|(k, _)| *k == "Evil" || *k == "Bad"));
        let up = check_upgrade(r.method.unwrap(), r.version.unwrap(), &pairs).unwrap();
        assert_eq!(up.protocols, ["chat", "v2"]);
        let mut resp = Vec::new();
        write_101(
            &mut resp,
            &accept_key(up.key),
            Some("v2"),
            Some("permessage-deflate"),
        );
        let full_len = resp.len();
        resp.extend_from_slice(&[0x81, 0x00]);
        for cut in 0..full_len {
            assert_eq!(parse_client_response(&resp[..cut], &key, &protos), Ok(None));
        }
        let c = parse_client_response(&resp, &key, &protos)
            .unwrap()
            .unwrap();
        assert_eq!(c.head_len, full_len);
        assert_eq!(c.subprotocol.as_deref(), Some("v2"));
        assert_eq!(c.extensions.as_deref(), Some("permessage-deflate"));
        // Wrong key, unoffered protocol, bad status.
        assert_eq!(
            parse_client_response(&resp, &generate_key(), &protos),
            Err(HandshakeError::BadAccept)
        );
        assert_eq!(
            parse_client_response(&resp, &key, &["chat".to_string()]),
            Err(HandshakeError::UnrequestedSubprotocol("v2".into()))
        );
        let e = parse_client_response(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!",
            &key,
            &protos,
        );
        assert_eq!(
            e,
            Err(HandshakeError::BadStatus {
                status: 403,
                body: b"no!".to_vec(),
                headers: vec![("Content-Length".into(), "3".into())],
            })
        );
    }

    #[test]
    fn extension_grammar() {
        let v = parse_extensions(
            b"permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\" , x-foo,, permessage-deflate",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].name, "permessage-deflate");
        assert_eq!(
            v[0].params,
            [
                ("client_max_window_bits".to_string(), None),
                ("server_max_window_bits".to_string(), Some("10".to_string()))
            ]
        );
        assert_eq!(
            v[1],
            ExtensionOffer {
                name: "x-foo".into(),
                params: vec![]
            }
        );
        assert_eq!(parse_extensions(b""), Ok(vec![]));
        for bad in [
            &b"; a"[..],
            b"a;",
            b"a; b=",
            b"a b",
            b"a; b=\"unterminated",
            b"a; =1",
            b"a; b=c d",
            b"\"q\"",
        ] {
            assert!(
                parse_extensions(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
