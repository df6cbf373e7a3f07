//! What reactors ask the store writer to do, and the rows it stores. Plain
//! data: no SQL here.

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::ws::outq::SharedFrame;

/// One `sessions` row (operations.md §3.2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub owner: String,
    pub worker_type: String,
    pub client_session_id: Option<String>,
    pub worker_session_id: Option<String>,
    pub work_dir: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub last_active_at: u64,
    pub live_since: Option<u64>,
    pub terminated_at: Option<u64>,
    pub turns: u64,
    pub last_seq: u64,
    pub config_json: String,
    pub worker_pid: Option<i32>,
    pub worker_start_ticks: Option<u64>,
    pub totals: Totals,
}

/// Stats totals of a session, summed from `done.stats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    pub tool_calls: u64,
    pub turn_ms: u64,
}

/// The mutable columns of a session, written whole on every change (state
/// changes are per turn, so a full-row update costs nothing and cannot go
/// out of sync).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionUpdate {
    pub state: &'static str,
    pub state_reason: Option<String>,
    pub worker_session_id: Option<String>,
    pub work_dir: String,
    pub updated_at: u64,
    pub last_active_at: u64,
    pub live_since: Option<u64>,
    pub terminated_at: Option<u64>,
    pub turns: u64,
    pub worker_pid: Option<i32>,
    pub worker_start_ticks: Option<u64>,
    pub totals: Totals,
}

/// An event to append; `reactor` is told when it is committed.
#[derive(Clone, Debug)]
pub struct Append {
    pub session: Arc<str>,
    pub reactor: usize,
    pub frame: SharedFrame,
}

/// One `revocations` row (security.md §1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationRow {
    /// `jti`, `sub` or `api_key`.
    pub kind: String,
    pub value: String,
    /// `None`: never expires.
    pub until_ms: Option<u64>,
    pub created_ms: u64,
    /// Admin token name that made it.
    pub actor: Option<String>,
}

#[derive(Debug)]
pub enum WriteOp {
    Append(Append),
    /// `UPDATE meta` heartbeat, so `/ready` sees the writer commit while idle.
    Heartbeat {
        at_ms: u64,
    },
    /// Insert or replace a revocation.
    Revoke(Box<RevocationRow>),
    /// Remove a revocation.
    Unrevoke {
        kind: String,
        value: String,
    },
    InsertSession(Box<SessionRow>),
    UpdateSession {
        id: Arc<str>,
        update: Box<SessionUpdate>,
    },
    TurnStart {
        session: Arc<str>,
        turn: u64,
        start_seq: u64,
        started_at: u64,
        input: String,
    },
    TurnEnd {
        session: Arc<str>,
        turn: u64,
        end_seq: u64,
        ended_at: u64,
        success: bool,
        stats: Option<String>,
    },
    /// `control.delete`: keep a tombstone row, drop events, turns, snapshots.
    Delete {
        session: Arc<str>,
        at: u64,
    },
    /// Remove a row that never became live (spawn failed at create).
    Forget {
        session: Arc<str>,
    },
    /// Append a row to the audit chain (security.md §10.3); the writer
    /// computes `prev_hash`, so the chain has a single writer.
    Audit(Box<crate::security::audit::AuditRecord>),
    /// Record `owner → uid` (`security.worker.uid_per_owner`); `reply` gets
    /// `true` after the commit that stored it, `false` if the row was refused
    /// (a uid or owner already mapped). Sent by the spawner thread only.
    OwnerUid {
        owner: String,
        uid: u32,
        reply: Sender<bool>,
    },
    /// Replied after the commit that contains it.
    Barrier(Sender<()>),
    /// Drain, commit, checkpoint, mark a clean shutdown, reply, stop.
    Shutdown(Sender<()>),
    /// A config reload changed group commit or retention (next batch, next job run).
    Reconfigure(Box<super::writer::WriterTuning>),
}

impl WriteOp {
    pub fn metric_label(&self) -> &'static str {
        match self {
            WriteOp::Append(_) => "append_event",
            WriteOp::Heartbeat { .. } => "heartbeat",
            WriteOp::Revoke(_) | WriteOp::Unrevoke { .. } => "revocation",
            WriteOp::InsertSession(_) => "session_insert",
            WriteOp::UpdateSession { .. } => "session_update",
            WriteOp::TurnStart { .. } | WriteOp::TurnEnd { .. } => "turn",
            WriteOp::Delete { .. } | WriteOp::Forget { .. } => "delete",
            WriteOp::Audit(_) => "audit",
            WriteOp::OwnerUid { .. } => "owner_uid",
            WriteOp::Barrier(_) | WriteOp::Shutdown(_) | WriteOp::Reconfigure(_) => "barrier",
        }
    }
}

/// Where the writer reports commits (implemented by the reactors' inboxes).
pub trait CommitSink: Send + Sync {
    /// Every event of `sessions` up to the given seq is committed.
    fn committed(&self, reactor: usize, sessions: Vec<(Arc<str>, u64)>);
    /// An append could not be stored (dropped; the session must say so).
    fn failed(&self, reactor: usize, session: Arc<str>, seq: u64);
    /// The queue has room again (a reactor asked after a full `try_send`).
    fn writable(&self, reactor: usize);
}
