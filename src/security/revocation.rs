//! The revocation hook (security.md §1.3 "Revocation"): the verifiers ask a
//! [`Revocations`] whether a `jti`, a `sub` or an API key id is revoked at a
//! given time. [`RevocationTable`] is the in-memory copy of the SQLite
//! `revocations` table that the store loads at start and on change; tests and
//! callers may pass any closure instead.
//!
//! Owns: the lookup contract. Must not: do I/O (the store fills the table) or
//! block for long (lookups happen on reactor threads; writes are rare).

use std::collections::HashMap;
use std::sync::RwLock;

use super::UnixTime;

/// `revocations.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    Jti,
    Sub,
    /// `value` is the key id `ak_…` (security.md §1.3).
    ApiKey,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Jti => "jti",
            RevocationKind::Sub => "sub",
            RevocationKind::ApiKey => "api_key",
        }
    }

    pub fn parse(s: &str) -> Option<RevocationKind> {
        match s {
            "jti" => Some(RevocationKind::Jti),
            "sub" => Some(RevocationKind::Sub),
            "api_key" => Some(RevocationKind::ApiKey),
            _ => None,
        }
    }
}

/// Answers "is `(kind, value)` revoked at `now`" (a row with `until_ms > now`).
pub trait Revocations: Send + Sync {
    fn is_revoked(&self, kind: RevocationKind, value: &str, now: UnixTime) -> bool;
}

impl<F> Revocations for F
where
    F: Fn(RevocationKind, &str, UnixTime) -> bool + Send + Sync,
{
    fn is_revoked(&self, kind: RevocationKind, value: &str, now: UnixTime) -> bool {
        self(kind, value, now)
    }
}

/// Nothing is revoked.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRevocations;

impl Revocations for NoRevocations {
    fn is_revoked(&self, _: RevocationKind, _: &str, _: UnixTime) -> bool {
        false
    }
}

/// Largest number of rows kept in memory; the store refuses to insert beyond it.
pub const MAX_REVOCATIONS: usize = 100_000;

/// In-memory revocations: `(kind, value) → until_ms`. Readers take a shared lock.
#[derive(Debug, Default)]
pub struct RevocationTable {
    rows: RwLock<HashMap<(RevocationKind, String), u64>>,
}

impl RevocationTable {
    pub fn new() -> RevocationTable {
        RevocationTable::default()
    }

    /// Replace every row (load at start, reload). Rows beyond [`MAX_REVOCATIONS`] are dropped
    /// and reported as `Err(dropped)`.
    pub fn replace(&self, rows: impl IntoIterator<Item = (RevocationKind, String, u64)>) -> Result<(), usize> {
        let mut map = HashMap::new();
        let mut dropped = 0;
        for (kind, value, until_ms) in rows {
            if map.len() >= MAX_REVOCATIONS {
                dropped += 1;
                continue;
            }
            map.insert((kind, value), until_ms);
        }
        let mut guard = self.rows.write().unwrap_or_else(|p| p.into_inner());
        *guard = map;
        if dropped == 0 { Ok(()) } else { Err(dropped) }
    }

    /// Add or update one row; `false` when the table is full.
    pub fn insert(&self, kind: RevocationKind, value: String, until_ms: u64) -> bool {
        let mut guard = self.rows.write().unwrap_or_else(|p| p.into_inner());
        if guard.len() >= MAX_REVOCATIONS && !guard.contains_key(&(kind, value.clone())) {
            return false;
        }
        guard.insert((kind, value), until_ms);
        true
    }

    pub fn remove(&self, kind: RevocationKind, value: &str) -> bool {
        let mut guard = self.rows.write().unwrap_or_else(|p| p.into_inner());
        guard.remove(&(kind, value.to_string())).is_some()
    }

    /// Drop rows whose `until_ms ≤ now`.
    pub fn prune(&self, now: UnixTime) {
        let mut guard = self.rows.write().unwrap_or_else(|p| p.into_inner());
        guard.retain(|_, until| *until > now.ms());
    }

    pub fn len(&self) -> usize {
        self.rows.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Revocations for RevocationTable {
    fn is_revoked(&self, kind: RevocationKind, value: &str, now: UnixTime) -> bool {
        let guard = self.rows.read().unwrap_or_else(|p| p.into_inner());
        // One small allocation per lookup; lookups happen once per authentication.
        guard.get(&(kind, value.to_string())).is_some_and(|until| *until > now.ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_closure() {
        let t = RevocationTable::new();
        let now = UnixTime::from_secs(1_000);
        assert!(t.insert(RevocationKind::Jti, "j1".into(), 2_000_000));
        assert!(t.insert(RevocationKind::Sub, "bob".into(), 500_000));
        assert!(t.is_revoked(RevocationKind::Jti, "j1", now));
        assert!(!t.is_revoked(RevocationKind::Sub, "j1", now));
        assert!(!t.is_revoked(RevocationKind::Sub, "bob", now), "until in the past");
        t.prune(now);
        assert_eq!(t.len(), 1);
        assert!(t.remove(RevocationKind::Jti, "j1"));
        assert!(t.is_empty());
        let f = |k: RevocationKind, v: &str, _: UnixTime| k == RevocationKind::Jti && v == "x";
        assert!(f.is_revoked(RevocationKind::Jti, "x", now));
        assert!(!NoRevocations.is_revoked(RevocationKind::Jti, "x", now));
        assert_eq!(RevocationKind::parse("api_key"), Some(RevocationKind::ApiKey));
    }
}
