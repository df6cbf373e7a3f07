//! `opencode serve` 1.18.33 JSON, mirrored as serde types (workers.md §4.2,
//! §4.3; fixtures `opencode_server/*.sse`). Only the fields the adapter
//! reads are typed; everything else is ignored, unknown event types, part
//! types and tool states land in catch-all variants. Each event is parsed
//! once, straight into these types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One `GET /event` server-sent event: `{"id","type","properties"}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "server.connected")]
    ServerConnected {},
    #[serde(rename = "server.heartbeat")]
    ServerHeartbeat {},
    #[serde(rename = "message.updated")]
    MessageUpdated { properties: MessageUpdated },
    #[serde(rename = "message.part.updated")]
    PartUpdated { properties: PartUpdated },
    #[serde(rename = "message.part.delta")]
    PartDelta { properties: PartDelta },
    #[serde(rename = "permission.asked")]
    PermissionAsked { properties: PermissionAsked },
    #[serde(rename = "permission.replied")]
    PermissionReplied { properties: PermissionReplied },
    #[serde(rename = "session.error")]
    SessionError { properties: SessionError },
    /// `session.status`, `session.idle`, `session.created/updated/diff`,
    /// `plugin.added`, `catalog.updated`, … : not used (workers.md §4.4 —
    /// `session.idle` is not the end of a turn).
    #[serde(other)]
    Other,
}

/// `message.updated`.
#[derive(Debug, Deserialize)]
pub struct MessageUpdated {
    #[serde(rename = "sessionID", default)]
    pub session_id: Option<String>,
    pub info: MessageInfo,
}

/// A message's `info` (SSE `message.updated`, and the `/message` responses).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessageInfo {
    pub id: String,
    pub role: Role,
    #[serde(rename = "sessionID", default)]
    pub session_id: Option<String>,
    #[serde(rename = "parentID", default)]
    pub parent_id: Option<String>,
    #[serde(rename = "providerID", default)]
    pub provider_id: Option<String>,
    #[serde(rename = "modelID", default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    #[serde(default)]
    pub time: Option<MessageTime>,
}

impl MessageInfo {
    /// The message is finished (`time.completed` set).
    pub fn completed(&self) -> bool {
        self.time.as_ref().is_some_and(|t| t.completed.is_some())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct MessageTime {
    #[serde(default)]
    pub completed: Option<Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Role {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "assistant")]
    Assistant,
    #[default]
    #[serde(other)]
    Other,
}

/// `{"name":"APIError","data":{"message","statusCode","isRetryable",…}}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: ErrorData,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(rename = "statusCode", default)]
    pub status_code: Option<u16>,
    #[serde(rename = "isRetryable", default)]
    pub is_retryable: Option<bool>,
}

/// The error name of an aborted turn (interrupt, workers.md §4.6).
pub const ABORTED: &str = "MessageAbortedError";

/// `message.part.updated`.
#[derive(Debug, Deserialize)]
pub struct PartUpdated {
    #[serde(rename = "sessionID", default)]
    pub session_id: Option<String>,
    pub part: Part,
}

/// A message part.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Part {
    #[serde(rename = "text")]
    Text(TextPart),
    #[serde(rename = "reasoning")]
    Reasoning(TextPart),
    #[serde(rename = "tool")]
    Tool(ToolPart),
    #[serde(rename = "step-finish")]
    StepFinish(StepFinish),
    /// `step-start`, `file`, `patch`, `snapshot`, `agent`, … : not mapped.
    #[serde(other)]
    Other,
}

impl Part {
    /// The message a typed part belongs to.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Part::Text(p) | Part::Reasoning(p) => Some(&p.message_id),
            Part::Tool(p) => Some(&p.message_id),
            Part::StepFinish(p) => Some(&p.message_id),
            Part::Other => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct TextPart {
    pub id: String,
    #[serde(rename = "messageID")]
    pub message_id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub time: Option<PartTime>,
}

impl TextPart {
    /// The part is complete (`time.end` set).
    pub fn ended(&self) -> bool {
        self.time.as_ref().is_some_and(|t| t.end.is_some())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct PartTime {
    #[serde(default)]
    pub end: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ToolPart {
    pub id: String,
    #[serde(rename = "messageID")]
    pub message_id: String,
    #[serde(rename = "callID")]
    pub call_id: String,
    pub tool: String,
    pub state: ToolState,
}

/// `state.status`: pending → running → completed | error.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "status")]
pub enum ToolState {
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "running")]
    Running {
        #[serde(default)]
        input: Value,
    },
    #[serde(rename = "completed")]
    Completed {
        #[serde(default)]
        input: Value,
        #[serde(default)]
        output: String,
    },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        input: Value,
        #[serde(default)]
        error: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StepFinish {
    pub id: String,
    #[serde(rename = "messageID")]
    pub message_id: String,
    #[serde(default)]
    pub tokens: Tokens,
    #[serde(default)]
    pub cost: Option<f64>,
}

/// `{"total","input","output","reasoning","cache":{"read","write"}}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub input: Option<u64>,
    #[serde(default)]
    pub output: Option<u64>,
    #[serde(default)]
    pub reasoning: Option<u64>,
    #[serde(default)]
    pub cache: Cache,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Cache {
    #[serde(default)]
    pub read: Option<u64>,
    #[serde(default)]
    pub write: Option<u64>,
}

/// `message.part.delta`: one increment of a part's `field`.
#[derive(Debug, Deserialize)]
pub struct PartDelta {
    #[serde(rename = "sessionID", default)]
    pub session_id: Option<String>,
    #[serde(rename = "messageID")]
    pub message_id: String,
    #[serde(rename = "partID")]
    pub part_id: String,
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub delta: String,
}

/// `permission.asked` (also the items of `GET /permission`).
#[derive(Debug, Deserialize)]
pub struct PermissionAsked {
    pub id: String,
    #[serde(rename = "sessionID", default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub permission: String,
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub metadata: Value,
}

/// `permission.replied`.
#[derive(Debug, Deserialize)]
pub struct PermissionReplied {
    #[serde(rename = "requestID", default)]
    pub request_id: String,
}

/// `session.error`.
#[derive(Debug, Deserialize)]
pub struct SessionError {
    #[serde(rename = "sessionID", default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}

/// `POST /session` and `GET /session/{id}` answer: a session's info.
#[derive(Debug, Deserialize)]
pub struct SessionInfo {
    pub id: String,
}

/// `POST /session/{id}/message` answer (and each item of `GET …/message`).
#[derive(Debug, Deserialize)]
pub struct MessageWithParts {
    pub info: MessageInfo,
    #[serde(default)]
    pub parts: Vec<Value>,
}

/// `GET /global/health`.
#[derive(Debug, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub healthy: bool,
}

/// A 4xx/5xx body: `{"name":"NotFoundError","data":{"message":…}}` or
/// `{"_tag":…,"message":…}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub data: Option<ErrorData>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ErrorBody {
    pub fn message(&self) -> Option<&str> {
        self.data.as_ref().and_then(|d| d.message.as_deref()).or(self.message.as_deref())
    }
}

// ---------------------------------------------------------------- requests

/// `POST /session/{id}/message` body.
#[derive(Debug, Serialize)]
pub struct PromptBody<'a> {
    pub parts: [TextInput<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct TextInput<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: &'a str,
}

#[derive(Debug, Serialize)]
pub struct ModelRef<'a> {
    #[serde(rename = "providerID")]
    pub provider_id: &'a str,
    #[serde(rename = "modelID")]
    pub model_id: &'a str,
}

/// `POST /permission/{id}/reply` body.
#[derive(Debug, Serialize)]
pub struct PermissionReplyBody<'a> {
    pub reply: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

/// Parse one part taken from a `/message` answer (untyped there so one
/// unknown part does not fail the whole answer).
pub fn part(v: &Value) -> Option<Part> {
    Part::deserialize(v).ok()
}
