//! The template language: `Template::parse_with_loader` and
//! `render_value_within` (a step budget of 200,000).
//!
//! Input: split on 0xFF into up to three sources, lossily decoded as
//! UTF-8: the template rendered, and `a.html` and `b.html`, which it can
//! `{% include %}` or `{% extends %}` (`a.html` can load `b.html`;
//! `b.html` loads nothing, so there is no cycle to detect here).
//!
//! Invariants: no panic in parsing, rendering or formatting an error;
//! parsing twice gives the same result; an error's `innermost()` is never
//! a location wrapper, and every located error has a line at least 1 and
//! at most the source's line count; output stays within
//! `Template::MAX_OUTPUT`; a template without tags renders to its text.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

use cyclone::web::{Template, TemplateError};

fn loader<'a>(
    sources: &'a [String],
    from: usize,
) -> impl FnMut(&str) -> Result<Arc<Template>, TemplateError> + 'a {
    move |name| {
        let i = match name {
            "a.html" => 1,
            "b.html" => 2,
            _ => return Err(TemplateError::Load(format!("no {name}"))),
        };
        if i <= from || i >= sources.len() {
            return Err(TemplateError::Load(format!("{name} not loadable here")));
        }
        Template::parse_with_loader(&sources[i], loader(sources, i))
            .map(Arc::new)
            .map_err(|e| TemplateError::In {
                name: name.to_string(),
                error: Box::new(e),
            })
    }
}

/// Checks the location wrappers of an error of a template whose source
/// has `lines` lines (an `In` wrapper leads to another template: its
/// lines are not checked against this one).
fn check_error(e: &TemplateError, lines: usize) {
    let _ = e.to_string();
    assert!(!matches!(
        e.innermost(),
        TemplateError::At { .. } | TemplateError::In { .. }
    ));
    if let TemplateError::At { line, error } = e {
        assert!(
            *line >= 1 && *line as usize <= lines,
            "line {line} of {lines}"
        );
        assert!(!matches!(**error, TemplateError::At { .. }), "{e:?}");
    }
}

/// Render steps for one input.
const STEPS: u64 = 200_000;

fuzz_target!(|data: &[u8]| {
    let sources: Vec<String> = data
        .splitn(3, |b| *b == 0xFF)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let src = &sources[0];
    let lines = src.split('\n').count();
    let parsed = Template::parse_with_loader(src, loader(&sources, 0));
    let again = Template::parse_with_loader(src, loader(&sources, 0));
    assert_eq!(parsed.is_ok(), again.is_ok());
    let t = match (parsed, again) {
        (Ok(t), _) => t,
        (Err(e), Err(e2)) => {
            assert_eq!(e, e2);
            check_error(&e, lines);
            return;
        }
        _ => unreachable!(),
    };
    let value = serde_json::json!({
        "x": "<s>&\"'",
        "n": 3,
        "f": 1.5,
        "t": true,
        "z": null,
        "s": "",
        "e": [],
        "list": [1, "two", { "k": "v" }, [1, 2], null],
        "obj": { "a": 1, "b": [true, null], "c": { "d": "deep" } },
        "pairs": [["k1", "v1"], ["k2", 2]],
    });
    // A smaller step budget than a server's: `{% while t %}` and
    // `range(10**9)` stop in milliseconds (the budget is what is checked).
    match t.render_value_within(&value, STEPS, Template::MAX_OUTPUT) {
        Ok(out) => {
            assert!(out.len() <= Template::MAX_OUTPUT);
            if !src.contains(['{', '}']) {
                assert_eq!(&out, src);
            }
        }
        Err(e) => check_error(&e, lines),
    }
});
