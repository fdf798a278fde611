//! The headers and cookies a WebSocket handler adds to its handshake's
//! answer: what a Tornado `WebSocketHandler` sets with `set_header` and
//! `set_cookie` in `prepare`, and in `set_default_headers`.

use super::settings::RouteSettings;
use crate::http::{Request, Response};
use crate::web::{cookie, signed, CookieOptions};

/// The head of a handshake's answer, for
/// [`WebSocketHandler::set_default_headers`](super::WebSocketHandler::set_default_headers)
/// to add headers and cookies to: the `101 Switching Protocols`, or the
/// refusal the handshake ended with ([`status`](Self::status) says which).
///
/// The handshake's own headers are not the handler's to change:
/// `Upgrade`, `Connection`, every `Sec-WebSocket-*`, `Content-Length` and
/// `Transfer-Encoding` are refused and logged at `error`, and names must
/// be HTTP tokens.
///
/// What Tornado's `set_header`, `add_header`, `set_cookie` and
/// `set_secure_cookie` raise for in a `WebSocketHandler`'s `prepare`
/// turns the answer into a 500 (logged), as there, whether it was the 101
/// or a refusal: a header value with a control character other than tab
/// (CR, LF, NUL, DEL...), a cookie as
/// [`RequestContext::set_cookie`](crate::web::RequestContext::set_cookie)
/// answers 500 for, a signed cookie without a `cookie_secret`. The 500 is
/// Tornado's page, and
/// [`set_default_headers`](super::WebSocketHandler::set_default_headers)
/// is asked again for its headers (`status()` 500), as Tornado's
/// `send_error` asks its own; it carries the cookies set before the
/// failing call, as Tornado's keeps those set before the raise (none
/// after it is set). Should that fail too, the plain page goes out.
/// (Tornado, whose `set_default_headers` runs in the handler's
/// constructor, closes the connection without an answer when it raises
/// there.)
pub struct HandshakeHeaders<'a> {
    resp: &'a mut Response,
    route: &'a RouteSettings,
    req: &'a Request,
    /// A call Tornado raises for (an unsafe header value, a refused
    /// cookie, a signed cookie without a `cookie_secret`): the answer
    /// becomes a 500.
    failed: bool,
}

impl<'a> HandshakeHeaders<'a> {
    pub(crate) fn new(resp: &'a mut Response, route: &'a RouteSettings, req: &'a Request) -> Self {
        HandshakeHeaders {
            resp,
            route,
            req,
            failed: false,
        }
    }

    /// Whether a call asked for what Tornado raises for (the answer is
    /// then a 500).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The answer's status: 101 for the upgrade, or the refusal's (403
    /// for an origin refused, a handler's own from `prepare`...).
    pub fn status(&self) -> u16 {
        self.resp.status()
    }

    /// Replaces every header named `name` with one `name: value`
    /// (Tornado's `set_header`). A `value` with a control character other
    /// than tab is logged and the answer is 500, as Tornado raises
    /// `ValueError`; characters beyond ASCII are sent in UTF-8 (see
    /// [`RequestContext::set_header`](crate::web::RequestContext::set_header)).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if self.handlers(name) && self.safe_value("set_header", name, &value) {
            self.resp.set_header(name, value);
        }
    }

    /// Adds a header line, keeping the ones of the same name (Tornado's
    /// `add_header`). The value is checked as
    /// [`set_header`](Self::set_header)'s.
    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if self.handlers(name) && self.safe_value("add_header", name, &value) {
            self.resp.add_header(name, value);
        }
    }

    /// Whether `value` may be sent ([`crate::web::header_value_safe`]);
    /// else the answer becomes a 500.
    fn safe_value(&mut self, call: &str, name: &str, value: &str) -> bool {
        let safe = crate::web::header_value_safe(call, name, value, self.req);
        self.failed |= !safe;
        safe
    }

    /// Removes every header named `name` (Tornado's `clear_header`).
    pub fn clear_header(&mut self, name: &str) {
        if self.handlers(name) {
            self.resp.clear_header(name);
        }
    }

    /// The first header named `name` the answer carries so far.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.resp.header(name)
    }

    /// Sets the cookie `name=value; Path=/`, as
    /// [`RequestContext::set_cookie`](crate::web::RequestContext::set_cookie)
    /// does: an invalid name or value is refused and logged (the answer
    /// is then a 500 where Tornado raises: a name `http.cookies` refuses,
    /// a space or control character in the value), and setting a name
    /// again replaces its earlier value.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.set_cookie_with(name, value, &CookieOptions::default());
    }

    /// [`set_cookie`](Self::set_cookie) with Tornado's keyword arguments
    /// ([`CookieOptions`]); a domain or path holding `;`, spaces or
    /// control characters answers 500 too, as Tornado raises.
    pub fn set_cookie_with(&mut self, name: &str, value: &str, options: &CookieOptions) {
        self.push_cookie_line("set_cookie", name, value, options);
    }

    /// Sets the cookie `name` to `value` signed with the route's
    /// `cookie_secret`, expiring in 30 days (Tornado's `set_secure_cookie`;
    /// see
    /// [`RequestContext::set_secure_cookie`](crate::web::RequestContext::set_secure_cookie)).
    /// Without a `cookie_secret` an error is logged and the handshake is
    /// answered 500 instead of 101, as Tornado raises.
    #[doc(alias = "set_signed_cookie")]
    pub fn set_secure_cookie(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let thirty_days = CookieOptions {
            expires_days: Some(30.0),
            ..CookieOptions::default()
        };
        self.set_secure_cookie_with(name, value, &thirty_days);
    }

    /// [`set_secure_cookie`](Self::set_secure_cookie) with all of
    /// Tornado's keyword arguments ([`CookieOptions`]; `expires_days:
    /// None` is a session cookie).
    #[doc(alias = "set_signed_cookie")]
    pub fn set_secure_cookie_with(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
        options: &CookieOptions,
    ) {
        let secret = self.route.cookie_secret.as_deref();
        let key_version = self
            .route
            .app
            .as_ref()
            .and_then(|a| a.settings().key_version);
        match signed::cookie_value(secret, key_version, name, value) {
            Some(signed) => self.push_cookie_line("set_secure_cookie", name, &signed, options),
            None => self.failed = true,
        }
    }

    /// Deletes the cookie `name` (an empty value that expired in 1970),
    /// as [`RequestContext::clear_cookie`](crate::web::RequestContext::clear_cookie).
    pub fn clear_cookie(&mut self, name: &str) {
        self.clear_cookie_with(name, &CookieOptions::default());
    }

    /// Deletes the cookie `name` set with `options`' `path` and `domain`
    /// (Tornado's `clear_cookie(name, path=, domain=)`).
    pub fn clear_cookie_with(&mut self, name: &str, options: &CookieOptions) {
        if let Some(line) = cookie::clear_cookie_line(name, options) {
            self.push_cookie(name, line);
        }
    }

    /// Sets the cookie for `call`, or refuses it (logged): the answer
    /// becomes a 500 where Tornado's `set_cookie` raises
    /// ([`cookie::set_cookie_call`]).
    fn push_cookie_line(&mut self, call: &str, name: &str, value: &str, options: &CookieOptions) {
        match cookie::set_cookie_call(call, name, value, options) {
            Ok(line) => {
                if let Some(line) = line {
                    self.push_cookie(name, line);
                }
            }
            Err(cookie::Raises) => self.failed = true,
        }
    }

    /// One `Set-Cookie` per name: `line` replaces an earlier one for `name`.
    /// None after a call Tornado raises for: the 500 keeps the cookies set
    /// before it, and Tornado sets none after its raise.
    fn push_cookie(&mut self, name: &str, line: String) {
        if self.failed {
            return;
        }
        self.resp.retain_headers(|n, v| {
            !(n.eq_ignore_ascii_case("set-cookie") && cookie::sets(v, name))
        });
        self.resp.add_header("Set-Cookie", line);
    }

    /// Whether `name` is the handler's to set: the handshake's own are not.
    fn handlers(&self, name: &str) -> bool {
        let ours = [
            "upgrade",
            "connection",
            "content-length",
            "transfer-encoding",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
            || name
                .get(..14)
                .is_some_and(|p| p.eq_ignore_ascii_case("sec-websocket-"));
        if ours {
            log::error!("{name:?} belongs to the WebSocket handshake: the handler's is refused");
        }
        !ours
    }
}
