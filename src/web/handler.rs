//! The `RequestHandler` trait: Tornado's `RequestHandler` methods, one
//! handler object per request.

use super::context::RequestContext;
use crate::http::AfterAnswer;

/// The HTTP methods [`RequestHandler`] has a method for, in `Allow` order.
pub const HANDLER_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Answers the requests of one route. A new handler is made by the route's
/// factory for every request, like Tornado's `RequestHandler`; the response
/// is sent when the method returns (handlers are synchronous).
///
/// `args` are the route's regex captures, percent-decoded (Tornado's
/// `get(self, *args)`).
///
/// # Methods and `405 Method Not Allowed`
///
/// Rust cannot tell which trait methods a type overrides, so a handler
/// declares them in [`supported_methods`](Self::supported_methods)
/// (Tornado's `SUPPORTED_METHODS`). The default, `["GET", "HEAD"]`, fits
/// the common read-only page. A request whose method is not listed is
/// answered 405 without calling the handler, and that 405 carries an
/// `Allow` header with the listed methods, so `Allow` always names exactly
/// the methods that are dispatched (RFC 9110 §15.5.6 requires the header
/// on a 405; Tornado sends none: a deliberate difference). A handler that implements `post` must
/// therefore list `"POST"`; forgetting shows at once as a 405 on POST.
///
/// Every method defaults to a 405 (via
/// [`RequestContext::unimplemented_method`]), whose `Allow` header leaves
/// out the methods found unimplemented, except `head`, which defaults to
/// calling `get`: the response keeps the body's `Content-Length` and the
/// HTTP layer sends no body for HEAD.
///
/// A method other than the seven of [`HANDLER_METHODS`] (WebDAV's
/// `PROPFIND`, `MKCOL`, ...) is served by listing it in
/// `supported_methods` and implementing
/// [`other_method`](Self::other_method), which receives each of them.
///
/// ```
/// use cyclone::web::{RequestContext, RequestHandler};
///
/// struct Item;
///
/// impl RequestHandler for Item {
///     fn supported_methods(&self) -> &'static [&'static str] {
///         &["GET", "HEAD", "POST"]
///     }
///     fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
///         cx.write(format!("item {}", args[0]));
///     }
///     fn post(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
///         let name = cx.get_argument("name").unwrap_or_default();
///         cx.set_status(201);
///         cx.write(format!("created {} as {name}", args[0]));
///     }
/// }
/// ```
pub trait RequestHandler: 'static {
    /// The methods this handler answers; others get 405 with an `Allow`
    /// header listing these. Default `["GET", "HEAD"]`.
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD"]
    }

    /// Headers every response of this handler carries, error pages
    /// included (Tornado's `set_default_headers`: CORS or security
    /// headers). Called before anything else, and again on the error page
    /// when [`RequestContext::send_error`] replaced the response, as
    /// Tornado's `send_error` calls `clear()`. Only its headers (and
    /// cookies) count: a body it writes or a status it sets is dropped,
    /// as `clear()` drops them. Not called for the 500 of a panic in the
    /// handler's code, nor is [`write_error`](Self::write_error): where
    /// Tornado's `send_error(500)` calls both, the handler's state after a
    /// panic is suspect, so the plain page goes out. Default: none.
    fn set_default_headers(&mut self, cx: &mut RequestContext<'_>) {
        let _ = cx;
    }

    /// With the `xsrf_cookies` setting on, runs for every method but
    /// `GET`, `HEAD` and `OPTIONS`, after the 405 check and before
    /// [`prepare`](Self::prepare) (Tornado's `check_xsrf_cookie`). If it
    /// finishes the response, neither `prepare` nor the method runs.
    /// Default: [`RequestContext::check_xsrf_cookie`], which answers 403
    /// unless the request repeats its `_xsrf` cookie's token. Override it
    /// to exempt a handler, e.g. an API authenticated by a bearer token
    /// rather than by cookies.
    fn check_xsrf_cookie(&mut self, cx: &mut RequestContext<'_>) {
        cx.check_xsrf_cookie();
    }

    /// Whether a cross-origin request from `origin` (its `Origin` header,
    /// `https://app.example.com`) may go on, under the
    /// [`cross_origin_protection`](super::Settings::cross_origin_protection)
    /// setting (Tornado's `check_trusted_origin`). Called before `prepare`
    /// only for requests that change state and look cross-origin. Default:
    /// whether `origin` is one of the
    /// [`trusted_origins`](super::Settings::trusted_origins). Answering
    /// `true` for any origin exempts the handler (an API whose callers
    /// authenticate with a token, not cookies).
    fn check_trusted_origin(&mut self, cx: &RequestContext<'_>, origin: &str) -> bool {
        cx.settings().trusts_origin(origin)
    }

    /// Who is logged in (Tornado's `get_current_user`), usually from a
    /// signed cookie: called before [`prepare`](Self::prepare), its answer
    /// is [`RequestContext::current_user`] and `current_user` in
    /// templates. Default: nobody.
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Home;
    /// impl RequestHandler for Home {
    ///     fn get_current_user(&mut self, cx: &RequestContext<'_>) -> Option<String> {
    ///         cx.get_secure_cookie("user").map(|u| String::from_utf8_lossy(&u).into_owned())
    ///     }
    ///     fn authenticated_methods(&self) -> &'static [&'static str] {
    ///         &["GET"] // Tornado's @authenticated on get()
    ///     }
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let name = cx.current_user().unwrap_or_default().to_owned();
    ///         cx.write(format!("hello {name}"));
    ///     }
    /// }
    /// ```
    fn get_current_user(&mut self, cx: &RequestContext<'_>) -> Option<String> {
        let _ = cx;
        None
    }

    /// The locale chosen for the user (Tornado's `get_user_locale`), e.g.
    /// from a setting stored with their account: called after
    /// [`get_current_user`](Self::get_current_user), before `prepare`; its
    /// answer is [`RequestContext::locale`]. Default: `None`, for the
    /// browser's `Accept-Language`
    /// ([`RequestContext::get_browser_locale`]).
    ///
    /// ```
    /// use cyclone::locale::Locale;
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Page;
    /// impl RequestHandler for Page {
    ///     fn get_user_locale(&mut self, cx: &RequestContext<'_>) -> Option<Locale> {
    ///         let code = cx.get_cookie("lang")?;
    ///         Some(Locale::get_closest(&[&code]))
    ///     }
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         let hello = cx.locale().translate("Hello").to_owned();
    ///         cx.write(hello);
    ///     }
    /// }
    /// ```
    fn get_user_locale(&mut self, cx: &RequestContext<'_>) -> Option<crate::locale::Locale> {
        let _ = cx;
        None
    }

    /// The methods that need a logged-in user (Tornado's
    /// `@tornado.web.authenticated` on them): after `prepare`, a request
    /// with one of these methods and no
    /// [`current_user`](RequestContext::current_user) gets
    /// [`RequestContext::require_login`] (a redirect to `login_url` for
    /// `GET` and `HEAD`, 403 otherwise) instead of the method. Default:
    /// none.
    fn authenticated_methods(&self) -> &'static [&'static str] {
        &[]
    }

    /// Runs before the method, once the method is known to be supported
    /// (Tornado's `prepare`): a check every method shares, such as a
    /// login. If it finishes the response (`send_error`, `redirect`,
    /// `render`), the method is not called. Default: nothing.
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        let _ = cx;
    }

    /// Writes the page of an error sent with [`RequestContext::send_error`]
    /// (or a 405), `status` being its status (Tornado's `write_error`). The
    /// body is empty when it is called; write one with `cx.write` or
    /// `cx.write_json`. If it writes nothing, Tornado's default page
    /// (`<title>404: Not Found</title>`) stays. Not called for the 500 of
    /// a panic (see [`set_default_headers`](Self::set_default_headers)).
    /// Default: nothing.
    fn write_error(&mut self, cx: &mut RequestContext<'_>, status: u16) {
        let _ = (cx, status);
    }

    /// The `ETag` of a `200` answer to `GET` or `HEAD` that set none
    /// itself (Tornado's `compute_etag`); when the request's
    /// `If-None-Match` names it, the answer becomes `304 Not Modified`
    /// without a body, as Tornado's `finish()` does. Default:
    /// [`RequestContext::compute_etag`], the SHA-1 of the body. Return
    /// `None` for no `ETag` (a page that must always be sent whole), or a
    /// cheaper tag of your own (a version number).
    fn compute_etag(&mut self, cx: &RequestContext<'_>) -> Option<String> {
        cx.compute_etag()
    }

    /// Called once the response is complete, with the status sent
    /// (Tornado's `on_finish`): cleanup, or logging and metrics of the
    /// handler's own. As in Tornado's `finish()`, it runs after the answer
    /// was queued for the client and its access line (`cyclone::access`)
    /// logged: a synchronous answer right after the connection serialized
    /// it; an [`asynchronous`](RequestContext::asynchronous) one when the
    /// connection takes it, by the end of the loop's tick in which it was
    /// finished (in Tornado, inside `finish()`). When the client has gone,
    /// it still runs once the answer is finished, with the status set,
    /// after the access line: nothing is sent. Not called when a method
    /// panicked (the answer is then a 500), nor for an
    /// [`aborted`](super::AsyncResponse::abort) answer. A panic in it is
    /// logged, and the answer and the connection stay as they were, as
    /// Tornado only logs an exception from `on_finish`. Default: nothing.
    fn on_finish(&mut self, status: u16) {
        let _ = status;
    }

    /// The client closed the connection while the answer was still open
    /// ([`RequestContext::asynchronous`]): Tornado's `on_connection_close`,
    /// for a long poll to stop waiting. Runs on the loop, once; the answer
    /// goes nowhere from then on
    /// ([`AsyncResponse::is_closed`](super::AsyncResponse::is_closed)).
    /// Also when the connection closes before a body taken as it arrives
    /// ([`stream_request_body`](super::ApplicationBuilder::stream_request_body))
    /// ended: an upload cut short.
    fn on_connection_close(&mut self) {}

    /// A piece of the request body, on a route marked
    /// [`stream_request_body`](super::ApplicationBuilder::stream_request_body)
    /// (Tornado's `data_received`): called as the body arrives, after
    /// `prepare` and before the method. A response finished here
    /// (`send_error`) is sent at once and the rest of the body is not
    /// read. With [`decompress_request`](super::ApplicationBuilder::decompress_request),
    /// a gzip body's pieces come decompressed (at most 64 KiB each, as
    /// Tornado's `chunk_size`). Default: the piece is dropped.
    fn data_received(&mut self, cx: &mut RequestContext<'_>, chunk: &[u8]) {
        let _ = (cx, chunk);
    }

    /// `GET`. Default: 405.
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method("GET", self.supported_methods());
    }

    /// `HEAD`. Default: [`get`](Self::get); the HTTP layer drops the body.
    fn head(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }

    /// `POST`. Default: 405.
    fn post(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method("POST", self.supported_methods());
    }

    /// `PUT`. Default: 405.
    fn put(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method("PUT", self.supported_methods());
    }

    /// `DELETE`. Default: 405.
    fn delete(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method("DELETE", self.supported_methods());
    }

    /// `PATCH`. Default: 405.
    fn patch(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method("PATCH", self.supported_methods());
    }

    /// `OPTIONS`. Default: 405.
    fn options(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method("OPTIONS", self.supported_methods());
    }

    /// Every method listed in [`supported_methods`](Self::supported_methods)
    /// that is not one of the seven of [`HANDLER_METHODS`], `method` being
    /// the request's, exactly as sent (methods are case-sensitive: `propfind`
    /// is not `PROPFIND`). It is Tornado's `def propfind(self)` beside
    /// `SUPPORTED_METHODS = RequestHandler.SUPPORTED_METHODS + ("PROPFIND",)`.
    /// It runs where the others run: after the 405 check, the XSRF and
    /// cross-origin checks (which apply to every method but `GET`, `HEAD`
    /// and `OPTIONS`, as in Tornado) and `prepare`; the body's form
    /// arguments are parsed for it as for `POST`.
    ///
    /// A method that is not listed never gets here: it is answered 405,
    /// and the `Allow` header lists the seven in their order, then the
    /// others in the order of `supported_methods`. Default: 405 (via
    /// [`RequestContext::unimplemented_method`], so `method` leaves `Allow`);
    /// call that too for a listed method this handler does not implement
    /// (Tornado answers 500 for one without its Python method).
    ///
    /// ```
    /// use cyclone::web::{RequestContext, RequestHandler};
    ///
    /// struct Collection;
    ///
    /// impl RequestHandler for Collection {
    ///     fn supported_methods(&self) -> &'static [&'static str] {
    ///         &["GET", "HEAD", "PROPFIND", "MKCOL"]
    ///     }
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
    ///         cx.write(format!("collection {}", args[0]));
    ///     }
    ///     fn other_method(&mut self, cx: &mut RequestContext<'_>, method: &str, args: &[&str]) {
    ///         match method {
    ///             "PROPFIND" => {
    ///                 cx.set_status(207);
    ///                 cx.set_header("Content-Type", "application/xml; charset=utf-8");
    ///                 cx.write(format!("<multistatus><href>{}</href></multistatus>", args[0]));
    ///             }
    ///             // Listed but not written yet: 405, and `Allow` leaves it out.
    ///             _ => cx.unimplemented_method(method, self.supported_methods()),
    ///         }
    ///     }
    /// }
    ///
    /// # use cyclone::http::{Reply, Request, Service};
    /// # use cyclone::web::Application;
    /// let app = Application::builder().route(r"/dav/(\w+)", || Collection).build();
    /// # let answer = |method: &str| match app.dispatch(Request::synthetic(method, "/dav/docs", &[])) {
    /// #     Reply::Response(r) => (r.status(), r.header("Allow").map(str::to_owned)),
    /// #     _ => unreachable!(),
    /// # };
    /// assert_eq!(answer("PROPFIND"), (207, None));
    /// assert_eq!(answer("MKCOL"), (405, Some("GET, HEAD, PROPFIND".into())));
    /// assert_eq!(answer("LOCK"), (405, Some("GET, HEAD, PROPFIND, MKCOL".into())));
    /// ```
    #[doc(alias = "propfind")]
    fn other_method(&mut self, cx: &mut RequestContext<'_>, method: &str, args: &[&str]) {
        let _ = args;
        cx.unimplemented_method(method, self.supported_methods());
    }
}

/// Answers every request with the error page of one status (Tornado's
/// `ErrorHandler`, `(r"/old/.*", ErrorHandler, {"status_code": 410})`),
/// whatever the method: no 405, no XSRF or cross-origin check (a `POST` to
/// a gone URL gets its status, not a 403), and the application's error
/// page (`write_error` is the default one).
///
/// ```
/// use cyclone::web::{Application, ErrorHandler};
///
/// let app = Application::builder()
///     .route(r"/old/.*", || ErrorHandler::new(410))
///     .build();
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorHandler {
    status: u16,
}

impl ErrorHandler {
    /// Answers `status` (an error status, 400–599; another one answers
    /// 500, logged).
    pub fn new(status: u16) -> ErrorHandler {
        ErrorHandler { status }
    }
}

impl RequestHandler for ErrorHandler {
    fn supported_methods(&self) -> &'static [&'static str] {
        &HANDLER_METHODS
    }

    fn check_xsrf_cookie(&mut self, _: &mut RequestContext<'_>) {}

    fn check_trusted_origin(&mut self, _: &RequestContext<'_>, _: &str) -> bool {
        true
    }

    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        if (400..=599).contains(&self.status) {
            cx.send_error(self.status);
        } else {
            log::error!("ErrorHandler::new({}): not an error status", self.status);
            cx.send_error(500);
        }
    }
}

/// The handler's `on_finish(status)` once its answer is complete. A panic
/// in it is logged and counted, and the answer stands: Tornado calls
/// `on_finish` after the answer was written and only logs what it raises.
pub(crate) fn run_on_finish(handler: &mut dyn RequestHandler, status: u16) {
    super::async_response::guarded("on_finish", || handler.on_finish(status));
}

/// [`run_on_finish`] for the connection to call once the answer is queued
/// and logged (the handler lives until then).
pub(crate) fn on_finish_after(mut handler: Box<dyn RequestHandler>) -> AfterAnswer {
    Box::new(move |status| run_on_finish(&mut *handler, status))
}

/// Tornado's `_execute`: default headers, the 405 check, `prepare`, the
/// handler method for `cx`'s request method, then the error page's own
/// default headers and `write_error` if an error was sent.
pub(crate) fn call_method(
    handler: &mut dyn RequestHandler,
    cx: &mut RequestContext<'_>,
    args: &[&str],
) {
    handler.set_default_headers(cx);
    cx.keep_only_headers(200);
    dispatch(handler, cx, args);
    if cx.is_open_later() {
        // `asynchronous`: the answer ends later, through `finish_response`.
        return;
    }
    finish_response(handler, cx);
}

/// Tornado's `_execute` for a request whose route capture is not UTF-8
/// once unquoted (its `decode_argument`, after the 405 check): default
/// headers, then the 405, or the 400 refusal with `why` (logged, and in
/// the page with `debug`), dressed by the handler's `write_error`.
/// Neither `prepare` nor the method runs.
pub(crate) fn refuse_capture(
    handler: &mut dyn RequestHandler,
    cx: &mut RequestContext<'_>,
    why: &str,
) {
    handler.set_default_headers(cx);
    cx.keep_only_headers(200);
    let supported = handler.supported_methods();
    if supported.contains(&cx.request().method()) {
        cx.refuse(400, why);
    } else {
        cx.method_not_allowed(supported);
    }
    finish_response(handler, cx);
}

/// Tornado's `finish()` over a response that is complete and whose head
/// was not sent: the 1xx check (and that of a 204 or 304 with a body), the
/// handler's error page, the ETag and its 304, then the output transform
/// (gzip).
pub(crate) fn finish_response(handler: &mut dyn RequestHandler, cx: &mut RequestContext<'_>) {
    // A 1xx (or a `send_error` past 599) cannot be the final answer: the
    // connection would send a bare 500 for it. Nor can a 204 or 304 with a
    // body (Tornado asserts). Make that 500 here, dressed like any error page, so
    // `on_finish` sees the status the client gets.
    cx.refuse_unsendable_status();
    if let Some(status) = cx.error_status() {
        cx.rewrite_error_page(|cx| {
            handler.set_default_headers(cx);
            cx.keep_only_headers(status);
            handler.write_error(cx, status);
        });
    }
    // Tornado's finish(): the ETag and its 304, then the output
    // transform (gzip) over what is sent.
    if cx.wants_etag() {
        if let Some(etag) = handler.compute_etag(cx) {
            cx.finish_with_etag(etag);
        }
    }
    cx.compress_response();
}

fn dispatch(handler: &mut dyn RequestHandler, cx: &mut RequestContext<'_>, args: &[&str]) {
    if before_method(handler, cx, true) {
        run_method(handler, cx, args);
    }
}

/// Everything of Tornado's `_execute` before the handler method: the 405
/// check, the body's arguments (`parse_body`; not for a streamed body),
/// the XSRF and cross-origin checks, `get_current_user`,
/// `get_user_locale`, `prepare`, `@authenticated`. False when the
/// response is finished (the method is not called).
pub(crate) fn before_method(
    handler: &mut dyn RequestHandler,
    cx: &mut RequestContext<'_>,
    parse_body: bool,
) -> bool {
    let supported = handler.supported_methods();
    let method = cx.request().method();
    if !supported.contains(&method) {
        log::debug!("405: {method} is not in supported_methods() {supported:?}");
        cx.method_not_allowed(supported);
        return false;
    }
    if parse_body && !cx.parse_body() {
        return false;
    }
    if !matches!(method, "GET" | "HEAD" | "OPTIONS") {
        if cx.settings().xsrf_cookies {
            handler.check_xsrf_cookie(cx);
            if cx.is_finished() {
                return false;
            }
        }
        if cx.settings().cross_origin_protection {
            let req = cx.request();
            let refused = super::origin::check_cross_origin(req, |origin| {
                handler.check_trusted_origin(cx, origin)
            });
            if let Some(why) = refused {
                cx.refuse(403, &why);
                return false;
            }
        }
    }
    let user = handler.get_current_user(cx);
    cx.set_current_user(user);
    if let Some(locale) = handler.get_user_locale(cx) {
        cx.set_locale(locale);
    }
    handler.prepare(cx);
    if cx.is_finished() {
        return false;
    }
    if cx.current_user().is_none() && handler.authenticated_methods().contains(&method) {
        cx.require_login();
        return false;
    }
    true
}

/// The handler method for the request's method.
pub(crate) fn run_method(
    handler: &mut dyn RequestHandler,
    cx: &mut RequestContext<'_>,
    args: &[&str],
) {
    match cx.request().method() {
        "GET" => handler.get(cx, args),
        "HEAD" => handler.head(cx, args),
        "POST" => handler.post(cx, args),
        "PUT" => handler.put(cx, args),
        "DELETE" => handler.delete(cx, args),
        "PATCH" => handler.patch(cx, args),
        "OPTIONS" => handler.options(cx, args),
        // `before_method` let only listed methods through.
        method => handler.other_method(cx, method, args),
    }
}
