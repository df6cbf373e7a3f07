//! Flow tests of the `opencode_server` adapter outside the captured
//! streams: startup handshake and its failures, resume refusal, event-stream
//! gaps, lost prompts, gateway-side aborts, filtering, and the pure mappings.

use super::*;

const SID: &str = "ses_test1";

fn ev(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn connected() -> Vec<u8> {
    ev(json!({"type": "server.connected", "properties": {}}))
}

fn assistant(id: &str) -> Vec<u8> {
    ev(json!({"type": "message.updated", "properties": {"sessionID": SID, "info": {
        "id": id, "role": "assistant", "sessionID": SID, "parentID": "msg_u1",
        "providerID": "anthropic", "modelID": "claude-sonnet-4-5"}}}))
}

fn text_part(msg: &str, id: &str, text: &str, end: bool) -> Vec<u8> {
    let time = if end { json!({"start": 1, "end": 2}) } else { json!({"start": 1}) };
    ev(json!({"type": "message.part.updated", "properties": {"sessionID": SID, "part": {
        "id": id, "messageID": msg, "sessionID": SID, "type": "text", "text": text, "time": time}}}))
}

fn delta(msg: &str, part: &str, d: &str) -> Vec<u8> {
    ev(json!({"type": "message.part.delta", "properties": {"sessionID": SID, "messageID": msg, "partID": part,
        "field": "text", "delta": d}}))
}

/// A harness past startup with one turn running.
fn ready_with_turn(text: &str) -> Harness {
    let mut h = Harness::new(SID, false);
    h.sse(&connected());
    h.call(|a, out| a.on_input(text, out));
    h
}

fn answer(msg: &str, parts: Value, error: Option<Value>) -> String {
    let mut info = json!({"id": msg, "role": "assistant", "parentID": "msg_u1",
        "providerID": "anthropic", "modelID": "claude-sonnet-4-5"});
    if let Some(e) = error {
        info["error"] = e;
    }
    json!({"info": info, "parts": parts}).to_string()
}

#[test]
fn startup_opens_the_stream_then_the_session() {
    let mut h = Harness::new(SID, false);
    assert_eq!(render(&h.actions), ["timer 1", "http stream GET /event ", "timer 3"]);
    h.sse(&connected());
    assert_eq!(
        render(&h.actions)[3..],
        ["http POST /session {}", "agent_session_id ses_test1", "ready"],
        "{:#?}",
        render(&h.actions)
    );
}

#[test]
fn health_poll_is_the_fallback_for_the_listening_line() {
    let mut a = OpencodeServerAdapter::new();
    a.launch(&spec(None));
    let mut out = Out::default();
    a.on_started(&Started { work_dir: Path::new("/w"), pid: 1 }, &mut out);
    let Some(Action::Timer { id, .. }) = out.take().pop() else { panic!("health timer") };
    a.on_timer(id, &mut out);
    let acts = out.take();
    let Some(Action::Http { id: hid, request }) = acts.first() else { panic!("{acts:?}") };
    assert_eq!(request.path, "/global/health");
    // not listening yet: poll again
    a.on_http_error(*hid, HttpError::Connect, &mut out);
    assert!(matches!(out.take().as_slice(), [Action::Timer { .. }]));
    a.on_timer(id, &mut out);
    let Some(Action::Http { id: hid, .. }) = out.take().pop() else { panic!() };
    a.on_http_response(hid, 200, br#"{"healthy":true,"version":"1.18.33"}"#, &mut out);
    assert!(out.take().iter().any(|a| matches!(a, Action::HttpStream { request, .. } if request.path == "/event")));
    // the listening line afterwards changes nothing
    a.on_line(b"opencode server listening on http://127.0.0.1:4097", &mut out);
    assert!(out.take().is_empty());
}

#[test]
fn startup_failures_stop_the_worker() {
    let mut h = Harness::new(SID, false);
    let id = h.events.unwrap();
    h.call(|a, out| a.on_http_response(id, 401, b"", out));
    assert_eq!(render(&h.actions).last().map(String::as_str), Some("kill"));

    let mut a = OpencodeServerAdapter::new();
    a.launch(&spec(None));
    let mut out = Out::default();
    a.on_line(b"opencode server listening on http://127.0.0.1:4097", &mut out);
    let Some(Action::HttpStream { id, .. }) = out.take().into_iter().find(|a| matches!(a, Action::HttpStream { .. }))
    else {
        panic!()
    };
    a.on_sse(id, &connected(), &mut out);
    let Some(Action::Http { id: create, .. }) = out.take().pop() else { panic!() };
    a.on_http_response(create, 500, br#"{"name":"UnknownError"}"#, &mut out);
    assert!(matches!(out.take().as_slice(), [Action::Kill]));
}

#[test]
fn unknown_resumed_session_fails_at_the_first_input() {
    let mut a = OpencodeServerAdapter::new();
    a.launch(&spec(Some("ses_gone")));
    let mut out = Out::default();
    a.on_line(b"opencode server listening on http://127.0.0.1:4097", &mut out);
    let stream = out.take().into_iter().find_map(|a| match a {
        Action::HttpStream { id, .. } => Some(id),
        _ => None,
    });
    a.on_sse(stream.unwrap(), &connected(), &mut out);
    let Some(Action::Http { id, request }) = out.take().pop() else { panic!() };
    assert_eq!((request.method, request.path.as_str()), ("GET", "/session/ses_gone"));
    let body = br#"{"name":"NotFoundError","data":{"message":"Session not found: ses_gone"}}"#;
    a.on_http_response(id, 404, body, &mut out);
    assert_eq!(render(&out.take()), ["agent_session_id ses_gone", "ready"]);
    a.on_input("hello", &mut out);
    assert_eq!(render(&out.take()), [r#"resume_failed "Session not found: ses_gone""#, "done success=false {}"]);
}

#[test]
fn a_stream_gap_is_filled_from_the_message_list() {
    let mut h = ready_with_turn("say hi");
    h.sse(&assistant("msg_a1"));
    h.sse(&text_part("msg_a1", "prt_t1", "", false));
    h.sse(&delta("msg_a1", "prt_t1", "Hello "));
    let ev_id = h.events.unwrap();
    h.call(|a, out| a.on_http_error(ev_id, HttpError::Closed, out));
    assert_eq!(render(&h.actions).last().map(String::as_str), Some("timer 2"));
    h.fire(T_RECONNECT);
    assert_ne!(h.events, Some(ev_id), "a new stream was opened");
    h.sse(&connected());
    // The final answer's last message lacks the first step's tool: the list has it.
    let final_parts =
        json!([{"id": "prt_t2", "messageID": "msg_a2", "type": "text", "text": "Done.", "time": {"end": 3}}]);
    h.answer_prompt(200, &answer("msg_a2", final_parts, None));
    let list = json!([
        {"info": {"id": "msg_u1", "role": "user"}, "parts": [{"id": "prt_u", "messageID": "msg_u1", "type": "text", "text": "say hi"}]},
        {"info": {"id": "msg_a1", "role": "assistant", "parentID": "msg_u1"}, "parts": [
            {"id": "prt_t1", "messageID": "msg_a1", "type": "text", "text": "Hello there.", "time": {"end": 2}},
            {"id": "prt_x", "messageID": "msg_a1", "type": "tool", "tool": "bash", "callID": "call_1",
             "state": {"status": "completed", "input": {"command": "ls"}, "output": "a\n"}},
            {"id": "prt_s", "messageID": "msg_a1", "type": "step-finish", "tokens": {"input": 5, "output": 2, "cache": {"read": 1, "write": 0}}, "cost": 0.5}]},
        {"info": {"id": "msg_a2", "role": "assistant", "parentID": "msg_u1"}, "parts": []}
    ]);
    let pending = h.held.pop_front().expect("GET messages");
    assert_eq!(pending.1.path, "/session/ses_test1/message?limit=50");
    h.call(|a, out| a.on_http_response(pending.0, 200, list.to_string().as_bytes(), out));
    let r = render(&h.actions);
    let from = r.iter().position(|l| l.starts_with("message.start prt_t2")).expect("final text");
    assert_eq!(
        r[from..],
        [
            "message.start prt_t2",
            r#"delta prt_t2 x1 "Done.""#,
            "message.end prt_t2",
            r#"message prt_t2 "Done.""#,
            r#"http GET /session/ses_test1/message?limit=50 "#,
            r#"delta prt_t1 x1 "there.""#,
            "message.end prt_t1",
            r#"message prt_t1 "Hello there.""#,
            r#"tool_call call_1 bash {"command":"ls"}"#,
            r#"tool_result call_1 ok "a\n""#,
            r#"done success=true {"input_tokens":5,"output_tokens":2,"cache_read_tokens":1,"cache_write_tokens":0,"total_tokens":8,"cost_usd":0.5,"model":"anthropic/claude-sonnet-4-5"}"#,
        ],
        "{r:#?}"
    );
}

#[test]
fn the_answer_supplies_a_tail_the_stream_missed() {
    let mut h = ready_with_turn("say hi");
    h.sse(&assistant("msg_a1"));
    h.sse(&delta("msg_a1", "prt_t1", "ignored: part unknown yet"));
    h.sse(&text_part("msg_a1", "prt_t1", "", false));
    h.sse(&delta("msg_a1", "prt_t1", "Hello "));
    let parts =
        json!([{"id": "prt_t1", "messageID": "msg_a1", "type": "text", "text": "Hello world", "time": {"end": 2}}]);
    h.answer_and_wait(200, &answer("msg_a1", parts, None));
    let r = render(&h.actions);
    let from = r.iter().position(|l| l.starts_with("message.start")).unwrap();
    assert_eq!(
        r[from..],
        [
            "message.start prt_t1",
            r#"delta prt_t1 x1 "Hello ""#,
            "timer 5",
            r#"delta prt_t1 x1 "world""#,
            "message.end prt_t1",
            r#"message prt_t1 "Hello world""#,
            r#"done success=true {"model":"anthropic/claude-sonnet-4-5"}"#
        ]
    );
    // late events of the finished turn are dropped
    let n = h.actions.len();
    h.sse(&text_part("msg_a1", "prt_t9", "late", true));
    h.sse(&assistant("msg_a1"));
    assert_eq!(h.actions.len(), n);
}

#[test]
fn done_waits_for_the_stream_to_catch_up_with_the_answer() {
    let mut h = ready_with_turn("say hi");
    // The answer comes first (the server flushes its stream in batches) …
    let parts = json!([{"id": "prt_t1", "messageID": "msg_a1", "type": "text", "text": "Hi there", "time": {"end": 2}},
        {"id": "prt_s", "messageID": "msg_a1", "type": "step-finish", "tokens": {"input": 3, "output": 2}, "cost": 0.1}]);
    h.answer_prompt(200, &answer("msg_a1", parts, None));
    assert_eq!(render(&h.actions).last().map(String::as_str), Some("timer 5"), "no done before the stream");
    // … then the stream's events of the turn: real deltas.
    h.sse(&assistant("msg_a1"));
    h.sse(&text_part("msg_a1", "prt_t1", "", false));
    h.sse(&delta("msg_a1", "prt_t1", "Hi "));
    h.sse(&delta("msg_a1", "prt_t1", "there"));
    h.sse(&text_part("msg_a1", "prt_t1", "Hi there", true));
    h.sse(&ev(json!({"type": "message.part.updated", "properties": {"sessionID": SID, "part": {"id": "prt_s",
        "messageID": "msg_a1", "type": "step-finish", "tokens": {"input": 3, "output": 2}, "cost": 0.1}}})));
    let completed = ev(json!({"type": "message.updated", "properties": {"sessionID": SID, "info": {
        "id": "msg_a1", "role": "assistant", "parentID": "msg_u1", "time": {"created": 1, "completed": 2},
        "providerID": "anthropic", "modelID": "claude-sonnet-4-5"}}}));
    h.sse(&completed);
    let r = render(&h.actions);
    let from = r.iter().position(|l| l == "timer 5").unwrap() + 1;
    assert_eq!(
        r[from..],
        [
            "message.start prt_t1",
            r#"delta prt_t1 x2 "Hi there""#,
            "message.end prt_t1",
            r#"message prt_t1 "Hi there""#,
            r#"done success=true {"input_tokens":3,"output_tokens":2,"total_tokens":5,"cost_usd":0.1,"model":"anthropic/claude-sonnet-4-5"}"#,
        ],
        "{r:#?}"
    );
    // the grace timer firing later changes nothing
    let n = h.actions.len();
    h.fire(T_CATCH_UP);
    h.sse(&completed);
    assert_eq!(h.actions.len(), n);
}

#[test]
fn lost_prompt_ends_the_turn_if_the_process_stays() {
    let mut h = ready_with_turn("x");
    let p = h.prompt.take().unwrap();
    h.call(|a, out| a.on_http_error(p, HttpError::Closed, out));
    h.fire(T_PROMPT_LOST);
    let timer = h.actions.iter().rev().find_map(|a| match a {
        Action::Timer { id, .. } => Some(*id),
        _ => None,
    });
    let timer = timer.unwrap_or_default();
    let r = render(&h.actions);
    assert!(r[r.len() - 2].starts_with(r#"error AGENT_ERROR "lost the connection"#), "{r:#?}");
    assert_eq!(r[r.len() - 1], "done success=false {}");
    // a timer of an earlier process is ignored
    let n = h.actions.len();
    h.a.launch(&spec(None));
    h.call(|a, out| a.on_timer(timer, out));
    assert_eq!(h.actions.len(), n);
}

#[test]
fn gateway_abort_closes_messages_and_aborts_the_server_turn() {
    let mut h = ready_with_turn("slow");
    h.sse(&assistant("msg_a1"));
    h.sse(&text_part("msg_a1", "prt_t1", "", false));
    h.sse(&delta("msg_a1", "prt_t1", "partial"));
    h.call(|a, out| a.on_turn_aborted(out));
    let r = render(&h.actions);
    assert_eq!(
        r[r.len() - 3..],
        ["message.end prt_t1", r#"message prt_t1 "partial""#, "http POST /session/ses_test1/abort "]
    );
    // the blocking call's late answer and the turn's late events change nothing
    let n = h.actions.len();
    h.answer_prompt(200, &answer("msg_a1", json!([]), Some(json!({"name": "MessageAbortedError"}))));
    h.sse(&delta("msg_a1", "prt_t1", " more"));
    assert_eq!(h.actions.len(), n);
}

#[test]
fn interrupt_aborts_and_the_answer_ends_the_turn_unsuccessfully() {
    let mut h = ready_with_turn("slow");
    h.call(|a, out| a.on_interrupt(out));
    h.call(|a, out| a.on_interrupt(out)); // once only
    let aborts = render(&h.actions).iter().filter(|l| l.ends_with("/abort ")).count();
    assert_eq!(aborts, 1);
    h.answer_and_wait(
        200,
        &answer("msg_a1", json!([]), Some(json!({"name": "MessageAbortedError", "data": {"message": "Aborted"}}))),
    );
    let r = render(&h.actions);
    assert_eq!(r.last().map(String::as_str), Some(r#"done success=false {"model":"anthropic/claude-sonnet-4-5"}"#));
    assert!(!r.iter().any(|l| l.starts_with("error")), "no error for an interrupt: {r:#?}");
}

#[test]
fn filtering_and_malformed_events() {
    let mut h = ready_with_turn("x");
    let n = h.actions.len();
    // another session's events, events outside the turn's messages
    h.sse(&ev(json!({"type": "message.part.delta", "properties": {"sessionID": "ses_other", "messageID": "m", "partID": "p", "field": "text", "delta": "x"}})));
    h.sse(&text_part("msg_not_ours", "prt_1", "x", true));
    h.sse(&ev(json!({"type": "server.heartbeat", "properties": {}})));
    h.sse(&ev(json!({"type": "plugin.added", "properties": {"id": "x"}})));
    h.sse(&ev(
        json!({"type": "session.error", "properties": {"sessionID": SID, "error": {"name": "MessageAbortedError"}}}),
    ));
    assert_eq!(h.actions.len(), n);
    h.sse(b"not json");
    h.sse(&ev(json!({"type": "message.part.delta", "properties": {"sessionID": SID}})));
    let r = render(&h.actions);
    assert_eq!(r[n..], ["unmapped malformed", "unmapped malformed"]);
    // an error outside the turn's own answer is reported once
    let err = ev(
        json!({"type": "session.error", "properties": {"sessionID": SID, "error": {"name": "APIError", "data": {"message": "boom", "statusCode": 500}}}}),
    );
    h.sse(&err);
    h.sse(&err);
    h.answer_and_wait(
        200,
        &answer("msg_a1", json!([]), Some(json!({"name": "APIError", "data": {"message": "boom"}}))),
    );
    let r = render(&h.actions);
    assert_eq!(r.iter().filter(|l| l.starts_with("error AGENT_ERROR")).count(), 1, "{r:#?}");
    assert!(r.last().unwrap().starts_with("done success=false"));
}

#[test]
fn permissions_outside_a_turn_are_rejected_and_unknown_replies_ignored() {
    let mut h = Harness::new(SID, false);
    h.sse(&connected());
    h.sse(&ev(json!({"type": "permission.asked", "properties": {"id": "per_1", "sessionID": SID, "permission": "bash", "patterns": ["ls"], "metadata": {}}})));
    let r = render(&h.actions);
    assert_eq!(
        r.last().map(String::as_str),
        Some(r#"http POST /permission/per_1/reply {"reply":"reject","message":"no turn is running"}"#)
    );
    let n = h.actions.len();
    let reply = PermissionReply { id: "per_x".into(), allow: true, reason: None, remember: false };
    h.call(|a, out| a.on_permission(&reply, out));
    assert_eq!(h.actions.len(), n);
}

#[test]
fn launch_carries_policy_and_turn_options() {
    let mut a = OpencodeServerAdapter::new();
    let mut s = spec(Some("bad id with spaces"));
    s.model = Some("anthropic/claude-sonnet-4-5".into());
    s.system_prompt = Some("be terse".into());
    s.agent = Some("build".into());
    s.allowed_tools = vec!["Read".into()];
    s.disallowed_tools = vec!["WebFetch".into()];
    let l = a.launch(&s);
    assert_eq!(
        l.policy_env,
        [(
            "OPENCODE_PERMISSION".to_owned(),
            r#"{"*":"ask","read":"allow","edit":{"*":"ask","*.opencode/*":"deny","*opencode.json":"deny","*opencode.jsonc":"deny"},"webfetch":"deny","question":"deny"}"#.to_owned()
        )]
    );
    assert!(l.env.contains(&("OPENCODE_DISABLE_AUTOUPDATE".into(), "1".into())));
    assert!(!l.env.iter().any(|(k, _)| k == "OPENCODE_SERVER_PASSWORD"), "the session sets the password");
    assert_eq!(a.resume, None, "an invalid resume id is dropped");
    assert_eq!(a.managed_server().map(|m| m.basic_user), Some("opencode"));
    let body: Value = serde_json::from_slice(&translate::prompt_body(
        "hi",
        a.model.as_deref(),
        a.system.as_deref(),
        a.agent.as_deref(),
    ))
    .unwrap();
    assert_eq!(
        body,
        json!({"parts": [{"type": "text", "text": "hi"}], "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4-5"}, "system": "be terse", "agent": "build"})
    );
}

#[test]
fn permission_config_vectors() {
    let v = |a: &[&str], d: &[&str], relay: bool| {
        let s = |l: &[&str]| l.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        permission_config(&s(a), &s(d), relay)
    };
    // `edit` always carries the protected paths (project config, agents, plugins).
    let prot = r#""*.opencode/*":"deny","*opencode.json":"deny","*opencode.jsonc":"deny""#;
    let ask_edit = format!(r#""edit":{{"*":"ask",{prot}}}"#);
    let deny_edit = r#""edit":"deny""#;
    assert_eq!(v(&[], &[], true), format!(r#"{{"*":"ask",{ask_edit},"question":"deny"}}"#));
    assert_eq!(v(&[], &[], false), format!(r#"{{"*":"deny",{deny_edit}}}"#));
    assert_eq!(
        v(&["Bash", "Write"], &[], true),
        format!(r#"{{"*":"ask","edit":{{"*":"allow",{prot}}},"bash":"allow","question":"deny"}}"#)
    );
    assert_eq!(
        v(&["Bash(git status:*)"], &["Bash(rm *)"], true),
        format!(
            r#"{{"*":"ask",{ask_edit},"bash":{{"*":"ask","git status*":"allow","rm *":"deny"}},"question":"deny"}}"#
        )
    );
    assert_eq!(
        v(&["Bash"], &["Bash"], true),
        format!(r#"{{"*":"ask",{ask_edit},"bash":"deny","question":"deny"}}"#),
        "deny wins"
    );
    assert_eq!(v(&["Edit"], &["NotebookEdit"], false), r#"{"*":"deny","edit":"deny"}"#);
    assert_eq!(
        v(&["WebFetch(x.com)"], &["WebSearch(y)"], true),
        format!(r#"{{"*":"ask",{ask_edit},"webfetch":"ask","websearch":"deny","question":"deny"}}"#)
    );
    assert_eq!(
        v(&["LS", "Glob", "Grep", "Task", "TodoWrite", "mcp__x__y"], &[], false),
        format!(
            r#"{{"*":"deny",{deny_edit},"glob":"allow","grep":"allow","list":"allow","task":"allow","todowrite":"allow"}}"#
        )
    );
    assert_eq!(
        v(&["Bash(say \"hi\")"], &[], true),
        format!(r#"{{"*":"ask",{ask_edit},"bash":{{"*":"ask","say \"hi\"":"allow"}},"question":"deny"}}"#)
    );
    assert_eq!(permission_key("Bash(npm run test:*)"), Some(("bash", Some("npm run test*".into()))));
    assert_eq!(permission_key("mcp__x__y"), None);
    assert_eq!(permission_key("Bash()"), Some(("bash", None)));
}

#[test]
fn permission_answers_and_asks() {
    let reply = |allow, reason: Option<&str>, remember| {
        let r = PermissionReply { id: "per_1".into(), allow, reason: reason.map(str::to_owned), remember };
        String::from_utf8(translate::permission_reply(&r)).unwrap()
    };
    assert_eq!(reply(true, None, false), r#"{"reply":"once"}"#);
    assert_eq!(reply(true, None, true), r#"{"reply":"always"}"#);
    assert_eq!(reply(false, Some("no"), false), r#"{"reply":"reject","message":"no"}"#);
    assert_eq!(reply(false, None, false), r#"{"reply":"reject","message":"Denied by user"}"#);
    assert_eq!(reply(false, Some("  "), false), r#"{"reply":"reject","message":"Denied by user"}"#);
    let asked: wire::PermissionAsked =
        serde_json::from_value(json!({"id": "per_1", "sessionID": SID, "permission": "edit",
        "patterns": ["a.txt", "b.txt"], "metadata": {"filepath": "/w/a.txt"}, "always": ["*"]}))
        .unwrap();
    let ask = translate::permission_ask(&asked);
    assert_eq!((ask.tool_name.as_str(), ask.description.as_str()), ("edit", "a.txt, b.txt"));
    assert_eq!(ask.input, Some(json!({"filepath": "/w/a.txt"})));
    assert_eq!(ask.args, Some(vec!["a.txt".into(), "b.txt".into()]));
}

#[test]
fn wire_catch_alls() {
    let e: wire::Event = serde_json::from_value(json!({"type": "brand.new", "properties": {"x": 1}})).unwrap();
    assert!(matches!(e, wire::Event::Other));
    let e: wire::Event = serde_json::from_value(json!({"type": "session.idle"})).unwrap();
    assert!(matches!(e, wire::Event::Other));
    let p = wire::part(&json!({"type": "patch", "id": "p"})).unwrap();
    assert!(matches!(p, wire::Part::Other));
    let t = wire::part(&json!({"type": "tool", "id": "p", "messageID": "m", "callID": "c", "tool": "bash",
        "state": {"status": "queued-new", "input": {}}}))
    .unwrap();
    assert!(matches!(t, wire::Part::Tool(wire::ToolPart { state: wire::ToolState::Other, .. })));
    let t = wire::part(&json!({"type": "tool", "id": "p", "messageID": "m", "callID": "c", "tool": "bash",
        "state": {"status": "pending", "input": {}, "raw": ""}}))
    .unwrap();
    assert!(matches!(t, wire::Part::Tool(wire::ToolPart { state: wire::ToolState::Pending, .. })));
    let info: wire::MessageInfo = serde_json::from_value(json!({"id": "m", "role": "system"})).unwrap();
    assert_eq!(info.role, wire::Role::Other);
}

#[test]
fn stats_sum_steps_and_errors_carry_details() {
    let mut s = crate::protocol::Stats::default();
    let step: wire::StepFinish = serde_json::from_value(json!({"id": "s", "messageID": "m",
        "tokens": {"total": 30, "input": 26, "output": 4, "reasoning": 0, "cache": {"write": 0, "read": 0}}, "cost": 0.000138})).unwrap();
    translate::add_step(&mut s, &step);
    translate::add_step(&mut s, &step);
    assert_eq!((s.input_tokens, s.output_tokens, s.total_tokens), (Some(52), Some(8), Some(60)));
    assert!((s.cost_usd.unwrap() - 0.000276).abs() < 1e-12);
    // no `total`: the parts are summed, saturating on the server's huge figures
    let huge: wire::StepFinish = serde_json::from_value(json!({"id": "s", "messageID": "m",
        "tokens": {"input": u64::MAX, "output": 4}}))
    .unwrap();
    let mut h = crate::protocol::Stats::default();
    translate::add_step(&mut h, &huge);
    assert_eq!((h.input_tokens, h.output_tokens, h.total_tokens), (Some(u64::MAX), Some(4), Some(u64::MAX)));
    let e: wire::ErrorInfo = serde_json::from_value(
        json!({"name": "APIError", "data": {"message": "mock error 400", "statusCode": 400, "isRetryable": false}}),
    )
    .unwrap();
    let Event::Error { message, details, .. } = translate::agent_error(&e) else { panic!() };
    assert_eq!(message, "mock error 400");
    assert_eq!(
        details,
        Some(json!({"worker_type": "opencode_server", "name": "APIError", "status": 400, "retryable": false}))
    );
    assert_eq!(
        translate::error_message(br#"{"_tag":"PermissionNotFoundError","message":"nope"}"#).as_deref(),
        Some("nope")
    );
    assert_eq!(translate::split_model("openrouter/anthropic/claude"), Some(("openrouter", "anthropic/claude")));
    assert_eq!(translate::split_model("claude"), None);
}
