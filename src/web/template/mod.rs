//! The template language of `RequestContext::render` and `render_with`:
//! see [`Template`] for the syntax.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io;
use std::sync::Arc;

use serde::Serialize;

pub(crate) mod expr;
use serde_json::{Map, Value};

const MAX_NESTING: usize = Template::MAX_NESTING;
const MAX_RENDER_DEPTH: usize = Template::MAX_RENDER_DEPTH;
pub(crate) const MAX_INCLUDE_DEPTH: usize = Template::MAX_INCLUDE_DEPTH;

/// Why a template could not be parsed or rendered.
///
/// Where the error is, is told by two wrappers around the error itself:
/// [`At`](TemplateError::At) gives the line of the tag in the template's
/// source, [`In`](TemplateError::In) the template it is in, when that is
/// another template than the one parsed or rendered (an included or parent
/// template, named as its `{% include %}` or `{% extends %}` wrote it).
/// [`innermost`](TemplateError::innermost) is the error under them.
///
/// ```
/// use cyclone::web::{Template, TemplateError};
///
/// let t = Template::parse("<h1>{{ title }}</h1>\n<p>{{ user.name }}</p>").unwrap();
/// let err = t.render_value(&serde_json::json!({ "title": "T" })).unwrap_err();
/// assert_eq!(err.to_string(), "undefined variable \"user.name\" at line 2");
/// assert_eq!(err.innermost(), &TemplateError::Undefined("user.name".into()));
///
/// let err = Template::parse("a\n{% if x %}\n{{ y").unwrap_err();
/// assert_eq!(err.to_string(), "{{ without its closing }} at line 3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{{`, `{%` or `{#` without its closing tag; the opening.
    Unclosed(String),
    /// An unsupported `{% .. %}` directive or `{{ .. }}` expression, or a
    /// malformed tag; the tag's text.
    BadTag(String),
    /// Rendering needed a name that was not given, or a path stepped into a
    /// missing field or index; the path.
    Undefined(String),
    /// An `{% end %}`, `{% else %}` or `{% elif %}` with no open block it
    /// can end or continue (or a second `{% else %}`), or a `{% break %}`
    /// or `{% continue %}` outside a `{% for %}`; the tag's text.
    Unbalanced(String),
    /// An `{% if %}`, `{% for %}` or `{% block %}` without its `{% end %}`;
    /// the tag's text.
    UnclosedBlock(String),
    /// Nesting, rendering or include depth over its limit
    /// ([`Template::MAX_NESTING`], [`Template::MAX_RENDER_DEPTH`],
    /// [`Template::MAX_INCLUDE_DEPTH`]).
    TooDeep(String),
    /// Rendering did more work than [`Template::MAX_RENDER_STEPS`] or made
    /// more output than [`Template::MAX_OUTPUT`] (nested loops over large
    /// arrays, blocks or includes shown from inside each other): a bound,
    /// so that no template can hang the loop or exhaust memory.
    TooLarge(String),
    /// A value of the wrong kind: a loop over a number or boolean,
    /// `.items()` of something that is not an object, or a render value that
    /// is not a JSON object.
    Type(String),
    /// An `{% include %}` or `{% extends %}` (or the template itself) could
    /// not be loaded: no such file, a refused name, a cycle.
    Load(String),
    /// A function that needs the application, rendered without one:
    /// `{{ static_url(..) }}` in a template rendered by
    /// [`Template::render`], [`render_value`](Template::render_value) or
    /// [`render_with`](Template::render_with) rather than by
    /// `RequestContext::render`, `render_with` or `render_string` (or
    /// [`Template::render_value_with_static_url`]); the function's name.
    /// (Tornado raises `NameError` for it outside a `RequestHandler`.)
    NeedsRequest(String),
    /// The render was refused with an HTTP status, as Tornado's
    /// `HTTPError` raised in a template: `{{ static_url(path) }}` for a
    /// path out of `static_path` ([`StaticUrlError`]: 403), and
    /// `handler.get_argument(name)` (or `get_query_argument`,
    /// `get_body_argument`) without a default, of an argument the request
    /// does not have (Tornado's `MissingArgumentError`: 400, `Missing
    /// argument name`). `RequestContext::render` and `render_with` answer
    /// it as Tornado's handler does: the plain page of `status` (with
    /// `debug`, `message` in it, where Tornado's shows the traceback), and
    /// `message` logged at `warn` with the request (`400 GET /p?x=1
    /// (10.0.0.1): Missing argument name`), as
    /// [`RequestContext::require_argument`](super::RequestContext::require_argument)
    /// does; their other errors answer 500. `{% try %}` catches it, as
    /// Python's `except` does. Shown as Python's `str` of the error, `HTTP
    /// 400: Bad Request (Missing argument name)`.
    ///
    /// [`StaticUrlError`]: super::StaticUrlError
    Http {
        /// The status to answer.
        status: u16,
        /// What is logged (Tornado's `log_message`; not shown in the
        /// page). (A `Box<str>`: it keeps `TemplateError` at 32 bytes,
        /// which the render's deep recursion carries in its frames.)
        message: Box<str>,
    },
    /// An error in the included or parent template `name`.
    In {
        /// The template's name: as the loader resolved it for a parse
        /// error; for a render error, as the `{% include %}` or
        /// `{% extends %}` that names it wrote it (relative to the template
        /// that does).
        name: String,
        /// What went wrong there.
        error: Box<TemplateError>,
    },
    /// `error`, at the tag on line `line` of the template's source: every
    /// parse error, and render errors that come from one tag (an undefined
    /// name, a loop over a value of the wrong kind). Shown as
    /// `undefined variable "user" at line 3`.
    At {
        /// The 1-based line where the tag starts (its `{{`, `{%` or `{#`).
        line: u32,
        /// What went wrong there.
        error: Box<TemplateError>,
    },
}

impl TemplateError {
    /// The error under its [`At`](Self::At) and [`In`](Self::In) wrappers:
    /// what went wrong, without where.
    #[must_use]
    pub fn innermost(&self) -> &TemplateError {
        let mut error = self;
        while let TemplateError::At { error: inner, .. } | TemplateError::In { error: inner, .. } =
            error
        {
            error = inner;
        }
        error
    }

    /// `self` at line `line`, unless it already tells where it is (an error
    /// of another template a loader returned).
    fn at(self, line: u32) -> TemplateError {
        match self {
            TemplateError::At { .. } | TemplateError::In { .. } => self,
            error => TemplateError::At {
                line,
                error: Box::new(error),
            },
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed(open) => {
                let close = match open.as_str() {
                    "{{" => "}}",
                    "{#" => "#}",
                    _ => "%}",
                };
                write!(f, "{open} without its closing {close}")
            }
            TemplateError::BadTag(tag) => {
                write!(f, "unsupported tag {tag:?}: {}", bad_tag_hint(tag))
            }
            TemplateError::Undefined(name) => write!(f, "undefined variable {name:?}"),
            TemplateError::Unbalanced(tag) if tag == "break" || tag == "continue" => {
                write!(f, "{{% {tag} %}} outside a {{% for %}} loop")
            }
            TemplateError::Unbalanced(tag) => {
                write!(f, "{{% {tag} %}} without a matching open block")
            }
            TemplateError::UnclosedBlock(tag) => {
                write!(f, "{{% {tag} %}} without its {{% end %}}")
            }
            TemplateError::TooDeep(what) => write!(f, "too deep: {what}"),
            TemplateError::TooLarge(what) => write!(f, "too large: {what}"),
            TemplateError::Type(what) => f.write_str(what),
            TemplateError::Load(what) => f.write_str(what),
            TemplateError::NeedsRequest(name) if name == "static_url" => write!(
                f,
                "{name}() needs a request: render with RequestContext::render, render_with or \
                 render_string (and the static_path setting), or \
                 Template::render_value_with_static_url"
            ),
            TemplateError::NeedsRequest(name) => write!(
                f,
                "{name}() needs a request: render with RequestContext::render, render_with or \
                 render_string"
            ),
            TemplateError::Http { status, message } => write!(
                f,
                "HTTP {status}: {} ({message})",
                crate::http::reason_phrase(*status)
            ),
            TemplateError::In { name, error } => write!(f, "in {name:?}: {error}"),
            TemplateError::At { line, error } => write!(f, "{error} at line {line}"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Why the tag text `tag` (of a `{{ }}` or `{% %}`) was refused, for
/// [`TemplateError::BadTag`]'s message.
fn bad_tag_hint(tag: &str) -> &'static str {
    // A call of a known function (also after `raw`) with arguments that
    // are not one path or quoted string.
    let callee = tag.split_once('(').map(|(callee, _)| {
        let callee = callee.trim();
        callee
            .strip_prefix("raw")
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .map_or(callee, str::trim)
    });
    if callee.is_some_and(expr::is_callee) {
        return "a function takes one argument, an expression, and only these keyword arguments: url_escape's plus, linkify's shorten, extra_params, require_protocol and permitted_protocols (no call of its result)";
    }
    let (word, arg) = match tag.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (tag, ""),
    };
    match word {
        "" => "an empty tag",
        "module" => "a module is a call: Tornado's built-in Template(\"name.html\", key=value), xsrf_form_html() and linkify(text), or Name(args, key=value) of the application's (ApplicationBuilder::ui_module)",
        "except" => "write a bare `except` (or `except Exception`): errors of a render are not typed",
        "try" => "a `try` takes nothing after it, and needs an {% except %} or a {% finally %} before its {% end %}",
        "while" => "a condition is a Python expression (as after `if`)",
        "import" | "from"
        => "Tornado's tag is not supported: cyclone templates run Python expressions, not statements",
        "autoescape" => "only {% autoescape None %} and {% autoescape xhtml_escape %} are supported",
        "apply" => "write `apply linkify`, `apply xhtml_escape`, `apply escape` or `apply url_escape`: the functions Tornado can apply to a body's text",
        "if" | "elif" => "a condition is a Python expression: paths and literals with `and`, `or`, `not`, comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `is None`), arithmetic (`+`, `-`, `*`, `/`, `//`, `%`, `**`), subscripts, parentheses and calls of Tornado's template functions (static_url, json_encode, url_escape, xhtml_escape, escape, squeeze, linkify, len, str, int, abs, ...) or the application's (ApplicationBuilder::ui_method)",
        "for" => "write `for x in path` (or an expression), `for a, b, .. in path` (or `(a, b, ..)`), `for k, v in path.items()`, `.keys()`, `.values()`, `for i in range(..)` or `for i, x in enumerate(..)`",
        "set" => "write `set name = expression` (a path, a literal, or a Python expression of them)",
        "include" if template_name(arg).is_some() => {
            "that template has {% extends %}: a template with a parent cannot be included (Tornado raises NotImplementedError for it)"
        }
        "extends" if template_name(arg).is_some() => "only one extends, outside every block",
        "include" | "extends" => "the template's name is missing",
        "raw" => "write `raw path` or `raw json_encode(path)` (what {{ }} takes)",
        "block" => "a block needs a name",
        "end" | "else" | "break" | "continue" | "finally" => "takes nothing after it",
        w if w.starts_with("end") => "every block closes with {% end %}",
        _ => "{{ }} takes a Python expression: paths (name.field.0 or name['field'][0]), literals, lists, dicts, list and dict comprehensions, operators, methods of strings, lists and dicts, and calls of Tornado's template functions (static_url, reverse_url, json_encode, url_escape, xhtml_escape, escape, squeeze, linkify, len, str, int, abs, _, pgettext, locale's), Python's builtins (range, enumerate, zip, sorted, min, max, sum, round, ...) or the application's (ApplicationBuilder::ui_method); a lambda only as sorted's, min's or max's key= or map's and filter's function; {% %} takes raw, if, elif, else, end, for, while, break, continue, try, except, finally, set, include, extends, block, module, apply, whitespace, comment or autoescape",
    }
}

/// A function of Tornado's template namespace that `{{ }}` and
/// `{% raw %}` can call (see *Functions* on [`Template`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    /// `static_url`: [`RequestContext::static_url`](super::RequestContext::static_url).
    StaticUrl,
    /// `json_encode`: JSON, `</` written `<\/`.
    JsonEncode,
    /// `url_escape`: Python's `quote_plus` of the UTF-8 bytes.
    UrlEscape,
    /// `xhtml_escape` and its alias `escape`.
    XhtmlEscape,
    /// `squeeze`: runs of `\x00`-`\x20` become one space, then strip.
    Squeeze,
    /// `linkify`: the text HTML-escaped, its URLs made links.
    Linkify,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "static_url" => Func::StaticUrl,
            "json_encode" => Func::JsonEncode,
            "url_escape" => Func::UrlEscape,
            "xhtml_escape" | "escape" => Func::XhtmlEscape,
            "squeeze" => Func::Squeeze,
            "linkify" => Func::Linkify,
            _ => return None,
        })
    }
}

/// What `{{ }}` and `{% raw %}` print.
#[derive(Debug, Clone)]
enum Expr {
    Path(String),
    /// Any other Python expression (see *Expressions* on [`Template`]).
    Exp(Box<expr::Exp>),
}

/// An expression as a tag writes it: a literal, a path as it is (also a
/// [`Template::render`] pair's name such as `a-b`), else Python's
/// expression ([`expr::parse`]; constant subscripts, `d['k'][0]`, are
/// folded into a path there).
fn parse_exp(s: &str) -> Option<expr::Exp> {
    literal(s)
        .map(expr::Exp::Literal)
        .or_else(|| path(s).map(expr::Exp::Path))
        .or_else(|| expr::parse(s))
}

/// What `{{ }}` and `{% raw %}` take: a path is looked up without the
/// evaluator.
fn parse_expr(s: &str) -> Option<Expr> {
    Some(match parse_exp(s)? {
        expr::Exp::Path(p) => Expr::Path(p),
        e => Expr::Exp(Box::new(e)),
    })
}

#[derive(Debug, Clone)]
struct Cond {
    test: expr::Exp,
    /// The line of its `{% if %}` or `{% elif %}`.
    line: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `in path`: an array's elements, an object's keys.
    Plain,
    Items,
    Keys,
    Values,
}

/// A `{% for %}`.
#[derive(Debug, Clone)]
struct Loop {
    var: String,
    /// The names after the first, when the loop unpacks its items
    /// (`for k, v in ..`, `for a, b, c in ..`).
    rest: Vec<String>,
    /// `for a, (b, c) in ..`: the targets, when one is nested (`var` and
    /// `rest` then hold their names, in order).
    nested: Option<Vec<Target>>,
    /// What the loop goes over, as written (for error messages).
    path: String,
    iter: Iter,
    source: Source,
    body: Vec<Node>,
    /// `{% else %}`: shown when the loop ends without `{% break %}`.
    otherwise: Vec<Node>,
    line: u32,
}

/// What a `{% for %}` goes over.
#[derive(Debug, Clone)]
enum Iter {
    Path(String),
    Exp(Box<expr::Exp>),
    /// `range(..)`: one to three integer expressions.
    Range(Vec<expr::Exp>),
    /// `enumerate(..)`, unpacked into two names.
    Enumerate(Box<expr::Exp>),
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    /// `{{ }}` (`escape` unless `{% autoescape None %}`) or `{% raw %}`.
    Var {
        expr: Expr,
        escape: bool,
        line: u32,
    },
    If {
        branches: Vec<(Cond, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    For(Box<Loop>),
    Break,
    Continue,
    Set {
        name: String,
        value: SetValue,
        line: u32,
        /// `{% set a, (b, c) = .. %}`: the targets the value unpacks into
        /// (`name` is the first's first name).
        unpack: Option<Box<[Target]>>,
    },
    Include {
        name: String,
        template: Arc<Template>,
    },
    /// `{% module Template("name", key=value, …) %}`: the template `name`
    /// rendered with the keyword arguments alone as its values (and the
    /// request's namespace), unescaped. Loaded with the page when it can
    /// be (`loaded`); one that cannot (a template rendering itself as a
    /// module, for a tree: an include cycle while parsing) is loaded when
    /// rendered, through the application, as Tornado's `TemplateModule`
    /// calls `render_string`; the recursion ends with the data.
    Module {
        name: String,
        loaded: Result<Arc<Template>, Box<TemplateError>>,
        kwargs: Vec<(String, expr::Exp)>,
        line: u32,
    },
    Block {
        name: String,
        body: Arc<[Node]>,
    },
    /// `{% apply func %}`: the body rendered, then `func` of its text,
    /// unescaped.
    Apply {
        func: Func,
        body: Vec<Node>,
    },
    /// `{% while cond %}`, with its `{% else %}` part.
    While(Box<WhileLoop>),
    /// `{% try %}` with `{% except %}`, `{% else %}` and `{% finally %}`.
    Try(Box<TryBlock>),
}

/// A `{% while %}` loop.
#[derive(Debug, Clone)]
struct WhileLoop {
    cond: Cond,
    body: Vec<Node>,
    /// Shown when the condition turns false (not after a `break`).
    otherwise: Vec<Node>,
}

/// A `{% try %}` block: Python's `try` statement. `except` takes any
/// error of the render but the resource limits ([`TemplateError::TooLarge`],
/// [`TemplateError::TooDeep`]), as a bare `except:` or `except
/// Exception:` would.
#[derive(Debug, Clone, Default)]
struct TryBlock {
    body: Vec<Node>,
    /// `None`: no `{% except %}` part.
    except: Option<Vec<Node>>,
    otherwise: Vec<Node>,
    finally: Vec<Node>,
}

impl TryBlock {
    fn parts(&self) -> impl Iterator<Item = &Vec<Node>> {
        [
            Some(&self.body),
            self.except.as_ref(),
            Some(&self.otherwise),
            Some(&self.finally),
        ]
        .into_iter()
        .flatten()
    }

    fn parts_mut(&mut self) -> impl Iterator<Item = &mut Vec<Node>> {
        [
            Some(&mut self.body),
            self.except.as_mut(),
            Some(&mut self.otherwise),
            Some(&mut self.finally),
        ]
        .into_iter()
        .flatten()
    }
}

/// The part of a `{% try %}` being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TryPart {
    Body,
    Except,
    Else,
    Finally,
}

/// What a `{% set %}` binds: a path, or a Python literal.
#[derive(Debug, Clone)]
enum SetValue {
    Path(String),
    Literal(Value),
    Exp(Box<expr::Exp>),
}

/// The text of a Python string literal whose quotes are `q`, its escapes
/// read as Python reads them: `\\`, `\'`, `\"`, `\a \b \f \n \r \t \v`,
/// octal `\ooo`, `\xhh`, `\uXXXX`, `\UXXXXXXXX`, a backslash before a
/// newline continuing the line, and any other backslash kept as it is.
/// `None` for an unescaped `q`, a bad `\x`/`\u`/`\U`, a surrogate or
/// `\N{..}` (no table of Unicode names here).
fn py_unescape(inner: &str, q: char) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == q {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
            let mut v = 0u32;
            for _ in 0..n {
                v = v * 16 + chars.next()?.to_digit(16)?;
            }
            char::from_u32(v)
        };
        match e {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(e),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            'x' => out.push(hex(&mut chars, 2)?),
            'u' => out.push(hex(&mut chars, 4)?),
            'U' => out.push(hex(&mut chars, 8)?),
            'N' => return None,
            '0'..='7' => {
                let mut v = e.to_digit(8)?;
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v)?);
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// A Python literal as `{% set x = … %}` takes it: a quoted string (with
/// Python's backslash escapes), an integer, a float (`2.5`, `.5`, `1e3`),
/// `True`, `False` or `None`. `None` for anything else, which is then a
/// path.
fn literal(s: &str) -> Option<Value> {
    match s {
        "True" => return Some(Value::Bool(true)),
        "False" => return Some(Value::Bool(false)),
        "None" => return Some(Value::Null),
        _ => {}
    }
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = s.strip_prefix(q)?.strip_suffix(q)?;
        return (s.len() >= 2)
            .then(|| py_unescape(inner, q))
            .flatten()
            .map(Value::String);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    // Python's `0x1f`, `0o17`, `0b101` and `1_000`: an integer as
    // `int(text, 0)` reads it.
    let prefixed = matches!(digits.get(..2), Some(p) if ["0x", "0o", "0b"].contains(&p.to_ascii_lowercase().as_str()));
    if prefixed || (digits.contains('_') && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
    {
        let n = expr::parse_int(digits, 0)?;
        let n = if s.starts_with('-') { -n } else { n };
        return i64::try_from(n)
            .map(Value::from)
            .or_else(|_| u64::try_from(n).map(Value::from))
            .ok();
    }
    // `1_000.5`, `1e1_0`: each `_` between two digits, then dropped.
    if digits.contains('_') {
        let b = s.as_bytes();
        let between = (1..b.len().saturating_sub(1))
            .filter(|&i| b[i] == b'_')
            .all(|i| b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit());
        let ends = !s.ends_with('_') && !digits.starts_with('_');
        return (between && ends)
            .then(|| literal(&s.replace('_', "")))
            .flatten();
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        // Python refuses `01`; a number past 64 bits is refused too.
        if digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        return if let Ok(n) = s.parse::<i64>() {
            Some(Value::from(n))
        } else {
            s.trim_start_matches('+')
                .parse::<u64>()
                .ok()
                .map(Value::from)
        };
    }
    let float_chars = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !float_chars || !digits.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// Names of templates, outermost first: where nodes come from, seen from
/// the template being rendered (empty for its own nodes). Each name is as
/// the `{% include %}` or `{% extends %}` of the one before wrote it.
type Origin = Arc<[String]>;

/// `origin` seen from the template that reached it through `name`.
fn under(name: &str, origin: &[String]) -> Origin {
    std::iter::once(name.to_string())
        .chain(origin.iter().cloned())
        .collect()
}

/// A block's body, as shown where a `{% block %}` of its name is.
#[derive(Debug, Clone)]
struct BlockDef {
    body: Arc<[Node]>,
    /// The template that defined it.
    origin: Origin,
}

/// A parsed template, ready to render many times: the small template
/// language of [`RequestContext::render`](super::RequestContext::render) and
/// [`render_with`](super::RequestContext::render_with).
///
/// It is Tornado's template syntax with the part of Python that templates
/// use (see *Expressions*): no statements, imports or arbitrary calls. The
/// simplest expression is a *path*: a name, then `.field` or `.index` steps
/// (`message.author`, `rows.0.cells.2`) or Python's subscripts
/// (`message['author']`, `rows[i]['cells'][-1]`: an index from the back
/// when negative). Names come from the value given to
/// [`Template::render_value`] / `RequestContext::render_with` (any
/// `serde::Serialize` value that is a JSON object: its fields are the names),
/// or from the `(name, value)` string pairs of [`Template::render`].
///
/// | syntax | meaning |
/// |--------|---------|
/// | `{{ path }}`, `{{ expression }}` | the value, HTML-escaped (see *Printing values* and *Expressions* below): `{{ name or 'anonymous' }}`, `{{ i + 1 }}`, `{{ 'on' if active else 'off' }}` |
/// | `{% raw expression %}` | the value, unescaped; `{% raw json_encode(path) %}` |
/// | `{{ static_url("css/app.css") }}` | the file's versioned URL, [`RequestContext::static_url`](super::RequestContext::static_url) (see *Functions*) |
/// | `{{ json_encode(path) }}` | the value as JSON, `</` written `<\/`; inside `<script>` use `{% raw json_encode(path) %}` |
/// | `{{ url_escape(path) }}` | the text for a query string: space `+`, other than `A-Za-z0-9_.-~` as `%XX` |
/// | `{{ xhtml_escape(path) }}`, `{{ escape(path) }}` | the text HTML-escaped, then escaped again by `{{ }}` as in Tornado (so use `{% raw escape(path) %}`) |
/// | `{{ squeeze(path) }}` | the text with each run of whitespace and control characters (`\x00`–`\x20`) one space, stripped |
/// | `{{ len(path) }}` | Python's `len`: characters, items or keys |
/// | `{% raw linkify(path) %}` | the text HTML-escaped, its URLs made links (Tornado's `linkify`) |
/// | `{% if expression %}` … `{% elif expression %}` … `{% else %}` … `{% end %}` | conditionals with Python truthiness: `{% if user.age >= 18 and user.name not in banned %}`, `{% if x is None %}` (see *Expressions*) |
/// | `{% for x in expression %}` … `{% end %}` | `x` bound to each element of an array (each key of an object, each character of a string) |
/// | `{% for i in range(n) %}`, `{% for i, x in enumerate(xs) %}` | Python's `range` (one to three integers) and `enumerate` (unpacked into two names) |
/// | `{% for k, v in path.items() %}` … `{% end %}` | an object's keys and values; also `path.keys()`, `path.values()`; `for a, b in path` (or `for (a, b) in ..`) unpacks arrays of pairs, `for a, b, c in ..` of triples, and so on |
/// | `{% for x in path %}` … `{% else %}` … `{% end %}` | Python's `for … else`: the `else` part renders after the loop unless a `{% break %}` ended it (so also for an empty array) |
/// | `{% break %}`, `{% continue %}` | end the innermost `{% for %}`, or its current iteration; also from inside an `{% if %}` in it (see *Loops* below) |
/// | `{% while expression %}` … `{% else %}` … `{% end %}` | Python's `while` (with `break`, `continue` and `else`), usually with a `{% set %}` in the body: `{% set i = 0 %}{% while i < n %}…{% set i = i + 1 %}{% end %}`; a loop that never ends stops at the render's step budget ([`TemplateError::TooLarge`]) |
/// | `{% try %}` … `{% except %}` … `{% else %}` … `{% finally %}` … `{% end %}` | Python's `try`: what the body printed before an error stays, the `except` part (bare, or `except Exception`) runs on an error of the render, `else` when there was none, `finally` always; the render's limits are not caught |
/// | `{% module Template("file.html", key=expression, …) %}` | Tornado's `TemplateModule`: that template (relative to `template_path`, not to this file) rendered with the keyword arguments as its only values, and the request's namespace; unescaped |
/// | `{% module xsrf_form_html() %}`, `{% module linkify(path) %}` | Tornado's built-in modules, unescaped |
/// | `{% module Name(expression, …, key=expression, …) %}` | the application's UI module `Name` ([`UiModule`](super::UiModule), added with [`ApplicationBuilder::ui_module`](super::ApplicationBuilder::ui_module)): its `render` of the arguments, unescaped; its JavaScript and CSS go into the page `RequestContext::render` sends. A name no module has fails where it is rendered |
/// | `{{ modules.Name(…) }}`, `{% raw modules.Name(…) %}` | Tornado's `modules` namespace: the module's HTML in an expression (escaped by `{{ }}`, as in Tornado); also `modules.linkify(..)` and `modules.xsrf_form_html()`; `Template` only through the tag |
/// | `{{ set_resources(embedded_css="…", javascript_files=["a.js"], …) }}` | in a `{% module Template(..) %}`'s template: Tornado's resources of that template (`embedded_javascript`, `javascript_files`, `embedded_css`, `css_files`, `html_head`, `html_body`), put into the page as a [`UiModule`](super::UiModule)'s are; prints nothing |
/// | `_("text")`, `_("1 file", "%(n)d files", n) % {"n": n}`, `pgettext("menu", "Open")`, `locale.format_date(ts)`, `locale.code` | the request's locale ([`crate::locale`]): translations, Python's `%` formatting and dict displays |
/// | `{{ name(args) }}` | a function the application added with [`ApplicationBuilder::ui_method`](crate::web::ApplicationBuilder::ui_method) (Tornado's `ui_methods`); without one of that name, Python's builtin (`sorted`, `min`, `max`, `sum`, `round`, `zip`, … see *Python's builtins*); neither, and the render fails there |
/// | `{% set x = expression %}` | binds `x` for the rest of the render, as a Python local (a loop variable too stays bound after its loop): `{% set total = price * count %}`, `{% set active = 'home' %}` |
/// | `{% include "file.html" %}` | that template, rendered here with the current names; it cannot have an `{% extends %}` (see *Inheritance*). As in Tornado, the quotes may be left out (`{% include file.html %}`) |
/// | `{% extends "base.html" %}` | render `base.html`, with its blocks replaced by this template's |
/// | `{% block name %}` … `{% end %}` | a block a child template can replace |
/// | `{% apply linkify %}` … `{% end %}` | the body rendered, then `linkify`, `xhtml_escape`/`escape` or `url_escape` of its text, unescaped; as in Tornado, the body's `set`/`for` names are its own |
/// | `{# text #}`, `{% comment text %}` | nothing |
/// | `{% autoescape None %}` | `{{ }}` does not escape, anywhere in this file (not in the files it includes or extends, nor in blocks other files define), as in Tornado; `{% autoescape xhtml_escape %}` is the default |
/// | `{{!`, `{%!`, `{#!` | the literal `{{`, `{%`, `{#` (Tornado's escape) |
///
/// As in Tornado, in a run of three or more `{`, the last two open the tag:
/// `{{{ x }}}` prints `{`, then `x`, then `}`. The word of a `{% %}` tag
/// may be followed by a tab or a newline instead of a space, and an
/// expression may go on over lines outside brackets (a newline after `+`),
/// which Tornado refuses ("unknown operator", Python's `SyntaxError`).
///
/// Anything else in `{{ }}` or `{% %}` — Python beyond *Expressions*
/// (set comprehensions, other methods), keyword arguments
/// the functions do not take, another `{% autoescape %}` function, a typed
/// `{% except KeyError %}`, `{% import %}` — is refused when the template
/// is parsed with [`TemplateError::BadTag`], whose message says what is
/// supported instead. A call of a name that is none of Tornado's functions
/// parses (it may be the application's `ui_method`, Python's builtin, or,
/// in `{% module %}`, its `ui_module`) and fails where it is rendered if it
/// is none of them.
///
/// **Printing values.** Every value prints as Python's `str` prints the
/// value Tornado would be given, so a page reads the same from either:
/// strings as they are; numbers as `2.5`, `100.0`, `1e-05`, `1e+16`;
/// `true`/`false` as `True`/`False`; `null` (a Rust `None`) as `None`;
/// arrays and objects as a Python list's and dict's `repr`
/// (`[1, 'a', None]`, `{'k': 'v'}`, strings in them quoted and escaped as
/// Python does). `{{ }}` escapes `& < > " '`; `{% raw %}` does not.
///
/// **Functions.** Expressions can call the functions of Tornado's
/// template namespace above and Python's `len`, `str`, `int` and `abs`,
/// on one argument, with the keyword arguments Tornado's take:
/// `url_escape(x, plus=False)` (Python's `quote`, `/` kept, a space
/// `%20`) and `linkify(text, shorten=True, extra_params='rel="nofollow"',
/// require_protocol=True, permitted_protocols=['http', 'ftp'])`; others
/// are refused at parse time ([`TemplateError::BadTag`]). Besides,
/// `xsrf_form_html()` and `reverse_url(name, *args)` are the request's
/// ([`RequestContext::xsrf_form_html`](super::RequestContext::xsrf_form_html),
/// [`RequestContext::reverse_url`](super::RequestContext::reverse_url)),
/// `_(message)` / `_(message, plural, count)` is Tornado's `translate`
/// with no translations loaded (the message, or the plural unless the
/// count is 1), and the names `request` (`request.path`, `.uri`,
/// `.query`, `.method`, `.host`, `.host_name`, `.remote_ip`,
/// `.protocol`, `.version`, `.headers`, `.arguments`, `.query_arguments`,
/// `.body_arguments`, `.cookies`, `.full_url()`), `handler`
/// (`handler.request`, `.current_user`, `.locale`, `.get_argument(..)`,
/// `.get_arguments(..)`, `.get_query_argument(..)`, `.get_cookie(..)`…)
/// and `current_user` are defined when a request renders the template and
/// its values do not have them. They are dicts where Tornado's are
/// objects, so they differ on purpose: a header is found under its
/// normalized name only (`X-Test`, not `x-test`), argument values are
/// `str` (Tornado's `bytes`), a cookie is a dict of its `key` and `value`,
/// `request` has no `body` or `files`, `handler` has no `settings`,
/// `xsrf_token`, `static_url` or `reverse_url` (the namespace has
/// `xsrf_form_html()`, `static_url` and `reverse_url`), and their methods
/// are those of any dict of the same content: of a copy (`[handler][0]`,
/// which in Tornado is the object itself), but also of a dict a template
/// builds with every field (`dict(request).full_url()`), which Tornado
/// refuses. As in Tornado, `handler.get_argument(name)` of a missing
/// argument is a 400 ([`TemplateError::Http`]).
/// Tornado's functions (`static_url`, `reverse_url`, `xsrf_form_html`,
/// `_`, `pgettext`, `json_encode`, `linkify`, …) are found by their name
/// when the template is parsed, so a render value of the same name,
/// which `{{ static_url }}` prints, does not hide them from a call; in
/// Tornado the value replaces the function and calling it raises
/// `TypeError`.
/// As in Tornado, a
/// function's result is a string that `{{ }}` escapes like any other:
/// `{{ json_encode(x) }}` prints `{&quot;a&quot;: 1}` and `{{ escape(x) }}`
/// escapes twice (`<` prints `&amp;lt;`), unless `{% autoescape None %}`
/// or `{% raw %}`. Where Tornado raises `TypeError` for a value that is not
/// a string, the functions other than `json_encode` take the text `{{ }}`
/// would print (see *Printing values*): `url_escape` of `3` is `3`, of
/// `null` `None`, of `[1, 2]` `%5B1%2C+2%5D`.
/// - `static_url(path)` is [`RequestContext::static_url`](super::RequestContext::static_url)
///   (`/static/css/app.css?v=<sha1>`) when the template is rendered by
///   `RequestContext::render`, `render_with` or `render_string` (or by
///   [`render_value_with_static_url`](Self::render_value_with_static_url),
///   whose URL loses its last `?v=` for `include_version=False`);
///   Tornado's keyword arguments `include_version=False` (no `?v=`, the
///   file not read) and `include_host=True` (the request's
///   `protocol://host` before the URL, whatever `static_url_prefix` is,
///   as Tornado writes it) are taken; a path out of `static_path`
///   (`../x.css`) fails the render with [`TemplateError::Http`] (403), as
///   Tornado raises `HTTPError(403)`;
///   rendered on its own ([`render`](Self::render),
///   [`render_value`](Self::render_value), [`render_with`](Self::render_with))
///   it is a [`TemplateError::NeedsRequest`] at its line (Tornado:
///   `NameError`).
/// - `json_encode(path)` is the value as Tornado's `json_encode` writes
///   it, byte for byte: Python's `json.dumps` text (`", "` and `": "`
///   between items, non-ASCII characters as `\uXXXX`, floats as Python's
///   `repr`: `1e+16`, `1e-05`, `100.0`) with `</` written `<\/`. Keys keep
///   their order (a struct's field order, an object's insertion order), as
///   a Python dict's do. (`RequestContext::write_json` and
///   `WebSocket::write_json` send compact JSON: the same value, fewer
///   bytes.)
/// - `url_escape(path)` is Python's `quote_plus` (Tornado's default
///   `plus=True`) of the UTF-8 text: `a b/é` → `a+b%2F%C3%A9`.
/// - `xhtml_escape(path)` and `escape(path)` escape `& < > " '` as `{{ }}`
///   does (`'` as `&#x27;`, as Tornado 6.4 and later; 4.3 wrote `&#39;`).
/// - `squeeze(path)` is `re.sub(r"[\x00-\x20]+", " ", s).strip()`: runs of
///   ASCII whitespace and control characters become one space, then
///   whitespace (also Unicode's, such as `U+00A0`) is stripped from both
///   ends.
/// - `linkify(text)` is Tornado's with its default arguments: the text
///   HTML-escaped, then each URL with a scheme or starting `www.` made
///   `<a href="…">…</a>` (`http://` added to one without a scheme; a
///   scheme other than `http`/`https`, such as `javascript:`, left as text).
///   Its result is HTML: print it with `{% raw linkify(x) %}`.
/// - `len(x)` is Python's builtin: a string's characters, an array's
///   items, an object's keys; of anything else, [`TemplateError::Type`]
///   (Python's `TypeError`). `str(x)` is the text `{{ }}` prints, `int(x)`
///   an integer (of a number, truncated, or of a string of digits), `abs(x)`
///   a number's absolute value.
///
/// **Python's builtins.** A call of a name the application's
/// `ui_method`s do not define is Python's built-in function of that name,
/// as Python looks a template's names up (its namespace, then `builtins`):
/// `range`, `enumerate(xs, start)`, `zip`, `reversed`,
/// `sorted(xs, reverse=True)`, `list`, `tuple`, `dict(pairs, **kw)`,
/// `min`/`max` (of an iterable, with `default=`, or of several
/// arguments: the first of the smallest or largest), `sum(xs, start)`,
/// `any`, `all`, `round(x)` and `round(x, n)` (half to even on the exact
/// value, as Python: `round(2.675, 2)` is `2.67`), `bool`, `float`, `repr`,
/// `format(x, spec)` (`format(1234.5, ',.2f')` is `1,234.50`), `pow`,
/// `divmod`, `chr`, `ord`, `hex`, `oct`, `bin`, with Python's results and
/// its `TypeError`s and `ValueError`s as [`TemplateError::Type`].
/// `{{ sorted(tags) }}`, `{{ ', '.join(sorted(d)) }}`,
/// `{% for name, score in zip(names, scores) %}`, `{{ max(xs, default=0) }}`,
/// `{{ [x * 2 for x in range(3)] }}`. Two differences of representation:
/// a tuple is a list (`zip`, `enumerate` and `divmod` give lists of lists,
/// printed `[0, 'a']` where Python prints `(0, 'a')`), and what Python
/// returns as an iterator or a view is its list (`{{ range(3) }}` prints
/// `[0, 1, 2]`, Python `range(0, 3)`); in a `for`, a comprehension, or
/// under `len`, `list`, `sorted` or `join` the results are Python's.
/// Where Python takes a function — `sorted(key=..)`, `min(key=..)`,
/// `max(key=..)`, `map(f, ..)`, `filter(f, ..)` — a `lambda`, a builtin's
/// name (`key=len`, `map(str, xs)`) or a string method (`key=str.lower`)
/// is taken: `{% for u in sorted(users, key=lambda u: u.age) %}`,
/// `{{ max(users, key=lambda u: u['score'])['name'] }}`,
/// `{{ ', '.join(map(str.title, names)) }}`. A lambda sees the template's
/// names, its parameters first; anywhere else a lambda is an error that
/// says where it may go.
///
/// ```
/// use cyclone::web::Template;
///
/// let t = Template::parse(
///     "<a href=\"/search?q={{ url_escape(q) }}\">{{ squeeze(q) }}</a>\n\
///      <script>var data = {% raw json_encode(data) %};</script>",
/// )
/// .unwrap();
/// let v = serde_json::json!({ "q": " fish  &\tchips ", "data": { "end": "</script>" } });
/// assert_eq!(
///     t.render_value(&v).unwrap(),
///     "<a href=\"/search?q=+fish++%26%09chips+\">fish &amp; chips</a>\n\
///      <script>var data = {\"end\": \"<\\/script>\"};</script>"
/// );
/// ```
///
/// **Truthiness** is Python's: `false`, `null`, `0`, `0.0`, `""`, `[]` and
/// `{}` are false, everything else is true. With [`Template::render`] every
/// value is a string, true when not empty.
///
/// **Expressions.** `{{ }}`, `{% raw %}`, `{% if %}`, `{% elif %}`,
/// `{% set %}` and `{% for %}` take the part of Python that templates use,
/// with Python's meaning over the values a template sees:
/// - operands: paths, subscripts with any expression inside (`xs[i + 1]`,
///   `d[key]`, a string's character `s[0]`), slices (`s[:100]`,
///   `xs[::-1]`), literals (quoted strings with Python's backslash escapes
///   but `\N{..}`, integers, floats, `True`, `False`, `None`), lists (`[a, 'b']`,
///   `[*xs, 9]`: `*` splices an iterable's items into a list or tuple),
///   dicts with string keys (`{'k': v, **defaults}`: `**` merges a dict's
///   entries, a later key replacing an earlier one's value in its place),
///   list comprehensions (`[u.name for u in users if u.active]`, several
///   `for`s, `for k, v in pairs`; a generator expression as a call's only
///   argument, `', '.join(t.name for t in tags)`, is one too; their names
///   stay inside, as in Python 3), dict comprehensions with string keys
///   (`{u.name: u.age for u in users}`), tuples (`"%s of %s" % (a, b)` takes
///   them as Python's positional arguments; elsewhere a tuple is a list,
///   and prints as one), parentheses,
///   calls of the functions below (Tornado's and Python's builtins), and
///   the methods of Python's strings (`upper`, `lower`, `swapcase`,
///   `strip`/`lstrip`/`rstrip` with or without characters, `title`,
///   `capitalize`, `startswith`/`endswith` of a string or a tuple of
///   them, `replace` with or without a count, `split`/`rsplit` with a
///   separator or none and a `maxsplit`, `splitlines`, `join`, `count`,
///   `find`/`rfind`, `index`/`rindex`, `zfill`, `ljust`/`rjust`/`center`
///   with a fill character, `isdigit`, `isalpha`, `isalnum`, `isspace`,
///   `islower`, `isupper`, and `format`: `'{:,.2f} of {}'.format(x, y)`,
///   `'{name!r:>10}'.format(name=n)`, Python's replacement fields and
///   format-spec mini-language), lists (`count`, `index`) and dicts
///   (`get(key, default)`, and `keys()`, `values()`, `items()` as lists,
///   for a `for` or a comprehension: `[k for k, v in d.items() if v]`,
///   `{% for k, v in {**a, **b}.items() %}`),
///   positions and widths in characters as Python counts them;
/// - arithmetic: `+`, `-`, `*`, `/` (a float), `//` and `%` (rounded toward
///   minus infinity, as Python's), `**` (right to left, tighter than a
///   unary `-` on its left: `-2 ** 2` is `-4`), unary `-`; `+` joins strings and
///   arrays, `*` repeats them; integers are 64-bit, where Python's grow;
///   floats are finite: a template's values are JSON values, which hold
///   no infinity or NaN, so where Python would print `inf`, `-inf` or
///   `nan` (`{{ float('inf') }}`, `{{ 1e308 * 10 }}`, `{{ x / y }}` of
///   huge numbers) the render fails with [`TemplateError::Type`] ("… is
///   not a finite number") at the tag, which `{% try %}` can catch;
///   `-` between names needs spaces (`a-b` is a path, a render pair's
///   name can hold `-`);
/// - comparisons: `==` and `!=` compare values (`1 == 1.0 == True`, lists
///   item by item, objects whatever their key order); `<`, `<=`, `>`, `>=`
///   order numbers, strings (by code point) and arrays, and chain
///   (`0 <= n < 10`); `in` and `not in` look for a substring, an array item
///   or an object key; `is` and `is not` take `None`, `True` or `False`;
/// - `not`, and `and`/`or`, which give an operand as Python's do
///   (`{{ name or 'anonymous' }}`), and `a if cond else b`.
///
/// Operands are read left to right and only as far as needed, as Python
/// reads them (`{% if user and user.admin %}` never looks up `user.admin`
/// without a `user`). Where Python raises `TypeError` (ordering a string
/// and a number, adding a string to a number), `ZeroDivisionError` or
/// `ValueError` (`int('x')`), the render fails with [`TemplateError::Type`]
/// at the tag's line; a missing index or key is [`TemplateError::Undefined`].
/// What `set` and `for` bind from computed values is kept for the render,
/// up to 4 M values (an array counts its items) and `range` up to as many
/// integers ([`TemplateError::TooLarge`] past that); strings an expression
/// builds are bounded by [`Template::MAX_OUTPUT`], and lists by the same
/// 4 M values, nested ones counted (`[[0] * 1000] * 5000` is 5 M: a
/// template copies values where Python would share them). A copy of a
/// nested value into a comprehension, or of `sum`'s running list, is a
/// step per value it holds, and so is a method of `request` or `handler`
/// called on a copy of it (`[handler][0].get_argument('a')`: the copy is
/// compared with the render's own in full).
///
/// ```
/// use cyclone::web::Template;
///
/// let t = Template::parse(
///     "{% for u in users %}{% if u.age is None %}? \
///      {% elif u.age >= 18 and u.name not in banned %}{{ u.name }} {% end %}{% end %}",
/// )
/// .unwrap();
/// let v = serde_json::json!({
///     "banned": ["eve"],
///     "users": [{ "name": "ann", "age": 30 }, { "name": "eve", "age": 40 },
///               { "name": "kid", "age": 9 }, { "name": "new", "age": null }],
/// });
/// assert_eq!(t.render_value(&v).unwrap(), "ann ? ");
///
/// let t = Template::parse(
///     "{% for i, item in enumerate(cart) %}{{ i + 1 }}. {{ item['name'] }} \
///      {{ item['price'] * item['qty'] }}{{ ' (gift)' if item['gift'] else '' }}\n{% end %}\
///      {{ user or 'guest' }}: {{ len(cart) }} items",
/// )
/// .unwrap();
/// let v = serde_json::json!({
///     "user": null,
///     "cart": [{ "name": "tea", "price": 3, "qty": 2, "gift": false },
///              { "name": "cup", "price": 2.5, "qty": 1, "gift": true }],
/// });
/// assert_eq!(t.render_value(&v).unwrap(), "1. tea 6\n2. cup 2.5 (gift)\nguest: 2 items");
/// ```
///
/// **Names.** A loop variable or `set` name is a local of the whole
/// render, as in the one Python function Tornado compiles a template (with
/// its includes and blocks) into: it hides the render value's field of the
/// same name from where it is bound to the end, also after its loop or
/// block, and binding it again replaces it. Read before it is bound (or
/// after a loop that never ran), it is a [`TemplateError::Undefined`] even
/// when the render value has a field of that name, as Python's
/// `UnboundLocalError`.
/// `{% for %}` over an object goes through its keys in insertion order (a
/// struct's field order), as over a Python dict (cyclone builds
/// `serde_json` with `preserve_order`). With
/// [`Template::render`], `{{ a.b }}` looks up the pair named `"a.b"`, as it
/// always has (paths step into values only with
/// [`render_value`](Template::render_value)).
///
/// **Loops.** As in Python, `{% break %}` and `{% continue %}` act on the
/// innermost `{% for %}` whose body they are in, through any `{% if %}`;
/// in a loop's `{% else %}` part they act on the loop around it. Outside
/// a loop — or directly in a `{% block %}` (whose body may be shown
/// anywhere), or at the top of an included template — they are a
/// [`TemplateError::Unbalanced`] when the template is parsed (Tornado:
/// "break outside {'for', 'while'} block").
///
/// ```
/// use cyclone::web::Template;
///
/// let t = Template::parse(
///     "{% for u in users %}{% if u.hidden %}{% continue %}{% end %}\
///      {% if u.last %}{% break %}{% end %}{{ u.name }} \
///      {% else %}(all){% end %}",
/// )
/// .unwrap();
/// let users = |last: bool| serde_json::json!({ "users": [
///     { "name": "ann", "hidden": false, "last": false },
///     { "name": "bob", "hidden": true, "last": false },
///     { "name": "cy", "hidden": false, "last": last },
/// ]});
/// assert_eq!(t.render_value(&users(false)).unwrap(), "ann cy (all)");
/// assert_eq!(t.render_value(&users(true)).unwrap(), "ann ");
/// ```
///
/// **Inheritance.** As in Tornado: a template with `{% extends %}` renders its
/// parent (text outside its blocks is dropped), each `{% block %}` of the
/// parent showing the body of the last-defined block of that name along the
/// chain (child over parent over grandparent); blocks nest, and blocks in
/// included templates take part. `extends` must be outside every block.
/// A template with `{% extends %}` cannot be `{% include %}`d: the include
/// is a [`TemplateError::BadTag`] when the including template is parsed.
/// Tornado cannot render it either (its include generates the included
/// file's body, where its `extends` node has no code: `NotImplementedError`,
/// tornado#1521); include a template without `extends` (its blocks then
/// take part as above).
/// `include`/`extends` names are relative to the including template's
/// directory (`/name` is relative to `template_path`); they are resolved and
/// parsed when the including template is, and the parsed tree is cached with
/// it. A name that leaves `template_path` — through `..`, or through a
/// symlink whose target is outside it, as for static files — is a
/// [`TemplateError::Load`].
///
/// **Whitespace** is Tornado's: [`Template::parse`] and
/// [`parse_with_loader`](Self::parse_with_loader) copy text as written
/// (`whitespace="all"`, what Tornado's `Template(text)` does); templates an
/// application loads (`RequestContext::render`) are filtered by file name
/// as Tornado's `Loader` does ([`Whitespace::for_name`]: `"single"` for
/// `.html` and `.js`), or as the `template_whitespace` setting says;
/// `{% whitespace all|single|oneline %}` changes the mode for the rest of
/// its file ([`parse_with`](Self::parse_with), [`Whitespace`]). The
/// newline after a `{% %}` tag is text like any other.
///
/// **Errors.** Unknown tags, an `{% end %}`/`{% else %}`/`{% elif %}` with
/// no block to end, a block without its `{% end %}`, a missing or refused
/// include, an include cycle, blocks nested deeper than
/// [`MAX_NESTING`](Self::MAX_NESTING) or includes chained deeper than
/// [`MAX_INCLUDE_DEPTH`](Self::MAX_INCLUDE_DEPTH) are errors when the
/// template is parsed (so before any request renders it); an undefined
/// name, a path into a missing field (in `{% if %}` too: serialize an
/// absent value as `null`, e.g. an `Option` without `skip_serializing_if`),
/// a loop over something that is neither array nor object,
/// `{{ static_url(..) }}` without a request, and rendering nested deeper
/// than [`MAX_RENDER_DEPTH`](Self::MAX_RENDER_DEPTH) when it
/// is rendered. So that no template (nested loops over large arrays, a
/// block shown twice in a block shown twice ...) can hang the loop or
/// exhaust memory, one render stops with [`TemplateError::TooLarge`] after
/// [`MAX_RENDER_STEPS`](Self::MAX_RENDER_STEPS) steps or
/// [`MAX_OUTPUT`](Self::MAX_OUTPUT) bytes (Tornado has no such bound).
/// `render` answers 500 for any of them and logs the cause, as
/// Tornado does for an exception in a template.
///
/// Errors say where they are, as Tornado's `ParseError` does ("Missing end
/// expression }} at page.html:3"): every parse error, and a render error
/// that comes from one tag (an undefined name, a loop over a value of the
/// wrong kind), is wrapped in [`TemplateError::At`] with the 1-based line
/// of the tag's `{{`/`{%`/`{#`, and that in [`TemplateError::In`] for each
/// other template it is in: `in "parts/row.html": undefined variable
/// "user" at line 3`. A block's body is of the template that defines it,
/// wherever it is shown. (`render`'s message starts with the name of the
/// template it rendered.)
///
/// **Parse once, render many.** Included and parent templates are parsed
/// with the template (see [`parse_with_loader`](Self::parse_with_loader))
/// and kept in its tree, so rendering reads no file and allocates little
/// beyond the output. `Template` is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// `{% extends %}`: the first template of the chain, whose text is
    /// shown, and the chain of names that leads to it.
    base: Option<(Origin, Arc<Template>)>,
    /// Each block name visible from here: the last definition along the
    /// extends chain, child over parent.
    blocks: HashMap<String, BlockDef>,
    /// The names a `set` or `for` of a render of this template binds
    /// ([`local_names`]), found once when it is parsed.
    locals: std::collections::HashSet<String>,
}

/// A `{{ }}` path or an old-style variable name.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// A path as written in a tag, as the dotted path it is looked up by:
/// `name.field.0`, any [`is_name`] but one starting with `-` (a
/// negation). Python's subscripts (`name['field'][0]`) are the expression
/// parser's, which folds constant ones into a path ([`parse_exp`]).
fn path(s: &str) -> Option<String> {
    (!s.starts_with('-') && is_name(s)).then(|| s.to_string())
}

/// A name a loop, `set` or `block` can bind.
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The template an `{% include %}` or `{% extends %}` names, read as
/// Tornado reads it: its argument without the `"` and then the `'`
/// characters at either end (`"a.html"`, `'a.html'`, or `a.html`
/// unquoted); `None` when nothing is left.
fn template_name(arg: &str) -> Option<&str> {
    let name = arg.trim_matches('"').trim_matches('\'');
    (!name.is_empty()).then_some(name)
}

fn parse_cond(arg: &str, line: u32) -> Option<Cond> {
    Some(Cond {
        test: expr::parse(arg)?,
        line,
    })
}

/// `v` unpacked into `t` as Python unpacks, the names bound appended to
/// `out`; whether it unpacks (an array of `t`'s length at each level).
fn unpack_targets<'v>(t: &'v [Target], v: &'v Value, out: &mut Vec<(&'v str, Val<'v>)>) -> bool {
    match v {
        Value::Array(xs) if xs.len() == t.len() => t.iter().zip(xs).all(|(t, x)| match t {
            Target::Name(n) => {
                out.push((n.as_str(), Val::Json(x)));
                true
            }
            Target::Tuple(ts) => unpack_targets(ts, x, out),
        }),
        _ => false,
    }
}

/// A target of a `{% for %}` or `{% set %}`: a name, or a tuple of them.
#[derive(Debug, Clone)]
enum Target {
    Name(String),
    Tuple(Vec<Target>),
}

/// The comma-separated targets in `s` (`a, (b, c)`), parentheses nested
/// at most `depth` times more; `(a)` is `a`, as in Python.
fn parse_targets(s: &str, depth: usize) -> Option<Vec<Target>> {
    let mut parts = Vec::new();
    let (mut level, mut from) = (0usize, 0);
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ','))) {
        match c {
            '(' => level += 1,
            ')' => level = level.checked_sub(1)?,
            ',' if level == 0 => {
                let part = s[from..i].trim();
                from = i + 1;
                parts.push(match part.strip_prefix('(') {
                    Some(inner) if depth > 0 => {
                        let mut t = parse_targets(inner.strip_suffix(')')?, depth - 1)?;
                        match (
                            t.len(),
                            inner.trim_end_matches(')').trim_end().ends_with(','),
                        ) {
                            (1, false) => t.pop()?,
                            _ => Target::Tuple(t),
                        }
                    }
                    _ => Target::Name(is_ident(part).then(|| part.to_string())?),
                });
            }
            _ => {}
        }
    }
    (level == 0).then_some(parts)
}

/// `f` of each of `target`'s names, in order.
fn each_name<'t>(target: &'t Target, f: &mut impl FnMut(&'t str)) {
    match target {
        Target::Name(n) => f(n),
        Target::Tuple(ts) => ts.iter().for_each(|t| each_name(t, f)),
    }
}

/// `x in path`, `k, v in path.items()`, ...
fn parse_for(arg: &str, line: u32) -> Option<Loop> {
    // `names in target`: the first `in` between whitespace.
    let at = arg
        .match_indices("in")
        .find(|(i, _)| {
            let before = arg[..*i].chars().next_back();
            let after = arg[i + 2..].chars().next();
            before.is_some_and(char::is_whitespace) && after.is_some_and(char::is_whitespace)
        })?
        .0;
    let (vars, target) = (arg[..at].trim(), arg[at + 2..].trim());
    let call_arg = |name: &str| {
        target
            .strip_prefix(name)?
            .trim_start()
            .strip_prefix('(')?
            .strip_suffix(')')
    };
    // `for a, b in ..` or Python's `for (a, b) in ..`.
    let mut targets = parse_targets(vars, 8)?;
    if let [Target::Tuple(inner)] = &mut targets[..] {
        targets = std::mem::take(inner);
    }
    // Nested (`a, (b, c)`): over an array (`enumerate`'s pairs too) only.
    let nested = targets.iter().any(|t| matches!(t, Target::Tuple(_)));
    let mut rest = Vec::new();
    targets
        .iter()
        .for_each(|t| each_name(t, &mut |n| rest.push(n.to_string())));
    let var = (!rest.is_empty()).then(|| rest.remove(0))?;
    let second = rest.first();
    let (iter, source) = if let Some(args) = call_arg("range") {
        if !rest.is_empty() {
            return None;
        }
        (Iter::Range(expr::parse_args(args)?), Source::Plain)
    } else if let Some(inner) = call_arg("enumerate").and_then(expr::parse) {
        // Python's pairs are tuples: cyclone binds them only unpacked.
        // (`enumerate(xs, start)` is the builtin's, below.)
        if targets.len() != 2 {
            return None;
        }
        (Iter::Enumerate(Box::new(inner)), Source::Plain)
    } else {
        let suffixed = [
            (".items()", Source::Items),
            (".keys()", Source::Keys),
            (".values()", Source::Values),
        ]
        .into_iter()
        .find_map(|(suffix, source)| Some((target.strip_suffix(suffix)?, source)))
        .filter(|_| !nested);
        match suffixed.and_then(|(p, source)| Some((parse_exp(p)?, source))) {
            Some((expr::Exp::Path(p), source)) => (Iter::Path(p), source),
            // `{**a, **b}.items()`, `f(x).keys()`: the method of the
            // expression language, its pairs unpacked as any list's.
            _ => match parse_exp(target)? {
                expr::Exp::Path(p) => (Iter::Path(p), Source::Plain),
                e => (Iter::Exp(Box::new(e)), Source::Plain),
            },
        }
    };
    let arity_ok = match source {
        Source::Plain => true,
        Source::Items => rest.len() == 1,
        Source::Keys | Source::Values => second.is_none(),
    };
    if !arity_ok {
        return None;
    }
    let path = match &iter {
        Iter::Path(p) => p.clone(),
        _ => target.to_string(),
    };
    Some(Loop {
        var,
        rest,
        nested: nested.then_some(targets),
        path,
        iter,
        source,
        body: Vec::new(),
        otherwise: Vec::new(),
        line,
    })
}

/// A block being parsed.
enum Open {
    If {
        branches: Vec<(Cond, Vec<Node>)>,
        /// The condition of the branch being read; `None` in `else`.
        cond: Option<Cond>,
    },
    For {
        node: Box<Loop>,
        /// Reading its `{% else %}` part (where, as in Python, `break` and
        /// `continue` are not in this loop).
        in_else: bool,
    },
    Block(String),
    Apply(Func),
    While {
        node: Box<WhileLoop>,
        in_else: bool,
    },
    Try {
        node: Box<TryBlock>,
        part: TryPart,
    },
}

struct Frame {
    tag: String,
    /// The line of the tag that opened it.
    line: u32,
    open: Open,
    body: Vec<Node>,
}

/// The parser's state: the open blocks and the text not yet pushed.
struct Parser<L> {
    stack: Vec<Frame>,
    root: Vec<Node>,
    text: String,
    /// `{% extends %}`: the parent template and its name.
    parent: Option<(String, Arc<Template>)>,
    /// `false` after `{% autoescape None %}` (for the whole file, as in
    /// Tornado).
    autoescape: bool,
    /// How the text from here on is filtered (`{% whitespace %}` changes
    /// it for the rest of the file).
    whitespace: Whitespace,
    /// Where the text chunk being read starts in `text`: Tornado filters
    /// whitespace chunk by chunk, a chunk ending at every tag.
    chunk: usize,
    load: L,
}

/// Tornado's whitespace modes (`{% whitespace mode %}`, the
/// `template_whitespace` setting, `Loader(whitespace=)`): how the text
/// between tags is written out. As in Tornado, a text chunk (the text
/// between two tags) containing `<pre>` is kept as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Whitespace {
    /// Everything as written (`"all"`; Tornado's default for a template
    /// not loaded from a `.html` or `.js` file).
    #[default]
    All,
    /// Runs of spaces and tabs become one space, and whitespace around a
    /// line feed becomes that line feed (`"single"`; Tornado's default for
    /// `.html` and `.js` files).
    Single,
    /// Every run of whitespace becomes one space (`"oneline"`).
    Oneline,
}

impl Whitespace {
    /// Tornado's `Loader` default for the file `name`: `Single` for
    /// `.html` and `.js`, else `All`.
    pub fn for_name(name: &str) -> Whitespace {
        if name.ends_with(".html") || name.ends_with(".js") {
            Whitespace::Single
        } else {
            Whitespace::All
        }
    }

    /// Tornado's `filter_whitespace(mode, text)`; `\s` is Python's: any
    /// Unicode whitespace.
    pub fn filter(self, text: &str) -> Cow<'_, str> {
        match self {
            Whitespace::All => Cow::Borrowed(text),
            Whitespace::Oneline => Cow::Owned(collapse(text, py_space)),
            Whitespace::Single => {
                // re.sub(r"([\t ]+)", " ", text), then
                // re.sub(r"(\s*\n\s*)", "\n", text).
                let spaced = collapse(text, |c| c == ' ' || c == '\t');
                let mut out = String::with_capacity(spaced.len());
                let mut run = String::new();
                for c in spaced.chars() {
                    if py_space(c) {
                        run.push(c);
                    } else {
                        out.push_str(if run.contains('\n') { "\n" } else { &run });
                        run.clear();
                        out.push(c);
                    }
                }
                out.push_str(if run.contains('\n') { "\n" } else { &run });
                Cow::Owned(out)
            }
        }
    }
}

/// Python's `\s` (`str.isspace`): Unicode whitespace and the separators
/// U+001C to U+001F, which Rust's `char::is_whitespace` leaves out.
pub(crate) fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `text` with every run of characters matching `is` replaced by one space.
fn collapse(text: &str, is: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if is(c) {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

impl std::str::FromStr for Whitespace {
    type Err = TemplateError;

    /// `"all"`, `"single"` or `"oneline"`, Tornado's names.
    fn from_str(s: &str) -> Result<Self, TemplateError> {
        match s {
            "all" => Ok(Whitespace::All),
            "single" => Ok(Whitespace::Single),
            "oneline" => Ok(Whitespace::Oneline),
            _ => Err(TemplateError::BadTag(format!(
                "whitespace {s}: the modes are all, single and oneline"
            ))),
        }
    }
}

impl<L: FnMut(&str) -> Result<Arc<Template>, TemplateError>> Parser<L> {
    fn body(&mut self) -> &mut Vec<Node> {
        match self.stack.last_mut() {
            Some(frame) => &mut frame.body,
            None => &mut self.root,
        }
    }

    /// Ends the text chunk being read (at a tag, a `{{!` literal or the
    /// end of the file), filtering it as the current mode says.
    fn end_chunk(&mut self) {
        let chunk = &self.text[self.chunk..];
        if self.whitespace != Whitespace::All && !chunk.contains("<pre>") {
            if let Cow::Owned(filtered) = self.whitespace.filter(chunk) {
                self.text.truncate(self.chunk);
                self.text.push_str(&filtered);
            }
        }
        self.chunk = self.text.len();
    }

    fn flush(&mut self) {
        self.end_chunk();
        self.chunk = 0;
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            self.body().push(Node::Text(text));
        }
    }

    fn push(&mut self, node: Node) {
        self.flush();
        self.body().push(node);
    }

    fn open(&mut self, tag: &str, line: u32, open: Open) -> Result<(), TemplateError> {
        if self.stack.len() >= MAX_NESTING {
            return Err(TemplateError::TooDeep(format!(
                "{{% {tag} %}} nests blocks deeper than {MAX_NESTING}"
            )));
        }
        self.flush();
        self.stack.push(Frame {
            tag: tag.to_string(),
            line,
            open,
            body: Vec::new(),
        });
        Ok(())
    }

    fn load(&mut self, name: &str) -> Result<Arc<Template>, TemplateError> {
        (self.load)(name)
    }

    /// Whether a `{% break %}` here is in a loop: in the body of a
    /// `{% for %}` (not its `else`), with no `{% block %}` in between (a
    /// block's body can be shown anywhere, in no loop).
    fn in_loop(&self) -> bool {
        for frame in self.stack.iter().rev() {
            match frame.open {
                Open::For { in_else: false, .. } | Open::While { in_else: false, .. } => {
                    return true
                }
                // An applied body is a function of its own in Tornado:
                // a `break` in it is outside any loop.
                Open::Block(_) | Open::Apply(_) => return false,
                Open::For { in_else: true, .. }
                | Open::While { in_else: true, .. }
                | Open::If { .. }
                | Open::Try { .. } => {}
            }
        }
        false
    }

    /// One `{% .. %}` tag on line `line`; `inner` is trimmed. Errors are
    /// not yet located (but an included template's may be).
    fn directive(&mut self, inner: &str, line: u32) -> Result<(), TemplateError> {
        let bad = || TemplateError::BadTag(inner.to_string());
        let unbalanced = || TemplateError::Unbalanced(inner.to_string());
        let (word, arg) = match inner.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (inner, ""),
        };
        match word {
            "raw" => {
                let expr = parse_expr(arg).ok_or_else(bad)?;
                self.push(Node::Var {
                    expr,
                    escape: false,
                    line,
                });
            }
            // Tornado's built-in UI modules: `Template(..)`, and the
            // functions of the handler; then the application's modules.
            // Their HTML goes out unescaped.
            "module"
                if arg
                    .strip_prefix("Template")
                    .is_some_and(|rest| rest.trim_start().starts_with('(')) =>
            {
                let (name, kwargs) = expr::parse_template_module(arg).ok_or_else(bad)?;
                // Tornado's TemplateModule calls render_string: the name is
                // relative to template_path, not to this file.
                let rooted = if name.starts_with('/') {
                    name
                } else {
                    format!("/{name}")
                };
                let loaded = self.load(&rooted).map_err(Box::new);
                self.push(Node::Module {
                    name: rooted,
                    loaded,
                    kwargs,
                    line,
                });
            }
            "module" => {
                let call = match parse_exp(arg).ok_or_else(bad)? {
                    e @ (expr::Exp::XsrfFormHtml
                    | expr::Exp::Call {
                        callee: expr::Callee::Func(Func::Linkify),
                        ..
                    }) => e,
                    // Found when rendered, as Tornado looks it up.
                    expr::Exp::UiCall { name, args, kwargs } => {
                        expr::Exp::UiModule { name, args, kwargs }
                    }
                    _ => return Err(bad()),
                };
                self.push(Node::Var {
                    expr: Expr::Exp(Box::new(call)),
                    escape: false,
                    line,
                });
            }
            "comment" => {}
            "whitespace" => self.whitespace = arg.parse()?,
            "autoescape" => match arg {
                "None" => self.autoescape = false,
                "xhtml_escape" => self.autoescape = true,
                _ => return Err(bad()),
            },
            "if" => {
                let cond = parse_cond(arg, line).ok_or_else(bad)?;
                self.open(
                    inner,
                    line,
                    Open::If {
                        branches: Vec::new(),
                        cond: Some(cond),
                    },
                )?;
            }
            "elif" | "else" => {
                let next = if word == "elif" {
                    Some(parse_cond(arg, line).ok_or_else(bad)?)
                } else if arg.is_empty() {
                    None
                } else {
                    return Err(bad());
                };
                self.flush();
                match self.stack.last_mut() {
                    Some(Frame {
                        open: Open::If { branches, cond },
                        body,
                        ..
                    }) => {
                        let current = cond.take().ok_or_else(unbalanced)?;
                        branches.push((current, std::mem::take(body)));
                        *cond = next;
                    }
                    Some(Frame {
                        open: Open::For { node, in_else },
                        body,
                        ..
                    }) if next.is_none() && !*in_else => {
                        node.body = std::mem::take(body);
                        *in_else = true;
                    }
                    Some(Frame {
                        open: Open::While { node, in_else },
                        body,
                        ..
                    }) if next.is_none() && !*in_else => {
                        node.body = std::mem::take(body);
                        *in_else = true;
                    }
                    // Python: `else` after an `except`, before `finally`.
                    Some(Frame {
                        open: Open::Try { node, part },
                        body,
                        ..
                    }) if next.is_none() && *part == TryPart::Except => {
                        node.except = Some(std::mem::take(body));
                        *part = TryPart::Else;
                    }
                    _ => return Err(unbalanced()),
                }
            }
            "except" | "finally" => {
                if word == "except" && !matches!(arg, "" | "Exception" | "BaseException") {
                    return Err(bad());
                }
                if word == "finally" && !arg.is_empty() {
                    return Err(bad());
                }
                self.flush();
                let Some(Frame {
                    open: Open::Try { node, part },
                    body,
                    ..
                }) = self.stack.last_mut()
                else {
                    return Err(unbalanced());
                };
                let done = std::mem::take(body);
                // One except (Python takes several, each after the last;
                // a second bare one is a SyntaxError there too).
                match (word, *part) {
                    ("except", TryPart::Body) => {
                        node.body = done;
                        *part = TryPart::Except;
                    }
                    ("finally", TryPart::Body) => {
                        node.body = done;
                        *part = TryPart::Finally;
                    }
                    ("finally", TryPart::Except) => {
                        node.except = Some(done);
                        *part = TryPart::Finally;
                    }
                    ("finally", TryPart::Else) => {
                        node.otherwise = done;
                        *part = TryPart::Finally;
                    }
                    _ => return Err(unbalanced()),
                }
            }
            "try" if arg.is_empty() => {
                let node = Box::default();
                self.open(
                    inner,
                    line,
                    Open::Try {
                        node,
                        part: TryPart::Body,
                    },
                )?;
            }
            "while" => {
                let cond = parse_cond(arg, line).ok_or_else(bad)?;
                let node = Box::new(WhileLoop {
                    cond,
                    body: Vec::new(),
                    otherwise: Vec::new(),
                });
                self.open(
                    inner,
                    line,
                    Open::While {
                        node,
                        in_else: false,
                    },
                )?;
            }
            // Tornado returns at `end` whatever follows it: `{% end if %}`.
            "end" => {
                self.flush();
                let frame = self.stack.pop().ok_or_else(unbalanced)?;
                let node = match frame.open {
                    Open::If { mut branches, cond } => match cond {
                        Some(cond) => {
                            branches.push((cond, frame.body));
                            Node::If {
                                branches,
                                otherwise: Vec::new(),
                            }
                        }
                        None => Node::If {
                            branches,
                            otherwise: frame.body,
                        },
                    },
                    Open::For { mut node, in_else } => {
                        if in_else {
                            node.otherwise = frame.body;
                        } else {
                            node.body = frame.body;
                        }
                        Node::For(node)
                    }
                    Open::Block(name) => Node::Block {
                        name,
                        body: frame.body.into(),
                    },
                    Open::Apply(func) => Node::Apply {
                        func,
                        body: frame.body,
                    },
                    Open::While { mut node, in_else } => {
                        if in_else {
                            node.otherwise = frame.body;
                        } else {
                            node.body = frame.body;
                        }
                        Node::While(node)
                    }
                    Open::Try { mut node, part } => {
                        match part {
                            // Python: a `try` needs an `except` or a `finally`.
                            TryPart::Body => return Err(TemplateError::BadTag(frame.tag)),
                            TryPart::Except => node.except = Some(frame.body),
                            TryPart::Else => node.otherwise = frame.body,
                            TryPart::Finally => node.finally = frame.body,
                        }
                        Node::Try(node)
                    }
                };
                self.body().push(node);
            }
            "for" => {
                let node = parse_for(arg, line).ok_or_else(bad)?;
                self.open(
                    inner,
                    line,
                    Open::For {
                        node: Box::new(node),
                        in_else: false,
                    },
                )?;
            }
            "break" | "continue" if arg.is_empty() => {
                if !self.in_loop() {
                    return Err(unbalanced());
                }
                self.push(if word == "break" {
                    Node::Break
                } else {
                    Node::Continue
                });
            }
            "set" => {
                let (name, path) = arg.split_once('=').ok_or_else(bad)?;
                let (name, path) = (name.trim_end(), path.trim());
                // `name op= x`, Python's augmented assignment, is
                // `name = name op x`.
                let aug = [
                    ("**", expr::Arith::Pow),
                    ("//", expr::Arith::FloorDiv),
                    ("+", expr::Arith::Add),
                    ("-", expr::Arith::Sub),
                    ("*", expr::Arith::Mul),
                    ("/", expr::Arith::Div),
                    ("%", expr::Arith::Mod),
                ]
                .into_iter()
                .find_map(|(sym, op)| Some((name.strip_suffix(sym)?, op)));
                let name = aug.map_or(name, |(n, _)| n).trim();
                // `a, b = 1, 2`: Python's tuple unpacking (no `op=`).
                let mut unpack = None;
                if aug.is_none() && name.contains(',') {
                    let mut targets = parse_targets(name, 8).ok_or_else(bad)?;
                    if let [Target::Tuple(inner)] = &mut targets[..] {
                        targets = std::mem::take(inner);
                    }
                    unpack = Some(targets.into_boxed_slice());
                } else if !is_ident(name) {
                    return Err(bad());
                }
                let exp = parse_exp(path)
                    .or_else(|| parse_exp(&format!("({path})")).filter(|_| path.contains(',')))
                    .ok_or_else(bad)?;
                let exp = match aug {
                    Some((_, op)) => expr::Exp::Arith {
                        op,
                        left: Box::new(expr::Exp::Path(name.to_string())),
                        right: Box::new(exp),
                    },
                    None => exp,
                };
                let value = match exp {
                    expr::Exp::Literal(v) => SetValue::Literal(v),
                    expr::Exp::Path(p) => SetValue::Path(p),
                    e => SetValue::Exp(Box::new(e)),
                };
                self.push(Node::Set {
                    name: name.to_string(),
                    value,
                    line,
                    unpack,
                });
            }
            "block" if is_ident(arg) => self.open(inner, line, Open::Block(arg.to_string()))?,
            "apply" => {
                // What Tornado can apply: its body is bytes there, which
                // `squeeze` and `json_encode` refuse (TypeError).
                let func = Func::from_name(arg)
                    .filter(|f| matches!(f, Func::Linkify | Func::XhtmlEscape | Func::UrlEscape))
                    .ok_or_else(bad)?;
                self.open(inner, line, Open::Apply(func))?;
            }
            "include" => {
                let name = template_name(arg).ok_or_else(bad)?;
                let template = self.load(name)?;
                // Tornado's `_IncludeBlock` generates the included file's
                // body, where its `_ExtendsBlock` has no code to generate:
                // NotImplementedError (tornado#1521). Refused here too.
                if template.base.is_some() {
                    return Err(bad());
                }
                self.push(Node::Include {
                    name: name.to_string(),
                    template,
                });
            }
            "extends" => {
                let name = template_name(arg).ok_or_else(bad)?;
                if !self.stack.is_empty() || self.parent.is_some() {
                    return Err(bad());
                }
                self.parent = Some((name.to_string(), self.load(name)?));
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

/// `{% autoescape None %}`: every `{{ }}` of `nodes` (this file's, not its
/// includes') prints unescaped.
fn unescape(nodes: &mut [Node]) {
    for node in nodes {
        match node {
            Node::Var { escape, .. } => *escape = false,
            Node::If {
                branches,
                otherwise,
            } => {
                for (_, body) in branches {
                    unescape(body);
                }
                unescape(otherwise);
            }
            Node::For(l) => {
                unescape(&mut l.body);
                unescape(&mut l.otherwise);
            }
            Node::Apply { body, .. } => unescape(body),
            Node::While(w) => {
                unescape(&mut w.body);
                unescape(&mut w.otherwise);
            }
            Node::Try(t) => {
                for part in t.parts_mut() {
                    unescape(part);
                }
            }
            Node::Block { body, .. } => match Arc::get_mut(body) {
                Some(body) => unescape(body),
                None => {
                    let mut copy = body.to_vec();
                    unescape(&mut copy);
                    *body = copy.into();
                }
            },
            // A module's template is rendered on its own, as it was parsed.
            Node::Text(_)
            | Node::Set { .. }
            | Node::Include { .. }
            | Node::Module { .. }
            | Node::Break
            | Node::Continue => {}
        }
    }
}

/// `map[name]` defined as `body` from `origin`. Out of [`collect_blocks`],
/// which recurses once per level of a template's nesting: a debug build
/// would give every level these temporaries' slots.
#[inline(never)]
fn define_block(
    map: &mut HashMap<String, BlockDef>,
    name: &str,
    body: &Arc<[Node]>,
    origin: Origin,
) {
    let def = BlockDef {
        body: Arc::clone(body),
        origin,
    };
    map.insert(name.to_string(), def);
}

/// Adds the blocks of `nodes` (and of the templates they include) to `map`,
/// later definitions replacing earlier ones.
fn collect_blocks(nodes: &[Node], map: &mut HashMap<String, BlockDef>, own: &Origin) {
    for node in nodes {
        match node {
            Node::Block { name, body } => {
                define_block(map, name, body, own.clone());
                collect_blocks(body, map, own);
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (_, body) in branches {
                    collect_blocks(body, map, own);
                }
                collect_blocks(otherwise, map, own);
            }
            Node::For(l) => {
                collect_blocks(&l.body, map, own);
                collect_blocks(&l.otherwise, map, own);
            }
            Node::Apply { body, .. } => collect_blocks(body, map, own),
            Node::While(w) => {
                collect_blocks(&w.body, map, own);
                collect_blocks(&w.otherwise, map, own);
            }
            Node::Try(t) => {
                for part in t.parts() {
                    collect_blocks(part, map, own);
                }
            }
            Node::Include { name, template } => {
                for (block, def) in &template.blocks {
                    define_block(map, block, &def.body, under(name, &def.origin));
                }
            }
            // A module's template keeps its blocks to itself (Tornado
            // compiles it apart, for render_string).
            Node::Text(_)
            | Node::Var { .. }
            | Node::Set { .. }
            | Node::Module { .. }
            | Node::Break
            | Node::Continue => {}
        }
    }
}

/// The name `name` in an `include`/`extends` of the template `parent`
/// (both relative to `template_path`): relative to `parent`'s directory, or
/// to `template_path` when it starts with `/`. `.` and `..` segments are
/// resolved; a name that leaves `template_path` is refused.
///
/// # Errors
/// [`TemplateError::Load`] for a name that is empty or leaves the root.
pub(crate) fn resolve_name(parent: &str, name: &str) -> Result<String, TemplateError> {
    let mut parts: Vec<&str> = Vec::new();
    let rest = match name.strip_prefix('/') {
        Some(rest) => rest,
        None => {
            parts.extend(parent.split('/').filter(|s| !s.is_empty()));
            parts.pop();
            name
        }
    };
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(TemplateError::Load(format!(
                        "template name {name:?} (from {parent:?}) leaves template_path"
                    )));
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(TemplateError::Load(format!("empty template name {name:?}")));
    }
    Ok(parts.join("/"))
}

/// The source of the template file `path` (`template_path` joined with a
/// name [`resolve_name`] accepted). With a `root`, the file's canonical
/// path (symlinks resolved) must stay inside the canonical root, as for
/// static files: a symlink out of `template_path` is refused.
///
/// # Errors
/// [`TemplateError::Load`]: missing, unreadable, not UTF-8, or outside
/// `root`.
pub(crate) fn read_source(
    root: Option<&std::path::Path>,
    path: &std::path::Path,
) -> Result<String, TemplateError> {
    let fail = |e: std::io::Error| TemplateError::Load(format!("{}: {e}", path.display()));
    let Some(root) = root else {
        return std::fs::read_to_string(path).map_err(fail);
    };
    let root = root
        .canonicalize()
        .map_err(|e| TemplateError::Load(format!("template_path {}: {e}", root.display())))?;
    let full = path.canonicalize().map_err(fail)?;
    if !full.starts_with(&root) {
        return Err(TemplateError::Load(format!(
            "{}: leaves template_path (a symlink to {})",
            path.display(),
            full.display()
        )));
    }
    std::fs::read_to_string(&full).map_err(fail)
}

impl Template {
    /// How deeply `if`/`for`/`block` may nest in one template (checked when
    /// it is parsed).
    pub const MAX_NESTING: usize = 100;
    /// How deeply rendering may nest: blocks, includes and modules
    /// together, across templates and the renders modules start (checked
    /// while rendering).
    pub const MAX_RENDER_DEPTH: usize = 200;
    /// How long a chain of `{% include %}` and `{% extends %}` may be below
    /// the rendered template (checked when it is loaded).
    pub const MAX_INCLUDE_DEPTH: usize = 16;
    /// How many steps one render may take: each node rendered (text, value,
    /// tag) and each loop iteration is one. A page of 100,000 rows of ten
    /// values is about two million.
    pub const MAX_RENDER_STEPS: u64 = 50_000_000;
    /// How many bytes one render may produce (256 MiB).
    pub const MAX_OUTPUT: usize = 256 << 20;

    /// Parses `src`. `{% include %}` and `{% extends %}` need
    /// [`parse_with_loader`](Self::parse_with_loader) (here they are a
    /// [`TemplateError::Load`]).
    ///
    /// # Errors
    /// Any parse-time [`TemplateError`] (see *Errors* [above](Template)),
    /// in a [`TemplateError::At`] with the line of its tag.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Template::parse_with_loader(src, |name| {
            Err(TemplateError::Load(format!(
                "cannot load {name:?}: Template::parse has no loader (use parse_with_loader)"
            )))
        })
    }

    /// Parses `src`, calling `load` with the quoted name of each
    /// `{% include %}` and `{% extends %}` as it is met (Tornado's
    /// `Loader.load`); `load` returns the parsed template. Resolving relative
    /// names, caching and cycle detection are up to `load` (`render` does
    /// all three).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cyclone::web::{Template, TemplateError};
    ///
    /// let item = Arc::new(Template::parse("<li>{{ item }}</li>").unwrap());
    /// let page = Template::parse_with_loader(
    ///     "<ul>{% for item in items %}{% include \"item.html\" %}{% end %}</ul>",
    ///     |name| match name {
    ///         "item.html" => Ok(item.clone()),
    ///         _ => Err(TemplateError::Load(format!("no {name}"))),
    ///     },
    /// )
    /// .unwrap();
    /// let html = page
    ///     .render_value(&serde_json::json!({ "items": ["a", "<b>"] }))
    ///     .unwrap();
    /// assert_eq!(html, "<ul><li>a</li><li>&lt;b&gt;</li></ul>");
    /// ```
    ///
    /// # Errors
    /// Any parse-time [`TemplateError`], or what `load` returns, in a
    /// [`TemplateError::At`] with the line of its tag — unless `load`'s
    /// error already says where it is (a [`TemplateError::At`] or
    /// [`TemplateError::In`]: an error of the loaded template), which is
    /// returned as it is.
    pub fn parse_with_loader(
        src: &str,
        load: impl FnMut(&str) -> Result<Arc<Template>, TemplateError>,
    ) -> Result<Template, TemplateError> {
        Template::parse_with(src, Whitespace::All, load)
    }

    /// [`parse_with_loader`](Self::parse_with_loader) with the text
    /// between tags filtered as `whitespace` says until a
    /// `{% whitespace %}` changes it (Tornado's `Loader(whitespace=)`;
    /// [`Whitespace::for_name`] is its default for a file).
    ///
    /// ```
    /// use cyclone::web::{Template, TemplateError, Whitespace};
    ///
    /// let src = "<ul>\n    {% for x in xs %}<li>{{ x }}</li>   {% end %}\n</ul>";
    /// let none = |name: &str| Err(TemplateError::Load(name.to_string()));
    /// let t = Template::parse_with(src, Whitespace::for_name("list.html"), none).unwrap();
    /// let html = t.render_value(&serde_json::json!({ "xs": [1, 2] })).unwrap();
    /// assert_eq!(html, "<ul>\n<li>1</li> <li>2</li> \n</ul>");
    /// ```
    ///
    /// # Errors
    /// As [`parse_with_loader`](Self::parse_with_loader).
    pub fn parse_with(
        src: &str,
        whitespace: Whitespace,
        load: impl FnMut(&str) -> Result<Arc<Template>, TemplateError>,
    ) -> Result<Template, TemplateError> {
        let mut p = Parser {
            stack: Vec::new(),
            root: Vec::new(),
            text: String::new(),
            parent: None,
            autoescape: true,
            whitespace,
            chunk: 0,
            load,
        };
        let mut rest = src;
        // The line of `src[..counted]`'s end: lines are counted as tags are
        // met, so parsing stays linear.
        let (mut line, mut counted) = (1u32, 0);
        while let Some(open) = rest.find('{') {
            let kind = rest[open + 1..].chars().next();
            let close = match kind {
                Some('{') => "}}",
                Some('%') => "%}",
                Some('#') => "#}",
                _ => "",
            };
            // `{{{`: as in Tornado, the innermost two braces open the tag
            // (for LaTeX, JavaScript objects).
            if close.is_empty() || rest[open + 1..].starts_with("{{") {
                p.text.push_str(&rest[..open + 1]);
                rest = &rest[open + 1..];
                continue;
            }
            p.text.push_str(&rest[..open]);
            p.end_chunk();
            let after = &rest[open + 2..];
            if let Some(lit) = after.strip_prefix('!') {
                // The braces are a chunk of their own, as in Tornado.
                p.text.push_str(&rest[open..open + 2]);
                p.end_chunk();
                rest = lit;
                continue;
            }
            let at = src.len() - rest.len() + open;
            let newlines = src[counted..at].bytes().filter(|b| *b == b'\n').count();
            line = line.saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
            counted = at;
            let Some(end) = after.find(close) else {
                return Err(TemplateError::Unclosed(rest[open..open + 2].to_string()).at(line));
            };
            let inner = after[..end].trim();
            rest = &after[end + 2..];
            match kind {
                Some('{') => match parse_expr(inner) {
                    Some(expr) => p.push(Node::Var {
                        expr,
                        escape: true,
                        line,
                    }),
                    None => return Err(TemplateError::BadTag(inner.to_string()).at(line)),
                },
                Some('%') => p.directive(inner, line).map_err(|e| e.at(line))?,
                // `{# .. #}`.
                _ => {}
            }
        }
        p.text.push_str(rest);
        p.flush();
        if let Some(frame) = p.stack.pop() {
            return Err(TemplateError::UnclosedBlock(frame.tag).at(frame.line));
        }
        if !p.autoescape {
            unescape(&mut p.root);
        }
        let mut blocks = HashMap::new();
        if let Some((name, parent)) = &p.parent {
            for (block, def) in &parent.blocks {
                let def = BlockDef {
                    body: def.body.clone(),
                    origin: under(name, &def.origin),
                };
                blocks.insert(block.clone(), def);
            }
        }
        collect_blocks(&p.root, &mut blocks, &Origin::from([]));
        let base = p.parent.map(|(name, parent)| match &parent.base {
            Some((origin, base)) => (under(&name, origin), base.clone()),
            None => (under(&name, &[]), parent),
        });
        let entry = match &base {
            Some((_, base)) => &base.nodes,
            None => &p.root,
        };
        let mut locals = std::collections::HashSet::new();
        local_names(
            entry,
            &blocks,
            &mut std::collections::HashSet::new(),
            &mut locals,
        );
        let locals = locals.into_iter().map(str::to_string).collect();
        Ok(Template {
            nodes: p.root,
            base,
            blocks,
            locals,
        })
    }

    /// Renders with `vars` (`(name, value)`; the first pair with a name
    /// wins). Every value is a string: `{{ a.b }}` is the pair named `"a.b"`,
    /// `{% if name %}` is true for a non-empty string, and a loop over a
    /// string is an error (use [`render_value`](Self::render_value)).
    /// (A name no pair has, nor a pair's name before a `.`, is the
    /// namespace's: in `RequestContext::render`, `{{ request.path }}` is
    /// the request's path.)
    ///
    /// # Errors
    /// [`TemplateError::Undefined`] for a variable missing from `vars`, or
    /// another render-time error; located as *Errors* [above](Template)
    /// says.
    pub fn render(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        self.render_pairs_in(vars, None)
    }

    /// Renders with the fields of `value`, which must be a JSON object.
    ///
    /// # Errors
    /// [`TemplateError::Type`] if `value` is not an object;
    /// [`TemplateError::Undefined`] for a missing name or field; another
    /// render-time error; located as *Errors* [above](Template) says.
    pub fn render_value(&self, value: &Value) -> Result<String, TemplateError> {
        self.render_value_in(value, None)
    }

    /// Like [`render_value`](Self::render_value), with `static_url` giving
    /// what `{{ static_url("path") }}` prints for `path` (as
    /// `RequestContext::render` gives
    /// [`RequestContext::static_url`](super::RequestContext::static_url)):
    /// to render a template that links static files outside a request, e.g.
    /// to write a page to disk.
    ///
    /// ```
    /// use cyclone::web::Template;
    ///
    /// let t = Template::parse(r#"<link href="{{ static_url("app.css") }}">"#).unwrap();
    /// let html = t
    ///     .render_value_with_static_url(&serde_json::json!({}), |path| {
    ///         format!("https://cdn.example/{path}?v=1&x")
    ///     })
    ///     .unwrap();
    /// assert_eq!(html, r#"<link href="https://cdn.example/app.css?v=1&amp;x">"#);
    /// // Without one, static_url is an error at its tag.
    /// assert_eq!(
    ///     t.render_value(&serde_json::json!({})).unwrap_err().to_string(),
    ///     "static_url() needs a request: render with RequestContext::render, render_with or \
    ///      render_string (and the static_path setting), or \
    ///      Template::render_value_with_static_url at line 1"
    /// );
    /// ```
    ///
    /// # Errors
    /// As [`render_value`](Self::render_value).
    pub fn render_value_with_static_url(
        &self,
        value: &Value,
        static_url: impl Fn(&str) -> String,
    ) -> Result<String, TemplateError> {
        self.render_value_in(value, Some(&StaticUrlOnly(static_url)))
    }

    /// [`render_value`](Self::render_value) with budgets of its own
    /// instead of [`MAX_RENDER_STEPS`](Self::MAX_RENDER_STEPS) and
    /// [`MAX_OUTPUT`](Self::MAX_OUTPUT) (at most those): for templates
    /// from users, where a `{% while True %}` should stop after
    /// milliseconds rather than seconds.
    ///
    /// ```
    /// use cyclone::web::{Template, TemplateError};
    ///
    /// let t = Template::parse("{% while True %}x{% end %}").unwrap();
    /// let err = t.render_value_within(&serde_json::json!({}), 10_000, 1 << 20).unwrap_err();
    /// assert!(matches!(err.innermost(), TemplateError::TooLarge(_)));
    /// ```
    ///
    /// # Errors
    /// As [`render_value`](Self::render_value).
    pub fn render_value_within(
        &self,
        value: &Value,
        max_steps: u64,
        max_output: usize,
    ) -> Result<String, TemplateError> {
        self.render_object(
            value,
            None,
            max_steps.min(Template::MAX_RENDER_STEPS),
            max_output.min(Template::MAX_OUTPUT),
        )
    }

    /// Renders with the fields of `value` (serialized with `serde_json`;
    /// it must serialize to an object: a struct, a map, `json!({..})`).
    ///
    /// # Errors
    /// As [`render_value`](Self::render_value); serialization failing is a
    /// [`TemplateError::Type`].
    pub fn render_with(&self, value: &(impl Serialize + ?Sized)) -> Result<String, TemplateError> {
        self.render_with_in(value, None)
    }

    /// [`render`](Self::render), with the request's functions for
    /// `{{ static_url(..) }}` (`RequestContext::render`).
    pub(crate) fn render_pairs_in(
        &self,
        vars: &[(&str, &str)],
        request: Option<Namespace<'_>>,
    ) -> Result<String, TemplateError> {
        self.render_root(Root::Pairs(vars), request)
    }

    /// [`render_with`](Self::render_with), with the request's functions for
    /// `{{ static_url(..) }}` (`RequestContext::render_with` and
    /// `render_string`).
    pub(crate) fn render_with_in(
        &self,
        value: &(impl Serialize + ?Sized),
        request: Option<Namespace<'_>>,
    ) -> Result<String, TemplateError> {
        let value = serde_json::to_value(value)
            .map_err(|e| TemplateError::Type(format!("template values do not serialize: {e}")))?;
        self.render_value_in(&value, request)
    }

    pub(crate) fn render_value_in(
        &self,
        value: &Value,
        request: Option<Namespace<'_>>,
    ) -> Result<String, TemplateError> {
        self.render_object(
            value,
            request,
            Template::MAX_RENDER_STEPS,
            Template::MAX_OUTPUT,
        )
    }

    /// Renders with the fields of `value`, which must be an object.
    fn render_object(
        &self,
        value: &Value,
        request: Option<Namespace<'_>>,
        steps: u64,
        max_output: usize,
    ) -> Result<String, TemplateError> {
        match value {
            Value::Object(map) => {
                self.render_limited(Root::Object(map), request, steps, max_output)
            }
            other => Err(TemplateError::Type(format!(
                "template values must be a JSON object (a struct or a map), not {}",
                kind(other)
            ))),
        }
    }

    fn render_root<'a>(
        &'a self,
        root: Root<'a>,
        request: Option<Namespace<'a>>,
    ) -> Result<String, TemplateError> {
        self.render_limited(
            root,
            request,
            Template::MAX_RENDER_STEPS,
            Template::MAX_OUTPUT,
        )
    }

    fn render_limited<'a>(
        &'a self,
        root: Root<'a>,
        request: Option<Namespace<'a>>,
        steps: u64,
        max_output: usize,
    ) -> Result<String, TemplateError> {
        self.render_nested(root, request, steps, max_output, None)
            .map(|(out, _)| out)
    }

    /// [`render_limited`](Self::render_limited), also giving the steps
    /// left (a `{% module Template(..) %}` spends its includer's, and
    /// gives its name as `module`, for `set_resources`).
    fn render_nested<'a>(
        &'a self,
        root: Root<'a>,
        request: Option<Namespace<'a>>,
        steps: u64,
        max_output: usize,
        module: Option<&'a str>,
    ) -> Result<(String, u64), TemplateError> {
        let arena = typed_arena::Arena::new();
        let mut r = Renderer {
            root,
            request,
            arena: &arena,
            kept: std::cell::Cell::new(0),
            locals: Vec::new(),
            bound_names: Cow::Borrowed(&self.locals),
            blocks: &self.blocks,
            origin: Vec::new(),
            floor: 0,
            out: String::new(),
            steps,
            spent: std::cell::Cell::new(0),
            max_steps: steps,
            max_output,
            default_locale: std::cell::OnceCell::new(),
            locale_value: std::cell::OnceCell::new(),
            handler_value: std::cell::OnceCell::new(),
            module,
            outer_depth: OUTER_DEPTH.get(),
            depth: 0,
        };
        let entry = match &self.base {
            Some((origin, base)) => {
                r.origin.extend(origin.iter().map(String::as_str));
                &base.nodes
            }
            None => &self.nodes,
        };
        r.nodes(entry, 0)?;
        // The last node's output, not yet checked by a `tick`.
        r.check_output()?;
        let steps_left = r.steps.saturating_sub(r.spent.get());
        Ok((r.out, steps_left))
    }
}

/// Appends to `out` each name a `{% set %}` or `{% for %}` in `nodes` binds,
/// through `if`, `for`, includes and the blocks the render shows (`blocks`,
/// else a block's own body): the locals of the one Python function Tornado
/// compiles a template into. Each body is walked once (`seen`), however
/// often it is shown: blocks shown twice at each level do not make the
/// walk exponential.
fn local_names<'a>(
    nodes: &'a [Node],
    blocks: &'a HashMap<String, BlockDef>,
    seen: &mut std::collections::HashSet<*const Node>,
    out: &mut std::collections::HashSet<&'a str>,
) {
    // Walked with a stack of its own, not recursively: includes chained as
    // deep as allowed, each nesting blocks as deep as allowed, are more
    // levels than a thread's stack holds frames of this walk.
    let mut todo: Vec<&'a [Node]> = vec![nodes];
    while let Some(nodes) = todo.pop() {
        // An empty body has nothing to walk (and no address of its own).
        if nodes.is_empty() || !seen.insert(nodes.as_ptr()) {
            continue;
        }
        for node in nodes {
            match node {
                Node::Set { name, unpack, .. } => {
                    out.insert(name);
                    for t in unpack.iter().flat_map(|ts| ts.iter()) {
                        each_name(t, &mut |n| {
                            out.insert(n);
                        });
                    }
                }
                Node::For(l) => {
                    out.insert(&l.var);
                    out.extend(l.rest.iter().map(String::as_str));
                    todo.push(&l.body);
                    todo.push(&l.otherwise);
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    todo.extend(branches.iter().map(|(_, body)| body.as_slice()));
                    todo.push(otherwise);
                }
                Node::Include { template, .. } => todo.push(&template.nodes),
                Node::Block { name, body } => match blocks.get(name) {
                    Some(def) => todo.push(&def.body[..]),
                    None => todo.push(&body[..]),
                },
                Node::While(w) => {
                    todo.push(&w.body);
                    todo.push(&w.otherwise);
                }
                Node::Try(t) => todo.extend(t.parts().map(Vec::as_slice)),
                // A function of its own in Tornado: its names are its
                // locals, not the template's (see `Renderer::apply`); a
                // module's template is a render of its own.
                Node::Apply { .. } | Node::Module { .. } => {}
                Node::Text(_) | Node::Var { .. } | Node::Break | Node::Continue => {}
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Python's index `i` into a sequence of `len` items: from the back when
/// negative (`-1` the last), `None` past either end.
fn py_index(len: usize, i: i128) -> Option<usize> {
    let at = if i < 0 { i + len as i128 } else { i };
    usize::try_from(at).ok().filter(|at| *at < len)
}

/// `items[seg]` for an index step (`0`, `-1`), as Python indexes a list.
fn index<'v>(items: &'v [Value], seg: &str) -> Option<&'v Value> {
    items.get(py_index(items.len(), seg.parse().ok()?)?)
}

/// The character `s[i]` ([`py_index`] over the characters), as a slice of
/// `s`.
fn char_at(s: &str, i: i128) -> Option<&str> {
    let at = py_index(s.chars().count(), i)?;
    let (start, c) = s.char_indices().nth(at)?;
    Some(&s[start..start + c.len_utf8()])
}

/// The value at the `.` steps `segs` below `val` (of the whole `path`, for
/// the error): an object's field, an array's index, a string's character.
fn walk<'a>(
    mut val: Val<'a>,
    segs: impl Iterator<Item = &'a str>,
    path: &str,
) -> Result<Val<'a>, TemplateError> {
    for seg in segs {
        val = match val {
            Val::Json(Value::Object(m)) => m.get(seg).map(Val::Json),
            Val::Json(Value::Array(a)) => index(a, seg).map(Val::Json),
            // A string's character, as Python indexes a string.
            other => other
                .as_str()
                .and_then(|s| char_at(s, seg.parse().ok()?))
                .map(Val::Str),
        }
        .ok_or_else(|| TemplateError::Undefined(path.to_string()))?;
    }
    Ok(val)
}

/// The functions of Tornado's template namespace that need the request
/// being answered: [`RequestContext`](super::RequestContext) gives them
/// to the templates it renders.
pub(crate) trait RequestNamespace {
    /// What `{{ static_url(path) }}` prints for `path`; an error for a
    /// path out of `static_path`.
    fn static_url(&self, path: &str) -> Result<String, super::StaticUrlError>;
    /// What `{{ static_url(path, include_version=False) }}` prints: by
    /// default [`static_url`](Self::static_url)'s URL without its last
    /// `?v=` query (cyclone's own escape `?` in the path, so that is the
    /// version). Never an error: Tornado does not look at the path then.
    fn unversioned_static_url(&self, path: &str) -> String {
        let mut url = self.static_url(path).unwrap_or_default();
        if let Some(at) = url.rfind("?v=") {
            url.truncate(at);
        }
        url
    }
    /// What `xsrf_form_html()` returns; `None` where it has no request.
    fn xsrf_form_html(&self) -> Option<String>;
    /// What `reverse_url(name, *args)` returns; `None` for a name no route
    /// has (and where there is no request).
    fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String>;
    /// Whether there is an application whose routes `reverse_url` looks
    /// in (not so for a render given only `static_url`).
    fn has_routes(&self) -> bool {
        true
    }
    /// `current_user`: the logged-in user's name, if any.
    fn current_user(&self) -> Option<&str>;
    /// `request`: the request's fields Tornado's `HTTPServerRequest`
    /// has (`path`, `uri`, `query`, `method`, `host`, `remote_ip`, ...).
    fn request_value(&self) -> Option<&Value>;
    /// `locale`, whose `translate` is `_`: `None` for the process's
    /// default locale.
    fn locale(&self) -> Option<&crate::locale::Locale>;
    /// The application whose request this is, for its `ui_method`s, UI
    /// modules and their templates; `None` outside one.
    fn app_parts(&self) -> Option<AppParts<'_>> {
        None
    }
    /// A name the handler added to its templates' namespace
    /// (`RequestContext::set_template_value`).
    fn template_value(&self, name: &str) -> Option<&Value> {
        let _ = name;
        None
    }
}

/// What a render inside an application reaches beyond its request's
/// functions ([`RequestNamespace::app_parts`]).
pub(crate) struct AppParts<'a> {
    pub(crate) shared: &'a super::application::Shared,
    pub(crate) request: &'a crate::http::Request,
    /// The UI modules the request has used.
    pub(crate) modules: &'a super::ui_module::ActiveModules,
}

pub(crate) type Namespace<'a> = &'a dyn RequestNamespace;

/// `request` in a template: the fields of Tornado's `HTTPServerRequest`
/// a page prints (`{{ request.path }}`, `{{ request.host }}`), its
/// `headers`, `arguments`, `query_arguments`, `body_arguments` and
/// `cookies`, and (see [`request_method`]) its `full_url()`.
///
/// Where it differs from Tornado's, on purpose:
/// - `headers` is a dict of Tornado's normalized names (`X-Test`,
///   `Content-Type`), each repeated header's lines joined with `,` as
///   `HTTPHeaders` gives them: `request.headers['X-Test']`,
///   `request.headers.get('X-Test', 'none')` and `'X-Test' in
///   request.headers` work, but a name in another case (`x-test`) is not
///   found, where `HTTPHeaders` ignores case;
/// - the argument dicts hold lists of `str`, where Tornado's hold `bytes`
///   (`[b'1']`), so `request.arguments['a'][0]` prints `1`, not `b'1'`;
///   `body_arguments` are those of a urlencoded body (a multipart body's
///   fields are `RequestContext::get_body_arguments`');
/// - `cookies` maps each name to a dict of its `key` and `value` (Tornado's
///   `Morsel`: `request.cookies['c'].value` works); a repeated name keeps
///   its first value, as `RequestContext::get_cookie` reads it;
/// - there is no `body`, no `files`, and `{{ request }}` prints the dict;
/// - `full_url()` is a method of any dict of the same content, a copy
///   (`[request][0].full_url()` works, as in Tornado, where the list holds
///   the object itself), so also of one a template builds with every
///   field (`dict(request)`), where Tornado's dict has no such method.
pub(crate) fn request_value(req: &crate::http::Request) -> Value {
    let host = req.host().unwrap_or("127.0.0.1");
    // Tornado's host_name: the host without its port (IPv6 brackets
    // kept), as its `^(.+):(\d+)$` splits it: a port of one digit or more
    // after a name of one character or more, else the whole host
    // (`example.com:` stays as it is).
    let host_name = match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    };
    let query_arguments = argument_lists(crate::http::request::parse_qs(req.query()));
    let urlencoded = req
        .header_joined("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body_arguments = if urlencoded {
        argument_lists(crate::http::request::parse_qs_bytes(req.body()))
    } else {
        Map::new()
    };
    // Tornado's `arguments`: the query's values, then the body's.
    let mut arguments = query_arguments.clone();
    for (name, values) in &body_arguments {
        if let (Value::Array(all), Value::Array(more)) = (
            arguments
                .entry(name.clone())
                .or_insert_with(|| Value::Array(Vec::new())),
            values,
        ) {
            all.extend(more.iter().cloned());
        }
    }
    let cookies: Map<String, Value> = req
        .cookie_names()
        .into_iter()
        .map(|name| {
            let value = req.cookie(&name).unwrap_or_default();
            let morsel = serde_json::json!({"key": name, "value": value});
            (name, morsel)
        })
        .collect();
    serde_json::json!({
        "method": req.method(),
        "uri": req.uri(),
        "path": req.path(),
        "query": req.query(),
        "version": format!("HTTP/1.{}", req.version_minor()),
        "host": host,
        "host_name": host_name.to_ascii_lowercase(),
        "remote_ip": req.remote_ip().map(|ip| ip.to_string()),
        "protocol": req.protocol(),
        "headers": request_headers(req),
        "arguments": arguments,
        "query_arguments": query_arguments,
        "body_arguments": body_arguments,
        "cookies": cookies,
    })
}

/// The request's headers as Tornado's `HTTPHeaders` reads them: each name
/// normalized (`x-test` is `X-Test`), in the order first seen, a repeated
/// one's lines joined with `,`.
fn request_headers(req: &crate::http::Request) -> Map<String, Value> {
    let mut headers = Map::new();
    for (name, _) in req.headers() {
        let normal = name
            .split('-')
            .map(|word| {
                let mut w = word.to_ascii_lowercase();
                if let Some(first) = w.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                w
            })
            .collect::<Vec<_>>()
            .join("-");
        if !headers.contains_key(&normal) {
            let joined = req.header_joined(name).unwrap_or_default();
            headers.insert(normal, Value::String(joined.into_owned()));
        }
    }
    headers
}

/// `name: [value, ...]` of urlencoded `pairs`, blank values kept, in the
/// order names first appear (Tornado's `parse_qs_bytes(.., True)`).
fn argument_lists(pairs: impl Iterator<Item = (String, String)>) -> Map<String, Value> {
    let mut args = Map::new();
    for (name, value) in pairs {
        match args.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(values) => values.push(Value::String(value)),
            _ => unreachable!("argument lists hold arrays"),
        }
    }
    args
}

/// `handler` in a template: what Tornado's `RequestHandler` gives a page
/// to read, `handler.request` (the [`request_value`]), `handler.current_user`
/// and `handler.locale` (`code`, `name`, `rtl`, as `locale` is), and (see
/// [`handler_method`]) its argument and cookie methods.
///
/// Left out on purpose: `settings` (Rust settings, the cookie secret among
/// them, are no dict for a page to print), `xsrf_token`, `static_url`,
/// `reverse_url` and `render_string` (the namespace has
/// `xsrf_form_html()`, `static_url(..)`, `reverse_url(..)` and
/// `{% module Template(..) %}`), and the handler's own attributes; `{{
/// handler }}` prints the dict. Its methods are those of any dict of the
/// same content, as `request`'s `full_url()` is (see [`request_value`]).
fn handler_value(request: &Value, current_user: Option<&str>, locale: &Value) -> Value {
    serde_json::json!({
        "request": request,
        "current_user": current_user,
        "locale": locale,
    })
}

/// `request.full_url()` of a [`request_value`], as
/// [`Request::full_url`](crate::http::Request::full_url) gives it: from
/// the `path` and the `query`, not the `uri`, which for an absolute-form
/// target (`GET http://h/x?q=1`) is the whole target, authority and all.
/// The `?` is there when the target has one (`/x?` keeps it), as
/// `Request::full_url` takes the target's text from its path on.
fn full_url(request: &Value) -> String {
    let text = |key: &str| request[key].as_str().unwrap_or_default();
    let host = Some(text("host"))
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1");
    let path = text("path");
    let slash = if path.starts_with('/') { "" } else { "/" };
    // Neither an authority nor a path holds a `?`: the first one in the
    // target starts its query.
    let (mark, query) = if text("uri").contains('?') {
        ("?", text("query"))
    } else {
        ("", "")
    };
    format!("{}://{host}{slash}{path}{mark}{query}", text("protocol"))
}

/// `handler.method(args, kwargs)` over the handler's `request` (a
/// [`request_value`]), as Tornado's `RequestHandler` answers:
/// `get_argument(name, default, strip=True)` the last value (control
/// characters made spaces, stripped unless `strip` is false; the query's
/// then the body's for `get_argument`), `get_arguments(name, strip=True)`
/// every value, the same for `get_query_argument(s)` and
/// `get_body_argument(s)`, and `get_cookie(name, default=None)`. The
/// values are cleaned by the rule `RequestContext`'s methods follow
/// ([`argument_values`](super::context::argument_values),
/// [`last_argument`](super::context::last_argument)).
/// An argument missing without a default is Tornado's
/// `MissingArgumentError`, [`TemplateError::Http`] 400.
fn handler_method(
    request: &Value,
    method: expr::Method,
    args: &[Value],
    kwargs: &Map<String, Value>,
) -> Result<Value, TemplateError> {
    use expr::Method as M;
    let name = method.name();
    let params: &[&str] = match method {
        M::GetArgument | M::GetQueryArgument | M::GetBodyArgument => &["name", "default", "strip"],
        M::GetArguments | M::GetQueryArguments | M::GetBodyArguments => &["name", "strip"],
        _ => &["name", "default"],
    };
    // The arguments by parameter, as Python binds them.
    let mut bound: Vec<Option<&Value>> = vec![None; params.len()];
    for (i, v) in args.iter().enumerate() {
        bound[i] = Some(v);
    }
    for (k, v) in kwargs {
        let Some(i) = params.iter().position(|p| p == k) else {
            return Err(TemplateError::Type(format!(
                "{name}() got an unexpected keyword argument '{k}'"
            )));
        };
        if bound[i].replace(v).is_some() {
            return Err(TemplateError::Type(format!(
                "{name}() got multiple values for argument '{k}'"
            )));
        }
    }
    let Some(Value::String(arg)) = bound[0] else {
        return Err(TemplateError::Type(format!(
            "{name}()'s name must be a str"
        )));
    };
    let param = |p: &str| params.iter().position(|n| *n == p).and_then(|i| bound[i]);
    if method == M::GetCookie {
        let value = request["cookies"][arg.as_str()]["value"].clone();
        return Ok(match value {
            Value::Null => param("default").cloned().unwrap_or(Value::Null),
            value => value,
        });
    }
    let strip = param("strip").is_none_or(|v| Val::Json(v).truthy());
    let source = match method {
        M::GetArgument | M::GetArguments => "arguments",
        M::GetQueryArgument | M::GetQueryArguments => "query_arguments",
        _ => "body_arguments",
    };
    let raw = request[source][arg.as_str()]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned);
    if matches!(
        method,
        M::GetArguments | M::GetQueryArguments | M::GetBodyArguments
    ) {
        let values = super::context::argument_values(raw, strip);
        return Ok(Value::Array(
            values.into_iter().map(Value::String).collect(),
        ));
    }
    match (super::context::last_argument(raw, strip), param("default")) {
        (Some(v), _) => Ok(Value::String(v)),
        (None, Some(default)) => Ok(default.clone()),
        (None, None) => Err(TemplateError::Http {
            status: 400,
            message: format!("Missing argument {arg}").into(),
        }),
    }
}

/// `static_url` alone, from a closure
/// ([`Template::render_value_with_static_url`]).
struct StaticUrlOnly<F>(F);

impl<F: Fn(&str) -> String> RequestNamespace for StaticUrlOnly<F> {
    fn static_url(&self, path: &str) -> Result<String, super::StaticUrlError> {
        Ok((self.0)(path))
    }

    fn xsrf_form_html(&self) -> Option<String> {
        None
    }

    fn reverse_url(&self, _name: &str, _args: &[&str]) -> Option<String> {
        None
    }

    fn has_routes(&self) -> bool {
        false
    }

    fn current_user(&self) -> Option<&str> {
        None
    }

    fn request_value(&self) -> Option<&Value> {
        None
    }

    fn locale(&self) -> Option<&crate::locale::Locale> {
        None
    }
}

/// Where top-level names come from.
#[derive(Clone, Copy)]
enum Root<'a> {
    Pairs(&'a [(&'a str, &'a str)]),
    Object(&'a Map<String, Value>),
}

/// A value being rendered: a string pair's value or a JSON value.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Json(&'a Value),
}

impl<'a> Val<'a> {
    /// The text of a string value (a pair's, or a JSON string).
    fn as_str(self) -> Option<&'a str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(s),
            Val::Json(_) => None,
        }
    }

    fn truthy(self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Json(v) => match v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            },
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Json(v) => kind(v),
        }
    }

    /// The name of the value's Python type, as Python's messages say it.
    fn py_type(self) -> &'static str {
        match self {
            Val::Str(_) | Val::Json(Value::String(_)) => "str",
            Val::Json(Value::Null) => "NoneType",
            Val::Json(Value::Bool(_)) => "bool",
            Val::Json(Value::Number(n)) if n.is_f64() => "float",
            Val::Json(Value::Number(_)) => "int",
            Val::Json(Value::Array(_)) => "list",
            Val::Json(Value::Object(_)) => "dict",
        }
    }

    /// The text `{{ }}` prints for it (before escaping): what a function
    /// other than `json_encode` takes.
    fn text(self) -> Cow<'a, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Json(Value::String(s)) => Cow::Borrowed(s),
            Val::Json(v) => {
                let mut s = String::new();
                push_python_repr(&mut s, v);
                Cow::Owned(s)
            }
        }
    }

    /// Python's `repr` of it: a string quoted ([`push_python_str_repr`]),
    /// anything else as [`push_python_repr`] writes it.
    fn repr(self) -> String {
        let mut r = String::new();
        match self {
            Val::Str(s) => push_python_str_repr(&mut r, s),
            Val::Json(v) => push_python_repr(&mut r, v),
        }
        r
    }
}

/// Appends what Python's `str` prints for `v` (a string's own text is
/// handled by the callers): `None`, `True`/`False`, numbers as
/// [`push_number`], lists and dicts as their `repr`, with `", "` and
/// `": "` between items and strings inside them quoted as
/// [`push_python_str_repr`] quotes them — the text Tornado's `{{ }}`
/// prints for a value that is not a string.
fn push_python_repr(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => push_number(out, n),
        Value::String(s) => push_python_str_repr(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_python_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_python_str_repr(out, k);
                out.push_str(": ");
                push_python_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `repr` of `bytes` (`b'a\xffb'`), for a log line that shows, as
/// Tornado's do, bytes that are not UTF-8: the `repr` of the string of the
/// same code points (Latin-1), with `b` before it and each byte above
/// ASCII escaped, as `bytes` prints it.
pub(crate) fn python_bytes_repr(b: &[u8]) -> String {
    let latin1 = crate::http::request::latin1(b);
    let mut repr = String::with_capacity(b.len() + 3);
    push_python_str_repr(&mut repr, &latin1);
    let mut out = String::with_capacity(repr.len() + 1);
    out.push('b');
    for c in repr.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
    }
    out
}

/// Python's `repr` of a string: in `'…'`, or in `"…"` when it holds a `'`
/// and no `"`; the quote and `\` escaped with `\`; `\t`, `\n`, `\r`;
/// other characters Python does not print (`str.isprintable`) as `\xNN`,
/// `\uNNNN` or `\UNNNNNNNN`. The non-printable characters are the control
/// and format characters, separators other than the space, and private-use
/// ones ([`NOT_PRINTABLE`]); code points unassigned in Unicode, which
/// Python also escapes, print as they are.
fn push_python_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ if u32::from(c) < 0x80 || !printable(c) => {
                let n = u32::from(c);
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02x}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            _ => out.push(c),
        }
    }
    out.push(quote);
}

/// The characters above ASCII that Python's `str.isprintable` refuses
/// and that Unicode assigns (categories Cc, Cf, Zs but the space, Zl, Zp,
/// Co; surrogates cannot be in a Rust string), from Python 3.11's
/// `unicodedata` (Unicode 14).
const NOT_PRINTABLE: [(u32, u32); 27] = [
    (0x80, 0xa0),
    (0xad, 0xad),
    (0x600, 0x605),
    (0x61c, 0x61c),
    (0x6dd, 0x6dd),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x1680, 0x1680),
    (0x180e, 0x180e),
    (0x2000, 0x200f),
    (0x2028, 0x202f),
    (0x205f, 0x2064),
    (0x2066, 0x206f),
    (0x3000, 0x3000),
    (0xd800, 0xf8ff),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x13438),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
    (0xf0000, 0xffffd),
    (0x100000, 0x10fffd),
];

/// Whether Python prints `c` as it is in a `repr` (see [`NOT_PRINTABLE`]).
fn printable(c: char) -> bool {
    let n = u32::from(c);
    let i = NOT_PRINTABLE.partition_point(|&(_, hi)| hi < n);
    NOT_PRINTABLE.get(i).is_none_or(|&(lo, _)| n < lo)
}

/// Tornado's `linkify(text)` with its default arguments: the text
/// HTML-escaped, then each URL (with a scheme, or starting `www.`) made
/// `<a href="…">…</a>`, `http://` put before one without a scheme, and a
/// scheme other than `http` or `https` left as text. The pattern is
/// Tornado's `_URL_RE`.
/// Tornado's `linkify(text, shorten, extra_params, require_protocol,
/// permitted_protocols)`, option for option (`extra_params` as a string;
/// a template cannot pass a function).
///
/// `None` as soon as the result would be over `max` bytes: the escaped
/// text's length is counted before it is built, and each piece of the
/// result is checked before it is added, so that no more than `max` bytes
/// are held however many links (each with its `extra_params`) the text
/// makes.
pub(crate) fn linkify_with(text: &str, options: &expr::Options, max: usize) -> Option<String> {
    static URL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let url = URL.get_or_init(|| {
        regex::Regex::new(
            // Tornado's `_URL_RE` with Python's classes: `\w` is
            // `[\p{L}\p{N}_]` (Rust's also takes marks and `Alphabetic`
            // symbols), `\s` also takes `\x1c`-`\x1f`, and the leading
            // `\b`, which Rust would decide with its own `\w`, is
            // [`py_word_boundary`], checked at each match.
            r##"((?:([\p{L}\p{N}_-]+):(/{1,3})|www[.])(?:(?:(?:[^\s\x1c-\x1f&()]|&amp;|&quot;)*(?:[^!"#$%&'()*+,.:;<=>?@\[\]^`{|}~\s\x1c-\x1f]))|(?:\((?:[^\s\x1c-\x1f&()]|&amp;|&quot;)*\)))+)"##,
        )
        .unwrap_or_else(|e| unreachable!("Tornado's URL pattern compiles: {e}"))
    });
    let extra = options.extra_params.trim_matches(py_space);
    let extra = if extra.is_empty() && options.extra_params.is_empty() {
        String::new()
    } else {
        format!(" {extra}")
    };
    if escaped_len(text) > max {
        return None;
    }
    let mut escaped = String::with_capacity(text.len());
    push_escaped(&mut escaped, text);
    let mut out = String::with_capacity(escaped.len());
    let mut push =
        |s: &str| -> Option<()> { (s.len() <= max - out.len()).then(|| out.push_str(s)) };
    let mut last = 0;
    let mut from = 0;
    while let Some(c) = url.captures_at(&escaped, from) {
        let (Some(m), Some(whole)) = (c.get(0), c.get(1)) else {
            break;
        };
        if !py_word_boundary(&escaped, m.start()) {
            // Python's search goes on from the next character.
            from = m.start()
                + escaped[m.start()..]
                    .chars()
                    .next()
                    .map_or(1, char::len_utf8);
            continue;
        }
        from = m.end();
        push(&escaped[last..m.start()])?;
        last = m.end();
        let whole = whole.as_str();
        let proto = c.get(2).map(|m| m.as_str());
        let permitted = |p: &str| match &options.permitted_protocols {
            Some(list) => list.contains(p),
            None => p == "http" || p == "https",
        };
        match proto {
            None if options.require_protocol => {
                push(whole)?;
                continue;
            }
            Some(p) if !permitted(p) => {
                push(whole)?;
                continue;
            }
            _ => {}
        }
        let scheme = if proto.is_some() { "" } else { "http://" };
        let shown = if options.shorten {
            shorten_url(whole, proto, c.get(3).map_or("", |m| m.as_str()))
        } else {
            None
        };
        push("<a href=\"")?;
        push(scheme)?;
        push(whole)?;
        push("\"")?;
        push(&extra)?;
        if shown.is_some() {
            push(" title=\"")?;
            push(scheme)?;
            push(whole)?;
            push("\"")?;
        }
        push(">")?;
        push(shown.as_deref().unwrap_or(whole))?;
        push("</a>")?;
    }
    push(&escaped[last..])?;
    Some(out)
}

/// Python's `\b` at byte `i` of `s`: one of the characters on either
/// side is a [`py_word`] character and the other is not (or is the end).
fn py_word_boundary(s: &str, i: usize) -> bool {
    let before = s[..i].chars().next_back().is_some_and(py_word);
    let after = s[i..].chars().next().is_some_and(py_word);
    before != after
}

/// Python's `\w` (of a `str` pattern): a letter, a number (`str.isalnum`)
/// or `_`.
pub(crate) fn py_word(c: char) -> bool {
    static WORD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let word = WORD.get_or_init(|| {
        regex::Regex::new(r"\A[\p{L}\p{N}_]\z")
            .unwrap_or_else(|e| unreachable!("the class compiles: {e}"))
    });
    word.is_match(c.encode_utf8(&mut [0; 4]))
}

/// The length of [`push_escaped`]'s text of `s`, counted without building
/// it.
fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'<' | b'>' => 4,
            b'&' => 5,
            b'"' | b'\'' => 6,
            _ => 1,
        })
        .sum()
}

/// `linkify(shorten=True)`'s clipping of a URL longer than 30 characters
/// (lengths in characters, as Python counts): the host and the start of
/// the path, then `...`; `None` when the URL stays as it is.
fn shorten_url(url: &str, proto: Option<&str>, slashes: &str) -> Option<String> {
    const MAX_LEN: usize = 30;
    let chars: Vec<char> = url.chars().collect();
    if chars.len() <= MAX_LEN {
        return None;
    }
    let proto_len = proto.map_or(0, |p| p.chars().count() + 1 + slashes.chars().count());
    let rest: String = chars[proto_len.min(chars.len())..].iter().collect();
    let parts: Vec<&str> = rest.split('/').collect();
    let mut clipped: Vec<char> = chars.clone();
    if parts.len() > 1 {
        let first: String = parts[1].chars().take(8).collect();
        let first = first.split('?').next().unwrap_or("");
        let first = first.split('.').next().unwrap_or("");
        let head: String = chars[..proto_len.min(chars.len())].iter().collect();
        clipped = format!("{head}{}/{first}", parts[0]).chars().collect();
    }
    // `len(url) > max_len * 1.5`: 45 characters.
    if clipped.len() * 2 > MAX_LEN * 3 {
        clipped.truncate(MAX_LEN);
    }
    if clipped == chars {
        return None;
    }
    if let Some(amp) = clipped.iter().rposition(|&c| c == '&') {
        if amp > MAX_LEN - 5 {
            clipped.truncate(amp);
        }
    }
    clipped.extend("...".chars());
    if clipped.len() >= chars.len() {
        None
    } else {
        Some(clipped.into_iter().collect())
    }
}

/// Tornado's `json_encode`: the JSON of `val`, with `</` written `<\/` so
/// that it cannot end a `<script>`, in Python's `json.dumps` text byte for
/// byte ([`PythonJson`]).
///
/// `None` as soon as the text would be over `max` bytes: it is written
/// into a buffer that refuses to grow past `max`.
fn json_encode(val: Val<'_>, max: usize) -> Option<String> {
    // Neither can fail but for the bound: a `&str`, or a `Value` (whose
    // keys are strings).
    match val {
        Val::Str(s) => python_json_within(s, max),
        Val::Json(v) => python_json_within(v, max),
    }
    .ok()
    .flatten()
}

/// [`json_encode`] of any serializable value; `Err` when it does not
/// serialize (a map with non-string keys, a failing `Serialize`).
pub(crate) fn python_json(value: &(impl Serialize + ?Sized)) -> Result<String, serde_json::Error> {
    python_json_within(value, usize::MAX).map(Option::unwrap_or_default)
}

/// [`python_json`], `Ok(None)` as soon as the text would be over `max`
/// bytes (nothing past `max` is ever held).
fn python_json_within(
    value: &(impl Serialize + ?Sized),
    max: usize,
) -> Result<Option<String>, serde_json::Error> {
    let mut out = BoundedBuf {
        buf: Vec::new(),
        max,
        over: false,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJson);
    match value.serialize(&mut ser) {
        Err(_) if out.over => Ok(None),
        // Only ASCII is written.
        result => result.map(|()| String::from_utf8(out.buf).ok()),
    }
}

/// A byte buffer that refuses a write that would take it over `max`.
struct BoundedBuf {
    buf: Vec<u8>,
    max: usize,
    /// A write was refused.
    over: bool,
}

impl io::Write for BoundedBuf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > self.max - self.buf.len() {
            self.over = true;
            return Err(io::Error::other("over the bound"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Python's `json.dumps` defaults, so that a template renders what
/// Tornado's does: `", "` between items and `": "` after keys,
/// `ensure_ascii` (everything outside space..`~` as `\uXXXX`, UTF-16
/// surrogate pairs above U+FFFF, lowercase hex) and floats as Python's
/// `repr` writes them (`1e+16`, `1e-05`, `100.0`).
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        // The same separator as between array items.
        self.begin_array_value(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json escapes `"`, `\` and controls itself, as Python does;
        // the rest of Python's `ensure_ascii` is here, and Tornado's `</`
        // as `<\/` (serde_json splits a string into fragments only at the
        // characters it escapes, so a `</` is never split).
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c == '/' && i > 0 && fragment.as_bytes()[i - 1] == b'<' {
                w.write_all(&fragment.as_bytes()[start..i])?;
                w.write_all(b"\\/")?;
                start = i + 1;
                continue;
            }
            if (' '..='~').contains(&c) {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }
}

/// Appends a number as Python's `str` prints it, so `{{ x }}` gives
/// Tornado's text: integers as they are (written in place, no
/// allocation), floats as [`python_float_repr`] (`1e-05`, `1e+16`,
/// `100.0`).
fn push_number(out: &mut String, n: &serde_json::Number) {
    match n.as_f64() {
        Some(f) if n.is_f64() => out.push_str(&python_float_repr(f)),
        _ => {
            let _ = write!(out, "{n}");
        }
    }
}

/// Python's `repr` of a finite float: the shortest digits that read back
/// as `x` (nearest to it, ties to even, as Python picks), in positional notation with at
/// least one decimal when the decimal exponent is from -4 to 15, and as
/// `d.ddde+XX` / `de-XX` (two exponent digits at least) otherwise.
fn python_float_repr(x: f64) -> String {
    if !x.is_finite() {
        // Not in a `serde_json::Value`; Python writes these, JSON has none.
        return if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned();
    }
    // The shortest digits that read back as `x`; then that many digits
    // rounded from the exact value, ties to even, as Python picks among
    // equally short candidates (1059438285926254.25 is `...254.2` there,
    // where the shortest-digits search gives `...254.3`).
    let shortest = format!("{:e}", x.abs());
    let n = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let sci = format!("{:.*e}", n.saturating_sub(1), x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{s}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.unsigned_abs())
    }
}

/// Tornado's `url_escape(s)` (`plus=True`), Python's `quote_plus`: a space
/// is `+`; ASCII letters, digits and `_.-~` are kept; every other byte of
/// the UTF-8 text is `%XX` (uppercase hex).
pub(crate) fn url_escape(s: &str) -> Cow<'_, str> {
    url_escape_with(s, true)
}

/// Tornado's `url_escape(s, plus)`: Python's `quote_plus` (`plus`, a
/// space is `+` and `/` is escaped) or `quote` (a space is `%20`, `/`
/// kept) of the UTF-8 bytes.
pub(crate) fn url_escape_with(s: &str, plus: bool) -> Cow<'_, str> {
    if s.bytes().all(|b| url_kept(b, plus)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(url_escape_bytes(s.as_bytes(), plus))
}

/// [`url_escape_with`] of bytes that need not be UTF-8 (Python's
/// `quote_plus` or `quote` of `bytes`), always a new string.
pub(crate) fn url_escape_bytes(bytes: &[u8], plus: bool) -> String {
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    for &b in bytes {
        if url_kept(b, plus) {
            out.push(char::from(b));
        } else if b == b' ' && plus {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The bytes `quote_plus` (`plus`) or `quote` writes as they are.
fn url_kept(b: u8, plus: bool) -> bool {
    b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || (!plus && b == b'/')
}

/// Tornado's `squeeze`: `re.sub(r"[\x00-\x20]+", " ", s).strip()`. Python's
/// `strip` removes the Unicode whitespace `str::trim` does (`U+00A0`,
/// `U+3000`, ...), which stays inside the text.
pub(crate) fn squeeze(s: &str) -> String {
    let out = collapse(s, |c| c <= '\x20');
    let trimmed = out.trim();
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_string()
    }
}

/// What `{{ }}` writes: [`crate::http::html_escape`], appended.
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    crate::http::response::push_html_escaped(out, s);
}

/// How a run of nodes ended: `{% break %}` and `{% continue %}` end it
/// early, up to their loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Break,
    Continue,
}

struct Renderer<'a> {
    root: Root<'a>,
    /// For `{{ static_url(..) }}` and `xsrf_form_html()`: `None`
    /// outside a request.
    request: Option<Namespace<'a>>,
    /// Loop and `set` bindings, innermost last.
    locals: Vec<(&'a str, Val<'a>)>,
    /// Every name a `set` or `for` of the render binds (the template's
    /// `locals`, or an applied body's): read before it is bound, it is no
    /// render value's.
    bound_names: Cow<'a, std::collections::HashSet<String>>,
    blocks: &'a HashMap<String, BlockDef>,
    /// `origin[floor..]`: the template whose nodes are being rendered, as
    /// an [`Origin`] (includes push onto it; a block's body starts its own
    /// at `floor`).
    origin: Vec<&'a str>,
    floor: usize,
    out: String,
    /// Values computed by expressions and bound by `set` or `for`.
    arena: &'a typed_arena::Arena<Value>,
    /// Their weight so far (see [`keep`](Self::keep)).
    kept: std::cell::Cell<usize>,
    /// Steps left before [`TemplateError::TooLarge`].
    steps: u64,
    /// Steps expressions spent (a comprehension's iterations) since the
    /// last [`tick`](Self::tick), at most `steps`.
    spent: std::cell::Cell<u64>,
    max_steps: u64,
    max_output: usize,
    /// The process's default locale, for a render without a request's.
    default_locale: std::cell::OnceCell<crate::locale::Locale>,
    /// `locale` as a value (`code`, `name`, `rtl`), made when first read.
    locale_value: std::cell::OnceCell<&'a Value>,
    /// `handler` as a value ([`handler_value`]), made when first read.
    handler_value: std::cell::OnceCell<&'a Value>,
    /// The template a `{% module Template(..) %}` renders here, whose
    /// `set_resources(..)` this render takes.
    module: Option<&'a str>,
    /// The depth of the render this one runs inside (a module's), which
    /// counts against [`MAX_RENDER_DEPTH`] with this one's.
    outer_depth: usize,
    /// The depth of the node being rendered.
    depth: usize,
}

thread_local! {
    /// The depth a render started now runs at: more than 0 inside a
    /// `{% module %}`'s render, which renders another template (or calls a
    /// UI module that does) on the same stack. See [`Renderer::nested`].
    static OUTER_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Puts [`OUTER_DEPTH`] back when a nested render ends, even by a panic
/// (a handler's may be caught, and the thread serve on).
struct OuterDepth(usize);

impl Drop for OuterDepth {
    fn drop(&mut self) {
        OUTER_DEPTH.set(self.0);
    }
}

/// Computed values a render keeps at most (an array or object weighs one
/// per item, a string one per 64 bytes): a bound on the arena.
const MAX_COMPUTED: usize = 4 << 20;

impl<'a> expr::Env<'a> for Renderer<'a> {
    fn lookup(&self, path: &'a str) -> Result<Val<'a>, TemplateError> {
        Renderer::lookup(self, path)
    }

    fn keep(&self, v: expr::V<'a>) -> Result<Val<'a>, TemplateError> {
        Renderer::keep(self, v)
    }

    fn charge(&self, n: u64) -> Result<(), TemplateError> {
        let spent = self.spent.get() + n;
        if spent > self.steps {
            return Err(self.too_many_steps());
        }
        self.spent.set(spent);
        Ok(())
    }

    fn request_method(
        &self,
        base: Val<'_>,
        method: expr::Method,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Option<Result<Value, TemplateError>> {
        let Val::Json(base) = base else {
            return None;
        };
        let request = self.request?.request_value()?;
        let handler = self.handler_value.get().copied();
        // The render's own value (`handler.request` is a value of its
        // own), or a copy of it (an item of a list or dict display, of a
        // comprehension's result): the same content. A copy is compared
        // in full, a step per value in it, as a copy into a comprehension
        // is charged.
        let is = |own: &[&Value]| -> Result<bool, TemplateError> {
            if own.iter().any(|v| std::ptr::eq(base, *v)) {
                return Ok(true);
            }
            let (Value::Object(b), Value::Object(o)) = (base, own[0]) else {
                return Ok(false);
            };
            if b.len() != o.len() {
                return Ok(false);
            }
            expr::Env::charge(self, expr::weight(base)? as u64)?;
            Ok(base == own[0])
        };
        if method == expr::Method::FullUrl {
            let own: &[&Value] = match handler {
                Some(h) => &[request, &h["request"]],
                None => &[request],
            };
            return match is(own) {
                Ok(on_request) => on_request.then(|| Ok(Value::String(full_url(base)))),
                Err(e) => Some(Err(e)),
            };
        }
        match is(&[handler?]) {
            Ok(true) => Some(handler_method(&base["request"], method, args, kwargs)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn apply(
        &self,
        func: Func,
        v: Val<'_>,
        options: &expr::Options,
    ) -> Result<String, TemplateError> {
        self.apply_func(func, v, options)
    }

    fn max_len(&self) -> usize {
        self.max_output
    }

    fn xsrf_form_html(&self) -> Result<String, TemplateError> {
        self.request
            .and_then(|r| r.xsrf_form_html())
            .ok_or_else(|| TemplateError::NeedsRequest("xsrf_form_html".into()))
    }

    fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, TemplateError> {
        let request = self
            .request
            .filter(|r| r.has_routes())
            .ok_or_else(|| TemplateError::NeedsRequest("reverse_url".into()))?;
        request.reverse_url(name, args).ok_or_else(|| {
            TemplateError::Type(format!(
                "reverse_url: {name:?} not found in named urls, or its pattern cannot be \
                 reversed, or {} arguments do not fit its groups",
                args.len()
            ))
        })
    }

    fn ui_method(
        &self,
        name: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Option<Value>, TemplateError> {
        if let (Some(template), "set_resources") = (self.module, name) {
            if !args.is_empty() {
                return Err(TemplateError::Type(
                    "set_resources() takes keyword arguments only".into(),
                ));
            }
            // Outside a request (Template::render_value) there is no page
            // to put them in.
            if let Some(p) = self.request.and_then(|ns| ns.app_parts()) {
                p.modules
                    .template_module(template, Some(kwargs.clone()))
                    .map_err(TemplateError::Type)?;
            }
            return Ok(Some(Value::String(String::new())));
        }
        let found = self.request.and_then(|ns| {
            let p = ns.app_parts()?;
            p.shared.ui_method(name, p.request, args)
        });
        if found.is_some() && !kwargs.is_empty() {
            return Err(TemplateError::Type(format!(
                "{name}() takes no keyword arguments (a ui_method gets positional ones)"
            )));
        }
        match found {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(why)) => Err(TemplateError::Type(format!("{name}(): {why}"))),
            None => Ok(None),
        }
    }

    fn ui_module(
        &self,
        name: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        let found = self.nested(|| {
            let ns = self.request?;
            let p = ns.app_parts()?;
            let cx = super::ui_module::ModuleContext::new(ns, p.request);
            let result = p.shared.ui_module(p.modules, &cx, name, args, kwargs)?;
            // A module failing after its `render_string` failed with an
            // HTTP status passes that on (see `UiModule::render`).
            Some(result.map_err(|why| {
                cx.take_refused()
                    .unwrap_or_else(|| TemplateError::Type(format!("module {name}: {why}")))
            }))
        });
        match found {
            Some(result) => result,
            None => Err(TemplateError::Type(format!(
                "{name} is no UI module of this template: the built-in ones are Tornado's \
                 (Template, linkify, xsrf_form_html); an application adds its own with \
                 ApplicationBuilder::ui_module"
            ))),
        }
    }

    fn locale(&self) -> &crate::locale::Locale {
        match self.request.and_then(|r| r.locale()) {
            Some(locale) => locale,
            None => self
                .default_locale
                .get_or_init(|| crate::locale::Locale::get_closest(&[])),
        }
    }
}

impl<'a> Renderer<'a> {
    /// A name of Tornado's template namespace that is a value, not a
    /// function: `current_user` (`None` when nobody is logged in),
    /// `request` and `handler`, when the render has a request and the
    /// values do not have the name.
    fn namespace(&self, name: &str) -> Option<Val<'a>> {
        static NONE: Value = Value::Null;
        if let Some(v) = self.request.and_then(|r| r.template_value(name)) {
            return Some(Val::Json(v));
        }
        if name == "locale" {
            return Some(Val::Json(self.locale_json()));
        }
        let request = self.request?;
        match name {
            "current_user" => Some(match request.current_user() {
                Some(user) => Val::Str(user),
                None => Val::Json(&NONE),
            }),
            "request" => request.request_value().map(Val::Json),
            "handler" => {
                let request_value = request.request_value()?;
                let value = *self.handler_value.get_or_init(|| {
                    let value =
                        handler_value(request_value, request.current_user(), self.locale_json());
                    &*self.arena.alloc(value)
                });
                Some(Val::Json(value))
            }
            _ => None,
        }
    }

    /// `locale` as a value, made when first read.
    fn locale_json(&self) -> &'a Value {
        self.locale_value.get_or_init(|| {
            let locale = expr::Env::locale(self);
            &*self.arena.alloc(serde_json::json!({
                "code": locale.code(),
                "name": locale.name(),
                "rtl": locale.rtl(),
            }))
        })
    }

    /// One step of work: fails once the step budget is spent or the output
    /// is over its bound (checked before each node, so at most one node's
    /// output past it).
    fn tick(&mut self) -> Result<(), TemplateError> {
        self.steps = self.steps.saturating_sub(self.spent.take());
        if self.steps == 0 {
            return Err(self.too_many_steps());
        }
        self.steps -= 1;
        self.check_output()
    }

    fn too_many_steps(&self) -> TemplateError {
        TemplateError::TooLarge(format!(
            "rendering took more than {} steps (nodes, loop and comprehension iterations)",
            self.max_steps
        ))
    }

    fn check_output(&self) -> Result<(), TemplateError> {
        if self.out.len() > self.max_output {
            return Err(TemplateError::TooLarge(format!(
                "output over {} bytes",
                self.max_output
            )));
        }
        Ok(())
    }

    fn lookup(&self, path: &'a str) -> Result<Val<'a>, TemplateError> {
        let undefined = || TemplateError::Undefined(path.to_string());
        let mut segs = path.split('.');
        let first = segs.next().unwrap_or_default();
        let val = match self.locals.iter().rev().find(|(n, _)| *n == first) {
            Some((_, v)) => *v,
            // A local of Tornado's compiled template, not bound yet:
            // Python's UnboundLocalError.
            None if !self.bound_names.is_empty() && self.bound_names.contains(first) => {
                return Err(undefined())
            }
            None => match self.root {
                Root::Pairs(vars) => {
                    if let Some((_, v)) = vars.iter().find(|(n, _)| *n == path) {
                        return Ok(Val::Str(v));
                    }
                    // A pair is a string, no field is found in it; else
                    // the namespace's value, and its field
                    // (`request.path`).
                    if vars.iter().any(|(n, _)| *n == first) {
                        return Err(undefined());
                    }
                    self.namespace(first).ok_or_else(undefined)?
                }
                Root::Object(map) => match map.get(first) {
                    Some(v) => Val::Json(v),
                    None => self.namespace(first).ok_or_else(undefined)?,
                },
            },
        };
        walk(val, segs, path)
    }

    fn print(&mut self, val: Val<'_>, escape: bool) {
        let text = match val {
            Val::Str(s) => s,
            Val::Json(Value::String(s)) => s,
            // Nothing to escape in these: written in place.
            Val::Json(v @ (Value::Null | Value::Bool(_) | Value::Number(_))) => {
                push_python_repr(&mut self.out, v);
                return;
            }
            Val::Json(v) => {
                let mut text = String::new();
                push_python_repr(&mut text, v);
                if escape {
                    push_escaped(&mut self.out, &text);
                } else {
                    self.out.push_str(&text);
                }
                return;
            }
        };
        if escape {
            push_escaped(&mut self.out, text);
        } else {
            self.out.push_str(text);
        }
    }

    /// The body of the first branch whose condition holds, else
    /// `otherwise`. Not inlined, as [`var`](Self::var).
    #[inline(never)]
    fn choose(
        &self,
        branches: &'a [(Cond, Vec<Node>)],
        otherwise: &'a [Node],
    ) -> Result<&'a [Node], TemplateError> {
        for (cond, body) in branches {
            let holds = match &cond.test {
                // The common `{% if path %}`, without the evaluator.
                expr::Exp::Path(p) => self.lookup(p).map(Val::truthy),
                test => test.eval(self).map(|v| v.view().truthy()),
            }
            .map_err(|e| self.locate(cond.line, e))?;
            if holds {
                return Ok(body);
            }
        }
        Ok(otherwise)
    }

    /// `{% apply func %}`: the body rendered on its own, then `func` of its
    /// text appended unescaped, as Tornado's `_tt_append(func(body()))`.
    /// Tornado compiles the body into a nested function: the names a `set`
    /// or `for` in it binds are its own locals (unbound there until bound,
    /// gone after it), and the template's other names are seen through it.
    /// Not inlined, as [`var`](Self::var).
    #[inline(never)]
    fn apply(&mut self, func: Func, body: &'a [Node], depth: usize) -> Result<(), TemplateError> {
        let mut inner = std::collections::HashSet::new();
        let mut walked = std::collections::HashSet::new();
        local_names(body, self.blocks, &mut walked, &mut inner);
        // The walk is work of each showing (an apply in a loop walks its
        // body each time, also the branches it will not take): a step per
        // body walked.
        self.steps = self.steps.saturating_sub(walked.len() as u64);
        self.tick()?;
        let outer_locals = self.locals.clone();
        self.locals.retain(|(name, _)| !inner.contains(name));
        let inner_names = inner.iter().map(|n| n.to_string()).collect();
        let outer_bound = std::mem::replace(&mut self.bound_names, Cow::Owned(inner_names));
        let outer_out = std::mem::take(&mut self.out);
        // No `break` leaves an applied body (the parser sees to it).
        let result = self.nodes(body, depth);
        let text = std::mem::replace(&mut self.out, outer_out);
        self.locals = outer_locals;
        self.bound_names = outer_bound;
        result?;
        let applied = self.apply_func(func, Val::Str(&text), &expr::Options::default())?;
        self.out.push_str(&applied);
        self.check_output()
    }

    /// A `{% set %}` on line `line`. Not inlined, as [`var`](Self::var).
    #[inline(never)]
    fn set(
        &mut self,
        name: &'a str,
        value: &'a SetValue,
        line: u32,
        unpack: Option<&'a [Target]>,
    ) -> Result<(), TemplateError> {
        let val = match value {
            SetValue::Path(path) => self.lookup(path),
            SetValue::Literal(v) => Ok(Val::Json(v)),
            SetValue::Exp(e) => e.eval(&*self).and_then(|v| self.keep(v)),
        }
        .map_err(|e| self.locate(line, e))?;
        let Some(targets) = unpack else {
            self.assign(name, val);
            return Ok(());
        };
        let mut bound = Vec::new();
        match val {
            Val::Json(v) if unpack_targets(targets, v, &mut bound) => {}
            _ => {
                let e =
                    TemplateError::Type(format!("cannot unpack {} into {name}, ..", val.kind()));
                return Err(self.locate(line, e));
            }
        }
        for (n, v) in bound {
            self.assign(n, v);
        }
        Ok(())
    }

    /// A `{{ }}` or `{% raw %}` on line `line`. Not inlined: its locals
    /// would grow the frame of [`nodes`](Self::nodes), which recurses once
    /// per nesting level.
    #[inline(never)]
    fn var(&mut self, expr: &'a Expr, escape: bool, line: u32) -> Result<(), TemplateError> {
        match expr {
            Expr::Path(path) => {
                let val = self.lookup(path).map_err(|e| self.locate(line, e))?;
                self.print(val, escape);
                Ok(())
            }
            Expr::Exp(e) => {
                let v = e.eval(&*self).map_err(|err| self.locate(line, err))?;
                self.print(v.view(), escape);
                // A function's output can be several times its argument's:
                // bounded at once.
                self.check_output()
            }
        }
    }

    /// `{% module Template(name, **kwargs) %}`: Tornado's `TemplateModule`
    /// renders `name` with `render_string(name, **kwargs)`, so the
    /// template sees the keyword arguments and the request's namespace, not
    /// this template's values. Its output counts against this render's
    /// steps and output bound, and goes out unescaped. Not inlined into
    /// [`nodes`](Self::nodes), whose frame every level of nesting repeats.
    #[inline(never)]
    fn module(&mut self, node: &'a Node) -> Result<(), TemplateError> {
        let Node::Module {
            name,
            loaded,
            kwargs,
            line,
        } = node
        else {
            unreachable!("called for a module node");
        };
        let line = *line;
        let in_module = |error| TemplateError::In {
            name: name.trim_start_matches('/').to_string(),
            error: Box::new(error),
        };
        // Loaded with the page, or else now, through the application's
        // loader and cache (Tornado's render_string); the render depth
        // bounds a runaway recursion.
        let template = match (loaded, self.request.and_then(|ns| ns.app_parts())) {
            (Ok(t), _) => Ok(t.clone()),
            (Err(_), Some(p)) => p.shared.template(name.trim_start_matches('/')),
            (Err(e), None) => Err((**e).clone()),
        }
        .map_err(|error| self.locate(line, in_module(error)))?;
        let mut values = Map::with_capacity(kwargs.len());
        for (key, e) in kwargs {
            let v = e.eval(&*self).map_err(|err| self.locate(line, err))?;
            values.insert(key.clone(), expr::to_value(v.view()));
        }
        let Val::Json(Value::Object(values)) = self.keep(expr::V::Own(Value::Object(values)))?
        else {
            unreachable!("an object was kept");
        };
        // Tornado makes the module (first in the page's order of modules)
        // before its template runs.
        if let Some(p) = self.request.and_then(|ns| ns.app_parts()) {
            p.modules
                .template_module(name, None)
                .map_err(|why| self.locate(line, TemplateError::Type(why)))?;
        }
        let room = self.max_output.saturating_sub(self.out.len());
        self.steps = self.steps.saturating_sub(self.spent.take());
        let (text, steps_left) = self
            .nested(|| {
                template.render_nested(
                    Root::Object(values),
                    self.request,
                    self.steps,
                    room,
                    Some(name),
                )
            })
            .map_err(|error| self.locate(line, in_module(error)))?;
        self.steps = steps_left;
        self.out.push_str(&text);
        self.check_output()
    }

    /// Runs `f`, a render inside this one (a module's), one level below
    /// the node being rendered: the depth of every render on the stack
    /// counts against [`MAX_RENDER_DEPTH`], so that modules rendering
    /// templates that use modules cannot run the stack out.
    fn nested<T>(&self, f: impl FnOnce() -> T) -> T {
        let _restore = OuterDepth(OUTER_DEPTH.replace(self.outer_depth + self.depth + 1));
        f()
    }

    /// A computed value kept for the rest of the render (a `{% set %}` or
    /// a loop over it binds it): in the render's arena, counted against
    /// [`MAX_COMPUTED`].
    fn keep(&self, v: expr::V<'a>) -> Result<Val<'a>, TemplateError> {
        match v {
            expr::V::Ref(val) => Ok(val),
            expr::V::Own(value) => {
                let weight = 1 + match &value {
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::String(s) => s.len() / 64,
                    _ => 0,
                };
                let kept = self.kept.get() + weight;
                if kept > MAX_COMPUTED {
                    return Err(TemplateError::TooLarge(format!(
                        "more than {MAX_COMPUTED} computed values kept by set and for"
                    )));
                }
                self.kept.set(kept);
                Ok(Val::Json(self.arena.alloc(value)))
            }
        }
    }

    /// `func(val)`, the string Tornado's function returns.
    fn apply_func(
        &self,
        func: Func,
        val: Val<'_>,
        options: &expr::Options,
    ) -> Result<String, TemplateError> {
        let max = self.max_output;
        let too_large = || TemplateError::TooLarge(format!("a value over {max} bytes"));
        // The worst growth of a string's bytes, checked before the work is
        // done: url_escape writes a byte as `%XX` (×3), xhtml_escape `"` as
        // `&quot;` (×6), json_encode a byte as `\u00XX` (×6, and a
        // 4-byte character as two). When the worst case is over the bound
        // the exact length is counted, without building the string.
        let text = match val {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(s.as_str()),
            Val::Json(_) => None,
        };
        if let Some(text) = text {
            let n = text.len();
            match func {
                Func::UrlEscape if n.saturating_mul(3) > max => {
                    let keep = |b: &u8| {
                        b.is_ascii_alphanumeric()
                            || b"_.-~".contains(b)
                            || (!options.plus && *b == b'/')
                            || (options.plus && *b == b' ')
                    };
                    let len = text
                        .bytes()
                        .map(|b| if keep(&b) { 1 } else { 3 })
                        .sum::<usize>();
                    if len > max {
                        return Err(too_large());
                    }
                }
                Func::XhtmlEscape if n.saturating_mul(6) > max => {
                    let len = text
                        .bytes()
                        .map(|b| match b {
                            b'<' | b'>' => 4,
                            b'&' => 5,
                            b'"' | b'\'' => 6,
                            _ => 1,
                        })
                        .sum::<usize>();
                    if len > max {
                        return Err(too_large());
                    }
                }
                // Output never shorter than the input (json_encode and
                // linkify also stop as soon as they are over the bound).
                Func::JsonEncode | Func::Linkify | Func::StaticUrl if n > max => {
                    return Err(too_large())
                }
                _ => {}
            }
        }
        Ok(match func {
            Func::JsonEncode => json_encode(val, max).ok_or_else(too_large)?,
            Func::StaticUrl => {
                let request = self
                    .request
                    .ok_or_else(|| TemplateError::NeedsRequest("static_url".into()))?;
                let url = if options.include_version {
                    request.static_url(&val.text())?
                } else {
                    request.unversioned_static_url(&val.text())
                };
                if !options.include_host {
                    return Ok(url);
                }
                // Tornado's `request.protocol + "://" + request.host`,
                // before whatever the URL is (an absolute prefix too).
                let req = request.request_value().ok_or_else(|| {
                    TemplateError::Type(
                        "static_url(include_host=True) needs the request's host: render with \
                         RequestContext::render, render_with or render_string"
                            .into(),
                    )
                })?;
                let field = |name: &str| req[name].as_str().unwrap_or_default().to_owned();
                format!("{}://{}{url}", field("protocol"), field("host"))
            }
            Func::UrlEscape => url_escape_with(&val.text(), options.plus).into_owned(),
            Func::XhtmlEscape => {
                let mut s = String::new();
                push_escaped(&mut s, &val.text());
                s
            }
            Func::Squeeze => squeeze(&val.text()),
            Func::Linkify => linkify_with(&val.text(), options, max).ok_or_else(too_large)?,
        })
    }

    /// `error`, of the tag on line `line` of the nodes being rendered.
    fn locate(&self, line: u32, error: TemplateError) -> TemplateError {
        let mut error = TemplateError::At {
            line,
            error: Box::new(error),
        };
        for name in self.origin[self.floor..].iter().rev() {
            error = TemplateError::In {
                name: (*name).to_string(),
                error: Box::new(error),
            };
        }
        error
    }

    /// Renders `body` with `var` (and the `more` names) bound. The
    /// binding stays after the loop, as a Python loop variable does.
    fn iteration(
        &mut self,
        var: &'a str,
        value: Val<'a>,
        more: &[(&'a str, Val<'a>)],
        body: &'a [Node],
        depth: usize,
    ) -> Result<Flow, TemplateError> {
        self.tick()?;
        self.assign(var, value);
        for (name, val) in more {
            self.assign(name, *val);
        }
        self.nodes(body, depth)
    }

    /// Binds `name` for the rest of the render. Tornado compiles a template
    /// (with its includes and blocks) into one Python function, so a
    /// `{% set %}` or a loop variable is a local of that function: it
    /// outlives the block it was bound in, and binding it again replaces
    /// it.
    fn assign(&mut self, name: &'a str, val: Val<'a>) {
        match self.locals.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = val,
            None => self.locals.push((name, val)),
        }
    }

    /// A `{% while %}`: its body while the condition holds (each test a
    /// step, so a loop that never ends stops at the step budget), then its
    /// `{% else %}` part unless it broke.
    fn run_while(&mut self, w: &'a WhileLoop, depth: usize) -> Result<Flow, TemplateError> {
        loop {
            self.tick()?;
            let holds = w
                .cond
                .test
                .eval(self)
                .map(|v| v.view().truthy())
                .map_err(|e| self.locate(w.cond.line, e))?;
            if !holds {
                return self.nodes(&w.otherwise, depth);
            }
            if self.nodes(&w.body, depth)? == Flow::Break {
                return Ok(Flow::Next);
            }
        }
    }

    /// A `{% try %}`, as Python runs the statement: what the body wrote
    /// before an error stays (Tornado appends to its buffer as it goes);
    /// the `except` part runs on an error of the render, the `else` part
    /// when the body finished without error, `break` or `continue`, and
    /// the `finally` part in every case, its own error or flow winning.
    /// The limits of the render ([`TemplateError::TooLarge`],
    /// [`TemplateError::TooDeep`]) are not caught.
    fn run_try(&mut self, t: &'a TryBlock, depth: usize) -> Result<Flow, TemplateError> {
        let (mark, floor) = (self.origin.len(), self.floor);
        let outcome = match self.nodes(&t.body, depth) {
            Ok(Flow::Next) => self.nodes(&t.otherwise, depth),
            Ok(flow) => Ok(flow),
            Err(e) => {
                // An error in an include or a block left their names.
                self.origin.truncate(mark);
                self.floor = floor;
                let limit = matches!(
                    e.innermost(),
                    TemplateError::TooLarge(_) | TemplateError::TooDeep(_)
                );
                match &t.except {
                    Some(handler) if !limit => self.nodes(handler, depth),
                    _ => Err(e),
                }
            }
        };
        if t.finally.is_empty() {
            return outcome;
        }
        match self.nodes(&t.finally, depth)? {
            Flow::Next => outcome,
            // Python: a `break` or `continue` in `finally` discards a
            // pending error.
            flow => Ok(flow),
        }
    }

    /// A `{% for %}`: its body for each element (until a `{% break %}`),
    /// then its `{% else %}` part unless it broke. What the `else` part
    /// ends with goes to the enclosing loop.
    fn each(&mut self, l: &'a Loop, depth: usize) -> Result<Flow, TemplateError> {
        let (var, body) = (l.var.as_str(), &l.body[..]);
        let val = self.iterable(&l.iter).map_err(|e| self.locate(l.line, e))?;
        // The common loop here, the others in a frame of their own: this
        // frame is repeated at each level of nesting, and a small one lets
        // the deepest render fit a thread's stack (debug builds too).
        let broke = match (val, l.source, l.rest.first()) {
            _ if l.nested.is_some() => self.each_nested(l, val, depth)?,
            (Val::Json(Value::Array(items)), Source::Plain, None) => 'run: {
                for item in items {
                    if self.iteration(var, Val::Json(item), &[], body, depth)? == Flow::Break {
                        break 'run true;
                    }
                }
                false
            }
            _ => self.each_other(l, val, depth)?,
        };
        if broke {
            Ok(Flow::Next)
        } else {
            self.nodes(&l.otherwise, depth)
        }
    }

    /// [`each`](Self::each)'s other loops: a string's characters, unpacked
    /// items, an object's keys, values or items; whether it broke. Each in
    /// a small frame, its errors out of it.
    #[inline(never)]
    fn each_other(
        &mut self,
        l: &'a Loop,
        val: Val<'a>,
        depth: usize,
    ) -> Result<bool, TemplateError> {
        let (var, body) = (l.var.as_str(), &l.body[..]);
        match (val, l.source, l.rest.first()) {
            // Python iterates a string by its characters, each a string.
            (_, Source::Plain, None) if val.as_str().is_some() => {
                let s = val.as_str().unwrap_or_default();
                for (i, c) in s.char_indices() {
                    let ch = Val::Str(&s[i..i + c.len_utf8()]);
                    if self.iteration(var, ch, &[], body, depth)? == Flow::Break {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            (Val::Json(Value::Array(items)), Source::Plain, Some(_)) => {
                self.each_unpacked(l, items, depth)
            }
            (Val::Json(Value::Object(map)), source, b) => {
                let b = match (source, b) {
                    (Source::Plain | Source::Keys | Source::Values, None) => None,
                    (Source::Items, Some(b)) => Some(b.as_str()),
                    _ => return Err(self.loop_error(l, val)),
                };
                for (key, value) in map {
                    let flow = match (source, b) {
                        (Source::Values, _) => {
                            self.iteration(var, Val::Json(value), &[], body, depth)?
                        }
                        (_, Some(b)) => {
                            let more = [(b, Val::Json(value))];
                            self.iteration(var, Val::Str(key), &more, body, depth)?
                        }
                        _ => self.iteration(var, Val::Str(key), &[], body, depth)?,
                    };
                    if flow == Flow::Break {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => Err(self.loop_error(l, val)),
        }
    }

    /// `{% for a, b in xs %}`: each item of `xs` unpacked; whether it broke.
    #[inline(never)]
    fn each_unpacked(
        &mut self,
        l: &'a Loop,
        items: &'a [Value],
        depth: usize,
    ) -> Result<bool, TemplateError> {
        let (var, body) = (l.var.as_str(), &l.body[..]);
        let mut more = Vec::with_capacity(l.rest.len());
        for item in items {
            let unpacked = match item {
                Value::Array(tuple) => tuple
                    .split_first()
                    .filter(|(_, ys)| ys.len() == l.rest.len()),
                _ => None,
            };
            let Some((x, ys)) = unpacked else {
                return Err(self.unpack_error(l, item));
            };
            more.clear();
            more.extend(
                l.rest
                    .iter()
                    .map(String::as_str)
                    .zip(ys.iter().map(Val::Json)),
            );
            if self.iteration(var, Val::Json(x), &more, body, depth)? == Flow::Break {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `{% for a, (b, c) in xs %}`: each item of the array `xs` unpacked
    /// as the targets nest; whether it broke.
    #[inline(never)]
    fn each_nested(
        &mut self,
        l: &'a Loop,
        val: Val<'a>,
        depth: usize,
    ) -> Result<bool, TemplateError> {
        let (Val::Json(Value::Array(items)), Some(targets)) = (val, &l.nested) else {
            return Err(self.loop_error(l, val));
        };
        let mut bound = Vec::with_capacity(l.rest.len() + 1);
        for item in items {
            bound.clear();
            if !unpack_targets(targets, item, &mut bound) {
                return Err(self.unpack_error(l, item));
            }
            let (var, v) = bound[0];
            if self.iteration(var, v, &bound[1..], &l.body, depth)? == Flow::Break {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Why `item` of a `{% for a, b in xs %}` does not unpack.
    #[cold]
    #[inline(never)]
    fn unpack_error(&self, l: &Loop, item: &Value) -> TemplateError {
        let (var, path) = (l.var.as_str(), l.path.as_str());
        let names = format!("{var}, {}", l.rest.join(", "));
        let e = match item {
            Value::Array(tuple) => TemplateError::Type(format!(
                "cannot unpack an array of {} into {names} (in {path:?})",
                tuple.len(),
            )),
            _ => TemplateError::Type(format!(
                "cannot unpack an element of {path:?} into {names}: it is {}",
                kind(item)
            )),
        };
        self.locate(l.line, e)
    }

    /// Why a `{% for %}` cannot loop over `val`.
    #[cold]
    #[inline(never)]
    fn loop_error(&self, l: &Loop, val: Val<'_>) -> TemplateError {
        let (var, path) = (l.var.as_str(), l.path.as_str());
        let e = match (val, l.source, l.rest.first()) {
            (Val::Json(Value::Object(_)), Source::Plain, Some(_)) => TemplateError::Type(format!(
                "cannot unpack the keys of {path:?} into {var}, {}: use {path}.items()",
                l.rest.join(", ")
            )),
            _ => TemplateError::Type(format!(
                "cannot loop over {path:?}: it is {}{}",
                val.kind(),
                match l.source {
                    Source::Plain => "",
                    _ => " (items(), keys() and values() need an object)",
                }
            )),
        };
        self.locate(l.line, e)
    }

    /// The value a loop goes over: `range` and `enumerate` built as arrays
    /// (of integers; of `[index, item]` pairs), kept for the loop. Not
    /// inlined, as [`var`](Self::var).
    #[inline(never)]
    fn iterable(&self, iter: &'a Iter) -> Result<Val<'a>, TemplateError> {
        let built = match iter {
            Iter::Path(p) => return self.lookup(p),
            Iter::Exp(e) => return self.keep(e.eval(self)?),
            Iter::Range(args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(self))
                    .collect::<Result<Vec<_>, _>>()?;
                let views: Vec<Val<'_>> = vals.iter().map(expr::V::view).collect();
                expr::range(&views, MAX_COMPUTED)?
            }
            Iter::Enumerate(e) => {
                let v = e.eval(self)?;
                let pair = |i: usize, item: Value| Value::Array(vec![Value::from(i), item]);
                match v.view() {
                    Val::Json(Value::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| pair(i, x.clone()))
                        .collect(),
                    Val::Json(Value::Object(map)) => map
                        .keys()
                        .enumerate()
                        .map(|(i, k)| pair(i, Value::String(k.clone())))
                        .collect(),
                    // A string's characters.
                    other => {
                        let Some(s) = other.as_str() else {
                            return Err(TemplateError::Type(format!(
                                "enumerate() of {}",
                                other.kind()
                            )));
                        };
                        s.chars()
                            .enumerate()
                            .map(|(i, c)| pair(i, Value::String(c.into())))
                            .collect()
                    }
                }
            }
        };
        self.keep(expr::V::Own(Value::Array(built)))
    }

    /// An `{% include %}`, a `{% module Template(..) %}` or a
    /// `{% block %}`: another template's nodes, or the block's definition.
    /// Out of [`nodes`](Self::nodes), whose frame every level of nesting
    /// repeats (a debug build gives each arm's locals their own slots).
    #[inline(never)]
    fn enter(&mut self, node: &'a Node, depth: usize) -> Result<(), TemplateError> {
        match node {
            Node::Include { name, template } => {
                self.origin.push(name);
                let result = self.nodes(&template.nodes, depth);
                self.origin.pop();
                result.map(drop)
            }
            Node::Module { .. } => self.module(node),
            Node::Block { name, body } => match self.blocks.get(name) {
                Some(def) => {
                    let (mark, floor) = (self.origin.len(), self.floor);
                    self.floor = mark;
                    self.origin.extend(def.origin.iter().map(String::as_str));
                    let result = self.nodes(&def.body, depth);
                    self.origin.truncate(mark);
                    self.floor = floor;
                    result.map(drop)
                }
                None => self.nodes(body, depth).map(drop),
            },
            _ => unreachable!("enter is called for includes, modules and blocks"),
        }
    }

    /// Renders `nodes`; stops at a `{% break %}` or `{% continue %}` (in
    /// them or in an `{% if %}` of theirs), saying which.
    fn nodes(&mut self, nodes: &'a [Node], depth: usize) -> Result<Flow, TemplateError> {
        if self.outer_depth + depth > MAX_RENDER_DEPTH {
            return Err(too_deep());
        }
        let mut flow = Flow::Next;
        for node in nodes {
            self.depth = depth;
            self.tick()?;
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Var { expr, escape, line } => self.var(expr, *escape, *line)?,
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let chosen = self.choose(branches, otherwise)?;
                    flow = self.nodes(chosen, depth + 1)?;
                }
                Node::For(l) => flow = self.each(l, depth + 1)?,
                Node::Break => flow = Flow::Break,
                Node::Continue => flow = Flow::Continue,
                Node::Set {
                    name,
                    value,
                    line,
                    unpack,
                } => self.set(name, value, *line, unpack.as_deref())?,
                // No `break` leaves an included template, a module or a
                // block (the parser sees to it): their flow is always `Next`.
                Node::Include { .. } | Node::Module { .. } | Node::Block { .. } => {
                    self.enter(node, depth + 1)?
                }
                Node::Apply { func, body } => self.apply(*func, body, depth + 1)?,
                Node::While(w) => flow = self.run_while(w, depth + 1)?,
                Node::Try(t) => flow = self.run_try(t, depth + 1)?,
            }
            if flow != Flow::Next {
                break;
            }
        }
        Ok(flow)
    }
}

/// The render's nesting past [`MAX_RENDER_DEPTH`]. Cold and out of
/// [`Renderer::nodes`], whose frame every level of nesting repeats.
#[cold]
#[inline(never)]
fn too_deep() -> TemplateError {
    TemplateError::TooDeep(format!(
        "blocks, includes and modules nest deeper than {MAX_RENDER_DEPTH} while rendering"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the differential (GET pages) does not reach: a form body's
    /// arguments and a repeated header, as Tornado 6.6.1 gives them for
    /// `POST /f?a=1` with `a=2&b=+x+&a=%01` and two `X-Tag` lines.
    #[test]
    fn request_and_handler_of_a_form_post() {
        let mut req = crate::http::Request::synthetic(
            "POST",
            "/f?a=1",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-tag", "t1"),
                ("X-TAG", "t2"),
                ("Cookie", "c=v; d=\"q\""),
            ],
        );
        req.set_body(b"a=2&b=+x+&a=%01".to_vec());
        let request = request_value(&req);
        // Tornado: request.headers['X-Tag'] == 't1,t2'; names normalized.
        assert_eq!(request["headers"]["X-Tag"], "t1,t2");
        assert_eq!(
            request["headers"]["Content-Type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(request["query_arguments"], json!({"a": ["1"]}));
        assert_eq!(
            request["body_arguments"],
            json!({"a": ["2", "\u{1}"], "b": [" x "]})
        );
        assert_eq!(
            request["arguments"],
            json!({"a": ["1", "2", "\u{1}"], "b": [" x "]})
        );
        assert_eq!(request["cookies"]["d"], json!({"key": "d", "value": "q"}));

        let call = |method, args: &[Value], kwargs: Value| {
            let Value::Object(kwargs) = kwargs else {
                unreachable!()
            };
            handler_method(&request, method, args, &kwargs)
        };
        use expr::Method as M;
        // get_argument('a'): the last of the query's and the body's,
        // the control character a space, stripped.
        assert_eq!(call(M::GetArgument, &[json!("a")], json!({})).unwrap(), "");
        assert_eq!(
            call(M::GetArguments, &[json!("a")], json!({})).unwrap(),
            json!(["1", "2", ""])
        );
        assert_eq!(
            call(M::GetBodyArgument, &[json!("b")], json!({"strip": false})).unwrap(),
            " x "
        );
        assert_eq!(
            call(M::GetQueryArguments, &[json!("b")], json!({})).unwrap(),
            json!([])
        );
        assert_eq!(call(M::GetCookie, &[json!("c")], json!({})).unwrap(), "v");
        // Tornado's MissingArgumentError, an HTTPError(400).
        let missing = call(M::GetArgument, &[json!("z")], json!({})).unwrap_err();
        assert_eq!(
            missing,
            TemplateError::Http {
                status: 400,
                message: "Missing argument z".into()
            }
        );
        assert_eq!(
            missing.to_string(),
            "HTTP 400: Bad Request (Missing argument z)"
        );
        assert!(call(
            M::GetArgument,
            &[json!("a"), json!(1)],
            json!({"default": 2})
        )
        .is_err());
        assert_eq!(full_url(&request), "http://localhost/f?a=1");
    }

    /// A request's namespace of `request` alone.
    struct RequestOnly(Value);

    impl RequestNamespace for RequestOnly {
        fn static_url(&self, path: &str) -> Result<String, crate::web::StaticUrlError> {
            Ok(path.to_string())
        }
        fn xsrf_form_html(&self) -> Option<String> {
            None
        }
        fn reverse_url(&self, _name: &str, _args: &[&str]) -> Option<String> {
            None
        }
        fn current_user(&self) -> Option<&str> {
            None
        }
        fn request_value(&self) -> Option<&Value> {
            Some(&self.0)
        }
        fn locale(&self) -> Option<&crate::locale::Locale> {
            None
        }
    }

    /// A copy of `handler` has its methods, found by comparing it with
    /// the handler in full: a step per value in it, so that calls on a
    /// copy stop at the render's budget where those on `handler` do not.
    #[test]
    fn a_copy_of_handler_is_compared_at_a_step_per_value() {
        let query: Vec<String> = (0..1000).map(|i| format!("a=v{i}")).collect();
        let req = crate::http::Request::synthetic("GET", &format!("/p?{}", query.join("&")), &[]);
        let ns = RequestOnly(request_value(&req));
        let render = |src: &str| {
            Template::parse(src).unwrap().render_object(
                &json!({}),
                Some(&ns),
                100_000,
                Template::MAX_OUTPUT,
            )
        };
        let own = "{% set h = [handler] %}\
                   {% for i in range(50) %}{{ handler.get_argument('a') }}{% end %}";
        assert_eq!(render(own).unwrap(), "v999".repeat(50));
        assert_eq!(
            render(
                &own.replace("range(50)", "range(1)")
                    .replace("handler.", "h[0].")
            )
            .unwrap(),
            "v999"
        );
        // Some 2,000 values (1,000 arguments in `arguments` and in
        // `query_arguments`) compared at each of 50 calls.
        let err = render(&own.replace("handler.", "h[0].")).unwrap_err();
        assert!(
            matches!(err.innermost(), TemplateError::TooLarge(_)),
            "{err}"
        );
    }

    fn render(src: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        Template::parse(src)?.render(vars)
    }

    fn render_json(src: &str, value: Value) -> Result<String, TemplateError> {
        Template::parse(src)?.render_value(&value)
    }

    /// `for` unpacks items into any number of names, with or without
    /// parentheses, as Python does; a length that does not match is
    /// Python's ValueError (here `TemplateError::Type`).
    #[test]
    fn for_unpacks_into_any_number_of_names() {
        let v = json!({"rows": [[1, "a", true], [2, "b", false]], "d": {"k": 1}});
        assert_eq!(
            render_json(
                "{% for n, s, t in rows %}{{ n }}{{ s }}{{ t }};{% end %}|\
                 {% for (n, s, t) in rows %}{{ s }}{% end %}|{{ n }}{{ s }}{{ t }}|\
                 {% for (k, v) in d.items() %}{{ k }}={{ v }}{% end %}|\
                 {% for a, b in zip(*rows) %}{{ a }}{{ b }};{% end %}",
                v.clone()
            )
            .unwrap(),
            "1aTrue;2bFalse;|ab|2bFalse|k=1|12;ab;TrueFalse;"
        );
        for (src, says) in [
            (
                "{% for a, b in rows %}{% end %}",
                "cannot unpack an array of 3 into a, b",
            ),
            (
                "{% for a, b, c, e in rows %}{% end %}",
                "cannot unpack an array of 3 into a, b, c, e",
            ),
            (
                "{% for a, b, c in d %}{% end %}",
                "into a, b, c: use d.items()",
            ),
        ] {
            let err = render_json(src, v.clone()).unwrap_err().to_string();
            assert!(err.contains(says), "{src}: {err}");
        }
        for src in [
            "{% for a, b, c in d.items() %}{% end %}",
            "{% for a, b, c in range(3) %}{% end %}",
            "{% for a, b, c in enumerate(rows) %}{% end %}",
            "{% for (a, b in rows %}{% end %}",
            "{% for a, in rows %}{% end %}",
        ] {
            assert!(Template::parse(src).is_err(), "{src}");
        }
    }

    #[test]
    fn comprehensions_bind_their_names_and_spend_the_step_budget() {
        let v = json!({"xs": [1, 2, 3], "x": "outer", "s": "ab", "m": {"k": 1}});
        assert_eq!(
            render_json(
                "{{ [x for x in xs] }}{{ x }}|{% set y = 5 %}{{ [y for y in s] }}{{ y }}|\
                 {{ [k for k in m] }}|{{ [[a, b] for a in s for b in s if a != b] }}|\
                 {{ [x.k for x in [m]] }}|{{ '+'.join(c.upper() for c in s) }}",
                v.clone()
            )
            .unwrap(),
            "[1, 2, 3]outer|[&#x27;a&#x27;, &#x27;b&#x27;]5|[&#x27;k&#x27;]|\
             [[&#x27;a&#x27;, &#x27;b&#x27;], [&#x27;b&#x27;, &#x27;a&#x27;]]|[1]|A+B"
        );
        // Dict comprehensions: the same clauses and names; a repeated key
        // keeps its first place and takes the last value.
        assert_eq!(
            render_json(
                "{% raw {c: x for c in s + 'a' for x in xs if x > 1} %}|{{ x }}|\
                 {% raw {k + '!': m[k] for k in m} %}",
                v.clone()
            )
            .unwrap(),
            "{'a': 3, 'b': 3}|outer|{'k!': 1}"
        );
        for (src, says) in [
            ("{{ [x for x in 5] }}", "a number is not iterable"),
            (
                "{{ [a for a, b in xs] }}",
                "cannot unpack a number into a, b",
            ),
            ("{{ [z for x in xs] }}", "undefined variable \"z\""),
            (
                "{{ {x: 1 for x in xs} }}",
                "a dict's keys in a template are strings, not a number",
            ),
        ] {
            let err = render_json(src, v.clone()).unwrap_err().to_string();
            assert!(err.contains(says), "{src}: {err}");
        }
        for bad in [
            "{{ [x for in xs] }}",
            "{{ [x for x xs] }}",
            "{{ [x for if in xs] }}",
            "{{ [x for a, b, c in xs] }}",
            "{{ [x for x in xs if] }}",
            "{{ [x for x in xs, 1] }}",
            "{{ len(x for x in xs) }}",
            "{{ ', '.join(x for x in xs, 1) }}",
            "{{ {x for x in xs} }}",
            "{{ {k: 1, k: 2 for k in s} }}",
            "{{ {k: 1 for k in s, } }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        // Every iteration is a step, those an `if` drops too.
        let t = Template::parse("{{ len([1 for a in xs for b in xs for c in xs if 0]) }}").unwrap();
        let Value::Object(map) = &v else {
            unreachable!()
        };
        assert_eq!(
            t.render_limited(Root::Object(map), None, 100, 1 << 20)
                .unwrap(),
            "0"
        );
        let err = t
            .render_limited(Root::Object(map), None, 30, 1 << 20)
            .unwrap_err();
        assert!(
            matches!(&err, TemplateError::At { error, .. } if matches!(**error, TemplateError::TooLarge(_))),
            "{err:?}"
        );
    }

    #[test]
    fn tuples_are_the_arguments_of_percent_and_lists_elsewhere() {
        assert_eq!(
            render_json(
                "{{ \"%s+%s\" % (a, 1) }}|{{ \"%s\" % ([a],) }}|{{ (a, 1) }}|{{ () }}|{{ (a,) }}",
                json!({"a": "x"})
            )
            .unwrap(),
            // Python prints a tuple `('x', 1)`; here it is a list.
            "x+1|[&#x27;x&#x27;]|[&#x27;x&#x27;, 1]|[]|[&#x27;x&#x27;]"
        );
        for (src, says) in [
            (
                "{{ '%s %s' % (1,) }}",
                "not enough arguments for format string",
            ),
            ("{{ '%s' % (1, 2) }}", "not all arguments converted"),
            ("{{ 'a' % (1,) }}", "not all arguments converted"),
            ("{{ '%(a)s' % (1,) }}", "format requires a mapping"),
            ("{{ 5 % (1,) }}", "unsupported operand types for %"),
        ] {
            let err = render_json(src, json!({})).unwrap_err().to_string();
            assert!(err.contains(says), "{src}: {err}");
        }
        for bad in [
            "{{ (1, 2 }}",
            "{{ (,) }}",
            "{{ (1,, 2) }}",
            "{{ (x for x in) }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn powers_are_pythons_within_64_bits() {
        assert_eq!(
            render_json(
                "{{ 2 ** 62 }}|{{ 2 ** 64 // 2 ** 2 if False else 7 }}|{{ 5 ** -1 }}|{{ n ** n }}",
                json!({"n": 2})
            )
            .unwrap(),
            "4611686018427387904|7|0.2|4"
        );
        // int / int is the exact quotient rounded once, as Python's.
        assert_eq!(
            render_json(
                "{{ -1 / 9007199254740993 }}|{{ 9007199254740993 / 7 }}|{{ 18446744073709551615 / 3 }}|{{ 0 / -9007199254740993 }}|{{ 1 / 3 }}|{{ 18446744073709551615 / 18446744073709551614 }}",
                json!({})
            )
            .unwrap(),
            "-1.1102230246251564e-16|1286742750677284.8|6.148914691236517e+18|-0.0|0.3333333333333333|1.0"
        );
        // A negative integer exponent gives a float, also of 1 and -1.
        assert_eq!(
            render_json(
                "{{ 1 ** -1 }}|{{ (-1) ** -3 }}|{{ (-1) ** -2 }}|{{ True ** -7 }}|{{ 1 ** 0 }}|{{ (-1) ** 3 }}",
                json!({})
            )
            .unwrap(),
            "1.0|-1.0|1.0|1.0|1|-1"
        );
        for (src, says) in [
            ("{{ 2 ** 64 }}", "out of the range"),
            ("{{ 3 ** 100000000000 }}", "out of the range"),
            ("{{ 0 ** -1 }}", "ZeroDivisionError"),
            ("{{ 0.0 ** -2.5 }}", "ZeroDivisionError"),
            ("{{ (-8) ** 0.5 }}", "complex"),
            ("{{ 10.0 ** 400 }}", "OverflowError"),
            (
                "{{ 'a' ** 2 }}",
                "unsupported operand types for ** or pow(): a string and a number",
            ),
            (
                "{{ 2 ** None }}",
                "unsupported operand types for ** or pow()",
            ),
        ] {
            let err = render_json(src, json!({})).unwrap_err().to_string();
            assert!(err.contains(says), "{src}: {err}");
        }
    }

    /// `error` at `line`.
    fn at(line: u32, error: TemplateError) -> TemplateError {
        TemplateError::At {
            line,
            error: Box::new(error),
        }
    }

    /// `error` in the template `name`.
    fn inside(name: &str, error: TemplateError) -> TemplateError {
        TemplateError::In {
            name: name.into(),
            error: Box::new(error),
        }
    }

    /// Parses `name` from `files`, loading includes and parents from there
    /// too (a `DictLoader`), names relative to the including template.
    fn load(
        files: &[(&str, &str)],
        name: &str,
        depth: usize,
    ) -> Result<Arc<Template>, TemplateError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(TemplateError::TooDeep(format!("include {name}")));
        }
        let src = files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| TemplateError::Load(format!("no {name}")))?;
        Template::parse_with_loader(src, |inc| {
            let target = resolve_name(name, inc)?;
            load(files, &target, depth + 1).map_err(|e| TemplateError::In {
                name: target,
                error: Box::new(e),
            })
        })
        .map(Arc::new)
    }

    #[test]
    fn substitutes_and_escapes() {
        let vars = [("name", "<b>\"Tom\" & 'Jerry'</b>"), ("n", "1")];
        assert_eq!(
            render("Hi {{ name }}! {{n}}", &vars).unwrap(),
            "Hi &lt;b&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt;! 1"
        );
        assert_eq!(
            render("{% raw name %}", &vars).unwrap(),
            "<b>\"Tom\" & 'Jerry'</b>"
        );
        assert_eq!(render("a{# gone #}b", &vars).unwrap(), "ab");
        assert_eq!(
            render("{{! x }} {%! y %} {a}", &vars).unwrap(),
            "{{ x }} {% y %} {a}"
        );
        assert_eq!(render("{", &vars).unwrap(), "{");
        assert_eq!(render("", &vars).unwrap(), "");
    }

    #[test]
    fn errors() {
        assert_eq!(
            render("x {{ name", &[]).unwrap_err(),
            at(1, TemplateError::Unclosed("{{".into()))
        );
        // `for` is a block now: without its `end` it is unclosed.
        assert_eq!(
            render("{% for x in y %}", &[]).unwrap_err(),
            at(1, TemplateError::UnclosedBlock("for x in y".into()))
        );
        assert_eq!(
            render("{{ a ** }}", &[]).unwrap_err(),
            at(1, TemplateError::BadTag("a **".into()))
        );
        assert_eq!(
            render("{{ who }}", &[("name", "x")]).unwrap_err(),
            at(1, TemplateError::Undefined("who".into()))
        );
    }

    #[test]
    fn escaping_matches_http_html_escape() {
        let s = "a<b>c&d\"e'f — ü";
        let mut out = String::new();
        push_escaped(&mut out, s);
        assert_eq!(out, crate::http::html_escape(s));
    }

    #[test]
    fn values_that_are_not_strings_print_as_python_str_prints_them() {
        // Each pair is a string and Python 3.11's `str([s])`: the quote
        // Python picks, its escapes, and the characters it does not print.
        let cases = [
            ("plain", "['plain']"),
            ("it's", "[\"it's\"]"),
            ("say \"hi\"", "['say \"hi\"']"),
            ("both ' and \"", "['both \\' and \"']"),
            ("back\\slash", "['back\\\\slash']"),
            ("tab\u{9}nl\u{a}ret\u{d}", "['tab\\tnl\\nret\\r']"),
            ("\u{0}\u{1f}\u{7f}", "['\\x00\\x1f\\x7f']"),
            (
                "\u{80}\u{a0}\u{ad} \u{e9} \u{fc}",
                "['\\x80\\xa0\\xad \u{e9} \u{fc}']",
            ),
            ("\u{2028}\u{200b}\u{feff}", "['\\u2028\\u200b\\ufeff']"),
            ("\u{e000} \u{f0000}", "['\\ue000 \\U000f0000']"),
            (
                "\u{1f600} \u{e0020} \u{4e2d}\u{6587}",
                "['\u{1f600} \\U000e0020 \u{4e2d}\u{6587}']",
            ),
        ];
        for (s, want) in cases {
            let mut out = String::new();
            push_python_repr(&mut out, &json!([s]));
            assert_eq!(out, want, "{s:?}");
        }
        // Python: str({"a": [1, 2.5, None, True, False, {}], "": []}).
        let mut out = String::new();
        push_python_repr(
            &mut out,
            &json!({"a": [1, 2.5, null, true, false, {}], "": []}),
        );
        assert_eq!(out, "{'a': [1, 2.5, None, True, False, {}], '': []}");
        // The table is sorted and its ranges do not overlap, as the
        // binary search needs.
        assert!(NOT_PRINTABLE
            .windows(2)
            .all(|w| w[0].0 <= w[0].1 && w[0].1 < w[1].0));
        assert!(printable('\u{a1}') && !printable('\u{a0}') && !printable('\u{10fffd}'));
        assert!(printable('\u{10fffe}') && printable('\u{1bc9f}') && !printable('\u{1bca0}'));
    }

    #[test]
    fn paths_step_into_objects_and_arrays() {
        let v = json!({
            "a": {"b": [{"c": "<deep>"}, {"c": 2}]},
            "n": 3, "f": 2.5, "t": true, "no": false, "nil": null,
            "list": [1, "x<"], "obj": {"k": "v&"}
        });
        let t = "{{ a.b.0.c }}|{{ a.b.1.c }}|{{ n }}|{{ f }}|{{ t }}|{{ no }}|[{{ nil }}]|{{ list }}|{{ obj }}";
        assert_eq!(
            render_json(t, v.clone()).unwrap(),
            "&lt;deep&gt;|2|3|2.5|True|False|[None]|[1, &#x27;x&lt;&#x27;]|{&#x27;k&#x27;: &#x27;v&amp;&#x27;}"
        );
        assert_eq!(
            render_json("{% raw a.b.0.c %} {% raw obj %}", v.clone()).unwrap(),
            "<deep> {'k': 'v&'}"
        );
        for bad in ["a.x", "a.b.2", "a.b.z", "n.x", "missing", "list.-3"] {
            assert_eq!(
                render_json(&format!("{{{{ {bad} }}}}"), v.clone()).unwrap_err(),
                at(1, TemplateError::Undefined(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn old_style_pairs_keep_dotted_names_and_work_with_if() {
        let vars = [("a.b", "dotted"), ("e", ""), ("x", "1")];
        assert_eq!(render("{{ a.b }}", &vars).unwrap(), "dotted");
        assert_eq!(
            render(
                "{% if e %}E{% elif x %}X{% end %}{% if not e %}!{% end %}",
                &vars
            )
            .unwrap(),
            "X!"
        );
        // A string is looped over by its characters, as in Python.
        assert_eq!(
            render_json(
                "{% for c in s %}[{{ c }}]{% end %}",
                json!({ "s": "hé<😀" })
            )
            .unwrap(),
            "[h][é][&lt;][😀]"
        );
        assert_eq!(
            render("{% for c in a.b %}[{{ c }}]{% end %}", &vars).unwrap(),
            "[d][o][t][t][e][d]"
        );
        assert!(matches!(
            render("{% for c, d in x %}{% end %}", &vars)
                .unwrap_err()
                .innermost(),
            TemplateError::Type(_)
        ));
    }

    #[test]
    fn if_elif_else_with_python_truthiness() {
        let t = Template::parse("{% if v %}T{% else %}F{% end %}{% if not v %}n{% end %}").unwrap();
        for (v, want) in [
            (json!(false), "Fn"),
            (json!(null), "Fn"),
            (json!(0), "Fn"),
            (json!(0.0), "Fn"),
            (json!(""), "Fn"),
            (json!([]), "Fn"),
            (json!({}), "Fn"),
            (json!(true), "T"),
            (json!(-1), "T"),
            (json!(0.5), "T"),
            (json!("0"), "T"),
            (json!([0]), "T"),
            (json!({"a": null}), "T"),
        ] {
            assert_eq!(t.render_value(&json!({ "v": v })).unwrap(), want, "{v}");
        }
        let t =
            Template::parse("{% if a %}A{% elif not b %}notB{% elif c %}C{% else %}none{% end %}")
                .unwrap();
        let r = |a: bool, b: bool, c: bool| t.render_value(&json!({"a": a, "b": b, "c": c}));
        assert_eq!(r(true, true, true).unwrap(), "A");
        assert_eq!(r(false, false, true).unwrap(), "notB");
        assert_eq!(r(false, true, true).unwrap(), "C");
        assert_eq!(r(false, true, false).unwrap(), "none");
        // Only the branch taken is evaluated, but a tested name must exist.
        assert_eq!(
            render_json("{% if a %}{{ nope }}{% end %}", json!({"a": 0})).unwrap(),
            ""
        );
        assert_eq!(
            render_json("{% if nope %}{% end %}", json!({})).unwrap_err(),
            at(1, TemplateError::Undefined("nope".into()))
        );
    }

    #[test]
    fn for_loops_over_arrays_and_objects() {
        let v = json!({
            "messages": [{"id": 1, "body": "hi <3"}, {"id": 2, "body": "yo"}],
            "m": {"b": 2, "a": 1},
            "pairs": [["x", 1], ["y", 2]],
            "empty": [],
            "x": "outer"
        });
        assert_eq!(
            render_json(
                "{% for message in messages %}<p id={{ message.id }}>{{ message.body }}</p>{% end %}",
                v.clone()
            )
            .unwrap(),
            "<p id=1>hi &lt;3</p><p id=2>yo</p>"
        );
        // Insertion order, as a Python dict's (serde_json's
        // preserve_order): not sorted.
        assert_eq!(
            render_json(
                "{% for k, v in m.items() %}{{k}}={{v}};{% end %}",
                v.clone()
            )
            .unwrap(),
            "b=2;a=1;"
        );
        assert_eq!(
            render_json(
                "{% for k in m %}{{k}}{% end %}|{% for k in m.keys() %}{{k}}{% end %}|{% for v in m.values() %}{{v}}{% end %}",
                v.clone()
            )
            .unwrap(),
            "ba|ba|21"
        );
        assert_eq!(
            render_json("{% for a, b in pairs %}{{a}}{{b}}{% end %}", v.clone()).unwrap(),
            "x1y2"
        );
        assert_eq!(
            render_json("[{% for e in empty %}{{ e }}{% end %}]", v.clone()).unwrap(),
            "[]"
        );
        // Nested loops see the outer loop's variable, and a loop variable
        // stays bound after its loop (a Python local; Tornado 6.6.1 prints
        // the same).
        assert_eq!(
            render_json(
                "{% for x in pairs %}{% for y in x %}{{y}}{% end %},{% end %}:{{x}}",
                v.clone()
            )
            .unwrap(),
            "x1,y2,:[&#x27;y&#x27;, 2]"
        );
        // Read before the loop, `x` is not the render value's: Tornado
        // raises UnboundLocalError, as a local of its compiled function.
        assert_eq!(
            render_json("{{x}}:{% for x in pairs %}{% end %}", v.clone()).unwrap_err(),
            at(1, TemplateError::Undefined("x".into()))
        );
        for (t, what) in [
            ("{% for c, d in x %}{% end %}", "a string"),
            ("{% for c in messages.0.id %}{% end %}", "a number"),
            ("{% for k, v in messages.items() %}{% end %}", "an array"),
            ("{% for a, b in messages %}{% end %}", "an object"),
            ("{% for a, b in m %}{% end %}", "items()"),
        ] {
            match render_json(t, v.clone()).unwrap_err().innermost() {
                TemplateError::Type(msg) => assert!(msg.contains(what), "{t}: {msg}"),
                e => panic!("{t}: {e:?}"),
            }
        }
    }

    /// As in Tornado, where a template is one Python function: what `set`
    /// and `for` bind stays bound after the block, and binding it again
    /// replaces it (expected outputs from Tornado 6.6.1).
    #[test]
    fn set_and_loop_variables_are_locals_of_the_whole_render() {
        let v = json!({"user": {"name": "ann"}, "items": [1, 2]});
        assert_eq!(
            render_json(
                "{% set n = user.name %}{{ n }}{% for i in items %}{% set j = i %}{{ j }}{% end %}{{ j }}{{ i }}",
                v.clone()
            )
            .unwrap(),
            "ann1222"
        );
        assert_eq!(
            render_json(
                "{% if items %}{% set j = items.0 %}{% end %}{{ j }}",
                v.clone()
            )
            .unwrap(),
            "1"
        );
        // Not bound where the loop never ran.
        assert_eq!(
            render_json("{% for i in none %}{% end %}{{ i }}", json!({ "none": [] })).unwrap_err(),
            at(1, TemplateError::Undefined("i".into()))
        );
    }

    /// `{% set %}` takes Python literals as well as paths (expected output
    /// from Tornado 6.6.1).
    #[test]
    fn set_takes_python_literals() {
        let t = "{% set a = 0 %}{% set b = -3 %}{% set c = 2.5 %}{% set d = 1e16 %}\
                 {% set e = .5 %}{% set f = \"it's\" %}{% set g = '' %}{% set h = True %}\
                 {% set i = None %}{% set j = 18446744073709551615 %}\
                 {% raw a %}|{% raw b %}|{% raw c %}|{% raw d %}|{% raw e %}|{% raw f %}|\
                 [{% raw g %}]|{% raw h %}|{% raw i %}|{% raw j %}|\
                 {% if a %}T{% else %}F{% end %}{% if h %}T{% end %}";
        assert_eq!(
            render_json(t, json!({})).unwrap(),
            "0|-3|2.5|1e+16|0.5|it's|[]|True|None|18446744073709551615|FT"
        );
        // A name that is not a literal is still a path.
        assert_eq!(
            render_json("{% set x = n1 %}{{ x }}", json!({"n1": "p"})).unwrap(),
            "p"
        );
        for bad in ["'a", "'a'b'", "\"a\\x\"", "1 **", "x y"] {
            let src = format!("{{% set x = {bad} %}}");
            assert!(
                matches!(
                    Template::parse(&src),
                    Err(TemplateError::At { line: 1, .. })
                ),
                "{src}"
            );
        }
        assert_eq!(literal("01"), None);
        // Python's string escapes; those it refuses, and \N{..}, refused.
        assert_eq!(
            literal(r#""a\"b\'\\\n\x41\u00e9\U0001F600\101\7x\d""#),
            Some(json!("a\"b'\\\nA\u{e9}\u{1F600}A\u{7}x\\d"))
        );
        assert_eq!(literal("'a\\\nb'"), Some(json!("ab")));
        for bad in [
            r#""\x4""#,
            r#""\xg0""#,
            r#""\u12""#,
            r#""\ud800""#,
            r#""\U00110000""#,
            r#""\N{DASH}""#,
            r#""a"b""#,
            r#""a\""#,
        ] {
            assert_eq!(literal(bad), None, "{bad}");
        }
        let t = Template::parse(r#"{% raw "a\"}}" %}|{{ len('\'') }}"#).unwrap();
        assert_eq!(t.render_value(&json!({})).unwrap(), "a\"}}|1");
        assert_eq!(literal("1e400"), None);
        assert_eq!(literal("inf"), None);
        assert_eq!(literal("+7"), Some(json!(7)));
    }

    /// `{% if %}` conditions with Python's operators; each expected result
    /// is Tornado 6.6.1's for the same template and values.
    #[test]
    fn if_conditions_compare_and_combine_as_python() {
        let v = json!({"n": 3, "f": 2.5, "s": "abc", "e": "", "t": true, "no": false,
            "nil": null, "xs": [1, 2, "x"], "ys": [1, 2, "x"], "zs": [1, 3],
            "d": {"k": 1, "m": null}, "d2": {"m": null, "k": 1.0},
            "big": 18446744073709551615u64, "u": {"name": "ann", "age": 30}});
        let cases = [
            ("n == 3", "T"),
            ("n == 3.0", "T"),
            ("t == 1", "T"),
            ("no == 0", "T"),
            ("n != 3", "F"),
            ("f > 2", "T"),
            ("f >= 2.5", "T"),
            ("n < f", "F"),
            ("1 < n < 5", "T"),
            ("1 < n < 2", "F"),
            ("s == 'abc'", "T"),
            ("s != \"abd\"", "T"),
            ("s < 'abd'", "T"),
            ("'b' in s", "T"),
            ("'z' not in s", "T"),
            ("2 in xs", "T"),
            ("'x' in xs", "T"),
            ("3 in xs", "F"),
            ("'k' in d", "T"),
            ("'z' in d", "F"),
            ("1 in d", "F"),
            ("nil is None", "T"),
            ("nil is not None", "F"),
            ("n is None", "F"),
            ("t is True", "T"),
            ("no is False", "T"),
            ("t is not False", "T"),
            ("not n == 4", "T"),
            ("n == 3 and s", "T"),
            ("n == 4 or s", "T"),
            ("not (n == 4 or e)", "T"),
            ("e or nil or no", "F"),
            ("(n == 3) == True", "T"),
            ("u.name == 'ann' and u.age >= 18", "T"),
            ("big > n", "T"),
            ("big == 18446744073709551615", "T"),
            ("d.m is None", "T"),
            ("xs and not e", "T"),
            ("n > 2 and (s == 'x' or t)", "T"),
            ("xs == ys", "T"),
            ("xs < zs", "T"),
            ("d == d2", "T"),
            ("nil == None", "T"),
            ("e == ''", "T"),
            ("'' in s", "T"),
            ("not not t", "T"),
        ];
        for (cond, want) in cases {
            let t = format!("{{% if {cond} %}}T{{% else %}}F{{% end %}}");
            assert_eq!(render_json(&t, v.clone()).unwrap(), want, "{cond}");
        }
        // `elif` too; and operands are read only as far as Python reads
        // them: `missing` is never looked up.
        assert_eq!(
            render_json(
                "{% if n < 0 %}neg{% elif 0 <= n < 10 and s %}small{% end %}\
                 {% if no and missing %}{% end %}{% if t or missing %}!{% end %}",
                v.clone()
            )
            .unwrap(),
            "small!"
        );
        assert_eq!(
            render_json("{% if n and missing %}{% end %}", v.clone()).unwrap_err(),
            at(1, TemplateError::Undefined("missing".into()))
        );
        // Python's TypeErrors.
        for cond in ["s < n", "nil < 1", "d < d", "3 in n", "xs in d", "n in s"] {
            let t = format!("\n{{% if {cond} %}}{{% end %}}");
            assert!(
                matches!(
                    render_json(&t, v.clone()),
                    Err(TemplateError::At { line: 2, ref error })
                        if matches!(**error, TemplateError::Type(_))
                ),
                "{cond}"
            );
        }
        // Not conditions: refused when parsed.
        let deep = format!("{}t{}", "(".repeat(40), ")".repeat(40));
        for cond in [
            "a ==",
            "== a",
            "a = b",
            "a ! b",
            "a is b",
            "a is 'x'",
            "a and",
            "(a",
            "a)",
            "(,)",
            "x not y",
            "f(x",
            "a ** b **",
            "not",
            "a in",
            "'a\\x' == a",
            "'a",
            deep.as_str(),
        ] {
            let t = format!("{{% if {cond} %}}{{% end %}}");
            assert!(
                matches!(Template::parse(&t), Err(TemplateError::At { line: 1, ref error })
                    if matches!(**error, TemplateError::BadTag(_))),
                "{cond}"
            );
        }
        let shallow = format!("{}t{}", "(".repeat(20), ")".repeat(20));
        assert_eq!(
            render_json(&format!("{{% if {shallow} %}}y{{% end %}}"), v).unwrap(),
            "y"
        );
    }

    /// Python's subscripts step into values as `.` does, wherever a path
    /// goes (expected output from Tornado 6.6.1).
    #[test]
    fn paths_take_python_subscripts() {
        let v = json!({"d": {"k": "v", "n": {"list": [10, 20, 30]}, "0": "zero", "": "empty"},
            "xs": [[1, 2], [3, 4]], "rows": [{"name": "a"}, {"name": "b"}]});
        let t = "{{ d['k'] }}|{{ d[\"n\"]['list'][0] }}|{{ d['n']['list'][-1] }}|{{ xs[1][0] }}|\
                 {{ xs[-1][-2] }}|{{ d['0'] }}|{{ d[''] }}|{% for r in rows %}{{ r['name'] }}{% end %}|\
                 {% for x in d['n']['list'] %}{{ x }},{% end %}|{% set y = xs[0] %}{{ y[1] }}|\
                 {% if d['k'] == 'v' and xs[0][0] < xs[1][ 0 ] %}ok{% end %}|\
                 {{ url_escape(d['k']) }}|{{ xs[-0][0] }}";
        assert_eq!(
            render_json(t, v.clone()).unwrap(),
            "v|10|30|3|3|zero|empty|ab|10,20,30,|2|ok|v|1"
        );
        // Mixed with dots; past either end is undefined.
        assert_eq!(render_json("{{ d.n['list'].1 }}", v.clone()).unwrap(), "20");
        for (src, missing) in [
            ("{{ xs[2] }}", "xs.2"),
            ("{{ xs[-3] }}", "xs.-3"),
            ("{{ d['z'] }}", "d.z"),
        ] {
            assert_eq!(
                render_json(src, v.clone()).unwrap_err(),
                at(1, TemplateError::Undefined(missing.into())),
                "{src}"
            );
        }
        for bad in ["d['k'", "d[]", "d['k']x", "d['\\N{X}']", "d[0]]"] {
            for src in [
                format!("{{{{ {bad} }}}}"),
                format!("{{% if {bad} %}}{{% end %}}"),
            ] {
                assert!(Template::parse(&src).is_err(), "{src}");
            }
        }
    }

    /// Python's `len` in `{{ }}` and in conditions (expected output from
    /// Tornado 6.6.1).
    #[test]
    fn len_counts_characters_items_and_keys() {
        let v = json!({"xs": [1, 2, 3], "d": {"a": 1, "b": 2}, "s": "h\u{e9}llo\u{1f600}", "e": [], "n": 5});
        let t = "{{ len(xs) }}|{{ len(d) }}|{{ len(s) }}|{{ len('abc') }}|\
                 {% if len(xs) > 2 %}many{% end %}|{% if not len(e) %}empty{% end %}|\
                 {% if len(s) == 6 and len(d) < len(xs) %}ok{% end %}|\
                 {% if len(xs) == 3 == len('abc') %}chain{% end %}|\
                 {% if len(xs) is True %}no{% end %}{% if (len(xs) > 1) is True %}yes{% end %}";
        assert_eq!(
            render_json(t, v.clone()).unwrap(),
            "3|2|6|3|many|empty|ok|chain|yes"
        );
        for src in [
            "{{ len(n) }}",
            "{% if len(n) %}{% end %}",
            "{% if len(xs.0) %}{% end %}",
            "{% if len(3) %}{% end %}",
        ] {
            assert!(
                matches!(render_json(src, v.clone()), Err(TemplateError::At { line: 1, ref error })
                    if matches!(**error, TemplateError::Type(_))),
                "{src}"
            );
        }
        for src in [
            "{% if len() %}{% end %}",
            "{% if len(xs, d) %}{% end %}",
            "{% if len(xs)(d) %}{% end %}",
        ] {
            assert!(Template::parse(src).is_err(), "{src}");
        }
        // Without parentheses, `len` is a path like any other name.
        assert_eq!(
            render_json("{% if len %}{{ len }}{% end %}", json!({"len": 2})).unwrap(),
            "2"
        );
    }

    /// `{{ }}` takes Python expressions; each expected output is Tornado
    /// 6.6.1's for the same expression and values.
    #[test]
    fn expressions_print_what_tornado_prints() {
        let v = json!({"n": 7, "m": -3, "f": 2.5, "s": "ab", "e": "", "name": null,
            "xs": [10, 20, 30], "ys": [1], "d": {"k": "v", "j": 2}, "i": 1, "key": "k", "t": true,
            "big": 9007199254740993u64,
            "rows": [{"name": "a", "n": 1}, {"name": "b<", "n": 2}]});
        let cases = [
            ("n + 1", "8"),
            ("n - 1", "6"),
            ("n * 2", "14"),
            ("n / 2", "3.5"),
            ("n // 2", "3"),
            ("n % 3", "1"),
            ("m // 2", "-2"),
            ("m % 5", "2"),
            ("n % -3", "-2"),
            ("-n", "-7"),
            ("- m", "3"),
            ("-f", "-2.5"),
            ("f * 2", "5.0"),
            ("f / 0.5", "5.0"),
            ("f // 1", "2.0"),
            ("f % 1", "0.5"),
            ("7.5 % 2", "1.5"),
            ("-7.5 % 2", "0.5"),
            ("n + f", "9.5"),
            ("s + 'c'", "abc"),
            ("s * 3", "ababab"),
            ("3 * s", "ababab"),
            ("xs + ys", "[10, 20, 30, 1]"),
            ("ys * 2", "[1, 1]"),
            ("name or 'anonymous'", "anonymous"),
            ("e or 'empty'", "empty"),
            ("s and 'yes'", "yes"),
            ("e and 'no'", ""),
            ("n > 2 and n", "7"),
            ("not n", "False"),
            ("t + 1", "2"),
            ("n == 7 or x", "True"),
            ("xs[i]", "20"),
            ("xs[-i]", "30"),
            ("xs[i + 1]", "30"),
            ("d[key]", "v"),
            ("d['j'] * 10", "20"),
            ("s[0]", "a"),
            ("s[-1]", "b"),
            ("rows[i].name", "b&lt;"),
            ("rows[0]['name']", "a"),
            ("len(xs) - 1", "2"),
            ("str(n) + s", "7ab"),
            ("int('42') + 1", "43"),
            ("int(f)", "2"),
            ("int(' -8 ')", "-8"),
            ("abs(m)", "3"),
            ("abs(-f)", "2.5"),
            ("str(t)", "True"),
            ("str(name)", "None"),
            ("str(xs)", "[10, 20, 30]"),
            ("url_escape(s + ' x')", "ab+x"),
            (
                "json_encode(d)",
                "{&quot;k&quot;: &quot;v&quot;, &quot;j&quot;: 2}",
            ),
            ("escape('<' + s)", "&amp;lt;ab"),
            ("squeeze('  a  b ')", "a b"),
            ("(n + 1) * 2", "16"),
            ("n + 1 * 2", "9"),
            ("2 * (3 + 4) - 1", "13"),
            ("10 - 2 - 3", "5"),
            ("100 // 7 // 2", "7"),
            ("1 + 2 == 3", "True"),
            ("n if t else m", "7"),
            ("'active' if s == 'ab' else ''", "active"),
            ("'a' if e else 'b' if n > 5 else 'c'", "b"),
            ("(n if not t else m) + 1", "-2"),
        ];
        for (e, want) in cases {
            let t = format!("{{{{ {e} }}}}");
            assert_eq!(render_json(&t, v.clone()).unwrap(), want, "{e}");
        }
        // Python's errors: TypeError, ZeroDivisionError and ValueError as
        // `Type`, IndexError and KeyError as `Undefined`.
        for (e, undefined) in [
            ("s + n", false),
            ("n / 0", false),
            ("n // 0", false),
            ("f % 0", false),
            ("int('x')", false),
            ("s * s", false),
            ("-s", false),
            ("abs(s)", false),
            ("xs[5]", true),
            ("xs[-4]", true),
            ("d[n]", true),
            ("d['z']", true),
            ("s[2]", true),
            ("big * big * big", false),
            ("int(1e300)", false),
        ] {
            let got = render_json(&format!("\n{{{{ {e} }}}}"), v.clone()).unwrap_err();
            let TemplateError::At { line: 2, error } = &got else {
                panic!("{e}: {got:?}");
            };
            assert_eq!(
                (
                    matches!(**error, TemplateError::Undefined(_)),
                    matches!(**error, TemplateError::Type(_))
                ),
                (undefined, !undefined),
                "{e}: {got:?}"
            );
        }
        // A string or array built past the output bound is refused before
        // it is built.
        let huge = render_json("{{ s * 1000000000000 }}", v.clone()).unwrap_err();
        assert!(
            matches!(huge, TemplateError::At { ref error, .. } if matches!(**error, TemplateError::TooLarge(_))),
            "{huge:?}"
        );
    }

    /// `set` and `for` take expressions; `range` and `enumerate` are
    /// Python's (expected output from Tornado 6.6.1).
    #[test]
    fn set_and_for_take_expressions_range_and_enumerate() {
        let v =
            json!({"xs": ["a", "b", "c"], "n": 3, "d": {"k": 1, "j": 2}, "s": "hé", "more": ["d"]});
        let t = "{% set total = n * 2 + 1 %}{{ total }}|\
                 {% for i in range(n) %}{{ i }}{% end %}|{% for i in range(1, n + 1) %}{{ i }}{% end %}|\
                 {% for i in range(10, 0, -3) %}{{ i }},{% end %}|{% for i in range(0) %}x{% else %}none{% end %}|\
                 {% for i, x in enumerate(xs) %}{{ i + 1 }}.{{ x }} {% end %}|\
                 {% for i, k in enumerate(d) %}{{ i }}{{ k }}{% end %}|{% for i, c in enumerate(s) %}{{ i }}{{ c }}{% end %}|\
                 {% for i in range(len(xs)) %}{{ xs[i] }}{% end %}|\
                 {% for x in xs + more %}{{ x }}{% end %}|{% for x in more if False else xs %}{% end %}\
                 {% set label = 'many' if n > 2 else 'few' %}{{ label }}|{{ i }}{{ x }}";
        assert_eq!(
            render_json(t, v.clone()).unwrap(),
            "7|012|123|10,7,4,1,|none|1.a 2.b 3.c |0k1j|0h1é|abc|abcd|many|2c"
        );
        let too_long =
            render_json("{% for i in range(10000000000) %}{% end %}", v.clone()).unwrap_err();
        assert!(
            matches!(too_long, TemplateError::At { ref error, .. } if matches!(**error, TemplateError::TooLarge(_))),
            "{too_long:?}"
        );
        for bad in [
            "{% for i in range(0, 1, 0) %}{% end %}",
            "{% for i in range('a') %}{% end %}",
            "{% for i, x in enumerate(n) %}{% end %}",
        ] {
            assert!(
                matches!(render_json(bad, v.clone()), Err(TemplateError::At { ref error, .. }) if matches!(**error, TemplateError::Type(_))),
                "{bad}"
            );
        }
        for bad in [
            "{% for i in enumerate(xs) %}{% end %}",
            "{% for i, j in range(3) %}{% end %}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    /// Slices, list displays and the methods of `str` and `dict` that
    /// templates call; each expected output is Tornado 6.6.1's.
    #[test]
    fn slices_lists_and_methods_as_python() {
        let v = json!({"s": "Hello World", "t": "  they're bill's friends  ", "xs": [1, 2, 3, 4, 5],
            "words": ["a", "b", "c"], "d": {"k": "v", "n": null}, "name": "ada lovelace", "e": ""});
        let cases = [
            ("s[:5]", "Hello"),
            ("s[6:]", "World"),
            ("s[-5:]", "World"),
            ("s[::-1]", "dlroW olleH"),
            ("s[1:8:2]", "el o"),
            ("s[-3:-1]", "rl"),
            ("s[100:]", ""),
            ("s[:-100]", ""),
            ("xs[1:3]", "[2, 3]"),
            ("xs[::2]", "[1, 3, 5]"),
            ("xs[::-2]", "[5, 3, 1]"),
            ("xs[-2:]", "[4, 5]"),
            ("xs[:0]", "[]"),
            ("xs[3:1:-1]", "[4, 3]"),
            ("xs[None:2]", "[1, 2]"),
            ("[1, 'a', None]", "[1, &#x27;a&#x27;, None]"),
            ("len([1, 2, 3])", "3"),
            ("2 in [1, 2]", "True"),
            ("[]", "[]"),
            ("[1,]", "[1]"),
            (
                "['a'] + words",
                "[&#x27;a&#x27;, &#x27;a&#x27;, &#x27;b&#x27;, &#x27;c&#x27;]",
            ),
            ("s.upper()", "HELLO WORLD"),
            ("s.lower()", "hello world"),
            ("t.strip()", "they&#x27;re bill&#x27;s friends"),
            ("name.title()", "Ada Lovelace"),
            ("t.title()", "  They&#x27;Re Bill&#x27;S Friends  "),
            ("name.capitalize()", "Ada lovelace"),
            ("e.capitalize()", ""),
            ("s.startswith('Hell')", "True"),
            ("s.endswith('x')", "False"),
            ("s.replace('o', '0')", "Hell0 W0rld"),
            ("s.replace('', '-')", "-H-e-l-l-o- -W-o-r-l-d-"),
            ("s.split()", "[&#x27;Hello&#x27;, &#x27;World&#x27;]"),
            (
                "s.split('o')",
                "[&#x27;Hell&#x27;, &#x27; W&#x27;, &#x27;rld&#x27;]",
            ),
            ("', '.join(words)", "a, b, c"),
            ("'-'.join(s.split())", "Hello-World"),
            ("d.get('k')", "v"),
            ("d.get('z')", "None"),
            ("d.get('z', 'dflt')", "dflt"),
            ("d.get('n', 'x')", "None"),
            ("d.get('k').upper()", "V"),
            ("s.lower().split()[1]", "world"),
            ("name.split(' ')[0].title()", "Ada"),
            ("'%s' if s else ''", "%s"),
        ];
        for (e, want) in cases {
            let t = format!("{{{{ {e} }}}}");
            assert_eq!(render_json(&t, v.clone()).unwrap(), want, "{e}");
        }
        for (e, what) in [
            ("xs[::0]", "step"),
            ("s[1.5:]", "integers"),
            ("xs.upper()", "method"),
            ("s.get('k')", "method"),
            ("s.split('')", "empty"),
            ("', '.join(xs)", "strings"),
            ("s.startswith(1)", "strings"),
        ] {
            let err = render_json(&format!("{{{{ {e} }}}}"), v.clone()).unwrap_err();
            assert!(
                matches!(&err, TemplateError::At { error, .. } if matches!(**error, TemplateError::Type(_)))
                    && err.to_string().contains(what),
                "{e}: {err}"
            );
        }
        // 11 M insertions of 11 kB: refused before it is built.
        let err = render_json("{{ (s * 1000000).replace('', s * 1000) }}", v.clone())
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("too large")),
            "{err:?}"
        );
        for bad in [
            "s.upper(1)",
            "s.nope()",
            "d.get()",
            "s[1:2:3:4]",
            "[1, 2",
            "s.replace('a')",
        ] {
            assert!(
                Template::parse(&format!("{{{{ {bad} }}}}")).is_err(),
                "{bad}"
            );
        }
    }

    /// A name some `set` or `for` of the render binds is a local of the
    /// whole render (includes and the blocks shown, not a block another
    /// file replaced): read before it is bound, it is Tornado's
    /// UnboundLocalError, not the render value's (expected outputs from
    /// Tornado 6.6.1).
    #[test]
    fn a_local_read_before_it_is_bound_is_undefined() {
        let files = [
            ("base.txt", "{{ x }}{% block b %}{% set x = 1 %}{% end %}"),
            (
                "child.txt",
                "{% extends \"base.txt\" %}{% block b %}[{{ x }}]{% end %}",
            ),
            ("page.txt", "{{ y }}{% include \"inc.txt\" %}"),
            ("inc.txt", "{% set y = 2 %}{{ y }}"),
            ("page2.txt", "{% include \"inc.txt\" %}{{ y }}"),
        ];
        let v = json!({"x": "X", "y": "Y"});
        let render = |name| load(&files, name, 0).unwrap().render_value(&v);
        assert_eq!(
            render("base.txt").unwrap_err(),
            at(1, TemplateError::Undefined("x".into()))
        );
        assert_eq!(render("child.txt").unwrap(), "X[X]");
        assert_eq!(
            render("page.txt").unwrap_err(),
            at(1, TemplateError::Undefined("y".into()))
        );
        assert_eq!(render("page2.txt").unwrap(), "22");
        // A loop that never ran leaves its name unbound.
        assert_eq!(
            render_json("{% for i in e %}{% end %}{{ i }}", json!({"e": [], "i": 5})).unwrap_err(),
            at(1, TemplateError::Undefined("i".into()))
        );
    }

    /// `linkify` against Tornado 6.6.1's `tornado.escape.linkify`.
    #[test]
    fn linkify_is_tornados() {
        let cases = [
            ("see http://example.com/a?b=1&c=2 now", "see <a href=\"http://example.com/a?b=1&amp;c=2\">http://example.com/a?b=1&amp;c=2</a> now"),
            ("www.example.com/path.", "<a href=\"http://www.example.com/path\">www.example.com/path</a>."),
            ("ftp://files.example.com/x and javascript:alert(1)", "ftp://files.example.com/x and javascript:alert(1)"),
            ("<b>https://x.y/z</b>", "&lt;b&gt;<a href=\"https://x.y/z\">https://x.y/z</a>&lt;/b&gt;"),
            ("(http://a.b/c_(d)) end", "(<a href=\"http://a.b/c_(d)\">http://a.b/c_(d)</a>) end"),
            ("mailto:me@example.com", "mailto:me@example.com"),
            ("no links here", "no links here"),
            ("http://example.com/\"quoted\"", "<a href=\"http://example.com/&quot;quoted\">http://example.com/&quot;quoted</a>&quot;"),
            ("ünïcode http://пример.рф/путь, ok", "ünïcode <a href=\"http://пример.рф/путь\">http://пример.рф/путь</a>, ok"),
            ("a http://x.y/1.b http://x.y/2!", "a <a href=\"http://x.y/1.b\">http://x.y/1.b</a> <a href=\"http://x.y/2\">http://x.y/2</a>!"),
            ("https://example.com:8080/a#frag;", "<a href=\"https://example.com:8080/a#frag\">https://example.com:8080/a#frag</a>;"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(
                linkify_with(text, &expr::Options::default(), usize::MAX).unwrap_or_default(),
                want,
                "{text}"
            );
            // In a template: `{% raw %}`, as Tornado's pages write it.
            let v = json!({ "m": text });
            assert_eq!(
                render_json("{% raw linkify(m) %}", v).unwrap(),
                want,
                "{text}"
            );
        }
    }

    /// `{% apply %}` with the functions Tornado can apply; expected
    /// outputs from Tornado 6.6.1, whose applied body is a function of its
    /// own (its names are its locals).
    #[test]
    fn apply_renders_the_body_then_the_function() {
        let v = json!({"name": "<Ann>", "msg": "see www.x.y now", "xs": [1, 2], "x": "X"});
        for (t, want) in [
            (
                "{% apply linkify %}{{ name }} says {{ msg }}{% end %}",
                "&amp;lt;Ann&amp;gt; says see <a href=\"http://www.x.y\">www.x.y</a> now",
            ),
            (
                "{% apply xhtml_escape %}<b>{{ name }}</b>{% end %}",
                "&lt;b&gt;&amp;lt;Ann&amp;gt;&lt;/b&gt;",
            ),
            ("{% apply url_escape %}a b&{{ x }}{% end %}", "a+b%26X"),
            (
                "{% apply escape %}{% for i in xs %}<{{ i }}>{% end %}{% end %}",
                "&lt;1&gt;&lt;2&gt;",
            ),
            (
                "{% set y = 1 %}{% apply url_escape %}{% set y = 2 %}{{ y }}{% end %}{{ y }}",
                "21",
            ),
            (
                "{% for i in xs %}{% apply url_escape %} {{ i }} {% end %}{% end %}",
                "+1++2+",
            ),
            ("{% set x = 5 %}{% apply url_escape %}{{ x }}{% end %}", "5"),
        ] {
            assert_eq!(render_json(t, v.clone()).unwrap(), want, "{t}");
        }
        // Unbound inside until bound inside; gone after.
        assert_eq!(
            render_json(
                "{% apply url_escape %}{{ x }}{% set x = 3 %}{% end %}",
                v.clone()
            )
            .unwrap_err(),
            at(1, TemplateError::Undefined("x".into()))
        );
        assert_eq!(
            render_json(
                "{% apply url_escape %}{% for j in xs %}{% end %}{% end %}{{ j }}",
                v.clone()
            )
            .unwrap_err(),
            at(1, TemplateError::Undefined("j".into()))
        );
        // Walking the body for its names is counted as steps, also for
        // branches not taken.
        let t = Template::parse(
            "{% for i in xs %}{% apply escape %}{% if 0 %}{% if 0 %}{% if 0 %}{% end %}{% end %}{% end %}{% end %}{% end %}",
        )
        .unwrap();
        let Value::Object(map) = &v else {
            unreachable!()
        };
        assert!(t
            .render_limited(Root::Object(map), None, 100, 1 << 20)
            .is_ok());
        assert!(matches!(
            t.render_limited(Root::Object(map), None, 10, 1 << 20),
            Err(TemplateError::TooLarge(_))
        ));
        // No break out of it; only functions of text that Tornado can apply.
        for bad in [
            "{% for i in xs %}{% apply escape %}{% break %}{% end %}{% end %}",
            "{% apply squeeze %}x{% end %}",
            "{% apply json_encode %}x{% end %}",
            "{% apply len %}x{% end %}",
            "{% apply upper %}x{% end %}",
            "{% apply escape %}x",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unsupported_and_malformed_tags_are_refused_at_parse() {
        for tag in [
            "{% module Entry(\"m.html\")[0] %}",
            "{% apply squeeze %}x{% end %}",
            "{% autoescape linkify %}",
            "{% autoescape %}",
            "{% try %}x{% end %}",
            "{% while x = 1 %}x{% end %}",
            "{% import os %}",
            "{% if a = b %}{% end %}",
            "{% if %}{% end %}",
            "{% for x in range(3, 2, 1, 0) %}{% end %}",
            "{% for x y %}{% end %}",
            "{% for x in a.items() %}{% end %}",
            "{% for a, b in m.keys() %}{% end %}",
            "{% set x %}",
            "{% set 1x = a %}",
            "{% include '' %}",
            "{% block %}{% end %}",
            "{% else x %}",
            "{{ f(x }}",
            "{{ f(x)(y) }}",
        ] {
            let err = Template::parse(tag).map(|_| ()).unwrap_err();
            assert!(
                matches!(&err, TemplateError::At { line: 1, error } if matches!(**error, TemplateError::BadTag(_))),
                "{tag}: {err:?}"
            );
        }
        assert!(Template::parse("{% comment anything at all %}").is_ok());
        // Tornado ignores what follows `end`; an `end` closing nothing is
        // still an error.
        assert!(Template::parse("{% if a %}{% end if %}").is_ok());
        assert!(Template::parse("{% end x %}").is_err());
    }

    #[test]
    fn unbalanced_and_unclosed_blocks_fail_at_parse() {
        for (src, err) in [
            ("x{% end %}", TemplateError::Unbalanced("end".into())),
            ("{% else %}", TemplateError::Unbalanced("else".into())),
            ("{% elif a %}", TemplateError::Unbalanced("elif a".into())),
            (
                "{% if a %}{% else %}{% else %}{% end %}",
                TemplateError::Unbalanced("else".into()),
            ),
            (
                "{% if a %}{% else %}{% elif b %}{% end %}",
                TemplateError::Unbalanced("elif b".into()),
            ),
            (
                "{% block b %}{% elif a %}{% end %}",
                TemplateError::Unbalanced("elif a".into()),
            ),
            (
                "{% if a %}{% for x in y %}{% end %}",
                TemplateError::UnclosedBlock("if a".into()),
            ),
            (
                "{% block main %}",
                TemplateError::UnclosedBlock("block main".into()),
            ),
            (
                "{% for x in y %}{% end %}{% end %}",
                TemplateError::Unbalanced("end".into()),
            ),
        ] {
            assert_eq!(Template::parse(src).unwrap_err(), at(1, err), "{src}");
        }
    }

    #[test]
    fn nesting_is_bounded_at_parse_without_overflowing_the_stack() {
        let deep = |n: usize| "{% if a %}".repeat(n) + &"{% end %}".repeat(n);
        let t = Template::parse(&deep(MAX_NESTING)).unwrap();
        assert_eq!(t.render_value(&json!({"a": 1})).unwrap(), "");
        for n in [MAX_NESTING + 1, 10_000] {
            assert_eq!(
                Template::parse(&deep(n)).unwrap_err(),
                at(
                    1,
                    TemplateError::TooDeep("{% if a %} nests blocks deeper than 100".into())
                ),
                "{n}"
            );
        }
        // Unclosed, far too deep: still the depth error, not a crash.
        assert!(matches!(
            Template::parse(&"{% for x in a %}".repeat(100_000))
                .unwrap_err()
                .innermost(),
            TemplateError::TooDeep(_)
        ));
    }

    #[test]
    fn include_renders_with_the_current_names() {
        let files = [
            (
                "page.html",
                "<ul>{% for message in messages %}{% include \"parts/message.html\" %}{% end %}</ul>{{ title }}",
            ),
            ("parts/message.html", "<li>{{ message.body }}{% include \"sig.html\" %}</li>"),
            ("parts/sig.html", "~{{ title }}"),
        ];
        let page = load(&files, "page.html", 0).unwrap();
        let v = json!({"title": "T&", "messages": [{"body": "a"}, {"body": "<b>"}]});
        assert_eq!(
            page.render_value(&v).unwrap(),
            "<ul><li>a~T&amp;</li><li>&lt;b&gt;~T&amp;</li></ul>T&amp;"
        );
        // An error inside an include names it.
        let err = page
            .render_value(&json!({"messages": [{"body": "a"}]}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "in \"parts/message.html\": in \"sig.html\": undefined variable \"title\" at line 1"
        );
        // Without a loader, include is a load error.
        assert!(matches!(
            Template::parse("{% include \"x.html\" %}").unwrap_err(),
            TemplateError::At { line: 1, error } if matches!(*error, TemplateError::Load(_))
        ));
    }

    /// Tornado prints `inf` and `nan`; a template's values are JSON, which
    /// has neither, so the render fails there (a documented difference),
    /// with an error `{% try %}` catches.
    #[test]
    fn non_finite_floats_are_an_error_a_try_catches() {
        for src in [
            "{{ float('inf') }}",
            "{{ float('-inf') }}",
            "{{ float('nan') }}",
            "{{ 1e308 * 10 }}",
            "{{ -1e308 - 1e308 }}",
            "{{ 1e308 + 1e308 - 1e308 }}",
        ] {
            let err = Template::parse(src)
                .unwrap()
                .render_value(&json!({}))
                .unwrap_err();
            assert!(
                matches!(err.innermost(), TemplateError::Type(m) if m.contains("not a finite number")),
                "{src}: {err}"
            );
        }
        let t = Template::parse("{% try %}{{ 1e308 * 10 }}{% except %}inf{% end %}").unwrap();
        assert_eq!(t.render_value(&json!({})).unwrap(), "inf");
    }

    /// Tornado strips `"` and then `'` from both ends of the name, so a
    /// name needs no quotes (`{% extends base.html %}`).
    #[test]
    fn include_and_extends_names_as_tornado_reads_them() {
        let files = [
            (
                "page.html",
                "{% extends base.html %}{% block b %}{% include 'p.html' %}{% include p.html %}{% end %}",
            ),
            ("base.html", "[{% block b %}{% end %}]{% include \"p.html' %}"),
            ("p.html", "P"),
        ];
        let page = load(&files, "page.html", 0).unwrap();
        assert_eq!(page.render_value(&json!({})).unwrap(), "[PP]P");
        for src in ["{% include %}", "{% include '' %}", "{% extends \"'\" %}"] {
            assert!(
                matches!(
                    Template::parse(src).unwrap_err().innermost(),
                    TemplateError::BadTag(_)
                ),
                "{src}"
            );
        }
    }

    #[test]
    fn include_cycles_are_an_error_not_a_stack_overflow() {
        let files = [
            ("a.html", "a{% include \"b.html\" %}"),
            ("b.html", "b{% include \"a.html\" %}"),
            ("self.html", "{% include \"self.html\" %}"),
        ];
        for name in ["a.html", "self.html"] {
            let mut err = load(&files, name, 0).unwrap_err();
            let mut levels = 0;
            while let TemplateError::In { error, .. } = err {
                err = *error;
                levels += 1;
            }
            assert!(matches!(err, TemplateError::TooDeep(_)), "{name}: {err:?}");
            assert_eq!(levels, MAX_INCLUDE_DEPTH + 1, "{name}");
        }
    }

    #[test]
    fn resolve_name_is_relative_and_stays_inside_the_root() {
        assert_eq!(resolve_name("page.html", "x.html").unwrap(), "x.html");
        assert_eq!(
            resolve_name("a/b/page.html", "x.html").unwrap(),
            "a/b/x.html"
        );
        assert_eq!(
            resolve_name("a/b/page.html", "../x.html").unwrap(),
            "a/x.html"
        );
        assert_eq!(
            resolve_name("a/b/page.html", "./c/x.html").unwrap(),
            "a/b/c/x.html"
        );
        assert_eq!(resolve_name("a/b/page.html", "/x.html").unwrap(), "x.html");
        assert!(resolve_name("page.html", "../x.html").is_err());
        assert!(resolve_name("a/page.html", "../../x.html").is_err());
        assert!(resolve_name("a/page.html", "..").is_err());
    }

    #[test]
    fn extends_replaces_the_parents_blocks() {
        let files = [
            (
                "base.html",
                "<title>{% block title %}Base{% end %}</title>{% block body %}<main>{% block content %}none{% end %}</main>{% end %}<footer>{% block footer %}f{% end %}</footer>",
            ),
            (
                "layout.html",
                "{% extends \"base.html\" %}ignored{% block content %}<nav/>{% block inner %}layout{% end %}{% end %}{% block footer %}F {{ year }}{% end %}",
            ),
            (
                "page.html",
                "{% extends \"layout.html\" %}{% block title %}{{ name }}{% end %}{% block inner %}{% for i in items %}{{ i }}{% end %}{% end %}",
            ),
            ("direct.html", "{% extends \"base.html\" %}{% block title %}D{% end %}"),
            ("alone.html", "a{% block x %}b{% end %}c"),
        ];
        let v = json!({"name": "P<", "items": [1, 2], "year": 2024});
        assert_eq!(
            load(&files, "page.html", 0)
                .unwrap()
                .render_value(&v)
                .unwrap(),
            "<title>P&lt;</title><main><nav/>12</main><footer>F 2024</footer>"
        );
        assert_eq!(
            load(&files, "layout.html", 0)
                .unwrap()
                .render_value(&v)
                .unwrap(),
            "<title>Base</title><main><nav/>layout</main><footer>F 2024</footer>"
        );
        assert_eq!(
            load(&files, "direct.html", 0)
                .unwrap()
                .render_value(&v)
                .unwrap(),
            "<title>D</title><main>none</main><footer>f</footer>"
        );
        assert_eq!(
            load(&files, "alone.html", 0)
                .unwrap()
                .render_value(&v)
                .unwrap(),
            "abc"
        );
        for bad in [
            "{% if a %}{% extends \"base.html\" %}{% end %}",
            "{% extends \"base.html\" %}{% extends \"base.html\" %}",
        ] {
            let files = [("base.html", "b"), ("bad.html", bad)];
            let err = load(&files, "bad.html", 0).unwrap_err();
            let tag = TemplateError::BadTag("extends \"base.html\"".into());
            assert_eq!(err, at(1, tag), "{bad}");
            assert_eq!(
                err.to_string(),
                "unsupported tag \"extends \\\"base.html\\\"\": only one extends, outside every block at line 1"
            );
        }
    }

    #[test]
    fn a_block_shown_again_by_an_include_takes_the_last_definition() {
        // Tornado's order: the block inside the included template is found
        // after the child's, so it wins and nothing recurses.
        let files = [
            ("base.html", "[{% block b %}base{% end %}]"),
            ("shows.html", "({% block b %}shows{% end %})"),
            (
                "child.html",
                "{% extends \"base.html\" %}{% block b %}x{% include \"shows.html\" %}{% end %}",
            ),
        ];
        let t = load(&files, "child.html", 0).unwrap();
        assert_eq!(t.render_value(&json!({})).unwrap(), "[shows]");
    }

    #[test]
    fn render_depth_is_bounded_across_includes() {
        // Each template nests 90 blocks (under MAX_NESTING) around the
        // next include: three of them exceed MAX_RENDER_DEPTH.
        let wrap = |inner: &str| "{% if a %}".repeat(90) + inner + &"{% end %}".repeat(90);
        let (a, b, c) = (
            wrap("{% include \"b.html\" %}"),
            wrap("{% include \"c.html\" %}"),
            wrap("deep"),
        );
        let files = [
            ("a.html", a.as_str()),
            ("b.html", b.as_str()),
            ("c.html", c.as_str()),
        ];
        assert_eq!(
            load(&files, "b.html", 0)
                .unwrap()
                .render_value(&json!({"a": 1}))
                .unwrap(),
            "deep"
        );
        let t = load(&files, "a.html", 0).unwrap();
        // On a small stack: the bound holds before the stack runs out.
        let err = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || t.render_value(&json!({"a": 1})).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
        let mut err = err;
        while let TemplateError::In { error, .. } = err {
            err = *error;
        }
        assert!(matches!(err, TemplateError::TooDeep(_)), "{err:?}");
    }

    #[test]
    fn render_value_needs_an_object_and_render_with_serializes() {
        let t = Template::parse("{{ name }}:{% for t in tags %}{{ t }}{% end %}").unwrap();
        for v in [json!([1]), json!("s"), json!(null), json!(1)] {
            assert!(
                matches!(t.render_value(&v), Err(TemplateError::Type(_))),
                "{v}"
            );
        }
        #[derive(Serialize)]
        struct Page<'a> {
            name: &'a str,
            tags: Vec<&'a str>,
        }
        assert_eq!(
            t.render_with(&Page {
                name: "n",
                tags: vec!["a", "b"]
            })
            .unwrap(),
            "n:ab"
        );
        assert!(matches!(
            t.render_with(&[1, 2]),
            Err(TemplateError::Type(_))
        ));
    }

    #[test]
    fn whitespace_is_kept_as_written() {
        let src = "<ul>\n  {% for i in xs %}\n  <li>{{ i }}</li>\n  {% end %}\n</ul>\n";
        assert_eq!(
            render_json(src, json!({"xs": [1, 2]})).unwrap(),
            "<ul>\n  \n  <li>1</li>\n  \n  <li>2</li>\n  \n</ul>\n"
        );
    }

    #[test]
    fn the_step_and_output_bounds_are_exact() {
        // Root: 1 text + 1 for; each of 3 iterations: 1 + its 2 nodes.
        let t = Template::parse("a{% for x in xs %}{{ x }}-{% end %}").unwrap();
        let v = json!({"xs": [1, 2, 3]});
        let Value::Object(map) = &v else {
            unreachable!()
        };
        let run = |steps, out| t.render_limited(Root::Object(map), None, steps, out);
        assert_eq!(run(11, 100).unwrap(), "a1-2-3-");
        match run(10, 100).unwrap_err() {
            TemplateError::TooLarge(msg) => assert!(msg.contains("10 steps"), "{msg}"),
            e => panic!("{e:?}"),
        }
        // The output may be as long as the bound, not longer.
        assert_eq!(run(100, 7).unwrap(), "a1-2-3-");
        for max in [6, 3, 0] {
            assert_eq!(
                run(100, max).unwrap_err().to_string(),
                format!("too large: output over {max} bytes")
            );
        }
    }

    #[test]
    fn autoescape_none_reaches_every_expression_of_its_file() {
        let src = "{% block a %}{% if x %}{% for i in xs %}{% block b %}{{ i }}{% end %}{% end %}{% else %}{{ x }}{% end %}{% end %}{{ x }}{% autoescape None %}";
        let t = Template::parse(src).unwrap();
        assert_eq!(
            t.render_value(&json!({"x": "<", "xs": ["&"]})).unwrap(),
            "&<"
        );
        assert_eq!(t.render_value(&json!({"x": "", "xs": []})).unwrap(), "");
        let t = Template::parse(&src.replace("None", "xhtml_escape")).unwrap();
        assert_eq!(
            t.render_value(&json!({"x": "<", "xs": ["&"]})).unwrap(),
            "&amp;&lt;"
        );
    }

    #[test]
    fn bad_tags_explain_themselves() {
        assert_eq!(
            Template::parse("{% import os %}").unwrap_err().to_string(),
            "unsupported tag \"import os\": Tornado's tag is not supported: cyclone templates run Python expressions, not statements at line 1"
        );
        assert!(Template::parse("{% endblock %}")
            .unwrap_err()
            .to_string()
            .contains("every block closes with {% end %}"));
    }

    #[test]
    fn parse_errors_say_the_line_of_their_tag() {
        use TemplateError::{BadTag, TooDeep, Unbalanced, Unclosed, UnclosedBlock};
        for (src, err) in [
            ("a\n\n{{ x", at(3, Unclosed("{{".into()))),
            ("a\n{% if x %}\nb {%", at(3, Unclosed("{%".into()))),
            ("{#\n\n", at(1, Unclosed("{#".into()))),
            // A tag's line is where its `{{` is; the lines inside it count.
            (
                "{{ a }}{{ b\n}}\n{% bogus %}",
                at(3, BadTag("bogus".into())),
            ),
            ("a\nb {{ x ** }}\n", at(2, BadTag("x **".into()))),
            (
                "{{ a }}\r\n{% set 1 = a %}",
                at(2, BadTag("set 1 = a".into())),
            ),
            ("é\n{{! x \n}} {% x", at(3, Unclosed("{%".into()))),
            ("\n{{{ x", at(2, Unclosed("{{".into()))),
            ("\n\n\n{% end %}", at(4, Unbalanced("end".into()))),
            (
                "{% if a %}\n{% else %}\n{% else %}{% end %}",
                at(3, Unbalanced("else".into())),
            ),
            // An unclosed block: the line of the tag that opened it.
            (
                "x\n{% for i in xs %}\n{% if i %}\n{% end %}",
                at(2, UnclosedBlock("for i in xs".into())),
            ),
        ] {
            assert_eq!(Template::parse(src).unwrap_err(), err, "{src:?}");
        }
        let deep = "{% if a %}\n".repeat(MAX_NESTING + 1);
        assert_eq!(
            Template::parse(&deep).unwrap_err(),
            at(
                101,
                TooDeep("{% if a %} nests blocks deeper than 100".into())
            )
        );
        for (src, says) in [
            ("a\n\n{{ x", "{{ without its closing }} at line 3"),
            ("{#", "{# without its closing #} at line 1"),
            ("\n{% x", "{% without its closing %} at line 2"),
            (
                "\n\n\n{% end %}",
                "{% end %} without a matching open block at line 4",
            ),
            (
                "x\n{% for i in xs %}\n",
                "{% for i in xs %} without its {% end %} at line 2",
            ),
        ] {
            assert_eq!(Template::parse(src).unwrap_err().to_string(), says);
        }
        // A loader's error is the include's, at its line...
        assert_eq!(
            Template::parse("x\n{% include \"a.html\" %}").unwrap_err(),
            at(
                2,
                TemplateError::Load(
                    "cannot load \"a.html\": Template::parse has no loader (use parse_with_loader)"
                        .into()
                )
            )
        );
        // ... unless it already says where it is: in another template.
        let files = [
            ("page.html", "<h1>\n{% include \"parts/bad.html\" %}"),
            ("parts/bad.html", "ok\n\n{% if a = 1 %}{% end %}"),
        ];
        let err = load(&files, "page.html", 0).unwrap_err();
        assert_eq!(
            err,
            inside("parts/bad.html", at(3, BadTag("if a = 1".into())))
        );
        assert_eq!(
            err.to_string(),
            "in \"parts/bad.html\": unsupported tag \"if a = 1\": a condition is a Python expression: paths and literals with `and`, `or`, `not`, comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `is None`), arithmetic (`+`, `-`, `*`, `/`, `//`, `%`, `**`), subscripts, parentheses and calls of Tornado's template functions (static_url, json_encode, url_escape, xhtml_escape, escape, squeeze, linkify, len, str, int, abs, ...) or the application's (ApplicationBuilder::ui_method) at line 3"
        );
        assert_eq!(err.innermost(), &BadTag("if a = 1".into()));
    }

    #[test]
    fn render_errors_say_the_line_and_the_template() {
        use TemplateError::{Type, Undefined};
        let v = json!({"title": "T", "a": false, "s": "str", "xs": [1]});
        for (src, err) in [
            (
                "<h1>{{ title }}</h1>\n<p>{{ user.name }}</p>",
                at(2, Undefined("user.name".into())),
            ),
            (
                "{% if a %}\n{% elif b %}{% end %}",
                at(2, Undefined("b".into())),
            ),
            ("\n{% set x = nope %}", at(2, Undefined("nope".into()))),
            (
                "\n\n{% for c in a %}{% end %}",
                at(3, Type("cannot loop over \"a\": it is a boolean".into())),
            ),
            (
                "\n{% for k, v in s %}{% end %}",
                at(2, Type("cannot loop over \"s\": it is a string".into())),
            ),
            (
                "{% for a, b in xs %}\n{% end %}",
                at(
                    1,
                    Type("cannot unpack an element of \"xs\" into a, b: it is a number".into()),
                ),
            ),
            (
                "{% for x in xs %}{% else %}\n{% raw nope %}{% end %}",
                at(2, Undefined("nope".into())),
            ),
        ] {
            assert_eq!(render_json(src, v.clone()).unwrap_err(), err, "{src:?}");
        }
        assert_eq!(
            render_json("<h1>{{ title }}</h1>\n<p>{{ user.name }}</p>", v)
                .unwrap_err()
                .to_string(),
            "undefined variable \"user.name\" at line 2"
        );

        // Through includes and extends: the template each node is from.
        let files = [
            (
                "base.html",
                "<title>{% block title %}{{ site }}{% end %}</title>\n{% block body %}{% end %}\n{{ footer }}",
            ),
            (
                "page.html",
                "{% extends \"base.html\" %}\n{% block body %}\n{{ who }}{% include \"parts/list.html\" %}{% end %}",
            ),
            (
                "parts/list.html",
                "<ul>\n{% for i in items %}<li>{{ i.name }}</li>{% end %}</ul>{% include \"card.html\" %}",
            ),
            ("parts/card.html", "{% block card %}\n\n{{ card }}{% end %}"),
            (
                "layout.html",
                "{% extends \"base.html\" %}{% block title %}\n{{ heading }}{% end %}",
            ),
            ("deep.html", "{% extends \"layout.html\" %}"),
        ];
        let full = json!({
            "site": "S", "footer": "F", "who": "W", "card": "C", "heading": "H",
            "items": [{"name": "a"}],
        });
        let page = load(&files, "page.html", 0).unwrap();
        assert_eq!(
            page.render_value(&full).unwrap(),
            "<title>S</title>\n\nW<ul>\n<li>a</li></ul>\n\nC\nF"
        );
        let without = |key: &str| {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(key);
            v
        };
        for (template, missing, err) in [
            // The child's own block, shown by the parent: the child's line.
            (&page, "who", at(3, Undefined("who".into()))),
            // The parent's text and the parent's own blocks.
            (
                &page,
                "footer",
                inside("base.html", at(3, Undefined("footer".into()))),
            ),
            (
                &page,
                "site",
                inside("base.html", at(1, Undefined("site".into()))),
            ),
            (
                &page,
                "items",
                inside("parts/list.html", at(2, Undefined("items".into()))),
            ),
            // A block of an included template (within an include).
            (
                &page,
                "card",
                inside(
                    "parts/list.html",
                    inside("card.html", at(3, Undefined("card".into()))),
                ),
            ),
        ] {
            assert_eq!(
                template.render_value(&without(missing)).unwrap_err(),
                err,
                "{missing}"
            );
        }
        let deep = load(&files, "deep.html", 0).unwrap();
        assert_eq!(
            deep.render_value(&without("footer")).unwrap_err(),
            inside(
                "layout.html",
                inside("base.html", at(3, Undefined("footer".into())))
            )
        );
        let err = deep.render_value(&without("heading")).unwrap_err();
        assert_eq!(
            err,
            inside("layout.html", at(2, Undefined("heading".into())))
        );
        assert_eq!(
            err.to_string(),
            "in \"layout.html\": undefined variable \"heading\" at line 2"
        );
        let mut bad_item = full.clone();
        bad_item["items"] = json!([{"name": "a"}, 2]);
        assert_eq!(
            page.render_value(&bad_item).unwrap_err().to_string(),
            "in \"parts/list.html\": undefined variable \"i.name\" at line 2"
        );
    }

    #[test]
    fn break_and_continue_end_a_loop_or_an_iteration() {
        let items: Vec<Value> = (1..=5)
            .map(|n| json!({"n": n, "skip": n == 2, "stop": n == 4}))
            .collect();
        let v = json!({
            "items": items, "xs": [1, 2], "empty": [], "rows": [[1, 2], [3, 4]],
            "m": {"a": 0, "b": 1, "c": 0}, "i": "outer", "y": "inner",
        });
        for (src, want) in [
            (
                "{% for i in items %}{% if i.skip %}{% continue %}{% end %}{% if i.stop %}{% break %}{% end %}{{ i.n }},{% end %}",
                "1,3,",
            ),
            // `else`: unless the loop broke, also after no iteration.
            (
                "{% for i in items %}{% if i.stop %}{% break %}{% end %}{% else %}done{% end %}",
                "",
            ),
            ("{% for x in xs %}{{ x }}{% else %}!{% end %}", "12!"),
            ("[{% for x in empty %}{{ x }}{% else %}!{% end %}]", "[!]"),
            ("{% for x in xs %}{% continue %}x{% else %}!{% end %}", "!"),
            (
                "{% for x in xs %}{% if x %}{% if x %}{% break %}{% end %}{% end %}x{% end %}.",
                ".",
            ),
            // Only the innermost loop.
            (
                "{% for r in rows %}[{% for c in r %}{{ c }}{% break %}{% end %}]{% end %}",
                "[1][3]",
            ),
            // In an `else` part: the loop around it.
            (
                "{% for r in rows %}({% for c in r %}{{ c }}{% else %}{% break %}{% end %}){% end %}end",
                "(12end",
            ),
            (
                "{% for r in rows %}({% for c in r %}{{ c }}{% else %}{% continue %}{% end %}){% end %}",
                "(12(34",
            ),
            (
                "{% for k, v in m.items() %}{% if v %}{% break %}{% end %}{{ k }}{% end %}",
                "a",
            ),
            // A block's own loop.
            (
                "{% block b %}{% for x in xs %}{{ x }}{% break %}{% end %}{% end %}",
                "1",
            ),
            // Names bound in the loop outlive it, however it ends.
            (
                "{% for x in xs %}{% if x %}{% set i = y %}{{ i }}{% break %}{% end %}{% end %}{{ i }}",
                "innerinner",
            ),
        ] {
            assert_eq!(render_json(src, v.clone()).unwrap(), want, "{src}");
        }

        use TemplateError::{BadTag, Unbalanced};
        for (src, err) in [
            ("{% break %}", at(1, Unbalanced("break".into()))),
            (
                "{% if a %}\n{% continue %}{% end %}",
                at(2, Unbalanced("continue".into())),
            ),
            (
                "{% for x in xs %}{% block b %}{% break %}{% end %}{% end %}",
                at(1, Unbalanced("break".into())),
            ),
            (
                "{% for x in xs %}{% else %}\n{% break %}{% end %}",
                at(2, Unbalanced("break".into())),
            ),
            (
                "{% for x in xs %}{% break now %}{% end %}",
                at(1, BadTag("break now".into())),
            ),
            (
                "{% for x in xs %}{% elif a %}{% end %}",
                at(1, Unbalanced("elif a".into())),
            ),
            (
                "{% for x in xs %}{% else %}{% else %}{% end %}",
                at(1, Unbalanced("else".into())),
            ),
        ] {
            assert_eq!(Template::parse(src).unwrap_err(), err, "{src}");
        }
        assert_eq!(
            Template::parse("\n{% break %}").unwrap_err().to_string(),
            "{% break %} outside a {% for %} loop at line 2"
        );
        assert_eq!(
            Template::parse("{% for x in xs %}{% continue 2 %}{% end %}")
                .unwrap_err()
                .to_string(),
            "unsupported tag \"continue 2\": takes nothing after it at line 1"
        );
        // An included template is not in the includer's loop.
        let files = [
            (
                "page.html",
                "{% for x in xs %}{% include \"inc.html\" %}{% end %}",
            ),
            ("inc.html", "{{ x }}\n{% break %}"),
        ];
        assert_eq!(
            load(&files, "page.html", 0).unwrap_err(),
            inside("inc.html", at(2, Unbalanced("break".into())))
        );
    }

    #[test]
    fn a_template_with_extends_cannot_be_included() {
        let files = [
            ("base.html", "<html>{% block b %}B{% end %}</html>"),
            (
                "card.html",
                "{% extends \"base.html\" %}{% block b %}card{% end %}",
            ),
            ("page.html", "<p>\n{% include \"card.html\" %}</p>"),
            ("mid.html", "{% include \"card.html\" %}"),
            ("outer.html", "{% include \"mid.html\" %}"),
            ("plain.html", "[{% block b %}plain{% end %}]"),
            ("ok.html", "<p>{% include \"plain.html\" %}</p>"),
        ];
        let err = load(&files, "page.html", 0).unwrap_err();
        assert_eq!(
            err,
            at(2, TemplateError::BadTag("include \"card.html\"".into()))
        );
        assert_eq!(
            err.to_string(),
            "unsupported tag \"include \\\"card.html\\\"\": that template has {% extends %}: a template with a parent cannot be included (Tornado raises NotImplementedError for it) at line 2"
        );
        assert_eq!(
            load(&files, "outer.html", 0).unwrap_err(),
            inside(
                "mid.html",
                at(1, TemplateError::BadTag("include \"card.html\"".into()))
            )
        );
        // Without extends, included blocks render in place.
        assert_eq!(
            load(&files, "ok.html", 0)
                .unwrap()
                .render_value(&json!({}))
                .unwrap(),
            "<p>[plain]</p>"
        );
    }

    #[test]
    fn escape_and_xhtml_escape_escape_twice_in_double_braces_as_tornado_does() {
        let v = json!({"x": "<a & 'b'>", "n": 3, "t": true, "nil": null, "xs": ["<"]});
        // Tornado 6.6.1's output.
        let twice = "&amp;lt;a &amp;amp; &amp;#x27;b&amp;#x27;&amp;gt;";
        assert_eq!(
            render_json("{{ escape(x) }}|{{ xhtml_escape(x) }}", v.clone()).unwrap(),
            format!("{twice}|{twice}")
        );
        let once = "&lt;a &amp; &#x27;b&#x27;&gt;";
        assert_eq!(
            render_json("{% raw escape(x) %}|{% raw xhtml_escape( x ) %}", v.clone()).unwrap(),
            format!("{once}|{once}")
        );
        // `{% autoescape None %}` is for the whole file, as in Tornado.
        assert_eq!(
            render_json("{{ x }}{% autoescape None %}|{{ escape(x) }}", v.clone()).unwrap(),
            format!("<a & 'b'>|{once}")
        );
        // Not strings: the text `{{ }}` prints, escaped.
        assert_eq!(
            render_json(
                "{% raw escape(n) %}|{% raw escape(t) %}|[{% raw escape(nil) %}]|{% raw escape(xs) %}",
                v.clone()
            )
            .unwrap(),
            "3|True|[None]|[&#x27;&lt;&#x27;]"
        );
        // A literal argument; a plain name `escape` is still a path.
        assert_eq!(
            render_json(
                "{% raw escape('<b>') %}|{{ escape }}",
                json!({"escape": "e<"})
            )
            .unwrap(),
            "&lt;b&gt;|e&lt;"
        );
        assert_eq!(
            render("{{ escape(x) }}", &[("x", "&")]).unwrap(),
            "&amp;amp;"
        );
    }

    #[test]
    fn json_encode_writes_json_and_escapes_the_end_of_a_script() {
        let v = json!({
            "x": {"a": "</script>", "b": [1, 2.5, null, true], "u": "é\u{2028}"},
            "s": "a</b>\"c", "n": -3, "f": 0.5, "nil": null, "t": false,
        });
        // What Tornado 6.6.1's json_encode (json.dumps) writes for it.
        let raw = r#"{"a": "<\/script>", "b": [1, 2.5, null, true], "u": "\u00e9\u2028"}"#;
        assert_eq!(
            render_json("{% raw json_encode(x) %}", v.clone()).unwrap(),
            raw
        );
        // `{{ }}` escapes it, as Tornado does.
        assert_eq!(
            render_json("{{ json_encode(x) }}", v.clone()).unwrap(),
            crate::http::html_escape(raw)
        );
        assert_eq!(
            render_json(
                "{% raw json_encode(s) %}|{% raw json_encode(n) %}|{% raw json_encode(f) %}|{% raw json_encode(nil) %}|{% raw json_encode(t) %}",
                v.clone()
            )
            .unwrap(),
            "\"a<\\/b>\\\"c\"|-3|0.5|null|false"
        );
        assert_eq!(
            render_json("{{ json_encode(s) }}", v).unwrap(),
            "&quot;a&lt;\\/b&gt;\\&quot;c&quot;"
        );
        // A pair's value is a string; a literal too.
        assert_eq!(
            render(
                "{% raw json_encode(q) %}{% raw json_encode(\"</\") %}",
                &[("q", "a\nb")]
            )
            .unwrap(),
            "\"a\\nb\"\"<\\/\""
        );
    }

    /// `json_encode` against Python's `json.dumps` (3.13), whose output is
    /// copied here: separators, `ensure_ascii` with surrogate pairs and
    /// DEL, empty containers, and floats in `repr`'s notation on both
    /// sides of its switch to exponents (1e-4 and 1e16).
    #[test]
    fn json_encode_is_pythons_json_dumps() {
        let v = json!({
            "a": [1, 2.5, null, true],
            "u": "é\u{2028}\u{1F600}\u{7f}\u{0}\u{1f}\"\\/",
            "e": [[], {}, [[]], {"a": {}}],
        });
        assert_eq!(
            render_json("{% raw json_encode(x) %}", json!({ "x": v })).unwrap(),
            r#"{"a": [1, 2.5, null, true], "u": "\u00e9\u2028\ud83d\ude00\u007f\u0000\u001f\"\\/", "e": [[], {}, [[]], {"a": {}}]}"#
        );
        // python3 -c 'print(json.dumps(v))' for each.
        let floats = [
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.5, "0.5"),
            (-0.0, "-0.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-4, "0.0001"),
            (1.5e-4, "0.00015"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (2.5e-300, "2.5e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-1234.5678, "-1234.5678"),
            (1e22, "1e+22"),
            (12345.0, "12345.0"),
            // Exactly halfway between two shortest candidates: Python
            // rounds to even, the shortest-digits search does not.
            (1.059_438_285_926_254_3e15, "1059438285926254.2"),
        ];
        for (f, python) in floats {
            assert_eq!(python_float_repr(f), python, "{f:e}");
            // `{{ }}` prints Python's str(), which is the same for floats.
            assert_eq!(
                render_json("{{ f }}|{% raw f %}", json!({ "f": f })).unwrap(),
                format!("{python}|{python}")
            );
            assert_eq!(
                render_json("{% raw json_encode(f) %}", json!({ "f": f })).unwrap(),
                python
            );
        }
    }

    /// `Whitespace::filter` against Tornado 6.6.1's
    /// `filter_whitespace(mode, text)` (outputs copied from Python), with
    /// Python's `\s` (no-break and em spaces, the U+001C..1F separators).
    #[test]
    fn whitespace_filters_are_tornados() {
        for (text, single, oneline) in [
            ("a  b\t\tc", "a b c", "a b c"),
            ("  x \n\n   y  \n", " x\ny\n", " x y "),
            ("\n", "\n", " "),
            (" \t \n \t ", "\n", " "),
            ("a\u{a0}\u{a0}b\u{2003}\nc", "a\u{a0}\u{a0}b\nc", "a b c"),
            ("p\u{1c}\u{1d}q", "p\u{1c}\u{1d}q", "p q"),
            ("a\r\nb", "a\nb", "a b"),
            ("\t", " ", " "),
            ("", "", ""),
        ] {
            assert_eq!(Whitespace::Single.filter(text), single, "{text:?}");
            assert_eq!(Whitespace::Oneline.filter(text), oneline, "{text:?}");
            assert_eq!(Whitespace::All.filter(text), text);
        }
        assert_eq!(Whitespace::for_name("a/page.html"), Whitespace::Single);
        assert_eq!(Whitespace::for_name("app.js"), Whitespace::Single);
        assert_eq!(Whitespace::for_name("mail.txt"), Whitespace::All);
        assert!("compact".parse::<Whitespace>().is_err());
    }

    /// As in Tornado: the filter runs per chunk of text between tags (a
    /// comment or a `{{!` literal ends one), a chunk with `<pre>` is kept,
    /// and `{% whitespace %}` changes the mode for the rest of the file.
    #[test]
    fn whitespace_modes_apply_per_chunk_and_change_with_the_tag() {
        let none = |name: &str| Err(TemplateError::Load(name.to_string()));
        let src = "a  {# c #}  b\n\n  {{ x }}  <pre>  k  </pre>  {{! y }}\t\t{% whitespace oneline %}\n  z\n  \n{% whitespace all %}  w  ";
        let t = Template::parse_with(src, Whitespace::Single, none).unwrap();
        // Tornado 6.6.1: Loader(d).load("t.html").generate(x="1").
        assert_eq!(
            t.render(&[("x", "1")]).unwrap(),
            "a  b\n1  <pre>  k  </pre>  {{ y }}  z   w  "
        );
        let t = Template::parse_with(src, Whitespace::All, none).unwrap();
        assert_eq!(
            t.render(&[("x", "1")]).unwrap(),
            "a    b\n\n  1  <pre>  k  </pre>  {{ y }}\t\t z   w  "
        );
    }

    #[test]
    fn url_escape_is_quote_plus_of_the_utf8_text() {
        let v = json!({
            "q": "a b/c?d=é&~-_.!*'()+%", "n": 2.5, "t": true, "nil": null,
            "xs": [1, "a b"], "plain": "Az09_.-~",
        });
        // Python: quote_plus("a b/c?d=é&~-_.!*'()+%").
        assert_eq!(
            render_json("{{ url_escape(q) }}", v.clone()).unwrap(),
            "a+b%2Fc%3Fd%3D%C3%A9%26~-_.%21%2A%27%28%29%2B%25"
        );
        assert_eq!(
            render_json(
                "{{ url_escape(n) }}|{{ url_escape(t) }}|[{{ url_escape(nil) }}]|{{ url_escape(xs) }}|{{ url_escape(plain) }}",
                v
            )
            .unwrap(),
            "2.5|True|[None]|%5B1%2C+%27a+b%27%5D|Az09_.-~"
        );
        assert_eq!(
            render(
                "<a href=\"?q={{ url_escape(q) }}&amp;p={{ url_escape('x y') }}\">",
                &[("q", "\u{1F600} <")]
            )
            .unwrap(),
            "<a href=\"?q=%F0%9F%98%80+%3C&amp;p=x+y\">"
        );
    }

    #[test]
    fn squeeze_collapses_control_and_space_runs_and_strips() {
        let v = json!({
            "s": "\u{a0} a \t\n\u{0} b\u{1f}  c \u{3000}",
            "inner": "a\u{a0}\u{a0}b\r\n\r\nc", "n": 7, "nil": null, "amp": "  a  &  b ",
        });
        // Python: re.sub(r"[\x00-\x20]+", " ", s).strip() is "a b c".
        assert_eq!(render_json("{{ squeeze(s) }}", v.clone()).unwrap(), "a b c");
        assert_eq!(
            render_json(
                "{{ squeeze(inner) }}|{{ squeeze(n) }}|[{{ squeeze(nil) }}]|{{ squeeze(amp) }}|{% raw squeeze(amp) %}|{{ squeeze(\"  \") }}.",
                v
            )
            .unwrap(),
            "a\u{a0}\u{a0}b c|7|[None]|a &amp; b|a & b|."
        );
    }

    #[test]
    fn while_and_try_keep_the_limits_and_python_s_rules() {
        // The step budget stops a loop that never ends; `except` does
        // not swallow the limit.
        let t = Template::parse("{% try %}{% while True %}x{% end %}{% except %}caught{% end %}")
            .unwrap();
        let err = t.render_value(&json!({})).unwrap_err();
        assert!(
            matches!(err.innermost(), TemplateError::TooLarge(_)),
            "{err}"
        );
        // A name a `set` binds is unbound until then, in a loop's test too
        // (Python's UnboundLocalError, as Tornado raises).
        let t = Template::parse("{% while n %}{% set n = n - 1 %}{% end %}").unwrap();
        let err = t.render_value(&json!({"n": 2})).unwrap_err();
        assert!(
            matches!(err.innermost(), TemplateError::Undefined(_)),
            "{err}"
        );
        // An error in `except` or `finally` is the block's.
        let t = Template::parse("{% try %}{{ a }}{% except %}{{ b }}{% end %}").unwrap();
        let err = t.render_value(&json!({})).unwrap_err();
        assert_eq!(err.innermost(), &TemplateError::Undefined("b".into()));
        // A `break` in `finally` discards the error, as in Python.
        let t = Template::parse(
            "{% for x in xs %}{% try %}{{ nope }}{% finally %}{% break %}{% end %}{% end %}ok",
        )
        .unwrap();
        assert_eq!(t.render_value(&json!({"xs": [1, 2]})).unwrap(), "ok");
        for bad in [
            "{% try %}x{% end %}",
            "{% try %}x{% except KeyError %}y{% end %}",
            "{% try %}x{% except %}y{% except %}z{% end %}",
            "{% try %}x{% finally %}y{% else %}z{% end %}",
            "{% try %}x{% else %}y{% end %}",
            "{% try %}x{% finally y %}z{% end %}",
            "{% try x %}y{% finally %}{% end %}",
            "{% except %}",
            "{% finally %}",
            "{% while %}x{% end %}",
            "{% while x %}{% elif y %}{% end %}",
            "{% if x %}{% except %}{% end %}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let says = |src: &str| Template::parse(src).unwrap_err().to_string();
        assert!(says("{% try %}x{% except KeyError %}y{% end %}").contains("bare `except`"));
    }

    #[test]
    fn modules_are_tornados_built_in_functions_unescaped() {
        let t = Template::parse("{% module linkify(t) %}|{% raw linkify(t) %}|{{ linkify(t) }}")
            .unwrap();
        let out = t
            .render_value(&json!({"t": "see http://a.b/?x=1&y"}))
            .unwrap();
        let link = r#"see <a href="http://a.b/?x=1&amp;y">http://a.b/?x=1&amp;y</a>"#;
        let parts: Vec<&str> = out.split('|').collect();
        assert_eq!(parts[..2], [link, link]);
        assert!(parts[2].starts_with("see &lt;a href=&quot;"), "{out}");
        // Without a request, xsrf_form_html is an error at its tag.
        let t = Template::parse("a\n{% module xsrf_form_html() %}").unwrap();
        let err = t.render_value(&json!({})).unwrap_err();
        assert_eq!(
            err,
            at(2, TemplateError::NeedsRequest("xsrf_form_html".into()))
        );
        assert_eq!(
            err.to_string(),
            "xsrf_form_html() needs a request: render with RequestContext::render, render_with \
             or render_string at line 2"
        );
        let with_url_only = t.render_value_with_static_url(&json!({}), |p| p.into());
        assert!(with_url_only.is_err());
        for bad in [
            "{{ modules.Template(\"x.html\") }}",
            "{{ modules.linkify() }}",
            "{{ modules.linkify(a, b) }}",
            "{{ modules.linkify(a, nope=1) }}",
            "{{ modules.xsrf_form_html(1) }}",
            "{{ modules.1x() }}",
            "{% module Entry(x)(y) %}",
            "{% module Entry(x).y %}",
            "{% module Entry(a=1, b) %}",
            "{% module Entry(a=1, a=2) %}",
            "{% module len(x) %}",
            "{% module Template(name) %}",
            "{% module Template(\"x.html\", 1) %}",
            "{% module Template(\"x.html\", a=1, a=2) %}",
            "{% module Template(\"x.html\", a.b=1) %}",
            "{% module Template(\"x.html\") + 'x' %}",
            "{% module linkify(t) + 'x' %}",
            "{% module xsrf_form_html(1) %}",
            "{% module xsrf_form_html %}",
            "{% module %}",
            "{{ xsrf_form_html(x) }}",
        ] {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("unsupported tag"), "{bad}: {err}");
        }
        let hint = Template::parse("{% module Entry %}")
            .unwrap_err()
            .to_string();
        assert!(
            hint.contains(
                "Template(\"name.html\", key=value), xsrf_form_html() and linkify(text), \
                 or Name(args, key=value) of the application's (ApplicationBuilder::ui_module)"
            ),
            "{hint}"
        );
        // An application's module parses, and fails where it is rendered
        // without one of that name.
        let t = Template::parse("a\n{% module Entry(x, k=1) %}").unwrap();
        let err = t.render_value(&json!({"x": 1})).unwrap_err().to_string();
        assert!(
            err.contains("Entry is no UI module") && err.ends_with("at line 2"),
            "{err}"
        );
    }

    #[test]
    fn static_url_needs_a_resolver_and_prints_its_url_escaped() {
        let src = "<link href=\"{{ static_url(\"css/app.css\") }}\">\n{% raw static_url('x y') %}|{{ static_url(file) }}|{{ static_url(n) }}";
        let t = Template::parse(src).unwrap();
        let v = json!({"file": "a&b.js", "n": 5});
        let html = t
            .render_value_with_static_url(&v, |path| format!("/static/{path}?v=1&q=\"'"))
            .unwrap();
        assert_eq!(
            html,
            "<link href=\"/static/css/app.css?v=1&amp;q=&quot;&#x27;\">\n\
             /static/x y?v=1&q=\"'|/static/a&amp;b.js?v=1&amp;q=&quot;&#x27;|/static/5?v=1&amp;q=&quot;&#x27;"
        );
        // Rendered on its own: an error at the tag's line, however rendered.
        let needs = || at(1, TemplateError::NeedsRequest("static_url".into()));
        assert_eq!(t.render_value(&v).unwrap_err(), needs());
        assert_eq!(t.render_with(&v).unwrap_err(), needs());
        assert_eq!(t.render(&[("file", "f")]).unwrap_err(), needs());
        let later = Template::parse("a\n\n{% if x %}{{ static_url(\"a.css\") }}{% end %}").unwrap();
        assert_eq!(later.render_value(&json!({"x": 0})).unwrap(), "a\n\n");
        let err = later.render_value(&json!({"x": 1})).unwrap_err();
        assert_eq!(err, at(3, TemplateError::NeedsRequest("static_url".into())));
        assert_eq!(
            err.to_string(),
            "static_url() needs a request: render with RequestContext::render, render_with or \
             render_string (and the static_path setting), or \
             Template::render_value_with_static_url at line 3"
        );
        // In an included template: named.
        let files = [
            ("page.html", "{% include \"head.html\" %}"),
            ("head.html", "\n{{ static_url(\"a.css\") }}"),
        ];
        let page = load(&files, "page.html", 0).unwrap();
        assert_eq!(
            page.render_value(&json!({})).unwrap_err(),
            inside(
                "head.html",
                at(2, TemplateError::NeedsRequest("static_url".into()))
            )
        );
        assert_eq!(
            page.render_value_with_static_url(&json!({}), |p| format!("/s/{p}"))
                .unwrap(),
            "\n/s/a.css"
        );
        // include_version=False: the resolver's URL without its `?v=`;
        // include_host=True needs a request's host.
        let kw = Template::parse(
            "{{ static_url('a b', include_version=False) }}|{{ static_url('c', include_version=0) }}|\
             {{ static_url('d', include_version=1) }}",
        )
        .unwrap();
        assert_eq!(
            kw.render_value_with_static_url(&v, |p| format!("/s/{p}?v=1"))
                .unwrap(),
            "/s/a b|/s/c|/s/d?v=1"
        );
        let host = Template::parse("{{ static_url('a', include_host=True) }}").unwrap();
        assert_eq!(
            host.render_value_with_static_url(&v, |p| format!("/s/{p}"))
                .unwrap_err(),
            at(
                1,
                TemplateError::Type(
                    "static_url(include_host=True) needs the request's host: render with \
                     RequestContext::render, render_with or render_string"
                        .into()
                )
            )
        );
        assert!(Template::parse("{{ static_url('a', v=1) }}").is_err());
        // A missing path argument is undefined, at its line.
        assert_eq!(
            t.render_value_with_static_url(&json!({"n": 1}), |p| p.into())
                .unwrap_err(),
            at(2, TemplateError::Undefined("file".into()))
        );
        // The resolver is called once per call, and not for other tags.
        let calls = std::cell::Cell::new(0);
        let count = |p: &str| {
            calls.set(calls.get() + 1);
            p.to_string()
        };
        let t = Template::parse("{% for x in xs %}{{ static_url(x) }}{% end %}{{ x }}").unwrap();
        let v = json!({"xs": ["a", "b"], "x": 1});
        // (`x` after the loop is its last value, as in Tornado.)
        assert_eq!(t.render_value_with_static_url(&v, count).unwrap(), "abb");
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn bad_function_calls_are_refused_at_parse_with_a_hint() {
        use TemplateError::BadTag;
        for (src, tag) in [
            (
                "\n{{ url_escape(x, plush=False) }}",
                "url_escape(x, plush=False)",
            ),
            ("\n{{ linkify(x, plus=True) }}", "linkify(x, plus=True)"),
            (
                "\n{{ url_escape(x, plus=1, plus=2) }}",
                "url_escape(x, plus=1, plus=2)",
            ),
            ("\n{{ url_escape(x, False) }}", "url_escape(x, False)"),
            ("\n{{ url_escape(x, plus) }}", "url_escape(x, plus)"),
            ("\n{{ static_url() }}", "static_url()"),
            ("\n{{ static_url(\"a\\xb\") }}", "static_url(\"a\\xb\")"),
            ("\n{{ static_url(\"a') }}", "static_url(\"a')"),
            ("\n{{ json_encode(x)(y) }}", "json_encode(x)(y)"),
            ("\n{{ squeeze x }}", "squeeze x"),
            ("\n{% raw json_encode(x, y) %}", "raw json_encode(x, y)"),
            ("\n{% json_encode(x) %}", "json_encode(x)"),
        ] {
            assert_eq!(
                Template::parse(src).unwrap_err(),
                at(2, BadTag(tag.into())),
                "{src}"
            );
        }
        let says = |src: &str| Template::parse(src).unwrap_err().to_string();
        assert_eq!(
            says("a\n{{ url_escape(x, plush=False) }}"),
            "unsupported tag \"url_escape(x, plush=False)\": a function takes one argument, an \
             expression, and only these keyword arguments: url_escape's plus, linkify's shorten, \
             extra_params, require_protocol and permitted_protocols (no call of its result) at \
             line 2"
        );
        assert!(says("{% raw json_encode(a, b) %}").contains("a function takes one argument"));
        assert!(says("{% json_encode(a) %}").contains("a function takes one argument"));
        // A call of another name parses (an application may add it with
        // ui_method) and fails where it is rendered, saying what exists.
        for other in [
            "{{ JSON_ENCODE(x) }}",
            "{{ gettext(\"Hi\") }}",
            "{% if f(x) %}{% end %}",
        ] {
            let err = Template::parse(other)
                .unwrap()
                .render_value(&json!({"x": 1}))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("is no function of this template"),
                "{other}: {err}"
            );
            assert!(
                err.contains("ApplicationBuilder::ui_method"),
                "{other}: {err}"
            );
        }
        // A method strings and dicts do not have is refused when parsed.
        let method = says("{{ x.y() }}");
        assert!(
            method.contains(
                "calls of Tornado's template functions (static_url, reverse_url, json_encode, \
                 url_escape, xhtml_escape, escape, squeeze, linkify, len, str, int, abs, _, \
                 pgettext, locale's), Python's builtins (range, enumerate, zip, sorted, min, max, \
                 sum, round, ...) or the application's (ApplicationBuilder::ui_method)"
            ),
            "{method}"
        );
        assert!(says("{% raw a b %}").contains("`raw json_encode(path)`"));
        assert!(says("{% if a ** %}{% end %}").contains("a condition is a Python expression"));
    }

    #[test]
    fn function_output_is_bounded_at_once() {
        // `&` escaped twice is 9 bytes: four of them are 36.
        let t = Template::parse("{{ escape(x) }}").unwrap();
        let v = json!({"x": "&&&&"});
        let Value::Object(map) = &v else {
            unreachable!()
        };
        let run = |steps, out| t.render_limited(Root::Object(map), None, steps, out);
        assert_eq!(run(1, 36).unwrap(), "&amp;amp;".repeat(4));
        assert_eq!(
            run(1, 35).unwrap_err().to_string(),
            "too large: output over 35 bytes"
        );
        assert!(matches!(run(0, 36), Err(TemplateError::TooLarge(_))));
        // Each call is one step, in loops too.
        let t = Template::parse("{% for x in xs %}{% raw json_encode(x) %}{% end %}").unwrap();
        let v = json!({"xs": [1, 2]});
        let Value::Object(map) = &v else {
            unreachable!()
        };
        let run = |steps| t.render_limited(Root::Object(map), None, steps, 100);
        assert_eq!(run(5).unwrap(), "12");
        assert!(matches!(run(4), Err(TemplateError::TooLarge(_))));
    }

    #[test]
    fn templates_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Template>();
    }
}
