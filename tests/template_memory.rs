//! The output bound of a render holds while a function builds its text,
//! not only once the text is built: `json_encode` (up to 12 bytes per
//! input byte) and `linkify` (each link with its `extra_params`) refuse as
//! soon as they are over the bound, holding no more than it.
//!
//! Measured as the growth of the process's peak resident memory
//! (`VmHWM` in `/proc/self/status`), so this file holds one test: no
//! other test of the binary runs beside it. Skipped where `/proc` is not.

use cyclone::web::{Template, TemplateError};
use serde_json::json;

/// The peak resident memory so far, in bytes.
fn peak() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How much the peak grows while `f` runs.
fn growth<T>(f: impl FnOnce() -> T) -> Option<(T, usize)> {
    let before = peak()?;
    let out = f();
    Some((out, peak()?.saturating_sub(before)))
}

#[test]
fn json_encode_and_linkify_hold_no_more_than_the_output_bound() {
    const MAX: usize = 2 << 20;
    // json_encode of control characters: 6 bytes each, 12 MiB in all.
    let controls = json!({ "s": "\u{1}".repeat(MAX - 1) });
    // linkify of short URLs, each link with 200 bytes of extra_params:
    // about 40 times its text, 80 MiB in all.
    let links = json!({ "s": "www.a ".repeat(MAX / 6 - 1) });
    let extra = "x".repeat(200);
    let json_t = Template::parse("{% raw json_encode(s) %}").unwrap();
    let link_t =
        Template::parse(&format!("{{% raw linkify(s, extra_params='{extra}') %}}")).unwrap();
    let Some((r, grew)) = growth(|| json_t.render_value_within(&controls, 1000, MAX)) else {
        return;
    };
    assert!(
        matches!(
            r.as_ref().map_err(TemplateError::innermost),
            Err(TemplateError::TooLarge(_))
        ),
        "{r:?}"
    );
    assert!(grew < 4 * MAX, "json_encode grew the peak by {grew} bytes");
    let Some((r, grew)) = growth(|| link_t.render_value_within(&links, 1000, MAX)) else {
        return;
    };
    assert!(
        matches!(
            r.as_ref().map_err(TemplateError::innermost),
            Err(TemplateError::TooLarge(_))
        ),
        "{r:?}"
    );
    assert!(grew < 4 * MAX, "linkify grew the peak by {grew} bytes");
}
