//! security.md §6.3 vectors against a temporary root.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A unique temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("hotplex-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(fs::canonicalize(&p).unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Root layout: T/work/ha (alice), T/work/hb (bob), T/work/ha2 (prefix trick).
struct Fixture {
    t: TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let t = TempDir::new("wd");
        let a = t.0.join("work/ha");
        let b = t.0.join("work/hb");
        for d in [a.join("proj"), b.join("proj"), t.0.join("work/ha2")] {
            fs::create_dir_all(d).unwrap();
        }
        symlink("/etc", a.join("etclink")).unwrap();
        symlink(a.join("proj"), a.join("projlink")).unwrap();
        Fixture { t, a, b }
    }

    fn req(&self, requested: Option<&str>) -> WorkDirRequest {
        WorkDirRequest {
            requested: requested.map(str::to_owned),
            roots: vec![self.a.clone()],
            default_dir: self.a.join("sess-1"),
            create: true,
            max_bytes: DEFAULT_MAX_WORK_DIR_BYTES,
            owner: None,
            deny: Vec::new(),
        }
    }

    fn s(&self, p: &Path) -> String {
        p.to_str().unwrap().to_owned()
    }
}

fn ok(req: &WorkDirRequest) -> WorkDir {
    match open_work_dir(req) {
        Ok(w) => w,
        Err(e) => panic!("{:?} refused: {e}", req.requested),
    }
}

fn reason(req: &WorkDirRequest) -> &'static str {
    match open_work_dir(req) {
        Ok(w) => panic!("{:?} accepted as {}", req.requested, w.path.display()),
        Err(e) => e.reason(),
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn absent_uses_default_created_private() {
    let f = Fixture::new();
    let w = ok(&f.req(None));
    assert_eq!(w.path, f.a.join("sess-1"));
    assert_eq!(mode(&w.path), 0o700);
    // Second time: already there.
    assert_eq!(ok(&f.req(None)).path, f.a.join("sess-1"));
}

#[test]
fn default_dir_created_with_parents_and_must_be_inside_root() {
    let f = Fixture::new();
    let mut r = f.req(None);
    r.default_dir = f.a.join("x/y/z");
    assert_eq!(ok(&r).path, f.a.join("x/y/z"));
    assert_eq!(mode(&f.a.join("x")), 0o700);
    r.default_dir = f.b.join("s");
    assert_eq!(reason(&r), "work_dir_escape");
    assert!(!f.b.join("s").exists(), "nothing created outside the root");
    r.default_dir = f.a.join("../hb/s2");
    assert_eq!(reason(&r), "work_dir_escape");
    assert!(!f.b.join("s2").exists());
}

#[test]
fn existing_relative_and_created() {
    let f = Fixture::new();
    assert_eq!(ok(&f.req(Some(&f.s(&f.a.join("proj"))))).path, f.a.join("proj"));
    assert_eq!(ok(&f.req(Some("proj"))).path, f.a.join("proj"));
    assert_eq!(ok(&f.req(Some("proj/"))).path, f.a.join("proj"));
    let w = ok(&f.req(Some(&f.s(&f.a.join("new")))));
    assert_eq!(w.path, f.a.join("new"));
    assert_eq!(mode(&w.path), 0o700);
    assert_eq!(ok(&f.req(Some("new2/"))).path, f.a.join("new2"));
    // The root itself is allowed.
    assert_eq!(ok(&f.req(Some(&f.s(&f.a)))).path, f.a);
}

#[test]
fn missing_parent_or_creation_off() {
    let f = Fixture::new();
    assert_eq!(reason(&f.req(Some(&f.s(&f.a.join("a/b/c"))))), "work_dir_missing");
    assert!(!f.a.join("a").exists());
    let mut r = f.req(Some(&f.s(&f.a.join("new"))));
    r.create = false;
    assert_eq!(reason(&r), "work_dir_missing");
    assert!(!f.a.join("new").exists());
    assert_eq!(reason(&f.req(Some(&f.s(&f.a.join("gone/..").join(""))))), "work_dir_missing");
}

#[test]
fn escapes_are_refused() {
    let f = Fixture::new();
    let cases = [
        f.s(&f.a.join("../hb/proj")),
        f.s(&f.b.join("proj")),
        f.s(&f.a.join("etclink")),
        f.s(&f.t.0.join("work/ha2")),
        "/etc".into(),
        "/".into(),
        "/proc/self/cwd".into(),
        "../../etc".into(),
        "..".into(),
        "/proc/self".into(),
    ];
    for c in cases {
        assert_eq!(reason(&f.req(Some(&c))), "work_dir_escape", "{c}");
    }
    // Creating below an escaping parent is refused before mkdir.
    assert_eq!(reason(&f.req(Some(&f.s(&f.b.join("new"))))), "work_dir_escape");
    assert!(!f.b.join("new").exists());
    assert_eq!(reason(&f.req(Some(&f.s(&f.a.join("etclink/hotplex-new"))))), "work_dir_escape");
}

#[test]
fn symlink_inside_root_resolves() {
    let f = Fixture::new();
    assert_eq!(ok(&f.req(Some(&f.s(&f.a.join("projlink"))))).path, f.a.join("proj"));
}

#[test]
fn malformed_strings() {
    let f = Fixture::new();
    let long = format!("{}/{}", f.s(&f.a), "x".repeat(4096));
    for c in [format!("{}/p\0x", f.s(&f.a)), long, String::new()] {
        assert_eq!(reason(&f.req(Some(&c))), "work_dir_invalid");
    }
    // A regular file is not a directory.
    fs::write(f.a.join("file"), b"x").unwrap();
    assert_eq!(reason(&f.req(Some("file"))), "work_dir_invalid");
}

#[test]
fn resume_after_roots_changed() {
    let f = Fixture::new();
    let stored = ok(&f.req(Some("proj"))).path;
    let mut r = f.req(Some(stored.to_str().unwrap()));
    r.roots = vec![f.b.clone()];
    assert_eq!(reason(&r), "work_dir_escape");
}

#[test]
fn deny_list_wins_inside_root() {
    let f = Fixture::new();
    fs::create_dir_all(f.a.join("data/db")).unwrap();
    let mut r = f.req(Some("data/db"));
    r.deny = vec![f.a.join("data")];
    assert_eq!(reason(&r), "work_dir_escape");
}

#[test]
fn deleted_directory_is_refused() {
    let f = Fixture::new();
    let d = f.a.join("doomed");
    fs::create_dir(&d).unwrap();
    let fd = open_dir(&d).unwrap();
    fs::remove_dir(&d).unwrap();
    let roots = canonical_roots(std::slice::from_ref(&f.a));
    let deny = denied_trees(&[]);
    let err = Check { roots: &roots, deny: &deny }.verify(fd).unwrap_err();
    assert_eq!(err.reason(), "work_dir_invalid");
}

#[test]
fn reasons_never_contain_paths() {
    let f = Fixture::new();
    for c in ["../../etc", "a/b/c", "", "/etc"] {
        if let Err(e) = open_work_dir(&f.req(Some(c))) {
            assert!(!e.reason().contains('/'));
        }
    }
}

#[test]
fn missing_root_is_created_when_allowed() {
    let f = Fixture::new();
    let mut r = f.req(Some("proj9"));
    r.roots = vec![f.t.0.join("work/hc")];
    r.default_dir = f.t.0.join("work/hc");
    let w = ok(&r);
    assert_eq!(w.path, f.t.0.join("work/hc/proj9"));
    assert_eq!(mode(&f.t.0.join("work/hc")), 0o700);
    let mut r2 = f.req(Some("x"));
    r2.roots = vec![f.t.0.join("work/hd")];
    r2.create = false;
    assert_eq!(reason(&r2), "work_dir_missing");
}

#[test]
fn created_dirs_get_the_owner() {
    if sys::getuid() != 0 {
        return; // chown to another uid needs CAP_CHOWN
    }
    let f = Fixture::new();
    let mut r = f.req(Some("owned"));
    r.owner = Some((54321, 54322));
    let w = ok(&r);
    let m = fs::metadata(&w.path).unwrap();
    assert_eq!((m.uid(), m.gid()), (54321, 54322));
    let home = f.t.0.join("home/o1/deep");
    ensure_private_dir_owned(&home, Some((54321, 54322))).unwrap();
    // Parents: the gateway's, traversable; the leaf: the worker's, private.
    assert_eq!(fs::metadata(f.t.0.join("home")).unwrap().uid(), 0);
    assert_eq!(mode(&f.t.0.join("home")), 0o711);
    assert_eq!(fs::metadata(&home).unwrap().uid(), 54321);
    assert_eq!(mode(&home), 0o700);
    // An existing HOME of another uid is handed over.
    ensure_private_dir_owned(&home, Some((54323, 54323))).unwrap();
    assert_eq!(fs::metadata(&home).unwrap().uid(), 54323);
}

#[test]
fn ensure_private_dir_nested_and_idempotent() {
    let t = TempDir::new("home");
    let p = t.0.join("h/owner");
    ensure_private_dir(&p).unwrap();
    ensure_private_dir(&p).unwrap();
    assert_eq!(mode(&t.0.join("h")), 0o700);
    assert_eq!(mode(&p), 0o700);
    fs::write(t.0.join("f"), b"").unwrap();
    assert!(ensure_private_dir(&t.0.join("f")).is_err());
    assert!(ensure_private_dir(&t.0.join("f/sub")).is_err());
    assert!(ensure_private_dir(Path::new("rel/dir")).is_err());
}
