//! Startup recovery (operations.md §2.5), run on the write connection before
//! any listener accepts: sessions that were live when the previous process
//! stopped become `terminated` (reason `restart_recovery`), an open turn is
//! closed in the log with `error{INTERNAL_ERROR}` + `done{success:false}`,
//! `created` rows are dropped, and the worker groups they recorded are
//! returned for an orphan check.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::protocol::envelope::encode_with_data;
use crate::protocol::{ErrorCode, Event, SessionState, now_ms};

/// What recovery did.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    pub clean_shutdown: bool,
    pub created_removed: usize,
    pub terminated: usize,
    /// (pid, starttime) of worker leaders recorded for recovered sessions.
    pub orphans: Vec<(i32, u64)>,
    /// Ids of the recovered sessions (their workers' `HOTPLEX_SESSION_ID`).
    pub session_ids: Vec<String>,
    /// `meta.instance_id` (workers' `HOTPLEX_INSTANCE_ID`, the tracing resource's `service.instance.id`).
    pub instance_id: String,
}

fn data_of(ev: &Event, session_id: &str, seq: u64, ts: u64) -> String {
    let (json, range) = encode_with_data(seq, session_id, ts, ev);
    String::from_utf8_lossy(&json[range]).into_owned()
}

/// A session found live: id, last seq, worker pid, its start ticks, turns.
struct LiveRow {
    id: String,
    worker_type: String,
    last_seq: u64,
    pid: Option<i32>,
    ticks: Option<u64>,
    turns: u64,
}

pub fn recover(conn: &mut Connection) -> rusqlite::Result<Recovered> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let clean: Option<String> =
        tx.query_row("SELECT value FROM meta WHERE key = 'clean_shutdown'", [], |r| r.get(0)).ok();
    let mut out = Recovered { clean_shutdown: clean.as_deref() == Some("1"), ..Recovered::default() };
    tx.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('instance_id', ?1)",
        params![uuid::Uuid::new_v4().to_string()],
    )?;
    out.instance_id = tx.query_row("SELECT value FROM meta WHERE key = 'instance_id'", [], |r| r.get(0))?;
    tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('clean_shutdown', '0')", [])?;
    tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('started_at', ?1)", params![now.to_string()])?;
    out.created_removed = tx.execute("DELETE FROM sessions WHERE state = 'created'", [])?;

    let live: Vec<LiveRow> = {
        let mut stmt = tx.prepare(
            "SELECT s.id, MAX(s.last_seq, COALESCE((SELECT MAX(seq) FROM events e WHERE e.session_id = s.id), 0)), \
             s.worker_pid, s.worker_start_ticks, s.turns, s.worker_type FROM sessions s WHERE s.state IN ('idle', 'running')",
        )?;
        stmt.query_map([], |r| {
            Ok(LiveRow {
                id: r.get(0)?,
                last_seq: r.get::<_, i64>(1)? as u64,
                pid: r.get(2)?,
                ticks: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                turns: r.get::<_, i64>(4)? as u64,
                worker_type: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?
    };
    {
        let mut ins = tx.prepare(
            "INSERT INTO events(session_id, seq, seq_first, type, ts, data, splits) VALUES (?1, ?2, NULL, ?3, ?4, ?5, NULL)",
        )?;
        // The log, not the row, says whether a turn is open: the row update
        // and the events around it may sit in different batches, so the row
        // can still say `running` after the turn's `done` was committed (and
        // seen), or already say it before its `state{running}` was.
        let mut last_turn_event = tx.prepare(
            "SELECT type, data FROM events WHERE session_id = ?1 AND type IN ('state', 'done') ORDER BY seq DESC LIMIT 1",
        )?;
        for LiveRow { id, last_seq, pid, ticks, turns, .. } in &live {
            let mut seq = *last_seq;
            let open_turn = last_turn_event
                .query_row(params![id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .optional()?
                .is_some_and(|(ty, data)| {
                    ty == "state"
                        && serde_json::from_str::<serde_json::Value>(&data).is_ok_and(|v| v["state"] == "running")
                });
            if open_turn {
                let err = Event::Error {
                    code: ErrorCode::InternalError,
                    message: "turn aborted: gateway restarted".into(),
                    event_id: None,
                    details: Some(serde_json::json!({"reason": "gateway_restart"})),
                };
                seq += 1;
                ins.execute(params![id, seq as i64, "error", now as i64, data_of(&err, id, seq, now)])?;
                let done = Event::Done { success: false, stats: None };
                seq += 1;
                ins.execute(params![id, seq as i64, "done", now as i64, data_of(&done, id, seq, now)])?;
                tx.execute(
                    "UPDATE turns SET end_seq = ?3, ended_at = ?4, success = 0 WHERE session_id = ?1 AND turn = ?2 AND end_seq IS NULL",
                    params![id, *turns as i64, seq as i64, now as i64],
                )?;
            }
            let st = Event::state(SessionState::Terminated, Some("restart_recovery"));
            seq += 1;
            ins.execute(params![id, seq as i64, "state", now as i64, data_of(&st, id, seq, now)])?;
            tx.execute(
                "UPDATE sessions SET state = 'terminated', state_reason = 'restart_recovery', terminated_at = ?2, \
                 updated_at = ?2, live_since = NULL, worker_pid = NULL, worker_start_ticks = NULL, last_seq = ?3 WHERE id = ?1",
                params![id, now as i64, seq as i64],
            )?;
            if let (Some(p), Some(t)) = (pid, ticks) {
                out.orphans.push((*p, *t));
            }
            out.session_ids.push(id.clone());
            out.terminated += 1;
        }
    }
    tx.commit()?;
    for row in &live {
        crate::metrics::session_recovered(&row.worker_type);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{StoreOptions, open_writer};

    #[test]
    fn live_sessions_become_terminated_with_a_closed_turn() {
        let dir = std::env::temp_dir().join(format!("hotplex-recovery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut conn = open_writer(&dir.join("db"), &StoreOptions::default()).unwrap();
        for (id, state, last) in [("a", "running", 5), ("b", "idle", 2), ("c", "created", 0), ("d", "terminated", 7)] {
            conn.execute(
                "INSERT INTO sessions(id, owner, worker_type, work_dir, state, created_at, updated_at, last_active_at, last_seq, turns, worker_pid, worker_start_ticks) \
                 VALUES (?1, 'o', 'claude_code', '/w', ?2, 0, 0, 0, ?3, 1, 4242, 99)",
                params![id, state, last],
            )
            .unwrap();
        }
        // a's log: its turn is open (state{running} last)
        conn.execute(
            "INSERT INTO events(session_id, seq, type, ts, data) VALUES ('a', 4, 'done', 0, '{\"success\":true}'), \
             ('a', 5, 'state', 0, '{\"state\":\"running\"}')",
            [],
        )
        .unwrap();
        let r = recover(&mut conn).unwrap();
        assert_eq!(r.created_removed, 1);
        assert_eq!(r.terminated, 2);
        assert_eq!(r.orphans.len(), 2);
        assert!(!r.clean_shutdown);
        let types: Vec<(i64, String)> = conn
            .prepare("SELECT seq, type FROM events WHERE session_id = 'a' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            types,
            vec![(4, "done".into()), (5, "state".into()), (6, "error".into()), (7, "done".into()), (8, "state".into())]
        );
        let (state, reason, last): (String, String, i64) = conn
            .query_row("SELECT state, state_reason, last_seq FROM sessions WHERE id = 'a'", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((state.as_str(), reason.as_str(), last), ("terminated", "restart_recovery", 8));
        let b_last: i64 = conn.query_row("SELECT last_seq FROM sessions WHERE id = 'b'", [], |r| r.get(0)).unwrap();
        assert_eq!(b_last, 3);
        let d: String = conn.query_row("SELECT state FROM sessions WHERE id = 'd'", [], |r| r.get(0)).unwrap();
        assert_eq!(d, "terminated");
        let data: String =
            conn.query_row("SELECT data FROM events WHERE session_id = 'a' AND seq = 6", [], |r| r.get(0)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v["code"], "INTERNAL_ERROR");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The row and the log can disagree at a batch boundary: the log decides.
    #[test]
    fn the_log_not_the_row_says_whether_a_turn_is_open() {
        let dir = std::env::temp_dir().join(format!("hotplex-recovery-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut conn = open_writer(&dir.join("db"), &StoreOptions::default()).unwrap();
        // "done": row still `running`, its turn's done already committed (and maybe seen).
        // "started": row still `idle`, its state{running} already committed.
        for (id, state, last, events) in [
            (
                "done",
                "running",
                3,
                "('done', 1, 'state', 0, '{\"state\":\"running\"}'), ('done', 2, 'message', 0, '{}'), ('done', 3, 'done', 0, '{}')",
            ),
            ("started", "idle", 1, "('started', 1, 'state', 0, '{\"state\":\"running\"}')"),
        ] {
            conn.execute(
                "INSERT INTO sessions(id, owner, worker_type, work_dir, state, created_at, updated_at, last_active_at, last_seq, turns) \
                 VALUES (?1, 'o', 'claude_code', '/w', ?2, 0, 0, 0, ?3, 1)",
                params![id, state, last],
            )
            .unwrap();
            conn.execute(&format!("INSERT INTO events(session_id, seq, type, ts, data) VALUES {events}"), []).unwrap();
        }
        recover(&mut conn).unwrap();
        let types = |id: &str| -> Vec<String> {
            conn.prepare("SELECT type FROM events WHERE session_id = ?1 ORDER BY seq")
                .unwrap()
                .query_map(params![id], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(types("done"), ["state", "message", "done", "state"], "no second done");
        assert_eq!(types("started"), ["state", "error", "done", "state"], "the open turn is closed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
