//! The metric catalogue of operations.md §5.2: every counter and histogram
//! the gateway bumps, created once (every closed label combination at 0),
//! and the two registries a scrape encodes — `hotplex_`-prefixed, and the
//! unprefixed process metrics. Names here are registered without the
//! `_total` / `_info` suffixes prometheus-client appends.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::cells::{CounterVec, LANES, Line, View};
use super::hist::{HistogramVec, LAT_FAST, LAT_FIRST, LAT_TURN, OPS, ShardedHistogram};
use super::labels as l;

/// Reactor slots (`gateway.reactors` is at most 64).
pub const MAX_REACTORS: usize = 64;

/// Per-reactor loop counters, one line per reactor (only it writes there).
pub struct ReactorStats {
    lines: Box<[Line]>,
    /// Highest reactor id seen + 1 (series appear when first used).
    pub seen: AtomicUsize,
}

/// Lanes of a reactor's line.
pub const ITERATIONS: usize = 0;
pub const BUSY_NS: usize = 1;

impl ReactorStats {
    fn new() -> ReactorStats {
        ReactorStats { lines: (0..MAX_REACTORS).map(|_| Line::new()).collect(), seen: AtomicUsize::new(0) }
    }

    #[inline]
    pub fn add(&self, reactor: usize, lane: usize, n: u64) {
        if let Some(line) = self.lines.get(reactor) {
            line.0[lane % LANES].fetch_add(n, Relaxed);
        }
    }

    pub fn get(&self, reactor: usize, lane: usize) -> u64 {
        self.lines.get(reactor).map(|l| l.0[lane % LANES].load(Relaxed)).unwrap_or(0)
    }
}

/// One lane of [`ReactorStats`] as a counter family over `reactor`.
struct ReactorCounter {
    stats: &'static ReactorStats,
    lane: usize,
    /// Stored units per exposed unit (`None`: an integer counter).
    per: Option<f64>,
}

impl fmt::Debug for ReactorCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorCounter").field("lane", &self.lane).finish()
    }
}

impl EncodeMetric for ReactorCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for r in 0..self.stats.seen.load(Relaxed).min(MAX_REACTORS) {
            let id = r.to_string();
            let labels = [("reactor", id.as_str())];
            let mut e = encoder.encode_family(&labels)?;
            let v = self.stats.get(r, self.lane);
            match self.per {
                Some(d) => e.encode_counter::<NoLabelSet, f64, f64>(&(v as f64 / d), None)?,
                None => e.encode_counter::<NoLabelSet, u64, u64>(&v, None)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// `hotplex_admin_requests_total{route,status}` (admin thread only; open-ended labels).
#[derive(Debug, Default)]
pub struct AdminRequests(Mutex<BTreeMap<(&'static str, u16), u64>>);

impl AdminRequests {
    pub fn inc(&self, route: &'static str, status: u16) {
        let mut m = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *m.entry((route, status)).or_insert(0) += 1;
    }

    pub fn get(&self, route: &str, status: u16) -> u64 {
        let m = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        m.iter().find(|((r, s), _)| *r == route && *s == status).map(|(_, v)| *v).unwrap_or(0)
    }
}

impl EncodeMetric for AdminRequests {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let snapshot: Vec<((&'static str, u16), u64)> = match self.0.lock() {
            Ok(g) => g.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(p) => p.into_inner().iter().map(|(k, v)| (*k, *v)).collect(),
        };
        for ((route, status), v) in snapshot {
            let status = status.to_string();
            let labels = [("route", route), ("status", status.as_str())];
            let mut e = encoder.encode_family(&labels)?;
            e.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

const WT: &[&str] = &["worker_type"];

/// Every counter and histogram of §5.2 (state gauges live in `state`).
pub struct Metrics {
    pub ws_opened: CounterVec,
    pub ws_closed: CounterVec,
    pub ws_rejections: CounterVec,
    pub ws_bytes: CounterVec,
    pub sessions_created: CounterVec,
    pub sessions_resumed: CounterVec,
    pub sessions_terminated: CounterVec,
    pub sessions_deleted: CounterVec,
    pub init_failures: CounterVec,
    pub turns: CounterVec,
    pub turn_duration: HistogramVec,
    pub turn_first_delta: HistogramVec,
    pub turn_tokens: CounterVec,
    /// Nano-dollars.
    pub turn_cost: CounterVec,
    pub session_events: CounterVec,
    pub events_sent: CounterVec,
    pub events_received: CounterVec,
    pub aep_errors: CounterVec,
    pub frames_coalesced: CounterVec,
    pub slow_consumer: CounterVec,
    pub line_to_frame: ShardedHistogram,
    pub replay_requests: CounterVec,
    pub replay_events: CounterVec,
    pub worker_spawns: CounterVec,
    pub worker_exits: CounterVec,
    pub worker_io: CounterVec,
    pub worker_unmapped: CounterVec,
    pub worker_output_limit: CounterVec,
    pub permission_requests: CounterVec,
    pub permission_decisions: CounterVec,
    pub permission_wait: ShardedHistogram,
    pub store_batch_ops: ShardedHistogram,
    pub store_commit: ShardedHistogram,
    pub store_ops: CounterVec,
    pub store_merged: CounterVec,
    pub store_backpressure: CounterVec,
    pub store_errors: CounterVec,
    pub store_purged: CounterVec,
    pub auth_failures: CounterVec,
    pub rate_limited: CounterVec,
    pub throttle_notices: CounterVec,
    pub admin_requests: AdminRequests,
    pub reactors: ReactorStats,
    pub timer_lag: ShardedHistogram,
    pub config_reloads: CounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let one =
            |keys: &'static [&'static str], values: &'static [&'static str]| CounterVec::new(keys, &[values], false);
        let per_wt = |key: &'static [&'static str], values: &'static [&'static str]| {
            CounterVec::new(key, &[l::WORKER_TYPES, values], false)
        };
        Metrics {
            ws_opened: CounterVec::scalar(false),
            ws_closed: one(&["reason"], l::CLOSE_REASONS),
            ws_rejections: one(&["reason"], l::UPGRADE_REJECTIONS),
            ws_bytes: CounterVec::new(&["direction"], &[l::DIRECTIONS], true),
            sessions_created: one(WT, l::WORKER_TYPES),
            sessions_resumed: one(WT, l::WORKER_TYPES),
            sessions_terminated: per_wt(&["worker_type", "reason"], l::TERM_REASONS),
            sessions_deleted: one(&["source"], l::DELETE_SOURCES),
            init_failures: one(&["code"], l::INIT_FAILURE_CODES),
            turns: per_wt(&["worker_type", "outcome"], l::TURN_OUTCOMES),
            turn_duration: HistogramVec::seconds("worker_type", l::WORKER_TYPES, LAT_TURN),
            turn_first_delta: HistogramVec::seconds("worker_type", l::WORKER_TYPES, LAT_FIRST),
            turn_tokens: per_wt(&["worker_type", "kind"], l::TOKEN_KINDS),
            turn_cost: one(WT, l::WORKER_TYPES).per(1e9),
            session_events: CounterVec::new(&["type"], &[l::EVENT_TYPES], true),
            events_sent: CounterVec::new(&["type"], &[l::EVENT_TYPES], true),
            events_received: CounterVec::new(&["type"], &[l::CLIENT_EVENT_TYPES], true),
            aep_errors: one(&["code"], l::error_codes()),
            frames_coalesced: CounterVec::scalar(true),
            slow_consumer: CounterVec::scalar(false),
            line_to_frame: ShardedHistogram::seconds(LAT_FAST),
            replay_requests: one(&["result"], l::REPLAY_RESULTS),
            replay_events: CounterVec::scalar(false),
            worker_spawns: per_wt(&["worker_type", "result"], l::SPAWN_RESULTS),
            worker_exits: per_wt(&["worker_type", "class"], l::EXIT_CLASSES),
            worker_io: CounterVec::new(&["worker_type", "stream"], &[l::WORKER_TYPES, l::STREAMS], true),
            worker_unmapped: one(WT, l::WORKER_TYPES),
            worker_output_limit: one(WT, l::WORKER_TYPES),
            permission_requests: one(WT, l::WORKER_TYPES),
            permission_decisions: per_wt(&["worker_type", "decision"], l::DECISIONS),
            permission_wait: ShardedHistogram::seconds(LAT_FIRST),
            store_batch_ops: ShardedHistogram::counts(OPS),
            store_commit: ShardedHistogram::seconds(LAT_FAST),
            store_ops: one(&["op"], l::STORE_OPS),
            store_merged: CounterVec::scalar(false),
            store_backpressure: CounterVec::scalar(false),
            store_errors: one(&["op"], l::STORE_ERROR_OPS),
            store_purged: one(&["what"], l::PURGED),
            auth_failures: CounterVec::new(&["listener", "reason"], &[l::LISTENERS, l::AUTH_REASONS], false),
            rate_limited: CounterVec::scalar(false),
            throttle_notices: CounterVec::scalar(false),
            admin_requests: AdminRequests::default(),
            reactors: ReactorStats::new(),
            timer_lag: ShardedHistogram::seconds(LAT_FAST),
            config_reloads: one(&["result"], l::RELOAD_RESULTS),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `hotplex_build_info` labels (compile-time values from build.rs).
fn build_info() -> Info<Vec<(&'static str, &'static str)>> {
    Info::new(vec![
        ("version", env!("CARGO_PKG_VERSION")),
        ("git_sha", env!("HOTPLEX_GIT_SHA")),
        ("rustc", env!("HOTPLEX_RUSTC")),
        ("target", env!("HOTPLEX_TARGET")),
        ("profile", env!("HOTPLEX_BUILD_PROFILE")),
        ("pgo", env!("HOTPLEX_PGO")),
    ])
}

/// The `hotplex_`-prefixed registry and the unprefixed process one.
pub struct Registries {
    pub prefixed: Registry,
    pub process: Registry,
}

pub fn registries(m: &'static Metrics) -> Registries {
    let mut r = Registry::with_prefix("hotplex");
    r.register("build", "Build of the running binary (constant 1)", build_info());
    r.register("ws_connections_opened", "WebSocket upgrades completed", View(&m.ws_opened));
    r.register("ws_connections_closed", "WebSocket connections closed, by reason", View(&m.ws_closed));
    r.register("ws_upgrade_rejections", "HTTP-level refusals on /ws", View(&m.ws_rejections));
    r.register("ws_bytes", "WebSocket bytes at the socket (framing included)", View(&m.ws_bytes));
    r.register("sessions_created", "New sessions (reached idle)", View(&m.sessions_created));
    r.register("sessions_resumed", "Terminated sessions resumed to idle", View(&m.sessions_resumed));
    r.register("sessions_terminated", "Session terminations", View(&m.sessions_terminated));
    r.register("sessions_deleted", "Session deletions", View(&m.sessions_deleted));
    r.register("init_failures", "Failed inits", View(&m.init_failures));
    r.register("turns", "Turns ended (one per done)", View(&m.turns));
    r.register("turn_duration_seconds", "Input accepted to done", View(&m.turn_duration));
    r.register("turn_first_delta_seconds", "Input accepted to first content event", View(&m.turn_first_delta));
    r.register("turn_tokens", "Tokens from done.stats", View(&m.turn_tokens));
    r.register("turn_cost_usd", "Cost from done.stats.cost_usd", View(&m.turn_cost));
    r.register("session_events", "Events assigned a seq", View(&m.session_events));
    r.register("events_sent", "Frames queued to client sockets", View(&m.events_sent));
    r.register("events_received", "Client frames", View(&m.events_received));
    r.register("aep_errors", "error frames emitted", View(&m.aep_errors));
    r.register("frames_coalesced", "Delta frames absorbed into a coalesced frame", View(&m.frames_coalesced));
    r.register("slow_consumer_disconnects", "Closes 1008 slow consumer", View(&m.slow_consumer));
    r.register("line_to_frame_seconds", "Worker stdout read to frame bytes written", View(&m.line_to_frame));
    r.register("replay_requests", "Inits with last_seq", View(&m.replay_requests));
    r.register("replay_events", "Events sent from the store", View(&m.replay_events));
    r.register("worker_spawns", "Worker process spawns", View(&m.worker_spawns));
    r.register("worker_exits", "Worker process exits", View(&m.worker_exits));
    r.register("worker_io_bytes", "Worker pipe bytes", View(&m.worker_io));
    r.register("worker_unmapped_lines", "Worker stdout lines the adapter could not map", View(&m.worker_unmapped));
    r.register("worker_output_limit", "Worker lines above worker.max_line_bytes", View(&m.worker_output_limit));
    r.register("permission_requests", "permission_request events sent", View(&m.permission_requests));
    r.register("permission_decisions", "Permission outcomes", View(&m.permission_decisions));
    r.register("permission_wait_seconds", "Permission request to decision", View(&m.permission_wait));
    r.register("store_batch_ops", "Ops per committed batch", View(&m.store_batch_ops));
    r.register("store_commit_seconds", "BEGIN to COMMIT done", View(&m.store_commit));
    r.register("store_ops", "Ops committed", View(&m.store_ops));
    r.register("store_deltas_merged", "Delta ops folded into another row", View(&m.store_merged));
    r.register("store_backpressure", "Sessions blocked on a full store queue (episodes)", View(&m.store_backpressure));
    r.register("store_errors", "Store failures", View(&m.store_errors));
    r.register("store_purged", "Rows removed by retention", View(&m.store_purged));
    r.register("auth_failures", "Rejected credentials", View(&m.auth_failures));
    r.register("rate_limited_frames", "Frames dropped with RATE_LIMIT_EXCEEDED", View(&m.rate_limited));
    r.register("throttle_notices", "control.throttle sent", View(&m.throttle_notices));
    r.register("admin_requests", "Admin requests", View(&m.admin_requests));
    let iterations = ReactorCounter { stats: &m.reactors, lane: ITERATIONS, per: None };
    r.register("reactor_iterations", "Reactor poll loop iterations", iterations);
    let busy = ReactorCounter { stats: &m.reactors, lane: BUSY_NS, per: Some(1e9) };
    r.register("reactor_busy_seconds", "Reactor time outside poll()", busy);
    r.register("reactor_timer_lag_seconds", "Timer fire time minus deadline", View(&m.timer_lag));
    r.register("config_reloads", "Configuration reloads", View(&m.config_reloads));
    r.register_collector(Box::new(super::state::StateCollector));
    let mut process = Registry::default();
    process.register_collector(Box::new(super::process::ProcessCollector));
    Registries { prefixed: r, process }
}
