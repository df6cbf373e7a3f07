//! Server policy for what a client may ask of a worker (security.md §4 argv
//! slots, §7 tool ceiling, permission modes, system prompt). Turns an
//! `init.config` into the effective launch values or a CONFIG_INVALID
//! reason. Pure: no I/O; work-dir confinement is checked by the spawner on
//! the opened directory.

pub mod env;

use crate::adapters::{LaunchSpec, SystemPromptMode, WorkerType};
use crate::protocol::InitConfig;

/// The permission modes AEP knows (security.md §7.2).
pub const PERMISSION_MODES: [&str; 5] = ["default", "acceptEdits", "plan", "dontAsk", "bypassPermissions"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemPromptPolicy {
    Deny,
    Append,
    Replace,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub models_allowed: Vec<String>,
    /// `S_allow`: tools usable without asking (server ceiling).
    pub tools_allowed: Vec<String>,
    /// `S_deny`: tools never usable.
    pub tools_denied: Vec<String>,
    pub permission_modes: Vec<String>,
    pub system_prompt: SystemPromptPolicy,
    pub max_model_bytes: usize,
    pub max_tools: usize,
    pub max_work_dir_bytes: usize,
    pub max_system_prompt_bytes: usize,
    pub max_turns_ceiling: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            models_allowed: vec![],
            tools_allowed: vec![],
            tools_denied: vec![],
            permission_modes: vec!["default".into(), "plan".into()],
            system_prompt: SystemPromptPolicy::Append,
            max_model_bytes: 128,
            max_tools: 64,
            max_work_dir_bytes: 4096,
            max_system_prompt_bytes: 64 * 1024,
            max_turns_ceiling: 200,
        }
    }
}

/// A refused `init.config`: the log reason (never sent to the client, which
/// only sees a generic message per key).
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// Client-facing message, e.g. `init.config.model not allowed`.
    pub message: String,
}

fn refused(key: &str) -> Refused {
    Refused { message: format!("init.config.{key} not allowed") }
}

/// What an adapter honours from `init.config` (workers.md §7.1, security.md §7.2).
#[derive(Clone, Copy, Debug)]
struct Support {
    tools: bool,
    modes: bool,
    system_prompt: bool,
    max_turns: bool,
}

fn support(t: WorkerType) -> Support {
    match t {
        WorkerType::ClaudeCode => Support { tools: true, modes: true, system_prompt: true, max_turns: true },
        // `opencode run` has no system-prompt flag; its config `instructions`
        // takes file paths, not text (workers.md §7.1 marks it UNVERIFIED).
        WorkerType::OpencodeCli => Support { tools: true, modes: false, system_prompt: false, max_turns: false },
        WorkerType::OpencodeServer => Support { tools: true, modes: false, system_prompt: true, max_turns: false },
        WorkerType::Acpx => Support { tools: false, modes: false, system_prompt: false, max_turns: false },
        WorkerType::Pi => Support { tools: false, modes: false, system_prompt: true, max_turns: false },
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$`
fn valid_model(m: &str, max: usize) -> bool {
    let b = m.as_bytes();
    !b.is_empty()
        && b.len() <= max.min(128)
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._:/@+-".contains(c))
}

/// `^[A-Za-z][A-Za-z0-9_-]{0,127}(\([^(),\x00-\x1f\x7f]{1,200}\))?$`
pub fn valid_tool(t: &str) -> bool {
    let (name, rule) = match t.find('(') {
        Some(i) => (&t[..i], Some(&t[i..])),
        None => (t, None),
    };
    let nb = name.as_bytes();
    let name_ok = !nb.is_empty()
        && nb.len() <= 128
        && nb[0].is_ascii_alphabetic()
        && nb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    let rule_ok = match rule {
        None => true,
        Some(r) => {
            r.len() >= 3
                && r.ends_with(')')
                && r[1..r.len() - 1].chars().count() <= 200
                && !r[1..r.len() - 1].chars().any(|c| matches!(c, '(' | ')' | ',') || (c as u32) < 0x20 || c == '\x7f')
        }
    };
    name_ok && rule_ok
}

/// `covered(c)`: c = s, or s is a bare name T and c = T(…), or s = mcp__X__* and c starts with mcp__X__.
pub fn covered(c: &str, s: &str) -> bool {
    if c == s {
        return true;
    }
    if let Some(prefix) = s.strip_suffix('*') {
        return s.starts_with("mcp__") && c.starts_with(prefix);
    }
    !s.contains('(') && c.strip_prefix(s).is_some_and(|rest| rest.starts_with('('))
}

impl Policy {
    /// Whether `remember:true` may widen the session's allow list for `tool`.
    pub fn may_remember(&self, tool: &str) -> bool {
        self.tools_allowed.iter().any(|s| covered(tool, s)) && !self.tools_denied.iter().any(|d| covered(tool, d))
    }

    /// Validate `init.config` for `worker_type` and fill the launch values.
    /// `default_model` / `default_mode` come from `workers.<type>`.
    pub fn apply(
        &self,
        cfg: Option<&InitConfig>,
        worker_type: WorkerType,
        default_model: Option<&str>,
        default_mode: Option<&str>,
    ) -> Result<(LaunchSpec, Option<String>), Refused> {
        let empty = InitConfig::default();
        let c = cfg.unwrap_or(&empty);
        let sup = support(worker_type);
        let mut spec = LaunchSpec::default();

        if let Some(m) = &c.model {
            if !valid_model(m, self.max_model_bytes) {
                return Err(refused("model"));
            }
            if !self.models_allowed.is_empty() && !self.models_allowed.iter().any(|a| a == m) {
                return Err(refused("model"));
            }
            // opencode_server sends the model as {providerID, modelID} (workers.md §7.1).
            if worker_type == WorkerType::OpencodeServer && !m.contains('/') {
                return Err(refused("model"));
            }
            spec.model = Some(m.clone());
        } else {
            spec.model = default_model.filter(|m| !m.is_empty()).map(str::to_owned);
        }

        if let Some(p) = &c.system_prompt {
            if self.system_prompt == SystemPromptPolicy::Deny || !sup.system_prompt {
                return Err(refused("system_prompt"));
            }
            if p.len() > self.max_system_prompt_bytes || p.contains('\0') {
                return Err(refused("system_prompt"));
            }
            spec.system_prompt = Some(p.clone());
            spec.system_prompt_mode = Some(match self.system_prompt {
                SystemPromptPolicy::Replace => SystemPromptMode::Replace,
                _ => SystemPromptMode::Append,
            });
        }

        for (key, list) in [("allowed_tools", &c.allowed_tools), ("disallowed_tools", &c.disallowed_tools)] {
            if let Some(l) = list {
                if !sup.tools || l.len() > self.max_tools || !l.iter().all(|t| valid_tool(t)) {
                    return Err(refused(key));
                }
                // A name opencode has no permission key for cannot be enforced (workers.md §3.5).
                let opencode = matches!(worker_type, WorkerType::OpencodeServer | WorkerType::OpencodeCli);
                if opencode && l.iter().any(|t| crate::adapters::opencode_config::permission_key(t).is_none()) {
                    return Err(refused(key));
                }
            }
        }
        let mut deny: Vec<String> = self.tools_denied.clone();
        for d in c.disallowed_tools.iter().flatten() {
            if !deny.contains(d) {
                deny.push(d.clone());
            }
        }
        let allow: Vec<String> = match &c.allowed_tools {
            None => self.tools_allowed.iter().filter(|t| !deny.contains(t)).cloned().collect(),
            Some(client) => {
                if !client.iter().all(|t| self.tools_allowed.iter().any(|s| covered(t, s))) {
                    return Err(refused("allowed_tools"));
                }
                client.iter().filter(|t| !deny.contains(t)).cloned().collect()
            }
        };
        spec.allowed_tools = allow;
        spec.disallowed_tools = deny;

        let mode = match &c.permission_mode {
            Some(m) => {
                if !sup.modes
                    || !PERMISSION_MODES.contains(&m.as_str())
                    || !self.permission_modes.iter().any(|a| a == m)
                {
                    return Err(refused("permission_mode"));
                }
                Some(m.clone())
            }
            None => default_mode.filter(|m| !m.is_empty() && sup.modes).map(str::to_owned),
        };
        spec.permission_mode = mode;

        if let Some(n) = c.max_turns {
            if !sup.max_turns || n == 0 || n > self.max_turns_ceiling {
                return Err(refused("max_turns"));
            }
            spec.max_turns = Some(n);
        }

        let work_dir = match &c.work_dir {
            Some(w) if w.len() > self.max_work_dir_bytes || w.contains('\0') || w.is_empty() => {
                return Err(refused("work_dir"));
            }
            other => other.clone(),
        };
        Ok((spec, work_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(f: impl FnOnce(&mut InitConfig)) -> InitConfig {
        let mut c = InitConfig::default();
        f(&mut c);
        c
    }

    fn p(allowed: &[&str], denied: &[&str]) -> Policy {
        Policy {
            tools_allowed: allowed.iter().map(|s| s.to_string()).collect(),
            tools_denied: denied.iter().map(|s| s.to_string()).collect(),
            ..Policy::default()
        }
    }

    fn apply(p: &Policy, c: InitConfig) -> Result<LaunchSpec, Refused> {
        p.apply(Some(&c), WorkerType::ClaudeCode, None, Some("default")).map(|(s, _)| s)
    }

    #[test]
    fn tool_vectors() {
        let pol = p(&["Read", "Grep"], &[]);
        assert_eq!(apply(&pol, cfg(|c| c.allowed_tools = Some(vec!["Read".into()]))).unwrap().allowed_tools, ["Read"]);
        assert!(apply(&pol, cfg(|c| c.allowed_tools = Some(vec!["Read".into(), "Bash".into()]))).is_err());
        assert_eq!(apply(&pol, InitConfig::default()).unwrap().allowed_tools, ["Read", "Grep"]);
        let bash = p(&["Bash"], &[]);
        assert!(apply(&bash, cfg(|c| c.allowed_tools = Some(vec!["Bash(git status:*)".into()]))).is_ok());
        let narrow = p(&["Bash(git status:*)"], &[]);
        assert!(apply(&narrow, cfg(|c| c.allowed_tools = Some(vec!["Bash".into()]))).is_err());
        let deny = p(&[], &["WebFetch"]);
        let s = apply(&deny, cfg(|c| c.disallowed_tools = Some(vec!["Bash".into()]))).unwrap();
        assert_eq!(s.disallowed_tools, ["WebFetch", "Bash"]);
        let both = p(&["Read", "WebFetch"], &["WebFetch"]);
        assert_eq!(apply(&both, InitConfig::default()).unwrap().allowed_tools, ["Read"]);
        assert!(apply(&pol, cfg(|c| c.allowed_tools = Some(vec!["--dangerously-skip-permissions".into()]))).is_err());
        assert!(apply(&bash, cfg(|c| c.allowed_tools = Some(vec!["Bash(a,b)".into()]))).is_err());
        assert!(apply(&bash, cfg(|c| c.allowed_tools = Some(vec!["Bash".into(); 65]))).is_err());
    }

    #[test]
    fn model_vectors() {
        let pol = Policy::default();
        assert_eq!(
            apply(&pol, cfg(|c| c.model = Some("claude-sonnet-4-5".into()))).unwrap().model.as_deref(),
            Some("claude-sonnet-4-5")
        );
        for bad in ["--mcp-config=/tmp/x.json", "x; touch /tmp/pwned", "a b", "", &"m".repeat(129)] {
            assert!(apply(&pol, cfg(|c| c.model = Some(bad.into()))).is_err(), "{bad}");
        }
        let only = Policy { models_allowed: vec!["claude-sonnet-4-5".into()], ..Policy::default() };
        assert!(apply(&only, cfg(|c| c.model = Some("gpt-4o".into()))).is_err());
    }

    #[test]
    fn modes_turns_prompt() {
        let pol = Policy::default();
        assert!(apply(&pol, cfg(|c| c.permission_mode = Some("bypassPermissions".into()))).is_err());
        assert!(apply(&pol, cfg(|c| c.permission_mode = Some("auto-accept".into()))).is_err());
        let wide = Policy { permission_modes: vec!["default".into(), "bypassPermissions".into()], ..Policy::default() };
        assert!(apply(&wide, cfg(|c| c.permission_mode = Some("bypassPermissions".into()))).is_ok());
        for n in [0, 201] {
            assert!(apply(&pol, cfg(|c| c.max_turns = Some(n))).is_err());
        }
        assert!(apply(&pol, cfg(|c| c.max_turns = Some(5))).is_ok());
        let deny = Policy { system_prompt: SystemPromptPolicy::Deny, ..Policy::default() };
        assert!(apply(&deny, cfg(|c| c.system_prompt = Some("be terse".into()))).is_err());
        let s = apply(&pol, cfg(|c| c.system_prompt = Some("-be terse-".into()))).unwrap();
        assert_eq!(s.system_prompt_mode, Some(SystemPromptMode::Append));
    }

    #[test]
    fn opencode_server_tools_and_models_must_be_expressible() {
        let pol = p(&["Bash", "Read", "mcp__x__*"], &[]);
        let oc = |c: InitConfig| pol.apply(Some(&c), WorkerType::OpencodeServer, None, None).map(|(s, _)| s);
        assert!(oc(cfg(|c| c.allowed_tools = Some(vec!["Bash(git status:*)".into(), "Read".into()]))).is_ok());
        assert!(oc(cfg(|c| c.allowed_tools = Some(vec!["mcp__x__tool".into()]))).is_err());
        assert!(oc(cfg(|c| c.disallowed_tools = Some(vec!["NoSuchTool".into()]))).is_err());
        assert!(oc(cfg(|c| c.disallowed_tools = Some(vec!["WebFetch".into()]))).is_ok());
        assert!(oc(cfg(|c| c.model = Some("anthropic/claude-sonnet-4-5".into()))).is_ok());
        assert!(oc(cfg(|c| c.model = Some("claude-sonnet-4-5".into()))).is_err());
        // claude has no such rule
        assert!(apply(&pol, cfg(|c| c.allowed_tools = Some(vec!["mcp__x__tool".into()]))).is_ok());
    }

    #[test]
    fn remember_needs_ceiling() {
        assert!(!Policy::default().may_remember("Bash"));
        assert!(p(&["Bash"], &[]).may_remember("Bash"));
        assert!(p(&["mcp__x__*"], &[]).may_remember("mcp__x__tool"));
    }
}
