//! Black-box tests of the user session API on the gateway listener
//! (operations.md §4.4, security.md §2.3): the real binary, API keys for two
//! owners, the mock agent for sessions. Every wait has a deadline.

mod support;

use serde_json::{Value, json};
use support::admin::{DEPLOY, OPS, assert_error, call, call_raw, gateway_with};
use support::raw::HttpResponse;
use support::sec::{ALICE_KEY, BOB_KEY, api_key_env, auth_yaml};
use support::{Client, Gateway, RecvError, WAIT, eventually, is_state};

/// A gateway in API-key mode (alice, bob) with the admin tokens and `extra` YAML.
fn api_gw(extra: &str) -> Gateway {
    gateway_with(&format!("{}{extra}", auth_yaml("[api_key]", 1000)), api_key_env())
}

fn as_key(gw: &Gateway, method: &str, path: &str, key: &str) -> HttpResponse {
    call_raw(gw.addr, method, path, &[("X-API-Key", key)], b"")
}

/// A claude_code session of the key's owner, driven by a new connection.
fn session(gw: &Gateway, key: &str, client_key: &str) -> (Client, String) {
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", key)]).expect("upgrade");
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": client_key}));
    (c, ack["event"]["data"]["session_id"].as_str().unwrap().to_owned())
}

fn ids(v: &Value) -> Vec<String> {
    v["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn owners_see_only_their_sessions() {
    let gw = api_gw("");
    let (_a1, s1) = session(&gw, ALICE_KEY, "a-1");
    let (_a2, s2) = session(&gw, ALICE_KEY, "a-2");
    let (_b1, sb) = session(&gw, BOB_KEY, "b-1");
    let alice = as_key(&gw, "GET", "/api/sessions", ALICE_KEY);
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.header("connection"), Some("close"));
    let v = alice.json();
    assert_eq!((v["total"].as_u64(), v["limit"].as_u64(), v["offset"].as_u64()), (Some(2), Some(20), Some(0)));
    let mut got = ids(&v);
    got.sort();
    let mut want = vec![s1.clone(), s2.clone()];
    want.sort();
    assert_eq!(got, want);
    let one = &v["sessions"][0];
    for hidden in ["owner", "work_dir"] {
        assert!(one.get(hidden).is_none(), "{hidden} leaks: {one}");
    }
    assert!(one["owner_hash"].is_string() && one["state"] == "idle");
    // bob: his own, and alice's ids are "not found", never "forbidden"
    assert_eq!(ids(&as_key(&gw, "GET", "/api/sessions", BOB_KEY).json()), vec![sb.clone()]);
    assert_error(&as_key(&gw, "GET", &format!("/api/sessions/{s1}/events"), BOB_KEY), 404, "session_not_found");
    assert_error(&as_key(&gw, "DELETE", &format!("/api/sessions/{s1}"), BOB_KEY), 404, "session_not_found");
    assert_error(
        &as_key(&gw, "GET", "/api/sessions/00000000-0000-4000-8000-000000000000/events", BOB_KEY),
        404,
        "session_not_found",
    );
    assert_eq!(as_key(&gw, "GET", "/api/sessions", ALICE_KEY).json()["total"], 2, "alice's sessions untouched");
    // bob's probes of alice's session are audited (and alice's session is unchanged)
    let probes = || call(gw.admin_addr, "GET", "/admin/audit?kind=session_foreign_probe", Some(OPS), None).json();
    assert!(
        eventually(WAIT, || probes()["entries"].as_array().is_some_and(|e| e
            .iter()
            .filter(|r| r["session_id"] == s1.as_str() && r["actor_id"] == "bob")
            .count()
            == 2)),
        "{}",
        probes()
    );
    // the same credentials as the upgrade: query key, Bearer
    let q = call_raw(gw.addr, "GET", &format!("/api/sessions?api_key={ALICE_KEY}"), &[], b"");
    assert_eq!(q.json()["total"], 2);
    let b = call_raw(gw.addr, "GET", "/api/sessions", &[("Authorization", &format!("Bearer {BOB_KEY}"))], b"");
    assert_eq!(b.json()["total"], 1);
    let r = call_raw(gw.addr, "GET", "/api/sessions", &[], b"");
    assert_error(&r, 401, "missing_credentials");
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));
    assert_error(
        &as_key(&gw, "GET", "/api/sessions", "wrong-but-well-formed-key-000000000000000"),
        401,
        "invalid_credentials",
    );
    let two = call_raw(gw.addr, "GET", &format!("/api/sessions?api_key={ALICE_KEY}"), &[("X-API-Key", ALICE_KEY)], b"");
    assert_error(&two, 401, "invalid_credentials");
    // filters, paging, validation
    assert_eq!(as_key(&gw, "GET", "/api/sessions?limit=1", ALICE_KEY).json()["sessions"].as_array().unwrap().len(), 1);
    let past = as_key(&gw, "GET", "/api/sessions?offset=5", ALICE_KEY).json();
    assert_eq!((past["sessions"].as_array().unwrap().len(), past["total"].as_u64()), (0, Some(2)));
    assert_eq!(as_key(&gw, "GET", "/api/sessions?state=terminated", ALICE_KEY).json()["total"], 0);
    assert_eq!(as_key(&gw, "GET", "/api/sessions?worker_type=claude_code", ALICE_KEY).json()["total"], 2);
    for bad in ["?limit=101", "?limit=0", "?state=deleted", "?owner=bob", "?x=1"] {
        assert_error(&as_key(&gw, "GET", &format!("/api/sessions{bad}"), ALICE_KEY), 400, "invalid_parameter");
    }
    // routes, methods, bodies
    assert_error(&as_key(&gw, "GET", "/api/nope", ALICE_KEY), 404, "not_found");
    assert_error(&as_key(&gw, "GET", "/elsewhere", ALICE_KEY), 404, "not_found");
    let r = as_key(&gw, "POST", "/api/sessions", ALICE_KEY);
    assert_error(&r, 405, "method_not_allowed");
    assert!(r.header("allow").is_some());
    let big = vec![b'x'; 4097];
    let r = call_raw(
        gw.addr,
        "GET",
        "/api/sessions",
        &[("X-API-Key", ALICE_KEY), ("Content-Type", "application/json")],
        &big,
    );
    assert_error(&r, 413, "payload_too_large");
    assert!(gw.stderr().lines().all(|l| !l.contains(ALICE_KEY)), "a key reached the log");
}

#[test]
fn events_page_equals_the_replay() {
    // a one-event window makes every replay from 0 come from the store
    let gw = api_gw("sessions:\n  replay_buffer_events: 1\n");
    let (mut c, sid) = session(&gw, ALICE_KEY, "replay");
    for input in ["stream 15", "tool", "say bye"] {
        c.turn(input);
    }
    let page = as_key(&gw, "GET", &format!("/api/sessions/{sid}/events?after_seq=0&limit=1000"), ALICE_KEY);
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!((page["has_more"].as_bool(), page["truncated"].as_bool()), (Some(false), Some(false)));
    let top = page["last_seq"].as_u64().unwrap();
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("id");
        v
    };
    let from_page: Vec<Value> = page["events"].as_array().unwrap().iter().cloned().map(strip).collect();
    // an observer resuming from 0 gets the same envelopes (fresh ids aside)
    for after in [0u64, 3] {
        let mut o = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("upgrade");
        o.init(json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe", "last_seq": after}));
        let replay: Vec<Value> = o.until(WAIT, |v| v["seq"].as_u64() == Some(top)).into_iter().map(strip).collect();
        let want: Vec<Value> = if after == 0 {
            from_page.clone()
        } else {
            let p = as_key(&gw, "GET", &format!("/api/sessions/{sid}/events?after_seq={after}"), ALICE_KEY).json();
            p["events"].as_array().unwrap().iter().cloned().map(strip).collect()
        };
        assert_eq!(replay, want, "after_seq={after}");
    }
    let turns: Vec<&str> =
        page["turns"].as_array().unwrap().iter().map(|t| t["input"]["content"].as_str().unwrap()).collect();
    assert_eq!(turns, ["stream 15", "tool", "say bye"]);
    for bad in ["?limit=1001", "?after_seq=-1", "?y=2"] {
        assert_error(
            &as_key(&gw, "GET", &format!("/api/sessions/{sid}/events{bad}"), ALICE_KEY),
            400,
            "invalid_parameter",
        );
    }
    assert_error(&as_key(&gw, "GET", "/api/sessions/NOT-A-UUID/events", ALICE_KEY), 400, "invalid_parameter");
}

#[test]
fn delete_through_the_api_closes_attached_clients() {
    let gw = api_gw("");
    let (mut c, sid) = session(&gw, ALICE_KEY, "to-delete");
    c.turn("hello");
    let r = as_key(&gw, "DELETE", &format!("/api/sessions/{sid}"), ALICE_KEY);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"id": sid, "state": "deleted"}));
    // like control.delete: state{deleted}, then close 1000
    let mut frames = Vec::new();
    let code = loop {
        match c.recv_within(WAIT) {
            Ok(v) => frames.push(v),
            Err(RecvError::Closed(code, _)) => break code,
            Err(e) => panic!("{e:?}: {frames:#?}"),
        }
    };
    assert_eq!(code, 1000);
    assert!(frames.iter().any(|f| is_state(f, "deleted")), "{frames:#?}");
    assert!(eventually(WAIT, || as_key(&gw, "GET", "/api/sessions", ALICE_KEY).json()["total"] == 0));
    assert_error(&as_key(&gw, "GET", &format!("/api/sessions/{sid}/events"), ALICE_KEY), 404, "session_not_found");
    assert_error(&as_key(&gw, "DELETE", &format!("/api/sessions/{sid}"), ALICE_KEY), 404, "session_not_found");
    let mut again = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("upgrade");
    again.send("init", json!({"worker_type": "claude_code", "session_id": sid}));
    again.expect_error("SESSION_NOT_FOUND");
    // the delete is audited with the owner as actor (security.md §10.3)
    let rows = || call(gw.admin_addr, "GET", &format!("/admin/audit?session_id={sid}"), Some(OPS), None).json();
    assert!(
        eventually(WAIT, || rows()["entries"].as_array().is_some_and(|e| e
            .iter()
            .any(|r| r["reason"] == "DELETE /api/sessions/{id}"
                && r["actor_id"] == "alice"
                && r["actor_kind"] == "api_key"))),
        "{}",
        rows()
    );
}

#[test]
fn cors_preflight_and_allowed_origins() {
    let gw = api_gw("security:\n  allowed_origins: [\"http://app.example\"]\n");
    let pre = call_raw(
        gw.addr,
        "OPTIONS",
        "/api/sessions",
        &[("Origin", "http://app.example"), ("Access-Control-Request-Method", "GET")],
        b"",
    );
    assert_eq!(pre.status, 204, "{}", pre.body);
    assert_eq!(pre.header("access-control-allow-origin"), Some("http://app.example"));
    assert_eq!(pre.header("access-control-allow-methods"), Some("GET, DELETE, OPTIONS"));
    assert_eq!(pre.header("access-control-allow-headers"), Some("Authorization, X-API-Key, Content-Type"));
    assert_eq!(pre.header("access-control-max-age"), Some("600"));
    assert!(pre.header("access-control-allow-credentials").is_none());
    let evil = call_raw(gw.addr, "OPTIONS", "/api/sessions", &[("Origin", "https://evil.example")], b"");
    assert_eq!(evil.status, 403);
    assert!(evil.header("access-control-allow-origin").is_none());
    let ok =
        call_raw(gw.addr, "GET", "/api/sessions", &[("Origin", "http://app.example"), ("X-API-Key", ALICE_KEY)], b"");
    assert_eq!((ok.status, ok.header("access-control-allow-origin")), (200, Some("http://app.example")));
    let no_key = call_raw(gw.addr, "GET", "/api/sessions", &[("Origin", "http://app.example")], b"");
    assert_eq!((no_key.status, no_key.header("access-control-allow-origin")), (401, Some("http://app.example")));
    let bad =
        call_raw(gw.addr, "GET", "/api/sessions", &[("Origin", "https://evil.example"), ("X-API-Key", ALICE_KEY)], b"");
    assert_eq!(bad.status, 403);
    let plain = as_key(&gw, "GET", "/api/sessions", ALICE_KEY);
    assert!(plain.header("access-control-allow-origin").is_none(), "no CORS without an Origin");
}

#[test]
fn rate_limit_per_principal_and_drain() {
    let gw = api_gw(
        "limits:\n  rate:\n    api_requests_per_sec: 1\n    api_burst: 3\n    handshakes_per_ip_per_sec: 1000\n    handshakes_burst: 1000\n",
    );
    for _ in 0..3 {
        assert_eq!(as_key(&gw, "GET", "/api/sessions", ALICE_KEY).status, 200);
    }
    let r = as_key(&gw, "GET", "/api/sessions", ALICE_KEY);
    assert_error(&r, 429, "rate_limit_exceeded");
    assert!(r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    assert_eq!(as_key(&gw, "GET", "/api/sessions", BOB_KEY).status, 200, "per principal, not per IP");
    // draining: /api answers 503 with Retry-After; /health still answers
    let d = call(gw.admin_addr, "POST", "/admin/drain", Some(DEPLOY), None);
    assert_eq!(d.status, 202, "{}", d.body);
    let r = as_key(&gw, "GET", "/api/sessions", BOB_KEY);
    assert_error(&r, 503, "draining");
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(support::raw::http_get(gw.addr, "/health").status, 200);
    assert_eq!(call(gw.admin_addr, "DELETE", "/admin/drain", Some(DEPLOY), None).status, 200);
    assert_eq!(as_key(&gw, "GET", "/api/sessions", BOB_KEY).status, 200);
}
