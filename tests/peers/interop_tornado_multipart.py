#!/usr/bin/env python3
"""Form bodies read as Tornado reads them: `http_hello`'s POST /upload (which answers the body
arguments and files cyclone parsed, as JSON) against `tornado.httputil.parse_body_arguments`,
Tornado's own parser, on the same bytes.

    .venv/bin/python tests/peers/interop_tornado_multipart.py --server target/release/examples/http_hello

For each of about 100 bodies — browser and curl shaped multipart/form-data, quoted and RFC 2231
(`filename*=utf-8''...`, continuations) parameters, escapes, angle brackets, preambles and
epilogues, LF-only header lines, binary and non-UTF-8 values, empty values and filenames, 99
and 100 parts, part headers over 10 KiB, and the malformed ones (no final boundary, no
headers, no name, another disposition, folding, no colon, a bad header name, control
characters, a part not ending in CRLF, non-UTF-8 headers, boundary missing, quoted, spaced, repeated, or one quote), plus
urlencoded bodies (`+` and `%`, invalid escapes, a character sent part raw, part escaped, `;`,
repeated and empty names, charsets and type spellings) — the check passes when:
  - Tornado raises HTTPInputError and cyclone answers 400, or
  - both accept, and cyclone's arguments (values decoded as UTF-8 with replacement, control
    characters made spaces and stripped, as Tornado's get_argument does) and files (name,
    filename, content type, bytes) are Tornado's, in Tornado's order.
Urlencoded bodies over Tornado's 1,000-argument limit are not in the grid: cyclone takes
them (its lookups scan the body instead of keeping every pair).
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, http_request, parse_args, run_main, start_server  # noqa: E402

from tornado.httputil import HTTPHeaders, HTTPInputError, parse_body_arguments  # noqa: E402

CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")


def clean(b):
    return CONTROL.sub(" ", b.decode("utf-8", "replace")).strip()


def tornado_parse(ctype, body, extra):
    """('refused', reason) or ('ok', {'arguments': [...], 'files': [...]}) in cyclone's shape."""
    args, files = {}, {}
    headers = HTTPHeaders({"Content-Type": ctype, **extra})
    try:
        parse_body_arguments(ctype, body, args, files, headers)
    except HTTPInputError as e:
        return "refused", str(e)
    arguments = [[name, clean(v)] for name, values in args.items() for v in values]
    flat = [[name, f.filename, f.content_type, len(f.body), f.body.hex()]
            for name, fs in files.items() for f in fs]
    return "ok", {"arguments": arguments, "files": flat}


def grouped(result):
    """cyclone's lists in body order, regrouped by first appearance of each name (dict order)."""
    def regroup(items):
        order, by = [], {}
        for item in items:
            if item[0] not in by:
                order.append(item[0])
                by[item[0]] = []
            by[item[0]].append(item)
        return [item for name in order for item in by[name]]
    return {"arguments": regroup(result["arguments"]), "files": regroup(result["files"])}


def post(port, ctype, body, extra):
    status, _, answer = http_request(port, "POST", "/upload", body=body,
                                     headers={"Content-Type": ctype, **extra})
    return status, answer


B = b"----cycloneB0undary"
CT = "multipart/form-data; boundary=" + B.decode()


def mp(*parts, final=True, preamble=b"", epilogue=b"\r\n"):
    out = preamble
    for p in parts:
        out += b"--" + B + b"\r\n" + p + b"\r\n"
    if final:
        out += b"--" + B + b"--" + epilogue
    return out


def field(name, value, extra=b""):
    return b'Content-Disposition: form-data; name="' + name + b'"' + extra + b"\r\n\r\n" + value


def upload(name, filename, data, ctype=b"text/plain"):
    head = b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"'
    if ctype is not None:
        head += b"\r\nContent-Type: " + ctype
    return head + b"\r\n\r\n" + data


CASES = [
    ("a browser form", CT, mp(field(b"title", b"Hello"), upload(b"f", b"a.txt", b"abc"),
                              field(b"title", b"again"))),
    ("curl -F", "multipart/form-data; boundary=------------------------d74496d66958873e",
     b"--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name=\"x\""
     b"\r\n\r\n1\r\n--------------------------d74496d66958873e--\r\n"),
    ("binary file without a type", CT, mp(upload(b"bin", b"x.bin", bytes(range(256)), None))),
    ("CRLF inside values", CT, mp(field(b"t", b"line1\r\nline2\r\n"))),
    ("empty value", CT, mp(field(b"e", b""))),
    ("empty filename is a field", CT, mp(upload(b"f", b"", b"data"))),
    ("non-UTF-8 value", CT, mp(field(b"v", b"caf\xe9 \xff"))),
    ("control characters in a value", CT, mp(field(b"v", b" \x01a\x0bb\x7f "))),
    ("UTF-8 names and filenames", CT,
     mp(field("名前".encode(), "値".encode()), upload(b"f", "résumé.pdf".encode(), b"%PDF"))),
    ("a quoted name with ; and escapes", CT,
     mp(b'Content-Disposition: form-data; name="a;b\\"c\\\\d"\r\n\r\nv')),
    ("unquoted parameters", CT, mp(b"Content-Disposition: form-data; name=plain\r\n\r\nv")),
    ("angle brackets", CT, mp(b"Content-Disposition: form-data; name=<ang>\r\n\r\nv")),
    ("upper-case parameter names", CT, mp(b"Content-Disposition: form-data; NAME=up\r\n\r\nv")),
    ("filename* in UTF-8", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=UTF-8''d%C3%B6g%20%E2%82%AC.gif"
        b"\r\n\r\nGIF")),
    ("filename* in Latin-1", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=iso-8859-1'en'%E9t%E9.txt\r\n\r\nx")),
    ("filename and filename*", CT,
     mp(b"Content-Disposition: form-data; name=f; filename=\"old.txt\"; "
        b"filename*=utf-8''new.txt\r\n\r\nx")),
    ("filename* with an unknown charset", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=x-nothing''abc\r\n\r\nx")),
    ("filename* without quotes marks", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=abc%41\r\n\r\nx")),
    ("continuations", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*0=\"long\"; filename*1=\"name.txt\""
        b"\r\n\r\nx")),
    ("encoded continuations", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*0*=utf-8''%C3; filename*1*=%A4.txt"
        b"\r\n\r\nx")),
    ("filename* with a quote", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=utf-8''a%22b%5Cc\r\n\r\nx")),
    ("a parameter without a value", CT,
     mp(b"Content-Disposition: form-data; novalue; name=n\r\n\r\nx")),
    ("a preamble", CT, mp(field(b"a", b"1"), preamble=b"ignored preamble\r\n")),
    ("an empty preamble line", CT, mp(field(b"a", b"1"), preamble=b"\r\n")),
    ("an epilogue", CT, mp(field(b"a", b"1"), epilogue=b"\r\nepilogue text")),
    ("two final boundaries", CT, mp(field(b"a", b"1")) + b"--" + B + b"--\r\n"),
    ("LF-only header lines", CT,
     mp(b"Content-Disposition: form-data; name=f; filename=x\nContent-Type: a/b\r\n\r\nv")),
    ("a CR without LF ending the headers", CT,
     mp(b"Content-Disposition: form-data; name=a\r\r\n\r\nv")),
    ("two Content-Disposition headers", CT,
     mp(b"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b"
        b"\r\n\r\nv")),
    ("other part headers", CT,
     mp(b"Content-Disposition: form-data; name=a\r\nX-Extra: 1\r\nContent-Type: text/x\r\n\r\nv")),
    ("a part with headers only", CT, mp(b"Content-Disposition: form-data; name=a\r\n")),
    ("the boundary quoted in the type", 'multipart/form-data; boundary="' + B.decode() + '"',
     mp(field(b"a", b"1"))),
    ("the type with more parameters", "multipart/form-data; charset=utf-8; boundary=" + B.decode()
     + "; x=y", mp(field(b"a", b"1"))),
    ("99 parts", CT, mp(*[field(b"n%d" % i, b"%d" % i) for i in range(99)])),
    ("100 parts", CT, mp(*[field(b"n%d" % i, b"%d" % i) for i in range(100)])),
    ("part headers of 10 KiB", CT,
     mp(b"Content-Disposition: form-data; name=a\r\nX: " + b"y" * (10 * 1024 - 43) + b"\r\n\r\nv")),
    ("part headers over 10 KiB", CT,
     mp(b"Content-Disposition: form-data; name=a\r\nX: " + b"y" * (10 * 1024) + b"\r\n\r\nv")),
    ("no final boundary", CT, mp(field(b"a", b"1"), final=False)),
    ("no blank line after the headers", CT, mp(b"Content-Disposition: form-data; name=a")),
    ("no name", CT, mp(b"Content-Disposition: form-data; filename=x\r\n\r\nv")),
    ("an empty name", CT, mp(b'Content-Disposition: form-data; name=""\r\n\r\nv')),
    ("another disposition", CT, mp(b"Content-Disposition: attachment; name=a\r\n\r\nv")),
    ("FORM-DATA in capitals", CT, mp(b"Content-Disposition: FORM-DATA; name=a\r\n\r\nv")),
    ("no Content-Disposition", CT, mp(b"Content-Type: text/plain\r\n\r\nv")),
    ("a folded header", CT, mp(b"Content-Disposition: form-data;\r\n name=a\r\n\r\nv")),
    ("a header without a colon", CT,
     mp(b"Content-Disposition: form-data; name=a\r\nbroken\r\n\r\nv")),
    ("a bad header name", CT, mp(b"Content Disposition: form-data; name=a\r\n\r\nv")),
    ("a control character in a header", CT,
     mp(b"Content-Disposition: form-data; name=a\x01b\r\n\r\nv")),
    ("a tab in a header", CT, mp(b"Content-Disposition: form-data;\tname=a\r\n\r\nv")),
    ("a part not ending in CRLF", CT,
     b"--" + B + b"\r\nContent-Disposition: form-data; name=a\r\n\r\nv--" + B + b"--\r\n"),
    ("non-UTF-8 part headers", CT, mp(b"Content-Disposition: form-data; name=\"\xff\"\r\n\r\nv")),
    ("no boundary parameter", "multipart/form-data", mp(field(b"a", b"1"))),
    ("an empty boundary", "multipart/form-data; boundary=", mp(field(b"a", b"1"))),
    ("multipart/form-dataxyz", "multipart/form-dataxyz; boundary=" + B.decode(),
     mp(field(b"a", b"1"))),
    ("Multipart/Form-Data (not parsed)", "Multipart/Form-Data; boundary=" + B.decode(),
     mp(field(b"a", b"1"))),
    ("another type (not parsed)", "text/plain", mp(field(b"a", b"1"))),
    ("the boundary with a space inside quotes", 'multipart/form-data; boundary="' + B.decode()
     + ' "', mp(field(b"a", b"1")).replace(B, B + b" ")),
    ("the boundary before another parameter, spaced", "multipart/form-data ;  boundary="
     + B.decode() + " ; charset=utf-8", mp(field(b"a", b"1"))),
    ("spaces around the boundary's =", "multipart/form-data; boundary = " + B.decode(),
     mp(field(b"a", b"1"))),
    ("Boundary= in capitals", "multipart/form-data; Boundary=" + B.decode(), mp(field(b"a", b"1"))),
    ("an empty boundary, then one", "multipart/form-data; boundary=; boundary=" + B.decode(),
     mp(field(b"a", b"1"))),
    ("two boundaries: the first counts", "multipart/form-data; boundary=" + B.decode()
     + "; boundary=other", mp(field(b"a", b"1"))),
    ("a boundary holding =", "multipart/form-data; boundary=" + B.decode() + "=x",
     mp(field(b"a", b"1")).replace(B, B + b"=x")),
    ("a boundary quoted on one side", 'multipart/form-data; boundary="' + B.decode(),
     mp(field(b"a", b"1")).replace(B, b'"' + B)),
    ("a boundary of one quote", 'multipart/form-data; boundary="',
     mp(field(b"a", b"1")).replace(B, b'"')),
    ("a boundary of two quotes", 'multipart/form-data; boundary=""',
     mp(field(b"a", b"1")).replace(B, b"")),
    ("the boundary in a value, not at a line start", CT,
     mp(field(b"a", b"x--" + B + b"y"), field(b"b", b"--" + B + b"--z"))),
    ("only the final boundary", CT, b"--" + B + b"--\r\n"),
    ("an empty multipart body", CT, b""),
    ("LF-only delimiters", CT,
     b"--" + B + b"\nContent-Disposition: form-data; name=a\n\nv\n--" + B + b"--\n"),
    ("names repeated across fields and files", CT,
     mp(field(b"x", b"1"), upload(b"y", b"a", b"A"), field(b"y", b"2"), upload(b"x", b"b", b"B"),
        field(b"x", b"3"), upload(b"y", b"c", b"C"))),
    ("a part's type with parameters, repeated", CT,
     mp(b"Content-Disposition: form-data; name=f; filename=a\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\ncontent-type: x/y\r\n\r\nv")),
    ("header names in capitals, spaces around =", CT,
     mp(b"CONTENT-DISPOSITION: form-data; name = \"a\" ; filename =  b.txt\r\n"
        b"CONTENT-TYPE: a/b\r\n\r\nv")),
    ("filename* with a language", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=utf-8'en-us'%E2%82%AC.txt\r\n\r\nx")),
    ("filename* quoted", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=\"utf-8''a%20b.txt\"\r\n\r\nx")),
    ("filename* empty: a field", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=utf-8''\r\n\r\nx")),
    ("filename* with a broken escape", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=utf-8''a%2.txt%\r\n\r\nx")),
    ("filename* not UTF-8", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=utf-8''%FFx%C3\r\n\r\nx")),
    ("filename* in upper-case hex, ASCII charset", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=us-ascii''%4A%e9\r\n\r\nx")),
    ("filename* before filename", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*=utf-8''new; filename=old\r\n\r\nx")),
    ("name* in UTF-8", CT,
     mp(b"Content-Disposition: form-data; name*=utf-8''%C3%A9t%C3%A9\r\n\r\nv")),
    ("continuations out of order", CT,
     mp(b"Content-Disposition: form-data; name=f; filename*1=b.txt; filename*0=a\r\n\r\nx")),
    ("a percent in a plain filename", CT,
     mp(b"Content-Disposition: form-data; name=f; filename=\"a%20b.txt\"\r\n\r\nx")),
    ("no Content-Disposition among other parts", CT,
     mp(field(b"a", b"1"), b"Content-Type: text/plain\r\n\r\nv", field(b"b", b"2"))),
    ("urlencoded", "application/x-www-form-urlencoded",
     b"a=1&b=%C3%A9t%C3%A9&a=two+words&empty=&noeq&&c=%zz&d=+%20x%09"),
    ("urlencoded with a charset", "application/x-www-form-urlencoded; charset=UTF-8", b"a=1&b=2"),
    ("urlencoded, non-UTF-8", "application/x-www-form-urlencoded", b"a=%E9&b=%FF%FE"),
    ("urlencoded, + and %", "application/x-www-form-urlencoded",
     b"p=1+2%2B3&q=%2b%2B+&r=a%3Db=c=d&s=%41%4a%4A&t=100%&u=%&v=%4&w=%%41&x=%e2%82%ac"),
    ("urlencoded, invalid escapes", "application/x-www-form-urlencoded",
     b"a=%zz&b=%g1&c=%1g&d=%%&e=%+1&f=%-1&g=%E2%82"),
    ("urlencoded, raw non-ASCII beside escapes", "application/x-www-form-urlencoded",
     b"a=\xc3%A9&b=%C3\xa9&c=\xe2\x82\xac&d=\xe9"),
    ("urlencoded, ; is no separator", "application/x-www-form-urlencoded", b"a=1;b=2&c=3"),
    ("urlencoded, repeated names in order", "application/x-www-form-urlencoded",
     b"x=1&y=a&x=2&z=&y=b&x=3"),
    ("urlencoded, an empty name", "application/x-www-form-urlencoded", b"=v&=&a=1"),
    ("urlencoded, a Latin-1 charset", "application/x-www-form-urlencoded; charset=ISO-8859-1",
     b"a=caf%E9&b=ok"),
    ("urlencoded, charset before a space", "application/x-www-form-urlencoded ; charset=utf-8",
     b"a=1"),
    ("application/x-www-form-urlencodedx", "application/x-www-form-urlencodedx", b"a=1"),
    ("Application/X-WWW-Form-Urlencoded (not parsed)", "Application/X-WWW-Form-Urlencoded",
     b"a=1"),
    ("urlencoded, an empty body", "application/x-www-form-urlencoded", b""),
    ("urlencoded, only &s", "application/x-www-form-urlencoded", b"&&&"),
    ("urlencoded, a trailing newline", "application/x-www-form-urlencoded", b"a=1&b=2\r\n"),
    ("urlencoded, 1,000 fields (Tornado's max_arguments)", "application/x-www-form-urlencoded",
     b"&".join(b"f%d=%d" % (i, i) for i in range(1000))),
    ("urlencoded, 1,001 fields", "application/x-www-form-urlencoded",
     b"&".join(b"f%d=%d" % (i, i) for i in range(1001))),
    ("urlencoded, 1,000 &s around one field", "application/x-www-form-urlencoded",
     b"a=1" + b"&" * 1000),
]

ENCODED = [
    ("multipart with Content-Encoding", CT, mp(field(b"a", b"1")), {"Content-Encoding": "gzip"}),
    ("urlencoded with Content-Encoding", "application/x-www-form-urlencoded", b"a=1",
     {"Content-Encoding": "gzip"}),
]


async def main():
    args = parse_args(__doc__, "http_hello command (gets --port, --address)")
    checks = Checks("tornado multipart <-> http_hello")
    loop = asyncio.get_running_loop()
    log = os.path.join(args.logdir, "http_hello_upload.log")
    server = start_server(checks, "http_hello", args.server, logfile=log)
    if server is None:
        return checks.finish()
    with server:
        for title, ctype, body, *rest in CASES + ENCODED:
            extra = rest[0] if rest else {}

            async def same(ctype=ctype, body=body, extra=extra):
                status, answer = await loop.run_in_executor(
                    None, lambda: post(server.port, ctype, body, extra))
                verdict, expected = tornado_parse(ctype, body, extra)
                if verdict == "refused":
                    assert status == 400, f"Tornado refuses ({expected}); cyclone: {status} " \
                                          f"{answer[:300]!r}"
                    return
                assert status == 200, f"Tornado accepts; cyclone: {status} {answer[:300]!r}"
                got = grouped(json.loads(answer))
                assert got == expected, f"cyclone {got}, tornado {expected}"

            await checks.run(title, same)
        check_alive(checks, server, "http_hello", log)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
