//! Retention jobs the writer runs between batches (operations.md §3.6), each
//! in short transactions of at most [`CHUNK`] rows so commits of live events
//! are never held up for long:
//! * replay trim: events both older than `store.replay_retention` and not
//!   among the last `store.replay_retention_events` of their session; the
//!   text of trimmed `message.delta` rows is folded into `message_snapshots`
//!   first, so an expired replay can still send it;
//! * session purge: `terminated` sessions older than `store.retention`
//!   (events, turns and snapshots go with them);
//! * tombstone purge: `deleted` rows older than `store.tombstone_retention`;
//! * audit purge: audit rows older than `store.audit_retention`, the last
//!   pruned hash kept in `audit_anchor` (security.md §10.3).

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};

/// Rows per transaction.
pub const CHUNK: usize = 5000;

#[derive(Clone, Debug)]
pub struct RetentionConfig {
    pub replay_retention: Duration,
    pub replay_retention_events: u64,
    pub retention: Duration,
    pub tombstone_retention: Duration,
    pub audit_retention: Duration,
    /// How often the jobs run (`sessions.gc_interval`).
    pub interval: Duration,
}

/// Rows removed by one run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub sessions: u64,
    pub tombstones: u64,
    pub audit: u64,
}

pub fn run(conn: &mut Connection, cfg: &RetentionConfig, now_ms: u64) -> rusqlite::Result<Purged> {
    let mut p = Purged::default();
    let ms = |d: Duration| d.as_millis() as u64;
    p.events = trim_replay(conn, now_ms.saturating_sub(ms(cfg.replay_retention)), cfg.replay_retention_events)?;
    p.sessions = purge_sessions(conn, "terminated", now_ms.saturating_sub(ms(cfg.retention)))?;
    p.tombstones = purge_sessions(conn, "deleted", now_ms.saturating_sub(ms(cfg.tombstone_retention)))?;
    p.audit = crate::security::audit::purge(conn, now_ms.saturating_sub(ms(cfg.audit_retention)))?;
    Ok(p)
}

fn purge_sessions(conn: &mut Connection, state: &str, before_ms: u64) -> rusqlite::Result<u64> {
    let mut total = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id FROM sessions WHERE state = ?1 AND terminated_at IS NOT NULL AND terminated_at < ?2 LIMIT 100",
            )?;
            stmt.query_map(params![state, before_ms as i64], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        if ids.is_empty() {
            tx.commit()?;
            return Ok(total);
        }
        for id in &ids {
            // children in chunks, then the row (ON DELETE CASCADE would do it in one go, unbounded)
            loop {
                let n = tx.execute(
                    "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE session_id = ?1 LIMIT ?2)",
                    params![id, CHUNK as i64],
                )?;
                if n < CHUNK {
                    break;
                }
            }
            tx.execute("DELETE FROM turns WHERE session_id = ?1", params![id])?;
            tx.execute("DELETE FROM message_snapshots WHERE session_id = ?1", params![id])?;
            tx.execute("DELETE FROM sessions WHERE id = ?1", params![id])?;
            total += 1;
        }
        tx.commit()?;
    }
}

fn trim_replay(conn: &mut Connection, older_than_ms: u64, keep: u64) -> rusqlite::Result<u64> {
    let sessions: Vec<String> = {
        let mut stmt = conn.prepare("SELECT session_id FROM events GROUP BY session_id HAVING COUNT(*) > ?1")?;
        stmt.query_map(params![keep as i64], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    let mut total = 0;
    for sid in sessions {
        // Rows below the keep-th newest are candidates; only the old ones go.
        let cutoff: Option<i64> = conn
            .query_row(
                "SELECT seq FROM events WHERE session_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
                params![sid, keep.saturating_sub(1) as i64],
                |r| r.get(0),
            )
            .ok();
        let Some(cutoff) = cutoff else { continue };
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows: Vec<(i64, String, String)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT seq, type, data FROM events WHERE session_id = ?1 AND seq < ?2 AND ts < ?3 ORDER BY seq LIMIT ?4",
                )?;
                stmt.query_map(params![sid, cutoff, older_than_ms as i64, CHUNK as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?
            };
            if rows.is_empty() {
                tx.commit()?;
                break;
            }
            for (seq, ty, data) in &rows {
                if ty == "message.delta" {
                    let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                    let (Some(mid), Some(content)) = (v["message_id"].as_str(), v["content"].as_str()) else {
                        continue;
                    };
                    tx.execute(
                        "INSERT INTO message_snapshots(session_id, message_id, last_seq, content) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT(session_id, message_id) DO UPDATE SET content = content || excluded.content, \
                         last_seq = excluded.last_seq",
                        params![sid, mid, seq, content],
                    )?;
                }
            }
            let last = rows.last().map(|r| r.0).unwrap_or(0);
            let n = tx.execute(
                "DELETE FROM events WHERE session_id = ?1 AND seq <= ?2 AND seq < ?3 AND ts < ?4",
                params![sid, last, cutoff, older_than_ms as i64],
            )?;
            tx.commit()?;
            total += n as u64;
            if rows.len() < CHUNK {
                break;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::reader::events_after;
    use crate::store::schema::{StoreOptions, open_writer};

    fn db(tag: &str) -> (std::path::PathBuf, Connection) {
        let dir = std::env::temp_dir().join(format!("hotplex-retention-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = open_writer(&dir.join("db"), &StoreOptions::default()).unwrap();
        (dir, c)
    }

    fn session(c: &Connection, id: &str, state: &str, terminated_at: Option<i64>) {
        c.execute(
            "INSERT INTO sessions(id, owner, worker_type, work_dir, state, created_at, updated_at, last_active_at, terminated_at) \
             VALUES (?1, 'o', 'claude_code', '/w', ?2, 0, 0, 0, ?3)",
            params![id, state, terminated_at],
        )
        .unwrap();
    }

    #[test]
    fn trims_old_events_and_keeps_trimmed_text() {
        let (dir, mut c) = db("trim");
        session(&c, "s", "idle", None);
        for seq in 1..=20i64 {
            let (ty, data) = if (3..=6).contains(&seq) {
                ("message.delta", format!(r#"{{"message_id":"m","content":"p{seq} "}}"#))
            } else {
                ("state", r#"{"state":"idle"}"#.to_string())
            };
            let ts = if seq <= 15 { 1000 } else { 9_000_000 };
            c.execute(
                "INSERT INTO events(session_id, seq, type, ts, data) VALUES ('s', ?1, ?2, ?3, ?4)",
                params![seq, ty, ts, data],
            )
            .unwrap();
        }
        let cfg = RetentionConfig {
            replay_retention: Duration::from_secs(60),
            replay_retention_events: 8,
            retention: Duration::from_secs(3600),
            tombstone_retention: Duration::from_secs(3600),
            audit_retention: Duration::from_secs(3600),
            interval: Duration::from_secs(1),
        };
        let p = run(&mut c, &cfg, 10_000_000).unwrap();
        // the newest 8 (13..=20) are kept; of the rest only old ones (ts 1000) go: 1..=12
        assert_eq!(p.events, 12);
        let page = events_after(&c, "s", 0, 100, usize::MAX).unwrap();
        assert_eq!(page.oldest_seq, Some(13));
        let snap: (i64, String) = c
            .query_row("SELECT last_seq, content FROM message_snapshots WHERE message_id = 'm'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(snap, (6, "p3 p4 p5 p6 ".to_string()));
        let expired = events_after(&c, "s", 2, 100, usize::MAX).unwrap();
        assert_eq!(expired.snapshots.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn purges_old_terminated_sessions_and_tombstones() {
        let (dir, mut c) = db("purge");
        session(&c, "old", "terminated", Some(1000));
        session(&c, "new", "terminated", Some(9_999_000));
        session(&c, "gone", "deleted", Some(1000));
        session(&c, "live", "idle", None);
        c.execute("INSERT INTO events(session_id, seq, type, ts, data) VALUES ('old', 1, 'state', 1, '{}')", [])
            .unwrap();
        let cfg = RetentionConfig {
            replay_retention: Duration::from_secs(60),
            replay_retention_events: 100,
            retention: Duration::from_secs(10),
            tombstone_retention: Duration::from_secs(10),
            audit_retention: Duration::from_secs(10),
            interval: Duration::from_secs(1),
        };
        let p = run(&mut c, &cfg, 10_000_000).unwrap();
        assert_eq!((p.sessions, p.tombstones), (1, 1));
        let left: Vec<String> = c
            .prepare("SELECT id FROM sessions ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, vec!["live".to_string(), "new".to_string()]);
        let n: i64 = c.query_row("SELECT COUNT(*) FROM events WHERE session_id = 'old'", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
