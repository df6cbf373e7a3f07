//! Every `unsafe` block of the project (security.md §3: "all `unsafe` of the
//! project lives in one module"). Each function here is a thin, documented
//! wrapper around one or two system calls and returns `io::Result`; policy
//! (what to kill, when to reap, what to check) lives in the safe modules.
//!
//! Owns: the `pre_exec` closure run between `fork` and `exec` ([`install_pre_exec`]),
//! signal masks, `signalfd`, `waitid`, `kill`/pidfd signalling, `prctl` calls
//! made by the gateway itself, and the `*at` calls used by the work-dir check.
//!
//! Must not: allocate, lock or log inside the `pre_exec` closure (only
//! async-signal-safe calls on data computed before `fork`); keep any state.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr;

/// Type of the `resource` argument of `setrlimit` on this libc.
#[cfg(target_env = "gnu")]
pub(crate) type RlimitResource = libc::__rlimit_resource_t;
/// Type of the `resource` argument of `setrlimit` on this libc.
#[cfg(not(target_env = "gnu"))]
pub(crate) type RlimitResource = libc::c_int;

/// Highest signal number + 1 on Linux (`_NSIG`).
const NSIG: libc::c_int = 65;
/// Size of the kernel's `sigset_t` (64 signals) for `rt_sigaction`.
const KERNEL_SIGSET_BYTES: Arg = 8;

/// Integer arguments of the variadic `syscall(2)`/`prctl(2)` wrappers are
/// read back as `long`: always pass full-width values, never a bare `i32`
/// whose upper register half is unspecified.
type Arg = libc::c_long;
/// `_LINUX_CAPABILITY_VERSION_3` (two 32-bit words per set).
const CAP_VERSION_3: u32 = 0x2008_0522;
/// Upper bound of the `FD_CLOEXEC` fallback loop when `close_range` is missing.
const CLOEXEC_FALLBACK_MAX_FD: u64 = 65_536;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Identity the child switches to (security.md §3 step 3).
pub(crate) struct PreExecIdentity {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
}

/// Everything the `pre_exec` closure needs, computed before `fork`.
pub(crate) struct PreExec {
    /// `getpid()` of the gateway, compared with `getppid()` after PDEATHSIG.
    pub parent_pid: libc::pid_t,
    pub identity: Option<PreExecIdentity>,
    /// `(resource, value)`; the child sets soft = hard = min(value, current hard).
    pub rlimits: Vec<(RlimitResource, u64)>,
    pub umask: libc::mode_t,
    /// `O_PATH` directory fd the child `fchdir`s to; must stay open until
    /// `Command::spawn` returns.
    pub workdir_fd: RawFd,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Installs the single `pre_exec` closure performing security.md §3 steps 1–9
/// in order. `std` has already `dup2`ed the stdio pipes when it runs.
pub(crate) fn install_pre_exec(cmd: &mut Command, plan: PreExec) {
    let hook = move || child_setup(&plan);
    // SAFETY: `child_setup` only performs async-signal-safe system calls
    // (setpgid, sigaction, sigprocmask, setgroups/setgid/setuid, prctl, capset,
    // getppid, _exit, setrlimit, umask, fchdir, close_range, fcntl) on data that
    // was fully computed before fork; it never allocates (io::Error values built
    // from errno are not heap-allocated), locks or logs.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Runs in the forked child. See [`install_pre_exec`].
fn child_setup(p: &PreExec) -> io::Result<()> {
    // SAFETY: called only in the single-threaded child between fork and exec;
    // every call below is async-signal-safe and gets pointers to memory owned by
    // `p` or to locals that outlive the call.
    unsafe {
        // 1. Own process group: pgid == pid.
        cvt(libc::setpgid(0, 0))?;

        // 2. Default dispositions (SIG_IGN survives exec) and an empty mask
        //    (the gateway blocks SIGCHLD/SIGTERM/SIGINT/SIGHUP in every thread).
        //    Raw rt_sigaction: libc's wrapper refuses its reserved signals
        //    (32, 33), which can arrive ignored from whoever started us. An
        //    all-zero kernel sigaction is SIG_DFL, no flags, empty mask, on
        //    every layout.
        let dfl = [0u64; 4];
        for sig in 1..NSIG {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let _ = libc::syscall(
                libc::SYS_rt_sigaction,
                sig as Arg,
                dfl.as_ptr(),
                ptr::null_mut::<u64>(),
                KERNEL_SIGSET_BYTES,
            );
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        cvt(libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut()))?;

        // 3. Identity drop; order matters (groups, gid, then uid).
        if let Some(id) = &p.identity {
            cvt(libc::setgroups(id.groups.len(), id.groups.as_ptr()))?;
            cvt(libc::setgid(id.gid))?;
            cvt(libc::setuid(id.uid))?;
        }

        // 3b. No capabilities survive: ambient set first, then all three sets.
        if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as Arg, 0 as Arg, 0 as Arg, 0 as Arg) == -1
        {
            let err = io::Error::last_os_error();
            // EINVAL: kernel without ambient capabilities, so there are none.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
        let header = CapHeader { version: CAP_VERSION_3, pid: 0 };
        let empty_caps = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
        if libc::syscall(libc::SYS_capset, &header as *const CapHeader, empty_caps.as_ptr()) == -1 {
            let err = io::Error::last_os_error();
            // Only fail when there is actually something we could not drop.
            let mut held = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
            let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
            if libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, held.as_mut_ptr()) == -1
                || held.iter().any(|d| d.effective != 0 || d.permitted != 0 || d.inheritable != 0)
            {
                return Err(err);
            }
        }
        if p.identity.is_some() && libc::setuid(0) == 0 {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }

        // 4. Die with the spawner thread; close the race where it already died.
        cvt(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as Arg, 0 as Arg, 0 as Arg, 0 as Arg))?;
        if libc::getppid() != p.parent_pid {
            libc::_exit(127);
        }

        // 5. No privilege gain through setuid binaries or file capabilities.
        cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as Arg, 0 as Arg, 0 as Arg, 0 as Arg))?;

        // 6. Resource limits for the worker only.
        for &(resource, value) in &p.rlimits {
            let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            cvt(libc::getrlimit(resource, &mut cur))?;
            let hard = if value < cur.rlim_max { value } else { cur.rlim_max };
            let new = libc::rlimit { rlim_cur: hard, rlim_max: hard };
            cvt(libc::setrlimit(resource, &new))?;
        }

        // 7. Private files by default.
        libc::umask(p.umask);

        // 8. The directory object that was checked, never a path.
        cvt(libc::fchdir(p.workdir_fd))?;

        // 9. Only 0, 1, 2 survive exec; CLOEXEC (not close) keeps std's
        //    exec-error pipe working.
        if libc::syscall(libc::SYS_close_range, 3 as Arg, libc::c_uint::MAX as Arg, libc::CLOSE_RANGE_CLOEXEC as Arg)
            == -1
        {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                if lim.rlim_cur < CLOEXEC_FALLBACK_MAX_FD { lim.rlim_cur } else { CLOEXEC_FALLBACK_MAX_FD }
            } else {
                CLOEXEC_FALLBACK_MAX_FD
            };
            let mut fd: libc::c_int = 3;
            while (fd as u64) < max {
                // EBADF for fds that are not open: nothing to mark.
                let _ = libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                fd += 1;
            }
        }
    }
    Ok(())
}

/// Sets `O_NONBLOCK` and `FD_CLOEXEC` on a pipe end the gateway keeps.
pub(crate) fn set_nonblocking_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is a valid open fd for the duration of the borrow; fcntl with
    // F_GETFL/F_SETFL/F_GETFD/F_SETFD takes and returns plain integers.
    unsafe {
        let fl = cvt(libc::fcntl(raw, libc::F_GETFL))?;
        if fl & libc::O_NONBLOCK == 0 {
            cvt(libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
        }
        let fd_flags = cvt(libc::fcntl(raw, libc::F_GETFD))?;
        if fd_flags & libc::FD_CLOEXEC == 0 {
            cvt(libc::fcntl(raw, libc::F_SETFD, fd_flags | libc::FD_CLOEXEC))?;
        }
    }
    Ok(())
}

/// Real uid of the gateway.
pub(crate) fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `kill(pid, sig)`; a negative `pid` addresses a process group.
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers; callers only pass a negative pid for a
    // group whose leader they hold unreaped (or have just verified).
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `pidfd_open(pid, 0)`: a handle that keeps naming the same process even if
/// its pid is later reused.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new fd we own.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as Arg, 0 as Arg) })?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd for the duration of the borrow, a NULL siginfo and
    // zero flags are the documented "like kill(2)" form.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as Arg,
            sig as Arg,
            ptr::null::<libc::siginfo_t>(),
            0 as Arg,
        )
    })
    .map(drop)
}

/// One exited child as reported by `waitid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitInfo {
    pub pid: i32,
    /// `si_code`: `CLD_EXITED`, `CLD_KILLED` or `CLD_DUMPED`.
    pub code: i32,
    /// Exit code for `CLD_EXITED`, else the signal number.
    pub status: i32,
}

fn waitid(idtype: libc::idtype_t, id: libc::id_t, options: libc::c_int) -> io::Result<Option<WaitInfo>> {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: `info` is zero-initialised writable storage for one siginfo_t;
        // waitid only writes into it.
        let ret = unsafe { libc::waitid(idtype, id, info.as_mut_ptr(), options) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(err),
            }
        }
        // SAFETY: zero-initialised then (maybe) filled by the kernel: valid.
        let info = unsafe { info.assume_init() };
        // SAFETY: for waitid results the pid/status union members are the ones set.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(WaitInfo { pid, code: info.si_code, status }));
    }
}

/// Any exited child, left waitable (`WNOWAIT`): the zombie keeps its pid (and
/// pgid) pinned until [`reap`].
pub(crate) fn waitid_any_nowait() -> io::Result<Option<WaitInfo>> {
    waitid(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
}

/// Reaps `pid` if it has exited (never blocks).
pub(crate) fn reap(pid: i32) -> io::Result<Option<WaitInfo>> {
    waitid(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOHANG)
}

/// Reaps `pid`, blocking until it exits (tests only).
#[cfg(test)]
pub(crate) fn reap_blocking(pid: i32) -> io::Result<Option<WaitInfo>> {
    waitid(libc::P_PID, pid as libc::id_t, libc::WEXITED)
}

fn sigset_of(signals: &[i32]) -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: sigemptyset initialises the set; sigaddset only writes into it.
    unsafe {
        cvt(libc::sigemptyset(set.as_mut_ptr()))?;
        for &sig in signals {
            cvt(libc::sigaddset(set.as_mut_ptr(), sig))?;
        }
        Ok(set.assume_init())
    }
}

/// Blocks `signals` in the calling thread (threads started later inherit it).
pub(crate) fn block_signals(signals: &[i32]) -> io::Result<()> {
    let set = sigset_of(signals)?;
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
    if ret != 0 { Err(io::Error::from_raw_os_error(ret)) } else { Ok(()) }
}

/// Whether `sig` is blocked in the calling thread.
pub(crate) fn is_blocked(sig: i32) -> bool {
    let mut old = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: a NULL new set only queries the mask into `old`, which is then
    // initialised and read with sigismember.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), old.as_mut_ptr()) == 0
            && libc::sigismember(old.as_ptr(), sig) == 1
    }
}

/// A non-blocking, close-on-exec `signalfd` for SIGCHLD (which must be blocked
/// in every thread for it to see the signal).
pub(crate) fn signalfd_sigchld() -> io::Result<OwnedFd> {
    let set = sigset_of(&[libc::SIGCHLD])?;
    // SAFETY: -1 asks for a new fd; `set` is initialised.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are re-parented to
/// this process instead of init.
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as Arg, 0 as Arg, 0 as Arg, 0 as Arg) }).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, 0)` and `RLIMIT_CORE` 0 for the gateway itself.
pub(crate) fn harden_self() -> io::Result<()> {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prctl with integer arguments; setrlimit reads one initialised struct.
    unsafe {
        cvt(libc::prctl(libc::PR_SET_DUMPABLE, 0 as Arg, 0 as Arg, 0 as Arg, 0 as Arg))?;
        cvt(libc::setrlimit(libc::RLIMIT_CORE, &zero))?;
    }
    Ok(())
}

/// `mkdirat(dir, name, mode)`.
pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid dir fd for the borrow, NUL-terminated name.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)`.
pub(crate) fn openat_dir_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid dir fd for the borrow, NUL-terminated name.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: works on `O_PATH` fds.
pub(crate) fn fchown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd for the borrow and a static empty C string.
    cvt(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }).map(drop)
}

// ---- gateway process ----------------------------------------------------

/// Wait up to `timeout` for one of the blocked signals SIGTERM, SIGINT or
/// SIGHUP (blocked in every thread by [`prepare_process`]).
pub fn wait_signal(timeout: std::time::Duration) -> Option<i32> {
    let set = sigset_of(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]).ok()?;
    let ts =
        libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
    // SAFETY: `set` is an initialised sigset; `ts` a valid timespec; a null siginfo is allowed.
    let r = unsafe { libc::sigtimedwait(&set, ptr::null_mut(), &ts) };
    if r > 0 { Some(r) } else { None }
}

/// `CLOCK_MONOTONIC` in microseconds (sd_notify `MONOTONIC_USEC=`).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000).saturating_add(ts.tv_nsec as u64 / 1000)
}

/// Process-wide setup before any thread starts: block the signals the
/// gateway handles synchronously (inherited by every thread), become a child
/// subreaper, drop dumpability and core dumps, raise the fd soft limit.
pub fn prepare_process() -> io::Result<()> {
    block_signals(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD])?;
    set_child_subreaper()?;
    harden_self()?;
    raise_nofile();
    pin_mmap_threshold();
    Ok(())
}

/// Allocations of 1 MiB and more (replay pages, a long `message` row) get
/// their own mapping, returned to the kernel when freed. glibc's default
/// raises this threshold after each large free, after which such buffers
/// come from per-thread arenas and their pages stay resident: RSS would
/// ratchet up by one large row per reactor and reader thread.
fn pin_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit (best effort).
pub fn raise_nofile() {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 && rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: `rl` holds values read from the kernel.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the times in `/proc/<pid>/stat`.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

/// `read(2)` on a borrowed fd (worker pipes).
pub fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is open for the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// `write(2)` on a borrowed fd (worker stdin).
pub fn write_fd(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is open for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// (uid, gid) of a user name (`security.worker.run_as: {user}`).
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut pwd = MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `buf` outlives it.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), pwd.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: getpwnam_r succeeded, so `pwd` is initialised.
    let pwd = unsafe { pwd.assume_init() };
    Some((pwd.pw_uid, pwd.pw_gid))
}

/// Name, login shell and home directory of `uid` (the worker identity's
/// USER, LOGNAME, SHELL, HOME), if it has a passwd entry. Startup and reload
/// only (NSS may do I/O).
pub fn passwd_of(uid: u32) -> Option<(String, String, String)> {
    let mut pwd = MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = ptr::null_mut();
    // SAFETY: all pointers are valid; `buf` outlives the reads below.
    let rc = unsafe { libc::getpwuid_r(uid, pwd.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so `pwd` is initialised and its strings point into `buf`.
    let pwd = unsafe { pwd.assume_init() };
    let cstr = |p: *const libc::c_char| -> Option<String> {
        if p.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated string inside `buf`.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    Some((cstr(pwd.pw_name)?, cstr(pwd.pw_shell).unwrap_or_default(), cstr(pwd.pw_dir).unwrap_or_default()))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers that let unit tests put the gateway into the states the
    //! spawn path must undo.
    use super::*;

    /// Sets `sig` to SIG_IGN process-wide.
    pub(crate) fn ignore_signal(sig: i32) {
        // SAFETY: installing SIG_IGN has no handler code to be unsafe about.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }

    /// Clears FD_CLOEXEC so the fd would leak into children without step 9.
    pub(crate) fn clear_cloexec(fd: BorrowedFd<'_>) {
        // SAFETY: valid fd for the borrow; F_SETFD with 0 clears FD_CLOEXEC.
        unsafe {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0);
        }
    }
}
