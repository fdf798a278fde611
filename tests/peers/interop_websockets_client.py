#!/usr/bin/env python3
"""Interop: Python `websockets` client against cyclone's `echo_server --deflate`.

    .venv/bin/python tests/peers/interop_websockets_client.py --server target/release/examples/echo_server

Starts `echo_server --deflate` on a free 127.0.0.1 port and, for several
permessage-deflate offers (websockets' default offer; both no_context_takeover;
server_max_window_bits=10; client_max_window_bits=9), checks that:
  - the extension is negotiated, and the response honours what was requested;
  - compressed text and binary go both ways (counts frames with RSV1 set on each side),
    including a message larger than the 32 KiB deflate window;
  - 1,000 messages in a row (pipelined) come back in order, with context takeover
    (the default offer);
  - the close handshake ends with 1000.
Also checks that a client that offers no extension gets none.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import Checks, check_alive, parse_args, run_main, start_server  # noqa: E402

from websockets.asyncio.client import connect  # noqa: E402
from websockets.extensions import permessage_deflate as pmd  # noqa: E402

KIB = 1024

# Count frames that really were compressed (RSV1 on the first frame of a message).
COUNTS = {"rx_compressed": 0, "tx_compressed": 0}
_decode, _encode = pmd.PerMessageDeflate.decode, pmd.PerMessageDeflate.encode


def _counting_decode(self, frame, **kw):
    if frame.rsv1:
        COUNTS["rx_compressed"] += 1
    return _decode(self, frame, **kw)


def _counting_encode(self, frame):
    out = _encode(self, frame)
    if out.rsv1:
        COUNTS["tx_compressed"] += 1
    return out


pmd.PerMessageDeflate.decode = _counting_decode
pmd.PerMessageDeflate.encode = _counting_encode

OFFERS = {
    "default offer": (None, []),
    "no_context_takeover both ways": (
        pmd.ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True),
        ["server_no_context_takeover", "client_no_context_takeover"]),
    "server_max_window_bits=10": (
        pmd.ClientPerMessageDeflateFactory(server_max_window_bits=10), ["server_max_window_bits=10"]),
    "client_max_window_bits=9": (
        pmd.ClientPerMessageDeflateFactory(client_max_window_bits=9), []),
}


def text_payload(n, seed):
    rnd = random.Random(seed)
    words = ["cyclone", "tornado", "websocket", "permessage", "deflate", "héllo", "世界", "🌀", "window"]
    parts, size = [], 0
    while size < n:
        w = rnd.choice(words) + " "
        parts.append(w)
        size += len(w.encode())
    return "".join(parts).encode()[:n].decode("utf-8", "ignore")


async def offer_checks(checks, url, name, factory, expect_params):
    ws = None
    tag = f"[{name}]"

    async def open_():
        nonlocal ws
        kw = {"compression": "deflate"} if factory is None else {"extensions": [factory], "compression": None}
        ws = await connect(url + "/echo", max_size=64 * 1024 * KIB, open_timeout=10, **kw)
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if "permessage-deflate" not in ext:
            raise AssertionError(f"permessage-deflate not negotiated (Sec-WebSocket-Extensions: {ext!r})")
        for param in expect_params:
            if param not in ext.replace(" ", ""):
                raise AssertionError(f"response {ext!r} lacks {param}")
    if not await checks.run(f"{tag} negotiate permessage-deflate", open_, 15):
        return

    async def exchange(data):
        before = dict(COUNTS)
        await ws.send(data)
        got = await ws.recv()
        if type(got) is not type(data) or got != data:
            raise AssertionError(f"sent {type(data).__name__} of {len(data)}, got {type(got).__name__} of {len(got)} differing")
        if COUNTS["tx_compressed"] == before["tx_compressed"]:
            raise AssertionError("our message was not sent compressed")
        if COUNTS["rx_compressed"] == before["rx_compressed"]:
            raise AssertionError("echo_server's reply was not compressed (RSV1 clear); "
                                 "if it skips small messages on purpose, this payload is too small")

    rnd = random.Random(7692)
    cases = {
        "compressed text both ways": text_payload(2 * KIB, 1),
        "compressed binary both ways": bytes(text_payload(2 * KIB, 2), "utf-8"),
        "text larger than the 32 KiB window (200 KiB)": text_payload(200 * KIB, 3),
        "binary larger than the 32 KiB window (200 KiB, half random)":
            rnd.randbytes(100 * KIB) + bytes(text_payload(100 * KIB, 4), "utf-8"),
        "1 MiB text": text_payload(1024 * KIB, 5),
    }
    for title, data in cases.items():
        await checks.run(f"{tag} {title}", lambda data=data: exchange(data), 30)

    if name == "default offer":
        async def thousand():
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            if "no_context_takeover" in ext:
                raise AssertionError(f"context takeover not kept: {ext!r}")
            before = COUNTS["rx_compressed"]
            msgs = [f"message {i}: " + text_payload(100 + i % 300, i) for i in range(1000)]
            msgs = [m.encode() if i % 10 == 9 else m for i, m in enumerate(msgs)]  # some binary

            async def sender():
                for m in msgs:
                    await ws.send(m)
            task = asyncio.create_task(sender())
            for i, m in enumerate(msgs):
                got = await ws.recv()
                if got != m:
                    raise AssertionError(f"message {i} differs: {str(got)[:40]!r}")
            await task
            if COUNTS["rx_compressed"] - before < 1000:
                raise AssertionError(f"only {COUNTS['rx_compressed'] - before} of 1000 replies compressed")
        await checks.run(f"{tag} 1,000 messages in a row with context takeover", thousand, 60)

    async def close():
        await ws.close(1000, "bye")
        if ws.close_code != 1000:
            raise AssertionError(f"close code {ws.close_code} (received {ws.close_rcvd!r})")
    await checks.run(f"{tag} close handshake", close, 10)


async def main():
    args = parse_args(__doc__, "echo_server command (gets --port, --address, --deflate)")
    checks = Checks("websockets client -> echo_server --deflate")
    log = os.path.join(args.logdir, "echo_server-websockets-deflate.log")
    server = start_server(checks, "echo_server --deflate", args.server, ["--deflate"], logfile=log)
    if server is None:
        return checks.finish()
    with server:
        for name, (factory, expect) in OFFERS.items():
            await offer_checks(checks, server.url, name, factory, expect)

        async def no_offer():
            async with connect(server.url + "/echo", compression=None, open_timeout=10) as ws:
                ext = ws.response.headers.get("Sec-WebSocket-Extensions")
                if ext:
                    raise AssertionError(f"extension without an offer: {ext!r}")
                await ws.send("plain")
                if await ws.recv() != "plain":
                    raise AssertionError("echo differs")
        await checks.run("[no offer] no extension, plain echo", no_offer, 15)
        check_alive(checks, server, "echo_server", log)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
