//! Claude Code stream-json wire format (workers.md §2.3), both directions,
//! mirrored as serde types. Owns the exact spelling of every CLI message,
//! nothing else: no state, no mapping to AEP (that is `translate` and the
//! adapter state machine).
//!
//! Each stdout line is tokenised once into a [`serde_json::Value`] and then
//! read through the typed views below (`T::deserialize(&value)`), so the
//! adapter can still hand the untouched line to [`Action::Unmapped`] when a
//! type is unknown. Unknown `type`/`subtype` values land in `Unknown`/`Other`
//! catch-all variants; optional fields use [`lenient`] so one odd field never
//! loses a line that matters (above all `result`, which ends the turn).
//!
//! [`Action::Unmapped`]: crate::adapters::Action::Unmapped

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `model` of the assistant lines the CLI makes up itself (API error text).
pub const SYNTHETIC_MODEL: &str = "<synthetic>";
/// Substring of the `result.errors[]` entry when `--resume` names an unknown session.
pub const NO_CONVERSATION_FOUND: &str = "No conversation found";

use crate::adapters::wire_util;
pub use crate::adapters::wire_util::lenient;

// ---------------------------------------------------------------- stdout

/// The outcome of reading one stdout line.
pub type Parsed = wire_util::Parsed<Line>;

/// Parse one stdout line (without its `\n`). Never fails, never panics.
pub fn parse(line: &[u8]) -> Parsed {
    wire_util::parse(line)
}

/// One stdout record, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Line {
    #[serde(rename = "system")]
    System(System),
    #[serde(rename = "stream_event")]
    StreamEvent(StreamEventLine),
    #[serde(rename = "assistant")]
    Assistant(AssistantLine),
    #[serde(rename = "user")]
    User(UserLine),
    /// Boxed: the largest line type, and only one per turn.
    #[serde(rename = "result")]
    Result(Box<ResultLine>),
    #[serde(rename = "control_request")]
    ControlRequest(ControlRequestLine),
    #[serde(rename = "control_cancel_request")]
    ControlCancelRequest(ControlCancelRequestLine),
    /// Answer to one of our control requests (interrupt); nothing to map.
    #[serde(rename = "control_response")]
    ControlResponse,
    /// Any other `type` (`rate_limit_event`, …).
    #[serde(other)]
    Unknown,
}

/// `type:"system"`, by `subtype`.
#[derive(Debug, Deserialize)]
#[serde(tag = "subtype")]
pub enum System {
    #[serde(rename = "init")]
    Init(SystemInit),
    /// `status:"requesting"` before each API call, mode changes.
    #[serde(rename = "status")]
    Status,
    /// A retryable API error; the CLI retries by itself.
    #[serde(rename = "api_retry")]
    ApiRetry,
    /// Estimated thinking tokens while a thinking block streams.
    #[serde(rename = "thinking_tokens")]
    ThinkingTokens,
    /// `compact_boundary`, `hook_*`, `task_*`, …
    #[serde(other)]
    Other,
}

/// `system/init`: printed at the start of every turn.
#[derive(Debug, Deserialize)]
pub struct SystemInit {
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
}

/// `type:"stream_event"`: one raw Anthropic SSE event.
#[derive(Debug, Deserialize)]
pub struct StreamEventLine {
    pub event: StreamEvent,
    /// Set for lines of a sub-agent (Task tool); `None` for the main agent.
    #[serde(default, deserialize_with = "lenient")]
    pub parent_tool_use_id: Option<String>,
}

/// The Anthropic streaming events, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    #[serde(rename = "message_start")]
    MessageStart { message: StreamMessage },
    #[serde(rename = "content_block_start")]
    ContentBlockStart {
        #[serde(default, deserialize_with = "lenient")]
        index: Option<u64>,
        content_block: BlockStart,
    },
    #[serde(rename = "content_block_delta")]
    ContentBlockDelta {
        #[serde(default, deserialize_with = "lenient")]
        index: Option<u64>,
        delta: Delta,
    },
    #[serde(rename = "content_block_stop")]
    ContentBlockStop {
        #[serde(default, deserialize_with = "lenient")]
        index: Option<u64>,
    },
    #[serde(rename = "message_delta")]
    MessageDelta,
    #[serde(rename = "message_stop")]
    MessageStop,
    /// `ping`, `error`, future events.
    #[serde(other)]
    Other,
}

/// `message_start.message`.
#[derive(Debug, Deserialize)]
pub struct StreamMessage {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub usage: Option<Usage>,
}

/// `content_block_start.content_block`, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum BlockStart {
    #[serde(rename = "text")]
    Text {
        #[serde(default, deserialize_with = "lenient")]
        text: Option<String>,
    },
    #[serde(rename = "thinking")]
    Thinking {
        #[serde(default, deserialize_with = "lenient")]
        thinking: Option<String>,
    },
    /// `tool_use`: mapped from the completed `assistant` line instead.
    #[serde(rename = "tool_use")]
    ToolUse,
    /// `redacted_thinking`, `server_tool_use`, …
    #[serde(other)]
    Other,
}

/// `content_block_delta.delta`, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "input_json_delta")]
    InputJson,
    #[serde(rename = "signature_delta")]
    Signature,
    /// `citations_delta`, …
    #[serde(other)]
    Other,
}

/// Token usage of one API call (`message_start`, `assistant`) or of one turn (`result`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Usage {
    #[serde(default, deserialize_with = "lenient")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cache_creation_input_tokens: Option<u64>,
}

/// `type:"assistant"`: one completed content block (or, without partial
/// messages on older CLIs, several).
#[derive(Debug, Deserialize)]
pub struct AssistantLine {
    pub message: AssistantMessage,
    #[serde(default, deserialize_with = "lenient")]
    pub parent_tool_use_id: Option<String>,
    /// Set on `<synthetic>` API-error lines: `unknown`, `server_error`, …
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AssistantMessage {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(default, deserialize_with = "lenient")]
    pub usage: Option<Usage>,
}

/// A content block of an `assistant` or `user` message, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum ContentBlock {
    #[serde(rename = "text")]
    Text { text: String },
    #[serde(rename = "thinking")]
    Thinking { thinking: String },
    #[serde(rename = "tool_use")]
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(rename = "tool_result")]
    ToolResult {
        tool_use_id: String,
        /// A string or an array of content blocks.
        #[serde(default)]
        content: Value,
        #[serde(default, deserialize_with = "lenient")]
        is_error: Option<bool>,
    },
    /// `redacted_thinking`, `image`, `server_tool_use`, …
    #[serde(other)]
    Other,
}

/// `type:"user"`: tool results, or the CLI's own notes ("[Request interrupted by user]").
#[derive(Debug, Deserialize)]
pub struct UserLine {
    pub message: UserMessage,
}

#[derive(Debug, Deserialize)]
pub struct UserMessage {
    #[serde(default)]
    pub content: UserContent,
}

/// `user.message.content`: a plain string or an array of blocks.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum UserContent {
    Blocks(Vec<ContentBlock>),
    Text(String),
    #[default]
    #[serde(skip)]
    Empty,
}

/// `type:"result"`: the end of a turn. Every field is lenient: this line
/// must be recognised whatever else is wrong with it.
#[derive(Debug, Default, Deserialize)]
pub struct ResultLine {
    #[serde(default, deserialize_with = "lenient")]
    pub subtype: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_error: Option<bool>,
    /// HTTP status of the failed API call (a number, or null).
    #[serde(default, deserialize_with = "lenient")]
    pub api_error_status: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub duration_ms: Option<f64>,
    /// Final text, or the error text.
    #[serde(default, deserialize_with = "lenient")]
    pub result: Option<String>,
    /// Cumulative for the process.
    #[serde(default, deserialize_with = "lenient")]
    pub total_cost_usd: Option<f64>,
    /// Per turn.
    #[serde(default, deserialize_with = "lenient")]
    pub usage: Option<Usage>,
    /// Cumulative for the process, keyed by model id.
    #[serde(default, rename = "modelUsage", deserialize_with = "lenient")]
    pub model_usage: Option<HashMap<String, ModelUsage>>,
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Option<Vec<Value>>,
}

/// `result.modelUsage[model]`.
#[derive(Debug, Default, Deserialize)]
pub struct ModelUsage {
    #[serde(default, rename = "inputTokens", deserialize_with = "lenient")]
    pub input_tokens: Option<u64>,
    #[serde(default, rename = "outputTokens", deserialize_with = "lenient")]
    pub output_tokens: Option<u64>,
    #[serde(default, rename = "cacheReadInputTokens", deserialize_with = "lenient")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, rename = "cacheCreationInputTokens", deserialize_with = "lenient")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, rename = "contextWindow", deserialize_with = "lenient")]
    pub context_window: Option<u64>,
}

/// `type:"control_request"` sent by the CLI (permission prompts, hooks, …).
#[derive(Debug, Deserialize)]
pub struct ControlRequestLine {
    #[serde(default, deserialize_with = "lenient")]
    pub request_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub request: Option<ControlRequestBody>,
}

/// `control_request.request`, by `subtype`.
#[derive(Debug, Deserialize)]
#[serde(tag = "subtype")]
pub enum ControlRequestBody {
    #[serde(rename = "can_use_tool")]
    CanUseTool(CanUseTool),
    /// `hook_callback`, `mcp_message`, … — answered with an error.
    #[serde(other)]
    Other,
}

/// `control_request{subtype:"can_use_tool"}` (workers.md §2.5).
#[derive(Debug, Deserialize)]
pub struct CanUseTool {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub description: Option<String>,
    #[serde(default)]
    pub permission_suggestions: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub tool_use_id: Option<String>,
}

/// `type:"control_cancel_request"`: the CLI withdrew a pending request.
#[derive(Debug, Deserialize)]
pub struct ControlCancelRequestLine {
    #[serde(default, deserialize_with = "lenient")]
    pub request_id: Option<String>,
}

// ---------------------------------------------------------------- stdin

/// `{"type":"user","message":{"role":"user","content":[{"type":"text","text":…}]}}`
#[derive(Debug, Serialize)]
pub struct UserInput<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: UserInputMessage<'a>,
}

#[derive(Debug, Serialize)]
pub struct UserInputMessage<'a> {
    pub role: &'static str,
    pub content: [TextBlock<'a>; 1],
}

#[derive(Debug, Serialize)]
pub struct TextBlock<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: &'a str,
}

impl<'a> UserInput<'a> {
    pub fn new(text: &'a str) -> Self {
        UserInput {
            kind: "user",
            message: UserInputMessage { role: "user", content: [TextBlock { kind: "text", text }] },
        }
    }
}

/// `{"type":"control_request","request_id":…,"request":{"subtype":…}}`
#[derive(Debug, Serialize)]
pub struct ControlRequestOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub request_id: &'a str,
    pub request: ControlRequestOutBody,
}

#[derive(Debug, Serialize)]
pub struct ControlRequestOutBody {
    pub subtype: &'static str,
}

impl<'a> ControlRequestOut<'a> {
    pub fn interrupt(request_id: &'a str) -> Self {
        ControlRequestOut {
            kind: "control_request",
            request_id,
            request: ControlRequestOutBody { subtype: "interrupt" },
        }
    }
}

/// `{"type":"control_response","response":{"subtype":"success"|"error","request_id":…,…}}`
#[derive(Debug, Serialize)]
pub struct ControlResponseOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub response: ControlResponseBody<'a>,
}

#[derive(Debug, Serialize)]
pub struct ControlResponseBody<'a> {
    pub subtype: &'static str,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<PermissionResult<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// The answer to `can_use_tool`. `updatedInput` is mandatory on allow
/// (without it the tool fails with a ZodError, fixture `06`).
#[derive(Debug, Serialize)]
#[serde(tag = "behavior")]
pub enum PermissionResult<'a> {
    #[serde(rename = "allow")]
    Allow {
        #[serde(rename = "updatedInput")]
        updated_input: &'a Value,
        #[serde(rename = "updatedPermissions", skip_serializing_if = "Option::is_none")]
        updated_permissions: Option<Vec<&'a Value>>,
    },
    #[serde(rename = "deny")]
    Deny { message: &'a str },
}

impl<'a> ControlResponseOut<'a> {
    pub fn permission(request_id: &'a str, result: PermissionResult<'a>) -> Self {
        ControlResponseOut {
            kind: "control_response",
            response: ControlResponseBody { subtype: "success", request_id, response: Some(result), error: None },
        }
    }

    pub fn error(request_id: &'a str, error: &'a str) -> Self {
        ControlResponseOut {
            kind: "control_response",
            response: ControlResponseBody { subtype: "error", request_id, response: None, error: Some(error) },
        }
    }
}

/// Serialise one stdin record followed by `\n`. These types hold only
/// strings and JSON values, so serialisation cannot fail; if it ever did,
/// the record is dropped (an empty vector) and logged rather than panicking.
pub fn to_line<T: Serialize>(record: &T) -> Vec<u8> {
    match serde_json::to_vec(record) {
        Ok(mut v) => {
            v.push(b'\n');
            v
        }
        Err(e) => {
            log::error!("claude: cannot serialise a stdin record: {e}");
            Vec::new()
        }
    }
}
