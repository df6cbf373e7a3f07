//! Server → client AEP events (aep-v1.md §3.2) as typed values, serialised
//! with `{"type": …, "data": {…}}` exactly as the spec spells them.

use serde::Serialize;
use serde_json::Value;

use super::codes::{ErrorCode, SessionState};

/// `priority` of an envelope: `control` frames are never coalesced and do not
/// count toward the slow-consumer bound (aep-v1.md §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Data,
    Control,
}

/// `init_ack.server_caps` (aep-v1.md §3.2).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServerCaps {
    pub protocol_version: &'static str,
    pub worker_type: String,
    pub supports_resume: bool,
    pub supports_delta: bool,
    pub supports_tool_call: bool,
    pub supports_ping: bool,
    pub supports_permissions: bool,
    pub supports_interrupt: bool,
    pub max_frame_size: u64,
    pub modalities: [&'static str; 2],
    pub events: &'static [&'static str],
}

/// Every S→C event type this server emits (advertised in `server_caps.events`).
pub const SERVER_EVENT_TYPES: &[&str] = &[
    "init_ack",
    "state",
    "message.start",
    "message.delta",
    "message.end",
    "message",
    "reasoning",
    "tool_call",
    "tool_result",
    "step",
    "permission_request",
    "done",
    "error",
    "control",
    "pong",
    "raw",
];

/// `done.stats`: every field is present only when the worker reported it
/// (workers.md §1.3: never 0 for "unknown").
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_used_percent: Option<f64>,
}

/// `control.suggestion` of a throttle notice (aep-v1.md §6).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ThrottleSuggestion {
    pub max_message_rate: f64,
    pub backoff_ms: u64,
    pub retry_after: u64,
}

/// One S→C event: `event.type` + `event.data`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "init_ack")]
    InitAck { session_id: String, state: SessionState, resumed: bool, last_seq: u64, server_caps: ServerCaps },
    #[serde(rename = "state")]
    State {
        state: SessionState,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    #[serde(rename = "message.start")]
    MessageStart { id: String, role: &'static str, content_type: &'static str },
    #[serde(rename = "message.delta")]
    MessageDelta {
        message_id: String,
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    #[serde(rename = "message.end")]
    MessageEnd { message_id: String },
    #[serde(rename = "message")]
    Message { id: String, role: &'static str, content: String },
    #[serde(rename = "reasoning")]
    Reasoning {
        id: String,
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        delta: Option<bool>,
    },
    #[serde(rename = "tool_call")]
    ToolCall {
        id: String,
        name: String,
        input: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'static str>,
    },
    #[serde(rename = "tool_result")]
    ToolResult { id: String, output: Value, is_error: bool },
    #[serde(rename = "step")]
    Step {
        id: String,
        step_type: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'static str>,
    },
    #[serde(rename = "permission_request")]
    PermissionRequest {
        id: String,
        tool_name: String,
        description: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        input: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        args: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
    },
    #[serde(rename = "done")]
    Done {
        success: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        stats: Option<Stats>,
    },
    #[serde(rename = "error")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    },
    #[serde(rename = "control")]
    Control {
        action: &'static str,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_session: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recoverable: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        suggestion: Option<ThrottleSuggestion>,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    },
    #[serde(rename = "pong")]
    Pong { state: SessionState },
    #[serde(rename = "raw")]
    Raw { kind: String, raw: Value },
}

impl Event {
    /// The wire `event.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::InitAck { .. } => "init_ack",
            Event::State { .. } => "state",
            Event::MessageStart { .. } => "message.start",
            Event::MessageDelta { .. } => "message.delta",
            Event::MessageEnd { .. } => "message.end",
            Event::Message { .. } => "message",
            Event::Reasoning { .. } => "reasoning",
            Event::ToolCall { .. } => "tool_call",
            Event::ToolResult { .. } => "tool_result",
            Event::Step { .. } => "step",
            Event::PermissionRequest { .. } => "permission_request",
            Event::Done { .. } => "done",
            Event::Error { .. } => "error",
            Event::Control { .. } => "control",
            Event::Pong { .. } => "pong",
            Event::Raw { .. } => "raw",
        }
    }

    /// `priority:"control"` on control, error, done, pong and init_ack (aep-v1.md §2).
    pub fn priority(&self) -> Priority {
        match self {
            Event::Control { .. }
            | Event::Error { .. }
            | Event::Done { .. }
            | Event::Pong { .. }
            | Event::InitAck { .. } => Priority::Control,
            _ => Priority::Data,
        }
    }

    /// Shorthand for an `error` event.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Event {
        Event::Error { code, message: message.into(), event_id: None, details: None }
    }

    /// An `error` event answering a client frame (`event_id` echoes its `id`).
    pub fn error_for(code: ErrorCode, message: impl Into<String>, event_id: Option<String>) -> Event {
        Event::Error { code, message: message.into(), event_id, details: None }
    }

    pub fn state(state: SessionState, message: Option<&str>) -> Event {
        Event::State { state, message: message.map(str::to_owned) }
    }

    pub fn message_start(id: impl Into<String>) -> Event {
        Event::MessageStart { id: id.into(), role: "assistant", content_type: "text" }
    }

    pub fn message_delta(message_id: impl Into<String>, content: impl Into<String>) -> Event {
        Event::MessageDelta { message_id: message_id.into(), content: content.into(), content_type: None }
    }

    pub fn message(id: impl Into<String>, content: impl Into<String>) -> Event {
        Event::Message { id: id.into(), role: "assistant", content: content.into() }
    }

    /// `control{action:"reconnect"}` (aep-v1.md §6).
    pub fn reconnect(reason: &str, delay_ms: u64) -> Event {
        Event::Control {
            action: "reconnect",
            reason: reason.to_owned(),
            delay_ms: Some(delay_ms),
            resume_session: Some(true),
            recoverable: None,
            suggestion: None,
            details: None,
        }
    }

    /// `control{action:"session_invalid"}` (aep-v1.md §6).
    pub fn session_invalid(reason: &str, recoverable: bool) -> Event {
        Event::Control {
            action: "session_invalid",
            reason: reason.to_owned(),
            delay_ms: None,
            resume_session: None,
            recoverable: Some(recoverable),
            suggestion: None,
            details: None,
        }
    }
}
