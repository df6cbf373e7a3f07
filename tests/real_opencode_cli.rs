//! Black-box tests with the real opencode CLI (`opencode run --format json`,
//! pinned 1.18.33, one process per turn) driven through the gateway against
//! the local mock model server (workers.md §3, §8; aep-v1.md §3, §4, §6).
//!
//! Each test starts its own mock model and gateway; the mock is wired in as
//! an operator config (`workers.opencode_cli.env.OPENCODE_CONFIG_CONTENT`,
//! workers.md §3.9); the tool policy arrives beside it as
//! `OPENCODE_PERMISSION`. The
//! gateway gives each owner a private HOME, so opencode's state (its session
//! store) is isolated per test; the registry is pointed at a dead port so
//! opencode's first-start plugin install fails fast instead of reaching out.
//! Expected texts are asked from the mock directly, never guessed. Every
//! wait has a deadline; nothing sleeps to synchronise. `opencode` is taken
//! from PATH, else from the project's `.tools/npm` (scripts/install-agents.sh
//! all); if neither has it every test fails with a clear message.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mock_model::MockModel;
use support::turns::*;
use support::*;

/// Deadline for one whole turn (the process start-up included: ~3 s of CPU
/// per turn, much longer on a loaded machine).
const TURN: Duration = Duration::from_secs(120);

/// The tests take turns: one opencode start-up at a time (each is ~3 s of
/// CPU), so a loaded machine slows them down instead of starving them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// The model our direct calls to the mock name.
const MODEL: &str = "claude-sonnet-4-5";
/// Deadline for a single state change (terminate waits for reaping).
const STATE: Duration = Duration::from_secs(20);
/// An interrupted turn must end within this.
const INTERRUPT: Duration = Duration::from_secs(5);
/// A turn's frames here carry no connection-local frame (every frame a session seq).
const LOCAL: [&str; 0] = [];
/// `opencode run` emits whole text parts: one delta per message.
const MESSAGES: MessageShape = MessageShape { id_prefix: "", deltas: Deltas::OneWhole };

// ------------------------------------------------------------------ setup

fn require_opencode() -> PathBuf {
    if let Some(p) = find_executable("opencode", path_dirs().into_iter().chain([project_agents_bin()])) {
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    panic!(
        "the real opencode CLI is not on PATH ({}) nor in .tools/npm. These tests need it: \
         run `scripts/install-agents.sh all` (installs opencode-ai@1.18.33).",
        path.to_string_lossy()
    );
}

struct Rig {
    // Field order: the gateway (and its workers) stops before the mock, and
    // both before the next test may start.
    gw: Gateway,
    mock: MockModel,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Rig {
    /// `tools_allowed`: the ceiling `security.tools.allowed`.
    fn start(tools_allowed: &[&str]) -> Rig {
        let serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let opencode = require_opencode();
        let mock = MockModel::start();
        let config = json!({
            "$schema": "https://opencode.ai/config.json",
            "model": "anthropic/claude-sonnet-4-5",
            "provider": {"anthropic": {"options": {"baseURL": format!("{}/v1", mock.base_url()), "apiKey": "sk-test"}}},
        });
        let yaml = format!(
            "workers:\n  opencode_cli:\n    enabled: true\n    command: \"{}\"\n    env:\n      OPENCODE_CONFIG_CONTENT: '{}'\n      npm_config_registry: \"http://127.0.0.1:9/\"\nsecurity:\n  tools:\n    allowed: {}\n",
            opencode.display(),
            config,
            json!(tools_allowed),
        );
        let gw = Gateway::start_with(Options { yaml, ..Options::default() });
        Rig { gw, mock, _serial: serial }
    }

    /// The text block of the mock's answer to `prompt`.
    fn mock_text(&self, prompt: &str) -> String {
        self.mock.answer_block(MODEL, prompt, "text")
    }

    /// A driver connection on the opencode_cli session with client key `key`.
    fn session(&self, key: &str, config: Value) -> (Client, String, Value) {
        let mut c = self.gw.connect();
        let ack = c.init(json!({"worker_type": "opencode_cli", "session_id": key, "config": config}));
        assert_eq!(data(&ack)["state"], "idle", "new session not idle: {ack}");
        let sid = data(&ack)["session_id"].as_str().expect("session_id").to_owned();
        (c, sid, ack)
    }
}

// ------------------------------------------------------------------ helpers

fn run_turn(c: &mut Client, text: &str) -> Vec<Value> {
    c.turn_within(text, TURN)
}

/// Wait for the first `step{start}`: the turn's LLM call is under way.
fn until_step_start(c: &mut Client) -> Vec<Value> {
    let frames = c.until(TURN, |f| (ev_type(f) == "step" && data(f)["status"] == "start") || ev_type(f) == "done");
    assert_eq!(ev_type(frames.last().expect("a frame")), "step", "turn ended before its LLM call: {frames:#?}");
    frames
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The (single) owner's work dir: `{dir}/work/{owner_hash}`.
fn owner_work_dir(rig: &Rig) -> PathBuf {
    let root = rig.gw.dir.path().join("work");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&root).expect("work root").flatten().map(|e| e.path()).collect();
    assert_eq!(dirs.len(), 1, "one owner work dir: {dirs:?}");
    dirs[0].clone()
}

/// Recursively look for files named `name*` under `dir`.
fn find_files(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_files(&p, name, out);
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(name)) {
            out.push(p);
        }
    }
}

// ------------------------------------------------------------------ tests

/// Plain turn: caps, the model's text as one whole-part message, stats with
/// tokens and cost; a prompt far larger than a pipe buffer reaches opencode whole.
#[test]
fn plain_turn_caps_text_and_stats() {
    let rig = Rig::start(&[]);
    let expected = rig.mock_text("say hi");
    let (mut c, _sid, ack) = rig.session("plain", json!({}));
    let caps = &data(&ack)["server_caps"];
    assert_eq!(caps["worker_type"], "opencode_cli");
    assert_eq!(caps["supports_permissions"], false, "{caps}");
    assert_eq!(caps["supports_delta"], false, "{caps}");
    assert_eq!(caps["supports_interrupt"], true, "{caps}");
    assert_eq!(caps["supports_resume"], true, "{caps}");

    // What could be left in the work dir to widen the policy for a later
    // turn (an agent file with its own permission, a project opencode.json):
    // ignored (OPENCODE_DISABLE_PROJECT_CONFIG; the edit rules keep an agent
    // from writing them, see `edit_allowed_cannot_plant_opencode_config`).
    let work = owner_work_dir(&rig);
    std::fs::create_dir_all(work.join(".opencode/agent")).expect("mkdir");
    let agent = "---\ndescription: x\nmode: primary\npermission:\n  bash: allow\n---\nYou are build.\n";
    std::fs::write(work.join(".opencode/agent/build.md"), agent).expect("agent file");
    std::fs::write(work.join("opencode.json"), r#"{"permission":{"*":"allow","bash":"allow"}}"#).expect("config");

    let frames = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    assert_eq!(assert_messages(&frames, &MESSAGES), vec![expected]);
    assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");
    let steps: Vec<&Value> = of_type(&frames, "step");
    assert_eq!(steps.len(), 2, "one LLM call, start and end: {frames:#?}");
    assert_eq!(data(steps[0])["step_type"], "llm_call");
    let stats = &done_of(&frames)["stats"];
    for k in ["input_tokens", "output_tokens", "total_tokens"] {
        assert!(stats[k].as_u64().is_some_and(|n| n > 0), "{k}: {stats}");
    }
    assert!(stats["cost_usd"].as_f64().is_some_and(|x| x > 0.0), "{stats}");
    assert_eq!(stats["tool_calls"], 0);
    assert!(stats["duration_ms"].as_u64().is_some(), "{stats}");
    // Default policy (empty ceiling): opencode is offered no tool at all,
    // whatever the work dir's opencode.json and agent file say.
    assert_eq!(rig.mock.request_for("say hi")["tools"], json!([]), "tools offered under an empty ceiling");

    // 100 KB prompt: written to stdin past the pipe buffer, then EOF.
    let big = format!("{} [[echo]]", "0123456789".repeat(10_000));
    let frames = run_turn(&mut c, &big);
    assert!(assert_turn_shape(&frames, &LOCAL), "big turn failed");
    let echoed = assert_messages(&frames, &MESSAGES).join("");
    assert!(echoed.contains(&big), "prompt of {} bytes not echoed whole ({} bytes back)", big.len(), echoed.len());
}

/// Tool use allowed by the ceiling (`security.tools.allowed: [Bash]`):
/// the model's reasoning as `reasoning`, `tool_call` immediately followed
/// by its `tool_result`; a client that
/// denies Bash gets an agent that is not even offered the tool.
#[test]
fn tool_use_allowed_by_the_ceiling_and_denied_by_the_client() {
    let rig = Rig::start(&["Bash"]);
    let (mut c, _sid, _) = rig.session("tools", json!({}));
    let frames = run_turn(&mut c, "run [[thinking]][[tool:bash]]");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    // The model's thinking block arrives as one whole `reasoning` event.
    let reasoning = of_type(&frames, "reasoning");
    assert_eq!(reasoning.len(), 1, "{frames:#?}");
    assert!(data(reasoning[0])["content"].as_str().is_some_and(|t| t.contains("think")), "{frames:#?}");
    let ci =
        frames.iter().position(|f| ev_type(f) == "tool_call").unwrap_or_else(|| panic!("no tool_call: {frames:#?}"));
    let call = data(&frames[ci]);
    assert_eq!(call["name"], "bash");
    assert_eq!(call["status"], "executing");
    assert_eq!(call["input"]["command"], "echo mock-tool-output");
    let result = data(&frames[ci + 1]);
    assert_eq!(ev_type(&frames[ci + 1]), "tool_result", "{frames:#?}");
    assert_eq!(result["id"], call["id"]);
    assert_eq!(result["is_error"], false, "{result}");
    assert!(result["output"].as_str().is_some_and(|o| o.contains("mock-tool-output")), "{result}");
    assert_eq!(of_type(&frames, "permission_request").len(), 0);
    assert_eq!(done_of(&frames)["stats"]["tool_calls"], 1);
    let msgs = assert_messages(&frames, &MESSAGES);
    assert!(msgs.last().is_some_and(|m| m.contains("mock-tool-output")), "{msgs:?}");
    assert_eq!(
        rig.mock.request_for("run [[thinking]][[tool:bash]]")["tools"],
        json!(["bash"]),
        "only the allowed tool is offered"
    );

    let (mut c2, _sid2, _) = rig.session("tools-denied", json!({"disallowed_tools": ["Bash"]}));
    let frames = run_turn(&mut c2, "again [[tool:bash]]");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    assert!(of_type(&frames, "tool_call").is_empty(), "a denied tool ran: {frames:#?}");
    assert_eq!(rig.mock.request_for("again [[tool:bash]]")["tools"], json!([]));

    // A tool name opencode cannot express is refused at init.
    let mut c3 = rig.gw.connect();
    c3.send("init", json!({"worker_type": "opencode_cli", "config": {"allowed_tools": ["mcp__x__y"]}}));
    let e = c3.recv();
    assert_eq!(data(&e)["code"], "CONFIG_INVALID", "{e}");
}

/// Interrupt: a slow answer and a running tool shell both end at once with
/// `done{success:false}` and no error; the turn's process and its escaped
/// tool shell are gone when `done` arrives; the next turn works.
#[test]
fn interrupt_kills_the_turn_process_and_its_tool_shells() {
    let rig = Rig::start(&["Bash"]);
    let (mut c, sid, _) = rig.session("interrupt", json!({}));

    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = until_step_start(&mut c);
    assert!(!processes_of_session(&sid).is_empty(), "no process for the turn");
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    frames.extend(c.until(INTERRUPT, |f| ev_type(f) == "done"));
    let took = t0.elapsed();
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert!(!assert_turn_shape(&frames, &LOCAL), "an interrupted turn is no success: {frames:#?}");
    assert!(of_type(&frames, "error").is_empty(), "no error on interrupt: {frames:#?}");
    assert!(took < Duration::from_secs(3), "interrupt took {took:?}");
    assert_eq!(processes_of_session(&sid), Vec::<i32>::new(), "turn process alive after done");

    c.send("input", json!({"content": "long tool [[tool:bash:sleep 30]]"}));
    let t_start = Instant::now();
    let shell = loop {
        let found = processes_of_session(&sid).into_iter().find(|p| cmdline(*p).contains("sleep 30"));
        if let Some(p) = found {
            break p;
        }
        assert!(t_start.elapsed() < TURN, "the tool shell never started; frames: {:#?}", c.seen);
        std::thread::sleep(Duration::from_millis(50));
    };
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    let mut frames = c.until(INTERRUPT, |f| ev_type(f) == "done");
    let took = t0.elapsed();
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert_eq!(data(frames.iter().find(|f| ev_type(f) == "done").expect("done"))["success"], false);
    assert!(of_type(&frames, "error").is_empty(), "no error on interrupt: {frames:#?}");
    assert!(took < Duration::from_secs(3), "interrupt took {took:?}");
    assert!(!Path::new(&format!("/proc/{shell}")).exists() || cmdline(shell).is_empty(), "tool shell {shell} survived");
    assert_eq!(processes_of_session(&sid), Vec::<i32>::new(), "session processes alive after done");

    let next = run_turn(&mut c, "say again");
    assert!(assert_turn_shape(&next, &LOCAL), "turn after interrupt failed: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("say again")]);
}

/// Multi-turn: the second turn's process continues the first one's opencode
/// session (`--session`), so the model gets turn 1 as history. Then
/// terminate and re-init with the same key: the session resumes and the
/// next turn continues the same conversation again.
#[test]
fn turns_continue_the_conversation_also_after_terminate() {
    let rig = Rig::start(&[]);
    let (mut c, sid, _) = rig.session("resume", json!({}));
    let first = run_turn(&mut c, "remember the word PINEAPPLE");
    assert!(assert_turn_shape(&first, &LOCAL), "turn 1 failed: {first:#?}");
    let again = run_turn(&mut c, "and now [[recall]]");
    assert!(assert_turn_shape(&again, &LOCAL), "turn 2 failed: {again:#?}");
    let answer = assert_messages(&again, &MESSAGES).join("\n");
    assert!(answer.contains("'remember the word PINEAPPLE'"), "turn 2 lost turn 1: {answer:?}");
    assert!(processes_of_session(&sid).is_empty(), "a process stayed between turns");

    c.send("control", json!({"action": "terminate"}));
    let t = c.until(STATE, |f| is_state(f, "terminated"));
    assert!(of_type(&t, "error").is_empty(), "{t:#?}");
    drop(c);

    let mut c2 = rig.gw.connect();
    let ack = c2.init(json!({"worker_type": "opencode_cli", "session_id": "resume"}));
    assert_eq!(data(&ack)["session_id"], sid.as_str());
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    assert_eq!(data(&ack)["state"], "idle", "{ack}");
    let idle = c2.recv_within(STATE).expect("state after resume");
    assert!(is_state(&idle, "idle"), "expected state{{idle}} after init_ack, got {idle}");

    let second = run_turn(&mut c2, "what was it [[recall]]");
    assert!(assert_turn_shape(&second, &LOCAL), "turn 2 failed: {second:#?}");
    let answer = assert_messages(&second, &MESSAGES).join("\n");
    assert!(answer.contains("'remember the word PINEAPPLE'"), "resumed agent forgot turn 1: {answer:?}");
    let fresh = rig.mock.request_for("remember the word PINEAPPLE")["n_messages"].as_u64().expect("n_messages");
    let recall = rig.mock.request_for("what was it [[recall]]")["n_messages"].as_u64().expect("n_messages");
    assert!(recall > fresh, "history not sent: {fresh} vs {recall}");
}

/// Model API failure: `error{AGENT_ERROR}` with the agent's text, then
/// `done{success:false}`; the session goes on.
#[test]
fn api_error_is_an_agent_error_and_the_session_goes_on() {
    let rig = Rig::start(&[]);
    let (status, body) = rig.mock.answer(MODEL, "[[error:400]]");
    assert_eq!(status, 400, "{body}");
    let mock_message = body["error"]["message"].as_str().expect("mock error message").to_owned();
    let (mut c, _sid, _) = rig.session("apierror", json!({}));

    let frames = run_turn(&mut c, "bad [[error:400]]");
    assert!(!assert_turn_shape(&frames, &LOCAL), "a failed turn is no success: {frames:#?}");
    let e = data(the_error(&frames, "AGENT_ERROR"));
    assert_eq!(e["message"], mock_message.as_str(), "{e}");
    assert_eq!(e["details"]["worker_type"], "opencode_cli", "{e}");
    assert_eq!(e["details"]["status"], 400, "{e}");
    assert_eq!(e["details"]["retryable"], false, "{e}");

    let next = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&next, &LOCAL), "session unusable after an API error: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("say hi")]);
}

/// A turn process killed by someone else: `error{WORKER_CRASH}` +
/// `done{success:false}`, and the session stays idle (the next input
/// starts a new process).
#[test]
fn killed_turn_process_is_a_crash_and_the_session_stays_idle() {
    let rig = Rig::start(&[]);
    let (mut c, sid, _) = rig.session("killed", json!({}));
    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = until_step_start(&mut c);
    let gw_children = children_of(rig.gw.pid());
    let leader = processes_of_session(&sid)
        .into_iter()
        .find(|p| gw_children.contains(p))
        .unwrap_or_else(|| panic!("no turn process among the gateway's children"));
    // SAFETY: plain kill(2) of the turn's process, verified above as ours.
    unsafe { libc::kill(leader, libc::SIGTERM) };
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert!(!assert_turn_shape(&frames, &LOCAL), "{frames:#?}");
    let e = data(the_error(&frames, "WORKER_CRASH"));
    assert_eq!(e["details"]["signal"], libc::SIGTERM, "{frames:#?}");
    assert!(!of_type(&frames, "state").iter().any(|f| is_state(f, "terminated")), "{frames:#?}");

    let next = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&next, &LOCAL), "session unusable after a crash: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("say hi")]);
}

/// opencode lost the agent session (its store was wiped): the `--session`
/// turn fails as a refused resume — `error{AGENT_ERROR, subtype:resume_failed}`,
/// `done{success:false}`, `state{terminated}` — and a re-init starts afresh.
#[test]
fn lost_agent_session_is_a_resume_failure() {
    let rig = Rig::start(&[]);
    let (mut c, _sid, _) = rig.session("lost", json!({}));
    let first = run_turn(&mut c, "remember the word KIWI");
    assert!(assert_turn_shape(&first, &LOCAL), "turn 1 failed: {first:#?}");
    let mut dbs = Vec::new();
    find_files(rig.gw.dir.path(), "opencode.db", &mut dbs);
    assert!(!dbs.is_empty(), "no opencode store under the gateway's dir");
    for p in dbs {
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    c.send("input", json!({"content": "[[recall]]"}));
    let frames = c.until(TURN, |f| is_state(f, "terminated"));
    let e = data(of_type(&frames, "error").first().copied().unwrap_or_else(|| panic!("no error: {frames:#?}")));
    assert_eq!(e["code"], "AGENT_ERROR", "{e}");
    assert_eq!(e["details"]["subtype"], "resume_failed", "{e}");
    assert_eq!(done_of(&frames)["success"], false);
    drop(c);

    let mut c2 = rig.gw.connect();
    let ack = c2.init(json!({"worker_type": "opencode_cli", "session_id": "lost"}));
    assert_eq!(data(&ack)["state"], "idle", "{ack}");
    let idle = c2.recv_within(STATE).expect("state after resume");
    assert!(is_state(&idle, "idle"), "expected state{{idle}} after init_ack, got {idle}");
    let next = run_turn(&mut c2, "[[recall]]");
    assert!(assert_turn_shape(&next, &LOCAL), "fresh start failed: {next:#?}");
    assert_eq!(
        assert_messages(&next, &MESSAGES),
        vec![rig.mock_text("[[recall]]")],
        "a fresh agent session remembers nothing"
    );
}

/// The turn's process cannot be spawned (its work dir became a file): the
/// turn fails with `done{success:false}`, the session stays idle and works
/// again once the directory is back.
#[test]
fn failed_turn_spawn_fails_the_turn_not_the_session() {
    let rig = Rig::start(&[]);
    let (mut c, _sid, _) = rig.session("spawnfail", json!({}));
    let work = owner_work_dir(&rig);
    std::fs::remove_dir_all(&work).expect("remove work dir");
    std::fs::write(&work, b"not a directory").expect("file in its place");

    let frames = run_turn(&mut c, "say hi");
    assert!(!assert_turn_shape(&frames, &LOCAL), "{frames:#?}");
    the_error(&frames, "CONFIG_INVALID");

    std::fs::remove_file(&work).expect("remove the file");
    let next = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&next, &LOCAL), "session unusable after a failed spawn: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES), vec![rig.mock_text("say hi")]);
}

/// Edit allowed, Bash not: the agent cannot write opencode's own config or
/// plugin files (a plugin in `.opencode/` would run code in opencode on the
/// next turn, project config off or not), other files it can.
#[test]
fn edit_allowed_cannot_plant_opencode_config() {
    let rig = Rig::start(&["Edit", "Write"]);
    let (mut c, _sid, _) = rig.session("edit", json!({}));
    let prompt = "[[tool:write:.opencode/plugin/p.ts]] [[tool:write:sub/opencode.json]] [[tool:write:ok.txt]]";
    let frames = run_turn(&mut c, prompt);
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    let results: Vec<(String, bool)> = of_type(&frames, "tool_call")
        .iter()
        .map(|call| {
            let id = &data(call)["id"];
            let r = frames.iter().find(|f| ev_type(f) == "tool_result" && data(f)["id"] == *id).expect("result");
            let path = data(call)["input"]["filePath"].as_str().unwrap_or("").to_owned();
            (path, data(r)["is_error"] == true)
        })
        .collect();
    assert_eq!(
        results,
        [
            (".opencode/plugin/p.ts".to_owned(), true),
            ("sub/opencode.json".to_owned(), true),
            ("ok.txt".to_owned(), false)
        ],
        "{frames:#?}"
    );
    let work = owner_work_dir(&rig);
    assert!(!work.join(".opencode").exists() && !work.join("sub/opencode.json").exists());
    assert!(work.join("ok.txt").exists());
    let tools = rig.mock.request_for(prompt)["tools"].clone();
    assert!(tools.as_array().is_some_and(|t| !t.iter().any(|x| x == "bash")), "bash offered: {tools}");
}
