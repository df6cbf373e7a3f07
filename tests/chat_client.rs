//! `hotplex-chat` against a real gateway with the mock agent.
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stdout lines as envelopes (`--json` mode).
    fn frames(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.stderr)))
            .collect()
    }
}

/// Run `hotplex-chat ARGS` with `stdin` piped in, without a controlling
/// terminal (so a permission prompt cannot reach a tty), within a deadline.
fn chat(args: &[&str], stdin: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotplex-chat"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setsid(2) is async-signal-safe; it detaches the child from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn hotplex-chat");
    let mut input = child.stdin.take().expect("stdin");
    // the client may exit before reading (connection or init failure)
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = match wait_child(&mut child, Duration::from_secs(30)) {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hotplex-chat did not exit; stderr: {}", t_err.join().unwrap_or_default());
        }
    };
    Run { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }
}

fn of_type<'a>(frames: &'a [Value], ty: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| ev_type(f) == ty).collect()
}

#[test]
fn two_piped_prompts_two_turns_then_exit_zero() {
    let gw = Gateway::start();
    let url = gw.url();
    let run = chat(&["--url", &url, "--json"], "hello world\nsecond prompt\n");
    assert!(run.status.success(), "exit {:?}; stderr: {}", run.status, run.stderr);
    let frames = run.frames();
    assert_eq!(ev_type(&frames[0]), "init_ack", "{}", run.stdout);
    let text = delta_text(&frames);
    assert!(text.contains("echo: hello world"), "{text}");
    assert!(text.contains("echo: second prompt"), "{text}");
    let done = of_type(&frames, "done");
    assert_eq!(done.len(), 2, "{}", run.stdout);
    assert!(done.iter().all(|d| d["event"]["data"]["success"] == true));
    // the second prompt was queued, not rejected as busy
    assert!(of_type(&frames, "error").is_empty(), "{}", run.stdout);
}

#[test]
fn permission_is_auto_allowed_with_yes() {
    let gw = Gateway::start();
    let url = gw.url();
    let run = chat(&["--url", &url, "--json", "--yes"], "permission\n");
    assert!(run.status.success(), "exit {:?}; stderr: {}", run.status, run.stderr);
    let frames = run.frames();
    let req = of_type(&frames, "permission_request");
    assert_eq!(req.len(), 1, "{}", run.stdout);
    assert_eq!(req[0]["event"]["data"]["tool_name"], "Write");
    let results = of_type(&frames, "tool_result");
    assert_eq!(results.len(), 1, "{}", run.stdout);
    assert_eq!(results[0]["event"]["data"]["is_error"], false, "{}", run.stdout);
    assert!(delta_text(&frames).contains("allowed"), "{}", run.stdout);
    assert!(!delta_text(&frames).contains("denied"), "{}", run.stdout);
    assert_eq!(of_type(&frames, "done").len(), 1);
}

#[test]
fn permission_is_denied_without_a_terminal() {
    let gw = Gateway::start();
    let url = gw.url();
    let run = chat(&["--url", &url], "permission\n");
    assert!(run.status.success(), "exit {:?}; stderr: {}", run.status, run.stderr);
    assert!(run.stdout.contains("? Write asks for permission"), "{}", run.stdout);
    assert!(run.stdout.contains("no terminal to ask"), "{}", run.stdout);
    assert!(run.stdout.contains("denied:"), "{}", run.stdout);
    assert!(run.stdout.contains("✓ done"), "{}", run.stdout);
}

#[test]
fn human_output_streams_text_tools_and_a_summary() {
    let gw = Gateway::start();
    let url = gw.url();
    let run = chat(&["--url", &url, "--session", "human"], "tool\n/ping\n");
    assert!(run.status.success(), "exit {:?}; stderr: {}", run.status, run.stderr);
    let out = &run.stdout;
    assert!(out.starts_with("● session "), "{out}");
    assert!(out.contains("· new · claude_code"), "{out}");
    assert!(out.contains("I will call the Bash tool.\n"), "{out}");
    assert!(out.contains("⚙ Bash {command: \"echo mock\""), "{out}");
    assert!(out.contains("→ mock\n"), "{out}");
    assert!(out.contains("Tool finished.\n"), "{out}");
    assert!(out.contains("✓ done · "), "{out}");
    assert!(out.contains("· pong (state idle)"), "{out}");
    // the streamed text is not printed a second time from the complete `message`
    assert_eq!(out.matches("Tool finished.").count(), 1, "{out}");

    // the same key resumes the session
    let again = chat(&["--url", &url, "--session", "human"], "");
    assert!(again.status.success(), "stderr: {}", again.stderr);
    assert!(again.stdout.contains("· resumed ·"), "{}", again.stdout);
}

#[test]
fn init_error_and_connection_failure_exit_nonzero() {
    let gw = Gateway::start();
    let url = gw.url();
    let run = chat(&["--url", &url, "--worker", "nope"], "hello\n");
    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("init failed: [CONFIG_INVALID]"), "{}", run.stderr);

    let run = chat(&["--url", &url, "--session", "never-created", "--observe"], "");
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("[SESSION_NOT_FOUND]"), "{}", run.stderr);

    drop(gw);
    let run = chat(&["--url", &url], "hello\n");
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);

    let run = chat(&["--last-seq", "x"], "");
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("--last-seq expects a non-negative integer"), "{}", run.stderr);
}

#[test]
fn server_close_is_reported_with_code_and_reason() {
    let mut gw = Gateway::start();
    let url = gw.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotplex-chat"))
        .args(["--url", &url, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hotplex-chat");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(b"hang\n").expect("write stdin");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // the turn is running (stdin stays open): now stop the gateway
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(l) if l.contains(r#""state":"running""#) => break,
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                panic!("no running turn: {e}");
            }
        }
    }
    gw.signal_and_wait(libc::SIGTERM, Duration::from_secs(20));
    let st = wait_child(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("hotplex-chat did not exit after the gateway closed");
    });
    drop(input);
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert_eq!(st.code(), Some(1), "stderr: {err}");
    assert!(err.contains("the gateway closed the connection: code 1001"), "{err}");
}
