//! Unit tests of the pi adapter's permission dialogs, other extension UI
//! requests, interrupts, refused prompts and runs the gateway already
//! closed (helpers in `tests`).

use serde_json::json;

use super::MAX_PENDING_PERMISSIONS;
use super::tests::{
    AGENT_END, AGENT_START, ASSISTANT_START, cfg, feed, gate, kinds, running, stdin_json, turn_end, update,
};
use super::{PiAdapter, unmapped};
use crate::adapters::{Action, Adapter, LaunchSpec, Out, PermissionReply};
use crate::protocol::{ErrorCode, Event};

// ---------------------------------------------------------------- permissions and dialogs

#[test]
fn gate_confirm_becomes_a_permission_and_the_answer_a_confirm() {
    let mut a = running();
    let acts = feed(&mut a, &[AGENT_START, &gate("d1", "bash", json!({"command":"touch x"}))]);
    let Some(Action::Permission(p)) = acts.first() else { panic!("{acts:?}") };
    assert_eq!((p.id.as_str(), p.tool_name.as_str(), p.description.as_str()), ("d1", "bash", "bash touch x"));
    assert_eq!(p.input, Some(json!({"command":"touch x"})));
    // The same request again is not asked twice.
    assert_eq!(feed(&mut a, &[&gate("d1", "bash", json!({"command":"touch x"}))]), []);
    let mut out = Out::default();
    a.on_permission(
        &PermissionReply { id: "d1".into(), allow: false, reason: Some("no".into()), remember: true },
        &mut out,
    );
    assert_eq!(stdin_json(&out.take()), [json!({"type":"extension_ui_response","id":"d1","confirmed":false})]);
    // Answered once: a late or unknown answer writes nothing.
    a.on_permission(&PermissionReply { id: "d1".into(), allow: true, reason: None, remember: false }, &mut out);
    a.on_permission(&PermissionReply { id: "zz".into(), allow: true, reason: None, remember: false }, &mut out);
    assert_eq!(out.take(), []);
}

#[test]
fn other_dialogs_are_cancelled_and_fire_and_forget_ui_is_unmapped() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            AGENT_START,
            r#"{"type":"extension_ui_request","id":"u1","method":"select","title":"Pick","options":["A","B"]}"#,
            r#"{"type":"extension_ui_request","id":"u2","method":"input","title":"Name"}"#,
            r#"{"type":"extension_ui_request","id":"u3","method":"editor","title":"Edit","prefill":"x"}"#,
            r#"{"type":"extension_ui_request","id":"u4","method":"confirm","title":"Clear session?","message":"sure?"}"#,
            r#"{"type":"extension_ui_request","id":"u5","method":"notify","message":"hi","notifyType":"info"}"#,
            r#"{"type":"extension_ui_request","id":"u6","method":"setStatus","statusKey":"k","statusText":"t"}"#,
            r#"{"type":"extension_ui_request","id":"u7","method":"setWidget","widgetKey":"k"}"#,
            r#"{"type":"extension_ui_request","id":"u8","method":"setTitle","title":"pi"}"#,
            r#"{"type":"extension_ui_request","id":"u9","method":"set_editor_text","text":"x"}"#,
        ],
    );
    assert_eq!(
        stdin_json(&acts),
        ["u1", "u2", "u3", "u4"].map(|id| json!({"type":"extension_ui_response","id":id,"cancelled":true}))
    );
    assert_eq!(
        kinds(&acts),
        [
            unmapped::DIALOG,
            unmapped::DIALOG,
            unmapped::DIALOG,
            unmapped::DIALOG,
            unmapped::UI,
            unmapped::UI,
            unmapped::UI,
            unmapped::UI,
            unmapped::UI
        ]
    );
    assert!(!acts.iter().any(|x| matches!(x, Action::Permission(_))));
}

#[test]
fn unreadable_gate_question_is_denied() {
    let mut a = running();
    let bad = r#"{"type":"extension_ui_request","id":"d9","method":"confirm","title":"hotplex.permission","message":"not json"}"#;
    let acts = feed(&mut a, &[AGENT_START, bad]);
    assert_eq!(stdin_json(&acts), [json!({"type":"extension_ui_response","id":"d9","confirmed":false})]);
    assert_eq!(kinds(&acts), [unmapped::MALFORMED]);
}

#[test]
fn gate_outside_a_turn_is_cancelled() {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec::default());
    let acts = feed(&mut a, &[&gate("d1", "bash", json!({}))]);
    assert_eq!(stdin_json(&acts), [json!({"type":"extension_ui_response","id":"d1","cancelled":true})]);
    assert!(!acts.iter().any(|x| matches!(x, Action::Permission(_))));
}

#[test]
fn too_many_pending_permissions_are_denied() {
    let mut a = running();
    let mut out = Out::default();
    for i in 0..MAX_PENDING_PERMISSIONS {
        a.on_line(gate(&format!("d{i}"), "bash", json!({})).as_bytes(), &mut out);
    }
    assert_eq!(out.take().len(), MAX_PENDING_PERMISSIONS);
    let acts = feed(&mut a, &[&gate("over", "bash", json!({}))]);
    assert_eq!(stdin_json(&acts), [json!({"type":"extension_ui_response","id":"over","confirmed":false})]);
}

// ---------------------------------------------------------------- interrupt

#[test]
fn abort_with_a_pending_dialog_cancels_it() {
    let mut a = running();
    let acts = feed(&mut a, &[AGENT_START, &gate("d1", "bash", json!({"command":"sleep 9"}))]);
    assert!(matches!(acts[0], Action::Permission(_)));
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    let acts = out.take();
    // abort first, then the dialog answer that unblocks it (workers.md §6.6).
    assert_eq!(
        stdin_json(&acts),
        [json!({"type":"abort","id":"a2"}), json!({"type":"extension_ui_response","id":"d1","cancelled":true})]
    );
    assert!(acts.contains(&Action::PermissionCancelled { id: "d1".into() }));
    // The session's own deny of the pending request writes nothing more.
    a.on_permission(&PermissionReply { id: "d1".into(), allow: false, reason: None, remember: false }, &mut out);
    // A second interrupt sends nothing.
    a.on_interrupt(&mut out);
    assert_eq!(out.take(), []);
    let end = r#"{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"aborted","errorMessage":"Request was aborted."}}"#;
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"tool_execution_end","toolCallId":"call_1","toolName":"bash","result":{"content":[{"type":"text","text":"Aborted before the permission was answered"}]},"isError":true}"#,
            ASSISTANT_START,
            end,
            AGENT_END,
            r#"{"type":"response","id":"a2","command":"abort","success":true}"#,
        ],
    );
    assert_eq!(turn_end(&acts), Some(false));
    assert!(!acts.iter().any(|x| matches!(x, Action::Emit(Event::Error { .. }))), "no error on interrupt: {acts:?}");
}

#[test]
fn interrupt_without_a_turn_does_nothing() {
    let mut a = PiAdapter::new(cfg());
    let _ = a.launch(&LaunchSpec::default());
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    assert_eq!(out.take(), []);
}

// ---------------------------------------------------------------- refused prompts and stale runs

#[test]
fn a_refused_prompt_ends_its_turn_with_an_agent_error() {
    let mut a = running();
    let busy = r#"{"id":"p1","type":"response","command":"prompt","success":false,"error":"Agent is already processing. Specify streamingBehavior ('steer' or 'followUp') to queue the message."}"#;
    let acts = feed(&mut a, &[busy]);
    assert_eq!(turn_end(&acts), Some(false));
    let Some(Action::Emit(Event::Error { code, message, details, .. })) = acts.first() else { panic!("{acts:?}") };
    assert_eq!(*code, ErrorCode::AgentError);
    assert!(message.starts_with("Agent is already processing"));
    assert_eq!(details, &Some(json!({"worker_type":"pi","subtype":"prompt_refused"})));
}

#[test]
fn a_refusal_of_another_prompt_is_ignored() {
    let mut a = running();
    let other = r#"{"id":"c6","type":"response","command":"prompt","success":false,"error":"busy"}"#;
    assert_eq!(feed(&mut a, &[other]), []);
    let ok = r#"{"id":"p1","type":"response","command":"prompt","success":true}"#;
    assert_eq!(feed(&mut a, &[ok]), []);
    assert_eq!(turn_end(&feed(&mut a, &[AGENT_START, AGENT_END])), Some(true));
    // Other failed commands are passed on.
    let parse = r#"{"type":"response","command":"parse","success":false,"error":"Failed to parse command"}"#;
    assert_eq!(kinds(&feed(&mut a, &[parse])), [unmapped::COMMAND_FAILED]);
}

#[test]
fn a_run_the_gateway_closed_is_dropped_until_its_end() {
    let mut a = running();
    let _ = feed(&mut a, &[AGENT_START, ASSISTANT_START, &update("text_delta", 0, json!({"delta":"Hel"}))]);
    let mut out = Out::default();
    a.on_turn_aborted(&mut out);
    assert_eq!(
        out.take(),
        [
            Action::Emit(Event::MessageEnd { message_id: "pi-1-1-0".into() }),
            Action::Emit(Event::message("pi-1-1-0", "Hel")),
        ]
    );
    // The old run goes on, even across a new input, until its agent_end.
    a.on_input("next", &mut out);
    let late =
        feed(&mut a, &[&update("text_delta", 0, json!({"delta":"lo"})), &gate("d1", "bash", json!({})), AGENT_END]);
    assert_eq!(stdin_json(&late), [json!({"type":"extension_ui_response","id":"d1","cancelled":true})]);
    assert!(late.iter().all(|x| matches!(x, Action::Stdin(_))), "{late:?}");
    // Then the new turn's run maps normally.
    let acts =
        feed(&mut a, &[AGENT_START, ASSISTANT_START, &update("text_delta", 0, json!({"delta":"ok"})), AGENT_END]);
    assert!(acts.contains(&Action::Emit(Event::message("pi-2-1-0", "ok"))), "{acts:?}");
    assert_eq!(turn_end(&acts), Some(true));
}

#[test]
fn an_accepted_prompt_ends_the_stale_state() {
    let mut a = running();
    let mut out = Out::default();
    a.on_turn_aborted(&mut out);
    a.on_input("next", &mut out);
    let ok = r#"{"id":"p2","type":"response","command":"prompt","success":true}"#;
    let acts = feed(&mut a, &[ok, AGENT_START, AGENT_END]);
    assert_eq!(turn_end(&acts), Some(true));
}
