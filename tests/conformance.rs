//! AEP v1 conformance against the real binary (aep-v1.md §9 vectors 2–8,
//! 10, 11, 13, 14), plus the envelope rules of §2/§5.2 that every frame
//! must follow. Validation order, init rules and heartbeat live in
//! `tests/validation.rs`; HTTP upgrade rules in `tests/http_upgrade.rs`;
//! the malformed-frame fuzz in `tests/malformed_frames.rs`.
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Every text delta of `slow S` (mock agent script table).
const SLOW_TEXT: &str = "slow-01 slow-02 slow-03 slow-04 slow-05 slow-06 slow-07 slow-08 slow-09 slow-10";

/// Types that carry `priority:"control"` (aep-v1.md §2); every other type omits it.
const CONTROL_PRIORITY: [&str; 5] = ["control", "error", "done", "pong", "init_ack"];

/// Envelope rules every server frame follows (aep-v1.md §2, §5.2).
fn check_envelope(v: &Value) {
    assert_eq!(v["version"], "aep/v1", "{v}");
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id: {v}"));
    let uuid = id.strip_prefix("evt_").unwrap_or_else(|| panic!("id without evt_ prefix: {v}"));
    assert!(is_uuid(uuid) && uuid.as_bytes()[14] == b'4', "id is not evt_<uuid v4>: {v}");
    assert!(v["seq"].is_u64(), "seq: {v}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let ts = v["timestamp"].as_u64().unwrap_or_else(|| panic!("timestamp: {v}"));
    assert!(ts.abs_diff(now_ms) < 60_000, "timestamp is Unix ms at creation ({ts} vs now {now_ms}): {v}");
    assert!(v["session_id"].is_string(), "session_id: {v}");
    assert!(v["event"]["data"].is_object(), "data: {v}");
    let ty = ev_type(v);
    if CONTROL_PRIORITY.contains(&ty) {
        assert_eq!(v["priority"], "control", "{v}");
    } else {
        assert!(v.get("priority").is_none() || v["priority"] == "data", "data frames omit priority: {v}");
    }
    match ty {
        "init_ack" | "pong" => assert_eq!(v["seq"], 0, "connection-local: {v}"),
        "state" | "message.start" | "message.delta" | "message.end" | "message" | "reasoning" | "tool_call"
        | "tool_result" | "step" | "permission_request" | "done"
            // a repeated state{terminated} is the one connection-local state
            if !is_state(v, "terminated") =>
        {
            assert!(v["seq"].as_u64() >= Some(1), "session event: {v}");
        }
        _ => {}
    }
}

fn check_all(frames: &[Value]) {
    frames.iter().for_each(check_envelope);
}

/// Lowercase hyphenated UUID.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().expect("seq")
}

/// Session events (seq ≥ 1) of a frame list.
fn session_events(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|v| seq(v) > 0).collect()
}

/// seq strictly increases; a gap is allowed only where the later frame is a
/// coalesced `message.delta` (aep-v1.md §5.2). `prev` is the seq before the first.
fn assert_seq_order(prev: u64, frames: &[&Value]) {
    let mut last = prev;
    for v in frames {
        let s = seq(v);
        assert!(s > last, "seq not increasing ({last} then {s}): {v}");
        if s != last + 1 {
            assert_eq!(ev_type(v), "message.delta", "gap {last}→{s} not explained by coalescing: {v}");
        }
        last = s;
    }
}

fn count(frames: &[Value], ty: &str) -> usize {
    frames.iter().filter(|v| ev_type(v) == ty).count()
}

fn pos(frames: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    frames.iter().position(pred).unwrap_or_else(|| panic!("frame not found in {frames:#?}"))
}

/// Vector 2: `init_ack` is the first frame, connection-local, and the next
/// session event has seq ≥ 1. Also pins the `init_ack` shape (§3.2).
#[test]
fn v2_init_ack_is_first_and_complete() {
    let gw = Gateway::start_yaml("gateway:\n  max_message_bytes: \"768KiB\"\n");
    let mut c = gw.connect();
    c.send("init", json!({"worker_type": "claude_code"}));
    let ack = c.recv();
    assert_eq!(ev_type(&ack), "init_ack", "{ack}");
    assert_eq!(ack["seq"], 0);
    assert_eq!(ack["priority"], "control");
    let d = &ack["event"]["data"];
    let sid = d["session_id"].as_str().expect("session_id");
    assert!(is_uuid(sid), "server ids are lowercase UUIDs without prefix: {sid}");
    assert_eq!(ack["session_id"], sid);
    assert_eq!(d["state"], "idle");
    assert_eq!(d["resumed"], false);
    assert_eq!(d["last_seq"], 0);
    let caps = &d["server_caps"];
    assert_eq!(caps["protocol_version"], "aep/v1");
    assert_eq!(caps["worker_type"], "claude_code");
    for k in [
        "supports_resume",
        "supports_delta",
        "supports_tool_call",
        "supports_ping",
        "supports_permissions",
        "supports_interrupt",
    ] {
        assert!(caps[k].is_boolean(), "server_caps.{k} must be a bool: {caps}");
    }
    assert_eq!(caps["supports_ping"], true);
    assert_eq!(caps["max_frame_size"], 768 * 1024, "max_frame_size follows gateway.max_message_bytes");
    assert_eq!(caps["modalities"], json!(["text", "code"]));
    let events: Vec<&str> = caps["events"].as_array().expect("events").iter().filter_map(|e| e.as_str()).collect();
    let all_s2c = [
        "init_ack",
        "state",
        "message.start",
        "message.delta",
        "message.end",
        "message",
        "reasoning",
        "tool_call",
        "tool_result",
        "step",
        "permission_request",
        "done",
        "error",
        "control",
        "pong",
        "raw",
    ];
    assert_eq!(events.len(), events.iter().collect::<HashSet<_>>().len(), "duplicates in {events:?}");
    for e in &events {
        assert!(all_s2c.contains(e), "server_caps.events lists a non-S→C type {e}");
    }
    for e in ["init_ack", "state", "message.delta", "message", "done", "error", "pong", "control", "tool_call"] {
        assert!(events.contains(&e), "server_caps.events lacks {e}: {events:?}");
    }

    // The next session event has seq ≥ 1; every type seen is announced.
    let frames = c.turn("all-events");
    assert!(is_state(&frames[0], "running") && seq(&frames[0]) >= 1, "{:#?}", frames[0]);
    c.send("ping", json!({}));
    c.expect("pong");
    for v in &c.seen {
        assert!(events.contains(&ev_type(v)), "{} emitted but not in server_caps.events", ev_type(v));
    }
    check_all(&c.seen);
}

/// Vector 3: a first frame other than `init` → PROTOCOL_ERROR, close 1008.
#[test]
fn v3_first_frame_input_is_a_protocol_error() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    c.send("input", json!({"content": "hi"}));
    let e = c.expect_error("PROTOCOL_ERROR");
    check_envelope(&e);
    assert_eq!(c.expect_close_only().0, 1008);
}

/// Vector 4: `{}` and `hello` → INVALID_MESSAGE, close 1008.
#[test]
fn v4_first_frame_not_an_envelope() {
    let gw = Gateway::start();
    for text in ["{}", "hello"] {
        let mut c = gw.connect();
        c.send_text(text);
        let e = c.expect_error("INVALID_MESSAGE");
        check_envelope(&e);
        assert_eq!(c.expect_close_only().0, 1008, "after {text}");
    }
}

/// Vector 5: envelope version `aep/v2` → VERSION_MISMATCH with
/// `details.max_supported`, close 1008 (before and after init).
#[test]
fn v5_version_mismatch() {
    let gw = Gateway::start();
    let v2 =
        json!({"version": "aep/v2", "id": "c-v2", "event": {"type": "init", "data": {"worker_type": "claude_code"}}});
    let mut c = gw.connect();
    c.send_text(&v2.to_string());
    let e = c.expect_error("VERSION_MISMATCH");
    assert_eq!(e["event"]["data"]["details"]["max_supported"], "aep/v1");
    assert_eq!(e["event"]["data"]["event_id"], "c-v2");
    assert_eq!(c.expect_close_only().0, 1008);

    // fatal after init too (aep-v1.md §8)
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code"}));
    c.send_text(&json!({"version": "aep/v2", "event": {"type": "ping", "data": {}}}).to_string());
    let e = c.expect_error("VERSION_MISMATCH");
    assert_eq!(e["event"]["data"]["details"]["max_supported"], "aep/v1");
    assert_eq!(c.expect_close_only().0, 1008);
}

/// Vector 6: `input` while running → SESSION_BUSY (connection-local, not
/// queued); the running turn still ends with exactly one `done`.
#[test]
fn v6_input_while_running_is_busy() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code"}));
    c.send("input", json!({"content": "slow 2"}));
    c.until(WAIT, |v| is_state(v, "running"));
    c.send_text(
        &json!({"version": "aep/v1", "id": "busy-1", "event": {"type": "input", "data": {"content": "second"}}})
            .to_string(),
    );
    let mut done = false;
    let frames = c.until(WAIT, |v| {
        done |= ev_type(v) == "done";
        done && is_state(v, "idle")
    });
    let busy: Vec<&Value> = frames.iter().filter(|v| ev_type(v) == "error").collect();
    assert_eq!(busy.len(), 1, "{frames:#?}");
    assert_eq!(busy[0]["event"]["data"]["code"], "SESSION_BUSY");
    assert_eq!(busy[0]["event"]["data"]["event_id"], "busy-1");
    assert_eq!(busy[0]["seq"], 0);
    assert_eq!(count(&frames, "done"), 1);
    assert_eq!(delta_text(&c.seen), SLOW_TEXT, "the busy input did not leak into the running turn");
    // Not queued: no second turn starts.
    c.expect_silence(Duration::from_millis(500));
    check_all(&c.seen);
}

/// Vector 7: several turns — one `done` per input, `done` before the
/// following `state{idle}`, seq strictly increasing across the session.
#[test]
fn v7_turns_have_one_done_and_increasing_seq() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code"}));
    for input in ["first turn", "tool", "say third", "stream 20"] {
        let frames = c.turn(input);
        assert!(is_state(&frames[0], "running"), "a turn starts with state{{running}}: {:#?}", frames[0]);
        assert_eq!(count(&frames, "done"), 1, "{input}: {frames:#?}");
        let done = pos(&frames, |v| ev_type(v) == "done");
        assert!(is_state(frames.last().expect("frames"), "idle"));
        assert_eq!(done + 1, frames.len() - 1, "{input}: done is followed directly by state{{idle}}");
        assert_eq!(frames[done]["event"]["data"]["success"], true, "{input}");
    }
    assert_eq!(delta_text(&c.seen[..]).matches("echo: first turn").count(), 1);
    let events = session_events(&c.seen);
    assert_seq_order(0, &events);
    check_all(&c.seen);
}

/// Vector 8: disconnect mid-turn, reconnect with `last_seq` → exactly the
/// rest of the turn (no duplicate, no gap) through `done`.
#[test]
fn v8_resume_mid_turn_with_last_seq() {
    let gw = Gateway::start();
    let mut a = gw.connect();
    let ack = a.init(json!({"worker_type": "claude_code", "session_id": "resume-me"}));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("sid").to_owned();
    a.send("input", json!({"content": "slow 2"}));
    let mut deltas = 0;
    let first = a.until(WAIT, |v| {
        deltas += usize::from(ev_type(v) == "message.delta");
        deltas == 3
    });
    let last_seq = seq(first.last().expect("frames"));
    drop(a); // no close frame: the connection just vanishes

    let mut b = gw.connect();
    b.send("init", json!({"worker_type": "claude_code", "session_id": sid, "last_seq": last_seq}));
    let ack = b.recv();
    assert_eq!(ev_type(&ack), "init_ack", "{ack}");
    assert_eq!(ack["event"]["data"]["resumed"], true);
    assert_eq!(ack["event"]["data"]["state"], "running");
    assert!(ack["event"]["data"]["last_seq"].as_u64() >= Some(last_seq));
    let mut done = false;
    let rest = b.until(WAIT, |v| {
        done |= ev_type(v) == "done";
        done && is_state(v, "idle")
    });
    let rest_events = session_events(&rest);
    assert_seq_order(last_seq, &rest_events);
    assert_eq!(count(&first, "done") + count(&rest, "done"), 1);
    let text = delta_text(&first) + &delta_text(&rest);
    assert_eq!(text, SLOW_TEXT, "no delta lost or repeated across the reconnect");
    check_all(&rest);
}

/// Vector 10: `terminate` twice → two `state{terminated}`, the second
/// connection-local (seq 0), no error; the worker's processes are gone
/// before the first, within kill_grace + 1 s.
#[test]
fn v10_terminate_twice() {
    let gw = Gateway::start_yaml("worker:\n  kill_grace: \"2s\"\n");
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code"}));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("sid").to_owned();
    c.turn("warm up");
    assert!(!processes_of_session(&sid).is_empty(), "the worker runs before terminate");
    let t0 = Instant::now();
    c.send("control", json!({"action": "terminate"}));
    let first = c.until(WAIT, |v| is_state(v, "terminated"));
    let gone = processes_of_session(&sid);
    assert!(gone.is_empty(), "worker processes {gone:?} still alive at state{{terminated}}");
    assert!(t0.elapsed() < Duration::from_secs(3), "terminated within kill_grace + 1 s");
    let t1 = first.last().expect("frame");
    assert!(seq(t1) >= 1, "the first state{{terminated}} is a session event: {t1}");

    c.send("control", json!({"action": "terminate"}));
    let t2 = c.recv();
    assert!(is_state(&t2, "terminated"), "{t2}");
    assert_eq!(t2["seq"], 0, "the repeat is connection-local");
    c.send("ping", json!({}));
    let pong = c.expect("pong");
    assert_eq!(pong["event"]["data"]["state"], "terminated");
    assert_eq!(count(&c.seen, "error"), 0, "{:#?}", c.seen);
    check_all(&c.seen);
}

/// Vector 10, sent back to back while the worker takes its time to die (it
/// ignores SIGTERM inside a hanging turn, so only SIGKILL after kill_grace
/// ends it): the reply to the second `terminate` must not overtake the real
/// termination — no `state{terminated}` while a worker process lives.
#[test]
fn v10_terminate_twice_back_to_back() {
    let gw = Gateway::start_yaml("worker:\n  kill_grace: \"1s\"\n");
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code"}));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("sid").to_owned();
    c.turn("ignore-sigterm");
    c.send("input", json!({"content": "hang"}));
    c.until(WAIT, |v| is_state(v, "running"));
    let t0 = Instant::now();
    c.send("control", json!({"action": "terminate"}));
    c.send("control", json!({"action": "terminate"}));
    let mut terminated = Vec::new();
    while terminated.len() < 2 {
        let v = c.until(WAIT, |v| is_state(v, "terminated")).pop().expect("frame");
        let alive = processes_of_session(&sid);
        assert!(alive.is_empty(), "state{{terminated}} (seq {}) while {alive:?} still run", v["seq"]);
        terminated.push(v);
    }
    assert!(t0.elapsed() >= Duration::from_millis(900), "the worker outlived SIGTERM for kill_grace");
    assert!(seq(&terminated[0]) >= 1, "the session event comes first: {}", terminated[0]);
    assert_eq!(terminated[1]["seq"], 0, "then the connection-local repeat: {}", terminated[1]);
    let turn_end: Vec<&Value> = c.seen.iter().filter(|v| ev_type(v) == "error").collect();
    assert_eq!(turn_end.len(), 1, "only the running turn's error: {turn_end:#?}");
    assert_eq!(turn_end[0]["event"]["data"]["code"], "SESSION_TERMINATED");
    assert!(seq(turn_end[0]) >= 1);
    assert_eq!(count(&c.seen, "done"), 2, "warm-up turn and the terminated turn");
    check_all(&c.seen);
}

/// Vector 11: `delete` → `state{deleted}`, close 1000; re-init with the id
/// or the key → SESSION_NOT_FOUND.
#[test]
fn v11_delete_then_not_found() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "to-delete"}));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("sid").to_owned();
    c.turn("hello");
    c.send("control", json!({"action": "delete"}));
    let del = c.until(WAIT, |v| ev_type(v) == "state").pop().expect("frame");
    assert!(is_state(&del, "deleted"), "{del}");
    assert!(seq(&del) >= 1);
    assert_eq!(c.expect_close().0, 1000);
    assert!(processes_of_session(&sid).is_empty(), "delete kills the worker");
    check_all(&c.seen);

    for id in [sid.as_str(), "to-delete"] {
        let mut again = gw.connect();
        again.send("init", json!({"worker_type": "claude_code", "session_id": id}));
        again.expect_error("SESSION_NOT_FOUND");
        assert_eq!(again.expect_close_only().0, 1008, "init with {id}");
    }
}

/// Vector 13: a 2 MiB frame → close 1009, while another connection's turn
/// keeps streaming and the gateway keeps accepting.
#[test]
fn v13_oversized_frame_closes_only_that_connection() {
    let gw = Gateway::start_yaml("gateway:\n  max_message_bytes: \"1MiB\"\n");
    let mut busy = gw.connect();
    busy.init(json!({"worker_type": "claude_code"}));
    busy.send("input", json!({"content": "slow 1"}));
    busy.until(WAIT, |v| ev_type(v) == "message.delta");

    let mut big = gw.connect();
    big.init(json!({"worker_type": "claude_code"}));
    let filler = "x".repeat(2 * 1024 * 1024);
    let frame = json!({"version": "aep/v1", "event": {"type": "input", "data": {"content": filler}}});
    let _ = big.send_bytes(false, frame.to_string().into_bytes());
    assert_eq!(big.expect_close_only().0, 1009);

    let mut done = false;
    busy.until(WAIT, |v| {
        done |= ev_type(v) == "done";
        done && is_state(v, "idle")
    });
    assert_eq!(delta_text(&busy.seen), SLOW_TEXT);
    assert_eq!(count(&busy.seen, "done"), 1);
    let mut fresh = gw.connect();
    fresh.init(json!({"worker_type": "claude_code"}));
    assert_eq!(delta_text(&fresh.turn("still here")), "echo: still here");
}

/// Vector 14: a second driver supersedes the first (SESSION_INVALIDATED,
/// close 1008); an observer sees exactly the driver's seq stream and may
/// only ping.
#[test]
fn v14_second_driver_and_observer() {
    let gw = Gateway::start();
    let mut d1 = gw.connect();
    let ack = d1.init(json!({"worker_type": "claude_code", "session_id": "shared"}));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("sid").to_owned();
    d1.turn("before observers");

    let mut obs = gw.connect();
    let oack = obs.init(json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe"}));
    assert_eq!(oack["event"]["data"]["resumed"], true);
    assert_eq!(oack["event"]["data"]["session_id"], sid.as_str());

    let mut d2 = gw.connect();
    let ack2 = d2.init(json!({"worker_type": "claude_code", "session_id": "shared"}));
    assert_eq!(ack2["event"]["data"]["session_id"], sid.as_str());
    assert_eq!(ack2["event"]["data"]["resumed"], true);
    let inval = d1.expect_error("SESSION_INVALIDATED");
    assert_eq!(inval["event"]["data"]["message"], "superseded by a newer connection");
    assert_eq!(d1.expect_close_only().0, 1008);

    let driven = d2.turn("stream 12");
    let mut done = false;
    let observed = obs.until(WAIT, |v| {
        done |= ev_type(v) == "done";
        done && is_state(v, "idle")
    });
    let key = |v: &&Value| (seq(v), v["event"].clone());
    let a: Vec<_> = session_events(&driven).iter().map(key).collect();
    let b: Vec<_> = session_events(&observed).iter().map(key).collect();
    assert_eq!(a, b, "observer and driver see the same events with the same seq");
    assert_seq_order(seq(&driven[0]) - 1, &session_events(&driven));

    // Observers may only ping.
    obs.send_text(
        &json!({"version": "aep/v1", "id": "o-1", "event": {"type": "input", "data": {"content": "no"}}}).to_string(),
    );
    let e = obs.expect_error("UNAUTHORIZED");
    assert_eq!(e["event"]["data"]["event_id"], "o-1");
    obs.send("control", json!({"action": "terminate"}));
    obs.expect_error("UNAUTHORIZED");
    obs.send("ping", json!({}));
    assert_eq!(obs.recv()["event"]["data"]["state"], "idle");
    d2.expect_silence(Duration::from_millis(300));
    check_all(&obs.seen);
    check_all(&d2.seen);
}
