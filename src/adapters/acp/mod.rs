//! `acpx`: an Agent Client Protocol agent (`claude-code-acp`, `opencode
//! acp`, …) spoken to directly over JSON-RPC 2.0 on its stdio, one
//! persistent process per live session (workers.md §5; the `acpx` CLI is
//! not in the data path, §5.1).
//!
//! Owns the per-process protocol state: our request ids and what each is
//! waiting for, the startup handshake, the agent session id, the running
//! turn (its `session/prompt` id, cancel flag, usage), the agent's pending
//! permission requests, the tool-call table ([`tools`]) and the text /
//! thought runs ([`stream`]). Sans-IO: lines and client decisions in,
//! [`Action`]s out. It must not decide policy (the session validated every
//! value it receives), count tool calls (the session does) or touch a
//! descriptor. [`wire`] mirrors the JSON, [`translate`] holds the pure
//! mappings.
//!
//! Handshake (`needs_ready`): `initialize` (no `fs`/`terminal` client
//! capabilities, `clientInfo` hotplex) → `session/new {cwd, mcpServers:[]}`,
//! or for a resume `session/resume` when the agent advertises
//! `sessionCapabilities.resume`, else `session/load` (the history it
//! replays as `session/update` before its response is swallowed) →
//! `session/set_model` when `init.config.model` is set → [`Action::Ready`]
//! (after [`Action::AgentSessionId`]). A failed `initialize`,
//! `session/new` or `session/set_model` stops the agent
//! ([`Action::Kill`]): the waiting `init` gets `WORKER_START_FAILED`.
//!
//! Resume failure (decision, operations.md §2.1 row "resume refused by the
//! agent"): a `session/resume` / `session/load` error (claude-code-acp:
//! `-32603 … "Session not found"`), or an agent that can do neither, is
//! [`Action::ResumeFailed`] with the agent's text. Unlike claude (whose
//! refusal arrives with the first turn, after `init_ack`), ACP refuses
//! during the startup handshake, while the `init` still waits; the session
//! then logs `error{AGENT_ERROR, details.subtype:"resume_failed"}`, answers
//! the waiting `init` with `error{WORKER_START_FAILED,
//! details:{subtype:"resume_failed"}}` + close (never an `init_ack` for a
//! session that has no agent behind it), stops the agent, announces
//! `state{terminated, "worker_exit"}` and forgets the agent session id, so
//! the client's next `init` starts a fresh agent conversation.
//!
//! Other choices where workers.md §5 is silent:
//! * `tool_call` waits until its input is known (see [`tools`]); the
//!   permission `tool_name` is the Claude tool name, else the ACP kind.
//! * A permission decision selects the option of the wanted kind; a
//!   one-time allow never selects `allow_always`; when no option fits the
//!   answer is `cancelled`. The client's deny reason has no ACP field.
//! * A `session/prompt` answer after our `session/cancel` ends the turn
//!   with `success:false` and no error, unless it says `end_turn` (the
//!   turn finished first).
//! * A denied permission makes claude-code-acp stop the turn; with the
//!   pinned `claude` 2.1.197 behind it (`CLAUDE_CODE_EXECUTABLE`) that stop
//!   comes as a JSON-RPC error (`-32603 "[ede_diagnostic] result_type=user
//!   … stop_reason=tool_use"`, verified), with its bundled 2.1.44 as
//!   `end_turn`. A prompt error after a denial with no agent text since is
//!   therefore the client's own stop: `success:false`, no AGENT_ERROR.
//! * opencode's `usage_update.cost` is cumulative for the agent session
//!   (also across processes): a turn's cost is the difference, unknown
//!   (absent) for the first turn after a resume.

mod stream;
mod tools;
pub mod translate;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use serde_json::Value;

use super::{
    Action, Adapter, Caps, ExitInfo, Launch, LaunchSpec, Out, PermissionAsk, PermissionReply, Started, WorkerType,
};
use crate::protocol::{ErrorCode, Event, Stats};

use stream::Runs;
use tools::Tools;
use translate::TurnUsage;
use wire::{ContentBlock, Kind, Parsed, PermissionOption, PermissionOutcome, RpcError, SessionUpdate, method};

/// At most this many agent permission requests are tracked; a further one
/// is answered `cancelled` at once (the session's own, lower limit —
/// security.md §7.4 — normally answers first).
pub const MAX_PENDING_PERMISSIONS: usize = 64;
/// Non-JSON lines are passed to `raw` cut to this many bytes.
pub const MAX_RAW_TEXT_BYTES: usize = 64 * 1024;
/// Prompt ids of turns the gateway closed itself, whose late answers are dropped.
const MAX_ABANDONED: usize = 16;

/// `kind` values of [`Action::Unmapped`]: a closed set, usable as a metric label.
pub mod unmapped {
    /// Not JSON (garbage, truncated line, invalid UTF-8).
    pub const NON_JSON: &str = "non_json";
    /// JSON that is not a JSON-RPC message, or lacks what its method needs.
    pub const MALFORMED: &str = "malformed";
    /// A `sessionUpdate` kind this adapter does not know.
    pub const UNKNOWN_UPDATE: &str = "unknown_update";
    /// A notification other than `session/update`.
    pub const UNKNOWN_NOTIFICATION: &str = "unknown_notification";
    /// A response to no request of ours.
    pub const UNKNOWN_RESPONSE: &str = "unknown_response";
    /// An agent request we do not implement (answered with -32601).
    pub const AGENT_REQUEST: &str = "agent_request";
    /// Turn content while no turn is running.
    pub const OUTSIDE_TURN: &str = "outside_turn";
    /// A `session/update` for another session id.
    pub const FOREIGN_SESSION: &str = "foreign_session";
    /// A message chunk that is not text (image, resource, …).
    pub const NON_TEXT_CONTENT: &str = "non_text_content";
    /// The agent's `plan` (passed through as `raw`).
    pub const PLAN: &str = "plan";
}

/// What one of our requests is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Initialize,
    Open(OpenKind),
    SetModel,
    Prompt,
}

/// How the agent session is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenKind {
    New,
    Resume,
    Load,
}

/// Where the process is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Launched, not started (or exited).
    #[default]
    Idle,
    /// Handshake requests in flight.
    Starting,
    /// `session/load` in flight: its replay is swallowed.
    Loading,
    /// The agent session exists; turns may run.
    Ready,
    /// The handshake failed; the agent is being stopped.
    Failed,
}

/// The running turn.
#[derive(Debug)]
struct Turn {
    prompt_id: u64,
    /// We sent `session/cancel`.
    cancelled: bool,
    /// The client denied a permission and the agent has not carried on
    /// (no text since): a failing prompt answer is the agent stopping on
    /// the denial, not an agent error.
    stopped_by_deny: bool,
    /// Cumulative session cost when the turn started (`None`: unknown).
    cost_before: Option<f64>,
    last_update: Option<wire::UsageUpdate>,
}

/// A `session/request_permission` waiting for the client.
#[derive(Debug)]
struct PendingPermission {
    /// The AEP `permission_request.id`: the JSON-RPC id as text.
    aep_id: String,
    /// The JSON-RPC id exactly as the agent sent it (echoed in the answer).
    rpc_id: Value,
    options: Vec<PermissionOption>,
}

/// The `acpx` adapter. See the module docs.
#[derive(Debug, Default)]
pub struct AcpAdapter {
    /// Message-id tag of the current process (random unless fixed for tests).
    tag: String,
    fixed_tag: Option<String>,
    resume: Option<String>,
    model: Option<String>,
    work_dir: String,
    next_id: u64,
    pending: Vec<(u64, Pending)>,
    phase: Phase,
    session_id: Option<String>,
    /// The model the agent reports (or the one we set).
    current_model: Option<String>,
    turns: u64,
    turn: Option<Turn>,
    abandoned: VecDeque<u64>,
    perms: Vec<PendingPermission>,
    tools: Tools,
    runs: Runs,
    /// Cumulative agent-session cost last reported (`None`: unknown).
    cost_total: Option<f64>,
    /// Notifications swallowed during `session/load`.
    replayed: u64,
}

impl AcpAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    /// An adapter whose generated message ids use `tag` instead of a random
    /// one (`acp-<tag>-<turn>-<n>`), for reproducible transcripts.
    pub fn with_tag(tag: &str) -> Self {
        AcpAdapter { fixed_tag: Some(tag.to_owned()), ..Self::default() }
    }

    /// Forget everything about the previous process (a new one is launched).
    fn reset(&mut self) {
        let fixed = self.fixed_tag.take();
        *self = Self::default();
        self.tag = fixed.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
        self.fixed_tag = fixed;
        self.runs = Runs::new(self.tag.clone());
    }

    fn unmapped(kind: &str, raw: Value, out: &mut Out) {
        out.push(Action::Unmapped { kind: kind.to_owned(), raw });
    }

    fn request<P: serde::Serialize>(&mut self, what: Pending, m: &str, params: P, out: &mut Out) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.pending.push((id, what));
        out.push(Action::Stdin(wire::request(id, m, params)));
        id
    }

    /// The handshake cannot complete: stop the agent (the waiting `init`
    /// gets WORKER_START_FAILED from the session).
    fn fail_start(&mut self, what: &str, why: &str, out: &mut Out) {
        log::warn!("acpx: {what} failed: {why}; stopping the agent");
        self.phase = Phase::Failed;
        out.push(Action::Kill);
    }

    /// Answer every pending permission request `cancelled` (ACP rule on
    /// cancel) and withdraw it from the session.
    fn cancel_permissions(&mut self, write: bool, out: &mut Out) {
        for p in self.perms.drain(..) {
            if write {
                out.push(Action::Stdin(wire::permission_response(&p.rpc_id, PermissionOutcome::Cancelled)));
            }
            out.push(Action::PermissionCancelled { id: p.aep_id });
        }
    }

    // ---------------------------------------------------------------- handshake

    fn open_session(&mut self, kind: OpenKind, out: &mut Out) {
        let cwd = self.work_dir.clone();
        match (kind, self.resume.clone()) {
            (OpenKind::New, _) | (_, None) => {
                let params = wire::NewSessionParams { cwd: &cwd, mcp_servers: [] };
                self.request(Pending::Open(OpenKind::New), method::SESSION_NEW, params, out);
            }
            (k, Some(id)) => {
                let params = wire::OpenSessionParams { session_id: &id, cwd: &cwd, mcp_servers: [] };
                let m = if k == OpenKind::Resume { method::SESSION_RESUME } else { method::SESSION_LOAD };
                if k == OpenKind::Load {
                    self.phase = Phase::Loading;
                }
                self.request(Pending::Open(k), m, params, out);
            }
        }
    }

    fn on_initialized(&mut self, outcome: Result<&Value, RpcError>, out: &mut Out) {
        let init: wire::InitializeResult = match outcome {
            Ok(v) => wire::view(v).unwrap_or_default(),
            Err(e) => return self.fail_start("initialize", &translate::error_text(&e), out),
        };
        if self.resume.is_none() {
            return self.open_session(OpenKind::New, out);
        }
        if init.can_resume() {
            self.open_session(OpenKind::Resume, out);
        } else if init.can_load() {
            self.open_session(OpenKind::Load, out);
        } else {
            self.phase = Phase::Failed;
            let message = "the agent can neither resume nor load a session".to_owned();
            out.push(Action::ResumeFailed { message });
        }
    }

    fn on_opened(&mut self, kind: OpenKind, outcome: Result<&Value, RpcError>, out: &mut Out) {
        if self.phase == Phase::Loading {
            log::debug!("acpx: session/load replayed {} notifications", self.replayed);
            self.phase = Phase::Starting;
        }
        let r: wire::SessionResult = match outcome {
            Ok(v) => wire::view(v).unwrap_or_default(),
            Err(e) if kind == OpenKind::New => return self.fail_start("session/new", &translate::error_text(&e), out),
            Err(e) => {
                self.phase = Phase::Failed;
                return out.push(Action::ResumeFailed { message: translate::error_text(&e) });
            }
        };
        self.current_model = wire::current_model(r.models.as_ref(), r.config_options.as_deref());
        let id = match kind {
            OpenKind::New => r.session_id.filter(|s| !s.is_empty()),
            OpenKind::Resume | OpenKind::Load => self.resume.clone(),
        };
        let Some(id) = id else { return self.fail_start("session/new", "no sessionId in the result", out) };
        // A new session starts at cost 0; a resumed one's total is unknown
        // until the agent reports it.
        self.cost_total = (kind == OpenKind::New).then_some(0.0);
        self.session_id = Some(id.clone());
        out.push(Action::AgentSessionId(id.clone()));
        if let Some(model) = self.model.clone() {
            let params = wire::SetModelParams { session_id: &id, model_id: &model };
            self.request(Pending::SetModel, method::SESSION_SET_MODEL, params, out);
            return;
        }
        self.phase = Phase::Ready;
        out.push(Action::Ready);
    }

    fn on_model_set(&mut self, outcome: Result<&Value, RpcError>, out: &mut Out) {
        if let Err(e) = outcome {
            return self.fail_start("session/set_model", &translate::error_text(&e), out);
        }
        self.current_model = self.model.clone();
        self.phase = Phase::Ready;
        out.push(Action::Ready);
    }

    // ---------------------------------------------------------------- messages

    fn on_response(&mut self, id: &Value, raw: &Value, out: &mut Out) {
        let found = id.as_u64().and_then(|n| self.pending.iter().position(|(i, _)| *i == n).map(|p| (n, p)));
        let Some((n, pos)) = found else {
            if id.as_u64().is_some_and(|n| self.abandoned.contains(&n)) {
                log::debug!("acpx: dropping the answer to an abandoned prompt {id}");
                return;
            }
            return Self::unmapped(unmapped::UNKNOWN_RESPONSE, raw.clone(), out);
        };
        let (_, what) = self.pending.remove(pos);
        let outcome = match raw.get("error").filter(|e| !e.is_null()) {
            Some(e) => Err(wire::view::<RpcError>(e).unwrap_or_default()),
            None => Ok(raw.get("result").unwrap_or(&Value::Null)),
        };
        match what {
            Pending::Initialize => self.on_initialized(outcome, out),
            Pending::Open(kind) => self.on_opened(kind, outcome, out),
            Pending::SetModel => self.on_model_set(outcome, out),
            Pending::Prompt => self.on_prompt_answer(n, outcome, out),
        }
    }

    /// The `session/prompt` answer: the end of the turn.
    fn on_prompt_answer(&mut self, id: u64, outcome: Result<&Value, RpcError>, out: &mut Out) {
        let Some(turn) = self.turn.take_if(|t| t.prompt_id == id) else {
            log::debug!("acpx: answer to prompt {id} outside its turn");
            return;
        };
        self.runs.close(out);
        self.cancel_permissions(true, out);
        let result: Option<wire::PromptResult> = match &outcome {
            Ok(v) => Some(wire::view(v).unwrap_or_default()),
            Err(_) => None,
        };
        let stats = translate::turn_stats(TurnUsage {
            usage: result.as_ref().and_then(|r| r.usage.as_ref()),
            last_update: turn.last_update.as_ref(),
            cost_before: turn.cost_before,
            model: self.current_model.as_deref(),
        });
        let success = match (result, outcome) {
            (Some(r), _) => match r.stop_reason.as_deref() {
                Some(wire::stop::END_TURN | wire::stop::MAX_TOKENS | wire::stop::MAX_TURN_REQUESTS) => true,
                Some(wire::stop::CANCELLED) => false,
                Some(wire::stop::REFUSAL) => {
                    out.emit(translate::refusal_error());
                    false
                }
                other => {
                    log::warn!("acpx: unexpected stopReason {other:?}");
                    !turn.cancelled
                }
            },
            (None, Err(e)) => {
                if turn.cancelled || turn.stopped_by_deny {
                    log::debug!("acpx: prompt ended by the client: {}", translate::error_text(&e));
                } else {
                    out.emit(translate::prompt_error(&e));
                }
                false
            }
            (None, Ok(_)) => false,
        };
        out.push(Action::TurnEnd { success, stats });
    }

    fn on_agent_request(&mut self, id: Value, m: &str, raw: Value, out: &mut Out) {
        if m == method::REQUEST_PERMISSION {
            return self.on_permission_request(id, raw, out);
        }
        log::debug!("acpx: refusing agent request {m}");
        out.push(Action::Stdin(wire::error_response(&id, wire::code::METHOD_NOT_FOUND, "Method not found")));
        Self::unmapped(unmapped::AGENT_REQUEST, raw, out);
    }

    fn on_permission_request(&mut self, id: Value, raw: Value, out: &mut Out) {
        let aep_id = match &id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if self.perms.iter().any(|p| p.aep_id == aep_id) {
            log::warn!("acpx: permission request {aep_id} repeated while pending; ignored");
            return;
        }
        let params: wire::RequestPermission = raw.get("params").and_then(wire::view).unwrap_or_default();
        let options = params.options.unwrap_or_default();
        let refuse = if self.turn.is_none() {
            Some("no turn is running")
        } else if options.is_empty() {
            Some("no options offered")
        } else if self.perms.len() >= MAX_PENDING_PERMISSIONS {
            Some("too many pending permission requests")
        } else {
            None
        };
        if let Some(why) = refuse {
            log::warn!("acpx: permission request {aep_id} answered cancelled: {why}");
            out.push(Action::Stdin(wire::permission_response(&id, PermissionOutcome::Cancelled)));
            return;
        }
        self.runs.close(out);
        let call = params.tool_call.unwrap_or_default();
        let view = self.tools.ensure_emitted(&call, out);
        let forwarded = raw.pointer("/params/options").cloned();
        self.perms.push(PendingPermission { aep_id: aep_id.clone(), rpc_id: id, options });
        out.push(Action::Permission(PermissionAsk {
            id: aep_id,
            tool_name: view.tool_name,
            description: view.description,
            input: view.input,
            args: None,
            options: forwarded,
        }));
    }

    fn on_notification(&mut self, m: &str, raw: Value, out: &mut Out) {
        if m != method::SESSION_UPDATE {
            return Self::unmapped(unmapped::UNKNOWN_NOTIFICATION, raw, out);
        }
        if self.phase == Phase::Loading {
            self.replayed += 1; // history replayed by session/load
            return;
        }
        let Some(n) = raw.get("params").and_then(wire::view::<wire::SessionNotification>) else {
            return Self::unmapped(unmapped::MALFORMED, raw, out);
        };
        if let (Some(ours), Some(theirs)) = (self.session_id.as_deref(), n.session_id.as_deref())
            && ours != theirs
        {
            return Self::unmapped(unmapped::FOREIGN_SESSION, raw, out);
        }
        self.on_update(n.update, raw, out);
    }

    /// A `tool_call` notice (`announce`) or a `tool_call_update`: it ends
    /// the text run; the table decides what to emit.
    fn on_tool_call(&mut self, f: &wire::ToolCallFields, announce: bool, raw: Value, out: &mut Out) {
        self.runs.close(out);
        if !self.tools.update(f, announce, out) {
            Self::unmapped(unmapped::MALFORMED, raw, out);
        }
    }

    /// The agent produced text after a denial: it carries on with the turn.
    fn carried_on(&mut self, text: &str) {
        if let Some(t) = self.turn.as_mut().filter(|_| !text.is_empty()) {
            t.stopped_by_deny = false;
        }
    }

    fn on_update(&mut self, update: SessionUpdate, raw: Value, out: &mut Out) {
        let in_turn = self.turn.is_some();
        match update {
            SessionUpdate::AgentMessageChunk(_)
            | SessionUpdate::AgentThoughtChunk(_)
            | SessionUpdate::ToolCall(_)
            | SessionUpdate::ToolCallUpdate(_)
                if !in_turn =>
            {
                Self::unmapped(unmapped::OUTSIDE_TURN, raw, out)
            }
            SessionUpdate::AgentMessageChunk(c) => match c.content {
                Some(ContentBlock::Text { text }) => {
                    self.carried_on(&text);
                    self.runs.text(c.message_id.as_deref(), &text, out)
                }
                _ => Self::unmapped(unmapped::NON_TEXT_CONTENT, raw, out),
            },
            SessionUpdate::AgentThoughtChunk(c) => match c.content {
                Some(ContentBlock::Text { text }) => {
                    self.carried_on(&text);
                    self.runs.thought(&text, out)
                }
                _ => Self::unmapped(unmapped::NON_TEXT_CONTENT, raw, out),
            },
            SessionUpdate::ToolCall(f) => self.on_tool_call(&f, true, raw, out),
            SessionUpdate::ToolCallUpdate(f) => self.on_tool_call(&f, false, raw, out),
            SessionUpdate::UsageUpdate(u) => {
                if let Some(total) = translate::cumulative_cost(&u) {
                    self.cost_total = Some(total);
                }
                if let Some(t) = self.turn.as_mut() {
                    t.last_update = Some(u);
                }
            }
            SessionUpdate::Plan => {
                if in_turn {
                    self.runs.close(out);
                }
                Self::unmapped(unmapped::PLAN, raw, out);
            }
            SessionUpdate::ConfigOptionUpdate(c) => {
                if let Some(m) = wire::current_model(None, c.config_options.as_deref()) {
                    self.current_model = Some(m);
                }
            }
            SessionUpdate::UserMessageChunk
            | SessionUpdate::AvailableCommandsUpdate
            | SessionUpdate::CurrentModeUpdate => {}
            SessionUpdate::Other => Self::unmapped(unmapped::UNKNOWN_UPDATE, raw, out),
        }
    }
}

impl Adapter for AcpAdapter {
    fn worker_type(&self) -> WorkerType {
        WorkerType::Acpx
    }

    fn caps(&self) -> Caps {
        Caps {
            supports_resume: true,
            supports_permissions: true,
            supports_interrupt: true,
            supports_delta: true,
            supports_tool_call: true,
        }
    }

    fn needs_ready(&self) -> bool {
        true
    }

    /// No arguments of its own (the agent's come from
    /// `workers.acpx.agents.<name>.args`); the session is chosen on stdin.
    /// A resume id that could not be an agent session id is discarded with
    /// a warning and a fresh session starts (security.md §4).
    fn launch(&mut self, spec: &LaunchSpec) -> Launch {
        self.reset();
        self.resume = spec.resume.clone().filter(|id| {
            let ok = translate::valid_session_id(id);
            if !ok {
                log::warn!("acpx: discarding invalid agent session id for resume: {id:?}");
            }
            ok
        });
        self.model = spec.model.clone().filter(|m| !m.is_empty());
        let env = translate::ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Launch { args: Vec::new(), env, agent_session_id: None, policy_env: Vec::new() }
    }

    fn on_started(&mut self, started: &Started<'_>, out: &mut Out) {
        self.work_dir = match started.work_dir.to_str() {
            Some(s) => s.to_owned(),
            None => {
                log::warn!("acpx: work dir is not UTF-8: {}", started.work_dir.display());
                started.work_dir.to_string_lossy().into_owned()
            }
        };
        self.phase = Phase::Starting;
        self.request(Pending::Initialize, method::INITIALIZE, wire::InitializeParams::hotplex(), out);
    }

    fn on_input(&mut self, text: &str, out: &mut Out) {
        if self.turn.is_some() {
            log::warn!("acpx: input while a turn is running; the session should have refused it");
        }
        let Some(sid) = self.session_id.clone().filter(|_| self.phase == Phase::Ready) else {
            out.emit(Event::error(ErrorCode::AgentError, "the agent session is not ready"));
            return out.push(Action::TurnEnd { success: false, stats: Stats::default() });
        };
        self.turns += 1;
        self.runs.begin_turn(self.turns, out);
        self.tools.clear();
        let id = self.request(Pending::Prompt, method::SESSION_PROMPT, wire::PromptParams::text(&sid, text), out);
        self.turn = Some(Turn {
            prompt_id: id,
            cancelled: false,
            stopped_by_deny: false,
            cost_before: self.cost_total,
            last_update: None,
        });
    }

    fn on_permission(&mut self, reply: &PermissionReply, out: &mut Out) {
        let Some(pos) = self.perms.iter().position(|p| p.aep_id == reply.id) else {
            log::debug!("acpx: permission reply for unknown request {:?} ignored", reply.id);
            return;
        };
        let p = self.perms.remove(pos);
        let outcome = match translate::choose_option(&p.options, reply.allow, reply.remember) {
            Some(option_id) => PermissionOutcome::Selected { option_id },
            None => {
                log::warn!(
                    "acpx: no permission option fits allow={} for {}; answering cancelled",
                    reply.allow,
                    p.aep_id
                );
                PermissionOutcome::Cancelled
            }
        };
        out.push(Action::Stdin(wire::permission_response(&p.rpc_id, outcome)));
        if !reply.allow
            && let Some(t) = self.turn.as_mut()
        {
            t.stopped_by_deny = true;
        }
    }

    /// `session/cancel`, then every pending permission request is answered
    /// `cancelled` (not awaited: the prompt answer ends the turn).
    fn on_interrupt(&mut self, out: &mut Out) {
        let Some(turn) = self.turn.as_mut() else { return };
        if turn.cancelled {
            return;
        }
        turn.cancelled = true;
        if let Some(sid) = self.session_id.as_deref() {
            let params = wire::SessionIdParams { session_id: sid };
            out.push(Action::Stdin(wire::notification(method::SESSION_CANCEL, params)));
        }
        self.cancel_permissions(true, out);
    }

    fn on_line(&mut self, line: &[u8], out: &mut Out) {
        let (kind, raw) = match wire::parse(line) {
            Parsed::Blank => return,
            Parsed::NonJson => {
                let cut = &line[..line.len().min(MAX_RAW_TEXT_BYTES)];
                let text = String::from_utf8_lossy(cut).into_owned();
                return Self::unmapped(unmapped::NON_JSON, Value::String(text), out);
            }
            Parsed::Malformed(raw) => return Self::unmapped(unmapped::MALFORMED, raw, out),
            Parsed::Message(kind, raw) => (kind, raw),
        };
        match kind {
            Kind::Response { id } => self.on_response(&id, &raw, out),
            Kind::Request { id, method } => self.on_agent_request(id, &method, raw, out),
            Kind::Notification { method } => self.on_notification(&method, raw, out),
        }
    }

    /// Close the open text run, withdraw pending prompts (answered
    /// `cancelled`), and forget the turn: a late prompt answer (the worker
    /// may live on after an output-limit close) is dropped.
    fn on_turn_aborted(&mut self, out: &mut Out) {
        self.runs.close(out);
        self.cancel_permissions(true, out);
        if let Some(t) = self.turn.take() {
            self.pending.retain(|(id, _)| *id != t.prompt_id);
            if self.abandoned.len() >= MAX_ABANDONED {
                self.abandoned.pop_front();
            }
            self.abandoned.push_back(t.prompt_id);
        }
    }

    /// Close the open run and withdraw prompts; the session synthesises the
    /// crash error and `done` (workers.md §1.1).
    fn on_exit(&mut self, _exit: &ExitInfo, out: &mut Out) {
        self.runs.close(out);
        self.cancel_permissions(false, out);
        self.turn = None;
        self.pending.clear();
        self.phase = Phase::Idle;
    }
}
