//! The scripted behaviours (table in `main.rs`). Each returns `Ok(Some(text))`
//! for a normal end (the caller writes the success `result` with that text),
//! `Ok(None)` when it wrote its own `result`, or `Err(Stop)` when interrupted.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::{Agent, Ctl, Pace, Stop, pieces};
use crate::json::J;
use crate::store::{now_ms, uuid};

type R = Result<Option<String>, Stop>;

pub fn run(ag: &mut Agent, input: &str) -> R {
    let trimmed = input.trim_start();
    let mut words = trimmed.split_whitespace();
    let cmd = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let int = |i: usize, d: u64| args.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(d);
    let float = |i: usize, d: f64| {
        args.get(i).and_then(|s| s.parse::<f64>().ok()).filter(|f| f.is_finite() && *f >= 0.0).unwrap_or(d)
    };
    match cmd {
        "say" => {
            let rest = &trimmed[3..];
            let mut chars = rest.chars();
            let rest = if chars.next().is_some_and(char::is_whitespace) { chars.as_str() } else { rest };
            reply(ag, rest)
        }
        "stream" => stream(ag, int(0, 10), int(1, 0) as usize, float(2, 0.0)),
        "tool" => tool(ag, args.first().and_then(|s| s.parse().ok())),
        "permission" => permission(ag, args.first().copied().unwrap_or("Write")),
        "permissions" => permissions(ag, int(0, 2).clamp(1, 64) as usize, args.get(1).copied().unwrap_or("Bash")),
        "crash" => {
            let how = args.first().copied().unwrap_or("code");
            crash(ag, how, int(1, if how == "signal" { 11 } else { 1 }) as i32)
        }
        "hang" => {
            ag.status_requesting();
            Err(ag.hang())
        }
        "slow" => slow(ag, float(0, 5.0)),
        "giant" => giant(ag, int(0, 1_000_000) as usize),
        "garbage" => garbage(ag),
        "ignore-sigterm" => {
            // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            reply(ag, "SIGTERM is now ignored")
        }
        "grandchild" => grandchild(ag),
        "env" => {
            let env: BTreeMap<String, String> = std::env::vars_os()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
                .collect();
            let text = serde_json::to_string(&env).expect("map serialises");
            reply_pieces(ag, vec![text])
        }
        "whoami" => {
            let text = whoami(args.first().copied()).to_string();
            reply_pieces(ag, vec![text])
        }
        "error" => api_error(ag, args.first().copied().unwrap_or("400")),
        "recall" => {
            let mut prior = ag.transcript.user_inputs();
            prior.pop(); // the current input
            let list: Vec<String> =
                prior.iter().map(|p| format!("'{}'", p.chars().take(80).collect::<String>())).collect();
            let list = if list.is_empty() { "(none)".to_string() } else { list.join(" | ") };
            reply(ag, &format!("Earlier prompts: {list}"))
        }
        "exit" => {
            ag.exit_after_turn = true;
            reply(ag, "bye")
        }
        "stderr" => {
            let n = int(0, 1024) as usize;
            let mut buf = Vec::with_capacity(n);
            while buf.len() < n {
                buf.push(if buf.len() % 80 == 79 { b'\n' } else { b'e' });
            }
            let _ = std::io::stderr().write_all(&buf);
            reply(ag, &format!("wrote {n} bytes to stderr"))
        }
        "all-events" => all_events(ag),
        _ => reply(ag, &format!("echo: {input}")),
    }
}

/// One API call with one streamed text block.
/// The `whoami` report: identity and capability lines of
/// `/proc/self/status`, whether `setuid(0)` succeeds, whether a file can be
/// created in `$HOME`, `$TMPDIR` and the cwd, and (with a path) whether that
/// directory can be listed.
fn whoami(probe: Option<&str>) -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let write = |dir: Option<std::path::PathBuf>| -> String {
        let Some(dir) = dir else { return "unset".into() };
        let p = dir.join(format!("whoami-{}", std::process::id()));
        match std::fs::write(&p, b"x").and_then(|_| std::fs::remove_file(&p)) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    };
    let env_dir = |k: &str| std::env::var_os(k).map(std::path::PathBuf::from);
    // SAFETY: setuid takes a plain integer; the mock exits after its session anyway.
    let setuid0 = unsafe { libc::setuid(0) } == 0;
    let read = probe.map(|p| match std::fs::read_dir(p) {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    });
    json!({
        "uid": field("Uid"), "gid": field("Gid"), "groups": field("Groups"),
        "CapEff": field("CapEff"), "CapPrm": field("CapPrm"), "CapInh": field("CapInh"), "CapAmb": field("CapAmb"),
        "setuid0": setuid0,
        "write_home": write(env_dir("HOME")), "write_tmpdir": write(env_dir("TMPDIR")),
        "write_cwd": write(std::env::current_dir().ok()),
        "read": read,
    })
}

fn reply(ag: &mut Agent, text: &str) -> R {
    reply_pieces(ag, pieces(text))
}

fn reply_pieces(ag: &mut Agent, parts: Vec<String>) -> R {
    let mut m = ag.msg_begin();
    let text = ag.text_block(&mut m, parts, Pace::Fast)?;
    ag.msg_end(m, "end_turn");
    Ok(Some(text))
}

/// Delta `i` of `stream`: `tok-0001 ` …, or exactly `width` bytes when given.
fn tok(i: u64, width: usize) -> String {
    let mut s = format!("tok-{i:04}");
    if width == 0 {
        s.push(' ');
    } else if width > s.len() {
        s.extend(std::iter::repeat_n('.', width - s.len() - 1));
        s.push(' ');
    } else {
        s.truncate(width);
    }
    s
}

fn secs(f: f64) -> Duration {
    Duration::from_secs_f64(f.clamp(0.0, 10_000_000.0))
}

fn stream(ag: &mut Agent, n: u64, width: usize, rate: f64) -> R {
    let mut m = ag.msg_begin();
    let pace = if rate > 0.0 { Pace::Every { start: Instant::now(), interval: secs(1.0 / rate) } } else { Pace::Fast };
    let text = ag.text_block(&mut m, (1..=n).map(|i| tok(i, width)), pace)?;
    ag.msg_end(m, "end_turn");
    Ok(Some(text))
}

fn slow(ag: &mut Agent, total: f64) -> R {
    let mut m = ag.msg_begin();
    let start = Instant::now();
    let interval = secs(total / 10.0);
    let parts = (1..=10).map(|k| if k < 10 { format!("slow-{k:02} ") } else { format!("slow-{k:02}") });
    let text = ag.text_block(&mut m, parts, Pace::Every { start, interval })?;
    ag.pause_until(crate::agent::at(start, secs(total)))?;
    ag.msg_end(m, "end_turn");
    Ok(Some(text))
}

fn filler(n: usize) -> String {
    "mock-output ".chars().cycle().take(n).collect()
}

fn tool(ag: &mut Agent, size: Option<usize>) -> R {
    let mut m = ag.msg_begin();
    ag.text_block(&mut m, pieces("I will call the Bash tool."), Pace::Fast)?;
    let input = json!({"command": "echo mock", "description": "Run a mock command"});
    let tid = ag.tool_block(&mut m, "Bash", &input);
    ag.msg_end(m, "tool_use");
    if let Err(Stop::Interrupt(rid)) = ag.poll() {
        return Err(ag.tool_interrupted(&rid, &tid));
    }
    let output = size.map_or_else(|| "mock".to_string(), filler);
    let tur = o! {"stdout" => &output, "stderr" => "", "interrupted" => false, "isImage" => false};
    ag.tool_result(&tid, &output, false, tur);
    reply(ag, "Tool finished.")
}

fn all_events(ag: &mut Agent) -> R {
    let mut m = ag.msg_begin();
    ag.thinking_block(&mut m, "Let me think about this mock request step by step.");
    ag.text_block(&mut m, pieces("I will run two tools."), Pace::Fast)?;
    let ok = ag.tool_block(&mut m, "Bash", &json!({"command": "echo ok", "description": "Succeeds"}));
    ag.msg_end(m, "tool_use");
    ag.tool_result(&ok, "ok", false, o! {"stdout" => "ok", "stderr" => "", "interrupted" => false, "isImage" => false});
    ag.poll()?;
    let mut m = ag.msg_begin();
    let bad = ag.tool_block(&mut m, "Bash", &json!({"command": "false", "description": "Fails"}));
    ag.msg_end(m, "tool_use");
    ag.tool_result(&bad, "Exit code 1", true, J::from("Error: Exit code 1"));
    reply(ag, "all events done")
}

fn crash(ag: &mut Agent, how: &str, n: i32) -> R {
    let mut m = ag.msg_begin();
    let index = m.take_index();
    ag.block_start(index, o! {"type" => "text", "text" => ""});
    ag.block_delta(index, o! {"type" => "text_delta", "text" => "about to crash "});
    ag.transcript.record(&o! {"kind" => "crash", "ts_ms" => now_ms(), "how" => how, "n" => n}, false);
    if how == "signal" {
        // SAFETY: plain libc calls; the process is meant to die here.
        unsafe {
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(n, libc::SIG_DFL);
            libc::raise(n);
        }
        // A signal whose default action is not fatal: look like death by it.
        std::thread::sleep(Duration::from_millis(100));
        std::process::exit(128 + n);
    }
    std::process::exit(n)
}

fn giant(ag: &mut Agent, n: usize) -> R {
    let mut m = ag.msg_begin();
    let index = m.take_index();
    ag.block_start(index, o! {"type" => "text", "text" => ""});
    // Same length with any filler: uuids and ids have fixed widths.
    let base = ag.assistant_j(&m, o! {"type" => "text", "text" => ""}).to_bytes().len();
    let big = "x".repeat(n.saturating_sub(base));
    let line = ag.assistant_j(&m, o! {"type" => "text", "text" => big});
    ag.emit(line);
    ag.block_stop(index);
    let text = ag.text_block(&mut m, pieces("giant line sent"), Pace::Fast)?;
    ag.msg_end(m, "end_turn");
    Ok(Some(text))
}

fn garbage(ag: &mut Agent) -> R {
    ag.out.raw(b"this is not JSON {{{ mock garbage\n");
    let sid = ag.cfg.sid.clone();
    ag.emit(o! {"type" => "mock_unknown_type", "payload" => a![1u64, 2u64], "session_id" => &sid, "uuid" => uuid()});
    ag.system("mock_unknown_subtype", o! {"detail" => "ignore me"});
    reply(ag, "garbage done")
}

fn grandchild(ag: &mut Agent) -> R {
    let sleep = if std::path::Path::new("/bin/sleep").exists() { "/bin/sleep" } else { "sleep" };
    let spawn = |setsid: bool| {
        let mut c = Command::new(sleep);
        c.arg("1000").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if setsid {
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                c.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
        }
        c.spawn().map(|ch| ch.id())
    };
    let text = match (spawn(false), spawn(true)) {
        (Ok(p1), Ok(p2)) => json!({"group_child": p1, "setsid_child": p2}).to_string(),
        (a, b) => json!({"error": format!("spawn failed: {a:?} {b:?}")}).to_string(),
    };
    // The children are never waited for (they outlive the turn on purpose).
    reply_pieces(ag, vec![text])
}

/// Agent-side API failure (fixture 04): optional `api_retry`, a `<synthetic>`
/// assistant line with `error`, then `result{is_error:true, api_error_status}`.
/// `error stream` fails mid-stream with a 500 after two deltas.
fn api_error(ag: &mut Agent, arg: &str) -> R {
    let (status, midstream) = match arg {
        "stream" => (500u16, true),
        s => (s.parse().unwrap_or(400), false),
    };
    let retryable = matches!(status, 408 | 409 | 429) || status >= 500;
    let label = match status {
        401 | 403 => "authentication_failed",
        429 => "rate_limit",
        s if s >= 500 => "server_error",
        _ => "unknown",
    };
    if midstream {
        let mut m = ag.msg_begin();
        let index = m.take_index();
        ag.block_start(index, o! {"type" => "text", "text" => ""});
        for p in ["Hello ", "from "] {
            ag.block_delta(index, o! {"type" => "text_delta", "text" => p});
        }
    } else {
        ag.status_requesting();
    }
    if retryable {
        let retry_label = if status == 529 { "overloaded" } else { label };
        ag.system(
            "api_retry",
            o! {"attempt" => 1u64, "max_retries" => 1u64, "retry_delay_ms" => 500.0,
            "error_status" => status, "error" => retry_label},
        );
    }
    let mut text = if midstream {
        format!("API Error: {status} mock stream error")
    } else {
        format!("API Error: {status} mock error {status}")
    };
    if status >= 500 {
        text.push_str(
            ". This is a server-side issue, usually temporary — try again in a moment. If it persists, check your inference gateway (mock).",
        );
    }
    let zero = o! {"input_tokens" => 0u64, "output_tokens" => 0u64, "cache_creation_input_tokens" => 0u64,
    "cache_read_input_tokens" => 0u64};
    let sid = ag.cfg.sid.clone();
    ag.emit(o! {
        "type" => "assistant",
        "message" => o!{"id" => uuid(), "container" => crate::json::NULL, "model" => "<synthetic>", "role" => "assistant",
            "stop_details" => crate::json::NULL, "stop_reason" => "stop_sequence", "stop_sequence" => "",
            "type" => "message", "usage" => zero, "content" => a![o!{"type" => "text", "text" => &text}],
            "context_management" => crate::json::NULL},
        "parent_tool_use_id" => crate::json::NULL, "session_id" => &sid, "uuid" => uuid(), "error" => label,
    });
    ag.result_api_error(status, &text);
    Ok(None)
}

/// What the gateway answered to a `can_use_tool`.
enum Decision {
    Allow {
        updated_permissions: Option<Value>,
    },
    Deny {
        message: String,
        interrupt: bool,
    },
    /// Malformed answer; the tool fails with this text (real CLI: a ZodError).
    Invalid(String),
}

const ZOD_ERROR: &str = "Tool permission request failed: ZodError: [\n  {\n    \"code\": \"invalid_union\",\n    \"errors\": [\n      [\n        {\n          \"expected\": \"record\",\n          \"code\": \"invalid_type\",\n          \"path\": [\n            \"updatedInput\"\n          ],\n          \"message\": \"Invalid input: expected record, received undefined\"\n        }\n      ],\n      [\n        {\n          \"code\": \"invalid_value\",\n          \"values\": [\n            \"deny\"\n          ],\n          \"path\": [\n            \"behavior\"\n          ],\n          \"message\": \"Invalid input: expected \\\"deny\\\"\"\n        },\n        {\n          \"expected\": \"string\",\n          \"code\": \"invalid_type\",\n          \"path\": [\n            \"message\"\n          ],\n          \"message\": \"Invalid input: expected string, received undefined\"\n        }\n      ]\n    ],\n    \"path\": [],\n    \"message\": \"Invalid input\"\n  }\n]";

fn decide(resp: &Value) -> Decision {
    if resp["subtype"] == "error" {
        let e = resp["error"].as_str().unwrap_or("unknown error");
        return Decision::Invalid(format!("Tool permission request failed: Error: {e}"));
    }
    let r = &resp["response"];
    match r["behavior"].as_str() {
        Some("allow") if r["updatedInput"].is_object() => {
            Decision::Allow { updated_permissions: r.get("updatedPermissions").cloned() }
        }
        Some("deny") if r["message"].is_string() => Decision::Deny {
            message: r["message"].as_str().unwrap_or_default().to_string(),
            interrupt: r["interrupt"] == true,
        },
        _ => Decision::Invalid(ZOD_ERROR.to_string()),
    }
}

fn permission(ag: &mut Agent, tool_name: &str) -> R {
    let cwd = ag.cfg.cwd.clone();
    let (input, description) = match tool_name {
        "Bash" => (json!({"command": "ls", "description": "List files"}), "List files".to_string()),
        "Write" | "Edit" => (
            json!({"file_path": format!("{cwd}/mock_written.txt"), "content": "hello from mock\n"}),
            "mock_written.txt".into(),
        ),
        other => (json!({"mock": "input"}), format!("Use {other}")),
    };
    let mut m = ag.msg_begin();
    ag.text_block(&mut m, pieces(&format!("I will call the {tool_name} tool.")), Pace::Fast)?;
    let tid = ag.tool_block(&mut m, tool_name, &input);
    ag.msg_end(m, "tool_use");

    let mode = ag.cfg.perm_mode.as_str();
    let is_edit = matches!(tool_name, "Write" | "Edit" | "MultiEdit" | "NotebookEdit");
    let decision = if ag.cfg.disallowed.iter().any(|t| t == tool_name) {
        Decision::Invalid(format!("No such tool available: {tool_name}"))
    } else if mode == "bypassPermissions"
        || (mode == "acceptEdits" && is_edit)
        || ag.cfg.allowed.iter().any(|t| t == tool_name)
    {
        Decision::Allow { updated_permissions: None }
    } else if !ag.cfg.prompt_tool || mode == "dontAsk" {
        let what = if is_edit { format!("write to {cwd}/mock_written.txt") } else { format!("use {tool_name}") };
        Decision::Deny {
            message: format!("Claude requested permissions to {what}, but you haven't granted it yet."),
            interrupt: false,
        }
    } else {
        ask(ag, tool_name, &input, &description, &tid)?
    };

    let (content, is_error, tur, text) = match &decision {
        Decision::Allow { updated_permissions } => {
            for p in updated_permissions.as_ref().and_then(Value::as_array).into_iter().flatten() {
                if p["type"] == "setMode" && p["destination"] == "session" {
                    if let Some(mode) = p["mode"].as_str() {
                        ag.cfg.perm_mode = mode.to_string();
                        ag.system("status", o! {"status" => crate::json::NULL, "permissionMode" => mode});
                    }
                }
            }
            let out = if tool_name == "Bash" { "mock-ls-output".to_string() } else { "ok".to_string() };
            let tur = if tool_name == "Bash" {
                o! {"stdout" => &out, "stderr" => "", "interrupted" => false, "isImage" => false}
            } else {
                J::from(&input)
            };
            (out, false, tur, "allowed".to_string())
        }
        Decision::Deny { message, .. } => {
            (message.clone(), true, J::from(format!("Error: {message}")), format!("denied: {message}"))
        }
        Decision::Invalid(e) => {
            (e.clone(), true, J::from(format!("Error: {e}")), "permission error: invalid permission response".into())
        }
    };
    if is_error {
        ag.turn.denials.push(o! {"tool_name" => tool_name, "tool_use_id" => &tid, "tool_input" => &input});
    }
    ag.tool_result(&tid, &content, is_error, tur);
    if let Decision::Deny { interrupt: true, .. } = decision {
        return Err(Stop::Aborted { tool: true });
    }
    reply(ag, &text)
}

/// `permissions N [Tool]`: N `tool_use` blocks in one message, then N `can_use_tool`
/// requests written back to back (none waits for an answer), then every answer is
/// collected in any order. Replies `allowed=A denied=D invalid=I` followed by the
/// deny messages in request order (`; ` separated). An interrupt cancels the
/// unanswered requests (one `control_cancel_request` each) and ends the turn.
fn permissions(ag: &mut Agent, n: usize, tool_name: &str) -> R {
    let input = json!({"mock": "input"});
    let mut m = ag.msg_begin();
    ag.text_block(&mut m, pieces(&format!("I will call the {tool_name} tool {n} times.")), Pace::Fast)?;
    let tids: Vec<String> = (0..n).map(|_| ag.tool_block(&mut m, tool_name, &input)).collect();
    ag.msg_end(m, "tool_use");
    let mut rids = Vec::with_capacity(n);
    for tid in &tids {
        let rid = uuid();
        let req = o! {"subtype" => "can_use_tool", "tool_name" => tool_name, "display_name" => tool_name,
        "input" => &input, "description" => format!("Use {tool_name}"), "permission_suggestions" => a![],
        "tool_use_id" => tid};
        ag.emit(o! {"type" => "control_request", "request_id" => &rid, "request" => req});
        rids.push(rid);
    }
    let mut answers: Vec<Option<Decision>> = (0..n).map(|_| None).collect();
    while answers.iter().any(Option::is_none) {
        match ag.next(None) {
            Ctl::Interrupt(int_id) => {
                for (i, rid) in rids.iter().enumerate() {
                    if answers[i].is_none() {
                        ag.emit(o! {"type" => "control_cancel_request", "request_id" => rid});
                        journal_permission(ag, rid, tool_name, "cancelled", None);
                    }
                }
                ag.control_ok(&int_id, None);
                for tid in &tids {
                    ag.tool_result(tid, crate::agent::REJECTED, true, J::from("User rejected tool use"));
                }
                return Err(Stop::Aborted { tool: true });
            }
            Ctl::Response(v) => {
                let Some(i) = rids.iter().position(|r| v["response"]["request_id"] == r.as_str()) else { continue };
                if answers[i].is_some() {
                    continue;
                }
                let d = decide(&v["response"]);
                let (kind, msg) = match &d {
                    Decision::Allow { .. } => ("allow", None),
                    Decision::Deny { message, .. } => ("deny", Some(message.clone())),
                    Decision::Invalid(_) => ("invalid", None),
                };
                journal_permission(ag, &rids[i], tool_name, kind, msg.as_deref());
                answers[i] = Some(d);
            }
            Ctl::Timeout => {}
        }
    }
    let (mut allowed, mut denied, mut invalid, mut reasons) = (0, 0, 0, Vec::new());
    for (tid, d) in tids.iter().zip(answers.into_iter().flatten()) {
        match d {
            Decision::Allow { .. } => {
                allowed += 1;
                ag.tool_result(tid, "ok", false, J::from(&input));
            }
            Decision::Deny { message, .. } => {
                denied += 1;
                ag.tool_result(tid, &message, true, J::from(format!("Error: {message}")));
                reasons.push(message);
            }
            Decision::Invalid(e) => {
                invalid += 1;
                ag.tool_result(tid, &e, true, J::from(format!("Error: {e}")));
            }
        }
    }
    reply(ag, &format!("allowed={allowed} denied={denied} invalid={invalid} {}", reasons.join("; ")))
}

/// Sends `can_use_tool` and waits for the matching `control_response`.
/// An interrupt withdraws it (`control_cancel_request`) and ends the turn.
fn ask(ag: &mut Agent, tool_name: &str, input: &Value, description: &str, tid: &str) -> Result<Decision, Stop> {
    let rid = uuid();
    let mut suggestions = Vec::new();
    if tool_name == "Bash" {
        suggestions.push(o! {"type" => "addRules", "rules" => a![o!{"toolName" => "Bash", "ruleContent" => "ls"}],
        "behavior" => "allow", "destination" => "localSettings"});
        suggestions.push(o! {"type" => "addDirectories", "directories" => a![&ag.cfg.cwd], "destination" => "session"});
    }
    suggestions.push(o! {"type" => "setMode", "mode" => "acceptEdits", "destination" => "session"});
    let mut req = o! {"subtype" => "can_use_tool", "tool_name" => tool_name, "display_name" => tool_name,
    "input" => input, "description" => description, "permission_suggestions" => suggestions};
    if tool_name == "Bash" {
        req.push("blocked_path", ag.cfg.cwd.clone());
    }
    req.push("tool_use_id", tid);
    ag.emit(o! {"type" => "control_request", "request_id" => &rid, "request" => req});
    loop {
        match ag.next(None) {
            Ctl::Interrupt(int_id) => {
                ag.emit(o! {"type" => "control_cancel_request", "request_id" => &rid});
                journal_permission(ag, &rid, tool_name, "cancelled", None);
                ag.turn.denials.push(o! {"tool_name" => tool_name, "tool_use_id" => tid, "tool_input" => input});
                return Err(ag.tool_interrupted(&int_id, tid));
            }
            Ctl::Response(v) if v["response"]["request_id"] == rid.as_str() => {
                let d = decide(&v["response"]);
                let (kind, msg) = match &d {
                    Decision::Allow { .. } => ("allow", None),
                    Decision::Deny { message, .. } => ("deny", Some(message.as_str())),
                    Decision::Invalid(_) => ("invalid", None),
                };
                journal_permission(ag, &rid, tool_name, kind, msg);
                return Ok(d);
            }
            _ => {} // a reply for another request id is ignored, like the real CLI
        }
    }
}

fn journal_permission(ag: &mut Agent, rid: &str, tool_name: &str, decision: &str, message: Option<&str>) {
    ag.transcript.record(
        &o! {"kind" => "permission", "ts_ms" => now_ms(), "request_id" => rid, "tool_name" => tool_name,
        "decision" => decision, "message" => message},
        false,
    );
}
