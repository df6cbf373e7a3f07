//! Session behaviour on its reactor: emitting session events (seq, replay
//! window, fan-out with backpressure), turns (exactly one `done` per
//! accepted input), permissions, control actions (aep-v1.md §6), timers and
//! the GC sweep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::adapters::{Action, Out, PermissionReply, WorkerType};
use crate::metrics::Decision;
use crate::protocol::{ControlAction, ErrorCode, Event, SessionState, Stats, close, now_ms};
use crate::reactor::Reactor;
use crate::reactor::timer::{Owner, TimerKind};
use crate::reactor::token::Key;
use crate::ws::outq::SessionFrame;

use super::{Ending, PendingPermission, Session, TermReason, Turn};
use crate::store::WriteOp;

impl Reactor {
    pub fn session(&self, key: Key) -> Option<&Session> {
        self.sessions.get(key.idx).filter(|s| s.generation == key.generation)
    }

    pub fn session_mut(&mut self, key: Key) -> Option<&mut Session> {
        self.sessions.get_mut(key.idx).filter(|s| s.generation == key.generation)
    }

    /// Assign the next seq to `ev` and log it; it reaches the replay window
    /// and every attached connection once committed (`persist::release`).
    pub fn emit(&mut self, skey: Key, ev: Event) {
        let Some(s) = self.session_mut(skey) else { return };
        crate::metrics::session_event(&ev);
        s.seq += 1;
        crate::otel::session::on_event(&mut s.trace, &ev);
        let frame = Arc::new(SessionFrame::new(s.seq, now_ms(), s.id_str.clone(), &ev));
        self.persist_event(skey, frame);
    }

    /// A state change: update the session (and its stored row), then announce it.
    pub(super) fn emit_state(&mut self, skey: Key, state: SessionState, message: Option<&str>) {
        if let Some(s) = self.session_mut(skey) {
            s.state = state;
            s.gauge.set(state);
            match state {
                SessionState::Terminated | SessionState::Deleted => {
                    s.terminated_ms = Some(now_ms());
                    s.live_since_ms = None;
                    s.state_reason = message.map(str::to_owned);
                }
                _ => s.state_reason = None,
            }
        }
        if state != SessionState::Deleted {
            self.persist_session(skey);
        }
        self.emit(skey, Event::state(state, message));
    }

    /// Carry out what an adapter asked for.
    pub fn apply_actions(&mut self, skey: Key, actions: Vec<Action>) {
        for a in actions {
            if self.session(skey).is_none() {
                return;
            }
            match a {
                Action::Emit(ev) => self.adapter_event(skey, ev),
                Action::Unmapped { kind, raw } => {
                    crate::metrics::worker_unmapped_line(
                        self.session(skey).map_or(WorkerType::ClaudeCode, |s| s.worker_type),
                    );
                    if self.s.emit_raw && self.session(skey).is_some_and(|s| s.ending.is_none()) {
                        self.emit(skey, Event::Raw { kind, raw });
                    }
                }
                Action::Permission(ask) => self.permission_asked(skey, ask),
                Action::PermissionCancelled { id } => {
                    if let Some(s) = self.session_mut(skey) {
                        let gone = s.perms.iter().filter(|p| p.id == id).map(|p| p.asked);
                        crate::metrics::permissions_cancelled(s.worker_type, gone);
                        s.perms.retain(|p| p.id != id);
                    }
                }
                Action::AgentSessionId(id) => {
                    let ok = !id.is_empty()
                        && id.len() <= 128
                        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if let Some(s) = self.session_mut(skey) {
                        if !ok {
                            log::warn!("discarding malformed agent session id session_id={}", s.id_str);
                        } else if s.agent_session_id.as_deref() != Some(id.as_str()) {
                            s.agent_session_id = Some(id);
                            self.persist_session(skey);
                        }
                    }
                }
                Action::TurnEnd { success, stats } => self.end_turn(skey, success, stats),
                Action::ResumeFailed { message } => self.resume_failed(skey, message),
                Action::Stdin(bytes) => self.write_stdin(skey, bytes),
                Action::CloseStdin => self.close_stdin(skey),
                Action::Kill => self.stop_worker(skey, false),
                Action::Ready => self.worker_ready(skey),
                Action::Timer { id, after } => {
                    self.timers.after(after, Owner::Session(skey.into()), TimerKind::Adapter(id))
                }
                Action::Http { id, request } => self.http_request(skey, id, request, false),
                Action::HttpStream { id, request } => self.http_request(skey, id, request, true),
                Action::HttpCancel { id } => self.http_cancel(skey, id),
            }
        }
    }

    fn adapter_event(&mut self, skey: Key, ev: Event) {
        let Some(s) = self.session_mut(skey) else { return };
        if s.ending.is_some() {
            return; // the turn was already closed by the gateway
        }
        s.last_active = Instant::now();
        let wt = s.worker_type;
        if let Some(t) = s.turn.as_mut() {
            crate::metrics::turn_event(wt, t.saw_content, t.started, &ev);
            match &ev {
                Event::ToolCall { .. } => {
                    t.tool_calls += 1;
                    t.saw_content = true;
                }
                Event::MessageDelta { .. } | Event::Message { .. } | Event::Reasoning { .. } => t.saw_content = true,
                Event::Error { code: ErrorCode::AgentError, .. } => s.last_turn_agent_error = true,
                _ => {}
            }
        }
        self.emit(skey, ev);
    }

    /// Run an adapter call and apply its actions.
    pub fn with_adapter(&mut self, skey: Key, f: impl FnOnce(&mut dyn crate::adapters::Adapter, &mut Out)) {
        let Some(s) = self.session_mut(skey) else { return };
        let mut out = Out::default();
        f(s.adapter.as_mut(), &mut out);
        let actions = out.take();
        self.apply_actions(skey, actions);
    }

    // ---- turns ---------------------------------------------------------

    pub fn on_input(
        &mut self,
        skey: Key,
        client: Key,
        frame_id: Option<String>,
        content: String,
        _metadata: Option<Value>,
    ) {
        if self.stopping {
            // operations.md §2.4: any input after the reconnect notice
            self.send_error(client, ErrorCode::ReconnectRequired, "reconnect to another server", frame_id, None);
            return self.close_client(client, close::GOING_AWAY, "server shutting down", false);
        }
        let Some(s) = self.session(skey) else { return };
        if s.state == SessionState::Terminated && s.ending.is_none() && !s.spawning {
            return self.send_error(
                client,
                ErrorCode::SessionTerminated,
                "the session is terminated; re-init to resume it",
                frame_id,
                None,
            );
        }
        if !s.can_take_input() {
            return self.send_error(client, ErrorCode::SessionBusy, "a turn is already running", frame_id, None);
        }
        let now = Instant::now();
        let Some(s) = self.session_mut(skey) else { return };
        s.turns_started += 1;
        let n = s.turns_started;
        s.turn = Some(Turn {
            n,
            started: now,
            tool_calls: 0,
            interrupting: false,
            last_output: now,
            output_bytes: 0,
            timed_out: false,
            saw_content: false,
        });
        s.last_turn_agent_error = false;
        s.last_active = now;
        self.trace_turn_begin(skey, _metadata.as_ref());
        self.emit_state(skey, SessionState::Running, None);
        if let Some(s) = self.session(skey) {
            let input = serde_json::json!({"content": content, "metadata": _metadata}).to_string();
            let op = WriteOp::TurnStart {
                session: s.id_str.clone(),
                turn: n,
                start_seq: s.seq,
                started_at: now_ms(),
                input,
            };
            self.store_op(skey, op);
        }
        self.with_adapter(skey, |a, out| a.on_input(&content, out));
        if self.session(skey).is_some_and(|s| s.adapter.process_model() == crate::adapters::ProcessModel::PerTurn) {
            self.spawn_turn_process(skey);
        }
        let w = &self.s.worker;
        if let Some(t) = w.turn_timeout {
            self.timers.after(t, Owner::Session(skey.into()), TimerKind::Turn(n));
        }
        if let Some(t) = w.stall_timeout {
            self.timers.after(t, Owner::Session(skey.into()), TimerKind::Stall);
        }
    }

    /// Close the running turn: `done` then `state{idle}`.
    pub fn end_turn(&mut self, skey: Key, success: bool, mut stats: Stats) {
        let Some(s) = self.session_mut(skey) else { return };
        let Some(turn) = s.turn.take() else { return };
        s.completed_turns += 1;
        crate::metrics::permissions_cancelled(s.worker_type, s.perms.drain(..).map(|p| p.asked));
        stats.tool_calls = Some(turn.tool_calls);
        if stats.duration_ms.is_none() {
            stats.duration_ms = Some(turn.started.elapsed().as_millis() as u64);
        }
        s.last_active = Instant::now();
        super::persist::add_stats(&mut s.totals, &stats);
        let turn_no = turn.n;
        let outcome = crate::metrics::turn_outcome(success, turn.interrupting, turn.timed_out, None);
        crate::metrics::turn_ended(s.worker_type, turn.started, outcome, Some(&stats));
        self.emit(skey, Event::Done { success, stats: Some(stats.clone()) });
        self.trace_turn_end(skey, success, &turn, None);
        self.store_turn_end(skey, turn_no, success, Some(&stats));
        let live = self.session(skey).is_some_and(|s| s.ending.is_none());
        if live {
            self.emit_state(skey, SessionState::Idle, None);
            if self.stopping {
                // draining: the turn is done, the worker can stop now
                self.shutdown_session(skey);
            }
        }
    }

    /// End a running turn from the gateway side: the adapter closes open
    /// messages, then optional error, then `done{success:false}`.
    pub(crate) fn abort_turn(&mut self, skey: Key, error: Option<(ErrorCode, &str, Option<Value>)>) {
        if self.session(skey).is_none_or(|s| s.turn.is_none()) {
            return;
        }
        self.with_adapter(skey, |a, out| a.on_turn_aborted(out));
        let Some(s) = self.session_mut(skey) else { return };
        let Some(turn) = s.turn.take() else { return };
        s.completed_turns += 1;
        let error_code = error.as_ref().map(|e| e.0);
        let outcome = crate::metrics::turn_outcome(false, turn.interrupting, turn.timed_out, error_code);
        crate::metrics::turn_ended(s.worker_type, turn.started, outcome, None);
        if let Some((code, msg, details)) = error {
            self.emit(skey, Event::Error { code, message: msg.to_owned(), event_id: None, details });
        }
        let stats = Stats {
            duration_ms: Some(turn.started.elapsed().as_millis() as u64),
            tool_calls: Some(turn.tool_calls),
            ..Stats::default()
        };
        if let Some(s) = self.session_mut(skey) {
            super::persist::add_stats(&mut s.totals, &stats);
        }
        self.emit(skey, Event::Done { success: false, stats: Some(stats.clone()) });
        self.trace_turn_end(skey, false, &turn, error_code);
        self.store_turn_end(skey, turn.n, false, Some(&stats));
    }

    /// Close the stored `turns` row (its `done` was just emitted).
    pub fn store_turn_end(&mut self, skey: Key, turn: u64, success: bool, stats: Option<&Stats>) {
        let Some(s) = self.session(skey) else { return };
        let op = WriteOp::TurnEnd {
            session: s.id_str.clone(),
            turn,
            end_seq: s.seq,
            ended_at: now_ms(),
            success,
            stats: stats.and_then(|st| serde_json::to_string(st).ok()),
        };
        self.store_op(skey, op);
    }

    fn resume_failed(&mut self, skey: Key, message: String) {
        let details =
            json!({"worker_type": self.session(skey).map(|s| s.worker_type.as_str()), "subtype": "resume_failed"});
        let running = self.session(skey).is_some_and(|s| s.turn.is_some());
        // Refused during the startup handshake (ACP session/resume|load):
        // the waiting inits never get an init_ack for a session with no
        // agent behind it; they fail like a start failure, with the subtype.
        let starting = self.session(skey).is_some_and(|s| s.awaiting_ready);
        if running {
            self.abort_turn(skey, Some((ErrorCode::AgentError, &message, Some(details.clone()))));
        } else {
            let ev =
                Event::Error { code: ErrorCode::AgentError, message, event_id: None, details: Some(details.clone()) };
            self.emit(skey, ev);
        }
        if let Some(s) = self.session_mut(skey) {
            // The agent lost this conversation: the next resume starts a fresh one.
            s.agent_session_id = None;
            s.completed_turns = 0;
            // No turn is open during a handshake: nothing to mark for the next one.
            s.last_turn_agent_error = !starting;
            // The handshake is over; the exit then completes a termination
            // (state{terminated}, the cleared id persisted) instead of a start failure.
            s.awaiting_ready = false;
        }
        if starting {
            let waiters = self.session_mut(skey).map(|s| std::mem::take(&mut s.waiters)).unwrap_or_default();
            for w in waiters {
                let code = ErrorCode::WorkerStartFailed;
                crate::metrics::init_failed(code);
                self.send_error(w.client, code, "worker failed to start", w.frame_id, Some(details.clone()));
                self.close_client(w.client, code.init_close_code(), "init failed", false);
            }
        }
        // Reported from `on_exit` (the agent refused by exiting): the exit
        // path that called the adapter completes the termination itself, as
        // a worker exit whose crash error the AGENT_ERROR above replaces.
        let Some(s) = self.session_mut(skey) else { return };
        if s.worker.is_some() {
            self.begin_termination(skey, TermReason::WorkerExit);
        } else if s.adapter.process_model() == crate::adapters::ProcessModel::PerTurn && s.ending.is_none() {
            // A turn's process refused by exiting: the session is live between
            // turns, so its exit path would only close the turn. Mark the
            // ending; that exit path then completes the termination.
            s.ending = Some(Ending::Terminate(TermReason::WorkerExit));
        }
    }

    // ---- permissions ---------------------------------------------------

    fn permission_asked(&mut self, skey: Key, ask: crate::adapters::PermissionAsk) {
        let max = self.s.worker.max_pending_permissions;
        let timeout = self.s.worker.permission_timeout;
        let denied_tool = self.s.policy.tools_denied.iter().any(|d| crate::policy::covered(&ask.tool_name, d));
        let Some(s) = self.session_mut(skey) else { return };
        if denied_tool || s.ending.is_some() || s.perms.len() >= max || s.perms.iter().any(|p| p.id == ask.id) {
            let id = ask.id.clone();
            let reason = if denied_tool {
                "tool denied by policy"
            } else if s.ending.is_some() {
                "session ending"
            } else {
                "too_many_pending"
            };
            let decision = if denied_tool { "policy_denied" } else { "cancelled" };
            let metric = if denied_tool { Decision::PolicyDenied } else { Decision::Cancelled };
            crate::metrics::permission_decided(s.worker_type, metric, None);
            let (sid, owner) = (s.id_str.clone(), s.owner.clone());
            self.audit_permission(&sid, &owner, &ask.tool_name, decision, None);
            let reply = PermissionReply { id, allow: false, reason: Some(reason.into()), remember: false };
            if denied_tool {
                self.trace_permission(skey, "policy_denied");
            }
            return self.with_adapter(skey, |a, out| a.on_permission(&reply, out));
        }
        crate::metrics::permission_requested(s.worker_type);
        s.perm_serial += 1;
        let serial = s.perm_serial;
        let expires = Instant::now() + timeout;
        let asked = Instant::now();
        s.perms.push(PendingPermission {
            id: ask.id.clone(),
            serial,
            tool_name: ask.tool_name.clone(),
            expires,
            asked,
        });
        self.timers.at(expires, Owner::Session(skey.into()), TimerKind::Permission(serial));
        let expires_at = now_ms() + timeout.as_millis() as u64;
        self.emit(
            skey,
            Event::PermissionRequest {
                id: ask.id,
                tool_name: ask.tool_name,
                description: ask.description,
                input: ask.input,
                args: ask.args,
                options: ask.options,
                expires_at: Some(expires_at),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub fn on_permission_response(
        &mut self,
        skey: Key,
        client: Key,
        frame_id: Option<String>,
        id: String,
        allowed: bool,
        reason: Option<String>,
        remember: bool,
    ) {
        let Some(s) = self.session_mut(skey) else { return };
        let Some(pos) = s.perms.iter().position(|p| p.id == id) else {
            return self.send_error(
                client,
                ErrorCode::InvalidMessage,
                "unknown or already answered permission id",
                frame_id,
                None,
            );
        };
        let p = s.perms.remove(pos);
        let decision = if allowed { Decision::Allowed } else { Decision::Denied };
        crate::metrics::permission_decided(s.worker_type, decision, Some(p.asked));
        s.last_active = Instant::now();
        // The stall clock was paused while the agent waited for this answer.
        if let Some(t) = s.turn.as_mut() {
            t.last_output = Instant::now();
        }
        let (sid, owner) = (s.id_str.clone(), s.owner.clone());
        self.audit_permission(&sid, &owner, &p.tool_name, if allowed { "allowed" } else { "denied" }, Some(client));
        let remember = remember && allowed && self.s.policy.may_remember(&p.tool_name);
        let reply = PermissionReply { id, allow: allowed, reason, remember };
        self.trace_permission(skey, if allowed { "allowed" } else { "denied" });
        self.with_adapter(skey, |a, out| a.on_permission(&reply, out));
    }

    /// Deny every pending request (interrupt, terminate, reset, delete).
    pub(crate) fn deny_all_pending(&mut self, skey: Key, reason: &str) {
        let Some(s) = self.session_mut(skey) else { return };
        crate::metrics::permissions_cancelled(s.worker_type, s.perms.iter().map(|p| p.asked));
        let pending: Vec<String> = s.perms.drain(..).map(|p| p.id).collect();
        for id in pending {
            let reply = PermissionReply { id, allow: false, reason: Some(reason.to_owned()), remember: false };
            self.trace_permission(skey, "cancelled");
            self.with_adapter(skey, |a, out| a.on_permission(&reply, out));
        }
    }

    // ---- control -------------------------------------------------------

    pub fn on_control(&mut self, skey: Key, client: Key, frame_id: Option<String>, action: ControlAction) {
        let Some(s) = self.session(skey) else { return };
        let (state, ending, running) = (s.state, s.ending, s.turn.is_some());
        match action {
            ControlAction::Interrupt => {
                if running && ending.is_none() {
                    self.interrupt(skey);
                }
            }
            ControlAction::Terminate | ControlAction::Gc => {
                let gc = action == ControlAction::Gc;
                if state == SessionState::Terminated || ending.is_some() {
                    if let Some(Ending::Terminate(_)) = ending {
                        // Answered once the worker is reaped, after the session's own
                        // state{terminated}; repeats of one connection share one answer.
                        if let Some(s) = self.session_mut(skey) {
                            if !s.term_replies.contains(&(client, gc)) {
                                s.term_replies.push((client, gc));
                            }
                        }
                        return;
                    }
                    if ending.is_none() {
                        let msg = if gc { Some("session_archived") } else { None };
                        return self.send_local(client, &Event::state(SessionState::Terminated, msg));
                    }
                    return self.send_error(
                        client,
                        ErrorCode::SessionBusy,
                        "the session is changing state",
                        frame_id,
                        None,
                    );
                }
                if state == SessionState::Created {
                    return self.send_error(client, ErrorCode::SessionBusy, "the session is starting", frame_id, None);
                }
                self.deny_all_pending(skey, "session terminated");
                if running {
                    self.abort_turn(skey, Some((ErrorCode::SessionTerminated, "turn ended by terminate", None)));
                }
                self.begin_termination(skey, if gc { TermReason::ClientGc } else { TermReason::ClientTerminate });
            }
            ControlAction::Reset => {
                if ending.is_some() || state == SessionState::Created {
                    return self.send_error(
                        client,
                        ErrorCode::SessionBusy,
                        "the session is changing state",
                        frame_id,
                        None,
                    );
                }
                self.deny_all_pending(skey, "session reset");
                if running {
                    self.abort_turn(skey, None);
                }
                self.reset(skey);
            }
            ControlAction::Delete => {
                if ending == Some(Ending::Delete) {
                    return;
                }
                crate::metrics::session_deleted(crate::metrics::DeleteSource::Client);
                self.deny_all_pending(skey, "session deleted");
                if running {
                    self.abort_turn(skey, Some((ErrorCode::SessionTerminated, "turn ended by delete", None)));
                }
                self.begin_delete(skey);
            }
            ControlAction::Unknown(_) => {}
        }
    }

    pub fn interrupt(&mut self, skey: Key) {
        let first = self
            .session_mut(skey)
            .and_then(|s| s.turn.as_mut())
            .is_some_and(|t| !std::mem::replace(&mut t.interrupting, true));
        if first {
            self.with_adapter(skey, |a, out| a.on_interrupt(out));
        }
        // Pending requests are denied after the interrupt reached the
        // worker: a deny read first lets the agent carry on and finish the
        // turn normally (claude withdraws its own request on interrupt and
        // ignores the late answer).
        self.deny_all_pending(skey, "interrupted");
    }

    /// Stop the worker; `state{terminated}` follows once its group is reaped.
    pub fn begin_termination(&mut self, skey: Key, reason: TermReason) {
        let Some(s) = self.session_mut(skey) else { return };
        if s.ending.is_some() {
            return;
        }
        s.ending = Some(Ending::Terminate(reason));
        let force = matches!(reason, TermReason::StallTimeout | TermReason::TurnTimeout);
        if s.worker.is_some() {
            self.stop_worker(skey, force);
        } else if !s.spawning {
            self.finish_ending(skey, None);
        }
    }

    pub(crate) fn begin_delete(&mut self, skey: Key) {
        let Some(s) = self.session_mut(skey) else { return };
        s.ending = Some(Ending::Delete);
        if s.worker.is_some() {
            self.stop_worker(skey, false);
        } else if !s.spawning {
            self.finish_ending(skey, None);
        }
    }

    fn reset(&mut self, skey: Key) {
        let Some(s) = self.session_mut(skey) else { return };
        s.agent_session_id = None;
        s.completed_turns = 0;
        s.resume_next = false;
        if s.worker.is_some() {
            s.ending = Some(Ending::Reset);
            self.stop_worker(skey, false);
        } else {
            let owner = s.owner.clone();
            if !s.counted {
                let l = &self.s.sessions;
                if !self.shared.counters.try_add_session(&owner, l.max_total, l.max_per_owner) {
                    let targets = self.session(skey).map(|s| s.attached()).unwrap_or_default();
                    for c in targets {
                        self.send_error(c, ErrorCode::GatewayOverload, "session limit reached", None, None);
                    }
                    return;
                }
                if let Some(s) = self.session_mut(skey) {
                    s.counted = true;
                }
            }
            if let Some(s) = self.session_mut(skey) {
                s.ending = Some(Ending::Reset);
            }
            self.spawn_worker(skey);
        }
    }

    /// The worker is gone (or there was none): complete the pending ending.
    /// `crash` carries the error of an unexpected exit.
    pub fn finish_ending(&mut self, skey: Key, crash: Option<(ErrorCode, Value)>) {
        let Some(s) = self.session_mut(skey) else { return };
        let ending = s.ending.take();
        match ending {
            Some(Ending::Reset) => {
                if let Some(s) = self.session_mut(skey) {
                    s.ending = Some(Ending::Reset);
                }
                self.spawn_worker(skey);
            }
            Some(Ending::Delete) => self.complete_delete(skey),
            Some(Ending::Terminate(reason)) => self.complete_termination(skey, reason, None),
            None => self.complete_termination(skey, TermReason::WorkerExit, crash),
        }
    }

    fn complete_termination(&mut self, skey: Key, reason: TermReason, crash: Option<(ErrorCode, Value)>) {
        let Some(s) = self.session(skey) else { return };
        let running = s.turn.is_some();
        let agent_error_before = s.last_turn_agent_error;
        let crash_code = crash.as_ref().map(|c| c.0);
        if let Some((code, details)) = crash {
            if running {
                self.abort_turn(skey, Some((code, "the worker exited unexpectedly", Some(details))));
            } else if !agent_error_before {
                self.emit(
                    skey,
                    Event::Error {
                        code,
                        message: "the worker exited unexpectedly".into(),
                        event_id: None,
                        details: Some(details),
                    },
                );
            }
        } else if running {
            let code = match reason {
                TermReason::Shutdown => ErrorCode::ProcessSigterm,
                TermReason::MaxLifetime => ErrorCode::SessionExpired,
                TermReason::StallTimeout => ErrorCode::ExecutionTimeout,
                _ => ErrorCode::SessionTerminated,
            };
            let details = (reason == TermReason::AdminTerminate).then(|| json!({"by": "admin"}));
            self.abort_turn(skey, Some((code, "turn ended: session terminated", details)));
        }
        if let Some(s) = self.session_mut(skey) {
            crate::metrics::permissions_cancelled(s.worker_type, s.perms.drain(..).map(|p| p.asked));
            if s.counted {
                s.counted = false;
                let owner = s.owner.clone();
                self.shared.counters.remove_session(&owner);
            }
        }
        let msg = reason.as_str();
        if let Some(s) = self.session_mut(skey) {
            s.terminated_at = Some(Instant::now());
            crate::metrics::session_terminated(s.worker_type, msg);
        }
        self.emit_state(skey, SessionState::Terminated, Some(msg));
        if reason == TermReason::AdminTerminate {
            // operations.md §2.1: attached connections stay open and may resume
            self.emit(skey, Event::session_invalid("admin_killed", true));
        }
        self.trace_session_end(skey, msg, crash_code);
        let replies = self.session_mut(skey).map(|s| std::mem::take(&mut s.term_replies)).unwrap_or_default();
        for (client, gc) in replies {
            let msg = if gc { Some("session_archived") } else { None };
            self.send_local(client, &Event::state(SessionState::Terminated, msg));
        }
        log::info!(
            "session terminated session_id={} reason={msg}",
            self.session(skey).map(|s| &*s.id_str).unwrap_or("")
        );
        if self.stopping {
            return self.release(skey);
        }
        // Someone tried to init during the termination: resume now.
        let resume = self.session(skey).is_some_and(|s| !s.waiters.is_empty());
        if resume {
            let l = &self.s.sessions;
            let owner = self.session(skey).map(|s| s.owner.clone());
            if let Some(owner) = owner {
                if self.shared.counters.try_add_session(&owner, l.max_total, l.max_per_owner) {
                    if let Some(s) = self.session_mut(skey) {
                        s.counted = true;
                        s.resume_next = s.completed_turns > 0 && s.agent_session_id.is_some();
                    }
                    self.spawn_worker(skey);
                } else {
                    self.fail_waiters(skey, ErrorCode::GatewayOverload, "session limit reached");
                }
            }
        }
    }

    /// Announce the delete and drop the log; connections close once
    /// `state{deleted}` went out (`finish_delete`, after its commit).
    fn complete_delete(&mut self, skey: Key) {
        self.emit_state(skey, SessionState::Deleted, None);
        if self.session(skey).is_some_and(|s| s.admin_delete) {
            // operations.md §4.2: an admin delete also invalidates and closes 1008
            self.emit(skey, Event::session_invalid("admin_killed", false));
            self.emit(skey, Event::error(ErrorCode::SessionInvalidated, "session deleted by an administrator"));
            for c in self.session(skey).map(|s| s.attached()).unwrap_or_default() {
                self.close_client(c, close::POLICY, "session deleted", false);
            }
        }
        self.trace_session_end(skey, "deleted", None);
        if let Some(s) = self.session(skey) {
            let op = WriteOp::Delete { session: s.id_str.clone(), at: now_ms() };
            self.store_op(skey, op);
        }
        if let Some(s) = self.session_mut(skey) {
            if s.counted {
                s.counted = false;
                let owner = s.owner.clone();
                self.shared.counters.remove_session(&owner);
            }
        }
    }

    /// `state{deleted}` is out: close every connection 1000, forget the session.
    pub fn finish_delete(&mut self, skey: Key) {
        let targets = self.session(skey).map(|s| s.attached()).unwrap_or_default();
        for c in targets {
            self.close_client(c, close::NORMAL, "session deleted", false);
        }
        self.fail_waiters(skey, ErrorCode::SessionNotFound, "session not found");
        if let Some((id, id_str)) = self.session(skey).map(|s| (s.id, s.id_str.clone())) {
            self.tombstones.insert(id, Instant::now());
            log::info!("session deleted session_id={id_str}");
        }
        self.forget_session(skey);
    }

    /// Drop a session from memory (after delete, or at shutdown).
    pub fn forget_session(&mut self, skey: Key) {
        if self.session(skey).is_none() {
            return;
        }
        self.http_forget_session(skey);
        let s = self.sessions.remove(skey.idx);
        self.by_id.remove(&s.id);
        if s.persist.committed == 0 {
            // never reached the store (or only now will): the store decides from here
            self.shared.creates_in_flight.release(&s.owner, &s.id_str);
        }
        if s.counted {
            self.shared.counters.remove_session(&s.owner);
        }
        for c in s.attached() {
            self.close_client(c, close::GOING_AWAY, "session closed", false);
        }
    }

    /// Fail every waiting `init` of a session.
    pub fn fail_waiters(&mut self, skey: Key, code: ErrorCode, message: &str) {
        let Some(s) = self.session_mut(skey) else { return };
        let waiters = std::mem::take(&mut s.waiters);
        for w in waiters {
            self.fail_init(w.client, code, message, w.frame_id);
        }
    }

    /// Gateway shutdown: end the turn, stop the worker.
    pub fn shutdown_session(&mut self, skey: Key) {
        self.fail_waiters(skey, ErrorCode::ReconnectRequired, "server shutting down");
        let Some(s) = self.session(skey) else { return };
        if s.ending.is_some() && (s.worker.is_some() || s.spawning) {
            return; // already stopping; completes through the exit path
        }
        if !s.state.is_live() || (s.worker.is_none() && !s.spawning && s.work_dir.is_none()) {
            // nothing runs: leave memory once the log has what is pending
            if s.persist.pending.is_empty() {
                return self.forget_session(skey);
            }
            return;
        }
        self.deny_all_pending(skey, "server shutting down");
        if let Some(s) = self.session_mut(skey) {
            s.ending = None;
        }
        self.begin_termination(skey, TermReason::Shutdown);
    }

    // ---- timers and GC ------------------------------------------------

    pub fn on_session_timer(&mut self, skey: Key, kind: TimerKind) {
        let Some(s) = self.session(skey) else { return };
        let now = Instant::now();
        match kind {
            TimerKind::Turn(n) if s.turn.as_ref().is_some_and(|t| t.n == n) && s.ending.is_none() => {
                if let Some(t) = self.session_mut(skey).and_then(|s| s.turn.as_mut()) {
                    t.timed_out = true;
                }
                self.emit(skey, Event::error(ErrorCode::WorkerTimeout, "the turn exceeded worker.turn_timeout"));
                self.interrupt(skey);
                self.timers.after(self.s.worker.kill_grace, Owner::Session(skey.into()), TimerKind::TurnKill(n));
            }
            TimerKind::TurnClose(n) if s.turn.as_ref().is_some_and(|t| t.n == n) && s.ending.is_none() => {
                self.abort_turn(skey, None);
                self.emit_state(skey, SessionState::Idle, None);
            }
            TimerKind::TurnKill(n) if s.turn.as_ref().is_some_and(|t| t.n == n) && s.ending.is_none() => {
                self.abort_turn(skey, None);
                self.begin_termination(skey, TermReason::TurnTimeout);
            }
            TimerKind::Stall => {
                let Some(stall) = self.s.worker.stall_timeout else { return };
                let Some(t) = s.turn.as_ref() else { return };
                if s.ending.is_some() {
                    return;
                }
                if !s.perms.is_empty() {
                    // paused while a permission request is pending
                    self.timers.after(stall, Owner::Session(skey.into()), TimerKind::Stall);
                    return;
                }
                let due = t.last_output + stall;
                if due > now {
                    self.timers.at(due, Owner::Session(skey.into()), TimerKind::Stall);
                    return;
                }
                self.abort_turn(
                    skey,
                    Some((ErrorCode::ExecutionTimeout, "the worker was silent beyond worker.stall_timeout", None)),
                );
                self.begin_termination(skey, TermReason::StallTimeout);
            }
            TimerKind::Permission(serial) => {
                let Some(pos) = s.perms.iter().position(|p| p.serial == serial) else { return };
                if s.perms[pos].expires > now + Duration::from_millis(5) {
                    return;
                }
                let Some(s) = self.session_mut(skey) else { return };
                let p = s.perms.remove(pos);
                crate::metrics::permission_decided(s.worker_type, Decision::Timeout, Some(p.asked));
                if let Some(t) = s.turn.as_mut() {
                    t.last_output = Instant::now();
                }
                let (sid, owner) = (s.id_str.clone(), s.owner.clone());
                self.audit_permission(&sid, &owner, &p.tool_name, "timeout", None);
                let reply = PermissionReply { id: p.id, allow: false, reason: Some("timeout".into()), remember: false };
                self.trace_permission(skey, "timeout");
                self.with_adapter(skey, |a, out| a.on_permission(&reply, out));
            }
            TimerKind::Adapter(id) => self.with_adapter(skey, |a, out| a.on_timer(id, out)),
            TimerKind::StartTimeout(worker_gen) => self.start_timed_out(skey, worker_gen),
            TimerKind::SpawnSlot => self.on_spawn_slot(skey),
            _ => {}
        }
    }

    /// Idle and lifetime rules for this reactor's live sessions (operations.md §2.2).
    pub fn gc_sweep(&mut self) {
        let now = Instant::now();
        let limits = self.s.sessions.clone();
        let mut idle = Vec::new();
        let mut expired = Vec::new();
        for (i, s) in self.sessions.iter() {
            if !s.state.is_live() || s.ending.is_some() || s.spawning {
                continue;
            }
            if let Some(max) = limits.max_lifetime {
                if now.duration_since(s.live_since) >= max {
                    expired.push(s.key(i));
                    continue;
                }
            }
            if let (Some(t), Some(since)) = (limits.idle_timeout, s.detached_since) {
                let last = since.max(s.last_active);
                if s.turn.is_none() && !s.has_connections() && now.duration_since(last) >= t {
                    idle.push(s.key(i));
                }
            }
        }
        for k in expired {
            self.deny_all_pending(k, "session expired");
            self.begin_termination(k, TermReason::MaxLifetime);
        }
        for k in idle {
            self.begin_termination(k, TermReason::IdleTimeout);
        }
        // Terminated sessions without connections leave memory at the first
        // sweep at least one `gc_interval` after termination (the store has
        // them; a later init loads them back); old tombstones are forgotten.
        let purge: Vec<Key> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.state == SessionState::Terminated
                    && s.ending.is_none()
                    && !s.spawning
                    && !s.has_connections()
                    && s.waiters.is_empty()
                    && s.persist.pending.is_empty()
                    && !s.persist.blocked()
                    && s.terminated_at.is_some_and(|t| now.duration_since(t) >= limits.gc_interval)
            })
            .map(|(i, s)| s.key(i))
            .collect();
        for k in purge {
            if let Some(s) = self.session(k) {
                log::debug!("session evicted from memory session_id={}", s.id_str);
            }
            self.forget_session(k);
        }
        self.tombstones.retain(|_, at| now.duration_since(*at) < limits.tombstone_retention);
    }
}
