//! Unit tests of the claude adapter: argv, robustness against bad lines,
//! mapping corners the captured transcripts do not cover. The transcript
//! (golden) tests live in `tests/claude_adapter.rs`.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{ClaudeAdapter, unmapped};
use crate::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, PermissionReply, SystemPromptMode};
use crate::protocol::{ErrorCode, Event, Stats};

fn feed(a: &mut ClaudeAdapter, lines: &[&str]) -> Vec<Action> {
    let mut out = Out::default();
    for l in lines {
        a.on_line(l.as_bytes(), &mut out);
    }
    out.take()
}

fn running() -> ClaudeAdapter {
    let mut a = ClaudeAdapter::new();
    let _ = a.launch(&LaunchSpec::default());
    let mut out = Out::default();
    a.on_input("hi", &mut out);
    a
}

fn kinds(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Unmapped { kind, .. } => Some(kind.as_str()),
            _ => None,
        })
        .collect()
}

fn stdin_json(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Stdin(b) => Some(serde_json::from_slice(b).expect("stdin is JSON")),
            _ => None,
        })
        .collect()
}

const RESULT_OK: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":5,"total_cost_usd":0.5,"usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":3,"cache_creation_input_tokens":4},"modelUsage":{"m":{"contextWindow":1000}}}"#;

// ---------------------------------------------------------------- launch

#[test]
fn launch_new_session_base_flags_and_env() {
    let mut a = ClaudeAdapter::new();
    let l = a.launch(&LaunchSpec::default());
    let base = [
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--input-format",
        "stream-json",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
    ];
    assert_eq!(&l.args[..base.len()], &base);
    assert_eq!(l.args.len(), base.len() + 1);
    let id = l.agent_session_id.clone().expect("a fresh id");
    assert_eq!(l.args[base.len()], format!("--session-id={id}"));
    let uuid = uuid::Uuid::parse_str(&id).expect("uuid");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(
        l.env,
        vec![
            ("DISABLE_TELEMETRY".to_owned(), "1".to_owned()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(), "1".to_owned())
        ]
    );
    // A reset launches again with a new agent session.
    let again = a.launch(&LaunchSpec::default());
    assert_ne!(again.agent_session_id, Some(id));
}

#[test]
fn launch_every_field_is_one_element() {
    let spec = LaunchSpec {
        work_dir: PathBuf::from("/srv/project"),
        model: Some("claude-sonnet-4-5".into()),
        system_prompt: Some("-be terse- --dangerously-skip-permissions".into()),
        system_prompt_mode: Some(SystemPromptMode::Append),
        allowed_tools: vec!["Read".into(), "Bash(git log:*)".into()],
        disallowed_tools: vec!["WebFetch".into(), "mcp__x__*".into()],
        permission_mode: Some("acceptEdits".into()),
        max_turns: Some(7),
        resume: None,
        mcp_config: Some(PathBuf::from("/etc/hotplex/mcp.json")),
        turn_base: 3,
        ..LaunchSpec::default()
    };
    let l = ClaudeAdapter::new().launch(&spec);
    let tail: Vec<&str> = l.args[10..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "--model=claude-sonnet-4-5",
            "--permission-mode=acceptEdits",
            "--allowed-tools=Read,Bash(git log:*)",
            "--disallowed-tools=WebFetch,mcp__x__*",
            "--append-system-prompt=-be terse- --dangerously-skip-permissions",
            "--max-turns=7",
            "--mcp-config=/etc/hotplex/mcp.json",
            "--strict-mcp-config",
        ]
    );
    // No value ever stands alone as its own element.
    for v in
        ["claude-sonnet-4-5", "acceptEdits", "7", "/etc/hotplex/mcp.json", "-be terse- --dangerously-skip-permissions"]
    {
        assert!(!l.args.iter().any(|a| a == v), "{v} is a separate element");
    }
    assert!(!l.args.iter().any(|a| a == "--dangerously-skip-permissions"));
}

#[test]
fn launch_value_starting_with_dash_stays_inside() {
    let spec = LaunchSpec {
        model: Some("--mcp-config=/tmp/x.json".into()),
        system_prompt: Some("-x".into()),
        system_prompt_mode: Some(SystemPromptMode::Replace),
        ..LaunchSpec::default()
    };
    let l = ClaudeAdapter::new().launch(&spec);
    assert!(l.args.contains(&"--model=--mcp-config=/tmp/x.json".to_owned()));
    assert!(l.args.contains(&"--system-prompt=-x".to_owned()));
    assert!(!l.args.iter().any(|a| a.starts_with("--append-system-prompt")));
    assert!(!l.args.iter().any(|a| a.starts_with("--mcp-config")));
}

#[test]
fn launch_defaults_append_and_omits_empty_lists() {
    let spec = LaunchSpec { system_prompt: Some("be kind".into()), ..LaunchSpec::default() };
    let l = ClaudeAdapter::new().launch(&spec);
    assert!(l.args.contains(&"--append-system-prompt=be kind".to_owned()));
    assert!(!l.args.iter().any(|a| a.contains("tools")));
}

#[test]
fn launch_resume() {
    let spec = LaunchSpec { resume: Some("582ff5ab-d2b0-471d-8672-c112d54c9872".into()), ..LaunchSpec::default() };
    let l = ClaudeAdapter::new().launch(&spec);
    assert_eq!(l.args[9], "--resume=582ff5ab-d2b0-471d-8672-c112d54c9872");
    assert!(!l.args.iter().any(|a| a.starts_with("--session-id")));
    assert_eq!(l.agent_session_id, None);
}

#[test]
fn launch_discards_unsafe_resume_id() {
    let spec = LaunchSpec { resume: Some("ses_1; rm -rf ~".into()), ..LaunchSpec::default() };
    let l = ClaudeAdapter::new().launch(&spec);
    assert!(!l.args.iter().any(|a| a.contains("rm -rf")));
    assert!(l.args.iter().any(|a| a.starts_with("--session-id=")));
    assert!(l.agent_session_id.is_some());
}

// ---------------------------------------------------------------- robustness

#[test]
fn garbage_lines_are_unmapped() {
    let mut a = running();
    let mut out = Out::default();
    for l in [&b"hello world"[..], b"\xff\xfe{", b"{\"type\":", b"[1,2]", b"42", b"{}", b"{\"type\":7}", b"null"] {
        a.on_line(l, &mut out);
    }
    a.on_line(b"   ", &mut out);
    a.on_line(b"", &mut out);
    let acts = out.take();
    assert_eq!(
        kinds(&acts),
        [
            unmapped::NON_JSON,
            unmapped::NON_JSON,
            unmapped::NON_JSON,
            unmapped::MALFORMED,
            unmapped::MALFORMED,
            unmapped::MALFORMED,
            unmapped::MALFORMED,
            unmapped::MALFORMED
        ]
    );
    assert_eq!(acts.len(), 8, "blank lines produce nothing");
    assert_eq!(acts[0], Action::Unmapped { kind: "non_json".into(), raw: json!("hello world") });
}

#[test]
fn truncated_line_does_not_end_the_turn() {
    let mut a = running();
    let cut = &RESULT_OK[..RESULT_OK.len() / 2];
    let acts = feed(&mut a, &[cut]);
    assert_eq!(kinds(&acts), [unmapped::NON_JSON]);
    assert!(!acts.iter().any(|x| matches!(x, Action::TurnEnd { .. })));
    let acts = feed(&mut a, &[RESULT_OK]);
    assert!(matches!(acts.last(), Some(Action::TurnEnd { success: true, .. })));
}

#[test]
fn every_prefix_of_every_fixture_line_is_safe() {
    crate::adapters::feed_every_fixture_prefix("claude_code", running);
}

#[test]
fn unknown_types_and_subtypes_degrade_to_unmapped() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"rate_limit_event","rate_limit_info":{}}"#,
            r#"{"type":"system","subtype":"compact_boundary"}"#,
            r#"{"type":"system","subtype":"status","status":"requesting"}"#,
            r#"{"type":"system","subtype":"thinking_tokens","estimated_tokens":5}"#,
            r#"{"type":"stream_event","event":{"type":"ping"}}"#,
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m1"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta"}}}"#,
            r#"{"type":"assistant","message":{"id":"m1","model":"x","content":[{"type":"redacted_thinking","data":"zz"}]}}"#,
            r#"{"type":"control_response","response":{"subtype":"success","request_id":"int_1"}}"#,
        ],
    );
    assert_eq!(
        kinds(&acts),
        [
            unmapped::UNKNOWN_TYPE,
            unmapped::UNKNOWN_SUBTYPE,
            unmapped::UNKNOWN_SUBTYPE,
            unmapped::UNKNOWN_SUBTYPE,
            unmapped::UNKNOWN_SUBTYPE
        ]
    );
    assert_eq!(acts.len(), 5);
    // The unknown block is passed through by itself.
    assert_eq!(
        acts[4],
        Action::Unmapped { kind: "unknown_subtype".into(), raw: json!({"type":"redacted_thinking","data":"zz"}) }
    );
}

#[test]
fn unknown_control_request_gets_an_error_answer() {
    let mut a = running();
    let acts = feed(&mut a, &[r#"{"type":"control_request","request_id":"r9","request":{"subtype":"hook_callback"}}"#]);
    assert_eq!(
        stdin_json(&acts),
        [
            json!({"type":"control_response","response":{"subtype":"error","request_id":"r9","error":"unsupported control request: hook_callback"}})
        ]
    );
    assert_eq!(kinds(&acts), [unmapped::CONTROL_REQUEST]);
    // Without a request id there is nobody to answer.
    let acts = feed(&mut a, &[r#"{"type":"control_request","request":{"subtype":"can_use_tool"}}"#]);
    assert_eq!(kinds(&acts), [unmapped::MALFORMED]);
}

// ---------------------------------------------------------------- tools

#[test]
fn tool_result_block_array_and_string() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"line one"},{"type":"image","source":{}},{"type":"text","text":"line two"}]}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"boom","is_error":true}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t3"}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"}]}}"#,
            r#"{"type":"user","message":{"role":"user","content":"plain"}}"#,
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::ToolResult { id: "t1".into(), output: json!("line one\nline two"), is_error: false }),
            Action::Emit(Event::ToolResult { id: "t2".into(), output: json!("boom"), is_error: true }),
            Action::Emit(Event::ToolResult { id: "t3".into(), output: json!(""), is_error: false }),
        ]
    );
}

#[test]
fn tool_use_without_input_gets_an_empty_object() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[r#"{"type":"assistant","message":{"id":"m","content":[{"type":"tool_use","id":"t","name":"Read"}]}}"#],
    );
    assert_eq!(
        acts,
        [Action::Emit(Event::ToolCall {
            id: "t".into(),
            name: "Read".into(),
            input: json!({}),
            status: Some("executing")
        })]
    );
}

// ---------------------------------------------------------------- text

#[test]
fn whole_blocks_without_stream_events() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"assistant","message":{"id":"m","model":"x","content":[{"type":"thinking","thinking":"hmm","signature":"s"}]}}"#,
            r#"{"type":"assistant","message":{"id":"m","model":"x","content":[{"type":"text","text":"Hi"}]}}"#,
            r#"{"type":"assistant","message":{"id":"m","model":"x","content":[{"type":"text","text":""}]}}"#,
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::Reasoning { id: "m:0".into(), content: "hmm".into(), delta: None }),
            Action::Emit(Event::message_start("m:1")),
            Action::Emit(Event::message_delta("m:1", "Hi")),
            Action::Emit(Event::MessageEnd { message_id: "m:1".into() }),
            Action::Emit(Event::message("m:1", "Hi")),
        ]
    );
}

#[test]
fn missing_tail_of_stream_is_sent_before_end() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}}"#,
            r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"Hello"}]}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_stop","index":0}}"#,
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::message_start("m:0")),
            Action::Emit(Event::message_delta("m:0", "Hel")),
            Action::Emit(Event::message_delta("m:0", "lo")),
            Action::Emit(Event::MessageEnd { message_id: "m:0".into() }),
            Action::Emit(Event::message("m:0", "Hello")),
        ]
    );
}

#[test]
fn assistant_line_after_block_stop_is_not_mapped_twice() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_stop","index":0}}"#,
            r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"Hi"}]}}"#,
            // A late delta for the closed block does not reopen it.
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}}"#,
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::message_start("m:0")),
            Action::Emit(Event::message_delta("m:0", "Hi")),
            Action::Emit(Event::MessageEnd { message_id: "m:0".into() }),
            Action::Emit(Event::message("m:0", "Hi")),
            Action::Unmapped {
                kind: unmapped::OUT_OF_ORDER.into(),
                raw: json!({"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}}),
            },
        ]
    );
}

#[test]
fn lost_message_start_still_gives_a_bracketed_message() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}}"#,
            RESULT_OK,
        ],
    );
    let Action::Emit(Event::MessageStart { id, .. }) = &acts[0] else { panic!("{acts:?}") };
    assert!(id.starts_with("msg_") && id.ends_with(":0"), "{id}");
    assert!(matches!(&acts[1], Action::Emit(Event::MessageDelta { content, .. }) if content == "x"));
    assert!(matches!(&acts[2], Action::Emit(Event::MessageEnd { .. })));
    assert!(matches!(&acts[3], Action::Emit(Event::Message { content, .. }) if content == "x"));
    assert!(matches!(acts[4], Action::TurnEnd { success: true, .. }));
}

#[test]
fn gateway_abort_closes_the_open_message() {
    let mut a = running();
    let _ = feed(
        &mut a,
        &[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"text"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}}"#,
        ],
    );
    let mut out = Out::default();
    a.on_turn_aborted(&mut out);
    assert_eq!(
        out.take(),
        [Action::Emit(Event::MessageEnd { message_id: "m:0".into() }), Action::Emit(Event::message("m:0", "Hel"))]
    );
    // Nothing is closed twice when the killed process exits.
    let mut out = Out::default();
    a.on_exit(&ExitInfo { code: Some(143), signal: None, signalled_by_gateway: true }, &mut out);
    assert_eq!(out.take(), []);
}

#[test]
fn exit_closes_open_brackets_and_prompts() {
    let mut a = running();
    let mut acts = feed(
        &mut a,
        &[
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m"}}}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"text"}}}"#,
            r#"{"type":"control_request","request_id":"p1","request":{"subtype":"can_use_tool","tool_name":"Write","input":{"a":1}}}"#,
        ],
    );
    let mut out = Out::default();
    a.on_exit(&ExitInfo { code: Some(143), signal: None, signalled_by_gateway: false }, &mut out);
    acts.extend(out.take());
    assert_eq!(
        &acts[1..],
        [
            Action::Permission(crate::adapters::PermissionAsk {
                id: "p1".into(),
                tool_name: "Write".into(),
                description: "Write".into(),
                input: Some(json!({"a":1})),
                args: None,
                options: None,
            }),
            Action::Emit(Event::MessageEnd { message_id: "m:0".into() }),
            Action::Emit(Event::message("m:0", "")),
            Action::PermissionCancelled { id: "p1".into() },
        ]
    );
}

// ---------------------------------------------------------------- permissions

const ASK: &str = r#"{"type":"control_request","request_id":"p1","request":{"subtype":"can_use_tool","tool_name":"Bash","display_name":"Bash","input":{"command":"touch x"},"permission_suggestions":[{"type":"addRules","rules":[],"behavior":"allow","destination":"localSettings"},{"type":"setMode","mode":"acceptEdits","destination":"session"}]}}"#;

fn reply(id: &str, allow: bool, reason: Option<&str>, remember: bool) -> PermissionReply {
    PermissionReply { id: id.into(), allow, reason: reason.map(str::to_owned), remember }
}

#[test]
fn permission_description_falls_back_to_display_name() {
    let mut a = running();
    let acts = feed(&mut a, &[ASK]);
    let [Action::Permission(p)] = &acts[..] else { panic!("{acts:?}") };
    assert_eq!((p.id.as_str(), p.tool_name.as_str(), p.description.as_str()), ("p1", "Bash", "Bash"));
    assert_eq!(p.options.as_ref().and_then(Value::as_array).map(Vec::len), Some(2));
}

#[test]
fn remember_forwards_only_session_suggestions() {
    let mut a = running();
    feed(&mut a, &[ASK]);
    let mut out = Out::default();
    a.on_permission(&reply("p1", true, None, true), &mut out);
    assert_eq!(
        stdin_json(&out.take()),
        [json!({"type":"control_response","response":{"subtype":"success","request_id":"p1","response":{
            "behavior":"allow","updatedInput":{"command":"touch x"},
            "updatedPermissions":[{"type":"setMode","mode":"acceptEdits","destination":"session"}]}}})]
    );
    // Answered: a second reply is ignored.
    a.on_permission(&reply("p1", true, None, false), &mut out);
    assert!(out.take().is_empty());
}

#[test]
fn remember_without_session_suggestions_is_a_plain_allow() {
    let mut a = running();
    feed(
        &mut a,
        &[
            r#"{"type":"control_request","request_id":"p2","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{},"permission_suggestions":[{"type":"addRules","destination":"userSettings"}]}}"#,
        ],
    );
    let mut out = Out::default();
    a.on_permission(&reply("p2", true, None, true), &mut out);
    assert_eq!(
        stdin_json(&out.take()),
        [
            json!({"type":"control_response","response":{"subtype":"success","request_id":"p2","response":{"behavior":"allow","updatedInput":{}}}})
        ]
    );
}

#[test]
fn deny_default_message_and_unknown_ids() {
    let mut a = running();
    feed(&mut a, &[ASK]);
    let mut out = Out::default();
    a.on_permission(&reply("nope", true, None, false), &mut out);
    assert!(out.take().is_empty(), "unknown id ignored");
    a.on_permission(&reply("p1", false, Some("  "), false), &mut out);
    assert_eq!(
        stdin_json(&out.take()),
        [
            json!({"type":"control_response","response":{"subtype":"success","request_id":"p1","response":{"behavior":"deny","message":"Denied by user"}}})
        ]
    );
}

#[test]
fn cancel_request_and_turn_end_withdraw_prompts() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            ASK,
            r#"{"type":"control_cancel_request","request_id":"p1"}"#,
            r#"{"type":"control_cancel_request","request_id":"p1"}"#,
        ],
    );
    assert_eq!(acts.len(), 2);
    assert_eq!(acts[1], Action::PermissionCancelled { id: "p1".into() });
    // A prompt still pending when the turn ends is withdrawn before TurnEnd.
    let acts = feed(&mut a, &[&ASK.replace("p1", "p3"), RESULT_OK]);
    assert_eq!(acts[1], Action::PermissionCancelled { id: "p3".into() });
    assert!(matches!(acts[2], Action::TurnEnd { .. }));
}

#[test]
fn malformed_permission_request_is_denied() {
    let mut a = running();
    let acts = feed(&mut a, &[r#"{"type":"control_request","request_id":"p4","request":{"subtype":"can_use_tool"}}"#]);
    assert_eq!(
        stdin_json(&acts),
        [
            json!({"type":"control_response","response":{"subtype":"success","request_id":"p4","response":{"behavior":"deny","message":"malformed permission request"}}})
        ]
    );
}

// ---------------------------------------------------------------- turns

#[test]
fn interrupt_only_while_running_and_once() {
    let mut a = ClaudeAdapter::new();
    let _ = a.launch(&LaunchSpec::default());
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    assert!(out.take().is_empty(), "no turn: nothing to interrupt");
    a.on_input("go", &mut out);
    out.take();
    a.on_interrupt(&mut out);
    a.on_interrupt(&mut out);
    assert_eq!(
        stdin_json(&out.take()),
        [json!({"type":"control_request","request_id":"int_1","request":{"subtype":"interrupt"}})]
    );
    let acts =
        feed(&mut a, &[r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["x"]}"#]);
    assert_eq!(acts, [Action::TurnEnd { success: false, stats: Stats::default() }]);
}

#[test]
fn error_result_uses_errors_when_result_is_empty() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":null,"errors":["disk full"]}"#,
        ],
    );
    let Action::Emit(Event::Error { code, message, details, .. }) = &acts[0] else { panic!("{acts:?}") };
    assert_eq!(*code, ErrorCode::AgentError);
    assert_eq!(message, "disk full");
    assert_eq!(details, &Some(json!({"worker_type":"claude_code","subtype":"error_during_execution"})));
    assert!(matches!(acts[1], Action::TurnEnd { success: false, .. }));
}

#[test]
fn result_outside_a_turn() {
    let mut a = ClaudeAdapter::new();
    let _ = a.launch(&LaunchSpec::default());
    let acts = feed(&mut a, &[RESULT_OK, r#"{"type":"result","is_error":true,"result":"Not logged in"}"#]);
    assert_eq!(kinds(&acts), [unmapped::OUTSIDE_TURN]);
    assert!(matches!(&acts[1], Action::Emit(Event::Error { message, .. }) if message == "Not logged in"));
    assert_eq!(acts.len(), 2, "no TurnEnd without an input");
}

#[test]
fn stats_from_result() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"system","subtype":"init","session_id":"s1","model":"m"}"#,
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"x","usage":{"input_tokens":100,"cache_read_input_tokens":50,"cache_creation_input_tokens":50}}}}"#,
            RESULT_OK,
        ],
    );
    assert_eq!(acts[0], Action::AgentSessionId("s1".into()));
    let Action::TurnEnd { success: true, stats } = &acts[1] else { panic!("{acts:?}") };
    assert_eq!(
        stats,
        &Stats {
            duration_ms: Some(5),
            tool_calls: None,
            input_tokens: Some(10),
            output_tokens: Some(2),
            cache_read_tokens: Some(3),
            cache_write_tokens: Some(4),
            total_tokens: Some(19),
            cost_usd: Some(0.5),
            model: Some("m".into()),
            context_used_percent: Some(20.0),
        }
    );
}

#[test]
fn stats_omit_what_is_absent() {
    let mut a = running();
    let acts = feed(&mut a, &[r#"{"type":"result","subtype":"success","is_error":false}"#]);
    assert_eq!(acts, [Action::TurnEnd { success: true, stats: Stats::default() }]);
    // A cumulative cost that went down is unknown, not negative.
    let mut out = Out::default();
    a.on_input("again", &mut out);
    feed(&mut a, &[r#"{"type":"result","is_error":false,"total_cost_usd":2.0}"#]);
    a.on_input("again", &mut out);
    let acts = feed(&mut a, &[r#"{"type":"result","is_error":false,"total_cost_usd":1.0}"#]);
    assert!(matches!(&acts[0], Action::TurnEnd { stats, .. } if stats.cost_usd.is_none()));
}

#[test]
fn stats_model_prefers_init_model_then_biggest() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"result","is_error":false,"modelUsage":{"small":{"inputTokens":5},"big":{"inputTokens":500,"contextWindow":0}}}"#,
        ],
    );
    assert!(
        matches!(&acts[0], Action::TurnEnd { stats, .. } if stats.model.as_deref() == Some("big") && stats.context_used_percent.is_none())
    );
    let mut out = Out::default();
    a.on_input("again", &mut out);
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"system","subtype":"init","session_id":"s","model":"small"}"#,
            r#"{"type":"result","is_error":false,"modelUsage":{"small":{"inputTokens":5},"big":{"inputTokens":500}}}"#,
        ],
    );
    assert!(matches!(&acts[1], Action::TurnEnd { stats, .. } if stats.model.as_deref() == Some("small")));
}

#[test]
fn agent_session_id_is_reported_once_and_checked() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"system","subtype":"init","session_id":"ses_1; rm -rf ~"}"#,
            r#"{"type":"system","subtype":"init","session_id":"abc-1"}"#,
            r#"{"type":"system","subtype":"init","session_id":"abc-1"}"#,
        ],
    );
    assert_eq!(acts, [Action::AgentSessionId("abc-1".into())]);
}

#[test]
fn resume_failure_only_on_first_result_of_a_resume_launch() {
    let line = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["No conversation found with session ID: x"]}"#;
    let mut a = ClaudeAdapter::new();
    let _ = a.launch(&LaunchSpec { resume: Some("x".into()), ..LaunchSpec::default() });
    // Before any input (the CLI may not wait for one): no TurnEnd.
    let acts = feed(&mut a, &[line]);
    assert_eq!(acts, [Action::ResumeFailed { message: "No conversation found with session ID: x".into() }]);
    // Later results are ordinary.
    let mut out = Out::default();
    a.on_input("again", &mut out);
    let acts = feed(&mut a, &[line]);
    assert!(matches!(&acts[0], Action::Emit(Event::Error { code: ErrorCode::AgentError, .. })));
}
