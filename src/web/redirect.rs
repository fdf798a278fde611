//! `RedirectHandler`: a route that only redirects (Tornado's
//! `tornado.web.RedirectHandler`).

use super::context::RequestContext;
use super::handler::RequestHandler;
use super::template::url_escape_bytes;
use crate::http::request::{parse_qs, parse_qs_raw};

/// Redirects every `GET` to another URL: Tornado's `RedirectHandler`
/// (`(r"/old/(.*)", RedirectHandler, {"url": "/new/{0}"})`).
///
/// The target is a format string: `{0}`, `{1}`, … are the route's
/// captures in order and `{name}` a named capture (Python's
/// `str.format`; `{{` and `}}` are braces). The request's query arguments
/// are added to the target's, as Tornado's `url_concat` adds them
/// (re-encoded, the bytes of each value kept as sent: `?v=%E9` stays
/// `v=%E9`). The bytes of names are kept too, where Tornado writes its
/// Latin-1 reading of them in UTF-8 (`?%C3%A9=1` is `%C3%83%C2%A9=1`
/// there). Permanent (301) by default, as in Tornado.
///
/// As in Tornado 6.6, a capture cannot move the redirect to another site:
/// a target whose scheme or host differs from what the format string's
/// text before its first field names (`/{0}` with `/evil.example`
/// captured is `//evil.example`), or one holding control characters, is
/// answered 400.
///
/// ```
/// use cyclone::web::{Application, RedirectHandler};
///
/// let old_blog = RedirectHandler::new("/blog/{0}");
/// let app = Application::builder()
///     .route(r"/posts/(.*)", move || old_blog.clone())
///     .route(r"/latest", || RedirectHandler::new("/blog/2026/hello").temporary())
///     .build();
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct RedirectHandler {
    url: String,
    permanent: bool,
}

impl RedirectHandler {
    /// Redirects to `url` (a format string of the captures) with 301.
    pub fn new(url: impl Into<String>) -> RedirectHandler {
        RedirectHandler {
            url: url.into(),
            permanent: true,
        }
    }

    /// With 302 instead of 301 (Tornado's `permanent=False`).
    pub fn temporary(mut self) -> RedirectHandler {
        self.permanent = false;
        self
    }
}

impl RequestHandler for RedirectHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let Some(mut to) = format_url(&self.url, args, |name| cx.path_kwarg(name)) else {
            log::error!(
                "RedirectHandler: {:?} names a capture the route does not have",
                self.url
            );
            return cx.send_error(500);
        };
        // Tornado's `request.query_arguments` is a dict: the values of a
        // name together, names in the order they first appear.
        // Bytes, as Tornado's `parse_qs_bytes` keeps them: a value that
        // is not UTF-8 goes on unchanged.
        let mut query: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, v) in parse_qs_raw(cx.request().query().as_bytes()) {
            match query.iter().rposition(|(n, _)| *n == k) {
                Some(i) => query.insert(i + 1, (k, v)),
                None => query.push((k, v)),
            }
        }
        if !query.is_empty() {
            to = url_concat(&to, &query);
        }
        // Tornado 6.6: a substitution may not change the scheme or host
        // the template's literal start names (`/{0}` with `{0}` =
        // `/evil.example` is `//evil.example`, an open redirect).
        let (prefix, substituted) = literal_prefix(&self.url);
        let (scheme, netloc) = scheme_and_netloc(&prefix);
        let unchanged = scheme_and_netloc(&to) == (scheme.clone(), netloc.clone())
            && !(substituted && matches!(scheme.as_str(), "http" | "https") && netloc.is_empty());
        if !unchanged {
            return cx.refuse(400, "Redirect URL cannot change the scheme or netloc");
        }
        // The characters a header value cannot hold (Tornado's
        // `_FORBIDDEN_HEADER_CHARS_RE`).
        if !to.bytes().all(crate::http::response::field_byte) {
            return cx.refuse(400, "Redirect URL contains invalid characters");
        }
        cx.redirect(&to, self.permanent);
    }
}

/// Python's `template.format(*args, **kwargs)` for plain `{0}`, `{name}`
/// and `{}` fields (automatic numbering), `{{` and `}}`; `None` for a
/// field naming no capture or one Python would refuse.
fn format_url<'a>(
    template: &str,
    args: &[&str],
    kwarg: impl Fn(&str) -> Option<&'a str>,
) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut auto = 0;
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return None,
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next()? {
                        '}' => break,
                        '{' => return None,
                        c => field.push(c),
                    }
                }
                let value = if field.is_empty() {
                    auto += 1;
                    args.get(auto - 1).copied()?
                } else if field.bytes().all(|b| b.is_ascii_digit()) {
                    args.get(field.parse::<usize>().ok()?).copied()?
                } else {
                    kwarg(&field)?
                };
                out.push_str(value);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// The template's text before its first field (`{{`/`}}` as braces), and
/// whether it has a field at all (Tornado's `string.Formatter().parse`).
fn literal_prefix(template: &str) -> (String, bool) {
    let b = template.as_bytes();
    let mut i = 0;
    // The first `{` that is not `{{` opens the first field.
    let field = loop {
        match b.get(i..) {
            Some([b'{', b'{', ..]) => i += 2,
            Some([b'{', ..]) => break true,
            Some([_, ..]) => i += 1,
            _ => break false,
        }
    };
    // The text before it, its braces read as `format_url` reads them.
    let text = format_url(&template[..i], &[], |_| None).unwrap_or_default();
    (text, field)
}

/// Tornado's `_scheme_and_netloc`: the scheme and host part (user info
/// and port included) a browser sees in `url`, lowercased, once it has
/// cleaned the URL up as [`like_browser`](super::context::like_browser) does; any number of
/// slashes may come before the host.
fn scheme_and_netloc(url: &str) -> (String, String) {
    let cleaned: String = super::context::like_browser(url).collect();
    let mut rest = cleaned.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if cand.starts_with(|c: char| c.is_ascii_alphabetic())
            && cand
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            scheme = cand.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let netloc = if rest.starts_with("//") {
        let after = rest.trim_start_matches('/');
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        after[..end].to_ascii_lowercase()
    } else {
        String::new()
    };
    (scheme, netloc)
}

/// Tornado's `url_concat`: `args` added to the query `url` already has,
/// the whole query written again as Python's `urlencode` writes it; a
/// `#fragment` stays last.
fn url_concat(url: &str, args: &[(Vec<u8>, Vec<u8>)]) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    // Python's `parse_qsl` reads the URL's own query as UTF-8.
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = parse_qs(query)
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect();
    pairs.extend(args.iter().cloned());
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                url_escape_bytes(k, true),
                url_escape_bytes(v, true)
            )
        })
        .collect();
    let mut out = format!("{base}?{}", encoded.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_format_as_python_formats_them() {
        let args = ["a b", "2"];
        let kw = |n: &str| (n == "slug").then_some("s");
        let f = |t: &str| format_url(t, &args, kw);
        assert_eq!(f("/new/{0}/{1}").as_deref(), Some("/new/a b/2"));
        assert_eq!(f("/new/{}/{}").as_deref(), Some("/new/a b/2"));
        assert_eq!(f("/{slug}/{{x}}").as_deref(), Some("/s/{x}"));
        assert_eq!(f("/plain").as_deref(), Some("/plain"));
        for bad in ["/{2}", "/{other}", "/{", "/}", "/{a{b}"] {
            assert_eq!(f(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_arguments_are_concatenated_as_tornado_does() {
        let args = vec![
            (b"q".to_vec(), b"x y".to_vec()),
            (b"e".to_vec(), Vec::new()),
        ];
        assert_eq!(url_concat("/new", &args), "/new?q=x+y&e=");
        assert_eq!(url_concat("/new?a=1#top", &args), "/new?a=1&q=x+y&e=#top");
    }
}
