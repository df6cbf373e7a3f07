//! The runtime view of the configuration: exactly what the reactors, the
//! spawner and the sessions need, precomputed and typed (sizes as `usize`,
//! worker programs resolved, policy compiled). Built once from a validated
//! `Config` (see `from_config`) and shared read-only as `Arc<Settings>`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::adapters::{AdapterConfig, WorkerType};
use crate::net::http::HeadLimits;
use crate::policy::Policy;
use crate::protocol::DecodeLimits;
use crate::ws::handshake::UpgradePolicy;

/// Per-session limits and GC rules.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    pub max_total: usize,
    pub max_per_owner: usize,
    /// Stored sessions (incl. terminated) per owner; 0 = unlimited.
    pub max_stored_per_owner: usize,
    pub max_observers: usize,
    pub replay_events: usize,
    pub replay_bytes: usize,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub gc_interval: Duration,
    /// Terminated sessions are forgotten this long after termination (`store.retention`).
    pub retention: Duration,
    /// Deleted ids stay unusable this long (`store.tombstone_retention`).
    pub tombstone_retention: Duration,
}

/// Worker supervision knobs.
#[derive(Clone, Debug)]
pub struct WorkerLimits {
    pub kill_grace: Duration,
    /// Startup handshake bound (`worker.start_timeout`).
    pub start_timeout: Duration,
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
    /// Agent-specific values the adapter formats (`adapters::create`).
    pub adapter: AdapterConfig,
    /// `workers.opencode_*.agent` (opencode's agent name).
    pub agent: Option<String>,
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
    /// Resource limits applied in the worker child.
    pub rlimits: crate::child::WorkerLimits,
    /// Never usable as a work dir, even inside a root (data dir, config, secrets).
    pub denied_paths: Vec<PathBuf>,
    /// `security.worker.run_as` given as uid/gid (a `{user}` name is resolved at startup).
    pub run_as: Option<crate::child::RunAs>,
    /// `security.worker.uid_per_owner` (exclusive with `run_as`).
    pub uid_per_owner: Option<crate::child::UidRange>,
    /// Rows 1–2 of security.md §5.1: base passthrough values and PATH, USER…
    pub base_env: Vec<(String, String)>,
    /// Names that must never reach a worker (gateway secrets, deny list).
    pub denied_env: Vec<String>,
    /// Loaded API keys and admin tokens: a worker env value containing one of
    /// them refuses the spawn (security.md §5.3 "Secret values").
    pub secret_values: Vec<crate::config::Secret>,
}

/// Connection and rate limits (security.md §9.3; `limits.*`, `limits.rate.*`).
#[derive(Clone, Debug)]
pub struct RateSettings {
    pub conn_per_sec: f64,
    pub conn_burst: f64,
    pub owner_per_sec: f64,
    pub owner_burst: f64,
    pub control_per_sec: f64,
    pub control_burst: f64,
    pub handshakes_per_sec: f64,
    pub handshakes_burst: f64,
    pub inputs_per_min: f64,
    pub creates_per_min: f64,
    /// `/api/…` requests per principal (`limits.rate.api_requests_per_sec` / `api_burst`).
    pub api_per_sec: f64,
    pub api_burst: f64,
    pub throttle_threshold: f64,
    pub max_violations_per_min: usize,
    pub max_connections_per_ip: usize,
    pub max_preinit: usize,
    pub max_preinit_per_ip: usize,
    pub max_connections_per_owner: usize,
    pub trusted_proxies: Vec<crate::config::Cidr>,
    pub client_ip_header: String,
}

/// Global guards of security.md §9 that span reactors and the spawner.
#[derive(Clone, Debug)]
pub struct Guards {
    /// `security.audit.log_auth_success`: audit every successful `init` authentication.
    pub log_auth_success: bool,
    /// `limits.max_spawns_per_second` (global); 0 = unlimited.
    pub max_spawns_per_second: u32,
    /// `limits.max_total_send_queue_bytes` over every connection.
    pub max_total_send_queue_bytes: usize,
}

/// Storage (`store.*`).
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Database file (`:memory:` = a temp file removed at exit).
    pub path: PathBuf,
    pub options: crate::store::StoreOptions,
    pub read_connections: usize,
    pub writer: crate::store::WriterConfig,
    pub replay_retention: Duration,
    pub replay_retention_events: u64,
    /// `:memory:` only: the private data directory made for this process
    /// (homes, per-session tmp), removed at exit like the database.
    pub temp_data_dir: Option<PathBuf>,
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
    /// Data pending and the socket took nothing for this long → close.
    pub write_stall_timeout: Duration,
    pub emit_raw: bool,
    pub reconnect_delay: Duration,
    /// After `control.reconnect`: connections still open are closed (RECONNECT_REQUIRED).
    pub reconnect_deadline: Duration,
    /// At shutdown, running turns may finish for this long.
    pub drain_timeout: Duration,
    pub head_limits: HeadLimits,
    pub decode: DecodeLimits,
    pub upgrade: UpgradePolicy,
    pub sessions: SessionLimits,
    pub worker: WorkerLimits,
    pub policy: Policy,
    pub workers: HashMap<WorkerType, WorkerSettings>,
    /// Worker types a config reload disabled: only sessions that were live
    /// before it keep using them (resets, per-turn spawns); inits and resumes
    /// look at `workers` only (operations.md §1.8).
    pub retired_workers: HashMap<WorkerType, WorkerSettings>,
    pub sandbox: Sandbox,
    pub store: StoreSettings,
    pub rate: RateSettings,
    /// `tracing.*` (operations.md §6).
    pub tracing: crate::otel::TraceConfig,
    pub guards: Guards,
}

impl Settings {
    pub fn worker(&self, t: WorkerType) -> Option<&WorkerSettings> {
        self.workers.get(&t)
    }

    /// The worker settings for a session that is already live: enabled, or
    /// disabled by a reload after the session started.
    pub fn live_worker(&self, t: WorkerType) -> Option<&WorkerSettings> {
        self.workers.get(&t).or_else(|| self.retired_workers.get(&t))
    }
}

/// Where the gateway writes pi's permission-gate extension at startup
/// (`gateway::install_pi_extension`): `<data dir>/pi/<file>`, the data dir
/// being the store's directory.
pub fn pi_extension_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("pi").join(crate::adapters::pi::PERMISSION_GATE_FILE)
}

/// `PATH` for workers: configured, or the gateway's with empty, `.` and
/// relative entries and duplicates removed (security.md §5.2).
pub fn sanitize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for p in path.split(':') {
        if p.starts_with('/') && !out.contains(&p) {
            out.push(p);
        }
    }
    out.join(":")
}

/// Values of `names` from the env snapshot; an entry ending in `*` is a prefix.
fn passthrough(names: &[String], env: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in env {
        let hit = names.iter().any(|n| match n.strip_suffix('*') {
            Some(prefix) => k.starts_with(prefix),
            None => n == k,
        });
        if hit {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

impl Settings {
    /// Build the runtime settings from a validated config and the startup
    /// environment snapshot.
    pub fn from_config(cfg: &crate::config::Config, env: &[(String, String)]) -> Settings {
        use crate::config as c;
        let g = &cfg.gateway;
        let l = &cfg.limits;
        let sec = &cfg.security;
        let reactors = if g.reactors == 0 {
            let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            cpus.saturating_sub(1).clamp(1, 16)
        } else {
            g.reactors as usize
        };
        let opt = |d: Duration| if d.is_zero() { None } else { Some(d) };

        // Names that must never reach a worker.
        let mut denied_env: Vec<String> = sec.env.deny.clone();
        for k in &sec.api_keys {
            denied_env.extend(k.env.iter().cloned());
        }
        for t in &cfg.admin.tokens {
            denied_env.extend(t.env.iter().cloned());
        }
        for v in cfg.tracing.headers.values() {
            if let Some(c::SecretSource::Env(name)) = v.source() {
                denied_env.push(name);
            }
        }
        for (k, _) in env {
            let code_loading = crate::policy::env::is_code_loading(k) && !sec.env.allow_dangerous.contains(k);
            if code_loading || crate::policy::env::AGENT_MARKERS.contains(&k.as_str()) || k.starts_with("HOTPLEX_") {
                denied_env.push(k.clone());
            }
        }
        denied_env.sort();
        denied_env.dedup();

        let gateway_path =
            env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or("/usr/bin:/bin");
        let path = if sec.env.path.is_empty() { sanitize_path(gateway_path) } else { sanitize_path(&sec.env.path) };
        let mut base_env = passthrough(&sec.env.passthrough, env);
        base_env.push(("PATH".into(), path));
        // USER, LOGNAME, SHELL (and, without a private HOME, HOME) come from
        // the worker identity's passwd entry (security.md §5.1 row 2): the
        // run_as user, none under uid_per_owner (per-owner uids normally have
        // no entry; the same for every owner rather than a lookup per spawn),
        // else the gateway's.
        let identity_uid = match (&sec.worker.run_as, &sec.worker.uid_per_owner) {
            (_, Some(_)) => None,
            (Some(r), None) => match (r.uid, &r.user) {
                (Some(uid), _) => Some(uid),
                (None, Some(name)) => crate::sys::user_ids(name).map(|(uid, _)| uid),
                (None, None) => None,
            },
            (None, None) => Some(crate::sys::getuid()),
        };
        if let Some((user, shell, home)) = identity_uid.and_then(crate::sys::passwd_of) {
            base_env.push(("USER".into(), user.clone()));
            base_env.push(("LOGNAME".into(), user));
            if !shell.is_empty() {
                base_env.push(("SHELL".into(), shell));
            }
            if !sec.worker.private_home && sec.worker.run_as.is_some() && !home.is_empty() {
                base_env.push(("HOME".into(), home));
            }
        }

        let memory = cfg.store.path.as_os_str() == crate::store::MEMORY;
        let data_dir = if memory {
            std::env::temp_dir().join(format!("hotplex-{}", std::process::id()))
        } else {
            cfg.store.path.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| PathBuf::from("."))
        };
        let home_root = if sec.worker.home_root.as_os_str().is_empty() {
            data_dir.join("homes")
        } else {
            sec.worker.home_root.clone()
        };
        let tmp_root = sec.worker.private_tmp.then(|| data_dir.join("tmp"));
        let rl = &l.worker;
        let nz = |v: u64| if v == 0 { None } else { Some(v) };
        let rlimits = crate::child::WorkerLimits {
            as_bytes: nz(rl.rlimit_as_bytes),
            nproc: nz(rl.rlimit_nproc),
            cpu_seconds: nz(rl.rlimit_cpu_seconds),
            nofile: nz(rl.rlimit_nofile),
            core_bytes: nz(rl.rlimit_core_bytes),
        };
        let mut denied_paths = vec![data_dir.clone()];
        if let Some(p) = cfg.store.path.parent().filter(|_| !memory) {
            denied_paths.push(p.to_path_buf());
        }

        let mut workers = HashMap::new();
        for rw in cfg.enabled_workers() {
            let t = rw.worker_type;
            let mut wenv = passthrough(cfg.workers.env_passthrough(t), env);
            for (k, v) in cfg.workers.env(t) {
                if let Some(secret) = v.value() {
                    wenv.push((k.clone(), secret.expose().to_owned()));
                }
            }
            let mut adapter = AdapterConfig::default();
            let (args, model, mode, mcp, state_dir) = match t {
                WorkerType::ClaudeCode => {
                    let w = &cfg.workers.claude_code;
                    (
                        w.args.clone(),
                        Some(w.model.clone()),
                        Some(w.permission_mode.as_str().to_owned()),
                        Some(w.mcp_config.clone()),
                        Some(w.config_dir.to_string_lossy().into_owned()),
                    )
                }
                WorkerType::OpencodeCli => (
                    cfg.workers.opencode_cli.args.clone(),
                    Some(cfg.workers.opencode_cli.model.clone()),
                    None,
                    None,
                    None,
                ),
                WorkerType::OpencodeServer => {
                    let w = &cfg.workers.opencode_server;
                    (w.args.clone(), Some(w.model.clone()), None, None, None)
                }
                WorkerType::Acpx => {
                    let w = &cfg.workers.acpx;
                    let args = w.agents.get(&w.agent).map(|a| a.args.clone()).unwrap_or_default();
                    (args, None, None, None, None)
                }
                WorkerType::Pi => {
                    let w = &cfg.workers.pi;
                    adapter.pi = crate::adapters::pi::PiConfig {
                        mode: w.mode.clone(),
                        provider: Some(w.provider.clone()).filter(|p| !p.is_empty()),
                        gated_tools: w.gated_tools.clone(),
                        extension: pi_extension_path(&data_dir),
                    };
                    (
                        w.args.clone(),
                        Some(w.model.clone()),
                        None,
                        None,
                        Some(w.agent_dir.to_string_lossy().into_owned()),
                    )
                }
            };
            workers.insert(
                t,
                WorkerSettings {
                    program: rw.program.clone(),
                    args,
                    env: wenv,
                    model: model.filter(|m| !m.is_empty()),
                    permission_mode: mode,
                    mcp_config: mcp.filter(|p| !p.as_os_str().is_empty()),
                    state_dir: state_dir.filter(|d| !d.is_empty()),
                    adapter,
                    agent: match t {
                        WorkerType::OpencodeCli => Some(cfg.workers.opencode_cli.agent.clone()),
                        WorkerType::OpencodeServer => Some(cfg.workers.opencode_server.agent.clone()),
                        _ => None,
                    }
                    .filter(|a| !a.is_empty()),
                },
            );
        }

        let none_mode = sec.auth.modes.contains(&c::AuthMode::None);
        Settings {
            reactors,
            max_connections: g.max_connections as usize,
            handshake_timeout: g.handshake_timeout,
            init_timeout: g.init_timeout,
            ping_interval: g.ping_interval,
            missed_pongs: g.missed_pongs.max(1),
            max_message_bytes: g.max_message_bytes as usize,
            send_queue_bytes: g.send_queue_bytes as usize,
            send_queue_high_water: g.send_queue_high_water as usize,
            write_stall_timeout: l.write_stall_timeout,
            emit_raw: g.emit_raw,
            reconnect_delay: g.reconnect_delay,
            reconnect_deadline: g.reconnect_deadline,
            drain_timeout: g.drain_timeout,
            head_limits: HeadLimits {
                max_request_line: l.http_max_request_line_bytes as usize,
                max_header_bytes: l.http_max_header_bytes as usize,
                max_headers: l.http_max_headers as usize,
            },
            decode: DecodeLimits {
                max_json_depth: l.max_json_depth as usize,
                max_input_bytes: l.max_input_bytes as usize,
                max_id_bytes: l.max_id_bytes as usize,
                max_reason_bytes: l.max_reason_bytes as usize,
                max_metadata_bytes: l.max_metadata_bytes as usize,
                max_client_caps: l.max_client_caps as usize,
            },
            upgrade: UpgradePolicy { allowed_origins: sec.allowed_origins.clone(), require_loopback_host: none_mode },
            sessions: SessionLimits {
                max_total: cfg.sessions.max_total as usize,
                max_per_owner: cfg.sessions.max_per_owner as usize,
                max_stored_per_owner: cfg.sessions.max_stored_per_owner as usize,
                max_observers: l.max_observers_per_session as usize,
                replay_events: cfg.sessions.replay_buffer_events as usize,
                replay_bytes: cfg.sessions.replay_buffer_bytes as usize,
                idle_timeout: opt(cfg.sessions.idle_timeout),
                max_lifetime: opt(cfg.sessions.max_lifetime),
                gc_interval: cfg.sessions.gc_interval,
                retention: cfg.store.retention,
                tombstone_retention: cfg.store.tombstone_retention,
            },
            worker: WorkerLimits {
                kill_grace: cfg.worker.kill_grace,
                start_timeout: cfg.worker.start_timeout,
                turn_timeout: opt(cfg.worker.turn_timeout),
                stall_timeout: opt(cfg.worker.stall_timeout),
                permission_timeout: cfg.worker.permission_timeout,
                max_line_bytes: cfg.worker.max_line_bytes as usize,
                max_turn_output_bytes: l.max_turn_output_bytes,
                stderr_tail_bytes: l.worker_stderr_tail_bytes as usize,
                max_pending_permissions: l.max_pending_permissions as usize,
            },
            policy: Policy {
                models_allowed: sec.models.allowed.clone(),
                tools_allowed: sec.tools.allowed.clone(),
                tools_denied: sec.tools.denied.clone(),
                permission_modes: sec.tools.permission_modes.iter().map(|m| m.as_str().to_owned()).collect(),
                system_prompt: match sec.tools.system_prompt {
                    c::SystemPromptPolicy::Deny => crate::policy::SystemPromptPolicy::Deny,
                    c::SystemPromptPolicy::Append => crate::policy::SystemPromptPolicy::Append,
                    c::SystemPromptPolicy::Replace => crate::policy::SystemPromptPolicy::Replace,
                },
                max_model_bytes: l.max_model_bytes as usize,
                max_tools: l.max_tools as usize,
                max_work_dir_bytes: l.max_work_dir_bytes as usize,
                max_system_prompt_bytes: l.max_system_prompt_bytes as usize,
                max_turns_ceiling: l.max_turns_ceiling as u64,
            },
            workers,
            retired_workers: HashMap::new(),
            tracing: crate::otel::TraceConfig::from_config(cfg),
            guards: Guards {
                log_auth_success: sec.audit.log_auth_success,
                max_spawns_per_second: l.max_spawns_per_second,
                max_total_send_queue_bytes: usize::try_from(l.max_total_send_queue_bytes).unwrap_or(usize::MAX),
            },
            rate: RateSettings {
                conn_per_sec: l.rate.conn_frames_per_sec as f64,
                conn_burst: l.rate.conn_burst as f64,
                owner_per_sec: l.rate.owner_frames_per_sec as f64,
                owner_burst: l.rate.owner_burst as f64,
                control_per_sec: l.rate.control_per_sec as f64,
                control_burst: l.rate.control_burst as f64,
                handshakes_per_sec: l.rate.handshakes_per_ip_per_sec as f64,
                handshakes_burst: l.rate.handshakes_burst as f64,
                inputs_per_min: l.rate.inputs_per_min_per_owner as f64,
                creates_per_min: l.rate.session_creates_per_min_per_owner as f64,
                api_per_sec: l.rate.api_requests_per_sec as f64,
                api_burst: l.rate.api_burst as f64,
                throttle_threshold: l.rate.throttle_threshold,
                max_violations_per_min: l.rate.max_violations_per_min as usize,
                max_connections_per_ip: l.max_connections_per_ip as usize,
                max_preinit: l.max_preinit_connections as usize,
                max_preinit_per_ip: l.max_preinit_per_ip as usize,
                max_connections_per_owner: l.max_connections_per_owner as usize,
                trusted_proxies: g.trusted_proxies.clone(),
                client_ip_header: g.client_ip_header.clone(),
            },
            store: StoreSettings {
                temp_data_dir: memory.then(|| data_dir.clone()),
                path: cfg.store.path.clone(),
                options: crate::store::StoreOptions {
                    synchronous_full: cfg.store.synchronous == c::Synchronous::Full,
                    busy_timeout: cfg.store.busy_timeout,
                    journal_size_limit: cfg.store.journal_size_limit,
                    auto_migrate: cfg.store.auto_migrate,
                },
                read_connections: cfg.store.read_connections.max(1) as usize,
                writer: crate::store::WriterConfig {
                    batch_max_ops: cfg.store.batch_max_ops.max(1) as usize,
                    commit_interval: cfg.store.commit_interval,
                    queue_capacity: cfg.store.queue_capacity.max(1) as usize,
                    reactors,
                    retention: Some(crate::store::retention::RetentionConfig {
                        replay_retention: cfg.store.replay_retention,
                        replay_retention_events: cfg.store.replay_retention_events,
                        retention: cfg.store.retention,
                        tombstone_retention: cfg.store.tombstone_retention,
                        audit_retention: cfg.store.audit_retention,
                        interval: cfg.sessions.gc_interval,
                    }),
                },
                replay_retention: cfg.store.replay_retention,
                replay_retention_events: cfg.store.replay_retention_events,
            },
            sandbox: Sandbox {
                work_dir_roots: cfg.worker.work_dir_roots.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
                default_work_dir: cfg.worker.default_work_dir.to_string_lossy().into_owned(),
                create_work_dir: cfg.worker.create_work_dir,
                home_root,
                private_home: sec.worker.private_home,
                tmp_root,
                umask: sec.worker.umask.0,
                rlimits,
                base_env,
                denied_env,
                denied_paths,
                run_as: sec.worker.run_as.as_ref().and_then(|r| {
                    let (uid, gid) = match (r.uid, r.gid) {
                        (Some(u), Some(g)) => (u, g),
                        _ => crate::sys::user_ids(r.user.as_deref()?)?,
                    };
                    Some(crate::child::RunAs { uid, gid, groups: r.groups.clone() })
                }),
                uid_per_owner: sec
                    .worker
                    .uid_per_owner
                    .as_ref()
                    .map(|u| crate::child::UidRange { first_uid: u.first_uid, count: u.count }),
                secret_values: sec
                    .api_keys
                    .iter()
                    .filter_map(|k| k.value.clone())
                    .chain(cfg.admin.tokens.iter().filter_map(|t| match &t.credential {
                        Some(c::AdminCredential::Token(v)) => Some(v.clone()),
                        _ => None,
                    }))
                    .filter(|v| !v.expose().is_empty())
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_sanitising() {
        assert_eq!(sanitize_path("/usr/bin::.:bin:/bin"), "/usr/bin:/bin");
        assert_eq!(sanitize_path("/a:/a:/b"), "/a:/b");
    }

    #[test]
    fn passthrough_prefixes() {
        let env = vec![("OTEL_A".to_string(), "1".to_string()), ("LANG".into(), "C".into()), ("X".into(), "2".into())];
        assert_eq!(passthrough(&["OTEL_*".into(), "LANG".into()], &env).len(), 2);
    }
}
