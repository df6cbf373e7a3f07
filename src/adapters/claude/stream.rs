//! Assembles text and thinking blocks from `stream_event` lines and the
//! completed `assistant` lines into AEP `message.*` / `reasoning` events
//! (workers.md §2.4). Owns the per-message block bookkeeping and the message
//! ids (`"<anthropic msg id>:<content index>"`); knows nothing about turns,
//! permissions or tools.
//!
//! Invariants kept for the client (aep-v1.md §3.3, workers.md §1.2):
//! * a text block is always `message.start` → `message.delta`* →
//!   `message.end` → `message`, each once, with one id;
//! * the concatenated deltas equal the final `message` whenever the CLI's
//!   full text extends what was streamed (a missing tail is sent as one more
//!   delta before `message.end`);
//! * blocks left open (interrupt, stream error, lost lines) are closed by
//!   [`Assembler::flush`] at the end of the turn.

use std::collections::VecDeque;

use crate::adapters::Out;
use crate::protocol::Event;

/// Concurrent streams kept (main agent + sub-agents running in parallel).
/// Beyond it the oldest stream is flushed and forgotten.
pub const MAX_STREAMS: usize = 16;
/// Content blocks tracked per message; later indexes are not streamed
/// (their `assistant` line is still mapped whole).
pub const MAX_BLOCKS: usize = 1024;
/// Messages whose `assistant`-line block counter is remembered.
const MAX_COUNTERS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    Other,
}

#[derive(Debug)]
struct Block {
    index: u64,
    kind: Kind,
    /// Concatenation of the deltas sent so far.
    streamed: String,
    /// Full text from the matching `assistant` line, when it came.
    full: Option<String>,
    /// Anything emitted for this block (thinking: a reasoning event).
    emitted: bool,
    closed: bool,
}

impl Block {
    fn new(index: u64, kind: Kind) -> Self {
        Block { index, kind, streamed: String::new(), full: None, emitted: false, closed: false }
    }
}

/// One streaming source: the main agent (`parent == None`) or one sub-agent.
#[derive(Debug)]
struct Stream {
    parent: Option<String>,
    msg_id: String,
    blocks: Vec<Block>,
}

impl Stream {
    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks.iter_mut().find(|b| b.index == index)
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Assembler {
    streams: Vec<Stream>,
    /// `(message id, next content index)` for `assistant` lines.
    counters: VecDeque<(String, u64)>,
}

/// A message id for a message whose own id never arrived (lost line).
fn fallback_msg_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

pub fn block_id(msg_id: &str, index: u64) -> String {
    format!("{msg_id}:{index}")
}

impl Assembler {
    fn stream_pos(&self, parent: Option<&str>) -> Option<usize> {
        self.streams.iter().position(|s| s.parent.as_deref() == parent)
    }

    /// The stream for `parent`, created with a fallback message id if no
    /// `message_start` was seen for it.
    fn stream_mut(&mut self, parent: Option<&str>, out: &mut Out) -> &mut Stream {
        let pos = match self.stream_pos(parent) {
            Some(p) => p,
            None => self.push_stream(parent, fallback_msg_id(), out),
        };
        &mut self.streams[pos]
    }

    fn push_stream(&mut self, parent: Option<&str>, msg_id: String, out: &mut Out) -> usize {
        if self.streams.len() >= MAX_STREAMS {
            let mut old = self.streams.remove(0);
            close_all(&mut old, out);
        }
        self.streams.push(Stream { parent: parent.map(str::to_owned), msg_id, blocks: Vec::new() });
        self.streams.len() - 1
    }

    /// `message_start`: close what the previous message of this stream left
    /// open (a retried request), then track the new message.
    pub fn message_start(&mut self, parent: Option<&str>, msg_id: Option<String>, out: &mut Out) {
        let msg_id = msg_id.filter(|s| !s.is_empty()).unwrap_or_else(fallback_msg_id);
        match self.stream_pos(parent) {
            Some(p) => {
                let s = &mut self.streams[p];
                close_all(s, out);
                s.msg_id = msg_id;
                s.blocks.clear();
            }
            None => {
                self.push_stream(parent, msg_id, out);
            }
        }
    }

    /// `content_block_start` of a text block.
    pub fn text_start(&mut self, parent: Option<&str>, index: u64, initial: Option<String>, out: &mut Out) {
        let s = self.stream_mut(parent, out);
        if s.block(index).is_some() || s.blocks.len() >= MAX_BLOCKS {
            return;
        }
        out.emit(Event::message_start(block_id(&s.msg_id, index)));
        s.blocks.push(Block::new(index, Kind::Text));
        if let Some(t) = initial.filter(|t| !t.is_empty()) {
            text_delta_in(s, index, t, out);
        }
    }

    /// `content_block_start` of a thinking block.
    pub fn thinking_start(&mut self, parent: Option<&str>, index: u64, initial: Option<String>, out: &mut Out) {
        self.start_other(parent, index, Kind::Thinking, out);
        if let Some(t) = initial.filter(|t| !t.is_empty()) {
            self.thinking_delta(parent, index, t, out);
        }
    }

    /// `content_block_start` of any other block (tool_use, …): tracked so
    /// its index is not mistaken for text.
    pub fn other_start(&mut self, parent: Option<&str>, index: u64, out: &mut Out) {
        self.start_other(parent, index, Kind::Other, out);
    }

    fn start_other(&mut self, parent: Option<&str>, index: u64, kind: Kind, out: &mut Out) {
        let s = self.stream_mut(parent, out);
        if s.block(index).is_none() && s.blocks.len() < MAX_BLOCKS {
            s.blocks.push(Block::new(index, kind));
        }
    }

    /// `text_delta`. Returns false when the delta fits no open text block.
    pub fn text_delta(&mut self, parent: Option<&str>, index: u64, text: String, out: &mut Out) -> bool {
        let s = self.stream_mut(parent, out);
        if s.block(index).is_none() {
            // The block's start line was lost: open it now.
            if s.blocks.len() >= MAX_BLOCKS {
                return false;
            }
            out.emit(Event::message_start(block_id(&s.msg_id, index)));
            s.blocks.push(Block::new(index, Kind::Text));
        }
        text_delta_in(s, index, text, out)
    }

    /// `thinking_delta` → `reasoning{delta:true}`.
    pub fn thinking_delta(&mut self, parent: Option<&str>, index: u64, text: String, out: &mut Out) -> bool {
        let s = self.stream_mut(parent, out);
        let id = block_id(&s.msg_id, index);
        if s.block(index).is_none() {
            if s.blocks.len() >= MAX_BLOCKS {
                return false;
            }
            s.blocks.push(Block::new(index, Kind::Thinking));
        }
        let Some(b) = s.block(index) else { return false };
        if b.kind != Kind::Thinking || b.closed {
            return false;
        }
        if !text.is_empty() {
            b.emitted = true;
            out.emit(Event::Reasoning { id, content: text, delta: Some(true) });
        }
        true
    }

    /// `content_block_stop`.
    pub fn block_stop(&mut self, parent: Option<&str>, index: u64, out: &mut Out) {
        let Some(p) = self.stream_pos(parent) else { return };
        let s = &mut self.streams[p];
        let msg_id = s.msg_id.clone();
        if let Some(b) = s.block(index) {
            close_block(&msg_id, b, out);
        }
    }

    /// `message_stop`: every block of the message is complete. The message
    /// stays known so a late `assistant` line is not mapped twice.
    pub fn message_stop(&mut self, parent: Option<&str>, out: &mut Out) {
        if let Some(p) = self.stream_pos(parent) {
            close_all(&mut self.streams[p], out);
        }
    }

    /// Reserve content indexes for the `n` blocks of one `assistant` line of
    /// message `msg_id`; returns the index of the first.
    pub fn assistant_indexes(&mut self, msg_id: &str, n: u64) -> u64 {
        if let Some(c) = self.counters.iter_mut().find(|(id, _)| id == msg_id) {
            let base = c.1;
            c.1 = c.1.saturating_add(n);
            return base;
        }
        if self.counters.len() >= MAX_COUNTERS {
            self.counters.pop_front();
        }
        self.counters.push_back((msg_id.to_owned(), n));
        0
    }

    /// A completed text block from an `assistant` line. With stream events it
    /// only supplies the full text for the block's `message`; without them
    /// (no `--include-partial-messages`, or lost lines) it is emitted whole.
    pub fn assistant_text(&mut self, msg_id: &str, index: u64, text: String, out: &mut Out) {
        let mut index = index;
        if let Some(s) = self.streams.iter_mut().find(|s| s.msg_id == msg_id) {
            let target = match s.block(index) {
                Some(b) if b.kind == Kind::Text => Some(index),
                _ => s.blocks.iter().find(|b| b.kind == Kind::Text && !b.closed && b.full.is_none()).map(|b| b.index),
            };
            if let Some(i) = target {
                if let Some(b) = s.block(i)
                    && !b.closed
                {
                    b.full = Some(text);
                }
                return;
            }
            // Not streamed: emit it whole under an index no other block of
            // this message uses, and remember it so it is not sent twice.
            if s.block(index).is_some() {
                index = s.blocks.iter().map(|b| b.index).max().unwrap_or(index).saturating_add(1);
            }
            if s.blocks.len() < MAX_BLOCKS {
                let mut b = Block::new(index, Kind::Text);
                b.closed = true;
                s.blocks.push(b);
            }
        }
        emit_whole_text(&block_id(msg_id, index), text, out);
    }

    /// A completed thinking block from an `assistant` line.
    pub fn assistant_thinking(&mut self, msg_id: &str, index: u64, text: String, out: &mut Out) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.msg_id == msg_id)
            && let Some(b) = s.block(index)
            && b.kind == Kind::Thinking
        {
            if b.emitted {
                return;
            }
            if b.closed {
                b.emitted = true;
                if !text.is_empty() {
                    out.emit(Event::Reasoning { id: block_id(msg_id, index), content: text, delta: None });
                }
            } else {
                b.full = Some(text);
            }
            return;
        }
        if !text.is_empty() {
            out.emit(Event::Reasoning { id: block_id(msg_id, index), content: text, delta: None });
        }
    }

    /// Close every open block of every stream and forget them (end of turn,
    /// process exit).
    pub fn flush(&mut self, out: &mut Out) {
        for s in &mut self.streams {
            close_all(s, out);
        }
        self.streams.clear();
        self.counters.clear();
    }
}

fn text_delta_in(s: &mut Stream, index: u64, text: String, out: &mut Out) -> bool {
    let id = block_id(&s.msg_id, index);
    let Some(b) = s.block(index) else { return false };
    if b.kind != Kind::Text || b.closed {
        return false;
    }
    if !text.is_empty() {
        b.streamed.push_str(&text);
        out.emit(Event::message_delta(id, text));
    }
    true
}

fn close_all(s: &mut Stream, out: &mut Out) {
    let msg_id = s.msg_id.clone();
    for b in &mut s.blocks {
        close_block(&msg_id, b, out);
    }
}

fn close_block(msg_id: &str, b: &mut Block, out: &mut Out) {
    if b.closed {
        return;
    }
    b.closed = true;
    let id = block_id(msg_id, b.index);
    match b.kind {
        Kind::Text => {
            let streamed = std::mem::take(&mut b.streamed);
            let content = match b.full.take() {
                Some(full) => {
                    if full.len() > streamed.len() && full.starts_with(&streamed) {
                        out.emit(Event::message_delta(id.clone(), &full[streamed.len()..]));
                    }
                    full
                }
                None => streamed,
            };
            out.emit(Event::MessageEnd { message_id: id.clone() });
            out.emit(Event::message(id, content));
        }
        Kind::Thinking => {
            if let Some(full) = b.full.take()
                && !b.emitted
                && !full.is_empty()
            {
                b.emitted = true;
                out.emit(Event::Reasoning { id, content: full, delta: None });
            }
        }
        Kind::Other => {}
    }
}

/// start / one delta / end / message for a text known only whole.
fn emit_whole_text(id: &str, text: String, out: &mut Out) {
    if text.is_empty() {
        return;
    }
    out.emit(Event::message_start(id));
    out.emit(Event::message_delta(id, text.clone()));
    out.emit(Event::MessageEnd { message_id: id.to_owned() });
    out.emit(Event::message(id, text));
}
