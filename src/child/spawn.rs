//! Starting one worker process (security.md §3 steps 1–10, §5, workers.md §1.4.1).
//!
//! Owns: validating a [`SpawnRequest`], building the `std::process::Command`
//! (`env_clear` + the caller's complete env, piped stdio, absolute program,
//! one `pre_exec` closure from `sys`), and handing back the pipes and
//! the `(pid, start_ticks)` identity as a [`SpawnedWorker`].
//!
//! Must not: decide the env, argv or limits (callers compute them); search
//! PATH or run a shell; wait for or reap the child (the supervisor is the only
//! reaper — the `std::process::Child` is dropped without waiting, which neither
//! kills nor reaps); be called from a short-lived thread (PDEATHSIG follows the
//! forking *thread*; in the gateway only the `spawner` thread calls it).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::procfs;
use super::workdir::WorkDirError;
use crate::sys::{self, PreExec, PreExecIdentity, RlimitResource, kill};

/// Default `security.worker.umask`.
pub const DEFAULT_UMASK: u32 = 0o077;
/// Default `limits.worker.rlimit_nofile`.
pub const DEFAULT_RLIMIT_NOFILE: u64 = 4096;

/// `security.worker.run_as`, resolved (uid/gid 0 are refused at startup, S14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups; empty by default.
    pub groups: Vec<u32>,
}

/// `limits.worker.*` applied in the child (security.md §3 step 6). `None` =
/// not set; the child sets soft = hard = min(value, inherited hard limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerLimits {
    pub as_bytes: Option<u64>,
    pub nproc: Option<u64>,
    pub cpu_seconds: Option<u64>,
    pub nofile: Option<u64>,
    /// `RLIMIT_CORE`; `None` means 0 (no core dumps), never "inherit".
    pub core_bytes: Option<u64>,
}

impl Default for WorkerLimits {
    fn default() -> WorkerLimits {
        WorkerLimits {
            as_bytes: None,
            nproc: None,
            cpu_seconds: None,
            nofile: Some(DEFAULT_RLIMIT_NOFILE),
            core_bytes: None,
        }
    }
}

impl WorkerLimits {
    fn to_rlimits(&self) -> Vec<(RlimitResource, u64)> {
        let mut v = vec![(libc::RLIMIT_CORE, self.core_bytes.unwrap_or(0))];
        let optional = [
            (libc::RLIMIT_AS, self.as_bytes),
            (libc::RLIMIT_NPROC, self.nproc),
            (libc::RLIMIT_CPU, self.cpu_seconds),
            (libc::RLIMIT_NOFILE, self.nofile),
        ];
        v.extend(optional.into_iter().filter_map(|(r, val)| val.map(|val| (r, val))));
        v
    }
}

/// Everything needed to start one worker.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    /// Absolute path of the pinned binary (security.md §4); never searched in PATH.
    pub program: PathBuf,
    /// argv\[1..\] (argv\[0\] is `program`).
    pub args: Vec<OsString>,
    /// The complete environment (security.md §5); nothing is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Verified work-dir fd ([`super::WorkDir::fd`]); the child `fchdir`s to it.
    pub work_dir: BorrowedFd<'a>,
    pub run_as: Option<RunAs>,
    pub limits: WorkerLimits,
    /// `security.worker.umask` (default [`DEFAULT_UMASK`]).
    pub umask: u32,
}

/// A started worker. The pipes are `O_NONBLOCK | O_CLOEXEC`, ready for mio.
#[derive(Debug)]
pub struct SpawnedWorker {
    /// Also the worker's process-group id.
    pub pid: i32,
    /// `/proc/<pid>/stat` field 22: with `pid`, the worker's identity (store it
    /// as `worker_start_ticks` for startup recovery).
    pub start_ticks: u64,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Why a worker did not start. Maps to `WORKER_START_FAILED`, or to
/// `CONFIG_INVALID` for [`SpawnError::WorkDir`].
#[derive(Debug)]
pub enum SpawnError {
    /// The request itself is unusable (relative program, NUL or `=` in env
    /// names, NUL in values or args). A gateway bug, not a client error.
    InvalidRequest(&'static str),
    /// `init.config.work_dir` refused (client sees `CONFIG_INVALID`).
    WorkDir(WorkDirError),
    /// The private HOME could not be created.
    Home(io::Error),
    /// fork, a `pre_exec` step or exec failed (the child never ran the program).
    Exec(io::Error),
    /// The child started but could not be set up (pipes, `/proc`); it was
    /// SIGKILLed and is reaped by the supervisor.
    Setup(io::Error),
    /// The supervisor is shutting down.
    ShuttingDown,
    /// No uid for the session's owner (`uid_per_owner`); `Exhausted` maps to
    /// `GATEWAY_OVERLOAD`, the rest to `WORKER_START_FAILED`.
    Identity(super::identity::UidError),
}

impl SpawnError {
    /// Machine reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SpawnError::InvalidRequest(_) => "invalid_request",
            SpawnError::WorkDir(e) => e.reason(),
            SpawnError::Home(_) => "home_dir",
            SpawnError::Exec(_) => "exec_failed",
            SpawnError::Setup(_) => "setup_failed",
            SpawnError::ShuttingDown => "shutting_down",
            SpawnError::Identity(super::identity::UidError::Exhausted) => "uid_range_exhausted",
            SpawnError::Identity(_) => "owner_uid",
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::InvalidRequest(w) => write!(f, "invalid spawn request: {w}"),
            SpawnError::WorkDir(e) => write!(f, "{e}"),
            SpawnError::Home(e) => write!(f, "cannot create HOME: {e}"),
            SpawnError::Exec(e) => write!(f, "exec failed: {e}"),
            SpawnError::Setup(e) => write!(f, "worker setup failed: {e}"),
            SpawnError::ShuttingDown => write!(f, "supervisor shutting down"),
            SpawnError::Identity(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SpawnError {}

fn validate(req: &SpawnRequest<'_>) -> Result<(), SpawnError> {
    if !req.program.is_absolute() {
        return Err(SpawnError::InvalidRequest("program must be an absolute path"));
    }
    if req.program.as_os_str().as_bytes().contains(&0) || req.args.iter().any(|a| a.as_bytes().contains(&0)) {
        return Err(SpawnError::InvalidRequest("NUL in program or argv"));
    }
    for (k, v) in &req.env {
        let k = k.as_bytes();
        if k.is_empty() || k.contains(&b'=') || k.contains(&0) {
            return Err(SpawnError::InvalidRequest("bad env name"));
        }
        if v.as_bytes().contains(&0) {
            return Err(SpawnError::InvalidRequest("NUL in env value"));
        }
    }
    if req.run_as.as_ref().is_some_and(|r| r.uid == 0 || r.gid == 0) {
        return Err(SpawnError::InvalidRequest("run_as uid/gid 0"));
    }
    Ok(())
}

/// Forks and execs one worker as security.md §3 prescribes. Returns once the
/// program has been exec'd (or failed to be). The caller's thread must live
/// as long as the worker (PDEATHSIG); the child is never reaped here.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<SpawnedWorker, SpawnError> {
    validate(req)?;
    let mut cmd = Command::new(&req.program);
    cmd.args(&req.args)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    sys::install_pre_exec(
        &mut cmd,
        PreExec {
            parent_pid: std::process::id() as libc::pid_t,
            identity: req.run_as.as_ref().map(|r| PreExecIdentity { uid: r.uid, gid: r.gid, groups: r.groups.clone() }),
            rlimits: req.limits.to_rlimits(),
            umask: req.umask as libc::mode_t,
            workdir_fd: req.work_dir.as_raw_fd(),
        },
    );
    let mut child = cmd.spawn().map_err(SpawnError::Exec)?;
    let pid = child.id() as i32;
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    // Dropping a `Child` neither waits nor kills: reaping stays with the
    // supervisor's waitid loop.
    drop(child);
    let setup = || -> io::Result<SpawnedWorker> {
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            return Err(io::Error::other("missing stdio pipe"));
        };
        let (stdin, stdout, stderr) = (OwnedFd::from(stdin), OwnedFd::from(stdout), OwnedFd::from(stderr));
        for fd in [&stdin, &stdout, &stderr] {
            sys::set_nonblocking_cloexec(fd.as_fd())?;
        }
        // The child is unreaped, so /proc/<pid> exists (at worst as a zombie).
        let start_ticks = procfs::start_ticks(pid)?;
        Ok(SpawnedWorker { pid, start_ticks, stdin, stdout, stderr })
    };
    setup().map_err(|e| {
        // Still our unreaped child, so the pid (and pgid) cannot be reused yet.
        let _ = kill(-pid, libc::SIGKILL);
        let _ = kill(pid, libc::SIGKILL);
        SpawnError::Setup(e)
    })
}

#[cfg(test)]
mod tests;
