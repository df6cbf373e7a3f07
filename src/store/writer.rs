//! The `store-writer` thread: the only SQLite write connection (operations.md
//! §3.4). Group commit: it blocks for one op, takes whatever else is queued
//! (up to `batch_max_ops`, or until `commit_interval` passed) and commits it
//! in one transaction; consecutive `message.delta` events of one message are
//! merged into one row. After each commit it tells every reactor the highest
//! committed seq per session — reactors send nothing to clients before that
//! (commit before send). Failures: an op-specific error drops only that op
//! (re-run op by op under savepoints); a transient one retries the whole
//! batch with backoff (the queue then fills and back-pressures producers);
//! corruption stops the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use rusqlite::{Connection, ErrorCode, TransactionBehavior, params};

use super::failpoint::{FailPoint, Point};
use super::ops::{Append, CommitSink, SessionRow, SessionUpdate, WriteOp};
use super::retention::{self, RetentionConfig};
use crate::security::audit::{self, AuditAck, AuditRecord, FloodControl};

/// Group-commit knobs (`store.batch_max_ops`, `store.commit_interval`).
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub batch_max_ops: usize,
    pub commit_interval: Duration,
    pub queue_capacity: usize,
    pub reactors: usize,
    /// Retention jobs, run between batches (`None`: never).
    pub retention: Option<RetentionConfig>,
}

/// The writer knobs a config reload may change (operations.md §1.8:
/// `store.batch_max_ops`, `commit_interval` from the next batch; retention
/// and `sessions.gc_interval` from the next job run).
#[derive(Clone, Debug)]
pub struct WriterTuning {
    pub batch_max_ops: usize,
    pub commit_interval: Duration,
    pub retention: Option<RetentionConfig>,
}

/// Counters the writer keeps (read by metrics and `/ready`).
#[derive(Default, Debug)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub ops: AtomicU64,
    pub events: AtomicU64,
    pub deltas_merged: AtomicU64,
    pub errors: AtomicU64,
    pub last_commit_ms: AtomicU64,
    pub purged_events: AtomicU64,
    pub purged_sessions: AtomicU64,
    pub purged_tombstones: AtomicU64,
    pub purged_audit: AtomicU64,
    /// Audit rows committed / held back by flood control / dropped on a full queue.
    pub audit_rows: AtomicU64,
    pub audit_suppressed: AtomicU64,
    pub audit_dropped: AtomicU64,
    /// Set while a transient failure is being retried.
    pub failing: AtomicBool,
}

/// How reactors and other threads reach the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<WriteOp>,
    wake_wanted: Arc<Vec<AtomicBool>>,
    pub stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Non-blocking enqueue (reactors). On `Err` the op is handed back; call
    /// [`WriterHandle::want_wake`] and retry when told.
    pub fn try_send(&self, op: WriteOp) -> Result<(), WriteOp> {
        match self.tx.try_send(op) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(op)) | Err(TrySendError::Disconnected(op)) => Err(op),
        }
    }

    /// Blocking enqueue (threads that may wait: admin, shutdown).
    pub fn send(&self, op: WriteOp) {
        let _ = self.tx.send(op);
    }

    /// Enqueue waiting at most `timeout` (admin thread: audit rows of mutations).
    pub fn send_timeout(&self, op: WriteOp, timeout: Duration) -> Result<(), WriteOp> {
        self.tx.send_timeout(op, timeout).map_err(|e| e.into_inner())
    }

    /// Ask for a `writable` notice once the queue has room.
    pub fn want_wake(&self, reactor: usize) {
        if let Some(f) = self.wake_wanted.get(reactor) {
            f.store(true, Ordering::SeqCst);
        }
    }

    pub fn depth(&self) -> usize {
        self.tx.len()
    }

    /// Block until everything queued so far is committed.
    pub fn barrier(&self) {
        let (tx, rx) = bounded(1);
        self.send(WriteOp::Barrier(tx));
        let _ = rx.recv();
    }

    /// Hand new knobs to the writer (a config reload); false when the queue
    /// stayed full for `timeout`.
    pub fn reconfigure(&self, tuning: WriterTuning, timeout: Duration) -> bool {
        self.tx.send_timeout(WriteOp::Reconfigure(Box::new(tuning)), timeout).is_ok()
    }

    /// Drain, commit, checkpoint, mark the clean shutdown (bounded wait).
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let (tx, rx) = bounded(1);
        self.send(WriteOp::Shutdown(tx));
        rx.recv_timeout(timeout).is_ok()
    }
}

/// Start the writer thread on `conn`.
pub fn start(
    conn: Connection,
    cfg: WriterConfig,
    sink: Box<dyn CommitSink>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = bounded(cfg.queue_capacity.max(1));
    let wake_wanted: Arc<Vec<AtomicBool>> = Arc::new((0..cfg.reactors).map(|_| AtomicBool::new(false)).collect());
    let stats = Arc::new(WriterStats::default());
    let (probe_tx, probe_stats) = (tx.clone(), stats.clone());
    let probe = Box::new(move || (probe_tx.len(), probe_stats.failing.load(Ordering::Relaxed)));
    let metrics_id = crate::metrics::store_attached(cfg.queue_capacity, probe);
    let handle = WriterHandle { tx, wake_wanted: wake_wanted.clone(), stats: stats.clone() };
    let w = Writer {
        conn,
        cfg,
        sink,
        rx,
        wake_wanted,
        stats,
        failpoint: FailPoint::from_env(),
        flood: FloodControl::new(),
        metrics_id,
    };
    let join = std::thread::Builder::new().name("store-writer".into()).spawn(move || w.run())?;
    Ok((handle, join))
}

struct Writer {
    conn: Connection,
    cfg: WriterConfig,
    sink: Box<dyn CommitSink>,
    rx: Receiver<WriteOp>,
    wake_wanted: Arc<Vec<AtomicBool>>,
    stats: Arc<WriterStats>,
    failpoint: Option<FailPoint>,
    /// Audit flood control: one instance, so the limit is global.
    flood: FloodControl,
    /// Our probe in `metrics` (dropped at shutdown).
    metrics_id: u64,
}

/// A run of consecutive deltas of one message, stored as one row.
struct Merge {
    first: u64,
    last: u64,
    ts: u64,
    message_id: String,
    content_type: Option<String>,
    content: String,
    splits: Vec<usize>,
    /// The original `data` when the run has a single part.
    single: Option<Vec<u8>>,
}

/// What one committed batch did.
#[derive(Default)]
struct Outcome {
    /// (reactor, session) → highest committed seq.
    committed: HashMap<Arc<str>, (usize, u64)>,
    failed: Vec<(usize, Arc<str>, u64)>,
    /// Indices (in the batch) of ops dropped by the op-by-op re-run.
    failed_ops: Vec<usize>,
    events: u64,
    merged: u64,
    /// BEGIN → COMMIT.
    took: Duration,
}

enum Failure {
    /// Retry the whole batch later (I/O, disk full, busy).
    Transient(rusqlite::Error),
    /// Caused by one op (constraint, too big): re-run op by op.
    OpSpecific(rusqlite::Error),
    /// The file is damaged: stop.
    Corrupt(rusqlite::Error),
}

fn classify(e: rusqlite::Error) -> Failure {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) | Some(ErrorCode::TooBig) | Some(ErrorCode::TypeMismatch) => {
            Failure::OpSpecific(e)
        }
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => Failure::Corrupt(e),
        Some(_) => Failure::Transient(e),
        // Errors from rusqlite itself (conversion, invalid parameters) are op-specific.
        None => Failure::OpSpecific(e),
    }
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<WriteOp> = Vec::with_capacity(self.cfg.batch_max_ops);
        let mut interval = self.cfg.retention.as_ref().map(|r| r.interval);
        let mut next_jobs = interval.map(|i| Instant::now() + i);
        self.refresh_sizes();
        loop {
            // wake for the retention jobs or a due audit summary, whichever is first
            let summary_at = self
                .flood
                .next_due()
                .map(|ms| Instant::now() + Duration::from_millis(ms.saturating_sub(crate::protocol::now_ms())));
            let deadline = match (next_jobs, summary_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match deadline {
                Some(at) => match self.rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(op) => Some(op),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                },
                None => match self.rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => return, // every sender is gone
                },
            };
            let mut stop = false;
            if let Some(first) = first {
                stop = matches!(first, WriteOp::Shutdown(_));
                batch.push(first);
                let opened = Instant::now();
                while !stop && batch.len() < self.cfg.batch_max_ops && opened.elapsed() < self.cfg.commit_interval {
                    match self.rx.try_recv() {
                        Ok(op) => {
                            stop = matches!(op, WriteOp::Shutdown(_));
                            batch.push(op);
                        }
                        Err(_) => break,
                    }
                }
            }
            if stop {
                // drain everything still queued into the final batch
                while let Ok(op) = self.rx.try_recv() {
                    batch.push(op);
                }
            }
            self.audit_flood(&mut batch, stop);
            if !batch.is_empty() {
                if let Some(f) = &mut self.failpoint {
                    f.count(batch.iter().filter(|op| matches!(op, WriteOp::Append(_))).count() as u64);
                }
                let span = crate::otel::start(
                    "hotplex.store.batch",
                    crate::otel::Kind::Internal,
                    crate::otel::Parent::StoreRoot,
                );
                let mut outcome = self.commit(&batch);
                batch_span(span, &batch, &outcome);
                self.fail_at(Point::AfterCommit);
                let failed_ops = std::mem::take(&mut outcome.failed_ops);
                self.report(outcome);
                let mut shutdown_reply = None;
                for (i, op) in batch.drain(..).enumerate() {
                    match op {
                        WriteOp::Barrier(reply) => {
                            let _ = reply.send(());
                        }
                        WriteOp::Shutdown(reply) => shutdown_reply = Some(reply),
                        WriteOp::Reconfigure(t) => {
                            self.cfg.batch_max_ops = t.batch_max_ops.max(1);
                            self.cfg.commit_interval = t.commit_interval;
                            self.cfg.retention = t.retention;
                            interval = self.cfg.retention.as_ref().map(|r| r.interval);
                            let sooner = interval.map(|i| Instant::now() + i);
                            next_jobs = match (next_jobs, sooner) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (_, b) => b,
                            };
                        }
                        WriteOp::OwnerUid { reply, .. } => {
                            let _ = reply.try_send(!failed_ops.contains(&i));
                        }
                        WriteOp::Audit(rec) => {
                            let failed = failed_ops.contains(&i);
                            if !failed {
                                self.stats.audit_rows.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Some(ack) = rec.ack {
                                let _ = ack.try_send(if failed { AuditAck::Failed } else { AuditAck::Stored });
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(reply) = shutdown_reply {
                    self.finish();
                    crate::metrics::store_detached(self.metrics_id);
                    let _ = reply.send(());
                    return;
                }
            }
            if next_jobs.is_some_and(|at| Instant::now() >= at) {
                self.retention_jobs();
                next_jobs = interval.map(|i| Instant::now() + i);
            }
        }
    }

    /// Flood control before the commit (so a retried batch is not counted
    /// twice): held-back audit rows leave the batch (acknowledged as
    /// suppressed); summaries of closed windows — all of them at shutdown —
    /// join it.
    fn audit_flood(&mut self, batch: &mut Vec<WriteOp>, shutdown: bool) {
        let now = crate::protocol::now_ms();
        let mut summaries = if shutdown { Vec::new() } else { self.flood.due(now) };
        let (flood, stats) = (&mut self.flood, &self.stats);
        batch.retain(|op| match op {
            WriteOp::Audit(rec) if !flood.admit(&rec.entry, now) => {
                stats.audit_suppressed.fetch_add(1, Ordering::Relaxed);
                if let Some(ack) = &rec.ack {
                    let _ = ack.try_send(AuditAck::Suppressed);
                }
                false
            }
            _ => true,
        });
        if shutdown {
            summaries = self.flood.drain(now);
        }
        let at = batch.iter().position(|op| matches!(op, WriteOp::Audit(_))).unwrap_or(batch.len());
        batch.splice(
            at..at,
            summaries.into_iter().map(|entry| WriteOp::Audit(Box::new(AuditRecord { entry, ack: None }))),
        );
    }

    fn retention_jobs(&mut self) {
        let Some(cfg) = self.cfg.retention.clone() else { return };
        match retention::run(&mut self.conn, &cfg, crate::protocol::now_ms()) {
            Ok(p) => {
                self.stats.purged_events.fetch_add(p.events, Ordering::Relaxed);
                self.stats.purged_sessions.fetch_add(p.sessions, Ordering::Relaxed);
                self.stats.purged_tombstones.fetch_add(p.tombstones, Ordering::Relaxed);
                self.stats.purged_audit.fetch_add(p.audit, Ordering::Relaxed);
                crate::metrics::store_purged("events", p.events);
                crate::metrics::store_purged("sessions", p.sessions);
                crate::metrics::store_purged("tombstones", p.tombstones);
                crate::metrics::store_purged("audit", p.audit);
                if p != retention::Purged::default() {
                    log::info!(
                        "store retention: events={} sessions={} tombstones={} audit={}",
                        p.events,
                        p.sessions,
                        p.tombstones,
                        p.audit
                    );
                }
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                crate::metrics::store_error(crate::metrics::StoreErrorOp::Purge);
                log::error!("store retention job failed: {e}");
            }
        }
        self.refresh_sizes();
    }

    /// `hotplex_sessions{state="terminated"}`, DB and WAL file sizes (each GC interval).
    fn refresh_sizes(&self) {
        let terminated: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM sessions WHERE state = 'terminated'", [], |r| r.get(0))
            .unwrap_or(0);
        let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let (db, wal) = match self.conn.path().filter(|p| !p.is_empty()) {
            Some(p) => (size(p), size(&format!("{p}-wal"))),
            None => (0, 0),
        };
        crate::metrics::store_sizes(terminated.max(0) as u64, db, wal);
    }

    fn report(&self, o: Outcome) {
        crate::metrics::store_ops("seq_bump", o.committed.len() as u64);
        let mut by_reactor: HashMap<usize, Vec<(Arc<str>, u64)>> = HashMap::new();
        for (session, (reactor, seq)) in o.committed {
            by_reactor.entry(reactor).or_default().push((session, seq));
        }
        for (reactor, list) in by_reactor {
            self.sink.committed(reactor, list);
        }
        for (reactor, session, seq) in o.failed {
            self.sink.failed(reactor, session, seq);
        }
        self.stats.events.fetch_add(o.events, Ordering::Relaxed);
        self.stats.deltas_merged.fetch_add(o.merged, Ordering::Relaxed);
        crate::metrics::store_merged(o.merged);
        // Room again: wake reactors that found the queue full.
        if self.rx.len() < self.cfg.queue_capacity / 2 {
            for (i, f) in self.wake_wanted.iter().enumerate() {
                if f.swap(false, Ordering::SeqCst) {
                    self.sink.writable(i);
                }
            }
        }
    }

    /// Commit `batch`, retrying transient failures; never returns without a commit.
    fn commit(&mut self, batch: &[WriteOp]) -> Outcome {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.try_commit(batch, true) {
                Ok(o) => {
                    observe_batch(batch, &o);
                    self.stats.failing.store(false, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.stats.last_commit_ms.store(crate::protocol::now_ms(), Ordering::Relaxed);
                    return o;
                }
                Err(Failure::OpSpecific(e)) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::store_error(crate::metrics::StoreErrorOp::Commit);
                    log::error!("store: batch failed ({e}); re-running op by op");
                    match self.commit_one_by_one(batch) {
                        Ok(o) => {
                            observe_batch(batch, &o);
                            return o;
                        }
                        Err(Failure::Corrupt(e)) => corrupt(e),
                        Err(Failure::Transient(e)) | Err(Failure::OpSpecific(e)) => {
                            log::error!("store: commit failed: {e}; retrying");
                        }
                    }
                }
                Err(Failure::Transient(e)) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::store_error(crate::metrics::StoreErrorOp::Commit);
                    if !self.stats.failing.swap(true, Ordering::Relaxed) {
                        log::error!("store: commit failed: {e}; retrying with backoff");
                    }
                }
                Err(Failure::Corrupt(e)) => corrupt(e),
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn try_commit(&mut self, batch: &[WriteOp], merge: bool) -> Result<Outcome, Failure> {
        let began = Instant::now();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(classify)?;
        let mut o = Outcome::default();
        if self.failpoint.as_ref().is_some_and(|f| f.armed(Point::MidBatch)) {
            let _ = apply_batch(&tx, &batch[..batch.len() / 2], merge, &mut o);
            hit(&self.failpoint, Point::MidBatch);
        }
        apply_batch(&tx, batch, merge, &mut o).map_err(classify)?;
        finish_batch(&tx, &o).map_err(classify)?;
        hit(&self.failpoint, Point::BeforeCommit);
        tx.commit().map_err(classify)?;
        o.took = began.elapsed();
        Ok(o)
    }

    fn fail_at(&self, point: Point) {
        hit(&self.failpoint, point);
    }

    /// Each op under its own savepoint: only failing ops are dropped.
    fn commit_one_by_one(&mut self, batch: &[WriteOp]) -> Result<Outcome, Failure> {
        let began = Instant::now();
        let mut tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(classify)?;
        let mut o = Outcome::default();
        for (i, op) in batch.iter().enumerate() {
            let sp = tx.savepoint().map_err(classify)?;
            let mut one = Outcome::default();
            match apply_batch(&sp, std::slice::from_ref(op), false, &mut one) {
                Ok(()) => {
                    sp.commit().map_err(classify)?;
                    for (k, v) in one.committed {
                        let e = o.committed.entry(k).or_insert(v);
                        e.1 = e.1.max(v.1);
                    }
                    o.events += one.events;
                }
                Err(e) => {
                    drop(sp); // rolls back to the savepoint
                    match classify(e) {
                        Failure::OpSpecific(e) => {
                            log::error!("store: dropped one {} op: {e}", op.metric_label());
                            o.failed_ops.push(i);
                            if let WriteOp::Append(a) = op {
                                o.failed.push((a.reactor, a.session.clone(), a.frame.seq));
                            }
                        }
                        other => return Err(other),
                    }
                }
            }
        }
        finish_batch(&tx, &o).map_err(classify)?;
        tx.commit().map_err(classify)?;
        o.took = began.elapsed();
        Ok(o)
    }

    fn finish(&mut self) {
        let res = self.conn.execute_batch(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('clean_shutdown', '1'); \
             PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;",
        );
        if let Err(e) = res {
            log::error!("store: clean shutdown bookkeeping failed: {e}");
        }
    }
}

/// Batch size, commit time and ops by kind of a committed batch (ops the
/// op-by-op re-run dropped are excluded).
fn observe_batch(batch: &[WriteOp], o: &Outcome) {
    let mut by_label: Vec<(&'static str, u64)> = Vec::with_capacity(8);
    let kept = batch.iter().enumerate().filter(|(i, _)| !o.failed_ops.contains(i)).map(|(_, op)| op);
    for op in kept.filter(|op| !matches!(op, WriteOp::Barrier(_) | WriteOp::Shutdown(_))) {
        let label = op.metric_label();
        match by_label.iter_mut().find(|(l, _)| *l == label) {
            Some(e) => e.1 += 1,
            None => by_label.push((label, 1)),
        }
    }
    let real: u64 = by_label.iter().map(|e| e.1).sum();
    if real == 0 {
        return;
    }
    crate::metrics::store_batch(real as usize, o.took);
    for (label, n) in by_label {
        crate::metrics::store_ops(label, n);
    }
}

/// Abort the process if the test fail point `point` is armed.
fn hit(failpoint: &Option<FailPoint>, point: Point) {
    if let Some(f) = failpoint {
        f.hit(point);
    }
}

fn corrupt(e: rusqlite::Error) -> ! {
    log::error!("store: database is corrupt ({e}); stopping");
    crate::logging::flush();
    std::process::exit(1);
}

fn apply_batch(tx: &Connection, batch: &[WriteOp], merge: bool, o: &mut Outcome) -> rusqlite::Result<()> {
    let mut runs: HashMap<Arc<str>, (usize, Merge)> = HashMap::new();
    for op in batch {
        match op {
            WriteOp::Append(a) => {
                note_committed(o, a);
                let delta = a.frame.delta.as_ref().filter(|_| merge);
                if let Some(d) = delta {
                    if let Some((_, run)) = runs.get_mut(&a.session) {
                        if run.message_id == d.message_id
                            && run.content_type == d.content_type
                            && run.last + 1 == a.frame.seq
                        {
                            run.last = a.frame.seq;
                            run.ts = a.frame.timestamp_ms;
                            run.content.push_str(&d.content);
                            run.splits.push(d.content.len());
                            run.single = None;
                            o.merged += 1;
                            continue;
                        }
                    }
                    flush_run(tx, &mut runs, &a.session, o)?;
                    runs.insert(
                        a.session.clone(),
                        (
                            a.reactor,
                            Merge {
                                first: a.frame.seq,
                                last: a.frame.seq,
                                ts: a.frame.timestamp_ms,
                                message_id: d.message_id.clone(),
                                content_type: d.content_type.clone(),
                                content: d.content.clone(),
                                splits: vec![d.content.len()],
                                single: Some(a.frame.data_json().to_vec()),
                            },
                        ),
                    );
                } else {
                    flush_run(tx, &mut runs, &a.session, o)?;
                    insert_event(tx, a)?;
                    o.events += 1;
                }
            }
            WriteOp::InsertSession(row) => insert_session(tx, row)?,
            WriteOp::Heartbeat { at_ms } => super::queries::heartbeat(tx, *at_ms)?,
            WriteOp::Revoke(r) => super::queries::upsert_revocation(tx, r)?,
            WriteOp::Unrevoke { kind, value } => super::queries::delete_revocation(tx, kind, value)?,
            WriteOp::UpdateSession { id, update } => update_session(tx, id, update)?,
            WriteOp::TurnStart { session, turn, start_seq, started_at, input } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO turns(session_id, turn, start_seq, started_at, input) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![&**session, *turn as i64, *start_seq as i64, *started_at as i64, input])?;
            }
            WriteOp::TurnEnd { session, turn, end_seq, ended_at, success, stats } => {
                tx.prepare_cached(
                    "UPDATE turns SET end_seq = ?3, ended_at = ?4, success = ?5, stats = ?6 WHERE session_id = ?1 AND turn = ?2",
                )?
                .execute(params![&**session, *turn as i64, *end_seq as i64, *ended_at as i64, *success as i64, stats])?;
            }
            WriteOp::Delete { session, at } => {
                // Events appended before the delete were still "committed" (then
                // removed): their notice must go out so the reactor releases them.
                runs.remove(session);
                for sql in [
                    "DELETE FROM events WHERE session_id = ?1",
                    "DELETE FROM turns WHERE session_id = ?1",
                    "DELETE FROM message_snapshots WHERE session_id = ?1",
                ] {
                    tx.prepare_cached(sql)?.execute(params![&**session])?;
                }
                tx.prepare_cached(
                    "UPDATE sessions SET state = 'deleted', state_reason = NULL, config_json = '{}', terminated_at = ?2, \
                     updated_at = ?2, worker_pid = NULL, worker_start_ticks = NULL, live_since = NULL WHERE id = ?1",
                )?
                .execute(params![&**session, *at as i64])?;
            }
            WriteOp::Forget { session } => {
                runs.remove(session);
                o.committed.remove(session);
                tx.prepare_cached("DELETE FROM sessions WHERE id = ?1")?.execute(params![&**session])?;
            }
            WriteOp::Audit(rec) => {
                audit::insert(tx, &rec.entry)?;
            }
            WriteOp::OwnerUid { owner, uid, .. } => {
                tx.prepare_cached("INSERT INTO owner_uids(owner, uid) VALUES (?1, ?2)")?
                    .execute(params![owner, i64::from(*uid)])?;
            }
            WriteOp::Barrier(_) | WriteOp::Shutdown(_) | WriteOp::Reconfigure(_) => {}
        }
    }
    let sessions: Vec<Arc<str>> = runs.keys().cloned().collect();
    for s in sessions {
        flush_run(tx, &mut runs, &s, o)?;
    }
    Ok(())
}

/// Finish a `hotplex.store.batch` span (operations.md §6.2; sampled by
/// `tracing.store_sample_ratio`): op and event counts and event bytes only.
fn batch_span(mut span: crate::otel::Span, batch: &[WriteOp], o: &Outcome) {
    if !span.is_recording() {
        return;
    }
    let bytes: usize = batch
        .iter()
        .map(|op| match op {
            WriteOp::Append(a) => a.frame.data_json().len(),
            _ => 0,
        })
        .sum();
    span.set_u64("hotplex.ops", batch.len() as u64);
    span.set_u64("hotplex.events", o.events);
    span.set_u64("hotplex.merged", o.merged);
    span.set_u64("hotplex.bytes", bytes as u64);
    if let Some(start) = span.start_ns() {
        span.set_u64("hotplex.commit_us", crate::otel::span::now_ns().saturating_sub(start) / 1000);
    }
    span.end();
}

fn note_committed(o: &mut Outcome, a: &Append) {
    let e = o.committed.entry(a.session.clone()).or_insert((a.reactor, 0));
    e.1 = e.1.max(a.frame.seq);
}

fn insert_event(tx: &Connection, a: &Append) -> rusqlite::Result<()> {
    let data = std::str::from_utf8(a.frame.data_json()).unwrap_or("{}");
    tx.prepare_cached("INSERT INTO events(session_id, seq, seq_first, type, ts, data, splits) VALUES (?1, ?2, NULL, ?3, ?4, ?5, NULL)")?
        .execute(params![&*a.session, a.frame.seq as i64, a.frame.type_name, a.frame.timestamp_ms as i64, data])?;
    Ok(())
}

fn flush_run(
    tx: &Connection,
    runs: &mut HashMap<Arc<str>, (usize, Merge)>,
    session: &Arc<str>,
    o: &mut Outcome,
) -> rusqlite::Result<()> {
    let Some((_, run)) = runs.remove(session) else { return Ok(()) };
    o.events += 1;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events(session_id, seq, seq_first, type, ts, data, splits) VALUES (?1, ?2, ?3, 'message.delta', ?4, ?5, ?6)",
    )?;
    match run.single {
        Some(data) => {
            let data = String::from_utf8(data).unwrap_or_else(|_| "{}".into());
            stmt.execute(params![
                &**session,
                run.last as i64,
                Option::<i64>::None,
                run.ts as i64,
                data,
                Option::<String>::None
            ])?;
        }
        None => {
            let mut data = serde_json::json!({"message_id": run.message_id, "content": run.content});
            if let Some(ct) = &run.content_type {
                data["content_type"] = serde_json::Value::String(ct.clone());
            }
            let splits = serde_json::to_string(&run.splits).unwrap_or_else(|_| "[]".into());
            stmt.execute(params![
                &**session,
                run.last as i64,
                run.first as i64,
                run.ts as i64,
                data.to_string(),
                splits
            ])?;
        }
    }
    Ok(())
}

/// Per touched session: `last_seq` and `last_active_at` (one UPDATE per session, not per event).
fn finish_batch(tx: &Connection, o: &Outcome) -> rusqlite::Result<()> {
    let now = crate::protocol::now_ms() as i64;
    let mut stmt = tx.prepare_cached(
        "UPDATE sessions SET last_seq = MAX(last_seq, ?2), last_active_at = MAX(last_active_at, ?3) WHERE id = ?1",
    )?;
    for (session, (_, seq)) in &o.committed {
        stmt.execute(params![&**session, *seq as i64, now])?;
    }
    Ok(())
}

fn insert_session(tx: &Connection, r: &SessionRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO sessions(id, owner, worker_type, client_session_id, worker_session_id, work_dir, state, state_reason, \
         created_at, updated_at, last_active_at, live_since, terminated_at, turns, last_seq, config_json, worker_pid, \
         worker_start_ticks) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
         ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, worker_type = excluded.worker_type, \
         client_session_id = excluded.client_session_id, worker_session_id = excluded.worker_session_id, \
         work_dir = excluded.work_dir, state = excluded.state, state_reason = excluded.state_reason, \
         created_at = excluded.created_at, updated_at = excluded.updated_at, last_active_at = excluded.last_active_at, \
         live_since = excluded.live_since, terminated_at = excluded.terminated_at, turns = excluded.turns, \
         last_seq = excluded.last_seq, config_json = excluded.config_json, worker_pid = excluded.worker_pid, \
         worker_start_ticks = excluded.worker_start_ticks",
    )?
    .execute(params![
        r.id,
        r.owner,
        r.worker_type,
        r.client_session_id,
        r.worker_session_id,
        r.work_dir,
        r.state,
        r.state_reason,
        sql_int(r.created_at),
        sql_int(r.updated_at),
        sql_int(r.last_active_at),
        r.live_since.map(sql_int),
        r.terminated_at.map(sql_int),
        sql_int(r.turns),
        sql_int(r.last_seq),
        r.config_json,
        r.worker_pid,
        r.worker_start_ticks.map(sql_int),
    ])?;
    Ok(())
}

fn update_session(tx: &Connection, id: &str, u: &SessionUpdate) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE sessions SET state = ?2, state_reason = ?3, worker_session_id = ?4, work_dir = ?5, updated_at = ?6, \
         last_active_at = MAX(last_active_at, ?7), live_since = ?8, terminated_at = ?9, turns = ?10, worker_pid = ?11, \
         worker_start_ticks = ?12, input_tokens = ?13, output_tokens = ?14, cache_read_tokens = ?15, \
         cache_write_tokens = ?16, cost_usd = ?17, tool_calls = ?18, turn_ms = ?19 WHERE id = ?1",
    )?
    .execute(params![
        id,
        u.state,
        u.state_reason,
        u.worker_session_id,
        u.work_dir,
        sql_int(u.updated_at),
        sql_int(u.last_active_at),
        u.live_since.map(sql_int),
        u.terminated_at.map(sql_int),
        sql_int(u.turns),
        u.worker_pid,
        u.worker_start_ticks.map(sql_int),
        sql_int(u.totals.input_tokens),
        sql_int(u.totals.output_tokens),
        sql_int(u.totals.cache_read_tokens),
        sql_int(u.totals.cache_write_tokens),
        u.totals.cost_usd,
        sql_int(u.totals.tool_calls),
        sql_int(u.totals.turn_ms),
    ])?;
    Ok(())
}

/// A gateway counter as an SQLite integer: saturated at `i64::MAX`, so a
/// huge agent-reported figure (token counts) is never stored negative, which
/// the readers would refuse as a corrupt row.
fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Event;
    use crate::store::reader::events_after;
    use crate::store::schema::{StoreOptions, open_writer};
    use crate::ws::outq::SessionFrame;
    use std::sync::Mutex;

    type CommitLog = Vec<(usize, Vec<(Arc<str>, u64)>)>;

    #[derive(Default)]
    struct Sink {
        committed: Mutex<CommitLog>,
        failed: Mutex<Vec<(usize, Arc<str>, u64)>>,
    }
    struct SinkRef(Arc<Sink>);
    impl CommitSink for SinkRef {
        fn committed(&self, reactor: usize, sessions: Vec<(Arc<str>, u64)>) {
            self.0.committed.lock().unwrap().push((reactor, sessions));
        }
        fn failed(&self, reactor: usize, session: Arc<str>, seq: u64) {
            self.0.failed.lock().unwrap().push((reactor, session, seq));
        }
        fn writable(&self, _reactor: usize) {}
    }

    fn setup(tag: &str) -> (std::path::PathBuf, WriterHandle, Arc<Sink>, std::thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("hotplex-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db");
        let conn = open_writer(&path, &StoreOptions::default()).unwrap();
        let sink = Arc::new(Sink::default());
        let cfg = WriterConfig {
            batch_max_ops: 1024,
            commit_interval: Duration::from_millis(5),
            queue_capacity: 4096,
            reactors: 2,
            retention: None,
        };
        let (h, j) = start(conn, cfg, Box::new(SinkRef(sink.clone()))).unwrap();
        (path, h, sink, j)
    }

    fn row(id: &str) -> WriteOp {
        WriteOp::InsertSession(Box::new(SessionRow {
            id: id.into(),
            owner: "o".into(),
            worker_type: "claude_code".into(),
            work_dir: "/w".into(),
            state: "idle".into(),
            config_json: "{}".into(),
            ..SessionRow::default()
        }))
    }

    fn append(sid: &Arc<str>, seq: u64, ev: Event) -> WriteOp {
        WriteOp::Append(Append {
            session: sid.clone(),
            reactor: 1,
            frame: Arc::new(SessionFrame::new(seq, 1000 + seq, sid.clone(), &ev)),
        })
    }

    #[test]
    fn merges_consecutive_deltas_and_reports_commits() {
        let (path, h, sink, j) = setup("merge");
        let sid: Arc<str> = Arc::from("s1");
        // Queue everything before the writer can commit, so it lands in one batch.
        let mut ops = vec![row("s1"), append(&sid, 1, Event::state(crate::protocol::SessionState::Running, None))];
        for (i, t) in ["He", "llo", " world"].iter().enumerate() {
            ops.push(append(&sid, 2 + i as u64, Event::message_delta("m", *t)));
        }
        ops.push(append(&sid, 5, Event::Done { success: true, stats: None }));
        for op in ops {
            h.send(op);
        }
        h.barrier();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let page = events_after(&conn, "s1", 0, 100, usize::MAX).unwrap();
        let seqs: Vec<u64> = page.rows.iter().map(|r| r.seq).collect();
        let text: String = page
            .rows
            .iter()
            .filter(|r| r.event_type == "message.delta")
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.data).unwrap()["content"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(text, "Hello world");
        assert_eq!(*seqs.last().unwrap(), 5);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        let last_seq: i64 = conn.query_row("SELECT last_seq FROM sessions WHERE id = 's1'", [], |r| r.get(0)).unwrap();
        assert_eq!(last_seq, 5);
        let max_committed = sink.committed.lock().unwrap().iter().flat_map(|(_, l)| l.iter().map(|(_, s)| *s)).max();
        assert_eq!(max_committed, Some(5));
        assert!(sink.committed.lock().unwrap().iter().all(|(r, _)| *r == 1));
        assert!(h.shutdown(Duration::from_secs(5)));
        j.join().unwrap();
        let clean: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'clean_shutdown'", [], |r| r.get(0)).unwrap();
        assert_eq!(clean, "1");
    }

    /// Agent-reported totals past `i64::MAX` are stored saturated, so the
    /// row still reads back (a negative column is a read error).
    #[test]
    fn huge_totals_are_stored_saturated() {
        let dir = std::env::temp_dir().join(format!("hotplex-writer-huge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conn = open_writer(&dir.join("db"), &StoreOptions::default()).unwrap();
        let row = SessionRow {
            id: "s3".into(),
            owner: "o".into(),
            worker_type: "claude_code".into(),
            state: "idle".into(),
            ..SessionRow::default()
        };
        insert_session(&conn, &row).unwrap();
        let totals =
            super::super::ops::Totals { input_tokens: u64::MAX, turn_ms: 1 << 63, tool_calls: 7, ..Default::default() };
        let u = SessionUpdate {
            state: "idle",
            state_reason: None,
            worker_session_id: None,
            work_dir: String::new(),
            updated_at: 1,
            last_active_at: 1,
            live_since: None,
            terminated_at: None,
            turns: 1,
            worker_pid: None,
            worker_start_ticks: Some(u64::MAX),
            totals,
        };
        update_session(&conn, "s3", &u).unwrap();
        let back = crate::store::reader::load_session(&conn, "s3").unwrap().unwrap();
        let max = i64::MAX as u64;
        assert_eq!((back.totals.input_tokens, back.totals.turn_ms, back.totals.tool_calls), (max, max, 7));
        assert_eq!(back.worker_start_ticks, Some(max));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_bad_op_is_dropped_alone() {
        let (path, h, sink, j) = setup("bad");
        let sid: Arc<str> = Arc::from("s2");
        h.send(row("s2"));
        h.send(append(&sid, 1, Event::state(crate::protocol::SessionState::Running, None)));
        // same seq twice: a constraint violation for the second only
        h.send(append(&sid, 1, Event::state(crate::protocol::SessionState::Idle, None)));
        h.send(append(&sid, 2, Event::state(crate::protocol::SessionState::Idle, None)));
        h.barrier();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM events WHERE session_id = 's2'", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
        assert_eq!(sink.failed.lock().unwrap().len(), 1);
        assert!(h.shutdown(Duration::from_secs(5)));
        j.join().unwrap();
    }
}
