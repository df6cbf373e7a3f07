//! Unit tests of the opencode_cli adapter: argv and environment (the tool
//! policy as `OPENCODE_PERMISSION`, whose table is tested with
//! `opencode_config`), what `init.config` policy accepts for opencode_cli,
//! robustness against bad lines, and turn-end corners the captured
//! transcripts do not cover. The golden transcript tests live in
//! `tests/opencode_cli_adapter.rs`.

use std::path::Path;

use serde_json::{Value, json};

use super::{OpencodeCliAdapter, translate, unmapped};
use crate::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, Started, WorkerType};
use crate::protocol::{ErrorCode, Event, InitConfig};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn started() -> Started<'static> {
    Started { work_dir: Path::new("/srv/project"), pid: 1 }
}

/// An adapter whose turn's process is running.
fn running() -> OpencodeCliAdapter {
    let mut a = OpencodeCliAdapter::new();
    let mut out = Out::default();
    a.on_input("hi", &mut out);
    let _ = a.launch(&LaunchSpec::default());
    a.on_started(&started(), &mut out);
    a
}

fn feed(a: &mut OpencodeCliAdapter, lines: &[&str]) -> Vec<Action> {
    let mut out = Out::default();
    for l in lines {
        a.on_line(l.as_bytes(), &mut out);
    }
    out.take()
}

fn exit(a: &mut OpencodeCliAdapter, code: Option<i32>, signal: Option<i32>, by_gateway: bool) -> Vec<Action> {
    let mut out = Out::default();
    a.on_exit(&ExitInfo { code, signal, signalled_by_gateway: by_gateway }, &mut out);
    out.take()
}

fn env_value(env: &[(String, String)], k: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

const STEP_FINISH: &str = r#"{"type":"step_finish","sessionID":"ses_a","part":{"id":"prt_f","messageID":"msg_1","tokens":{"total":10,"input":7,"output":3,"reasoning":0,"cache":{"write":1,"read":2}},"cost":0.25}}"#;

// ---------------------------------------------------------------- launch

#[test]
fn caps_and_process_model() {
    let a = OpencodeCliAdapter::new();
    assert_eq!(a.worker_type(), WorkerType::OpencodeCli);
    let c = a.caps();
    assert!(c.supports_resume && c.supports_interrupt && c.supports_tool_call);
    assert!(!c.supports_permissions && !c.supports_delta);
    assert_eq!(a.process_model(), crate::adapters::ProcessModel::PerTurn);
}

#[test]
fn launch_every_value_is_one_element() {
    let spec = LaunchSpec {
        model: Some("anthropic/claude-sonnet-4-5".into()),
        agent: Some("build".into()),
        resume: Some("ses_def934d0effeh71PGDCWTU0KNh".into()),
        ..LaunchSpec::default()
    };
    let l = OpencodeCliAdapter::new().launch(&spec);
    assert_eq!(
        l.args,
        [
            "run",
            "--format=json",
            "--thinking",
            "--model=anthropic/claude-sonnet-4-5",
            "--agent=build",
            "--session=ses_def934d0effeh71PGDCWTU0KNh"
        ]
    );
    assert_eq!(l.agent_session_id, None, "opencode picks its own ids");
    // A value that looks like a flag stays inside its element.
    let spec = LaunchSpec { model: Some("--print-logs".into()), ..LaunchSpec::default() };
    let l = OpencodeCliAdapter::new().launch(&spec);
    assert_eq!(l.args, ["run", "--format=json", "--thinking", "--model=--print-logs"]);
}

#[test]
fn launch_discards_unsafe_session_id() {
    let spec = LaunchSpec { resume: Some("ses_1; rm -rf ~".into()), ..LaunchSpec::default() };
    let l = OpencodeCliAdapter::new().launch(&spec);
    assert_eq!(l.args, ["run", "--format=json", "--thinking"]);
}

#[test]
fn launch_env_fixed_variables_and_policy() {
    let l = OpencodeCliAdapter::new().launch(&LaunchSpec::default());
    assert_eq!(env_value(&l.env, "OPENCODE_DISABLE_MODELS_FETCH").as_deref(), Some("1"));
    assert_eq!(env_value(&l.env, "OPENCODE_DISABLE_AUTOUPDATE").as_deref(), Some("1"));
    assert_eq!(env_value(&l.env, "OPENCODE_DISABLE_PROJECT_CONFIG").as_deref(), Some("1"));
    assert_eq!(l.env.len(), 3, "the operator's OPENCODE_CONFIG_CONTENT is left alone");
    // Default policy (empty allow list): every permission denied, nothing asks.
    assert_eq!(l.policy_env.len(), 1);
    let perm = env_value(&l.policy_env, "OPENCODE_PERMISSION").expect("permission env");
    let v: Value = serde_json::from_str(&perm).expect("JSON");
    assert_eq!(v["*"], "deny");
    assert!(!perm.contains("\"ask\""), "{perm}");
    // An allowed tool is `allow`, a denied pattern is written after it.
    let spec = LaunchSpec {
        allowed_tools: strings(&["Bash", "Read"]),
        disallowed_tools: strings(&["Bash(rm:*)"]),
        ..LaunchSpec::default()
    };
    let l = OpencodeCliAdapter::new().launch(&spec);
    let perm = env_value(&l.policy_env, "OPENCODE_PERMISSION").expect("permission env");
    let v: Value = serde_json::from_str(&perm).expect("JSON");
    assert_eq!(v["read"], "allow");
    assert_eq!(v["bash"], json!({"*": "allow", "rm*": "deny"}));
    assert!(!perm.contains("\"ask\""), "{perm}");
}

#[test]
fn init_config_policy_for_opencode_cli() {
    use crate::policy::Policy;
    let pol = Policy { tools_allowed: strings(&["Bash", "Read"]), ..Policy::default() };
    let apply = |f: &dyn Fn(&mut InitConfig)| {
        let mut c = InitConfig::default();
        f(&mut c);
        pol.apply(Some(&c), WorkerType::OpencodeCli, None, None).map(|(s, _)| s)
    };
    // system_prompt: no way to pass text to `opencode run` (refused, not ignored).
    assert!(apply(&|c| c.system_prompt = Some("be terse".into())).is_err());
    // mode: opencode has none; the tool policy is the permission config.
    assert!(apply(&|c| c.permission_mode = Some("default".into())).is_err());
    assert!(apply(&|c| c.max_turns = Some(3)).is_err());
    // Tools: names of the workers.md §3.5 table only.
    assert!(apply(&|c| c.allowed_tools = Some(strings(&["Bash(git log:*)"]))).is_ok());
    assert!(apply(&|c| c.disallowed_tools = Some(strings(&["mcp__x__y"]))).is_err());
    assert!(apply(&|c| c.allowed_tools = Some(strings(&["Frobnicate"]))).is_err());
    let s = apply(&|c| c.disallowed_tools = Some(strings(&["Bash"]))).expect("ok");
    assert_eq!(s.allowed_tools, ["Read"]);
    assert_eq!(s.disallowed_tools, ["Bash"]);
    // model: provider/model passes the argv slot check.
    let s = apply(&|c| c.model = Some("anthropic/claude-sonnet-4-5".into())).expect("ok");
    assert_eq!(s.model.as_deref(), Some("anthropic/claude-sonnet-4-5"));
}

// ---------------------------------------------------------------- turn

#[test]
fn prompt_goes_to_stdin_then_eof() {
    let mut a = OpencodeCliAdapter::new();
    let mut out = Out::default();
    a.on_input("--help me", &mut out);
    assert!(out.take().is_empty(), "nothing before the process runs");
    let l = a.launch(&LaunchSpec::default());
    assert!(!l.args.iter().any(|x| x.contains("help")), "the prompt never goes to argv");
    a.on_started(&started(), &mut out);
    assert_eq!(out.take(), vec![Action::Stdin(b"--help me".to_vec()), Action::CloseStdin]);
}

#[test]
fn interrupt_before_the_process_is_up_stops_it_at_start() {
    let mut a = OpencodeCliAdapter::new();
    let mut out = Out::default();
    a.on_input("hi", &mut out);
    let _ = a.launch(&LaunchSpec::default());
    a.on_interrupt(&mut out);
    assert!(out.take().is_empty());
    a.on_started(&started(), &mut out);
    assert_eq!(out.take(), vec![Action::Kill], "no prompt for an interrupted turn");
    let acts = exit(&mut a, None, Some(15), true);
    assert!(matches!(acts.as_slice(), [Action::TurnEnd { success: false, .. }]), "{acts:?}");
}

#[test]
fn interrupt_kills_once() {
    let mut a = running();
    let mut out = Out::default();
    a.on_interrupt(&mut out);
    a.on_interrupt(&mut out);
    assert_eq!(out.take(), vec![Action::Kill]);
    // The process finished on its own before the signal landed: a success.
    let _ = feed(&mut a, &[STEP_FINISH]);
    let acts = exit(&mut a, Some(0), None, true);
    assert!(matches!(acts.as_slice(), [Action::TurnEnd { success: true, .. }]), "{acts:?}");
    // No turn: nothing to interrupt.
    a.on_interrupt(&mut out);
    assert!(out.take().is_empty());
}

#[test]
fn exit_zero_after_an_error_line_is_a_failure() {
    let mut a = running();
    let acts = feed(&mut a, &[r#"{"type":"error","sessionID":"ses_a","error":{"name":"APIError"}}"#]);
    let Some(Action::Emit(Event::Error { code, message, .. })) = acts.get(1) else { panic!("{acts:?}") };
    assert_eq!((*code, message.as_str()), (ErrorCode::AgentError, "APIError"), "the name when there is no text");
    let acts = exit(&mut a, Some(0), None, false);
    assert!(matches!(acts.as_slice(), [Action::TurnEnd { success: false, .. }]), "{acts:?}");
}

#[test]
fn exit_code_without_error_line_is_a_crash() {
    let mut a = running();
    let acts = exit(&mut a, Some(3), None, false);
    let [Action::Emit(Event::Error { code, details, .. }), Action::TurnEnd { success: false, .. }] = acts.as_slice()
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*code, ErrorCode::WorkerCrash);
    assert_eq!(details.as_ref().map(|d| d["exit_code"].clone()), Some(json!(3)));
    // 128+9 = killed by SIGKILL nobody on our side sent.
    let mut a = running();
    let acts = exit(&mut a, Some(137), None, false);
    assert!(matches!(acts.first(), Some(Action::Emit(Event::Error { code: ErrorCode::WorkerOom, .. }))), "{acts:?}");
}

#[test]
fn aborted_turn_ends_nothing_at_exit() {
    let mut a = running();
    let mut out = Out::default();
    a.on_turn_aborted(&mut out);
    assert!(exit(&mut a, None, Some(15), true).is_empty());
    // Lines a dying process still prints are not events of a closed turn.
    let mut a = running();
    a.on_turn_aborted(&mut out);
    let acts = feed(&mut a, &[r#"{"type":"text","sessionID":"ses_a","part":{"id":"prt_1","text":"late"}}"#]);
    assert!(acts.iter().all(|x| !matches!(x, Action::Emit(_))), "{acts:?}");
    assert!(acts.iter().any(|x| matches!(x, Action::Unmapped { kind, .. } if kind == unmapped::OUTSIDE_TURN)));
}

#[test]
fn stats_sum_steps_and_omit_what_no_step_reported() {
    let mut a = running();
    let second = r#"{"type":"step_finish","sessionID":"ses_a","part":{"id":"prt_g","messageID":"msg_2","tokens":{"input":1,"output":1},"cost":0.1}}"#;
    let _ = feed(&mut a, &[STEP_FINISH, second]);
    let acts = exit(&mut a, Some(0), None, false);
    let [Action::TurnEnd { success: true, stats }] = acts.as_slice() else { panic!("{acts:?}") };
    assert_eq!((stats.input_tokens, stats.output_tokens), (Some(8), Some(4)));
    assert_eq!((stats.cache_read_tokens, stats.cache_write_tokens), (Some(2), Some(1)));
    assert_eq!(stats.total_tokens, Some(10), "the reported totals summed");
    assert_eq!(stats.cost_usd, Some(0.35));
    let mut t = translate::StepTotals::default();
    t.add(None, None);
    assert_eq!(t.stats(), crate::protocol::Stats::default());
    t.add(None, Some(f64::NAN));
    assert_eq!(t.stats().cost_usd, None);
}

#[test]
fn stderr_marker_split_across_chunks_is_found() {
    let mut a = OpencodeCliAdapter::new();
    let mut out = Out::default();
    a.on_input("x", &mut out);
    let _ = a.launch(&LaunchSpec { resume: Some("ses_x".into()), ..LaunchSpec::default() });
    a.on_started(&started(), &mut out);
    for chunk in [&b"noise ".repeat(1000)[..], b"Error: Sess", b"ion n", b"ot found\n"] {
        a.on_stderr(chunk, &mut out);
    }
    let acts = exit(&mut a, Some(1), None, false);
    assert!(matches!(acts.first(), Some(Action::ResumeFailed { .. })), "{acts:?}");
    // Output on stdout before the failure: not a refused resume.
    let mut a = OpencodeCliAdapter::new();
    a.on_input("x", &mut out);
    let _ = a.launch(&LaunchSpec { resume: Some("ses_x".into()), ..LaunchSpec::default() });
    a.on_started(&started(), &mut out);
    let _ = feed(&mut a, &["garbage"]);
    a.on_stderr(b"Session not found", &mut out);
    assert!(!exit(&mut a, Some(1), None, false).iter().any(|x| matches!(x, Action::ResumeFailed { .. })));
}

// ---------------------------------------------------------------- lines

#[test]
fn garbage_lines_are_unmapped() {
    let mut a = running();
    let mut out = Out::default();
    for l in [&b"hello world"[..], b"\xff\xfe{", b"{\"type\":", b"[1,2]", b"42", b"{}", b"{\"type\":7}", b"null"] {
        a.on_line(l, &mut out);
    }
    a.on_line(b"   ", &mut out);
    a.on_line(b"", &mut out);
    let kinds: Vec<String> = out
        .take()
        .into_iter()
        .map(|x| match x {
            Action::Unmapped { kind, .. } => kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
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
    // A future record type, and known types missing their body.
    let acts = feed(
        &mut a,
        &[
            r#"{"type":"file","sessionID":"ses_a","part":{}}"#,
            r#"{"type":"text","sessionID":"ses_a"}"#,
            r#"{"type":"text","sessionID":"ses_a","part":{"id":"prt_1"}}"#,
            r#"{"type":"text","sessionID":"ses_a","part":{"id":"prt_2","text":""}}"#,
        ],
    );
    let rendered: Vec<String> = acts
        .iter()
        .map(|x| match x {
            Action::Unmapped { kind, .. } => kind.clone(),
            Action::AgentSessionId(id) => format!("id {id}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(rendered, ["id ses_a", unmapped::UNKNOWN_TYPE, unmapped::MALFORMED, unmapped::MALFORMED]);
    // The turn still ends normally.
    assert!(matches!(exit(&mut a, Some(0), None, false).as_slice(), [Action::TurnEnd { success: true, .. }]));
}

#[test]
fn odd_fields_do_not_lose_a_line() {
    let mut a = running();
    let acts = feed(
        &mut a,
        &[
            // tokens of the wrong shape: the step still counts as finished
            r#"{"type":"step_finish","sessionID":7,"part":{"messageID":"msg_1","tokens":"many","cost":"free"}}"#,
            // a tool line without callID/id/tool, state unknown
            r#"{"type":"tool_use","part":{"type":"tool","state":{"status":"running","input":null}}}"#,
            // output that is not a string
            r#"{"type":"tool_use","part":{"callID":"c1","tool":"read","state":{"status":"completed","input":{"filePath":"a"},"output":{"lines":3}}}}"#,
        ],
    );
    let evs: Vec<&Event> = acts
        .iter()
        .filter_map(|x| match x {
            Action::Emit(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(matches!(evs[0], Event::Step { status: Some("end"), .. }));
    assert!(
        matches!(evs[1], Event::ToolCall { id, name, input, .. } if id == "tool-1" && name == "unknown" && *input == json!({}))
    );
    assert!(matches!(evs[2], Event::ToolCall { id, .. } if id == "c1"));
    assert!(matches!(evs[3], Event::ToolResult { output, is_error: false, .. } if *output == json!("{\"lines\":3}")));
    assert_eq!(evs.len(), 4);
    assert!(!acts.iter().any(|x| matches!(x, Action::AgentSessionId(_))), "a non-string sessionID is no id");
}

#[test]
fn session_id_reported_once_per_process_and_checked() {
    let mut a = running();
    let l = r#"{"type":"step_start","sessionID":"ses_ok","part":{"messageID":"msg_1"}}"#;
    let acts = feed(&mut a, &[l, l]);
    let ids = acts.iter().filter(|x| matches!(x, Action::AgentSessionId(_))).count();
    assert_eq!(ids, 1);
    let mut a = running();
    let acts = feed(&mut a, &[r#"{"type":"step_start","sessionID":"ses_1; rm -rf ~","part":{"messageID":"m"}}"#]);
    assert!(!acts.iter().any(|x| matches!(x, Action::AgentSessionId(_))));
}
