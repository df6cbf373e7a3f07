//! Configuration hot reload (operations.md §1.8): owns the running config,
//! its generation and load time, the restart-class keys waiting for a
//! restart, and the reload procedure: re-read the file (+ `--dev` profile +
//! the startup environment snapshot + re-read `{file: …}` secrets), validate
//! everything, diff by key path, publish the live keys, report the rest.
//!
//! Triggers: SIGHUP (the signal loop in `gateway.rs`), the file poll
//! ([`Reloader::tick`], on the same loop) and `POST /admin/config/reload`
//! (the admin thread). Reloads are serialised; loading and validating run on
//! the caller's thread, never on a reactor. Must not: log a secret value
//! (secrets are compared in `diff.rs`, only key paths leave it), or apply
//! anything of a config that failed validation.
//!
//! Interface used by the admin listener: [`Reloader::reload`] and
//! [`Reloader::describe`]; [`Reloader::config`] and
//! [`Reloader::generation`] give the running config to other threads.

pub mod apply;
pub mod diff;
pub mod poll;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::Instant;

use serde_json::{Value, json};

use crate::config::{self, Config, ConfigErrors, LoadOptions, Loaded};
use crate::reactor::shared::Shared;

use diff::Class;
use poll::{Due, FileState, PollState};

/// What caused a reload (logged and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    FilePoll,
    Signal,
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::FilePoll => "file_poll",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
        }
    }
}

/// Result of an accepted reload (`POST /admin/config/reload` body).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadReport {
    pub generation: u64,
    pub changed: bool,
    pub applied: Vec<String>,
    pub restart_required: Vec<String>,
}

/// Why a reload was refused.
#[derive(Debug)]
pub enum ReloadError {
    /// Another reload is running (409 `reload_in_progress`).
    InProgress,
    /// The new file is invalid; the running config is kept (400 `config_invalid`).
    Invalid(crate::config::ConfigErrors),
}

struct Running {
    config: Arc<Config>,
    generation: u64,
    loaded_at_ms: u64,
    /// Restart-class keys whose file value differs from the running one.
    pending_restart: Vec<String>,
}

/// Owns the running configuration and performs reloads.
pub struct Reloader {
    opts: LoadOptions,
    file: Option<PathBuf>,
    running: Mutex<Running>,
    /// Mirrors `Running::generation` for lock-free readers (stats, metrics).
    generation: AtomicU64,
    /// Held for the whole of a reload: a second one gets `InProgress`.
    busy: Mutex<()>,
    poll: Mutex<PollState>,
    /// The runtime to publish to (set by `gateway::run`); weak so the
    /// gateway's shutdown drops the store writer's last handle.
    target: Mutex<Weak<Shared>>,
    /// The admin listener's settings switch (`admin.*` except `listen`,
    /// `gateway.trusted_proxies`/`client_ip_header`, `limits.http_*`).
    admin: Mutex<Option<crate::admin::AdminControl>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn list(keys: &[String]) -> String {
    format!("[{}]", keys.join(","))
}

impl Reloader {
    /// A reloader for built-in defaults and no file (tests of its callers).
    pub fn new() -> Self {
        Reloader::with(LoadOptions::default(), Config::default(), None)
    }

    /// The reloader of a process started with `opts` that loaded `loaded`.
    pub fn from_loaded(opts: LoadOptions, loaded: &Loaded) -> Self {
        Reloader::with(opts, loaded.config.clone(), loaded.file.clone())
    }

    fn with(opts: LoadOptions, config: Config, file: Option<PathBuf>) -> Self {
        let mut poll = PollState::default();
        if let Some(f) = &file {
            poll.record(FileState::of(f), true);
        }
        crate::metrics::set_config_generation(1);
        Reloader {
            opts,
            file,
            running: Mutex::new(Running {
                config: Arc::new(config),
                generation: 1,
                loaded_at_ms: crate::protocol::now_ms(),
                pending_restart: Vec::new(),
            }),
            generation: AtomicU64::new(1),
            busy: Mutex::new(()),
            poll: Mutex::new(poll),
            target: Mutex::new(Weak::new()),
            admin: Mutex::new(None),
        }
    }

    /// Publish reloads to this runtime from now on.
    pub fn attach(&self, shared: &Arc<Shared>) {
        *lock(&self.target) = Arc::downgrade(shared);
    }

    /// Publish reloads to this admin listener from now on.
    pub fn attach_admin(&self, control: crate::admin::AdminControl) {
        *lock(&self.admin) = Some(control);
    }

    /// The running configuration (restart-class keys at their running values).
    pub fn config(&self) -> Arc<Config> {
        lock(&self.running).config.clone()
    }

    /// The running configuration's generation (1 at startup).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Restart-class keys changed in the file but not applied.
    pub fn pending_restart(&self) -> Vec<String> {
        lock(&self.running).pending_restart.clone()
    }

    /// Re-read the config file and apply what can be applied live.
    pub fn reload(&self, trigger: Trigger) -> Result<ReloadReport, ReloadError> {
        self.run(trigger, false)
    }

    /// The file poll; call on every tick of the signal loop (cheap when not due).
    pub fn tick(&self, now: Instant) {
        let Some(path) = &self.file else { return };
        let interval = self.config().reload.poll_interval;
        let due = lock(&self.poll).due(now, interval, || FileState::of(path));
        if let Due::Reload { quiet } = due {
            match self.run(Trigger::FilePoll, quiet) {
                Err(ReloadError::InProgress) => lock(&self.poll).again(),
                Err(ReloadError::Invalid(_)) if quiet => {
                    log::debug!("config reload retried: the file still does not load (already reported)")
                }
                _ => {}
            }
        }
    }

    fn run(&self, trigger: Trigger, quiet: bool) -> Result<ReloadReport, ReloadError> {
        let _busy = match self.busy.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return Err(ReloadError::InProgress),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let state = self.file.as_deref().and_then(FileState::of);
        let result = self.load_and_apply(trigger);
        let ok = result.is_ok();
        lock(&self.poll).record(state, ok);
        if !quiet {
            self.audit(trigger, &result);
        }
        match result {
            Ok(report) => Ok(report),
            Err(errors) => {
                if !quiet {
                    log::warn!(
                        "config reload rejected trigger={} errors={}: the running config is kept",
                        trigger.as_str(),
                        errors.errors.len()
                    );
                    for e in &errors.errors {
                        log::warn!("config reload rejected: {e}");
                    }
                }
                crate::metrics::config_reloaded(crate::metrics::ReloadResult::Invalid);
                Err(ReloadError::Invalid(errors))
            }
        }
    }

    fn load_and_apply(&self, trigger: Trigger) -> Result<ReloadReport, ConfigErrors> {
        let loaded = config::load(&self.opts)?;
        for w in &loaded.warnings {
            log::warn!("config reload: {w}");
        }
        let running = self.config();
        let file_changes = diff::diff(&running, &loaded.config);
        let restart_required: Vec<String> =
            file_changes.iter().filter(|k| diff::classify(k) == Class::Restart).cloned().collect();
        // What runs keeps the running restart-class values; that combination
        // is validated as a whole (e.g. auth mode `none` needs the running
        // listener to be loopback, not just the file's).
        let new = if restart_required.is_empty() {
            loaded.config
        } else {
            let keep = |c: &mut Config| diff::keep_restart_keys(c, &running);
            match config::load_adjusted(&self.opts, &keep) {
                Ok(l) => l.config,
                Err(e) => {
                    log::warn!(
                        "config reload: the file is valid, but not together with the running values of {}",
                        list(&restart_required)
                    );
                    return Err(e);
                }
            }
        };
        let applied: Vec<String> =
            diff::diff(&running, &new).into_iter().filter(|k| diff::classify(k) == Class::Live).collect();
        if !applied.is_empty() {
            if let Some(shared) = lock(&self.target).upgrade() {
                let prepared = apply::prepare(&shared, &new, &self.opts.env, &applied)
                    .map_err(|(key, m)| ConfigErrors::single(key, m, None))?;
                prepared.commit(&shared);
            }
            if let Some(admin) = lock(&self.admin).as_ref() {
                admin.set_settings(crate::admin::AdminSettings::from_config(&new));
            }
        }
        let mut r = lock(&self.running);
        let changed = !applied.is_empty() || r.pending_restart != restart_required;
        if changed {
            r.generation += 1;
            r.loaded_at_ms = crate::protocol::now_ms();
            self.generation.store(r.generation, Ordering::Relaxed);
        }
        let shared_uid = crate::metrics::shared_worker_uid(&new);
        r.config = Arc::new(new);
        r.pending_restart = restart_required.clone();
        let generation = r.generation;
        drop(r);
        use crate::metrics::ReloadResult;
        crate::metrics::config_reloaded(if changed { ReloadResult::Applied } else { ReloadResult::Unchanged });
        crate::metrics::set_config_generation(generation);
        crate::metrics::set_config_restart_pending(!restart_required.is_empty());
        crate::metrics::set_shared_worker_uid(shared_uid);
        let line = format!(
            "config reloaded trigger={} generation={generation} changed={changed} applied={} restart_required={}",
            trigger.as_str(),
            list(&applied),
            list(&restart_required)
        );
        if restart_required.is_empty() {
            log::info!("{line}");
        } else {
            log::warn!("{line} (restart-class keys are not applied until a restart)");
        }
        Ok(ReloadReport { generation, changed, applied, restart_required })
    }

    /// The `config_reload` audit row (security.md §10.3): outcome `ok` with
    /// the changed key paths, or `error` with the keys that failed. Never
    /// waits (a full store queue drops the row with an error log); quiet
    /// poll retries of an already reported file are not recorded.
    fn audit(&self, trigger: Trigger, result: &Result<ReloadReport, ConfigErrors>) {
        use crate::security::audit::{self, ActorKind, AuditEntry, AuditKind, AuditOutcome, Detail};
        let Some(shared) = lock(&self.target).upgrade() else { return };
        let (outcome, detail) = match result {
            Ok(r) => (
                AuditOutcome::Ok,
                json!({
                    "trigger": trigger.as_str(),
                    "generation": r.generation,
                    "changed": r.changed,
                    "applied": r.applied,
                    "restart_required": r.restart_required,
                }),
            ),
            Err(e) => (
                AuditOutcome::Error,
                json!({
                    "trigger": trigger.as_str(),
                    "errors": e.errors.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
                }),
            ),
        };
        let mut entry = AuditEntry::new(AuditKind::ConfigReload, outcome, ActorKind::System).reason(trigger.as_str());
        if let Some(d) = Detail::from_value(detail) {
            entry = entry.detail(d);
        }
        audit::try_record(&shared.store, entry);
    }

    /// `GET /admin/config` body (operations.md §4.2): generation, load time,
    /// file, `--dev`, pending restart keys and the running config with
    /// secrets as `"***"` and admin tokens as `{name, scopes, source}`.
    pub fn describe(&self) -> serde_json::Value {
        let r = lock(&self.running);
        let mut cfg = serde_json::to_value(&*r.config).unwrap_or(Value::Null);
        if let Some(tokens) = cfg.get_mut("admin").and_then(|a| a.get_mut("tokens")) {
            *tokens = Value::Array(r.config.admin.tokens.iter().map(token_entry).collect());
        }
        json!({
            "generation": r.generation,
            "loaded_at": r.loaded_at_ms,
            "file": self.file.as_ref().map(|p| p.display().to_string()),
            "dev": r.config.dev(),
            "pending_restart": r.pending_restart,
            "config": cfg,
        })
    }
}

/// An admin token as `GET /admin/config` shows it: where it comes from, never what it is.
fn token_entry(t: &config::AdminToken) -> Value {
    let source = if let Some(e) = &t.env {
        format!("env:{e}")
    } else if let Some(f) = &t.file {
        format!("file:{}", f.display())
    } else if let Some(h) = &t.sha256 {
        let prefix: String = h.expose().chars().take(8).collect();
        format!("sha256:{prefix}…")
    } else {
        String::new()
    };
    json!({"name": t.name, "scopes": t.scopes, "source": source})
}

impl Default for Reloader {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_redacts_tokens_and_reports_generation() {
        let mut cfg = Config::default();
        cfg.admin.tokens.push(config::AdminToken {
            name: "ops".into(),
            scopes: vec!["admin".into()],
            env: Some("OPS_TOKEN".into()),
            file: None,
            sha256: None,
            credential: Some(config::AdminCredential::Token(config::Secret::new("t0p-secret-token".into()))),
        });
        cfg.admin.tokens.push(config::AdminToken {
            name: "prom".into(),
            scopes: vec!["read".into()],
            env: None,
            file: None,
            sha256: Some(config::Secret::new("1a2b3c4d".repeat(8))),
            credential: None,
        });
        let r = Reloader::with(LoadOptions::default(), cfg, Some(PathBuf::from("/nonexistent/hotplex.yaml")));
        let d = r.describe();
        assert_eq!(d["generation"], 1);
        assert_eq!(d["file"], "/nonexistent/hotplex.yaml");
        assert_eq!(d["dev"], false);
        assert_eq!(d["pending_restart"], json!([]));
        assert_eq!(
            d["config"]["admin"]["tokens"],
            json!([
                {"name": "ops", "scopes": ["admin"], "source": "env:OPS_TOKEN"},
                {"name": "prom", "scopes": ["read"], "source": "sha256:1a2b3c4d…"}
            ])
        );
        assert!(!d.to_string().contains("t0p-secret"));
        assert_eq!(d["config"]["gateway"]["listen"], "127.0.0.1:8888");
    }

    #[test]
    fn a_failed_load_keeps_the_running_config() {
        let dir = std::env::temp_dir().join(format!("hotplex-reload-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "gatway: {}\n").unwrap();
        let opts = LoadOptions { path: Some(file.clone()), dev: false, env: Vec::new() };
        let r = Reloader::with(opts, Config::default(), Some(file));
        match r.reload(Trigger::Signal) {
            Err(ReloadError::Invalid(e)) => assert!(e.to_string().contains("gatway"), "{e}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(r.generation(), 1);
        assert_eq!(*r.config(), Config::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_reloads_are_refused() {
        let r = Reloader::new();
        let _held = r.busy.lock().unwrap();
        assert!(matches!(r.reload(Trigger::Admin), Err(ReloadError::InProgress)));
    }
}
