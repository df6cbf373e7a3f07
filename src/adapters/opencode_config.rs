//! What `opencode run` (opencode_cli) and `opencode serve` (opencode_server)
//! share: the fixed worker environment, the check on the ids opencode hands
//! out, and the tool policy written as an opencode `permission` config in
//! [`PERMISSION_ENV`] (workers.md §3.5, §3.7, §4.5; security.md §7.2).
//! Pure functions; no state, no I/O. Must not know either process model.

use serde_json::Value;

/// The variable opencode merges into `permission` after every other config
/// source (global and project files, `OPENCODE_CONFIG`,
/// `OPENCODE_CONFIG_CONTENT`; verified in the 1.18.33 binary), so the
/// gateway's rules win over a project `opencode.json` in the work dir and
/// leave the operator's `OPENCODE_CONFIG_CONTENT` (provider setup) alone.
pub const PERMISSION_ENV: &str = "OPENCODE_PERMISSION";
/// Fixed worker environment (workers.md §3.7): no update checks, no model
/// catalogue download, and no project config from the work dir (an
/// `opencode.json` or `.opencode/agent/*` there could carry per-agent
/// `permission` rules that override the gateway's top-level ones). An
/// operator may set `OPENCODE_DISABLE_PROJECT_CONFIG: "0"` in
/// `workers.opencode_*.env` to trust project configs.
pub const ENV: [(&str, &str); 3] = [
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
    ("OPENCODE_DISABLE_PROJECT_CONFIG", "1"),
];
/// Edits that could widen the policy or load code (project config, agents,
/// plugins) are denied whatever the lists say (opencode's `*` matches `/`).
pub const PROTECTED_PATHS: [&str; 3] = ["*.opencode/*", "*opencode.json", "*opencode.jsonc"];

/// Ids opencode hands out (`ses_…`, `per_…`) before they go into a URL path or argv.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

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
