//! Metrics hot path (operations.md §5.1): the per-event cost of what a
//! reactor does for every frame — a counter bump and a histogram observe —
//! with the sharded lock-free cells of `hotplex::metrics` against
//! prometheus-client's own `Histogram` (a mutex per `observe`). Single
//! thread (the uncontended cost) and two threads hammering one metric (what
//! two reactors do to a shared cache line or lock).
//!
//! A full render (one scrape) is timed too.
//!
//! cargo bench --bench metrics

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hotplex::metrics::cells::{CounterVec, bind_shard};
use hotplex::metrics::hist::{LAT_FAST, ShardedHistogram};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

const SAMPLE: Duration = Duration::from_micros(180);

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics/1 thread");
    bind_shard(0);
    let counter = CounterVec::new(&["type"], &[&["a", "b", "c", "d"]], true);
    g.bench_function("counter inc (sharded CounterVec)", |b| b.iter(|| counter.inc(black_box(2))));
    let plain: Counter = Counter::default();
    g.bench_function("counter inc (prometheus-client Counter)", |b| b.iter(|| black_box(&plain).inc()));
    let sharded = ShardedHistogram::seconds(LAT_FAST);
    g.bench_function("histogram observe (ShardedHistogram)", |b| {
        b.iter(|| sharded.observe_duration(black_box(SAMPLE)))
    });
    let prom = Histogram::new(LAT_FAST.iter().copied());
    g.bench_function("histogram observe (prometheus-client Histogram)", |b| {
        b.iter(|| prom.observe(black_box(SAMPLE).as_secs_f64()))
    });
    g.finish();
}

/// Two threads (pinned to different shards, like two reactors) each do
/// `iters` observations at once; the time is the slower thread's, per op.
fn contended(iters: u64, observe: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (start, observe) = (start.clone(), observe.clone());
            std::thread::spawn(move || {
                bind_shard(t);
                start.wait();
                let t0 = Instant::now();
                for _ in 0..iters {
                    observe();
                }
                t0.elapsed()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap_or_default()).max().unwrap_or_default()
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics/2 threads");
    let counter = Arc::new(CounterVec::new(&["type"], &[&["a", "b", "c", "d"]], true));
    g.bench_function("counter inc (sharded CounterVec)", |b| {
        b.iter_custom(|n| {
            let c = counter.clone();
            contended(n, Arc::new(move || c.inc(black_box(2))))
        })
    });
    let unsharded = Arc::new(CounterVec::new(&["type"], &[&["a", "b", "c", "d"]], false));
    g.bench_function("counter inc (one shared atomic)", |b| {
        b.iter_custom(|n| {
            let c = unsharded.clone();
            contended(n, Arc::new(move || c.inc(black_box(2))))
        })
    });
    let sharded = Arc::new(ShardedHistogram::seconds(LAT_FAST));
    g.bench_function("histogram observe (ShardedHistogram)", |b| {
        b.iter_custom(|n| {
            let h = sharded.clone();
            contended(n, Arc::new(move || h.observe_duration(black_box(SAMPLE))))
        })
    });
    let prom = Arc::new(Histogram::new(LAT_FAST.iter().copied()));
    g.bench_function("histogram observe (prometheus-client Histogram)", |b| {
        b.iter_custom(|n| {
            let h = prom.clone();
            contended(n, Arc::new(move || h.observe(black_box(SAMPLE).as_secs_f64())))
        })
    });
    g.finish();
}

/// A full scrape: every series of the catalogue (operations.md §5.2) plus
/// the `/proc` process metrics, encoded as OpenMetrics text.
fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics/render");
    hotplex::metrics::m();
    let bytes = hotplex::metrics::render().len();
    g.bench_function(format!("render() ({bytes} bytes)"), |b| b.iter(|| black_box(hotplex::metrics::render())));
    g.finish();
}

criterion_group!(benches, single_thread, two_threads, render);
criterion_main!(benches);
