//! `security:` and `limits:` — key names and defaults of security.md Appendix A
//! (= operations.md §1.5). The rules (S1–S16) are in `validate_security.rs`.
//!
//! Owns: shapes and defaults only. Must not: check policy or fetch secrets.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::types_workers::PermissionMode;
use super::units::{self, Umask};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `security.auth.modes` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    None,
    ApiKey,
    Jwt,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::ApiKey => "api_key",
            AuthMode::Jwt => "jwt",
        }
    }
}

/// `security.tools.system_prompt`: how a client `system_prompt` is treated (security.md §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SystemPromptPolicy {
    Deny,
    #[default]
    Append,
    Replace,
}

/// `security:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    pub dev_mode: bool,
    pub auth: Auth,
    pub api_keys: Vec<ApiKey>,
    pub jwt: Jwt,
    pub allowed_origins: Vec<String>,
    pub allow_plaintext_public: bool,
    pub worker: SecurityWorker,
    pub env: SecurityEnv,
    pub models: Models,
    pub tools: Tools,
    pub ssrf: Ssrf,
    pub audit: Audit,
}

/// `security.auth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub modes: Vec<AuthMode>,
    pub allow_query_credentials: bool,
}

impl Default for Auth {
    fn default() -> Self {
        Auth { modes: vec![AuthMode::Jwt], allow_query_credentials: true }
    }
}

/// One `security.api_keys[]` entry: `{owner, env | file | key}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Inline key: only with `security.dev_mode` (S4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// Filled in by the loader; never serialised.
    #[serde(skip)]
    pub value: Option<Secret>,
}

/// One `security.jwt.public_keys[]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtPublicKey {
    pub kid: String,
    pub file: PathBuf,
}

/// `security.jwt` (security.md §1.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Jwt {
    pub public_keys: Vec<JwtPublicKey>,
    /// Empty = none.
    pub jwks_file: PathBuf,
    /// String or list; empty = not checked.
    #[serde(deserialize_with = "one_or_many")]
    pub issuer: Vec<String>,
    /// String or list; required in jwt mode (S3).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    #[serde(with = "units::duration")]
    pub leeway: Duration,
    #[serde(with = "units::size")]
    pub max_token_bytes: u64,
    /// `0s` = off.
    #[serde(with = "units::duration")]
    pub max_lifetime: Duration,
    pub default_scopes: Vec<String>,
    pub require_scopes: bool,
    pub close_on_expiry: bool,
}

impl Default for Jwt {
    fn default() -> Self {
        Jwt {
            public_keys: Vec::new(),
            jwks_file: PathBuf::new(),
            issuer: Vec::new(),
            audience: Vec::new(),
            leeway: Duration::from_secs(30),
            max_token_bytes: 8192,
            max_lifetime: Duration::ZERO,
            default_scopes: strings(&["aep:drive", "aep:observe"]),
            require_scopes: false,
            close_on_expiry: false,
        }
    }
}

/// Accepts a string (one entry; `""` = none) or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(if v.is_empty() { Vec::new() } else { vec![v.to_string()] })
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `security.worker.run_as`: `{user}` or `{uid, gid, groups}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
}

/// `security.worker.uid_per_owner`: one uid per owner from a range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UidPerOwner {
    pub first_uid: u32,
    pub count: u32,
}

/// `security.worker` (security.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityWorker {
    /// `None` = the gateway's uid.
    pub run_as: Option<RunAs>,
    pub uid_per_owner: Option<UidPerOwner>,
    pub umask: Umask,
    pub private_home: bool,
    /// Empty = `<directory of store.path>/homes`.
    pub home_root: PathBuf,
    pub private_tmp: bool,
    /// Delegated cgroup v2 directory; empty = off.
    pub cgroup_root: PathBuf,
}

impl Default for SecurityWorker {
    fn default() -> Self {
        SecurityWorker {
            run_as: None,
            uid_per_owner: None,
            umask: Umask(0o077),
            private_home: true,
            home_root: PathBuf::new(),
            private_tmp: true,
            cgroup_root: PathBuf::new(),
        }
    }
}

/// `security.env` (security.md §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityEnv {
    pub passthrough: Vec<String>,
    /// Worker PATH; empty = the gateway's PATH at startup, sanitised.
    pub path: String,
    pub deny: Vec<String>,
    pub allow_dangerous: Vec<String>,
}

impl Default for SecurityEnv {
    fn default() -> Self {
        SecurityEnv {
            passthrough: strings(&["LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ"]),
            path: String::new(),
            deny: Vec::new(),
            allow_dangerous: Vec::new(),
        }
    }
}

/// `security.models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Models {
    pub allowed: Vec<String>,
}

/// `security.tools` (security.md §7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
    pub permission_modes: Vec<PermissionMode>,
    pub system_prompt: SystemPromptPolicy,
    pub ignore_project_settings: bool,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            allowed: Vec::new(),
            denied: Vec::new(),
            permission_modes: vec![PermissionMode::Default, PermissionMode::Plan],
            system_prompt: SystemPromptPolicy::Append,
            ignore_project_settings: true,
        }
    }
}

/// `security.ssrf` (security.md §8.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Ssrf {
    /// `host:port`, `ip:port` or `cidr:port` entries exempt from the range block.
    pub allow: Vec<String>,
}

/// `security.audit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    pub log_auth_success: bool,
}

/// `limits:` (security.md §9). A 0 is refused (S15) except in `limits.worker` (0 = not set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    #[serde(with = "units::size")]
    pub max_input_bytes: u64,
    pub max_json_depth: u32,
    #[serde(with = "units::size")]
    pub max_id_bytes: u64,
    #[serde(with = "units::size")]
    pub max_model_bytes: u64,
    pub max_tools: u32,
    #[serde(with = "units::size")]
    pub max_work_dir_bytes: u64,
    #[serde(with = "units::size")]
    pub max_system_prompt_bytes: u64,
    #[serde(with = "units::size")]
    pub max_reason_bytes: u64,
    #[serde(with = "units::size")]
    pub max_metadata_bytes: u64,
    pub max_client_caps: u32,
    pub max_pending_permissions: u32,
    pub max_turns_ceiling: u32,
    #[serde(with = "units::size")]
    pub max_turn_output_bytes: u64,
    #[serde(with = "units::size")]
    pub max_total_send_queue_bytes: u64,
    #[serde(with = "units::size")]
    pub worker_stderr_tail_bytes: u64,
    #[serde(with = "units::duration")]
    pub write_stall_timeout: Duration,
    pub max_connections_per_ip: u32,
    pub max_preinit_connections: u32,
    pub max_preinit_per_ip: u32,
    pub max_connections_per_owner: u32,
    pub max_observers_per_session: u32,
    pub max_spawns_per_second: u32,
    #[serde(with = "units::size")]
    pub http_max_request_line_bytes: u64,
    #[serde(with = "units::size")]
    pub http_max_header_bytes: u64,
    pub http_max_headers: u32,
    pub auth_failures_per_ip: u32,
    #[serde(with = "units::duration")]
    pub auth_failure_window: Duration,
    #[serde(with = "units::duration")]
    pub auth_lockout: Duration,
    pub rate: Rate,
    pub worker: Rlimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 512 * 1024,
            max_json_depth: 32,
            max_id_bytes: 128,
            max_model_bytes: 128,
            max_tools: 64,
            max_work_dir_bytes: 4096,
            max_system_prompt_bytes: 64 * 1024,
            max_reason_bytes: 1024,
            max_metadata_bytes: 16 * 1024,
            max_client_caps: 64,
            max_pending_permissions: 8,
            max_turns_ceiling: 200,
            max_turn_output_bytes: 256 << 20,
            max_total_send_queue_bytes: 1 << 30,
            worker_stderr_tail_bytes: 64 * 1024,
            write_stall_timeout: Duration::from_secs(10),
            max_connections_per_ip: 64,
            max_preinit_connections: 512,
            max_preinit_per_ip: 16,
            max_connections_per_owner: 64,
            max_observers_per_session: 16,
            max_spawns_per_second: 10,
            http_max_request_line_bytes: 8192,
            http_max_header_bytes: 16384,
            http_max_headers: 64,
            auth_failures_per_ip: 10,
            auth_failure_window: Duration::from_secs(300),
            auth_lockout: Duration::from_secs(300),
            rate: Rate::default(),
            worker: Rlimits::default(),
        }
    }
}

/// `limits.rate`: token buckets, capacity = burst, refill = rate (security.md §9.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rate {
    pub conn_frames_per_sec: u32,
    pub conn_burst: u32,
    pub owner_frames_per_sec: u32,
    pub owner_burst: u32,
    pub control_per_sec: u32,
    pub control_burst: u32,
    pub handshakes_per_ip_per_sec: u32,
    pub handshakes_burst: u32,
    pub inputs_per_min_per_owner: u32,
    pub session_creates_per_min_per_owner: u32,
    pub api_requests_per_sec: u32,
    pub api_burst: u32,
    pub throttle_threshold: f64,
    pub max_violations_per_min: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            conn_frames_per_sec: 20,
            conn_burst: 60,
            owner_frames_per_sec: 50,
            owner_burst: 100,
            control_per_sec: 5,
            control_burst: 10,
            handshakes_per_ip_per_sec: 5,
            handshakes_burst: 20,
            inputs_per_min_per_owner: 30,
            session_creates_per_min_per_owner: 20,
            api_requests_per_sec: 10,
            api_burst: 20,
            throttle_threshold: 0.2,
            max_violations_per_min: 100,
        }
    }
}

/// `limits.worker`: rlimits set in the worker child; 0 = not set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rlimits {
    #[serde(with = "units::size")]
    pub rlimit_as_bytes: u64,
    pub rlimit_nproc: u64,
    pub rlimit_cpu_seconds: u64,
    pub rlimit_nofile: u64,
    #[serde(with = "units::size")]
    pub rlimit_core_bytes: u64,
}

impl Default for Rlimits {
    fn default() -> Self {
        Rlimits {
            rlimit_as_bytes: 0,
            rlimit_nproc: 0,
            rlimit_cpu_seconds: 0,
            rlimit_nofile: 4096,
            rlimit_core_bytes: 0,
        }
    }
}
