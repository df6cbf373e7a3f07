//! Crash fail points in the store writer for the crash-safety tests
//! (operations.md §3.7 test 4). `HOTPLEX_FAILPOINT=<point>:<N>` with point
//! `store.before_commit`, `store.mid_batch` or `store.after_commit` aborts
//! the process in the batch that brings the number of appended events to
//! N or more. Honoured only in debug builds (the ones `cargo test` runs):
//! a release binary ignores the variable entirely.
//!
//! This module only decides *whether* to abort; the writer calls
//! [`FailPoint::hit`] at the three places.

/// Where in a batch the process aborts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// All ops applied, `COMMIT` not yet issued: the batch must vanish.
    BeforeCommit,
    /// Half of the batch's ops applied inside the open transaction.
    MidBatch,
    /// `COMMIT` done, reactors not yet told: the batch is durable, unseen.
    AfterCommit,
}

/// An armed fail point.
#[derive(Debug)]
pub struct FailPoint {
    point: Point,
    at_events: u64,
    events: u64,
}

impl FailPoint {
    /// The fail point named by `HOTPLEX_FAILPOINT`, in debug builds only.
    pub fn from_env() -> Option<FailPoint> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let spec = std::env::var("HOTPLEX_FAILPOINT").ok()?;
        let parsed = Self::parse(&spec);
        if parsed.is_none() {
            log::warn!(
                "HOTPLEX_FAILPOINT={spec:?} is not <store.before_commit|store.mid_batch|store.after_commit>:<N>; ignored"
            );
        }
        parsed
    }

    fn parse(spec: &str) -> Option<FailPoint> {
        let (name, n) = spec.split_once(':')?;
        let point = match name {
            "store.before_commit" => Point::BeforeCommit,
            "store.mid_batch" => Point::MidBatch,
            "store.after_commit" => Point::AfterCommit,
            _ => return None,
        };
        Some(FailPoint { point, at_events: n.trim().parse().ok()?, events: 0 })
    }

    /// Count a batch about to be applied that appends `appends` events.
    pub fn count(&mut self, appends: u64) {
        self.events += appends;
    }

    /// Abort here if this is the armed point and the event count is reached.
    pub fn hit(&self, point: Point) {
        if point == self.point && self.events >= self.at_events {
            log::warn!("fail point {:?} reached after {} events: aborting", point, self.events);
            crate::logging::flush();
            std::process::abort();
        }
    }

    pub fn point(&self) -> Point {
        self.point
    }

    /// True when the next [`hit`](Self::hit) of `point` aborts.
    pub fn armed(&self, point: Point) -> bool {
        point == self.point && self.events >= self.at_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_points_and_rejects_the_rest() {
        let f = FailPoint::parse("store.mid_batch:300").unwrap();
        assert_eq!((f.point(), f.at_events), (Point::MidBatch, 300));
        assert_eq!(FailPoint::parse("store.before_commit:1").unwrap().point(), Point::BeforeCommit);
        assert_eq!(FailPoint::parse("store.after_commit:0").unwrap().point(), Point::AfterCommit);
        assert!(FailPoint::parse("store.elsewhere:3").is_none());
        assert!(FailPoint::parse("store.mid_batch").is_none());
        assert!(FailPoint::parse("store.mid_batch:x").is_none());
    }

    #[test]
    fn arms_once_the_event_count_is_reached() {
        let mut f = FailPoint::parse("store.after_commit:10").unwrap();
        f.count(9);
        assert!(!f.armed(Point::AfterCommit));
        f.count(1);
        assert!(f.armed(Point::AfterCommit));
        assert!(!f.armed(Point::BeforeCommit));
    }
}
