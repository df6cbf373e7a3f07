//! `sessions.max_stored_per_owner` (security.md §9, operations.md §1.5):
//! stored sessions of an owner, terminated ones included, tombstones not.
//!
//! Decision: the store is the count's source (a `CountStoredExcept` read on
//! the reader pool, off the reactor), so sessions purged by retention or
//! deleted free their slot without any bookkeeping here. What the store
//! cannot know yet is a create whose `InsertSession` is still queued for the
//! writer's group commit; those ids are held here per owner (a reservation
//! taken before the read) until the session's first commit or until it is
//! forgotten, and the read excludes them so none is counted twice.
//!
//! Owns only that in-flight set (a short `Mutex`, never held across I/O).
//! Must not read the store itself.

use std::collections::HashMap;
use std::sync::Mutex;

/// Creates not yet visible in the store, per owner.
#[derive(Default)]
pub struct InFlightCreates {
    by_owner: Mutex<HashMap<String, Vec<String>>>,
}

impl InFlightCreates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        match self.by_owner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Reserve `id` for `owner`; returns every in-flight id of the owner
    /// (`id` included), which the store count must exclude.
    pub fn reserve(&self, owner: &str, id: &str) -> Vec<String> {
        let mut m = self.lock();
        let v = m.entry(owner.to_owned()).or_default();
        if !v.iter().any(|x| x == id) {
            v.push(id.to_owned());
        }
        v.clone()
    }

    /// The create is refused, committed or forgotten: the store decides from now on.
    pub fn release(&self, owner: &str, id: &str) {
        let mut m = self.lock();
        if let Some(v) = m.get_mut(owner) {
            v.retain(|x| x != id);
            if v.is_empty() {
                m.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_release() {
        let f = InFlightCreates::default();
        assert_eq!(f.reserve("a", "1"), vec!["1"]);
        assert_eq!(f.reserve("a", "2"), vec!["1", "2"]);
        assert_eq!(f.reserve("b", "3"), vec!["3"]);
        f.release("a", "1");
        assert_eq!(f.reserve("a", "2"), vec!["2"]);
        f.release("a", "2");
        f.release("a", "9");
        assert!(f.lock().get("a").is_none());
    }
}
