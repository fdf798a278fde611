//! GNU gettext `.mo` catalogs, read as Python's `gettext.GNUTranslations`
//! reads them (Tornado's `load_gettext_translations` uses it): the
//! messages, their plural forms, and the header's `charset` and
//! `Plural-Forms`, whose C expression is evaluated as Python's
//! `gettext.c2py` translates it.

use std::collections::HashMap;

/// Context and message are joined by this in a catalog's keys
/// (`msgctxt "menu"` + `msgid "Open"` is `menu\x04Open`).
pub(super) const CONTEXT_SEPARATOR: char = '\u{4}';

/// One `.mo` catalog.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// `msgid` to `msgstr`, for messages without plural forms.
    messages: HashMap<String, String>,
    /// `msgid` to its `msgstr[index]`s: the msgid kept once however many
    /// forms it has (a key per form copied it per form: a 200 KB file of
    /// one 100 KB msgid with 100,000 forms asked for 10 GB).
    plurals: HashMap<String, Vec<String>>,
    /// `Plural-Forms`' expression; `None` for the default, `n != 1`.
    plural: Option<Plural>,
    /// The language's own catalog behind a country's (`es` behind
    /// `es_LA`): asked for what this one lacks, as Python's
    /// `add_fallback` chains the catalogs `gettext.translation` finds.
    pub(super) fallback: Option<std::sync::Arc<Catalog>>,
}

impl Catalog {
    /// Parses a `.mo` file's bytes.
    pub(super) fn parse(buf: &[u8]) -> Result<Catalog, String> {
        let magic = buf.get(..4).ok_or("not a .mo file: too short")?;
        let be = match magic {
            [0xde, 0x12, 0x04, 0x95] => false,
            [0x95, 0x04, 0x12, 0xde] => true,
            _ => return Err("not a .mo file: bad magic number".into()),
        };
        let word = |at: usize| -> Result<usize, String> {
            let b: [u8; 4] = buf
                .get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or("the file is corrupt")?;
            Ok(if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            } as usize)
        };
        let version = word(4)?;
        if version >> 16 > 1 {
            return Err(format!("unsupported .mo version {}", version >> 16));
        }
        let (count, originals, translations) = (word(8)?, word(12)?, word(16)?);
        let mut out = Catalog::default();
        let mut charset: Option<String> = None;
        for i in 0..count {
            let (mlen, moff) = (word(originals + 8 * i)?, word(originals + 8 * i + 4)?);
            let (tlen, toff) = (word(translations + 8 * i)?, word(translations + 8 * i + 4)?);
            let (mend, tend) = (moff.saturating_add(mlen), toff.saturating_add(tlen));
            // Python's test: each string's end strictly inside the file (its NUL).
            if mend >= buf.len() || tend >= buf.len() {
                return Err("the file is corrupt".into());
            }
            let (msg, tmsg) = (&buf[moff..mend], &buf[toff..tend]);
            if mlen == 0 {
                out.read_header(tmsg, &mut charset)?;
            }
            let text = |b: &[u8]| decode(b, charset.as_deref());
            match msg.iter().position(|&b| b == 0) {
                Some(nul) => {
                    if msg[nul + 1..].contains(&0) {
                        // Python's `msgid1, msgid2 = msg.split(b'\0')` fails.
                        return Err("a message with more than one plural msgid".into());
                    }
                    let id = text(&msg[..nul])?;
                    // A later entry for the same msgid replaces form by
                    // form, as Python's `catalog[(msgid1, i)] = x` does.
                    let forms = out.plurals.entry(id).or_default();
                    for (n, form) in tmsg.split(|&b| b == 0).enumerate() {
                        let form = text(form)?;
                        match forms.get_mut(n) {
                            Some(old) => *old = form,
                            None => forms.push(form),
                        }
                    }
                }
                None => {
                    out.messages.insert(text(msg)?, text(tmsg)?);
                }
            }
        }
        Ok(out)
    }

    /// The metadata entry: `Content-Type`'s charset and `Plural-Forms`.
    fn read_header(&mut self, tmsg: &[u8], charset: &mut Option<String>) -> Result<(), String> {
        let text = std::str::from_utf8(tmsg).map_err(|e| format!("header not UTF-8: {e}"))?;
        for item in text.split('\n') {
            let item = item.trim_matches(super::py_space);
            let Some((key, value)) = item.split_once(':') else {
                continue;
            };
            let (key, value) = (
                key.trim_matches(super::py_space).to_lowercase(),
                value.trim_matches(super::py_space),
            );
            if key == "content-type" {
                let (_, cs) = value
                    .split_once("charset=")
                    .ok_or("Content-Type without charset=")?;
                *charset = Some(cs.split("charset=").next().unwrap_or(cs).to_string());
            } else if key == "plural-forms" {
                let expr = value
                    .split(';')
                    .nth(1)
                    .and_then(|v| v.split("plural=").nth(1))
                    .ok_or("Plural-Forms without plural=")?;
                self.plural = Some(Plural::parse(expr)?);
            }
        }
        Ok(())
    }

    /// The plural form's index for `n` (`n != 1` without `Plural-Forms`);
    /// `None` where Python's expression would raise (division by zero).
    fn index(&self, n: i64) -> Option<usize> {
        match &self.plural {
            None => Some(usize::from(n != 1)),
            Some(p) => usize::try_from(p.eval(i128::from(n))?).ok(),
        }
    }

    /// The translation of `message`, or of its singular plural form
    /// (Python's `gettext` when it finds one).
    fn lookup(&self, message: &str) -> Option<&str> {
        self.messages
            .get(message)
            .or_else(|| self.plurals.get(message)?.get(self.index(1)?))
            .map(String::as_str)
            .or_else(|| self.fallback.as_deref()?.lookup(message))
    }

    /// The plural form of `msgid1` for `n` (Python's `ngettext` when it
    /// finds one).
    fn lookup_plural(&self, msgid1: &str, n: i64) -> Option<&str> {
        let own = || self.plurals.get(msgid1)?.get(self.index(n)?);
        // The fallback by its own plural rule, as Python's `ngettext`.
        own()
            .map(String::as_str)
            .or_else(|| self.fallback.as_deref()?.lookup_plural(msgid1, n))
    }

    /// [`lookup`](Self::lookup) for a context's key: a translation holding
    /// the context separator counts as none (Tornado's `pgettext` test).
    pub(super) fn find(&self, key: &str) -> Option<&str> {
        self.lookup(key).filter(|t| !t.contains(CONTEXT_SEPARATOR))
    }

    /// [`lookup_plural`](Self::lookup_plural) for a context's key.
    pub(super) fn find_plural(&self, key: &str, n: i64) -> Option<&str> {
        self.lookup_plural(key, n)
            .filter(|t| !t.contains(CONTEXT_SEPARATOR))
    }

    /// Python's `gettext(message)`.
    pub(super) fn gettext<'a>(&'a self, message: &'a str) -> &'a str {
        self.lookup(message).unwrap_or(message)
    }

    /// Python's `ngettext(msgid1, msgid2, n)`.
    pub(super) fn ngettext<'a>(&'a self, msgid1: &'a str, msgid2: &'a str, n: i64) -> &'a str {
        self.lookup_plural(msgid1, n)
            .unwrap_or(if n == 1 { msgid1 } else { msgid2 })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.plurals.is_empty()
    }
}

/// Bytes of the catalog in its charset (Python's `str(b, charset)`; ASCII
/// until a header names one).
fn decode(b: &[u8], charset: Option<&str>) -> Result<String, String> {
    let name = charset
        .unwrap_or("ascii")
        .to_ascii_lowercase()
        .replace('_', "-");
    match name.as_str() {
        "utf-8" | "utf8" | "u8" => {
            String::from_utf8(b.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
        }
        "ascii" | "us-ascii" | "646" => {
            if b.is_ascii() {
                Ok(String::from_utf8_lossy(b).into_owned())
            } else {
                Err("a message is not ASCII and the catalog names no charset".into())
            }
        }
        "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => {
            Ok(crate::http::request::latin1(b).into_owned())
        }
        other => Err(format!(
            "unsupported charset {other:?} (UTF-8, ASCII and Latin-1 are read)"
        )),
    }
}

/// A `Plural-Forms` expression.
#[derive(Debug, Clone)]
enum Plural {
    N,
    Int(i128),
    /// `not` applied `count` times (Python's `not`, looser than comparisons
    /// and arithmetic: `!n == 1` is `not (n == 1)` as `c2py` writes it).
    Not(usize, Box<Plural>),
    Bin(Op, Box<Plural>, Box<Plural>),
    /// `cond ? then : otherwise`.
    If(Box<Plural>, Box<Plural>, Box<Plural>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl Op {
    fn of(tok: &str) -> Option<(Op, u8)> {
        Some(match tok {
            "||" => (Op::Or, 1),
            "&&" => (Op::And, 2),
            "==" => (Op::Eq, 3),
            "!=" => (Op::Ne, 3),
            "<" => (Op::Lt, 4),
            ">" => (Op::Gt, 4),
            "<=" => (Op::Le, 4),
            ">=" => (Op::Ge, 4),
            "+" => (Op::Add, 5),
            "-" => (Op::Sub, 5),
            "*" => (Op::Mul, 6),
            "/" => (Op::Div, 6),
            "%" => (Op::Mod, 6),
            _ => return None,
        })
    }
}

struct Parser<'s> {
    toks: Vec<&'s str>,
    at: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn next(&mut self) -> &'s str {
        let t = self.toks.get(self.at).copied().unwrap_or("");
        self.at += 1;
        t
    }

    fn peek(&self) -> &'s str {
        self.toks.get(self.at).copied().unwrap_or("")
    }

    /// `c2py`'s `_parse(tokens, priority)`.
    fn parse(&mut self, priority: i8) -> Result<Plural, String> {
        self.depth += 1;
        if self.depth > 20 {
            return Err("plural form expression is too complex".into());
        }
        let mut nots = 0;
        while self.peek() == "!" {
            self.next();
            nots += 1;
        }
        let tok = self.next();
        let mut result = match tok {
            "(" => {
                let sub = self.parse(-1)?;
                if self.next() != ")" {
                    return Err("unbalanced parenthesis in plural form".into());
                }
                sub
            }
            "n" => Plural::N,
            t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                Plural::Int(t.parse().map_err(|_| format!("number {t} too large"))?)
            }
            t => return Err(unexpected(t)),
        };
        let apply_nots = |r: Plural, nots: &mut usize| {
            if *nots == 0 {
                r
            } else {
                Plural::Not(std::mem::take(nots), Box::new(r))
            }
        };
        let mut last: u8 = 100;
        while let Some((op, p)) = Op::of(self.peek()) {
            if i16::from(p) < i16::from(priority) {
                break;
            }
            // `not` binds looser than comparisons and arithmetic, tighter
            // than `and`/`or`; c2py's parentheses around a chained
            // comparison close it too.
            if p <= 2 || (matches!(p, 3 | 4) && matches!(last, 3 | 4)) {
                result = apply_nots(result, &mut nots);
            }
            self.next();
            let right = self.parse(p as i8 + 1)?;
            result = Plural::Bin(op, Box::new(result), Box::new(right));
            last = p;
        }
        // Python compiles `a == not b` as a syntax error, but c2py
        // parenthesizes a comparison on the right of `==`/`!=`, so
        // `n != !n > 1` is `n != (not n > 1)`.
        if nots > 0 && priority >= 4 && !(priority == 4 && last == 4) {
            return Err("'!' after a comparison or arithmetic operator".into());
        }
        result = apply_nots(result, &mut nots);
        if self.peek() == "?" && priority <= 0 {
            self.next();
            let then = self.parse(0)?;
            let colon = self.next();
            if colon != ":" {
                return Err(unexpected(colon));
            }
            let otherwise = self.parse(-1)?;
            result = Plural::If(Box::new(result), Box::new(then), Box::new(otherwise));
        }
        self.depth -= 1;
        Ok(result)
    }
}

/// Python's `//`: the quotient rounded toward minus infinity; `None` for
/// a division by zero or an overflow.
fn floor_div(a: i128, b: i128) -> Option<i128> {
    let q = a.checked_div(b)?;
    Some(if a % b != 0 && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    })
}

fn unexpected(tok: &str) -> String {
    if tok.is_empty() {
        "unexpected end of plural form".into()
    } else {
        format!("unexpected token in plural form: {tok}")
    }
}

impl Plural {
    fn parse(src: &str) -> Result<Plural, String> {
        if src.len() > 1000 {
            return Err("plural form expression is too long".into());
        }
        let mut toks = Vec::new();
        let b = src.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let len = match c {
                b' ' | b'\t' => {
                    i += 1;
                    continue;
                }
                b'0'..=b'9' => b[i..].iter().take_while(|d| d.is_ascii_digit()).count(),
                b'n' | b'?' | b':' | b'(' | b')' | b'+' | b'-' | b'*' | b'/' | b'%' => 1,
                b'|' | b'&' if b.get(i + 1) == Some(&c) => 2,
                b'=' if b.get(i + 1) == Some(&b'=') => 2,
                b'!' | b'<' | b'>' => {
                    if b.get(i + 1) == Some(&b'=') {
                        2
                    } else {
                        1
                    }
                }
                _ => {
                    let bad = src[i..].chars().next().unwrap_or('?');
                    return Err(format!("invalid token in plural form: {bad}"));
                }
            };
            toks.push(&src[i..i + len]);
            i += len;
        }
        let mut p = Parser {
            toks,
            at: 0,
            depth: 0,
        };
        let expr = p.parse(-1)?;
        let rest = p.next();
        if !rest.is_empty() {
            return Err(unexpected(rest));
        }
        Ok(expr)
    }

    /// The value for `n`, with Python's semantics for the code `c2py`
    /// makes: `or`/`and` give an operand, comparisons and `not` give 0 or
    /// 1, `/` and `%` floor. `None` for a division by zero or an overflow.
    fn eval(&self, n: i128) -> Option<i128> {
        Some(match self {
            Plural::N => n,
            Plural::Int(i) => *i,
            Plural::Not(count, e) => {
                let v = e.eval(n)?;
                let truthy = if count % 2 == 1 { v == 0 } else { v != 0 };
                i128::from(truthy)
            }
            Plural::If(c, t, f) => {
                if c.eval(n)? != 0 {
                    t.eval(n)?
                } else {
                    f.eval(n)?
                }
            }
            Plural::Bin(op, l, r) => {
                let a = l.eval(n)?;
                match op {
                    Op::Or if a != 0 => a,
                    Op::Or => r.eval(n)?,
                    Op::And if a == 0 => a,
                    Op::And => r.eval(n)?,
                    _ => {
                        let b = r.eval(n)?;
                        match op {
                            Op::Eq => i128::from(a == b),
                            Op::Ne => i128::from(a != b),
                            Op::Lt => i128::from(a < b),
                            Op::Gt => i128::from(a > b),
                            Op::Le => i128::from(a <= b),
                            Op::Ge => i128::from(a >= b),
                            Op::Add => a.checked_add(b)?,
                            Op::Sub => a.checked_sub(b)?,
                            Op::Mul => a.checked_mul(b)?,
                            Op::Div => floor_div(a, b)?,
                            Op::Mod => a.checked_sub(b.checked_mul(floor_div(a, b)?)?)?,
                            Op::Or | Op::And => unreachable!("handled above"),
                        }
                    }
                }
            }
        })
    }
}

/// A `.mo` file of `entries` (key, translation), in little- or big-endian
/// order: what `msgfmt` writes, without the hash table.
#[cfg(test)]
pub(super) fn write_mo(entries: &[(&[u8], &[u8])], big_endian: bool) -> Vec<u8> {
    let mut entries = entries.to_vec();
    entries.sort();
    let n = entries.len();
    let word = |out: &mut Vec<u8>, v: usize| {
        let v = u32::try_from(v).expect("small");
        out.extend(if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    };
    let mut out = Vec::new();
    word(&mut out, 0x9504_12de);
    for v in [0, n, 28, 28 + 8 * n, 0, 28 + 16 * n] {
        word(&mut out, v);
    }
    let mut strings = Vec::new();
    let mut tables = (Vec::new(), Vec::new());
    let base = 28 + 16 * n;
    for (key, value) in &entries {
        for (bytes, table) in [(key, &mut tables.0), (value, &mut tables.1)] {
            word(table, bytes.len());
            word(table, base + strings.len());
            strings.extend_from_slice(bytes);
            strings.push(0);
        }
    }
    out.extend(tables.0);
    out.extend(tables.1);
    out.extend(strings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("plural_cases.rs");

    const RU_HEADER: &[u8] = b"Project-Id-Version: x\nContent-Type: text/plain; charset=UTF-8\n\
        Plural-Forms: nplurals=3; plural=n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && \
        (n%100<10 || n%100>=20) ? 1 : 2;\n";

    fn ru(big_endian: bool) -> Catalog {
        let mo = write_mo(
            &[
                (b"", RU_HEADER),
                (b"Hello", "Привет".as_bytes()),
                (
                    b"%(n)s file\0%(n)s files",
                    "%(n)s файл\0%(n)s файла\0%(n)s файлов".as_bytes(),
                ),
                (b"menu\x04Open", "Открыть".as_bytes()),
                (
                    b"menu\x04%(n)s file\0%(n)s files",
                    "%(n)s меню\0%(n)s меню-а\0%(n)s меню-ов".as_bytes(),
                ),
                (b"day", "день".as_bytes()),
            ],
            big_endian,
        );
        Catalog::parse(&mo).expect("parses")
    }

    #[test]
    fn mo_catalogs_read_as_python_gettext() {
        for be in [false, true] {
            let c = ru(be);
            assert_eq!(c.gettext("Hello"), "Привет");
            assert_eq!(c.gettext("missing"), "missing");
            // gettext of a plural msgid: its form for n = 1 (index 0 here).
            assert_eq!(c.gettext("%(n)s file"), "%(n)s файл");
            let forms: Vec<&str> = [1, 2, 5, 11, 21, 22, 25, 111]
                .iter()
                .map(|&n| c.ngettext("%(n)s file", "%(n)s files", n))
                .collect();
            assert_eq!(
                forms,
                [
                    "%(n)s файл",
                    "%(n)s файла",
                    "%(n)s файлов",
                    "%(n)s файлов",
                    "%(n)s файл",
                    "%(n)s файла",
                    "%(n)s файлов",
                    "%(n)s файлов"
                ]
            );
            assert_eq!(c.ngettext("a", "b", 1), "a");
            assert_eq!(c.ngettext("a", "b", 0), "b");
            assert_eq!(c.find("menu\u{4}Open"), Some("Открыть"));
            assert_eq!(c.find("menu\u{4}Close"), None);
            assert_eq!(
                c.find_plural("menu\u{4}%(n)s file", 3),
                Some("%(n)s меню-а")
            );
        }
        // Without Plural-Forms: n != 1. Without a charset: ASCII.
        let mo = write_mo(&[(b"x\0xs", b"y\0ys\0yss"), (b"a", b"b")], false);
        let c = Catalog::parse(&mo).unwrap();
        assert_eq!(
            (c.ngettext("x", "xs", 1), c.ngettext("x", "xs", 2)),
            ("y", "ys")
        );
        let latin = write_mo(
            &[
                (b"", b"Content-Type: text/plain; charset=ISO-8859-1\n"),
                (b"a", b"\xe9"),
            ],
            false,
        );
        assert_eq!(Catalog::parse(&latin).unwrap().gettext("a"), "é");
        let refused: [(&str, Vec<u8>); 5] = [
            (
                "not ASCII without a charset",
                write_mo(&[(b"a", b"\xe9")], false),
            ),
            (
                "bad magic",
                b"\0\0\0\0aaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            ),
            ("truncated", write_mo(&[(b"a", b"b")], false)[..40].to_vec()),
            (
                "bad plural",
                write_mo(&[(b"", b"Plural-Forms: nplurals=2; plural=n +;\n")], false),
            ),
            (
                "unknown charset",
                write_mo(
                    &[(b"", b"Content-Type: text/plain; charset=KOI8-R\n")],
                    false,
                ),
            ),
        ];
        for (what, mo) in refused {
            assert!(Catalog::parse(&mo).is_err(), "{what}");
        }
        // A division by zero in Plural-Forms: no index, the message.
        let mo = write_mo(
            &[
                (b"", b"Plural-Forms: nplurals=2; plural=1 / (n - 3);\n"),
                (b"x\0xs", b"y\0ys"),
            ],
            false,
        );
        let c = Catalog::parse(&mo).unwrap();
        assert_eq!(c.ngettext("x", "xs", 3), "xs");
        assert_eq!(c.ngettext("x", "xs", 4), "ys");
    }

    #[test]
    fn plural_forms_evaluate_as_python_gettext() {
        // PLURAL_CASES: Python 3.11's gettext.c2py(expr)(n) for n in
        // 0..=30 and 100..=112 (tests/peers/gen_locale_cases.py).
        for (expr, want) in PLURAL_CASES {
            let p = Plural::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let ns = (0..=30).chain(100..=112);
            let got: Vec<i128> = ns
                .map(|n| p.eval(n).expect("no division by zero"))
                .collect();
            assert_eq!(&got, want, "{expr}");
        }
        for expr in PLURAL_REFUSED {
            assert!(Plural::parse(expr).is_err(), "{expr}");
        }
    }
}
