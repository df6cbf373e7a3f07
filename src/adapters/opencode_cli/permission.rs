//! The tool policy as opencode permission rules (workers.md §3.5,
//! security.md §7.2), and the `OPENCODE_CONFIG_CONTENT` document that
//! carries them merged with the operator's own opencode config.
//!
//! Owns: the table policy tool name → opencode permission key, what a client
//! list may name ([`client_tool_supported`], called by `policy`), the
//! allow/deny decision per key, and the merge. Must not: read files or the
//! environment (the operator's config arrives as a string), or ever write
//! `"ask"` — `opencode run` cannot relay a question, it auto-rejects it.
//!
//! Rules, in the order opencode evaluates them (the LAST matching rule wins,
//! so insertion order matters; opencode 1.18.33's own config docs):
//! 1. `"*": "deny"` — every permission the policy cannot name (MCP and
//!    plugin tools, `skill`, `lsp`, `question`, `external_directory`,
//!    `doom_loop`, future tools) is refused.
//! 2. the operator's own `permission` entries for such other keys, verbatim
//!    (an operator may open an opencode-only tool the AEP policy cannot name);
//! 3. one entry per mapped key: `"allow"` when a tool of the key is in the
//!    effective allow list and none is denied, else `"deny"`; Bash rules
//!    become a pattern object (`Bash(git log:*)` → `"git log"` and
//!    `"git log *"`), deny patterns after allow patterns; an allowed `edit`
//!    never covers [`PROTECTED_PATHS`].
//!
//! The operator's entries for `"*"` and for the mapped keys are dropped: the
//! tool policy (`security.tools.*` and the client's lists) decides those.
//! Every other top-level key of the operator's config (provider, model, mcp,
//! agent, …) is kept with its members in their order ([`OJson`]), with `autoupdate:false` and
//! `share:"disabled"` added when the operator did not set them.

use super::ojson::{OJson, quote};

/// opencode's wildcard permission key.
pub const ANY: &str = "*";
/// The permission keys the policy decides, in the order they are written.
pub const KEYS: [&str; 10] =
    ["bash", "edit", "read", "glob", "grep", "list", "webfetch", "websearch", "task", "todowrite"];
/// Top-level config entries added unless the operator set them.
pub const DEFAULTS: [(&str, &str); 2] = [("autoupdate", "false"), ("share", "\"disabled\"")];

/// Policy tool name (security.md §7) → opencode permission key (workers.md §3.5).
const TOOL_KEYS: [(&str, &str); 13] = [
    ("Bash", "bash"),
    ("Edit", "edit"),
    ("Write", "edit"),
    ("MultiEdit", "edit"),
    ("NotebookEdit", "edit"),
    ("Read", "read"),
    ("Glob", "glob"),
    ("Grep", "grep"),
    ("LS", "list"),
    ("WebFetch", "webfetch"),
    ("WebSearch", "websearch"),
    ("Task", "task"),
    ("TodoWrite", "todowrite"),
];

/// The only tool whose rule in parentheses opencode can express (as patterns).
const PATTERN_TOOL: &str = "Bash";

/// File paths the `edit` key never allows, even when the policy allows
/// editing: opencode loads plugins (code run inside opencode) from a work
/// dir's `.opencode/` even with `OPENCODE_DISABLE_PROJECT_CONFIG=1` (verified
/// with 1.18.33), and reads MCP servers from `opencode.json`. Without these
/// an agent allowed to edit but not to run commands could plant code for its
/// next turn. opencode's `*` also matches `/`, so they hold in subdirectories.
pub const PROTECTED_PATHS: [&str; 3] = ["*.opencode/*", "*opencode.json", "*opencode.jsonc"];

/// An opencode permission action. There is deliberately no `Ask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// The value of one permission key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `"allow"` / `"deny"` (shorthand for `{"*": …}`).
    Flat(Decision),
    /// `{pattern: action}` in evaluation order (last match wins).
    Patterns(Vec<(String, Decision)>),
}

/// `("Bash", Some("git log:*"))` for `Bash(git log:*)`.
fn split(tool: &str) -> (&str, Option<&str>) {
    match tool.find('(') {
        Some(i) if tool.ends_with(')') => (&tool[..i], Some(&tool[i + 1..tool.len() - 1])),
        _ => (tool, None),
    }
}

/// The opencode permission key of a bare policy tool name.
pub fn key_of(name: &str) -> Option<&'static str> {
    TOOL_KEYS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// Whether a client may list `tool` in `allowed_tools` / `disallowed_tools`
/// for an opencode session: a name of the table, with a rule in parentheses
/// only for Bash. Anything else (`mcp__*`, `Read(src/**)`, unknown names)
/// cannot be expressed → the caller answers CONFIG_INVALID.
pub fn client_tool_supported(tool: &str) -> bool {
    let (name, rule) = split(tool);
    key_of(name).is_some() && (rule.is_none() || name == PATTERN_TOOL)
}

/// The first entry of a client list opencode cannot express, if any.
pub fn first_unsupported(tools: &[String]) -> Option<&str> {
    tools.iter().map(String::as_str).find(|t| !client_tool_supported(t))
}

/// opencode wildcard patterns for a Claude-style Bash rule: `cmd:*` (the
/// command and any arguments) becomes `cmd` and `cmd *`; anything else is
/// used as written (`*` matches any characters in opencode).
pub fn bash_patterns(rule: &str) -> Vec<String> {
    match rule.strip_suffix(":*") {
        Some(prefix) if prefix.trim().is_empty() => vec![ANY.to_owned()],
        Some(prefix) => {
            let p = prefix.trim_end();
            vec![p.to_owned(), format!("{p} *")]
        }
        None => vec![rule.to_owned()],
    }
}

/// One rule per key of [`KEYS`] from the effective lists (LaunchSpec:
/// `allowed_tools` = usable without asking, `disallowed_tools` = never).
/// Deny wins. Server-side entries opencode cannot express fail closed: an
/// allow entry is ignored (the key stays denied), a deny entry with a
/// non-Bash rule denies its whole key; unknown names are already covered by
/// `"*": "deny"`.
pub fn rules(allowed: &[String], denied: &[String]) -> Vec<(&'static str, Rule)> {
    let mut out = Vec::with_capacity(KEYS.len());
    for key in KEYS {
        let mut allow_whole = false;
        let mut deny_whole = false;
        let mut allow_patterns: Vec<String> = Vec::new();
        let mut deny_patterns: Vec<String> = Vec::new();
        for (list, deny) in [(allowed, false), (denied, true)] {
            for tool in list {
                let (name, rule) = split(tool);
                if key_of(name) != Some(key) {
                    continue;
                }
                match (rule, deny, name == PATTERN_TOOL) {
                    (None, false, _) => allow_whole = true,
                    (None, true, _) => deny_whole = true,
                    (Some(r), false, true) => allow_patterns.extend(bash_patterns(r)),
                    (Some(r), true, true) => deny_patterns.extend(bash_patterns(r)),
                    (Some(_), false, false) => {
                        log::debug!("opencode_cli: allow rule {tool:?} cannot be expressed; {key} stays denied");
                    }
                    (Some(_), true, false) => deny_whole = true,
                }
            }
        }
        if deny_patterns.iter().any(|p| p == ANY) {
            deny_whole = true;
        }
        if key == "edit" {
            deny_patterns.extend(PROTECTED_PATHS.iter().map(|p| (*p).to_owned()));
        }
        let rule = if deny_whole {
            Rule::Flat(Decision::Deny)
        } else if allow_whole && deny_patterns.is_empty() {
            Rule::Flat(Decision::Allow)
        } else if allow_whole || !allow_patterns.is_empty() {
            let base = if allow_whole { Decision::Allow } else { Decision::Deny };
            let mut p = vec![(ANY.to_owned(), base)];
            if !allow_whole {
                p.extend(allow_patterns.into_iter().map(|s| (s, Decision::Allow)));
            }
            p.extend(deny_patterns.into_iter().map(|s| (s, Decision::Deny)));
            Rule::Patterns(p)
        } else {
            Rule::Flat(Decision::Deny)
        };
        out.push((key, rule));
    }
    out
}

fn rule_json(rule: &Rule) -> String {
    match rule {
        Rule::Flat(d) => quote(d.as_str()),
        Rule::Patterns(p) => {
            let body: Vec<String> = p.iter().map(|(pat, d)| format!("{}:{}", quote(pat), quote(d.as_str()))).collect();
            format!("{{{}}}", body.join(","))
        }
    }
}

/// Why the operator's config could not be used (logged; the gateway then
/// runs opencode with its own entries only: the policy is never dropped).
#[derive(Debug, PartialEq, Eq)]
pub struct BadOperatorConfig(pub String);

/// The `OPENCODE_CONFIG_CONTENT` value: the operator's config (if any, a
/// JSON object; JSONC comments are not accepted) with the policy's
/// `permission` section. On a bad operator config the document holds only
/// the gateway's entries and the reason is returned beside it.
pub fn config_content(
    operator: Option<&str>,
    allowed: &[String],
    denied: &[String],
) -> (String, Option<BadOperatorConfig>) {
    let (members, bad) = match operator.filter(|s| !s.trim().is_empty()).map(OJson::parse) {
        None => (Vec::new(), None),
        Some(Ok(OJson::Object(m))) => (m, None),
        Some(Ok(_)) => (Vec::new(), Some(BadOperatorConfig("not a JSON object".to_owned()))),
        Some(Err(e)) => (Vec::new(), Some(BadOperatorConfig(format!("not JSON: {e}")))),
    };
    let mut entries: Vec<String> = Vec::new();
    for (k, v) in DEFAULTS {
        if !members.iter().any(|(ok, _)| ok == k) {
            entries.push(format!("{}:{v}", quote(k)));
        }
    }
    let mut operator_rules: Vec<String> = Vec::new();
    for (k, v) in &members {
        if k != "permission" {
            entries.push(format!("{}:{}", quote(k), v.to_json()));
            continue;
        }
        let OJson::Object(p) = v else {
            log::warn!("opencode_cli: operator permission that is not an object replaced by the tool policy");
            continue;
        };
        for (pk, pv) in p {
            if pk == ANY || KEYS.contains(&pk.as_str()) {
                log::debug!("opencode_cli: operator permission {pk:?} replaced by the tool policy");
            } else {
                operator_rules.push(format!("{}:{}", quote(pk), pv.to_json()));
            }
        }
    }
    let mut perm = vec![format!("{}:{}", quote(ANY), quote(Decision::Deny.as_str()))];
    perm.extend(operator_rules);
    perm.extend(rules(allowed, denied).iter().map(|(k, r)| format!("{}:{}", quote(k), rule_json(r))));
    entries.push(format!("\"permission\":{{{}}}", perm.join(",")));
    (format!("{{{}}}", entries.join(",")), bad)
}
