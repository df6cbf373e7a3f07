//! Black-box tests with the real pi coding agent (`pi`, pinned 0.73.1, RPC
//! mode) driven through the gateway against the local mock model server
//! (workers.md §6, §8; aep-v1.md §3, §4, §6).
//!
//! Each test starts its own mock model, a pi agent dir whose models.json
//! points the `mock` provider at it (workers.md §6.8), and a gateway with
//! `workers.pi` enabled. Expected texts are asked from the mock directly,
//! never guessed. Every wait has a deadline; nothing sleeps to synchronise.
//! If `pi` is neither on PATH nor installed by `scripts/install-agents.sh
//! all` every test fails with a clear message: a silent skip would hide a
//! broken setup.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mock_model::MockModel;
use support::turns::*;
use support::*;

/// Deadline for one whole turn of the real CLI (start-up included).
const TURN: Duration = Duration::from_secs(60);
/// The model our direct calls to the mock name.
const MODEL: &str = "mock-model";
/// Deadline for a single state change (terminate waits for reaping).
const STATE: Duration = Duration::from_secs(20);
/// An interrupted turn must end within this.
const INTERRUPT: Duration = Duration::from_secs(3);
/// pi's message ids carry the adapter's `pi-` prefix.
const MESSAGES: MessageShape = MessageShape { id_prefix: "pi-", deltas: Deltas::Any };

// ------------------------------------------------------------------ setup

/// `pi` on PATH or in the project's tool prefix, or a failing test that says how to fix it.
fn require_pi() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = find_executable("pi", path_dirs().into_iter().chain([project_agents_bin()]));
    found.unwrap_or_else(|| {
        panic!(
            "the real pi CLI is not on PATH ({}) nor in .tools/npm. These tests need it: \
             run `scripts/install-agents.sh all` (installs @mariozechner/pi-coding-agent@0.73.1).",
            path.to_string_lossy()
        )
    })
}

/// One mock model, one pi agent dir and one gateway whose pi workers use them.
struct Rig {
    // Field order: the gateway (and its workers) stops before the mock.
    gw: Gateway,
    mock: MockModel,
    agent_dir: TempDir,
    /// The worker command: a wrapper that records its argv, then execs pi
    /// (node rewrites its own `/proc/<pid>/cmdline`).
    bin: TempDir,
}

/// `<bin>/pi`: writes its arguments NUL-separated to `<bin>/argv.<pid>`
/// and becomes pi (same pid).
fn argv_recorder(bin: &Path, pi: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\nprintf '%s\\0' \"$@\" > '{dir}/argv.'$$\nexec '{pi}' \"$@\"\n",
        dir = bin.display(),
        pi = pi.display()
    );
    let path = bin.join("pi");
    std::fs::write(&path, script).expect("write the pi wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod the pi wrapper");
    path
}

impl Rig {
    fn start() -> Rig {
        let pi = require_pi();
        let mock = MockModel::start();
        let agent_dir = TempDir::new("pi-agent");
        let models = json!({"providers": {"mock": {
            "baseUrl": mock.base_url(), "api": "anthropic-messages", "apiKey": "sk-test",
            "models": [{"id": "mock-model", "name": "Mock", "reasoning": true, "input": ["text"],
                "cost": {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75},
                "contextWindow": 200000, "maxTokens": 8192}]}}});
        std::fs::write(agent_dir.path().join("models.json"), models.to_string()).expect("write models.json");
        let bin = TempDir::new("pi-bin");
        let pi = argv_recorder(bin.path(), &pi);
        let yaml = format!(
            "workers:\n  pi:\n    enabled: true\n    command: \"{}\"\n    provider: \"mock\"\n    model: \"mock-model\"\n    agent_dir: \"{}\"\n    gated_tools: [bash, write, edit]\n    unrestricted_tools: true\n",
            pi.display(),
            agent_dir.path().display()
        );
        let gw = Gateway::start_with(Options { yaml, ..Options::default() });
        Rig { gw, mock, agent_dir, bin }
    }

    /// A driver connection on a pi session with client key `key`.
    fn session(&self, key: &str) -> (Client, String) {
        let mut c = self.gw.connect();
        let ack = c.init(json!({"worker_type": "pi", "session_id": key}));
        assert_eq!(data(&ack)["state"], "idle", "new session not idle: {ack}");
        let caps = &data(&ack)["server_caps"];
        assert_eq!(caps["supports_permissions"], true, "{ack}");
        let sid = data(&ack)["session_id"].as_str().expect("session_id").to_owned();
        (c, sid)
    }

    /// The text block of the mock's answer to `prompt`.
    fn mock_text(&self, prompt: &str) -> String {
        self.mock.answer_block(MODEL, prompt, "text")
    }

    /// pi's stored session files (`<agent dir>/sessions/**.jsonl`).
    fn session_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.agent_dir.path().join("sessions")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "jsonl") {
                    out.push(p);
                }
            }
        }
        out
    }
}

// ------------------------------------------------------------------ helpers

fn run_turn(c: &mut Client, text: &str) -> Vec<Value> {
    c.turn_within(text, TURN)
}

fn until(c: &mut Client, pred: impl FnMut(&Value) -> bool) -> Vec<Value> {
    c.until(TURN, pred)
}

/// The session's pi process (the worker: the live process whose parent is the gateway).
fn worker_pid(rig: &Rig, sid: &str) -> i32 {
    let gw = rig.gw.pid();
    let ppid = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    // Polled: under load the listing can run before the new process shows up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = processes_of_session(sid);
        if let Some(p) = pids.iter().copied().find(|p| ppid(*p) == Some(gw)) {
            return p;
        }
        assert!(Instant::now() < deadline, "no worker process of session {sid} among {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The worker's environment and the arguments it was started with.
fn worker_env_args(rig: &Rig, pid: i32) -> (Vec<String>, Vec<String>) {
    let split = |b: Vec<u8>| -> Vec<String> {
        let mut v: Vec<String> = b.split(|x| *x == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        if v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    };
    let env = std::fs::read(format!("/proc/{pid}/environ")).map(split).unwrap_or_default();
    let file = rig.bin.path().join(format!("argv.{pid}"));
    // Written by the wrapper's first command, just after the spawn.
    assert!(eventually(STATE, || file.exists()), "no argv recorded for worker {pid}");
    let args = std::fs::read(&file).map(split).expect("recorded argv");
    (env, args)
}

/// The worker's work dir (its cwd).
fn work_dir(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).expect("worker cwd")
}

/// Send `input` and wait for the permission request (frames so far, request).
fn until_permission(c: &mut Client, text: &str) -> (Vec<Value>, Value) {
    c.send("input", json!({"content": text}));
    let frames = until(c, |f| ev_type(f) == "permission_request" || ev_type(f) == "done");
    let req = frames.last().cloned().unwrap_or(Value::Null);
    assert_eq!(ev_type(&req), "permission_request", "no permission asked: {frames:#?}");
    (frames, req)
}

// ------------------------------------------------------------------ tests

/// Plain turn: the streamed text equals the mock's answer; `done.stats`
/// carries pi's tokens, the cost from models.json's price table and the
/// model; the worker got its flags, env and the gateway's extension.
#[test]
fn plain_turn_streams_the_answer_with_stats() {
    let rig = Rig::start();
    let expected = rig.mock_text("say hi");
    let (mut c, sid) = rig.session("plain");

    let frames = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    assert_eq!(assert_messages(&frames, &MESSAGES), vec![expected.clone()], "frames: {frames:#?}");
    assert_eq!(delta_text(&frames), expected);
    assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");

    let stats = &done_of(&frames)["stats"];
    let n = |k: &str| stats[k].as_u64().unwrap_or_else(|| panic!("stats.{k} missing: {stats}"));
    let (input, output, cr, cw) =
        (n("input_tokens"), n("output_tokens"), n("cache_read_tokens"), n("cache_write_tokens"));
    assert!(input > 0 && output > 0, "{stats}");
    assert_eq!(n("total_tokens"), input + output + cr + cw, "{stats}");
    let price = (input as f64 * 3.0 + output as f64 * 15.0 + cr as f64 * 0.3 + cw as f64 * 3.75) / 1e6;
    let cost = stats["cost_usd"].as_f64().expect("cost_usd");
    assert!((cost - price).abs() < 1e-9, "cost {cost} vs models.json price {price}: {stats}");
    assert_eq!(stats["model"], "mock-model", "{stats}");
    assert_eq!(stats["tool_calls"], 0, "{stats}");
    assert!(stats["duration_ms"].is_u64(), "{stats}");
    let pct = stats["context_used_percent"].as_f64().expect("context_used_percent");
    assert!((pct - input as f64 / 200000.0 * 100.0).abs() < 1e-3, "{stats}");

    let pid = worker_pid(&rig, &sid);
    let (env, args) = worker_env_args(&rig, pid);
    for want in [
        "PI_OFFLINE=1".to_owned(),
        "HOTPLEX_PI_GATED_TOOLS=bash,write,edit".to_owned(),
        format!("PI_CODING_AGENT_DIR={}", rig.agent_dir.path().display()),
    ] {
        assert!(env.contains(&want), "{want} missing from the worker env: {env:?}");
    }
    let ext = PathBuf::from(args.last().expect("argv"));
    assert_eq!(
        args,
        ["--mode", "rpc", "--provider", "mock", "--model", "mock-model", "--no-extensions", "--no-skills", "-e"]
            .iter()
            .map(|s| s.to_string())
            .chain([ext.to_string_lossy().into_owned()])
            .collect::<Vec<_>>()
    );
    assert!(ext.is_absolute(), "{ext:?}");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pi/hotplex_permission_gate.ts"));
    assert_eq!(
        std::fs::read_to_string(&ext).ok(),
        shipped.ok(),
        "the gateway's extension differs from the shipped one"
    );
    assert_seq(&c.seen, &LOCAL);
}

/// Thinking: `reasoning{delta:true}` increments before the answer,
/// concatenating to the model's thinking.
#[test]
fn thinking_streams_reasoning_before_the_answer() {
    let rig = Rig::start();
    let prompt = "[[thinking]] think first";
    let thinking = rig.mock.answer_block(MODEL, prompt, "thinking");
    let (mut c, _sid) = rig.session("thinking");
    let frames = run_turn(&mut c, prompt);
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    let reasoning = of_type(&frames, "reasoning");
    assert!(!reasoning.is_empty() && reasoning.iter().all(|r| data(r)["delta"] == true), "{frames:#?}");
    let streamed: String = reasoning.iter().filter_map(|r| data(r)["content"].as_str()).collect();
    assert_eq!(streamed, thinking);
    let last = frames.iter().rposition(|f| ev_type(f) == "reasoning").unwrap();
    assert!(last < pos(&frames, |f| ev_type(f) == "message.start").expect("answer"), "{frames:#?}");
    assert_eq!(assert_messages(&frames, &MESSAGES), vec![rig.mock_text(prompt)]);
}

/// Tool use without a permission (read is not gated): `tool_call` and its
/// `tool_result` (same id) with the file's text; the answer quotes it.
#[test]
fn ungated_tool_call_and_result() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("tool");
    let dir = work_dir(worker_pid(&rig, &sid));
    std::fs::write(dir.join("probe.txt"), "probe-content-42\n").expect("write probe");

    let frames = run_turn(&mut c, "look [[tool:read:probe.txt]]");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    assert!(of_type(&frames, "permission_request").is_empty(), "read is not gated: {frames:#?}");
    let calls = of_type(&frames, "tool_call");
    assert_eq!(calls.len(), 1, "{frames:#?}");
    let call = data(calls[0]);
    assert_eq!(call["name"], "read");
    assert_eq!(call["input"]["path"], "probe.txt");
    assert_eq!(call["status"], "executing");
    let id = call["id"].as_str().expect("tool_call.id");
    let ri = pos(&frames, |f| ev_type(f) == "tool_result" && data(f)["id"] == id).expect("tool_result");
    assert!(pos(&frames, |f| ev_type(f) == "tool_call").unwrap() < ri);
    assert_eq!(data(&frames[ri])["is_error"], false);
    assert!(data(&frames[ri])["output"].as_str().is_some_and(|o| o.contains("probe-content-42")), "{frames:#?}");
    let messages = assert_messages(&frames, &MESSAGES);
    assert!(messages.last().is_some_and(|m| m.contains("probe-content-42")), "{messages:?}");
    assert_eq!(done_of(&frames)["stats"]["tool_calls"], 1);
}

/// Permission allowed: the gate asks for `bash touch`, allow → the file exists.
#[test]
fn permission_allowed_runs_the_command() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("perm-allow");
    let dir = work_dir(worker_pid(&rig, &sid));

    let (mut frames, req) = until_permission(&mut c, "[[tool:bash:touch allowed.txt]]");
    let rd = data(&req);
    assert_eq!(rd["tool_name"], "bash");
    assert_eq!(rd["input"]["command"], "touch allowed.txt");
    assert_eq!(rd["description"], "bash touch allowed.txt");
    assert!(rd["expires_at"].is_u64(), "{req}");
    assert!(!dir.join("allowed.txt").exists(), "ran before the answer");
    let call = data(of_type(&frames, "tool_call")[0]).clone();
    assert_eq!(call["input"]["command"], "touch allowed.txt");

    c.send("permission_response", json!({"id": rd["id"], "allowed": true}));
    frames.extend(until(&mut c, |f| is_state(f, "idle")));
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    let result = of_type(&frames, "tool_result").into_iter().find(|r| data(r)["id"] == call["id"]).expect("result");
    assert_eq!(data(result)["is_error"], false, "{result}");
    assert!(dir.join("allowed.txt").exists(), "allowed command did not run");
}

/// Permission denied: no file, an error tool result, the turn still succeeds;
/// answering again is rejected.
#[test]
fn permission_denied_blocks_the_command() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("perm-deny");
    let dir = work_dir(worker_pid(&rig, &sid));

    let (mut frames, req) = until_permission(&mut c, "[[tool:bash:touch denied.txt]]");
    let id = data(&req)["id"].as_str().expect("id").to_owned();
    c.send("permission_response", json!({"id": id, "allowed": false, "reason": "nope"}));
    frames.extend(until(&mut c, |f| is_state(f, "idle")));
    assert!(assert_turn_shape(&frames, &LOCAL), "a denied tool does not fail the turn: {frames:#?}");
    let result = data(of_type(&frames, "tool_result")[0]);
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["output"], "Permission denied by the user", "{result}");
    assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");
    assert!(!dir.join("denied.txt").exists(), "denied command ran");

    c.send("permission_response", json!({"id": id, "allowed": true}));
    let again = c.expect("error");
    assert_eq!(data(&again)["code"], "INVALID_MESSAGE", "{again}");
}

/// Interrupt mid-stream: `done{success:false}` within 3 s, no error, every
/// started message closed; the worker lives on and the next turn works.
#[test]
fn interrupt_ends_the_turn_and_keeps_the_worker() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("interrupt");

    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = until(&mut c, |f| ev_type(f) == "message.delta" || ev_type(f) == "done");
    assert_eq!(ev_type(frames.last().unwrap()), "message.delta", "no delta first: {frames:#?}");
    let pid = worker_pid(&rig, &sid);
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    frames.extend(c.until(INTERRUPT, |f| ev_type(f) == "done"));
    assert!(t0.elapsed() < INTERRUPT, "interrupt took {:?}", t0.elapsed());
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert!(!assert_turn_shape(&frames, &LOCAL), "an interrupted turn is not a success: {frames:#?}");
    assert!(of_type(&frames, "error").is_empty(), "no error on interrupt: {frames:#?}");
    assert_messages(&frames, &MESSAGES);
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "worker died on interrupt");

    let next = run_turn(&mut c, "say again");
    assert!(assert_turn_shape(&next, &LOCAL), "turn after interrupt failed: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("say again")]);
    assert_eq!(worker_pid(&rig, &sid), pid, "same worker");
}

/// Interrupt while the gate waits for an answer: pi's abort is not blocked
/// by the dialog; the command never runs; the session takes the next input.
#[test]
fn interrupt_with_a_pending_permission() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("interrupt-perm");
    let dir = work_dir(worker_pid(&rig, &sid));

    let (mut frames, req) = until_permission(&mut c, "[[tool:bash:touch pending.txt]]");
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    frames.extend(c.until(INTERRUPT, |f| ev_type(f) == "done"));
    assert!(t0.elapsed() < INTERRUPT, "interrupt took {:?}", t0.elapsed());
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert!(!assert_turn_shape(&frames, &LOCAL), "{frames:#?}");
    assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");
    assert!(!dir.join("pending.txt").exists(), "the unanswered command ran");
    // The request is gone: a late answer is rejected.
    c.send("permission_response", json!({"id": data(&req)["id"], "allowed": true}));
    assert_eq!(data(&c.expect("error"))["code"], "INVALID_MESSAGE");

    let next = run_turn(&mut c, "still there?");
    assert!(assert_turn_shape(&next, &LOCAL), "pi is stuck after the interrupt: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("still there?")]);
    assert!(!dir.join("pending.txt").exists(), "the unanswered command ran later");
}

/// Terminate then re-init: a new pi resumes the same pi session
/// (`--session <id>` from `get_state`), proven by `[[recall]]`.
#[test]
fn terminate_then_reinit_resumes_the_conversation() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("resume");
    let first = run_turn(&mut c, "remember the word PINEAPPLE");
    assert!(assert_turn_shape(&first, &LOCAL), "turn 1 failed: {first:#?}");
    let before = worker_pid(&rig, &sid);
    let first_ids: Vec<String> =
        of_type(&first, "message").iter().map(|m| data(m)["id"].as_str().unwrap_or("").to_owned()).collect();

    c.send("control", json!({"action": "terminate"}));
    let t = c.until(STATE, |f| is_state(f, "terminated"));
    assert!(of_type(&t, "error").is_empty(), "{t:#?}");
    assert_eq!(processes_of_session(&sid), Vec::<i32>::new(), "worker alive at state{{terminated}}");
    drop(c);

    let mut c2 = rig.gw.connect();
    let ack = c2.init(json!({"worker_type": "pi", "session_id": "resume"}));
    assert_eq!(data(&ack)["session_id"], sid.as_str());
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    let idle = c2.recv_within(STATE).expect("state after resume");
    assert!(is_state(&idle, "idle"), "{idle}");
    let after = worker_pid(&rig, &sid);
    assert_ne!(after, before, "old worker reused");
    let (_, args) = worker_env_args(&rig, after);
    let s = args.iter().position(|a| a == "--session").expect("--session in the resumed argv");
    assert!(rig.session_files().iter().any(|f| f.to_string_lossy().contains(&args[s + 1])), "{args:?}");

    let second = run_turn(&mut c2, "what was it [[recall]]");
    assert!(assert_turn_shape(&second, &LOCAL), "turn 2 failed: {second:#?}");
    let answer = assert_messages(&second, &MESSAGES).join("\n");
    assert!(answer.contains("'remember the word PINEAPPLE'"), "resumed agent forgot turn 1: {answer:?}");
    // Message ids stay unique across the two processes.
    for m in of_type(&second, "message") {
        let id = data(m)["id"].as_str().unwrap_or("");
        assert!(!first_ids.iter().any(|f| f == id), "id {id} reused after resume");
    }
}

/// The stored pi session vanished: the resume fails with
/// AGENT_ERROR{resume_failed} and `state{terminated}`; the next init
/// starts a fresh conversation.
#[test]
fn resume_of_a_lost_pi_session_fails_then_starts_fresh() {
    let rig = Rig::start();
    let (mut c, sid) = rig.session("lost");
    assert!(assert_turn_shape(&run_turn(&mut c, "remember the word MANGO"), &LOCAL));
    c.send("control", json!({"action": "terminate"}));
    c.until(STATE, |f| is_state(f, "terminated"));
    drop(c);
    let files = rig.session_files();
    assert!(!files.is_empty(), "pi stored no session");
    for f in files {
        std::fs::remove_file(f).expect("remove session file");
    }

    let mut c2 = rig.gw.connect();
    let ack = c2.init(json!({"worker_type": "pi", "session_id": "lost"}));
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    let frames = c2.until(TURN, |f| is_state(f, "terminated"));
    let e = data(the_error(&frames, "AGENT_ERROR"));
    assert_eq!(e["details"]["subtype"], "resume_failed", "{e}");
    assert_eq!(e["details"]["worker_type"], "pi", "{e}");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("No session found")), "{e}");
    assert_eq!(data(frames.last().unwrap())["message"], "worker_exit");
    assert!(of_type(&frames, "done").is_empty(), "no turn was running: {frames:#?}");
    // Terminated once: no second state{terminated}, no crash error after it.
    c2.expect_silence(Duration::from_secs(1));
    drop(c2);

    let mut c3 = rig.gw.connect();
    let ack = c3.init(json!({"worker_type": "pi", "session_id": "lost"}));
    assert_eq!(data(&ack)["session_id"], sid.as_str(), "{ack}");
    c3.until(STATE, |f| is_state(f, "idle"));
    let (_, args) = worker_env_args(&rig, worker_pid(&rig, &sid));
    assert!(!args.iter().any(|a| a == "--session"), "a fresh pi session: {args:?}");
    let turn = run_turn(&mut c3, "[[recall]]");
    assert!(assert_turn_shape(&turn, &LOCAL), "{turn:#?}");
    assert_eq!(assert_messages(&turn, &MESSAGES), vec![rig.mock_text("[[recall]]")], "old context survived");

    // Again, with an input sent before pi gave up: that turn ends too.
    c3.send("control", json!({"action": "terminate"}));
    c3.until(STATE, |f| is_state(f, "terminated"));
    drop(c3);
    for f in rig.session_files() {
        std::fs::remove_file(f).expect("remove session file");
    }
    let mut c4 = rig.gw.connect();
    let ack = c4.init(json!({"worker_type": "pi", "session_id": "lost"}));
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    c4.send("input", json!({"content": "are you there?"}));
    let frames = c4.until(TURN, |f| is_state(f, "terminated"));
    let errors = of_type(&frames, "error");
    assert_eq!(errors.len(), 1, "{frames:#?}");
    assert_eq!(data(errors[0])["details"]["subtype"], "resume_failed", "{frames:#?}");
    if pos(&frames, |f| is_state(f, "running")).is_some() {
        assert_eq!(of_type(&frames, "done").len(), 1, "{frames:#?}");
        assert_eq!(done_of(&frames)["success"], false);
    }
    c4.expect_silence(Duration::from_secs(1));
}

/// A model API error: AGENT_ERROR with pi's text (status and the mock's
/// message) then `done{success:false}`; the session stays usable.
#[test]
fn api_error_is_an_agent_error_and_the_session_goes_on() {
    let rig = Rig::start();
    let (status, body) = rig.mock.answer(MODEL, "[[error:400]]");
    assert_eq!(status, 400, "{body}");
    let mock_message = body["error"]["message"].as_str().expect("mock error message").to_owned();
    let (mut c, _sid) = rig.session("apierror");

    let frames = run_turn(&mut c, "[[error:400]]");
    assert!(!assert_turn_shape(&frames, &LOCAL), "{frames:#?}");
    let e = data(the_error(&frames, "AGENT_ERROR"));
    let msg = e["message"].as_str().expect("message");
    assert!(msg.contains(&mock_message) && msg.starts_with("400"), "{msg:?} vs {mock_message:?}");
    assert_eq!(e["details"], json!({"worker_type": "pi", "subtype": "error", "status": 400}));
    assert!(pos(&frames, |f| ev_type(f) == "error") < pos(&frames, |f| ev_type(f) == "done"));

    let next = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&next, &LOCAL), "{next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("say hi")]);
    // pi did not retry a 400.
    let bad = rig.mock.agent_requests(false).into_iter().filter(|r| r["last_user_text"] == "[[error:400]]").count();
    assert_eq!(bad, 1);
}

/// A pi that dies mid-turn: SIGTERM from outside → WORKER_CRASH (pi exits
/// 143 = signal 15); SIGKILL not sent by the gateway → WORKER_OOM (aep-v1.md
/// §8, workers.md §1.4 item 6). Both end the turn with `done{success:false}`
/// and the session `terminated`.
#[test]
fn a_dying_agent_is_a_worker_error() {
    let rig = Rig::start();
    for (key, sig, code) in [("crash-term", libc::SIGTERM, "WORKER_CRASH"), ("crash-kill", libc::SIGKILL, "WORKER_OOM")]
    {
        let (mut c, sid) = rig.session(key);
        c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
        let mut frames = until(&mut c, |f| ev_type(f) == "message.delta");
        let pid = worker_pid(&rig, &sid);
        // SAFETY: kill(2) on the test's own worker process.
        unsafe { libc::kill(pid, sig) };
        frames.extend(c.until(STATE, |f| is_state(f, "terminated")));
        let errors = of_type(&frames, "error");
        assert_eq!(errors.len(), 1, "{key}: {frames:#?}");
        assert_eq!(data(errors[0])["code"], code, "{key}: {frames:#?}");
        if sig == libc::SIGTERM {
            assert_eq!(data(errors[0])["details"]["signal"], 15, "{frames:#?}");
        }
        assert_eq!(of_type(&frames, "done").len(), 1, "{frames:#?}");
        assert_eq!(done_of(&frames)["success"], false);
        assert_messages(&frames, &MESSAGES);
        assert_seq(&frames, &LOCAL);
    }
}

/// `reset` starts a fresh pi session: `state{idle, context_reset}`, and a
/// following `[[recall]]` knows no earlier prompt.
#[test]
fn reset_discards_the_conversation() {
    let rig = Rig::start();
    let (mut c, _sid) = rig.session("reset");
    assert!(assert_turn_shape(&run_turn(&mut c, "remember the word MANGO"), &LOCAL));
    c.send("control", json!({"action": "reset"}));
    let r = c.until(STATE, |f| ev_type(f) == "state");
    let st = r.last().unwrap();
    assert!(is_state(st, "idle") && data(st)["message"] == "context_reset", "{st}");
    let turn = run_turn(&mut c, "[[recall]]");
    assert!(assert_turn_shape(&turn, &LOCAL), "{turn:#?}");
    assert_eq!(assert_messages(&turn, &MESSAGES), vec![rig.mock_text("[[recall]]")], "context survived the reset");
    assert_seq(&c.seen, &LOCAL);
}
