//! Worker processes: everything about them except protocol translation.
//!
//! Owns: the work-dir sandbox ([`workdir`]), the spawn path with its single
//! `pre_exec` closure ([`spawn`](mod@spawn), `sys`), framing of worker output
//! ([`lines`]), `/proc` views ([`procfs`]), escaped-descendant sweeps
//! ([`sweep`]) and the `spawner` thread that forks, reaps and kills
//! ([`supervisor`]).
//!
//! Must not: know any agent's wire format (adapters do), build env or argv
//! (the session/adapter layer does, from config), or fork/reap/kill from any
//! thread but the spawner. All `unsafe` of the project lives in `sys`.
//!
//! How a reactor uses it:
//! 1. `handle.send(Command::Spawn { reactor: my_index, tag, plan })`.
//! 2. On `Notice::Spawned { tag, result: Ok((worker, work_dir)) }`: register
//!    `worker.stdout`/`stderr` (READABLE) and `stdin` (WRITABLE when queued)
//!    with its `mio::Poll` via `SourceFd`; feed stdout into a
//!    [`LineSplitter`] and stderr into a [`TailBuffer`]. Keep `worker.pid`.
//! 3. To stop: `Command::Terminate { grace: worker.kill_grace, .. }`; to stop
//!    now: `Command::Kill`. Both are safe to repeat.
//! 4. On `Notice::Exited`: the process group is gone and swept; close the
//!    pipes (after draining them), classify the exit from
//!    `code`/`signal`/`gateway_signal` (workers.md §1.4 item 6), and only
//!    then report `state{terminated}` or respawn for the same session.
//!
//! Process setup (in `main`, before any thread is started): block SIGCHLD
//! (with SIGTERM/SIGINT/SIGHUP) via [`block_signals`], call
//! [`harden_gateway`] and [`become_subreaper`], then [`Supervisor::start`]. Nothing else in the
//! process may wait for children once the supervisor runs.

pub mod identity;
pub mod lines;
pub mod procfs;
pub mod spawn;
pub mod supervisor;
pub mod sweep;

pub mod workdir;

use std::io;

use crate::sys;

pub use identity::{PerOwner, UidAllocator, UidBook, UidError, UidRange};
pub use lines::{Item as LineItem, LineSplitter, TailBuffer};
pub use spawn::{RunAs, SpawnError, SpawnRequest, SpawnedWorker, WorkerLimits, spawn};
pub use supervisor::{
    Command, Notice, NoticeSink, SPAWNER_THREAD_NAME, SpawnPlan, Supervisor, SupervisorHandle, SupervisorOptions,
};
pub use sweep::{INSTANCE_ENV, SESSION_ENV, kill_group_members, kill_group_of, kill_process, set_instance_id};
pub use workdir::{WorkDir, WorkDirError, WorkDirRequest, ensure_private_dir, ensure_private_dir_owned, open_work_dir};

/// Blocks `signals` in the calling thread; threads started afterwards inherit
/// the mask. `main` calls it with SIGCHLD, SIGTERM, SIGINT and SIGHUP before
/// starting any thread (workers reset their mask before exec).
pub fn block_signals(signals: &[i32]) -> io::Result<()> {
    sys::block_signals(signals)
}

/// Startup hardening of the gateway process (security.md §3 "Rules around
/// the spawn"): `PR_SET_DUMPABLE 0`, so a worker under the same uid cannot
/// read `/proc/<gateway>/environ` or `mem` or ptrace it, and `RLIMIT_CORE` 0.
/// Call once in `main`, before loading secrets.
pub fn harden_gateway() -> io::Result<()> {
    sys::harden_self()
}

/// Makes the gateway a child subreaper (`PR_SET_CHILD_SUBREAPER`): escaped
/// descendants of workers are re-parented to it, and the spawner reaps or
/// kills them. Call once at startup.
pub fn become_subreaper() -> io::Result<()> {
    sys::set_child_subreaper()
}
