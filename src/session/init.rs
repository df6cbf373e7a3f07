//! `init` (aep-v1.md §4): resolve the session id, move the connection to the
//! reactor that homes the session, then attach (drive/observe), resume a
//! terminated session, or create a new one. Replies `init_ack` (+ replay) or
//! one error and a close.

use crate::security::audit::{AuditKind, AuditOutcome, Detail};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::adapters::{self, WorkerType};
use crate::protocol::{ErrorCode, Event, InitRequest, Mode, ServerCaps, SessionState, close};
use crate::reactor::Reactor;
use crate::reactor::client::Stage;
use crate::reactor::shared::{Candidate, Msg, PendingInit, ReadDone};
use crate::reactor::token::Key;
use crate::security::{AuthDecision, UnixTime};
use crate::store::{Answer, Query, SessionRow, WriteOp};
use crate::ws::frame;
use crate::ws::outq::Pushed;

use super::identity;
use super::replay::Replay;
use super::{Session, Waiter};

/// Rows per replay page read from the store.
const REPLAY_PAGE: usize = 1000;
/// About this many bytes of event data per replay page.
const REPLAY_PAGE_BYTES: usize = 1 << 20;

impl Reactor {
    /// First step, on the reactor that read the `init`.
    pub fn begin_init(&mut self, key: Key, frame_id: Option<String>, req: Box<InitRequest>) {
        if self.stopping {
            self.send_error(key, ErrorCode::ReconnectRequired, "server shutting down", frame_id, None);
            return self.close_client(key, close::GOING_AWAY, "server shutting down", false);
        }
        self.trace_init_begin(key, &req);
        // Authentication first: the init's credential (or the upgrade's) names the owner.
        let mode = req.mode.unwrap_or(Mode::Drive);
        let Some(c) = self.client(key) else { return };
        let decision = self.shared.auth().init(c.principal.as_ref(), req.auth_token.as_deref(), mode, UnixTime::now());
        let ip = c.rate.open_ip;
        match decision {
            AuthDecision::Authenticated(p) => {
                if self.s.guards.log_auth_success {
                    self.audit(crate::reactor::audit::auth_success(&p, ip, "init"));
                }
                if let Some(c) = self.client_mut(key) {
                    c.owner = Some(p.owner.clone());
                    c.principal = Some(p);
                }
            }
            AuthDecision::PreAuth => {
                crate::metrics::auth_failure(crate::metrics::Listener::Ws, "missing");
                let missing = crate::security::AuthFailure {
                    reason: crate::security::Reason::Missing,
                    credential_id: None,
                    source: None,
                };
                self.audit(crate::reactor::audit::auth_failure(&missing, ip, "init"));
                return self.fail_init(key, ErrorCode::AuthRequired, "a credential is required", frame_id);
            }
            AuthDecision::Refused(f) => {
                crate::metrics::auth_failure(crate::metrics::Listener::Ws, f.label());
                log::warn!("authentication failed at init reason={}", f.label());
                if let Some(ip) = ip {
                    self.shared.lockout.record_failure(ip, std::time::Instant::now());
                }
                self.audit(crate::reactor::audit::auth_failure(&f, ip, "init"));
                return self.fail_init(key, f.aep_code(), f.client_message(), frame_id);
            }
        }
        let Some((wt, ws)) = WorkerType::parse(&req.worker_type).and_then(|t| self.s.worker(t).map(|ws| (t, ws)))
        else {
            let msg = format!("worker_type {:?} is not enabled on this server", truncate(&req.worker_type, 64));
            return self.fail_init(key, ErrorCode::ConfigInvalid, &msg, frame_id);
        };
        if adapters::create(wt, &ws.adapter).is_none() {
            return self.fail_init(key, ErrorCode::ConfigInvalid, "worker_type not supported by this build", frame_id);
        }
        let max_key = self.s.decode.max_id_bytes;
        let Some(c) = self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation) else { return };
        let owner = c.owner.clone().unwrap_or_else(|| Arc::from(identity::ANONYMOUS));
        let candidate = match req.session_id.as_deref() {
            None => Candidate::New(identity::random(&owner, wt.as_str())),
            Some(s) => match identity::parse_server_id(s) {
                Some(u) => Candidate::MaybeServerId(u, s.to_owned()),
                None if identity::valid_client_key(s, max_key) => {
                    Candidate::Derived(identity::derive(&owner, wt.as_str(), s), s.to_owned())
                }
                None => {
                    return self.fail_init(
                        key,
                        ErrorCode::InvalidMessage,
                        "init.session_id is not a valid session key",
                        frame_id,
                    );
                }
            },
        };
        c.stage = Stage::InitPending;
        c.conn.read_paused = true;
        // Init received: the pre-init phase is over; the owner's connection cap applies.
        if let Some(p) = c.rate.preinit.take() {
            self.shared.limiter.end_preinit(p);
        }
        if !self.shared.limiter.owner_attach(&owner, &self.s.rate) {
            return self.fail_init(key, ErrorCode::GatewayOverload, "too many connections for this owner", frame_id);
        }
        if let Some(c) = self.client_mut(key) {
            c.rate.owner = Some(owner.clone());
        }
        if identity::home(&candidate.id(), self.shared.reactors.len()) == self.id {
            self.init_on_home(key, frame_id, req, candidate);
        } else {
            self.hand_over(key, frame_id, req, candidate);
        }
    }

    /// Second step, on the session's home reactor.
    pub fn init_on_home(&mut self, key: Key, frame_id: Option<String>, req: Box<InitRequest>, candidate: Candidate) {
        let Some(owner) = self.client(key).and_then(|c| c.owner.clone()) else { return };
        let Some(wt) = WorkerType::parse(&req.worker_type) else {
            return self.fail_init(key, ErrorCode::ConfigInvalid, "unknown worker_type", frame_id);
        };
        let id = candidate.id();
        if let Some(&idx) = self.by_id.get(&id) {
            return self.attach_existing(key, idx, frame_id, req, &owner);
        }
        if self.tombstones.contains_key(&id) {
            return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
        }
        if let Candidate::New(id) = candidate {
            // A fresh random id cannot exist yet.
            return self.create_session(key, frame_id, req, id, None, owner, wt);
        }
        // Not in memory: ask the store (off this thread).
        let home = self.shared.reactors[self.id].clone();
        let pending = Box::new(PendingInit { frame_id, init: req, candidate });
        self.shared.readers.submit(
            Query::Session(id.to_string()),
            Box::new(move |answer| {
                home.send(Msg::Read(Box::new(ReadDone::InitLookup { client: key, pending, answer })))
            }),
        );
    }

    /// The store answered the lookup of an `init`'s session.
    pub fn on_init_lookup(&mut self, key: Key, pending: PendingInit, answer: Answer) {
        let PendingInit { frame_id, init: req, candidate } = pending;
        let Some(owner) = self.client(key).and_then(|c| c.owner.clone()) else { return };
        let Some(wt) = WorkerType::parse(&req.worker_type) else { return };
        let id = candidate.id();
        if let Some(&idx) = self.by_id.get(&id) {
            // created or loaded by a concurrent init meanwhile
            return self.attach_existing(key, idx, frame_id, req, &owner);
        }
        if self.tombstones.contains_key(&id) {
            // deleted (admin or API) while the lookup was in flight
            return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
        }
        match answer {
            Answer::Session(Some(row)) => {
                if row.state == "deleted" {
                    self.tombstones.insert(id, Instant::now());
                    return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
                }
                if *row.owner != *owner {
                    return self.foreign_probe(key, &id.to_string(), frame_id);
                }
                match self.materialize(*row) {
                    Ok(idx) => self.attach_existing(key, idx, frame_id, req, &owner),
                    Err(msg) => self.fail_init(key, ErrorCode::ConfigInvalid, msg, frame_id),
                }
            }
            Answer::Session(None) => match candidate {
                Candidate::MaybeServerId(_, raw) => {
                    // Not a session of ours: a client key that happens to look like a UUID.
                    let derived = identity::derive(&owner, wt.as_str(), &raw);
                    let next = Candidate::Derived(derived, raw);
                    if identity::home(&derived, self.shared.reactors.len()) == self.id {
                        self.init_on_home(key, frame_id, req, next);
                    } else {
                        self.hand_over(key, frame_id, req, next);
                    }
                }
                Candidate::Derived(id, client_key) => {
                    self.create_session(key, frame_id, req, id, Some(client_key), owner, wt)
                }
                Candidate::New(id) => self.create_session(key, frame_id, req, id, None, owner, wt),
            },
            _ => self.fail_init(key, ErrorCode::InternalError, "session lookup failed", frame_id),
        }
    }

    /// Bring a stored (terminated) session back into memory.
    fn materialize(&mut self, row: SessionRow) -> Result<usize, &'static str> {
        let wt = WorkerType::parse(&row.worker_type).ok_or("the session's worker_type is unknown")?;
        let ws = self.s.worker(wt).ok_or("the session's worker_type is not enabled")?;
        let adapter = adapters::create(wt, &ws.adapter).ok_or("the session's worker_type is not supported")?;
        let config = Session::config_from_json(&row.config_json);
        // Resume never bypasses policy: the stored config is checked against today's.
        let (launch, requested_work_dir) = self
            .s
            .policy
            .apply(Some(&config), wt, ws.model.as_deref(), ws.permission_mode.as_deref())
            .map_err(|_| "the session's stored config is no longer allowed")?;
        let id = uuid::Uuid::parse_str(&row.id).map_err(|_| "bad stored session id")?;
        let generation = self.next_gen();
        let owner: Arc<str> = Arc::from(row.owner.as_str());
        let mut session = Session::new(generation, id, owner, wt, adapter, config, launch, &self.s.sessions);
        session.requested_work_dir = requested_work_dir;
        session.client_key = row.client_session_id;
        session.state = SessionState::Terminated;
        session.gauge.set(SessionState::Terminated);
        session.seq = row.last_seq;
        session.persist.committed = row.last_seq;
        session.work_dir = Some(PathBuf::from(&row.work_dir)).filter(|p| !p.as_os_str().is_empty());
        session.agent_session_id = row.worker_session_id;
        session.completed_turns = row.turns;
        session.turns_started = row.turns;
        session.detached_since = Some(session.last_active);
        session.terminated_at = Some(session.last_active);
        session.created_ms = row.created_at;
        session.totals = row.totals;
        session.state_reason = row.state_reason;
        session.terminated_ms = row.terminated_at;
        let idx = self.sessions.insert(session);
        self.by_id.insert(id, idx);
        Ok(idx)
    }

    /// A new session: with `sessions.max_stored_per_owner`, first the
    /// owner's stored count from the store (off this thread, see
    /// `session/stored.rs`), then [`Self::create_checked`].
    #[allow(clippy::too_many_arguments)]
    fn create_session(
        &mut self,
        key: Key,
        frame_id: Option<String>,
        req: Box<InitRequest>,
        id: uuid::Uuid,
        client_key: Option<String>,
        owner: Arc<str>,
        wt: WorkerType,
    ) {
        if req.mode == Some(Mode::Observe) {
            return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
        }
        if self.s.sessions.max_stored_per_owner == 0 {
            return self.create_checked(key, frame_id, req, id, client_key, owner, wt);
        }
        let except = self.shared.creates_in_flight.reserve(&owner, &id.to_string());
        let in_flight = except.len();
        let candidate = match client_key {
            Some(k) => Candidate::Derived(id, k),
            None => Candidate::New(id),
        };
        let home = self.shared.reactors[self.id].clone();
        let pending = Box::new(PendingInit { frame_id, init: req, candidate });
        let owner2 = owner.clone();
        self.shared.readers.submit(
            Query::CountStoredExcept { owner: owner.to_string(), except },
            Box::new(move |answer| {
                home.send(Msg::Read(Box::new(ReadDone::StoredCount {
                    client: key,
                    pending,
                    owner: owner2,
                    in_flight,
                    answer,
                })))
            }),
        );
    }

    /// The store counted the owner's stored sessions for a create.
    pub fn on_stored_count(
        &mut self,
        key: Key,
        pending: PendingInit,
        owner: Arc<str>,
        in_flight: usize,
        answer: Answer,
    ) {
        let PendingInit { frame_id, init: req, candidate } = pending;
        let id = candidate.id();
        let id_str = id.to_string();
        let wt = WorkerType::parse(&req.worker_type);
        let (Some(wt), Some(_)) = (wt, self.client(key)) else {
            return self.shared.creates_in_flight.release(&owner, &id_str);
        };
        if let Some(&idx) = self.by_id.get(&id) {
            // created by a concurrent init meanwhile
            self.shared.creates_in_flight.release(&owner, &id_str);
            return self.attach_existing(key, idx, frame_id, req, &owner);
        }
        let max = self.s.sessions.max_stored_per_owner;
        let stored = match answer {
            Answer::Count(n) => n as usize,
            _ => {
                self.shared.creates_in_flight.release(&owner, &id_str);
                return self.fail_init(key, ErrorCode::InternalError, "session lookup failed", frame_id);
            }
        };
        if stored + in_flight > max {
            self.shared.creates_in_flight.release(&owner, &id_str);
            log::info!(
                "stored session limit reached owner_hash={} stored={stored} max={max}",
                crate::session::identity::owner_hash(&owner)
            );
            return self.fail_init(key, ErrorCode::GatewayOverload, "stored session limit reached", frame_id);
        }
        let client_key = match candidate {
            Candidate::Derived(_, k) | Candidate::MaybeServerId(_, k) => Some(k),
            Candidate::New(_) => None,
        };
        self.create_checked(key, frame_id, req, id, client_key, owner.clone(), wt);
        if !self.by_id.contains_key(&id) {
            self.shared.creates_in_flight.release(&owner, &id_str);
        }
    }

    /// Create after the stored-session check: policy, rates, live limits, spawn.
    #[allow(clippy::too_many_arguments)]
    fn create_checked(
        &mut self,
        key: Key,
        frame_id: Option<String>,
        req: Box<InitRequest>,
        id: uuid::Uuid,
        client_key: Option<String>,
        owner: Arc<str>,
        wt: WorkerType,
    ) {
        let Some(ws) = self.s.worker(wt) else {
            return self.fail_init(key, ErrorCode::ConfigInvalid, "worker_type not enabled", frame_id);
        };
        let (launch, work_dir) =
            match self.s.policy.apply(req.config.as_ref(), wt, ws.model.as_deref(), ws.permission_mode.as_deref()) {
                Ok(v) => v,
                Err(r) => {
                    let detail =
                        Detail::from_value(serde_json::json!({"worker_type": wt.as_str(), "refused": r.message}));
                    let mut e = self
                        .audit_entry_for(key, AuditKind::PolicyViolation, AuditOutcome::Denied)
                        .reason("init_config");
                    if let Some(d) = detail {
                        e = e.detail(d);
                    }
                    self.audit(e);
                    return self.fail_init(key, ErrorCode::ConfigInvalid, &r.message, frame_id);
                }
            };
        let Some(adapter) = adapters::create(wt, &ws.adapter) else {
            return self.fail_init(key, ErrorCode::ConfigInvalid, "worker_type not supported", frame_id);
        };
        let limits = self.s.sessions.clone();
        if !self.shared.limiter.owner_create(&owner, &self.s.rate) {
            return self.fail_init(key, ErrorCode::GatewayOverload, "session creation rate exceeded", frame_id);
        }
        if !self.shared.counters.try_add_session(&owner, limits.max_total, limits.max_per_owner) {
            return self.fail_init(key, ErrorCode::GatewayOverload, "session limit reached", frame_id);
        }
        let generation = self.next_gen();
        let config = req.config.clone().unwrap_or_default();
        let mut session = Session::new(generation, id, owner, wt, adapter, config, launch, &limits);
        session.requested_work_dir = work_dir;
        session.client_key = client_key;
        session.counted = true;
        session.waiters.push(Waiter { client: key, frame_id, last_seq: req.last_seq, resumed: false });
        let idx = self.sessions.insert(session);
        self.by_id.insert(id, idx);
        let skey = Key { idx, generation };
        if let Some(row) = self.session(skey).map(|s| s.row()) {
            self.store_op(skey, WriteOp::InsertSession(Box::new(row)));
        }
        self.spawn_worker(skey);
    }

    fn attach_existing(&mut self, key: Key, idx: usize, frame_id: Option<String>, req: Box<InitRequest>, owner: &str) {
        let Some(s) = self.sessions.get(idx) else { return };
        let skey = s.key(idx);
        if &*s.owner != owner {
            let id = s.id_str.clone();
            return self.foreign_probe(key, &id, frame_id);
        }
        if s.worker_type.as_str() != WorkerType::parse(&req.worker_type).map(|t| t.as_str()).unwrap_or("") {
            return self.fail_init(
                key,
                ErrorCode::ConfigInvalid,
                "init.worker_type differs from the session's",
                frame_id,
            );
        }
        if s.ending == Some(super::Ending::Delete) {
            return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
        }
        let mode = req.mode.unwrap_or(Mode::Drive);
        if mode == Mode::Observe {
            if s.observers.len() >= self.s.sessions.max_observers {
                return self.fail_init(key, ErrorCode::GatewayOverload, "too many observers", frame_id);
            }
            let state = s.state;
            return self.complete_attach(key, skey, frame_id, req.last_seq, true, Mode::Observe, state);
        }
        if let Some(cfg) = &req.config {
            if *cfg != s.config {
                return self.fail_init(
                    key,
                    ErrorCode::ConfigInvalid,
                    "init.config differs from the session's stored config",
                    frame_id,
                );
            }
        }
        let waiter = Waiter { client: key, frame_id, last_seq: req.last_seq, resumed: true };
        if s.spawning || s.ending.is_some() || s.state == SessionState::Created {
            if let Some(s) = self.session_mut(skey) {
                s.waiters.push(waiter);
            }
            return;
        }
        if s.state == SessionState::Terminated {
            // Resume: a new worker continues the agent's conversation.
            let limits = &self.s.sessions;
            if !self.shared.counters.try_add_session(owner, limits.max_total, limits.max_per_owner) {
                return self.fail_init(key, ErrorCode::GatewayOverload, "session limit reached", waiter.frame_id);
            }
            if let Some(s) = self.session_mut(skey) {
                s.counted = true;
                s.resume_next = s.completed_turns > 0 && s.agent_session_id.is_some();
                s.waiters.push(waiter);
            }
            return self.spawn_worker(skey);
        }
        let state = s.state;
        self.complete_attach(key, skey, waiter.frame_id, waiter.last_seq, true, Mode::Drive, state);
    }

    /// An `init` naming another owner's session: answered exactly like a
    /// nonexistent id, and counted toward the client IP's lockout (security.md §2.3).
    fn foreign_probe(&mut self, key: Key, session_id: &str, frame_id: Option<String>) {
        log::info!("foreign session probe session_id={session_id}");
        crate::metrics::auth_failure(crate::metrics::Listener::Ws, "scope");
        let probe = self.audit_entry_for(key, AuditKind::SessionForeignProbe, AuditOutcome::Denied).session(session_id);
        self.audit(probe);
        if let Some(ip) = self.client(key).and_then(|c| c.rate.open_ip) {
            self.shared.lockout.record_failure(ip, Instant::now());
        }
        self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id)
    }

    /// `init_ack`, replay, then live events (aep-v1.md §4.2, §5.3).
    #[allow(clippy::too_many_arguments)]
    pub fn complete_attach(
        &mut self,
        key: Key,
        skey: Key,
        _frame_id: Option<String>,
        last_seq: Option<u64>,
        resumed: bool,
        mode: Mode,
        state: SessionState,
    ) {
        let Some(s) = self.session(skey) else { return };
        let Some(c) = self.client(key) else { return };
        if !matches!(c.stage, Stage::InitPending) {
            return;
        }
        let caps = s.adapter.caps();
        // The replay top: everything up to it is committed; later events
        // reach this connection live as they commit.
        let top = s.persist.committed;
        let sid = s.id_str.clone();
        let ack = Event::InitAck {
            session_id: sid.to_string(),
            state,
            resumed,
            last_seq: top,
            server_caps: ServerCaps {
                protocol_version: crate::protocol::VERSION,
                worker_type: s.worker_type.as_str().to_owned(),
                supports_resume: caps.supports_resume,
                supports_delta: caps.supports_delta,
                supports_tool_call: caps.supports_tool_call,
                supports_ping: true,
                supports_permissions: caps.supports_permissions,
                supports_interrupt: caps.supports_interrupt,
                max_frame_size: self.s.max_message_bytes as u64,
                modalities: ["text", "code"],
                events: crate::protocol::events::SERVER_EVENT_TYPES,
            },
        };
        // Supersede an existing driver (aep-v1.md §7).
        let old_driver = if mode == Mode::Drive { s.driver.filter(|d| *d != key) } else { None };
        if let Some(old) = old_driver {
            // Queued now, not behind the session's frames awaiting commit: the
            // old driver is detached at once and would never receive those
            // frames, nor an error parked behind them (found by
            // tests/state_machine.rs: a takeover mid-turn closed the old
            // driver without SESSION_INVALIDATED).
            let ev = Event::Error {
                code: ErrorCode::SessionInvalidated,
                message: "superseded by a newer connection".to_owned(),
                event_id: None,
                details: None,
            };
            crate::metrics::local_event_sent(&ev);
            self.push_now(old, frame::text(&crate::protocol::encode(0, &sid, crate::protocol::now_ms(), &ev)));
            self.close_client(old, close::POLICY, "superseded", false);
        }
        // init_ack first, directly: it is never held behind session frames.
        let ack_bytes = frame::text(&crate::protocol::encode(0, &sid, crate::protocol::now_ms(), &ack));
        crate::metrics::local_event_sent(&ack);
        self.push_now(key, ack_bytes);
        if let Some(c) = self.client_mut(key) {
            c.stage = Stage::Attached { session: skey, mode };
            c.conn.gauge.attached();
        }
        self.arm_credential_expiry(key);
        if let Some(last) = last_seq {
            self.replay_to(key, skey, last, top);
        }
        let replayed = last_seq.map(|l| top.saturating_sub(if l > top { 0 } else { l })).unwrap_or(0);
        self.trace_attached(key, skey, resumed, replayed, mode);
        if let Some(s) = self.session_mut(skey) {
            match mode {
                Mode::Drive => s.driver = Some(key),
                Mode::Observe => s.observers.push(key),
            }
            s.detached_since = None;
            s.last_active = Instant::now();
        }
        self.run_deferred(key);
    }

    /// Send every logged event after `last_seq` up to `top` (exempt from the
    /// slow-consumer bound): from the in-memory window when it covers the
    /// range, else from the store in pages while live frames are held back.
    fn replay_to(&mut self, key: Key, skey: Key, last_seq: u64, top: u64) {
        let from = if last_seq > top { 0 } else { last_seq };
        if from >= top {
            return crate::metrics::replay_request(false);
        }
        let Some(s) = self.session(skey) else { return };
        if let Replay::Complete(frames) = s.replay.since(from, top) {
            crate::metrics::replay_request(false);
            let frames: Vec<_> = frames.into_iter().cloned().collect();
            let (hw, bound) = (self.s.send_queue_high_water, self.s.send_queue_bytes);
            if let Some(c) = self.client_mut(key) {
                for f in &frames {
                    let _: Pushed = c.conn.out.push_frame(f, hw, bound, true);
                }
            }
            self.mark_dirty(key);
            return;
        }
        if let Some(c) = self.client_mut(key) {
            c.replay_hold = Some(Vec::new());
        }
        self.request_replay_page(key, skey, top, from, true);
    }

    fn request_replay_page(&mut self, key: Key, skey: Key, top: u64, after: u64, first: bool) {
        let Some(s) = self.session(skey) else { return };
        let home = self.shared.reactors[self.id].clone();
        self.shared.readers.submit(
            Query::Events {
                session: s.id_str.to_string(),
                after_seq: after,
                limit: REPLAY_PAGE,
                max_bytes: REPLAY_PAGE_BYTES,
            },
            Box::new(move |answer| {
                home.send(Msg::Read(Box::new(ReadDone::Replay {
                    client: key,
                    session: skey,
                    top,
                    after,
                    first,
                    answer,
                })))
            }),
        );
    }

    /// A replay page arrived from the store.
    pub fn on_replay_page(&mut self, key: Key, skey: Key, top: u64, after: u64, first: bool, answer: Answer) {
        let Some(sid) = self.session(skey).map(|s| s.id_str.clone()) else { return self.end_replay(key) };
        if self.client(key).is_none() {
            return;
        }
        let page = match answer {
            Answer::Events(p) => p,
            _ => {
                self.send_error(key, ErrorCode::InternalError, "replay failed", None, None);
                return self.end_replay(key);
            }
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        if first {
            crate::metrics::replay_request(page.oldest_seq.is_some_and(|o| after + 1 < o));
            if let Some(oldest) = page.oldest_seq.filter(|o| after + 1 < *o) {
                let ev = Event::Error {
                    code: ErrorCode::SessionExpired,
                    message: "events before oldest_seq are no longer available".into(),
                    event_id: None,
                    details: Some(serde_json::json!({"oldest_seq": oldest})),
                };
                out.push(frame::text(&crate::protocol::encode(0, &sid, crate::protocol::now_ms(), &ev)));
                crate::metrics::local_event_sent(&ev);
                for (message_id, seq, content) in &page.snapshots {
                    crate::metrics::frame_sent_named("message.delta");
                    crate::metrics::replay_events(1);
                    let data = serde_json::json!({"message_id": message_id, "content": content}).to_string();
                    let json = crate::store::replay::envelope_raw(
                        *seq,
                        "message.delta",
                        crate::protocol::now_ms(),
                        &data,
                        &sid,
                    );
                    out.push(frame::text(&json));
                }
            }
        }
        let mut last = after;
        let mut reached_top = false;
        for row in &page.rows {
            if row.seq > top {
                reached_top = true;
                break;
            }
            if let Some(mut buf) = crate::store::replay::envelope_after(row, &sid, after.max(last), frame::MAX_HEADER) {
                crate::metrics::frame_sent_named(&row.event_type);
                crate::metrics::replay_events(1);
                let off = frame::text_in_place(&mut buf);
                buf.drain(..off);
                out.push(buf);
            }
            last = row.seq;
        }
        if let Some(c) = self.client_mut(key) {
            for b in out {
                c.conn.out.push_raw(b);
            }
        }
        self.mark_dirty(key);
        if page.has_more && !reached_top && last < top {
            // The next page is read once this one has (mostly) been written.
            if let Some(c) = self.client_mut(key) {
                c.replay_next = Some((skey, top, last));
            }
            self.continue_replay(key);
        } else {
            self.end_replay(key);
        }
    }

    /// Read the next replay page if the connection's queue has drained below
    /// its high-water mark (replay is paged as the client reads).
    pub fn continue_replay(&mut self, key: Key) {
        let hw = self.s.send_queue_high_water;
        let Some(c) = self.client_mut(key) else { return };
        if c.conn.out.total_bytes() > hw {
            return;
        }
        let Some((skey, top, after)) = c.replay_next.take() else { return };
        self.request_replay_page(key, skey, top, after, false);
    }

    /// Replay done: queue the live frames held meanwhile.
    fn end_replay(&mut self, key: Key) {
        let (hw, bound) = (self.s.send_queue_high_water, self.s.send_queue_bytes);
        let Some(c) = self.client_mut(key) else { return };
        let Some(held) = c.replay_hold.take() else { return };
        let mut over = false;
        for f in &held {
            if c.conn.out.push_frame(f, hw, bound, false) == Pushed::OverBound {
                over = true;
                break;
            }
        }
        if over {
            self.close_client(key, close::POLICY, "slow consumer", true);
        }
        self.mark_dirty(key);
    }
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
