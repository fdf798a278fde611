//! Functions as arguments: `sorted(users, key=lambda u: u.age)`,
//! `max(xs, key=len)`, `map(str.upper, names)`, `filter(None, xs)`.
//!
//! A template's values are JSON values, and a function is none: a
//! `lambda`, or the name of a builtin (`len`, `str`, `int`, `abs`, `float`,
//! `bool`, `repr`, `ord`, `round`, `sum`, `min`, `max`, `sorted`, `list`)
//! or of a string method (`str.lower`, `str.strip`, ...), is taken where
//! Python's `sorted`, `min`, `max`, `map` and `filter` take a function,
//! and applied there to each item. A lambda anywhere else is a
//! [`TemplateError::Type`] that says where it may go. `map` and `filter`
//! give lists (Python: iterators), as `range` and `zip` do here.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::methods::{call_method, Method};
use super::{builtins, iter_items, to_value, Bound, Callee, Env, Exp, TemplateError, Val, V};

/// The builtins whose arguments may be functions.
const TAKE_FUNCTIONS: &[&str] = &["sorted", "min", "max", "map", "filter"];

/// Builtin names that stand for their function where one is taken.
const FUNCTION_NAMES: &[&str] = &[
    "len", "str", "int", "abs", "float", "bool", "repr", "ord", "round", "sum", "min", "max",
    "sorted", "list",
];

/// A function an argument gives.
enum Function<'a> {
    Lambda { params: &'a [String], body: &'a Exp },
    Builtin(&'a str),
    StrMethod(Method),
}

/// `e` as a function, where one is taken: a lambda, a builtin's name, or
/// `str.method`.
fn function(e: &Exp) -> Option<Function<'_>> {
    match e {
        Exp::Lambda { params, body } => Some(Function::Lambda { params, body }),
        Exp::Path(p) if FUNCTION_NAMES.contains(&p.as_str()) => Some(Function::Builtin(p)),
        Exp::Path(p) => {
            let name = p.strip_prefix("str.")?;
            match Method::from_name(name)? {
                (m, arity) if arity.contains(&0) && m != Method::Format => {
                    Some(Function::StrMethod(m))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

impl<'a> Function<'a> {
    /// The function applied to `args`.
    fn apply(&self, env: &dyn Env<'a>, args: &[Val<'a>]) -> Result<Value, TemplateError> {
        match self {
            Function::Lambda { params, body } => {
                if params.len() != args.len() {
                    return Err(TemplateError::Type(format!(
                        "<lambda>() takes {} arguments, {} given",
                        params.len(),
                        args.len()
                    )));
                }
                let names: Vec<(&'a str, Val<'a>)> = params
                    .iter()
                    .map(String::as_str)
                    .zip(args.iter().copied())
                    .collect();
                let bound = Bound {
                    outer: env,
                    names: &names,
                };
                Ok(to_value(body.eval(&bound)?.view()))
            }
            Function::StrMethod(m) => match args {
                [one] if one.as_str().is_some() => {
                    call_method(*m, V::Ref(*one), &[], env.max_len()).map(|v| to_value(v.view()))
                }
                [other] => Err(TemplateError::Type(format!(
                    "descriptor of 'str' objects doesn't apply to {}",
                    other.kind()
                ))),
                _ => Err(TemplateError::Type(
                    "a str method takes one argument".into(),
                )),
            },
            Function::Builtin(name) => {
                let [one] = args else {
                    return Err(TemplateError::Type(format!(
                        "{name}() here takes one argument, {} given",
                        args.len()
                    )));
                };
                // `len`, `str`, `int` and `abs` are the expression
                // language's own; the others Python's builtins.
                Callee::from_name(name)
                    .and_then(|c| c.python(*one))
                    .or_else(|| builtins::call(env, name, vec![to_value(*one)], Map::new()))
                    .unwrap_or_else(|| Err(TemplateError::Type(format!("{name}?"))))
            }
        }
    }
}

/// `name(args, kwargs)` when `name` is one of [`TAKE_FUNCTIONS`] and a
/// function is given where it takes one; `None` otherwise (an ordinary
/// call).
pub(super) fn call<'a>(
    env: &dyn Env<'a>,
    name: &str,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Option<Result<V<'a>, TemplateError>> {
    if !TAKE_FUNCTIONS.contains(&name) {
        return None;
    }
    let key = kwargs.iter().find(|(k, _)| k == "key").map(|(_, e)| e);
    let given = match name {
        "map" | "filter" => {
            args.first().is_some_and(|a| function(a).is_some())
                || (name == "filter" && matches!(args.first(), Some(Exp::Literal(Value::Null))))
        }
        _ => key.is_some_and(|k| function(k).is_some()),
    };
    if !given {
        return None;
    }
    if super::unpacks(args, kwargs) {
        return Some(error(
            name,
            "takes no *x or **d arguments beside a function in a template",
        ));
    }
    Some(
        match name {
            "map" => map(env, args, kwargs),
            "filter" => filter(env, args, kwargs),
            _ => keyed(env, name, args, kwargs),
        }
        .map(V::Own),
    )
}

fn error<T>(name: &str, why: impl std::fmt::Display) -> Result<T, TemplateError> {
    Err(TemplateError::Type(format!("{name}(): {why}")))
}

/// An argument's items, kept for the render so that a function can bind
/// them (each a step of the budget).
fn items<'a>(env: &dyn Env<'a>, e: &'a Exp) -> Result<Vec<Val<'a>>, TemplateError> {
    let kept = env.keep(e.eval(env)?)?;
    let list = iter_items(kept)?;
    env.charge(list.len() as u64)?;
    Ok(list)
}

/// `map(f, *iterables)`: `f` of the items at each position, as far as the
/// shortest iterable.
fn map<'a>(
    env: &dyn Env<'a>,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Result<Value, TemplateError> {
    if !kwargs.is_empty() {
        return error("map", "takes no keyword arguments");
    }
    let Some((f, iterables)) = args.split_first() else {
        return error("map", "needs a function and an iterable");
    };
    if iterables.is_empty() {
        return error("map", "must have at least two arguments");
    }
    let f = function(f).ok_or_else(|| TemplateError::Type("map(): not a function".into()))?;
    let lists = iterables
        .iter()
        .map(|e| items(env, e))
        .collect::<Result<Vec<_>, _>>()?;
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<Val<'a>> = lists.iter().map(|l| l[i]).collect();
        out.push(f.apply(env, &row)?);
    }
    Ok(Value::Array(out))
}

/// `filter(f, iterable)` (`f` may be `None`: the truthy items).
fn filter<'a>(
    env: &dyn Env<'a>,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Result<Value, TemplateError> {
    if !kwargs.is_empty() {
        return error("filter", "takes no keyword arguments");
    }
    let [f, iterable] = args else {
        return error("filter", format!("takes 2 arguments, {} given", args.len()));
    };
    let f = function(f);
    let mut out = Vec::new();
    for item in items(env, iterable)? {
        let keep = match &f {
            Some(f) => Val::Json(&f.apply(env, &[item])?).truthy(),
            None => item.truthy(),
        };
        if keep {
            out.push(to_value(item));
        }
    }
    Ok(Value::Array(out))
}

/// `sorted`, `min` or `max` with a `key` function.
fn keyed<'a>(
    env: &dyn Env<'a>,
    name: &str,
    args: &'a [Exp],
    kwargs: &'a [(String, Exp)],
) -> Result<Value, TemplateError> {
    let mut key = None;
    let mut reverse = false;
    let mut default = None;
    for (k, e) in kwargs {
        match (k.as_str(), name) {
            ("key", _) => key = function(e),
            ("reverse", "sorted") => reverse = e.eval(env)?.view().truthy(),
            ("default", "min" | "max") => default = Some(to_value(e.eval(env)?.view())),
            _ => return error(name, format!("unexpected keyword argument {k:?}")),
        }
    }
    let key = key.ok_or_else(|| TemplateError::Type(format!("{name}(): key is not a function")))?;
    let list: Vec<Val<'a>> = match (name, args) {
        ("sorted", [one]) => items(env, one)?,
        ("sorted", _) => {
            return error(
                name,
                format!("takes 1 positional argument, {} given", args.len()),
            )
        }
        (_, []) => return error(name, "expected at least 1 argument, got 0"),
        (_, [one]) => items(env, one)?,
        (_, several) => {
            if default.is_some() {
                return error(name, "default= is only for a single iterable");
            }
            let mut vals = Vec::with_capacity(several.len());
            for e in several {
                vals.push(env.keep(e.eval(env)?)?);
            }
            vals
        }
    };
    let keys = list
        .iter()
        .map(|item| key.apply(env, &[*item]))
        .collect::<Result<Vec<_>, _>>()?;
    if name == "sorted" {
        let order = builtins::sort_order(env, &keys, reverse)?;
        return Ok(Value::Array(
            order.into_iter().map(|i| to_value(list[i])).collect(),
        ));
    }
    let want = if name == "min" {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    let best = builtins::extreme_at(&keys, want)?;
    match (best, default) {
        (Some(i), _) => Ok(to_value(list[i])),
        (None, Some(d)) => Ok(d),
        (None, None) => error(name, "the iterable is empty (give default=)"),
    }
}

#[cfg(test)]
mod tests {
    use crate::web::template::Template;
    use serde_json::{json, Value};

    fn values() -> Value {
        json!({
            "users": [{"name": "bo", "age": 30}, {"name": "Ann", "age": 25}, {"name": "cy", "age": 30}],
            "xs": [3, -1, 2], "ws": ["bb", "a", "ccc"], "n": 10
        })
    }

    /// Each result is Python 3's for the same expression.
    #[test]
    fn functions_are_taken_where_python_takes_them() {
        super::super::check_results(&values(), &[
            (
                "[u['name'] for u in sorted(users, key=lambda u: u['age'])]",
                "['Ann', 'bo', 'cy']",
            ),
            (
                "[u['name'] for u in sorted(users, key=lambda u: [u['age'], u['name']], reverse=True)]",
                "['cy', 'bo', 'Ann']",
            ),
            (
                "[u['name'] for u in sorted(users, key=lambda u: u['name'].lower())]",
                "['Ann', 'bo', 'cy']",
            ),
            ("max(users, key=lambda u: u['age'])['name']", "bo"),
            ("min(users, key=lambda u: u['age'])['name']", "Ann"),
            ("max(ws, key=len)", "ccc"),
            ("min(xs, key=abs)", "-1"),
            ("max(3, -4, key=abs)", "-4"),
            ("max([], key=len, default=0)", "0"),
            ("sorted(ws, key=str.lower)", "['a', 'bb', 'ccc']"),
            ("sorted(ws, key=len, reverse=True)", "['ccc', 'bb', 'a']"),
            ("list(map(str.upper, ws))", "['BB', 'A', 'CCC']"),
            ("list(map(lambda a, b: a * b, xs, [1, 2]))", "[3, -2]"),
            ("list(map(str, xs))", "['3', '-1', '2']"),
            ("list(filter(None, [0, 1, '', 'x']))", "[1, 'x']"),
            ("list(filter(lambda x: x > 0, xs))", "[3, 2]"),
            // The lambda sees the template's names, its own first.
            ("list(map(lambda x: x + n, xs))", "[13, 9, 12]"),
            ("list(map(lambda n: n, xs))", "[3, -1, 2]"),
            ("sum(map(lambda u: u['age'], users))", "85"),
        ]);
    }

    #[test]
    fn a_lambda_elsewhere_says_where_it_goes() {
        super::super::check_errors(
            &values(),
            &[
                ("lambda x: x", "only where sorted(key=)"),
                ("len(lambda x: x)", "only where sorted(key=)"),
                ("sorted(xs, key=lambda: 1)", "takes 0 arguments, 1 given"),
                ("sorted(xs, key=xs)", "key= must be a function"),
                ("map(1, xs)", "must be a function"),
                ("map(len)", "at least two arguments"),
                ("filter(len, xs)", "len() of a number"),
                ("sorted(users, key=lambda u: u['nope'])", "undefined"),
                ("sorted(xs, key=str.lower)", "doesn't apply to a number"),
                ("max(1, 2, key=abs, default=0)", "single iterable"),
            ],
        );
        for bad in [
            "{{ lambda x x }}",
            "{{ lambda x, x: 1 }}",
            "{{ lambda if: 1 }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
