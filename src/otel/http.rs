//! The exporter's HTTP/1.1 client: one `POST` per batch over a plain
//! `std::net::TcpStream` (connect/read/write timeouts), `http://` only.
//! Every connection goes through `security::ssrf` (security.md §8): the
//! host resolved once, every address checked against the blocked ranges
//! unless `security.ssrf.allow` lifts them, the connect pinned to a checked
//! address with the peer verified; no proxy headers, no redirects followed.
//! Runs only on the `otlp` thread, never on a reactor.

use std::io::{Read, Write};

use crate::security::ssrf::{self, SsrfError, SsrfPolicy, SystemResolver};
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
    /// Refused or failed by the SSRF guard (parse, DNS, blocked range, connect, peer).
    Ssrf(SsrfError),
    Io(std::io::Error),
    /// The peer sent something that is not an HTTP/1.x response head.
    BadResponse,
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Ssrf(SsrfError::Blocked(a)) => {
                write!(f, "{a} is in a blocked range; list it in security.ssrf.allow")
            }
            PostError::Ssrf(e) => write!(f, "{e}"),
            PostError::Io(e) => write!(f, "{e}"),
            PostError::BadResponse => f.write_str("malformed HTTP response"),
        }
    }
}

/// Resolve once and check every address (security.md §8.1 steps 1–3):
/// one blocked address refuses the host.
pub fn resolve(ep: &Endpoint, policy: &SsrfPolicy) -> Result<ssrf::Checked, PostError> {
    ssrf::check_blocking(&format!("http://{}{}", ep.authority, ep.path), policy, &SystemResolver)
        .map_err(PostError::Ssrf)
}

/// One `POST` of `body` (JSON) to the endpoint. `timeout` bounds the connect
/// and each read and write.
pub fn post(
    ep: &Endpoint,
    policy: &SsrfPolicy,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, PostError> {
    let checked = resolve(ep, policy)?;
    let timeout = timeout.max(Duration::from_millis(10));
    let mut s = ssrf::connect_blocking(&checked, timeout).map_err(PostError::Ssrf)?;
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
        let policy = |allow: &[&str]| {
            let allow: Vec<String> = allow.iter().map(|a| a.to_string()).collect();
            SsrfPolicy::from_config(&allow, ssrf::ManagedEndpoints::new()).unwrap()
        };
        assert!(matches!(resolve(&e, &policy(&[])), Err(PostError::Ssrf(SsrfError::Blocked(_)))));
        assert!(resolve(&e, &policy(&["127.0.0.1:4318"])).is_ok());
        assert!(matches!(resolve(&e, &policy(&["127.0.0.1:4319"])), Err(PostError::Ssrf(SsrfError::Blocked(_)))));
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
