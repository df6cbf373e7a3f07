//! Golden transcript tests of the `opencode_cli` adapter: the real CLI's
//! stdout (tests/fixtures/opencode_cli/*.jsonl, opencode 1.18.33 against the
//! mock LLM; one file = one turn = one process) is fed line by line through
//! the adapter's entry points in the order the session calls them —
//! `on_input`, `launch`, `on_started`, `on_line`…, `on_exit` — and the
//! resulting actions are compared with the expected AEP sequence.

#[path = "support/golden.rs"]
mod golden;

use std::path::Path;

use golden::{Style, ToolOutput};
use hotplex::adapters::opencode_cli::OpencodeCliAdapter;
use hotplex::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, Started};
use hotplex::protocol::{Event, Stats};

const DIR: &str = "tests/fixtures/opencode_cli";

fn read_lines(name: &str) -> Vec<String> {
    golden::read_lines(DIR, &format!("{name}.jsonl"))
}

const EXIT_0: ExitInfo = ExitInfo { code: Some(0), signal: None, signalled_by_gateway: false };
const EXIT_1: ExitInfo = ExitInfo { code: Some(1), signal: None, signalled_by_gateway: false };

/// How the fixture's process is driven besides its stdout.
#[derive(Default)]
struct Drive<'a> {
    resume: Option<&'a str>,
    /// Interrupt after this many lines.
    interrupt_after: Option<usize>,
    stderr: &'a [u8],
}

struct Run {
    actions: Vec<Action>,
    args: Vec<String>,
}

fn run(name: &str, prompt: &str, exit: ExitInfo, drive: Drive<'_>) -> Run {
    let lines = if name.is_empty() { Vec::new() } else { read_lines(name) };
    let mut a = OpencodeCliAdapter::new();
    let mut out = Out::default();
    a.on_input(prompt, &mut out);
    let spec = LaunchSpec { resume: drive.resume.map(str::to_owned), ..LaunchSpec::default() };
    let launch = a.launch(&spec);
    a.on_started(&Started { work_dir: Path::new("/srv/project"), pid: 4242 }, &mut out);
    for (i, l) in lines.iter().enumerate() {
        if drive.interrupt_after == Some(i) {
            a.on_interrupt(&mut out);
        }
        a.on_line(l.as_bytes(), &mut out);
    }
    if drive.interrupt_after == Some(lines.len()) {
        a.on_interrupt(&mut out);
    }
    if !drive.stderr.is_empty() {
        // in two chunks, split inside the marker text
        let (x, y) = drive.stderr.split_at(drive.stderr.len() / 2);
        a.on_stderr(x, &mut out);
        a.on_stderr(y, &mut out);
    }
    a.on_exit(&exit, &mut out);
    Run { actions: out.take(), args: launch.args }
}

/// opencode's stdin is the prompt text itself.
fn render_stdin(b: &[u8]) -> String {
    format!("stdin {}", String::from_utf8_lossy(b))
}

/// Not merged: each text part is one whole delta (checked by `check_invariants`).
const STYLE: Style = Style { stdin: render_stdin, tool_output: ToolOutput::Text, merge_deltas: false };

fn render(actions: &[Action]) -> Vec<String> {
    golden::render(actions, &STYLE)
}

fn assert_seq(name: &str, r: &Run, want: &[&str]) {
    golden::assert_seq(name, &render(&r.actions), want);
}

fn stats_of(r: &Run) -> (bool, Stats) {
    let ends = golden::turn_ends(&r.actions);
    assert_eq!(ends.len(), 1, "exactly one TurnEnd: {:#?}", r.actions);
    ends[0].clone()
}

/// Shape every transcript must pass: each text message bracketed
/// start → one delta → end → message with one id; ids unique; each
/// `tool_call` immediately followed by its `tool_result` (or alone).
fn check_invariants(name: &str, r: &Run) {
    let evs: Vec<&Event> = r
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e),
            _ => None,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (i, e) in evs.iter().enumerate() {
        match e {
            Event::MessageStart { id, .. } => {
                assert!(seen.insert(id.clone()), "{name}: message id {id} reused");
                let (
                    Some(Event::MessageDelta { message_id: d, content, .. }),
                    Some(Event::MessageEnd { message_id: en }),
                    Some(Event::Message { id: m, content: full, .. }),
                ) = (evs.get(i + 1), evs.get(i + 2), evs.get(i + 3))
                else {
                    panic!("{name}: message {id} not start/delta/end/message: {evs:#?}");
                };
                assert!(d == id && en == id && m == id, "{name}: ids differ in bracket of {id}");
                assert_eq!(content, full, "{name}: the delta is not the whole text");
            }
            Event::ToolCall { id, .. } => {
                if let Some(Event::ToolResult { id: rid, .. }) = evs.get(i + 1) {
                    assert_eq!(rid, id, "{name}: tool_result of another call follows {id}");
                }
            }
            _ => {}
        }
    }
}

#[test]
fn golden_01_new_turn() {
    let r = run("01_new_turn", "say hi", EXIT_0, Drive::default());
    check_invariants("01", &r);
    assert_seq(
        "01",
        &r,
        &[
            "stdin say hi",
            "close_stdin",
            "agent_session_id ses_def93bc7affeqZhS2WUSAF6tQ9",
            "step msg_2106c4735001UtaESVez8MYCG5 llm_call start",
            "start prt_2106c4b5f001CGEU1679j11Mdc",
            "delta prt_2106c4b5f001CGEU1679j11Mdc +Hello from mock LLM.",
            "end prt_2106c4b5f001CGEU1679j11Mdc",
            "message prt_2106c4b5f001CGEU1679j11Mdc Hello from mock LLM.",
            "step msg_2106c4735001UtaESVez8MYCG5 llm_call end",
            "turn_end success=true",
        ],
    );
    assert_eq!(r.args, ["run", "--format=json", "--thinking"]);
    assert_eq!(
        stats_of(&r),
        (
            true,
            Stats {
                input_tokens: Some(27),
                output_tokens: Some(4),
                cache_read_tokens: Some(0),
                cache_write_tokens: Some(0),
                total_tokens: Some(31),
                cost_usd: Some(0.000141),
                ..Stats::default()
            }
        )
    );
}

#[test]
fn golden_02_tool_use_over_three_steps() {
    let prompt = "[[thinking]] do it [[tool:bash:touch by_bash.txt]] [[tool:write]]";
    let r = run("02_tool_use", prompt, EXIT_0, Drive::default());
    check_invariants("02", &r);
    assert_seq(
        "02",
        &r,
        &[
            &format!("stdin {prompt}"),
            "close_stdin",
            "agent_session_id ses_def939fe3ffeMuNmU8hVSmOErT",
            "step msg_2106c6365001IaRe0PzF42BNPb llm_call start",
            "start prt_2106c669d0012KsclctZ3ipT5n",
            "delta prt_2106c669d0012KsclctZ3ipT5n +I will call the bash tool.",
            "end prt_2106c669d0012KsclctZ3ipT5n",
            "message prt_2106c669d0012KsclctZ3ipT5n I will call the bash tool.",
            r#"tool_call toolu_mock_0027_4872e8dc bash {"command":"touch by_bash.txt"} executing"#,
            "tool_result toolu_mock_0027_4872e8dc is_error=false (no output)",
            "step msg_2106c6365001IaRe0PzF42BNPb llm_call end",
            "step msg_2106c6777001QY4KLDPlNrS3WT llm_call start",
            "start prt_2106c67bc0018GY6NJQDqUje6l",
            "delta prt_2106c67bc0018GY6NJQDqUje6l +I will call the write tool.",
            "end prt_2106c67bc0018GY6NJQDqUje6l",
            "message prt_2106c67bc0018GY6NJQDqUje6l I will call the write tool.",
            r#"tool_call toolu_mock_0029_2d99f37a write {"content":"hello from mock\n","filePath":"mock_written.txt"} executing"#,
            "tool_result toolu_mock_0029_2d99f37a is_error=false Wrote file successfully.",
            "step msg_2106c6777001QY4KLDPlNrS3WT llm_call end",
            "step msg_2106c6856001F37WLGVSBPDQ5a llm_call start",
            "start prt_2106c68a5001KmX8ZIHo5N1QwA",
            "delta prt_2106c68a5001KmX8ZIHo5N1QwA +Tool finished. Result: Wrote file successfully.",
            "end prt_2106c68a5001KmX8ZIHo5N1QwA",
            "message prt_2106c68a5001KmX8ZIHo5N1QwA Tool finished. Result: Wrote file successfully.",
            "step msg_2106c6856001F37WLGVSBPDQ5a llm_call end",
            "turn_end success=true",
        ],
    );
    // Summed over the three step_finish lines.
    let (ok, s) = stats_of(&r);
    assert!(ok);
    assert_eq!((s.input_tokens, s.output_tokens, s.total_tokens), (Some(463), Some(38), Some(501)));
    assert_eq!(s.cost_usd, Some(0.001959));
    assert_eq!(s.model, None, "the CLI reports no model");
}

#[test]
fn golden_03_refused_tool_and_reasoning() {
    let r = run("03_permission_auto_rejected_with_reasoning", "p", EXIT_0, Drive::default());
    check_invariants("03", &r);
    assert_seq(
        "03",
        &r,
        &[
            "stdin p",
            "close_stdin",
            "agent_session_id ses_def9381c9ffeXnH0AbU4jArLtR",
            "step msg_2106c83e9001nCgSvVOjM4f1NX llm_call start",
            "reasoning prt_2106c8a91001hFvz0Vw48MLKrF None Let me think about this mock request step by step.",
            "start prt_2106c8aaa001c2R7qwAo0VPvHQ",
            "delta prt_2106c8aaa001c2R7qwAo0VPvHQ +I will call the bash tool.",
            "end prt_2106c8aaa001c2R7qwAo0VPvHQ",
            "message prt_2106c8aaa001c2R7qwAo0VPvHQ I will call the bash tool.",
            r#"tool_call toolu_mock_0033_eecb1f8b bash {"command":"touch by_bash.txt"} executing"#,
            "tool_result toolu_mock_0033_eecb1f8b is_error=true The user rejected permission to use this specifi…",
            "step msg_2106c83e9001nCgSvVOjM4f1NX llm_call end",
            "turn_end success=true",
        ],
    );
    let result = r.actions.iter().find_map(|a| match a {
        Action::Emit(Event::ToolResult { output, .. }) => output.as_str(),
        _ => None,
    });
    assert_eq!(result, Some("The user rejected permission to use this specific tool call."));
}

#[test]
fn golden_04_resume_uses_session_flag() {
    let r = run(
        "04_resume",
        "what did I say [[recall]]",
        EXIT_0,
        Drive { resume: Some("ses_def934d0effeh71PGDCWTU0KNh"), ..Drive::default() },
    );
    check_invariants("04", &r);
    assert_eq!(r.args, ["run", "--format=json", "--thinking", "--session=ses_def934d0effeh71PGDCWTU0KNh"]);
    assert_seq(
        "04",
        &r,
        &[
            "stdin what did I say [[recall]]",
            "close_stdin",
            "agent_session_id ses_def934d0effeh71PGDCWTU0KNh",
            "step msg_2106cc594001dIenKVcrLOqk6E llm_call start",
            "start prt_2106cc90d0018C3mrm5ZDF6lso",
            "delta prt_2106cc90d0018C3mrm5ZDF6lso +Earlier prompts: 'remember BANANA via stdin'",
            "end prt_2106cc90d0018C3mrm5ZDF6lso",
            "message prt_2106cc90d0018C3mrm5ZDF6lso Earlier prompts: 'remember BANANA via stdin'",
            "step msg_2106cc594001dIenKVcrLOqk6E llm_call end",
            "turn_end success=true",
        ],
    );
}

#[test]
fn golden_05_api_error_is_agent_error() {
    let r = run("05_error_400", "bad [[error:400]]", EXIT_1, Drive::default());
    assert_seq(
        "05",
        &r,
        &[
            "stdin bad [[error:400]]",
            "close_stdin",
            "agent_session_id ses_def879844ffetYzplFBUUdj4P0",
            r#"error AGENT_ERROR mock error 400 {"agent_code":"APIError","retryable":false,"status":400,"worker_type":"opencode_cli"}"#,
            "turn_end success=false",
        ],
    );
    let (ok, s) = stats_of(&r);
    assert!(!ok);
    assert_eq!(s, Stats::default(), "no step finished: nothing to report");
}

#[test]
fn golden_06_retries_then_error_one_step() {
    let r = run("06_error_stream_retries", "midstream [[error:stream]]", EXIT_1, Drive::default());
    assert_seq(
        "06",
        &r,
        &[
            "stdin midstream [[error:stream]]",
            "close_stdin",
            "agent_session_id ses_def88b1b3ffeZ2qdvFPNgXrTBq",
            // six step_start lines of one LLM call (silent retries): one step
            "step msg_2107751bb001M4T7b966lrslKQ llm_call start",
            r#"error AGENT_ERROR {"type":"overloaded_error","message":"mock strea… {"agent_code":"UnknownError","worker_type":"opencode_cli"}"#,
            "turn_end success=false",
        ],
    );
}

#[test]
fn golden_07_interrupt_mid_tool() {
    // SIGTERM from our interrupt after the text line; the output just stops.
    let killed = ExitInfo { code: None, signal: Some(15), signalled_by_gateway: true };
    let r = run(
        "07_sigterm_mid_tool",
        "tool [[tool:bash:sleep 40; echo done]]",
        killed,
        Drive { interrupt_after: Some(2), ..Drive::default() },
    );
    check_invariants("07", &r);
    assert_seq(
        "07",
        &r,
        &[
            "stdin tool [[tool:bash:sleep 40; echo done]]",
            "close_stdin",
            "agent_session_id ses_def891ceeffe75A5Uar3Z3tSvi",
            "step msg_21076e7cc001FZAGbFodGBi4zJ llm_call start",
            "start prt_21076ec64001H8FstNKe86muxY",
            "delta prt_21076ec64001H8FstNKe86muxY +I will call the bash tool.",
            "end prt_21076ec64001H8FstNKe86muxY",
            "message prt_21076ec64001H8FstNKe86muxY I will call the bash tool.",
            "kill",
            "turn_end success=false",
        ],
    );
}

#[test]
fn golden_07_killed_by_someone_else_is_a_crash() {
    let killed = ExitInfo { code: None, signal: Some(15), signalled_by_gateway: false };
    let r = run("07_sigterm_mid_tool", "tool", killed, Drive::default());
    let got = render(&r.actions);
    assert_eq!(
        &got[got.len() - 2..],
        [
            r#"error WORKER_CRASH opencode exited before finishing the turn {"exit_code":null,"signal":15,"worker_type":"opencode_cli"}"#,
            "turn_end success=false"
        ]
    );
    // SIGKILL nobody on our side sent: WORKER_OOM (workers.md §1.4 item 6).
    let oom = ExitInfo { code: None, signal: Some(9), signalled_by_gateway: false };
    let r = run("07_sigterm_mid_tool", "tool", oom, Drive::default());
    assert!(render(&r.actions).iter().any(|l| l.starts_with("error WORKER_OOM")), "{:#?}", r.actions);
}

#[test]
fn golden_07_killed_by_the_gateway_leaves_the_turn_to_the_session() {
    // terminate / shutdown / timeout: the session ends the turn with its own error.
    let killed = ExitInfo { code: None, signal: Some(15), signalled_by_gateway: true };
    let r = run("07_sigterm_mid_tool", "tool", killed, Drive::default());
    assert!(!r.actions.iter().any(|a| matches!(a, Action::TurnEnd { .. } | Action::Emit(Event::Error { .. }))));
}

#[test]
fn unknown_session_is_a_resume_failure() {
    // workers.md §3.1: stderr "Error: Session not found", exit 1, no stdout.
    let r = run(
        "",
        "hello",
        EXIT_1,
        Drive {
            resume: Some("ses_nonexistent123"),
            stderr: b"\x1b[91m\x1b[1mError: \x1b[0mSession not found\n",
            ..Drive::default()
        },
    );
    assert_seq(
        "resume",
        &r,
        &[
            "stdin hello",
            "close_stdin",
            "resume_failed opencode does not know the agent session to resume (Session not found)",
            "turn_end success=false",
        ],
    );
    // The same exit of a fresh (not resumed) process is a crash.
    let r = run("", "hello", EXIT_1, Drive { stderr: b"Error: Session not found\n", ..Drive::default() });
    assert!(render(&r.actions).iter().any(|l| l.starts_with("error WORKER_CRASH")), "{:#?}", r.actions);
}
