//! Fuzz-style robustness against the real binary: 1 000 malformed frames
//! (bad JSON, a wrong type in every field of every client event type, deep
//! nesting, huge strings, invalid UTF-8 in text and binary frames, random
//! bytes, NaN, lone surrogates, duplicate keys at depth, wrong versions,
//! unknown types) over several concurrent connections, before and after
//! init. Each frame must get exactly the error code or close code the spec
//! prescribes (aep-v1.md §2, §8; security.md §9.1); afterwards the gateway
//! still runs, answers `/health` and completes turns.
//!
//! Deterministic: xorshift64* seeded with `HOTPLEX_FUZZ_SEED` (default
//! [`DEFAULT_SEED`]); the seed is printed so a failure reproduces.
mod support;

use serde_json::{Value, json};
use support::raw::http_get;
use support::*;

const DEFAULT_SEED: u64 = 0x5eed_a3b1_c0ff_ee01;
const THREADS: usize = 4;
const FRAMES_PER_THREAD: usize = 250;
const MAX_MESSAGE: usize = 1024 * 1024;
const MAX_INPUT: usize = 512 * 1024;

/// Every limit the expectations below depend on, plus rates high enough
/// that throttling never answers instead of the validator.
const YAML: &str = r#"gateway:
  max_message_bytes: "1MiB"
  init_timeout: "10s"
sessions:
  max_per_owner: 50
limits:
  max_input_bytes: "512KiB"
  max_json_depth: 32
  max_id_bytes: 128
  max_reason_bytes: 1024
  max_metadata_bytes: "16KiB"
  max_connections_per_ip: 1000
  max_preinit_per_ip: 1000
  max_preinit_connections: 1000
  rate:
    conn_frames_per_sec: 100000
    conn_burst: 100000
    owner_frames_per_sec: 100000
    owner_burst: 100000
    control_per_sec: 100000
    control_burst: 100000
    handshakes_per_ip_per_sec: 100000
    handshakes_burst: 100000
    max_violations_per_min: 1000000
"#;

/// xorshift64* (Vigna): small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn word(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len).map(|_| *self.pick(alphabet) as char).collect()
    }
}

/// What the spec makes of a frame.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// Rule 2 (not JSON / not an object / wrong type / duplicate key / depth /
    /// size / surrogate / NaN): INVALID_MESSAGE, fatal only before init.
    Invalid,
    /// Semantically invalid but well-formed (`input` content rules, reason
    /// and metadata bounds): INVALID_MESSAGE; generated after init only.
    InvalidAfterInit,
    /// Rule 3: VERSION_MISMATCH, always fatal.
    Version,
    /// A well-formed `ping` whose junk sits in ignored places: `pong` after
    /// init, PROTOCOL_ERROR before.
    Lenient,
    /// `custom.*`/`vendor.*`: silently ignored after init, PROTOCOL_ERROR before.
    Extension,
    /// Unknown event type or control action: PROTOCOL_ERROR with this
    /// message after init (non-fatal); PROTOCOL_ERROR before.
    Unknown(String),
    /// Rule 1: close 1007, no frame.
    BadUtf8,
    /// Above max_message_bytes: close 1009.
    TooBig,
}

struct Mal {
    desc: String,
    bytes: Vec<u8>,
    binary: bool,
    kind: Kind,
    /// The envelope id the error must echo (None: not checked).
    echo: Option<String>,
}

fn mal(desc: impl Into<String>, text: impl Into<String>, kind: Kind, echo: Option<&str>) -> Mal {
    Mal { desc: desc.into(), bytes: text.into().into_bytes(), binary: false, kind, echo: echo.map(str::to_owned) }
}

fn frame(id: &str, ty: &str, data: Value) -> Value {
    json!({"version": "aep/v1", "id": id, "event": {"type": ty, "data": data}})
}

/// A well-typed frame of each client event type (none of them may reach a
/// session unmodified: the generators always break or neuter them).
fn base(r: &mut Rng, id: &str) -> (&'static str, Value) {
    let ty = *r.pick(&TYPES);
    (ty, base_of(ty, id))
}

/// The client event types (aep-v1.md §3.1), extensions aside.
const TYPES: [&str; 5] = ["init", "input", "permission_response", "control", "ping"];

fn base_of(ty: &str, id: &str) -> Value {
    let data = match ty {
        "init" => json!({"worker_type": "claude_code", "session_id": "k", "last_seq": 3, "mode": "drive",
            "auth": {"token": "t"}, "config": {"model": "m", "system_prompt": "s", "allowed_tools": ["Read"],
            "disallowed_tools": ["Bash"], "work_dir": "w", "permission_mode": "default", "max_turns": 3},
            "client_caps": ["message"], "trace_parent": "00-x", "trace_state": "a=b", "version": "aep/v1"}),
        "input" => json!({"content": "do not run", "metadata": {"k": 1}}),
        "permission_response" => json!({"id": "p-1", "allowed": true, "reason": "r", "remember": false}),
        "control" => json!({"action": "interrupt", "reason": "r"}),
        _ => json!({}),
    };
    frame(id, ty, data)
}

/// Field paths (inside the envelope) with the JSON type they must have.
fn fields(ty: &str) -> Vec<(&'static [&'static str], Want)> {
    use Want::*;
    let mut v: Vec<(&'static [&'static str], Want)> = vec![
        (&["id"], Str),
        (&["version"], ReqStr),
        (&["event"], ReqObj),
        (&["event", "type"], ReqStr),
        (&["event", "data"], ReqObj),
    ];
    let d: &[(&'static [&'static str], Want)] = match ty {
        "init" => &[
            (&["event", "data", "version"], Str),
            (&["event", "data", "worker_type"], ReqStr),
            (&["event", "data", "session_id"], Str),
            (&["event", "data", "last_seq"], Seq),
            (&["event", "data", "mode"], Str),
            (&["event", "data", "auth"], Obj),
            (&["event", "data", "auth", "token"], Str),
            (&["event", "data", "config"], Obj),
            (&["event", "data", "config", "model"], Str),
            (&["event", "data", "config", "system_prompt"], Str),
            (&["event", "data", "config", "allowed_tools"], StrList),
            (&["event", "data", "config", "disallowed_tools"], StrList),
            (&["event", "data", "config", "work_dir"], Str),
            (&["event", "data", "config", "permission_mode"], Str),
            (&["event", "data", "config", "max_turns"], Int),
            (&["event", "data", "client_caps"], Caps),
            (&["event", "data", "trace_parent"], Str),
            (&["event", "data", "trace_state"], Str),
        ],
        "input" => &[(&["event", "data", "content"], ReqStr), (&["event", "data", "metadata"], Obj)],
        "permission_response" => &[
            (&["event", "data", "id"], ReqStr),
            (&["event", "data", "allowed"], ReqBool),
            (&["event", "data", "reason"], Str),
            (&["event", "data", "remember"], Bool),
        ],
        "control" => &[(&["event", "data", "action"], ReqStr), (&["event", "data", "reason"], Str)],
        _ => &[],
    };
    v.extend_from_slice(d);
    v
}

#[derive(Clone, Copy, Debug)]
enum Want {
    Str,
    ReqStr,
    Obj,
    ReqObj,
    Bool,
    ReqBool,
    /// integer 0..2^63-1
    Seq,
    /// JSON integer; other numbers are a policy matter (CONFIG_INVALID), not drawn
    Int,
    StrList,
    /// array or object
    Caps,
}

/// Every value of the wrong JSON type for `w` (null only where the field is required).
fn wrong_values(w: Want) -> Vec<Value> {
    let all = [
        json!(42),
        json!(-1.5),
        json!(true),
        json!(false),
        json!("str"),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"k": "v"}),
        Value::Null,
    ];
    let keep = |v: &Value| match w {
        Want::Str => !v.is_string() && !v.is_null(),
        Want::ReqStr => !v.is_string(),
        Want::Obj => !v.is_object() && !v.is_null(),
        Want::ReqObj => !v.is_object(),
        Want::Bool => !v.is_boolean() && !v.is_null(),
        Want::ReqBool => !v.is_boolean(),
        Want::Int => !v.is_number() && !v.is_null(),
        Want::Caps => !v.is_array() && !v.is_object() && !v.is_null(),
        Want::Seq | Want::StrList => false,
    };
    match w {
        Want::Seq => vec![json!(-1), json!(1.5), json!("3"), json!(true), json!([3]), json!({}), json!(1e300)],
        Want::StrList => vec![json!("Read"), json!(5), json!([1]), json!(["Read", true]), json!({}), json!([null])],
        _ => all.into_iter().filter(keep).collect(),
    }
}

fn wrong_value(r: &mut Rng, w: Want) -> Value {
    r.pick(&wrong_values(w)).clone()
}

fn set_path(root: &mut Value, path: &[&str], v: Value) {
    let mut cur = root;
    for (i, k) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur[*k] = v;
            return;
        }
        cur = &mut cur[*k];
    }
}

fn not_json_object_with_version(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => !m.contains_key("version"),
        _ => true,
    }
}

/// A ping whose `data.x` is `inner` (raw JSON text).
fn ping_with(id: &str, inner: &str) -> String {
    format!(r#"{{"version":"aep/v1","id":"{id}","event":{{"type":"ping","data":{{"x":{inner}}}}}}}"#)
}

const BAD_UTF8: [&[u8]; 8] = [
    &[0xff],
    &[0xfe, 0xfe],
    &[0xc0, 0x80],
    &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    &[0xe2, 0x82],
    &[0x80],
    &[0xf8, 0x88, 0x80, 0x80, 0x80],
];

/// Draw one malformed frame.
fn generate(r: &mut Rng, n: usize) -> Mal {
    let id = format!("fz-{n}");
    let id = id.as_str();
    if n % 97 == 13 {
        // a few frames above max_message_bytes, at fixed positions
        let n = r.range(MAX_MESSAGE + 1, MAX_MESSAGE + 65_536);
        return Mal {
            desc: format!("{n}-byte frame"),
            bytes: vec![b'a'; n],
            binary: r.chance(50),
            kind: Kind::TooBig,
            echo: None,
        };
    }
    match r.below(100) {
        // bad JSON: a truncated or corrupted well-formed frame
        0..=9 => {
            let (ty, v) = base(r, id);
            let text = v.to_string();
            if r.chance(50) {
                let cut = r.below(text.len() - 1);
                return mal(format!("{ty} truncated at {cut}"), &text[..cut], Kind::Invalid, None);
            }
            loop {
                let mut b = text.clone().into_bytes();
                for _ in 0..r.range(1, 4) {
                    let at = r.below(b.len());
                    b[at] = *r.pick(b"{}[],:\"\\' x0");
                }
                // (a corruption that still parses as an envelope is drawn again)
                if not_json_object_with_version(&b) {
                    let desc = format!("{ty} corrupted: {}", String::from_utf8_lossy(&b));
                    return Mal { desc, bytes: b, binary: r.chance(20), kind: Kind::Invalid, echo: None };
                }
            }
        }
        // random printable text and random bytes
        10..=16 => {
            let len = r.range(0, 200);
            let text = r.word(len, b"{}[]\":,0123456789abcdefnulltrue \t\n\\/-+.eE");
            if not_json_object_with_version(text.as_bytes()) {
                mal(format!("random text {text:?}"), text, Kind::Invalid, None)
            } else {
                mal("random text fallback", "[]", Kind::Invalid, None)
            }
        }
        17..=22 => {
            let len = r.range(1, 300);
            let bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            let binary = r.chance(50);
            let kind = if std::str::from_utf8(&bytes).is_err() {
                Kind::BadUtf8
            } else if not_json_object_with_version(&bytes) {
                Kind::Invalid
            } else {
                unreachable!("random bytes formed an AEP envelope")
            };
            Mal { desc: format!("{len} random bytes"), bytes, binary, kind, echo: None }
        }
        // a wrong type in one field of one event type
        23..=52 => {
            let (ty, mut v) = base(r, id);
            let fs = fields(ty);
            let (path, want) = *r.pick(&fs);
            let wrong = wrong_value(r, want);
            set_path(&mut v, path, wrong.clone());
            let echo = if path == ["id"] { None } else { Some(id) };
            let mut m = mal(format!("{ty}.{} = {wrong}", path.join(".")), v.to_string(), Kind::Invalid, echo);
            m.binary = r.chance(20);
            m
        }
        // junk of any type in the fields the server ignores
        53..=56 => {
            let mut v = frame(id, "ping", json!({"unknown": r.below(1000)}));
            let field = *r.pick(&["seq", "priority", "session_id", "timestamp", "extra"]);
            v[field] = wrong_value(r, Want::ReqStr);
            mal(format!("ping with {field} = {}", v[field]), v.to_string(), Kind::Lenient, None)
        }
        // nesting: 33+ is rejected, 32 is the last accepted depth
        57..=62 => {
            // envelope, event and data are three levels
            match r.below(4) {
                0 => mal(
                    "depth 32",
                    ping_with(id, &format!("{}{}", "[".repeat(29), "]".repeat(29))),
                    Kind::Lenient,
                    None,
                ),
                1 => {
                    let n = r.range(100_000, 120_000);
                    mal(format!("{n} open brackets"), "[".repeat(n), Kind::Invalid, None)
                }
                _ => {
                    let d = r.range(33, 300);
                    let inner = format!("{}1{}", "{\"a\":".repeat(d - 3), "}".repeat(d - 3));
                    mal(format!("depth {d}"), ping_with(id, &inner), Kind::Invalid, None)
                }
            }
        }
        // huge strings
        63..=67 => match r.below(5) {
            0 => {
                let n = r.range(MAX_INPUT + 1, MAX_INPUT + 4096);
                let v = frame(id, "input", json!({"content": "c".repeat(n)}));
                mal(format!("content of {n} bytes"), v.to_string(), Kind::InvalidAfterInit, Some(id))
            }
            1 => {
                let n = r.range(129, 4096);
                let v = frame(&"i".repeat(n), "ping", json!({}));
                mal(format!("id of {n} bytes"), v.to_string(), Kind::Invalid, None)
            }
            2 => {
                let n = r.range(1025, 8192);
                let v = frame(id, "control", json!({"action": "interrupt", "reason": "r".repeat(n)}));
                mal(format!("reason of {n} bytes"), v.to_string(), Kind::InvalidAfterInit, Some(id))
            }
            3 => {
                let n = r.range(16 * 1024, 64 * 1024);
                let v = frame(id, "input", json!({"content": "x", "metadata": {"m": "m".repeat(n)}}));
                mal(format!("metadata of {n} bytes"), v.to_string(), Kind::InvalidAfterInit, Some(id))
            }
            4 => {
                let n = r.range(100_000, MAX_MESSAGE - 200);
                let v = frame(id, "ping", json!({"ignored": "s".repeat(n)}));
                mal(format!("ping with a {n}-byte ignored string"), v.to_string(), Kind::Lenient, None)
            }
            _ => {
                let v = frame(id, "input", json!({"content": *r.pick(&["", " ", "\n\t ", "a\u{0}b"])}));
                mal(format!("bad content {v}"), v.to_string(), Kind::InvalidAfterInit, Some(id))
            }
        },
        // invalid UTF-8 inside otherwise fine JSON, text or binary
        68..=74 => {
            let (ty, v) = base(r, id);
            let text = v.to_string();
            let quote = text.match_indices('"').map(|(i, _)| i).nth(r.below(4) * 2 + 1).unwrap_or(1);
            let mut b = text.as_bytes()[..quote].to_vec();
            let bad: &[u8] = BAD_UTF8[r.below(BAD_UTF8.len())];
            b.extend_from_slice(bad);
            b.extend_from_slice(&text.as_bytes()[quote..]);
            Mal {
                desc: format!("{ty} with invalid UTF-8"),
                bytes: b,
                binary: r.chance(50),
                kind: Kind::BadUtf8,
                echo: None,
            }
        }
        // NaN / Infinity
        75..=78 => {
            let tok = *r.pick(&["NaN", "Infinity", "-Infinity", "nan", "+1", "01", "1.", ".5", "0x10"]);
            let text = if r.chance(50) {
                ping_with(id, tok)
            } else {
                format!(
                    r#"{{"version":"aep/v1","event":{{"type":"init","data":{{"worker_type":"claude_code","last_seq":{tok}}}}}}}"#
                )
            };
            mal(format!("number token {tok}"), text, Kind::Invalid, None)
        }
        // lone surrogates, in values and keys
        79..=82 => {
            let s = *r.pick(&[r"\ud800", r"\udfff", r"\ud800\u0041", r"\udc00\ud800", r"x\udbff"]);
            let text = match r.below(3) {
                0 => ping_with(id, &format!("\"{s}\"")),
                1 => format!(r#"{{"version":"aep/v1","event":{{"type":"input","data":{{"content":"{s}"}}}}}}"#),
                _ => ping_with(id, &format!("{{\"{s}\":1}}")),
            };
            mal(format!("lone surrogate {s}"), text, Kind::Invalid, None)
        }
        // duplicate keys at some depth
        83..=87 => {
            let d = r.range(0, 25);
            let dup = *r.pick(&[r#""k":1,"k":2"#, r#""k":1,"k":1"#, r#""a":{},"b":[],"a":null"#]);
            let text = match r.below(4) {
                0 => format!(
                    r#"{{"version":"aep/v1","id":"{id}","version":"aep/v1","event":{{"type":"ping","data":{{}}}}}}"#
                ),
                1 => r#"{"version":"aep/v1","event":{"type":"ping","type":"ping","data":{}}}"#.to_string(),
                _ => ping_with(id, &format!("{}{{{dup}}}{}", "{\"n\":".repeat(d), "}".repeat(d))),
            };
            mal(format!("duplicate key at depth {d}"), text, Kind::Invalid, None)
        }
        // not an object at the root
        88..=89 => {
            let text = *r.pick(&["[]", "\"aep/v1\"", "42", "null", "true", r#"[{"version":"aep/v1"}]"#, "  ", ""]);
            mal(format!("root {text:?}"), text, Kind::Invalid, None)
        }
        // version rules
        90..=92 => {
            let ver = *r.pick(&["aep/v2", "AEP/V1", "aep/v1 ", "", "aep/v0", "aep/v1.1", "v1"]);
            if r.chance(70) {
                let mut v = frame(id, "ping", json!({}));
                v["version"] = json!(ver);
                mal(format!("version {ver:?}"), v.to_string(), Kind::Version, Some(id))
            } else {
                let v = frame(id, "init", json!({"worker_type": "claude_code", "version": ver}));
                mal(format!("init.data.version {ver:?}"), v.to_string(), Kind::Version, Some(id))
            }
        }
        // unknown types and actions, extensions
        _ => {
            let len = r.range(1, 24);
            let word = r.word(len, b"abcdefghijklmnopqrstuvwxyz_.-");
            match r.below(3) {
                0 => {
                    let ty = format!("{}{word}", r.pick(&["custom.", "vendor."]));
                    mal(format!("extension {ty}"), frame(id, &ty, json!({"x": 1})).to_string(), Kind::Extension, None)
                }
                1 if !["init", "input", "permission_response", "control", "ping"].contains(&word.as_str())
                    && !word.starts_with("custom.")
                    && !word.starts_with("vendor.") =>
                {
                    let msg = format!("unknown event type: {word}");
                    mal(format!("type {word}"), frame(id, &word, json!({})).to_string(), Kind::Unknown(msg), Some(id))
                }
                _ if !["interrupt", "terminate", "gc", "reset", "delete"].contains(&word.as_str()) => {
                    let msg = format!("unknown control action: {word}");
                    let v = frame(id, "control", json!({"action": word}));
                    mal(format!("action {word}"), v.to_string(), Kind::Unknown(msg), Some(id))
                }
                _ => mal("fallback", "{}", Kind::Invalid, None),
            }
        }
    }
}

/// One fuzzing connection pool: a driver on its own session, reopened when
/// the server closes it, plus a fresh connection for every pre-init frame.
struct Worker<'g> {
    gw: &'g Gateway,
    key: String,
    conn: Option<Client>,
    connections: usize,
}

impl Worker<'_> {
    fn attached(&mut self) -> &mut Client {
        if self.conn.is_none() {
            let mut c = self.gw.connect();
            c.init(json!({"worker_type": "claude_code", "session_id": self.key}));
            self.connections += 1;
            self.conn = Some(c);
        }
        self.conn.as_mut().expect("connection")
    }

    fn check_error(c: &mut Client, m: &Mal, code: &str, ctx: &str) -> Value {
        let e = match c.recv_within(WAIT) {
            Ok(v) => v,
            Err(e) => panic!("{ctx}: expected error {code}, got {e:?}"),
        };
        assert_eq!(ev_type(&e), "error", "{ctx}: {e}");
        assert_eq!(e["event"]["data"]["code"], code, "{ctx}: {e}");
        assert_eq!(e["seq"], 0, "{ctx}: {e}");
        if let Some(id) = &m.echo {
            assert_eq!(e["event"]["data"]["event_id"], id.as_str(), "{ctx}: event_id");
        }
        e
    }

    fn close_only(c: &mut Client, code: u16, ctx: &str) {
        match c.recv_within(WAIT) {
            Err(RecvError::Closed(got, _)) => assert_eq!(got, code, "{ctx}"),
            other => panic!("{ctx}: expected close {code} and no frame, got {other:?}"),
        }
    }

    /// Send `m` before init on a fresh connection.
    fn before_init(&mut self, m: &Mal, ctx: &str) {
        let mut c = self.gw.connect();
        self.connections += 1;
        let _ = c.send_bytes(m.binary, m.bytes.clone());
        let code = match &m.kind {
            Kind::BadUtf8 => return Self::close_only(&mut c, 1007, ctx),
            Kind::TooBig => return Self::close_only(&mut c, 1009, ctx),
            Kind::Invalid | Kind::InvalidAfterInit => "INVALID_MESSAGE",
            Kind::Version => "VERSION_MISMATCH",
            Kind::Lenient | Kind::Extension | Kind::Unknown(_) => "PROTOCOL_ERROR",
        };
        Self::check_error(&mut c, m, code, ctx);
        Self::close_only(&mut c, 1008, ctx);
    }

    /// Send `m` on the attached connection.
    fn after_init(&mut self, m: &Mal, ctx: &str) {
        let c = self.attached();
        let _ = c.send_bytes(m.binary, m.bytes.clone());
        match &m.kind {
            Kind::BadUtf8 => {
                Self::close_only(c, 1007, ctx);
                self.conn = None;
            }
            Kind::TooBig => {
                Self::close_only(c, 1009, ctx);
                self.conn = None;
            }
            Kind::Version => {
                let e = Self::check_error(c, m, "VERSION_MISMATCH", ctx);
                assert_eq!(e["event"]["data"]["details"]["max_supported"], "aep/v1", "{ctx}");
                Self::close_only(c, 1008, ctx);
                self.conn = None;
            }
            Kind::Invalid | Kind::InvalidAfterInit => {
                Self::check_error(c, m, "INVALID_MESSAGE", ctx);
            }
            Kind::Unknown(msg) => {
                let e = Self::check_error(c, m, "PROTOCOL_ERROR", ctx);
                assert_eq!(e["event"]["data"]["message"], msg.as_str(), "{ctx}");
            }
            Kind::Lenient => {
                let v = c.recv_within(WAIT).unwrap_or_else(|e| panic!("{ctx}: expected pong, got {e:?}"));
                assert_eq!(ev_type(&v), "pong", "{ctx}: {v}");
                assert_eq!(v["event"]["data"]["state"], "idle", "{ctx}");
            }
            Kind::Extension => {
                c.send("ping", json!({}));
                let v = c.recv_within(WAIT).unwrap_or_else(|e| panic!("{ctx}: expected pong, got {e:?}"));
                assert_eq!(ev_type(&v), "pong", "{ctx}: ignored silently, so the next frame is the pong: {v}");
            }
        }
    }
}

fn seed() -> u64 {
    std::env::var("HOTPLEX_FUZZ_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(DEFAULT_SEED)
}

#[test]
fn thousand_malformed_frames() {
    let seed = seed();
    eprintln!("malformed_frames: seed {seed:#x} (rerun with HOTPLEX_FUZZ_SEED={seed:x})");
    let mut gw = Gateway::start_yaml(YAML);
    let tally = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let gw = &gw;
                s.spawn(move || {
                    let mut r = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    let mut w = Worker { gw, key: format!("fuzz-{t}"), conn: None, connections: 0 };
                    let mut kinds = std::collections::BTreeMap::new();
                    for i in 0..FRAMES_PER_THREAD {
                        let m = generate(&mut r, t * FRAMES_PER_THREAD + i);
                        let pre = m.kind != Kind::InvalidAfterInit && r.chance(15);
                        let ctx = format!(
                            "seed {seed:#x} thread {t} frame {i} ({}, {}, {} bytes, {}): {}",
                            if pre { "before init" } else { "after init" },
                            if m.binary { "binary" } else { "text" },
                            m.bytes.len(),
                            format!("{:?}", m.kind).split('(').next().unwrap_or(""),
                            m.desc.chars().take(160).collect::<String>()
                        );
                        if pre {
                            w.before_init(&m, &ctx);
                        } else {
                            w.after_init(&m, &ctx);
                        }
                        *kinds
                            .entry(format!("{:?}", m.kind).split('(').next().unwrap_or("").to_owned())
                            .or_insert(0) += 1;
                    }
                    // The session that absorbed all this still works.
                    let c = w.attached();
                    assert_eq!(delta_text(&c.turn("survived")), "echo: survived", "seed {seed:#x} thread {t}");
                    (kinds, w.connections)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("fuzz thread")).collect::<Vec<_>>()
    });
    let mut kinds = std::collections::BTreeMap::new();
    let mut connections = 0;
    for (k, c) in tally {
        for (name, n) in k {
            *kinds.entry(name).or_insert(0) += n;
        }
        connections += c;
    }
    eprintln!("malformed_frames: {} frames over {connections} connections: {kinds:?}", THREADS * FRAMES_PER_THREAD);
    assert_eq!(kinds.values().sum::<usize>(), 1000);
    assert!(kinds.len() >= 8, "every class was drawn: {kinds:?}");

    assert!(gw.is_running(), "the gateway survived");
    assert_eq!(http_get(gw.addr, "/health").status, 200);
    let mut fresh = gw.connect();
    fresh.init(json!({"worker_type": "claude_code"}));
    assert_eq!(delta_text(&fresh.turn("after the storm")), "echo: after the storm");
    let log = gw.stderr();
    assert!(!log.contains("panicked"), "a gateway thread panicked:\n{log}");
}

/// The exhaustive counterpart of the random draw: every wrong JSON type in
/// every field of every client event type, after init (non-fatal
/// INVALID_MESSAGE echoing the id) and once per field before init (fatal).
#[test]
fn wrong_type_in_every_field() {
    let gw = Gateway::start_yaml(YAML);
    let mut w = Worker { gw: &gw, key: "sweep".into(), conn: None, connections: 0 };
    let mut sent = 0;
    for ty in TYPES {
        for (path, want) in fields(ty) {
            for (k, wrong) in wrong_values(want).into_iter().enumerate() {
                let id = format!("sw-{sent}");
                let mut v = base_of(ty, &id);
                set_path(&mut v, path, wrong.clone());
                let echo = if path == ["id"] { None } else { Some(id.as_str()) };
                let m = mal(format!("{ty}.{} = {wrong}", path.join(".")), v.to_string(), Kind::Invalid, echo);
                let ctx = format!("sweep: {}", m.desc);
                if k == 0 {
                    w.before_init(&m, &ctx);
                }
                w.after_init(&m, &ctx);
                sent += 1;
            }
        }
    }
    assert!(sent > 250, "{sent} frames");
    assert_eq!(w.connections, 1 + fields_count(), "all after-init frames went over one connection");
    let c = w.attached();
    assert_eq!(delta_text(&c.turn("still fine")), "echo: still fine");
}

fn fields_count() -> usize {
    TYPES.iter().map(|t| fields(t).len()).sum()
}
