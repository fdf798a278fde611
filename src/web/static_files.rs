//! `StaticFiles`: Tornado's `StaticFileHandler`, without path traversal.

use std::borrow::Cow;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::context::RequestContext;
use super::handler::RequestHandler;
use crate::http::http_date;
use crate::http::request::qs_values;

/// The largest file `compress_response` gzips whole, in the method;
/// larger ones are read, gzipped and sent a piece at a time, each piece
/// after the client took the one before (so one tick compresses at most
/// [`GZIP_PIECE`] bytes).
const GZIP_MAX_FILE: usize = 1 << 20;

/// The piece of a large file gzipped per tick (Tornado's
/// `StaticFileHandler` reads 64 KiB at a time and flushes each).
const GZIP_PIECE: usize = 64 * 1024;

/// Tornado 6.6's `StaticFileHandler.MAX_VERSION_CONTENT_SIZE`: a larger
/// file gets no version, as hashing it would hold the loop for seconds.
const MAX_VERSION_CONTENT_SIZE: u64 = 64 * 1024 * 1024;

/// Tornado's `StaticFileHandler.CACHE_MAX_AGE`: ten years, in seconds,
/// for a request carrying a `v` argument.
const CACHE_MAX_AGE: u64 = 86_400 * 365 * 10;

/// Serves files under a root directory; the route's first capture is the
/// path relative to the root (already percent-decoded by the application,
/// and never decoded a second time).
///
/// [`static_path`](super::ApplicationBuilder::static_path) routes
/// `/static/(.*)` here; it can also be routed by hand:
/// `.route(r"/files/(.*)", move || files.clone())`.
///
/// * **Refused with 403** (Tornado's answer for a path outside the root):
///   a `..` segment, a backslash, a NUL, an absolute path that does not
///   lie under the root as written, a path whose
///   canonical form (symlinks resolved) leaves the canonical root, and a
///   directory. An absolute path under the root (the capture of
///   `/static//srv/static/app.js`, the URL
///   [`RequestContext::static_url`] makes of such a path) is served as
///   the path after the root, as Tornado's handler serves it. The check is made on the decoded path, so `%2e%2e/` and
///   `%2F..` are refused like `../`. Each 403 carries Tornado's reason
///   (`x is not in root static directory`, `x is not a file` for a
///   directory or another file that is not a regular one), logged at
///   `warn` as `403 GET /static/x (ip): ...` and shown in the page with
///   `debug`, as every refusal's reason.
/// * **404**: the file does not exist.
/// * `GET` and `HEAD` (HEAD gets the file's `Content-Length`; nothing is
///   read from the file for it).
/// * `Content-Type` by extension (`application/octet-stream` otherwise),
///   `Last-Modified` (the current date for a file modified in the
///   future), and an `ETag` made of the modification time and the
///   size (as nginx's: revalidating reads nothing; Tornado hashes the
///   content). `304 Not Modified` for an `If-None-Match` naming it (or
///   `*` as its first tag, as Tornado's `check_etag_header` reads it; the
///   list may come as several field lines), or, without a non-empty
///   `If-None-Match`, for an `If-Modified-Since` at or after the
///   modification time (RFC 9110 §13.2.2). Before them, `412
///   Precondition Failed` for an `If-Match` that does not name it (strong
///   comparison; `*` matches) or, without `If-Match`, an
///   `If-Unmodified-Since` before the modification time (Tornado ignores
///   both).
/// * `Range: bytes=a-b`, `a-` and `-n` (`Accept-Ranges: bytes`): 206 with
///   `Content-Range` and only that part read from the file; 416 with
///   `Content-Range: bytes */size` when no byte is in the file or the
///   range ends before it begins (`5-2`); a range covering the whole file
///   is a 200, and several ranges or a malformed one are ignored (the
///   whole file), as in Tornado (which reads more as well-formed: below).
///   An `If-Range` that
///   is not the file's ETag (strong comparison) or `Last-Modified` date
///   also gets the whole file (RFC 9110 §13.1.5; Tornado ignores
///   `If-Range` and sends the range). The 416 answer is
///   `Content-Type: text/plain` with no body, as Tornado's.
/// * **Versioned URLs**: a request with a `v` query argument (any value,
///   even empty: what [`RequestContext::static_url`] appends) is answered
///   with `Cache-Control: max-age=315360000` and an `Expires` ten years
///   ahead (Tornado's `CACHE_MAX_AGE`), on the 200, 206, 304 and 416
///   alike. Without `v` neither header is sent (Tornado's `get_cache_time`
///   0: the browser's heuristics and revalidation apply).
///
/// The file (or the part asked for) is sent in 64 KiB pieces read as the
/// client takes them ([`RequestContext::write_file`]), as Tornado does: a
/// large download costs one piece of memory, not its size.
///
/// **Deliberately not as Tornado 6.6** (each compared with its
/// `StaticFileHandler` serving the same directory):
///
/// * `X-Content-Type-Options: nosniff` is sent with every file (Tornado
///   sends none): a browser then takes a file as the type it is served
///   as, and refuses to run one of another type as a script or style
///   sheet.
/// * A `..` segment is refused even when the path stays in the root
///   (`sub/../a.txt`; Tornado's `os.path.abspath` resolves it as written
///   and serves `a.txt`): as written and on the disk, `link/..` are two
///   directories. Clients remove dot segments before sending (RFC 3986
///   §5.2.4), so only a hand-made request meets this.
/// * A file named with a final `/` (`a.txt/`) is a 404, as the file
///   system says (Tornado's `abspath` drops the `/` and serves the file,
///   whose relative links then resolve under `a.txt/`).
/// * A backslash is refused (a separator on Windows; Tornado on POSIX
///   serves a file named `a\b.txt`), a NUL too (Tornado: 500), and a file
///   that cannot be opened is a 403 for `GET` and `HEAD` alike (Tornado:
///   500 for `GET`, and a `HEAD` answered 200 without opening it).
/// * `If-Modified-Since` is read in the three HTTP-date forms only, and
///   any other value ignored, as RFC 9110 §13.1.3 requires (Tornado's
///   `email.utils` also reads `+0000`, `-0100` or `UTC` for the zone and
///   a date without a weekday, and answers 304 to them).
/// * `Range`'s unit is compared without case (`Bytes=0-0`, RFC 9110
///   §14.1; Tornado ignores it), and its numbers are digits only: Python's
///   `int` reads `+1`, ` 1 ` and `1_0`, so Tornado answers `bytes=+1-2`
///   with a 206 and `bytes=1--2` with a 416 where cyclone sends the whole
///   file (RFC 9110 §14.2: an invalid range is ignored).
/// * A file over 64 MiB gets its `ETag` as any other (modification time
///   and size: nothing is read for it). Tornado 6.6 sends none for it: its
///   tag is the content's version, which it does not compute for a file
///   over `MAX_VERSION_CONTENT_SIZE` (logging an error instead), so such a
///   file is revalidated by its date alone there, and an `If-None-Match`
///   never gets a 304.
/// * A method other than `GET` and `HEAD` is answered 405 with `Allow:
///   GET, HEAD`, as every handler's 405 ([`RequestHandler`]'s methods;
///   RFC 9110 §15.5.6 requires the header); Tornado sends no `Allow`.
/// * An absolute path under the root is served however many `/` begin it
///   (`/static///srv/static/app.js`, the capture `//srv/static/app.js`).
///   Tornado serves it with one `/` or three and more, and refuses it with
///   exactly two (403) only because POSIX lets `os.path.abspath` keep a
///   leading `//`, which then does not begin with the root: the file is
///   inside the root either way.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: Rc<Path>,
    /// Tornado's `default_filename`: served for a directory.
    default_filename: Option<Rc<str>>,
}

/// The content type served for a file name (by extension, case-insensitive):
/// the common web types, named as Tornado's `mimetypes.guess_type` names
/// them, text types without a `charset` as there (the file's encoding is
/// not known here, and a header `charset` would override the one the file
/// declares); `application/octet-stream` for any other extension. Two
/// names are nginx's rather than Python's: `.ico` is `image/x-icon`
/// (Python: `image/vnd.microsoft.icon`) and a source map `.map` is
/// `application/json` (Python: none, so `application/octet-stream`).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "md" => "text/markdown",
        "json" | "map" => "application/json",
        "jsonld" => "application/ld+json",
        "webmanifest" => "application/manifest+json",
        "xml" => "application/xml",
        "xhtml" => "application/xhtml+xml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "apng" => "image/apng",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mpeg" | "mpg" => "video/mpeg",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/x-wav",
        "flac" => "audio/flac",
        "aac" => "audio/aac",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "otf" => "font/otf",
        "ttf" => "font/ttf",
        "zip" => "application/zip",
        // Tornado's answer for any gzip-encoded name (`a.tar.gz` too).
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// Why a requested path is not served, as Tornado 6.6's
/// `validate_absolute_path` says it: its status, and the reason of its
/// `HTTPError`, written out only for a refusal ([`message`](Self::message)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// 404: nothing there.
    NotFound,
    /// 403 without a reason: permission denied.
    Denied,
    /// 403: `"%s is not in root static directory"`, the path leading out
    /// of the root as written or through a symlink (and the `\\` and NUL
    /// that could).
    Outside,
    /// 403: `"%s is not a file"`: a directory, a device, a FIFO...
    NotAFile,
    /// 403: `"cannot redirect path with two initial slashes"`: a
    /// directory's `/` redirect that would leave the host.
    TwoSlashes,
}

impl Refused {
    fn status(self) -> u16 {
        match self {
            Refused::NotFound => 404,
            _ => 403,
        }
    }

    /// Tornado's message for the request of `rel` (its `self.path`).
    fn message(self, rel: &str) -> Option<String> {
        match self {
            Refused::NotFound | Refused::Denied => None,
            Refused::Outside => Some(format!("{rel} is not in root static directory")),
            Refused::NotAFile => Some(format!("{rel} is not a file")),
            Refused::TwoSlashes => Some("cannot redirect path with two initial slashes".into()),
        }
    }
}

/// The regular file `rel` names under `root`, or why it is not served.
fn resolve(root: &Path, rel: &str) -> Result<PathBuf, Refused> {
    if rel.is_empty() {
        return Err(Refused::NotAFile);
    }
    let full = resolve_any(root, rel)?;
    if !full.is_file() {
        return Err(Refused::NotAFile);
    }
    Ok(full)
}

/// [`resolve`] for a file or a directory (`""` is the root itself). An
/// absolute `rel` is taken as the part of it after the root, if it lies
/// inside the root as written ([`absolute_in_root`]).
fn resolve_any(root: &Path, rel: &str) -> Result<PathBuf, Refused> {
    if rel.contains(['\\', '\0']) {
        return Err(Refused::Outside);
    }
    let rel = if rel.starts_with('/') {
        absolute_in_root(root, rel).ok_or(Refused::Outside)?
    } else {
        rel
    };
    if rel.starts_with('/') {
        return Err(Refused::Outside);
    }
    let rel_path = Path::new(rel);
    if rel_path.is_absolute()
        || rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        || rel.split('/').any(|seg| seg == "..")
    {
        return Err(Refused::Outside);
    }
    let not_found = |e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied => Refused::Denied,
        _ => Refused::NotFound,
    };
    let root = root.canonicalize().map_err(|e| {
        log::error!("static root {} unusable: {e}", root.display());
        Refused::NotFound
    })?;
    let full = root.join(rel_path).canonicalize().map_err(not_found)?;
    if !full.starts_with(&root) {
        return Err(Refused::Outside);
    }
    Ok(full)
}

/// A field of an HTTP date: 1 to `max_digits` ASCII digits (no sign, so
/// the arithmetic below cannot overflow).
fn date_number(s: &str, max_digits: usize) -> Option<i64> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an HTTP-date to Unix seconds: the IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete forms a
/// recipient MUST accept (RFC 9110 §5.6.7; Tornado's `email.utils.parsedate`
/// reads them too), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`); `None` for anything else.
fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut it = s.split_ascii_whitespace();
    let weekday = it.next()?;
    let (day, month_name, year, hms) = if weekday.ends_with(',') {
        let second = it.next()?;
        let date = match second.split_once('-') {
            // RFC 850: a two-digit year, 1970 to 2069 (as Python reads it).
            Some((d, rest)) => {
                let (m, y) = rest.split_once('-')?;
                let y = if y.len() == 2 {
                    date_number(y, 2)?
                } else {
                    return None;
                };
                (
                    date_number(d, 2)?,
                    m,
                    if y < 70 { 2000 + y } else { 1900 + y },
                    it.next()?,
                )
            }
            None => (
                date_number(second, 2)?,
                it.next()?,
                date_number(it.next()?, 4)?,
                it.next()?,
            ),
        };
        if it.next()? != "GMT" {
            return None;
        }
        date
    } else {
        // asctime: no comma, no zone, the year last.
        let m = it.next()?;
        let d = date_number(it.next()?, 2)?;
        let hms = it.next()?;
        (d, m, date_number(it.next()?, 4)?, hms)
    };
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let mut hms = hms.split(':').map(|p| date_number(p, 2));
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || it.next().is_some()
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + sec).ok()
}

impl StaticFiles {
    /// Serves files under `root` (which need not exist yet: it is
    /// canonicalized on each request).
    pub fn new(root: impl Into<PathBuf>) -> StaticFiles {
        StaticFiles {
            root: root.into().into(),
            default_filename: None,
        }
    }

    /// Serves `name` (such as `index.html`) for a request naming a
    /// directory, as Tornado's `StaticFileHandler(default_filename=)`: a
    /// path ending in `/` (or the route's empty capture) gets the
    /// directory's `name`, and a directory path without the final `/` is
    /// redirected (301) to the same path with it, so relative links in
    /// the page resolve. A path beginning with `//` is refused (403)
    /// rather than redirected (it would be a protocol-relative URL).
    ///
    /// ```
    /// use cyclone::web::{Application, StaticFiles};
    ///
    /// let site = StaticFiles::new("public").with_default_filename("index.html");
    /// let app = Application::builder()
    ///     .route("/(.*)", move || site.clone())
    ///     .build();
    /// # let _ = app;
    /// ```
    pub fn with_default_filename(mut self, name: impl Into<String>) -> StaticFiles {
        self.default_filename = Some(name.into().into());
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The version of the file `rel` (relative to the root, as the route
    /// capture is): the lowercase hex SHA-1 of its content, 40 characters
    /// (Tornado 6.6's `get_content_version` is a SHA-512; cyclone already
    /// carries SHA-1 for the WebSocket handshake, and the version only
    /// has to change with the content). `None`, logged at `error`
    /// (Tornado's "Could not open static file"), when the path is refused
    /// as a request for it would be (`..`, outside the root),
    /// the file cannot be read, or it is over 64 MiB (Tornado 6.6's
    /// `MAX_VERSION_CONTENT_SIZE`: the hash is made on the loop).
    ///
    /// The file is read whole, in 64 KiB pieces, on every call: nothing is
    /// cached here ([`RequestContext::static_url`] caches per application).
    pub fn version(&self, rel: &str) -> Option<String> {
        file_version(&self.root, rel)
    }

    /// The file `rel` names: with a default filename, a directory's (or
    /// `None` once a redirect to the directory's `/` path was sent).
    fn locate(&self, cx: &mut RequestContext<'_>, rel: &str) -> Result<Option<PathBuf>, Refused> {
        let Some(index) = self.default_filename.as_deref() else {
            return resolve(&self.root, rel).map(Some);
        };
        let found = resolve_any(&self.root, rel)?;
        if !found.is_dir() {
            return if found.is_file() {
                Ok(Some(found))
            } else {
                Err(Refused::NotAFile)
            };
        }
        let path = cx.request().path();
        if !path.ends_with('/') {
            // `//example.com` (or `/\example.com`) would send the
            // browser to another host.
            if super::context::is_protocol_relative(path) {
                return Err(Refused::TwoSlashes);
            }
            let to = format!("{path}/");
            cx.redirect(&to, true);
            return Ok(None);
        }
        // Checked as a request for it would be: a default file that is a
        // symlink out of the root is refused too.
        let sep = if rel.is_empty() || rel.ends_with('/') {
            ""
        } else {
            "/"
        };
        match resolve_any(&self.root, &format!("{rel}{sep}{index}")) {
            Ok(file) if file.is_file() => Ok(Some(file)),
            Ok(_) => Err(Refused::NotAFile),
            Err(refused) => Err(refused),
        }
    }

    fn serve(&self, cx: &mut RequestContext<'_>, rel: &str) {
        let path = match self.locate(cx, rel) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            // Tornado's `HTTPError(403, why)`: `why` logged at `warn`, and
            // in the page with `debug`.
            Err(refused) => {
                return match refused.message(rel) {
                    Some(why) => cx.refuse(refused.status(), &why),
                    None => {
                        let status = refused.status();
                        log::debug!("static {rel:?} under {}: {status}", self.root.display());
                        cx.send_error(status)
                    }
                };
            }
        };
        let (meta, file) = match open_regular(&path) {
            Ok(o) => o,
            Err(e) => return Self::unreadable(cx, &path, &e),
        };
        let size = meta.len();
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let req = cx.request();
        cx.set_header("Accept-Ranges", "bytes");
        if let Some(mtime) = modified {
            // A time ahead of the clock is replaced by the message's date
            // (RFC 9110 §8.8.2.1); the comparisons below keep the file's.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            cx.set_header("Last-Modified", http_date(mtime.as_secs().min(now)));
        }
        // nginx's shape: the modification time and the size, so no read of
        // the file is needed to answer a revalidation.
        let etag = format!("\"{:x}-{size:x}\"", modified.map_or(0, |d| d.as_nanos()));
        cx.set_header("ETag", &etag);
        // Tornado's get_cache_time: ten years for a versioned URL, set
        // before the 304 and range decisions so every answer carries it.
        if qs_values(req.query(), "v").next().is_some() {
            cx.set_header("Cache-Control", format!("max-age={CACHE_MAX_AGE}"));
            let expires = SystemTime::now() + Duration::from_secs(CACHE_MAX_AGE);
            let secs = expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            cx.set_header("Expires", http_date(secs));
        }
        // If-Match, else If-Unmodified-Since (RFC 9110 §13.2.2 steps 1
        // and 2): the client holds (part of) a version and wants nothing
        // of another; either failing is a 412, before If-None-Match and
        // Range are looked at.
        let mut if_match = req.header_all("if-match").peekable();
        let unchanged = if if_match.peek().is_some() {
            if_match.any(|tags| {
                std::str::from_utf8(tags).is_ok_and(|t| etag_matches_strongly(t, &etag))
            })
        } else {
            let since = req.header("if-unmodified-since").and_then(parse_http_date);
            since.is_none_or(|s| modified.is_none_or(|m| m.as_secs() <= s))
        };
        if !unchanged {
            return cx.send_error(412);
        }
        // A non-empty If-None-Match decides (RFC 9110 §13.2.2), read as
        // Tornado's check_etag_header (the generic one's reading: its
        // field lines joined, weak comparison, a `*` only first); an empty
        // one is as none, as in Tornado's should_return_304.
        let fresh = match req
            .header_joined("If-None-Match")
            .filter(|tags| !tags.trim().is_empty())
        {
            Some(tags) => super::context::if_none_match(&tags, &etag),
            None => {
                let since = req.header("if-modified-since").and_then(parse_http_date);
                modified.is_some_and(|m| since.is_some_and(|s| m.as_secs() <= s))
            }
        };
        if fresh {
            // The tag the 200 to this request would carry (RFC 9110
            // §15.4.5): the weak one of the gzipped file, below, when it
            // would be gzipped, or a cache could not freshen it (RFC 9111
            // §4.3.4).
            if req.method() == "GET"
                && size > 0
                && super::context::would_gzip(cx.settings(), req, content_type(&path), usize::MAX)
            {
                cx.set_header("ETag", format!("W/{etag}"));
            }
            cx.clear_header("Content-Type");
            return cx.set_status(304);
        }
        // If-Range (RFC 9110 §13.1.5): the range only while the client's
        // validator is current (the ETag compared strongly, or the
        // Last-Modified date, as nginx); else the whole file.
        let validator_current = req.header("if-range").is_none_or(|v| {
            let v = v.trim();
            if v.starts_with('"') {
                v == etag
            } else {
                modified.is_some_and(|m| parse_http_date(v) == Some(m.as_secs()))
            }
        });
        let range = req
            .header("range")
            .filter(|_| validator_current)
            .and_then(|r| parse_range(r, size));
        let (start, len) = match range {
            Some(Ok((first, last))) if last - first + 1 < size => {
                cx.set_status(206);
                cx.set_header("Content-Range", format!("bytes {first}-{last}/{size}"));
                (first, last - first + 1)
            }
            Some(Err(Unsatisfiable)) => {
                cx.set_status(416);
                cx.set_header("Content-Type", "text/plain");
                cx.set_header("Content-Range", format!("bytes */{size}"));
                return;
            }
            // No range, one that covers the whole file (200, as Tornado),
            // or one that is ignored (malformed, several ranges).
            _ => (0, size),
        };
        let ctype = content_type(&path);
        cx.set_header("Content-Type", ctype);
        cx.set_header("X-Content-Type-Options", "nosniff");
        // With compress_response, a whole text file of 1 byte to
        // GZIP_MAX_FILE is read and sent gzipped, whatever its size: Tornado
        // gzips static files under the 1,024 bytes of its other answers too
        // (StaticFileHandler flushes, and a flushed answer is gzipped
        // whatever its length). Its ETag is weak then, as nginx makes it:
        // the bytes sent are another representation (a weak tag still
        // answers If-None-Match, never If-Range).
        let whole = (start, len) == (0, size) && req.method() == "GET";
        let small = usize::try_from(size).is_ok_and(|n| (1..=GZIP_MAX_FILE).contains(&n));
        let gzipped =
            whole && size > 0 && super::context::would_gzip(cx.settings(), req, ctype, usize::MAX);
        if gzipped && !small {
            // Larger: one gzip stream, sync-flushed per piece as the
            // client takes them (Tornado streams it the same way).
            cx.set_header("ETag", format!("W/{etag}"));
            return Self::stream_gzipped(cx, file, size, path);
        }
        if gzipped {
            let mut bytes = Vec::with_capacity(size as usize);
            if let Err(e) = io::Read::read_to_end(&mut io::Read::take(&file, size), &mut bytes) {
                return Self::unreadable(cx, &path, &e);
            }
            cx.set_header("ETag", format!("W/{etag}"));
            if let Some(zipped) = super::context::gzip(&bytes) {
                cx.set_header("Content-Encoding", "gzip");
                return cx.write(zipped);
            }
            return cx.write(bytes);
        }
        cx.write_file(file, start, len);
    }

    /// Sends `size` bytes of `file` through the answer's gzip stream
    /// ([`AsyncResponse::flush`](super::AsyncResponse::flush) under
    /// `compress_response`), [`GZIP_PIECE`] bytes a time, each once the
    /// kernel took the one before. A file that fails or ends early cuts
    /// the answer.
    fn stream_gzipped(
        cx: &mut RequestContext<'_>,
        mut file: std::fs::File,
        size: u64,
        path: PathBuf,
    ) {
        let later = cx.asynchronous();
        crate::ioloop::spawn(async move {
            let mut left = size;
            let mut piece = vec![0u8; GZIP_PIECE];
            while left > 0 {
                if later.is_closed() {
                    return;
                }
                let want = piece.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                match file.read(&mut piece[..want]) {
                    Ok(0) => {
                        log::warn!(
                            "static {}: the file ended {left} bytes early",
                            path.display()
                        );
                        return later.abort();
                    }
                    Ok(n) => {
                        left -= n as u64;
                        later.write(&piece[..n]);
                        later.flush();
                        later.flushed().await;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::warn!("static {}: {e}", path.display());
                        return later.abort();
                    }
                }
            }
            later.finish();
        });
    }

    fn unreadable(cx: &mut RequestContext<'_>, path: &Path, e: &io::Error) {
        log::warn!("static {}: {e}", path.display());
        cx.clear_header("Content-Range");
        cx.send_error(if e.kind() == io::ErrorKind::PermissionDenied {
            403
        } else {
            404
        });
    }
}

/// `rel` as a URL path: bytes other than letters, digits, `/` and
/// `-._~!$()*+,;=:@` are percent-encoded (`%`, `?`, `#`, spaces, quotes,
/// `&`, non-ASCII), so the static route's capture decodes back to `rel`.
pub(super) fn url_path_escape(rel: &str) -> std::borrow::Cow<'_, str> {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"/-._~!$()*+,;=:@".contains(&b);
    if rel.bytes().all(keep) {
        return rel.into();
    }
    let mut out = String::with_capacity(rel.len() + 8);
    for b in rel.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.into()
}

/// Why [`RequestContext::static_url`] gives no URL: `path` leads out of
/// `static_path` as written (`../x.css`, `/x.css`), so the file it names
/// is not the application's to link. Tornado 6.6's `static_url` raises
/// `HTTPError(403, "%s is not in root static directory")` there; a handler
/// answers [`status`](Self::status) (`cx.send_error(e.status())`), and a
/// template's `{{ static_url(..) }}` fails its render with
/// [`TemplateError::Http`](super::TemplateError::Http), which
/// `RequestContext::render` answers 403, as Tornado does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticUrlError {
    path: String,
}

impl StaticUrlError {
    pub(crate) fn outside(path: &str) -> StaticUrlError {
        StaticUrlError {
            path: path.to_string(),
        }
    }

    /// The path `static_url` was given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The status Tornado answers: 403.
    pub fn status(&self) -> u16 {
        403
    }
}

impl std::fmt::Display for StaticUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not in root static directory", self.path)
    }
}

impl std::error::Error for StaticUrlError {}

/// A template's or a UI module's `static_url` failing: the page answers
/// [`status`](StaticUrlError::status), as Tornado's `HTTPError` does.
impl From<StaticUrlError> for super::TemplateError {
    fn from(e: StaticUrlError) -> Self {
        super::TemplateError::Http {
            status: e.status(),
            message: e.to_string().into(),
        }
    }
}

/// Whether `rel` leads out of `root` as written: Tornado's
/// `get_absolute_path` check, `os.path.abspath(os.path.join(root, rel))`
/// outside `os.path.abspath(root)`. Lexical, as there: `..` and `.` are
/// taken as written and symlinks are not followed (`js/../app.css` stays
/// in, `../x.css` and `/x.css` are out; an absolute path replaces the
/// root). Touches no disk, and allocates only for a path with a `..`
/// segment or a leading `/`.
pub(super) fn outside_root(root: &Path, rel: &str) -> bool {
    if !rel.starts_with('/') && !rel.split('/').any(|seg| seg == "..") {
        return false;
    }
    let base = absolute(root);
    !lexical(&base.join(rel)).starts_with(lexical(&base))
}

/// `path` made absolute against the current directory, as written
/// (Python's `os.path.join(os.getcwd(), path)`).
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(dir) => dir.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// `p` with its `.` and `..` components removed as written, symlinks not
/// followed (`os.path.normpath`; above `/` is `/`, as for `abspath`).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The part of the absolute path `abs` after `root` (made absolute and
/// without `.` and `..`, as Tornado's `_check_in_root` takes it), without
/// leading `/`: `/srv/static/css/app.js` under the root `/srv/static` is
/// `css/app.js`, the root itself is `""`. `None` when `abs` does not lie
/// under the root as written (a `..` in `abs` is not resolved here: it
/// is left to the caller, which refuses it). What lets
/// [`RequestContext::static_url`] version an absolute path inside
/// `static_path`, and [`StaticFiles`] serve the URL it makes of it
/// (`/static//srv/static/app.js`), as Tornado's `os.path.join(root,
/// path)` does with such a path.
pub(super) fn absolute_in_root<'a>(root: &Path, abs: &'a str) -> Option<&'a str> {
    let rest = Path::new(abs).strip_prefix(lexical(&absolute(root))).ok()?;
    Some(rest.to_str()?.trim_start_matches('/'))
}

/// The path relative to `static_path` that the request for the static
/// URL `prefix` + `rel` names: `.` and `..` segments are removed as a
/// client resolves a URL's path before sending it (RFC 3986 §5.2.4, what
/// browsers and most HTTP clients do), so with the prefix `/static/`,
/// `css/../app.js` is requested as `/static/app.js` (`app.js`) and
/// `css/..` as `/static/` (`""`, the root). An empty segment counts as
/// one (`css//../app.js` is `css/app.js`), where Tornado's
/// `os.path.abspath` drops it first. `None` when the request leaves the
/// prefix (`../assets/x.css` from `/static/` is `/assets/x.css`): it is
/// not one for a static file. Allocates only for a path with a `.` or
/// `..` segment.
pub(super) fn requested_path<'a>(prefix: &str, rel: &'a str) -> Option<Cow<'a, str>> {
    if !rel.split('/').any(|seg| seg == "." || seg == "..") {
        return Some(rel.into());
    }
    let base = remove_dot_segments(prefix);
    let full = remove_dot_segments(&format!("{prefix}{rel}"));
    full.strip_prefix(&*base).map(|r| r.to_string().into())
}

/// RFC 3986 §5.2.4 on `path`, taken segment by segment (a final `.` or
/// `..` leaves a directory: the result then ends in `/`).
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                // Never above the root (a leading `/` is an empty first
                // segment, kept).
                if out.len() > 1 || out.first().is_some_and(|s| !s.is_empty()) {
                    out.pop();
                }
            }
            seg => {
                out.push(seg);
                continue;
            }
        }
        if i + 1 == segments.len() {
            out.push("");
        }
    }
    out.join("/")
}

/// The hex SHA-1 of the content of `rel` under `root` (see
/// [`StaticFiles::version`]); `None`, logged at `error`, when `rel` is
/// refused by [`resolve`] or the file cannot be read.
pub(super) fn file_version(root: &Path, rel: &str) -> Option<String> {
    let hashed = resolve(root, rel)
        .map_err(|refused| {
            refused.message(rel).unwrap_or_else(|| match refused {
                Refused::NotFound => "not found".to_string(),
                _ => "permission denied".to_string(),
            })
        })
        .and_then(|path| hash_file(&path).map_err(|e| e.to_string()));
    match hashed {
        Ok(hex) => Some(hex),
        Err(why) => {
            log::error!(
                "Could not open static file {rel:?} under {}: {why}",
                root.display()
            );
            None
        }
    }
}

/// The lowercase hex SHA-1 of the file at `path`, read in 64 KiB pieces;
/// an error for one over [`MAX_VERSION_CONTENT_SIZE`] (by its size, or
/// once more than that was read of a file that grew), which is not read.
fn hash_file(path: &Path) -> io::Result<String> {
    let (meta, mut file) = open_regular(path)?;
    let too_large = || {
        io::Error::other(format!(
            "content is larger than MAX_VERSION_CONTENT_SIZE ({MAX_VERSION_CONTENT_SIZE} bytes)"
        ))
    };
    if meta.len() > MAX_VERSION_CONTENT_SIZE {
        return Err(too_large());
    }
    let mut sha = sha1_smol::Sha1::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(sha.digest().to_string()),
            Ok(n) => {
                read += n as u64;
                if read > MAX_VERSION_CONTENT_SIZE {
                    return Err(too_large());
                }
                sha.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Opens `path` and checks, on what was opened, that it is a regular file:
/// `resolve` looked at the path before, and a FIFO put in its place
/// meanwhile would block the loop in `open` (hence `O_NONBLOCK`, which
/// regular files ignore) and then in every read. Anything else is
/// `PermissionDenied` (403, as `resolve` answers).
fn open_regular(path: &Path) -> io::Result<(std::fs::Metadata, std::fs::File)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOCTTY,
    );
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a regular file",
        ));
    }
    Ok((meta, file))
}

/// Whether an `If-Match` list names `etag` (or is `*`), by the strong
/// comparison RFC 9110 §13.1.1 prescribes for it: a weak tag never matches.
fn etag_matches_strongly(tags: &str, etag: &str) -> bool {
    tags.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag)
}

/// A `Range` no byte of the file satisfies: 416.
#[derive(Debug, PartialEq)]
struct Unsatisfiable;

/// The first and last byte (inclusive) a `Range: bytes=…` header asks of a
/// file of `size` bytes (RFC 9110 §14.1.2): `a-b`, `a-` or the suffix
/// `-n`. `None` ignores the header, as §14.2 allows, and the whole file is
/// served: another unit, a malformed spec, and several ranges (as Tornado).
fn parse_range(value: &str, size: u64) -> Option<Result<(u64, u64), Unsatisfiable>> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    // Digits only; a number past u64 is just "very large".
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| {
            s.bytes().fold(0u64, |n, b| {
                n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            })
        })
    };
    match (first, last) {
        ("", suffix) => {
            let n = number(suffix)?;
            if n == 0 || size == 0 {
                return Some(Err(Unsatisfiable));
            }
            Some(Ok((size.saturating_sub(n), size - 1)))
        }
        (first, last) => {
            let first = number(first)?;
            let last = if last.is_empty() {
                u64::MAX
            } else {
                number(last)?
            };
            // `5-2` (RFC 9110 §14.1.1: invalid) is answered 416, as
            // Tornado answers it.
            if last < first {
                return Some(Err(Unsatisfiable));
            }
            if first >= size {
                return Some(Err(Unsatisfiable));
            }
            Some(Ok((first, last.min(size - 1))))
        }
    }
}

impl RequestHandler for StaticFiles {
    fn get(&mut self, cx: &mut RequestContext<'_>, args: &[&str]) {
        self.serve(cx, args.first().copied().unwrap_or(""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| parse_range(v, 11);
        assert_eq!(r("bytes=2-5"), Some(Ok((2, 5))));
        assert_eq!(r("bytes=7-"), Some(Ok((7, 10))));
        assert_eq!(r("bytes=-4"), Some(Ok((7, 10))));
        assert_eq!(r("bytes=-400"), Some(Ok((0, 10))));
        assert_eq!(r("bytes=3-99999999999999999999999"), Some(Ok((3, 10))));
        assert_eq!(r("Bytes = 0-0"), Some(Ok((0, 0))));
        assert_eq!(r("bytes=10-10"), Some(Ok((10, 10))));
        assert_eq!(r("bytes=11-"), Some(Err(Unsatisfiable)));
        assert_eq!(
            r("bytes=99999999999999999999999-"),
            Some(Err(Unsatisfiable))
        );
        assert_eq!(r("bytes=-0"), Some(Err(Unsatisfiable)));
        assert_eq!(parse_range("bytes=-1", 0), Some(Err(Unsatisfiable)));
        assert_eq!(parse_range("bytes=0-", 0), Some(Err(Unsatisfiable)));
        assert_eq!(r("bytes=5-2"), Some(Err(Unsatisfiable)));
        for ignored in [
            "bytes=1-2,4-5",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes 0-1",
        ] {
            assert_eq!(r(ignored), None, "{ignored}");
        }
    }

    /// A FIFO (put where a file was, after `resolve` looked) is refused
    /// at once, not waited on for a writer.
    #[cfg(unix)]
    #[test]
    fn open_regular_refuses_a_fifo_without_blocking() {
        let dir = std::env::temp_dir().join(format!("cyclone-fifo-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let fifo = dir.join("pipe");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo (coreutils) failed");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(open_regular(&path).map(|_| ()).map_err(|e| e.kind()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(5));
        // Unblock a blocked open (if any) so the thread ends.
        if got.is_err() {
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got, Ok(Err(io::ErrorKind::PermissionDenied)));
        let file = dir.with_extension("txt");
        std::fs::write(&file, "x").unwrap();
        let ok = open_regular(&file).map(|(m, _)| m.len());
        let _ = std::fs::remove_file(&file);
        assert_eq!(ok.ok(), Some(1));
    }

    /// The static files' tags through the generic `If-None-Match` reading.
    #[test]
    fn if_none_match_lists() {
        let tag = "\"abc-b\"";
        let matches = super::super::context::if_none_match;
        assert!(matches("\"abc-b\"", tag));
        assert!(matches("W/\"abc-b\"", tag));
        assert!(matches("\"x\", \"abc-b\"", tag));
        assert!(matches("*", tag));
        assert!(!matches("\"x\", *", tag));
        assert!(!matches("\"abc\"", tag));
        assert!(!matches("abc-b", tag));
    }
    use std::time::SystemTime;

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    #[test]
    fn http_dates_round_trip() {
        for t in [0, 784_111_777, 951_782_400, now_secs()] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
        }
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        for odd in [
            "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
            "Sun, 06 Nov -1994 08:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 08:-4:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(parse_http_date(odd), None, "{odd}");
        }
    }

    #[test]
    fn content_types() {
        for (name, ct) in [
            ("a.HTML", "text/html"),
            ("a.htm", "text/html"),
            ("a.css", "text/css"),
            ("a.js", "text/javascript"),
            ("a.mjs", "text/javascript"),
            ("a.json", "application/json"),
            ("a.js.map", "application/json"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.svg", "image/svg+xml"),
            ("a.ico", "image/x-icon"),
            ("a.txt", "text/plain"),
            ("a.wasm", "application/wasm"),
            ("a.woff", "font/woff"),
            ("a.woff2", "font/woff2"),
            ("a.bin", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), ct, "{name}");
        }
    }

    /// Common web types Tornado names (its `mimetypes.guess_type`, with
    /// `application/gzip` for any `.gz`) were served as
    /// `application/octet-stream`, which with `nosniff` makes a browser
    /// download a PDF or an XML page instead of showing it.
    #[test]
    fn common_web_types_are_named_as_tornado_names_them() {
        for (name, ct) in [
            ("a.xml", "application/xml"),
            ("a.xhtml", "application/xhtml+xml"),
            ("a.pdf", "application/pdf"),
            ("a.csv", "text/csv"),
            ("a.md", "text/markdown"),
            ("a.webp", "image/webp"),
            ("a.avif", "image/avif"),
            ("a.apng", "image/apng"),
            ("a.bmp", "image/bmp"),
            ("a.tif", "image/tiff"),
            ("a.tiff", "image/tiff"),
            ("a.mp4", "video/mp4"),
            ("a.m4v", "video/mp4"),
            ("a.webm", "video/webm"),
            ("a.ogv", "video/ogg"),
            ("a.mpeg", "video/mpeg"),
            ("a.mpg", "video/mpeg"),
            ("a.mov", "video/quicktime"),
            ("a.mp3", "audio/mpeg"),
            ("a.m4a", "audio/mp4"),
            ("a.ogg", "audio/ogg"),
            ("a.oga", "audio/ogg"),
            ("a.wav", "audio/x-wav"),
            ("a.flac", "audio/flac"),
            ("a.aac", "audio/aac"),
            ("a.otf", "font/otf"),
            ("a.ttf", "font/ttf"),
            ("a.zip", "application/zip"),
            ("a.gz", "application/gzip"),
            ("a.tar.gz", "application/gzip"),
            ("a.tar", "application/x-tar"),
            ("site.webmanifest", "application/manifest+json"),
            ("a.jsonld", "application/ld+json"),
        ] {
            assert_eq!(content_type(Path::new(name)), ct, "{name}");
        }
    }

    #[test]
    fn resolve_refuses_before_touching_the_disk() {
        let root = Path::new("/nonexistent-root");
        for rel in [
            "",
            "../x",
            "a/../../x",
            "..",
            "/etc/passwd",
            "a\\..\\b",
            "a\0b",
        ] {
            assert_eq!(
                resolve(root, rel).map_err(Refused::status),
                Err(403),
                "{rel:?}"
            );
        }
        assert_eq!(resolve(root, "ok.txt"), Err(Refused::NotFound));
    }

    /// RFC 3986 §5.2.4's examples, and the same after a prefix.
    #[test]
    fn requested_path_removes_dot_segments_as_a_client_does() {
        for (path, removed) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("mid/content=5/../6", "mid/6"),
            ("/static/css//../app.js", "/static/css/app.js"),
            ("/static/css/..", "/static/"),
            ("/static/css/.", "/static/css/"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("https://cdn.example/s/../a.js", "https://cdn.example/a.js"),
        ] {
            assert_eq!(remove_dot_segments(path), removed, "{path:?}");
        }
        for (prefix, rel, requested) in [
            ("/static/", "app.js", Some("app.js")),
            ("/static/", "css/../app.js", Some("app.js")),
            ("/static/", "./app.js", Some("app.js")),
            ("/static/", "a/./b/../c", Some("a/c")),
            ("/static/", "css//../app.js", Some("css/app.js")),
            ("/static/", "css/..", Some("")),
            ("/static/", "css/.", Some("css/")),
            ("/static/", "a.b/..c/.d", Some("a.b/..c/.d")),
            ("/static/", "../static/ok.txt", Some("ok.txt")),
            ("/assets/", "../static/ok.txt", None),
            ("/static/", "..", None),
            ("https://cdn.example/s/", "x/../a.js", Some("a.js")),
        ] {
            assert_eq!(
                requested_path(prefix, rel).as_deref(),
                requested,
                "{prefix:?} {rel:?}"
            );
        }
        assert!(matches!(
            requested_path("/static/", "css/app.js"),
            Some(Cow::Borrowed(_))
        ));
    }
}
