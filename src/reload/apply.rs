//! Publishing a validated config to the running gateway (operations.md §1.8,
//! "takes effect for"). Runs on the thread that asked for the reload (main
//! or admin), never on a reactor: it builds the new `Settings` and, when
//! `security.*` changed, a new `Authenticator`, and only then swaps them in,
//! so a failure leaves everything as it was.
//!
//! Where each live key lands:
//! * reactors get the new `Arc<Settings>` through their inbox and swap it at
//!   the end of a loop iteration; from then on every read of `Reactor::s`
//!   sees it (next enqueue, timers armed after the swap, next spawn, next
//!   init, rate buckets retuned at their next charge);
//! * the authenticator (API keys, JWT keys and policy) and the lockout
//!   policy are swapped in `Shared` (new upgrades and inits; authenticated
//!   connections keep their principal);
//! * the store writer gets batch and retention knobs through its channel;
//! * the log level and format change at once;
//! * the tracing sample ratios change at once (new root spans).

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::WorkerType;
use crate::config::Config;
use crate::reactor::shared::{Msg, Shared};
use crate::settings::Settings;

/// How long a reload waits for room in a full store queue.
const STORE_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Everything prepared; [`Prepared::commit`] cannot fail.
pub struct Prepared {
    settings: Arc<Settings>,
    auth: Option<crate::security::Authenticator>,
    lockout: Option<crate::security::LockoutPolicy>,
    writer: Option<crate::store::WriterTuning>,
    log: Option<(log::LevelFilter, crate::logging::Format)>,
    /// `tracing.sample_ratio`, `tracing.store_sample_ratio`.
    sampling: Option<(f64, f64)>,
}

fn touches(applied: &[String], prefixes: &[&str]) -> bool {
    applied.iter().any(|k| prefixes.iter().any(|p| k == p || k.starts_with(&format!("{p}."))))
}

/// Build what `new` needs; `applied` are the changed (live) key paths. An
/// error names the key whose application failed and why.
pub fn prepare(
    shared: &Shared,
    new: &Config,
    env: &[(String, String)],
    applied: &[String],
) -> Result<Prepared, (&'static str, String)> {
    let prev = shared.settings();
    let mut settings = Settings::from_config(new, env);
    // `gateway.reactors: 0` is resolved from the CPU count, which may have
    // changed since startup; the threads that run are what counts.
    settings.reactors = prev.reactors;
    // A worker type switched off keeps serving the sessions already live.
    let mut retired = prev.retired_workers.clone();
    for (t, w) in &prev.workers {
        retired.insert(*t, w.clone());
    }
    retired.retain(|t, _| !settings.workers.contains_key(t));
    settings.retired_workers = retired;
    if let Some(ws) = settings.worker(WorkerType::Pi).filter(|_| prev.worker(WorkerType::Pi).is_none()) {
        // pi switched on: its permission-gate extension was not written at startup.
        crate::gateway::install_pi_extension(&ws.adapter.pi.extension)
            .map_err(|e| ("workers.pi", format!("cannot write the pi permission-gate extension: {e}")))?;
    }
    let auth = if touches(applied, &["security"]) {
        let a = crate::security::Authenticator::from_config(new, shared.revocations.clone())
            .map_err(|e| ("security", format!("cannot set up authentication: {e:?}")))?;
        Some(a)
    } else {
        None
    };
    let lockout =
        touches(applied, &["limits.auth_failures_per_ip", "limits.auth_failure_window", "limits.auth_lockout"])
            .then(|| crate::security::LockoutPolicy::from_limits(&new.limits));
    let writer = touches(
        applied,
        &[
            "store.batch_max_ops",
            "store.commit_interval",
            "store.replay_retention",
            "store.replay_retention_events",
            "store.retention",
            "store.tombstone_retention",
            "sessions.gc_interval",
        ],
    )
    .then(|| {
        let w = &settings.store.writer;
        crate::store::WriterTuning {
            batch_max_ops: w.batch_max_ops,
            commit_interval: w.commit_interval,
            retention: w.retention.clone(),
        }
    });
    let log = touches(applied, &["log"])
        .then(|| (crate::logging::level_of(new.log.level), crate::logging::format_of(new.log.format)));
    let sampling = touches(applied, &["tracing.sample_ratio", "tracing.store_sample_ratio"])
        .then_some((new.tracing.sample_ratio, new.tracing.store_sample_ratio));
    Ok(Prepared { settings: Arc::new(settings), auth, lockout, writer, log, sampling })
}

impl Prepared {
    /// Swap everything in.
    pub fn commit(self, shared: &Shared) {
        if let Some((level, format)) = self.log {
            crate::logging::set_level(level);
            crate::logging::set_format(format);
        }
        if let Some((ratio, store_ratio)) = self.sampling {
            crate::otel::set_sample_ratios(ratio, store_ratio);
        }
        if let Some(a) = self.auth {
            match shared.auth.write() {
                Ok(mut g) => *g = Arc::new(a),
                Err(p) => *p.into_inner() = Arc::new(a),
            }
        }
        if let Some(p) = self.lockout {
            shared.lockout.set_policy(p);
        }
        if let Some(t) = self.writer {
            if !shared.store.reconfigure(t, STORE_QUEUE_WAIT) {
                log::warn!("config reload: the store queue stayed full; store.* changes apply at the next reload");
            }
        }
        match shared.settings.write() {
            Ok(mut g) => *g = self.settings.clone(),
            Err(p) => *p.into_inner() = self.settings.clone(),
        }
        for r in &shared.reactors {
            r.send(Msg::Reload(self.settings.clone()));
        }
    }
}
