//! HTTP/1.1 request heads for both listeners: incremental reading with hard
//! limits (security.md §9.4), parsing with httparse, and small response
//! builders. No body handling beyond Content-Length bookkeeping; no I/O.

/// Limits on a request head (`limits.http_*`).
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits { max_request_line: 8192, max_header_bytes: 16384, max_headers: 64 }
    }
}

/// A header that must appear at most once appeared twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DuplicateHeader;

/// A parsed request head with owned header values.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string (without `?`), never logged.
    pub query: Option<String>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// All values of a header (case-insensitive name).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The single value of a header; `Err` if it appears more than once.
    pub fn header_one<'a>(&'a self, name: &'a str) -> Result<Option<&'a [u8]>, DuplicateHeader> {
        let mut it = self.header_all(name);
        let first = it.next();
        if it.next().is_some() { Err(DuplicateHeader) } else { Ok(first) }
    }

    /// A header value as trimmed UTF-8 (first occurrence).
    pub fn header_str<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_all(name).next().and_then(|v| std::str::from_utf8(v).ok()).map(str::trim)
    }
}

/// Outcome of feeding bytes to [`parse_head`].
#[derive(Debug, PartialEq)]
pub enum Head {
    /// Need more bytes.
    Partial,
    /// A complete head of `len` bytes (the rest of the buffer is body/frames).
    Complete(Request, usize),
    /// Reject with this status (and close).
    Reject(u16),
}

/// Parse a request head from `buf` (everything read so far).
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Head {
    // Request-line length check before anything else (414). httparse also
    // accepts a bare LF as the line end, so the line ends at the first LF
    // (its CR, if any, not counted).
    let line_end = buf.iter().position(|&b| b == b'\n').map(|n| if n > 0 && buf[n - 1] == b'\r' { n - 1 } else { n });
    match line_end {
        None if buf.len() > limits.max_request_line => return Head::Reject(414),
        Some(n) if n > limits.max_request_line => return Head::Reject(414),
        _ => {}
    }
    let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_request_line + limits.max_header_bytes {
                Head::Reject(431)
            } else {
                Head::Partial
            }
        }
        Ok(httparse::Status::Complete(len)) => {
            let header_bytes = len.saturating_sub(line_end.unwrap_or(0));
            if header_bytes > limits.max_header_bytes {
                return Head::Reject(431);
            }
            if req.version != Some(1) {
                return Head::Reject(400);
            }
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Head::Reject(400);
            };
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (target.to_owned(), None),
            };
            let headers = req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
            Head::Complete(Request { method: method.to_owned(), path, query, headers }, len)
        }
        Err(httparse::Error::TooManyHeaders) => Head::Reject(431),
        Err(_) => Head::Reject(400),
    }
}

/// Reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The machine code used in JSON error bodies for a status.
pub fn default_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "invalid_credentials",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        414 => "uri_too_long",
        426 => "upgrade_required",
        429 => "rate_limit_exceeded",
        431 => "header_too_large",
        503 => "draining",
        _ => "internal_error",
    }
}

/// A complete response with a JSON body; `Connection: close`.
pub fn json_response(status: u16, body: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    response(status, "application/json", body.as_bytes(), extra_headers, false)
}

/// A complete response: status line, `Content-Type`, `Cache-Control: no-store`,
/// `X-Content-Type-Options: nosniff`, `Content-Length`, `Connection`
/// (`keep-alive` or `close`), the extra headers, then the body. Header values
/// are the caller's constants or values it built; nothing from a request is
/// echoed unchecked (security.md §9.4).
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    extra_headers: &[(&str, &str)],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    for (k, v) in extra_headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The JSON error body of both HTTP APIs (operations.md §4.1):
/// `{"error":{"code":…,"message":…,"details":…}}` (`details` only when given).
pub fn error_body(code: &str, message: &str, details: Option<serde_json::Value>) -> String {
    let mut e = serde_json::json!({"code": code, "message": message});
    if let Some(d) = details {
        e["details"] = d;
    }
    serde_json::json!({ "error": e }).to_string()
}

/// `{"error":{"code":…,"message":…}}` response.
pub fn error_response(status: u16, code: &str, message: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    json_response(status, &error_body(code, message, None), extra_headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_partial() {
        let l = HeadLimits::default();
        assert_eq!(parse_head(b"GET /ws HTTP/1.1\r\nHost: a\r\n", &l), Head::Partial);
        match parse_head(b"GET /ws?token=x HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\nrest", &l) {
            Head::Complete(r, n) => {
                assert_eq!(r.path, "/ws");
                assert_eq!(r.query.as_deref(), Some("token=x"));
                assert_eq!(r.header_str("host"), Some("a"));
                assert_eq!(n, 43);
            }
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn limits() {
        let l = HeadLimits { max_request_line: 20, max_header_bytes: 40, max_headers: 2 };
        assert_eq!(parse_head(format!("GET /{} HTTP/1.1\r\n", "a".repeat(30)).as_bytes(), &l), Head::Reject(414));
        assert_eq!(parse_head(format!("GET /{}", "a".repeat(30)).as_bytes(), &l), Head::Reject(414));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &l), Head::Reject(431));
        let long = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(60));
        assert_eq!(parse_head(long.as_bytes(), &l), Head::Reject(431));
        assert_eq!(parse_head(b"GET / HTTP/1.0\r\n\r\n", &HeadLimits::default()), Head::Reject(400));
        assert_eq!(parse_head(b"\x00\x01 garbage\r\n\r\n", &HeadLimits::default()), Head::Reject(400));
    }

    /// Found by the `http_head` fuzz target: a head ended by bare LFs with a
    /// CRLF further on made the header size underflow (a panic in debug builds).
    #[test]
    fn bare_lf_line_ends() {
        let l = HeadLimits::default();
        match parse_head(b"GET /ws HTTP/1.1\n\nHost: 127.0.0.1:8888\r\n", &l) {
            Head::Complete(r, n) => assert_eq!((r.path.as_str(), n), ("/ws", 18)),
            h => panic!("{h:?}"),
        }
        let small = HeadLimits { max_request_line: 20, max_header_bytes: 40, max_headers: 8 };
        let line = format!("GET /{} HTTP/1.1\nHost: a\r\n\r\n", "a".repeat(30));
        assert_eq!(parse_head(line.as_bytes(), &small), Head::Reject(414));
    }

    #[test]
    fn duplicate_header_detection() {
        let Head::Complete(r, _) = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", &HeadLimits::default())
        else {
            panic!()
        };
        assert!(r.header_one("Host").is_err());
        assert_eq!(r.header_one("X").unwrap(), None);
    }
}
