#!/usr/bin/env python3
"""Signed cookies between Tornado and cyclone: `http_hello`'s /cookie against Tornado's own
`create_signed_value` / `decode_signed_value`.

    .venv/bin/python tests/peers/interop_tornado_cookies.py --server target/release/examples/http_hello

Starts `http_hello --cookie-secret SECRET` on a free 127.0.0.1 port and checks:
  - a first GET /cookie sets `mycookie`; Tornado's `decode_signed_value(SECRET, ...)` reads
    it back as b"myvalue" (cyclone signs as Tornado does), and Python's cookie parser
    (http.cookies, which Tornado uses) parses the Set-Cookie line;
  - values Tornado signs with the same secret (version 2, the default, and version 1,
    which Tornado still reads) are accepted and shown, non-ASCII and binary-safe text too;
  - Tornado's value signed with another secret, for another name, or with one byte
    changed, is refused (the server sets a fresh cookie instead).
Prints `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import asyncio
import http.client
import http.cookies
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, Server, check_alive, run_main  # noqa: E402

from tornado.web import create_signed_value, decode_signed_value  # noqa: E402

SECRET = "interop secret | with: odd=chars"


def get_cookie_page(port, cookie=None):
    """GET /cookie, optionally with `Cookie: mycookie=VALUE`; returns (status, body, set-cookie lines)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Cookie": f"mycookie={cookie}"} if cookie is not None else {}
        conn.request("GET", "/cookie", headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        return resp.status, body, resp.headers.get_all("Set-Cookie") or []
    finally:
        conn.close()


async def cookie_checks(checks, port):
    loop = asyncio.get_running_loop()

    async def page(cookie=None):
        return await loop.run_in_executor(None, get_cookie_page, port, cookie)

    async def cyclone_signs_tornado_reads():
        status, body, set_cookies = await page()
        assert status == 200 and body == "Your cookie was not set yet!", (status, body)
        assert len(set_cookies) == 1, set_cookies
        jar = http.cookies.SimpleCookie()
        jar.load(set_cookies[0])
        morsel = jar["mycookie"]
        assert morsel["path"] == "/", set_cookies[0]
        assert morsel["expires"], set_cookies[0]
        value = decode_signed_value(SECRET, "mycookie", morsel.value)
        assert value == b"myvalue", (morsel.value, value)
        assert decode_signed_value("another secret", "mycookie", morsel.value) is None
        # And cyclone reads back what it signed.
        status, body, _ = await page(morsel.value)
        assert body == "Your cookie was set: myvalue", body

    await checks.run("cyclone's signed cookie decodes with tornado.web.decode_signed_value",
                     cyclone_signs_tornado_reads)

    for version in (2, 1):
        for text in ("from tornado", "Zoë 🌀 ünïcode", ""):
            async def tornado_signs_cyclone_reads(version=version, text=text):
                signed = create_signed_value(SECRET, "mycookie", text, version=version).decode()
                status, body, set_cookies = await page(signed)
                assert status == 200, status
                assert body == f"Your cookie was set: {text}", body
                assert set_cookies == [], set_cookies

            await checks.run(f"tornado's version {version} signed value {text!r} is read",
                             tornado_signs_cyclone_reads)

    good = create_signed_value(SECRET, "mycookie", "from tornado").decode()
    i = good.rindex("|") + 5
    flipped = good[:i] + ("0" if good[i] != "0" else "1") + good[i + 1:]
    forgeries = {
        "another secret": create_signed_value("another secret", "mycookie", "x").decode(),
        "another name": create_signed_value(SECRET, "othercookie", "x").decode(),
        "a changed signature byte": flipped,
        "the payload swapped": good.replace("ZnJvbSB0b3JuYWRv", "ZnJvbSBtYWxsb3J5"),
        "an unsigned value": "from tornado",
    }
    for what, value in forgeries.items():
        async def refused(value=value):
            status, body, set_cookies = await page(value)
            assert status == 200 and body == "Your cookie was not set yet!", (status, body)
            assert len(set_cookies) == 1, set_cookies

        await checks.run(f"a value with {what} is refused", refused)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="http_hello command (gets --port, --address, --cookie-secret)")
    p.add_argument("--logdir", default="target/interop")
    args = p.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    checks = Checks("tornado cookies <-> http_hello")
    log = os.path.join(args.logdir, "http_hello.log")
    try:
        server = Server(shlex.split(args.server), ["--cookie-secret", SECRET], logfile=log)
    except RuntimeError as exc:
        checks.fail("start http_hello", str(exc))
        return checks.finish()
    with server:
        await cookie_checks(checks, server.port)
        check_alive(checks, server, "http_hello", log)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
