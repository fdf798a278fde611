//! The web layer: Tornado's `tornado.web` for the pages around a WebSocket
//! application.
//!
//! * [`Application`] — regex routes anchored at both ends (the raw path is
//!   matched, then each capture is percent-decoded), WebSocket routes,
//!   static files, settings with Tornado's names, the access log; it is the
//!   [`http::Service`](crate::http::Service) the HTTP layer calls.
//! * [`RequestHandler`] — one object per request with `get`/`post`/...;
//!   unimplemented methods answer 405 with an `Allow` header; bodies taken
//!   as they arrive (`data_received`) on routes marked
//!   [`stream_request_body`](ApplicationBuilder::stream_request_body).
//! * [`RequestContext`] — the request, arguments, cookies, and the response
//!   being built (`write`, `write_json`, `render`, `render_with`,
//!   `redirect`, `send_error`); [`AsyncResponse`] — the answer completed
//!   after the method returned (`cx.asynchronous()`: long polling, a
//!   streamed body with `flush`, Server-Sent Events).
//! * [`StaticFiles`] — files under `static_path`, without path traversal
//!   (a directory's `index.html` with [`StaticFiles::with_default_filename`]);
//!   [`RedirectHandler`] — a route that only redirects.
//! * Tornado's web security and HTTP conveniences: signed cookies
//!   ([`signed`]), [`CookieOptions`] (`HttpOnly`, `Secure`, `SameSite`),
//!   XSRF tokens (the `xsrf_cookies` setting), `multipart/form-data`
//!   uploads ([`HttpFile`]), the automatic `Etag`/304 and
//!   `compress_response`.
//! * [`Template`] — the template language of `render` and `render_with`:
//!   Tornado's syntax with the Python expressions templates use, evaluated
//!   as Python does (`{{ }}`, `if`/`elif`/`else`, `for`, `set`,
//!   `include`, `extends`/`block`, comprehensions, `%` formatting).
//! * [`UiModule`] — Tornado's UI modules: `{% module Entry(entry) %}`
//!   renders the application's module, and `render` puts the JavaScript
//!   and CSS the page's modules ask for into its `<head>` and `<body>`.

mod application;
mod async_response;
mod context;
pub(crate) mod cookie;
#[cfg(test)]
mod cookie_cases;
pub mod escape;
mod handler;
mod metrics;
mod multipart;
mod origin;
mod redirect;
mod settings;
pub mod signed;
#[cfg(test)]
mod signed_cases;
mod static_files;
mod stream_body;
mod template;
mod ui_module;
mod xsrf;
#[cfg(test)]
mod xsrf_cases;

#[cfg(test)]
mod tests;

pub(crate) use application::ApplicationContext;
pub use application::{Application, ApplicationBuilder, UiMethod};
pub use async_response::AsyncResponse;
pub(crate) use context::{
    clean_argument, escape_script_end, has_form_body, header_value_safe, login_redirect_url,
    remove_control_chars, template_value, FormBody, Refusal,
};
pub use context::{RequestContext, MAX_URLENCODED_ARGUMENTS};
pub use cookie::{CookieOptions, SameSite};
pub use handler::{ErrorHandler, RequestHandler, HANDLER_METHODS};
pub use metrics::MetricsHandler;
pub use multipart::HttpFile;
pub(crate) use origin::{check_cross_origin, cross_origin_refusal};
pub use redirect::RedirectHandler;
pub use settings::Settings;
pub use signed::{create_signed_value, decode_signed_value, CookieSecret};
pub use static_files::{content_type, StaticFiles, StaticUrlError};
pub use template::{Template, TemplateError, Whitespace};
pub use ui_module::{ModuleContext, UiModule, UiModuleFactory};
pub use xsrf::XsrfCookieVersion;
