//! Python's built-in functions, for the names a template calls that the
//! application's `ui_method`s do not define (Python looks a name up in the
//! template's namespace first, then in `builtins`).
//!
//! What each gives is what Python gives for the values a template holds
//! (JSON values and strings), with two differences of representation:
//! a tuple is a list (`zip`, `enumerate` and `divmod` give lists of lists,
//! printed `[0, 'a']` where Python prints `(0, 'a')`), and what Python
//! returns as an iterator (`range`, `enumerate`, `zip`, `reversed`) is the
//! list it would produce, so `{{ range(3) }}` prints `[0, 1, 2]` where
//! Python prints `range(0, 3)`. Used as Python uses them — in `for`, in a
//! comprehension, under `len`, `list`, `sorted`, `sum`, `", ".join(..)` —
//! they give Python's results. Where a function is an argument
//! (`sorted(key=..)`, `min(key=..)`, `max(key=..)`, `map`, `filter`),
//! [`super::lambda`] takes the call.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{
    arith, int, iter_items, number, order, range, to_value, Arith, Env, Num, Op, TemplateError, Val,
};

/// The names [`call`] knows, for error messages.
pub(super) const NAMES: &str = "range, enumerate, zip, reversed, sorted, list, tuple, dict, \
     min, max, sum, any, all, round, int, bool, float, repr, format, pow, divmod, chr, ord, hex, \
     oct, bin, map, filter";

/// A call's arguments, checked as Python checks them.
struct Args<'n> {
    name: &'n str,
    pos: Vec<Value>,
    kw: Map<String, Value>,
}

impl Args<'_> {
    fn error(&self, why: impl std::fmt::Display) -> TemplateError {
        TemplateError::Type(format!("{}(): {why}", self.name))
    }

    /// The positional arguments, between `min` and `max` of them.
    fn positional(&self, min: usize, max: usize) -> Result<(), TemplateError> {
        let n = self.pos.len();
        if n < min || n > max {
            let want = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(self.error(format!("takes {want} positional arguments, {n} given")));
        }
        Ok(())
    }

    /// The keyword argument `key`, taken out (or `None`).
    fn keyword(&mut self, key: &str) -> Option<Value> {
        self.kw.shift_remove(key)
    }

    /// No keyword arguments left but those taken.
    fn done(&self) -> Result<(), TemplateError> {
        match self.kw.keys().next() {
            Some(k) => Err(self.error(format!("unexpected keyword argument {k:?}"))),
            None => Ok(()),
        }
    }

    /// A `key=` argument other than `None`: a function is taken before
    /// (`super::lambda`), so this is a value where one is needed.
    fn no_key_function(&mut self) -> Result<(), TemplateError> {
        match self.keyword("key") {
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(self.error(
                "key= must be a function: a lambda (key=lambda u: u.age), a builtin's name \
                 (key=len) or a str method (key=str.lower)",
            )),
        }
    }
}

/// An iterable's items as Python iterates them: a list's items, a dict's
/// keys, a string's characters; a step of the render's budget each.
fn items(env: &dyn Env<'_>, v: &Value) -> Result<Vec<Value>, TemplateError> {
    let list = iter_items(Val::Json(v))?;
    env.charge(list.len() as u64)?;
    Ok(list.into_iter().map(to_value).collect())
}

fn integer(v: &Value, what: &str) -> Result<i128, TemplateError> {
    match number(Val::Json(v)) {
        Some(Num::Int(n)) => Ok(n),
        _ => Err(TemplateError::Type(format!(
            "{what} must be an integer, not {}",
            Val::Json(v).kind()
        ))),
    }
}

/// Python's `name(*args, **kwargs)` for a built-in function, or `None`
/// when `name` is not one of [`NAMES`].
pub(super) fn call(
    env: &dyn Env<'_>,
    name: &str,
    pos: Vec<Value>,
    kw: Map<String, Value>,
) -> Option<Result<Value, TemplateError>> {
    let mut a = Args { name, pos, kw };
    let max_len = env.max_len();
    let result = match name {
        "range" => a.positional(1, 3).and_then(|()| {
            a.done()?;
            let views: Vec<Val<'_>> = a.pos.iter().map(Val::Json).collect();
            let list = range(&views, super::MAX_ITEMS)?;
            env.charge(list.len() as u64)?;
            Ok(Value::Array(list))
        }),
        "enumerate" => enumerate(env, &mut a),
        "zip" => zip(env, &mut a),
        "reversed" => a.positional(1, 1).and_then(|()| {
            a.done()?;
            let mut out = items(env, &a.pos[0])?;
            out.reverse();
            Ok(Value::Array(out))
        }),
        "sorted" => sorted(env, &mut a),
        "list" | "tuple" => a.positional(0, 1).and_then(|()| {
            a.done()?;
            Ok(Value::Array(match a.pos.first() {
                Some(v) => items(env, v)?,
                None => Vec::new(),
            }))
        }),
        "dict" => dict(env, &mut a),
        "min" => extreme(env, &mut a, Ordering::Less),
        "max" => extreme(env, &mut a, Ordering::Greater),
        "sum" => sum(env, &mut a),
        "any" | "all" => a.positional(1, 1).and_then(|()| {
            a.done()?;
            let all = name == "all";
            let list = items(env, &a.pos[0])?;
            Ok(Value::Bool(if all {
                list.iter().all(|v| Val::Json(v).truthy())
            } else {
                list.iter().any(|v| Val::Json(v).truthy())
            }))
        }),
        "round" => round(&mut a),
        // `int(x)` is parsed as its own call; this is `int(s, base)`.
        "int" => a.positional(0, 2).and_then(|()| {
            let base = match a.keyword("base") {
                Some(_) if a.pos.len() == 2 => return Err(a.error("base given twice")),
                Some(b) => Some(b),
                None => a.pos.get(1).cloned(),
            };
            a.done()?;
            let x = a.pos.first().cloned().unwrap_or(Value::from(0));
            let Some(base) = base else {
                return super::py_int(Val::Json(&x));
            };
            let base = integer(&base, "int() base")?;
            let Some(text) = Val::Json(&x).as_str() else {
                return Err(a.error("can't convert non-string with explicit base"));
            };
            match u32::try_from(base) {
                Ok(b @ (0 | 2..=36)) => super::py_int_text(text, b),
                _ => Err(a.error("base must be >= 2 and <= 36, or 0")),
            }
        }),
        "bool" => a.positional(0, 1).and_then(|()| {
            a.done()?;
            Ok(Value::Bool(
                a.pos.first().is_some_and(|v| Val::Json(v).truthy()),
            ))
        }),
        "float" => a.positional(0, 1).and_then(|()| {
            a.done()?;
            a.pos
                .first()
                .map_or(Ok(0.0), to_float)
                .and_then(super::float)
        }),
        "format" => a.positional(1, 2).and_then(|()| {
            let spec = match (a.pos.get(1).cloned(), a.keyword("format_spec")) {
                (Some(_), Some(_)) => return Err(a.error("format_spec given twice")),
                (Some(s), None) | (None, Some(s)) => s,
                (None, None) => Value::String(String::new()),
            };
            a.done()?;
            let Value::String(spec) = spec else {
                return Err(a.error("format_spec must be a str"));
            };
            super::format::format_value(Val::Json(&a.pos[0]), &spec, max_len).map(Value::String)
        }),
        "repr" => a.positional(1, 1).and_then(|()| {
            a.done()?;
            Ok(Value::String(Val::Json(&a.pos[0]).repr()))
        }),
        "pow" => a.positional(2, 2).and_then(|()| {
            a.done()?;
            arith(
                Arith::Pow,
                Val::Json(&a.pos[0]),
                Val::Json(&a.pos[1]),
                max_len,
            )
        }),
        "divmod" => a.positional(2, 2).and_then(|()| {
            a.done()?;
            let (x, y) = (Val::Json(&a.pos[0]), Val::Json(&a.pos[1]));
            Ok(Value::Array(vec![
                arith(Arith::FloorDiv, x, y, max_len)?,
                arith(Arith::Mod, x, y, max_len)?,
            ]))
        }),
        "chr" => a.positional(1, 1).and_then(|()| {
            a.done()?;
            let n = integer(&a.pos[0], "chr()'s argument")?;
            u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .map(|c| Value::String(c.into()))
                .ok_or_else(|| a.error(format!("{n} is not a Unicode code point")))
        }),
        "ord" => a.positional(1, 1).and_then(|()| {
            a.done()?;
            let s = Val::Json(&a.pos[0]).as_str().unwrap_or_default();
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Value::from(u32::from(c))),
                _ => Err(a.error("takes a string of one character")),
            }
        }),
        // With a function, `super::lambda` takes these first.
        "map" | "filter" => Err(a.error(
            "the first argument must be a function: a lambda, a builtin's name or a str method",
        )),
        "hex" | "oct" | "bin" => a.positional(1, 1).and_then(|()| {
            a.done()?;
            let n = integer(&a.pos[0], &format!("{name}()'s argument"))?;
            let sign = if n < 0 { "-" } else { "" };
            let m = n.unsigned_abs();
            Ok(Value::String(match name {
                "hex" => format!("{sign}0x{m:x}"),
                "oct" => format!("{sign}0o{m:o}"),
                _ => format!("{sign}0b{m:b}"),
            }))
        }),
        _ => return None,
    };
    // `repr`, `format`, `str` and the others that build text are bounded
    // as the operators are.
    // A list or dict they build is bounded as a display's is (its strings'
    // bytes, its nesting).
    Some(result.and_then(|v| match v {
        Value::String(s) => super::bounded(s, max_len).map(Value::String),
        Value::Array(_) | Value::Object(_) => {
            super::check_items(super::weight(&v)?)?;
            Ok(v)
        }
        other => Ok(other),
    }))
}

/// `enumerate(iterable, start=0)`: `[index, item]` pairs.
fn enumerate(env: &dyn Env<'_>, a: &mut Args<'_>) -> Result<Value, TemplateError> {
    a.positional(1, 2)?;
    let start = match (a.pos.get(1).cloned(), a.keyword("start")) {
        (Some(_), Some(_)) => return Err(a.error("start given twice")),
        (Some(s), None) | (None, Some(s)) => integer(&s, "start")?,
        (None, None) => 0,
    };
    a.done()?;
    items(env, &a.pos[0])?
        .into_iter()
        .enumerate()
        .map(|(i, item)| Ok(Value::Array(vec![int(start + i as i128)?, item])))
        .collect::<Result<_, _>>()
        .map(Value::Array)
}

/// `zip(*iterables)`: lists of the items at each position, as long as the
/// shortest.
fn zip(env: &dyn Env<'_>, a: &mut Args<'_>) -> Result<Value, TemplateError> {
    a.keyword("strict")
        .filter(|s| Val::Json(s).truthy())
        .map_or(Ok(()), |_| Err(a.error("strict=True is not supported")))?;
    a.done()?;
    let lists = a
        .pos
        .iter()
        .map(|v| items(env, v))
        .collect::<Result<Vec<_>, _>>()?;
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    env.charge((n * lists.len()) as u64)?;
    Ok(Value::Array(
        (0..n)
            .map(|i| Value::Array(lists.iter().map(|l| l[i].clone()).collect()))
            .collect(),
    ))
}

/// Python's `<` between two items, as `sorted`, `min` and `max` use it.
fn less(x: &Value, y: &Value) -> Result<bool, TemplateError> {
    order(Op::Lt, Val::Json(x), Val::Json(y)).map(Ordering::is_lt)
}

/// `sorted(iterable, key=None, reverse=False)`: stable, by Python's `<`
/// (`reverse` keeps equal items in their order, as Python does).
fn sorted(env: &dyn Env<'_>, a: &mut Args<'_>) -> Result<Value, TemplateError> {
    a.positional(1, 1)?;
    a.no_key_function()?;
    let reverse = a.keyword("reverse").is_some_and(|r| Val::Json(&r).truthy());
    a.done()?;
    let mut list = items(env, &a.pos[0])?;
    let order = sort_order(env, &list, reverse)?;
    Ok(Value::Array(
        order
            .into_iter()
            .map(|i| std::mem::take(&mut list[i]))
            .collect(),
    ))
}

/// The positions of `keys` in sorted order: stable, by Python's `<`,
/// `reverse` keeping equal keys in their order (as Python's `sorted`).
/// n log n comparisons, charged as steps.
pub(super) fn sort_order(
    env: &dyn Env<'_>,
    keys: &[Value],
    reverse: bool,
) -> Result<Vec<usize>, TemplateError> {
    let n = keys.len() as u64;
    env.charge(n * u64::from(64 - n.leading_zeros()))?;
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let mut failed = None;
    order.sort_by(|&i, &j| {
        if failed.is_some() {
            return Ordering::Equal;
        }
        let (x, y) = if reverse {
            (&keys[j], &keys[i])
        } else {
            (&keys[i], &keys[j])
        };
        match (less(x, y), less(y, x)) {
            (Ok(true), _) => Ordering::Less,
            (Ok(false), Ok(true)) => Ordering::Greater,
            (Ok(false), Ok(false)) => Ordering::Equal,
            (Err(e), _) | (_, Err(e)) => {
                failed = Some(e);
                Ordering::Equal
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(order),
    }
}

/// The position of the first smallest (`want` less) or largest of `keys`,
/// by Python's `<` (`min`'s and `max`'s choice); `None` for no keys.
pub(super) fn extreme_at(keys: &[Value], want: Ordering) -> Result<Option<usize>, TemplateError> {
    let mut best: Option<usize> = None;
    for (i, k) in keys.iter().enumerate() {
        let better = match best {
            None => true,
            Some(b) if want == Ordering::Less => less(k, &keys[b])?,
            Some(b) => less(&keys[b], k)?,
        };
        if better {
            best = Some(i);
        }
    }
    Ok(best)
}

/// `min(iterable, *, default=..)`, `min(a, b, *more)` (and `max`): the
/// first of the smallest (largest) items.
fn extreme(env: &dyn Env<'_>, a: &mut Args<'_>, want: Ordering) -> Result<Value, TemplateError> {
    a.positional(1, usize::MAX)?;
    a.no_key_function()?;
    let default = a.keyword("default");
    a.done()?;
    let list = if a.pos.len() == 1 {
        items(env, &a.pos[0])?
    } else if default.is_some() {
        return Err(a.error("default= is only for a single iterable"));
    } else {
        std::mem::take(&mut a.pos)
    };
    let mut list = list;
    extreme_at(&list, want)?
        .map(|i| std::mem::take(&mut list[i]))
        .or(default)
        .ok_or_else(|| a.error("the iterable is empty (give default=)"))
}

/// `sum(iterable, start=0)`: `start + item + item …`, left to right.
fn sum(env: &dyn Env<'_>, a: &mut Args<'_>) -> Result<Value, TemplateError> {
    a.positional(1, 2)?;
    let start = match (a.pos.get(1).cloned(), a.keyword("start")) {
        (Some(_), Some(_)) => return Err(a.error("start given twice")),
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => Value::from(0),
    };
    a.done()?;
    if start.is_string() {
        return Err(a.error("can't sum strings [use ''.join(seq) instead]"));
    }
    let list = items(env, &a.pos[0])?;
    list.iter().try_fold(start, |acc, item| {
        // Adding lists copies the sum so far (quadratic, as in Python):
        // each copy is paid for.
        if let Value::Array(so_far) = &acc {
            env.charge(so_far.len() as u64)?;
        }
        arith(Arith::Add, Val::Json(&acc), Val::Json(item), env.max_len())
    })
}

/// `dict(mapping_or_pairs, **kwargs)`: keys strings, a repeated key keeping
/// its place and taking the later value.
fn dict(env: &dyn Env<'_>, a: &mut Args<'_>) -> Result<Value, TemplateError> {
    a.positional(0, 1)?;
    let mut out = Map::new();
    match a.pos.first() {
        None => {}
        Some(Value::Object(map)) => out.clone_from(map),
        Some(v) => {
            for (i, pair) in items(env, v)?.into_iter().enumerate() {
                let (key, value) = match pair {
                    Value::Array(mut kv) if kv.len() == 2 => {
                        let value = kv.pop().unwrap_or_default();
                        (kv.pop().unwrap_or_default(), value)
                    }
                    Value::String(s) if s.chars().count() == 2 => {
                        let mut cs = s.chars();
                        let k = cs.next().map(String::from).unwrap_or_default();
                        (Value::String(k), Value::String(cs.collect()))
                    }
                    other => {
                        return Err(a.error(format!(
                            "item {i} is {}, not a pair",
                            Val::Json(&other).kind()
                        )))
                    }
                };
                match key {
                    Value::String(k) => {
                        out.insert(k, value);
                    }
                    other => {
                        return Err(a.error(format!(
                            "a template's dict keys are strings, not {}",
                            Val::Json(&other).kind()
                        )))
                    }
                }
            }
        }
    }
    for (k, v) in std::mem::take(&mut a.kw) {
        out.insert(k, v);
    }
    Ok(Value::Object(out))
}

/// Python's `float(x)`: a number as a float, a string of one (spaces
/// around it, underscores between digits) parsed.
fn to_float(v: &Value) -> Result<f64, TemplateError> {
    if let Some(s) = v.as_str() {
        let ascii = super::decimal_and_space_to_ascii(s);
        let t = ascii.trim();
        let plain = t.replace('_', "");
        let underscores_ok = !t.contains('_')
            || t.as_bytes()
                .windows(3)
                .all(|w| w[1] != b'_' || (w[0].is_ascii_digit() && w[2].is_ascii_digit()))
                && !t.starts_with('_')
                && !t.ends_with('_');
        let word = plain.trim_start_matches(['+', '-']).to_ascii_lowercase();
        // Python reads these as infinity and NaN; a template holds neither.
        let special = matches!(word.as_str(), "inf" | "infinity" | "nan");
        return match plain.parse::<f64>() {
            Ok(f) if underscores_ok && !special && !plain.is_empty() => Ok(f),
            Ok(_) if special => Err(TemplateError::Type(format!(
                "float({s:?}) is not a finite number"
            ))),
            _ => Err(TemplateError::Type(format!(
                "could not convert string to float: {s:?}"
            ))),
        };
    }
    match number(Val::Json(v)) {
        Some(Num::Int(n)) => Ok(n as f64),
        Some(Num::Float(f)) => Ok(f),
        None => Err(TemplateError::Type(format!(
            "float() of {}",
            Val::Json(v).kind()
        ))),
    }
}

/// `round(number, ndigits=None)`: half to even on the number's exact
/// value, as Python rounds; an integer without `ndigits` (or for an
/// integer), a float with it.
fn round(a: &mut Args<'_>) -> Result<Value, TemplateError> {
    a.positional(1, 2)?;
    let digits = match (a.pos.get(1).cloned(), a.keyword("ndigits")) {
        (Some(_), Some(_)) => return Err(a.error("ndigits given twice")),
        (Some(d), None) | (None, Some(d)) => d,
        (None, None) => Value::Null,
    };
    a.done()?;
    let digits = match digits {
        Value::Null => None,
        d => Some(integer(&d, "ndigits")?),
    };
    let x = number(Val::Json(&a.pos[0])).ok_or_else(|| {
        a.error(format!(
            "takes a number, not {}",
            Val::Json(&a.pos[0]).kind()
        ))
    })?;
    match (x, digits) {
        (Num::Int(n), None) => int(n),
        (Num::Int(n), Some(d)) if d >= 0 => int(n),
        (Num::Int(n), Some(d)) => {
            let digits = n.unsigned_abs().to_string();
            let rounded = round_at(&digits, false, d.unsigned_abs().min(64) as usize);
            let m: i128 = rounded.parse().map_err(|_| a.error("out of range"))?;
            int(if n < 0 { -m } else { m })
        }
        (Num::Float(f), None) => {
            // Half to even, from the exact value.
            let r = format!("{f:.0}");
            r.parse::<i128>()
                .map_err(|_| a.error("out of the range a template holds"))
                .and_then(int)
        }
        (Num::Float(f), Some(d)) if d >= 0 => {
            // Past 17 significant digits a float has nothing to round.
            if d > 330 {
                return super::float(f);
            }
            let r: f64 = format!("{f:.*}", d as usize).parse().unwrap_or(f);
            super::float(r)
        }
        (Num::Float(f), Some(d)) => {
            let places = d.unsigned_abs().min(400) as usize;
            let whole = f.trunc();
            let digits = format!("{:.0}", whole.abs());
            let rounded = round_at(&digits, f != whole, places);
            let m: f64 = rounded.parse().unwrap_or(0.0);
            super::float(if f.is_sign_negative() { -m } else { m })
        }
    }
}

/// The decimal integer `digits` (of a number whose fraction is non-zero
/// when `fraction`) rounded to a multiple of 10^`places`, half to even: its
/// digits.
fn round_at(digits: &str, fraction: bool, places: usize) -> String {
    if places == 0 {
        return digits.to_string();
    }
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (head, tail) = padded.split_at(padded.len() - places);
    let half = format!("5{}", "0".repeat(places - 1));
    let up = match tail.cmp(half.as_str()) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => fraction || head.bytes().last().is_some_and(|b| (b - b'0') % 2 == 1),
    };
    let head = if up {
        increment(head)
    } else {
        head.to_string()
    };
    let head = head.trim_start_matches('0');
    if head.is_empty() {
        "0".to_string()
    } else {
        format!("{head}{}", "0".repeat(places))
    }
}

/// A string of decimal digits plus one.
fn increment(digits: &str) -> String {
    let mut out: Vec<u8> = digits.bytes().collect();
    for d in out.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8(out).unwrap_or_default();
        }
    }
    let mut s = String::from("1");
    s.push_str(&String::from_utf8(out).unwrap_or_default());
    s
}

#[cfg(test)]
mod tests {
    use super::{increment, round_at};
    use crate::web::template::{Root, Template};
    use serde_json::{json, Map, Value};

    fn values() -> Value {
        json!({"xs": [3, 1, 2, 1], "d": {"b": 1, "a": 2}, "s": "héllo", "f": 2.675})
    }

    /// `*xs` and `**d` in a call: Python's unpacking, into builtins and
    /// `str.format` (results as Python 3 prints them, tuples as lists), and
    /// Python's TypeErrors; refused at parse time where the callee takes a
    /// fixed set of arguments.
    #[test]
    fn calls_unpack_star_and_double_star_arguments() {
        let v = json!({"rows": [[1, 2, 3], [4, 5, 6]], "pair": ["a", "b"], "xs": [3, 1, 2],
                       "user": {"name": "ann", "age": 7}, "n": 3, "s": "ab"});
        super::super::check_results(
            &v,
            &[
                ("list(zip(*rows))", "[[1, 4], [2, 5], [3, 6]]"),
                ("max(*xs)", "3"),
                ("max(0, *xs, 9)", "9"),
                ("list(range(*[1, 7, 2]))", "[1, 3, 5]"),
                ("'{} and {}'.format(*pair)", "a and b"),
                ("'{}{}{}'.format(*s, 'c')", "abc"),
                ("'{name} is {age}'.format(**user)", "ann is 7"),
                ("'{0}: {name}'.format(*pair, **user)", "a: ann"),
                ("dict(**user, k=1)", "{'name': 'ann', 'age': 7, 'k': 1}"),
                ("dict(x=0, **user)", "{'x': 0, 'name': 'ann', 'age': 7}"),
                ("sorted(*[xs], reverse=True)", "[3, 2, 1]"),
                ("len(list(zip(*[])))", "0"),
            ],
        );
        super::super::check_errors(
            &v,
            &[
                ("max(*n)", "argument after * must be an iterable, not int"),
                (
                    "dict(**xs)",
                    "argument after ** must be a mapping, not list",
                ),
                (
                    "dict(name='x', **user)",
                    "got multiple values for keyword argument 'name'",
                ),
                (
                    "dict(**user, **user)",
                    "multiple values for keyword argument 'name'",
                ),
                ("sorted(*xs, key=lambda x: x)", "no *x or **d arguments"),
                // The bound on a string's characters is not a TypeError.
                ("max(*('a' * 5000000))", "at most"),
            ],
        );
        // Where the arguments are fixed when parsed, unpacking is refused
        // then.
        for src in [
            "{{ s.upper(*xs) }}",
            "{{ _(*pair) }}",
            "{{ locale.list(*rows) }}",
            "{{ len(*xs) }}",
            "{{ modules.linkify(*pair) }}",
            "{{ f(*x for x in xs) }}",
            "{{ f(a=1, *xs) }}",
            "{{ *xs }}",
        ] {
            assert!(Template::parse(src).is_err(), "{src}");
        }
    }

    /// `*xs` in list and tuple displays and `**d` in dict displays, as
    /// Python 3 unpacks them (tuples printed as lists), with Python's
    /// TypeErrors; what Python refuses to parse is refused.
    #[test]
    fn displays_unpack_star_and_double_star_items() {
        let v = json!({"rows": [[1, 2, 3], [4, 5, 6]], "pair": ["a", "b"], "xs": [3, 1, 2],
                       "user": {"name": "ann", "age": 7}, "n": 3});
        super::super::check_results(
            &v,
            &[
                ("[*xs]", "[3, 1, 2]"),
                ("[0, *xs, *'ab', 9]", "[0, 3, 1, 2, 'a', 'b', 9]"),
                ("[*user]", "['name', 'age']"),
                ("(*pair,)", "['a', 'b']"),
                ("(1, *xs)", "[1, 3, 1, 2]"),
                ("'%s-%s-%s' % (*pair, 1)", "a-b-1"),
                ("{**user, 'k': 1}", "{'name': 'ann', 'age': 7, 'k': 1}"),
                ("{'age': 0, **user}", "{'age': 7, 'name': 'ann'}"),
                ("{**user, 'name': 'bo'}", "{'name': 'bo', 'age': 7}"),
                ("len([*rows[0], *rows[1]])", "6"),
                ("[x * 2 for x in [*xs, 4]]", "[6, 2, 4, 8]"),
                ("max([*xs, 9, *[]])", "9"),
            ],
        );
        super::super::check_errors(
            &v,
            &[
                ("[*n]", "Value after * must be an iterable, not int"),
                ("(0, *n)", "Value after * must be an iterable, not int"),
                ("{**xs}", "'list' object is not a mapping"),
                ("[*('a' * 5000000)]", "at most"),
            ],
        );
        for src in [
            "{{ [*xs for x in xs] }}",
            "{{ (*xs) }}",
            "{{ [**user] }}",
            "{{ {*xs} }}",
            "{{ {**user: 1} }}",
            "{{ (**user,) }}",
        ] {
            assert!(Template::parse(src).is_err(), "{src}");
        }
        // `for` over `.items()` / `.keys()` of an expression, not a path.
        let t = Template::parse(
            "{% for k, v in {**user, 'k': 2}.items() %}{{ k }}={{ v }};{% end %}|\
             {% for k in dict(a=1, **user).keys() %}{{ k }} {% end %}",
        )
        .unwrap();
        assert_eq!(
            t.render_value(&v).unwrap(),
            "name=ann;age=7;k=2;|a name age "
        );
    }

    /// Each result is what Python 3 prints for the same expression (tuples
    /// aside: a list here).
    #[test]
    fn builtins_give_pythons_results() {
        super::super::check_results(
            &values(),
            &[
                ("sorted(xs)", "[1, 1, 2, 3]"),
                ("sorted(xs, reverse=True)", "[3, 2, 1, 1]"),
                ("sorted(d)", "['a', 'b']"),
                ("sorted(s)", "['h', 'l', 'l', 'o', 'é']"),
                (
                    "sorted([[2, 'a'], [1, 'b'], [1, 'a']])",
                    "[[1, 'a'], [1, 'b'], [2, 'a']]",
                ),
                ("min(xs)", "1"),
                ("max(xs)", "3"),
                ("max(3, 7.5, 5)", "7.5"),
                ("min('b', 'a')", "a"),
                ("min([], default=None)", "None"),
                ("max(d)", "b"),
                ("sum(xs)", "7"),
                ("sum(xs, 10)", "17"),
                ("sum([0.1] * 10)", "0.9999999999999999"),
                ("sum([[1], [2]], [])", "[1, 2]"),
                ("sum([True, True])", "2"),
                ("list(range(3))", "[0, 1, 2]"),
                ("list(range(5, 0, -2))", "[5, 3, 1]"),
                ("[x * 2 for x in range(3)]", "[0, 2, 4]"),
                ("len(range(10))", "10"),
                ("list(enumerate('ab', 1))", "[[1, 'a'], [2, 'b']]"),
                ("[i for i, x in enumerate(xs) if x == 1]", "[1, 3]"),
                ("list(zip(xs, 'abc'))", "[[3, 'a'], [1, 'b'], [2, 'c']]"),
                ("list(zip())", "[]"),
                ("list(reversed(xs))", "[1, 2, 1, 3]"),
                ("''.join(reversed(s))", "olléh"),
                ("list(d)", "['b', 'a']"),
                ("tuple('ab')", "['a', 'b']"),
                ("list()", "[]"),
                ("dict(a=1, b=2)", "{'a': 1, 'b': 2}"),
                (
                    "dict([['x', 1], ['y', 2], ['x', 3]], z=0)",
                    "{'x': 3, 'y': 2, 'z': 0}",
                ),
                ("dict(d, a=0)", "{'b': 1, 'a': 0}"),
                ("any([0, '', None])", "False"),
                ("any(xs)", "True"),
                ("all([])", "True"),
                ("all([1, 0])", "False"),
                ("round(2.5)", "2"),
                ("round(3.5)", "4"),
                ("round(-2.5)", "-2"),
                ("round(f, 2)", "2.67"),
                ("round(0.125, 2)", "0.12"),
                ("round(2.5, 0)", "2.0"),
                ("round(-0.4, 0)", "-0.0"),
                ("round(1234.5, -2)", "1200.0"),
                ("round(1250.0, -2)", "1200.0"),
                ("round(1250.5, -2)", "1300.0"),
                ("round(15, -1)", "20"),
                ("round(25, -1)", "20"),
                ("round(-15, -1)", "-20"),
                ("round(7, 2)", "7"),
                ("round(True)", "1"),
                ("bool([])", "False"),
                ("bool('x')", "True"),
                ("bool()", "False"),
                ("float('1.5')", "1.5"),
                ("float(' -1_000.5 ')", "-1000.5"),
                ("float('1e3')", "1000.0"),
                // Unicode's decimal digits and spaces, as Python reads them.
                ("float('\\u0663\\u0664.5')", "34.5"),
                ("int('\\u0663\\u0664')", "34"),
                ("int('\\U0001d7d9\\U0001d7ec\\U0001d7ff')", "109"),
                ("int(' \\u3000\\u0967\\u0966\\xa0')", "10"),
                ("int('\\u0663', 16)", "3"),
                ("float(3)", "3.0"),
                ("float()", "0.0"),
                ("repr(s)", "'héllo'"),
                ("repr(\"it's\")", "\"it's\""),
                ("repr(1.0)", "1.0"),
                ("repr(xs)", "[3, 1, 2, 1]"),
                ("pow(2, 10)", "1024"),
                ("pow(2, -1)", "0.5"),
                ("divmod(7, -2)", "[-4, -1]"),
                ("divmod(7.5, 2)", "[3.0, 1.5]"),
                ("chr(233)", "é"),
                ("ord('é')", "233"),
                ("hex(255)", "0xff"),
                ("hex(-255)", "-0xff"),
                ("oct(8)", "0o10"),
                ("bin(5)", "0b101"),
            ],
        );
    }

    /// Copies of nested values are steps of the render's budget: a list
    /// comprehension's elements, and `sum`'s running total of lists.
    #[test]
    fn copies_spend_the_step_budget() {
        let steps = |src: &str| {
            let t = Template::parse(&format!("{{{{ {src} }}}}")).unwrap();
            t.render_limited(Root::Object(&Map::new()), None, 10_000, 1 << 20)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            steps("len([[0] * 100 for i in range(50)])").as_deref(),
            Ok("50")
        );
        let err = steps("len([[0] * 100 for i in range(200)])").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        assert_eq!(steps("len(sum([[0] * 10] * 20, []))").as_deref(), Ok("200"));
        let err = steps("len(sum([[0] * 10] * 100, []))").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn builtins_refuse_what_python_refuses() {
        super::super::check_errors(
            &values(),
            &[
                ("sorted([1, 'a'])", "cannot compare"),
                ("sorted(xs, key=xs)", "key= must be a function"),
                ("max(xs, key=1)", "key= must be a function"),
                ("min([])", "empty"),
                ("min()", "at least 1"),
                ("max(1, 2, default=0)", "single iterable"),
                ("sum(['a', 'b'], '')", "can't sum strings"),
                ("sum(['a'])", "unsupported operand"),
                ("sum(5)", "not iterable"),
                ("range(1.5)", "integers"),
                ("range(1, 2, 0)", "zero"),
                ("range()", "1 to 3"),
                ("list(range(100000000))", "at most"),
                ("enumerate(xs, 1, start=2)", "twice"),
                ("zip(xs, strict=True)", "strict"),
                ("dict([1, 2])", "not a pair"),
                ("dict([[1, 2]])", "keys are strings"),
                ("round('1')", "takes a number"),
                ("round(1.5, 0.5)", "integer"),
                ("float('x')", "could not convert"),
                ("float('\\x1c1')", "could not convert"),
                ("int('\\x1f1')", "invalid literal"),
                ("int('\\uff46', 16)", "invalid literal"),
                ("float('inf')", "not a finite number"),
                ("float('1__0')", "could not convert"),
                ("chr(-1)", "code point"),
                ("ord('ab')", "one character"),
                ("hex(1.5)", "integer"),
                ("sorted(xs, bad=1)", "unexpected keyword"),
                ("nothing(1)", "no function of this template"),
                // Lists an expression builds are bounded in items, not only
                // in the output's bytes.
                ("len([0] * 5000000)", "at most"),
                ("len(list('a' * 5000000))", "at most"),
                ("len(('a,' * 5000000).split(','))", "at most"),
                ("len(('a ' * 5000000).split())", "at most"),
                ("len([c for c in 'a' * 5000000])", "at most"),
                ("len([[0] * 1000] * 100000)", "at most"),
                ("len([[0] * 3000] * 1000 + [[0] * 3000] * 1000)", "at most"),
                ("len([[0] * 100000 for i in range(1000)])", "at most"),
            ],
        );
    }

    #[test]
    fn rounding_at_a_power_of_ten_is_half_to_even() {
        assert_eq!(round_at("15", false, 1), "20");
        assert_eq!(round_at("25", false, 1), "20");
        assert_eq!(round_at("25", true, 1), "30");
        assert_eq!(round_at("24", true, 1), "20");
        assert_eq!(round_at("5", false, 1), "0");
        assert_eq!(round_at("5", true, 1), "10");
        assert_eq!(round_at("950", false, 2), "1000");
        assert_eq!(round_at("1249", false, 2), "1200");
        assert_eq!(round_at("7", false, 3), "0");
        assert_eq!(round_at("123", false, 0), "123");
        assert_eq!(increment("999"), "1000");
        assert_eq!(increment("0"), "1");
    }
}
