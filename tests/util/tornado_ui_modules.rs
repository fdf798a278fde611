// The four UI modules of tests/peers/gen_ui_module_cases.py (Tornado's
// `Entry`, `Counter`, `Assets` and `Tree`) in Rust. Not a module of its own:
// `include!`d by src/web/tests.rs and tests/template_request_diff.rs, whose
// scopes bring `UiModule`, `ModuleContext`, serde_json's `Value`, `Map` and
// `json!`.

struct Entry;

impl UiModule for Entry {
    fn render(
        &mut self,
        cx: &ModuleContext<'_>,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, String> {
        let entry = args.first().ok_or("Entry(entry, show_comments=False)")?;
        let show = kwargs.get("show_comments").cloned().unwrap_or(json!(false));
        cx.render_string(
            "modules/entry.html",
            &json!({"entry": entry, "show_comments": show}),
        )
        .map_err(|e| e.to_string())
    }

    fn embedded_css(&self) -> Option<String> {
        Some(".entry { margin: 1em; }".into())
    }

    fn javascript_files(&self) -> Vec<String> {
        vec!["entry.js".into(), "/abs/x.js".into()]
    }
}

/// One value per request: counts the steps of every call.
struct Counter(i64);

impl UiModule for Counter {
    fn render(
        &mut self,
        _cx: &ModuleContext<'_>,
        _args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, String> {
        self.0 += kwargs.get("step").and_then(Value::as_i64).unwrap_or(1);
        Ok(self.0.to_string())
    }

    fn html_body(&self) -> Option<String> {
        Some(format!("<p>counted {}</p>", self.0))
    }
}

struct Assets;

impl UiModule for Assets {
    fn render(
        &mut self,
        _cx: &ModuleContext<'_>,
        args: &[Value],
        _kwargs: &Map<String, Value>,
    ) -> Result<String, String> {
        Ok(format!("[{}]", args.len()))
    }

    fn embedded_javascript(&self) -> Option<String> {
        Some("var a = 1 < 2;".into())
    }

    fn javascript_files(&self) -> Vec<String> {
        vec!["entry.js".into()]
    }

    fn css_files(&self) -> Vec<String> {
        ["http://cdn.example/x.css", "site.css", "site.css"]
            .map(String::from)
            .to_vec()
    }

    fn embedded_css(&self) -> Option<String> {
        Some("p { color: red; }".into())
    }

    fn html_head(&self) -> Option<String> {
        Some("<meta name=\"m\" content=\"a&b\">".into())
    }
}

struct Tree;

impl UiModule for Tree {
    fn render(
        &mut self,
        cx: &ModuleContext<'_>,
        args: &[Value],
        _kwargs: &Map<String, Value>,
    ) -> Result<String, String> {
        let node = args.first().ok_or("Tree(node)")?;
        cx.render_string("modules/tree.html", &json!({ "node": node }))
            .map_err(|e| e.to_string())
    }
}
