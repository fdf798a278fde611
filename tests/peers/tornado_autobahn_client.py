#!/usr/bin/env python3
"""Tornado stand-in for cyclone's `autobahn_client` example (same flags).

Drives an Autobahn fuzzingserver: /getCaseCount, then /runCase?case=N&agent=A for each
case (echoing every message back until the server closes), then /updateReports?agent=A,
which makes `kosoku -m fuzzingserver` write its reports and exit. Used to measure a
reference client with scripts/autobahn:
    CYCLONE_AUTOBAHN_CLIENT_CMD="$PWD/.venv/bin/python tests/peers/tornado_autobahn_client.py" scripts/autobahn
"""

import argparse
import asyncio

from tornado.websocket import websocket_connect


async def run(url, agent, deflate, timeout):
    conn = await websocket_connect(f"{url}/getCaseCount")
    count = int(await conn.read_message())
    conn.close()
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        try:
            conn = await asyncio.wait_for(websocket_connect(
                f"{url}/runCase?case={case}&agent={agent}",
                compression_options={} if deflate else None,
                max_message_size=64 * 1024 * 1024), timeout)
        except Exception as exc:  # a failed case is the fuzzingserver's verdict to give
            print(f"case {case}: connect failed: {exc!r}", flush=True)
            continue
        while True:
            try:
                msg = await asyncio.wait_for(conn.read_message(), timeout)
            except asyncio.TimeoutError:
                conn.close()
                break
            if msg is None:
                break
            try:
                await conn.write_message(msg, binary=isinstance(msg, bytes))
            except Exception:
                break
    conn = await websocket_connect(f"{url}/updateReports?agent={agent}")
    await asyncio.wait_for(conn.read_message(), timeout)
    conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="ws://127.0.0.1:9001")
    p.add_argument("--agent", default="cyclone")
    p.add_argument("--no-deflate", dest="deflate", action="store_false")
    p.add_argument("--case-timeout", type=float, default=60)
    args = p.parse_args()
    asyncio.run(run(args.url, args.agent, args.deflate, args.case_timeout))


if __name__ == "__main__":
    main()
