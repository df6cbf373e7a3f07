//! Audit chain, redaction, flood control and purge (security.md §10.3, §10.4).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::store::schema::{StoreOptions, open_writer};
use crate::store::writer::{WriterConfig, start};
use crate::store::{CommitSink, WriterHandle};

struct NoSink;
impl CommitSink for NoSink {
    fn committed(&self, _: usize, _: Vec<(Arc<str>, u64)>) {}
    fn failed(&self, _: usize, _: Arc<str>, _: u64) {}
    fn writable(&self, _: usize) {}
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotplex-audit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn writer(tag: &str) -> (PathBuf, WriterHandle, std::thread::JoinHandle<()>) {
    let path = dir(tag).join("db");
    let conn = open_writer(&path, &StoreOptions::default()).unwrap();
    let cfg = WriterConfig {
        batch_max_ops: 64,
        commit_interval: Duration::from_millis(2),
        queue_capacity: 4096,
        reactors: 1,
        retention: None,
    };
    let (h, j) = start(conn, cfg, Box::new(NoSink)).unwrap();
    (path, h, j)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry::new(AuditKind::PolicyViolation, AuditOutcome::Denied, ActorKind::ApiKey)
        .at(1_000 + i)
        .reason("work_dir_escape")
        .actor("alice")
        .credential("ak_0123456789abcdef")
        .client_ip(ip(&format!("203.0.113.{}", i % 250)))
        .session(&format!("s-{i}"))
        .detail(Detail::from_value(json!({"field": "work_dir", "n": i})).unwrap())
}

#[test]
fn chain_verifies_and_tampering_is_located() {
    let (path, h, j) = writer("chain");
    for i in 0..25 {
        assert!(try_record(&h, entry(i)));
    }
    assert_eq!(record_sync(&h, entry(25), Duration::from_secs(5)), Ok(AuditAck::Stored));
    assert!(h.shutdown(Duration::from_secs(5)));
    j.join().unwrap();

    let conn = Connection::open(&path).unwrap();
    let r = verify(&conn).unwrap();
    assert_eq!(r, VerifyResult { ok: true, rows_checked: 26, first_bad_id: None, anchor: None });
    let first_prev: Vec<u8> =
        conn.query_row("SELECT prev_hash FROM audit_log ORDER BY id LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(first_prev, GENESIS.to_vec());

    // edit one row's detail (the sqlite3 CLI vector)
    conn.execute("UPDATE audit_log SET detail = '{\"field\":\"x\"}' WHERE id = 7", []).unwrap();
    let r = verify(&conn).unwrap();
    assert_eq!((r.ok, r.first_bad_id, r.rows_checked), (false, Some(7), 6));

    // restore it, then delete a middle row: the next one breaks the chain
    conn.execute("UPDATE audit_log SET detail = '{\"field\":\"work_dir\",\"n\":6}' WHERE id = 7", []).unwrap();
    assert!(verify(&conn).unwrap().ok);
    conn.execute("DELETE FROM audit_log WHERE id = 12", []).unwrap();
    assert_eq!(verify(&conn).unwrap().first_bad_id, Some(13));

    // clearing a field is a change too
    conn.execute("UPDATE audit_log SET reason = NULL WHERE id = 3", []).unwrap();
    assert_eq!(verify(&conn).unwrap().first_bad_id, Some(3));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn purge_keeps_the_chain_verifiable_from_the_anchor() {
    let path = dir("purge").join("db");
    let mut conn = open_writer(&path, &StoreOptions::default()).unwrap();
    for i in 0..30 {
        let tx = conn.transaction().unwrap();
        insert(&tx, &entry(i)).unwrap();
        tx.commit().unwrap();
    }
    // rows 0..20 have ts 1000..1019
    let n = purge(&mut conn, 1_020).unwrap();
    assert_eq!(n, 20);
    let r = verify(&conn).unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.rows_checked, 10);
    let last_pruned: Vec<u8> =
        conn.query_row("SELECT last_pruned_hash FROM audit_anchor WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(r.anchor.map(|a| a.to_vec()), Some(last_pruned));
    assert_eq!(r.anchor_hex().unwrap().len(), 64);

    // everything pruned, then new rows continue from the anchor
    assert_eq!(purge(&mut conn, u64::MAX / 2).unwrap(), 10);
    let r1 = verify(&conn).unwrap();
    assert!(r1.ok && r1.rows_checked == 0 && r1.anchor.is_some() && r1.anchor != r.anchor, "{r1:?}");
    insert(&conn, &entry(99)).unwrap();
    let r2 = verify(&conn).unwrap();
    assert!(r2.ok && r2.rows_checked == 1, "{r2:?}");

    // a forged anchor is detected at the first remaining row
    conn.execute("UPDATE audit_anchor SET last_pruned_hash = zeroblob(32)", []).unwrap();
    assert!(!verify(&conn).unwrap().ok);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn purge_removes_only_a_prefix_and_runs_in_chunks() {
    let path = dir("prefix").join("db");
    let mut conn = open_writer(&path, &StoreOptions::default()).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..(PURGE_CHUNK as u64 + 7) {
        insert(&tx, &entry(0).at(if i == 5 { 9_999_999 } else { 10 })).unwrap();
    }
    tx.commit().unwrap();
    // row 6 (ts 9_999_999) is new: only rows 1..=5 can go
    assert_eq!(purge(&mut conn, 1_000).unwrap(), 5);
    assert!(verify(&conn).unwrap().ok);
    conn.execute("UPDATE audit_log SET ts_ms = 10 WHERE id = 6", []).unwrap();
    // the hash covers ts_ms: re-stamping it is tampering
    assert_eq!(verify(&conn).unwrap().first_bad_id, Some(6));
    assert_eq!(purge(&mut conn, 1_000).unwrap(), PURGE_CHUNK as u64 + 2);
    assert!(verify(&conn).unwrap().ok);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn retention_job_purges_audit_rows() {
    let path = dir("retention").join("db");
    let mut conn = open_writer(&path, &StoreOptions::default()).unwrap();
    for i in 0..3 {
        insert(&conn, &entry(i)).unwrap();
    }
    let cfg = crate::store::retention::RetentionConfig {
        replay_retention: Duration::from_secs(60),
        replay_retention_events: 10,
        retention: Duration::from_secs(60),
        tombstone_retention: Duration::from_secs(60),
        audit_retention: Duration::from_secs(1),
        interval: Duration::from_secs(1),
    };
    let p = crate::store::retention::run(&mut conn, &cfg, 1_000_000).unwrap();
    assert_eq!(p.audit, 3);
    assert!(verify(&conn).unwrap().ok);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn flood_control_writes_ten_then_one_summary() {
    let mut f = FloodControl::new();
    let e = AuditEntry::new(AuditKind::AuthFailure, AuditOutcome::Denied, ActorKind::Unauthenticated)
        .client_ip(ip("198.51.100.9"));
    let written = (0..1000).filter(|i| f.admit(&e, 5_000 + i)).count();
    assert_eq!(written, 10);
    // another IP and another kind have their own budget
    let other = e.clone().client_ip(ip("198.51.100.10"));
    assert!(f.admit(&other, 5_500));
    // admin actions are never held back
    let admin = AuditEntry::new(AuditKind::AdminAction, AuditOutcome::Ok, ActorKind::AdminToken);
    assert!((0..50).all(|_| f.admit(&admin, 5_500)));
    assert!(f.due(64_999).is_empty());
    assert_eq!(f.next_due(), Some(65_000));
    let s = f.due(65_000);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].kind, AuditKind::AuditSummary);
    assert_eq!(s[0].client_ip, Some(ip("198.51.100.9")));
    let d: Value = serde_json::from_str(s[0].detail_str().unwrap()).unwrap();
    assert_eq!(d["count"], 990);
    assert_eq!(d["kind"], "auth_failure");
    assert_eq!(f.next_due(), None);
    // a new window starts fresh
    assert!(f.admit(&e, 70_000));
}

#[test]
fn the_writer_applies_flood_control_and_flushes_summaries_at_shutdown() {
    let (path, h, j) = writer("flood");
    let e = AuditEntry::new(AuditKind::AuthFailure, AuditOutcome::Denied, ActorKind::Unauthenticated)
        .reason("invalid_credential")
        .client_ip(ip("::ffff:192.0.2.1"));
    for _ in 0..15 {
        try_record(&h, e.clone());
    }
    assert_eq!(record_sync(&h, e.clone(), Duration::from_secs(5)), Ok(AuditAck::Suppressed));
    assert!(h.shutdown(Duration::from_secs(5)));
    j.join().unwrap();
    let conn = Connection::open(&path).unwrap();
    let count = |kind: &str| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM audit_log WHERE kind = ?1", [kind], |r| r.get(0)).unwrap()
    };
    assert_eq!(count("auth_failure"), 10);
    assert_eq!(count("audit_summary"), 1);
    let (detail, cip): (String, String) = conn
        .query_row("SELECT detail, client_ip FROM audit_log WHERE kind = 'audit_summary'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&detail).unwrap()["count"], 6);
    assert_eq!(cip, "192.0.2.1"); // IPv4-mapped peers are stored as IPv4
    assert!(verify(&conn).unwrap().ok);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn detail_is_redacted_and_bounded() {
    let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    let d = Detail::from_value(json!({
        "path": "/admin/sessions/x",
        "token": "abc",
        "Authorization": "Bearer xyz",
        "content": "SECRET-CANARY-1",
        "nested": {"api_key": "k", "ok": 1, "deeper": {"deepest": {"x": 1}}},
        "note": format!("header was {jwt} here\u{7}"),
        "long": "x".repeat(1000),
    }))
    .unwrap();
    let s = d.as_str();
    for secret in ["abc", "xyz", "SECRET-CANARY-1", "\"k\"", jwt, "\u{7}"] {
        assert!(!s.contains(secret), "{secret} leaked: {s}");
    }
    let v: Value = serde_json::from_str(s).unwrap();
    assert_eq!(v["note"], "header was *** here");
    assert_eq!(v["long"].as_str().unwrap().len(), MAX_FIELD_BYTES);
    assert_eq!(v["nested"]["ok"], 1);
    assert_eq!(v["nested"]["deeper"]["deepest"], "…");
    assert!(Detail::from_value(json!([1, 2])).is_none());

    let mut big = Map::new();
    for i in 0..100 {
        big.insert(format!("k{i:03}"), Value::String("y".repeat(200)));
    }
    let d = Detail::from_map(big);
    assert!(d.as_str().len() <= MAX_DETAIL_BYTES, "{}", d.as_str().len());
    let v: Value = serde_json::from_str(d.as_str()).unwrap();
    assert_eq!(v["truncated"], true);
}

#[test]
fn text_fields_are_cleaned() {
    let e = AuditEntry::new(AuditKind::AuthFailure, AuditOutcome::Denied, ActorKind::Jwt)
        .credential("k1:eyJa.eyJb.sig")
        .actor("bob\r\nINJECTED")
        .reason(&"é".repeat(300));
    assert_eq!(e.credential_id(), Some("k1:***"));
    assert_eq!(e.actor_id(), Some("bobINJECTED"));
    assert!(e.reason_str().unwrap().len() <= MAX_FIELD_BYTES);
    assert_eq!(redact_tokens("eyJ.not-a-token"), "eyJ.not-a-token");
    assert_eq!(redact_tokens("a eyJx.y.z b eyJq.r.s"), "a *** b ***");
    assert_eq!(redact_tokens("xeyJx.y.z"), "xeyJx.y.z");
}

#[test]
fn hash_input_is_unambiguous() {
    let f = |a: Option<&'static [u8]>, b: Option<&'static [u8]>| {
        let mut text = [None; 9];
        text[2] = a;
        text[4] = b;
        chain_hash(&GENESIS, &Fields { ts_ms: 1, text })
    };
    assert_ne!(f(Some(b"ab"), None), f(Some(b"a"), Some(b"b")));
    assert_ne!(f(Some(b""), None), f(None, None));
    assert_ne!(f(None, Some(b"")), f(Some(b""), None));
}

#[test]
fn kinds_outcomes_and_actor_kinds_match_the_schema() {
    let sql = include_str!("../../store/migrations/0001_init.sql");
    let block = &sql[sql.find("CREATE TABLE audit_log").unwrap()..];
    let block = &block[..block.find("CREATE INDEX").unwrap()];
    let words = |from: &str, to: &str| -> Vec<String> {
        let s = &block[block.find(from).unwrap()..];
        let s = &s[..s.find(to).unwrap()];
        s.split("--")
            .skip(1)
            .flat_map(|c| c.lines().next().unwrap_or("").split([',', '|']))
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let kinds = words("kind ", "outcome ");
    assert_eq!(kinds, AuditKind::ALL.iter().map(|k| k.as_str().to_owned()).collect::<Vec<_>>());
    let outcomes = words("outcome ", "reason ");
    assert_eq!(outcomes, AuditOutcome::ALL.iter().map(|k| k.as_str().to_owned()).collect::<Vec<_>>());
    let actors = words("actor_kind ", "actor_id ");
    assert_eq!(actors, ActorKind::ALL.iter().map(|k| k.as_str().to_owned()).collect::<Vec<_>>());
    for k in AuditKind::ALL {
        assert_eq!(AuditKind::parse(k.as_str()), Some(*k));
    }
}
