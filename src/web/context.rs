//! `RequestContext`: what a handler method reads the request from and
//! writes the response to (Tornado's `RequestHandler` instance surface).

use std::cell::OnceCell;

use serde::Serialize;

use super::application::Shared;
use super::cookie::{self, CookieOptions};
use super::handler::HANDLER_METHODS;
use super::multipart::{self, HttpFile};
use super::settings::Settings;
use super::signed::CookieSecret;
use super::static_files::StaticUrlError;
use super::template::{AppParts, RequestNamespace, TemplateError};
use super::ui_module::ActiveModules;
use super::xsrf;
use crate::http::request::{parse_qs_bytes, qs_values_bytes};
use crate::http::response::{field_byte, valid_status};
use crate::http::{Request, Response};

/// Tornado's default `Content-Type` for a response.
const DEFAULT_CONTENT_TYPE: &str = "text/html; charset=UTF-8";

/// `value` as the template value `name` (`set_template_value`, of a
/// request or a WebSocket connection); `None`, with an error logged, for
/// one that does not serialize.
pub(crate) fn template_value(name: &str, value: impl Serialize) -> Option<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| log::error!("set_template_value({name:?}): does not serialize: {e}"))
        .ok()
}

/// Whether `value` may be sent as the header `name`'s as it is (no
/// control character but tab); else logs the handler's bug, whose answer
/// is a 500, as Tornado's `_convert_header_value` raises `ValueError`
/// ("Unsafe header value"). One rule for a [`RequestContext`]'s headers
/// and a WebSocket handshake's.
pub(crate) fn header_value_safe(call: &str, name: &str, value: &str, request: &Request) -> bool {
    if value.bytes().all(field_byte) {
        return true;
    }
    log::error!(
        "{call}({name:?}, {value:?}) on {}: unsafe header value (a control character)",
        request.uri()
    );
    false
}

/// A handler's response before it does anything: 200, Tornado's default
/// `Content-Type`, no body.
fn fresh_response() -> Response {
    let mut response = Response::new(200);
    response.set_header_static("Content-Type", DEFAULT_CONTENT_TYPE);
    response
}

/// The request being answered and the response being built.
///
/// The response starts as `200` with `Content-Type: text/html;
/// charset=UTF-8` (Tornado's default) and an empty body. Once it is
/// *finished* — by [`finish`](Self::finish), [`send_error`](Self::send_error),
/// [`redirect`](Self::redirect) or [`render`](Self::render) — later writes
/// and header changes are ignored and logged at `warn` (Tornado raises
/// `RuntimeError("Cannot write() after finish()")`).
pub struct RequestContext<'a> {
    request: &'a Request,
    shared: &'a Shared,
    /// The rest, which outlives the borrows.
    p: Parts,
    /// The answer given later, once [`asynchronous`](Self::asynchronous)
    /// was called.
    later: Option<super::async_response::Shared>,
}

/// A [`RequestContext`] without its borrows of the request and the
/// application: what an [`AsyncResponse`](super::AsyncResponse) or a
/// streamed body's handler keeps between calls.
pub(crate) struct Parts {
    response: Response,
    /// `Set-Cookie` values; kept through `send_error`, like Tornado's.
    cookies: Vec<String>,
    finished: bool,
    /// Methods whose default (405) body ran during this request.
    unimplemented: Vec<Box<str>>,
    /// Whether the body is a form (`application/x-www-form-urlencoded`).
    /// Its pairs are not kept: a body of millions of tiny fields would cost
    /// tens of times its size as `String`s; each lookup scans it instead.
    form_body: OnceCell<bool>,
    /// The route's named captures (Tornado's `path_kwargs`).
    path_kwargs: Vec<(String, String)>,
    /// The status of the error page `send_error` put in place, until the
    /// handler's `write_error` has run.
    error_status: Option<u16>,
    /// The XSRF token of the `_xsrf` cookie, or one made for this request
    /// (Tornado's `_get_raw_xsrf_token`).
    xsrf_raw: OnceCell<xsrf::RawToken>,
    /// The token as [`xsrf_token`](RequestContext::xsrf_token) gave it out.
    xsrf_token: OnceCell<String>,
    /// A `multipart/form-data` body's parts ([`parse_body`](RequestContext::parse_body)).
    multipart: Option<multipart::Parts>,
    /// Tornado's `current_user`: from the handler's `get_current_user`,
    /// or set in `prepare`.
    current_user: Option<String>,
    /// `request` for templates, made when a template first reads it.
    request_value: OnceCell<serde_json::Value>,
    /// Tornado's `self.locale`: from the handler's `get_user_locale` or
    /// `set_locale`, else the browser's when first asked for.
    locale: OnceCell<crate::locale::Locale>,
    /// The UI modules this request's templates have used, for the
    /// resources `render` puts into the page.
    modules: ActiveModules,
    /// Names the handler added to its templates' namespace
    /// ([`set_template_value`](RequestContext::set_template_value)).
    template_values: serde_json::Map<String, serde_json::Value>,
    /// The head went out ([`AsyncResponse::flush`](super::AsyncResponse::flush)):
    /// status, headers and cookies can no longer change.
    head_sent: bool,
    /// The body limit a streamed body's `prepare` set
    /// ([`set_max_body_size`](RequestContext::set_max_body_size)).
    max_body_size: Option<u64>,
}

impl Parts {
    /// The body limit `prepare` set ([`RequestContext::set_max_body_size`]).
    pub(crate) fn max_body_size(&self) -> Option<u64> {
        self.max_body_size
    }
}

/// Whether a browser would read `url` as protocol-relative
/// (`//example.com/path`, which names another host) once it has cleaned it
/// up as the WHATWG URL parser does: leading and trailing control
/// characters and spaces stripped, tabs and newlines removed, `\` read as
/// `/` (Tornado's `_is_protocol_relative`). A redirect built from a
/// request's path must not go to one.
pub(crate) fn is_protocol_relative(url: &str) -> bool {
    let mut chars = like_browser(url);
    chars.next() == Some('/') && chars.next() == Some('/')
}

/// `url` as a browser reads it (Tornado's `_normalize_url_like_browser`):
/// leading and trailing control characters and spaces stripped, tabs and
/// newlines removed, `\` read as `/`.
pub(crate) fn like_browser(url: &str) -> impl Iterator<Item = char> + '_ {
    url.trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
}

/// The most `name=value` fields a query string or an urlencoded body may
/// have (Tornado 6.5.8's `ParseUrlEncodedConfig.max_arguments`): past it
/// the request is answered 400, so that no request makes each argument
/// lookup scan millions of fields. A query over it is answered with the
/// 400 page, its reason in it, and the connection stays open (the request
/// is well framed); Tornado's `HTTP1Connection` answers a bare
/// `400 Bad Request` without a body and closes the connection.
pub const MAX_URLENCODED_ARGUMENTS: usize = 1000;

/// Whether a body of `ctype` holds form arguments, as Tornado's
/// `parse_body_arguments` decides (the type's start, case-sensitively):
/// one test for parsing, limits and lookups alike.
fn is_urlencoded(ctype: &str) -> bool {
    ctype.starts_with("application/x-www-form-urlencoded")
}

/// The request's `Content-Type` as Tornado's `headers.get("Content-Type",
/// "")` reads it to parse the body: empty without one, and several joined
/// with `,` (`HTTPHeaders` joins a repeated header), so that a request
/// with two `multipart/form-data` types is refused (its boundary runs into
/// the second type) where reading the first alone would parse it, and a
/// form type followed by another is still a form. Bytes that are not
/// UTF-8 are U+FFFD (Tornado reads them as Latin-1: such a type is no form
/// there either, or its boundary is not the body's).
fn request_content_type(request: &Request) -> std::borrow::Cow<'_, str> {
    request.header_joined("content-type").unwrap_or_default()
}

/// Whether urlencoded `text` has more fields than
/// [`MAX_URLENCODED_ARGUMENTS`], counted as Tornado counts them: one more
/// than its `&`s (empty text has none).
pub(crate) fn too_many_fields(text: &[u8]) -> bool {
    !text.is_empty() && 1 + memchr::memchr_iter(b'&', text).count() > MAX_URLENCODED_ARGUMENTS
}

/// The body values of `name` in `request` as received (not cleaned):
/// from its multipart `parts` when [`RequestContext::parse_body`] found
/// some, else from a body that is a `form` (urlencoded), decoding only the
/// values of `name` (`body_arguments` decodes every pair).
fn body_values_of(
    request: &Request,
    parts: Option<&multipart::Parts>,
    form: impl FnOnce() -> bool,
    name: &str,
) -> Vec<String> {
    let body = request.body();
    if let Some(parts) = parts {
        return parts
            .fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, r)| String::from_utf8_lossy(&body[r.clone()]).into_owned())
            .collect();
    }
    if !form() {
        return Vec::new();
    }
    qs_values_bytes(body, name).collect()
}

/// A request's form body as parsed before `prepare` where no
/// [`RequestContext`] lives on (a WebSocket handshake): its multipart
/// parts, parsed once, or none for an urlencoded body (read when asked)
/// or no form at all.
#[derive(Default)]
pub(crate) struct FormBody(Option<multipart::Parts>);

impl FormBody {
    /// The body values of `name` in `request` (the request this form
    /// came from), as received (not cleaned): Tornado's
    /// `request.body_arguments[name]`.
    pub(crate) fn values(&self, request: &Request, name: &str) -> Vec<String> {
        let form = || is_urlencoded(&request_content_type(request));
        body_values_of(request, self.0.as_ref(), form, name)
    }
}

/// Whether `request` has a body that Tornado's `parse_body_arguments`
/// reads (urlencoded or multipart, by its `Content-Type`): one header
/// lookup, all that a request without one pays before `prepare`.
pub(crate) fn has_form_body(request: &Request) -> bool {
    is_form_type(&request_content_type(request))
}

/// Whether a body of `ctype` is one Tornado's `parse_body_arguments`
/// parses: urlencoded or multipart.
fn is_form_type(ctype: &str) -> bool {
    is_urlencoded(ctype) || ctype.starts_with("multipart/form-data")
}

/// The line Tornado logs for `raise HTTPError(status, why)`:
/// `403 POST /x (10.0.0.1): why` (`-` for a request from no socket).
/// Formatted only when the line is written.
pub(crate) struct Refusal<'a>(pub(crate) &'a Request, pub(crate) u16, pub(crate) &'a str);

impl std::fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Refusal(req, status, why) = self;
        write!(f, "{status} {} {} (", req.method(), req.uri())?;
        match req.peer() {
            Some(peer) => write!(f, "{}", peer.ip())?,
            None => f.write_str("-")?,
        }
        write!(f, "): {why}")
    }
}

/// Tornado's argument cleanup: control characters other than whitespace
/// become spaces, then surrounding whitespace is stripped.
pub(crate) fn clean_argument(v: String) -> String {
    remove_control_chars(v).trim().to_string()
}

/// Tornado's `RequestHandler._get_arguments(name, source, strip)` over
/// the values of an argument as received (percent-decoded), in order:
/// each with its control characters other than whitespace made spaces
/// and, when `strip`, the whitespace around it stripped
/// ([`clean_argument`]). The one rule of `RequestContext`'s argument
/// methods and of a template's `handler.get_argument(..)` and its kin;
/// [`last_argument`] is `_get_argument`'s.
pub(crate) fn argument_values(raw: impl IntoIterator<Item = String>, strip: bool) -> Vec<String> {
    let clean = if strip {
        clean_argument
    } else {
        remove_control_chars
    };
    raw.into_iter().map(clean).collect()
}

/// Tornado's `RequestHandler._get_argument(name, default, source, strip)`
/// over the values of an argument as received: the last of
/// [`argument_values`], `None` when there is none (where Tornado returns
/// the default, or raises `MissingArgumentError` without one).
pub(crate) fn last_argument(raw: impl IntoIterator<Item = String>, strip: bool) -> Option<String> {
    argument_values(raw.into_iter().last(), strip).pop()
}

/// Tornado's `_remove_control_chars_regex` (`[\x00-\x08\x0e-\x1f]`):
/// those characters become spaces; tab, LF, VT, FF and CR stay.
pub(crate) fn remove_control_chars(v: String) -> String {
    if !v.contains(|c| matches!(c, '\x00'..='\x08' | '\x0e'..='\x1f')) {
        return v;
    }
    v.chars()
        .map(|c| match c {
            '\x00'..='\x08' | '\x0e'..='\x1f' => ' ',
            c => c,
        })
        .collect()
}

impl<'a> RequestContext<'a> {
    pub(crate) fn new(request: &'a Request, shared: &'a Shared) -> RequestContext<'a> {
        RequestContext {
            request,
            shared,
            p: Parts {
                response: fresh_response(),
                cookies: Vec::new(),
                finished: false,
                unimplemented: Vec::new(),
                form_body: OnceCell::new(),
                path_kwargs: Vec::new(),
                error_status: None,
                xsrf_raw: OnceCell::new(),
                xsrf_token: OnceCell::new(),
                multipart: None,
                current_user: None,
                request_value: OnceCell::new(),
                locale: OnceCell::new(),
                modules: ActiveModules::default(),
                template_values: serde_json::Map::new(),
                head_sent: false,
                max_body_size: None,
            },
            later: None,
        }
    }

    /// Splits off the borrows: the state, and the answer given later if
    /// [`asynchronous`](Self::asynchronous) was called.
    pub(crate) fn into_parts(self) -> (Parts, Option<super::async_response::Shared>) {
        (self.p, self.later)
    }

    /// A context again, for more work on the same request (an answer given
    /// later, the next piece of a streamed body).
    pub(crate) fn from_parts(
        request: &'a Request,
        shared: &'a Shared,
        parts: Parts,
        later: Option<super::async_response::Shared>,
    ) -> RequestContext<'a> {
        RequestContext {
            request,
            shared,
            p: parts,
            later,
        }
    }

    /// The body limit of this request, on a route that takes its body as
    /// it arrives ([`stream_request_body`](super::ApplicationBuilder::stream_request_body)),
    /// set in `prepare` (Tornado's `request.connection.set_max_body_size`):
    /// a larger body is answered 413. Elsewhere the body has already
    /// arrived, and this does nothing.
    pub fn set_max_body_size(&mut self, bytes: u64) {
        self.p.max_body_size = Some(bytes);
    }

    /// Keeps the response open after the handler method returns: the
    /// answer is completed later through the returned handle (Tornado
    /// 4.3's `@asynchronous`, and what a coroutine `get` does): from a
    /// timer, a task ([`spawn`](crate::ioloop::spawn)), or another
    /// connection's handler (long polling), with
    /// [`write`](super::AsyncResponse::write),
    /// [`flush`](super::AsyncResponse::flush) (stream what is written so
    /// far: Server-Sent Events), [`finish`](super::AsyncResponse::finish),
    /// or any of this context's methods through
    /// [`with`](super::AsyncResponse::with). Dropping the last handle
    /// finishes the answer, as a coroutine's end does.
    ///
    /// What the method writes through `cx` comes first. A method that
    /// finishes the response itself after calling this (`send_error`,
    /// `redirect`, `render`) answers now, as without it. While the answer
    /// is open, requests pipelined behind it wait, and a client that
    /// closes the connection is noticed: the handler's
    /// [`on_connection_close`](super::RequestHandler::on_connection_close)
    /// runs, [`is_closed`](super::AsyncResponse::is_closed) turns true.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cyclone::ioloop::IOLoop;
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Slow;
    /// impl RequestHandler for Slow {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let later = cx.asynchronous();
    ///         IOLoop::current().call_later(Duration::from_millis(100), move || {
    ///             later.write("done");
    ///             later.finish();
    ///         });
    ///     }
    /// }
    /// ```
    pub fn asynchronous(&mut self) -> super::AsyncResponse {
        let shared = self
            .later
            .get_or_insert_with(super::async_response::Shared::default)
            .clone();
        super::AsyncResponse::new(shared)
    }

    /// Whether [`asynchronous`](Self::asynchronous) keeps this response
    /// open (it was called and the response is not finished).
    pub(crate) fn is_open_later(&self) -> bool {
        self.later.is_some() && !self.p.finished
    }

    /// Whether the response's head went out (a streamed answer).
    pub(crate) fn head_sent(&self) -> bool {
        self.p.head_sent
    }

    /// Takes the response's head and the body written so far, for the
    /// first piece of a streamed answer: its cookies become `Set-Cookie`
    /// headers, and from now on the status and headers stay as they are.
    pub(crate) fn take_head(&mut self) -> Response {
        self.set_new_xsrf_cookie();
        let status = self.p.response.status();
        let mut head = std::mem::replace(&mut self.p.response, Response::new(status));
        for c in self.p.cookies.drain(..) {
            head.add_header("Set-Cookie", c);
        }
        self.p.head_sent = true;
        head
    }

    /// Takes what was written since the last piece of a streamed answer.
    pub(crate) fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(self.p.response.body_mut())
    }

    /// The response being built (for the transforms of a streamed answer).
    pub(crate) fn response_mut(&mut self) -> &mut Response {
        &mut self.p.response
    }

    /// Whether status, headers and cookies can still change; logs why not.
    fn head_writable(&self, what: &str) -> bool {
        if self.p.head_sent {
            log::warn!(
                "{what} ignored: the head of the response to {} {} was already sent (flush)",
                self.request.method(),
                self.request.uri()
            );
        }
        !self.p.head_sent && self.writable(what)
    }

    /// The status of an error page sent with `send_error` and not yet
    /// given to the handler's `write_error`.
    pub(crate) fn error_status(&self) -> Option<u16> {
        self.p.error_status
    }

    /// After `set_default_headers`: drops the body it wrote and puts the
    /// status back to `status`, as Tornado's `clear()` empties the body and
    /// sets 200 after calling it (a response it finished stays).
    pub(crate) fn keep_only_headers(&mut self, status: u16) {
        if !self.p.finished {
            self.p.response.body_mut().clear();
            self.p.response.set_status(status, None);
        }
    }

    /// Replaces a response whose status cannot end a request with the
    /// 500 error page: an informational one (1xx), or one past 599 that
    /// `send_error` was given (no status line; RFC 9110 §15: "values
    /// outside the range 100..599 are invalid"). The HTTP layer would send
    /// a bare 500 instead, without the handler's cookies, default headers
    /// or `write_error` page. A 204 or 304 with a body written (an error
    /// page's too) gets the 500 page as well, as Tornado's `finish()`
    /// asserts there is none.
    pub(crate) fn refuse_unsendable_status(&mut self) {
        let status = self.p.response.status();
        let has_body = !self.p.response.body().is_empty() || self.p.response.file_body_len() > 0;
        if (200..=599).contains(&status) && !(matches!(status, 204 | 304) && has_body) {
            return;
        }
        log::error!(
            "{} {} answered {status}{} as its final status: sent 500",
            self.request.method(),
            self.request.uri(),
            if has_body { " with a body" } else { "" }
        );
        self.p.finished = false;
        self.send_error(500);
    }

    /// Lets the handler dress the error page once (its default headers and
    /// `write_error`): the response is writable again with an empty body
    /// meanwhile, and keeps Tornado's default page if `f` wrote no body
    /// and did not finish the response itself (a `redirect` has no body).
    pub(crate) fn rewrite_error_page(&mut self, f: impl FnOnce(&mut Self)) {
        self.p.error_status = None;
        let default_page = std::mem::take(self.p.response.body_mut());
        self.p.finished = false;
        f(self);
        // An error `f` sent (`send_error`) finished the response too: its
        // page stays, undressed (write_error runs once).
        self.p.error_status = None;
        let finished_by_f = std::mem::replace(&mut self.p.finished, true);
        if !finished_by_f
            && self.p.response.body().is_empty()
            && self.p.response.file_body_len() == 0
        {
            *self.p.response.body_mut() = default_page;
        }
    }

    /// Sets the route's named captures (see [`path_kwarg`](Self::path_kwarg)).
    pub(crate) fn set_path_kwargs(&mut self, kwargs: Vec<(String, String)>) {
        self.p.path_kwargs = kwargs;
    }

    /// The route's capture named `name` (`(?P<name>..)`), percent-decoded:
    /// Tornado's `get(self, **kwargs)` / `self.path_kwargs`. The method's
    /// `args` hold every capture in order, named ones too (Tornado passes
    /// only the named ones when there are any). `None` for a name the route
    /// does not have.
    ///
    /// ```
    /// use cyclone::web::{Application, RequestContext, RequestHandler};
    ///
    /// struct Article;
    /// impl RequestHandler for Article {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
    ///         let slug = cx.path_kwarg("slug").unwrap_or("").to_owned();
    ///         cx.write(format!("article {slug}"));
    ///     }
    /// }
    ///
    /// let app = Application::builder()
    ///     .route(r"/articles/(?P<year>\d{4})/(?P<slug>[\w-]+)", || Article)
    ///     .build();
    /// ```
    pub fn path_kwarg(&self, name: &str) -> Option<&str> {
        self.p
            .path_kwargs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The finished response, with its `Set-Cookie` headers.
    pub(crate) fn into_response(mut self) -> Response {
        self.set_new_xsrf_cookie();
        for c in self.p.cookies.drain(..) {
            self.p.response.add_header("Set-Cookie", c);
        }
        self.p.response
    }

    fn writable(&self, what: &str) -> bool {
        if self.p.finished {
            log::warn!(
                "{what} ignored: the response to {} {} is already finished",
                self.request.method(),
                self.request.uri()
            );
        }
        !self.p.finished
    }

    /// The request.
    pub fn request(&self) -> &'a Request {
        self.request
    }

    /// The application's settings.
    pub fn settings(&self) -> &'a Settings {
        &self.shared.settings
    }

    /// The URL of the static file `path` (relative to `static_path`), with
    /// a version that changes with its content (Tornado's `static_url`):
    /// `static_url_prefix + path + "?v=" + hash`, e.g.
    /// `/static/app.css?v=3f78…` (`path` percent-encoded where needed:
    /// `img/a b.png` gives `img/a%20b.png`, `app.css?x=1` names a file
    /// `app.css%3Fx=1`, where Tornado pastes the path in as it is).
    /// [`StaticFiles`](super::StaticFiles) answers a request carrying `v`
    /// with a ten-year `Cache-Control` and `Expires`, so browsers fetch the
    /// file again only when the page links a new version.
    ///
    /// The version is the lowercase hex SHA-1 of the file's content, 40
    /// characters (Tornado 6.6 uses a SHA-512 hex digest, 128; see
    /// [`StaticFiles::version`](super::StaticFiles::version)). Hashes are
    /// cached per application unless `static_hash_cache` is off (the
    /// default with `debug`: see [`Settings::static_hash_cache`]); the
    /// first call for a file reads it whole, in the handler's thread, so a
    /// file over 64 MiB is not read and gets no version (Tornado 6.6's
    /// `MAX_VERSION_CONTENT_SIZE`).
    ///
    /// It is the version of the file the URL's request gets: `.` and
    /// `..` segments are resolved as the client resolves them before
    /// sending the request, so `css/../app.js` is versioned as `app.js`
    /// (the URL keeps `css/../app.js`, as Tornado's does). Tornado 6.6
    /// versions the file `os.path.abspath` names, the same one but for an
    /// empty segment: `css//../app.js` is requested as `css/app.js`, and
    /// versioned as that here (on purpose: Tornado's handler serves
    /// `app.js` for the URL only as written, `/static/css//../app.js`,
    /// which a browser never sends; cyclone's answers that one 403, as
    /// any path with a `..` segment).
    ///
    /// An absolute path inside `static_path` is versioned as Tornado
    /// versions it (its `os.path.join(root, path)` is the path itself),
    /// and its URL is the prefix and the path as given,
    /// `/static//srv/app/static/app.css?v=…`, which
    /// [`StaticFiles`](super::StaticFiles) serves, as Tornado's handler
    /// does. With the prefix `/` that URL would begin with `//`, which a
    /// browser reads as another host (Tornado writes it so): the path
    /// after `static_path` is used instead, `/app.css?v=…`.
    ///
    /// Without `?v=`, and logged at `error` (Tornado's "Could not open
    /// static file"): `static_path` is not set, the file is missing,
    /// unreadable or over 64 MiB, or its request would be refused or is not for
    /// [`StaticFiles`](super::StaticFiles): a symlink
    /// out of `static_path` (the handler answers 403; Tornado 6.6 follows
    /// it to version its target), or a path whose `..` leaves
    /// `static_url_prefix` (`../static/app.css` with the prefix
    /// `/assets/` is requested as `/static/app.css`; Tornado versions
    /// `app.css`).
    ///
    /// # Errors
    /// `path` leads out of `static_path` as written (`../x.css`,
    /// `/app.css`; see [`StaticUrlError`]), where Tornado 6.6 raises
    /// `HTTPError(403)`: answer [`StaticUrlError::status`] (403), as
    /// Tornado's handler would. In a template rendered by
    /// [`render`](Self::render) or [`render_with`](Self::render_with), a
    /// `{{ static_url(..) }}` of such a path answers 403 (and logs the
    /// reason at `warn`); [`render_string`](Self::render_string) returns
    /// it as [`TemplateError::Http`]. The check is on the text alone (no
    /// file is read), so a fixed path either always passes it or never
    /// does.
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Page;
    /// impl RequestHandler for Page {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let css = match cx.static_url("app.css") {
    ///             Ok(url) => url,
    ///             Err(e) => return cx.send_error(e.status()),
    ///         };
    ///         cx.write(format!(r#"<link rel="stylesheet" href="{css}">"#));
    ///     }
    /// }
    /// ```
    pub fn static_url(&self, path: &str) -> Result<String, StaticUrlError> {
        self.shared.static_url(path)
    }

    /// Whether the response is finished (error, redirect or render sent).
    pub fn is_finished(&self) -> bool {
        self.p.finished
    }

    /// Appends to the response body (text or bytes). The content type stays
    /// `text/html; charset=UTF-8` unless a handler sets another.
    pub fn write(&mut self, data: impl AsRef<[u8]>) {
        if self.writable("write") {
            self.p.response.write(data);
        }
    }

    /// Finishes the response with what was written (Tornado's
    /// `finish()`): from [`prepare`](super::RequestHandler::prepare), the
    /// method is not called (a cached page, an `OPTIONS` preflight
    /// answered for every route); later writes and header changes are
    /// ignored and logged. The answer still gets its `ETag` (and 304) and
    /// `compress_response`, as a method's return gives them. A method
    /// need not call it: its return finishes the response. After
    /// [`asynchronous`](Self::asynchronous), it answers at once, as
    /// [`AsyncResponse::finish`](super::AsyncResponse::finish) would.
    pub fn finish(&mut self) {
        if self.writable("finish") {
            self.p.finished = true;
        }
    }

    /// Ends the response with `len` bytes of `file` from `offset`, after
    /// what was written, and finishes it: the connection reads the file in
    /// 64 KiB pieces as the client takes them (nothing else is sent on the
    /// connection meanwhile), so a large download costs one piece of
    /// memory ([`Response::set_file_body`]). What
    /// [`StaticFiles`](super::StaticFiles) uses.
    pub fn write_file(&mut self, file: std::fs::File, offset: u64, len: u64) {
        if self.writable("write_file") {
            self.p.response.set_file_body(file, offset, len);
            self.p.finished = true;
        }
    }

    /// Appends `value` as JSON and sets `Content-Type: application/json;
    /// charset=UTF-8` (Tornado's `write(dict)`). As Tornado's `json_encode`,
    /// `</` is written `<\/`, so the JSON can sit inside an HTML `<script>`
    /// without closing it. A value serde cannot serialize (a map with
    /// non-string keys) answers 500 and is logged.
    ///
    /// The text is serde's compact JSON, `{"a":1,"s":"é"}`, where
    /// Tornado's `json.dumps` writes `{"a": 1, "s": "\u00e9"}`: the same
    /// value, but another body, length and `Etag` (as
    /// [`WebSocket::write_json`](crate::websocket::WebSocket::write_json)).
    /// For Tornado's bytes, write
    /// [`escape::json_encode`](super::escape::json_encode)`(&value)?` and
    /// set the `Content-Type` yourself.
    ///
    /// Any value serde serializes is written, a list or a number too:
    /// Tornado's `write` JSON-encodes a dict alone, and raises `TypeError`
    /// (a 500) for a list "for security reasons", the JSON hijacking of
    /// browsers long gone (a top-level array no longer runs as a script
    /// that leaks it). Wrap a list in an object to keep Tornado's shape.
    pub fn write_json<T: Serialize + ?Sized>(&mut self, value: &T) {
        if !self.writable("write_json") {
            return;
        }
        match serde_json::to_string(value) {
            Ok(json) => {
                self.p
                    .response
                    .set_header_static("Content-Type", "application/json; charset=UTF-8");
                self.p.response.write(escape_script_end(json));
            }
            Err(e) => {
                log::error!("write_json on {}: {e}", self.request.uri());
                self.send_error(500);
            }
        }
    }

    /// Sets the status code (the reason phrase is the standard one, or
    /// `Unknown` for an unregistered code). A code outside 100–599 is a
    /// handler bug: it is logged and the request answers 500. (Tornado 6
    /// sends it, `HTTP/1.1 600 Unknown`, a status line RFC 9110 §15 calls
    /// invalid.)
    pub fn set_status(&mut self, status: u16) {
        self.set_status_reason(status, None);
    }

    /// [`set_status`](Self::set_status) with the reason phrase the status
    /// line carries instead of the standard one (Tornado's
    /// `set_status(status, reason)`): `HTTP/1.1 299 Fine Indeed`. A reason
    /// Tornado 6.6 refuses is sent as `Unknown`, as there: empty, or with
    /// `<`, a control character other than tab or a character beyond
    /// Latin-1 (see [`Response::set_status`]). A later `set_status` (or an
    /// error page) puts the standard reason back.
    pub fn set_status_with_reason(&mut self, status: u16, reason: &str) {
        self.set_status_reason(status, Some(reason));
    }

    fn set_status_reason(&mut self, status: u16, reason: Option<&str>) {
        if !self.head_writable("set_status") {
            return;
        }
        if valid_status(status) {
            self.p.response.set_status(status, reason);
        } else {
            log::error!(
                "set_status({status}) on {}: not in 100-599",
                self.request.uri()
            );
            self.send_error(500);
        }
    }

    /// The status code so far.
    pub fn get_status(&self) -> u16 {
        self.p.response.status()
    }

    /// Replaces any header `name` with `name: value`.
    ///
    /// A `value` with a control character other than tab (CR, LF, NUL,
    /// DEL...) is a handler bug: it is logged and the request answers 500,
    /// as Tornado's `set_header` raises `ValueError` ("Unsafe header
    /// value"). Characters beyond ASCII are sent in UTF-8, where Tornado
    /// sends U+0080–U+00FF as Latin-1 bytes and raises for the others. A
    /// `name` that is not an HTTP token is refused with a warning (see
    /// [`Response::set_header`]; Tornado sends `X A: v` as it is).
    ///
    /// `Content-Length`, `Transfer-Encoding` and `Connection` are the HTTP
    /// layer's, on purpose unlike Tornado, which sends what the handler
    /// set: an answer sent whole says the length of its body (Tornado
    /// sends the handler's `Content-Length` and cuts the connection when
    /// the body does not match it), never `Transfer-Encoding` beside it
    /// (RFC 9112 §6.1; Tornado sends both), and `Connection: close` closes
    /// the connection after the answer (Tornado keeps it open after saying
    /// so). A `Content-Length` set before
    /// [`AsyncResponse::flush`](super::AsyncResponse::flush) is kept, and
    /// a `HEAD` answer without a body keeps it, as in Tornado.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if self.head_writable("set_header") && self.safe_header_value("set_header", name, &value) {
            self.p.response.set_header(name, value);
        }
    }

    /// Adds a header line, keeping existing ones with the same name. The
    /// value is checked as [`set_header`](Self::set_header)'s.
    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if self.head_writable("add_header") && self.safe_header_value("add_header", name, &value) {
            self.p.response.add_header(name, value);
        }
    }

    /// Whether `value` may be sent as it is ([`header_value_safe`]); else
    /// answers 500.
    fn safe_header_value(&mut self, call: &str, name: &str, value: &str) -> bool {
        let safe = header_value_safe(call, name, value, self.request);
        if !safe {
            self.send_error(500);
        }
        safe
    }

    /// Removes every header `name`.
    pub fn clear_header(&mut self, name: &str) {
        if self.head_writable("clear_header") {
            self.p.response.clear_header(name);
        }
    }

    /// Starts the response over (Tornado's `clear()`): status 200, no body
    /// (nor a file from [`write_file`](Self::write_file)), the headers back
    /// to a new response's (`Content-Type: text/html; charset=UTF-8`).
    /// Cookies set so far stay, as in Tornado, which keeps them apart from
    /// the headers. Tornado's `clear()` also calls `set_default_headers`;
    /// a handler that wants them again calls its own
    /// `self.set_default_headers(cx)` after this. Ignored (and logged) once
    /// the response is finished or its head was sent.
    pub fn clear(&mut self) {
        if self.head_writable("clear") {
            self.p.response = fresh_response();
        }
    }

    /// The application's `login_url` (Tornado's `get_login_url`).
    pub fn get_login_url(&self) -> Option<&'a str> {
        self.shared.settings.login_url.as_deref()
    }

    /// What Tornado's `@authenticated` does for a visitor who is not
    /// logged in: a `GET` or `HEAD` is redirected (302) to `login_url`
    /// with `?next=` and this request's URI (the full URL when `login_url`
    /// is absolute; nothing added when `login_url` has a query already),
    /// any other method gets 403. Without a `login_url`, 500 and an error
    /// logged, as Tornado raises. Finishes the response; call it from
    /// [`prepare`](super::RequestHandler::prepare) or a method when the
    /// visitor is unknown (`get_secure_cookie("user")` is `None`).
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Account { user: String }
    ///
    /// impl RequestHandler for Account {
    ///     fn prepare(&mut self, cx: &mut RequestContext<'_>) {
    ///         match cx.get_secure_cookie("user") {
    ///             Some(u) => self.user = String::from_utf8_lossy(&u).into_owned(),
    ///             None => cx.require_login(),
    ///         }
    ///     }
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
    ///         cx.write(format!("hello {}", self.user));
    ///     }
    /// }
    /// ```
    #[doc(alias = "authenticated")]
    pub fn require_login(&mut self) {
        let method = self.request.method();
        if method != "GET" && method != "HEAD" {
            self.send_error(403);
            return;
        }
        let Some(login) = self.get_login_url() else {
            log::error!(
                "require_login on {} needs the login_url setting",
                self.request.uri()
            );
            self.send_error(500);
            return;
        };
        let url = login_redirect_url(login, self.request);
        self.redirect(&url, false);
    }

    /// Redirects to `url`: 301 when `permanent`, else 302, with `Location`;
    /// finishes the response. Its body is what was written before, as
    /// Tornado's `redirect` finishes with it (usually nothing).
    pub fn redirect(&mut self, url: &str, permanent: bool) {
        self.redirect_with_status(url, if permanent { 301 } else { 302 });
    }

    /// Tornado's `@removeslash`: a `GET` or `HEAD` of a path ending in `/`
    /// is redirected (301) to the path without its trailing slashes (the
    /// query kept); another method on such a path is answered 404; `true`
    /// when it answered, so that the method returns at once. `/` itself is
    /// left alone, and a path a browser would read as another host
    /// (`//example.com/`) is answered 403 rather than redirected there. Pair
    /// it with a route such as `r"/foo/*"`.
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Foo;
    /// impl RequestHandler for Foo {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         if cx.remove_slash() {
    ///             return;
    ///         }
    ///         cx.write("foo");
    ///     }
    /// }
    /// ```
    pub fn remove_slash(&mut self) -> bool {
        let path = self.request.path();
        if !path.ends_with('/') {
            return false;
        }
        let to = path.trim_end_matches('/').to_string();
        self.slash_redirect(to)
    }

    /// Tornado's `@addslash`: a `GET` or `HEAD` of a path without a
    /// trailing `/` is redirected (301) to it with one (the query kept);
    /// another method on such a path is answered 404; `true` when it
    /// answered. As [`remove_slash`](Self::remove_slash), a path a browser
    /// would read as another host is answered 403.
    pub fn add_slash(&mut self) -> bool {
        let path = self.request.path();
        if path.ends_with('/') {
            return false;
        }
        let to = format!("{path}/");
        self.slash_redirect(to)
    }

    /// The redirect of [`remove_slash`](Self::remove_slash) and
    /// [`add_slash`](Self::add_slash) to `to` (the path only), or its 404
    /// or 403; `false` for `remove_slash`'s `/`.
    fn slash_redirect(&mut self, mut to: String) -> bool {
        if !matches!(self.request.method(), "GET" | "HEAD") {
            self.send_error(404);
            return true;
        }
        if is_protocol_relative(&to) {
            self.refuse(403, "cannot redirect path with two initial slashes");
            return true;
        }
        if to.is_empty() {
            return false;
        }
        let query = self.request.query();
        if !query.is_empty() {
            to.push('?');
            to.push_str(query);
        }
        self.redirect(&to, true);
        true
    }

    /// [`redirect`](Self::redirect) with Tornado's `status` argument: 303
    /// after a form is posted (the browser then GETs `url`), 307 or 308
    /// to keep the method and body. A status outside 300–399 answers 500
    /// and logs an error (Tornado asserts), and so does a `url` with a
    /// control character (CR, LF...), as Tornado's `set_header` raises.
    /// Once the head went out ([`AsyncResponse::flush`](super::AsyncResponse::flush))
    /// the redirect cannot be sent: it is logged at `error` and the answer
    /// ends with what was written, as Tornado's exception ends it.
    pub fn redirect_with_status(&mut self, url: &str, status: u16) {
        // After a flush the status is out: Tornado raises "Cannot redirect
        // after headers have been written", which ends the answer with what
        // was written, as `send_error` then does.
        if self.p.head_sent && !self.p.finished {
            log::error!(
                "redirect({url:?}) on {} after its head was sent: the answer ends without it",
                self.request.uri()
            );
            self.p.finished = true;
            return;
        }
        if !self.writable("redirect") {
            return;
        }
        if !(300..=399).contains(&status) {
            log::error!("redirect({url:?}) with status {status}: not a 3xx status");
            return self.send_error(500);
        }
        if !self.safe_header_value("redirect", "Location", url) {
            return;
        }
        self.p.response.set_status(status, None);
        self.p.response.set_header("Location", url);
        self.p.finished = true;
    }

    /// Answers with Tornado's error page for `status` (`<title>404: Not
    /// Found</title>`), discarding headers and body written so far (cookies
    /// set with [`set_cookie`](Self::set_cookie) are kept, as in Tornado);
    /// finishes the response. A status outside 200–599 cannot end a
    /// request: the answer is the 500 page, logged at `error` (Tornado
    /// sends a 600 as `600 Unknown`, which RFC 9110 §15 calls invalid).
    /// Once the head went out ([`AsyncResponse::flush`](super::AsyncResponse::flush))
    /// the page cannot be sent: the error is logged and the answer ends
    /// with what was written, its status the one sent (Tornado's "Cannot
    /// send error response after headers written", then `finish()`).
    pub fn send_error(&mut self, status: u16) {
        self.send_error_message(status, None);
    }

    /// Like [`send_error`](Self::send_error), with `message` (HTML-escaped)
    /// after the reason in the page: `400: Bad Request: Invalid date`.
    /// Tornado's pages carry no such message (an `HTTPError`'s message is
    /// only logged, and its `reason=` replaces `Bad Request`): for
    /// Tornado's page of a missing argument use
    /// [`require_argument`](Self::require_argument).
    pub fn send_error_message(&mut self, status: u16, message: Option<&str>) {
        if self.p.head_sent && !self.p.finished {
            // Tornado: "Cannot send error response after headers
            // written", then `finish()`: what was written goes out, the
            // status stays the one sent.
            log::error!(
                "send_error({status}) on {} after its head was sent: the answer ends without the error page",
                self.request.uri()
            );
            self.p.finished = true;
            return;
        }
        if self.writable("send_error") {
            self.p.response = Response::error(status, message);
            self.p.finished = true;
            self.p.error_status = Some(status);
        }
    }

    /// Answers 405 with an `Allow` header listing `allowed` minus the
    /// methods found unimplemented during this request: those of
    /// [`HANDLER_METHODS`] first, in their order, then the others
    /// (served by [`RequestHandler::other_method`](super::RequestHandler::other_method))
    /// in the order of `allowed`, each once.
    pub fn method_not_allowed(&mut self, allowed: &[&str]) {
        let mut allow: Vec<&str> = Vec::with_capacity(allowed.len());
        let builtin = HANDLER_METHODS.iter().filter(|m| allowed.contains(m));
        let others = allowed.iter().filter(|m| !HANDLER_METHODS.contains(m));
        for &m in builtin.chain(others) {
            if !allow.contains(&m) && !self.p.unimplemented.iter().any(|u| **u == *m) {
                allow.push(m);
            }
        }
        self.send_error(405);
        if self.p.response.status() == 405 {
            self.p.response.set_header("Allow", allow.join(", "));
        }
    }

    /// What the default [`RequestHandler`](super::RequestHandler) methods
    /// call: records `method` as unimplemented and answers 405 with `Allow`
    /// built from `supported` minus the unimplemented methods.
    pub fn unimplemented_method(&mut self, method: &str, supported: &[&str]) {
        log::debug!(
            "405: {method} is listed in supported_methods() but not implemented ({})",
            self.request.uri()
        );
        self.p.unimplemented.push(method.into());
        self.method_not_allowed(supported);
    }

    /// Renders the template `file` from `template_path` with `vars` (see
    /// [`Template`](super::Template) for the syntax) as the body, and
    /// finishes the response. A missing file or a template error answers
    /// 500 and is logged (the cause appears in the page in `debug` mode);
    /// `{{ handler.get_argument(name) }}` of an argument the request does
    /// not have answers 400, logged as [`require_argument`](Self::require_argument)'s
    /// (Tornado's `MissingArgumentError`, [`TemplateError::Http`]).
    /// Templates are cached after their first use unless `debug` is on.
    /// `file` must be relative, without `.` or `..` segments (else 500),
    /// so a name taken from the request cannot read outside `template_path`.
    ///
    /// Every value is a string; for lists, numbers, nested fields and
    /// `{% for %}` over them, use [`render_with`](Self::render_with).
    ///
    /// `{{ static_url("css/app.css") }}` in the template prints
    /// [`static_url`](Self::static_url)`("css/app.css")`, as in Tornado's
    /// template namespace (here, in `render_with` and in `render_string`);
    /// a path out of `static_path` answers 403, as Tornado's `HTTPError`
    /// does ([`TemplateError::Http`]).
    pub fn render(&mut self, file: &str, vars: &[(&str, &str)]) {
        if !self.writable("render") {
            return;
        }
        let result = self
            .shared
            .template(file)
            .and_then(|t| t.render_pairs_in(vars, Some(&*self)));
        self.finish_render(file, result);
    }

    /// Like [`render`](Self::render), with the fields of `value` as the
    /// template's names (Tornado's `self.render("page.html", **kwargs)`):
    /// `value` is serialized with `serde_json` and must be a JSON object —
    /// a struct, a map, `serde_json::json!({..})` — or the request is
    /// answered 500 and the cause logged. Templates can then print nested
    /// fields (`{{ user.name }}`), test them (`{% if %}`) and loop over
    /// arrays and objects (`{% for %}`), and link static files with
    /// `{{ static_url("app.css") }}` ([`static_url`](Self::static_url)).
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// struct Message { id: u64, body: String }
    ///
    /// struct Chat { history: Vec<Message> }
    ///
    /// impl RequestHandler for Chat {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         // index.html: <link rel="stylesheet" href="{{ static_url("chat.css") }}">
    ///         //   {% for message in messages %}
    ///         //   <div id="m{{ message.id }}">{{ message.body }}</div>{% end %}
    ///         cx.render_with("index.html", &serde_json::json!({ "messages": self.history }));
    ///     }
    /// }
    /// ```
    pub fn render_with(&mut self, file: &str, value: &(impl Serialize + ?Sized)) {
        if !self.writable("render_with") {
            return;
        }
        let result = self.render_string(file, value);
        self.finish_render(file, result);
    }

    /// Adds `name` to the namespace of every template this request renders
    /// (`render`, `render_with`, `render_string`, and the templates of its
    /// UI modules): what a Tornado handler does by overriding
    /// `get_template_namespace`, e.g. in `prepare` for every page of a
    /// base handler. A render's own values of the same name win, as
    /// Tornado's keyword arguments update the namespace; the name wins over
    /// the built-in `current_user`, `request` and `locale`. A value serde
    /// cannot serialize is logged and not added.
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Page;
    /// impl RequestHandler for Page {
    ///     fn prepare(&mut self, cx: &mut RequestContext<'_>) {
    ///         cx.set_template_value("site_name", "The Daily");
    ///     }
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         // page.html: <title>{{ title }} - {{ site_name }}</title>
    ///         cx.render_with("page.html", &serde_json::json!({"title": "Home"}));
    ///     }
    /// }
    /// ```
    pub fn set_template_value(&mut self, name: &str, value: impl Serialize) {
        if let Some(v) = template_value(name, value) {
            self.p.template_values.insert(name.to_string(), v);
        }
    }

    /// The template `file` rendered with the fields of `value`, as
    /// [`render_with`](Self::render_with) would send it, without touching
    /// the response (Tornado's `render_string`): for a fragment sent over a
    /// WebSocket, or a page assembled from several templates.
    /// `{{ static_url(..) }}` prints [`static_url`](Self::static_url)'s URL.
    ///
    /// # Errors
    /// The template could not be loaded or parsed ([`TemplateError::Load`]
    /// for a missing file), `value` is not a JSON object, or rendering
    /// failed ([`TemplateError::Http`] for Tornado's `HTTPError`, whose
    /// status a handler may answer, as `render_with` does).
    ///
    /// [`TemplateError::Load`]: super::TemplateError::Load
    /// [`TemplateError::Http`]: super::TemplateError::Http
    pub fn render_string(
        &self,
        file: &str,
        value: &(impl Serialize + ?Sized),
    ) -> Result<String, TemplateError> {
        self.shared
            .template(file)?
            .render_with_in(value, Some(self))
    }

    /// Sends a rendered page, with the resources of the UI modules the
    /// request used put in (Tornado's `render`), or the render's error:
    /// its status for a [`TemplateError::Http`] (Tornado's `HTTPError`:
    /// a missing `handler.get_argument`, a `static_url` or a UI module's
    /// file out of `static_path`) as its handler answers one, else 500.
    fn finish_render(&mut self, file: &str, result: Result<String, TemplateError>) {
        let refused = std::cell::Cell::new(None);
        let result = match result {
            Ok(html) => self
                .p
                .modules
                .insert_resources(html, &|path| {
                    self.static_url(path).unwrap_or_else(|e| {
                        refused.set(Some((e.status(), e.to_string())));
                        String::new()
                    })
                })
                .map_err(|e| format!("template {file:?}: {e}")),
            Err(e) => match e.innermost() {
                TemplateError::Http { status, message } => {
                    refused.set(Some((*status, message.to_string())));
                    Ok(String::new())
                }
                _ => Err(format!("template {file:?}: {e}")),
            },
        };
        if let Some((status, why)) = refused.take() {
            self.refuse(status, &why);
            return;
        }
        match result {
            Ok(html) => {
                self.p.response.write(html);
                self.p.finished = true;
            }
            Err(e) => {
                let e = format!("template {file:?}: {e}");
                log::error!("render on {}: {e}", self.request.uri());
                let detail = self.shared.settings.debug.then_some(e.as_str());
                self.send_error_message(500, detail);
            }
        }
    }

    fn is_form(&self) -> bool {
        *self
            .p
            .form_body
            .get_or_init(|| is_urlencoded(&request_content_type(self.request)))
    }

    /// Every value of the query argument `name`, in order.
    pub fn get_query_arguments(&self, name: &str) -> Vec<String> {
        argument_values(self.request.query_arguments(name), true)
    }

    /// The body values of `name` as received (not cleaned).
    fn body_values(&self, name: &str) -> Vec<String> {
        body_values_of(
            self.request,
            self.p.multipart.as_ref(),
            || self.is_form(),
            name,
        )
    }

    /// The form body [`parse_body`](Self::parse_body) parsed, for a
    /// request answered without a context (a WebSocket handshake's
    /// `prepare`).
    pub(crate) fn take_form_body(&mut self) -> FormBody {
        FormBody(self.p.multipart.take())
    }

    /// The values of `name` as received (not cleaned): the query's, then
    /// the body's (Tornado's `request.arguments[name]`).
    fn raw_arguments(&self, name: &str) -> Vec<String> {
        let mut all = self.request.query_arguments(name);
        all.extend(self.body_values(name));
        all
    }

    /// The last value of the query argument `name`.
    pub fn get_query_argument(&self, name: &str) -> Option<String> {
        last_argument(self.request.query_arguments(name), true)
    }

    /// Every value of the body argument `name`, in order: from an
    /// `application/x-www-form-urlencoded` body, or the parts without a
    /// filename of a `multipart/form-data` one (files are
    /// [`get_files`](Self::get_files)'). Cleaned as query values are.
    pub fn get_body_arguments(&self, name: &str) -> Vec<String> {
        argument_values(self.body_values(name), true)
    }

    /// The last value of the body argument `name`.
    pub fn get_body_argument(&self, name: &str) -> Option<String> {
        last_argument(self.body_values(name), true)
    }

    /// Every body argument as `(name, value)`, in the body's order
    /// (Tornado's `self.request.body_arguments`, flattened): what
    /// [`get_body_arguments`](Self::get_body_arguments) gives name by name.
    /// Lazy: a body of millions of tiny fields is decoded a pair at a
    /// time, never kept whole as strings.
    pub fn body_arguments(&self) -> impl Iterator<Item = (String, String)> + '_ {
        let body = self.request.body();
        let fields = self.p.multipart.iter().flat_map(|parts| &parts.fields);
        let parts = fields.map(move |(n, r)| {
            let value = String::from_utf8_lossy(&body[r.clone()]).into_owned();
            (n.clone(), clean_argument(value))
        });
        let form = self.p.multipart.is_none() && self.is_form();
        let urlencoded = if form { body } else { &[] };
        let pairs = parse_qs_bytes(urlencoded).map(|(k, v)| (k, clean_argument(v)));
        parts.chain(pairs)
    }

    /// The files uploaded as the form field `name` of a
    /// `multipart/form-data` body, in order (Tornado's
    /// `self.request.files[name]`): the parts with a non-empty `filename`.
    /// Empty for another body.
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// // <form method="post" enctype="multipart/form-data">
    /// //   <input type="file" name="photo" multiple> <input name="caption">
    /// struct Upload;
    /// impl RequestHandler for Upload {
    ///     fn supported_methods(&self) -> &'static [&'static str] {
    ///         &["POST"]
    ///     }
    ///     fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let caption = cx.get_argument("caption").unwrap_or_default();
    ///         let sizes: Vec<String> = cx
    ///             .get_files("photo")
    ///             .iter()
    ///             .map(|f| format!("{} ({}, {} bytes)", f.filename, f.content_type, f.body.len()))
    ///             .collect();
    ///         cx.write(format!("{caption}: {}", sizes.join(", ")));
    ///     }
    /// }
    /// ```
    pub fn get_files(&self, name: &str) -> Vec<HttpFile<'a>> {
        self.files()
            .into_iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, f)| f)
            .collect()
    }

    /// Every uploaded file with its field name, in the body's order
    /// (Tornado's `self.request.files`, flattened).
    pub fn files(&self) -> Vec<(&str, HttpFile<'a>)> {
        let body: &'a [u8] = self.request.body();
        self.p.multipart.as_ref().map_or_else(Vec::new, |parts| {
            parts
                .files
                .iter()
                .map(|(name, filename, ctype, r)| {
                    let file = HttpFile {
                        filename: filename.clone(),
                        content_type: ctype.clone(),
                        body: &body[r.clone()],
                    };
                    (name.as_str(), file)
                })
                .collect()
        })
    }

    /// Tornado's `_parse_body`, before `check_xsrf_cookie` and `prepare`:
    /// a `multipart/form-data` body is split into its fields and files. A
    /// body Tornado refuses (no final boundary, more than 100 parts, a
    /// part without headers, name or `form-data` disposition, ...) is
    /// answered 400 and logged with Tornado's reason, as is a form body
    /// with a `Content-Encoding` (a gzip one reaches here decompressed,
    /// its header renamed, with the `decompress_request` setting). Returns
    /// whether the request goes on.
    pub(crate) fn parse_body(&mut self) -> bool {
        let ctype = request_content_type(self.request);
        let ctype = ctype.as_ref();
        // Most requests (a GET, JSON) end here, after one header lookup.
        if !is_form_type(ctype) {
            return true;
        }
        let body = self.request.body();
        // Every line of it, as Tornado's `headers["Content-Encoding"]`
        // joins them: one with a gzip line among others was not consumed.
        // Read as Latin-1 too, so that the warning quotes it as Tornado's.
        let result = match self.request.header_joined_latin1("Content-Encoding") {
            Some(coding) => Err(format!("Unsupported Content-Encoding: {coding}")),
            None if is_urlencoded(ctype) && too_many_fields(body) => {
                Err("Invalid x-www-form-urlencoded body: Max number of fields exceeded".into())
            }
            None => multipart::parse(ctype, body)
                .map_err(|e| format!("Invalid multipart/form-data: {e}")),
        };
        match result {
            Ok(parts) => {
                self.p.multipart = parts;
                true
            }
            Err(why) => {
                self.refuse(400, &format!("Invalid body: {why}"));
                false
            }
        }
    }

    /// Every value of `name`: query values, then body values (Tornado's
    /// `request.arguments`). Values are percent-decoded (`+` is a space),
    /// control characters become spaces and whitespace is stripped
    /// (Tornado's default `strip=True`; for `strip=False`, see
    /// [`get_arguments_unstripped`](Self::get_arguments_unstripped)).
    /// Bytes that are not UTF-8 become U+FFFD, where Tornado's
    /// `get_argument` raises a 400: check for `'\u{FFFD}'` to refuse them.
    ///
    /// A percent-encoded name is looked up as UTF-8 text: `?%C3%A9=1` is
    /// the argument `é`. Tornado's `parse_qs_bytes` reads the names of a
    /// query or urlencoded body as Latin-1, so there it is `Ã©` (and
    /// `?%E9=1` is `é`), while a multipart field's name is UTF-8; cyclone
    /// reads them all as UTF-8. Compared with Tornado in
    /// `tests/peers/interop_tornado_arguments.py`.
    pub fn get_arguments(&self, name: &str) -> Vec<String> {
        argument_values(self.raw_arguments(name), true)
    }

    /// [`get_arguments`](Self::get_arguments) with the whitespace around
    /// each value kept (Tornado's `get_arguments(name, strip=False)`):
    /// control characters other than whitespace still become spaces, as
    /// there. For a value whose spaces matter (a password, a text area's
    /// lines).
    pub fn get_arguments_unstripped(&self, name: &str) -> Vec<String> {
        argument_values(self.raw_arguments(name), false)
    }

    /// The last value of `name` from the query or the form body (the body
    /// wins when both have it, as the last value does in Tornado).
    pub fn get_argument(&self, name: &str) -> Option<String> {
        last_argument(self.raw_arguments(name), true)
    }

    /// [`get_argument`](Self::get_argument) for an argument the request
    /// must carry (Tornado's `get_argument(name)` without a default): when
    /// it has none, the answer is Tornado's `MissingArgumentError`, the
    /// plain `400: Bad Request` page (the name is not in it but with
    /// `debug`: `400: Bad Request: Missing argument name`, where Tornado's
    /// debug page is the traceback), logged at
    /// `warn` as `400 POST /uri (ip): Missing argument name`, and `None`
    /// comes back: return from the handler.
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct NewMessage;
    /// impl RequestHandler for NewMessage {
    ///     fn supported_methods(&self) -> &'static [&'static str] {
    ///         &["POST"]
    ///     }
    ///     fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let Some(body) = cx.require_argument("body") else {
    ///             return; // answered 400
    ///         };
    ///         cx.write(format!("got {body}"));
    ///     }
    /// }
    /// ```
    pub fn require_argument(&mut self, name: &str) -> Option<String> {
        let value = self.get_argument(name);
        if value.is_none() {
            self.refuse(400, &format!("Missing argument {name}"));
        }
        value
    }

    /// The value of the request cookie `name`. When the request carries
    /// the name more than once, the first is returned: browsers send the
    /// cookie with the longest matching path first (RFC 6265 §5.4), as Go's
    /// `Request.Cookie` and Express's `cookie` read it. (Tornado's
    /// `SimpleCookie` keeps the last.)
    pub fn get_cookie(&self, name: &str) -> Option<String> {
        self.request.cookie(name)
    }

    /// Sets the cookie `name=value; Path=/` (Tornado's default path).
    /// A name that is not an RFC 6265 token (`:` aside, as Python's
    /// `http.cookies` takes it) or is an attribute name `http.cookies`
    /// reserves (`path`, `expires`, `domain`, `max-age`, `secure`,
    /// `httponly`, `samesite`, `version`, `comment`, in any case), or a
    /// value holding control characters,
    /// spaces, `;`, `,` or `"`, is refused and logged at `error`. For such
    /// a name and for control characters and spaces in the value the
    /// answer is 500, as Tornado raises (`CookieError`, `ValueError`).
    /// Tornado sends a value with `;`, `,` or `"`
    /// in Python's quoted form (`q="a\054b"`), outside RFC 6265 §4.1.1's
    /// `cookie-value` (no `\`) and unreadable to a page's scripts, which
    /// get it as it is: here it is only refused (no cookie, the answer
    /// goes on); encode such a value first (`url_escape`, base64).
    /// Setting (or clearing) a cookie again replaces the earlier value, as
    /// in Tornado: one `Set-Cookie` per name.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.set_cookie_with(name, value, &CookieOptions::default());
    }

    /// [`set_cookie`](Self::set_cookie) with Tornado's keyword arguments
    /// (`domain`, `path`, `expires`, `expires_days`, `max_age`, `httponly`,
    /// `secure`, `samesite`, `partitioned`): see [`CookieOptions`].
    /// Options that cannot be written (a domain or path holding `;`,
    /// spaces or control characters) are refused and logged at `error`,
    /// and the answer is 500, as Tornado raises for them (a domain with
    /// `,` or `"`, which Tornado writes, is only refused).
    ///
    /// ```
    /// use cyclone::web::{CookieOptions, RequestContext, RequestHandler, SameSite};
    ///
    /// struct Theme;
    /// impl RequestHandler for Theme {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         // Tornado: self.set_cookie("theme", "dark", expires_days=365, httponly=True)
    ///         let year = CookieOptions {
    ///             expires_days: Some(365.0),
    ///             httponly: true,
    ///             samesite: Some(SameSite::Lax),
    ///             ..CookieOptions::default()
    ///         };
    ///         cx.set_cookie_with("theme", "dark", &year);
    ///     }
    /// }
    /// ```
    pub fn set_cookie_with(&mut self, name: &str, value: &str, options: &CookieOptions) {
        if self.writable("set_cookie") {
            self.push_cookie_line("set_cookie", name, value, options);
        }
    }

    /// Sets the cookie `name` to `value` signed with the application's
    /// `cookie_secret` and timestamped (Tornado's `set_secure_cookie`, 6.3's
    /// `set_signed_cookie`; Tornado's version 2 format, see
    /// [`signed`](super::signed)), expiring in 30 days, with `Path=/`. The
    /// value may be any bytes; it is signed, not encrypted. With a
    /// dictionary of secrets (key rotation) it is signed with the secret
    /// of the `key_version` setting. Without a `cookie_secret`, or with a
    /// dictionary and no `key_version` of it, the answer is 500 and an
    /// error is logged, as Tornado raises.
    #[doc(alias = "set_signed_cookie")]
    pub fn set_secure_cookie(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.set_secure_cookie_expiring(name, value, Some(30.0));
    }

    /// [`set_secure_cookie`](Self::set_secure_cookie) with Tornado's
    /// `expires_days`: `None` for a cookie that lasts as long as the
    /// browser session. (How old a value [`get_secure_cookie`](Self::get_secure_cookie)
    /// accepts is decided when it is read: 31 days.)
    pub fn set_secure_cookie_expiring(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
        expires_days: Option<f64>,
    ) {
        let options = CookieOptions {
            expires_days,
            ..CookieOptions::default()
        };
        self.set_secure_cookie_with(name, value, &options);
    }

    /// [`set_secure_cookie`](Self::set_secure_cookie) with all of
    /// Tornado's keyword arguments ([`CookieOptions`]). `expires_days` is
    /// taken as given: where Tornado's default is 30 days, `None` here
    /// means a session cookie, so say `Some(30.0)` for Tornado's.
    ///
    /// ```
    /// use cyclone::web::{CookieOptions, RequestContext, RequestHandler};
    ///
    /// struct Login;
    /// impl RequestHandler for Login {
    ///     fn supported_methods(&self) -> &'static [&'static str] {
    ///         &["POST"]
    ///     }
    ///     fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         // Tornado: self.set_secure_cookie("user", name, httponly=True, secure=True)
    ///         let name = cx.get_argument("name").unwrap_or_default();
    ///         let session = CookieOptions {
    ///             expires_days: Some(30.0),
    ///             httponly: true,
    ///             secure: true,
    ///             ..CookieOptions::default()
    ///         };
    ///         cx.set_secure_cookie_with("user", name, &session);
    ///         cx.redirect("/", false);
    ///     }
    /// }
    /// ```
    #[doc(alias = "set_signed_cookie")]
    pub fn set_secure_cookie_with(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
        options: &CookieOptions,
    ) {
        let settings = &self.shared.settings;
        let secret = settings.cookie_secret.as_ref();
        let Some(signed) = super::signed::cookie_value(secret, settings.key_version, name, value)
        else {
            self.send_error(500);
            return;
        };
        if self.writable("set_secure_cookie") {
            self.push_cookie_line("set_secure_cookie", name, &signed, options);
        }
    }

    /// The value of the signed cookie `name` if it was signed with the
    /// application's `cookie_secret` for this name less than 31 days ago
    /// (Tornado's `get_secure_cookie`, 6.3's `get_signed_cookie`): bytes,
    /// as in Tornado. Cookies signed by a Tornado application with the
    /// same secret are read too (versions 1 and 2). With a dictionary of
    /// secrets (key rotation), a cookie signed with any of them is read
    /// (version 2 only); see
    /// [`get_secure_cookie_key_version`](Self::get_secure_cookie_key_version)
    /// to sign old ones again. `None` for a missing, forged, altered or
    /// expired cookie; without a `cookie_secret`, `None` and an error
    /// logged.
    #[doc(alias = "get_signed_cookie")]
    pub fn get_secure_cookie(&self, name: &str) -> Option<Vec<u8>> {
        self.get_secure_cookie_max_age(name, super::signed::DEFAULT_MAX_AGE_DAYS)
    }

    /// [`get_secure_cookie`](Self::get_secure_cookie) with Tornado's
    /// `max_age_days`.
    pub fn get_secure_cookie_max_age(&self, name: &str, max_age_days: f64) -> Option<Vec<u8>> {
        self.get_secure_cookie_with(
            name,
            max_age_days,
            super::signed::DEFAULT_SIGNED_VALUE_MIN_VERSION,
        )
    }

    /// [`get_secure_cookie`](Self::get_secure_cookie) with both of
    /// Tornado's keyword arguments: `max_age_days` (31 by default) and
    /// `min_version`, the oldest format accepted (1 by default; 2 refuses
    /// version 1 cookies, whose signature does not cover the field
    /// boundaries; above 2 refuses everything and logs an error, where
    /// Tornado raises).
    ///
    /// ```no_run
    /// # use cyclone::web::RequestContext;
    /// # fn f(cx: &RequestContext<'_>) {
    /// // Tornado: self.get_secure_cookie("user", max_age_days=7, min_version=2)
    /// let user = cx.get_secure_cookie_with("user", 7.0, 2);
    /// # }
    /// ```
    pub fn get_secure_cookie_with(
        &self,
        name: &str,
        max_age_days: f64,
        min_version: u32,
    ) -> Option<Vec<u8>> {
        let secret = self.cookie_secret("get_secure_cookie", name)?;
        secret.decode_signed_value_at(
            name,
            &self.request.cookie(name)?,
            max_age_days,
            super::signed::now_secs_f64(),
            min_version,
        )
    }

    /// The key version the signed cookie `name` names (Tornado's
    /// `get_secure_cookie_key_version`, 6.3's
    /// `get_signed_cookie_key_version`; see
    /// [`signed::get_signature_key_version`](super::signed::get_signature_key_version)):
    /// `None` without the cookie, for a version 1 cookie or one that does
    /// not parse, and without a `cookie_secret` (an error logged, as
    /// Tornado raises). The signature is not checked: ask once
    /// [`get_secure_cookie`](Self::get_secure_cookie) accepted the cookie,
    /// to sign it again with the current key.
    ///
    /// ```
    /// use cyclone::web::{CookieSecret, RequestContext, RequestHandler};
    ///
    /// struct Account;
    /// impl RequestHandler for Account {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
    ///         let Some(user) = cx.get_secure_cookie("user") else {
    ///             return cx.send_error(403);
    ///         };
    ///         // Signed with a retired key: sign it again with the current one.
    ///         let rotated = matches!(cx.settings().cookie_secret, Some(CookieSecret::Versioned(_)));
    ///         if rotated && cx.get_secure_cookie_key_version("user") != cx.settings().key_version {
    ///             cx.set_secure_cookie("user", &user);
    ///         }
    ///         cx.write(user);
    ///     }
    /// }
    /// ```
    #[doc(alias = "get_signed_cookie_key_version")]
    pub fn get_secure_cookie_key_version(&self, name: &str) -> Option<u32> {
        self.cookie_secret("get_secure_cookie_key_version", name)?;
        super::signed::get_signature_key_version(&self.request.cookie(name)?)
    }

    /// The application's `cookie_secret` for `call` on cookie `name`
    /// ([`signed::secret_for`](super::signed::secret_for): none if empty,
    /// logged when missing).
    fn cookie_secret(&self, call: &str, name: &str) -> Option<&'a CookieSecret> {
        super::signed::secret_for(self.shared.settings.cookie_secret.as_ref(), call, name)
    }

    /// Deletes the cookie `name` (an empty value that expired in 1970, and
    /// `Max-Age=0`: `c=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0;
    /// Path=/`, where Tornado writes `c=""; expires=<a year ago>; Path=/`,
    /// which a browser handles alike). An invalid name (as for
    /// [`set_cookie`](Self::set_cookie)) is refused and logged at
    /// `error`: it could add attributes to the header. Tornado's
    /// `clear_cookie` raises there (a 500) as its `set_cookie` does;
    /// cyclone's answer goes on, deliberately, because
    /// [`clear_all_cookies`](Self::clear_all_cookies) passes the names a
    /// visitor sent, and a visitor's cookie name must not turn the page
    /// into a 500.
    pub fn clear_cookie(&mut self, name: &str) {
        self.clear_cookie_with(name, &CookieOptions::default());
    }

    /// Deletes every cookie the request carried (Tornado's
    /// `clear_all_cookies`), with `Path=/`. Only cookies set with that
    /// path and no domain go: a browser tells the server names only, so
    /// [`clear_all_cookies_with`](Self::clear_all_cookies_with) must repeat
    /// the options they were set with.
    pub fn clear_all_cookies(&mut self) {
        self.clear_all_cookies_with(&CookieOptions::default());
    }

    /// [`clear_all_cookies`](Self::clear_all_cookies) for cookies set with
    /// `options`' `path` and `domain` (Tornado's
    /// `clear_all_cookies(path=, domain=)`).
    pub fn clear_all_cookies_with(&mut self, options: &CookieOptions) {
        for name in self.request.cookie_names() {
            self.clear_cookie_with(&name, options);
        }
    }

    /// Deletes the cookie `name` that was set with `options`' `path` and
    /// `domain` (a browser keeps one cookie per name, domain and path;
    /// Tornado's `clear_cookie(name, path=, domain=)`). Its `httponly`,
    /// `secure` and `samesite` are written too (Tornado 6.3 passes them
    /// on: browsers refuse a `SameSite=None` cookie without `Secure`, even
    /// to delete one); its expiry is not used.
    pub fn clear_cookie_with(&mut self, name: &str, options: &CookieOptions) {
        if let Some(line) = cookie::clear_cookie_line(name, options) {
            if self.writable("clear_cookie") {
                self.push_cookie(name, line);
            }
        }
    }

    /// The logged-in user (Tornado's `self.current_user`): what the
    /// handler's [`get_current_user`](super::RequestHandler::get_current_user)
    /// returned before `prepare`, or what
    /// [`set_current_user`](Self::set_current_user) put in its place.
    /// Templates rendered for the request see it as `current_user`
    /// (`None` when nobody is logged in), unless their values have that
    /// name.
    pub fn current_user(&self) -> Option<&str> {
        self.p.current_user.as_deref()
    }

    /// Sets [`current_user`](Self::current_user), e.g. in `prepare` once
    /// a session was looked up (Tornado: assigning `self.current_user`).
    pub fn set_current_user(&mut self, user: Option<String>) {
        self.p.current_user = user;
    }

    /// The locale to answer in (Tornado's `self.locale`): the handler's
    /// [`get_user_locale`](super::RequestHandler::get_user_locale), or what
    /// [`set_locale`](Self::set_locale) set, else the browser's
    /// ([`get_browser_locale`](Self::get_browser_locale) with `en_US`).
    /// Templates rendered for the request translate with it: `_("..")`,
    /// `pgettext(..)`, `locale.format_date(..)`, `locale.code`. See
    /// [`cyclone::locale`](crate::locale) for loading translations.
    pub fn locale(&self) -> &crate::locale::Locale {
        self.p
            .locale
            .get_or_init(|| self.get_browser_locale(crate::locale::DEFAULT_LOCALE))
    }

    /// Sets [`locale`](Self::locale) (Tornado: assigning `self.locale`).
    pub fn set_locale(&mut self, locale: crate::locale::Locale) {
        self.p.locale = OnceCell::from(locale);
    }

    /// The supported locale closest to the request's `Accept-Language`, or
    /// the one closest to `default` without one (Tornado's
    /// `get_browser_locale`; [`Locale::from_accept_language`](crate::locale::Locale::from_accept_language)).
    pub fn get_browser_locale(&self, default: &str) -> crate::locale::Locale {
        crate::locale::Locale::from_accept_language(self.request.header("Accept-Language"), default)
    }

    /// [`Application::reverse_url`](super::Application::reverse_url) of
    /// this request's application (Tornado's `self.reverse_url`; in
    /// templates, `{{ reverse_url("story", story.id) }}`).
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        self.shared.reverse_url(name, args)
    }

    /// The `ETag` Tornado gives a response by default (its
    /// `compute_etag`): the SHA-1 of the body written so far, in hex,
    /// quoted. [`RequestHandler::compute_etag`](super::RequestHandler::compute_etag)
    /// calls it; `None` for a body sent from a file.
    pub fn compute_etag(&self) -> Option<String> {
        if self.p.response.file_body_len() > 0 {
            return None;
        }
        let digest = sha1_smol::Sha1::from(self.p.response.body()).digest();
        let mut etag = String::with_capacity(42);
        etag.push('"');
        super::signed::push_hex(&mut etag, &digest.bytes());
        etag.push('"');
        Some(etag)
    }

    /// Tornado's `finish()` for a `200` answer to `GET` or `HEAD` without
    /// an `ETag` of its own: whether `etag_of` should be asked for one.
    pub(crate) fn wants_etag(&self) -> bool {
        self.p.response.status() == 200
            && matches!(self.request.method(), "GET" | "HEAD")
            && self.p.response.header("Etag").is_none()
            && self.p.response.file_body_len() == 0
    }

    /// Sets `etag` and, when the request's `If-None-Match` names it (by
    /// the weak comparison, or `*` first, as Tornado's
    /// `check_etag_header`), turns the answer into a `304` without a body.
    pub(crate) fn finish_with_etag(&mut self, etag: String) {
        let matched = self
            .request
            .header_joined("If-None-Match")
            .is_some_and(|tags| if_none_match(&tags, &etag));
        self.p.response.set_header_static("Etag", etag);
        if matched {
            self.p.response.body_mut().clear();
            self.p.response.set_status(304, None);
        }
    }

    /// The `compress_response` transform ([`compress_response`]) over
    /// this answer.
    pub(crate) fn compress_response(&mut self) {
        compress_response(&self.shared.settings, self.request, &mut self.p.response);
    }

    /// The XSRF token of this visitor, as the `_xsrf` form field or the
    /// `X-XSRFToken` header must repeat it when the `xsrf_cookies` setting
    /// is on (Tornado's `xsrf_token`; see [`Settings::xsrf_cookies`]).
    /// Hand it to scripts that send their own requests; forms take
    /// [`xsrf_form_html`](Self::xsrf_form_html).
    ///
    /// The token comes from the request's `_xsrf` cookie (Tornado's
    /// formats, both read). Without a usable one, a random token is made
    /// and the response sets the cookie (`Path=/`, for the browser
    /// session) unless the handler set or cleared that cookie itself. In
    /// the default format ([`XsrfCookieVersion::V2`](super::XsrfCookieVersion))
    /// the text differs on every response, masked afresh, while it
    /// stands for the same token; it is the same throughout one request.
    pub fn xsrf_token(&self) -> &str {
        self.p.xsrf_token.get_or_init(|| {
            xsrf::encode(
                self.raw_xsrf_token(),
                self.shared.settings.xsrf_cookie_version,
            )
        })
    }

    /// `<input type="hidden" name="_xsrf" value="…"/>` with
    /// [`xsrf_token`](Self::xsrf_token), for every form that posts back to
    /// the application when the `xsrf_cookies` setting is on (Tornado's
    /// `xsrf_form_html`). In a template: `{% module xsrf_form_html() %}`
    /// (or `{% raw xsrf_form_html() %}`).
    ///
    /// ```
    /// use cyclone::web::{Application, RequestContext, RequestHandler};
    ///
    /// struct Comment;
    /// impl RequestHandler for Comment {
    ///     fn supported_methods(&self) -> &'static [&'static str] {
    ///         &["GET", "HEAD", "POST"]
    ///     }
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let field = cx.xsrf_form_html();
    ///         cx.write(format!(
    ///             r#"<form method="post">{field}<input name="text"><button>Send</button></form>"#
    ///         ));
    ///     }
    ///     // Reached only with the right token: a forged post gets 403.
    ///     fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let text = cx.get_argument("text").unwrap_or_default();
    ///         cx.write(format!("thanks for {} characters", text.chars().count()));
    ///     }
    /// }
    ///
    /// let app = Application::builder()
    ///     .xsrf_cookies(true)
    ///     .route("/comment", || Comment)
    ///     .build();
    /// ```
    pub fn xsrf_form_html(&self) -> String {
        // The token is hex digits, `|` and a decimal timestamp however the
        // cookie was written (it is re-encoded): nothing to escape.
        format!(
            r#"<input type="hidden" name="_xsrf" value="{}"/>"#,
            self.xsrf_token()
        )
    }

    /// Whether the request repeats its `_xsrf` cookie's token: in the
    /// `_xsrf` argument (form field or query), else in an `X-XSRFToken`
    /// or `X-CSRFToken` header (Tornado's `check_xsrf_cookie`; a header
    /// sent on several lines is their values joined with `,`, as Tornado
    /// reads it, which is no token: refused). If not, it
    /// answers 403 and logs why at `warn`, with Tornado's words (`'_xsrf'
    /// argument missing from POST`, `... has invalid format`, `XSRF cookie
    /// does not match POST argument`), and returns `false`.
    ///
    /// With the `xsrf_cookies` setting on, this runs before `prepare` for
    /// every method but `GET`, `HEAD` and `OPTIONS`, through
    /// [`RequestHandler::check_xsrf_cookie`](super::RequestHandler::check_xsrf_cookie).
    pub fn check_xsrf_cookie(&mut self) -> bool {
        // Several lines of a header are one value joined with `,`, as
        // Tornado's `headers.get` reads them: no token decodes from that,
        // so the request is refused (the first line alone might pass).
        let header = |name| {
            self.request
                .header_joined(name)
                .filter(|v| !v.is_empty())
                .map(std::borrow::Cow::into_owned)
        };
        let submitted = self
            .get_argument("_xsrf")
            .filter(|v| !v.is_empty())
            .or_else(|| header("X-Xsrftoken"))
            .or_else(|| header("X-Csrftoken"));
        match xsrf::check(submitted.as_deref(), self.raw_xsrf_token()) {
            Ok(()) => true,
            Err(why) => {
                self.refuse(403, why);
                false
            }
        }
    }

    /// Tornado's `raise HTTPError(status, why)`: `why` logged at `warn`
    /// with the request (`403 POST /x (10.0.0.1): ...`), the error page
    /// sent. With `debug`, `why` is in the page too (`400: Bad Request:
    /// Missing argument name`), as a template error is in its 500 page:
    /// Tornado's debug `write_error` sends the exception's traceback,
    /// which ends with `HTTPError`'s status and message.
    pub(crate) fn refuse(&mut self, status: u16, why: &str) {
        log::warn!("{}", Refusal(self.request, status, why));
        let detail = self.shared.settings.debug.then_some(why);
        self.send_error_message(status, detail);
    }

    /// The token of the `_xsrf` cookie, or a new one if it has none that
    /// decodes (Tornado's `_get_raw_xsrf_token`).
    fn raw_xsrf_token(&self) -> &xsrf::RawToken {
        self.p.xsrf_raw.get_or_init(|| {
            let now = super::signed::now_secs();
            self.request
                .cookie(&self.shared.settings.xsrf_cookie_name)
                .filter(|c| !c.is_empty())
                .and_then(|c| xsrf::decode(&c, now))
                .unwrap_or_else(|| xsrf::fresh(now))
        })
    }

    /// Sets the XSRF cookie when [`xsrf_token`](Self::xsrf_token) gave out
    /// a token made for this request, unless the handler set or cleared
    /// that cookie itself.
    fn set_new_xsrf_cookie(&mut self) {
        let (Some(token), Some(raw)) = (self.p.xsrf_token.take(), self.p.xsrf_raw.get()) else {
            return;
        };
        let settings = &self.shared.settings;
        let name = settings.xsrf_cookie_name.as_str();
        let set_by_handler = self.p.cookies.iter().any(|c| cookie::sets(c, name));
        if raw.version.is_some() || set_by_handler {
            return;
        }
        if !cookie::name_ok(name) {
            log::error!("xsrf_cookie_name {name:?} is not a valid cookie name: no XSRF cookie set");
            return;
        }
        // Tornado: a logged-in user's token lasts 30 days unless the
        // kwargs say otherwise.
        let mut options = settings.xsrf_cookie_kwargs.clone();
        if self.p.current_user.is_some() && options.expires_days.is_none() {
            options.expires_days = Some(30.0);
        }
        self.push_cookie_line("xsrf_token", name, &token, &options);
    }

    /// Adds the `Set-Cookie` line for `name=value` with `options`, or
    /// refuses it (logged): with a 500 where Tornado's `set_cookie` raises
    /// ([`cookie::set_cookie_call`]).
    fn push_cookie_line(&mut self, call: &str, name: &str, value: &str, options: &CookieOptions) {
        match cookie::set_cookie_call(call, name, value, options) {
            Ok(Some(line)) => self.push_cookie(name, line),
            Ok(None) => {}
            Err(cookie::Raises) => self.send_error(500),
        }
    }

    /// Adds the `Set-Cookie` value `line` for the cookie `name`, replacing
    /// one set before under that name (Tornado's cookies are keyed by name;
    /// RFC 6265 §4.1.1: one `Set-Cookie` per name). `set_default_headers`
    /// runs again on an error page, and its cookies must not double.
    fn push_cookie(&mut self, name: &str, line: String) {
        if self.p.head_sent {
            log::warn!(
                "set_cookie({name:?}) ignored: the head of the response was already sent (flush)"
            );
            return;
        }
        self.p.cookies.retain(|c| !cookie::sets(c, name));
        self.p.cookies.push(line);
    }
}

impl RequestNamespace for RequestContext<'_> {
    fn static_url(&self, path: &str) -> Result<String, StaticUrlError> {
        RequestContext::static_url(self, path)
    }

    fn unversioned_static_url(&self, path: &str) -> String {
        self.shared.unversioned_static_url(path)
    }

    fn xsrf_form_html(&self) -> Option<String> {
        Some(RequestContext::xsrf_form_html(self))
    }

    fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        RequestContext::reverse_url(self, name, args)
    }

    fn current_user(&self) -> Option<&str> {
        RequestContext::current_user(self)
    }

    fn request_value(&self) -> Option<&serde_json::Value> {
        Some(
            self.p
                .request_value
                .get_or_init(|| super::template::request_value(self.request)),
        )
    }

    fn locale(&self) -> Option<&crate::locale::Locale> {
        Some(RequestContext::locale(self))
    }

    fn template_value(&self, name: &str) -> Option<&serde_json::Value> {
        self.p.template_values.get(name)
    }

    fn app_parts(&self) -> Option<AppParts<'_>> {
        Some(AppParts {
            shared: self.shared,
            request: self.request,
            modules: &self.p.modules,
        })
    }
}

/// The `compress_response` setting (Tornado's `GZipContentEncoding`),
/// applied to every answer of an application's HTTP routes, its plain 404
/// included: `Vary: Accept-Encoding`, and the body gzipped (level 6) when
/// the client accepts gzip, the type is text or one of Tornado's
/// compressible types, the body is 1024 bytes or more and has no
/// `Content-Encoding` yet. Bodies sent from a file are left alone.
pub(crate) fn compress_response(settings: &Settings, req: &Request, response: &mut Response) {
    if !settings.compress_response {
        return;
    }
    vary_on_accept_encoding(response);
    let ctype = response.header("Content-Type").unwrap_or("");
    if !would_gzip(settings, req, ctype, response.body().len())
        || response.header("Content-Encoding").is_some()
        || response.file_body_len() > 0
    {
        return;
    }
    if let Some(zipped) = gzip(response.body()) {
        *response.body_mut() = zipped;
        response.set_header_static("Content-Encoding", "gzip");
    }
}

/// Adds `Accept-Encoding` to the response's `Vary` (what every answer
/// under `compress_response` says, gzipped or not). Several `Vary` lines
/// become one list (RFC 9110 §5.3), every field they named kept, as
/// Tornado joins them.
pub(crate) fn vary_on_accept_encoding(response: &mut Response) {
    let mut vary: Vec<&str> = response
        .header_values("Vary")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    vary.push("Accept-Encoding");
    let vary = vary.join(", ");
    response.set_header("Vary", vary);
}

/// `body` gzipped at level 6 (Tornado's `GZipContentEncoding.GZIP_LEVEL`).
pub(crate) fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3 + 32),
        flate2::Compression::new(6),
    );
    // Writing into a Vec cannot fail.
    std::io::Write::write_all(&mut gz, body)
        .and_then(|()| gz.finish())
        .ok()
}

/// Whether `compress_response` gzips a body of `len` bytes of the type
/// `content_type` for `req`: the setting is on, the client accepts gzip,
/// the type is compressible and the body long enough.
pub(crate) fn would_gzip(
    settings: &Settings,
    req: &Request,
    content_type: &str,
    len: usize,
) -> bool {
    let ctype = content_type.split(';').next().unwrap_or("").trim();
    settings.compress_response
        && (ctype.starts_with("text/") || GZIP_TYPES.contains(&ctype))
        && len >= GZIP_MIN_LENGTH
        && accepts_gzip(&req.header_joined("Accept-Encoding").unwrap_or_default())
}

/// Types Tornado gzips besides `text/*` (`GZipContentEncoding.CONTENT_TYPES`).
const GZIP_TYPES: [&str; 7] = [
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/atom+xml",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
];

/// Bodies shorter than this are not worth gzip's header (Tornado's
/// `MIN_LENGTH`).
const GZIP_MIN_LENGTH: usize = 1024;

/// Whether an `Accept-Encoding` value accepts gzip (RFC 9110 §12.5.3):
/// `gzip` (or `x-gzip`) with a non-zero weight, or else `*` with one.
/// Stricter than Tornado's substring test, which takes `gzip;q=0` as yes.
fn accepts_gzip(accept: &str) -> bool {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return weight > 0.0;
        }
        if coding == "*" {
            star = Some(weight > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// Tornado's `check_etag_header`: the entity tags of `If-None-Match` as
/// its pattern `\*|(?:W/)?"[^"]*"` finds them; a `*` first matches
/// anything, else one tag must equal `etag` by the weak comparison.
pub(super) fn if_none_match(header: &str, etag: &str) -> bool {
    let weak = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_string();
    let mut tags = Vec::new();
    let mut rest = header;
    while let Some(start) = rest.find(['*', '"', 'W']) {
        rest = &rest[start..];
        let quoted_from = if rest.starts_with("W/\"") {
            2
        } else if rest.starts_with('"') {
            0
        } else {
            if rest.starts_with('*') {
                tags.push("*".to_string());
            }
            rest = &rest[1..];
            continue;
        };
        match rest[quoted_from + 1..].find('"') {
            Some(end) => {
                let len = quoted_from + 1 + end + 1;
                tags.push(rest[..len].to_string());
                rest = &rest[len..];
            }
            // No closing quote: not a tag; the search goes on after it.
            None => rest = &rest[1..],
        }
    }
    match tags.first() {
        None => false,
        Some(first) if first == "*" => !etag.is_empty(),
        Some(_) => tags.iter().any(|t| weak(t) == weak(etag)),
    }
}

/// `</` becomes `<\/`: the same JSON (`\/` is an escaped `/`), with no
/// `</script>` in it (Tornado's `json_encode`; also the template function).
pub(crate) fn escape_script_end(json: String) -> String {
    if json.contains("</") {
        json.replace("</", "<\\/")
    } else {
        json
    }
}

/// Where Tornado's `@authenticated` sends a visitor of `req` nobody knows:
/// `login` with `?next=` and the request's URI (its full URL when `login`
/// is absolute), or `login` alone when it has a query already.
pub(crate) fn login_redirect_url(login: &str, req: &Request) -> String {
    let mut url = login.to_owned();
    if !login.contains('?') {
        let absolute = login.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
        let next = if absolute {
            req.full_url()
        } else {
            req.uri().to_owned()
        };
        url.push_str("?next=");
        url.push_str(&super::template::url_escape(&next));
    }
    url
}
