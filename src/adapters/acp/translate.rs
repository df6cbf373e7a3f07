//! Pure mappings between ACP values and AEP values (workers.md §5.3, §5.4,
//! §1.3): `done.stats`, the AGENT_ERROR event, tool names and tool output
//! text, permission prompts and the option chosen for a decision. No state
//! lives here: whatever spans messages (the cumulative cost, the tool
//! table, pending requests) is owned by the adapter and passed in.

use serde_json::{Map, Value, json};

use crate::protocol::{ErrorCode, Event, Stats};

use super::wire::{self, PermissionOption, PromptUsage, RpcError, ToolCallFields, UsageUpdate};

/// `worker_type` in error details.
pub const WORKER_TYPE: &str = "acpx";
/// Tool name when the agent gave neither a tool name, a kind nor a title.
pub const UNKNOWN_TOOL: &str = "tool";
/// The only currency `cost_usd` is taken from.
pub const USD: &str = "USD";

/// Worker-specific environment the adapter adds (workers.md §2.7 for the
/// Claude Code that claude-code-acp drives, §3.7 for opencode); harmless
/// for agents that do not read them. Operator `workers.acpx.env` wins.
pub const ENV: [(&str, &str); 3] = [
    ("DISABLE_TELEMETRY", "1"),
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
];

/// Whether an agent session id may be sent back to the agent (security.md
/// §4: worker-reported ids must match `^[A-Za-z0-9_-]{1,128}$` before reuse).
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Round away float noise from differences of cumulative dollar amounts.
fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

// ---------------------------------------------------------------- stats

/// What the adapter knows when a turn's `session/prompt` answer arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurnUsage<'a> {
    /// `result.usage` (opencode).
    pub usage: Option<&'a PromptUsage>,
    /// The turn's last `usage_update`.
    pub last_update: Option<&'a UsageUpdate>,
    /// Cumulative session cost before the turn (`None`: unknown, e.g. the
    /// first turn after a resume — opencode's figure includes earlier processes).
    pub cost_before: Option<f64>,
    pub model: Option<&'a str>,
}

/// The cumulative USD cost an update carries, if any.
pub fn cumulative_cost(u: &UsageUpdate) -> Option<f64> {
    let c = u.cost.as_ref()?;
    if c.currency.as_deref().is_some_and(|cur| cur != USD) {
        return None;
    }
    c.amount.filter(|a| a.is_finite() && *a >= 0.0)
}

/// `done.stats` of one turn (workers.md §1.3, §5.3): tokens and cost only
/// where the agent reported them (claude-code-acp reports none), never 0
/// for unknown; `duration_ms` and `tool_calls` come from the session.
pub fn turn_stats(t: TurnUsage<'_>) -> Stats {
    let mut s = Stats { model: t.model.map(str::to_owned), ..Stats::default() };
    if let Some(u) = t.usage {
        s.input_tokens = u.input_tokens;
        s.output_tokens = u.output_tokens;
        s.cache_read_tokens = u.cached_read_tokens;
        s.cache_write_tokens = u.cached_write_tokens;
        let parts = [u.input_tokens, u.output_tokens, u.cached_read_tokens, u.cached_write_tokens];
        s.total_tokens = u.total_tokens.or_else(|| {
            parts.iter().any(Option::is_some).then(|| parts.iter().flatten().fold(0u64, |a, b| a.saturating_add(*b)))
        });
    }
    if let Some(upd) = t.last_update {
        if let (Some(used), Some(size)) = (upd.used, upd.size.filter(|s| *s > 0)) {
            s.context_used_percent = Some(round_to(used as f64 / size as f64 * 100.0, 4));
        }
        if let (Some(now), Some(before)) = (cumulative_cost(upd), t.cost_before) {
            let diff = now - before;
            // A cumulative figure that went down restarted: unknown.
            if diff >= -1e-12 {
                s.cost_usd = Some(round_to(diff.max(0.0), 9));
            }
        }
    }
    s
}

// ---------------------------------------------------------------- errors

/// The agent's text of a JSON-RPC error: `message`, with `data.details`
/// (or a string `data`) appended when it adds something.
pub fn error_text(e: &RpcError) -> String {
    let msg = e.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let detail = match &e.data {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Object(o)) => o.get("details").or_else(|| o.get("message")).and_then(Value::as_str),
        _ => None,
    }
    .map(str::trim)
    .filter(|d| !d.is_empty());
    match (msg, detail) {
        (Some(m), Some(d)) if !m.contains(d) => format!("{m}: {d}"),
        (Some(m), _) => m.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => format!("agent error (code {})", e.code.map_or_else(|| "?".to_owned(), |c| c.to_string())),
    }
}

/// The HTTP status in an agent's API error text (`"… API Error: 400 …"`).
fn api_status(text: &str) -> Option<u64> {
    let rest = &text[text.find("API Error: ")? + "API Error: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

/// `error{AGENT_ERROR}` for a `session/prompt` that failed (workers.md
/// §1.2, §5.3): the agent's own text, `details{worker_type, code?, status?}`.
pub fn prompt_error(e: &RpcError) -> Event {
    let message = error_text(e);
    let mut details = Map::new();
    details.insert("worker_type".into(), json!(WORKER_TYPE));
    if let Some(c) = e.code {
        details.insert("code".into(), json!(c));
    }
    if let Some(st) = api_status(&message) {
        details.insert("status".into(), json!(st));
    }
    Event::Error { code: ErrorCode::AgentError, message, event_id: None, details: Some(Value::Object(details)) }
}

/// `error{AGENT_ERROR}` for a turn the agent ended with `stopReason:"refusal"`.
pub fn refusal_error() -> Event {
    Event::Error {
        code: ErrorCode::AgentError,
        message: "the agent refused to continue (stopReason refusal)".into(),
        event_id: None,
        details: Some(json!({"worker_type": WORKER_TYPE, "subtype": wire::stop::REFUSAL})),
    }
}

// ---------------------------------------------------------------- tools

/// `tool_result.output`: a non-empty string `rawOutput` as is; else the
/// text of the `content` blocks (`{type:"content", content:{type:"text"}}`)
/// joined by newlines; else `rawOutput` itself (an empty string, or JSON);
/// else `""`.
pub fn tool_output(f: &ToolCallFields) -> Value {
    if let Some(Value::String(s)) = &f.raw_output
        && !s.is_empty()
    {
        return Value::String(s.clone());
    }
    let texts: Vec<&str> = f
        .content
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let inner = c.get("content").filter(|_| c.get("type").and_then(Value::as_str) == Some("content"))?;
            (inner.get("type").and_then(Value::as_str) == Some("text")).then(|| inner.get("text")?.as_str())?
        })
        .collect();
    if !texts.is_empty() {
        return Value::String(texts.join("\n"));
    }
    match &f.raw_output {
        Some(v) if !v.is_null() => v.clone(),
        _ => Value::String(String::new()),
    }
}

/// A non-empty JSON object (a tool input worth showing).
pub fn non_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(|o| !o.is_empty())
}

// ---------------------------------------------------------------- permissions

/// Which kind of option answers a decision (workers.md §5.4), in order of
/// preference. A one-time allow never selects `allow_always` (security.md
/// §7.4: only a policy-approved `remember` widens); a deny may fall back
/// to `reject_always`, which only narrows.
pub fn wanted_kinds(allow: bool, remember: bool) -> &'static [&'static str] {
    use wire::option_kind::*;
    match (allow, remember) {
        (true, true) => &[ALLOW_ALWAYS, ALLOW_ONCE],
        (true, false) => &[ALLOW_ONCE],
        (false, true) => &[REJECT_ALWAYS, REJECT_ONCE],
        (false, false) => &[REJECT_ONCE, REJECT_ALWAYS],
    }
}

/// The `optionId` to select for a decision, chosen by `kind` (agents use
/// different ids: claude-code-acp `allow`/`allow_always`/`reject`,
/// opencode `once`/`always`/`reject`). `None`: no option fits, answer
/// `cancelled` (which the agent treats as not allowed).
pub fn choose_option(options: &[PermissionOption], allow: bool, remember: bool) -> Option<&str> {
    wanted_kinds(allow, remember).iter().find_map(|kind| {
        options
            .iter()
            .find(|o| o.kind.as_deref() == Some(*kind))
            .and_then(|o| o.option_id.as_deref())
            .filter(|id| !id.is_empty())
    })
}

/// The first non-empty of some optional strings.
pub fn first_of<'a>(candidates: &[Option<&'a str>]) -> Option<&'a str> {
    candidates.iter().flatten().copied().find(|s| !s.trim().is_empty())
}
