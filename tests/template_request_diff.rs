//! Differential test of what only a request's render has — UI modules and
//! the request-only template functions (`static_url`, `reverse_url`,
//! `xsrf_form_html`, `_`/`pgettext`/`locale`, `current_user`, `request`,
//! `handler`) — against Tornado's `RequestHandler.render`:
//! `tests/template_diff/request_cases.json` holds pages with what Tornado
//! 6.6.1 sent for them over HTTP (written by
//! `scripts/template-diff/request_cases.py`, which describes the
//! application); here cyclone's `Application` serves the same pages, with
//! the same modules, routes, settings, static files and translations, to
//! the same request, and the answers are compared.
//!
//! A case matches when both answer 200 with the same body, or both answer
//! the same other status (a failed render's page differs by design). The
//! cases where cyclone deliberately differs are listed in [`DIFFERENCES`]
//! with the reason; any other difference fails the test, and so does a
//! listed one that stops differing.

mod util;

use std::collections::HashMap;

use cyclone::testing::TestServer;
use cyclone::web::{
    Application, ModuleContext, RequestContext, RequestHandler, UiModule, XsrfCookieVersion,
};
use serde_json::{json, Map, Value};
use util::TempDir;

/// Cases where cyclone's page is deliberately not Tornado's, each with why.
const DIFFERENCES: &[(&str, &str)] = &[
    // `RequestContext::static_url` documents both.
    ("static_url of files", ESCAPED),
    ("static_url with a query", ESCAPED),
    ("static_url escaped and raw", ESCAPED),
    ("Req module from its template", ESCAPED),
    ("module resources with a query-string file", ESCAPED),
    (
        "static_url of a number",
        "functions take the text {{ }} prints where Tornado raises TypeError",
    ),
    (
        "request.headers in another case",
        "request.headers is a dict of Tornado's normalized names (X-Test): another case \
         is not found, where HTTPHeaders ignores case",
    ),
    (
        "request.cookies",
        "request.cookies is a dict of {key, value} dicts: it prints as that, where \
         Tornado's SimpleCookie prints Set-Cookie lines",
    ),
    ("request.body", REQUEST),
    ("request printed", REQUEST),
    ("handler.xsrf_token", HANDLER),
    ("handler.static_url", HANDLER),
    ("handler.reverse_url", HANDLER),
    ("calling static_url given as a value", BY_NAME),
    ("calling reverse_url given as a value", BY_NAME),
    ("calling xsrf_form_html given as a value", BY_NAME),
    ("calling _ given as a value", BY_NAME),
    ("calling pgettext given as a value", BY_NAME),
    ("calling linkify given as a value", BY_NAME),
    ("calling json_encode given as a value", BY_NAME),
    (
        "request fields with Host x:8a",
        "a Host whose port is not digits is refused with 400 (RFC 9110 section 7.2, \
         RFC 3986 section 3.2.3), where Tornado serves it",
    ),
];

const ESCAPED: &str = "static_url percent-encodes the path (a space %20, ? %3F, é %C3%A9), \
                       where Tornado pastes it in as it is";
const REQUEST: &str = "request is a dict of HTTPServerRequest's fields (method, uri, path, \
                       query, version, host, host_name, remote_ip, protocol, headers, \
                       arguments, query_arguments, body_arguments, cookies) with full_url(): \
                       no body, and it prints as that dict";
const BY_NAME: &str = "Tornado's functions are found by name when parsed: a render value of \
                       the same name does not hide them from a call (Tornado: TypeError, \
                       a str is not callable)";
const HANDLER: &str = "handler is a dict of request, current_user and locale with the \
                       argument and cookie methods (get_argument, get_cookie...): a Rust \
                       handler is no object a template can look into, and the namespace \
                       has xsrf_form_html(), static_url and reverse_url";

include!("util/tornado_ui_modules.rs");

/// Python's `str` of the integers and strings the cases pass.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        v => v.to_string(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) => true,
    }
}

/// `Req(path="app.css", n=1, template=False)`: the handler's request
/// functions from the module's code, or from its template.
struct Req;

impl UiModule for Req {
    fn render(
        &mut self,
        cx: &ModuleContext<'_>,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<String, String> {
        let arg = |i: usize, name: &str| args.get(i).or_else(|| kwargs.get(name));
        let path = arg(0, "path").map_or_else(|| "app.css".into(), py_str);
        let n = arg(1, "n").map_or_else(|| "1".into(), py_str);
        if arg(2, "template").is_some_and(truthy) {
            return cx
                .render_string(
                    "modules/req.html",
                    &json!({"f": path, "n": n.parse::<i64>().ok()}),
                )
                .map_err(|e| e.to_string());
        }
        let story = cx
            .reverse_url("story", &[&n])
            .ok_or("story not found in named urls")?;
        let url = cx.static_url(&path).map_err(|e| e.to_string())?;
        Ok(format!(
            "{url}|{story}|{}|{}|{}",
            cx.locale().translate("Sign in"),
            cx.current_user().unwrap_or("None"),
            cx.request().path()
        ))
    }

    fn javascript_files(&self) -> Vec<String> {
        vec!["js/app.js".into(), "app.css".into()]
    }

    fn css_files(&self) -> Vec<String> {
        vec!["app.css".into(), "//cdn.example/y.css".into()]
    }
}

/// Renders the page named in the path with the case's values.
struct Page(Value);

impl RequestHandler for Page {
    fn get_current_user(&mut self, cx: &RequestContext<'_>) -> Option<String> {
        cx.request().header("X-User").map(str::to_owned)
    }

    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        cx.render_with(args[0], &self.0);
    }
}

struct Other;

impl RequestHandler for Other {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write("other");
    }
}

fn app(case: &Value, templates: &std::path::Path, statics: &std::path::Path) -> Application {
    let config = &case["config"];
    let values = case["values"].clone();
    let mut b = Application::builder()
        .template_path(templates)
        .static_path(statics)
        .cookie_secret("fixed secret for the differential")
        .xheaders(config["xheaders"].as_bool().unwrap_or(false))
        .xsrf_cookies(config["xsrf"].as_bool().unwrap_or(false))
        .xsrf_cookie_version(match config["xsrf_version"].as_i64() {
            Some(1) => XsrfCookieVersion::V1,
            _ => XsrfCookieVersion::V2,
        })
        .ui_module("Entry", || Entry)
        .ui_module("Counter", || Counter(0))
        .ui_module("Assets", || Assets)
        .ui_module("Tree", || Tree)
        .ui_module("Req", || Req)
        .route("/p/(.*)", move || Page(values.clone()))
        .route("/story/([0-9]+)", || Other)
        .name("story")
        .route(r"/u/([^/]+)/(\w+)", || Other)
        .name("user")
        .route("/", || Other)
        .name("home")
        .route("/search", || Other)
        .name("search");
    if let Some(prefix) = config["static_url_prefix"].as_str() {
        b = b.static_url_prefix(prefix);
    }
    b.build()
}

/// A version-2 XSRF token is masked afresh for every page: written
/// `XSRF2(<token>)`, unmasked, as the generator writes Tornado's.
fn unmask_v2(text: &str) -> String {
    fn hex(s: &str) -> Option<Vec<u8>> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("2|") {
        let tail = &rest[at + 2..];
        let token = (|| {
            let (mask, tail) = (tail.get(..8)?, tail.get(8..)?);
            let (masked, tail) = (tail.strip_prefix('|')?.get(..32)?, tail.get(33..)?);
            let tail = tail.strip_prefix('|')?;
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || !lower_hex(mask) || !lower_hex(masked) {
                return None;
            }
            let (mask, masked) = (hex(mask)?, hex(masked)?);
            let token: String = masked
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| format!("{:02x}", b ^ m))
                .collect();
            Some((token, 8 + 1 + 32 + 1 + digits))
        })();
        match token {
            Some((token, len)) => {
                out.push_str(&rest[..at]);
                out.push_str(&format!("XSRF2({token})"));
                rest = &tail[len..];
            }
            None => {
                out.push_str(&rest[..at + 2]);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// cyclone's version of a static file (the SHA-1 of its content) written
/// as Tornado's (the SHA-512), as [`StaticFiles::version`] documents.
///
/// [`StaticFiles::version`]: cyclone::web::StaticFiles::version
fn same_versions(page: &str, versions: &[(&str, &str)]) -> String {
    let mut page = page.to_owned();
    for (sha1, sha512) in versions {
        page = page.replace(&format!("?v={sha1}"), &format!("?v={sha512}"));
    }
    page
}

#[test]
fn unmask_v2_finds_tokens() {
    assert_eq!(
        unmask_v2("a 2|deadbeef|debc9cdc9af8d8985634145412705010|1700000000\" 2|x 2|deadbeef|zz"),
        "a XSRF2(00112233445566778899aabbccddeeff)\" 2|x 2|deadbeef|zz"
    );
}

#[test]
fn cyclone_renders_pages_as_tornado_does() {
    let data: Value = serde_json::from_str(include_str!("template_diff/request_cases.json"))
        .expect("request_cases.json");
    let translations = TempDir::new("request-diff-locale");
    for (name, text) in data["translations"].as_object().expect("translations") {
        translations.file(name, text.as_str().expect("csv"));
    }
    cyclone::locale::load_translations(&translations.0).expect("translations load");
    let statics = TempDir::new("request-diff-static");
    for (name, text) in data["static_files"].as_object().expect("static files") {
        statics.file(name, text.as_str().expect("text"));
    }
    let versions: Vec<(&str, &str)> = data["versions"]
        .as_object()
        .expect("versions")
        .iter()
        .map(|(sha1, sha512)| (sha1.as_str(), sha512.as_str().expect("hex")))
        .collect();
    let host = data["host"].as_str().expect("host");
    let token = data["xsrf_token"].as_str().expect("token");
    let differences: HashMap<&str, &str> = DIFFERENCES.iter().copied().collect();
    let cases = data["cases"].as_array().expect("cases");
    let (mut matched, mut deliberate) = (0, 0);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let config = &case["config"];
        let templates = TempDir::new("request-diff");
        for files in [&data["module_files"], &case["files"]] {
            for (file, text) in files.as_object().expect("files") {
                templates.file(file, text.as_str().expect("text"));
            }
        }
        let (case_owned, tpath, spath) = (case.clone(), templates.0.clone(), statics.0.clone());
        let server = TestServer::start(move || app(&case_owned, &tpath, &spath));
        let path = format!(
            "/p/{}{}",
            case["page"].as_str().expect("page"),
            case["query"].as_str().expect("query")
        );
        let cookie = format!("_xsrf={}", config["cookie"].as_str().unwrap_or(token));
        let mut fetch = server
            .request("GET", &path)
            .header("Host", config["host"].as_str().unwrap_or(host))
            .header("Cookie", &cookie);
        for (key, header) in [
            ("user", "X-User"),
            ("lang", "Accept-Language"),
            ("header", "X-Test"),
        ] {
            if let Some(v) = config[key].as_str() {
                fetch = fetch.header(header, v);
            }
        }
        if let Some(headers) = config["headers"].as_object() {
            for (name, value) in headers {
                fetch = fetch.header(name, value.as_str().expect("a header's value"));
            }
        }
        let r = fetch.send().expect("fetch");
        let got_body = if r.code == 200 {
            same_versions(&unmask_v2(&r.text()), &versions)
        } else {
            String::new()
        };
        let want_status = case["tornado"]["status"].as_u64().expect("status");
        let want_body = case["tornado"]["body"].as_str().expect("body");
        let same = u64::from(r.code) == want_status && (r.code != 200 || got_body == want_body);
        match (same, differences.get(name)) {
            (true, None) => matched += 1,
            (false, Some(_)) => deliberate += 1,
            (true, Some(why)) => failures.push(format!(
                "{name:?} is listed as a difference ({why}) but matches: {} {got_body:?}",
                r.code
            )),
            (false, None) => failures.push(format!(
                "{name:?}: {} {:?}\n  tornado: {want_status} {want_body:?}\n  cyclone: {} {:?}",
                config,
                case["files"]["page.html"],
                r.code,
                if r.code == 200 { got_body } else { r.text() }
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
