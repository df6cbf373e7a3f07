//! Gauges that mirror state (operations.md §5.1): atomics kept by RAII
//! guards that live inside the things they count (a connection's `Conn`, a
//! `Session`, a worker, a store-blocked session), so a count can never leak
//! when its owner is dropped on an unusual path. The [`StateCollector`]
//! reads them at scrape time; nothing here is ever locked by a reactor.
//!
//! Owns: the per-state atomics, the guards, the store probe (queue depth,
//! failing flag) and the startup-set gauges (ready, draining, config, uid).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::cells::ShardedGauge;
use super::labels::{self, CloseReason};

/// Open WebSocket connections by phase (`pre_init`, `attached`).
pub static CONN_PHASE: [AtomicI64; 2] = [const { AtomicI64::new(0) }; 2];
/// Bytes in outbound queues (every connection).
pub static SEND_QUEUE_BYTES: ShardedGauge = ShardedGauge::new();
/// Live sessions by state (`created`, `idle`, `running`).
pub static SESSIONS_LIVE: [AtomicI64; 3] = [const { AtomicI64::new(0) }; 3];
/// Stored `terminated` sessions (refreshed by the store writer each GC interval).
pub static SESSIONS_TERMINATED: AtomicU64 = AtomicU64::new(0);
/// Live worker processes by worker type.
pub static WORKERS: [AtomicI64; 5] = [const { AtomicI64::new(0) }; 5];
pub static STORE_BLOCKED: AtomicI64 = AtomicI64::new(0);
pub static STORE_CAPACITY: AtomicU64 = AtomicU64::new(0);
pub static DB_BYTES: AtomicU64 = AtomicU64::new(0);
pub static WAL_BYTES: AtomicU64 = AtomicU64::new(0);
pub static READY: AtomicBool = AtomicBool::new(false);
pub static DRAINING: AtomicBool = AtomicBool::new(false);
pub static CONFIG_GENERATION: AtomicU64 = AtomicU64::new(1);
pub static RESTART_PENDING: AtomicBool = AtomicBool::new(false);
pub static SHARED_WORKER_UID: AtomicBool = AtomicBool::new(false);

/// What the store writer lets a scrape read: (queue depth, failing).
pub type StoreProbe = Box<dyn Fn() -> (usize, bool) + Send + Sync>;

/// The attached store writer's probe and its id.
pub static STORE_PROBE: Mutex<Option<(u64, StoreProbe)>> = Mutex::new(None);

fn store_probe() -> (usize, bool) {
    let g = match STORE_PROBE.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.as_ref().map(|(_, f)| f()).unwrap_or((0, false))
}

/// A connection's phase and close reason. Lives in `ws::conn::Conn`, so it
/// travels with a connection handed to another reactor; dropping the
/// connection counts its close.
#[derive(Default)]
pub struct ConnGauge {
    /// 0 = not upgraded, 1 = pre_init, 2 = attached.
    phase: u8,
    reason: Option<CloseReason>,
}

impl ConnGauge {
    /// The upgrade completed (`hotplex_ws_connections_opened_total`).
    pub fn upgraded(&mut self) {
        if self.phase == 0 {
            super::m().ws_opened.inc(0);
            CONN_PHASE[0].fetch_add(1, Relaxed);
            self.phase = 1;
        }
    }

    /// The connection attached to a session (drive or observe).
    pub fn attached(&mut self) {
        if self.phase == 1 {
            CONN_PHASE[0].fetch_sub(1, Relaxed);
            CONN_PHASE[1].fetch_add(1, Relaxed);
            self.phase = 2;
        }
    }

    /// Why the connection is ending (the first reason given wins).
    pub fn closing(&mut self, reason: CloseReason) {
        if self.reason.is_none() {
            self.reason = Some(reason);
        }
    }

    pub fn is_upgraded(&self) -> bool {
        self.phase != 0
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        if self.phase == 0 {
            return;
        }
        CONN_PHASE[self.phase as usize - 1].fetch_sub(1, Relaxed);
        super::m().ws_closed.inc(self.reason.unwrap_or(CloseReason::InternalError) as usize);
    }
}

/// A session's live state (`created`, `idle`, `running`; other states are not live).
pub struct SessionGauge {
    slot: Option<usize>,
}

fn live_slot(state: crate::protocol::SessionState) -> Option<usize> {
    use crate::protocol::SessionState as S;
    match state {
        S::Created => Some(0),
        S::Idle => Some(1),
        S::Running => Some(2),
        S::Terminated | S::Deleted => None,
    }
}

impl SessionGauge {
    pub fn new(state: crate::protocol::SessionState) -> SessionGauge {
        let slot = live_slot(state);
        if let Some(i) = slot {
            SESSIONS_LIVE[i].fetch_add(1, Relaxed);
        }
        SessionGauge { slot }
    }

    /// The session moved to `state`.
    pub fn set(&mut self, state: crate::protocol::SessionState) {
        let next = live_slot(state);
        if next == self.slot {
            return;
        }
        if let Some(i) = self.slot {
            SESSIONS_LIVE[i].fetch_sub(1, Relaxed);
        }
        if let Some(i) = next {
            SESSIONS_LIVE[i].fetch_add(1, Relaxed);
        }
        self.slot = next;
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            SESSIONS_LIVE[i].fetch_sub(1, Relaxed);
        }
    }
}

impl fmt::Debug for SessionGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGauge").field("slot", &self.slot).finish()
    }
}

/// One live worker process (held by the session's `Worker`).
pub struct ProcessGauge {
    wt: usize,
}

impl ProcessGauge {
    pub fn new(wt: crate::adapters::WorkerType) -> ProcessGauge {
        let wt = labels::worker_type(wt);
        WORKERS[wt].fetch_add(1, Relaxed);
        ProcessGauge { wt }
    }
}

impl Drop for ProcessGauge {
    fn drop(&mut self) {
        WORKERS[self.wt].fetch_sub(1, Relaxed);
    }
}

/// A session blocked on a full store queue (one back-pressure episode).
pub struct StoreBlocked(());

impl StoreBlocked {
    pub fn begin() -> StoreBlocked {
        super::m().store_backpressure.inc(0);
        STORE_BLOCKED.fetch_add(1, Relaxed);
        StoreBlocked(())
    }
}

impl Drop for StoreBlocked {
    fn drop(&mut self) {
        STORE_BLOCKED.fetch_sub(1, Relaxed);
    }
}

/// Encodes every state-mirroring gauge at scrape time.
#[derive(Debug)]
pub struct StateCollector;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn gauge_family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    values: &[&str],
    v: impl Fn(usize) -> i64,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (i, val) in values.iter().enumerate() {
        let labels = [(key, *val)];
        let fe = m.encode_family(&labels)?;
        ConstGauge::new(v(i)).encode(fe)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let m = e.encode_descriptor("start_time_seconds", "Process start (Unix seconds).", None, MetricType::Gauge)?;
        ConstGauge::new(super::process::start_time()).encode(m)?;
        gauge_family(&mut e, "ws_connections", "Open WebSocket connections.", "phase", labels::CONN_PHASES, |i| {
            CONN_PHASE[i].load(Relaxed).max(0)
        })?;
        let q = SEND_QUEUE_BYTES.get().max(0);
        gauge(&mut e, "ws_send_queue_bytes", "Bytes in outbound queues over every connection.", q)?;
        gauge_family(&mut e, "sessions", "Sessions by state.", "state", labels::SESSION_STATES, |i| match i {
            0..=2 => SESSIONS_LIVE[i].load(Relaxed).max(0),
            _ => SESSIONS_TERMINATED.load(Relaxed) as i64,
        })?;
        gauge_family(&mut e, "worker_processes", "Live worker processes.", "worker_type", labels::WORKER_TYPES, |i| {
            WORKERS[i].load(Relaxed).max(0)
        })?;
        let (depth, failing) = store_probe();
        gauge(&mut e, "store_queue_depth", "Ops in the store writer channel.", depth as i64)?;
        let cap = STORE_CAPACITY.load(Relaxed) as i64;
        gauge(&mut e, "store_queue_capacity", "Capacity of the store writer channel (store.queue_capacity).", cap)?;
        let blocked = STORE_BLOCKED.load(Relaxed).max(0);
        gauge(&mut e, "store_blocked_sessions", "Sessions blocked on a full store queue now.", blocked)?;
        gauge(
            &mut e,
            "store_db_bytes",
            "Database file size (refreshed each GC interval).",
            DB_BYTES.load(Relaxed) as i64,
        )?;
        let wal = WAL_BYTES.load(Relaxed) as i64;
        gauge(&mut e, "store_wal_bytes", "WAL file size (refreshed each GC interval).", wal)?;
        let draining = DRAINING.load(Relaxed);
        let ready = READY.load(Relaxed) && !draining && !failing;
        gauge(&mut e, "ready", "1 when GET /ready would answer 200.", ready as i64)?;
        gauge(&mut e, "draining", "1 during drain or shutdown.", draining as i64)?;
        let generation = CONFIG_GENERATION.load(Relaxed) as i64;
        gauge(&mut e, "config_generation", "Generation of the running configuration.", generation)?;
        let pending = RESTART_PENDING.load(Relaxed) as i64;
        gauge(&mut e, "config_restart_pending", "1 when restart-class keys changed since start.", pending)?;
        let shared = SHARED_WORKER_UID.load(Relaxed) as i64;
        gauge(&mut e, "security_shared_worker_uid", "1 when workers of several owners share one uid.", shared)?;
        let dropped = crate::logging::DROPPED.load(Relaxed);
        let m = e.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped on queue overflow.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(dropped).encode(m)?;
        // the OTLP exporter's own counters (src/otel), read here
        let spans = crate::otel::SPANS_DROPPED.load(Relaxed);
        let help = "Spans dropped (exporter queue overflow or failed export).";
        let m = e.encode_descriptor("tracing_spans_dropped", help, None, MetricType::Counter)?;
        ConstCounter::new(spans).encode(m)?;
        let errors = crate::otel::EXPORT_ERRORS.load(Relaxed);
        let m = e.encode_descriptor("tracing_export_errors", "Failed OTLP POSTs.", None, MetricType::Counter)?;
        ConstCounter::new(errors).encode(m)?;
        Ok(())
    }
}
