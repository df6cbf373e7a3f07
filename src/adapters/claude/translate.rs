//! Pure mappings between Claude Code values and AEP values (workers.md
//! §2.1, §2.4, §2.5): the command line, `done.stats`, the AGENT_ERROR event,
//! tool output text and permission prompts/answers. No state lives here:
//! whatever spans lines (cumulative cost, the model, interrupt flags) is
//! owned by the adapter and passed in.

use serde_json::{Map, Value, json};

use crate::adapters::{LaunchSpec, PermissionAsk, PermissionReply, SystemPromptMode};
use crate::protocol::{ErrorCode, Event, Stats};

use super::wire::{self, CanUseTool, ControlResponseOut, ModelUsage, PermissionResult, ResultLine, Usage};

/// `worker_type` in error details.
pub const WORKER_TYPE: &str = "claude_code";
/// Deny message when the client gave no reason (workers.md §2.5).
pub const DEFAULT_DENY_MESSAGE: &str = "Denied by user";
/// The only `permission_suggestions[].destination` ever forwarded on
/// `remember` (others write settings files).
pub const SESSION_DESTINATION: &str = "session";

/// Fixed flags of every launch (workers.md §2.1), before the per-session ones.
pub const BASE_ARGS: [&str; 9] = [
    "--print",
    "--verbose",
    "--output-format",
    "stream-json",
    "--input-format",
    "stream-json",
    "--include-partial-messages",
    "--permission-prompt-tool",
    "stdio",
];

/// Worker-specific environment (workers.md §2.7); the gateway adds the rest.
pub const ENV: [(&str, &str); 2] = [("DISABLE_TELEMETRY", "1"), ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")];

/// How the agent session is chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionArg<'a> {
    /// `--session-id=<fresh uuid>`.
    New(&'a str),
    /// `--resume=<id>`.
    Resume(&'a str),
}

/// Whether an agent session id may go into argv (security.md §4: worker
/// reported ids must match `^[A-Za-z0-9_-]{1,128}$` before reuse).
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The argv after the program name. Every value is joined to its flag as
/// ONE element `--flag=value` (security.md §4), so a value starting with `-`
/// is never read as a flag.
pub fn args(spec: &LaunchSpec, session: SessionArg<'_>) -> Vec<String> {
    let mut a: Vec<String> = BASE_ARGS.iter().map(|s| (*s).to_owned()).collect();
    match session {
        SessionArg::New(id) => a.push(format!("--session-id={id}")),
        SessionArg::Resume(id) => a.push(format!("--resume={id}")),
    }
    if let Some(m) = &spec.model {
        a.push(format!("--model={m}"));
    }
    if let Some(m) = &spec.permission_mode {
        a.push(format!("--permission-mode={m}"));
    }
    if !spec.allowed_tools.is_empty() {
        a.push(format!("--allowed-tools={}", spec.allowed_tools.join(",")));
    }
    if !spec.disallowed_tools.is_empty() {
        a.push(format!("--disallowed-tools={}", spec.disallowed_tools.join(",")));
    }
    if let Some(p) = &spec.system_prompt {
        match spec.system_prompt_mode.unwrap_or(SystemPromptMode::Append) {
            SystemPromptMode::Append => a.push(format!("--append-system-prompt={p}")),
            SystemPromptMode::Replace => a.push(format!("--system-prompt={p}")),
        }
    }
    if let Some(n) = spec.max_turns {
        a.push(format!("--max-turns={n}"));
    }
    if let Some(path) = &spec.mcp_config {
        a.push(format!("--mcp-config={}", path.to_string_lossy()));
        a.push("--strict-mcp-config".to_owned());
    }
    a
}

// ---------------------------------------------------------------- stats

/// What the adapter knows across lines when a `result` arrives.
#[derive(Clone, Copy, Debug)]
pub struct StatsContext<'a> {
    /// `total_cost_usd` of the previous `result` of this process (0 at start).
    pub prev_total_cost: f64,
    /// `model` of the last `system/init`.
    pub init_model: Option<&'a str>,
    /// Usage of the turn's last `message_start` (or `assistant` line).
    pub last_call_usage: Option<&'a Usage>,
}

/// Round away float noise from differences of cumulative dollar amounts.
fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// `done.stats` for one turn (workers.md §1.3, §2.4). Fields the CLI did not
/// report stay `None`; `tool_calls` is counted by the session.
pub fn turn_stats(r: &ResultLine, ctx: StatsContext<'_>) -> Stats {
    let mut s = Stats {
        duration_ms: r.duration_ms.filter(|d| d.is_finite() && *d >= 0.0).map(|d| d.round() as u64),
        ..Stats::default()
    };
    if let Some(u) = &r.usage {
        s.input_tokens = u.input_tokens;
        s.output_tokens = u.output_tokens;
        s.cache_read_tokens = u.cache_read_input_tokens;
        s.cache_write_tokens = u.cache_creation_input_tokens;
        let parts = [u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens];
        if parts.iter().any(Option::is_some) {
            s.total_tokens = Some(parts.iter().flatten().fold(0u64, |a, b| a.saturating_add(*b)));
        }
    }
    if let Some(total) = r.total_cost_usd.filter(|t| t.is_finite()) {
        let diff = total - ctx.prev_total_cost;
        // A negative difference means the counter restarted: unknown.
        if diff >= -1e-12 {
            s.cost_usd = Some(round_to(diff.max(0.0), 9));
        }
    }
    let usage_map = r.model_usage.as_ref();
    let model = pick_model(usage_map, ctx.init_model);
    if let (Some(m), Some(call)) = (&model, ctx.last_call_usage)
        && let Some(window) = usage_map.and_then(|mu| mu.get(m)).and_then(|mu| mu.context_window).filter(|w| *w > 0)
    {
        let parts = [call.input_tokens, call.cache_read_input_tokens, call.cache_creation_input_tokens];
        if parts.iter().any(Option::is_some) {
            let used = parts.iter().flatten().fold(0u64, |a, b| a.saturating_add(*b));
            s.context_used_percent = Some(round_to(used as f64 / window as f64 * 100.0, 4));
        }
    }
    s.model = model;
    s
}

/// The model of the turn: the `modelUsage` key matching the init model, else
/// the key with the most tokens (background title requests may use a small
/// model), else the init model.
fn pick_model(
    usage: Option<&std::collections::HashMap<String, ModelUsage>>,
    init_model: Option<&str>,
) -> Option<String> {
    if let Some(map) = usage.filter(|m| !m.is_empty()) {
        if let Some(m) = init_model.filter(|m| map.contains_key(*m)) {
            return Some(m.to_owned());
        }
        let weight = |u: &ModelUsage| {
            [u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens]
                .iter()
                .flatten()
                .fold(0u64, |a, b| a.saturating_add(*b))
        };
        // Ties broken by name so the choice does not depend on hash order.
        return map
            .iter()
            .max_by(|a, b| weight(a.1).cmp(&weight(b.1)).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k.clone());
    }
    init_model.map(str::to_owned)
}

// ---------------------------------------------------------------- errors

/// The text of the first `errors[]` entry (strings as is, anything else as JSON).
fn first_error(r: &ResultLine) -> Option<String> {
    r.errors.as_ref()?.iter().find_map(|e| match e {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

/// `Some(message)` when the `result` says the resumed conversation does not exist.
pub fn resume_refusal(r: &ResultLine) -> Option<String> {
    let in_errors =
        r.errors.iter().flatten().filter_map(Value::as_str).find(|e| e.contains(wire::NO_CONVERSATION_FOUND));
    in_errors.or_else(|| r.result.as_deref().filter(|t| t.contains(wire::NO_CONVERSATION_FOUND))).map(str::to_owned)
}

/// `error{AGENT_ERROR}` for a failed turn (workers.md §1.2, §2.4): the
/// agent's own text, `details{worker_type, subtype?, status?, agent_code?}`.
pub fn agent_error(r: &ResultLine, agent_code: Option<&str>) -> Event {
    let message = r
        .result
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| first_error(r))
        .unwrap_or_else(|| format!("agent error ({})", r.subtype.as_deref().unwrap_or("unknown")));
    let mut details = Map::new();
    details.insert("worker_type".into(), json!(WORKER_TYPE));
    if let Some(st) = &r.subtype {
        details.insert("subtype".into(), json!(st));
    }
    if let Some(status) = r.api_error_status.as_ref().filter(|v| !v.is_null()) {
        details.insert("status".into(), status.clone());
    }
    if let Some(code) = agent_code {
        details.insert("agent_code".into(), json!(code));
    }
    Event::Error { code: ErrorCode::AgentError, message, event_id: None, details: Some(Value::Object(details)) }
}

// ---------------------------------------------------------------- tools

/// `tool_result.output`: a string content as is; for a block array the text
/// of its `text` blocks joined by newlines; anything else as JSON text.
pub fn tool_output(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- permissions

/// `permission_request` content for a `can_use_tool` (workers.md §2.5).
pub fn permission_ask(request_id: &str, req: &CanUseTool) -> PermissionAsk {
    let tool_name = req.tool_name.clone().unwrap_or_default();
    let description = req
        .description
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| req.display_name.clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| tool_name.clone());
    PermissionAsk {
        id: request_id.to_owned(),
        tool_name,
        description,
        input: req.input.clone(),
        args: None,
        options: req.permission_suggestions.clone().filter(|v| !v.is_null()),
    }
}

/// The stdin line answering a `can_use_tool`. Allow repeats the original
/// input as `updatedInput` (mandatory); `remember` adds only the
/// suggestions whose destination is `session`.
pub fn permission_response(reply: &PermissionReply, input: &Value, suggestions: Option<&Value>) -> Vec<u8> {
    let result = if reply.allow {
        let updated_permissions = if reply.remember {
            let kept: Vec<&Value> = suggestions
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|s| s.get("destination").and_then(Value::as_str) == Some(SESSION_DESTINATION))
                        .collect()
                })
                .unwrap_or_default();
            (!kept.is_empty()).then_some(kept)
        } else {
            None
        };
        PermissionResult::Allow { updated_input: input, updated_permissions }
    } else {
        let message = reply.reason.as_deref().filter(|r| !r.trim().is_empty()).unwrap_or(DEFAULT_DENY_MESSAGE);
        PermissionResult::Deny { message }
    };
    wire::to_line(&ControlResponseOut::permission(&reply.id, result))
}
