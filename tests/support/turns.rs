//! Turn helpers shared by the suites that drive the real agent CLIs through
//! the gateway (`tests/real_*.rs`): finding frames of a type, the common
//! turn shape (aep-v1.md §3.3), session seq order (§5.2), the text-message
//! bracket (§3.3), and finding the agent binaries and their files. What
//! differs between agents (how many deltas a message has, its id prefix)
//! is a [`MessageShape`] each suite states; deadlines stay in the suites.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ev_type, is_state};

/// Types that may be connection-local frames (seq 0, aep-v1.md §5.2) in a
/// turn: the handshake reply, pongs and errors answering the client's frames.
pub const LOCAL: [&str; 3] = ["init_ack", "pong", "error"];

/// A frame's `event.data`.
pub fn data(v: &Value) -> &Value {
    &v["event"]["data"]
}

/// The frames of event type `ty`, in order.
pub fn of_type<'a>(frames: &'a [Value], ty: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| ev_type(f) == ty).collect()
}

/// Index of the first frame matching `pred`.
pub fn pos(frames: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    frames.iter().position(pred)
}

/// The data of the turn's (first) `done`.
pub fn done_of(frames: &[Value]) -> &Value {
    data(of_type(frames, "done").first().copied().unwrap_or_else(|| panic!("no done: {frames:#?}")))
}

/// `done.stats` of the turn.
pub fn stats_of(frames: &[Value]) -> Value {
    done_of(frames)["stats"].clone()
}

/// Session events carry a strictly increasing seq ≥ 1; only frames of a
/// type in `local` may be connection-local (seq 0).
pub fn assert_seq(frames: &[Value], local: &[&str]) {
    let mut last = 0u64;
    for f in frames {
        let seq = f["seq"].as_u64().unwrap_or_else(|| panic!("frame without seq: {f}"));
        if seq == 0 {
            assert!(local.contains(&ev_type(f)), "session event with seq 0: {f}");
            continue;
        }
        assert!(seq > last, "seq not strictly increasing ({last} then {seq}): {f}");
        last = seq;
    }
}

/// The common turn shape (aep-v1.md §3.3): starts with `state{running}`,
/// exactly one `done` (control priority; its success is returned), directly
/// followed by `state{idle}` which ends the frames; seq as [`assert_seq`]
/// with the connection-local types `local`.
pub fn assert_turn_shape(frames: &[Value], local: &[&str]) -> bool {
    assert_seq(frames, local);
    assert!(
        frames.first().is_some_and(|f| is_state(f, "running")),
        "turn does not start with state{{running}}: {frames:#?}"
    );
    assert_eq!(of_type(frames, "done").len(), 1, "exactly one done per turn: {frames:#?}");
    let d = pos(frames, |f| ev_type(f) == "done").unwrap_or_else(|| panic!("no done: {frames:#?}"));
    assert_eq!(d + 2, frames.len(), "done must be followed only by state{{idle}}: {frames:#?}");
    assert!(is_state(&frames[d + 1], "idle"), "done not followed by state{{idle}}: {frames:#?}");
    assert_eq!(frames[d]["priority"], "control", "done is a control event: {frames:#?}");
    data(&frames[d])["success"].as_bool().expect("done.success is a bool")
}

/// The one `error` frame among `frames`, which has code `code`.
pub fn the_error<'a>(frames: &'a [Value], code: &str) -> &'a Value {
    let errors = of_type(frames, "error");
    assert_eq!(errors.len(), 1, "exactly one error: {frames:#?}");
    assert_eq!(data(errors[0])["code"], code, "{}", errors[0]);
    errors[0]
}

/// How an agent's text messages stream.
#[derive(Clone, Copy)]
pub enum Deltas {
    /// Any number of deltas (an agent may send the whole text at the end).
    Any,
    /// At least one delta.
    AtLeastOne,
    /// Exactly one delta carrying the whole text, the four frames
    /// start → delta → end → message adjacent (whole parts, no streaming).
    OneWhole,
}

/// What a suite's text messages look like beyond the common bracket.
#[derive(Clone, Copy)]
pub struct MessageShape {
    /// Every message id starts with this (`""`: any id).
    pub id_prefix: &'static str,
    pub deltas: Deltas,
}

/// Every text message: `message.start` → deltas → `message.end` → `message`
/// with one id and role `assistant`, every delta of that id inside the
/// bracket and the deltas concatenating to the `message` content; no
/// message left open; plus `shape`. Returns (content, number of deltas) of
/// the complete messages in order.
pub fn assert_messages_counted(frames: &[Value], shape: &MessageShape) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for m in of_type(frames, "message") {
        let id = data(m)["id"].as_str().expect("message.id");
        assert!(id.starts_with(shape.id_prefix), "message id {id} (expected prefix {:?})", shape.id_prefix);
        assert_eq!(data(m)["role"], "assistant", "{m}");
        let content = data(m)["content"].as_str().expect("message.content").to_owned();
        let start = pos(frames, |f| ev_type(f) == "message.start" && data(f)["id"] == id)
            .unwrap_or_else(|| panic!("no message.start for {id}: {frames:#?}"));
        let end = pos(frames, |f| ev_type(f) == "message.end" && data(f)["message_id"] == id)
            .unwrap_or_else(|| panic!("no message.end for {id}: {frames:#?}"));
        let full = pos(frames, |f| ev_type(f) == "message" && data(f)["id"] == id)
            .unwrap_or_else(|| panic!("no message {id}: {frames:#?}"));
        assert_eq!(data(&frames[start])["role"], "assistant", "{}", frames[start]);
        assert!(start < end && end < full, "message {id} out of order: {frames:#?}");
        let deltas: Vec<usize> = (0..frames.len())
            .filter(|&i| ev_type(&frames[i]) == "message.delta" && data(&frames[i])["message_id"] == id)
            .collect();
        assert!(deltas.iter().all(|&i| start < i && i < end), "delta of {id} outside start..end: {frames:#?}");
        let streamed: String = deltas.iter().filter_map(|&i| data(&frames[i])["content"].as_str()).collect();
        assert_eq!(streamed, content, "deltas of {id} differ from its message");
        match shape.deltas {
            Deltas::Any => {}
            Deltas::AtLeastOne => assert!(!deltas.is_empty(), "message {id} has no delta"),
            Deltas::OneWhole => {
                let types: Vec<&str> = frames[start..(start + 4).min(frames.len())].iter().map(ev_type).collect();
                assert_eq!(types, ["message.start", "message.delta", "message.end", "message"], "{frames:#?}");
                assert_eq!(data(&frames[start + 1])["content"], content.as_str(), "the one delta is the whole text");
            }
        }
        out.push((content, deltas.len()));
    }
    assert_eq!(of_type(frames, "message.start").len(), of_type(frames, "message.end").len(), "open message");
    out
}

/// [`assert_messages_counted`], the contents only.
pub fn assert_messages(frames: &[Value], shape: &MessageShape) -> Vec<String> {
    assert_messages_counted(frames, shape).into_iter().map(|(content, _)| content).collect()
}

/// Is `p` an executable regular file?
pub fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|md| md.is_file() && md.permissions().mode() & 0o111 != 0)
}

/// The first executable `name` in `dirs`.
pub fn find_executable(name: &str, dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    dirs.into_iter().map(|d| d.join(name)).find(|p| executable(p))
}

/// The directories of `$PATH`, in order.
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect()
}

/// The bin directory `scripts/install-agents.sh all` fills by default.
pub fn project_agents_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/npm/node_modules/.bin")
}

/// Recursively look for a regular file named `name` under `dir`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// `KEY=VALUE` entries of process `pid`'s environment (none if it is gone).
pub fn proc_env(pid: i32) -> Vec<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    env.split(|b| *b == 0).map(|kv| String::from_utf8_lossy(kv).into_owned()).collect()
}
