//! Store writer throughput (operations.md §9.3 `seq_persist`): events
//! appended through the real writer thread into a real SQLite file (WAL,
//! synchronous=NORMAL), measured to the commit of the last one. Batch sizes
//! 1 / 64 / 1024 (`store.batch_max_ops`), with consecutive deltas of one
//! message (merged into one row) and with non-mergeable events.
//!
//! cargo bench --bench seq_persist

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hotplex::protocol::{Event, SessionState};
use hotplex::store::schema::{StoreOptions, open_writer};
use hotplex::store::writer::{WriterConfig, start};
use hotplex::store::{Append, CommitSink, SessionRow, WriteOp};
use hotplex::ws::outq::{SessionFrame, SharedFrame};

struct NoSink;
impl CommitSink for NoSink {
    fn committed(&self, _: usize, _: Vec<(Arc<str>, u64)>) {}
    fn failed(&self, _: usize, _: Arc<str>, _: u64) {}
    fn writable(&self, _: usize) {}
}

const EVENTS: u64 = 20_000;

fn frames(sid: &Arc<str>, merge: bool, base: u64) -> Vec<SharedFrame> {
    (0..EVENTS)
        .map(|i| {
            let seq = base + i + 1;
            let ev = if merge {
                Event::message_delta("msg_1", "tok ")
            } else {
                Event::state(if i % 2 == 0 { SessionState::Running } else { SessionState::Idle }, None)
            };
            Arc::new(SessionFrame::new(seq, 1_700_000_000_000 + seq, sid.clone(), &ev))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("seq_persist");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for batch in [1usize, 64, 1024] {
        for merge in [false, true] {
            let dir = std::env::temp_dir().join(format!("hotplex-bench-{}-{batch}-{merge}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let conn = open_writer(&dir.join("bench.db"), &StoreOptions::default()).expect("open db");
            let cfg = WriterConfig {
                batch_max_ops: batch,
                commit_interval: Duration::from_millis(5),
                queue_capacity: 65_536,
                reactors: 1,
                retention: None,
            };
            let (w, join) = start(conn, cfg, Box::new(NoSink)).expect("writer");
            let sid: Arc<str> = Arc::from("bench-session");
            w.send(WriteOp::InsertSession(Box::new(SessionRow {
                id: sid.to_string(),
                owner: "o".into(),
                worker_type: "claude_code".into(),
                work_dir: "/w".into(),
                state: "idle".into(),
                config_json: "{}".into(),
                ..SessionRow::default()
            })));
            let mut base = 0u64;
            let id = BenchmarkId::new(if merge { "deltas_merged" } else { "events" }, batch);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let fs = frames(&sid, merge, base);
                        base += EVENTS;
                        let start_t = Instant::now();
                        for f in fs {
                            w.send(WriteOp::Append(Append { session: sid.clone(), reactor: 0, frame: f }));
                        }
                        w.barrier();
                        total += start_t.elapsed();
                    }
                    total
                })
            });
            w.shutdown(Duration::from_secs(30));
            let _ = join.join();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

/// Commit-before-send latency: one event appended to an idle writer until
/// its batch has committed (what a client waits for before seeing it).
fn latency(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hotplex-bench-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let conn = open_writer(&dir.join("bench.db"), &StoreOptions::default()).expect("open db");
    let cfg = WriterConfig {
        batch_max_ops: 1024,
        commit_interval: Duration::from_millis(5),
        queue_capacity: 65_536,
        reactors: 1,
        retention: None,
    };
    let (w, join) = start(conn, cfg, Box::new(NoSink)).expect("writer");
    let sid: Arc<str> = Arc::from("bench-session");
    w.send(WriteOp::InsertSession(Box::new(SessionRow {
        id: sid.to_string(),
        owner: "o".into(),
        worker_type: "claude_code".into(),
        work_dir: "/w".into(),
        state: "idle".into(),
        config_json: "{}".into(),
        ..SessionRow::default()
    })));
    let mut seq = 0u64;
    c.bench_function("commit_before_send/one_event", |b| {
        b.iter(|| {
            seq += 1;
            let ev = Event::message_delta("msg_1", "tok ");
            let f = Arc::new(SessionFrame::new(seq, 1_700_000_000_000 + seq, sid.clone(), &ev));
            w.send(WriteOp::Append(Append { session: sid.clone(), reactor: 0, frame: f }));
            w.barrier();
        })
    });
    w.shutdown(Duration::from_secs(30));
    let _ = join.join();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench, latency);
criterion_main!(benches);
