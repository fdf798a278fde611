#!/usr/bin/env python3
"""ETags, 304s and gzip between Tornado and cyclone: `http_hello --compress-response`
against a Tornado application with `compress_response=True` and the same handlers (`/` and
`/repeat/N`), in this process, request for request.

    .venv/bin/python tests/peers/interop_tornado_http.py --server target/release/examples/http_hello

Checks:
  - the Etag of every page is Tornado's, byte for byte (the SHA-1 of the body), on GET and HEAD;
  - for a grid of If-None-Match values (the tag, W/ weak forms, lists, `*` first and later,
    unquoted, unclosed quotes, garbage around the tag), each server answers 304 or 200 as
    the other does, and a 304 has no body and no Content-Type on both;
  - for a grid of Accept-Encoding values and body sizes around Tornado's 1024-byte minimum,
    both gzip the same answers, send the same Vary, and the body decompresses to the same
    text (the compressed bytes may differ: another zlib);
  - a 404 carries Vary: Accept-Encoding on both;
  - a query string of more than 1,000 fields is answered 400 by both (Tornado 6.5.8's limit);
  - `@removeslash`/`@addslash` handlers (`remove_slash`/`add_slash`) and an `ErrorHandler(410)`
    answer a grid of paths (trailing slashes, queries, `//host` paths that must not redirect
    to another host) and methods with the same status, Location and page;
  - static files (`--static-path` and Tornado's `static_path`, the same directory) of text,
    JSON, SVG and PNG from 0 bytes to 1.1 MiB (a 17-byte stylesheet among them: Tornado gzips
    static files under its 1,024-byte minimum too, an empty one not; text over 1 MiB, which
    cyclone streams gzipped a piece at a time as Tornado does) are gzipped (or not) alike
    for the same Accept-Encoding grid, with the same Vary and decompressed bytes.
`Accept-Encoding: gzip;q=0` and `GZIP` are left out of the grid on purpose: Tornado's
case-sensitive substring test gzips the first and not the second, cyclone reads the list as
RFC 9110 §12.5.3 says (codings are case-insensitive, q=0 means "not acceptable"); the unit
tests cover both.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import asyncio
import gzip
import logging
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_alive, http_request, parse_args, run_main, start_server, tornado_listen  # noqa: E402

import tornado.web  # noqa: E402


class Main(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world")

    head = get  # cyclone's default head() is get(); Tornado's is a 405


def slash_handler(decorator):
    """A page naming its path, behind `decorator` (removeslash or addslash)."""
    class Slash(tornado.web.RequestHandler):
        @decorator
        def get(self):
            self.write("at " + self.request.path)

        head = get
        post = get
    return Slash


RemoveSlash = slash_handler(tornado.web.removeslash)
AddSlash = slash_handler(tornado.web.addslash)


class Repeat(tornado.web.RequestHandler):
    def get(self, n):
        self.write("Hello, world\n" * int(n))

    head = get


def fetch(port, path, method="GET", headers=None, body=None):
    """(status, headers as a dict of lower-case names, body bytes)."""
    status, head, body = http_request(port, method, path, body=body, headers=headers)
    return status, {k.lower(): v for k, v in head.items()}, body


PATHS = ["/", "/repeat/1", "/repeat/78", "/repeat/79", "/repeat/100", "/repeat/5000"]

STATIC_FILES = {
    "app.css": b"body { color: #333; }\n" * 60,
    "data.json": b'{"k": [' + b", ".join(b"%d" % i for i in range(400)) + b"]}",
    "icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g/>" * 300 + b"</svg>",
    "logo.png": bytes(range(256)) * 8,
    "bundle.js": b"var x = 1;\n" * 90000,
    "tiny.css": b"p { margin: 0; }\n",
    "empty.txt": b"",
    "large.js": b"".join(b"var v%d = %d;\n" % (i, i * 7) for i in range(70000)),
}
assert len(STATIC_FILES["large.js"]) > 1 << 20


SLASH_PATHS = ["/slash/remove/a/", "/slash/remove/a", "/slash/remove/a///?x=1&y",
               "/slash/remove/", "/slash/add/a", "/slash/add/a/", "/slash/add/a?q=%20&r",
               "/slash/add", "//evil.example/", "//evil.example", "///evil.example//?q",
               "//", "/gone/x", "/gone/"]


ACCEPT = ["gzip", "gzip, deflate, br", "deflate", "identity", "", "x-gzip",
          "br;q=1.0, gzip;q=0.8, *;q=0.1", None]


def inm_grid(tag):
    bare = tag.strip('"')
    return [tag, "W/" + tag, f'"x", {tag}', f'{tag}, "x"', "*", '*, "x"', '"x", *',
            '"x"', bare, f'"{bare}', f"junk{tag}junk", f'W/"x", W/{tag}', f'"{bare}x"', '""',
            'W/', 'W', '"unclosed *', ""]


async def main():
    args = parse_args(__doc__, "http_hello command (gets --port, --address and --compress-response)",
                      tornado_log=logging.ERROR)
    checks = Checks("tornado http <-> http_hello")
    loop = asyncio.get_running_loop()

    def call(*a, **kw):
        return loop.run_in_executor(None, lambda: fetch(*a, **kw))

    log = os.path.join(args.logdir, "http_hello_compress.log")
    static = tempfile.mkdtemp(prefix="cyclone-static-")
    for name, data in STATIC_FILES.items():
        with open(os.path.join(static, name), "wb") as f:
            f.write(data)
    server = start_server(checks, "http_hello --compress-response", args.server,
                          ["--compress-response", "--static-path", static], logfile=log)
    if server is None:
        shutil.rmtree(static)
        return checks.finish()
    app = tornado.web.Application([(r"/", Main), (r"/repeat/(\d{1,5})", Repeat),
                                   (r"/slash/remove.*", RemoveSlash), (r"//.*", RemoveSlash),
                                   (r"/slash/add.*", AddSlash),
                                   (r"/gone/.*", tornado.web.ErrorHandler, {"status_code": 410})],
                                  compress_response=True, static_path=static)
    tport, tserver = tornado_listen(app)
    cport = server.port
    try:
        for path in PATHS:
            async def same_etag(path=path):
                for method in ("GET", "HEAD"):
                    cs, ch, _ = await call(cport, path, method)
                    ts, th, _ = await call(tport, path, method)
                    assert cs == ts == 200, (method, cs, ts)
                    assert ch.get("etag") and ch.get("etag") == th.get("etag"), \
                        (method, ch.get("etag"), th.get("etag"))

            await checks.run(f"{path}: the Etag is Tornado's on GET and HEAD", same_etag)

        for path in ["/", "/repeat/100"]:
            async def same_304s(path=path):
                _, h, _ = await call(tport, path)
                differ = []
                for inm in inm_grid(h["etag"]):
                    cs, ch, cb = await call(cport, path, headers={"If-None-Match": inm})
                    ts, th, tb = await call(tport, path, headers={"If-None-Match": inm})
                    if cs != ts:
                        differ.append(f"If-None-Match {inm!r}: cyclone {cs}, tornado {ts}")
                    elif cs == 304 and (cb or tb or "content-type" in ch
                                        or "content-type" in th):
                        differ.append(f"If-None-Match {inm!r}: a 304 with a body or a type")
                assert not differ, "; ".join(differ)

            await checks.run(f"{path}: If-None-Match answered 304 or 200 as Tornado does",
                             same_304s)

        for path in PATHS + ["/static/" + name for name in STATIC_FILES]:
            async def same_gzip(path=path):
                differ = []
                for accept in ACCEPT:
                    headers = {} if accept is None else {"Accept-Encoding": accept}
                    cs, ch, cb = await call(cport, path, headers=headers)
                    ts, th, tb = await call(tport, path, headers=headers)
                    ce, te = ch.get("content-encoding"), th.get("content-encoding")
                    if (cs, ce, ch.get("vary")) != (ts, te, th.get("vary")):
                        differ.append(f"Accept-Encoding {accept!r}: cyclone "
                                      f"{(cs, ce, ch.get('vary'))}, tornado "
                                      f"{(ts, te, th.get('vary'))}")
                        continue
                    cb = gzip.decompress(cb) if ce == "gzip" else cb
                    tb = gzip.decompress(tb) if te == "gzip" else tb
                    if cb != tb:
                        differ.append(f"Accept-Encoding {accept!r}: bodies differ")
                assert not differ, "; ".join(differ)

            await checks.run(f"{path}: gzipped (or not) as Tornado's compress_response does",
                             same_gzip)

        async def not_found_varies():
            cs, ch, _ = await call(cport, "/nowhere", headers={"Accept-Encoding": "gzip"})
            ts, th, _ = await call(tport, "/repeat/x", headers={"Accept-Encoding": "gzip"})
            assert cs == ts == 404, (cs, ts)
            assert ch.get("vary") == th.get("vary") == "Accept-Encoding", (ch, th)

        await checks.run("a 404 carries Vary: Accept-Encoding on both", not_found_varies)

        async def query_fields_bounded():
            for n, want in [(1000, 200), (1001, 400)]:
                q = "&".join(f"f{i}={i}" for i in range(n))
                cs, _, _ = await call(cport, "/?" + q)
                ts, _, _ = await call(tport, "/?" + q)
                assert cs == ts == want, (n, cs, ts)

        await checks.run("a query of 1,000 fields is answered, of 1,001 refused 400, on both",
                         query_fields_bounded)

        async def slashes():
            differ = []
            for path in SLASH_PATHS:
                for method in ("GET", "HEAD", "POST"):
                    body = b"" if method == "POST" else None
                    cs, ch, cb = await call(cport, path, method, body=body)
                    ts, th, tb = await call(tport, path, method, body=body)
                    c = (cs, ch.get("location"), cb if cs == 200 else b"")
                    t = (ts, th.get("location"), tb if ts == 200 else b"")
                    if c != t:
                        differ.append(f"{method} {path}: cyclone {c}, tornado {t}")
            assert not differ, "; ".join(differ)

        await checks.run(f"@removeslash, @addslash and ErrorHandler(410): {len(SLASH_PATHS)} paths "
                         "x GET, HEAD, POST answered as Tornado does", slashes)
        check_alive(checks, server, "http_hello --compress-response", log)
    finally:
        server.stop()
        tserver.stop()
        shutil.rmtree(static)
    return checks.finish()


if __name__ == "__main__":
    run_main(main)
