//! The `WebSocketHandler` trait: Tornado's `WebSocketHandler` methods, one
//! handler object per connection.

use super::connection::WebSocket;
use super::headers::HandshakeHeaders;
use super::message::Message;
use super::settings::RouteSettings;
use crate::http::{Request, Response};
use crate::protocol::CompressionOptions;
use std::rc::Rc;

/// Per-connection WebSocket behaviour. Only [`on_message`](Self::on_message)
/// is required; every other method has Tornado's default.
///
/// The same trait drives server connections (routes registered with
/// `Application::builder().websocket(..)`) and client connections
/// (`websocket_connect_with`).
///
/// A panic in any callback closes only that connection with 1011 and is
/// logged. Tornado logs an exception there too, but drops the connection
/// without a Close frame (its `_abort`: the peer sees 1006); here the
/// peer learns that the server failed (RFC 6455 §7.4.1), and gets
/// `close_timeout` to answer.
pub trait WebSocketHandler: 'static {
    /// Runs when a handshake request reaches this handler's route, after
    /// [`get_current_user`](Self::get_current_user) and before the
    /// request is checked and answered (server only): Tornado's
    /// `prepare()`, where an application refuses the upgrade (`raise
    /// HTTPError(403)`; for Tornado's `@authenticated` redirect, see
    /// [`authenticated`](Self::authenticated)). `Err(response)` is sent
    /// instead of the `101` and the connection never opens; `Ok(())` (the
    /// default) goes on to `authenticated`, the handshake checks,
    /// `check_origin` and `open`.
    ///
    /// As in Tornado, it runs for a request of any of the methods a
    /// handler takes ([`HANDLER_METHODS`](crate::web::HANDLER_METHODS)),
    /// not only `GET`: its refusal wins over the 405 such a request gets
    /// after it. Other methods are answered 405 before the handler is
    /// made. Before it, a method other than `GET`, `HEAD` and `OPTIONS`
    /// is refused 403 by the application's
    /// [`xsrf_cookies`](crate::web::Settings::xsrf_cookies) and
    /// [`cross_origin_protection`](crate::web::Settings::cross_origin_protection)
    /// when they are on and it fails them (Tornado's `_execute` order),
    /// and then neither this nor `get_current_user` runs.
    ///
    /// # Errors
    /// The response to send instead of the upgrade (a 403 made with
    /// `Response::error(403, Some("why"))`, a redirect, ...).
    ///
    /// ```
    /// use cyclone::http::{Request, Response};
    /// use cyclone::web::Application;
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Chat { secret: &'static str, user: String }
    ///
    /// impl WebSocketHandler for Chat {
    ///     fn prepare(&mut self, req: &Request) -> Result<(), Response> {
    ///         match req.signed_cookie(self.secret, "user") {
    ///             Some(user) => {
    ///                 self.user = String::from_utf8_lossy(&user).into_owned();
    ///                 Ok(())
    ///             }
    ///             None => Err(Response::error(403, Some("log in first"))),
    ///         }
    ///     }
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {}
    /// }
    ///
    /// const SECRET: &str = "a long random string";
    /// let app = Application::builder()
    ///     .cookie_secret(SECRET)
    ///     .websocket("/chat", |_r: &Request| Chat { secret: SECRET, user: String::new() })
    ///     .build();
    /// ```
    fn prepare(&mut self, req: &Request) -> Result<(), Response> {
        let _ = req;
        Ok(())
    }

    /// Who the handshake's visitor is (server only): Tornado's
    /// `get_current_user` in a `WebSocketHandler`, usually the signed
    /// `user` cookie, read with [`get_secure_cookie`]. Asked once per
    /// handshake, first, before [`prepare`](Self::prepare). The answer
    /// becomes the connection's [`WebSocket::current_user`] (so
    /// [`open`](Self::open) and the templates the connection renders see
    /// it), and decides [`authenticated`](Self::authenticated) routes.
    /// `None` (the default) is nobody.
    ///
    /// ```
    /// use cyclone::http::Request;
    /// use cyclone::web::Application;
    /// use cyclone::websocket::{get_secure_cookie, Message, WebSocket, WebSocketHandler};
    ///
    /// struct Chat;
    ///
    /// impl WebSocketHandler for Chat {
    ///     fn get_current_user(&mut self, req: &Request) -> Option<String> {
    ///         let user = get_secure_cookie(req, "user")?;
    ///         Some(String::from_utf8_lossy(&user).into_owned())
    ///     }
    ///     // Tornado's `@tornado.web.authenticated` on `get`.
    ///     fn authenticated(&self) -> bool {
    ///         true
    ///     }
    ///     fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
    ///         let hello = format!("welcome, {}", ws.current_user().unwrap_or_default());
    ///         let _ = ws.write_message(hello);
    ///     }
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {}
    /// }
    ///
    /// let app = Application::builder()
    ///     .cookie_secret("a long random string")
    ///     .login_url("/login")
    ///     .websocket("/chat", |_r: &Request| Chat)
    ///     .build();
    /// ```
    fn get_current_user(&mut self, req: &Request) -> Option<String> {
        let _ = req;
        None
    }

    /// The locale chosen for the handshake's visitor (server only):
    /// Tornado's `get_user_locale` in a `WebSocketHandler`, e.g. from a
    /// setting stored with their account or a cookie. Asked once per
    /// handshake, after [`get_current_user`](Self::get_current_user) and
    /// before [`prepare`](Self::prepare); the answer is the connection's
    /// [`WebSocket::locale`], the one its templates are rendered in.
    /// Default: `None`, for the browser's `Accept-Language`
    /// ([`WebSocket::get_browser_locale`]).
    ///
    /// ```
    /// use cyclone::http::Request;
    /// use cyclone::locale::Locale;
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Chat;
    /// impl WebSocketHandler for Chat {
    ///     fn get_user_locale(&mut self, req: &Request) -> Option<Locale> {
    ///         let code = req.cookie("lang")?;
    ///         Some(Locale::get_closest(&[&code]))
    ///     }
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, _msg: Message<'_>) {
    ///         let hello = ws.locale().translate("Hello").to_owned();
    ///         let _ = ws.write_message(hello);
    ///     }
    /// }
    /// ```
    fn get_user_locale(&mut self, req: &Request) -> Option<crate::locale::Locale> {
        let _ = req;
        None
    }

    /// Whether the route takes only logged-in visitors (server only):
    /// Tornado's `@tornado.web.authenticated` on a `WebSocketHandler`'s
    /// `get`. When true and [`get_current_user`](Self::get_current_user)
    /// found nobody, the handshake is answered, after
    /// [`prepare`](Self::prepare), as Tornado answers it: a 302 to the
    /// application's [`login_url`](crate::web::Settings::login_url) with
    /// `?next=` and the request's URI (the full URL when `login_url` is
    /// absolute; nothing added when it has a query), or a 500 and an error
    /// logged without a `login_url`. The default is false.
    fn authenticated(&self) -> bool {
        false
    }

    /// Headers and cookies for the handshake's answer (server only):
    /// Tornado's `set_default_headers`, and the `set_header`,
    /// `set_cookie` and `set_secure_cookie` calls a Tornado
    /// `WebSocketHandler` makes in `prepare` or `get`, which its `101`
    /// carries. Asked once per handshake, last: after
    /// [`prepare`](Self::prepare), [`authenticated`](Self::authenticated),
    /// the handshake checks, `check_origin` and `select_subprotocol`, and
    /// before [`open`](Self::open). `headers.status()` is 101 for the
    /// upgrade, or the refusal's status (what is set here replaces the
    /// refusal's header of the same name). A call Tornado raises for (a
    /// header value with a control character, a cookie its `set_cookie`
    /// refuses) turns the answer into a 500, which is asked here again
    /// (see [`HandshakeHeaders`]). The default adds nothing, and
    /// a 101 without additions costs nothing more. Not asked for the 500
    /// of a panic in the handler's code (`prepare`, `check_origin`...,
    /// or a [`websocket_async`](crate::web::ApplicationBuilder::websocket_async)
    /// factory's future): the handler's state after a panic is suspect,
    /// so the plain page goes out, where Tornado's `send_error(500)` adds
    /// the default headers.
    ///
    /// What [`get_current_user`](Self::get_current_user) and `prepare`
    /// learned is in `self` by then: refresh a session cookie, or say
    /// which server answered.
    ///
    /// ```
    /// use cyclone::http::Request;
    /// use cyclone::web::{Application, CookieOptions};
    /// use cyclone::websocket::{
    ///     get_secure_cookie, HandshakeHeaders, Message, WebSocket, WebSocketHandler,
    /// };
    ///
    /// struct Feed {
    ///     user: Option<String>,
    /// }
    ///
    /// impl WebSocketHandler for Feed {
    ///     fn get_current_user(&mut self, req: &Request) -> Option<String> {
    ///         let user = get_secure_cookie(req, "user")?;
    ///         self.user = Some(String::from_utf8_lossy(&user).into_owned());
    ///         self.user.clone()
    ///     }
    ///     fn set_default_headers(&mut self, _req: &Request, headers: &mut HandshakeHeaders<'_>) {
    ///         headers.set_header("X-Served-By", "feed-1");
    ///         if headers.status() == 101 {
    ///             if let Some(user) = &self.user {
    ///                 // Thirty more days for a visitor who keeps coming.
    ///                 headers.set_secure_cookie("user", user);
    ///             }
    ///             headers.set_cookie_with("seen", "1", &CookieOptions::default());
    ///         }
    ///     }
    ///     fn on_message(&mut self, _ws: &mut WebSocket<'_>, _msg: Message<'_>) {}
    /// }
    ///
    /// let app = Application::builder()
    ///     .cookie_secret("a long random string")
    ///     .websocket("/feed", |_r: &Request| Feed { user: None })
    ///     .build();
    /// ```
    fn set_default_headers(&mut self, req: &Request, headers: &mut HandshakeHeaders<'_>) {
        let _ = (req, headers);
    }

    /// The connection is open. `args` are the route's regex captures, like
    /// Tornado's `open(*args)`.
    fn open(&mut self, ws: &mut WebSocket<'_>, args: &[&str]) {
        let _ = (ws, args);
    }

    /// A whole message arrived (text or binary).
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>);

    /// The connection closed; `ws.close_code()`, `ws.close_reason()` and
    /// `ws.closed_by()` say how. Writes fail from here on. Called once per
    /// opened connection, whether the peer, the handler or the library
    /// closed it or the TCP connection dropped (Tornado's
    /// `on_connection_close` has no separate counterpart); also after a
    /// panic in [`open`](Self::open), where Tornado, whose `open` raised,
    /// calls no `on_close`.
    #[doc(alias = "on_connection_close")]
    fn on_close(&mut self, ws: &mut WebSocket<'_>) {
        let _ = ws;
    }

    /// A ping arrived (the pong is already queued).
    fn on_ping(&mut self, ws: &mut WebSocket<'_>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// A pong arrived (answer to `ping` or to the automatic keep-alive ping).
    fn on_pong(&mut self, ws: &mut WebSocket<'_>, data: &[u8]) {
        let _ = (ws, data);
    }

    /// The write queue was flushed to the kernel after having been non-empty.
    fn on_drain(&mut self, ws: &mut WebSocket<'_>) {
        let _ = ws;
    }

    /// A timer set with [`WebSocket::add_timeout`] fired (never after `on_close`).
    fn on_timeout(&mut self, ws: &mut WebSocket<'_>, token: u64) {
        let _ = (ws, token);
    }

    /// `count` messages written to this connection were dropped because its
    /// write queue was over `max_write_buffer`, under
    /// [`SlowConsumerPolicy::DropMessages`](super::settings::SlowConsumerPolicy)
    /// (called at most once per loop iteration, with the count since the
    /// last call).
    fn on_messages_dropped(&mut self, ws: &mut WebSocket<'_>, count: u64) {
        let _ = (ws, count);
    }

    /// Accept a handshake a browser sent from `origin`, another site than
    /// this one (server only): Tornado 6.6's `check_origin`. The default,
    /// as Tornado's, accepts only the application's
    /// [`trusted_origins`](crate::web::Settings::trusted_origins)
    /// ([`check_trusted_origin`]); an override decides for itself, and
    /// calls [`check_trusted_origin`] to keep that rule, as a Tornado
    /// override calls `self.check_trusted_origin(origin)`. A `false`
    /// answers 403.
    ///
    /// As in Tornado 6.6, it is asked only about requests that look
    /// cross-origin, after [`prepare`](Self::prepare) and the `Upgrade`
    /// and `Connection` checks, and before `Sec-WebSocket-Version` and
    /// `Sec-WebSocket-Key` are: a refused origin is a 403 whatever they
    /// are (Tornado's `_check_cross_origin`, the rule of its
    /// `cross_origin_protection`):
    /// - `Sec-Fetch-Site: same-origin` or `none` (the browser's own word,
    ///   which a page cannot forge): accepted, not asked;
    /// - no `Sec-Fetch-Site` (an older browser, or plain HTTP): a request
    ///   without `Origin` (not a browser) is accepted, and so is one whose
    ///   `Origin` has the request's host and port ([`Request::host`]: the
    ///   `Host` header, or an absolute-form target's authority); any other
    ///   is asked;
    /// - `cross-site`, `same-site` or any other value: asked, and refused
    ///   without an `Origin`.
    ///
    /// Tornado 4.3 asked `check_origin` about every request with an
    /// `Origin`, and its default compared the origin with `Host`; that
    /// comparison is now made before asking, for overrides too.
    fn check_origin(&self, origin: &str, req: &Request) -> bool {
        let _ = req;
        check_trusted_origin(origin)
    }

    /// Choose one of the subprotocols the client offered (server only);
    /// `None` (the default) selects none. A name the client did not offer
    /// is not sent: the 101 goes without a subprotocol and a `warn` line
    /// names the mistake (Tornado's assertion answers 500 instead). Not
    /// asked when the client offers none (Tornado asks with an empty
    /// list, where the only valid answer is none).
    fn select_subprotocol(&self, offered: &[&str]) -> Option<String> {
        let _ = offered;
        None
    }

    /// Compression options for this connection; `None` falls back to the
    /// route's default ([`WebSocketSettings::compression`], itself off
    /// unless set). Returning options enables permessage-deflate when the
    /// client offers it. In Tornado `None` always means off; here a
    /// handler that must refuse compression on a route whose settings
    /// enable it overrides [`compression`](Self::compression) instead.
    ///
    /// [`WebSocketSettings::compression`]: super::WebSocketSettings::compression
    fn get_compression_options(&self) -> Option<CompressionOptions> {
        None
    }

    /// The compression decision for this connection, asked once per
    /// upgrade (server only), given the route's default. The default
    /// method is [`get_compression_options`](Self::get_compression_options)
    /// or else `route_default`; return `None` to turn permessage-deflate
    /// off for this connection whatever the route says (for instance from
    /// the request the factory was given).
    fn compression(
        &self,
        route_default: Option<&CompressionOptions>,
    ) -> Option<CompressionOptions> {
        self.get_compression_options()
            .or_else(|| route_default.cloned())
    }
}

/// The handshake being answered: its route, and its form body once
/// checked before `prepare`.
struct Answering {
    route: Rc<RouteSettings>,
    form: crate::web::FormBody,
}

thread_local! {
    /// The handshake being answered, while the handler's handshake
    /// methods run (`get_current_user`, `prepare`, `check_origin`, ...).
    static HANDSHAKE: std::cell::RefCell<Option<Answering>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether `origin` is one of the application's
/// [`trusted_origins`](crate::web::Settings::trusted_origins): Tornado
/// 6.6's `RequestHandler.check_trusted_origin`, for a
/// [`check_origin`](WebSocketHandler::check_origin) override to call.
/// Exact matches only (scheme, host and port). Meaningful while the loop
/// answers a handshake on an application's route; false anywhere else.
///
/// ```
/// use cyclone::http::Request;
/// use cyclone::websocket::{check_trusted_origin, Message, WebSocket, WebSocketHandler};
///
/// struct Feed;
/// impl WebSocketHandler for Feed {
///     fn on_message(&mut self, _: &mut WebSocket<'_>, _: Message<'_>) {}
///     // Subdomains of the site, and the application's trusted origins.
///     fn check_origin(&self, origin: &str, _req: &Request) -> bool {
///         origin.ends_with(".mydomain.com") || check_trusted_origin(origin)
///     }
/// }
/// ```
pub fn check_trusted_origin(origin: &str) -> bool {
    HANDSHAKE.with(|route| {
        route
            .borrow()
            .as_ref()
            .and_then(|a| a.route.app.as_ref())
            .is_some_and(|app| app.trusts_origin(origin))
    })
}

/// The signed cookie `name` of the handshake request `req`, checked with
/// the route's `cookie_secret` (the application's
/// [`cookie_secret`](crate::web::Settings::cookie_secret), or
/// [`WebSocketSettings::cookie_secret`](super::WebSocketSettings::cookie_secret)):
/// Tornado's `self.get_secure_cookie(name)` in a `WebSocketHandler`'s
/// [`get_current_user`](WebSocketHandler::get_current_user) or
/// [`prepare`](WebSocketHandler::prepare), which run before the
/// connection (and its [`WebSocket::get_secure_cookie`]) exists. `None`
/// for a missing, forged, altered or expired (31 days) cookie; without a
/// secret, `None` and an error logged. Meaningful while the loop answers
/// a handshake; `None` anywhere else.
#[doc(alias = "get_signed_cookie")]
pub fn get_secure_cookie(req: &Request, name: &str) -> Option<Vec<u8>> {
    let secret = HANDSHAKE.with(|now| now.borrow().as_ref()?.route.cookie_secret.clone());
    secure_cookie(secret.as_deref(), req, name)
}

/// Every value of the handshake's argument `name` with the whitespace
/// around each kept: Tornado's `get_arguments(name, strip=False)` in a
/// `WebSocketHandler`'s `prepare`, as
/// [`RequestContext::get_arguments_unstripped`](crate::web::RequestContext::get_arguments_unstripped)
/// reads them: the query's values, then those of a form body (on an
/// application's route, whose body Tornado parses before `prepare` for
/// every method: a `POST`'s, say, before its 405), percent-decoded, `+`
/// a space, control characters other than whitespace spaces.
/// [`WebSocket::get_arguments_unstripped`] reads the query's once the
/// connection is open.
pub fn get_arguments_unstripped(req: &Request, name: &str) -> Vec<String> {
    handshake_arguments(req, name)
        .into_iter()
        .map(crate::web::remove_control_chars)
        .collect()
}

/// The values of `name` in `req`'s query, then in its form body (as
/// checked before `prepare`), as received.
fn handshake_arguments(req: &Request, name: &str) -> Vec<String> {
    let mut all = req.query_arguments(name);
    HANDSHAKE.with(|now| {
        if let Some(now) = now.borrow().as_ref() {
            all.extend(now.form.values(req, name));
        }
    });
    all
}

/// Keeps `form`, the body of the handshake being answered as checked
/// before `prepare`, for the argument functions to read.
pub(crate) fn set_handshake_form(form: crate::web::FormBody) {
    HANDSHAKE.with(|now| {
        if let Some(now) = now.borrow_mut().as_mut() {
            now.form = form;
        }
    });
}

/// The last value of the handshake's argument `name` (the query's, then
/// a form body's, as [`get_arguments_unstripped`] reads them), cleaned as
/// [`WebSocket::get_argument`] cleans it, for an argument the handshake
/// must carry: Tornado's `get_argument(name)` without a default in a
/// `WebSocketHandler`'s `prepare` (or its factory's). Without one, the
/// `Err` is what Tornado's `MissingArgumentError` answers there instead
/// of the upgrade, as
/// [`RequestContext::require_argument`](crate::web::RequestContext::require_argument)
/// answers it: the plain `400: Bad Request` page (the name is not in it
/// but with the application's `debug`: `400: Bad Request: Missing
/// argument name`, where Tornado's debug page is the traceback), logged
/// at `warn` as `400 GET /uri (ip): Missing argument name`.
/// Return it from [`prepare`](WebSocketHandler::prepare) with `?`.
///
/// ```
/// use cyclone::http::{Request, Response};
/// use cyclone::websocket::{require_argument, Message, WebSocket, WebSocketHandler};
///
/// #[derive(Default)]
/// struct Room { name: String }
///
/// impl WebSocketHandler for Room {
///     fn prepare(&mut self, req: &Request) -> Result<(), Response> {
///         self.name = require_argument(req, "room")?; // 400 without ?room=
///         Ok(())
///     }
///     fn on_message(&mut self, _: &mut WebSocket<'_>, _: Message<'_>) {}
/// }
/// ```
///
/// # Errors
/// The 400 response, when the query has no argument `name`.
pub fn require_argument(req: &Request, name: &str) -> Result<String, Response> {
    if let Some(value) = handshake_arguments(req, name).pop() {
        return Ok(crate::web::clean_argument(value));
    }
    let why = format!("Missing argument {name}");
    log::warn!("{}", crate::web::Refusal(req, 400, &why));
    Err(Response::error(400, handshake_debug().then_some(&why)))
}

/// Whether the route whose handshake is being answered belongs to an
/// application with `debug` on (its refusals then carry their reason,
/// as `RequestContext::refuse`'s do).
fn handshake_debug() -> bool {
    HANDSHAKE.with(|now| now.borrow().as_ref().is_some_and(|a| a.route.debug()))
}

/// The signed cookie `name` of `req` under `secret` (logged when missing).
pub(super) fn secure_cookie(
    secret: Option<&crate::web::signed::CookieSecret>,
    req: &Request,
    name: &str,
) -> Option<Vec<u8>> {
    let secret = crate::web::signed::secret_for(secret, "get_secure_cookie", name)?;
    secret.decode_signed_value(name, &req.cookie(name)?)
}

/// Runs `f` (the answer to a handshake on `route`) with `route` as the
/// one [`check_trusted_origin`] and [`get_secure_cookie`] consult (and no
/// form body until [`set_handshake_form`]); restored afterwards, panic or
/// not.
pub(crate) fn answering_handshake_on<R>(route: &Rc<RouteSettings>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Answering>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            HANDSHAKE.with(|now| *now.borrow_mut() = previous);
        }
    }
    let now = Answering {
        route: Rc::clone(route),
        form: crate::web::FormBody::default(),
    };
    let previous = HANDSHAKE.with(|slot| slot.replace(Some(now)));
    let _restore = Restore(previous);
    f()
}

/// Tornado's default origin rule: the origin's `host[:port]`, lower-cased,
/// must equal the `Host` header, lower-cased.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let rest = match origin.split_once("://") {
        Some((_, rest)) => rest,
        None => return false,
    };
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    !netloc.is_empty() && netloc.eq_ignore_ascii_case(host.trim())
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn origin_rule() {
        assert!(same_origin("http://localhost:8888", "localhost:8888"));
        assert!(same_origin("HTTP://LocalHost:8888/path", "localhost:8888"));
        assert!(!same_origin("http://evil.com", "localhost:8888"));
        assert!(!same_origin("http://localhost:8889", "localhost:8888"));
        assert!(!same_origin("null", "localhost"));
        // The scheme is not compared: a page served over HTTPS opening a
        // wss:// connection to its own host passes.
        assert!(same_origin("https://localhost:8443", "localhost:8443"));
        assert!(same_origin("https://example.com", "example.com"));
        assert!(!same_origin("https://example.com:8443", "example.com"));
    }
}
