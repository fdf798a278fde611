//! The conditions of `{% if %}` and `{% elif %}`: Python's boolean
//! operators and comparisons over paths and literals, evaluated with
//! Python's semantics for the values a template sees (JSON values and
//! strings).
//!
//! ```text
//! test       := and_test ("or" and_test)*
//! and_test   := not_test ("and" not_test)*
//! not_test   := "not" not_test | comparison
//! comparison := operand (op operand)*      chained as Python: a < b < c
//! op         := == != < <= > >= in "not in" is "is not"
//! operand    := path | literal | "(" test ")" | "len(" (path | string) ")"
//! ```
//!
//! `is` and `is not` take `None`, `True` or `False` on their right (what
//! identity means for a JSON value). Ordering two values Python cannot
//! order (a string and a number, `None`, dicts) and `in` over a value that
//! is not a string, list or dict are [`TemplateError::Type`] at render
//! time, where Python raises `TypeError`.

use std::cmp::Ordering;

use serde_json::Value;

use super::{kind, literal, path, TemplateError, Val};

/// Parentheses and `not`s nest at most this deep in one condition.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub(super) enum Test {
    Or(Vec<Test>),
    And(Vec<Test>),
    Not(Box<Test>),
    /// `first`, or `first op1 x1 op2 x2 …` (each `op` between the operand
    /// before it and its own).
    Compare {
        first: Operand,
        rest: Vec<(Op, Operand)>,
    },
}

#[derive(Debug, Clone)]
pub(super) enum Operand {
    Path(String),
    Literal(Value),
    Group(Box<Test>),
    /// `len(x)`: `x` a path or a string literal.
    Len(Box<Operand>),
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

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Word(&'s str),
    Str(&'s str),
    Op(&'s str),
    Open,
    Close,
}

/// The characters other than whitespace that end a word; each is a token
/// of its own, handled before a word is read.
const WORD_END: &str = "()<>=!'\"";

fn tokens(src: &str) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while let Some(ch) = src[i..].chars().next() {
        let c = b[i];
        match c {
            // The same test as the end of a word below: a character that
            // ends a word is always consumed here.
            _ if ch.is_whitespace() => i += ch.len_utf8(),
            b'(' => {
                out.push(Tok::Open);
                i += 1;
            }
            b')' => {
                out.push(Tok::Close);
                i += 1;
            }
            b'\'' | b'"' => {
                let end = src[i + 1..].find(c as char)? + i + 1;
                let inner = &src[i + 1..end];
                if inner.contains('\\') {
                    return None;
                }
                out.push(Tok::Str(&src[i..=end]));
                i = end + 1;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = b.get(i + 1) == Some(&b'=');
                let len = if two { 2 } else { 1 };
                let op = &src[i..i + len];
                if op == "=" || op == "!" {
                    return None;
                }
                out.push(Tok::Op(op));
                i += len;
            }
            _ => {
                let end = word_end(src, i)?;
                out.push(Tok::Word(&src[i..end]));
                i = end;
            }
        }
    }
    Some(out)
}

/// Where the word (a path or a literal) starting at `i` ends: at
/// whitespace or a [`WORD_END`] character, except inside a subscript
/// (`d['k']`, whose quotes are the path's). `None` for a `[` never closed.
fn word_end(src: &str, i: usize) -> Option<usize> {
    let mut at = i;
    while let Some(ch) = src[at..].chars().next() {
        if ch == '[' {
            at += src[at..].find(']')? + 1;
        } else if ch.is_whitespace() || WORD_END.contains(ch) {
            break;
        } else {
            at += ch.len_utf8();
        }
    }
    Some(at)
}

/// Parses a condition; `None` when it is not one.
pub(super) fn parse(src: &str) -> Option<Test> {
    let toks = tokens(src)?;
    let mut p = Parser { toks, at: 0 };
    let test = p.test(0)?;
    (p.at == p.toks.len()).then_some(test)
}

struct Parser<'s> {
    toks: Vec<Tok<'s>>,
    at: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<&Tok<'s>> {
        self.toks.get(self.at)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek() == Some(&Tok::Word(w)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn test(&mut self, depth: usize) -> Option<Test> {
        let mut parts = vec![self.and_test(depth)?];
        while self.eat_word("or") {
            parts.push(self.and_test(depth)?);
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            Test::Or(parts)
        })
    }

    fn and_test(&mut self, depth: usize) -> Option<Test> {
        let mut parts = vec![self.not_test(depth)?];
        while self.eat_word("and") {
            parts.push(self.not_test(depth)?);
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            Test::And(parts)
        })
    }

    fn not_test(&mut self, depth: usize) -> Option<Test> {
        if depth > MAX_DEPTH {
            return None;
        }
        if self.eat_word("not") {
            return Some(Test::Not(Box::new(self.not_test(depth + 1)?)));
        }
        let first = self.operand(depth)?;
        let mut rest = Vec::new();
        while let Some(op) = self.op() {
            let right = self.operand(depth)?;
            if matches!(op, Op::Is | Op::IsNot)
                && !matches!(&right, Operand::Literal(Value::Null | Value::Bool(_)))
            {
                return None;
            }
            rest.push((op, right));
        }
        Some(Test::Compare { first, rest })
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

    fn operand(&mut self, depth: usize) -> Option<Operand> {
        let tok = self.peek()?.clone();
        self.at += 1;
        match tok {
            Tok::Open => {
                let inner = self.test(depth + 1)?;
                (self.peek() == Some(&Tok::Close)).then(|| {
                    self.at += 1;
                    Operand::Group(Box::new(inner))
                })
            }
            // Python's `len(x)`, of a path or a quoted string.
            Tok::Word("len") if self.peek() == Some(&Tok::Open) => {
                self.at += 1;
                let inner = match self.operand(depth)? {
                    o @ (Operand::Path(_) | Operand::Literal(Value::String(_))) => o,
                    _ => return None,
                };
                (self.peek() == Some(&Tok::Close)).then(|| {
                    self.at += 1;
                    Operand::Len(Box::new(inner))
                })
            }
            Tok::Str(s) => literal(s).map(Operand::Literal),
            Tok::Word("and" | "or" | "not" | "in" | "is") => None,
            Tok::Word(w) => match literal(w) {
                Some(v) => Some(Operand::Literal(v)),
                None => path(w).map(Operand::Path),
            },
            Tok::Op(_) | Tok::Close => None,
        }
    }
}

/// What a condition reads a path with.
pub(super) type Lookup<'f, 'a> = &'f dyn Fn(&'a str) -> Result<Val<'a>, TemplateError>;

/// An operand's value: a template value, or one a condition computed
/// (`len(x)`, a parenthesized test).
#[derive(Clone, Copy)]
enum Term<'a> {
    Val(Val<'a>),
    Int(i128),
    Bool(bool),
}

impl Term<'_> {
    fn truthy(self) -> bool {
        match self {
            Term::Val(v) => v.truthy(),
            Term::Int(n) => n != 0,
            Term::Bool(b) => b,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Term::Val(v) => v.kind(),
            Term::Int(_) => "a number",
            Term::Bool(_) => "a boolean",
        }
    }
}

impl Test {
    /// Python's truth of the condition. Operands are read as Python reads
    /// them: left to right, and only as far as `and`, `or` and a chained
    /// comparison need (an undefined path after a false `and` is no error).
    pub(super) fn eval<'a>(&'a self, get: Lookup<'_, 'a>) -> Result<bool, TemplateError> {
        match self {
            Test::Or(parts) => {
                for p in parts {
                    if p.eval(get)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Test::And(parts) => {
                for p in parts {
                    if !p.eval(get)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Test::Not(t) => Ok(!t.eval(get)?),
            Test::Compare { first, rest } => {
                let mut left = value(first, get)?;
                if rest.is_empty() {
                    return Ok(left.truthy());
                }
                for (op, operand) in rest {
                    let right = value(operand, get)?;
                    if !compare(*op, left, right)? {
                        return Ok(false);
                    }
                    left = right;
                }
                Ok(true)
            }
        }
    }
}

fn value<'a>(operand: &'a Operand, get: Lookup<'_, 'a>) -> Result<Term<'a>, TemplateError> {
    Ok(match operand {
        Operand::Path(p) => Term::Val(get(p)?),
        Operand::Literal(v) => Term::Val(Val::Json(v)),
        // `(a or b)` is a bool here, where Python gives `a` or `b`: the same
        // in a test, and in a comparison where the operands are bools.
        Operand::Group(t) => Term::Bool(t.eval(get)?),
        Operand::Len(inner) => match value(inner, get)? {
            Term::Val(v) => Term::Int(py_len(v)?.try_into().unwrap_or(i128::MAX)),
            // The parser gives `len` a path or a string only.
            other => return Err(no_len(other.kind())),
        },
    })
}

fn no_len(kind: &str) -> TemplateError {
    TemplateError::Type(format!("len() of {kind}"))
}

fn compare(op: Op, a: Term<'_>, b: Term<'_>) -> Result<bool, TemplateError> {
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

/// `None`, `True` or `False`, what `is` compares (`None` inside for
/// `None`); anything else is not one of them.
fn singleton(t: Term<'_>) -> Option<Option<bool>> {
    match t {
        Term::Val(Val::Json(Value::Null)) => Some(None),
        Term::Val(Val::Json(Value::Bool(b))) => Some(Some(*b)),
        Term::Bool(b) => Some(Some(b)),
        _ => None,
    }
}

/// `a is b` where `b` is `None`, `True` or `False` (the parser sees to it).
fn same(a: Term<'_>, b: Term<'_>) -> bool {
    singleton(a).is_some() && singleton(a) == singleton(b)
}

fn text<'a>(t: Term<'a>) -> Option<&'a str> {
    match t {
        Term::Val(Val::Str(s)) => Some(s),
        Term::Val(Val::Json(Value::String(s))) => Some(s),
        _ => None,
    }
}

/// A number as Python sees it (a bool is the integer 0 or 1).
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn number(t: Term<'_>) -> Option<Num> {
    match t {
        Term::Int(n) => Some(Num::Int(n)),
        Term::Bool(b) => Some(Num::Int(i128::from(b))),
        Term::Val(Val::Json(Value::Bool(b))) => Some(Num::Int(i128::from(*b))),
        Term::Val(Val::Json(Value::Number(n))) => Some(if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64()?)
        }),
        _ => None,
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        // As f64: exact for every integer up to 2^53.
        (Num::Int(x), Num::Float(y)) => (x as f64).partial_cmp(&y),
        (Num::Float(x), Num::Int(y)) => x.partial_cmp(&(y as f64)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
    }
}

fn json(v: &Value) -> Term<'_> {
    Term::Val(Val::Json(v))
}

/// Python's `==`: `1 == 1.0 == True`, lists item by item, dicts by keys
/// and values whatever their order, and values of different kinds unequal.
fn equal(a: Term<'_>, b: Term<'_>) -> bool {
    if let (Some(x), Some(y)) = (text(a), text(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return num_cmp(x, y) == Some(Ordering::Equal);
    }
    let (Term::Val(Val::Json(a)), Term::Val(Val::Json(b))) = (a, b) else {
        return false;
    };
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(json(p), json(q)))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| equal(json(p), json(q))))
        }
        _ => false,
    }
}

/// Python's ordering: numbers (and bools) by value, strings by code
/// point, lists item by item; anything else is Python's `TypeError`.
fn order(op: Op, a: Term<'_>, b: Term<'_>) -> Result<Ordering, TemplateError> {
    if let (Some(x), Some(y)) = (text(a), text(b)) {
        // UTF-8 byte order is code point order.
        return Ok(x.cmp(y));
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        if let Some(o) = num_cmp(x, y) {
            return Ok(o);
        }
    }
    if let (Term::Val(Val::Json(Value::Array(x))), Term::Val(Val::Json(Value::Array(y)))) = (a, b) {
        for (p, q) in x.iter().zip(y) {
            let (p, q) = (json(p), json(q));
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
fn contains(container: Term<'_>, item: Term<'_>) -> Result<bool, TemplateError> {
    if let Some(hay) = text(container) {
        return match text(item) {
            Some(needle) => Ok(hay.contains(needle)),
            None => Err(TemplateError::Type(format!(
                "'in' a string needs a string, not {}",
                item.kind()
            ))),
        };
    }
    match container {
        Term::Val(Val::Json(Value::Array(items))) => Ok(items.iter().any(|v| equal(item, json(v)))),
        Term::Val(Val::Json(Value::Object(map))) => match (text(item), item) {
            (Some(k), _) => Ok(map.contains_key(k)),
            // Unhashable in Python.
            (None, Term::Val(Val::Json(v @ (Value::Array(_) | Value::Object(_))))) => Err(
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
    match v {
        Val::Str(s) => Ok(s.chars().count()),
        Val::Json(Value::String(s)) => Ok(s.chars().count()),
        Val::Json(Value::Array(a)) => Ok(a.len()),
        Val::Json(Value::Object(m)) => Ok(m.len()),
        other => Err(no_len(other.kind())),
    }
}
