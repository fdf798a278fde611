#!/usr/bin/env python3
"""Request bodies taken as they arrive, cyclone against Tornado: http_hello's /upload/stream
(`stream_request_body`) beside a Tornado application whose handler is the same one written with
`@tornado.web.stream_request_body` (prepare refuses `X-Deny` with 403, else raises the body
limit to 16 MiB; data_received counts and hashes; post and put answer `length=N hash=H`).

    .venv/bin/python tests/peers/interop_tornado_stream_body.py \
        --server target/release/examples/http_hello

Over raw sockets, each server gets the same requests and must send the same statuses and
bodies: a Content-Length body sent in three parts with pauses between them (so that it
arrives in pieces), a chunked body of five chunks (no chunk extensions or trailer fields:
Tornado refuses both with 400, where cyclone takes them), an empty chunked body,
`Expect: 100-continue` (the 100, then the answer), and a request refused in `prepare` before
its body is sent: answered at once, then the connection closes (with `Expect: 100-continue`
too, and no 100 then). The error pages' text is not compared, only their status.

Then answers streamed with `flush()` (http_hello's /flushed beside the same Tornado handler:
write A bytes, flush, write B more and finish): chunked without a length; with a
`Content-Length` of the handler's own, sent unchunked within it, and when the bytes written
pass it or fall short of it, cut at what fits and the connection closed (Tornado's
`HTTPOutputError`); over HTTP/1.0, to the close or within the length. The status, the framing
headers, the body bytes and whether the connection closed must be the same.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import logging
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, parse_args, run_main, start_server, tornado_listen  # noqa: E402

import tornado.web  # noqa: E402

MASK = (1 << 64) - 1


def fold(h, data):
    for b in data:
        h = (h * 31 + b) & MASK
    return h


@tornado.web.stream_request_body
class StreamUpload(tornado.web.RequestHandler):
    def prepare(self):
        if self.request.headers.get("X-Deny"):
            raise tornado.web.HTTPError(403)
        self.request.connection.set_max_body_size(16 << 20)
        self.length = 0
        self.hash = 0

    def data_received(self, chunk):
        self.length += len(chunk)
        self.hash = fold(self.hash, chunk)

    def post(self):
        self.write(f"length={self.length} hash={self.hash}")

    put = post


def closed_within(s, secs):
    """Whether the server closes `s` (EOF or reset) within `secs` seconds."""
    s.settimeout(secs)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def responses(port, parts, pause=0.05, want=1):
    """Sends `parts` (bytes) with `pause` between them and reads `want` responses (a 100 counts);
    returns [(status, body)] and whether the server then closed the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = b""
    got = []
    try:
        for i, part in enumerate(parts):
            if i:
                time.sleep(pause)
            try:
                s.sendall(part)
            except OSError:
                break  # the server refused early and closed
        deadline = time.monotonic() + 10
        while len(got) < want:
            while b"\r\n\r\n" not in buf:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                data = s.recv(65536)
                if not data:
                    raise EOFError(f"closed after {got}: {buf!r}")
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(buf) < length:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                data = s.recv(65536)
                if not data:
                    raise EOFError("closed inside a body")
                buf += data
            body, buf = buf[:length], buf[length:]
            got.append((status, body.decode("latin-1") if status != 403 else ""))
        return got, closed_within(s, 1)
    finally:
        s.close()


class Flushed(tornado.web.RequestHandler):
    async def get(self):
        first = int(self.get_argument("first", "0"))
        rest = int(self.get_argument("rest", "0"))
        length = self.get_argument("length", None)
        if length is not None:
            self.set_header("Content-Length", length)
        self.write(b"a" * first)
        await self.flush()
        self.write(b"b" * rest)


def streamed(port, request):
    """Sends `request` and reads one answer whatever its framing: (status, Content-Length value
    or None, chunked or not, the body's bytes (dechunked), closed by the server after it)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = b""
    eof = False
    deadline = time.monotonic() + 10

    def more():
        nonlocal buf, eof
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except ConnectionError:
            data = b""
        if not data:
            eof = True
        buf += data

    try:
        s.sendall(request)
        while b"\r\n\r\n" not in buf and not eof:
            more()
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        length = fields.get("content-length")
        chunked = fields.get("transfer-encoding", "").lower() == "chunked"
        if chunked:
            body = b""
            while not eof:
                while b"\r\n" not in buf and not eof:
                    more()
                size_line, _, rest = buf.partition(b"\r\n")
                if eof and not rest:
                    break
                size = int(size_line, 16)
                while len(rest) < size + 2 and not eof:
                    more()
                    size_line, _, rest = buf.partition(b"\r\n")
                if size == 0:
                    break
                body += rest[:size]
                buf = rest[size + 2:]
        elif length is not None:
            while len(buf) < int(length) and not eof:
                more()
            body = buf[:int(length)]
        else:
            while not eof:
                more()
            body = buf
        return status, length, chunked, body, eof or closed_within(s, 0.5)
    finally:
        s.close()


def body_of(n):
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


def head(method, extra=""):
    return f"{method} /upload/stream HTTP/1.1\r\nHost: x\r\n{extra}".encode()


def chunked(pieces):
    # No chunk extensions and no trailer fields: Tornado refuses both (400, "invalid chunk
    # size", "improperly terminated chunked request"), which RFC 9112 §7.1 allows; cyclone
    # accepts and drops them (tests/http.rs, tests/stream_body.rs).
    out = []
    for i, p in enumerate(pieces):
        size = f"{len(p):X}" if i % 2 else f"{len(p):x}"
        out.append(f"{size}\r\n".encode() + p + b"\r\n")
    out.append(b"0\r\n\r\n")
    return out


CASES = []
big = body_of(150_000)
CASES.append(("a Content-Length body sent in three parts",
              [head("POST", f"Content-Length: {len(big)}\r\n\r\n"), big[:50_000], big[50_000:100_000],
               big[100_000:]], 1, False))
pieces = [body_of(n) for n in (1, 100, 5000, 7, 20_000)]
CASES.append(("a chunked body of five chunks (hex in both cases)",
              [head("PUT", "Transfer-Encoding: chunked\r\n\r\n")] + chunked(pieces), 1, False))
CASES.append(("an empty chunked body", [head("POST", "Transfer-Encoding: chunked\r\n\r\n")] + chunked([]),
              1, False))
CASES.append(("Expect: 100-continue gets the 100, then the answer",
              [head("POST", "Expect: 100-continue\r\nContent-Length: 3000\r\n\r\n"), body_of(3000)], 2, False))
CASES.append(("refused in prepare before the body: answered at once, then closed",
              [head("POST", "X-Deny: 1\r\nContent-Length: 100000\r\n\r\n")], 1, True))
CASES.append(("refused in prepare with Expect: 100-continue: no 100, the 403, closed",
              [head("POST", "X-Deny: 1\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n")], 1, True))


FLUSHED = [
    ("no length: chunked", "first=5&rest=7", "1.1", ""),
    ("the handler's Content-Length, met: unchunked, kept alive", "first=5&rest=7&length=12", "1.1", ""),
    ("passing the handler's Content-Length: cut, closed", "first=5&rest=6&length=10", "1.1", ""),
    ("short of the handler's Content-Length: cut, closed", "first=5&rest=3&length=10", "1.1", ""),
    ("HTTP/1.0 without a length: to the close", "first=5&rest=7", "1.0", ""),
    ("HTTP/1.0 keep-alive within the handler's length", "first=5&rest=7&length=12", "1.0",
     "Connection: keep-alive\r\n"),
]


async def main():
    args = parse_args(__doc__, "http_hello command", tornado_log=logging.CRITICAL)
    checks = Checks("tornado @stream_request_body <-> http_hello /upload/stream")
    loop = asyncio.get_running_loop()
    log = os.path.join(args.logdir, "http_hello_stream_body.log")
    server = start_server(checks, "http_hello", args.server, logfile=log)
    if server is None:
        return checks.finish()
    app = tornado.web.Application([(r"/upload/stream", StreamUpload), (r"/flushed", Flushed)])
    tornado_port, tornado_server = tornado_listen(app)
    try:
        for title, parts, want, expect_close in CASES:
            async def same(parts=parts, want=want, expect_close=expect_close):
                c = await loop.run_in_executor(None, responses, server.port, parts, 0.05, want)
                t = await loop.run_in_executor(None, responses, tornado_port, parts, 0.05, want)
                assert c[0] == t[0], f"cyclone {c[0]} != tornado {t[0]}"
                if expect_close:
                    assert c[1] and t[1], f"closed after the answer: cyclone {c[1]}, tornado {t[1]}"
                else:
                    assert c[0][-1][0] == 200 and not c[1], f"cyclone: {c}"
                return c[0]

            await checks.run(f"{title} (same answers)", same, 60)

        for title, query, version, extra in FLUSHED:
            request = f"GET /flushed?{query} HTTP/{version}\r\nHost: x\r\n{extra}\r\n".encode()

            async def same_stream(request=request, query=query):
                c = await loop.run_in_executor(None, streamed, server.port, request)
                t = await loop.run_in_executor(None, streamed, tornado_port, request)
                assert c == t, f"cyclone {c} != tornado {t}"
                assert c[0] == 200, c
                return c

            await checks.run(f"flushed answer, {title} (same bytes)", same_stream, 30)

        async def expected_hash():
            got, _ = await loop.run_in_executor(None, responses, server.port, CASES[0][1], 0.01, 1)
            assert got == [(200, f"length={len(big)} hash={fold(0, big)}")], got

        await checks.run("the answer is the body's length and hash", expected_hash)
        check_alive(checks, server, "http_hello", log)
    finally:
        server.stop()
        tornado_server.stop()
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
