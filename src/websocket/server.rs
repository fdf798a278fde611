//! The server side of the opening handshake (RFC 6455 §4.2): validate the
//! request, run `check_origin`, `select_subprotocol` and the
//! permessage-deflate negotiation, answer 101 and become a WebSocket connection.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::connection::{WsConn, WsParts};
use super::handler::WebSocketHandler;
use super::headers::HandshakeHeaders;
use super::settings::{RouteSettings, WebSocketSettings};
use crate::http::{PendingReply, Reply, Request, Response, Stream, Upgrade};
use crate::ioloop::{ConnId, Pollable};
use crate::protocol::handshake::{accept_key, check_upgrade_iter, write_101};
use crate::protocol::{
    deflate, CompressionOptions, DeflateParams, HandshakeError, Role, Session, SessionConfig,
};
use crate::web::FormBody;

/// Validates a WebSocket handshake request for `handler` and answers it:
/// a 101 upgrade, or the HTTP error Tornado would send (400 with a reason,
/// 403 for a rejected origin, 426 with `Sec-WebSocket-Version: 13` for an
/// unsupported version). `args` are the route captures passed to `open`.
/// The settings are copied for the connection (an
/// [`Application`](crate::web::Application)'s routes share theirs, with
/// the application beside them for `WebSocket::render_string`).
pub fn accept(
    req: Request,
    args: Vec<String>,
    handler: Box<dyn WebSocketHandler>,
    settings: Rc<WebSocketSettings>,
) -> Reply {
    let settings = Rc::new(RouteSettings::from((*settings).clone()));
    accept_routed(req, args, Vec::new(), handler, settings)
}

/// [`accept`], with the route's named captures, which `open` reads with
/// [`WebSocket::path_kwarg`](super::WebSocket::path_kwarg).
pub(crate) fn accept_routed(
    req: Request,
    args: Vec<String>,
    kwargs: Vec<(String, String)>,
    handler: Box<dyn WebSocketHandler>,
    settings: Rc<RouteSettings>,
) -> Reply {
    accept_checked(req, args, kwargs, handler, settings, None)
}

/// [`accept_routed`], for a request already `checked` before `prepare`
/// ([`before_prepare`]; `None`: not yet).
fn accept_checked(
    req: Request,
    args: Vec<String>,
    kwargs: Vec<(String, String)>,
    handler: Box<dyn WebSocketHandler>,
    settings: Rc<RouteSettings>,
    checked: Option<FormBody>,
) -> Reply {
    let route = Rc::clone(&settings);
    super::handler::answering_handshake_on(&route, || {
        answer(req, args, kwargs, handler, settings, checked)
    })
}

/// [`accept_routed`], with the route in scope for the handler's methods.
fn answer(
    req: Request,
    args: Vec<String>,
    kwargs: Vec<(String, String)>,
    mut handler: Box<dyn WebSocketHandler>,
    settings: Rc<RouteSettings>,
    checked: Option<FormBody>,
) -> Reply {
    // Tornado's order: `get_current_user` and `get_user_locale` (lazy
    // there, asked by `prepare` or `@authenticated`), the handler's own refusal
    // (`prepare`), then `@authenticated` on `get`, the handshake's checks,
    // and last the headers the handler adds to whichever answer that is.
    // A panic in any of them is the handler's bug: the HTTP layer answers
    // 500.
    // Before all of them, the form body parsed and the application's
    // `xsrf_cookies` and `cross_origin_protection` checks of a POST,
    // PUT... (Tornado's `_execute`): a 400 or 403 without `prepare` or
    // `get_current_user`.
    let checked = checked.map_or_else(|| before_prepare(&req, &settings), Ok);
    let (current_user, locale, decided) = match checked {
        Err(refusal) => (None, None, Err(refusal)),
        Ok(form) => {
            super::handler::set_handshake_form(form);
            let current_user = handler.get_current_user(&req);
            let locale = handler.get_user_locale(&req);
            let decided = decide(&req, handler.as_mut(), &settings, current_user.is_some());
            (current_user, locale, decided)
        }
    };
    let (upgrade, mut head) = match decided {
        Ok(prepared) => (Some(prepared), Response::new(101)),
        Err(refusal) => (None, refusal),
    };
    let failed = add_default_headers(&req, handler.as_mut(), &settings, &mut head);
    match upgrade {
        Some((accept, subprotocol, deflate, ext_header)) if !failed => {
            Reply::Upgrade(Box::new(ServerUpgrade {
                accept,
                subprotocol,
                ext_header,
                headers: head.take_headers(),
                deflate,
                handler,
                settings,
                args,
                kwargs,
                request: req,
                namespace: super::core::Namespace::of_handshake(current_user, locale),
            }))
        }
        _ => refused(head),
    }
}

/// The handler's `set_default_headers` over `head` (the 101 or a
/// refusal). When it asked for what Tornado raises for, `head` becomes
/// the 500 page with the cookies set before (Tornado's `clear()` keeps
/// them), which it is asked to add its headers to in turn, as Tornado's
/// `send_error` calls `set_default_headers` again (the plain page if
/// that fails too); true then.
fn add_default_headers(
    req: &Request,
    handler: &mut dyn WebSocketHandler,
    settings: &RouteSettings,
    head: &mut Response,
) -> bool {
    let mut fails = |head: &mut Response| {
        let mut added = HandshakeHeaders::new(head, settings, req);
        handler.set_default_headers(req, &mut added);
        added.failed()
    };
    if !fails(head) {
        return false;
    }
    let cookies: Vec<String> = head
        .header_values("Set-Cookie")
        .map(str::to_owned)
        .collect();
    *head = Response::error(500, None);
    for cookie in cookies {
        head.add_header("Set-Cookie", cookie);
    }
    if fails(head) {
        *head = Response::error(500, None);
    }
    true
}

/// What a handshake route refuses before `prepare`, in the order of
/// Tornado's `_execute`: a method no Tornado handler takes (`PROPFIND`:
/// 405 with `Allow: GET`; counted as [`accept`]'s 405), then a path
/// capture that does not unquote to UTF-8 (`args`' `Err`, the reason:
/// 400, logged, the reason in the page with `debug` only); with the
/// default headers of the handler `made` returns, as Tornado's
/// `send_error` adds them (`None`: an asynchronous route's, not made
/// yet). The captures when there is nothing to refuse.
pub(crate) fn refuse_before_prepare(
    req: &Request,
    args: Result<Vec<String>, String>,
    made: impl FnOnce() -> Option<Box<dyn WebSocketHandler>>,
    settings: &Rc<RouteSettings>,
) -> Result<Vec<String>, Reply> {
    let mut resp = if !crate::web::HANDLER_METHODS.contains(&req.method()) {
        method_not_allowed()
    } else {
        let why = match args {
            Ok(args) => return Ok(args),
            Err(why) => why,
        };
        log::warn!("{}", crate::web::Refusal(req, 400, &why));
        Response::error(400, settings.debug().then_some(why.as_str()))
    };
    if let Some(mut handler) = made() {
        super::handler::answering_handshake_on(settings, || {
            add_default_headers(req, handler.as_mut(), settings, &mut resp);
        });
    }
    Err(refused(resp))
}

/// What Tornado's `_execute` does before `prepare`
/// (`ApplicationContext::before_prepare`): the form body parsed for
/// every method, and the application's `xsrf_cookies` or
/// `cross_origin_protection` checks for a method other than `GET`,
/// `HEAD` and `OPTIONS`; the refusal, or the body for `prepare`. Nothing
/// to check on a route without an application.
fn before_prepare(req: &Request, settings: &RouteSettings) -> Result<FormBody, Response> {
    match settings.app.as_ref() {
        Some(app) => app.before_prepare(req),
        None => Ok(FormBody::default()),
    }
}

/// What the handshake is answered, before the handler's headers: the
/// upgrade's parameters, or the refusal (`prepare`'s, `@authenticated`'s,
/// or a failed check's).
fn decide(
    req: &Request,
    handler: &mut dyn WebSocketHandler,
    settings: &RouteSettings,
    known_user: bool,
) -> Result<Prepared, Response> {
    if let Err(resp) = handler.prepare(req) {
        log::debug!("WebSocket handshake refused by prepare ({})", resp.status());
        return Err(resp);
    }
    if !known_user && req.method() == "GET" && handler.authenticated() {
        return Err(login_redirect(req, settings));
    }
    prepare(req, handler, settings).map_err(|e| handshake_refusal(&e))
}

/// The answer to a handshake that failed a check, as Tornado's
/// `WebSocketHandler.get` gives it (`set_status` then `finish(log_msg)`):
/// its status with the bare message as a `text/html` body, in every mode
/// (`"Missing/Invalid WebSocket headers"` for a bad key, Tornado's words;
/// the other checks Tornado leaves to its HTTP server say what failed);
/// a 426 empty, with the version we speak; another method the plain 405
/// page of Tornado's `send_error`.
fn handshake_refusal(e: &HandshakeError) -> Response {
    let status = e.status();
    log::debug!("WebSocket handshake refused ({status}): {e}");
    if status == 405 {
        return method_not_allowed();
    }
    let mut resp = Response::new(status);
    resp.set_header_static("Content-Type", "text/html; charset=UTF-8");
    match e {
        HandshakeError::UnsupportedVersion => resp.set_header("Sec-WebSocket-Version", "13"),
        HandshakeError::BadKey => resp.write("Missing/Invalid WebSocket headers"),
        _ => resp.write(e.to_string()),
    }
    resp
}

/// A handshake route's 405: Tornado's plain page, with `Allow: GET`
/// (RFC 9110 §15.5.6, as every 405 of cyclone's; Tornado sends none).
fn method_not_allowed() -> Response {
    let mut resp = Response::error(405, None);
    resp.set_header_static("Allow", "GET");
    resp
}

/// A handler made later: the future an
/// [`ApplicationBuilder::websocket_async`](crate::web::ApplicationBuilder::websocket_async)
/// factory returned.
pub(crate) type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Box<dyn WebSocketHandler>, Response>>>>;

/// [`accept_routed`] for a handler that the future `make` returns gives
/// later (Tornado's coroutine `prepare`): a request the application's
/// XSRF or cross-origin check refuses, or that is no valid upgrade, is
/// refused at once, before `make` is called (where Tornado runs its
/// `prepare` before the upgrade's checks: a deliberate difference,
/// documented on `websocket_async`); otherwise the
/// connection waits (no request timeout) while the future runs on the
/// loop, then is answered as [`accept_routed`] answers, or with the
/// future's refusal. A peer that leaves meanwhile drops the future
/// (cancelled at its next `.await`); a panic in it answers 500.
pub(crate) fn accept_later(
    req: Request,
    args: Vec<String>,
    kwargs: Vec<(String, String)>,
    make: &dyn Fn(&Request) -> HandlerFuture,
    settings: Rc<RouteSettings>,
) -> Reply {
    let checked = before_prepare(&req, &settings).and_then(|form| {
        check_upgrade_iter(req.method(), req.version_minor(), req.raw_headers())
            .map_err(|e| handshake_refusal(&e))
            .map(|_| form)
    });
    let form = match checked {
        Ok(form) => form,
        Err(refusal) => return refused(refusal),
    };
    let made = make(&req);
    let reply = PendingReply::new();
    let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    let wake = Rc::clone(&waker);
    reply.on_close(move || {
        if let Some(w) = wake.borrow_mut().take() {
            w.wake();
        }
    });
    crate::ioloop::IOLoop::current().spawn(Deciding {
        made,
        reply: reply.clone(),
        waker,
        then: Some(Handshake(req, args, kwargs, settings, form)),
    });
    Reply::Pending(reply)
}

/// A handshake waiting for its handler: the request, the route's
/// captures, its settings, its form body as checked before the handler
/// was asked for.
struct Handshake(
    Request,
    Vec<String>,
    Vec<(String, String)>,
    Rc<RouteSettings>,
    FormBody,
);

/// The task of [`accept_later`].
struct Deciding {
    made: HandlerFuture,
    reply: PendingReply,
    /// Woken when the connection goes (`PendingReply::on_close`).
    waker: Rc<RefCell<Option<Waker>>>,
    /// What the handshake goes on with once the handler is made.
    then: Option<Handshake>,
}

impl Deciding {
    /// A panic of the handler's code (its future, or its methods the
    /// handshake calls): logged and counted as the HTTP layer does, and
    /// answered 500.
    fn panicked(&self, uri: &str, panic: &Box<dyn std::any::Any + Send>) {
        log::error!(
            "WebSocket handler for {uri} panicked: {}",
            crate::ioloop::panic_message(panic)
        );
        let lp = crate::ioloop::IOLoop::current();
        lp.count(crate::ioloop::Counter::HandlerPanics, 1);
        self.reply.respond(Response::error(500, None));
    }
}

impl Future for Deciding {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.reply.is_closed() {
            // The peer left: `made` is dropped with this task.
            return Poll::Ready(());
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        let this = &mut *self;
        let outcome = match catch_unwind(AssertUnwindSafe(|| this.made.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(outcome)) => outcome,
            Err(panic) => {
                let uri = this.then.as_ref().map_or("", |t| t.0.uri()).to_owned();
                this.panicked(&uri, &panic);
                return Poll::Ready(());
            }
        };
        let Some(Handshake(req, args, kwargs, settings, form)) = this.then.take() else {
            return Poll::Ready(());
        };
        let uri = req.uri().to_owned();
        let answer = match outcome {
            Ok(handler) => catch_unwind(AssertUnwindSafe(|| {
                accept_checked(req, args, kwargs, handler, settings, Some(form))
            })),
            // The factory's refusal as it is: no handler to add its
            // default headers (documented on `websocket_async`).
            Err(resp) => Ok(refused(resp)),
        };
        match answer {
            Ok(Reply::Response(resp)) => this.reply.respond(resp),
            Ok(Reply::Upgrade(up)) => this.reply.upgrade(up),
            Ok(Reply::Pending(_)) => unreachable!("a handshake is answered at once"),
            Err(panic) => this.panicked(&uri, &panic),
        }
        Poll::Ready(())
    }
}

/// `resp` instead of the upgrade, counted by its status.
fn refused(resp: Response) -> Reply {
    if let Some(c) = crate::ioloop::Counter::for_handshake_status(resp.status()) {
        crate::ioloop::IOLoop::current().count(c, 1);
    }
    Reply::Response(resp)
}

/// Tornado's `@authenticated` for a visitor nobody knows: a 302 to the
/// application's `login_url` with `?next=`, or a 500 without one.
fn login_redirect(req: &Request, settings: &RouteSettings) -> Response {
    match settings.app.as_ref().and_then(|app| app.login_url()) {
        Some(login) => {
            let mut resp = Response::new(302);
            resp.set_header("Location", crate::web::login_redirect_url(login, req));
            resp
        }
        None => {
            log::error!(
                "the authenticated WebSocket route {} needs the login_url setting",
                req.uri()
            );
            Response::error(500, None)
        }
    }
}

/// The accept key, the selected subprotocol, the negotiated
/// permessage-deflate (its parameters and the options they were negotiated
/// with, which the connection's compressor must then use) and the
/// extension header answered.
type Prepared = (
    [u8; 28],
    Option<String>,
    Option<(DeflateParams, CompressionOptions)>,
    Option<String>,
);

fn prepare(
    req: &Request,
    handler: &dyn WebSocketHandler,
    settings: &RouteSettings,
) -> Result<Prepared, HandshakeError> {
    let up = match check_upgrade_iter(req.method(), req.version_minor(), req.raw_headers()) {
        Ok(up) => up,
        // Checked after `Upgrade` and `Connection`, which Tornado reads
        // before the origin; the version and the key it reads after: a
        // cross-origin request that `check_origin` refuses is a 403
        // whatever they are. (Only on this refusal's path: the rule
        // below reads them from the pass over the headers.)
        Err(
            e @ (HandshakeError::UnsupportedVersion
            | HandshakeError::BadKey
            | HandshakeError::RepeatedHeader("Sec-WebSocket-Version")),
        ) => {
            let refused =
                crate::web::check_cross_origin(req, |origin| handler.check_origin(origin, req));
            return Err(match refused {
                Some(why) => {
                    log::debug!("WebSocket handshake from another origin: {why}");
                    HandshakeError::OriginRejected
                }
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    // Tornado 6.6's cross-origin rule, `check_origin` deciding what looks
    // cross-origin. The default `check_origin` accepts the application's
    // `trusted_origins`: it finds them through the handshake's scope
    // (`answering_handshake_on`). `Origin` and `Sec-Fetch-Site` come from
    // the pass above: two lookups would scan the head twice more, about
    // 2,200 instructions of a handshake's 19,000 (`benches/callgrind.sh`
    // with `--churn`).
    let origin = up.origin.filter(|_| !up.origin_is_legacy);
    if let Some(why) = crate::web::cross_origin_refusal(origin, up.fetch_site, req, |origin| {
        handler.check_origin(origin, req)
    }) {
        log::debug!("WebSocket handshake from another origin: {why}");
        return Err(HandshakeError::OriginRejected);
    }
    let subprotocol = if up.protocols.is_empty() {
        None
    } else {
        // RFC 6455 §4.2.2: the answer must be one of the offered names.
        // Tornado fails its assertion there (a 500); we answer without a
        // subprotocol, but a handler bug must not pass unseen.
        handler.select_subprotocol(&up.protocols).filter(|p| {
            let offered = up.protocols.contains(&p.as_str());
            if !offered {
                crate::ioloop::warn_limited("subprotocol_not_offered", || {
                    format!(
                        "select_subprotocol chose {p:?}, which the client did not offer ({}): \
                         answering without a subprotocol",
                        up.protocols.join(", ")
                    )
                });
            }
            offered
        })
    };
    // Asked once per upgrade: the options negotiated with are the ones the
    // connection compresses with, even if the handler answers differently
    // on another call.
    let opts = handler.compression(settings.compression.as_ref());
    let (params, ext_header) = match opts {
        Some(o) if !up.extensions.is_empty() => {
            match deflate::negotiate_server(&up.extensions, &o)? {
                Some((p, h)) => (Some((p, o)), Some(h)),
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    Ok((accept_key(up.key), subprotocol, params, ext_header))
}

struct ServerUpgrade {
    accept: [u8; 28],
    subprotocol: Option<String>,
    ext_header: Option<String>,
    /// What the handler's `set_default_headers` added.
    headers: Vec<(String, String)>,
    deflate: Option<(DeflateParams, CompressionOptions)>,
    handler: Box<dyn WebSocketHandler>,
    settings: Rc<RouteSettings>,
    args: Vec<String>,
    kwargs: Vec<(String, String)>,
    request: Request,
    /// What `get_current_user` and `get_user_locale` answered.
    namespace: Option<Box<super::core::Namespace>>,
}

impl Upgrade for ServerUpgrade {
    fn response_head(&mut self, out: &mut Vec<u8>) {
        write_101(
            out,
            &self.accept,
            self.subprotocol.as_deref(),
            self.ext_header.as_deref(),
        );
        if !self.headers.is_empty() {
            // Before the blank line that ends the head.
            out.truncate(out.len() - 2);
            for (name, value) in &self.headers {
                crate::http::response::push_header_line(out, name, value);
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    fn into_connection(
        self: Box<Self>,
        stream: Stream,
        leftover: Vec<u8>,
        unsent: Vec<u8>,
        id: ConnId,
        nodelay: bool,
    ) -> Box<dyn Pollable> {
        let s = *self;
        if s.settings.nodelay != nodelay {
            let _ = stream.tcp().set_nodelay(s.settings.nodelay);
        }
        // The HTTP read buffer's capacity must not live on in an idle
        // WebSocket (PERF-NOTES §1: no heap buffer while idle).
        let leftover = if leftover.is_empty() {
            Vec::new()
        } else {
            leftover
        };
        let config = SessionConfig {
            max_message_size: s.settings.max_message_size,
            ..SessionConfig::default()
        };
        // Without permessage-deflate the options are not used.
        let (params, opts) = match s.deflate {
            Some((p, o)) => (Some(p), o),
            None => (None, CompressionOptions::default()),
        };
        let session = Session::new(Role::Server, config, params, &opts);
        Box::new(WsConn::new(
            s.handler,
            WsParts {
                stream,
                session,
                settings: s.settings,
                request: s.request,
                subprotocol: s.subprotocol,
                args: s.args,
                kwargs: s.kwargs,
                leftover,
                unsent,
                id,
                is_client: false,
                namespace: s.namespace,
                response_headers: Vec::new(),
            },
        ))
    }
}
