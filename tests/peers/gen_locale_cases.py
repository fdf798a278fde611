"""Prints the expected values of cyclone's locale unit tests from Tornado itself:

    .venv/bin/python tests/peers/gen_locale_cases.py

writes src/locale/format_date_cases.rs (`Locale.format_date` with `datetime.now` fixed, for
en_US, es_LA with tests/peers/locale/es_LA.csv, zh_CN and de_DE) and
src/locale/accept_language_cases.rs (`RequestHandler.get_browser_locale` with translations for
es, es_LA, fr, pt_BR and an empty de_DE). Run it again after changing a case list here.
"""
import datetime
import json
import os
import shutil
import tempfile
import types

import tornado.locale as L
import tornado.web
from tornado.httputil import HTTPHeaders

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..", "src", "locale")
NOW = datetime.datetime(2026, 12, 5, 21, 30, 15, 250000, tzinfo=datetime.UTC)


class FixedNow(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


def rust_str(s):
    return json.dumps(s, ensure_ascii=False)


def format_date_cases():
    L.datetime = types.SimpleNamespace(
        datetime=FixedNow, UTC=datetime.UTC, timedelta=datetime.timedelta)
    L.load_translations(os.path.join(HERE, "locale"))
    now_ts = NOW.timestamp()
    offsets = [0, 1, 30.5, 49.9, 50, 89, 90, 150, 2999, 3000, 5399, 5400, 9000, 86399,
               86400, 100000, 3 * 86400, 4.9 * 86400, 5 * 86400, 200 * 86400, 333 * 86400,
               334 * 86400, 3000 * 86400, -30, -59.9, -60, -86400 * 40]
    variants = [(0, True, False, False), (300, True, False, False), (-600, True, True, False),
                (0, False, False, False), (0, True, False, True), (0, True, True, False)]
    lines = [
        "// Printed by Tornado 6.6.1 (`Locale.format_date` with `datetime.now` fixed at NOW_US)",
        "// by tests/peers/gen_locale_cases.py; es_LA has tests/peers/locale/es_LA.csv.",
        "// code, date (µs since the epoch), gmt_offset, relative, shorter, full_format, Tornado's text",
        "const FORMAT_DATE: &[(&str, i64, i64, bool, bool, bool, &str)] = &[",
    ]
    for code in ["en_US", "es_LA", "zh_CN", "de_DE"]:
        L.set_default_locale(code)
        loc = L.Locale.get(code)
        L.set_default_locale("en_US")
        for off in offsets:
            for gmt, rel, shorter, full in variants:
                ts = now_ts - off
                out = loc.format_date(ts, gmt_offset=gmt, relative=rel, shorter=shorter,
                                      full_format=full)
                lines.append(f"    ({rust_str(code)}, {round(ts * 1e6)}, {gmt}, "
                             f"{str(rel).lower()}, {str(shorter).lower()}, "
                             f"{str(full).lower()}, {rust_str(out)}),")
    lines.append("];")
    lines.append(f"const NOW_US: i64 = {round(now_ts * 1e6)};")
    return "\n".join(lines) + "\n"


def accept_language_cases():
    d = tempfile.mkdtemp()
    try:
        files = {"es": '"yes","sí"\n', "fr": '"yes","oui"\n', "pt_BR": '"yes","sim"\n',
                 "de_DE": ""}
        for code, text in files.items():
            with open(os.path.join(d, code + ".csv"), "w", encoding="utf-8") as f:
                f.write(text)
        shutil.copy(os.path.join(HERE, "locale", "es_LA.csv"), d)
        L.Locale._cache = {}
        L.load_translations(d)
    finally:
        shutil.rmtree(d)
    headers = [None, "", "es", "es-la", "ES_la", "fr, es;q=0.5", "fr;q=0.9, es;q=0.8", "es;q=0",
               "es;q=-1", "es;q=abc", "es;q=nan", "es;q=inf, en", "en;q=0.5, es;q=0.5",
               "es ;q=1", "es-MX-x", "es_MX", " es ", "de,fr", "es;q= 0.7", "es;level=1",
               "es;q=1e-1, de", "*", "pt", "pt-br;q=0.2, fr;q=0.3", "de", "de-AT", "zz, pt_BR",
               "es;q=0.0001", ",,es", "es;Q=0.5"]
    lines = ["// Printed by Tornado 6.6.1 by tests/peers/gen_locale_cases.py.",
             "// Accept-Language (None: no header), get_browser_locale's default, the code.",
             "const ACCEPT_LANGUAGE: &[(Option<&str>, &str, &str)] = &["]
    for h in headers:
        for default in ["en_US", "es"]:
            hs = HTTPHeaders()
            if h is not None:
                hs["Accept-Language"] = h
            fake = types.SimpleNamespace(request=types.SimpleNamespace(headers=hs))
            code = tornado.web.RequestHandler.get_browser_locale(fake, default).code
            header = "None" if h is None else f"Some({rust_str(h)})"
            lines.append(f"    ({header}, {rust_str(default)}, {rust_str(code)}),")
    lines.append("];")
    return "\n".join(lines) + "\n"


PLURAL_FORMS = [
    "n != 1", "n>1", "0", "(n != 1)", "n==1 ? 0 : 1",
    "n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2",
    "(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2",
    "n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5",
    "n==1 ? 0 : n==0 || ( n%100>1 && n%100<11) ? 1 : (n%100>10 && n%100<20 ) ? 2 : 3",
    "(n%10==1 && n%100!=11 ? 0 : n != 0 ? 1 : 2)",
    "n || 2", "n && 7", "!n", "!!n", "!n == 1", "!n + 1", "!n == 1 == 0", "!n && n || 3",
    "n / 3", "n % 7 - 3", "(n - 20) / 3", "(n - 20) % 3", "n * 2 + 1 > 20", "n < 5 < 1",
    "n == 2 < 3", "n < 2 == 1", "1 ? 2 ? 3 : 4 : 5", "n > 5 ? n > 10 ? 2 : 1 : 0",
    "((((n))))", "n>=2 && n<=4 ? 1 : 0",
    "n != !n > 1", "n == !n + 1 > 2", "n == !n > 1 < 2", "n && !n == 1", "n ? !n : 1",
    "n == !n > 1 ? 1 : 2", "n == !(n) > 1 == 0", "n != !!n >= 1 + n",
]
PLURAL_REFUSED = ["", "n +", "n == !1", "(n", "n)", "x", "12n", "n1", "n ? 1", "-1", "n = 1",
                  "n & 1", "n\n", "n == !n + 1", "n > !n",
                  "((((((((((((((((((((((n))))))))))))))))))))))"]


def plural_cases():
    import gettext
    lines = ["// Printed by Python 3.11's gettext.c2py(expr)(n), n in 0..=30 and 100..=112,",
             "// by tests/peers/gen_locale_cases.py.",
             "const PLURAL_CASES: &[(&str, &[i128])] = &["]
    ns = list(range(0, 31)) + list(range(100, 113))
    for expr in PLURAL_FORMS:
        f = gettext.c2py(expr)
        lines.append(f"    ({rust_str(expr)}, &{[f(n) for n in ns]}),")
    lines.append("];")
    for expr in PLURAL_REFUSED:
        try:
            gettext.c2py(expr)
        except (ValueError, SyntaxError):
            continue
        raise SystemExit(f"c2py takes {expr!r}")
    lines.append("// c2py raises ValueError or SyntaxError for each of these.")
    lines.append("const PLURAL_REFUSED: &[&str] = &[")
    lines += [f"    {rust_str(e)}," for e in PLURAL_REFUSED]
    lines.append("];")
    return "\n".join(lines) + "\n"


def main():
    with open(os.path.join(SRC, "plural_cases.rs"), "w", encoding="utf-8") as f:
        f.write(plural_cases())
    with open(os.path.join(SRC, "format_date_cases.rs"), "w", encoding="utf-8") as f:
        f.write(format_date_cases())
    with open(os.path.join(SRC, "accept_language_cases.rs"), "w", encoding="utf-8") as f:
        f.write(accept_language_cases())


if __name__ == "__main__":
    main()
