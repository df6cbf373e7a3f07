//! The exporter's HTTP/1.1 client: one `POST` per batch over a plain
//! `std::net::TcpStream` (connect/read/write timeouts), `http://` only.
//! Every connection resolves the host once, checks every address against
//! security.md §8 (blocked ranges unless `security.ssrf.allow` lifts them),
//! connects to a checked address itself, sends no proxy headers and follows
//! no redirects. Runs only on the `otlp` thread, never on a reactor.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Response head bound (security.md §8.1 step 6).
const MAX_HEAD: usize = 16 * 1024;
/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// `tracing.otlp_endpoint`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host as configured (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `Host` header value (the original authority).
    pub authority: String,
    /// Request path: the endpoint's path + `/v1/traces` (kept when the path already ends so).
    pub path: String,
}

impl Endpoint {
    /// `http://host:port[/path]` (validated again at config load; this is the
    /// runtime view). Credentials, query and fragment are refused.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let lower = url.to_ascii_lowercase();
        if !lower.starts_with("http://") {
            return Err("only http:// endpoints are supported".into());
        }
        let rest = &url["http://".len()..];
        if rest.contains(['@', '?', '#']) || rest.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err("no credentials, query, fragment or spaces in the endpoint".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = authority.rsplit_once(':').ok_or("the port is required")?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or("invalid port")?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err("the host is required".into());
        }
        let base = path.trim_end_matches('/');
        let path = if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
        Ok(Endpoint { host: host.to_string(), port, authority: authority.to_string(), path })
    }
}

/// What came back.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<Duration>,
}

#[derive(Debug)]
pub enum PostError {
    /// DNS failed or returned nothing.
    Resolve(String),
    /// Every resolved address is blocked (security.md §8.2) and not allowed.
    Blocked(SocketAddr),
    Io(std::io::Error),
    /// The peer sent something that is not an HTTP/1.x response head.
    BadResponse,
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Resolve(e) => write!(f, "cannot resolve the endpoint: {e}"),
            PostError::Blocked(a) => write!(f, "{a} is in a blocked range; list it in security.ssrf.allow"),
            PostError::Io(e) => write!(f, "{e}"),
            PostError::BadResponse => f.write_str("malformed HTTP response"),
        }
    }
}

/// Resolve once and keep only addresses the SSRF rules permit; all of them
/// must pass (one blocked address refuses the host, security.md §8.1 step 3).
pub fn resolve(ep: &Endpoint, allow: &[String]) -> Result<Vec<SocketAddr>, PostError> {
    let addrs: Vec<SocketAddr> =
        (ep.host.as_str(), ep.port).to_socket_addrs().map_err(|e| PostError::Resolve(e.to_string()))?.collect();
    if addrs.is_empty() {
        return Err(PostError::Resolve("no addresses".into()));
    }
    for a in &addrs {
        if !crate::config::ssrf_permits(a.ip(), &ep.host, a.port(), allow) {
            return Err(PostError::Blocked(*a));
        }
    }
    Ok(addrs)
}

/// One `POST` of `body` (JSON) to the endpoint. `timeout` bounds the connect
/// and each read and write.
pub fn post(
    ep: &Endpoint,
    allow: &[String],
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, PostError> {
    let addrs = resolve(ep, allow)?;
    let timeout = timeout.max(Duration::from_millis(10));
    let mut last = None;
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            // The connection must be to the address that was checked.
            Ok(s) if s.peer_addr().ok().as_ref() == Some(a) => {
                stream = Some(s);
                break;
            }
            Ok(_) => last = Some(std::io::Error::other("peer address differs from the checked one")),
            Err(e) => last = Some(e),
        }
    }
    let Some(mut s) = stream else {
        return Err(PostError::Io(last.unwrap_or_else(|| std::io::Error::other("no address"))));
    };
    s.set_read_timeout(Some(timeout)).map_err(PostError::Io)?;
    s.set_write_timeout(Some(timeout)).map_err(PostError::Io)?;
    let _ = s.set_nodelay(true);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: hotplex/{}\r\n",
        ep.path,
        ep.authority,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(PostError::Io)?;
    s.write_all(body).map_err(PostError::Io)?;
    s.flush().map_err(PostError::Io)?;
    read_head(&mut s)
}

/// Read and parse the response head (the body is not needed).
fn read_head(s: &mut impl Read) -> Result<Response, PostError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).map_err(PostError::Io)?;
        if n == 0 {
            return Err(PostError::BadResponse);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let status = resp.code.ok_or(PostError::BadResponse)?;
                let retry_after = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(parse_retry_after);
                return Ok(Response { status, retry_after });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => return Err(PostError::BadResponse),
        }
    }
}

/// `Retry-After` as delta-seconds (an HTTP-date is not honoured: the
/// exporter's own backoff applies), capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// `tracing.headers` entries that are safe to send: a token name, a value
/// without control characters. Invalid ones are returned by name for a warning.
pub fn sanitize_headers(raw: Vec<(String, String)>) -> (Vec<(String, String)>, Vec<String>) {
    let reserved = ["host", "content-length", "content-type", "connection", "transfer-encoding"];
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (k, v) in raw {
        let name_ok = !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            && !reserved.contains(&k.to_ascii_lowercase().as_str());
        let value_ok = v.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80);
        if name_ok && value_ok {
            ok.push((k, v));
        } else {
            bad.push(k);
        }
    }
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths() {
        let e = Endpoint::parse("http://127.0.0.1:4318").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("127.0.0.1", 4318, "/v1/traces"));
        assert_eq!(Endpoint::parse("http://c.example:4318/otlp/").unwrap().path, "/otlp/v1/traces");
        assert_eq!(Endpoint::parse("HTTP://c.example:1/v1/traces").unwrap().path, "/v1/traces");
        let v6 = Endpoint::parse("http://[::1]:4318").unwrap();
        assert_eq!((v6.host.as_str(), v6.authority.as_str()), ("::1", "[::1]:4318"));
        for bad in
            ["https://c:1", "http://c", "http://:1", "http://u:p@c:1", "http://c:1/?q", "http://c:0", "http://c:1/a b"]
        {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_needs_an_allow_entry() {
        let e = Endpoint::parse("http://127.0.0.1:4318").unwrap();
        assert!(matches!(resolve(&e, &[]), Err(PostError::Blocked(_))));
        assert!(resolve(&e, &["127.0.0.1:4318".into()]).is_ok());
        assert!(matches!(resolve(&e, &["127.0.0.1:4319".into()]), Err(PostError::Blocked(_))));
    }

    #[test]
    fn response_heads() {
        let mut r: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_head(&mut r).unwrap(), Response { status: 503, retry_after: Some(Duration::from_secs(2)) });
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}";
        assert_eq!(read_head(&mut r).unwrap().status, 200);
        let mut r: &[u8] = b"garbage\r\n\r\n";
        assert!(read_head(&mut r).is_err());
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\n";
        assert!(read_head(&mut r).is_err());
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn header_injection_is_refused() {
        let (ok, bad) = sanitize_headers(vec![
            ("Authorization".into(), "Bearer x".into()),
            ("X-Evil".into(), "a\r\nHost: b".into()),
            ("Bad Name".into(), "v".into()),
            ("Content-Length".into(), "5".into()),
        ]);
        assert_eq!(ok, vec![("Authorization".to_string(), "Bearer x".to_string())]);
        assert_eq!(bad, vec!["X-Evil", "Bad Name", "Content-Length"]);
    }
}
