//! Token buckets and the throttle-then-reject rule of security.md §9.3:
//! capacity = burst, refill = rate per second, start full, time passed in by
//! the caller (tests freeze and advance it). No I/O, no shared state.

use std::time::{Duration, Instant};

/// One token bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

/// The outcome of charging one token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Charge {
    /// Taken; the bucket is still above the throttle threshold.
    Ok,
    /// Taken, but the bucket fell below `threshold × capacity`: warn the client.
    Low,
    /// Empty: the frame is dropped.
    Empty,
}

impl Bucket {
    pub fn new(rate_per_sec: f64, burst: f64, now: Instant) -> Bucket {
        let capacity = burst.max(1.0);
        Bucket { capacity, rate: rate_per_sec.max(0.0), tokens: capacity, last: now }
    }

    /// Adopt a new rate and burst (a config reload), keeping the tokens held
    /// (at most the new capacity).
    pub fn retune(&mut self, rate_per_sec: f64, burst: f64) {
        let capacity = burst.max(1.0);
        self.rate = rate_per_sec.max(0.0);
        self.capacity = capacity;
        self.tokens = self.tokens.min(capacity);
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Take one token.
    pub fn charge(&mut self, now: Instant, threshold: f64) -> Charge {
        self.refill(now);
        if self.tokens < 1.0 {
            return Charge::Empty;
        }
        self.tokens -= 1.0;
        if self.tokens < threshold * self.capacity { Charge::Low } else { Charge::Ok }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Time until one token is available.
    pub fn until_one(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// Time to refill half the bucket (the throttle notice's `backoff_ms`).
    pub fn half_refill(&self) -> Duration {
        if self.rate <= 0.0 {
            return Duration::from_secs(60);
        }
        Duration::from_secs_f64(self.capacity / 2.0 / self.rate)
    }
}

/// A sliding one-minute count of dropped frames (`max_violations_per_min`).
#[derive(Clone, Debug, Default)]
pub struct Violations {
    times: std::collections::VecDeque<Instant>,
}

impl Violations {
    /// Record one violation; returns how many happened within the last minute.
    pub fn record(&mut self, now: Instant) -> usize {
        while self.times.front().is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60)) {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vector_61_frames() {
        // 20/s, burst 60, clock frozen: frame 49 leaves 11 < 12 → throttle;
        // 50–60 processed; 61 dropped (security.md §9.5).
        let t = Instant::now();
        let mut b = Bucket::new(20.0, 60.0, t);
        let results: Vec<Charge> = (0..61).map(|_| b.charge(t, 0.2)).collect();
        assert!(results[..48].iter().all(|c| *c == Charge::Ok));
        assert_eq!(results[48], Charge::Low);
        assert!(results[49..60].iter().all(|c| *c == Charge::Low));
        assert_eq!(results[60], Charge::Empty);
        assert!(b.until_one(t) > Duration::ZERO);
        assert_eq!(b.charge(t + Duration::from_millis(50), 0.2), Charge::Low);
        assert_eq!(b.half_refill(), Duration::from_millis(1500));
    }

    #[test]
    fn refills_to_capacity_only() {
        let t = Instant::now();
        let mut b = Bucket::new(10.0, 5.0, t);
        for _ in 0..5 {
            b.charge(t, 0.0);
        }
        assert_eq!(b.charge(t, 0.0), Charge::Empty);
        let later = t + Duration::from_secs(100);
        for _ in 0..5 {
            assert_ne!(b.charge(later, 0.0), Charge::Empty);
        }
        assert_eq!(b.charge(later, 0.0), Charge::Empty);
    }

    #[test]
    fn violations_window() {
        let t = Instant::now();
        let mut v = Violations::default();
        for i in 0..5 {
            assert_eq!(v.record(t + Duration::from_secs(i)), i as usize + 1);
        }
        assert_eq!(v.record(t + Duration::from_secs(61)), 4);
    }
}
