#!/usr/bin/env python3
"""Cross-origin protection between Tornado and cyclone: `http_hello --cross-origin-protection
--trusted-origins ...`'s /form against a Tornado 6.6 application with
`cross_origin_protection=True` and the same `trusted_origins`, in this process.

    .venv/bin/python tests/peers/interop_tornado_origin.py --server target/release/examples/http_hello

Every request of a grid gets the same status (200 or 403) from both servers: GET and POST,
with `Sec-Fetch-Site` absent, `same-origin`, `none`, `same-site`, `cross-site` and odd values,
`Origin` absent, the `Host`'s own (in other cases, with a path), other hosts, schemes and ports,
a trusted origin, `null`, with user info, without a scheme, and two spellings of `Host`.
The same grid of WebSocket handshakes gets the same status (101 or 403) from http_hello's /ws
(the default `check_origin`) and /ws/picky (an override that accepts https://friend.example
alone) as from Tornado `WebSocketHandler`s with the same `check_origin`s.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import logging
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, http_request, parse_args, run_main, start_server, tornado_listen  # noqa: E402

import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402

TRUSTED = ["https://trusted.example", "null"]

SITES = [None, "same-origin", "none", "same-site", "cross-site", "Same-Origin", "",
         "cross-site, same-origin"]
ORIGINS = [None, "http://app.example:8080", "HTTP://APP.EXAMPLE:8080", "http://app.example:8080/",
           "http://app.example", "https://app.example:8080", "https://trusted.example",
           "https://friend.example",
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


class Echo(tornado.websocket.WebSocketHandler):
    """http_hello's /ws: the default check_origin."""

    def on_message(self, message):
        self.write_message(message)


class PickyEcho(Echo):
    """http_hello's /ws/picky."""

    def check_origin(self, origin):
        return origin == "https://friend.example"


def handshake_status(port, path, site, origin, host):
    """The status a WebSocket handshake to PATH gets (101 for an upgrade)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    if site is not None:
        lines.append(f"Sec-Fetch-Site: {site}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


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
    args = parse_args(__doc__, "http_hello command", tornado_log=logging.CRITICAL)
    checks = Checks("tornado cross_origin_protection <-> http_hello")
    loop = asyncio.get_running_loop()
    log = os.path.join(args.logdir, "http_hello_origin.log")
    server = start_server(checks, "http_hello --cross-origin-protection", args.server,
                          ["--cross-origin-protection", "--trusted-origins", ",".join(TRUSTED)],
                          logfile=log)
    if server is None:
        return checks.finish()
    app = tornado.web.Application([(r"/form", Form), (r"/ws", Echo), (r"/ws/picky", PickyEcho)],
                                  cross_origin_protection=True, trusted_origins=TRUSTED)
    tornado_port, tornado_server = tornado_listen(app)
    try:
        async def same_grid(status):
            """`status(port, origin, host)` is the same from both servers over the grid."""
            differ = []
            for origin in ORIGINS:
                for host in HOSTS:
                    c = await loop.run_in_executor(None, status, server.port, origin, host)
                    t = await loop.run_in_executor(None, status, tornado_port, origin, host)
                    if c != t:
                        differ.append(f"Origin {origin!r}, Host {host}: cyclone {c}, tornado {t}")
            assert not differ, "; ".join(differ)

        grid = f"{len(ORIGINS)} origins x {len(HOSTS)} hosts"
        for method in ("GET", "POST"):
            for site in SITES:
                def request(port, origin, host, method=method, site=site):
                    return status_of(port, method, site, origin, host)

                await checks.run(f"{method} with Sec-Fetch-Site {site!r}: Tornado's status for {grid}",
                                 lambda request=request: same_grid(request))

        for path in ("/ws", "/ws/picky"):
            for site in SITES:
                def handshake(port, origin, host, path=path, site=site):
                    return handshake_status(port, path, site, origin, host)

                await checks.run(f"WebSocket {path} with Sec-Fetch-Site {site!r}: Tornado's status "
                                 f"for {grid}", lambda handshake=handshake: same_grid(handshake))

        async def ws_outcomes():
            got = {}
            for path in ("/ws", "/ws/picky"):
                for origin in (TRUSTED[0], "https://friend.example"):
                    got[path, origin] = await loop.run_in_executor(
                        None, handshake_status, server.port, path, "cross-site", origin, HOSTS[0])
            want = {("/ws", TRUSTED[0]): 101, ("/ws", "https://friend.example"): 403,
                    ("/ws/picky", TRUSTED[0]): 403, ("/ws/picky", "https://friend.example"): 101}
            assert got == want, got

        await checks.run("a cross-site handshake: /ws takes the trusted origin, /ws/picky its own",
                         ws_outcomes)

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
