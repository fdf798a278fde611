//! Tornado's `tornado.escape` for Rust code: the same functions templates
//! call, with the same output, for text built outside a template (a
//! WebSocket message carrying HTML, a link in an email, a JSON island).

use std::borrow::Cow;

use serde::Serialize;

use super::template::expr::{Options, Permitted};

/// `xhtml_escape`: `& < > " '` as `&amp; &lt; &gt; &quot; &#x27;`, as
/// Tornado 6.4 and later write them (Python's `html.escape`; Tornado
/// before 6.4 wrote `'` as `&#39;`, the same character).
pub fn xhtml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    super::template::push_escaped(&mut out, text);
    out
}

/// `url_escape(value, plus)`: Python's `quote_plus` (`plus`: a space is
/// `+`, `/` escaped) or `quote` (a space is `%20`, `/` kept) of the UTF-8
/// text.
pub fn url_escape(value: &str, plus: bool) -> Cow<'_, str> {
    super::template::url_escape_with(value, plus)
}

/// `url_unescape(value, plus)`: `%XX` escapes decoded (and `+` as a space
/// with `plus`), the bytes read as UTF-8 (invalid sequences replaced).
pub fn url_unescape(value: &str, plus: bool) -> String {
    crate::http::request::percent_decode(value, plus)
}

/// `json_encode`: Python's `json.dumps` text of `value` (`", "` and `": "`
/// separators, non-ASCII as `\uXXXX`, floats as Python writes them), with
/// `</` written `<\/` so that it cannot end a `<script>`.
///
/// # Errors
/// `value` does not serialize to JSON (a map with keys that are not
/// strings, or a `Serialize` implementation failing).
pub fn json_encode(value: &(impl Serialize + ?Sized)) -> Result<String, serde_json::Error> {
    super::template::python_json(value)
}

/// `squeeze`: every run of whitespace and control characters
/// (`\x00`–`\x20`) one space, then Python's `strip`.
pub fn squeeze(text: &str) -> String {
    super::template::squeeze(text)
}

/// `linkify`'s keyword arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkifyOptions {
    /// `shorten`: long URLs are shown clipped (the whole one in `title`).
    pub shorten: bool,
    /// `extra_params`: attributes added to every link, such as
    /// `rel="nofollow"`.
    pub extra_params: String,
    /// `require_protocol`: only URLs with a scheme become links (not
    /// `www.example.com`).
    pub require_protocol: bool,
    /// `permitted_protocols`: the schemes made links (default `http`,
    /// `https`).
    pub permitted_protocols: Vec<String>,
}

impl Default for LinkifyOptions {
    fn default() -> Self {
        LinkifyOptions {
            shorten: false,
            extra_params: String::new(),
            require_protocol: false,
            permitted_protocols: vec!["http".into(), "https".into()],
        }
    }
}

/// `linkify(text, ...)`: the text HTML-escaped, its URLs made links, as
/// Tornado's `linkify` makes them (its URL pattern and options).
///
/// ```
/// use cyclone::web::escape::{linkify, LinkifyOptions};
///
/// let html = linkify("see https://example.com/a?b=1 & more", &LinkifyOptions::default());
/// assert_eq!(
///     html,
///     r#"see <a href="https://example.com/a?b=1">https://example.com/a?b=1</a> &amp; more"#
/// );
/// ```
pub fn linkify(text: &str, options: &LinkifyOptions) -> String {
    let internal = Options {
        shorten: options.shorten,
        extra_params: options.extra_params.clone(),
        require_protocol: options.require_protocol,
        permitted_protocols: Some(Permitted::List(options.permitted_protocols.clone())),
        ..Options::default()
    };
    super::template::linkify_with(text, &internal, usize::MAX).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_templates_use() {
        assert_eq!(
            xhtml_escape("<a href='x'>&</a>"),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(url_escape("a b/é", true), "a+b%2F%C3%A9");
        assert_eq!(url_escape("a b/é", false), "a%20b/%C3%A9");
        assert_eq!(url_unescape("a+b%2F%C3%A9", true), "a b/é");
        assert_eq!(url_unescape("a+b", false), "a+b");
        assert_eq!(
            json_encode(&serde_json::json!({"a": [1.5, "é</"]})).unwrap(),
            r#"{"a": [1.5, "\u00e9<\/"]}"#
        );
        assert_eq!(squeeze("  a \t\n b  "), "a b");
        let opts = LinkifyOptions {
            require_protocol: true,
            extra_params: "rel=\"nofollow\"".into(),
            ..LinkifyOptions::default()
        };
        assert_eq!(
            linkify("www.x.y and http://x.y", &opts),
            r#"www.x.y and <a href="http://x.y" rel="nofollow">http://x.y</a>"#
        );
    }

    /// outputs of Tornado 6.6.1's `tornado.escape` on odd input.
    #[test]
    fn linkify_and_friends_match_tornado() {
        let d = LinkifyOptions::default();
        for (input, want) in [
            ("http://x.y/\"onmouseover=alert(1)", "<a href=\"http://x.y/&quot;onmouseover=alert(1)\">http://x.y/&quot;onmouseover=alert(1)</a>"),
            ("javascript:alert(1)", "javascript:alert(1)"),
            ("http://a.b/<script>", "<a href=\"http://a.b/\">http://a.b/</a>&lt;script&gt;"),
            ("www.x.com/a&b=c", "<a href=\"http://www.x.com/a&amp;b=c\">www.x.com/a&amp;b=c</a>"),
            ("http://x.y/'a'", "<a href=\"http://x.y/\">http://x.y/</a>&#x27;a&#x27;"),
            ("http://x/(a)b)", "<a href=\"http://x/(a)b\">http://x/(a)b</a>)"),
            ("data:text/html,hi http://ok.com/&quot;x", "data:text/html,hi <a href=\"http://ok.com/&amp;quot;x\">http://ok.com/&amp;quot;x</a>"),
            ("HTTP://X.Y/a", "HTTP://X.Y/a"),
            ("ftp://x.y/", "ftp://x.y/"),
            ("http:/x", "<a href=\"http:/x\">http:/x</a>"),
            ("http:///x.y", "<a href=\"http:///x.y\">http:///x.y</a>"),
        ] {
            assert_eq!(linkify(input, &d), want, "{input}");
        }
        // Python's `\b`, `\w` and `\s`: a combining mark is no word
        // character, U+001C to U+001F are whitespace.
        for (input, want) in [
            (
                "\u{301}http://x.com",
                "\u{301}<a href=\"http://x.com\">http://x.com</a>",
            ),
            (
                "a\u{301}www.x.com",
                "a\u{301}<a href=\"http://www.x.com\">www.x.com</a>",
            ),
            (
                "x\u{903}http://y.z",
                "x\u{903}<a href=\"http://y.z\">http://y.z</a>",
            ),
            ("\u{2160}http://x.com", "\u{2160}http://x.com"),
            (
                "http://a.com\x1fb",
                "<a href=\"http://a.com\">http://a.com</a>\x1fb",
            ),
            (
                "http://a.com\x1cb",
                "<a href=\"http://a.com\">http://a.com</a>\x1cb",
            ),
        ] {
            assert_eq!(linkify(input, &d), want, "{input:?}");
        }
        let opts = LinkifyOptions {
            extra_params: "\x1crel=x\x1f".into(),
            ..LinkifyOptions::default()
        };
        assert_eq!(
            linkify("http://a.b", &opts),
            "<a href=\"http://a.b\" rel=x>http://a.b</a>"
        );
        assert_eq!(url_unescape("%zz%4", true), "%zz%4");
        assert_eq!(url_unescape("a%C3", false), "a\u{fffd}");
        assert_eq!(xhtml_escape("\x00<>&\"'"), "\x00&lt;&gt;&amp;&quot;&#x27;");
    }

    /// Tornado 6.6.1's `json_encode` on numbers and odd strings.
    #[test]
    fn json_encode_matches_tornado() {
        use serde_json::json;
        for (v, want) in [
            (json!(1e100), "1e+100"),
            (json!(1.0), "1.0"),
            (json!(0.1), "0.1"),
            (json!(-0.0), "-0.0"),
            (json!(1e16), "1e+16"),
            (json!(5e-324), "5e-324"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(1e22), "1e+22"),
            (json!(123456789012345680.0), "1.2345678901234568e+17"),
            (json!("😀"), r#""\ud83d\ude00""#),
            (json!("a/b</x"), r#""a/b<\/x""#),
            (json!("\x7f\x1f"), r#""\u007f\u001f""#),
        ] {
            assert_eq!(json_encode(&v).unwrap(), want, "{v}");
        }
    }
}
