//! Golden transcript tests of the `claude_code` adapter: the real CLI's
//! stdout (tests/fixtures/claude_code/*.jsonl, captured against the mock
//! LLM) is fed line by line, while a driver replays what the capture's
//! driver wrote to stdin (*.stdin.jsonl) through the adapter's own entry
//! points: inputs when idle, permission answers after the prompt, interrupts
//! just before the CLI's reaction to them. The resulting actions are
//! rendered compactly (consecutive deltas of one id merged) and compared
//! with the expected AEP sequence.

#[path = "support/golden.rs"]
mod golden;

use std::collections::VecDeque;

use golden::{Collected, StdinLines, Style, ToolOutput, assert_seq};
use hotplex::adapters::claude::ClaudeAdapter;
use hotplex::adapters::{Action, Adapter, LaunchSpec, Out, PermissionReply};
use hotplex::protocol::{Event, Stats};
use serde_json::{Value, json};

const DIR: &str = "tests/fixtures/claude_code";

fn read_lines(name: &str) -> Vec<String> {
    golden::read_lines(DIR, name)
}

/// Everything one fixture run produced.
struct Run {
    actions: Vec<Action>,
    /// Turn-end stats in order.
    stats: Vec<(bool, Stats)>,
    /// Stdin lines the adapter wrote, parsed.
    stdin: Vec<Value>,
}

fn request_id_of(line: &Value) -> Option<&str> {
    line.pointer("/response/request_id").or_else(|| line.get("request_id")).and_then(Value::as_str)
}

/// Feed fixture `name` through a fresh adapter launched with `spec`.
fn run(name: &str, spec: &LaunchSpec) -> Run {
    let stdout = read_lines(&format!("{name}.jsonl"));
    let mut stdin: VecDeque<Value> = read_lines(&format!("{name}.stdin.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("stdin fixture is JSON"))
        .collect();
    let parsed_stdout: Vec<Value> = stdout.iter().map(|l| serde_json::from_str(l).unwrap_or(Value::Null)).collect();

    let mut a = ClaudeAdapter::new();
    let _ = a.launch(spec);
    let mut out = Out::default();
    let mut got = Collected::default();

    for (i, line) in stdout.iter().enumerate() {
        let next = &parsed_stdout[i];
        while let Some(cmd) = stdin.front() {
            let ty = cmd.get("type").and_then(Value::as_str).unwrap_or("");
            let sub = cmd.pointer("/request/subtype").and_then(Value::as_str).unwrap_or("");
            match (ty, sub) {
                ("user", _) if !got.running => {
                    let text = cmd.pointer("/message/content/0/text").and_then(Value::as_str).unwrap_or("");
                    a.on_input(text, &mut out);
                    got.running = true;
                }
                ("user", _) => break,
                // The capture's driver asked for `initialize`; the adapter does not.
                ("control_request", "initialize") => {}
                ("control_request", "interrupt") => {
                    let answer = next.get("type").and_then(Value::as_str) == Some("control_response")
                        && request_id_of(next) == request_id_of(cmd);
                    let withdraws = next.get("type").and_then(Value::as_str) == Some("control_cancel_request");
                    if !(answer || withdraws) {
                        break;
                    }
                    a.on_interrupt(&mut out);
                }
                ("control_response", _) => {
                    let id = request_id_of(cmd).unwrap_or_default().to_owned();
                    let asked_later = parsed_stdout[i..].iter().any(|l| {
                        l.get("type").and_then(Value::as_str) == Some("control_request")
                            && l.get("request_id").and_then(Value::as_str) == Some(id.as_str())
                    });
                    if !got.asked.contains(&id) && asked_later {
                        break;
                    }
                    let allow = cmd.pointer("/response/response/behavior").and_then(Value::as_str) == Some("allow");
                    let reason = cmd.pointer("/response/response/message").and_then(Value::as_str).map(str::to_owned);
                    a.on_permission(&PermissionReply { id, allow, reason, remember: false }, &mut out);
                }
                _ => panic!("unexpected stdin record {cmd}"),
            }
            stdin.pop_front();
            got.take(&mut out);
        }
        a.on_line(line.as_bytes(), &mut out);
        got.take(&mut out);
    }
    assert!(stdin.is_empty(), "{name}: stdin records left unreplayed: {stdin:?}");

    let stats = golden::turn_ends(&got.actions);
    let stdin = golden::stdin_json(&got.actions, StdinLines::Strict);
    Run { actions: got.actions, stats, stdin }
}

/// claude's stdin writes: user messages and control requests/responses.
fn render_stdin(b: &[u8]) -> String {
    let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
    match v.get("type").and_then(Value::as_str) {
        Some("user") => "stdin user".to_owned(),
        Some("control_request") => format!(
            "stdin control_request {} {}",
            v.pointer("/request/subtype").and_then(Value::as_str).unwrap_or("?"),
            v.get("request_id").and_then(Value::as_str).unwrap_or("?")
        ),
        Some("control_response") => format!(
            "stdin control_response {} {}",
            v.pointer("/response/response/behavior").and_then(Value::as_str).unwrap_or("?"),
            v.pointer("/response/request_id").and_then(Value::as_str).unwrap_or("?")
        ),
        _ => format!("stdin {v}"),
    }
}

const STYLE: Style = Style { stdin: render_stdin, tool_output: ToolOutput::Text, merge_deltas: true };

/// One line per action; consecutive deltas of one id merged.
fn render(actions: &[Action]) -> Vec<String> {
    golden::render(actions, &STYLE)
}

fn fresh() -> LaunchSpec {
    LaunchSpec::default()
}

/// Shape checks every transcript must pass (aep-v1.md §3.3, workers.md §1.2):
/// message ids unique, deltas only inside their start/end bracket and
/// concatenating to the final `message`, one `TurnEnd` per input.
fn check_invariants(name: &str, r: &Run) {
    let turn_ends = golden::check_brackets(name, &r.actions);
    let inputs =
        r.actions.iter().filter(|a| matches!(a, Action::Stdin(b) if b.starts_with(br#"{"type":"user""#))).count();
    assert_eq!(inputs, turn_ends, "{name}: one TurnEnd per input");
}

fn errors(r: &Run) -> Vec<&Action> {
    golden::errors(&r.actions)
}

#[test]
fn golden_01_two_turns() {
    let r = run("01_new_session_two_turns", &fresh());
    check_invariants("01", &r);
    assert_seq(
        "01",
        &render(&r.actions),
        &[
            "stdin user",
            "agent_session_id 529947d6-dcaa-4c0e-bfe5-ba4da268ec7b",
            "start msg_mock_0002_b107d718:0",
            "delta msg_mock_0002_b107d718:0 +Hello from mock LLM.",
            "end msg_mock_0002_b107d718:0",
            "message msg_mock_0002_b107d718:0 Hello from mock LLM.",
            "turn_end success=true",
            "stdin user",
            "start msg_mock_0004_ecef88d6:0",
            "delta msg_mock_0004_ecef88d6:0 +Earlier prompts: 'say hi'",
            "end msg_mock_0004_ecef88d6:0",
            "message msg_mock_0004_ecef88d6:0 Earlier prompts: 'say hi'",
            "turn_end success=true",
        ],
    );
    // Deltas arrive one word at a time.
    let deltas = r.actions.iter().filter(|a| matches!(a, Action::Emit(Event::MessageDelta { .. }))).count();
    assert_eq!(deltas, 8);
    let ids = r.actions.iter().filter(|a| matches!(a, Action::AgentSessionId(_))).count();
    assert_eq!(ids, 1, "AgentSessionId once although system/init comes every turn");

    let model = Some("claude-opus-4-8[1m]".to_owned());
    assert_eq!(
        r.stats,
        vec![
            (
                true,
                Stats {
                    duration_ms: Some(103),
                    tool_calls: None,
                    input_tokens: Some(1667),
                    output_tokens: Some(4),
                    cache_read_tokens: Some(0),
                    cache_write_tokens: Some(0),
                    total_tokens: Some(1671),
                    cost_usd: Some(0.008435),
                    model: model.clone(),
                    context_used_percent: Some(0.1667),
                }
            ),
            (
                true,
                Stats {
                    duration_ms: Some(58),
                    tool_calls: None,
                    input_tokens: Some(1709),
                    output_tokens: Some(4),
                    cache_read_tokens: Some(0),
                    cache_write_tokens: Some(0),
                    total_tokens: Some(1713),
                    // 0.01739 (cumulative) − 0.008435 (previous result)
                    cost_usd: Some(0.008955),
                    model,
                    context_used_percent: Some(0.1709),
                }
            ),
        ]
    );
    // The exact stdin line of an input (workers.md §2.2).
    let first = r.actions.iter().find_map(|a| if let Action::Stdin(b) = a { Some(b.clone()) } else { None });
    assert_eq!(
        first.as_deref(),
        Some(&b"{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"say hi\"}]}}\n"[..])
    );
}

#[test]
fn golden_02_permission_allow_deny() {
    let r = run("02_tool_permission_allow_deny", &fresh());
    check_invariants("02", &r);
    assert_seq(
        "02",
        &render(&r.actions),
        &[
            "stdin user",
            "agent_session_id 0cfc01a1-cfc5-47f3-be82-d5bcc252d83e",
            "start msg_mock_0010_30d1cf46:0",
            "delta msg_mock_0010_30d1cf46:0 +I will call the Write tool.",
            "end msg_mock_0010_30d1cf46:0",
            "message msg_mock_0010_30d1cf46:0 I will call the Write tool.",
            "tool_call toolu_mock_0011_362666f3 Write {\"content\":\"hello from mock\\n\",\"file_path\":\"mock_written.txt\"} executing",
            "permission 35255448-c8da-4b2f-a704-a54298ee3e69 Write mock_written.txt",
            "stdin control_response allow 35255448-c8da-4b2f-a704-a54298ee3e69",
            "tool_result toolu_mock_0011_362666f3 is_error=false File created successfully at: mock_written.txt (…",
            "start msg_mock_0012_65ddcf76:0",
            "delta msg_mock_0012_65ddcf76:0 +Tool finished. Result: File created successfully at: mock_written.txt (file state is current in your context — no need to Read it back)",
            "end msg_mock_0012_65ddcf76:0",
            "message msg_mock_0012_65ddcf76:0 Tool finished. Result: File created successfully…",
            "turn_end success=true",
            "stdin user",
            "start msg_mock_0014_db6d9dea:0",
            "delta msg_mock_0014_db6d9dea:0 +I will call the Bash tool.",
            "end msg_mock_0014_db6d9dea:0",
            "message msg_mock_0014_db6d9dea:0 I will call the Bash tool.",
            "tool_call toolu_mock_0015_3f29b8b0 Bash {\"command\":\"touch made_by_bash.txt\",\"description\":\"Run a mock command\"} executing",
            "permission 724398a8-29b0-4359-96b5-dfbeeb898aba Bash Run a mock command",
            "stdin control_response deny 724398a8-29b0-4359-96b5-dfbeeb898aba",
            "tool_result toolu_mock_0015_3f29b8b0 is_error=true User denied this in the test",
            "start msg_mock_0016_db448c67:0",
            "delta msg_mock_0016_db448c67:0 +Tool finished. Result: User denied this in the test",
            "end msg_mock_0016_db448c67:0",
            "message msg_mock_0016_db448c67:0 Tool finished. Result: User denied this in the t…",
            "turn_end success=true",
        ],
    );
    // The permission prompt carries the CLI's input and suggestions.
    let asks: Vec<_> =
        r.actions.iter().filter_map(|a| if let Action::Permission(p) = a { Some(p) } else { None }).collect();
    assert_eq!(
        asks[0].input,
        Some(json!({"file_path": "/srv/project/mock_written.txt", "content": "hello from mock\n"}))
    );
    assert_eq!(asks[0].options, Some(json!([{"type": "setMode", "mode": "acceptEdits", "destination": "session"}])));
    assert_eq!(asks[1].options.as_ref().and_then(Value::as_array).map(Vec::len), Some(3));

    // Allow echoes the CLI's input as updatedInput; deny carries the reason.
    // These equal what the verified capture driver wrote.
    let want_stdin: Vec<Value> = read_lines("02_tool_permission_allow_deny.stdin.jsonl")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(r.stdin, want_stdin);
    assert_eq!(r.stats[1].1.cost_usd, Some(0.020145)); // 0.038705 − 0.01856
    assert!(errors(&r).is_empty());
}

#[test]
fn golden_03_interrupt_stream_and_tool() {
    let r = run("03_interrupt_stream_and_tool", &fresh());
    check_invariants("03", &r);
    assert_seq(
        "03",
        &render(&r.actions),
        &[
            "stdin user",
            "agent_session_id 7eb46373-fcee-4e13-90e4-8aa820dccb3f",
            "start msg_mock_0025_c12b6727:0",
            "delta msg_mock_0025_c12b6727:0 +Hello from mock ",
            "stdin control_request interrupt int_1",
            // The open block is closed with what was streamed (= the partial assistant line).
            "end msg_mock_0025_c12b6727:0",
            "message msg_mock_0025_c12b6727:0 Hello from mock ",
            "turn_end success=false",
            "stdin user",
            "start msg_mock_0027_84ca3c94:0",
            "delta msg_mock_0027_84ca3c94:0 +I will call the Bash tool.",
            "end msg_mock_0027_84ca3c94:0",
            "message msg_mock_0027_84ca3c94:0 I will call the Bash tool.",
            "tool_call toolu_mock_0028_6f1721c7 Bash {\"command\":\"sleep 30; echo slept\",\"description\":\"Run a mock command\"} executing",
            "stdin control_request interrupt int_2",
            "tool_result toolu_mock_0028_6f1721c7 is_error=true The user doesn't want to proceed with this tool …",
            "turn_end success=false",
            "stdin user",
            "start msg_mock_0030_0a52f88d:0",
            "delta msg_mock_0030_0a52f88d:0 +Earlier prompts: 'stream slowly [[slow:10]]' | '[Request interrupted by user]\n\nlong tool [[tool:bash:sleep 30; echo slept]]'",
            "end msg_mock_0030_0a52f88d:0",
            "message msg_mock_0030_0a52f88d:0 Earlier prompts: 'stream slowly [[slow:10]]' | '…",
            "turn_end success=true",
        ],
    );
    assert!(errors(&r).is_empty(), "an interrupted turn has no error event");
    let interrupt = r.actions.iter().find_map(|a| match a {
        Action::Stdin(b) if b.starts_with(b"{\"type\":\"control_request\"") => Some(b.clone()),
        _ => None,
    });
    assert_eq!(
        interrupt.as_deref(),
        Some(&b"{\"type\":\"control_request\",\"request_id\":\"int_1\",\"request\":{\"subtype\":\"interrupt\"}}\n"[..])
    );
    assert_eq!(r.stats[1].1.cost_usd, Some(0.00941)); // 0.009725 − 0.000315
}

#[test]
fn golden_04_api_errors_and_retry() {
    let r = run("04_api_errors_and_retry", &fresh());
    check_invariants("04", &r);
    assert_seq(
        "04",
        &render(&r.actions),
        &[
            "stdin user",
            "agent_session_id f37fd08c-43ea-4a66-ae18-cd4a9ef419ba",
            // The <synthetic> assistant line maps to nothing; the result carries the error.
            "error AGENT_ERROR API Error: 400 mock error 400 {\"agent_code\":\"unknown\",\"status\":400,\"subtype\":\"success\",\"worker_type\":\"claude_code\"}",
            "turn_end success=false",
            "stdin user",
            "unmapped api_retry",
            "error AGENT_ERROR API Error: 529 mock error 529. This is a server-… {\"agent_code\":\"server_error\",\"status\":529,\"subtype\":\"success\",\"worker_type\":\"claude_code\"}",
            "turn_end success=false",
            "stdin user",
            "start msg_mock_0004_6e101ee4:0",
            "delta msg_mock_0004_6e101ee4:0 +Hello from ",
            "unmapped api_retry",
            // The stream broke mid-block: the bracket is closed before the error.
            "end msg_mock_0004_6e101ee4:0",
            "message msg_mock_0004_6e101ee4:0 Hello from ",
            "error AGENT_ERROR API Error: 500 mock stream error. This is a serv… {\"agent_code\":\"server_error\",\"status\":500,\"subtype\":\"success\",\"worker_type\":\"claude_code\"}",
            "turn_end success=false",
            "stdin user",
            "start msg_mock_0007_6cd69ac3:0",
            "delta msg_mock_0007_6cd69ac3:0 +Hello from mock LLM.",
            "end msg_mock_0007_6cd69ac3:0",
            "message msg_mock_0007_6cd69ac3:0 Hello from mock LLM.",
            "turn_end success=true",
        ],
    );
    // Full error text of the agent, not a gateway paraphrase.
    let Some(Action::Emit(Event::Error { message, .. })) = errors(&r).get(1).copied() else { panic!("no error") };
    assert_eq!(
        message,
        "API Error: 529 mock error 529. This is a server-side issue, usually temporary — try again in a moment. \
         If it persists, check your inference gateway (127.0.0.1:18100)."
    );
    // api_retry is passed through as the raw line.
    let retry = r.actions.iter().find_map(|a| match a {
        Action::Unmapped { raw, .. } => Some(raw),
        _ => None,
    });
    assert_eq!(retry.and_then(|v| v.get("error_status")), Some(&json!(529)));
    // A failed call with no message_start has no context figure (never 0 for unknown).
    assert_eq!(r.stats[0].1.context_used_percent, None);
}

#[test]
fn golden_05_resume() {
    let id = "582ff5ab-d2b0-471d-8672-c112d54c9872";
    let spec = LaunchSpec { resume: Some(id.into()), ..fresh() };
    let launch = ClaudeAdapter::new().launch(&spec);
    assert!(launch.args.contains(&format!("--resume={id}")), "{:?}", launch.args);
    assert!(!launch.args.iter().any(|a| a.starts_with("--session-id")), "{:?}", launch.args);
    assert_eq!(launch.agent_session_id, None, "the id was not chosen by the adapter");

    let r = run("05_resume", &spec);
    check_invariants("05", &r);
    // No stream_event lines in this capture: the text comes whole from the assistant line.
    assert_seq(
        "05",
        &render(&r.actions),
        &[
            "stdin user",
            "agent_session_id 582ff5ab-d2b0-471d-8672-c112d54c9872",
            "start msg_mock_0033_7c603be6:0",
            "delta msg_mock_0033_7c603be6:0 +Earlier prompts: 'remember the word PINEAPPLE'",
            "end msg_mock_0033_7c603be6:0",
            "message msg_mock_0033_7c603be6:0 Earlier prompts: 'remember the word PINEAPPLE'",
            "turn_end success=true",
        ],
    );
    let s = &r.stats[0].1;
    assert_eq!(s.model.as_deref(), Some("claude-opus-4-8"));
    // 1716 input tokens of a 200 000 window, from the assistant line's usage.
    assert_eq!(s.context_used_percent, Some(0.858));
    assert_eq!(s.cost_usd, Some(0.00873));
}

#[test]
fn golden_06_thinking_and_cancelled_permission() {
    let r = run("06_initialize_thinking_cancelled_permission", &fresh());
    check_invariants("06", &r);
    assert_seq(
        "06",
        &render(&r.actions),
        &[
            "stdin user",
            "agent_session_id 2233495a-f149-49e5-a173-8b6a55bf4da7",
            "reasoning.delta msg_mock_0013_29765f11:0 +Let me think about this mock request step by step.",
            "start msg_mock_0013_29765f11:1",
            "delta msg_mock_0013_29765f11:1 +I will call the Write tool.",
            "end msg_mock_0013_29765f11:1",
            "message msg_mock_0013_29765f11:1 I will call the Write tool.",
            "tool_call toolu_mock_0014_c9937d28 Write {\"content\":\"hello from mock\\n\",\"file_path\":\"second.txt\"} executing",
            "permission a67a0187-736a-4f78-aa11-51126f5d83b0 Write second.txt",
            "stdin control_response allow a67a0187-736a-4f78-aa11-51126f5d83b0",
            // Recorded with a driver that omitted updatedInput, hence the CLI's failure.
            "tool_result toolu_mock_0014_c9937d28 is_error=true Tool permission request failed: ZodError: [\n  {\n…",
            "start msg_mock_0015_aaafdfc5:0",
            "delta msg_mock_0015_aaafdfc5:0 +Tool finished. Result: Tool permission request failed: ZodError: [\n  {\n    \"code\": \"invalid_union\",\n    \"errors\": [\n      [\n        {\n          \"expected\": \"record\",\n          \"code\": \"invalid_type\",\n          \"path\": [\n   ",
            "end msg_mock_0015_aaafdfc5:0",
            "message msg_mock_0015_aaafdfc5:0 Tool finished. Result: Tool permission request f…",
            "turn_end success=true",
            "stdin user",
            "start msg_mock_0017_1970b776:0",
            "delta msg_mock_0017_1970b776:0 +I will call the Bash tool.",
            "end msg_mock_0017_1970b776:0",
            "message msg_mock_0017_1970b776:0 I will call the Bash tool.",
            "tool_call toolu_mock_0018_2f37a3a7 Bash {\"command\":\"touch pending.txt\",\"description\":\"Run a mock command\"} executing",
            "permission 19094604-ff9c-46ff-833f-f477006b30e2 Bash Run a mock command",
            "stdin control_request interrupt int_1",
            "permission_cancelled 19094604-ff9c-46ff-833f-f477006b30e2",
            // The stray reply for "nonexistent" produced nothing.
            "tool_result toolu_mock_0018_2f37a3a7 is_error=true The user doesn't want to proceed with this tool …",
            "turn_end success=false",
            "stdin user",
            "start msg_mock_0019_5346d216:0",
            "delta msg_mock_0019_5346d216:0 +Hello from mock LLM.",
            "end msg_mock_0019_5346d216:0",
            "message msg_mock_0019_5346d216:0 Hello from mock LLM.",
            "turn_end success=true",
        ],
    );
    // Thinking deltas are increments with delta:true; the signature is dropped.
    let reasoning: Vec<_> = r
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(Event::Reasoning { content, delta, .. }) => Some((content.as_str(), *delta)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasoning,
        vec![("Let me think about ", Some(true)), ("this mock request step ", Some(true)), ("by step.", Some(true))]
    );
    // Unlike the capture's driver, the adapter always sends updatedInput.
    assert_eq!(
        r.stdin[1],
        json!({"type": "control_response", "response": {"subtype": "success",
            "request_id": "a67a0187-736a-4f78-aa11-51126f5d83b0",
            "response": {"behavior": "allow",
                "updatedInput": {"file_path": "/srv/project/second.txt", "content": "hello from mock\n"}}}})
    );
    assert_eq!(r.stdin.len(), 5, "user, allow, user, interrupt, user: nothing for the stray reply");
    assert!(errors(&r).is_empty());
}

#[test]
fn golden_07_resume_unknown_session() {
    let spec = LaunchSpec { resume: Some("332d4c92-7cbd-4e78-b66e-9d974ad25dcf".into()), ..fresh() };
    let r = run("07_resume_unknown_session", &spec);
    check_invariants("07", &r);
    assert_seq(
        "07",
        &render(&r.actions),
        &[
            "stdin user",
            "resume_failed No conversation found with session ID: 332d4c92-7cbd-4e78-b66e-9d974ad25dcf",
            "turn_end success=false",
        ],
    );
    assert!(errors(&r).is_empty(), "ResumeFailed replaces AGENT_ERROR");

    // The same line after a fresh (non-resume) launch is an ordinary agent error.
    let r = run("07_resume_unknown_session", &fresh());
    let seq = render(&r.actions);
    assert!(seq[1].starts_with("error AGENT_ERROR No conversation found"), "{seq:?}");
    assert_eq!(seq[2], "turn_end success=false");
}
