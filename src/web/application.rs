//! `Application`: regex routes, settings, dispatch and the access log.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::context::{FormBody, RequestContext};
use super::handler::{call_method, refuse_capture, RequestHandler};
use super::settings::Settings;
use super::signed::CookieSecret;
use super::static_files::{file_version, StaticFiles, StaticUrlError};
use super::template::{
    python_bytes_repr, read_source, resolve_name, AppParts, Template, TemplateError,
    MAX_INCLUDE_DEPTH,
};
use super::ui_module::{ActiveModules, ModuleContext, UiModule, UiModuleFactory};
use crate::http::request::percent_decode_utf8;
use crate::http::{self, AfterAnswer, Reply, Request, Response, Service};
use crate::protocol::CompressionOptions;
use crate::websocket::settings::RouteSettings;
use crate::websocket::{self, WebSocketHandler, WebSocketSettings};

type HandlerFactory = Box<dyn Fn() -> Box<dyn RequestHandler>>;
/// What makes a WebSocket route's handler: the handler at once, or a
/// future of it ([`ApplicationBuilder::websocket_async`]).
enum WebSocketFactory {
    Now(MakeHandler),
    Later(MakeHandlerLater),
}

type MakeHandler = Box<dyn Fn(&Request) -> Box<dyn WebSocketHandler>>;
type MakeHandlerLater = Box<dyn Fn(&Request) -> websocket::server::HandlerFuture>;

/// A `websocket_async` factory as a route's.
fn later<W, Fut, F>(factory: F) -> WebSocketFactory
where
    W: WebSocketHandler,
    Fut: Future<Output = Result<W, Response>> + 'static,
    F: Fn(&Request) -> Fut + 'static,
{
    WebSocketFactory::Later(Box::new(move |req| {
        let made = factory(req);
        Box::pin(async move {
            made.await
                .map(|handler| Box::new(handler) as Box<dyn WebSocketHandler>)
        })
    }))
}

enum Target {
    Handler(HandlerFactory),
    WebSocket {
        factory: WebSocketFactory,
        settings: Rc<RouteSettings>,
        /// The route was given no settings of its own: `build` puts the
        /// application's in `settings`.
        inherit: bool,
    },
}

struct Route {
    pattern: String,
    /// Tornado's `url(..., name=)`, for [`Application::reverse_url`].
    name: Option<String>,
    regex: Regex,
    /// What the regex amounts to when that is simpler to test.
    shortcut: Shortcut,
    target: Target,
    /// Tornado's `@stream_request_body`: the handler takes the body as it
    /// arrives ([`ApplicationBuilder::stream_request_body`]).
    stream_body: bool,
}

/// Routes whose regex is a plain string or `.*` (most WebSocket routes
/// and catch-alls) are matched without running the regex engine: the
/// same answer as `^(?:pattern)$` for every path, at a string compare
/// instead of a few hundred instructions per request and route.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shortcut {
    /// No metacharacter: the path must equal the pattern.
    Literal,
    /// `.*`: any path without a line feed (`.` does not match one).
    AnyLine,
    /// Run the regex.
    None,
}

impl Shortcut {
    fn of(pattern: &str) -> Shortcut {
        if pattern == ".*" {
            Shortcut::AnyLine
        } else if !pattern.contains(|c| "\\.+*?()|[]{}^$".contains(c)) {
            // Outside a class and without the `x` flag (which takes a
            // `(`), `-`, `&`, `~` and `#` are literals too.
            Shortcut::Literal
        } else {
            Shortcut::None
        }
    }
}

impl Route {
    /// # Panics
    /// `pattern` is not a valid regular expression.
    fn new(pattern: &str, target: Target) -> Route {
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .unwrap_or_else(|e| panic!("route pattern {pattern:?} is not a valid regex: {e}"));
        Route {
            pattern: pattern.to_string(),
            name: None,
            regex,
            shortcut: Shortcut::of(pattern),
            target,
            stream_body: false,
        }
    }

    /// Whether `path` matches the whole pattern (a route without groups).
    fn is_match(&self, path: &str) -> bool {
        match self.shortcut {
            Shortcut::Literal => path == self.pattern,
            Shortcut::AnyLine => memchr::memchr(b'\n', path.as_bytes()).is_none(),
            Shortcut::None => self.regex.is_match(path),
        }
    }
}

/// The named groups of `regex` with their values among `args` (the
/// captures in order): Tornado's `path_kwargs`.
fn named_captures(regex: &Regex, args: &[impl AsRef<str>]) -> Vec<(String, String)> {
    regex
        .capture_names()
        .skip(1)
        .zip(args)
        .filter_map(|(name, value)| Some((name?.to_owned(), value.as_ref().to_owned())))
        .collect()
}

/// Tornado's `URLSpec._find_groups`: the literal pieces of `pattern`
/// around its groups (one more piece than groups), or `None` when it
/// cannot be reversed: a `(` that is not a group (`(?:..)`, an escaped
/// `\(`), or an escape of a letter or digit (`\d`) outside the groups.
fn reverse_pieces(pattern: &str, groups: usize) -> Option<Vec<String>> {
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let pattern = pattern.strip_suffix('$').unwrap_or(pattern);
    if pattern.matches('(').count() != groups {
        return None;
    }
    let mut pieces = Vec::with_capacity(groups + 1);
    for (i, fragment) in pattern.split('(').enumerate() {
        let literal = match fragment.find(')') {
            // The first fragment is before any group; later ones start
            // inside theirs.
            Some(close) if i > 0 => &fragment[close + 1..],
            _ if i > 0 => return None,
            _ => fragment,
        };
        pieces.push(re_unescape(literal)?);
    }
    Some(pieces)
}

/// Python's `tornado.util.re_unescape`: `\x` becomes `x`, except for an
/// ASCII letter or digit (`\d` has no literal meaning): `None`.
fn re_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e) if e.is_ascii_alphanumeric() => return None,
            Some(e) => out.push(e),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// Most file hashes [`Shared::static_version`] keeps; the cache is
/// emptied when a new one would go past it.
pub(crate) const MAX_STATIC_HASHES: usize = 4096;

/// What handlers share during a request: settings, the template cache and
/// the static file hashes. Per application, so per thread: an
/// [`Application`] is an `Rc`, and `run_workers` builds one per worker.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    /// Each named route's literal pieces around its groups
    /// ([`reverse_pieces`]); `None` for a pattern that cannot be reversed.
    named: HashMap<String, Option<Vec<String>>>,
    /// Parsed templates by path. Borrowed only inside [`Shared::template`],
    /// never across handler code, so a panicking handler leaves it usable.
    templates: RefCell<HashMap<PathBuf, Arc<Template>>>,
    /// `static_url` versions by the name requested (`css/../app.js` is
    /// kept as `app.js`: see `static_files::requested_path`). Only names
    /// that resolved inside `static_path` to a file that could be hashed
    /// are kept (at most [`MAX_STATIC_HASHES`]); borrowed only inside
    /// [`Shared::static_version`].
    static_hashes: RefCell<HashMap<String, String>>,
    /// The functions `.ui_method(..)` added to the templates' namespace.
    ui_methods: HashMap<String, Box<UiMethod>>,
    /// The modules `.ui_module(..)` added, by name.
    ui_modules: HashMap<String, Box<UiModuleFactory>>,
}

/// A function of an application's templates ([`ApplicationBuilder::ui_method`]):
/// the request being answered (a WebSocket's handshake in
/// `ws.render_string`) and the call's arguments; its value, or why it
/// failed.
pub type UiMethod = dyn Fn(&Request, &[serde_json::Value]) -> Result<serde_json::Value, String>;

/// The templates one [`Shared::template`] call is loading (innermost
/// last), and those it has parsed, so that a template included twice is
/// read once even with `debug` on.
#[derive(Default)]
struct Loading {
    stack: Vec<String>,
    done: HashMap<PathBuf, Arc<Template>>,
}

impl Shared {
    /// The template function `name` called for `req`; `None` when the
    /// application has none of that name.
    pub(crate) fn ui_method(
        &self,
        name: &str,
        req: &Request,
        args: &[serde_json::Value],
    ) -> Option<Result<serde_json::Value, String>> {
        self.ui_methods.get(name).map(|f| f(req, args))
    }

    /// `{% module name(args, kwargs) %}` of the module `name` for the
    /// request `cx` sees, one value of it per request (`modules`); `None`
    /// when the application has none of that name.
    pub(crate) fn ui_module(
        &self,
        modules: &ActiveModules,
        cx: &ModuleContext<'_>,
        name: &str,
        args: &[serde_json::Value],
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Result<String, String>> {
        let make = self.ui_modules.get(name)?;
        Some(modules.render(name, make, cx, args, kwargs))
    }

    /// [`RequestContext::static_url`](super::RequestContext::static_url).
    pub(crate) fn static_url(&self, path: &str) -> Result<String, StaticUrlError> {
        if let Some(root) = self.settings.static_path.as_deref() {
            if super::static_files::outside_root(root, path) {
                return Err(StaticUrlError::outside(path));
            }
        }
        let path = self.static_url_path(path);
        let url = self.unversioned_static_url(path);
        // The URL keeps `path` as given (Tornado's does); the version is
        // that of the file its request gets, `..` resolved by the client.
        let prefix = &self.settings.static_url_prefix;
        let version = match super::static_files::requested_path(prefix, path) {
            Some(rel) => self.static_version(&rel),
            None => {
                log::error!("static_url({path:?}): its request leaves {prefix:?}");
                None
            }
        };
        Ok(match version {
            Some(version) => format!("{url}?v={version}"),
            None => url,
        })
    }

    /// [`static_url`](Self::static_url) without its version, and without
    /// reading the file (`static_url(path, include_version=False)`).
    pub(crate) fn unversioned_static_url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.settings.static_url_prefix,
            super::static_files::url_path_escape(self.static_url_path(path))
        )
    }

    /// `path` as the static URL carries it: as given, but for an absolute
    /// path inside `static_path` that the prefix `/` would make a
    /// protocol-relative URL (`//srv/static/app.js`, which a browser
    /// requests from the host `srv`; Tornado writes it so): its part
    /// after `static_path` (`app.js`).
    fn static_url_path<'p>(&self, path: &'p str) -> &'p str {
        let prefix = &self.settings.static_url_prefix;
        if !path.starts_with('/') || !prefix.ends_with('/') {
            return path;
        }
        let url = format!("{prefix}{path}");
        if !super::context::is_protocol_relative(&url) {
            return path;
        }
        self.settings
            .static_path
            .as_deref()
            .and_then(|root| super::static_files::absolute_in_root(root, path))
            .unwrap_or(path)
    }

    /// [`Application::reverse_url`].
    pub(crate) fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        let Some(found) = self.named.get(name) else {
            log::error!("reverse_url: no route is named {name:?}");
            return None;
        };
        let Some(pieces) = found else {
            log::error!("reverse_url({name:?}): the route's pattern cannot be reversed");
            return None;
        };
        if args.len() + 1 != pieces.len() {
            log::error!(
                "reverse_url({name:?}): {} arguments given, the route has {} groups",
                args.len(),
                pieces.len() - 1
            );
            return None;
        }
        let mut url = pieces[0].clone();
        for (arg, piece) in args.iter().zip(&pieces[1..]) {
            url.push_str(&super::template::url_escape_with(arg, false));
            url.push_str(piece);
        }
        Some(url)
    }

    /// The version `static_url` appends for `rel` (see
    /// [`StaticFiles::version`]), from the cache when
    /// `static_hash_cache` is on. `None` (logged at `error`) without
    /// `static_path`, for a refused path or a file that cannot be read.
    pub(crate) fn static_version(&self, rel: &str) -> Option<String> {
        let Some(root) = self.settings.static_path.as_deref() else {
            log::error!("static_url({rel:?}) needs the static_path setting");
            return None;
        };
        let cache = self.settings.caches_static_hashes();
        if cache {
            if let Some(v) = self.static_hashes.borrow().get(rel) {
                return Some(v.clone());
            }
        }
        let version = file_version(root, rel)?;
        if cache {
            let mut hashes = self.static_hashes.borrow_mut();
            if hashes.len() >= MAX_STATIC_HASHES {
                hashes.clear();
            }
            hashes.insert(rel.to_string(), version.clone());
        }
        Some(version)
    }

    /// The template `file` under `template_path`, with its includes and
    /// parents; cached unless `debug`.
    pub(crate) fn template(&self, file: &str) -> Result<Arc<Template>, TemplateError> {
        self.load(file, &mut Loading::default())
    }

    fn load(&self, file: &str, loading: &mut Loading) -> Result<Arc<Template>, TemplateError> {
        let rel = std::path::Path::new(file);
        if file.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(TemplateError::Load(format!(
                "template name {file:?} refused: must be relative, without '.' or '..' segments"
            )));
        }
        let path = match &self.settings.template_path {
            Some(dir) => dir.join(file),
            None => PathBuf::from(file),
        };
        let cache = !self.settings.debug;
        if cache {
            if let Some(t) = self.templates.borrow().get(&path).cloned() {
                return Ok(t);
            }
        }
        if let Some(t) = loading.done.get(&path) {
            return Ok(t.clone());
        }
        if loading.stack.iter().any(|f| f == file) {
            return Err(TemplateError::Load(format!(
                "include cycle: {} -> {file}",
                loading.stack.join(" -> ")
            )));
        }
        if loading.stack.len() > MAX_INCLUDE_DEPTH {
            return Err(TemplateError::TooDeep(format!(
                "includes and extends chain deeper than {MAX_INCLUDE_DEPTH}: {}",
                loading.stack.join(" -> ")
            )));
        }
        let src = read_source(self.settings.template_path.as_deref(), &path)?;
        loading.stack.push(file.to_string());
        let whitespace = self
            .settings
            .template_whitespace
            .unwrap_or_else(|| super::Whitespace::for_name(file));
        let parsed = Template::parse_with(&src, whitespace, |name| {
            let target = resolve_name(file, name)?;
            self.load(&target, loading)
                .map_err(|error| TemplateError::In {
                    name: target,
                    error: Box::new(error),
                })
        });
        loading.stack.pop();
        let template = Arc::new(parsed?);
        loading.done.insert(path.clone(), template.clone());
        if cache {
            self.templates.borrow_mut().insert(path, template.clone());
        }
        Ok(template)
    }
}

struct Inner {
    routes: Vec<Route>,
    /// `default_handler`: for paths no route matches.
    default: Option<HandlerFactory>,
    /// Shared with the WebSocket routes' settings ([`ApplicationContext`]).
    shared: Rc<Shared>,
}

/// What a WebSocket route knows of its application: its templates,
/// static URLs and named routes, for
/// [`WebSocket::render_string`](crate::websocket::WebSocket::render_string),
/// [`static_url`](crate::websocket::WebSocket::static_url) and
/// [`reverse_url`](crate::websocket::WebSocket::reverse_url): given to
/// every WebSocket route by [`ApplicationBuilder::build`].
#[derive(Clone)]
pub(crate) struct ApplicationContext(pub(crate) Rc<Shared>);

impl ApplicationContext {
    /// Whether `origin` is one of the `trusted_origins` setting's.
    pub(crate) fn trusts_origin(&self, origin: &str) -> bool {
        self.0.settings.trusts_origin(origin)
    }

    /// What Tornado's `_execute` does for a `WebSocketHandler`, as for
    /// any handler, before `prepare`: the form body parsed, for every
    /// method (a body that does not parse: 400), then
    /// `_cross_origin_protection` for every method but `GET`, `HEAD` and
    /// `OPTIONS`: with `xsrf_cookies`, the request must repeat the
    /// `_xsrf` token (`check_xsrf_cookie`, reading a form body's `_xsrf`
    /// too); with `cross_origin_protection`, one a browser marks
    /// cross-origin needs a trusted origin (Tornado asks
    /// `check_trusted_origin` there, not `check_origin`). The refusal, as
    /// a `RequestHandler`'s, or the parsed body for `prepare` to read. A
    /// request without a form body that is not checked costs one header
    /// lookup.
    pub(crate) fn before_prepare(&self, req: &Request) -> Result<FormBody, Response> {
        let settings = &self.0.settings;
        let checked = (settings.xsrf_cookies || settings.cross_origin_protection)
            && !matches!(req.method(), "GET" | "HEAD" | "OPTIONS");
        if !checked && !super::has_form_body(req) {
            return Ok(FormBody::default());
        }
        let mut cx = RequestContext::new(req, &self.0);
        if !cx.parse_body() {
            return Err(cx.into_response());
        }
        if checked {
            if settings.xsrf_cookies && !cx.check_xsrf_cookie() {
                return Err(cx.into_response());
            }
            if settings.cross_origin_protection {
                let trusted = |o: &str| settings.trusts_origin(o);
                if let Some(why) = super::origin::check_cross_origin(req, trusted) {
                    cx.refuse(403, &why);
                    return Err(cx.into_response());
                }
            }
        }
        Ok(cx.take_form_body())
    }

    /// The template `file` rendered with `value` for a WebSocket
    /// connection: its handshake `req`, `locale`, `current_user` and the
    /// names it added for its templates (`WebSocket::render_string`).
    pub(crate) fn render_string(
        &self,
        req: &Request,
        locale: &crate::locale::Locale,
        current_user: Option<&str>,
        values: Option<&serde_json::Map<String, serde_json::Value>>,
        file: &str,
        value: &(impl serde::Serialize + ?Sized),
    ) -> Result<String, TemplateError> {
        let namespace = AppNamespace {
            shared: &self.0,
            request: req,
            locale,
            current_user,
            values,
            value: std::cell::OnceCell::new(),
            modules: ActiveModules::default(),
        };
        self.0
            .template(file)?
            .render_with_in(value, Some(&namespace))
    }

    /// The `login_url` setting.
    pub(crate) fn login_url(&self) -> Option<&str> {
        self.0.settings.login_url.as_deref()
    }

    /// The application's settings.
    pub(crate) fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// [`Application::reverse_url`].
    pub(crate) fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        self.0.reverse_url(name, args)
    }

    /// [`RequestContext::static_url`](super::RequestContext::static_url).
    pub(crate) fn static_url(&self, path: &str) -> Result<String, StaticUrlError> {
        self.0.static_url(path)
    }
}

/// The template namespace of a render outside a [`RequestContext`](super::RequestContext).
struct AppNamespace<'a> {
    shared: &'a Shared,
    request: &'a Request,
    locale: &'a crate::locale::Locale,
    current_user: Option<&'a str>,
    /// Names the connection added (`WebSocket::set_template_value`).
    values: Option<&'a serde_json::Map<String, serde_json::Value>>,
    value: std::cell::OnceCell<serde_json::Value>,
    /// The UI modules of this render (their resources go nowhere: no page
    /// is sent).
    modules: ActiveModules,
}

impl super::template::RequestNamespace for AppNamespace<'_> {
    fn static_url(&self, path: &str) -> Result<String, StaticUrlError> {
        self.shared.static_url(path)
    }

    fn unversioned_static_url(&self, path: &str) -> String {
        self.shared.unversioned_static_url(path)
    }

    fn xsrf_form_html(&self) -> Option<String> {
        None
    }

    fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        self.shared.reverse_url(name, args)
    }

    fn current_user(&self) -> Option<&str> {
        self.current_user
    }

    fn request_value(&self) -> Option<&serde_json::Value> {
        Some(
            self.value
                .get_or_init(|| super::template::request_value(self.request)),
        )
    }

    fn template_value(&self, name: &str) -> Option<&serde_json::Value> {
        self.values?.get(name)
    }

    fn locale(&self) -> Option<&crate::locale::Locale> {
        Some(self.locale)
    }

    fn app_parts(&self) -> Option<AppParts<'_>> {
        Some(AppParts {
            shared: self.shared,
            request: self.request,
            modules: &self.modules,
        })
    }
}

impl fmt::Debug for ApplicationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApplicationContext { .. }")
    }
}

/// A web application: routes to [`RequestHandler`]s, WebSocket handlers and
/// static files, with Tornado's settings. Cheap to clone (an `Rc` inside);
/// answers requests as an [`http::Service`].
///
/// ```
/// use cyclone::web::{Application, RequestContext, RequestHandler};
///
/// struct Hello;
/// impl RequestHandler for Hello {
///     fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
///         cx.write(format!("Hello, {}", args[0]));
///     }
/// }
///
/// let app = Application::builder()
///     .route(r"/hello/(\w+)", || Hello)
///     .debug(true)
///     .build();
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct Application {
    inner: Rc<Inner>,
}

/// Builds an [`Application`]: routes in match order, then settings.
pub struct ApplicationBuilder {
    routes: Vec<Route>,
    settings: Settings,
    default: Option<HandlerFactory>,
    ui_methods: HashMap<String, Box<UiMethod>>,
    ui_modules: HashMap<String, Box<UiModuleFactory>>,
}

/// A route's captures, percent-decoded, or the bytes of the first one
/// that is not UTF-8 ([`Application`]'s `find`).
type Captures = Result<Vec<String>, Vec<u8>>;

impl Application {
    /// A builder with no routes and default [`Settings`].
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder {
            routes: Vec::new(),
            settings: Settings::default(),
            default: None,
            ui_methods: HashMap::new(),
            ui_modules: HashMap::new(),
        }
    }

    /// The application's settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.shared.settings
    }

    /// The path of the route named `name` (see
    /// [`ApplicationBuilder::name`]) with `args` in its groups, each
    /// percent-encoded as Tornado's `url_escape(arg, plus=False)` does
    /// (`/` kept): Tornado's `reverse_url`. `None` when no route has that
    /// name, its pattern cannot be reversed (a group inside a group,
    /// `(?:..)`, `\d` outside the groups), or `args` is not one per group.
    ///
    /// ```
    /// use cyclone::web::{Application, RequestContext, RequestHandler};
    ///
    /// struct Story;
    /// impl RequestHandler for Story {
    ///     fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
    ///         cx.write(format!("story {}", args[0]));
    ///     }
    /// }
    ///
    /// let app = Application::builder()
    ///     .route(r"/story/([0-9]+)", || Story)
    ///     .name("story")
    ///     .build();
    /// assert_eq!(app.reverse_url("story", &["42"]).as_deref(), Some("/story/42"));
    /// assert_eq!(app.reverse_url("story", &[]), None);
    /// ```
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        self.inner.shared.reverse_url(name, args)
    }

    /// Listens on every IPv4 interface (`0.0.0.0:port`, as Tornado's
    /// `listen(port)` binds all interfaces) in the current thread's IOLoop.
    /// Port 0 picks a free port; the bound address is returned.
    ///
    /// # Errors
    /// Binding or registering the listener failed.
    pub fn listen(&self, port: u16) -> io::Result<SocketAddr> {
        self.listen_on(SocketAddr::from(([0, 0, 0, 0], port)))
    }

    /// Listens on `addr` (the first of its addresses that binds) in the
    /// current thread's IOLoop and returns the bound address.
    ///
    /// # Errors
    /// `addr` resolves to nothing, or no address could be bound.
    pub fn listen_on(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.listen_inner(
            addr,
            false,
            #[cfg(feature = "tls")]
            None,
        )
    }

    /// Like [`listen_on`](Self::listen_on) with `SO_REUSEPORT`, so several
    /// threads (one IOLoop each) can listen on the same port and the kernel
    /// spreads connections over them (see [`crate::run_workers`]).
    ///
    /// # Errors
    /// `addr` resolves to nothing, or no address could be bound.
    pub fn listen_reuse_port(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.listen_inner(
            addr,
            true,
            #[cfg(feature = "tls")]
            None,
        )
    }

    /// Serves HTTPS and `wss://` on every IPv4 interface (`0.0.0.0:port`):
    /// Tornado's `app.listen(port, ssl_options={"certfile": ...,
    /// "keyfile": ...})` is
    /// `app.listen_tls(port, ServerTls::from_pem_files(certfile, keyfile)?)`.
    /// Every connection is a TLS session (TLS 1.2 or 1.3; the handshake
    /// counts against `request_timeout` from accept, 10 s by default, and
    /// one not done by then is closed quietly, where Tornado's counts
    /// against its header timeout, `idle_connection_timeout` or one
    /// hour); handlers see
    /// [`Request::protocol`] `"https"`. A failed handshake (a plain HTTP
    /// client on the port, a browser that refuses the certificate) ends
    /// that connection and is logged at `warn` with the peer's address,
    /// as Tornado logs `SSL Error on ...` (at most a line a second, with
    /// the count of the others).
    ///
    /// # Errors
    /// Binding or registering the listener failed.
    #[cfg(feature = "tls")]
    pub fn listen_tls(&self, port: u16, tls: crate::tls::ServerTls) -> io::Result<SocketAddr> {
        self.listen_on_tls(SocketAddr::from(([0, 0, 0, 0], port)), tls)
    }

    /// [`listen_on`](Self::listen_on) serving HTTPS and `wss://` (see
    /// [`listen_tls`](Self::listen_tls)).
    ///
    /// # Errors
    /// `addr` resolves to nothing, or no address could be bound.
    #[cfg(feature = "tls")]
    pub fn listen_on_tls(
        &self,
        addr: impl ToSocketAddrs,
        tls: crate::tls::ServerTls,
    ) -> io::Result<SocketAddr> {
        self.listen_inner(addr, false, Some(&tls))
    }

    /// [`listen_reuse_port`](Self::listen_reuse_port) serving HTTPS and
    /// `wss://` (see [`listen_tls`](Self::listen_tls) and
    /// [`crate::run_workers_tls`]).
    ///
    /// # Errors
    /// `addr` resolves to nothing, or no address could be bound.
    #[cfg(feature = "tls")]
    pub fn listen_reuse_port_tls(
        &self,
        addr: impl ToSocketAddrs,
        tls: crate::tls::ServerTls,
    ) -> io::Result<SocketAddr> {
        self.listen_inner(addr, true, Some(&tls))
    }

    fn listen_inner(
        &self,
        addr: impl ToSocketAddrs,
        reuse_port: bool,
        #[cfg(feature = "tls")] tls: Option<&crate::tls::ServerTls>,
    ) -> io::Result<SocketAddr> {
        let mut last_err = None;
        for a in addr.to_socket_addrs()? {
            let service: Rc<dyn Service> = Rc::new(self.clone());
            let limits = self.settings().http.clone();
            #[cfg(feature = "tls")]
            let res = match tls {
                Some(tls) => http::listen_tls(a, service, limits, reuse_port, tls),
                None => http::listen_with(a, service, limits, reuse_port),
            };
            #[cfg(not(feature = "tls"))]
            let res = http::listen_with(a, service, limits, reuse_port);
            match res {
                Ok(bound) => return Ok(bound),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
        }))
    }

    /// The first route matching `path` and its captures, percent-decoded
    /// (Tornado matches the raw path, then unquotes each capture; a group
    /// that did not participate gives `""`). `Err` with the bytes of the
    /// first capture that does not decode to UTF-8 (Tornado's 400).
    fn find(&self, path: &str) -> Option<(&Route, Captures)> {
        self.inner.routes.iter().find_map(|route| {
            // `captures` allocates its slots on every call; a route without
            // groups (most WebSocket routes) needs only a yes or no.
            if route.regex.captures_len() == 1 {
                return route.is_match(path).then(|| (route, Ok(Vec::new())));
            }
            let caps = route.regex.captures(path)?;
            let args = caps
                .iter()
                .skip(1)
                .map(|m| match m {
                    None => Ok(String::new()),
                    Some(m) => percent_decode_utf8(m.as_str(), false),
                })
                .collect();
            Some((route, args))
        })
    }

    /// Runs a handler made by `factory` for `req`: `route`'s, or the
    /// default handler's (`None`). `args` is `Err` with why a capture was
    /// refused (not UTF-8): the handler answers 400 (or 405) without
    /// running `prepare` or its method. A response comes with the
    /// handler's `on_finish`, for once it is sent.
    fn run_handler(
        &self,
        route: Option<&Route>,
        factory: &HandlerFactory,
        req: Request,
        args: Result<&[&str], &str>,
    ) -> (Reply, Option<AfterAnswer>) {
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut handler = factory();
            let mut cx = RequestContext::new(&req, &self.inner.shared);
            match args {
                Ok(args) => {
                    if let Some(route) = route {
                        cx.set_path_kwargs(named_captures(&route.regex, args));
                    }
                    call_method(&mut *handler, &mut cx, args);
                }
                Err(why) => refuse_capture(&mut *handler, &mut cx, why),
            }
            if cx.is_open_later() {
                // `asynchronous`: the answer is completed later.
                let (parts, later) = cx.into_parts();
                return Err(Box::new((parts, later.expect("open later"), handler)));
            }
            Ok((cx.into_response(), handler))
        }));
        match result {
            Ok(Ok((response, handler))) => (
                Reply::Response(response),
                Some(super::handler::on_finish_after(handler)),
            ),
            Ok(Err(open)) => {
                let (parts, later, handler) = *open;
                let reply = super::async_response::begin(
                    later,
                    req,
                    self.inner.shared.clone(),
                    parts,
                    handler,
                );
                (Reply::Pending(reply), None)
            }
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(non-string panic)");
                log::error!(
                    "handler for route {:?} panicked on {} {}: {msg}",
                    route.map_or("(default_handler)", |r| r.pattern.as_str()),
                    req.method(),
                    req.uri()
                );
                // The connection answers 500 and closes.
                panic::resume_unwind(payload)
            }
        }
    }
}

#[cfg(test)]
impl Application {
    /// How many file hashes `static_url` keeps.
    pub(crate) fn static_hashes_len(&self) -> usize {
        self.inner.shared.static_hashes.borrow().len()
    }

    /// `static_url(path)` without a request (with the prefix `/`, every
    /// path is the static route's).
    pub(crate) fn static_url(&self, path: &str) -> Result<String, StaticUrlError> {
        self.inner.shared.static_url(path)
    }
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field(
                "routes",
                &self
                    .inner
                    .routes
                    .iter()
                    .map(|r| &r.pattern)
                    .collect::<Vec<_>>(),
            )
            .field("settings", &self.inner.shared.settings)
            .finish()
    }
}

impl Application {
    /// A handler route's body taken as it arrives: see
    /// [`ApplicationBuilder::stream_request_body`].
    fn streamed_body(&self, req: &Request) -> Option<Box<dyn crate::http::BodySink>> {
        let (route, Ok(args)) = self.find(req.path())? else {
            return None;
        };
        let Target::Handler(factory) = &route.target else {
            return None;
        };
        if !route.stream_body || super::context::too_many_fields(req.query().as_bytes()) {
            return None;
        }
        let kwargs = named_captures(&route.regex, &args);
        Some(Box::new(super::stream_body::StreamSink::start(
            factory(),
            req.clone(),
            self.inner.shared.clone(),
            args,
            kwargs,
        )))
    }
}

impl Service for Application {
    fn stream_body(&self, req: &Request) -> Option<Box<dyn crate::http::BodySink>> {
        self.streamed_body(req)
    }

    /// Routes `req`: the first route whose anchored regex matches the raw
    /// path wins. A handler route calls the handler method (405 with
    /// `Allow` for other methods); a WebSocket route answers anything but
    /// `GET` with 405 (`Allow: GET`) and hands a `GET` to
    /// [`websocket::accept`]; no match is 404.
    ///
    /// A handler panic is logged with its route and resumed, for the
    /// connection to answer 500; the application stays usable.
    ///
    /// With no connection behind it, the handler's
    /// [`on_finish`](RequestHandler::on_finish) runs before this returns
    /// (a test of a handler); the connection calls
    /// [`dispatch_then`](Self::dispatch_then).
    fn dispatch(&self, req: Request) -> Reply {
        let (reply, after) = self.dispatch_then(req);
        if let (Reply::Response(r), Some(after)) = (&reply, after) {
            after(r.status());
        }
        reply
    }

    /// [`dispatch`](Self::dispatch), with the handler's
    /// [`on_finish`](RequestHandler::on_finish) left for the connection to
    /// run once the answer is queued and its access line logged, as
    /// Tornado's `finish()` calls it after `_log()`.
    fn dispatch_then(&self, req: Request) -> (Reply, Option<AfterAnswer>) {
        if super::context::too_many_fields(req.query().as_bytes()) {
            // Tornado refuses such a request before any handler (6.5.8),
            // with a bare `400 Bad Request`: the reason is logged, and in
            // the page only with `debug`, as every refusal's.
            let why = "Invalid query string: Max number of fields exceeded";
            log::warn!("400 {} {}: {why}", req.method(), req.path());
            let page = Response::error(400, self.inner.shared.settings.debug.then_some(why));
            return (Reply::Response(page), None);
        }
        let Some((route, args)) = self.find(req.path()) else {
            if let Some(factory) = &self.inner.default {
                return self.run_handler(None, factory, req, Ok(&[]));
            }
            let mut not_found = Response::error(404, None);
            // Through the output transform, as Tornado's default
            // handler's page.
            super::context::compress_response(&self.inner.shared.settings, &req, &mut not_found);
            return (Reply::Response(not_found), None);
        };
        // Tornado's `decode_argument`: the handler's 400 (after its 405
        // check), an `HTTPError` whose message names the first 40 bytes:
        // logged, and in the page only with `debug`.
        let args = args.map_err(|bytes| {
            format!(
                "Invalid unicode in url: {}",
                python_bytes_repr(&bytes[..bytes.len().min(40)])
            )
        });
        match &route.target {
            Target::Handler(factory) => {
                let argv: Vec<&str> = args.iter().flatten().map(String::as_str).collect();
                let args = args.as_ref().map(|_| &argv[..]).map_err(String::as_str);
                self.run_handler(Some(route), factory, req, args)
            }
            Target::WebSocket {
                factory, settings, ..
            } => {
                let settings = settings.clone();
                // A method no Tornado handler takes, then a capture that
                // does not decode: refused before `prepare`, with the
                // handler's default headers (an asynchronous route has no
                // handler yet: without). The seven methods it takes go
                // to `prepare` first, which may refuse otherwise, and
                // then the handshake's own 405, as Tornado runs `prepare`
                // before its `post` answers 405.
                let made = || match factory {
                    WebSocketFactory::Now(factory) => Some(factory(&req)),
                    WebSocketFactory::Later(_) => None,
                };
                let args =
                    match websocket::server::refuse_before_prepare(&req, args, made, &settings) {
                        Ok(args) => args,
                        Err(refusal) => return (refusal, None),
                    };
                let kwargs = named_captures(&route.regex, &args);
                let reply = match factory {
                    WebSocketFactory::Now(factory) => {
                        let handler = factory(&req);
                        websocket::server::accept_routed(req, args, kwargs, handler, settings)
                    }
                    WebSocketFactory::Later(factory) => {
                        websocket::server::accept_later(req, args, kwargs, factory, settings)
                    }
                };
                (reply, None)
            }
        }
    }

    /// The access line, `tornado.access` style, on target `cyclone::access`:
    /// `200 GET /path?q=1 (127.0.0.1) 0.42ms`, at `info` below 400, `warn`
    /// for 4xx and `error` for 5xx. Also for an asynchronous answer
    /// finished after its client went (nothing is sent), as Tornado's
    /// `finish()` logs it, with the status set.
    fn log_request(&self, req: &Request, status: u16, elapsed: Duration) {
        log_access(req, status, elapsed);
    }
}

/// [`Application`]'s access line (see its `log_request`), also for an
/// answer finished after its client went, which no connection logs.
pub(crate) fn log_access(req: &Request, status: u16, elapsed: Duration) {
    let level = match status {
        0..=399 => log::Level::Info,
        400..=499 => log::Level::Warn,
        _ => log::Level::Error,
    };
    if !log::log_enabled!(target: "cyclone::access", level) {
        return;
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    let peer = req
        .peer()
        .map_or_else(|| "-".to_string(), |p| p.ip().to_string());
    log::log!(
        target: "cyclone::access",
        level,
        "{status} {} {} ({peer}) {ms:.2}ms",
        req.method(),
        req.uri()
    );
}

impl ApplicationBuilder {
    /// Routes requests whose path matches `pattern` (a regex anchored at
    /// both ends) to a handler made by `factory` for each request. Routes
    /// are tried in the order they were added.
    ///
    /// # Panics
    /// `pattern` is not a valid regular expression (a programming error,
    /// reported here, while the application is being built, as Tornado
    /// reports it when the `Application` is constructed).
    pub fn route<H, F>(mut self, pattern: &str, factory: F) -> Self
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        let factory: HandlerFactory = Box::new(move || Box::new(factory()));
        self.routes
            .push(Route::new(pattern, Target::Handler(factory)));
        self
    }

    /// The route added last takes request bodies as they arrive (Tornado's
    /// `@stream_request_body`): once the head is here, the handler's
    /// default headers, the 405, XSRF (from the `X-XSRFToken` header or
    /// the query: the body is not parsed) and cross-origin checks,
    /// `get_current_user`, `prepare` and `@authenticated` run; then
    /// [`RequestHandler::data_received`] gets each piece of the body as it
    /// comes (decoded, if chunked), and the method (`post`, `put`, ..)
    /// runs once it is complete, with an empty [`Request::body`]. A
    /// response finished before the body ended (`send_error` in `prepare`
    /// or `data_received`) is sent at once and the connection closes. The
    /// body limit is the application's `max_body_size`, or what `prepare`
    /// sets with [`RequestContext::set_max_body_size`]; `request_timeout`
    /// runs between pieces rather than over the whole body.
    ///
    /// ```
    /// use cyclone::web::{Application, RequestContext, RequestHandler};
    ///
    /// #[derive(Default)]
    /// struct Upload { bytes: u64 }
    /// impl RequestHandler for Upload {
    ///     fn supported_methods(&self) -> &'static [&'static str] { &["PUT"] }
    ///     fn prepare(&mut self, cx: &mut RequestContext<'_>) {
    ///         cx.set_max_body_size(1 << 30);
    ///     }
    ///     fn data_received(&mut self, _cx: &mut RequestContext<'_>, chunk: &[u8]) {
    ///         self.bytes += chunk.len() as u64; // or write it to a file
    ///     }
    ///     fn put(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
    ///         cx.write(format!("{} bytes", self.bytes));
    ///     }
    /// }
    ///
    /// let app = Application::builder()
    ///     .route("/upload", Upload::default)
    ///     .stream_request_body()
    ///     .build();
    /// ```
    ///
    /// # Panics
    /// No route was added yet, or the last one is a WebSocket route.
    pub fn stream_request_body(mut self) -> Self {
        let route = self.routes.last_mut().expect(
            "ApplicationBuilder::stream_request_body marks the route added last: add one first",
        );
        assert!(
            matches!(route.target, Target::Handler(_)),
            "stream_request_body: {:?} is a WebSocket route",
            route.pattern
        );
        route.stream_body = true;
        self
    }

    /// Names the route added last, for [`Application::reverse_url`] and
    /// `{{ reverse_url("name", ..) }}` in templates (Tornado's
    /// `url(pattern, handler, name="name")`). A name given twice points
    /// at the later route, as Tornado replaces it (with a warning).
    ///
    /// # Panics
    /// No route was added yet.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let route = self
            .routes
            .last_mut()
            .expect("ApplicationBuilder::name names the route added last: add one first");
        route.name = Some(name.into());
        self
    }

    /// Adds `name(args…)` to the application's templates (Tornado's
    /// `ui_methods` setting): `f` gets the request being answered and the
    /// call's arguments as JSON values, and its value is printed (escaped
    /// by `{{ }}`, as written by `{% raw %}`) or used in the expression.
    /// An `Err` fails the render at the call's line, as an exception in a
    /// Tornado UI method does. A template calling a function no one added
    /// fails at that call.
    ///
    /// ```
    /// use cyclone::http::Request;
    /// use cyclone::web::Application;
    /// use serde_json::{json, Value};
    ///
    /// let app = Application::builder()
    ///     .template_path("templates")
    ///     // {{ plural(n, "message") }} -> "1 message", "3 messages"
    ///     .ui_method("plural", |_req: &Request, args: &[Value]| {
    ///         let n = args.first().and_then(Value::as_i64).ok_or("plural(n, word)")?;
    ///         let word = args.get(1).and_then(Value::as_str).ok_or("plural(n, word)")?;
    ///         Ok(json!(format!("{n} {word}{}", if n == 1 { "" } else { "s" })))
    ///     })
    ///     .build();
    /// ```
    pub fn ui_method<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Request, &[serde_json::Value]) -> Result<serde_json::Value, String> + 'static,
    {
        self.ui_methods.insert(name.to_string(), Box::new(f));
        self
    }

    /// Adds the UI module `name` to the application's templates (Tornado's
    /// `ui_modules` setting): `{% module name(args…, key=value…) %}` calls
    /// the [`UiModule::render`] of a value `make` makes once per request,
    /// and [`RequestContext::render`](super::RequestContext::render) puts
    /// the JavaScript, CSS and HTML the request's modules ask for into the
    /// page (see [`UiModule`]). A template using a module no one added
    /// fails at that line.
    ///
    /// # Panics
    /// `name` is not a Python identifier, or is one of Tornado's built-in
    /// modules (`Template`, `linkify`, `xsrf_form_html`): a template could
    /// not call it.
    pub fn ui_module<M, F>(mut self, name: &str, make: F) -> Self
    where
        M: UiModule,
        F: Fn() -> M + 'static,
    {
        let identifier = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        assert!(
            identifier && !["Template", "linkify", "xsrf_form_html"].contains(&name),
            "ui_module: {name:?} is not a name a template can call as a module of its own"
        );
        self.ui_modules
            .insert(name.to_string(), Box::new(move || Box::new(make())));
        self
    }

    /// Answers every request no route matches with a handler made by
    /// `factory` (Tornado's `default_handler_class`), instead of the plain
    /// 404 page: a page of your own, or a single-page application's
    /// `index.html` for every path. The handler gets no arguments.
    pub fn default_handler<H, F>(mut self, factory: F) -> Self
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        self.default = Some(Box::new(move || Box::new(factory())));
        self
    }

    /// Routes WebSocket handshakes on `pattern` to a handler made by
    /// `factory` from the request; the captures reach
    /// [`WebSocketHandler::open`]. Uses the application's WebSocket settings.
    ///
    /// # Panics
    /// `pattern` is not a valid regular expression.
    pub fn websocket<W, F>(self, pattern: &str, factory: F) -> Self
    where
        W: WebSocketHandler,
        F: Fn(&Request) -> W + 'static,
    {
        self.add_websocket(pattern, None, factory)
    }

    /// Like [`websocket`](Self::websocket), with settings of its own for
    /// this route instead of the application's.
    ///
    /// # Panics
    /// `pattern` is not a valid regular expression.
    pub fn websocket_with<W, F>(
        self,
        pattern: &str,
        settings: WebSocketSettings,
        factory: F,
    ) -> Self
    where
        W: WebSocketHandler,
        F: Fn(&Request) -> W + 'static,
    {
        self.add_websocket(pattern, Some(Rc::new(settings.into())), factory)
    }

    /// Like [`websocket`](Self::websocket), for a handler that needs to
    /// wait for something before the handshake is answered (Tornado's
    /// coroutine `prepare`): a session looked up in a database, a token
    /// checked by another service. `factory` takes the request and
    /// returns a future (`'static`: copy what it needs from the request
    /// first) of the handler, or of the response refusing the handshake.
    ///
    /// A form body that does not parse (400) or a request refused by the
    /// `xsrf_cookies` or `cross_origin_protection` setting (a `POST`,
    /// `PUT`, ... that fails them: 403, as on a
    /// [`websocket`](Self::websocket) route), then one that is not a
    /// valid upgrade (405, 400, 426), is refused at once, before
    /// `factory` is called (with no handler to ask `check_origin`, a
    /// cross-origin one too: a 426 or 400 where a
    /// [`websocket`](Self::websocket) route answers 403). With no handler
    /// either to ask `set_default_headers`, these refusals go without its
    /// headers, where Tornado's (and a [`websocket`](Self::websocket)
    /// route's) carry them: Tornado makes its handler before these
    /// checks, but here the handler comes out of `factory`, Tornado's
    /// `prepare`. Tornado does not run `prepare` for a request its XSRF or
    /// cross-origin check refuses, nor for a method no handler takes, so
    /// those are answered alike. It does run it before the upgrade's
    /// checks, so there the answers differ on purpose (a request that will
    /// be refused anyway starts no lookup): a `POST` or `HEAD` (405), a
    /// missing or invalid `Sec-WebSocket-Key` (400) or another
    /// `Sec-WebSocket-Version` (426) gets that check's refusal here even
    /// when `factory`'s future would have refused it otherwise (a 403 for
    /// an unknown token, say), and without the headers Tornado's `prepare`
    /// would have set.
    /// Meanwhile the connection waits,
    /// with no request timeout (put one in the future with
    /// [`with_timeout`](crate::ioloop::with_timeout) if it may hang), and
    /// the loop serves everyone else. Then the handshake goes on as for
    /// [`websocket`](Self::websocket): the handler's `prepare`,
    /// `get_current_user`, `check_origin` and the rest. The future's
    /// `Err(response)` is the answer as it is: with no handler made,
    /// nothing adds `set_default_headers`' headers to it, where Tornado's
    /// `prepare` refusing with `send_error` carries them (put them in the
    /// response if they matter). A peer that leaves
    /// first cancels the future (dropped at its next `.await`); a panic
    /// in it answers 500.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cyclone::http::Response;
    /// use cyclone::ioloop::sleep;
    /// use cyclone::web::Application;
    /// use cyclone::websocket::{Message, WebSocket, WebSocketHandler};
    ///
    /// struct Member(String);
    /// impl WebSocketHandler for Member {
    ///     fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
    ///         let _ = ws.write_message(format!("{}: {}", self.0, msg.as_text().unwrap_or("")));
    ///     }
    /// }
    ///
    /// let app = Application::builder()
    ///     .websocket_async("/chat", |req| {
    ///         let token = req.query_argument("token").unwrap_or_default();
    ///         async move {
    ///             sleep(Duration::from_millis(5)).await; // a database, say
    ///             match token.as_str() {
    ///                 "t-ann" => Ok(Member("ann".into())),
    ///                 _ => Err(Response::error(403, None)),
    ///             }
    ///         }
    ///     })
    ///     .build();
    /// ```
    ///
    /// # Panics
    /// `pattern` is not a valid regular expression.
    pub fn websocket_async<W, Fut, F>(self, pattern: &str, factory: F) -> Self
    where
        W: WebSocketHandler,
        Fut: Future<Output = Result<W, Response>> + 'static,
        F: Fn(&Request) -> Fut + 'static,
    {
        self.add_websocket_made(pattern, None, later(factory))
    }

    /// [`websocket_async`](Self::websocket_async) with settings of its
    /// own for this route, as [`websocket_with`](Self::websocket_with).
    ///
    /// # Panics
    /// `pattern` is not a valid regular expression.
    pub fn websocket_async_with<W, Fut, F>(
        self,
        pattern: &str,
        settings: WebSocketSettings,
        factory: F,
    ) -> Self
    where
        W: WebSocketHandler,
        Fut: Future<Output = Result<W, Response>> + 'static,
        F: Fn(&Request) -> Fut + 'static,
    {
        self.add_websocket_made(pattern, Some(Rc::new(settings.into())), later(factory))
    }

    fn add_websocket<W, F>(
        self,
        pattern: &str,
        settings: Option<Rc<RouteSettings>>,
        factory: F,
    ) -> Self
    where
        W: WebSocketHandler,
        F: Fn(&Request) -> W + 'static,
    {
        let factory = WebSocketFactory::Now(Box::new(move |req| Box::new(factory(req))));
        self.add_websocket_made(pattern, settings, factory)
    }

    fn add_websocket_made(
        mut self,
        pattern: &str,
        settings: Option<Rc<RouteSettings>>,
        factory: WebSocketFactory,
    ) -> Self {
        let inherit = settings.is_none();
        let settings = settings.unwrap_or_default();
        self.routes.push(Route::new(
            pattern,
            Target::WebSocket {
                factory,
                settings,
                inherit,
            },
        ));
        self
    }

    /// `static_path`: serve `/static/(.*)`, `/favicon.ico` and `/robots.txt`
    /// from `dir` (see [`Settings::static_path`]).
    pub fn static_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.settings.static_path = Some(dir.into());
        self
    }

    /// `static_url_prefix` (default `/static/`).
    pub fn static_url_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.static_url_prefix = prefix.into();
        self
    }

    /// `static_hash_cache`: whether
    /// [`RequestContext::static_url`](super::RequestContext::static_url)
    /// hashes each file once (`true`, the default without `debug`) or on
    /// every call (`false`, the default with `debug`), whatever `debug`
    /// is set to (see [`Settings::static_hash_cache`]).
    pub fn static_hash_cache(mut self, cache: bool) -> Self {
        self.settings.static_hash_cache = Some(cache);
        self
    }

    /// `template_path`: where `render` finds templates.
    pub fn template_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.settings.template_path = Some(dir.into());
        self
    }

    /// `template_whitespace` (see [`Settings::template_whitespace`]).
    pub fn template_whitespace(mut self, mode: super::Whitespace) -> Self {
        self.settings.template_whitespace = Some(mode);
        self
    }

    /// `debug` (see [`Settings::debug`]).
    pub fn debug(mut self, debug: bool) -> Self {
        self.settings.debug = debug;
        self
    }

    /// `cookie_secret`, one secret (see [`Settings::cookie_secret`]).
    pub fn cookie_secret(mut self, secret: impl Into<String>) -> Self {
        self.settings.cookie_secret = Some(CookieSecret::Single(secret.into()));
        self
    }

    /// `cookie_secret` as a dictionary of secrets by key version, for key
    /// rotation (Tornado's `cookie_secret={1: "...", 2: "..."}`): cookies
    /// signed with any of them are read, new ones are signed with the
    /// secret of [`key_version`](Self::key_version) (see
    /// [`Settings::cookie_secret`]).
    ///
    /// ```
    /// use cyclone::web::Application;
    ///
    /// let app = Application::builder()
    ///     .cookie_secrets([(1, "the retired secret"), (2, "the current secret")])
    ///     .key_version(2)
    ///     .build();
    /// ```
    pub fn cookie_secrets<S: Into<String>>(
        mut self,
        secrets: impl IntoIterator<Item = (u32, S)>,
    ) -> Self {
        self.settings.cookie_secret = Some(CookieSecret::versioned(secrets));
        self
    }

    /// `key_version`: which of the [`cookie_secrets`](Self::cookie_secrets)
    /// signs new cookies (see [`Settings::key_version`]).
    pub fn key_version(mut self, key_version: u32) -> Self {
        self.settings.key_version = Some(key_version);
        self
    }

    /// `login_url` (see [`Settings::login_url`]).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.settings.login_url = Some(url.into());
        self
    }

    /// `xsrf_cookies` (see [`Settings::xsrf_cookies`]).
    pub fn xsrf_cookies(mut self, on: bool) -> Self {
        self.settings.xsrf_cookies = on;
        self
    }

    /// `cross_origin_protection` (see [`Settings::cross_origin_protection`]).
    pub fn cross_origin_protection(mut self, on: bool) -> Self {
        self.settings.cross_origin_protection = on;
        self
    }

    /// `trusted_origins` (see [`Settings::trusted_origins`]).
    pub fn trusted_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.trusted_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// `xsrf_cookie_version` (see [`Settings::xsrf_cookie_version`]).
    pub fn xsrf_cookie_version(mut self, version: super::XsrfCookieVersion) -> Self {
        self.settings.xsrf_cookie_version = version;
        self
    }

    /// `xsrf_cookie_name` (see [`Settings::xsrf_cookie_name`]).
    ///
    /// # Panics
    /// If `name` cannot be a cookie name (empty, or not an RFC 6265 token:
    /// `=`, `;`, `,`, `"`, `/`, brackets, spaces, control characters,
    /// non-ASCII; or an attribute name such as `path`, which Python's
    /// `http.cookies` reserves), as an invalid route pattern panics: the application
    /// could never set the cookie.
    pub fn xsrf_cookie_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            super::cookie::name_ok(&name),
            "xsrf_cookie_name {name:?} is not a valid cookie name"
        );
        self.settings.xsrf_cookie_name = name;
        self
    }

    /// `xsrf_cookie_kwargs` (see [`Settings::xsrf_cookie_kwargs`]).
    pub fn xsrf_cookie_kwargs(mut self, options: super::CookieOptions) -> Self {
        self.settings.xsrf_cookie_kwargs = options;
        self
    }

    /// `compress_response` (Tornado's `gzip`; see
    /// [`Settings::compress_response`]).
    #[doc(alias = "gzip")]
    pub fn compress_response(mut self, on: bool) -> Self {
        self.settings.compress_response = on;
        self
    }

    /// Replaces every setting made so far (routes are kept).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// `websocket_ping_interval`: ping every connection this often (zero:
    /// no pings, as in Tornado).
    pub fn websocket_ping_interval(mut self, interval: Duration) -> Self {
        self.settings.websocket.ping_interval = Some(interval);
        self
    }

    /// `websocket_ping_timeout`: close a connection whose pong is this late
    /// (never more than the interval; zero: no timeout, as in Tornado).
    pub fn websocket_ping_timeout(mut self, timeout: Duration) -> Self {
        self.settings.websocket.ping_timeout = Some(timeout);
        self
    }

    /// `websocket_max_message_size`: larger messages close with 1009, as
    /// do messages in more fragments than the limit ÷ 16 (see
    /// [`WebSocketSettings::max_message_size`]).
    pub fn websocket_max_message_size(mut self, bytes: usize) -> Self {
        self.settings.websocket.max_message_size = bytes;
        self
    }

    /// Time to wait for the peer's Close before dropping the connection.
    pub fn websocket_close_timeout(mut self, timeout: Duration) -> Self {
        self.settings.websocket.close_timeout = timeout;
        self
    }

    /// Cap on bytes queued for one WebSocket connection (slow-consumer
    /// policy: see [`WebSocketSettings::max_write_buffer`]).
    pub fn websocket_max_write_buffer(mut self, bytes: usize) -> Self {
        self.settings.websocket.max_write_buffer = bytes;
        self
    }

    /// How long a WebSocket queue may stay over `websocket_max_write_buffer`
    /// before the slow consumer is closed (default 2 s).
    pub fn websocket_slow_consumer_grace(mut self, grace: Duration) -> Self {
        self.settings.websocket.slow_consumer_grace = grace;
        self
    }

    /// What to do with a connection whose queue is over
    /// `websocket_max_write_buffer`: close it (default) or drop new messages
    /// and report them through `on_messages_dropped`.
    pub fn websocket_slow_consumer_policy(
        mut self,
        policy: crate::websocket::SlowConsumerPolicy,
    ) -> Self {
        self.settings.websocket.slow_consumer_policy = policy;
        self
    }

    /// Close WebSocket connections that received nothing for `timeout` (1001).
    pub fn websocket_idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.websocket.idle_timeout = Some(timeout);
        self
    }

    /// Application default for permessage-deflate.
    pub fn compression(mut self, options: CompressionOptions) -> Self {
        self.settings.websocket.compression = Some(options);
        self
    }

    /// Request line + headers, bytes (431 beyond).
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.settings.http.max_header_size = bytes;
        self
    }

    /// Header lines per request (431 beyond; default 100, at most 128: a
    /// larger value is treated as 128).
    pub fn max_header_count(mut self, count: usize) -> Self {
        self.settings.http.max_header_count = count;
        self
    }

    /// Request body, bytes (413 beyond).
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.settings.http.max_body_size = bytes;
        self
    }

    /// Simultaneous connections (503 beyond).
    pub fn max_connections(mut self, count: usize) -> Self {
        self.settings.http.max_connections = count;
        self
    }

    /// Linux `TCP_DEFER_ACCEPT`: connections reach `accept` once their first
    /// bytes arrived, or after `wait` (default 10 s; `None` turns it off).
    pub fn defer_accept(mut self, wait: Option<Duration>) -> Self {
        self.settings.http.defer_accept = wait;
        self
    }

    /// Tornado's `xheaders=True` (see [`HttpLimits::xheaders`](crate::http::HttpLimits::xheaders)):
    /// behind a reverse proxy, the client's address and scheme come from
    /// its `X-Real-Ip` / `X-Forwarded-For` and `X-Scheme` /
    /// `X-Forwarded-Proto` headers.
    pub fn xheaders(mut self, on: bool) -> Self {
        self.settings.http.xheaders = on;
        self
    }

    /// Tornado's `trusted_downstream` (see
    /// [`HttpLimits::trusted_downstream`](crate::http::HttpLimits::trusted_downstream)).
    pub fn trusted_downstream<S: Into<String>>(
        mut self,
        proxies: impl IntoIterator<Item = S>,
    ) -> Self {
        self.settings.http.trusted_downstream = proxies.into_iter().map(Into::into).collect();
        self
    }

    /// Tornado's `decompress_request=True` (see
    /// [`HttpLimits::decompress_request`](crate::http::HttpLimits::decompress_request)):
    /// a request body sent with `Content-Encoding: gzip` reaches handlers
    /// decompressed, the header renamed `X-Consumed-Content-Encoding`.
    pub fn decompress_request(mut self, on: bool) -> Self {
        self.settings.http.decompress_request = on;
        self
    }

    /// `TCP_NODELAY` default, for HTTP and upgraded WebSocket connections.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.settings.http.nodelay = nodelay;
        self.settings.websocket.nodelay = nodelay;
        self
    }

    /// Time for a started request to arrive completely.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.http.request_timeout = timeout;
        self
    }

    /// Time an idle keep-alive connection is kept.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.http.idle_timeout = timeout;
        self
    }

    /// The application. With `static_path` set, the static routes come
    /// first, as in Tornado.
    pub fn build(self) -> Application {
        let ApplicationBuilder {
            mut routes,
            settings,
            default,
            ui_methods,
            ui_modules,
        } = self;
        let mut named = HashMap::new();
        for route in &routes {
            if let Some(name) = &route.name {
                let pieces = reverse_pieces(&route.pattern, route.regex.captures_len() - 1);
                if named.insert(name.clone(), pieces).is_some() {
                    log::warn!("Multiple routes named {name:?}; the later one is kept");
                }
            }
        }
        let secret: Option<Arc<CookieSecret>> =
            super::signed::usable_secret(settings.cookie_secret.as_ref())
                .cloned()
                .map(Into::into);
        let statics = settings.static_path.clone().map(|dir| {
            let files = StaticFiles::new(dir);
            let prefix = format!("{}(.*)", regex::escape(&settings.static_url_prefix));
            [prefix.as_str(), r"/(favicon\.ico)", r"/(robots\.txt)"].map(|p| {
                let files = files.clone();
                let factory: HandlerFactory = Box::new(move || Box::new(files.clone()));
                Route::new(p, Target::Handler(factory))
            })
        });
        let mut app_ws = RouteSettings::from(settings.websocket.clone());
        let shared = Rc::new(Shared {
            settings,
            named,
            templates: RefCell::new(HashMap::new()),
            static_hashes: RefCell::new(HashMap::new()),
            ui_methods,
            ui_modules,
        });
        let context = ApplicationContext(shared.clone());
        if app_ws.cookie_secret.is_none() {
            app_ws.cookie_secret.clone_from(&secret);
        }
        app_ws.app = Some(context.clone());
        let app_ws = Rc::new(app_ws);
        for route in &mut routes {
            if let Target::WebSocket {
                settings, inherit, ..
            } = &mut route.target
            {
                if *inherit {
                    *settings = app_ws.clone();
                } else {
                    let own = Rc::make_mut(settings);
                    if own.cookie_secret.is_none() {
                        own.cookie_secret.clone_from(&secret);
                    }
                    own.app = Some(context.clone());
                }
            }
        }
        warn_of_capped_ping_timeouts(&routes);
        if let Some(statics) = statics {
            routes.splice(0..0, statics);
        }
        Application {
            inner: Rc::new(Inner {
                routes,
                default,
                shared,
            }),
        }
    }
}

/// Tornado 6.5's warning for a `websocket_ping_timeout` longer than the
/// interval, which it and [`WebSocketSettings::effective_ping_timeout`]
/// cap to the interval: once per distinct pair of the application's
/// WebSocket routes, at `build` (Tornado logs it at the first connection,
/// once per process).
///
/// [`WebSocketSettings::effective_ping_timeout`]: crate::websocket::WebSocketSettings::effective_ping_timeout
fn warn_of_capped_ping_timeouts(routes: &[Route]) {
    let mut told = Vec::new();
    for route in routes {
        let Target::WebSocket { settings, .. } = &route.target else {
            continue;
        };
        let (Some(interval), Some(timeout)) =
            (settings.effective_ping_interval(), settings.ping_timeout)
        else {
            continue;
        };
        if timeout > interval && !told.contains(&(timeout, interval)) {
            told.push((timeout, interval));
            log::warn!(
                "The websocket_ping_timeout ({timeout:?}) cannot be longer than the \
                 websocket_ping_interval ({interval:?}). Setting \
                 websocket_ping_timeout={interval:?}"
            );
        }
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    /// A shortcut gives the regex's answer for every path, and only plain
    /// strings and `.*` take one.
    #[test]
    fn shortcuts_agree_with_the_regex() {
        let patterns = [
            "/",
            "/chat",
            "/a/b.c",
            ".*",
            "/ws-1_~x",
            "/a.b",
            "/(.*)",
            "/[a-z]+",
            ".+",
            "/a|/b",
            "",
            "/ü",
            "/x?",
            "/a b",
            "/a-b&c~d#e",
            "/a\\-b",
            "/a{2}",
            "^/a",
            "/a$",
        ];
        let paths = [
            "",
            "/",
            "/chat",
            "/chat/",
            "/a/b.c",
            "/a/bxc",
            "/ws-1_~x",
            "/a.b",
            "/axb",
            "/abc",
            "/a",
            "/b",
            "/ü",
            "/x",
            "/a b",
            "x\n",
            "/\n",
            "/chat\n",
            "/a-b&c~d#e",
            "/a-b",
            "/aa",
            "/a{2}",
            "^/a",
            "/a$",
            "/a\\-b",
        ];
        for pattern in patterns {
            let route = Route::new(pattern, Target::Handler(Box::new(|| unreachable!())));
            for path in paths {
                assert_eq!(
                    route.is_match(path),
                    route.regex.is_match(path),
                    "{pattern:?} on {path:?} ({:?})",
                    route.shortcut
                );
            }
        }
        assert_eq!(Shortcut::of("/chat"), Shortcut::Literal);
        assert_eq!(Shortcut::of(".*"), Shortcut::AnyLine);
        assert_eq!(Shortcut::of("/ws-echo"), Shortcut::Literal);
        assert_eq!(Shortcut::of("/a.b"), Shortcut::None);
        assert_eq!(Shortcut::of("/(.*)"), Shortcut::None);
    }
}
