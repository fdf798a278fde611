#!/usr/bin/env python3
"""Differential cases for cyclone's templates and escape functions.

Renders every case below with Tornado (tornado.template, tornado.escape)
and writes them, with Tornado's result, to tests/template_diff/cases.json,
which `cargo test --test template_diff` renders with cyclone and compares.

    .venv/bin/python scripts/template-diff/cases.py      # regenerate

A template case: `files` (name -> source; names ending .html/.js get
Tornado's "single" whitespace, others "all", as its Loader does), `main`
(the file rendered, default "page.html"), `values` (the render's names).
An escape case: `func` and `args`/`kwargs` of tornado.escape.
Tornado's result is {"ok": text} or {"err": "ExceptionType: message"};
for an error the test only checks that cyclone refuses too.
"""
import json
import pathlib

import tornado
from tornado import escape, template

T = []  # template cases
E = []  # escape cases


def t(name, src, values=None, main="page.txt", **files):
    files = {main: src, **{k.replace("__", "."): v for k, v in files.items()}}
    T.append({"name": name, "files": files, "main": main, "values": values or {}})


def h(name, src, values=None, **files):
    t(name, src, values, main="page.html", **files)


def e(name, func, *args, **kwargs):
    E.append({"name": name, "func": func, "args": list(args), "kwargs": kwargs})


# --- {{ }} and autoescape -------------------------------------------------
v = {"x": "<b>&\"'</b>", "n": 3, "f": 2.5, "none": None, "b": True,
     "xs": [1, "a", None], "d": {"k": "v"}}
t("expr escaped", "{{ x }}", v)
t("expr number", "{{ n }} {{ f }} {{ n / 2 }} {{ 10 / 5 }} {{ 1e16 }} {{ 0.00001 }}", v)
t("expr none bool", "{{ none }} {{ b }} {{ not b }}", v)
t("expr list dict repr", "{{ xs }} {{ d }}", v)
t("raw", "{% raw x %}", v)
t("raw expr", "{% raw x + '!' %}", v)
t("autoescape None", "{% autoescape None %}{{ x }}", v)
t("autoescape xhtml_escape", "{% autoescape xhtml_escape %}{{ x }}", v)
t("autoescape None then raw", "{% autoescape None %}{{ x }}{% raw x %}", v)
t("escape twice", "{{ escape(x) }}|{% raw escape(x) %}|{{ xhtml_escape(x) }}", v)
t("json_encode in tag", "{{ json_encode(d) }}|{% raw json_encode(x) %}", v)
t("url_escape in tag", "{{ url_escape(x) }}|{{ url_escape(x, plus=False) }}", v)
t("squeeze in tag", "[{{ squeeze('  a \\t\\n b  ') }}]", v)
t("linkify in tag", "{% raw linkify('see http://a.com/x and www.b.org') %}", v)
t("linkify kwargs", "{% raw linkify('http://example.com/a/very/long/path/that/goes/on?and=on&on=1', shorten=True, extra_params='rel=\"nofollow\"') %}", v)
t("linkify require_protocol", "{% raw linkify('www.x.com http://y.com', require_protocol=True) %}", v)
t("linkify permitted", "{% raw linkify('ftp://x.com/a http://y.com', permitted_protocols=['ftp']) %}", v)
t("len str int abs", "{{ len(x) }} {{ len(xs) }} {{ str(n) }} {{ int('42') }} {{ abs(-2) }}", v)
t("string methods", "{{ 'a,b'.split(',') }} {{ 'Ab'.upper() }} {{ ' x '.strip() }} {{ '-'.join(['a', 'b']) }}", v)
t("conditional expr", "{{ 'yes' if b else 'no' }} {{ none or 'dflt' }} {{ n and 'and' }}", v)
t("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ -2 ** 2 }} {{ 1 / 4 }} {{ 0.1 + 0.2 }}", v)
t("compare chain", "{{ 1 < n < 5 }} {{ 'a' in 'abc' }} {{ 1 in xs }} {{ none is None }} {{ 1 == 1.0 }}", v)
t("subscript slice", "{{ xs[0] }} {{ xs[-1] }} {{ x[:3] }} {{ xs[::-1] }} {{ d['k'] }}", v)
t("comprehension", "{{ [i * 2 for i in range(4) if i != 2] }} {{ {k: 1 for k in 'ab'} }}", v)
t("builtins", "{{ sorted([3, 1, 2]) }} {{ max(1, 5) }} {{ sum([1, 2]) }} {{ round(2.675, 2) }} {{ list(zip('ab', [1, 2])) }}", v)
t("format", "{{ '{:,.2f}'.format(1234.5) }} {{ '%s-%d' % ('a', 3) }} {{ format(0.5, '.0%') }}", v)
t("repr of strings", "{{ ['it\\'s', 'a\"b', '\\n', 'é'] }}", v)
t("float repr", "{{ 1e100 }} {{ 1.0 }} {{ 100.0 }} {{ 1e-5 }} {{ 123456789.0 * 10 }} {{ 2 ** 0.5 }}", v)
t("triple brace", "{{{ n }}}", v)
t("bang escapes", "{{! n }} {%! if %} {#! c #}", v)
t("bang escapes html", "a {{!x}} b", v, main="page.html")
t("comment", "a{# hidden {{ n }} #}b{% comment also hidden %}c", v)
t("empty braces text", "a { b } c {x} %} }} #}", v)
t("inf", "{{ float('inf') }}", v)
t("nan", "{{ float('nan') }}", v)
t("float overflow", "{{ 1e308 * 10 }}", v)
t("neg inf", "{{ -float('inf') }}", v)
t("undefined", "{{ nope }}", v)
t("undefined attr", "{{ d.nope }}", v)
t("unicode text", "héllo {{ 'wörld' }} 😀 {{ x }}", v)

# --- if/elif/else ----------------------------------------------------------
for n in (0, 1, 2, 5):
    t(f"if elif else n={n}", "{% if n == 1 %}one{% elif n == 2 %}two{% elif n > 4 %}big{% else %}other{% end %}", {"n": n})
t("if truthiness", "{% for v in vals %}{% if v %}T{% else %}F{% end %}{% end %}",
  {"vals": [0, 1, "", "a", [], [0], {}, {"a": 1}, None, False, True, 0.0]})
t("if and or not", "{% if a and not b or c %}y{% else %}n{% end %}", {"a": 1, "b": 0, "c": 0})
t("nested if", "{% if a %}{% if b %}ab{% else %}a{% end %}{% end %}", {"a": 1, "b": 0})

# --- for, break, continue, else --------------------------------------------
t("for list", "{% for x in xs %}[{{ x }}]{% end %}", {"xs": [1, "<", None]})
t("for dict keys", "{% for k in d %}{{ k }};{% end %}", {"d": {"b": 1, "a": 2}})
t("for items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% end %}", {"d": {"b": 1, "a": 2}})
t("for string", "{% for c in 'abc' %}{{ c }}.{% end %}")
t("for range", "{% for i in range(2, 10, 3) %}{{ i }} {% end %}")
t("for enumerate", "{% for i, x in enumerate(xs) %}{{ i }}:{{ x }} {% end %}", {"xs": ["a", "b"]})
t("for unpack", "{% for a, b in ps %}{{ a }}{{ b }} {% end %}", {"ps": [[1, 2], [3, 4]]})
t("for break", "{% for i in range(10) %}{% if i == 3 %}{% break %}{% end %}{{ i }}{% end %}")
t("for continue", "{% for i in range(6) %}{% if i % 2 %}{% continue %}{% end %}{{ i }}{% end %}")
t("for else", "{% for i in xs %}{{ i }}{% else %}empty{% end %}", {"xs": []})
t("for else after break", "{% for i in xs %}{% break %}{% else %}no{% end %}done", {"xs": [1]})
t("nested for break", "{% for i in range(3) %}{% for j in range(3) %}{% if j > i %}{% break %}{% end %}{{ i }}{{ j }} {% end %}{% end %}")
t("loop var after loop", "{% for i in range(3) %}{% end %}{{ i }}")
t("while", "{% set i = 0 %}{% while i < 3 %}{{ i }}{% set i = i + 1 %}{% end %}")
t("break outside loop", "{% break %}")
t("continue in if outside loop", "{% if 1 %}{% continue %}{% end %}")
t("for over int", "{% for x in n %}{{ x }}{% end %}", {"n": 3})

# --- set ---------------------------------------------------------------
t("set", "{% set y = 'a' * 3 %}{{ y }}")
t("set shadow", "{{ x }}{% set x = 2 %}{{ x }}", {"x": 1})
t("set then loop", "{% set total = 0 %}{% for p in ps %}{% set total = total + p %}{% end %}{{ total }}", {"ps": [1, 2, 3.5]})
t("set unpack", "{% set a, b = 1, 2 %}{{ a }}{{ b }}")

# --- include, extends, block -------------------------------------------------
t("include", "<{% include 'part.txt' %}>", {"x": "<i>"}, part__txt="[{{ x }}]")
t("include sees locals", "{% set y = 5 %}{% include 'part.txt' %}", {}, part__txt="{{ y }}")
t("include sets locals", "{% include 'part.txt' %}{{ z }}", {}, part__txt="{% set z = 7 %}")
t("include missing", "{% include 'nope.txt' %}")
t("include nested", "{% include 'a.txt' %}", {}, a__txt="a({% include 'b.txt' %})", b__txt="b")
t("extends", "{% extends 'base.txt' %}{% block body %}child{% end %}ignored",
  {}, base__txt="<{% block head %}H{% end %}|{% block body %}B{% end %}>")
t("extends nested blocks", "{% extends 'base.txt' %}{% block inner %}I2{% end %}",
  {}, base__txt="{% block outer %}O[{% block inner %}I{% end %}]{% end %}")
t("extends override outer", "{% extends 'base.txt' %}{% block outer %}X{% end %}",
  {}, base__txt="{% block outer %}O[{% block inner %}I{% end %}]{% end %}")
t("extends chain", "{% extends 'mid.txt' %}{% block a %}child{% end %}",
  {}, mid__txt="{% extends 'base.txt' %}{% block b %}mid{% end %}",
  base__txt="{% block a %}A{% end %}-{% block b %}B{% end %}")
t("extends block uses values", "{% extends 'base.txt' %}{% block b %}{{ x }}{% end %}",
  {"x": "<v>"}, base__txt="[{% block b %}{% end %}]")
t("extends autoescape in child", "{% extends 'base.txt' %}{% autoescape None %}{% block b %}{{ x }}{% end %}",
  {"x": "<v>"}, base__txt="[{% block b %}{% end %}]{{ x }}")
t("extends autoescape in base", "{% extends 'base.txt' %}{% block b %}{{ x }}{% end %}",
  {"x": "<v>"}, base__txt="{% autoescape None %}[{% block b %}{% end %}]{{ x }}")
t("block in include", "{% extends 'base.txt' %}{% block b %}C{% end %}",
  {}, base__txt="{% include 'inc.txt' %}", inc__txt="<{% block b %}I{% end %}>")
t("block plain", "a{% block b %}B{% end %}c")
t("extends inside block", "{% block b %}{% extends 'base.txt' %}{% end %}", {}, base__txt="x")
t("block without name", "{% block %}x{% end %}")

# --- apply, try ----------------------------------------------------------------
t("apply linkify", "{% apply linkify %}go to http://x.com <b>{% end %}")
t("apply xhtml_escape", "{% apply xhtml_escape %}<{{ '&' }}>{% end %}")
t("apply url_escape", "{% apply url_escape %}a b/c{% end %}")
t("apply squeeze", "{% apply squeeze %}  a   b {% end %}")
t("apply json_encode", "{% apply json_encode %}</x>{% end %}")
t("apply nested", "{% apply url_escape %}{% apply xhtml_escape %}<&>{% end %}{% end %}")
t("try except", "{% try %}a{{ nope }}b{% except %}E{% end %}")
t("try except else finally", "{% try %}a{% except %}E{% else %}L{% finally %}F{% end %}")
t("try finally error", "{% try %}{{ 1 // 0 }}{% except %}zero{% finally %}!{% end %}")
t("try without except", "{% try %}a{% end %}")

# --- whitespace ------------------------------------------------------------------
ws = "a  \t b\n   \n  c  {{ 1 }}  \n\t d {% if 1 %}  e  \n  {% end %}\n<pre>  x\n  y  </pre>  f  "
t("whitespace default txt", ws)
h("whitespace default html", ws)
t("whitespace default js", ws, main="page.js")
t("whitespace oneline", "{% whitespace oneline %}" + ws)
t("whitespace single", "{% whitespace single %}" + ws)
h("whitespace all in html", "{% whitespace all %}" + ws)
t("whitespace switch", ws + "{% whitespace oneline %}" + ws + "{% whitespace all %}" + ws)
t("whitespace bad mode", "{% whitespace nope %}x")
h("whitespace unicode", "a\u00a0\u00a0b \u3000 c\n\u2028 d")
h("whitespace include", "a  b {% include 'p.txt' %}", {}, p__txt="c   d\n  e")

# --- errors ----------------------------------------------------------------------
for name, src in [
    ("unclosed if", "{% if 1 %}x"),
    ("unclosed for", "{% for x in xs %}x"),
    ("unclosed block", "{% block b %}x"),
    ("unclosed expr", "a {{ x"),
    ("unclosed tag", "a {% if"),
    ("unclosed comment", "a {# x"),
    ("extra end", "x{% end %}"),
    ("else outside", "{% else %}"),
    ("elif after else", "{% if 1 %}{% else %}{% elif 2 %}{% end %}"),
    ("unknown directive", "{% frobnicate %}"),
    ("empty expr", "{{ }}"),
    ("empty tag", "{% %}"),
    ("bad expr", "{{ 1 + }}"),
    ("import", "{% import os %}{{ os.sep }}"),
    ("from import", "{% from os import sep %}"),
    ("module without handler", "{% module Template('x.html') %}"),
    ("extends twice", "{% extends 'a' %}{% extends 'b' %}"),
    ("include unquoted", "{% include page %}"),
    ("zero division", "{{ 1 / 0 }}"),
    ("type error", "{{ 'a' + 1 }}"),
    ("end with args", "{% if 1 %}{% end if %}"),
    ("raw empty", "{% raw %}"),
    ("set no name", "{% set = 1 %}"),
    ("lambda alone", "{{ (lambda: 1)() }}"),
]:
    t("error: " + name, src, {"xs": []})

# --- escape functions -----------------------------------------------------------
ascii_all = "".join(chr(i) for i in range(128))
e("xhtml_escape all ascii", "xhtml_escape", ascii_all)
for c in "<>&\"'":
    e(f"xhtml_escape {c}", "xhtml_escape", f"a{c}b")
e("xhtml_escape non-ascii", "xhtml_escape", "é ü 中文 😀 \u00a0 \u2028 &amp;")
e("xhtml_escape empty", "xhtml_escape", "")
for plus in (True, False):
    e(f"url_escape all ascii plus={plus}", "url_escape", ascii_all, plus=plus)
    e(f"url_escape non-ascii plus={plus}", "url_escape", "é/ü 中 😀 a+b=c&d", plus=plus)
    e(f"url_escape empty plus={plus}", "url_escape", "", plus=plus)
    for s in ["a+b%20c%2Fd", "%zz%4", "a%C3", "%E4%B8%AD+%F0%9F%98%80", "%2b+%2B", "100%", "%%41", "a%C3%28b"]:
        e(f"url_unescape {s} plus={plus}", "url_unescape", s, plus=plus)
for name, val in [
    ("dict", {"a": [1, 2.5, None, True], "b": "c"}),
    ("script end", "</script><!-- </"),
    ("non-ascii", "é中😀\u2028\u2029"),
    ("controls", "\x00\x01\x1f\x7f\t\n\r\"\\"),
    ("slash", "a/b//c"),
    ("floats", [1.0, 0.1, 1e16, 1e-5, -0.0, 1e100, 123.456, 5e-324, 1.7976931348623157e308]),
    ("ints", [0, -1, 2 ** 53, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1]),
    ("nested", {"x": {"y": [[], {}, [{"z": "</"}]]}}),
    ("key with </", {"</k>": 1}),
    ("empty string", ""),
    ("null", None),
    ("bool", False),
]:
    e(f"json_encode {name}", "json_encode", val)
for s in ["  a \t\n b  ", "\x00a\x1fb\x20", "\u00a0 a \u00a0", "a\u3000\u3000b", "", "   ", "a\x7fb", "\x0b\x0ca\x0c"]:
    e(f"squeeze {s!r}", "squeeze", s)

L = [
    "http://example.com", "https://example.com/path?q=1&r=2#frag", "www.example.com",
    "Visit www.example.com/a/b.", "(http://x.com/a)", "http://x.com/a_(b)", "see http://x.com, then",
    "mailto:a@b.c", "ftp://files.x.org/f", "javascript:alert(1)", "http://a.b/<script>",
    "x <b>http://a.com</b> y", "http://a.com&b=1", "http://é.com/ü", "HTTP://UPPER.COM",
    "http://a.com/\"q", "http://x.y/'a'", "foo:bar", "foo://bar", "a.www.b.com", "www.",
    "http://", "http://x.com/" + "a" * 60, "http://x.com/abcdefghijklmnop/qrstuvwxyz0123456789/?x=1&y=2&z=3",
    "https://very-long-host-name-example.com/", "http://x.com/a?" + "&".join(f"k{i}=v{i}" for i in range(10)),
    "www.x.com/" + "b" * 40, "http://x.co/ab.cd?ef=gh/ijklmnopqrstuvwxyz12345678", "http://x/(a)b)",
    "word.http://x.com", "1http://x.com", "_http://x.com", "http://a.com\nhttp://b.com", "http:/x", "http:///x.y",
]
for s in L:
    e(f"linkify {s!r}", "linkify", s)
    e(f"linkify shorten {s!r}", "linkify", s, shorten=True)
    e(f"linkify require_protocol {s!r}", "linkify", s, require_protocol=True)
for s in ["http://a.com www.b.com", "http://x.com/" + "c" * 50]:
    e(f"linkify extra_params {s!r}", "linkify", s, extra_params='rel="nofollow" class="x"')
    e(f"linkify extra_params spaces {s!r}", "linkify", s, extra_params="  rel=nofollow  ")
    e(f"linkify extra shorten {s!r}", "linkify", s, shorten=True, extra_params='rel="nofollow"')
for s in ["ftp://a.com http://b.com mailto:x@y.z", "foo://x bar://y www.z.com", "HTTP://a.com"]:
    e(f"linkify permitted ftp {s!r}", "linkify", s, permitted_protocols=["ftp"])
    e(f"linkify permitted many {s!r}", "linkify", s, permitted_protocols=["http", "ftp", "foo", "mailto"])
    e(f"linkify permitted none {s!r}", "linkify", s, permitted_protocols=[])


# --- more expressions ---------------------------------------------------------
EXPRS = [
    "7 / 2", "7.0 // 2", "-7.5 % 2", "5 % -3", "True + 1", "'a' * 3", "[1] * 2", "3 * 'ab'",
    "2 ** -1", "2 ** 3 ** 2", "-2 ** -1", "1 - 2 - 3", "100 / 10 / 5", "2 * 3 % 4", "not 0 == 1",
    "1 if 0 else 2 if 0 else 3", "'a' < 'b' < 'c'", "1 < 2 > 1", "[1, 2] < [1, 3]", "None == None",
    "0.1 + 0.7", "1 / 3", "2 / 3", "1e22", "1e21", "1e15", "123456789012345678 * 1.0", "9007199254740993",
    "-0.0", "0.1 * 3", "[1.5, 1e16, -0.0]", "{'a': [1, {'b': 2.0}]}", "{'a': 1}['a']",
    "'abc'[1:]", "'héllo'[1]", "len('😀')", "'😀é'[::-1]", "str(1.0)", "int(2.9)", "int(-2.9)", "int(' 42 ')",
    "int('+3')", "int('4_2')", "int(True)", "round(0.5)", "round(1.5)", "round(2.5)", "round(-0.5)",
    "round(1.25, 1)", "round(1234, -2)", "round(2.5, 0)", "'x'.center(6, '*')", "'{:>5}'.format('a')",
    "'{:05.1f}'.format(3.14159)", "'%5.2f' % 3.14159", "'%-5s|' % 'a'", "'%r' % 'a'", "'%x' % 255",
    "'%e' % 12345.678", "'%g' % 0.00001234", "'{:e}'.format(0.0)", "'{:g}'.format(1e20)",
    "'{:,}'.format(1234567)", "'{:_}'.format(1234567)", "'{!r}'.format('a')", "'{0}{1}{0}'.format('a', 'b')",
    "'{:%}'.format(0.25)", "'{:.3}'.format(3.14159)", "'{:10.3e}'.format(1234.5)", "'{:+d}'.format(5)",
    "'{:#x}'.format(255)", "'{:b}'.format(5)", "'{:c}'.format(65)", "format(1e16)", "format(1.0, '')",
    "'{}'.format(1e16)", "'%s' % 1e16", "'%s' % [1, 'a']", "'%d' % 3.7", "'%.0f' % 0.5", "'%.0f' % 1.5",
    "'%.2f' % 2.675", "'%5s|%-4d|' % ('ab', 7)", "'%%'", "'%s%%' % 5", "'%(a)s' % {'a': 1}",
    "'a b  c'.split()", "'a,b,,c'.split(',')", "'a b c'.split(None, 1)", "'a b c'.rsplit(' ', 1)",
    "'  x'.lstrip()", "'xxaxx'.strip('x')", "'hello world'.title()", "\"they're\".title()", "'ß'.upper()",
    "'İ'.lower()", "'ǅ'.swapcase()", "'hELLO'.capitalize()", "'a\\nb\\r\\nc'.splitlines()", "'abc'.find('z')",
    "'-1'.zfill(4)", "'abc'.startswith(('x', 'a'))", "'²'.isdigit()", "'½'.isdigit()", "'aaa'.replace('a', 'b', 2)",
    "'aaa'.count('aa')", "'abc'.index('b')", "'Hello'.islower()", "' '.isspace()", "''.isspace()",
    "'a\\tb'.expandtabs()" , "'abc'.rjust(5, '-')", "'abc'.ljust(2)",
    "{'x': 1}.get('x', 2)", "{'x': 1}.get('y', 2)", "{'x': 1}.get('y')", "[1, 2, 1].count(1)", "[1, 2].index(2)",
    "sorted(['b', 'A', 'a'])", "sorted([3, 1, 2], key=lambda x: -x)", "sorted([3, 1, 2], reverse=True)",
    "max([], default=0)", "sum([0.1] * 3)", "any([])", "all([])", "bool('')", "float('1.5')", "float('1e3')",
    "float('  2 ')", "repr('a')", "repr(1.0)", "chr(233)", "ord('é')", "hex(255)", "hex(-1)", "oct(8)", "bin(5)",
    "pow(2, 10)", "pow(2, -1)", "pow(2, 3, 5)", "divmod(7, -2)", "divmod(7.5, 2)", "abs(-0.0)", "list('ab')",
    "dict(a=1)", "min('b', 'a')", "max([1, 3, 2])", "sum([])", "sum([1, 2], 10)", "len({'a': 1})",
    "[x for x in range(3) for y in range(x)]", "[x + y for x, y in [[1, 2], [3, 4]]]", "{k: v for k, v in [['a', 1]]}",
    "', '.join(str(i) for i in range(3))", "[*[1, 2], 3]", "{**{'a': 1}, 'b': 2}", "'a' 'b'",
    "'\\u00e9\\x41\\101\\n'", "r'\\n'", "f'{1}'", "b'x'", "()", "(1,)", "(1, 2)", "{1: 2}", "[] == []",
    "10 ** 20", "9223372036854775807 + 1", "2 ** 63", "-2 ** 63", "1e308 + 1e308 - 1e308",
    "'%s' % None", "'%s' % True", "str(None)", "str([1.0])", "'%.3s' % 'abcdef'", "'%c' % 65",
    "'%5.1e' % 0.000123", "'%g' % 1e16", "'%g' % 123456789", "'{:g}'.format(0.0001)", "'{:.2%}'.format(1/3)",
    "'{:=+8.2f}'.format(-3.5)", "'{:^9}'.format('mid')", "'{:*<6}'.format(12)", "'{:x}'.format(-255)",
    "'{:o}'.format(8)", "'{:.0e}'.format(12345)", "'{:n}'.format(1234)", "'{:.1f}'.format(0.05)",
    "'{:.1f}'.format(0.25)", "'{:.1f}'.format(0.35)", "'{:.15g}'.format(0.1)", "'{:.17g}'.format(0.1)",
    "'{:,.3f}'.format(-1234567.891)", "'{:08,.2f}'.format(1234.5)", "'{}'.format(True)", "'{:d}'.format(True)",
    "'{:>4}'.format(True)", "'{:5}'.format(1.5)", "'{}'.format(None)", "'{}{}'.format(1)", "'{a}'.format(a=[1])",
    "'{0[1]}'.format([5, 6])", "'{0[k]}'.format({'k': 3})", "'{:{}}'.format('a', 3)",
]
for i, ex in enumerate(EXPRS):
    t(f"expr {ex}", "{{ " + ex + " }}")

v2 = {"x": "<i>"}
t("autoescape None after expr", "{{ x }}{% autoescape None %}{{ x }}", v2)
t("autoescape url_escape", "{% autoescape url_escape %}{{ 'a b' }}", v2)
t("autoescape None in include", "{{ x }}{% include 'p.txt' %}{{ x }}", v2, p__txt="{% autoescape None %}[{{ x }}]")
t("autoescape None includer", "{% autoescape None %}{{ x }}{% include 'p.txt' %}", v2, p__txt="[{{ x }}]")
t("autoescape None block in included", "{% extends 'b.txt' %}{% block a %}{{ x }}{% end %}", v2,
  b__txt="{% include 'i.txt' %}", i__txt="{% autoescape None %}({% block a %}{% end %}){{ x }}")
t("tab after operator", "{% if\tx %}y{% end %}", v2)
t("newline after operator", "{% for\nc in 'ab' %}{{ c }}{% end %}", v2)
t("no spaces", "{%if x%}{{x}}{%end%}", v2)
t("end with args", "{% if 1 %}a{% end if %}", v2)
t("else with args", "{% if 0 %}a{% else if %}b{% end %}", v2)
t("comment operator", "a{% comment %}b{% commentx %}", v2)
t("set plus equals", "{% set n = 1 %}{% set n += 2 %}{{ n }}", v2)
t("set list grow", "{% set xs = [] %}{% for i in range(3) %}{% set xs = xs + [i] %}{% end %}{{ xs }}", v2)
t("extends unquoted", "{% extends b.txt %}{% block a %}A{% end %}", {}, b__txt="[{% block a %}{% end %}]")
t("include unquoted name", "{% include p.txt %}", {}, p__txt="P")
t("include double quoted", '{% include "p.txt" %}', {}, p__txt="P")
t("block in for with break", "{% for i in range(5) %}{% block b %}{% if i == 2 %}{% break %}{% end %}{{ i }}{% end %}{% end %}")
t("apply in for with break", "{% for i in range(5) %}{% apply xhtml_escape %}{% break %}{% end %}{% end %}")
t("include with break", "{% for i in range(5) %}{% include 'p.txt' %}{% end %}", {}, p__txt="{% break %}")
t("while else", "{% set i = 0 %}{% while i < 2 %}{% set i = i + 1 %}{{ i }}{% else %}E{% end %}")
t("try in loop", "{% for i in range(3) %}{% try %}{{ 6 // i }}{% except %}Z{% end %},{% end %}")
t("try break", "{% for i in range(3) %}{% try %}{% break %}{% finally %}F{% end %}{% end %}.")
t("set in apply", "{% apply xhtml_escape %}{% set q = 1 %}{{ q }}{% end %}{{ q }}")
t("for in apply", "{% apply xhtml_escape %}{% for q in range(2) %}{{ q }}{% end %}{% end %}")
t("nested loop same var", "{% for i in range(3) %}{% for i in range(2) %}{% end %}{{ i }}{% end %}")
t("block twice same template", "{% block a %}1{% end %}{% block a %}2{% end %}")
t("block shown twice", "{% extends 'b.txt' %}{% block a %}C{% end %}", {}, b__txt="{% block a %}1{% end %}{% block a %}2{% end %}")
t("block unknown in base", "{% extends 'b.txt' %}{% block z %}Z{% end %}", {}, b__txt="[{% block a %}A{% end %}]")
t("child include blocks", "{% extends 'b.txt' %}{% include 'i.txt' %}", {}, b__txt="[{% block a %}A{% end %}]", i__txt="{% block a %}I{% end %}")
t("extends text ignored", "before{% extends 'b.txt' %}after{{ 1 }}", {}, b__txt="B")
t("child block nested", "{% extends 'b.txt' %}{% block a %}<{% block c %}c{% end %}>{% end %}", {}, b__txt="{% block a %}{% end %}{% block c %}base-c{% end %}")
t("block in if false", "{% extends 'b.txt' %}{% block a %}X{% end %}", {}, b__txt="{% if 0 %}{% block a %}A{% end %}{% end %}.")
t("block in loop", "{% for i in range(2) %}{% block a %}{{ i }}{% end %}{% end %}")
t("include in block override", "{% extends 'b.txt' %}{% block a %}{% include 'i.txt' %}{% end %}", {"x": "<"}, b__txt="[{% block a %}{% end %}]", i__txt="{{ x }}")
t("text lone brace end", "a{")
t("text brace percent end", "a{%")
t("four braces", "{{{{ 1 }}}}")
t("brace hash expr", "{{# 1 }}")
t("bang at end", "{{!")
t("bang whitespace", "a  {{!  b  }}  c")
h("bang whitespace html", "a  {{!  b  }}  c  \n  d")
t("expr with }} inside string", "{{ '}}' }}x")
t("tag with %} inside string", "{% if '%}' %}x{% end %}")
t("comment with #} inside", "{# a '#}' b #}")
h("single crlf", "a \r\n b\r\n\r\nc")
h("single only spaces", "   \n   \n   ")
t("oneline unit separators", "{% whitespace oneline %}a\x1cb\x1dc\x1ed\x1fe\x85f\u2028g\x0bh\x0ci")
h("single unit separators", "a \x1c\nb\x85 c\u2028 \nd")
h("pre chunk", "a   b <pre>  c  </pre>{{ 1 }}  d   e")
h("pre upper", "a   b <PRE>  c  </PRE>")
t("whitespace in block from other file", "{% extends 'b.html' %}{% block a %}x   y{% end %}", {}, b__html="{% whitespace all %}[  {% block a %}{% end %}  ]")
t("whitespace directive in block", "{% block a %}{% whitespace oneline %}a   b{% end %}c   d")

for name, src in [
    ("unclosed while", "{% while 0 %}"),
    ("unclosed try", "{% try %}{% except %}"),
    ("unclosed apply", "{% apply xhtml_escape %}x"),
    ("except outside try", "{% if 1 %}{% except %}{% end %}"),
    ("finally in for", "{% for x in xs %}{% finally %}{% end %}"),
    ("elif in for", "{% for x in xs %}{% elif 1 %}{% end %}"),
    ("else in block", "{% block b %}{% else %}{% end %}"),
    ("two elses", "{% if 1 %}{% else %}{% else %}{% end %}"),
    ("apply missing name", "{% apply %}x{% end %}"),
    ("apply unknown", "{% apply nothere %}x{% end %}"),
    ("extends missing path", "{% extends %}"),
    ("include missing path", "{% include %}"),
    ("include cycle", "{% include 'page.txt' %}"),
    ("set missing", "{% set %}"),
    ("if missing cond", "{% if %}x{% end %}"),
    ("for bad", "{% for x xs %}x{% end %}"),
    ("index error", "{{ [1][5] }}"),
    ("key error", "{{ {'a': 1}['b'] }}"),
    ("min empty", "{{ min([]) }}"),
    ("int bad", "{{ int('x') }}"),
    ("chr bad", "{{ chr(-1) }}"),
    ("unpack mismatch", "{% for a, b in [[1, 2, 3]] %}{% end %}"),
    ("str minus", "{{ 'a' - 'b' }}"),
    ("order mixed", "{{ 1 < 'a' }}"),
    ("none attr", "{{ None.x }}"),
    ("method on int", "{{ (1).upper() }}"),
    ("unknown function", "{{ nosuchfn(1) }}"),
    ("mod zero", "{{ 1 % 0 }}"),
    ("float div zero", "{{ 1.0 / 0 }}"),
    ("format bad", "{{ '{:d}'.format('a') }}"),
    ("percent bad", "{{ '%d' % 'a' }}"),
    ("percent too few", "{{ '%s %s' % ('a',) }}"),
    ("percent too many", "{{ '%s' % ('a', 'b') }}"),
    ("unclosed paren", "{{ (1 }}"),
    ("trailing comma call", "{{ len('a',) }}"),
    ("walrus", "{{ (y := 1) }}"),
    ("yield", "{{ (yield) }}"),
    ("semicolon", "{% set a = 1; b = 2 %}{{ b }}"),
]:
    t("error: " + name, src, {"xs": [1]})

for s in ["%ED%A0%80", "%F0%9F%98", "%F0%9F%98%80%80", "%C0%AF", "%FF", "%E4%B8", "é%41+", "%%", "%4", "+%2B+", "%f0%9f%98%80"]:
    e(f"url_unescape invalid {s}", "url_unescape", s)
e("url_escape surrogate-free astral", "url_escape", "\U0010ffff\u0000")
for s in ["\u0301http://x.com", "\u00e9http://x.com", "http://a.com\x1fb", "http://a.com\x1cb", "http://a.com\x85b",
          "http://a.com\u00a0b", "http://a.com\u2028b", "http://a.com\u200bb", "http://a.com/é\u0301",
          "a\u0301www.x.com", "٣http://x.com", "ǅhttp://x.com", "x-http://a.com", "-http://a.com",
          "http://a.com/x&amp;y", "http://a.com/x&y=1&", "http://a.com/a.b,c;d:e!f?g", "http://a.com/(x",
          "http://a.com/)", "http://a.com/[x]", "http://a.com/~u", "http://a.com/#x", "http://[::1]/",
          "https://a.com:8080/p", "http://user@a.com", "www.a", "www.a.", "wwww.x.com", "WWW.X.COM"]:
    e(f"linkify unicode {s!r}", "linkify", s)
for s in ["http://a.com/" + "x" * 25 + "&y", "http://a.com/" + "y" * 20 + "&z=1&w=2",
          "http://a.b/" + "é" * 40, "http://a.com/?" + "q" * 40, "http://a.com/ab.cdefghij/x" + "z" * 30,
          "http://" + "h" * 40 + "/p", "ftp://a.com/" + "x" * 40, "www.a.com/" + "x" * 8 + "/y" * 20,
          "http://a.com/" + "&amp;" * 10, "http://a.com/" + "x" * 22 + "&amp;" * 3, "http://a.com/abcdefghijk?x/" + "y" * 30]:
    e(f"linkify shorten long {s!r}", "linkify", s, shorten=True)
    e(f"linkify shorten ftp {s!r}", "linkify", s, shorten=True, permitted_protocols=["ftp", "http"])

# --- str predicates on characters where Unicode properties differ -------------
CHARS = ["a", "A", "1", "\u00bd", "\u00b2", "\u0663", "\u2167", "\u2460", "\u2469", "\u4e00", "\u0301", "\u0345",
         "\u093e", "\u01c5", "\u01c5a", "\u01c5A", "\u00aa", "\u02b0", "\u00df", "\u1d7d8", "\x1c", "\x1f", "\x85",
         "\u00a0", "\u200b", "\u2028", "\u3000", "_", "a1", "aA", "\u2160", "\u24d0", "\u24b6", "\U0001d7d8"]
for m in ["isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"]:
    for i, c in enumerate(CHARS):
        t(f"predicate {m} {c!r}", "{{ c.%s() }}" % m, {"c": c})

for ex in ["c.strip()", "c.split()", "c.splitlines()", "c.lstrip()", "c.rstrip()", "c.title()", "c.capitalize()",
           "c.swapcase()", "c.upper()", "c.lower()", "int(c)", "float(c)", "len(c.split())"]:
    for c in ["\x1ca\x1fb\x1d", "\x85a\u2028b\u2029", "\x0ba\x0cb\x1e", " \u00a0x\u3000", "\u01c6a b\u01c5", "\u0663\u0664",
              "\uff11\uff12", " 12 ", "\u00b2", "1_000", "ﬁx ŉ", "\u0130i\u0131", "a\u0345b", "σς Σ"]:
        t(f"str {ex} {c!r}", "{{ %s }}" % ex, {"c": c})

# --- more statements and values ------------------------------------------------
v3 = {"d": {"a": 1, "b": [2, 3]}, "ps": [[1, [2, 3]], [4, [5, 6]]], "big": 18446744073709551615,
      "neg": -9223372036854775808, "f1": 1.0, "f2": 1e-7, "f3": 123456789.123, "s0": "0", "lt": "<"}
t("autoescape None list", "{% autoescape None %}{{ [1, '<'] }} {{ {'a': '<'} }}", v3)
t("for values", "{% for v in d.values() %}{{ v }};{% end %}", v3)
t("for keys", "{% for k in d.keys() %}{{ k }};{% end %}", v3)
t("for nested unpack", "{% for a, (b, c) in ps %}{{ a }}{{ b }}{{ c }} {% end %}", v3)
t("for paren unpack", "{% for (a, b) in ps %}{{ a }}:{{ b }} {% end %}", v3)
t("values print", "{{ big }} {{ neg }} {{ f1 }} {{ f2 }} {{ f3 }} {{ s0 }}", v3)
t("truthy string zero", "{% if s0 %}T{% else %}F{% end %}", v3)
t("none less", "{{ None < 1 }}", v3)
t("except Exception", "{% try %}{{ 1 // 0 }}{% except Exception %}E{% end %}", v3)
t("except as", "{% try %}{{ 1 // 0 }}{% except Exception as e %}E{% end %}", v3)
t("except typed", "{% try %}{{ 1 // 0 }}{% except ZeroDivisionError %}E{% end %}", v3)
t("comment tag with end", "a{% comment x %}{% end %}b", v3)
t("json_encode values", "{% raw json_encode(d) %} {% raw json_encode(big) %} {% raw json_encode(f2) %} {% raw json_encode(lt + '/') %}", v3)
t("linkify quote extra", "{% raw linkify('http://a.b', extra_params='title=\"x&y\"') %}", v3)
t("linkify shorten require", "{% raw linkify('www.' + 'a' * 40 + '.com http://' + 'b' * 40 + '.com', shorten=True, require_protocol=True) %}", v3)
t("apply linkify amp", "{% apply linkify %}a & http://x.com/?a=1&b=2 <{% end %}", v3)
t("whitespace in include only", "a  b{% include 'p.txt' %}a  b", {}, p__txt="{% whitespace oneline %}c  d")
h("html includes txt", "a  b{% include 'p.txt' %}", {}, p__txt="c  d")
t("txt includes html", "a  b{% include 'p.html' %}", {}, p__html="c  d")
t("deep block chain", "{% extends 'm.txt' %}{% block x %}[{% block y %}Y{% end %}]{% end %}", {},
  m__txt="{% extends 'b.txt' %}{% block y %}mid-y{% end %}", b__txt="{% block x %}X{% end %}{% block y %}y{% end %}")
t("set in block", "{% extends 'b.txt' %}{% block a %}{% set q = 1 %}{% end %}", {}, b__txt="{% block a %}{% end %}{{ q }}")
t("include in loop uses loop var", "{% for i in range(3) %}{% include 'p.txt' %}{% end %}", {}, p__txt="{{ i }}")
t("elif chain truthy", "{% if [] %}a{% elif {} %}b{% elif '' %}c{% elif 0.0 %}d{% elif None %}e{% else %}f{% end %}")
t("dict in", "{{ 'a' in d }} {{ 1 in d }} {{ 2 in d['b'] }}", v3)
t("string escapes in expr", "{{ '<&>' }}|{% raw '<&>' %}|{{ \"'\" }}", v3)
t("len of dict values", "{{ len(d) }} {{ len(d['b']) }} {{ len('') }}", v3)
t("str of list", "{{ str(d['b']) }} {{ str(d) }}", v3)
t("nested comprehension", "{{ [[j for j in range(i)] for i in range(3)] }}", v3)
t("sorted dict items", "{{ sorted(d.items(), key=lambda kv: kv[0], reverse=True) }}", v3)
t("join generator", "{{ ','.join(k for k in d) }}", v3)
t("enumerate start", "{% for i, c in enumerate('ab', 1) %}{{ i }}{{ c }}{% end %}", v3)
t("reversed loop", "{% for c in reversed('abc') %}{{ c }}{% end %}", v3)
t("zip loop", "{% for a, b in zip('ab', 'xyz') %}{{ a }}{{ b }}{% end %}", v3)
t("while break else", "{% set i = 0 %}{% while True %}{% set i = i + 1 %}{% if i > 2 %}{% break %}{% end %}{% else %}E{% end %}{{ i }}", v3)
t("multiline expr", "{{ 1 +\n 2 }}", v3)
t("multiline tag", "{% if 1 and\n 2 %}y{% end %}", v3)
t("line count error", "a\nb\n{{ nope }}", v3)
t("expr with comment", "{{ 1 # c\n }}", v3)

# --- case mappings in context ---------------------------------------------------
for ex in ["c.title()", "c.capitalize()", "c.lower()", "c.swapcase()", "c.upper()"]:
    for c in ["\u0391\u03a3 \u0391\u03a3", "\u03a3", "\u0391\u03a3\u0391", "\u0391\u03a3'", "\u0130", "\u0149n", "\u1e9e\u00df"]:
        t(f"case {ex} {c!r}", "{{ %s }}" % ex, {"c": c})
v4 = {"x": "<i>"}
t("autoescape None inside if", "{{ x }}{% if 0 %}{% autoescape None %}{% end %}{{ x }}", v4)
t("autoescape None inside block", "{% block b %}{% autoescape None %}{% end %}{{ x }}", v4)
t("autoescape twice", "{% autoescape None %}{% autoescape xhtml_escape %}{{ x }}", v4)

# --- random inputs (fixed seed) ---------------------------------------------------
import random  # noqa: E402

rng = random.Random(20261207)
TOKENS = ["http://", "https://", "www.", "a", "b.c", "/", "?", "&", "=", "(", ")", " ", ".", ",", "\"", "'", "<",
          ">", "\u00e9", "\u0301", "ftp:", "x-y:", "//", "#", ";", ":", "\n", "_", "1", "&amp;", "mailto:", "!",
          "\u00a0", "\x1c", "\t", "%", "[", "]", "~", "-", "\u4e2d", "\U0001f600", "WWW.", "HTTP://", "@"]
for i in range(300):
    s = "".join(rng.choice(TOKENS) for _ in range(rng.randint(2, 14)))
    kw = rng.choice([{}, {"shorten": True}, {"require_protocol": True},
                     {"permitted_protocols": ["http", "ftp", "x-y", "mailto"]},
                     {"extra_params": 'rel="nofollow"', "shorten": True}])
    e(f"random linkify {i}", "linkify", s, **kw)
UCHARS = "%2541+ aZ09\u00e9/?&=#%e9%C3%A9%zz%%F0%9F%98%80"
for i in range(60):
    s = "".join(rng.choice(UCHARS) for _ in range(rng.randint(1, 12)))
    e(f"random url_unescape {i}", "url_unescape", s, plus=bool(i % 2))
for i in range(40):
    s = "".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 10)))
    e(f"random squeeze {i}", "squeeze", s)
    e(f"random url_escape {i}", "url_escape", s, plus=bool(i % 2))
    e(f"random xhtml_escape {i}", "xhtml_escape", s)
    e(f"random json_encode {i}", "json_encode", [s, {s: s}])

WS = [" ", "  ", "\t", "\n", "\r\n", "\r", "a", "b c", "\x0b", "\x0c", "\xa0", "\u2028", "\x1c", "\x85", "<pre>",
      "{{ 1 }}", "{% if 1 %}x{% end %}", "{#c#}", "{{! ", "\u3000"]
for i in range(80):
    body = "".join(rng.choice(WS) for _ in range(rng.randint(2, 16)))
    mode = ["", "{% whitespace oneline %}", "{% whitespace single %}", "{% whitespace all %}"][i % 4]
    if i % 8 < 4:
        h(f"random whitespace html {i}", mode + body)
    else:
        t(f"random whitespace txt {i}", mode + body)

FILLS = ["", "*<", ">", "^", "0=", "<", "_^"]
SIGNS = ["", "+", "-", " "]
WIDTHS = ["", "1", "8", "012"]
GROUPS = ["", ",", "_"]
PRECS = ["", ".0", ".1", ".3", ".12"]
TYPES = ["", "f", "e", "g", "%", "d", "x", "n", "E", "G", "F", "s", "b", "o", "X", "c"]
VALS = ["0", "-0.0", "1", "-7", "255", "3.14159", "-2.5", "1e16", "1e-5", "123456.789", "0.5", "2.675", "1e300",
        "True", "'ab'", "None", "12345678901234"]
for i in range(250):
    spec = rng.choice(FILLS) + rng.choice(SIGNS) + rng.choice(["", "#"]) + rng.choice(WIDTHS) + \
        rng.choice(GROUPS) + rng.choice(PRECS) + rng.choice(TYPES)
    t(f"random format {i}", "{{ '{:%s}'.format(%s) }}" % (spec, rng.choice(VALS)))
PFLAGS = ["", "-", "+", " ", "0", "#", "-0", "+0"]
PTYPES = ["s", "r", "d", "i", "f", "e", "g", "x", "X", "o", "c", "E", "G", "F", "u", "a"]
for i in range(150):
    spec = rng.choice(PFLAGS) + rng.choice(["", "1", "7", "010"]) + rng.choice(["", ".0", ".2", ".10"]) + rng.choice(PTYPES)
    t(f"random percent {i}", "{{ '%%%s' %% %s }}" % (spec, rng.choice(VALS)))
ARITH = ["+", "-", "*", "/", "//", "%", "**"]
NUMS = ["0", "1", "-1", "7", "-7", "2.5", "-2.5", "0.1", "3", "1e10", "-0.0", "True", "1e-3", "9007199254740993"]
for i in range(200):
    ex = f"{rng.choice(NUMS)} {rng.choice(ARITH)} {rng.choice(NUMS)}"
    if rng.random() < 0.4:
        ex = f"({ex}) {rng.choice(ARITH)} {rng.choice(NUMS)}"
    t(f"random arith {i}", "{{ %s }}" % ex)

# --- run with Tornado -------------------------------------------------------------
def run_template(case):
    loader = template.DictLoader(case["files"])
    try:
        return {"ok": loader.load(case["main"]).generate(**case["values"]).decode("utf-8")}
    except Exception as ex:  # noqa: BLE001 - any refusal is what is compared
        return {"err": f"{type(ex).__name__}: {ex}"}


def run_escape(case):
    func = getattr(escape, case["func"])
    try:
        return {"ok": func(*case["args"], **case["kwargs"])}
    except Exception as ex:  # noqa: BLE001
        return {"err": f"{type(ex).__name__}: {ex}"}


for c in T:
    c["kind"] = "template"
    c["tornado"] = run_template(c)
for c in E:
    c["kind"] = "escape"
    c["tornado"] = run_escape(c)
names = [c["name"] for c in T + E]
assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "template_diff" / "cases.json"
out.write_text(json.dumps({"tornado": tornado.version, "cases": T + E}, indent=1, ensure_ascii=True) + "\n")
print(f"{len(T)} template and {len(E)} escape cases from Tornado {tornado.version} -> {out}")
