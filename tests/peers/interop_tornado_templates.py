#!/usr/bin/env python3
"""Templates rendered by cyclone and by Tornado, compared byte for byte: cyclone's `render`
example against `tornado.template.Loader(dir).load(name).generate(**values)`.

    .venv/bin/python tests/peers/interop_tornado_templates.py --render target/release/examples/render

Each case is a template (or a page and the files it includes and extends) and a JSON object of
values, written to a directory of its own; the check passes when `render TEMPLATE VALUES.json`
prints exactly the bytes Tornado's `generate` returns. The cases stay inside what cyclone's engine documents as Tornado's
behaviour (`'` in escaped text is `&#x27;`, as Tornado 6.4 and later write it):
escaping, `{% raw %}`, `{% autoescape None %}`, `for`/`if`/`elif`/`else`/`set` (Python expressions:
arithmetic, comparisons, `and`/`or`/`not`, conditional expressions, subscripts, slices, lists, `len`/`str`/`int`/`abs`,
string, list and dict methods, `range` and `enumerate`, Python's builtins: `sorted`, `min`,
`max`, `sum`, `zip`, `round`, ...), `break`
and `continue`, comments, `{{!` literals, whitespace, `{% include %}`, `{% extends %}` and
`{% block %}` over two levels, whitespace by file name (`.html` pages are "single", others
"all", as Tornado's loader decides), `{% whitespace %}` and `<pre>`, and the template functions
`json_encode` (Python's `json.dumps` text: separators, `\\uXXXX`, float notation, `<\\/`), `linkify`, `{% apply %}`,
`url_escape`, `xhtml_escape`, `squeeze`.
Prints `N passed, N failed`; exits 1 on any failure.
"""

import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peerlib import Checks, check_output, parse_args  # noqa: E402

import tornado.escape  # noqa: E402
from tornado.template import Loader  # noqa: E402

CASES = [
    ("tuples: the arguments of %, loops over pairs, in, len, subscripts",
     '{{ "%s of %s" % (a, b) }}|{{ "%d%%" % (n,) }}|{{ "%s" % (xs,) }}|{{ "%5.1f|%-3s|" % (f, "x") }}|'
     '{{ "x" % () }}|{% for p, q in [(1, 2), (3, 4)] %}{{ p + q }}{% end %}|{{ 2 in (1, 2) }}|'
     '{{ len((1, 2, 3)) }}|{{ (1, 2)[1] }}|{{ ", ".join((a, b)) }}|{{ "%s-%s" % (a, (b)) }}|{{ ((1)) }}|'
     '{{ "%(a)s" % {"a": (1 if n else 2)} }}|{{ "%s/%s" % (n, n + 1) if n else "" }}|'
     '{{ ", ".join([(x) for x in (a, b)]) }}|{{ "-".join((x for x in (a, b))) }}|'
     '{% raw "%r and %s" % (a, None) %}|{{ "%x%o" % (255, 8) }}',
     {"a": "one", "b": "two", "n": 3, "f": 2.25, "xs": [1, 2]}),
    ("list comprehensions and generator expressions as a call's argument",
     '{{ [x * 2 for x in xs] }}|{{ ", ".join(u["name"] for u in users) }}|{% raw [u["name"] for u in users if u["age"] > 20] %}|{{ len([c for c in "héllo" if c != "l"]) }}|{% raw [k for k in d] %}|{{ [a + b for a, b in pairs] }}|{{ [x + y for x in xs for y in xs if x < y] }}|{{ [x for x in xs][-1] }}|{{ sum }}|{{ ",".join([str(i) for i in xs]) }}|{{ len([x for x in xs if x if x > 1]) }}|{{ [[y for y in xs if y > x] for x in xs] }}|{{ [x for x in xs] }}|{{ [x for x in []] }}|{% raw "-".join(k + "=" + str(v) for k, v in pairs2) %}|{{ [xs[i] for i in xs if i < 3] }}|{{ [x if x > 1 else 0 for x in xs] }}|{{ [x for x in xs if not x == 2 and x] }}|{% set n = [x * x for x in xs] %}{{ n }}{% for y in [x for x in n if x > 1] %}<{{ y }}>{% end %}|{{ [sum for sum in xs] }}{{ sum }}',
     {'xs': [1, 2, 3], 'users': [{'name': 'ann', 'age': 30}, {'name': 'bo', 'age': 10}], 'd': {'b': 1, 'a': 2}, 'pairs': [[1, 2], [3, 4]], 'pairs2': [['a', 1], ['b', 2]], 'sum': 's'}),
    ("dict comprehensions (string keys; a repeated key keeps its place, the last value)",
     '{% raw {k: 1 for k in ["a", "b"]} %}|{% raw {k: i for k in ["a", "b", "a"] for i in [1, 2]} %}|'
     '{% raw {u["name"]: u["age"] for u in users if u["age"] > 20} %}|{{ len({k: 1 for k in []}) }}|'
     '{% raw {str(x): x * x for x in xs}["2"] %}|{% raw {k + "!": d[k] for k in d} %}|'
     '{% set m = {a: b for a, b in pairs2} %}{% raw m %}{{ m["b"] }}',
     {'xs': [1, 2, 3], 'users': [{'name': 'ann', 'age': 30}, {'name': 'bo', 'age': 10}],
      'd': {'b': 1, 'a': 2}, 'pairs2': [['a', 1], ['b', 2]]}),
    ("Python's builtins: sorted, min, max, sum, range, enumerate, zip, reversed, dict, any, all, round, ...",
     '{{ sorted(xs) }}|{{ sorted(xs, reverse=True) }}|{{ ",".join(sorted(d)) }}|{{ min(xs) }}|{{ max(xs) }}|'
     '{{ max(3, 7.5, 5) }}|{{ min("b", "a") }}|{{ min([], default=None) }}|{{ max(d) }}|{{ sum(xs) }}|{{ sum(xs, 10) }}|'
     '{{ sum(fs) }}|{{ sum([[1], [2]], []) }}|{{ sum([True, True]) }}|{{ list(range(3)) }}|'
     '{{ [x * 2 for x in range(1, 10, 3)] }}|{{ len(range(10)) }}|{{ list(range(5, 0, -2)) }}|'
     '{% for i, x in enumerate(xs, 1) %}{{ i }}={{ x }};{% end %}|{% for a, b in zip(xs, names) %}{{ a }}{{ b }}{% end %}|'
     '{{ [i for i, x in enumerate(xs) if x == 1] }}|{{ list(reversed(xs)) }}|{{ "".join(reversed(s)) }}|'
     '{% raw list(d) %}|{% raw list("ab") %}|{% raw dict(a=1, b=2) %}|{% raw dict(d, a=0) %}|'
     '{% raw dict([["x", 1], ["y", 2], ["x", 3]], z=0) %}|{{ any(xs) }}{{ all([]) }}{{ any([]) }}{{ all([1, 0]) }}|'
     '{{ round(2.5) }} {{ round(3.5) }} {{ round(-2.5) }} {{ round(f, 2) }} {{ round(0.125, 2) }} {{ round(2.5, 0) }} '
     '{{ round(-0.4, 0) }} {{ round(1234.5, -2) }} {{ round(1250.0, -2) }} {{ round(1250.5, -2) }} {{ round(25, -1) }} '
     '{{ round(-15, -1) }} {{ round(7, 2) }} {{ round(True) }} {{ round(1e15 + 0.5) }} {{ round(1e15 + 1.5) }}|{{ bool([]) }}{{ bool("x") }}{{ bool() }}|'
     '{{ float("1.5") }} {{ float(3) }} {{ float(" -1_000.5 ") }} {{ float("1e3") }} {{ float() }}|'
     '{% raw repr(s) %} {% raw repr(q) %} {{ repr(1.0) }} {% raw repr(names) %}|{{ pow(2, 10) }} {{ pow(2, -1) }}|'
     '{{ divmod(7, -2)[0] }},{{ divmod(7, -2)[1] }},{{ divmod(7.5, 2)[1] }}|{{ chr(233) }}{{ ord("é") }} {{ hex(255) }} '
     '{{ hex(-255) }} {{ oct(8) }} {{ bin(5) }}|{{ len(list(zip(xs, "abcdef"))) }}|{{ max(len(n) for n in names) }}|'
     '{{ sum(len(n) for n in names) }}|{{ sorted([[2, 1], [1, 2], [1, 1]])[0][1] }}',
     {"xs": [3, 1, 2, 1], "d": {"b": 1, "a": 2}, "s": "héllo", "q": "it's", "f": 2.675, "fs": [0.1] * 10,
      "names": ["ann", "bob", "cy"]}),
    ("unpacking into calls: *xs and **d",
     '{% for a, b, c in zip(*rows) %}{{ a }}{{ b }}{{ c }};{% end %}|{{ max(*xs) }}|{{ max(0, *xs, 9) }}|'
     '{{ list(range(*[1, 7, 2])) }}|{{ "{} and {}".format(*pair) }}|{{ "{}{}{}".format(*s, "c") }}|'
     '{{ "{name} is {age}".format(**user) }}|{{ "{0}: {name}".format(*pair, **user) }}|'
     '{% raw dict(**user, k=1) %}|{% raw dict(x=0, **user) %}|{{ sorted(*[xs], reverse=True) }}|'
     '{{ len(list(zip(*[]))) }}|{{ sum(*[xs]) }}',
     {"rows": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "pair": ["a", "b"], "xs": [3, 1, 2],
      "user": {"name": "ann", "age": 7}, "s": "ab"}),
    ("unpacking into displays: [*xs], (*xs,), {**d}",
     '{{ [*xs] }}|{% raw [0, *xs, *"ab", 9] %}|{% raw [*user] %}|{{ list((1, *xs)) }}|{{ "%s-%s-%s" % (*pair, 1) }}|'
     '{% raw {**user, "k": 1} %}|{% raw {"age": 0, **user} %}|{% raw {**user, "name": "bo"} %}|'
     '{{ len([*rows[0], *rows[1]]) }}|{{ [x * 2 for x in [*xs, 4]] }}|{{ max([*xs, 9, *[]]) }}|'
     '{% for k, v in {**user, **{"k": 2}}.items() %}{{ k }}={{ v }};{% end %}',
     {"rows": [[1, 2, 3], [4, 5, 6]], "pair": ["a", "b"], "xs": [3, 1, 2],
      "user": {"name": "ann", "age": 7}}),
    ("functions as arguments: sorted/min/max key= (lambda, builtin, str method), map, filter",
     '{% for u in sorted(users, key=lambda u: u.age) %}{{ u.name }};{% end %}|'
     '{% raw [u.name for u in sorted(users, key=lambda u: (u.age, u.name), reverse=True)] %}|'
     '{% raw [u["name"] for u in sorted(users, key=lambda u: u["name"].lower())] %}|'
     '{{ max(users, key=lambda u: u.age).name }}|{{ min(users, key=lambda u: u.age).name }}|'
     '{{ max(ws, key=len) }}|{{ min(xs, key=abs) }}|{{ max(3, -4, key=abs) }}|{{ max([], key=len, default=0) }}|'
     '{% raw sorted(ws, key=str.lower) %}|{% raw sorted(ws, key=len, reverse=True) %}|'
     '{{ ", ".join(map(str.upper, ws)) }}|{{ list(map(lambda a, b: a * b, xs, [1, 2])) }}|'
     '{{ ",".join(map(str, xs)) }}|{% raw list(filter(None, [0, 1, "", "x"])) %}|'
     '{{ list(filter(lambda x: x > 0, xs)) }}|{{ list(map(lambda x: x + n, xs)) }}|'
     '{{ sum(map(lambda u: u.age, users)) }}|{{ [f for f in sorted(xs, key=lambda x: -x)] }}',
     {"users": [{"name": "bo", "age": 30}, {"name": "Ann", "age": 25}, {"name": "cy", "age": 30}],
      "xs": [3, -1, 2], "ws": ["bb", "A", "ccc"], "n": 10}),
    ("methods of strings, lists and dicts: keys/values/items, split/rsplit with maxsplit, find, zfill, center, is*, ...",
     '{% raw sorted(d.keys()) %}|{{ sum(d.values()) }}|{% for k, v in d.items() %}{{ k }}{{ v }}{% end %}|'
     '{% raw [k for k, v in d.items() if v > 1] %}|{{ len(d.items()) }}|{{ d.get("z", 0) }}|{{ xs.count(1) }}|{{ xs.index(2) }}|'
     '[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ "xxaxyx".strip("xy") }}][{{ "--a--".lstrip("-") }}]|'
     '{{ s.swapcase() }}|{{ u.title() }}|{% raw s.split(None, 1) %}|{% raw s.rsplit(None, 1) %}|{% raw s.split() %}|'
     '{% raw t.split(",", 1) %}|{% raw t.rsplit(",", 1) %}|{% raw t.rsplit(",") %}|{% raw ml.splitlines() %}|'
     '{{ s.count("l") }} {{ "aaaa".count("aa") }} {{ "ab".count("") }}|{{ u.find("w") }} {{ u.find("ö") }} {{ u.rfind("l") }} '
     '{{ u.find("z") }} {{ u.index("o") }} {{ u.rindex("l") }}|{{ n.zfill(6) }} {{ "7".zfill(3) }} {{ "abc".zfill(2) }}|'
     '[{{ "ab".center(7, "*") }}][{{ "ab".center(6, "*") }}][{{ "abc".center(6) }}][{{ "ab".ljust(5, "-") }}]'
     '[{{ "ab".rjust(5) }}][{{ "é".rjust(3, "ü") }}]|{{ "123".isdigit() }}{{ "".isdigit() }}{{ "1a".isdigit() }}'
     '{{ u.replace(" ", "").isalpha() }}{{ "ab1".isalnum() }}{{ " ".isspace() }}{{ "ab1".islower() }}{{ "1".islower() }}'
     '{{ "AB".isupper() }}|{{ "aaaa".replace("a", "b", 2) }}|{{ "abc".startswith(("x", "a")) }}{{ "abc".endswith(("x", "y")) }}|'
     '{{ "-".join("abc") }}|{{ ", ".join(sorted(w.capitalize() for w in u.split())) }}',
     {"xs": [3, 1, 2, 1], "d": {"b": 1, "a": 2}, "s": "  Hello World  ", "t": "a,b,,c", "n": "-42",
      "u": "héllo wörld", "ml": "a\nb\r\nc\n\nd"}),
    ("powers: **, right to left and tighter than a unary minus on its left",
     "{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ -2 ** 2 }}|{{ (-2) ** 2 }}|{{ 2 ** 3 ** 2 }}|{{ 2.5 ** 2 }}|"
     "{{ 4 ** 0.5 }}|{{ n ** 2 }}|{{ True ** 3 }}|{{ 1 ** 100000000000 }}|{{ (-1) ** 100000000001 }}|"
     "{{ 0 ** 0 }}|{{ 10 ** 18 }}|{{ 2 ** 0.5 }}|{{ (-8) ** 2.0 }}|{{ 0.0 ** 0 }}|{{ 3 * 2 ** 2 }}|"
     "{{ -n ** -2 }}|{{ 2 ** 63 - 1 }}|{% if n ** 2 > 8 %}big{% end %}|{{ 0 ** 5 }}|{{ (-3) ** 3 }}|"
     "{{ 10 ** -2 }}|{{ f ** n }}",
     {"n": 3, "f": 1.5}),
    ("string literals with Python's backslash escapes",
     r"""{{ "a\"b" }}|{% raw 'it\'s' %}|{% raw "x\ty\n" %}|{{ len("\x41\u00e9\U0001F600\101\\") }}|"""
     r"""{% raw "\x41\u00e9\U0001F600\101\0\\" %}|{% raw "\d\q" %}|{{ "\a\b\f\v\r" == "\x07\x08\x0c\x0b\x0d" }}|"""
     r"""{% set s = "<\"x\">" %}{{ s }}|{% raw json_encode("tab\there") %}|{% raw "\'" + '\"' %}""",
     {}),
    ("percent formatting and dict displays",
     '{{ "%(n)s files" % {"n": n} }}|{{ "%(who)s has %(n)d" % d }}|{{ "%s!" % name }}|{{ "%d%%" % n }}|'
     '{{ "%5d|" % n }}{{ "%-5d|" % n }}{{ "%05d" % neg }}|{{ "% d" % n }}|{{ "%+d" % neg }}|{{ "%.2f" % f }}|'
     '{{ "%f" % n }}|{{ "%x" % 255 }}|{{ "%#X" % 255 }}|{{ "%#o" % 8 }}|{{ "%s" % t }}|{{ "%s" % none }}|'
     '{{ "%d" % t }}|{{ "%d" % f }}|{{ "%d" % -2.7 }}|{{ "%.3s" % name }}|{{ "%8.3f|" % f }}|'
     '{{ "%-8s|" % name }}|{{ "%(n)05.1f" % d }}|{{ "abc" % d }}|{{ "abc" % xs }}|{{ {}  }}|'
     '{{ {"k": name}["k"] }}|{{ "%(who)s" % {"who": "<b>"} }}|{{ "%.0f" % 0.5 }}|{{ "%.0f" % 1.5 }}|'
     '{{ "%.2f" % -0.001 }}|{{ "%.1f" % -0.0 }}|{{ "%d" % -0.3 }}|{{ "%x" % neg }}|{{ "%+.1f" % f }}|'
     '{{ "%.3d" % n }}|{{ "%s" % "é" }}|{{ "%(n)s-%(n)s" % d }}|{{ "%%(n)s" % d }}|'
     '{% raw "%r %s" % {"a": 1} if False else "%r" % name %}|{% raw {"a": 1, "b": [1, 2], "a": 3} %}|'
     '{{ "%d" % 1e300 }}|{{ "%08.3f" % neg }}|{{ "%-+6d|" % n }}',
     {"n": 3, "f": 2.5, "neg": -7, "name": "Ana", "d": {"n": 2, "who": "Bo"}, "xs": [1, "a"],
      "t": True, "none": None}),
    ("escaped and raw text",
     "<p>{{ who }}</p>{% raw who %}|{{ n }}|{{ s.x }}",
     {"who": "<b>Tom & \"Jerry\"</b>", "n": 42, "s": {"x": "a>b"}}),
    ("a loop with an index path and a nested loop",
     "{% for row in rows %}[{{ row.name }}:{% for c in row.cells %}{{ c }},{% end %}]{% end %}",
     {"rows": [{"name": "r1", "cells": [1, 2]}, {"name": "<r2>", "cells": []}]}),
    ("if / elif / else with Python truthiness",
     "{% for v in vals %}{% if v %}T{% elif other %}O{% else %}F{% end %}{% end %}",
     {"vals": [0, 1, "", "x", [], [0], {}, {"a": 1}, 0.0, 2.5], "other": ""}),
    ("set, break and continue",
     "{% set greeting = hello %}{{ greeting }}:{% for x in xs %}{% if x.stop %}{% break %}{% end %}"
     "{% if not x.n %}{% continue %}{% end %}{{ x.n }}{% end %}",
     {"hello": "hi", "xs": [{"n": 1, "stop": 0}, {"n": 0, "stop": 0}, {"n": 2, "stop": ""},
                            {"n": 3, "stop": 1}, {"n": 4, "stop": 0}]}),
    ("loops over a string's characters and an object's keys and items",
     "{% for c in s %}[{{ c }}]{% end %}|{% for k in d %}{{ k }},{% end %}|"
     "{% for k, v in d.items() %}{{ k }}={{ v }};{% end %}|{% for v in d.values() %}{{ v }}{% end %}",
     {"s": "hé<\U0001F600", "d": {"b": 1, "a": "x<"}}),
    ("set and loop variables outlive their blocks, as Python locals",
     "{% set n = zero %}{% for i in xs %}{% set n = i %}{% end %}{{ n }}|"
     "{% for i in xs %}{% set last = i %}{% end %}{{ last }}|{{ i }}|"
     "{% if xs %}{% set j = first %}{% end %}{{ j }}",
     {"zero": 0, "xs": [1, 2, 3], "first": "f"}),
    ("set takes Python literals",
     "{% set a = 0 %}{% set b = -3 %}{% set c = 2.5 %}{% set d = 1e16 %}{% set e = .5 %}"
     "{% set f = \"it's\" %}{% set g = '' %}{% set h = True %}{% set i = None %}{% set k = False %}"
     "{% raw a %}|{{ b }}|{{ c }}|{{ d }}|{{ e }}|{% raw f %}|[{{ g }}]|{{ h }}|{{ i }}|"
     "{% if a %}T{% else %}F{% end %}{% if h %}T{% end %}{% if k %}T{% else %}F{% end %}{% if not i %}N{% end %}",
     {}),
    ("if and elif conditions: comparisons, in, is, and, or, not, parentheses",
     "".join("{%% if %s %%}T{%% else %%}F{%% end %%}" % c for c in [
         "n == 3", "n == 3.0", "t == 1", "no == 0", "n != 3", "f > 2", "f >= 2.5", "n < f",
         "1 < n < 5", "1 < n < 2", "s == 'abc'", "s != \"abd\"", "s < 'abd'", "'b' in s",
         "'z' not in s", "2 in xs", "'x' in xs", "3 in xs", "'k' in d", "'z' in d", "1 in d",
         "nil is None", "nil is not None", "n is None", "t is True", "no is False",
         "not n == 4", "n == 3 and s", "n == 4 or s", "not (n == 4 or e)", "e or nil or no",
         "(n == 3) == True", "u.name == 'ann' and u.age >= 18", "big > n", "d.m is None",
         "xs == ys", "xs < zs", "d == d2", "'é' < 'z' < '\U0001F600'", "no and missing",
         "t or missing"])
     + "|{% for x in xs %}{% if x == 1 %}one{% elif x == 'x' and x in 'xyz' %}in{% else %}{{ x }}{% end %},{% end %}",
     {"n": 3, "f": 2.5, "s": "abc", "e": "", "t": True, "no": False, "nil": None,
      "xs": [1, 2, "x"], "ys": [1, 2, "x"], "zs": [1, 3], "d": {"k": 1, "m": None},
      "d2": {"m": None, "k": 1.0}, "big": 18446744073709551615, "u": {"name": "ann", "age": 30}}),
    ("Python subscripts in paths, everywhere a path goes",
     "{{ d['k'] }}|{{ d[\"n\"]['list'][0] }}|{{ d['n']['list'][-1] }}|{{ xs[1][0] }}|{{ xs[-1][-2] }}|"
     "{{ d['0'] }}|{{ d[''] }}|{% for r in rows %}{{ r['name'] }}{% end %}|"
     "{% for x in d['n']['list'] %}{{ x }},{% end %}|{% set y = xs[0] %}{{ y[1] }}|"
     "{% if d['k'] == 'v' and xs[0][0] < xs[1][ 0 ] %}ok{% end %}|{{ url_escape(d['k']) }}|{{ xs[-0][0] }}",
     {"d": {"k": "v", "n": {"list": [10, 20, 30]}, "0": "zero", "": "empty"},
      "xs": [[1, 2], [3, 4]], "rows": [{"name": "a"}, {"name": "b"}]}),
    ("len in {{ }} and in conditions",
     "{{ len(xs) }}|{{ len(d) }}|{{ len(s) }}|{{ len('abc') }}|{% if len(xs) > 2 %}many{% end %}|"
     "{% if not len(e) %}empty{% end %}|{% if len(s) == 6 and len(d) < len(xs) %}ok{% end %}|"
     "{% if len(xs) == 3 == len('abc') %}chain{% end %}|{% if (len(xs) > 1) is True %}yes{% end %}",
     {"xs": [1, 2, 3], "d": {"a": 1, "b": 2}, "s": "h\u00e9llo\U0001F600", "e": [], "n": 5}),
    ("Python expressions in {{ }}: arithmetic, and/or values, conditional, subscripts, calls",
     "|".join("{{ %s }}" % e for e in ["n + 1", "n - 1", "n * 2", "n / 2", "n // 2", "n % 3", "m // 2", "m % 5", "n % -3", "-n", "- m", "-f", "f * 2", "f / 0.5", "f // 1", "f % 1", "7.5 % 2", "-7.5 % 2", "n + f", "s + 'c'", "s * 3", "3 * s", "xs + ys", "ys * 2", "name or 'anonymous'", "e or 'empty'", "s and 'yes'", "e and 'no'", "n > 2 and n", "not n", "t + 1", "n == 7 or x", "xs[i]", "xs[-i]", "xs[i + 1]", "d[key]", "d['j'] * 10", "s[0]", "s[-1]", "rows[i].name", "rows[0]['name']", "len(xs) - 1", "str(n) + s", "int('42') + 1", "int(f)", "int(' -8 ')", "abs(m)", "abs(-f)", "str(t)", "str(name)", "str(xs)", "url_escape(s + ' x')", "json_encode(d)", "escape('<' + s)", "squeeze('  a  b ')", "(n + 1) * 2", "n + 1 * 2", "2 * (3 + 4) - 1", "10 - 2 - 3", "100 // 7 // 2", "1 + 2 == 3", "n if t else m", "'active' if s == 'ab' else ''", "'a' if e else 'b' if n > 5 else 'c'", "(n if not t else m) + 1"]),
     {"n": 7, "m": -3, "f": 2.5, "s": "ab", "e": "", "name": None, "xs": [10, 20, 30], "ys": [1],
      "d": {"k": "v", "j": 2}, "i": 1, "key": "k", "t": True, "big": 9007199254740993,
      "rows": [{"name": "a", "n": 1}, {"name": "b<", "n": 2}]}),
    ("set and for with expressions, range and enumerate",
     "{% set total = n * 2 + 1 %}{{ total }}|{% for i in range(n) %}{{ i }}{% end %}|"
     "{% for i in range(1, n + 1) %}{{ i }}{% end %}|{% for i in range(10, 0, -3) %}{{ i }},{% end %}|"
     "{% for i in range(0) %}x{% else %}none{% end %}|{% for i, x in enumerate(xs) %}{{ i + 1 }}.{{ x }} {% end %}|"
     "{% for i, k in enumerate(d) %}{{ i }}{{ k }}{% end %}|{% for i, c in enumerate(s) %}{{ i }}{{ c }}{% end %}|"
     "{% for i in range(len(xs)) %}{{ xs[i] }}{% end %}|{% for x in xs + more %}{{ x }}{% end %}|"
     "{% for x in more if False else xs %}{% end %}{% set label = 'many' if n > 2 else 'few' %}{{ label }}|{{ i }}{{ x }}",
     {"xs": ["a", "b", "c"], "n": 3, "d": {"k": 1, "j": 2}, "s": "h\u00e9", "more": ["d"]}),
    ("slices, lists and the methods of str and dict, escaped",
     "|".join("{{ %s }}" % e for e in ["s[:5]", "s[6:]", "s[-5:]", "s[::-1]", "s[1:8:2]", "s[-3:-1]", "s[100:]", "s[:-100]", "xs[1:3]", "xs[::2]", "xs[::-2]", "xs[-2:]", "xs[:0]", "xs[3:1:-1]", "xs[None:2]", "[1, 'a', None]", "len([1, 2, 3])", "2 in [1, 2]", "[]", "[1,]", "['a'] + words", "s.upper()", "s.lower()", "t.strip()", "name.title()", "t.title()", "name.capitalize()", "e.capitalize()", "s.startswith('Hell')", "s.endswith('x')", "s.replace('o', '0')", "s.replace('', '-')", "s.split()", "s.split('o')", "', '.join(words)", "'-'.join(s.split())", "d.get('k')", "d.get('z')", "d.get('z', 'dflt')", "d.get('n', 'x')", "d.get('k').upper()", "s.lower().split()[1]", "name.split(' ')[0].title()", "'%s' if s else ''"]),
     {"s": "Hello World", "t": "  they're bill's friends  ", "xs": [1, 2, 3, 4, 5],
      "words": ["a", "b", "c"], "d": {"k": "v", "n": None}, "name": "ada lovelace", "e": ""}),
    ("linkify, raw as Tornado's pages print it",
     "".join("{%% raw linkify(t%d) %%}|" % i for i in range(12)),
     {"t%d" % i: c for i, c in enumerate(["see http://example.com/a?b=1&c=2 now", "www.example.com/path.", "ftp://files.example.com/x and javascript:alert(1)", "<b>https://x.y/z</b>", "(http://a.b/c_(d)) end", "mailto:me@example.com", "no links here", "http://example.com/\"quoted\"", "ünïcode http://пример.рф/путь, ok", "a http://x.y/1.b http://x.y/2!", "https://example.com:8080/a#frag;", ""])}),
    ("keyword arguments: url_escape(plus=) and linkify's options",
     "{{ url_escape(q, plus=False) }}|{{ url_escape(q, plus=True) }}|{{ url_escape(q, plus=0) }}|"
     + "".join("{%% raw linkify(t%d, shorten=True) %%}|" % i for i in range(8))
     + "{% raw linkify(t0, extra_params='rel=\"nofollow\" class=\"x\"') %}|"
     "{% raw linkify(t0, extra_params='  ') %}|{% raw linkify(t1, require_protocol=True) %}|"
     "{% raw linkify(t2, permitted_protocols=['http', 'ftp']) %}|{% raw linkify(t2, permitted_protocols='ftps') %}|"
     "{% raw linkify(t3, shorten=True, extra_params='target=\"_blank\"', require_protocol=False,) %}",
     {"q": "a b/c?d=\u00e9&~",
      "t%d" % 0: "see http://example.com/a?b=1&c=2 now",
      "t1": "www.example.com/a/very/long/path/that/goes/on/and/on?x=1&y=2",
      "t2": "ftp://files.example.com/pub/some/really/long/directory/name/file.tar.gz and https://x.y/z",
      "t3": "https://example.com/articles/2024/05/a-rather-long-slug-for-an-article.html?utm_source=x&amp=y",
      "t4": "http://example.com/&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&",
      "t5": "http://a.b/",
      "t6": "https://example.com/abcdefghijklmnopqrstuvwxyz0123456789",
      "t7": "http://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/\u043f\u0443\u0442\u044c/\u0434\u043b\u0438\u043d\u043d\u044b\u0439/\u0430\u0434\u0440\u0435\u0441/\u0441\u0442\u0440\u0430\u043d\u0438\u0446\u044b"}),
    ("while loops: set, break, continue and else",
     "{% set i = 0 %}{% while i < 3 %}{{ i }}{% set i = i + 1 %}{% end %}|{{ i }}|"
     "{% set i = 0 %}{% while i < 10 %}{% set i = i + 1 %}{% if i == 2 %}{% continue %}{% end %}"
     "{% if i == 5 %}{% break %}{% end %}{{ i }}{% else %}E{% end %}|{{ i }}|"
     "{% set i = 0 %}{% while i < 2 %}{% set i = i + 1 %}{{ i }}{% else %}done{% end %}|"
     "{% while False %}x{% else %}never{% end %}|{% set m = n %}{% while m %}{{ m }}{% set m = m - 1 %}{% end %}",
     {"n": 3}),
    ("try / except / else / finally: partial output kept, flow through finally",
     "{% try %}a{{ missing }}b{% except %}E{% end %}|"
     "{% try %}a{{ 1 // 0 }}b{% except %}E{% else %}L{% finally %}F{% end %}|"
     "{% try %}ok{% except %}E{% else %}L{% finally %}F{% end %}|{% try %}ok{% finally %}F{% end %}|"
     "{% for x in xs %}{% try %}{{ 10 // x }}{% except Exception %}!{% end %},{% end %}|"
     "{% for x in xs %}{% try %}{% if x == 0 %}{% break %}{% end %}{{ x }}{% finally %}f{% end %}{% end %}|"
     "{% for x in xs %}{% try %}{% if x == 0 %}{% continue %}{% end %}{{ x }}{% except %}E{% else %}l{% end %}{% end %}|"
     "{% try %}{% try %}{{ d['k'] }}{% finally %}in{% end %}{% except %}out{% end %}|"
     "{% try %}{{ xs[9] }}{% except BaseException %}caught{% end %}|"
     "{% try %}{% set y = 1 %}{{ nope }}{% except %}{{ y }}{% end %}|"
     "{% try %}{{ int('x') }}{% except %}value{% end %}|{% try %}{{ 'a' + 1 }}{% except %}type{% end %}",
     {"xs": [1, 0, 5], "d": {}}),
    ("apply: linkify, escape and url_escape of the body; the body's names are its own",
     "{% apply linkify %}{{ name }} says {{ msg }}{% end %}|{% apply xhtml_escape %}<b>{{ name }}</b>{% end %}|"
     "{% apply url_escape %}a b&{{ x }}{% end %}|{% apply escape %}{% for i in xs %}<{{ i }}>{% end %}{% end %}|"
     "{% set y = 1 %}{% apply url_escape %}{% set y = 2 %}{{ y }}{% end %}{{ y }}|"
     "{% for i in xs %}{% apply url_escape %} {{ i }} {% end %}{% end %}",
     {"name": "<Ann>", "msg": "see www.x.y now", "xs": [1, 2], "x": "X"}),
    ("for ... else",
     "{% for x in empty %}{{ x }}{% else %}none{% end %}|{% for x in one %}{{ x }}{% else %}none{% end %}",
     {"empty": [], "one": ["only"]}),
    ("comments, literals and whitespace kept as written",
     "a {# a comment #} b\n  {% comment ignored %}c\t\n{{! not a tag }} {%! nor this %} {#! or this #}\n\n  end  ",
     {}),
    ("autoescape None",
     "{% autoescape None %}{{ html }} {{ xhtml_escape(html) }}",
     {"html": "<i>&amp;</i>"}),
    ("json_encode: Python's json.dumps text",
     "<script>var s = {% raw json_encode(state) %};</script>{{ json_encode(state) }}",
     {"state": {"user": "ann</script>", "n": 2, "f": [0.5, 1e16, 1.5e-05, 100.0, -0.0, 123456789.125],
                "u": "é\u2028\U0001F600\x7f", "nested": {"a": [], "b": {}, "c": [None, True, False]}}}),
    ("json_encode of a string and of a literal",
     "{% raw json_encode(s) %} {% raw json_encode(\"</\") %} {{ json_encode(s) }}",
     {"s": "a\nb\"c\\d</e>"}),
    ("url_escape, xhtml_escape and squeeze",
     "<a href=\"/s?q={{ url_escape(q) }}\">{{ squeeze(q) }}</a>{{ xhtml_escape(q) }}{% raw squeeze(pad) %}",
     {"q": " fish  &\tchips/é+? ", "pad": "\n  a \t\x01 b  \n"}),
    ("numbers printed as Python's str prints them",
     "{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}|{{ f }}|{{ big }}|{{ neg }}|{% raw g %}",
     {"a": 2.5, "b": 1e16, "c": 1e-05, "d": 100.0, "e": 0.1, "f": -0.0, "big": 12345678901234567890,
      "neg": -3, "g": 0.30000000000000004}),
    ("booleans, None, lists and dicts printed as Python's str prints them",
     "{{ t }}|{{ f }}|{{ n }}|{% raw xs %}|{% raw d %}|{% raw q %}",
     {"t": True, "f": False, "n": None, "xs": [1, "a", None, True, 2.5, 1e16, [], {}],
      "d": {"k": "v", "it's": ["say \"hi\"", "both ' and \""]},
      "q": ["tab\there\n", "back\\slash", "\x00\x7f\x80\xa0\xad\u00e9\u2028\u200b\ufeff\ue000",
            "\U0001F600\U000e0020\u4e2d"]}),
    ("non-ASCII text and names",
     "{{ título }} — {{ emoji }}",
     {"título": "Ünïcödé <ok>", "emoji": "\U0001F600"}),
]


# Cases of several files: (title, {file name: text}, the page to render, values).
# format(value, spec) over a grid of values and format specs (fill, alignment, sign, z, #, 0,
# width, grouping, precision, every presentation type), a spec Python refuses printing ERR on both
# sides; then str.format's fields and "%" with e and g.
FORMAT_VALUES = [0, 1, -1, 42, -1234567, 255, 10**15, True, 0.0, -0.0, 1.0, -1.5, 2.5, 0.1, 12.0,
                 1234.5, -1234.5678, 1e-05, 1e16, 123456789.125, 9.9999, "ab", "h\u00e9llo", "", None,
                 [1, "a"]]
FORMAT_SPECS = ["", "5", "<5", ">6", "^7", "*^7", "05", "+", " ", ",", "_", "010,", "012,.2f", "d", "x",
                "#010x", "X", "#o", "_b", "c", ".2e", "E", ".0f", "#.0f", "+.1f", "g", ".3g", "#.3g", "G",
                ".1", ".2", ".10", ".1%", ".2s", "=+8", "0=8", "z.1f", ",.2f", "n", ".0e", "#.0e",
                "x>+08.2f", "015,.3f", "<07"]
CASES.append((
    "format(value, spec): %d values x %d specs, as Python's format-spec mini-language"
    % (len(FORMAT_VALUES), len(FORMAT_SPECS)),
    "".join("{%% try %%}{%% raw format(vs[%d], ss[%d]) %%}{%% except %%}ERR{%% end %%};" % (i, j)
            for i in range(len(FORMAT_VALUES)) for j in range(len(FORMAT_SPECS))),
    {"vs": FORMAT_VALUES, "ss": FORMAT_SPECS}))
CASES.append((
    "str.format: automatic and numbered fields, keywords, [index] and .name, !r !s !a, nested specs; "
    "%e and %g",
    "".join("{%% try %%}{%% raw %s %%}{%% except %%}ERR{%% end %%};" % e for e in [
        '"{} and {}".format(s, n)', '"{0}{1}{0}".format(s, n)', '"{x}-{y}".format(x=1, y=s)',
        '"{:>{w}}".format(s, w=w)', '"{0:{1}}".format(n, ",.1f")', '"{!r} {!s} {!a}".format(s, s, s)',
        '"{0[1]} {0[2][0]}".format(xs)', '"{d[k]} {d.n}".format(d=d)', '"{{}} {{{}}}".format(1)',
        '"{:,}".format(1234567)', '"{:.2{}}".format(0.256, "%")', '"{0!r:>12}".format(s)',
        '"{:*^9}".format("mid")', '"{}".format(xs)', '"{}".format(None)', '"{}".format(True)',
        '"{:d}".format(True)', '"{n:08.2f}".format(n=-3.14159)', '"{} {}".format(1)',
        '"{0} {}".format(1, 2)', '"{} {0}".format(1, 2)', '"}".format()', '"{".format()',
        '"{:q}".format(1)', '"{x}".format(y=1)', '"{0[5]}".format(xs)', '"{0!z}".format(1)',
        '"{:{}{}}".format(s, ">", 9)', '"{:.{}f}".format(3.14159, 2)', '"{:,.0f}".format(1e6)',
        '"{:=+6}".format(5)', 'format(1234.5, ",.2f")', 'format(42)', 'format(xs)',
        '"%e|%.2e|%E|%g|%.3g|%#g|%G|%10.2e|%-10.3g|%+g|%010.3g|%.0e|%#.0e" % '
        '(n, n, tiny, n, big, 0.0, big, n, tiny, n, n, big, n)',
        '"%g %g %g %g" % (0, -0.0, 1e16, 0.0001)']),
    {"s": "h\u00e9llo", "n": 1234.5678, "xs": [1, "a", [2, 3]], "d": {"k": "v", "n": 2}, "w": 8,
     "tiny": 1e-05, "big": 123456789.0}))

FILE_CASES = [
    ("Tornado's chat demo: module Template with keyword arguments, module linkify",
     {"index.html": "<div id=\"inbox\">\n  {% for message in messages %}\n"
                    "    {% module Template(\"message.html\", message=message) %}\n  {% end %}\n</div>"
                    "{% module Template(\"count.txt\", n=len(messages), label=\"<msgs>\",) %}",
      "message.html": "<div class=\"message\" id=\"m{{ message[\"id\"] }}\">"
                      "{% module linkify(message[\"body\"]) %}</div>\n",
      "count.txt": "{{ n }} {{ label }}{% set m = n * 2 %} {{ m }}"},
     "index.html", {"messages": [{"id": "a1", "body": "<b>hi</b> see http://example.com/x?a=1&b=2"},
                                 {"id": "b2", "body": "plain"}]}),
    ("include inside a loop sees the loop variable",
     {"page.txt": "<ul>{% for item in items %}{% include \"item.txt\" %}{% end %}</ul>{{ after }}",
      "item.txt": "<li>{{ item.name }}</li>\n"},
     "page.txt", {"items": [{"name": "a"}, {"name": "<b>"}], "after": "end"}),
    ("extends with blocks, a default kept, text outside blocks dropped",
     {"base.txt": "<title>{% block title %}Default{% end %}</title>\n"
                  "<nav>{% block nav %}home{% end %}</nav>\n<main>{% block body %}{% end %}</main>",
      "child.txt": "{% extends \"base.txt\" %}ignored\n{% block title %}{{ name }}{% end %}"
                   "{% block body %}<p>{{ name }}</p>{% end %}"},
     "child.txt", {"name": "Ann & co"}),
    ("two levels of extends and an include in a block",
     {"base.txt": "[{% block a %}A{% end %}|{% block b %}B{% end %}|{% block c %}C{% end %}]",
      "mid.txt": "{% extends \"base.txt\" %}{% block a %}mid-a{% end %}{% block b %}mid-b{% end %}",
      "leaf.txt": "{% extends \"mid.txt\" %}{% block b %}leaf-b {% include \"part.txt\" %}{% end %}",
      "part.txt": "({{ x }})"},
     "leaf.txt", {"x": "<x>"}),
    ("an indented .html page, its whitespace made single as Tornado's loader does",
     {"page.html": "<html>\n  <body>\n    <ul>\n    {% for x in xs %}\n      <li>{{ x }}</li>\t \n    {% end %}\n"
                   "    </ul>\n    <pre>\n  kept   as\n    is\n</pre>\n  </body>\n</html>\n"},
     "page.html", {"xs": ["a", "b"]}),
    ("each file keeps the mode of its own name; the whitespace tag changes it",
     {"page.html": "<p>   {% include \"plain.txt\" %}   </p>\n\n  {% whitespace oneline %}\n  <i>  x  </i>\n"
                   "{# a comment ends a chunk #}  \n  {% whitespace all %}  <b>  y  </b>  ",
      "plain.txt": "  spaced   \n\n  out  "},
     "page.html", {}),
]

class AttrDict(dict):
    """A dict whose keys are also attributes: Tornado evaluates `row.name` as Python, where
    cyclone walks the JSON object; json.dumps still sees a dict."""

    __getattr__ = dict.__getitem__


class Modules:
    """The UI modules of a RequestHandler's namespace that a template without a handler can
    have: Tornado's TemplateModule (render_string(path, **kwargs): a template of the
    loader's root with the keyword arguments as its names) and linkify."""

    def __init__(self, loader):
        self.loader = loader

    def Template(self, path, **kwargs):
        return self.loader.load(path).generate(_tt_modules=self, **kwargs)

    def linkify(self, text):
        return tornado.escape.linkify(text)


def attrs(v):
    if isinstance(v, dict):
        return AttrDict((k, attrs(x)) for k, x in v.items())
    if isinstance(v, list):
        return [attrs(x) for x in v]
    return v


def main():
    a = parse_args(__doc__, options=[("--render", dict(required=True, help="cyclone's render example"))],
                   logdir=None)
    checks = Checks("tornado_templates")
    cases = [(title, {"t.txt": text}, "t.txt", values) for title, text, values in CASES]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (title, files, page, values) in enumerate(cases + FILE_CASES):
            case_dir = os.path.join(tmp, str(i))
            os.mkdir(case_dir)
            for name, text in files.items():
                with open(os.path.join(case_dir, name), "w", encoding="utf-8") as f:
                    f.write(text)
            tpath = os.path.join(case_dir, page)
            vpath = os.path.join(tmp, f"v{i}.json")
            with open(vpath, "w", encoding="utf-8") as f:
                json.dump(values, f)
            try:
                loader = Loader(case_dir)
                want = loader.load(page).generate(_tt_modules=Modules(loader), **attrs(values))
            except Exception as exc:
                checks.fail(title, f"Tornado cannot render the case: {exc!r}")
                continue
            check_output(checks, title, [a.render, tpath, vpath], want)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
