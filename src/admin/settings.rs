//! The admin listener's settings (`admin.*` and the HTTP limits it shares
//! with the gateway listener) and admin authentication (security.md §1.6):
//! `Authorization: Bearer <token>` only, compared as SHA-256 digests in
//! constant time over every configured token, scopes `read < write < admin`.
//!
//! Owns: the token digests (the token text is never kept) and the rule that
//! picks a token. Must not: log or echo a presented token, or branch on
//! which stored digest matched before the loop over all of them is done.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{AdminCredential, AdminScope, Cidr, Config};
use crate::net::http::{HeadLimits, Request};

/// Presented tokens longer than this are refused without hashing.
const MAX_TOKEN_BYTES: usize = 4096;

struct TokenEntry {
    name: String,
    digest: [u8; 32],
    scope: AdminScope,
}

/// Everything the admin thread needs from the config, precomputed.
pub struct AdminSettings {
    tokens: Vec<TokenEntry>,
    /// `--dev`: admin authentication is off (listeners are loopback-only).
    pub auth_disabled: bool,
    pub metrics_public: bool,
    pub health_public: bool,
    pub allowed_cidrs: Vec<Cidr>,
    /// Serialized origins a request's `Origin` must be one of (default: none).
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub rate_per_sec: f64,
    pub rate_burst: f64,
    pub head_limits: HeadLimits,
    pub trusted_proxies: Vec<Cidr>,
    pub client_ip_header: String,
    /// The listener is loopback: `Host` must be a loopback literal (security.md §1.5).
    pub require_loopback_host: bool,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("tokens", &self.tokens.iter().map(|t| (&t.name, t.scope)).collect::<Vec<_>>())
            .field("auth_disabled", &self.auth_disabled)
            .finish_non_exhaustive()
    }
}

/// Who a request is, after authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Token name (`dev` when authentication is disabled).
    pub name: String,
    pub scope: AdminScope,
}

/// The outcome of [`AdminSettings::authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminAuth {
    Granted(Actor),
    /// No `Authorization` header (401 `missing_admin_token`).
    Missing,
    /// Malformed, repeated, or no matching token (401 `invalid_admin_token`).
    Invalid,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl AdminSettings {
    /// From a validated config.
    pub fn from_config(cfg: &Config) -> AdminSettings {
        let a = &cfg.admin;
        let l = &cfg.limits;
        let tokens = a
            .tokens
            .iter()
            .filter_map(|t| {
                let digest = match t.credential.as_ref()? {
                    AdminCredential::Token(s) => sha256(s.expose().as_bytes()),
                    AdminCredential::Sha256(d) => *d,
                };
                Some(TokenEntry { name: t.name.clone(), digest, scope: t.scope()? })
            })
            .collect();
        AdminSettings {
            tokens,
            auth_disabled: cfg.dev(),
            metrics_public: a.metrics_public,
            health_public: a.health_public,
            allowed_cidrs: a.allowed_cidrs.clone(),
            allowed_origins: a.allowed_origins.clone(),
            max_body_bytes: a.max_body_bytes.min(usize::MAX as u64) as usize,
            max_connections: (a.max_connections as usize).max(1),
            request_timeout: a.request_timeout,
            rate_per_sec: f64::from(a.rate_limit.requests_per_second),
            rate_burst: f64::from(a.rate_limit.burst),
            head_limits: HeadLimits {
                max_request_line: l.http_max_request_line_bytes as usize,
                max_header_bytes: l.http_max_header_bytes as usize,
                max_headers: l.http_max_headers as usize,
            },
            trusted_proxies: cfg.gateway.trusted_proxies.clone(),
            client_ip_header: cfg.gateway.client_ip_header.clone(),
            require_loopback_host: a.listen.ip().is_loopback(),
        }
    }

    /// `admin.allowed_cidrs` (empty: any client).
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_cidrs.is_empty() || self.allowed_cidrs.iter().any(|c| c.contains(ip))
    }

    /// Authenticate a request (`Authorization: Bearer` only; query tokens are never read).
    pub fn authenticate(&self, req: &Request) -> AdminAuth {
        if self.auth_disabled {
            return AdminAuth::Granted(Actor { name: "dev".into(), scope: AdminScope::Admin });
        }
        let mut values = req.header_all("authorization");
        let Some(value) = values.next() else { return AdminAuth::Missing };
        if values.next().is_some() {
            return AdminAuth::Invalid;
        }
        let Ok(token) = crate::security::credentials::parse_bearer(value) else { return AdminAuth::Invalid };
        if token.len() > MAX_TOKEN_BYTES {
            return AdminAuth::Invalid;
        }
        let presented = sha256(token.as_bytes());
        let mut found = 0usize;
        let mut selected = 0usize;
        for (i, t) in self.tokens.iter().enumerate() {
            let eq = crate::security::apikey::ct_eq(&presented, &t.digest);
            let mask = eq.wrapping_neg();
            selected = (selected & !mask) | (i & mask);
            found |= eq;
        }
        let (found, selected) = std::hint::black_box((found, selected));
        match (found, self.tokens.get(selected)) {
            (1, Some(t)) => AdminAuth::Granted(Actor { name: t.name.clone(), scope: t.scope }),
            _ => AdminAuth::Invalid,
        }
    }
}

#[cfg(test)]
pub(crate) fn test_settings(tokens: &[(&str, &str, AdminScope)]) -> AdminSettings {
    AdminSettings {
        tokens: tokens
            .iter()
            .map(|(name, token, scope)| TokenEntry {
                name: name.to_string(),
                digest: sha256(token.as_bytes()),
                scope: *scope,
            })
            .collect(),
        auth_disabled: false,
        metrics_public: false,
        health_public: true,
        allowed_cidrs: Vec::new(),
        allowed_origins: Vec::new(),
        max_body_bytes: 65536,
        max_connections: 64,
        request_timeout: Duration::from_secs(10),
        rate_per_sec: 20.0,
        rate_burst: 40.0,
        head_limits: HeadLimits::default(),
        trusted_proxies: Vec::new(),
        client_ip_header: "X-Forwarded-For".into(),
        require_loopback_host: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::{Head, parse_head};

    fn req(auth: &[&str]) -> Request {
        let mut raw = String::from("GET /admin/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for a in auth {
            raw.push_str(&format!("Authorization: {a}\r\n"));
        }
        raw.push_str("\r\n");
        match parse_head(raw.as_bytes(), &HeadLimits::default()) {
            Head::Complete(r, _) => r,
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn bearer_tokens_pick_their_scope() {
        let ops = "o".repeat(40);
        let prom = "p".repeat(40);
        let s = test_settings(&[("ops", &ops, AdminScope::Admin), ("prom", &prom, AdminScope::Read)]);
        let granted = |a: &str| match s.authenticate(&req(&[a])) {
            AdminAuth::Granted(actor) => Some((actor.name, actor.scope)),
            _ => None,
        };
        assert_eq!(granted(&format!("Bearer {ops}")), Some(("ops".into(), AdminScope::Admin)));
        assert_eq!(granted(&format!("bearer {prom}")), Some(("prom".into(), AdminScope::Read)));
        assert_eq!(granted(&format!("Bearer {}", "x".repeat(40))), None);
        assert_eq!(granted(&format!("Basic {ops}")), None);
        assert_eq!(granted(&format!("Bearer  {ops}")), None, "exactly one space");
        assert_eq!(s.authenticate(&req(&[])), AdminAuth::Missing);
        let twice = format!("Bearer {ops}");
        assert_eq!(s.authenticate(&req(&[&twice, &twice])), AdminAuth::Invalid);
        let empty = test_settings(&[]);
        assert_eq!(empty.authenticate(&req(&[&twice])), AdminAuth::Invalid);
    }
}
