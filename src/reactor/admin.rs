//! What a reactor does for the admin thread and the user session API
//! (operations.md §2.6, §4): live snapshots of its sessions, its share of
//! `/admin/stats`, admin terminate and delete (answered once the worker is
//! reaped and the state change is committed), the drain notice, and closing
//! the connections of a revoked credential (security.md §1.3).
//!
//! Requests arrive as `Msg::Call` closures and answer through a [`Reply`],
//! never through shared state: nobody else reads a reactor's slabs. Nothing
//! here blocks; a reply that can only be given later (a termination waiting
//! for the reap) is parked on the session and fired from
//! `persist::after_release`, i.e. after the commit of `state{terminated}` /
//! `state{deleted}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::adapters::WorkerType;
use crate::protocol::{ErrorCode, Event, Mode, SessionState, close};
use crate::security::RevocationKind;
use crate::session::{Ending, TermReason};
use crate::store::{Totals, WriteOp};

use super::Reactor;
use super::client::Stage;
use super::timer::{Owner, TimerKind};
use super::token::Key;

/// A one-shot answer to another thread. Dropped unanswered (the session
/// vanished, the reactor stopped), it answers `None`, so the asker never
/// waits for a reply that cannot come.
pub struct Reply<T: Send + 'static>(Option<Box<dyn FnOnce(Option<T>) + Send>>);

impl<T: Send + 'static> Reply<T> {
    pub fn new(f: impl FnOnce(Option<T>) + Send + 'static) -> Reply<T> {
        Reply(Some(Box::new(f)))
    }

    pub fn send(mut self, value: T) {
        if let Some(f) = self.0.take() {
            f(Some(value));
        }
    }
}

impl<T: Send + 'static> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(None);
        }
    }
}

/// How an admin terminate or delete ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `state{terminated}` is committed (or the session already was terminated).
    Terminated,
    /// `state{deleted}` is out and the tombstone queued (or written, when the
    /// session was not in memory).
    Deleted,
    /// Unknown here, deleted, or another owner's.
    NotFound,
    /// Not in memory on its home reactor: the stored row is the truth.
    NotLive,
    /// The store queue refused the write.
    Failed,
}

/// `hotplex_sessions_deleted_total{source}` of a delete by `by`.
fn delete_source(by: &DeleteBy) -> crate::metrics::DeleteSource {
    match by {
        DeleteBy::Admin => crate::metrics::DeleteSource::Admin,
        DeleteBy::Owner(_) => crate::metrics::DeleteSource::Api,
    }
}

/// Who deletes a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteBy {
    /// `DELETE /admin/sessions/{id}`: 1008 and `session_invalid{admin_killed}`.
    Admin,
    /// `DELETE /api/sessions/{id}`: like `control.delete` (close 1000); only the owner's.
    Owner(Arc<str>),
}

/// Per-reactor share of the time spent outside `poll` since the last read.
pub struct BusyMeter {
    since: Instant,
    idle: Duration,
}

impl BusyMeter {
    pub fn new() -> BusyMeter {
        BusyMeter { since: Instant::now(), idle: Duration::ZERO }
    }

    /// Time spent waiting in `poll`.
    pub fn idle(&mut self, d: Duration) {
        self.idle += d;
    }

    /// Busy share of the window since the last call (0.0–1.0); starts a new window.
    pub fn take_ratio(&mut self) -> f64 {
        let total = self.since.elapsed();
        let ratio = if total.is_zero() {
            0.0
        } else {
            1.0 - self.idle.as_secs_f64().min(total.as_secs_f64()) / total.as_secs_f64()
        };
        *self = BusyMeter::new();
        (ratio * 1000.0).round() / 1000.0
    }
}

impl Default for BusyMeter {
    fn default() -> Self {
        BusyMeter::new()
    }
}

/// The home reactor's view of a live session (operations.md §4.3 `live`).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSnapshot {
    pub reactor: usize,
    pub state: SessionState,
    pub state_reason: Option<String>,
    pub turns: u64,
    /// Highest committed seq.
    pub last_seq: u64,
    pub worker_session_id: Option<String>,
    pub totals: Totals,
    pub drivers: usize,
    pub observers: usize,
    pub worker_pid: Option<i32>,
    /// Start of the running turn (ms); `None` when no turn runs.
    pub turn_started_at: Option<u64>,
    pub pending_permissions: usize,
}

/// Processes and live sessions of one worker type on one reactor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCounts {
    pub worker_type: WorkerType,
    pub processes: usize,
    pub idle: usize,
    pub running: usize,
}

/// One reactor's share of `/admin/stats` and `/admin/workers`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReactorStats {
    pub id: usize,
    pub connections: usize,
    pub pre_init: usize,
    pub drivers: usize,
    pub observers: usize,
    pub opened: u64,
    /// Live sessions (created, idle, running).
    pub sessions: usize,
    pub created: usize,
    pub idle: usize,
    pub running: usize,
    pub blocked_sessions: usize,
    pub busy_ratio: f64,
    pub workers: Vec<WorkerCounts>,
}

impl Reactor {
    /// The live part of a session homed here (`None`: not in memory or not live).
    pub fn live_snapshot(&self, id: &uuid::Uuid) -> Option<LiveSnapshot> {
        let s = self.by_id.get(id).and_then(|&i| self.sessions.get(i))?;
        if !s.state.is_live() {
            return None;
        }
        let now_ms = crate::protocol::now_ms();
        Some(LiveSnapshot {
            reactor: self.id,
            state: s.state,
            state_reason: s.state_reason.clone(),
            turns: s.turns_started,
            last_seq: s.persist.committed,
            worker_session_id: s.agent_session_id.clone(),
            totals: s.totals.clone(),
            drivers: usize::from(s.driver.is_some()),
            observers: s.observers.len(),
            worker_pid: s.worker.as_ref().map(|w| w.pid),
            turn_started_at: s.turn.as_ref().map(|t| now_ms.saturating_sub(t.started.elapsed().as_millis() as u64)),
            pending_permissions: s.perms.len(),
        })
    }

    /// This reactor's connections, sessions and workers.
    pub fn stats_snapshot(&mut self) -> ReactorStats {
        let mut st = ReactorStats {
            id: self.id,
            connections: self.clients.len(),
            opened: self.opened,
            busy_ratio: self.busy.take_ratio(),
            workers: WorkerType::ALL
                .iter()
                .map(|&t| WorkerCounts { worker_type: t, processes: 0, idle: 0, running: 0 })
                .collect(),
            ..ReactorStats::default()
        };
        for (_, c) in self.clients.iter() {
            match c.stage {
                Stage::Http | Stage::AwaitInit | Stage::InitPending => st.pre_init += 1,
                Stage::Attached { mode: Mode::Drive, .. } => st.drivers += 1,
                Stage::Attached { mode: Mode::Observe, .. } => st.observers += 1,
                Stage::Api | Stage::Closing => {}
            }
        }
        for (_, s) in self.sessions.iter() {
            if s.persist.blocked() {
                st.blocked_sessions += 1;
            }
            let w = st.workers.iter_mut().find(|w| w.worker_type == s.worker_type);
            if let (Some(w), true) = (w, s.worker.is_some()) {
                w.processes += 1;
            }
            if !s.state.is_live() {
                continue;
            }
            st.sessions += 1;
            let w = st.workers.iter_mut().find(|w| w.worker_type == s.worker_type);
            match (s.state, w) {
                (SessionState::Created, _) => st.created += 1,
                (SessionState::Idle, w) => {
                    st.idle += 1;
                    if let Some(w) = w {
                        w.idle += 1;
                    }
                }
                (_, w) => {
                    st.running += 1;
                    if let Some(w) = w {
                        w.running += 1;
                    }
                }
            }
        }
        st
    }

    /// `POST /admin/sessions/{id}/terminate` on the home reactor: reason
    /// `admin_terminate`; answered after `state{terminated}` is committed.
    pub fn admin_terminate(&mut self, id: uuid::Uuid, reply: Reply<Ended>) {
        let Some(skey) = self.by_id.get(&id).and_then(|&i| self.sessions.get(i).map(|s| s.key(i))) else {
            let e = if self.tombstones.contains_key(&id) { Ended::NotFound } else { Ended::NotLive };
            return reply.send(e);
        };
        let Some(s) = self.session_mut(skey) else { return };
        match (s.state, s.ending) {
            (SessionState::Deleted, _) | (_, Some(Ending::Delete)) => reply.send(Ended::NotFound),
            (_, Some(Ending::Terminate(_))) => s.end_waiters.push(reply),
            (SessionState::Terminated, None) if !s.spawning => reply.send(Ended::Terminated),
            _ => {
                s.end_waiters.push(reply);
                self.stop_for_admin(skey);
            }
        }
    }

    /// End a live session for the admin: pending permissions denied, a
    /// running turn closed with `SESSION_TERMINATED {by:"admin"}`, then the
    /// worker stopped; `state{terminated, "admin_terminate"}` and
    /// `session_invalid{admin_killed}` follow the reap (`flow::complete_termination`).
    fn stop_for_admin(&mut self, skey: Key) {
        self.deny_all_pending(skey, "session terminated");
        if self.session(skey).is_some_and(|s| s.turn.is_some() && s.ending.is_none()) {
            let details = Some(json!({"by": "admin"}));
            self.abort_turn(skey, Some((ErrorCode::SessionTerminated, "turn ended: session terminated", details)));
        }
        if let Some(s) = self.session_mut(skey) {
            if s.ending == Some(Ending::Reset) {
                // the reset's stop is already under way; it ends the session instead
                s.ending = None;
            }
        }
        self.begin_termination(skey, TermReason::AdminTerminate);
    }

    /// `DELETE /admin/sessions/{id}` or `DELETE /api/sessions/{id}` on the
    /// home reactor. A session in memory goes through the delete path
    /// (worker stopped, `state{deleted}`, tombstone, connections closed) and
    /// is answered once `state{deleted}` went out; one that is not is
    /// tombstoned here (the caller checked its stored row) and answered at once.
    pub fn admin_delete(&mut self, id: uuid::Uuid, by: DeleteBy, reply: Reply<Ended>) {
        let Some(skey) = self.by_id.get(&id).and_then(|&i| self.sessions.get(i).map(|s| s.key(i))) else {
            if self.tombstones.contains_key(&id) {
                return reply.send(Ended::NotFound);
            }
            let at = crate::protocol::now_ms();
            let op = WriteOp::Delete { session: Arc::from(id.to_string()), at };
            if self.shared.store.try_send(op).is_err() {
                return reply.send(Ended::Failed);
            }
            self.tombstones.insert(id, Instant::now());
            crate::metrics::session_deleted(delete_source(&by));
            log::info!("session deleted session_id={id} (not in memory)");
            return reply.send(Ended::Deleted);
        };
        let Some(s) = self.session_mut(skey) else { return };
        if let DeleteBy::Owner(o) = &by {
            if *s.owner != **o {
                return reply.send(Ended::NotFound);
            }
        }
        if s.state == SessionState::Deleted {
            return reply.send(Ended::NotFound);
        }
        s.end_waiters.push(reply);
        if s.ending == Some(Ending::Delete) {
            return;
        }
        s.admin_delete = by == DeleteBy::Admin;
        crate::metrics::session_deleted(delete_source(&by));
        let running = s.turn.is_some();
        self.deny_all_pending(skey, "session deleted");
        if running {
            self.abort_turn(skey, Some((ErrorCode::SessionTerminated, "turn ended by delete", None)));
        }
        self.begin_delete(skey);
    }

    /// Answer the parked admin requests of a session whose ending is committed.
    pub fn fire_end_waiters(&mut self, skey: Key, ended: Ended) {
        let waiters = self.session_mut(skey).map(|s| std::mem::take(&mut s.end_waiters)).unwrap_or_default();
        for w in waiters {
            w.send(ended);
        }
    }

    /// `POST /admin/drain`: `control.reconnect` to every WebSocket connection
    /// (operations.md §2.6); those still open at `gateway.reconnect_deadline`
    /// are closed unless the drain ended meanwhile. Returns how many were notified.
    pub fn drain_notice(&mut self, reason: &str, delay_ms: u64, epoch: u64) -> usize {
        let notice = Event::reconnect(reason, delay_ms);
        let targets: Vec<Key> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.conn.is_ws() && matches!(c.stage, Stage::AwaitInit | Stage::InitPending | Stage::Attached { .. })
            })
            .map(|(i, c)| Key { idx: i, generation: c.generation })
            .collect();
        for k in &targets {
            self.send_local(*k, &notice);
        }
        self.timers.after(self.s.reconnect_deadline, Owner::Reactor, TimerKind::DrainClose(epoch));
        targets.len()
    }

    /// A drain's `reconnect_deadline` passed.
    pub(super) fn drain_deadline(&mut self, epoch: u64) {
        let l = &self.shared.liveness;
        if l.draining.load(Ordering::SeqCst) && l.drain_epoch.load(Ordering::SeqCst) == epoch {
            self.close_for_reconnect();
        }
    }

    /// A credential was revoked: its live connections get
    /// `error{SESSION_INVALIDATED, "credential revoked"}` and close 1008; with
    /// `terminate`, the sessions they were attached to (and, for a revoked
    /// `sub`, every live session of that owner) are terminated. Returns
    /// (connections closed, sessions terminated).
    pub fn revoke(&mut self, kind: RevocationKind, value: &str, terminate: bool) -> (usize, usize) {
        let hit: Vec<(Key, Option<Key>)> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.stage != Stage::Closing && c.principal.as_ref().is_some_and(|p| p.revoked_by(kind, value))
            })
            .map(|(i, c)| {
                let session = match c.stage {
                    Stage::Attached { session, .. } => Some(session),
                    _ => None,
                };
                (Key { idx: i, generation: c.generation }, session)
            })
            .collect();
        let mut sessions: Vec<Key> = Vec::new();
        for (k, session) in &hit {
            sessions.extend(*session);
            if self.client(*k).is_some_and(|c| c.conn.is_ws()) {
                self.send_error(*k, ErrorCode::SessionInvalidated, "credential revoked", None, None);
                self.close_client(*k, close::POLICY, "credential revoked", false);
            } else {
                self.drop_client(*k);
            }
        }
        if !terminate {
            return (hit.len(), 0);
        }
        if kind == RevocationKind::Sub {
            sessions.extend(self.sessions.iter().filter(|(_, s)| &*s.owner == value).map(|(i, s)| s.key(i)));
        }
        sessions.sort_by_key(|k| (k.idx, k.generation));
        sessions.dedup();
        let mut terminated = 0;
        for skey in sessions {
            let live = self.session(skey).is_some_and(|s| s.state.is_live() && s.ending.is_none());
            if live {
                self.stop_for_admin(skey);
                terminated += 1;
            }
        }
        (hit.len(), terminated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_answers_once_and_none_when_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let t2 = tx.clone();
        Reply::new(move |v: Option<u8>| t2.send(v).unwrap()).send(7);
        drop(Reply::new(move |v: Option<u8>| tx.send(v).unwrap()));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![Some(7), None]);
    }

    #[test]
    fn busy_ratio_window() {
        let mut b = BusyMeter::new();
        std::thread::sleep(Duration::from_millis(20));
        b.idle(Duration::from_secs(60));
        assert_eq!(b.take_ratio(), 0.0, "idle longer than the window clamps to 0");
        let r = b.take_ratio();
        assert!((0.0..=1.0).contains(&r));
    }
}
