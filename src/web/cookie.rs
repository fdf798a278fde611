//! The attributes of a cookie a response sets: Tornado's `set_cookie`
//! keyword arguments (`domain`, `path`, `expires`, `expires_days`,
//! `max_age`, `httponly`, `secure`, `samesite`, `partitioned`).

use std::time::{SystemTime, UNIX_EPOCH};

/// `SameSite` (RFC 6265bis §4.1.2.7): whether the browser sends the cookie
/// with requests other sites start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Only with requests from the same site.
    Strict,
    /// Also with top-level navigations from other sites (browsers' default
    /// for a cookie without the attribute).
    Lax,
    /// With every request; browsers require [`CookieOptions::secure`] too.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// How a cookie is set: Tornado's `set_cookie(name, value, domain=None,
/// expires=None, path="/", expires_days=None, max_age=None,
/// httponly=False, secure=False, samesite=None)`, and `partitioned=True`,
/// which Tornado passes on to Python's `http.cookies` (3.14 and later
/// write it).
///
/// The default is Tornado's: `Path=/`, no domain (the host only), no
/// expiry (the cookie lasts as long as the browser session), and no
/// flags.
///
/// # How the `Set-Cookie` line differs from Tornado's
///
/// Compared with Tornado 6.6.1 for 104 `set_cookie` calls
/// (`tests/peers/gen_cookie_cases.py`): 55 lines are the same bytes, 40
/// say the same thing written differently, 6 are refused here where
/// Tornado writes them, two are an `expires` before 1970 and one is
/// `max_age: Some(0)`. What a browser stores is the same for the 40:
///
/// - attributes come in a fixed order (`Domain`, `Expires`, `Max-Age`,
///   `Path`, `HttpOnly`, `Secure`, `SameSite`, `Partitioned`), where Python's
///   `http.cookies` sorts them by name and writes `expires` in lower case;
/// - a value is never quoted: Tornado quotes every value holding a
///   character outside `http.cookies`' legal set (`/`, `=`, `(`, `?`,
///   `@`, `{`, non-ASCII... base64 padding among them:
///   `user="2|1:0|...|8:Ym9iYQ==|..."`) and the empty value (`c=""`).
///   Both read either form back alike; a page's scripts see the quotes;
/// - [`SameSite`] is written `Lax`, `Strict` or `None`, where Tornado
///   writes the string it is given (`samesite="lax"` gives `SameSite=lax`;
///   browsers read either).
///
/// Refused here (logged at `error`, no cookie set), written by Tornado: a
/// value holding `;`, `,`, `"` or DEL (Tornado quotes and escapes it, see
/// [`RequestContext::set_cookie`](super::RequestContext::set_cookie)), and
/// a domain holding `,` or `"`.
///
/// One more: `max_age: Some(0)` writes `Max-Age=0`, which tells the
/// browser to drop the cookie at once; Tornado's `if max_age:` leaves
/// `max_age=0` out, setting a session cookie.
///
/// `Expires` is written from 1970 on: an [`expires`](Self::expires)
/// before the Unix epoch (or `expires_days` that far back) is written as
/// the epoch, where Tornado writes the earlier date. Browsers drop the
/// cookie for either, but ignore an `Expires` before 1601 (RFC 6265
/// §5.1.1) and would keep such a cookie for the session. A date after
/// 9999 is written as the last second of 9999, where Python's `datetime`
/// ends.
///
/// `partitioned` is compared with Tornado 6.6.1 on `http.cookies` as
/// Python 3.14 has it (the generator adds the attribute to 3.11's, as
/// 3.14 did); on Python before 3.14, Tornado raises for it.
///
/// ```
/// use cyclone::web::{CookieOptions, SameSite};
///
/// // Tornado: set_cookie("theme", "dark", expires_days=365, httponly=True, samesite="Lax")
/// let options = CookieOptions {
///     expires_days: Some(365.0),
///     httponly: true,
///     samesite: Some(SameSite::Lax),
///     ..CookieOptions::default()
/// };
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CookieOptions {
    /// `Domain`: also sent to this domain's subdomains. Default none;
    /// empty is none, as in Tornado.
    pub domain: Option<String>,
    /// `Path`. Default `"/"`; empty writes none, as in Tornado (the
    /// browser then uses the directory of the request's path).
    pub path: String,
    /// `expires`: the `Expires` date, a point in time (Tornado's
    /// `expires=datetime`), written to the second below it:
    /// `Expires=Wed, 21 Oct 2015 07:28:00 GMT`. When set, `expires_days`
    /// is not used, as in Tornado. Default none.
    pub expires: Option<SystemTime>,
    /// `expires_days`: an `Expires` date this many days from now (at most
    /// 100 years; negative is the past, which deletes the cookie). Default
    /// none.
    pub expires_days: Option<f64>,
    /// `max_age`: `Max-Age` in seconds (browsers prefer it to `Expires`).
    /// Default none.
    pub max_age: Option<u64>,
    /// `httponly`: scripts in the page cannot read the cookie.
    pub httponly: bool,
    /// `secure`: sent over HTTPS only.
    pub secure: bool,
    /// `samesite`. Default none (the browser's default, `Lax`).
    pub samesite: Option<SameSite>,
    /// `partitioned`: the `Partitioned` attribute (CHIPS), which asks the
    /// browser to keep the cookie apart for each top-level site the page
    /// is embedded in. Browsers take it only with [`secure`](Self::secure)
    /// (and drop the cookie without it); as Tornado, cyclone writes what
    /// it is given. Clear such a cookie with the same options.
    pub partitioned: bool,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            domain: None,
            path: "/".to_string(),
            expires: None,
            expires_days: None,
            max_age: None,
            httponly: false,
            secure: false,
            samesite: None,
            partitioned: false,
        }
    }
}

impl CookieOptions {
    /// The `Set-Cookie` value for `name=value` with these attributes, or
    /// why they cannot make one (a `Domain` or `Path` holding `;`, a
    /// control character or a space would add attributes of its own).
    pub(crate) fn line(&self, name: &str, value: &str, now: f64) -> Result<String, String> {
        let mut line = format!("{name}={value}");
        // Tornado's `if domain:` and `if path:`: empty is none.
        if let Some(domain) = self.domain.as_deref().filter(|d| !d.is_empty()) {
            if !value_ok(domain) {
                return Err(format!("invalid cookie domain {domain:?}"));
            }
            line.push_str("; Domain=");
            line.push_str(domain);
        }
        // Tornado's `if expires_days is not None and not expires`.
        if let Some(at) = self.expires {
            line.push_str("; Expires=");
            line.push_str(&crate::http::http_date(expires_secs(at)));
        } else if let Some(days) = self.expires_days {
            let days = if days.is_nan() { 0.0 } else { days };
            let at = (now + days.clamp(-100.0 * 365.0, 100.0 * 365.0) * 86400.0).max(0.0);
            line.push_str("; Expires=");
            line.push_str(&crate::http::http_date(at as u64));
        }
        if let Some(age) = self.max_age {
            line.push_str(&format!("; Max-Age={age}"));
        }
        // A path may hold `,` and `"` (they are not separators there).
        if self
            .path
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b';')
        {
            return Err(format!("invalid cookie path {:?}", self.path));
        }
        if !self.path.is_empty() {
            line.push_str("; Path=");
            line.push_str(&self.path);
        }
        if self.httponly {
            line.push_str("; HttpOnly");
        }
        if self.secure {
            line.push_str("; Secure");
        }
        if let Some(same) = self.samesite {
            line.push_str("; SameSite=");
            line.push_str(same.as_str());
        }
        if self.partitioned {
            line.push_str("; Partitioned");
        }
        Ok(line)
    }
}

/// The last second of 9999 (`Fri, 31 Dec 9999 23:59:59 GMT`): the latest
/// `Expires` written, the end of Python's `datetime` and of four-digit
/// years.
const LAST_EXPIRES: u64 = 253_402_300_799;

/// The whole seconds from the epoch to `at` (Tornado's `calendar.timegm(
/// expires.utctimetuple())` drops the fraction), from the epoch to
/// [`LAST_EXPIRES`].
fn expires_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_EXPIRES)
}

/// A cookie value needs no quoting: no control characters, spaces, `;`,
/// `,` or `"`.
pub(crate) fn value_ok(s: &str) -> bool {
    !s.bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b';' || b == b',' || b == b'"')
}

/// A cookie name: an RFC 6265 token (RFC 9110 `tchar`s), plus `:`, which
/// Python's `http.cookies` also takes, and not one of the attribute names
/// `http.cookies` reserves, in any case ([`RESERVED_NAMES`]): the names
/// Tornado's `set_cookie` accepts (it raises `CookieError("Illegal key")`
/// or `CookieError("Attempt to set a reserved key")` for the others, and
/// drops request cookies of those names).
pub(crate) fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| crate::protocol::handshake::is_tchar(b) || b == b':')
        && !RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// The cookie attributes Python's `http.cookies.Morsel` reserves (3.11 to
/// 3.13), which no cookie can be named there.
///
/// Python 3.14 adds `partitioned`; cyclone keeps it a cookie name, as the
/// Python 3.11 that it is compared with does: Tornado 6.6.1 there sets
/// `set_cookie("partitioned", "x")` and keeps a request cookie of that
/// name, and so does Tornado on any Python before 3.14. Such a cookie is
/// unambiguous on the wire (the name is the first `name=value` pair of a
/// `Set-Cookie` line, RFC 6265 §5.2, never an attribute), so refusing it
/// would only break applications that work on those Pythons.
const RESERVED_NAMES: [&str; 9] = [
    "expires", "path", "comment", "domain", "max-age", "secure", "httponly", "version", "samesite",
];

/// The `Set-Cookie` value for `call` (`set_cookie`, `clear_cookie`...)
/// setting `name=value` with `options` at `now`, or `None` with the reason
/// logged at `error`: a name or value that would need quoting, or an
/// attribute that would add attributes of its own. One rule for every
/// answer that sets cookies (a [`RequestContext`](super::RequestContext)'s
/// and a WebSocket handshake's).
pub(crate) fn set_cookie_line(
    call: &str,
    name: &str,
    value: &str,
    options: &CookieOptions,
    now: f64,
) -> Option<String> {
    if !name_ok(name) || !value_ok(value) {
        log::error!("{call}: invalid cookie {name:?}={value:?} refused");
        return None;
    }
    options
        .line(name, value, now)
        .map_err(|why| log::error!("{call}({name:?}): {why}: refused"))
        .ok()
}

/// Tornado 6.6's `set_cookie` raises for the cookie: the answer is 500.
pub(crate) struct Raises;

/// What a `set_cookie` call (`call`, as [`set_cookie_line`]) makes of
/// `name=value` with `options` now: its `Set-Cookie` value; `Ok(None)`
/// for one refused (logged) that Tornado writes quoted; `Err(Raises)`
/// (logged) for one Tornado's `set_cookie` raises for
/// ([`tornado_raises`]). One rule for a
/// [`RequestContext`](super::RequestContext)'s cookies and a WebSocket
/// handshake's.
pub(crate) fn set_cookie_call(
    call: &str,
    name: &str,
    value: &str,
    options: &CookieOptions,
) -> Result<Option<String>, Raises> {
    let now = super::signed::now_secs_f64();
    match set_cookie_line(call, name, value, options, now) {
        Some(line) => Ok(Some(line)),
        None if tornado_raises(name, value, options) => Err(Raises),
        None => Ok(None),
    }
}

/// Whether Tornado 6.6's `set_cookie` raises for this cookie (and answers
/// 500): a name `http.cookies` refuses ([`name_ok`]), a value with a
/// control character or a space, or a domain or path with one, `;` or
/// DEL. (A value with `;`, `,`, `"` or DEL Tornado writes quoted; it is
/// refused without that.)
fn tornado_raises(name: &str, value: &str, options: &CookieOptions) -> bool {
    let bad_attribute = |s: &str| s.bytes().any(|b| b <= b' ' || b == b';' || b == 0x7f);
    !name_ok(name)
        || value.bytes().any(|b| b <= b' ')
        || options.domain.as_deref().is_some_and(bad_attribute)
        || bad_attribute(&options.path)
}

/// The `Set-Cookie` value that deletes the cookie `name` set with
/// `options`' `path` and `domain`: empty, expired at the epoch (for
/// browsers without `Max-Age`) and now. `None` as [`set_cookie_line`].
pub(crate) fn clear_cookie_line(name: &str, options: &CookieOptions) -> Option<String> {
    let gone = CookieOptions {
        expires: None,
        expires_days: Some(0.0),
        max_age: Some(0),
        ..options.clone()
    };
    set_cookie_line("clear_cookie", name, "", &gone, 0.0)
}

/// Whether the `Set-Cookie` value `line` sets the cookie `name` (an answer
/// sets each name once: Tornado keys its cookies by name, and RFC 6265
/// §4.1.1 asks for one `Set-Cookie` per name).
pub(crate) fn sets(line: &str, name: &str) -> bool {
    line.split_once('=').is_some_and(|(n, _)| n == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn attributes_in_order() {
        let now = 1_000_000_000.0;
        assert_eq!(
            CookieOptions::default().line("a", "b", now).unwrap(),
            "a=b; Path=/"
        );
        let all = CookieOptions {
            domain: Some("example.com".into()),
            path: "/app".into(),
            expires_days: Some(1.0),
            max_age: Some(86400),
            httponly: true,
            secure: true,
            samesite: Some(SameSite::Strict),
            expires: None,
            partitioned: true,
        };
        assert_eq!(
            all.line("sid", "x|y", now).unwrap(),
            "sid=x|y; Domain=example.com; Expires=Mon, 10 Sep 2001 01:46:40 GMT; Max-Age=86400; \
             Path=/app; HttpOnly; Secure; SameSite=Strict; Partitioned"
        );
        let gone = CookieOptions {
            expires_days: Some(-365.0),
            max_age: Some(0),
            samesite: Some(SameSite::None),
            ..CookieOptions::default()
        };
        assert_eq!(
            gone.line("a", "", now).unwrap(),
            "a=; Expires=Sat, 09 Sep 2000 01:46:40 GMT; Max-Age=0; Path=/; SameSite=None"
        );
        // Far past and far future are clamped; NaN is now.
        for days in [f64::NEG_INFINITY, f64::INFINITY, f64::NAN] {
            let o = CookieOptions {
                expires_days: Some(days),
                ..CookieOptions::default()
            };
            assert!(
                o.line("a", "b", now).unwrap().contains("; Expires="),
                "{days}"
            );
        }
    }

    #[test]
    fn expires_is_a_date_written_to_the_second_and_wins_over_expires_days() {
        let at = |secs: u64, nanos: u32| CookieOptions {
            expires: Some(UNIX_EPOCH + Duration::new(secs, nanos)),
            expires_days: Some(1.0),
            ..CookieOptions::default()
        };
        assert_eq!(
            at(1_445_412_480, 999_999_999).line("c", "v", 0.0).unwrap(),
            "c=v; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/"
        );
        assert_eq!(
            at(0, 0).line("c", "v", 1e9).unwrap(),
            "c=v; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
        );
        // Past four-digit years: the last second of 9999.
        assert_eq!(
            at(1 << 40, 0).line("c", "v", 0.0).unwrap(),
            "c=v; Expires=Fri, 31 Dec 9999 23:59:59 GMT; Path=/"
        );
        // Clearing a cookie ignores its expiry: it is gone at once.
        let partitioned = CookieOptions {
            secure: true,
            partitioned: true,
            ..at(1 << 40, 0)
        };
        assert_eq!(
            clear_cookie_line("c", &partitioned).unwrap(),
            "c=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; Secure; Partitioned"
        );
    }

    #[test]
    fn reserved_attribute_names_are_no_cookie_names() {
        // Tornado 6.6.1 (Python 3.11): set_cookie(name, "v") raises
        // CookieError("Attempt to set a reserved key") for each.
        for name in [
            "path", "Path", "EXPIRES", "max-age", "Secure", "httponly", "samesite", "version",
            "comment", "Domain",
        ] {
            assert!(!name_ok(name), "{name}");
            let line = set_cookie_line("set_cookie", name, "v", &CookieOptions::default(), 0.0);
            assert_eq!(line, None, "{name}");
        }
        for name in ["paths", "max_age", "partitioned", "a:b", "x!#$%&'*+-.^_`|~"] {
            assert!(name_ok(name), "{name}");
        }
        // Python 3.14 reserves `partitioned`; the venv's 3.11 does not, and
        // Tornado 6.6.1 there writes "partitioned=x; Path=/" (see
        // RESERVED_NAMES for why cyclone keeps it).
        assert_eq!(
            set_cookie_line(
                "set_cookie",
                "partitioned",
                "x",
                &CookieOptions::default(),
                0.0
            )
            .as_deref(),
            Some("partitioned=x; Path=/")
        );
    }

    #[test]
    fn an_empty_domain_or_path_is_left_out_as_tornado_does() {
        // Tornado 6.6.1: set_cookie("c", "v", domain="") gives "c=v; Path=/",
        // set_cookie("c", "v", path="") gives "c=v".
        let o = CookieOptions {
            domain: Some(String::new()),
            ..CookieOptions::default()
        };
        assert_eq!(o.line("c", "v", 0.0).as_deref(), Ok("c=v; Path=/"));
        let o = CookieOptions {
            path: String::new(),
            secure: true,
            ..CookieOptions::default()
        };
        assert_eq!(o.line("c", "v", 0.0).as_deref(), Ok("c=v; Secure"));
    }

    #[test]
    fn attributes_that_would_inject_are_refused() {
        for domain in ["a.com; Secure", "a b", "a\r\nSet-Cookie: x=1", "a,b"] {
            let o = CookieOptions {
                domain: Some(domain.into()),
                ..CookieOptions::default()
            };
            assert!(o.line("a", "b", 0.0).is_err(), "{domain:?}");
        }
        for path in ["/; HttpOnly", "/a b", "/\n"] {
            let o = CookieOptions {
                path: path.into(),
                ..CookieOptions::default()
            };
            assert!(o.line("a", "b", 0.0).is_err(), "{path:?}");
        }
        let quoted_path = CookieOptions {
            path: "/a,\"b\"".into(),
            ..CookieOptions::default()
        };
        assert!(quoted_path.line("a", "b", 0.0).is_ok());
    }

    use super::super::cookie_cases::{NAMES, NOW, PARSE, SET_COOKIE};

    /// A `Set-Cookie` line as a browser reads it: the pair with its value
    /// unquoted as Tornado and cyclone read it, then the attributes in
    /// lower case, sorted.
    fn as_read(line: &str) -> Vec<String> {
        let mut parts = line.split("; ");
        let (name, value) = parts.next().unwrap().split_once('=').unwrap();
        let header = format!("x={value}");
        let value = crate::http::Request::synthetic("GET", "/", &[("Cookie", &header)])
            .cookie("x")
            .unwrap();
        let mut attributes: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
        attributes.sort();
        let mut out = vec![format!("{name}={value}")];
        out.extend(attributes);
        out
    }

    #[test]
    fn set_cookie_lines_say_what_tornados_say() {
        // `cookie_cases.rs`; the differences are those `CookieOptions`
        // documents.
        let (mut same_bytes, mut same_cookie, mut refused, mut before_1970) = (0, 0, 0, 0);
        for &(
            name,
            value,
            domain,
            path,
            days,
            expires,
            max_age,
            httponly,
            secure,
            samesite,
            partitioned,
            tornado,
        ) in SET_COOKIE
        {
            let since_epoch = |secs: f64| Duration::from_secs_f64(secs.abs());
            let options = CookieOptions {
                domain: domain.map(str::to_owned),
                path: path.to_owned(),
                expires: expires.map(|secs| match secs < 0.0 {
                    true => UNIX_EPOCH - since_epoch(secs),
                    false => UNIX_EPOCH + since_epoch(secs),
                }),
                expires_days: days,
                max_age,
                httponly,
                secure,
                samesite: samesite.map(|s| match s.to_ascii_lowercase().as_str() {
                    "lax" => SameSite::Lax,
                    "strict" => SameSite::Strict,
                    _ => SameSite::None,
                }),
                partitioned,
            };
            let line = set_cookie_line("set_cookie", name, value, &options, NOW);
            let case = format!("{name:?}={value:?} {options:?}: {line:?}, Tornado {tornado:?}");
            match (line.as_deref(), tornado) {
                (a, b) if a == b => same_bytes += 1,
                (Some(a), Some(b)) if as_read(a) == as_read(b) => same_cookie += 1,
                (Some(a), Some(b)) if expires.is_some_and(|e| e < 0.0) => {
                    let epoch = "Expires=Thu, 01 Jan 1970 00:00:00 GMT";
                    assert!(a.contains(epoch) && b.contains(" 1969 "), "{case}");
                    before_1970 += 1;
                }
                (Some(a), Some(b)) => {
                    assert_eq!(max_age, Some(0), "{case}");
                    assert_eq!(a.replace("; Max-Age=0", ""), b, "{case}");
                }
                (None, Some(_)) => {
                    let quoted = value.contains([';', ',', '"', '\x7f']);
                    let domain = domain.is_some_and(|d| d.contains([',', '"']));
                    assert!(quoted || domain, "{case}");
                    refused += 1;
                }
                _ => panic!("{case}"),
            }
        }
        assert_eq!(
            (same_bytes, same_cookie, refused, before_1970),
            (55, 40, 6, 2)
        );
    }

    #[test]
    fn cookie_headers_read_as_tornado_reads_them() {
        // `cookie_cases.rs`. The one difference: a name sent twice reads
        // as its first value here, its last in Tornado.
        let mut first_of_two = 0;
        for &(header, names, values) in PARSE {
            let r = crate::http::Request::synthetic("GET", "/", &[("Cookie", header)]);
            assert_eq!(r.cookie_names(), names, "{header:?}");
            for (name, want) in NAMES.iter().zip(values) {
                let got = r.cookie(name);
                if got.as_deref() != *want {
                    let twice = header.matches(&format!("{name}=")).count() > 1;
                    assert!(twice, "{header:?} {name:?}: {got:?}, Tornado {want:?}");
                    first_of_two += 1;
                }
            }
        }
        assert_eq!(first_of_two, 2);
    }
}
