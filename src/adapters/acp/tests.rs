//! Unit tests of the acpx adapter: handshake branches, robustness against
//! bad lines, permission option choice for both agents' option ids, and
//! mapping corners the captured transcripts do not cover. The transcript
//! (golden) tests live in `tests/acp_adapter.rs`.

use std::path::Path;

use serde_json::{Value, json};

use super::{AcpAdapter, unmapped};
use crate::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, PermissionReply, Started};
use crate::protocol::{ErrorCode, Event, Stats};

const INIT_OK: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{"loadSession":true,"sessionCapabilities":{"resume":{}}}}}"#;
const NEW_OK: &str = r#"{"jsonrpc":"2.0","id":2,"result":{"sessionId":"s1"}}"#;
const CLAUDE_OPTIONS: &str = r#"[{"kind":"allow_always","name":"Always Allow","optionId":"allow_always"},{"kind":"allow_once","name":"Allow","optionId":"allow"},{"kind":"reject_once","name":"Reject","optionId":"reject"}]"#;
const OPENCODE_OPTIONS: &str = r#"[{"optionId":"once","kind":"allow_once","name":"Allow once"},{"optionId":"always","kind":"allow_always","name":"Always allow"},{"optionId":"reject","kind":"reject_once","name":"Reject"}]"#;

fn feed(a: &mut AcpAdapter, lines: &[&str]) -> Vec<Action> {
    let mut out = Out::default();
    for l in lines {
        a.on_line(l.as_bytes(), &mut out);
    }
    out.take()
}

fn started(spec: &LaunchSpec) -> (AcpAdapter, Vec<Action>) {
    let mut a = AcpAdapter::with_tag("t");
    let _ = a.launch(spec);
    let mut out = Out::default();
    a.on_started(&Started { work_dir: Path::new("/w"), pid: 7 }, &mut out);
    (a, out.take())
}

/// Ready on session `s1`.
fn ready() -> AcpAdapter {
    let (mut a, _) = started(&LaunchSpec::default());
    feed(&mut a, &[INIT_OK, NEW_OK]);
    a
}

/// Ready, with a turn running (prompt id 3).
fn running() -> AcpAdapter {
    let mut a = ready();
    let mut out = Out::default();
    a.on_input("hi", &mut out);
    a
}

fn input(a: &mut AcpAdapter, text: &str) -> Vec<Action> {
    let mut out = Out::default();
    a.on_input(text, &mut out);
    out.take()
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

fn update(u: Value) -> String {
    json!({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":u}}).to_string()
}

fn ask(id: Value, options: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"session/request_permission","params":{{"sessionId":"s1","toolCall":{{"toolCallId":"t1","title":"touch x","kind":"execute","rawInput":{{"command":"touch x"}}}},"options":{options}}}}}"#
    )
}

fn reply(id: &str, allow: bool, remember: bool) -> PermissionReply {
    PermissionReply { id: id.into(), allow, reason: None, remember }
}

fn answer(a: &mut AcpAdapter, r: PermissionReply) -> Vec<Value> {
    let mut out = Out::default();
    a.on_permission(&r, &mut out);
    stdin_json(&out.take())
}

fn turn_end(actions: &[Action]) -> Option<(bool, Stats)> {
    actions.iter().find_map(|a| match a {
        Action::TurnEnd { success, stats } => Some((*success, stats.clone())),
        _ => None,
    })
}

// ---------------------------------------------------------------- launch and handshake

#[test]
fn launch_has_no_arguments_and_sets_quiet_env() {
    let mut a = AcpAdapter::new();
    let l = a.launch(&LaunchSpec { resume: Some("ses_1; rm -rf ~".into()), ..LaunchSpec::default() });
    assert!(l.args.is_empty());
    assert_eq!(l.agent_session_id, None);
    assert!(l.env.contains(&("DISABLE_TELEMETRY".to_owned(), "1".to_owned())));
    // The unsafe resume id was discarded: a fresh session is opened.
    let mut out = Out::default();
    a.on_started(&Started { work_dir: Path::new("/w"), pid: 1 }, &mut out);
    a.on_line(INIT_OK.as_bytes(), &mut out);
    let sent = stdin_json(&out.take());
    assert_eq!(sent[1]["method"], "session/new");
}

#[test]
fn initialize_is_exact() {
    let (_, acts) = started(&LaunchSpec::default());
    let Action::Stdin(b) = &acts[0] else { panic!("{acts:?}") };
    let want = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":1,\"clientCapabilities\":{{\"fs\":{{\"readTextFile\":false,\"writeTextFile\":false}},\"terminal\":false}},\"clientInfo\":{{\"name\":\"hotplex\",\"version\":\"{}\"}}}}}}\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(String::from_utf8_lossy(b), want);
    assert_eq!(acts.len(), 1);
}

#[test]
fn new_session_reports_id_then_ready() {
    let (mut a, _) = started(&LaunchSpec::default());
    let acts = feed(&mut a, &[INIT_OK]);
    assert_eq!(
        stdin_json(&acts),
        [json!({"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"/w","mcpServers":[]}})]
    );
    let acts = feed(&mut a, &[NEW_OK]);
    assert_eq!(acts, [Action::AgentSessionId("s1".into()), Action::Ready]);
}

#[test]
fn model_is_set_before_ready() {
    let spec = LaunchSpec { model: Some("anthropic/claude-haiku-4-5".into()), ..LaunchSpec::default() };
    let (mut a, _) = started(&spec);
    let acts = feed(&mut a, &[INIT_OK, NEW_OK]);
    assert_eq!(acts[1], Action::AgentSessionId("s1".into()));
    assert_eq!(
        stdin_json(&acts)[1],
        json!({"jsonrpc":"2.0","id":3,"method":"session/set_model","params":{"sessionId":"s1","modelId":"anthropic/claude-haiku-4-5"}})
    );
    assert!(!acts.contains(&Action::Ready));
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":3,"result":{}}"#]);
    assert_eq!(acts, [Action::Ready]);
    // The model shows in the stats.
    input(&mut a, "x");
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts).map(|t| t.1.model), Some(Some("anthropic/claude-haiku-4-5".into())));
}

#[test]
fn handshake_failures_stop_the_agent() {
    let err = |id: u64| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":"Authentication required"}}}}"#)
    };
    let (mut a, _) = started(&LaunchSpec::default());
    assert_eq!(feed(&mut a, &[&err(1)]), [Action::Kill]);

    let (mut a, _) = started(&LaunchSpec::default());
    feed(&mut a, &[INIT_OK]);
    assert_eq!(feed(&mut a, &[&err(2)]), [Action::Kill]);

    let (mut a, _) = started(&LaunchSpec::default());
    feed(&mut a, &[INIT_OK]);
    assert_eq!(feed(&mut a, &[r#"{"jsonrpc":"2.0","id":2,"result":{}}"#]), [Action::Kill], "no sessionId");

    let (mut a, _) = started(&LaunchSpec { model: Some("nope".into()), ..LaunchSpec::default() });
    feed(&mut a, &[INIT_OK, NEW_OK]);
    assert_eq!(feed(&mut a, &[&err(3)]), [Action::Kill]);
    // Not ready: an input fails its turn at once.
    let acts = input(&mut a, "x");
    assert!(matches!(&acts[0], Action::Emit(Event::Error { code: ErrorCode::AgentError, .. })));
    assert_eq!(turn_end(&acts), Some((false, Stats::default())));
}

#[test]
fn resume_prefers_session_resume_then_load() {
    let spec = LaunchSpec { resume: Some("abc-1".into()), ..LaunchSpec::default() };
    let (mut a, _) = started(&spec);
    let acts = feed(&mut a, &[INIT_OK]);
    assert_eq!(
        stdin_json(&acts),
        [
            json!({"jsonrpc":"2.0","id":2,"method":"session/resume","params":{"sessionId":"abc-1","cwd":"/w","mcpServers":[]}})
        ]
    );
    // The answer may omit sessionId: the id resumed is reported.
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":2,"result":{"models":{"currentModelId":"default"}}}"#]);
    assert_eq!(acts, [Action::AgentSessionId("abc-1".into()), Action::Ready]);

    let (mut a, _) = started(&spec);
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":1,"result":{"agentCapabilities":{"loadSession":true}}}"#]);
    assert_eq!(stdin_json(&acts)[0]["method"], "session/load");
    // The replay before the answer is swallowed, requests still answered.
    let acts = feed(
        &mut a,
        &[
            &update(json!({"sessionUpdate":"user_message_chunk","content":{"type":"text","text":"old"}})),
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"old answer"}})),
            &update(json!({"sessionUpdate":"tool_call","toolCallId":"old","rawInput":{"a":1},"status":"completed"})),
            r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
        ],
    );
    assert_eq!(acts, [Action::AgentSessionId("abc-1".into()), Action::Ready]);
}

#[test]
fn resume_failures() {
    let spec = LaunchSpec { resume: Some("abc-1".into()), ..LaunchSpec::default() };
    let (mut a, _) = started(&spec);
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":1,"result":{"agentCapabilities":{}}}"#]);
    assert_eq!(acts, [Action::ResumeFailed { message: "the agent can neither resume nor load a session".into() }]);

    let (mut a, _) = started(&spec);
    feed(&mut a, &[INIT_OK]);
    let acts = feed(
        &mut a,
        &[
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32603,"message":"Internal error","data":{"details":"Session not found"}}}"#,
        ],
    );
    assert_eq!(acts, [Action::ResumeFailed { message: "Internal error: Session not found".into() }]);
}

// ---------------------------------------------------------------- robustness

#[test]
fn garbage_lines_are_unmapped() {
    let mut a = running();
    let mut out = Out::default();
    for l in [&b"hello world"[..], b"\xff\xfe{", b"{\"jsonrpc\":", b"[1,2]", b"42", b"{}", b"{\"id\":{}}", b"null"] {
        a.on_line(l, &mut out);
    }
    for l in [&b"{\"id\":3}"[..], b"{\"method\":7}", b"{\"jsonrpc\":\"2.0\",\"id\":[],\"method\":\"x\"}"] {
        a.on_line(l, &mut out);
    }
    a.on_line(b"   ", &mut out);
    a.on_line(b"", &mut out);
    let acts = out.take();
    let mut want = vec![unmapped::NON_JSON; 3];
    want.extend([unmapped::MALFORMED; 8]);
    assert_eq!(kinds(&acts), want);
    assert_eq!(acts.len(), 11, "blank lines produce nothing, the turn goes on");
    assert_eq!(acts[0], Action::Unmapped { kind: "non_json".into(), raw: json!("hello world") });
    // The turn still ends normally.
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts), Some((true, Stats::default())));
}

#[test]
fn every_prefix_of_every_fixture_line_is_safe() {
    crate::adapters::feed_every_fixture_prefix("acpx", running);
}

#[test]
fn unknown_notifications_and_updates_degrade_to_unmapped() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"jsonrpc":"2.0","method":"_zed/thing","params":{}}"#,
            &update(json!({"sessionUpdate":"session_info_update","title":"x"})),
            &update(json!({"sessionUpdate":"available_commands_update","availableCommands":[]})),
            &update(json!({"sessionUpdate":"current_mode_update","currentModeId":"plan"})),
            &update(json!({"sessionUpdate":"plan","entries":[]})),
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"image","data":"…"}})),
            r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"other","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"x"}}}}"#,
            r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1"}}"#,
            &update(json!({"sessionUpdate":"tool_call","title":"no id"})),
            r#"{"jsonrpc":"2.0","id":77,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":"x","result":{}}"#,
        ],
    );
    assert_eq!(
        kinds(&acts),
        [
            unmapped::UNKNOWN_NOTIFICATION,
            unmapped::UNKNOWN_UPDATE,
            unmapped::PLAN,
            unmapped::NON_TEXT_CONTENT,
            unmapped::FOREIGN_SESSION,
            unmapped::MALFORMED,
            unmapped::MALFORMED,
            unmapped::UNKNOWN_RESPONSE,
            unmapped::UNKNOWN_RESPONSE,
        ]
    );
    assert_eq!(acts.len(), 9);
}

#[test]
fn turn_content_outside_a_turn_is_unmapped() {
    let mut a = ready();
    let acts = feed(
        &mut a,
        &[
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"late"}})),
            &update(json!({"sessionUpdate":"tool_call_update","toolCallId":"t","status":"completed"})),
            &update(json!({"sessionUpdate":"usage_update","used":1,"size":10,"cost":{"amount":0.5,"currency":"USD"}})),
        ],
    );
    assert_eq!(kinds(&acts), [unmapped::OUTSIDE_TURN, unmapped::OUTSIDE_TURN]);
    assert_eq!(acts.len(), 2);
}

#[test]
fn unexpected_agent_requests_get_method_not_found_with_the_exact_id() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            r#"{"jsonrpc":"2.0","id":0,"method":"fs/read_text_file","params":{"path":"/etc/passwd"}}"#,
            r#"{"jsonrpc":"2.0","id":"req-7","method":"terminal/create","params":{}}"#,
        ],
    );
    assert_eq!(
        stdin_json(&acts),
        [
            json!({"jsonrpc":"2.0","id":0,"error":{"code":-32601,"message":"Method not found"}}),
            json!({"jsonrpc":"2.0","id":"req-7","error":{"code":-32601,"message":"Method not found"}}),
        ]
    );
    assert_eq!(kinds(&acts), [unmapped::AGENT_REQUEST, unmapped::AGENT_REQUEST]);
    // The exact bytes of the id-0 answer.
    let Action::Stdin(b) = &acts[0] else { panic!("{acts:?}") };
    assert_eq!(
        b.as_slice(),
        &b"{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}\n"[..]
    );
}

// ---------------------------------------------------------------- permissions

#[test]
fn permission_option_is_chosen_by_kind_for_both_agents() {
    // (options, allow, remember, expected optionId)
    let cases = [
        (CLAUDE_OPTIONS, true, false, "allow"),
        (CLAUDE_OPTIONS, true, true, "allow_always"),
        (CLAUDE_OPTIONS, false, false, "reject"),
        (CLAUDE_OPTIONS, false, true, "reject"),
        (OPENCODE_OPTIONS, true, false, "once"),
        (OPENCODE_OPTIONS, true, true, "always"),
        (OPENCODE_OPTIONS, false, false, "reject"),
    ];
    for (options, allow, remember, want) in cases {
        let mut a = running();
        let acts = feed(&mut a, &[&ask(json!(0), options)]);
        let Some(Action::Permission(p)) = acts.iter().find(|a| matches!(a, Action::Permission(_))) else {
            panic!("{acts:?}")
        };
        assert_eq!(p.id, "0");
        assert_eq!(
            answer(&mut a, reply("0", allow, remember)),
            [json!({"jsonrpc":"2.0","id":0,"result":{"outcome":{"outcome":"selected","optionId":want}}})],
            "{options} allow={allow} remember={remember}"
        );
        // Answered: a second reply writes nothing.
        assert!(answer(&mut a, reply("0", true, false)).is_empty());
    }
}

#[test]
fn permission_without_a_fitting_option_is_cancelled() {
    let only_always = r#"[{"kind":"allow_always","optionId":"aa"},{"kind":"reject_always","optionId":"ra"}]"#;
    let mut a = running();
    feed(&mut a, &[&ask(json!(5), only_always)]);
    // A one-time allow never widens to allow_always.
    assert_eq!(
        answer(&mut a, reply("5", true, false)),
        [json!({"jsonrpc":"2.0","id":5,"result":{"outcome":{"outcome":"cancelled"}}})]
    );
    feed(&mut a, &[&ask(json!(6), only_always)]);
    assert_eq!(
        answer(&mut a, reply("6", false, true)),
        [json!({"jsonrpc":"2.0","id":6,"result":{"outcome":{"outcome":"selected","optionId":"ra"}}})]
    );
}

#[test]
fn permission_prompt_content_and_string_ids() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"I will"}})),
            &update(
                json!({"_meta":{"claudeCode":{"toolName":"Bash"}},"sessionUpdate":"tool_call","toolCallId":"t1","rawInput":{},"title":"Terminal","kind":"execute"}),
            ),
            &ask(json!("p-1"), CLAUDE_OPTIONS),
        ],
    );
    let seq: Vec<String> = acts
        .iter()
        .map(|a| match a {
            Action::Emit(e) => e.type_name().to_owned(),
            Action::Permission(p) => format!("permission {} {} {} {:?}", p.id, p.tool_name, p.description, p.input),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        seq,
        [
            "message.start",
            "message.delta",
            "message.end",
            "message",
            "tool_call",
            "permission p-1 Bash touch x Some(Object {\"command\": String(\"touch x\")})"
        ]
    );
    // The tool_call got the request's input (the notice's was empty).
    assert!(
        matches!(&acts[4], Action::Emit(Event::ToolCall { input, name, .. }) if input["command"] == "touch x" && name == "Bash")
    );
    assert_eq!(
        answer(&mut a, reply("p-1", true, false)),
        [json!({"jsonrpc":"2.0","id":"p-1","result":{"outcome":{"outcome":"selected","optionId":"allow"}}})]
    );
}

#[test]
fn malformed_or_unexpected_permission_requests_are_cancelled() {
    let cancelled = |id: Value| json!({"jsonrpc":"2.0","id":id,"result":{"outcome":{"outcome":"cancelled"}}});
    // No turn running.
    let mut a = ready();
    assert_eq!(stdin_json(&feed(&mut a, &[&ask(json!(0), CLAUDE_OPTIONS)])), [cancelled(json!(0))]);
    // No options.
    let mut a = running();
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":1,"method":"session/request_permission","params":{}}"#]);
    assert_eq!(stdin_json(&acts), [cancelled(json!(1))]);
    assert!(!acts.iter().any(|x| matches!(x, Action::Permission(_))));
}

#[test]
fn interrupt_cancels_and_answers_pending_permissions() {
    let mut a = ready();
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    assert!(out.take().is_empty(), "no turn: nothing to interrupt");
    input(&mut a, "go");
    feed(&mut a, &[&ask(json!(0), CLAUDE_OPTIONS)]);
    a.on_interrupt(&mut out);
    a.on_interrupt(&mut out);
    let acts = out.take();
    assert_eq!(
        stdin_json(&acts),
        [
            json!({"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"s1"}}),
            json!({"jsonrpc":"2.0","id":0,"result":{"outcome":{"outcome":"cancelled"}}}),
        ]
    );
    assert_eq!(acts.last(), Some(&Action::PermissionCancelled { id: "0".into() }));
    // The session's deny after the interrupt finds nothing to answer.
    assert!(answer(&mut a, reply("0", false, false)).is_empty());
    // A prompt error after our cancel is no agent error.
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"aborted"}}"#]);
    assert_eq!(acts, [Action::TurnEnd { success: false, stats: Stats::default() }]);
}

#[test]
fn end_turn_after_cancel_is_a_success() {
    let mut a = running();
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts), Some((true, Stats::default())));
}

#[test]
fn stop_reasons() {
    let cases = [
        ("max_tokens", true, false),
        ("max_turn_requests", true, false),
        ("cancelled", false, false),
        ("refusal", false, true),
        ("something_new", true, false),
    ];
    for (reason, success, error) in cases {
        let mut a = running();
        let line = format!(r#"{{"jsonrpc":"2.0","id":3,"result":{{"stopReason":"{reason}"}}}}"#);
        let acts = feed(&mut a, &[&line]);
        assert_eq!(turn_end(&acts).map(|t| t.0), Some(success), "{reason}");
        let errs: Vec<_> = acts.iter().filter(|a| matches!(a, Action::Emit(Event::Error { .. }))).collect();
        assert_eq!(errs.len(), usize::from(error), "{reason}: {acts:?}");
    }
}

// ---------------------------------------------------------------- tools and text

#[test]
fn tool_calls_are_emitted_once_and_results_follow() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            // A completed update for a call never announced.
            &update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"u1","title":"Read","status":"completed","rawOutput":{"ok":true}}),
            ),
            // Announced once with its input, then in progress twice, then failed.
            &update(
                json!({"sessionUpdate":"tool_call","toolCallId":"u2","title":"grep","kind":"search","rawInput":{"q":"x"},"status":"pending"}),
            ),
            &update(json!({"sessionUpdate":"tool_call_update","toolCallId":"u2","status":"in_progress"})),
            &update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"u2","status":"in_progress","title":"grep x"}),
            ),
            &update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"u2","status":"failed","content":[{"type":"content","content":{"type":"text","text":"a"}},{"type":"diff","path":"p"},{"type":"content","content":{"type":"text","text":"b"}}]}),
            ),
            &update(json!({"sessionUpdate":"tool_call_update","toolCallId":"u2","status":"failed"})),
        ],
    );
    assert_eq!(
        acts,
        [
            Action::Emit(Event::ToolCall {
                id: "u1".into(),
                name: "Read".into(),
                input: json!({}),
                status: Some("executing")
            }),
            Action::Emit(Event::ToolResult { id: "u1".into(), output: json!({"ok":true}), is_error: false }),
            Action::Emit(Event::ToolCall {
                id: "u2".into(),
                name: "grep".into(),
                input: json!({"q":"x"}),
                status: Some("executing")
            }),
            Action::Emit(Event::ToolResult { id: "u2".into(), output: json!("a\nb"), is_error: true }),
        ]
    );
}

#[test]
fn reused_agent_message_ids_stay_unique() {
    let mut a = running();
    let chunk = |id: &str, t: &str| {
        update(json!({"sessionUpdate":"agent_message_chunk","messageId":id,"content":{"type":"text","text":t}}))
    };
    let acts = feed(
        &mut a,
        &[
            &chunk("m1", "a"),
            &update(json!({"sessionUpdate":"agent_thought_chunk","content":{"type":"text","text":"hmm"}})),
            &chunk("m1", "b"),
            &chunk("m2", "c"),
        ],
    );
    let ids: Vec<String> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Emit(Event::MessageStart { id, .. }) => Some(id.clone()),
            Action::Emit(Event::Reasoning { id, .. }) => Some(format!("r:{id}")),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["m1", "r:acp-t-1-1", "m1-2", "m2"]);
}

#[test]
fn gateway_abort_closes_the_run_and_drops_the_late_answer() {
    let mut a = running();
    feed(
        &mut a,
        &[
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":""}})),
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Hel"}})),
        ],
    );
    let mut out = Out::default();
    a.on_turn_aborted(&mut out);
    assert_eq!(
        out.take(),
        [
            Action::Emit(Event::MessageEnd { message_id: "acp-t-1-1".into() }),
            Action::Emit(Event::message("acp-t-1-1", "Hel"))
        ]
    );
    // The worker lived on: the late answer of that prompt ends nothing.
    assert!(feed(&mut a, &[r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"cancelled"}}"#]).is_empty());
    // The next turn works, with its own ids.
    let acts = input(&mut a, "again");
    assert_eq!(stdin_json(&acts)[0]["id"], 4);
    let acts = feed(
        &mut a,
        &[
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"ok"}})),
            r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"end_turn"}}"#,
        ],
    );
    assert_eq!(acts[0], Action::Emit(Event::message_start("acp-t-2-1")));
    assert_eq!(turn_end(&acts).map(|t| t.0), Some(true));
}

#[test]
fn exit_closes_the_run_and_withdraws_prompts() {
    let mut a = running();
    let mut acts = feed(
        &mut a,
        &[
            &update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"x"}})),
            &ask(json!(0), CLAUDE_OPTIONS),
        ],
    );
    let mut out = Out::default();
    a.on_exit(&ExitInfo { code: None, signal: Some(9), signalled_by_gateway: false }, &mut out);
    acts.extend(out.take());
    let tail: Vec<&Action> = acts.iter().rev().take(1).collect();
    assert_eq!(tail, [&Action::PermissionCancelled { id: "0".into() }]);
    assert!(stdin_json(&acts).is_empty(), "nothing written to a dead agent");
    assert!(acts.contains(&Action::Emit(Event::message("acp-t-1-1", "x"))));
}

// ---------------------------------------------------------------- stats

fn usage(amount: f64, used: u64) -> String {
    update(json!({"sessionUpdate":"usage_update","used":used,"size":1000,"cost":{"amount":amount,"currency":"USD"}}))
}

#[test]
fn cost_is_the_difference_of_cumulative_figures() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            &usage(0.1, 50),
            &usage(0.25, 100),
            r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":2,"cachedReadTokens":3}}}"#,
        ],
    );
    let (_, s) = turn_end(&acts).expect("turn end");
    assert_eq!(
        s,
        Stats {
            input_tokens: Some(10),
            output_tokens: Some(2),
            cache_read_tokens: Some(3),
            total_tokens: Some(15),
            cost_usd: Some(0.25),
            context_used_percent: Some(10.0),
            ..Stats::default()
        }
    );
    input(&mut a, "two");
    let acts = feed(&mut a, &[&usage(0.4, 120), r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts).and_then(|t| t.1.cost_usd), Some(0.15));
    // A turn without a usage update has no cost (never 0 for unknown).
    input(&mut a, "three");
    let acts = feed(&mut a, &[r#"{"jsonrpc":"2.0","id":5,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts).map(|t| t.1), Some(Stats::default()));
}

#[test]
fn first_turn_after_resume_has_no_cost() {
    let (mut a, _) = started(&LaunchSpec { resume: Some("s1".into()), ..LaunchSpec::default() });
    feed(&mut a, &[INIT_OK, r#"{"jsonrpc":"2.0","id":2,"result":{}}"#]);
    input(&mut a, "one");
    let acts = feed(&mut a, &[&usage(2.0, 10), r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}"#]);
    let (_, s) = turn_end(&acts).expect("turn end");
    assert_eq!((s.cost_usd, s.context_used_percent), (None, Some(1.0)));
    input(&mut a, "two");
    let acts = feed(&mut a, &[&usage(2.5, 10), r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts).and_then(|t| t.1.cost_usd), Some(0.5));
    // Another currency is not USD.
    input(&mut a, "three");
    let eur = update(json!({"sessionUpdate":"usage_update","used":1,"size":0,"cost":{"amount":9.0,"currency":"EUR"}}));
    let acts = feed(&mut a, &[&eur, r#"{"jsonrpc":"2.0","id":5,"result":{"stopReason":"end_turn"}}"#]);
    assert_eq!(turn_end(&acts).map(|t| t.1), Some(Stats::default()));
}

#[test]
fn prompt_error_after_a_denial_is_the_clients_stop() {
    // claude-code-acp over claude 2.1.197 answers a denial with a prompt error.
    let stop = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"Internal error: [ede_diagnostic] result_type=user last_content_type=n/a stop_reason=tool_use"}}"#;
    let mut a = running();
    feed(&mut a, &[&ask(json!(0), CLAUDE_OPTIONS)]);
    answer(&mut a, reply("0", false, false));
    let acts = feed(
        &mut a,
        &[
            &update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"failed","rawOutput":"The user doesn't want to proceed"}),
            ),
            stop,
        ],
    );
    assert!(!acts.iter().any(|a| matches!(a, Action::Emit(Event::Error { .. }))), "{acts:?}");
    assert_eq!(turn_end(&acts).map(|t| t.0), Some(false));
    // Once the agent carried on after the denial, an error is the agent's again.
    let mut a = running();
    feed(&mut a, &[&ask(json!(0), CLAUDE_OPTIONS)]);
    answer(&mut a, reply("0", false, false));
    let acts = feed(
        &mut a,
        &[&update(json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"ok, then"}})), stop],
    );
    assert!(acts.iter().any(|a| matches!(a, Action::Emit(Event::Error { code: ErrorCode::AgentError, .. }))));
}

#[test]
fn permission_asked_before_the_input_is_known_uses_the_requests_input() {
    // opencode may ask before its in_progress update carried the command.
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            &update(
                json!({"sessionUpdate":"tool_call","toolCallId":"t1","title":"bash","kind":"execute","status":"pending","rawInput":{"cwd":"/w"}}),
            ),
            &ask(json!(1), OPENCODE_OPTIONS),
            &update(
                json!({"sessionUpdate":"tool_call_update","toolCallId":"t1","status":"in_progress","rawInput":{"command":"touch x","cwd":"/w"}}),
            ),
        ],
    );
    let calls: Vec<&Action> = acts.iter().filter(|a| matches!(a, Action::Emit(Event::ToolCall { .. }))).collect();
    assert_eq!(
        calls,
        [&Action::Emit(Event::ToolCall {
            id: "t1".into(),
            name: "bash".into(),
            input: json!({"command":"touch x"}),
            status: Some("executing")
        })]
    );
    let Some(Action::Permission(p)) = acts.iter().find(|a| matches!(a, Action::Permission(_))) else {
        panic!("{acts:?}")
    };
    assert_eq!((p.tool_name.as_str(), p.description.as_str()), ("execute", "touch x"));
}

#[test]
fn policy_lets_through_only_what_the_adapter_honours() {
    // security.md §7.2: for acpx the agent's own permission prompts are the
    // ceiling; client tools, modes, system prompt and max_turns are refused
    // (the adapter has no way to pass them), a model is set with session/set_model.
    use crate::adapters::WorkerType;
    use crate::protocol::InitConfig;
    let pol = crate::policy::Policy::default();
    let apply = |c: InitConfig| pol.apply(Some(&c), WorkerType::Acpx, None, None);
    let refused = [
        InitConfig { allowed_tools: Some(vec![]), ..InitConfig::default() },
        InitConfig { disallowed_tools: Some(vec!["Bash".into()]), ..InitConfig::default() },
        InitConfig { permission_mode: Some("plan".into()), ..InitConfig::default() },
        InitConfig { system_prompt: Some("be terse".into()), ..InitConfig::default() },
        InitConfig { max_turns: Some(3), ..InitConfig::default() },
    ];
    for c in refused {
        assert!(apply(c.clone()).is_err(), "{c:?}");
    }
    let (spec, _) = apply(InitConfig { model: Some("anthropic/claude-haiku-4-5".into()), ..InitConfig::default() })
        .expect("a model is allowed");
    assert_eq!(spec.permission_mode, None);
    let (mut a, _) = started(&spec);
    let acts = feed(&mut a, &[INIT_OK, NEW_OK]);
    assert_eq!(stdin_json(&acts)[1]["method"], "session/set_model");
}
