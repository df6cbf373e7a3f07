//! Golden transcript tests of the `pi` adapter: the real CLI's stdout
//! (tests/fixtures/pi/*.jsonl, pi 0.73.1 in RPC mode against the mock LLM)
//! is fed line by line, while a driver replays what the capture's driver
//! wrote to stdin (*.stdin.jsonl) through the adapter's own entry points:
//! prompts when idle (a prompt the session would refuse as busy is
//! skipped), permission answers after the adapter asked, aborts just before
//! pi's reaction to them. The capture's prompt ids are mapped to the
//! adapter's own in pi's responses. The resulting actions are rendered
//! compactly (consecutive deltas of one id merged) and compared with the
//! expected AEP sequence.

#[path = "support/golden.rs"]
mod golden;

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use golden::{Collected, StdinLines, Style, ToolOutput, assert_seq};
use hotplex::adapters::pi::{PiAdapter, PiConfig};
use hotplex::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, PermissionReply, Started};
use hotplex::protocol::{Event, Stats};
use serde_json::{Value, json};

const DIR: &str = "tests/fixtures/pi";
/// The agent session of fixture 01 (resumed by fixture 02).
const SESSION_01: &str = "01a2107c-a1b2-713c-a9b6-1d5cd73c5c68";

fn read_lines(name: &str) -> Vec<String> {
    golden::read_lines(DIR, name)
}

fn config() -> PiConfig {
    PiConfig {
        mode: "rpc".into(),
        provider: Some("mock".into()),
        gated_tools: vec!["bash".into(), "write".into(), "edit".into()],
        extension: "/srv/tools/hotplex_permission_gate.ts".into(),
    }
}

/// Everything one fixture run produced.
struct Run {
    actions: Vec<Action>,
    stats: Vec<(bool, Stats)>,
    /// Stdin lines the adapter wrote, parsed.
    stdin: Vec<Value>,
    inputs: usize,
}

/// Is `line` pi's reaction to an `abort`?
fn reacts_to_abort(line: &Value) -> bool {
    let ty = line.get("type").and_then(Value::as_str);
    (ty == Some("message_end") && line.pointer("/message/stopReason").and_then(Value::as_str) == Some("aborted"))
        || (ty == Some("tool_execution_end")
            && line.pointer("/result/content/0/text").and_then(Value::as_str) == Some("Command aborted"))
}

/// Feed fixture `name` through a fresh adapter launched with `spec`; when
/// `killed`, the capture ended by SIGTERM and the adapter sees that exit.
fn run(name: &str, spec: &LaunchSpec, killed: bool) -> Run {
    let stdout = read_lines(&format!("{name}.jsonl"));
    let mut stdin: VecDeque<Value> = read_lines(&format!("{name}.stdin.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("stdin fixture is JSON"))
        .collect();
    let parsed: Vec<Value> = stdout.iter().map(|l| serde_json::from_str(l).unwrap_or(Value::Null)).collect();

    let mut a = PiAdapter::new(config());
    let _ = a.launch(spec);
    let mut out = Out::default();
    let dir = Path::new("/srv/project");
    a.on_started(&Started { work_dir: dir, pid: 1 }, &mut out);
    let mut got = Collected { actions: out.take(), ..Collected::default() };
    let mut inputs = 0;
    // capture prompt id → the adapter's prompt id
    let mut prompt_ids: HashMap<String, String> = HashMap::new();

    for (i, line) in stdout.iter().enumerate() {
        let next = &parsed[i];
        while let Some(cmd) = stdin.front() {
            let ty = cmd.get("type").and_then(Value::as_str).unwrap_or("");
            let id = cmd.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
            match ty {
                // The adapter asks for the state itself at start.
                "get_state" => {}
                // A prompt the session would refuse (SESSION_BUSY) never reaches the adapter.
                "prompt" if got.running => {
                    let refused = next.get("type").and_then(Value::as_str) == Some("response")
                        && next.get("id").and_then(Value::as_str) == Some(id.as_str())
                        && next.get("success").and_then(Value::as_bool) == Some(false);
                    if !refused {
                        break;
                    }
                }
                "prompt" => {
                    let text = cmd.get("message").and_then(Value::as_str).unwrap_or("");
                    a.on_input(text, &mut out);
                    let ours = out.actions.iter().find_map(|x| match x {
                        Action::Stdin(b) => serde_json::from_slice::<Value>(b).ok(),
                        _ => None,
                    });
                    let ours = ours.and_then(|v| v["id"].as_str().map(str::to_owned)).expect("prompt id");
                    prompt_ids.insert(id, ours);
                    got.running = true;
                    inputs += 1;
                }
                "get_session_stats" => {}
                "abort" => {
                    if !reacts_to_abort(next) {
                        break;
                    }
                    a.on_interrupt(&mut out);
                }
                "extension_ui_response" => {
                    if !got.asked.contains(&id) {
                        break;
                    }
                    let allow = cmd.get("confirmed").and_then(Value::as_bool) == Some(true);
                    a.on_permission(&PermissionReply { id, allow, reason: None, remember: false }, &mut out);
                }
                _ => panic!("unexpected stdin record {cmd}"),
            }
            stdin.pop_front();
            got.take(&mut out);
        }
        let mut fed = line.clone();
        if next.get("type").and_then(Value::as_str) == Some("response")
            && next.get("command").and_then(Value::as_str) == Some("prompt")
        {
            if let Some(ours) = next.get("id").and_then(Value::as_str).and_then(|k| prompt_ids.get(k)) {
                let mut v = next.clone();
                v["id"] = json!(ours);
                fed = v.to_string();
            }
        }
        a.on_line(fed.as_bytes(), &mut out);
        got.take(&mut out);
    }
    assert!(stdin.is_empty(), "{name}: stdin records left unreplayed: {stdin:?}\n{:#?}", render(&got.actions));
    if killed {
        a.on_exit(&ExitInfo { code: Some(143), signal: None, signalled_by_gateway: true }, &mut out);
        got.take(&mut out);
    }

    let stats = golden::turn_ends(&got.actions);
    let stdin = golden::stdin_json(&got.actions, StdinLines::Strict);
    Run { actions: got.actions, stats, stdin, inputs }
}

/// pi's stdin writes: the command type and its id / answer fields.
fn render_stdin(b: &[u8]) -> String {
    let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
    let mut parts = vec![format!("stdin {}", v["type"].as_str().unwrap_or("?"))];
    for k in ["id", "confirmed", "cancelled"] {
        if let Some(x) = v.get(k) {
            parts.push(format!("{k}={}", x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())));
        }
    }
    parts.join(" ")
}

const STYLE: Style = Style { stdin: render_stdin, tool_output: ToolOutput::Text, merge_deltas: true };

/// One line per action; consecutive deltas of one id merged.
fn render(actions: &[Action]) -> Vec<String> {
    golden::render(actions, &STYLE)
}

/// Shape checks every transcript must pass (aep-v1.md §3.3, workers.md §1.2):
/// message ids unique, deltas only inside their start/end bracket and
/// concatenating to the final `message`, `turn_ends` turn ends.
fn check_invariants(name: &str, r: &Run, turn_ends: usize) {
    assert_eq!(golden::check_brackets(name, &r.actions), turn_ends, "{name}: turn ends");
}

#[test]
fn golden_01_thinking_tools_permission() {
    let r = run("01_rpc_new_thinking_tools_permission", &LaunchSpec::default(), false);
    assert_eq!(r.inputs, 2);
    check_invariants("01", &r, 2);
    assert_seq(
        "01",
        &render(&r.actions),
        &[
            "stdin get_state id=s1",
            "stdin prompt id=p2",
            "agent_session_id 01a2107c-a1b2-713c-a9b6-1d5cd73c5c68",
            "reasoning.delta pi-1-1-0 +Let me think about this mock request step by step.",
            "start pi-1-1-1",
            "delta pi-1-1-1 +Hello from mock LLM.",
            "end pi-1-1-1",
            "message pi-1-1-1 Hello from mock LLM.",
            "turn_end success=true",
            "stdin prompt id=p3",
            "start pi-2-1-0",
            "delta pi-2-1-0 +I will call the bash tool.",
            "end pi-2-1-0",
            "message pi-2-1-0 I will call the bash tool.",
            "tool_call toolu_mock_0007_a6f344a1 bash {\"command\":\"touch pi_made.txt\",\"timeout\":120000} executing",
            "permission ade46976-2c07-448b-813f-d520fc2476b1 bash bash touch pi_made.txt",
            "stdin extension_ui_response id=ade46976-2c07-448b-813f-d520fc2476b1 confirmed=true",
            "tool_result toolu_mock_0007_a6f344a1 is_error=false (no output)",
            "start pi-2-2-0",
            "delta pi-2-2-0 +I will call the write tool.",
            "end pi-2-2-0",
            "message pi-2-2-0 I will call the write tool.",
            "tool_call toolu_mock_0009_5766f323 write {\"content\":\"hello from mock\\n\",\"path\":\"mock_written.txt\"} executing",
            "permission 1913c593-7516-4f57-87af-666e0d4efe03 write write mock_written.txt",
            "stdin extension_ui_response id=1913c593-7516-4f57-87af-666e0d4efe03 confirmed=false",
            "tool_result toolu_mock_0009_5766f323 is_error=true Permission denied by the user",
            "start pi-2-3-0",
            "delta pi-2-3-0 +Tool finished. Result: Permission denied by the user",
            "end pi-2-3-0",
            "message pi-2-3-0 Tool finished. Result: Permission denied by the …",
            "turn_end success=true",
        ],
    );
    // Thinking arrives as three increments, text as one delta per word.
    let reasoning = r.actions.iter().filter(|a| matches!(a, Action::Emit(Event::Reasoning { .. }))).count();
    assert_eq!(reasoning, 3);

    // Usage summed over the turn's assistant messages (turn 2 made three
    // model calls); the context share uses get_state's contextWindow.
    let model = Some("mock-model".to_owned());
    let want = |input, output, total, cost, ctx| Stats {
        input_tokens: Some(input),
        output_tokens: Some(output),
        cache_read_tokens: Some(0),
        cache_write_tokens: Some(0),
        total_tokens: Some(total),
        cost_usd: Some(cost),
        model: model.clone(),
        context_used_percent: Some(ctx),
        ..Stats::default()
    };
    assert_eq!(r.stats, vec![(true, want(30, 4, 34, 0.00015, 0.015)), (true, want(606, 40, 646, 0.002418, 0.1495))]);

    // The permission prompt carries the gate's tool input.
    let asks: Vec<_> =
        r.actions.iter().filter_map(|a| if let Action::Permission(p) = a { Some(p) } else { None }).collect();
    assert_eq!(asks[0].input, Some(json!({"command": "touch pi_made.txt", "timeout": 120000})));
    assert_eq!(asks[1].input, Some(json!({"path": "mock_written.txt", "content": "hello from mock\n"})));

    // What the adapter wrote: exactly the records pi understands.
    assert_eq!(
        r.stdin,
        vec![
            json!({"type": "get_state", "id": "s1"}),
            json!({"type": "prompt", "id": "p2", "message": "say hi [[thinking]]"}),
            json!({"type": "prompt", "id": "p3", "message": "tools [[tool:bash:touch pi_made.txt]] [[tool:write]]"}),
            json!({"type": "extension_ui_response", "id": "ade46976-2c07-448b-813f-d520fc2476b1", "confirmed": true}),
            json!({"type": "extension_ui_response", "id": "1913c593-7516-4f57-87af-666e0d4efe03", "confirmed": false}),
        ]
    );
}

#[test]
fn golden_02_resume_abort_error() {
    let spec = LaunchSpec { resume: Some(SESSION_01.into()), turn_base: 2, ..LaunchSpec::default() };
    let r = run("02_rpc_resume_abort_error_busy", &spec, true);
    assert_eq!(r.inputs, 6);
    check_invariants("02", &r, 5);
    assert_seq(
        "02",
        &render(&r.actions),
        &[
            "stdin get_state id=s1",
            "stdin prompt id=p2",
            "start pi-3-1-0",
            "delta pi-3-1-0 +Earlier prompts: 'say hi [[thinking]]' | 'tools [[tool:bash:touch pi_made.txt]] [[tool:write]]'",
            "end pi-3-1-0",
            "message pi-3-1-0 Earlier prompts: 'say hi [[thinking]]' | 'tools …",
            "turn_end success=true",
            // Interrupt mid-stream: the open message is closed with what
            // was streamed; no error.
            "stdin prompt id=p3",
            "start pi-4-1-0",
            "delta pi-4-1-0 +Hello from mock LLM. ",
            "stdin abort id=a4",
            "end pi-4-1-0",
            "message pi-4-1-0 Hello from mock LLM. ",
            "turn_end success=false",
            // Interrupt mid-tool: pi kills the command.
            "stdin prompt id=p5",
            "start pi-5-1-0",
            "delta pi-5-1-0 +I will call the bash tool.",
            "end pi-5-1-0",
            "message pi-5-1-0 I will call the bash tool.",
            "tool_call toolu_mock_0014_bc530ba2 bash {\"command\":\"sleep 40\",\"timeout\":120000} executing",
            "permission 0ebc8c11-5440-4153-9f88-2a4b01ba5aa1 bash bash sleep 40",
            "stdin extension_ui_response id=0ebc8c11-5440-4153-9f88-2a4b01ba5aa1 confirmed=true",
            "stdin abort id=a6",
            "tool_result toolu_mock_0014_bc530ba2 is_error=true Command aborted",
            "turn_end success=false",
            // Model API error.
            "stdin prompt id=p7",
            "error AGENT_ERROR 400 {\"type\":\"error\",\"error\":{\"type\":\"invalid_req… {\"status\":400,\"subtype\":\"error\",\"worker_type\":\"pi\"}",
            "turn_end success=false",
            // The capture's second prompt while busy never reaches the
            // adapter (the session refuses it); pi's refusal of it is ignored.
            "stdin prompt id=p8",
            "start pi-7-1-0",
            "delta pi-7-1-0 +Hello from mock LLM. slow-1 slow-2 slow-3 slow-4 slow-5 slow-6 slow-7 slow-8 slow-9 slow-10 slow-11 slow-12 slow-13 slow-14 slow-15 slow-16",
            "end pi-7-1-0",
            "message pi-7-1-0 Hello from mock LLM. slow-1 slow-2 slow-3 slow-4…",
            "turn_end success=true",
            // SIGTERM during the tool: the adapter closes nothing more (the
            // session ends the turn); no resume failure (pi had answered).
            "stdin prompt id=p9",
            "start pi-8-1-0",
            "delta pi-8-1-0 +I will call the bash tool.",
            "end pi-8-1-0",
            "message pi-8-1-0 I will call the bash tool.",
            "tool_call toolu_mock_0017_7d484757 bash {\"command\":\"sleep 41\",\"timeout\":120000} executing",
            "permission 9355b884-1b79-44d5-98ee-9079a75a0133 bash bash sleep 41",
            "stdin extension_ui_response id=9355b884-1b79-44d5-98ee-9079a75a0133 confirmed=true",
        ],
    );
    // The AGENT_ERROR carries pi's whole error text.
    let err = r.actions.iter().find_map(|a| match a {
        Action::Emit(Event::Error { message, .. }) => Some(message.as_str()),
        _ => None,
    });
    assert_eq!(
        err,
        Some("400 {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"mock error 400\"}}")
    );
    // No get_state answer in this capture: the model comes from the
    // messages and the context share is left out; the failed call's zero
    // usage is reported as pi reports it.
    let model = Some("mock-model".to_owned());
    let want = |input, output, total, cost| Stats {
        input_tokens: Some(input),
        output_tokens: Some(output),
        cache_read_tokens: Some(0),
        cache_write_tokens: Some(0),
        total_tokens: Some(total),
        cost_usd: Some(cost),
        model: model.clone(),
        ..Stats::default()
    };
    assert_eq!(
        r.stats,
        vec![
            (true, want(349, 10, 359, 0.001197)),
            (false, want(408, 1, 409, 0.001239)),
            (false, want(430, 16, 446, 0.00153)),
            (false, want(0, 0, 0, 0.0)),
            (true, want(561, 20, 581, 0.001983)),
        ]
    );
    let aborts: Vec<&Value> = r.stdin.iter().filter(|v| v["type"] == "abort").collect();
    assert_eq!(aborts, [&json!({"type": "abort", "id": "a4"}), &json!({"type": "abort", "id": "a6"})]);
}

/// The launch of fixture 02: resume by the 01 session id, as separate argv
/// elements (pi 0.73.1 rejects `--flag=value` for its own flags).
#[test]
fn launch_resume_matches_the_capture() {
    let mut a = PiAdapter::new(config());
    let spec = LaunchSpec {
        resume: Some(SESSION_01.into()),
        model: Some("mock-model".into()),
        turn_base: 2,
        ..LaunchSpec::default()
    };
    let l = a.launch(&spec);
    assert_eq!(
        l.args,
        [
            "--mode",
            "rpc",
            "--provider",
            "mock",
            "--model",
            "mock-model",
            "--no-extensions",
            "--no-skills",
            "-e",
            "/srv/tools/hotplex_permission_gate.ts",
            "--session",
            SESSION_01
        ]
    );
    assert_eq!(l.agent_session_id, None, "pi picks its session id; get_state reports it");
}
