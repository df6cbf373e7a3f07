//! Session GC and retention (operations.md §2.1–§2.3, §3.6; aep-v1.md §4.2,
//! §5.1): the idle timer (only idle, detached sessions), the lifetime limit
//! (a running turn ends with SESSION_EXPIRED), the purge of terminated
//! sessions with their log, the tombstone of a deleted key, and the live
//! session limits. Every timeout used is pinned short in the test's YAML;
//! the store is read (read-only) to see what the GC did.
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::faults::{err_code, shape, sid};
use support::store;
use support::*;

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("frame without seq: {v}"))
}

fn data(v: &Value) -> &Value {
    &v["event"]["data"]
}

/// The stored state and reason of a session ("" when it has no row).
fn stored_state(dir: &Path, sid: &str) -> (String, String) {
    store::session(&store::open_ro(dir), sid).map(|r| (r.state, r.state_reason.unwrap_or_default())).unwrap_or_default()
}

/// Wait until the stored state is `state`; returns when it was seen.
fn wait_state(dir: &Path, sid: &str, state: &str, timeout: Duration) -> Instant {
    let ok = eventually(timeout, || stored_state(dir, sid).0 == state);
    assert!(ok, "session {sid} never became {state} in the store: {:?}", stored_state(dir, sid));
    Instant::now()
}

/// An `init` that must fail with `code` (connection-local error, then close 1008).
fn init_fails(gw: &Gateway, init: Value, code: &str) {
    let mut c = gw.connect();
    c.send("init", init);
    c.expect_error(code);
    assert_eq!(c.expect_close_only().0, 1008);
}

fn key(k: &str) -> Value {
    json!({"worker_type": "claude_code", "session_id": k})
}

/// Idle timer (§2.2): a detached idle session is terminated (reason
/// `idle_timeout`) no earlier than `idle_timeout` after its client left and
/// within a GC interval or so after; an observer then sees it `terminated`
/// and a driver resumes it. A session with an attached connection, and one
/// with a running turn and no connection, are left alone.
#[test]
fn idle_timeout_ends_only_detached_idle_sessions() {
    let yaml = r#"sessions:
  idle_timeout: "10s"
  gc_interval: "1s"
  max_lifetime: "24h"
gateway:
  ping_interval: "30s"
worker:
  stall_timeout: "0s"
  turn_timeout: "0s"
"#;
    let gw = Gateway::start_yaml(yaml);
    let dir = gw.dir.path();
    // A: idle, its client leaves. B: idle, its client stays. C: running, its client leaves.
    let mut a = gw.connect();
    let a_id = sid(&a.init_key("idle-a"));
    a.turn("say a");
    let a_last = a.seen.iter().map(seq).max().unwrap();
    let mut b = gw.connect();
    let b_id = sid(&b.init_key("idle-b"));
    b.turn("say b");
    let mut c = gw.connect();
    let c_id = sid(&c.init_key("idle-c"));
    c.send("input", json!({"content": "hang"}));
    c.until(WAIT, |v| is_state(v, "running"));
    let t0 = Instant::now();
    drop(a);
    drop(c);

    // Let most of the idle timeout pass: nothing may have been terminated yet.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    assert_eq!(stored_state(dir, &a_id).0, "idle", "terminated before idle_timeout");
    let at = wait_state(dir, &a_id, "terminated", Duration::from_secs(8));
    let after = at.duration_since(t0);
    assert!(after >= Duration::from_secs(10), "idle GC after {after:?} < idle_timeout");
    assert!(after < Duration::from_secs(14), "idle GC after {after:?}: more than a few gc_intervals late");
    assert_eq!(stored_state(dir, &a_id).1, "idle_timeout");
    assert!(eventually(WAIT, || processes_of_session(&a_id).is_empty()), "the idle worker was not stopped");

    // Two more sweeps: B (attached) and C (running) are untouched.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(stored_state(dir, &b_id), ("idle".into(), String::new()), "an attached session was GC'd");
    assert_eq!(stored_state(dir, &c_id).0, "running", "a running turn was GC'd for idleness");
    assert!(!processes_of_session(&c_id).is_empty(), "the running worker was stopped");
    b.expect_silence(Duration::from_millis(100));

    // An observer sees A terminated (and the state event in the replay);
    // observe never spawns a worker.
    let mut o = gw.connect();
    let ack = o.init(json!({"worker_type": "claude_code", "session_id": a_id, "mode": "observe", "last_seq": a_last}));
    assert_eq!((data(&ack)["state"].as_str(), data(&ack)["resumed"].as_bool()), (Some("terminated"), Some(true)));
    let t = o.recv();
    assert!(is_state(&t, "terminated") && data(&t)["message"] == "idle_timeout" && seq(&t) == a_last + 1, "{t}");
    assert!(processes_of_session(&a_id).is_empty(), "observe spawned a worker");
    drop(o);
    // A driver resumes it: the worker restarts and the conversation goes on.
    let mut a = gw.connect();
    let ack = a.init_key("idle-a");
    assert_eq!((data(&ack)["state"].as_str(), data(&ack)["resumed"].as_bool()), (Some("idle"), Some(true)));
    let idle = a.recv();
    assert!(is_state(&idle, "idle") && seq(&idle) > a_last + 1, "{idle}");
    assert!(delta_text(&a.turn("recall")).contains("'say a'"));
}

/// Lifetime limit (§2.2): `max_lifetime` after the live period began, an
/// idle session is terminated (`max_lifetime`, no error) and a running turn
/// first ends with `error{SESSION_EXPIRED}` + `done{success:false}`; a
/// resume starts a new live period.
#[test]
fn max_lifetime_ends_live_sessions_and_a_resume_starts_a_new_period() {
    let yaml = r#"sessions:
  max_lifetime: "3s"
  gc_interval: "1s"
  idle_timeout: "0s"
worker:
  stall_timeout: "0s"
  turn_timeout: "0s"
"#;
    let gw = Gateway::start_yaml(yaml);
    let mut idle = gw.connect();
    let t_idle = Instant::now();
    let idle_id = sid(&idle.init_key("life-idle"));
    let mut busy = gw.connect();
    let busy_id = sid(&busy.init_key("life-busy"));
    busy.send("input", json!({"content": "hang"}));

    let frames = idle.until(Duration::from_secs(8), |v| is_state(v, "terminated"));
    let lived = t_idle.elapsed();
    assert!(lived >= Duration::from_millis(2900), "terminated after {lived:?} < max_lifetime");
    assert_eq!(shape(&frames), ["state:terminated"], "{frames:#?}");
    assert_eq!(data(frames.last().unwrap())["message"], "max_lifetime");

    let frames = busy.until(Duration::from_secs(8), |v| is_state(v, "terminated"));
    assert_eq!(shape(&frames), ["state:running", "error:SESSION_EXPIRED", "done:false", "state:terminated"]);
    let err = frames.iter().find(|v| err_code(v) == "SESSION_EXPIRED").unwrap();
    assert!(seq(err) > 0, "the turn's error is a session event: {err}");
    assert_eq!(data(frames.last().unwrap())["message"], "max_lifetime");
    for id in [&idle_id, &busy_id] {
        assert_eq!(stored_state(gw.dir.path(), id), ("terminated".into(), "max_lifetime".into()));
        assert!(processes_of_session(id).is_empty(), "worker of {id} outlived its session");
    }

    // Resume: a new live period of max_lifetime.
    let t_resume = Instant::now();
    drop(idle);
    let mut again = gw.connect();
    let ack = again.init_key("life-idle");
    assert_eq!((data(&ack)["state"].as_str(), data(&ack)["resumed"].as_bool()), (Some("idle"), Some(true)));
    let frames = again.until(Duration::from_secs(8), |v| is_state(v, "terminated"));
    let lived = t_resume.elapsed();
    assert!(lived >= Duration::from_millis(2900), "the resumed period lasted {lived:?} < max_lifetime");
    assert_eq!(shape(&frames), ["state:idle", "state:terminated"]);
}

/// `store.retention` (§2.2, §3.6): a terminated session is purged with its
/// events, turns and snapshots once it has been terminated that long; the
/// same client key then creates a fresh session (`resumed:false`, seq from 1).
#[test]
fn retention_purges_a_terminated_session_and_its_log() {
    let yaml = r#"store:
  retention: "2s"
sessions:
  gc_interval: "1s"
  idle_timeout: "0s"
"#;
    let gw = Gateway::start_yaml(yaml);
    let dir = gw.dir.path();
    let mut c = gw.connect();
    let id = sid(&c.init_key("short-lived"));
    c.turn("say keep me");
    c.send("control", json!({"action": "terminate"}));
    c.until(WAIT, |v| is_state(v, "terminated"));
    let t_term = Instant::now();
    drop(c);
    {
        let db = store::open_ro(dir);
        for table in ["sessions", "events", "turns"] {
            assert!(store::rows_of(&db, table, &id) > 0, "no {table} rows before the purge");
        }
    }
    assert!(eventually(Duration::from_secs(10), || store::all_rows_of(&store::open_ro(dir), &id) == 0), "never purged");
    let purged = t_term.elapsed();
    assert!(purged >= Duration::from_millis(1900), "purged after {purged:?} < store.retention");

    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "short-lived", "last_seq": 7}));
    let d = data(&ack);
    assert_eq!(d["session_id"], id.as_str(), "the key derives the same id");
    assert_eq!(
        (d["resumed"].as_bool(), d["state"].as_str(), d["last_seq"].as_u64()),
        (Some(false), Some("idle"), Some(0))
    );
    let t = c.turn("recall");
    assert_eq!(seq(&t[0]), 1, "a fresh log starts at seq 1: {t:#?}");
    assert!(delta_text(&t).contains("(none)"), "a fresh agent session: {}", delta_text(&t));
    assert_eq!(stored_state(dir, &id).0, "idle");
}

/// Tombstones (§2.2, §3.2): a deleted key is refused (SESSION_NOT_FOUND)
/// while its tombstone lives; after `store.tombstone_retention` the row is
/// gone and the key creates a fresh session.
#[test]
fn tombstone_retention_frees_a_deleted_key() {
    let yaml = r#"store:
  tombstone_retention: "2s"
sessions:
  gc_interval: "1s"
"#;
    let gw = Gateway::start_yaml(yaml);
    let dir = gw.dir.path();
    let mut c = gw.connect();
    let id = sid(&c.init_key("tomb"));
    c.turn("hello");
    c.send("control", json!({"action": "delete"}));
    c.until(WAIT, |v| is_state(v, "deleted"));
    let t_del = Instant::now();
    assert_eq!(c.expect_close().0, 1000);
    init_fails(&gw, key("tomb"), "SESSION_NOT_FOUND");
    assert_eq!(stored_state(dir, &id).0, "deleted", "tombstone row");

    assert!(
        eventually(Duration::from_secs(10), || store::all_rows_of(&store::open_ro(dir), &id) == 0),
        "tombstone kept"
    );
    assert!(t_del.elapsed() >= Duration::from_millis(1900), "tombstone purged after {:?}", t_del.elapsed());
    // The reactors forget their copy of the tombstone at their own sweep (≤ one gc_interval).
    let deadline = Instant::now() + Duration::from_secs(3);
    let ack = loop {
        let mut c = gw.connect();
        c.send("init", key("tomb"));
        let v = c.recv();
        if ev_type(&v) == "init_ack" {
            break v;
        }
        assert_eq!(err_code(&v), "SESSION_NOT_FOUND", "{v}");
        assert!(Instant::now() < deadline, "the key stayed refused after its tombstone was purged");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(data(&ack)["session_id"], id.as_str());
    assert_eq!(data(&ack)["resumed"], false, "{ack}");
}

/// Live-session limits (§1.5 `sessions.max_total` / `max_per_owner`):
/// GATEWAY_OVERLOAD at init beyond them, counting live sessions only — a
/// terminated session frees its slot, resuming it needs one again.
#[test]
fn session_limits_count_live_sessions_only() {
    for (yaml, what) in [
        ("sessions:\n  max_total: 2\n  max_per_owner: 0\n  max_stored_per_owner: 0\n", "max_total"),
        ("sessions:\n  max_total: 0\n  max_per_owner: 2\n  max_stored_per_owner: 0\n", "max_per_owner"),
    ] {
        let gw = Gateway::start_yaml(yaml);
        let mut a = gw.connect();
        a.init_key("limit-a");
        let mut b = gw.connect();
        b.init_key("limit-b");
        init_fails(&gw, key("limit-c"), "GATEWAY_OVERLOAD");
        init_fails(&gw, json!({"worker_type": "claude_code"}), "GATEWAY_OVERLOAD");

        a.send("control", json!({"action": "terminate"}));
        a.until(WAIT, |v| is_state(v, "terminated"));
        let mut c = gw.connect();
        let ack = c.init_key("limit-c");
        assert_eq!(data(&ack)["resumed"], false, "{what}: a terminated session frees its slot");
        // Resuming the terminated one needs a live slot again.
        init_fails(&gw, key("limit-a"), "GATEWAY_OVERLOAD");
        b.send("control", json!({"action": "delete"}));
        b.until(WAIT, |v| is_state(v, "deleted"));
        let mut a2 = gw.connect();
        let ack = a2.init_key("limit-a");
        assert_eq!(data(&ack)["resumed"], true, "{what}: {ack}");
        a2.turn("say still here");
    }
}
