//! The template language of `RequestContext::render` and `render_with`:
//! see [`Template`] for the syntax.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

const MAX_NESTING: usize = Template::MAX_NESTING;
const MAX_RENDER_DEPTH: usize = Template::MAX_RENDER_DEPTH;
pub(crate) const MAX_INCLUDE_DEPTH: usize = Template::MAX_INCLUDE_DEPTH;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{{`, `{%` or `{#` without its closing tag; the byte offset.
    Unclosed(usize),
    /// An unsupported `{% .. %}` directive or `{{ .. }}` expression, or a
    /// malformed tag; the tag's text.
    BadTag(String),
    /// Rendering needed a name that was not given, or a path stepped into a
    /// missing field or index; the path.
    Undefined(String),
    /// An `{% end %}`, `{% else %}` or `{% elif %}` with no open block it
    /// can end or continue (or a second `{% else %}`); the tag's text.
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
    /// A value of the wrong kind: a loop over a string or number,
    /// `.items()` of something that is not an object, or a render value that
    /// is not a JSON object.
    Type(String),
    /// An `{% include %}` or `{% extends %}` (or the template itself) could
    /// not be loaded: no such file, a refused name, a cycle.
    Load(String),
    /// An error in the included or parent template `name`.
    In {
        /// The template's name, as resolved.
        name: String,
        /// What went wrong there.
        error: Box<TemplateError>,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed(at) => write!(f, "unclosed tag at byte {at}"),
            TemplateError::BadTag(tag) => {
                write!(f, "unsupported tag {tag:?}: {}", bad_tag_hint(tag))
            }
            TemplateError::Undefined(name) => write!(f, "undefined variable {name:?}"),
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
            TemplateError::In { name, error } => write!(f, "in {name:?}: {error}"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Why the tag text `tag` (of a `{{ }}` or `{% %}`) was refused, for
/// [`TemplateError::BadTag`]'s message.
fn bad_tag_hint(tag: &str) -> &'static str {
    let word = tag.split(|c: char| c.is_whitespace()).next().unwrap_or("");
    match word {
        "" => "an empty tag",
        "module" | "apply" | "try" | "except" | "finally" | "while" | "import" | "from"
        | "break" | "continue" | "whitespace" => {
            "Tornado's tag is not supported: cyclone templates run no Python"
        }
        "autoescape" => "only {% autoescape None %} and {% autoescape xhtml_escape %} are supported",
        "if" | "elif" => "a condition is a path or `not path` (no operators or calls)",
        "for" => "write `for x in path`, `for k, v in path.items()`, `.keys()` or `.values()`",
        "set" => "write `set name = path`",
        "include" | "extends" => "the name must be quoted",
        "raw" => "write `raw path`",
        "block" => "a block needs a name",
        "end" | "else" => "takes nothing after it",
        w if w.starts_with("end") => "every block closes with {% end %}",
        _ => "{{ }} takes a path (name.field.0); {% %} takes raw, if, elif, else, end, for, set, include, extends, block, comment or autoescape",
    }
}

#[derive(Debug, Clone)]
struct Cond {
    negate: bool,
    path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `in path`: an array's elements, an object's keys.
    Plain,
    Items,
    Keys,
    Values,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Var {
        path: String,
        escape: bool,
    },
    If {
        branches: Vec<(Cond, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    For {
        var: String,
        second: Option<String>,
        path: String,
        source: Source,
        body: Vec<Node>,
    },
    Set {
        name: String,
        path: String,
    },
    Include {
        name: String,
        template: Arc<Template>,
    },
    Block {
        name: String,
        body: Arc<[Node]>,
    },
}

/// A parsed template, ready to render many times: the small template
/// language of [`RequestContext::render`](super::RequestContext::render) and
/// [`render_with`](super::RequestContext::render_with).
///
/// It is the subset of Tornado's template syntax that makes sense without
/// Python expressions. Where Tornado evaluates an expression, this language
/// takes a *path*: a name, then `.field` or `.index` steps (`message.author`,
/// `rows.0.cells.2`). Names come from the value given to
/// [`Template::render_value`] / `RequestContext::render_with` (any
/// `serde::Serialize` value that is a JSON object: its fields are the names),
/// or from the `(name, value)` string pairs of [`Template::render`].
///
/// | syntax | meaning |
/// |--------|---------|
/// | `{{ path }}` | the value, HTML-escaped (see *Printing values* below) |
/// | `{% raw path %}` | the value, unescaped |
/// | `{% if path %}` … `{% elif not path %}` … `{% else %}` … `{% end %}` | conditionals with Python truthiness; `not` negates |
/// | `{% for x in path %}` … `{% end %}` | `x` bound to each element of an array (each key of an object) |
/// | `{% for k, v in path.items() %}` … `{% end %}` | an object's keys and values; also `path.keys()`, `path.values()`; `for a, b in path` unpacks an array of pairs |
/// | `{% set x = path %}` | binds `x` until the end of the enclosing block |
/// | `{% include "file.html" %}` | that template, rendered here with the current names |
/// | `{% extends "base.html" %}` | render `base.html`, with its blocks replaced by this template's |
/// | `{% block name %}` … `{% end %}` | a block a child template can replace |
/// | `{# text #}`, `{% comment text %}` | nothing |
/// | `{% autoescape None %}` | `{{ }}` does not escape, anywhere in this file (not in the files it includes or extends, nor in blocks other files define), as in Tornado; `{% autoescape xhtml_escape %}` is the default |
/// | `{{!`, `{%!`, `{#!` | the literal `{{`, `{%`, `{#` (Tornado's escape) |
///
/// As in Tornado, in a run of three or more `{`, the last two open the tag:
/// `{{{ x }}}` prints `{`, then `x`, then `}`.
///
/// Anything else in `{{ }}` or `{% %}` — Python expressions, `{% module %}`,
/// `{% apply %}`, another `{% autoescape %}` function, `{% try %}`,
/// `{% while %}`, `{% import %}`, `{% whitespace %}`, `for … else` — is
/// refused when the template is parsed with [`TemplateError::BadTag`], whose
/// message says what is supported instead.
///
/// **Printing values.** Strings print as they are; numbers and booleans as
/// JSON prints them (`true`/`false`, where Tornado would print Python's
/// `True`/`False`); `null` (a Rust `None`) prints nothing (Tornado prints
/// `None`); arrays and objects print as compact JSON text. `{{ }}` escapes
/// `& < > " '`; `{% raw %}` does not.
///
/// **Truthiness** is Python's: `false`, `null`, `0`, `0.0`, `""`, `[]` and
/// `{}` are false, everything else is true. With [`Template::render`] every
/// value is a string, true when not empty.
///
/// **Names.** A loop variable or `set` name shadows an outer name of the
/// same name inside its block only: the loop, or the block enclosing the
/// `set` (in Python both would stay bound after it).
/// `{% for %}` over an object goes through its keys in `serde_json`'s order:
/// sorted, unless `serde_json`'s `preserve_order` feature is on. With
/// [`Template::render`], `{{ a.b }}` looks up the pair named `"a.b"`, as it
/// always has (paths step into values only with
/// [`render_value`](Template::render_value)).
///
/// **Inheritance.** As in Tornado: a template with `{% extends %}` renders its
/// parent (text outside its blocks is dropped), each `{% block %}` of the
/// parent showing the body of the last-defined block of that name along the
/// chain (child over parent over grandparent); blocks nest, and blocks in
/// included templates take part. `extends` must be outside every block.
/// `include`/`extends` names are relative to the including template's
/// directory (`/name` is relative to `template_path`); they are resolved and
/// parsed when the including template is, and the parsed tree is cached with
/// it. A name that leaves `template_path` — through `..`, or through a
/// symlink whose target is outside it, as for static files — is a
/// [`TemplateError::Load`].
///
/// **Whitespace** is copied as written (Tornado's `whitespace="all"`, not
/// the `"single"` it defaults to for `.html` files); the newline after a
/// `{% %}` tag stays in the output.
///
/// **Errors.** Unknown tags, an `{% end %}`/`{% else %}`/`{% elif %}` with
/// no block to end, a block without its `{% end %}`, a missing or refused
/// include, an include cycle, blocks nested deeper than
/// [`MAX_NESTING`](Self::MAX_NESTING) or includes chained deeper than
/// [`MAX_INCLUDE_DEPTH`](Self::MAX_INCLUDE_DEPTH) are errors when the
/// template is parsed (so before any request renders it); an undefined
/// name, a path into a missing field (in `{% if %}` too: serialize an
/// absent value as `null`, e.g. an `Option` without `skip_serializing_if`),
/// a loop over something that is neither array nor object, and rendering
/// nested deeper than [`MAX_RENDER_DEPTH`](Self::MAX_RENDER_DEPTH) when it
/// is rendered. So that no template (nested loops over large arrays, a
/// block shown twice in a block shown twice ...) can hang the loop or
/// exhaust memory, one render stops with [`TemplateError::TooLarge`] after
/// [`MAX_RENDER_STEPS`](Self::MAX_RENDER_STEPS) steps or
/// [`MAX_OUTPUT`](Self::MAX_OUTPUT) bytes (Tornado has no such bound).
/// `render` answers 500 for any of them and logs the cause, as
/// Tornado does for an exception in a template.
///
/// **Parse once, render many.** Included and parent templates are parsed
/// with the template (see [`parse_with_loader`](Self::parse_with_loader))
/// and kept in its tree, so rendering reads no file and allocates little
/// beyond the output. `Template` is `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// `{% extends %}`: the first template of the chain, whose text is shown.
    base: Option<Arc<Template>>,
    /// Each block name visible from here: the last definition along the
    /// extends chain, child over parent.
    blocks: HashMap<String, Arc<[Node]>>,
}

/// A `{{ }}` path or an old-style variable name.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// A name a loop, `set` or `block` can bind.
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// `"name"` or `'name'` → `name`.
fn quoted(s: &str) -> Option<&str> {
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    (!inner.is_empty() && !inner.contains(['"', '\''])).then_some(inner)
}

fn parse_cond(arg: &str) -> Option<Cond> {
    let (negate, path) = match arg.strip_prefix("not") {
        Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim()),
        _ => (false, arg),
    };
    is_name(path).then(|| Cond {
        negate,
        path: path.to_string(),
    })
}

/// `x in path`, `k, v in path.items()`, ...
fn parse_for(arg: &str) -> Option<Node> {
    let words: Vec<&str> = arg.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "in")?;
    let [target] = &words[at + 1..] else {
        return None;
    };
    let vars = words[..at].join(" ");
    let (var, second) = match vars.split_once(',') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (vars.trim(), None),
    };
    if !is_ident(var) || second.is_some_and(|b| !is_ident(b)) {
        return None;
    }
    let (path, source) = [
        (".items()", Source::Items),
        (".keys()", Source::Keys),
        (".values()", Source::Values),
    ]
    .into_iter()
    .find_map(|(suffix, source)| Some((target.strip_suffix(suffix)?, source)))
    .unwrap_or((target, Source::Plain));
    let arity_ok = match source {
        Source::Plain => true,
        Source::Items => second.is_some(),
        Source::Keys | Source::Values => second.is_none(),
    };
    if !is_name(path) || !arity_ok {
        return None;
    }
    Some(Node::For {
        var: var.to_string(),
        second: second.map(str::to_string),
        path: path.to_string(),
        source,
        body: Vec::new(),
    })
}

/// A block being parsed.
enum Open {
    If {
        branches: Vec<(Cond, Vec<Node>)>,
        /// The condition of the branch being read; `None` in `else`.
        cond: Option<Cond>,
    },
    For(Node),
    Block(String),
}

struct Frame {
    tag: String,
    open: Open,
    body: Vec<Node>,
}

/// The parser's state: the open blocks and the text not yet pushed.
struct Parser<L> {
    stack: Vec<Frame>,
    root: Vec<Node>,
    text: String,
    /// `{% extends %}`: the parent template.
    parent: Option<Arc<Template>>,
    /// `false` after `{% autoescape None %}` (for the whole file, as in
    /// Tornado).
    autoescape: bool,
    load: L,
}

impl<L: FnMut(&str) -> Result<Arc<Template>, TemplateError>> Parser<L> {
    fn body(&mut self) -> &mut Vec<Node> {
        match self.stack.last_mut() {
            Some(frame) => &mut frame.body,
            None => &mut self.root,
        }
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            self.body().push(Node::Text(text));
        }
    }

    fn push(&mut self, node: Node) {
        self.flush();
        self.body().push(node);
    }

    fn open(&mut self, tag: &str, open: Open) -> Result<(), TemplateError> {
        if self.stack.len() >= MAX_NESTING {
            return Err(TemplateError::TooDeep(format!(
                "{{% {tag} %}} nests blocks deeper than {MAX_NESTING}"
            )));
        }
        self.flush();
        self.stack.push(Frame {
            tag: tag.to_string(),
            open,
            body: Vec::new(),
        });
        Ok(())
    }

    fn load(&mut self, name: &str) -> Result<Arc<Template>, TemplateError> {
        (self.load)(name)
    }

    /// One `{% .. %}` tag; `inner` is trimmed.
    fn directive(&mut self, inner: &str) -> Result<(), TemplateError> {
        let bad = || TemplateError::BadTag(inner.to_string());
        let unbalanced = || TemplateError::Unbalanced(inner.to_string());
        let (word, arg) = match inner.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (inner, ""),
        };
        match word {
            "raw" if is_name(arg) => self.push(Node::Var {
                path: arg.to_string(),
                escape: false,
            }),
            "comment" => {}
            "autoescape" => match arg {
                "None" => self.autoescape = false,
                "xhtml_escape" => self.autoescape = true,
                _ => return Err(bad()),
            },
            "if" => {
                let cond = parse_cond(arg).ok_or_else(bad)?;
                self.open(
                    inner,
                    Open::If {
                        branches: Vec::new(),
                        cond: Some(cond),
                    },
                )?;
            }
            "elif" | "else" => {
                let next = if word == "elif" {
                    Some(parse_cond(arg).ok_or_else(bad)?)
                } else if arg.is_empty() {
                    None
                } else {
                    return Err(bad());
                };
                self.flush();
                let Some(Frame {
                    open: Open::If { branches, cond },
                    body,
                    ..
                }) = self.stack.last_mut()
                else {
                    return Err(unbalanced());
                };
                let current = cond.take().ok_or_else(unbalanced)?;
                branches.push((current, std::mem::take(body)));
                *cond = next;
            }
            "end" if arg.is_empty() => {
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
                    Open::For(mut node) => {
                        if let Node::For { body, .. } = &mut node {
                            *body = frame.body;
                        }
                        node
                    }
                    Open::Block(name) => Node::Block {
                        name,
                        body: frame.body.into(),
                    },
                };
                self.body().push(node);
            }
            "for" => {
                let node = parse_for(arg).ok_or_else(bad)?;
                self.open(inner, Open::For(node))?;
            }
            "set" => {
                let (name, path) = arg.split_once('=').ok_or_else(bad)?;
                let (name, path) = (name.trim(), path.trim());
                if !is_ident(name) || !is_name(path) {
                    return Err(bad());
                }
                self.push(Node::Set {
                    name: name.to_string(),
                    path: path.to_string(),
                });
            }
            "block" if is_ident(arg) => self.open(inner, Open::Block(arg.to_string()))?,
            "include" => {
                let name = quoted(arg).ok_or_else(bad)?;
                let template = self.load(name)?;
                self.push(Node::Include {
                    name: name.to_string(),
                    template,
                });
            }
            "extends" => {
                let name = quoted(arg).ok_or_else(bad)?;
                if !self.stack.is_empty() || self.parent.is_some() {
                    return Err(TemplateError::BadTag(format!(
                        "{inner} (only one extends, outside every block)"
                    )));
                }
                self.parent = Some(self.load(name)?);
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
            Node::For { body, .. } => unescape(body),
            Node::Block { body, .. } => match Arc::get_mut(body) {
                Some(body) => unescape(body),
                None => {
                    let mut copy = body.to_vec();
                    unescape(&mut copy);
                    *body = copy.into();
                }
            },
            Node::Text(_) | Node::Set { .. } | Node::Include { .. } => {}
        }
    }
}

/// Adds the blocks of `nodes` (and of the templates they include) to `map`,
/// later definitions replacing earlier ones.
fn collect_blocks(nodes: &[Node], map: &mut HashMap<String, Arc<[Node]>>) {
    for node in nodes {
        match node {
            Node::Block { name, body } => {
                map.insert(name.clone(), body.clone());
                collect_blocks(body, map);
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (_, body) in branches {
                    collect_blocks(body, map);
                }
                collect_blocks(otherwise, map);
            }
            Node::For { body, .. } => collect_blocks(body, map),
            Node::Include { template, .. } => {
                for (name, body) in &template.blocks {
                    map.insert(name.clone(), body.clone());
                }
            }
            Node::Text(_) | Node::Var { .. } | Node::Set { .. } => {}
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
    /// How deeply rendering may nest: blocks and includes together, across
    /// templates (checked while rendering).
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
    /// Any parse-time [`TemplateError`] (see *Errors* [above](Template)).
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
    /// Any parse-time [`TemplateError`], or what `load` returns.
    pub fn parse_with_loader(
        src: &str,
        load: impl FnMut(&str) -> Result<Arc<Template>, TemplateError>,
    ) -> Result<Template, TemplateError> {
        let mut p = Parser {
            stack: Vec::new(),
            root: Vec::new(),
            text: String::new(),
            parent: None,
            autoescape: true,
            load,
        };
        let mut rest = src;
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
            let after = &rest[open + 2..];
            if let Some(lit) = after.strip_prefix('!') {
                p.text.push_str(&rest[open..open + 2]);
                rest = lit;
                continue;
            }
            let end = after
                .find(close)
                .ok_or(TemplateError::Unclosed(src.len() - rest.len() + open))?;
            let inner = after[..end].trim();
            rest = &after[end + 2..];
            match kind {
                Some('{') if is_name(inner) => p.push(Node::Var {
                    path: inner.to_string(),
                    escape: true,
                }),
                Some('%') => p.directive(inner)?,
                Some('#') => {}
                _ => return Err(TemplateError::BadTag(inner.to_string())),
            }
        }
        p.text.push_str(rest);
        p.flush();
        if let Some(frame) = p.stack.pop() {
            return Err(TemplateError::UnclosedBlock(frame.tag));
        }
        if !p.autoescape {
            unescape(&mut p.root);
        }
        let mut blocks = p
            .parent
            .as_ref()
            .map(|parent| parent.blocks.clone())
            .unwrap_or_default();
        collect_blocks(&p.root, &mut blocks);
        let base = p.parent.map(|parent| parent.base.clone().unwrap_or(parent));
        Ok(Template {
            nodes: p.root,
            base,
            blocks,
        })
    }

    /// Renders with `vars` (`(name, value)`; the first pair with a name
    /// wins). Every value is a string: `{{ a.b }}` is the pair named `"a.b"`,
    /// `{% if name %}` is true for a non-empty string, and a loop over a
    /// string is an error (use [`render_value`](Self::render_value)).
    ///
    /// # Errors
    /// [`TemplateError::Undefined`] for a variable missing from `vars`, or
    /// another render-time error.
    pub fn render(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        self.render_root(Root::Pairs(vars))
    }

    /// Renders with the fields of `value`, which must be a JSON object.
    ///
    /// # Errors
    /// [`TemplateError::Type`] if `value` is not an object;
    /// [`TemplateError::Undefined`] for a missing name or field; another
    /// render-time error.
    pub fn render_value(&self, value: &Value) -> Result<String, TemplateError> {
        match value {
            Value::Object(map) => self.render_root(Root::Object(map)),
            other => Err(TemplateError::Type(format!(
                "template values must be a JSON object (a struct or a map), not {}",
                kind(other)
            ))),
        }
    }

    /// Renders with the fields of `value` (serialized with `serde_json`;
    /// it must serialize to an object: a struct, a map, `json!({..})`).
    ///
    /// # Errors
    /// As [`render_value`](Self::render_value); serialization failing is a
    /// [`TemplateError::Type`].
    pub fn render_with(&self, value: &(impl Serialize + ?Sized)) -> Result<String, TemplateError> {
        let value = serde_json::to_value(value)
            .map_err(|e| TemplateError::Type(format!("template values do not serialize: {e}")))?;
        self.render_value(&value)
    }

    fn entry(&self) -> &[Node] {
        match &self.base {
            Some(base) => &base.nodes,
            None => &self.nodes,
        }
    }

    fn render_root<'a>(&'a self, root: Root<'a>) -> Result<String, TemplateError> {
        self.render_limited(root, Template::MAX_RENDER_STEPS, Template::MAX_OUTPUT)
    }

    fn render_limited<'a>(
        &'a self,
        root: Root<'a>,
        steps: u64,
        max_output: usize,
    ) -> Result<String, TemplateError> {
        let mut r = Renderer {
            root,
            locals: Vec::new(),
            blocks: &self.blocks,
            out: String::new(),
            steps,
            max_steps: steps,
            max_output,
        };
        r.nodes(self.entry(), 0)?;
        // The last node's output, not yet checked by a `tick`.
        r.check_output()?;
        Ok(r.out)
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

impl Val<'_> {
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
}

fn push_escaped(out: &mut String, s: &str) {
    // The same five characters as `http::html_escape`, without its String.
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '<' => "&lt;",
            '>' => "&gt;",
            '&' => "&amp;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

struct Renderer<'a> {
    root: Root<'a>,
    /// Loop and `set` bindings, innermost last.
    locals: Vec<(&'a str, Val<'a>)>,
    blocks: &'a HashMap<String, Arc<[Node]>>,
    out: String,
    /// Steps left before [`TemplateError::TooLarge`].
    steps: u64,
    max_steps: u64,
    max_output: usize,
}

impl<'a> Renderer<'a> {
    /// One step of work: fails once the step budget is spent or the output
    /// is over its bound (checked before each node, so at most one node's
    /// output past it).
    fn tick(&mut self) -> Result<(), TemplateError> {
        if self.steps == 0 {
            return Err(TemplateError::TooLarge(format!(
                "rendering took more than {} steps (nodes and loop iterations)",
                self.max_steps
            )));
        }
        self.steps -= 1;
        self.check_output()
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
        let mut val = match self.locals.iter().rev().find(|(n, _)| *n == first) {
            Some((_, v)) => *v,
            None => match self.root {
                Root::Pairs(vars) => {
                    return vars
                        .iter()
                        .find(|(n, _)| *n == path)
                        .map(|(_, v)| Val::Str(v))
                        .ok_or_else(undefined)
                }
                Root::Object(map) => Val::Json(map.get(first).ok_or_else(undefined)?),
            },
        };
        for seg in segs {
            let next = match val {
                Val::Json(Value::Object(m)) => m.get(seg),
                Val::Json(Value::Array(a)) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            val = Val::Json(next.ok_or_else(undefined)?);
        }
        Ok(val)
    }

    fn print(&mut self, val: Val<'_>, escape: bool) {
        let text = match val {
            Val::Str(s) => s,
            Val::Json(Value::String(s)) => s,
            Val::Json(Value::Null) => "",
            Val::Json(Value::Bool(b)) => {
                if *b {
                    "true"
                } else {
                    "false"
                }
            }
            Val::Json(Value::Number(n)) => {
                let _ = write!(self.out, "{n}");
                return;
            }
            Val::Json(v) => {
                let json = v.to_string();
                if escape {
                    push_escaped(&mut self.out, &json);
                } else {
                    self.out.push_str(&json);
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

    /// Renders `body` with `var` (and `second`) bound.
    fn iteration(
        &mut self,
        var: &'a str,
        value: Val<'a>,
        second: Option<(&'a str, Val<'a>)>,
        body: &'a [Node],
        depth: usize,
    ) -> Result<(), TemplateError> {
        self.tick()?;
        let mark = self.locals.len();
        self.locals.push((var, value));
        if let Some(pair) = second {
            self.locals.push(pair);
        }
        let result = self.nodes(body, depth);
        self.locals.truncate(mark);
        result
    }

    fn each(
        &mut self,
        var: &'a str,
        second: Option<&'a str>,
        path: &'a str,
        source: Source,
        body: &'a [Node],
        depth: usize,
    ) -> Result<(), TemplateError> {
        let val = self.lookup(path)?;
        let not_iterable = || {
            TemplateError::Type(format!(
                "cannot loop over {path:?}: it is {}{}",
                val.kind(),
                match source {
                    Source::Plain => "",
                    _ => " (items(), keys() and values() need an object)",
                }
            ))
        };
        match (val, source, second) {
            (Val::Json(Value::Array(items)), Source::Plain, None) => {
                for item in items {
                    self.iteration(var, Val::Json(item), None, body, depth)?;
                }
            }
            (Val::Json(Value::Array(items)), Source::Plain, Some(b)) => {
                for item in items {
                    let Value::Array(pair) = item else {
                        return Err(TemplateError::Type(format!(
                            "cannot unpack an element of {path:?} into {var}, {b}: it is {}",
                            kind(item)
                        )));
                    };
                    let [x, y] = pair.as_slice() else {
                        return Err(TemplateError::Type(format!(
                            "cannot unpack an array of {} into {var}, {b} (in {path:?})",
                            pair.len()
                        )));
                    };
                    self.iteration(var, Val::Json(x), Some((b, Val::Json(y))), body, depth)?;
                }
            }
            (Val::Json(Value::Object(map)), Source::Plain | Source::Keys, None) => {
                for key in map.keys() {
                    self.iteration(var, Val::Str(key), None, body, depth)?;
                }
            }
            (Val::Json(Value::Object(map)), Source::Values, None) => {
                for value in map.values() {
                    self.iteration(var, Val::Json(value), None, body, depth)?;
                }
            }
            (Val::Json(Value::Object(map)), Source::Items, Some(b)) => {
                for (key, value) in map {
                    self.iteration(var, Val::Str(key), Some((b, Val::Json(value))), body, depth)?;
                }
            }
            (Val::Json(Value::Object(_)), Source::Plain, Some(b)) => {
                return Err(TemplateError::Type(format!(
                    "cannot unpack the keys of {path:?} into {var}, {b}: use {path}.items()"
                )))
            }
            _ => return Err(not_iterable()),
        }
        Ok(())
    }

    fn nodes(&mut self, nodes: &'a [Node], depth: usize) -> Result<(), TemplateError> {
        if depth > MAX_RENDER_DEPTH {
            return Err(TemplateError::TooDeep(format!(
                "blocks and includes nest deeper than {MAX_RENDER_DEPTH} while rendering"
            )));
        }
        let mark = self.locals.len();
        for node in nodes {
            self.tick()?;
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Var { path, escape } => {
                    let val = self.lookup(path)?;
                    self.print(val, *escape);
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut chosen: &[Node] = otherwise;
                    for (cond, body) in branches {
                        if self.lookup(&cond.path)?.truthy() != cond.negate {
                            chosen = body;
                            break;
                        }
                    }
                    self.nodes(chosen, depth + 1)?;
                }
                Node::For {
                    var,
                    second,
                    path,
                    source,
                    body,
                } => self.each(var, second.as_deref(), path, *source, body, depth + 1)?,
                Node::Set { name, path } => {
                    let val = self.lookup(path)?;
                    self.locals.push((name, val));
                }
                Node::Include { name, template } => {
                    self.nodes(template.entry(), depth + 1)
                        .map_err(|error| TemplateError::In {
                            name: name.clone(),
                            error: Box::new(error),
                        })?;
                }
                Node::Block { name, body } => {
                    let body = self.blocks.get(name).unwrap_or(body);
                    self.nodes(body, depth + 1)?;
                }
            }
        }
        self.locals.truncate(mark);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        Template::parse(src)?.render(vars)
    }

    fn render_json(src: &str, value: Value) -> Result<String, TemplateError> {
        Template::parse(src)?.render_value(&value)
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
            "Hi &lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;! 1"
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
            TemplateError::Unclosed(2)
        );
        // `for` is a block now: without its `end` it is unclosed.
        assert_eq!(
            render("{% for x in y %}", &[]).unwrap_err(),
            TemplateError::UnclosedBlock("for x in y".into())
        );
        assert_eq!(
            render("{{ a + b }}", &[]).unwrap_err(),
            TemplateError::BadTag("a + b".into())
        );
        assert_eq!(
            render("{{ who }}", &[("name", "x")]).unwrap_err(),
            TemplateError::Undefined("who".into())
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
    fn paths_step_into_objects_and_arrays() {
        let v = json!({
            "a": {"b": [{"c": "<deep>"}, {"c": 2}]},
            "n": 3, "f": 2.5, "t": true, "no": false, "nil": null,
            "list": [1, "x<"], "obj": {"k": "v&"}
        });
        let t = "{{ a.b.0.c }}|{{ a.b.1.c }}|{{ n }}|{{ f }}|{{ t }}|{{ no }}|[{{ nil }}]|{{ list }}|{{ obj }}";
        assert_eq!(
            render_json(t, v.clone()).unwrap(),
            "&lt;deep&gt;|2|3|2.5|true|false|[]|[1,&quot;x&lt;&quot;]|{&quot;k&quot;:&quot;v&amp;&quot;}"
        );
        assert_eq!(
            render_json("{% raw a.b.0.c %} {% raw obj %}", v.clone()).unwrap(),
            "<deep> {\"k\":\"v&\"}"
        );
        for bad in ["a.x", "a.b.2", "a.b.z", "n.x", "missing", "list.-1"] {
            assert_eq!(
                render_json(&format!("{{{{ {bad} }}}}"), v.clone()).unwrap_err(),
                TemplateError::Undefined(bad.into()),
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
        assert!(matches!(
            render("{% for c in x %}{% end %}", &vars).unwrap_err(),
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
            TemplateError::Undefined("nope".into())
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
        // serde_json's default map is sorted by key.
        assert_eq!(
            render_json(
                "{% for k, v in m.items() %}{{k}}={{v}};{% end %}",
                v.clone()
            )
            .unwrap(),
            "a=1;b=2;"
        );
        assert_eq!(
            render_json(
                "{% for k in m %}{{k}}{% end %}|{% for k in m.keys() %}{{k}}{% end %}|{% for v in m.values() %}{{v}}{% end %}",
                v.clone()
            )
            .unwrap(),
            "ab|ab|12"
        );
        assert_eq!(
            render_json("{% for a, b in pairs %}{{a}}{{b}}{% end %}", v.clone()).unwrap(),
            "x1y2"
        );
        assert_eq!(
            render_json("[{% for e in empty %}{{ e }}{% end %}]", v.clone()).unwrap(),
            "[]"
        );
        // Loop variables shadow outer names inside the loop only; nested
        // loops see the outer loop's variable.
        assert_eq!(
            render_json(
                "{{x}}:{% for x in pairs %}{% for y in x %}{{y}}{% end %},{% end %}:{{x}}",
                v.clone()
            )
            .unwrap(),
            "outer:x1,y2,:outer"
        );
        for (t, what) in [
            ("{% for c in x %}{% end %}", "a string"),
            ("{% for c in messages.0.id %}{% end %}", "a number"),
            ("{% for k, v in messages.items() %}{% end %}", "an array"),
            ("{% for a, b in messages %}{% end %}", "an object"),
            ("{% for a, b in m %}{% end %}", "items()"),
        ] {
            match render_json(t, v.clone()).unwrap_err() {
                TemplateError::Type(msg) => assert!(msg.contains(what), "{t}: {msg}"),
                e => panic!("{t}: {e:?}"),
            }
        }
    }

    #[test]
    fn set_binds_until_the_end_of_its_block() {
        let v = json!({"user": {"name": "ann"}, "items": [1, 2]});
        assert_eq!(
            render_json(
                "{% set n = user.name %}{{ n }}{% for i in items %}{% set j = i %}{{ j }}{% end %}",
                v.clone()
            )
            .unwrap(),
            "ann12"
        );
        assert_eq!(
            render_json("{% if items %}{% set j = items.0 %}{% end %}{{ j }}", v).unwrap_err(),
            TemplateError::Undefined("j".into())
        );
    }

    #[test]
    fn unsupported_and_malformed_tags_are_refused_at_parse() {
        for tag in [
            "{% module Template(\"m.html\") %}",
            "{% apply linkify %}x{% end %}",
            "{% autoescape linkify %}",
            "{% autoescape %}",
            "{% try %}x{% end %}",
            "{% while x %}x{% end %}",
            "{% import os %}",
            "{% if a == b %}{% end %}",
            "{% if %}{% end %}",
            "{% for x in range(3) %}{% end %}",
            "{% for x y %}{% end %}",
            "{% for x in a.items() %}{% end %}",
            "{% for a, b in m.keys() %}{% end %}",
            "{% set x %}",
            "{% set 1x = a %}",
            "{% include other.html %}",
            "{% block %}{% end %}",
            "{% end x %}",
            "{% else x %}",
            "{{ f(x) }}",
        ] {
            assert!(
                matches!(Template::parse(tag), Err(TemplateError::BadTag(_))),
                "{tag}: {:?}",
                Template::parse(tag).map(|_| ())
            );
        }
        // for/else means something else in Python: not supported.
        assert_eq!(
            Template::parse("{% for x in a %}{% else %}{% end %}").unwrap_err(),
            TemplateError::Unbalanced("else".into())
        );
        assert!(Template::parse("{% comment anything at all %}").is_ok());
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
            assert_eq!(Template::parse(src).unwrap_err(), err, "{src}");
        }
    }

    #[test]
    fn nesting_is_bounded_at_parse_without_overflowing_the_stack() {
        let deep = |n: usize| "{% if a %}".repeat(n) + &"{% end %}".repeat(n);
        let t = Template::parse(&deep(MAX_NESTING)).unwrap();
        assert_eq!(t.render_value(&json!({"a": 1})).unwrap(), "");
        for n in [MAX_NESTING + 1, 10_000] {
            assert!(
                matches!(Template::parse(&deep(n)), Err(TemplateError::TooDeep(_))),
                "{n}"
            );
        }
        // Unclosed, far too deep: still the depth error, not a crash.
        assert!(matches!(
            Template::parse(&"{% for x in a %}".repeat(100_000)),
            Err(TemplateError::TooDeep(_))
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
            "in \"parts/message.html\": in \"sig.html\": undefined variable \"title\""
        );
        // Without a loader, include is a load error.
        assert!(matches!(
            Template::parse("{% include \"x.html\" %}"),
            Err(TemplateError::Load(_))
        ));
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
            assert!(
                matches!(load(&files, "bad.html", 0), Err(TemplateError::BadTag(_))),
                "{bad}"
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
        let run = |steps, out| t.render_limited(Root::Object(map), steps, out);
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
            Template::parse("{% while x %}{% end %}")
                .unwrap_err()
                .to_string(),
            "unsupported tag \"while x\": Tornado's tag is not supported: cyclone templates run no Python"
        );
        assert!(Template::parse("{% endblock %}")
            .unwrap_err()
            .to_string()
            .contains("every block closes with {% end %}"));
    }

    #[test]
    fn templates_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Template>();
    }
}
