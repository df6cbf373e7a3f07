//! The store side of a session on its reactor (operations.md §3.4): every
//! session event is appended to the log and held until the writer reports
//! its commit (commit before send); connection-local frames of an attached
//! connection wait behind it. Session row changes, turns and deletes go
//! through the same ordered queue. A full store queue parks the ops in the
//! session's backlog and stops reading the worker's stdout until the writer
//! has room (never a silent drop).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::{InitConfig, SessionState, now_ms};
use crate::reactor::Reactor;
use crate::reactor::token::{Key, Kind};
use crate::store::{Append, SessionRow, SessionUpdate, Totals, WriteOp};
use crate::ws::outq::{Pushed, SharedFrame};

use super::Session;

/// Something waiting for the session's next commit, in creation order.
pub enum Pending {
    /// A session event (released when its seq is committed).
    Frame(SharedFrame),
    /// A connection-local frame for one connection (released with the frames before it).
    Local(Key, Vec<u8>),
    /// Close one connection (after the frames before it).
    Close(Key, u16, String),
}

/// The store-facing state of one session.
#[derive(Default)]
pub struct Persist {
    /// Emitted events and local frames awaiting commit.
    pub pending: VecDeque<Pending>,
    /// Highest seq the store has committed (everything ≤ it may be sent).
    pub committed: u64,
    /// Ops that did not fit in the writer queue, in order.
    pub backlog: VecDeque<WriteOp>,
    /// Held while `backlog` is non-empty (`hotplex_store_blocked_sessions`).
    pub blocked_gauge: Option<crate::metrics::StoreBlocked>,
}

impl Persist {
    /// The store queue was full: stop reading the worker until it drains.
    pub fn blocked(&self) -> bool {
        !self.backlog.is_empty()
    }
}

impl Reactor {
    /// Queue a store op for this session, preserving order with earlier ones.
    pub fn store_op(&mut self, skey: Key, op: WriteOp) {
        let reactor = self.id;
        let Some(s) = self.sessions.get_mut(skey.idx).filter(|s| s.generation == skey.generation) else { return };
        if !s.persist.backlog.is_empty() {
            s.persist.backlog.push_back(op);
            return;
        }
        if let Err(op) = self.shared.store.try_send(op) {
            if s.persist.backlog.is_empty() {
                log::warn!("store queue full: pausing session_id={}", s.id_str);
                s.persist.blocked_gauge = Some(crate::metrics::StoreBlocked::begin());
            }
            s.persist.backlog.push_back(op);
            self.shared.store.want_wake(reactor);
        }
    }

    /// Append `frame` to the log and hold it until committed.
    pub fn persist_event(&mut self, skey: Key, frame: SharedFrame) {
        let Some(s) = self.session(skey) else { return };
        let op = WriteOp::Append(Append { session: s.id_str.clone(), reactor: self.id, frame: frame.clone() });
        self.store_op(skey, op);
        if let Some(s) = self.session_mut(skey) {
            s.persist.pending.push_back(Pending::Frame(frame));
        }
    }

    /// The writer committed these sessions' events up to these seqs.
    pub fn on_committed(&mut self, list: Vec<(Arc<str>, u64)>) {
        for (sid, seq) in list {
            let Some(idx) = uuid::Uuid::parse_str(&sid).ok().and_then(|u| self.by_id.get(&u).copied()) else {
                continue;
            };
            let Some(s) = self.sessions.get_mut(idx) else { continue };
            if s.persist.committed == 0 && seq > 0 {
                // Its row is committed too (queued before its first event): the store counts it now.
                self.shared.creates_in_flight.release(&s.owner, &s.id_str);
            }
            s.persist.committed = s.persist.committed.max(seq);
            let key = s.key(idx);
            self.release(key);
        }
    }

    /// The writer dropped one event: release it unsent, tell the clients.
    pub fn on_store_failed(&mut self, sid: Arc<str>, seq: u64) {
        let Some(idx) = uuid::Uuid::parse_str(&sid).ok().and_then(|u| self.by_id.get(&u).copied()) else { return };
        let Some(s) = self.sessions.get_mut(idx) else { return };
        let key = s.key(idx);
        s.persist.pending.retain(|p| !matches!(p, Pending::Frame(f) if f.seq == seq));
        for c in s.attached() {
            self.send_error(c, crate::protocol::ErrorCode::InternalError, "an event could not be stored", None, None);
        }
        self.release(key);
    }

    /// The writer has room: flush every parked backlog, resume blocked workers.
    pub fn on_store_writable(&mut self) {
        let blocked: Vec<Key> =
            self.sessions.iter().filter(|(_, s)| s.persist.blocked()).map(|(i, s)| s.key(i)).collect();
        for skey in blocked {
            while let Some(op) = self.session_mut(skey).and_then(|s| s.persist.backlog.pop_front()) {
                if let Err(op) = self.shared.store.try_send(op) {
                    if let Some(s) = self.session_mut(skey) {
                        s.persist.backlog.push_front(op);
                    }
                    self.shared.store.want_wake(self.id);
                    break;
                }
            }
            let unblocked = self.session(skey).is_some_and(|s| !s.persist.blocked());
            if unblocked {
                if let Some(s) = self.session_mut(skey) {
                    s.persist.blocked_gauge = None;
                }
                if let Some(w) = self.session(skey).and_then(|s| s.worker.as_ref()) {
                    self.again.push((Kind::Stdout, Key { idx: skey.idx, generation: w.generation }));
                }
                self.http_resume(skey);
            }
        }
    }

    /// Send everything the last commit made sendable, in order.
    pub fn release(&mut self, skey: Key) {
        let (hw, bound) = (self.s.send_queue_high_water, self.s.send_queue_bytes);
        loop {
            let Some(s) = self.session_mut(skey) else { return };
            let ready = match s.persist.pending.front() {
                Some(Pending::Frame(f)) => f.seq <= s.persist.committed,
                Some(Pending::Local(..)) | Some(Pending::Close(..)) => true,
                None => false,
            };
            if !ready {
                break;
            }
            match s.persist.pending.pop_front() {
                Some(Pending::Frame(frame)) => {
                    s.replay.push(frame.clone());
                    for ck in s.attached() {
                        self.deliver(ck, &frame, hw, bound);
                    }
                }
                Some(Pending::Local(ck, bytes)) => {
                    if let Some(c) = self.client_mut(ck) {
                        if !c.conn.is_closing() {
                            c.conn.out.push_raw(bytes);
                            self.mark_dirty(ck);
                        }
                    }
                }
                Some(Pending::Close(ck, code, reason)) => self.close_now(ck, code, &reason, false),
                None => break,
            }
        }
        self.after_release(skey);
    }

    /// One released frame to one connection (held while it is replaying).
    fn deliver(&mut self, ck: Key, frame: &SharedFrame, hw: usize, bound: usize) {
        let Some(c) = self.client_mut(ck) else { return };
        if c.conn.is_closing() {
            return;
        }
        if let Some(hold) = c.replay_hold.as_mut() {
            hold.push(frame.clone());
            return;
        }
        match c.conn.out.push_frame(frame, hw, bound, false) {
            Pushed::OverBound => {
                log::warn!("slow consumer closed session_id={}", frame.session_id);
                self.close_client(ck, crate::protocol::close::POLICY, "slow consumer", true);
            }
            Pushed::Queued | Pushed::Coalesced => self.mark_dirty(ck),
        }
    }

    /// Work that waits for the log to catch up: a delete closes its
    /// connections once `state{deleted}` went out; at shutdown a terminated
    /// session leaves memory once its last event went out.
    fn after_release(&mut self, skey: Key) {
        let Some(s) = self.session(skey) else { return };
        if !s.persist.pending.is_empty() || s.ending.is_some() {
            return;
        }
        if !s.end_waiters.is_empty() {
            match s.state {
                SessionState::Deleted => self.fire_end_waiters(skey, crate::reactor::admin::Ended::Deleted),
                SessionState::Terminated => self.fire_end_waiters(skey, crate::reactor::admin::Ended::Terminated),
                _ => {}
            }
        }
        let Some(s) = self.session(skey) else { return };
        if s.state == SessionState::Deleted {
            self.finish_delete(skey);
        } else if self.stopping && s.state == SessionState::Terminated && s.worker.is_none() && !s.spawning {
            self.forget_session(skey);
        }
    }

    /// Write the session's mutable columns.
    pub fn persist_session(&mut self, skey: Key) {
        let Some(s) = self.session(skey) else { return };
        let update = Box::new(s.row_update());
        let id = s.id_str.clone();
        self.store_op(skey, WriteOp::UpdateSession { id, update });
    }
}

impl Session {
    /// The stored form of this session (INSERT at create).
    pub fn row(&self) -> SessionRow {
        let u = self.row_update();
        SessionRow {
            id: self.id_str.to_string(),
            owner: self.owner.to_string(),
            worker_type: self.worker_type.as_str().to_owned(),
            client_session_id: self.client_key.clone(),
            worker_session_id: u.worker_session_id,
            work_dir: u.work_dir,
            state: u.state.to_owned(),
            state_reason: u.state_reason,
            created_at: self.created_ms,
            updated_at: u.updated_at,
            last_active_at: u.last_active_at,
            live_since: u.live_since,
            terminated_at: u.terminated_at,
            turns: u.turns,
            last_seq: self.persist.committed,
            config_json: serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into()),
            worker_pid: u.worker_pid,
            worker_start_ticks: u.worker_start_ticks,
            totals: u.totals,
        }
    }

    pub fn row_update(&self) -> SessionUpdate {
        let now = now_ms();
        SessionUpdate {
            state: self.state.as_str(),
            state_reason: self.state_reason.clone(),
            worker_session_id: self.agent_session_id.clone(),
            work_dir: self.work_dir.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
            updated_at: now,
            last_active_at: now,
            live_since: self.live_since_ms,
            terminated_at: self.terminated_ms,
            turns: self.turns_started,
            worker_pid: self.worker.as_ref().map(|w| w.pid),
            worker_start_ticks: self.worker.as_ref().map(|w| w.start_ticks),
            totals: self.totals.clone(),
        }
    }

    /// The client's `init.config` as stored (compared on resume).
    pub fn config_from_json(json: &str) -> InitConfig {
        serde_json::from_str(json).unwrap_or_default()
    }
}

/// Add one turn's `done.stats` to the session totals.
pub fn add_stats(t: &mut Totals, s: &crate::protocol::Stats) {
    // saturating: the figures are the agent's own (its output, not ours)
    let add = |total: &mut u64, v: Option<u64>| *total = total.saturating_add(v.unwrap_or(0));
    add(&mut t.input_tokens, s.input_tokens);
    add(&mut t.output_tokens, s.output_tokens);
    add(&mut t.cache_read_tokens, s.cache_read_tokens);
    add(&mut t.cache_write_tokens, s.cache_write_tokens);
    t.cost_usd += s.cost_usd.unwrap_or(0.0);
    add(&mut t.tool_calls, s.tool_calls);
    add(&mut t.turn_ms, s.duration_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures are the agent's own: a huge one saturates the session
    /// totals instead of overflowing them.
    #[test]
    fn totals_saturate_on_agent_figures() {
        let mut t = Totals::default();
        let huge =
            crate::protocol::Stats { input_tokens: Some(u64::MAX - 1), tool_calls: Some(3), ..Default::default() };
        add_stats(&mut t, &huge);
        add_stats(&mut t, &huge);
        assert_eq!((t.input_tokens, t.tool_calls, t.output_tokens), (u64::MAX, 6, 0));
    }
}
