//! Adversarial tests of the template language (`cyclone::web::Template`)
//! and of loading templates from `template_path`: what a careless or
//! hostile template does must end in a `TemplateError`, never a panic, a
//! stack overflow, a hang or an exhausted memory.

mod util;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use cyclone::web::{Application, RequestContext, RequestHandler, Template, TemplateError};
use serde_json::{json, Value};
use util::{request, Server, TempDir};

/// Runs `f` on its own thread (with a small stack, so that unbounded
/// recursion shows as a crash), failing the test if it takes longer than
/// `secs` (a hang) or panics.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("finished in time, without a panic")
}

/// A `DictLoader`: `name` parsed from `files`, includes and parents from
/// there too (names taken as written), with a depth bound for cycles.
fn load(files: &[(&str, String)], name: &str) -> Result<Arc<Template>, TemplateError> {
    fn go(
        files: &[(&str, String)],
        name: &str,
        depth: usize,
    ) -> Result<Arc<Template>, TemplateError> {
        if depth > Template::MAX_INCLUDE_DEPTH {
            return Err(TemplateError::Load(format!("too deep at {name}")));
        }
        let src = &files
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| TemplateError::Load(format!("no {name}")))?
            .1;
        Template::parse_with_loader(src, |inc| go(files, inc, depth + 1)).map(Arc::new)
    }
    go(files, name, 0)
}

fn render(src: &str, value: Value) -> Result<String, TemplateError> {
    Template::parse(src)?.render_value(&value)
}

// ---------------------------------------------------------------------------
// Work and output bounds.

#[test]
fn nested_loops_over_small_arrays_stop_at_the_step_budget() {
    // 2^40 iterations: without a bound, this never ends.
    let src = "{% for a in xs %}".repeat(40) + "." + &"{% end %}".repeat(40);
    let err = within(120, move || {
        render(&src, json!({"xs": [1, 2]})).unwrap_err().to_string()
    });
    assert!(err.contains("steps"), "{err}");
}

#[test]
fn blocks_shown_twice_at_each_level_stop_at_the_step_budget() {
    // A source linear in its depth: block bN shows block bN+1 twice (the
    // first showing empty, the second the last definition), so rendering
    // doubles at each of the 60 levels.
    let mut src = String::from("x");
    for i in (0..60).rev() {
        src = format!(
            "{{% block b{i} %}}{{% block b{} %}}{{% end %}}{src}{{% end %}}",
            i + 1
        );
    }
    // Each level is: {% block bi %}{% block bi+1 %}{% end %}<level i+1>{% end %}
    let err = within(120, move || {
        let t = Template::parse(&src).unwrap();
        t.render_value(&json!({})).unwrap_err().to_string()
    });
    assert!(err.contains("steps"), "{err}");
}

#[test]
fn output_is_bounded() {
    // 512 × 1 MiB: over Template::MAX_OUTPUT after a few hundred steps.
    let src = "{% for a in xs %}".repeat(9) + "{% raw big %}" + &"{% end %}".repeat(9);
    let err = within(120, move || {
        let big = "x".repeat(1 << 20);
        render(&src, json!({"xs": [1, 2], "big": big}))
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains("output over"), "{err}");
    // A large page within the bounds renders: 100,000 rows.
    let rows: Vec<Value> = (0..100_000)
        .map(|i| json!({"id": i, "name": "<n>"}))
        .collect();
    let out = within(120, move || {
        render(
            "{% for r in rows %}<tr><td>{{ r.id }}</td><td>{{ r.name }}</td></tr>\n{% end %}",
            json!({ "rows": rows }),
        )
        .unwrap()
    });
    assert_eq!(out.lines().count(), 100_000);
    assert!(out.ends_with("<tr><td>99999</td><td>&lt;n&gt;</td></tr>\n"));
}

// ---------------------------------------------------------------------------
// Tornado syntax a Tornado user will write.

#[test]
fn autoescape_none_turns_escaping_off_for_its_own_file() {
    let v = json!({"x": "<b>&", "xs": ["<i>"]});
    // Anywhere in the file, for the whole file (Tornado sets it on the
    // template, before any expression is compiled).
    assert_eq!(
        render(
            "{{ x }}{% autoescape None %}{% for i in xs %}{{ i }}{% end %}{% if x %}{{ x }}{% end %}",
            v.clone()
        )
        .unwrap(),
        "<b>&<i><b>&"
    );
    assert_eq!(
        render(
            "{% autoescape None %}{% autoescape xhtml_escape %}{{ x }}",
            v.clone()
        )
        .unwrap(),
        "&lt;b&gt;&amp;"
    );
    // An included file keeps its own setting, both ways.
    let files = [
        (
            "page.html",
            "{% autoescape None %}{{ x }}|{% include \"esc.html\" %}".to_string(),
        ),
        ("esc.html", "{{ x }}".to_string()),
        (
            "esc-page.html",
            "{{ x }}|{% include \"raw.html\" %}".to_string(),
        ),
        ("raw.html", "{% autoescape None %}{{ x }}".to_string()),
        // Blocks print with the setting of the file that defines them.
        (
            "base.html",
            "{{ x }}[{% block b %}{{ x }}{% end %}][{% block c %}{{ x }}{% end %}]".to_string(),
        ),
        (
            "child.html",
            "{% extends \"base.html\" %}{% autoescape None %}{% block b %}{{ x }}{% end %}"
                .to_string(),
        ),
    ];
    let r = |name| load(&files, name).unwrap().render_value(&v).unwrap();
    assert_eq!(r("page.html"), "<b>&|&lt;b&gt;&amp;");
    assert_eq!(r("esc-page.html"), "&lt;b&gt;&amp;|<b>&");
    assert_eq!(r("child.html"), "&lt;b&gt;&amp;[<b>&][&lt;b&gt;&amp;]");
    // Any other function is refused, saying what is supported.
    let err = Template::parse("{% autoescape linkify %}").unwrap_err();
    assert!(err.to_string().contains("autoescape None"), "{err}");
}

#[test]
fn triple_braces_open_the_tag_at_the_innermost_two() {
    // Tornado: "When there are more than 2 curlies in a row, use the
    // innermost ones" (LaTeX, JavaScript object literals).
    let v = json!({"x": "a<"});
    assert_eq!(
        render("var o = {{{ x }}};", v.clone()).unwrap(),
        "var o = {a&lt;};"
    );
    assert_eq!(render("{{{{ x }}}}", v.clone()).unwrap(), "{{a&lt;}}");
    assert_eq!(render("{{{! x }}}", v.clone()).unwrap(), "{{{ x }}}");
    assert_eq!(render("{ {{ x }} }", v).unwrap(), "{ a&lt; }");
}

#[test]
fn unsupported_tornado_tags_say_why() {
    for (src, says) in [
        ("{% module Entry(x) %}", "Entry is no UI module"),
        (
            "{% try %}x{% except ValueError %}y{% end %}",
            "bare `except`",
        ),
        (
            "{% while x = 1 %}{% end %}",
            "a condition is a Python expression",
        ),
        (
            "{% apply squeeze %}x{% end %}",
            "the functions Tornado can apply",
        ),
        ("{% import os %}", "not supported"),
        ("{% from os import path %}", "not supported"),
        ("{% whitespace compact %}", "all, single and oneline"),
        ("{% if x %}a{% endif %}", "{% end %}"),
        ("{% for x in xs %}a{% endfor %}", "{% end %}"),
        (
            "{% if maximum(x) == 1 %}{% end %}",
            "maximum() is no function of this template",
        ),
        // Python's builtins are there, with Python's errors.
        ("{% if max(x) == 1 %}{% end %}", "a number is not iterable"),
        ("{{ sorted(x, key=x) }}", "key= must be a function"),
        ("{{ lambda y: y }}", "a lambda is a value only where"),
        (
            "{{ shout(x }}",
            "the application's (ApplicationBuilder::ui_method)",
        ),
        ("{% if x ** %}{% end %}", "a Python expression"),
        ("{% for i in range(1, 2, 3, 4) %}{% end %}", "range(..)"),
        ("{% %}", "empty"),
        ("{{ x.casefold() }}", "a Python expression"),
        ("{% include %}", "name is missing"),
        ("{% extends '' %}", "name is missing"),
    ] {
        // A call of a name the template language lacks parses (it may be
        // an application's ui_method) and fails where it is rendered.
        let err = match Template::parse(src) {
            Ok(t) => t.render_value(&json!({"x": 1})).unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(says), "{src}: {err}");
    }
}

#[test]
fn tornado_namespace_functions_in_a_page() {
    // What a Tornado page writes: static_url in the layout, json_encode
    // inside <script> with raw, url_escape in links, squeeze and escape.
    let files = [
        (
            "base.html",
            "<link rel=\"stylesheet\" href=\"{{ static_url(\"css/app.css\") }}\">\n\
             {% block body %}{% end %}\n\
             <script src='{{ static_url('js/app.js') }}'></script>"
                .to_string(),
        ),
        (
            "page.html",
            "{% extends \"base.html\" %}{% block body %}\
             {% for t in tags %}{% include \"tag.html\" %}{% end %}\n\
             <script>var state = {% raw json_encode(state) %};</script>\n\
             <p title=\"{{ json_encode(state.user) }}\">{{ squeeze(bio) }}</p>\
             {% end %}"
                .to_string(),
        ),
        (
            "tag.html",
            "<a href=\"/t?q={{ url_escape(t) }}\">{% raw escape(t) %}</a>".to_string(),
        ),
    ];
    let page = load(&files, "page.html").unwrap();
    let v = json!({
        "tags": ["rock & roll", "<b>"],
        "state": {"user": "ann</script>", "n": 2},
        "bio": "\n   likes\t\ttea  \n",
    });
    let html = page
        .render_value_with_static_url(&v, |p| format!("/static/{p}?v=abc"))
        .unwrap();
    assert_eq!(
        html,
        "<link rel=\"stylesheet\" href=\"/static/css/app.css?v=abc\">\n\
         <a href=\"/t?q=rock+%26+roll\">rock &amp; roll</a><a href=\"/t?q=%3Cb%3E\">&lt;b&gt;</a>\n\
         <script>var state = {\"user\": \"ann<\\/script>\", \"n\": 2};</script>\n\
         <p title=\"&quot;ann&lt;\\/script&gt;&quot;\">likes tea</p>\n\
         <script src='/static/js/app.js?v=abc'></script>"
    );
    // Without a request, static_url is an error in the parent, at its line.
    let err = page.render_value(&v).unwrap_err();
    assert_eq!(
        err,
        TemplateError::In {
            name: "base.html".into(),
            error: Box::new(TemplateError::At {
                line: 1,
                error: Box::new(TemplateError::NeedsRequest("static_url".into())),
            }),
        }
    );
    assert!(
        err.to_string().starts_with(
            "in \"base.html\": static_url() needs a request: render with RequestContext::render"
        ),
        "{err}"
    );
}

#[test]
fn function_calls_cannot_escape_the_bounds() {
    // Deeply nested or absurd calls are parse errors, not recursion.
    let nested =
        "{{ ".to_string() + &"json_encode(".repeat(100_000) + "x" + &")".repeat(100_000) + " }}";
    let err = within(60, move || Template::parse(&nested).unwrap_err());
    assert!(
        matches!(err.innermost(), TemplateError::BadTag(_)),
        "{err:?}"
    );
    let err = within(60, || {
        Template::parse("{{ escape(\"))\") }}\n{{ static_url('a', 'b') }}").unwrap_err()
    });
    assert!(err.to_string().ends_with("at line 2"), "{err}");
    // A function's output several times its input counts against the
    // output bound: `&` escaped twice is 9 bytes, 4 MiB of it 36 MiB.
    let src = "{% for a in xs %}".repeat(3) + "{{ escape(big) }}" + &"{% end %}".repeat(3);
    let err = within(120, move || {
        let big = "&".repeat(4 << 20);
        render(&src, json!({"xs": [1, 2], "big": big}))
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains("output over"), "{err}");
}

#[test]
fn break_continue_and_for_else_as_in_tornado() {
    // Tornado's `{% for %}` body is Python's: `break`, `continue` (also in
    // an `if`), and `else` when the loop did not break.
    let v = json!({
        "posts": [
            {"title": "a", "draft": false, "last": false},
            {"title": "b<", "draft": true, "last": false},
            {"title": "c", "draft": false, "last": true},
            {"title": "d", "draft": false, "last": false},
        ],
        "none": [],
    });
    let src = "<ul>\n{% for p in posts %}{% if p.draft %}{% continue %}{% end %}\
               <li>{{ p.title }}</li>\n{% if p.last %}{% break %}{% end %}\
               {% else %}<li>all shown</li>\n{% end %}</ul>";
    assert_eq!(
        render(src, v.clone()).unwrap(),
        "<ul>\n<li>a</li>\n<li>c</li>\n</ul>"
    );
    assert_eq!(
        render(&src.replace("posts", "none"), v.clone()).unwrap(),
        "<ul>\n<li>all shown</li>\n</ul>"
    );
    let err = Template::parse("<p>\n{% if x %}{% break %}{% end %}</p>").unwrap_err();
    assert_eq!(
        err.to_string(),
        "{% break %} outside a {% for %} loop at line 2"
    );
}

#[test]
fn errors_from_a_dict_loader_keep_the_line_of_the_template_they_are_in() {
    // This loader does not name templates: an included template's error,
    // already located, is passed on as it is (not moved to the include).
    let files = [
        ("page.html", "a\n{% include \"inc.html\" %}".to_string()),
        ("inc.html", "b\n\n{% bogus %}".to_string()),
        (
            "missing.html",
            "a\n\n\n{% include \"nope.html\" %}".to_string(),
        ),
    ];
    let err = load(&files, "page.html").unwrap_err();
    assert_eq!(
        err,
        TemplateError::At {
            line: 3,
            error: Box::new(TemplateError::BadTag("bogus".into()))
        }
    );
    assert_eq!(
        load(&files, "missing.html").unwrap_err().to_string(),
        "no nope.html at line 4"
    );
}

// ---------------------------------------------------------------------------
// Malformed, huge and odd input: errors, not crashes.

#[test]
fn malformed_templates_are_errors() {
    for src in [
        "{{",
        "{%",
        "{#",
        "a {{ x",
        "a {% if x",
        "{% if x %}",
        "{% end %}",
        "{% if x %}{% end %}{% end %}",
        "{% else %}",
        "{% block %}",
        "{{ }}",
        "{% raw %}",
        "{% extends %}",
        "{% include %}",
        "{% set %}",
        "{% for %}{% end %}",
        "{% unknown %}",
    ] {
        assert!(Template::parse(src).is_err(), "{src}");
    }
    // Unclosed tags give the line where they start.
    assert_eq!(
        Template::parse("héllo {{ x").unwrap_err().to_string(),
        "{{ without its closing }} at line 1"
    );
    assert_eq!(
        Template::parse("<ul>\n  {% for x in xs %}\n    <li>{{ x }</li>\n  {% end %}\n</ul>")
            .unwrap_err()
            .to_string(),
        "{{ without its closing }} at line 3"
    );
}

#[test]
fn deep_and_long_inputs_do_not_overflow_the_stack() {
    within(60, || {
        // Thousands of nested ifs, closed or not: a depth error at parse.
        for src in [
            "{% if a %}".repeat(5000) + &"{% end %}".repeat(5000),
            "{% if a %}".repeat(100_000),
            "{% block b %}".repeat(5000),
            "{% for x in a %}".repeat(5000),
        ] {
            let err = Template::parse(&src).unwrap_err();
            assert!(err.to_string().contains("too deep"), "{err}");
        }
        // Long flat inputs parse and render in linear time.
        let many = "{{ x }}{% if x %}y{% end %}{ ".repeat(200_000);
        let t = Template::parse(&many).unwrap();
        assert_eq!(
            t.render_value(&json!({"x": "&"})).unwrap().len(),
            200_000 * ("&amp;y{ ".len())
        );
        let braces = "{".repeat(1 << 20);
        assert!(Template::parse(&braces).is_err());
        let text = "{x}{ %}{ #}".repeat(100_000);
        assert_eq!(Template::parse(&text).unwrap().render(&[]).unwrap(), text);
    });
}

#[test]
fn odd_whitespace_and_unicode_inside_tags() {
    let v = json!({"名前": "ü<", "xs": [1, 2]});
    assert_eq!(
        render(
            "{{\u{a0}名前\u{3000}}}|{%\tfor\u{2003}x\nin  xs\r\n%}{{x}}{%\u{a0}end\t%}",
            v
        )
        .unwrap(),
        "ü&lt;|12"
    );
}

// ---------------------------------------------------------------------------
// Loading from template_path.

/// `/r/<name>`: `render_string(name)`, answered as `ok:<text>` or
/// `err:<error>` with status 200 either way.
struct RenderString;

impl RequestHandler for RenderString {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let out = cx.render_string(args[0], &json!({"x": "<x>", "xs": [1, 2]}));
        match out {
            Ok(s) => cx.write(format!("ok:{s}")),
            Err(e) => cx.write(format!("err:{e}")),
        }
    }
}

fn get(server: &Server, path: &str) -> String {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (status, _, body) = request(server, raw.as_bytes());
    assert_eq!(status, 200, "{path}");
    String::from_utf8(body).unwrap()
}

fn server(dir: &TempDir, debug: bool) -> Server {
    let path = dir.0.join("t");
    Server::start(move || {
        Application::builder()
            .template_path(path)
            .debug(debug)
            .route("/r/(.*)", || RenderString)
            .build()
    })
}

#[test]
fn render_string_gives_templates_static_url() {
    // No static_path here: the URL has no `?v=` (and the miss is logged),
    // as RequestContext::static_url answers.
    let dir = TempDir::new("static-url-tpl");
    dir.file(
        "t/page.html",
        "<img src=\"{{ static_url(\"img/a b.png\") }}\">{{ url_escape(x) }}",
    );
    let s = server(&dir, false);
    assert_eq!(
        get(&s, "/r/page.html"),
        "ok:<img src=\"/static/img/a%20b.png\">%3Cx%3E"
    );
}

#[test]
fn symlinks_out_of_template_path_are_refused() {
    let dir = TempDir::new("symlinks");
    let secret = dir.file("secret.txt", "SECRET {{ x }}");
    dir.file("t/page.html", "[{% include \"evil.html\" %}]");
    dir.file("t/real.html", "real {{ x }}");
    dir.file("t/inc-real.html", "[{% include \"link-in.html\" %}]");
    std::os::unix::fs::symlink(&secret, dir.0.join("t/evil.html")).unwrap();
    std::os::unix::fs::symlink(&dir.0, dir.0.join("t/up")).unwrap();
    // A symlink that stays inside template_path is fine.
    std::os::unix::fs::symlink(dir.0.join("t/real.html"), dir.0.join("t/link-in.html")).unwrap();
    for debug in [false, true] {
        let s = server(&dir, debug);
        for page in ["evil.html", "page.html", "up/secret.txt"] {
            let body = get(&s, &format!("/r/{page}"));
            assert!(
                body.starts_with("err:") && body.contains("leaves template_path"),
                "{page}: {body}"
            );
            assert!(!body.contains("SECRET"), "{page}: {body}");
        }
        assert_eq!(get(&s, "/r/link-in.html"), "ok:real &lt;x&gt;");
        assert_eq!(get(&s, "/r/inc-real.html"), "ok:[real &lt;x&gt;]");
    }
}

#[test]
fn files_that_cannot_be_templates_are_load_errors() {
    let dir = TempDir::new("load-errors");
    dir.file("t/latin1.html", b"caf\xe9 {{ x }}");
    dir.file("t/self.html", "{% extends \"self.html\" %}");
    dir.file("t/a.html", "{% include \"b.html\" %}");
    dir.file("t/b.html", "{% extends \"a.html\" %}");
    dir.file("t/escape.html", "{% include \"../../x.html\" %}");
    dir.file("t/dir/x.html", "{% include \"../../x.html\" %}");
    std::fs::create_dir_all(dir.0.join("t/adir")).unwrap();
    let s = server(&dir, false);
    for (page, says) in [
        ("latin1.html", "UTF-8"),
        ("self.html", "include cycle"),
        ("a.html", "include cycle"),
        ("escape.html", "leaves template_path"),
        ("dir/x.html", "leaves template_path"),
        ("adir", "err:"),
        ("missing.html", "missing.html"),
    ] {
        let body = get(&s, &format!("/r/{page}"));
        assert!(
            body.starts_with("err:") && body.contains(says),
            "{page}: {body}"
        );
    }
}

#[test]
fn errors_name_the_template_and_the_line() {
    let dir = TempDir::new("error-lines");
    dir.file("t/top.html", "a\n{{ x");
    dir.file(
        "t/page.html",
        "<h1>{{ x }}</h1>\n{% include \"parts/row.html\" %}",
    );
    dir.file(
        "t/parts/row.html",
        "<ul>\n{% for i in xs %}<li>{{ i.name }}</li>{% end %}</ul>",
    );
    dir.file("t/broken.html", "ok\n{% include \"parts/unclosed.html\" %}");
    dir.file("t/parts/unclosed.html", "\n\n{% for x in xs %}");
    dir.file(
        "t/base.html",
        "<html>{% block b %}{% end %}</html>\n{{ nope }}",
    );
    dir.file(
        "t/child.html",
        "{% extends \"base.html\" %}\n{% block b %}\n[{{ x }}{{ y }}]{% end %}",
    );
    dir.file(
        "t/uses-child.html",
        "<div>\n{% include \"child.html\" %}</div>",
    );
    let s = server(&dir, false);
    for (page, want) in [
        ("top.html", "err:{{ without its closing }} at line 2"),
        (
            "page.html",
            "err:in \"parts/row.html\": undefined variable \"i.name\" at line 2",
        ),
        (
            "broken.html",
            "err:in \"parts/unclosed.html\": {% for x in xs %} without its {% end %} at line 3",
        ),
        // The child's block, shown by the parent, is the child's line 3.
        ("child.html", "err:undefined variable \"y\" at line 3"),
        (
            "uses-child.html",
            "err:unsupported tag \"include \\\"child.html\\\"\": that template has {% extends %}: \
             a template with a parent cannot be included (Tornado raises NotImplementedError for it) \
             at line 2",
        ),
    ] {
        assert_eq!(get(&s, &format!("/r/{page}")), want, "{page}");
    }
    // The parent's own line 2, named.
    dir.file(
        "t/child.html",
        "{% extends \"base.html\" %}\n{% block b %}[{{ x }}]{% end %}",
    );
    let s = server(&dir, true);
    assert_eq!(
        get(&s, "/r/child.html"),
        "err:in \"base.html\": undefined variable \"nope\" at line 2"
    );
}

/// Python keeps the sign of a negative integer in `%x`, `%#x` and `%X`:
/// `'%x' % -255` is `-ff`, `'%#x' % -255` is `-0xff`, `'%X' % -171` is
/// `-AB`.
#[test]
fn percent_x_keeps_the_sign_of_a_negative_integer() {
    assert_eq!(
        render(
            "{{ '%x' % -255 }}|{{ '%#x' % -255 }}|{{ '%X' % -171 }}",
            json!({})
        )
        .unwrap(),
        "-ff|-0xff|-AB"
    );
}

/// Python's float `//` is the floor of `(x - x % y) / y` (CPython's
/// `float_divmod`), so it agrees with `%`: `1 // 0.1` is 9.0, `10 // 0.2`
/// is 49.0, `divmod(1, 0.1)` is `(9.0, 0.09999999999999995)`.
#[test]
fn float_floor_division_is_pythons() {
    assert_eq!(
        render(
            "{{ 1 // 0.1 }}|{{ 10 // 0.2 }}|{{ divmod(1, 0.1)[0] }}|{{ divmod(1, 0.1)[1] }}",
            json!({})
        )
        .unwrap(),
        "9.0|49.0|9.0|0.09999999999999995"
    );
}

/// Python's float `%` gives a zero result the divisor's sign: `-0.0 % 5`
/// is `0.0`, `0.0 % -5` is `-0.0`, `5 % -0.5` is `-0.0`.
#[test]
fn float_modulo_zero_takes_the_divisors_sign() {
    assert_eq!(
        render("{{ -0.0 % 5 }}|{{ 0.0 % -5 }}|{{ 5 % -0.5 }}", json!({})).unwrap(),
        "0.0|-0.0|-0.0"
    );
}

/// Python reads a float literal's signed exponent as part of it:
/// `2 * 1e+3` is 2000.0, `[1E+2, 2.5e+1]` is `[100.0, 25.0]`.
#[test]
fn float_literals_with_a_signed_exponent_inside_an_expression() {
    assert_eq!(
        render(
            "{{ 2 * 1e+3 }}|{{ [1E+2, 2.5e+1] }}|{{ 1e-3 }}|{{ 1 +2 }}",
            json!({})
        )
        .unwrap(),
        "2000.0|[100.0, 25.0]|0.001|3"
    );
}

/// Tornado's parser closes the block at `end` whatever follows it:
/// `{% end if %}` and `{% end for %}` are common in its templates.
#[test]
fn end_ignores_what_follows_it_as_tornado_does() {
    assert_eq!(
        render(
            "{% for i in xs %}{% if i %}{{ i }}{% end if %}{% end for %}",
            json!({"xs": [0, 1, 2]})
        )
        .unwrap(),
        "12"
    );
}

/// Tornado's `{% set %}` is any Python statement: `set n += x` is
/// `n = n + x`, and so are the other augmented assignments.
#[test]
fn set_takes_augmented_assignment_as_tornado_does() {
    assert_eq!(
        render(
            "{% set n = 0 %}{% for x in xs %}{% set n += x %}{% end %}{{ n }}",
            json!({"xs": [1, 2, 3]})
        )
        .unwrap(),
        "6"
    );
    assert_eq!(
        render(
            "{% set n = 7 %}{% set n -= 1 %}{% set n *= 2 + 1 %}{% set n //= 4 %}{% set n **= 2 %}\
             {% set n %= 7 %}{{ n }}|{% set f = 1 %}{% set f /= 4 %}{{ f }}|{% set s = 'a' %}{% set s *= 3 %}{{ s }}",
            json!({})
        )
        .unwrap(),
        "2|0.25|aaa"
    );
    assert!(render("{% set 1 += 2 %}", json!({})).is_err());
    assert!(render("{% set n += 1 %}{{ n }}", json!({})).is_err());
}

/// Strings an expression builds are bounded by the render's output bound,
/// a function's result too: three nested `url_escape`s of a 200 kB string
/// would be 1.4 MB, over a 1 MiB bound, so the render fails with
/// `TooLarge` (counted before the string is built), as do `str`, `repr`,
/// `json_encode` and `locale.list` results over the bound.
#[test]
fn function_results_inside_an_expression_are_bounded() {
    let t = Template::parse("{{ len(url_escape(url_escape(url_escape(x)))) }}").unwrap();
    let v = json!({"x": "é".repeat(100_000)}); // 200 kB
    let out = t.render_value_within(&v, 1_000_000, 1 << 20); // 1 MiB bound
    assert!(
        matches!(
            out.as_ref().map_err(TemplateError::innermost),
            Err(TemplateError::TooLarge(_))
        ),
        "{out:?}"
    );
    // Two levels, 1.0 MB, fit.
    let t = Template::parse("{{ len(url_escape(url_escape(x))) }}").unwrap();
    assert_eq!(
        t.render_value_within(&v, 1_000_000, 1 << 20).unwrap(),
        "1000000"
    );
    let v = json!({"x": "x".repeat(400_000)}); // 400 kB
    for src in [
        "{{ len(locale.list([x, x, x])) }}",
        "{{ len(str([x, x, x])) }}",
        "{{ len(repr([x, x, x])) }}",
        "{{ len(json_encode([x, x, x])) }}",
        "{{ len(xhtml_escape(x.replace('x', '<<'))) }}",
        "{{ len(format([x, x, x])) }}",
    ] {
        let out = Template::parse(src)
            .unwrap()
            .render_value_within(&v, 10_000_000, 1 << 20);
        assert!(
            matches!(
                out.as_ref().map_err(TemplateError::innermost),
                Err(TemplateError::TooLarge(_))
            ),
            "{src}: {out:?}"
        );
    }
}

/// A list's bound counts the bytes of the strings it copies (a string as
/// 1 + len/64 values, as `set` counts it), not just its items: 3000
/// copies of a 100 kB string, 300 MB, are `TooLarge`, whether built by
/// `*`, a display or a comprehension.
#[test]
fn list_repetition_counts_the_bytes_of_the_strings_it_copies() {
    for src in [
        "{% set x = 'x' * 100000 %}{{ len([x] * 3000) }}",
        "{% set x = 'x' * 100000 %}{{ len([x for i in range(3000)]) }}",
        "{% set x = 'x' * 100000 %}{% set y = [x] * 1000 %}{{ len([y, y, y]) }}",
    ] {
        let t = Template::parse(src).unwrap();
        let out = t.render_value_within(&json!({}), 10_000_000, 1 << 20);
        assert!(
            matches!(
                out.as_ref().map_err(TemplateError::innermost),
                Err(TemplateError::TooLarge(_))
            ),
            "{src}: {out:?}"
        );
    }
    // Small ones are fine.
    assert_eq!(
        render("{% set x = 'x' * 1000 %}{{ len([x] * 30) }}", json!({})).unwrap(),
        "30"
    );
}

/// Lists and dicts a template builds nest at most 128 deep (serde_json's
/// parser limit): deeper, copying or printing one would overflow the
/// stack, so the render fails with an error instead.
#[test]
fn deeply_nested_computed_lists_do_not_overflow_the_stack() {
    // A display, and the same through a builtin's dict.
    for nest in ["[x]", "dict(a=x)"] {
        let result = within(60, move || {
            render(
                &format!(
                    "{{% set x = [] %}}{{% for i in range(2900) %}}{{% set x = {nest} %}}{{% end %}}{{{{ len(str(x)) }}}}"
                ),
                json!({}),
            )
            .map_err(|e| e.innermost().to_string())
        });
        assert!(
            matches!(&result, Err(e) if e.contains("too deep")),
            "{nest}: {result:?}"
        );
    }
    assert_eq!(
        render(
            "{% set x = [] %}{% for i in range(100) %}{% set x = [x] %}{% end %}{{ len(str(x)) }}",
            json!({})
        )
        .unwrap(),
        "202"
    );
}

/// Includes chained as deep as allowed, each nesting blocks as deep as
/// allowed, parse and render (Tornado compiles them into one function)
/// without running the stack out: the walk for the template's local names
/// keeps its own stack.
#[test]
fn deep_nesting_in_every_include_of_the_longest_chain() {
    // Plain loops, loops over an object's items and a string's characters.
    let heads = [
        "{% for a in [1] %}",
        "{% for k, v in d.items() %}",
        "{% for c in 'a' %}",
    ];
    for head in heads {
        let result = within(30, move || {
            let n = Template::MAX_INCLUDE_DEPTH;
            let files: Vec<(String, String)> = (0..=n)
                .map(|i| {
                    let depth = Template::MAX_NESTING - 1;
                    let inner = if i < n {
                        format!("{{% include \"t{}\" %}}", i + 1)
                    } else {
                        "x".into()
                    };
                    (
                        format!("t{i}"),
                        format!("{}{inner}{}", head.repeat(depth), "{% end %}".repeat(depth)),
                    )
                })
                .collect();
            let files: Vec<(&str, String)> =
                files.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
            load(&files, "t0")
                .and_then(|t| t.render_value(&json!({"d": {"a": 1}})))
                .map_err(|e| e.to_string())
        });
        // 16 × 99 levels are past the render's depth bound: a clean error.
        assert!(
            matches!(&result, Err(e) if e.contains("too deep")),
            "{head}: {result:?}"
        );
    }
}

/// Tornado's `TemplateModule` calls `render_string` when it is rendered,
/// so a tree is drawn by a template that renders its children with
/// itself, the recursion ending with the data; a recursion that never
/// ends stops at the render depth bound with an error.
#[test]
fn a_template_module_can_render_itself_recursively_as_in_tornado() {
    let dir = TempDir::new("recursive-module");
    dir.file(
        "t/node.html",
        "<li>{{ node['name'] }}{% if node['kids'] %}<ul>{% for k in node['kids'] %}\
         {% module Template(\"node.html\", node=k) %}{% end %}</ul>{% end %}</li>",
    );
    dir.file(
        "t/page.html",
        "{% module Template(\"node.html\", node={'name': 'a', 'kids': [{'name': 'b', 'kids': []}]}) %}",
    );
    dir.file("t/forever.html", "x{% module Template(\"forever.html\") %}");
    for debug in [false, true] {
        let s = server(&dir, debug);
        assert_eq!(get(&s, "/r/page.html"), "ok:<li>a<ul><li>b</li></ul></li>");
        let forever = get(&s, "/r/forever.html");
        assert!(
            forever.starts_with("err:") && forever.contains("too deep"),
            "{forever}"
        );
    }
}

/// A module's template that can be loaded with its page (no cycle) is, so
/// a template rendered outside an application (a loader of its own, as
/// `tornado.template.Loader`) still renders its modules.
#[test]
fn a_template_module_loads_with_its_page_outside_an_application() {
    let files = [
        ("page", "[{% module Template(\"m\", x=1) %}]".to_string()),
        ("/m", "x={{ x }}".to_string()),
    ];
    let t = load(&files, "page").unwrap();
    assert_eq!(t.render_value(&json!({})).unwrap(), "[x=1]");
    // A recursive one needs the application: a clear error here.
    let files = [("/r", "{% module Template(\"r\") %}".to_string())];
    let err = load(&files, "/r").unwrap().render_value(&json!({}));
    assert!(err.is_err(), "{err:?}");
}

// ---------------------------------------------------------------------------
// Python semantics Tornado's templates have (its expressions are Python's).

/// Python: `'%c%c|%-3c|%3c' % (65, 'x', 'y', 9731)` is `'Ax|y  |  ☃'`;
/// `'%c' % 'xy'`, `'%c' % 1.5` and `'%c' % 0x110000` are errors.
#[test]
fn percent_c_formats_a_character_as_python() {
    let out = render("{{ '%c%c|%-3c|%3c' % (65, 'x', 'y', 9731) }}", json!({}));
    assert_eq!(out.unwrap(), "Ax|y  |  \u{2603}");
    for bad in ["'%c' % 'xy'", "'%c' % 1.5", "'%c' % 1114112", "'%c' % -1"] {
        assert!(
            render(&format!("{{{{ {bad} }}}}"), json!({})).is_err(),
            "{bad}"
        );
    }
}

/// Python: `int('ff', 16), int('0x1f', 0), int('1_000'), int(' -0b101 ', 0),
/// int('0o17', 8), int('z', 36), int('ff', base=16), int('010')` is
/// `255 31 1000 -5 15 35 255 10`; `int('010', 0)`, `int('1__0')`,
/// `int('_1')`, `int('1_')`, `int(10, 16)`, `int('1', 37)` and
/// `int('0x', 16)` are errors.
#[test]
fn int_takes_a_base_and_underscores_as_python() {
    let src = "{{ int('ff', 16) }} {{ int('0x1f', 0) }} {{ int('1_000') }} \
               {{ int(' -0b101 ', 0) }} {{ int('0o17', 8) }} {{ int('z', 36) }} \
               {{ int('ff', base=16) }} {{ int('010') }}";
    assert_eq!(
        render(src, json!({})).unwrap(),
        "255 31 1000 -5 15 35 255 10"
    );
    for bad in [
        "int('010', 0)",
        "int('1__0')",
        "int('_1')",
        "int('1_')",
        "int(10, 16)",
        "int('1', 37)",
        "int('0x', 16)",
    ] {
        assert!(
            render(&format!("{{{{ {bad} }}}}"), json!({})).is_err(),
            "{bad}"
        );
    }
}

/// Python, `s = 'abcabc'`: `s.find('b', 2), s.find('b', 2, 4), s.find('b', -2),
/// s.rfind('b', 0, 3), s.index('c', 3), s.count('b', 1), s.count('', 2, 4),
/// 'abc'.find('', 5), 'abc'.find('', 3), s.startswith('ca', 2),
/// s.endswith('ab', 0, 5), s.startswith(('x', 'bc'), 4), 'ééab'.find('a', 1),
/// [1, 2, 1].index(1, 1)` is `4 -1 4 1 5 2 3 -1 3 True True True 2 2`;
/// `'abc'.index('a', 1)`, `[1].count(1, 0)` and `s.find('a', 'x')` are errors.
#[test]
fn str_searches_take_start_and_end_as_python() {
    let src = "{{ s.find('b', 2) }} {{ s.find('b', 2, 4) }} {{ s.find('b', -2) }} \
               {{ s.rfind('b', 0, 3) }} {{ s.index('c', 3) }} {{ s.count('b', 1) }} \
               {{ s.count('', 2, 4) }} {{ 'abc'.find('', 5) }} {{ 'abc'.find('', 3) }} \
               {{ s.startswith('ca', 2) }} {{ s.endswith('ab', 0, 5) }} \
               {{ s.startswith(('x', 'bc'), 4) }} {{ 'ééab'.find('a', 1) }} \
               {{ [1, 2, 1].index(1, 1) }}";
    assert_eq!(
        render(src, json!({"s": "abcabc"})).unwrap(),
        "4 -1 4 1 5 2 3 -1 3 True True True 2 2"
    );
    for bad in ["'abc'.index('a', 1)", "[1].count(1, 0)", "s.find('a', 'x')"] {
        let out = render(&format!("{{{{ {bad} }}}}"), json!({"s": "abcabc"}));
        assert!(out.is_err(), "{bad}: {out:?}");
    }
}

/// Python: `0x1f, 0o17, 0b101, 1_000, 0XFF, -0x10, 1_000.5, 1e1_0, 0x_1f + 1`
/// is `31 15 5 1000 255 -16 1000.5 10000000000.0 32`; `0x`, `1__0`, `1_`,
/// `0_1`, `1._5` and `0b2` are syntax errors.
#[test]
fn numeric_literals_take_prefixes_and_underscores_as_python() {
    let src = "{{ 0x1f }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 0XFF }} {{ -0x10 }} \
               {{ 1_000.5 }} {{ 1e1_0 }} {{ 0x_1f + 1 }}";
    assert_eq!(
        render(src, json!({})).unwrap(),
        "31 15 5 1000 255 -16 1000.5 10000000000.0 32"
    );
    for bad in ["0x", "1__0", "1_", "0_1", "1._5", "0b2"] {
        let out = render(&format!("{{{{ {bad} }}}}"), json!({}));
        assert!(out.is_err(), "{bad}: {out:?}");
    }
}

/// Python: `'a' 'b'`, `'x' "y" 'z' + '!'`, `('a' 'b').upper()` and
/// `'%s-' '%s' % (1, 2)` are `ab`, `xyz!`, `AB` and `1-2`.
#[test]
fn adjacent_string_literals_are_one_as_in_python() {
    let src = "{{ 'a' 'b' }} {{ 'x' \"y\" 'z' + '!' }} {{ ('a' 'b').upper() }} \
               {{ '%s-' '%s' % (1, 2) }}";
    assert_eq!(render(src, json!({})).unwrap(), "ab xyz! AB 1-2");
}

/// Tornado, with `items = [[1, [2, 3]], [4, [5, 6]]]`, `d = {'x': [1, 2]}`:
/// `{% for a, (b, c) in items %}{{ a }}{{ b }}{{ c }};{% end %}` is
/// `123;456;`, `{% for i, (k, (p, q)) in enumerate(d.items()) %}` … is
/// `0x12`, `{% for (a, b), c in [[[1, 2], 3]] %}` … is `123` and
/// `{% for k, (p, q) in d.items() %}` … is `x12`; an item that does not
/// unpack (`[[1, [2]]]`) is an error.
#[test]
fn for_unpacks_nested_targets_as_python() {
    let data = json!({"items": [[1, [2, 3]], [4, [5, 6]]], "d": {"x": [1, 2]}});
    let cases = [
        (
            "{% for a, (b, c) in items %}{{ a }}{{ b }}{{ c }};{% end %}",
            "123;456;",
        ),
        (
            "{% for i, (k, (p, q)) in enumerate(d.items()) %}{{ i }}{{ k }}{{ p }}{{ q }}{% end %}",
            "0x12",
        ),
        (
            "{% for (a, b), c in [[[1, 2], 3]] %}{{ a }}{{ b }}{{ c }}{% end %}",
            "123",
        ),
        (
            "{% for k, (p, q) in d.items() %}{{ k }}{{ p }}{{ q }}{% end %}{{ p }}",
            "x121",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, data.clone()).unwrap(), want, "{src}");
    }
    let bad = render("{% for a, (b, c) in [[1, [2]]] %}{% end %}", json!({}));
    assert!(bad.is_err(), "{bad:?}");
}

/// Tornado's `{% set %}` is a Python assignment: with `pair = [1, 2]`,
/// `{% set x, y = 1, 2 %}{{ x }}{{ y }}` is `12`,
/// `{% set a, (b, c) = [1, [2, 3]] %}{{ a }}{{ b }}{{ c }}` is `123`,
/// `{% set (p, q) = pair %}{{ q }}{{ p }}` is `21` and
/// `{% set x, y = 1, 2 %}{% set x, y = y, x %}{{ x }}{{ y }}` is `21`;
/// `{% set x, y = 1, 2, 3 %}` is a `ValueError`, `{% set x, y += 1 %}` a
/// `SyntaxError`.
#[test]
fn set_unpacks_a_tuple_as_python() {
    let data = json!({"pair": [1, 2]});
    let cases = [
        ("{% set x, y = 1, 2 %}{{ x }}{{ y }}", "12"),
        (
            "{% set a, (b, c) = [1, [2, 3]] %}{{ a }}{{ b }}{{ c }}",
            "123",
        ),
        ("{% set (p, q) = pair %}{{ q }}{{ p }}", "21"),
        (
            "{% set x, y = 1, 2 %}{% set x, y = y, x %}{{ x }}{{ y }}",
            "21",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, data.clone()).unwrap(), want, "{src}");
    }
    for bad in ["{% set x, y = 1, 2, 3 %}", "{% set x, y += 1 %}"] {
        let out = render(bad, data.clone());
        assert!(out.is_err(), "{bad}: {out:?}");
    }
}
