//! pi RPC mode wire format (workers.md §6.2–6.5; pi's docs/rpc.md), both
//! directions, mirrored as serde types. Owns the exact spelling of every
//! pi record, nothing else: no state, no mapping to AEP (that is
//! `translate` and the adapter state machine).
//!
//! Parsing is typed and skips what the adapter does not use, because pi's
//! lines are large: every `message_update` repeats the whole partial
//! message twice (`message` and `assistantMessageEvent.partial`) and
//! `agent_end` carries the run's every message. [`parse`] first reads only
//! `type` (all other values are skipped without allocating), then
//! deserializes the one struct for that type straight from the bytes; the
//! structs leave the repeated messages out, so they are skipped too. A
//! [`serde_json::Value`] is built ([`raw`]) only for a line the adapter
//! passes on as [`Action::Unmapped`]. Unknown `type`s and event kinds land in
//! catch-alls; optional fields use [`lenient`] so one odd field never loses
//! a line that matters (above all `agent_end`, which ends the turn).
//!
//! [`Action::Unmapped`]: crate::adapters::Action::Unmapped

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `title` of the permission-gate extension's confirm dialogs (workers.md §6.5).
pub const PERMISSION_TITLE: &str = "hotplex.permission";
/// pi's stderr text when `--session` names no stored session (workers.md §6.1).
pub const NO_SESSION_FOUND: &str = "No session found";

pub use crate::adapters::wire_util::lenient;

// ---------------------------------------------------------------- stdout

/// The outcome of reading one stdout line.
#[derive(Debug)]
pub enum Parsed {
    /// Empty or whitespace-only line.
    Blank,
    /// Not JSON (or not UTF-8, or truncated).
    NonJson,
    /// JSON, but not an object, or not of the shape its `type` promises.
    Malformed,
    /// A record of a known `type` (or [`Line::Unknown`]).
    Line(Line),
}

/// Only the `type` of a record; every other member is skipped.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
}

/// Parse one stdout line (without its `\n`). Never fails, never panics.
pub fn parse(line: &[u8]) -> Parsed {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    // A derived struct also accepts a JSON array: only objects are records.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            Ok(_) => Parsed::Malformed,
            Err(_) => Parsed::NonJson,
        };
    }
    let tag: Tag<'_> = match serde_json::from_slice(line) {
        Ok(t) => t,
        Err(e) if e.is_data() => return Parsed::Malformed,
        Err(_) => return Parsed::NonJson,
    };
    let Some(ty) = tag.ty else { return Parsed::Malformed };
    let typed = match ty.as_ref() {
        "response" => typed(line, Line::Response),
        "agent_start" => Some(Line::AgentStart),
        "agent_end" => Some(Line::AgentEnd),
        "turn_start" | "turn_end" => Some(Line::TurnBoundary),
        "message_start" => typed(line, |m| Line::MessageStart(Box::new(m))),
        "message_end" => typed(line, |m| Line::MessageEnd(Box::new(m))),
        "message_update" => typed(line, Line::MessageUpdate),
        "tool_execution_start" => typed(line, Line::ToolExecutionStart),
        "tool_execution_update" => Some(Line::ToolExecutionUpdate),
        "tool_execution_end" => typed(line, Line::ToolExecutionEnd),
        "extension_ui_request" => typed(line, Line::ExtensionUiRequest),
        "auto_retry_start" | "auto_retry_end" => Some(Line::Notice(Notice::AutoRetry)),
        "compaction_start" | "compaction_end" => Some(Line::Notice(Notice::Compaction)),
        "queue_update" => Some(Line::Notice(Notice::Queue)),
        "extension_error" => Some(Line::Notice(Notice::ExtensionError)),
        _ => Some(Line::Unknown),
    };
    typed.map_or(Parsed::Malformed, Parsed::Line)
}

fn typed<T: DeserializeOwned>(line: &[u8], wrap: fn(T) -> Line) -> Option<Line> {
    serde_json::from_slice(line).ok().map(wrap)
}

/// The whole line as a JSON tree (for [`Action::Unmapped`]); `None` if it is not JSON.
///
/// [`Action::Unmapped`]: crate::adapters::Action::Unmapped
pub fn raw(line: &[u8]) -> Option<Value> {
    serde_json::from_slice(line).ok()
}

/// One stdout record, by `type`.
#[derive(Debug)]
pub enum Line {
    /// `type:"response"`: the answer to one of our commands.
    Response(Response),
    /// The agent began processing a prompt.
    AgentStart,
    /// The run is over (`messages` skipped): the end of the turn.
    AgentEnd,
    /// `turn_start` / `turn_end`: one model round; nothing to map.
    TurnBoundary,
    /// Boxed, like `MessageEnd`: the largest records, one per message.
    MessageStart(Box<MessageEvent>),
    MessageEnd(Box<MessageEvent>),
    MessageUpdate(MessageUpdate),
    ToolExecutionStart(ToolExecutionStart),
    /// Accumulated partial tool output (`partialResult`); not mapped.
    ToolExecutionUpdate,
    ToolExecutionEnd(ToolExecutionEnd),
    ExtensionUiRequest(UiRequest),
    /// A known event with nothing to map (passed on as `raw`).
    Notice(Notice),
    /// Any other `type`.
    Unknown,
}

/// Known informational events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `auto_retry_start` / `auto_retry_end`: pi retries a transient API error by itself.
    AutoRetry,
    /// `compaction_start` / `compaction_end`.
    Compaction,
    /// `queue_update` (steering / follow-up queues; we queue nothing).
    Queue,
    /// `extension_error`: an extension threw (a throwing `tool_call` handler blocks the tool).
    ExtensionError,
}

/// `{"type":"response","id"?,"command","success","error"?,"data"?}`.
#[derive(Debug, Deserialize)]
pub struct Response {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub command: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub success: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<String>,
    /// Per command; `get_state` → [`SessionState`].
    #[serde(default)]
    pub data: Option<Value>,
}

/// `get_state` response `data` (pi's `RpcSessionState`, the fields we read).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<Model>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_streaming: Option<bool>,
}

/// pi's `Model` (the fields we read).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub context_window: Option<u64>,
}

/// `message_start` / `message_end`: `{"message": AgentMessage}`.
#[derive(Debug, Deserialize)]
pub struct MessageEvent {
    pub message: AgentMessage,
}

/// pi's `AgentMessage`, flattened over its roles (`user`, `assistant`,
/// `toolResult`, `bashExecution`, …); the assistant fields are the ones read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessage {
    #[serde(default, deserialize_with = "lenient")]
    pub role: Option<String>,
    /// Assistant content blocks (a user message's string content reads as `None`).
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<Vec<ContentBlock>>,
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub usage: Option<Usage>,
    /// `stop`, `length`, `toolUse`, `error`, `aborted`.
    #[serde(default, deserialize_with = "lenient")]
    pub stop_reason: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub error_message: Option<String>,
}

/// `role` of the messages the adapter maps.
pub const ROLE_ASSISTANT: &str = "assistant";

/// Stop reasons (pi-ai `StopReason`).
pub mod stop {
    pub const STOP: &str = "stop";
    pub const LENGTH: &str = "length";
    pub const TOOL_USE: &str = "toolUse";
    pub const ERROR: &str = "error";
    pub const ABORTED: &str = "aborted";
}

/// One block of an assistant message, by `type`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ContentBlock {
    #[serde(rename = "text")]
    Text {
        #[serde(default)]
        text: String,
    },
    #[serde(rename = "thinking")]
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    /// `toolCall`: mapped from `tool_execution_start` instead.
    #[serde(rename = "toolCall")]
    ToolCall,
    /// `image`, future block types.
    #[serde(other)]
    Other,
}

/// pi-ai `Usage` of one assistant message.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default, deserialize_with = "lenient")]
    pub input: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub output: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cache_read: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cache_write: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub total_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cost: Option<Cost>,
}

/// `usage.cost` in dollars, from the provider's price table in models.json.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Cost {
    #[serde(default, deserialize_with = "lenient")]
    pub total: Option<f64>,
}

/// `message_update`: `{"assistantMessageEvent": {…}, "message": <partial>}`;
/// the partial message (also inside the event as `partial`) is skipped.
#[derive(Debug, Deserialize)]
pub struct MessageUpdate {
    #[serde(rename = "assistantMessageEvent")]
    pub event: AssistantEvent,
}

/// pi-ai `AssistantMessageEvent`, flat: a tagged enum would buffer the
/// skipped `partial` message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssistantEvent {
    /// See [`event`].
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub content_index: Option<u64>,
    /// `*_delta`: the increment.
    #[serde(default, deserialize_with = "lenient")]
    pub delta: Option<String>,
    /// `text_end` / `thinking_end`: the block's whole text.
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<String>,
}

/// `assistantMessageEvent.type` values.
pub mod event {
    pub const START: &str = "start";
    pub const TEXT_START: &str = "text_start";
    pub const TEXT_DELTA: &str = "text_delta";
    pub const TEXT_END: &str = "text_end";
    pub const THINKING_START: &str = "thinking_start";
    pub const THINKING_DELTA: &str = "thinking_delta";
    pub const THINKING_END: &str = "thinking_end";
    pub const TOOLCALL_START: &str = "toolcall_start";
    pub const TOOLCALL_DELTA: &str = "toolcall_delta";
    pub const TOOLCALL_END: &str = "toolcall_end";
    pub const DONE: &str = "done";
    pub const ERROR: &str = "error";
}

/// `tool_execution_start{toolCallId, toolName, args}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolExecutionStart {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_call_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub args: Option<Value>,
}

/// `tool_execution_end{toolCallId, toolName, result:{content,details}, isError}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolExecutionEnd {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_call_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub result: Option<ToolResult>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_error: Option<bool>,
}

/// A tool result: content blocks (`details` skipped).
#[derive(Debug, Default, Deserialize)]
pub struct ToolResult {
    #[serde(default)]
    pub content: Value,
}

/// `extension_ui_request{id, method, title?, message?, …}` (docs/rpc.md
/// "Extension UI Protocol"); the fields of the other methods are skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UiRequest {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub method: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub title: Option<String>,
    /// `confirm`: the question (the gate: JSON of [`GateQuestion`]).
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
}

/// `extension_ui_request.method` values.
pub mod ui {
    /// Dialogs: block pi until answered.
    pub const CONFIRM: &str = "confirm";
    pub const SELECT: &str = "select";
    pub const INPUT: &str = "input";
    pub const EDITOR: &str = "editor";
    /// Fire-and-forget: nothing to answer.
    pub const FIRE_AND_FORGET: [&str; 5] = ["notify", "setStatus", "setWidget", "setTitle", "set_editor_text"];
}

/// The permission gate's confirm `message`: `{toolName, toolCallId, input}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateQuestion {
    pub tool_name: String,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_call_id: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
}

// ---------------------------------------------------------------- stdin

/// A command for pi's stdin (one JSON line).
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command<'a> {
    /// Start a run with the user's text.
    Prompt { id: &'a str, message: &'a str },
    /// Stop the running run.
    Abort { id: &'a str },
    /// Ask for the session id, model, …
    GetState { id: &'a str },
    /// Answer a dialog: `confirmed` for a confirm, or `cancelled:true` for any dialog.
    ExtensionUiResponse {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        confirmed: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cancelled: Option<bool>,
    },
}

impl<'a> Command<'a> {
    pub fn confirm(id: &'a str, confirmed: bool) -> Self {
        Command::ExtensionUiResponse { id, confirmed: Some(confirmed), cancelled: None }
    }
    pub fn cancel(id: &'a str) -> Self {
        Command::ExtensionUiResponse { id, confirmed: None, cancelled: Some(true) }
    }
}

/// `command` values of the responses we read.
pub mod command {
    pub const PROMPT: &str = "prompt";
    pub const ABORT: &str = "abort";
    pub const GET_STATE: &str = "get_state";
}

/// Serialize a record as one stdin line (with `\n`).
pub fn to_line<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty object keeps the line valid.
    let mut b = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    b.push(b'\n');
    b
}
