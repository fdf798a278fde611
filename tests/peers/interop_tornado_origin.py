#!/usr/bin/env python3
"""Cross-origin protection between Tornado and cyclone: `http_hello --cross-origin-protection
--trusted-origins ...`'s /form against a Tornado 6.6 application with
`cross_origin_protection=True` and the same `trusted_origins`, in this process.

    .venv/bin/python tests/peers/interop_tornado_origin.py --server target/release/examples/http_hello

Every request of a grid gets the same status (200 or 403) from both servers: GET and POST,
with `Sec-Fetch-Site` absent, `same-origin`, `none`, `same-site`, `cross-site` and odd values,
`Origin` absent, the `Host`'s own (in other cases, with a path), other hosts, schemes and ports,
a trusted origin, `null`, with user info, without a scheme, and two spellings of `Host`.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import asyncio
import logging
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, Server, check_alive, free_port, http_request, run_main  # noqa: E402

import tornado.web  # noqa: E402

TRUSTED = ["https://trusted.example", "null"]

SITES = [None, "same-origin", "none", "same-site", "cross-site", "Same-Origin", "",
         "cross-site, same-origin"]
ORIGINS = [None, "http://app.example:8080", "HTTP://APP.EXAMPLE:8080", "http://app.example:8080/",
           "http://app.example", "https://app.example:8080", "https://trusted.example",
           "https://trusted.example/", "null", "http://evil.example", "http://user@app.example:8080",
           "app.example:8080"]
HOSTS = ["app.example:8080", "APP.example:8080"]


class Form(tornado.web.RequestHandler):
    """The same page as http_hello's FormHandler (without XSRF tokens)."""

    def get(self):
        self.write("form")

    def post(self):
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write("posted: " + self.get_argument("message", ""))


def status_of(port, method, site, origin, host):
    headers = {"Host": host}
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    if origin is not None:
        headers["Origin"] = origin
    body = None
    if method == "POST":
        body = "message=x"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    status, _, _ = http_request(port, method, "/form", body=body, headers=headers)
    return status


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="http_hello command")
    ap.add_argument("--logdir", default="target/interop")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    logging.getLogger("tornado").setLevel(logging.CRITICAL)
    checks = Checks("tornado cross_origin_protection <-> http_hello")
    loop = asyncio.get_running_loop()
    log = os.path.join(args.logdir, "http_hello_origin.log")
    try:
        server = Server(shlex.split(args.server),
                        ["--cross-origin-protection", "--trusted-origins", ",".join(TRUSTED)],
                        logfile=log)
    except RuntimeError as exc:
        checks.fail("start http_hello --cross-origin-protection", str(exc))
        return checks.finish()
    app = tornado.web.Application([(r"/form", Form)], cross_origin_protection=True,
                                  trusted_origins=TRUSTED)
    tornado_port = free_port()
    tornado_server = app.listen(tornado_port, address="127.0.0.1")
    try:
        for method in ("GET", "POST"):
            for site in SITES:
                async def same(method=method, site=site):
                    differ, seen = [], set()
                    for origin in ORIGINS:
                        for host in HOSTS:
                            c = await loop.run_in_executor(
                                None, status_of, server.port, method, site, origin, host)
                            t = await loop.run_in_executor(
                                None, status_of, tornado_port, method, site, origin, host)
                            seen.add(t)
                            if c != t:
                                differ.append(f"Origin {origin!r}, Host {host}: cyclone {c}, "
                                              f"tornado {t}")
                    assert not differ, "; ".join(differ)
                    return seen

                await checks.run(f"{method} with Sec-Fetch-Site {site!r}: Tornado's status for "
                                 f"{len(ORIGINS)} origins x {len(HOSTS)} hosts", same)

        async def both_outcomes():
            refused = await loop.run_in_executor(
                None, status_of, server.port, "POST", "cross-site", "http://evil.example", HOSTS[0])
            allowed = await loop.run_in_executor(
                None, status_of, server.port, "POST", "cross-site", TRUSTED[0], HOSTS[0])
            assert (refused, allowed) == (403, 200), (refused, allowed)

        await checks.run("a cross-site POST is refused, one from a trusted origin is not", both_outcomes)
        check_alive(checks, server, "http_hello --cross-origin-protection", log)
    finally:
        server.stop()
        tornado_server.stop()
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
