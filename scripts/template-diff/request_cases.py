#!/usr/bin/env python3
"""Differential cases for what only a request's render has: UI modules and the
request-only template functions.

Each case is served by a Tornado `Application` over HTTP (on 127.0.0.1) and
fetched, so the page is what `RequestHandler.render` sends; the result is
written to tests/template_diff/request_cases.json, which
`cargo test --test template_request_diff` serves with cyclone's
`Application` (same routes, modules, settings and request) and compares.

    .venv/bin/python scripts/template-diff/request_cases.py      # regenerate

The application of every case (cyclone's is the same, in Rust):
- `template_path`: the case's `files` (with MODULE_FILES), `static_path`:
  STATIC_FILES (so `static_url` adds a version), `static_url_prefix` as the
  case's config says;
- the UI modules Entry, Counter, Assets, Tree (those of
  tests/peers/gen_ui_module_cases.py) and Req, which uses the handler's
  request functions (`static_url`, `reverse_url`, `locale`,
  `current_user`, `request`) from Python and from its template;
- the routes `/p/(.*)` (renders the page named in the path with the case's
  values), and for `reverse_url`: `story` `/story/([0-9]+)`, `user`
  `/u/([^/]+)/(\\w+)`, `home` `/`, `search` `/search`;
- the server's `xheaders` as the case's config says;
- `get_current_user` is the request's `X-User` header (None without one;
  ASCII, as the two clients encode other header text differently);
- translations: TRANSLATIONS (CSV), loaded before every case, as
  `tornado.locale.load_translations` reads them; the locale is the
  browser's (`Accept-Language`);
- `xsrf_cookies` as the config says, with the cookie `_xsrf` sent: in
  version 1 the page's token is the cookie's, in version 2 it is masked
  afresh (a random mask), so a version-2 token in the page is written
  `XSRF2(<token>)` (unmasked) on both sides before comparing.

A case's result is {"status": code, "body": text}; for a status other than
200 only the status is compared.
"""
import asyncio
import binascii
import hashlib
import json
import os
import pathlib
import random
import re
import shutil
import sys
import tempfile

import tornado
import tornado.locale
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "peers"))
import gen_ui_module_cases as ui_cases  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "template_diff" / "request_cases.json"

HOST = "cyclone.test:8888"
XSRF_TOKEN = "00112233445566778899aabbccddeeff"
# A version-2 cookie (mask deadbeef) for the same token.
XSRF_V2_COOKIE = "2|deadbeef|" + binascii.b2a_hex(
    bytes(a ^ b for a, b in zip(bytes.fromhex(XSRF_TOKEN), bytes.fromhex("deadbeef") * 4))
).decode() + "|1700000000"

STATIC_FILES = {
    "app.css": "body { color: red; }\n",
    "js/app.js": "console.log(1);\n",
    "img/a b.png": "not really a png",
    "sub/é.txt": "accent\n",
    "empty.txt": "",
}

TRANSLATIONS = {
    "es_LA.csv": '"Sign in","Iniciar sesi\u00f3n"\n'
                 '"Hello, %(name)s","Hola, %(name)s"\n'
                 '"1 file","un archivo","singular"\n'
                 '"%(n)d files","%(n)d archivos","plural"\n'
                 '"Monday","lunes"\n',
    "fr_FR.csv": '"Sign in","Connexion"\n'
                 '"1 file","un fichier","singular"\n'
                 '"%(n)d files","%(n)d fichiers","plural"\n',
}

# The four modules of cyclone's unit tests, as gen_ui_module_cases.py has them.
MODULE_FILES = dict(ui_cases.MODULE_FILES)
MODULE_FILES["modules/req.html"] = (
    '<span data-u="{{ current_user }}" data-p="{{ request.path }}">{{ static_url(f) }}|'
    '{{ reverse_url("story", n) }}|{{ _("Sign in") }}|{{ locale.code }}|{% raw xsrf_form_html() %}</span>')
Entry, Counter, Assets, Tree = ui_cases.Entry, ui_cases.Counter, ui_cases.Assets, ui_cases.Tree


class Req(tornado.web.UIModule):
    """The handler's functions from Python (`template=False`) or from a template."""

    def render(self, path="app.css", n=1, template=False):
        if template:
            return self.render_string("modules/req.html", f=path, n=n)
        return "%s|%s|%s|%s|%s" % (
            self.handler.static_url(path), self.handler.reverse_url("story", n),
            self.locale.translate("Sign in"), self.current_user, self.request.path)

    def javascript_files(self):
        return ["js/app.js", "app.css"]

    def css_files(self):
        return ["app.css", "//cdn.example/y.css"]


class Page(tornado.web.RequestHandler):
    def initialize(self, values):
        self.values = values

    def get_current_user(self):
        return self.request.headers.get("X-User")

    def get(self, page):
        self.render(page, **self.values)


class Other(tornado.web.RequestHandler):
    def get(self, *args):
        self.write("other")


def make_app(case_dir, static_dir, config, values):
    settings = dict(
        template_path=case_dir, static_path=static_dir,
        ui_modules={"Entry": Entry, "Counter": Counter, "Assets": Assets, "Tree": Tree, "Req": Req},
        cookie_secret="fixed secret for the differential",
        xsrf_cookies=config.get("xsrf", False),
        xsrf_cookie_version=config.get("xsrf_version", 2))
    if "static_url_prefix" in config:
        settings["static_url_prefix"] = config["static_url_prefix"]
    return tornado.web.Application([
        tornado.web.url(r"/p/(.*)", Page, {"values": values}),
        tornado.web.url(r"/story/([0-9]+)", Other, name="story"),
        tornado.web.url(r"/u/([^/]+)/(\w+)", Other, name="user"),
        tornado.web.url(r"/", Other, name="home"),
        tornado.web.url(r"/search", Other, name="search"),
    ], **settings)


V2 = re.compile(r"2\|([0-9a-f]{8})\|([0-9a-f]{32})\|([0-9]+)")


def unmask_v2(text):
    """Tornado masks a version-2 token afresh on every page: the page's
    token unmasked, so that two renders compare."""
    def one(m):
        mask = bytes.fromhex(m.group(1)) * 4
        token = bytes(a ^ b for a, b in zip(bytes.fromhex(m.group(2)), mask))
        return "XSRF2(%s)" % token.hex()
    return V2.sub(one, text)


# --- cases -------------------------------------------------------------------
C = []


def case(name, files, values=None, page="page.html", query="", **config):
    C.append({"name": name, "files": files, "page": page, "query": query,
              "values": values or {}, "config": config})


def p(name, src, values=None, **config):
    case(name, {"page.html": src}, values, **config)


ENTRIES = ui_cases.ENTRIES

# static_url with files that exist (a version), that do not, and settings.
p("static_url of files", "{{ static_url('app.css') }}|{{ static_url('js/app.js') }}|"
  "{{ static_url('img/a b.png') }}|{{ static_url('sub/\u00e9.txt') }}|{{ static_url('empty.txt') }}")
p("static_url of a missing file", "{{ static_url('nope.css') }}|{{ static_url('js/') }}")
p("static_url include_version=False", "{{ static_url('app.css', include_version=False) }}")
p("static_url include_version of values", "{{ static_url('app.css', include_version=0) }}|"
  "{{ static_url('app.css', include_version='yes') }}|{{ static_url('nope.css', include_version=True) }}")
p("static_url include_host=True", "{{ static_url('app.css', include_host=True) }}|"
  "{{ static_url('js/app.js', include_host=False) }}", query="?q=1")
p("static_url include_host and include_version", "{{ static_url('app.css', include_host=1, include_version=False) }}",
  static_url_prefix="/s/")
p("static_url include_host with an absolute prefix", "{{ static_url('app.css', include_host=True) }}",
  static_url_prefix="https://cdn.example/")
p("static_url unknown keyword", "{{ static_url('app.css', v=1) }}")
p("static_url with a leading slash", "{{ static_url('/app.css') }}")
p("static_url with a query", "{{ static_url('app.css?x=1') }}")
p("static_url of a directory", "{{ static_url('js') }}")
p("static_url with ..", "{{ static_url('../x.css') }}")
p("static_url with .. inside static_path", "{{ static_url('js/../app.css') }}")
p("static_url escaped and raw", "{{ static_url('img/a b.png') }}|{% raw static_url('img/a b.png') %}")
p("static_url of a value", "{{ static_url(f) }}", {"f": "app.css"})
p("static_url of a number", "{{ static_url(3) }}")
p("static_url prefix /s/", "{{ static_url('app.css') }}|{{ static_url('x') }}", static_url_prefix="/s/")
p("static_url prefix absolute", "{{ static_url('js/app.js') }}", static_url_prefix="https://cdn.example/st/")
p("static_url prefix without slash", "{{ static_url('app.css') }}", static_url_prefix="/st")
p("static_url no arguments", "{{ static_url() }}")

# reverse_url
p("reverse_url", "{{ reverse_url('story', 42) }}|{{ reverse_url('story', '7') }}|{{ reverse_url('home') }}|"
  "{{ reverse_url('search') }}|{{ reverse_url('user', 'ann', 'posts') }}")
p("reverse_url escapes its arguments", "{{ reverse_url('user', 'a b/c', '\u00e9&<') }}|"
  "{% raw reverse_url('user', 'a+b', '%2F') %}")
p("reverse_url of values", "{{ reverse_url(name, *args) }}", {"name": "user", "args": ["x", "y"]})
p("reverse_url of starred values", "{{ reverse_url(*route) }}|{{ reverse_url('user', *args[:1], 'z') }}|"
  "{{ reverse_url(*['story'], *[n]) }}", {"route": ["user", "a b", "c"], "args": ["x", "y"], "n": 5})
p("reverse_url of a starred number", "{{ reverse_url('story', *n) }}", {"n": 5})
p("reverse_url of nothing", "{{ reverse_url(*[]) }}")
p("reverse_url of a value list", "{{ reverse_url('user', u['name'], u['tab']) }}",
  {"u": {"name": "z z", "tab": "t"}})
p("reverse_url unknown name", "{{ reverse_url('nope') }}")
p("reverse_url too few arguments", "{{ reverse_url('user', 'a') }}")
p("reverse_url too many arguments", "{{ reverse_url('home', 'a') }}")
p("reverse_url of a float and None", "{{ reverse_url('user', 1.5, None) }}")
p("reverse_url of a bool", "{{ reverse_url('user', True, False) }}")
p("reverse_url in an expression", "{{ reverse_url('story', 1) + '#c' }}|{{ len(reverse_url('home')) }}")

# xsrf_form_html
p("xsrf_form_html version 1", "{% raw xsrf_form_html() %}|{{ xsrf_form_html() }}", xsrf=True, xsrf_version=1)
p("xsrf_form_html version 2", "{% raw xsrf_form_html() %}", xsrf=True, xsrf_version=2)
p("xsrf_form_html version 1 from a version-2 cookie", "{% raw xsrf_form_html() %}", xsrf=True,
  xsrf_version=1, cookie=XSRF_V2_COOKIE)
p("xsrf_form_html without xsrf_cookies", "{% raw xsrf_form_html() %}", xsrf_version=1)
p("xsrf_form_html as a module", "{% module xsrf_form_html() %}", xsrf=True, xsrf_version=1)
p("xsrf_form_html through modules", "{% raw modules.xsrf_form_html() %}", xsrf=True, xsrf_version=1)
p("xsrf_form_html in a form", "<form method=\"post\">{% module xsrf_form_html() %}<input name=\"q\"></form>",
  xsrf=True, xsrf_version=1)
p("xsrf_form_html with an argument", "{% raw xsrf_form_html(1) %}", xsrf=True, xsrf_version=1)
p("xsrf_form_html twice, version 2", "{% raw xsrf_form_html() %}{% raw xsrf_form_html() %}",
  xsrf=True, xsrf_version=2)

# current_user
p("current_user logged in", "{{ current_user }}|{% if current_user %}in{% else %}out{% end %}",
  user="ann <admin>")
p("current_user none", "{{ current_user }}|{% if current_user %}in{% else %}out{% end %}|{{ current_user is None }}")
p("current_user empty", "[{{ current_user }}]|{% if current_user %}in{% else %}out{% end %}", user="")
p("current_user in an expression", "{{ (current_user or 'guest').upper() }}|{{ len(current_user) }}", user="bob")
p("current_user given as a value", "{{ current_user }}", {"current_user": "from values"}, user="header")

# request
REQ = ("{{ request.method }}|{{ request.uri }}|{{ request.path }}|{{ request.query }}|{{ request.host }}|"
       "{{ request.host_name }}|{{ request.remote_ip }}|{{ request.protocol }}|{{ request.version }}")
case("request fields", {"page.html": REQ}, query="?a=1&b=x+y")
case("request fields without a query", {"page.html": REQ})
case("request fields, escaped path", {"p\u00e9ge.html": REQ}, page="p%C3%A9ge.html")
case("request fields, escaped query", {"page.html": REQ}, query="?a=%C3%A9&b=%20+x&c")
for h in ["[::1]:8080", "EXAMPLE.com", "example.com:", "Example.COM:443", "[::1]", "a_b.example", ":80", "x:8a", "[::1]:"]:
    case(f"request fields with Host {h}", {"page.html": REQ + "|{{ static_url('app.css', include_host=True) }}"},
         host=h)
XH = REQ + "|{{ static_url('app.css', include_host=True, include_version=False) }}"
for i, (xheaders, hs) in enumerate([
        (True, {"X-Real-Ip": "10.0.0.1", "X-Scheme": "https"}),
        (True, {"X-Forwarded-For": "1.2.3.4, 5.6.7.8", "X-Forwarded-Proto": "https"}),
        (True, {"X-Forwarded-For": "2001:db8::1"}),
        (True, {"X-Real-Ip": "not an ip", "X-Scheme": "gopher"}),
        (True, {"X-Forwarded-Proto": "https, http"}),
        (True, {"X-Forwarded-Proto": "HTTPS"}),
        (True, {"X-Real-Ip": " 10.0.0.2 ", "X-Forwarded-For": "9.9.9.9"}),
        (True, {"X-Forwarded-For": "1.2.3.4,", "X-Scheme": ""}),
        (False, {"X-Real-Ip": "10.0.0.1", "X-Scheme": "https"})]):
    case(f"request fields with xheaders {i}", {"page.html": XH}, xheaders=xheaders, headers=hs)
p("request.headers", "{{ request.headers['X-Test'] }}|{{ request.headers.get('X-Nope', 'dflt') }}", header="v<1>")
p("request.headers names", "{{ 'X-Test' in request.headers }}|{{ 'X-Nope' in request.headers }}|"
  "{{ request.headers.get('Accept-Language') }}|{{ request.headers['Host'] }}|{{ request.headers.get('X-User') }}",
  header="t", lang="fr-FR", user="ann")
p("request.headers in another case", "{{ request.headers.get('x-test') }}", header="v")
p("request.arguments", "{{ request.arguments }}")
p("request.arguments of a query", "{{ list(request.arguments) }}|{{ 'a' in request.arguments }}|"
  "{{ len(request.arguments['a']) }}|{{ request.arguments.get('z') }}|{{ request.arguments['c'] == [] }}|"
  "{{ list(request.query_arguments) == list(request.arguments) }}|{{ request.body_arguments }}",
  query="?a=1&b=x+y&a=2&c=")
p("request.query_arguments", "{{ request.query_arguments }}")
p("request.arguments values", "{{ request.arguments['a'][0] }}", query="?a=1")
p("request.cookies", "{{ request.cookies }}")
p("request.cookies values", "{{ request.cookies['_xsrf'].value }}|{{ request.cookies['_xsrf'].key }}|"
  "{{ 'nope' in request.cookies }}|{{ list(request.cookies) }}|{{ request.cookies.get('nope') }}")
p("request.full_url", "{{ request.full_url() }}")
p("request.full_url with a query", "{{ request.full_url() }}|{{ handler.request.full_url() }}",
  query="?a=1&b=%20+x")
case("request.full_url behind a proxy", {"page.html": "{{ request.full_url() }}"}, xheaders=True,
     headers={"X-Forwarded-Proto": "https"}, host="Example.com:8443")
p("full_url of another value", "{{ x.full_url() }}", {"x": {"protocol": "http"}})
p("request printed", "{{ request }}")
p("request given as a value", "{{ request }}", {"request": "mine"})
p("request.body", "[{{ request.body }}]")
p("request unknown attribute", "{{ request.nope }}")

# handler
p("handler.request.path", "{{ handler.request.path }}")
p("handler.current_user", "{{ handler.current_user }}", user="u")
p("handler.get_argument", "{{ handler.get_argument('a', 'd') }}")
p("handler.get_argument of the query", "{{ handler.get_argument('a') }}|{{ handler.get_argument('a', strip=False) }}|"
  "{{ handler.get_arguments('a') }}|{{ handler.get_arguments('a', False) }}|{{ handler.get_argument('b', 'd') }}|"
  "{{ handler.get_argument('z', None) }}|{{ handler.get_argument('z', default='k') }}|"
  "{{ handler.get_query_argument('a') }}|{{ handler.get_query_arguments('b') }}|"
  "{{ handler.get_body_arguments('a') }}|{{ handler.get_body_argument('a', 'none') }}|"
  "{{ handler.get_arguments('z') }}", query="?a=+x+&a=%01y%20&b=")
p("handler.get_argument missing", "{{ handler.get_argument('a') }}")
p("handler.get_argument missing in a try",
  "{% try %}a{{ handler.get_argument('a') }}{% except %}caught{% end %}|{{ handler.get_argument('b') }}",
  query="?b=1")
case("handler.get_query_argument missing in an include",
     {"page.html": "x{% include 'inc.html' %}y", "inc.html": "{{ handler.get_query_argument('q') }}"})
case("handler.get_body_argument missing in a module Template",
     {"page.html": "x{% module Template('inc.html') %}y", "inc.html": "{{ handler.get_body_argument('a') }}"},
     query="?a=1")
p("handler and request in a list display",
  "{% set h = [handler] %}{{ h[0].get_argument('a') }}|{{ h[0].get_cookie('nope', 'd') }}|"
  "{{ [request][0].full_url() }}|{{ {'r': handler.request}['r'].full_url() }}|"
  "{{ [x for x in [handler]][0].get_arguments('a') }}|{{ [h][0][0].get_query_argument('b', 'n') }}",
  query="?a=1&a=2")
p("handler in a list display, a missing argument", "{% set h = [handler] %}{{ h[0].get_argument('b') }}",
  query="?a=1")
p("handler.get_argument with a bad keyword", "{{ handler.get_argument('a', 'd', nope=1) }}")
p("handler.get_cookie", "{{ handler.get_cookie('_xsrf') }}|{{ handler.get_cookie('nope') }}|"
  "{{ handler.get_cookie('nope', 'd') }}")
p("handler.request.headers", "{{ handler.request.headers['X-Test'] }}|{{ handler.request.uri }}", header="h",
  query="?q")
p("handler.current_user logged out", "{{ handler.current_user }}")
p("handler.settings", "{{ handler.settings['static_url_prefix'] }}")
p("handler.locale.code", "{{ handler.locale.code }}")
p("handler.xsrf_token", "{{ handler.xsrf_token }}", xsrf=True, xsrf_version=1)
p("handler.static_url", "{{ handler.static_url('app.css') }}")
p("handler.reverse_url", "{{ handler.reverse_url('story', 3) }}")

# the namespace's names given as render values (they win, as **kwargs update it)
NS = {"static_url": "s", "reverse_url": "r", "xsrf_form_html": "x", "handler": "h", "modules": "m",
      "pgettext": "p", "current_user": "c", "request": "q", "locale": "l"}
p("namespace names given as values", "|".join("{{ %s }}" % k for k in NS), NS)
for k, call in [("static_url", "static_url('app.css')"), ("reverse_url", "reverse_url('home')"),
                ("xsrf_form_html", "xsrf_form_html()"), ("_", "_('Sign in')"),
                ("pgettext", "pgettext('a', 'b')"), ("linkify", "linkify('x')"),
                ("json_encode", "json_encode(1)"), ("modules", "modules.Counter()")]:
    p(f"calling {k} given as a value", "{{ %s }}" % call, {k: "v"})
p("linkify module given as a value", "{% module linkify('http://a.b') %}", {"linkify": "v"})

# locale and _
for lang in [None, "es-LA", "es", "fr-FR,fr;q=0.8", "de", "pt-BR", "fr;q=0.1,es-LA;q=0.9", "*", "xx-YY"]:
    p(f"locale with Accept-Language {lang!r}",
      "{{ locale.code }}|{{ locale.name }}|{{ locale.rtl }}|{{ _('Sign in') }}|{{ _('Untranslated') }}|"
      "{{ _('1 file', '%(n)d files', 1) }}|{{ _('1 file', '%(n)d files', 3) % {'n': 3} }}|"
      "{{ _('Hello, %(name)s') % {'name': '<x>'} }}",
      lang=lang)
p("pgettext", "{{ pgettext('menu', 'Sign in') }}|{{ pgettext('menu', '1 file', '%(n)d files', 2) }}", lang="es-LA")
p("locale functions", "{{ locale.list(['a', 'b', 'c']) }}|{{ locale.friendly_number(1234567) }}|"
  "{{ locale.format_day(datetime, dow=False) if False else '' }}", lang="es-LA")
p("locale.format_date of a fixed date", "{{ locale.format_date(1700000000, relative=False) }}|"
  "{{ locale.format_date(1700000000, full_format=True) }}", lang="es-LA")
p("_ with a value", "{{ _(msg) }}", {"msg": "Sign in"}, lang="fr-FR")
p("_ given as a value", "{{ _ }}", {"_": "mine"})
p("locale given as a value", "{{ locale }}", {"locale": "mine"})
p("_ with a count of a string", "{{ _('1 file', '%(n)d files', '1') }}", lang="fr-FR")

# UI modules with the request's functions
p("Req module from Python", "<html><head></head><body>{% module Req() %}|{% module Req('js/app.js', n=5) %}"
  "</body></html>", user="ann", lang="es-LA")
p("Req module from its template",
  "<html><head></head><body>{% module Req('img/a b.png', n=9, template=True) %}</body></html>",
  user="<b>", lang="fr-FR", xsrf=True, xsrf_version=1)
p("Req module with prefix", "<html><head></head><body>{% module Req() %}</body></html>",
  static_url_prefix="/assets/")
p("Req module missing file", "<html><head></head><body>{% module Req('gone.css') %}</body></html>")
p("Req through modules", "<html><head></head><body>{{ modules.Req() }}</body></html>")
p("all modules with files", "<html><head><title>t</title></head><body>"
  "{% for e in entries %}{% module Entry(e, show_comments=True) %}{% end %}{% module Counter() %}"
  "{% module Assets(1) %}{% module Req() %}</body></html>", {"entries": ENTRIES})
case("Template module with static files", {
    "page.html": "<html><head></head><body>{% module Template('t.html', x=1) %}</body></html>",
    "t.html": "{{ set_resources(javascript_files=['js/app.js', 'nope.js'], css_files='app.css', "
              "embedded_css='.t {}') }}{{ static_url('app.css') }}|{{ x }}"})
case("Template module sees the request", {
    "page.html": "<html><head></head><body>{% module Template('t.html', n=2) %}</body></html>",
    "t.html": "{{ request.path }}|{{ current_user }}|{{ reverse_url('story', n) }}|{{ _('Sign in') }}|"
              "{% raw xsrf_form_html() %}|{{ locale.code }}"}, user="t", lang="es-LA", xsrf=True, xsrf_version=1)
case("Template module values hide the namespace", {
    "page.html": "{% module Template('t.html', current_user='v', request='r') %}",
    "t.html": "{{ current_user }}|{{ request }}"}, user="h")
case("Template module does not see the page's values", {
    "page.html": "{% module Template('t.html') %}",
    "t.html": "{{ x }}"}, {"x": 1})
case("include sees the request", {
    "page.html": "{% include 'i.html' %}",
    "i.html": "{{ request.path }}|{{ static_url('app.css') }}"})
case("extends sees the request", {
    "page.html": "{% extends 'b.html' %}{% block a %}{{ current_user }}{% end %}",
    "b.html": "[{% block a %}{% end %}|{{ request.uri }}]"}, user="x", query="?q=1")
case("modules inside a Template module's template add their resources", {
    "page.html": "<html><head></head><body>{% module Template('outer.html', n=1) %}|"
                 "{% module Template('outer.html', n=2) %}</body></html>",
    "outer.html": "{{ set_resources(css_files=['app.css'], html_head='<o>') }}[{% module Assets(n) %}"
                  "{% module Template('inner.html') %}{% module Counter(step=n) %}{% module Req(template=n > 1) %}]",
    "inner.html": "{{ set_resources(javascript_files='js/app.js', embedded_javascript='</script><i>', "
                  "html_body='\u00e9') }}in"}, lang="es-LA", xsrf=True, xsrf_version=1)
case("a Template module's template includes and extends", {
    "page.html": "<html><head></head><body>{% module Template('child.html', x='<x>') %}</body></html>",
    "child.html": "{% extends 'base.html' %}{% block b %}{{ set_resources(embedded_css='.c {}') }}"
                  "{{ x }}{% include 'inc.html' %}{% end %}",
    "base.html": "{{ set_resources(embedded_css='.b {}') }}<{% block b %}{% end %}>",
    "inc.html": "{{ set_resources(css_files='js/app.js') }}|{{ request.path }}"})
case("resources in a page with uppercase tags", {
    "page.html": "<HTML><HEAD></HEAD><BODY>{% module Assets() %}</BODY></HTML>"})
case("resources with a page in a module's own template", {
    "page.html": "{% module Template('full.html') %}",
    "full.html": "{{ set_resources(html_body='<b>') }}<head></head><body></body>"})
p("linkify module", "{% module linkify(t) %}|{% module linkify(t, shorten=True) %}",
  {"t": "see http://example.com/a/very/long/path/that/is/long?and=1&more=2 now"})
p("module unknown", "{% module Nope() %}")
p("module with a bad argument", "{% module Entry() %}")
p("modules unknown attribute", "{{ modules.Nope() }}")
p("Template module missing", "{% module Template('missing.html') %}")
p("Template module as modules.Template", "{{ modules.Template('x.html') }}")
case("module inserts into a page with several heads", {
    "page.html": "<head></head><head></head><body></body><body>{% module Req() %}{% module Assets() %}</body>"})
case("module resources with a query-string file", {
    "page.html": "<html><head></head><body>{% module Template('t.html') %}</body></html>",
    "t.html": "{{ set_resources(javascript_files='js/app.js?x=1', css_files=['/abs.css', 'https://h/c.css']) }}t"})

# --- random cases (fixed seed) -----------------------------------------------
rng = random.Random(20261207)
TEXT = ["a", " ", "<", ">", "&", "\"", "'", "\u00e9", "http://x.com/a?b=1&c", "www.y.org", "\n", "%",
        "/", "\u4e2d", "\U0001f600", "#", "+", "=", "?", "\\"]
# (paths cyclone percent-encodes, or refuses, are the fixed cases': see DIFFERENCES in the test)
STATIC_PATHS = ["app.css", "js/app.js", "nope.js", "empty.txt", "http://cdn/x.js", "js", "sub/"]
USER = ["a", " ", "<", "&", "\"", "'", "%", "/", "{", "#", "+", "\\"]
LANGS = [None, "es-LA", "fr-FR", "de", "es", "fr;q=0.5,es-LA;q=0.4"]


def rtext(lo=0, hi=8):
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(lo, hi)))


def rconfig():
    cfg = {}
    if rng.random() < 0.3:
        cfg["user"] = "".join(rng.choice(USER) for _ in range(rng.randint(1, 5)))
    lang = rng.choice(LANGS)
    if lang:
        cfg["lang"] = lang
    if rng.random() < 0.3:
        cfg["xsrf"] = True
        cfg["xsrf_version"] = rng.choice([1, 2])
    if rng.random() < 0.2:
        cfg["static_url_prefix"] = rng.choice(["/s/", "https://cdn.example/", "/static/"])
    return cfg


def rmodule():
    kind = rng.randrange(8)
    if kind == 0:
        return "{% module Entry(e, show_comments=" + rng.choice(["True", "False", "1", "''"]) + ") %}"
    if kind == 1:
        return "{% module Counter(" + rng.choice(["", "step=2", "step=-1", "step=10"]) + ") %}"
    if kind == 2:
        return "{% module Assets(" + ", ".join(repr(rtext(0, 3)) for _ in range(rng.randint(0, 3))) + ") %}"
    if kind == 3:
        return "{% module Req(" + repr(rng.choice(STATIC_PATHS)) + ", n=" + str(rng.randint(0, 99)) + \
            (", template=True" if rng.random() < 0.5 else "") + ") %}"
    if kind == 4:
        return "{% module linkify(" + repr(rtext(1, 6)) + (", shorten=True" if rng.random() < 0.5 else "") + ") %}"
    if kind == 5:
        return "{% module Template('r" + str(rng.randrange(3)) + ".html', v=" + repr(rtext(0, 4)) + ") %}"
    if kind == 6:
        return "{{ modules.Counter() }}"
    return "{% raw modules.Assets(1, 2) %}"


def rfunc():
    kind = rng.randrange(7)
    if kind == 0:
        return "{{ static_url(" + repr(rng.choice(STATIC_PATHS)) + ") }}"
    if kind == 1:
        return "{{ reverse_url('user', " + repr(rtext(1, 4)) + ", " + repr(rtext(1, 4)) + ") }}"
    if kind == 2:
        return "{{ _(" + repr(rng.choice(["Sign in", "Monday", rtext(1, 4)])) + ") }}"
    if kind == 3:
        return "{{ current_user }}"
    if kind == 4:
        return "{{ request." + rng.choice(["path", "uri", "query", "host", "method"]) + " }}"
    if kind == 5:
        return "{% raw xsrf_form_html() %}"
    return "{{ locale.code }}"


RFILES = {
    "r0.html": "{{ set_resources(embedded_javascript=v, css_files=['app.css']) }}<i>{{ v }}</i>",
    "r1.html": "{{ set_resources(javascript_files=['js/app.js', 'x%d.js' % len(v)], html_head='<h>') }}{{ v }}",
    "r2.html": "{{ set_resources(embedded_css=v, html_body=v) }}{% raw v %}|{{ static_url('app.css') }}",
}
for i in range(200):
    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append(rng.choice([rmodule, rfunc, lambda: rtext(0, 4)])())
    body = "".join(parts)
    shell = rng.choice(["<html><head></head><body>%s</body></html>"] * 6 + ["%s", "<head></head>%s", "<body>%s</body>"])
    case(f"random {i}", {"page.html": shell % body, **RFILES}, {"e": rng.choice(ENTRIES)}, **rconfig())


# --- run with Tornado -----------------------------------------------------------
async def run(case_, static_dir, client):
    case_dir = tempfile.mkdtemp()
    try:
        for fname, text in {**MODULE_FILES, **case_["files"]}.items():
            path = os.path.join(case_dir, fname)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        cfg = case_["config"]
        app = make_app(case_dir, static_dir, cfg, case_["values"])
        sock, port = bind_unused_port()
        server = HTTPServer(app, xheaders=cfg.get("xheaders", False))
        server.add_sockets([sock])
        headers = {"Host": cfg.get("host", HOST), "Cookie": "_xsrf=" + cfg.get("cookie", XSRF_TOKEN)}
        if "user" in cfg:
            headers["X-User"] = cfg["user"]
        if cfg.get("lang"):
            headers["Accept-Language"] = cfg["lang"]
        if "header" in cfg:
            headers["X-Test"] = cfg["header"]
        headers.update(cfg.get("headers", {}))
        try:
            r = await client.fetch("http://127.0.0.1:%d/p/%s%s" % (port, case_["page"], case_["query"]),
                                   headers=headers, raise_error=False)
        finally:
            server.stop()
            await server.close_all_connections()
        body = r.body.decode("utf-8") if r.code == 200 else ""
        return {"status": r.code, "body": unmask_v2(body)}
    finally:
        shutil.rmtree(case_dir)


async def main():
    import logging
    if not os.environ.get("DEBUG"):
        logging.disable(logging.CRITICAL)  # the 500s and missing static files log, as they should
    tdir = tempfile.mkdtemp()
    static_dir = tempfile.mkdtemp()
    try:
        for fname, text in TRANSLATIONS.items():
            with open(os.path.join(tdir, fname), "w", encoding="utf-8") as f:
                f.write(text)
        tornado.locale.load_translations(tdir)
        for fname, text in STATIC_FILES.items():
            path = os.path.join(static_dir, fname)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        client = AsyncHTTPClient()
        for c in C:
            c["tornado"] = await run(c, static_dir, client)
    finally:
        shutil.rmtree(tdir)
        shutil.rmtree(static_dir)
    names = [c["name"] for c in C]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    OUT.write_text(json.dumps({
        "tornado": tornado.version, "host": HOST, "xsrf_token": XSRF_TOKEN,
        "static_files": STATIC_FILES,
        # cyclone versions a static file by the SHA-1 of its content, Tornado by the SHA-512:
        # the test reads cyclone's as Tornado's for the same file.
        "versions": {hashlib.sha1(t.encode()).hexdigest(): hashlib.sha512(t.encode()).hexdigest()
                     for t in STATIC_FILES.values()},
        "translations": TRANSLATIONS, "module_files": MODULE_FILES,
        "cases": C}, indent=1, ensure_ascii=True) + "\n")
    ok = sum(c["tornado"]["status"] == 200 for c in C)
    print(f"{len(C)} cases ({ok} pages, {len(C) - ok} refused) from Tornado {tornado.version} -> {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
