//! Pure mappings between `opencode run` values and AEP values (workers.md
//! §3.1, §3.4, §3.7): the command line and environment, the per-turn
//! `done.stats`, the AGENT_ERROR and crash events, and the tool events. No
//! state lives here: the adapter owns whatever spans lines (the turn's step
//! totals, flags) and passes it in.

use serde_json::{Map, Value, json};

use crate::adapters::{ExitInfo, LaunchSpec};
use crate::protocol::{ErrorCode, Event, Stats};

use super::wire::{ErrorBody, TOOL_COMPLETED, TOOL_ERROR, Tokens, ToolPart};
use crate::adapters::opencode_config;

/// `worker_type` in error details.
pub const WORKER_TYPE: &str = "opencode_cli";
/// The subcommand and output format, before the per-session flags.
///
/// `--thinking` only makes the CLI print the reasoning parts the model
/// produced (a display flag; it does not ask the model to think), so they
/// become `reasoning` events.
pub const BASE_ARGS: [&str; 3] = ["run", "--format=json", "--thinking"];
/// `step.step_type` of an LLM call.
pub const STEP_LLM_CALL: &str = "llm_call";
/// Message of the WORKER_CRASH error this adapter emits (fixed text, no upstream detail).
pub const CRASH_MESSAGE: &str = "opencode exited before finishing the turn";
/// Message of `ResumeFailed` when `--session` names an unknown session.
pub const RESUME_FAILED_MESSAGE: &str = "opencode does not know the agent session to resume (Session not found)";

/// The argv after the program name: `run --format=json --thinking [--model=…]
/// [--agent=…] [--session=…]`. Every value is joined to its flag as ONE
/// element (security.md §4; the CLI accepts `--flag=value` for each of them,
/// verified with 1.18.33). The prompt never goes into argv (stdin).
pub fn args(spec: &LaunchSpec, session: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = BASE_ARGS.iter().map(|s| (*s).to_owned()).collect();
    if let Some(m) = spec.model.as_deref().filter(|m| !m.is_empty()) {
        a.push(format!("--model={m}"));
    }
    if let Some(agent) = spec.agent.as_deref().filter(|s| !s.is_empty()) {
        a.push(format!("--agent={agent}"));
    }
    if let Some(id) = session {
        a.push(format!("--session={id}"));
    }
    a
}

/// The worker-specific environment: opencode's fixed variables (shared with
/// opencode_server, [`opencode_config::ENV`]). The operator's own
/// `OPENCODE_CONFIG_CONTENT` (provider setup) comes from
/// `workers.opencode_cli.env` untouched.
pub fn env() -> Vec<(String, String)> {
    opencode_config::ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The tool policy as variables set after every configured one
/// ([`crate::adapters::Launch::policy_env`]): `OPENCODE_PERMISSION` without a
/// relay (`opencode run` auto-rejects `ask`, workers.md §3.5), so a tool
/// outside the effective allow list is `deny`, never `ask`.
pub fn policy_env(spec: &LaunchSpec) -> Vec<(String, String)> {
    let permission = opencode_config::permission_config(&spec.allowed_tools, &spec.disallowed_tools, false);
    vec![(opencode_config::PERMISSION_ENV.to_owned(), permission)]
}

// ---------------------------------------------------------------- stats

/// Token and cost totals of one turn, summed over its `step_finish` lines
/// (workers.md §3.4). `None` = no step reported that field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepTotals {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub total: Option<u64>,
    pub cost: Option<f64>,
}

fn add(acc: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *acc = Some(acc.unwrap_or(0).saturating_add(v));
    }
}

/// Round away float noise from sums of dollar amounts.
fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

impl StepTotals {
    /// Add one `step_finish`.
    pub fn add(&mut self, tokens: Option<&Tokens>, cost: Option<f64>) {
        if let Some(t) = tokens {
            add(&mut self.input, t.input);
            add(&mut self.output, t.output);
            add(&mut self.cache_read, t.cache.as_ref().and_then(|c| c.read));
            add(&mut self.cache_write, t.cache.as_ref().and_then(|c| c.write));
            add(&mut self.total, t.total);
        }
        if let Some(c) = cost.filter(|c| c.is_finite() && *c >= 0.0) {
            self.cost = Some(round9(self.cost.unwrap_or(0.0) + c));
        }
    }

    /// `done.stats` (workers.md §1.3): fields no step reported stay `None`;
    /// `duration_ms` (wall clock) and `tool_calls` are the session's; the
    /// CLI does not print the model.
    pub fn stats(&self) -> Stats {
        let parts = [self.input, self.output, self.cache_read, self.cache_write];
        let summed =
            parts.iter().any(Option::is_some).then(|| parts.iter().flatten().fold(0u64, |a, b| a.saturating_add(*b)));
        Stats {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            total_tokens: self.total.or(summed),
            cost_usd: self.cost,
            ..Stats::default()
        }
    }
}

// ---------------------------------------------------------------- errors

/// `error{AGENT_ERROR}` for an `error` line (workers.md §3.4): the agent's
/// own text, `details{worker_type, agent_code (error.name), status?, retryable?}`.
pub fn agent_error(e: &ErrorBody) -> Event {
    let data = e.data.as_ref();
    let message = data
        .and_then(|d| d.message.clone())
        .filter(|m| !m.trim().is_empty())
        .or_else(|| e.name.clone().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "opencode reported an error".to_owned());
    let mut details = Map::new();
    details.insert("worker_type".into(), json!(WORKER_TYPE));
    if let Some(name) = &e.name {
        details.insert("agent_code".into(), json!(name));
    }
    if let Some(status) = data.and_then(|d| d.status_code) {
        details.insert("status".into(), json!(status));
    }
    if let Some(r) = data.and_then(|d| d.is_retryable) {
        details.insert("retryable".into(), json!(r));
    }
    Event::Error { code: ErrorCode::AgentError, message, event_id: None, details: Some(Value::Object(details)) }
}

/// The error for a turn process that died on its own without an `error`
/// line: classified as every unexpected exit is (workers.md §1.4 item 6,
/// [`classify_exit`](crate::session::worker::classify_exit): WORKER_CRASH,
/// or WORKER_OOM for a SIGKILL the gateway did not send), details
/// `{exit_code, signal, worker_type}`. The stderr tail stays in the debug
/// log (security.md §10.2).
pub fn crash_error(exit: &ExitInfo) -> Event {
    let (code, mut details) = crate::session::worker::classify_exit(exit.code, exit.signal, None);
    if let Value::Object(m) = &mut details {
        m.insert("worker_type".into(), json!(WORKER_TYPE));
    }
    Event::Error { code, message: CRASH_MESSAGE.to_owned(), event_id: None, details: Some(details) }
}

// ---------------------------------------------------------------- tools

/// A tool value as AEP output: strings as is, null as "", anything else as JSON.
fn output_value(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        Value::Null => Value::String(String::new()),
        other => Value::String(other.to_string()),
    }
}

/// `tool_call` immediately followed by `tool_result` for a finished tool
/// (workers.md §3.4: the line appears only once the tool is over). `id` is
/// the model's `callID` (else the part id); a state other than completed or
/// error gives the call alone.
pub fn tool_events(part: ToolPart, fallback_id: impl FnOnce() -> String) -> Vec<Event> {
    let id = part.call_id.filter(|s| !s.is_empty()).or(part.id.filter(|s| !s.is_empty())).unwrap_or_else(fallback_id);
    let name = part.tool.filter(|s| !s.is_empty()).unwrap_or_else(|| "unknown".to_owned());
    let state = part.state;
    let input = match state.input {
        Value::Null => json!({}),
        v => v,
    };
    let mut out = vec![Event::ToolCall { id: id.clone(), name, input, status: Some("executing") }];
    match state.status.as_deref() {
        Some(TOOL_COMPLETED) => {
            out.push(Event::ToolResult { id, output: output_value(&state.output), is_error: false })
        }
        Some(TOOL_ERROR) => {
            let text = if state.error.is_null() { &state.output } else { &state.error };
            out.push(Event::ToolResult { id, output: output_value(text), is_error: true });
        }
        other => log::debug!("opencode_cli: tool {id} in state {other:?}: call without result"),
    }
    out
}
