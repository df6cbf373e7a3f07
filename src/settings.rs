//! The runtime view of the configuration: exactly what the reactors, the
//! spawner and the sessions need, precomputed and typed (sizes as `usize`,
//! worker programs resolved, policy compiled). Built once from a validated
//! `Config` (see `from_config`) and shared read-only as `Arc<Settings>`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::adapters::WorkerType;
use crate::net::http::HeadLimits;
use crate::policy::Policy;
use crate::protocol::DecodeLimits;
use crate::ws::handshake::UpgradePolicy;

/// Per-session limits and GC rules.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    pub max_total: usize,
    pub max_per_owner: usize,
    pub max_observers: usize,
    pub replay_events: usize,
    pub replay_bytes: usize,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub gc_interval: Duration,
}

/// Worker supervision knobs.
#[derive(Clone, Debug)]
pub struct WorkerLimits {
    pub kill_grace: Duration,
    pub turn_timeout: Option<Duration>,
    pub stall_timeout: Option<Duration>,
    pub permission_timeout: Duration,
    pub max_line_bytes: usize,
    pub max_turn_output_bytes: u64,
    pub stderr_tail_bytes: usize,
    pub max_pending_permissions: usize,
}

/// One enabled worker type.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Canonical absolute path of the binary (resolved once at startup).
    pub program: PathBuf,
    /// `workers.<type>.args`, appended after the adapter's own arguments.
    pub args: Vec<String>,
    /// Configured additions and passthrough values, resolved (row 3 and 4 of
    /// security.md §5.1).
    pub env: Vec<(String, String)>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub mcp_config: Option<PathBuf>,
    /// `CLAUDE_CONFIG_DIR` / `PI_CODING_AGENT_DIR` template (`{owner_hash}` allowed).
    pub state_dir: Option<String>,
}

/// Where workers live on disk and what they may see.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// `worker.work_dir_roots` templates.
    pub work_dir_roots: Vec<String>,
    /// `worker.default_work_dir` template.
    pub default_work_dir: String,
    pub create_work_dir: bool,
    /// Root of per-owner HOME dirs.
    pub home_root: PathBuf,
    pub private_home: bool,
    /// Root of per-session TMPDIRs (`None` = off).
    pub tmp_root: Option<PathBuf>,
    pub umask: u32,
    /// (resource, value) pairs for setrlimit in the child.
    pub rlimits: Vec<(i32, u64)>,
    /// Rows 1–2 of security.md §5.1: base passthrough values and PATH, USER…
    pub base_env: Vec<(String, String)>,
    /// Names that must never reach a worker (gateway secrets, deny list).
    pub denied_env: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub reactors: usize,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub init_timeout: Duration,
    pub ping_interval: Duration,
    pub missed_pongs: u32,
    pub max_message_bytes: usize,
    pub send_queue_bytes: usize,
    pub send_queue_high_water: usize,
    pub emit_raw: bool,
    pub reconnect_delay: Duration,
    pub head_limits: HeadLimits,
    pub decode: DecodeLimits,
    pub upgrade: UpgradePolicy,
    pub sessions: SessionLimits,
    pub worker: WorkerLimits,
    pub policy: Policy,
    pub workers: HashMap<WorkerType, WorkerSettings>,
    pub sandbox: Sandbox,
}

impl Settings {
    pub fn worker(&self, t: WorkerType) -> Option<&WorkerSettings> {
        self.workers.get(&t)
    }
}
