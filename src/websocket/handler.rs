//! The `WebSocketHandler` trait: Tornado's `WebSocketHandler` methods, one
//! handler object per connection.

use super::connection::WebSocket;
use super::message::Message;
use crate::http::{Request, Response};
use crate::protocol::CompressionOptions;

/// Per-connection WebSocket behaviour. Only [`on_message`](Self::on_message)
/// is required; every other method has Tornado's default.
///
/// The same trait drives server connections (routes registered with
/// `Application::builder().websocket(..)`) and client connections
/// (`websocket_connect_with`).
///
/// A panic in any callback closes only that connection with 1011 and is logged.
pub trait WebSocketHandler: 'static {
    /// Runs first when a handshake request reaches this handler's route,
    /// before it is checked and answered (server only): Tornado's
    /// `prepare()`, where an application refuses the upgrade (say, to a
    /// visitor who is not logged in: Tornado's `@authenticated`, or
    /// `raise HTTPError(403)`). `Err(response)` is sent instead of the
    /// `101` and the connection never opens; `Ok(())` (the default) goes on
    /// to the handshake checks, `check_origin` and `open`.
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
    /// `on_connection_close` has no separate counterpart).
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

    /// Accept a handshake whose `Origin` header is `origin` (server only).
    ///
    /// The default, like Tornado's, accepts only an origin whose host (and
    /// port) equals the request's `Host` header; requests without an
    /// `Origin` header (non-browser clients) are always accepted and never
    /// reach this method. A `false` answers 403.
    ///
    /// As Tornado 6.6 does, the default also accepts a request whose
    /// browser says it is same-origin (`Sec-Fetch-Site: same-origin`, or
    /// `none`, a header pages cannot set): behind a proxy that rewrites
    /// `Host`, the page's own connections pass. As in Tornado 4.3, an
    /// override is asked for every request with an `Origin` (6.6 no longer
    /// asks it for same-origin ones). The default also accepts an origin
    /// listed in the application's
    /// [`trusted_origins`](crate::web::Settings::trusted_origins) (Tornado
    /// 6.6's default calls `check_trusted_origin`); an override decides
    /// for itself, and calls [`check_trusted_origin`] to keep that rule,
    /// as a Tornado override calls `self.check_trusted_origin(origin)`.
    fn check_origin(&self, origin: &str, req: &Request) -> bool {
        same_origin(origin, req.host().unwrap_or(""))
            || matches!(req.header("sec-fetch-site"), Some("same-origin" | "none"))
            || check_trusted_origin(origin)
    }

    /// Choose one of the subprotocols the client offered (server only);
    /// `None` (the default) selects none.
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

thread_local! {
    /// The application whose route's handshake is being checked, while
    /// [`WebSocketHandler::check_origin`] runs.
    static CHECKING_FOR: std::cell::RefCell<Option<crate::web::ApplicationContext>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether `origin` is one of the application's
/// [`trusted_origins`](crate::web::Settings::trusted_origins): Tornado
/// 6.6's `RequestHandler.check_trusted_origin`, for a
/// [`check_origin`](WebSocketHandler::check_origin) override to call.
/// Exact matches only (scheme, host and port). Meaningful while the loop
/// asks `check_origin` about a handshake on an application's route; false
/// anywhere else.
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
    CHECKING_FOR.with(|app| {
        app.borrow()
            .as_ref()
            .is_some_and(|app| app.trusts_origin(origin))
    })
}

/// Runs `f` (the handler's `check_origin`) with `app` as the application
/// [`check_trusted_origin`] consults; restored afterwards, panic or not.
pub(crate) fn checking_origin_for<R>(
    app: Option<&crate::web::ApplicationContext>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<crate::web::ApplicationContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CHECKING_FOR.with(|app| *app.borrow_mut() = previous);
        }
    }
    let previous = CHECKING_FOR.with(|slot| slot.replace(app.cloned()));
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
    fn the_default_takes_a_browsers_same_origin_word() {
        struct H;
        impl super::WebSocketHandler for H {
            fn on_message(&mut self, _: &mut super::WebSocket<'_>, _: super::Message<'_>) {}
        }
        let check = |host: &str, site: Option<&str>| {
            let mut headers = vec![("Host", host)];
            headers.extend(site.map(|s| ("Sec-Fetch-Site", s)));
            let req = crate::http::Request::synthetic("GET", "/ws", &headers);
            super::WebSocketHandler::check_origin(&H, "https://app.example", &req)
        };
        assert!(check("app.example", None));
        // A proxy's Host: the origin no longer matches it.
        assert!(!check("10.0.0.7:8888", None));
        assert!(check("10.0.0.7:8888", Some("same-origin")));
        assert!(check("10.0.0.7:8888", Some("none")));
        for other in ["same-site", "cross-site", "Same-Origin", ""] {
            assert!(!check("10.0.0.7:8888", Some(other)), "{other}");
        }
    }

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
