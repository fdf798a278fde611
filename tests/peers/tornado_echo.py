#!/usr/bin/env python3
"""Tornado WebSocket echo server: a peer that is not cyclone.

Uses:
  * stand-in for cyclone's `echo_server` (same flags, same behaviour) when
    measuring how long Autobahn takes against Tornado:
        CYCLONE_ECHO_CMD="$PWD/.venv/bin/python tests/peers/tornado_echo.py" scripts/autobahn
  * a server for cyclone's client to talk to in Rust integration tests. Start it
    on port 0 and read the port from the first stdout line:
        .venv/bin/python tests/peers/tornado_echo.py --port 0 [--deflate]
        -> prints "PORT 43121" (flushed) once listening on 127.0.0.1
    (create .venv with `scripts/venv`). It stops on SIGTERM/SIGINT, or when its
    stdin reaches EOF if --exit-on-stdin-eof is given (so a test that dies does
    not leave it behind).

Behaviour (mirrors DESIGN.md section 7 `echo_server`): every path echoes text
as text and binary as binary, except that messages received on `/publish` are
relayed to every connection on `/broadcast`. check_origin allows everything.
--deflate turns on permessage-deflate (get_compression_options returns {}).
--max-message-size defaults to 64 MiB (Autobahn 9.* sends 16 MiB messages).
"""

import argparse
import asyncio
import signal
import sys

import tornado.web
import tornado.websocket

BROADCAST = set()


class EchoHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, deflate):
        self.deflate = deflate
        self.path_kind = None

    def check_origin(self, origin):
        return True

    def get_compression_options(self):
        return {} if self.deflate else None

    def open(self, *args):
        self.path_kind = self.request.path
        if self.path_kind == "/broadcast":
            BROADCAST.add(self)

    def on_message(self, message):
        binary = isinstance(message, bytes)
        if self.path_kind == "/publish":
            for conn in list(BROADCAST):
                try:
                    conn.write_message(message, binary=binary)
                except tornado.websocket.WebSocketClosedError:
                    BROADCAST.discard(conn)
            return
        try:
            self.write_message(message, binary=binary)
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_close(self):
        BROADCAST.discard(self)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--deflate", action="store_true", help="enable permessage-deflate")
    parser.add_argument("--max-message-size", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()

    app = tornado.web.Application(
        [(r"/.*", EchoHandler, {"deflate": args.deflate})],
        websocket_max_message_size=args.max_message_size,
    )
    server = app.listen(args.port, address=args.address, max_buffer_size=args.max_message_size + 1024 * 1024)
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(f"PORT {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:
        loop.run_in_executor(None, lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)))
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    asyncio.run(main())
