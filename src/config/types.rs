//! The shape of the configuration: [`Config`] and one struct per top-level
//! section, field names exactly the YAML keys of operations.md §1.5, and their
//! built-in defaults (`Default` = §1.5; `configs/config.yaml` is tested against it).
//! The `workers` section lives in `types_workers.rs`, `security` and `limits` in
//! `types_security.rs`.
//!
//! Owns: key names, nesting, value types and defaults. Must not: validate
//! ranges or cross-field rules (`validate.rs`), touch the file system, or
//! read the environment. Conventions: durations are `Duration`, sizes `u64`
//! bytes, listeners `SocketAddr`; every struct denies unknown keys except the
//! user maps (`workers.*.env`, `log.targets`, `tracing.headers`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::resolve::Resolved;
use super::secret::{Secret, SecretValue};
use super::units::{self, Cidr};

pub use super::types_security::*;
pub use super::types_workers::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The whole, validated configuration. Obtain it through [`super::load`]; `Default`
/// gives the built-in defaults (not validated, commands not resolved).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub gateway: Gateway,
    pub admin: Admin,
    pub store: Store,
    pub sessions: Sessions,
    pub worker: Worker,
    pub workers: Workers,
    pub security: Security,
    pub limits: Limits,
    pub log: Log,
    pub tracing: Tracing,
    pub reload: Reload,
    /// Facts established while loading (resolved worker programs, `--dev`); not a YAML key.
    #[serde(skip)]
    pub(crate) resolved: Resolved,
}

/// `gateway:` — the WebSocket / session-API listener and its connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    /// [restart] `/ws`, `/api/…`, `/health`.
    #[serde(with = "units::listen")]
    pub listen: SocketAddr,
    /// [restart] 0 = auto: clamp(CPUs − 1, 1, 16).
    pub reactors: u32,
    /// Incl. pre-init; beyond → `GATEWAY_OVERLOAD`.
    pub max_connections: u32,
    #[serde(with = "units::duration")]
    pub handshake_timeout: Duration,
    #[serde(with = "units::duration")]
    pub init_timeout: Duration,
    #[serde(with = "units::size")]
    pub max_message_bytes: u64,
    #[serde(with = "units::size")]
    pub send_queue_bytes: u64,
    #[serde(with = "units::size")]
    pub send_queue_high_water: u64,
    #[serde(with = "units::duration")]
    pub ping_interval: Duration,
    pub missed_pongs: u32,
    #[serde(with = "units::duration")]
    pub reconnect_delay: Duration,
    #[serde(with = "units::duration")]
    pub reconnect_deadline: Duration,
    #[serde(with = "units::duration")]
    pub drain_timeout: Duration,
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
    pub emit_raw: bool,
    pub trusted_proxies: Vec<Cidr>,
    pub client_ip_header: String,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            listen: SocketAddr::from(([127, 0, 0, 1], 8888)),
            reactors: 0,
            max_connections: 10_000,
            handshake_timeout: secs(5),
            init_timeout: secs(10),
            max_message_bytes: MIB,
            send_queue_bytes: 4 * MIB,
            send_queue_high_water: MIB,
            ping_interval: secs(30),
            missed_pongs: 3,
            reconnect_delay: secs(2),
            reconnect_deadline: secs(10),
            drain_timeout: secs(10),
            shutdown_timeout: secs(30),
            emit_raw: false,
            trusted_proxies: Vec::new(),
            client_ip_header: "X-Forwarded-For".to_string(),
        }
    }
}

/// `admin:` — the admin listener (security.md §1.6, operations.md §4.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// [restart]
    #[serde(with = "units::listen")]
    pub listen: SocketAddr,
    pub tokens: Vec<AdminToken>,
    pub metrics_public: bool,
    pub health_public: bool,
    pub allowed_cidrs: Vec<Cidr>,
    pub allowed_origins: Vec<String>,
    pub allow_non_loopback: bool,
    #[serde(with = "units::size")]
    pub max_body_bytes: u64,
    pub max_connections: u32,
    #[serde(with = "units::duration")]
    pub request_timeout: Duration,
    pub rate_limit: AdminRateLimit,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 9999)),
            tokens: Vec::new(),
            metrics_public: false,
            health_public: true,
            allowed_cidrs: Vec::new(),
            allowed_origins: Vec::new(),
            allow_non_loopback: false,
            max_body_bytes: 64 * KIB,
            max_connections: 64,
            request_timeout: secs(10),
            rate_limit: AdminRateLimit::default(),
        }
    }
}

/// `admin.rate_limit`: token bucket per client IP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminRateLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

impl Default for AdminRateLimit {
    fn default() -> Self {
        AdminRateLimit { requests_per_second: 20, burst: 40 }
    }
}

/// One `admin.tokens[]` entry: `{name, scopes, env | file | sha256}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    pub name: String,
    /// `read`, `write`, `admin` or an alias of operations.md §4.1 (see [`AdminScope::parse`]).
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Secret>,
    /// Filled in by the loader from `env`/`file`/`sha256`; never serialised.
    #[serde(skip)]
    pub credential: Option<AdminCredential>,
}

impl AdminToken {
    /// The highest scope granted (scopes are hierarchical: admin ⊃ write ⊃ read).
    pub fn scope(&self) -> Option<AdminScope> {
        self.scopes.iter().filter_map(|s| AdminScope::parse(s)).max()
    }
}

/// What an admin token is compared against.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminCredential {
    /// The token itself (from `env` or `file`).
    Token(Secret),
    /// SHA-256 of the token (from `sha256`); only the digest is known.
    Sha256([u8; 32]),
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminCredential::Token(_) => f.write_str("Token(\"***\")"),
            AdminCredential::Sha256(_) => f.write_str("Sha256(\"***\")"),
        }
    }
}

/// Admin scopes, ordered `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminScope {
    Read,
    Write,
    Admin,
}

impl AdminScope {
    /// A scope name or one of the aliases accepted for existing deployments (operations.md §4.1).
    pub fn parse(s: &str) -> Option<AdminScope> {
        Some(match s {
            "read" | "session:read" | "session:list" | "stats:read" | "health:read" => AdminScope::Read,
            "write" | "session:write" | "session:delete" | "session:kill" => AdminScope::Write,
            "admin" | "config:read" | "admin:read" | "admin:write" | "debug:read" => AdminScope::Admin,
            _ => return None,
        })
    }
}

/// `store.synchronous`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

/// `store:` — SQLite storage (operations.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// [restart] Absolute after loading (relative paths resolve against the working directory).
    pub path: PathBuf,
    /// [restart] Reserved (PostgreSQL, later phase); must be empty in v1.
    pub url: String,
    pub auto_migrate: bool,
    pub synchronous: Synchronous,
    #[serde(with = "units::duration")]
    pub busy_timeout: Duration,
    pub read_connections: u32,
    pub queue_capacity: u32,
    pub batch_max_ops: u32,
    #[serde(with = "units::duration")]
    pub commit_interval: Duration,
    #[serde(with = "units::duration")]
    pub replay_retention: Duration,
    pub replay_retention_events: u64,
    #[serde(with = "units::duration")]
    pub retention: Duration,
    #[serde(with = "units::duration")]
    pub tombstone_retention: Duration,
    #[serde(with = "units::duration")]
    pub audit_retention: Duration,
    #[serde(with = "units::size")]
    pub journal_size_limit: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            path: PathBuf::from("data/hotplex.db"),
            url: String::new(),
            auto_migrate: true,
            synchronous: Synchronous::Normal,
            busy_timeout: secs(5),
            read_connections: 2,
            queue_capacity: 65_536,
            batch_max_ops: 1024,
            commit_interval: Duration::from_millis(5),
            replay_retention: secs(24 * 3600),
            replay_retention_events: 10_000,
            retention: secs(7 * 86_400),
            tombstone_retention: secs(30 * 86_400),
            audit_retention: secs(90 * 86_400),
            journal_size_limit: 64 * MIB,
        }
    }
}

/// `sessions:` — session counts and lifetimes (operations.md §2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// Live sessions; 0 = unlimited.
    pub max_total: u32,
    /// Live sessions per owner; 0 = unlimited.
    pub max_per_owner: u32,
    /// Stored sessions per owner incl. terminated; 0 = unlimited.
    pub max_stored_per_owner: u32,
    /// `0s` = never.
    #[serde(with = "units::duration")]
    pub idle_timeout: Duration,
    #[serde(with = "units::duration")]
    pub max_lifetime: Duration,
    #[serde(with = "units::duration")]
    pub gc_interval: Duration,
    /// hotplex addition: newest events kept in memory per session for replay.
    pub replay_buffer_events: u32,
    /// hotplex addition: byte bound of the in-memory replay window per session.
    #[serde(with = "units::size")]
    pub replay_buffer_bytes: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            max_total: 1000,
            max_per_owner: 10,
            max_stored_per_owner: 1000,
            idle_timeout: secs(30 * 60),
            max_lifetime: secs(24 * 3600),
            gc_interval: secs(60),
            replay_buffer_events: 1024,
            replay_buffer_bytes: 8 * MIB,
        }
    }
}

/// `worker:` — settings common to all worker processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Worker {
    #[serde(with = "units::duration")]
    pub kill_grace: Duration,
    /// `0s` = none.
    #[serde(with = "units::duration")]
    pub turn_timeout: Duration,
    /// `0s` = none.
    #[serde(with = "units::duration")]
    pub stall_timeout: Duration,
    #[serde(with = "units::duration")]
    pub permission_timeout: Duration,
    #[serde(with = "units::duration")]
    pub start_timeout: Duration,
    #[serde(with = "units::size")]
    pub max_line_bytes: u64,
    /// Absolute after loading; may contain `{owner_hash}`.
    pub work_dir_roots: Vec<PathBuf>,
    /// Absolute after loading; may contain `{owner_hash}` and `{session_id}`.
    pub default_work_dir: PathBuf,
    pub create_work_dir: bool,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            kill_grace: secs(5),
            turn_timeout: secs(60 * 60),
            stall_timeout: secs(10 * 60),
            permission_timeout: secs(5 * 60),
            start_timeout: secs(30),
            max_line_bytes: 10 * MIB,
            work_dir_roots: vec![PathBuf::from("/tmp/hotplex/workspace/{owner_hash}")],
            default_work_dir: PathBuf::from("/tmp/hotplex/workspace/{owner_hash}"),
            create_work_dir: true,
        }
    }
}

/// `log.level` and `log.targets.*` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// `log.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `log:` (operations.md §7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub level: LogLevel,
    pub format: LogFormat,
    /// Per-module levels (user map: keys are module paths, e.g. `hotplex::store`).
    pub targets: BTreeMap<String, LogLevel>,
    pub include_content: bool,
}

/// `tracing:` (operations.md §6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tracing {
    /// [restart] `http://host:port[/path]`; empty = off.
    pub otlp_endpoint: String,
    pub service_name: String,
    pub sample_ratio: f64,
    pub store_sample_ratio: f64,
    #[serde(with = "units::duration")]
    pub export_interval: Duration,
    pub max_queue_spans: u32,
    /// [restart] Extra HTTP headers (user map; values are secrets).
    pub headers: BTreeMap<String, SecretValue>,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            otlp_endpoint: String::new(),
            service_name: "hotplex".to_string(),
            sample_ratio: 1.0,
            store_sample_ratio: 0.01,
            export_interval: secs(2),
            max_queue_spans: 8192,
            headers: BTreeMap::new(),
        }
    }
}

/// `reload:` (operations.md §1.8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reload {
    /// Config file poll interval; `0s` = off.
    #[serde(with = "units::duration")]
    pub poll_interval: Duration,
}

impl Default for Reload {
    fn default() -> Self {
        Reload { poll_interval: secs(5) }
    }
}
