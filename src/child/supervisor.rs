//! The `spawner` thread: the only thread of the gateway that forks, reaps and
//! kills (ARCHITECTURE.md threads table; workers.md §1.4; security.md §3).
//!
//! Owns: every worker from `Command::Spawn` to `Notice::Exited` — HOME and
//! work-dir creation, the fork, the kill escalation (SIGTERM group → SIGKILL
//! group at leader exit or after the grace), reaping (a `waitid(P_ALL, …,
//! WNOWAIT)` loop driven by a SIGCHLD `signalfd`), the sweep of escaped
//! descendants, and the periodic kill of unattributable re-parented orphans.
//! It runs its own small mio loop (waker for commands, signalfd, deadlines).
//!
//! Must not: block on anything but its own poll, fork, the disk and — on an
//! owner's first spawn under `uid_per_owner` — the store writer's commit of
//! that owner's uid (`identity.rs`; bounded, once per owner); reap a
//! worker leader before its group has been SIGKILLed (the zombie pins the
//! pgid); send `Exited` before the group and the sweep are done, or more than
//! once; signal a pid it has not verified by start time. No other code in the
//! process may wait for children while it runs (it reaps every child).
//!
//! Robustness: SIGCHLD must be blocked in every thread (main does it before
//! starting threads, see [`super::block_signals`]), or a signal delivered to
//! another thread is lost. The loop therefore also polls `waitid` on a tick:
//! 1 s normally, 50 ms when the thread that called [`Supervisor::start`] did
//! not have SIGCHLD blocked (e.g. under the libtest harness).
//!
//! Attribution of escaped descendants (see docs/adr/child-supervisor.md):
//! the descendant snapshot is refreshed at `Terminate`/`Kill` (before any
//! signal) and on every orphan-sweep tick; the `HOTPLEX_SESSION_ID` scan only
//! sees processes of the gateway's own uid. A process that escapes (setsid +
//! re-parent) between two snapshots, clears its environment or runs under
//! another uid, from a worker that then exits on its own, is found only by
//! the next orphan sweep (≤ 60 s). Conversely, an unattributable re-parented
//! orphan is killed by that sweep even if the worker that made it still runs.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::identity::{PerOwner, UidAllocator, UidError};
use super::procfs;
use super::spawn::{RunAs, SpawnError, SpawnRequest, SpawnedWorker, WorkerLimits, spawn};
use super::sweep::{self, LiveWorker, SESSION_ENV, Snapshot, Target};
use super::workdir::{WorkDir, WorkDirRequest, ensure_private_dir_owned, open_work_dir};
use crate::sys;

/// Name of the supervisor thread (PDEATHSIG is tied to it).
pub const SPAWNER_THREAD_NAME: &str = "spawner";

const WAKER: Token = Token(0);
const SIGCHLD_FD: Token = Token(1);
/// Commands handled per wake-up before polling again.
const MAX_COMMANDS_PER_WAKE: usize = 64;
/// Exited children reaped per wake-up before polling again.
const MAX_REAPS_PER_WAKE: usize = 1024;
/// Safety tick when SIGCHLD delivery is reliable.
const TICK: Duration = Duration::from_secs(1);
/// Tick when SIGCHLD may be delivered to (and lost in) another thread.
const FAST_TICK: Duration = Duration::from_millis(50);
/// After a sweep's SIGKILL: how long `Exited` waits for the targets to die
/// (the session's `state{terminated}` must follow the end of its processes).
const REAP_WAIT: Duration = Duration::from_secs(1);
/// Poll interval while waiting for SIGKILLed targets that are not our
/// children (no SIGCHLD tells us they died).
const REAP_POLL: Duration = Duration::from_millis(5);
/// Grace used when the `Supervisor` is dropped without `shutdown`.
const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Extra time after grace + sweep grace before shutdown stops waiting.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

/// Receives notices for one reactor: push into its inbox and wake it. Called
/// on the spawner thread; must not block.
pub trait NoticeSink: Send {
    fn notify(&self, notice: Notice);
}

/// Everything the spawner needs to start one worker. The work-dir check and
/// HOME creation happen on the spawner thread (they touch the disk).
#[derive(Debug)]
pub struct SpawnPlan {
    /// `init.config.work_dir` resolution (security.md §6.2). `owner` defaults
    /// to `run_as` when unset.
    pub work_dir: WorkDirRequest,
    /// Private HOME to create (0700, with parents, owned by `run_as`) first.
    pub home_dir: Option<PathBuf>,
    /// Private per-session TMPDIR to create (0700, owned by `run_as`).
    pub tmp_dir: Option<PathBuf>,
    /// Absolute, pinned binary.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete env (security.md §5). `PWD` and `HOTPLEX_SESSION_ID` are
    /// set by the spawner (canonical work dir, `session_id`), replacing any
    /// given value.
    pub env: Vec<(OsString, OsString)>,
    pub run_as: Option<RunAs>,
    /// `security.worker.uid_per_owner`: the spawner picks the owner's uid
    /// (allocating it on first use) and uses it instead of `run_as`.
    pub per_owner: Option<PerOwner>,
    pub limits: WorkerLimits,
    pub umask: u32,
    /// Gateway session id: the `HOTPLEX_SESSION_ID` value used to find the
    /// worker's escaped descendants. Non-empty; one live worker per id.
    pub session_id: String,
}

/// Requests to the spawner. `reactor` indexes the sinks given to
/// [`Supervisor::start`]; `tag` is the reactor's own id for the worker and
/// must be unique per reactor among its live workers.
#[derive(Debug)]
pub enum Command {
    /// Start a worker; answered by exactly one `Notice::Spawned`.
    Spawn { reactor: usize, tag: u64, plan: Box<SpawnPlan> },
    /// Graceful stop: snapshot descendants, SIGTERM the group, SIGKILL it at
    /// leader exit or after `grace`. Idempotent (a second one can only bring
    /// the SIGKILL forward).
    Terminate { reactor: usize, tag: u64, pid: i32, grace: Duration },
    /// SIGKILL the group now (+ sweep). Escalates a running `Terminate`.
    Kill { reactor: usize, tag: u64, pid: i32 },
    /// Everything a spawn does before `fork` (HOME, TMPDIR, the work-dir
    /// check) without starting a process: answered by one `Notice::Prepared`.
    /// Used by agents that start one process per turn.
    Prepare { reactor: usize, tag: u64, plan: Box<SpawnPlan> },
}

/// Messages from the spawner to a reactor, in order: for one tag,
/// `Spawned(Ok)` always comes before its single `Exited`.
#[derive(Debug)]
pub enum Notice {
    /// Result of `Command::Spawn`, with the canonical work dir on success.
    Spawned { tag: u64, result: Result<(SpawnedWorker, PathBuf), SpawnError> },
    /// Result of `Command::Prepare`: the canonical work dir.
    Prepared { tag: u64, result: Result<PathBuf, SpawnError> },
    /// The worker is gone: leader reaped, group SIGKILLed, sweep done.
    Exited {
        tag: u64,
        pid: i32,
        /// Exit code when the leader exited normally.
        code: Option<i32>,
        /// Signal number when the leader died by a signal.
        signal: Option<i32>,
        /// First signal the gateway sent to this worker's group before the
        /// leader died (SIGTERM from `Terminate`/shutdown, SIGKILL from
        /// `Kill`); `None` when it exited on its own. The clean-up SIGKILL
        /// sent after the leader's exit is not counted.
        gateway_signal: Option<i32>,
    },
}

/// Tunables; [`Default`] gives the production values.
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// How often re-parented orphans of no live worker are killed (60 s).
    pub orphan_sweep_interval: Duration,
    /// SIGTERM → SIGKILL delay for swept descendants (500 ms).
    pub sweep_grace: Duration,
    /// Bound of the command channel (4096). Each session has at most a few
    /// commands in flight, so a full channel means a stuck spawner; `send`
    /// then blocks the caller rather than dropping a command.
    pub command_capacity: usize,
}

impl Default for SupervisorOptions {
    fn default() -> SupervisorOptions {
        SupervisorOptions {
            orphan_sweep_interval: Duration::from_secs(60),
            sweep_grace: Duration::from_millis(500),
            command_capacity: 4096,
        }
    }
}

enum Msg {
    Cmd(Command),
    Shutdown(Duration),
}

/// Cloneable sender for reactors.
#[derive(Clone)]
pub struct SupervisorHandle {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
}

impl SupervisorHandle {
    /// Queues a command and wakes the spawner. Never drops a command: if the
    /// channel is full (a stuck spawner) it blocks until there is room.
    pub fn send(&self, cmd: Command) {
        self.push(Msg::Cmd(cmd));
    }

    /// Forced shutdown: SIGKILL every worker group now and stop the spawner.
    pub fn kill_all(&self) {
        self.push(Msg::Shutdown(Duration::ZERO));
    }

    fn push(&self, msg: Msg) {
        let sent = match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(msg)) => {
                log::warn!("child: spawner command channel full; blocking");
                self.tx.send(msg).is_ok()
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        if !sent {
            log::error!("child: spawner thread is gone; command dropped");
        } else if let Err(e) = self.waker.wake() {
            log::error!("child: cannot wake spawner: {e}");
        }
    }
}

/// The spawner thread and its command channel.
pub struct Supervisor {
    handle: SupervisorHandle,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts the `spawner` thread with default options. `sinks[i]` receives
    /// the notices of reactor `i`.
    pub fn start(sinks: Vec<Box<dyn NoticeSink>>) -> io::Result<Supervisor> {
        Supervisor::start_with(sinks, SupervisorOptions::default())
    }

    /// [`Supervisor::start`] with explicit tunables.
    pub fn start_with(sinks: Vec<Box<dyn NoticeSink>>, opts: SupervisorOptions) -> io::Result<Supervisor> {
        Supervisor::start_with_uids(sinks, opts, None)
    }

    /// [`Supervisor::start_with`] with the `uid_per_owner` map (required for
    /// plans carrying [`SpawnPlan::per_owner`]).
    pub fn start_with_uids(
        sinks: Vec<Box<dyn NoticeSink>>,
        opts: SupervisorOptions,
        uids: Option<UidAllocator>,
    ) -> io::Result<Supervisor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let sigfd = sys::signalfd_sigchld()?;
        poll.registry().register(&mut SourceFd(&sigfd.as_raw_fd()), SIGCHLD_FD, Interest::READABLE)?;
        let tick = if sys::is_blocked(libc::SIGCHLD) { TICK } else { FAST_TICK };
        let (tx, rx) = crossbeam_channel::bounded(opts.command_capacity.max(1));
        let now = Instant::now();
        let state = Spawner {
            poll,
            rx,
            sigfd: File::from(sigfd),
            sinks,
            workers: Slab::new(),
            by_tag: HashMap::new(),
            by_pid: HashMap::new(),
            next_orphan_sweep: now + opts.orphan_sweep_interval,
            opts,
            tick,
            shutdown_deadline: None,
            uids,
        };
        let thread = thread::Builder::new().name(SPAWNER_THREAD_NAME.into()).spawn(move || state.run())?;
        Ok(Supervisor { handle: SupervisorHandle { tx, waker }, thread: Some(thread) })
    }

    /// A cloneable sender for reactor threads.
    pub fn handle(&self) -> SupervisorHandle {
        self.handle.clone()
    }

    /// See [`SupervisorHandle::send`].
    pub fn send(&self, cmd: Command) {
        self.handle.send(cmd);
    }

    /// Terminates every worker (SIGTERM groups, SIGKILL after `grace`), sweeps
    /// and kills every remaining child, reaps, and joins the thread. Pending
    /// `Exited` notices are still delivered; new spawns are refused.
    pub fn shutdown(mut self, grace: Duration) {
        self.handle.push(Msg::Shutdown(grace));
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!("child: spawner thread panicked");
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.push(Msg::Shutdown(DEFAULT_KILL_GRACE));
            let _ = t.join();
        }
    }
}

enum Phase {
    /// Started, not signalled.
    Running,
    /// Group got SIGTERM; SIGKILL at `kill_at` unless the leader exits first.
    Terminating { kill_at: Instant },
    /// Group got SIGKILL; waiting for the leader's exit.
    Killed,
    /// Leader reaped, group SIGKILLed; swept processes got SIGTERM and get
    /// SIGKILL at `kill_at` (`killed`), then `Exited` is sent once they are
    /// gone (or [`REAP_WAIT`] after the SIGKILL at the latest).
    Sweeping { code: Option<i32>, signal: Option<i32>, targets: Vec<Target>, kill_at: Instant, killed: bool },
}

struct Worker {
    reactor: usize,
    tag: u64,
    pid: i32,
    session_id: String,
    gateway_signal: Option<i32>,
    snapshot: Snapshot,
    phase: Phase,
}

impl Worker {
    /// Sends `sig` to the group. Only called while the leader is unreaped.
    fn signal_group(&mut self, sig: i32, record: bool) {
        if record && self.gateway_signal.is_none() {
            self.gateway_signal = Some(sig);
        }
        if let Err(e) = sys::kill(-self.pid, sig)
            && e.raw_os_error() != Some(libc::ESRCH)
        {
            log::warn!("child: signal {sig} to group {} failed: {e}", self.pid);
        }
    }
}

struct Spawner {
    poll: Poll,
    rx: Receiver<Msg>,
    sigfd: File,
    sinks: Vec<Box<dyn NoticeSink>>,
    workers: Slab<Worker>,
    by_tag: HashMap<(usize, u64), usize>,
    /// Leaders not yet reaped.
    by_pid: HashMap<i32, usize>,
    next_orphan_sweep: Instant,
    opts: SupervisorOptions,
    tick: Duration,
    shutdown_deadline: Option<Instant>,
    /// `uid_per_owner` map (the gateway always gives one, so a reload can
    /// turn the option on); `None` refuses plans carrying `per_owner`.
    uids: Option<UidAllocator>,
}

impl Spawner {
    fn run(mut self) {
        if let Err(e) = sys::block_signals(&[libc::SIGCHLD]) {
            log::error!("child: cannot block SIGCHLD in the spawner: {e}");
        }
        let mut events = Events::with_capacity(8);
        let mut more_commands = false;
        loop {
            let timeout = if more_commands { Duration::ZERO } else { self.next_timeout(Instant::now()) };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("child: spawner poll failed: {e}");
                thread::sleep(FAST_TICK);
            }
            self.drain_sigchld();
            self.reap_children();
            more_commands = self.drain_commands();
            self.run_deadlines(Instant::now());
            if self.shutdown_deadline.is_some() && self.workers.is_empty() {
                break;
            }
        }
        self.final_cleanup();
    }

    fn next_timeout(&self, now: Instant) -> Duration {
        let mut next = (now + self.tick).min(self.next_orphan_sweep);
        if let Some(d) = self.shutdown_deadline {
            next = next.min(d);
        }
        for (_, w) in &self.workers {
            match w.phase {
                Phase::Sweeping { killed: true, kill_at, .. } => next = next.min(kill_at).min(now + REAP_POLL),
                Phase::Terminating { kill_at } | Phase::Sweeping { kill_at, .. } => next = next.min(kill_at),
                Phase::Running | Phase::Killed => {}
            }
        }
        next.saturating_duration_since(now)
    }

    fn drain_sigchld(&mut self) {
        let mut buf = [0u8; 128 * 8];
        loop {
            match self.sigfd.read(&mut buf) {
                Ok(n) if n > 0 => continue,
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::error!("child: signalfd read failed: {e}");
                    return;
                }
            }
        }
    }

    /// `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)` until nothing is left: a
    /// worker leader goes through [`Spawner::on_leader_exit`] (group SIGKILL
    /// before the reap); any other child (a re-parented orphan) is reaped.
    fn reap_children(&mut self) {
        for _ in 0..MAX_REAPS_PER_WAKE {
            let info = match sys::waitid_any_nowait() {
                Ok(Some(info)) => info,
                Ok(None) => return,
                Err(e) => {
                    log::error!("child: waitid failed: {e}");
                    return;
                }
            };
            match self.by_pid.get(&info.pid) {
                Some(&key) => self.on_leader_exit(key, info),
                None => match sys::reap(info.pid) {
                    Ok(_) => log::debug!("child: reaped orphan pid {}", info.pid),
                    Err(e) => {
                        log::error!("child: reaping pid {} failed: {e}", info.pid);
                        return;
                    }
                },
            }
        }
    }

    fn on_leader_exit(&mut self, key: usize, info: sys::WaitInfo) {
        let pid = info.pid;
        {
            let w = &mut self.workers[key];
            // The zombie leader pins pid == pgid: this cannot hit a stranger.
            w.signal_group(libc::SIGKILL, false);
        }
        let info = match sys::reap(pid) {
            Ok(Some(final_info)) => final_info,
            Ok(None) => info,
            Err(e) => {
                log::error!("child: reaping worker {pid} failed: {e}");
                info
            }
        };
        self.by_pid.remove(&pid);
        let (code, signal) = match info.code {
            libc::CLD_EXITED => (Some(info.status), None),
            _ => (None, Some(info.status)),
        };
        self.start_sweep(key, code, signal);
    }

    /// SIGTERMs everything that still belongs to the worker; finishes at once
    /// when there is nothing.
    fn start_sweep(&mut self, key: usize, code: Option<i32>, signal: Option<i32>) {
        let exclude: HashSet<i32> = self.by_pid.keys().copied().collect();
        let w = &mut self.workers[key];
        let targets = sweep::collect_targets(&w.snapshot, &w.session_id, &exclude);
        if targets.is_empty() {
            w.phase = Phase::Sweeping { code, signal, targets, kill_at: Instant::now(), killed: true };
            self.finish(key);
            return;
        }
        log::info!("child: worker {} left {} process(es); sweeping", w.pid, targets.len());
        for t in &targets {
            t.signal(libc::SIGTERM);
        }
        w.phase =
            Phase::Sweeping { code, signal, targets, kill_at: Instant::now() + self.opts.sweep_grace, killed: false };
    }

    /// Final SIGKILL pass of a sweep (with a fresh look for anything forked
    /// during the grace), then `Exited`.
    fn end_sweep(&mut self, key: usize, wait: bool) {
        let exclude: HashSet<i32> = self.by_pid.keys().copied().collect();
        let w = &mut self.workers[key];
        if let Phase::Sweeping { targets, kill_at, killed, .. } = &mut w.phase {
            if !*killed {
                for t in targets.iter() {
                    t.signal(libc::SIGKILL);
                }
                let mut still = Snapshot::default();
                still.merge(targets.iter().map(|t| (t.pid, t.starttime)));
                let extra = sweep::collect_targets(&still, &w.session_id, &exclude);
                for t in &extra {
                    t.signal(libc::SIGKILL);
                }
                targets.extend(extra);
                *killed = true;
                *kill_at = Instant::now() + REAP_WAIT;
            }
            let alive = targets.iter().any(|t| procfs::is_alive(t.pid, t.starttime));
            if wait && alive && Instant::now() < *kill_at {
                return; // run_deadlines finishes once they are gone
            }
            if alive {
                log::warn!("child: worker {} left processes that survived SIGKILL for {REAP_WAIT:?}", w.pid);
            }
            targets.clear();
        }
        self.finish(key);
    }

    fn finish(&mut self, key: usize) {
        let w = self.workers.remove(key);
        self.by_tag.remove(&(w.reactor, w.tag));
        let (code, signal) = match w.phase {
            Phase::Sweeping { code, signal, .. } => (code, signal),
            _ => (None, None),
        };
        let notice = Notice::Exited { tag: w.tag, pid: w.pid, code, signal, gateway_signal: w.gateway_signal };
        self.notify(w.reactor, notice);
    }

    fn notify(&self, reactor: usize, notice: Notice) {
        match self.sinks.get(reactor) {
            Some(sink) => sink.notify(notice),
            None => log::error!("child: notice for unknown reactor {reactor} dropped"),
        }
    }

    /// Handles up to [`MAX_COMMANDS_PER_WAKE`] commands; true if more wait.
    fn drain_commands(&mut self) -> bool {
        for _ in 0..MAX_COMMANDS_PER_WAKE {
            match self.rx.try_recv() {
                Ok(Msg::Cmd(cmd)) => self.on_command(cmd),
                Ok(Msg::Shutdown(grace)) => self.begin_shutdown(grace),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => {
                    if self.shutdown_deadline.is_none() {
                        self.begin_shutdown(DEFAULT_KILL_GRACE);
                    }
                    return false;
                }
            }
        }
        true
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Spawn { reactor, tag, plan } => self.on_spawn(reactor, tag, plan),
            Command::Prepare { reactor, tag, plan } => {
                let result = self.identity(&plan).and_then(|id| prepare(&plan, id.as_ref())).map(|wd| wd.path);
                self.notify(reactor, Notice::Prepared { tag, result });
            }
            Command::Terminate { reactor, tag, pid, grace } => {
                // An exit that already happened is handled first, so it is
                // not blamed on a signal sent afterwards.
                self.reap_children();
                if let Some(key) = self.lookup(reactor, tag, pid) {
                    self.terminate(&[key], grace);
                }
            }
            Command::Kill { reactor, tag, pid } => {
                self.reap_children();
                if let Some(key) = self.lookup(reactor, tag, pid) {
                    self.kill(key);
                }
            }
        }
    }

    fn lookup(&self, reactor: usize, tag: u64, pid: i32) -> Option<usize> {
        let key = *self.by_tag.get(&(reactor, tag))?;
        if self.workers[key].pid != pid {
            log::warn!("child: command for tag {tag} names pid {pid}, worker is {}", self.workers[key].pid);
            return None;
        }
        Some(key)
    }

    /// SIGTERM to the groups of `keys` (one `/proc` scan for all of them).
    fn terminate(&mut self, keys: &[usize], grace: Duration) {
        let deadline = Instant::now() + grace;
        let fresh: Vec<usize> =
            keys.iter().copied().filter(|&k| matches!(self.workers[k].phase, Phase::Running)).collect();
        // Snapshot before signalling: afterwards children may already be
        // re-parented and their ppid links gone.
        self.refresh_snapshots(&fresh);
        for &key in keys {
            let w = &mut self.workers[key];
            match &mut w.phase {
                Phase::Terminating { kill_at } => *kill_at = (*kill_at).min(deadline),
                Phase::Killed | Phase::Sweeping { .. } => {}
                Phase::Running => {
                    w.signal_group(libc::SIGTERM, true);
                    w.phase = Phase::Terminating { kill_at: deadline };
                }
            }
        }
    }

    fn kill(&mut self, key: usize) {
        match self.workers[key].phase {
            Phase::Killed => {}
            Phase::Sweeping { .. } => self.end_sweep(key, true),
            Phase::Running | Phase::Terminating { .. } => {
                self.refresh_snapshots(&[key]);
                let w = &mut self.workers[key];
                w.signal_group(libc::SIGKILL, true);
                w.phase = Phase::Killed;
            }
        }
    }

    /// Merges the current descendants of each worker in `keys` into its
    /// snapshot, from a single `/proc` scan.
    fn refresh_snapshots(&mut self, keys: &[usize]) {
        if keys.is_empty() {
            return;
        }
        let procs = match procfs::scan() {
            Ok(p) => p,
            Err(e) => {
                log::warn!("child: /proc scan failed: {e}");
                return;
            }
        };
        for &key in keys {
            let w = &mut self.workers[key];
            w.snapshot.merge(procfs::descendants_in(&procs, w.pid));
        }
    }

    fn run_deadlines(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .workers
            .iter()
            .filter(|(_, w)| match &w.phase {
                Phase::Terminating { kill_at } => *kill_at <= now,
                // A sweep also ends early once every target is dead.
                Phase::Sweeping { kill_at, targets, .. } => {
                    *kill_at <= now || targets.iter().all(|t| !procfs::is_alive(t.pid, t.starttime))
                }
                Phase::Running | Phase::Killed => false,
            })
            .map(|(k, _)| k)
            .collect();
        for key in due {
            match self.workers[key].phase {
                Phase::Terminating { .. } => self.kill(key),
                Phase::Sweeping { .. } => self.end_sweep(key, true),
                Phase::Running | Phase::Killed => {}
            }
        }
        if now >= self.next_orphan_sweep {
            self.next_orphan_sweep = now + self.opts.orphan_sweep_interval;
            self.sweep_orphans();
        }
        if let Some(deadline) = self.shutdown_deadline
            && now >= deadline
            && !self.workers.is_empty()
        {
            self.give_up_waiting();
        }
    }

    fn sweep_orphans(&mut self) {
        let alive: Vec<usize> = self
            .workers
            .iter()
            .filter(|(_, w)| matches!(w.phase, Phase::Running | Phase::Terminating { .. }))
            .map(|(k, _)| k)
            .collect();
        self.refresh_snapshots(&alive);
        let leaders: HashSet<i32> = self.by_pid.keys().copied().collect();
        let live: Vec<LiveWorker<'_>> =
            self.workers.iter().map(|(_, w)| LiveWorker { snapshot: &w.snapshot, session_id: &w.session_id }).collect();
        let n = sweep::sweep_orphans(&leaders, &live);
        if n > 0 {
            log::info!("child: orphan sweep killed {n} process(es)");
        }
    }

    /// The identity a plan's worker runs as: its owner's uid under
    /// `uid_per_owner` (allocated and committed on first use), else `run_as`.
    fn identity(&mut self, plan: &SpawnPlan) -> Result<Option<RunAs>, SpawnError> {
        let Some(p) = &plan.per_owner else { return Ok(plan.run_as.clone()) };
        let uids = self.uids.as_mut().ok_or(SpawnError::Identity(UidError::Unavailable))?;
        uids.identity(p).map(Some).map_err(SpawnError::Identity)
    }

    fn on_spawn(&mut self, reactor: usize, tag: u64, plan: Box<SpawnPlan>) {
        debug_assert_eq!(thread::current().name(), Some(SPAWNER_THREAD_NAME), "workers fork from the spawner only");
        if reactor >= self.sinks.len() {
            log::error!("child: spawn for unknown reactor {reactor} refused");
            return;
        }
        let result = if self.shutdown_deadline.is_some() {
            Err(SpawnError::ShuttingDown)
        } else if self.by_tag.contains_key(&(reactor, tag)) {
            Err(SpawnError::InvalidRequest("duplicate tag"))
        } else if plan.session_id.is_empty() || plan.session_id.contains('\0') {
            Err(SpawnError::InvalidRequest("bad session id"))
        } else if self.workers.iter().any(|(_, w)| w.session_id == plan.session_id) {
            Err(SpawnError::InvalidRequest("session already has a live worker"))
        } else {
            self.identity(&plan).and_then(|id| start_worker(plan.as_ref(), id))
        };
        match &result {
            Ok((w, _)) => {
                let key = self.workers.insert(Worker {
                    reactor,
                    tag,
                    pid: w.pid,
                    session_id: plan.session_id,
                    gateway_signal: None,
                    snapshot: Snapshot::default(),
                    phase: Phase::Running,
                });
                self.by_tag.insert((reactor, tag), key);
                self.by_pid.insert(w.pid, key);
            }
            Err(e) => log::warn!("child: spawn for tag {tag} failed ({}): {e}", e.reason()),
        }
        self.notify(reactor, Notice::Spawned { tag, result });
    }

    fn begin_shutdown(&mut self, grace: Duration) {
        let now = Instant::now();
        let deadline = now + grace + self.opts.sweep_grace + SHUTDOWN_SLACK;
        self.shutdown_deadline = Some(self.shutdown_deadline.map_or(deadline, |d| d.min(deadline)));
        let keys: Vec<usize> = self.workers.iter().map(|(k, _)| k).collect();
        self.terminate(&keys, grace);
    }

    /// Shutdown deadline passed with workers left: SIGKILL what can be
    /// signalled, report what can be reported, stop waiting.
    fn give_up_waiting(&mut self) {
        let keys: Vec<usize> = self.workers.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.workers[key].phase {
                Phase::Sweeping { .. } => self.end_sweep(key, false),
                _ => {
                    let w = &mut self.workers[key];
                    w.signal_group(libc::SIGKILL, true);
                    log::error!("child: worker {} did not exit by the shutdown deadline", w.pid);
                    let w = self.workers.remove(key);
                    self.by_tag.remove(&(w.reactor, w.tag));
                    // Reaped later as an untracked child, without a notice.
                    self.by_pid.remove(&w.pid);
                }
            }
        }
    }

    /// After the last worker: kill every remaining child (nothing is
    /// attributable any more) and reap until none is left or time runs out.
    fn final_cleanup(&mut self) {
        // Commands that arrived after the last worker: refuse spawns.
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Cmd(Command::Spawn { reactor, tag, .. }) = msg {
                self.notify(reactor, Notice::Spawned { tag, result: Err(SpawnError::ShuttingDown) });
            }
        }
        let deadline = Instant::now() + SHUTDOWN_SLACK;
        self.by_pid.clear();
        let mut events = Events::with_capacity(4);
        loop {
            sweep::sweep_orphans(&HashSet::new(), &[]);
            self.reap_children();
            let left = procfs::own_children().len();
            if left == 0 {
                break;
            }
            if Instant::now() >= deadline {
                log::error!("child: {left} child process(es) left at spawner exit");
                break;
            }
            // Dying children: wait for their SIGCHLD (or the tick).
            let _ = self.poll.poll(&mut events, Some(FAST_TICK));
            self.drain_sigchld();
        }
    }
}

/// HOME, TMPDIR and the checked work dir of a plan (everything before `fork`).
fn prepare(plan: &SpawnPlan, run_as: Option<&RunAs>) -> Result<WorkDir, SpawnError> {
    let owner = run_as.map(|r| (r.uid, r.gid));
    if let Some(home) = &plan.home_dir {
        ensure_private_dir_owned(home, owner).map_err(SpawnError::Home)?;
    }
    if let Some(tmp) = &plan.tmp_dir {
        ensure_private_dir_owned(tmp, owner).map_err(SpawnError::Home)?;
    }
    let mut wd_req = plan.work_dir.clone();
    if wd_req.owner.is_none() {
        wd_req.owner = owner;
    }
    open_work_dir(&wd_req).map_err(SpawnError::WorkDir)
}

/// HOME, work dir, env, fork: everything for one `Command::Spawn`.
fn start_worker(plan: &SpawnPlan, run_as: Option<RunAs>) -> Result<(SpawnedWorker, PathBuf), SpawnError> {
    let wd = prepare(plan, run_as.as_ref())?;
    let mut env: Vec<(OsString, OsString)> =
        plan.env.iter().filter(|(k, _)| k != "PWD" && k != SESSION_ENV && k != sweep::INSTANCE_ENV).cloned().collect();
    env.push(("PWD".into(), wd.path.clone().into_os_string()));
    env.push((SESSION_ENV.into(), plan.session_id.clone().into()));
    if let Some(id) = sweep::instance_id() {
        env.push((sweep::INSTANCE_ENV.into(), id.into()));
    }
    let req = SpawnRequest {
        program: plan.program.clone(),
        args: plan.args.clone(),
        env,
        work_dir: wd.fd.as_fd(),
        run_as,
        limits: plan.limits.clone(),
        umask: plan.umask,
    };
    let worker = spawn(&req)?;
    // `wd.fd` is closed on return: the child holds its cwd by itself.
    Ok((worker, wd.path))
}
