//! Pure mappings between gateway values and `opencode serve` values
//! (workers.md §3.5, §4.1, §4.2, §4.4, §4.5): the command line, the
//! environment, the tool policy as an opencode `permission` config, request
//! bodies and paths, `done.stats`, AGENT_ERROR events and permission
//! requests/answers. No state lives here.

use serde_json::{Value, json};

use crate::adapters::{PermissionAsk, PermissionReply};
use crate::protocol::{ErrorCode, Event, Stats};

use super::wire::{self, ErrorInfo, PermissionAsked, StepFinish};

pub use crate::adapters::opencode_config::{ENV, PERMISSION_ENV, permission_config, permission_key, valid_id};

/// `worker_type` in error details.
pub const WORKER_TYPE: &str = "opencode_server";
/// HTTP Basic user opencode expects (workers.md §4.1).
pub const BASIC_USER: &str = "opencode";
/// The variable opencode reads its server password from.
pub const PASSWORD_ENV: &str = "OPENCODE_SERVER_PASSWORD";
/// Start of the stdout line printed once the server accepts connections.
pub const LISTENING: &[u8] = b"opencode server listening";
/// Deny message when the client gave no reason: opencode ends the turn after
/// a reject without message, so one is always sent (workers.md §4.5).
pub const DEFAULT_DENY_MESSAGE: &str = "Denied by user";

/// `opencode serve --hostname=127.0.0.1 --port=<p>` (one argv element per
/// flag and value, security.md §4). The server binds loopback only; the
/// gateway's managed endpoint is exactly this pair.
pub fn args(port: u16) -> Vec<String> {
    vec!["serve".to_owned(), "--hostname=127.0.0.1".to_owned(), format!("--port={port}")]
}

/// `provider/model` → (`providerID`, `modelID`); `None` if there is no provider part.
pub fn split_model(model: &str) -> Option<(&str, &str)> {
    model.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty())
}

// ------------------------------------------------------------ permissions

/// A `permission.asked` as the session's [`PermissionAsk`] (workers.md §4.4).
pub fn permission_ask(p: &PermissionAsked) -> PermissionAsk {
    let input = match &p.metadata {
        Value::Null => None,
        v => Some(v.clone()),
    };
    PermissionAsk {
        id: p.id.clone(),
        tool_name: p.permission.clone(),
        description: p.patterns.join(", "),
        input,
        args: Some(p.patterns.clone()),
        options: None,
    }
}

/// `POST /permission/{id}/reply` body (workers.md §4.5): `once`, `always`
/// (remember, allowed by policy), or `reject` with a message.
pub fn permission_reply(reply: &PermissionReply) -> Vec<u8> {
    let body = if reply.allow {
        wire::PermissionReplyBody { reply: if reply.remember { "always" } else { "once" }, message: None }
    } else {
        let msg = reply.reason.as_deref().filter(|r| !r.trim().is_empty()).unwrap_or(DEFAULT_DENY_MESSAGE);
        wire::PermissionReplyBody { reply: "reject", message: Some(msg) }
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

// ------------------------------------------------------------ turns

/// The prompt body of one turn.
pub fn prompt_body(text: &str, model: Option<&str>, system: Option<&str>, agent: Option<&str>) -> Vec<u8> {
    let model = model.and_then(split_model).map(|(p, m)| wire::ModelRef { provider_id: p, model_id: m });
    let body = wire::PromptBody { parts: [wire::TextInput { kind: "text", text }], model, system, agent };
    serde_json::to_vec(&body).unwrap_or_default()
}

fn add(slot: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *slot = Some(slot.unwrap_or(0).saturating_add(v));
    }
}

/// Add one step's tokens and cost to the turn's stats (workers.md §3.4:
/// summed over `step-finish` parts).
pub fn add_step(stats: &mut Stats, step: &StepFinish) {
    let t = &step.tokens;
    add(&mut stats.input_tokens, t.input);
    add(&mut stats.output_tokens, t.output);
    add(&mut stats.cache_read_tokens, t.cache.read);
    add(&mut stats.cache_write_tokens, t.cache.write);
    let total = t.total.or_else(|| {
        let parts = [t.input, t.output, t.reasoning, t.cache.read, t.cache.write];
        // saturating: the figures are the server's (agent output)
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().fold(0u64, |a, b| a.saturating_add(*b)))
    });
    add(&mut stats.total_tokens, total);
    if let Some(c) = step.cost.filter(|c| c.is_finite() && *c >= 0.0) {
        stats.cost_usd = Some(stats.cost_usd.unwrap_or(0.0) + c);
    }
}

/// `error{AGENT_ERROR}` for an opencode error (workers.md §4.4).
pub fn agent_error(e: &ErrorInfo) -> Event {
    let message = e.data.message.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| e.name.clone());
    let mut details = json!({"worker_type": WORKER_TYPE, "name": e.name});
    if let Some(s) = e.data.status_code {
        details["status"] = json!(s);
    }
    if let Some(r) = e.data.is_retryable {
        details["retryable"] = json!(r);
    }
    Event::Error { code: ErrorCode::AgentError, message, event_id: None, details: Some(details) }
}

/// `error{AGENT_ERROR}` for a failed HTTP exchange with the server.
pub fn transport_error(message: &str, status: Option<u16>) -> Event {
    let mut details = json!({"worker_type": WORKER_TYPE, "subtype": "server_request_failed"});
    if let Some(s) = status {
        details["status"] = json!(s);
    }
    Event::Error { code: ErrorCode::AgentError, message: message.to_owned(), event_id: None, details: Some(details) }
}

/// The message of an error response body, if it has one.
pub fn error_message(body: &[u8]) -> Option<String> {
    let b: wire::ErrorBody = serde_json::from_slice(body).ok()?;
    b.message().map(str::to_owned).or(b.name)
}
