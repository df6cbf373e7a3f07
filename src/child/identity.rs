//! Which uid a worker runs as (security.md §3 "Identity").
//!
//! Owns: the `owner → uid` map of `security.worker.uid_per_owner` on the
//! spawner thread ([`UidAllocator`]): lookups, first-use allocation of the
//! lowest free uid of the range, and the wait until the new row is committed
//! (through a [`UidBook`], the store writer in the gateway) before any process
//! runs under that uid. Decision: the worker's gid equals its uid (a per-owner
//! group that need not exist in `/etc/group`), no supplementary groups.
//!
//! Must not: run on a reactor thread (a first use waits for a commit); hand
//! out a uid before it is persisted (after a crash the same uid could go to
//! another owner, who would then own the first owner's files); reuse a uid
//! recorded for another owner, even one outside the current range.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::spawn::RunAs;

/// `security.worker.uid_per_owner` as the spawner applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidRange {
    pub first_uid: u32,
    pub count: u32,
}

impl UidRange {
    fn contains(&self, uid: u32) -> bool {
        uid >= self.first_uid && uid - self.first_uid < self.count
    }
}

/// A worker identity that depends on the session's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerOwner {
    pub owner: String,
    pub range: UidRange,
}

/// Why no uid could be given to an owner.
#[derive(Debug, PartialEq, Eq)]
pub enum UidError {
    /// Every uid of the range belongs to another owner (`GATEWAY_OVERLOAD`).
    Exhausted,
    /// The owner's recorded uid is outside the configured range (the range
    /// changed); refused rather than silently moving the owner's files.
    OutOfRange(u32),
    /// The store did not confirm the new row.
    NotStored(String),
    /// The spawner was started without an allocator (a wiring bug).
    Unavailable,
}

impl fmt::Display for UidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UidError::Exhausted => write!(f, "uid_per_owner range exhausted"),
            UidError::OutOfRange(u) => write!(f, "the owner's recorded uid {u} is outside uid_per_owner"),
            UidError::NotStored(e) => write!(f, "owner uid not stored: {e}"),
            UidError::Unavailable => write!(f, "uid_per_owner is not wired to a store"),
        }
    }
}

/// Durable record of `owner → uid` rows.
pub trait UidBook: Send {
    /// Store the row; returns once it is committed (or failed).
    fn record(&mut self, owner: &str, uid: u32) -> Result<(), String>;
}

/// The owner → uid map, living on the spawner thread.
pub struct UidAllocator {
    by_owner: HashMap<String, u32>,
    used: HashSet<u32>,
    /// Never allocated: the gateway's own uid (a worker must not share it).
    reserved: u32,
    book: Box<dyn UidBook>,
}

impl UidAllocator {
    /// `existing`: every persisted row (table `owner_uids`), loaded at startup.
    pub fn new(existing: Vec<(String, u32)>, book: Box<dyn UidBook>) -> UidAllocator {
        let used = existing.iter().map(|(_, u)| *u).collect();
        UidAllocator { by_owner: existing.into_iter().collect(), used, reserved: crate::sys::getuid(), book }
    }

    /// The uid of `owner`, allocating (and persisting) one on first use.
    pub fn uid_for(&mut self, owner: &str, range: UidRange) -> Result<u32, UidError> {
        if let Some(&uid) = self.by_owner.get(owner) {
            return if range.contains(uid) { Ok(uid) } else { Err(UidError::OutOfRange(uid)) };
        }
        let uid = (0..range.count)
            .map(|i| range.first_uid + i)
            .find(|u| !self.used.contains(u) && *u != self.reserved && *u != 0)
            .ok_or(UidError::Exhausted)?;
        self.book.record(owner, uid).map_err(UidError::NotStored)?;
        self.used.insert(uid);
        self.by_owner.insert(owner.to_owned(), uid);
        log::info!("worker uid {uid} allocated to a new owner (uid_per_owner)");
        Ok(uid)
    }

    /// The identity a worker of `p.owner` runs as (gid = uid).
    pub fn identity(&mut self, p: &PerOwner) -> Result<RunAs, UidError> {
        let uid = self.uid_for(&p.owner, p.range)?;
        Ok(RunAs { uid, gid: uid, groups: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(std::sync::Arc<std::sync::Mutex<Vec<(String, u32)>>>, bool);

    impl UidBook for Mem {
        fn record(&mut self, owner: &str, uid: u32) -> Result<(), String> {
            if self.1 {
                return Err("disk full".into());
            }
            self.0.lock().map_err(|e| e.to_string())?.push((owner.to_owned(), uid));
            Ok(())
        }
    }

    fn range(first_uid: u32, count: u32) -> UidRange {
        UidRange { first_uid, count }
    }

    #[test]
    fn allocates_lowest_free_and_persists_first() {
        let rows = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut a = UidAllocator::new(vec![("old".into(), 70_001)], Box::new(Mem(rows.clone(), false)));
        let r = range(70_000, 3);
        assert_eq!(a.uid_for("alice", r), Ok(70_000));
        assert_eq!(a.uid_for("bob", r), Ok(70_002), "70001 belongs to a recorded owner");
        assert_eq!(a.uid_for("alice", r), Ok(70_000), "stable");
        assert_eq!(a.uid_for("old", r), Ok(70_001));
        assert_eq!(a.uid_for("carol", r), Err(UidError::Exhausted));
        assert_eq!(*rows.lock().unwrap(), vec![("alice".to_string(), 70_000), ("bob".to_string(), 70_002)]);
        assert_eq!(a.identity(&PerOwner { owner: "bob".into(), range: r }).unwrap().gid, 70_002);
    }

    #[test]
    fn out_of_range_and_unstored_are_refused() {
        let rows = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut a = UidAllocator::new(vec![("old".into(), 5000)], Box::new(Mem(rows.clone(), true)));
        assert_eq!(a.uid_for("old", range(70_000, 3)), Err(UidError::OutOfRange(5000)));
        assert!(matches!(a.uid_for("new", range(70_000, 3)), Err(UidError::NotStored(_))));
        // Nothing was handed out: the next try gets the same uid.
        a.book = Box::new(Mem(rows, false));
        assert_eq!(a.uid_for("new", range(70_000, 3)), Ok(70_000));
    }

    #[test]
    fn never_the_gateway_uid() {
        let me = crate::sys::getuid();
        let rows = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut a = UidAllocator::new(Vec::new(), Box::new(Mem(rows, false)));
        let got = a.uid_for("x", range(me.max(1), 2)).unwrap();
        assert_ne!(got, me);
    }
}
