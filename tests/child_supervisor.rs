//! Real-process tests of the `spawner` thread (security.md §3.1, workers.md
//! §1.4, aep-v1.md §6 terminate).
//!
//! Runs with `harness = false`: the supervisor needs SIGCHLD blocked in
//! *every* thread (else the signal can be delivered to, and discarded by, a
//! thread that does not block it) and must be the only reaper in the process.
//! The libtest harness starts threads before any test code runs and runs tests
//! in parallel, so this binary has its own `main`: it blocks SIGCHLD (and
//! SIGTERM/SIGINT/SIGHUP, like the gateway), becomes a subreaper, then runs
//! the cases one after the other. Waiting is always on events with deadlines
//! (notices, pipe readiness, `/proc` state), never on bare sleeps.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hotplex::child::workdir::DEFAULT_MAX_WORK_DIR_BYTES;
use hotplex::child::{
    Command, LineItem, LineSplitter, Notice, NoticeSink, SpawnError, SpawnPlan, SpawnedWorker, Supervisor,
    SupervisorOptions, WorkDirRequest, WorkerLimits, become_subreaper, block_signals, harden_gateway, kill_process,
    procfs,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

const NOTICE_TIMEOUT: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(1);

struct ChanSink(Sender<Notice>);

impl NoticeSink for ChanSink {
    fn notify(&self, notice: Notice) {
        let _ = self.0.send(notice);
    }
}

struct Ctx {
    sup: Option<Supervisor>,
    rx: [Receiver<Notice>; 2],
    root: PathBuf,
    next_tag: u64,
}

struct Exit {
    pid: i32,
    code: Option<i32>,
    signal: Option<i32>,
    gateway_signal: Option<i32>,
}

struct Started {
    tag: u64,
    worker: SpawnedWorker,
    work_dir: PathBuf,
    session: String,
}

fn start_supervisor(opts: SupervisorOptions) -> (Supervisor, [Receiver<Notice>; 2]) {
    let (t0, r0) = crossbeam_channel::unbounded();
    let (t1, r1) = crossbeam_channel::unbounded();
    let sinks: Vec<Box<dyn NoticeSink>> = vec![Box::new(ChanSink(t0)), Box::new(ChanSink(t1))];
    (Supervisor::start_with(sinks, opts).expect("start supervisor"), [r0, r1])
}

impl Ctx {
    fn sup(&self) -> &Supervisor {
        self.sup.as_ref().expect("supervisor running")
    }

    fn plan(&mut self, program: &str, args: &[&str]) -> (u64, SpawnPlan) {
        self.next_tag += 1;
        let tag = self.next_tag;
        let session = format!("sess-{}-{tag}", std::process::id());
        let plan = SpawnPlan {
            work_dir: WorkDirRequest {
                requested: Some("proj".into()),
                roots: vec![self.root.join("work/ha")],
                default_dir: self.root.join("work/ha"),
                create: true,
                max_bytes: DEFAULT_MAX_WORK_DIR_BYTES,
                owner: None,
                deny: vec![],
            },
            home_dir: Some(self.root.join("home/ha")),
            tmp_dir: None,
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("PWD".into(), "/wrong".into())],
            run_as: None,
            per_owner: None,
            limits: WorkerLimits::default(),
            umask: 0o077,
            session_id: session,
        };
        (tag, plan)
    }

    fn spawn_on(&mut self, reactor: usize, tag: u64, plan: SpawnPlan) -> Result<Started, SpawnError> {
        let session = plan.session_id.clone();
        self.sup().send(Command::Spawn { reactor, tag, plan: Box::new(plan) });
        match self.rx[reactor].recv_timeout(NOTICE_TIMEOUT).expect("Spawned notice") {
            Notice::Spawned { tag: t, result } => {
                assert_eq!(t, tag);
                result.map(|(worker, work_dir)| Started { tag, worker, work_dir, session })
            }
            other => panic!("expected Spawned, got {other:?}"),
        }
    }

    fn spawn(&mut self, program: &str, args: &[&str]) -> Started {
        let (tag, plan) = self.plan(program, args);
        self.spawn_on(0, tag, plan).expect("spawn")
    }

    fn sh(&mut self, script: &str) -> Started {
        self.spawn("/bin/sh", &["-c", script])
    }

    fn exited_on(&self, reactor: usize, tag: u64, within: Duration) -> Exit {
        match self.rx[reactor].recv_timeout(within).expect("Exited notice in time") {
            Notice::Exited { tag: t, pid, code, signal, gateway_signal } => {
                assert_eq!(t, tag);
                Exit { pid, code, signal, gateway_signal }
            }
            other => panic!("expected Exited, got {other:?}"),
        }
    }

    fn exited(&self, tag: u64, within: Duration) -> Exit {
        self.exited_on(0, tag, within)
    }

    fn terminate(&self, s: &Started, grace: Duration) {
        self.sup().send(Command::Terminate { reactor: 0, tag: s.tag, pid: s.worker.pid, grace });
    }

    fn kill(&self, s: &Started) {
        self.sup().send(Command::Kill { reactor: 0, tag: s.tag, pid: s.worker.pid });
    }

    fn no_notice(&self, reactor: usize) {
        // A negative check: anything arriving in this window is a bug.
        if let Ok(n) = self.rx[reactor].recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected notice {n:?}");
        }
    }
}

/// Polls a `/proc` condition until `deadline` (the only waits not driven by
/// an fd: the kernel offers no event for "process gone").
fn wait_until(what: &str, deadline: Instant, mut cond: impl FnMut() -> bool) {
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Fully gone: no `/proc` entry with that start time (not even a zombie).
fn gone(pid: i32, starttime: u64) -> bool {
    procfs::read_stat(pid).map_or(true, |s| s.starttime != starttime)
}

fn assert_gone(pid: i32, starttime: u64, deadline: Instant) {
    wait_until(&format!("pid {pid} gone"), deadline, || gone(pid, starttime));
}

fn assert_no_zombies() {
    wait_until("no zombie children", Instant::now() + Duration::from_secs(5), || {
        procfs::own_children().iter().all(|c| !c.is_zombie())
    });
}

/// First line of a worker's stdout, waiting on readiness with a deadline.
fn read_line(fd: &OwnedFd, deadline: Instant) -> String {
    let mut poll = Poll::new().expect("poll");
    poll.registry().register(&mut SourceFd(&fd.as_raw_fd()), Token(0), Interest::READABLE).expect("register");
    let mut file = File::from(fd.try_clone().expect("dup"));
    let mut splitter = LineSplitter::new(4096);
    let mut events = Events::with_capacity(4);
    let mut buf = [0u8; 512];
    loop {
        loop {
            match file.read(&mut buf) {
                Ok(0) => panic!("EOF before a line"),
                Ok(n) => {
                    let mut line = None;
                    splitter.feed(&buf[..n], |it| {
                        if let (LineItem::Line(l), None) = (it, &line) {
                            line = Some(String::from_utf8_lossy(l).into_owned());
                        }
                    });
                    if let Some(l) = line {
                        return l;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        let left = deadline.checked_duration_since(Instant::now()).expect("line before deadline");
        poll.poll(&mut events, Some(left)).expect("poll");
    }
}

fn read_pid(s: &Started) -> (i32, u64) {
    let line = read_line(&s.worker.stdout, Instant::now() + NOTICE_TIMEOUT);
    let pid: i32 = line.trim().parse().expect("pid line");
    let st = procfs::read_stat(pid).expect("stat of reported pid");
    (pid, st.starttime)
}

fn wait_comm(pid: i32, comm: &str) {
    wait_until(&format!("pid {pid} to exec {comm}"), Instant::now() + NOTICE_TIMEOUT, || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
    });
}

fn status_field(pid: i32, key: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).expect("status field").trim().to_owned()
}

// ---------------------------------------------------------------- cases

fn sandbox_via_supervisor(ctx: &mut Ctx) {
    let s = ctx.spawn("/bin/sleep", &["1000"]);
    let pid = s.worker.pid;
    wait_until("sleep in nanosleep", Instant::now() + NOTICE_TIMEOUT, || {
        fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("nanosleep"))
    });
    let canonical = fs::canonicalize(ctx.root.join("work/ha/proj")).expect("canonical");
    assert_eq!(s.work_dir, canonical);
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let environ: BTreeSet<String> =
        String::from_utf8_lossy(&environ).split_terminator('\0').map(str::to_owned).collect();
    let expected = BTreeSet::from([
        "PATH=/usr/bin:/bin".to_owned(),
        format!("PWD={}", canonical.display()),
        format!("HOTPLEX_SESSION_ID={}", s.session),
    ]);
    assert_eq!(environ, expected, "env is exactly the plan's, PWD and session id set by the spawner");
    let fds: BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds, BTreeSet::from(["0".to_owned(), "1".to_owned(), "2".to_owned()]));
    let st = procfs::read_stat(pid).expect("stat");
    let me = procfs::read_stat(std::process::id() as i32).expect("own stat");
    assert_eq!(st.pgrp, pid);
    assert_ne!(st.pgrp, me.pgrp);
    assert_eq!(st.starttime, s.worker.start_ticks);
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Umask"), "0077");
    assert_eq!(status_field(pid, "SigBlk"), "0000000000000000");
    assert_eq!(status_field(pid, "SigIgn"), "0000000000000000");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    assert_eq!(fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"), canonical);
    let home = ctx.root.join("home/ha");
    assert_eq!(fs::metadata(&home).expect("home").permissions().mode() & 0o777, 0o700);

    ctx.kill(&s);
    let e = ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_eq!((e.pid, e.code, e.signal, e.gateway_signal), (pid, None, Some(libc::SIGKILL), Some(libc::SIGKILL)));
    assert!(gone(pid, s.worker.start_ticks), "leader reaped before Exited");
}

fn exit_codes_and_signals(ctx: &mut Ctx) {
    let s = ctx.sh("exit 3");
    let e = ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_eq!((e.code, e.signal, e.gateway_signal), (Some(3), None, None));

    let s = ctx.sh("kill -USR1 $$");
    let e = ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_eq!((e.code, e.signal, e.gateway_signal), (None, Some(libc::SIGUSR1), None));

    // Routed to the reactor that asked.
    let (tag, plan) = ctx.plan("/bin/sh", &["-c", "exit 0"]);
    ctx.spawn_on(1, tag, plan).expect("spawn on reactor 1");
    let e = ctx.exited_on(1, tag, NOTICE_TIMEOUT);
    assert_eq!((e.code, e.gateway_signal), (Some(0), None));

    // Terminate of a plain worker: dies by our SIGTERM.
    let s = ctx.spawn("/bin/sleep", &["1000"]);
    ctx.terminate(&s, Duration::from_secs(30));
    let e = ctx.exited(s.tag, Duration::from_secs(5));
    assert_eq!((e.code, e.signal, e.gateway_signal), (None, Some(libc::SIGTERM), Some(libc::SIGTERM)));
    // Commands for a finished worker are ignored: no second Exited.
    ctx.terminate(&s, GRACE);
    ctx.kill(&s);
    ctx.no_notice(0);
}

/// A worker (same uid, capabilities dropped) cannot read the gateway's
/// environ; its parent is the gateway. (When the suite runs as root the
/// worker's empty capability set alone already denies the read; as a
/// non-root user it is `harden_gateway`'s `PR_SET_DUMPABLE 0` that does.)
fn gateway_environ_unreadable(ctx: &mut Ctx) {
    let s = ctx.sh("echo $PPID; cat /proc/$PPID/environ >/dev/null 2>&1; echo $?");
    let e = ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_eq!(e.code, Some(0));
    // The worker and its whole group are gone: every write end is closed.
    let mut out = String::new();
    File::from(s.worker.stdout).read_to_string(&mut out).expect("read worker output");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0].parse::<u32>().ok(), Some(std::process::id()), "parent is the gateway");
    assert_ne!(lines[1], "0", "cat /proc/<gateway>/environ succeeded");
}

fn terminate_ignoring_worker(ctx: &mut Ctx) {
    let s = ctx.sh("trap '' TERM; /bin/sleep 1000 & echo $!; wait");
    let (sleep_pid, sleep_start) = read_pid(&s);
    assert_eq!(procfs::read_stat(sleep_pid).expect("stat").pgrp, s.worker.pid, "sleep in the worker group");
    let t0 = Instant::now();
    ctx.terminate(&s, GRACE);
    let e = ctx.exited(s.tag, GRACE + Duration::from_secs(1));
    assert!(t0.elapsed() >= GRACE - Duration::from_millis(20), "SIGKILL came before the grace");
    assert_eq!((e.signal, e.gateway_signal), (Some(libc::SIGKILL), Some(libc::SIGTERM)));
    assert_gone(sleep_pid, sleep_start, t0 + GRACE + Duration::from_secs(1));
    assert!(gone(s.worker.pid, s.worker.start_ticks));
}

fn terminate_idempotent_kill_escalates(ctx: &mut Ctx) {
    let s = ctx.sh("trap '' TERM; /bin/sleep 1000 & echo $!; wait");
    let (sleep_pid, sleep_start) = read_pid(&s);
    ctx.terminate(&s, Duration::from_secs(30));
    ctx.terminate(&s, Duration::from_secs(60));
    ctx.no_notice(0);
    ctx.kill(&s);
    let e = ctx.exited(s.tag, Duration::from_secs(2));
    assert_eq!((e.signal, e.gateway_signal), (Some(libc::SIGKILL), Some(libc::SIGTERM)));
    assert_gone(sleep_pid, sleep_start, Instant::now() + Duration::from_secs(2));
    ctx.no_notice(0);
}

/// A double-forked `setsid` daemon with an empty environ under a live
/// intermediate: only the pre-signal descendant snapshot can find it.
fn daemon_killed_on_terminate(ctx: &mut Ctx) {
    let s = ctx.sh("( setsid /usr/bin/env -i /bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; wait ) & wait");
    let (daemon, start) = read_pid(&s);
    wait_comm(daemon, "sleep");
    let st = procfs::read_stat(daemon).expect("daemon stat");
    assert_eq!((st.session, st.pgrp), (daemon, daemon), "daemon left the worker's session");
    assert!(fs::read(format!("/proc/{daemon}/environ")).expect("environ").is_empty());
    let t0 = Instant::now();
    ctx.terminate(&s, GRACE);
    let e = ctx.exited(s.tag, GRACE + Duration::from_secs(2));
    assert_eq!(e.gateway_signal, Some(libc::SIGTERM));
    assert_gone(daemon, start, t0 + Duration::from_secs(5));
}

/// The worker exits by itself after its daemon was re-parented to us: the
/// `HOTPLEX_SESSION_ID` scan finds it.
fn daemon_killed_on_own_exit(ctx: &mut Ctx) {
    let s = ctx.sh("( setsid /bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo $! ); read x; exit 0");
    let (daemon, start) = read_pid(&s);
    wait_comm(daemon, "sleep");
    let me = std::process::id() as i32;
    wait_until("daemon re-parented to the subreaper", Instant::now() + NOTICE_TIMEOUT, || {
        procfs::read_stat(daemon).is_ok_and(|st| st.ppid == me)
    });
    File::from(s.worker.stdin.try_clone().expect("dup")).write_all(b"go\n").expect("write stdin");
    let e = ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_eq!((e.code, e.signal, e.gateway_signal), (Some(0), None, None));
    assert_gone(daemon, start, Instant::now() + Duration::from_secs(5));
}

/// A worker that exits leaving a `sleep` in its own group: the group SIGKILL
/// before the reap gets it.
fn group_killed_on_own_exit(ctx: &mut Ctx) {
    // `env -i`: only the group kill can find it (no session env, no snapshot).
    let s = ctx.sh("/usr/bin/env -i /bin/sleep 1000 & echo $!; read x; exit 5");
    let (sleep_pid, start) = read_pid(&s);
    File::from(s.worker.stdin.try_clone().expect("dup")).write_all(b"go\n").expect("write stdin");
    let e = ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_eq!((e.code, e.gateway_signal), (Some(5), None));
    assert_gone(sleep_pid, start, Instant::now() + Duration::from_secs(2));
}

fn spawn_errors(ctx: &mut Ctx) {
    let (tag, mut plan) = ctx.plan("/bin/true", &[]);
    plan.work_dir.requested = Some("/etc".into());
    match ctx.spawn_on(0, tag, plan) {
        Err(SpawnError::WorkDir(e)) => assert_eq!(e.reason(), "work_dir_escape"),
        other => panic!("expected work-dir refusal, got {:?}", other.map(|s| s.worker.pid)),
    }
    let (tag, plan) = ctx.plan("/nonexistent/agent", &[]);
    assert!(matches!(ctx.spawn_on(0, tag, plan), Err(SpawnError::Exec(_))));
    let (tag, mut plan) = ctx.plan("/bin/true", &[]);
    plan.session_id.clear();
    assert!(matches!(ctx.spawn_on(0, tag, plan), Err(SpawnError::InvalidRequest(_))));
    // Duplicate tag and duplicate session while the first worker lives.
    let s = ctx.spawn("/bin/sleep", &["1000"]);
    let (_, mut plan) = ctx.plan("/bin/true", &[]);
    let dup_tag = s.tag;
    plan.session_id = "other".into();
    assert!(matches!(ctx.spawn_on(0, dup_tag, plan), Err(SpawnError::InvalidRequest(_))));
    let (tag, mut plan) = ctx.plan("/bin/true", &[]);
    plan.session_id = s.session.clone();
    assert!(matches!(ctx.spawn_on(0, tag, plan), Err(SpawnError::InvalidRequest(_))));
    ctx.kill(&s);
    ctx.exited(s.tag, NOTICE_TIMEOUT);
    // No Exited for failed spawns.
    ctx.no_notice(0);
}

/// Shutdown terminates every worker, sweeps, and leaves no child behind.
fn shutdown_kills_everything(ctx: &mut Ctx) {
    let a = ctx.sh("trap '' TERM; /bin/sleep 1000 & echo $!; wait");
    let (a_sleep, a_start) = read_pid(&a);
    // An escaped, unattributable orphan (empty env, parent gone).
    let b =
        ctx.sh("( setsid /usr/bin/env -i /bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo $! ); exec /bin/sleep 1000");
    let (orphan, o_start) = read_pid(&b);
    wait_comm(orphan, "sleep");
    let t0 = Instant::now();
    ctx.sup.take().expect("supervisor").shutdown(GRACE);
    assert!(t0.elapsed() < GRACE + Duration::from_secs(4), "shutdown took {:?}", t0.elapsed());
    let mut seen = BTreeSet::new();
    while let Ok(n) = ctx.rx[0].try_recv() {
        if let Notice::Exited { tag, gateway_signal, .. } = n {
            assert_eq!(gateway_signal, Some(libc::SIGTERM));
            seen.insert(tag);
        }
    }
    assert_eq!(seen, BTreeSet::from([a.tag, b.tag]));
    for (pid, start) in [(a_sleep, a_start), (orphan, o_start), (a.worker.pid, a.worker.start_ticks)] {
        assert!(gone(pid, start), "pid {pid} survived shutdown");
    }
    assert!(procfs::own_children().is_empty(), "children left: {:?}", procfs::own_children());
}

/// With a short sweep interval, an orphan no live worker owns is killed by
/// the periodic sweep (here: a daemon with an empty env whose worker exited).
fn periodic_orphan_sweep(ctx: &mut Ctx) {
    let opts = SupervisorOptions { orphan_sweep_interval: Duration::from_secs(1), ..SupervisorOptions::default() };
    let (sup, rx) = start_supervisor(opts);
    ctx.sup = Some(sup);
    ctx.rx = rx;
    let s = ctx.sh("( setsid /usr/bin/env -i /bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo $! ); read x");
    let (orphan, start) = read_pid(&s);
    wait_comm(orphan, "sleep");
    // The orphan is re-parented to us, has no session env and is in no
    // snapshot: nothing attributes it, so the sweep at Exited cannot find it
    // and the periodic sweep must.
    ctx.kill(&s);
    ctx.exited(s.tag, NOTICE_TIMEOUT);
    assert_gone(orphan, start, Instant::now() + Duration::from_secs(3));
    ctx.sup.take().expect("supervisor").shutdown(GRACE);
}

/// One sequential test case.
type Case = fn(&mut Ctx);

fn main() {
    block_signals(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP]).expect("block signals");
    become_subreaper().expect("subreaper");
    harden_gateway().expect("harden");
    let root = std::env::temp_dir().join(format!("hotplex-sup-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).expect("temp root");
    let root = fs::canonicalize(&root).expect("canonical root");
    let (sup, rx) = start_supervisor(SupervisorOptions::default());
    let mut ctx = Ctx { sup: Some(sup), rx, root: root.clone(), next_tag: 0 };

    let cases: [(&str, Case); 11] = [
        ("sandbox_via_supervisor", sandbox_via_supervisor),
        ("gateway_environ_unreadable", gateway_environ_unreadable),
        ("exit_codes_and_signals", exit_codes_and_signals),
        ("terminate_ignoring_worker", terminate_ignoring_worker),
        ("terminate_idempotent_kill_escalates", terminate_idempotent_kill_escalates),
        ("daemon_killed_on_terminate", daemon_killed_on_terminate),
        ("daemon_killed_on_own_exit", daemon_killed_on_own_exit),
        ("group_killed_on_own_exit", group_killed_on_own_exit),
        ("spawn_errors", spawn_errors),
        ("shutdown_kills_everything", shutdown_kills_everything),
        ("periodic_orphan_sweep", periodic_orphan_sweep),
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        let t0 = Instant::now();
        let ok = catch_unwind(AssertUnwindSafe(|| {
            case(&mut ctx);
            assert_no_zombies();
        }))
        .is_ok();
        println!("test child_supervisor::{name} ... {} ({:?})", if ok { "ok" } else { "FAILED" }, t0.elapsed());
        if !ok {
            failed.push(name);
        }
    }
    if let Some(sup) = ctx.sup.take() {
        sup.shutdown(GRACE);
    }
    // Anything a failed case left behind.
    for c in procfs::own_children() {
        let _ = kill_process(c.pid, c.starttime, libc::SIGKILL);
    }
    let _ = fs::remove_dir_all(&root);
    if failed.is_empty() {
        println!("\ntest result: ok. {} passed", cases.len());
    } else {
        println!("\ntest result: FAILED. failing: {failed:?}");
        std::process::exit(1);
    }
}
