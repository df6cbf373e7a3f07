//! The `GET /ws` upgrade decision (aep-v1.md §1, security.md §1.5, §9.4):
//! method/path/headers, Host and Origin checks, and the 101 response. Pure
//! functions over a parsed request head; no I/O, no credentials (those come
//! with the auth layer).

use crate::net::http::Request;

/// Who may open a WebSocket from a browser, and the Host rule.
#[derive(Clone, Debug, Default)]
pub struct UpgradePolicy {
    /// Serialized origins (`scheme://host[:port]`, lowercase, default port elided); `*` = any.
    pub allowed_origins: Vec<String>,
    /// `Host` must be a loopback literal (auth mode `none` on a loopback listener).
    pub require_loopback_host: bool,
}

/// Why an upgrade was refused: HTTP status, JSON error code, message.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
    /// Metric label (`hotplex_ws_upgrade_rejections_total{reason}`).
    pub reason: &'static str,
}

fn refuse(status: u16, code: &'static str, message: &'static str, reason: &'static str) -> Refusal {
    Refusal { status, code, message, reason }
}

/// Validate an upgrade request; on success return the `Sec-WebSocket-Accept` value.
pub fn check_upgrade(req: &Request, policy: &UpgradePolicy) -> Result<String, Refusal> {
    if req.method != "GET" {
        return Err(refuse(405, "method_not_allowed", "only GET upgrades /ws", "bad_request"));
    }
    if req.header_all("transfer-encoding").next().is_some() {
        return Err(refuse(400, "bad_request", "Transfer-Encoding is not allowed", "bad_request"));
    }
    match req.header_one("content-length") {
        Err(_) => return Err(refuse(400, "bad_request", "duplicate Content-Length", "bad_request")),
        Ok(Some(v)) if v.iter().any(|b| *b != b'0' && !b.is_ascii_whitespace()) => {
            return Err(refuse(400, "bad_request", "an upgrade request has no body", "bad_request"));
        }
        _ => {}
    }
    let host = match req.header_one("host") {
        Ok(Some(h)) => h,
        _ => return Err(refuse(400, "bad_request", "exactly one Host header is required", "bad_request")),
    };
    let upgrade = match req.header_one("upgrade") {
        Ok(Some(v)) => v,
        Ok(None) => return Err(refuse(400, "bad_request", "missing Upgrade: websocket", "bad_request")),
        Err(_) => return Err(refuse(400, "bad_request", "duplicate Upgrade header", "bad_request")),
    };
    if !has_token(upgrade, "websocket") {
        return Err(refuse(400, "bad_request", "missing Upgrade: websocket", "bad_request"));
    }
    if !req.header_all("connection").any(|v| has_token(v, "upgrade")) {
        return Err(refuse(400, "bad_request", "missing Connection: Upgrade", "bad_request"));
    }
    match req.header_one("sec-websocket-version") {
        Ok(Some(v)) if v.trim_ascii() == b"13" => {}
        _ => return Err(refuse(426, "upgrade_required", "Sec-WebSocket-Version must be 13", "bad_request")),
    }
    let key = match req.header_one("sec-websocket-key") {
        Ok(Some(k)) if is_ws_key(k.trim_ascii()) => k.trim_ascii(),
        _ => return Err(refuse(400, "bad_request", "bad Sec-WebSocket-Key", "bad_request")),
    };
    if policy.require_loopback_host && !is_loopback_host(host) {
        return Err(refuse(403, "forbidden", "Host must be a loopback address", "origin_forbidden"));
    }
    if let Some(origin) = req.header_all("origin").next() {
        if !origin_allowed(origin, &policy.allowed_origins) {
            return Err(refuse(403, "origin_forbidden", "Origin not allowed", "origin_forbidden"));
        }
    }
    Ok(tungstenite::handshake::derive_accept_key(key))
}

/// The `101 Switching Protocols` response (no extensions, no subprotocol).
pub fn accept_response(accept: &str) -> Vec<u8> {
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
        .into_bytes()
}

/// Extra headers for a refusal (426 must name the version).
pub fn refusal_headers(r: &Refusal) -> &'static [(&'static str, &'static str)] {
    if r.status == 426 { &[("Sec-WebSocket-Version", "13")] } else { &[] }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// base64 of exactly 16 bytes: 22 alphabet chars + "==".
fn is_ws_key(k: &[u8]) -> bool {
    k.len() == 24
        && k.ends_with(b"==")
        && k[..22].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        // the last data char carries 4 padding bits that must be zero
        && b"AQgw".contains(&k[21])
}

/// `localhost`, `127.x.y.z`, `[::1]`, with or without port.
pub fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(h) = std::str::from_utf8(host.trim_ascii()) else { return false };
    let name = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, tail)) if tail.is_empty() || valid_port(tail) => inside,
            _ => return false,
        }
    } else {
        match h.rsplit_once(':') {
            Some((n, p)) if valid_port(&format!(":{p}")) => n,
            Some(_) => return false,
            None => h,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn valid_port(tail: &str) -> bool {
    tail.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Normalise an Origin to `scheme://host[:port]` (lowercase, default port elided).
pub fn normalize_origin(origin: &str) -> Option<String> {
    let o = origin.trim();
    if o == "null" {
        return Some("null".into());
    }
    let (scheme, rest) = o.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.is_empty() || rest.contains('/') && !rest.ends_with('/') {
        return None;
    }
    let rest = rest.trim_end_matches('/').to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => "",
    };
    let rest = if !default_port.is_empty() && rest.ends_with(default_port) && !rest.ends_with("]") {
        rest[..rest.len() - default_port.len()].to_owned()
    } else {
        rest
    };
    Some(format!("{scheme}://{rest}"))
}

/// Whether a request's `Origin` is listed (security.md §1.5).
pub fn origin_allowed(origin: &[u8], allowed: &[String]) -> bool {
    let Ok(o) = std::str::from_utf8(origin) else { return false };
    let Some(norm) = normalize_origin(o) else { return false };
    allowed.iter().any(|a| a == "*" && norm != "null" || normalize_origin(a).as_deref() == Some(norm.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::{Head, HeadLimits, parse_head};

    fn req(extra: &str) -> Request {
        let raw = format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        match parse_head(raw.as_bytes(), &HeadLimits::default()) {
            Head::Complete(r, _) => r,
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn rfc_example_accept_key() {
        let p = UpgradePolicy { allowed_origins: vec![], require_loopback_host: true };
        assert_eq!(check_upgrade(&req(""), &p).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn origin_and_host_rules() {
        let p = UpgradePolicy { allowed_origins: vec!["http://localhost:3000".into()], require_loopback_host: true };
        assert!(check_upgrade(&req("Origin: http://localhost:3000\r\n"), &p).is_ok());
        assert_eq!(check_upgrade(&req("Origin: https://evil.example\r\n"), &p).unwrap_err().status, 403);
        assert_eq!(check_upgrade(&req("Origin: null\r\n"), &p).unwrap_err().status, 403);
        let mut r = req("");
        r.headers.retain(|(n, _)| n != "Host");
        r.headers.push(("Host".into(), b"evil.example".to_vec()));
        assert_eq!(check_upgrade(&r, &p).unwrap_err().status, 403);
        r.headers.push(("Host".into(), b"localhost".to_vec()));
        assert_eq!(check_upgrade(&r, &p).unwrap_err().status, 400);
    }

    #[test]
    fn bad_requests() {
        let p = UpgradePolicy::default();
        let mut r = req("");
        r.headers.retain(|(n, _)| n != "Sec-WebSocket-Version");
        r.headers.push(("Sec-WebSocket-Version".into(), b"8".to_vec()));
        assert_eq!(check_upgrade(&r, &p).unwrap_err().status, 426);
        let mut r = req("");
        r.headers.retain(|(n, _)| n != "Sec-WebSocket-Key");
        r.headers.push(("Sec-WebSocket-Key".into(), b"short".to_vec()));
        assert_eq!(check_upgrade(&r, &p).unwrap_err().status, 400);
        assert_eq!(check_upgrade(&req("Transfer-Encoding: chunked\r\n"), &p).unwrap_err().status, 400);
        assert_eq!(check_upgrade(&req("Content-Length: 5\r\n"), &p).unwrap_err().status, 400);
        let mut r = req("");
        r.method = "POST".into();
        assert_eq!(check_upgrade(&r, &p).unwrap_err().status, 405);
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST:8888", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:8888"] {
            assert!(is_loopback_host(h.as_bytes()), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "[::2]", "127.0.0.1:", "localhost:abc", "[::1]x", "localhost.evil.com"] {
            assert!(!is_loopback_host(h.as_bytes()), "{h}");
        }
    }

    #[test]
    fn origin_normalisation() {
        assert_eq!(normalize_origin("HTTPS://A.Example:443").as_deref(), Some("https://a.example"));
        assert_eq!(normalize_origin("http://a.example:8080").as_deref(), Some("http://a.example:8080"));
        assert_eq!(normalize_origin("garbage"), None);
    }
}
