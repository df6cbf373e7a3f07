//! `store-reader-N` threads: read-only connections serving session lookups
//! (init/resume), replay pages and listings off the reactor threads
//! (operations.md §3.5). A request carries its own reply callback, which the
//! reader calls on its thread (reactors pass one that posts to their inbox).

use std::path::Path;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use rusqlite::{Connection, OptionalExtension, params};

use super::ops::{SessionRow, Totals};
use super::schema::{self, OpenError, StoreOptions};

/// One stored event row (a merged delta row has `seq_first` and `splits`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub seq: u64,
    pub seq_first: Option<u64>,
    pub event_type: String,
    pub ts: u64,
    pub data: String,
    pub splits: Option<Vec<usize>>,
}

/// A page of events after some seq.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventsPage {
    pub rows: Vec<EventRow>,
    /// Lowest seq still stored (`None` when the session has no events).
    pub oldest_seq: Option<u64>,
    /// (message_id, last trimmed seq, text) of messages whose deltas were trimmed
    /// after the requested point; only filled when the request was expired.
    pub snapshots: Vec<(String, u64, String)>,
    pub has_more: bool,
}

#[derive(Debug)]
pub enum Query {
    Session(String),
    /// At most `limit` rows and about `max_bytes` of data (at least one row).
    Events {
        session: String,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    },
    CountStored {
        owner: String,
    },
    /// A filtered, paged listing (HTTP APIs).
    ListSessions(super::queries::SessionFilter),
    /// The session row, an events page and its turns (HTTP APIs).
    EventsPage {
        session: String,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    },
    /// Stored rows per state and file sizes (`/admin/stats`).
    StoredStats,
    /// Revocations (`None`: every row; `Some(now)`: rows still in force).
    Revocations {
        now_ms: Option<u64>,
    },
    /// A page of the audit log (`/admin/audit`).
    AuditPage(super::queries::AuditFilter),
    /// Re-walk the audit hash chain (`/admin/audit/verify`).
    AuditVerify,
    /// Like `CountStored`, not counting the sessions named in `except`.
    CountStoredExcept {
        owner: String,
        except: Vec<String>,
    },
}

#[derive(Debug)]
pub enum Answer {
    Session(Option<Box<SessionRow>>),
    Events(EventsPage),
    Count(u64),
    Sessions(super::queries::SessionList),
    Page(Box<super::queries::Page>),
    StoredStats(super::queries::StoredStats),
    Revocations(Vec<super::ops::RevocationRow>),
    AuditPage(super::queries::AuditPage),
    AuditVerify(crate::security::audit::VerifyResult),
    /// The read failed (or the pool was saturated); callers answer INTERNAL_ERROR.
    Failed(String),
}

pub type Reply = Box<dyn FnOnce(Answer) + Send>;

pub struct ReadRequest {
    pub query: Query,
    pub reply: Reply,
}

/// The reader pool.
#[derive(Clone)]
pub struct Readers {
    tx: Sender<ReadRequest>,
}

impl Readers {
    pub fn start(path: &Path, opts: &StoreOptions, n: usize) -> Result<Readers, OpenError> {
        let (tx, rx) = bounded::<ReadRequest>(4096);
        for i in 0..n.max(1) {
            let conn = schema::open_reader(path, opts)?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || serve(conn, rx))
                .map_err(OpenError::Io)?;
        }
        Ok(Readers { tx })
    }

    /// Queue a read; never blocks (a saturated pool answers `Failed` at once).
    pub fn submit(&self, query: Query, reply: Reply) {
        match self.tx.try_send(ReadRequest { query, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) | Err(TrySendError::Disconnected(r)) => {
                (r.reply)(Answer::Failed("store readers unavailable".into()))
            }
        }
    }
}

fn serve(conn: Connection, rx: Receiver<ReadRequest>) {
    while let Ok(req) = rx.recv() {
        let answer = run(&conn, req.query).unwrap_or_else(|e| {
            crate::metrics::store_error(crate::metrics::StoreErrorOp::Read);
            log::error!("store read failed: {e}");
            Answer::Failed(e.to_string())
        });
        (req.reply)(answer);
    }
}

fn run(conn: &Connection, q: Query) -> rusqlite::Result<Answer> {
    Ok(match q {
        Query::Session(id) => Answer::Session(load_session(conn, &id)?.map(Box::new)),
        Query::Events { session, after_seq, limit, max_bytes } => {
            Answer::Events(events_after(conn, &session, after_seq, limit, max_bytes)?)
        }
        Query::CountStored { owner } => Answer::Count(conn.query_row(
            "SELECT COUNT(*) FROM sessions WHERE owner = ?1 AND state != 'deleted'",
            params![owner],
            |r| r.get::<_, i64>(0),
        )? as u64),
        Query::ListSessions(f) => Answer::Sessions(super::queries::list_sessions(conn, &f)?),
        Query::EventsPage { session, after_seq, limit, max_bytes } => {
            Answer::Page(Box::new(super::queries::events_page(conn, &session, after_seq, limit, max_bytes)?))
        }
        Query::StoredStats => Answer::StoredStats(super::queries::stored_stats(conn)?),
        Query::Revocations { now_ms } => Answer::Revocations(super::queries::revocations(conn, now_ms)?),
        Query::AuditPage(f) => Answer::AuditPage(super::queries::audit_page(conn, &f)?),
        Query::AuditVerify => Answer::AuditVerify(crate::security::audit::verify(conn)?),
        Query::CountStoredExcept { owner, except } => {
            let all: i64 = conn.query_row(
                "SELECT COUNT(*) FROM sessions WHERE owner = ?1 AND state != 'deleted'",
                params![owner],
                |r| r.get(0),
            )?;
            let mut listed: i64 = 0;
            let mut stmt = conn
                .prepare_cached("SELECT COUNT(*) FROM sessions WHERE id = ?1 AND owner = ?2 AND state != 'deleted'")?;
            for id in &except {
                listed += stmt.query_row(params![id, owner], |r| r.get::<_, i64>(0))?;
            }
            Answer::Count(all.saturating_sub(listed).max(0) as u64)
        }
    })
}

/// The session row with this id (tombstones included).
pub fn load_session(conn: &Connection, id: &str) -> rusqlite::Result<Option<SessionRow>> {
    conn.prepare_cached(&format!("SELECT {} FROM sessions WHERE id = ?1", super::queries::SESSION_COLUMNS))?
        .query_row(params![id], session_from_row)
        .optional()
}

/// An unsigned column (seqs, timestamps, counters): a negative value, which
/// the gateway never writes (see `writer::sql_int`), is an edited row and a
/// read error (the reader answers `Failed`), never a wrapped `u64`.
pub(crate) fn uint(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// [`uint`] of a nullable column.
pub(crate) fn opt_uint(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    match r.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)),
    }
}

/// A `sessions` row selected with [`super::queries::SESSION_COLUMNS`].
pub fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        owner: r.get(1)?,
        worker_type: r.get(2)?,
        client_session_id: r.get(3)?,
        worker_session_id: r.get(4)?,
        work_dir: r.get(5)?,
        state: r.get(6)?,
        state_reason: r.get(7)?,
        created_at: uint(r, 8)?,
        updated_at: uint(r, 9)?,
        last_active_at: uint(r, 10)?,
        live_since: opt_uint(r, 11)?,
        terminated_at: opt_uint(r, 12)?,
        turns: uint(r, 13)?,
        last_seq: uint(r, 14)?,
        config_json: r.get(15)?,
        worker_pid: r.get(16)?,
        worker_start_ticks: opt_uint(r, 17)?,
        totals: Totals {
            input_tokens: uint(r, 18)?,
            output_tokens: uint(r, 19)?,
            cache_read_tokens: uint(r, 20)?,
            cache_write_tokens: uint(r, 21)?,
            cost_usd: r.get(22)?,
            tool_calls: uint(r, 23)?,
            turn_ms: uint(r, 24)?,
        },
    })
}

/// Up to `limit` rows with `seq > after_seq` (a merged row whose range
/// contains `after_seq + 1` is included), in seq order.
pub fn events_after(
    conn: &Connection,
    session: &str,
    after_seq: u64,
    limit: usize,
    max_bytes: usize,
) -> rusqlite::Result<EventsPage> {
    let oldest = conn.query_row(
        "SELECT MIN(COALESCE(seq_first, seq)) FROM events WHERE session_id = ?1",
        params![session],
        |r| opt_uint(r, 0),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, seq_first, type, ts, data, splits FROM events WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows: Vec<EventRow> = stmt
        .query_map(params![session, after_seq as i64, (limit + 1) as i64], |r| {
            let splits: Option<String> = r.get(5)?;
            Ok(EventRow {
                seq: uint(r, 0)?,
                seq_first: opt_uint(r, 1)?,
                event_type: r.get(2)?,
                ts: uint(r, 3)?,
                data: r.get(4)?,
                splits: splits.and_then(|s| serde_json::from_str(&s).ok()),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut has_more = rows.len() > limit;
    let mut rows = rows;
    rows.truncate(limit);
    let mut bytes = 0;
    if let Some(cut) = rows.iter().position(|r| {
        bytes += r.data.len();
        bytes > max_bytes
    }) {
        // keep the row that crossed the bound (a page always makes progress)
        if cut + 1 < rows.len() {
            rows.truncate(cut + 1);
            has_more = true;
        }
    }
    let oldest_seq = oldest;
    let mut snapshots = Vec::new();
    if oldest_seq.is_some_and(|o| after_seq + 1 < o) {
        let mut s = conn.prepare_cached(
            "SELECT message_id, last_seq, content FROM message_snapshots WHERE session_id = ?1 AND last_seq > ?2 ORDER BY last_seq",
        )?;
        snapshots = s
            .query_map(params![session, after_seq as i64], |r| Ok((r.get(0)?, uint(r, 1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
    }
    Ok(EventsPage { rows, oldest_seq, snapshots, has_more })
}
