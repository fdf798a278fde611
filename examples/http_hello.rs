//! Tornado's "Hello, world" web application in cyclone: `GET /` answers
//! `Hello, world`. Used to compare plain HTTP throughput with Tornado
//! (`wrk -t1 -c50 http://127.0.0.1:8888/`). `GET /cookie` is the signed
//! cookie example of Tornado's user guide ("Cookies and signed cookies");
//! `/form` with `--xsrf-cookies` is its "Cross-site request forgery
//! protection".

mod common;

use std::time::Duration;

use cyclone::ioloop::IOLoop;
use cyclone::web::{Application, CookieSecret, RequestContext, RequestHandler, XsrfCookieVersion};
use cyclone::websocket::{Message, WebSocket, WebSocketHandler};

const USAGE: &str = "http_hello: GET / answers \"Hello, world\" (Tornado's hello world);
GET /metrics answers the loop's counters (Prometheus text format);
GET /cookie is Tornado's signed-cookie example: the first visit sets the
signed cookie `mycookie` (set_secure_cookie), later visits show its value
(get_secure_cookie). A cookie signed by a Tornado application with the same
secret is read too. With --cookie-secrets (key rotation), a cookie signed
with any of the keys is read, and one signed with another key than the
current --key-version is signed again with the current one.
GET /form is a form that posts back to /form with the _xsrf field
(xsrf_form_html); POST /form answers \"posted: TEXT\". With --xsrf-cookies a
POST without the token of the _xsrf cookie (field _xsrf or header
X-XSRFToken) is answered 403. With --cross-origin-protection a POST a browser
marks as cross-site (Sec-Fetch-Site, or Origin against Host) is answered
403 unless its Origin is one of --trusted-origins.
POST /upload answers what a form body held, as JSON: {\"arguments\":
[[name, value], ...], \"files\": [[name, filename, content_type, size,
hex of the bytes], ...]} (multipart/form-data or urlencoded; 400 for a body
Tornado refuses).
GET, POST, PUT, PATCH or DELETE /arguments answers, for each name of the JSON list in the
X-Names header, its get_arguments, get_query_arguments, get_body_arguments,
get_arguments_unstripped and get_argument, and every file (name, filename, type, size), as JSON; with
X-Require: NAME a request without NAME is answered 400 (require_argument).
POST or PUT /upload/stream takes the body as it arrives (Tornado's
@stream_request_body; up to 16 MiB) and answers \"length=N hash=H\" (H:
h = h * 31 + byte, mod 2^64); X-Deny is refused with 403 in prepare,
before the body.
GET /flushed?first=A&rest=B[&length=L] writes A bytes, flushes (the head
goes out), then writes B more from a later callback and finishes; with
length, the handler set Content-Length: L first (Tornado then sends the
body unchunked and closes the connection if A + B is not L).
GET /repeat/N answers \"Hello, world\" on N lines (N up to 99999): with
--compress-response it is gzipped for clients that accept gzip from 1024
bytes on. Every 200 answer to GET carries Tornado's Etag (the SHA-1 of the
body) and is answered 304 when If-None-Match names it.
/slash/remove/... redirects a GET or HEAD to its path without trailing
slashes and /slash/add... to its path with one (Tornado's @removeslash and
@addslash; 404 for POST); /gone/... answers 410 (ErrorHandler).
With --static-path DIR, GET /static/NAME serves DIR/NAME (StaticFileHandler;
text files gzipped too with --compress-response).
/ws is a WebSocket echo with the default check_origin (Tornado 6.6's: pages
of this host and of --trusted-origins); /ws/picky's check_origin accepts
https://friend.example alone.
/members is a WebSocket for logged-in visitors only (Tornado's
@authenticated on a WebSocketHandler whose get_current_user reads the signed
cookie `user`): a handshake without a valid one is redirected (302) to
/login?next=...; a member is greeted \"welcome, NAME\" and gets each message
back as \"NAME: TEXT\". Every answer carries X-Members: 1, and a member's
101 signs the `user` cookie again for 30 more days (HttpOnly).
/ws/room requires the argument `room` (Tornado's get_argument without a
default in prepare): a handshake without it is answered 400 instead of the
upgrade. It greets \"welcome to ROOM\" and gets each message back as
\"ROOM: TEXT\"; a message \"need NAME\" is answered \"NAME=VALUE\" with the
handshake's argument NAME, and without one the connection is dropped
without a Close frame, as Tornado aborts on a MissingArgumentError raised
in on_message.

Usage: http_hello [--port PORT] [--address ADDR]
                  [--cookie-secret SECRET | --cookie-secrets V:SECRET,... [--key-version V]]
                  [--xsrf-cookies [--xsrf-cookie-version 1|2]] [--compress-response]
                  [--decompress-request]
                  [--cross-origin-protection [--trusted-origins ORIGIN,...]]
                  [--static-path DIR]

  --port PORT             port to listen on (default 8888)
  --address ADDR          address to bind (default 127.0.0.1)
  --cookie-secret SECRET  cookie_secret (default: random at each start, so
                          cookies do not outlive the process)
  --cookie-secrets LIST   cookie_secret as Tornado's dictionary of secrets by
                          key version, e.g. 1:old,2:new (no ',' in a secret)
  --key-version V         key_version: which of --cookie-secrets signs new
                          cookies (default: the highest version)
  --xsrf-cookies          the xsrf_cookies setting: check the _xsrf token
                          on every POST, PUT, PATCH and DELETE
  --xsrf-cookie-version N the format of new tokens, 1 or 2 (default 2)
  --compress-response     the compress_response setting (Tornado's gzip=True)
  --decompress-request    the decompress_request setting: gzip request bodies
                          reach the handlers decompressed
  --cross-origin-protection
                          the cross_origin_protection setting (Tornado 6.6)
  --trusted-origins LIST  trusted_origins, e.g. https://a.example,https://b.example
  --static-path DIR       static_path: files served under /static/";

/// Tornado's `@authenticated` WebSocket: only a visitor whose signed
/// `user` cookie checks out is upgraded, and the cookie is renewed.
struct Members {
    user: Option<String>,
}

impl WebSocketHandler for Members {
    fn get_current_user(&mut self, req: &cyclone::http::Request) -> Option<String> {
        let user = cyclone::websocket::get_secure_cookie(req, "user")?;
        self.user = Some(String::from_utf8_lossy(&user).into_owned());
        self.user.clone()
    }
    fn authenticated(&self) -> bool {
        true
    }
    fn set_default_headers(
        &mut self,
        _req: &cyclone::http::Request,
        headers: &mut cyclone::websocket::HandshakeHeaders<'_>,
    ) {
        headers.set_header("X-Members", "1");
        if let Some(user) = &self.user {
            let renewed = cyclone::web::CookieOptions {
                expires_days: Some(30.0),
                httponly: true,
                ..cyclone::web::CookieOptions::default()
            };
            headers.set_secure_cookie_with("user", user, &renewed);
        }
    }
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        let hello = format!("welcome, {}", ws.current_user().unwrap_or_default());
        let _ = ws.write_message(hello);
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let text = msg.as_text().unwrap_or_default();
        let line = format!("{}: {text}", ws.current_user().unwrap_or_default());
        let _ = ws.write_message(line);
    }
}

/// An echo; `picky`: its `check_origin` accepts one origin, not even
/// the application's trusted ones.
struct Echo {
    picky: bool,
}

impl WebSocketHandler for Echo {
    fn check_origin(&self, origin: &str, _req: &cyclone::http::Request) -> bool {
        if self.picky {
            origin == "https://friend.example"
        } else {
            cyclone::websocket::check_trusted_origin(origin)
        }
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.write_message(msg);
    }
}

/// Tornado's `get_argument` without a default in a `WebSocketHandler`:
/// in `prepare` (a 400 instead of the upgrade) and once open (the
/// connection dropped, as Tornado's `_abort`).
struct Room {
    room: String,
}

impl WebSocketHandler for Room {
    fn prepare(&mut self, req: &cyclone::http::Request) -> Result<(), cyclone::http::Response> {
        self.room = cyclone::websocket::require_argument(req, "room")?;
        Ok(())
    }
    fn open(&mut self, ws: &mut WebSocket<'_>, _args: &[&str]) {
        let _ = ws.write_message(format!("welcome to {}", self.room));
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let text = msg.as_text().unwrap_or_default();
        let line = match text.strip_prefix("need ") {
            Some(name) => match ws.require_argument(name) {
                Some(value) => format!("{name}={value}"),
                None => return,
            },
            None => format!("{}: {text}", self.room),
        };
        let _ = ws.write_message(line);
    }
}

struct MainHandler;

impl RequestHandler for MainHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write("Hello, world");
    }
}

/// Tornado's user-guide example, with the value shown. With rotated
/// secrets, a cookie signed with an older key is signed again with the
/// current one.
struct CookieHandler;

impl RequestHandler for CookieHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        match cx.get_secure_cookie("mycookie") {
            Some(v) => {
                let rotated = matches!(
                    cx.settings().cookie_secret,
                    Some(CookieSecret::Versioned(_))
                );
                if rotated
                    && cx.get_secure_cookie_key_version("mycookie") != cx.settings().key_version
                {
                    cx.set_secure_cookie("mycookie", &v);
                }
                let v = String::from_utf8_lossy(&v).into_owned();
                cx.write(format!("Your cookie was set: {v}"));
            }
            None => {
                cx.set_secure_cookie("mycookie", "myvalue");
                cx.write("Your cookie was not set yet!");
            }
        }
    }
}

/// What the form body held (Tornado's `request.body_arguments` and
/// `request.files`), as JSON.
struct UploadHandler;

impl RequestHandler for UploadHandler {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let files: Vec<_> = cx
            .files()
            .into_iter()
            .map(|(name, f)| {
                serde_json::json!([name, f.filename, f.content_type, f.body.len(), hex(f.body)])
            })
            .collect();
        let arguments: Vec<(String, String)> = cx.body_arguments().collect();
        cx.write_json(&serde_json::json!({ "arguments": arguments, "files": files }));
    }
}

/// `/arguments`: each name of the JSON list in the `X-Names` header with
/// what `get_arguments`, `get_query_arguments`, `get_body_arguments` and
/// `get_arguments_unstripped` give for it, and every file (name, filename, content type, size), as
/// JSON. With `X-Require: NAME`, a request without the argument `NAME` is
/// answered as Tornado's `get_argument(NAME)` answers it (400).
struct ArgumentsHandler;

impl ArgumentsHandler {
    fn answer(cx: &mut RequestContext<'_>) {
        if let Some(name) = cx.request().header("X-Require").map(str::to_string) {
            if cx.require_argument(&name).is_none() {
                return;
            }
        }
        let names: Vec<String> = cx
            .request()
            .header("X-Names")
            .and_then(|n| serde_json::from_str(n).ok())
            .unwrap_or_default();
        let mut lists = serde_json::Map::new();
        for name in names {
            let entry = serde_json::json!({
                "arguments": cx.get_arguments(&name),
                "query": cx.get_query_arguments(&name),
                "body": cx.get_body_arguments(&name),
                "unstripped": cx.get_arguments_unstripped(&name),
                "argument": cx.get_argument(&name),
            });
            lists.insert(name, entry);
        }
        let files: Vec<_> = cx
            .files()
            .into_iter()
            .map(|(name, f)| serde_json::json!([name, f.filename, f.content_type, f.body.len()]))
            .collect();
        cx.write_json(&serde_json::json!({ "names": lists, "files": files }));
    }
}

impl RequestHandler for ArgumentsHandler {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "POST", "PUT", "PATCH", "DELETE"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        Self::answer(cx);
    }
    fn patch(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        Self::answer(cx);
    }
    fn delete(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        Self::answer(cx);
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        Self::answer(cx);
    }
    fn put(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        Self::answer(cx);
    }
}

/// `Hello, world` on as many lines as the path says.
struct RepeatHandler;

impl RequestHandler for RepeatHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        let n: usize = args[0].parse().unwrap_or(0);
        cx.write("Hello, world\n".repeat(n));
    }
}

/// `/upload/stream`: Tornado's `@stream_request_body`. The body is read as
/// it arrives (up to 16 MiB), counted and hashed piece by piece.
#[derive(Default)]
struct StreamUploadHandler {
    length: u64,
    hash: u64,
}

impl RequestHandler for StreamUploadHandler {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST", "PUT"]
    }
    fn prepare(&mut self, cx: &mut RequestContext<'_>) {
        if cx.request().header("X-Deny").is_some() {
            cx.send_error(403);
            return;
        }
        cx.set_max_body_size(16 << 20);
    }
    fn data_received(&mut self, _cx: &mut RequestContext<'_>, chunk: &[u8]) {
        self.length += chunk.len() as u64;
        self.hash = chunk.iter().fold(self.hash, |h, &b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        cx.write(format!("length={} hash={}", self.length, self.hash));
    }
    fn put(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.post(cx, args);
    }
}

/// `/flushed`: a flushed answer finished later, with or without a
/// `Content-Length` of the handler's own.
struct FlushedHandler;

impl RequestHandler for FlushedHandler {
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let count = |cx: &RequestContext<'_>, name: &str| {
            cx.get_argument(name)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
                .min(1 << 20)
        };
        let (first, rest) = (count(cx, "first"), count(cx, "rest"));
        if let Some(length) = cx.get_argument("length") {
            cx.set_header("Content-Length", length);
        }
        cx.write(vec![b'a'; first]);
        let later = cx.asynchronous();
        later.flush();
        IOLoop::current().add_callback(move || {
            later.write(vec![b'b'; rest]);
            later.finish();
        });
    }
}

/// Tornado's `@removeslash` (on `/slash/remove/...` and on paths starting
/// `//`) and `@addslash` (on `/slash/add...`) over a page naming its path.
struct SlashHandler;

impl RequestHandler for SlashHandler {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let path = cx.request().path().to_string();
        let answered = if path.starts_with("/slash/add") {
            cx.add_slash()
        } else {
            cx.remove_slash()
        };
        if !answered {
            cx.write(format!("at {path}"));
        }
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.get(cx, args);
    }
}

/// The user guide's XSRF example: a form carrying the `_xsrf` field.
struct FormHandler;

impl RequestHandler for FormHandler {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["GET", "HEAD", "POST"]
    }
    fn get(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let field = cx.xsrf_form_html();
        cx.write(format!(
            "<form action=\"/form\" method=\"post\">{field}\n\
             <input type=\"text\" name=\"message\"/>\n\
             <input type=\"submit\" value=\"Post\"/>\n</form>"
        ));
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _args: &[&str]) {
        let message = cx.get_argument("message").unwrap_or_default();
        cx.set_header("Content-Type", "text/plain; charset=UTF-8");
        cx.write(format!("posted: {message}"));
    }
}

/// 32 random bytes as hex.
fn random_secret() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `1:old,2:new` as `[(1, "old"), (2, "new")]`; exits 2 if it does not
/// parse.
fn parse_secrets(list: &str) -> Vec<(u32, String)> {
    let secrets: Option<Vec<(u32, String)>> = list
        .split(',')
        .map(|item| {
            let (v, s) = item.split_once(':')?;
            Some((v.parse().ok()?, s.to_string()))
        })
        .collect();
    match secrets {
        Some(s) if s.iter().all(|(_, s)| !s.is_empty()) => s,
        _ => {
            eprintln!("invalid value for --cookie-secrets (VERSION:SECRET,...): {list}");
            std::process::exit(2)
        }
    }
}

fn main() {
    let args = common::Args::parse(
        USAGE,
        &[
            ("port", true),
            ("address", true),
            ("cookie-secret", true),
            ("cookie-secrets", true),
            ("key-version", true),
            ("xsrf-cookies", false),
            ("xsrf-cookie-version", true),
            ("compress-response", false),
            ("decompress-request", false),
            ("cross-origin-protection", false),
            ("trusted-origins", true),
            ("static-path", true),
        ],
    );
    common::init_logging();
    let port: u16 = args.get("port", 8888);
    let address: String = args.get("address", "127.0.0.1".to_string());
    let secret: String = args.get("cookie-secret", String::new());
    let secrets: String = args.get("cookie-secrets", String::new());
    if !secret.is_empty() && !secrets.is_empty() {
        eprintln!("http_hello: --cookie-secret and --cookie-secrets are exclusive\n\n{USAGE}");
        std::process::exit(2);
    }
    if args.has("key-version") && secrets.is_empty() {
        eprintln!("http_hello: --key-version needs --cookie-secrets\n\n{USAGE}");
        std::process::exit(2);
    }
    let builder = Application::builder()
        .route("/", || MainHandler)
        .route("/metrics", || cyclone::web::MetricsHandler)
        .route("/cookie", || CookieHandler)
        .route("/form", || FormHandler)
        .route(r"/repeat/(\d{1,5})", || RepeatHandler)
        .route("/upload", || UploadHandler)
        .route("/arguments", || ArgumentsHandler)
        .route("/upload/stream", StreamUploadHandler::default)
        .stream_request_body()
        .route("/flushed", || FlushedHandler)
        .route(r"/slash/(?:remove|add).*", || SlashHandler)
        .route(r"//.*", || SlashHandler)
        .route(r"/gone/.*", || cyclone::web::ErrorHandler::new(410))
        .websocket("/members", |_r: &cyclone::http::Request| Members {
            user: None,
        })
        .websocket("/ws", |_r: &cyclone::http::Request| Echo { picky: false })
        .websocket("/ws/room", |_r: &cyclone::http::Request| Room {
            room: String::new(),
        })
        .websocket("/ws/picky", |_r: &cyclone::http::Request| Echo {
            picky: true,
        })
        .login_url("/login")
        .compress_response(args.has("compress-response"))
        .decompress_request(args.has("decompress-request"))
        .cross_origin_protection(args.has("cross-origin-protection"))
        .trusted_origins(
            args.get("trusted-origins", String::new())
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )
        .xsrf_cookies(args.has("xsrf-cookies"))
        .xsrf_cookie_version(match args.get("xsrf-cookie-version", 2u8) {
            1 => XsrfCookieVersion::V1,
            2 => XsrfCookieVersion::V2,
            n => {
                eprintln!("http_hello: --xsrf-cookie-version is 1 or 2, not {n}\n\n{USAGE}");
                std::process::exit(2)
            }
        });
    let builder = if !secrets.is_empty() {
        let secrets = parse_secrets(&secrets);
        let highest = secrets.iter().map(|(v, _)| *v).max().unwrap_or(0);
        let key_version: u32 = args.get("key-version", highest);
        if !secrets.iter().any(|(v, _)| *v == key_version) {
            eprintln!("http_hello: --key-version {key_version} is not in --cookie-secrets");
            std::process::exit(2);
        }
        builder.cookie_secrets(secrets).key_version(key_version)
    } else if secret.is_empty() {
        builder.cookie_secret(random_secret())
    } else {
        builder.cookie_secret(secret)
    };
    let builder = if args.has("static-path") {
        builder.static_path(args.get("static-path", String::new()))
    } else {
        builder
    };
    let app = builder.build();
    if let Err(e) = app.listen_on((address.as_str(), port)) {
        eprintln!("http_hello: cannot listen on {address}:{port}: {e}");
        std::process::exit(1);
    }
    common::shutdown_on_ctrl_c(Duration::from_secs(1));
    IOLoop::current().start();
}
