//! Configuration hot reload (operations.md §1.8), black box: the real
//! gateway, its config file edited on disk, reloads seen in its log and in
//! what clients experience. Live keys apply without dropping connections,
//! restart-class keys are reported and not applied, an invalid file keeps
//! the running config, and a ConfigMap-style symlink swap is noticed.
mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::sec::{ALICE_KEY, ALICE_KEY_ENV};
use support::*;

/// A poll happens within this (poll_interval 1 s, plus the loop tick and a slow CI).
const RELOAD_WAIT: Duration = Duration::from_secs(15);

fn opts(yaml: String) -> Options {
    Options { yaml, ..Options::default() }
}

/// Write `text` to `path` as editors and deploy tools do: a new file renamed over the old one.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temp config");
    std::fs::rename(&tmp, path).expect("rename config");
}

/// Lines of the gateway's stderr containing `needle`.
fn lines_with(gw: &Gateway, needle: &str) -> Vec<String> {
    gw.stderr().lines().filter(|l| l.contains(needle)).map(String::from).collect()
}

/// Wait until `n` lines contain `needle`; returns the n-th.
fn wait_line(gw: &Gateway, needle: &str, n: usize) -> String {
    let ok = eventually(RELOAD_WAIT, || lines_with(gw, needle).len() >= n);
    assert!(ok, "no {n}. line with {needle:?}; stderr:\n{}", gw.stderr());
    lines_with(gw, needle).swap_remove(n - 1)
}

fn key(k: &str) -> Value {
    json!({"worker_type": "claude_code", "session_id": k})
}

/// `init` is refused with `code` and the connection closed.
fn init_refused(gw: &Gateway, c: Option<Client>, init: Value, code: &str) {
    let mut c = c.unwrap_or_else(|| gw.connect());
    c.send("init", init);
    c.expect_error(code);
    assert_eq!(c.expect_close_only().0, 1008);
}

fn connect_key(gw: &Gateway, k: &str) -> Result<Client, u16> {
    Client::connect_with(&gw.url(), &[("X-API-Key", k)])
}

/// API-key mode with alice's key only; `max_per_owner` 5.
fn api_key_options(poll: &str) -> Options {
    let yaml = format!(
        "security:\n  auth:\n    modes: [api_key]\n  api_keys:\n    - {{owner: alice, env: {ALICE_KEY_ENV}}}\n\
         sessions:\n  max_per_owner: 5\nreload:\n  poll_interval: {poll}\n"
    );
    Options { yaml, env: vec![(ALICE_KEY_ENV.into(), ALICE_KEY.into())], ..Options::default() }
}

/// Alice's key after the rotation in [`rotate_key_and_tighten_limits`].
const ALICE_NEW_KEY: &str = "hpk_alice_rotated_0123456789abcdefghijklmnopqrstuv";

/// Rotate alice's API key (the new one is read from a secret file), lower
/// `max_per_owner` to 1 and the per-connection rate to 1/s with a burst of 3.
fn rotate_key_and_tighten_limits(gw: &Gateway) {
    let file = gw.dir.path().join("alice.key");
    std::fs::write(&file, format!("{ALICE_NEW_KEY}\n")).expect("write key file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod key file");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    let old = format!("    - {{owner: alice, env: {ALICE_KEY_ENV}}}\n");
    let new = format!("    - {{owner: alice, file: \"{}\"}}\n", file.display());
    let rate = "    conn_frames_per_sec: 100000\n    conn_burst: 100000\n";
    for needle in [old.as_str(), "max_per_owner: 5", rate] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    let text = text.replacen(&old, &new, 1).replacen("max_per_owner: 5", "max_per_owner: 1", 1).replacen(
        rate,
        "    conn_frames_per_sec: 1\n    conn_burst: 3\n",
        1,
    );
    write_atomic(&gw.config_path, &text);
}

/// The key paths [`rotate_key_and_tighten_limits`] changes, as the reload reports them.
const ROTATED: &str =
    "applied=[limits.rate.conn_burst,limits.rate.conn_frames_per_sec,security.api_keys,sessions.max_per_owner]";

/// After [`rotate_key_and_tighten_limits`] was applied: alice's connection
/// from before (upgraded with the old key) still runs turns, the new key
/// authenticates a new upgrade, the old key is refused, alice can no longer
/// open a second live session, and the lower rate holds on the old connection.
fn check_applied(gw: &Gateway, alice: &mut Client) {
    let frames = alice.turn("still here");
    assert_eq!(delta_text(&frames), "echo: still here", "the old connection keeps working");
    assert_eq!(connect_key(gw, ALICE_KEY).err(), Some(401), "the old key is refused after the rotation");
    let c = connect_key(gw, ALICE_NEW_KEY).expect("the new key authenticates after the reload");
    init_refused(gw, Some(c), key("alice-2"), "GATEWAY_OVERLOAD");
    // 8 pings at once against a burst of 3: the rest are rejected for the rate.
    for _ in 0..8 {
        alice.send("ping", json!({}));
    }
    let frames = alice.until(WAIT, |v| ev_type(v) == "error");
    assert_eq!(frames.last().map(|v| v["event"]["data"]["code"].clone()), Some(json!("RATE_LIMIT_EXCEEDED")));
    assert!(!gw.stderr().contains(ALICE_NEW_KEY), "a secret reached the log");
}

/// The `config_reload` rows of the audit log: (outcome, reason, detail).
fn audit_reloads(gw: &Gateway) -> Vec<(String, String, Value)> {
    let c = support::store::open_ro(gw.dir.path());
    let mut st = c
        .prepare("SELECT outcome, reason, detail FROM audit_log WHERE kind = 'config_reload' ORDER BY id")
        .expect("prepare");
    st.query_map([], |r| {
        let detail: Option<String> = r.get(2)?;
        Ok((r.get(0)?, r.get(1)?, detail.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(Value::Null)))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// (a) File poll: a limit and an API key change while a session is attached.
#[test]
fn poll_applies_live_keys_without_dropping_connections() {
    let gw = Gateway::start_with(api_key_options("1s"));
    let mut alice = connect_key(&gw, ALICE_KEY).expect("alice connects");
    alice.init_key("alice-1");
    alice.turn("before");
    assert_eq!(connect_key(&gw, ALICE_NEW_KEY).err(), Some(401), "the new key is unknown before the reload");

    rotate_key_and_tighten_limits(&gw);
    let line = wait_line(&gw, "config reloaded trigger=file_poll", 1);
    assert!(line.contains("generation=2 changed=true"), "{line}");
    assert!(line.contains(&format!("{ROTATED} restart_required=[]")), "{line}");
    assert!(line.contains(" INFO "), "{line}");
    check_applied(&gw, &mut alice);
    // The reload is in the audit log, key paths only.
    let mut rows = Vec::new();
    assert!(eventually(WAIT, || {
        rows = audit_reloads(&gw);
        !rows.is_empty()
    }));
    let (outcome, reason, detail) = &rows[0];
    assert_eq!((outcome.as_str(), reason.as_str()), ("ok", "file_poll"), "{rows:?}");
    assert_eq!(detail["generation"], 2, "{detail}");
    assert_eq!(detail["restart_required"], json!([]), "{detail}");
    assert!(detail["applied"].as_array().is_some_and(|a| a.contains(&json!("security.api_keys"))), "{detail}");
}

/// (b) SIGHUP with the poll off, bracketed by sd_notify RELOADING=1 … READY=1.
#[test]
fn sighup_reloads_with_the_poll_off() {
    let sock_dir = TempDir::new("notify");
    let sock_path = sock_dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("an sd_notify datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut o = api_key_options("0s");
    o.env.push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    let gw = Gateway::start_with(o);
    assert_eq!(recv(), "READY=1");
    let mut alice = connect_key(&gw, ALICE_KEY).expect("alice connects");
    alice.init_key("alice-1");

    rotate_key_and_tighten_limits(&gw);
    // The poll is off: the edit alone changes nothing, even after a poll interval's worth.
    assert!(!eventually(Duration::from_millis(1500), || gw.stderr().contains("config reloaded")));
    assert_eq!(connect_key(&gw, ALICE_NEW_KEY).err(), Some(401));

    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(gw.pid(), libc::SIGHUP) };
    let reloading = recv();
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading:?}");
    assert_eq!(recv(), "READY=1");
    let line = wait_line(&gw, "config reloaded trigger=signal", 1);
    assert!(line.contains(ROTATED), "{line}");
    check_applied(&gw, &mut alice);
}

/// (c) Restart-class keys are reported (WARN) and not applied; live keys
/// changed with them are; the report repeats until a restart.
#[test]
fn restart_class_keys_are_reported_not_applied() {
    let gw = Gateway::start_with(opts("sessions:\n  max_per_owner: 5\nreload:\n  poll_interval: 1s\n".into()));
    let mut a = gw.connect();
    a.init_key("a-1");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    let text = text
        .replacen("listen: \"127.0.0.1:0\"", "listen: \"127.0.0.1:1\"", 1)
        .replacen("store:\n", "store:\n  queue_capacity: 4096\n", 1)
        .replacen("max_per_owner: 5", "max_per_owner: 1", 1);
    write_atomic(&gw.config_path, &text);

    let line = wait_line(&gw, "config reloaded trigger=file_poll", 1);
    assert!(line.contains("applied=[sessions.max_per_owner]"), "{line}");
    assert!(line.contains("restart_required=[gateway.listen,store.queue_capacity]"), "{line}");
    assert!(line.contains(" WARN "), "restart-required is a warning: {line}");
    // Still listening where it did; the live key took effect.
    let mut b = gw.connect();
    b.send("init", key("b-1"));
    b.expect_error("GATEWAY_OVERLOAD");
    a.turn("still here");

    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(gw.pid(), libc::SIGHUP) };
    let again = wait_line(&gw, "config reloaded trigger=signal", 1);
    assert!(again.contains("changed=false applied=[]"), "{again}");
    assert!(again.contains("restart_required=[gateway.listen,store.queue_capacity]"), "still pending: {again}");
}

/// (d) An invalid file: WARN naming the key, reported once while it stays
/// broken (but retried), running config unchanged; the fix then applies.
#[test]
fn invalid_file_keeps_the_running_config_until_fixed() {
    let gw = Gateway::start_with(opts("sessions:\n  max_per_owner: 1\nreload:\n  poll_interval: 1s\n".into()));
    let mut a = gw.connect();
    a.init_key("a-1");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    let broken = text.replacen("max_per_owner: 1", "max_per_owner: 3", 1).replacen(
        "gateway:\n",
        "gateway:\n  ping_interval: \"0s\"\n",
        1,
    );
    write_atomic(&gw.config_path, &broken);

    let line = wait_line(&gw, "config reload rejected: config error: gateway.ping_interval", 1);
    assert!(line.contains(" WARN "), "{line}");
    // Retried at later polls, not reported again.
    wait_line(&gw, "config reload retried", 2);
    assert_eq!(lines_with(&gw, "config reload rejected trigger=file_poll").len(), 1, "{}", gw.stderr());
    // One audit row for the rejection, naming the key; quiet retries add none.
    let rows = audit_reloads(&gw);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("error", "file_poll"), "{rows:?}");
    assert_eq!(rows[0].2["errors"], json!(["gateway.ping_interval"]), "{rows:?}");
    init_refused(&gw, None, key("a-2"), "GATEWAY_OVERLOAD");
    a.turn("unaffected");

    write_atomic(&gw.config_path, &broken.replacen("ping_interval: \"0s\"", "ping_interval: \"30s\"", 1));
    let line = wait_line(&gw, "config reloaded trigger=file_poll", 1);
    assert!(line.contains("generation=2 changed=true applied=[sessions.max_per_owner]"), "{line}");
    let mut c = gw.connect();
    c.init_key("a-2");
    c.turn("now allowed");
}

/// (e) Kubernetes ConfigMap layout: `config.yaml -> ..data/config.yaml`,
/// `..data -> <version dir>`, updated by swapping `..data`. The new file has
/// the old one's size and mtime; only the inode tells them apart.
#[test]
fn configmap_symlink_swap_is_seen() {
    let gw = Gateway::start_with(opts("sessions:\n  max_per_owner: 5\nreload:\n  poll_interval: 1s\n".into()));
    let mut a = gw.connect();
    a.init_key("a-1");
    let dir = gw.dir.path().join("cm");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    std::fs::create_dir_all(dir.join("v1")).expect("mkdir");
    std::fs::write(dir.join("v1/config.yaml"), &text).expect("write v1");
    std::os::unix::fs::symlink("v1", dir.join("..data")).expect("symlink ..data");
    let link = gw.dir.path().join("config.yaml.link");
    std::os::unix::fs::symlink("cm/..data/config.yaml", &link).expect("symlink config");
    std::fs::rename(&link, &gw.config_path).expect("replace config by the symlink");
    // Same content behind a symlink: a reload with nothing to apply.
    let line = wait_line(&gw, "config reloaded trigger=file_poll", 1);
    assert!(line.contains("generation=1 changed=false applied=[]"), "{line}");

    std::fs::create_dir_all(dir.join("v2")).expect("mkdir");
    let v2 = dir.join("v2/config.yaml");
    std::fs::write(&v2, text.replacen("max_per_owner: 5", "max_per_owner: 1", 1)).expect("write v2");
    let old = std::fs::metadata(dir.join("v1/config.yaml")).expect("stat v1");
    let f = std::fs::File::options().write(true).open(&v2).expect("open v2");
    f.set_modified(old.modified().expect("mtime")).expect("set mtime");
    drop(f);
    let new = std::fs::metadata(&v2).expect("stat v2");
    assert_eq!((new.len(), new.modified().ok()), (old.len(), old.modified().ok()));
    std::os::unix::fs::symlink("v2", dir.join("..data.new")).expect("symlink");
    std::fs::rename(dir.join("..data.new"), dir.join("..data")).expect("swap ..data");

    let line = wait_line(&gw, "config reloaded trigger=file_poll", 2);
    assert!(line.contains("generation=2 changed=true applied=[sessions.max_per_owner]"), "{line}");
    init_refused(&gw, None, key("a-2"), "GATEWAY_OVERLOAD");
    a.turn("still attached");
}

/// `workers.<type>.enabled: false` on reload: new inits of that type get
/// CONFIG_INVALID; a live session continues, even through a reset (a new
/// worker process for a session that was live before the switch).
#[test]
fn disabling_a_worker_type_spares_live_sessions() {
    let gw = Gateway::start_with(opts("reload:\n  poll_interval: 1s\n".into()));
    let mut a = gw.connect();
    a.init_key("a-1");
    a.turn("alpha");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    assert!(text.contains("    enabled: true\n"), "{text}");
    write_atomic(&gw.config_path, &text.replacen("    enabled: true\n", "    enabled: false\n", 1));
    let line = wait_line(&gw, "config reloaded trigger=file_poll", 1);
    assert!(line.contains("applied=[workers.claude_code.enabled]"), "{line}");

    init_refused(&gw, None, key("b-1"), "CONFIG_INVALID");
    assert_eq!(delta_text(&a.turn("recall")), "Earlier prompts: 'alpha'", "the live session continues");
    a.send("control", json!({"action": "reset"}));
    let frames = a.until(WAIT, |v| is_state(v, "idle"));
    assert_eq!(frames.last().map(|f| f["event"]["data"]["message"].clone()), Some(json!("context_reset")));
    assert_eq!(delta_text(&a.turn("recall")), "Earlier prompts: (none)", "a fresh worker after the reset");
}

/// `gateway.max_message_bytes` applies to messages read after the swap, also
/// on connections upgraded before it, and to later `init_ack`s.
#[test]
fn message_bound_applies_to_open_connections() {
    let gw = Gateway::start_with(opts("gateway:\n  max_message_bytes: 64KiB\nreload:\n  poll_interval: 1s\n".into()));
    let mut a = gw.connect();
    a.init_key("a-1");
    let big = "x".repeat(4096);
    assert_eq!(delta_text(&a.turn(&big)), format!("echo: {big}"), "4 KiB fit before the reload");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    write_atomic(&gw.config_path, &text.replacen("max_message_bytes: 64KiB", "max_message_bytes: 1KiB", 1));
    let line = wait_line(&gw, "config reloaded trigger=file_poll", 1);
    assert!(line.contains("applied=[gateway.max_message_bytes]"), "{line}");

    let mut b = gw.connect();
    let ack = b.init_key("b-1");
    assert_eq!(ack["event"]["data"]["server_caps"]["max_frame_size"], 1024, "{ack}");
    a.send("input", json!({"content": big}));
    assert_eq!(a.expect_close().0, 1009, "the open connection reads with the new bound");
}

/// The new `prom` admin token after the rotation in [`admin_reload_reports_and_applies`].
const PROM_NEW: &str = "prom_rotated_0123456789abcdefghijklmnopqrstuv";

/// `POST /admin/config/reload` (operations.md §4.2): an invalid file is
/// answered 400 naming the key and changes nothing; a valid one answers the
/// report (applied and restart-required key paths), rotates an admin token
/// at once (old refused, new accepted), applies a session limit and leaves
/// `gateway.listen` pending; a session attached before keeps working.
#[test]
fn admin_reload_reports_and_applies() {
    use support::admin::{OPS, READER, assert_error, call, gateway_with};
    let gw = gateway_with(
        "sessions:\n  max_per_owner: 5\nreload:\n  poll_interval: 0s\n",
        vec![("T_PROM_NEW".into(), PROM_NEW.into())],
    );
    let admin = gw.admin_addr;
    let reload = || call(admin, "POST", "/admin/config/reload", Some(OPS), None);
    let mut a = gw.connect();
    a.init_key("a-1");
    let text = std::fs::read_to_string(&gw.config_path).expect("read config");

    write_atomic(&gw.config_path, &text.replacen("gateway:\n", "gateway:\n  ping_interval: \"0s\"\n", 1));
    let body = assert_error(&reload(), 400, "config_invalid");
    let keys: Vec<&Value> =
        body["error"]["details"]["errors"].as_array().into_iter().flatten().map(|e| &e["key"]).collect();
    assert_eq!(keys, vec![&json!("gateway.ping_interval")], "{body}");
    assert_eq!(call(admin, "GET", "/admin/config", Some(OPS), None).json()["generation"], 1, "nothing applied");

    let prom = "{name: prom, scopes: [read], env: T_READER}";
    assert!(text.contains(prom), "{text}");
    let edited = text
        .replacen(prom, "{name: prom, scopes: [read], env: T_PROM_NEW}", 1)
        .replacen("max_per_owner: 5", "max_per_owner: 1", 1)
        .replacen("listen: \"127.0.0.1:0\"", "listen: \"127.0.0.1:1\"", 1);
    write_atomic(&gw.config_path, &edited);
    let r = reload();
    assert_eq!(r.status, 200, "{}", r.body);
    let report = r.json();
    assert_eq!(report["generation"], 2, "{report}");
    assert_eq!(report["changed"], true, "{report}");
    assert_eq!(report["applied"], json!(["admin.tokens", "sessions.max_per_owner"]), "{report}");
    assert_eq!(report["restart_required"], json!(["gateway.listen"]), "{report}");

    assert_eq!(call(admin, "GET", "/admin/stats", Some(READER), None).status, 401, "the old token is refused");
    assert_eq!(call(admin, "GET", "/admin/stats", Some(PROM_NEW), None).status, 200, "the new token works");
    let cfg = call(admin, "GET", "/admin/config", Some(OPS), None).json();
    assert_eq!(cfg["pending_restart"], json!(["gateway.listen"]), "{cfg}");
    assert_eq!(cfg["config"]["gateway"]["listen"], "127.0.0.1:0", "the running listener, not the file's");
    init_refused(&gw, None, key("a-2"), "GATEWAY_OVERLOAD");
    assert_eq!(delta_text(&a.turn("still here")), "echo: still here", "the session attached before keeps working");
}
