#!/usr/bin/env python3
"""Interop: Tornado's `websocket_connect` client against cyclone's `echo_server`.

    .venv/bin/python tests/peers/interop_tornado_client.py --server target/release/examples/echo_server

Starts `echo_server` twice on free 127.0.0.1 ports (plain, then `--deflate`) and checks
that text, binary and a 1 MiB message come back intact, without and with
permessage-deflate (Tornado's client offers it with `compression_options={}`), plus a
close handshake with code 1000. Prints `N passed, N failed`; exits 1 on any failure.
`--server` may be any command taking echo_server's flags (e.g. a stand-in).
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import Checks, check_alive, parse_args, run_main, start_server  # noqa: E402

from tornado.websocket import websocket_connect  # noqa: E402

MIB = 1024 * 1024


def payloads():
    rnd = random.Random(6455)
    words = ["cyclone", "tornado", "websocket", "frame", "deflate", "mask", "héllo", "世界", "🌀"]
    big_text = " ".join(rnd.choice(words) for _ in range(400_000))
    big_text = big_text.encode()[: MIB].decode("utf-8", "ignore")
    return {
        "text": "Hello, world",
        "utf-8 text": "héllo wörld ✓ 世界 🌀",
        "empty text": "",
        "binary": bytes(range(256)),
        "empty binary": b"",
        "1 MiB text": big_text,
        "1 MiB binary": rnd.randbytes(MIB),
    }


async def echo_checks(checks, url, compress):
    mode = "deflate" if compress else "plain"
    conn = None

    async def connect():
        nonlocal conn
        conn = await websocket_connect(url + "/echo", compression_options={} if compress else None,
                                       max_message_size=64 * MIB, connect_timeout=10)
        ext = conn.headers.get("Sec-WebSocket-Extensions", "")
        if compress and "permessage-deflate" not in ext:
            raise AssertionError(f"permessage-deflate not negotiated (Sec-WebSocket-Extensions: {ext!r})")
        if not compress and ext:
            raise AssertionError(f"unexpected extension negotiated: {ext!r}")

    if not await checks.run(f"[{mode}] connect" + (" and negotiate permessage-deflate" if compress else ""), connect, 15):
        return
    for name, data in payloads().items():
        async def roundtrip(data=data):
            await conn.write_message(data, binary=isinstance(data, bytes))
            got = await conn.read_message()
            if got is None:
                raise AssertionError(f"connection closed (code {conn.close_code}, reason {conn.close_reason!r})")
            if type(got) is not type(data):
                raise AssertionError(f"sent {type(data).__name__}, got {type(got).__name__} back")
            if got != data:
                raise AssertionError(f"payload differs: sent {len(data)} got {len(got)} (first bytes {got[:32]!r})")
        await checks.run(f"[{mode}] {name} comes back intact", roundtrip, 30)

    async def burst():
        msgs = [f"message {i} " + "x" * (i % 200) for i in range(1000)]
        for m in msgs:
            conn.write_message(m)
        for i, m in enumerate(msgs):
            got = await conn.read_message()
            if got != m:
                raise AssertionError(f"message {i}: expected {m[:20]!r}..., got {str(got)[:20]!r}")
    await checks.run(f"[{mode}] 1,000 messages in order", burst, 30)

    async def close():
        conn.close(1000, "bye")
        while await conn.read_message() is not None:
            pass
        if conn.close_code not in (1000, None):
            raise AssertionError(f"close code {conn.close_code}, expected 1000")
    await checks.run(f"[{mode}] close handshake", close, 10)


async def main():
    args = parse_args(__doc__, "echo_server command (gets --port, --address, [--deflate])")
    checks = Checks("tornado client -> echo_server")
    for compress in (False, True):
        extra = ["--deflate"] if compress else []
        log = os.path.join(args.logdir, f"echo_server-tornado-{'deflate' if compress else 'plain'}.log")
        server = start_server(checks, f"echo_server {' '.join(extra)}", args.server, extra, logfile=log)
        if server is None:
            continue
        with server:
            await echo_checks(checks, server.url, compress)
            check_alive(checks, server, "echo_server", log)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
