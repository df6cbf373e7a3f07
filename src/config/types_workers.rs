//! `workers:` — one struct per agent CLI (operations.md §1.5; flags: workers.md).
//!
//! Owns: the per-type key names and defaults. Must not: resolve commands
//! (`resolve.rs` does that once per load) or build command lines (adapters do).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::SecretValue;
use super::units::Enabled;
use crate::adapters::WorkerType;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn version_args() -> Vec<String> {
    strings(&["--version"])
}

/// Claude Code permission modes (security.md §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PermissionMode {
    #[default]
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "acceptEdits")]
    AcceptEdits,
    #[serde(rename = "plan")]
    Plan,
    #[serde(rename = "dontAsk")]
    DontAsk,
    #[serde(rename = "bypassPermissions")]
    BypassPermissions,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Plan => "plan",
            PermissionMode::DontAsk => "dontAsk",
            PermissionMode::BypassPermissions => "bypassPermissions",
        }
    }
}

/// `workers:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Workers {
    pub claude_code: ClaudeCode,
    pub opencode_cli: OpencodeCli,
    pub opencode_server: OpencodeServer,
    pub acpx: Acpx,
    pub pi: Pi,
}

impl Workers {
    /// The `enabled` switch of a worker type.
    pub fn enabled(&self, t: WorkerType) -> Enabled {
        match t {
            WorkerType::ClaudeCode => self.claude_code.enabled,
            WorkerType::OpencodeCli => self.opencode_cli.enabled,
            WorkerType::OpencodeServer => self.opencode_server.enabled,
            WorkerType::Acpx => self.acpx.enabled,
            WorkerType::Pi => self.pi.enabled,
        }
    }

    /// Extra environment (`workers.<type>.env`) of a worker type.
    pub fn env(&self, t: WorkerType) -> &BTreeMap<String, SecretValue> {
        match t {
            WorkerType::ClaudeCode => &self.claude_code.env,
            WorkerType::OpencodeCli => &self.opencode_cli.env,
            WorkerType::OpencodeServer => &self.opencode_server.env,
            WorkerType::Acpx => &self.acpx.env,
            WorkerType::Pi => &self.pi.env,
        }
    }

    /// `workers.<type>.env_passthrough` of a worker type.
    pub fn env_passthrough(&self, t: WorkerType) -> &[String] {
        match t {
            WorkerType::ClaudeCode => &self.claude_code.env_passthrough,
            WorkerType::OpencodeCli => &self.opencode_cli.env_passthrough,
            WorkerType::OpencodeServer => &self.opencode_server.env_passthrough,
            WorkerType::Acpx => &self.acpx.env_passthrough,
            WorkerType::Pi => &self.pi.env_passthrough,
        }
    }

    /// `workers.<type>.version_args` of a worker type.
    pub fn version_args(&self, t: WorkerType) -> &[String] {
        match t {
            WorkerType::ClaudeCode => &self.claude_code.version_args,
            WorkerType::OpencodeCli => &self.opencode_cli.version_args,
            WorkerType::OpencodeServer => &self.opencode_server.version_args,
            WorkerType::Acpx => &self.acpx.version_args,
            WorkerType::Pi => &self.pi.version_args,
        }
    }

    /// The configured commands of a worker type, as (key path, command):
    /// one for most types, one per `workers.acpx.agents` entry for acpx.
    pub fn commands(&self, t: WorkerType) -> Vec<(String, String)> {
        let one = |cmd: &String| vec![(format!("workers.{}.command", t.as_str()), cmd.clone())];
        match t {
            WorkerType::ClaudeCode => one(&self.claude_code.command),
            WorkerType::OpencodeCli => one(&self.opencode_cli.command),
            WorkerType::OpencodeServer => one(&self.opencode_server.command),
            WorkerType::Pi => one(&self.pi.command),
            WorkerType::Acpx => self
                .acpx
                .agents
                .iter()
                .map(|(name, agent)| (format!("workers.acpx.agents.{name}.command"), agent.command.clone()))
                .collect(),
        }
    }
}

/// `workers.claude_code` (workers.md §2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaudeCode {
    pub enabled: Enabled,
    pub command: String,
    /// Appended after the adapter's own arguments.
    pub args: Vec<String>,
    pub env: BTreeMap<String, SecretValue>,
    pub env_passthrough: Vec<String>,
    pub version_args: Vec<String>,
    pub model: String,
    /// Must be one of `security.tools.permission_modes`.
    pub permission_mode: PermissionMode,
    /// `--mcp-config` path; empty = not passed.
    pub mcp_config: PathBuf,
    /// `CLAUDE_CONFIG_DIR` (`{owner_hash}` allowed); empty = unset.
    pub config_dir: PathBuf,
}

impl Default for ClaudeCode {
    fn default() -> Self {
        ClaudeCode {
            enabled: Enabled::False,
            command: "claude".to_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_passthrough: strings(&[
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_AUTH_TOKEN",
                "ANTHROPIC_BASE_URL",
                "ANTHROPIC_MODEL",
            ]),
            version_args: version_args(),
            model: String::new(),
            permission_mode: PermissionMode::Default,
            mcp_config: PathBuf::new(),
            config_dir: PathBuf::new(),
        }
    }
}

fn opencode_passthrough() -> Vec<String> {
    strings(&["OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENCODE_CONFIG"])
}

/// `workers.opencode_cli` (workers.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpencodeCli {
    pub enabled: Enabled,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, SecretValue>,
    pub env_passthrough: Vec<String>,
    pub version_args: Vec<String>,
    /// `provider/model`.
    pub model: String,
    pub agent: String,
}

impl Default for OpencodeCli {
    fn default() -> Self {
        OpencodeCli {
            enabled: Enabled::False,
            command: "opencode".to_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_passthrough: opencode_passthrough(),
            version_args: version_args(),
            model: String::new(),
            agent: String::new(),
        }
    }
}

/// `workers.opencode_server` (workers.md §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpencodeServer {
    pub enabled: Enabled,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, SecretValue>,
    pub env_passthrough: Vec<String>,
    pub version_args: Vec<String>,
    pub model: String,
    /// Prompt body `agent` (workers.md §4.2).
    pub agent: String,
    /// `opencode serve` bind address (loopback only).
    pub hostname: String,
    /// 0 = the gateway picks a free port per server process.
    pub port: u16,
    /// true: one managed server per owner (not supported by this build,
    /// refused when the worker is enabled); false: one per session.
    pub shared: bool,
}

impl Default for OpencodeServer {
    fn default() -> Self {
        OpencodeServer {
            enabled: Enabled::False,
            command: "opencode".to_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_passthrough: opencode_passthrough(),
            version_args: version_args(),
            model: String::new(),
            agent: String::new(),
            hostname: "127.0.0.1".to_string(),
            port: 0,
            shared: false,
        }
    }
}

/// One `workers.acpx.agents.<name>` entry: an installed ACP agent command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcpxAgent {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// `workers.acpx` (workers.md §5): ACP spoken directly to an ACP agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Acpx {
    pub enabled: Enabled,
    /// The agent every acpx session uses (config only; clients cannot pick).
    pub agent: String,
    /// Agent name → command (user map). A file that sets `agents` replaces the default map.
    pub agents: BTreeMap<String, AcpxAgent>,
    pub env: BTreeMap<String, SecretValue>,
    pub env_passthrough: Vec<String>,
    pub version_args: Vec<String>,
}

impl Default for Acpx {
    fn default() -> Self {
        let mut agents = BTreeMap::new();
        agents.insert("claude".to_string(), AcpxAgent { command: "claude-code-acp".to_string(), args: Vec::new() });
        agents.insert("opencode".to_string(), AcpxAgent { command: "opencode".to_string(), args: strings(&["acp"]) });
        Acpx {
            enabled: Enabled::False,
            agent: "claude".to_string(),
            agents,
            env: BTreeMap::new(),
            env_passthrough: strings(&["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"]),
            version_args: version_args(),
        }
    }
}

/// `workers.pi` (workers.md §6; init worker_type `pi` or alias `pi-mono`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pi {
    pub enabled: Enabled,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, SecretValue>,
    pub env_passthrough: Vec<String>,
    pub version_args: Vec<String>,
    pub mode: String,
    pub provider: String,
    pub model: String,
    /// `PI_CODING_AGENT_DIR` (`{owner_hash}` allowed); empty = unset.
    pub agent_dir: PathBuf,
    /// Tools the permission-gate extension asks for; empty = never ask.
    pub gated_tools: Vec<String>,
    /// Must be true to enable pi (security.md §7.2).
    pub unrestricted_tools: bool,
}

impl Default for Pi {
    fn default() -> Self {
        Pi {
            enabled: Enabled::False,
            command: "pi".to_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_passthrough: strings(&["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"]),
            version_args: version_args(),
            mode: "rpc".to_string(),
            provider: String::new(),
            model: String::new(),
            agent_dir: PathBuf::new(),
            gated_tools: strings(&["bash", "write", "edit"]),
            unrestricted_tools: false,
        }
    }
}
