//! Session spans (operations.md §6.2): `hotplex.session.attach`,
//! `hotplex.worker.spawn`, `hotplex.turn` (with its span events) and
//! `hotplex.session.end`. [`SessionTrace`] is the per-session state (kept in
//! `Session`); the `trace_*` methods on the reactor are the one-line hooks
//! the session code calls at the real places. Every hook returns at once
//! when tracing is off. Attributes carry ids, hashes, counts and codes only:
//! never prompts, outputs, tool input, credentials or the raw owner.

use std::time::Instant;

use serde_json::Value as Json;

use super::span::{KeyValue, Value, now_ns};
use super::{Kind, Parent, Span, SpanContext};
use crate::protocol::{ErrorCode, Event, InitRequest, Mode};
use crate::reactor::Reactor;
use crate::reactor::token::Key;
use crate::session::Turn;

/// Longest tool name recorded in a span event.
const MAX_TOOL_NAME: usize = 128;

/// Tracing state of one session.
#[derive(Debug, Default)]
pub struct SessionTrace {
    /// The session's latest recorded attach span: turn roots and
    /// `session.end` link to it, spawns without a waiting init hang under it.
    pub attach: Option<SpanContext>,
    /// The running turn's span.
    pub turn: Span,
    /// The worker start in flight.
    pub spawn: Span,
    spawn_started: Option<Instant>,
    first_content: bool,
    /// Last aep error code emitted during the running turn.
    turn_error: Option<ErrorCode>,
    /// When the gateway asked the worker to stop (wall clock ns, monotonic).
    stop_requested: Option<(u64, Instant)>,
    kill_ms: Option<u64>,
    exit_class: Option<&'static str>,
}

/// Worker exit class (the `class` vocabulary of `hotplex_worker_exits_total`).
pub fn exit_class(code: Option<i32>, signal: Option<i32>, by_gateway: bool) -> &'static str {
    let sig = signal.or_else(|| code.filter(|c| *c > 128 && *c < 128 + 65).map(|c| c - 128));
    match (sig, code) {
        (None, Some(0)) => "exit_0",
        (None, _) => "exit_nonzero",
        (Some(_), _) if by_gateway => "signal_gateway",
        (Some(s), _) if s == libc::SIGKILL => "signal_oom",
        (Some(s), _)
            if [
                libc::SIGSEGV,
                libc::SIGABRT,
                libc::SIGBUS,
                libc::SIGILL,
                libc::SIGFPE,
                libc::SIGTRAP,
                libc::SIGSYS,
            ]
            .contains(&s) =>
        {
            "signal_crash"
        }
        _ => "signal_other",
    }
}

fn str_attr(key: &'static str, v: &str) -> KeyValue {
    let mut end = v.len().min(MAX_TOOL_NAME);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    KeyValue { key, value: Value::Str(v[..end].into()) }
}

/// Record a session event on the running turn's span (called from `emit`
/// for every event that gets a seq; one branch when nothing records).
pub fn on_event(t: &mut SessionTrace, ev: &Event) {
    if !t.turn.is_recording() {
        return;
    }
    let content = matches!(
        ev,
        Event::MessageDelta { .. } | Event::Message { .. } | Event::Reasoning { .. } | Event::ToolCall { .. }
    );
    if content && !std::mem::replace(&mut t.first_content, true) {
        t.turn.event("first_delta", Vec::new);
    }
    match ev {
        Event::ToolCall { name, .. } => t.turn.event("tool_call", || vec![str_attr("hotplex.tool_name", name)]),
        Event::PermissionRequest { tool_name, .. } => {
            t.turn.event("permission_request", || vec![str_attr("hotplex.tool_name", tool_name)])
        }
        Event::Error { code, .. } => t.turn_error = Some(*code),
        Event::Done { stats: Some(st), .. } => {
            let s = &mut t.turn;
            if let Some(v) = st.input_tokens {
                s.set_u64("hotplex.tokens.input", v);
            }
            if let Some(v) = st.output_tokens {
                s.set_u64("hotplex.tokens.output", v);
            }
            if let Some(v) = st.cost_usd {
                s.set_f64("hotplex.cost_usd", v);
            }
            if let Some(v) = st.tool_calls {
                s.set_u64("hotplex.tool_calls", v);
            }
        }
        _ => {}
    }
}

/// The outcome label of an ended turn (the `outcome` vocabulary of `hotplex_turns_total`).
pub fn turn_outcome(success: bool, turn: &Turn, error: Option<ErrorCode>) -> &'static str {
    use ErrorCode as E;
    match error {
        _ if success => "success",
        _ if turn.timed_out => "timeout",
        Some(E::WorkerTimeout | E::ExecutionTimeout) => "timeout",
        Some(E::SessionTerminated | E::ProcessSigterm | E::ProcessSigkill | E::SessionExpired) => "terminated",
        Some(E::WorkerCrash | E::WorkerOom) => "terminated",
        _ if turn.interrupting => "interrupted",
        _ => "error",
    }
}

impl Reactor {
    /// An `init` was read: open its `hotplex.session.attach` span on the
    /// connection (child of `init.data.trace_parent` when valid).
    pub fn trace_init_begin(&mut self, key: Key, req: &InitRequest) {
        if super::tracer().is_none() {
            return;
        }
        let span = super::start_remote(
            "hotplex.session.attach",
            Kind::Server,
            req.trace_parent.as_deref(),
            req.trace_state.as_deref(),
        );
        if let Some(c) = self.client_mut(key) {
            c.attach_span = span;
        }
    }

    /// The init failed with `code` (the error frame is out).
    pub fn trace_init_failed(&mut self, key: Key, code: ErrorCode) {
        let Some(c) = self.client_mut(key) else { return };
        let mut span = std::mem::take(&mut c.attach_span);
        if !span.is_recording() {
            return;
        }
        if let Some(p) = c.principal.as_ref() {
            span.set_str("hotplex.owner_hash", &crate::session::identity::owner_hash(&p.owner));
        }
        span.set_static("hotplex.outcome", code.as_str());
        span.error(code.as_str());
        span.end();
    }

    /// The init succeeded (`init_ack` queued, `replayed` events follow).
    pub fn trace_attached(&mut self, key: Key, skey: Key, resumed: bool, replayed: u64, mode: Mode) {
        let Some(c) = self.client_mut(key) else { return };
        let mut span = std::mem::take(&mut c.attach_span);
        let Some(s) = self.session_mut(skey) else { return };
        if span.is_recording() {
            span.set_str("hotplex.session_id", &s.id_str);
            span.set_static("hotplex.worker_type", s.worker_type.as_str());
            span.set_str("hotplex.owner_hash", &s.owner_hash);
            span.set_bool("hotplex.resumed", resumed);
            span.set_u64("hotplex.replayed_events", replayed);
            span.set_static("hotplex.mode", if mode == Mode::Drive { "drive" } else { "observe" });
            span.set_static("hotplex.outcome", "ok");
            if mode == Mode::Drive || s.trace.attach.is_none() {
                s.trace.attach = span.context().cloned();
            }
        }
        log::debug!(
            "session attached session_id={} worker_type={} owner_hash={} mode={} resumed={resumed} replayed_events={replayed}{}",
            s.id_str,
            s.worker_type.as_str(),
            s.owner_hash,
            if mode == Mode::Drive { "drive" } else { "observe" },
            span.log_ids()
        );
        span.end();
    }

    /// A worker process is being started: open `hotplex.worker.spawn` under
    /// the running turn (per-turn agents), else the init waiting for this
    /// worker, else the session's attach span.
    pub fn trace_spawn_begin(&mut self, skey: Key) {
        if super::tracer().is_none() {
            return;
        }
        let Some(s) = self.session(skey) else { return };
        let parent = if s.turn.is_some() {
            s.trace.turn.context().cloned()
        } else {
            let waiting = s.waiters.first().map(|w| w.client);
            waiting
                .and_then(|k| self.client(k))
                .and_then(|c| c.attach_span.context().cloned())
                .or_else(|| s.trace.attach.clone())
        };
        let Some(parent) = parent else { return };
        let mut span = super::start("hotplex.worker.spawn", Kind::Internal, Parent::Of(&parent));
        let Some(s) = self.session_mut(skey) else { return };
        span.set_static("hotplex.worker_type", s.worker_type.as_str());
        s.trace.spawn = span;
        s.trace.spawn_started = Some(Instant::now());
        s.trace.stop_requested = None;
        s.trace.kill_ms = None;
        s.trace.exit_class = None;
    }

    /// The spawner started the process. A per-turn process is ready at once.
    pub fn trace_spawned(&mut self, skey: Key, pid: i32, per_turn: bool) {
        let program = self.session(skey).and_then(|s| self.s.worker(s.worker_type)).map(|w| w.program.clone());
        let Some(s) = self.session_mut(skey) else { return };
        if !s.trace.spawn.is_recording() {
            return;
        }
        s.trace.spawn.set_int("process.pid", pid as i64);
        if let Some(name) = program.as_ref().and_then(|p| p.file_name()) {
            s.trace.spawn.set_str("process.executable.name", &name.to_string_lossy());
        }
        if per_turn {
            self.trace_spawn_end(skey, None);
        }
    }

    /// The worker is ready (handshake done) or could not start (`failed`).
    pub fn trace_spawn_end(&mut self, skey: Key, failed: Option<ErrorCode>) {
        let Some(s) = self.session_mut(skey) else { return };
        let mut span = std::mem::take(&mut s.trace.spawn);
        if !span.is_recording() {
            return;
        }
        if let Some(t) = s.trace.spawn_started.take() {
            span.set_u64("hotplex.ready_ms", t.elapsed().as_millis() as u64);
        }
        match failed {
            Some(code) => {
                span.set_static("hotplex.outcome", code.as_str());
                span.error(code.as_str());
            }
            None => span.set_static("hotplex.outcome", "ok"),
        }
        span.end();
    }

    /// A turn was accepted: open `hotplex.turn` (child of
    /// `input.data.metadata.trace_parent` when valid, else a new root linked
    /// to the session's attach span).
    pub fn trace_turn_begin(&mut self, skey: Key, metadata: Option<&Json>) {
        let Some(s) = self.session_mut(skey) else { return };
        let n = s.turn.as_ref().map(|t| t.n).unwrap_or(0);
        if super::tracer().is_some() {
            let field = |k: &str| metadata.and_then(|m| m.get(k)).and_then(Json::as_str);
            let parent = field("trace_parent").map(|tp| SpanContext::from_traceparent(tp, field("trace_state")));
            let mut span = match &parent {
                Some(Ok(p)) => super::start("hotplex.turn", Kind::Server, Parent::Of(p)),
                _ => {
                    if let Some(Err(e)) = &parent {
                        log::debug!("ignoring an invalid input trace_parent: {}", e.as_str());
                    }
                    let mut root = super::start("hotplex.turn", Kind::Server, Parent::Root);
                    root.link(s.trace.attach.as_ref());
                    root
                }
            };
            span.set_str("hotplex.session_id", &s.id_str);
            span.set_static("hotplex.worker_type", s.worker_type.as_str());
            span.set_u64("hotplex.turn", n);
            s.trace.turn = span;
            s.trace.first_content = false;
            s.trace.turn_error = None;
        }
        log::debug!("turn started session_id={} turn={n}{}", s.id_str, s.trace.turn.log_ids());
    }

    /// The turn's `done` was emitted.
    pub fn trace_turn_end(&mut self, skey: Key, success: bool, turn: &Turn, error: Option<ErrorCode>) {
        let Some(s) = self.session_mut(skey) else { return };
        let mut span = std::mem::take(&mut s.trace.turn);
        let error = error.or(s.trace.turn_error.take());
        let outcome = turn_outcome(success, turn, error);
        log::debug!("turn ended session_id={} turn={} outcome={outcome}{}", s.id_str, turn.n, span.log_ids());
        if !span.is_recording() {
            return;
        }
        span.set_static("hotplex.outcome", outcome);
        if !span.has_attr("hotplex.tool_calls") {
            span.set_u64("hotplex.tool_calls", turn.tool_calls);
        }
        if !matches!(outcome, "success" | "interrupted") {
            span.error(error.map(ErrorCode::as_str).unwrap_or(match outcome {
                "timeout" => ErrorCode::WorkerTimeout.as_str(),
                _ => ErrorCode::AgentError.as_str(),
            }));
        }
        span.end();
    }

    /// A permission request was answered (`allowed`, `denied`, `timeout`,
    /// `policy_denied`, `cancelled`).
    pub fn trace_permission(&mut self, skey: Key, decision: &'static str) {
        if let Some(s) = self.session_mut(skey) {
            s.trace.turn.event("permission_decision", || {
                vec![KeyValue { key: "hotplex.decision", value: Value::Static(decision) }]
            });
        }
    }

    /// The gateway asked the worker to stop (first request counts).
    pub fn trace_stop_requested(&mut self, skey: Key) {
        if super::tracer().is_none() {
            return;
        }
        if let Some(s) = self.session_mut(skey) {
            s.trace.stop_requested.get_or_insert_with(|| (now_ns(), Instant::now()));
        }
    }

    /// The worker exited.
    pub fn trace_exited(&mut self, skey: Key, code: Option<i32>, signal: Option<i32>, by_gateway: bool) {
        if super::tracer().is_none() {
            return;
        }
        if let Some(s) = self.session_mut(skey) {
            s.trace.exit_class = Some(exit_class(code, signal, by_gateway));
            s.trace.kill_ms = s.trace.stop_requested.map(|(_, at)| at.elapsed().as_millis() as u64);
        }
    }

    /// The session ended (`state{terminated}` or `state{deleted}` emitted):
    /// `hotplex.session.end`, a root linked to the attach span.
    pub fn trace_session_end(&mut self, skey: Key, reason: &str, crash: Option<ErrorCode>) {
        if super::tracer().is_none() {
            return;
        }
        let Some(s) = self.session_mut(skey) else { return };
        let mut span = super::start("hotplex.session.end", Kind::Internal, Parent::Root);
        let stop = s.trace.stop_requested.take();
        if let Some((ns, _)) = stop {
            span.started_at(ns);
        }
        span.link(s.trace.attach.as_ref());
        span.set_str("hotplex.session_id", &s.id_str);
        span.set_str("hotplex.reason", reason);
        if let Some(ms) = s.trace.kill_ms.take() {
            span.set_u64("hotplex.kill_ms", ms);
        }
        if let Some(class) = s.trace.exit_class.take() {
            span.set_static("hotplex.exit_class", class);
        }
        if let Some(code) = crash {
            span.error(code.as_str());
        }
        span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_classes() {
        assert_eq!(exit_class(Some(0), None, false), "exit_0");
        assert_eq!(exit_class(Some(3), None, false), "exit_nonzero");
        assert_eq!(exit_class(None, Some(libc::SIGTERM), true), "signal_gateway");
        assert_eq!(exit_class(None, Some(libc::SIGKILL), false), "signal_oom");
        assert_eq!(exit_class(Some(137), None, false), "signal_oom");
        assert_eq!(exit_class(None, Some(libc::SIGSEGV), false), "signal_crash");
        assert_eq!(exit_class(None, Some(libc::SIGUSR1), false), "signal_other");
    }

    fn turn() -> Turn {
        let now = Instant::now();
        Turn {
            n: 1,
            started: now,
            tool_calls: 0,
            interrupting: false,
            last_output: now,
            output_bytes: 0,
            timed_out: false,
            saw_content: false,
        }
    }

    #[test]
    fn outcomes() {
        let t = turn();
        assert_eq!(turn_outcome(true, &t, None), "success");
        assert_eq!(turn_outcome(false, &t, None), "error");
        assert_eq!(turn_outcome(false, &t, Some(ErrorCode::AgentError)), "error");
        assert_eq!(turn_outcome(false, &t, Some(ErrorCode::ExecutionTimeout)), "timeout");
        assert_eq!(turn_outcome(false, &t, Some(ErrorCode::WorkerCrash)), "terminated");
        let interrupted = Turn { interrupting: true, ..turn() };
        assert_eq!(turn_outcome(false, &interrupted, None), "interrupted");
        let timed_out = Turn { timed_out: true, interrupting: true, ..turn() };
        assert_eq!(turn_outcome(false, &timed_out, None), "timeout");
    }
}
