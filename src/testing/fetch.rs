//! [`Fetch`]: a request to a [`TestServer`], with Tornado's `fetch`
//! keyword arguments (`method`, `headers`, `body`, `follow_redirects`,
//! `max_redirects`) as builder methods.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{TestResponse, TestServer, WAIT};

/// Redirects followed unless told otherwise (Tornado's `max_redirects`).
const MAX_REDIRECTS: u32 = 5;

/// A request to a [`TestServer`], made by
/// [`TestServer::request`] and sent by [`send`](Fetch::send).
#[must_use = "a Fetch sends nothing until `send`"]
pub struct Fetch<'s> {
    server: &'s TestServer,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    max_redirects: u32,
}

impl<'s> Fetch<'s> {
    pub(super) fn new(server: &'s TestServer, method: &str, path: &str) -> Fetch<'s> {
        Fetch {
            server,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            max_redirects: MAX_REDIRECTS,
        }
    }

    /// One more header line. `Host`, `Connection: close` and (with a body,
    /// or for `POST`, `PUT` and `PATCH`) `Content-Length` are written for
    /// you; a `Host` or `Connection` given here replaces yours.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request's body.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// Whether a 301, 302, 303, 307 or 308 with a `Location` on this
    /// server is followed (Tornado's `follow_redirects`; yes, up to five,
    /// unless told otherwise). Not followed, it is the response.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.max_redirects = if follow { MAX_REDIRECTS } else { 0 };
        self
    }

    /// How many redirects are followed at most (Tornado's
    /// `max_redirects`): the response after the last one is returned as
    /// it is, a redirect or not.
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Sends the request (and, following redirects, the ones they ask
    /// for) and returns the last response, whatever its status.
    ///
    /// Followed as Tornado's client does: a 303 (but for `HEAD`), and a
    /// 301 or 302 answering a `POST`, turn the request into a `GET`
    /// without its body or the headers that described it
    /// (`Content-Length`, `Content-Type`, `Content-Encoding`,
    /// `Transfer-Encoding`); a 307 or 308 repeats it as it was. A
    /// `Location` that leaves this server (another host or port, another
    /// scheme) is not followed.
    ///
    /// # Errors
    /// What the socket returned (the server is gone, a read took over 10
    /// s), or `InvalidData` for a response that is not HTTP/1.x.
    pub fn send(mut self) -> io::Result<TestResponse> {
        loop {
            let mut response = self.once()?;
            response.effective_url = self.server.url(&self.path);
            if self.max_redirects == 0 || !matches!(response.code, 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let Some(next) = response
                .header("location")
                .and_then(|to| resolve(&self.path, to, self.server.scheme(), self.server.addr()))
            else {
                return Ok(response);
            };
            self.max_redirects -= 1;
            let code = response.code;
            if (code == 303 && self.method != "HEAD")
                || (matches!(code, 301 | 302) && self.method == "POST")
            {
                const DESCRIBED_THE_BODY: [&str; 4] = [
                    "content-length",
                    "content-type",
                    "content-encoding",
                    "transfer-encoding",
                ];
                self.method = "GET".to_owned();
                self.body.clear();
                self.headers
                    .retain(|(n, _)| !DESCRIBED_THE_BODY.iter().any(|d| n.eq_ignore_ascii_case(d)));
            }
            self.path = next;
        }
    }

    /// One request on its own connection, read to the end.
    fn once(&self) -> io::Result<TestResponse> {
        let given = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !given("host") {
            head.push_str(&format!("Host: {}\r\n", self.server.addr()));
        }
        if !given("connection") {
            head.push_str("Connection: close\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !given("content-length")
            && (!self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(&self.body);
        let raw = self.exchange(&wire)?;
        TestResponse::parse(&raw, self.method == "HEAD")
    }

    /// Sends `wire` on a new connection and reads to its end, over TLS
    /// for a server started with it.
    fn exchange(&self, wire: &[u8]) -> io::Result<Vec<u8>> {
        let mut tcp = TcpStream::connect(self.server.addr())?;
        tcp.set_read_timeout(Some(WAIT))?;
        let mut raw = Vec::new();
        match &self.server.tls {
            None => {
                tcp.write_all(wire)?;
                tcp.read_to_end(&mut raw)?;
            }
            #[cfg(feature = "tls")]
            Some(config) => {
                let ip = self.server.addr().ip();
                let name = rustls::pki_types::ServerName::IpAddress(ip.into());
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                tls.write_all(wire)?;
                match tls.read_to_end(&mut raw) {
                    // A server that ends without close_notify: what came
                    // is the response (its framing says whether whole).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                    other => {
                        other?;
                    }
                }
            }
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
        }
        Ok(raw)
    }
}

/// Where `location`, answered to a request for `current` (a path and
/// query), leads on the server at `addr` speaking `scheme`: a path and
/// query (its fragment dropped, its dot segments resolved as RFC 3986
/// §5.2.4 says), or `None` when it leads off this server.
fn resolve(current: &str, location: &str, scheme: &str, addr: SocketAddr) -> Option<String> {
    let location = location.split('#').next().unwrap_or_default().trim();
    let lower = location.to_ascii_lowercase();
    let prefix = format!("{scheme}://");
    let after_authority = if lower.starts_with(&prefix) {
        Some(&location[prefix.len()..])
    } else {
        location.strip_prefix("//")
    };
    if let Some(rest) = after_authority {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let ours = authority.eq_ignore_ascii_case(&addr.to_string())
            || authority.eq_ignore_ascii_case(&format!("localhost:{}", addr.port()));
        return ours.then(|| match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => without_dot_segments(&format!("/{p}")),
            p => without_dot_segments(p),
        });
    }
    let scheme = location
        .find(':')
        .is_some_and(|c| !location[..c].contains(['/', '?']));
    if scheme {
        // https:, mailto: and the like.
        return None;
    }
    let current_path = current.split('?').next().unwrap_or_default();
    Some(match location {
        "" => current.to_owned(),
        l if l.starts_with('/') => without_dot_segments(l),
        l if l.starts_with('?') => format!("{current_path}{l}"),
        l => {
            let dir = current_path.rfind('/').map_or("/", |i| &current_path[..=i]);
            without_dot_segments(&format!("{dir}{l}"))
        }
    })
}

/// `path_and_query` (starting with `/`) with its `.` and `..` segments
/// resolved (RFC 3986 §5.2.4); a `..` at the root stays there.
fn without_dot_segments(path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .find('?')
        .map_or((path_and_query, ""), |q| path_and_query.split_at(q));
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            // `/a/b/..` is the directory `/a/`.
            out.push("");
        }
    }
    format!("/{}{query}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_as_a_browser_would_on_this_server_only() {
        let addr: SocketAddr = "127.0.0.1:8888".parse().unwrap();
        let at = |current, location| resolve(current, location, "http", addr);
        let cases = [
            ("/a/b?q=1", "/page", Some("/page")),
            ("/a/b?q=1", "page", Some("/a/page")),
            ("/a/b", "../c?x=1#frag", Some("/c?x=1")),
            ("/a/b/", "./c", Some("/a/b/c")),
            ("/a/b/", "..", Some("/a/")),
            ("/a/b", "../../..", Some("/")),
            ("/a/b?q=1", "?q=2", Some("/a/b?q=2")),
            ("/a/b?q=1", "", Some("/a/b?q=1")),
            ("/", "/x/./y/../z", Some("/x/z")),
            ("/", "http://127.0.0.1:8888/there?y", Some("/there?y")),
            ("/", "HTTP://localhost:8888", Some("/")),
            ("/", "//127.0.0.1:8888?z", Some("/?z")),
            ("/", "http://127.0.0.1:9999/there", None),
            ("/", "http://example.com/", None),
            ("/", "//example.com/x", None),
            ("/", "https://127.0.0.1:8888/", None),
            ("/", "mailto:someone", None),
        ];
        assert_eq!(
            resolve("/", "https://127.0.0.1:8888/x", "https", addr).as_deref(),
            Some("/x")
        );
        assert_eq!(resolve("/", "http://127.0.0.1:8888/x", "https", addr), None);
        for (current, location, want) in cases {
            assert_eq!(
                at(current, location).as_deref(),
                want,
                "{current} + {location}"
            );
        }
    }
}
