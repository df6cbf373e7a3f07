//! Helpers of the admin-API and user-API suites: admin tokens (read by the
//! gateway from environment variables), a gateway with them, and one-shot
//! HTTP requests to either listener (raw sockets, so every header is the
//! test's choice).
#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::Value;

use super::raw::{HttpResponse, http_exchange};
use super::{Gateway, Options};

/// Admin tokens (`[A-Za-z0-9_-]{32,}`, security.md S9) and their scopes.
pub const OPS: &str = "ops_token_0123456789abcdefghijklmnopqrstuvwxyz";
pub const DEPLOY: &str = "deploy_token_0123456789abcdefghijklmnopqrstuv";
pub const READER: &str = "reader_token_0123456789abcdefghijklmnopqrstuv";
/// `scopes: ["session:kill"]` (an alias of write).
pub const ALIAS_WRITE: &str = "alias_write_0123456789abcdefghijklmnopqrstuv";
/// `scopes: ["config:read"]` (an alias of admin).
pub const ALIAS_ADMIN: &str = "alias_admin_0123456789abcdefghijklmnopqrstuv";

/// The `admin.tokens` block for the tokens above.
pub fn tokens_yaml() -> String {
    "admin:\n  tokens:\n    - {name: ops, scopes: [admin], env: T_OPS}\n    - {name: deploy, scopes: [write], env: T_DEPLOY}\n    - {name: prom, scopes: [read], env: T_READER}\n    - {name: legacy, scopes: [\"session:kill\"], env: T_ALIAS_WRITE}\n    - {name: cfg, scopes: [\"config:read\"], env: T_ALIAS_ADMIN}\n"
        .to_string()
}

pub fn tokens_env() -> Vec<(String, String)> {
    [
        ("T_OPS", OPS),
        ("T_DEPLOY", DEPLOY),
        ("T_READER", READER),
        ("T_ALIAS_WRITE", ALIAS_WRITE),
        ("T_ALIAS_ADMIN", ALIAS_ADMIN),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A gateway with the admin tokens, `extra` YAML and `env` (added to the tokens' variables).
pub fn gateway_with(extra: &str, env: Vec<(String, String)>) -> Gateway {
    let mut all = tokens_env();
    all.extend(env);
    Gateway::start_with(Options { yaml: format!("{}{extra}", tokens_yaml()), env: all, ..Options::default() })
}

/// One request with `Connection: close`; `token` becomes `Authorization: Bearer`.
pub fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    call_raw(addr, method, path, &headers, body.as_bytes())
}

/// One request with exactly these headers (plus Host, Connection: close and,
/// for a non-empty body, Content-Length).
pub fn call_raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http_exchange(addr, &bytes)
}

/// Assert the error shape of both APIs and return the body.
pub fn assert_error(r: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "status; body: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "error code; body: {}", r.body);
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    v
}
