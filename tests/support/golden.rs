//! Golden-transcript replay helpers shared by the adapter parser suites
//! (`tests/*_adapter.rs`): reading captured fixtures, rendering an
//! adapter's actions one line each, comparing them with the expected
//! sequence, and the message-bracket invariant every transcript must pass.
//! What differs between adapters (how their stdin writes are shown, whether
//! tool output is text or JSON, whether deltas are merged) is a [`Style`]
//! each suite states; driving an adapter through its fixture stays in the
//! suite (each adapter's protocol replays differently).
//!
//! Included by path (`#[path = "support/golden.rs"] mod golden;`): it needs
//! no gateway, so the parser suites do not build the black-box harness.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::Path;

use hotplex::adapters::{Action, Out};
use hotplex::protocol::{Event, Stats};
use serde_json::Value;

/// The lines of fixture `name` in `dir` (relative to the crate root).
pub fn read_lines(dir: &str, name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_owned).collect()
}

/// The lines of fixture `name` in `dir`, each parsed as JSON.
pub fn read_json_lines(dir: &str, name: &str) -> Vec<Value> {
    read_lines(dir, name).iter().map(|l| serde_json::from_str(l).expect("fixture line is JSON")).collect()
}

/// `s` cut to 48 characters (with `…` when cut).
pub fn short(s: &str) -> String {
    const MAX: usize = 48;
    if s.chars().count() <= MAX { s.to_owned() } else { format!("{}…", s.chars().take(MAX).collect::<String>()) }
}

/// How a tool result's output is rendered.
#[derive(Clone, Copy)]
pub enum ToolOutput {
    /// A string output as its text (cut); anything else as `<not a string>`.
    Text,
    /// The output's JSON text (cut), whatever its type.
    Json,
}

/// What differs between adapters in the rendering.
pub struct Style {
    /// One line for a stdin write (each agent protocol shows its own fields).
    pub stdin: fn(&[u8]) -> String,
    pub tool_output: ToolOutput,
    /// Merge consecutive deltas (message and reasoning) of one id into one line.
    pub merge_deltas: bool,
}

/// One line per action; with `style.merge_deltas`, consecutive deltas of
/// one id merged (`delta <id> +<all the text>`).
pub fn render(actions: &[Action], style: &Style) -> Vec<String> {
    let mut r: Vec<String> = Vec::new();
    let mut last_delta: Option<(String, bool)> = None;
    for a in actions {
        let (id, content, reasoning) = match a {
            Action::Emit(Event::MessageDelta { message_id, content, .. }) if style.merge_deltas => {
                (message_id, content, false)
            }
            Action::Emit(Event::Reasoning { id, content, delta: Some(true) }) if style.merge_deltas => {
                (id, content, true)
            }
            _ => {
                last_delta = None;
                r.push(render_one(a, style));
                continue;
            }
        };
        let label = if reasoning { "reasoning.delta" } else { "delta" };
        if last_delta.as_ref() == Some(&(id.clone(), reasoning))
            && let Some(prev) = r.last_mut()
        {
            prev.push_str(content);
            continue;
        }
        last_delta = Some((id.clone(), reasoning));
        r.push(format!("{label} {id} +{content}"));
    }
    r
}

/// One action as one line.
pub fn render_one(a: &Action, style: &Style) -> String {
    match a {
        Action::Emit(Event::MessageStart { id, .. }) => format!("start {id}"),
        Action::Emit(Event::MessageDelta { message_id, content, .. }) => format!("delta {message_id} +{content}"),
        Action::Emit(Event::MessageEnd { message_id }) => format!("end {message_id}"),
        Action::Emit(Event::Message { id, content, .. }) => format!("message {id} {}", short(content)),
        Action::Emit(Event::Reasoning { id, content, delta }) => format!("reasoning {id} {delta:?} {content}"),
        Action::Emit(Event::Step { id, step_type, status, .. }) => {
            format!("step {id} {step_type} {}", status.unwrap_or("-"))
        }
        Action::Emit(Event::ToolCall { id, name, input, status }) => {
            format!("tool_call {id} {name} {input} {}", status.unwrap_or("-"))
        }
        Action::Emit(Event::ToolResult { id, output, is_error }) => {
            let shown = match style.tool_output {
                ToolOutput::Text => short(output.as_str().unwrap_or("<not a string>")),
                ToolOutput::Json => short(&output.to_string()),
            };
            format!("tool_result {id} is_error={is_error} {shown}")
        }
        Action::Emit(Event::Error { code, message, details, .. }) => {
            format!("error {} {} {}", code.as_str(), short(message), details.clone().unwrap_or(Value::Null))
        }
        Action::Emit(other) => format!("emit {}", other.type_name()),
        Action::Unmapped { kind, .. } => format!("unmapped {kind}"),
        Action::Permission(p) => format!("permission {} {} {}", p.id, p.tool_name, p.description),
        Action::PermissionCancelled { id } => format!("permission_cancelled {id}"),
        Action::AgentSessionId(id) => format!("agent_session_id {id}"),
        Action::TurnEnd { success, .. } => format!("turn_end success={success}"),
        Action::ResumeFailed { message } => format!("resume_failed {message}"),
        Action::Ready => "ready".to_owned(),
        Action::Kill => "kill".to_owned(),
        Action::CloseStdin => "close_stdin".to_owned(),
        Action::Stdin(b) => (style.stdin)(b),
        other => format!("{other:?}"),
    }
}

/// What a replay driver tracks of the adapter's actions: all of them in
/// order, whether a turn is running (set by the driver when it sends an
/// input; a `TurnEnd` clears it) and the permission ids the adapter asked.
#[derive(Default)]
pub struct Collected {
    pub actions: Vec<Action>,
    pub running: bool,
    pub asked: HashSet<String>,
}

impl Collected {
    /// Move `out`'s actions here; returns the index of the first one moved.
    pub fn take(&mut self, out: &mut Out) -> usize {
        let first = self.actions.len();
        for act in out.take() {
            match &act {
                Action::TurnEnd { .. } => self.running = false,
                Action::Permission(p) => {
                    self.asked.insert(p.id.clone());
                }
                _ => {}
            }
            self.actions.push(act);
        }
        first
    }
}

/// `got` equals `want`, or a panic listing `got` (ready to paste).
pub fn assert_seq(name: &str, got: &[String], want: &[&str]) {
    let got_s: Vec<&str> = got.iter().map(String::as_str).collect();
    if got_s != want {
        let mut msg = format!("{name}: action sequence differs\n--- got ---\n");
        for g in got {
            msg.push_str(&format!("    {g:?},\n"));
        }
        panic!("{msg}");
    }
}

/// The message-bracket invariant (aep-v1.md §3.3, workers.md §1.2):
/// message ids unique, deltas only inside their start/end bracket and
/// concatenating to the final `message`, no bracket left open. Returns the
/// number of `TurnEnd`s (the suite says how many it expects).
pub fn check_brackets(name: &str, actions: &[Action]) -> usize {
    let mut open: HashMap<String, String> = HashMap::new();
    let mut ended: HashMap<String, String> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut turn_ends = 0;
    for a in actions {
        match a {
            Action::Emit(Event::MessageStart { id, .. }) => {
                assert!(seen.insert(id.clone()), "{name}: message id {id} reused");
                open.insert(id.clone(), String::new());
            }
            Action::Emit(Event::MessageDelta { message_id, content, .. }) => open
                .get_mut(message_id)
                .unwrap_or_else(|| panic!("{name}: delta outside bracket {message_id}"))
                .push_str(content),
            Action::Emit(Event::MessageEnd { message_id }) => {
                let text = open.remove(message_id).unwrap_or_else(|| panic!("{name}: end without start {message_id}"));
                ended.insert(message_id.clone(), text);
            }
            Action::Emit(Event::Message { id, content, .. }) => {
                let deltas = ended.remove(id).unwrap_or_else(|| panic!("{name}: message {id} without end"));
                assert_eq!(&deltas, content, "{name}: deltas of {id} do not add up to the message");
            }
            Action::TurnEnd { .. } => turn_ends += 1,
            _ => {}
        }
    }
    assert!(open.is_empty(), "{name}: brackets left open: {open:?}");
    assert!(ended.is_empty(), "{name}: message.end without message: {ended:?}");
    turn_ends
}

/// Every `TurnEnd`'s (success, stats), in order.
pub fn turn_ends(actions: &[Action]) -> Vec<(bool, Stats)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::TurnEnd { success, stats } => Some((*success, stats.clone())),
            _ => None,
        })
        .collect()
}

/// How strictly the adapter's stdin writes are read back.
#[derive(Clone, Copy, PartialEq)]
pub enum StdinLines {
    /// Each write is one whole JSON line (a failure otherwise).
    Strict,
    /// Writes that parse as JSON; others are passed over.
    Lenient,
}

/// The adapter's stdin writes, parsed.
pub fn stdin_json(actions: &[Action], how: StdinLines) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Stdin(b) if how == StdinLines::Strict => {
                assert_eq!(b.last(), Some(&b'\n'), "stdin records are whole lines");
                Some(serde_json::from_slice(b).expect("stdin record is JSON"))
            }
            Action::Stdin(b) => serde_json::from_slice(b).ok(),
            _ => None,
        })
        .collect()
}

/// The emitted `error` events.
pub fn errors(actions: &[Action]) -> Vec<&Action> {
    actions.iter().filter(|a| matches!(a, Action::Emit(Event::Error { .. }))).collect()
}
