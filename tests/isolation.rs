//! Session isolation between owners through the real binary (security.md §2.3,
//! §2.4; aep-v1.md §4.1, §9 vector 12): owner B (another JWT `sub`, or another
//! API-key owner) can neither attach to, observe, replay nor delete owner A's
//! session, by A's server id or by A's client key. Every such probe is
//! answered exactly like a nonexistent id (`SESSION_NOT_FOUND` + close 1008),
//! A's worker and A's stream are untouched, and probes count toward the
//! prober's per-IP lockout. WS has no listing at all.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::sec::*;
use support::*;

/// aep-v1.md §4.1 vectors.
const ALICE_CHAT: &str = "bbd854a2-0a27-5677-893e-276fa6b73afd";
const BOB_CHAT: &str = "d1ebee76-9ba8-5bfd-bde4-ea32a829b18f";

fn alice_token() -> String {
    fixture_token("tokens/valid_k1.jwt")
}

/// `init` and return the refusal frame (asserting `code` + close 1008).
fn probe(gw: &Gateway, token: &str, data: Value, code: &str) -> Value {
    let mut c = connect_bearer(gw, token).expect("upgrade");
    init_refused(&mut c, data, code)
}

/// What a client can see of a refusal: code, message, seq (not ids or times).
fn visible(e: &Value) -> Value {
    json!([e["event"]["data"]["code"], e["event"]["data"]["message"], e["event"]["data"]["details"], e["seq"]])
}

/// (pid, starttime) of the session's worker.
fn worker_of(gw: &Gateway, sid: &str) -> (i32, String) {
    let pid = worker_pid(gw, sid);
    (pid, stat_fields(pid)[19].clone())
}

fn assert_seq_increasing(frames: &[Value]) {
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).filter(|s| *s > 0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq not strictly increasing: {seqs:?}");
}

#[test]
fn another_owner_cannot_attach_observe_or_replay() {
    let gw = auth_gateway("[jwt]", 100_000, "");
    let bob = mint("bob", &[]);

    let mut alice = connect_bearer(&gw, &alice_token()).expect("alice");
    let ack = alice.init(init_data("my-chat-001", None, "drive"));
    assert_eq!(ack["event"]["data"]["session_id"], ALICE_CHAT);
    let before = worker_of(&gw, ALICE_CHAT);
    let mut watcher = connect_bearer(&gw, &alice_token()).expect("alice observer");
    watcher.init(init_data(ALICE_CHAT, None, "observe"));

    // Alice's turn runs while bob probes.
    alice.send("input", json!({"content": "slow 2"}));
    alice.expect("message.delta");

    // (A drive init with an unknown id creates a session under that client key,
    // aep-v1.md §4.1; observing one is the "nonexistent" answer.)
    let nonexistent =
        probe(&gw, &bob, init_data("0b9d4a7e-1c1f-5a43-9d40-2a5e3d4b9c11", None, "observe"), "SESSION_NOT_FOUND");
    let by_id = probe(&gw, &bob, init_data(ALICE_CHAT, None, "drive"), "SESSION_NOT_FOUND");
    assert_eq!(visible(&by_id), visible(&nonexistent), "a foreign id looks exactly like a missing one");
    for mode in ["observe", "drive"] {
        // replay request and observe: the same answer
        let mut d = init_data(ALICE_CHAT, None, mode);
        d["last_seq"] = json!(0);
        assert_eq!(visible(&probe(&gw, &bob, d, "SESSION_NOT_FOUND")), visible(&nonexistent), "{mode} + last_seq");
    }
    // Bob's token in init after an anonymous upgrade: same.
    let mut c = gw.connect();
    init_refused(&mut c, init_data(ALICE_CHAT, Some(&bob), "observe"), "SESSION_NOT_FOUND");
    // A's client key, observed by bob: names bob's (nonexistent) session, not alice's.
    probe(&gw, &bob, init_data("my-chat-001", None, "observe"), "SESSION_NOT_FOUND");
    // A's client key, driven by bob: bob's own new session with his own worker.
    let mut b = connect_bearer(&gw, &bob).expect("bob");
    let back = b.init(init_data("my-chat-001", None, "drive"));
    assert_eq!(back["event"]["data"]["session_id"], BOB_CHAT);
    assert_eq!(back["event"]["data"]["resumed"], false);
    assert_ne!(worker_of(&gw, BOB_CHAT).0, before.0, "bob never shares alice's worker");
    assert_eq!(delta_text(&b.turn("say bob here")), "bob here");
    // ...and from now on bob's key means bob's session, observe included.
    let mut bo = connect_bearer(&gw, &bob).expect("bob");
    assert_eq!(bo.init(init_data("my-chat-001", None, "observe"))["event"]["data"]["session_id"], BOB_CHAT);
    // Client keys that could alias owners are refused by their charset.
    probe(&gw, &bob, init_data("a|b", None, "drive"), "INVALID_MESSAGE");

    // Alice's stream was unaffected: the whole turn, in order, once.
    let mut frames = alice.until(Duration::from_secs(20), |v| is_state(v, "idle"));
    frames.retain(|f| f["seq"].as_u64() > Some(0) || ev_type(f) == "error");
    assert!(frames.iter().all(|f| ev_type(f) != "error"), "alice saw an error: {frames:#?}");
    assert_eq!(frames.iter().filter(|f| ev_type(f) == "done").count(), 1);
    assert_seq_increasing(&alice.seen);
    let text: String = alice
        .seen
        .iter()
        .filter(|v| ev_type(v) == "message.delta")
        .filter_map(|v| v["event"]["data"]["content"].as_str())
        .collect();
    assert_eq!(text, "slow-01 slow-02 slow-03 slow-04 slow-05 slow-06 slow-07 slow-08 slow-09 slow-10");
    // ...her observer saw the same, and nothing of bob's
    watcher.until(Duration::from_secs(10), |v| is_state(v, "idle"));
    assert!(!watcher.seen.iter().any(|v| v.to_string().contains("bob here")));
    assert!(watcher.seen.iter().filter(|v| v["seq"].as_u64() > Some(0)).all(|v| v["session_id"] == ALICE_CHAT));
    // ...and her worker is the same process.
    assert_eq!(worker_of(&gw, ALICE_CHAT), before, "alice's worker was touched");
    assert_eq!(delta_text(&alice.turn("say still alice")), "still alice");
}

/// B cannot delete A's session: control frames act on the connection's own
/// session only (the envelope `session_id` is ignored), and WS has no listing.
#[test]
fn another_owner_cannot_delete_or_list() {
    let gw = auth_gateway("[jwt]", 100_000, "");
    let bob = mint("bob", &[]);
    let mut alice = connect_bearer(&gw, &alice_token()).expect("alice");
    alice.init(init_data("my-chat-001", None, "drive"));
    let before = worker_of(&gw, ALICE_CHAT);

    let mut b = connect_bearer(&gw, &bob).expect("bob");
    b.init(init_data("my-chat-001", None, "drive"));
    // Listing does not exist on WS.
    for action in ["list", "sessions"] {
        b.send("control", json!({"action": action}));
        let e = b.expect_error("PROTOCOL_ERROR");
        assert!(!e.to_string().contains(ALICE_CHAT));
    }
    b.send("sessions.list", json!({}));
    b.expect_error("PROTOCOL_ERROR");
    // A delete aimed at alice's id (envelope and data) deletes bob's own session.
    let frame = json!({"version": "aep/v1", "session_id": ALICE_CHAT,
        "event": {"type": "control", "data": {"action": "delete", "session_id": ALICE_CHAT}}});
    b.send_text(&frame.to_string());
    let deleted = b.until(Duration::from_secs(10), |v| is_state(v, "deleted"));
    assert_eq!(deleted.last().unwrap()["session_id"], BOB_CHAT, "{deleted:#?}");
    assert_eq!(b.expect_close().0, 1000);
    assert!(eventually(Duration::from_secs(10), || processes_of_session(BOB_CHAT).is_empty()));

    // Alice's session is untouched and still hers.
    assert_eq!(worker_of(&gw, ALICE_CHAT), before);
    assert_eq!(delta_text(&alice.turn("say alive")), "alive");
    drop(alice);
    let mut again = connect_bearer(&gw, &alice_token()).expect("alice");
    let ack = again.init(init_data(ALICE_CHAT, None, "drive"));
    assert_eq!(ack["event"]["data"]["resumed"], true);
    // Bob's deleted session is gone for bob as well.
    probe(&gw, &bob, init_data(BOB_CHAT, None, "drive"), "SESSION_NOT_FOUND");
}

/// After a restart the sessions live only in the store: the ownership check
/// there answers the same way, and alice still resumes her own.
#[test]
fn stored_sessions_stay_private_after_a_restart() {
    let opts = || Options { yaml: auth_yaml("[api_key]", 100_000), env: api_key_env(), ..Options::default() };
    let gw = Gateway::start_with(opts());
    let mut alice = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    let sid = alice.init(init_data("notes", None, "drive"))["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(sid, session_id("alice", "claude_code", "notes"));
    alice.turn("say secret alice notes");
    drop(alice);
    let (_, dir) = gw.stop(Duration::from_secs(15));
    let gw = Gateway::start_in(dir, opts());

    let mut b = Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY)]).expect("bob");
    let e = init_refused(
        &mut b,
        json!({"worker_type": "claude_code", "session_id": sid, "last_seq": 0}),
        "SESSION_NOT_FOUND",
    );
    assert!(!e.to_string().contains("secret"), "{e}");
    let mut b = Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY)]).expect("bob");
    init_refused(&mut b, init_data(&sid, None, "observe"), "SESSION_NOT_FOUND");
    assert!(processes_of_session(&sid).is_empty(), "a probe spawned alice's worker");
    // Bob's use of the same key is his own session.
    let mut b = Client::connect_with(&gw.url(), &[("X-API-Key", BOB_KEY)]).expect("bob");
    let bid = b.init(init_data("notes", None, "drive"));
    assert_eq!(bid["event"]["data"]["session_id"], session_id("bob", "claude_code", "notes"));
    assert_eq!(bid["event"]["data"]["resumed"], false);

    let mut alice = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    let mut d = init_data(&sid, None, "drive");
    d["last_seq"] = json!(0);
    let ack = alice.init(d);
    assert_eq!(ack["event"]["data"]["resumed"], true);
    alice.until(Duration::from_secs(10), |v| ev_type(v) == "done");
    assert!(delta_text(&alice.seen).contains("secret alice notes"), "alice's own replay: {:#?}", alice.seen);
}

/// A permission request of B's session cannot be answered from A's session.
#[test]
fn permission_ids_are_session_scoped() {
    let gw = auth_gateway("[jwt]", 100_000, "");
    let bob = mint("bob", &[]);
    let mut b = connect_bearer(&gw, &bob).expect("bob");
    b.init(init_data("perm", None, "drive"));
    b.send("input", json!({"content": "permission Bash"}));
    let req = b.expect("permission_request");
    let id = req["event"]["data"]["id"].as_str().unwrap().to_owned();

    let mut alice = connect_bearer(&gw, &alice_token()).expect("alice");
    alice.init(init_data("perm", None, "drive"));
    alice.send("permission_response", json!({"id": id, "allowed": true}));
    alice.expect_error("INVALID_MESSAGE");
    // A forged server-only event is refused and reaches nobody.
    alice.send("tool_call", json!({"id": "t1", "name": "Bash", "input": {"command": "rm -rf /"}}));
    alice.expect_error("PROTOCOL_ERROR");
    b.expect_silence(Duration::from_millis(300));
    // Bob's request is still pending, and bob's answer is the one that counts.
    b.send("permission_response", json!({"id": id, "allowed": false, "reason": "bob says no"}));
    let frames = b.until(Duration::from_secs(10), |v| is_state(v, "idle"));
    assert!(delta_text(&frames).contains("denied: bob says no"), "{frames:#?}");
}

/// Foreign-session probes count toward the prober's per-IP failure counter
/// (security.md §1.7, §2.3): enough of them lock the IP out.
#[test]
fn foreign_probes_lead_to_a_lockout() {
    let gw = auth_gateway("[jwt]", 3, "");
    let bob = mint("bob", &[]);
    let mut alice = connect_bearer(&gw, &alice_token()).expect("alice");
    alice.init(init_data("my-chat-001", None, "drive"));
    for _ in 0..3 {
        probe(&gw, &bob, init_data(ALICE_CHAT, None, "drive"), "SESSION_NOT_FOUND");
    }
    // The IP is now locked out, valid token or not.
    assert_eq!(connect_bearer(&gw, &bob).err(), Some(429));
    // Already open connections are not affected.
    assert_eq!(delta_text(&alice.turn("say fine")), "fine");
}

/// Session ids of client keys are deterministic, so two gateways of one uid on
/// a host can run workers with the same `HOTPLEX_SESSION_ID`: ending the
/// session on one gateway must not kill the other gateway's worker.
#[test]
fn cleanup_never_touches_another_gateways_worker() {
    let one = Gateway::start();
    let two = Gateway::start();
    let mut a = one.connect();
    let mut b = two.connect();
    let sid = a.init_key("same-key")["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(b.init_key("same-key")["event"]["data"]["session_id"], sid.as_str());
    let theirs = worker_of(&two, &sid);
    a.send("control", json!({"action": "delete"}));
    a.until(Duration::from_secs(10), |v| is_state(v, "deleted"));
    assert!(eventually(Duration::from_secs(10), || processes_of_session(&sid) == vec![theirs.0]));
    drop(one);
    assert_eq!(worker_of(&two, &sid), theirs, "the other gateway's worker was killed");
    assert_eq!(delta_text(&b.turn("say survived")), "survived");
}

/// The same at startup: a gateway restarted after a SIGKILL removes the
/// orphans of its own store's sessions (matched by session id and the
/// store's instance id), never a worker another gateway runs for the same
/// session id.
#[test]
fn restart_orphan_cleanup_never_touches_another_gateways_worker() {
    let one = Gateway::start();
    let two = Gateway::start();
    let mut a = one.connect();
    let mut b = two.connect();
    let sid = a.init_key("same-key")["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(b.init_key("same-key")["event"]["data"]["session_id"], sid.as_str());
    let theirs = worker_of(&two, &sid);
    let mine = worker_of(&one, &sid);
    let dir = one.kill9();
    let one = Gateway::start_in(dir, Options::default());
    // The killed gateway's worker is gone (PDEATHSIG, then startup cleanup) ...
    assert!(eventually(Duration::from_secs(10), || !processes_of_session(&sid).contains(&mine.0)));
    // ... and the other gateway's worker was left alone.
    assert_eq!(worker_of(&two, &sid), theirs, "the other gateway's worker was killed");
    assert_eq!(delta_text(&b.turn("say survived")), "survived");
    drop(one);
}
