//! Where credentials may be presented (security.md §1.2): pulling them out of
//! an upgrade request (`Authorization: Bearer`, `?token=`, `X-API-Key`,
//! `?api_key=`) and out of `init.data.auth.token`, and sorting each into slot J
//! (JWT) or K (API key). Evaluation happens elsewhere ([`super::Authenticator`]).
//!
//! Rules applied here, in the spec's order: a slot filled twice or a source
//! repeated → `ambiguous_credentials` (1); `Authorization` must be exactly
//! `Bearer` + one SP + token68 (2); query values are percent-decoded once, `+`
//! stays `+` (3), and refused when `allow_query_credentials` is false; key
//! sources are ignored when `api_key` is not enabled (4). A bearer value is a
//! JWT when only `jwt` is enabled, a key when only `api_key` is, and decided by
//! its shape (exactly two `.`) when both are.
//!
//! Owns: that syntax. Must not: evaluate, log or `Debug`-print a credential
//! value (values are held as [`Secret`]), or look at cookies,
//! `Sec-WebSocket-Protocol` or `?access_token=` (never credentials, rule 9).

use crate::config::Secret;
use crate::net::http::Request;

use super::jwt::is_jwt_shaped;
use super::reason::Reason;

/// Which modes are on (mode `none` never reaches this module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    pub jwt: bool,
    pub api_key: bool,
}

/// Where a credential came from (for logs and audit detail; never the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    AuthorizationHeader,
    TokenQuery,
    ApiKeyHeader,
    ApiKeyQuery,
    Init,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AuthorizationHeader => "authorization",
            Source::TokenQuery => "query_token",
            Source::ApiKeyHeader => "x_api_key",
            Source::ApiKeyQuery => "query_api_key",
            Source::Init => "init",
        }
    }
}

/// A presented credential value and its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Presented {
    pub value: Secret,
    pub source: Source,
}

/// The slots of one request: at most one value each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slots {
    /// Slot J.
    pub jwt: Option<Presented>,
    /// Slot K.
    pub key: Option<Presented>,
}

impl Slots {
    pub fn is_empty(&self) -> bool {
        self.jwt.is_none() && self.key.is_none()
    }
}

/// Slot J or K for a bearer value (`Authorization`, `?token=`, `init.data.auth.token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Jwt,
    Key,
}

/// How a bearer value is evaluated under `modes`.
pub fn classify(value: &str, modes: Modes) -> Slot {
    match (modes.jwt, modes.api_key) {
        (true, false) => Slot::Jwt,
        (false, true) => Slot::Key,
        _ if is_jwt_shaped(value) => Slot::Jwt,
        _ => Slot::Key,
    }
}

fn token68(v: &[u8]) -> bool {
    let body = v.len() - v.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0
        && v[..body].iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// `Bearer <token68>`: scheme case-insensitive, exactly one space (rule 2).
pub fn parse_bearer(header: &[u8]) -> Result<String, Reason> {
    let v = header.trim_ascii();
    let (scheme, rest) = v.split_at_checked(7).ok_or(Reason::BadAuthorization)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") || !token68(rest) {
        return Err(Reason::BadAuthorization);
    }
    String::from_utf8(rest.to_vec()).map_err(|_| Reason::BadAuthorization)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode once (`+` stays `+`); an invalid escape or non-UTF-8 result → `None`.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Raw (still encoded) values of the query parameters named `name` (the name decoded once).
fn query_values<'a>(query: Option<&'a str>, name: &str) -> Vec<&'a str> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n).as_deref() == Some(name)).then_some(v)
        })
        .collect()
}

/// At most one value from a source; two → ambiguous.
fn one<T>(mut v: Vec<T>) -> Result<Option<T>, Reason> {
    if v.len() > 1 { Err(Reason::AmbiguousCredentials) } else { Ok(v.pop()) }
}

/// Sort the credentials of an upgrade (or `/api/…`) request into slots J and K.
pub fn extract_upgrade(req: &Request, modes: Modes, allow_query: bool) -> Result<Slots, Reason> {
    let query = req.query.as_deref();
    // rule 1: repeated sources
    let authorization = one(req.header_all("authorization").collect())?;
    let token_q = one(query_values(query, "token"))?;
    let (key_h, key_q) = if modes.api_key {
        (one(req.header_all("x-api-key").collect())?, one(query_values(query, "api_key"))?)
    } else {
        (None, None) // rule 4: ignored, never evaluated
    };
    if authorization.is_some() && token_q.is_some() {
        return Err(Reason::AmbiguousCredentials);
    }
    if key_h.is_some() && key_q.is_some() {
        return Err(Reason::AmbiguousCredentials);
    }
    // rule 3 and allow_query_credentials
    if !allow_query && (token_q.is_some() || key_q.is_some()) {
        return Err(Reason::QueryCredentialsDisabled);
    }
    let bearer = match (authorization, token_q) {
        (Some(h), _) => Some((parse_bearer(h)?, Source::AuthorizationHeader)),
        (None, Some(q)) => Some((percent_decode(q).ok_or(Reason::BadQueryEncoding)?, Source::TokenQuery)),
        (None, None) => None,
    };
    let key = match (key_h, key_q) {
        (Some(h), _) => {
            let v = std::str::from_utf8(h.trim_ascii()).map_err(|_| Reason::KeyMalformed)?;
            Some((v.to_string(), Source::ApiKeyHeader))
        }
        (None, Some(q)) => Some((percent_decode(q).ok_or(Reason::BadQueryEncoding)?, Source::ApiKeyQuery)),
        (None, None) => None,
    };
    let mut slots = Slots::default();
    if let Some((value, source)) = key {
        slots.key = Some(Presented { value: Secret::new(value), source });
    }
    if let Some((value, source)) = bearer {
        let p = Presented { value: Secret::new(value), source };
        match classify(p.value.expose(), modes) {
            Slot::Jwt => slots.jwt = Some(p),
            Slot::Key if slots.key.is_some() => return Err(Reason::AmbiguousCredentials),
            Slot::Key => slots.key = Some(p),
        }
    }
    Ok(slots)
}

/// Slot I: `init.data.auth.token` with surrounding ASCII whitespace trimmed and one leading
/// `Bearer ` (case-insensitive, one space) removed. A present token is always evaluated,
/// even when nothing is left (an empty value is a malformed credential, not a missing one:
/// fixture `empty.jwt` → `UNAUTHORIZED`); only an absent `auth.token` is "no credential".
pub fn extract_init(token: &str, modes: Modes) -> (Slot, Presented) {
    let t = token.trim_ascii();
    let t = match t.as_bytes().split_at_checked(7) {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case(b"bearer ") => &t[7..],
        _ => t,
    };
    let p = Presented { value: Secret::new(t.to_string()), source: Source::Init };
    (classify(t, modes), p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::{Head, HeadLimits, parse_head};

    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
    const KEY: &str = "hpk_0123456789abcdefghijklmnopqrstuvwxyzABCD";
    const BOTH: Modes = Modes { jwt: true, api_key: true };
    const JWT_ONLY: Modes = Modes { jwt: true, api_key: false };
    const KEY_ONLY: Modes = Modes { jwt: false, api_key: true };

    fn req(target: &str, headers: &[(&str, &str)]) -> Request {
        let mut raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n");
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        match parse_head(raw.as_bytes(), &HeadLimits::default()) {
            Head::Complete(r, _) => r,
            h => panic!("{h:?}"),
        }
    }

    fn ex(target: &str, headers: &[(&str, &str)], modes: Modes) -> Result<Slots, Reason> {
        extract_upgrade(&req(target, headers), modes, true)
    }

    fn jwt_of(s: &Slots) -> Option<(&str, Source)> {
        s.jwt.as_ref().map(|p| (p.value.expose(), p.source))
    }
    fn key_of(s: &Slots) -> Option<(&str, Source)> {
        s.key.as_ref().map(|p| (p.value.expose(), p.source))
    }

    #[test]
    fn bearer_syntax() {
        let bearer = format!("Bearer {JWT}");
        let s = ex("/ws", &[("Authorization", &bearer)], JWT_ONLY).unwrap();
        assert_eq!(jwt_of(&s), Some((JWT, Source::AuthorizationHeader)));
        let lower = format!("bearer {JWT}");
        assert!(ex("/ws", &[("Authorization", &lower)], JWT_ONLY).unwrap().jwt.is_some(), "case-insensitive");
        for bad in [format!("Bearer  {JWT}"), "Basic YTpi".into(), "Bearer".into(), format!("Bearer\t{JWT}")] {
            assert_eq!(ex("/ws", &[("Authorization", &bad)], JWT_ONLY), Err(Reason::BadAuthorization), "{bad}");
        }
        assert_eq!(parse_bearer(b"Bearer abc=="), Ok("abc==".to_string()));
        assert_eq!(parse_bearer(b"Bearer ab=c"), Err(Reason::BadAuthorization));
        assert_eq!(parse_bearer(b"Bearer a b"), Err(Reason::BadAuthorization));
    }

    #[test]
    fn ambiguity() {
        let bearer = format!("Bearer {JWT}");
        let amb = Err(Reason::AmbiguousCredentials);
        assert_eq!(ex(&format!("/ws?token={JWT}"), &[("Authorization", &bearer)], JWT_ONLY), amb);
        assert_eq!(ex("/ws", &[("Authorization", &bearer), ("Authorization", &bearer)], JWT_ONLY), amb);
        assert_eq!(ex(&format!("/ws?token={JWT}&token={JWT}"), &[], JWT_ONLY), amb);
        assert_eq!(ex(&format!("/ws?api_key={KEY}"), &[("X-API-Key", KEY)], KEY_ONLY), amb);
        assert_eq!(ex("/ws", &[("X-API-Key", KEY), ("x-api-key", KEY)], BOTH), amb);
        // a key-shaped bearer and X-API-Key both fill slot K
        let kb = format!("Bearer {KEY}");
        assert_eq!(ex("/ws", &[("X-API-Key", KEY), ("Authorization", &kb)], BOTH), amb);
        assert_eq!(ex("/ws", &[("X-API-Key", KEY), ("Authorization", &kb)], KEY_ONLY), amb);
        // JWT + key: different slots (the SDK case)
        let s = ex("/ws", &[("X-API-Key", KEY), ("Authorization", &bearer)], BOTH).unwrap();
        assert_eq!(jwt_of(&s), Some((JWT, Source::AuthorizationHeader)));
        assert_eq!(key_of(&s), Some((KEY, Source::ApiKeyHeader)));
    }

    #[test]
    fn key_sources_ignored_without_api_key_mode() {
        let s = ex(&format!("/ws?api_key={KEY}&api_key=x"), &[("X-API-Key", JWT), ("X-API-Key", KEY)], JWT_ONLY);
        assert!(s.unwrap().is_empty());
        // a bearer value is never ignored: evaluated as a JWT in [jwt]
        let s = ex("/ws", &[("Authorization", "Bearer not-a-jwt")], JWT_ONLY).unwrap();
        assert_eq!(jwt_of(&s), Some(("not-a-jwt", Source::AuthorizationHeader)));
        // … as a key in [api_key], whatever its shape
        let s = ex(&format!("/ws?token={JWT}"), &[], KEY_ONLY).unwrap();
        assert_eq!(key_of(&s), Some((JWT, Source::TokenQuery)));
    }

    #[test]
    fn query_decoding() {
        let s = ex("/ws?x=1&token=a%2Eb%2ec&y", &[], BOTH).unwrap();
        assert_eq!(jwt_of(&s), Some(("a.b.c", Source::TokenQuery)));
        let s = ex("/ws?api_key=ab+cd%2B", &[], BOTH).unwrap();
        assert_eq!(key_of(&s), Some(("ab+cd+", Source::ApiKeyQuery)), "+ stays +");
        let s = ex("/ws?%74oken=a.b.c", &[], BOTH).unwrap();
        assert!(s.jwt.is_some(), "the name is decoded once too");
        assert_eq!(ex("/ws?token=a%2", &[], BOTH), Err(Reason::BadQueryEncoding));
        assert_eq!(ex("/ws?token=a%zz", &[], BOTH), Err(Reason::BadQueryEncoding));
        assert_eq!(ex("/ws?token=%ff%fe", &[], BOTH), Err(Reason::BadQueryEncoding), "not UTF-8");
        assert_eq!(percent_decode("%252E"), Some("%2E".to_string()), "decoded once only");
        // ?access_token= is never a credential; cookies neither
        assert!(ex(&format!("/ws?access_token={JWT}"), &[("Cookie", "token=x")], BOTH).unwrap().is_empty());
        // allow_query_credentials: false
        let r = req(&format!("/ws?token={JWT}"), &[]);
        assert_eq!(extract_upgrade(&r, BOTH, false), Err(Reason::QueryCredentialsDisabled));
        let r = req("/ws?api_key=x", &[]);
        assert_eq!(extract_upgrade(&r, JWT_ONLY, false), Ok(Slots::default()), "ignored key source");
    }

    #[test]
    fn init_token() {
        let (slot, p) = extract_init(&format!("  Bearer {JWT}\n"), BOTH);
        assert_eq!((slot, p.value.expose(), p.source), (Slot::Jwt, JWT, Source::Init));
        let (slot, p) = extract_init(&format!("bEaReR {KEY}"), BOTH);
        assert_eq!((slot, p.value.expose()), (Slot::Key, KEY));
        let (_, p) = extract_init(&format!("Bearer  {JWT}"), BOTH);
        assert_eq!(p.value.expose(), format!(" {JWT}"), "only one space is part of the prefix");
        // present but empty: still evaluated (and fails), never "no credential"
        assert_eq!(
            extract_init("   ", JWT_ONLY),
            (Slot::Jwt, Presented { value: Secret::new(String::new()), source: Source::Init })
        );
        // trimmed first: "Bearer " becomes "Bearer", which is then evaluated (and fails)
        assert_eq!(extract_init("Bearer ", BOTH).1.value.expose(), "Bearer");
        assert_eq!(extract_init("not-a-jwt", JWT_ONLY).0, Slot::Jwt);
    }

    #[test]
    fn values_are_redacted_in_debug() {
        let s = ex(&format!("/ws?token={JWT}"), &[("X-API-Key", KEY)], BOTH).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(KEY) && !dbg.contains("eyJ"), "{dbg}");
    }
}
