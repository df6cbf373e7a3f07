//! Assembles the text and thinking blocks of pi's assistant messages into
//! AEP `message.*` / `reasoning` events (workers.md §6.4). Owns the block
//! bookkeeping of the current assistant message and the message ids
//! (`"pi-<turn>-<assistant message index>-<contentIndex>"`); knows nothing
//! about turns ending, permissions or tools.
//!
//! Invariants kept for the client (aep-v1.md §3.3, workers.md §1.2):
//! * a text block is always `message.start` → `message.delta`* →
//!   `message.end` → `message`, each once, with one id;
//! * the concatenated deltas equal the final `message` whenever pi's full
//!   text extends what was streamed (a missing tail is sent as one more
//!   delta before `message.end`);
//! * blocks never streamed (lost lines, a provider without deltas) are
//!   emitted whole from `message_end`; blocks left open (abort, crash) are
//!   closed by [`Assembler::flush`].

use crate::adapters::Out;
use crate::protocol::Event;

use super::wire::ContentBlock;

/// Content blocks tracked per assistant message; later indexes are dropped.
pub const MAX_BLOCKS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
}

#[derive(Debug)]
struct Block {
    index: u64,
    kind: Kind,
    /// Concatenation of the deltas sent so far.
    streamed: String,
    /// Anything emitted for this block (thinking: a reasoning event).
    emitted: bool,
    closed: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Assembler {
    /// `pi-<turn>-<n>`: the current assistant message's id prefix.
    prefix: Option<String>,
    blocks: Vec<Block>,
}

/// What a stream call made of its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Mapped (or nothing to map).
    Ok,
    /// The event fits no open block (lost or reordered lines).
    OutOfOrder,
}

pub fn block_id(prefix: &str, index: u64) -> String {
    format!("{prefix}-{index}")
}

impl Assembler {
    /// An assistant `message_start`: close what the previous message left
    /// open, then track message `n` of turn `turn`.
    pub fn message_start(&mut self, turn: u64, n: u64, out: &mut Out) {
        self.flush(out);
        self.prefix = Some(format!("pi-{turn}-{n}"));
    }

    fn has(&self, index: u64) -> bool {
        self.blocks.iter().any(|b| b.index == index)
    }

    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks.iter_mut().find(|b| b.index == index)
    }

    /// Track a new block; false when there is no message or too many blocks.
    fn open(&mut self, index: u64, kind: Kind, out: &mut Out) -> bool {
        let Some(prefix) = &self.prefix else { return false };
        if self.blocks.len() >= MAX_BLOCKS {
            return false;
        }
        if kind == Kind::Text {
            out.emit(Event::message_start(block_id(prefix, index)));
        }
        self.blocks.push(Block { index, kind, streamed: String::new(), emitted: false, closed: false });
        true
    }

    /// `text_start`.
    pub fn text_start(&mut self, index: u64, out: &mut Out) -> Fit {
        if self.has(index) || !self.open(index, Kind::Text, out) {
            return Fit::OutOfOrder;
        }
        Fit::Ok
    }

    /// `text_delta` (opens the block if its start was lost).
    pub fn text_delta(&mut self, index: u64, delta: String, out: &mut Out) -> Fit {
        if self.block(index).is_none() && !self.open(index, Kind::Text, out) {
            return Fit::OutOfOrder;
        }
        let Some(prefix) = self.prefix.clone() else { return Fit::OutOfOrder };
        let Some(b) = self.block(index) else { return Fit::OutOfOrder };
        if b.kind != Kind::Text || b.closed {
            return Fit::OutOfOrder;
        }
        if !delta.is_empty() {
            b.streamed.push_str(&delta);
            out.emit(Event::message_delta(block_id(&prefix, index), delta));
        }
        Fit::Ok
    }

    /// `text_end{content}`: close the block with pi's whole text.
    pub fn text_end(&mut self, index: u64, content: Option<String>, out: &mut Out) -> Fit {
        let Some(prefix) = self.prefix.clone() else { return Fit::OutOfOrder };
        match self.block(index) {
            Some(b) if b.kind == Kind::Text && !b.closed => {
                close(&prefix, b, content, out);
                Fit::Ok
            }
            Some(_) => Fit::OutOfOrder,
            None => {
                // Neither start nor deltas arrived: the block whole.
                let text = content.unwrap_or_default();
                if !text.is_empty() && self.open(index, Kind::Text, out) {
                    if let Some(b) = self.block(index) {
                        close(&prefix, b, Some(text), out);
                    }
                }
                Fit::Ok
            }
        }
    }

    /// `thinking_start`.
    pub fn thinking_start(&mut self, index: u64, out: &mut Out) -> Fit {
        if self.has(index) || !self.open(index, Kind::Thinking, out) {
            return Fit::OutOfOrder;
        }
        Fit::Ok
    }

    /// `thinking_delta` → `reasoning{delta:true}`.
    pub fn thinking_delta(&mut self, index: u64, delta: String, out: &mut Out) -> Fit {
        if self.block(index).is_none() && !self.open(index, Kind::Thinking, out) {
            return Fit::OutOfOrder;
        }
        let Some(prefix) = self.prefix.clone() else { return Fit::OutOfOrder };
        let Some(b) = self.block(index) else { return Fit::OutOfOrder };
        if b.kind != Kind::Thinking || b.closed {
            return Fit::OutOfOrder;
        }
        if !delta.is_empty() {
            b.emitted = true;
            out.emit(Event::Reasoning { id: block_id(&prefix, index), content: delta, delta: Some(true) });
        }
        Fit::Ok
    }

    /// `thinking_end{content}`: the whole thought, if none was streamed.
    pub fn thinking_end(&mut self, index: u64, content: Option<String>, out: &mut Out) -> Fit {
        let Some(prefix) = self.prefix.clone() else { return Fit::OutOfOrder };
        if self.block(index).is_none() && !self.open(index, Kind::Thinking, out) {
            return Fit::OutOfOrder;
        }
        let Some(b) = self.block(index) else { return Fit::OutOfOrder };
        if b.kind != Kind::Thinking || b.closed {
            return Fit::OutOfOrder;
        }
        b.closed = true;
        if let Some(text) = content.filter(|t| !t.is_empty())
            && !b.emitted
        {
            b.emitted = true;
            out.emit(Event::Reasoning { id: block_id(&prefix, index), content: text, delta: None });
        }
        Fit::Ok
    }

    /// An assistant `message_end` with its final content: close open blocks
    /// with their final text, emit blocks that were never streamed, forget
    /// the message.
    pub fn message_end(&mut self, content: Option<Vec<ContentBlock>>, out: &mut Out) {
        let Some(prefix) = self.prefix.clone() else { return };
        for (i, block) in content.into_iter().flatten().enumerate() {
            let index = i as u64;
            match block {
                ContentBlock::Text { text } => {
                    if self.block(index).is_none() && !text.is_empty() {
                        self.open(index, Kind::Text, out);
                    }
                    if let Some(b) = self.block(index).filter(|b| b.kind == Kind::Text && !b.closed) {
                        close(&prefix, b, Some(text), out);
                    }
                }
                ContentBlock::Thinking { thinking } => {
                    let _ = self.thinking_end(index, Some(thinking), out);
                }
                ContentBlock::ToolCall | ContentBlock::Other => {}
            }
        }
        self.flush(out);
    }

    /// Close every open block with what was streamed and forget the message
    /// (end of turn, abort, process exit).
    pub fn flush(&mut self, out: &mut Out) {
        if let Some(prefix) = self.prefix.take() {
            for b in &mut self.blocks {
                if b.kind == Kind::Text && !b.closed {
                    close(&prefix, b, None, out);
                }
            }
        }
        self.blocks.clear();
    }
}

/// `message.end` + `message` for a text block; `full` (pi's final text)
/// wins over the streamed text, sending the unstreamed tail first.
fn close(prefix: &str, b: &mut Block, full: Option<String>, out: &mut Out) {
    b.closed = true;
    let id = block_id(prefix, b.index);
    let streamed = std::mem::take(&mut b.streamed);
    let content = match full {
        Some(full) if full.len() > streamed.len() && full.starts_with(&streamed) => {
            out.emit(Event::message_delta(id.clone(), &full[streamed.len()..]));
            full
        }
        // A final text that does not extend the deltas would contradict
        // them: the client already has the streamed text, keep it.
        Some(_) | None => streamed,
    };
    out.emit(Event::MessageEnd { message_id: id.clone() });
    out.emit(Event::message(id, content));
}
