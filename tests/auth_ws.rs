//! Authentication through the real binary and the real WebSocket path
//! (security.md §1.2, §1.7, §1.8; aep-v1.md §1, §4, §9 vector 1): every
//! wall-clock-safe JWT vector of tests/fixtures/jwt gets its verdict both at the
//! upgrade (`Authorization: Bearer` → 101 or 401) and in `init.data.auth.token`
//! (`init_ack` or `error{UNAUTHORIZED}` + close 1008); the owner is the token's
//! `sub`, seen through the session id `UUIDv5(sub|claude_code|key)`. Plus the
//! presentation rules, scopes, API keys, the per-IP lockout and mode `none`.
//!
//! The clock-dependent vectors (needing T = 1900000000) are checked at the
//! verifier with an injected clock in tests/jwt_vectors.rs.

mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::raw::{HttpResponse, http_exchange, pct, upgrade_request};
use support::sec::*;
use support::*;

/// A hand-made upgrade with extra header lines and an optional query string.
fn upgrade(addr: SocketAddr, query: &str, headers: &[&str]) -> HttpResponse {
    let req = upgrade_request(addr, None, headers).replacen("GET /ws ", &format!("GET /ws{query} "), 1);
    http_exchange(addr, req.as_bytes())
}

/// The upgrade status of a bearer value. A value that cannot be a header
/// value (the `whitespace_inside` vector holds a newline) goes in `?token=`.
fn bearer_status(addr: SocketAddr, token: &str) -> HttpResponse {
    if token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        upgrade(addr, "", &[&format!("Authorization: Bearer {token}")])
    } else {
        upgrade(addr, &format!("?token={}", pct(token)), &[])
    }
}

fn assert_401(r: &HttpResponse, ctx: &str) {
    assert_eq!(r.status, 401, "{ctx}: {r:?}");
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="hotplex", error="invalid_token""#), "{ctx}: {r:?}");
    assert!(!r.body.contains("eyJ"), "{ctx}: the body echoes no token: {r:?}");
}

fn has_drive(scopes: &Value) -> bool {
    scopes.as_array().is_some_and(|a| a.iter().any(|s| s == "aep:drive"))
}

/// Check the `init_ack` of an accepted credential: the session id is the
/// owner's derivation of `key`.
fn assert_ack(ack: &Value, owner: &str, key: &str, ctx: &str) {
    assert_eq!(ev_type(ack), "init_ack", "{ctx}: {ack}");
    assert_eq!(
        ack["event"]["data"]["session_id"],
        session_id(owner, "claude_code", key),
        "{ctx}: owner {owner}: {ack}"
    );
}

/// The C1 checks of every wall-clock-safe token: (file, check).
fn c1_vectors() -> Vec<(String, Value)> {
    let v = jwt_vectors();
    let mut out = Vec::new();
    for t in v["tokens"].as_array().expect("tokens") {
        if t["wall_clock_safe"] != true {
            continue;
        }
        let check = t["checks"].as_array().and_then(|c| c.iter().find(|c| c["config"] == "C1")).expect("C1 check");
        out.push((t["file"].as_str().expect("file").to_owned(), check.clone()));
    }
    assert!(out.len() >= 60, "expected the ~60 wall-clock-safe vectors, got {}", out.len());
    out
}

/// Sessions per owner are unlimited: every accepted vector opens its own.
const MANY_SESSIONS: &str = "sessions:\n  max_per_owner: 0\n";

/// Owners whose observe-only tokens need an existing session: created with a
/// full-scope token of the same `sub` and kept open.
fn prepare_observe_session(gw: &Gateway, owner: &str, key: &str) -> Client {
    let mut c = connect_bearer(gw, &mint(owner, &[])).expect("minted token accepted");
    let ack = c.init(init_data(key, None, "drive"));
    assert_ack(&ack, owner, key, "prepared session");
    c
}

#[test]
fn jwt_vectors_at_the_upgrade() {
    let gw = auth_gateway("[jwt]", 100_000, MANY_SESSIONS);
    let mut keep = Vec::new();
    for (file, check) in c1_vectors() {
        let token = fixture_token(&file);
        let r = bearer_status(gw.addr, &token);
        match check["expect"].as_str().unwrap() {
            "reject" => assert_401(&r, &file),
            _ => {
                assert_eq!(r.status, 101, "{file}: accepted at the upgrade: {r:?}");
                // The same token on a real connection: init without auth → the token's owner.
                let owner = check["owner"].as_str().unwrap();
                let key = format!("up-{}", file.trim_start_matches("tokens/"));
                let mode = if has_drive(&check["scopes"]) {
                    "drive"
                } else {
                    keep.push(prepare_observe_session(&gw, owner, &key));
                    "observe"
                };
                let mut c = connect_bearer(&gw, &token).unwrap_or_else(|s| panic!("{file}: upgrade {s}"));
                c.send("init", init_data(&key, None, mode));
                assert_ack(&c.recv(), owner, &key, &file);
            }
        }
    }
}

#[test]
fn jwt_vectors_in_init() {
    let gw = auth_gateway("[jwt]", 100_000, MANY_SESSIONS);
    let mut keep = Vec::new();
    for (file, check) in c1_vectors() {
        let token = fixture_token(&file);
        let key = format!("init-{}", file.trim_start_matches("tokens/"));
        match check["expect"].as_str().unwrap() {
            "reject" => {
                let mut c = gw.connect();
                let e = init_refused(&mut c, init_data(&key, Some(&token), "drive"), "UNAUTHORIZED");
                let want = if check["reason"] == "expired" { "credential expired" } else { "invalid credential" };
                assert_eq!(e["event"]["data"]["message"], want, "{file}: {e}");
            }
            _ => {
                let owner = check["owner"].as_str().unwrap();
                let mode = if has_drive(&check["scopes"]) {
                    "drive"
                } else {
                    keep.push(prepare_observe_session(&gw, owner, &key));
                    "observe"
                };
                let mut c = gw.connect();
                // "Bearer " in front is allowed in slot I (one, case-insensitive).
                c.send("init", init_data(&key, Some(&format!("  bearer {token}\n")), mode));
                assert_ack(&c.recv(), owner, &key, &file);
            }
        }
    }
}

/// Configs C2 (only `pem/k1.public.pem` as kid k1) and C3 (C1 + max_lifetime 24h):
/// the wall-clock-safe vectors that name them, at the upgrade.
#[test]
fn jwt_vectors_of_other_key_configs() {
    let pem = format!(
        "security:\n  auth:\n    modes: [jwt]\n  jwt:\n    public_keys: [{{kid: k1, file: \"{}\"}}]\n    issuer: hotplex-test\n    audience: hotplex\nlimits:\n  auth_failures_per_ip: 100000\n",
        jwt_fixture("pem/k1.public.pem").display()
    );
    let c3 = auth_yaml("[jwt]", 100_000)
        .replace("    max_token_bytes: 8192\n", "    max_token_bytes: 8192\n    max_lifetime: 24h\n");
    let v = jwt_vectors();
    let mut checked = 0;
    for (config, yaml) in [("C2", pem), ("C3", c3)] {
        let gw = Gateway::start_yaml(&yaml);
        for t in v["tokens"].as_array().unwrap().iter().filter(|t| t["wall_clock_safe"] == true) {
            let Some(check) = t["checks"].as_array().unwrap().iter().find(|c| c["config"] == config) else { continue };
            let file = t["file"].as_str().unwrap();
            let r = bearer_status(gw.addr, &fixture_token(file));
            let ctx = format!("{file} under {config}");
            if check["expect"] == "reject" {
                assert_401(&r, &ctx);
            } else {
                assert_eq!(r.status, 101, "{ctx}: {r:?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "C2/C3 checks run: {checked}");
}

/// aep-v1.md §9 vector 1 and the presentation vectors of the fixture README.
#[test]
fn presentation_rules() {
    let gw = auth_gateway("[jwt]", 100_000, "");
    let a = gw.addr;
    let valid = fixture_token("tokens/valid_k1.jwt");
    let expired = fixture_token("tokens/expired.jwt");
    let bob_observe = fixture_token("tokens/scopes_observe_only.jwt");

    // Vector 1: no credential at the upgrade (allowed), none in init → AUTH_REQUIRED + 1008.
    let mut c = gw.connect();
    let e = init_refused(&mut c, json!({"worker_type": "claude_code"}), "AUTH_REQUIRED");
    assert_eq!(e["seq"], 0);
    // An empty slot I is a presented (malformed) credential, not an absent one.
    let mut c = gw.connect();
    init_refused(&mut c, json!({"worker_type": "claude_code", "auth": {"token": ""}}), "UNAUTHORIZED");

    // Header shapes.
    assert_eq!(upgrade(a, "", &[&format!("Authorization: bearer {valid}")]).status, 101);
    assert_eq!(upgrade(a, "", &[&format!("Authorization: BEARER {valid}")]).status, 101);
    assert_401(&upgrade(a, "", &[&format!("Authorization: Bearer  {valid}")]), "two spaces");
    assert_401(&upgrade(a, "", &["Authorization: Basic YTpi"]), "Basic");
    assert_401(&upgrade(a, "", &["Authorization: Bearer not-a-jwt"]), "not a JWT in mode jwt");
    assert_401(&upgrade(a, "", &[&format!("Authorization: Bearer {expired}")]), "expired");
    // Ambiguity: identical values do not help.
    assert_401(&upgrade(a, &format!("?token={valid}"), &[&format!("Authorization: Bearer {valid}")]), "bearer+query");
    let two = format!("Authorization: Bearer {valid}");
    assert_401(&upgrade(a, "", &[&two, &two]), "two Authorization headers");
    assert_401(&upgrade(a, &format!("?token={valid}&token={valid}"), &[]), "?token twice");
    // Never credentials: cookies, subprotocols, ?access_token= (the upgrade
    // proceeds as pre-auth and init must still authenticate).
    for extra in [format!("Cookie: token={valid}"), format!("Sec-WebSocket-Protocol: {valid}")] {
        let r = upgrade(a, "", &[&extra]);
        assert_eq!(r.status, 101, "{extra}: {r:?}");
        assert_eq!(r.header("sec-websocket-protocol"), None, "no subprotocol is selected");
    }

    // ?token= works like the header; the owner is alice.
    let mut c = Client::connect_with(&format!("{}?token={valid}", gw.url()), &[]).expect("?token=");
    assert_ack(&c.init(json!({"worker_type": "claude_code", "session_id": "q"})), "alice", "q", "?token=");
    // ?access_token= is not a credential: pre-auth, then AUTH_REQUIRED.
    let mut c = Client::connect_with(&format!("{}?access_token={valid}", gw.url()), &[]).expect("upgrade");
    init_refused(&mut c, json!({"worker_type": "claude_code"}), "AUTH_REQUIRED");
    // An API key header in mode [jwt] is ignored, never evaluated.
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", &valid)]).expect("X-API-Key ignored");
    init_refused(&mut c, json!({"worker_type": "claude_code"}), "AUTH_REQUIRED");

    // Upgrade as alice, init as bob: owners differ → UNAUTHORIZED.
    let mut c = connect_bearer(&gw, &valid).expect("alice");
    init_refused(&mut c, init_data("x", Some(&bob_observe), "observe"), "UNAUTHORIZED");
    // The same token twice (upgrade and init) is one owner: accepted.
    let mut c = connect_bearer(&gw, &valid).expect("alice");
    assert_ack(&c.init(init_data("twice", Some(&valid), "drive")), "alice", "twice", "same sub twice");
    // An expired token in init after a valid upgrade is still refused.
    let mut c = connect_bearer(&gw, &valid).expect("alice");
    let e = init_refused(&mut c, init_data("x", Some(&expired), "drive"), "UNAUTHORIZED");
    assert_eq!(e["event"]["data"]["message"], "credential expired");
    // A token longer than max_token_bytes in init.
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", Some(&"a".repeat(8193)), "drive"), "UNAUTHORIZED");
}

/// A token with only `aep:observe` may observe (existing sessions of its owner)
/// but not drive; an observer's `input` is refused and the connection stays.
#[test]
fn observe_scope_cannot_drive() {
    let gw = auth_gateway("[jwt]", 100_000, "");
    let observe_only = fixture_token("tokens/scopes_observe_only.jwt");
    // drive → UNAUTHORIZED, at init and after a valid upgrade alike
    let mut c = gw.connect();
    let e = init_refused(&mut c, init_data("b1", Some(&observe_only), "drive"), "UNAUTHORIZED");
    assert_eq!(e["event"]["data"]["message"], "invalid credential");
    let mut c = connect_bearer(&gw, &observe_only).expect("valid token");
    init_refused(&mut c, init_data("b1", None, "drive"), "UNAUTHORIZED");
    // a minted token with the observe scope only behaves the same
    let mut c = gw.connect();
    init_refused(&mut c, init_data("b1", Some(&mint("bob", &["aep:observe"])), "drive"), "UNAUTHORIZED");

    // bob's own session (created with a drive token), observed with the observe-only token
    let mut driver = connect_bearer(&gw, &mint("bob", &["aep:drive"])).expect("drive token");
    let ack = driver.init(init_data("b1", None, "drive"));
    assert_ack(&ack, "bob", "b1", "bob drives");
    let mut obs = connect_bearer(&gw, &observe_only).expect("observe token");
    let oack = obs.init(init_data("b1", None, "observe"));
    assert_eq!(oack["event"]["data"]["session_id"], ack["event"]["data"]["session_id"]);
    obs.send("input", json!({"content": "hello"}));
    obs.expect_error("UNAUTHORIZED");
    obs.send("control", json!({"action": "terminate"}));
    obs.expect_error("UNAUTHORIZED");
    // The session is untouched: the driver's turn works and the observer sees it.
    let frames = driver.turn("say still mine");
    assert_eq!(delta_text(&frames), "still mine");
    obs.expect("done");
}

#[test]
fn api_keys_only() {
    let gw = auth_gateway("[api_key]", 100_000, "");
    let a = gw.addr;
    let url = gw.url();
    // X-API-Key, ?api_key=, Bearer (a bearer value is a key when only api_key is on)
    let mut c = Client::connect_with(&url, &[("X-API-Key", ALICE_KEY)]).expect("X-API-Key");
    assert_ack(&c.init(init_data("k1", None, "drive")), "alice", "k1", "X-API-Key");
    let mut c = Client::connect_with(&format!("{url}?api_key={ALICE_KEY}"), &[]).expect("?api_key=");
    assert_ack(&c.init(init_data("k2", None, "drive")), "alice", "k2", "?api_key=");
    let mut c = connect_bearer(&gw, BOB_KEY).expect("Bearer key");
    assert_ack(&c.init(init_data("k3", None, "drive")), "bob", "k3", "Bearer key");
    // slot I: a key in init.data.auth.token
    let mut c = gw.connect();
    assert_ack(&c.init(init_data("k4", Some(BOB_KEY), "drive")), "bob", "k4", "init key");

    // refusals at the upgrade
    assert_401(&upgrade(a, &format!("?api_key={ALICE_KEY}"), &[&format!("X-API-Key: {ALICE_KEY}")]), "ambiguous");
    let two = format!("X-API-Key: {ALICE_KEY}");
    assert_401(&upgrade(a, "", &[&two, &two]), "X-API-Key twice");
    assert_401(&upgrade(a, "", &["X-API-Key: wrong-but-well-formed-key-000000000000000"]), "unknown key");
    assert_401(&upgrade(a, "", &[&format!("X-API-Key: {}", "k".repeat(300))]), "300-byte key");
    assert_401(&upgrade(a, "", &[&format!("X-API-Key: {}x", &ALICE_KEY[..ALICE_KEY.len() - 1])]), "near miss");
    // a JWT-shaped bearer value is evaluated as a key in mode [api_key]: unknown
    let jwt = fixture_token("tokens/valid_k1.jwt");
    assert_401(&upgrade(a, "", &[&format!("Authorization: Bearer {jwt}")]), "JWT in api_key mode");
    // every evaluated credential must be valid: a good key plus a bad bearer → 401
    assert_401(&upgrade(a, "", &[&format!("X-API-Key: {ALICE_KEY}"), "Authorization: Bearer nope-nope"]), "good+bad");
    // slot K filled twice (even by two owners' keys) → refused; in init, another owner → UNAUTHORIZED
    assert_401(
        &upgrade(a, "", &[&format!("X-API-Key: {ALICE_KEY}"), &format!("Authorization: Bearer {BOB_KEY}")]),
        "a+b",
    );
    let mut c = Client::connect_with(&url, &[("X-API-Key", ALICE_KEY)]).expect("alice");
    init_refused(&mut c, init_data("x", Some(BOB_KEY), "drive"), "UNAUTHORIZED");
    // unknown key in init
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", Some("wrong-but-well-formed-key-000000000000000"), "drive"), "UNAUTHORIZED");
    // no credential anywhere
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", None, "drive"), "AUTH_REQUIRED");
    // The key value never shows up in the gateway's log.
    assert!(!gw.stderr().contains(ALICE_KEY) && !gw.stderr().contains(BOB_KEY), "a key value was logged");
}

#[test]
fn api_keys_and_jwt() {
    let gw = auth_gateway("[api_key, jwt]", 100_000, "");
    let a = gw.addr;
    let valid = fixture_token("tokens/valid_k1.jwt");
    let expired = fixture_token("tokens/expired.jwt");
    // The bearer value's shape decides: a key…
    let mut c = connect_bearer(&gw, ALICE_KEY).expect("key-shaped bearer");
    assert_ack(&c.init(init_data("s1", None, "drive")), "alice", "s1", "key bearer");
    // …or a JWT (owner = sub)
    let mut c = connect_bearer(&gw, &valid).expect("JWT-shaped bearer");
    assert_ack(&c.init(init_data("s2", None, "drive")), "alice", "s2", "jwt bearer");
    // A key alongside a JWT identifies the app; the JWT's sub is the owner.
    let mut c =
        Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY), ("Authorization", &format!("Bearer {valid}"))])
            .expect("key + JWT");
    assert_ack(&c.init(init_data("s3", None, "drive")), "alice", "s3", "key + JWT");
    // Same with the JWT in init after a key at the upgrade.
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY)]).expect("key");
    assert_ack(&c.init(init_data("s4", Some(&valid), "drive")), "alice", "s4", "key, then JWT in init");
    // A valid key does not rescue an invalid JWT.
    assert_401(
        &upgrade(a, "", &[&format!("X-API-Key: {ALICE_KEY}"), &format!("Authorization: Bearer {expired}")]),
        "k+E",
    );
    // Slot I by shape as well.
    let mut c = gw.connect();
    assert_ack(&c.init(init_data("s5", Some(ALICE_KEY), "drive")), "alice", "s5", "init key");
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", Some(&expired), "drive"), "UNAUTHORIZED");
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", Some("a.b.c"), "drive"), "UNAUTHORIZED");
    assert_401(&upgrade(a, "", &["X-API-Key: wrong-but-well-formed-key-000000000000000"]), "unknown key");
}

/// security.md §1.7: after `auth_failures_per_ip` failures (401 at the upgrade,
/// UNAUTHORIZED and AUTH_REQUIRED at init all count) the IP gets 429 with
/// Retry-After, before any credential of it is evaluated.
#[test]
fn lockout_after_failures() {
    let extra = "limits:\n  auth_failures_per_ip: 3\n  auth_failure_window: 5m\n  auth_lockout: 60s\n";
    let gw = auth_gateway("[api_key]", 3, extra);
    let a = gw.addr;
    // A good key works before the lockout.
    assert_eq!(upgrade(a, "", &[&format!("X-API-Key: {ALICE_KEY}")]).status, 101);
    // 1: 401 at the upgrade
    assert_401(&upgrade(a, "", &["X-API-Key: wrong-but-well-formed-key-000000000000000"]), "failure 1");
    // 2: UNAUTHORIZED at init
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", Some("wrong-but-well-formed-key-000000000000000"), "drive"), "UNAUTHORIZED");
    // not locked yet: two failures so far
    assert_eq!(upgrade(a, "", &[&format!("X-API-Key: {ALICE_KEY}")]).status, 101);
    // 3: AUTH_REQUIRED at init
    let mut c = gw.connect();
    init_refused(&mut c, init_data("x", None, "drive"), "AUTH_REQUIRED");
    // Locked out: even the right key gets 429 + Retry-After (≤ auth_lockout).
    for headers in [vec![format!("X-API-Key: {ALICE_KEY}")], vec![]] {
        let hs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = upgrade(a, "", &hs);
        assert_eq!(r.status, 429, "{r:?}");
        let retry: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{r:?}"));
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).err(), Some(429));
}

/// Mode `none`: every connection is `anonymous` (presented credentials are
/// ignored), but a browser Origin that is not listed gets 403, and so does a
/// non-loopback Host (DNS rebinding).
#[test]
fn mode_none_origin_and_host() {
    let gw = Gateway::start_yaml("security:\n  allowed_origins: [\"https://app.example\"]\n");
    let a = gw.addr;
    for origin in ["https://evil.example", "null", "http://app.example"] {
        let r = upgrade(a, "", &[&format!("Origin: {origin}")]);
        assert_eq!(r.status, 403, "Origin {origin}: {r:?}");
    }
    assert_eq!(Client::connect_with(&gw.url(), &[("Origin", "https://evil.example")]).err(), Some(403));
    let r = http_exchange(a, upgrade_request(a, Some(("Host", Some("evil.example:8888"))), &[]).as_bytes());
    assert_eq!(r.status, 403, "{r:?}");
    // A listed origin, and credentials are ignored: the owner is anonymous.
    let valid = fixture_token("tokens/valid_k1.jwt");
    let mut c = Client::connect_with(
        &gw.url(),
        &[("Origin", "https://app.example"), ("Authorization", &format!("Bearer {valid}"))],
    )
    .expect("listed origin");
    assert_ack(&c.init(init_data("n1", Some("garbage"), "drive")), "anonymous", "n1", "mode none");
    let mut c = gw.connect();
    assert_ack(&c.init(init_data("sess_test", None, "drive")), "anonymous", "sess_test", "mode none");
    assert_eq!(session_id("anonymous", "claude_code", "sess_test"), "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");
}

/// security.md §1.3 `close_on_expiry: true` (leeway 0): a live connection
/// whose JWT expires gets `error{UNAUTHORIZED, "credential expired"}` and
/// close 1008 at `exp`, not before; the session keeps running and a fresh
/// token resumes it.
#[test]
fn close_on_expiry_closes_a_live_connection_at_exp() {
    use std::time::{Duration, Instant};
    let jwt = format!(
        "security:\n  jwt:\n    jwks_file: \"{}\"\n    issuer: hotplex-test\n    audience: hotplex\n    leeway: 0s\n    close_on_expiry: true\n",
        jwt_fixture("jwks.json").display()
    );
    let gw = auth_gateway("[jwt]", 100_000, &jwt);
    let minted = Instant::now();
    let short = mint_ttl("alice", &[], "3s");
    let mut c = connect_bearer(&gw, &short).expect("upgrade with a valid token");
    let ack = c.init(init_data("expiring", None, "drive"));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("session id").to_string();
    assert_eq!(delta_text(&c.turn("say still valid")), "still valid");
    let e = c.recv_within(Duration::from_secs(10)).expect("an error at expiry");
    let at = minted.elapsed();
    assert_eq!(ev_type(&e), "error", "{e}");
    assert_eq!(e["event"]["data"]["code"], "UNAUTHORIZED", "{e}");
    assert_eq!(e["event"]["data"]["message"], "credential expired", "{e}");
    // exp = iat + 3 s in whole seconds: never earlier than 2 s after minting.
    assert!(at >= Duration::from_secs(2), "closed {at:?} after minting a 3 s token");
    assert_eq!(c.expect_close().0, 1008);
    // The session outlives the connection: a fresh token resumes it.
    let mut c2 = connect_bearer(&gw, &mint("alice", &[])).expect("upgrade with a fresh token");
    let ack = c2.init(init_data("expiring", None, "drive"));
    assert_eq!(ack["event"]["data"]["session_id"], sid.as_str());
    assert_eq!(ack["event"]["data"]["state"], "idle", "{ack}");
    assert_eq!(delta_text(&c2.turn("say again")), "again");
}
