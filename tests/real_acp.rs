//! Black-box tests of the `acpx` worker type with the real ACP agents —
//! `claude-code-acp` (pinned 0.16.2, driving the `claude` 2.1.197 binary
//! through `CLAUDE_CODE_EXECUTABLE`, workers.md §5.6) and `opencode acp`
//! (1.18.33) — through the gateway, against the local mock model
//! (workers.md §5, §8; aep-v1.md §3, §4, §6).
//!
//! Each test starts its own mock model and gateway; the gateway gives each
//! owner a private HOME, so the agents' state is isolated per test.
//! Expected texts are asked from the mock directly, never guessed. Every
//! wait has a deadline; nothing sleeps to synchronise. The agents are
//! found in `scripts/install-agents.sh all`'s prefix (`.tools/npm`, or
//! `$HOTPLEX_TOOLS/npm`, or the bin dir in `$HOTPLEX_AGENTS_BIN`) and then
//! on PATH; if one is missing its tests fail with the command that installs
//! it (a silent skip would hide a broken setup).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mock_model::MockModel;
use support::turns::*;
use support::*;

/// Deadline for one whole turn of a real agent.
const TURN: Duration = Duration::from_secs(60);
/// Deadline for a state change (start-up, terminate waits for reaping).
const STATE: Duration = Duration::from_secs(30);
/// ACP agents stream text in chunks (any number of deltas).
const MESSAGES: MessageShape = MessageShape { id_prefix: "", deltas: Deltas::Any };

// ------------------------------------------------------------------ setup

/// The install script's bin directory.
fn agents_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HOTPLEX_AGENTS_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let tools = std::env::var_os("HOTPLEX_TOOLS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    tools.join("npm/node_modules/.bin")
}

/// PATH for the gateway (and so its workers): the agents first.
fn agents_path() -> String {
    let rest = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    format!("{}:{rest}", agents_bin_dir().display())
}

/// `name` on the agents' PATH, or a failing test that says how to fix it.
fn require(name: &str) -> PathBuf {
    if let Some(p) = find_executable(name, std::env::split_paths(&agents_path())) {
        return p;
    }
    panic!("the ACP agent `{name}` is not installed: run `scripts/install-agents.sh all` (CI does)");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agent {
    /// claude-code-acp driving the pinned `claude`.
    Claude,
    /// `opencode acp`, bash set to "ask".
    Opencode,
}

/// One mock model and one gateway whose acpx workers run `agent` against it.
struct Rig {
    // Field order: the gateway (and its workers) stops before the mock.
    gw: Gateway,
    mock: MockModel,
}

impl Rig {
    fn start(agent: Agent) -> Rig {
        let mock = MockModel::start();
        let agent_yaml = match agent {
            Agent::Claude => {
                require("claude-code-acp");
                let claude = require("claude");
                format!(
                    "    agent: \"claude\"\n    agents:\n      claude:\n        command: \"claude-code-acp\"\n    env:\n      \
                     ANTHROPIC_BASE_URL: \"{url}\"\n      ANTHROPIC_API_KEY: \"sk-test\"\n      \
                     CLAUDE_CODE_EXECUTABLE: \"{claude}\"\n      IS_SANDBOX: \"1\"\n      CLAUDE_CODE_MAX_RETRIES: \"1\"\n",
                    url = mock.base_url(),
                    claude = claude.display()
                )
            }
            Agent::Opencode => {
                require("opencode");
                let config = json!({
                    "$schema": "https://opencode.ai/config.json",
                    "model": "anthropic/claude-sonnet-4-5",
                    "provider": {"anthropic": {"options": {"baseURL": format!("{}/v1", mock.base_url()), "apiKey": "sk-test"}}},
                    "autoupdate": false,
                    "share": "disabled",
                    "permission": {"bash": "ask"}
                });
                format!(
                    "    agent: \"opencode\"\n    agents:\n      opencode:\n        command: \"opencode\"\n        args: [\"acp\"]\n    env:\n      \
                     OPENCODE_CONFIG_CONTENT: '{config}'\n      OPENCODE_DISABLE_MODELS_FETCH: \"1\"\n      \
                     npm_config_registry: \"http://127.0.0.1:9/\"\n"
                )
            }
        };
        let yaml = format!("worker:\n  start_timeout: 60s\nworkers:\n  acpx:\n    enabled: true\n{agent_yaml}");
        let gw = Gateway::start_with(Options { yaml, env: vec![("PATH".into(), agents_path())], ..Options::default() });
        Rig { gw, mock }
    }

    /// A driver connection on the acpx session with client key `key`.
    fn session(&self, key: &str) -> (Client, String) {
        let mut c = self.gw.connect();
        c.send("init", json!({"worker_type": "acpx", "session_id": key}));
        let ack = c.recv_within(STATE).unwrap_or_else(|e| panic!("no init reply: {e:?}\n{}", self.gw.stderr()));
        assert_eq!(ev_type(&ack), "init_ack", "init failed: {ack}\n{}", self.gw.stderr());
        assert_eq!(data(&ack)["state"], "idle", "{ack}");
        let sid = data(&ack)["session_id"].as_str().expect("session_id").to_owned();
        (c, sid)
    }

    /// A driver connection resuming the terminated session `key`:
    /// `init_ack{resumed:true, idle}` then the session's `state{idle}`.
    fn resume(&self, key: &str) -> (Client, String) {
        let (mut c, sid) = self.session(key);
        assert_eq!(c.seen[0]["event"]["data"]["resumed"], true, "{:?}", c.seen);
        let idle = c.recv_within(STATE).expect("state after resume");
        assert!(is_state(&idle, "idle"), "expected state{{idle}} after init_ack, got {idle}");
        (c, sid)
    }

    /// The text block the mock answers a fresh one-message conversation with.
    fn mock_text(&self, prompt: &str) -> String {
        self.mock.answer_block("claude-opus-4-8", prompt, "text")
    }

    /// The session's agent process (the gateway's direct child).
    fn worker_pid(&self, sid: &str) -> i32 {
        let kids = children_of(self.gw.pid());
        let ours = processes_of_session(sid);
        let pids: Vec<i32> = kids.into_iter().filter(|p| ours.contains(p)).collect();
        assert_eq!(pids.len(), 1, "one worker process per session: {pids:?}");
        pids[0]
    }
}

// ------------------------------------------------------------------ helpers

fn run_turn(c: &mut Client, text: &str) -> Vec<Value> {
    c.turn_within(text, TURN)
}

fn until(c: &mut Client, pred: impl FnMut(&Value) -> bool) -> Vec<Value> {
    c.until(TURN, pred)
}

// ------------------------------------------------------------------ scenarios (both agents)

/// Plain turn: the streamed text is the model's; done.stats carries what
/// the agent reports — tokens and cost for opencode, none for
/// claude-code-acp (absent, never 0) — and the gateway's duration.
fn plain_turn(agent: Agent) {
    let rig = Rig::start(agent);
    let expected = rig.mock_text("say hi");
    let (mut c, _sid) = rig.session(&format!("plain-{agent:?}"));
    let frames = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    assert_eq!(assert_messages(&frames, &MESSAGES), vec![expected.clone()]);
    assert_eq!(delta_text(&frames), expected);
    assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");
    let stats = stats_of(&frames);
    assert!(stats["duration_ms"].is_u64(), "{stats}");
    assert_eq!(stats["tool_calls"], 0, "{stats}");
    match agent {
        Agent::Claude => {
            for k in ["input_tokens", "output_tokens", "total_tokens", "cost_usd", "context_used_percent"] {
                assert!(stats.get(k).is_none(), "claude-code-acp reports no {k}: {stats}");
            }
        }
        Agent::Opencode => {
            for k in ["input_tokens", "output_tokens", "total_tokens"] {
                assert!(stats[k].as_u64().is_some_and(|n| n > 0), "{k}: {stats}");
            }
            assert!(stats["cost_usd"].as_f64().is_some_and(|x| x > 0.0), "cost_usd: {stats}");
            assert!(stats["context_used_percent"].as_f64().is_some_and(|x| x > 0.0), "{stats}");
            assert_eq!(stats["model"], "anthropic/claude-sonnet-4-5", "{stats}");
        }
    }
    assert_seq(&c.seen, &LOCAL);
}

/// A bash command that asks: allow → tool_call, tool_result ok, the file
/// exists; deny → tool_result is_error, no file, the turn still succeeds.
fn permission_round_trip(agent: Agent) {
    let rig = Rig::start(agent);
    let (mut c, _sid) = rig.session(&format!("perm-{agent:?}"));
    let work = rig.gw.dir.path().join("work");
    for (file, allow) in [("allowed.txt", true), ("denied.txt", false)] {
        let command = format!("touch {file}");
        c.send("input", json!({"content": format!("[[tool:bash:{command}]]")}));
        let mut frames = until(&mut c, |f| ev_type(f) == "permission_request" || ev_type(f) == "done");
        let req = frames.last().cloned().unwrap_or_default();
        assert_eq!(ev_type(&req), "permission_request", "no permission asked: {frames:#?}");
        let rd = data(&req);
        let tool = if agent == Agent::Claude { "Bash" } else { "execute" };
        assert_eq!(rd["tool_name"], tool, "{req}");
        assert_eq!(rd["input"]["command"], command.as_str(), "{req}");
        assert!(rd["options"].as_array().is_some_and(|o| o.len() >= 2), "options forwarded: {req}");
        // The tool_call (with the full input) came first.
        let call = data(of_type(&frames, "tool_call").first().copied().expect("tool_call before the prompt")).clone();
        assert_eq!(call["input"]["command"], command.as_str(), "{call}");
        assert!(find_file(&work, file).is_none(), "ran before the answer");

        let id = rd["id"].as_str().expect("permission id").to_owned();
        c.send("permission_response", json!({"id": id, "allowed": allow, "reason": "test says so"}));
        frames.extend(until(&mut c, |f| is_state(f, "idle")));
        // claude-code-acp stops the turn on a denial (over claude 2.1.197 as
        // a prompt error, which is no agent error); opencode carries on.
        let success = assert_turn_shape(&frames, &LOCAL);
        assert_eq!(success, allow || agent == Agent::Opencode, "{frames:#?}");
        let result = of_type(&frames, "tool_result")
            .into_iter()
            .find(|r| data(r)["id"] == call["id"])
            .unwrap_or_else(|| panic!("no tool_result for {call}: {frames:#?}"));
        assert_eq!(data(result)["is_error"], !allow, "{result}");
        assert_eq!(find_file(&work, file).is_some(), allow, "{file}: {frames:#?}");
        assert_eq!(stats_of(&frames)["tool_calls"], 1);
        assert!(of_type(&frames, "error").is_empty(), "{frames:#?}");
    }
    assert_seq(&c.seen, &LOCAL);
}

/// Interrupt mid-stream: done{success:false} soon, no error, the agent
/// process survives and the next turn works.
fn interrupt(agent: Agent) {
    let rig = Rig::start(agent);
    let (mut c, sid) = rig.session(&format!("interrupt-{agent:?}"));
    let worker = rig.worker_pid(&sid);
    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = until(&mut c, |f| ev_type(f) == "message.delta" || ev_type(f) == "done");
    assert_eq!(ev_type(frames.last().unwrap_or(&Value::Null)), "message.delta", "{frames:#?}");
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    frames.extend(c.until(Duration::from_secs(5), |f| ev_type(f) == "done"));
    let took = t0.elapsed();
    frames.extend(c.until(STATE, |f| is_state(f, "idle")));
    assert!(took < Duration::from_secs(5), "interrupt took {took:?}");
    assert!(!assert_turn_shape(&frames, &LOCAL), "an interrupted turn is not a success: {frames:#?}");
    assert!(of_type(&frames, "error").is_empty(), "no error on interrupt: {frames:#?}");
    assert_messages(&frames, &MESSAGES);
    assert_eq!(rig.worker_pid(&sid), worker, "the agent was replaced");

    let next = run_turn(&mut c, "say again");
    assert!(assert_turn_shape(&next, &LOCAL), "turn after interrupt failed: {next:#?}");
    assert_eq!(assert_messages(&next, &MESSAGES).last(), Some(&rig.mock_text("say again")));
    assert_seq(&c.seen, &LOCAL);
}

/// Terminate, then re-init with the same key: a new agent process resumes
/// the conversation (`session/resume`), proven by `[[recall]]`.
fn terminate_then_resume(agent: Agent) {
    let rig = Rig::start(agent);
    let key = format!("resume-{agent:?}");
    let (mut c, sid) = rig.session(&key);
    let first = run_turn(&mut c, "remember the word PINEAPPLE");
    assert!(assert_turn_shape(&first, &LOCAL), "turn 1 failed: {first:#?}");
    let before = rig.worker_pid(&sid);
    if agent == Agent::Claude {
        // claude-code-acp answers the prompt before claude has written its
        // transcript; a terminate within that window loses the agent's
        // conversation (the resume then fails cleanly, see
        // claude_refused_resume_fails_the_init_then_starts_fresh). Wait for
        // it, as a user pausing between turns would (docs/agents.md, acpx).
        let landed = eventually(Duration::from_secs(30), || transcript_has(rig.gw.dir.path(), "PINEAPPLE"));
        assert!(landed, "claude never wrote its transcript");
    }

    c.send("control", json!({"action": "terminate"}));
    let t = c.until(STATE, |f| is_state(f, "terminated"));
    assert!(of_type(&t, "error").is_empty(), "terminate while idle is no error: {t:#?}");
    assert_eq!(processes_of_session(&sid), Vec::<i32>::new(), "agent alive at state{{terminated}}");
    drop(c);

    let (mut c2, sid2) = rig.resume(&key);
    assert_eq!(sid2, sid);
    assert_ne!(rig.worker_pid(&sid), before, "old agent reused");
    let second = run_turn(&mut c2, "what was it [[recall]]");
    assert!(assert_turn_shape(&second, &LOCAL), "turn 2 failed: {second:#?}");
    let answer = assert_messages(&second, &MESSAGES).join("\n");
    assert!(answer.contains("'remember the word PINEAPPLE'"), "resumed agent forgot turn 1: {answer:?}");
    if agent == Agent::Opencode {
        // Tokens are per turn; opencode's cost is cumulative over the agent
        // session, so the first turn after a resume has no known cost.
        let stats = stats_of(&second);
        assert!(stats["input_tokens"].as_u64().is_some_and(|n| n > 0), "{stats}");
        assert!(stats.get("cost_usd").is_none(), "{stats}");
    }
    assert_seq(&c2.seen, &LOCAL);
}

// ------------------------------------------------------------------ claude-code-acp

#[test]
fn claude_plain_turn_without_usage() {
    plain_turn(Agent::Claude);
}

#[test]
fn claude_tool_call_and_result() {
    let rig = Rig::start(Agent::Claude);
    let (mut c, _sid) = rig.session("tool");
    let frames = run_turn(&mut c, "run [[tool:bash:echo hello-tool]]");
    assert!(assert_turn_shape(&frames, &LOCAL), "turn failed: {frames:#?}");
    let calls = of_type(&frames, "tool_call");
    assert_eq!(calls.len(), 1, "announced twice by the agent, once to the client: {frames:#?}");
    let call = data(calls[0]);
    assert_eq!(call["name"], "Bash");
    assert_eq!(call["input"]["command"], "echo hello-tool");
    let id = call["id"].as_str().expect("tool_call.id");
    let ri = pos(&frames, |f| ev_type(f) == "tool_result" && data(f)["id"] == id).expect("tool_result");
    assert!(pos(&frames, |f| ev_type(f) == "tool_call").unwrap_or(usize::MAX) < ri);
    assert_eq!(data(&frames[ri])["is_error"], false);
    assert!(data(&frames[ri])["output"].as_str().is_some_and(|o| o.contains("hello-tool")), "{}", frames[ri]);
    assert!(of_type(&frames, "permission_request").is_empty(), "echo is auto-allowed");
    assert!(assert_messages(&frames, &MESSAGES).last().is_some_and(|m| m.contains("hello-tool")));
    assert_eq!(stats_of(&frames)["tool_calls"], 1);
}

#[test]
fn claude_permission_allow_and_deny() {
    permission_round_trip(Agent::Claude);
}

#[test]
fn claude_interrupt_keeps_the_agent() {
    interrupt(Agent::Claude);
}

#[test]
fn claude_terminate_then_resume() {
    terminate_then_resume(Agent::Claude);
}

#[test]
fn claude_api_error_is_an_agent_error() {
    let rig = Rig::start(Agent::Claude);
    let (mut c, _sid) = rig.session("apierror");
    let frames = run_turn(&mut c, "[[error:400]]");
    assert!(!assert_turn_shape(&frames, &LOCAL), "{frames:#?}");
    let e = data(the_error(&frames, "AGENT_ERROR"));
    assert!(e["message"].as_str().is_some_and(|m| m.contains("400") && m.contains("mock error 400")), "{e}");
    assert_eq!(e["details"]["worker_type"], "acpx");
    assert_eq!(e["details"]["status"], 400);
    let next = run_turn(&mut c, "say hi");
    assert!(assert_turn_shape(&next, &LOCAL), "session unusable after an API error: {next:#?}");
}

/// The agent dies mid-turn by a signal the gateway did not send:
/// error{WORKER_CRASH} + done{success:false} + state{terminated}; a
/// re-init brings the conversation back.
#[test]
fn claude_killed_agent_is_a_worker_crash() {
    let rig = Rig::start(Agent::Claude);
    let (mut c, sid) = rig.session("crash");
    let first = run_turn(&mut c, "remember the word MANGO");
    assert!(assert_turn_shape(&first, &LOCAL));
    let pid = rig.worker_pid(&sid);
    c.send("input", json!({"content": "stream slowly [[slow:10]]"}));
    let mut frames = until(&mut c, |f| ev_type(f) == "message.delta" || ev_type(f) == "done");
    // SAFETY: plain kill(2) of the agent process this test's gateway started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    frames.extend(c.until(STATE, |f| is_state(f, "terminated")));
    assert_seq(&frames, &LOCAL);
    let e = data(the_error(&frames, "WORKER_CRASH"));
    assert_eq!(e["details"]["signal"], libc::SIGTERM, "{frames:#?}");
    let done = of_type(&frames, "done");
    assert_eq!(done.len(), 1);
    assert_eq!(data(done[0])["success"], false);
    assert_messages(&frames, &MESSAGES);
    let st = frames.last().unwrap_or(&Value::Null);
    assert_eq!(data(st)["message"], "worker_exit", "{st}");
    drop(c);

    let (mut c2, _) = rig.resume("crash");
    let again = run_turn(&mut c2, "[[recall]]");
    assert!(assert_turn_shape(&again, &LOCAL), "{again:#?}");
    assert!(assert_messages(&again, &MESSAGES).join("").contains("'remember the word MANGO'"), "{again:#?}");
}

/// The agent no longer knows the conversation (its state was wiped while
/// the session was terminated): the resuming init fails with
/// WORKER_START_FAILED{subtype:resume_failed}, the log records the agent's
/// AGENT_ERROR, and the next init starts a fresh conversation.
#[test]
fn claude_refused_resume_fails_the_init_then_starts_fresh() {
    let rig = Rig::start(Agent::Claude);
    let (mut c, sid) = rig.session("lost");
    assert!(assert_turn_shape(&run_turn(&mut c, "remember the word KIWI"), &LOCAL));
    // claude writes its transcript (per-owner HOME under the data dir) a
    // little after the turn: wait for it, so that wiping it is what fails
    // the resume.
    let homes = rig.gw.dir.path().join("data/homes");
    assert!(eventually(STATE, || find_jsonl(&homes).is_some()), "no claude transcript under {}", homes.display());
    c.send("control", json!({"action": "terminate"}));
    c.until(STATE, |f| is_state(f, "terminated"));
    let last_seq = c.seen.iter().filter_map(|f| f["seq"].as_u64()).max().unwrap_or_default();
    drop(c);
    while let Some(f) = find_jsonl(&homes) {
        std::fs::remove_file(&f).expect("remove transcript");
    }

    let mut c2 = rig.gw.connect();
    c2.send("init", json!({"worker_type": "acpx", "session_id": "lost"}));
    let e = c2.recv_within(STATE).expect("init reply");
    assert_eq!(ev_type(&e), "error", "{e}");
    assert_eq!(data(&e)["code"], "WORKER_START_FAILED", "{e}");
    assert_eq!(data(&e)["details"]["subtype"], "resume_failed", "{e}");
    assert_eq!(c2.expect_close().0, 1008);

    let mut c3 = rig.gw.connect();
    c3.send("init", json!({"worker_type": "acpx", "session_id": "lost", "last_seq": last_seq}));
    let ack = c3.recv_within(STATE).expect("init reply");
    assert_eq!(ev_type(&ack), "init_ack", "{ack}");
    assert_eq!(data(&ack)["resumed"], true);
    assert_eq!(data(&ack)["state"], "idle");
    // The log tells what happened: the agent's error, the termination, the new start.
    let replayed = c3.until(STATE, |f| is_state(f, "idle"));
    let err = of_type(&replayed, "error");
    assert_eq!(err.len(), 1, "{replayed:#?}");
    assert_eq!(data(err[0])["code"], "AGENT_ERROR");
    assert_eq!(data(err[0])["details"]["subtype"], "resume_failed");
    assert!(replayed.iter().any(|f| is_state(f, "terminated") && data(f)["message"] == "worker_exit"), "{replayed:#?}");
    let fresh = run_turn(&mut c3, "[[recall]]");
    assert!(assert_turn_shape(&fresh, &LOCAL), "{fresh:#?}");
    assert_eq!(assert_messages(&fresh, &MESSAGES), vec![rig.mock_text("[[recall]]")], "a fresh conversation");
    assert_eq!(data(&ack)["session_id"], sid.as_str());
}

/// Any `*.jsonl` file below `dir`.
fn find_jsonl(dir: &Path) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if let Some(f) = find_jsonl(&p) {
                return Some(f);
            }
        } else if p.extension().is_some_and(|x| x == "jsonl") && p.to_string_lossy().contains("/projects/") {
            return Some(p);
        }
    }
    None
}

// ------------------------------------------------------------------ opencode acp

#[test]
fn opencode_plain_turn_with_tokens_and_cost() {
    plain_turn(Agent::Opencode);
}

#[test]
fn opencode_permission_allow_and_deny() {
    permission_round_trip(Agent::Opencode);
}

#[test]
fn opencode_interrupt_keeps_the_agent() {
    interrupt(Agent::Opencode);
}

#[test]
fn opencode_terminate_then_resume() {
    terminate_then_resume(Agent::Opencode);
}
