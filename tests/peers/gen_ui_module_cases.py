"""Prints the expected pages of cyclone's UI module tests from Tornado itself:

    .venv/bin/python tests/peers/gen_ui_module_cases.py          # writes the file
    .venv/bin/python tests/peers/gen_ui_module_cases.py --check  # exits 1 if it is stale

writes src/web/ui_module_cases.rs (`include!`d by src/web/tests.rs, so rustfmt leaves it as printed): for each case, template files, the page a handler renders
with `RequestHandler.render(page, **values)` and what Tornado sends (or that it raised). The
application has the four UI modules below, which tests/util/tornado_ui_modules.rs writes in Rust
(`Entry`, `Counter`, `Assets`, `Tree`), and a `static_path` with no files in it (so
`static_url` adds no version, in both). Run it again after changing a case here; `scripts/interop`
runs it with `--check`, so the file cannot drift from the Tornado in the venv.
"""
import json
import os
import shutil
import sys
import tempfile

import tornado
import tornado.web
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "src", "web", "ui_module_cases.rs")


class Entry(tornado.web.UIModule):
    def render(self, entry, show_comments=False):
        return self.render_string("modules/entry.html", entry=entry, show_comments=show_comments)

    def embedded_css(self):
        return ".entry { margin: 1em; }"

    def javascript_files(self):
        return ["entry.js", "/abs/x.js"]


class Counter(tornado.web.UIModule):
    def __init__(self, handler):
        super().__init__(handler)
        self.n = 0

    def render(self, step=1):
        self.n += step
        return str(self.n)

    def html_body(self):
        return "<p>counted %d</p>" % self.n


class Assets(tornado.web.UIModule):
    def render(self, *args):
        return "[%d]" % len(args)

    def embedded_javascript(self):
        return "var a = 1 < 2;"

    def javascript_files(self):
        return "entry.js"

    def css_files(self):
        return ["http://cdn.example/x.css", "site.css", "site.css"]

    def embedded_css(self):
        return "p { color: red; }"

    def html_head(self):
        return '<meta name="m" content="a&b">'


class Tree(tornado.web.UIModule):
    def render(self, node):
        return self.render_string("modules/tree.html", node=node)


MODULE_FILES = {
    "modules/entry.html":
        '<div class="entry" id="e{{ entry["id"] }}">{{ entry["title"] }}'
        '{% if show_comments %} ({{ len(entry["comments"]) }} comments){% end %}</div>',
    "modules/tree.html":
        '<li>{{ node["name"] }}{% if node["children"] %}<ul>{% for c in node["children"] %}'
        '{% module Tree(c) %}{% end %}</ul>{% end %}</li>',
}

ENTRIES = [{"id": 1, "title": "First <post>", "comments": []},
           {"id": 2, "title": "Second", "comments": ["a", "b"]}]

# (name, {file: text}, page, values)
CASES = [
    ("the application's modules and their resources",
     {"page.html":
      "<html><head><title>{{ title }}</title></head>\n<body>"
      "{% for e in entries %}{% module Entry(e, show_comments=e[\"id\"] == 2) %}{% end %}\n"
      "{% module Counter() %}|{% module Counter(step=5) %}|{% module Assets(1, \"x\") %}</body></html>"},
     "page.html", {"title": "Blog", "entries": ENTRIES}),
    ("Template modules' set_resources, once per template, a list or a string of files",
     {"page.html":
      "<html><head></head><body>{% for m in msgs %}{% module Template(\"message.html\", message=m) %}{% end %}"
      "{% module Template(\"side.html\") %}</body></html>",
      "message.html":
      "{{ set_resources(embedded_javascript=\"var m = 1;\", css_files=\"chat.css\", "
      "javascript_files=[\"chat.js\", \"https://x.example/y.js\", \"chat.js\"]) }}<div>{{ message }}</div>",
      "side.html":
      "{{ set_resources(html_head=\"<base target=\\\"_blank\\\">\", html_body=\"<footer>f</footer>\", "
      "embedded_css=\".side {}\", embedded_javascript=\"var s;\") }}<aside>{% include \"side-inner.html\" %}</aside>",
      "side-inner.html":
      "{{ set_resources(html_head=\"<base target=\\\"_blank\\\">\", html_body=\"<footer>f</footer>\", "
      "embedded_css=\".side {}\", embedded_javascript=\"var s;\") }}inner"},
     "page.html", {"msgs": ["hi", "<b>yo</b>"]}),
    ("the order of first use: a Template module, then the application's",
     {"page.html":
      "<html><head></head><body>{% module Assets() %}{% module Template(\"t.html\") %}"
      "{% module Counter() %}{% module Assets() %}</body></html>",
      "t.html": "{{ set_resources(embedded_javascript=\"var t;\", javascript_files=\"site.js\", "
                "embedded_css=\"\", html_body=\"<i>t</i>\") }}t"},
     "page.html", {}),
    ("a module whose template calls it again",
     {"page.html": "<html><head></head><body><ul>{% module Tree(root) %}</ul></body></html>"},
     "page.html",
     {"root": {"name": "a", "children": [
         {"name": "b", "children": [{"name": "c", "children": []}]},
         {"name": "<d>", "children": []}]}}),
    ("modules with nothing to put in leave a page without head or body alone",
     {"page.html": "{% module linkify(url) %}|{% module Template(\"plain.html\", x=1) %}|"
                   "{% module Template(\"plain.html\", x=2) %}",
      "plain.html": "plain {{ x }}"},
     "page.html", {"url": "http://example.com/a?b=1&c=2"}),
    ("the first </head>, the last </body> for files and scripts, the first for html_body",
     {"page.html":
      "<html><head></head><!-- </head> --><body>{% module Counter() %}{% module Entry(e) %}"
      "<script>var s = \"</body>\";</script></body></html>"},
     "page.html", {"e": ENTRIES[0]}),
    ("an empty embedded_css from two templates joins to a newline",
     {"page.html": "<html><head></head><body>{% module Template(\"a.html\") %}{% module Template(\"b.html\") %}"
                   "</body></html>",
      "a.html": "{{ set_resources(embedded_css=\"\") }}a",
      "b.html": "{{ set_resources(embedded_css=\"\") }}b"},
     "page.html", {}),
    ("modules.Name(..) in expressions: escaped by {{ }}, as they are by {% raw %}",
     {"page.html": "<html><head></head><body>{% raw modules.Assets(1) %}|{{ modules.Counter() }}|"
                   "{% raw modules.Counter(step=2) %}|{{ modules.Entry(e) }}|{% raw modules.linkify(url) %}|"
                   "{{ modules.linkify(url, shorten=True) }}</body></html>"},
     "page.html", {"e": ENTRIES[1], "url": "http://example.com/a<b"}),
    ("a page without </head> for a module's CSS",
     {"page.html": "<html><body>{% module Assets() %}</body></html>"},
     "page.html", {}),
    ("a page without </body> for a module's JavaScript",
     {"page.html": "<html><head></head>{% module Template(\"j.html\") %}</html>",
      "j.html": "{{ set_resources(javascript_files=\"j.js\") }}j"},
     "page.html", {}),
    ("set_resources with other resources for the same template",
     {"page.html": "<html><head></head><body>{% for m in msgs %}"
                   "{% module Template(\"m.html\", m=m) %}{% end %}</body></html>",
      "m.html": "{{ set_resources(embedded_css=m) }}{{ m }}"},
     "page.html", {"msgs": ["a", "b"]}),
]


class Connection:
    def set_close_callback(self, callback):
        pass


class Page(tornado.web.RequestHandler):
    def finish(self, chunk=None):
        self.sent = chunk


def render(case_dir, static_dir, page, values):
    app = tornado.web.Application(
        template_path=case_dir, static_path=static_dir,
        ui_modules={"Entry": Entry, "Counter": Counter, "Assets": Assets, "Tree": Tree})
    req = HTTPServerRequest(start_line=RequestStartLine("GET", "/p/" + page, "HTTP/1.1"),
                            headers=HTTPHeaders({"Host": "127.0.0.1"}), connection=Connection())
    handler = Page(app, req)
    try:
        handler.render(page, **values)
    except ValueError as e:
        return None, str(e)
    return handler.sent.decode("utf-8"), None


def rust_str(s):
    return json.dumps(s, ensure_ascii=False)


def generate():
    """The file's text, and the text of each case in it (with the head, for --check)."""
    out = ["// Printed by tests/peers/gen_ui_module_cases.py from Tornado %s's "
           "RequestHandler.render: do not edit." % tornado.version,
           "",
           "/// (name, template files, page, values as JSON, the page Tornado sends or None where it raises)",
           "type Case = (&'static str, &'static [(&'static str, &'static str)], "
           "&'static str, &'static str, Option<&'static str>);",
           "",
           "const MODULE_FILES: &[(&str, &str)] = &["]
    for name, text in MODULE_FILES.items():
        out.append("    (%s, %s)," % (rust_str(name), rust_str(text)))
    out.append("];")
    out.append("")
    out.append("const CASES: &[Case] = &[")
    blocks = [("the file's head and the modules' templates", "\n".join(out))]
    static_dir = tempfile.mkdtemp()
    try:
        for name, files, page, values in CASES:
            start = len(out)
            case_dir = tempfile.mkdtemp()
            try:
                for fname, text in {**MODULE_FILES, **files}.items():
                    path = os.path.join(case_dir, fname)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w") as f:
                        f.write(text)
                sent, _error = render(case_dir, static_dir, page, values)
            finally:
                shutil.rmtree(case_dir)
            out.append("    (")
            out.append("        %s," % rust_str(name))
            out.append("        &[")
            for fname, text in files.items():
                out.append("            (%s, %s)," % (rust_str(fname), rust_str(text)))
            out.append("        ],")
            out.append("        %s," % rust_str(page))
            out.append("        %s," % rust_str(json.dumps(values)))
            out.append("        %s," % ("None" if sent is None else "Some(%s)" % rust_str(sent)))
            out.append("    ),")
            blocks.append((name, "\n".join(out[start:])))
    finally:
        shutil.rmtree(static_dir)
    out.append("];")
    return "\n".join(out) + "\n", blocks


def main():
    import argparse
    import logging
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true",
                    help="compare the file with what Tornado renders now; write nothing")
    ap.add_argument("--logdir", help="ignored (scripts/interop passes it)")
    args = ap.parse_args()
    logging.disable(logging.ERROR)  # static_url of a missing file logs an error, as it should
    text, blocks = generate()
    if args.check:
        with open(OUT) as f:
            current = f.read()
        failed = 0
        for name, block in blocks:
            if block in current:
                print("ok - ui_module_cases: %s" % name)
            else:
                failed += 1
                print("FAIL - ui_module_cases: %s: not what Tornado %s renders (run "
                      "tests/peers/gen_ui_module_cases.py)" % (name, tornado.version))
        if failed == 0 and current != text:
            failed += 1
            print("FAIL - ui_module_cases: the file has cases Tornado's run does not print")
        print("%d passed, %d failed" % (len(blocks) - failed, failed))
        sys.exit(1 if failed else 0)
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s (%d cases)" % (os.path.relpath(OUT), len(CASES)))


if __name__ == "__main__":
    main()
