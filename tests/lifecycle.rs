//! Session lifecycle seen from outside (aep-v1.md §6, operations.md §2.1,
//! workers.md §1.4, security.md §3): terminate and delete leave no process
//! behind — a worker that ignores SIGTERM and has escaped grandchildren
//! included — and many connect/init/close cycles leak neither fds nor
//! processes.
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::faults::*;
use support::*;

const TURN: Duration = Duration::from_secs(15);

/// Run `grandchild` and return (group child, setsid child) pids.
fn spawn_grandchildren(c: &mut Client) -> (i32, i32) {
    let frames = c.turn("grandchild");
    let text = delta_text(&frames);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let p1 = v["group_child"].as_i64().unwrap_or_else(|| panic!("grandchild reply: {text}")) as i32;
    let p2 = v["setsid_child"].as_i64().unwrap_or_else(|| panic!("grandchild reply: {text}")) as i32;
    (p1, p2)
}

/// A worker with a child in its group and an escaped (setsid) child.
struct Family {
    id: String,
    leader: i32,
    group_child: i32,
    setsid_child: i32,
}

fn family(gw: &Gateway, c: &mut Client, ignore_sigterm: bool) -> Family {
    let (_, id) = init_new(c);
    if ignore_sigterm {
        assert_eq!(delta_text(&c.turn("ignore-sigterm")), "SIGTERM is now ignored");
    }
    let (group_child, setsid_child) = spawn_grandchildren(c);
    let leader = wait_worker_pid(gw, &id);
    assert_eq!(pgid_of(group_child), Some(leader), "the group child is in the worker's group");
    assert_eq!(pgid_of(setsid_child), Some(setsid_child), "the setsid child left the worker's group");
    let mut all = processes_of_session(&id);
    all.sort_unstable();
    let mut want = vec![leader, group_child, setsid_child];
    want.sort_unstable();
    assert_eq!(all, want, "the session's processes before the stop");
    Family { id, leader, group_child, setsid_child }
}

/// Nothing of the family is left: no member of the worker's group, no
/// process with the session's id, neither grandchild.
fn assert_family_gone(f: &Family, when: &str) {
    assert_eq!(group_members(f.leader), Vec::<i32>::new(), "{when}: the worker's process group is empty");
    assert_eq!(processes_of_session(&f.id), Vec::<i32>::new(), "{when}: processes with the session id");
    for p in [f.leader, f.group_child, f.setsid_child] {
        assert!(!alive(p), "{when}: pid {p} is still alive");
    }
}

#[test]
fn terminate_kills_a_sigterm_ignoring_worker_and_its_escaped_children_after_kill_grace() {
    let gw = Gateway::start_yaml("worker:\n  kill_grace: \"1s\"\n");
    let mut c = gw.connect();
    let f = family(&gw, &mut c, true);
    // Mid-turn, so that closing its stdin does not end the worker either
    // (idle, it would exit on EOF before the grace runs out).
    c.send("input", json!({"content": "hang"}));
    c.until(TURN, |v| is_state(v, "running"));

    let t0 = Instant::now();
    c.send("control", json!({"action": "terminate"}));
    let frames = c.until(Duration::from_secs(5), |v| is_state(v, "terminated"));
    let took = t0.elapsed();
    assert_eq!(shape(&frames), ["error:SESSION_TERMINATED", "done:false", "state:terminated"], "{frames:#?}");
    assert_eq!(frames.last().unwrap()["event"]["data"]["message"], "client_terminate");
    assert!(took >= Duration::from_millis(900), "SIGKILL only after kill_grace (1s), took {took:?}");
    assert!(took <= Duration::from_secs(2), "within kill_grace + 1 s, took {took:?}");
    // aep §6: state{terminated} follows the reaping of the group.
    assert_family_gone(&f, "at state{terminated}");

    // Resumable afterwards, with a worker that answers again.
    drop(c);
    let (mut c2, ack) = support::faults::resume(&gw, &f.id, None);
    assert_eq!(ack["event"]["data"]["resumed"], true);
    assert_eq!(delta_text(&c2.turn("hi")), "echo: hi");
}

#[test]
fn terminate_of_a_normal_worker_leaves_no_process_and_is_idempotent() {
    let gw = Gateway::start_yaml("worker:\n  kill_grace: \"5s\"\n");
    let mut c = gw.connect();
    let f = family(&gw, &mut c, false);

    let t0 = Instant::now();
    c.send("control", json!({"action": "terminate"}));
    let frames = c.until(Duration::from_secs(5), |v| is_state(v, "terminated"));
    assert_eq!(shape(&frames), ["state:terminated"]);
    assert!(t0.elapsed() < Duration::from_secs(2), "a worker that obeys SIGTERM is not held for kill_grace");
    assert_family_gone(&f, "after terminate");

    // A second terminate: connection-local state{terminated}, seq 0, no error.
    c.send("control", json!({"action": "terminate"}));
    let again = c.recv();
    assert!(is_state(&again, "terminated"), "{again}");
    assert_eq!(again["seq"], 0);
}

#[test]
fn delete_leaves_no_process_and_forgets_the_session() {
    let gw = Gateway::start_yaml("worker:\n  kill_grace: \"5s\"\n");
    let mut c = gw.connect();
    let f = family(&gw, &mut c, false);

    c.send("control", json!({"action": "delete"}));
    let frames = c.until(Duration::from_secs(5), |v| is_state(v, "deleted"));
    assert_eq!(shape(&frames), ["state:deleted"]);
    assert_family_gone(&f, "after delete");
    assert_eq!(c.expect_close().0, 1000);

    let mut c2 = gw.connect();
    c2.send("init", json!({"worker_type": "claude_code", "session_id": f.id}));
    let e = c2.recv();
    assert_eq!(err_code(&e), "SESSION_NOT_FOUND", "{e}");
}

#[test]
fn delete_while_running_ends_the_turn_then_leaves_no_process() {
    let gw = Gateway::start_yaml("worker:\n  kill_grace: \"5s\"\n");
    let mut c = gw.connect();
    let f = family(&gw, &mut c, false);
    c.send("input", json!({"content": "hang"}));
    c.until(TURN, |v| is_state(v, "running"));
    c.send("control", json!({"action": "delete"}));
    let frames = c.until(Duration::from_secs(5), |v| is_state(v, "deleted"));
    assert_eq!(shape(&frames), ["error:SESSION_TERMINATED", "done:false", "state:deleted"], "{frames:#?}");
    assert_family_gone(&f, "after delete");
    assert_eq!(c.expect_close().0, 1000);
}

// ---- many short sessions ------------------------------------------------

/// Close a client: even cycles with a WebSocket close handshake, odd ones
/// by dropping the socket.
fn hang_up(mut c: Client, graceful: bool) {
    if graceful {
        let _ = c.ws.close(None);
        loop {
            match c.recv_within(Duration::from_secs(5)) {
                Ok(_) => continue,
                Err(RecvError::Timeout) => panic!("no close reply from the gateway"),
                Err(_) => break,
            }
        }
    }
}

/// Gateway fds and children once it holds no client connection.
fn settled_baseline(gw: &Gateway) -> (usize, usize) {
    assert!(eventually(Duration::from_secs(10), || tcp_connections(gw.pid()) == 0), "connections linger");
    (fd_count(gw.pid()), children_of(gw.pid()).len())
}

/// Gateway fds and children once the churn settled back to `base`.
fn settles_to(gw: &Gateway, base: (usize, usize)) -> bool {
    eventually(Duration::from_secs(10), || (fd_count(gw.pid()), children_of(gw.pid()).len()) == base)
}

// A limit of 4 live sessions per owner: enough for correct churn, and a
// leaked session slot would end the loop with GATEWAY_OVERLOAD.
const CHURN_YAML: &str = "sessions:\n  max_per_owner: 4\n  max_total: 8\n";

#[test]
fn churn_of_new_sessions_deleted_each_time_leaks_nothing() {
    let gw = Gateway::start_yaml(CHURN_YAML);
    let base = settled_baseline(&gw);
    assert_eq!(base.1, 0, "no worker before the first session");
    let t0 = Instant::now();
    for i in 0..250 {
        let mut c = gw.connect();
        let (_, id) = init_new(&mut c);
        c.send("control", json!({"action": "delete"}));
        c.until(Duration::from_secs(10), |v| is_state(v, "deleted"));
        assert_eq!(c.expect_close().0, 1000, "cycle {i}");
        assert!(processes_of_session(&id).is_empty(), "cycle {i}: the deleted session's worker is gone");
        hang_up(c, i % 2 == 0);
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "250 cycles took {:?}", t0.elapsed());
    assert!(
        settles_to(&gw, base),
        "fds/children before {base:?}, after {:?}",
        (fd_count(gw.pid()), children_of(gw.pid()).len())
    );
}

#[test]
fn churn_of_connections_on_one_client_key_leaks_nothing() {
    let gw = Gateway::start_yaml(CHURN_YAML);
    let mut first = gw.connect();
    let ack = first.init_key("churn-key");
    let id = sid(&ack);
    assert_eq!(delta_text(&first.turn("hello")), "echo: hello");
    let pid = wait_worker_pid(&gw, &id);
    hang_up(first, true);
    let base = settled_baseline(&gw);
    assert_eq!(base.1, 1, "one worker");

    let t0 = Instant::now();
    for i in 0..250 {
        let mut c = gw.connect();
        let ack = c.init_key("churn-key");
        assert_eq!(sid(&ack), id, "cycle {i}");
        assert_eq!(ack["event"]["data"]["resumed"], true);
        assert_eq!(ack["event"]["data"]["state"], "idle");
        hang_up(c, i % 2 == 0);
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "250 cycles took {:?}", t0.elapsed());
    assert!(
        settles_to(&gw, base),
        "fds/children before {base:?}, after {:?}",
        (fd_count(gw.pid()), children_of(gw.pid()).len())
    );
    assert_eq!(worker_pid(&gw, &id), Some(pid), "one worker served every attach");
    let mut c = gw.connect();
    c.init_key("churn-key");
    assert_eq!(delta_text(&c.turn("still alive")), "echo: still alive");
}

// ---- timers (operations.md §2.2) -----------------------------------------

/// Send `input`; collect through `done` and the next `state`, noting when
/// the first frame matching `mark` arrived (relative to the send).
fn timed_turn(c: &mut Client, input: &str, mark: impl Fn(&Value) -> bool) -> (Vec<Value>, Option<Duration>) {
    let t0 = Instant::now();
    c.send("input", json!({ "content": input }));
    let mut at = None;
    let mut done = false;
    let frames = c.until(Duration::from_secs(20), |v| {
        if at.is_none() && mark(v) {
            at = Some(t0.elapsed());
        }
        let stop = done && ev_type(v) == "state";
        done |= ev_type(v) == "done";
        stop
    });
    (frames, at)
}

#[test]
fn turn_timeout_ends_the_turn_and_keeps_the_worker() {
    let gw = Gateway::start_yaml("worker:\n  turn_timeout: \"2s\"\n  stall_timeout: \"0s\"\n  kill_grace: \"3s\"\n");
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    c.turn("warm up");
    let pid = wait_worker_pid(&gw, &id);

    let (frames, at) = timed_turn(&mut c, "hang", |v| err_code(v) == "WORKER_TIMEOUT");
    assert_eq!(shape(&frames), ["state:running", "error:WORKER_TIMEOUT", "done:false", "state:idle"], "{frames:#?}");
    let at = at.unwrap();
    assert!(at >= Duration::from_millis(1900) && at < Duration::from_secs(3), "WORKER_TIMEOUT after {at:?}");
    // The mock honours the interrupt: same worker, next turn fine.
    assert_eq!(worker_pid(&gw, &id), Some(pid));
    assert_eq!(shape(&c.turn("again")), ["state:running", "done:true", "state:idle"]);
}

#[test]
fn stall_timeout_kills_a_silent_worker() {
    let gw = Gateway::start_yaml("worker:\n  stall_timeout: \"1s\"\n  turn_timeout: \"60s\"\n  kill_grace: \"5s\"\n");
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    let pid = wait_worker_pid(&gw, &id);

    let (frames, at) = timed_turn(&mut c, "hang", |v| err_code(v) == "EXECUTION_TIMEOUT");
    assert_eq!(
        shape(&frames),
        ["state:running", "error:EXECUTION_TIMEOUT", "done:false", "state:terminated"],
        "{frames:#?}"
    );
    let at = at.unwrap();
    assert!(at >= Duration::from_millis(900) && at < Duration::from_millis(2500), "EXECUTION_TIMEOUT after {at:?}");
    assert_eq!(frames.last().unwrap()["event"]["data"]["message"], "stall_timeout");
    assert!(!alive(pid), "the stalled worker was killed");
    assert!(processes_of_session(&id).is_empty());
}

/// Wait for the `permission_request` of a turn; returns its id.
fn permission_id(c: &mut Client) -> String {
    let req = c.expect("permission_request");
    req["event"]["data"]["id"].as_str().expect("permission id").to_string()
}

#[test]
fn stall_timer_is_paused_while_a_permission_request_waits() {
    let gw = Gateway::start_yaml("worker:\n  stall_timeout: \"1s\"\n  permission_timeout: \"60s\"\n");
    let mut c = gw.connect();
    init_new(&mut c);
    c.send("input", json!({"content": "permission"}));
    let id = permission_id(&mut c);
    assert_silent(&mut c, Duration::from_secs(2), "no EXECUTION_TIMEOUT while the user decides");
    c.send("permission_response", json!({"id": id, "allowed": true}));
    let frames = until_done_and_state(&mut c, Duration::from_secs(10));
    assert_eq!(shape(&frames), ["done:true", "state:idle"], "{frames:#?}");
    assert!(delta_text(&frames).contains("allowed"), "{}", delta_text(&frames));
}

#[test]
fn unanswered_permission_is_denied_after_permission_timeout() {
    let gw = Gateway::start_yaml("worker:\n  permission_timeout: \"1s\"\n");
    let mut c = gw.connect();
    init_new(&mut c);
    c.send("input", json!({"content": "permission"}));
    let id = permission_id(&mut c);
    let asked = Instant::now();
    let frames = until_done_and_state(&mut c, Duration::from_secs(10));
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(900), "denied after {waited:?}, before the timeout");
    assert!(waited < Duration::from_secs(3), "denied after {waited:?}");
    assert_eq!(delta_text(&frames), "denied: timeout", "the worker got a deny with reason timeout");
    assert_eq!(shape(&frames).last().map(String::as_str), Some("state:idle"));
    assert_eq!(of_type(&frames, "done").len(), 1);

    c.send("permission_response", json!({"id": id, "allowed": true}));
    let e = c.recv();
    assert_eq!(err_code(&e), "INVALID_MESSAGE", "a late answer: {e}");
    assert_eq!(e["seq"], 0, "connection-local");
}

// ---- control (aep-v1.md §6) ----------------------------------------------

#[test]
fn interrupt_ends_a_running_turn_quickly_without_error() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    let pid = wait_worker_pid(&gw, &id);
    c.send("input", json!({"content": "slow 5"}));
    c.expect("message.delta");
    let t0 = Instant::now();
    c.send("control", json!({"action": "interrupt"}));
    let frames = until_done_and_state(&mut c, Duration::from_secs(10));
    let took = t0.elapsed();
    assert_eq!(shape(&frames), ["done:false", "state:idle"], "{frames:#?}");
    assert!(took < Duration::from_secs(1), "interrupt took {took:?} (the turn would take 5 s)");
    assert!(!delta_text(&frames).contains("slow-10"), "the turn did not run to its end");
    assert_eq!(worker_pid(&gw, &id), Some(pid), "the worker survives an interrupt");
    assert_eq!(delta_text(&c.turn("next")), "echo: next");
}

#[test]
fn interrupt_while_idle_is_a_no_op() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    init_new(&mut c);
    c.turn("first");
    c.send("control", json!({"action": "interrupt"}));
    assert_silent(&mut c, Duration::from_millis(500), "interrupt while idle");
    c.send("ping", json!({}));
    let pong = c.recv();
    assert_eq!(ev_type(&pong), "pong");
    assert_eq!(pong["event"]["data"]["state"], "idle");
    let frames = c.turn("second");
    assert_eq!(shape(&frames), ["state:running", "done:true", "state:idle"]);
    assert_eq!(delta_text(&frames), "echo: second");
}

#[test]
fn interrupt_with_a_pending_permission_cancels_it_and_ends_the_turn() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    init_new(&mut c);
    c.send("input", json!({"content": "permission"}));
    let id = permission_id(&mut c);
    c.send("control", json!({"action": "interrupt"}));
    let frames = until_done_and_state(&mut c, Duration::from_secs(10));
    assert_eq!(shape(&frames), ["done:false", "state:idle"], "{frames:#?}");
    assert!(!delta_text(&frames).contains("allowed"), "the tool did not run");
    c.send("permission_response", json!({"id": id, "allowed": true}));
    assert_eq!(err_code(&c.recv()), "INVALID_MESSAGE", "the request is no longer pending");
    assert_eq!(delta_text(&c.turn("after")), "echo: after");
}

#[test]
fn permission_round_trips_allow_and_deny() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    init_new(&mut c);

    c.send("input", json!({"content": "permission"}));
    let req = c.expect("permission_request");
    assert_eq!(req["event"]["data"]["tool_name"], "Write");
    let id = req["event"]["data"]["id"].as_str().unwrap().to_string();
    c.send("permission_response", json!({"id": id, "allowed": true}));
    let frames = until_done_and_state(&mut c, Duration::from_secs(10));
    assert_eq!(shape(&frames), ["done:true", "state:idle"]);
    assert!(delta_text(&frames).ends_with("allowed"), "{}", delta_text(&frames));
    let results = of_type(&frames, "tool_result");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["event"]["data"]["is_error"], false);

    c.send("input", json!({"content": "permission"}));
    let id = permission_id(&mut c);
    c.send("permission_response", json!({"id": id, "allowed": false, "reason": "not in this repo"}));
    let frames = until_done_and_state(&mut c, Duration::from_secs(10));
    assert_eq!(shape(&frames), ["done:true", "state:idle"]);
    assert!(delta_text(&frames).contains("denied: not in this repo"), "{}", delta_text(&frames));
    let results = of_type(&frames, "tool_result");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["event"]["data"]["is_error"], true);

    // An answer for an id that was never asked.
    c.send("permission_response", json!({"id": "perm-never-asked", "allowed": true}));
    assert_eq!(err_code(&c.recv()), "INVALID_MESSAGE");
}

#[test]
fn reset_starts_a_new_worker_without_the_old_context() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let (_, id) = init_new(&mut c);
    c.turn("alpha");
    assert_eq!(delta_text(&c.turn("recall")), "Earlier prompts: 'alpha'", "context kept without reset");
    let pid = wait_worker_pid(&gw, &id);

    c.send("control", json!({"action": "reset"}));
    let frames = c.until(Duration::from_secs(10), |v| is_state(v, "idle"));
    assert_eq!(shape(&frames), ["state:idle"], "{frames:#?}");
    assert_eq!(frames[0]["event"]["data"]["message"], "context_reset");
    assert!(!alive(pid), "the old worker is gone");
    let new_pid = wait_worker_pid(&gw, &id);
    assert_ne!(new_pid, pid, "a new worker process");
    assert_eq!(delta_text(&c.turn("recall")), "Earlier prompts: (none)", "the old context is gone");
}

#[test]
fn reset_while_running_ends_the_turn_first() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    init_new(&mut c);
    c.send("input", json!({"content": "hang"}));
    c.until(TURN, |v| is_state(v, "running"));
    c.send("control", json!({"action": "reset"}));
    let frames = c.until(Duration::from_secs(10), |v| is_state(v, "idle"));
    assert_eq!(shape(&frames), ["done:false", "state:idle"], "{frames:#?}");
    assert_eq!(frames.last().unwrap()["event"]["data"]["message"], "context_reset");
    assert_eq!(delta_text(&c.turn("recall")), "Earlier prompts: (none)");
}
