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
Then starts `http_hello --cookie-secrets 1:OLD,2:NEW --key-version 2` (Tornado's
`cookie_secret` dict and `key_version`, key rotation) and checks:
  - the cookie cyclone sets names key version 2 (`get_signature_key_version`) and decodes
    with Tornado's dict, not with a dict holding key 1 only;
  - values Tornado signs with the dict and key_version=1 are read, and signed again with
    key version 2 (which Tornado's dict reads); key_version=2 values are read and left alone;
  - a key version the dict lacks, the old key claiming version 2, key version 0 (what a
    single secret writes) and a version 1 value (Tornado asserts on it with a dict) are
    refused.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import http.cookies
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, http_request, parse_args, run_main, start_server  # noqa: E402

from tornado.web import (  # noqa: E402
    create_signed_value,
    decode_signed_value,
    get_signature_key_version,
)

SECRET = "interop secret | with: odd=chars"
OLD_KEY = "retired interop secret | odd:chars"
NEW_KEY = "current interop secret = odd|chars"
ROTATED = {1: OLD_KEY, 2: NEW_KEY}


def get_cookie_page(port, cookie=None):
    """GET /cookie, optionally with `Cookie: mycookie=VALUE`; returns (status, body, set-cookie lines)."""
    headers = {"Cookie": f"mycookie={cookie}"} if cookie is not None else {}
    status, head, body = http_request(port, "GET", "/cookie", headers=headers)
    return status, body.decode(), head.get_all("Set-Cookie") or []


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


def single_set_cookie(set_cookies):
    """The value of the one `mycookie` Set-Cookie line (parsed as Tornado's http.cookies does)."""
    assert len(set_cookies) == 1, set_cookies
    jar = http.cookies.SimpleCookie()
    jar.load(set_cookies[0])
    return jar["mycookie"].value


async def rotation_checks(checks, port):
    loop = asyncio.get_running_loop()

    async def page(cookie=None):
        return await loop.run_in_executor(None, get_cookie_page, port, cookie)

    async def cyclone_signs_with_the_current_key():
        status, body, set_cookies = await page()
        assert status == 200 and body == "Your cookie was not set yet!", (status, body)
        value = single_set_cookie(set_cookies)
        assert get_signature_key_version(value) == 2, value
        assert decode_signed_value(ROTATED, "mycookie", value) == b"myvalue", value
        assert decode_signed_value({2: NEW_KEY}, "mycookie", value) == b"myvalue", value
        assert decode_signed_value({1: OLD_KEY}, "mycookie", value) is None, value
        status, body, set_cookies = await page(value)
        assert body == "Your cookie was set: myvalue" and set_cookies == [], (body, set_cookies)

    await checks.run("cyclone signs with key_version 2; tornado's dict reads it, key 1 alone does not",
                     cyclone_signs_with_the_current_key)

    async def old_key_read_and_signed_again():
        old = create_signed_value(ROTATED, "mycookie", "from the old key", key_version=1).decode()
        assert old.startswith("2|1:1|"), old
        status, body, set_cookies = await page(old)
        assert status == 200 and body == "Your cookie was set: from the old key", (status, body)
        renewed = single_set_cookie(set_cookies)
        assert get_signature_key_version(renewed) == 2, renewed
        assert decode_signed_value(ROTATED, "mycookie", renewed) == b"from the old key", renewed
        assert decode_signed_value({1: OLD_KEY}, "mycookie", renewed) is None, renewed

    await checks.run("tornado's key_version=1 value is read and signed again with key version 2",
                     old_key_read_and_signed_again)

    async def current_key_read():
        value = create_signed_value(ROTATED, "mycookie", "Zoë, current", key_version=2).decode()
        status, body, set_cookies = await page(value)
        assert status == 200 and body == "Your cookie was set: Zoë, current", (status, body)
        assert set_cookies == [], set_cookies

    await checks.run("tornado's key_version=2 value is read and left alone", current_key_read)

    refused = {
        "a key version the dict lacks (3)":
            create_signed_value({3: NEW_KEY}, "mycookie", "x", key_version=3).decode(),
        "the old key claiming version 2":
            create_signed_value({2: OLD_KEY}, "mycookie", "x", key_version=2).decode(),
        "key version 0 (a single secret's)": create_signed_value(NEW_KEY, "mycookie", "x").decode(),
        "version 1": create_signed_value(OLD_KEY, "mycookie", "x", version=1).decode(),
    }
    for what, value in refused.items():
        async def is_refused(value=value):
            status, body, set_cookies = await page(value)
            assert status == 200 and body == "Your cookie was not set yet!", (status, body)
            assert get_signature_key_version(single_set_cookie(set_cookies)) == 2, set_cookies

        await checks.run(f"with rotated secrets, {what} is refused", is_refused)


async def main():
    args = parse_args(__doc__, "http_hello command (gets --port, --address, and --cookie-secret or"
                               " --cookie-secrets and --key-version)")
    checks = Checks("tornado cookies <-> http_hello")
    log = os.path.join(args.logdir, "http_hello.log")
    server = start_server(checks, "http_hello", args.server, ["--cookie-secret", SECRET], logfile=log)
    if server is None:
        return checks.finish()
    with server:
        await cookie_checks(checks, server.port)
        check_alive(checks, server, "http_hello", log)
    log = os.path.join(args.logdir, "http_hello_rotated.log")
    secrets = ",".join(f"{v}:{k}" for v, k in ROTATED.items())
    server = start_server(checks, "http_hello --cookie-secrets", args.server,
                          ["--cookie-secrets", secrets, "--key-version", "2"], logfile=log)
    if server is None:
        return checks.finish()
    with server:
        await rotation_checks(checks, server.port)
        check_alive(checks, server, "http_hello --cookie-secrets", log)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
