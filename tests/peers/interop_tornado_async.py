#!/usr/bin/env python3
"""Answers given later, cyclone against Tornado: the `longpoll_chat` example beside Tornado's own
long-polling chat demo (tests/peers/tornado_pages.py longpoll: demos/chat's MessageBuffer and
MessageUpdatesHandler, serving the example's templates), each on its own port, both driven over
raw sockets with the same requests.

    .venv/bin/python tests/peers/interop_tornado_async.py \
        --server target/release/examples/longpoll_chat

For each server: a poll with nothing to report stays unanswered (the server counts it) until a
message is posted, then gets it as JSON with a length; the connection then serves the next
request; a poll with an unknown cursor is answered at once with every message, one with the
latest cursor waits, and closing its socket is noticed (on_connection_close); a request
pipelined behind a waiting poll is answered after it, in order; Server-Sent Events over
HTTP/1.1 come as chunks (the first before any message), over HTTP/1.0 as the raw body up to the
close; an HTTP/1.0 poll gets its answer with a length and the close. What the two servers
send is then compared: status, Content-Type, framing (Content-Length, chunked or to the
close), the JSON's shape and each event's text.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import json
import os
import re
import shlex
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, Server, check_alive, parse_args  # noqa: E402


class Conn:
    """One client connection with a receive buffer; every read bounded."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"closed; buffered {self.buf[:200]!r}")
        self.buf += data

    def quiet(self, secs):
        """Whether nothing arrives for `secs`."""
        self.sock.settimeout(secs)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        self.buf += data
        return False

    def head(self):
        """The next response's status and headers (lower-case names)."""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def exactly(self, n):
        deadline = time.monotonic() + 10
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunk(self):
        """The next chunk's data (b"" for the last chunk)."""
        deadline = time.monotonic() + 10
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        size, self.buf = self.buf.split(b"\r\n", 1)
        n = int(size.split(b";")[0], 16)
        data = self.exactly(n + 2)
        assert data.endswith(b"\r\n"), data
        return data[:-2]

    def until_close(self):
        deadline = time.monotonic() + 10
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out

    def response(self):
        """A whole response with a Content-Length: (status, headers, body)."""
        status, headers = self.head()
        assert "content-length" in headers, f"no Content-Length: {headers}"
        return status, headers, self.exactly(int(headers["content-length"]))

    def close(self):
        self.sock.close()


def framing(headers):
    if "content-length" in headers:
        return "length"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return "chunked"
    return "close"


class Client:
    """The requests of the chat page against one server."""

    def __init__(self, port):
        self.port = port
        c = Conn(port)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = c.response()
        c.close()
        assert status == 200, status
        m = re.search(r"_xsrf=([^;]+)", headers.get("set-cookie", ""))
        assert m, f"no _xsrf cookie: {headers}"
        self.token = m.group(1)

    def form(self, path, version="1.1", **fields):
        fields["_xsrf"] = self.token
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        return (f"POST {path} HTTP/{version}\r\nHost: x\r\nCookie: _xsrf={self.token}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def post_message(self, text):
        c = Conn(self.port)
        c.send(self.form("/a/message/new", body=text))
        status, headers, body = c.response()
        c.close()
        assert status == 200, (status, body)
        return json.loads(body)

    def status(self):
        c = Conn(self.port)
        c.send(b"GET /a/status HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body = c.response()
        c.close()
        return json.loads(body)

    def wait_status(self, key, want):
        deadline = time.monotonic() + 10
        while True:
            got = self.status()[key]
            if got == want:
                return
            assert time.monotonic() < deadline, f"/a/status {key} stays {got}, not {want}"
            time.sleep(0.02)


def long_poll(port):
    cl = Client(port)
    poll = Conn(port)
    poll.send(cl.form("/a/message/updates"))
    cl.wait_status("waiters", 1)
    assert poll.quiet(0.3), f"answered before any message: {poll.buf!r}"
    sent = cl.post_message("hello")
    status, headers, body = poll.response()
    got = json.loads(body)
    assert status == 200 and got["messages"] == [sent], (status, got, sent)
    # The same connection serves the next request.
    poll.send(b"GET /a/status HTTP/1.1\r\nHost: x\r\n\r\n")
    again, _, after = poll.response()
    assert again == 200 and json.loads(after)["waiters"] == 0, (again, after)
    poll.close()
    return {"status": status, "type": headers.get("content-type"), "framing": framing(headers),
            "keys": sorted(got), "message keys": sorted(got["messages"][0])}


def cursors(port):
    cl = Client(port)
    first = cl.post_message("one")
    second = cl.post_message("two")
    c = Conn(port)
    c.send(cl.form("/a/message/updates", cursor="unknown"))
    status, _, body = c.response()
    every = json.loads(body)["messages"]
    assert status == 200 and every[-2:] == [first, second], every
    c.send(cl.form("/a/message/updates", cursor=first["id"]))
    status, _, body = c.response()
    assert json.loads(body)["messages"] == [second], body
    c.send(cl.form("/a/message/updates", cursor=second["id"]))
    cl.wait_status("waiters", 1)
    c.close()
    # The server notices the close (on_connection_close) without any message.
    cl.wait_status("waiters", 0)
    return {"after unknown cursor": len(every) >= 2, "after first": 1}


def pipelined(port):
    cl = Client(port)
    last = cl.post_message("before")
    c = Conn(port)
    c.send(cl.form("/a/message/updates", cursor=last["id"]) + b"GET /a/status HTTP/1.1\r\nHost: x\r\n\r\n")
    cl.wait_status("waiters", 1)
    assert c.quiet(0.3), f"something answered while the poll waits: {c.buf!r}"
    sent = cl.post_message("after")
    status, _, body = c.response()
    assert status == 200 and json.loads(body)["messages"] == [sent], body
    status2, _, body2 = c.response()
    assert status2 == 200 and "waiters" in json.loads(body2), body2
    c.close()
    return {"order": ["poll", "status"]}


def events_11(port):
    cl = Client(port)
    c = Conn(port)
    c.send(b"GET /a/message/events HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers = c.head()
    assert status == 200 and framing(headers) == "chunked", (status, headers)
    first = c.chunk()
    assert first == b": connected\n\n", first
    cl.wait_status("streams", 1)
    sent = cl.post_message("streamed")
    event = b""
    while not event.endswith(b"\n\n"):
        event += c.chunk()
    text = event.decode()
    m = re.fullmatch(r"id: (\S+)\ndata: (.*)\n\n", text, re.S)
    assert m and m.group(1) == sent["id"] and json.loads(m.group(2)) == sent, text
    c.close()
    cl.wait_status("streams", 0)
    return {"status": status, "type": headers.get("content-type"), "framing": "chunked",
            "cache": headers.get("cache-control"), "first": first.decode(),
            "event": re.sub(r"\d+", "N", m.group(1))}


def events_10(port):
    cl = Client(port)
    c = Conn(port)
    c.send(b"GET /a/message/events HTTP/1.0\r\n\r\n")
    status, headers = c.head()
    assert status == 200 and framing(headers) == "close", (status, headers)
    deadline = time.monotonic() + 10
    while len(c.buf) < len(b": connected\n\n"):
        c._fill(deadline)
    assert c.buf == b": connected\n\n", c.buf
    cl.wait_status("streams", 1)
    sent = cl.post_message("raw")
    while not c.buf.endswith(b"\n\n") or c.buf.count(b"\n\n") < 2:
        c._fill(deadline)
    assert c.buf.endswith(f"data: {json.dumps(sent)}\n\n".encode()) or \
        json.loads(c.buf.split(b"data: ")[1]) == sent, c.buf
    c.close()
    cl.wait_status("streams", 0)
    return {"status": status, "framing": "close"}


def poll_10(port):
    cl = Client(port)
    last = cl.post_message("x")
    c = Conn(port)
    c.send(cl.form("/a/message/updates", version="1.0", cursor=last["id"]))
    cl.wait_status("waiters", 1)
    sent = cl.post_message("for 1.0")
    status, headers, body = c.response()
    assert status == 200 and json.loads(body)["messages"] == [sent], body
    rest = c.until_close()
    assert rest == b"", rest
    return {"status": status, "framing": framing(headers), "closed": True}


SCENARIOS = [
    ("a poll waits for the next message, then the connection serves the next request", long_poll),
    ("cursors: unknown answers at once, known waits, a closed poll is dropped", cursors),
    ("a request pipelined behind a waiting poll is answered after it", pipelined),
    ("Server-Sent Events over HTTP/1.1 arrive as chunks", events_11),
    ("Server-Sent Events over HTTP/1.0 run to the close", events_10),
    ("an HTTP/1.0 poll is answered with a length, then closed", poll_10),
]


async def main():
    args = parse_args(__doc__, "longpoll_chat command",
                      [("--tornado", dict(default=f"{sys.executable} {os.path.join(HERE, 'tornado_pages.py')}"
                                                  " longpoll", help="the Tornado demo's command"))])
    checks = Checks("tornado demos/chat <-> longpoll_chat")
    loop = asyncio.get_running_loop()
    started = []
    try:
        try:
            log = os.path.join(args.logdir, "longpoll_chat.log")
            cyclone = Server(shlex.split(args.server), logfile=log, env={"RUST_LOG": "info"})
            started.append(cyclone)
            tornado = Server(shlex.split(args.tornado), logfile=os.path.join(args.logdir, "tornado_longpoll.log"))
            started.append(tornado)
        except RuntimeError as exc:
            checks.fail("start longpoll_chat and Tornado's demo", str(exc))
            return checks.finish()
        for title, scenario in SCENARIOS:
            async def same(scenario=scenario):
                c = await loop.run_in_executor(None, scenario, cyclone.port)
                t = await loop.run_in_executor(None, scenario, tornado.port)
                assert c == t, f"cyclone {c} != tornado {t}"
            await checks.run(title + " (cyclone and Tornado alike)", same, 60)
        check_alive(checks, cyclone, "longpoll_chat", log)
    finally:
        for s in started:
            s.stop()
    return checks.finish()


if __name__ == "__main__":
    from peerlib import run_main  # noqa: E402
    run_main(main)
