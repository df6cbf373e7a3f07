//! Read-only views of a gateway's SQLite store (operations.md §3.2) for
//! black-box checks: the tests open `<dir>/data/hotplex.db` read-only, one
//! short-lived connection per look, while the gateway runs or after it died.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value;

/// The database file of a gateway started by the harness (`base_config`).
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("data/hotplex.db")
}

/// A read-only connection to the database under `dir`.
pub fn open_ro(dir: &Path) -> Connection {
    let path = db_path(dir);
    let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()));
    c.busy_timeout(Duration::from_secs(5)).expect("busy_timeout");
    c
}

/// One stored event row; a merged `message.delta` row spans `seq_first..=seq`.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub seq: u64,
    pub seq_first: Option<u64>,
    pub ty: String,
    pub data: Value,
    pub splits: Option<Vec<usize>>,
}

impl EventRow {
    /// First seq this row holds.
    pub fn first(&self) -> u64 {
        self.seq_first.unwrap_or(self.seq)
    }
}

/// Every stored event of a session, in seq order.
pub fn events(c: &Connection, sid: &str) -> Vec<EventRow> {
    let mut stmt =
        c.prepare("SELECT seq, seq_first, type, data, splits FROM events WHERE session_id = ?1 ORDER BY seq").unwrap();
    stmt.query_map(params![sid], |r| {
        let data: String = r.get(3)?;
        let splits: Option<String> = r.get(4)?;
        Ok(EventRow {
            seq: r.get::<_, i64>(0)? as u64,
            seq_first: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
            ty: r.get(2)?,
            data: serde_json::from_str(&data).unwrap_or_else(|e| panic!("stored data is not JSON ({e}): {data}")),
            splits: splits.map(|s| serde_json::from_str(&s).unwrap_or_else(|e| panic!("splits ({e}): {s}"))),
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// What the log holds for one seq: its type and data (a part of a merged
/// delta row gets the row's data with its own slice of the content).
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub ty: String,
    pub data: Value,
}

/// Per-seq view of a session's log, merged rows split into their parts.
pub fn by_seq(rows: &[EventRow]) -> BTreeMap<u64, Stored> {
    let mut out = BTreeMap::new();
    for r in rows {
        match (&r.seq_first, &r.splits) {
            (Some(first), Some(splits)) => {
                assert_eq!((r.seq - first + 1) as usize, splits.len(), "a merged row holds one part per seq: {r:?}");
                let content = r.data["content"].as_str().expect("merged row content");
                assert_eq!(splits.iter().sum::<usize>(), content.len(), "splits cover the content: {r:?}");
                let mut at = 0;
                for (i, n) in splits.iter().enumerate() {
                    let mut d = r.data.clone();
                    d["content"] = Value::String(content[at..at + n].to_owned());
                    at += n;
                    out.insert(first + i as u64, Stored { ty: r.ty.clone(), data: d });
                }
            }
            _ => {
                out.insert(r.seq, Stored { ty: r.ty.clone(), data: r.data.clone() });
            }
        }
    }
    out
}

/// The columns of a `sessions` row the tests look at.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub state: String,
    pub state_reason: Option<String>,
    pub last_seq: u64,
    pub turns: u64,
    pub client_session_id: Option<String>,
    pub worker_pid: Option<i64>,
}

pub fn session(c: &Connection, sid: &str) -> Option<SessionInfo> {
    c.query_row(
        "SELECT state, state_reason, last_seq, turns, client_session_id, worker_pid FROM sessions WHERE id = ?1",
        params![sid],
        |r| {
            Ok(SessionInfo {
                state: r.get(0)?,
                state_reason: r.get(1)?,
                last_seq: r.get::<_, i64>(2)? as u64,
                turns: r.get::<_, i64>(3)? as u64,
                client_session_id: r.get(4)?,
                worker_pid: r.get(5)?,
            })
        },
    )
    .optional()
    .unwrap()
}

/// `SELECT COUNT(*) FROM <table> WHERE session_id = sid` (`id` for `sessions`).
pub fn rows_of(c: &Connection, table: &str, sid: &str) -> u64 {
    let col = if table == "sessions" { "id" } else { "session_id" };
    c.query_row(&format!("SELECT COUNT(*) FROM {table} WHERE {col} = ?1"), params![sid], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// Rows of the session in every table that holds session data.
pub fn all_rows_of(c: &Connection, sid: &str) -> u64 {
    ["sessions", "events", "turns", "message_snapshots"].iter().map(|t| rows_of(c, t, sid)).sum()
}

/// `meta.value` of `key`.
pub fn meta(c: &Connection, key: &str) -> Option<String> {
    c.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0)).optional().unwrap()
}

/// `PRAGMA integrity_check` is `ok` and `PRAGMA foreign_key_check` finds nothing.
pub fn assert_consistent(c: &Connection) {
    let integrity: Vec<String> =
        c.prepare("PRAGMA integrity_check").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(integrity, vec!["ok".to_string()], "integrity_check");
    let fk: Vec<String> = c
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| Ok(format!("{}:{:?}", r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(fk.is_empty(), "foreign_key_check: {fk:?}");
}

/// The stored log of a session has no hole: rows start at seq 1 (or at
/// `from`) and each row starts right after the previous one ends (G2).
pub fn assert_no_hole(rows: &[EventRow], from: u64, sid: &str) {
    let mut next = from;
    for r in rows {
        assert!(r.first() <= r.seq, "seq_first > seq in {sid}: {r:?}");
        assert_eq!(r.first(), next, "hole or overlap in the log of {sid} before {r:?}");
        next = r.seq + 1;
    }
}
