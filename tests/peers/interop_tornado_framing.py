#!/usr/bin/env python3
"""Request framing and WebSocket handshake refusals, cyclone against Tornado, over raw
sockets: http_hello (`/`, `/upload/stream`, `/ws`, `/ws/picky`) beside a Tornado application
with the same handlers, and `echo_server --deflate` beside a Tornado WebSocketHandler whose
`get_compression_options` returns `{}`.

    .venv/bin/python tests/peers/interop_tornado_framing.py \
        --server target/release/examples/http_hello --echo target/release/examples/echo_server

Each case is sent whole on a connection of its own, followed by `GET / HTTP/1.1` with
`Connection: close`: the statuses answered until the server closes (the follower's 200 when
the connection was kept, nothing more when it was closed) must be the same, with the
answers' bodies for 200s, `Sec-WebSocket-Version` for 426s, and `Sec-WebSocket-Accept`,
`Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` for 101s (after a 101 the follower
is frame data both refuse; what follows is not compared). The error pages' text is not
compared. `SAME` lists where both agree: header syntax (bare LF, obs-fold, a space before
the colon, NUL and control bytes, obs-text), request lines, Host, HEAD, HTTP/1.0 with and
without keep-alive, pipelining, Content-Length and Transfer-Encoding (duplicates, lists,
signs, both at once, codings other than chunked, chunk sizes), Expect: 100-continue,
handshakes (key, version and its 426, method, Connection and Upgrade tokens, Origin),
permessage-deflate offers both accept.

`CYCLONE` lists where the two differ on purpose, each with what RFC 9110/9112/6455/7692
says: only cyclone's answer is checked there (Tornado's is printed), so that a Tornado
release that comes round to the RFC does not fail the run.
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
# http_hello's / and /upload/stream, as the other comparisons serve them.
from interop_tornado_http import Main  # noqa: E402
from interop_tornado_stream_body import StreamUpload  # noqa: E402

import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402


class Echo(tornado.websocket.WebSocketHandler):
    """http_hello's /ws: the default check_origin."""

    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))


class Picky(Echo):
    """http_hello's /ws/picky."""

    def check_origin(self, origin):
        return origin == "https://friend.example"


class DeflateEcho(Echo):
    """echo_server --deflate: any origin, permessage-deflate with the defaults."""

    def check_origin(self, origin):
        return True

    def get_compression_options(self):
        return {}


KEY = "dGhlIHNhbXBsZSBub25jZQ=="
FOLLOW = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
G = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def ws(path="/ws", extra="", key=KEY, version="13", method="GET", connection="Upgrade",
       upgrade="websocket", host="127.0.0.1:PORT", proto="HTTP/1.1"):
    """A handshake; PORT is replaced by the server's port."""
    h = f"{method} {path} {proto}\r\n"
    for name, value in (("Host", host), ("Upgrade", upgrade), ("Connection", connection),
                        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)):
        if value is not None:
            h += f"{name}: {value}\r\n"
    return (h + extra + "\r\n").encode()


def post(headers, body=b"", version="1.1"):
    host = "Host: x\r\n" if version == "1.1" else ""
    return f"POST /upload/stream HTTP/{version}\r\n{host}{headers}\r\n".encode() + body


def te(body, coding="chunked"):
    return post(f"Transfer-Encoding: {coding}\r\n", body)


HELLO = b"5\r\nhello\r\n0\r\n\r\n"

# (title, bytes); both servers must answer alike.
SAME = [
    ("a plain GET", G),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: x\n\n"),
    ("a bare CR in a header line", b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"),
    ("obs-fold (SP)", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    ("obs-fold (HTAB)", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"),
    ("whitespace before the first header line", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n"),
    ("a space before the colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"),
    ("a header line without a colon", b"GET / HTTP/1.1\r\nHost: x\r\nGarbage\r\n\r\n"),
    ("an empty header name", b"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n"),
    ("NUL in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("a control byte in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"),
    ("DEL in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n"),
    ("obs-text in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\xe9b\r\n\r\n"),
    ("NUL in a name", b"GET / HTTP/1.1\r\nHost: x\r\nX\x00A: a\r\n\r\n"),
    ("a separator in a name", b"GET / HTTP/1.1\r\nHost: x\r\nX(A): a\r\n\r\n"),
    ("NUL in the target", b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a space in the target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("tabs between the request line's parts", b"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n"),
    ("two spaces after the method", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a space after the version", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n"),
    ("http/1.1 in lower case", b"GET / http/1.1\r\nHost: x\r\n\r\n"),
    ("HTTP/1.10", b"GET / HTTP/1.10\r\nHost: x\r\n\r\n"),
    ("no version (HTTP/0.9)", b"GET /\r\n\r\n"),
    ("one empty line before the request line", b"\r\n" + G),
    ("a lower-case method (405)", b"get / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n"),
    ("two Host lines", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
    ("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n"),
    ("an empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
    ("Host as an IPv6 literal", b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
    ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n"),
    ("HTTP/1.0 with keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    ("HTTP/1.0 keep-alive, then HTTP/1.0",
     b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
    ("Connection: close, then a pipelined request",
     b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + G),
    ("three pipelined GETs", G + G + G),
    ("HEAD, then GET", b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + G),
    ("HEAD over HTTP/1.0", b"HEAD / HTTP/1.0\r\n\r\n"),
    ("HEAD of a 404", b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("an unknown method: 405 (cyclone adds Allow)", b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("an unknown method of 255 bytes: 405", b"M" * 255 + b" / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a WebDAV method: 405", b"PROPFIND / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + G),
    ("DELETE where only GET and HEAD are: 405", b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a 404, then a pipelined request", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + G),
    ("a GET with a Content-Length body, then a pipelined request",
     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + G),
    ("a GET with a chunked body, then a pipelined request",
     b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + HELLO + G),
    ("a POST to a 404 with a body, then a pipelined request",
     b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + G),
    ("Content-Length", post("Content-Length: 5\r\n", b"hello")),
    ("no Content-Length", post("")),
    ("Content-Length twice, the same", post("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
    ("Content-Length twice, different", post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")),
    ("Content-Length: 5, 5", post("Content-Length: 5, 5\r\n", b"hello")),
    ("Content-Length: 5, 6", post("Content-Length: 5, 6\r\n", b"hello!")),
    ("Content-Length: +5", post("Content-Length: +5\r\n", b"hello")),
    ("Content-Length: -1", post("Content-Length: -1\r\n")),
    ("Content-Length: 0x5", post("Content-Length: 0x5\r\n", b"hello")),
    ("Content-Length: 1_0", post("Content-Length: 1_0\r\n", b"hellohello")),
    ("Content-Length with spaces around", post("Content-Length:  5 \r\n", b"hello")),
    ("Content-Length: 005", post("Content-Length: 005\r\n", b"hello")),
    ("an empty Content-Length", post("Content-Length: \r\n")),
    ("a Unicode digit in Content-Length", post("Content-Length: \u0665\r\n", b"hello")),
    ("a Content-Length of 23 digits", post("Content-Length: 99999999999999999999999\r\n")),
    ("chunked", te(HELLO)),
    ("Chunked in another case", te(HELLO, "Chunked")),
    ("chunked with spaces around", te(HELLO, " chunked ")),
    ("chunked and Content-Length", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", HELLO)),
    ("Transfer-Encoding twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", HELLO)),
    ("Transfer-Encoding: gzip", te(b"hello", "gzip")),
    ("Transfer-Encoding: chunked, gzip", te(HELLO, "chunked, gzip")),
    ("Transfer-Encoding: identity", post("Transfer-Encoding: identity\r\nContent-Length: 5\r\n", b"hello")),
    ("Transfer-Encoding: chunked;q=1", te(HELLO, "chunked;q=1")),
    ("an empty Transfer-Encoding", post("Transfer-Encoding: \r\n")),
    ("chunked and Content-Length over HTTP/1.0",
     post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"hello", "1.0")),
    ("a chunk size that is not hex", te(b"zz\r\nhello\r\n0\r\n\r\n")),
    ("a chunk size with 0x", te(b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("a chunk size with +", te(b"+5\r\nhello\r\n0\r\n\r\n")),
    ("a chunk size with -", te(b"-5\r\nhello\r\n0\r\n\r\n")),
    ("a chunk size with _", te(b"0_5\r\nhello\r\n0\r\n\r\n")),
    ("an empty chunk size", te(b"\r\nhello\r\n0\r\n\r\n")),
    ("a chunk size over 64 bits", te(b"10000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("a chunk size in upper-case hex", te(b"A\r\nhellohello\r\n0\r\n\r\n")),
    ("a chunk size with leading zeros", te(b"0005\r\nhello\r\n0\r\n\r\n")),
    ("chunk data longer than its size", te(b"3\r\nhello\r\n0\r\n\r\n")),
    ("chunk data without its CRLF", te(b"5\r\nhelloXX0\r\n\r\n")),
    ("PUT", b"PUT /upload/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
    ("HTTP/1.0 POST with keep-alive", post("Connection: keep-alive\r\nContent-Length: 5\r\n", b"hello", "1.0")),
    # WebSocket handshakes (http_hello's /ws, /ws/picky).
    ("a handshake", ws()),
    ("a handshake, then a frame", ws() + b"\x81\x85\x00\x00\x00\x00hello"),
    ("a POST handshake: 405", ws(method="POST")),
    ("a HEAD handshake: 405", ws(method="HEAD")),
    ("a handshake without a key", ws(key=None)),
    ("a handshake with an empty key", ws(key="")),
    ("a key with unused trailing bits", ws(key="dGhlIHNhbXBsZSBub25jZR==")),
    ("a key between spaces", ws(key="  " + KEY + "  ")),
    ("version 8: 426", ws(version="8")),
    ("version 14: 426", ws(version="14")),
    ("no version: 426", ws(version=None)),
    ("version 13, 8: 426", ws(version="13, 8")),
    ("version 013: 426", ws(version="013")),
    ("version 13 between spaces", ws(version=" 13 ")),
    ("a 426, then a pipelined request", ws(version="8") + G),
    ("a 400 handshake, then a pipelined request", ws(key=None) + G),
    ("Connection: keep-alive, Upgrade", ws(connection="keep-alive, Upgrade")),
    ("Connection: upgrade", ws(connection="upgrade")),
    ("Connection: close, Upgrade", ws(connection="close, Upgrade")),
    ("Connection without Upgrade", ws(connection="keep-alive")),
    ("no Connection", ws(connection=None)),
    ("Upgrade in a second Connection line", ws(connection="keep-alive", extra="Connection: Upgrade\r\n")),
    ("Upgrade: WebSocket", ws(upgrade="WebSocket")),
    ("Upgrade: h2c", ws(upgrade="h2c")),
    ("no Upgrade", ws(upgrade=None)),
    ("a handshake without Host", ws(host=None)),
    ("a handshake to a 404", ws(path="/nope")),
    ("a handshake with a Content-Length body", ws(extra="Content-Length: 3\r\n") + b"abc"),
    ("a handshake with a chunked body",
     ws(extra="Transfer-Encoding: chunked\r\n") + b"3\r\nabc\r\n0\r\n\r\n"),
    ("subprotocols offered, none selected", ws(extra="Sec-WebSocket-Protocol: chat, superchat\r\n")),
    ("an empty Sec-WebSocket-Protocol", ws(extra="Sec-WebSocket-Protocol: \r\n")),
    ("a handshake to a plain page", b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    ("h2c to a plain page", b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, "
     b"HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
    ("a foreign Origin: 403", ws(extra="Origin: http://evil.example\r\n")),
    ("a 403, then a pipelined request", ws(extra="Origin: http://evil.example\r\n") + G),
    ("the Host's own Origin", ws(extra="Origin: http://127.0.0.1:PORT\r\n")),
    ("the Host's own Origin in upper case", ws(extra="Origin: HTTP://127.0.0.1:PORT\r\n")),
    ("the Host's own Origin over https", ws(extra="Origin: https://127.0.0.1:PORT\r\n")),
    ("the Host's name without its port", ws(extra="Origin: http://127.0.0.1\r\n")),
    ("Origin: null", ws(extra="Origin: null\r\n")),
    ("an empty Origin", ws(extra="Origin: \r\n")),
    ("check_origin refuses", ws(path="/ws/picky", extra="Origin: http://evil.example\r\n")),
    ("check_origin accepts", ws(path="/ws/picky", extra="Origin: https://friend.example\r\n")),
]

D = "/deflate"


def offer(params):
    return ws(path=D, extra=f"Sec-WebSocket-Extensions: {params}\r\n")


# permessage-deflate offers both accept (or both ignore) alike.
SAME_DEFLATE = [
    ("no offer", ws(path=D)),
    ("permessage-deflate", offer("permessage-deflate")),
    ("client_max_window_bits", offer("permessage-deflate; client_max_window_bits")),
    ("client_max_window_bits=10", offer("permessage-deflate; client_max_window_bits=10")),
    ("client_max_window_bits=8", offer("permessage-deflate; client_max_window_bits=8")),
    ('client_max_window_bits="10"', offer('permessage-deflate; client_max_window_bits="10"')),
    ("spaces around =", offer("permessage-deflate ; client_max_window_bits = 10")),
    ("server_max_window_bits=10", offer("permessage-deflate; server_max_window_bits=10")),
    ("server_max_window_bits=9", offer("permessage-deflate; server_max_window_bits=9")),
    ('server_max_window_bits="10"', offer('permessage-deflate; server_max_window_bits="10"')),
    ("two offers, the first taken", offer("permessage-deflate; client_max_window_bits=8, permessage-deflate")),
    ("another extension", offer("x-webkit-deflate-frame")),
    ("two header lines", ws(path=D, extra="Sec-WebSocket-Extensions: foo\r\n"
                                          "Sec-WebSocket-Extensions: permessage-deflate\r\n")),
    ("garbage", offer(";;,,")),
    ("an empty header", offer("")),
]

# (title with the RFC's word and Tornado's answer, bytes, cyclone's statuses up to the
# close): cyclone answers as the RFC says; Tornado's answer is printed, not checked.
CYCLONE = [
    ("HTTP/1.2 is HTTP/1.1 (RFC 9110 §2.5; Tornado answers, then closes)",
     b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", [200, 200]),
    ("HTTP/2.0 is 505 (RFC 9110 §15.6.6; Tornado 400)", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", [505]),
    ("empty lines before the request line are skipped (RFC 9112 §2.2; Tornado 400)",
     b"\r\n\r\n" + G, [200, 200]),
    ("Connection: foo, CLOSE closes (RFC 9110 §7.6.1 tokens; Tornado keeps the connection)",
     b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n", [200]),
    ("a Host whose port is not digits is 400 (RFC 9112 §3.2; Tornado serves it)",
     b"GET / HTTP/1.1\r\nHost: x:abc\r\n\r\n", [400]),
    ("a coding before chunked is 501 (RFC 9112 §6.1; Tornado 400)", te(HELLO, "gzip, chunked"), [501]),
    ("a method of 256 bytes is 501 (RFC 9112 §3: longer than any implemented; Tornado 405)",
     b"M" * 256 + b" / HTTP/1.1\r\nHost: x\r\n\r\n", [501]),
    ("chunked over HTTP/1.0 is 400 (RFC 9112 §6.1; Tornado takes the chunks)",
     post("Transfer-Encoding: chunked\r\n", HELLO, "1.0"), [400]),
    ("a chunk extension is ignored (RFC 9112 §7.1.1; Tornado 400)", te(b"5;a=b\r\nhello\r\n0\r\n\r\n"),
     [200, 200]),
    ("a trailer field is taken (RFC 9112 §7.1.2; Tornado 400)", te(b"5\r\nhello\r\n0\r\nX: y\r\n\r\n"),
     [200, 200]),
    ("Transfer-Encoding: , chunked is chunked (RFC 9110 §5.6.1 empty members; Tornado 400)",
     te(HELLO, ", chunked"), [200, 200]),
    ("Expect: 100-continue in HTTP/1.0 is ignored (RFC 9110 §10.1.1; Tornado sends the 100)",
     post("Content-Length: 5\r\nExpect: 100-continue\r\n", b"hello", "1.0"), [200]),
    ("an unknown expectation is 417 (RFC 9110 §10.1.1 allows it; Tornado ignores it)",
     post("Content-Length: 5\r\nExpect: foo\r\n", b"hello"), [417]),
    ("a Content-Length over the body limit is 413 (RFC 9110 §15.5.14; Tornado 400)",
     post("Content-Length: 20000000\r\n"), [413]),
    ("a chunk over the body limit is 413 (RFC 9110 §15.5.14; Tornado 400)",
     te(b"1000001\r\n" + b"a" * 0x1000001 + b"\r\n0\r\n\r\n"), [413]),
    ("a GET with Expect: 100-continue gets no 100 (RFC 9110 §10.1.1: no content to wait for; "
     "Tornado sends it)", b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", [200, 200]),
    ("Expect: 100-continue with the body already there gets no 100 (RFC 9110 §10.1.1 MAY omit it; "
     "Tornado sends it; tests/peers/interop_tornado_stream_body.py sends the body after the 100)",
     post("Content-Length: 5\r\nExpect: 100-continue\r\n", b"hello"), [200, 200]),
    ("the same with a chunked body", post("Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n", HELLO),
     [200, 200]),
    ("a handshake over HTTP/1.0 is 400 (RFC 6455 §4.1: HTTP/1.1 or higher; Tornado answers 101)",
     ws(proto="HTTP/1.0"), [400]),
    ("a key of 15 bytes is 400 (RFC 6455 §4.2.1; Tornado 101)", ws(key="eHh4eHh4eHh4eHh4eHh4"), [400, 200]),
    ("a key that is not base64 is 400 (RFC 6455 §4.2.1; Tornado 101)", ws(key="not base64!!"), [400, 200]),
    ("two keys are 400 (RFC 6455 §11.3.1; Tornado 101)", ws(extra=f"Sec-WebSocket-Key: {KEY}\r\n"),
     [400, 200]),
    ("two Sec-WebSocket-Version lines are 400 (RFC 6455 §11.3.5; Tornado 426)",
     ws(extra="Sec-WebSocket-Version: 13\r\n"), [400, 200]),
    ("two Origin lines are 400 (RFC 6454 §7.3; Tornado 403)",
     ws(extra="Origin: http://127.0.0.1:PORT\r\nOrigin: http://evil.example\r\n"), [400, 200]),
    ("Upgrade: foo, websocket upgrades (RFC 9110 §7.8 list; Tornado 400)", ws(upgrade="foo, websocket"),
     [101]),
]

# RFC 7692 §5: "A server MUST decline an extension negotiation offer" with an unknown or
# repeated parameter or an invalid value; it is no error (Tornado answers 500 to some, accepts
# others). (title, offer, the Sec-WebSocket-Extensions of cyclone's 101: None when declined.)
CYCLONE_DEFLATE = [
    ("server_max_window_bits=8 (zlib cannot compress with 8; Tornado 500)",
     "permessage-deflate; server_max_window_bits=8", None),
    ("server_max_window_bits=7 (out of range; Tornado 500)", "permessage-deflate; server_max_window_bits=7",
     None),
    ("server_max_window_bits=16 (out of range; Tornado 500)", "permessage-deflate; server_max_window_bits=16",
     None),
    ("server_max_window_bits without a value (Tornado accepts)", "permessage-deflate; server_max_window_bits",
     None),
    ("server_max_window_bits=010 (a leading zero; Tornado accepts)",
     "permessage-deflate; server_max_window_bits=010", None),
    ("client_max_window_bits=16 (Tornado 500)", "permessage-deflate; client_max_window_bits=16", None),
    ("client_max_window_bits= (Tornado 500)", "permessage-deflate; client_max_window_bits=", None),
    ("a repeated parameter (Tornado accepts)",
     "permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("a repeated window (Tornado takes the last)",
     "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11", None),
    ("an unknown parameter (Tornado 500)", "permessage-deflate; foo=1", None),
    ("server_no_context_takeover=1 (Tornado accepts)", "permessage-deflate; server_no_context_takeover=1",
     None),
    ("an unknown parameter, then a good offer: the second is taken (Tornado 500)",
     "permessage-deflate; foo=1, permessage-deflate", "permessage-deflate"),
]

KEEP = ("sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions")


def exchange(port, data, timeout=5.0):
    """Sends DATA then FOLLOW on a new connection; returns the answers up to the close
    (or a 101) as [(status, details)], and how the reading ended."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    end = "closed"
    got = []
    head_first = data.startswith(b"HEAD ")
    deadline = time.monotonic() + timeout
    try:
        try:
            s.sendall(data + FOLLOW)
        except OSError:
            pass  # refused early; read what came back
        while True:
            while b"\r\n\r\n" not in buf:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    more = s.recv(65536)
                except socket.timeout:
                    return got, "timeout"
                except OSError:
                    return got, "reset"
                if not more:
                    return got, end if not buf else f"closed with {buf[:40]!r}"
                buf += more
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if status == 101:
                got.append((status, tuple((k, fields.get(k)) for k in KEEP)))
                return got, "upgraded"
            if 100 <= status < 200:
                got.append((status, None))
                continue
            length = 0 if head_first and not got else int(fields.get("content-length", "0"))
            while len(buf) < length:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                more = s.recv(65536)
                if not more:
                    return got, "closed inside a body"
                buf += more
            body, buf = buf[:length], buf[length:]
            if status == 426:
                detail = fields.get("sec-websocket-version")
            elif status == 200:
                detail = body
            else:
                detail = None
            got.append((status, detail))
    finally:
        s.close()


async def main():
    args = parse_args(__doc__, "http_hello command",
                      [("--echo", dict(required=True, help="echo_server command (gets --deflate)"))],
                      tornado_log=logging.CRITICAL)
    checks = Checks("tornado <-> http_hello, echo_server: framing and handshakes")
    loop = asyncio.get_running_loop()
    hello_log = os.path.join(args.logdir, "http_hello_framing.log")
    echo_log = os.path.join(args.logdir, "echo_server_framing.log")
    hello = start_server(checks, "http_hello", args.server, logfile=hello_log)
    if hello is None:
        return checks.finish()
    echo = start_server(checks, "echo_server --deflate", args.echo, ["--deflate"], logfile=echo_log)
    if echo is None:
        hello.stop()
        return checks.finish()
    app = tornado.web.Application([(r"/", Main), (r"/upload/stream", StreamUpload), (r"/ws", Echo),
                                   (r"/ws/picky", Picky), (D, DeflateEcho)])
    tport, tserver = tornado_listen(app)

    def send(port, data):
        return loop.run_in_executor(None, exchange, port, data.replace(b"PORT", str(port).encode()))

    try:
        for group, cases, cport in (("", SAME, hello.port), ("permessage-deflate: ", SAME_DEFLATE, echo.port)):
            for title, data in cases:
                async def same(data=data, cport=cport):
                    c, t = await asyncio.gather(send(cport, data), send(tport, data))
                    assert c == t, f"\n  cyclone: {c}\n  tornado: {t}"
                    assert c[1] != "timeout", c

                await checks.run(f"{group}{title} (same answers)", same, 30)

        tornado_said = []
        for title, data, want in CYCLONE:
            async def as_the_rfc_says(data=data, want=want):
                c, t = await asyncio.gather(send(hello.port, data), send(tport, data))
                tornado_said.append(t)
                assert [status for status, _ in c[0]] == want and c[1] != "timeout", c

            await checks.run(f"cyclone: {title}", as_the_rfc_says, 30)
            print(f"    tornado: {tornado_said[-1] if tornado_said else '-'}", flush=True)
            tornado_said.clear()

        for title, params, ext in CYCLONE_DEFLATE:
            async def declined(params=params, ext=ext):
                c, t = await asyncio.gather(send(echo.port, offer(params)), send(tport, offer(params)))
                tornado_said.append(t)
                assert c[1] == "upgraded" and c[0][-1][0] == 101, c
                assert dict(c[0][-1][1]).get("sec-websocket-extensions") == ext, c

            await checks.run(f"cyclone declines: {title}", declined, 30)
            print(f"    tornado: {tornado_said[-1] if tornado_said else '-'}", flush=True)
            tornado_said.clear()

        check_alive(checks, hello, "http_hello", hello_log)
        check_alive(checks, echo, "echo_server", echo_log)
    finally:
        hello.stop()
        echo.stop()
        tserver.stop()
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
