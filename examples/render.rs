//! Renders a Tornado template with JSON values from the command line:
//! what `tornado.template.Loader(dir).load(name).generate(**values)` prints
//! (whitespace by file name as Tornado's loader does, or `--whitespace`), through
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
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use cyclone::web::{Template, TemplateError, Whitespace};

const USAGE: &str = "render: a Tornado template rendered with JSON values

Usage: render [--whitespace MODE] [--translations DIR [--gettext-domain D] [--locale CODES]]
              TEMPLATE [VALUES.json]

  TEMPLATE     the template file (UTF-8); the names of its {% include %}
               and {% extends %} are files in the same directory
  VALUES.json  a JSON object whose keys are the template's names
               (default: {})
  --whitespace MODE
               all, single or oneline for every file (Tornado's
               template_whitespace); default by file name, as Tornado's
               Loader: single for .html and .js, all for the others
  --translations DIR
               Tornado's LOCALE.csv translation files, for _(..),
               pgettext(..) and locale.* in the template
  --gettext-domain DOMAIN
               the translations are gettext catalogs,
               DIR/LANG/LC_MESSAGES/DOMAIN.mo (Tornado's
               load_gettext_translations), not CSV files
  --locale CODES
               the locale to render in: the closest supported one to the
               comma-separated codes (es_LA,es), as tornado.locale.get
               picks it; default en_US

Prints the rendered text to standard output, exactly (no newline added).
A template or value error is printed to standard error, with its line,
and the exit status is 1.";

fn main() -> ExitCode {
    let args = common::Args::parse(
        USAGE,
        &[
            ("whitespace", true),
            ("translations", true),
            ("gettext-domain", true),
            ("locale", true),
        ],
    );
    if args.has("translations") {
        let dir: String = args.get("translations", String::new());
        let loaded = if args.has("gettext-domain") {
            let domain: String = args.get("gettext-domain", String::new());
            cyclone::locale::load_gettext_translations(&dir, &domain)
        } else {
            cyclone::locale::load_translations(&dir)
        };
        if let Err(e) = loaded {
            eprintln!("render: cannot read translations in {dir}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if args.has("locale") {
        // A render outside a request is in the default locale.
        let codes: String = args.get("locale", String::new());
        let codes: Vec<&str> = codes.split(',').collect();
        cyclone::locale::set_default_locale(cyclone::locale::get(&codes).code());
    }
    let whitespace: Option<Whitespace> = args
        .has("whitespace")
        .then(|| args.get("whitespace", Whitespace::All));
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
    let path = Path::new(template);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(template);
    let out = load(dir, name, whitespace, 0).and_then(|t| t.render_value(&values));
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

/// `name` in `dir`, parsed, with its includes and parents loaded the same
/// way (Tornado's `Loader.load`; names are files of `dir`, a leading `/`
/// naming `dir` too, as `{% module Template(..) %}` names it; `whitespace`
/// for all, else each file's mode by its name), at most
/// `Template::MAX_INCLUDE_DEPTH` deep so that a cycle ends.
fn load(
    dir: &Path,
    name: &str,
    whitespace: Option<Whitespace>,
    depth: usize,
) -> Result<Arc<Template>, TemplateError> {
    if depth > Template::MAX_INCLUDE_DEPTH {
        return Err(TemplateError::Load(format!(
            "{name}: includes nested more than {} deep",
            Template::MAX_INCLUDE_DEPTH
        )));
    }
    let name = name.trim_start_matches('/');
    let src = std::fs::read_to_string(dir.join(name))
        .map_err(|e| TemplateError::Load(format!("cannot read {name}: {e}")))?;
    let mode = whitespace.unwrap_or_else(|| Whitespace::for_name(name));
    Template::parse_with(&src, mode, |inner| load(dir, inner, whitespace, depth + 1)).map(Arc::new)
}
