//! Black-box tests with the real `opencode serve` (opencode-ai 1.18.33)
//! driven through the gateway against the mock model (workers.md §4, §3.9,
//! §8; aep-v1.md §3, §4, §6; security.md §8.3).
//!
//! Each test starts its own mock model and gateway; the provider setup goes
//! to the server as `workers.opencode_server.env.OPENCODE_CONFIG_CONTENT`,
//! and the gateway's own tool policy (`OPENCODE_PERMISSION`) decides what
//! asks. Expected texts are asked from the mock directly. Every wait has a
//! deadline; nothing sleeps to synchronise. Without the CLI every test fails
//! and says how to install it (`scripts/install-agents.sh all`).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mock_model::MockModel;
use support::turns::*;
use support::*;

/// Deadline for one whole turn (the real server on a shared 2-core box).
const TURN: Duration = Duration::from_secs(90);
/// Deadline for a server start (≈1.1 s alone) or a state change.
const STATE: Duration = Duration::from_secs(45);
const WORKER: &str = "opencode_server";
/// The server streams text in real deltas (any number per message).
const MESSAGES: MessageShape = MessageShape { id_prefix: "", deltas: Deltas::Any };

/// The pinned `opencode` (HOTPLEX_OPENCODE, the project's .tools, or PATH).
fn require_opencode() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("HOTPLEX_OPENCODE").map(PathBuf::from).into_iter().collect();
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/npm/node_modules/.bin/opencode"));
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        candidates.push(dir.join("opencode"));
    }
    for c in candidates {
        if let Ok(p) = std::fs::canonicalize(&c) {
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the real opencode CLI is not installed. These tests need opencode-ai@1.18.33: \
         run `scripts/install-agents.sh all` (installs into .tools/npm) or set HOTPLEX_OPENCODE."
    );
}

struct Rig {
    // Field order: the gateway (and its servers) stops before the mock.
    gw: Gateway,
    mock: MockModel,
}

impl Rig {
    fn start() -> Rig {
        Rig::start_with("")
    }

    /// `extra`: further YAML sections (e.g. a tool ceiling).
    fn start_with(extra: &str) -> Rig {
        let opencode = require_opencode();
        let mock = MockModel::start();
        let config = json!({
            "$schema": "https://opencode.ai/config.json",
            "model": "anthropic/claude-sonnet-4-5",
            "provider": {"anthropic": {"options": {"baseURL": format!("{}/v1", mock.base_url()), "apiKey": "sk-test"}}},
            "autoupdate": false,
            "share": "disabled"
        });
        let yaml = format!(
            "workers:\n  opencode_server:\n    enabled: true\n    command: \"{}\"\n    env:\n      OPENCODE_CONFIG_CONTENT: '{}'\n{extra}",
            opencode.display(),
            config
        );
        let gw = Gateway::start_with(Options { yaml, ..Options::default() });
        Rig { gw, mock }
    }

    /// A driver on the opencode_server session with client key `key`.
    fn session(&self, key: &str) -> (Client, String) {
        let mut c = self.gw.connect();
        let ack = init(&mut c, key);
        assert_eq!(data(&ack)["state"], "idle", "new session not idle: {ack}");
        let sid = data(&ack)["session_id"].as_str().expect("session_id").to_owned();
        (c, sid)
    }

    /// The text the mock answers a fresh conversation with `prompt`.
    fn mock_text(&self, prompt: &str) -> String {
        self.mock.answer_block("claude-sonnet-4-5", prompt, "text")
    }

    /// The work dir of the (anonymous) owner's sessions.
    fn work_root(&self) -> PathBuf {
        self.gw.dir.path().join("work")
    }
}

impl Drop for Rig {
    /// A failing test shows what the gateway logged (the tail).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.gw.stderr();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("plugin.added")).collect();
            eprintln!("--- gateway log (last 150 lines) ---\n{}", lines[lines.len().saturating_sub(150)..].join("\n"));
        }
    }
}

fn init(c: &mut Client, key: &str) -> Value {
    c.send("init", json!({"worker_type": WORKER, "session_id": key}));
    match c.recv_within(STATE) {
        Ok(v) if ev_type(&v) == "init_ack" => v,
        other => panic!("init failed: {other:?}"),
    }
}

/// One turn: its frames through `done` and `state{idle}`; checks the turn
/// shape (state running first, one done, then idle last) and returns done.success.
fn turn(c: &mut Client, text: &str) -> (Vec<Value>, bool) {
    let frames = c.turn_within(text, TURN);
    let ok = assert_turn_shape(&frames, &LOCAL);
    (frames, ok)
}

/// The session's `opencode serve` process (not its tool shells).
fn server_pid(sid: &str) -> i32 {
    let pids = processes_of_session(sid);
    *pids
        .iter()
        .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.windows(5).any(|w| w == b"serve")))
        .unwrap_or_else(|| panic!("no opencode serve among {pids:?}"))
}

fn terminate(c: &mut Client, sid: &str) -> Vec<Value> {
    c.send("control", json!({"action": "terminate"}));
    let frames = c.until(STATE, |f| is_state(f, "terminated"));
    assert_eq!(processes_of_session(sid), Vec::<i32>::new(), "a process of the session outlived state{{terminated}}");
    frames
}

// ------------------------------------------------------------------ tests

/// Streamed text (several real deltas) equals the model's text; done.stats
/// carries tokens, cost and model; the server runs on a gateway-chosen
/// loopback port with its own password and the gateway's tool policy.
#[test]
fn plain_turn_streams_real_deltas_and_reports_stats() {
    let rig = Rig::start();
    let expected = rig.mock_text("say hi");
    let (mut c, sid) = rig.session("plain");
    let (frames, ok) = turn(&mut c, "say hi");
    assert!(ok, "turn failed: {frames:#?}");
    let msgs = assert_messages_counted(&frames, &MESSAGES);
    assert_eq!(msgs.len(), 1, "{frames:#?}");
    assert_eq!(msgs[0].0, expected);
    assert!(msgs[0].1 > 1, "expected several streamed deltas, got {}: {frames:#?}", msgs[0].1);
    assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");

    let stats = &done_of(&frames)["stats"];
    assert!(stats["input_tokens"].as_u64().is_some_and(|n| n > 0), "{stats}");
    assert!(stats["output_tokens"].as_u64().is_some_and(|n| n > 0), "{stats}");
    assert!(stats["total_tokens"].as_u64().is_some_and(|n| n > 0), "{stats}");
    assert!(stats["cost_usd"].as_f64().is_some_and(|x| x > 0.0), "{stats}");
    assert_eq!(stats["model"], "anthropic/claude-sonnet-4-5", "{stats}");
    assert_eq!(stats["tool_calls"], 0, "{stats}");

    let pid = server_pid(&sid);
    let cmdline =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " ");
    assert!(cmdline.contains("serve --hostname=127.0.0.1 --port="), "{cmdline}");
    assert!(!cmdline.contains("--port=4096 ") && !cmdline.contains("--port=0 "), "{cmdline}");
    let env = proc_env(pid);
    let pw = env.iter().find_map(|kv| kv.strip_prefix("OPENCODE_SERVER_PASSWORD=")).expect("password env");
    assert!(pw.len() == 64 && pw.bytes().all(|b| b.is_ascii_hexdigit()), "password is 32 random bytes in hex");
    assert!(
        env.iter().any(|kv| kv.starts_with("OPENCODE_PERMISSION=") && kv.contains(r#""*":"ask""#)),
        "tool policy: {env:?}"
    );
}

/// A tool inside the ceiling runs without asking: tool_call then
/// tool_result with the same id and the command's output.
#[test]
fn allowed_tool_runs_as_tool_call_and_result() {
    let rig = Rig::start_with("security:\n  tools:\n    allowed: [Bash]\n");
    let (mut c, _sid) = rig.session("tool");
    let (frames, ok) = turn(&mut c, "run [[tool:bash:echo hello-tool]]");
    assert!(ok, "turn failed: {frames:#?}");
    assert!(of_type(&frames, "permission_request").is_empty(), "Bash is allowed: {frames:#?}");
    let calls = of_type(&frames, "tool_call");
    assert_eq!(calls.len(), 1, "{frames:#?}");
    let call = data(calls[0]);
    assert_eq!(call["name"], "bash");
    assert_eq!(call["input"]["command"], "echo hello-tool");
    let id = call["id"].as_str().expect("tool id");
    let result = frames.iter().find(|f| ev_type(f) == "tool_result" && data(f)["id"] == id).expect("tool_result");
    assert_eq!(data(result)["is_error"], false);
    assert!(data(result)["output"].as_str().is_some_and(|o| o.contains("hello-tool")), "{result}");
    assert_eq!(done_of(&frames)["stats"]["tool_calls"], 1);
}

/// With the default ceiling every tool asks: an allowed request runs the
/// command, a denied one fails the tool with the reason and the turn goes on.
#[test]
fn permission_allow_and_deny_round_trip() {
    let rig = Rig::start();
    let (mut c, _sid) = rig.session("perm");
    for (file, allow) in [("allowed_by_client.txt", true), ("denied_by_client.txt", false)] {
        c.send("input", json!({"content": format!("do it [[tool:bash:touch {file}]]")}));
        let mut frames = c.until(TURN, |f| ev_type(f) == "permission_request" || ev_type(f) == "done");
        let ask = frames.last().cloned().unwrap_or_default();
        assert_eq!(ev_type(&ask), "permission_request", "no permission request: {frames:#?}");
        assert_eq!(data(&ask)["tool_name"], "bash");
        assert!(data(&ask)["description"].as_str().is_some_and(|d| d.contains(file)), "{ask}");
        let id = data(&ask)["id"].as_str().expect("permission id").to_owned();
        c.send("permission_response", json!({"id": id, "allowed": allow, "reason": "not today"}));
        let mut done = false;
        frames.extend(c.until(TURN, |f| {
            done |= ev_type(f) == "done";
            done && is_state(f, "idle")
        }));
        assert_eq!(done_of(&frames)["success"], true, "the turn goes on after a reject with a message: {frames:#?}");
        let result = of_type(&frames, "tool_result").first().map(|r| data(r).clone()).expect("tool_result");
        assert_eq!(result["is_error"], !allow, "{result}");
        assert_eq!(find_file(&rig.work_root(), file).is_some(), allow, "file {file} after allow={allow}");
        if !allow {
            assert!(result["output"].as_str().is_some_and(|o| o.contains("not today")), "{result}");
        }
    }
}

/// Interrupt mid-stream: done{success:false} without an error, quickly; the
/// server stays and the next turn works.
#[test]
fn interrupt_mid_stream_then_the_next_turn_works() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("interrupt");
    let pid = server_pid(&sid);
    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = c.until(TURN, |f| ev_type(f) == "message.delta" || ev_type(f) == "done");
    assert_eq!(ev_type(frames.last().unwrap()), "message.delta", "no delta first: {frames:#?}");
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    frames.extend(c.until(Duration::from_secs(8), |f| ev_type(f) == "done"));
    assert!(t0.elapsed() < Duration::from_secs(8));
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert_eq!(done_of(&frames)["success"], false, "{frames:#?}");
    assert!(of_type(&frames, "error").is_empty(), "no error on interrupt: {frames:#?}");
    assert_messages_counted(&frames, &MESSAGES);
    assert_eq!(of_type(&frames, "message.start").len(), of_type(&frames, "message.end").len(), "{frames:#?}");
    assert_eq!(server_pid(&sid), pid, "the server survives an interrupt");

    let (next, ok) = turn(&mut c, "say hi");
    assert!(ok, "turn after interrupt failed: {next:#?}");
    let texts: Vec<String> = assert_messages_counted(&next, &MESSAGES).into_iter().map(|m| m.0).collect();
    assert_eq!(texts, vec![rig.mock_text("say hi")], "{next:#?}");
}

/// Terminate, then init again: a new server (new pid, new port) continues
/// the conversation (`[[recall]]`); nothing of the session survives terminate.
#[test]
fn terminate_and_reinit_resumes_with_a_new_server() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("resume");
    let (first, ok) = turn(&mut c, "remember the word PINEAPPLE");
    assert!(ok, "{first:#?}");
    let old = server_pid(&sid);
    terminate(&mut c, &sid);
    drop(c);

    let mut c2 = rig.gw.connect();
    let ack = init(&mut c2, "resume");
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    assert_eq!(data(&ack)["session_id"], sid.as_str());
    // the resume is announced as a session event (aep-v1.md §4.2)
    c2.until(STATE, |f| is_state(f, "idle"));
    let new = server_pid(&sid);
    assert_ne!(new, old, "a new server process");
    let (second, ok) = turn(&mut c2, "what was it [[recall]]");
    assert!(ok, "{second:#?}");
    let answer: String = assert_messages_counted(&second, &MESSAGES).into_iter().map(|m| m.0).collect();
    assert!(answer.contains("'remember the word PINEAPPLE'"), "resumed server forgot turn 1: {answer:?}");
    terminate(&mut c2, &sid);
}

/// A tool shell left running by the server (own session, workers.md §1.4)
/// does not survive terminate either.
#[test]
fn terminate_mid_tool_leaves_no_process() {
    let rig = Rig::start_with("security:\n  tools:\n    allowed: [Bash]\n");
    let (mut c, sid) = rig.session("sweep");
    c.send("input", json!({"content": "wait [[tool:bash:sleep 40]]"}));
    let frames = c.until(TURN, |f| ev_type(f) == "tool_call" || ev_type(f) == "done");
    assert_eq!(ev_type(frames.last().unwrap()), "tool_call", "{frames:#?}");
    let sleeping = || {
        processes_of_session(&sid).iter().any(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).replace('\0', " ").contains("sleep 40")
        })
    };
    assert!(eventually(TURN, sleeping), "the tool shell did not start: {:?}", processes_of_session(&sid));
    let t = terminate(&mut c, &sid);
    let errors = of_type(&t, "error");
    assert!(errors.iter().all(|e| data(e)["code"] == "SESSION_TERMINATED"), "{t:#?}");
    assert_eq!(done_of(&t)["success"], false);
}

/// `[[error:400]]`: AGENT_ERROR with the model's message, done{success:false};
/// the session goes on.
#[test]
fn api_error_is_an_agent_error_and_the_session_goes_on() {
    let rig = Rig::start();
    let (mut c, _sid) = rig.session("error");
    let (frames, ok) = turn(&mut c, "bad [[error:400]]");
    assert!(!ok, "{frames:#?}");
    let e = data(the_error(&frames, "AGENT_ERROR"));
    assert!(e["message"].as_str().is_some_and(|m| m.contains("400")), "{e}");
    assert_eq!(e["details"]["worker_type"], WORKER);
    assert_eq!(e["details"]["status"], 400);
    let (next, ok) = turn(&mut c, "say hi");
    assert!(ok, "{next:#?}");
}

/// The server killed from outside mid-turn: WORKER_CRASH + done{success:false},
/// then state{terminated}; nothing of the session remains.
#[test]
fn killing_the_server_is_a_worker_crash() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("crash");
    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = c.until(TURN, |f| ev_type(f) == "message.delta" || ev_type(f) == "done");
    assert_eq!(ev_type(frames.last().unwrap()), "message.delta", "{frames:#?}");
    let pid = server_pid(&sid);
    // SAFETY: kill(2) on the test's own grandchild, identified by its environment.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    frames.extend(c.until(STATE, |f| is_state(f, "terminated")));
    the_error(&frames, "WORKER_CRASH");
    assert_eq!(done_of(&frames)["success"], false);
    let e = frames.iter().position(|f| ev_type(f) == "error").unwrap_or_default();
    let d = frames.iter().position(|f| ev_type(f) == "done").unwrap_or_default();
    assert!(e < d, "error before done: {frames:#?}");
    assert_eq!(of_type(&frames, "message.start").len(), of_type(&frames, "message.end").len(), "{frames:#?}");
    assert!(eventually(STATE, || processes_of_session(&sid).is_empty()), "{:?}", processes_of_session(&sid));
}

/// The server lost the session (its database is gone): resuming reports
/// AGENT_ERROR{subtype:resume_failed} at the first input, then terminated.
#[test]
fn resume_of_a_session_the_server_lost_fails_cleanly() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("lost");
    let (first, ok) = turn(&mut c, "say hi");
    assert!(ok, "{first:#?}");
    terminate(&mut c, &sid);
    drop(c);
    let homes = rig.gw.dir.path().join("data/homes");
    let db = find_file(&homes, "opencode.db").expect("opencode's database under the owner's HOME");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let mut c2 = rig.gw.connect();
    let ack = init(&mut c2, "lost");
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    c2.send("input", json!({"content": "[[recall]]"}));
    let frames = c2.until(TURN, |f| is_state(f, "terminated"));
    let errors = of_type(&frames, "error");
    assert_eq!(errors.len(), 1, "{frames:#?}");
    assert_eq!(data(errors[0])["code"], "AGENT_ERROR");
    assert_eq!(data(errors[0])["details"]["subtype"], "resume_failed", "{frames:#?}");
    assert_eq!(done_of(&frames)["success"], false);
    assert!(eventually(STATE, || processes_of_session(&sid).is_empty()));
}
