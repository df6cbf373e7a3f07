//! The worker sandbox seen from outside, through the real binary
//! (security.md §3.1, §4.1, §5.4, §6.3, §7.5): the environment a worker gets
//! (the mock agent's `env` dump, and the real `claude` running `env` in its
//! Bash tool), the process state of a running worker read from /proc, work
//! dir confinement, argv construction and the tool policy applied to
//! `init.config`.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::sec::*;
use support::*;

/// Canaries in the gateway's environment (security.md §5.4): none of these
/// names or values may reach a worker.
const CANARIES: [(&str, &str); 9] = [
    ("HOTPLEX_ADMIN_TOKEN_X", "canary-secret-1"),
    ("UNLISTED_CANARY", "canary-2"),
    ("LD_PRELOAD", "/nonexistent.so"),
    ("NODE_OPTIONS", "--require=/tmp/x.js"),
    ("SSH_AUTH_SOCK", "/tmp/canary-agent.sock"),
    ("AWS_SECRET_ACCESS_KEY", "canary-aws-secret"),
    ("CLAUDECODE", "1"),
    ("MY_KEY_SRC", BOB_KEY),
    (ALICE_KEY_ENV, ALICE_KEY),
];

/// Values that must not appear anywhere in a worker's environment.
const CANARY_VALUES: [&str; 7] = [
    "canary-secret-1",
    "canary-2",
    "/nonexistent.so",
    "--require=/tmp/x.js",
    "canary-agent",
    "canary-aws-secret",
    "hpk_",
];

/// `owner_hash` (operations.md, Conventions): 16 hex of SHA-256("hotplex-owner\0" ‖ owner).
fn owner_hash(owner: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("hotplex-owner\0{owner}").as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the current uid has a passwd entry (then USER, LOGNAME, SHELL are set).
fn has_passwd_entry() -> bool {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').nth(2) == Some(uid.to_string().as_str()))
}

/// The env dump of the mock agent (`env` script) as a JSON object.
fn env_dump(c: &mut Client) -> serde_json::Map<String, Value> {
    let frames = c.turn("env");
    let text = delta_text(&frames);
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("env dump is not JSON ({e}): {text}"))
        .as_object()
        .cloned()
        .expect("object")
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Gateway env for the canary tests: the canaries, a PATH with empty, `.` and
/// relative entries, and what the worker needs.
fn canary_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = CANARIES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push((BOB_KEY_ENV.into(), BOB_KEY.into()));
    env.push(("PATH".into(), "/usr/bin::.:bin:/bin".into()));
    env.push(("ANTHROPIC_API_KEY".into(), "sk-test".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// API-key owners; `MY_KEY_SRC` is a secret source that does not look like one.
const CANARY_YAML: &str = "security:\n  auth:\n    modes: [api_key]\n  api_keys:\n    - {owner: alice, env: HOTPLEX_API_KEY_ALICE}\n    - {owner: bob, env: MY_KEY_SRC}\n";

#[test]
fn worker_env_is_exactly_the_allowed_set() {
    let gw = Gateway::start_with(Options { yaml: CANARY_YAML.into(), env: canary_env(&[]), ..Options::default() });
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    let sid = c.init(init_data("env", None, "drive"))["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    let env = env_dump(&mut c);

    let mut want: BTreeSet<&str> = [
        "LANG",
        "TERM",
        "PATH",
        "HOME",
        "TMPDIR",
        "PWD",
        "DISABLE_TELEMETRY",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "ANTHROPIC_API_KEY",
        "HOTPLEX_SESSION_ID",
        "HOTPLEX_INSTANCE_ID",
        "HOTPLEX_WORKER_TYPE",
    ]
    .into();
    if has_passwd_entry() {
        want.extend(["USER", "LOGNAME", "SHELL"]);
    }
    let got: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(got, want, "worker env names: {env:#?}");
    for (name, value) in &env {
        let value = value.as_str().unwrap_or_default();
        for canary in CANARY_VALUES {
            assert!(!value.contains(canary), "{name} carries canary {canary:?}");
        }
    }
    assert_eq!(env["PATH"], "/usr/bin:/bin");
    assert_eq!(env["LANG"], "C.UTF-8");
    assert_eq!(env["TERM"], "dumb");
    assert_eq!(env["ANTHROPIC_API_KEY"], "sk-test");
    assert_eq!(env["HOTPLEX_SESSION_ID"], sid.as_str());
    assert_eq!(env["HOTPLEX_WORKER_TYPE"], "claude_code");
    let ha = owner_hash("alice");
    let work = std::fs::canonicalize(gw.dir.path().join("work").join(&ha)).expect("alice's work dir");
    assert_eq!(env["PWD"], work.to_str().unwrap());
    assert_eq!(std::fs::read_link(format!("/proc/{}/cwd", worker_pid(&gw, &sid))).unwrap(), work);
    let home = PathBuf::from(env["HOME"].as_str().unwrap());
    assert!(home.ends_with(&ha), "private per-owner HOME: {home:?}");
    assert_eq!(mode_of(&home), 0o700);
    let tmp = PathBuf::from(env["TMPDIR"].as_str().unwrap());
    assert!(tmp.ends_with(&sid), "per-session TMPDIR: {tmp:?}");
    assert_eq!(mode_of(&tmp), 0o700);
    assert_eq!(mode_of(&work), 0o700);
    // The same through /proc: nothing else was added after the agent started.
    let environ = std::fs::read(format!("/proc/{}/environ", worker_pid(&gw, &sid))).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for (name, value) in CANARIES {
        assert!(!environ.contains(&format!("{name}=")), "{name} in /proc environ");
        if value.len() > 1 {
            assert!(!environ.contains(value), "{value} in /proc environ");
        }
    }
}

/// security.md §5.3 "Secret values": an operator copied alice's API key into
/// the provider variable the worker gets → the spawn is refused
/// (WORKER_START_FAILED), the log names the variable and never the value.
#[test]
fn worker_env_carrying_a_gateway_secret_refuses_the_spawn() {
    let env = canary_env(&[("ANTHROPIC_API_KEY", &format!("prefix-{ALICE_KEY}"))]);
    let gw = Gateway::start_with(Options { yaml: CANARY_YAML.into(), env, ..Options::default() });
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY)]).expect("bob");
    let e = init_refused(&mut c, init_data("leak", None, "drive"), "WORKER_START_FAILED");
    assert!(!e.to_string().contains(ALICE_KEY) && !e.to_string().contains("ANTHROPIC"), "{e}");
    assert!(processes_of_session(&session_id("bob", "claude_code", "leak")).is_empty());
    assert!(gw.wait_log("ANTHROPIC_API_KEY contains a gateway secret", WAIT), "the log names the variable");
    assert!(!gw.stderr().contains(ALICE_KEY), "the log never carries the value");
}

/// The real Claude Code CLI runs `env` through its Bash tool (the mock model
/// asks for it): the output shows no canary. (`CLAUDECODE=1` is set by the CLI
/// itself for its tool shells, so only the other canaries are checked.)
#[test]
fn real_claude_bash_env_shows_no_canary() {
    let mock = mock_model::MockModel::start();
    let env = canary_env(&[("ANTHROPIC_BASE_URL", &mock.base_url()), ("CLAUDE_CODE_MAX_RETRIES", "1")]);
    let yaml = format!(
        "{CANARY_YAML}workers:\n  claude_code:\n    enabled: true\n    command: \"claude\"\n    env:\n      CLAUDE_CODE_MAX_RETRIES: \"1\"\n"
    );
    let mut env = env;
    // claude needs node on PATH: keep the harness PATH's absolute entries after the bad ones.
    let harness_path = std::env::var("PATH").unwrap_or_default();
    if let Some(p) = env.iter_mut().find(|(k, _)| k == "PATH") {
        p.1 = format!("/usr/bin::.:bin:/bin:{harness_path}");
    }
    let gw = Gateway::start_with(Options { yaml, worker_command: "claude".into(), env, ..Options::default() });
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    c.init(init_data("claude-env", None, "drive"));
    c.send("input", json!({"content": "[[tool:bash:env]]"}));
    let mut answered = false;
    let frames = c.until(Duration::from_secs(90), |v| {
        if ev_type(v) == "permission_request" && !answered {
            answered = true;
            return true;
        }
        is_state(v, "idle")
    });
    let mut frames = frames;
    if answered {
        let req = frames.last().unwrap().clone();
        c.send("permission_response", json!({"id": req["event"]["data"]["id"], "allowed": true}));
        frames.extend(c.until(Duration::from_secs(90), |v| is_state(v, "idle")));
    }
    let call =
        frames.iter().find(|f| ev_type(f) == "tool_call").unwrap_or_else(|| panic!("claude ran no tool: {frames:#?}"));
    assert_eq!(call["event"]["data"]["input"]["command"], "env");
    let id = &call["event"]["data"]["id"];
    let out = frames
        .iter()
        .find(|f| ev_type(f) == "tool_result" && &f["event"]["data"]["id"] == id)
        .and_then(|f| f["event"]["data"]["output"].as_str())
        .unwrap_or_else(|| panic!("no tool_result: {frames:#?}"))
        .to_owned();
    assert!(out.contains("HOTPLEX_SESSION_ID="), "the tool output is the env listing: {out}");
    for canary in CANARY_VALUES {
        assert!(!out.contains(canary), "canary {canary:?} in claude's Bash env:\n{out}");
    }
    for (name, _) in CANARIES.iter().filter(|(n, _)| *n != "CLAUDECODE") {
        assert!(!out.lines().any(|l| l.starts_with(&format!("{name}="))), "{name} in claude's Bash env:\n{out}");
    }
    let path = out.lines().find_map(|l| l.strip_prefix("PATH=")).expect("PATH in env output");
    assert!(path.split(':').all(|e| e.starts_with('/')), "PATH has empty or relative entries: {path}");
}

/// A wrapper worker: records its own /proc status with shell builtins only
/// (the state the gateway handed over at exec, before a runtime changes it:
/// Rust's std ignores SIGPIPE, and dash blocks signals while it waits for a
/// forked command), then execs the mock.
fn wrapper(dir: &Path) -> PathBuf {
    let script = dir.join("worker.sh");
    let text = format!(
        "#!/bin/sh\nwhile IFS= read -r l; do case $l in Sig*|NoNewPrivs:*|Cap*|Umask:*) echo \"$l\";; esac; done < /proc/$$/status > '{}/status-'$$\nexec '{}' \"$@\"\n",
        dir.display(),
        mock_agent_bin()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn worker_process_state() {
    let scripts = TempDir::new("sandbox-wrapper");
    let gw = Gateway::start_with(Options {
        worker_command: wrapper(scripts.path()).display().to_string(),
        ..Options::default()
    });
    let mut c = gw.connect();
    let sid = c.init_key("proc")["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    c.send("input", json!({"content": "hang"}));
    c.until(WAIT, |v| is_state(v, "running"));
    let pid = worker_pid(&gw, &sid);

    // At exec (the wrapper shell's own status). `running` only says the input
    // was queued to the worker's stdin: the wrapper may still be writing.
    let report = scripts.path().join(format!("status-{pid}"));
    let at_exec = {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match std::fs::read_to_string(&report) {
                Ok(t) if t.contains("NoNewPrivs") => break t,
                _ if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(10)),
                other => panic!("wrapper report: {other:?}"),
            }
        }
    };
    for (key, want) in [
        ("SigBlk", "0000000000000000"),
        ("SigIgn", "0000000000000000"),
        ("NoNewPrivs", "1"),
        ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapEff", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("Umask", "0077"),
    ] {
        assert_eq!(field(&at_exec, key), want, "{key} at exec");
    }
    // The running worker (the mock, same pid after exec): wait for the exec,
    // the shell may still hold its redirection fds.
    let exec_deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|e| e.to_string_lossy().contains("hotplex-mock-agent"))
    {
        assert!(std::time::Instant::now() < exec_deadline, "the wrapper never exec'd the mock agent");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(pgid(pid), Some(pid), "own process group");
    assert_ne!(pgid(pid), pgid(gw.pid()), "not the gateway's group");
    assert_eq!(ppid(pid), Some(gw.pid()));
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    assert_eq!(status_field(pid, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(pid, "Umask"), "0077");
    let fds: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds, BTreeSet::from(["0".into(), "1".into(), "2".into()]), "only stdio is inherited");
    let work = std::fs::canonicalize(gw.dir.path().join("work").join(owner_hash("anonymous"))).unwrap();
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), work);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).expect("core limit");
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "RLIMIT_CORE soft: {core}");
    c.send("control", json!({"action": "interrupt"}));
    c.until(WAIT, |v| is_state(v, "idle"));
}

// ------------------------------------------------------------------ work dir

/// Two owners' private roots, prepared like the gateway would (0700), with the
/// fixture tree of security.md §6.3.
struct Tree {
    a: PathBuf,
    b: PathBuf,
}

fn tree(gw_dir: &Path) -> Tree {
    let work = gw_dir.join("work");
    let a = work.join(owner_hash("alice"));
    let b = work.join(owner_hash("bob"));
    for d in [&a.join("proj"), &b.join("proj"), &PathBuf::from(format!("{}2", a.display()))] {
        std::fs::create_dir_all(d).unwrap();
    }
    for d in [&work, &a, &b] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    symlink("/etc", a.join("link")).unwrap();
    symlink(a.join("proj"), a.join("inlink")).unwrap();
    symlink(&b, a.join("tobob")).unwrap();
    Tree { a, b }
}

fn alice_init(gw: &Gateway, key: &str, config: Value) -> (Client, Value) {
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    let mut d = init_data(key, None, "drive");
    d["config"] = config;
    c.send("init", d);
    let v = c.recv();
    (c, v)
}

#[test]
fn work_dir_escapes_are_refused_without_a_path() {
    let gw = auth_gateway("[api_key]", 100_000, "");
    let t = tree(gw.dir.path());
    let a = t.a.display().to_string();
    let ha = owner_hash("alice");
    let refused: Vec<String> = vec![
        format!("{a}/../{}/proj", owner_hash("bob")),
        format!("{}/proj", t.b.display()),
        format!("{a}/link"),
        format!("{a}/tobob"),
        format!("{a}/a/b/c"),
        format!("{a}2"),
        "../../etc".into(),
        "../..".into(),
        "/etc".into(),
        "/".into(),
        "/proc/self/cwd".into(),
        "/proc/self/root/etc".into(),
        format!("{a}/p\u{0}x"),
        format!("{a}/{}", "x".repeat(4097 - a.len() - 1)),
        String::new(),
    ];
    assert_eq!(refused[13].len(), 4097);
    for (i, wd) in refused.iter().enumerate() {
        let key = format!("wd{i}");
        let (mut c, e) = alice_init(&gw, &key, json!({"work_dir": wd}));
        assert_eq!(ev_type(&e), "error", "work_dir {wd:?} accepted: {e}");
        if e["event"]["data"]["code"] == "INVALID_MESSAGE" {
            // (an empty or NUL-bearing string may already fail the decoder; equally refused)
            assert!(wd.is_empty() || wd.contains('\0'), "{wd:?}: {e}");
        } else {
            assert_eq!(e["event"]["data"]["code"], "CONFIG_INVALID", "work_dir {wd:?}: {e}");
        }
        let text = e.to_string();
        for leak in [gw.dir.path().to_str().unwrap(), &ha, "/etc", "/proc", "/tmp"] {
            assert!(!text.contains(leak), "error for {wd:?} leaks {leak}: {text}");
        }
        assert_eq!(c.expect_close().0, 1008, "{wd:?}");
        assert!(processes_of_session(&session_id("alice", "claude_code", &key)).is_empty(), "{wd:?}: a worker ran");
    }
    assert!(!t.a.join("a").exists(), "no directory was created for a missing parent");
}

#[test]
fn work_dir_allowed_cases() {
    let gw = auth_gateway("[api_key]", 100_000, "");
    let t = tree(gw.dir.path());
    let proj = std::fs::canonicalize(t.a.join("proj")).unwrap();
    let cases: Vec<(String, PathBuf)> = vec![
        ("proj".into(), proj.clone()),
        (t.a.join("proj").display().to_string(), proj.clone()),
        (t.a.join("inlink").display().to_string(), proj.clone()),
        (t.a.join("new").display().to_string(), t.a.join("new")),
        ("fresh".into(), t.a.join("fresh")),
        (format!("{}/proj/../proj", t.a.display()), proj.clone()),
        (format!("{}/proj/.", t.a.display()), proj.clone()),
    ];
    for (i, (wd, want)) in cases.iter().enumerate() {
        let key = format!("ok{i}");
        let (mut c, ack) = alice_init(&gw, &key, json!({"work_dir": wd}));
        assert_eq!(ev_type(&ack), "init_ack", "work_dir {wd:?}: {ack}");
        let sid = ack["event"]["data"]["session_id"].as_str().unwrap();
        let pid = worker_pid(&gw, sid);
        assert_eq!(&std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), want, "{wd:?}");
        assert_eq!(delta_text(&c.turn("say ok")), "ok");
    }
    assert_eq!(mode_of(&t.a.join("new")), 0o700, "created 0700");
}

// ------------------------------------------------------------------ argv

#[test]
fn argv_slots_are_single_validated_elements() {
    let yaml = "security:\n  tools:\n    allowed: [Read, Grep, Bash]\n";
    let gw = Gateway::start_yaml(yaml);
    let children_before = children_of(gw.pid()).len();
    for (i, config) in [
        json!({"model": "--mcp-config=/tmp/x.json"}),
        json!({"model": "x; touch /tmp/pwned"}),
        json!({"model": "a b"}),
        json!({"model": "m".repeat(129)}),
        json!({"model": ""}),
        json!({"model": "-m"}),
        json!({"allowed_tools": ["Read", "--dangerously-skip-permissions"]}),
        json!({"allowed_tools": ["Bash(a,b)"]}),
        json!({"allowed_tools": (0..65).map(|i| format!("T{i}")).collect::<Vec<_>>()}),
        json!({"disallowed_tools": ["--help"]}),
        json!({"max_turns": 0}),
        json!({"max_turns": 201}),
        json!({"max_turns": 5.5}),
        json!({"permission_mode": "--dangerously-skip-permissions"}),
        json!({"system_prompt": "a\u{0}b"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = gw.connect();
        let key = format!("argv{i}");
        c.send("init", json!({"worker_type": "claude_code", "session_id": key, "config": config}));
        c.expect_error("CONFIG_INVALID");
        assert_eq!(c.expect_close().0, 1008, "{config}");
        assert!(processes_of_session(&session_id("anonymous", "claude_code", &key)).is_empty());
    }
    assert_eq!(children_of(gw.pid()).len(), children_before, "nothing was spawned");
    assert!(!Path::new("/tmp/pwned").exists());
    // Wrong JSON types are INVALID_MESSAGE.
    for config in [json!({"max_turns": "5"}), json!({"model": 5}), json!({"allowed_tools": "Read"})] {
        let mut c = gw.connect();
        c.send("init", json!({"worker_type": "claude_code", "config": config}));
        c.expect_error("INVALID_MESSAGE");
    }

    // Accepted values are one `--flag=value` element each; the prompt is never argv.
    let mut c = gw.connect();
    let cfg = json!({"model": "claude-sonnet-4-5", "allowed_tools": ["Bash(git log:*)"], "max_turns": 5});
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "argv-ok", "config": cfg}));
    let pid = worker_pid(&gw, ack["event"]["data"]["session_id"].as_str().unwrap());
    let argv = cmdline(pid);
    assert_eq!(argv[0], mock_agent_bin(), "the pinned binary, no shell: {argv:?}");
    assert!(argv.iter().any(|a| a == "--model=claude-sonnet-4-5"), "{argv:?}");
    assert!(!argv.iter().any(|a| a == "--model"), "no separate --model element: {argv:?}");
    assert!(argv.iter().any(|a| a == "--allowed-tools=Bash(git log:*)"), "{argv:?}");
    assert!(argv.iter().any(|a| a == "--max-turns=5"), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("dangerously")), "{argv:?}");
    c.turn("--help");
    assert_eq!(cmdline(pid), argv, "input never reaches argv");
}

// ------------------------------------------------------------------ tool policy

#[test]
fn tool_policy_in_init_config() {
    let yaml =
        "security:\n  tools:\n    allowed: [Read, Grep]\n    denied: [WebFetch]\nworker:\n  permission_timeout: 1s\n";
    let gw = Gateway::start_yaml(yaml);
    for config in [
        json!({"allowed_tools": ["Read", "Bash"]}),
        json!({"allowed_tools": ["Bash(git status:*)"]}),
        json!({"permission_mode": "bypassPermissions"}),
        json!({"permission_mode": "acceptEdits"}),
        json!({"permission_mode": "dontAsk"}),
        json!({"permission_mode": "auto-accept"}),
    ] {
        let mut c = gw.connect();
        c.send("init", json!({"worker_type": "claude_code", "config": config}));
        let e = c.expect_error("CONFIG_INVALID");
        assert!(!e.to_string().contains("Grep"), "the server policy is not echoed: {e}");
        assert_eq!(c.expect_close().0, 1008);
    }
    // Narrowing works, denials add up; the effective lists reach the agent's argv.
    let mut c = gw.connect();
    let cfg = json!({"allowed_tools": ["Read"], "disallowed_tools": ["Bash"], "permission_mode": "plan"});
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "narrow", "config": cfg}));
    let argv = cmdline(worker_pid(&gw, ack["event"]["data"]["session_id"].as_str().unwrap()));
    assert!(argv.iter().any(|a| a == "--allowed-tools=Read"), "{argv:?}");
    assert!(argv.iter().any(|a| a == "--disallowed-tools=WebFetch,Bash"), "{argv:?}");
    assert!(argv.iter().any(|a| a == "--permission-mode=plan"), "{argv:?}");

    // Unanswered for permission_timeout → the worker gets a deny; a late answer is refused.
    let mut c = gw.connect();
    c.init_key("timeout");
    c.send("input", json!({"content": "permission Bash"}));
    let req = c.expect("permission_request");
    let id = req["event"]["data"]["id"].as_str().unwrap().to_owned();
    let frames = c.until(Duration::from_secs(10), |v| is_state(v, "idle"));
    assert!(delta_text(&frames).contains("denied: timeout"), "{frames:#?}");
    c.send("permission_response", json!({"id": id, "allowed": true}));
    c.expect_error("INVALID_MESSAGE");
}

/// security.md §7.4: at most `max_pending_permissions` (8) per session; the 9th
/// simultaneous request is denied at once and never shown to clients.
#[test]
fn ninth_pending_permission_is_denied_at_once() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    c.init_key("nine");
    c.send("input", json!({"content": "permissions 9 Bash"}));
    let mut ids = Vec::new();
    while ids.len() < 8 {
        let v = c.expect("permission_request");
        ids.push(v["event"]["data"]["id"].as_str().unwrap().to_owned());
    }
    // No ninth request reaches the client, while all eight wait.
    match c.recv_within(Duration::from_millis(500)) {
        Err(RecvError::Timeout) => {}
        Ok(v) => assert_ne!(ev_type(&v), "permission_request", "a 9th request was shown: {v}"),
        Err(e) => panic!("{e:?}"),
    }
    for id in &ids {
        c.send("permission_response", json!({"id": id, "allowed": true}));
    }
    let frames = c.until(Duration::from_secs(10), |v| is_state(v, "idle"));
    let text = delta_text(&frames);
    assert!(text.starts_with("allowed=8 denied=1 invalid=0"), "{text}");
    assert!(text.contains("too_many_pending"), "{text}");
    assert_eq!(c.seen.iter().filter(|v| ev_type(v) == "permission_request").count(), 8);
}
