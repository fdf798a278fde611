//! Differential test of cyclone's templates and `cyclone::web::escape`
//! against Tornado's: `tests/template_diff/cases.json` holds template
//! sources and escape-function inputs with what Tornado 6.6.1 made of
//! them (written by `scripts/template-diff/cases.py`, which runs
//! Tornado); here cyclone renders the same cases and the results are
//! compared.
//!
//! A case matches when both give the same text, or both refuse (the
//! error messages differ by design). The cases where cyclone
//! deliberately differs are listed in [`DIFFERENCES`] with the reason;
//! any other difference fails the test, and so does a listed one that
//! stops differing (the list must stay true).

use std::collections::HashMap;
use std::sync::Arc;

use cyclone::web::escape::{self, LinkifyOptions};
use cyclone::web::{Template, TemplateError, Whitespace};
use serde_json::{Map, Value};

/// Cases where cyclone's result is deliberately not Tornado's, each with
/// why (the same reasons the docs of `Template` give).
const DIFFERENCES: &[(&str, &str)] = &[
    // The values a template computes are JSON values (serde_json), which
    // hold no infinity or NaN: where Python's float arithmetic gives one,
    // the render fails with TemplateError::Type instead of printing `inf`.
    ("inf", INF),
    ("nan", INF),
    ("float overflow", INF),
    ("neg inf", INF),
    ("expr 1e308 + 1e308 - 1e308", INF),
    // Integers are 64-bit, where Python's grow.
    ("expr 10 ** 20", INT64),
    ("random arith 56", INT64),
    ("random arith 105", INT64),
    ("random arith 111", INT64),
    // A tuple is a list in cyclone's values, and prints as one.
    ("builtins", TUPLE),
    ("expr divmod(7, -2)", TUPLE),
    ("expr divmod(7.5, 2)", TUPLE),
    ("expr ()", TUPLE),
    ("expr (1,)", TUPLE),
    ("expr (1, 2)", TUPLE),
    // A dict's keys are strings (JSON objects).
    ("expr {1: 2}", "dict keys are strings"),
    // Python that cyclone's expressions leave out: refused when parsed,
    // with a message that says what is supported.
    ("expr 'a\\tb'.expandtabs()", REFUSED),
    ("expr pow(2, 3, 5)", REFUSED),
    ("expr r'\\n'", REFUSED),
    ("expr f'{1}'", REFUSED),
    ("expr b'x'", REFUSED),
    ("error: walrus", REFUSED),
    ("error: semicolon", REFUSED),
    ("error: import", REFUSED),
    ("error: from import", REFUSED),
    (
        "error: lambda alone",
        "a lambda only as a function argument (sorted's key=, map, filter)",
    ),
    (
        "autoescape url_escape",
        "only {% autoescape None %} and xhtml_escape",
    ),
    // A block's body may be shown anywhere (a child's override), so a
    // break directly in it is refused even inside a loop of its file.
    (
        "block in for with break",
        "break directly in a block is refused",
    ),
    // cyclone takes any whitespace after a tag's word; Tornado only a
    // space (`{% if\tx %}` is its ParseError "unknown operator").
    ("tab after operator", LENIENT),
    ("newline after operator", LENIENT),
    // An expression may go on over lines (Python only inside brackets).
    ("multiline expr", LENIENT),
    ("multiline tag", LENIENT),
    ("expr with comment", REFUSED),
    (
        "except as",
        "errors of a render are not typed: bare except only",
    ),
    (
        "except typed",
        "errors of a render are not typed: bare except only",
    ),
    ("sorted dict items", TUPLE),
];

const INT64: &str = "integers are 64-bit, where Python's grow";
const INF: &str = "no infinite or NaN floats in a template's values";
const TUPLE: &str = "tuples are lists: [-4, -1], not (-4, -1)";
const REFUSED: &str = "Python cyclone's templates do not run, refused when parsed";
const LENIENT: &str = "cyclone reads whitespace Tornado refuses";

#[derive(Debug)]
#[allow(dead_code)] // the error text is for the failure message
enum Outcome {
    Ok(String),
    Err(String),
}

fn tornado(case: &Value) -> Outcome {
    let t = &case["tornado"];
    match (t.get("ok"), t.get("err")) {
        (Some(Value::String(s)), _) => Outcome::Ok(s.clone()),
        (_, Some(Value::String(e))) => Outcome::Err(e.clone()),
        _ => panic!("bad tornado result in {case}"),
    }
}

/// Tornado's `DictLoader`: names as written, whitespace by file name.
fn load(
    files: &Map<String, Value>,
    name: &str,
    depth: usize,
) -> Result<Arc<Template>, TemplateError> {
    if depth > Template::MAX_INCLUDE_DEPTH {
        return Err(TemplateError::Load(format!("too deep at {name}")));
    }
    let src = files
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| TemplateError::Load(format!("no template {name:?}")))?;
    Template::parse_with(src, Whitespace::for_name(name), |n| {
        load(files, n, depth + 1)
    })
    .map(Arc::new)
}

fn cyclone_template(case: &Value) -> Outcome {
    let files = case["files"].as_object().expect("files");
    let main = case["main"].as_str().expect("main");
    match load(files, main, 0).and_then(|t| t.render_value(&case["values"])) {
        Ok(s) => Outcome::Ok(s),
        Err(e) => Outcome::Err(e.to_string()),
    }
}

fn cyclone_escape(case: &Value) -> Outcome {
    let args = case["args"].as_array().expect("args");
    let kw = case["kwargs"].as_object().expect("kwargs");
    let text = || args[0].as_str().expect("a string argument");
    let flag = |k: &str, default: bool| kw.get(k).and_then(Value::as_bool).unwrap_or(default);
    let out = match case["func"].as_str().expect("func") {
        "xhtml_escape" => escape::xhtml_escape(text()),
        "url_escape" => escape::url_escape(text(), flag("plus", true)).into_owned(),
        "url_unescape" => escape::url_unescape(text(), flag("plus", true)),
        "squeeze" => escape::squeeze(text()),
        "json_encode" => match escape::json_encode(&args[0]) {
            Ok(s) => s,
            Err(e) => return Outcome::Err(e.to_string()),
        },
        "linkify" => {
            let mut o = LinkifyOptions {
                shorten: flag("shorten", false),
                require_protocol: flag("require_protocol", false),
                ..LinkifyOptions::default()
            };
            if let Some(p) = kw.get("extra_params").and_then(Value::as_str) {
                o.extra_params = p.to_string();
            }
            if let Some(list) = kw.get("permitted_protocols").and_then(Value::as_array) {
                o.permitted_protocols = list
                    .iter()
                    .map(|p| p.as_str().expect("a protocol").to_string())
                    .collect();
            }
            escape::linkify(text(), &o)
        }
        f => panic!("no escape function {f}"),
    };
    Outcome::Ok(out)
}

#[test]
fn cyclone_renders_what_tornado_renders() {
    let data: Value =
        serde_json::from_str(include_str!("template_diff/cases.json")).expect("cases.json");
    let cases = data["cases"].as_array().expect("cases");
    let differences: HashMap<&str, &str> = DIFFERENCES.iter().copied().collect();
    let (mut matched, mut deliberate) = (0, 0);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let want = tornado(case);
        let got = match case["kind"].as_str() {
            Some("template") => cyclone_template(case),
            Some("escape") => cyclone_escape(case),
            k => panic!("unknown kind {k:?}"),
        };
        let same = match (&want, &got) {
            (Outcome::Ok(a), Outcome::Ok(b)) => a == b,
            (Outcome::Err(_), Outcome::Err(_)) => true,
            _ => false,
        };
        match (same, differences.get(name)) {
            (true, None) => matched += 1,
            (false, Some(_)) => deliberate += 1,
            (true, Some(why)) => failures.push(format!(
                "{name:?} is listed as a difference ({why}) but matches: {got:?}"
            )),
            (false, None) => failures.push(format!(
                "{name:?}: {:?}\n  tornado: {want:?}\n  cyclone: {got:?}",
                case.get("files").unwrap_or(&case["args"])
            )),
        }
    }
    eprintln!(
        "{} cases from Tornado {}: {matched} match, {deliberate} deliberate differences, {} failures",
        cases.len(),
        data["tornado"],
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
