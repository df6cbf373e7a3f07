//! The tool calls of the running turn: ACP announces a tool call, then
//! refines it (claude-code-acp sends `tool_call` twice, first with
//! `rawInput:{}`; opencode sends a partial input, then the full one in an
//! `in_progress` update). This table merges those notices and emits one AEP
//! `tool_call` once the input is known, and one `tool_result` when the call
//! completes or fails (workers.md §5.3). Owns nothing else.
//!
//! A `tool_call` is emitted at the first of: a repeated `tool_call` notice
//! with a non-empty input, an `in_progress` / `completed` / `failed`
//! status, or a permission request for it ([`Tools::ensure_emitted`]).

use serde_json::{Value, json};

use crate::adapters::Out;
use crate::protocol::Event;

use super::translate::{self, UNKNOWN_TOOL};
use super::wire::{ToolCallFields, status};

/// Tool calls tracked per turn; beyond it finished ones (then the oldest)
/// are forgotten.
pub const MAX_TOOLS: usize = 256;

#[derive(Debug, Default)]
struct Tool {
    id: String,
    /// `_meta.claudeCode.toolName`.
    meta_name: Option<String>,
    /// The title of the first notice (opencode: the tool's name; later
    /// titles describe the call).
    first_title: Option<String>,
    /// The latest title.
    title: Option<String>,
    kind: Option<String>,
    /// The latest non-empty input.
    input: Option<Value>,
    /// `tool_call` notices seen (not updates).
    notices: u32,
    emitted: bool,
    finished: bool,
}

impl Tool {
    fn absorb(&mut self, f: &ToolCallFields) {
        if let Some(n) = f.meta_tool_name() {
            self.meta_name = Some(n.to_owned());
        }
        if let Some(t) = f.title.as_deref().filter(|t| !t.is_empty()) {
            if self.first_title.is_none() {
                self.first_title = Some(t.to_owned());
            }
            self.title = Some(t.to_owned());
        }
        if let Some(k) = f.kind.as_deref().filter(|k| !k.is_empty()) {
            self.kind = Some(k.to_owned());
        }
        if let Some(i) = f.raw_input.as_ref().filter(|i| translate::non_empty_object(i)) {
            self.input = Some(i.clone());
        }
    }

    /// AEP `tool_call.name`: the Claude tool name, else the first title, else the kind.
    fn name(&self) -> String {
        translate::first_of(&[self.meta_name.as_deref(), self.first_title.as_deref(), self.kind.as_deref()])
            .unwrap_or(UNKNOWN_TOOL)
            .to_owned()
    }

    fn emit(&mut self, out: &mut Out) {
        if self.emitted {
            return;
        }
        self.emitted = true;
        let input = self.input.clone().unwrap_or_else(|| json!({}));
        out.emit(Event::ToolCall { id: self.id.clone(), name: self.name(), input, status: Some("executing") });
    }
}

/// What a permission request shows (workers.md §5.4).
#[derive(Debug, PartialEq)]
pub struct PermissionView {
    pub tool_name: String,
    pub description: String,
    pub input: Option<Value>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Tools {
    list: Vec<Tool>,
}

impl Tools {
    /// Forget every call (a new turn or process).
    pub fn clear(&mut self) {
        self.list.clear();
    }

    fn entry(&mut self, id: &str) -> &mut Tool {
        if let Some(pos) = self.list.iter().position(|t| t.id == id) {
            return &mut self.list[pos];
        }
        if self.list.len() >= MAX_TOOLS {
            let victim = self.list.iter().position(|t| t.finished).unwrap_or(0);
            self.list.remove(victim);
        }
        self.list.push(Tool { id: id.to_owned(), ..Tool::default() });
        let last = self.list.len() - 1;
        &mut self.list[last]
    }

    /// A `tool_call` notice (`announce`) or a `tool_call_update`. Returns
    /// false when it has no `toolCallId` (nothing can be mapped).
    pub fn update(&mut self, f: &ToolCallFields, announce: bool, out: &mut Out) -> bool {
        let Some(id) = f.tool_call_id.as_deref().filter(|i| !i.is_empty()) else { return false };
        let t = self.entry(id);
        t.absorb(f);
        if announce {
            t.notices = t.notices.saturating_add(1);
        }
        let st = f.status.as_deref();
        let ends = matches!(st, Some(status::COMPLETED) | Some(status::FAILED));
        let known =
            matches!(st, Some(status::IN_PROGRESS)) || ends || (announce && t.notices >= 2 && t.input.is_some());
        if known {
            t.emit(out);
        }
        if ends && !t.finished {
            t.finished = true;
            let is_error = st == Some(status::FAILED);
            out.emit(Event::ToolResult { id: t.id.clone(), output: translate::tool_output(f), is_error });
        }
        true
    }

    /// A permission request for `f` (the request's `toolCall`): make sure
    /// its `tool_call` went out first, and say what the prompt shows. The
    /// tool name is the Claude tool name, else the kind, else the title.
    pub fn ensure_emitted(&mut self, f: &ToolCallFields, out: &mut Out) -> PermissionView {
        let req_input = f.raw_input.clone().filter(translate::non_empty_object);
        let tracked = match f.tool_call_id.as_deref().filter(|i| !i.is_empty()) {
            Some(id) => {
                let t = self.entry(id);
                // The request's own fields complete what the notices told.
                if t.meta_name.is_none() {
                    t.meta_name = f.meta_tool_name().map(str::to_owned);
                }
                if t.first_title.is_none() {
                    t.first_title = f.title.clone().filter(|s| !s.is_empty());
                }
                if t.kind.is_none() {
                    t.kind = f.kind.clone().filter(|s| !s.is_empty());
                }
                // What is asked about is the best known input (opencode may
                // ask before its `in_progress` update carried the command).
                if req_input.is_some() {
                    t.input = req_input.clone();
                }
                t.emit(out);
                Some(&*t)
            }
            None => None,
        };
        let tool_name = translate::first_of(&[
            f.meta_tool_name(),
            tracked.and_then(|t| t.meta_name.as_deref()),
            f.kind.as_deref(),
            tracked.and_then(|t| t.kind.as_deref()),
            f.title.as_deref(),
            tracked.and_then(|t| t.title.as_deref()),
        ])
        .unwrap_or(UNKNOWN_TOOL)
        .to_owned();
        let description = translate::first_of(&[f.title.as_deref(), tracked.and_then(|t| t.title.as_deref())])
            .unwrap_or(&tool_name)
            .to_owned();
        let input = req_input.or_else(|| tracked.and_then(|t| t.input.clone()));
        PermissionView { tool_name, description, input }
    }
}
