//! Durable sessions (aep-v1.md §5.2–§5.3, §6 delete, §9 vectors 8 and 11;
//! operations.md §2.4–§2.5, §3.1, §3.5–§3.6): a client that went away while
//! its turn kept running gets exactly the missing events from the log when it
//! comes back — while the session is still in memory, after it was evicted
//! from memory, and after a clean gateway restart; an expired resume point
//! gets `SESSION_EXPIRED` plus the trimmed text; a deleted session stays gone
//! across a restart; `store.path: ":memory:"` is a temp file that goes away.
//!
//! The database is opened read-only to check what the gateway stored.
mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::faults::{shape, sid};
use support::store;
use support::*;

/// Every text delta of `slow S` (mock agent script table).
const SLOW_TEXT: &str = "slow-01 slow-02 slow-03 slow-04 slow-05 slow-06 slow-07 slow-08 slow-09 slow-10";

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("frame without seq: {v}"))
}

fn data(v: &Value) -> &Value {
    &v["event"]["data"]
}

/// Session events (seq ≥ 1) of a frame list.
fn session_events(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|v| seq(v) > 0).collect()
}

/// seq strictly increases after `prev`; a gap only where the later frame is a
/// coalesced `message.delta` (aep-v1.md §5.2).
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

/// Wait (deadline) until `f` holds on a fresh read-only look at the store.
fn wait_store(dir: &Path, timeout: Duration, what: &str, mut f: impl FnMut(&rusqlite::Connection) -> bool) {
    let ok = eventually(timeout, || f(&store::open_ro(dir)));
    assert!(ok, "store never reached: {what}");
}

/// The stored log holds the turn's `done` and the `state{idle}` after it.
fn turn_logged(dir: &Path, sid: &str) -> impl FnMut(&rusqlite::Connection) -> bool {
    let sid = sid.to_owned();
    let _ = dir;
    move |c| {
        let rows = store::events(c, &sid);
        let done = rows.iter().position(|r| r.ty == "done");
        done.is_some_and(|d| rows[d + 1..].iter().any(|r| r.ty == "state" && r.data["state"] == "idle"))
    }
}

/// Start `slow 2` on a new connection with client key `key`, read three
/// deltas, then vanish without a close frame. Returns (session id, frames
/// seen, last seq seen).
fn start_and_vanish(gw: &Gateway, key: &str) -> (String, Vec<Value>, u64) {
    let mut a = gw.connect();
    let ack = a.init_key(key);
    assert_eq!(data(&ack)["resumed"], false);
    let id = sid(&ack);
    a.send("input", json!({"content": "slow 2"}));
    let mut deltas = 0;
    a.until(WAIT, |v| {
        deltas += usize::from(ev_type(v) == "message.delta");
        deltas == 3
    });
    let frames = a.seen.clone();
    let last = frames.iter().map(seq).max().expect("frames");
    drop(a); // no close frame: the connection just vanishes
    (id, frames, last)
}

/// Every replayed session event equals what the log holds for its seq
/// (a coalesced delta: the stored parts it spans, concatenated).
fn assert_matches_log(dir: &Path, sid: &str, prev: u64, frames: &[&Value]) {
    let stored = store::by_seq(&store::events(&store::open_ro(dir), sid));
    let mut last = prev;
    for f in frames {
        let s = seq(f);
        if ev_type(f) == "message.delta" {
            let text: String = (last + 1..=s)
                .map(|q| {
                    let st = stored.get(&q).unwrap_or_else(|| panic!("seq {q} of {f} not stored"));
                    assert_eq!(st.ty, "message.delta", "seq {q}");
                    assert_eq!(st.data["message_id"], data(f)["message_id"], "seq {q}");
                    st.data["content"].as_str().unwrap_or("").to_owned()
                })
                .collect();
            assert_eq!(data(f)["content"].as_str(), Some(text.as_str()), "replayed delta {f} differs from the log");
        } else {
            let st = stored.get(&s).unwrap_or_else(|| panic!("{f} not stored"));
            assert_eq!((st.ty.as_str(), &st.data), (ev_type(f), data(f)), "replayed frame differs from the log");
        }
        last = s;
    }
}

/// The resumed worker continues the agent's conversation (mock `recall`).
fn assert_agent_remembers(c: &mut Client, prompt: &str) {
    let frames = c.turn("recall");
    let text = delta_text(&frames);
    assert!(text.contains(&format!("'{prompt}'")), "the resumed agent forgot {prompt:?}: {text:?}");
}

/// Vector 8, the turn finishes while nobody is attached: the reconnect gets
/// exactly the missing events from the session's log, through `done` and
/// `state{idle}`, and nothing more.
#[test]
fn reconnect_after_the_turn_finished_while_away() {
    let gw = Gateway::start_yaml("sessions:\n  idle_timeout: \"0s\"\n");
    let (id, first, last_seq) = start_and_vanish(&gw, "away");
    wait_store(gw.dir.path(), WAIT, "the turn ends while away", turn_logged(gw.dir.path(), &id));
    let top = store::session(&store::open_ro(gw.dir.path()), &id).expect("row").last_seq;

    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": id, "last_seq": last_seq}));
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    assert_eq!(data(&ack)["state"], "idle", "{ack}");
    assert_eq!(data(&ack)["last_seq"], top, "the replay top is the log position: {ack}");
    let rest = b.until(WAIT, |v| is_state(v, "idle"));
    let events = session_events(&rest);
    assert_eq!(events.len(), rest.len(), "only session events after init_ack: {rest:#?}");
    assert_seq_order(last_seq, &events);
    assert_eq!(seq(rest.last().unwrap()), top, "the replay ends at the top");
    assert_eq!(delta_text(&first) + &delta_text(&rest), SLOW_TEXT, "no delta lost or repeated");
    assert_eq!(shape(&rest), ["done:true", "state:idle"]);
    assert_matches_log(gw.dir.path(), &id, last_seq, &events);
    b.expect_silence(Duration::from_millis(300));
    // the session goes on: the next turn continues the seq
    let next = b.turn("say more");
    assert_eq!(seq(&next[0]), top + 1, "{next:#?}");
    let now_top = seq(next.last().unwrap());
    drop(b);

    // A resume point above the log position (a client of an earlier
    // incarnation) replays the whole log from seq 1 (aep-v1.md §5.3).
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": id, "last_seq": now_top + 1000}));
    assert_eq!(data(&ack)["last_seq"], now_top);
    let all = c.until(WAIT, |v| seq(v) == now_top);
    let events = session_events(&all);
    assert_eq!(events.len(), all.len());
    assert_seq_order(0, &events);
    assert_matches_log(gw.dir.path(), &id, 0, &events);
    assert_eq!(delta_text(&all), format!("{SLOW_TEXT}more"));
}

/// The same after the session left memory: terminated without connections,
/// evicted at the next GC sweep, loaded back from the store by the `init`;
/// the replay comes from the log, the worker resumes the conversation.
#[test]
fn reconnect_after_the_session_was_evicted_from_memory() {
    let gw = Gateway::start_yaml("sessions:\n  gc_interval: \"1s\"\n  idle_timeout: \"0s\"\n");
    let (id, first, last_seq) = start_and_vanish(&gw, "evicted");
    wait_store(gw.dir.path(), WAIT, "the turn ends while away", turn_logged(gw.dir.path(), &id));

    // Another client ends the session (no replay asked), then leaves too.
    let mut t = gw.connect();
    let ack = t.init_key("evicted");
    assert_eq!((data(&ack)["resumed"].clone(), data(&ack)["state"].clone()), (json!(true), json!("idle")));
    t.send("control", json!({"action": "terminate"}));
    t.until(WAIT, |v| is_state(v, "terminated"));
    drop(t);
    assert!(
        gw.wait_log(&format!("session evicted from memory session_id={id}"), Duration::from_secs(10)),
        "the terminated session was never evicted"
    );

    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": id, "last_seq": last_seq}));
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    assert_eq!(data(&ack)["state"], "idle", "a resumed session restarts its worker: {ack}");
    let top = data(&ack)["last_seq"].as_u64().expect("last_seq");
    let mut terminated = false;
    let rest = b.until(WAIT, |v| {
        terminated |= is_state(v, "terminated");
        terminated && is_state(v, "idle")
    });
    let events = session_events(&rest);
    assert_eq!(events.len(), rest.len(), "only session events after init_ack: {rest:#?}");
    assert_seq_order(last_seq, &events);
    assert_eq!(delta_text(&first) + &delta_text(&rest), SLOW_TEXT, "no delta lost or repeated");
    assert_eq!(shape(&rest), ["done:true", "state:idle", "state:terminated", "state:idle"]);
    let term = rest.iter().find(|v| is_state(v, "terminated")).unwrap();
    assert_eq!(data(term)["message"], "client_terminate", "{term}");
    assert!(seq(term) <= top && seq(rest.last().unwrap()) > top, "the resume's state{{idle}} follows the replay");
    assert_matches_log(gw.dir.path(), &id, last_seq, &events[..events.len() - 1]);
    assert_agent_remembers(&mut b, "slow 2");
}

/// The same across a clean restart (SIGTERM, exit 0, start again on the
/// same directory): the session was terminated with reason `shutdown`, the
/// `init` resumes it (`resumed:true`) and the replay comes from the log.
#[test]
fn reconnect_after_a_clean_restart() {
    let yaml = "sessions:\n  idle_timeout: \"0s\"\ngateway:\n  drain_timeout: \"2s\"\n  reconnect_deadline: \"1s\"\n";
    let gw = Gateway::start_yaml(yaml);
    let (id, first, last_seq) = start_and_vanish(&gw, "restarted");
    wait_store(gw.dir.path(), WAIT, "the turn ends while away", turn_logged(gw.dir.path(), &id));

    let (status, dir) = gw.stop(Duration::from_secs(30));
    let status = status.expect("the gateway exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "clean shutdown exit code: {status:?}");
    {
        let c = store::open_ro(dir.path());
        store::assert_consistent(&c);
        assert_eq!(store::meta(&c, "clean_shutdown").as_deref(), Some("1"));
        let row = store::session(&c, &id).expect("row");
        assert_eq!((row.state.as_str(), row.state_reason.as_deref()), ("terminated", Some("shutdown")), "{row:?}");
        let rows = store::events(&c, &id);
        let last = rows.last().expect("events");
        assert_eq!(
            (last.ty.as_str(), &last.data["state"], &last.data["message"]),
            ("state", &json!("terminated"), &json!("shutdown"))
        );
        assert_eq!(last.seq, row.last_seq);
    }
    assert!(processes_of_session(&id).is_empty(), "a worker outlived the clean shutdown");

    let gw = Gateway::start_in(dir, Options { yaml: yaml.into(), ..Options::default() });
    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": id, "last_seq": last_seq}));
    assert_eq!(data(&ack)["resumed"], true, "{ack}");
    assert_eq!(data(&ack)["state"], "idle", "{ack}");
    let mut terminated = false;
    let rest = b.until(WAIT, |v| {
        terminated |= is_state(v, "terminated");
        terminated && is_state(v, "idle")
    });
    let events = session_events(&rest);
    assert_eq!(events.len(), rest.len(), "only session events after init_ack: {rest:#?}");
    assert_seq_order(last_seq, &events);
    assert_eq!(delta_text(&first) + &delta_text(&rest), SLOW_TEXT, "no delta lost or repeated");
    assert_eq!(shape(&rest), ["done:true", "state:idle", "state:terminated", "state:idle"]);
    assert_matches_log(gw.dir.path(), &id, last_seq, &events[..events.len() - 1]);
    assert_agent_remembers(&mut b, "slow 2");
}

/// Expired resume point (aep-v1.md §5.3, operations.md §3.5–§3.6): once the
/// writer trimmed the log to its newest `replay_retention_events` rows, a
/// resume from before them gets `init_ack`, `error{SESSION_EXPIRED,
/// details.oldest_seq}` (seq 0), the trimmed text of the message as one
/// `message.delta` (seq = its last trimmed delta), then the retained events.
#[test]
fn expired_replay_sends_the_trimmed_text_then_the_retained_events() {
    // The in-memory window is pinned small so the resume reads the log.
    let yaml = "store:\n  replay_retention: \"1s\"\n  replay_retention_events: 100\nsessions:\n  gc_interval: \"1s\"\n  idle_timeout: \"0s\"\n  replay_buffer_events: 16\n";
    let gw = Gateway::start_yaml(yaml);
    let mut a = gw.connect();
    let id = sid(&a.init_key("expiring"));
    // 200 paced deltas: committed one by one, so > 100 rows.
    let t1 = a.turn_within("stream 200 0 400", Duration::from_secs(30));
    let t2 = a.turn("say the tail end");
    let full = a.seen.clone();
    let start = seq(&t1[0]);
    assert!(is_state(&t1[0], "running"));
    let mid = t1.iter().find(|v| ev_type(v) == "message.start").map(|v| data(v)["id"].clone()).expect("message.start");
    let stream_text = delta_text(&t1);
    assert_eq!(stream_text.matches("tok-").count(), 200);
    let top = seq(t2.last().unwrap());
    drop(a);

    wait_store(gw.dir.path(), Duration::from_secs(15), "the log trimmed to 100 rows", |c| {
        store::rows_of(c, "events", &id) == 100 && store::rows_of(c, "message_snapshots", &id) == 1
    });
    let (oldest, snap_seq, snap_text) = {
        let c = store::open_ro(gw.dir.path());
        let rows = store::events(&c, &id);
        store::assert_no_hole(&rows, rows[0].first(), &id);
        assert_eq!(rows.last().unwrap().seq, top);
        let snap: (String, i64, String) = c
            .query_row(
                "SELECT message_id, last_seq, content FROM message_snapshots WHERE session_id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(json!(snap.0), mid, "the snapshot is of the streamed message");
        (rows[0].first(), snap.1 as u64, snap.2)
    };
    assert!(oldest > start + 2, "the trim reached into the streamed deltas (oldest {oldest})");

    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": id, "last_seq": start}));
    assert_eq!(data(&ack)["resumed"], true);
    assert_eq!(data(&ack)["last_seq"], top);
    let expired = b.recv();
    assert_eq!(ev_type(&expired), "error", "{expired}");
    assert_eq!(data(&expired)["code"], "SESSION_EXPIRED", "{expired}");
    assert_eq!(data(&expired)["details"]["oldest_seq"], oldest, "{expired}");
    assert_eq!(expired["seq"], 0, "connection-local: {expired}");
    let trimmed = b.recv();
    assert_eq!(ev_type(&trimmed), "message.delta", "{trimmed}");
    assert_eq!(data(&trimmed)["message_id"], mid);
    assert_eq!(seq(&trimmed), snap_seq, "seq of the last trimmed delta");
    assert_eq!(seq(&trimmed), oldest - 1, "the trimmed deltas end right before the retained rows");
    assert_eq!(data(&trimmed)["content"].as_str(), Some(snap_text.as_str()));
    let retained = b.until(WAIT, |v| seq(v) == top);
    let events = session_events(&retained);
    assert_eq!(events.len(), retained.len(), "{retained:#?}");
    // from oldest_seq on (a merged first row carries its last seq)
    assert_seq_order(oldest - 1, &events);
    assert_matches_log(gw.dir.path(), &id, oldest - 1, &events);
    // Nothing of the message is lost: trimmed text + retained deltas = the stream.
    let retained_text: String = retained
        .iter()
        .filter(|v| ev_type(v) == "message.delta" && data(v)["message_id"] == mid)
        .filter_map(|v| data(v)["content"].as_str())
        .collect();
    assert_eq!(snap_text + &retained_text, stream_text);
    // The retained events are the ones the first client saw for those seqs.
    for v in events.iter().filter(|v| ev_type(v) != "message.delta") {
        let orig = full.iter().find(|f| seq(f) == seq(v)).expect("seen before");
        assert_eq!((ev_type(orig), data(orig)), (ev_type(v), data(v)));
    }
    b.expect_silence(Duration::from_millis(300));
}

/// Vector 11 across a crash: `delete` → `state{deleted}`, close 1000; the
/// log and turns are gone, a tombstone stays; after SIGKILL and restart on
/// the same directory, inits with the id or the key still get
/// SESSION_NOT_FOUND.
#[test]
fn deleted_session_stays_gone_after_a_restart() {
    let gw = Gateway::start();
    let mut c = gw.connect();
    let id = sid(&c.init_key("doomed"));
    c.turn("hello");
    c.send("control", json!({"action": "delete"}));
    let del = c.until(WAIT, |v| ev_type(v) == "state").pop().unwrap();
    assert!(is_state(&del, "deleted"), "{del}");
    assert_eq!(c.expect_close().0, 1000);

    let not_found = |gw: &Gateway, when: &str| {
        for sid_or_key in [id.as_str(), "doomed"] {
            let mut again = gw.connect();
            again.send("init", json!({"worker_type": "claude_code", "session_id": sid_or_key}));
            again.expect_error("SESSION_NOT_FOUND");
            assert_eq!(again.expect_close_only().0, 1008, "{when}: init with {sid_or_key}");
        }
    };
    not_found(&gw, "before the restart");
    // The client saw state{deleted}: the delete is durable from then on.
    let dir = gw.kill9();
    {
        let c = store::open_ro(dir.path());
        store::assert_consistent(&c);
        let row = store::session(&c, &id).expect("tombstone");
        assert_eq!(row.state, "deleted", "{row:?}");
        for table in ["events", "turns", "message_snapshots"] {
            assert_eq!(store::rows_of(&c, table, &id), 0, "{table} rows of a deleted session");
        }
    }
    let gw = Gateway::start_in(dir, Options::default());
    not_found(&gw, "after the restart");
    assert!(processes_of_session(&id).is_empty());
}

/// `store.path: ":memory:"` is a fresh database in a temp file (0600) that
/// the writer and the readers share (a replay from the log works) and that
/// is gone after the gateway exits (operations.md §3.1).
#[test]
fn memory_store_is_a_temp_file_removed_at_exit() {
    let yaml = "store:\n  path: \":memory:\"\nsessions:\n  replay_buffer_events: 1\n";
    let gw = Gateway::start_yaml(yaml);
    let prefix = format!("hotplex-{}-", gw.pid());
    let temp = std::env::temp_dir();
    let db_files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&temp)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut c = gw.connect();
    let id = sid(&c.init_key("in-memory"));
    let turn = c.turn("say one two three");
    let files = db_files();
    let db = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "db"))
        .unwrap_or_else(|| panic!("no temp database {prefix}*.db in {}: {files:?}", temp.display()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(db).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "temp database mode");
    }
    assert!(!store::db_path(gw.dir.path()).exists(), "nothing written at the configured data path");
    drop(c);
    // The replay comes from the store (the in-memory window holds 1 event).
    let mut b = gw.connect();
    let ack = b.init(json!({"worker_type": "claude_code", "session_id": id, "last_seq": 0}));
    let top = data(&ack)["last_seq"].as_u64().unwrap();
    let replay = b.until(WAIT, |v| seq(v) == top);
    let want: Vec<(String, u64)> = turn.iter().map(|v| (ev_type(v).to_owned(), seq(v))).collect();
    let replayed: Vec<(String, u64)> =
        replay.iter().filter(|v| ev_type(v) != "message.delta").map(|v| (ev_type(v).to_owned(), seq(v))).collect();
    assert_eq!(
        replayed,
        want.into_iter().filter(|(t, _)| t != "message.delta").collect::<Vec<_>>(),
        "replay from the temp database"
    );
    assert_eq!(delta_text(&replay), "one two three");
    drop(b);

    // The process's private data directory (homes, session tmp) is temporary too.
    let data_dir = temp.join(format!("hotplex-{}", gw.pid()));
    assert!(data_dir.join("homes").is_dir(), "worker homes under {}", data_dir.display());

    let (status, _dir) = gw.stop(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let left = db_files();
    assert!(left.is_empty(), "temp database files left after exit: {left:?}");
    assert!(!data_dir.exists(), "temp data directory left after exit: {}", data_dir.display());
}

/// A row edited behind the gateway's back (a negative `last_seq`; seqs are
/// unsigned) makes the resume fail with `INTERNAL_ERROR` — never a wrapped
/// seq or a crashed reactor (by its id or its client key) — and the
/// gateway keeps serving other sessions.
#[test]
fn an_edited_session_row_is_an_error_not_a_crash() {
    let yaml = "gateway:\n  drain_timeout: \"2s\"\n";
    let gw = Gateway::start_yaml(yaml);
    let mut c = gw.connect();
    let id = sid(&c.init_key("edited"));
    c.turn("hello");
    drop(c);
    let (status, dir) = gw.stop(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "clean shutdown");
    {
        let db = rusqlite::Connection::open(store::db_path(dir.path())).expect("open db");
        let n = db.execute("UPDATE sessions SET last_seq = -1 WHERE id = ?1", [&id]).expect("edit the row");
        assert_eq!(n, 1);
    }

    let mut gw = Gateway::start_in(dir, Options { yaml: yaml.into(), ..Options::default() });
    for attempt in [id.as_str(), "edited"] {
        let mut again = gw.connect();
        again.send("init", json!({"worker_type": "claude_code", "session_id": attempt}));
        let err = again.expect_error("INTERNAL_ERROR");
        assert_eq!(err["event"]["data"]["message"], "session lookup failed", "{err}");
    }
    assert!(gw.wait_log("store read failed", WAIT), "the failed read is logged");

    let mut fresh = gw.connect();
    fresh.init_key("fresh");
    let frames = fresh.turn("hello");
    assert!(frames.iter().any(|v| ev_type(v) == "done"), "the gateway still runs turns: {frames:?}");
    assert!(gw.is_running(), "the gateway is still up");
}
