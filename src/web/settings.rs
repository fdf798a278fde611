//! Application settings (DESIGN.md §4), named after Tornado's.

use std::path::PathBuf;

use super::signed::CookieSecret;
use super::xsrf::XsrfCookieVersion;
use crate::http::HttpLimits;
use crate::websocket::WebSocketSettings;

/// Application-wide settings: Tornado's `Application(**settings)`.
///
/// Built with [`Settings::default`] and field assignment, or piece by piece
/// through the [`ApplicationBuilder`](super::ApplicationBuilder) setters that
/// carry Tornado's names (`websocket_ping_interval`, `static_path`, ...).
#[derive(Clone)]
pub struct Settings {
    /// WebSocket settings every `.websocket(..)` route uses unless it was
    /// registered with `.websocket_with(..)`. Defaults: no ping, 10 MiB
    /// messages, 5 s close timeout, 16 MiB write buffer, `TCP_NODELAY` on,
    /// no compression (see [`WebSocketSettings`]).
    pub websocket: WebSocketSettings,
    /// HTTP limits handed to `http::listen`. Defaults: 16 KiB of head,
    /// 100 header lines, 10 MiB bodies, 10 s request timeout, 60 s idle
    /// keep-alive, `TCP_NODELAY` on, 100,000 connections (see [`HttpLimits`]).
    pub http: HttpLimits,
    /// `template_path`: directory `RequestContext::render` reads templates
    /// from. Default `None`: template names are relative to the current
    /// working directory (Tornado uses the calling module's directory,
    /// which has no Rust equivalent).
    pub template_path: Option<PathBuf>,
    /// `template_whitespace`: how the text of templates loaded by
    /// `RequestContext::render` is written out (Tornado 4.3's setting).
    /// Default `None`: by file name, as Tornado's `Loader` does:
    /// [`Whitespace::Single`](super::Whitespace::Single) for `.html` and
    /// `.js` files, [`Whitespace::All`](super::Whitespace::All) for others.
    pub template_whitespace: Option<super::Whitespace>,
    /// `static_path`: when set, `static_url_prefix` + `(.*)`,
    /// `/(favicon\.ico)` and `/(robots\.txt)` are served from this directory
    /// by [`StaticFiles`](super::StaticFiles), ahead of every other route,
    /// as Tornado does. Default `None` (no static route).
    pub static_path: Option<PathBuf>,
    /// `static_url_prefix`: URL prefix of the static route (default
    /// `"/static/"`, Tornado's). Matched literally, and the start of every
    /// [`RequestContext::static_url`](super::RequestContext::static_url).
    pub static_url_prefix: String,
    /// `static_hash_cache`: whether
    /// [`RequestContext::static_url`](super::RequestContext::static_url)
    /// keeps the content hash of each file it versioned, so a file is read
    /// once per application (per worker thread under `run_workers`), not
    /// on every page. `None` (the default) caches unless `debug` is on, as
    /// Tornado's default does; `Some(_)` decides whatever `debug` says.
    /// With the cache on, a file changed on disk keeps its old `?v=` until
    /// the process restarts. The cache holds files that were hashed
    /// successfully, at most 4096 of them (it is emptied when full).
    pub static_hash_cache: Option<bool>,
    /// `debug`: templates are re-read on every `render` instead of being
    /// cached, `static_url` re-hashes files on every call (unless
    /// `static_hash_cache` says otherwise), template errors show their
    /// cause in the 500 page, and an error the framework answers for a
    /// handler (a missing argument's 400, an XSRF or `static_url` 403)
    /// shows its reason in its page, where Tornado's `serve_traceback`
    /// shows the traceback (default `false`). A panic's 500 page stays
    /// plain (the panic is logged). It does not restart the process on
    /// code changes.
    pub debug: bool,
    /// `cookie_secret`: the HMAC key of signed cookies
    /// ([`RequestContext::set_secure_cookie`](super::RequestContext::set_secure_cookie),
    /// `get_secure_cookie`, and [`WebSocket::get_secure_cookie`](crate::websocket::WebSocket::get_secure_cookie)
    /// on this application's WebSocket routes). A long random string; the
    /// same secret as a Tornado application's reads its cookies and signs
    /// cookies it reads ([`signed`](super::signed)). Default none: signing
    /// answers 500 and reading finds nothing, both with an error logged.
    /// An empty string counts as none (anyone can sign with it; Tornado
    /// refuses it too).
    ///
    /// For key rotation, a dictionary of secrets by key version
    /// ([`CookieSecret::Versioned`], Tornado's `dict`): a cookie is checked
    /// with the secret of the key version it names, and new cookies are
    /// signed with the secret of [`key_version`](Self::key_version) (see
    /// [`signed`](super::signed#key-rotation)). An empty dictionary, or
    /// one holding an empty secret, counts as none.
    pub cookie_secret: Option<CookieSecret>,
    /// `key_version`: which secret of a `cookie_secret` dictionary signs
    /// new cookies. Without it, or when it is not one of the dictionary's
    /// versions, signing answers 500 and logs an error (Tornado raises).
    /// Not used with a single secret, which signs key version 0 as in
    /// Tornado. Default none.
    pub key_version: Option<u32>,
    /// `login_url`: where [`RequestContext::require_login`](super::RequestContext::require_login)
    /// sends a visitor who is not logged in (Tornado's `@authenticated`).
    /// Default none: `require_login` answers 500 and logs an error, as
    /// Tornado raises.
    pub login_url: Option<String>,
    /// `xsrf_cookies`: every request to a [`RequestHandler`](super::RequestHandler)
    /// whose method is not `GET`, `HEAD` or `OPTIONS` must repeat the
    /// `_xsrf` cookie's token in an `_xsrf` argument (form field or query)
    /// or an `X-XSRFToken` / `X-CSRFToken` header, or it is answered 403
    /// before `prepare` runs (Tornado's `check_xsrf_cookie`, which a
    /// handler can override). Pages put the token in their forms with
    /// `{% module xsrf_form_html() %}` or
    /// [`RequestContext::xsrf_form_html`](super::RequestContext::xsrf_form_html);
    /// the cookie is set by the first response that does. A WebSocket
    /// route's upgrade is a `GET`, not checked
    /// ([`check_origin`](crate::websocket::WebSocketHandler::check_origin)
    /// guards it), but a `POST`, `PUT`, ... to one is, as Tornado checks
    /// it for a `WebSocketHandler`: 403 before the handler's `prepare`.
    /// Default `false`.
    pub xsrf_cookies: bool,
    /// `xsrf_cookie_version`: the format new tokens are written in; both
    /// are read. Default [`XsrfCookieVersion::V2`], Tornado's.
    pub xsrf_cookie_version: XsrfCookieVersion,
    /// `xsrf_cookie_name`: the cookie holding the token. Default
    /// `"_xsrf"`. (The form field is always `_xsrf`, as in Tornado.)
    pub xsrf_cookie_name: String,
    /// `xsrf_cookie_kwargs`: how the XSRF cookie is set
    /// ([`CookieOptions`](super::CookieOptions): `secure`, `samesite`,
    /// `expires_days`, `domain`, ...). Default: `Path=/`, a
    /// browser-session cookie; as in Tornado, when there is a
    /// `current_user` and these options set no `expires_days`, it lasts
    /// 30 days.
    pub xsrf_cookie_kwargs: super::CookieOptions,
    /// `compress_response` (Tornado's alias: `gzip`): answers of
    /// [`RequestHandler`](super::RequestHandler)s carry `Vary:
    /// Accept-Encoding`, and their bodies are gzipped when the client
    /// accepts gzip, the `Content-Type` is `text/*` or one of Tornado's
    /// other compressible types (JSON, JavaScript, XML, SVG), and the body
    /// is at least 1024 bytes. A static file of such a type is gzipped
    /// whatever its size when it is sent whole (no range), its `ETag`
    /// then weak (`W/"…"`): up to 1 MiB in one piece, larger as one gzip
    /// stream sent 64 KiB at a time as the client takes it (Tornado
    /// flushes its `StaticFileHandler`'s pieces the same way); ranges are
    /// sent from the file as they are. Default `false`.
    pub compress_response: bool,
    /// `cross_origin_protection` (Tornado 6.6): a request to a
    /// [`RequestHandler`](super::RequestHandler) whose method is not
    /// `GET`, `HEAD` or `OPTIONS` and that a browser marks as coming from
    /// another site is answered 403 before `prepare`: `Sec-Fetch-Site` is
    /// `cross-site` or `same-site`, or (from a browser that does not send
    /// it) its `Origin` differs from its `Host`, unless the handler's
    /// [`check_trusted_origin`](super::RequestHandler::check_trusted_origin)
    /// accepts the origin (by default: one of
    /// [`trusted_origins`](Self::trusted_origins)). Requests without
    /// `Origin` or `Sec-Fetch-Site` (clients other than browsers) pass.
    /// The XSRF protection of modern browsers without a token in every
    /// form. WebSocket handshakes go through the same algorithm whatever
    /// this setting says, as in Tornado 6.6, with the handler's
    /// [`check_origin`](crate::websocket::WebSocketHandler::check_origin)
    /// deciding the origins that look cross-origin; a `POST`, `PUT`, ...
    /// to a WebSocket route is checked by this rule before the handler's
    /// `prepare`, as Tornado checks it, with `trusted_origins` deciding.
    /// Default `false`.
    pub cross_origin_protection: bool,
    /// `trusted_origins`: the origins (`https://app.example.com`) whose
    /// cross-origin requests [`cross_origin_protection`](Self::cross_origin_protection)
    /// lets through, and whose WebSocket handshakes the default
    /// `check_origin` accepts (Tornado 6.6's default does; an override
    /// keeps that by calling
    /// [`check_trusted_origin`](crate::websocket::check_trusted_origin)).
    /// Compared exactly. Default none.
    pub trusted_origins: Vec<String>,
}

/// Every field but `cookie_secret`'s value (single or a dictionary),
/// which a log line of the settings must not carry.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("websocket", &self.websocket)
            .field("http", &self.http)
            .field("template_path", &self.template_path)
            .field("template_whitespace", &self.template_whitespace)
            .field("static_path", &self.static_path)
            .field("static_url_prefix", &self.static_url_prefix)
            .field("static_hash_cache", &self.static_hash_cache)
            .field("debug", &self.debug)
            .field("login_url", &self.login_url)
            .field(
                "cookie_secret",
                &crate::websocket::settings::redacted(self.cookie_secret.is_some()),
            )
            .field("key_version", &self.key_version)
            .field("xsrf_cookies", &self.xsrf_cookies)
            .field("xsrf_cookie_version", &self.xsrf_cookie_version)
            .field("xsrf_cookie_name", &self.xsrf_cookie_name)
            .field("xsrf_cookie_kwargs", &self.xsrf_cookie_kwargs)
            .field("compress_response", &self.compress_response)
            .field("cross_origin_protection", &self.cross_origin_protection)
            .field("trusted_origins", &self.trusted_origins)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            websocket: WebSocketSettings::default(),
            http: HttpLimits::default(),
            template_path: None,
            template_whitespace: None,
            static_path: None,
            static_url_prefix: "/static/".to_string(),
            static_hash_cache: None,
            debug: false,
            cookie_secret: None,
            key_version: None,
            login_url: None,
            xsrf_cookies: false,
            xsrf_cookie_version: XsrfCookieVersion::V2,
            xsrf_cookie_name: "_xsrf".to_string(),
            xsrf_cookie_kwargs: super::CookieOptions::default(),
            compress_response: false,
            cross_origin_protection: false,
            trusted_origins: Vec::new(),
        }
    }
}

impl Settings {
    /// Whether `origin` is one of [`trusted_origins`](Self::trusted_origins)
    /// (the default of both `check_trusted_origin`s).
    pub(crate) fn trusts_origin(&self, origin: &str) -> bool {
        self.trusted_origins.iter().any(|t| t == origin)
    }

    /// Whether `static_url` caches file hashes: `static_hash_cache`, or
    /// else the opposite of `debug`.
    pub(crate) fn caches_static_hashes(&self) -> bool {
        self.static_hash_cache.unwrap_or(!self.debug)
    }
}
