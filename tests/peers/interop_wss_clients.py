#!/usr/bin/env python3
"""Interop over TLS: websockets, Tornado, urllib and Node.js `ws` clients against `tls_echo`.

    .venv/bin/python tests/peers/interop_wss_clients.py --server target/release/examples/tls_echo

Makes a throwaway self-signed pair for 127.0.0.1/localhost (peerlib.tls_pair, openssl),
starts `tls_echo --cert cert.pem --key key.pem` on a free 127.0.0.1 port, and checks,
each client trusting cert.pem as its CA:
  - Python `websockets` (ssl.create_default_context(cafile=cert.pem)): without the CA the
    handshake is refused; with it: text, UTF-8 text, binary, a 1 MiB text and a 2 MiB
    binary message come back intact, the name `localhost` verifies too (SNI), and the close
    handshake ends with 1000;
  - Tornado `websocket_connect(HTTPRequest(url, ca_certs=cert.pem))`: text, binary and
    1 MiB echo, close 1000;
  - urllib (http.client) GET https://127.0.0.1:n/ with the CA: 200 and the page says it
    was served over https;
  - Node.js `ws` (tests/peers/node/wss_client.js, `ca` option): its checks, one line each.
Prints `N passed, N failed`; exits 1 on any failure. `--server` may be any command taking
tls_echo's flags (--cert, --key, --port, --address).
"""

import asyncio
import os
import random
import ssl
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, parse_args, run_checking_client, run_main, start_server, tls_pair  # noqa: E402

from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

MIB = 1024 * 1024
NODE_CLIENT = os.path.join(HERE, "node", "wss_client.js")


def payloads():
    rnd = random.Random(8446)
    words = ["cyclone", "tls", "wss", "record", "handshake", "héllo", "世界", "🌀"]
    big_text = " ".join(rnd.choice(words) for _ in range(300_000)).encode()[:MIB].decode("utf-8", "ignore")
    return {
        "text": "Hello, world",
        "utf-8 text": "héllo wörld ✓ 世界 🌀",
        "binary": bytes(range(256)),
        "1 MiB text": big_text,
        "2 MiB binary": rnd.randbytes(2 * MIB),
    }


async def websockets_checks(checks, port, cafile):
    tag = "[websockets]"
    url = f"wss://127.0.0.1:{port}/echo"

    async def refused():
        try:
            ws = await connect(url, ssl=ssl.create_default_context(), open_timeout=10)
        except ssl.SSLCertVerificationError:
            return
        await ws.close()
        raise AssertionError("connected to a self-signed server without trusting it")
    await checks.run(f"{tag} without the CA the certificate is refused", refused, 15)

    ctx = ssl.create_default_context(cafile=cafile)
    ws = None

    async def open_():
        nonlocal ws
        ws = await connect(url, ssl=ctx, max_size=64 * MIB, open_timeout=10, compression=None)
        version = ws.transport.get_extra_info("ssl_object").version()
        if version not in ("TLSv1.2", "TLSv1.3"):
            raise AssertionError(f"negotiated {version}")
    if not await checks.run(f"{tag} wss handshake with the CA (cafile=cert.pem)", open_, 15):
        return

    async def echo(data):
        await ws.send(data)
        got = await ws.recv()
        if type(got) is not type(data) or got != data:
            raise AssertionError(f"sent {type(data).__name__} of {len(data)}, got {type(got).__name__} of {len(got)}, differing")
    for title, data in payloads().items():
        await checks.run(f"{tag} {title} echo", lambda data=data: echo(data), 30)

    async def close():
        await ws.close(1000, "bye")
        if ws.close_code != 1000:
            raise AssertionError(f"close code {ws.close_code} (received {ws.close_rcvd!r})")
    await checks.run(f"{tag} close handshake: 1000", close, 10)

    async def by_name():
        # Same server, verified by the name in the certificate (DNS:localhost) sent as SNI.
        async with connect(url, ssl=ctx, server_hostname="localhost", open_timeout=10) as ws2:
            await ws2.send("by name")
            if await ws2.recv() != "by name":
                raise AssertionError("echo differs")
    await checks.run(f"{tag} server_hostname=localhost verifies and echoes", by_name, 15)


async def tornado_checks(checks, port, cafile):
    tag = "[tornado]"
    conn = None

    async def open_():
        nonlocal conn
        req = HTTPRequest(f"wss://127.0.0.1:{port}/echo", ca_certs=cafile, connect_timeout=10)
        conn = await websocket_connect(req, max_message_size=64 * MIB)
    if not await checks.run(f"{tag} websocket_connect(HTTPRequest(wss://..., ca_certs=cert.pem))", open_, 15):
        return

    async def echo(data):
        await conn.write_message(data, binary=isinstance(data, bytes))
        got = await conn.read_message()
        if type(got) is not type(data) or got != data:
            raise AssertionError(f"sent {type(data).__name__} of {len(data)}, got {type(got).__name__}"
                                 f" of {len(got) if got is not None else None}, differing")
    p = payloads()
    for title in ("text", "binary", "1 MiB text"):
        await checks.run(f"{tag} {title} echo", lambda data=p[title]: echo(data), 30)

    async def close():
        conn.close(1000, "bye")
        while await conn.read_message() is not None:
            pass
        if conn.close_code != 1000:
            raise AssertionError(f"close code {conn.close_code}, expected 1000")
    await checks.run(f"{tag} close handshake: 1000", close, 10)


def https_get_check(checks, port, cafile):
    title = "[urllib] GET https://127.0.0.1:n/ with the CA: 200, served over https"
    try:
        ctx = ssl.create_default_context(cafile=cafile)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=ctx, timeout=10) as resp:
            status, body = resp.status, resp.read().decode("utf-8", "replace")
        if status != 200:
            raise AssertionError(f"status {status}")
        if "cyclone over https" not in body:
            raise AssertionError(f"page does not say 'cyclone over https': {body[:200]!r}")
        checks.ok(title)
    except (OSError, AssertionError, urllib.error.URLError) as exc:
        checks.fail(title, str(exc))


def node_checks(checks, node, port, cafile, logfile, timeout):
    cmd = [node, NODE_CLIENT, "--url", f"wss://127.0.0.1:{port}/echo", "--ca", cafile]
    run_checking_client(checks, "[node ws] wss client", cmd, logfile, timeout)


async def main():
    args = parse_args(__doc__, "tls_echo command (gets --cert, --key, --port, --address)",
                      [("--node", dict(default=os.environ.get("NODE", "node"))),
                       ("--timeout", dict(type=int, default=60, help="seconds for the node client run"))])
    checks = Checks("wss clients -> tls_echo")
    try:
        cert, key = tls_pair(os.path.join(args.logdir, "tls-echo"))
        checks.ok("self-signed pair for 127.0.0.1/localhost (openssl)")
    except RuntimeError as exc:
        checks.fail("self-signed pair", str(exc))
        return checks.finish()
    log = os.path.join(args.logdir, "tls_echo.log")
    server = start_server(checks, "tls_echo", args.server, ["--cert", cert, "--key", key], logfile=log)
    if server is None:
        return checks.finish()
    with server:
        await websockets_checks(checks, server.port, cert)
        await tornado_checks(checks, server.port, cert)
        await asyncio.to_thread(https_get_check, checks, server.port, cert)
        await asyncio.to_thread(node_checks, checks, args.node, server.port, cert,
                                os.path.join(args.logdir, "node-wss-client.out"), args.timeout)
        check_alive(checks, server, "tls_echo", log)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
