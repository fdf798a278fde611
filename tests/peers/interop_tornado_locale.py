"""Translated templates rendered by cyclone and by Tornado, compared byte for byte:

    .venv/bin/python tests/peers/interop_tornado_locale.py --render target/release/examples/render

A directory of translation files (UTF-8, UTF-8 with a byte-order mark, UTF-16 with one; rows
quoted and unquoted, plural forms, a row with a bad plural indicator, a file whose name is
not a locale) is read by `tornado.locale.load_translations` and by cyclone's
`render --translations DIR`; then gettext catalogs (`.mo` files with Russian, Polish,
French, Japanese and default plural forms, contexts, a corrupt one) by
`tornado.locale.load_gettext_translations` and `render --gettext-domain`. For each locale request (`tornado.locale.get(*codes)`, cyclone's
`--locale CODES`) and each template, Tornado renders it with `_=locale.translate`,
`pgettext=locale.pgettext` and `locale=locale` in its namespace, as `RequestHandler.render`
does, and the check passes when cyclone's output is the same bytes. Dates for
`locale.format_date` are taken relative to the clock when the case starts (fractions of a
second away from the rounding points), so the two renders, a few milliseconds apart, fall on
the same side of every boundary.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import tornado.locale
from tornado.template import Template

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import Checks, check_output, parse_args  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

FILES = {
    # (bytes written), name
    "fr.csv": '"Hello","Bonjour"\n"Sign out","Se déconnecter"\n'
              '"%(n)s file","%(n)s fichier","singular"\n"%(n)s files","%(n)s fichiers","plural"\n'
              '"%(commas)s and %(last)s","%(commas)s et %(last)s"\n'
              '"%(month_name)s %(day)s, %(year)s at %(time)s","le %(day)s %(month_name)s %(year)s à %(time)s"\n'
              '"%(weekday)s at %(time)s","%(weekday)s à %(time)s"\n"yesterday at %(time)s","hier à %(time)s"\n'
              '"%(minutes)d minutes ago","il y a %(minutes)d minutes","plural"\n'
              '"March","mars"\n"Monday","lundi"\n"Tuesday","mardi"\n"Wednesday","mercredi"\n'
              '"Thursday","jeudi"\n"Friday","vendredi"\n"Saturday","samedi"\n"Sunday","dimanche"\n'
              '"bad","mauvais","dual"\n'
              'Unquoted , with spaces ,  plural  \n'
              '"multi\nline","sur\ndeux lignes"\n',
    "pt_BR.csv": ("utf-16", '"Hello","Olá"\n"%(n)s file","%(n)s arquivo","singular"\n'
                            '"%(n)s files","%(n)s arquivos","plural"\n'),
    "zh_CN.csv": ("utf-8-sig", '"Hello","你好"\n"%(commas)s and %(last)s","%(commas)s和%(last)s"\n'),
    "ar.csv": '"Hello","مرحبا"\n',
    "en_GB.csv": '"color","colour"\n',
    "es.old.txt": '"Hello","no"\n',
    "Bad_name.csv": '"Hello","no"\n',
}

# The locales asked for, as tornado.locale.get(*codes) takes them.
CODES = [["fr"], ["fr-CA"], ["pt-br"], ["zh_CN"], ["ar_EG"], ["en_GB"], ["de", "en"],
         ["xx_YY_ZZ", "pt"], ["en_US"]]

DAY = 86400

# (title, template, values); `now` in values is filled with the case's clock.
TEMPLATES = [
    ("translate", '{{ _("Hello") }}|{{ _("Sign out") }}|{{ _("not translated") }}|{{ _("bad") }}', {}),
    ("plural forms", '{{ _("%(n)s file", "%(n)s files", 1) }}|{{ _("%(n)s file", "%(n)s files", n) }}|'
                     '{{ _("%(n)s file", "%(n)s files", 0) }}', {"n": 3}),
    ("unquoted and multi-line rows", '{{ _("Unquoted") }}|{{ _(multi) }}', {"multi": "multi\nline"}),
    ("translations filled with %", '{{ _("%(n)s file", "%(n)s files", n) % {"n": n} }}|'
                                   '{{ _("%(n)s file", "%(n)s files", 1) % {"n": 1} }}', {"n": 4}),
    ("pgettext", '{{ pgettext("menu", "Hello") }}|{{ pgettext("menu", "%(n)s file", "%(n)s files", 2) }}', {}),
    ("locale fields", '{{ locale.code }}|{{ locale.name }}|{{ locale.rtl }}', {}),
    ("locale.translate", '{{ locale.translate("Hello") }}|{{ locale.translate("color") }}', {}),
    ("list", '{{ locale.list(names) }}|{{ locale.list(names[:2]) }}|{{ locale.list(names[:1]) }}|'
             '{{ locale.list([]) }}', {"names": ["Ana", "Bo", "Cy"]}),
    ("friendly_number", '{{ locale.friendly_number(0) }}|{{ locale.friendly_number(999) }}|'
                        '{{ locale.friendly_number(1000) }}|{{ locale.friendly_number(1234567890) }}', {}),
    ("format_date relative",
     '{% for d in dates %}{{ locale.format_date(now - d) }}|{% end %}',
     {"dates": [0.3, 30.5, 90.5, 600.5, 3 * 3600 + 0.5, DAY + 0.5, 3 * DAY + 0.5, 40 * DAY + 0.5,
                400 * DAY + 0.5]}),
    ("format_date options",
     '{% for d in dates %}{{ locale.format_date(now - d, gmt_offset=300, shorter=True) }}|'
     '{{ locale.format_date(now - d, relative=False) }}|'
     '{{ locale.format_date(now - d, full_format=True, gmt_offset=-330) }}|{% end %}',
     {"dates": [10.5, 5000.5, 2 * DAY + 0.5, 100 * DAY + 0.5]}),
    ("format_date fixed", '{{ locale.format_date(0) }}|{{ locale.format_date(951827640) }}|'
                          '{{ locale.format_date(4107542400.25, gmt_offset=60) }}', {}),
    ("format_date in the future", '{{ locale.format_date(now + 20) }}|{{ locale.format_date(now + 3600) }}', {}),
]


RU_PLURAL = ("nplurals=3; plural=n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
             "(n%100<10 || n%100>=20) ? 1 : 2;")
PL_PLURAL = "nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);"
# gettext catalogs: language -> (Plural-Forms or None, {msgid (with \x04 context, \0 plural): msgstr})
CATALOGS = {
    "ru": (RU_PLURAL, {"Hello": "Привет", "%(n)s file\0%(n)s files": "%(n)s файл\0%(n)s файла\0%(n)s файлов",
                      "menu\x04Open": "Открыть", "menu\x04%(n)s file\0%(n)s files": "%(n)s меню\0%(n)s меню-а\0%(n)s меню-ов",
                      "%(commas)s and %(last)s": "%(commas)s и %(last)s", "March": "марта",
                      "%(month_name)s %(day)s, %(year)s at %(time)s": "%(day)s %(month_name)s %(year)s в %(time)s"}),
    "pl": (PL_PLURAL, {"Hello": "Cześć", "%(n)s file\0%(n)s files": "%(n)s plik\0%(n)s pliki\0%(n)s plików"}),
    "fr": ("nplurals=2; plural=(n > 1);", {"Hello": "Bonjour", "%(n)s file\0%(n)s files": "%(n)s fichier\0%(n)s fichiers",
                                           "toolbar\x04Open": "Ouvrir"}),
    "ja": ("nplurals=1; plural=0;", {"%(n)s file\0%(n)s files": "%(n)sファイル"}),
    "de": (None, {"Hello": "Hallo", "%(n)s file\0%(n)s files": "%(n)s Datei\0%(n)s Dateien"}),
}

GETTEXT_CODES = [["ru"], ["pl-PL", "ru"], ["fr_CA"], ["ja"], ["de"], ["bad"], ["en"]]

GETTEXT_TEMPLATES = [
    ("gettext translate", '{{ _("Hello") }}|{{ _("%(n)s file") }}|{{ locale.translate("missing") }}|'
                          '{{ locale.code }}', {}),
    ("gettext plural forms", '{% for n in counts %}{{ _("%(n)s file", "%(n)s files", n) % {"n": n} }}|{% end %}',
     {"counts": [0, 1, 2, 3, 4, 5, 11, 12, 14, 21, 22, 25, 101, 111, 112, 1000]}),
    ("gettext pgettext", '{{ pgettext("menu", "Open") }}|{{ pgettext("toolbar", "Open") }}|'
                         '{{ pgettext("menu", "%(n)s file", "%(n)s files", 3) }}|'
                         '{{ pgettext("x", "%(n)s file", "%(n)s files", 3) }}|{{ pgettext("x", "Hello") }}', {}),
    ("gettext list and dates", '{{ locale.list(["a", "b", "c"]) }}|{{ locale.format_date(1772600000) }}', {}),
]


def write_mo(path, plural, entries):
    header = "Content-Type: text/plain; charset=UTF-8\n"
    if plural:
        header += f"Plural-Forms: {plural}\n"
    items = sorted([(b"", header.encode())] + [(k.encode(), v.encode()) for k, v in entries.items()])
    n = len(items)
    keys = b"".join(k + b"\0" for k, _ in items)
    out = [0x950412de, 0, n, 28, 28 + 8 * n, 0, 28 + 16 * n]
    base = 28 + 16 * n
    ktab, vtab, strings = [], [], b""
    for k, v in items:
        ktab += [len(k), base + len(strings)]
        strings += k + b"\0"
    for k, v in items:
        vtab += [len(v), base + len(strings)]
        strings += v + b"\0"
    assert keys
    data = struct.pack(f"<{7 + 4 * n}I", *out, *ktab, *vtab) + strings
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def compare(checks, a, tmp, extra_args, codes_list, templates):
    for codes in codes_list:
        loc = tornado.locale.get(*codes)
        for i, (title, text, values) in enumerate(templates):
            name = f"{title} in {','.join(codes)} ({loc.code})"
            values = dict(values, now=time.time())
            tpath = os.path.join(tmp, f"t{i}.txt")
            vpath = os.path.join(tmp, f"v{i}.json")
            with open(tpath, "w", encoding="utf-8") as f:
                f.write(text)
            with open(vpath, "w", encoding="utf-8") as f:
                json.dump(values, f)
            try:
                want = Template(text).generate(
                    _=loc.translate, pgettext=loc.pgettext, locale=loc, **values)
            except Exception as exc:
                checks.fail(name, f"Tornado cannot render the case: {exc!r}")
                continue
            cmd = [a.render, *extra_args, "--locale", ",".join(codes), tpath, vpath]
            check_output(checks, name, cmd, want)


def write_files(d):
    for name, spec in FILES.items():
        encoding, text = spec if isinstance(spec, tuple) else ("utf-8", spec)
        with open(os.path.join(d, name), "w", encoding=encoding, newline="") as f:
            f.write(text)


def main():
    a = parse_args(__doc__, options=[("--render", dict(required=True, help="cyclone's render example"))],
                   logdir=None)
    checks = Checks("tornado_locale")
    with tempfile.TemporaryDirectory() as tmp:
        tdir = os.path.join(tmp, "translations")
        os.mkdir(tdir)
        write_files(tdir)
        # Tornado keeps the first file's detected encoding for the rest of the directory:
        # load the files whose encodings differ one directory each, so its reading does not
        # depend on listing order, and merge (cyclone reads the whole directory at once).
        merged = {}
        for name in FILES:
            one = os.path.join(tmp, "one-" + name)
            os.mkdir(one)
            os.link(os.path.join(tdir, name), os.path.join(one, name))
            tornado.locale.load_translations(one)
            merged.update(tornado.locale._translations)
        tornado.locale._translations = merged
        tornado.locale.set_default_locale("en_US")
        tornado.locale.Locale._cache = {}
        want_supported = sorted(tornado.locale.get_supported_locales())
        compare(checks, a, tmp, ["--translations", tdir], CODES, TEMPLATES)
        # The supported locales: what each side read from the directory.
        probe = os.path.join(tmp, "codes.txt")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("{{ locale.code }}")
        got_supported = []
        for code in want_supported + ["es", "en_gb"]:
            out = subprocess.run([a.render, "--translations", tdir, "--locale", code, probe],
                                 capture_output=True, timeout=30)
            if out.stdout.decode() == code:
                got_supported.append(code)
        if got_supported == want_supported:
            checks.ok(f"supported locales {want_supported}")
        else:
            checks.fail("supported locales", f"tornado {want_supported}, cyclone {got_supported}")
        # gettext catalogs (load_gettext_translations): plural forms by Plural-Forms, contexts.
        gdir = os.path.join(tmp, "gettext")
        for lang, (plural, entries) in CATALOGS.items():
            write_mo(os.path.join(gdir, lang, "LC_MESSAGES", "app.mo"), plural, entries)
        os.makedirs(os.path.join(gdir, "bad", "LC_MESSAGES"))
        with open(os.path.join(gdir, "bad", "LC_MESSAGES", "app.mo"), "wb") as f:
            f.write(b"\xde\x12\x04\x95 not a catalog")
        tornado.locale.Locale._cache = {}
        tornado.locale.load_gettext_translations(gdir, "app")
        compare(checks, a, tmp, ["--translations", gdir, "--gettext-domain", "app"],
                GETTEXT_CODES, GETTEXT_TEMPLATES)
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
