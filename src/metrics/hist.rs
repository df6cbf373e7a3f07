//! The sharded, lock-free histogram (operations.md §5.1): fixed buckets, one
//! cache-padded line of `AtomicU64` per shard (bucket counts plus the sum in
//! integer units), summed at scrape and encoded with prometheus-client's
//! `encode_histogram`. An observation is a binary search over ≤ 15 bounds and
//! two relaxed `fetch_add`s on the caller's own shard — no lock, no CAS loop
//! (prometheus-client's own `Histogram` takes a mutex per `observe`).
//!
//! Owns: the bucket layouts of §5.2 (`lat_fast`, `lat_turn`, `lat_first`,
//! `ops`) and [`HistogramVec`] (one histogram per value of one closed label).

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::cells::{LANES, Line, SHARDS, shard};

/// `lat_fast`: 10µs … 1s.
pub const LAT_FAST: &[f64] =
    &[10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 250e-3, 1.0];
/// `lat_turn`: 0.1s … 1h.
pub const LAT_TURN: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// `lat_first`: 50ms … 60s.
pub const LAT_FIRST: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
/// `ops`: 1, 2, 4 … 4096.
pub const OPS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];

/// Lane holding the sum; buckets use lanes `0..=bounds.len()` (the last is `+Inf`).
const SUM: usize = LANES - 1;
/// Integer units per second for time histograms (nanoseconds).
const NANOS: f64 = 1e9;

pub struct ShardedHistogram {
    /// Upper bounds as exposed (`le`).
    bounds: &'static [f64],
    /// The same bounds in stored units.
    units: Box<[u64]>,
    /// Stored units per exposed unit.
    per_unit: f64,
    shards: Box<[Line]>,
}

impl ShardedHistogram {
    /// A histogram of durations (observed with [`ShardedHistogram::observe_duration`]).
    pub fn seconds(bounds: &'static [f64]) -> ShardedHistogram {
        ShardedHistogram::with_units(bounds, NANOS)
    }

    /// A histogram of counts (observed with [`ShardedHistogram::observe_count`]).
    pub fn counts(bounds: &'static [f64]) -> ShardedHistogram {
        ShardedHistogram::with_units(bounds, 1.0)
    }

    fn with_units(bounds: &'static [f64], per_unit: f64) -> ShardedHistogram {
        assert!(bounds.len() < SUM, "at most {} buckets", SUM - 1);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
        let units = bounds.iter().map(|b| (b * per_unit).round() as u64).collect();
        ShardedHistogram { bounds, units, per_unit, shards: (0..SHARDS).map(|_| Line::new()).collect() }
    }

    /// Record a value in stored units (nanoseconds or a count).
    #[inline]
    pub fn observe_units(&self, v: u64) {
        let bucket = self.units.partition_point(|b| *b < v);
        let line = &self.shards[shard()].0;
        line[bucket].fetch_add(1, Relaxed);
        line[SUM].fetch_add(v, Relaxed);
    }

    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe_units(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    #[inline]
    pub fn observe_count(&self, n: u64) {
        self.observe_units(n);
    }

    /// (sum, count, per-bucket counts with their upper bound, `+Inf` last; not cumulative).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> =
            self.bounds.iter().copied().chain(std::iter::once(f64::INFINITY)).map(|b| (b, 0)).collect();
        let mut sum = 0u64;
        for s in self.shards.iter() {
            for (i, b) in buckets.iter_mut().enumerate() {
                b.1 += s.0[i].load(Relaxed);
            }
            sum = sum.wrapping_add(s.0[SUM].load(Relaxed));
        }
        let count = buckets.iter().map(|b| b.1).sum();
        (sum as f64 / self.per_unit, count, buckets)
    }

    fn encode_into(&self, e: &mut MetricEncoder) -> fmt::Result {
        let (sum, count, buckets) = self.snapshot();
        e.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

impl fmt::Debug for ShardedHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedHistogram").field("bounds", &self.bounds).finish()
    }
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        self.encode_into(&mut encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One histogram per value of a closed label (e.g. `worker_type`).
pub struct HistogramVec {
    key: &'static str,
    values: &'static [&'static str],
    hists: Vec<ShardedHistogram>,
}

impl HistogramVec {
    pub fn seconds(key: &'static str, values: &'static [&'static str], bounds: &'static [f64]) -> HistogramVec {
        HistogramVec { key, values, hists: values.iter().map(|_| ShardedHistogram::seconds(bounds)).collect() }
    }

    /// The histogram of label value `idx`.
    pub fn get(&self, idx: usize) -> Option<&ShardedHistogram> {
        self.hists.get(idx)
    }
}

impl fmt::Debug for HistogramVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramVec").field("key", &self.key).finish()
    }
}

impl EncodeMetric for HistogramVec {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (v, h) in self.values.iter().zip(&self.hists) {
            let labels = [(self.key, *v)];
            let mut e = encoder.encode_family(&labels)?;
            h.encode_into(&mut e)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn counts(h: &ShardedHistogram) -> Vec<u64> {
        h.snapshot().2.iter().map(|b| b.1).collect()
    }

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_is_not_below_them() {
        let h = ShardedHistogram::seconds(LAT_FAST);
        h.observe_duration(Duration::from_micros(10)); // exactly on a bound: le="1e-5"
        h.observe_duration(Duration::from_micros(11)); // 25µs bucket
        h.observe_duration(Duration::from_nanos(1)); // smallest bucket
        h.observe_duration(Duration::from_millis(1)); // 1ms bucket
        h.observe_duration(Duration::from_secs(2)); // +Inf
        let c = counts(&h);
        assert_eq!(c.len(), LAT_FAST.len() + 1);
        assert_eq!(c[0], 2);
        assert_eq!(c[1], 1);
        assert_eq!(c[LAT_FAST.iter().position(|b| *b == 1e-3).unwrap()], 1);
        assert_eq!(*c.last().unwrap(), 1);
        assert_eq!(c.iter().sum::<u64>(), 5);
    }

    #[test]
    fn sum_and_count() {
        let h = ShardedHistogram::seconds(LAT_TURN);
        h.observe_duration(Duration::from_millis(1500));
        h.observe_duration(Duration::from_millis(500));
        let (sum, count, buckets) = h.snapshot();
        assert!((sum - 2.0).abs() < 1e-9, "{sum}");
        assert_eq!(count, 2);
        assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
        let ops = ShardedHistogram::counts(OPS);
        ops.observe_count(3);
        ops.observe_count(4096);
        ops.observe_count(5000);
        let (sum, count, b) = ops.snapshot();
        assert_eq!((sum, count), (9099.0, 3));
        assert_eq!(b[2], (4.0, 1)); // 3 ≤ 4
        assert_eq!(b[12], (4096.0, 1));
        assert_eq!(b[13], (f64::INFINITY, 1));
    }

    #[test]
    fn concurrent_observes_from_many_threads_are_all_counted() {
        let h = Arc::new(ShardedHistogram::seconds(LAT_FIRST));
        let per = 20_000u64;
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    if t % 2 == 0 {
                        super::super::cells::bind_shard(t); // reactors pin; the others pick round robin
                    }
                    for i in 0..per {
                        h.observe_duration(Duration::from_millis(if i % 2 == 0 { 30 } else { 3_000 }));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 6 * per);
        assert_eq!(buckets[0].1, 3 * per); // 30ms ≤ 50ms
        assert_eq!(buckets[LAT_FIRST.iter().position(|b| *b == 5.0).unwrap()].1, 3 * per);
        let expected = 3.0 * per as f64 * (0.03 + 3.0);
        assert!((sum - expected).abs() < 1e-6 * expected, "{sum} vs {expected}");
    }

    #[test]
    fn every_catalogue_layout_fits_a_line() {
        for b in [LAT_FAST, LAT_TURN, LAT_FIRST, OPS] {
            let _ = ShardedHistogram::seconds(b);
        }
    }
}
