//! Real-process checks of the spawn path (security.md §3.1). Each test reaps
//! its own children by pid; no supervisor runs in this test binary.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::child::workdir::tests::TempDir;
use crate::child::workdir::{DEFAULT_MAX_WORK_DIR_BYTES, WorkDirRequest, open_work_dir};

fn work_dir(t: &TempDir, rel: &str) -> crate::child::WorkDir {
    work_dir_owned(t, rel, None)
}

fn work_dir_owned(t: &TempDir, rel: &str, owner: Option<(u32, u32)>) -> crate::child::WorkDir {
    open_work_dir(&WorkDirRequest {
        requested: Some(rel.into()),
        roots: vec![t.0.clone()],
        default_dir: t.0.clone(),
        create: true,
        max_bytes: DEFAULT_MAX_WORK_DIR_BYTES,
        owner,
        deny: vec![],
    })
    .unwrap()
}

fn request<'a>(program: &str, args: &[&str], wd: BorrowedFd<'a>) -> SpawnRequest<'a> {
    SpawnRequest {
        program: program.into(),
        args: args.iter().map(OsString::from).collect(),
        env: vec![("A".into(), "1".into()), ("B".into(), "two words".into())],
        work_dir: wd,
        run_as: None,
        limits: WorkerLimits::default(),
        umask: DEFAULT_UMASK,
    }
}

/// Waits (bounded) until `pid` sits in nanosleep, i.e. the exec'd `sleep` has
/// finished loading and holds only the fds it will keep.
fn wait_sleeping(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("nanosleep") {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never reached nanosleep (wchan {wchan:?})");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn status(pid: i32) -> HashMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_owned(), v.trim().to_owned())))
        .collect()
}

fn fds(pid: i32) -> BTreeSet<String> {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

fn limit(pid: i32, name: &str) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap();
    let mut f = line[name.len()..].split_whitespace();
    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
}

fn finish(w: SpawnedWorker) {
    let _ = sys::kill(w.pid, libc::SIGKILL);
    sys::reap_blocking(w.pid).unwrap();
}

#[test]
fn child_state_is_sandboxed() {
    let t = TempDir::new("spawn");
    let wd = work_dir(&t, "proj");
    // Put the gateway in the states the child must not inherit.
    sys::block_signals(&[libc::SIGTERM, libc::SIGUSR1, libc::SIGCHLD]).unwrap();
    sys::test_support::ignore_signal(libc::SIGUSR2);
    let (leak_r, leak_w) = std::io::pipe().unwrap();
    sys::test_support::clear_cloexec(leak_r.as_fd());
    sys::test_support::clear_cloexec(leak_w.as_fd());

    let w = spawn(&request("/bin/sleep", &["30"], wd.fd.as_fd())).unwrap();
    wait_sleeping(w.pid);
    let pid = w.pid;

    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(environ, b"A=1\0B=two words\0", "env is exactly the given one");
    assert_eq!(fds(pid), BTreeSet::from(["0".into(), "1".into(), "2".into()]));
    let st = procfs::read_stat(pid).unwrap();
    let me = procfs::read_stat(std::process::id() as i32).unwrap();
    assert_eq!(st.pgrp, pid);
    assert_ne!(st.pgrp, me.pgrp);
    assert_eq!(st.ppid, me.pid);
    assert_eq!(st.starttime, w.start_ticks);
    let s = status(pid);
    assert_eq!(s["NoNewPrivs"], "1");
    assert_eq!(s["Umask"], "0077");
    assert_eq!(s["SigBlk"], "0000000000000000");
    assert_eq!(s["SigIgn"], "0000000000000000");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(s[cap], "0000000000000000", "{cap}");
    }
    assert_eq!(fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), wd.path);
    assert_eq!(limit(pid, "Max core file size"), ("0".into(), "0".into()));
    assert_eq!(limit(pid, "Max open files"), ("4096".into(), "4096".into()));
    // Gateway limits untouched.
    assert_ne!(limit(me.pid, "Max open files"), ("4096".into(), "4096".into()));

    // Pipes are non-blocking and close-on-exec.
    let mut out = fs::File::from(w.stdout.try_clone().unwrap());
    let err = out.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    for fd in [&w.stdin, &w.stdout, &w.stderr] {
        let fdinfo = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        let flags = fdinfo.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
        let flags = u32::from_str_radix(flags, 8).unwrap();
        assert_ne!(flags & libc::O_NONBLOCK as u32, 0);
        assert_ne!(flags & libc::O_CLOEXEC as u32, 0);
    }
    finish(w);
    drop((leak_r, leak_w));
}

#[test]
fn configured_limits_reach_the_worker_only() {
    let t = TempDir::new("limits");
    let wd = work_dir(&t, "p");
    let mut req = request("/bin/sleep", &["30"], wd.fd.as_fd());
    req.limits = WorkerLimits { nproc: Some(64), cpu_seconds: Some(600), core_bytes: Some(1024), ..Default::default() };
    req.umask = 0o027;
    let w = spawn(&req).unwrap();
    wait_sleeping(w.pid);
    assert_eq!(limit(w.pid, "Max processes"), ("64".into(), "64".into()));
    assert_eq!(limit(w.pid, "Max cpu time"), ("600".into(), "600".into()));
    assert_eq!(limit(w.pid, "Max core file size"), ("1024".into(), "1024".into()));
    assert_eq!(status(w.pid)["Umask"], "0027");
    assert_ne!(limit(std::process::id() as i32, "Max cpu time").0, "600");
    finish(w);
}

#[test]
fn fd_wins_over_a_swapped_symlink() {
    let t = TempDir::new("swap");
    let wd = work_dir(&t, "proj");
    // Between check and fork: the checked dir is renamed away and replaced by
    // a symlink to /etc.
    fs::rename(t.0.join("proj"), t.0.join("proj.orig")).unwrap();
    std::os::unix::fs::symlink("/etc", t.0.join("proj")).unwrap();
    let w = spawn(&request("/bin/sleep", &["30"], wd.fd.as_fd())).unwrap();
    wait_sleeping(w.pid);
    let cwd = fs::read_link(format!("/proc/{}/cwd", w.pid)).unwrap();
    assert_eq!(cwd, t.0.join("proj.orig"));
    assert_ne!(cwd, Path::new("/etc"));
    finish(w);
}

#[test]
fn run_as_drops_identity() {
    if sys::getuid() != 0 {
        return; // needs CAP_SETUID/CAP_SETGID
    }
    let t = TempDir::new("runas");
    let wd = work_dir_owned(&t, "p", Some((65534, 65533)));
    let mut req = request("/bin/sleep", &["30"], wd.fd.as_fd());
    req.run_as = Some(RunAs { uid: 65534, gid: 65533, groups: vec![] });
    let w = spawn(&req).unwrap();
    wait_sleeping(w.pid);
    let s = status(w.pid);
    assert!(s["Uid"].split_whitespace().all(|u| u == "65534"), "{}", s["Uid"]);
    assert!(s["Gid"].split_whitespace().all(|g| g == "65533"), "{}", s["Gid"]);
    assert_eq!(s["Groups"], "");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(s[cap], "0000000000000000", "{cap}");
    }
    finish(w);
}

#[test]
fn exit_status_is_left_for_the_reaper() {
    let t = TempDir::new("exit");
    let wd = work_dir(&t, "p");
    let w = spawn(&request("/bin/sh", &["-c", "exit 7"], wd.fd.as_fd())).unwrap();
    let info = sys::reap_blocking(w.pid).unwrap().unwrap();
    assert_eq!((info.pid, info.code, info.status), (w.pid, libc::CLD_EXITED, 7));
}

#[test]
fn bad_requests_fail_without_a_child() {
    let t = TempDir::new("bad");
    let wd = work_dir(&t, "p");
    let fd = wd.fd.as_fd();
    assert!(matches!(spawn(&request("sleep", &["1"], fd)), Err(SpawnError::InvalidRequest(_))));
    assert!(matches!(spawn(&request("/nonexistent/bin", &[], fd)), Err(SpawnError::Exec(_))));
    let mut r = request("/bin/true", &[], fd);
    r.env.push(("A=B".into(), "x".into()));
    assert!(matches!(spawn(&r), Err(SpawnError::InvalidRequest(_))));
    let mut r = request("/bin/true", &["a\0b"], fd);
    r.env.clear();
    assert!(matches!(spawn(&r), Err(SpawnError::InvalidRequest(_))));
    let mut r = request("/bin/true", &[], fd);
    r.run_as = Some(RunAs { uid: 0, gid: 5, groups: vec![] });
    assert!(matches!(spawn(&r), Err(SpawnError::InvalidRequest(_))));
    // A file (not a dir) as work dir: fchdir fails in pre_exec → Exec error.
    let file = fs::File::create(t.0.join("f")).unwrap();
    assert!(matches!(spawn(&request("/bin/true", &[], file.as_fd())), Err(SpawnError::Exec(_))));
}
