//! `pi`: the pi coding agent in RPC mode, one persistent process per
//! session, many turns (workers.md §6).
//!
//! Owns the per-process protocol state: the agent session id (asked with
//! `get_state` at start), the running turn (its prompt id, interrupt flag,
//! summed usage, last stop reason), pending permission dialogs and the
//! block assembler. It is sans-IO: lines and client decisions in,
//! [`Action`]s out. It must not decide policy (the session validated every
//! value it receives), count tool calls (the session does) or touch a
//! descriptor — the permission-gate extension it names is written by the
//! gateway at startup ([`PERMISSION_GATE_SOURCE`]).
//!
//! Layout: [`wire`] mirrors pi's JSON, [`translate`] holds the pure
//! mappings (argv, env, stats, errors, permission prompts), `stream`
//! assembles text and thinking blocks into `message.*`/`reasoning` events.
//!
//! Choices where workers.md §6 is silent:
//! * No startup handshake ([`Adapter::needs_ready`] is false): pi prints
//!   nothing until asked and buffers stdin while it starts (~1 s), so the
//!   session is idle at once, like claude. `get_state` is sent in
//!   `on_started`; its `sessionId` is reported as [`Action::AgentSessionId`].
//! * Resume failure: pi exits 1 at startup, before answering anything, when
//!   `--session` names no stored session ("No session found…" on stderr,
//!   which adapters do not see). A process launched to resume that exits
//!   that way, not signalled by the gateway, is [`Action::ResumeFailed`]
//!   (followed by `TurnEnd{success:false}` if an input had started a turn);
//!   the session then ends as a worker exit and the next resume starts a
//!   fresh pi session. Other startup failures on a resume launch (provider
//!   removed from models.json, …) look the same and are treated the same.
//! * Message ids `pi-<turn>-<n>-<contentIndex>`: `<turn>` is the session's
//!   turn number (`LaunchSpec::turn_base` + inputs of this process), so ids
//!   stay unique across resumes and gateway restarts; `<n>` counts the
//!   turn's assistant messages from 1.
//! * `remember` is not supported (the confirm dialog has no such answer);
//!   a deny reason cannot reach the model (pi's extension gets a boolean):
//!   it sees "Permission denied by the user".
//! * Interrupt sends `abort` and answers every pending dialog
//!   `cancelled:true` (a pending dialog blocks abort, §6.6; the project's
//!   gate also ties its dialog to the run's abort signal).
//! * A `prompt` refused by pi (busy, no model, …) ends its turn with
//!   AGENT_ERROR{subtype:"prompt_refused"} + `TurnEnd{success:false}`.
//! * When the gateway closes a turn itself ([`Adapter::on_turn_aborted`]),
//!   pi's run may still be going: its events are dropped until its
//!   `agent_end` (or until pi accepts the next prompt).
//! * Dialogs that are not the gate's confirm are answered `cancelled:true`;
//!   fire-and-forget UI requests and informational events are
//!   [`Action::Unmapped`].

mod stream;
pub mod translate;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dialogs;

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Action, Adapter, Caps, ExitInfo, Launch, LaunchSpec, Out, PermissionReply, Started, WorkerType};
use crate::protocol::Event;

use stream::{Assembler, Fit};
use translate::UsageSum;
use wire::{AgentMessage, Command, Line, Notice, Parsed, Response, UiRequest, event, stop};

/// File name of the permission-gate extension (written by the gateway).
pub const PERMISSION_GATE_FILE: &str = "hotplex_permission_gate.ts";
/// The permission-gate extension, embedded so that the gate always matches
/// the adapter that answers it (scripts/pi/hotplex_permission_gate.ts).
pub const PERMISSION_GATE_SOURCE: &str = include_str!("../../../scripts/pi/hotplex_permission_gate.ts");
/// At most this many permission dialogs are tracked; a further one is
/// denied at once (the session's own, lower limit normally answers first).
pub const MAX_PENDING_PERMISSIONS: usize = 64;
/// Non-JSON lines are passed to `raw` cut to this many bytes.
pub const MAX_RAW_TEXT_BYTES: usize = 64 * 1024;

/// `kind` values of [`Action::Unmapped`]: a closed set, usable as a metric label.
pub mod unmapped {
    /// Not JSON (garbage, truncated line, invalid UTF-8).
    pub const NON_JSON: &str = "non_json";
    /// JSON that is not an object or not of the shape its `type` promises.
    pub const MALFORMED: &str = "malformed";
    /// A `type` this adapter does not know.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A `message_update` with an unknown `assistantMessageEvent.type`.
    pub const UNKNOWN_SUBTYPE: &str = "unknown_subtype";
    /// An update that fits no open block (lost or reordered lines).
    pub const OUT_OF_ORDER: &str = "out_of_order";
    /// A run event while no turn is running.
    pub const OUTSIDE_TURN: &str = "outside_turn";
    /// `auto_retry_*`: pi retries a transient API error by itself.
    pub const AUTO_RETRY: &str = "auto_retry";
    /// `compaction_*`, `queue_update`, `extension_error`.
    pub const NOTICE: &str = "notice";
    /// A fire-and-forget extension UI request (`notify`, `setStatus`, …).
    pub const UI: &str = "ui";
    /// A dialog other than the permission gate's (answered `cancelled`).
    pub const DIALOG: &str = "dialog";
    /// A failed `response` to a command other than the turn's prompt.
    pub const COMMAND_FAILED: &str = "command_failed";
}

/// `workers.pi` values the adapter formats (gateway config, never client input).
#[derive(Clone, Debug, PartialEq)]
pub struct PiConfig {
    /// `--mode` (`workers.pi.mode`; only `rpc` is valid).
    pub mode: String,
    /// `--provider`; `None` = pi's default.
    pub provider: Option<String>,
    /// `HOTPLEX_PI_GATED_TOOLS` (`workers.pi.gated_tools`; empty = never ask).
    pub gated_tools: Vec<String>,
    /// Absolute path of the permission-gate extension (`-e`).
    pub extension: PathBuf,
}

impl Default for PiConfig {
    fn default() -> Self {
        PiConfig {
            mode: translate::MODE_RPC.to_owned(),
            provider: None,
            gated_tools: ["bash", "write", "edit"].iter().map(|s| (*s).to_owned()).collect(),
            extension: PathBuf::from(PERMISSION_GATE_FILE),
        }
    }
}

/// State of the running turn.
#[derive(Debug)]
struct Turn {
    /// The session's turn number (for message ids).
    n: u64,
    /// `id` of the turn's `prompt` command.
    prompt_id: String,
    /// `agent_start` seen.
    started: bool,
    /// We sent `abort`: an aborted or failed end is expected, not an error.
    interrupted: bool,
    /// Assistant messages started in this turn.
    assistant_msgs: u64,
    usage: UsageSum,
    /// `stopReason` / `errorMessage` of the last assistant `message_end`.
    last_stop: Option<String>,
    last_error: Option<String>,
}

/// The `pi` adapter. See the module docs.
#[derive(Debug, Default)]
pub struct PiAdapter {
    cfg: PiConfig,
    /// The session's turn counter (`turn_base` + inputs of this process).
    turns: u64,
    /// Counter of our command ids (`p1`, `a2`, `s3`, …).
    commands: u64,
    /// The agent session id this process was launched to resume.
    resuming: Option<String>,
    /// `AgentSessionId` already reported for the current process.
    session_reported: bool,
    /// Any valid record came from the current process.
    heard: bool,
    /// `get_state` model (stats fallback, context window).
    model: Option<wire::Model>,
    turn: Option<Turn>,
    /// A run the gateway closed is still going: its events are dropped.
    stale_run: bool,
    /// Permission dialog ids waiting for the client.
    pending: Vec<String>,
    assembler: Assembler,
}

impl PiAdapter {
    pub fn new(cfg: PiConfig) -> Self {
        PiAdapter { cfg, ..Self::default() }
    }

    fn next_id(&mut self, prefix: char) -> String {
        self.commands += 1;
        format!("{prefix}{}", self.commands)
    }

    fn send(cmd: &Command<'_>, out: &mut Out) {
        out.push(Action::Stdin(wire::to_line(cmd)));
    }

    fn unmapped(kind: &str, line: &[u8], out: &mut Out) {
        let raw = wire::raw(line).unwrap_or_else(|| {
            let cut = &line[..line.len().min(MAX_RAW_TEXT_BYTES)];
            Value::String(String::from_utf8_lossy(cut).into_owned())
        });
        out.push(Action::Unmapped { kind: kind.to_owned(), raw });
    }

    /// Withdraw every pending dialog; `answer` also tells pi (it still waits).
    fn cancel_pending(&mut self, answer: bool, out: &mut Out) {
        for id in std::mem::take(&mut self.pending) {
            if answer {
                Self::send(&Command::cancel(&id), out);
            }
            out.push(Action::PermissionCancelled { id });
        }
    }

    /// Whether run events go to the current turn (else they are stale or stray).
    fn in_turn(&self) -> bool {
        self.turn.is_some() && !self.stale_run
    }

    fn on_response(&mut self, r: Response, line: &[u8], out: &mut Out) {
        let ok = r.success == Some(true);
        match r.command.as_deref() {
            Some(wire::command::GET_STATE) if ok => self.on_state(r.data, out),
            Some(wire::command::PROMPT) => self.on_prompt_response(ok, r.id.as_deref(), r.error.as_deref(), out),
            _ if ok => {}
            _ => {
                log::warn!("pi: command {:?} failed: {:?}", r.command, r.error);
                Self::unmapped(unmapped::COMMAND_FAILED, line, out);
            }
        }
    }

    fn on_state(&mut self, data: Option<Value>, out: &mut Out) {
        let state: wire::SessionState = data.and_then(|d| serde_json::from_value(d).ok()).unwrap_or_default();
        if state.model.is_some() {
            self.model = state.model;
        }
        if self.session_reported {
            return;
        }
        match state.session_id {
            Some(id) if translate::valid_session_id(&id) => {
                self.session_reported = true;
                out.push(Action::AgentSessionId(id));
            }
            Some(id) => log::warn!("pi: ignoring agent session id with unexpected characters: {id:?}"),
            None => log::warn!("pi: get_state without sessionId"),
        }
    }

    fn on_prompt_response(&mut self, ok: bool, id: Option<&str>, error: Option<&str>, out: &mut Out) {
        let Some(turn) = self.turn.as_ref().filter(|t| Some(t.prompt_id.as_str()) == id) else {
            if !ok {
                log::debug!("pi: refusal of a prompt that is no longer running: {error:?}");
            }
            return;
        };
        if ok {
            // pi accepts a prompt only when idle: a stale run is over.
            self.stale_run = false;
            return;
        }
        if turn.started {
            return; // its run is going: the run's agent_end ends the turn
        }
        log::info!("pi refused the prompt: {}", error.unwrap_or("(no reason)"));
        self.assembler.flush(out);
        self.cancel_pending(false, out);
        self.turn = None;
        out.emit(translate::agent_error(error, "prompt_refused"));
        out.push(Action::TurnEnd { success: false, stats: Default::default() });
    }

    /// `agent_end`: the turn is over; success by the last assistant stop reason.
    fn on_agent_end(&mut self, out: &mut Out) {
        self.assembler.flush(out);
        self.cancel_pending(false, out);
        let Some(t) = self.turn.take() else { return };
        let window = self
            .model
            .as_ref()
            .filter(|m| t.usage.model.is_none() || m.id == t.usage.model)
            .and_then(|m| m.context_window);
        let fallback = self.model.as_ref().and_then(|m| m.id.as_deref());
        let stats = t.usage.stats(fallback, window);
        let success = match t.last_stop.as_deref() {
            Some(stop::ABORTED) => false,
            Some(stop::ERROR) => {
                if !t.interrupted {
                    out.emit(translate::agent_error(t.last_error.as_deref(), stop::ERROR));
                }
                false
            }
            // stop, length, toolUse (a run cut after its tools), unknown reasons.
            Some(_) => true,
            None => !t.interrupted,
        };
        out.push(Action::TurnEnd { success, stats });
    }

    fn on_message_start(&mut self, m: &AgentMessage, out: &mut Out) {
        if m.role.as_deref() != Some(wire::ROLE_ASSISTANT) {
            return;
        }
        let Some(t) = self.turn.as_mut() else { return };
        t.assistant_msgs += 1;
        self.assembler.message_start(t.n, t.assistant_msgs, out);
    }

    fn on_message_end(&mut self, m: AgentMessage, out: &mut Out) {
        if m.role.as_deref() != Some(wire::ROLE_ASSISTANT) {
            return;
        }
        let Some(t) = self.turn.as_mut() else { return };
        t.usage.add(&m);
        t.last_stop = m.stop_reason;
        t.last_error = m.error_message;
        self.assembler.message_end(m.content, out);
    }

    fn on_update(&mut self, u: wire::MessageUpdate, line: &[u8], out: &mut Out) {
        let e = u.event;
        let kind = e.kind.as_deref().unwrap_or("");
        let a = &mut self.assembler;
        let fit = match (kind, e.content_index) {
            (event::TEXT_START, Some(i)) => a.text_start(i, out),
            (event::TEXT_DELTA, Some(i)) => a.text_delta(i, e.delta.unwrap_or_default(), out),
            (event::TEXT_END, Some(i)) => a.text_end(i, e.content, out),
            (event::THINKING_START, Some(i)) => a.thinking_start(i, out),
            (event::THINKING_DELTA, Some(i)) => a.thinking_delta(i, e.delta.unwrap_or_default(), out),
            (event::THINKING_END, Some(i)) => a.thinking_end(i, e.content, out),
            (event::TEXT_START | event::TEXT_DELTA | event::TEXT_END, None)
            | (event::THINKING_START | event::THINKING_DELTA | event::THINKING_END, None) => {
                return Self::unmapped(unmapped::MALFORMED, line, out);
            }
            // Tool calls are mapped from tool_execution_*; start/done/error
            // are covered by message_start/message_end.
            (
                event::TOOLCALL_START
                | event::TOOLCALL_DELTA
                | event::TOOLCALL_END
                | event::START
                | event::DONE
                | event::ERROR,
                _,
            ) => Fit::Ok,
            _ => return Self::unmapped(unmapped::UNKNOWN_SUBTYPE, line, out),
        };
        if fit == Fit::OutOfOrder {
            Self::unmapped(unmapped::OUT_OF_ORDER, line, out);
        }
    }

    fn on_ui_request(&mut self, req: UiRequest, line: &[u8], out: &mut Out) {
        let Some(id) = req.id.filter(|s| !s.is_empty()) else {
            return Self::unmapped(unmapped::MALFORMED, line, out);
        };
        let method = req.method.as_deref().unwrap_or("");
        if wire::ui::FIRE_AND_FORGET.contains(&method) {
            return Self::unmapped(unmapped::UI, line, out);
        }
        let gate = method == wire::ui::CONFIRM && req.title.as_deref() == Some(wire::PERMISSION_TITLE);
        if !gate {
            // select / input / editor / other confirms: nobody to ask.
            Self::send(&Command::cancel(&id), out);
            return Self::unmapped(unmapped::DIALOG, line, out);
        }
        if self.pending.contains(&id) {
            return; // repeated request: the first one is still waiting
        }
        if !self.in_turn() {
            log::debug!("pi: permission request outside a turn cancelled");
            return Self::send(&Command::cancel(&id), out);
        }
        if self.pending.len() >= MAX_PENDING_PERMISSIONS {
            log::warn!("pi: too many pending permission requests; denying {id}");
            return Self::send(&Command::confirm(&id, false), out);
        }
        let question = req.message.as_deref().and_then(|m| serde_json::from_str::<wire::GateQuestion>(m).ok());
        let Some(q) = question.filter(|q| !q.tool_name.is_empty()) else {
            Self::send(&Command::confirm(&id, false), out);
            return Self::unmapped(unmapped::MALFORMED, line, out);
        };
        self.pending.push(id.clone());
        out.push(Action::Permission(translate::permission_ask(&id, q)));
    }

    fn on_tool_start(s: wire::ToolExecutionStart, line: &[u8], out: &mut Out) {
        let (Some(id), Some(name)) = (s.tool_call_id.filter(|x| !x.is_empty()), s.tool_name) else {
            return Self::unmapped(unmapped::MALFORMED, line, out);
        };
        let input = match s.args {
            Some(v @ Value::Object(_)) => v,
            Some(Value::Null) | None => json!({}),
            Some(other) => other,
        };
        out.emit(Event::ToolCall { id, name, input, status: Some("executing") });
    }

    fn on_tool_end(e: wire::ToolExecutionEnd, line: &[u8], out: &mut Out) {
        let Some(id) = e.tool_call_id.filter(|x| !x.is_empty()) else {
            return Self::unmapped(unmapped::MALFORMED, line, out);
        };
        let output = e.result.map(|r| translate::tool_output(&r.content)).unwrap_or_default();
        out.emit(Event::ToolResult { id, output: Value::String(output), is_error: e.is_error.unwrap_or(false) });
    }

    /// A run event (anything between `agent_start` and `agent_end`).
    fn on_run_event(&mut self, line_rec: Line, line: &[u8], out: &mut Out) {
        if self.stale_run {
            if matches!(line_rec, Line::AgentEnd) {
                self.stale_run = false;
            }
            return; // the gateway already closed this run's turn
        }
        if self.turn.is_none() {
            return Self::unmapped(unmapped::OUTSIDE_TURN, line, out);
        }
        match line_rec {
            Line::AgentStart => {
                if let Some(t) = self.turn.as_mut() {
                    t.started = true;
                }
            }
            Line::AgentEnd => self.on_agent_end(out),
            Line::MessageStart(m) => self.on_message_start(&m.message, out),
            Line::MessageEnd(m) => self.on_message_end(m.message, out),
            Line::MessageUpdate(u) => self.on_update(u, line, out),
            Line::ToolExecutionStart(s) => Self::on_tool_start(s, line, out),
            Line::ToolExecutionEnd(e) => Self::on_tool_end(e, line, out),
            _ => {}
        }
    }
}

impl Adapter for PiAdapter {
    fn worker_type(&self) -> WorkerType {
        WorkerType::Pi
    }

    fn caps(&self) -> Caps {
        Caps {
            supports_resume: true,
            // Through the permission-gate extension (workers.md §6.5).
            supports_permissions: true,
            supports_interrupt: true,
            supports_delta: true,
            supports_tool_call: true,
        }
    }

    /// `--mode rpc --provider <p> --model <m> [--append-system-prompt <s>]
    /// --no-extensions --no-skills -e <gate> [--session <id>]`; an id that
    /// could not be a pi session id is discarded with a warning and a fresh
    /// session starts (security.md §4).
    fn launch(&mut self, spec: &LaunchSpec) -> Launch {
        let cfg = std::mem::take(&mut self.cfg);
        *self = PiAdapter { cfg, turns: spec.turn_base, ..Self::default() };
        let resume = spec.resume.as_deref().filter(|id| {
            let ok = translate::valid_session_id(id);
            if !ok {
                log::warn!("pi: not resuming an agent session id with unexpected characters: {id:?}");
            }
            ok
        });
        self.resuming = resume.map(str::to_owned);
        Launch {
            args: translate::args(&self.cfg, spec, resume),
            env: translate::env(&self.cfg),
            agent_session_id: None,
            policy_env: Vec::new(),
        }
    }

    /// Ask for the agent session id (and model) right away.
    fn on_started(&mut self, _started: &Started<'_>, out: &mut Out) {
        let id = self.next_id('s');
        Self::send(&Command::GetState { id: &id }, out);
    }

    fn on_input(&mut self, text: &str, out: &mut Out) {
        if self.turn.is_some() {
            log::warn!("pi: input while a turn is running; the session should have refused it");
            self.assembler.flush(out);
            self.cancel_pending(true, out);
        }
        self.turns += 1;
        let prompt_id = self.next_id('p');
        Self::send(&Command::Prompt { id: &prompt_id, message: text }, out);
        self.turn = Some(Turn {
            n: self.turns,
            prompt_id,
            started: false,
            interrupted: false,
            assistant_msgs: 0,
            usage: UsageSum::default(),
            last_stop: None,
            last_error: None,
        });
    }

    fn on_permission(&mut self, reply: &PermissionReply, out: &mut Out) {
        let Some(pos) = self.pending.iter().position(|p| *p == reply.id) else {
            log::debug!("pi: permission reply for unknown request {:?} ignored", reply.id);
            return;
        };
        let id = self.pending.remove(pos);
        Self::send(&Command::confirm(&id, reply.allow), out);
    }

    /// `abort`, then `cancelled:true` for every pending dialog (§6.6).
    fn on_interrupt(&mut self, out: &mut Out) {
        let Some(turn) = self.turn.as_mut() else { return };
        if turn.interrupted {
            return;
        }
        turn.interrupted = true;
        let id = self.next_id('a');
        Self::send(&Command::Abort { id: &id }, out);
        self.cancel_pending(true, out);
    }

    fn on_line(&mut self, line: &[u8], out: &mut Out) {
        let rec = match wire::parse(line) {
            Parsed::Blank => return,
            Parsed::NonJson => return Self::unmapped(unmapped::NON_JSON, line, out),
            Parsed::Malformed => return Self::unmapped(unmapped::MALFORMED, line, out),
            Parsed::Line(rec) => rec,
        };
        self.heard = true;
        match rec {
            Line::Response(r) => self.on_response(r, line, out),
            Line::ExtensionUiRequest(req) => self.on_ui_request(req, line, out),
            Line::TurnBoundary | Line::ToolExecutionUpdate => {}
            Line::Notice(n) => {
                let kind = if n == Notice::AutoRetry { unmapped::AUTO_RETRY } else { unmapped::NOTICE };
                if n == Notice::ExtensionError {
                    log::warn!("pi: an extension failed: {}", String::from_utf8_lossy(line));
                }
                Self::unmapped(kind, line, out);
            }
            Line::Unknown => Self::unmapped(unmapped::UNKNOWN_TYPE, line, out),
            run => self.on_run_event(run, line, out),
        }
    }

    /// Close open message brackets before the gateway's own `done`; pi's
    /// run may go on (output-limit close): its late events are dropped.
    fn on_turn_aborted(&mut self, out: &mut Out) {
        self.assembler.flush(out);
        self.cancel_pending(true, out);
        if self.turn.take().is_some() {
            self.stale_run = true;
        }
    }

    /// Close open message brackets and withdraw pending dialogs; a resume
    /// launch that died before answering is a resume failure; otherwise the
    /// session synthesises the crash error and `done` (workers.md §1.1).
    fn on_exit(&mut self, exit: &ExitInfo, out: &mut Out) {
        self.assembler.flush(out);
        self.cancel_pending(false, out);
        let turn = self.turn.take();
        self.stale_run = false;
        let refused = !self.heard && !exit.signalled_by_gateway && exit.signal.is_none() && exit.code == Some(1);
        if let Some(id) = self.resuming.as_deref().filter(|_| refused) {
            let message = format!("{} matching '{id}' (pi exited with code 1 at startup)", wire::NO_SESSION_FOUND);
            out.push(Action::ResumeFailed { message });
            if turn.is_some() {
                out.push(Action::TurnEnd { success: false, stats: Default::default() });
            }
        }
    }
}
