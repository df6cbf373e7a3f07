//! `claude_code`: Claude Code CLI in stream-json mode, one persistent process
//! per session, many turns (workers.md §2).
//!
//! Owns the per-process protocol state: the agent session id, the running
//! turn (interrupt flag, last API call's usage), pending permission prompts,
//! the cumulative cost baseline and the streaming block assembler. It is
//! sans-IO: lines and client decisions in, [`Action`]s out. It must not
//! decide policy (the session already validated every value it receives),
//! count tool calls (the session does) or touch a descriptor.
//!
//! Layout: [`wire`] mirrors the CLI's JSON, [`translate`] holds the pure
//! mappings (argv, stats, errors, permission replies), `stream` assembles
//! text and thinking blocks into `message.*`/`reasoning` events.
//!
//! Choices where workers.md §2 is silent:
//! * Session ids go into argv as one element too (`--session-id=<id>`,
//!   `--resume=<id>`); a resume id that is not `[A-Za-z0-9_-]{1,128}` is
//!   discarded and a fresh session starts (security.md §4).
//! * A text block still open when its turn ends (interrupt, broken stream)
//!   or when its stream restarts is closed with `message.end` + `message`
//!   holding what was streamed, so every `message.start` is bracketed.
//! * Prompts still pending when a turn ends or the process exits are
//!   reported as [`Action::PermissionCancelled`].
//! * A `result` with `is_error:false` after our interrupt (the turn finished
//!   first) ends the turn with `success:true`.
//! * A resume refusal is [`Action::ResumeFailed`], followed by
//!   `TurnEnd{success:false}` only if an input had started a turn.
//! * An error `result` outside a turn emits AGENT_ERROR without `TurnEnd`;
//!   a successful one is [`Action::Unmapped`].

mod stream;
pub mod translate;
pub mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Value, json};

use super::{Action, Adapter, Caps, ExitInfo, Launch, LaunchSpec, Out, PermissionReply, WorkerType};
use crate::protocol::Event;

use stream::Assembler;
use translate::{SessionArg, StatsContext};
use wire::{
    BlockStart, ContentBlock, ControlRequestBody, ControlRequestLine, Delta, Line, Parsed, ResultLine, StreamEvent,
    StreamEventLine, System, Usage, UserContent,
};

/// At most this many permission prompts are tracked; a further
/// `can_use_tool` is denied at once (the session's own, lower limit
/// — security.md §7.4 — normally answers first).
pub const MAX_PENDING_PERMISSIONS: usize = 64;
/// Non-JSON lines are passed to `raw` cut to this many bytes.
pub const MAX_RAW_TEXT_BYTES: usize = 64 * 1024;
/// Prefix of our interrupt request ids (`int_1`, `int_2`, …).
pub const INTERRUPT_ID_PREFIX: &str = "int_";

/// `kind` values of [`Action::Unmapped`]: a closed set, usable as a metric label.
pub mod unmapped {
    /// Not JSON (garbage, truncated line, invalid UTF-8).
    pub const NON_JSON: &str = "non_json";
    /// JSON that is not an object or does not have the shape its `type` promises.
    pub const MALFORMED: &str = "malformed";
    /// A `type` this adapter does not know (`rate_limit_event`, …).
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A known `type` with an unknown `subtype` / event / block / delta type.
    pub const UNKNOWN_SUBTYPE: &str = "unknown_subtype";
    /// `system/api_retry`: the CLI retries an API call by itself.
    pub const API_RETRY: &str = "api_retry";
    /// A `control_request` other than `can_use_tool` (answered with an error).
    pub const CONTROL_REQUEST: &str = "control_request";
    /// A stream event that fits no open block (lost or reordered lines).
    pub const OUT_OF_ORDER: &str = "out_of_order";
    /// A successful `result` while no turn was running.
    pub const OUTSIDE_TURN: &str = "outside_turn";
}

/// State of the running turn.
#[derive(Debug, Default)]
struct Turn {
    /// We sent an interrupt: an error `result` is the expected end, not a failure.
    interrupted: bool,
    /// Usage of the last main-agent API call (for `context_used_percent`).
    last_call_usage: Option<Usage>,
    /// `error` of a `<synthetic>` assistant line (`server_error`, …).
    agent_code: Option<String>,
}

/// A `can_use_tool` waiting for the client.
#[derive(Debug)]
struct Pending {
    id: String,
    /// The tool input, echoed back as `updatedInput` on allow.
    input: Value,
    suggestions: Option<Value>,
}

/// The `claude_code` adapter. See the module docs.
#[derive(Debug, Default)]
pub struct ClaudeAdapter {
    /// The current process was started with `--resume`.
    resumed_launch: bool,
    /// `AgentSessionId` already reported for the current process.
    session_reported: bool,
    init_model: Option<String>,
    /// `total_cost_usd` of the last `result` of this process.
    prev_total_cost: f64,
    results_seen: u64,
    interrupts_sent: u64,
    turn: Option<Turn>,
    pending: Vec<Pending>,
    assembler: Assembler,
}

impl ClaudeAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget everything about the previous process (a new one is launched).
    fn reset(&mut self) {
        *self = Self::default();
    }

    fn unmapped(kind: &str, raw: Value, out: &mut Out) {
        out.push(Action::Unmapped { kind: kind.to_owned(), raw });
    }

    fn cancel_pending(&mut self, out: &mut Out) {
        for p in self.pending.drain(..) {
            out.push(Action::PermissionCancelled { id: p.id });
        }
    }

    fn on_init(&mut self, init: wire::SystemInit, out: &mut Out) {
        if let Some(m) = init.model.filter(|m| !m.is_empty()) {
            self.init_model = Some(m);
        }
        if self.session_reported {
            return;
        }
        match init.session_id {
            Some(id) if translate::valid_session_id(&id) => {
                self.session_reported = true;
                out.push(Action::AgentSessionId(id));
            }
            Some(id) => log::warn!("claude: ignoring agent session id with unexpected characters: {id:?}"),
            None => log::warn!("claude: system/init without session_id"),
        }
    }

    fn on_stream_event(&mut self, line: StreamEventLine, raw: Value, out: &mut Out) {
        let parent = line.parent_tool_use_id.as_deref();
        let a = &mut self.assembler;
        let fits = match line.event {
            StreamEvent::MessageStart { message } => {
                if parent.is_none()
                    && let Some(t) = self.turn.as_mut()
                    && message.usage.is_some()
                {
                    t.last_call_usage = message.usage;
                }
                a.message_start(parent, message.id, out);
                true
            }
            StreamEvent::ContentBlockStart { index: Some(i), content_block } => {
                match content_block {
                    BlockStart::Text { text } => a.text_start(parent, i, text, out),
                    BlockStart::Thinking { thinking } => a.thinking_start(parent, i, thinking, out),
                    BlockStart::ToolUse | BlockStart::Other => a.other_start(parent, i, out),
                }
                true
            }
            StreamEvent::ContentBlockDelta { index: Some(i), delta } => match delta {
                Delta::Text { text } => a.text_delta(parent, i, text, out),
                Delta::Thinking { thinking } => a.thinking_delta(parent, i, thinking, out),
                Delta::InputJson | Delta::Signature => true,
                Delta::Other => return Self::unmapped(unmapped::UNKNOWN_SUBTYPE, raw, out),
            },
            StreamEvent::ContentBlockStop { index: Some(i) } => {
                a.block_stop(parent, i, out);
                true
            }
            StreamEvent::ContentBlockStart { index: None, .. }
            | StreamEvent::ContentBlockDelta { index: None, .. }
            | StreamEvent::ContentBlockStop { index: None } => {
                return Self::unmapped(unmapped::MALFORMED, raw, out);
            }
            StreamEvent::MessageDelta => true,
            StreamEvent::MessageStop => {
                a.message_stop(parent, out);
                true
            }
            StreamEvent::Other => return Self::unmapped(unmapped::UNKNOWN_SUBTYPE, raw, out),
        };
        if !fits {
            Self::unmapped(unmapped::OUT_OF_ORDER, raw, out);
        }
    }

    fn on_assistant(&mut self, line: wire::AssistantLine, raw: Value, out: &mut Out) {
        let msg = line.message;
        if msg.model.as_deref() == Some(wire::SYNTHETIC_MODEL) {
            // API failure text: the `result` that follows carries it.
            if let Some(t) = self.turn.as_mut() {
                t.agent_code = line.error;
            }
            return;
        }
        if line.parent_tool_use_id.is_none()
            && let Some(t) = self.turn.as_mut()
            && msg.usage.is_some()
        {
            t.last_call_usage = msg.usage;
        }
        let msg_id =
            msg.id.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
        let base = self.assembler.assistant_indexes(&msg_id, msg.content.len() as u64);
        for (j, block) in msg.content.into_iter().enumerate() {
            let index = base.saturating_add(j as u64);
            match block {
                ContentBlock::Text { text } => self.assembler.assistant_text(&msg_id, index, text, out),
                ContentBlock::Thinking { thinking } => self.assembler.assistant_thinking(&msg_id, index, thinking, out),
                ContentBlock::ToolUse { id, name, input } => {
                    let input = if input.is_null() { json!({}) } else { input };
                    out.emit(Event::ToolCall { id, name, input, status: Some("executing") });
                }
                ContentBlock::ToolResult { .. } | ContentBlock::Other => {
                    let block_raw = raw.pointer(&format!("/message/content/{j}")).cloned().unwrap_or(Value::Null);
                    Self::unmapped(unmapped::UNKNOWN_SUBTYPE, block_raw, out);
                }
            }
        }
    }

    fn on_user(line: wire::UserLine, out: &mut Out) {
        let UserContent::Blocks(blocks) = line.message.content else {
            return;
        };
        for b in blocks {
            if let ContentBlock::ToolResult { tool_use_id, content, is_error } = b {
                out.emit(Event::ToolResult {
                    id: tool_use_id,
                    output: Value::String(translate::tool_output(&content)),
                    is_error: is_error.unwrap_or(false),
                });
            }
            // Text blocks ("[Request interrupted by user]") and the rest: nothing.
        }
    }

    fn on_result(&mut self, r: ResultLine, raw: Value, out: &mut Out) {
        self.assembler.flush(out);
        self.cancel_pending(out);
        let turn = self.turn.take();
        let stats = translate::turn_stats(
            &r,
            StatsContext {
                prev_total_cost: self.prev_total_cost,
                init_model: self.init_model.as_deref(),
                last_call_usage: turn.as_ref().and_then(|t| t.last_call_usage.as_ref()),
            },
        );
        if let Some(total) = r.total_cost_usd.filter(|t| t.is_finite()) {
            self.prev_total_cost = total;
        }
        let first_result = self.results_seen == 0;
        self.results_seen += 1;
        let is_error = r.is_error.unwrap_or_else(|| r.subtype.as_deref().is_some_and(|s| s.starts_with("error")));

        if is_error
            && self.resumed_launch
            && first_result
            && let Some(message) = translate::resume_refusal(&r)
        {
            out.push(Action::ResumeFailed { message });
            if turn.is_some() {
                out.push(Action::TurnEnd { success: false, stats });
            }
            return;
        }
        match turn {
            None if is_error => out.emit(translate::agent_error(&r, None)),
            None => Self::unmapped(unmapped::OUTSIDE_TURN, raw, out),
            Some(_) if !is_error => out.push(Action::TurnEnd { success: true, stats }),
            Some(t) if t.interrupted => out.push(Action::TurnEnd { success: false, stats }),
            Some(t) => {
                out.emit(translate::agent_error(&r, t.agent_code.as_deref()));
                out.push(Action::TurnEnd { success: false, stats });
            }
        }
    }

    fn on_control_request(&mut self, c: ControlRequestLine, raw: Value, out: &mut Out) {
        let Some(id) = c.request_id.filter(|s| !s.is_empty()) else {
            return Self::unmapped(unmapped::MALFORMED, raw, out);
        };
        let req = match c.request {
            Some(ControlRequestBody::CanUseTool(req)) => req,
            _ => {
                let subtype = raw.pointer("/request/subtype").and_then(Value::as_str).unwrap_or("missing");
                let msg = format!("unsupported control request: {subtype}");
                out.push(Action::Stdin(wire::to_line(&wire::ControlResponseOut::error(&id, &msg))));
                return Self::unmapped(unmapped::CONTROL_REQUEST, raw, out);
            }
        };
        if self.pending.iter().any(|p| p.id == id) {
            return; // repeated prompt: the first one is still waiting
        }
        let refuse = if req.tool_name.as_deref().is_none_or(str::is_empty) {
            Some("malformed permission request")
        } else if self.pending.len() >= MAX_PENDING_PERMISSIONS {
            Some("too many pending permission requests")
        } else {
            None
        };
        if let Some(reason) = refuse {
            let reply = PermissionReply { id, allow: false, reason: Some(reason.to_owned()), remember: false };
            out.push(Action::Stdin(translate::permission_response(&reply, &Value::Null, None)));
            return;
        }
        let ask = translate::permission_ask(&id, &req);
        let input = match req.input {
            Some(v @ Value::Object(_)) => v,
            _ => json!({}),
        };
        self.pending.push(Pending { id, input, suggestions: req.permission_suggestions });
        out.push(Action::Permission(ask));
    }
}

impl Adapter for ClaudeAdapter {
    fn worker_type(&self) -> WorkerType {
        WorkerType::ClaudeCode
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

    /// `--session-id=<fresh uuid v4>` for a new agent session, or
    /// `--resume=<id>` (an id that could not be a claude session id is
    /// discarded with a warning and a fresh session starts, security.md §4).
    fn launch(&mut self, spec: &LaunchSpec) -> Launch {
        self.reset();
        let resume = spec.resume.as_deref().filter(|id| {
            let ok = translate::valid_session_id(id);
            if !ok {
                log::warn!("claude: discarding invalid agent session id for resume: {id:?}");
            }
            ok
        });
        let (args, agent_session_id) = match resume {
            Some(id) => {
                self.resumed_launch = true;
                (translate::args(spec, SessionArg::Resume(id)), None)
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                (translate::args(spec, SessionArg::New(&id)), Some(id))
            }
        };
        let env = translate::ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Launch { args, env, agent_session_id, policy_env: Vec::new() }
    }

    fn on_input(&mut self, text: &str, out: &mut Out) {
        if self.turn.is_some() {
            log::warn!("claude: input while a turn is running; the session should have refused it");
        }
        self.turn = Some(Turn::default());
        out.push(Action::Stdin(wire::to_line(&wire::UserInput::new(text))));
    }

    fn on_permission(&mut self, reply: &PermissionReply, out: &mut Out) {
        let Some(pos) = self.pending.iter().position(|p| p.id == reply.id) else {
            log::debug!("claude: permission reply for unknown request {:?} ignored", reply.id);
            return;
        };
        let p = self.pending.remove(pos);
        out.push(Action::Stdin(translate::permission_response(reply, &p.input, p.suggestions.as_ref())));
    }

    fn on_interrupt(&mut self, out: &mut Out) {
        let Some(turn) = self.turn.as_mut() else { return };
        if turn.interrupted {
            return;
        }
        turn.interrupted = true;
        self.interrupts_sent += 1;
        let id = format!("{INTERRUPT_ID_PREFIX}{}", self.interrupts_sent);
        out.push(Action::Stdin(wire::to_line(&wire::ControlRequestOut::interrupt(&id))));
    }

    fn on_line(&mut self, line: &[u8], out: &mut Out) {
        let (line, raw) = match wire::parse(line) {
            Parsed::Blank => return,
            Parsed::NonJson => {
                let cut = &line[..line.len().min(MAX_RAW_TEXT_BYTES)];
                let text = String::from_utf8_lossy(cut).into_owned();
                return Self::unmapped(unmapped::NON_JSON, Value::String(text), out);
            }
            Parsed::Malformed(raw) => return Self::unmapped(unmapped::MALFORMED, raw, out),
            Parsed::Line(line, raw) => (line, raw),
        };
        match line {
            Line::System(System::Init(init)) => self.on_init(init, out),
            Line::System(System::Status | System::ThinkingTokens) | Line::ControlResponse => {}
            Line::System(System::ApiRetry) => Self::unmapped(unmapped::API_RETRY, raw, out),
            Line::System(System::Other) => Self::unmapped(unmapped::UNKNOWN_SUBTYPE, raw, out),
            Line::StreamEvent(se) => self.on_stream_event(se, raw, out),
            Line::Assistant(a) => self.on_assistant(a, raw, out),
            Line::User(u) => Self::on_user(u, out),
            Line::Result(r) => self.on_result(*r, raw, out),
            Line::ControlRequest(c) => self.on_control_request(c, raw, out),
            Line::ControlCancelRequest(c) => {
                if let Some(id) = c.request_id
                    && let Some(pos) = self.pending.iter().position(|p| p.id == id)
                {
                    self.pending.remove(pos);
                    out.push(Action::PermissionCancelled { id });
                }
            }
            Line::Unknown => Self::unmapped(unmapped::UNKNOWN_TYPE, raw, out),
        }
    }

    /// Close open message brackets before the gateway's own `done`.
    fn on_turn_aborted(&mut self, out: &mut Out) {
        self.assembler.flush(out);
        // The worker may live on (output-limit close): forget the turn, so a
        // late `result` of it is not taken for the next one's.
        self.turn = None;
    }

    /// Close open message brackets and withdraw pending prompts; the
    /// session synthesises the crash error and `done` (workers.md §1.1).
    fn on_exit(&mut self, _exit: &ExitInfo, out: &mut Out) {
        self.assembler.flush(out);
        self.cancel_pending(out);
        self.turn = None;
    }
}
