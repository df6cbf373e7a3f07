//! Read-only views of `/proc` used to attribute processes to workers
//! (workers.md §1.4, security.md §3 "Rules around the spawn").
//!
//! Owns: parsing `/proc/<pid>/stat` (a `comm` may contain spaces and `)`),
//! process-tree snapshots of `(pid, starttime)` pairs, and the
//! `HOTPLEX_SESSION_ID` environ scan restricted to the gateway's own uid.
//!
//! Must not: signal, reap or otherwise act on a process (the supervisor does);
//! panic on anything read from `/proc` (processes vanish mid-scan; every read
//! is fallible and a vanished process is simply skipped).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;

use crate::sys;

/// The fields of `/proc/<pid>/stat` the child layer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Field 22, clock ticks since boot: with `pid` it names a process
    /// uniquely (a reused pid gets a later start time).
    pub starttime: u64,
}

impl ProcStat {
    /// Not yet reaped but already dead.
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z' || self.state == b'X'
    }
}

/// Parses the text of `/proc/<pid>/stat`. `None` if it is malformed.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    // "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
    //  majflt cmajflt utime stime cutime cstime priority nice num_threads
    //  itrealvalue starttime …" — comm is up to 16 bytes and may contain
    //  anything, including ") ", so split at the LAST ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let state = *rest.next()?.as_bytes().first()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    let session = rest.next()?.parse().ok()?;
    // Fields 7..=21 (15 of them) lie between `session` and `starttime`.
    let starttime = rest.nth(15)?.parse().ok()?;
    Some(ProcStat { pid, state, ppid, pgrp, session, starttime })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
}

/// Reads and parses `/proc/<pid>/stat`.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| invalid("/proc/<pid>/stat"))
}

/// `/proc/<pid>/stat` field 22 (start time in clock ticks).
pub fn start_ticks(pid: i32) -> io::Result<u64> {
    read_stat(pid).map(|s| s.starttime)
}

/// Whether `pid` still names the process that started at `starttime` and has
/// not exited (a zombie counts as gone).
pub fn is_alive(pid: i32, starttime: u64) -> bool {
    matches!(read_stat(pid), Ok(s) if s.starttime == starttime && !s.is_zombie())
}

/// Numeric entries of `/proc` (thread-group leaders).
fn pids() -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            out.push(pid);
        }
    }
    Ok(out)
}

/// Every process visible in `/proc` (processes that vanish mid-scan are skipped).
pub fn scan() -> io::Result<Vec<ProcStat>> {
    Ok(pids()?.into_iter().filter_map(|pid| read_stat(pid).ok()).collect())
}

/// Descendants of `root` (not `root` itself) in a snapshot, by `ppid` links.
pub fn descendants_in(procs: &[ProcStat], root: i32) -> Vec<(i32, u64)> {
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, p) in procs.iter().enumerate() {
        if p.pid != p.ppid {
            children.entry(p.ppid).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &i in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            let p = &procs[i];
            if seen.insert(p.pid) {
                out.push((p.pid, p.starttime));
                stack.push(p.pid);
            }
        }
    }
    out
}

/// Descendants of `root_pid` from a full `/proc` scan, as `(pid, starttime)`.
/// Empty if `/proc` cannot be read (logged).
pub fn descendants(root_pid: i32) -> Vec<(i32, u64)> {
    match scan() {
        Ok(procs) => descendants_in(&procs, root_pid),
        Err(e) => {
            log::warn!("child: /proc scan failed: {e}");
            Vec::new()
        }
    }
}

/// Whether a raw `/proc/<pid>/environ` block holds exactly `key=value`.
pub fn environ_has(environ: &[u8], key: &str, value: &str) -> bool {
    let (key, value) = (key.as_bytes(), value.as_bytes());
    environ.split(|&b| b == 0).any(|entry| {
        entry.len() == key.len() + 1 + value.len()
            && entry.starts_with(key)
            && entry[key.len()] == b'='
            && entry.ends_with(value)
    })
}

/// Real uid from the text of `/proc/<pid>/status` (`Uid:\treal\teff\tsaved\tfs`).
pub fn parse_status_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The raw `/proc/<pid>/environ` of `pid` if its real uid is `uid` (the
/// gateway's own: other uids are never read, security.md §3).
pub fn own_uid_environ(pid: i32, uid: u32) -> Option<Vec<u8>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if parse_status_uid(&status) != Some(uid) {
        return None;
    }
    fs::read(format!("/proc/{pid}/environ")).ok()
}

/// The value of `key` in a raw environ block (first occurrence).
pub fn environ_value<'a>(environ: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let key = key.as_bytes();
    environ.split(|&b| b == 0).find_map(|entry| entry.strip_prefix(key)?.strip_prefix(b"="))
}

/// Processes of the gateway's own uid (not the gateway itself) whose
/// `/proc/<pid>/environ` contains every `key=value` of `pairs`, as
/// `(pid, starttime)`. Processes of other uids are never read (security.md §3).
pub fn processes_with_env(pairs: &[(&str, &str)]) -> Vec<(i32, u64)> {
    let me = std::process::id() as i32;
    let uid = sys::getuid();
    let pids = match pids() {
        Ok(p) => p,
        Err(e) => {
            log::warn!("child: /proc scan failed: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for pid in pids {
        if pid == me {
            continue;
        }
        // Start time first: if the pid is reused after this point, the
        // environ read below belongs to a different process, and the start
        // time re-read afterwards will not match.
        let Ok(before) = start_ticks(pid) else { continue };
        let Some(environ) = own_uid_environ(pid, uid) else { continue };
        if pairs.iter().all(|(k, v)| environ_has(&environ, k, v)) && start_ticks(pid).ok() == Some(before) {
            out.push((pid, before));
        }
    }
    out
}

/// Direct children of the gateway (`ppid` = our pid), including zombies.
pub fn own_children() -> Vec<ProcStat> {
    let me = std::process::id() as i32;
    match scan() {
        Ok(procs) => procs.into_iter().filter(|p| p.ppid == me).collect(),
        Err(e) => {
            log::warn!("child: /proc scan failed: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(pid: i32, comm: &str, ppid: i32, start: u64) -> String {
        format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000 100 \
             18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn parses_plain_stat() {
        let s = parse_stat(&stat_line(42, "sleep", 7, 123456)).unwrap();
        assert_eq!(s, ProcStat { pid: 42, state: b'S', ppid: 7, pgrp: 42, session: 42, starttime: 123456 });
    }

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        for comm in ["a b", "x) S 1 2 3", "((", ")", "a) (b", ""] {
            let s = parse_stat(&stat_line(9, comm, 3, 77)).unwrap();
            assert_eq!((s.pid, s.ppid, s.starttime), (9, 3, 77), "comm {comm:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for t in ["", "12", "12 (x", "12 (x) S", "x (y) S 1 2 3", "12 (x) S 1 2 3 4 5", ") 12 ("] {
            assert_eq!(parse_stat(t), None, "{t:?}");
        }
    }

    #[test]
    fn own_stat_is_readable() {
        let me = std::process::id() as i32;
        let s = read_stat(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(s.starttime > 0);
        assert!(is_alive(me, s.starttime));
        assert!(!is_alive(me, s.starttime + 1));
    }

    #[test]
    fn descendants_walk_ppid_links() {
        let p = |pid, ppid| ProcStat { pid, state: b'S', ppid, pgrp: pid, session: pid, starttime: pid as u64 * 10 };
        let procs = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(13, 10), p(20, 1), p(21, 20)];
        let mut d = descendants_in(&procs, 10);
        d.sort();
        assert_eq!(d, vec![(11, 110), (12, 120), (13, 130)]);
        assert!(descendants_in(&procs, 12).is_empty());
        assert!(descendants_in(&procs, 999).is_empty());
    }

    #[test]
    fn environ_matching_is_exact() {
        let env = b"A=1\0HOTPLEX_SESSION_ID=abc\0B=\0";
        assert!(environ_has(env, "HOTPLEX_SESSION_ID", "abc"));
        assert!(environ_has(env, "B", ""));
        assert!(!environ_has(env, "HOTPLEX_SESSION_ID", "ab"));
        assert!(!environ_has(env, "HOTPLEX_SESSION_ID", "abcd"));
        assert!(!environ_has(env, "SESSION_ID", "abc"));
        assert!(!environ_has(b"XHOTPLEX_SESSION_ID=abc", "HOTPLEX_SESSION_ID", "abc"));
        assert!(!environ_has(b"", "A", "1"));
        assert_eq!(environ_value(env, "HOTPLEX_SESSION_ID"), Some(&b"abc"[..]));
        assert_eq!(environ_value(env, "B"), Some(&b""[..]));
        assert_eq!(environ_value(env, "HOTPLEX_SESSION"), None);
        assert_eq!(environ_value(env, "C"), None);
    }

    #[test]
    fn status_uid() {
        assert_eq!(parse_status_uid("Name:\tx\nUid:\t1000\t1001\t1000\t1000\nGid:\t5\n"), Some(1000));
        assert_eq!(parse_status_uid("Name:\tx\n"), None);
        let me = fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(parse_status_uid(&me), Some(sys::getuid()));
    }
}
