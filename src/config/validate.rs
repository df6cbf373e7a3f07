//! Semantic validation of a typed `Config` (operations.md §1.4 rules table,
//! §1.7 `--dev`, security.md S11/S12): ranges, cross-field rules, work-dir
//! roots, worker command resolution. Security refusals (S1–S16 except S11/S12)
//! are in `validate_security.rs`; both report through [`Ctx`].
//!
//! Owns: the rules and their messages; fills in `Config::resolved`. Must not:
//! create or change anything on disk (stat and canonicalize only), log, or
//! stop at the first error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigWarning};
use super::resolve::{
    ResolveError, ResolvedWorker, canonical_lenient, nearest_existing, resolve_command, world_writable_without_sticky,
};
use super::tree::{Node, Seg, parse_path};
use super::types::Config;
use super::units::{Enabled, format_duration, is_loopback};
use super::validate_security;
use crate::adapters::WorkerType;

/// Placeholder for a per-owner subtree in work-dir paths.
pub const OWNER_HASH: &str = "{owner_hash}";
/// Placeholder for the session id in `worker.default_work_dir`.
pub const SESSION_ID: &str = "{session_id}";

/// Collects errors and warnings, attributing each to the source of its key.
pub(crate) struct Ctx<'a> {
    pub tree: &'a Node,
    pub file: Option<&'a Path>,
    pub env: &'a [(String, String)],
    pub dev: bool,
    /// Paths already reported by the type pass; semantic errors below them are dropped.
    pub skip: &'a [Vec<Seg>],
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
    /// Secret files read while loading (S11: no work-dir root may contain one).
    pub secret_files: Vec<PathBuf>,
}

impl<'a> Ctx<'a> {
    pub fn new(tree: &'a Node, file: Option<&'a Path>, env: &'a [(String, String)], dev: bool) -> Ctx<'a> {
        Ctx { tree, file, env, dev, skip: &[], errors: Vec::new(), warnings: Vec::new(), secret_files: Vec::new() }
    }

    /// The rendered source of `key` (nearest ancestor present in the tree).
    pub fn source(&self, key: &str) -> Option<String> {
        let mut path = parse_path(key);
        loop {
            if let Some(src) = self.tree.source_of(&path) {
                return Some(src.render(self.file));
            }
            path.pop()?;
        }
    }

    fn skipped(&self, key: &str) -> bool {
        let path = parse_path(key);
        self.skip.iter().any(|s| path.starts_with(s))
    }

    pub fn err(&mut self, key: &str, message: impl Into<String>) {
        self.err_from(key, message, key);
    }

    /// An error on `key` whose source is the place that set `source_key` (e.g. `enabled: true`).
    pub fn err_from(&mut self, key: &str, message: impl Into<String>, source_key: &str) {
        if self.skipped(key) {
            return;
        }
        let source = self.source(source_key);
        self.errors.push(ConfigError { key: key.to_string(), message: message.into(), source });
    }

    pub fn warn(&mut self, key: &str, message: impl Into<String>) {
        let source = self.source(key);
        self.warnings.push(ConfigWarning { key: key.to_string(), message: message.into(), source });
    }

    pub fn env_var(&self, name: &str) -> Option<&'a str> {
        self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `lo ≤ d ≤ hi`, else an error quoting the bounds.
    pub fn duration_in(&mut self, key: &str, d: Duration, lo: Duration, hi: Duration) {
        if d < lo || d > hi {
            let msg = format!(
                "must be between {} and {} (got \"{}\")",
                format_duration(lo),
                format_duration(hi),
                format_duration(d)
            );
            self.err(key, msg);
        }
    }

    pub fn int_in(&mut self, key: &str, n: u64, lo: u64, hi: u64) {
        if n < lo || n > hi {
            self.err(key, format!("must be between {lo} and {hi} (got {n})"));
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Run every rule; fills `cfg.resolved` and the secrets' resolved values.
pub(crate) fn validate(cfg: &mut Config, ctx: &mut Ctx) {
    cfg.resolved.dev = ctx.dev;
    validate_security::validate(cfg, ctx);
    gateway(cfg, ctx);
    admin(cfg, ctx);
    store(cfg, ctx);
    sessions(cfg, ctx);
    worker(cfg, ctx);
    work_dir_roots(cfg, ctx);
    workers(cfg, ctx);
    tracing(cfg, ctx);
    if !cfg.reload.poll_interval.is_zero() {
        ctx.duration_in("reload.poll_interval", cfg.reload.poll_interval, secs(1), secs(3600));
    }
    if ctx.dev {
        for (key, addr) in [("gateway.listen", cfg.gateway.listen), ("admin.listen", cfg.admin.listen)] {
            if !is_loopback(addr.ip()) {
                ctx.err(key, format!("--dev requires a loopback address (got {addr})"));
            }
        }
    }
}

/// Port 0 never clashes: each listener gets its own free port.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn gateway(cfg: &Config, ctx: &mut Ctx) {
    let g = &cfg.gateway;
    if listeners_clash(g.listen, cfg.admin.listen) {
        ctx.err("admin.listen", format!("must differ from gateway.listen (both {})", g.listen));
    }
    ctx.int_in("gateway.reactors", g.reactors.into(), 0, 64);
    ctx.int_in("gateway.max_connections", g.max_connections.into(), 1, 1_000_000);
    ctx.int_in("gateway.max_message_bytes", g.max_message_bytes, KIB, 64 * MIB);
    if g.send_queue_high_water >= g.send_queue_bytes {
        ctx.err(
            "gateway.send_queue_high_water",
            format!(
                "must be less than gateway.send_queue_bytes ({} ≥ {})",
                g.send_queue_high_water, g.send_queue_bytes
            ),
        );
    }
    ctx.duration_in("gateway.ping_interval", g.ping_interval, secs(1), secs(600));
    ctx.int_in("gateway.missed_pongs", g.missed_pongs.into(), 1, 10);
    ctx.duration_in("gateway.init_timeout", g.init_timeout, secs(1), secs(300));
    ctx.duration_in("gateway.handshake_timeout", g.handshake_timeout, secs(1), secs(60));
    ctx.duration_in("gateway.reconnect_delay", g.reconnect_delay, Duration::ZERO, secs(600));
    ctx.duration_in("gateway.reconnect_deadline", g.reconnect_deadline, secs(1), secs(600));
    let floor = g.drain_timeout + cfg.worker.kill_grace + secs(5);
    if g.shutdown_timeout < floor {
        ctx.err(
            "gateway.shutdown_timeout",
            format!(
                "must be at least drain_timeout + worker.kill_grace + 5s = {} (got \"{}\")",
                format_duration(floor),
                format_duration(g.shutdown_timeout)
            ),
        );
    }
    let header = &g.client_ip_header;
    if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        ctx.err("gateway.client_ip_header", format!("{header:?} is not an HTTP header name"));
    }
}

fn admin(cfg: &Config, ctx: &mut Ctx) {
    let a = &cfg.admin;
    ctx.int_in("admin.max_connections", a.max_connections.into(), 1, 100_000);
    ctx.int_in("admin.max_body_bytes", a.max_body_bytes, 1, 64 * MIB);
    ctx.duration_in("admin.request_timeout", a.request_timeout, secs(1), secs(600));
    ctx.int_in("admin.rate_limit.requests_per_second", a.rate_limit.requests_per_second.into(), 1, 1_000_000);
    ctx.int_in("admin.rate_limit.burst", a.rate_limit.burst.into(), 1, 1_000_000);
    for (i, origin) in a.allowed_origins.iter().enumerate() {
        if let Err(m) = validate_security::check_origin(origin) {
            ctx.err(&format!("admin.allowed_origins[{i}]"), m);
        }
    }
}

fn store(cfg: &Config, ctx: &mut Ctx) {
    let s = &cfg.store;
    if s.path.as_os_str().is_empty() {
        ctx.err("store.path", "must not be empty");
    } else if s.path.as_os_str() == crate::store::MEMORY {
        // a temp file in the system temp directory (operations.md §3.1)
    } else if s.path.is_dir() {
        ctx.err("store.path", format!("{} is a directory; name the database file", s.path.display()));
    } else if let Some(parent) = s.path.parent() {
        match nearest_existing(parent) {
            Some((existing, _)) if existing.is_dir() => {}
            Some((existing, _)) => ctx.err(
                "store.path",
                format!("cannot create the directory {}: {} is not a directory", parent.display(), existing.display()),
            ),
            None => ctx.err("store.path", format!("cannot create the directory {}", parent.display())),
        }
    }
    if !s.url.is_empty() {
        ctx.err("store.url", "the PostgreSQL store is not available in this version");
    }
    ctx.int_in("store.read_connections", s.read_connections.into(), 1, 64);
    ctx.duration_in("store.commit_interval", s.commit_interval, Duration::from_millis(1), secs(1));
    ctx.int_in("store.batch_max_ops", s.batch_max_ops.into(), 1, 65_536);
    if s.queue_capacity < s.batch_max_ops {
        ctx.err(
            "store.queue_capacity",
            format!("must be at least store.batch_max_ops ({} < {})", s.queue_capacity, s.batch_max_ops),
        );
    }
    let year = secs(10 * 365 * 86_400);
    for (key, d) in [
        ("store.retention", s.retention),
        ("store.replay_retention", s.replay_retention),
        ("store.tombstone_retention", s.tombstone_retention),
        ("store.audit_retention", s.audit_retention),
    ] {
        ctx.duration_in(key, d, secs(1), year);
    }
    if s.retention >= secs(1) && s.retention < secs(3600) {
        ctx.warn("store.retention", format!("\"{}\" is below 1h (fine for tests)", format_duration(s.retention)));
    }
    if s.replay_retention_events < 100 {
        ctx.err("store.replay_retention_events", format!("must be at least 100 (got {})", s.replay_retention_events));
    }
    ctx.duration_in("store.busy_timeout", s.busy_timeout, Duration::from_millis(1), secs(600));
}

fn sessions(cfg: &Config, ctx: &mut Ctx) {
    let s = &cfg.sessions;
    if s.max_total > 0 && s.max_per_owner > 0 && s.max_per_owner > s.max_total {
        ctx.err(
            "sessions.max_per_owner",
            format!("must not exceed sessions.max_total ({} > {})", s.max_per_owner, s.max_total),
        );
    }
    if !s.idle_timeout.is_zero() && s.idle_timeout < secs(10) {
        ctx.err(
            "sessions.idle_timeout",
            format!("must be \"0s\" (never) or at least 10s (got \"{}\")", format_duration(s.idle_timeout)),
        );
    }
    ctx.duration_in("sessions.max_lifetime", s.max_lifetime, secs(1), secs(10 * 365 * 86_400));
    ctx.duration_in("sessions.gc_interval", s.gc_interval, secs(1), secs(3600));
    ctx.int_in("sessions.replay_buffer_events", s.replay_buffer_events.into(), 1, 1_000_000);
    ctx.int_in("sessions.replay_buffer_bytes", s.replay_buffer_bytes, KIB, 1 << 30);
}

fn worker(cfg: &Config, ctx: &mut Ctx) {
    let w = &cfg.worker;
    ctx.duration_in("worker.kill_grace", w.kill_grace, Duration::from_millis(100), secs(60));
    ctx.int_in("worker.max_line_bytes", w.max_line_bytes, 64 * KIB, 256 * MIB);
    ctx.duration_in("worker.permission_timeout", w.permission_timeout, secs(1), secs(86_400));
    ctx.duration_in("worker.start_timeout", w.start_timeout, secs(1), secs(600));
}

/// The part of a root before the component holding `{owner_hash}` (the root itself if none).
fn static_prefix(root: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in root.components() {
        if c.as_os_str().to_string_lossy().contains(OWNER_HASH) {
            break;
        }
        out.push(c);
    }
    out
}

fn expand(p: &Path, owner_hash: &str, session_id: &str) -> PathBuf {
    PathBuf::from(p.to_string_lossy().replace(OWNER_HASH, owner_hash).replace(SESSION_ID, session_id))
}

fn other_placeholder(p: &Path, allowed: &[&str]) -> Option<String> {
    let mut text = p.to_string_lossy().into_owned();
    for a in allowed {
        text = text.replace(a, "");
    }
    let start = text.find('{')?;
    let end = text[start..].find('}').map(|e| start + e + 1).unwrap_or(text.len());
    Some(text[start..end].to_string())
}

/// S11 and the `worker.default_work_dir` rule.
fn work_dir_roots(cfg: &Config, ctx: &mut Ctx) {
    let w = &cfg.worker;
    if w.work_dir_roots.is_empty() {
        ctx.err("worker.work_dir_roots", "must list at least one directory (S11)");
    }
    let data_dir = (cfg.store.path.as_os_str() != crate::store::MEMORY)
        .then(|| cfg.store.path.parent().map(canonical_lenient))
        .flatten();
    let mut protected: Vec<(String, PathBuf)> = Vec::new();
    if let Some(d) = &data_dir {
        protected.push(("the gateway's data directory".to_string(), d.clone()));
    }
    if let Some(f) = ctx.file {
        protected.push(("the config file".to_string(), canonical_lenient(f)));
    }
    for f in &ctx.secret_files {
        protected.push(("a secret file".to_string(), canonical_lenient(f)));
    }
    let mut prefixes = Vec::new();
    for (i, root) in w.work_dir_roots.iter().enumerate() {
        let key = format!("worker.work_dir_roots[{i}]");
        let shown = root.display();
        if let Some(p) = other_placeholder(root, &[OWNER_HASH]) {
            ctx.err(&key, format!("{shown}: unknown placeholder {p} (only {OWNER_HASH} is allowed)"));
            continue;
        }
        if !root.is_absolute() {
            ctx.err(&key, format!("{shown} is not an absolute path (S11)"));
            continue;
        }
        let templated = root.to_string_lossy().contains(OWNER_HASH);
        let prefix = static_prefix(root);
        if prefix == Path::new("/") {
            ctx.err(&key, format!("{shown}: a work-dir root must not be / (S11)"));
            continue;
        }
        match nearest_existing(&prefix) {
            Some((existing, true)) => {
                if !existing.is_dir() {
                    ctx.err(&key, format!("{} is not a directory (S11)", existing.display()));
                } else if world_writable_without_sticky(&existing) == Some(true) {
                    ctx.err(&key, format!("{} is world-writable without the sticky bit (S11)", existing.display()));
                }
            }
            Some((existing, false)) if w.create_work_dir => {
                if !existing.is_dir() {
                    ctx.err(
                        &key,
                        format!(
                            "{} cannot be created: {} is not a directory (S11)",
                            prefix.display(),
                            existing.display()
                        ),
                    );
                } else if world_writable_without_sticky(&existing) == Some(true) {
                    ctx.err(
                        &key,
                        format!(
                            "{} would be created inside {}, which is world-writable without the sticky bit (S11)",
                            prefix.display(),
                            existing.display()
                        ),
                    );
                }
            }
            _ => {
                ctx.err(&key, format!("{} does not exist and worker.create_work_dir is false (S11)", prefix.display()))
            }
        }
        let canon_prefix = canonical_lenient(&prefix);
        for (what, p) in &protected {
            if p.starts_with(&canon_prefix) {
                ctx.err(&key, format!("{shown} contains {what} ({}) (S11)", p.display()));
            }
        }
        prefixes.push((i, templated, canon_prefix));
    }
    for (i, templated, prefix) in &prefixes {
        if *templated {
            continue;
        }
        for (j, other_templated, other) in &prefixes {
            if *other_templated && other.starts_with(prefix) {
                ctx.err(
                    &format!("worker.work_dir_roots[{i}]"),
                    format!(
                        "the shared root {} contains the per-owner root worker.work_dir_roots[{j}] (security.md §6.1)",
                        prefix.display()
                    ),
                );
            }
        }
    }
    let dwd = &w.default_work_dir;
    if let Some(p) = other_placeholder(dwd, &[OWNER_HASH, SESSION_ID]) {
        ctx.err("worker.default_work_dir", format!("unknown placeholder {p} (allowed: {OWNER_HASH}, {SESSION_ID})"));
        return;
    }
    let (h, sid) = ("0123456789abcdef", "00000000-0000-4000-8000-000000000000");
    let expanded = expand(dwd, h, sid);
    if !w.work_dir_roots.iter().any(|r| expanded.starts_with(expand(r, h, sid))) {
        ctx.err(
            "worker.default_work_dir",
            format!("{} does not lie inside the owner's expanded worker.work_dir_roots", dwd.display()),
        );
    }
}

fn workers(cfg: &mut Config, ctx: &mut Ctx) {
    let path_var = ctx.env_var("PATH");
    let mut resolved = Vec::new();
    for t in WorkerType::ALL {
        let name = t.as_str();
        let enabled = cfg.workers.enabled(t);
        if enabled == Enabled::False {
            continue;
        }
        let enabled_key = format!("workers.{name}.enabled");
        let shown_enabled = if enabled == Enabled::True { "true" } else { "auto" };
        let commands = cfg.workers.commands(t);
        if t == WorkerType::Acpx {
            if commands.is_empty() {
                ctx.err("workers.acpx.agents", "no ACP agent is configured");
                continue;
            }
            if !cfg.workers.acpx.agents.contains_key(&cfg.workers.acpx.agent) {
                let names: Vec<&str> = cfg.workers.acpx.agents.keys().map(String::as_str).collect();
                ctx.err(
                    "workers.acpx.agent",
                    format!("{:?} is not a key of workers.acpx.agents ({})", cfg.workers.acpx.agent, names.join(", ")),
                );
                continue;
            }
        }
        let mut programs = Vec::new();
        let mut missing = Vec::new();
        for (key, command) in &commands {
            match resolve_command(command, path_var) {
                Ok(p) => programs.push((key.clone(), p)),
                Err(ResolveError::NotFound(m)) if enabled == Enabled::Auto => missing.push(m),
                Err(m) => ctx.err_from(key, format!("{m} (enabled: {shown_enabled}, S12)"), &enabled_key),
            }
        }
        if programs.len() != commands.len() {
            if !missing.is_empty() {
                ctx.warn(&enabled_key, format!("{name} not enabled: {} (enabled: auto)", missing.join("; ")));
            }
            continue;
        }
        let agents: Vec<(String, PathBuf)> = if t == WorkerType::Acpx {
            cfg.workers.acpx.agents.keys().cloned().zip(programs.iter().map(|(_, p)| p.clone())).collect()
        } else {
            Vec::new()
        };
        let program = if t == WorkerType::Acpx {
            agents.iter().find(|(n, _)| *n == cfg.workers.acpx.agent).map(|(_, p)| p.clone())
        } else {
            programs.first().map(|(_, p)| p.clone())
        };
        let Some(program) = program else { continue };
        resolved.push(ResolvedWorker { worker_type: t, program, agents });
    }
    let is_on = |t: WorkerType| resolved.iter().any(|r: &ResolvedWorker| r.worker_type == t);
    if is_on(WorkerType::Pi) && !cfg.workers.pi.unrestricted_tools {
        ctx.err_from(
            "workers.pi.unrestricted_tools",
            "must be true to enable pi: its tools outside workers.pi.gated_tools run without asking (security.md §7.2)",
            "workers.pi.enabled",
        );
    }
    if is_on(WorkerType::Pi) {
        pi_values(&cfg.workers.pi, ctx);
    }
    if is_on(WorkerType::ClaudeCode)
        && !cfg.security.tools.permission_modes.contains(&cfg.workers.claude_code.permission_mode)
    {
        ctx.err(
            "workers.claude_code.permission_mode",
            format!(
                "{:?} is not one of security.tools.permission_modes",
                cfg.workers.claude_code.permission_mode.as_str()
            ),
        );
    }
    if is_on(WorkerType::OpencodeServer) {
        let oc = &cfg.workers.opencode_server;
        if oc.shared {
            ctx.err(
                "workers.opencode_server.shared",
                "true (one server per owner) is not supported: every session runs its own `opencode serve` \
                 (docs/adr/opencode-server-sharing.md); set false",
            );
        }
        if oc.port != 0 {
            ctx.err(
                "workers.opencode_server.port",
                "must be 0: the gateway picks a free loopback port for each server process (security.md §8.3)",
            );
        }
    }
    let host = &cfg.workers.opencode_server.hostname;
    let loopback = host == "localhost" || host.parse().is_ok_and(is_loopback);
    if !loopback {
        ctx.err("workers.opencode_server.hostname", format!("{host:?} is not a loopback address"));
    }
    if resolved.is_empty() {
        ctx.warn("workers", "no worker type is enabled: every init will fail with CONFIG_INVALID");
    }
    cfg.resolved.workers = resolved;
}

/// `workers.pi` values that reach pi's argv or the gate's tool list (workers.md §6).
fn pi_values(pi: &super::types_workers::Pi, ctx: &mut Ctx) {
    if pi.mode != "rpc" {
        ctx.err("workers.pi.mode", format!("{:?} is not supported: the pi adapter speaks only \"rpc\"", pi.mode));
    }
    let name_ok = |s: &str, extra: &[u8]| {
        !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    if !pi.provider.is_empty() && !name_ok(&pi.provider, b"._-") {
        ctx.err("workers.pi.provider", format!("{:?} is not a provider name ([A-Za-z0-9._-])", pi.provider));
    }
    for t in &pi.gated_tools {
        if t != "*" && !name_ok(t, b"_-") {
            ctx.err("workers.pi.gated_tools", format!("{t:?} is not a tool name ([A-Za-z0-9_-], or \"*\" for all)"));
        }
    }
}

fn tracing(cfg: &Config, ctx: &mut Ctx) {
    let t = &cfg.tracing;
    for (key, r) in [("tracing.sample_ratio", t.sample_ratio), ("tracing.store_sample_ratio", t.store_sample_ratio)] {
        if !(0.0..=1.0).contains(&r) {
            ctx.err(key, format!("must be between 0.0 and 1.0 (got {r})"));
        }
    }
    if t.service_name.is_empty() {
        ctx.err("tracing.service_name", "must not be empty");
    }
    ctx.duration_in("tracing.export_interval", t.export_interval, Duration::from_millis(100), secs(3600));
    ctx.int_in("tracing.max_queue_spans", t.max_queue_spans.into(), 1, 10_000_000);
    if !t.otlp_endpoint.is_empty() {
        if let Err(m) = validate_security::check_otlp_endpoint(&t.otlp_endpoint, &cfg.security.ssrf.allow) {
            ctx.err("tracing.otlp_endpoint", m);
        }
    }
}
