//! Lock-free storage for metric values: per-thread shards of cache-line
//! sized atomic lanes, summed only when a scrape encodes them. A reactor bumps
//! the lanes of its own shard (`bind_shard` at thread start), so two reactors
//! never write the same cache line; other threads get a shard round robin.
//!
//! Owns: the shard selection, [`CounterVec`] (a counter family over a closed
//! label set, every series present from the start), [`ShardedGauge`] and the
//! [`View`] that lets a `&'static` metric sit in a prometheus-client registry.
//! Must not: lock, allocate or format on the bump path.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Shards per sharded cell (reactor ids beyond it share, still lock-free).
pub const SHARDS: usize = 16;
/// `u64` lanes per [`Line`]: 128 bytes, two cache lines (adjacent-line prefetch).
pub const LANES: usize = 16;

/// One shard's worth of counters, alone on its cache lines.
#[repr(align(128))]
pub struct Line(pub [AtomicU64; LANES]);

impl Line {
    pub const fn new() -> Line {
        Line([const { AtomicU64::new(0) }; LANES])
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's shard.
#[inline]
pub fn shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v < SHARDS {
            return v;
        }
        let n = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
        s.set(n);
        n
    })
}

/// Pin the calling thread (reactor `id`) to shard `id mod SHARDS`.
pub fn bind_shard(id: usize) {
    SHARD.with(|s| s.set(id % SHARDS));
}

/// A counter family over the cartesian product of closed label value sets.
/// Series `i` of a two-label family `(a, b)` is `a * len(b) + b`.
pub struct CounterVec {
    keys: &'static [&'static str],
    series: Vec<Vec<&'static str>>,
    /// Lines per shard.
    stride: usize,
    shards: usize,
    /// Divide the stored integer by this when encoding (`None`: an integer counter).
    divisor: Option<f64>,
    cells: Box<[Line]>,
}

impl CounterVec {
    /// `dims[i]` are the values of label `keys[i]`; `sharded` spreads writers over [`SHARDS`].
    pub fn new(keys: &'static [&'static str], dims: &[&'static [&'static str]], sharded: bool) -> CounterVec {
        assert_eq!(keys.len(), dims.len(), "one value set per label");
        let mut series: Vec<Vec<&'static str>> = vec![Vec::new()];
        for d in dims {
            series =
                series.iter().flat_map(|prefix| d.iter().map(move |v| [prefix.as_slice(), &[*v]].concat())).collect();
        }
        let stride = series.len().div_ceil(LANES).max(1);
        let shards = if sharded { SHARDS } else { 1 };
        let cells = (0..stride * shards).map(|_| Line::new()).collect();
        CounterVec { keys, series, stride, shards, divisor: None, cells }
    }

    /// A counter without labels.
    pub fn scalar(sharded: bool) -> CounterVec {
        CounterVec::new(&[], &[], sharded)
    }

    /// Encode `stored / units` as a float counter (nanoseconds → seconds: `1e9`).
    pub fn per(mut self, units: f64) -> CounterVec {
        self.divisor = Some(units);
        self
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Add `n` to series `idx` (ignored when out of range).
    #[inline]
    pub fn add(&self, idx: usize, n: u64) {
        if idx >= self.series.len() {
            return;
        }
        let s = if self.shards == 1 { 0 } else { shard() };
        self.cells[s * self.stride + idx / LANES].0[idx % LANES].fetch_add(n, Relaxed);
    }

    #[inline]
    pub fn inc(&self, idx: usize) {
        self.add(idx, 1);
    }

    /// Current value of series `idx` (summed over shards).
    pub fn get(&self, idx: usize) -> u64 {
        if idx >= self.series.len() {
            return 0;
        }
        (0..self.shards).map(|s| self.cells[s * self.stride + idx / LANES].0[idx % LANES].load(Relaxed)).sum()
    }

    fn encode_one(&self, e: &mut MetricEncoder, idx: usize) -> fmt::Result {
        match self.divisor {
            Some(d) => e.encode_counter::<NoLabelSet, f64, f64>(&(self.get(idx) as f64 / d), None),
            None => e.encode_counter::<NoLabelSet, u64, u64>(&self.get(idx), None),
        }
    }
}

impl fmt::Debug for CounterVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CounterVec").field("keys", &self.keys).field("series", &self.series.len()).finish()
    }
}

impl EncodeMetric for CounterVec {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        if self.keys.is_empty() {
            return self.encode_one(&mut encoder, 0);
        }
        for (i, values) in self.series.iter().enumerate() {
            let labels: Vec<(&str, &str)> = self.keys.iter().copied().zip(values.iter().copied()).collect();
            let mut e = encoder.encode_family(&labels)?;
            self.encode_one(&mut e, i)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A gauge bumped up and down from many threads (two's complement lanes,
/// one per shard, summed at scrape).
pub struct ShardedGauge {
    cells: [Line; SHARDS],
}

impl ShardedGauge {
    pub const fn new() -> ShardedGauge {
        ShardedGauge { cells: [const { Line::new() }; SHARDS] }
    }

    #[inline]
    pub fn add(&self, delta: i64) {
        if delta != 0 {
            self.cells[shard()].0[0].fetch_add(delta as u64, Relaxed);
        }
    }

    pub fn get(&self) -> i64 {
        self.cells.iter().fold(0u64, |acc, l| acc.wrapping_add(l.0[0].load(Relaxed))) as i64
    }
}

impl Default for ShardedGauge {
    fn default() -> Self {
        ShardedGauge::new()
    }
}

/// A `&'static` metric registered in a prometheus-client `Registry`.
pub struct View<T: 'static>(pub &'static T);

impl<T: fmt::Debug> fmt::Debug for View<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: EncodeMetric> EncodeMetric for View<T> {
    fn encode(&self, encoder: MetricEncoder) -> fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_the_cartesian_product_in_row_major_order() {
        let v = CounterVec::new(&["a", "b"], &[&["x", "y"], &["1", "2", "3"]], true);
        assert_eq!(v.len(), 6);
        assert_eq!(v.series[4], vec!["y", "2"]);
        v.add(4, 5);
        v.inc(4);
        assert_eq!(v.get(4), 6);
        assert_eq!(v.get(3), 0);
        v.add(99, 1); // out of range: ignored
    }

    #[test]
    fn many_series_span_lines_and_shards_sum() {
        let v = CounterVec::new(
            &["k"],
            &[&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f", "g", "h"]],
            true,
        );
        let v = std::sync::Arc::new(v);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let v = v.clone();
                std::thread::spawn(move || {
                    bind_shard(t);
                    for _ in 0..1000 {
                        v.inc(17);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.get(17), 4000);
        assert_eq!(v.get(16), 0);
    }

    #[test]
    fn sharded_gauge_goes_down_across_threads() {
        let g = std::sync::Arc::new(ShardedGauge::new());
        g.add(10);
        let g2 = g.clone();
        std::thread::spawn(move || g2.add(-15)).join().unwrap();
        assert_eq!(g.get(), -5);
    }
}
