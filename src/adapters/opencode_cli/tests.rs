//! Unit tests of the opencode_cli adapter: argv and environment, the tool
//! policy → permission rules table (workers.md §3.5) and its merge with the
//! operator's config, what `init.config` policy accepts for opencode_cli,
//! robustness against bad lines, and turn-end corners the captured
//! transcripts do not cover. The golden transcript tests live in
//! `tests/opencode_cli_adapter.rs`.

use std::path::Path;

use serde_json::{Value, json};

use super::permission::{self, Decision, Rule};
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

/// The `permission` object of a generated config, as (key, value) in order.
fn permission_entries(content: &str) -> Vec<(String, Value)> {
    // Walk the text so the order opencode sees is the order tested.
    let v: Value = serde_json::from_str(content).expect("config is JSON");
    let perm = v["permission"].as_object().expect("permission object").clone();
    let start = content.find("\"permission\":{").expect("permission key");
    let mut keys: Vec<(usize, String)> = perm
        .keys()
        .map(|k| (content[start..].find(&format!("{}:", json!(k))).unwrap_or(usize::MAX), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| (k.clone(), perm[&k].clone())).collect()
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
    assert_eq!(a.merged_env(), ["OPENCODE_CONFIG_CONTENT"]);
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
            "--model=anthropic/claude-sonnet-4-5",
            "--agent=build",
            "--session=ses_def934d0effeh71PGDCWTU0KNh"
        ]
    );
    assert_eq!(l.agent_session_id, None, "opencode picks its own ids");
    // A value that looks like a flag stays inside its element.
    let spec = LaunchSpec { model: Some("--print-logs".into()), ..LaunchSpec::default() };
    let l = OpencodeCliAdapter::new().launch(&spec);
    assert_eq!(l.args, ["run", "--format=json", "--model=--print-logs"]);
}

#[test]
fn launch_discards_unsafe_session_id() {
    let spec = LaunchSpec { resume: Some("ses_1; rm -rf ~".into()), ..LaunchSpec::default() };
    let l = OpencodeCliAdapter::new().launch(&spec);
    assert_eq!(l.args, ["run", "--format=json"]);
}

#[test]
fn launch_env_fixed_variables_and_config() {
    let l = OpencodeCliAdapter::new().launch(&LaunchSpec::default());
    assert_eq!(env_value(&l.env, "OPENCODE_DISABLE_MODELS_FETCH").as_deref(), Some("1"));
    assert_eq!(env_value(&l.env, "OPENCODE_DISABLE_AUTOUPDATE").as_deref(), Some("1"));
    assert_eq!(env_value(&l.env, "OPENCODE_DISABLE_PROJECT_CONFIG").as_deref(), Some("1"));
    assert_eq!(l.env.len(), 4);
    let content = env_value(&l.env, "OPENCODE_CONFIG_CONTENT").expect("config content");
    let v: Value = serde_json::from_str(&content).expect("JSON");
    assert_eq!(v["autoupdate"], false);
    assert_eq!(v["share"], "disabled");
    // Default policy (empty allow list): every key denied, nothing asks.
    let perm = permission_entries(&content);
    assert_eq!(perm[0], ("*".to_owned(), json!("deny")));
    assert_eq!(perm.len(), 1 + permission::KEYS.len());
    assert!(perm.iter().all(|(_, v)| v == "deny"), "{perm:?}");
    assert!(!content.contains("\"ask\""));
}

#[test]
fn launch_merges_the_operator_config() {
    let operator = r#"{"$schema":"https://opencode.ai/config.json","model":"anthropic/claude-sonnet-4-5",
        "provider":{"anthropic":{"options":{"baseURL":"http://127.0.0.1:9/v1","apiKey":"sk-test"}}},
        "share":"manual","permission":{"bash":"allow","*":"allow","external_directory":{"~/secrets/**":"deny","*":"allow"},"edit":"ask"}}"#;
    let spec = LaunchSpec {
        allowed_tools: strings(&["Read"]),
        merge_env: vec![("OPENCODE_CONFIG_CONTENT".into(), operator.into())],
        ..LaunchSpec::default()
    };
    let l = OpencodeCliAdapter::new().launch(&spec);
    let content = env_value(&l.env, "OPENCODE_CONFIG_CONTENT").expect("config");
    let v: Value = serde_json::from_str(&content).expect("JSON");
    // The operator's entries are kept (their share wins over the default)…
    assert_eq!(v["provider"]["anthropic"]["options"]["baseURL"], "http://127.0.0.1:9/v1");
    assert_eq!(v["model"], "anthropic/claude-sonnet-4-5");
    assert_eq!(v["share"], "manual");
    assert_eq!(v["autoupdate"], false);
    // …but the policy decides "*" and the mapped keys; other keys verbatim, in order.
    assert!(content.contains(r#""external_directory":{"~/secrets/**":"deny","*":"allow"}"#), "{content}");
    let perm = permission_entries(&content);
    let keys: Vec<&str> = perm.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[..2], ["*", "external_directory"]);
    assert_eq!(keys[2..], permission::KEYS);
    let get = |k: &str| perm.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("*"), Some(json!("deny")));
    assert_eq!(get("bash"), Some(json!("deny")));
    assert_eq!(get("edit"), Some(json!("deny")));
    assert_eq!(get("read"), Some(json!("allow")));
}

#[test]
fn launch_with_a_bad_operator_config_keeps_the_policy() {
    for bad in ["{not json", "[1,2]", "\"x\"", "{\"a\":1} trailing"] {
        let (content, err) = permission::config_content(Some(bad), &strings(&["Bash"]), &[]);
        assert!(err.is_some(), "{bad}");
        let perm = permission_entries(&content);
        assert_eq!(perm[0], ("*".to_owned(), json!("deny")), "{bad}");
        assert!(perm.contains(&("bash".to_owned(), json!("allow"))), "{bad}");
    }
    // A non-object permission of the operator is replaced, not merged.
    let (content, err) = permission::config_content(Some(r#"{"permission":"allow"}"#), &[], &[]);
    assert!(err.is_none());
    assert_eq!(permission_entries(&content)[0], ("*".to_owned(), json!("deny")));
    assert!(!content.contains("\"permission\":\"allow\""));
    // Repeated keys: first position, last value (as JSON.parse).
    let (content, _) = permission::config_content(Some(r#"{"model":"a/b","model":"c/d"}"#), &[], &[]);
    let v: Value = serde_json::from_str(&content).expect("JSON");
    assert_eq!(v["model"], "c/d");
    assert_eq!(content.matches("\"model\"").count(), 1);
}

// ---------------------------------------------------------------- policy mapping

fn rule(allowed: &[&str], denied: &[&str], key: &str) -> Rule {
    permission::rules(&strings(allowed), &strings(denied))
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| r)
        .expect("key")
}

const ALLOW: Rule = Rule::Flat(Decision::Allow);
const DENY: Rule = Rule::Flat(Decision::Deny);

/// An allowed `edit`: everything but opencode's own config and plugin paths.
fn edit_allowed() -> Rule {
    let mut p = vec![("*".to_owned(), Decision::Allow)];
    p.extend(permission::PROTECTED_PATHS.iter().map(|x| ((*x).to_owned(), Decision::Deny)));
    Rule::Patterns(p)
}

#[test]
fn allowed_edit_never_covers_opencode_config_or_plugins() {
    assert_eq!(rule(&["Write"], &[], "edit"), edit_allowed());
    assert_eq!(rule(&[], &[], "edit"), DENY);
    let (content, _) = permission::config_content(None, &strings(&["Edit"]), &[]);
    assert!(
        content
            .contains(r#""edit":{"*":"allow","*.opencode/*":"deny","*opencode.json":"deny","*opencode.jsonc":"deny"}"#),
        "{content}"
    );
}

#[test]
fn table_of_workers_md_3_5() {
    for (tool, key) in [
        ("Bash", "bash"),
        ("Edit", "edit"),
        ("Write", "edit"),
        ("MultiEdit", "edit"),
        ("NotebookEdit", "edit"),
        ("Read", "read"),
        ("Glob", "glob"),
        ("Grep", "grep"),
        ("LS", "list"),
        ("WebFetch", "webfetch"),
        ("WebSearch", "websearch"),
        ("Task", "task"),
        ("TodoWrite", "todowrite"),
    ] {
        assert_eq!(permission::key_of(tool), Some(key), "{tool}");
        assert!(permission::client_tool_supported(tool), "{tool}");
        // Allowed alone: its key, and only its key, is allowed.
        let rules = permission::rules(&strings(&[tool]), &[]);
        for (k, r) in &rules {
            let want = match (*k == key, *k) {
                (true, "edit") => edit_allowed(),
                (true, _) => ALLOW,
                (false, _) => DENY,
            };
            assert_eq!(*r, want, "{tool}: {k}");
        }
        // Denied wins over allowed.
        assert_eq!(rule(&[tool], &[tool], key), DENY, "{tool}");
    }
    assert_eq!(permission::rules(&[], &[]).len(), permission::KEYS.len());
}

#[test]
fn unmapped_client_tools_are_refused() {
    for bad in
        ["mcp__github__create_issue", "mcp__x__*", "Agent", "bash", "Read(src/**)", "WebFetch(domain:x.org)", "Edit(*)"]
    {
        assert!(!permission::client_tool_supported(bad), "{bad}");
    }
    assert!(permission::client_tool_supported("Bash(git log:*)"));
    assert_eq!(permission::first_unsupported(&strings(&["Read", "mcp__x__y", "Grep"])), Some("mcp__x__y"));
    assert_eq!(permission::first_unsupported(&strings(&["Read", "Bash(ls)"])), None);
}

#[test]
fn bash_rules_become_ordered_patterns() {
    assert_eq!(permission::bash_patterns("git log:*"), ["git log", "git log *"]);
    assert_eq!(permission::bash_patterns("npm test"), ["npm test"]);
    assert_eq!(permission::bash_patterns(":*"), ["*"]);
    // Only some commands: deny by default, allow patterns after.
    assert_eq!(
        rule(&["Bash(git log:*)", "Bash(ls)"], &[], "bash"),
        Rule::Patterns(vec![
            ("*".into(), Decision::Deny),
            ("git log".into(), Decision::Allow),
            ("git log *".into(), Decision::Allow),
            ("ls".into(), Decision::Allow),
        ])
    );
    // All but some: deny patterns last, so they win (last match).
    assert_eq!(
        rule(&["Bash", "Bash(git log:*)"], &["Bash(rm:*)"], "bash"),
        Rule::Patterns(vec![
            ("*".into(), Decision::Allow),
            ("rm".into(), Decision::Deny),
            ("rm *".into(), Decision::Deny)
        ])
    );
    // Deny patterns after allow patterns.
    let r = rule(&["Bash(git:*)"], &["Bash(git push:*)"], "bash");
    let Rule::Patterns(p) = r else { panic!("patterns expected") };
    assert_eq!(p.last(), Some(&("git push *".to_owned(), Decision::Deny)));
    // A deny of everything, or of the bare name, is a flat deny.
    assert_eq!(rule(&["Bash"], &["Bash(:*)"], "bash"), DENY);
    assert_eq!(rule(&["Bash(ls)"], &["Bash"], "bash"), DENY);
    // Only deny patterns and nothing allowed: still a flat deny.
    assert_eq!(rule(&[], &["Bash(rm:*)"], "bash"), DENY);
    let (content, _) = permission::config_content(None, &strings(&["Bash(git log:*)"]), &[]);
    assert!(content.contains(r#""bash":{"*":"deny","git log":"allow","git log *":"allow"}"#), "{content}");
}

#[test]
fn server_rules_opencode_cannot_express_fail_closed() {
    // An allow rule on a non-Bash tool cannot be expressed: the key stays denied.
    assert_eq!(rule(&["Read(src/**)"], &[], "read"), DENY);
    // A deny rule on a non-Bash tool denies the whole key.
    assert_eq!(rule(&["Read"], &["Read(/etc/**)"], "read"), DENY);
    // Unknown names change nothing ("*": "deny" covers them).
    assert_eq!(rule(&["mcp__x__*", "Read"], &["mcp__y__z"], "read"), ALLOW);
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
    // mode: only default.
    assert!(apply(&|c| c.permission_mode = Some("default".into())).is_ok());
    assert!(apply(&|c| c.permission_mode = Some("plan".into())).is_err());
    assert!(apply(&|c| c.max_turns = Some(3)).is_err());
    // Tools: names of the table only; a rule only for Bash.
    assert!(apply(&|c| c.allowed_tools = Some(strings(&["Bash(git log:*)"]))).is_ok());
    assert!(apply(&|c| c.disallowed_tools = Some(strings(&["mcp__x__y"]))).is_err());
    assert!(apply(&|c| c.disallowed_tools = Some(strings(&["Read(/etc/**)"]))).is_err());
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

#[test]
fn operator_config_keeps_its_order_and_values() {
    use super::ojson::OJson;
    let text = r#"{"z":{"y":[1,-2,3.5,1e3,true,null,"é\"\n"],"b":{},"a":[]},"m":"x","z":0}"#;
    let v = OJson::parse(text).expect("JSON");
    // Order kept at every level; a repeated key keeps its first place, last value.
    assert_eq!(v.to_json(), r#"{"z":0,"m":"x"}"#);
    let text = r#"{"z":{"y":[1,-2,3.5,1e3,true,null,"é\"\n"],"b":{},"a":[]},"m":"x"}"#;
    let round = OJson::parse(text).expect("JSON").to_json();
    assert_eq!(round, r#"{"z":{"y":[1,-2,3.5,1000.0,true,null,"é\"\n"],"b":{},"a":[]},"m":"x"}"#);
    let back: Value = serde_json::from_str(&round).expect("valid JSON");
    assert_eq!(back["z"]["y"][6], "é\"\n");
    // Through the merge: the operator's nested pattern order survives.
    let op = r#"{"permission":{"skill":{"z*":"allow","*":"deny","a*":"allow"}},"mcp":{"b":{"type":"local"},"a":{"type":"remote"}}}"#;
    let (content, err) = permission::config_content(Some(op), &[], &[]);
    assert!(err.is_none());
    assert!(content.contains(r#""skill":{"z*":"allow","*":"deny","a*":"allow"}"#), "{content}");
    assert!(content.contains(r#""mcp":{"b":{"type":"local"},"a":{"type":"remote"}}"#), "{content}");
}
