//! The audit log as an operator reads it (security.md §10.3): a gateway run
//! leaves hash-chained rows for its startup (with the config's SHA-256), a
//! refused credential at the upgrade and in `init`, a foreign-session probe,
//! a permission decision and its shutdown — and never the secret that was
//! presented. The database is opened read-only next to the running binary.

mod support;

use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Value, json};
use support::sec::*;
use support::store::open_ro;
use support::*;

#[derive(Debug)]
struct Row {
    kind: String,
    outcome: String,
    reason: Option<String>,
    actor_kind: String,
    actor_id: Option<String>,
    client_ip: Option<String>,
    session_id: Option<String>,
    detail: Value,
}

fn rows(c: &Connection) -> Vec<Row> {
    let mut st = c
        .prepare(
            "SELECT kind, outcome, reason, actor_kind, actor_id, client_ip, session_id, detail FROM audit_log ORDER BY id",
        )
        .expect("prepare");
    st.query_map([], |r| {
        let detail: Option<String> = r.get(7)?;
        Ok(Row {
            kind: r.get(0)?,
            outcome: r.get(1)?,
            reason: r.get(2)?,
            actor_kind: r.get(3)?,
            actor_id: r.get(4)?,
            client_ip: r.get(5)?,
            session_id: r.get(6)?,
            detail: detail.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(Value::Null),
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Poll the log until a row matches (rows reach SQLite through the writer's
/// group commit, a few ms after the event).
fn wait_row(c: &Connection, what: &str, pred: impl Fn(&Row) -> bool) -> Row {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = rows(c).into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "no audit row for {what}: {:#?}", rows(c));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

const WRONG_KEY: &str = "hpk_mallory_0123456789abcdefghijklmnopqrstuv";

#[test]
fn a_gateway_run_leaves_a_verifiable_audit_trail_without_secrets() {
    let mut gw = auth_gateway("[api_key]", 100_000, "");
    let db = open_ro(gw.dir.path());
    let config = std::fs::read(&gw.config_path).expect("config file");

    let start = wait_row(&db, "startup", |r| r.kind == "startup");
    assert_eq!((start.outcome.as_str(), start.actor_kind.as_str()), ("ok", "system"));
    assert_eq!(start.detail["config_sha256"], sha256_hex(&config), "{start:?}");

    // A wrong key at the upgrade: 401 and an auth_failure row naming the stage and IP.
    assert_eq!(Client::connect_with(&gw.url(), &[("X-API-Key", WRONG_KEY)]).err(), Some(401));
    let up = wait_row(&db, "upgrade failure", |r| r.kind == "auth_failure" && r.detail["stage"] == "upgrade");
    assert_eq!((up.outcome.as_str(), up.actor_kind.as_str()), ("denied", "unauthenticated"));
    assert_eq!(up.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(up.reason.is_some(), "{up:?}");

    // No credential at all, then init without one: AUTH_REQUIRED and a row.
    let mut c = Client::connect_with(&gw.url(), &[]).expect("credential-less upgrade (init may carry one)");
    init_refused(&mut c, init_data("no-cred", None, "drive"), "AUTH_REQUIRED");
    let r = wait_row(&db, "init without credential", |r| r.kind == "auth_failure" && r.detail["stage"] == "init");
    assert_eq!((r.outcome.as_str(), r.reason.as_deref()), ("denied", Some("missing")));

    // Alice's session; bob asks for it by id: SESSION_NOT_FOUND for him, a probe row for the operator.
    let mut alice = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    let ack = alice.init(init_data("audited", None, "drive"));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("session id").to_string();
    let mut bob = Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY)]).expect("bob");
    init_refused(&mut bob, init_data(&sid, None, "observe"), "SESSION_NOT_FOUND");
    let probe = wait_row(&db, "foreign probe", |r| r.kind == "session_foreign_probe");
    assert_eq!(probe.actor_id.as_deref(), Some("bob"));
    assert_eq!(probe.session_id.as_deref(), Some(sid.as_str()));

    // Alice allows a tool: a permission_decision row with her as the actor.
    alice.send("input", json!({"content": "permission Bash"}));
    let req = alice.expect("permission_request");
    alice.send("permission_response", json!({"id": req["event"]["data"]["id"], "allowed": true}));
    let d = wait_row(&db, "permission decision", |r| r.kind == "permission_decision");
    assert_eq!((d.outcome.as_str(), d.reason.as_deref()), ("ok", Some("allowed")));
    assert_eq!((d.actor_kind.as_str(), d.actor_id.as_deref()), ("api_key", Some("alice")));
    assert_eq!(d.session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(d.detail["tool_name"], "Bash");

    let status = gw.signal_and_wait(libc::SIGTERM, Duration::from_secs(20)).expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    let all = rows(&db);
    assert_eq!(all.last().map(|r| r.kind.as_str()), Some("shutdown"), "{all:#?}");

    // The chain verifies, and no row carries a presented secret.
    let v = hotplex::security::audit::verify(&db).expect("verify");
    assert!(v.ok, "chain broken at {:?}", v.first_bad_id);
    assert_eq!(v.rows_checked as usize, all.len());
    let dump = format!("{all:?}");
    for secret in [WRONG_KEY, ALICE_KEY, BOB_KEY] {
        assert!(!dump.contains(secret), "a key reached the audit log: {dump}");
    }
}
