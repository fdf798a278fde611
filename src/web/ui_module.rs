//! Tornado's UI modules: `{% module Name(args) %}` in a template calls the
//! `render` of the application's module `Name` ([`UiModule`], added with
//! [`ApplicationBuilder::ui_module`](super::ApplicationBuilder::ui_module)),
//! and the JavaScript, CSS and HTML the modules of a page ask for go into
//! its `<head>` and `<body>` when [`RequestContext::render`] sends it, as
//! Tornado's `RequestHandler.render` puts them there.
//!
//! [`RequestContext::render`]: super::RequestContext::render

use std::cell::{Cell, RefCell};

use serde::Serialize;
use serde_json::{Map, Value};

use super::template::{RequestNamespace, TemplateError};
use crate::http::Request;
use crate::locale::Locale;

/// A reusable piece of a page with its own code (Tornado's `UIModule`):
/// `{% module Entry(entry, show_comments=True) %}` in a template calls
/// [`render`](Self::render) of the application's module `Entry`, and puts
/// what it returns in the page, unescaped.
///
/// One module value serves one request: the first `{% module Entry(..) %}`
/// of a request makes it with the factory given to
/// [`ApplicationBuilder::ui_module`](super::ApplicationBuilder::ui_module),
/// and every later one in that request (in `render`, `render_string` or a
/// module's own templates) calls the same value, as Tornado keeps one
/// module object per handler. When [`RequestContext::render`] sends the
/// page, the resources of every module it used go in as Tornado's
/// `RequestHandler.render` puts them:
///
/// | method | where it goes |
/// |---|---|
/// | [`javascript_files`](Self::javascript_files) | `<script src="…" type="text/javascript"></script>` before the last `</body>`, each URL once |
/// | [`embedded_javascript`](Self::embedded_javascript) | one `<script type="text/javascript">` (in `//<![CDATA[ … //]]>`) before the last `</body>` |
/// | [`css_files`](Self::css_files) | `<link href="…" type="text/css" rel="stylesheet"/>` before the first `</head>`, each URL once |
/// | [`embedded_css`](Self::embedded_css) | one `<style type="text/css">` before the first `</head>` |
/// | [`html_head`](Self::html_head) | before the first `</head>` |
/// | [`html_body`](Self::html_body) | before the first `</body>` |
///
/// A file path that does not start with `/`, `http:` or `https:` becomes
/// its [`static_url`](ModuleContext::static_url). A page that lacks the
/// `</head>` or `</body>` a resource needs is answered 500 (Tornado raises
/// `ValueError` there); [`RequestContext::render_string`] and WebSocket
/// handlers' `render_string` render modules but insert nothing, as in
/// Tornado.
///
/// `{% module Template("name.html", key=value) %}` is Tornado's built-in
/// module: its template can call
/// `{{ set_resources(embedded_css=".x { }", javascript_files=["a.js"]) }}`
/// (the keywords are the six methods' names; files a string or a list),
/// once per template file, and those resources go in the same way.
///
/// ```
/// use cyclone::web::{Application, ModuleContext, UiModule};
/// use serde_json::{json, Map, Value};
///
/// /// `{% module Entry(entry, show_comments=False) %}`
/// struct Entry;
///
/// impl UiModule for Entry {
///     fn render(
///         &mut self,
///         cx: &ModuleContext<'_>,
///         args: &[Value],
///         kwargs: &Map<String, Value>,
///     ) -> Result<String, String> {
///         let entry = args.first().ok_or("Entry(entry)")?;
///         let show = kwargs.get("show_comments").cloned().unwrap_or(json!(false));
///         cx.render_string("modules/entry.html", &json!({"entry": entry, "show_comments": show}))
///             .map_err(|e| e.to_string())
///     }
///
///     fn embedded_css(&self) -> Option<String> {
///         Some(".entry { margin-bottom: 2em; }".into())
///     }
/// }
///
/// let app = Application::builder()
///     .template_path("templates")
///     .ui_module("Entry", || Entry)
///     .build();
/// # let _ = app;
/// ```
///
/// [`RequestContext::render`]: super::RequestContext::render
/// [`RequestContext::render_string`]: super::RequestContext::render_string
pub trait UiModule: 'static {
    /// The module's HTML for `{% module Name(args…, key=value…) %}`: the
    /// call's positional and keyword arguments as JSON values.
    ///
    /// # Errors
    /// Why the module cannot render these arguments: the render fails at
    /// the call's line, with this text. When the last
    /// [`cx.render_string`](ModuleContext::render_string) or
    /// [`cx.static_url`](ModuleContext::static_url) call failed with an
    /// HTTP status (the module's template called
    /// `handler.get_argument(name)` of an argument the request lacks:
    /// Tornado's `MissingArgumentError`, 400; a `static_url` out of
    /// `static_path`, 403), an `Err` is taken as that error passed on, and
    /// the page is answered with its status as when the page's own
    /// template raises it; the text is then not used. So
    /// `cx.render_string(..).map_err(|e| e.to_string())` answers as
    /// Tornado's module does, whose `HTTPError` goes through its `render`.
    /// (The error stays text, so that this trait is unchanged: the status
    /// goes by the context, not by the `String`.) A module that handles
    /// the error returns `Ok`, or calls `render_string` or `static_url`
    /// again.
    fn render(
        &mut self,
        cx: &ModuleContext<'_>,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, String>;

    /// JavaScript for the page, in one `<script>` element with the other
    /// modules'.
    fn embedded_javascript(&self) -> Option<String> {
        None
    }

    /// JavaScript files the page links (relative paths are `static_url`s).
    fn javascript_files(&self) -> Vec<String> {
        Vec::new()
    }

    /// CSS for the page, in one `<style>` element with the other modules'.
    fn embedded_css(&self) -> Option<String> {
        None
    }

    /// Style sheets the page links (relative paths are `static_url`s).
    fn css_files(&self) -> Vec<String> {
        Vec::new()
    }

    /// HTML put before the page's `</head>`.
    fn html_head(&self) -> Option<String> {
        None
    }

    /// HTML put before the page's `</body>`.
    fn html_body(&self) -> Option<String> {
        None
    }
}

/// Makes one request's [`UiModule`] (see
/// [`ApplicationBuilder::ui_module`](super::ApplicationBuilder::ui_module)).
pub type UiModuleFactory = dyn Fn() -> Box<dyn UiModule>;

/// What a [`UiModule`]'s `render` sees of the request (Tornado's
/// `self.request`, `self.locale`, `self.current_user`, `render_string`, and
/// the handler's `static_url`, `reverse_url` and `xsrf_form_html`).
pub struct ModuleContext<'a> {
    ns: &'a dyn RequestNamespace,
    request: &'a Request,
    /// The error of the last [`render_string`](Self::render_string) (under
    /// the template's name) or [`static_url`](Self::static_url) when it
    /// was a [`TemplateError::Http`]: what a failed `render` answers (see
    /// [`UiModule::render`]).
    refused: Cell<Option<TemplateError>>,
}

impl<'a> ModuleContext<'a> {
    pub(crate) fn new(ns: &'a dyn RequestNamespace, request: &'a Request) -> ModuleContext<'a> {
        ModuleContext {
            ns,
            request,
            refused: Cell::new(None),
        }
    }

    /// The [`TemplateError::Http`] of the last
    /// [`render_string`](Self::render_string) or
    /// [`static_url`](Self::static_url), if it failed with one.
    pub(crate) fn take_refused(&self) -> Option<TemplateError> {
        self.refused.take()
    }

    /// The request being answered (a WebSocket's handshake in its
    /// handler's `render_string`).
    pub fn request(&self) -> &Request {
        self.request
    }

    /// The request's locale (Tornado's `self.locale`).
    pub fn locale(&self) -> Locale {
        self.ns
            .locale()
            .cloned()
            .unwrap_or_else(|| Locale::get_closest(&[]))
    }

    /// The logged-in user's name, if any (`current_user`).
    pub fn current_user(&self) -> Option<&str> {
        self.ns.current_user()
    }

    /// What `{{ static_url(path) }}` prints for `path`.
    ///
    /// # Errors
    /// As [`RequestContext::static_url`]: `path` leads out of
    /// `static_path`. The error is kept as [`render_string`](Self::render_string)'s
    /// HTTP errors are: a module whose `render` then fails answers the
    /// page 403, as Tornado's `HTTPError` does (see [`UiModule::render`]).
    ///
    /// [`RequestContext::static_url`]: super::RequestContext::static_url
    pub fn static_url(&self, path: &str) -> Result<String, super::StaticUrlError> {
        let result = self.ns.static_url(path);
        self.refused
            .set(result.as_ref().err().cloned().map(TemplateError::from));
        result
    }

    /// The URL of the route named `name` with `args` in its groups
    /// (`{{ reverse_url(..) }}`); `None` for a name no route has.
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Option<String> {
        self.ns.reverse_url(name, args)
    }

    /// The form field with the request's XSRF token (`xsrf_form_html()`);
    /// `None` outside an HTTP request (a WebSocket's `render_string`).
    pub fn xsrf_form_html(&self) -> Option<String> {
        self.ns.xsrf_form_html()
    }

    /// The template `file` (relative to `template_path`) rendered with the
    /// fields of `value` in this request's namespace, as the handler's
    /// `render_string` renders it: how a module writes its HTML. It is a
    /// render of its own (its own step and output bounds, which what it
    /// returns then counts against in the page), nested below the page's:
    /// modules calling modules stop at `Template::MAX_RENDER_DEPTH` levels
    /// of blocks, includes and modules together, and at 16 modules deep.
    ///
    /// # Errors
    /// As [`RequestContext::render_string`](super::RequestContext::render_string).
    /// A [`TemplateError::Http`] (under its `In` and `At`) is also kept, for
    /// the page's answer should the module's `render` then fail (see
    /// [`UiModule::render`]).
    pub fn render_string(
        &self,
        file: &str,
        value: &(impl Serialize + ?Sized),
    ) -> Result<String, TemplateError> {
        let result = self.render_value(file, value);
        self.refused.set(match &result {
            Err(e) if matches!(e.innermost(), TemplateError::Http { .. }) => {
                Some(TemplateError::In {
                    name: file.to_string(),
                    error: Box::new(e.clone()),
                })
            }
            _ => None,
        });
        result
    }

    fn render_value(
        &self,
        file: &str,
        value: &(impl Serialize + ?Sized),
    ) -> Result<String, TemplateError> {
        let value = serde_json::to_value(value)
            .map_err(|e| TemplateError::Type(format!("template values do not serialize: {e}")))?;
        let app = self.ns.app_parts().ok_or_else(|| {
            TemplateError::Load(format!(
                "cannot load {file}: no application's templates here"
            ))
        })?;
        app.shared
            .template(file)?
            .render_value_in(&value, Some(self.ns))
    }
}

/// How deep modules may nest (a module whose template calls itself, on
/// and on), as includes may.
pub(crate) const MAX_MODULE_DEPTH: usize = super::template::Template::MAX_INCLUDE_DEPTH;

/// The modules one request has used, in the order of their first use
/// (Tornado's `_active_modules`), for the resources of its page.
#[derive(Default)]
pub(crate) struct ActiveModules {
    /// Never borrowed across a module's `render`, which may render
    /// templates that use modules again.
    list: RefCell<Vec<Active>>,
    /// Module renders in progress.
    depth: Cell<usize>,
}

struct Active {
    name: String,
    module: Slot,
}

enum Slot {
    /// `{% module Template(..) %}`: each template's `set_resources`
    /// keywords, in the order first given.
    Template(Vec<(String, Map<String, Value>)>),
    /// The application's module; `None` while its `render` runs.
    Own(Option<Box<dyn UiModule>>),
}

/// The keywords of `set_resources` that are text, and those that are
/// files (a string or a list of strings).
const TEXT_RESOURCES: [&str; 4] = [
    "embedded_javascript",
    "embedded_css",
    "html_head",
    "html_body",
];
const FILE_RESOURCES: [&str; 2] = ["javascript_files", "css_files"];

impl ActiveModules {
    /// `{% module name(args, kwargs) %}` of the module `make` makes: the
    /// request's value of it, made at its first use; a fresh one for a
    /// call inside its own `render`.
    pub(crate) fn render(
        &self,
        name: &str,
        make: &UiModuleFactory,
        cx: &ModuleContext<'_>,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, String> {
        let depth = self.depth.get();
        if depth >= MAX_MODULE_DEPTH {
            return Err(format!(
                "UI modules nest more than {MAX_MODULE_DEPTH} deep while rendering"
            ));
        }
        let (mut module, slot) = {
            let mut list = self.list.borrow_mut();
            match list.iter().position(|a| a.name == name) {
                Some(i) => match &mut list[i].module {
                    Slot::Own(m) => match m.take() {
                        Some(m) => (m, Some(i)),
                        // Called from its own render: Tornado would call
                        // the same object; a value of its own here.
                        None => (make(), None),
                    },
                    Slot::Template(_) => unreachable!("Template is no application module"),
                },
                None => {
                    list.push(Active {
                        name: name.to_string(),
                        module: Slot::Own(None),
                    });
                    (make(), Some(list.len() - 1))
                }
            }
        };
        self.depth.set(depth + 1);
        let result = module.render(cx, args, kwargs);
        self.depth.set(depth);
        if let Some(i) = slot {
            self.list.borrow_mut()[i].module = Slot::Own(Some(module));
        }
        result
    }

    /// A `{% module Template(..) %}` of `template` is being rendered
    /// (`resources` `None`), or its template called `set_resources` with
    /// `resources`: kept once per template, as Tornado's `TemplateModule`
    /// keeps them.
    pub(crate) fn template_module(
        &self,
        template: &str,
        resources: Option<Map<String, Value>>,
    ) -> Result<(), String> {
        let mut list = self.list.borrow_mut();
        let i = match list.iter().position(|a| a.name == "Template") {
            Some(i) => i,
            None => {
                list.push(Active {
                    name: "Template".to_string(),
                    module: Slot::Template(Vec::new()),
                });
                list.len() - 1
            }
        };
        let Slot::Template(kept) = &mut list[i].module else {
            unreachable!("only the Template module is named Template");
        };
        let Some(resources) = resources else {
            return Ok(());
        };
        for (key, v) in &resources {
            // Tornado keeps keywords no method reads, and ignores them.
            let why = if TEXT_RESOURCES.contains(&key.as_str()) {
                (!v.is_string()).then_some("the text is a string")
            } else if FILE_RESOURCES.contains(&key.as_str()) {
                let files =
                    v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
                (!files).then_some("files are a string or a list of strings")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(format!("set_resources({key}=..): {why}"));
            }
        }
        match kept.iter().find(|(t, _)| t == template) {
            None => kept.push((template.to_string(), resources)),
            Some((_, seen)) if *seen != resources => {
                return Err(
                    "set_resources called with different resources for the same template".into(),
                )
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// `html` with the resources of the modules used so far put in, as
    /// Tornado's `RequestHandler.render` puts them.
    ///
    /// # Errors
    /// A resource needs a `</head>` or `</body>` the page does not have.
    pub(crate) fn insert_resources(
        &self,
        html: String,
        static_url: &dyn Fn(&str) -> String,
    ) -> Result<String, String> {
        let list = self.list.borrow();
        if list.is_empty() {
            return Ok(html);
        }
        let mut r = Resources::default();
        for active in list.iter() {
            match &active.module {
                Slot::Template(kept) => r.add_template(kept),
                Slot::Own(Some(m)) => r.add(
                    m.embedded_javascript(),
                    m.javascript_files(),
                    m.embedded_css(),
                    m.css_files(),
                    m.html_head(),
                    m.html_body(),
                ),
                // Lost to a panic in its render.
                Slot::Own(None) => {}
            }
        }
        r.insert(html, static_url)
    }
}

/// What the page's modules ask for, in the order `render` gathers it.
#[derive(Default)]
struct Resources {
    js_embed: Vec<String>,
    js_files: Vec<String>,
    css_embed: Vec<String>,
    css_files: Vec<String>,
    heads: Vec<String>,
    bodies: Vec<String>,
}

impl Resources {
    /// One module's resources; empty ones are left out, as Python's
    /// truthiness leaves them.
    fn add(
        &mut self,
        js: Option<String>,
        js_files: Vec<String>,
        css: Option<String>,
        css_files: Vec<String>,
        head: Option<String>,
        body: Option<String>,
    ) {
        let some = |to: &mut Vec<String>, s: Option<String>| {
            to.extend(s.filter(|s| !s.is_empty()));
        };
        some(&mut self.js_embed, js);
        some(&mut self.css_embed, css);
        some(&mut self.heads, head);
        some(&mut self.bodies, body);
        self.js_files.extend(js_files);
        self.css_files.extend(css_files);
    }

    /// The Template module's: its methods join every template's
    /// `set_resources` values (JavaScript and CSS by newlines, HTML by
    /// nothing; files one list).
    fn add_template(&mut self, kept: &[(String, Map<String, Value>)]) {
        let files = |key: &str| -> Vec<String> {
            let mut out = Vec::new();
            for v in kept.iter().filter_map(|(_, r)| r.get(key)) {
                match v {
                    Value::Array(a) => {
                        out.extend(a.iter().filter_map(Value::as_str).map(str::to_string))
                    }
                    v => out.extend(v.as_str().map(str::to_string)),
                }
            }
            out
        };
        let joined = |key: &str, sep: &str| {
            let texts: Vec<&str> = kept
                .iter()
                .filter_map(|(_, r)| r.get(key)?.as_str())
                .collect();
            Some(texts.join(sep))
        };
        self.add(
            joined("embedded_javascript", "\n"),
            files("javascript_files"),
            joined("embedded_css", "\n"),
            files("css_files"),
            joined("html_head", ""),
            joined("html_body", ""),
        );
    }

    fn insert(
        self,
        mut html: String,
        static_url: &dyn Fn(&str) -> String,
    ) -> Result<String, String> {
        if !self.js_files.is_empty() {
            let tags = linked(&self.js_files, static_url, |p| {
                format!("<script src=\"{p}\" type=\"text/javascript\"></script>")
            });
            put(&mut html, &tags, "</body>", true)?;
        }
        if !self.js_embed.is_empty() {
            let js = format!(
                "<script type=\"text/javascript\">\n//<![CDATA[\n{}\n//]]>\n</script>",
                self.js_embed.join("\n")
            );
            put(&mut html, &js, "</body>", true)?;
        }
        if !self.css_files.is_empty() {
            let tags = linked(&self.css_files, static_url, |p| {
                format!("<link href=\"{p}\" type=\"text/css\" rel=\"stylesheet\"/>")
            });
            put(&mut html, &tags, "</head>", false)?;
        }
        if !self.css_embed.is_empty() {
            let css = format!(
                "<style type=\"text/css\">\n{}\n</style>",
                self.css_embed.join("\n")
            );
            put(&mut html, &css, "</head>", false)?;
        }
        if !self.heads.is_empty() {
            put(&mut html, &self.heads.concat(), "</head>", false)?;
        }
        if !self.bodies.is_empty() {
            put(&mut html, &self.bodies.concat(), "</body>", false)?;
        }
        Ok(html)
    }
}

/// Each distinct URL of `files` (a relative path made a `static_url`) as
/// `tag` makes it, escaped; Tornado's `render_linked_js`/`_css`.
fn linked(
    files: &[String],
    static_url: &dyn Fn(&str) -> String,
    tag: impl Fn(&str) -> String,
) -> String {
    let mut seen: Vec<String> = Vec::new();
    for f in files {
        let absolute = ["/", "http:", "https:"].iter().any(|p| f.starts_with(p));
        let url = if absolute { f.clone() } else { static_url(f) };
        if !seen.contains(&url) {
            seen.push(url);
        }
    }
    seen.iter()
        .map(|u| tag(&super::escape::xhtml_escape(u)))
        .collect()
}

/// `what` and a newline put before the last (`last`) or first `tag` of
/// `html`.
fn put(html: &mut String, what: &str, tag: &str, last: bool) -> Result<(), String> {
    let at = if last {
        html.rfind(tag)
    } else {
        html.find(tag)
    };
    let at =
        at.ok_or_else(|| format!("the page has no {tag} to put its UI modules' resources before"))?;
    html.insert_str(at, &format!("{what}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        "<html><head></head><body><p>x</p></body></html>".to_string()
    }

    fn url(p: &str) -> String {
        format!("/static/{p}")
    }

    #[test]
    fn nothing_used_leaves_the_page_as_it_is() {
        let m = ActiveModules::default();
        assert_eq!(
            m.insert_resources("no tags".into(), &url).unwrap(),
            "no tags"
        );
    }

    #[test]
    fn template_resources_go_where_tornado_puts_them() {
        let m = ActiveModules::default();
        let res = |v: Value| Some(v.as_object().unwrap().clone());
        m.template_module("/a.html", None).unwrap();
        m.template_module(
            "/a.html",
            res(serde_json::json!({
                "javascript_files": ["a.js", "http://x/b.js"],
                "embedded_javascript": "var a;",
                "css_files": "a.css",
                "html_head": "<meta>",
                "html_body": "<i>",
                "other": 1,
            })),
        )
        .unwrap();
        m.template_module(
            "/b.html",
            res(serde_json::json!({"javascript_files": "a.js", "embedded_javascript": "var b;"})),
        )
        .unwrap();
        // Again, the same: kept once; different: refused.
        m.template_module(
            "/b.html",
            res(serde_json::json!({"javascript_files": "a.js", "embedded_javascript": "var b;"})),
        )
        .unwrap();
        let err = m
            .template_module("/b.html", res(serde_json::json!({"css_files": "c.css"})))
            .unwrap_err();
        assert!(err.contains("different resources"), "{err}");
        let err = m
            .template_module("/c.html", res(serde_json::json!({"css_files": [1]})))
            .unwrap_err();
        assert!(err.contains("css_files"), "{err}");
        assert_eq!(
            m.insert_resources(page(), &url).unwrap(),
            "<html><head><link href=\"/static/a.css\" type=\"text/css\" rel=\"stylesheet\"/>\n\
             <meta>\n</head><body><p>x</p>\
             <script src=\"/static/a.js\" type=\"text/javascript\"></script>\
             <script src=\"http://x/b.js\" type=\"text/javascript\"></script>\n\
             <script type=\"text/javascript\">\n//<![CDATA[\nvar a;\nvar b;\n//]]>\n</script>\n\
             <i>\n</body></html>"
        );
        let err = m
            .insert_resources("<body></body>".into(), &url)
            .unwrap_err();
        assert!(err.contains("</head>"), "{err}");
    }

    #[test]
    fn an_unused_template_module_adds_nothing_but_empty_joins_do() {
        let m = ActiveModules::default();
        m.template_module("/a.html", None).unwrap();
        assert_eq!(m.insert_resources("x".into(), &url).unwrap(), "x");
        // Two empty strings join to "\n", which Python finds true.
        let res = |v: Value| Some(v.as_object().unwrap().clone());
        m.template_module("/a.html", res(serde_json::json!({"embedded_css": ""})))
            .unwrap();
        assert_eq!(m.insert_resources(page(), &url).unwrap(), page());
        m.template_module("/b.html", res(serde_json::json!({"embedded_css": ""})))
            .unwrap();
        assert!(m
            .insert_resources(page(), &url)
            .unwrap()
            .contains("<style type=\"text/css\">\n\n\n</style>\n</head>"));
    }
}
