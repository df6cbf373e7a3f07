//! Turns ACP `agent_message_chunk` / `agent_thought_chunk` runs into AEP
//! `message.*` and `reasoning` events (workers.md §1.2, §5.3). Owns the
//! open run and the message ids; knows nothing about tools, permissions or
//! the JSON-RPC exchange.
//!
//! A run is a sequence of chunks of one kind. A text run is bracketed
//! `message.start` → `message.delta`* → `message.end` → `message`, each
//! once, with one id; the deltas concatenate to the `message`. The start is
//! sent with the first non-empty chunk (claude-code-acp opens every run
//! with `""`), so a run that stays empty sends nothing. A run ends when a
//! chunk of the other kind, a content update (tool call, plan) or the end
//! of the turn arrives ([`Runs::close`]).
//!
//! Ids: opencode's `messageId` when the chunk carries one (made unique with
//! a `-<k>` suffix if the agent reuses it for a later run), else
//! `acp-<tag>-<turn>-<n>` where `n` counts the turn's runs and `tag` is
//! random per process: the session's event log outlives processes and
//! gateway restarts, and ids must stay unique within the session.

use std::collections::VecDeque;

use crate::adapters::Out;
use crate::protocol::Event;

/// Agent message ids remembered for de-duplication.
const MAX_USED_IDS: usize = 256;

#[derive(Debug)]
enum Open {
    Text {
        id: String,
        /// The agent's `messageId` of the run (`None` for agents without one).
        agent_id: Option<String>,
        started: bool,
        text: String,
    },
    Thought {
        id: String,
    },
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Runs {
    tag: String,
    turn: u64,
    n: u64,
    open: Option<Open>,
    used: VecDeque<String>,
}

impl Runs {
    pub fn new(tag: String) -> Self {
        Runs { tag, ..Runs::default() }
    }

    /// A new turn: run numbers restart (the turn number keeps ids unique).
    pub fn begin_turn(&mut self, turn: u64, out: &mut Out) {
        self.close(out);
        self.turn = turn;
        self.n = 0;
    }

    fn next_id(&mut self) -> String {
        self.n += 1;
        format!("acp-{}-{}-{}", self.tag, self.turn, self.n)
    }

    /// The AEP id for a run of agent message `agent_id`, unique among the
    /// ids handed out so far.
    fn agent_run_id(&mut self, agent_id: &str) -> String {
        let mut id = agent_id.to_owned();
        let mut k = 1;
        while self.used.iter().any(|u| *u == id) {
            k += 1;
            id = format!("{agent_id}-{k}");
        }
        if self.used.len() >= MAX_USED_IDS {
            self.used.pop_front();
        }
        self.used.push_back(id.clone());
        id
    }

    /// One `agent_message_chunk`.
    pub fn text(&mut self, agent_id: Option<&str>, chunk: &str, out: &mut Out) {
        let agent_id = agent_id.filter(|a| !a.is_empty());
        let continues = matches!(&self.open, Some(Open::Text { agent_id: a, .. }) if a.as_deref() == agent_id);
        if !continues {
            self.close(out);
            let id = match agent_id {
                Some(a) => self.agent_run_id(a),
                None => self.next_id(),
            };
            self.open =
                Some(Open::Text { id, agent_id: agent_id.map(str::to_owned), started: false, text: String::new() });
        }
        let Some(Open::Text { id, started, text, .. }) = self.open.as_mut() else { return };
        if chunk.is_empty() {
            return;
        }
        if !*started {
            *started = true;
            out.emit(Event::message_start(id.clone()));
        }
        text.push_str(chunk);
        out.emit(Event::message_delta(id.clone(), chunk));
    }

    /// One `agent_thought_chunk` → `reasoning{delta:true}`.
    pub fn thought(&mut self, chunk: &str, out: &mut Out) {
        if !matches!(self.open, Some(Open::Thought { .. })) {
            self.close(out);
            let id = self.next_id();
            self.open = Some(Open::Thought { id });
        }
        if let Some(Open::Thought { id }) = &self.open
            && !chunk.is_empty()
        {
            out.emit(Event::Reasoning { id: id.clone(), content: chunk.to_owned(), delta: Some(true) });
        }
    }

    /// End the open run: a started text run gets `message.end` + `message`.
    pub fn close(&mut self, out: &mut Out) {
        if let Some(Open::Text { id, started: true, text, .. }) = self.open.take() {
            out.emit(Event::MessageEnd { message_id: id.clone() });
            out.emit(Event::message(id, text));
        }
    }
}
