//! Renders a Tornado template with JSON values from the command line:
//! what `tornado.template.Template(text).generate(**values)` prints, through
//! cyclone's template engine (`cyclone::web::Template`). A quick way to
//! check a template before an application serves it, and what
//! `tests/peers/interop_tornado_templates.py` compares with Tornado's own
//! rendering.
//!
//! ```text
//! cargo run --example render -- page.html values.json
//! echo '{"name": "ann"}' > v.json && printf 'Hi {{ name }}!' > t.html && \
//!   cargo run -q --example render -- t.html v.json      # Hi ann!
//! ```

mod common;

use std::io::Write;
use std::process::ExitCode;

use cyclone::web::Template;

const USAGE: &str = "render: a Tornado template rendered with JSON values

Usage: render TEMPLATE [VALUES.json]

  TEMPLATE     the template file (UTF-8); {% include %} and {% extends %}
               need an application's template_path and are refused here
  VALUES.json  a JSON object whose keys are the template's names
               (default: {})

Prints the rendered text to standard output, exactly (no newline added).
A template or value error is printed to standard error, with its line,
and the exit status is 1.";

fn main() -> ExitCode {
    let args = common::Args::parse(USAGE, &[]);
    let (template, values) = match args.positional.as_slice() {
        [t] => (t, None),
        [t, v] => (t, Some(v)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|e| eprintln!("render: cannot read {path}: {e}"))
    };
    let Ok(src) = read(template) else {
        return ExitCode::FAILURE;
    };
    let values = match values.map(|v| read(v)) {
        None => serde_json::json!({}),
        Some(Err(())) => return ExitCode::FAILURE,
        Some(Ok(text)) => match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("render: values are not JSON: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let out = Template::parse(&src).and_then(|t| t.render_value(&values));
    match out {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("render: {template}: {e}");
            ExitCode::FAILURE
        }
    }
}
