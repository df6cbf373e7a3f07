//! Work-directory sandbox (security.md §6.2) and private per-owner dirs.
//!
//! Owns: turning a client's `init.config.work_dir` (or the default) into an
//! opened, verified directory fd plus its canonical path. The check is made on
//! the object actually opened (`O_PATH`, then `readlink /proc/self/fd/N`), and
//! the child `fchdir`s to that very fd, so nothing is re-resolved between
//! check and use.
//!
//! Must not: let a reason or a resolved path reach the client (callers map any
//! [`WorkDirError`] to a generic `CONFIG_INVALID`; [`WorkDirError::reason`] and
//! `Display` are for logs and audit rows only); run on a reactor thread (it
//! touches the disk — the spawner thread calls it).

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::sys;

/// Default `limits.max_work_dir_bytes`.
pub const DEFAULT_MAX_WORK_DIR_BYTES: usize = 4096;

/// Mode of every directory this module creates.
const PRIVATE_DIR_MODE: u32 = 0o700;

/// Trees no work dir may be in, whatever the roots say (security.md §6.2 item 6).
const ALWAYS_DENIED: [&str; 3] = ["/proc", "/sys", "/dev"];

/// One work-dir resolution, with everything already expanded by the caller.
#[derive(Clone, Debug, Default)]
pub struct WorkDirRequest {
    /// The client's `init.config.work_dir` (or the stored path on resume);
    /// `None` = use `default_dir`.
    pub requested: Option<String>,
    /// The caller's `worker.work_dir_roots`, `{owner_hash}` substituted. A
    /// relative `requested` path is joined to the first one.
    pub roots: Vec<PathBuf>,
    /// `worker.default_work_dir`, expanded; created (with parents, 0700) when missing.
    pub default_dir: PathBuf,
    /// `worker.create_work_dir`: a missing last component may be created, and
    /// missing roots are created (0700).
    pub create: bool,
    /// `limits.max_work_dir_bytes`.
    pub max_bytes: usize,
    /// `(uid, gid)` given to every directory created here (the worker identity
    /// under `run_as`); `None` keeps the gateway's.
    pub owner: Option<(u32, u32)>,
    /// Extra trees that are never allowed even inside a root (the gateway's
    /// data dir, config file, secret files). `/proc`, `/sys`, `/dev` always are.
    pub deny: Vec<PathBuf>,
}

/// A verified work directory.
#[derive(Debug)]
pub struct WorkDir {
    /// Canonical path of the opened directory (store it with the session).
    pub path: PathBuf,
    /// `O_PATH | O_DIRECTORY | O_CLOEXEC` fd of that directory; the child
    /// `fchdir`s to it.
    pub fd: OwnedFd,
}

/// Why a work dir was refused. The client only ever sees `CONFIG_INVALID`.
#[derive(Debug)]
pub enum WorkDirError {
    /// Resolves outside every root, or into a denied tree.
    Escape { resolved: PathBuf },
    /// Does not exist and may not be created (creation off, missing parent,
    /// last component not a plain name).
    Missing { path: PathBuf },
    /// Malformed request, not a directory, deleted, or an I/O failure.
    Invalid { what: &'static str, path: Option<PathBuf>, source: Option<io::Error> },
}

impl WorkDirError {
    /// Machine reason for logs and the audit row.
    pub fn reason(&self) -> &'static str {
        match self {
            WorkDirError::Escape { .. } => "work_dir_escape",
            WorkDirError::Missing { .. } => "work_dir_missing",
            WorkDirError::Invalid { .. } => "work_dir_invalid",
        }
    }

    fn invalid(what: &'static str, path: Option<&Path>, source: Option<io::Error>) -> WorkDirError {
        WorkDirError::Invalid { what, path: path.map(Path::to_path_buf), source }
    }
}

impl fmt::Display for WorkDirError {
    /// For logs only: contains paths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkDirError::Escape { resolved } => {
                write!(f, "work_dir_escape: {} is outside the roots", resolved.display())
            }
            WorkDirError::Missing { path } => write!(f, "work_dir_missing: {}", path.display()),
            WorkDirError::Invalid { what, path, source } => {
                write!(f, "work_dir_invalid: {what}")?;
                if let Some(p) = path {
                    write!(f, " ({})", p.display())?;
                }
                if let Some(e) = source {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for WorkDirError {}

/// Resolves, opens and verifies the work dir of one spawn (security.md §6.2).
pub fn open_work_dir(req: &WorkDirRequest) -> Result<WorkDir, WorkDirError> {
    if req.roots.is_empty() || req.roots.iter().any(|r| !r.is_absolute()) {
        return Err(WorkDirError::invalid("roots must be absolute and non-empty", None, None));
    }
    if req.create {
        for root in &req.roots {
            if fs::symlink_metadata(root).is_err() {
                create_private_dir_all(root, req.owner)
                    .map_err(|e| WorkDirError::invalid("cannot create root", Some(root), Some(e)))?;
            }
        }
    }
    let roots = canonical_roots(&req.roots);
    let deny = denied_trees(&req.deny);
    let check = Check { roots: &roots, deny: &deny };

    let target = match &req.requested {
        None => {
            let dir = &req.default_dir;
            // Lexical pre-check so nothing is ever created outside a root; the
            // opened object is verified again below.
            let normal = dir.is_absolute() && dir.components().all(|c| !matches!(c, Component::ParentDir));
            if !normal || !req.roots.iter().chain(roots.iter()).any(|r| dir.starts_with(r)) {
                return Err(WorkDirError::Escape { resolved: dir.clone() });
            }
            if fs::symlink_metadata(dir).is_err() {
                create_private_dir_all(dir, req.owner)
                    .map_err(|e| WorkDirError::invalid("cannot create default dir", Some(dir), Some(e)))?;
            }
            dir.clone()
        }
        Some(s) => {
            if s.is_empty() || s.len() > req.max_bytes || s.contains('\0') {
                return Err(WorkDirError::invalid("bad work_dir string", None, None));
            }
            let p = Path::new(s);
            if p.is_absolute() { p.to_path_buf() } else { req.roots[0].join(p) }
        }
    };

    match open_dir(&target) {
        Ok(fd) => check.verify(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if !req.create {
                return Err(WorkDirError::Missing { path: target });
            }
            create_last_component(&target, &check, req.owner)
        }
        Err(e) => Err(WorkDirError::invalid("cannot open", Some(&target), Some(e))),
    }
}

/// Canonical forms of the roots that exist (a missing root contains nothing).
fn canonical_roots(roots: &[PathBuf]) -> Vec<PathBuf> {
    roots.iter().filter_map(|r| fs::canonicalize(r).ok()).collect()
}

fn denied_trees(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ALWAYS_DENIED.iter().map(PathBuf::from).collect();
    for p in extra {
        out.push(p.clone());
        if let Ok(c) = fs::canonicalize(p) {
            out.push(c);
        }
    }
    out
}

struct Check<'a> {
    roots: &'a [PathBuf],
    deny: &'a [PathBuf],
}

impl Check<'_> {
    /// Steps 3–4 (and 6) on an opened fd: the canonical path of the object
    /// must be a root or lie under one, component-wise.
    fn resolve(&self, fd: &OwnedFd) -> Result<PathBuf, WorkDirError> {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let real = fs::read_link(&link).map_err(|e| WorkDirError::invalid("readlink failed", None, Some(e)))?;
        if real.as_os_str().as_bytes().ends_with(b" (deleted)") {
            return Err(WorkDirError::invalid("directory deleted", Some(&real), None));
        }
        if !real.is_absolute() {
            // e.g. a directory outside our mount namespace's root.
            return Err(WorkDirError::Escape { resolved: real });
        }
        if self.deny.iter().any(|d| real.starts_with(d)) || !self.roots.iter().any(|r| real.starts_with(r)) {
            return Err(WorkDirError::Escape { resolved: real });
        }
        Ok(real)
    }

    fn verify(&self, fd: OwnedFd) -> Result<WorkDir, WorkDirError> {
        let path = self.resolve(&fd)?;
        Ok(WorkDir { path, fd })
    }
}

/// `open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)`, symlinks followed.
fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
}

/// Step 5: the parent is opened and verified, then the plain last component
/// is created with `mkdirat` and opened with `O_NOFOLLOW`, then re-verified.
fn create_last_component(target: &Path, check: &Check<'_>, owner: Option<(u32, u32)>) -> Result<WorkDir, WorkDirError> {
    let bytes = target.as_os_str().as_bytes();
    let trimmed = match bytes.iter().rposition(|&b| b != b'/') {
        Some(end) => &bytes[..=end],
        None => return Err(WorkDirError::Missing { path: target.to_path_buf() }),
    };
    let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => return Err(WorkDirError::Missing { path: target.to_path_buf() }),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return Err(WorkDirError::Missing { path: target.to_path_buf() });
    }
    let parent = Path::new(OsStr::from_bytes(parent));
    let parent_fd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Err(WorkDirError::Missing { path: target.to_path_buf() });
        }
        Err(e) => return Err(WorkDirError::invalid("cannot open parent", Some(parent), Some(e))),
    };
    check.resolve(&parent_fd)?;
    let cname = CString::new(name).map_err(|_| WorkDirError::invalid("NUL in work_dir", None, None))?;
    let created = match sys::mkdirat(parent_fd.as_fd(), &cname, PRIVATE_DIR_MODE) {
        Ok(()) => true,
        // Raced with another creator: the O_NOFOLLOW open and re-check decide.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
        Err(e) => return Err(WorkDirError::invalid("mkdir failed", Some(target), Some(e))),
    };
    let fd = sys::openat_dir_nofollow(parent_fd.as_fd(), &cname)
        .map_err(|e| WorkDirError::invalid("cannot open created dir", Some(target), Some(e)))?;
    if let (true, Some((uid, gid))) = (created, owner) {
        sys::fchown_fd(fd.as_fd(), uid, gid)
            .map_err(|e| WorkDirError::invalid("chown failed", Some(target), Some(e)))?;
    }
    check.verify(fd)
}

/// Creates `path` and any missing parents with mode 0700 (for per-owner HOME
/// dirs). An existing directory is left as it is.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    create_private_dir_all(path, None)
}

/// [`ensure_private_dir`] for a worker identity `owner` (`(uid, gid)`, under
/// `run_as` / `uid_per_owner`): the last component is the worker's (0700,
/// chowned, also when it already existed with another owner: HOME and TMPDIR
/// are gateway-managed paths, and an owner's uid may have been configured
/// after its HOME was made); missing parents stay the gateway's with mode
/// 0711, so every worker uid can traverse to its own directory but list none.
pub fn ensure_private_dir_owned(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    create_private_dir_all(path, owner)?;
    let Some((uid, gid)) = owner else { return Ok(()) };
    let m = fs::symlink_metadata(path)?;
    if !m.is_dir() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"));
    }
    if (m.uid(), m.gid()) != (uid, gid) {
        let parent = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no last component"))?;
        let cname = CString::new(name.as_bytes())?;
        let pfd = open_dir(parent)?;
        // O_NOFOLLOW: a symlink swapped in after the check is refused, not followed.
        let fd = sys::openat_dir_nofollow(pfd.as_fd(), &cname)?;
        sys::fchown_fd(fd.as_fd(), uid, gid)?;
        log::info!("private dir {} given to uid {uid}", path.display());
    }
    Ok(())
}

/// Mode of the parents created above a worker-owned directory.
const TRAVERSE_DIR_MODE: u32 = 0o711;

fn create_private_dir_all(path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    if !path.is_absolute() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "private dir path must be absolute"));
    }
    // Components from the deepest existing ancestor down.
    let mut missing = Vec::new();
    let mut cur = path;
    loop {
        match fs::metadata(cur) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(io::Error::new(io::ErrorKind::AlreadyExists, "not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur);
                match cur.parent() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    for dir in missing.into_iter().rev() {
        let leaf = dir == path;
        // Under a worker identity, parents stay the gateway's but traversable.
        let mode = if owner.is_some() && !leaf { TRAVERSE_DIR_MODE } else { PRIVATE_DIR_MODE };
        match DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => match owner {
                Some((uid, gid)) if leaf => {
                    // lchown: never follows a symlink swapped in after mkdir.
                    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
                }
                // The gateway's umask may have masked the execute bits.
                Some(_) => fs::set_permissions(dir, fs::Permissions::from_mode(TRAVERSE_DIR_MODE))?,
                None => {}
            },
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && fs::metadata(dir).is_ok_and(|m| m.is_dir()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
