//! Pure mappings between gateway values and `opencode serve` values
//! (workers.md §3.5, §4.1, §4.2, §4.4, §4.5): the command line, the
//! environment, the tool policy as an opencode `permission` config, request
//! bodies and paths, `done.stats`, AGENT_ERROR events and permission
//! requests/answers. No state lives here.

use serde_json::{Value, json};

use crate::adapters::{PermissionAsk, PermissionReply};
use crate::protocol::{ErrorCode, Event, Stats};

use super::wire::{self, ErrorInfo, PermissionAsked, StepFinish};

/// `worker_type` in error details.
pub const WORKER_TYPE: &str = "opencode_server";
/// HTTP Basic user opencode expects (workers.md §4.1).
pub const BASIC_USER: &str = "opencode";
/// The variable opencode reads its server password from.
pub const PASSWORD_ENV: &str = "OPENCODE_SERVER_PASSWORD";
/// The variable opencode merges into `permission` after every other config
/// source (global and project files, `OPENCODE_CONFIG`,
/// `OPENCODE_CONFIG_CONTENT`; verified in the 1.18.33 binary), so the
/// gateway's rules win over a project `opencode.json` in the work dir and
/// leave the operator's `OPENCODE_CONFIG_CONTENT` (provider setup) alone.
pub const PERMISSION_ENV: &str = "OPENCODE_PERMISSION";
/// Start of the stdout line printed once the server accepts connections.
pub const LISTENING: &[u8] = b"opencode server listening";
/// Fixed worker environment (workers.md §3.7): no update checks, no model
/// catalogue download, and no project config from the work dir (an
/// `opencode.json` or `.opencode/agent/*` there could carry per-agent
/// `permission` rules that override the gateway's top-level ones). An
/// operator may set `OPENCODE_DISABLE_PROJECT_CONFIG: "0"` in
/// `workers.opencode_server.env` to trust project configs.
pub const ENV: [(&str, &str); 3] = [
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
    ("OPENCODE_DISABLE_PROJECT_CONFIG", "1"),
];
/// Edits that could widen the policy or load code (project config, agents,
/// plugins) are denied whatever the lists say (opencode's `*` matches `/`).
pub const PROTECTED_PATHS: [&str; 3] = ["*.opencode/*", "*opencode.json", "*opencode.jsonc"];
/// Deny message when the client gave no reason: opencode ends the turn after
/// a reject without message, so one is always sent (workers.md §4.5).
pub const DEFAULT_DENY_MESSAGE: &str = "Denied by user";

/// `opencode serve --hostname=127.0.0.1 --port=<p>` (one argv element per
/// flag and value, security.md §4). The server binds loopback only; the
/// gateway's managed endpoint is exactly this pair.
pub fn args(port: u16) -> Vec<String> {
    vec!["serve".to_owned(), "--hostname=127.0.0.1".to_owned(), format!("--port={port}")]
}

/// Ids opencode hands out (`ses_…`, `per_…`) before they go into a URL path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `provider/model` → (`providerID`, `modelID`); `None` if there is no provider part.
pub fn split_model(model: &str) -> Option<(&str, &str)> {
    model.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty())
}

// ------------------------------------------------------------ permissions

/// opencode permission keys, in the order they are written.
pub const PERMISSION_KEYS: [&str; 10] =
    ["read", "edit", "glob", "grep", "list", "bash", "task", "webfetch", "websearch", "todowrite"];
/// Keys that take only a flat action, not a per-pattern object.
const FLAT_KEYS: [&str; 3] = ["webfetch", "websearch", "todowrite"];

/// The opencode permission key of a policy tool name (security.md §7,
/// workers.md §3.5) and its pattern: `Bash(git status:*)` →
/// (`bash`, `git status*`); `None` for a name opencode has no key for
/// (`mcp__*`, unknown tools).
pub fn permission_key(tool: &str) -> Option<(&'static str, Option<String>)> {
    let (name, pattern) = match tool.split_once('(') {
        Some((n, rest)) => (n, rest.strip_suffix(')').map(str::to_owned)),
        None => (tool, None),
    };
    let key = match name {
        "Bash" => "bash",
        "Edit" | "Write" | "MultiEdit" | "NotebookEdit" => "edit",
        "Read" => "read",
        "Glob" => "glob",
        "Grep" => "grep",
        "LS" => "list",
        "WebFetch" => "webfetch",
        "WebSearch" => "websearch",
        "Task" => "task",
        "TodoWrite" => "todowrite",
        _ => return None,
    };
    // Claude's prefix rule `cmd:*` is opencode's glob `cmd*`.
    let pattern = pattern.map(|p| match p.strip_suffix(":*") {
        Some(prefix) => format!("{prefix}*"),
        None => p,
    });
    Some((key, pattern.filter(|p| !p.is_empty())))
}

#[derive(Default)]
struct KeyRule {
    /// The action for the whole key (`None`: the default action).
    whole: Option<&'static str>,
    allow: Vec<String>,
    deny: Vec<String>,
}

/// The tool ceiling as an opencode `permission` object (security.md §7.1,
/// §7.2; workers.md §3.5). `relay`: permission requests reach the client
/// (opencode_server), so tools outside the allow list are `ask`; without a
/// relay (opencode_cli) they are `deny`. Allowed keys are `allow`, denied
/// keys `deny` (deny wins; a denied pattern is written after the allowed
/// ones, and opencode applies the last matching rule). `"*"` sets the
/// default for every permission opencode knows, including ones without a
/// policy name. With a relay, `question` is denied: the gateway cannot
/// carry opencode's interactive questions. Edits of
/// [`PROTECTED_PATHS`] are always denied. Names without a key are skipped
/// (client lists are refused earlier, security.md §7.5). Key order is kept.
pub fn permission_config(allowed: &[String], denied: &[String], relay: bool) -> String {
    let default = if relay { "ask" } else { "deny" };
    let mut rules: Vec<(&'static str, KeyRule)> = Vec::new();
    let mut apply = |tool: &str, deny: bool| {
        let Some((key, pattern)) = permission_key(tool) else {
            log::debug!("opencode: no permission key for tool {tool:?}; not expressible, skipped");
            return;
        };
        let i = match rules.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                rules.push((key, KeyRule::default()));
                rules.len() - 1
            }
        };
        let r = &mut rules[i].1;
        match (pattern, deny) {
            (None, true) => r.whole = Some("deny"),
            (None, false) if r.whole != Some("deny") => r.whole = Some("allow"),
            (None, false) => {}
            // A flat key cannot take a pattern: a denied pattern denies the key,
            // an allowed one leaves it asking.
            (Some(_), true) if FLAT_KEYS.contains(&key) => r.whole = Some("deny"),
            (Some(_), false) if FLAT_KEYS.contains(&key) => {}
            (Some(p), true) => r.deny.push(p),
            (Some(p), false) => r.allow.push(p),
        }
    };
    for t in allowed {
        apply(t, false);
    }
    for t in denied {
        apply(t, true);
    }
    let s = |v: &str| Value::String(v.to_owned()).to_string();
    let mut entries = vec![format!("{}:{}", s("*"), s(default))];
    for key in PERMISSION_KEYS {
        let empty = KeyRule::default();
        let r = match rules.iter().find(|(k, _)| *k == key) {
            Some((_, r)) => r,
            None if key == "edit" => &empty,
            None => continue,
        };
        let whole = r.whole.unwrap_or(default);
        let protect: &[&str] = if key == "edit" { &PROTECTED_PATHS } else { &[] };
        let value = if whole == "deny" || (r.allow.is_empty() && r.deny.is_empty() && protect.is_empty()) {
            s(whole)
        } else {
            let mut parts = vec![format!("{}:{}", s("*"), s(whole))];
            parts.extend(r.allow.iter().map(|p| format!("{}:{}", s(p), s("allow"))));
            parts.extend(r.deny.iter().map(|p| format!("{}:{}", s(p), s("deny"))));
            parts.extend(protect.iter().map(|p| format!("{}:{}", s(p), s("deny"))));
            format!("{{{}}}", parts.join(","))
        };
        entries.push(format!("{}:{value}", s(key)));
    }
    if relay {
        entries.push(format!("{}:{}", s("question"), s("deny")));
    }
    format!("{{{}}}", entries.join(","))
}

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
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
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
