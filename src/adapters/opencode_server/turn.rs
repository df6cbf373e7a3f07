//! One running turn of `opencode serve`: which messages belong to it, and
//! the mapping of their parts to AEP events (workers.md §4.4). Owns the
//! per-part bookkeeping that keeps every text message bracketed
//! (`message.start` → deltas → `message.end` → `message`, workers.md §1.2),
//! tool calls and results paired, and each step counted once. Knows nothing
//! about HTTP, permissions or the turn's end signal.
//!
//! Parts arrive twice over: streamed on `GET /event` (deltas, part updates)
//! and complete in the blocking call's answer (or `GET …/message` after the
//! stream dropped). Both go through the same functions; whatever the stream
//! already delivered is not repeated, a missing tail is sent as one more
//! delta.

use serde_json::{Value, json};

use crate::adapters::Out;
use crate::protocol::{Event, Stats};

use super::translate;
use super::wire::{MessageInfo, Part, PartDelta, Role, StepFinish, TextPart, ToolPart, ToolState};

/// Parts (texts, reasoning blocks, tools, steps) and messages tracked per
/// turn; beyond it new ones are not mapped (their text still ends in the
/// final answer's reconciliation if it fits).
pub const MAX_TRACKED: usize = 1024;

#[derive(Debug)]
struct Text {
    id: String,
    /// Concatenation of the deltas sent.
    streamed: String,
    started: bool,
    closed: bool,
}

#[derive(Debug)]
struct Reasoning {
    id: String,
    streamed: String,
}

#[derive(Debug)]
struct Tool {
    call_id: String,
    called: bool,
    finished: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Turn {
    /// Request id of the blocking `POST /session/{id}/message`.
    pub prompt: Option<u64>,
    /// The gateway asked opencode to abort the turn.
    pub interrupted: bool,
    /// The event stream dropped during the turn: reconcile from `GET …/message`.
    pub gap: bool,
    /// An AGENT_ERROR was emitted for this turn.
    pub agent_error: bool,
    /// The blocking call failed at the transport level (the server is probably gone).
    pub prompt_lost: bool,
    /// The turn's user message (`info.parentID` of its answers).
    pub parent: Option<String>,
    user_msgs: Vec<String>,
    assistant_msgs: Vec<String>,
    /// Assistant messages the stream reported complete.
    completed: Vec<String>,
    texts: Vec<Text>,
    reasoning: Vec<Reasoning>,
    tools: Vec<Tool>,
    steps: Vec<String>,
    stats: Stats,
    model: Option<String>,
}

impl Turn {
    /// Every message id the turn saw (to ignore their late updates later).
    pub fn message_ids(&self) -> impl Iterator<Item = &String> {
        self.user_msgs.iter().chain(self.assistant_msgs.iter()).chain(self.parent.iter())
    }

    /// The turn's stats so far (`tool_calls` and `duration_ms` are the session's).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.model = self.model.clone();
        // Sums of small dollar amounts: drop the float noise.
        s.cost_usd = s.cost_usd.map(|c| (c * 1e10).round() / 1e10);
        s
    }

    /// A `message.updated` of this turn (already filtered for stale ids).
    pub fn on_message(&mut self, info: &MessageInfo) {
        let list = match info.role {
            Role::User => &mut self.user_msgs,
            Role::Assistant => &mut self.assistant_msgs,
            Role::Other => return,
        };
        if !list.contains(&info.id) && list.len() < MAX_TRACKED {
            list.push(info.id.clone());
        }
        if info.role == Role::Assistant && info.completed() && !self.completed.contains(&info.id) {
            self.completed.push(info.id.clone());
        }
        if info.role == Role::Assistant {
            if let (Some(p), Some(m)) = (&info.provider_id, &info.model_id) {
                self.model = Some(format!("{p}/{m}"));
            }
        }
    }

    /// The stream already reported assistant message `id` complete.
    pub fn saw_completed(&self, id: &str) -> bool {
        self.completed.iter().any(|c| c == id)
    }

    fn owns(&self, message_id: &str) -> bool {
        self.assistant_msgs.iter().any(|m| m == message_id)
    }

    /// A part of an assistant message of this turn; false if it is not one.
    pub fn on_part(&mut self, part: &Part, out: &mut Out) -> bool {
        if !part.message_id().is_some_and(|m| self.owns(m)) {
            return false;
        }
        match part {
            Part::Text(p) => self.text_update(p, out),
            Part::Reasoning(p) => self.reasoning_update(p, out),
            Part::Tool(p) => self.tool_update(p, out),
            Part::StepFinish(s) => self.step(s),
            Part::Other => {}
        }
        true
    }

    /// A `message.part.delta`; false if it is not for a known part of this turn.
    pub fn on_delta(&mut self, d: &PartDelta, out: &mut Out) -> bool {
        if !self.owns(&d.message_id) || d.field != "text" {
            return false;
        }
        if let Some(r) = self.reasoning.iter_mut().find(|r| r.id == d.part_id) {
            if !d.delta.is_empty() {
                r.streamed.push_str(&d.delta);
                out.emit(Event::Reasoning { id: r.id.clone(), content: d.delta.clone(), delta: Some(true) });
            }
            return true;
        }
        // A delta before its part: the part's update (or the final answer) brings the text.
        let Some(t) = self.texts.iter_mut().find(|t| t.id == d.part_id) else { return false };
        if !t.closed && !d.delta.is_empty() {
            send_text(t, &d.delta, out);
        }
        true
    }

    fn text_update(&mut self, p: &TextPart, out: &mut Out) {
        let i = match self.texts.iter().position(|t| t.id == p.id) {
            Some(i) => i,
            None if self.texts.len() < MAX_TRACKED => {
                self.texts.push(Text { id: p.id.clone(), streamed: String::new(), started: false, closed: false });
                self.texts.len() - 1
            }
            None => return,
        };
        let t = &mut self.texts[i];
        if t.closed {
            return;
        }
        if p.text.len() > t.streamed.len() && p.text.starts_with(t.streamed.as_str()) {
            let tail = p.text[t.streamed.len()..].to_owned();
            send_text(t, &tail, out);
        }
        if p.ended() {
            close_text(t, Some(&p.text), out);
        }
    }

    fn reasoning_update(&mut self, p: &TextPart, out: &mut Out) {
        let i = match self.reasoning.iter().position(|r| r.id == p.id) {
            Some(i) => i,
            None if self.reasoning.len() < MAX_TRACKED => {
                self.reasoning.push(Reasoning { id: p.id.clone(), streamed: String::new() });
                self.reasoning.len() - 1
            }
            None => return,
        };
        let r = &mut self.reasoning[i];
        if p.text.len() > r.streamed.len() && p.text.starts_with(r.streamed.as_str()) {
            let tail = p.text[r.streamed.len()..].to_owned();
            r.streamed.push_str(&tail);
            out.emit(Event::Reasoning { id: r.id.clone(), content: tail, delta: Some(true) });
        }
    }

    fn tool_update(&mut self, p: &ToolPart, out: &mut Out) {
        let i = match self.tools.iter().position(|t| t.call_id == p.call_id) {
            Some(i) => i,
            None if self.tools.len() < MAX_TRACKED => {
                self.tools.push(Tool { call_id: p.call_id.clone(), called: false, finished: false });
                self.tools.len() - 1
            }
            None => return,
        };
        let t = &mut self.tools[i];
        let (input, result) = match &p.state {
            ToolState::Pending | ToolState::Other => return,
            ToolState::Running { input } => (input, None),
            ToolState::Completed { input, output } => (input, Some((output, false))),
            ToolState::Error { input, error } => (input, Some((error, true))),
        };
        if !t.called {
            t.called = true;
            let input = if input.is_null() { json!({}) } else { input.clone() };
            out.emit(Event::ToolCall { id: p.call_id.clone(), name: p.tool.clone(), input, status: Some("executing") });
        }
        if let Some((output, is_error)) = result {
            if !t.finished {
                t.finished = true;
                out.emit(Event::ToolResult { id: p.call_id.clone(), output: Value::String(output.clone()), is_error });
            }
        }
    }

    fn step(&mut self, s: &StepFinish) {
        if self.steps.contains(&s.id) || self.steps.len() >= MAX_TRACKED {
            return;
        }
        self.steps.push(s.id.clone());
        translate::add_step(&mut self.stats, s);
    }

    /// Map the parts of a complete message (the blocking call's answer, or
    /// one item of `GET …/message`) that the stream may have missed.
    pub fn reconcile(&mut self, info: &MessageInfo, parts: &[Value], out: &mut Out) {
        if info.role != Role::Assistant {
            return;
        }
        self.on_message(info);
        for v in parts {
            if let Some(p) = super::wire::part(v) {
                self.on_part(&p, out);
            }
        }
    }

    /// Close every text message still open (turn over, aborted, or the
    /// worker gone): `message.end` + `message` with what was streamed.
    pub fn finish(&mut self, out: &mut Out) {
        for t in &mut self.texts {
            close_text(t, None, out);
        }
    }
}

/// Send text of a part, starting its message on the first non-empty piece.
fn send_text(t: &mut Text, piece: &str, out: &mut Out) {
    if !t.started {
        t.started = true;
        out.emit(Event::message_start(t.id.clone()));
    }
    t.streamed.push_str(piece);
    out.emit(Event::message_delta(t.id.clone(), piece));
}

/// `message.end` + `message`; a text that never had content emits nothing.
fn close_text(t: &mut Text, full: Option<&str>, out: &mut Out) {
    if t.closed {
        return;
    }
    t.closed = true;
    if !t.started {
        return;
    }
    out.emit(Event::MessageEnd { message_id: t.id.clone() });
    let content = full.unwrap_or(&t.streamed).to_owned();
    out.emit(Event::message(t.id.clone(), content));
}
