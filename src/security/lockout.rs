//! Per-IP authentication-failure lockout (security.md §1.7): after
//! `limits.auth_failures_per_ip` failures within `limits.auth_failure_window`
//! an IP gets HTTP 429 + `Retry-After` for `limits.auth_lockout`, on both
//! listeners, before any credential of it is evaluated.
//!
//! The window is fixed, starting at the first failure it counts (a failure after
//! the window has run out starts a new one). Memory is bounded: the table is
//! split into shards by IP, each capped; when a shard is full the entries
//! touched longest ago are evicted in one batch, unlocked ones before locked ones.
//!
//! Owns: the counters and the 429 response. Must not: read the clock (callers
//! pass `now`, so tests inject time), look at credentials, or log.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::net::http;

const SHARDS: usize = 16;
/// Default total capacity (IPs tracked at once).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The three `limits.*` knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl LockoutPolicy {
    pub fn from_limits(l: &Limits) -> LockoutPolicy {
        LockoutPolicy {
            max_failures: l.auth_failures_per_ip.max(1),
            window: l.auth_failure_window,
            lockout: l.auth_lockout,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

/// The IP is locked out; answer 429 with this `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockedOut {
    pub retry_after: Duration,
}

impl LockedOut {
    /// Whole seconds for `Retry-After` (rounded up, at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let s = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        s.max(1)
    }

    /// The complete HTTP 429 response.
    pub fn response(&self) -> Vec<u8> {
        let secs = self.retry_after_secs().to_string();
        http::error_response(
            429,
            "rate_limit_exceeded",
            super::reason::Reason::LockedOut.client_message(),
            &[("Retry-After", &secs)],
        )
    }
}

/// The shared lockout table (`Send + Sync`; one per process, kept across config reloads).
#[derive(Debug)]
pub struct Lockout {
    policy: Mutex<LockoutPolicy>,
    shards: Vec<Mutex<HashMap<IpAddr, Entry>>>,
    per_shard: usize,
}

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout::with_capacity(policy, DEFAULT_CAPACITY)
    }

    /// `capacity` IPs in total (at least one per shard).
    pub fn with_capacity(policy: LockoutPolicy, capacity: usize) -> Lockout {
        Lockout {
            policy: Mutex::new(policy),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// New limits after a config reload; counts and lockouts in progress are kept.
    pub fn set_policy(&self, policy: LockoutPolicy) {
        *self.policy.lock().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    fn policy(&self) -> LockoutPolicy {
        *self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, Entry>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ip.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Before evaluating any credential of `ip`: `Err` while it is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), LockedOut> {
        let shard = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(&ip).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(LockedOut { retry_after: until - now }),
            _ => Ok(()),
        }
    }

    /// Count one failure (every 401, `AUTH_REQUIRED`/`UNAUTHORIZED` at init, foreign-session
    /// probe). Returns `Some` when this failure starts a lockout.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> Option<LockedOut> {
        let p = self.policy();
        let mut shard = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        if !shard.contains_key(&ip) && shard.len() >= self.per_shard {
            evict(&mut shard, now, self.per_shard);
        }
        let e = shard.entry(ip).or_insert(Entry { window_start: now, failures: 0, locked_until: None, last_seen: now });
        e.last_seen = now;
        if e.locked_until.is_some_and(|u| u > now) {
            return None; // already locked out; the caller should not have evaluated anything
        }
        e.locked_until = None;
        if now.saturating_duration_since(e.window_start) >= p.window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= p.max_failures {
            e.failures = 0;
            e.window_start = now;
            e.locked_until = Some(now + p.lockout);
            return Some(LockedOut { retry_after: p.lockout });
        }
        None
    }

    /// Number of IPs tracked (for a gauge and tests).
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    /// Drop entries that are neither locked nor inside a window (call from a periodic sweep).
    pub fn sweep(&self, now: Instant) {
        let p = self.policy();
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            s.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now.saturating_duration_since(e.window_start) < p.window
            });
        }
    }
}

/// Free an eighth of a full shard: expired entries first, then the least recently seen,
/// unlocked before locked.
fn evict(shard: &mut HashMap<IpAddr, Entry>, now: Instant, cap: usize) {
    let mut order: Vec<(bool, Instant, IpAddr)> =
        shard.iter().map(|(ip, e)| (e.locked_until.is_some_and(|u| u > now), e.last_seen, *ip)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let n = (cap / 8).max(1);
    for (_, _, ip) in order.into_iter().take(n) {
        shard.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy { max_failures: 10, window: Duration::from_secs(300), lockout: Duration::from_secs(300) }
    }

    #[test]
    fn ten_failures_lock_for_the_lockout_period() {
        let l = Lockout::new(policy());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..9 {
            assert!(l.check(ip, t0).is_ok());
            assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(i * 10)), None);
        }
        let locked = l.record_failure(ip, t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(locked.retry_after, Duration::from_secs(300));
        // the 11th request is refused before evaluation, with Retry-After
        let err = l.check(ip, t0 + Duration::from_secs(101)).unwrap_err();
        assert_eq!(err.retry_after_secs(), 299);
        let resp = String::from_utf8(err.response()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 429 ") && resp.contains("\r\nRetry-After: 299\r\n"), "{resp}");
        assert!(l.check(other, t0 + Duration::from_secs(101)).is_ok(), "per IP");
        // the lockout ends; counting starts again
        assert!(l.check(ip, t0 + Duration::from_secs(400)).is_ok());
        assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(401)), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let l = Lockout::new(policy());
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(i)), None);
        }
        // window expired: a new one starts
        for i in 0..9 {
            assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(300 + i)), None);
        }
        assert!(l.record_failure(ip, t0 + Duration::from_secs(310)).is_some());
    }

    #[test]
    fn memory_is_bounded_and_locked_entries_survive_eviction() {
        let l = Lockout::with_capacity(LockoutPolicy { max_failures: 1, ..policy() }, 160);
        let t0 = Instant::now();
        let victim: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(l.record_failure(victim, t0).is_some());
        let pol = LockoutPolicy { max_failures: 100, ..policy() };
        l.set_policy(pol);
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.record_failure(ip, t0 + Duration::from_millis(u64::from(i) + 1));
        }
        assert!(l.tracked() <= 160, "{}", l.tracked());
        assert!(l.check(victim, t0 + Duration::from_secs(11)).is_err(), "locked IP evicted");
        l.sweep(t0 + Duration::from_secs(10_000));
        assert_eq!(l.tracked(), 0);
    }
}
