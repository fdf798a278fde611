"""Prints `src/web/cookie_cases.rs`: what Tornado's `set_cookie` writes for 104 calls and what
its `request.cookies` / `get_cookie` make of 52 `Cookie` headers, for the unit tests in
`src/web/cookie.rs`.

`expires_days` is counted from `NOW` (Tornado's clock is set to it). `partitioned=True` goes to
Tornado as the keyword argument it passes on to `http.cookies.Morsel`, which knows the attribute
from Python 3.14 on: for those calls the 3.11 `Morsel` here is given it as 3.14 has it (a flag
written `Partitioned`), and the other calls see 3.11's.

    .venv/bin/python tests/peers/gen_cookie_cases.py > src/web/cookie_cases.rs && cargo fmt
"""
import contextlib, datetime, http.cookies, types, warnings, itertools
warnings.simplefilter("ignore")
from unittest import mock
import tornado.web as tornado_web
from tornado.web import RequestHandler, Application
from tornado.httputil import HTTPServerRequest, HTTPHeaders
app = Application()
NOW = 1764921600.25
def handler():
    req = HTTPServerRequest(method="GET", uri="/", headers=HTTPHeaders(), connection=mock.Mock())
    return RequestHandler(app, req)
class _Now(datetime.datetime):
    """`datetime.datetime` whose `now()` is `NOW`, for `expires_days`."""
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(NOW, tz)
_FIXED_CLOCK = types.SimpleNamespace(**{**vars(datetime), "datetime": _Now})
@contextlib.contextmanager
def morsel_with_partitioned():
    """Python 3.14's `Morsel`, as far as `partitioned` goes: a reserved flag, written `Partitioned`."""
    M = http.cookies.Morsel
    saved = M._reserved, M._flags
    M._reserved = {**M._reserved, "partitioned": "Partitioned"}
    M._flags = M._flags | {"partitioned"}
    try:
        yield
    finally:
        M._reserved, M._flags = saved
def tornado(name, value, domain=None, path="/", days=None, expires=None, max_age=None, httponly=False, secure=False, samesite=None, partitioned=False):
    h = handler()
    kw = {"partitioned": True} if partitioned else {}
    if expires is not None:
        expires = datetime.datetime.fromtimestamp(expires, datetime.UTC)
    saved = tornado_web.datetime
    tornado_web.datetime = _FIXED_CLOCK
    try:
        with morsel_with_partitioned() if partitioned else contextlib.nullcontext():
            h.set_cookie(name, value, domain=domain, expires=expires, path=path, expires_days=days, max_age=max_age, httponly=httponly, secure=secure, samesite=samesite, **kw)
            return [c.OutputString(None) for c in h._new_cookie.values()][0]
    except Exception:
        return None
    finally:
        tornado_web.datetime = saved
cases = []
names = ["a", "path", "Path", "EXPIRES", "max-age", "Secure", "httponly", "samesite", "version", "comment", "Domain", "a:b", "a b", "a;b", "a=b", "", "é", "a\tb", 'a"b', "a,b", "a/b", "a@b", "a[b", "x!#$%&'*+-.^_`|~", "a\x7fb", "partitioned"]
for n in names: cases.append(dict(name=n, value="v"))
values = ["", "v", "a b", "a;b", "a,b", 'a"b', "a\\b", "a\x7fb", "a\x01b", "é", "x/y", "Ym9iYQ==", "a=b", "(x)", "日本", "a:b", "a|b", "a\tb", '"q"', "a{b}", "a?b@c", "2|1:0|10:1764921600|4:user|8:Ym9iYQ==|5f"]
for v in values: cases.append(dict(name="c", value=v))
for d in [None, "", "ex.com", ".ex.com", "a;b", "a b", "a,b", "a\x7fb", "é.com"]: cases.append(dict(name="c", value="v", domain=d))
for p in ["/", "", "/a", "/a b", "/a;b", '/a,"b"', "/a\x7f", "/é"]: cases.append(dict(name="c", value="v", path=p))
for d in [0, 1, -1, 365.25, 0.5, -365, 1e-7]: cases.append(dict(name="c", value="v", days=d))
for m in [0, 5, 86400]: cases.append(dict(name="c", value="v", max_age=m))
for s in ["Lax", "lax", "Strict", "STRICT", "None", "none"]: cases.append(dict(name="c", value="v", samesite=s))
for h, s in itertools.product([False, True], [False, True]): cases.append(dict(name="c", value="v", httponly=h, secure=s))
cases.append(dict(name="sid", value="x|y", domain="example.com", path="/app", days=1, max_age=86400, httponly=True, secure=True, samesite="Strict"))
cases.append(dict(name="sid", value="", domain="example.com", path="/app", days=-365, max_age=5, secure=True, samesite="None"))
# An absolute `expires` (a datetime), alone and with `expires_days` (`expires` wins).
for e in [NOW, NOW + 0.999, 0.0, 0.5, 784111777.0, 2**31, 253402300799.0, 253402300799.75, -1.5, -86400.0 * 365]:
    cases.append(dict(name="c", value="v", expires=e))
cases.append(dict(name="c", value="v", expires=1445412480.0, days=1))
cases.append(dict(name="c", value="v", expires=1445412480.0, days=-1, max_age=60))
# `partitioned`: with and without `secure`, as a flag among the others.
cases.append(dict(name="c", value="v", partitioned=True))
cases.append(dict(name="c", value="v", secure=True, partitioned=True))
cases.append(dict(name="c", value="v", secure=True, samesite="None", partitioned=True))
cases.append(dict(name="sid", value="x|y", domain="example.com", path="/app", expires=1445412480.0, max_age=86400, httponly=True, secure=True, samesite="None", partitioned=True))
cases.append(dict(name="c", value="", path="", secure=True, partitioned=True))
for c in cases:
    c["tornado"] = tornado(**c)
headers = [
 'a=1', 'a=1; b=2', 'a=1;b=2', ' a = 1 ; b = 2 ', 'a=1; a=2', 'a="x y"', 'a="x;y"', 'a="x', 'a=x"', 'a=""', 'a="', 'a=\'q\'',
 'a="\\"q\\""', 'a="\\054\\073"', 'a="\\351"', 'a="\\400"', 'a="\\x"', 'a="x\\"', 'a="\\\\"', 'a="\\0"', 'a="\\07"', 'a="\\377\\303\\251"',
 'novalue; a=1', 'a=1; novalue', '=v; a=1', 'a=', 'a==b', 'a=b=c', 'a b=1; c=2', 'path=1; c=2', 'Expires=x; c=2', 'a\t=1', 'a=\t1\t',
 'a=1,b=2', 'a=1, b=2', '$Version=1; a=1', 'a=é', 'a=1;;b=2', ';', '', 'a=1; A=2', 'a:b=1', 'a/b=1', 'a="1"; a=2',
 'a=%20x', 'a=x y', 'a=[1]', 'é=1; c=2', 'c=2; partitioned=1', 'secure; c=2', 'c="a\\', 'c="a\\b\\"',
]
names = ["a", "b", "c", "A", "novalue", "", "a b", "path", "Expires", "a:b", "a/b", "$Version", "é", "partitioned", "secure"]
parsed = []
for h in headers:
    hh = HTTPHeaders(); hh["Cookie"] = h
    req = HTTPServerRequest(method="GET", uri="/", headers=hh, connection=mock.Mock())
    got = {n: (req.cookies[n].value if n in req.cookies else None) for n in names}
    parsed.append(dict(header=h, names=list(req.cookies.keys()), values=got))

def s(x):
    return '"' + "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "\\u{%x}" % ord(ch) for ch in x) + '"'
def o(x):
    return "None" if x is None else f"Some({s(x)})"
print("""//! `Set-Cookie` lines and `Cookie` headers decided by Tornado 6.6.1 (Python 3.11),
//! generated by `.venv/bin/python tests/peers/gen_cookie_cases.py > src/web/cookie_cases.rs`
//! (then `cargo fmt`).

/// Name, value, domain, path, `expires_days` (from `NOW`), `expires` (seconds from the epoch),
/// `max_age`, `httponly`, `secure`, `samesite`, `partitioned`, and the line Tornado's
/// `set_cookie` writes (`None`: it raises).
pub(super) type SetCookieCase = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<f64>,
    Option<f64>,
    Option<u64>,
    bool,
    bool,
    Option<&'static str>,
    bool,
    Option<&'static str>,
);

pub(super) const NOW: f64 = %r;

#[rustfmt::skip]
pub(super) const SET_COOKIE: &[SetCookieCase] = &[""" % NOW)
for x in cases:
    days = x.get("days"); ma = x.get("max_age"); ex = x.get("expires")
    print(f"    ({s(x['name'])}, {s(x['value'])}, {o(x.get('domain'))}, {s(x.get('path', '/'))}, "
          f"{'None' if days is None else f'Some({float(days)!r})'}, {'None' if ex is None else f'Some({float(ex)!r})'}, "
          f"{'None' if ma is None else f'Some({ma})'}, "
          f"{str(x.get('httponly', False)).lower()}, {str(x.get('secure', False)).lower()}, {o(x.get('samesite'))}, "
          f"{str(x.get('partitioned', False)).lower()}, {o(x['tornado'])}),")
print("];")
print()
print("/// The names looked up in each `Cookie` header of [`PARSE`].")
print("pub(super) const NAMES: &[&str] = &[" + ", ".join(s(n) for n in names) + "];")
print()
print("/// A `Cookie` header, Tornado's `request.cookies` keys, and `get_cookie` of each of [`NAMES`].")
print("pub(super) type ParseCase = (&'static str, &'static [&'static str], &'static [Option<&'static str>]);")
print()
print("#[rustfmt::skip]")
print("pub(super) const PARSE: &[ParseCase] = &[")
for x in parsed:
    print(f"    ({s(x['header'])}, &[{', '.join(s(n) for n in x['names'])}], &[{', '.join(o(x['values'][n]) for n in names)}]),")
print("];")
