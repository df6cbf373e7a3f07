//! The global worker spawn rate (`limits.max_spawns_per_second`, security.md
//! §9): a lock-free GCRA schedule shared by every reactor. A spawn reserves
//! the earliest slot the rate allows (bursts up to one second's worth); the
//! reactor arms a timer for that slot and spawns when it fires. A slot more
//! than [`MAX_WAIT`] away is not reserved: the caller answers
//! `GATEWAY_OVERLOAD` at once (it could not be served within the wait).
//!
//! Owns only the schedule (one atomic). Must not sleep or block: callers wait
//! on their own timer heap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a spawn may wait for its slot.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// Shared spawn schedule.
pub struct SpawnPacer {
    base: Instant,
    /// Theoretical arrival time of the next spawn, in ns after `base`.
    tat: AtomicU64,
}

impl Default for SpawnPacer {
    fn default() -> Self {
        SpawnPacer { base: Instant::now(), tat: AtomicU64::new(0) }
    }
}

/// The outcome of [`SpawnPacer::reserve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Spawn now.
    Now,
    /// Spawn at this instant (within [`MAX_WAIT`]).
    At(Instant),
    /// No slot within [`MAX_WAIT`]: refuse.
    Overloaded,
}

impl SpawnPacer {
    /// Reserve a spawn slot at `now` for `per_second` spawns per second
    /// (0 = unlimited).
    pub fn reserve(&self, now: Instant, per_second: u32) -> Slot {
        if per_second == 0 {
            return Slot::Now;
        }
        let interval = 1_000_000_000 / u64::from(per_second);
        let burst = interval * (u64::from(per_second) - 1);
        let now_ns = u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let max_wait = MAX_WAIT.as_nanos() as u64;
        let mut cur = self.tat.load(Ordering::Acquire);
        loop {
            let tat = cur.max(now_ns);
            let slot = tat.saturating_sub(burst).max(now_ns);
            if slot - now_ns > max_wait {
                return Slot::Overloaded;
            }
            match self.tat.compare_exchange_weak(cur, tat + interval, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if slot == now_ns => return Slot::Now,
                Ok(_) => return Slot::At(now + Duration::from_nanos(slot - now_ns)),
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_second_spreads_and_refuses_beyond_the_wait() {
        let p = SpawnPacer::default();
        let t0 = Instant::now();
        assert_eq!(p.reserve(t0, 1), Slot::Now);
        for k in 1..=5u64 {
            assert_eq!(p.reserve(t0, 1), Slot::At(t0 + Duration::from_secs(k)), "slot {k}");
        }
        assert_eq!(p.reserve(t0, 1), Slot::Overloaded);
        // Later, the schedule has room again.
        assert_eq!(p.reserve(t0 + Duration::from_secs(6), 1), Slot::Now);
    }

    #[test]
    fn bursts_up_to_the_rate_then_paces() {
        let p = SpawnPacer::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(p.reserve(t0, 10), Slot::Now);
        }
        assert_eq!(p.reserve(t0, 10), Slot::At(t0 + Duration::from_millis(100)));
        assert_eq!(p.reserve(t0, 0), Slot::Now, "0 = unlimited");
    }
}
