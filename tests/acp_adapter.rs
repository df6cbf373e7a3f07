//! Golden transcript tests of the `acpx` adapter: the real agents' stdout
//! (tests/fixtures/acpx/*.jsonl, captured against the mock LLM with a test
//! driver speaking ACP directly) is fed line by line, while the driver's
//! own stdin (*.stdin.jsonl) is replayed through the adapter's entry
//! points: prompts when idle, permission answers once asked, `session/cancel`
//! just before the agent's reaction to it. The requests the adapter writes
//! itself (handshake, prompts) are paired in order with the driver's and
//! compared in substance; the agent's answers are re-addressed to the
//! adapter's request ids. The resulting actions are rendered compactly
//! (consecutive deltas of one id merged) and compared with the expected
//! AEP sequence.

#[path = "support/golden.rs"]
mod golden;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use golden::{Collected, StdinLines, Style, ToolOutput, assert_seq};
use hotplex::adapters::acp::AcpAdapter;
use hotplex::adapters::{Action, Adapter, LaunchSpec, Out, PermissionReply, Started};
use hotplex::protocol::{Event, Stats};
use serde_json::{Value, json};

const DIR: &str = "tests/fixtures/acpx";
/// Where the captures ran (machine paths were rewritten to it).
const WORK_DIR: &str = "/srv/project";
/// The id an agent answer gets when the adapter never made that request.
const UNMATCHED: u64 = 999_999;

fn read_json_lines(name: &str) -> Vec<Value> {
    golden::read_json_lines(DIR, name)
}

/// Everything one fixture run produced.
struct Run {
    actions: Vec<Action>,
    /// Turn-end (success, stats) in order.
    stats: Vec<(bool, Stats)>,
    /// (driver request, adapter request) pairs, in order.
    pairs: Vec<(Value, Value)>,
    /// Every stdin message the adapter wrote, parsed.
    stdin: Vec<Value>,
    /// The adapter, after the last line.
    adapter: AcpAdapter,
}

/// How a fixture is replayed.
struct Replay<'a> {
    name: &'a str,
    spec: LaunchSpec,
    /// Driver request ids the adapter never makes (their answers go to [`UNMATCHED`]).
    skip: &'a [u64],
    /// Edit a stdout line before it is fed (line index, line).
    tweak: &'a dyn Fn(usize, &mut Value),
}

fn replay(r: Replay<'_>) -> Run {
    let mut stdout = read_json_lines(&format!("{}.jsonl", r.name));
    for (i, l) in stdout.iter_mut().enumerate() {
        (r.tweak)(i, l);
    }
    let mut stdin: VecDeque<Value> = read_json_lines(&format!("{}.stdin.jsonl", r.name)).into();

    let mut a = AcpAdapter::with_tag("t");
    let _ = a.launch(&r.spec);
    let mut out = Out::default();
    a.on_started(&Started { work_dir: Path::new(WORK_DIR), pid: 4242 }, &mut out);

    let mut requests: VecDeque<Value> = VecDeque::new();
    // `running` is true until the adapter is ready, then while a turn runs.
    let mut got = Collected { running: true, ..Collected::default() };
    // Besides what `Collected` tracks: `Ready` also ends `running`, and the
    // adapter's requests queue up to be paired with the driver's.
    let collect = |out: &mut Out, got: &mut Collected, requests: &mut VecDeque<Value>| {
        let first = got.take(out);
        let mut ready = false;
        for act in &got.actions[first..] {
            match act {
                Action::Ready => ready = true,
                Action::Stdin(b) => {
                    assert_eq!(b.last(), Some(&b'\n'), "stdin messages are whole lines");
                    let v: Value = serde_json::from_slice(b).expect("stdin message is JSON");
                    if v.get("method").is_some() && v.get("id").is_some() {
                        requests.push_back(v);
                    }
                }
                _ => {}
            }
        }
        if ready {
            got.running = false;
        }
    };
    collect(&mut out, &mut got, &mut requests);

    let mut id_map: HashMap<u64, u64> = HashMap::new();
    let mut pairs = Vec::new();
    let mut prompt_driver_id: Option<u64> = None;
    for i in 0..stdout.len() {
        while let Some(cmd) = stdin.front().cloned() {
            let method = cmd.get("method").and_then(Value::as_str);
            let id = cmd.get("id").and_then(Value::as_u64);
            match method {
                Some(_) if id.is_some_and(|id| r.skip.contains(&id)) => {
                    id_map.insert(id.unwrap_or_default(), UNMATCHED);
                }
                Some("initialize" | "session/new" | "session/resume" | "session/load") => {
                    let Some(req) = requests.pop_front() else { break };
                    id_map.insert(id.expect("driver request id"), req["id"].as_u64().expect("adapter id"));
                    pairs.push((cmd.clone(), req));
                }
                Some("session/prompt") => {
                    if got.running {
                        break;
                    }
                    let text = cmd.pointer("/params/prompt/0/text").and_then(Value::as_str).unwrap_or("");
                    a.on_input(text, &mut out);
                    got.running = true;
                    collect(&mut out, &mut got, &mut requests);
                    let req = requests.pop_front().expect("the adapter sent session/prompt");
                    id_map.insert(id.expect("driver request id"), req["id"].as_u64().expect("adapter id"));
                    prompt_driver_id = id;
                    pairs.push((cmd.clone(), req));
                }
                Some("session/cancel") => {
                    // Just before the agent's answer to the running prompt.
                    let next = &stdout[i];
                    if next.get("method").is_some() || next.get("id").and_then(Value::as_u64) != prompt_driver_id {
                        break;
                    }
                    a.on_interrupt(&mut out);
                }
                Some(other) => panic!("{}: unexpected driver request {other}", r.name),
                None => {
                    // The driver's answer to an agent request (permission).
                    let rid = cmd["id"].to_string();
                    if !got.asked.contains(&rid) {
                        break;
                    }
                    let option = cmd.pointer("/result/outcome/optionId").and_then(Value::as_str).unwrap_or("");
                    let kind = stdout
                        .iter()
                        .find(|l| l["method"] == "session/request_permission" && l["id"] == cmd["id"])
                        .and_then(|l| l["params"]["options"].as_array())
                        .and_then(|os| os.iter().find(|o| o["optionId"] == option))
                        .and_then(|o| o["kind"].as_str())
                        .unwrap_or("")
                        .to_owned();
                    let reply = PermissionReply {
                        id: rid,
                        allow: kind.starts_with("allow"),
                        reason: None,
                        remember: kind.ends_with("always"),
                    };
                    a.on_permission(&reply, &mut out);
                }
            }
            stdin.pop_front();
            collect(&mut out, &mut got, &mut requests);
        }
        // The agent's answers, re-addressed to the adapter's request ids.
        let mut line = stdout[i].clone();
        if line.get("method").is_none()
            && let Some(id) = line.get("id").and_then(Value::as_u64)
        {
            line["id"] = json!(id_map.get(&id).copied().unwrap_or(UNMATCHED));
        }
        a.on_line(line.to_string().as_bytes(), &mut out);
        collect(&mut out, &mut got, &mut requests);
    }
    assert!(stdin.is_empty(), "{}: stdin records left unreplayed: {stdin:?}", r.name);
    assert!(requests.is_empty(), "{}: adapter requests without a driver counterpart: {requests:?}", r.name);

    let stats = golden::turn_ends(&got.actions);
    let stdin = golden::stdin_json(&got.actions, StdinLines::Lenient);
    Run { actions: got.actions, stats, pairs, stdin, adapter: a }
}

fn fresh(name: &str) -> Replay<'_> {
    Replay { name, spec: LaunchSpec::default(), skip: &[], tweak: &|_, _| {} }
}

/// ACP stdin writes: a request's method and id, or a permission answer.
fn render_stdin(b: &[u8]) -> String {
    let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
    if let Some(m) = v["method"].as_str() {
        match v["id"].as_u64() {
            Some(id) => format!("stdin {m} #{id}"),
            None => format!("stdin {m}"),
        }
    } else if let Some(o) = v.pointer("/result/outcome") {
        let chosen = o["optionId"].as_str().unwrap_or("-");
        format!("stdin permission #{} {} {chosen}", v["id"], o["outcome"].as_str().unwrap_or("?"))
    } else {
        format!("stdin {v}")
    }
}

/// Tool output is shown as JSON: ACP tool results are structured.
const STYLE: Style = Style { stdin: render_stdin, tool_output: ToolOutput::Json, merge_deltas: true };

/// One line per action; consecutive deltas of one id merged.
fn render(actions: &[Action]) -> Vec<String> {
    golden::render(actions, &STYLE)
}

/// Shape checks every transcript must pass (aep-v1.md §3.3, workers.md
/// §1.2): message ids unique, deltas only inside their bracket and adding
/// up to the `message`, a tool_result only after its tool_call, one
/// `TurnEnd` per prompt.
fn check_invariants(name: &str, r: &Run) {
    let turn_ends = golden::check_brackets(name, &r.actions);
    let mut calls: HashSet<String> = HashSet::new();
    let mut prompts = 0;
    for a in &r.actions {
        match a {
            Action::Emit(Event::ToolCall { id, .. }) => {
                assert!(calls.insert(id.clone()), "{name}: tool_call {id} twice")
            }
            Action::Emit(Event::ToolResult { id, .. }) => {
                assert!(calls.contains(id), "{name}: tool_result {id} before its tool_call")
            }
            Action::Stdin(b) if b.windows(16).any(|w| w == b"\"session/prompt\"") => prompts += 1,
            _ => {}
        }
    }
    assert_eq!(prompts, turn_ends, "{name}: one TurnEnd per prompt");
}

/// The adapter's requests equal the driver's in substance: same method and
/// params (the driver's `clientInfo` and ids aside).
fn check_requests(name: &str, r: &Run) {
    for (driver, ours) in &r.pairs {
        assert_eq!(ours["jsonrpc"], "2.0", "{name}: {ours}");
        assert_eq!(driver["method"], ours["method"], "{name}: request order differs");
        let mut want = driver["params"].clone();
        let mut got = ours["params"].clone();
        if driver["method"] == "initialize" {
            assert_eq!(got["clientInfo"]["name"], "hotplex", "{name}: {ours}");
            for v in [&mut want, &mut got] {
                if let Some(o) = v.as_object_mut() {
                    o.remove("clientInfo");
                }
            }
        }
        assert_eq!(got, want, "{name}: {} params differ", driver["method"]);
    }
}

fn errors(r: &Run) -> Vec<&Action> {
    golden::errors(&r.actions)
}

const SID: &str = "9bb788a6-7409-4ed3-9ed7-f3795bb76dfe";

/// The driver's stdin with `clientInfo` removed from `initialize`.
fn driver_stdin(name: &str) -> Vec<Value> {
    normalise(read_json_lines(&format!("{name}.stdin.jsonl")))
}

fn normalise(mut v: Vec<Value>) -> Vec<Value> {
    for m in &mut v {
        if let Some(p) = m.pointer_mut("/params").and_then(Value::as_object_mut) {
            p.remove("clientInfo");
        }
    }
    v
}

#[test]
fn golden_01_new_session_permission_cancel_error() {
    let name = "01_acp_direct_new_permission_cancel_error";
    let r = replay(fresh(name));
    check_invariants("01", &r);
    check_requests("01", &r);
    assert_seq(
        "01",
        &render(&r.actions),
        &[
            "stdin initialize #1",
            "stdin session/new #2",
            "agent_session_id 9bb788a6-7409-4ed3-9ed7-f3795bb76dfe",
            "ready",
            "stdin session/prompt #3",
            // The empty first thought/text chunks open runs but send nothing.
            "reasoning.delta acp-t-1-1 +Let me think about this mock request step by step.",
            "start acp-t-1-2",
            "delta acp-t-1-2 +Hello from mock LLM.",
            "end acp-t-1-2",
            "message acp-t-1-2 Hello from mock LLM.",
            "turn_end success=true",
            "stdin session/prompt #4",
            "start acp-t-2-1",
            "delta acp-t-2-1 +I will call the Bash tool.",
            "end acp-t-2-1",
            "message acp-t-2-1 I will call the Bash tool.",
            // Announced twice (rawInput {} first): one tool_call, with the full input.
            "tool_call toolu_mock_0078_b75510c2 Bash {\"command\":\"touch acp_made.txt\",\"description\":\"Run a mock command\"} executing",
            "permission 0 Bash `touch acp_made.txt`",
            "stdin permission #0 selected allow",
            "tool_result toolu_mock_0078_b75510c2 is_error=false \"\"",
            "start acp-t-2-2",
            "delta acp-t-2-2 +Tool finished. Result: (no output)",
            "end acp-t-2-2",
            "message acp-t-2-2 Tool finished. Result: (no output)",
            "turn_end success=true",
            "stdin session/prompt #5",
            "start acp-t-3-1",
            "delta acp-t-3-1 +I will call the Write tool.",
            "end acp-t-3-1",
            "message acp-t-3-1 I will call the Write tool.",
            "tool_call toolu_mock_0082_990f5040 Write {\"content\":\"hello from mock\\n\",\"file_path\":\"mock_written.txt\"} executing",
            "permission 1 Write Write mock_written.txt",
            "stdin permission #1 selected reject",
            "tool_result toolu_mock_0082_990f5040 is_error=true \"User refused permission to run tool\"",
            "turn_end success=true",
            "stdin session/prompt #6",
            "start acp-t-4-1",
            "delta acp-t-4-1 +Hello from mock ",
            "stdin session/cancel",
            // The open run is closed with what was streamed; no error.
            "end acp-t-4-1",
            "message acp-t-4-1 Hello from mock ",
            "turn_end success=false",
            "stdin session/prompt #7",
            "start acp-t-5-1",
            "delta acp-t-5-1 +Hello from mock LLM.",
            "end acp-t-5-1",
            "message acp-t-5-1 Hello from mock LLM.",
            "turn_end success=true",
            "stdin session/prompt #8",
            "error AGENT_ERROR Internal error: API Error: 400 {\"type\":\"error\",\"… {\"code\":-32603,\"status\":400,\"worker_type\":\"acpx\"}",
            "turn_end success=false",
        ],
    );
    // Everything the adapter wrote equals what the verified capture driver
    // wrote (ids, params, option ids by kind), clientInfo aside.
    assert_eq!(normalise(r.stdin.clone()), driver_stdin(name));
    // claude-code-acp reports no usage and only the "default" model alias:
    // nothing in the stats (never 0 for unknown; the session adds duration).
    assert_eq!(r.stats.len(), 6);
    assert!(r.stats.iter().all(|(_, s)| *s == Stats::default()), "{:?}", r.stats);
    // The agent's full error text.
    let Some(Action::Emit(Event::Error { message, .. })) = errors(&r).first().copied() else { panic!("no error") };
    assert_eq!(
        message,
        "Internal error: API Error: 400 {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"mock error 400\"}}"
    );
    // The permission prompt forwards the agent's options untouched.
    let ask = r.actions.iter().find_map(|a| if let Action::Permission(p) = a { Some(p) } else { None });
    let ask = ask.expect("a permission prompt");
    assert_eq!(ask.input, Some(json!({"command": "touch acp_made.txt", "description": "Run a mock command"})));
    assert_eq!(ask.options.as_ref().and_then(Value::as_array).map(Vec::len), Some(3));
    assert_eq!(ask.options.as_ref().map(|o| o[1]["optionId"].clone()), Some(json!("allow")));
}

#[test]
fn golden_02_load_swallows_the_replay() {
    // The capture's agent also offers session/resume; without it the
    // adapter falls back to session/load, as the capture's driver did.
    let spec = LaunchSpec { resume: Some(SID.into()), ..LaunchSpec::default() };
    let strip_resume = |i: usize, l: &mut Value| {
        if i == 0
            && let Some(c) =
                l.pointer_mut("/result/agentCapabilities/sessionCapabilities").and_then(Value::as_object_mut)
        {
            c.remove("resume");
        }
    };
    let r = replay(Replay { spec, tweak: &strip_resume, ..fresh("02_acp_direct_load_replay") });
    check_invariants("02", &r);
    check_requests("02", &r);
    assert_seq(
        "02",
        &render(&r.actions),
        &[
            "stdin initialize #1",
            "stdin session/load #2",
            // 19 history notifications before the load answer: nothing.
            "agent_session_id 9bb788a6-7409-4ed3-9ed7-f3795bb76dfe",
            "ready",
            "stdin session/prompt #3",
            "start acp-t-1-1",
            "delta acp-t-1-1 +Earlier prompts: 'say hi [[thinking]]' | 'run [[tool:bash:touch acp_made.txt]]' | 'write [[tool:write]]' | '[Request interrupted by user for tool use]' | 'slow [[slow:10]]' | '[Request interrupted by user]' | 'after cancel' | 'bad [[error:400]]'",
            "end acp-t-1-1",
            "message acp-t-1-1 Earlier prompts: 'say hi [[thinking]]' | 'run [[…",
            "turn_end success=true",
        ],
    );
    assert_eq!(r.pairs[1].1["params"], json!({"sessionId": SID, "cwd": WORK_DIR, "mcpServers": []}));
}

#[test]
fn golden_03_resume_then_sigterm() {
    let spec = LaunchSpec { resume: Some(SID.into()), ..LaunchSpec::default() };
    // The capture's driver also tried session/load of an unknown id
    // mid-session (request 4); the adapter never does, so that answer
    // reaches it as an unknown response.
    let mut r = replay(Replay { spec, skip: &[4], ..fresh("03_acp_direct_resume_sigterm") });
    check_requests("03", &r);
    assert_seq(
        "03",
        &render(&r.actions),
        &[
            "stdin initialize #1",
            // The agent advertises sessionCapabilities.resume: no replay.
            "stdin session/resume #2",
            "agent_session_id 9bb788a6-7409-4ed3-9ed7-f3795bb76dfe",
            "ready",
            "stdin session/prompt #3",
            "start acp-t-1-1",
            "delta acp-t-1-1 +Earlier prompts: 'say hi [[thinking]]' | 'run [[tool:bash:touch acp_made.txt]]' | 'write [[tool:write]]' | '[Request interrupted by user for tool use]' | 'slow [[slow:10]]' | '[Request interrupted by user]' | 'after cancel' | 'bad [[error:400]]' | 'after load [[recall]]'",
            "end acp-t-1-1",
            "message acp-t-1-1 Earlier prompts: 'say hi [[thinking]]' | 'run [[…",
            "turn_end success=true",
            "stdin session/prompt #4",
            "unmapped unknown_response",
            "start acp-t-2-1",
            "delta acp-t-2-1 +I will call the Bash tool.",
            "end acp-t-2-1",
            "message acp-t-2-1 I will call the Bash tool.",
            "tool_call toolu_mock_0088_34a52e0f Bash {\"command\":\"sleep 44\",\"description\":\"Run a mock command\"} executing",
        ],
    );
    // The capture ends with SIGTERM during the tool: the adapter closes
    // nothing more (no text run open) and leaves the done to the session.
    let mut out = Out::default();
    r.adapter
        .on_exit(&hotplex::adapters::ExitInfo { code: None, signal: Some(15), signalled_by_gateway: true }, &mut out);
    assert!(out.take().is_empty());
}

#[test]
fn golden_03_load_of_an_unknown_session_is_a_resume_failure() {
    // The capture's "Session not found" answer, to a load of our own.
    let error = read_json_lines("03_acp_direct_resume_sigterm.jsonl")
        .into_iter()
        .find(|l| l.get("error").is_some())
        .expect("the capture's error answer");
    let mut a = AcpAdapter::with_tag("t");
    let _ =
        a.launch(&LaunchSpec { resume: Some("00000000-0000-4000-8000-000000000000".into()), ..LaunchSpec::default() });
    let mut out = Out::default();
    a.on_started(&Started { work_dir: Path::new(WORK_DIR), pid: 1 }, &mut out);
    // An agent that can load but not resume.
    a.on_line(
        br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{"loadSession":true}}}"#,
        &mut out,
    );
    let mut answer = error.clone();
    answer["id"] = json!(2);
    a.on_line(answer.to_string().as_bytes(), &mut out);
    let seq = render(&out.take());
    assert_seq(
        "03-load",
        &seq,
        &["stdin initialize #1", "stdin session/load #2", "resume_failed Internal error: Session not found"],
    );
}

#[test]
fn golden_08_opencode() {
    let name = "08_opencode_acp_direct";
    let r = replay(fresh(name));
    check_invariants("08", &r);
    check_requests("08", &r);
    assert_seq(
        "08",
        &render(&r.actions),
        &[
            "stdin initialize #1",
            "stdin session/new #2",
            "agent_session_id ses_def83c6a9ffe5V9aTHb7zAGit5",
            "ready",
            "stdin session/prompt #3",
            // opencode's messageId is the message id.
            "start msg_2107c39a7001r6nVNgV4iU327P",
            "delta msg_2107c39a7001r6nVNgV4iU327P +I will call the bash tool.",
            "end msg_2107c39a7001r6nVNgV4iU327P",
            "message msg_2107c39a7001r6nVNgV4iU327P I will call the bash tool.",
            // Emitted at in_progress, with the full input (the pending
            // notice only had {cwd}); named by its first title.
            "tool_call toolu_mock_0003_9a35eaca bash {\"command\":\"touch oc_acp.txt\",\"cwd\":\"/srv/project\",\"timeout\":120000} executing",
            "permission 0 execute touch oc_acp.txt",
            "stdin permission #0 selected once",
            "tool_result toolu_mock_0003_9a35eaca is_error=false \"(no output)\"",
            "start msg_2107c3d0b001BfF60b0m0WEHRF",
            "delta msg_2107c3d0b001BfF60b0m0WEHRF +Tool finished. Result: (no output)",
            "end msg_2107c3d0b001BfF60b0m0WEHRF",
            "message msg_2107c3d0b001BfF60b0m0WEHRF Tool finished. Result: (no output)",
            "turn_end success=true",
        ],
    );
    assert_eq!(normalise(r.stdin.clone()), driver_stdin(name));
    assert_eq!(
        r.stats,
        vec![(
            true,
            Stats {
                duration_ms: None,
                tool_calls: None,
                input_tokens: Some(131),
                output_tokens: Some(5),
                cache_read_tokens: None,
                cache_write_tokens: None,
                total_tokens: Some(136),
                // A new session starts at 0: the cumulative figure is the turn's.
                cost_usd: Some(0.000807),
                model: Some("anthropic/claude-sonnet-4-5".into()),
                context_used_percent: Some(0.0131),
            }
        )]
    );
    assert!(errors(&r).is_empty());
}
