#!/usr/bin/env python3
"""Python `websockets` echo server: a peer that is not cyclone, for cyclone's client tests.

Start it on port 0 and read the port from the first stdout line:
    .venv/bin/python tests/peers/websockets_echo.py --port 0 [--no-deflate]
    -> prints "PORT 43121" (flushed) once listening on 127.0.0.1
(create .venv with `scripts/venv`). permessage-deflate is on by default (websockets'
default server offer handling, context takeover kept); --no-deflate turns it off.
With `--cert CERT.pem --key KEY.pem` it speaks TLS (wss://; Python's ssl module) and
still prints `PORT n` once listening.
Every path echoes text as text and binary as binary; `/publish` relays to every
connection on `/broadcast` (like cyclone's echo_server). Max message size 64 MiB.
It stops on SIGTERM/SIGINT, or when stdin reaches EOF with --exit-on-stdin-eof
(so a test that dies does not leave it behind).
"""

import argparse
import asyncio
import signal
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

BROADCAST = set()


async def handler(ws):
    path = ws.request.path.split("?", 1)[0]
    if path == "/broadcast":
        BROADCAST.add(ws)
    try:
        async for msg in ws:
            if path == "/publish":
                for conn in list(BROADCAST):
                    try:
                        await conn.send(msg)
                    except ConnectionClosed:
                        BROADCAST.discard(conn)
            else:
                await ws.send(msg)
    except ConnectionClosed:
        pass
    finally:
        BROADCAST.discard(ws)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--no-deflate", dest="deflate", action="store_false")
    p.add_argument("--max-message-size", type=int, default=64 * 1024 * 1024)
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    p.add_argument("--cert", help="PEM certificate chain: serve wss:// (needs --key)")
    p.add_argument("--key", help="PEM private key for --cert")
    args = p.parse_args()
    tls = None
    if args.cert or args.key:
        if not (args.cert and args.key):
            p.error("--cert and --key go together")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:
        loop.run_in_executor(None, lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)))
    async with serve(handler, args.address, args.port, max_size=args.max_message_size,
                     compression="deflate" if args.deflate else None, ssl=tls) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
