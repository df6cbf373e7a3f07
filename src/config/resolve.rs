//! Facts the loader establishes about the outside world, once per load:
//! worker programs resolved and pinned (security.md §4, S12) and the file
//! system checks of work-dir roots and paths (S11, operations.md §1.4).
//!
//! Owns: [`Resolved`] (stored inside `Config`, not a YAML key), PATH search,
//! the executable/permission checks, lexical path normalisation. Must not:
//! create, modify or open anything for writing — only `stat`, `canonicalize`
//! and directory lookups (`--check-config` changes nothing).

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::adapters::WorkerType;

/// A worker type that is enabled, with its program pinned to an absolute, canonical path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedWorker {
    pub worker_type: WorkerType,
    /// The program to `execve` (for acpx: the selected agent's, `workers.acpx.agent`).
    pub program: PathBuf,
    /// acpx only: every configured agent name → its resolved program.
    pub agents: Vec<(String, PathBuf)>,
}

/// What loading found out (part of `Config` so that a reload diff sees it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Enabled worker types, in `WorkerType::ALL` order.
    pub workers: Vec<ResolvedWorker>,
    /// Loaded with `--dev` (admin authentication disabled, loopback listeners required).
    pub dev: bool,
    /// JWT verification keys loaded from `security.jwt` (S3), in config order.
    pub jwt_keys: Vec<crate::security::JwtKey>,
}

/// Why a command did not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// Nothing at the path / not on PATH (`enabled: auto` then just stays off).
    NotFound(String),
    /// Found, but unusable or unsafe (S12): always an error.
    Rejected(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(m) | ResolveError::Rejected(m) => f.write_str(m),
        }
    }
}

/// Resolve a configured command (S12): absolute path, or bare name searched on
/// `path_var` (empty and relative entries skipped); canonicalised; a regular
/// executable file, not world-writable, in a directory that is not world-writable
/// unless sticky and root-owned.
pub fn resolve_command(command: &str, path_var: Option<&str>) -> Result<PathBuf, ResolveError> {
    use ResolveError::{NotFound, Rejected};
    if command.is_empty() {
        return Err(Rejected("command is empty".to_string()));
    }
    let candidate = if command.contains('/') {
        let p = Path::new(command);
        if !p.is_absolute() {
            return Err(Rejected(format!(
                "{command:?} is a relative path; give an absolute path or a bare name found on PATH"
            )));
        }
        p.to_path_buf()
    } else {
        let Some(path_var) = path_var else {
            return Err(NotFound(format!("{command:?} not found: PATH is not set")));
        };
        let found = path_var
            .split(':')
            .filter(|dir| !dir.is_empty() && Path::new(dir).is_absolute())
            .map(|dir| Path::new(dir).join(command))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0));
        match found {
            Some(p) => p,
            None => return Err(NotFound(format!("{command:?} not found on PATH"))),
        }
    };
    let canonical =
        std::fs::canonicalize(&candidate).map_err(|_| NotFound(format!("{} does not exist", candidate.display())))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| Rejected(format!("{}: {e}", canonical.display())))?;
    if !meta.is_file() {
        return Err(Rejected(format!("{} is not a regular file", canonical.display())));
    }
    if meta.mode() & 0o111 == 0 {
        return Err(Rejected(format!("{} is not executable", canonical.display())));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(Rejected(format!("{} is world-writable", canonical.display())));
    }
    if let Some(dir) = canonical.parent() {
        let dmeta = std::fs::metadata(dir).map_err(|e| Rejected(format!("{}: {e}", dir.display())))?;
        if dmeta.mode() & 0o002 != 0 && !(dmeta.mode() & 0o1000 != 0 && dmeta.uid() == 0) {
            return Err(Rejected(format!(
                "{} is in the world-writable directory {}",
                canonical.display(),
                dir.display()
            )));
        }
    }
    Ok(canonical)
}

/// Absolute form of `p` against `cwd`, with `.` and `..` removed lexically (no symlinks followed).
pub fn absolutize(p: &Path, cwd: &Path) -> PathBuf {
    let joined = if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The nearest existing ancestor of `p` (or `p` itself) and whether it is `p`.
pub fn nearest_existing(p: &Path) -> Option<(PathBuf, bool)> {
    let mut cur = p.to_path_buf();
    let mut is_self = true;
    loop {
        if std::fs::symlink_metadata(&cur).is_ok() {
            return Some((cur, is_self));
        }
        if !cur.pop() {
            return None;
        }
        is_self = false;
    }
}

/// Canonical form of the existing part of `p`, with the missing rest appended.
pub fn canonical_lenient(p: &Path) -> PathBuf {
    let Some((existing, _)) = nearest_existing(p) else { return p.to_path_buf() };
    let rest = p.strip_prefix(&existing).map(Path::to_path_buf).unwrap_or_default();
    match std::fs::canonicalize(&existing) {
        Ok(c) if rest.as_os_str().is_empty() => c,
        Ok(c) => c.join(rest),
        Err(_) => p.to_path_buf(),
    }
}

/// Whether `dir` is world-writable without the sticky bit (S11); `None` if it cannot be stat-ed.
pub fn world_writable_without_sticky(dir: &Path) -> Option<bool> {
    let m = std::fs::metadata(dir).ok()?;
    Some(m.mode() & 0o002 != 0 && m.mode() & 0o1000 == 0)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Stub executables for tests.
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A fresh temp directory (mode 0755) unique to this test, removed on drop.
    pub struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for TempDir {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn temp_dir(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "hotplex-config-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(d)
    }

    /// Write an executable stub `dir/name` (mode 0755).
    pub fn stub(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn resolves_on_path_and_checks_permissions() {
        let d = temp_dir("resolve");
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let claude = stub(&bin, "claude");
        let path = format!("::relative:{}:/nonexistent", bin.display());
        assert_eq!(resolve_command("claude", Some(&path)).unwrap(), std::fs::canonicalize(&claude).unwrap());
        assert!(resolve_command("claude", Some("relative:")).unwrap_err().to_string().contains("not found on PATH"));
        assert!(resolve_command("./bin/claude", Some(&path)).unwrap_err().to_string().contains("relative"));
        assert!(resolve_command(claude.to_str().unwrap(), None).is_ok());
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(resolve_command("claude", Some(&path)).is_err());
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(resolve_command(claude.to_str().unwrap(), None).unwrap_err().to_string().contains("not executable"));
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(resolve_command("claude", Some(&path)).unwrap_err().to_string().contains("world-writable directory"));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(resolve_command(bin.to_str().unwrap(), None).unwrap_err().to_string().contains("regular file"));
    }

    #[test]
    fn paths() {
        assert_eq!(absolutize(Path::new("data/../x/./y"), Path::new("/srv")), PathBuf::from("/srv/x/y"));
        assert_eq!(absolutize(Path::new("/a/b"), Path::new("/srv")), PathBuf::from("/a/b"));
        let (p, is_self) = nearest_existing(Path::new("/tmp/hotplex-surely-missing/a/b")).unwrap();
        assert_eq!(p, PathBuf::from("/tmp"));
        assert!(!is_self);
    }
}
