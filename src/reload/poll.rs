//! The config file poll (operations.md §1.8): every `reload.poll_interval`
//! the file is stat-ed after following symlinks and compared by (mtime,
//! size, inode), so a Kubernetes ConfigMap's symlink swap is seen as well as
//! an in-place edit. A changed file that does not load is retried at every
//! poll (a `{file: …}` secret may be fixed without touching the file) but
//! reported only once per distinct file state.
//!
//! Owns the bookkeeping only; it runs on the main thread's signal-loop tick,
//! never on a reactor.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the poll compares. `None` where a state is stored = the file could not be stat-ed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileState {
    pub mtime_s: i64,
    pub mtime_ns: i64,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
}

impl FileState {
    /// Stat `path`, following symlinks.
    pub fn of(path: &Path) -> Option<FileState> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileState { mtime_s: m.mtime(), mtime_ns: m.mtime_nsec(), size: m.size(), dev: m.dev(), ino: m.ino() })
    }
}

/// Poll bookkeeping, shared by the poll and every other trigger (a reload
/// through SIGHUP or the admin API records the state it read, so the poll
/// does not repeat it).
#[derive(Debug, Default)]
pub struct PollState {
    /// The file state the last reload attempt read.
    pub seen: Option<Option<FileState>>,
    /// The last attempt failed: retry at every poll.
    pub retry: bool,
    /// The file state whose failure was last reported.
    pub reported: Option<Option<FileState>>,
    next: Option<Instant>,
}

/// What the poll should do at this tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Reload; `quiet`: this file state's failure was already reported.
    Reload {
        quiet: bool,
    },
}

impl PollState {
    /// Decide at `now`, with the current interval (zero = off) and file state.
    pub fn due(&mut self, now: Instant, interval: Duration, state: impl FnOnce() -> Option<FileState>) -> Due {
        if interval.is_zero() {
            self.next = None;
            return Due::Nothing;
        }
        match self.next {
            Some(at) if now < at && at <= now + interval => return Due::Nothing,
            _ => {}
        }
        self.next = Some(now + interval);
        let st = state();
        if self.seen == Some(st) && !self.retry {
            return Due::Nothing;
        }
        Due::Reload { quiet: self.retry && self.reported == Some(st) }
    }

    /// A reload that read the file in `state` finished (`ok`: it loaded).
    pub fn record(&mut self, state: Option<FileState>, ok: bool) {
        self.seen = Some(state);
        self.retry = !ok;
        self.reported = if ok { None } else { Some(state) };
    }

    /// Try again at the next tick (another reload was running).
    pub fn again(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(size: u64) -> Option<FileState> {
        Some(FileState { mtime_s: 1, mtime_ns: 0, size, dev: 1, ino: 1 })
    }

    #[test]
    fn unchanged_file_is_not_reloaded_and_zero_interval_is_off() {
        let mut p = PollState::default();
        p.record(st(10), true);
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        assert_eq!(p.due(t0, i, || st(10)), Due::Nothing);
        assert_eq!(p.due(t0 + i, Duration::ZERO, || st(11)), Due::Nothing);
    }

    #[test]
    fn interval_is_respected() {
        let mut p = PollState::default();
        p.record(st(10), true);
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        assert_eq!(p.due(t0, i, || st(10)), Due::Nothing);
        // changed, but not yet time
        assert_eq!(p.due(t0 + Duration::from_millis(500), i, || st(11)), Due::Nothing);
        assert_eq!(p.due(t0 + i, i, || st(11)), Due::Reload { quiet: false });
    }

    #[test]
    fn an_invalid_state_is_retried_quietly_until_it_changes() {
        let mut p = PollState::default();
        p.record(st(10), true);
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        assert_eq!(p.due(t0, i, || st(11)), Due::Reload { quiet: false });
        p.record(st(11), false);
        // same broken file: retried, not reported again
        assert_eq!(p.due(t0 + i, i, || st(11)), Due::Reload { quiet: true });
        p.record(st(11), false);
        // edited but still broken: reported
        assert_eq!(p.due(t0 + 2 * i, i, || st(12)), Due::Reload { quiet: false });
        p.record(st(12), false);
        // fixed
        assert_eq!(p.due(t0 + 3 * i, i, || st(13)), Due::Reload { quiet: false });
        p.record(st(13), true);
        assert_eq!(p.due(t0 + 4 * i, i, || st(13)), Due::Nothing);
        // a vanished file is a state too
        assert_eq!(p.due(t0 + 5 * i, i, || None), Due::Reload { quiet: false });
    }

    #[test]
    fn stat_follows_symlinks() {
        let dir = std::env::temp_dir().join(format!("hotplex-poll-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), "x: 1\n").unwrap();
        std::fs::write(dir.join("b"), "x: 2\n").unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("link")).unwrap();
        let one = FileState::of(&dir.join("link"));
        assert_eq!(one, FileState::of(&dir.join("a")));
        std::os::unix::fs::symlink(dir.join("b"), dir.join("link2")).unwrap();
        std::fs::rename(dir.join("link2"), dir.join("link")).unwrap();
        let two = FileState::of(&dir.join("link"));
        assert!(two.is_some() && one != two);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
