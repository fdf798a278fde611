//! Tornado 6.6's cross-origin protection: whether a request a browser
//! sent comes from the page's own origin, from `Sec-Fetch-Site` (Fetch
//! Metadata) or, in a browser that does not send it, from `Origin` against
//! `Host`.

use crate::http::Request;
use crate::websocket::handler::same_origin;

/// `None` when `req` may go on; else why not (Tornado's
/// `_check_cross_origin`). `check` decides an origin the request looks
/// cross-origin from (`check_trusted_origin`, a WebSocket's
/// `check_origin`):
/// - `Sec-Fetch-Site: same-origin` or `none` (a typed URL, a bookmark):
///   allowed, `check` not asked;
/// - no `Sec-Fetch-Site` (an older browser, plain HTTP, or no browser):
///   allowed without `Origin` (not a browser), or when `Origin`'s host
///   and port are the `Host` header's, else as `check` says;
/// - `cross-site` or `same-site` (or any other value): allowed only when
///   there is an `Origin` and `check` accepts it.
pub(crate) fn check_cross_origin(
    req: &Request,
    check: impl FnOnce(&str) -> bool,
) -> Option<String> {
    cross_origin_refusal(
        req.header("Origin"),
        req.header("Sec-Fetch-Site"),
        req,
        check,
    )
}

/// [`check_cross_origin`] with the `Origin` and `Sec-Fetch-Site` values
/// already found (the WebSocket handshake's one pass over the headers,
/// `check_upgrade_iter`, notes them): no scan of the head for either.
/// `req` is asked only for its host, and only when the rule needs it.
pub(crate) fn cross_origin_refusal(
    origin: Option<&str>,
    fetch_site: Option<&str>,
    req: &Request,
    check: impl FnOnce(&str) -> bool,
) -> Option<String> {
    match fetch_site {
        Some("same-origin" | "none") => None,
        None => match origin {
            None => None,
            Some(o) if same_origin(o, req.host().unwrap_or("")) || check(o) => None,
            Some(o) => Some(format!("Origin {o:?} not allowed")),
        },
        Some(site) => match origin {
            Some(o) if check(o) => None,
            _ => Some(format!(
                "Sec-Fetch-Site {site} & origin {} not allowed",
                origin.map_or_else(|| "None".to_string(), |o| format!("{o:?}"))
            )),
        },
    }
}
