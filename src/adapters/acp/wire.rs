//! JSON-RPC 2.0 framing and the Agent Client Protocol messages hotplex
//! exchanges with an ACP agent (workers.md §5.2–§5.5), both directions,
//! mirrored as serde types. Owns the exact spelling of every method, field
//! and enum value, nothing else: no state, no mapping to AEP (that is
//! `translate` and the adapter state machine).
//!
//! Each stdout line is tokenised once into a [`serde_json::Value`] and
//! classified by its JSON-RPC shape ([`Kind`]); the adapter then reads the
//! typed views below through [`view`], so the untouched line can still go
//! to [`Action::Unmapped`]. Unknown `sessionUpdate` / content / stop values
//! land in catch-all variants and every field is optional and lenient:
//! one odd field never loses a line that matters (above all a
//! `session/prompt` response, which ends the turn).
//!
//! [`Action::Unmapped`]: crate::adapters::Action::Unmapped

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `jsonrpc` of every message.
pub const JSONRPC: &str = "2.0";
/// The ACP protocol version we speak.
pub const PROTOCOL_VERSION: u64 = 1;

/// Client → agent methods.
pub mod method {
    pub const INITIALIZE: &str = "initialize";
    pub const SESSION_NEW: &str = "session/new";
    pub const SESSION_LOAD: &str = "session/load";
    pub const SESSION_RESUME: &str = "session/resume";
    pub const SESSION_PROMPT: &str = "session/prompt";
    pub const SESSION_CANCEL: &str = "session/cancel";
    pub const SESSION_SET_MODEL: &str = "session/set_model";
    /// Agent → client notification.
    pub const SESSION_UPDATE: &str = "session/update";
    /// Agent → client request.
    pub const REQUEST_PERMISSION: &str = "session/request_permission";
}

/// JSON-RPC error codes we send.
pub mod code {
    /// Answer to any agent request we do not implement.
    pub const METHOD_NOT_FOUND: i64 = -32601;
}

/// `stopReason` values of a `session/prompt` result.
pub mod stop {
    pub const END_TURN: &str = "end_turn";
    pub const MAX_TOKENS: &str = "max_tokens";
    pub const MAX_TURN_REQUESTS: &str = "max_turn_requests";
    pub const REFUSAL: &str = "refusal";
    pub const CANCELLED: &str = "cancelled";
}

/// `status` values of a tool call.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
}

/// `kind` values of a permission option (the ids differ per agent).
pub mod option_kind {
    pub const ALLOW_ONCE: &str = "allow_once";
    pub const ALLOW_ALWAYS: &str = "allow_always";
    pub const REJECT_ONCE: &str = "reject_once";
    pub const REJECT_ALWAYS: &str = "reject_always";
}

pub use crate::adapters::wire_util::lenient;

/// Read a typed view of part of a parsed line (`None` if it does not fit).
pub fn view<T: DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

// ---------------------------------------------------------------- stdout

/// The outcome of reading one stdout line.
#[derive(Debug)]
pub enum Parsed {
    /// Empty or whitespace-only line.
    Blank,
    /// Not JSON (or not UTF-8, or truncated): agents log to stdout sometimes.
    NonJson,
    /// JSON, but not a JSON-RPC message.
    Malformed(Value),
    /// A JSON-RPC message, classified, with its parsed tree.
    Message(Kind, Value),
}

/// What a JSON-RPC message is, by its shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// An answer to one of our requests (`id` + `result` or `error`).
    Response { id: Value },
    /// An agent → client request: must be answered with the same `id`.
    Request { id: Value, method: String },
    /// An agent → client notification.
    Notification { method: String },
}

/// A request id must be a number or a string (JSON-RPC 2.0 §4).
fn valid_id(id: &Value) -> bool {
    matches!(id, Value::Number(_) | Value::String(_))
}

/// Parse one stdout line (without its `\n`). Never fails, never panics.
pub fn parse(line: &[u8]) -> Parsed {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    let raw: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(_) => return Parsed::NonJson,
    };
    let Some(obj) = raw.as_object() else { return Parsed::Malformed(raw) };
    let id = obj.get("id").filter(|id| valid_id(id)).cloned();
    let kind = match (obj.get("method").and_then(Value::as_str), id) {
        (Some(m), Some(id)) => Kind::Request { id, method: m.to_owned() },
        (Some(m), None) if obj.get("id").is_none_or(Value::is_null) => Kind::Notification { method: m.to_owned() },
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => Kind::Response { id },
        _ => return Parsed::Malformed(raw),
    };
    Parsed::Message(kind, raw)
}

/// `error` of a response.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct RpcError {
    #[serde(default, deserialize_with = "lenient")]
    pub code: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
}

/// `initialize` result.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    #[serde(default, deserialize_with = "lenient")]
    pub protocol_version: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub agent_capabilities: Option<AgentCapabilities>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCapabilities {
    #[serde(default, deserialize_with = "lenient")]
    pub load_session: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub session_capabilities: Option<SessionCapabilities>,
}

/// `agentCapabilities.sessionCapabilities`: each capability is an object
/// whose presence means "supported" (`"resume":{}`).
#[derive(Debug, Default, Deserialize)]
pub struct SessionCapabilities {
    #[serde(default)]
    pub resume: Option<Value>,
}

impl InitializeResult {
    /// The agent advertised `sessionCapabilities.resume`.
    pub fn can_resume(&self) -> bool {
        self.agent_capabilities
            .as_ref()
            .and_then(|c| c.session_capabilities.as_ref())
            .and_then(|s| s.resume.as_ref())
            .is_some_and(|r| !r.is_null())
    }

    /// The agent advertised `loadSession: true`.
    pub fn can_load(&self) -> bool {
        self.agent_capabilities.as_ref().and_then(|c| c.load_session).unwrap_or(false)
    }
}

/// Result of `session/new`, `session/resume` and `session/load` (the last
/// two may omit `sessionId`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResult {
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    /// claude-code-acp: `{currentModelId, availableModels}`.
    #[serde(default, deserialize_with = "lenient")]
    pub models: Option<Models>,
    /// opencode: `[{id, category:"model", currentValue, …}]`.
    #[serde(default, deserialize_with = "lenient")]
    pub config_options: Option<Vec<ConfigOption>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Models {
    #[serde(default, deserialize_with = "lenient")]
    pub current_model_id: Option<String>,
}

/// One entry of `configOptions` (also in `config_option_update`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigOption {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub current_value: Option<String>,
}

/// `category` of the model selector among `configOptions`.
pub const MODEL_CATEGORY: &str = "model";

/// The current model an agent reports: the `configOptions` model selector,
/// else `models.currentModelId` (`"default"` is an alias, not a model id).
pub fn current_model(models: Option<&Models>, options: Option<&[ConfigOption]>) -> Option<String> {
    let from_options = options.into_iter().flatten().find_map(|o| {
        let is_model = o.category.as_deref() == Some(MODEL_CATEGORY) || o.id.as_deref() == Some(MODEL_CATEGORY);
        if is_model { o.current_value.clone() } else { None }
    });
    from_options.or_else(|| models.and_then(|m| m.current_model_id.clone())).filter(|m| !m.is_empty() && m != "default")
}

/// `session/prompt` result.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptResult {
    #[serde(default, deserialize_with = "lenient")]
    pub stop_reason: Option<String>,
    /// opencode: token usage of the turn's last model call.
    #[serde(default, deserialize_with = "lenient")]
    pub usage: Option<PromptUsage>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromptUsage {
    #[serde(default, deserialize_with = "lenient")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub total_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cached_read_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cached_write_tokens: Option<u64>,
}

/// `session/update` params.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionNotification {
    #[serde(default, deserialize_with = "lenient")]
    pub session_id: Option<String>,
    pub update: SessionUpdate,
}

/// `params.update`, by `sessionUpdate` (workers.md §5.3).
#[derive(Debug, Deserialize)]
#[serde(tag = "sessionUpdate", rename_all = "snake_case")]
pub enum SessionUpdate {
    AgentMessageChunk(Chunk),
    AgentThoughtChunk(Chunk),
    /// Only seen in a `session/load` replay.
    UserMessageChunk,
    ToolCall(ToolCallFields),
    ToolCallUpdate(ToolCallFields),
    /// opencode: context use and cumulative session cost.
    UsageUpdate(UsageUpdate),
    Plan,
    AvailableCommandsUpdate,
    CurrentModeUpdate,
    ConfigOptionUpdate(ConfigOptionUpdate),
    /// `session_info_update`, future kinds.
    #[serde(other)]
    Other,
}

/// `agent_message_chunk` / `agent_thought_chunk`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<ContentBlock>,
    /// opencode: the agent's message id.
    #[serde(default, deserialize_with = "lenient")]
    pub message_id: Option<String>,
}

/// An ACP content block, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    /// `image`, `audio`, `resource_link`, `resource`, …
    #[serde(other)]
    Other,
}

/// The fields of `tool_call` and `tool_call_update` (all optional in an
/// update; claude-code-acp sends `tool_call` twice, opencode refines the
/// input in `in_progress` updates).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallFields {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_call_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(default)]
    pub raw_input: Option<Value>,
    #[serde(default)]
    pub raw_output: Option<Value>,
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default, rename = "_meta", deserialize_with = "lenient")]
    pub meta: Option<Meta>,
}

/// `_meta` (claude-code-acp puts the Claude tool name there).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default, deserialize_with = "lenient")]
    pub claude_code: Option<ClaudeCodeMeta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaudeCodeMeta {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_name: Option<String>,
}

impl ToolCallFields {
    /// `_meta.claudeCode.toolName`, when present and non-empty.
    pub fn meta_tool_name(&self) -> Option<&str> {
        self.meta.as_ref()?.claude_code.as_ref()?.tool_name.as_deref().filter(|n| !n.is_empty())
    }
}

/// `usage_update` (opencode).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct UsageUpdate {
    #[serde(default, deserialize_with = "lenient")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cost: Option<Cost>,
}

/// Cumulative cost of the agent session (not of the turn: verified with
/// opencode 1.18.33, also across a resume).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Cost {
    #[serde(default, deserialize_with = "lenient")]
    pub amount: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub currency: Option<String>,
}

/// `config_option_update`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigOptionUpdate {
    #[serde(default, deserialize_with = "lenient")]
    pub config_options: Option<Vec<ConfigOption>>,
}

/// `session/request_permission` params (workers.md §5.4). `options` is
/// also forwarded untouched to the client.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPermission {
    #[serde(default, deserialize_with = "lenient")]
    pub tool_call: Option<ToolCallFields>,
    #[serde(default, deserialize_with = "lenient")]
    pub options: Option<Vec<PermissionOption>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionOption {
    #[serde(default, deserialize_with = "lenient")]
    pub option_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
}

// ---------------------------------------------------------------- stdin

/// A client → agent request.
#[derive(Debug, Serialize)]
pub struct Request<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub id: u64,
    pub method: &'a str,
    pub params: P,
}

impl<'a, P: Serialize> Request<'a, P> {
    pub fn new(id: u64, method: &'a str, params: P) -> Self {
        Request { jsonrpc: JSONRPC, id, method, params }
    }
}

/// A client → agent notification (`session/cancel`).
#[derive(Debug, Serialize)]
pub struct Notification<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub method: &'a str,
    pub params: P,
}

/// Our answer to an agent request: `result` or `error`, echoing its `id`.
#[derive(Debug, Serialize)]
pub struct Response<'a, R: Serialize> {
    pub jsonrpc: &'static str,
    pub id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ErrorOut<'a> {
    pub code: i64,
    pub message: &'a str,
}

/// `initialize` params: no `fs`/`terminal` client capabilities, so the
/// agent runs its own tools (workers.md §5.2).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub protocol_version: u64,
    pub client_capabilities: ClientCapabilities,
    pub client_info: ClientInfo,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCapabilities {
    pub fs: FsCapabilities,
    pub terminal: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsCapabilities {
    pub read_text_file: bool,
    pub write_text_file: bool,
}

#[derive(Debug, Serialize)]
pub struct ClientInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl InitializeParams {
    pub fn hotplex() -> Self {
        InitializeParams {
            protocol_version: PROTOCOL_VERSION,
            client_capabilities: ClientCapabilities {
                fs: FsCapabilities { read_text_file: false, write_text_file: false },
                terminal: false,
            },
            client_info: ClientInfo { name: "hotplex", version: env!("CARGO_PKG_VERSION") },
        }
    }
}

/// `session/new` params.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSessionParams<'a> {
    pub cwd: &'a str,
    pub mcp_servers: [Value; 0],
}

/// `session/resume` and `session/load` params.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenSessionParams<'a> {
    pub session_id: &'a str,
    pub cwd: &'a str,
    pub mcp_servers: [Value; 0],
}

/// `session/prompt` params: one text block.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptParams<'a> {
    pub session_id: &'a str,
    pub prompt: [TextBlock<'a>; 1],
}

#[derive(Debug, Serialize)]
pub struct TextBlock<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: &'a str,
}

impl<'a> PromptParams<'a> {
    pub fn text(session_id: &'a str, text: &'a str) -> Self {
        PromptParams { session_id, prompt: [TextBlock { kind: "text", text }] }
    }
}

/// `session/cancel` params.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIdParams<'a> {
    pub session_id: &'a str,
}

/// `session/set_model` params (verified with both agents).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetModelParams<'a> {
    pub session_id: &'a str,
    pub model_id: &'a str,
}

/// The result answering `session/request_permission`.
#[derive(Debug, Serialize)]
pub struct PermissionResult<'a> {
    pub outcome: PermissionOutcome<'a>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PermissionOutcome<'a> {
    Selected {
        #[serde(rename = "optionId")]
        option_id: &'a str,
    },
    Cancelled,
}

/// Serialise one stdin message followed by `\n`. These types hold only
/// strings, numbers and JSON values, so serialisation cannot fail; if it
/// ever did, the message is dropped (an empty vector) and logged rather
/// than panicking.
pub fn to_line<T: Serialize>(msg: &T) -> Vec<u8> {
    match serde_json::to_vec(msg) {
        Ok(mut v) => {
            v.push(b'\n');
            v
        }
        Err(e) => {
            log::error!("acpx: cannot serialise a stdin message: {e}");
            Vec::new()
        }
    }
}

/// A client → agent request line.
pub fn request<P: Serialize>(id: u64, method: &str, params: P) -> Vec<u8> {
    to_line(&Request::new(id, method, params))
}

/// A client → agent notification line.
pub fn notification<P: Serialize>(method: &str, params: P) -> Vec<u8> {
    to_line(&Notification { jsonrpc: JSONRPC, method, params })
}

/// The answer to an agent's permission request.
pub fn permission_response(id: &Value, outcome: PermissionOutcome<'_>) -> Vec<u8> {
    to_line(&Response { jsonrpc: JSONRPC, id, result: Some(PermissionResult { outcome }), error: None })
}

/// A JSON-RPC error answer to an agent request.
pub fn error_response(id: &Value, code: i64, message: &str) -> Vec<u8> {
    to_line(&Response::<()> { jsonrpc: JSONRPC, id, result: None, error: Some(ErrorOut { code, message }) })
}
