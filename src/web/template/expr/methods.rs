//! The methods of Python's `str`, `list` and `dict` that templates call,
//! with Python's results for the values a template holds. Positions and
//! widths count characters, as Python's do, not bytes. `keys()`, `values()`
//! and `items()` give lists (of `[key, value]` pairs for `items`), which is
//! what Python's views give in a `for`, a comprehension, `len`, `list` or
//! `sorted`; printed, Python shows `dict_items([..])` instead.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::web::template::py_space;

use super::{check_items, equal, number, to_value, Num, TemplateError, Val, V};

/// A method a template may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::web::template) enum Method {
    Get,
    Keys,
    Values,
    Items,
    Upper,
    Lower,
    SwapCase,
    Strip,
    LStrip,
    RStrip,
    Title,
    Capitalize,
    StartsWith,
    EndsWith,
    Replace,
    Split,
    RSplit,
    SplitLines,
    Join,
    Count,
    Find,
    RFind,
    Index,
    RIndex,
    ZFill,
    LJust,
    RJust,
    Center,
    IsDigit,
    IsAlpha,
    IsAlnum,
    IsSpace,
    IsLower,
    IsUpper,
    /// `str.format(*args, **kwargs)`, in [`super::format`].
    Format,
    /// `request.full_url()`, and the methods of `handler` below: methods
    /// of the render's `request` and `handler` alone
    /// ([`Method::of_request`]), which the render applies.
    FullUrl,
    GetArgument,
    GetArguments,
    GetQueryArgument,
    GetQueryArguments,
    GetBodyArgument,
    GetBodyArguments,
    GetCookie,
}

/// Each method's name and how many arguments it takes (at least, at most).
const TABLE: &[(&str, Method, usize, usize)] = &[
    ("get", Method::Get, 1, 2),
    ("keys", Method::Keys, 0, 0),
    ("values", Method::Values, 0, 0),
    ("items", Method::Items, 0, 0),
    ("upper", Method::Upper, 0, 0),
    ("lower", Method::Lower, 0, 0),
    ("swapcase", Method::SwapCase, 0, 0),
    ("strip", Method::Strip, 0, 1),
    ("lstrip", Method::LStrip, 0, 1),
    ("rstrip", Method::RStrip, 0, 1),
    ("title", Method::Title, 0, 0),
    ("capitalize", Method::Capitalize, 0, 0),
    ("startswith", Method::StartsWith, 1, 3),
    ("endswith", Method::EndsWith, 1, 3),
    ("replace", Method::Replace, 2, 3),
    ("split", Method::Split, 0, 2),
    ("rsplit", Method::RSplit, 0, 2),
    ("splitlines", Method::SplitLines, 0, 0),
    ("join", Method::Join, 1, 1),
    ("count", Method::Count, 1, 3),
    ("find", Method::Find, 1, 3),
    ("rfind", Method::RFind, 1, 3),
    ("index", Method::Index, 1, 3),
    ("rindex", Method::RIndex, 1, 3),
    ("zfill", Method::ZFill, 1, 1),
    ("ljust", Method::LJust, 1, 2),
    ("rjust", Method::RJust, 1, 2),
    ("center", Method::Center, 1, 2),
    ("isdigit", Method::IsDigit, 0, 0),
    ("isalpha", Method::IsAlpha, 0, 0),
    ("isalnum", Method::IsAlnum, 0, 0),
    ("isspace", Method::IsSpace, 0, 0),
    ("islower", Method::IsLower, 0, 0),
    ("isupper", Method::IsUpper, 0, 0),
    ("format", Method::Format, 0, usize::MAX),
    ("full_url", Method::FullUrl, 0, 0),
    ("get_argument", Method::GetArgument, 1, 3),
    ("get_arguments", Method::GetArguments, 1, 2),
    ("get_query_argument", Method::GetQueryArgument, 1, 3),
    ("get_query_arguments", Method::GetQueryArguments, 1, 2),
    ("get_body_argument", Method::GetBodyArgument, 1, 3),
    ("get_body_arguments", Method::GetBodyArguments, 1, 2),
    ("get_cookie", Method::GetCookie, 1, 2),
];

impl Method {
    /// The method of this name, and how many arguments it takes.
    pub(super) fn from_name(name: &str) -> Option<(Method, std::ops::RangeInclusive<usize>)> {
        TABLE
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|&(_, m, min, max)| (m, min..=max))
    }

    /// A method of the render's `request` or `handler`, not of a value:
    /// `full_url`, `get_argument`...; it takes keyword arguments.
    pub(in crate::web::template) fn of_request(self) -> bool {
        matches!(
            self,
            Method::FullUrl
                | Method::GetArgument
                | Method::GetArguments
                | Method::GetQueryArgument
                | Method::GetQueryArguments
                | Method::GetBodyArgument
                | Method::GetBodyArguments
                | Method::GetCookie
        )
    }

    pub(in crate::web::template) fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, m, ..)| *m == self)
            .map_or("?", |(n, ..)| n)
    }
}

/// Python's `str.title`: a letter after a letter lowercased, any other
/// letter uppercased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut after_letter = false;
    for (i, c) in s.char_indices() {
        if after_letter {
            push_lower_at(&mut out, s, i, c);
        } else {
            push_titlecase(&mut out, c);
        }
        after_letter = cased(c);
    }
    out
}

/// Python's lowercase of `c`, the character at byte `i` of `s`: its
/// `to_lowercase`, but a `Σ` that ends a word is `ς` (Unicode's
/// `Final_Sigma`, as Python's `handle_capital_sigma` decides it: a cased
/// character before it and none after it, case-ignorable ones skipped).
fn push_lower_at(out: &mut String, s: &str, i: usize, c: char) {
    if c != '\u{3a3}' {
        out.extend(c.to_lowercase());
        return;
    }
    let before = s[..i]
        .chars()
        .rev()
        .find(|&p| !case_ignorable(p))
        .is_some_and(cased);
    let after = s[i + c.len_utf8()..]
        .chars()
        .find(|&n| !case_ignorable(n))
        .is_some_and(cased);
    out.push(if before && !after {
        '\u{3c2}'
    } else {
        '\u{3c3}'
    });
}

/// Unicode's `Case_Ignorable`: marks, format characters, modifier
/// letters and symbols, and the apostrophes, periods and colons that
/// words run through.
fn case_ignorable(c: char) -> bool {
    static IGNORABLE: OnceLock<Regex> = OnceLock::new();
    matches!(c, '\'' | '.' | ':' | '^' | '`')
        || (!c.is_ascii()
            && all_in(
                &IGNORABLE,
                r"\p{Mn}\p{Me}\p{Cf}\p{Lm}\p{Sk}\x{b7}\x{387}\x{55f}\x{5f4}\x{2018}\x{2019}\x{2024}\x{2027}\x{fe13}\x{fe52}\x{fe55}\x{ff07}\x{ff0e}\x{ff1a}",
                c.encode_utf8(&mut [0; 4]),
            ))
}

/// Python's titlecase of `c` (what `title` and `capitalize` make of a
/// word's first character): its uppercase, but for the characters whose
/// titlecase Unicode gives apart: digraphs (`ǆ` → `ǅ`), ligatures
/// (`ﬁ` → `Fi`), Georgian (itself) and Greek with ypogegrammeni.
fn push_titlecase(out: &mut String, c: char) {
    let n = u32::from(c);
    match n {
        // Georgian Mkhedruli: titlecase is the letter itself (uppercase is
        // Mtavruli).
        0x10d0..=0x10fa | 0x10fd..=0x10ff => out.push(c),
        // Greek with ypogegrammeni: the prosgegrammeni letter (uppercase
        // is two letters).
        0x1f80..=0x1faf => out.push(char::from_u32(n | 8).unwrap_or(c)),
        _ => match TITLECASE_APART.binary_search_by_key(&c, |&(k, _)| k) {
            Ok(i) => out.push_str(TITLECASE_APART[i].1),
            Err(_) => out.extend(c.to_uppercase()),
        },
    }
}

/// The other characters whose titlecase is not their uppercase (Python
/// 3.11, Unicode 14), in order.
const TITLECASE_APART: &[(char, &str)] = &[
    ('\u{df}', "Ss"),
    ('\u{1c4}', "\u{1c5}"),
    ('\u{1c5}', "\u{1c5}"),
    ('\u{1c6}', "\u{1c5}"),
    ('\u{1c7}', "\u{1c8}"),
    ('\u{1c8}', "\u{1c8}"),
    ('\u{1c9}', "\u{1c8}"),
    ('\u{1ca}', "\u{1cb}"),
    ('\u{1cb}', "\u{1cb}"),
    ('\u{1cc}', "\u{1cb}"),
    ('\u{1f1}', "\u{1f2}"),
    ('\u{1f2}', "\u{1f2}"),
    ('\u{1f3}', "\u{1f2}"),
    ('\u{587}', "\u{535}\u{582}"),
    ('\u{1fb2}', "\u{1fba}\u{345}"),
    ('\u{1fb3}', "\u{1fbc}"),
    ('\u{1fb4}', "\u{386}\u{345}"),
    ('\u{1fb7}', "\u{391}\u{342}\u{345}"),
    ('\u{1fbc}', "\u{1fbc}"),
    ('\u{1fc2}', "\u{1fca}\u{345}"),
    ('\u{1fc3}', "\u{1fcc}"),
    ('\u{1fc4}', "\u{389}\u{345}"),
    ('\u{1fc7}', "\u{397}\u{342}\u{345}"),
    ('\u{1fcc}', "\u{1fcc}"),
    ('\u{1ff2}', "\u{1ffa}\u{345}"),
    ('\u{1ff3}', "\u{1ffc}"),
    ('\u{1ff4}', "\u{38f}\u{345}"),
    ('\u{1ff7}', "\u{3a9}\u{342}\u{345}"),
    ('\u{1ffc}', "\u{1ffc}"),
    ('\u{fb00}', "Ff"),
    ('\u{fb01}', "Fi"),
    ('\u{fb02}', "Fl"),
    ('\u{fb03}', "Ffi"),
    ('\u{fb04}', "Ffl"),
    ('\u{fb05}', "St"),
    ('\u{fb06}', "St"),
    ('\u{fb13}', "\u{544}\u{576}"),
    ('\u{fb14}', "\u{544}\u{565}"),
    ('\u{fb15}', "\u{544}\u{56b}"),
    ('\u{fb16}', "\u{54e}\u{576}"),
    ('\u{fb17}', "\u{544}\u{56d}"),
];

/// A cased character, as Python's `islower`/`isupper`/`title` count them
/// (Unicode's `Cased`: lowercase, uppercase or titlecase).
fn cased(c: char) -> bool {
    c.is_lowercase() || c.is_uppercase() || titlecase(c)
}

/// A titlecase letter (`Lt`, such as `ǅ`).
fn titlecase(c: char) -> bool {
    !c.is_ascii() && all_in(&TITLECASE, r"\p{Lt}", c.encode_utf8(&mut [0; 4]))
}

static TITLECASE: OnceLock<Regex> = OnceLock::new();
static ALPHA: OnceLock<Regex> = OnceLock::new();
static ALNUM: OnceLock<Regex> = OnceLock::new();
static DIGIT: OnceLock<Regex> = OnceLock::new();

/// Python's `str.isalpha`: letters (`L*`; Rust's `is_alphabetic` also
/// takes marks such as U+0345 and letter numbers such as `Ⅷ`).
const ALPHA_CLASS: &str = r"\p{L}";
/// Python's `str.isalnum`: letters and numbers (`N*`; the ideographs
/// Python also counts as numeric are letters).
const ALNUM_CLASS: &str = r"\p{L}\p{N}";
/// Python's `str.isdigit`: decimal digits (`Nd`) and the characters
/// whose `Numeric_Type` is `Digit` (superscripts, circled digits, ...;
/// Python 3.11's Unicode 14), not other numbers such as `½` or `Ⅷ`.
const DIGIT_CLASS: &str = r"\p{Nd}\x{b2}-\x{b3}\x{b9}\x{1369}-\x{1371}\x{19da}\x{2070}\x{2074}-\x{2079}\x{2080}-\x{2089}\x{2460}-\x{2468}\x{2474}-\x{247c}\x{2488}-\x{2490}\x{24ea}\x{24f5}-\x{24fd}\x{24ff}\x{2776}-\x{277e}\x{2780}-\x{2788}\x{278a}-\x{2792}\x{10a40}-\x{10a43}\x{10e60}-\x{10e68}\x{11052}-\x{1105a}\x{1f100}-\x{1f10a}";

/// Whether `s` is not empty and every character of it is in the regex
/// character class `class` (compiled once into `re`).
fn all_in(re: &'static OnceLock<Regex>, class: &str, s: &str) -> bool {
    re.get_or_init(|| {
        Regex::new(&format!(r"\A[{class}]+\z"))
            .unwrap_or_else(|e| unreachable!("the class compiles: {e}"))
    })
    .is_match(s)
}

/// Python's line boundaries (`str.splitlines`), besides `\r\n`.
fn line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// The `start` and `end` arguments (`args[1]`, `args[2]`, `None` or
/// missing for the ends) of a search in `len` items, as Python adjusts
/// them (from the end when negative); `None` when the window is empty
/// past the end or reversed, where nothing (not even `''`) is found.
fn window(
    name: &str,
    len: usize,
    args: &[Val<'_>],
) -> Result<Option<(usize, usize)>, TemplateError> {
    let len = len as i128;
    let bound = |i: usize, default: i128| -> Result<i128, TemplateError> {
        let n = match args.get(i) {
            None | Some(Val::Json(Value::Null)) => return Ok(default),
            Some(v) => match number(*v) {
                Some(Num::Int(n)) => n,
                _ => {
                    return Err(TemplateError::Type(format!(
                        "{name}(): slice indices must be integers or None"
                    )))
                }
            },
        };
        Ok(if n < 0 { (n + len).max(0) } else { n })
    };
    let (start, end) = (bound(1, 0)?, bound(2, len)?.min(len));
    Ok((start <= end).then_some((start as usize, end as usize)))
}

/// The byte offset of character `n` of `s` (its length past the end).
fn byte_at(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// The character position of byte offset `at` in `s`.
fn char_pos(s: &str, at: usize) -> i64 {
    s[..at].chars().count() as i64
}

/// `s.split(None, maxsplit)` (`from_right`: `rsplit`): runs of whitespace
/// separate, none at either end; after `maxsplit` splits the rest is one
/// item, whitespace kept on its inner side.
fn split_whitespace(
    s: &str,
    maxsplit: Option<usize>,
    from_right: bool,
) -> Result<Vec<Value>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = if from_right {
        s.trim_end_matches(py_space)
    } else {
        s.trim_start_matches(py_space)
    };
    check_items(
        s.split(py_space)
            .filter(|w| !w.is_empty())
            .count()
            .min(maxsplit.map_or(usize::MAX, |m| m + 1)),
    )?;
    while !rest.is_empty() {
        if maxsplit.is_some_and(|m| parts.len() == m) {
            parts.push(Value::String(rest.into()));
            break;
        }
        let at = if from_right {
            rest.rfind(py_space)
        } else {
            rest.find(py_space)
        };
        // The whitespace character's start and end.
        let cut = at.map(|i| (i, i + rest[i..].chars().next().map_or(1, char::len_utf8)));
        match cut {
            None => {
                parts.push(Value::String(rest.into()));
                break;
            }
            Some((i, j)) if from_right => {
                parts.push(Value::String(rest[j..].into()));
                rest = rest[..i].trim_end_matches(py_space);
            }
            Some((i, j)) => {
                parts.push(Value::String(rest[..i].into()));
                rest = rest[j..].trim_start_matches(py_space);
            }
        }
    }
    if from_right {
        parts.reverse();
    }
    Ok(parts)
}

pub(super) fn call_method<'a>(
    method: Method,
    base: V<'a>,
    args: &[Val<'_>],
    max_len: usize,
) -> Result<V<'a>, TemplateError> {
    let kind = base.view().kind();
    let name = method.name();
    let wrong = || TemplateError::Type(format!("{name}() is not a method of {kind}"));
    let string_arg = |i: usize| -> Result<&str, TemplateError> {
        args.get(i)
            .and_then(|a| a.as_str())
            .ok_or_else(|| TemplateError::Type(format!("{name}() takes strings")))
    };
    let int_arg = |i: usize| -> Result<i128, TemplateError> {
        match args.get(i).copied().and_then(number) {
            Some(Num::Int(n)) => Ok(n),
            _ => Err(TemplateError::Type(format!(
                "{name}()'s argument {} must be an integer",
                i + 1
            ))),
        }
    };
    let too_long = || TemplateError::TooLarge(format!("a string over {max_len} bytes"));
    if let Some(v) = container_method(method, &base, args)? {
        return Ok(v);
    }
    let view = base.view();
    let Some(s) = view.as_str() else {
        return Err(wrong());
    };
    let strip_set = |i: usize| -> Result<Option<&str>, TemplateError> {
        match args.get(i) {
            None | Some(Val::Json(Value::Null)) => Ok(None),
            Some(_) => string_arg(i).map(Some),
        }
    };
    let in_set = |set: Option<&str>, c: char| match set {
        None => py_space(c),
        Some(set) => set.contains(c),
    };
    // `width` characters at most `max_len` bytes.
    let width = |i: usize| -> Result<usize, TemplateError> {
        let w = int_arg(i)?.max(0);
        usize::try_from(w)
            .ok()
            .filter(|w| w.saturating_mul(4) <= max_len.max(s.len()))
            .ok_or_else(too_long)
    };
    let fill = || -> Result<char, TemplateError> {
        if args.len() < 2 {
            return Ok(' ');
        }
        let f = string_arg(1)?;
        let mut cs = f.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(TemplateError::Type(format!(
                "{name}(): the fill character must be exactly one character long"
            ))),
        }
    };
    let maxsplit = || -> Result<Option<usize>, TemplateError> {
        match args.get(1) {
            None => Ok(None),
            Some(_) => Ok(usize::try_from(int_arg(1)?).ok()),
        }
    };
    let separator = || -> Result<Option<&str>, TemplateError> {
        match args.first() {
            None | Some(Val::Json(Value::Null)) => Ok(None),
            Some(_) => {
                let sep = string_arg(0)?;
                if sep.is_empty() {
                    return Err(TemplateError::Type(format!("{name}(): empty separator")));
                }
                Ok(Some(sep))
            }
        }
    };
    let text = |t: String| Value::String(t);
    let all_chars = |f: fn(char) -> bool| Value::Bool(!s.is_empty() && s.chars().all(f));
    let len = s.chars().count();
    let v = match method {
        Method::Upper => text(s.to_uppercase()),
        Method::Lower => text(s.to_lowercase()),
        Method::SwapCase => {
            let mut out = String::with_capacity(s.len());
            for (i, c) in s.char_indices() {
                if c.is_uppercase() {
                    push_lower_at(&mut out, s, i, c);
                } else if c.is_lowercase() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
            }
            text(out)
        }
        Method::Strip => {
            let set = strip_set(0)?;
            text(s.trim_matches(|c| in_set(set, c)).into())
        }
        Method::LStrip => {
            let set = strip_set(0)?;
            text(s.trim_start_matches(|c| in_set(set, c)).into())
        }
        Method::RStrip => {
            let set = strip_set(0)?;
            text(s.trim_end_matches(|c| in_set(set, c)).into())
        }
        Method::Title => text(title(s)),
        Method::Capitalize => {
            let mut out = String::with_capacity(s.len());
            for (i, c) in s.char_indices() {
                if i == 0 {
                    push_titlecase(&mut out, c);
                } else {
                    push_lower_at(&mut out, s, i, c);
                }
            }
            text(out)
        }
        Method::StartsWith | Method::EndsWith if args.len() > 1 => {
            let Some((a, b)) = window(name, len, args)? else {
                return Ok(V::Own(Value::Bool(false)));
            };
            let inner = &s[byte_at(s, a)..byte_at(s, b)];
            let rest: Vec<Val<'_>> = args[..1].to_vec();
            return call_method(method, V::Own(Value::String(inner.into())), &rest, max_len);
        }
        Method::Count | Method::Find | Method::Index | Method::RFind | Method::RIndex
            if args.len() > 1 =>
        {
            let Some((a, b)) = window(name, len, args)? else {
                string_arg(0)?;
                return match method {
                    Method::Count => Ok(V::Own(Value::from(0))),
                    Method::Find | Method::RFind => Ok(V::Own(Value::from(-1))),
                    _ => Err(TemplateError::Type(format!(
                        "{name}(): substring not found"
                    ))),
                };
            };
            let inner = &s[byte_at(s, a)..byte_at(s, b)];
            let found = call_method(
                method,
                V::Own(Value::String(inner.into())),
                &args[..1],
                max_len,
            )?;
            return Ok(V::Own(match (method, found.view()) {
                (Method::Count, _) => to_value(found.view()),
                (_, v) => match number(v) {
                    Some(Num::Int(i)) if i >= 0 => Value::from(i as i64 + a as i64),
                    _ => Value::from(-1),
                },
            }));
        }
        Method::StartsWith | Method::EndsWith => {
            // A string, or a tuple (a list) of them.
            let options: Vec<&str> = match args[0] {
                Val::Json(Value::Array(items)) => items
                    .iter()
                    .map(|i| Val::Json(i).as_str())
                    .collect::<Option<_>>()
                    .ok_or_else(|| TemplateError::Type(format!("{name}() takes strings")))?,
                _ => vec![string_arg(0)?],
            };
            Value::Bool(options.iter().any(|o| {
                if method == Method::StartsWith {
                    s.starts_with(o)
                } else {
                    s.ends_with(o)
                }
            }))
        }
        Method::Replace => {
            let (from, to) = (string_arg(0)?, string_arg(1)?);
            let limit = match args.get(2) {
                None => None,
                Some(_) => usize::try_from(int_arg(2)?).ok(),
            };
            let found = if from.is_empty() {
                len + 1
            } else {
                s.matches(from).count()
            };
            let count = limit.map_or(found, |l| l.min(found));
            if s.len() + count.saturating_mul(to.len()) > max_len {
                return Err(too_long());
            }
            text(match limit {
                Some(l) => s.replacen(from, to, l),
                None => s.replace(from, to),
            })
        }
        Method::Split | Method::RSplit => {
            let right = method == Method::RSplit;
            let max = maxsplit()?;
            Value::Array(match separator()? {
                None => split_whitespace(s, max, right)?,
                Some(sep) => {
                    check_items(s.matches(sep).count().min(max.unwrap_or(usize::MAX)))?;
                    let mut parts: Vec<Value> = match (max, right) {
                        (None, _) => s.split(sep).map(|p| text(p.into())).collect(),
                        (Some(m), false) => s.splitn(m + 1, sep).map(|p| text(p.into())).collect(),
                        (Some(m), true) => s.rsplitn(m + 1, sep).map(|p| text(p.into())).collect(),
                    };
                    if right && max.is_some() {
                        parts.reverse();
                    }
                    parts
                }
            })
        }
        Method::SplitLines => {
            let mut lines = Vec::new();
            let mut rest = s;
            check_items(s.matches(line_break).count())?;
            while !rest.is_empty() {
                match rest.find(line_break) {
                    None => {
                        lines.push(text(rest.into()));
                        break;
                    }
                    Some(i) => {
                        lines.push(text(rest[..i].into()));
                        let c = rest[i..].chars().next().unwrap_or('\n');
                        let skip = if rest[i..].starts_with("\r\n") {
                            2
                        } else {
                            c.len_utf8()
                        };
                        rest = &rest[i + skip..];
                    }
                }
            }
            Value::Array(lines)
        }
        Method::Join => {
            let items: Vec<&str> = match args.first() {
                Some(Val::Json(Value::Array(items))) => items
                    .iter()
                    .map(|i| Val::Json(i).as_str())
                    .collect::<Option<_>>()
                    .ok_or_else(|| TemplateError::Type("join() takes strings".into()))?,
                Some(Val::Json(Value::Object(map))) => map.keys().map(String::as_str).collect(),
                Some(other) if other.as_str().is_some() => {
                    let t = other.as_str().unwrap_or_default();
                    t.char_indices()
                        .map(|(i, c)| &t[i..i + c.len_utf8()])
                        .collect()
                }
                _ => {
                    return Err(TemplateError::Type(
                        "join() takes an array of strings".into(),
                    ))
                }
            };
            let total = items.iter().map(|i| i.len()).sum::<usize>()
                + s.len().saturating_mul(items.len().saturating_sub(1));
            if total > max_len {
                return Err(too_long());
            }
            text(items.join(s))
        }
        Method::Count => {
            let sub = string_arg(0)?;
            Value::from(if sub.is_empty() {
                len + 1
            } else {
                s.matches(sub).count()
            })
        }
        Method::Find | Method::Index | Method::RFind | Method::RIndex => {
            let sub = string_arg(0)?;
            let at = if matches!(method, Method::Find | Method::Index) {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            match at {
                Some(i) => Value::from(char_pos(s, i)),
                None if matches!(method, Method::Find | Method::RFind) => Value::from(-1),
                None => {
                    return Err(TemplateError::Type(format!(
                        "{name}(): substring not found"
                    )))
                }
            }
        }
        Method::ZFill => {
            let w = width(0)?;
            let pad = w.saturating_sub(len);
            let (sign, digits) = match s.as_bytes().first() {
                Some(b'+' | b'-') => s.split_at(1),
                _ => ("", s),
            };
            text(format!("{sign}{}{digits}", "0".repeat(pad)))
        }
        Method::LJust | Method::RJust | Method::Center => {
            let (w, f) = (width(0)?, fill()?);
            let marg = w.saturating_sub(len);
            let left = match method {
                Method::LJust => 0,
                Method::RJust => marg,
                // CPython's `pad`: the odd character goes left when the
                // width is odd.
                _ => marg / 2 + (marg & w & 1),
            };
            let right = marg - left;
            let mut out = String::with_capacity(s.len() + marg * f.len_utf8());
            out.extend(std::iter::repeat_n(f, left));
            out.push_str(s);
            out.extend(std::iter::repeat_n(f, right));
            text(out)
        }
        Method::IsDigit => Value::Bool(all_in(&DIGIT, DIGIT_CLASS, s)),
        Method::IsAlpha => Value::Bool(all_in(&ALPHA, ALPHA_CLASS, s)),
        Method::IsAlnum => Value::Bool(all_in(&ALNUM, ALNUM_CLASS, s)),
        Method::IsSpace => all_chars(py_space),
        // Python's: a cased character, and none uppercase or titlecase
        // (for `isupper`, none lowercase or titlecase).
        Method::IsLower => Value::Bool(
            s.chars().any(char::is_lowercase)
                && !s.chars().any(|c| c.is_uppercase() || titlecase(c)),
        ),
        Method::IsUpper => Value::Bool(
            s.chars().any(char::is_uppercase)
                && !s.chars().any(|c| c.is_lowercase() || titlecase(c)),
        ),
        Method::Get | Method::Keys | Method::Values | Method::Items | Method::Format => {
            return Err(wrong())
        }
        Method::FullUrl
        | Method::GetArgument
        | Method::GetArguments
        | Method::GetQueryArgument
        | Method::GetQueryArguments
        | Method::GetBodyArgument
        | Method::GetBodyArguments
        | Method::GetCookie => return Err(wrong()),
    };
    Ok(V::Own(v))
}

/// A method of a dict (`get`, `keys`, `values`, `items`) or of a list
/// (`count`, `index`), or `None` for a method of a string.
fn container_method<'a>(
    method: Method,
    base: &V<'a>,
    args: &[Val<'_>],
) -> Result<Option<V<'a>>, TemplateError> {
    // A borrowed dict's value stays borrowed.
    if let (Method::Get, V::Ref(Val::Json(Value::Object(map)))) = (method, base) {
        let found = args
            .first()
            .copied()
            .and_then(Val::as_str)
            .and_then(|k| map.get(k));
        return Ok(Some(match found {
            Some(v) => V::Ref(Val::Json(v)),
            None => V::Own(args.get(1).map_or(Value::Null, |d| to_value(*d))),
        }));
    }
    let v = match (method, base.view()) {
        (Method::Get, Val::Json(Value::Object(map))) => {
            let key = args.first().copied().and_then(Val::as_str);
            key.and_then(|k| map.get(k))
                .cloned()
                .unwrap_or_else(|| args.get(1).map_or(Value::Null, |d| to_value(*d)))
        }
        (Method::Keys, Val::Json(Value::Object(map))) => {
            Value::Array(map.keys().map(|k| Value::String(k.clone())).collect())
        }
        (Method::Values, Val::Json(Value::Object(map))) => {
            Value::Array(map.values().cloned().collect())
        }
        (Method::Items, Val::Json(Value::Object(map))) => Value::Array(
            map.iter()
                .map(|(k, v)| Value::Array(vec![Value::String(k.clone()), v.clone()]))
                .collect(),
        ),
        (Method::Count, Val::Json(Value::Array(_))) if args.len() > 1 => {
            return Err(TemplateError::Type(
                "count() takes exactly one argument".into(),
            ))
        }
        (Method::Count, Val::Json(Value::Array(items))) => Value::from(
            items
                .iter()
                .filter(|i| equal(args[0], Val::Json(i)))
                .count(),
        ),
        (Method::Index, Val::Json(Value::Array(items))) => {
            let (a, b) = window("index", items.len(), args)?.unwrap_or((0, 0));
            let items = items.get(a..b).unwrap_or(&[]);
            match items.iter().position(|i| equal(args[0], Val::Json(i))) {
                Some(i) => Value::from(i + a),
                None => {
                    return Err(TemplateError::Type(format!(
                        "index(): {} is not in the list",
                        args[0].text()
                    )))
                }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(V::Own(v)))
}

#[cfg(test)]
mod tests {
    use crate::web::template::Template;
    use serde_json::{json, Value};

    fn values() -> Value {
        json!({
            "xs": [3, 1, 2, 1], "d": {"b": 1, "a": 2}, "s": "  Hello World  ",
            "t": "a,b,,c", "n": "-42", "u": "héllo wörld"
        })
    }

    /// Each result is what Python 3 prints for the same expression (a
    /// dict view aside: a list here).
    #[test]
    fn methods_give_pythons_results() {
        super::super::check_results(
            &values(),
            &[
                ("d.keys()", "['b', 'a']"),
                ("d.values()", "[1, 2]"),
                ("d.items()", "[['b', 1], ['a', 2]]"),
                ("sorted(d.items())", "[['a', 2], ['b', 1]]"),
                ("[k + str(v) for k, v in d.items()]", "['b1', 'a2']"),
                ("{'x': 1}.get('x')", "1"),
                ("d.get('z', 0)", "0"),
                ("xs.count(1)", "2"),
                ("xs.index(2)", "2"),
                ("s.strip()", "Hello World"),
                ("s.lstrip()", "Hello World  "),
                ("s.rstrip()", "  Hello World"),
                ("'xxaxyx'.strip('xy')", "a"),
                ("'--a--'.lstrip('-')", "a--"),
                ("s.strip(None)", "Hello World"),
                ("s.swapcase()", "  hELLO wORLD  "),
                ("u.title()", "Héllo Wörld"),
                ("s.split(None, 1)", "['Hello', 'World  ']"),
                ("s.rsplit(None, 1)", "['  Hello', 'World']"),
                ("s.split()", "['Hello', 'World']"),
                ("'a b c'.rsplit(None, 0)", "['a b c']"),
                ("t.split(',', 1)", "['a', 'b,,c']"),
                ("t.rsplit(',', 1)", "['a,b,', 'c']"),
                ("t.rsplit(',')", "['a', 'b', '', 'c']"),
                (
                    "'a\\nb\\r\\nc\\n\\nd'.splitlines()",
                    "['a', 'b', 'c', '', 'd']",
                ),
                ("''.splitlines()", "[]"),
                ("s.count('l')", "3"),
                ("'aaaa'.count('aa')", "2"),
                ("'ab'.count('')", "3"),
                ("u.find('w')", "6"),
                ("u.find('ö')", "7"),
                ("u.rfind('l')", "9"),
                ("u.find('z')", "-1"),
                ("u.index('o')", "4"),
                ("u.rindex('l')", "9"),
                ("n.zfill(6)", "-00042"),
                ("'7'.zfill(3)", "007"),
                ("'abc'.zfill(2)", "abc"),
                ("'ab'.center(7, '*')", "***ab**"),
                ("'ab'.center(6, '*')", "**ab**"),
                ("'abc'.center(6)", " abc  "),
                ("'ab'.ljust(5, '-')", "ab---"),
                ("'ab'.rjust(5)", "   ab"),
                ("'é'.rjust(3, 'ü')", "üüé"),
                ("'123'.isdigit()", "True"),
                ("''.isdigit()", "False"),
                ("'1a'.isdigit()", "False"),
                ("u.replace(' ', '').isalpha()", "True"),
                ("'ab1'.isalnum()", "True"),
                ("' \\t'.isspace()", "True"),
                ("'ab1'.islower()", "True"),
                ("'1'.islower()", "False"),
                ("'AB'.isupper()", "True"),
                // Unicode's categories as Python reads them (Tornado
                // 6.6.1 on Python 3.11).
                ("'\\u00b2\\u0663'.isdigit()", "True"),
                ("'\\u00bd'.isdigit()", "False"),
                ("'\\u2167'.isdigit()", "False"),
                ("'\\u2167'.isalpha()", "False"),
                ("'a\\u0345'.isalpha()", "False"),
                ("'\\u24d0'.isalnum()", "False"),
                ("'\\u00bd\\u4e00'.isalnum()", "True"),
                ("'\\x1c\\x1f'.isspace()", "True"),
                ("'\\u01c5a'.islower()", "False"),
                ("'\\u01c5A'.isupper()", "False"),
                ("'\\x1ca b\\x1d'.strip()", "a b"),
                ("'\\x1ca\\x1fb\\x1d'.split()", "['a', 'b']"),
                ("'\\u01c6a b\\u01c5'.title()", "\u{1c5}a B\u{1c6}"),
                ("'\\ufb01x \\u0149'.title()", "Fix \u{2bc}N"),
                ("'\\u01c6A'.capitalize()", "\u{1c5}a"),
                ("'\\ufb01X'.capitalize()", "Fix"),
                (
                    "'\\u10d0\\u1f80 \\u1fb3'.title()",
                    "\u{10d0}\u{1f80} \u{1fbc}",
                ),
                ("'\\u00df'.title()", "Ss"),
                // A final sigma, in context as Python lowers it.
                (
                    "'\\u0391\\u03a3 \\u0391\\u03a3\\''.title()",
                    "\u{391}\u{3c2} \u{391}\u{3c2}'",
                ),
                (
                    "'\\u0391\\u03a3 \\u0391\\u03a3'.capitalize()",
                    "\u{391}\u{3c2} \u{3b1}\u{3c2}",
                ),
                (
                    "'\\u0391\\u03a3\\u0391 \\u03a3'.swapcase()",
                    "\u{3b1}\u{3c3}\u{3b1} \u{3c3}",
                ),
                ("'\\u0391\\u03a3 x'.swapcase()", "\u{3b1}\u{3c2} X"),
                ("'aaaa'.replace('a', 'b', 2)", "bbaa"),
                ("'abc'.startswith(('x', 'a'))", "True"),
                ("'abc'.endswith(['x', 'y'])", "False"),
                ("'-'.join('abc')", "a-b-c"),
            ],
        );
    }

    #[test]
    fn methods_refuse_what_python_refuses() {
        super::super::check_errors(
            &values(),
            &[
                ("xs.index(9)", "not in the list"),
                ("u.index('z')", "substring not found"),
                ("d.upper()", "upper() is not a method of an object"),
                ("xs.items()", "items() is not a method of an array"),
                ("s.keys()", "keys() is not a method of a string"),
                ("'ab'.center(5, 'xy')", "exactly one character"),
                ("t.split('')", "empty separator"),
                ("'a'.zfill('3')", "must be an integer"),
                ("'a'.ljust(100000000000)", "over"),
            ],
        );
        assert!(Template::parse("{{ s.nosuch() }}").is_err());
        assert!(Template::parse("{{ s.upper(1) }}").is_err());
    }
}
