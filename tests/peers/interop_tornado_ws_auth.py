#!/usr/bin/env python3
"""Logged-in WebSockets between Tornado and cyclone: `http_hello --cookie-secret SECRET`'s
/members against a Tornado application in this process with the same handler
(`get_current_user` reading the signed cookie `user`, `@tornado.web.authenticated` on `get`)
and the same `login_url`.

    .venv/bin/python tests/peers/interop_tornado_ws_auth.py --server target/release/examples/http_hello

Each handshake of a grid of cookies (none, Tornado-signed versions 2 and 1, unicode, expired,
forged, another cookie's, unsigned) and paths (with and without a query) gets the same answer
from both servers, seen by Tornado's `websocket_connect`: the status and `Location` of the
redirect to the login page, or an upgrade, the greeting and the echo of one message. Both
answers carry the same headers the handler sets (Tornado's `set_header` and
`set_secure_cookie` in `prepare`, cyclone's `set_default_headers`): `X-Members`, and on a
member's 101 the `user` cookie signed again, which Tornado reads back as the same user, with
the same attributes.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, parse_args, run_main, start_server, tornado_listen  # noqa: E402

import http.cookies  # noqa: E402

import tornado.httpclient  # noqa: E402
import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402
from tornado.web import create_signed_value, decode_signed_value  # noqa: E402

SECRET = "interop ws auth secret"
LOGIN = "/login"


class Members(tornado.websocket.WebSocketHandler):
    """What http_hello's /members does."""

    def get_current_user(self):
        user = self.get_secure_cookie("user")
        return user.decode("utf-8", "replace") if user is not None else None

    def prepare(self):
        self.set_header("X-Members", "1")
        if self.current_user is not None:
            self.set_secure_cookie("user", self.current_user, httponly=True)

    @tornado.web.authenticated
    def get(self, *args, **kwargs):
        return super().get(*args, **kwargs)

    def open(self):
        self.write_message(f"welcome, {self.current_user}")

    def on_message(self, message):
        self.write_message(f"{self.current_user}: {message}")


def signed(value, **kw):
    return create_signed_value(SECRET, "user", value, **kw).decode()


COOKIES = {
    "no cookie": None,
    "a version 2 cookie": signed("ann"),
    "a version 1 cookie": signed("bob", version=1),
    "a unicode name": signed("Zoë 🌀"),
    "an expired cookie (40 days)": signed("old", clock=lambda: time.time() - 40 * 86400),
    "another secret's cookie": create_signed_value("another secret", "user", "eve").decode(),
    "another cookie's value": create_signed_value(SECRET, "mycookie", "eve").decode(),
    "an unsigned value": "ann",
}
PATHS = ["/members", "/members?room=1&x=%2F"]


def added(headers):
    """The headers the handler added: `X-Members`, and each cookie set as (name, the value
    Tornado reads from it, its attributes but the expiry date's value)."""
    cookies = []
    for line in headers.get_list("Set-Cookie"):
        jar = http.cookies.SimpleCookie()
        jar.load(line)
        for name, morsel in jar.items():
            value = decode_signed_value(SECRET, name, morsel.value)
            attributes = sorted(k for k, v in morsel.items() if v)
            cookies.append((name, value, attributes))
    return (headers.get("X-Members"), sorted(cookies))


async def outcome(port, path, cookie):
    """What a handshake gets: ("refused", status, Location, added headers) or
    ("open", greeting, echo, added headers)."""
    headers = {"Cookie": f'user="{cookie}"'} if cookie is not None else {}
    req = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}{path}", headers=headers,
                                         follow_redirects=False, request_timeout=10)
    try:
        conn = await tornado.websocket.websocket_connect(req)
    except tornado.httpclient.HTTPClientError as exc:
        if exc.response is None:
            return ("refused", exc.code, None, None)
        return ("refused", exc.code, exc.response.headers.get("Location"),
                added(exc.response.headers))
    try:
        greeting = await asyncio.wait_for(conn.read_message(), 10)
        conn.write_message("hi")
        echo = await asyncio.wait_for(conn.read_message(), 10)
        return ("open", greeting, echo, added(conn.headers))
    finally:
        conn.close()


async def main():
    args = parse_args(__doc__, "http_hello command", tornado_log=logging.CRITICAL)
    checks = Checks("tornado @authenticated WebSocket <-> http_hello /members")
    log = os.path.join(args.logdir, "http_hello_members.log")
    server = start_server(checks, "http_hello", args.server, ["--cookie-secret", SECRET], logfile=log)
    if server is None:
        return checks.finish()
    app = tornado.web.Application([(r"/members", Members)], cookie_secret=SECRET,
                                  login_url=LOGIN)
    tornado_port, tornado_server = tornado_listen(app)
    seen = set()
    try:
        for what, cookie in COOKIES.items():
            for path in PATHS:
                async def same(path=path, cookie=cookie):
                    t = await outcome(tornado_port, path, cookie)
                    c = await outcome(server.port, path, cookie)
                    seen.add(t[0])
                    if t[0] == "refused":
                        assert t[1] == 302 and t[2].startswith(LOGIN + "?next=%2Fmembers"), t
                        assert t[3] == ("1", []), t
                    else:
                        user = t[1].removeprefix("welcome, ").encode()
                        assert t[3] == ("1", [("user", user, ["expires", "httponly", "path"])]), t
                    assert c == t, f"\n  tornado: {t!r}\n  cyclone: {c!r}"

                await checks.run(f"{what} on {path}: Tornado's answer", same)

        async def both_outcomes():
            assert seen == {"open", "refused"}, seen

        await checks.run("the grid saw upgrades and redirects both", both_outcomes)
        check_alive(checks, server, "http_hello", log)
    finally:
        server.stop()
        tornado_server.stop()
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
