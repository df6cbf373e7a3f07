//! Connection, session and rate limits through the real binary in real time
//! (security.md §9.3, §9.5; aep-v1.md §6 throttle): throttle-then-reject per
//! connection and per owner, rate checks before the busy check, the control
//! bucket that keeps `interrupt` working, the violation close, per-IP pre-init,
//! open-connection and handshake limits, per-owner inputs, sessions and
//! connections. Small rates and bursts keep every test short; each test pins
//! the whole `limits.rate` block it relies on (a nested block replaces the
//! harness's).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::sec::*;
use support::*;
use tungstenite::Message;

/// A `limits.rate` block: the harness's lifted values, with `overrides`.
fn rate_yaml(overrides: &[(&str, &str)]) -> String {
    let mut keys: Vec<(&str, String)> = [
        "handshakes_per_ip_per_sec",
        "handshakes_burst",
        "session_creates_per_min_per_owner",
        "inputs_per_min_per_owner",
        "owner_frames_per_sec",
        "owner_burst",
        "conn_frames_per_sec",
        "conn_burst",
        "control_per_sec",
        "control_burst",
    ]
    .into_iter()
    .map(|k| (k, "100000".to_string()))
    .collect();
    for (k, v) in overrides {
        match keys.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => keys.push((k, v.to_string())),
        }
    }
    let mut y = String::from("limits:\n  rate:\n");
    for (k, v) in keys {
        y.push_str(&format!("    {k}: {v}\n"));
    }
    y
}

fn code(v: &Value) -> &str {
    v["event"]["data"]["code"].as_str().unwrap_or("")
}

fn is_throttle(v: &Value) -> bool {
    ev_type(v) == "control" && v["event"]["data"]["action"] == "throttle"
}

fn is_rate_error(v: &Value) -> bool {
    ev_type(v) == "error" && code(v) == "RATE_LIMIT_EXCEEDED"
}

/// Queue `n` copies of a frame and send them in one flush (one TCP segment
/// as far as the kernel allows), so the buckets barely refill meanwhile.
fn burst(c: &mut Client, ty: &str, data: Value, n: usize) {
    let text = json!({"version": "aep/v1", "event": {"type": ty, "data": data}}).to_string();
    for _ in 0..n {
        c.ws.write(Message::text(text.clone())).expect("queue");
    }
    c.ws.flush().expect("flush");
}

/// Frames received within `d` (stops early at a close).
fn drain(c: &mut Client, d: Duration) -> Vec<Value> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(v) = c.recv_within(deadline.saturating_duration_since(Instant::now())) {
        out.push(v);
    }
    out
}

/// security.md §9.3 rules 1–2: a flood first gets `control{throttle}` (the frame
/// is processed), then `error{RATE_LIMIT_EXCEEDED, details.retry_after_ms}` (dropped).
#[test]
fn flood_is_throttled_then_rejected() {
    let gw = Gateway::start_yaml(&rate_yaml(&[("conn_frames_per_sec", "1"), ("conn_burst", "10")]));
    let mut c = gw.connect(); // init costs one token: 9 left
    c.init_key("flood");
    burst(&mut c, "ping", json!({}), 12);
    let frames = drain(&mut c, Duration::from_secs(2));
    let throttle = frames.iter().position(is_throttle).unwrap_or_else(|| panic!("no throttle: {frames:#?}"));
    let first_err = frames.iter().position(is_rate_error).unwrap_or_else(|| panic!("no rejection: {frames:#?}"));
    assert!(throttle < first_err, "throttle precedes the first rejection: {frames:#?}");
    let t = &frames[throttle]["event"]["data"];
    assert_eq!(t["reason"], "rate_limit_exceeded", "{t}");
    assert_eq!(frames[throttle]["priority"], "control");
    assert_eq!(t["suggestion"]["max_message_rate"], 1.0, "{t}");
    assert!(t["suggestion"]["backoff_ms"].as_u64().is_some_and(|b| b > 0), "{t}");
    assert!(t["suggestion"]["retry_after"].is_u64(), "{t}");
    let e = &frames[first_err];
    assert!(e["event"]["data"]["details"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 1000), "{e}");
    assert_eq!(e["seq"], 0);
    // Processed frames were answered, dropped ones were not: 12 pings, one pong each
    // until the bucket ran dry (9 after the init's token, more if it refilled meanwhile).
    let pongs = frames.iter().filter(|v| ev_type(v) == "pong").count();
    let errors = frames.iter().filter(|v| is_rate_error(v)).count();
    assert_eq!(pongs + errors, 12, "{frames:#?}");
    assert!((9..=11).contains(&pongs), "pongs {pongs} (9 ± refill): {frames:#?}");
    // The connection stays usable once the bucket refills.
    std::thread::sleep(Duration::from_millis(1100));
    c.send("ping", json!({}));
    assert_eq!(ev_type(&c.recv()), "pong");
}

/// All rate checks run before the session's busy check: a flood of `input`
/// during a running turn ends in RATE_LIMIT_EXCEEDED, not only SESSION_BUSY;
/// the running turn completes untouched.
#[test]
fn rate_checks_run_before_the_busy_check() {
    let gw = Gateway::start_yaml(&rate_yaml(&[("conn_frames_per_sec", "1"), ("conn_burst", "8")]));
    let mut c = gw.connect();
    c.init_key("busy");
    c.send("input", json!({"content": "slow 1.5"}));
    c.expect("message.delta");
    burst(&mut c, "input", json!({"content": "more"}), 10);
    let frames = c.until(Duration::from_secs(20), |v| is_state(v, "idle"));
    let codes: Vec<&str> = frames.iter().filter(|v| ev_type(v) == "error").map(code).collect();
    assert!(codes.contains(&"SESSION_BUSY"), "{codes:?}");
    assert!(codes.contains(&"RATE_LIMIT_EXCEEDED"), "over-rate inputs are rejected for the rate: {codes:?}");
    let first_rate = codes.iter().position(|c| *c == "RATE_LIMIT_EXCEEDED").unwrap();
    assert!(codes[first_rate..].iter().all(|c| *c == "RATE_LIMIT_EXCEEDED"), "{codes:?}");
    assert_eq!(frames.iter().filter(|v| ev_type(v) == "done").count(), 1);
    assert!(delta_text(&frames).ends_with("slow-10"), "the running turn completed: {frames:#?}");
}

/// One owner flooding (over two connections, exhausting its owner bucket) does
/// not affect another owner's client on the same gateway.
#[test]
fn a_flooding_owner_does_not_affect_another_owner() {
    let mut yaml = auth_yaml("[api_key]", 100_000);
    yaml.push_str(&rate_yaml(&[("owner_frames_per_sec", "1"), ("owner_burst", "10")]).replace("limits:\n", ""));
    let gw = Gateway::start_with(Options { yaml, env: api_key_env(), ..Options::default() });
    let connect = |key: &str| Client::connect_with(&gw.url(), &[("X-API-Key", key)]).expect("upgrade");
    let mut a1 = connect(ALICE_KEY);
    a1.init(init_data("a1", None, "drive"));
    let mut a2 = connect(ALICE_KEY);
    a2.init(init_data("a2", None, "drive"));
    let mut bob = connect(BOB_KEY);
    bob.init(init_data("b", None, "drive"));

    burst(&mut a1, "ping", json!({}), 8);
    burst(&mut a2, "ping", json!({}), 8);
    let mut alice_frames = drain(&mut a1, Duration::from_millis(800));
    alice_frames.extend(drain(&mut a2, Duration::from_millis(800)));
    assert!(alice_frames.iter().any(is_rate_error), "alice's owner bucket ran dry: {alice_frames:#?}");
    assert!(alice_frames.iter().any(is_throttle), "{alice_frames:#?}");

    // Bob, meanwhile: normal turns, no throttle, no error.
    for i in 0..3 {
        let frames = bob.turn(&format!("say bob {i}"));
        assert_eq!(delta_text(&frames), format!("bob {i}"));
    }
    assert!(!bob.seen.iter().any(|v| is_throttle(v) || ev_type(v) == "error"), "bob was affected: {:#?}", bob.seen);
}

/// The control bucket is separate: with the data bucket empty, `interrupt`
/// still stops the running turn.
#[test]
fn interrupt_works_with_an_empty_data_bucket() {
    let gw = Gateway::start_yaml(&rate_yaml(&[("conn_frames_per_sec", "1"), ("conn_burst", "5")]));
    let mut c = gw.connect();
    c.init_key("ctl");
    c.send("input", json!({"content": "hang"}));
    c.until(WAIT, |v| is_state(v, "running"));
    burst(&mut c, "ping", json!({}), 8);
    c.until(WAIT, is_rate_error);
    c.send("control", json!({"action": "interrupt"}));
    let frames = c.until(WAIT, |v| is_state(v, "idle"));
    let done = frames.iter().find(|v| ev_type(v) == "done").unwrap_or_else(|| panic!("{frames:#?}"));
    assert_eq!(done["event"]["data"]["success"], false);
}

/// Rule 3: more than `rate.max_violations_per_min` dropped frames → close 1008 "rate limit".
#[test]
fn too_many_violations_close_the_connection() {
    let gw = Gateway::start_yaml(&rate_yaml(&[
        ("conn_frames_per_sec", "1"),
        ("conn_burst", "3"),
        ("max_violations_per_min", "5"),
    ]));
    let mut c = gw.connect();
    c.init_key("viol");
    burst(&mut c, "ping", json!({}), 20);
    let (code, reason) = c.expect_close();
    assert_eq!((code, reason.as_str()), (1008, "rate limit"));
    let errors = c.seen.iter().filter(|v| is_rate_error(v)).count();
    assert_eq!(errors, 5, "one error per dropped frame up to the limit: {:#?}", c.seen);
    // Others are unaffected.
    let mut d = gw.connect();
    d.init_key("other");
    assert_eq!(delta_text(&d.turn("say ok")), "ok");
}

/// True when the peer closed the TCP connection (EOF or reset) within `d`.
fn tcp_closed(s: &mut TcpStream, d: Duration) -> bool {
    s.set_read_timeout(Some(d)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => false,
        Err(_) => true,
    }
}

/// `max_preinit_per_ip: 16`: 16 idle TCP connections (no bytes) are held, the
/// 17th is accepted and closed at once; the idle ones are dropped at
/// `gateway.handshake_timeout`, after which the IP may connect again.
#[test]
fn seventeenth_idle_connection_is_closed_at_once() {
    let yaml = format!(
        "gateway:\n  handshake_timeout: 2s\nlimits:\n  max_preinit_per_ip: 16\n{}",
        rate_yaml(&[]).replace("limits:\n", "")
    );
    let gw = Gateway::start_yaml(&yaml);
    let mut idle: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(gw.addr).unwrap()).collect();
    // The gateway has accepted all 16 once one of them is still open a moment later.
    assert!(!tcp_closed(&mut idle[15], Duration::from_millis(300)));
    let t0 = Instant::now();
    let mut extra = TcpStream::connect(gw.addr).unwrap();
    assert!(tcp_closed(&mut extra, Duration::from_secs(2)), "the 17th connection stayed open");
    assert!(t0.elapsed() < Duration::from_millis(1500), "closed at once, not at the handshake timeout");
    for s in idle.iter_mut().take(15) {
        assert!(!tcp_closed(s, Duration::from_millis(10)), "one of the first 16 was closed early");
    }
    // handshake_timeout (2 s) drops the idle ones; then the IP has room again.
    for s in idle.iter_mut() {
        assert!(tcp_closed(s, Duration::from_secs(5)), "idle connection kept past the handshake timeout");
    }
    let mut c = gw.connect();
    c.init_key("after");
}

/// `max_connections_per_ip` → HTTP 429 before the upgrade; a closed one frees a slot.
#[test]
fn connections_per_ip_get_429() {
    let yaml = format!("limits:\n  max_connections_per_ip: 3\n{}", rate_yaml(&[]).replace("limits:\n", ""));
    let gw = Gateway::start_yaml(&yaml);
    let mut open: Vec<Client> = (0..3).map(|_| gw.connect()).collect();
    assert_eq!(Client::connect_with(&gw.url(), &[]).err(), Some(429));
    let r = support::raw::http_exchange(gw.addr, support::raw::upgrade_request(gw.addr, None, &[]).as_bytes());
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    open.pop();
    assert!(eventually(WAIT, || Client::connect_with(&gw.url(), &[]).is_ok_and(|mut c| {
        c.init_key("slot");
        true
    })));
}

/// `rate.handshakes_per_ip_per_sec` / `handshakes_burst` → HTTP 429.
#[test]
fn handshake_rate_per_ip_gets_429() {
    let gw = Gateway::start_yaml(&rate_yaml(&[("handshakes_per_ip_per_sec", "1"), ("handshakes_burst", "3")]));
    // All five requests are written before any answer is read (the bucket refills 1/s).
    let req = support::raw::upgrade_request(gw.addr, None, &[]);
    let mut socks: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(gw.addr).unwrap()).collect();
    for s in &mut socks {
        s.write_all(req.as_bytes()).unwrap();
    }
    let statuses: Vec<u16> = socks
        .iter_mut()
        .map(|s| {
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap_or(0);
            support::raw::parse_response(&buf[..n]).map(|r| r.status).unwrap_or(0)
        })
        .collect();
    // (Two reactors may take them in any order: count, don't rank.)
    let ok = statuses.iter().filter(|s| **s == 101).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + refused, 5, "{statuses:?}");
    assert!(ok >= 3 && refused >= 1, "burst 3, then 429: {statuses:?}");
}

/// `rate.inputs_per_min_per_owner: 30`: the 31st `input` of an owner within a
/// minute → RATE_LIMIT_EXCEEDED, over all the owner's connections. Inputs are
/// charged before the busy check, so busy ones count; sent in bursts so the
/// bucket (30 per minute) cannot refill a whole token meanwhile.
#[test]
fn thirty_first_input_of_an_owner_is_rejected() {
    let gw = Gateway::start_yaml(&rate_yaml(&[("inputs_per_min_per_owner", "30")]));
    let mut a = gw.connect();
    a.init_key("inputs-a");
    let mut b = gw.connect();
    b.init_key("inputs-b");
    // Everything below is sent at once (the bucket refills 0.5 token/s).
    for c in [&mut a, &mut b] {
        c.send("input", json!({"content": "slow 1"})); // inputs 1 and 2 start turns
    }
    burst(&mut a, "input", json!({"content": "again"}), 14); // 3..16: SESSION_BUSY
    burst(&mut b, "input", json!({"content": "again"}), 14); // 17..30: SESSION_BUSY
    // a and b may live on different reactors: let all 30 be charged before the 31st.
    let count_busy = |c: &mut Client| {
        let mut n = 0;
        c.until(WAIT, |v| {
            n += usize::from(code(v) == "SESSION_BUSY");
            n == 14
        })
    };
    let mut af = count_busy(&mut a);
    let mut bf = count_busy(&mut b);
    a.send("input", json!({"content": "thirty-one"}));
    af.extend(a.until(Duration::from_secs(10), |v| is_state(v, "idle")));
    bf.extend(b.until(Duration::from_secs(10), |v| is_state(v, "idle")));
    let codes =
        |f: &[Value]| f.iter().filter(|v| ev_type(v) == "error").map(|v| code(v).to_owned()).collect::<Vec<_>>();
    let mut want_a = vec!["SESSION_BUSY".to_owned(); 14];
    want_a.push("RATE_LIMIT_EXCEEDED".into());
    assert_eq!(codes(&af), want_a, "{af:#?}");
    assert_eq!(codes(&bf), vec!["SESSION_BUSY".to_owned(); 14], "{bf:#?}");
    let e = af.iter().find(|v| is_rate_error(v)).unwrap();
    assert!(e["event"]["data"]["details"]["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{e}");
    assert!(af.iter().chain(&bf).any(is_throttle), "a throttle came first");
    // The rejected input started nothing: one done per accepted input.
    assert_eq!(af.iter().filter(|v| ev_type(v) == "done").count(), 1);
}

/// `sessions.max_per_owner` (10): the 11th live session of an owner →
/// GATEWAY_OVERLOAD + close 1008, no worker spawned; another owner is unaffected.
#[test]
fn eleventh_live_session_is_refused() {
    let gw = auth_gateway("[api_key]", 100_000, "sessions:\n  max_per_owner: 10\n");
    let connect = |key: &str| Client::connect_with(&gw.url(), &[("X-API-Key", key)]).expect("upgrade");
    let mut live: Vec<Client> = (0..10)
        .map(|i| {
            let mut c = connect(ALICE_KEY);
            c.init(init_data(&format!("s{i}"), None, "drive"));
            c
        })
        .collect();
    let workers = children_of(gw.pid()).len();
    let mut c = connect(ALICE_KEY);
    let e = init_refused(&mut c, init_data("s10", None, "drive"), "GATEWAY_OVERLOAD");
    assert_eq!(e["seq"], 0);
    assert_eq!(children_of(gw.pid()).len(), workers, "no worker spawned");
    assert!(processes_of_session(&session_id("alice", "claude_code", "s10")).is_empty());
    // Bob still gets sessions.
    let mut b = connect(BOB_KEY);
    b.init(init_data("s0", None, "drive"));
    // A terminated session is no longer live: its slot frees up.
    live[0].send("control", json!({"action": "terminate"}));
    live[0].until(Duration::from_secs(15), |v| is_state(v, "terminated"));
    let mut c = connect(ALICE_KEY);
    c.init(init_data("s10", None, "drive"));
}

/// `rate.session_creates_per_min_per_owner` → GATEWAY_OVERLOAD at init;
/// attaching to an existing session is no create.
#[test]
fn session_creates_per_owner() {
    let gw = Gateway::start_yaml(&rate_yaml(&[("session_creates_per_min_per_owner", "3")]));
    let _open: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = gw.connect();
            c.init_key(&format!("c{i}"));
            c
        })
        .collect();
    let mut c = gw.connect();
    init_refused(&mut c, json!({"worker_type": "claude_code", "session_id": "c3"}), "GATEWAY_OVERLOAD");
    let mut o = gw.connect();
    o.init(json!({"worker_type": "claude_code", "session_id": "c0", "mode": "observe"}));
}

/// `max_connections_per_owner` → GATEWAY_OVERLOAD at init.
#[test]
fn connections_per_owner() {
    let gw = Gateway::start_yaml("limits:\n  max_connections_per_owner: 3\n");
    let mut d = gw.connect();
    d.init_key("shared");
    let _observers: Vec<Client> = (0..2)
        .map(|_| {
            let mut o = gw.connect();
            o.init(json!({"worker_type": "claude_code", "session_id": "shared", "mode": "observe"}));
            o
        })
        .collect();
    let mut c = gw.connect();
    init_refused(
        &mut c,
        json!({"worker_type": "claude_code", "session_id": "shared", "mode": "observe"}),
        "GATEWAY_OVERLOAD",
    );
    let mut c = gw.connect();
    init_refused(&mut c, json!({"worker_type": "claude_code", "session_id": "other"}), "GATEWAY_OVERLOAD");
    assert_eq!(delta_text(&d.turn("say fine")), "fine");
}

/// `limits.max_spawns_per_second: 1` (global): eight inits at once. Worker
/// starts are paced one per second, so the k-th `init_ack` arrives no earlier
/// than k seconds after the burst; the inits that could not start a worker
/// within 5 s get GATEWAY_OVERLOAD and close 1008.
#[test]
fn worker_spawns_are_paced_globally() {
    let gw = Gateway::start_yaml("limits:\n  max_spawns_per_second: 1\n");
    let mut clients: Vec<Client> = (0..8).map(|_| gw.connect()).collect();
    let start = Instant::now();
    let results: Vec<(Value, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                s.spawn(move || {
                    c.send("init", json!({"worker_type": "claude_code", "session_id": format!("paced{i}")}));
                    let v = c.recv_within(Duration::from_secs(15)).expect("a reply to init");
                    (v, start.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let mut acks: Vec<Duration> = Vec::new();
    let mut refused = 0;
    for (v, at) in &results {
        match ev_type(v) {
            "init_ack" => acks.push(*at),
            "error" => {
                assert_eq!(code(v), "GATEWAY_OVERLOAD", "{v}");
                refused += 1;
            }
            other => panic!("unexpected first frame {other}: {v}"),
        }
    }
    acks.sort();
    assert!(refused >= 1 && acks.len() >= 5, "acks at {acks:?}, {refused} refused");
    for (k, at) in acks.iter().enumerate() {
        assert!(*at + Duration::from_millis(50) >= Duration::from_secs(k as u64), "ack {k} after {at:?}: {acks:?}");
    }
    for (c, (v, _)) in clients.iter_mut().zip(&results) {
        if ev_type(v) == "error" {
            assert_eq!(c.expect_close().0, 1008);
        }
    }
    // Refusals hold no slot: a later init waits at most for the next one.
    let mut c = gw.connect();
    c.init_key("later");
}

/// `sessions.max_stored_per_owner: 2`: stored sessions count, terminated ones
/// included. Alice creates two and terminates both; her third create is
/// refused with GATEWAY_OVERLOAD + 1008, resuming her first still works, and
/// bob's creates are unaffected.
#[test]
fn stored_sessions_per_owner_are_capped() {
    let gw = auth_gateway("[api_key]", 100_000, "sessions:\n  max_stored_per_owner: 2\n");
    let connect = |key: &str| Client::connect_with(&gw.url(), &[("X-API-Key", key)]).expect("upgrade");
    for name in ["st1", "st2"] {
        let mut c = connect(ALICE_KEY);
        c.init(init_data(name, None, "drive"));
        c.send("control", json!({"action": "terminate"}));
        c.until(Duration::from_secs(15), |v| is_state(v, "terminated"));
    }
    let mut c = connect(ALICE_KEY);
    let e = init_refused(&mut c, init_data("st3", None, "drive"), "GATEWAY_OVERLOAD");
    assert_eq!(e["seq"], 0);
    assert!(processes_of_session(&session_id("alice", "claude_code", "st3")).is_empty(), "nothing spawned");
    // Resuming a stored session is no create.
    let mut r = connect(ALICE_KEY);
    let ack = r.init(init_data("st1", None, "drive"));
    assert_eq!(ack["event"]["data"]["resumed"], true, "{ack}");
    assert_eq!(delta_text(&r.turn("say back")), "back");
    // Another owner has its own count.
    for name in ["st1", "st2"] {
        let mut b = connect(BOB_KEY);
        b.init(init_data(name, None, "drive"));
    }
}
