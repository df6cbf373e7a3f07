//! Operational endpoints of the admin API (operations.md §2.6, §4.2–4.3):
//! liveness and readiness, metrics, stats, workers, drain, configuration
//! and reload. Counts come from the reactors (asked, never read from their
//! memory) and the store (reader pool).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::query::Params;
use super::server::{ReqId, Response, Server, Step};
use crate::reactor::admin::ReactorStats;
use crate::store::{Answer, Query, StoredStats};

/// A reactor whose heartbeat is older than this is stuck (operations.md §0).
const REACTOR_STALL: Duration = Duration::from_secs(2);
/// The store must have committed within this (a heartbeat commit runs every second).
const STORE_STALL_MS: u64 = 5_000;
/// Longest `delay_ms` a drain may advertise.
const MAX_DELAY_MS: u64 = 3_600_000;
const DRAIN_REASONS: [&str; 3] = ["server_maintenance", "version_upgrade", "load_balance"];

fn no_params(query: Option<&str>) -> Result<(), ApiError> {
    Params::parse(query)?.finish()
}

impl Server {
    fn shutting_down(&self) -> bool {
        self.ctx.shared.shutting_down.load(Ordering::Relaxed)
    }

    /// `GET /health`: the admin loop answers; `stopping` during shutdown.
    pub fn health(&mut self, query: Option<&str>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        let status = if self.shutting_down() { "stopping" } else { "ok" };
        Step::Done(Response::json(200, &json!({ "status": status })))
    }

    /// `GET /ready`: startup complete, store committing, reactors turning, not draining.
    pub fn ready(&mut self, query: Option<&str>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        let shared = &self.ctx.shared;
        let l = &shared.liveness;
        let startup = if l.started.load(Ordering::SeqCst) { "ok" } else { "starting" };
        let ws = &shared.store.stats;
        let age = crate::protocol::now_ms().saturating_sub(ws.last_commit_ms.load(Ordering::Relaxed));
        let store = if ws.failing.load(Ordering::Relaxed) {
            "commit failing"
        } else if age > STORE_STALL_MS {
            "no recent commit"
        } else {
            "ok"
        };
        let reactors = if l.oldest_heartbeat() < REACTOR_STALL { "ok" } else { "reactor stalled" };
        let draining = if self.shutting_down() {
            "shutting down"
        } else if l.draining.load(Ordering::SeqCst) {
            "draining"
        } else {
            "ok"
        };
        let checks = json!({"startup": startup, "store": store, "reactors": reactors, "draining": draining});
        let ready = [startup, store, reactors, draining].iter().all(|c| *c == "ok");
        Step::Done(Response::json(if ready { 200 } else { 503 }, &json!({"ready": ready, "checks": checks})))
    }

    /// `GET /metrics` (OpenMetrics text).
    pub fn metrics(&mut self, query: Option<&str>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        Step::Done(Response {
            status: 200,
            content_type: crate::metrics::CONTENT_TYPE,
            body: crate::metrics::render().into_bytes(),
            headers: Vec::new(),
        })
    }

    fn generation(&self) -> u64 {
        self.ctx.reloader.describe().get("generation").and_then(Value::as_u64).unwrap_or(1)
    }

    /// `GET /admin/stats`.
    pub fn stats(&mut self, id: ReqId, query: Option<&str>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        self.read(id, Query::StoredStats, |srv, id, answer| {
            let stored = match answer {
                Answer::StoredStats(s) => s,
                other => return srv.internal(&format!("stored stats failed: {other:?}")),
            };
            srv.ask_all(
                id,
                |r| r.stats_snapshot(),
                move |srv, _, answers| {
                    let per: Vec<ReactorStats> = answers.into_iter().flatten().collect();
                    Step::Done(Response::json(200, &srv.stats_json(&stored, &per)))
                },
            )
        })
    }

    fn stats_json(&self, stored: &StoredStats, per: &[ReactorStats]) -> Value {
        let sum = |f: fn(&ReactorStats) -> usize| per.iter().map(f).sum::<usize>();
        let shared = &self.ctx.shared;
        let settings = shared.settings();
        let terminated = stored.by_state.iter().find(|(s, _)| s == "terminated").map(|(_, n)| *n).unwrap_or(0);
        let mut workers = Map::new();
        for info in self.ctx.workers.iter().filter(|w| w.spec.enabled) {
            let t = info.spec.worker_type;
            let processes: usize =
                per.iter().flat_map(|r| r.workers.iter()).filter(|w| w.worker_type == t).map(|w| w.processes).sum();
            workers.insert(t.as_str().into(), json!({ "processes": processes }));
        }
        let ws = &shared.store.stats;
        let last_commit = ws.last_commit_ms.load(Ordering::Relaxed);
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.ctx.started.elapsed().as_secs(),
            "draining": shared.liveness.draining.load(Ordering::SeqCst),
            "config_generation": self.generation(),
            "connections": {
                "current": sum(|r| r.connections),
                "pre_init": sum(|r| r.pre_init),
                "drivers": sum(|r| r.drivers),
                "observers": sum(|r| r.observers),
                "opened_total": per.iter().map(|r| r.opened).sum::<u64>(),
            },
            "sessions": {
                "created": sum(|r| r.created),
                "idle": sum(|r| r.idle),
                "running": sum(|r| r.running),
                "terminated": terminated,
                "max_total": settings.sessions.max_total,
            },
            "workers": workers,
            "store": {
                "queue_depth": shared.store.depth(),
                "queue_capacity": settings.store.writer.queue_capacity,
                "blocked_sessions": sum(|r| r.blocked_sessions),
                "last_commit_age_ms": if last_commit == 0 { Value::Null } else {
                    json!(crate::protocol::now_ms().saturating_sub(last_commit))
                },
                "db_bytes": stored.db_bytes,
                "wal_bytes": stored.wal_bytes,
            },
            "reactors": per.iter().map(|r| json!({
                "id": r.id, "connections": r.connections, "sessions": r.sessions, "busy_ratio": r.busy_ratio,
            })).collect::<Vec<_>>(),
        })
    }

    /// `GET /admin/workers`.
    pub fn workers(&mut self, id: ReqId, query: Option<&str>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        self.ask_all(
            id,
            |r| r.stats_snapshot(),
            |srv, _, answers| {
                let per: Vec<ReactorStats> = answers.into_iter().flatten().collect();
                let settings = srv.ctx.shared.settings();
                let list: Vec<Value> = srv
                    .ctx
                    .workers
                    .iter()
                    .map(|info| {
                        let t = info.spec.worker_type;
                        let counts = per.iter().flat_map(|r| r.workers.iter()).filter(|w| w.worker_type == t);
                        let (mut processes, mut idle, mut running) = (0, 0, 0);
                        for w in counts {
                            processes += w.processes;
                            idle += w.idle;
                            running += w.running;
                        }
                        let adapter_cfg = settings.worker(t).map(|w| w.adapter.clone()).unwrap_or_default();
                        let caps = crate::adapters::create(t, &adapter_cfg).map(|a| a.caps());
                        json!({
                            "type": t.as_str(),
                            "enabled": info.spec.enabled,
                            "enabled_setting": info.spec.enabled_setting,
                            "command": info.spec.command,
                            "path": info.spec.path.as_ref().map(|p| p.display().to_string()),
                            "version": info.probe.version,
                            "probed_at": info.probe.probed_at,
                            "probe_error": info.probe.probe_error,
                            "processes": processes,
                            "sessions": {"idle": idle, "running": running},
                            "capabilities": {
                                "supports_resume": caps.is_some_and(|c| c.supports_resume),
                                "supports_permissions": caps.is_some_and(|c| c.supports_permissions),
                                "supports_interrupt": caps.is_some_and(|c| c.supports_interrupt),
                            },
                        })
                    })
                    .collect();
                Step::Done(Response::json(200, &json!({ "workers": list })))
            },
        )
    }

    /// `POST /admin/drain` (operations.md §2.6).
    pub fn drain_start(&mut self, id: ReqId, query: Option<&str>, body: Map<String, Value>) -> Step {
        let parsed = (|| {
            no_params(query)?;
            if let Some(k) = body.keys().find(|k| !matches!(k.as_str(), "reason" | "delay_ms")) {
                return Err(ApiError::invalid_parameter(k));
            }
            let reason = match body.get("reason") {
                None => "server_maintenance".to_owned(),
                Some(Value::String(r)) if DRAIN_REASONS.contains(&r.as_str()) => r.clone(),
                Some(_) => return Err(ApiError::invalid_parameter("reason")),
            };
            let delay = match body.get("delay_ms") {
                None => self.ctx.shared.settings().reconnect_delay.as_millis() as u64,
                Some(v) => {
                    v.as_u64().filter(|d| *d <= MAX_DELAY_MS).ok_or_else(|| ApiError::invalid_parameter("delay_ms"))?
                }
            };
            Ok((reason, delay))
        })();
        let (reason, delay) = match parsed {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        if self.shutting_down() {
            return ApiError::new(409, "shutting_down", "the gateway is shutting down").into();
        }
        let l = &self.ctx.shared.liveness;
        if l.draining.swap(true, Ordering::SeqCst) {
            return Step::Done(Response::json(202, &json!({"draining": true, "connections_notified": 0})));
        }
        let epoch = l.drain_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        log::info!("drain started reason={reason} delay_ms={delay}");
        crate::metrics::set_draining(true);
        self.ask_all(
            id,
            move |r| r.drain_notice(&reason, delay, epoch),
            |_, _, answers| {
                let n: usize = answers.into_iter().flatten().sum();
                Step::Done(Response::json(202, &json!({"draining": true, "connections_notified": n})))
            },
        )
    }

    /// `DELETE /admin/drain`: idempotent.
    pub fn drain_end(&mut self, query: Option<&str>, body: Map<String, Value>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        if let Some(k) = body.keys().next() {
            return ApiError::invalid_parameter(k).into();
        }
        let l = &self.ctx.shared.liveness;
        if l.draining.swap(false, Ordering::SeqCst) {
            l.drain_epoch.fetch_add(1, Ordering::SeqCst);
            log::info!("drain ended");
            if !self.shutting_down() {
                crate::metrics::set_draining(false);
            }
        }
        Step::Done(Response::json(200, &json!({"draining": false})))
    }

    /// `GET /admin/config` (the running values, secrets redacted; owned by `reload`).
    pub fn config(&mut self, query: Option<&str>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        Step::Done(Response::json(200, &self.ctx.reloader.describe()))
    }

    /// `POST /admin/config/reload`.
    pub fn reload(&mut self, query: Option<&str>, body: Map<String, Value>) -> Step {
        if let Err(e) = no_params(query) {
            return e.into();
        }
        if let Some(k) = body.keys().next() {
            return ApiError::invalid_parameter(k).into();
        }
        match self.ctx.reloader.reload(crate::reload::Trigger::Admin) {
            Ok(report) => match serde_json::to_value(&report) {
                Ok(v) => Step::Done(Response::json(200, &v)),
                Err(e) => self.internal(&format!("reload report: {e}")),
            },
            Err(crate::reload::ReloadError::InProgress) => {
                ApiError::new(409, "reload_in_progress", "another reload is running").into()
            }
            Err(crate::reload::ReloadError::Invalid(errors)) => {
                let list: Vec<Value> = errors
                    .errors
                    .iter()
                    .map(|e| json!({"key": e.key, "message": e.message, "source": e.source}))
                    .collect();
                ApiError::new(400, "config_invalid", "the configuration is invalid; the running one is kept")
                    .with_details(json!({ "errors": list }))
                    .into()
            }
        }
    }
}
