//! Finding and killing processes that outlive their worker's process group
//! (workers.md §1.4 item 2, security.md §3 "Escaped descendants").
//!
//! Owns: `Target` — a process named by `(pid, starttime)` and held through a
//! pidfd, so a signal can never hit a process that reused the pid — the
//! collection of sweep targets for one finished worker, and the periodic
//! sweep of re-parented orphans that belong to no live worker.
//!
//! Must not: reap (only the supervisor's waitid loop does), or read the
//! environ of a process of another uid (procfs enforces it).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::procfs;
use crate::sys;

/// Environment variable every worker carries; the sweep key of a session.
pub const SESSION_ENV: &str = "HOTPLEX_SESSION_ID";

/// Environment variable every worker carries: the store's `meta.instance_id`.
/// Session ids are deterministic (UUIDv5), so two gateways on one host can
/// run workers with the same session id; startup orphan cleanup matches this
/// too, so it only kills workers left by a previous run on the same store.
pub const INSTANCE_ENV: &str = "HOTPLEX_INSTANCE_ID";

static INSTANCE_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Record the store's instance id (once, at startup, before any spawn).
pub fn set_instance_id(id: &str) {
    let _ = INSTANCE_ID.set(id.to_owned());
}

/// The instance id workers are given, if startup recorded one.
pub fn instance_id() -> Option<&'static str> {
    INSTANCE_ID.get().map(String::as_str)
}

/// Most processes one worker's sweep will track (a fork bomb must not make
/// the spawner thread unbounded).
pub const MAX_SWEEP_TARGETS: usize = 4096;

/// A process to signal, identified by `(pid, starttime)`.
#[derive(Debug)]
pub(crate) struct Target {
    pub pid: i32,
    pub starttime: u64,
    /// `None` only on kernels without pidfds (< 5.3); then each signal
    /// re-checks the start time just before `kill`.
    pidfd: Option<OwnedFd>,
    /// Re-parented to the gateway (our unreaped child): its pid — hence its
    /// group id if it leads one — cannot be reused while we hold off reaping.
    ours: bool,
    /// Leads its own process group (`pgrp == pid`), e.g. a `setsid` daemon.
    group_leader: bool,
}

impl Target {
    /// Opens a handle on `pid` if it is still the process that started at
    /// `starttime` and has not exited.
    pub fn open(pid: i32, starttime: u64) -> Option<Target> {
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => Some(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
            Err(_) => return None,
        };
        // Verified after the pidfd exists: if the stat still matches, the
        // pidfd refers to this very process.
        let st = procfs::read_stat(pid).ok()?;
        if st.starttime != starttime || st.is_zombie() {
            return None;
        }
        let me = std::process::id() as i32;
        Some(Target { pid, starttime, pidfd, ours: st.ppid == me, group_leader: st.pgrp == pid })
    }

    /// Sends `sig` to the process, and to its group when that is safe (it
    /// leads the group and is our unreaped child). Errors mean it is gone.
    pub fn signal(&self, sig: i32) {
        let res = match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_fd(), sig),
            None if procfs::is_alive(self.pid, self.starttime) => sys::kill(self.pid, sig),
            None => return,
        };
        if let Err(e) = res
            && e.raw_os_error() != Some(libc::ESRCH)
        {
            log::warn!("child: signal {sig} to pid {} failed: {e}", self.pid);
        }
        if self.ours && self.group_leader && procfs::is_alive(self.pid, self.starttime) {
            let _ = sys::kill(-self.pid, sig);
        }
    }
}

/// Sends `sig` to `pid` only if it is still the process that started at
/// `starttime`. `Ok(false)` if it is gone. For callers outside the
/// supervisor (startup recovery, tests).
pub fn kill_process(pid: i32, starttime: u64, sig: i32) -> io::Result<bool> {
    match Target::open(pid, starttime) {
        Some(t) => {
            match &t.pidfd {
                Some(fd) => sys::pidfd_send_signal(fd.as_fd(), sig)?,
                None => sys::kill(pid, sig)?,
            }
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Signals the process group led by `pid` if `pid` is still the process that
/// started at `starttime` and leads its group (operations.md §2.5 step 5:
/// orphaned workers of a previous run). A pid that is not our child is not
/// pinned, so a tiny reuse window remains between check and `kill`.
pub fn kill_group_of(pid: i32, starttime: u64, sig: i32) -> io::Result<bool> {
    match procfs::read_stat(pid) {
        Ok(st) if st.starttime == starttime && st.pgrp == pid && !st.is_zombie() => {
            sys::kill(-pid, sig)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Startup recovery under a worker identity (`run_as`, `uid_per_owner`):
/// the environ of another uid is never read (security.md §3), so the
/// members left in the process group of a worker leader recorded in the
/// store (the leader itself died of PDEATHSIG with the old gateway) are
/// found by their group id instead. A process is killed only if its group
/// is `leader_pid`, it started no earlier than the recorded leader, its real
/// uid is a worker uid (`is_worker_uid`), and no other process now leads
/// that group (a reused pid leading a new group means the group is not
/// ours). Returns how many were signalled.
pub fn kill_group_members(leader_pid: i32, leader_ticks: u64, is_worker_uid: &dyn Fn(u32) -> bool) -> usize {
    let Ok(procs) = procfs::scan() else { return 0 };
    if procs.iter().any(|p| p.pid == leader_pid && p.starttime != leader_ticks && !p.is_zombie()) {
        return 0;
    }
    let mut killed = 0;
    for p in procs.iter().filter(|p| p.pgrp == leader_pid && p.starttime >= leader_ticks && !p.is_zombie()) {
        let uid =
            std::fs::read_to_string(format!("/proc/{}/status", p.pid)).ok().and_then(|s| procfs::parse_status_uid(&s));
        if uid.is_some_and(is_worker_uid) && kill_process(p.pid, p.starttime, libc::SIGKILL).unwrap_or(false) {
            killed += 1;
        }
    }
    killed
}

/// `(pid, starttime)` pairs, deduplicated, bounded by [`MAX_SWEEP_TARGETS`].
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    entries: HashMap<i32, u64>,
}

impl Snapshot {
    pub fn merge(&mut self, pairs: impl IntoIterator<Item = (i32, u64)>) {
        for (pid, st) in pairs {
            if self.entries.len() >= MAX_SWEEP_TARGETS && !self.entries.contains_key(&pid) {
                log::warn!("child: sweep snapshot full ({MAX_SWEEP_TARGETS}); pid {pid} not tracked");
                return;
            }
            // A newer start time for the same pid replaces an older (dead) one.
            self.entries.insert(pid, st);
        }
    }

    pub fn contains(&self, pid: i32, starttime: u64) -> bool {
        self.entries.get(&pid) == Some(&starttime)
    }

    pub fn iter(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.entries.iter().map(|(&p, &s)| (p, s))
    }
}

/// Everything that still belongs to a finished worker: the snapshot, every
/// own-uid process carrying its session id that descends from this gateway,
/// and their live descendants. `exclude` = pids that must never be touched
/// (other workers' leaders).
///
/// Session ids of client keys are deterministic (aep-v1.md §4.1), so another
/// gateway of the same uid on the host may run a worker with the same
/// `HOTPLEX_SESSION_ID`; only this gateway's descendants (it is a subreaper,
/// so escaped ones are re-parented to it) are attributed by that variable.
pub(crate) fn collect_targets(snapshot: &Snapshot, session_id: &str, exclude: &HashSet<i32>) -> Vec<Target> {
    let me = std::process::id() as i32;
    let mut want: HashMap<i32, u64> = snapshot.iter().collect();
    if let Ok(procs) = procfs::scan() {
        let ours: HashSet<(i32, u64)> = procfs::descendants_in(&procs, me).into_iter().collect();
        want.extend(procfs::processes_with_env(&[(SESSION_ENV, session_id)]).into_iter().filter(|p| ours.contains(p)));
        let roots: Vec<i32> = want.keys().copied().collect();
        for root in roots {
            if procs.iter().any(|p| p.pid == root && want.get(&root) == Some(&p.starttime)) {
                want.extend(procfs::descendants_in(&procs, root));
            }
        }
    }
    want.into_iter()
        .filter(|(pid, _)| *pid != me && !exclude.contains(pid))
        .take(MAX_SWEEP_TARGETS)
        .filter_map(|(pid, st)| Target::open(pid, st))
        .collect()
}

/// What a live worker contributes to orphan attribution.
pub(crate) struct LiveWorker<'a> {
    pub snapshot: &'a Snapshot,
    pub session_id: &'a str,
}

/// Kills every direct child of the gateway that is not a tracked worker
/// leader and cannot be attributed to a live worker (by snapshot or by its
/// `HOTPLEX_SESSION_ID`). Returns how many were signalled.
pub(crate) fn sweep_orphans(leaders: &HashSet<i32>, live: &[LiveWorker<'_>]) -> usize {
    let uid = sys::getuid();
    let sessions: HashSet<&[u8]> = live.iter().map(|w| w.session_id.as_bytes()).collect();
    let mut killed = 0;
    for child in procfs::own_children() {
        if child.is_zombie() || leaders.contains(&child.pid) {
            continue;
        }
        if live.iter().any(|w| w.snapshot.contains(child.pid, child.starttime)) {
            continue;
        }
        let session = procfs::own_uid_environ(child.pid, uid);
        if let Some(env) = &session
            && procfs::environ_value(env, SESSION_ENV).is_some_and(|v| sessions.contains(v))
        {
            continue;
        }
        if let Some(t) = Target::open(child.pid, child.starttime) {
            log::info!("child: killing unattributed orphan pid {}", child.pid);
            t.signal(libc::SIGKILL);
            killed += 1;
        }
    }
    killed
}
