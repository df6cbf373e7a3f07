//! Worker identity through the real binary (security.md §3 "Identity", §3.1
//! vectors "uid/gid with run_as", "Cap* all 0"): `security.worker.run_as`
//! and `security.worker.uid_per_owner` applied in the spawn path, the
//! directories a worker must write handed to its uid, per-owner uids
//! persisted across a restart, range exhaustion, the shared-uid gauge, and
//! the startup sweep of a crashed gateway's run-as workers.
//!
//! Switching uid needs root (or CAP_SETUID/CAP_SETGID/CAP_CHOWN): those
//! tests print "skipped: needs root" and return when run unprivileged.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::sec::*;
use support::*;

/// Unused uids (no passwd entry on a test host), far from system ranges.
const RUN_AS_UID: u32 = 64_001;
const RUN_AS_GID: u32 = 64_002;
const FIRST_UID: u32 = 64_100;

fn needs_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("{test}: skipped: needs root");
        return true;
    }
    false
}

/// `owner_hash` (operations.md, Conventions).
fn owner_hash(owner: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("hotplex-owner\0{owner}").as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The mock agent's `whoami` report.
fn whoami(c: &mut Client, probe: Option<&Path>) -> Value {
    let cmd = match probe {
        Some(p) => format!("whoami {}", p.display()),
        None => "whoami".into(),
    };
    let text = delta_text(&c.turn(&cmd));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("whoami is not JSON ({e}): {text}"))
}

fn assert_no_caps(who: &Value) {
    for k in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(who[k], "0000000000000000", "{k}: {who}");
    }
    assert_eq!(who["setuid0"], false, "setuid(0) must fail: {who}");
}

fn assert_writes(who: &Value) {
    for k in ["write_home", "write_tmpdir", "write_cwd"] {
        assert_eq!(who[k], "ok", "{k}: {who}");
    }
}

/// `uid` as the four ids of a `/proc/<pid>/status` `Uid:`/`Gid:` line.
fn ids(id: u32) -> String {
    format!("{id} {id} {id} {id}")
}

fn metric(gw: &Gateway, name: &str) -> f64 {
    let r = raw::http_get(gw.admin_addr, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// `/metrics` public on the admin listener, for [`metric`].
const METRICS_PUBLIC: &str = "admin:\n  metrics_public: true\n";

fn per_owner_yaml(count: u32) -> String {
    format!("security:\n  worker:\n    uid_per_owner: {{first_uid: {FIRST_UID}, count: {count}}}\n")
}

fn connect_as(gw: &Gateway, key: &str) -> Client {
    Client::connect_with(&gw.url(), &[("X-API-Key", key)]).expect("api key accepted")
}

#[test]
fn run_as_uid_gid_applied_and_turn_works() {
    if needs_root("run_as_uid_gid_applied_and_turn_works") {
        return;
    }
    let yaml = format!("security:\n  worker:\n    run_as: {{uid: {RUN_AS_UID}, gid: {RUN_AS_GID}}}\n");
    let gw = Gateway::start_yaml(&yaml);
    let mut c = gw.connect();
    let sid = c.init_key("whoami")["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    let who = whoami(&mut c, None);
    assert_eq!(who["uid"], ids(RUN_AS_UID), "{who}");
    assert_eq!(who["gid"], ids(RUN_AS_GID), "{who}");
    assert_eq!(who["groups"], "", "no supplementary groups by default: {who}");
    assert_no_caps(&who);
    assert_writes(&who);
    // No passwd entry for the uid: no USER/LOGNAME/SHELL (not the gateway's).
    let env: Value = serde_json::from_str(&delta_text(&c.turn("env"))).unwrap();
    for k in ["USER", "LOGNAME", "SHELL"] {
        assert!(env.get(k).is_none(), "{k} set for a uid without a passwd entry: {env}");
    }
    // The worker's directories are its own, still private.
    let work = gw.dir.path().join("work").join(owner_hash("anonymous"));
    let home = gw.dir.path().join("data/homes").join(owner_hash("anonymous"));
    for d in [&work, &home] {
        let m = std::fs::metadata(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert_eq!((m.uid(), m.gid()), (RUN_AS_UID, RUN_AS_GID), "{}", d.display());
        assert_eq!(m.permissions().mode() & 0o777, 0o700, "{}", d.display());
    }
    // The transcript the mock keeps in HOME survives into a second turn.
    assert_eq!(delta_text(&c.turn("say hello")), "hello");
    assert!(delta_text(&c.turn("recall")).contains("'whoami'"), "transcript in the worker's HOME");
    assert!(home.join(".mock-agent").is_dir(), "the mock's state dir in the private HOME");
    let pid = worker_pid(&gw, &sid);
    assert_eq!(status_field(pid, "Uid").split_whitespace().next(), Some(RUN_AS_UID.to_string().as_str()));
}

#[test]
fn run_as_user_name_is_resolved() {
    if needs_root("run_as_user_name_is_resolved") {
        return;
    }
    let Some(line) = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .map(str::to_owned)
    else {
        println!("run_as_user_name_is_resolved: skipped: no `nobody` account");
        return;
    };
    let f: Vec<&str> = line.split(':').collect();
    let (uid, gid): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
    let gw = Gateway::start_yaml("security:\n  worker:\n    run_as: {user: nobody}\n");
    let mut c = gw.connect();
    c.init_key("nobody");
    let who = whoami(&mut c, None);
    assert_eq!(who["uid"], ids(uid), "{who}");
    assert_eq!(who["gid"], ids(gid), "{who}");
    assert_no_caps(&who);
    assert_writes(&who);
    // USER/LOGNAME/SHELL name the worker identity, not the gateway's (security.md §5.1 row 2).
    let env: Value = serde_json::from_str(&delta_text(&c.turn("env"))).unwrap();
    assert_eq!(env["USER"], "nobody", "{env}");
    assert_eq!(env["LOGNAME"], "nobody", "{env}");
    assert_eq!(env["SHELL"], f[6], "{env}");
    let home = gw.dir.path().join("data/homes").join(owner_hash("anonymous"));
    assert_eq!(env["HOME"], home.display().to_string(), "private HOME, not the passwd one");
}

#[test]
fn uid_per_owner_separates_owners_and_persists() {
    if needs_root("uid_per_owner_separates_owners_and_persists") {
        return;
    }
    let opts = || Options {
        yaml: format!("{}{}{METRICS_PUBLIC}", auth_yaml("[api_key]", 1000), per_owner_yaml(4)),
        env: api_key_env(),
        ..Options::default()
    };
    let gw = Gateway::start_with(opts());
    assert_eq!(metric(&gw, "hotplex_security_shared_worker_uid"), 0.0, "uid_per_owner is on");
    assert!(!gw.stderr().contains("run under one uid"), "no shared-uid warning with uid_per_owner");

    let mut alice = connect_as(&gw, ALICE_KEY);
    alice.init(init_data("a", None, "drive"));
    let a = whoami(&mut alice, None);
    let alice_uid: u32 = a["uid"].as_str().unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_eq!(a["uid"], ids(alice_uid));
    assert_eq!(a["gid"], ids(alice_uid), "gid = uid");
    assert!((FIRST_UID..FIRST_UID + 4).contains(&alice_uid), "{a}");
    assert_no_caps(&a);
    assert_writes(&a);

    let mut bob = connect_as(&gw, BOB_KEY);
    bob.init(init_data("b", None, "drive"));
    let alice_work = gw.dir.path().join("work").join(owner_hash("alice"));
    let b = whoami(&mut bob, Some(&alice_work));
    let bob_uid: u32 = b["uid"].as_str().unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_ne!(alice_uid, bob_uid, "one uid per owner");
    assert!((FIRST_UID..FIRST_UID + 4).contains(&bob_uid), "{b}");
    assert_writes(&b);
    let read = b["read"].as_str().unwrap_or_default();
    assert!(read.contains("Permission denied"), "bob listed alice's work dir: {b}");
    let alice_home = gw.dir.path().join("data/homes").join(owner_hash("alice"));
    assert_eq!(
        whoami(&mut bob, Some(&alice_home))["read"].as_str().map(|r| r.contains("Permission denied")),
        Some(true)
    );
    drop((alice, bob));

    // Persisted: after a restart, bob first, each owner keeps its uid.
    let (_, dir) = gw.stop(Duration::from_secs(15));
    let gw = Gateway::start_in(dir, opts());
    let mut bob = connect_as(&gw, BOB_KEY);
    bob.init(init_data("b2", None, "drive"));
    assert_eq!(whoami(&mut bob, None)["uid"], ids(bob_uid), "bob's uid after a restart");
    let mut alice = connect_as(&gw, ALICE_KEY);
    alice.init(init_data("a2", None, "drive"));
    assert_eq!(whoami(&mut alice, None)["uid"], ids(alice_uid), "alice's uid after a restart");
}

#[test]
fn exhausted_uid_range_is_gateway_overload() {
    if needs_root("exhausted_uid_range_is_gateway_overload") {
        return;
    }
    let gw = auth_gateway("[api_key]", 1000, &per_owner_yaml(1));
    let mut alice = connect_as(&gw, ALICE_KEY);
    alice.init(init_data("a", None, "drive"));
    assert_eq!(whoami(&mut alice, None)["uid"], ids(FIRST_UID));
    let mut bob = connect_as(&gw, BOB_KEY);
    bob.send("init", init_data("b", None, "drive"));
    let e = bob.recv();
    assert_eq!(e["event"]["type"], "error", "{e}");
    assert_eq!(e["event"]["data"]["code"], "GATEWAY_OVERLOAD", "{e}");
    assert!(closed(&mut bob, WAIT), "a refused init closes the connection");
    // Alice is unaffected.
    assert_eq!(delta_text(&alice.turn("say still here")), "still here");
}

#[test]
fn shared_uid_gauge_follows_uid_per_owner() {
    // No worker starts here: runs without root.
    // rlimit_nproc counts every process of the real uid: meaningful only with a worker uid.
    let nproc = "limits:\n  worker:\n    rlimit_nproc: 64\n";
    let gw = auth_gateway("[api_key]", 1000, &format!("{METRICS_PUBLIC}{nproc}"));
    assert_eq!(metric(&gw, "hotplex_security_shared_worker_uid"), 1.0, "alice and bob share the gateway's uid");
    assert!(gw.wait_log("run under one uid", WAIT), "startup warning: {}", gw.stderr());
    assert!(gw.wait_log("rlimit_nproc counts every process", WAIT), "{}", gw.stderr());
    let gw = auth_gateway("[api_key]", 1000, &format!("{}{METRICS_PUBLIC}{nproc}", per_owner_yaml(8)));
    assert_eq!(metric(&gw, "hotplex_security_shared_worker_uid"), 0.0);
    assert!(!gw.stderr().contains("run under one uid"), "{}", gw.stderr());
    assert!(!gw.stderr().contains("rlimit_nproc counts every process"), "{}", gw.stderr());
}

#[test]
fn unknown_run_as_user_refuses_to_start() {
    // A name getpwnam_r cannot resolve must not fall back to the gateway's uid.
    let dir = TempDir::new("runas-unknown");
    let config = dir.path().join("config.yaml");
    let text = base_config(dir.path(), &Options::default()).replace(
        "security:\n  auth:\n    modes: [none]\n",
        "security:\n  auth:\n    modes: [none]\n  worker:\n    run_as: {user: hotplex-no-such-user-q}\n",
    );
    assert!(text.contains("hotplex-no-such-user-q"), "base config layout changed");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(hotplex_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run hotplex");
    assert!(!out.status.success(), "config with an unknown run_as user accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("security.worker.run_as.user: no such user"), "{err}");
}

#[test]
fn crashed_gateway_run_as_orphans_are_swept_at_restart() {
    if needs_root("crashed_gateway_run_as_orphans_are_swept_at_restart") {
        return;
    }
    let yaml = format!("security:\n  worker:\n    run_as: {{uid: {RUN_AS_UID}, gid: {RUN_AS_GID}}}\n");
    let gw = Gateway::start_yaml(&yaml);
    let mut c = gw.connect();
    let sid = c.init_key("orphan")["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    let text = delta_text(&c.turn("grandchild"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let group_child = v["group_child"].as_i64().unwrap_or_else(|| panic!("{text}")) as i32;
    let leader = worker_pid(&gw, &sid);
    assert_eq!(pgid(group_child), Some(leader));
    assert_eq!(status_field(group_child, "Uid").split_whitespace().next(), Some(RUN_AS_UID.to_string().as_str()));
    drop(c);
    let dir = gw.kill9();
    // PDEATHSIG takes the leader; the group child (uid RUN_AS_UID, whose
    // environ the gateway does not read) stays until the restart's sweep.
    assert!(eventually(WAIT, || !faults::alive(leader)), "leader outlived the gateway");
    assert!(faults::alive(group_child), "the group child survives the crash");
    let _gw = Gateway::start_in(dir, Options { yaml, ..Options::default() });
    assert!(
        eventually(Duration::from_secs(5), || !faults::alive(group_child)),
        "group child of a run_as worker survived the restart"
    );
}

/// The deployment the spec recommends: the gateway is not root but holds
/// ambient `CAP_SETUID`, `CAP_SETGID`, `CAP_CHOWN`, `CAP_KILL` (systemd
/// `AmbientCapabilities=`). Per-owner workers still get their uids and no
/// capability at all (§3.1 "gateway started with ambient caps, with run-as").
#[test]
fn non_root_gateway_with_ambient_caps_runs_per_owner_workers() {
    if needs_root("non_root_gateway_with_ambient_caps_runs_per_owner_workers") {
        return;
    }
    let Some(setpriv) = tools::find_tool("SETPRIV", &["setpriv"]) else {
        println!("non_root_gateway_with_ambient_caps_runs_per_owner_workers: skipped: no setpriv");
        return;
    };
    const GATEWAY_UID: u32 = 64_050;
    let dir = TempDir::new("ambient");
    std::os::unix::fs::chown(dir.path(), Some(GATEWAY_UID), Some(GATEWAY_UID)).unwrap();
    let caps = "+setuid,+setgid,+chown,+kill";
    let launcher = vec![
        setpriv.display().to_string(),
        format!("--reuid={GATEWAY_UID}"),
        format!("--regid={GATEWAY_UID}"),
        "--clear-groups".into(),
        format!("--inh-caps={caps}"),
        format!("--ambient-caps={caps}"),
        "--".into(),
    ];
    let gw = Gateway::start_in(
        dir,
        Options {
            yaml: format!("{}{}", auth_yaml("[api_key]", 1000), per_owner_yaml(4)),
            env: api_key_env(),
            launcher,
            ..Options::default()
        },
    );
    assert_eq!(status_field(gw.pid(), "Uid").split_whitespace().next(), Some(GATEWAY_UID.to_string().as_str()));
    assert_ne!(status_field(gw.pid(), "CapAmb"), "0000000000000000", "the gateway holds its ambient caps");

    let mut alice = connect_as(&gw, ALICE_KEY);
    alice.init(init_data("a", None, "drive"));
    let a = whoami(&mut alice, None);
    assert_no_caps(&a);
    assert_writes(&a);
    let alice_uid = a["uid"].as_str().unwrap().split(' ').next().unwrap().to_owned();
    assert_ne!(alice_uid, GATEWAY_UID.to_string());
    let mut bob = connect_as(&gw, BOB_KEY);
    bob.init(init_data("b", None, "drive"));
    let alice_work = gw.dir.path().join("work").join(owner_hash("alice"));
    let b = whoami(&mut bob, Some(&alice_work));
    assert_no_caps(&b);
    assert_writes(&b);
    assert_ne!(b["uid"], a["uid"]);
    assert!(b["read"].as_str().unwrap_or_default().contains("Permission denied"), "{b}");
}
