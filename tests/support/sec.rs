//! Helpers of the black-box security suites (auth_ws, isolation, sandbox,
//! rate_limits): the JWT fixture configuration C1 (tests/fixtures/jwt/README.md),
//! tokens minted with `hotplex token`, API-key owners, the session-id
//! derivation of aep-v1.md §4.1, and readers of a worker's /proc entries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Client, Gateway, Options, RecvError, WAIT, ev_type};

/// API keys of the API-key suites (format `[A-Za-z0-9_-]{32,256}`), read by the
/// gateway from these environment variables.
pub const ALICE_KEY: &str = "hpk_alice_0123456789abcdefghijklmnopqrstuvwxyz";
pub const BOB_KEY: &str = "hpk_bob_0123456789abcdefghijklmnopqrstuvwxyzAB";
pub const ALICE_KEY_ENV: &str = "HOTPLEX_API_KEY_ALICE";
pub const BOB_KEY_ENV: &str = "HOTPLEX_API_KEY_BOB";

pub fn jwt_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(rel)
}

/// A fixture token, byte for byte (the files have no trailing newline).
pub fn fixture_token(file: &str) -> String {
    let p = jwt_fixture(file);
    String::from_utf8(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("token is UTF-8")
}

/// `tests/fixtures/jwt/vectors.json`.
pub fn jwt_vectors() -> Value {
    serde_json::from_slice(&std::fs::read(jwt_fixture("vectors.json")).expect("vectors.json")).expect("JSON")
}

/// The `security.jwt` block of config C1 (JWKS k1+k2, issuer hotplex-test,
/// audience hotplex, leeway 30 s, 8192 bytes), indented for `security:`.
pub fn jwt_block() -> String {
    format!(
        "  jwt:\n    jwks_file: \"{}\"\n    issuer: hotplex-test\n    audience: hotplex\n    leeway: 30s\n    max_token_bytes: 8192\n",
        jwt_fixture("jwks.json").display()
    )
}

/// YAML for `security.auth.modes: <modes>` with C1's JWT settings and, when API
/// keys are on, alice's and bob's keys (from [`api_key_env`]). `failures` is
/// `limits.auth_failures_per_ip` (high in tests that expect many refusals).
pub fn auth_yaml(modes: &str, failures: u32) -> String {
    let mut y = format!("security:\n  auth:\n    modes: {modes}\n");
    if modes.contains("jwt") {
        y.push_str(&jwt_block());
    }
    if modes.contains("api_key") {
        y.push_str(&format!(
            "  api_keys:\n    - {{owner: alice, env: {ALICE_KEY_ENV}}}\n    - {{owner: bob, env: {BOB_KEY_ENV}}}\n"
        ));
    }
    y.push_str(&format!("limits:\n  auth_failures_per_ip: {failures}\n"));
    y
}

/// The environment the API keys of [`auth_yaml`] are read from.
pub fn api_key_env() -> Vec<(String, String)> {
    vec![(ALICE_KEY_ENV.into(), ALICE_KEY.into()), (BOB_KEY_ENV.into(), BOB_KEY.into())]
}

/// A gateway with `auth_yaml(modes, failures)` plus `extra` YAML.
pub fn auth_gateway(modes: &str, failures: u32, extra: &str) -> Gateway {
    Gateway::start_with(Options {
        yaml: format!("{}{extra}", auth_yaml(modes, failures)),
        env: api_key_env(),
        ..Options::default()
    })
}

/// A JWT for `sub` minted by `hotplex token` with the fixture key k1 (issuer
/// hotplex-test, audience hotplex, 1 h); `scopes` empty = no scopes claim
/// (the default scopes apply).
pub fn mint(sub: &str, scopes: &[&str]) -> String {
    mint_ttl(sub, scopes, "1h")
}

/// [`mint`] with another lifetime (`--ttl`, e.g. `3s`).
pub fn mint_ttl(sub: &str, scopes: &[&str], ttl: &str) -> String {
    let mut cmd = Command::new(super::hotplex_bin());
    cmd.env_remove("HOTPLEX_CONFIG").args(["token", "--key"]).arg(jwt_fixture("keys/k1.private.pem"));
    cmd.args(["--sub", sub, "--aud", "hotplex", "--iss", "hotplex-test", "--kid", "k1", "--ttl", ttl]);
    for s in scopes {
        cmd.args(["--scope", s]);
    }
    let out = cmd.output().expect("run hotplex token");
    assert!(out.status.success(), "hotplex token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("token").trim_end().to_owned()
}

/// aep-v1.md §4.1: `UUIDv5(6ba7b810-…, owner|worker_type|key)`.
pub fn session_id(owner: &str, worker_type: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, format!("{owner}|{worker_type}|{key}").as_bytes()).to_string()
}

/// A connection upgraded with `Authorization: Bearer <token>`.
pub fn connect_bearer(gw: &Gateway, token: &str) -> Result<Client, u16> {
    Client::connect_with(&gw.url(), &[("Authorization", &format!("Bearer {token}"))])
}

/// `init` data for a claude_code session with client key `key`.
pub fn init_data(key: &str, token: Option<&str>, mode: &str) -> Value {
    let mut d = json!({"worker_type": "claude_code", "session_id": key, "mode": mode});
    if let Some(t) = token {
        d["auth"] = json!({"token": t});
    }
    d
}

/// Send `init` and expect the init failure shape: one `error{code}` (returned),
/// then close 1008.
pub fn init_refused(c: &mut Client, data: Value, code: &str) -> Value {
    c.send("init", data);
    let e = c.recv();
    assert_eq!(ev_type(&e), "error", "expected error {code}, got {e}");
    assert_eq!(e["event"]["data"]["code"], code, "{e}");
    let (close, _) = c.expect_close();
    assert_eq!(close, 1008, "init failure closes 1008: {e}");
    e
}

/// The connection was closed by the server (close frame, reset or EOF).
pub fn closed(c: &mut Client, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.recv_within(left) {
            Ok(_) => continue,
            Err(RecvError::Timeout) => return false,
            Err(RecvError::Closed(..)) | Err(RecvError::Gone(_)) => return true,
        }
    }
}

// ------------------------------------------------------------------ /proc

/// The worker process of a session: the process carrying its
/// `HOTPLEX_SESSION_ID` whose parent is the gateway.
pub fn worker_pid(gw: &Gateway, sid: &str) -> i32 {
    let mut found = None;
    let ok = super::eventually(WAIT, || {
        found = super::processes_of_session(sid).into_iter().find(|p| ppid(*p) == Some(gw.pid()));
        found.is_some()
    });
    assert!(ok, "no worker process for session {sid}");
    found.unwrap()
}

/// Fields after the `(comm)` of /proc/<pid>/stat (index 0 = state).
pub fn stat_fields(pid: i32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().map(String::from).collect()).unwrap_or_default()
}

pub fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid).get(1).and_then(|s| s.parse().ok())
}

pub fn pgid(pid: i32) -> Option<i32> {
    stat_fields(pid).get(2).and_then(|s| s.parse().ok())
}

/// A `Key:\tvalue` line of /proc/<pid>/status.
pub fn status_field(pid: i32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// argv of a process.
pub fn cmdline(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}
