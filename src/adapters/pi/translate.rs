//! Pure mappings between pi values and AEP values (workers.md §6.1, §6.4,
//! §6.5): the command line and environment, `done.stats`, the AGENT_ERROR
//! event, tool output text and permission prompts. No state lives here:
//! whatever spans lines (the running sums, the model, interrupt flags) is
//! owned by the adapter and passed in.

use serde_json::{Map, Value, json};

use crate::adapters::{LaunchSpec, PermissionAsk, SystemPromptMode};
use crate::protocol::{ErrorCode, Event, Stats};

use super::PiConfig;
use super::wire::{AgentMessage, GateQuestion};

/// `worker_type` in error details.
pub const WORKER_TYPE: &str = "pi";
/// Environment variable the permission gate reads its tool list from.
pub const ENV_GATED_TOOLS: &str = "HOTPLEX_PI_GATED_TOOLS";
/// Disables pi's startup network operations (version check, package updates).
pub const ENV_OFFLINE: &str = "PI_OFFLINE";
/// The only `--mode` this adapter speaks.
pub const MODE_RPC: &str = "rpc";
/// Flags of every launch: no user extensions or skills are discovered; the
/// explicit `-e` gate still loads (workers.md §6.1, verified).
pub const DISCOVERY_FLAGS: [&str; 2] = ["--no-extensions", "--no-skills"];
/// A permission `description` is cut to this many characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Whether an agent session id may go into argv (security.md §4: worker
/// reported ids must match `^[A-Za-z0-9_-]{1,128}$` before reuse).
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A prompt text pi cannot mistake for a file name. pi reads
/// `--append-system-prompt` / `--system-prompt` values that name an existing
/// file as that file's contents; a trailing newline keeps the client's text
/// text (no real path ends in one) and changes nothing for the model.
pub fn prompt_text(s: &str) -> String {
    format!("{s}\n")
}

/// The argv after the program name (workers.md §6.1).
///
/// pi 0.73.1 does not read `--flag=value` for its own flags (it takes them
/// for unknown extension flags and exits "Unknown options"), so each value
/// is the element after its flag. That is safe for pi: its parser takes the
/// next element as the value unconditionally, so a value starting with `-`
/// is never read as a flag (security.md §4's concern), and every value here
/// is either gateway config, policy-checked (model), a validated session id
/// or the client's system prompt.
pub fn args(cfg: &PiConfig, spec: &LaunchSpec, resume: Option<&str>) -> Vec<String> {
    let mode = if cfg.mode.is_empty() { MODE_RPC } else { cfg.mode.as_str() };
    let mut a: Vec<String> = vec!["--mode".into(), mode.into()];
    if let Some(p) = cfg.provider.as_deref().filter(|p| !p.is_empty()) {
        a.push("--provider".into());
        a.push(p.into());
    }
    if let Some(m) = spec.model.as_deref().filter(|m| !m.is_empty()) {
        a.push("--model".into());
        a.push(m.into());
    }
    if let Some(p) = &spec.system_prompt {
        let flag = match spec.system_prompt_mode.unwrap_or(SystemPromptMode::Append) {
            SystemPromptMode::Append => "--append-system-prompt",
            SystemPromptMode::Replace => "--system-prompt",
        };
        a.push(flag.into());
        a.push(prompt_text(p));
    }
    a.extend(DISCOVERY_FLAGS.iter().map(|s| (*s).to_owned()));
    a.push("-e".into());
    a.push(cfg.extension.to_string_lossy().into_owned());
    if let Some(id) = resume {
        a.push("--session".into());
        a.push(id.into());
    }
    a
}

/// Worker-specific environment (workers.md §6.7); `PI_CODING_AGENT_DIR`
/// comes from `workers.pi.agent_dir` through the session's env builder.
pub fn env(cfg: &PiConfig) -> Vec<(String, String)> {
    vec![(ENV_OFFLINE.into(), "1".into()), (ENV_GATED_TOOLS.into(), cfg.gated_tools.join(","))]
}

// ---------------------------------------------------------------- stats

/// Usage summed over a turn's assistant messages (workers.md §6.4 "Stats").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageSum {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub total: Option<u64>,
    pub cost: Option<f64>,
    pub model: Option<String>,
    /// Prompt size of the last model call (input + cache read + cache write).
    pub last_context: Option<u64>,
}

fn add(slot: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *slot = Some(slot.unwrap_or(0).saturating_add(v));
    }
}

impl UsageSum {
    /// Add one assistant `message_end`.
    pub fn add(&mut self, m: &AgentMessage) {
        if let Some(model) = m.model.as_deref().filter(|s| !s.is_empty()) {
            self.model = Some(model.to_owned());
        }
        let Some(u) = &m.usage else { return };
        add(&mut self.input, u.input);
        add(&mut self.output, u.output);
        add(&mut self.cache_read, u.cache_read);
        add(&mut self.cache_write, u.cache_write);
        add(&mut self.total, u.total_tokens);
        if let Some(c) = u.cost.as_ref().and_then(|c| c.total).filter(|c| c.is_finite() && *c >= 0.0) {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
        // An aborted or failed call reports zeros: not a context size.
        let prompt = [u.input, u.cache_read, u.cache_write].iter().flatten().fold(0u64, |a, b| a.saturating_add(*b));
        if prompt > 0 {
            self.last_context = Some(prompt);
        }
    }

    /// `done.stats` (workers.md §1.3); `duration_ms` and `tool_calls` are the
    /// session's. `context_window` comes from `get_state` when its model is
    /// the turn's.
    pub fn stats(&self, fallback_model: Option<&str>, context_window: Option<u64>) -> Stats {
        let parts = [self.input, self.output, self.cache_read, self.cache_write];
        let total = self.total.or_else(|| {
            parts.iter().any(Option::is_some).then(|| parts.iter().flatten().fold(0u64, |a, b| a.saturating_add(*b)))
        });
        let context_used_percent = match (self.last_context, context_window.filter(|w| *w > 0)) {
            (Some(used), Some(window)) => Some(round_to(used as f64 / window as f64 * 100.0, 4)),
            _ => None,
        };
        Stats {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            total_tokens: total,
            cost_usd: self.cost.map(|c| round_to(c, 9)),
            model: self.model.clone().or_else(|| fallback_model.map(str::to_owned)),
            context_used_percent,
            ..Stats::default()
        }
    }
}

/// Round away float noise of summed dollar amounts.
fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

// ---------------------------------------------------------------- errors

/// The HTTP status at the start of a pi error text (`"400 {…}"`), if any.
pub fn leading_status(msg: &str) -> Option<u16> {
    let digits: String = msg.chars().take_while(char::is_ascii_digit).collect();
    let rest = &msg[digits.len()..];
    if digits.len() == 3 && (rest.is_empty() || rest.starts_with(' ')) { digits.parse().ok() } else { None }
}

/// `error{AGENT_ERROR}` for a failed turn (workers.md §1.2): the agent's own
/// text, `details{worker_type, subtype, status?}`.
pub fn agent_error(message: Option<&str>, subtype: &str) -> Event {
    let message = message
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map_or_else(|| format!("agent error ({subtype})"), str::to_owned);
    let mut details = Map::new();
    details.insert("worker_type".into(), json!(WORKER_TYPE));
    details.insert("subtype".into(), json!(subtype));
    if let Some(status) = leading_status(&message) {
        details.insert("status".into(), json!(status));
    }
    Event::Error { code: ErrorCode::AgentError, message, event_id: None, details: Some(Value::Object(details)) }
}

// ---------------------------------------------------------------- tools

/// `tool_result.output`: the text of the `text` blocks joined by newlines;
/// a string as is; anything else as JSON text.
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

/// The input members that best say what a call will do, by priority.
const SUMMARY_KEYS: [&str; 6] = ["command", "path", "file_path", "pattern", "url", "query"];

/// `"<toolName> <input summary>"` (workers.md §6.5), at most
/// [`MAX_DESCRIPTION_CHARS`] characters.
pub fn describe(tool: &str, input: Option<&Value>) -> String {
    let summary = match input {
        Some(Value::Object(o)) => SUMMARY_KEYS
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| if o.is_empty() { String::new() } else { Value::Object(o.clone()).to_string() }),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let full = if summary.is_empty() { tool.to_owned() } else { format!("{tool} {summary}") };
    if full.chars().count() <= MAX_DESCRIPTION_CHARS {
        return full;
    }
    let mut cut: String = full.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// `permission_request` content for a gate question (workers.md §6.5).
pub fn permission_ask(request_id: &str, q: GateQuestion) -> PermissionAsk {
    let description = describe(&q.tool_name, q.input.as_ref());
    PermissionAsk {
        id: request_id.to_owned(),
        tool_name: q.tool_name,
        description,
        input: q.input,
        args: None,
        options: None,
    }
}
