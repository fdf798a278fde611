#!/usr/bin/env python3
"""Request arguments as Tornado's handlers read them: `http_hello`'s /arguments against a Tornado
6.6 application with the same handler, in this process, over raw sockets.

    .venv/bin/python tests/peers/interop_tornado_arguments.py --server target/release/examples/http_hello

Each case is one raw request (query strings with `+`, `%20`, invalid escapes, non-UTF-8 bytes,
`;`, empty names and values, `a&&b`, repeated names, control characters and Unicode spaces;
urlencoded bodies with Content-Type variants; multipart bodies with quoted and odd boundaries,
preambles and epilogues, no final boundary, LF-only lines, RFC 2231 filenames, paths in
filenames, no name, no Content-Disposition, no part Content-Type, empty files, repeated names,
large part headers; `X-Require` for a missing argument's 400) sent to both servers. Each handler
answers, for the names of the JSON list in `X-Names`, `get_arguments`, `get_query_arguments`,
`get_body_arguments`, `get_arguments(name, strip=False)` (cyclone's `get_arguments_unstripped`)
and `get_argument(name, None)`, and every file (name, filename, content
type, size), as JSON. The check passes when the statuses are the same and, for a 200, the
answers are the same (files regrouped by name in first-seen order, Tornado's dict order), or,
for a 400, the pages are the same.

A WebSocketHandler that requires an argument (`get_argument("room")` in `prepare`, answered by
cyclone's `websocket::require_argument`) against http_hello's /ws/room, with Tornado's
`websocket_connect`: a handshake without `room` gets the same 400 and page from both, read over
a raw socket; one with it the same upgrade, greeting and echo. Once open, `need NAME` calls
`get_argument(NAME)` in `on_message` (cyclone's `WebSocket::require_argument`): with the
argument both answer `NAME=VALUE`; without it both drop the connection with no Close frame
(the client sees no close code), after what was written before.

With the `decompress_request` setting (http_hello `--decompress-request`, Tornado's
`HTTPServer(app, decompress_request=True)`), `GZIP_CASES`: urlencoded and multipart bodies sent
with `Content-Encoding: gzip` (two members, chunked, `GZIP` in capitals, an empty body) are read
alike; corrupt, truncated, trailing bytes and a body over 10 MiB once decompressed are a 400 in
both (Tornado's bare, cyclone's with a page: the status is compared), as is a gzip form body
without the setting (there the pages are compared).

Where cyclone differs on purpose the case says so and is checked against cyclone's documented
answer, with Tornado's printed:
  - a value that is not UTF-8 is U+FFFD in cyclone (`get_arguments`' documentation) where
    Tornado's `decode_argument` raises a 400;
  - a percent-encoded name that is UTF-8 is looked up as UTF-8 in cyclone, where Tornado's
    `parse_qs_bytes` reads names as Latin-1 (`?%C3%A9=1` is `Ã©` there, not `é`; `?%E9=1` is
    `é` there, U+FFFD in cyclone);
  - a request target with raw bytes that are not UTF-8 (`?a=\xe9`) is refused (400; RFC 9112
    allows ASCII alone, cyclone takes raw UTF-8 too), where Tornado reads them as Latin-1;
  - an absolute-form target (`GET http://host/arguments?a=1`) is routed by its path (RFC 9112
    §3.2.2), where Tornado answers 404;
  - over 1,000 query fields: both answer 400, Tornado bare (closing the connection), cyclone
    with a page naming the reason.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import gzip
import json
import logging
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import (Checks, check_alive, free_port, parse_args, run_main,  # noqa: E402
                     start_server, tornado_listen)

import tornado.httpclient  # noqa: E402
import tornado.httpserver  # noqa: E402
import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402

FFFD = "\ufffd"
PLAIN_400 = b"<html><title>400: Bad Request</title><body>400: Bad Request</body></html>"


class Arguments(tornado.web.RequestHandler):
    """http_hello's ArgumentsHandler."""

    def answer(self):
        require = self.request.headers.get("X-Require")
        if require is not None:
            self.get_argument(require)
        names = json.loads(self.request.headers.get("X-Names", "[]"))
        lists = {}
        for name in names:
            entry = {}
            for kind, fn in (("arguments", self.get_arguments), ("query", self.get_query_arguments),
                             ("body", self.get_body_arguments),
                             ("unstripped", lambda n: self.get_arguments(n, strip=False))):
                try:
                    entry[kind] = fn(name)
                except tornado.web.HTTPError as e:
                    entry[kind] = f"HTTPError {e.status_code}"
            try:
                entry["argument"] = self.get_argument(name, None)
            except tornado.web.HTTPError as e:
                entry["argument"] = f"HTTPError {e.status_code}"
            lists[name] = entry
        files = [[name, f.filename, f.content_type, len(f.body)]
                 for name, fs in self.request.files.items() for f in fs]
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(json.dumps({"names": lists, "files": files}))

    get = post = put = patch = delete = answer


class Room(tornado.websocket.WebSocketHandler):
    """http_hello's /ws/room."""

    def prepare(self):
        self.room = self.get_argument("room")

    def open(self):
        self.write_message(f"welcome to {self.room}")

    def on_message(self, message):
        if message.startswith("need "):
            name = message[len("need "):]
            self.write_message(f"{name}={self.get_argument(name)}")
        else:
            self.write_message(f"{self.room}: {message}")


def handshake(port, target):
    """A raw WebSocket handshake for `target`: (status, the body of a refusal)."""
    raw = (b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        head, _, body = out.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            return status, b""
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body


async def room_session(port, path, messages):
    """What a client of `path` reads: the greeting, then the answer to each of `messages`
    (None once the connection ended), and the close code it saw."""
    req = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}{path}", request_timeout=10)
    conn = await tornado.websocket.websocket_connect(req)
    try:
        seen = [await asyncio.wait_for(conn.read_message(), 10)]
        for m in messages:
            try:
                await conn.write_message(m)
            except tornado.websocket.WebSocketClosedError:
                seen.append("write refused")
                break
            seen.append(await asyncio.wait_for(conn.read_message(), 10))
            if seen[-1] is None:
                break
        return seen, conn.close_code
    finally:
        conn.close()


# (title, target, messages after the greeting); no messages: a refused handshake is expected
# when the target lacks `room`.
ROOM_CASES = [
    ("a WebSocket without its required argument is a 400", b"/ws/room", None),
    ("a WebSocket with another argument only is a 400", b"/ws/room?rooms=1&x=2", None),
    ("a WebSocket with its argument upgrades", b"/ws/room?room=+lobby%20", ["hi"]),
    ("a WebSocket with an empty argument upgrades", b"/ws/room?room=", ["hi"]),
    ("get_argument once open: present", b"/ws/room?room=a&x=%20one%20&x=two", ["need x", "hi"]),
    ("get_argument once open: missing aborts the connection", b"/ws/room?room=a&x=1",
     ["need x", "need y", "hi"]),
]


def exchange(port, raw):
    """Sends `raw` (one request with Connection: close); returns (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    if not head:
        return None, b""
    return int(head.split(b" ", 2)[1]), body


async def exchange_both(loop, raw, c_port, t_port):
    """RAW sent to cyclone at C_PORT, then to Tornado at T_PORT: both (status, body)."""
    return (await loop.run_in_executor(None, exchange, c_port, raw),
            await loop.run_in_executor(None, exchange, t_port, raw))


def chunked(body):
    """`body` in chunks of up to 7 bytes."""
    out = b""
    for i in range(0, len(body), 7):
        piece = body[i:i + 7]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def request(method, target, names, ctype=None, body=None, extra=()):
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close", b"X-Names: " + json.dumps(names).encode()]
    if ctype is not None:
        lines.append(b"Content-Type: " + ctype)
    if body is not None and b"Transfer-Encoding: chunked" in extra:
        body = chunked(body)
    elif body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    lines += list(extra)
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def grouped_files(files):
    order, by = [], {}
    for f in files:
        if f[0] not in by:
            order.append(f[0])
            by[f[0]] = []
        by[f[0]].append(f)
    return [f for name in order for f in by[name]]


def deliberate(cyclone, tornado):
    """Whether `cyclone` is Tornado's answer but for the documented U+FFFD: where Tornado raised
    a 400 for a name's values cyclone gives values, one of them holding U+FFFD."""
    if set(cyclone["names"]) != set(tornado["names"]) or cyclone["files"] != tornado["files"]:
        return False
    for name, t in tornado["names"].items():
        c = cyclone["names"][name]
        for kind, tv in t.items():
            if tv == "HTTPError 400":
                values = c[kind] if isinstance(c[kind], list) else [c[kind] or ""]
                if not any(FFFD in v for v in values):
                    return False
            elif c[kind] != tv:
                return False
    return True


B = b"cycloneB0undary"
MP = b"multipart/form-data; boundary=" + B
FORM = b"application/x-www-form-urlencoded"
GZ = (b"Content-Encoding: gzip",)
GZ_FORM = gzip.compress(b"a=1&b=+two+&a=%e2%82%ac")


def mp(*parts, boundary=B, final=True, preamble=b"", epilogue=b"\r\n", eol=b"\r\n"):
    out = preamble
    for p in parts:
        out += b"--" + boundary + eol + p + eol
    if final:
        out += b"--" + boundary + b"--" + epilogue
    return out


def field(name, value, eol=b"\r\n"):
    return b'Content-Disposition: form-data; name="' + name + b'"' + eol + eol + value


def upload(name, filename, data, ctype=b"text/plain", param=b"filename"):
    head = b'Content-Disposition: form-data; name="' + name + b'"; ' + param + b'="' + filename + b'"'
    if ctype is not None:
        head += b"\r\nContent-Type: " + ctype
    return head + b"\r\n\r\n" + data


# (title, method, target, names, content type, body, extra header lines, difference)
# difference: None (the same answer), "fffd" (non-UTF-8: U+FFFD against Tornado's 400) or
# "latin1" (a UTF-8 name: cyclone's lookup by the UTF-8 name).
CASES = [
    ("plain query", "GET", b"/arguments?a=1&b=2", ["a", "b", "c"]),
    ("+ and %20 are spaces, %2B a plus", "GET", b"/arguments?a=x+y&b=x%20y&c=x%2By&d=%2b", ["a", "b", "c", "d"]),
    ("spaces around values are stripped", "GET", b"/arguments?a=+x+&b=%20%20y%20&c=%09z%0A%0D", ["a", "b", "c"]),
    ("invalid escapes are kept", "GET", b"/arguments?a=%zz&b=%4&c=%&d=%%41&e=%4g1", ["a", "b", "c", "d", "e"]),
    ("lower- and upper-case hex", "GET", b"/arguments?a=%c3%A9t%C3%a9", ["a"]),
    ("escapes in names", "GET", b"/arguments?a%62=1&c+d=2&e%3Df=3&g%26h=4", ["ab", "c d", "e=f", "g&h"]),
    ("; is no separator", "GET", b"/arguments?a=1;b=2&c=3", ["a", "b", "c", "1;b"]),
    ("empty names and values", "GET", b"/arguments?=v&a=&b&=&c=1", ["", "a", "b", "c"]),
    ("a&&b", "GET", b"/arguments?a&&b", ["a", "b"]),
    ("only ampersands", "GET", b"/arguments?&&&", ["", "a"]),
    ("an empty query", "GET", b"/arguments?", ["a", ""]),
    ("no query", "GET", b"/arguments", ["a"]),
    ("repeated names", "GET", b"/arguments?a=1&b=x&a=2&a=&a=3", ["a", "b"]),
    ("= in values", "GET", b"/arguments?a==b&c=d=e", ["a", "c"]),
    ("a name with and without a value", "GET", b"/arguments?a&a=1", ["a"]),
    ("control characters become spaces", "GET",
     b"/arguments?a=x%01y%08z&b=%00%1fq%1f&c=%0bv%0c&d=x%7fy&e=%1c%1d%1e%1fw", ["a", "b", "c", "d", "e"]),
    ("tabs and newlines inside are kept", "GET", b"/arguments?a=x%09y%0Az%0D", ["a"]),
    ("Unicode spaces are stripped", "GET",
     b"/arguments?a=%C2%A0x%C2%A0&b=%E2%80%83y%E3%80%80&c=%C2%85z%E2%80%A8&d=%E2%80%8Bw%E2%80%8B"
     b"&e=%EF%BB%BFv&f=%E1%9A%80u%E2%80%AF", ["a", "b", "c", "d", "e", "f"]),
    ("non-UTF-8 values", "GET", b"/arguments?a=%e9&b=ok&c=caf%E9&d=%C3", ["a", "b", "c", "d"], None,
     None, (), "fffd"),
    ("a non-UTF-8 value of another name", "GET", b"/arguments?a=%ff&b=ok", ["b"]),
    ("a UTF-8 name", "GET", b"/arguments?%C3%A9=1&x=%C3%A9", ["\u00e9", "\u00c3\u00a9", "x"], None,
     None, (), "latin1"),
    ("a # in the target", "GET", b"/arguments?a=1#frag&b=2", ["a", "b"]),
    ("raw UTF-8 bytes in the query", "GET", b"/arguments?a=\xc3\xa9", ["a"]),
    ("raw Latin-1 bytes in the query", "GET", b"/arguments?a=\xe9&b=1", ["a", "b"], None, None,
     (), "refused"),
    ("a non-UTF-8 name", "GET", b"/arguments?%e9=1&b=2", ["\u00e9", "b"], None, None, (), "latin1"),
    ("1,000 fields", "GET", b"/arguments?" + b"&".join(b"f%d=%d" % (i, i) for i in range(1000)),
     ["f0", "f999"]),
    ("1,001 fields", "GET", b"/arguments?" + b"&".join(b"f%d=%d" % (i, i) for i in range(1001)),
     ["f0"], None, None, (), "page"),
    ("an absolute-form target", "GET", b"http://127.0.0.1/arguments?a=1&b=%20x", ["a", "b"], None,
     None, (), "absolute"),
    ("%00 in a name and a value", "GET", b"/arguments?a%00=1&b=x%00", ["a\u0000", "a", "b"]),
    # urlencoded bodies
    ("a form body", "POST", b"/arguments?a=q", ["a", "b"], FORM, b"a=1&b=x+y&a=%20two%20"),
    ("a form body with a charset", "POST", b"/arguments", ["a"], FORM + b"; charset=UTF-8", b"a=1"),
    ("a form body with charset=latin1 (values still UTF-8)", "POST", b"/arguments", ["a"],
     FORM + b"; charset=ISO-8859-1", b"a=%C3%A9"),
    ("a form type in capitals is no form", "POST", b"/arguments", ["a"],
     b"Application/X-WWW-Form-URLEncoded", b"a=1"),
    ("a form type with a suffix", "POST", b"/arguments", ["a"], FORM + b"xyz", b"a=1"),
    ("a form type without the space", "POST", b"/arguments", ["a"], FORM + b";charset=utf-8", b"a=1"),
    ("text/plain is no form", "POST", b"/arguments", ["a"], b"text/plain", b"a=1"),
    ("no Content-Type", "POST", b"/arguments", ["a"], None, b"a=1"),
    ("a form body on PUT", "PUT", b"/arguments", ["a"], FORM, b"a=1"),
    ("a form body on PATCH", "PATCH", b"/arguments", ["a"], FORM, b"a=1"),
    ("a form body on DELETE", "DELETE", b"/arguments?a=0", ["a"], FORM, b"a=1"),
    ("a form body on GET", "GET", b"/arguments?a=0", ["a"], FORM, b"a=1"),
    ("a form body: ; & empty fields", "POST", b"/arguments", ["a", "b", "", "c"], FORM,
     b"a=1;b=2&&=x&c&b=3"),
    ("a form body: non-UTF-8", "POST", b"/arguments?a=ok", ["a"], FORM, b"a=%e9", (), "fffd"),
    ("a form body: raw non-UTF-8 bytes", "POST", b"/arguments", ["a", "b"], FORM, b"a=\xe9&b=ok",
     (), "fffd"),
    ("a form body: a character part raw, part escaped", "POST", b"/arguments", ["a", "b"], FORM,
     b"a=\xc3%A9&b=%E2\x82%AC"),
    ("a form body: control characters", "POST", b"/arguments", ["a"], FORM, b"a=%01%02x%03+"),
    ("a form body with a trailing newline", "POST", b"/arguments", ["a", "b"], FORM, b"a=1&b=2\r\n"),
    ("two Content-Types, the form first", "POST", b"/arguments", ["a"], FORM, b"a=1",
     (b"Content-Type: text/plain",)),
    ("two Content-Types, the form second", "POST", b"/arguments", ["a"], b"text/plain", b"a=1",
     (b"Content-Type: " + FORM,)),
    ("a form body and a query of one name", "POST", b"/arguments?a=1&a=2", ["a"], FORM, b"a=3&a=4"),
    ("a chunked form body", "POST", b"/arguments", ["a", "b"], FORM, b"a=1&b=two+words&a=3",
     (b"Transfer-Encoding: chunked",)),
    ("an empty form body", "POST", b"/arguments", ["a"], FORM, b""),
    ("a form body of 1,001 fields", "POST", b"/arguments", ["f0"], FORM,
     b"&".join(b"f%d=%d" % (i, i) for i in range(1001))),
    # multipart bodies
    ("multipart: fields, a file, a repeated name, and the query", "POST", b"/arguments?t=q",
     ["t", "f"], MP, mp(field(b"t", b"one"), upload(b"f", b"a.txt", b"abc"), field(b"t", b" two "))),
    ("multipart: the boundary quoted", "POST", b"/arguments", ["a"],
     b'multipart/form-data; boundary="' + B + b'"', mp(field(b"a", b"1"))),
    ("multipart: a boundary with a space, quoted", "POST", b"/arguments", ["a"],
     b'multipart/form-data; boundary="a b"', mp(field(b"a", b"1"), boundary=b"a b")),
    ("multipart: a boundary with a quote inside", "POST", b"/arguments", ["a"],
     b'multipart/form-data; boundary=a"b', mp(field(b"a", b"1"), boundary=b'a"b')),
    ("multipart: a boundary with an escaped quote, quoted", "POST", b"/arguments", ["a"],
     b'multipart/form-data; boundary="a\\"b"', mp(field(b"a", b"1"), boundary=b'a\\"b')),
    ("multipart: a quoted boundary sent unquoted in the body", "POST", b"/arguments", ["a"],
     b'multipart/form-data; boundary="x;y"', mp(field(b"a", b"1"), boundary=b"x;y")),
    ("multipart: boundary= twice", "POST", b"/arguments", ["a"],
     b"multipart/form-data; boundary=" + B + b"; boundary=other", mp(field(b"a", b"1"))),
    ("multipart: Boundary in capitals", "POST", b"/arguments", ["a"],
     b"multipart/form-data; Boundary=" + B, mp(field(b"a", b"1"))),
    ("multipart: no space before boundary", "POST", b"/arguments", ["a"],
     b"multipart/form-data;boundary=" + B, mp(field(b"a", b"1"))),
    ("multipart: a space around =", "POST", b"/arguments", ["a"],
     b"multipart/form-data; boundary = " + B, mp(field(b"a", b"1"))),
    ("multipart: a preamble and an epilogue", "POST", b"/arguments", ["a"], MP,
     mp(field(b"a", b"1"), preamble=b"This is a preamble\r\n", epilogue=b"\r\nepilogue\r\n")),
    ("multipart: no final boundary", "POST", b"/arguments", ["a"], MP,
     mp(field(b"a", b"1"), final=False)),
    ("multipart: LF-only lines", "POST", b"/arguments", ["a"], MP,
     mp(field(b"a", b"1", eol=b"\n"), eol=b"\n")),
    ("multipart: filename*= in UTF-8", "POST", b"/arguments", ["f"], MP,
     mp(b"Content-Disposition: form-data; name=f; filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nx")),
    ("multipart: filename*= in Latin-1 with a language", "POST", b"/arguments", ["f"], MP,
     mp(b"Content-Disposition: form-data; name=f; filename*=iso-8859-1'fr'%E9t%E9.txt\r\n\r\nx")),
    ("multipart: filename and filename*", "POST", b"/arguments", ["f"], MP,
     mp(b"Content-Disposition: form-data; name=f; filename=\"a.txt\"; filename*=UTF-8''b.txt\r\n\r\nx")),
    ("multipart: filename* with invalid escapes", "POST", b"/arguments", ["f"], MP,
     mp(b"Content-Disposition: form-data; name=f; filename*=UTF-8''a%zz%C3.txt\r\n\r\nx")),
    ("multipart: name*= in UTF-8", "POST", b"/arguments", ["\u00e9", "n"], MP,
     mp(b"Content-Disposition: form-data; name*=UTF-8''%C3%A9\r\n\r\nx")),
    ("multipart: a Windows path as filename", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"C:\\\\Users\\\\me\\\\a.txt", b"x"))),
    ("multipart: an unescaped backslash in filename", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"C:\\Users\\a.txt", b"x"))),
    ("multipart: a relative path as filename", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"../../etc/passwd", b"x"))),
    ("multipart: escaped quotes in filename", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b'say \\"hi\\".txt', b"x"))),
    ("multipart: %22 in filename", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"say %22hi%22.txt", b"x"))),
    ("multipart: an unquoted filename with spaces", "POST", b"/arguments", ["f"], MP,
     mp(b"Content-Disposition: form-data; name=f; filename=a b.txt\r\n\r\nx")),
    ("multipart: no name", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data; filename=\"a.txt\"\r\n\r\nx")),
    ("multipart: no Content-Disposition", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Type: text/plain\r\n\r\nx")),
    ("multipart: a file without Content-Type", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"a.bin", b"\x00\x01", ctype=None))),
    ("multipart: a file with Content-Type parameters", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"a.txt", b"x", ctype=b"Text/Plain; charset=utf-8"))),
    ("multipart: an empty file", "POST", b"/arguments", ["f"], MP, mp(upload(b"f", b"empty.txt", b""))),
    ("multipart: an empty filename is a field", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"", b"x"))),
    ("multipart: files and fields of one name", "POST", b"/arguments", ["f"], MP,
     mp(upload(b"f", b"1.txt", b"1"), field(b"f", b"v"), upload(b"f", b"2.txt", b"22"))),
    ("multipart: files of two names interleaved", "POST", b"/arguments", ["f", "g"], MP,
     mp(upload(b"f", b"1", b"1"), upload(b"g", b"2", b"22"), upload(b"f", b"3", b"333"))),
    ("multipart: a Content-Type on a field", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data; name=a\r\nContent-Type: text/plain; charset=latin1\r\n\r\n\xe9"),
     (), "fffd"),
    ("multipart: control characters in a field", "POST", b"/arguments", ["a"], MP,
     mp(field(b"a", b"\x01 x\x02\r\n"))),
    ("multipart: part headers of 10 KiB", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data; name=a\r\nX: " + b"y" * (10 * 1024 - 43) + b"\r\n\r\nv")),
    ("multipart: part headers over 10 KiB", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data; name=a\r\nX: " + b"y" * (10 * 1024) + b"\r\n\r\nv")),
    ("multipart: a header line of 60 KiB", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data; name=a; x=" + b"y" * (60 * 1024) + b"\r\n\r\nv")),
    ("multipart: 100 parts", "POST", b"/arguments", ["n0", "n99"], MP,
     mp(*[field(b"n%d" % i, b"%d" % i) for i in range(100)])),
    ("multipart: 101 parts", "POST", b"/arguments", ["n0"], MP,
     mp(*[field(b"n%d" % i, b"%d" % i) for i in range(101)])),
    ("multipart: chunked", "POST", b"/arguments", ["a", "f"], MP,
     mp(field(b"a", b"1"), upload(b"f", b"f.txt", b"abcdefghij")), (b"Transfer-Encoding: chunked",)),
    ("multipart: two Content-Type headers", "POST", b"/arguments", ["a"], MP, mp(field(b"a", b"1")),
     (b"Content-Type: " + MP,)),
    ("multipart: name given twice", "POST", b"/arguments", ["a", "b"], MP,
     mp(b'Content-Disposition: form-data; name="a"; name="b"\r\n\r\nx')),
    ("multipart: lower-case part header names", "POST", b"/arguments", ["f"], MP,
     mp(b'content-disposition: form-data; name="f"; filename="a"\r\ncontent-type: image/png\r\n\r\nx')),
    ("multipart: an empty part Content-Type", "POST", b"/arguments", ["f"], MP,
     mp(b'Content-Disposition: form-data; name="f"; filename="a"\r\nContent-Type:\r\n\r\nx')),
    ("multipart: a part Content-Type twice", "POST", b"/arguments", ["f"], MP,
     mp(b'Content-Disposition: form-data; name="f"; filename="a"\r\nContent-Type: a/b\r\n'
        b'Content-Type: c/d\r\n\r\nx')),
    ("multipart: a part Content-Type with spaces", "POST", b"/arguments", ["f"], MP,
     mp(b'Content-Disposition: form-data; name="f"; filename="a"\r\nContent-Type:   a/b  \r\n\r\nx')),
    ("multipart: a filename of spaces", "POST", b"/arguments", ["f"], MP, mp(upload(b"f", b"  ", b"x"))),
    ("multipart: a name of spaces", "POST", b"/arguments", ["  ", ""], MP, mp(field(b"  ", b"x"))),
    ("multipart: the boundary in a value", "POST", b"/arguments", ["a"], MP,
     mp(field(b"a", b"x--" + B + b"y"))),
    ("multipart: spaces around form-data and ;", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition:  form-data ;  name=a  \r\n\r\nx")),
    ("multipart: = in an unquoted name", "POST", b"/arguments", ["a=b", "a"], MP,
     mp(b"Content-Disposition: form-data; name=a=b\r\n\r\nx")),
    ("multipart: a name in single quotes", "POST", b"/arguments", ["'a'", "a"], MP,
     mp(b"Content-Disposition: form-data; name='a'\r\n\r\nx")),
    ("multipart: a trailing ;", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data; name=a;\r\n\r\nx")),
    ("multipart: an empty parameter", "POST", b"/arguments", ["a"], MP,
     mp(b"Content-Disposition: form-data;; name=a\r\n\r\nx")),
    ("multipart: a quoted name with a backslash at its end", "POST", b"/arguments", ["a\\", "a"], MP,
     mp(b'Content-Disposition: form-data; name="a\\\\"\r\n\r\nx')),
    ("multipart: no boundary", "POST", b"/arguments", ["a"], b"multipart/form-data",
     mp(field(b"a", b"1"))),
    ("multipart: the type in capitals is not parsed", "POST", b"/arguments", ["a"],
     b"Multipart/Form-Data; boundary=" + B, mp(field(b"a", b"1"))),
    ("multipart: a form field and the query", "POST", b"/arguments?a=q&b=%e9", ["a"], MP,
     mp(field(b"a", b"m"))),
    # a missing argument
    ("a missing argument is a 400", "GET", b"/arguments?b=1", ["b"], None, None,
     (b"X-Require: a",)),
    ("an empty argument is not missing", "GET", b"/arguments?a=", ["a"], None, None,
     (b"X-Require: a",)),
    ("a blank argument is not missing", "GET", b"/arguments?a=+%20", ["a"], None, None,
     (b"X-Require: a",)),
    ("a body argument is not missing", "POST", b"/arguments", ["a"], FORM, b"a=1",
     (b"X-Require: a",)),
    ("a file is no argument", "POST", b"/arguments", ["f"], MP, mp(upload(b"f", b"a.txt", b"x")),
     (b"X-Require: f",)),
    # without decompress_request (see GZIP_CASES)
    ("a gzip form body without decompress_request", "POST", b"/arguments", ["a"], FORM, GZ_FORM,
     GZ),
]

# (title, names, content type, body, extra header lines, status-only): the requests are POSTs
# to /arguments; `status-only` cases are refusals, Tornado's bare, cyclone's with a page.
GZIP_CASES = [
    ("gzip: an urlencoded body", ["a", "b"], FORM, GZ_FORM, GZ),
    ("gzip: in capitals", ["a", "b"], FORM, GZ_FORM, (b"Content-Encoding: GZIP",)),
    ("gzip: two members", ["a", "c"], FORM, GZ_FORM + gzip.compress(b"&c=3"), GZ),
    ("gzip: chunked", ["a", "b"], FORM, GZ_FORM, GZ + (b"Transfer-Encoding: chunked",)),
    ("gzip: a multipart body", ["a", "f"], MP,
     gzip.compress(mp(field(b"a", b"1"), upload(b"f", b"a.txt", b"x" * 5000))), GZ),
    ("gzip: an empty body", ["a"], FORM, b"", GZ),
    ("gzip: the query too", ["a"], FORM, gzip.compress(b"a=2"), GZ),
    ("gzip: not gzip", ["a"], FORM, b"a=1", GZ, True),
    ("gzip: truncated", ["a"], FORM, GZ_FORM[:-1], GZ, True),
    ("gzip: trailing bytes", ["a"], FORM, GZ_FORM + b"xx", GZ, True),
    ("gzip: a bad CRC", ["a"], FORM,
     GZ_FORM[:-8] + bytes([GZ_FORM[-8] ^ 0xFF]) + GZ_FORM[-7:], GZ, True),
    ("gzip: over max_body_size once decompressed", ["a"], FORM,
     gzip.compress(b"a=" + b"x" * (10 << 20)), GZ, True),
    ("gzip: deflate is not decoded", ["a"], FORM, b"a=1", (b"Content-Encoding: deflate",)),
]


async def gzip_cases(checks, loop, c_port, t_port):
    """GZIP_CASES against cyclone at C_PORT and Tornado at T_PORT."""
    for title, names, ctype, body, extra, *status_only in GZIP_CASES:
        target = b"/arguments?a=q" if "query" in title else b"/arguments"
        raw = request("POST", target, names, ctype, body, extra)

        async def same(raw=raw, status_only=bool(status_only)):
            (c_status, c_body), (t_status, t_body) = await exchange_both(
                loop, raw, c_port, t_port)
            assert c_status == t_status, \
                f"cyclone {c_status} {c_body[:300]!r}, tornado {t_status} {t_body[:300]!r}"
            if status_only:
                print(f"    (deliberate: a page with the reason) tornado: {t_body!r}")
                return
            if c_status != 200:
                assert c_body == t_body, f"cyclone {c_body[:300]!r}, tornado {t_body[:300]!r}"
                return
            c, t = json.loads(c_body), json.loads(t_body)
            c["files"] = grouped_files(c["files"])
            assert c == t, f"cyclone {c}, tornado {t}"

        await checks.run(title, same)


async def main():
    args = parse_args(__doc__, "http_hello command", tornado_log=logging.CRITICAL)
    checks = Checks("tornado arguments <-> http_hello")
    loop = asyncio.get_running_loop()
    log = os.path.join(args.logdir, "http_hello_arguments.log")
    server = start_server(checks, "http_hello", args.server, logfile=log)
    if server is None:
        return checks.finish()
    app = tornado.web.Application([(r"/arguments", Arguments), (r"/ws/room", Room)])
    tornado_port, tornado_server = tornado_listen(app)
    try:
        for case in CASES:
            title, method, target, names, ctype, body, extra, differ = (
                case + (None, None, (), None)[len(case) - 4:])
            raw = request(method, target, names, ctype, body, extra)

            async def same(raw=raw, differ=differ):
                (c_status, c_body), (t_status, t_body) = await exchange_both(
                    loop, raw, server.port, tornado_port)
                if differ == "fffd" and t_status == 200:
                    t = json.loads(t_body)
                    assert c_status == 200, f"cyclone {c_status} {c_body[:300]!r}; tornado {t}"
                    c = json.loads(c_body)
                    c["files"] = grouped_files(c["files"])
                    assert deliberate(c, t), f"cyclone {c}, tornado {t}"
                    print(f"    (deliberate: U+FFFD where Tornado raises a 400) tornado: {t}")
                    return
                if differ == "refused":
                    # RFC 9112 §3.2: a request target is ASCII; cyclone takes raw UTF-8 but
                    # refuses other bytes, which Tornado reads as Latin-1.
                    assert c_status == 400, f"cyclone {c_status} {c_body[:300]!r}"
                    print(f"    (deliberate: a target that is not UTF-8 refused) tornado: {t_status}")
                    return
                if differ == "absolute":
                    # RFC 9112 §3.2.2: cyclone routes the path after the authority; Tornado
                    # routes the whole target, and answers 404.
                    assert c_status == 200, f"cyclone {c_status} {c_body[:300]!r}"
                    c = json.loads(c_body)["names"]
                    assert c["a"]["query"] == ["1"] and c["b"]["query"] == ["x"], c
                    print(f"    (deliberate: absolute-form routed by its path) tornado: {t_status}")
                    return
                assert c_status == t_status, \
                    f"cyclone {c_status} {c_body[:300]!r}, tornado {t_status} {t_body[:300]!r}"
                if differ == "page":
                    # Tornado's HTTP1Connection answers a bare 400 and closes; cyclone sends
                    # its plain 400 page, the reason logged as every refusal's (the request
                    # is well framed: the connection stays).
                    assert c_body == PLAIN_400, c_body[:300]
                    print(f"    (deliberate: the plain 400 page) tornado: {t_body!r}")
                    return
                if c_status != 200:
                    assert c_body == t_body, f"cyclone {c_body[:300]!r}, tornado {t_body[:300]!r}"
                    return
                c, t = json.loads(c_body), json.loads(t_body)
                c["files"] = grouped_files(c["files"])
                if differ == "latin1":
                    # cyclone finds the name by its UTF-8 text (a name that is not UTF-8 by
                    # U+FFFD); Tornado by its Latin-1 reading.
                    t_names, c_names = t["names"], c["names"]
                    if "x" in t_names:
                        assert c_names["\u00e9"]["arguments"] == ["1"], c
                        assert c_names["\u00c3\u00a9"]["arguments"] == [], c
                        assert t_names["\u00c3\u00a9"]["arguments"] == ["1"], t
                        assert c_names["x"] == t_names["x"], (c, t)
                    else:
                        assert t_names["\u00e9"]["arguments"] == ["1"], t
                        assert c_names["\u00e9"]["arguments"] == [], c
                        assert c_names["b"] == t_names["b"], (c, t)
                    print(f"    (deliberate: names read as UTF-8) tornado: {t}")
                    return
                assert c == t, f"cyclone {c}, tornado {t}"

            await checks.run(title, same)
        for title, target, messages in ROOM_CASES:
            async def same_room(target=target, messages=messages):
                c = await loop.run_in_executor(None, handshake, server.port, target)
                t = await loop.run_in_executor(None, handshake, tornado_port, target)
                assert c == t, f"cyclone {c}, tornado {t}"
                if messages is None:
                    assert t[0] == 400, t
                    return
                assert t[0] == 101, t
                c = await room_session(server.port, target.decode(), messages)
                t = await room_session(tornado_port, target.decode(), messages)
                assert c == t, f"\n  tornado: {t!r}\n  cyclone: {c!r}"
                print(f"    {t!r}")

            await checks.run(title, same_room)
        check_alive(checks, server, "http_hello", log)
        gz_log = os.path.join(args.logdir, "http_hello_decompress.log")
        gz_server = start_server(checks, "http_hello --decompress-request", args.server,
                                 ["--decompress-request"], logfile=gz_log)
        if gz_server is not None:
            # max_body_size: cyclone's default (Tornado's is its 100 MiB max_buffer_size).
            gz_tornado = tornado.httpserver.HTTPServer(app, decompress_request=True,
                                                       max_body_size=10 << 20)
            gz_tornado_port = free_port()
            gz_tornado.listen(gz_tornado_port, address="127.0.0.1")
            try:
                await gzip_cases(checks, loop, gz_server.port, gz_tornado_port)
                check_alive(checks, gz_server, "http_hello --decompress-request", gz_log)
            finally:
                gz_server.stop()
                gz_tornado.stop()
    finally:
        server.stop()
        tornado_server.stop()
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
