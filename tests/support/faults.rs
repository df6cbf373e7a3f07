//! Helpers for the fault, lifecycle and backpressure suites: the process
//! table seen from outside (a session's worker, its process group, open
//! fds) and compact views of frame sequences for order assertions.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Client, Gateway, RecvError, ev_type, is_state, mock_agent_bin, processes_of_session};

/// `(state, ppid, pgrp)` of a process from `/proc/<pid>/stat`.
pub fn stat_of(pid: i32) -> Option<(char, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.first()?.chars().next()?, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
}

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat_of(pid).is_some_and(|(st, _, _)| st != 'Z' && st != 'X')
}

pub fn pgid_of(pid: i32) -> Option<i32> {
    stat_of(pid).map(|(_, _, g)| g)
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if stat_of(pid).is_some_and(|(st, _, g)| g == pgid && st != 'Z' && st != 'X') {
            out.push(pid);
        }
    }
    out
}

/// The first element of a process's argv.
fn argv0(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = raw.split(|b| *b == 0).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

/// The live worker leader of session `sid`: the mock agent forked by the
/// gateway that carries the session's `HOTPLEX_SESSION_ID`.
pub fn worker_pid(gw: &Gateway, sid: &str) -> Option<i32> {
    processes_of_session(sid).into_iter().find(|p| {
        stat_of(*p).is_some_and(|(_, ppid, _)| ppid == gw.pid()) && argv0(*p).as_deref() == Some(mock_agent_bin())
    })
}

/// Wait (deadline) for the worker leader of `sid`.
pub fn wait_worker_pid(gw: &Gateway, sid: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = worker_pid(gw, sid) {
            return p;
        }
        assert!(Instant::now() < deadline, "no worker process for session {sid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Open fd numbers of a process, sorted.
pub fn open_fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// `data.code` of an error frame ("" otherwise).
pub fn err_code(v: &Value) -> &str {
    if ev_type(v) == "error" { v["event"]["data"]["code"].as_str().unwrap_or("") } else { "" }
}

/// A frame sequence as compact labels for order assertions, leaving out the
/// content frames a turn may hold any number of (`message*`, `reasoning`,
/// `tool_*`, `step`): `state:running`, `error:WORKER_CRASH`, `done:false`, …
pub fn shape(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|v| {
            let d = &v["event"]["data"];
            match ev_type(v) {
                "state" => Some(format!("state:{}", d["state"].as_str().unwrap_or("?"))),
                "error" => Some(format!("error:{}", err_code(v))),
                "done" => Some(format!("done:{}", d["success"])),
                "permission_request" => Some("permission_request".to_string()),
                t if t.starts_with("message") || t.starts_with("tool_") || t == "reasoning" || t == "step" => None,
                t => Some(t.to_string()),
            }
        })
        .collect()
}

/// Frames with this type.
pub fn of_type<'a>(frames: &'a [Value], ty: &str) -> Vec<&'a Value> {
    frames.iter().filter(|v| ev_type(v) == ty).collect()
}

/// The frame of a state change to `state`, if any.
pub fn find_state<'a>(frames: &'a [Value], state: &str) -> Option<&'a Value> {
    frames.iter().find(|v| is_state(v, state))
}

/// Send `input` and collect frames through its `done` and the `state` that follows it.
pub fn turn_until_state(c: &mut Client, text: &str, timeout: Duration) -> Vec<Value> {
    c.send("input", json!({ "content": text }));
    until_done_and_state(c, timeout)
}

/// Collect frames through the next `done` and the first `state` after it.
pub fn until_done_and_state(c: &mut Client, timeout: Duration) -> Vec<Value> {
    let mut done = false;
    c.until(timeout, |v| {
        let stop = done && ev_type(v) == "state";
        done |= ev_type(v) == "done";
        stop
    })
}

/// Assert that nothing arrives for `d` (the silence is what is asserted).
pub fn assert_silent(c: &mut Client, d: Duration, why: &str) {
    match c.recv_within(d) {
        Err(RecvError::Timeout) => {}
        other => panic!("{why}: expected no frame for {d:?}, got {other:?}"),
    }
}

/// The session id of an `init_ack`.
pub fn sid(ack: &Value) -> String {
    ack["event"]["data"]["session_id"].as_str().expect("init_ack.session_id").to_string()
}

/// The highest session seq in `frames` (0 if none).
pub fn max_seq(frames: &[Value]) -> u64 {
    frames.iter().filter_map(|v| v["seq"].as_u64()).max().unwrap_or(0)
}

/// Init a new claude_code session; returns (ack, session id).
pub fn init_new(c: &mut Client) -> (Value, String) {
    let ack = c.init(json!({"worker_type": "claude_code"}));
    let id = sid(&ack);
    (ack, id)
}

/// Re-init an existing session on a new connection.
pub fn resume(gw: &Gateway, session_id: &str, last_seq: Option<u64>) -> (Client, Value) {
    let mut c = gw.connect();
    let mut data = json!({"worker_type": "claude_code", "session_id": session_id});
    if let Some(n) = last_seq {
        data["last_seq"] = json!(n);
    }
    let ack = c.init(data);
    (c, ack)
}

/// A client that accepts frames up to 64 MiB (tungstenite's default limit
/// is 16 MiB; a `message` event carries a whole message's text).
pub fn connect_large(gw: &Gateway) -> Client {
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(64 << 20))
        .max_message_size(Some(64 << 20));
    let (ws, _) = tungstenite::client::connect_with_config(gw.url(), Some(config), 0).expect("websocket connect");
    Client { ws, seen: Vec::new() }
}

/// TCP connections (not listening sockets) the process holds open.
pub fn tcp_connections(pid: i32) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')).map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // st 0A = LISTEN
            if f.len() > 9 && f[3] != "0A" && inodes.contains(f[9]) {
                n += 1;
            }
        }
    }
    n
}
