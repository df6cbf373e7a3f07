//! `opencode_cli`: `opencode run --format json`, one process per turn
//! (workers.md §3, verified against opencode 1.18.33).
//!
//! Owns the state of the turn being run (the prompt until the process is
//! up, the interrupt flag, whether an `error` line came, the step totals)
//! and of the turn's process (the agent session id reported, lines seen,
//! "Session not found" on stderr). It is sans-IO: the session prepares HOME
//! and the work dir at init, calls [`Adapter::on_input`], then spawns the
//! process from [`Adapter::launch`] (continuing the conversation with
//! `--session`), and reports the exit to [`Adapter::on_exit`], which ends the
//! turn. It must not decide policy (the session validated every value), count
//! tool calls (the session does) or touch a descriptor.
//!
//! Layout: [`wire`] mirrors the CLI's JSON lines, [`translate`] holds the
//! pure mappings (argv, env, stats, errors, tool events). The tool policy
//! becomes `OPENCODE_PERMISSION` through [`crate::adapters::opencode_config`],
//! shared with opencode_server (here without a relay: never `ask`).
//!
//! Turn ends (workers.md §3.4, §3.6):
//! * exit 0 → `TurnEnd{success:true}` with the summed step stats (`false`
//!   if an `error` line came);
//! * exit ≠ 0 after an `error` line → `TurnEnd{success:false}` (the line
//!   already gave `error{AGENT_ERROR}`);
//! * `--session` refused ("Session not found" on stderr, no stdout, exit ≠ 0)
//!   → [`Action::ResumeFailed`] + `TurnEnd{success:false}`;
//! * any other exit the gateway did not cause → `error{WORKER_CRASH}` (or
//!   WORKER_OOM, workers.md §1.4 item 6) + `TurnEnd{success:false}`;
//! * killed for our interrupt → `TurnEnd{success:false}` and no error
//!   (`success:true` if the process had already exited 0 on its own);
//! * killed by the gateway for another reason (terminate, shutdown, turn
//!   timeout) → no `TurnEnd`: the session ends the turn with its own error.
//!
//! Choices where workers.md §3 is silent:
//! * `step_start`/`step_finish` become `step{id:<messageID>, llm_call,
//!   start|end}` — the only sign of progress while a part is being produced,
//!   since run mode prints whole parts. The silent retries of one LLM call
//!   (repeated `step_start` with the same messageID, fixture `06`) give one
//!   `start`.
//! * A text part with empty text gives nothing; a tool line in a state other
//!   than completed/error gives its `tool_call` alone.
//! * Lines while no turn runs (after the gateway closed the turn) are
//!   [`Action::Unmapped`], never events after `done`.

pub mod translate;
pub mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

use super::{
    Action, Adapter, Caps, ExitInfo, Launch, LaunchSpec, Out, PermissionReply, ProcessModel, Started, WorkerType,
};
use crate::protocol::Event;

use translate::StepTotals;
use wire::{Line, Parsed};

/// Non-JSON lines are passed to `raw` cut to this many bytes.
pub const MAX_RAW_TEXT_BYTES: usize = 64 * 1024;

/// `kind` values of [`Action::Unmapped`]: a closed set, usable as a metric label.
pub mod unmapped {
    /// Not JSON (garbage, truncated line, invalid UTF-8).
    pub const NON_JSON: &str = "non_json";
    /// JSON that is not an object or does not have the shape its `type` promises.
    pub const MALFORMED: &str = "malformed";
    /// A `type` this adapter does not know.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A line while no turn was running.
    pub const OUTSIDE_TURN: &str = "outside_turn";
}

/// The turn being run.
#[derive(Debug, Default)]
struct Turn {
    /// The client's text, until it is written to the process.
    prompt: Option<String>,
    /// The client interrupted: the process is (or will be) killed.
    interrupted: bool,
    /// An `error` line came (AGENT_ERROR already emitted).
    agent_error: bool,
    totals: StepTotals,
    /// messageID of the LLM call whose `step{start}` was emitted last.
    open_step: Option<String>,
}

/// Finds [`wire::SESSION_NOT_FOUND`] in stderr read in arbitrary chunks,
/// keeping only a bounded tail between chunks.
#[derive(Debug, Default)]
struct StderrScan {
    carry: Vec<u8>,
    found: bool,
}

impl StderrScan {
    fn feed(&mut self, bytes: &[u8]) {
        if self.found {
            return;
        }
        let needle = wire::SESSION_NOT_FOUND.as_bytes();
        self.carry.extend_from_slice(bytes);
        if self.carry.windows(needle.len()).any(|w| w == needle) {
            self.found = true;
            self.carry.clear();
            return;
        }
        let keep = needle.len().saturating_sub(1).min(self.carry.len());
        self.carry.drain(..self.carry.len() - keep);
    }
}

/// The `opencode_cli` adapter. See the module docs.
#[derive(Debug, Default)]
pub struct OpencodeCliAdapter {
    turn: Option<Turn>,
    /// The current process was started with `--session=<id>`.
    resumed: bool,
    /// The current process is running (its pipes are connected).
    started: bool,
    /// `AgentSessionId` already reported for the current process.
    session_reported: bool,
    /// Lines (of any kind) the current process printed.
    lines: u64,
    stderr: StderrScan,
    /// Fallback tool ids (`tool-<n>`) for lines without `callID`/`id`.
    tools_unnamed: u64,
}

impl OpencodeCliAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    fn unmapped(kind: &str, raw: Value, out: &mut Out) {
        out.push(Action::Unmapped { kind: kind.to_owned(), raw });
    }

    fn report_session(&mut self, raw: &Value, out: &mut Out) {
        if self.session_reported {
            return;
        }
        match wire::session_id(raw) {
            Some(id) if crate::adapters::opencode_config::valid_id(id) => {
                self.session_reported = true;
                out.push(Action::AgentSessionId(id.to_owned()));
            }
            Some(id) => {
                self.session_reported = true;
                log::warn!("opencode_cli: ignoring agent session id with unexpected characters: {id:?}");
            }
            None => {}
        }
    }

    fn on_record(&mut self, line: Line, raw: Value, out: &mut Out) {
        let Some(turn) = self.turn.as_mut() else {
            return Self::unmapped(unmapped::OUTSIDE_TURN, raw, out);
        };
        match line {
            Line::StepStart { part } => {
                let Some(id) = part.message_id.or(part.id) else { return };
                if turn.open_step.as_deref() != Some(id.as_str()) {
                    out.emit(Event::Step {
                        id: id.clone(),
                        step_type: translate::STEP_LLM_CALL.to_owned(),
                        name: None,
                        status: Some("start"),
                    });
                    turn.open_step = Some(id);
                }
            }
            Line::StepFinish { part } => {
                turn.totals.add(part.tokens.as_ref(), part.cost);
                if let Some(id) = part.message_id.or(part.id) {
                    if turn.open_step.as_deref() == Some(id.as_str()) {
                        turn.open_step = None;
                    }
                    out.emit(Event::Step {
                        id,
                        step_type: translate::STEP_LLM_CALL.to_owned(),
                        name: None,
                        status: Some("end"),
                    });
                }
            }
            Line::Text { part } => {
                let Some(text) = part.text else { return Self::unmapped(unmapped::MALFORMED, raw, out) };
                if text.is_empty() {
                    return;
                }
                out.emit(Event::message_start(part.id.clone()));
                out.emit(Event::message_delta(part.id.clone(), text.clone()));
                out.emit(Event::MessageEnd { message_id: part.id.clone() });
                out.emit(Event::message(part.id, text));
            }
            Line::Reasoning { part } => {
                let Some(text) = part.text else { return Self::unmapped(unmapped::MALFORMED, raw, out) };
                if !text.is_empty() {
                    out.emit(Event::Reasoning { id: part.id, content: text, delta: None });
                }
            }
            Line::ToolUse { part } => {
                let n = &mut self.tools_unnamed;
                for ev in translate::tool_events(part, || {
                    *n += 1;
                    format!("tool-{n}")
                }) {
                    out.emit(ev);
                }
            }
            Line::Error { error } => {
                turn.agent_error = true;
                out.emit(translate::agent_error(&error));
            }
            Line::Unknown => Self::unmapped(unmapped::UNKNOWN_TYPE, raw, out),
        }
    }
}

impl Adapter for OpencodeCliAdapter {
    fn worker_type(&self) -> WorkerType {
        WorkerType::OpencodeCli
    }

    fn caps(&self) -> Caps {
        Caps {
            supports_resume: true,
            supports_permissions: false,
            supports_interrupt: true,
            supports_delta: false,
            supports_tool_call: true,
        }
    }

    fn process_model(&self) -> ProcessModel {
        ProcessModel::PerTurn
    }

    /// The process of the turn being started: `--session=<id>` continues the
    /// conversation (an id that could not be an opencode session id is
    /// discarded with a warning and a fresh session starts, security.md §4).
    fn launch(&mut self, spec: &LaunchSpec) -> Launch {
        self.resumed = false;
        self.started = false;
        self.session_reported = false;
        self.lines = 0;
        self.stderr = StderrScan::default();
        let session = spec.resume.as_deref().filter(|id| {
            let ok = crate::adapters::opencode_config::valid_id(id);
            if !ok {
                log::warn!("opencode_cli: discarding invalid agent session id for resume: {id:?}");
            }
            ok
        });
        self.resumed = session.is_some();
        Launch {
            args: translate::args(spec, session),
            env: translate::env(),
            agent_session_id: None,
            policy_env: translate::policy_env(spec),
        }
    }

    /// The prompt goes to stdin, then stdin is closed (workers.md §3.1); a
    /// turn interrupted before its process was up is stopped instead.
    fn on_started(&mut self, _started: &Started<'_>, out: &mut Out) {
        self.started = true;
        let Some(turn) = self.turn.as_mut() else {
            log::warn!("opencode_cli: a process started without a turn; stopping it");
            return out.push(Action::Kill);
        };
        if turn.interrupted {
            return out.push(Action::Kill);
        }
        let prompt = turn.prompt.take().unwrap_or_default();
        out.push(Action::Stdin(prompt.into_bytes()));
        out.push(Action::CloseStdin);
    }

    /// Remember the prompt; the session spawns the turn's process next.
    fn on_input(&mut self, text: &str, _out: &mut Out) {
        if self.turn.is_some() {
            log::warn!("opencode_cli: input while a turn is running; the session should have refused it");
        }
        self.turn = Some(Turn { prompt: Some(text.to_owned()), ..Turn::default() });
    }

    /// Never asked: run mode cannot relay permissions (`supports_permissions:false`).
    fn on_permission(&mut self, reply: &PermissionReply, _out: &mut Out) {
        log::debug!("opencode_cli: permission reply {:?} ignored (no relay in run mode)", reply.id);
    }

    /// Interrupt = stop the turn's process (workers.md §3.6).
    fn on_interrupt(&mut self, out: &mut Out) {
        let Some(turn) = self.turn.as_mut() else { return };
        if std::mem::replace(&mut turn.interrupted, true) {
            return;
        }
        if self.started {
            out.push(Action::Kill);
        }
    }

    fn on_line(&mut self, line: &[u8], out: &mut Out) {
        let (line, raw) = match wire::parse(line) {
            Parsed::Blank => return,
            Parsed::NonJson => {
                self.lines += 1;
                let cut = &line[..line.len().min(MAX_RAW_TEXT_BYTES)];
                let text = String::from_utf8_lossy(cut).into_owned();
                return Self::unmapped(unmapped::NON_JSON, Value::String(text), out);
            }
            Parsed::Malformed(raw) => {
                self.lines += 1;
                return Self::unmapped(unmapped::MALFORMED, raw, out);
            }
            Parsed::Line(line, raw) => (line, raw),
        };
        self.lines += 1;
        self.report_session(&raw, out);
        self.on_record(line, raw, out);
    }

    fn on_stderr(&mut self, bytes: &[u8], _out: &mut Out) {
        self.stderr.feed(bytes);
    }

    /// The gateway closed the turn itself (terminate, timeout, …): forget it,
    /// so the process's exit ends nothing.
    fn on_turn_aborted(&mut self, _out: &mut Out) {
        self.turn = None;
    }

    /// The end of the turn (see the module docs for each case).
    fn on_exit(&mut self, exit: &ExitInfo, out: &mut Out) {
        self.started = false;
        let Some(turn) = self.turn.take() else { return };
        let clean = exit.code == Some(0) && exit.signal.is_none();
        let stats = turn.totals.stats();
        if turn.interrupted {
            return out.push(Action::TurnEnd { success: clean && !turn.agent_error, stats });
        }
        if clean {
            return out.push(Action::TurnEnd { success: !turn.agent_error, stats });
        }
        if self.resumed && self.lines == 0 && self.stderr.found {
            out.push(Action::ResumeFailed { message: translate::RESUME_FAILED_MESSAGE.to_owned() });
            return out.push(Action::TurnEnd { success: false, stats });
        }
        if turn.agent_error {
            return out.push(Action::TurnEnd { success: false, stats });
        }
        if exit.signalled_by_gateway {
            // terminate / shutdown / timeout: the session ends the turn with its own error
            self.turn = Some(turn);
            return;
        }
        out.emit(translate::crash_error(exit));
        out.push(Action::TurnEnd { success: false, stats });
    }
}
