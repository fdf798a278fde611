//! The [`WebSocket`] context handed to handler callbacks (the part of
//! Tornado's `WebSocketHandler` that is not user code), and writes by
//! [`ConnId`]: [`write_to`] and [`broadcast`] (one encoded frame shared by
//! every receiver without compression).

use std::rc::Rc;

use super::connection::WsConn;
use super::core::Core;
use super::message::{CloseReason, Message, WebSocketClosedError};
use crate::http::Request;
use crate::ioloop::{Action, ConnId, IOLoop, Pollable, TimeoutHandle};
use crate::protocol::{CloseCode, OpCode};

/// Why [`WebSocket::ping`] (or the client's
/// [`ping`](super::WebSocketClientConnection::ping)) sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingError {
    /// The connection is closing or closed (what writes report as
    /// [`WebSocketClosedError`]).
    Closed,
    /// The payload is over [`MAX_PING_PAYLOAD`] (125) bytes, the limit RFC
    /// 6455 §5.5 puts on a control frame's payload.
    TooLong {
        /// The payload's length.
        len: usize,
    },
}

/// The longest ping payload (RFC 6455 §5.5: a control frame carries at
/// most 125 bytes).
pub const MAX_PING_PAYLOAD: usize = 125;

impl From<WebSocketClosedError> for PingError {
    fn from(_: WebSocketClosedError) -> Self {
        PingError::Closed
    }
}

impl std::fmt::Display for PingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PingError::Closed => WebSocketClosedError.fmt(f),
            PingError::TooLong { len } => write!(
                f,
                "ping payload of {len} bytes is over the {MAX_PING_PAYLOAD} bytes a control frame carries"
            ),
        }
    }
}

impl std::error::Error for PingError {}

/// Refuses a ping payload over [`MAX_PING_PAYLOAD`].
pub(super) fn check_ping(data: &[u8]) -> Result<(), PingError> {
    if data.len() > MAX_PING_PAYLOAD {
        return Err(PingError::TooLong { len: data.len() });
    }
    Ok(())
}

/// The per-connection context handed to every handler callback (the part
/// of Tornado's `WebSocketHandler` that is not user code).
pub struct WebSocket<'a> {
    pub(super) core: &'a mut Core,
    pub(super) lp: &'a IOLoop,
}

impl<'a> WebSocket<'a> {
    /// Sends a text or binary message (Tornado's `write_message`).
    ///
    /// Returns the bytes now queued for this connection
    /// ([`buffered_amount`](Self::buffered_amount)), for flow control.
    ///
    /// # Errors
    /// [`WebSocketClosedError`] once the connection is closing or closed.
    pub fn write_message<'m>(
        &mut self,
        msg: impl Into<Message<'m>>,
    ) -> Result<usize, WebSocketClosedError> {
        let msg = msg.into();
        let (op, data) = split(&msg);
        self.core.send_data(self.lp, op, data)
    }

    /// Sends `value` as a JSON text message (Tornado's `write_message(dict)`).
    /// As Tornado's `json_encode`, `</` is written `<\/` (the same JSON), so
    /// a page that puts a message into a `<script>` cannot be closed by it.
    ///
    /// The text is serde's compact JSON, not Python's `json.dumps` text
    /// that Tornado sends (`", "` and `": "`, non-ASCII as `\uXXXX`): the
    /// same JSON value. For Tornado's bytes, send
    /// [`json_encode`](crate::web::escape::json_encode)`(&value)` with
    /// [`write_message`](Self::write_message); Tornado's
    /// `write_message(dict, binary=True)`, the same JSON as a binary
    /// message, is `write_message(json.into_bytes())`.
    ///
    /// # Errors
    /// [`WebSocketClosedError`] once closed (a value that fails to serialize
    /// is reported the same way, after logging, since it cannot be sent).
    pub fn write_json<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<usize, WebSocketClosedError> {
        match serde_json::to_string(value) {
            Ok(s) => self.write_message(crate::web::escape_script_end(s)),
            Err(e) => {
                log::error!("{} write_json: {e}", self.core.id);
                Err(WebSocketClosedError)
            }
        }
    }

    /// Sends a ping with `data` as its payload; the peer answers with a
    /// pong carrying the same payload
    /// ([`on_pong`](super::WebSocketHandler::on_pong)).
    ///
    /// # Errors
    /// [`PingError::TooLong`] if `data` is over [`MAX_PING_PAYLOAD`] (125)
    /// bytes, the limit RFC 6455 §5.5 puts on a control frame's payload:
    /// nothing is sent (it is not cut to fit; Tornado raises `ValueError`).
    /// Otherwise [`PingError::Closed`] once the connection is closing or
    /// closed (including in `on_close` after the TCP connection simply
    /// ended).
    pub fn ping(&mut self, data: &[u8]) -> Result<(), PingError> {
        check_ping(data)?;
        // A connection that ended without a close handshake still has an
        // open session: the frame would be queued and never sent.
        if self.core.finished {
            return Err(PingError::Closed);
        }
        self.core.take_inbox(self.lp);
        self.core
            .session
            .send_ping(data, &mut self.core.out)
            .map_err(|_| PingError::Closed)?;
        Ok(())
    }

    /// Starts the closing handshake (Tornado's `close(code, reason)`); the
    /// TCP connection is dropped when the peer answers or after the close
    /// timeout. Closing twice does nothing. As in Tornado, a reason without
    /// a code is sent with code 1000; with neither, the Close frame is empty.
    ///
    /// Unlike Tornado, which sends whatever code it is given, a code RFC
    /// 6455 does not allow on the wire (below 1000, 1004–1006, 1015–2999,
    /// 5000 and above) is not sent: the Close frame goes out empty,
    /// without the reason, and the peer sees no code (1005). A reason
    /// longer than 123 bytes is cut at a character boundary to fit the
    /// frame, and the connection closes; Tornado raises `ValueError`
    /// there (a control frame carries at most 125 bytes), sends nothing
    /// and stays open.
    pub fn close(&mut self, code: Option<u16>, reason: &str) {
        self.core
            .start_close(self.lp, code.map(CloseCode), reason, CloseReason::Local);
        // Out of its slot while its handler runs: the free senders must
        // see that it takes nothing more.
        self.lp.cork().mark_closed(self.core.id);
    }

    /// Drops the connection without a closing handshake: Node `ws`'s
    /// `terminate()`, uWebSockets' `close()`, for a peer that is gone or
    /// misbehaves and should not get `close_timeout` to answer. No Close
    /// frame is sent, what is queued and not yet taken by the kernel is
    /// dropped, and no further message is delivered (frames read behind
    /// the current one are dropped too). The TCP connection is closed when
    /// the current callback returns (or, called from elsewhere, at the end
    /// of this loop iteration), and `on_close` runs then, with
    /// [`closed_by`](Self::closed_by) [`CloseReason::Terminated`] (unless
    /// the peer's Close had arrived: `Peer`, even after the handler's own
    /// `close`, whose Close then never left) and no close code unless the
    /// peer sent one. Writes, pings and `close` after it fail or do
    /// nothing, as on a closed connection; terminating twice does nothing.
    pub fn terminate(&mut self) {
        if self.core.finished || self.core.terminating() {
            return;
        }
        // Our own Close, if the peer's Close has been read, is still
        // queued, unsent (the connection ends once it leaves): the peer
        // closed on its own and never saw ours, so it is `Peer`, with its
        // code, as the close timeout labels the same case.
        match self.core.closed_by {
            None => self.core.closed_by = Some(CloseReason::Terminated),
            Some(CloseReason::Local) => {
                self.core.closed_by = Some(if self.core.close_code != 0 {
                    CloseReason::Peer
                } else {
                    CloseReason::Terminated
                });
            }
            Some(_) => {}
        }
        self.core.session.abort();
        self.core.rare().terminate = true;
        // Parse no further frame (a hold that never ends: the connection
        // ends first).
        self.update_hold();
        let id = self.core.id;
        self.core.mark_dirty(self.lp, id);
        self.lp.cork().mark_closed(id);
    }

    /// Sets `TCP_NODELAY` on this connection.
    pub fn set_nodelay(&mut self, value: bool) {
        if let Err(e) = self.core.stream.tcp().set_nodelay(value) {
            log::debug!("{} set_nodelay: {e}", self.core.id);
        }
    }

    /// The handshake request (Tornado's `self.request`): path, query
    /// arguments, headers, cookies, `peer()`, `protocol()`. On a client
    /// connection, the upgrade request it sent (Tornado's
    /// `WebSocketClientConnection.request`), with the server as `peer()`.
    pub fn request(&self) -> &Request {
        &self.core.request
    }

    /// Every value of the handshake's query argument `name`, in order,
    /// cleaned as Tornado cleans them (percent-decoded, `+` a space,
    /// control characters spaces, whitespace stripped): Tornado's
    /// `get_query_arguments` in a `WebSocketHandler`. Empty on a client
    /// connection.
    pub fn get_query_arguments(&self, name: &str) -> Vec<String> {
        if self.core.is_client {
            return Vec::new();
        }
        self.core
            .request
            .query_arguments(name)
            .into_iter()
            .map(crate::web::clean_argument)
            .collect()
    }

    /// The last value of the handshake's query argument `name`
    /// ([`get_query_arguments`](Self::get_query_arguments)'), as Tornado's
    /// `get_query_argument`; `None` without one (where Tornado, given no
    /// default, raises a `MissingArgumentError`: too late for a 400 once
    /// the connection is open; [`require_argument`](super::require_argument)
    /// answers it in [`prepare`](super::WebSocketHandler::prepare), and
    /// [`WebSocket::require_argument`](Self::require_argument) handles it
    /// as Tornado does in `open` or `on_message`).
    pub fn get_query_argument(&self, name: &str) -> Option<String> {
        self.get_query_arguments(name).pop()
    }

    /// Tornado's `get_arguments`: a handshake has no body, so its query's
    /// ([`get_query_arguments`](Self::get_query_arguments)).
    pub fn get_arguments(&self, name: &str) -> Vec<String> {
        self.get_query_arguments(name)
    }

    /// [`get_arguments`](Self::get_arguments) with the whitespace around
    /// each value kept (Tornado's `get_arguments(name, strip=False)`), as
    /// [`RequestContext::get_arguments_unstripped`](crate::web::RequestContext::get_arguments_unstripped)
    /// reads them (control characters other than whitespace still become
    /// spaces). Empty on a client connection.
    pub fn get_arguments_unstripped(&self, name: &str) -> Vec<String> {
        if self.core.is_client {
            return Vec::new();
        }
        super::handler::get_arguments_unstripped(&self.core.request, name)
    }

    /// [`get_argument`](Self::get_argument) for an argument the handshake
    /// must carry, once the connection is open (Tornado's
    /// `get_argument(name)` without a default in `open` or `on_message`).
    /// Without one, as Tornado handles the `MissingArgumentError` raised
    /// in a callback: logged at `warn` as `400 GET /uri (ip): Missing
    /// argument name`, and the connection is dropped without a closing
    /// handshake ([`terminate`](Self::terminate), Tornado's `_abort`): the
    /// peer gets no Close frame (1006) and no message behind this one is
    /// delivered; `on_close` runs with no close code and
    /// [`CloseReason::Terminated`]. `None` comes back: return from the
    /// callback. To refuse the upgrade itself with a 400, use
    /// [`require_argument`](super::require_argument) in
    /// [`prepare`](super::WebSocketHandler::prepare).
    ///
    /// Unlike `terminate`, what the handler wrote before is not dropped:
    /// Tornado writes each message to the socket at once, so those reach
    /// the peer before its `_abort`; here they leave when the callback
    /// returns, as far as the kernel takes them then (the rest is dropped,
    /// as Tornado's `_abort` drops its unsent buffer). Where Tornado's
    /// exception ends the callback, this returns: writes after it fail
    /// as on a closed connection. On a client connection, which has no
    /// handshake arguments, every name is missing.
    ///
    /// ```
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Room;
    /// impl WebSocketHandler for Room {
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         let Some(room) = ws.require_argument("room") else {
    ///             return; // logged, connection dropped
    ///         };
    ///         let _ = ws.write_message(format!("{room}: {}", msg.as_text().unwrap_or("")));
    ///     }
    /// }
    /// ```
    pub fn require_argument(&mut self, name: &str) -> Option<String> {
        let value = self.get_argument(name);
        if value.is_none() {
            let why = format!("Missing argument {name}");
            log::warn!("{}", crate::web::Refusal(&self.core.request, 400, &why));
            let fresh = !self.core.finished && !self.core.terminating();
            self.terminate();
            if fresh && self.core.terminating() {
                self.core.rare().terminate_sends_queued = true;
            }
        }
        value
    }

    /// Tornado's `get_argument`: the handshake's query argument
    /// ([`get_query_argument`](Self::get_query_argument)), e.g. the room in
    /// `/chat?room=lobby`.
    pub fn get_argument(&self, name: &str) -> Option<String> {
        self.get_query_argument(name)
    }

    /// The handshake's cookie `name`, as
    /// [`RequestContext::get_cookie`](crate::web::RequestContext::get_cookie)
    /// reads it (Tornado's `get_cookie`). `None` on a client connection.
    pub fn get_cookie(&self, name: &str) -> Option<String> {
        if self.core.is_client {
            return None;
        }
        self.core.request.cookie(name)
    }

    /// The template `file` (under the application's `template_path`)
    /// rendered with the fields of `value`, as
    /// [`RequestContext::render_string`](crate::web::RequestContext::render_string)
    /// renders it for a page (Tornado's `render_string` in a
    /// `WebSocketHandler`): to send a fragment of HTML to the browser,
    /// such as a chat message. The template sees `static_url`,
    /// `reverse_url`, `request` (the handshake's),
    /// [`locale`](Self::locale)'s `_`, `pgettext` and `locale`,
    /// `current_user` ([`set_current_user`](Self::set_current_user)) and
    /// the names [`set_template_value`](Self::set_template_value) added,
    /// not `xsrf_form_html`;
    /// [`render_string_in`](Self::render_string_in) renders in another
    /// locale.
    ///
    /// ```
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Chat;
    /// impl WebSocketHandler for Chat {
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         let body = msg.as_text().unwrap_or_default();
    ///         // message.html: <div class="message">{{ message["body"] }}</div>
    ///         if let Ok(html) = ws.render_string("message.html", &serde_json::json!({
    ///             "message": { "body": body },
    ///         })) {
    ///             let _ = ws.write_message(html);
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    /// The connection is not on an application's route (a client, or a
    /// server set up without [`Application`](crate::web::Application)):
    /// [`TemplateError::Load`](crate::web::TemplateError::Load); else as
    /// `RequestContext::render_string`.
    pub fn render_string(
        &self,
        file: &str,
        value: &(impl serde::Serialize + ?Sized),
    ) -> Result<String, crate::web::TemplateError> {
        self.render_string_in(&self.locale(), file, value)
    }

    /// [`render_string`](Self::render_string) in `locale` (one a handler
    /// chose for its user in `open`, say).
    ///
    /// # Errors
    /// As [`render_string`](Self::render_string).
    pub fn render_string_in(
        &self,
        locale: &crate::locale::Locale,
        file: &str,
        value: &(impl serde::Serialize + ?Sized),
    ) -> Result<String, crate::web::TemplateError> {
        let app = self.core.settings.app.as_ref().ok_or_else(|| {
            crate::web::TemplateError::Load(
                "render_string: this WebSocket is not on an Application's route".into(),
            )
        })?;
        let ns = self.core.rare.as_ref().and_then(|r| r.namespace.as_deref());
        app.render_string(
            &self.core.request,
            locale,
            ns.and_then(|n| n.current_user.as_deref()),
            ns.map(|n| &n.values),
            file,
            value,
        )
    }

    /// The logged-in user of this connection (Tornado's
    /// `self.current_user` in a `WebSocketHandler`): what the handler's
    /// [`get_current_user`](super::WebSocketHandler::get_current_user)
    /// answered for the handshake, or what
    /// [`set_current_user`](Self::set_current_user) put in its place
    /// since, or `None`. Templates this connection renders
    /// ([`render_string`](Self::render_string)) see it as `current_user`,
    /// unless their values have that name.
    pub fn current_user(&self) -> Option<&str> {
        self.core
            .rare
            .as_ref()?
            .namespace
            .as_ref()?
            .current_user
            .as_deref()
    }

    /// Sets [`current_user`](Self::current_user) (Tornado: assigning
    /// `self.current_user`), in [`open`](super::WebSocketHandler::open)
    /// say, with the user [`prepare`](super::WebSocketHandler::prepare)
    /// found in the handshake's signed cookie. Kept with the connection's
    /// rarely used state: a connection that sets none keeps no allocation
    /// for it.
    ///
    /// ```
    /// use cyclone::http::{Request, Response};
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Chat { user: Option<String> }
    ///
    /// impl WebSocketHandler for Chat {
    ///     fn prepare(&mut self, req: &Request) -> Result<(), Response> {
    ///         let user = req.signed_cookie("a long random string", "user")
    ///             .ok_or_else(|| Response::error(403, Some("log in first")))?;
    ///         self.user = Some(String::from_utf8_lossy(&user).into_owned());
    ///         Ok(())
    ///     }
    ///     fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
    ///         ws.set_current_user(self.user.take());
    ///         ws.set_template_value("room", "lobby");
    ///     }
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         // message.html: {{ current_user }} in {{ room }}: {{ text }}
    ///         let text = msg.as_text().unwrap_or_default();
    ///         if let Ok(html) = ws.render_string("message.html", &serde_json::json!({"text": text})) {
    ///             let _ = ws.write_message(html);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn set_current_user(&mut self, user: Option<String>) {
        match user {
            Some(u) => self.namespace().current_user = Some(u),
            None => {
                if let Some(ns) = self.core.rare.as_mut().and_then(|r| r.namespace.as_mut()) {
                    ns.current_user = None;
                }
                self.drop_empty_namespace();
            }
        }
    }

    /// Adds `name` to the namespace of the templates this connection
    /// renders (Tornado: overriding `get_template_namespace`), as
    /// `RequestContext::set_template_value` does for a request: a render's
    /// own value of the name wins. A value that does not serialize is
    /// logged and ignored.
    pub fn set_template_value(&mut self, name: &str, value: impl serde::Serialize) {
        if let Some(v) = crate::web::template_value(name, value) {
            self.namespace().values.insert(name.to_string(), v);
        }
    }

    fn namespace(&mut self) -> &mut super::core::Namespace {
        self.core.rare().namespace.get_or_insert_with(Box::default)
    }

    /// The namespace box goes once it holds nothing (an idle connection
    /// keeps no allocation it does not need).
    fn drop_empty_namespace(&mut self) {
        if let Some(r) = self.core.rare.as_mut() {
            if r.namespace.as_ref().is_some_and(|n| n.is_empty()) {
                r.namespace = None;
            }
        }
    }

    /// The connection's locale (Tornado's `self.locale` in a
    /// `WebSocketHandler`): what the handler's
    /// [`get_user_locale`](super::WebSocketHandler::get_user_locale)
    /// chose at the handshake, else the browser's
    /// ([`get_browser_locale`](Self::get_browser_locale)); see
    /// [`cyclone::locale`](crate::locale). Templates this connection
    /// renders ([`render_string`](Self::render_string)) are in it.
    pub fn locale(&self) -> crate::locale::Locale {
        let chosen = self
            .core
            .rare
            .as_ref()
            .and_then(|r| r.namespace.as_ref()?.locale.as_ref());
        match chosen {
            Some(locale) => locale.clone(),
            None => self.get_browser_locale(),
        }
    }

    /// The supported locale closest to the handshake's `Accept-Language`
    /// (Tornado's `get_browser_locale`), or the default locale. Made
    /// afresh on each call; keep it in the handler to reuse it.
    pub fn get_browser_locale(&self) -> crate::locale::Locale {
        crate::locale::Locale::from_accept_language(
            self.core.request.header("Accept-Language"),
            crate::locale::DEFAULT_LOCALE,
        )
    }

    /// The settings of the route's application (Tornado's
    /// `self.settings` in a `WebSocketHandler`): `debug`, `login_url`,
    /// `cookie_secret`, ... `None` outside an
    /// [`Application`](crate::web::Application) (a client connection, or
    /// a server set up with [`accept`](super::accept) alone). The
    /// connection's own WebSocket settings are its route's
    /// ([`Settings::websocket`](crate::web::Settings::websocket), or those
    /// given to `websocket_with`).
    pub fn settings(&self) -> Option<&crate::web::Settings> {
        self.core.settings.app.as_ref().map(|app| app.settings())
    }

    /// [`Application::reverse_url`](crate::web::Application::reverse_url)
    /// of the route's application (`None` outside one).
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        self.core.settings.app.as_ref()?.reverse_url(name, args)
    }

    /// [`RequestContext::static_url`](crate::web::RequestContext::static_url)
    /// of the route's application (`None` outside one). `None` also, logged
    /// at `warn`, for a path out of `static_path`
    /// ([`StaticUrlError`](crate::web::StaticUrlError)), where Tornado's
    /// `static_url` raises `HTTPError(403)`: on an open connection there
    /// is no page to answer it with.
    pub fn static_url(&self, path: &str) -> Option<String> {
        match self.core.settings.app.as_ref()?.static_url(path) {
            Ok(url) => Some(url),
            Err(e) => {
                log::warn!("static_url: {e}");
                None
            }
        }
    }

    /// The route's capture named `name` (`(?P<name>..)`), percent-decoded,
    /// while [`open`](super::WebSocketHandler::open) runs: Tornado's
    /// `open(**kwargs)`. `open`'s `args` hold every capture in order,
    /// named ones too (Tornado passes only the named ones when there are
    /// any); keep what you need in the handler. `None` for a name the
    /// route does not have, and after `open`.
    ///
    /// ```
    /// use cyclone::http::Request;
    /// use cyclone::web::Application;
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Room { name: String }
    ///
    /// impl WebSocketHandler for Room {
    ///     fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
    ///         self.name = ws.path_kwarg("room").unwrap_or("lobby").to_owned();
    ///     }
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {}
    /// }
    ///
    /// let app = Application::builder()
    ///     .websocket(r"/rooms/(?P<room>\w+)", |_r: &Request| Room { name: String::new() })
    ///     .build();
    /// ```
    pub fn path_kwarg(&self, name: &str) -> Option<&str> {
        let kwargs = self.core.rare.as_ref()?.kwargs.as_ref()?;
        kwargs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The signed cookie `name` of the handshake request, checked with the
    /// route's `cookie_secret` (the application's; see
    /// [`Settings::cookie_secret`](crate::web::Settings::cookie_secret)):
    /// Tornado's `get_secure_cookie` in a WebSocket handler. `None` for a
    /// missing, forged, altered or expired (31 days) cookie; without a
    /// secret, `None` and an error logged. Always `None` on a client
    /// connection.
    #[doc(alias = "get_signed_cookie")]
    pub fn get_secure_cookie(&self, name: &str) -> Option<Vec<u8>> {
        if self.core.is_client {
            return None;
        }
        super::handler::secure_cookie(
            self.core.settings.cookie_secret.as_deref(),
            &self.core.request,
            name,
        )
    }

    /// On a client connection, every header of the server's `101`, in
    /// order (Tornado's `WebSocketClientConnection.headers`): its cookies,
    /// and what the server's handler added. Empty on a server connection.
    pub fn response_headers(&self) -> &[(String, String)] {
        self.core
            .rare
            .as_ref()
            .map_or(&[], |r| r.response_headers.as_slice())
    }

    /// The first header `name` (any case) of
    /// [`response_headers`](Self::response_headers); a repeated one's
    /// lines joined, as Tornado's `headers["X"]` gives them, are
    /// [`response_header_joined`](Self::response_header_joined).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every line of header `name` (any case) of
    /// [`response_headers`](Self::response_headers), joined with `,`:
    /// Tornado's `WebSocketClientConnection.headers["X"]` (and the
    /// coroutine client's
    /// [`header_joined`](crate::websocket::WebSocketClientConnection::header_joined)).
    pub fn response_header_joined(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let lines = self
            .response_headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes());
        crate::http::request::join_header_lines(lines, String::from_utf8_lossy)
    }

    /// The subprotocol selected during the handshake.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.core
            .rare
            .as_ref()
            .and_then(|r| r.subprotocol.as_deref())
    }

    /// The close code the peer sent (after `on_close`, or while closing);
    /// `None` if its Close frame had no code, or if none arrived: the TCP
    /// connection ended, the ping timeout or close timeout passed, or the
    /// library failed the connection itself (a message over
    /// `websocket_max_message_size`, a protocol error: `on_close` then runs
    /// at once, as Tornado aborts, without waiting for the peer's answer).
    /// [`closed_by`](Self::closed_by) says which.
    ///
    /// A Close RFC 6455 does not allow (§5.5.1, §7.4) is such a protocol
    /// error: one of a single byte, or with a code not to be sent (1005,
    /// 999, …) fails the connection with 1002, one whose reason is not
    /// UTF-8 (§8.1) with 1007, and no code is reported. Tornado takes the
    /// first two as they come (no code for the single byte, the code
    /// itself otherwise, echoed), and drops the connection without a
    /// Close on the third, reporting its code.
    pub fn close_code(&self) -> Option<u16> {
        match self.core.close_code {
            0 | 1005 => None,
            c => Some(c),
        }
    }

    /// The close reason the peer sent (`None` when it sent none, or an
    /// empty one; a peer answering our Close usually echoes only the code).
    pub fn close_reason(&self) -> Option<&str> {
        self.core
            .rare
            .as_ref()
            .and_then(|r| r.close_reason.as_deref())
    }

    /// Why the connection closed (typed; see [`CloseReason`]).
    pub fn closed_by(&self) -> Option<CloseReason> {
        self.core.closed_by
    }

    /// What the peer broke, when the library failed the connection
    /// ([`closed_by`](Self::closed_by) [`CloseReason::ProtocolError`] or
    /// [`CloseReason::MessageTooBig`]): a masked frame from a server,
    /// invalid UTF-8, a message over the limit… Its
    /// [`close_code`](crate::protocol::ProtocolError::close_code) is the
    /// code the Close frame sent carried. `None` otherwise.
    pub fn protocol_error(&self) -> Option<&crate::protocol::ProtocolError> {
        self.core.rare.as_ref()?.protocol_error.as_ref()
    }

    /// This connection's id, for writes from elsewhere ([`write_to`], [`broadcast`]).
    pub fn id(&self) -> ConnId {
        self.core.id
    }

    /// Whether the closing handshake started (writes now fail).
    pub fn is_closing(&self) -> bool {
        !self.core.session.state().can_send() || self.core.finished
    }

    /// Bytes queued for this connection and not yet taken by the kernel
    /// (including echoes of large messages that the loop holds until the
    /// current read batch is parsed, to write them together).
    pub fn buffered_amount(&self) -> usize {
        self.core.queued(self.lp)
    }

    /// Delivers this connection no further message (nor ping, pong or
    /// Close) until the returned [`Suspension`] is dropped: what the peer
    /// sends meanwhile waits, the frames already read unparsed and the rest
    /// in the socket, so TCP throttles the peer. Several suspensions may
    /// be alive at once; messages flow again once every one is dropped.
    /// [`spawn`](Self::spawn) is the usual way to use one.
    ///
    /// The peer's Close waits behind what is unread too: a connection held
    /// too long while closing ends at the close timeout. A pong awaited
    /// meanwhile may wait unread behind the held messages: while anything
    /// is unread, it gets its full ping timeout from the end of the hold.
    /// A peer that sent nothing since the ping did not answer it, and the
    /// ping timeout ends its connection as any other. The idle timeout
    /// likewise counts bytes waiting unread as activity.
    ///
    /// A hang-up is still seen while held (where a Tornado coroutine that
    /// never returns would keep its connection for good). After a FIN, what
    /// the peer sent before it is read and kept, and delivered when the
    /// hold ends; should the hold last `close_timeout` past the hang-up,
    /// the connection ends there (`closed_by` `Abnormal`, 1006) and that
    /// input is dropped. A reset ends the connection at once. Either way
    /// `on_close` runs, and writes of a future still running fail with
    /// [`WebSocketClosedError`].
    pub fn suspend(&mut self) -> Suspension {
        self.core.rare().suspensions += 1;
        self.update_hold();
        Suspension {
            id: self.core.id,
            _loop_thread: std::marker::PhantomData,
        }
    }

    /// Runs `future` on the loop and delivers this connection no further
    /// message until it completes: Tornado's `async def on_message` (and
    /// `async def open`), whose next message waits for the coroutine. The
    /// future writes with [`write_to`]`(id, ..)`, or reaches the
    /// connection with [`with_websocket_of`].
    ///
    /// A panic in the future is a handler's panic: logged, and this
    /// connection alone closes with 1011. Should the connection end first,
    /// the future still runs to its end (its writes then fail with
    /// [`WebSocketClosedError`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cyclone::ioloop::sleep;
    /// use cyclone::websocket::{write_to, Message, WebSocket, WebSocketHandler};
    ///
    /// struct Lookup;
    /// impl WebSocketHandler for Lookup {
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         let (id, query) = (ws.id(), msg.as_text().unwrap_or_default().to_owned());
    ///         // The next message waits until this answer is written.
    ///         ws.spawn(async move {
    ///             sleep(Duration::from_millis(20)).await; // a database, say
    ///             let _ = write_to(id, format!("{query}: found"));
    ///         });
    ///     }
    /// }
    /// ```
    pub fn spawn(&mut self, future: impl std::future::Future<Output = ()> + 'static) {
        let held = self.suspend();
        self.lp.spawn(Suspended {
            future: Box::pin(future),
            held: Some(held),
        });
    }

    /// The coroutine client's inbound flow control: while `hold` is set,
    /// nothing more is read or parsed, as under a
    /// [`suspend`](Self::suspend). Its unread messages would otherwise
    /// queue without bound.
    pub(crate) fn hold_reading(&mut self, hold: bool) {
        if self.core.rare.as_ref().is_some_and(|r| r.client_hold) == hold {
            return;
        }
        self.core.rare().client_hold = hold;
        self.update_hold();
    }

    /// One [`Suspension`] ended.
    fn release(&mut self) {
        if let Some(r) = self.core.rare.as_mut() {
            r.suspensions = r.suspensions.saturating_sub(1);
        }
        self.update_hold();
    }

    /// Holds reading while a suspension or the client's hold is on;
    /// resumes it when the last one ends.
    fn update_hold(&mut self) {
        let hold = self
            .core
            .rare
            .as_ref()
            .is_some_and(|r| r.suspensions > 0 || r.client_hold || r.terminate);
        if !hold && self.core.rare.as_ref().is_some_and(|r| r.is_unused()) {
            self.core.rare = None;
        }
        if self.core.read_held == hold {
            return;
        }
        self.core.read_held = hold;
        if !hold {
            // A pong awaited meanwhile may be behind what was not read:
            // the peer gets its full ping timeout from now.
            if self.core.pong_deadline.is_set() {
                self.core.arm_pong_deadline(self.lp, self.lp.time());
            }
            // What waited in the socket brings no new edge: read it now.
            self.lp.mark_readable(self.core.id);
        }
    }

    /// Wakes `waker` once [`buffered_amount`](Self::buffered_amount) is at
    /// most `mark` after a flush, or the connection ends (the client's
    /// `WriteFuture`).
    pub(crate) fn wake_at_most(&mut self, mark: usize, waker: &std::task::Waker) {
        self.core.wake_at_most(mark, waker);
    }

    /// The loop this connection runs on.
    pub fn io_loop(&self) -> &IOLoop {
        self.lp
    }

    /// Sends `msg` to another connection (or this one) by id. Returns false
    /// when `id` no longer names an open WebSocket.
    pub fn write_to<'m>(&mut self, id: ConnId, msg: impl Into<Message<'m>>) -> bool {
        let msg = msg.into();
        if id == self.core.id {
            let (op, data) = split(&msg);
            return self.core.send_received(self.lp, op, data);
        }
        write_to_on(self.lp, id, msg)
    }

    /// Sends one message to many connections: the frame is encoded once and
    /// shared (connections with permessage-deflate and context takeover
    /// compress it for themselves). Returns how many received it.
    ///
    /// It only queues: no handler callback runs during the call (drops
    /// under `SlowConsumerPolicy::DropMessages` are reported at the end of
    /// the tick), so `ids` may borrow state the handlers share, e.g.
    /// `ws.broadcast(room.borrow().iter().copied(), msg)` with a
    /// `Rc<RefCell<Vec<ConnId>>>`.
    pub fn broadcast<'m, I>(&mut self, ids: I, msg: impl Into<Message<'m>>) -> usize
    where
        I: IntoIterator<Item = ConnId>,
    {
        let msg = msg.into();
        let me = self.core.id;
        let mut shared = SharedFrame::new(&msg);
        let mut n = 0;
        // One pass and no list of the other receivers: ids are often
        // collected from a set right before the call.
        for id in ids {
            let took = if id == me {
                self.core.send_received(self.lp, shared.op, shared.payload)
            } else {
                shared.queue(self.lp, id)
            };
            n += usize::from(took);
        }
        n
    }

    /// Subscribes this connection to `topic` (uWebSockets'
    /// `ws.subscribe`): [`publish`](Self::publish) and the free
    /// [`publish`](super::publish) on that topic reach it until it
    /// [`unsubscribe`](Self::unsubscribe)s or ends (see
    /// [`topics`](super::topics)). False if it was subscribed already.
    ///
    /// ```
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// /// `/room/(\w+)`: what one member says, the others hear.
    /// struct Room {
    ///     name: String,
    /// }
    ///
    /// impl WebSocketHandler for Room {
    ///     fn open(&mut self, ws: &mut WebSocket<'_>, args: &[&str]) {
    ///         self.name = args[0].to_owned();
    ///         ws.subscribe(&self.name);
    ///     }
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         ws.publish(&self.name, msg);
    ///     }
    /// }
    /// ```
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.is_subscribed(topic) {
            return false;
        }
        self.core.rare().topics.push(topic.into());
        super::topics::subscribe(topic, self.core.id)
    }

    /// Unsubscribes this connection from `topic`; false if it was not
    /// subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let Some(rare) = self.core.rare.as_mut() else {
            return false;
        };
        let Some(at) = rare.topics.iter().position(|t| &**t == topic) else {
            return false;
        };
        rare.topics.swap_remove(at);
        if rare.is_unused() {
            self.core.rare = None;
        }
        super::topics::unsubscribe(topic, self.core.id)
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.core
            .rare
            .as_ref()
            .is_some_and(|r| r.topics.iter().any(|t| &**t == topic))
    }

    /// Sends `msg` to every other connection subscribed to `topic`
    /// (uWebSockets' `ws.publish`: not to this one, subscribed or not),
    /// encoding the frame once, as [`broadcast`](Self::broadcast) does.
    /// Returns how many received it. The free [`publish`](super::publish)
    /// reaches every subscriber.
    pub fn publish<'m>(&mut self, topic: &str, msg: impl Into<Message<'m>>) -> usize {
        let msg = msg.into();
        let me = self.core.id;
        super::topics::with_subscribers(topic, Some(me), |ids| {
            self.broadcast(ids.iter().copied(), msg)
        })
    }

    /// Calls the handler's `on_timeout(token)` after `delay`, unless the
    /// connection closed first: the timer dies with the connection (it is
    /// cancelled when the connection ends, so a long timer holds nothing
    /// after that).
    pub fn add_timeout(&mut self, delay: std::time::Duration, token: u64) -> TimeoutHandle {
        let id = self.core.id;
        let lp = self.lp;
        let timers = &mut self.core.rare().timers;
        timers.retain(|&h| lp.timeout_pending(h));
        let h = self.lp.call_later(delay, move || {
            let lp = IOLoop::current();
            lp.with_conn_serve(id, move |p, lp, id| {
                match p.as_any_mut().downcast_mut::<WsConn>() {
                    Some(c) => c.fire_timeout(lp, id, token),
                    None => Action::Keep,
                }
            });
        });
        self.core.rare().timers.push(h);
        h
    }

    /// Cancels a timer from [`add_timeout`](Self::add_timeout).
    pub fn remove_timeout(&mut self, h: TimeoutHandle) -> bool {
        if let Some(rare) = self.core.rare.as_mut() {
            rare.timers.retain(|&t| t != h);
        }
        self.lp.remove_timeout(h)
    }
}

/// Sends `msg` to connection `id` of the current thread's loop (from
/// timers, other handlers, `PeriodicCallback`s). Returns false when `id` is
/// not an open WebSocket.
///
/// Safe in a destructor, a thread-local's included (a goodbye sent as a
/// value goes): once the thread's loop is gone (the thread is ending and
/// the loop was dropped first), its connections went with it, and this
/// returns false.
pub fn write_to<'m>(id: ConnId, msg: impl Into<Message<'m>>) -> bool {
    // No loop, no connection: none is made for the asking.
    let Some(lp) = IOLoop::existing() else {
        return false;
    };
    write_to_on(&lp, id, msg.into())
}

/// Sends one message to many connections of the current thread's loop,
/// encoding the frame once. Returns how many received it. Like
/// [`WebSocket::broadcast`], it only queues: no handler runs during it.
///
/// Safe in a destructor, as [`write_to`] is: 0 once the thread's loop is
/// gone.
pub fn broadcast<'m>(ids: impl IntoIterator<Item = ConnId>, msg: impl Into<Message<'m>>) -> usize {
    let Some(lp) = IOLoop::existing() else {
        return 0;
    };
    let msg = msg.into();
    let mut shared = SharedFrame::new(&msg);
    ids.into_iter()
        .map(|id| usize::from(shared.queue(&lp, id)))
        .sum()
}

/// Starts the close handshake of connection `id` of the current thread's
/// loop, as its own [`WebSocket::close`] would (same code and reason
/// rules): for a handler that closes another connection (a chat kicking a
/// user), a timer, a `PeriodicCallback`, or the callback-style client,
/// whose `websocket_connect_callback` gives only a [`ConnId`]. `on_close`
/// runs when the peer answers, or at the close timeout. A connection being
/// served right now (the caller's own, from its handler) is closed as soon
/// as it is put back, this tick. A client connection still connecting
/// (that id is returned before the handshake) stops connecting and never
/// opens: its connect fails with
/// [`ConnectError::Cancelled`](super::ConnectError::Cancelled), reported
/// from the loop's next iteration (the callback-style client's callback gets
/// `None`). Returns false when `id` names no connection of this loop (as
/// in a thread-local's destructor once the thread's loop is gone: its
/// connections went with it); closing one already closing does nothing.
///
/// ```no_run
/// use std::time::Duration;
/// use cyclone::ioloop::IOLoop;
/// use cyclone::websocket::{close_connection, ConnId};
///
/// fn kick_after(id: ConnId, delay: Duration) {
///     IOLoop::current().call_later(delay, move || {
///         close_connection(id, Some(4000), "time is up");
///     });
/// }
/// ```
pub fn close_connection(id: ConnId, code: Option<u16>, reason: &str) -> bool {
    // No loop, no connection: none is made for the asking.
    let Some(lp) = IOLoop::existing() else {
        return false;
    };
    let reason = reason.to_owned();
    lp.with_conn_serve(id, move |p, lp, id| {
        if let Some(c) = p.as_any_mut().downcast_mut::<WsConn>() {
            if !c.core.finished {
                // Queues the Close and marks the connection dirty.
                c.core.ctx(lp).close(code, &reason);
            }
            return Action::Keep;
        }
        // A client still connecting: it must not open after this.
        super::client::cancel_connect(p, lp, id).unwrap_or(Action::Keep)
    })
}

fn split<'a>(msg: &'a Message<'_>) -> (OpCode, &'a [u8]) {
    match msg {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
    }
}

/// Queues the broadcast frame on `p` if it is an open WebSocket, marking it
/// dirty; whether it took it.
fn queue_broadcast(
    p: &mut dyn Pollable,
    lp: &IOLoop,
    id: ConnId,
    op: OpCode,
    payload: &[u8],
    frame: &[u8],
) -> bool {
    let Some(c) = p.as_any_mut().downcast_mut::<WsConn>() else {
        return false;
    };
    let queued = c.core.queue_shared(lp, op, payload, frame);
    if queued {
        c.core.mark_dirty(lp, id);
    }
    queued
}

fn write_to_on(lp: &IOLoop, id: ConnId, msg: Message<'_>) -> bool {
    SharedFrame::new(&msg).queue(lp, id)
}

/// One message on its way to many connections. Server frames are unmasked
/// and identical for every receiver without compression, so the frame is
/// encoded once, on the first receiver; owned copies are made only for a
/// receiver being served right now, which gets them when it is put back.
struct SharedFrame<'p> {
    op: OpCode,
    payload: &'p [u8],
    frame: Vec<u8>,
    deferred: Option<OwnedFrame>,
}

/// The encoded frame and the payload, owned, for receivers served later.
type OwnedFrame = (Rc<[u8]>, Rc<[u8]>);

impl<'p> SharedFrame<'p> {
    fn new(msg: &'p Message<'_>) -> Self {
        let (op, payload) = split(msg);
        SharedFrame {
            op,
            payload,
            frame: Vec::new(),
            deferred: None,
        }
    }

    /// Queues the message on `id`; whether it took it (a stale id or a
    /// closing connection does not).
    fn queue(&mut self, lp: &IOLoop, id: ConnId) -> bool {
        let (op, payload) = (self.op, self.payload);
        if self.frame.is_empty() {
            self.frame.reserve_exact(payload.len() + 10);
            crate::protocol::frame::encode_frame(&mut self.frame, true, false, op, payload, None);
        }
        // Idle receivers are served in place (no take/put back, no closure
        // allocation): queue_shared touches no other registration.
        let frame = &self.frame;
        match lp.with_idle(id, |p| queue_broadcast(p, lp, id, op, payload, frame)) {
            Ok(took) => took,
            // Out of its slot, and closed by its own handler.
            Err(true) if lp.cork().is_closed(id) => false,
            Err(true) => {
                // Out of its slot (its handler is running): kept, and
                // queued when it next sends (so the order of the calls
                // holds, a close of its own included) or is put back.
                let (frame, payload) = self
                    .deferred
                    .get_or_insert_with(|| (Rc::from(&self.frame[..]), Rc::from(payload)))
                    .clone();
                if lp.cork().keep_for_busy((id, op, frame, payload)) {
                    lp.with_conn(id, move |p, lp, id| {
                        if let Some(c) = p.as_any_mut().downcast_mut::<WsConn>() {
                            c.core.take_inbox(lp);
                        } else {
                            lp.cork().take_for(id);
                        }
                    });
                }
                true
            }
            Err(false) => false,
        }
    }
}

/// A hold on a connection's messages, from [`WebSocket::suspend`]: none
/// is delivered while it lives; dropping it lets them flow again (if no
/// other suspension holds them). Dropped after its connection ended, it
/// does nothing. It belongs to the loop's thread.
#[must_use = "messages flow again as soon as the suspension is dropped"]
#[derive(Debug)]
pub struct Suspension {
    id: ConnId,
    _loop_thread: std::marker::PhantomData<Rc<()>>,
}

impl Suspension {
    /// The connection it holds.
    pub fn id(&self) -> ConnId {
        self.id
    }
}

impl Drop for Suspension {
    fn drop(&mut self) {
        if let Some(lp) = IOLoop::existing() {
            // Later if the connection is on the stack right now (dropped in
            // one of its own callbacks).
            with_websocket_later(&lp, self.id, |ws| ws.release());
        }
    }
}

/// The future of [`WebSocket::spawn`], holding its connection's messages
/// until it completes, and closing the connection with 1011 if it panics.
struct Suspended {
    future: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
    held: Option<Suspension>,
}

impl std::future::Future for Suspended {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        use std::task::Poll;
        let this = &mut *self;
        match catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                this.held = None;
                Poll::Ready(())
            }
            Err(p) => {
                let id = this.held.as_ref().map(Suspension::id);
                if let (Some(id), Some(lp)) = (id, IOLoop::existing()) {
                    log::error!(
                        "{id} WebSocket handler's spawned future panicked: {}",
                        crate::ioloop::panic_message(&p)
                    );
                    with_websocket_later(&lp, id, |ws| ws.core.handler_panicked(ws.lp));
                }
                this.held = None;
                Poll::Ready(())
            }
        }
    }
}

/// Runs `f` with the connection `id` (on this thread's loop) and returns
/// its result: what a future from [`WebSocket::spawn`] or
/// [`IOLoop::spawn`] uses to reach its connection after an `.await`
/// (Tornado's `self` in an `async def on_message`). `None` for a
/// connection that ended, a stale id, or one whose callback is running
/// right now (the loop holds it: a future polled from inside a callback
/// of its own connection cannot borrow it again).
///
/// ```no_run
/// use cyclone::websocket::{with_websocket_of, ConnId};
///
/// async fn greet(id: ConnId) {
///     let user = with_websocket_of(id, |ws| ws.current_user().map(str::to_owned)).flatten();
///     let _ = with_websocket_of(id, |ws| ws.write_message(format!("hello {user:?}")));
/// }
/// ```
pub fn with_websocket_of<R>(id: ConnId, f: impl FnOnce(&mut WebSocket<'_>) -> R) -> Option<R> {
    with_websocket(&IOLoop::existing()?, id, f)
}

/// Resolves once the connection `id` has at most `mark` bytes queued that
/// the kernel has not taken (0: everything handed over), or has ended:
/// what awaiting Tornado's `write_message` future gives a coroutine, flow
/// control for a future that writes much (from [`WebSocket::spawn`], with
/// [`write_to`]). Nothing is registered, and nothing costs, while no task
/// waits; the task is woken by the flush that brings the queue down to
/// `mark`.
///
/// A `mark` over the route's
/// [`write_high_water`](super::WebSocketSettings::write_high_water) keeps
/// the server from reading the peer for as long as the stream goes on,
/// but once per `close_timeout`: to hear the peer meanwhile (from a task
/// started with [`crate::ioloop::spawn`]; one from `ws.spawn` holds its
/// messages until it ends anyway), keep the mark under it by at least
/// one message.
///
/// ```no_run
/// use cyclone::websocket::{drained, write_to, Message, WebSocket, WebSocketHandler};
///
/// struct Download;
/// impl WebSocketHandler for Download {
///     fn on_message(&mut self, ws: &mut WebSocket<'_>, _msg: Message<'_>) {
///         let id = ws.id();
///         ws.spawn(async move {
///             for part in 0..1000u32 {
///                 if !write_to(id, vec![part as u8; 64 * 1024]) {
///                     return; // gone
///                 }
///                 // At most 1 MiB waiting for a slow reader, whatever the file's size.
///                 drained(id, 1024 * 1024).await;
///             }
///         });
///     }
/// }
/// ```
pub fn drained(id: ConnId, mark: usize) -> Drained {
    Drained { id, mark }
}

/// The future returned by [`drained`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Drained {
    id: ConnId,
    mark: usize,
}

impl std::future::Future for Drained {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        poll_drained(self.id, self.mark, cx)
    }
}

/// Ready once `id` has at most `mark` bytes queued, or is gone; else the
/// task is woken after the flush that gets it there.
pub(crate) fn poll_drained(
    id: ConnId,
    mark: usize,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<()> {
    let Some(lp) = IOLoop::existing() else {
        return std::task::Poll::Ready(());
    };
    // Over the mark, the connection wakes this task after the flush that
    // brings its queue down to the mark (`with_websocket` asks for one at
    // the end of this turn), or when it ends.
    let waiting = with_websocket(&lp, id, |ws| {
        let over = ws.buffered_amount() > mark;
        if over {
            ws.wake_at_most(mark, cx.waker());
        }
        over
    });
    if waiting == Some(true) {
        std::task::Poll::Pending
    } else {
        std::task::Poll::Ready(())
    }
}

/// Runs `f` with the [`WebSocket`] context of connection `id` right now,
/// if it is an idle, open WebSocket, and marks it dirty so what `f` queued
/// is flushed this tick. Used by futures (the client's coroutine API, [`drained`],
/// [`with_websocket_of`]), which never run while a connection is being
/// served.
pub(crate) fn with_websocket<R>(
    lp: &IOLoop,
    id: ConnId,
    f: impl FnOnce(&mut WebSocket<'_>) -> R,
) -> Option<R> {
    let r = lp
        .with_conn_now(id, |p| {
            let c = p.as_any_mut().downcast_mut::<WsConn>()?;
            if c.core.finished {
                return None;
            }
            Some(f(&mut c.core.ctx(lp)))
        })
        .flatten()?;
    lp.mark_dirty(id);
    Some(r)
}

/// Like [`with_websocket`] but, if `id` is being served right now, runs `f`
/// when it is put back. Returns false for a stale id.
pub(crate) fn with_websocket_later(
    lp: &IOLoop,
    id: ConnId,
    f: impl FnOnce(&mut WebSocket<'_>) + 'static,
) -> bool {
    lp.with_conn(id, move |p, lp, id| {
        if let Some(c) = p.as_any_mut().downcast_mut::<WsConn>() {
            if !c.core.finished {
                f(&mut c.core.ctx(lp));
                lp.mark_dirty(id);
            }
        }
    })
}
