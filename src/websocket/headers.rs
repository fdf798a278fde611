//! The headers and cookies a WebSocket handler adds to its handshake's
//! answer: what a Tornado `WebSocketHandler` sets with `set_header` and
//! `set_cookie` in `prepare`, and in `set_default_headers`.

use super::settings::RouteSettings;
use crate::http::Response;
use crate::web::{cookie, signed, CookieOptions};

/// The head of a handshake's answer, for
/// [`WebSocketHandler::set_default_headers`](super::WebSocketHandler::set_default_headers)
/// to add headers and cookies to: the `101 Switching Protocols`, or the
/// refusal the handshake ended with ([`status`](Self::status) says which).
///
/// The handshake's own headers are not the handler's to change:
/// `Upgrade`, `Connection`, every `Sec-WebSocket-*`, `Content-Length` and
/// `Transfer-Encoding` are refused and logged at `error`. Values are
/// written as [`Response::set_header`] writes them (control characters
/// other than tab dropped), and names must be HTTP tokens.
pub struct HandshakeHeaders<'a> {
    resp: &'a mut Response,
    route: &'a RouteSettings,
    /// A signed cookie could not be signed (no `cookie_secret`): the 101
    /// becomes a 500, as Tornado's raise does.
    failed: bool,
}

impl<'a> HandshakeHeaders<'a> {
    pub(crate) fn new(resp: &'a mut Response, route: &'a RouteSettings) -> Self {
        HandshakeHeaders {
            resp,
            route,
            failed: false,
        }
    }

    /// Whether a call asked for what cannot be done (a signed cookie
    /// without a `cookie_secret`).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The answer's status: 101 for the upgrade, or the refusal's (403
    /// for an origin refused, a handler's own from `prepare`...).
    pub fn status(&self) -> u16 {
        self.resp.status()
    }

    /// Replaces every header named `name` with one `name: value`
    /// (Tornado's `set_header`).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        if self.handlers(name) {
            self.resp.set_header(name, value);
        }
    }

    /// Adds a header line, keeping the ones of the same name (Tornado's
    /// `add_header`).
    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        if self.handlers(name) {
            self.resp.add_header(name, value);
        }
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
    /// does: an invalid name or value is refused and logged, and setting
    /// a name again replaces its earlier value.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.set_cookie_with(name, value, &CookieOptions::default());
    }

    /// [`set_cookie`](Self::set_cookie) with Tornado's keyword arguments
    /// ([`CookieOptions`]).
    pub fn set_cookie_with(&mut self, name: &str, value: &str, options: &CookieOptions) {
        let now = signed::now_secs_f64();
        if let Some(line) = cookie::set_cookie_line("set_cookie", name, value, options, now) {
            self.push_cookie(name, line);
        }
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
            Some(signed) => {
                let now = signed::now_secs_f64();
                let line =
                    cookie::set_cookie_line("set_secure_cookie", name, &signed, options, now);
                if let Some(line) = line {
                    self.push_cookie(name, line);
                }
            }
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

    /// One `Set-Cookie` per name: `line` replaces an earlier one for `name`.
    fn push_cookie(&mut self, name: &str, line: String) {
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
