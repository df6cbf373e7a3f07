//! Unit tests of the pi adapter: argv and env, robustness against bad
//! lines, text assembly, stats, tools, exit and resume failure — the mapping
//! corners the captured transcripts do not cover (dialogs, interrupts and
//! refused prompts: `tests_dialogs`). The transcript (golden) tests live in
//! `tests/pi_adapter.rs`. Helpers here are shared with `tests_dialogs`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::translate::{self, describe, leading_status};
use super::{PiAdapter, PiConfig, unmapped};
use crate::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, Started, SystemPromptMode};
use crate::protocol::{ErrorCode, Event};

pub(super) fn cfg() -> PiConfig {
    PiConfig {
        mode: "rpc".into(),
        provider: Some("mock".into()),
        gated_tools: vec!["bash".into(), "write".into()],
        extension: PathBuf::from("/var/lib/hotplex/pi/hotplex_permission_gate.ts"),
    }
}

pub(super) fn feed(a: &mut PiAdapter, lines: &[&str]) -> Vec<Action> {
    let mut out = Out::default();
    for l in lines {
        a.on_line(l.as_bytes(), &mut out);
    }
    out.take()
}

/// A launched adapter with a running turn (prompt id `p1`, turn 1).
pub(super) fn running() -> PiAdapter {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec::default());
    let mut out = Out::default();
    a.on_input("hi", &mut out);
    a
}

pub(super) fn kinds(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Unmapped { kind, .. } => Some(kind.as_str()),
            _ => None,
        })
        .collect()
}

pub(super) fn stdin_json(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Stdin(b) => Some(serde_json::from_slice(b).expect("stdin is JSON")),
            _ => None,
        })
        .collect()
}

pub(super) fn turn_end(actions: &[Action]) -> Option<bool> {
    actions.iter().find_map(|a| match a {
        Action::TurnEnd { success, .. } => Some(*success),
        _ => None,
    })
}

pub(super) const AGENT_START: &str = r#"{"type":"agent_start"}"#;
pub(super) const AGENT_END: &str = r#"{"type":"agent_end","messages":[]}"#;
pub(super) const ASSISTANT_START: &str =
    r#"{"type":"message_start","message":{"role":"assistant","content":[],"stopReason":"stop"}}"#;

pub(super) fn assistant_end(stop: &str, content: Value) -> String {
    json!({"type":"message_end","message":{"role":"assistant","content":content,"model":"m1",
        "usage":{"input":10,"output":2,"cacheRead":1,"cacheWrite":0,"totalTokens":13,"cost":{"total":0.25}},
        "stopReason":stop}})
    .to_string()
}

pub(super) fn update(kind: &str, index: u64, extra: Value) -> String {
    let mut e = json!({"type": kind, "contentIndex": index, "partial": {"role": "assistant", "content": []}});
    if let (Some(e), Value::Object(x)) = (e.as_object_mut(), extra) {
        e.extend(x);
    }
    json!({"type":"message_update","assistantMessageEvent": e,"message":{"role":"assistant"}}).to_string()
}

pub(super) fn gate(id: &str, tool: &str, input: Value) -> String {
    let q = json!({"toolName": tool, "toolCallId": "call_1", "input": input}).to_string();
    json!({"type":"extension_ui_request","id":id,"method":"confirm","title":"hotplex.permission","message":q})
        .to_string()
}

// ---------------------------------------------------------------- launch

#[test]
fn launch_flags_env_and_gate() {
    let mut a = PiAdapter::new(cfg());
    let l = a.launch(&LaunchSpec { model: Some("mock-model".into()), ..LaunchSpec::default() });
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
            "/var/lib/hotplex/pi/hotplex_permission_gate.ts"
        ]
    );
    assert_eq!(
        l.env,
        vec![("PI_OFFLINE".to_owned(), "1".to_owned()), ("HOTPLEX_PI_GATED_TOOLS".to_owned(), "bash,write".to_owned())]
    );
    assert_eq!(l.agent_session_id, None);
}

#[test]
fn launch_without_provider_model_or_gated_tools() {
    let mut a = PiAdapter::new(PiConfig { provider: None, gated_tools: vec![], ..cfg() });
    let l = a.launch(&LaunchSpec::default());
    assert!(!l.args.iter().any(|x| x == "--provider" || x == "--model"), "{:?}", l.args);
    assert!(l.env.contains(&("HOTPLEX_PI_GATED_TOOLS".to_owned(), String::new())), "empty = never ask");
}

#[test]
fn launch_system_prompt_is_one_value_and_never_a_file_name() {
    let spec = LaunchSpec {
        system_prompt: Some("--session=evil -e /tmp/x.ts".into()),
        system_prompt_mode: Some(SystemPromptMode::Append),
        ..LaunchSpec::default()
    };
    let l = PiAdapter::new(cfg()).launch(&spec);
    let i = l.args.iter().position(|x| x == "--append-system-prompt").expect("flag");
    // The value follows its flag as one element; pi takes it unconditionally.
    assert_eq!(l.args[i + 1], "--session=evil -e /tmp/x.ts\n");
    assert!(!l.args.iter().any(|x| x == "--session"));
    assert_eq!(l.args.iter().filter(|x| *x == "-e").count(), 1);

    // A path stays text for pi (which would read an existing file).
    let spec = LaunchSpec {
        system_prompt: Some("/etc/passwd".into()),
        system_prompt_mode: Some(SystemPromptMode::Replace),
        ..LaunchSpec::default()
    };
    let l = PiAdapter::new(cfg()).launch(&spec);
    let i = l.args.iter().position(|x| x == "--system-prompt").expect("replace flag");
    assert_eq!(l.args[i + 1], "/etc/passwd\n");
}

#[test]
fn launch_resume_and_unsafe_resume_id() {
    let spec = LaunchSpec { resume: Some("01a2107c-a1b2-713c".into()), ..LaunchSpec::default() };
    let l = PiAdapter::new(cfg()).launch(&spec);
    assert_eq!(&l.args[l.args.len() - 2..], ["--session", "01a2107c-a1b2-713c"]);

    for bad in ["../../etc/passwd", "a b", "", "x;rm -rf ~"] {
        let spec = LaunchSpec { resume: Some(bad.into()), ..LaunchSpec::default() };
        let l = PiAdapter::new(cfg()).launch(&spec);
        assert!(!l.args.iter().any(|x| x == "--session"), "{bad:?} reached argv: {:?}", l.args);
    }
}

#[test]
fn started_asks_for_the_state_and_reports_the_session_once() {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec::default());
    let mut out = Out::default();
    a.on_started(&Started { work_dir: Path::new("/w"), pid: 7 }, &mut out);
    assert_eq!(stdin_json(&out.take()), [json!({"type":"get_state","id":"s1"})]);
    let state = r#"{"id":"s1","type":"response","command":"get_state","success":true,"data":{"sessionId":"abc-123","model":{"id":"m1","contextWindow":1000}}}"#;
    assert_eq!(feed(&mut a, &[state]), [Action::AgentSessionId("abc-123".into())]);
    assert_eq!(feed(&mut a, &[state]), [], "reported once per process");
    // An id that could not be resumed safely is not reported.
    let _ = a.launch(&LaunchSpec::default());
    let bad = r#"{"type":"response","command":"get_state","success":true,"data":{"sessionId":"../x"}}"#;
    assert_eq!(feed(&mut a, &[bad]), []);
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
    assert_eq!(acts[3], Action::Unmapped { kind: "malformed".into(), raw: json!([1, 2]) });
}

#[test]
fn wrong_shapes_of_known_types_are_malformed_not_fatal() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"message_update","assistantMessageEvent":"x"}"#,
            r#"{"type":"message_start"}"#,
            r#"{"type":"message_update","assistantMessageEvent":{"type":"text_delta","delta":"x"}}"#,
            r#"{"type":"tool_execution_start","toolName":"bash"}"#,
            r#"{"type":"tool_execution_end","isError":true}"#,
            r#"{"type":"extension_ui_request","method":"confirm","title":"hotplex.permission"}"#,
        ],
    );
    assert_eq!(kinds(&acts), [unmapped::MALFORMED; 6]);
    // The turn still ends.
    assert_eq!(turn_end(&feed(&mut a, &[AGENT_START, AGENT_END])), Some(true));
}

#[test]
fn truncated_line_does_not_end_the_turn() {
    let mut a = running();
    let cut = &AGENT_END[..AGENT_END.len() / 2];
    let acts = feed(&mut a, &[cut]);
    assert_eq!(kinds(&acts), [unmapped::NON_JSON]);
    assert_eq!(turn_end(&acts), None);
    assert_eq!(turn_end(&feed(&mut a, &[AGENT_END])), Some(true));
}

#[test]
fn every_prefix_of_every_fixture_line_is_safe() {
    crate::adapters::feed_every_fixture_prefix("pi", running);
}

#[test]
fn unknown_types_and_event_kinds_degrade_to_unmapped() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"session_renamed","name":"x"}"#,
            AGENT_START,
            ASSISTANT_START,
            &update("citation_delta", 0, json!({"delta": "x"})),
            &update("toolcall_delta", 1, json!({"delta": "{\"a\""})),
            r#"{"type":"auto_retry_start","attempt":1,"maxAttempts":3,"delayMs":2000,"errorMessage":"529"}"#,
            r#"{"type":"compaction_start","reason":"threshold"}"#,
            r#"{"type":"queue_update","steering":[],"followUp":[]}"#,
            r#"{"type":"extension_error","extensionPath":"/x.ts","event":"tool_call","error":"boom"}"#,
            r#"{"type":"turn_start"}"#,
            r#"{"type":"tool_execution_update","toolCallId":"t","partialResult":{"content":[]}}"#,
        ],
    );
    assert_eq!(
        kinds(&acts),
        [
            unmapped::UNKNOWN_TYPE,
            unmapped::UNKNOWN_SUBTYPE,
            unmapped::AUTO_RETRY,
            unmapped::NOTICE,
            unmapped::NOTICE,
            unmapped::NOTICE
        ]
    );
    assert_eq!(acts.len(), 6);
    assert_eq!(
        acts[0],
        Action::Unmapped { kind: "unknown_type".into(), raw: json!({"type":"session_renamed","name":"x"}) }
    );
}

#[test]
fn run_events_outside_a_turn_are_unmapped() {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec::default());
    let acts = feed(&mut a, &[AGENT_START, ASSISTANT_START, &update("text_delta", 0, json!({"delta":"x"})), AGENT_END]);
    assert_eq!(kinds(&acts), [unmapped::OUTSIDE_TURN; 4]);
    assert_eq!(turn_end(&acts), None);
}

// ---------------------------------------------------------------- text

#[test]
fn text_never_streamed_is_emitted_whole_from_message_end() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            AGENT_START,
            ASSISTANT_START,
            &assistant_end(
                "stop",
                json!([{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hi"},{"type":"toolCall","id":"t","name":"bash","arguments":{}}]),
            ),
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::Reasoning { id: "pi-1-1-0".into(), content: "hmm".into(), delta: None }),
            Action::Emit(Event::message_start("pi-1-1-1")),
            Action::Emit(Event::message_delta("pi-1-1-1", "Hi")),
            Action::Emit(Event::MessageEnd { message_id: "pi-1-1-1".into() }),
            Action::Emit(Event::message("pi-1-1-1", "Hi")),
        ]
    );
}

#[test]
fn missing_tail_is_sent_before_end_and_late_deltas_are_out_of_order() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            AGENT_START,
            ASSISTANT_START,
            &update("text_delta", 0, json!({"delta":"Hel"})), // start lost: opened here
            &update("text_end", 0, json!({"content":"Hello"})),
            &update("text_delta", 0, json!({"delta":"!"})),
            &update("text_end", 1, json!({"content":"Whole"})), // neither start nor deltas
        ],
    );
    let got: Vec<&Action> = acts.iter().filter(|a| !matches!(a, Action::Unmapped { .. })).collect();
    assert_eq!(
        got,
        [
            &Action::Emit(Event::message_start("pi-1-1-0")),
            &Action::Emit(Event::message_delta("pi-1-1-0", "Hel")),
            &Action::Emit(Event::message_delta("pi-1-1-0", "lo")),
            &Action::Emit(Event::MessageEnd { message_id: "pi-1-1-0".into() }),
            &Action::Emit(Event::message("pi-1-1-0", "Hello")),
            &Action::Emit(Event::message_start("pi-1-1-1")),
            &Action::Emit(Event::message_delta("pi-1-1-1", "Whole")),
            &Action::Emit(Event::MessageEnd { message_id: "pi-1-1-1".into() }),
            &Action::Emit(Event::message("pi-1-1-1", "Whole")),
        ]
    );
    assert_eq!(kinds(&acts), [unmapped::OUT_OF_ORDER]);
}

#[test]
fn message_ids_count_turns_from_the_turn_base_and_messages_from_one() {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec { turn_base: 41, ..LaunchSpec::default() });
    let mut out = Out::default();
    a.on_input("x", &mut out);
    let acts = feed(&mut a, &[AGENT_START, ASSISTANT_START, &update("text_start", 2, json!({}))]);
    assert_eq!(acts, [Action::Emit(Event::message_start("pi-42-1-2"))]);
    let acts = feed(&mut a, &[ASSISTANT_START]);
    // The next message closes the open block of the previous one.
    assert_eq!(
        acts,
        [
            Action::Emit(Event::MessageEnd { message_id: "pi-42-1-2".into() }),
            Action::Emit(Event::message("pi-42-1-2", "")),
        ]
    );
    let acts = feed(&mut a, &[&update("text_start", 0, json!({}))]);
    assert_eq!(acts, [Action::Emit(Event::message_start("pi-42-2-0"))]);
}

// ---------------------------------------------------------------- turn end and stats

#[test]
fn stop_reasons_decide_success() {
    for (stop, interrupt, success, error) in [
        ("stop", false, true, false),
        ("length", false, true, false),
        ("toolUse", false, true, false),
        ("aborted", true, false, false),
        ("error", false, false, true),
        ("error", true, false, false),
        ("stop", true, true, false),
        ("brand_new_reason", false, true, false),
    ] {
        let mut a = running();
        let mut out = Out::default();
        if interrupt {
            a.on_interrupt(&mut out);
        }
        let end = json!({"type":"message_end","message":{"role":"assistant","content":[],"stopReason":stop,
            "errorMessage":"529 overloaded"}})
        .to_string();
        let acts = feed(&mut a, &[AGENT_START, ASSISTANT_START, &end, AGENT_END]);
        assert_eq!(turn_end(&acts), Some(success), "{stop} interrupted={interrupt}");
        let errors: Vec<&Action> = acts.iter().filter(|x| matches!(x, Action::Emit(Event::Error { .. }))).collect();
        assert_eq!(!errors.is_empty(), error, "{stop} interrupted={interrupt}: {errors:?}");
        if error {
            let Action::Emit(Event::Error { code, message, details, .. }) = errors[0] else { unreachable!() };
            assert_eq!(*code, ErrorCode::AgentError);
            assert_eq!(message, "529 overloaded");
            assert_eq!(details, &Some(json!({"worker_type":"pi","subtype":"error","status":529})));
        }
    }
}

#[test]
fn a_run_without_an_assistant_message() {
    let mut a = running();
    assert_eq!(turn_end(&feed(&mut a, &[AGENT_START, AGENT_END])), Some(true));
    let mut a = running();
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    assert_eq!(turn_end(&feed(&mut a, &[AGENT_START, AGENT_END])), Some(false));
}

#[test]
fn stats_sum_every_assistant_message_of_the_turn() {
    let mut a = running();
    let state = r#"{"type":"response","command":"get_state","success":true,"data":{"sessionId":"s","model":{"id":"m1","contextWindow":1000}}}"#;
    let end = assistant_end("toolUse", json!([]));
    let last = assistant_end("stop", json!([]));
    let user = r#"{"type":"message_end","message":{"role":"user","content":"hi","usage":{"input":999}}}"#;
    let acts = feed(&mut a, &[state, AGENT_START, user, ASSISTANT_START, &end, ASSISTANT_START, &last, AGENT_END]);
    let stats = acts
        .iter()
        .find_map(|x| match x {
            Action::TurnEnd { stats, .. } => Some(stats.clone()),
            _ => None,
        })
        .expect("turn end");
    assert_eq!(stats.input_tokens, Some(20));
    assert_eq!(stats.output_tokens, Some(4));
    assert_eq!(stats.cache_read_tokens, Some(2));
    assert_eq!(stats.cache_write_tokens, Some(0));
    assert_eq!(stats.total_tokens, Some(26));
    assert_eq!(stats.cost_usd, Some(0.5));
    assert_eq!(stats.model.as_deref(), Some("m1"));
    // The last call's prompt: 10 input + 1 cache read of a 1000 window.
    assert_eq!(stats.context_used_percent, Some(1.1));
    assert_eq!(stats.duration_ms, None, "the session measures it");
    assert_eq!(stats.tool_calls, None, "the session counts them");
}

#[test]
fn stats_leave_out_what_pi_did_not_report() {
    let mut a = running();
    let end = r#"{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"stop","usage":{"output":3}}}"#;
    let acts = feed(&mut a, &[AGENT_START, ASSISTANT_START, end, AGENT_END]);
    let Some(Action::TurnEnd { stats, .. }) = acts.last() else { panic!("{acts:?}") };
    assert_eq!((stats.input_tokens, stats.output_tokens, stats.total_tokens), (None, Some(3), Some(3)));
    assert_eq!((stats.cost_usd, stats.model.as_deref(), stats.context_used_percent), (None, None, None));
}

// ---------------------------------------------------------------- tools

#[test]
fn tool_execution_maps_to_tool_call_and_result() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            AGENT_START,
            r#"{"type":"tool_execution_start","toolCallId":"t1","toolName":"read","args":{"path":"a.txt"}}"#,
            r#"{"type":"tool_execution_start","toolCallId":"t2","toolName":"ls"}"#,
            r#"{"type":"tool_execution_end","toolCallId":"t1","toolName":"read","result":{"content":[{"type":"text","text":"one"},{"type":"image","data":"x"},{"type":"text","text":"two"}],"details":{}},"isError":false}"#,
            r#"{"type":"tool_execution_end","toolCallId":"t2","toolName":"ls","result":{"content":[{"type":"text","text":"boom"}]},"isError":true}"#,
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::ToolCall {
                id: "t1".into(),
                name: "read".into(),
                input: json!({"path":"a.txt"}),
                status: Some("executing")
            }),
            Action::Emit(Event::ToolCall {
                id: "t2".into(),
                name: "ls".into(),
                input: json!({}),
                status: Some("executing")
            }),
            Action::Emit(Event::ToolResult { id: "t1".into(), output: json!("one\ntwo"), is_error: false }),
            Action::Emit(Event::ToolResult { id: "t2".into(), output: json!("boom"), is_error: true }),
        ]
    );
}

// ---------------------------------------------------------------- exit and resume failure

#[test]
fn exit_mid_turn_closes_the_message_and_withdraws_dialogs() {
    let mut a = running();
    let _ = feed(
        &mut a,
        &[
            AGENT_START,
            ASSISTANT_START,
            &update("text_delta", 0, json!({"delta":"Hi"})),
            &gate("d1", "bash", json!({})),
        ],
    );
    let mut out = Out::default();
    a.on_exit(&ExitInfo { code: None, signal: Some(9), signalled_by_gateway: false }, &mut out);
    assert_eq!(
        out.take(),
        [
            Action::Emit(Event::MessageEnd { message_id: "pi-1-1-0".into() }),
            Action::Emit(Event::message("pi-1-1-0", "Hi")),
            Action::PermissionCancelled { id: "d1".into() },
        ],
        "no TurnEnd: the session reports the crash"
    );
}

fn resuming() -> PiAdapter {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec { resume: Some("gone-1".into()), ..LaunchSpec::default() });
    a
}

#[test]
fn a_resume_launch_dying_at_startup_is_a_resume_failure() {
    let exit1 = ExitInfo { code: Some(1), signal: None, signalled_by_gateway: false };
    let mut a = resuming();
    let mut out = Out::default();
    a.on_exit(&exit1, &mut out);
    let acts = out.take();
    assert_eq!(
        acts,
        [Action::ResumeFailed {
            message: "No session found matching 'gone-1' (pi exited with code 1 at startup)".into()
        }]
    );

    // With an input already running, its turn ends too.
    let mut a = resuming();
    a.on_input("hi", &mut out);
    out.take();
    a.on_exit(&exit1, &mut out);
    let acts = out.take();
    assert!(matches!(acts[0], Action::ResumeFailed { .. }), "{acts:?}");
    assert_eq!(turn_end(&acts), Some(false));

    // Not a resume failure: gateway's own signal, pi answered first, a
    // fresh session, another exit code.
    let cases: [(PiAdapter, ExitInfo, &[&str]); 4] = [
        (resuming(), ExitInfo { code: Some(1), signal: None, signalled_by_gateway: true }, &[]),
        (
            resuming(),
            exit1,
            &[r#"{"type":"response","command":"get_state","success":true,"data":{"sessionId":"gone-1"}}"#],
        ),
        (PiAdapter::new(cfg()), exit1, &[]),
        (resuming(), ExitInfo { code: Some(143), signal: None, signalled_by_gateway: false }, &[]),
    ];
    for (mut a, exit, lines) in cases {
        let _ = feed(&mut a, lines);
        a.on_exit(&exit, &mut out);
        assert!(!out.take().iter().any(|x| matches!(x, Action::ResumeFailed { .. })), "{exit:?} {lines:?}");
    }
}

// ---------------------------------------------------------------- translate

#[test]
fn descriptions_summarise_and_stay_short() {
    assert_eq!(describe("bash", Some(&json!({"command":"ls -la","timeout":5}))), "bash ls -la");
    assert_eq!(describe("edit", Some(&json!({"path":"a.rs","oldText":"x"}))), "edit a.rs");
    assert_eq!(describe("mcp_x", Some(&json!({"n":1}))), "mcp_x {\"n\":1}");
    assert_eq!(describe("ls", Some(&json!({}))), "ls");
    assert_eq!(describe("ls", None), "ls");
    let long = describe("bash", Some(&json!({"command": "é".repeat(500)})));
    assert_eq!(long.chars().count(), translate::MAX_DESCRIPTION_CHARS);
    assert!(long.ends_with('…'));
}

#[test]
fn error_status_is_read_from_the_text() {
    assert_eq!(leading_status("400 {\"type\":\"error\"}"), Some(400));
    assert_eq!(leading_status("529"), Some(529));
    assert_eq!(leading_status("4000 x"), None);
    assert_eq!(leading_status("Connection error."), None);
    assert_eq!(leading_status(""), None);
    let Event::Error { message, details, .. } = translate::agent_error(None, "error") else { unreachable!() };
    assert_eq!(message, "agent error (error)");
    assert_eq!(details, Some(json!({"worker_type":"pi","subtype":"error"})));
}
