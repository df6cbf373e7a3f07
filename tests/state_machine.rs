//! Property test of the session state machine (security.md §13), without a
//! property-testing crate: a seeded xorshift drives the real gateway (mock
//! agent) through random sequences of input, interrupt, terminate, reset,
//! delete, permission answers, reconnects with a random `last_seq`, and
//! driver takeovers. Every frame of every connection is checked as it
//! arrives, and the session's log (the union of what all connections saw)
//! at the end of each sequence:
//!
//! * a connection only receives events of its own session; per connection,
//!   session-event `seq` strictly increases;
//! * one seq always names the same event, whichever connection saw it
//!   (merged `message.delta` rows excepted: a replay may coalesce them);
//! * a gap in the log is only ever bridged by a `message.delta`;
//! * exactly one `done` per accepted `input` (an input is accepted when it
//!   opens a turn with `state{running}`, else it was answered by an error
//!   naming its envelope id), and `done` only inside a turn;
//! * no `state{idle}`, `terminated` or `deleted` while a turn is open (the
//!   turn's `done` comes first); transitions follow aep-v1.md §5.1;
//! * `deleted` is final: nothing after it, and the id is never resumed;
//! * a superseded driver receives nothing after `SESSION_INVALIDATED`.
//!
//! `HOTPLEX_SM_SEEDS` (default 6) and `HOTPLEX_SM_STEPS` (default 40) scale it.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Gateway, RecvError, WAIT, ev_type};

/// xorshift64*: deterministic, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One connection and the highest session seq it received.
struct Conn {
    c: Client,
    last_seq: u64,
}

struct Run<'a> {
    gw: &'a Gateway,
    rng: Rng,
    seed: u64,
    key: String,
    /// Server session id (UUID) of the current session.
    sid: String,
    conn: Conn,
    /// seq → event, the union of what every connection saw.
    log: BTreeMap<u64, Value>,
    accepted: u64,
    frame_no: u64,
    pending_perms: Vec<String>,
    deleted_sids: Vec<(String, String)>,
}

fn is_state(v: &Value, s: &str) -> bool {
    ev_type(v) == "state" && v["event"]["data"]["state"] == s
}

impl<'a> Run<'a> {
    fn new(gw: &'a Gateway, seed: u64, n: u64) -> Run<'a> {
        let key = format!("sm-{seed}-{n}");
        let (conn, sid) = Run::open(gw, &key, None);
        Run {
            gw,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            seed,
            key,
            sid,
            conn,
            log: BTreeMap::new(),
            accepted: 0,
            frame_no: 0,
            pending_perms: Vec::new(),
            deleted_sids: Vec::new(),
        }
    }

    fn open(gw: &Gateway, key: &str, last_seq: Option<u64>) -> (Conn, String) {
        let mut c = gw.connect();
        let mut data = json!({"worker_type": "claude_code", "session_id": key});
        if let Some(l) = last_seq {
            data["last_seq"] = json!(l);
        }
        let ack = c.init(data);
        let sid = ack["event"]["data"]["session_id"].as_str().unwrap_or_default().to_owned();
        (Conn { c, last_seq: last_seq.unwrap_or(0) }, sid)
    }

    fn ctx(&self) -> String {
        format!("seed {} key {}", self.seed, self.key)
    }

    fn send(&mut self, ty: &str, data: Value) -> String {
        self.frame_no += 1;
        let id = format!("f-{}", self.frame_no);
        let env = json!({"version": "aep/v1", "id": id, "event": {"type": ty, "data": data}});
        self.conn.c.send_text(&env.to_string());
        id
    }

    /// Check one frame against the per-connection rules and record it.
    fn absorb(&mut self, v: &Value) {
        let seq = v["seq"].as_u64().unwrap_or(0);
        if seq > 0 {
            assert_eq!(v["session_id"], self.sid.as_str(), "{}: foreign event {v}", self.ctx());
            assert!(
                seq > self.conn.last_seq,
                "{}: seq {seq} after {} on one connection",
                self.ctx(),
                self.conn.last_seq
            );
            self.conn.last_seq = seq;
            let ev = v["event"].clone();
            match self.log.get(&seq) {
                Some(prev) if ev["type"] != "message.delta" => {
                    assert_eq!(prev, &ev, "{}: seq {seq} named two events", self.ctx())
                }
                Some(_) => {}
                None => {
                    self.log.insert(seq, ev);
                }
            }
        }
        if ev_type(v) == "permission_request" {
            if let Some(id) = v["event"]["data"]["id"].as_str() {
                if !self.pending_perms.iter().any(|p| p == id) {
                    self.pending_perms.push(id.to_owned());
                }
            }
        }
    }

    /// Receive until `pred` holds (`Some(true)`), panicking on a deadline.
    fn until(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.c.recv_within(left) {
                Ok(v) => {
                    self.absorb(&v);
                    if pred(&v) {
                        return;
                    }
                }
                Err(e) => panic!("{}: waiting for {what}: {e:?}; seen {:#?}", self.ctx(), self.conn.c.seen),
            }
        }
    }

    /// Read whatever arrives within `d`.
    fn drain(&mut self, d: Duration) {
        while let Ok(v) = self.conn.c.recv_within(d) {
            self.absorb(&v);
        }
    }

    fn error_for(v: &Value, id: &str) -> bool {
        ev_type(v) == "error" && v["event"]["data"]["event_id"] == id
    }

    fn input(&mut self) {
        let script = match self.rng.below(8) {
            0 => "say hello".to_owned(),
            1 => format!("stream {} 0 200", 5 + self.rng.below(30)),
            2 => "slow 0.4".to_owned(),
            3 => "permission Write".to_owned(),
            4 => "tool".to_owned(),
            5 if self.rng.below(3) == 0 => "crash code 1".to_owned(),
            _ => "echo this".to_owned(),
        };
        let id = self.send("input", json!({"content": script}));
        let mut accepted = false;
        self.until("the input's answer", |v| {
            accepted = is_state(v, "running") && v["seq"].as_u64().unwrap_or(0) > 0;
            accepted || Run::error_for(v, &id)
        });
        if accepted {
            self.accepted += 1;
        }
    }

    fn control(&mut self, action: &str) {
        let id = self.send("control", json!({"action": action}));
        match action {
            "terminate" => self.until("terminated", |v| is_state(v, "terminated") || Run::error_for(v, &id)),
            "reset" => self.until("context reset", |v| {
                (is_state(v, "idle") && v["event"]["data"]["message"] == "context_reset") || Run::error_for(v, &id)
            }),
            _ => {
                let ms = self.rng.below(40);
                self.drain(Duration::from_millis(ms))
            }
        }
    }

    fn delete(&mut self) {
        self.delete_current();
        // a fresh session for the rest of the sequence
        self.key = format!("{}-n{}", self.key, self.frame_no);
        let (conn, sid) = Run::open(self.gw, &self.key, None);
        self.conn = conn;
        self.sid = sid;
        self.log.clear();
        self.accepted = 0;
        self.pending_perms.clear();
    }

    /// `delete`: `state{deleted}`, close 1000; the log must be complete.
    fn delete_current(&mut self) {
        self.send("control", json!({"action": "delete"}));
        self.until("deleted", |v| is_state(v, "deleted"));
        match self.conn.c.recv_within(WAIT) {
            Err(RecvError::Closed(1000, _)) => {}
            other => panic!("{}: after state{{deleted}} expected close 1000, got {other:?}", self.ctx()),
        }
        self.check_log();
        self.deleted_sids.push((self.key.clone(), self.sid.clone()));
    }

    fn reconnect(&mut self) {
        let top = self.log.keys().next_back().copied().unwrap_or(0);
        let last = if self.rng.below(2) == 0 { top } else { self.rng.below(top + 1) };
        let _ = self.conn.c.ws.close(None);
        let (conn, sid) = Run::open(self.gw, &self.key, Some(last));
        assert_eq!(sid, self.sid, "{}: reconnect attached another session", self.ctx());
        self.conn = conn;
        self.pending_perms.clear(); // re-announced by the replay if still pending
        self.drain(Duration::from_millis(30));
    }

    /// A second driver takes over; the first gets SESSION_INVALIDATED and
    /// nothing after it.
    fn takeover(&mut self) {
        let top = self.conn.last_seq;
        let (conn, sid) = Run::open(self.gw, &self.key, Some(top));
        assert_eq!(sid, self.sid);
        let mut old = std::mem::replace(&mut self.conn, conn);
        let mut invalidated = false;
        let closed = loop {
            match old.c.recv_within(WAIT) {
                Ok(v) => {
                    assert!(!invalidated, "{}: frame after SESSION_INVALIDATED: {v}", self.ctx());
                    if ev_type(&v) == "error" && v["event"]["data"]["code"] == "SESSION_INVALIDATED" {
                        invalidated = true;
                    } else {
                        // frames sent before the takeover still count for the log
                        std::mem::swap(&mut self.conn, &mut old);
                        self.absorb(&v);
                        std::mem::swap(&mut self.conn, &mut old);
                    }
                }
                Err(e @ RecvError::Closed(..)) | Err(e @ RecvError::Gone(_)) => break format!("{e:?}"),
                Err(RecvError::Timeout) => panic!("{}: superseded driver not closed", self.ctx()),
            }
        };
        assert!(
            invalidated,
            "{}: superseded driver got no SESSION_INVALIDATED ({closed}); it saw {:#?}",
            self.ctx(),
            old.c.seen.iter().rev().take(4).collect::<Vec<_>>()
        );
    }

    fn answer_permission(&mut self) {
        if self.pending_perms.is_empty() {
            return self.drain(Duration::from_millis(20));
        }
        let id = self.pending_perms.remove(0);
        let allowed = self.rng.below(2) == 0;
        self.send("permission_response", json!({"id": id, "allowed": allowed, "reason": "sm"}));
        self.drain(Duration::from_millis(20));
    }

    fn turn_open(&self) -> bool {
        let mut open = false;
        for e in self.log.values() {
            if e["type"] == "state" && e["data"]["state"] == "running" {
                open = true;
            } else if e["type"] == "done" {
                open = false;
            }
        }
        open
    }

    /// Let every turn end (interrupting the running one), then check the log.
    fn quiesce(&mut self) {
        self.drain(Duration::from_millis(50));
        if self.turn_open() {
            for id in std::mem::take(&mut self.pending_perms) {
                self.send("permission_response", json!({"id": id, "allowed": false, "reason": "end"}));
            }
            self.send("control", json!({"action": "interrupt"}));
            self.until("the last done", |v| ev_type(v) == "done");
        }
        self.drain(Duration::from_millis(50));
        self.check_log();
    }

    fn check_log(&self) {
        let ctx = self.ctx();
        let (mut turns, mut dones, mut open) = (0u64, 0u64, false);
        let mut state: Option<String> = None;
        let mut prev_seq = 0;
        for (&seq, e) in &self.log {
            if seq > prev_seq + 1 {
                assert_eq!(e["type"], "message.delta", "{ctx}: gap {prev_seq}..{seq} bridged by {e}");
            }
            prev_seq = seq;
            assert_ne!(state.as_deref(), Some("deleted"), "{ctx}: event after state{{deleted}}: {e}");
            match e["type"].as_str().unwrap_or("") {
                "done" => {
                    assert!(open, "{ctx}: done without a turn at seq {seq}");
                    open = false;
                    dones += 1;
                }
                "state" => {
                    let next = e["data"]["state"].as_str().unwrap_or("").to_owned();
                    if next == "running" {
                        assert!(!open, "{ctx}: running inside a turn at seq {seq}");
                        open = true;
                        turns += 1;
                    } else {
                        assert!(!open, "{ctx}: state {next} before the turn's done at seq {seq}");
                    }
                    let ok = matches!(
                        (state.as_deref(), next.as_str()),
                        (_, "deleted")
                            | (None, _)
                            | (Some("created"), "idle" | "terminated" | "created")
                            | (Some("idle"), "running" | "terminated" | "idle" | "created")
                            | (Some("running"), "idle" | "terminated" | "created")
                            | (Some("terminated"), "idle" | "created")
                    );
                    assert!(ok, "{ctx}: transition {state:?} -> {next} at seq {seq}");
                    if next == "idle" && state.as_deref() == Some("idle") {
                        assert_eq!(e["data"]["message"], "context_reset", "{ctx}: idle -> idle at seq {seq}");
                    }
                    state = Some(next);
                }
                _ => {}
            }
        }
        assert_eq!(turns, self.accepted, "{ctx}: turns opened vs inputs accepted");
        assert_eq!(dones, turns, "{ctx}: one done per accepted input");
    }

    fn step(&mut self) {
        match self.rng.below(40) {
            0..=15 => self.input(),
            16..=19 => self.control("interrupt"),
            20..=21 => self.control("terminate"),
            22..=23 => self.control("reset"),
            24 => self.delete(),
            25..=28 => self.reconnect(),
            29..=30 => self.takeover(),
            31..=35 => self.answer_permission(),
            _ => {
                let ms = self.rng.below(100);
                self.drain(Duration::from_millis(ms))
            }
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_sequences_keep_the_session_invariants() {
    let gw = Gateway::start();
    let seeds = env_u64("HOTPLEX_SM_SEEDS", 6);
    let steps = env_u64("HOTPLEX_SM_STEPS", 40);
    for seed in 1..=seeds {
        let mut run = Run::new(&gw, seed, seed);
        for _ in 0..steps {
            run.step();
        }
        run.quiesce();
        let (events, turns) = (run.log.len(), run.accepted);
        run.delete_current(); // frees the session slot for the next seed
        eprintln!("seed {seed}: last session {events} events, {turns} turns; {} deleted", run.deleted_sids.len());
        // deleted sessions are never resumed, by key or by id
        for (key, sid) in std::mem::take(&mut run.deleted_sids) {
            for id in [key, sid] {
                let mut c = gw.connect();
                c.send("init", json!({"worker_type": "claude_code", "session_id": id}));
                let v = c.recv();
                assert_eq!(v["event"]["data"]["code"], "SESSION_NOT_FOUND", "seed {seed}: deleted {id} came back: {v}");
            }
        }
    }
}
