//! Startup refusals of security.md §0.1 that concern the configuration itself:
//! S1–S10, S13–S16, plus fetching every secret (`admin.tokens`,
//! `security.api_keys`, `workers.*.env`, `tracing.headers`) and loading the JWT
//! verification keys (S3/S10, through [`crate::security::keys`]).
//! S11/S12 (file system) are in `validate.rs`.
//!
//! Owns: these rules and their messages. Must not: put a secret value in a
//! message, log, or read anything but the secret files, the JWT key files and
//! the env snapshot.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::secret::{Secret, SecretValue, read_env_secret, read_secret_file};
use super::types::{AdminCredential, AdminScope, AuthMode, Config};
use super::units::is_loopback;
use super::validate::Ctx;
use crate::adapters::WorkerType;
use crate::security::apikey::{self, valid_key_format};
use crate::security::keys::load_key_set;
use crate::security::owner::{ANONYMOUS, valid_owner_id};

use crate::policy::env::{CODE_LOADING as DANGEROUS_NAMES, CODE_LOADING_PREFIXES as DANGEROUS_PREFIXES};
/// Every gateway variable with this prefix is a secret name (S13).
const GATEWAY_PREFIX: &str = "HOTPLEX_";

/// The S3 refusal for a jwt mode without keys or audience (operations.md §1.6 quotes it).
pub const S3_MESSAGE: &str = "auth mode jwt needs a usable key and a non-empty audience (S3)";

pub(crate) fn validate(cfg: &mut Config, ctx: &mut Ctx) {
    let api_keys = resolve_api_keys(cfg, ctx);
    resolve_admin_tokens(cfg, ctx, &api_keys);
    resolve_secret_values(cfg, ctx);
    auth_modes(cfg, ctx);
    jwt(cfg, ctx);
    listeners(cfg, ctx);
    origins(cfg, ctx);
    env_names(cfg, ctx);
    run_as(cfg, ctx);
    zero_limits(cfg, ctx);
    let jwt = &cfg.security.jwt;
    if jwt.leeway > std::time::Duration::from_secs(300) {
        ctx.err("security.jwt.leeway", "must be at most 300s (S15)");
    }
    if jwt.max_token_bytes == 0 || jwt.max_token_bytes > 65_536 {
        ctx.err(
            "security.jwt.max_token_bytes",
            format!("must be between 1 and 65536 (got {}) (S15)", jwt.max_token_bytes),
        );
    }
    for (i, entry) in cfg.security.ssrf.allow.iter().enumerate() {
        if let Err(m) = crate::security::ssrf::AllowRule::parse(entry) {
            ctx.err(&format!("security.ssrf.allow[{i}]"), m);
        }
    }
}

/// S1, S2.
fn auth_modes(cfg: &Config, ctx: &mut Ctx) {
    let modes = &cfg.security.auth.modes;
    if modes.is_empty() {
        ctx.err("security.auth.modes", "must name at least one mode: [none], [api_key], [jwt] or [api_key, jwt] (S1)");
        return;
    }
    let mut seen = Vec::new();
    for m in modes {
        if seen.contains(m) {
            ctx.err("security.auth.modes", format!("{} is listed twice", m.as_str()));
        }
        seen.push(*m);
    }
    let none = modes.contains(&AuthMode::None);
    if none && modes.len() > 1 {
        ctx.err("security.auth.modes", "none cannot be combined with another mode (S1)");
        return;
    }
    if none {
        for (key, addr) in [("gateway.listen", cfg.gateway.listen), ("admin.listen", cfg.admin.listen)] {
            if !is_loopback(addr.ip()) {
                ctx.err(key, format!("auth mode none requires a loopback listener (got {addr}) (S2)"));
            }
        }
        if !cfg.gateway.trusted_proxies.is_empty() {
            ctx.err(
                "gateway.trusted_proxies",
                "must be empty with auth mode none: a proxy would expose the unauthenticated gateway (S2)",
            );
        }
    }
}

/// S5, S7, S8.
fn listeners(cfg: &Config, ctx: &mut Ctx) {
    let ws: SocketAddr = cfg.gateway.listen;
    let admin: SocketAddr = cfg.admin.listen;
    if cfg.security.dev_mode {
        for (key, addr) in [("gateway.listen", ws), ("admin.listen", admin)] {
            if !is_loopback(addr.ip()) {
                ctx.err(key, format!("security.dev_mode requires a loopback listener (got {addr}) (S5)"));
            }
        }
    }
    if !is_loopback(ws.ip()) && cfg.gateway.trusted_proxies.is_empty() && !cfg.security.allow_plaintext_public {
        ctx.err(
            "gateway.listen",
            format!(
                "{ws} is not loopback: put a TLS proxy in front and list it in gateway.trusted_proxies, \
                 or set security.allow_plaintext_public: true (S7)"
            ),
        );
    }
    if !is_loopback(admin.ip()) {
        if !cfg.admin.allow_non_loopback {
            ctx.err("admin.listen", format!("{admin} is not loopback and admin.allow_non_loopback is false (S8)"));
        }
        if cfg.admin.tokens.is_empty() {
            ctx.err(
                "admin.tokens",
                format!("admin.listen {admin} is not loopback: at least one admin token is required (S8)"),
            );
        }
        if cfg.admin.metrics_public {
            ctx.warn("admin.metrics_public", format!("/metrics is served without a token on the non-loopback {admin}"));
        }
    }
}

/// Syntax of an allowed browser origin: `scheme://host[:port]`, or `*` / `null` (dev only, S6).
pub(crate) fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" || origin == "null" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("{origin:?} is not an origin (expected scheme://host[:port])"))?;
    if rest.is_empty() || rest.contains('/') || rest.contains('@') || rest.contains('?') || rest.contains('#') {
        return Err(format!("{origin:?} is not an origin (expected scheme://host[:port], no path)"));
    }
    if origin.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("{origin:?}: write origins in lowercase"));
    }
    Ok(())
}

/// S6 and origin syntax.
fn origins(cfg: &Config, ctx: &mut Ctx) {
    let dev = cfg.security.dev_mode;
    let none = cfg.security.auth.modes.contains(&AuthMode::None);
    for (i, origin) in cfg.security.allowed_origins.iter().enumerate() {
        let key = format!("security.allowed_origins[{i}]");
        if let Err(m) = check_origin(origin) {
            ctx.err(&key, m);
        } else if origin == "*" && (!dev || none) {
            ctx.err(&key, "\"*\" is allowed only with security.dev_mode and never with auth mode none (S6)");
        } else if origin == "null" && !dev {
            ctx.err(&key, "\"null\" is allowed only with security.dev_mode (S6)");
        }
    }
}

/// Fetch one `env`/`file` secret (S16); errors name the key, never the value.
fn fetch(ctx: &mut Ctx, key: &str, env: Option<&str>, file: Option<&std::path::Path>) -> Option<Secret> {
    let got = match (env, file) {
        (Some(name), None) => read_env_secret(name, ctx.env).map_err(|m| (format!("{key}.env"), m)),
        (None, Some(path)) => {
            ctx.secret_files.push(path.to_path_buf());
            match read_secret_file(path) {
                Ok(fs) => {
                    if let Some(w) = fs.warning {
                        ctx.warn(&format!("{key}.file"), w);
                    }
                    Ok(fs.secret)
                }
                Err(m) => Err((format!("{key}.file"), m)),
            }
        }
        _ => return None,
    };
    match got {
        Ok(s) => Some(s),
        Err((k, m)) => {
            ctx.err(&k, format!("{m} (S16)"));
            None
        }
    }
}

/// `security.api_keys`: fetch sources (S16) and the S4 rules: owner ids (§2.1, not
/// `anonymous`), inline keys only with `dev_mode`, format, no key twice, at most 1024
/// entries, at least one key in mode `api_key`.
fn resolve_api_keys(cfg: &mut Config, ctx: &mut Ctx) -> Vec<Secret> {
    let mut out = Vec::new();
    let dev_mode = cfg.security.dev_mode;
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    if cfg.security.api_keys.len() > apikey::MAX_KEYS {
        ctx.err("security.api_keys", format!("more than {} keys (S4)", apikey::MAX_KEYS));
    }
    for (i, k) in cfg.security.api_keys.iter_mut().enumerate() {
        let key = format!("security.api_keys[{i}]");
        if !valid_owner_id(&k.owner) {
            ctx.err(
                &format!("{key}.owner"),
                "must be 1–256 bytes of UTF-8 without surrounding whitespace or control characters (S4)",
            );
        } else if k.owner == ANONYMOUS {
            ctx.err(&format!("{key}.owner"), "`anonymous` is reserved for auth mode none (S4)");
        }
        let n = usize::from(k.env.is_some()) + usize::from(k.file.is_some()) + usize::from(k.key.is_some());
        if n != 1 {
            ctx.err(&key, "give exactly one of env, file or key");
            continue;
        }
        let src = if k.env.is_some() {
            "env"
        } else if k.file.is_some() {
            "file"
        } else {
            "key"
        };
        if k.key.is_some() && !dev_mode {
            ctx.err(&format!("{key}.key"), "an inline key needs security.dev_mode (use env or file) (S4)");
            continue;
        }
        k.value = match &k.key {
            Some(inline) => Some(inline.clone()),
            None => fetch(ctx, &key, k.env.as_deref(), k.file.as_deref()),
        };
        let Some(v) = &k.value else { continue };
        if !valid_key_format(v.expose()) {
            ctx.err(&format!("{key}.{src}"), "the key must be 32–256 characters of [A-Za-z0-9_-] (S4)");
            k.value = None;
            continue;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, v.expose().as_bytes()).as_ref().to_vec();
        if let Some(first) = seen.get(&digest) {
            ctx.err(&key, format!("the same key as security.api_keys[{first}] (S4)"));
            k.value = None;
            continue;
        }
        seen.insert(digest, i);
        out.push(v.clone());
    }
    if cfg.security.auth.modes.contains(&AuthMode::ApiKey) && cfg.security.api_keys.is_empty() {
        ctx.err("security.api_keys", "auth mode api_key needs at least one key (S4)");
    }
    out
}

/// S3, S10 and the `security.jwt` value rules; stores the loaded keys in `cfg.resolved`.
fn jwt(cfg: &mut Config, ctx: &mut Ctx) {
    let j = &cfg.security.jwt;
    let jwt_on = cfg.security.auth.modes.contains(&AuthMode::Jwt);
    let loaded = load_key_set(j);
    for (key, m) in &loaded.errors {
        ctx.err(key, m.clone());
    }
    for (key, m) in &loaded.warnings {
        ctx.warn(key, m.clone());
    }
    let no_source = j.public_keys.is_empty() && j.jwks_file.as_os_str().is_empty();
    let no_audience = j.audience.iter().all(String::is_empty);
    if jwt_on && (no_source || no_audience) {
        ctx.err("security.jwt", S3_MESSAGE);
    }
    for (name, list) in [("audience", &j.audience), ("issuer", &j.issuer)] {
        if list.iter().any(String::is_empty) && !(name == "audience" && no_audience) {
            ctx.err(&format!("security.jwt.{name}"), "entries must not be empty");
        }
    }
    if jwt_on && j.issuer.is_empty() {
        ctx.warn("security.jwt.issuer", "empty: the iss claim of tokens is not checked");
    }
    for (i, s) in j.default_scopes.iter().enumerate() {
        if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            ctx.err(&format!("security.jwt.default_scopes[{i}]"), "a scope is 1–128 bytes without spaces");
        }
    }
    cfg.resolved.jwt_keys = loaded.keys;
}

/// `admin.tokens` (operations.md §1.4 row, S9, S16).
fn resolve_admin_tokens(cfg: &mut Config, ctx: &mut Ctx, api_keys: &[Secret]) {
    let mut names: Vec<String> = Vec::new();
    for (i, t) in cfg.admin.tokens.iter_mut().enumerate() {
        let key = format!("admin.tokens[{i}]");
        if t.name.is_empty() {
            ctx.err(&format!("{key}.name"), "must not be empty");
        } else if names.contains(&t.name) {
            ctx.err(&format!("{key}.name"), format!("{:?} is used by another token", t.name));
        }
        names.push(t.name.clone());
        if t.scopes.is_empty() {
            ctx.err(&format!("{key}.scopes"), "must list at least one scope: read, write or admin (S9)");
        }
        for (j, s) in t.scopes.iter().enumerate() {
            if AdminScope::parse(s).is_none() {
                ctx.err(&format!("{key}.scopes[{j}]"), format!("{s:?} is not read, write, admin or an alias (S9)"));
            }
        }
        let n = usize::from(t.env.is_some()) + usize::from(t.file.is_some()) + usize::from(t.sha256.is_some());
        if n != 1 {
            ctx.err(&key, "give exactly one of env, file or sha256");
            continue;
        }
        t.credential = if let Some(hex) = &t.sha256 {
            match decode_sha256(hex.expose()) {
                Some(d) => Some(AdminCredential::Sha256(d)),
                None => {
                    ctx.err(&format!("{key}.sha256"), "must be 64 hexadecimal characters (S9)");
                    None
                }
            }
        } else {
            match fetch(ctx, &key, t.env.as_deref(), t.file.as_deref()) {
                Some(secret) if !valid_key_format(secret.expose()) => {
                    let src = if t.env.is_some() { "env" } else { "file" };
                    ctx.err(&format!("{key}.{src}"), "the token must be 32–256 characters of [A-Za-z0-9_-] (S9)");
                    None
                }
                Some(secret) if api_keys.contains(&secret) => {
                    ctx.err(&key, "the token equals an API key (S9)");
                    None
                }
                Some(secret) => Some(AdminCredential::Token(secret)),
                None => None,
            }
        };
    }
}

fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `workers.<type>.env` and `tracing.headers` values given as `{env}` / `{file}` (S16).
fn resolve_secret_values(cfg: &mut Config, ctx: &mut Ctx) {
    let mut maps = vec![("tracing.headers".to_string(), &mut cfg.tracing.headers)];
    let w = &mut cfg.workers;
    maps.push(("workers.claude_code.env".to_string(), &mut w.claude_code.env));
    maps.push(("workers.opencode_cli.env".to_string(), &mut w.opencode_cli.env));
    maps.push(("workers.opencode_server.env".to_string(), &mut w.opencode_server.env));
    maps.push(("workers.acpx.env".to_string(), &mut w.acpx.env));
    maps.push(("workers.pi.env".to_string(), &mut w.pi.env));
    for (prefix, map) in maps {
        for (name, value) in map.iter_mut() {
            let key = format!("{prefix}.{name}");
            match value {
                SecretValue::Literal(_) => {}
                SecretValue::Env { env, value } => *value = fetch(ctx, &key, Some(env), None),
                SecretValue::File { file, value } => *value = fetch(ctx, &key, None, Some(file)),
            }
        }
    }
}

/// Whether a (possibly `PREFIX*`) name could match `name_or_prefix` (`X_` prefixes end with `_*` semantics).
fn overlaps(entry: &str, target: &str, target_is_prefix: bool) -> bool {
    match (entry.strip_suffix('*'), target_is_prefix) {
        (None, false) => entry == target,
        (None, true) => entry.starts_with(target),
        (Some(p), false) => target.starts_with(p),
        (Some(p), true) => p.starts_with(target) || target.starts_with(p),
    }
}

/// S13: passthrough/addition names and addition sources vs gateway secrets and code-loading names.
fn env_names(cfg: &Config, ctx: &mut Ctx) {
    let mut secret_names: Vec<String> = Vec::new();
    secret_names.extend(cfg.security.api_keys.iter().filter_map(|k| k.env.clone()));
    secret_names.extend(cfg.admin.tokens.iter().filter_map(|t| t.env.clone()));
    secret_names.extend(cfg.tracing.headers.values().filter_map(|v| match v {
        SecretValue::Env { env, .. } => Some(env.clone()),
        _ => None,
    }));
    let allow = &cfg.security.env.allow_dangerous;
    let check = |ctx: &mut Ctx, key: String, name: &str, is_source: bool| {
        let bad_chars = name.is_empty() || name.contains('=') || name.contains('\0');
        if bad_chars || (name.contains('*') && (is_source || !name.ends_with('*') || name.matches('*').count() > 1)) {
            ctx.err(&key, format!("{name:?} is not a valid variable name"));
            return;
        }
        if overlaps(name, GATEWAY_PREFIX, true) || secret_names.iter().any(|s| overlaps(name, s, false)) {
            ctx.err(&key, format!("{name} is a gateway secret name and never reaches a worker (S13)"));
            return;
        }
        if is_source || allow.iter().any(|a| a == name) {
            return;
        }
        let dangerous = DANGEROUS_NAMES.iter().any(|d| overlaps(name, d, false))
            || DANGEROUS_PREFIXES.iter().any(|d| overlaps(name, d, true));
        if dangerous {
            ctx.err(
                &key,
                format!(
                    "{name} can make a worker load code; list it in security.env.allow_dangerous to accept that (S13)"
                ),
            );
        }
    };
    for (i, n) in cfg.security.env.passthrough.iter().enumerate() {
        check(ctx, format!("security.env.passthrough[{i}]"), n, false);
    }
    for t in WorkerType::ALL {
        let ty = t.as_str();
        for (i, n) in cfg.workers.env_passthrough(t).iter().enumerate() {
            check(ctx, format!("workers.{ty}.env_passthrough[{i}]"), n, false);
        }
        for (name, value) in cfg.workers.env(t) {
            check(ctx, format!("workers.{ty}.env.{name}"), name, false);
            if let SecretValue::Env { env, .. } = value {
                check(ctx, format!("workers.{ty}.env.{name}.env"), env, true);
            }
        }
    }
}

/// S14: never uid/gid 0 for workers.
fn run_as(cfg: &Config, ctx: &mut Ctx) {
    let w = &cfg.security.worker;
    if let Some(r) = &w.run_as {
        match (&r.user, r.uid, r.gid) {
            (Some(user), None, None) if r.groups.is_empty() => {
                if user.is_empty() {
                    ctx.err("security.worker.run_as.user", "must not be empty");
                } else if user == "root" {
                    ctx.err("security.worker.run_as.user", "workers never run as root (S14)");
                } else {
                    // Resolved here (startup and reload, never a reactor) with
                    // getpwnam_r: an unknown name must not fall back to the
                    // gateway's own uid.
                    match crate::sys::user_ids(user) {
                        None => ctx.err("security.worker.run_as.user", "no such user"),
                        Some((0, _)) | Some((_, 0)) => {
                            ctx.err("security.worker.run_as.user", "resolves to uid or gid 0 (S14)")
                        }
                        Some(_) => {}
                    }
                }
            }
            (None, Some(uid), Some(gid)) => {
                if uid == 0 {
                    ctx.err("security.worker.run_as.uid", "workers never run as uid 0 (S14)");
                }
                if gid == 0 {
                    ctx.err("security.worker.run_as.gid", "workers never run as gid 0 (S14)");
                }
                if r.groups.contains(&0) {
                    ctx.err("security.worker.run_as.groups", "workers never get group 0 (S14)");
                }
            }
            _ => ctx.err("security.worker.run_as", "give either {user} or {uid, gid[, groups]}"),
        }
    }
    if let Some(u) = &w.uid_per_owner {
        if u.first_uid == 0 {
            ctx.err("security.worker.uid_per_owner.first_uid", "workers never run as uid 0 (S14)");
        }
        if u.count == 0 {
            ctx.err("security.worker.uid_per_owner.count", "must be at least 1");
        } else if u.first_uid.checked_add(u.count).is_none() {
            ctx.err("security.worker.uid_per_owner.count", "first_uid + count exceeds the uid range");
        }
        if w.run_as.is_some() {
            ctx.err("security.worker.uid_per_owner", "use either run_as or uid_per_owner, not both");
        }
    }
}

/// S15: no `limits.*` key may be 0, except the rlimits of `limits.worker` (0 = not set).
fn zero_limits(cfg: &Config, ctx: &mut Ctx) {
    let Ok(serde_json::Value::Object(limits)) = serde_json::to_value(&cfg.limits) else { return };
    let mut stack: Vec<(String, &serde_json::Value)> =
        limits.iter().filter(|(k, _)| k.as_str() != "worker").map(|(k, v)| (format!("limits.{k}"), v)).collect();
    while let Some((key, v)) = stack.pop() {
        match v {
            serde_json::Value::Object(m) => stack.extend(m.iter().map(|(k, v)| (format!("{key}.{k}"), v))),
            serde_json::Value::Number(n) if n.as_f64() == Some(0.0) => {
                ctx.err(&key, "must not be 0 (S15)");
            }
            serde_json::Value::String(s) if s == "0s" => ctx.err(&key, "must not be 0s (S15)"),
            _ => {}
        }
    }
    let t = cfg.limits.rate.throttle_threshold;
    if !(t > 0.0 && t <= 1.0) {
        ctx.err("limits.rate.throttle_threshold", format!("must be above 0 and at most 1 (got {t})"));
    }
}

/// `tracing.otlp_endpoint`: `http://host:port[/path]`; https refused (no TLS client);
/// a blocked IP literal must be allowed by `security.ssrf.allow` (security.md §8).
pub(crate) fn check_otlp_endpoint(url: &str, allow: &[String]) -> Result<(), String> {
    use crate::security::ssrf::{self, Host, ManagedEndpoints, SsrfPolicy};
    if url.to_ascii_lowercase().starts_with("https://") {
        return Err("https is not supported: send to a local OpenTelemetry Collector over http".to_string());
    }
    let authority = url.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
    if !authority.rsplit_once(':').is_some_and(|(_, port)| !port.is_empty() && !port.ends_with(']')) {
        return Err(format!("{url:?}: the port is required (http://host:port[/path])"));
    }
    if authority.contains('@') || url.contains(['?', '#']) {
        return Err(format!("{url:?}: no credentials, query or fragment (use tracing.headers)"));
    }
    let parsed = ssrf::parse_url(url).map_err(|e| format!("{url:?}: {e}"))?;
    if let Host::Ip(ip) = parsed.host {
        // Entries were checked above; a bad one already failed the load.
        let policy = SsrfPolicy::from_config(allow, ManagedEndpoints::new()).unwrap_or_default();
        if !policy.permits(&parsed.host, std::net::SocketAddr::new(ssrf::normalize(ip), parsed.port)) {
            return Err(format!(
                "{authority} is a loopback/private address: list \"{authority}\" in security.ssrf.allow (security.md §8)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_syntax() {
        assert!(check_origin("http://localhost:3000").is_ok());
        assert!(check_origin("https://a.example").is_ok());
        assert!(check_origin("https://a.example/").is_err());
        assert!(check_origin("a.example").is_err());
        assert!(check_origin("https://A.example").is_err());
    }

    #[test]
    fn otlp_endpoints() {
        assert!(check_otlp_endpoint("http://collector.example:4318", &[]).is_ok());
        assert!(
            check_otlp_endpoint("https://collector.example:4318", &[]).unwrap_err().contains("local OpenTelemetry")
        );
        assert!(check_otlp_endpoint("http://127.0.0.1:4318", &[]).unwrap_err().contains("ssrf.allow"));
        assert!(check_otlp_endpoint("http://127.0.0.1:4318/v1/traces", &["127.0.0.1:4318".into()]).is_ok());
        assert!(check_otlp_endpoint("http://127.0.0.1:4319", &["127.0.0.1:4318".into()]).is_err());
        assert!(check_otlp_endpoint("http://10.1.2.3:4318", &["10.0.0.0/8:4318".into()]).is_ok());
        assert!(check_otlp_endpoint("http://u:p@x.example:1", &[]).is_err());
        assert!(check_otlp_endpoint("http://x.example", &[]).is_err());
    }

    #[test]
    fn allow_entries() {
        assert!(crate::security::ssrf::AllowRule::parse("127.0.0.1:4318").is_ok());
        assert!(crate::security::ssrf::AllowRule::parse("[::1]:4318").is_ok());
        assert!(crate::security::ssrf::AllowRule::parse("collector.internal:4318").is_ok());
        assert!(crate::security::ssrf::AllowRule::parse("10.0.0.0/8:80").is_ok());
        assert!(crate::security::ssrf::AllowRule::parse("127.0.0.1:*").is_err());
        assert!(crate::security::ssrf::AllowRule::parse("127.0.0.1").is_err());
        assert!(crate::security::ssrf::AllowRule::parse("*.example:80").is_err());
    }

    #[test]
    fn name_overlap() {
        assert!(overlaps("LD_PRELOAD", "LD_", true));
        assert!(overlaps("LD_*", "LD_", true));
        assert!(overlaps("L*", "LD_", true));
        assert!(overlaps("*", "NODE_OPTIONS", false));
        assert!(!overlaps("OTEL_*", "LD_", true));
        assert!(!overlaps("NODE_OPTIONS_X", "NODE_OPTIONS", false));
        assert_eq!(decode_sha256(&"ab".repeat(32)).map(|d| d[0]), Some(0xab));
        assert!(decode_sha256("xyz").is_none());
    }
}
