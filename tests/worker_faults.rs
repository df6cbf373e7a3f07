//! Worker faults seen by a client (aep-v1.md §3.3, §8; workers.md §1.4;
//! operations.md §2.1; security.md §3, §5): crashes and their exit
//! classification, oversize output lines, a worker leaving on its own, and
//! what the worker process is given (environment, process group, fds).
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::faults::*;
use support::*;

const TURN: Duration = Duration::from_secs(15);

/// Run `input` as a turn that kills the worker; return its frames through
/// `state{terminated}`.
fn crashing_turn(c: &mut Client, input: &str) -> Vec<Value> {
    turn_until_state(c, input, TURN)
}

/// A worker crash mid-turn: `error{code}` + `done{success:false}` +
/// `state{terminated, worker_exit}`, in that order and nothing else after
/// `state{running}`; then a re-init resumes the agent's conversation.
fn crash_and_resume(input: &str, code: &str, check: impl Fn(&Value)) {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    let first = c.turn("remember the first prompt");
    assert_eq!(delta_text(&first), "echo: remember the first prompt");
    let pid = wait_worker_pid(&gw, &id);

    let frames = crashing_turn(&mut c, input);
    assert_eq!(
        shape(&frames),
        ["state:running", &format!("error:{code}"), "done:false", "state:terminated"],
        "crash turn frames: {frames:#?}"
    );
    assert!(delta_text(&frames).contains("about to crash"), "output before the crash is delivered");
    let err = of_type(&frames, "error")[0];
    check(&err["event"]["data"]["details"]);
    let term = find_state(&frames, "terminated").unwrap();
    assert_eq!(term["event"]["data"]["message"], "worker_exit");
    let seqs: Vec<u64> = frames.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "session events without gaps: {seqs:?}");
    assert!(!alive(pid), "the crashed worker is gone");
    assert!(processes_of_session(&id).is_empty(), "no process of the session survives its crash");

    // The same connection gets SESSION_TERMINATED for input; a re-init resumes.
    c.send("input", json!({"content": "too early"}));
    assert_eq!(err_code(&c.expect("error")), "SESSION_TERMINATED");
    drop(c);
    let (mut c2, ack) = resume(&gw, &id, None);
    assert_eq!(ack["event"]["data"]["resumed"], true);
    assert_eq!(ack["event"]["data"]["state"], "idle");
    let new_pid = wait_worker_pid(&gw, &id);
    assert_ne!(new_pid, pid, "a new worker process");
    let recall = c2.turn("recall");
    let text = delta_text(&recall);
    assert!(text.contains("'remember the first prompt'"), "the resumed worker continues the conversation: {text}");
    assert_eq!(of_type(&recall, "done")[0]["event"]["data"]["success"], true);
}

#[test]
fn crash_with_exit_code_is_worker_crash_and_resumable() {
    crash_and_resume("crash code 3", "WORKER_CRASH", |d| {
        assert_eq!(d["exit_code"], 3, "details: {d}");
        assert!(d["signal"].is_null(), "no signal for a plain exit: {d}");
    });
}

#[test]
fn crash_by_sigsegv_is_worker_crash_with_signal() {
    crash_and_resume("crash signal 11", "WORKER_CRASH", |d| assert_eq!(d["signal"], 11, "details: {d}"));
}

#[test]
fn sigkill_the_gateway_did_not_send_is_worker_oom() {
    crash_and_resume("crash signal 9", "WORKER_OOM", |d| assert_eq!(d["signal"], 9, "details: {d}"));
}

#[test]
fn oversize_line_is_dropped_and_the_session_survives() {
    let gw = Gateway::start_yaml("worker:\n  max_line_bytes: \"1MiB\"\n");
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    c.turn("warm up");
    let pid = wait_worker_pid(&gw, &id);

    let frames = turn_until_state(&mut c, "giant 2000000", TURN);
    let sh = shape(&frames);
    assert_eq!(sh.first().map(String::as_str), Some("state:running"), "{frames:#?}");
    assert_eq!(sh.last().map(String::as_str), Some("state:idle"), "{frames:#?}");
    assert_eq!(of_type(&frames, "error").iter().map(|e| err_code(e)).collect::<Vec<_>>(), ["WORKER_OUTPUT_LIMIT"]);
    assert_eq!(of_type(&frames, "done").len(), 1, "exactly one done: {sh:?}");
    let pos = |label: &str| sh.iter().position(|s| s == label || s.starts_with(label));
    assert!(pos("error:").unwrap() < pos("done:").unwrap(), "the error belongs to the turn: {sh:?}");
    let biggest = frames.iter().map(|v| v.to_string().len()).max().unwrap_or(0);
    assert!(biggest < 1 << 20, "the oversize line was not forwarded ({biggest} bytes)");
    // Nothing more of that turn straggles in.
    assert_silent(&mut c, Duration::from_millis(300), "after the turn's state{idle}");

    let next = c.turn("still there?");
    assert_eq!(delta_text(&next), "echo: still there?");
    assert_eq!(shape(&next), ["state:running", "done:true", "state:idle"]);
    assert_eq!(worker_pid(&gw, &id), Some(pid), "the same worker process served both turns");
}

/// workers.md §1.4 item 4, aep §8: every dropped line interrupts the turn,
/// which still ends with its single `done` — also when the dropped line was
/// the worker's own end-of-turn `result` (`stream 2000 1024` writes its 2 MB
/// text again in the `assistant` and `result` lines).
#[test]
fn oversize_end_of_turn_line_still_ends_the_turn() {
    let gw = Gateway::start_yaml("worker:\n  max_line_bytes: \"1MiB\"\n  kill_grace: \"2s\"\n");
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    let frames = turn_until_state(&mut c, "stream 2000 1024 0", Duration::from_secs(10));
    let sh = shape(&frames);
    assert!(of_type(&frames, "error").iter().all(|e| err_code(e) == "WORKER_OUTPUT_LIMIT"), "{sh:?}");
    assert_eq!(of_type(&frames, "done").len(), 1, "{sh:?}");
    let last = sh.last().cloned().unwrap_or_default();
    if last == "state:terminated" {
        drop(c);
        c = resume(&gw, &id, None).0;
    } else {
        assert_eq!(last, "state:idle");
    }
    assert_eq!(delta_text(&c.turn("next")), "echo: next");
}

#[test]
fn worker_exit_while_idle_is_reported_and_resumable() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    let pid = wait_worker_pid(&gw, &id);
    let frames = c.turn("exit");
    assert_eq!(delta_text(&frames), "bye");
    assert_eq!(shape(&frames), ["state:running", "done:true", "state:idle"]);

    // operations.md §2.1: idle → terminated, reason worker_exit.
    let after = c.until(TURN, |v| ev_type(v) == "state");
    assert_eq!(shape(&after), ["error:WORKER_CRASH", "state:terminated"], "{after:#?}");
    assert_eq!(after[0]["event"]["data"]["details"]["exit_code"], 0);
    assert_eq!(after[1]["event"]["data"]["message"], "worker_exit");
    assert!(!alive(pid));
    assert!(processes_of_session(&id).is_empty());

    drop(c);
    let (mut c2, ack) = resume(&gw, &id, None);
    assert_eq!(ack["event"]["data"]["resumed"], true);
    let recall = c2.turn("recall");
    assert_eq!(delta_text(&recall), "Earlier prompts: 'exit'");
}

/// Values planted in the gateway's environment that must not reach a worker.
const CANARIES: [(&str, &str); 3] = [
    ("HOTPLEX_SECRET_CANARY", "canary-c1-4b1d"),
    ("SOME_UNLISTED_VAR", "canary-c2-93ae"),
    ("LD_PRELOAD", "/nonexistent-canary.so"),
];

#[test]
fn worker_environment_and_process_are_isolated() {
    let mut env: Vec<(String, String)> = CANARIES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push(("ANTHROPIC_API_KEY".into(), "sk-test".into()));
    let gw = Gateway::start_with(Options { env, ..Options::default() });
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);

    let frames = c.turn("env");
    let text = delta_text(&frames);
    let wenv: serde_json::Map<String, Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("env reply is not JSON ({e}): {text}"));
    for (k, v) in CANARIES {
        assert!(!wenv.contains_key(k), "{k} leaked into the worker");
        assert!(!text.contains(v), "the value of {k} leaked into the worker");
    }
    assert_eq!(wenv["ANTHROPIC_API_KEY"], "sk-test", "the provider key is passed through");
    assert_eq!(wenv["HOTPLEX_SESSION_ID"], id.as_str());
    let home = wenv["HOME"].as_str().expect("HOME");
    assert_ne!(std::path::Path::new(home), gw.dir.path(), "not the gateway's HOME");
    let meta = std::fs::metadata(home).expect("HOME exists");
    use std::os::unix::fs::PermissionsExt;
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700, "private HOME");

    // The process while it waits in a turn.
    c.send("input", json!({"content": "hang"}));
    c.until(TURN, |v| is_state(v, "running"));
    let pid = wait_worker_pid(&gw, &id);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("worker cwd");
    assert_eq!(wenv["PWD"].as_str(), cwd.to_str(), "PWD is the work dir the worker runs in");
    assert!(cwd.starts_with(std::fs::canonicalize(gw.dir.path()).unwrap().join("work")), "cwd {cwd:?}");
    assert_eq!(pgid_of(pid), Some(pid), "the worker leads its own process group");
    assert_ne!(pgid_of(gw.pid()), Some(pid));
    assert_ne!(pgid_of(pid), pgid_of(gw.pid()), "not in the gateway's process group");
    assert_eq!(open_fds(pid), [0, 1, 2], "only stdio is inherited");

    c.send("control", json!({"action": "interrupt"}));
    let end = until_done_and_state(&mut c, TURN);
    assert_eq!(shape(&end).last().map(String::as_str), Some("state:idle"));
}
