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
//! operand    := path | literal | "(" test ")"
//! ```
//!
//! `is` and `is not` take `None`, `True` or `False` on their right (what
//! identity means for a JSON value). Ordering two values Python cannot
//! order (a string and a number, `None`, dicts) and `in` over a value that
//! is not a string, list or dict are [`TemplateError::Type`] at render
//! time, where Python raises `TypeError`.

use std::cmp::Ordering;

use serde_json::Value;

use super::{is_name, kind, literal, TemplateError, Val};

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
                let end = src[i..]
                    .find(|ch: char| ch.is_whitespace() || WORD_END.contains(ch))
                    .map_or(src.len(), |n| n + i);
                out.push(Tok::Word(&src[i..end]));
                i = end;
            }
        }
    }
    Some(out)
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
            Tok::Str(s) => literal(s).map(Operand::Literal),
            Tok::Word("and" | "or" | "not" | "in" | "is") => None,
            Tok::Word(w) => match literal(w) {
                Some(v) => Some(Operand::Literal(v)),
                None => is_name(w).then(|| Operand::Path(w.to_string())),
            },
            Tok::Op(_) | Tok::Close => None,
        }
    }
}

/// What a condition reads a path with.
pub(super) type Lookup<'f, 'a> = &'f dyn Fn(&'a str) -> Result<Val<'a>, TemplateError>;

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
            Test::Compare { first, rest } if rest.is_empty() => match first {
                Operand::Group(t) => t.eval(get),
                other => Ok(value(other, get)?.truthy()),
            },
            Test::Compare { first, rest } => {
                let mut left = value(first, get)?;
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

/// A bool as a value, for a parenthesized test used as an operand.
static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

fn value<'a>(operand: &'a Operand, get: Lookup<'_, 'a>) -> Result<Val<'a>, TemplateError> {
    match operand {
        Operand::Path(p) => get(p),
        Operand::Literal(v) => Ok(Val::Json(v)),
        // `(a or b)` is a bool here, where Python gives `a` or `b`: the same
        // in a test, and in a comparison where the operands are bools.
        Operand::Group(t) => Ok(Val::Json(if t.eval(get)? { &TRUE } else { &FALSE })),
    }
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

fn text<'a>(v: Val<'a>) -> Option<&'a str> {
    match v {
        Val::Str(s) => Some(s),
        Val::Json(Value::String(s)) => Some(s),
        Val::Json(_) => None,
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

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        // As f64: exact for every integer up to 2^53.
        (Num::Int(x), Num::Float(y)) => (x as f64).partial_cmp(&y),
        (Num::Float(x), Num::Int(y)) => x.partial_cmp(&(y as f64)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
    }
}

/// Python's `==`: `1 == 1.0 == True`, lists item by item, dicts by keys
/// and values whatever their order, and values of different kinds unequal.
fn equal(a: Val<'_>, b: Val<'_>) -> bool {
    if let (Some(x), Some(y)) = (text(a), text(b)) {
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
    if let (Some(x), Some(y)) = (text(a), text(b)) {
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
        Val::Json(Value::Array(items)) => Ok(items.iter().any(|v| equal(item, Val::Json(v)))),
        Val::Json(Value::Object(map)) => match (text(item), item) {
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
