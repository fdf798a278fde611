//! Form bodies (`multipart/form-data` and urlencoded) as a handler reads
//! them: `RequestContext::body_arguments`, `files` and `get_files`, through
//! `Application::dispatch`. A request body is input from anyone.
//!
//! Input: the bytes before the first 0xFF are the `Content-Type` (control
//! characters and bytes past ASCII dropped, so the header is valid; empty
//! becomes a multipart type with the boundary `b`), the rest is the body.
//!
//! Invariants: no panic; the answer is 200 (parsed) or 400 (refused as
//! Tornado refuses it); a 200 lists at most 100 parts for a multipart
//! body and 1,000 fields for an urlencoded one, and every file's bytes
//! appear in the body; the same request
//! gives the same answer twice.
#![no_main]

use libfuzzer_sys::fuzz_target;

use cyclone::http::{Reply, Request, Service};
use cyclone::web::{Application, RequestContext, RequestHandler};

struct Show;

impl RequestHandler for Show {
    fn supported_methods(&self) -> &'static [&'static str] {
        &["POST"]
    }
    fn post(&mut self, cx: &mut RequestContext<'_>, _: &[&str]) {
        let body = cx.request().body();
        let args: Vec<(String, String)> = cx.body_arguments().collect();
        let files = cx.files();
        for (name, f) in &files {
            assert!(
                body.windows(f.body.len().max(1))
                    .any(|w| f.body.is_empty() || w == f.body),
                "file {name} not from the body"
            );
            assert_eq!(
                cx.get_files(name).len(),
                files.iter().filter(|(n, _)| n == name).count()
            );
        }
        for (name, _) in &args {
            assert!(!cx.get_body_arguments(name).is_empty());
        }
        cx.write(format!("{} {}", args.len(), files.len()));
    }
}

fn answer(app: &Application, ctype: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut req = Request::synthetic("POST", "/", &[("Content-Type", ctype)]);
    req.set_body(body.to_vec());
    match app.dispatch(req) {
        Reply::Response(r) => (r.status(), r.body().to_vec()),
        Reply::Upgrade(_) => panic!("no upgrade here"),
        Reply::Pending(_) => panic!("no answer given later here"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let mut ctype: String = head
        .iter()
        .filter(|b| (0x20..0x7f).contains(*b))
        .map(|&b| char::from(b))
        .collect();
    ctype = ctype.trim().to_string();
    if ctype.is_empty() {
        ctype = "multipart/form-data; boundary=b".to_string();
    }
    let app = Application::builder().route("/", || Show).build();
    let (status, page) = answer(&app, &ctype, body);
    assert!(status == 200 || status == 400, "status {status}");
    if status == 200 && ctype.starts_with("multipart/form-data") {
        let text = String::from_utf8_lossy(&page);
        let (args, files) = text.split_once(' ').unwrap();
        let parts: usize = args.parse::<usize>().unwrap() + files.parse::<usize>().unwrap();
        assert!(parts <= 100, "{parts} parts");
    }
    if status == 200 && ctype.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&page);
        let args: usize = text.split(' ').next().unwrap().parse().unwrap();
        assert!(args <= cyclone::web::MAX_URLENCODED_ARGUMENTS, "{args} fields");
    }
    assert_eq!(answer(&app, &ctype, body), (status, page));
});
