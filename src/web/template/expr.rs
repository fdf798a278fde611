//! Python expressions in templates: what `{{ }}`, `{% if %}`, `{% set %}`
//! and `{% for %}` take beyond a bare path, evaluated with Python's
//! semantics for the values a template sees (JSON values and strings).
//!
//! ```text
//! test       := or_test ("if" or_test "else" test)?  Python's conditional expression
//! or_test    := and_test ("or" and_test)*          the first true operand, or the last
//! and_test   := not_test ("and" not_test)*         the first false operand, or the last
//! not_test   := "not" not_test | comparison
//! comparison := sum (op sum)*                       chained as Python: a < b < c
//! op         := == != < <= > >= in "not in" is "is not"
//! sum        := term (("+" | "-") term)*
//! term       := factor (("*" | "/" | "//" | "%") factor)*   str % x: printf
//! factor     := ("-" | "+") factor | power
//! power      := postfix ("**" factor)?             right to left: -2 ** 2 is -4
//! postfix    := atom ("[" test "]" | "[" slice "]" | ".name" | "." method "(" args ")")*
//! slice      := test? ":" test? (":" test?)?
//! atom       := path | literal | "(" test ")" | "(" (item ",")+ item? ")"
//!             | "[" (item ("," item)* ","?)? "]"  `*xs` splices xs's items
//!             | "[" test comp_for "]"            a list comprehension
//!             | "{" (pair ("," pair)* ","?)? "}"  string keys
//!             | "{" test ":" test comp_for "}"   a dict comprehension
//!             | call "(" test ")" | "xsrf_form_html" "(" ")"
//!             | "reverse_url" "(" test ("," test)* ")"
//!             | ("_" | "pgettext" | "locale." locale_fn) "(" args ")"
//!             | name "(" args ")"    the application's ui_method, else a builtin
//! args       := (arg ("," arg)*)? ("," kwarg)* ","?   each keyword once
//! arg        := test | "*" test          `*xs`: its items, one argument each
//! kwarg      := name "=" test | "**" test  `**d`: its keys, each a keyword
//!                                      (`*` and `**` where the arguments
//!                                      are counted when rendered: the
//!                                      application's and Python's functions,
//!                                      modules, `str.format`)
//! locale_fn  := translate | pgettext | list | friendly_number | format_date
//!             | format_day                      (positional, then name=value)
//! call       := len | str | int | abs | json_encode | url_escape
//!             | xhtml_escape | escape | squeeze | static_url
//! method     := one of [`methods`]' table (str, list and dict methods)
//! item       := test | "*" test
//! pair       := test ":" test | "**" test         `**d` merges d's entries
//! comp_for   := "for" name ("," name)? "in" or_test ("if" or_test)* comp_for?
//! ```
//!
//! A comprehension's `for` also takes the sole argument of a call:
//! `", ".join(t.name for t in tags)` (Python's generator expression, a
//! list here).
//!
//! `-` inside a word is part of it (`a-b` is a path, as a
//! [`Template::render`](super::Template::render) pair's name can be):
//! subtraction is written with spaces, `a - b`. `is` and `is not` take
//! `None`, `True` or `False` on their right (what identity means for a JSON
//! value). Where Python raises `TypeError` (ordering a string and a number,
//! `in` a number, adding a string to a number), `ZeroDivisionError`,
//! `ValueError` (`int('x')`) or `IndexError`/`KeyError`, the render fails:
//! [`TemplateError::Type`], or [`TemplateError::Undefined`] for a missing
//! index or key.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{char_at, kind, literal, path, py_index, Func, TemplateError, Val};

mod builtins;
mod format;
mod lambda;
mod methods;

use methods::call_method;
pub(super) use methods::Method;

/// Parentheses, subscripts and unary operators nest at most this deep.
const MAX_DEPTH: usize = 32;
/// Tokens in one expression at most (so that a chain of binary operators,
/// which nests to the left, stays shallow).
const MAX_TOKENS: usize = 256;
/// Items a list an expression builds may hold at most (`[0] * n`, a
/// comprehension, `range`, `split`, a string's characters), as many as
/// `set` and `for` may keep: a render's output bound counts bytes, and a
/// list of that many values would take some eighty times the memory.
const MAX_ITEMS: usize = super::MAX_COMPUTED;

/// Lists and dicts an expression builds nest at most this deep (as
/// serde_json's parser does): deeper, copying, printing and dropping one
/// would recurse too deep for the stack.
pub(super) const MAX_VALUE_DEPTH: usize = 128;

/// How many values `v` holds, itself and all nested in it, a string
/// counting one per 64 bytes besides (as a kept value does), counted up to
/// just past [`MAX_ITEMS`]: what copying it costs. [`TemplateError::TooDeep`]
/// when it nests deeper than [`MAX_VALUE_DEPTH`].
pub(super) fn weight(v: &Value) -> Result<usize, TemplateError> {
    fn count(v: &Value, n: &mut usize, depth: usize) -> Result<(), TemplateError> {
        *n += 1;
        if *n > MAX_ITEMS {
            return Ok(());
        }
        if depth > MAX_VALUE_DEPTH {
            return Err(TemplateError::TooDeep(format!(
                "a list or dict nested more than {MAX_VALUE_DEPTH} deep"
            )));
        }
        match v {
            Value::Array(items) => items.iter().try_for_each(|i| count(i, n, depth + 1)),
            Value::Object(map) => map.values().try_for_each(|i| count(i, n, depth + 1)),
            Value::String(s) => {
                *n += s.len() / 64;
                Ok(())
            }
            _ => Ok(()),
        }
    }
    let mut n = 0;
    count(v, &mut n, 0)?;
    Ok(n)
}

/// The values in `items`, nested ones too, as [`weight`] counts them (the
/// list holding them is one level).
fn weight_of(items: &[Value]) -> Result<usize, TemplateError> {
    let mut n = 0usize;
    for i in items {
        n += weight(i)?;
        if n > MAX_ITEMS {
            break;
        }
    }
    Ok(n)
}

/// [`TemplateError::TooLarge`] for a list of more than [`MAX_ITEMS`].
fn check_items(n: usize) -> Result<(), TemplateError> {
    if n > MAX_ITEMS {
        return Err(TemplateError::TooLarge(format!(
            "a list of {n} items (at most {MAX_ITEMS})"
        )));
    }
    Ok(())
}

/// `s`, or [`TemplateError::TooLarge`] when it is over `max_len` bytes: a
/// function's result inside an expression is bounded as the strings the
/// operators build are.
pub(super) fn bounded(s: String, max_len: usize) -> Result<String, TemplateError> {
    if s.len() > max_len {
        return Err(TemplateError::TooLarge(format!(
            "a value over {max_len} bytes"
        )));
    }
    Ok(s)
}

#[derive(Debug, Clone)]
pub(super) enum Exp {
    Path(String),
    Literal(Value),
    Or(Vec<Exp>),
    And(Vec<Exp>),
    Not(Box<Exp>),
    /// `then if cond else otherwise`.
    IfElse {
        cond: Box<Exp>,
        then: Box<Exp>,
        otherwise: Box<Exp>,
    },
    /// `first op1 x1 op2 x2 …` (each `op` between the operand before it and
    /// its own); at least one `op`.
    Compare {
        first: Box<Exp>,
        rest: Vec<(Op, Exp)>,
    },
    Arith {
        op: Arith,
        left: Box<Exp>,
        right: Box<Exp>,
    },
    Neg(Box<Exp>),
    /// `base[index]` (also `base.name` after a computed `base`).
    Index {
        base: Box<Exp>,
        index: Box<Exp>,
    },
    Call {
        callee: Callee,
        arg: Box<Exp>,
        /// Keyword arguments (`url_escape`'s and `linkify`'s).
        kwargs: Vec<(Kw, Exp)>,
    },
    /// `xsrf_form_html()`, the one function called without arguments.
    XsrfFormHtml,
    /// `reverse_url(name, *args)`: the arguments as written, `*xs`
    /// ([`Starred`](Exp::Starred)) giving xs's items, as Python's call.
    ReverseUrl(Vec<Exp>),
    /// `_(..)`, `pgettext(..)` and `locale.method(..)`: the arguments by
    /// the position of their parameter in [`LocaleFn::params`] (given by
    /// position or by keyword).
    Locale {
        func: LocaleFn,
        args: Vec<Option<Exp>>,
    },
    /// `[a, b, …]`; an item `*xs` ([`Starred`](Exp::Starred)) is xs's
    /// items.
    List(Vec<Exp>),
    /// `(a, b, …)`, `(a,)`, `()`: a list, but the positional arguments of
    /// `str % (a, b)`; `*xs` as in a list.
    Tuple(Vec<Exp>),
    /// `[elt for x in xs if cond …]`: a list comprehension, or a generator
    /// expression as a call's sole argument.
    Comp {
        elt: Box<Exp>,
        clauses: Vec<Clause>,
    },
    /// `{key: value, …}`: a dict display, its keys strings; an item
    /// `(None, d)` is `**d`, d's entries.
    Dict(Vec<(Option<Exp>, Exp)>),
    /// `{key: value for x in xs if cond …}`: a dict comprehension, as a
    /// [`Comp`](Exp::Comp) of `(key, value)` pairs; keys strings, a later
    /// pair replacing an earlier one's value in its place (as Python).
    DictComp(Box<Exp>),
    /// `name(args…, key=value…)` of a function the application adds
    /// (`ApplicationBuilder::ui_method`), looked up when rendered; in
    /// `{% module name(..) %}`, a UI module's `render`
    /// (`ApplicationBuilder::ui_module`).
    UiCall {
        name: String,
        args: Vec<Exp>,
        kwargs: Vec<(String, Exp)>,
    },
    /// `{% module name(args…, key=value…) %}`: the application's UI
    /// module `name` (`ApplicationBuilder::ui_module`), found when
    /// rendered; its HTML.
    UiModule {
        name: String,
        args: Vec<Exp>,
        kwargs: Vec<(String, Exp)>,
    },
    /// `base[start:stop:step]`, each part optional.
    Slice {
        base: Box<Exp>,
        parts: Box<[Option<Exp>; 3]>,
    },
    /// `lambda params: body`: a function, taken only where `sorted`,
    /// `min`, `max`, `map` and `filter` take one ([`lambda`]).
    Lambda {
        params: Vec<String>,
        body: Box<Exp>,
    },
    /// `*xs` among a call's arguments: the items of `xs`, each an argument
    /// (Python's unpacking), in calls of the application's functions and
    /// Python's builtins, `{% module %}` and `str.format`; in a list or
    /// tuple display, its items. (`**d` is a keyword argument named
    /// [`UNPACK`], and a `(None, d)` item of a [`Dict`](Exp::Dict).)
    Starred(Box<Exp>),
    /// `base.method(args, key=value…)` (keyword arguments: `format`'s).
    Method {
        base: Box<Exp>,
        method: Method,
        args: Vec<Exp>,
        kwargs: KeywordArgs,
    },
}

/// The functions of the request's locale a template calls: `_` and
/// `pgettext` (Tornado's namespace has them), and `locale`'s methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocaleFn {
    Translate,
    Pgettext,
    List,
    FriendlyNumber,
    FormatDate,
    FormatDay,
}

impl LocaleFn {
    /// `locale.name(`'s function.
    fn method(name: &str) -> Option<LocaleFn> {
        Some(match name {
            "translate" => LocaleFn::Translate,
            "pgettext" => LocaleFn::Pgettext,
            "list" => LocaleFn::List,
            "friendly_number" => LocaleFn::FriendlyNumber,
            "format_date" => LocaleFn::FormatDate,
            "format_day" => LocaleFn::FormatDay,
            _ => return None,
        })
    }

    /// The parameters, as Tornado names them.
    fn params(self) -> &'static [&'static str] {
        match self {
            LocaleFn::Translate => &["message", "plural_message", "count"],
            LocaleFn::Pgettext => &["context", "message", "plural_message", "count"],
            LocaleFn::List => &["parts"],
            LocaleFn::FriendlyNumber => &["value"],
            LocaleFn::FormatDate => &["date", "gmt_offset", "relative", "shorter", "full_format"],
            LocaleFn::FormatDay => &["date", "gmt_offset", "dow"],
        }
    }

    /// Whether a call gives what it must: `plural_message` and `count`
    /// together or neither, and the parameters before them.
    fn complete(self, given: &[Option<Exp>]) -> bool {
        let has = |i: usize| given.get(i).is_some_and(Option::is_some);
        match self {
            LocaleFn::Translate => has(0) && has(1) == has(2),
            LocaleFn::Pgettext => has(0) && has(1) && has(2) == has(3),
            _ => has(0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Callee {
    Len,
    Str,
    Int,
    Abs,
    /// A function of Tornado's template namespace.
    Func(Func),
}

/// Whether `name` is a function expressions can call.
pub(super) fn is_callee(name: &str) -> bool {
    Callee::from_name(name).is_some()
}

impl Callee {
    /// Python's `len`, `str`, `int` or `abs` of `v`; `None` for a function
    /// of Tornado's namespace (the render applies it).
    fn python(self, v: Val<'_>) -> Option<Result<Value, TemplateError>> {
        Some(match self {
            Callee::Len => py_len(v).and_then(|n| int(n as i128)),
            Callee::Str => Ok(Value::String(v.text().into_owned())),
            Callee::Int => py_int(v),
            Callee::Abs => match number(v) {
                Some(Num::Int(n)) => int(n.abs()),
                Some(Num::Float(f)) => float(f.abs()),
                None => Err(TemplateError::Type(format!(
                    "bad operand for abs(): {}",
                    v.kind()
                ))),
            },
            Callee::Func(_) => return None,
        })
    }

    fn from_name(name: &str) -> Option<Callee> {
        Some(match name {
            "len" => Callee::Len,
            "str" => Callee::Str,
            "int" => Callee::Int,
            "abs" => Callee::Abs,
            _ => Callee::Func(Func::from_name(name)?),
        })
    }
}

/// A keyword argument of a namespace function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kw {
    /// `url_escape(.., plus=)`.
    Plus,
    /// `linkify(.., shorten=)`.
    Shorten,
    /// `linkify(.., extra_params=)`.
    ExtraParams,
    /// `linkify(.., require_protocol=)`.
    RequireProtocol,
    /// `linkify(.., permitted_protocols=)`.
    PermittedProtocols,
    /// `static_url(.., include_version=)`.
    IncludeVersion,
    /// `static_url(.., include_host=)`.
    IncludeHost,
}

impl Kw {
    /// `name` as a keyword argument of `callee`, if it takes it.
    fn of(callee: Callee, name: &str) -> Option<Kw> {
        Some(match (callee, name) {
            (Callee::Func(Func::UrlEscape), "plus") => Kw::Plus,
            (Callee::Func(Func::Linkify), "shorten") => Kw::Shorten,
            (Callee::Func(Func::Linkify), "extra_params") => Kw::ExtraParams,
            (Callee::Func(Func::Linkify), "require_protocol") => Kw::RequireProtocol,
            (Callee::Func(Func::Linkify), "permitted_protocols") => Kw::PermittedProtocols,
            (Callee::Func(Func::StaticUrl), "include_version") => Kw::IncludeVersion,
            (Callee::Func(Func::StaticUrl), "include_host") => Kw::IncludeHost,
            _ => return None,
        })
    }
}

/// The keyword arguments of a call, evaluated (their defaults otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) plus: bool,
    pub(crate) shorten: bool,
    pub(crate) extra_params: String,
    pub(crate) require_protocol: bool,
    /// `None`: Tornado's default, `["http", "https"]`.
    pub(crate) permitted_protocols: Option<Permitted>,
    /// `static_url`'s `?v=` (Tornado's default: yes).
    pub(crate) include_version: bool,
    /// `static_url`'s `protocol://host` before the path (default: no).
    pub(crate) include_host: bool,
}

/// `permitted_protocols` as given: Python's `in` tests membership in a
/// list and a substring in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permitted {
    List(Vec<String>),
    Text(String),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            plus: true,
            shorten: false,
            extra_params: String::new(),
            require_protocol: false,
            permitted_protocols: None,
            include_version: true,
            include_host: false,
        }
    }
}

impl Permitted {
    /// Python's `proto in permitted_protocols`.
    pub(super) fn contains(&self, proto: &str) -> bool {
        match self {
            Permitted::List(items) => items.iter().any(|p| p == proto),
            Permitted::Text(s) => s.contains(proto),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'s> {
    Word(&'s str),
    Str(&'s str),
    /// A comparison or arithmetic operator.
    Op(&'s str),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    OpenBrace,
    CloseBrace,
    Comma,
    Colon,
    /// `=`, only as in a keyword argument (`url_escape(x, plus=False)`).
    Assign,
}

/// The characters other than whitespace that end a word; each is a token
/// of its own (or starts one), handled before a word is read. `-` is not
/// among them: inside a word it is part of the word.
const WORD_END: &str = "()[]{},:<>=!'\"+*/%";

fn tokens(src: &str) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while let Some(ch) = src[i..].chars().next() {
        if out.len() > MAX_TOKENS {
            return None;
        }
        let single = |t| Some((t, 1));
        let (tok, len) = match ch {
            // The same test as the end of a word below: a character that
            // ends a word is always consumed here.
            _ if ch.is_whitespace() => {
                i += ch.len_utf8();
                continue;
            }
            '(' => single(Tok::Open)?,
            ')' => single(Tok::Close)?,
            '[' => single(Tok::OpenBracket)?,
            ']' => single(Tok::CloseBracket)?,
            '{' => single(Tok::OpenBrace)?,
            '}' => single(Tok::CloseBrace)?,
            ',' => single(Tok::Comma)?,
            ':' => single(Tok::Colon)?,
            '\'' | '"' => {
                // To the quote no backslash escapes (UTF-8 continuation
                // bytes are never ASCII, so a byte scan is enough).
                let mut end = i + 1;
                loop {
                    match *b.get(end)? {
                        b'\\' => end += 2,
                        q if q == ch as u8 => break,
                        _ => end += 1,
                    }
                }
                (Tok::Str(&src[i..=end]), end + 1 - i)
            }
            '=' | '!' | '<' | '>' => {
                let len = if b.get(i + 1) == Some(&b'=') { 2 } else { 1 };
                let op = &src[i..i + len];
                match op {
                    "!" => return None,
                    "=" => (Tok::Assign, 1),
                    _ => (Tok::Op(op), len),
                }
            }
            '/' => {
                let len = if b.get(i + 1) == Some(&b'/') { 2 } else { 1 };
                (Tok::Op(&src[i..i + len]), len)
            }
            '+' | '*' | '%' | '-' => {
                let len = if ch == '*' && b.get(i + 1) == Some(&b'*') {
                    2
                } else {
                    1
                };
                (Tok::Op(&src[i..i + len]), len)
            }
            _ => {
                let word_end = |from: usize| {
                    src[from..]
                        .find(|c: char| c.is_whitespace() || WORD_END.contains(c))
                        .map_or(src.len(), |n| n + from)
                };
                let mut end = word_end(i);
                // A number's signed exponent (`1e+3`, `2.5E+1`) is part of
                // it, as Python reads it (`-` is a word's anyway).
                while b.get(end) == Some(&b'+')
                    && b.get(end + 1).is_some_and(u8::is_ascii_digit)
                    && matches!(b[end - 1], b'e' | b'E')
                    && (b[i].is_ascii_digit() || b[i] == b'.')
                {
                    end = word_end(end + 1);
                }
                (Tok::Word(&src[i..end]), end - i)
            }
        };
        out.push(tok);
        i += len;
    }
    Some(out)
}

/// Parses an expression; `None` when it is not one.
pub(super) fn parse(src: &str) -> Option<Exp> {
    let toks = tokens(src)?;
    let mut p = Parser { toks, at: 0 };
    let exp = p.test(0)?;
    (p.at == p.toks.len()).then_some(exp)
}

/// Parses `a, b, …` (one to three expressions: `range`'s arguments).
pub(super) fn parse_args(src: &str) -> Option<Vec<Exp>> {
    let toks = tokens(src)?;
    let mut p = Parser { toks, at: 0 };
    let args = p.comma_separated(0)?;
    (p.at == p.toks.len() && args.len() <= 3).then_some(args)
}

/// Parses the call of Tornado's `Template` UI module,
/// `Template("name.html", key=value, …)`: the name (a string literal) and
/// the keyword arguments, in order, each name once.
pub(super) fn parse_template_module(src: &str) -> Option<(String, Vec<(String, Exp)>)> {
    let toks = tokens(src)?;
    let mut p = Parser { toks, at: 0 };
    if p.peek()? != Tok::Word("Template") {
        return None;
    }
    p.at += 1;
    if !p.eat(Tok::Open) {
        return None;
    }
    let Some(Tok::Str(name)) = p.peek() else {
        return None;
    };
    p.at += 1;
    let Value::String(name) = literal(name)? else {
        return None;
    };
    let kwargs = p.keyword_args(0, |key| (!key.contains('.')).then(|| key.to_string()))?;
    (p.eat(Tok::Close) && p.at == p.toks.len()).then_some((name, kwargs))
}

/// A call's `name=value` arguments, in order.
type KeywordArgs = Vec<(String, Exp)>;

/// A `for` or `if` of a comprehension, in the order written.
#[derive(Debug, Clone)]
pub(super) enum Clause {
    /// `for name in iter`, or `for a, b in iter` (each item a pair).
    For {
        names: Vec<String>,
        iter: Exp,
    },
    If(Exp),
}

struct Parser<'s> {
    toks: Vec<Tok<'s>>,
    at: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<Tok<'s>> {
        self.toks.get(self.at).copied()
    }

    fn eat(&mut self, t: Tok<'_>) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `, name=value` pairs up to the call's `)` (not eaten; a trailing
    /// comma allowed, as Python allows), each name mapped by `key` (`None`
    /// refuses it) and given once.
    fn keyword_args<K: PartialEq>(
        &mut self,
        depth: usize,
        key: impl Fn(&'s str) -> Option<K>,
    ) -> Option<Vec<(K, Exp)>> {
        let mut kwargs: Vec<(K, Exp)> = Vec::new();
        while self.eat(Tok::Comma) {
            if self.peek() == Some(Tok::Close) {
                break;
            }
            let Some(Tok::Word(name)) = self.peek() else {
                return None;
            };
            let k = key(name)?;
            self.at += 1;
            if !self.eat(Tok::Assign) || kwargs.iter().any(|(seen, _)| *seen == k) {
                return None;
            }
            kwargs.push((k, self.test(depth)?));
        }
        Some(kwargs)
    }

    /// The arguments of a locale function after its `(`, through the `)`:
    /// positional ones, then keyword ones, as Python takes them.
    fn locale_call(&mut self, func: LocaleFn, depth: usize) -> Option<Exp> {
        let (positional, keywords) = self.call_args(depth + 1)?;
        // No generator expression: each parameter takes one value.
        if matches!(positional.as_slice(), [Exp::Comp { .. }]) || unpacks(&positional, &keywords) {
            return None;
        }
        let params = func.params();
        let mut args: Vec<Option<Exp>> = vec![None; params.len()];
        let named = keywords
            .into_iter()
            .map(|(name, value)| (params.iter().position(|p| *p == name), value));
        let given = positional
            .into_iter()
            .enumerate()
            .map(|(i, value)| (Some(i), value))
            .chain(named);
        for (slot, value) in given {
            if args.get_mut(slot?)?.replace(value).is_some() {
                return None;
            }
        }
        func.complete(&args).then_some(Exp::Locale { func, args })
    }

    /// A call's arguments after its `(`, through the `)`: positional ones,
    /// then `name=value` ones (each name once), as Python takes them; a
    /// trailing comma allowed.
    fn call_args(&mut self, depth: usize) -> Option<(Vec<Exp>, KeywordArgs)> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(String, Exp)> = Vec::new();
        while !self.eat(Tok::Close) {
            match (self.peek(), self.toks.get(self.at + 1)) {
                (Some(Tok::Op("**")), _) => {
                    self.at += 1;
                    kwargs.push((UNPACK.to_string(), self.test(depth)?));
                }
                (Some(Tok::Word(name)), Some(Tok::Assign)) => {
                    if !is_identifier(name) || kwargs.iter().any(|(seen, _)| seen == name) {
                        return None;
                    }
                    self.at += 2;
                    kwargs.push((name.to_string(), self.test(depth)?));
                }
                _ if !kwargs.is_empty() => return None,
                (Some(Tok::Op("*")), _) => {
                    self.at += 1;
                    args.push(Exp::Starred(Box::new(self.test(depth)?)));
                }
                _ => {
                    let arg = self.test(depth)?;
                    if args.is_empty() && self.peek() == Some(Tok::Word("for")) {
                        let comp = self.comprehension(arg, depth)?;
                        return self.eat(Tok::Close).then(|| (vec![comp], Vec::new()));
                    }
                    args.push(arg);
                }
            }
            if !self.eat(Tok::Comma) {
                return self.eat(Tok::Close).then_some((args, kwargs));
            }
        }
        Some((args, kwargs))
    }

    /// `modules.name(args…)` after its `(`: Tornado's `_tt_modules`
    /// namespace in an expression, the module's HTML (escaped by `{{ }}`,
    /// as Tornado escapes it). The built-in `linkify` and `xsrf_form_html`
    /// are their functions; `Template` needs the `{% module %}` tag (its
    /// template is loaded when the page is parsed).
    fn module_call(&mut self, module: &str, depth: usize) -> Option<Exp> {
        let (mut args, kwargs) = self.call_args(depth + 1)?;
        match module {
            "xsrf_form_html" | "linkify" if unpacks(&args, &kwargs) => None,
            "xsrf_form_html" => (args.is_empty() && kwargs.is_empty()).then_some(Exp::XsrfFormHtml),
            "linkify" if args.len() == 1 => {
                let callee = Callee::Func(Func::Linkify);
                let kwargs = kwargs
                    .into_iter()
                    .map(|(k, e)| Some((Kw::of(callee, &k)?, e)))
                    .collect::<Option<Vec<_>>>()?;
                Some(Exp::Call {
                    callee,
                    arg: Box::new(args.pop()?),
                    kwargs,
                })
            }
            "linkify" | "Template" => None,
            name if is_identifier(name) => Some(Exp::UiModule {
                name: name.to_string(),
                args,
                kwargs,
            }),
            _ => None,
        }
    }

    /// The `for … in … if …` clauses after a comprehension's element
    /// `elt`, up to (not eating) what closes it.
    fn comprehension(&mut self, elt: Exp, depth: usize) -> Option<Exp> {
        let mut clauses = Vec::new();
        while self.eat(Tok::Word("for")) {
            let mut names = Vec::new();
            loop {
                match self.peek()? {
                    Tok::Word(name) if is_identifier(name) && !is_keyword(name) => {
                        names.push(name.to_string());
                        self.at += 1;
                    }
                    _ => return None,
                }
                if names.len() == 2 || !self.eat(Tok::Comma) {
                    break;
                }
            }
            if !self.eat(Tok::Word("in")) {
                return None;
            }
            let iter = self.or_test(depth + 1)?;
            clauses.push(Clause::For { names, iter });
            while self.eat(Tok::Word("if")) {
                clauses.push(Clause::If(self.or_test(depth + 1)?));
            }
        }
        (!clauses.is_empty()).then(|| Exp::Comp {
            elt: Box::new(elt),
            clauses,
        })
    }

    /// `test ("," test)*`: a call's arguments.
    fn comma_separated(&mut self, depth: usize) -> Option<Vec<Exp>> {
        let first = self.test(depth)?;
        if self.peek() == Some(Tok::Word("for")) {
            // A generator expression, the call's only argument.
            let comp = self.comprehension(first, depth)?;
            return (self.peek() == Some(Tok::Close)).then(|| vec![comp]);
        }
        let mut items = vec![first];
        while self.eat(Tok::Comma) {
            items.push(self.test(depth)?);
        }
        Some(items)
    }

    fn test(&mut self, depth: usize) -> Option<Exp> {
        if depth > MAX_DEPTH {
            return None;
        }
        if self.eat(Tok::Word("lambda")) {
            return self.lambda(depth);
        }
        let then = self.or_test(depth)?;
        if !self.eat(Tok::Word("if")) {
            return Some(then);
        }
        let cond = self.or_test(depth)?;
        if !self.eat(Tok::Word("else")) {
            return None;
        }
        let otherwise = self.test(depth + 1)?;
        Some(Exp::IfElse {
            cond: Box::new(cond),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        })
    }

    /// `lambda a, b: body` after the `lambda`: distinct names, then a
    /// test.
    fn lambda(&mut self, depth: usize) -> Option<Exp> {
        let mut params: Vec<String> = Vec::new();
        while !self.eat(Tok::Colon) {
            match self.peek() {
                Some(Tok::Word(w))
                    if is_identifier(w) && !is_keyword(w) && !params.iter().any(|p| p == w) =>
                {
                    params.push(w.to_string());
                    self.at += 1;
                }
                _ => return None,
            }
            if !self.eat(Tok::Comma) {
                if !self.eat(Tok::Colon) {
                    return None;
                }
                break;
            }
        }
        let body = self.test(depth + 1)?;
        Some(Exp::Lambda {
            params,
            body: Box::new(body),
        })
    }

    fn or_test(&mut self, depth: usize) -> Option<Exp> {
        self.chain(depth, "or", Self::and_test, Exp::Or)
    }

    fn and_test(&mut self, depth: usize) -> Option<Exp> {
        self.chain(depth, "and", Self::not_test, Exp::And)
    }

    /// `x word x word x …`, each `x` parsed by `next`: `x` alone, or
    /// `make` of them all.
    fn chain(
        &mut self,
        depth: usize,
        word: &str,
        next: fn(&mut Self, usize) -> Option<Exp>,
        make: fn(Vec<Exp>) -> Exp,
    ) -> Option<Exp> {
        let mut parts = vec![next(self, depth)?];
        while self.eat(Tok::Word(word)) {
            parts.push(next(self, depth)?);
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            make(parts)
        })
    }

    fn not_test(&mut self, depth: usize) -> Option<Exp> {
        if depth > MAX_DEPTH {
            return None;
        }
        if self.eat(Tok::Word("not")) {
            return Some(Exp::Not(Box::new(self.not_test(depth + 1)?)));
        }
        let first = self.sum(depth)?;
        let mut rest = Vec::new();
        while let Some(op) = self.op() {
            let right = self.sum(depth)?;
            if matches!(op, Op::Is | Op::IsNot)
                && !matches!(&right, Exp::Literal(Value::Null | Value::Bool(_)))
            {
                return None;
            }
            rest.push((op, right));
        }
        Some(if rest.is_empty() {
            first
        } else {
            Exp::Compare {
                first: Box::new(first),
                rest,
            }
        })
    }

    fn op(&mut self) -> Option<Op> {
        let op = match self.peek()? {
            Tok::Op("==") => Op::Eq,
            Tok::Op("!=") => Op::Ne,
            Tok::Op("<") => Op::Lt,
            Tok::Op("<=") => Op::Le,
            Tok::Op(">") => Op::Gt,
            Tok::Op(">=") => Op::Ge,
            Tok::Word("in") => Op::In,
            Tok::Word("not") if self.toks.get(self.at + 1) == Some(&Tok::Word("in")) => {
                self.at += 1;
                Op::NotIn
            }
            Tok::Word("is") => {
                if self.toks.get(self.at + 1) == Some(&Tok::Word("not")) {
                    self.at += 1;
                    Op::IsNot
                } else {
                    Op::Is
                }
            }
            _ => return None,
        };
        self.at += 1;
        Some(op)
    }

    fn sum(&mut self, depth: usize) -> Option<Exp> {
        self.left_assoc(depth, &[("+", Arith::Add), ("-", Arith::Sub)], Self::term)
    }

    fn term(&mut self, depth: usize) -> Option<Exp> {
        let ops = [
            ("*", Arith::Mul),
            ("/", Arith::Div),
            ("//", Arith::FloorDiv),
            ("%", Arith::Mod),
        ];
        self.left_assoc(depth, &ops, Self::factor)
    }

    /// `x op x op x …` over the operators `ops`, grouped to the left, each
    /// `x` parsed by `next`.
    fn left_assoc(
        &mut self,
        depth: usize,
        ops: &[(&str, Arith)],
        next: fn(&mut Self, usize) -> Option<Exp>,
    ) -> Option<Exp> {
        let mut left = next(self, depth)?;
        while let Some(op) = self.peek().and_then(|t| {
            ops.iter()
                .find(|(sym, _)| t == Tok::Op(sym))
                .map(|(_, op)| *op)
        }) {
            self.at += 1;
            let right = next(self, depth)?;
            left = Exp::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Some(left)
    }

    fn factor(&mut self, depth: usize) -> Option<Exp> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            Tok::Op("-") => {
                self.at += 1;
                let inner = self.factor(depth + 1)?;
                // `-3` is a literal, as Python folds it.
                Some(match inner {
                    Exp::Literal(Value::Number(n)) => match literal(&format!("-{n}")) {
                        Some(v) => Exp::Literal(v),
                        None => Exp::Neg(Box::new(Exp::Literal(Value::Number(n)))),
                    },
                    other => Exp::Neg(Box::new(other)),
                })
            }
            Tok::Op("+") => {
                self.at += 1;
                // Python's unary plus: the number itself (a bool as 0 or 1).
                let inner = self.factor(depth + 1)?;
                Some(Exp::Arith {
                    op: Arith::Add,
                    left: Box::new(Exp::Literal(Value::from(0))),
                    right: Box::new(inner),
                })
            }
            _ => self.power(depth),
        }
    }

    /// `x ** y`: its right operand a factor, so `2 ** -1` and `2 ** 3 ** 2`
    /// (`2 ** 9`) read as in Python.
    fn power(&mut self, depth: usize) -> Option<Exp> {
        let base = self.postfix(depth)?;
        if !self.eat(Tok::Op("**")) {
            return Some(base);
        }
        let exponent = self.factor(depth + 1)?;
        Some(Exp::Arith {
            op: Arith::Pow,
            left: Box::new(base),
            right: Box::new(exponent),
        })
    }

    fn postfix(&mut self, depth: usize) -> Option<Exp> {
        let mut exp = self.atom(depth)?;
        loop {
            if self.eat(Tok::OpenBracket) {
                exp = self.subscript(exp, depth)?;
            } else if let Some(Tok::Word(w)) = self.peek() {
                // `.name` steps right after a `]`, `)` or string, the last
                // of them a method when a `(` follows.
                let Some(steps) = w.strip_prefix('.') else {
                    return Some(exp);
                };
                self.at += 1;
                exp = self.steps(exp, steps, depth)?;
            } else {
                return Some(exp);
            }
        }
    }

    /// `.a.b` steps into `exp`; `.a.upper(…)` ends with a method call.
    fn steps(&mut self, mut exp: Exp, steps: &str, depth: usize) -> Option<Exp> {
        let mut names = steps.split('.').peekable();
        while let Some(name) = names.next() {
            if names.peek().is_none() && self.peek() == Some(Tok::Open) {
                return self.method(exp, name, depth);
            }
            if !super::is_name(name) {
                return None;
            }
            exp = index_of(exp, Exp::Literal(Value::String(name.to_string())));
        }
        Some(exp)
    }

    /// `base.name(args)`, at the `(`.
    fn method(&mut self, base: Exp, name: &str, depth: usize) -> Option<Exp> {
        let (method, arity) = Method::from_name(name)?;
        self.at += 1;
        let (args, kwargs) = self.call_args(depth + 1)?;
        // Only `format` takes unpacked arguments (whose number is known
        // when rendered), and keywords with the request's methods.
        // `handler.get_argument(name, default=..)`'s too.
        let ok = method == Method::Format
            || (!unpacks(&args, &kwargs) && (kwargs.is_empty() || method.of_request()));
        (arity.contains(&args.len()) && ok).then(|| Exp::Method {
            base: Box::new(base),
            method,
            args,
            kwargs,
        })
    }

    /// `base[index]` or `base[start:stop:step]`, after the `[`.
    fn subscript(&mut self, base: Exp, depth: usize) -> Option<Exp> {
        let part = |p: &mut Self| -> Option<Option<Exp>> {
            match p.peek()? {
                Tok::Colon | Tok::CloseBracket => Some(None),
                _ => p.test(depth + 1).map(Some),
            }
        };
        let first = part(self)?;
        if !self.eat(Tok::Colon) {
            let index = first?;
            return self.eat(Tok::CloseBracket).then(|| index_of(base, index));
        }
        let stop = part(self)?;
        let step = if self.eat(Tok::Colon) {
            part(self)?
        } else {
            None
        };
        self.eat(Tok::CloseBracket).then(|| Exp::Slice {
            base: Box::new(base),
            parts: Box::new([first, stop, step]),
        })
    }

    /// An item of a list or tuple display: `test`, or `*test`.
    fn item(&mut self, depth: usize) -> Option<Exp> {
        if self.eat(Tok::Op("*")) {
            return Some(Exp::Starred(Box::new(self.test(depth)?)));
        }
        self.test(depth)
    }

    fn atom(&mut self, depth: usize) -> Option<Exp> {
        let tok = self.peek()?;
        self.at += 1;
        match tok {
            Tok::Open => {
                if self.eat(Tok::Close) {
                    return Some(Exp::Tuple(Vec::new()));
                }
                let starred = self.eat(Tok::Op("*"));
                let inner = self.test(depth + 1)?;
                if starred {
                    // `(*xs,)`: a tuple (Python refuses `(*xs)`).
                    if !self.eat(Tok::Comma) {
                        return None;
                    }
                    let mut items = vec![Exp::Starred(Box::new(inner))];
                    while !self.eat(Tok::Close) {
                        items.push(self.item(depth + 1)?);
                        if !self.eat(Tok::Comma) {
                            return self.eat(Tok::Close).then_some(Exp::Tuple(items));
                        }
                    }
                    return Some(Exp::Tuple(items));
                }
                if self.peek() == Some(Tok::Word("for")) {
                    // `(x for x in xs)`: a generator expression.
                    let comp = self.comprehension(inner, depth + 1)?;
                    return self.eat(Tok::Close).then_some(comp);
                }
                if !self.eat(Tok::Comma) {
                    return self.eat(Tok::Close).then_some(inner);
                }
                // `(a, b)`, `(a,)`: a tuple.
                let mut items = vec![inner];
                while !self.eat(Tok::Close) {
                    items.push(self.item(depth + 1)?);
                    if !self.eat(Tok::Comma) {
                        return self.eat(Tok::Close).then_some(Exp::Tuple(items));
                    }
                }
                Some(Exp::Tuple(items))
            }
            Tok::OpenBracket => {
                let mut items = Vec::new();
                while !self.eat(Tok::CloseBracket) {
                    items.push(self.item(depth + 1)?);
                    if items.len() == 1 && self.peek() == Some(Tok::Word("for")) {
                        // Python: no `*` in a comprehension's element.
                        if matches!(items[0], Exp::Starred(_)) {
                            return None;
                        }
                        let elt = items.pop()?;
                        let comp = self.comprehension(elt, depth + 1)?;
                        return self.eat(Tok::CloseBracket).then_some(comp);
                    }
                    if !self.eat(Tok::Comma) {
                        return self.eat(Tok::CloseBracket).then_some(Exp::List(items));
                    }
                }
                Some(Exp::List(items))
            }
            Tok::OpenBrace => {
                let mut items = Vec::new();
                while !self.eat(Tok::CloseBrace) {
                    if self.eat(Tok::Op("**")) {
                        items.push((None, self.test(depth + 1)?));
                        if !self.eat(Tok::Comma) {
                            return self.eat(Tok::CloseBrace).then_some(Exp::Dict(items));
                        }
                        continue;
                    }
                    let key = self.test(depth + 1)?;
                    if !self.eat(Tok::Colon) {
                        return None;
                    }
                    let value = self.test(depth + 1)?;
                    if items.is_empty() && self.peek() == Some(Tok::Word("for")) {
                        let pair = Exp::Tuple(vec![key, value]);
                        let comp = self.comprehension(pair, depth + 1)?;
                        return self
                            .eat(Tok::CloseBrace)
                            .then(|| Exp::DictComp(Box::new(comp)));
                    }
                    items.push((Some(key), value));
                    if !self.eat(Tok::Comma) {
                        return self.eat(Tok::CloseBrace).then_some(Exp::Dict(items));
                    }
                }
                Some(Exp::Dict(items))
            }
            Tok::Str(s) => {
                // `'a' 'b'`: adjacent strings are one, as Python reads them
                // (no longer than the source).
                let mut text = match literal(s)? {
                    Value::String(t) => t,
                    _ => return None,
                };
                while let Some(Tok::Str(next)) = self.peek() {
                    self.at += 1;
                    match literal(next)? {
                        Value::String(t) => text.push_str(&t),
                        _ => return None,
                    }
                }
                Some(Exp::Literal(Value::String(text)))
            }
            Tok::Word("and" | "or" | "not" | "in" | "is" | "if" | "else") => None,
            Tok::Word("xsrf_form_html") if self.eat(Tok::Open) => {
                self.eat(Tok::Close).then_some(Exp::XsrfFormHtml)
            }
            Tok::Word("_") if self.eat(Tok::Open) => self.locale_call(LocaleFn::Translate, depth),
            Tok::Word("pgettext") if self.eat(Tok::Open) => {
                self.locale_call(LocaleFn::Pgettext, depth)
            }
            Tok::Word("reverse_url") if self.eat(Tok::Open) => {
                let mut args = vec![self.item(depth + 1)?];
                while self.eat(Tok::Comma) {
                    args.push(self.item(depth + 1)?);
                }
                self.eat(Tok::Close).then_some(Exp::ReverseUrl(args))
            }
            Tok::Word(w) if self.peek() == Some(Tok::Open) => {
                if let Some(module) = w.strip_prefix("modules.") {
                    self.at += 1;
                    return self.module_call(module, depth);
                }
                if let Some(func) = w.strip_prefix("locale.").and_then(LocaleFn::method) {
                    self.at += 1;
                    return self.locale_call(func, depth);
                }
                if let Some(callee) = Callee::from_name(w) {
                    self.at += 1;
                    if callee == Callee::Int {
                        // `int(s, base)`, `int(s, base=16)`: the builtin's
                        // call ([`builtins`]); `int(x)` its own.
                        let (mut args, kwargs) = self.call_args(depth + 1)?;
                        if args.len() == 1 && kwargs.is_empty() && !unpacks(&args, &kwargs) {
                            let arg = Box::new(args.pop()?);
                            return Some(Exp::Call {
                                callee,
                                arg,
                                kwargs: Vec::new(),
                            });
                        }
                        let name = w.to_string();
                        return Some(Exp::UiCall { name, args, kwargs });
                    }
                    let arg = self.test(depth + 1)?;
                    let kwargs = self.keyword_args(depth + 1, |name| Kw::of(callee, name))?;
                    return self.eat(Tok::Close).then(|| Exp::Call {
                        callee,
                        arg: Box::new(arg),
                        kwargs,
                    });
                }
                if is_identifier(w) {
                    // A function of the application's (Tornado's
                    // `ui_methods`), or none: found when rendered, as
                    // Python looks a name up.
                    self.at += 1;
                    let (args, kwargs) = self.call_args(depth + 1)?;
                    return Some(Exp::UiCall {
                        name: w.to_string(),
                        args,
                        kwargs,
                    });
                }
                // `user.name.upper()`: a path, then a method.
                let (base, name) = w.rsplit_once('.')?;
                let base = Exp::Path(path(base)?);
                self.method(base, name, depth)
            }
            Tok::Word(w) => match literal(w) {
                Some(v) => Some(Exp::Literal(v)),
                None => path(w).map(Exp::Path),
            },
            _ => None,
        }
    }
}

/// `base[index]`: a step of the path when both are known when the template
/// is parsed (`d['k']` is the path `d.k`), computed when it is rendered
/// otherwise.
fn index_of(base: Exp, index: Exp) -> Exp {
    if let Exp::Path(p) = &base {
        let step = match &index {
            Exp::Literal(Value::String(k)) if !k.contains('.') => Some(k.clone()),
            Exp::Literal(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            _ => None,
        };
        if let Some(step) = step {
            return Exp::Path(format!("{p}.{step}"));
        }
    }
    Exp::Index {
        base: Box::new(base),
        index: Box::new(index),
    }
}

/// `{% raw src %}` rendered with `values`: its text, or the error's (for
/// the tests of the submodules, which compare them with Python's).
#[cfg(test)]
fn render_raw(src: &str, values: &Value) -> Result<String, String> {
    super::Template::parse(&format!("{{% raw {src} %}}"))
        .and_then(|t| t.render_value(values))
        .map_err(|e| e.to_string())
}

/// Each `(expression, text)`: the expression renders as the text.
#[cfg(test)]
fn check_results(values: &Value, cases: &[(&str, &str)]) {
    for (src, want) in cases {
        assert_eq!(render_raw(src, values).as_deref(), Ok(*want), "{src}");
    }
}

/// Each `(expression, words)`: rendering the expression fails with an
/// error that says the words.
#[cfg(test)]
fn check_errors(values: &Value, cases: &[(&str, &str)]) {
    for (src, says) in cases {
        let err = render_raw(src, values).unwrap_err();
        assert!(err.contains(says), "{src}: {err}");
    }
}

/// A value an expression gave: a template value, or one it computed.
pub(super) enum V<'a> {
    Ref(Val<'a>),
    Own(Value),
}

impl V<'_> {
    pub(super) fn view(&self) -> Val<'_> {
        match self {
            V::Ref(v) => *v,
            V::Own(v) => Val::Json(v),
        }
    }
}

fn own<'a>(v: Value) -> Result<V<'a>, TemplateError> {
    Ok(V::Own(v))
}

/// What an expression needs from the render.
pub(super) trait Env<'a> {
    /// The value at a path.
    fn lookup(&self, path: &'a str) -> Result<Val<'a>, TemplateError>;
    /// A function of Tornado's namespace applied to a value, with the
    /// call's keyword arguments.
    fn apply(&self, func: Func, v: Val<'_>, options: &Options) -> Result<String, TemplateError>;
    /// The longest string or array an expression may build.
    fn max_len(&self) -> usize;
    /// What `xsrf_form_html()` returns.
    fn xsrf_form_html(&self) -> Result<String, TemplateError>;
    /// What `reverse_url(name, *args)` returns, the arguments as `str()`.
    fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, TemplateError>;
    /// The request's locale (Tornado's `locale`, whose `translate` is `_`),
    /// or the process's default locale outside a request.
    fn locale(&self) -> &crate::locale::Locale;
    /// The application's template function `name` called with `args` and
    /// `kwargs` (or, in a `{% module Template(..) %}`'s template,
    /// `set_resources(**kwargs)`); `None` when the application has no
    /// function of that name (Python's built-in one is called then).
    fn ui_method(
        &self,
        name: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Option<Value>, TemplateError>;
    /// The HTML of the application's UI module `name` for
    /// `{% module name(args, kwargs) %}`.
    fn ui_module(
        &self,
        name: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, TemplateError>;
    /// `v` kept for the rest of the render (a comprehension's iterable),
    /// counted against the render's bound on computed values.
    fn keep(&self, v: V<'a>) -> Result<Val<'a>, TemplateError>;
    /// `n` steps of the render's budget spent (a comprehension's
    /// iterations): [`TemplateError::TooLarge`] past it.
    fn charge(&self, n: u64) -> Result<(), TemplateError>;
    /// `base.method(args, kwargs)` for a [`Method::of_request`] when
    /// `base` is the render's `request` or `handler`, or a copy of it (a
    /// value of the same content: an item of a list display); `None` for
    /// any other value.
    fn request_method(
        &self,
        base: Val<'_>,
        method: Method,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Option<Result<Value, TemplateError>>;
}

/// An [`Env`] with a comprehension's names bound over another's.
struct Bound<'e, 'a> {
    outer: &'e dyn Env<'a>,
    names: &'e [(&'a str, Val<'a>)],
}

impl<'a> Env<'a> for Bound<'_, 'a> {
    fn lookup(&self, path: &'a str) -> Result<Val<'a>, TemplateError> {
        let mut segs = path.split('.');
        let first = segs.next().unwrap_or_default();
        match self.names.iter().find(|(n, _)| *n == first) {
            Some((_, v)) => super::walk(*v, segs, path),
            None => self.outer.lookup(path),
        }
    }
    fn apply(&self, func: Func, v: Val<'_>, options: &Options) -> Result<String, TemplateError> {
        self.outer.apply(func, v, options)
    }
    fn max_len(&self) -> usize {
        self.outer.max_len()
    }
    fn xsrf_form_html(&self) -> Result<String, TemplateError> {
        self.outer.xsrf_form_html()
    }
    fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, TemplateError> {
        self.outer.reverse_url(name, args)
    }
    fn locale(&self) -> &crate::locale::Locale {
        self.outer.locale()
    }
    fn ui_method(
        &self,
        name: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Option<Value>, TemplateError> {
        self.outer.ui_method(name, args, kwargs)
    }
    fn ui_module(
        &self,
        name: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        self.outer.ui_module(name, args, kwargs)
    }
    fn keep(&self, v: V<'a>) -> Result<Val<'a>, TemplateError> {
        self.outer.keep(v)
    }
    fn charge(&self, n: u64) -> Result<(), TemplateError> {
        self.outer.charge(n)
    }
    fn request_method(
        &self,
        base: Val<'_>,
        method: Method,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Option<Result<Value, TemplateError>> {
        self.outer.request_method(base, method, args, kwargs)
    }
}

/// The items a comprehension's `for` goes over, as Python iterates them:
/// an array's elements, an object's keys, a string's characters.
fn iter_items<'a>(v: Val<'a>) -> Result<Vec<Val<'a>>, TemplateError> {
    if let Some(s) = v.as_str() {
        check_items(s.chars().count())?;
        return Ok(s
            .char_indices()
            .map(|(i, c)| Val::Str(&s[i..i + c.len_utf8()]))
            .collect());
    }
    match v {
        Val::Json(Value::Array(items)) => Ok(items.iter().map(Val::Json).collect()),
        Val::Json(Value::Object(map)) => Ok(map.keys().map(|k| Val::Str(k)).collect()),
        other => Err(TemplateError::Type(format!(
            "{} is not iterable",
            other.kind()
        ))),
    }
}

/// A comprehension's elements so far, and how many values they hold,
/// nested ones too ([`weight`]).
#[derive(Default)]
struct Collected {
    items: Vec<Value>,
    weight: usize,
}

/// The elements of the comprehension `[elt clauses…]` with `names` bound so
/// far, appended to `out`: at most [`MAX_ITEMS`] values in all (nested ones
/// too) and `env.max_len()` elements.
fn comprehension<'a>(
    env: &dyn Env<'a>,
    elt: &'a Exp,
    clauses: &'a [Clause],
    names: &mut Vec<(&'a str, Val<'a>)>,
    out: &mut Collected,
) -> Result<(), TemplateError> {
    let bound = Bound {
        outer: env,
        names: &names[..],
    };
    match clauses.split_first() {
        None => {
            let most = env.max_len().min(MAX_ITEMS);
            if out.items.len() >= most {
                return Err(TemplateError::TooLarge(format!(
                    "a comprehension of more than {most} items"
                )));
            }
            let item = to_value(elt.eval(&bound)?.view());
            if matches!(item, Value::Array(_) | Value::Object(_)) {
                // A copy of a nested value costs a step per value in it,
                // and holds them all.
                let w = weight(&item)?;
                env.charge(w as u64 - 1)?;
                out.weight += w;
                check_items(out.weight)?;
            } else if let Value::String(s) = &item {
                // A copy of a string holds its bytes.
                out.weight += 1 + s.len() / 64;
                check_items(out.weight)?;
            }
            out.items.push(item);
            Ok(())
        }
        Some((Clause::If(cond), rest)) => {
            if cond.eval(&bound)?.view().truthy() {
                comprehension(env, elt, rest, names, out)?;
            }
            Ok(())
        }
        Some((
            Clause::For {
                names: targets,
                iter,
            },
            rest,
        )) => {
            let items = env.keep(iter.eval(&bound)?)?;
            for item in iter_items(items)? {
                env.charge(1)?;
                let mark = names.len();
                // A later binding of a name shadows an earlier one.
                match targets.as_slice() {
                    [one] => names.insert(0, (one.as_str(), item)),
                    [a, b] => {
                        let pair = match item {
                            Val::Json(Value::Array(p)) if p.len() == 2 => p,
                            other => {
                                return Err(TemplateError::Type(format!(
                                    "cannot unpack {} into {a}, {b} (it needs pairs)",
                                    other.kind()
                                )))
                            }
                        };
                        names.insert(0, (b.as_str(), Val::Json(&pair[1])));
                        names.insert(0, (a.as_str(), Val::Json(&pair[0])));
                    }
                    _ => unreachable!("one or two names, as parsed"),
                }
                let result = comprehension(env, elt, rest, names, out);
                names.drain(..names.len() - mark);
                result?;
            }
            Ok(())
        }
    }
}

/// `name(args, kwargs)`: the template's namespace first (the application's
/// `ui_method`s), then Python's builtins. Not inlined: `eval` recurses, and
/// a debug build would give every call of it this arm's locals.
#[inline(never)]
fn ui_call<'a>(
    env: &dyn Env<'a>,
    name: &str,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Result<V<'a>, TemplateError> {
    // A builtin given a function (`sorted(xs, key=lambda x: ..)`): no
    // ui_method takes one.
    if let Some(v) = lambda::call(env, name, args, kwargs) {
        return v;
    }
    let (args, kwargs) = call_values(env, args, kwargs)?;
    if let Some(v) = env.ui_method(name, &args, &kwargs)? {
        return own(v);
    }
    match builtins::call(env, name, args, kwargs) {
        Some(v) => own(v?),
        None => Err(TemplateError::Type(format!(
            "{name}() is no function of this template: the built-in ones are \
             Tornado's (len, str, int, abs, static_url, reverse_url, json_encode, \
             url_escape, xhtml_escape, escape, squeeze, linkify, _, pgettext, \
             xsrf_form_html) and Python's ({}); an application adds its own with \
             ApplicationBuilder::ui_method",
            builtins::NAMES
        ))),
    }
}

/// `base.method(args, kwargs)`: `str.format`, or a method of
/// [`methods`].
#[inline(never)]
fn method_call<'a>(
    env: &dyn Env<'a>,
    base: &'a Exp,
    method: Method,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Result<V<'a>, TemplateError> {
    let b = base.eval(env)?;
    if method == Method::Format {
        let Some(template) = b.view().as_str() else {
            return Err(TemplateError::Type(format!(
                "format() is not a method of {}",
                b.view().kind()
            )));
        };
        let (positional, named) = call_values(env, args, kwargs)?;
        let views: Vec<Val<'_>> = positional.iter().map(Val::Json).collect();
        return format::str_format(template, &views, &named, env.max_len())
            .map(|s| V::Own(Value::String(s)));
    }
    if method.of_request() {
        let (positional, named) = call_values(env, args, kwargs)?;
        return match env.request_method(b.view(), method, &positional, &named) {
            Some(v) => v.map(V::Own),
            None => Err(TemplateError::Type(format!(
                "{}() is not a method of {}: it is one of the request's and the handler's",
                method.name(),
                b.view().kind()
            ))),
        };
    }
    let mut vals = Vec::with_capacity(args.len());
    for a in args {
        vals.push(a.eval(env)?);
    }
    let views: Vec<Val<'_>> = vals.iter().map(V::view).collect();
    call_method(method, b, &views, env.max_len())
}

/// A call's arguments, evaluated left to right: the positional ones, then
/// the keyword ones, as JSON values.
pub(super) fn call_values<'a>(
    env: &dyn Env<'a>,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Result<(Vec<Value>, Map<String, Value>), TemplateError> {
    let vals = items_of(env, args, "argument")?;
    let mut named = Map::with_capacity(kwargs.len());
    for (k, e) in kwargs {
        let v = e.eval(env)?;
        if k != UNPACK {
            // A name given twice, by `**` and by name (the parser refuses
            // two by name): Python's TypeError.
            if named.insert(k.clone(), to_value(v.view())).is_some() {
                return Err(repeated_keyword(k));
            }
            continue;
        }
        let Val::Json(Value::Object(map)) = v.view() else {
            return Err(TemplateError::Type(format!(
                "argument after ** must be a mapping, not {}",
                v.view().py_type()
            )));
        };
        env.charge(map.len() as u64)?;
        for (k, v) in map {
            if named.insert(k.clone(), v.clone()).is_some() {
                return Err(repeated_keyword(k));
            }
        }
    }
    Ok((vals, named))
}

/// The values of a call's positional arguments or a list or tuple
/// display's items, left to right, each `*xs` (an
/// [`Exp::Starred`]) giving xs's items. `what` names the item in Python's
/// TypeError for a `*` of what is not iterable.
fn items_of<'a>(
    env: &dyn Env<'a>,
    items: &'a [Exp],
    what: &str,
) -> Result<Vec<Value>, TemplateError> {
    let mut vals = Vec::with_capacity(items.len());
    for item in items {
        let Exp::Starred(xs) = item else {
            vals.push(to_value(item.eval(env)?.view()));
            continue;
        };
        let xs = xs.eval(env)?;
        let view = xs.view();
        // Python's message for what is not iterable; the bound on a
        // string's characters stays `iter_items`' (TooLarge).
        let iterable = view.as_str().is_some()
            || matches!(view, Val::Json(Value::Array(_) | Value::Object(_)));
        if !iterable {
            return Err(TemplateError::Type(format!(
                "{what} after * must be an iterable, not {}",
                view.py_type()
            )));
        }
        let items = iter_items(view)?;
        env.charge(items.len() as u64)?;
        vals.extend(items.into_iter().map(to_value));
    }
    Ok(vals)
}

/// The name of the keyword "argument" `**d` stands for in a call's
/// keyword arguments: no identifier can be it.
pub(super) const UNPACK: &str = "**";

/// Whether a call's arguments unpack (`*xs`, `**d`).
fn unpacks(args: &[Exp], kwargs: &[(String, Exp)]) -> bool {
    args.iter().any(|a| matches!(a, Exp::Starred(_))) || kwargs.iter().any(|(k, _)| k == UNPACK)
}

/// Python's TypeError for a keyword given twice.
fn repeated_keyword(name: &str) -> TemplateError {
    TemplateError::Type(format!("got multiple values for keyword argument '{name}'"))
}

impl Exp {
    /// The expression's value, with Python's semantics. Operands are read as
    /// Python reads them: left to right, and only as far as `and`, `or` and
    /// a chained comparison need (an undefined path after a false `and` is
    /// no error).
    ///
    /// The arms are five functions, not inlined: `eval` recurses once per
    /// level of an expression's nesting, and a debug build gives every
    /// arm's temporaries their own slots (one frame with them all took
    /// 19 KiB, and a deep render overflowed a 512 KiB thread stack).
    pub(super) fn eval<'a>(&'a self, env: &dyn Env<'a>) -> Result<V<'a>, TemplateError> {
        match self {
            Exp::Path(p) => Ok(V::Ref(env.lookup(p)?)),
            Exp::Literal(v) => Ok(V::Ref(Val::Json(v))),
            Exp::Or { .. }
            | Exp::And { .. }
            | Exp::Not(_)
            | Exp::IfElse { .. }
            | Exp::Compare { .. } => self.eval_logic(env),
            Exp::Arith { .. } | Exp::Neg(_) | Exp::Index { .. } | Exp::Slice { .. } => {
                self.eval_arith(env)
            }
            Exp::List(_) | Exp::Tuple(_) | Exp::DictComp(_) | Exp::Dict(_) | Exp::Comp { .. } => {
                self.eval_build(env)
            }
            Exp::Lambda { .. }
            | Exp::Method { .. }
            | Exp::XsrfFormHtml
            | Exp::Locale { .. }
            | Exp::UiCall { .. }
            | Exp::UiModule { .. }
            | Exp::Starred(_)
            | Exp::ReverseUrl(_) => self.eval_call(env),
            Exp::Call { .. } => self.eval_builtin_call(env),
        }
    }

    /// `or`, `and`, `not`, conditional expressions and comparisons. (See [`eval`](Self::eval).)
    #[inline(never)]
    fn eval_logic<'a>(&'a self, env: &dyn Env<'a>) -> Result<V<'a>, TemplateError> {
        match self {
            Exp::Or(parts) => {
                let mut last = None;
                for p in parts {
                    let v = p.eval(env)?;
                    if v.view().truthy() {
                        return Ok(v);
                    }
                    last = Some(v);
                }
                last.ok_or_else(|| TemplateError::Type("empty or".into()))
            }
            Exp::And(parts) => {
                let mut last = None;
                for p in parts {
                    let v = p.eval(env)?;
                    if !v.view().truthy() {
                        return Ok(v);
                    }
                    last = Some(v);
                }
                last.ok_or_else(|| TemplateError::Type("empty and".into()))
            }
            Exp::Not(e) => own(Value::Bool(!e.eval(env)?.view().truthy())),
            Exp::IfElse {
                cond,
                then,
                otherwise,
            } => {
                if cond.eval(env)?.view().truthy() {
                    then.eval(env)
                } else {
                    otherwise.eval(env)
                }
            }
            Exp::Compare { first, rest } => {
                let mut left = first.eval(env)?;
                for (op, operand) in rest {
                    let right = operand.eval(env)?;
                    if !compare(*op, left.view(), right.view())? {
                        return own(Value::Bool(false));
                    }
                    left = right;
                }
                own(Value::Bool(true))
            }
            _ => unreachable!("dispatched by eval"),
        }
    }

    /// Arithmetic, negation, subscripts and slices. (See [`eval`](Self::eval).)
    #[inline(never)]
    fn eval_arith<'a>(&'a self, env: &dyn Env<'a>) -> Result<V<'a>, TemplateError> {
        match self {
            Exp::Arith { op, left, right } => {
                let a = left.eval(env)?;
                if let (Arith::Mod, Exp::Tuple(items), Some(format)) =
                    (op, &**right, a.view().as_str())
                {
                    // `"%s of %s" % (a, b)`: the tuple's items, one by one.
                    let args = items_of(env, items, "Value")?;
                    return percent_format(format, Args::Tuple(&args), env.max_len())
                        .map(|s| V::Own(Value::String(s)));
                }
                let b = right.eval(env)?;
                arith(*op, a.view(), b.view(), env.max_len()).map(V::Own)
            }
            Exp::Neg(e) => {
                let v = e.eval(env)?;
                match number(v.view()) {
                    Some(Num::Int(n)) => int(-n).map(V::Own),
                    Some(Num::Float(f)) => float(-f).map(V::Own),
                    None => Err(TemplateError::Type(format!(
                        "bad operand for unary -: {}",
                        v.view().kind()
                    ))),
                }
            }
            Exp::Index { base, index } => {
                let (b, i) = (base.eval(env)?, index.eval(env)?);
                subscript(b, i.view())
            }
            Exp::Slice { base, parts } => {
                let b = base.eval(env)?;
                let mut bounds = [None, None, None];
                for (bound, part) in bounds.iter_mut().zip(parts.iter()) {
                    if let Some(p) = part {
                        let v = p.eval(env)?;
                        *bound = match v.view() {
                            Val::Json(Value::Null) => None,
                            other => Some(slice_index(other)?),
                        };
                    }
                }
                slice(b.view(), bounds).map(V::Own)
            }
            _ => unreachable!("dispatched by eval"),
        }
    }

    /// Lists, tuples, dicts and comprehensions. (See [`eval`](Self::eval).)
    #[inline(never)]
    fn eval_build<'a>(&'a self, env: &dyn Env<'a>) -> Result<V<'a>, TemplateError> {
        match self {
            // A tuple is a list here (printed as one, too).
            Exp::List(items) | Exp::Tuple(items) => {
                let items = items_of(env, items, "Value")?;
                // Its items were copied: their bytes and nesting count.
                check_items(weight_of(&items)?)?;
                own(Value::Array(items))
            }
            Exp::DictComp(comp) => {
                let pairs = comp.eval(env)?;
                let Val::Json(Value::Array(pairs)) = pairs.view() else {
                    unreachable!("a comprehension is a list")
                };
                let mut out = serde_json::Map::with_capacity(pairs.len());
                for pair in pairs {
                    let Value::Array(pair) = pair else {
                        unreachable!("a comprehension of pairs")
                    };
                    let Value::String(key) = &pair[0] else {
                        return Err(TemplateError::Type(format!(
                            "a dict's keys in a template are strings, not {}",
                            Val::Json(&pair[0]).kind()
                        )));
                    };
                    out.insert(key.clone(), pair[1].clone());
                }
                own(Value::Object(out))
            }
            Exp::Dict(items) => {
                let mut out = serde_json::Map::with_capacity(items.len());
                for (k, v) in items {
                    let Some(k) = k else {
                        // `**d`: its entries, a later one replacing an
                        // earlier one's value in its place (as Python).
                        let d = v.eval(env)?;
                        let Val::Json(Value::Object(map)) = d.view() else {
                            return Err(TemplateError::Type(format!(
                                "'{}' object is not a mapping",
                                d.view().py_type()
                            )));
                        };
                        env.charge(map.len() as u64)?;
                        out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
                        continue;
                    };
                    let key = k.eval(env)?;
                    let Some(key) = key.view().as_str().map(str::to_owned) else {
                        return Err(TemplateError::Type(format!(
                            "a dict's keys in a template are strings, not {}",
                            key.view().kind()
                        )));
                    };
                    out.insert(key, to_value(v.eval(env)?.view()));
                }
                let out = Value::Object(out);
                check_items(weight(&out)?)?;
                own(out)
            }
            Exp::Comp { elt, clauses } => {
                let mut out = Collected::default();
                comprehension(env, elt, clauses, &mut Vec::new(), &mut out)?;
                own(Value::Array(out.items))
            }
            _ => unreachable!("dispatched by eval"),
        }
    }

    /// Methods, the namespace's functions and the application's. (See [`eval`](Self::eval).)
    #[inline(never)]
    fn eval_call<'a>(&'a self, env: &dyn Env<'a>) -> Result<V<'a>, TemplateError> {
        match self {
            Exp::Method {
                base,
                method,
                args,
                kwargs,
            } => method_call(env, base, *method, args, kwargs),
            Exp::Lambda { .. } => Err(TemplateError::Type(
                "a lambda is a value only where sorted(key=), min(key=), max(key=), map() and \
                 filter() take a function"
                    .into(),
            )),
            Exp::Starred(_) => Err(TemplateError::Type(
                "*x unpacks only into a call's arguments and a list or tuple display".into(),
            )),
            Exp::XsrfFormHtml => env.xsrf_form_html().map(|s| V::Own(Value::String(s))),
            Exp::Locale { func, args } => locale_call(env, *func, args),
            Exp::UiCall { name, args, kwargs } => ui_call(env, name, args, kwargs),
            Exp::UiModule { name, args, kwargs } => {
                let (args, kwargs) = call_values(env, args, kwargs)?;
                own(Value::String(env.ui_module(name, &args, &kwargs)?))
            }
            Exp::ReverseUrl(args) => {
                let texts: Vec<String> = items_of(env, args, "reverse_url() argument")?
                    .iter()
                    .map(|v| Val::Json(v).text().into_owned())
                    .collect();
                let Some((name, rest)) = texts.split_first() else {
                    return Err(TemplateError::Type(
                        "reverse_url() missing 1 required positional argument: 'name'".into(),
                    ));
                };
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                env.reverse_url(name, &rest)
                    .map(|s| V::Own(Value::String(s)))
            }
            _ => unreachable!("dispatched by eval"),
        }
    }

    /// `len`, `str`, `int`, `abs` and Tornado's template functions. (See [`eval`](Self::eval).)
    #[inline(never)]
    fn eval_builtin_call<'a>(&'a self, env: &dyn Env<'a>) -> Result<V<'a>, TemplateError> {
        match self {
            Exp::Call {
                callee,
                arg,
                kwargs,
            } => {
                let v = arg.eval(env)?;
                let v = v.view();
                let mut options = Options::default();
                for (kw, exp) in kwargs {
                    let value = exp.eval(env)?;
                    let value = value.view();
                    match kw {
                        Kw::Plus => options.plus = value.truthy(),
                        Kw::Shorten => options.shorten = value.truthy(),
                        Kw::RequireProtocol => options.require_protocol = value.truthy(),
                        Kw::IncludeVersion => options.include_version = value.truthy(),
                        Kw::IncludeHost => options.include_host = value.truthy(),
                        Kw::ExtraParams => match value {
                            Val::Str(_) | Val::Json(Value::String(_)) => {
                                options.extra_params = value.text().into_owned();
                            }
                            _ => {
                                return Err(TemplateError::Type(format!(
                                    "linkify(extra_params=): a str, not {}",
                                    value.kind()
                                )))
                            }
                        },
                        Kw::PermittedProtocols => {
                            options.permitted_protocols = Some(match value {
                                Val::Json(Value::Array(items)) => Permitted::List(
                                    items
                                        .iter()
                                        .filter_map(|i| i.as_str().map(str::to_owned))
                                        .collect(),
                                ),
                                Val::Str(_) | Val::Json(Value::String(_)) => {
                                    Permitted::Text(value.text().into_owned())
                                }
                                _ => {
                                    return Err(TemplateError::Type(format!(
                                        "linkify(permitted_protocols=): a list or a str, not {}",
                                        value.kind()
                                    )))
                                }
                            });
                        }
                    }
                }
                if let Some(result) = callee.python(v) {
                    return match result? {
                        Value::String(s) => {
                            bounded(s, env.max_len()).map(|s| V::Own(Value::String(s)))
                        }
                        other => Ok(V::Own(other)),
                    };
                }
                let Callee::Func(f) = callee else {
                    unreachable!("python() answers for every other callee")
                };
                env.apply(*f, v, &options)
                    .and_then(|s| bounded(s, env.max_len()))
                    .map(|s| V::Own(Value::String(s)))
            }
            _ => unreachable!("dispatched by eval"),
        }
    }
}

/// `base[index]` computed: an array's item by an integer (from the back
/// when negative), an object's value by a string key, a string's
/// character.
fn subscript<'a>(base: V<'a>, index: Val<'_>) -> Result<V<'a>, TemplateError> {
    let missing = || {
        TemplateError::Undefined(format!(
            "[{}] of {}",
            index.text(),
            match &base {
                V::Ref(v) => v.kind(),
                V::Own(v) => kind(v),
            }
        ))
    };
    let int = || match number(index)? {
        Num::Int(i) => Some(i),
        Num::Float(_) => None,
    };
    let position = |len: usize| py_index(len, int()?);
    match &base {
        V::Ref(Val::Json(Value::Array(items))) => {
            let items: &'a [Value] = items;
            let at = position(items.len()).ok_or_else(missing)?;
            return Ok(V::Ref(Val::Json(&items[at])));
        }
        V::Ref(Val::Json(Value::Object(map))) => {
            let key = index.as_str().ok_or_else(missing)?;
            let map: &'a serde_json::Map<String, Value> = map;
            return map
                .get(key)
                .map(|v| V::Ref(Val::Json(v)))
                .ok_or_else(missing);
        }
        _ => {}
    }
    let found = match base.view() {
        Val::Json(Value::Array(items)) => position(items.len()).map(|at| items[at].clone()),
        Val::Json(Value::Object(map)) => index.as_str().and_then(|k| map.get(k)).cloned(),
        other => other
            .as_str()
            .and_then(|s| char_at(s, int()?))
            .map(|c| Value::String(c.into())),
    };
    found.map(V::Own).ok_or_else(missing)
}

fn compare(op: Op, a: Val<'_>, b: Val<'_>) -> Result<bool, TemplateError> {
    let order = |want: fn(Ordering) -> bool| order(op, a, b).map(want);
    match op {
        Op::Eq => Ok(equal(a, b)),
        Op::Ne => Ok(!equal(a, b)),
        Op::Lt => order(Ordering::is_lt),
        Op::Le => order(Ordering::is_le),
        Op::Gt => order(Ordering::is_gt),
        Op::Ge => order(Ordering::is_ge),
        Op::In => contains(b, a),
        Op::NotIn => contains(b, a).map(|c| !c),
        Op::Is => Ok(same(a, b)),
        Op::IsNot => Ok(!same(a, b)),
    }
}

/// `a is b` where `b` is `None`, `True` or `False` (the parser sees to it).
fn same(a: Val<'_>, b: Val<'_>) -> bool {
    match (a, b) {
        (Val::Json(Value::Null), Val::Json(Value::Null)) => true,
        (Val::Json(Value::Bool(x)), Val::Json(Value::Bool(y))) => x == y,
        _ => false,
    }
}

/// A number as Python sees it (a bool is the integer 0 or 1).
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn number(v: Val<'_>) -> Option<Num> {
    match v {
        Val::Json(Value::Bool(b)) => Some(Num::Int(i128::from(*b))),
        Val::Json(Value::Number(n)) => Some(if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64()?)
        }),
        _ => None,
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        // As f64: exact for every integer up to 2^53.
        _ => as_f64(a).partial_cmp(&as_f64(b)),
    }
}

/// An integer result: within what a JSON number holds (`i64` or `u64`).
fn int(n: i128) -> Result<Value, TemplateError> {
    if let Ok(i) = i64::try_from(n) {
        Ok(Value::from(i))
    } else if let Ok(u) = u64::try_from(n) {
        Ok(Value::from(u))
    } else {
        Err(TemplateError::Type(format!(
            "integer {n} is out of the range a template holds (64 bits)"
        )))
    }
}

/// Python's `int / int`: the exact quotient rounded once to a float.
/// Converting operands above 2**53 to floats first would round twice
/// (`-1 / 9007199254740993` would be off in its last digit). `y` is not 0.
fn int_true_div(x: i128, y: i128) -> f64 {
    const EXACT: u128 = 1 << 53;
    let (a, b) = (x.unsigned_abs(), y.unsigned_abs());
    if a <= EXACT && b <= EXACT {
        return x as f64 / y as f64;
    }
    let bits = |n: u128| 128 - n.leading_zeros() as i32;
    // At least 56 bits of quotient (operands hold 64 bits at most, so the
    // shifted dividend stays under 2**121), the remainder as a sticky bit:
    // the conversion to f64 then rounds as the exact quotient would.
    let k = (56 + bits(b) - bits(a)).max(0);
    let num = a << k;
    let q = (num / b) | u128::from(num % b != 0);
    let magnitude = q as f64 / 2f64.powi(k);
    if (x < 0) != (y < 0) {
        -magnitude
    } else {
        magnitude
    }
}

/// A float result: finite (JSON has no infinity or NaN).
fn float(f: f64) -> Result<Value, TemplateError> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| TemplateError::Type(format!("{f} is not a finite number")))
}

fn arith(op: Arith, a: Val<'_>, b: Val<'_>, max_len: usize) -> Result<Value, TemplateError> {
    let sym = match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
        Arith::Div => "/",
        Arith::FloorDiv => "//",
        Arith::Mod => "%",
        Arith::Pow => "** or pow()",
    };
    let unsupported = || {
        TemplateError::Type(format!(
            "unsupported operand types for {sym}: {} and {}",
            a.kind(),
            b.kind()
        ))
    };
    let too_long = || TemplateError::TooLarge(format!("a value over {max_len} bytes or items"));
    let zero = || TemplateError::Type(format!("division by zero ({sym})"));
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return match (op, x, y) {
            (Arith::Add, Num::Int(x), Num::Int(y)) => int(x + y),
            (Arith::Sub, Num::Int(x), Num::Int(y)) => int(x - y),
            (Arith::Mul, Num::Int(x), Num::Int(y)) => x.checked_mul(y).map_or_else(
                || Err(TemplateError::Type("integer product out of range".into())),
                int,
            ),
            (Arith::Pow, x, y) => power(x, y),
            (Arith::FloorDiv | Arith::Mod, Num::Int(_), Num::Int(0)) => Err(zero()),
            (Arith::FloorDiv, Num::Int(x), Num::Int(y)) => int(floor_div(x, y)),
            (Arith::Mod, Num::Int(x), Num::Int(y)) => int(x - y * floor_div(x, y)),
            (Arith::Div | Arith::FloorDiv | Arith::Mod, _, y) if as_f64(y) == 0.0 => Err(zero()),
            (Arith::Div, Num::Int(x), Num::Int(y)) => float(int_true_div(x, y)),
            (_, x, y) => {
                let (x, y) = (as_f64(x), as_f64(y));
                float(match op {
                    Arith::Add => x + y,
                    Arith::Sub => x - y,
                    Arith::Mul => x * y,
                    Arith::Div => x / y,
                    Arith::FloorDiv => float_divmod(x, y).0,
                    Arith::Pow => unreachable!("powers are computed above"),
                    Arith::Mod => float_divmod(x, y).1,
                })
            }
        };
    }
    match (op, a, b) {
        (Arith::Add, _, _) if a.as_str().is_some() && b.as_str().is_some() => {
            let (x, y) = (
                a.as_str().unwrap_or_default(),
                b.as_str().unwrap_or_default(),
            );
            if x.len() + y.len() > max_len {
                return Err(too_long());
            }
            Ok(Value::String([x, y].concat()))
        }
        (Arith::Add, Val::Json(Value::Array(x)), Val::Json(Value::Array(y))) => {
            check_items(weight_of(x)? + weight_of(y)?)?;
            Ok(Value::Array(x.iter().chain(y).cloned().collect()))
        }
        (Arith::Mul, _, _) => {
            // A string or an array repeated, the count on either side.
            let (seq, count) = match (number(a), number(b)) {
                (None, Some(Num::Int(n))) => (a, n),
                (Some(Num::Int(n)), None) => (b, n),
                _ => return Err(unsupported()),
            };
            let times = usize::try_from(count.max(0)).map_err(|_| too_long())?;
            if let Some(s) = seq.as_str() {
                if s.len().saturating_mul(times) > max_len {
                    return Err(too_long());
                }
                return Ok(Value::String(s.repeat(times)));
            }
            match seq {
                Val::Json(Value::Array(items)) => {
                    // Each copy is a deep one (Python's would share the
                    // items), so nested values count.
                    check_items(weight_of(items)?.saturating_mul(times))?;
                    Ok(Value::Array(
                        (0..times).flat_map(|_| items.iter().cloned()).collect(),
                    ))
                }
                _ => Err(unsupported()),
            }
        }
        (Arith::Mod, _, _) if a.as_str().is_some() => {
            percent_format(a.as_str().unwrap_or_default(), Args::One(b), max_len).map(Value::String)
        }
        _ => Err(unsupported()),
    }
}

/// Python's `x ** y` of two numbers: an integer for integers and a
/// non-negative exponent (out of the 64 bits a template holds, an error:
/// Python's would be a long integer), a float otherwise; Python's
/// `ZeroDivisionError` for zero to a negative power, and an error where
/// Python's result would be complex or overflow.
fn power(x: Num, y: Num) -> Result<Value, TemplateError> {
    if let (Num::Int(b), Num::Int(e)) = (x, y) {
        // Exact whatever the exponent's size, as Python's; a negative
        // exponent gives a float, also of 1 and -1 (`1 ** -1` is `1.0`).
        match (b, e) {
            (1, 0..) | (_, 0) => return int(1),
            (0, 1..) => return int(0),
            (-1, 0..) => return int(if e % 2 == 0 { 1 } else { -1 }),
            _ => {}
        }
        if e >= 0 {
            return u32::try_from(e)
                .ok()
                .and_then(|e| b.checked_pow(e))
                .map_or_else(
                    || {
                        Err(TemplateError::Type(format!(
                            "{b} ** {e} is out of the range a template holds (64 bits)"
                        )))
                    },
                    int,
                );
        }
    }
    let (b, e) = (as_f64(x), as_f64(y));
    if b == 0.0 && e < 0.0 {
        return Err(TemplateError::Type(
            "0.0 cannot be raised to a negative power (ZeroDivisionError)".into(),
        ));
    }
    if b < 0.0 && e.fract() != 0.0 {
        return Err(TemplateError::Type(format!(
            "{b} ** {e} is a complex number, which a template does not hold"
        )));
    }
    let r = b.powf(e);
    if r.is_infinite() {
        return Err(TemplateError::Type(format!(
            "{b} ** {e}: numerical result out of range (OverflowError)"
        )));
    }
    float(r)
}

/// The right operand of `format % args`.
#[derive(Clone, Copy)]
enum Args<'a> {
    /// One value: a dict for `%(name)s`, else the only positional one.
    One(Val<'a>),
    /// A tuple's items, the positional arguments in order.
    Tuple(&'a [Value]),
}

/// Python's `format % args` for a string `format`: `%(name)s` takes
/// `name` from a dict, `%s` takes the next of a tuple's items, or `args`
/// itself. Conversions `s` (Python's `str`), `r` (`repr`), `c`, `d`/`i`/`u`,
/// `f`/`F`, `e`/`E`, `g`/`G`, `x`/`X`/`o` and `%%`, with the flags `-+ #0`,
/// a width and a precision. Python's errors are `TemplateError::Type`, a missing key
/// `TemplateError::Undefined`.
fn percent_format(format: &str, args: Args<'_>, max_len: usize) -> Result<String, TemplateError> {
    let type_error = |why: String| Err(TemplateError::Type(why));
    let mut out = String::with_capacity(format.len());
    let mut positional_used = 0usize;
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at + 1..];
        let mut chars = spec.char_indices().peekable();
        let mut value = None;
        if let Some((_, '(')) = chars.peek() {
            chars.next();
            // The key runs to the matching parenthesis, as Python reads it.
            let mut depth = 1;
            let mut end = None;
            for (i, c) in chars.by_ref() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                return type_error("incomplete format key".into());
            };
            let key = &spec[1..end];
            let Args::One(Val::Json(Value::Object(map))) = args else {
                return type_error("format requires a mapping".into());
            };
            value = Some(
                map.get(key)
                    .map(Val::Json)
                    .ok_or_else(|| TemplateError::Undefined(key.to_string()))?,
            );
        }
        let mut flags = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if !"-+ #0".contains(c) {
                break;
            }
            flags.push(c);
            chars.next();
        }
        let digits_at = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(&(_, c)) = chars.peek() {
                let Some(d) = c.to_digit(10) else { break };
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        let width = digits_at(&mut chars).unwrap_or(0);
        let precision = match chars.peek() {
            Some((_, '.')) => {
                chars.next();
                Some(digits_at(&mut chars).unwrap_or(0))
            }
            _ => None,
        };
        while let Some((_, 'h' | 'l' | 'L')) = chars.peek() {
            chars.next();
        }
        let Some((i, conv)) = chars.next() else {
            return type_error("incomplete format".into());
        };
        rest = &spec[i + conv.len_utf8()..];
        if conv == '%' && value.is_none() {
            out.push('%');
            continue;
        }
        let value = match (value, args) {
            (Some(v), _) => v,
            (None, Args::One(v)) if positional_used == 0 => {
                positional_used = 1;
                v
            }
            (None, Args::Tuple(items)) if positional_used < items.len() => {
                positional_used += 1;
                Val::Json(&items[positional_used - 1])
            }
            (None, _) => return type_error("not enough arguments for format string".into()),
        };
        if width > max_len || precision.is_some_and(|p| p > max_len) {
            return Err(TemplateError::TooLarge(format!(
                "a format width over {max_len}"
            )));
        }
        let left = flags.contains('-');
        let (sign, body, zero_pad) = match conv {
            's' | 'r' | 'a' => {
                let mut text = match conv {
                    's' => value.text().into_owned(),
                    'r' => value.repr(),
                    // Python's `ascii()`: the repr, non-ASCII escaped.
                    _ => format::ascii_repr(value),
                };
                if let Some(p) = precision {
                    if let Some((cut, _)) = text.char_indices().nth(p) {
                        text.truncate(cut);
                    }
                }
                (String::new(), text, false)
            }
            // Python's `%c`: one character, or the one an integer is the
            // code point of (a float refused, no precision, no zeros).
            'c' => {
                let c = match (value.as_str(), number(value)) {
                    (Some(s), _) if s.chars().count() == 1 => s.to_string(),
                    (None, Some(Num::Int(i))) => match u32::try_from(i).ok().map(char::from_u32) {
                        Some(Some(c)) => c.to_string(),
                        _ if (0..0x110000).contains(&i) => {
                            return type_error(format!("%c of {i}: a surrogate"))
                        }
                        _ => return type_error("%c arg not in range(0x110000)".into()),
                    },
                    _ => return type_error("%c requires an int or a unicode character".into()),
                };
                (String::new(), c, false)
            }
            'd' | 'i' | 'u' | 'x' | 'X' | 'o' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let Some(n) = number(value) else {
                    return type_error(format!(
                        "%{conv} format: a real number is required, not {}",
                        value.kind()
                    ));
                };
                let negative = match n {
                    Num::Int(i) => i < 0,
                    Num::Float(f) => f.is_sign_negative(),
                };
                let digits = match (conv, n) {
                    ('f' | 'F' | 'e' | 'E' | 'g' | 'G', n) => {
                        format::float_text(as_f64(n).abs(), conv, precision, flags.contains('#'))
                    }
                    ('x' | 'X' | 'o', Num::Float(_)) => {
                        return type_error(format!(
                            "%{conv} format: an integer is required, not float"
                        ))
                    }
                    (_, n) => {
                        let mut d = match (conv, n) {
                            // A float's integer part, exactly (Python's
                            // `int(x)`: 1e300 has 301 digits).
                            (_, Num::Float(f)) => format!("{:.0}", f.abs().trunc()),
                            ('x', Num::Int(i)) => format!("{:x}", i.unsigned_abs()),
                            ('X', Num::Int(i)) => format!("{:X}", i.unsigned_abs()),
                            ('o', Num::Int(i)) => format!("{:o}", i.unsigned_abs()),
                            (_, Num::Int(i)) => i.unsigned_abs().to_string(),
                        };
                        if let Some(p) = precision {
                            if d.len() < p {
                                d = "0".repeat(p - d.len()) + &d;
                            }
                        }
                        d
                    }
                };
                // A float keeps its sign in `%f` even when it rounds to
                // zero (`-0.00`), as Python's; `%d` writes the integer it
                // truncates to, and there is no -0 integer.
                let negative = match conv {
                    'f' | 'F' | 'e' | 'E' | 'g' | 'G' => negative,
                    // Hex digits too: `'%x' % -255` is `-ff`.
                    _ => negative && digits.bytes().any(|b| b.is_ascii_hexdigit() && b != b'0'),
                };
                let sign = if negative {
                    "-"
                } else if flags.contains('+') {
                    "+"
                } else if flags.contains(' ') {
                    " "
                } else {
                    ""
                };
                // `#`'s prefix goes with the sign, before any zero padding
                // (`'%#06x' % 255` is `0x00ff`).
                let prefix = match conv {
                    'x' if flags.contains('#') => "0x",
                    'X' if flags.contains('#') => "0X",
                    'o' if flags.contains('#') => "0o",
                    _ => "",
                };
                (format!("{sign}{prefix}"), digits, flags.contains('0') && !left)
            }
            other => {
                return Err(TemplateError::Type(format!(
                    "unsupported format character {other:?} in a template (s, r, a, c, d, i, u, f, e, g, x, o and their capitals are)"
                )))
            }
        };
        let len = sign.chars().count() + body.chars().count();
        let pad = width.saturating_sub(len);
        if left {
            out.push_str(&sign);
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', pad));
        } else if zero_pad {
            out.push_str(&sign);
            out.extend(std::iter::repeat_n('0', pad));
            out.push_str(&body);
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&sign);
            out.push_str(&body);
        }
        if out.len() > max_len {
            return Err(TemplateError::TooLarge(format!(
                "a value over {max_len} bytes"
            )));
        }
    }
    out.push_str(rest);
    // Python lets a mapping (a list too: it has `__getitem__`) go unused.
    let all_used = match args {
        Args::One(Val::Json(Value::Object(_) | Value::Array(_))) => true,
        Args::One(_) => positional_used == 1,
        Args::Tuple(items) => positional_used == items.len(),
    };
    if !all_used {
        return type_error("not all arguments converted during string formatting".into());
    }
    Ok(out)
}

/// Python's `divmod` of two floats, `y` not zero: CPython's
/// `float_divmod`, the remainder from `fmod` taking the divisor's sign (a
/// zero one too), the quotient `(x - mod) / y` floored, so that the two
/// agree (`1 // 0.1` is 9.0, not `floor(1 / 0.1)`, 10.0).
fn float_divmod(x: f64, y: f64) -> (f64, f64) {
    let mut m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(y);
    }
    let q = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(x / y)
    };
    (q, m)
}

/// Python's `//` on integers: the quotient rounded toward minus infinity.
fn floor_div(x: i128, y: i128) -> i128 {
    let q = x / y;
    if x % y != 0 && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}

/// The digits of an integer in `base` (2 to 36, or 0: from its prefix,
/// as a Python literal is read), as Python's `int(text, base)` reads them
/// once the sign and spaces are gone: a `0x`/`0o`/`0b` prefix of its base,
/// `_` between digits (and after a prefix); `None` when it is not one.
pub(super) fn parse_int(text: &str, base: u32) -> Option<i128> {
    let literal = base == 0;
    let lower = text.get(..2).map(str::to_ascii_lowercase);
    let prefixed = match lower.as_deref() {
        Some("0x") => 16,
        Some("0o") => 8,
        Some("0b") => 2,
        _ => 0,
    };
    let (base, digits) = match (base, prefixed) {
        (0, 0) => (10, text),
        (0, p) => (p, &text[2..]),
        (b, p) if b == p => (b, &text[2..]),
        (b, _) => (b, text),
    };
    let after_prefix = digits.len() < text.len();
    let digits = if after_prefix {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    // Base 0 without a prefix: no leading zero but in zero itself.
    let decimal_zeros = base == 10 && text.starts_with('0') && prefixed == 0;
    let mut n: i128 = 0;
    let mut last_digit = false;
    let mut nonzero = false;
    for c in digits.chars() {
        if c == '_' && last_digit {
            last_digit = false;
            continue;
        }
        let d = c.to_digit(base)?;
        nonzero |= d != 0;
        n = n
            .checked_mul(i128::from(base))?
            .checked_add(i128::from(d))?;
        last_digit = true;
    }
    (last_digit && !(literal && decimal_zeros && nonzero)).then_some(n)
}

/// Python's `int(x)`: an integer as it is, a bool as 0 or 1, a float
/// truncated, a string of digits (with a sign, spaces around, `_` between
/// digits) parsed; `int(text, base)` is [`parse_int`]'s.
fn py_int(v: Val<'_>) -> Result<Value, TemplateError> {
    if let Some(s) = v.as_str() {
        return py_int_text(s, 10);
    }
    match number(v) {
        Some(Num::Int(n)) => int(n),
        Some(Num::Float(f)) if f.abs() < 1e30 => int(f.trunc() as i128),
        Some(Num::Float(f)) => Err(TemplateError::Type(format!(
            "int() of {f}: out of the range a template holds"
        ))),
        None => Err(TemplateError::Type(format!("int() of {}", v.kind()))),
    }
}

/// Python's `int(s, base)` of a string: a sign and spaces around the
/// digits [`parse_int`] reads (Unicode's decimal digits too, as
/// [`decimal_and_space_to_ascii`] makes them).
pub(super) fn py_int_text(s: &str, base: u32) -> Result<Value, TemplateError> {
    let ascii = decimal_and_space_to_ascii(s);
    let t = ascii.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    match parse_int(digits, base) {
        Some(n) => int(if negative { -n } else { n }),
        None => Err(TemplateError::Type(format!(
            "invalid literal for int() with base {base}: {s:?}"
        ))),
    }
}

/// What Python's `int()` and `float()` read a string through
/// (`_PyUnicode_TransformDecimalAndSpaceToASCII`): each decimal digit
/// above ASCII (`Nd`: `٣`, `１`, ...) as its ASCII digit and each
/// whitespace character above ASCII (`U+3000`, `U+00A0`) as a space;
/// ASCII stays as it is (U+001C to U+001F are no spaces to `int()`).
pub(super) fn decimal_and_space_to_ascii(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if !c.is_ascii() && c.is_whitespace() {
                    ' '
                } else if let Some(d) = decimal_value(c) {
                    char::from(b'0' + d)
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// The value of a decimal digit (`Nd`) other than ASCII's. Unicode encodes
/// them in runs of ten, 0 to 9 (a stability guarantee), so the value is
/// the count of digits before it in its run, modulo 10.
fn decimal_value(c: char) -> Option<u8> {
    static DECIMAL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let decimal = |c: char| {
        !c.is_ascii()
            && DECIMAL
                .get_or_init(|| {
                    regex::Regex::new(r"\A\p{Nd}\z")
                        .unwrap_or_else(|e| unreachable!("the class compiles: {e}"))
                })
                .is_match(c.encode_utf8(&mut [0; 4]))
    };
    if !decimal(c) {
        return None;
    }
    // A run can hold several sets of ten (the mathematical digits): the
    // count from the run's start, modulo 10.
    let mut n = u32::from(c);
    let mut run = 0u32;
    while let Some(p) = n
        .checked_sub(1)
        .and_then(char::from_u32)
        .filter(|&p| decimal(p))
    {
        n = u32::from(p);
        run += 1;
    }
    u8::try_from(run % 10).ok()
}

/// Python's `==`: `1 == 1.0 == True`, lists item by item, dicts by keys
/// and values whatever their order, and values of different kinds unequal.
fn equal(a: Val<'_>, b: Val<'_>) -> bool {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return num_cmp(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Val::Json(Value::Null), Val::Json(Value::Null)) => true,
        (Val::Json(Value::Array(x)), Val::Json(Value::Array(y))) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| equal(Val::Json(p), Val::Json(q)))
        }
        (Val::Json(Value::Object(x)), Val::Json(Value::Object(y))) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| equal(Val::Json(p), Val::Json(q))))
        }
        _ => false,
    }
}

/// Python's ordering: numbers (and bools) by value, strings by code
/// point, lists item by item; anything else is Python's `TypeError`.
fn order(op: Op, a: Val<'_>, b: Val<'_>) -> Result<Ordering, TemplateError> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        // UTF-8 byte order is code point order.
        return Ok(x.cmp(y));
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        if let Some(o) = num_cmp(x, y) {
            return Ok(o);
        }
    }
    if let (Val::Json(Value::Array(x)), Val::Json(Value::Array(y))) = (a, b) {
        for (p, q) in x.iter().zip(y) {
            let (p, q) = (Val::Json(p), Val::Json(q));
            if !equal(p, q) {
                return order(op, p, q);
            }
        }
        return Ok(x.len().cmp(&y.len()));
    }
    let sym = match op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        _ => ">=",
    };
    Err(TemplateError::Type(format!(
        "'{sym}' cannot compare {} with {}",
        a.kind(),
        b.kind()
    )))
}

/// Python's `item in container`: a substring of a string, an item of a
/// list (by `==`), a key of a dict.
fn contains(container: Val<'_>, item: Val<'_>) -> Result<bool, TemplateError> {
    if let Some(hay) = container.as_str() {
        return match item.as_str() {
            Some(needle) => Ok(hay.contains(needle)),
            None => Err(TemplateError::Type(format!(
                "'in' a string needs a string, not {}",
                item.kind()
            ))),
        };
    }
    match container {
        Val::Json(Value::Array(items)) => Ok(items.iter().any(|v| equal(item, Val::Json(v)))),
        Val::Json(Value::Object(map)) => match (item.as_str(), item) {
            (Some(k), _) => Ok(map.contains_key(k)),
            // Unhashable in Python.
            (None, Val::Json(v @ (Value::Array(_) | Value::Object(_)))) => Err(
                TemplateError::Type(format!("{} cannot be a key ('in' an object)", kind(v))),
            ),
            // Keys are strings: no number, bool or None is one.
            (None, _) => Ok(false),
        },
        _ => Err(TemplateError::Type(format!(
            "'in' needs a string, an array or an object, not {}",
            container.kind()
        ))),
    }
}

/// Python's `len`: a string's characters, an array's items, an object's
/// keys; anything else is Python's `TypeError`.
pub(super) fn py_len(v: Val<'_>) -> Result<usize, TemplateError> {
    if let Some(s) = v.as_str() {
        return Ok(s.chars().count());
    }
    match v {
        Val::Json(Value::Array(a)) => Ok(a.len()),
        Val::Json(Value::Object(m)) => Ok(m.len()),
        other => Err(TemplateError::Type(format!("len() of {}", other.kind()))),
    }
}

/// The integers of Python's `range(args)` (one to three integers).
pub(super) fn range(args: &[Val<'_>], max_len: usize) -> Result<Vec<Value>, TemplateError> {
    let mut ints = Vec::with_capacity(3);
    for a in args {
        match number(*a) {
            Some(Num::Int(n)) => ints.push(n),
            _ => {
                return Err(TemplateError::Type(format!(
                    "range() takes integers, not {}",
                    a.kind()
                )))
            }
        }
    }
    let (start, stop, step) = match ints[..] {
        [stop] => (0, stop, 1),
        [start, stop] => (start, stop, 1),
        [start, stop, step] => (start, stop, step),
        _ => return Err(TemplateError::Type("range() takes 1 to 3 arguments".into())),
    };
    if step == 0 {
        return Err(TemplateError::Type("range() step must not be zero".into()));
    }
    let len = if step > 0 && start < stop {
        (stop - start + step - 1) / step
    } else if step < 0 && start > stop {
        (start - stop - step - 1) / -step
    } else {
        0
    };
    if len > max_len as i128 {
        return Err(TemplateError::TooLarge(format!(
            "range() of {len} items (at most {max_len})"
        )));
    }
    (0..len).map(|i| int(start + i * step)).collect()
}

/// A template value as a JSON value of its own.
pub(super) fn to_value(v: Val<'_>) -> Value {
    match v {
        Val::Str(s) => Value::String(s.to_string()),
        Val::Json(v) => v.clone(),
    }
}

/// A slice bound: an integer (or a bool, as Python takes it).
fn slice_index(v: Val<'_>) -> Result<i128, TemplateError> {
    match number(v) {
        Some(Num::Int(n)) => Ok(n),
        _ => Err(TemplateError::Type(format!(
            "slice indices must be integers or None, not {}",
            v.kind()
        ))),
    }
}

/// The positions Python's `x[start:stop:step]` takes from a sequence of
/// `len` items (CPython's `PySlice_AdjustIndices`).
fn slice_positions(
    len: usize,
    [start, stop, step]: [Option<i128>; 3],
) -> Result<Vec<usize>, TemplateError> {
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(TemplateError::Type("slice step cannot be zero".into()));
    }
    let len = len as i128;
    let (lower, upper) = if step > 0 { (0, len) } else { (-1, len - 1) };
    let adjust = |i: Option<i128>, default: i128| match i {
        None => default,
        Some(i) => {
            let i = if i < 0 { i + len } else { i };
            i.clamp(lower, upper)
        }
    };
    let (start, stop) = if step > 0 {
        (adjust(start, lower), adjust(stop, upper))
    } else {
        (adjust(start, upper), adjust(stop, lower))
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        // `lower..=upper` keeps `i` within the sequence here.
        out.push(usize::try_from(i).unwrap_or_default());
        i += step;
    }
    Ok(out)
}

/// Python's slice of a string (by characters) or an array.
fn slice(base: Val<'_>, bounds: [Option<i128>; 3]) -> Result<Value, TemplateError> {
    if let Some(s) = base.as_str() {
        let chars: Vec<char> = s.chars().collect();
        let at = slice_positions(chars.len(), bounds)?;
        return Ok(Value::String(at.into_iter().map(|i| chars[i]).collect()));
    }
    match base {
        Val::Json(Value::Array(items)) => {
            let at = slice_positions(items.len(), bounds)?;
            Ok(Value::Array(
                at.into_iter().map(|i| items[i].clone()).collect(),
            ))
        }
        other => Err(TemplateError::Type(format!(
            "cannot slice {}",
            other.kind()
        ))),
    }
}

/// A locale function's value. A message that is not a string is returned
/// as it is, as Python's dictionary lookup falls back to it.
fn locale_call<'a>(
    env: &dyn Env<'a>,
    func: LocaleFn,
    args: &'a [Option<Exp>],
) -> Result<V<'a>, TemplateError> {
    let mut vals: Vec<Option<V<'a>>> = Vec::with_capacity(args.len());
    for a in args {
        vals.push(a.as_ref().map(|e| e.eval(env)).transpose()?);
    }
    let arg = |i: usize| vals.get(i).and_then(Option::as_ref).map(V::view);
    let locale = env.locale();
    let text = |s: &str| own(Value::String(s.to_owned()));
    let type_error = |what: &str, v: Val<'_>| {
        Err(TemplateError::Type(format!(
            "locale: {what} takes {}",
            v.kind()
        )))
    };
    // `translate(message, plural_message, count)` after `context`, if any.
    let translate = |context: Option<&str>, first: usize| -> Result<V<'a>, TemplateError> {
        let message = arg(first).expect("checked when parsed");
        let plural = match (arg(first + 1), arg(first + 2)) {
            (Some(plural), Some(count)) => {
                let one = equal(count, Val::Json(&Value::from(1)));
                // gettext's Plural-Forms evaluate the count itself.
                let n = match number(count) {
                    Some(Num::Int(i)) => i64::try_from(i).unwrap_or(i64::MAX),
                    Some(Num::Float(f)) => f as i64,
                    None if locale.counts_plurals() => {
                        return type_error("a plural count: an integer", count)
                    }
                    None => i64::from(one),
                };
                Some((plural, n, one))
            }
            _ => None,
        };
        let out = match (plural, message.as_str()) {
            (None, Some(m)) => match context {
                Some(c) => locale.pgettext(c, m),
                None => locale.translate(m),
            },
            (Some((p, n, one)), Some(m)) => match (p.as_str(), context) {
                (Some(p), Some(c)) => locale.pgettext_count(c, m, p, n, one),
                (Some(p), None) => locale.translate_count(m, p, n, one),
                (None, _) => return own(to_value(if one { message } else { p })),
            },
            // A message that is not a string is no key: it comes back.
            (Some((p, _, one)), None) => return own(to_value(if one { message } else { p })),
            (None, None) => return own(to_value(message)),
        };
        text(out)
    };
    match func {
        LocaleFn::Translate => translate(None, 0),
        LocaleFn::Pgettext => {
            let context = arg(0).expect("checked when parsed").text();
            translate(Some(&context), 1)
        }
        LocaleFn::List => {
            let parts = arg(0).expect("checked when parsed");
            let items: Vec<Cow<'_, str>> = match parts {
                Val::Json(Value::Array(items)) if items.len() == 1 => {
                    return own(items[0].clone());
                }
                Val::Json(Value::Array(items)) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        match item.as_str() {
                            Some(s) => out.push(Cow::Borrowed(s)),
                            None => return type_error("list() of strings", Val::Json(item)),
                        }
                    }
                    out
                }
                other => match other.as_str() {
                    Some(s) => s.chars().map(|c| Cow::Owned(c.to_string())).collect(),
                    None => return type_error("list() a list", other),
                },
            };
            text(&bounded(locale.list(&items), env.max_len())?)
        }
        LocaleFn::FriendlyNumber => {
            let v = arg(0).expect("checked when parsed");
            match (v, number(v)) {
                (Val::Json(Value::Number(_)), Some(Num::Int(n))) => match i64::try_from(n) {
                    Ok(n) => text(&locale.friendly_number(n)),
                    Err(_) => type_error("friendly_number() a 64-bit integer", v),
                },
                _ => type_error("friendly_number() an integer", v),
            }
        }
        LocaleFn::FormatDate | LocaleFn::FormatDay => {
            let date = timestamp_us(arg(0).expect("checked when parsed"))?;
            let gmt_offset = match arg(1) {
                None => 0,
                Some(v) => match number(v) {
                    Some(Num::Int(n)) => i64::try_from(n).unwrap_or(i64::MAX),
                    _ => return type_error("a gmt_offset in whole minutes", v),
                },
            };
            let flag = |i: usize, default: bool| arg(i).map_or(default, |v| v.truthy());
            let out = if func == LocaleFn::FormatDay {
                locale.format_day_us(date, gmt_offset, flag(2, true))
            } else {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
                let format = crate::locale::DateFormat {
                    gmt_offset,
                    relative: flag(2, true),
                    shorter: flag(3, false),
                    full_format: flag(4, false),
                };
                locale.format_date_us(date, now, format)
            };
            text(&out)
        }
    }
}

/// A word of Python's grammar that no name can be.
fn is_keyword(w: &str) -> bool {
    matches!(
        w,
        "and" | "or" | "not" | "in" | "is" | "if" | "else" | "for" | "lambda"
    )
}

/// A Python identifier of ASCII letters, digits and `_`, not starting with
/// a digit, and none of Python's constants.
fn is_identifier(w: &str) -> bool {
    w.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !matches!(w, "True" | "False" | "None")
}

/// A date argument: seconds since the Unix epoch (an integer or a float,
/// as Python's `format_date` takes them), in microseconds, rounded half to
/// even as `datetime.fromtimestamp` rounds.
fn timestamp_us(v: Val<'_>) -> Result<i64, TemplateError> {
    let out_of_range = || TemplateError::Type(format!("a date of {} is out of range", v.text()));
    match (v, number(v)) {
        (Val::Json(Value::Number(_)), Some(Num::Int(s))) => i64::try_from(s)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .ok_or_else(out_of_range),
        (Val::Json(Value::Number(_)), Some(Num::Float(s))) => {
            let us = (s * 1e6).round_ties_even();
            if us.abs() < 9.2e18 {
                Ok(us as i64)
            } else {
                Err(out_of_range())
            }
        }
        _ => Err(TemplateError::Type(format!(
            "locale: a date is a number of seconds since the epoch, not {}",
            v.kind()
        ))),
    }
}
