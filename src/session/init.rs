//! `init` (aep-v1.md §4): resolve the session id, move the connection to the
//! reactor that homes the session, then attach (drive/observe), resume a
//! terminated session, or create a new one. Replies `init_ack` (+ replay) or
//! one error and a close.

use std::sync::Arc;
use std::time::Instant;

use crate::adapters::{self, WorkerType};
use crate::protocol::{ErrorCode, Event, InitRequest, Mode, ServerCaps, SessionState, close};
use crate::reactor::Reactor;
use crate::reactor::client::Stage;
use crate::reactor::shared::Candidate;
use crate::reactor::token::Key;
use crate::ws::outq::Pushed;

use super::identity;
use super::replay::{Replay, ReplayRing};
use super::{Session, Waiter};

impl Reactor {
    /// First step, on the reactor that read the `init`.
    pub fn begin_init(&mut self, key: Key, frame_id: Option<String>, req: Box<InitRequest>) {
        let Some(wt) = WorkerType::parse(&req.worker_type).filter(|t| self.s.worker(*t).is_some()) else {
            let msg = format!("worker_type {:?} is not enabled on this server", truncate(&req.worker_type, 64));
            return self.fail_init(key, ErrorCode::ConfigInvalid, &msg, frame_id);
        };
        if adapters::create(wt).is_none() {
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
        match candidate {
            Candidate::MaybeServerId(id, raw) => {
                if let Some(&idx) = self.by_id.get(&id) {
                    return self.attach_existing(key, idx, frame_id, req, &owner);
                }
                if self.tombstones.contains_key(&id) {
                    return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
                }
                // Not one of ours: it is a client key that happens to look like a UUID.
                let derived = identity::derive(&owner, wt.as_str(), &raw);
                let next = Candidate::Derived(derived, raw);
                if identity::home(&derived, self.shared.reactors.len()) == self.id {
                    self.init_on_home(key, frame_id, req, next);
                } else {
                    self.hand_over(key, frame_id, req, next);
                }
            }
            Candidate::Derived(id, client_key) => {
                if let Some(&idx) = self.by_id.get(&id) {
                    return self.attach_existing(key, idx, frame_id, req, &owner);
                }
                if self.tombstones.contains_key(&id) {
                    return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
                }
                self.create_session(key, frame_id, req, id, Some(client_key), owner, wt);
            }
            Candidate::New(id) => self.create_session(key, frame_id, req, id, None, owner, wt),
        }
    }

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
        let Some(ws) = self.s.worker(wt) else {
            return self.fail_init(key, ErrorCode::ConfigInvalid, "worker_type not enabled", frame_id);
        };
        let (launch, work_dir) =
            match self.s.policy.apply(req.config.as_ref(), wt, ws.model.as_deref(), ws.permission_mode.as_deref()) {
                Ok(v) => v,
                Err(r) => return self.fail_init(key, ErrorCode::ConfigInvalid, &r.message, frame_id),
            };
        let Some(adapter) = adapters::create(wt) else {
            return self.fail_init(key, ErrorCode::ConfigInvalid, "worker_type not supported", frame_id);
        };
        let limits = self.s.sessions.clone();
        if !self.shared.counters.try_add_session(&owner, limits.max_total, limits.max_per_owner) {
            return self.fail_init(key, ErrorCode::GatewayOverload, "session limit reached", frame_id);
        }
        let generation = self.next_gen();
        let now = Instant::now();
        let session = Session {
            generation,
            id,
            id_str: Arc::from(id.to_string()),
            owner_hash: identity::owner_hash(&owner),
            owner,
            worker_type: wt,
            client_key,
            state: SessionState::Created,
            seq: 0,
            config: req.config.clone().unwrap_or_default(),
            launch,
            requested_work_dir: work_dir,
            work_dir: None,
            agent_session_id: None,
            completed_turns: 0,
            adapter,
            worker: None,
            worker_gen: 0,
            spawning: false,
            driver: None,
            observers: Vec::new(),
            turn: None,
            turns_started: 0,
            perms: Vec::new(),
            perm_serial: 0,
            replay: ReplayRing::new(limits.replay_events, limits.replay_bytes),
            ending: None,
            term_replies: Vec::new(),
            waiters: vec![Waiter { client: key, frame_id, last_seq: req.last_seq, resumed: false }],
            last_active: now,
            live_since: now,
            detached_since: None,
            terminated_at: None,
            last_turn_agent_error: false,
            counted: true,
            resume_next: false,
        };
        let idx = self.sessions.insert(session);
        self.by_id.insert(id, idx);
        self.spawn_worker(Key { idx, generation });
    }

    fn attach_existing(&mut self, key: Key, idx: usize, frame_id: Option<String>, req: Box<InitRequest>, owner: &str) {
        let Some(s) = self.sessions.get(idx) else { return };
        let skey = s.key(idx);
        if &*s.owner != owner {
            log::info!("foreign session probe session_id={}", s.id_str);
            return self.fail_init(key, ErrorCode::SessionNotFound, "session not found", frame_id);
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
        let ack = Event::InitAck {
            session_id: s.id_str.to_string(),
            state,
            resumed,
            last_seq: s.seq,
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
            self.send_error(old, ErrorCode::SessionInvalidated, "superseded by a newer connection", None, None);
            self.close_client(old, close::POLICY, "superseded", false);
        }
        if let Some(c) = self.client_mut(key) {
            c.stage = Stage::Attached { session: skey, mode };
        }
        self.send_local(key, &ack);
        if let Some(last) = last_seq {
            self.replay_to(key, skey, last);
        }
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

    /// Send every held event after `last_seq` (exempt from the slow-consumer bound).
    fn replay_to(&mut self, key: Key, skey: Key, last_seq: u64) {
        let Some(s) = self.sessions.get(skey.idx).filter(|s| s.generation == skey.generation) else { return };
        let (expired, frames) = match s.replay.since(last_seq, s.seq) {
            Replay::Complete(f) => (None, f.into_iter().cloned().collect::<Vec<_>>()),
            Replay::Expired { oldest_seq, frames } => (Some(oldest_seq), frames.into_iter().cloned().collect()),
        };
        if let Some(oldest) = expired {
            let ev = Event::Error {
                code: ErrorCode::SessionExpired,
                message: "events before oldest_seq are no longer available".into(),
                event_id: None,
                details: Some(serde_json::json!({"oldest_seq": oldest})),
            };
            self.send_local(key, &ev);
        }
        let (hw, bound) = (self.s.send_queue_high_water, self.s.send_queue_bytes);
        if let Some(c) = self.client_mut(key) {
            for f in &frames {
                let _: Pushed = c.conn.out.push_frame(f, hw, bound, true);
            }
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
