#!/usr/bin/env python3
"""XSRF tokens between Tornado and cyclone: `http_hello --xsrf-cookies`'s /form against a
Tornado application with `xsrf_cookies=True` and the same handler, in this process.

    .venv/bin/python tests/peers/interop_tornado_xsrf.py --server target/release/examples/http_hello

Checks:
  - the `_xsrf` cookie and form field cyclone hands out pass Tornado's `check_xsrf_cookie`
    (as the `_xsrf` field and as the `X-XSRFToken` header), and Tornado's pass cyclone's,
    for both of Tornado's formats (`xsrf_cookie_version` 2 and 1, each side writing it);
  - one side's cookie with the other side's field (two different tokens) is refused by both;
  - an `X-XSRFToken` or `X-CSRFToken` header sent on several lines (the token twice, or an
    empty line before or after it), which Tornado reads joined with ',', is refused by both
    (403), where one line of it passes both;
  - differentially, for a grid of `_xsrf` cookies (both formats, upper-case hex, text that is
    not hex, unknown versions, masks of the wrong size, an empty token, five fields, none)
    and submitted tokens (the same shapes, and timestamps as Python's int() reads them:
    ' 12', '+12', '1_000', '-5', and ones it refuses), every POST gets the same status
    (200 or 403) from both servers, and every GET sets a new cookie on both or on neither.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import http.client
import logging
import os
import re
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, http_request, parse_args, run_main, start_server, tornado_listen  # noqa: E402

import tornado.web  # noqa: E402
from tornado.util import _websocket_mask  # noqa: E402

FIELD = re.compile(r'<input type="hidden" name="_xsrf" value="([^"]*)"/>')


class Form(tornado.web.RequestHandler):
    """The same page as http_hello's FormHandler."""

    def get(self):
        self.write(self.xsrf_form_html())

    def post(self):
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write("posted: " + self.get_argument("message", ""))


def request(port, method, cookie=None, body=None, headers=None):
    """One request to /form; returns (status, body, the `_xsrf` Set-Cookie value or None)."""
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = f"_xsrf={cookie}"
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    status, head, text = http_request(port, method, "/form", body=body, headers=h)
    new = None
    for line in head.get_all("Set-Cookie") or []:
        name, _, rest = line.partition("=")
        if name.strip() == "_xsrf":
            new = rest.split(";")[0]
    return status, text.decode(), new


def post_header_lines(port, cookie, lines):
    """A POST to /form with the header lines `lines` ((name, value) pairs, repeats kept), no
    body; returns the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/form")
        conn.putheader("Cookie", f"_xsrf={cookie}")
        for name, value in lines:
            conn.putheader(name, value)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def form(token, message="hi"):
    return urllib.parse.urlencode({"_xsrf": token, "message": message})


def v2(token, mask, timestamp):
    return "|".join(["2", mask.hex(), _websocket_mask(mask, token).hex(), timestamp])


T = bytes(range(0x30, 0x40))
OTHER = bytes(range(0x80, 0x90))

COOKIES = {
    "version 1": T.hex(),
    "version 1 in upper case": T.hex().upper(),
    "version 2": v2(T, b"\x01\x02\x03\x04", "1700000000"),
    "version 2 with a negative timestamp": v2(T, b"\xff\x00\xff\x00", "-5"),
    "text that is not hex": "not-hex-text",
    "another token": OTHER.hex(),
    "version 2 with a three-byte mask": "2|010203|" + T.hex() + "|1",
    "version 3": "3|01020304|" + T.hex() + "|1",
    "'02|' (version 1 text)": "02|" + T.hex(),
    "version 2 with an empty token": "2|01020304||1",
    "version 2 with five fields": v2(T, b"abcd", "1") + "|x",
    "version 2 with a bad timestamp": v2(T, b"abcd", "1x"),
    "no cookie": None,
}

TOKENS = {
    "version 1": T.hex(),
    "version 2": v2(T, b"\x10\x20\x30\x40", "99"),
    "timestamp ' 12'": v2(T, b"wxyz", " 12"),
    "timestamp '+12'": v2(T, b"wxyz", "+12"),
    "timestamp '1_000'": v2(T, b"wxyz", "1_000"),
    "timestamp '-5'": v2(T, b"wxyz", "-5"),
    "timestamp '007'": v2(T, b"wxyz", "007"),
    "timestamp '1__0'": v2(T, b"wxyz", "1__0"),
    "timestamp '0x10'": v2(T, b"wxyz", "0x10"),
    "timestamp ''": v2(T, b"wxyz", ""),
    "a five-byte mask": "2|0102030405|" + T.hex() + "|1",
    "odd hex": "2|01020304|" + T.hex()[:-1] + "|1",
    "text that is not hex": "not-hex-text",
    "another token": v2(OTHER, b"abcd", "1"),
    "an empty version 2 token": "2|01020304||1",
    "empty": "",
}


async def main():
    args = parse_args(__doc__, "http_hello command (gets --port, --address, --xsrf-cookies and"
                               " --xsrf-cookie-version)", tornado_log=logging.ERROR)
    checks = Checks("tornado xsrf <-> http_hello")
    loop = asyncio.get_running_loop()

    def call(*a, **kw):
        return loop.run_in_executor(None, lambda: request(*a, **kw))

    servers = {}
    for version in (2, 1):
        log = os.path.join(args.logdir, f"http_hello_xsrf_v{version}.log")
        server = start_server(checks, f"http_hello --xsrf-cookies (version {version})", args.server,
                              ["--xsrf-cookies", "--xsrf-cookie-version", str(version)], logfile=log)
        if server is None:
            for s in servers.values():
                s.stop()
            return checks.finish()
        servers[version] = server
    tornado_ports = {}
    tornado_servers = []
    for version in (2, 1):
        app = tornado.web.Application([(r"/form", Form)], xsrf_cookies=True,
                                      xsrf_cookie_version=version)
        port, tserver = tornado_listen(app)
        tornado_servers.append(tserver)
        tornado_ports[version] = port

    try:
        for version in (2, 1):
            cyclone, tornado_port = servers[version].port, tornado_ports[version]
            for writer, reader, wport, rport in (("cyclone", "tornado", cyclone, tornado_port),
                                                 ("tornado", "cyclone", tornado_port, cyclone)):
                async def passes(wport=wport, rport=rport, version=version):
                    status, page, cookie = await call(wport, "GET")
                    assert status == 200 and cookie, (status, cookie)
                    token = FIELD.search(page).group(1)
                    if version == 2:
                        assert token.startswith("2|"), token
                    else:
                        assert token == cookie and len(token) == 32, (token, cookie)
                    status, text, _ = await call(rport, "POST", cookie, form(token, "x y"))
                    assert (status, text) == (200, "posted: x y"), (status, text)
                    status, text, _ = await call(rport, "POST", cookie, "message=h",
                                                 {"X-XSRFToken": token})
                    assert (status, text) == (200, "posted: h"), (status, text)

                await checks.run(f"version {version}: {writer}'s _xsrf cookie and field pass "
                                 f"{reader}'s check_xsrf_cookie", passes)

            async def mixed(cyclone=cyclone, tornado_port=tornado_port):
                _, cpage, ccookie = await call(cyclone, "GET")
                _, tpage, tcookie = await call(tornado_port, "GET")
                cfield, tfield = FIELD.search(cpage).group(1), FIELD.search(tpage).group(1)
                for port in (cyclone, tornado_port):
                    for cookie, field in ((ccookie, tfield), (tcookie, cfield)):
                        status, _, _ = await call(port, "POST", cookie, form(field))
                        assert status == 403, (port, cookie, field, status)

            await checks.run(f"version {version}: one side's cookie with the other's field is "
                             "refused by both", mixed)

            async def repeated(cyclone=cyclone, tornado_port=tornado_port):
                differ = []
                for wport in (cyclone, tornado_port):
                    _, page, cookie = await call(wport, "GET")
                    token = FIELD.search(page).group(1)
                    for header in ("X-XSRFToken", "X-CSRFToken"):
                        for values in ([token], [token, token], ["", token], [token, ""]):
                            lines = [(header, v) for v in values]
                            want = 200 if len(values) == 1 else 403
                            for port, name in ((cyclone, "cyclone"), (tornado_port, "tornado")):
                                got = await loop.run_in_executor(
                                    None, post_header_lines, port, cookie, lines)
                                if got != want:
                                    differ.append(f"{name}: {lines}: {got}, not {want}")
                assert not differ, "; ".join(differ)

            await checks.run(f"version {version}: a token header on several lines is refused "
                             "by both, on one line passes both", repeated)

        cyclone, tornado_port = servers[2].port, tornado_ports[2]
        for cname, cookie in COOKIES.items():
            async def same_statuses(cookie=cookie):
                differ = []
                _, _, cnew = await call(cyclone, "GET", cookie)
                _, _, tnew = await call(tornado_port, "GET", cookie)
                if (cnew is None) != (tnew is None):
                    differ.append(f"GET sets a cookie: cyclone {cnew is not None}, "
                                  f"tornado {tnew is not None}")
                for tname, token in TOKENS.items():
                    c, _, _ = await call(cyclone, "POST", cookie, form(token))
                    t, _, _ = await call(tornado_port, "POST", cookie, form(token))
                    if c != t:
                        differ.append(f"token {tname}: cyclone {c}, tornado {t}")
                assert not differ, "; ".join(differ)

            await checks.run(f"cookie {cname}: every token gets Tornado's status, and the "
                             "cookie is kept or replaced as Tornado does", same_statuses)
        for version, server in servers.items():
            check_alive(checks, server, f"http_hello --xsrf-cookies (version {version})",
                        server.logfile)
    finally:
        for s in servers.values():
            s.stop()
        for s in tornado_servers:
            s.stop()
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
