//! Prometheus metrics (operations.md §5): owns the registry, the atomics and
//! sharded histograms the rest of the gateway bumps, and the OpenMetrics
//! text rendering. It must not take a lock on the event path nor block a
//! reactor; gauges that mirror state are computed at scrape time.
//!
//! Every call site is one function call (or an RAII guard held by the thing
//! it counts: [`ConnGauge`], [`SessionGauge`], [`ProcessGauge`],
//! [`StoreBlocked`]). Counters are relaxed atomics (the hot ones sharded per
//! reactor), histograms are [`hist::ShardedHistogram`]s. Labels are closed
//! sets (`labels`) or the reactor index; never ids, owners, IPs or paths.
//!
//! Interface used by the admin listener: [`render`], [`admin_request`],
//! [`auth_failure`], [`session_deleted`], [`set_ready`], [`set_draining`];
//! by hot reload: [`config_reloaded`], [`set_config_generation`],
//! [`set_config_restart_pending`]. The OTLP exporter keeps its own counters
//! (`otel::SPANS_DROPPED`, `otel::EXPORT_ERRORS`); a scrape reads them.

pub mod catalogue;
pub mod cells;
pub mod hist;
pub mod labels;
pub mod process;
pub mod state;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::adapters::WorkerType;
use crate::protocol::{ErrorCode, Event, Stats};

pub use catalogue::Metrics;
pub use labels::{
    CloseReason, Decision, DeleteSource, ExitClass, Listener, ReloadResult, StoreErrorOp, Stream, TurnOutcome,
    UpgradeRejection,
};
pub use state::{ConnGauge, ProcessGauge, SessionGauge, StoreBlocked};

static METRICS: OnceLock<Metrics> = OnceLock::new();
static REGISTRIES: OnceLock<catalogue::Registries> = OnceLock::new();

/// The catalogue (created on first use; every series starts at 0).
#[inline]
pub fn m() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The full exposition in OpenMetrics text format, ending with `# EOF`.
pub fn render() -> String {
    let r = REGISTRIES.get_or_init(|| catalogue::registries(m()));
    let mut out = String::with_capacity(64 * 1024);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &r.prefixed);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &r.process);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

/// `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Startup values taken from the config; logs the shared-uid warning
/// (security.md §3 "Identity").
pub fn configure(cfg: &crate::config::Config) {
    let shared = shared_worker_uid(cfg);
    state::SHARED_WORKER_UID.store(shared, Relaxed);
    if shared {
        log::warn!(
            "workers of different owners run under one uid and can read each other's files and signal each other; \
             set security.worker.uid_per_owner (hotplex_security_shared_worker_uid 1)"
        );
    }
    let w = &cfg.security.worker;
    if cfg.limits.worker.rlimit_nproc != 0 && w.run_as.is_none() && w.uid_per_owner.is_none() {
        // security.md §3 "Rlimits": RLIMIT_NPROC counts every process of the real uid.
        log::warn!(
            "limits.worker.rlimit_nproc counts every process of the gateway's own uid (workers run as it); \
             set security.worker.run_as or uid_per_owner"
        );
    }
    let _ = m();
}

/// Whether `cfg` lets workers of several possible owners (mode `jwt`, or
/// API keys naming more than one owner) share one uid: no `uid_per_owner`.
/// Startup and every applied reload set the gauge from it.
pub fn shared_worker_uid(cfg: &crate::config::Config) -> bool {
    use crate::config::AuthMode;
    let sec = &cfg.security;
    let mut owners: Vec<&str> = sec.api_keys.iter().map(|k| k.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let several = sec.auth.modes.contains(&AuthMode::Jwt) || owners.len() > 1;
    several && sec.worker.uid_per_owner.is_none()
}

// ---- connections ---------------------------------------------------------

#[inline]
pub fn ws_bytes_in(n: usize) {
    m().ws_bytes.add(0, n as u64);
}

#[inline]
pub fn ws_bytes_out(n: usize) {
    m().ws_bytes.add(1, n as u64);
}

/// An HTTP-level refusal on `/ws`.
pub fn upgrade_rejected(r: UpgradeRejection) {
    m().ws_rejections.inc(r as usize);
}

/// A close started by the gateway (`code`, reason text) → its label; a slow
/// consumer close also counts `hotplex_slow_consumer_disconnects_total`.
pub fn close_reason(code: u16, text: &str) -> CloseReason {
    if text == "slow consumer" {
        m().slow_consumer.inc(0);
    }
    labels::close_reason(code, text)
}

/// A change of the bytes held in outbound queues.
#[inline]
pub fn send_queue_delta(delta: i64) {
    state::SEND_QUEUE_BYTES.add(delta);
}

// ---- sessions ------------------------------------------------------------

/// A session reached `idle`: new, or resumed from `terminated` (a reset is neither).
pub fn session_live(wt: WorkerType, resumed: bool) {
    let i = labels::worker_type(wt);
    if resumed { m().sessions_resumed.inc(i) } else { m().sessions_created.inc(i) }
}

/// A termination, by the `message` of its `state{terminated}`.
pub fn session_terminated(wt: WorkerType, message: &str) {
    if let Some(r) = labels::term_reason(message) {
        m().sessions_terminated.inc(labels::worker_type(wt) * labels::TERM_REASONS.len() + r);
    }
}

/// Startup recovery ended a live session (`restart_recovery`); `wt` as stored.
pub fn session_recovered(wt: &str) {
    if let Some(wt) = WorkerType::parse(wt) {
        session_terminated(wt, "restart_recovery");
    }
}

pub fn session_deleted(source: DeleteSource) {
    m().sessions_deleted.inc(source as usize);
}

/// An init answered with an error (aep §4.2 codes; others are not init failures).
pub fn init_failed(code: ErrorCode) {
    if let Some(i) = labels::init_failure_code(code) {
        m().init_failures.inc(i);
    }
}

// ---- turns -----------------------------------------------------------------

pub use labels::turn_outcome;

/// A turn ended (its `done` was emitted): count, duration, tokens and cost.
pub fn turn_ended(wt: WorkerType, started: Instant, outcome: TurnOutcome, stats: Option<&Stats>) {
    let w = labels::worker_type(wt);
    let m = m();
    m.turns.inc(w * labels::TURN_OUTCOMES.len() + outcome as usize);
    if let Some(h) = m.turn_duration.get(w) {
        h.observe_duration(started.elapsed());
    }
    let Some(s) = stats else { return };
    let kinds = labels::TOKEN_KINDS.len();
    for (k, v) in [s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens].into_iter().enumerate() {
        if let Some(v) = v.filter(|v| *v > 0) {
            m.turn_tokens.add(w * kinds + k, v);
        }
    }
    if let Some(c) = s.cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
        m.turn_cost.add(w, (c * 1e9).round() as u64);
    }
}

/// An adapter event inside a turn: the first content event of the turn
/// (`seen` = content was seen before) is `hotplex_turn_first_delta_seconds`.
#[inline]
pub fn turn_event(wt: WorkerType, seen: bool, started: Instant, ev: &Event) {
    if !seen && labels::is_content(ev) {
        if let Some(h) = m().turn_first_delta.get(labels::worker_type(wt)) {
            h.observe_duration(started.elapsed());
        }
    }
}

// ---- events ------------------------------------------------------------

/// Index of an S→C event type (stored in a `SessionFrame`).
#[inline]
pub fn event_type_index(name: &str) -> u8 {
    labels::event_type(name) as u8
}

/// A session event got a seq (`hotplex_session_events_total`, errors too).
#[inline]
pub fn session_event(ev: &Event) {
    m().session_events.inc(labels::event_type(ev.type_name()));
    if let Some(code) = labels::error_of(ev) {
        m().aep_errors.inc(labels::error_code(code));
    }
}

/// A session frame queued to one connection.
#[inline]
pub fn frame_sent(type_idx: u8) {
    m().events_sent.inc(type_idx as usize);
}

/// A connection-local frame (seq 0) queued to one connection.
pub fn local_event_sent(ev: &Event) {
    m().events_sent.inc(labels::event_type(ev.type_name()));
    if let Some(code) = labels::error_of(ev) {
        m().aep_errors.inc(labels::error_code(code));
    }
}

/// A frame built outside the event types (replay rows): by its type name.
pub fn frame_sent_named(name: &str) {
    m().events_sent.inc(labels::event_type(name));
}

/// A client frame (`type` as decoded; unknown → `other`).
#[inline]
pub fn event_received(name: &str) {
    m().events_received.inc(labels::client_event_type(name));
}

#[inline]
pub fn frame_coalesced() {
    m().frames_coalesced.inc(0);
}

/// A frame that carried worker output was written out to a socket.
#[inline]
pub fn line_to_frame(origin: Instant, now: Instant) {
    m().line_to_frame.observe_duration(now.saturating_duration_since(origin));
}

thread_local! {
    static LINE_ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// When the worker output being handled on this thread was read (frames
/// created meanwhile carry it into `hotplex_line_to_frame_seconds`).
#[inline]
pub fn line_origin() -> Option<Instant> {
    LINE_ORIGIN.with(Cell::get)
}

/// Marks worker stdout reads on a reactor for [`line_origin`]; clears on drop.
pub struct LineOrigin(());

impl LineOrigin {
    pub fn begin() -> LineOrigin {
        LineOrigin(())
    }

    /// Bytes were just read: frames from here on started now.
    #[inline]
    pub fn mark(&self) {
        LINE_ORIGIN.with(|c| c.set(Some(Instant::now())));
    }
}

impl Drop for LineOrigin {
    fn drop(&mut self) {
        LINE_ORIGIN.with(|c| c.set(None));
    }
}

/// An init with `last_seq` (`expired`: the replay started with SESSION_EXPIRED).
pub fn replay_request(expired: bool) {
    m().replay_requests.inc(expired as usize);
}

pub fn replay_events(n: usize) {
    m().replay_events.add(0, n as u64);
}

// ---- workers -------------------------------------------------------------

pub fn worker_spawned(wt: WorkerType, ok: bool) {
    m().worker_spawns.inc(labels::worker_type(wt) * labels::SPAWN_RESULTS.len() + (!ok) as usize);
}

/// A worker exit (`by_gateway`: the gateway had signalled its group).
pub fn worker_exited(wt: WorkerType, code: Option<i32>, signal: Option<i32>, by_gateway: bool) {
    let class = labels::exit_class(code, signal, by_gateway);
    m().worker_exits.inc(labels::worker_type(wt) * labels::EXIT_CLASSES.len() + class as usize);
}

#[inline]
pub fn worker_io(wt: WorkerType, stream: Stream, n: usize) {
    m().worker_io.add(labels::worker_type(wt) * labels::STREAMS.len() + stream as usize, n as u64);
}

pub fn worker_unmapped_line(wt: WorkerType) {
    m().worker_unmapped.inc(labels::worker_type(wt));
}

pub fn worker_output_limit(wt: WorkerType) {
    m().worker_output_limit.inc(labels::worker_type(wt));
}

// ---- permissions ---------------------------------------------------------

pub fn permission_requested(wt: WorkerType) {
    m().permission_requests.inc(labels::worker_type(wt));
}

/// A permission outcome; `asked` is when the request went out (none for an
/// immediate policy refusal).
pub fn permission_decided(wt: WorkerType, decision: Decision, asked: Option<Instant>) {
    m().permission_decisions.inc(labels::worker_type(wt) * labels::DECISIONS.len() + decision as usize);
    if let Some(t) = asked {
        m().permission_wait.observe_duration(t.elapsed());
    }
}

/// Pending requests dropped without an answer (turn ended, interrupt,
/// terminate, reset, delete, the agent withdrew them): `cancelled`.
pub fn permissions_cancelled(wt: WorkerType, asked: impl IntoIterator<Item = Instant>) {
    for t in asked {
        permission_decided(wt, Decision::Cancelled, Some(t));
    }
}

// ---- store -----------------------------------------------------------------

/// The store writer started: its queue capacity and a probe for depth and
/// failure state. Returns the id to pass to [`store_detached`].
pub fn store_attached(capacity: usize, probe: state::StoreProbe) -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Relaxed);
    state::STORE_CAPACITY.store(capacity as u64, Relaxed);
    let mut g = match state::STORE_PROBE.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    *g = Some((id, probe));
    id
}

/// The writer `id` stopped (drops its probe).
pub fn store_detached(id: u64) {
    let mut g = match state::STORE_PROBE.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if g.as_ref().is_some_and(|(i, _)| *i == id) {
        *g = None;
    }
}

/// A committed batch: its size and BEGIN→COMMIT time.
pub fn store_batch(ops: usize, commit: Duration) {
    m().store_batch_ops.observe_count(ops as u64);
    m().store_commit.observe_duration(commit);
}

/// `n` committed ops of kind `label` (`WriteOp::metric_label`, or `seq_bump`).
pub fn store_ops(label: &str, n: u64) {
    if let Some(i) = labels::store_op(label) {
        m().store_ops.add(i, n);
    }
}

pub fn store_merged(n: u64) {
    m().store_merged.add(0, n);
}

pub fn store_error(op: StoreErrorOp) {
    m().store_errors.inc(op as usize);
}

/// Retention removed `n` rows of `what` (`events`, `sessions`, `tombstones`, `audit`).
pub fn store_purged(what: &str, n: u64) {
    if let Some(i) = labels::purged(what) {
        m().store_purged.add(i, n);
    }
}

/// Stored-state gauges (refreshed every GC interval).
pub fn store_sizes(terminated: u64, db_bytes: u64, wal_bytes: u64) {
    state::SESSIONS_TERMINATED.store(terminated, Relaxed);
    state::DB_BYTES.store(db_bytes, Relaxed);
    state::WAL_BYTES.store(wal_bytes, Relaxed);
}

// ---- security and limits ---------------------------------------------------

/// A rejected credential; `reason` is a `security::Reason::label()` (or `ip`,
/// `scope`, `missing`). Unknown labels are not counted.
pub fn auth_failure(listener: Listener, reason: &str) {
    if let Some(r) = labels::auth_reason(reason) {
        m().auth_failures.inc(listener as usize * labels::AUTH_REASONS.len() + r);
    }
}

pub fn rate_limited_frame() {
    m().rate_limited.inc(0);
}

pub fn throttle_notice() {
    m().throttle_notices.inc(0);
}

/// One admin request (`route` templated, e.g. `/admin/sessions/{id}`).
pub fn admin_request(route: &'static str, status: u16) {
    m().admin_requests.inc(route, status);
}

// ---- reactors ------------------------------------------------------------

/// A reactor's loop accounting: iterations and time outside `poll()`.
pub struct ReactorMeter {
    id: usize,
    woke: Option<Instant>,
}

impl ReactorMeter {
    /// Called once on the reactor thread: pins its shard, makes its series appear.
    pub fn start(id: usize) -> ReactorMeter {
        cells::bind_shard(id);
        m().reactors.seen.fetch_max(id + 1, Relaxed);
        ReactorMeter { id, woke: None }
    }

    /// `poll()` returned.
    #[inline]
    pub fn woke(&mut self) {
        self.woke = Some(Instant::now());
        m().reactors.add(self.id, catalogue::ITERATIONS, 1);
    }

    /// The iteration's work is done (about to poll again).
    #[inline]
    pub fn idle(&mut self) {
        if let Some(t) = self.woke.take() {
            m().reactors.add(self.id, catalogue::BUSY_NS, t.elapsed().as_nanos() as u64);
        }
    }
}

/// A reactor timer fired at `now` for `deadline`.
#[inline]
pub fn timer_lag(now: Instant, deadline: Instant) {
    m().timer_lag.observe_duration(now.saturating_duration_since(deadline));
}

// ---- config, tracing, readiness ------------------------------------------

pub fn config_reloaded(result: ReloadResult) {
    m().config_reloads.inc(result as usize);
}

pub fn set_config_generation(n: u64) {
    state::CONFIG_GENERATION.store(n, Relaxed);
}

pub fn set_config_restart_pending(pending: bool) {
    state::RESTART_PENDING.store(pending, Relaxed);
}

/// `GET /ready` would answer 200 (also needs: not draining, store not failing).
pub fn set_ready(ready: bool) {
    state::READY.store(ready, Relaxed);
}

pub fn set_draining(draining: bool) {
    state::DRAINING.store(draining, Relaxed);
}

pub fn set_shared_worker_uid(shared: bool) {
    state::SHARED_WORKER_UID.store(shared, Relaxed);
}
