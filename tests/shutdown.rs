//! Graceful shutdown (operations.md §2.4): SIGTERM sends `control.reconnect`
//! to every connection before closing it, lets a running turn finish within
//! `gateway.drain_timeout`, stops every worker and exits 0 within the bound.
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

#[test]
fn sigterm_notifies_clients_drains_the_turn_and_leaves_no_worker() {
    let mut gw = Gateway::start_yaml(
        "gateway:\n  drain_timeout: \"5s\"\n  reconnect_deadline: \"5s\"\n  shutdown_timeout: \"20s\"\n",
    );
    // An idle session and one with a running turn.
    let mut idle = gw.connect();
    let idle_id =
        idle.init(json!({"worker_type": "claude_code"}))["event"]["data"]["session_id"].as_str().unwrap().to_string();
    let mut busy = gw.connect();
    let busy_id =
        busy.init(json!({"worker_type": "claude_code"}))["event"]["data"]["session_id"].as_str().unwrap().to_string();
    busy.send("input", json!({"content": "slow 2"}));
    busy.until(WAIT, |v| ev_type(v) == "message.delta");
    assert!(!processes_of_session(&idle_id).is_empty() && !processes_of_session(&busy_id).is_empty());

    let t0 = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(gw.pid(), libc::SIGTERM) };

    // Both clients get the reconnect notice first.
    let n = idle.until(WAIT, |v| ev_type(v) == "control");
    let notice = &n.last().unwrap()["event"]["data"];
    assert_eq!(notice["action"], "reconnect");
    assert_eq!(notice["reason"], "server_maintenance");
    assert_eq!(notice["resume_session"], true);
    busy.until(WAIT, |v| ev_type(v) == "control" && v["event"]["data"]["action"] == "reconnect");
    // The running turn finishes normally (its events are logged for replay).
    let rest = busy.until(Duration::from_secs(10), |v| ev_type(v) == "done");
    assert_eq!(rest.last().unwrap()["event"]["data"]["success"], true);
    // New input after the notice is refused.
    busy.send("input", json!({"content": "one more"}));
    let e = busy.until(WAIT, |v| ev_type(v) == "error");
    assert_eq!(e.last().unwrap()["event"]["data"]["code"], "RECONNECT_REQUIRED");
    assert_eq!(busy.expect_close().0, 1001);
    assert_eq!(idle.expect_close().0, 1001);

    let status = gw.child_wait(Duration::from_secs(20)).expect("the gateway exits within the bound");
    assert_eq!(status.code(), Some(0), "exit 0");
    assert!(t0.elapsed() < Duration::from_secs(15), "took {:?}", t0.elapsed());
    assert!(eventually(Duration::from_secs(2), || processes_of_session(&idle_id).is_empty()
        && processes_of_session(&busy_id).is_empty()));
}
