//! Inbound validation (aep-v1.md §2 order, §3.1, §8) and the handshake
//! rules of §4 (session ids, worker types, observe, init deadline), against
//! the real binary.
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// `{"version":"aep/v1","id":id,"event":{"type":ty,"data":data}}` as text.
fn env(id: &str, ty: &str, data: Value) -> String {
    json!({"version": "aep/v1", "id": id, "event": {"type": ty, "data": data}}).to_string()
}

fn init_frame(id: &str) -> String {
    env(id, "init", json!({"worker_type": "claude_code"}))
}

/// What a frame must provoke.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `error{code}` (echoing `event_id` when given) then close 1008.
    Fatal(&'static str, Option<&'static str>),
    /// `error{code}`, connection stays open.
    NonFatal(&'static str, Option<&'static str>),
    /// Close with this code and no frame.
    CloseOnly(u16),
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    binary: bool,
    expect: Expect,
}

fn case(name: &'static str, text: impl Into<String>, expect: Expect) -> Case {
    Case { name, bytes: text.into().into_bytes(), binary: false, expect }
}

fn check_error(c: &mut Client, name: &str, code: &str, event_id: Option<&str>) -> Value {
    let e = c.recv();
    assert_eq!(ev_type(&e), "error", "{name}: {e}");
    assert_eq!(e["event"]["data"]["code"], code, "{name}: {e}");
    assert_eq!(e["seq"], 0, "{name}: connection-local");
    assert_eq!(e["priority"], "control", "{name}");
    assert!(e["event"]["data"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {e}");
    match event_id {
        Some(id) => assert_eq!(e["event"]["data"]["event_id"], id, "{name}: event_id echoes the envelope id"),
        None => assert!(e["event"]["data"].get("event_id").is_none_or(|v| v.is_null()), "{name}: {e}"),
    }
    e
}

/// The frame provokes exactly what `expect` says.
fn run(c: &mut Client, case: &Case) {
    let _ = c.send_bytes(case.binary, case.bytes.clone());
    match case.expect {
        Expect::Fatal(code, id) => {
            check_error(c, case.name, code, id);
            assert_eq!(c.expect_close_only().0, 1008, "{}", case.name);
        }
        Expect::NonFatal(code, id) => {
            check_error(c, case.name, code, id);
        }
        Expect::CloseOnly(code) => assert_eq!(c.expect_close_only().0, code, "{}: no error frame", case.name),
    }
}

fn invalid_utf8_json() -> Vec<u8> {
    let mut b = br#"{"version":"aep/v1","event":{"type":"ping","data":{"x":""#.to_vec();
    b.extend_from_slice(&[0xc3, 0x28, 0xff]);
    b.extend_from_slice(br#""}}}"#);
    b
}

/// §2 rules 1–4 before init: every violation is fatal (1007 for bad UTF-8
/// with no frame; otherwise one error then close 1008), in the spec's order.
#[test]
fn before_init_every_violation_is_fatal() {
    use Expect::*;
    let gw = Gateway::start();
    let init = json!({"worker_type": "claude_code"});
    let mut cases = vec![
        case("empty object", "{}", Fatal("INVALID_MESSAGE", None)),
        case("not json", "hello", Fatal("INVALID_MESSAGE", None)),
        case("array", "[1]", Fatal("INVALID_MESSAGE", None)),
        case(
            "version absent",
            json!({"id": "i1", "event": {"type": "init", "data": init}}).to_string(),
            Fatal("INVALID_MESSAGE", Some("i1")),
        ),
        case(
            "version not a string",
            json!({"version": 1, "id": "i2", "event": {"type": "init", "data": init}}).to_string(),
            Fatal("INVALID_MESSAGE", Some("i2")),
        ),
        case(
            "data not an object",
            json!({"version": "aep/v1", "id": "i3", "event": {"type": "init", "data": []}}).to_string(),
            Fatal("INVALID_MESSAGE", Some("i3")),
        ),
        case(
            "data absent",
            json!({"version": "aep/v1", "id": "i4", "event": {"type": "init"}}).to_string(),
            Fatal("INVALID_MESSAGE", Some("i4")),
        ),
        case(
            "event not an object",
            json!({"version": "aep/v1", "id": "i5", "event": "init"}).to_string(),
            Fatal("INVALID_MESSAGE", Some("i5")),
        ),
        case(
            "rule 2 before rule 3: wrong types beat a wrong version",
            json!({"version": "aep/v2", "id": "i6", "event": {"type": "init", "data": 7}}).to_string(),
            Fatal("INVALID_MESSAGE", Some("i6")),
        ),
        case(
            "duplicate envelope key",
            r#"{"version":"aep/v1","version":"aep/v1","event":{"type":"init","data":{"worker_type":"claude_code"}}}"#,
            Fatal("INVALID_MESSAGE", None),
        ),
        case(
            "duplicate data key",
            r#"{"version":"aep/v1","event":{"type":"init","data":{"worker_type":"claude_code","worker_type":"x"}}}"#,
            Fatal("INVALID_MESSAGE", None),
        ),
        case(
            "init worker_type wrong type",
            env("i7", "init", json!({"worker_type": 5})),
            Fatal("INVALID_MESSAGE", Some("i7")),
        ),
        case(
            "init last_seq negative",
            env("i8", "init", json!({"worker_type": "claude_code", "last_seq": -1})),
            Fatal("INVALID_MESSAGE", Some("i8")),
        ),
        case(
            "envelope aep/v2",
            json!({"version": "aep/v2", "id": "i9", "event": {"type": "init", "data": init}}).to_string(),
            Fatal("VERSION_MISMATCH", Some("i9")),
        ),
        case(
            "init.data.version aep/v9",
            env("i10", "init", json!({"worker_type": "claude_code", "version": "aep/v9"})),
            Fatal("VERSION_MISMATCH", Some("i10")),
        ),
        case("ping first", env("p1", "ping", json!({})), Fatal("PROTOCOL_ERROR", Some("p1"))),
        case("input first", env("p2", "input", json!({"content": "hi"})), Fatal("PROTOCOL_ERROR", Some("p2"))),
        case(
            "control first",
            env("p3", "control", json!({"action": "terminate"})),
            Fatal("PROTOCOL_ERROR", Some("p3")),
        ),
        case("custom.* first", env("p4", "custom.note", json!({"a": 1})), Fatal("PROTOCOL_ERROR", Some("p4"))),
        case("vendor.* first", env("p5", "vendor.acme.x", json!({})), Fatal("PROTOCOL_ERROR", Some("p5"))),
        case("unknown type first", env("p6", "hello", json!({})), Fatal("PROTOCOL_ERROR", Some("p6"))),
        Case { name: "invalid UTF-8 text", bytes: invalid_utf8_json(), binary: false, expect: CloseOnly(1007) },
        Case { name: "invalid UTF-8 binary", bytes: invalid_utf8_json(), binary: true, expect: CloseOnly(1007) },
        Case {
            name: "rule 1 first: bad UTF-8 and not JSON",
            bytes: vec![0xff, 0xfe],
            binary: false,
            expect: CloseOnly(1007),
        },
    ];
    for c in cases.drain(..) {
        let mut conn = gw.connect();
        run(&mut conn, &c);
        // A version mismatch carries details.max_supported.
        if let Expect::Fatal("VERSION_MISMATCH", _) = c.expect {
            let e = conn.seen.iter().find(|v| ev_type(v) == "error").expect("error");
            assert_eq!(e["event"]["data"]["details"]["max_supported"], "aep/v1", "{}", c.name);
        }
    }
}

/// Text and binary frames with surrounding whitespace are both accepted.
#[test]
fn init_in_binary_frame_and_trailing_newline() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    c.send_bytes(true, init_frame("b1").into_bytes()).expect("send");
    assert_eq!(ev_type(&c.recv()), "init_ack");
    c.send_text(&format!("  {}\n", env("b2", "ping", json!({}))));
    assert_eq!(ev_type(&c.recv()), "pong");
    c.send_bytes(true, format!("{}\n", env("b3", "ping", json!({}))).into_bytes()).expect("send");
    assert_eq!(ev_type(&c.recv()), "pong");
}

/// §2 after init: malformed frames, a second init, unknown types and
/// actions are answered and dropped; the connection and session carry on.
#[test]
fn after_init_errors_are_non_fatal() {
    use Expect::*;
    let gw = Gateway::start_yaml("limits:\n  max_input_bytes: \"512KiB\"\n");
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code"}));
    let sid = ack["session_id"].clone();
    let cases = vec![
        case("empty object", "{}", NonFatal("INVALID_MESSAGE", None)),
        case("not json", "hello", NonFatal("INVALID_MESSAGE", None)),
        case(
            "version absent",
            json!({"id": "a1", "event": {"type": "ping", "data": {}}}).to_string(),
            NonFatal("INVALID_MESSAGE", Some("a1")),
        ),
        case(
            "data not an object",
            json!({"version": "aep/v1", "id": "a2", "event": {"type": "input", "data": "hi"}}).to_string(),
            NonFatal("INVALID_MESSAGE", Some("a2")),
        ),
        case(
            "content not a string",
            env("a3", "input", json!({"content": 5})),
            NonFatal("INVALID_MESSAGE", Some("a3")),
        ),
        case(
            "content whitespace",
            env("a4", "input", json!({"content": " \n\t "})),
            NonFatal("INVALID_MESSAGE", Some("a4")),
        ),
        case(
            "content with NUL",
            env("a5", "input", json!({"content": "a\u{0}b"})),
            NonFatal("INVALID_MESSAGE", Some("a5")),
        ),
        case(
            "content over max_input_bytes",
            env("a6", "input", json!({"content": "y".repeat(512 * 1024 + 1)})),
            NonFatal("INVALID_MESSAGE", Some("a6")),
        ),
        case(
            "metadata not an object",
            env("a7", "input", json!({"content": "x", "metadata": [1]})),
            NonFatal("INVALID_MESSAGE", Some("a7")),
        ),
        case(
            "duplicate nested key",
            r#"{"version":"aep/v1","event":{"type":"ping","data":{"x":{"k":1,"k":2}}}}"#,
            NonFatal("INVALID_MESSAGE", None),
        ),
        case(
            "unknown permission id",
            env("a8", "permission_response", json!({"id": "nope", "allowed": true})),
            NonFatal("INVALID_MESSAGE", Some("a8")),
        ),
        case(
            "allowed not a bool",
            env("a9", "permission_response", json!({"id": "p", "allowed": "yes"})),
            NonFatal("INVALID_MESSAGE", Some("a9")),
        ),
        case(
            "action not a string",
            env("a10", "control", json!({"action": 1})),
            NonFatal("INVALID_MESSAGE", Some("a10")),
        ),
        case("second init", init_frame("a11"), NonFatal("PROTOCOL_ERROR", Some("a11"))),
        case(
            "malformed second init",
            env("a12", "init", json!({"worker_type": []})),
            NonFatal("INVALID_MESSAGE", Some("a12")),
        ),
        case("unknown type", env("a13", "fancy", json!({})), NonFatal("PROTOCOL_ERROR", Some("a13"))),
        case("server-only type", env("a14", "tool_call", json!({})), NonFatal("PROTOCOL_ERROR", Some("a14"))),
        case(
            "unknown action",
            env("a15", "control", json!({"action": "explode"})),
            NonFatal("PROTOCOL_ERROR", Some("a15")),
        ),
    ];
    for k in &cases {
        run(&mut c, k);
    }
    let msg =
        |id: &str| error_for(&c.seen, id)["event"]["data"]["message"].as_str().map(str::to_owned).unwrap_or_default();
    assert_eq!(msg("a13"), "unknown event type: fancy");
    assert_eq!(msg("a14"), "unknown event type: tool_call");
    assert_eq!(msg("a15"), "unknown control action: explode");

    // Extensions are ignored: the next frame is the pong to the following ping.
    c.send_text(&env("x1", "custom.note", json!({"anything": [1, 2]})));
    c.send_text(&env("x2", "vendor.acme.thing", json!({})));
    c.send_text(&env("x3", "ping", json!({})));
    let pong = c.recv();
    assert_eq!(ev_type(&pong), "pong", "{pong}");
    assert_eq!(pong["event"]["data"]["state"], "idle");
    assert_eq!(pong["seq"], 0);
    assert_eq!(pong["priority"], "control");
    assert_eq!(pong["session_id"], sid);

    // Still the same, working session; pong reports `running` during a turn.
    c.send("input", json!({"content": "slow 1"}));
    c.until(WAIT, |v| is_state(v, "running"));
    c.send("ping", json!({}));
    let pong = c.expect("pong");
    assert_eq!(pong["event"]["data"]["state"], "running");
    let mut done = false;
    c.until(WAIT, |v| {
        done |= ev_type(v) == "done";
        done && is_state(v, "idle")
    });

    // Invalid UTF-8 is fatal at any time, without an error frame.
    run(
        &mut c,
        &Case {
            name: "invalid UTF-8 text after init",
            bytes: invalid_utf8_json(),
            binary: false,
            expect: CloseOnly(1007),
        },
    );
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code"}));
    run(
        &mut c,
        &Case {
            name: "invalid UTF-8 binary after init",
            bytes: invalid_utf8_json(),
            binary: true,
            expect: CloseOnly(1007),
        },
    );
}

fn error_for<'a>(seen: &'a [Value], event_id: &str) -> &'a Value {
    seen.iter()
        .find(|v| v["event"]["data"]["event_id"] == event_id)
        .unwrap_or_else(|| panic!("no error for {event_id}"))
}

/// §1: nothing within `gateway.init_timeout` → close 1008 with no frame.
#[test]
fn init_deadline_closes_silently() {
    let gw = Gateway::start_yaml("gateway:\n  init_timeout: \"1s\"\n");
    let t0 = Instant::now();
    let mut c = gw.connect();
    assert_eq!(c.expect_close_only().0, 1008);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "closed after {took:?}");
    // An init in time is unaffected.
    let mut ok = gw.connect();
    ok.init(json!({"worker_type": "claude_code"}));
    ok.expect_silence(Duration::from_millis(1500));
}

/// §4.1: client keys map to UUIDv5(owner|worker_type|key); the spec vector
/// holds through the binary; re-init resumes; bad keys are refused.
#[test]
fn session_id_rules() {
    let gw = Gateway::start();
    let mut a = gw.connect();
    let ack = a.init(json!({"worker_type": "claude_code", "session_id": "sess_test"}));
    assert_eq!(ack["event"]["data"]["session_id"], "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");
    assert_eq!(ack["session_id"], "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");
    assert_eq!(ack["event"]["data"]["resumed"], false);
    a.turn("remember me");
    drop(a);

    // The returned server id resumes the same session.
    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00"}));
    assert_eq!(ack["event"]["data"]["session_id"], "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");
    assert_eq!(ack["event"]["data"]["resumed"], true);
    assert!(ack["event"]["data"]["last_seq"].as_u64() >= Some(4), "{ack}");
    drop(b);
    // So does the key again.
    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": "sess_test"}));
    assert_eq!(ack["event"]["data"]["resumed"], true);
    assert_eq!(ack["event"]["data"]["session_id"], "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");

    // An empty session_id creates a new session, like an absent one.
    let mut n = gw.connect();
    let ack = n.init(json!({"worker_type": "claude_code", "session_id": ""}));
    assert_eq!(ack["event"]["data"]["resumed"], false);
    assert_ne!(ack["event"]["data"]["session_id"], "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");

    for (key, code) in [("a|b", "INVALID_MESSAGE"), ("a b", "INVALID_MESSAGE"), (&*"k".repeat(129), "INVALID_MESSAGE")]
    {
        let mut c = gw.connect();
        c.send_text(&env("k1", "init", json!({"worker_type": "claude_code", "session_id": key})));
        let e = c.expect_error(code);
        assert_eq!(e["event"]["data"]["event_id"], "k1");
        assert_eq!(c.expect_close_only().0, 1008, "key {key:?}");
    }
    for wt in ["nope", "opencode_cli"] {
        let mut c = gw.connect();
        c.send_text(&env("w1", "init", json!({"worker_type": wt})));
        let e = c.expect_error("CONFIG_INVALID");
        assert_eq!(e["event"]["data"]["event_id"], "w1");
        assert_eq!(c.expect_close_only().0, 1008, "worker_type {wt}");
    }
    for sid in ["never-created", "0b9d4a7e-1c1f-5a43-9d40-2a5e3d4b9c11"] {
        let mut c = gw.connect();
        c.send_text(&env("o1", "init", json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe"})));
        let e = c.expect_error("SESSION_NOT_FOUND");
        assert_eq!(e["event"]["data"]["event_id"], "o1");
        assert_eq!(c.expect_close_only().0, 1008, "observe {sid}");
    }
    // The refused inits left the existing session alone.
    assert_eq!(delta_text(&b.turn("still mine")), "echo: still mine");
}
