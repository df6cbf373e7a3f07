//! Read queries of the HTTP APIs (operations.md §4): session listings with
//! filters and paging, an events page with its turns, the stored-state
//! counts and file sizes of `/admin/stats`, the `revocations` table and
//! pages of the audit log (`/admin/audit`; the log's writing and hashing
//! are `security::audit`'s).
//! They run on `store-reader-N` threads only (short read transactions,
//! ≤ 1000 rows per page), never on a reactor or the admin thread.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params, params_from_iter};

use super::ops::RevocationRow;
use super::ops::SessionRow;
use super::reader::{EventsPage, events_after, load_session, opt_uint, session_from_row, uint};

/// Columns of a `sessions` row, in the order [`session_from_row`] reads them.
pub const SESSION_COLUMNS: &str = "id, owner, worker_type, client_session_id, worker_session_id, work_dir, state, \
     state_reason, created_at, updated_at, last_active_at, live_since, terminated_at, turns, last_seq, config_json, \
     worker_pid, worker_start_ticks, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, \
     tool_calls, turn_ms";

/// Filters and paging of a session listing (validated by the caller).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionFilter {
    /// Exact owner (`None`: every owner — admin only).
    pub owner: Option<String>,
    /// States to include (never empty).
    pub states: Vec<String>,
    /// Worker types to include (empty: all).
    pub worker_types: Vec<String>,
    pub limit: usize,
    pub offset: usize,
}

/// One page of a listing and the number of rows matching the filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionList {
    pub rows: Vec<SessionRow>,
    pub total: u64,
}

/// One `turns` row as the events page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnRow {
    pub turn: u64,
    pub start_seq: u64,
    pub end_seq: Option<u64>,
    pub started_at: u64,
    /// `{"content":…, "metadata":…}` as accepted (JSON text).
    pub input: String,
}

/// An events page: the session row (`None`: no such session), the events
/// after the requested seq, and the turns that start inside the returned range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub row: Option<SessionRow>,
    pub events: EventsPage,
    pub turns: Vec<TurnRow>,
}

/// What `/admin/stats` reads from the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredStats {
    /// `(state, count)` over every stored row.
    pub by_state: Vec<(String, u64)>,
    pub db_bytes: u64,
    pub wal_bytes: u64,
}

pub fn list_sessions(conn: &Connection, f: &SessionFilter) -> rusqlite::Result<SessionList> {
    let mut clause = String::from(" WHERE state IN (");
    let mut args: Vec<SqlValue> = Vec::new();
    push_list(&mut clause, &mut args, &f.states);
    clause.push(')');
    if let Some(o) = &f.owner {
        clause.push_str(" AND owner = ?");
        args.push(SqlValue::Text(o.clone()));
    }
    if !f.worker_types.is_empty() {
        clause.push_str(" AND worker_type IN (");
        push_list(&mut clause, &mut args, &f.worker_types);
        clause.push(')');
    }
    let tx = conn.unchecked_transaction()?;
    let total: i64 =
        tx.query_row(&format!("SELECT COUNT(*) FROM sessions{clause}"), params_from_iter(args.iter()), |r| r.get(0))?;
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions{clause} ORDER BY updated_at DESC, id LIMIT ? OFFSET ?");
    args.push(SqlValue::Integer(f.limit as i64));
    args.push(SqlValue::Integer(f.offset.min(i64::MAX as usize) as i64));
    let rows = {
        let mut stmt = tx.prepare(&sql)?;
        stmt.query_map(params_from_iter(args.iter()), session_from_row)?.collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(SessionList { rows, total: total.max(0) as u64 })
}

fn push_list(clause: &mut String, args: &mut Vec<SqlValue>, items: &[String]) {
    for (i, s) in items.iter().enumerate() {
        clause.push_str(if i == 0 { "?" } else { ", ?" });
        args.push(SqlValue::Text(s.clone()));
    }
}

/// The session row, up to `limit` events after `after_seq` (about
/// `max_bytes` of data, at least one row), and the turns starting in the
/// returned range — in one read transaction.
pub fn events_page(
    conn: &Connection,
    session: &str,
    after_seq: u64,
    limit: usize,
    max_bytes: usize,
) -> rusqlite::Result<Page> {
    let tx = conn.unchecked_transaction()?;
    let Some(row) = load_session(&tx, session)? else {
        return Ok(Page::default());
    };
    let events = events_after(&tx, session, after_seq, limit, max_bytes)?;
    let turns = match events.rows.last() {
        Some(last) => {
            let mut stmt = tx.prepare_cached(
                "SELECT turn, start_seq, end_seq, started_at, input FROM turns \
                 WHERE session_id = ?1 AND start_seq > ?2 AND start_seq <= ?3 ORDER BY turn",
            )?;
            stmt.query_map(params![session, after_seq as i64, last.seq as i64], |r| {
                Ok(TurnRow {
                    turn: uint(r, 0)?,
                    start_seq: uint(r, 1)?,
                    end_seq: opt_uint(r, 2)?,
                    started_at: uint(r, 3)?,
                    input: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    tx.commit()?;
    Ok(Page { row: Some(row), events, turns })
}

/// Stored rows per state, and the database and WAL file sizes.
pub fn stored_stats(conn: &Connection) -> rusqlite::Result<StoredStats> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM sessions GROUP BY state")?;
    let by_state = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<Result<Vec<_>, _>>()?;
    let (mut db_bytes, mut wal_bytes) = (0, 0);
    if let Some(path) = conn.path().filter(|p| !p.is_empty()) {
        db_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        wal_bytes = std::fs::metadata(format!("{path}-wal")).map(|m| m.len()).unwrap_or(0);
    }
    Ok(StoredStats { by_state, db_bytes, wal_bytes })
}

/// Every row of the `revocations` table, or only those still in force at
/// `now_ms` (`until_ms` NULL or later), oldest first.
pub fn revocations(conn: &Connection, now_ms: Option<u64>) -> rusqlite::Result<Vec<RevocationRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, value, until_ms, created_ms, actor FROM revocations \
         WHERE ?1 IS NULL OR until_ms IS NULL OR until_ms > ?1 ORDER BY created_ms, kind, value",
    )?;
    let rows = stmt
        .query_map(params![now_ms.map(|v| v as i64)], |r| {
            Ok(RevocationRow {
                kind: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                value: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                until_ms: r.get::<_, Option<i64>>(2)?.map(|v| v.max(0) as u64),
                created_ms: r.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64,
                actor: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Writer side: insert or replace one revocation.
pub fn upsert_revocation(tx: &Connection, r: &RevocationRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO revocations(kind, value, until_ms, created_ms, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![r.kind, r.value, r.until_ms.map(|v| v as i64), r.created_ms as i64, r.actor])?;
    Ok(())
}

/// Writer side: remove one revocation.
pub fn delete_revocation(tx: &Connection, kind: &str, value: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM revocations WHERE kind = ?1 AND value = ?2")?.execute(params![kind, value])?;
    Ok(())
}

/// Filters and paging of `/admin/audit` (validated by the caller).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub after_id: i64,
    pub limit: usize,
    /// Kinds to include (empty: all).
    pub kinds: Vec<String>,
    pub session_id: Option<String>,
    pub since_ms: Option<u64>,
}

/// One `audit_log` row as stored (`hash` as lowercase hex).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub ts_ms: u64,
    pub kind: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub credential_id: Option<String>,
    pub client_ip: Option<String>,
    pub session_id: Option<String>,
    pub detail: Option<String>,
    pub hash: String,
}

/// A page of audit rows in `id` order and whether more match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    pub has_more: bool,
}

/// Rows with `id > after_id` matching the filters, at most `limit`.
pub fn audit_page(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<AuditPage> {
    let mut sql = String::from(
        "SELECT id, ts_ms, kind, outcome, reason, actor_kind, actor_id, credential_id, client_ip, session_id, \
         detail, hash FROM audit_log WHERE id > ?",
    );
    let mut args: Vec<SqlValue> = vec![SqlValue::Integer(f.after_id)];
    if !f.kinds.is_empty() {
        sql.push_str(&format!(" AND kind IN ({})", vec!["?"; f.kinds.len()].join(",")));
        args.extend(f.kinds.iter().map(|k| SqlValue::Text(k.clone())));
    }
    if let Some(sid) = &f.session_id {
        sql.push_str(" AND session_id = ?");
        args.push(SqlValue::Text(sid.clone()));
    }
    if let Some(since) = f.since_ms {
        sql.push_str(" AND ts_ms >= ?");
        args.push(SqlValue::Integer(since.min(i64::MAX as u64) as i64));
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    args.push(SqlValue::Integer(f.limit.saturating_add(1).min(i64::MAX as usize) as i64));
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            let hash: Vec<u8> = r.get(11)?;
            Ok(AuditRow {
                id: r.get(0)?,
                ts_ms: r.get::<_, i64>(1)?.max(0) as u64,
                kind: r.get(2)?,
                outcome: r.get(3)?,
                reason: r.get(4)?,
                actor_kind: r.get(5)?,
                actor_id: r.get(6)?,
                credential_id: r.get(7)?,
                client_ip: r.get(8)?,
                session_id: r.get(9)?,
                detail: r.get(10)?,
                hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let has_more = rows.len() > f.limit;
    rows.truncate(f.limit);
    Ok(AuditPage { rows, has_more })
}

/// Writer side: the heartbeat commit `/ready` looks for (operations.md §4.2).
pub fn heartbeat(tx: &Connection, at_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES ('heartbeat', ?1)")?
        .execute(params![at_ms.to_string()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{StoreOptions, open_writer};

    fn db(tag: &str) -> (std::path::PathBuf, Connection) {
        let dir = std::env::temp_dir().join(format!("hotplex-queries-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db");
        let conn = open_writer(&path, &StoreOptions::default()).unwrap();
        (dir, conn)
    }

    fn insert(conn: &Connection, id: &str, owner: &str, state: &str, updated: i64) {
        conn.execute(
            "INSERT INTO sessions(id, owner, worker_type, work_dir, state, created_at, updated_at, last_active_at) \
             VALUES (?1, ?2, 'claude_code', '/w', ?3, 1, ?4, 1)",
            params![id, owner, state, updated],
        )
        .unwrap();
    }

    #[test]
    fn listing_filters_orders_and_pages() {
        let (dir, conn) = db("list");
        insert(&conn, "a", "alice", "idle", 10);
        insert(&conn, "b", "alice", "terminated", 30);
        insert(&conn, "c", "bob", "idle", 20);
        insert(&conn, "d", "alice", "deleted", 40);
        let all_live = |owner: Option<&str>, limit, offset| SessionFilter {
            owner: owner.map(str::to_owned),
            states: ["created", "idle", "running", "terminated"].map(String::from).to_vec(),
            worker_types: vec![],
            limit,
            offset,
        };
        let l = list_sessions(&conn, &all_live(None, 50, 0)).unwrap();
        assert_eq!(l.total, 3);
        assert_eq!(l.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "c", "a"]);
        let l = list_sessions(&conn, &all_live(Some("alice"), 1, 1)).unwrap();
        assert_eq!((l.total, l.rows.len(), l.rows[0].id.as_str()), (2, 1, "a"));
        let l = list_sessions(&conn, &all_live(None, 10, 99)).unwrap();
        assert_eq!((l.total, l.rows.len()), (3, 0), "offset past the end keeps the real total");
        let mut f = all_live(None, 10, 0);
        f.worker_types = vec!["pi".into()];
        assert_eq!(list_sessions(&conn, &f).unwrap().total, 0);
        let s = stored_stats(&conn).unwrap();
        assert!(s.by_state.contains(&("idle".to_string(), 2)));
        assert!(s.db_bytes > 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An edited row with a negative seq or counter is a read error (the
    /// reader answers `Failed`: INTERNAL_ERROR / 500), never a wrapped u64.
    #[test]
    fn negative_unsigned_columns_are_read_errors() {
        let (dir, conn) = db("neg");
        insert(&conn, "a", "alice", "terminated", 10);
        insert(&conn, "b", "alice", "terminated", 20);
        assert_eq!(load_session(&conn, "a").unwrap().unwrap().last_seq, 0);
        conn.execute("UPDATE sessions SET last_seq = -1 WHERE id = 'a'", []).unwrap();
        let out_of_range = |e: rusqlite::Error| matches!(e, rusqlite::Error::IntegralValueOutOfRange(14, -1));
        assert!(load_session(&conn, "a").is_err_and(out_of_range));
        let f = SessionFilter {
            owner: None,
            states: vec!["terminated".into()],
            worker_types: vec![],
            limit: 10,
            offset: 0,
        };
        assert!(list_sessions(&conn, &f).is_err_and(out_of_range), "a listing over the row fails too");
        assert_eq!(load_session(&conn, "b").unwrap().unwrap().id, "b", "other rows still read");
        conn.execute("UPDATE sessions SET input_tokens = -5 WHERE id = 'b'", []).unwrap();
        assert!(load_session(&conn, "b").is_err());

        conn.execute(
            "INSERT INTO events(session_id, seq, seq_first, type, ts, data, splits) VALUES ('b', -3, NULL, 'state', 1, '{}', NULL)",
            [],
        )
        .unwrap();
        assert!(events_after(&conn, "b", 0, 10, 1 << 20).is_err(), "the oldest seq is negative");
        conn.execute("UPDATE events SET seq = 4, ts = -1 WHERE session_id = 'b'", []).unwrap();
        assert!(events_after(&conn, "b", 0, 10, 1 << 20).is_err(), "a negative ts");
        conn.execute("UPDATE events SET ts = 1 WHERE session_id = 'b'", []).unwrap();
        assert_eq!(events_after(&conn, "b", 0, 10, 1 << 20).unwrap().rows[0].seq, 4);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn revocation_rows_round_trip() {
        let (dir, conn) = db("rev");
        let row = |v: &str, until: Option<u64>| RevocationRow {
            kind: "jti".into(),
            value: v.into(),
            until_ms: until,
            created_ms: 5,
            actor: Some("ops".into()),
        };
        upsert_revocation(&conn, &row("a", None)).unwrap();
        upsert_revocation(&conn, &row("b", Some(100))).unwrap();
        upsert_revocation(&conn, &row("b", Some(1000))).unwrap();
        assert_eq!(revocations(&conn, None).unwrap().len(), 2);
        assert_eq!(revocations(&conn, Some(500)).unwrap().len(), 2);
        assert_eq!(revocations(&conn, Some(2000)).unwrap(), vec![row("a", None)]);
        delete_revocation(&conn, "jti", "a").unwrap();
        assert_eq!(revocations(&conn, None).unwrap(), vec![row("b", Some(1000))]);
        heartbeat(&conn, 42).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
