//! `opencode run --format json` stdout, mirrored as serde types (workers.md
//! §3.3, opencode 1.18.33). Owns the exact spelling of every record the CLI
//! prints, nothing else: no state, no mapping to AEP (that is `translate` and
//! the adapter state machine).
//!
//! Every line is an object with `type`, `timestamp`, `sessionID` and either a
//! `part` (one finished message part of the agent's session) or an `error`.
//! Each line is tokenised once into a [`serde_json::Value`] and read through
//! the typed views below (`T::deserialize(&value)`), so the adapter can still
//! hand the untouched line to [`Action::Unmapped`] when a type is unknown.
//! Unknown `type` values land in [`Line::Unknown`]; optional fields use
//! [`lenient`], so one odd field never loses a line.
//!
//! The CLI writes nothing to stdin but the prompt (workers.md §3.1), so there
//! is no outbound type here.
//!
//! [`Action::Unmapped`]: crate::adapters::Action::Unmapped

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `part.state.status` of a tool that ran to its end.
pub const TOOL_COMPLETED: &str = "completed";
/// `part.state.status` of a tool that failed or was refused.
pub const TOOL_ERROR: &str = "error";
/// What opencode prints on stderr when `--session` names a session its store
/// does not have (workers.md §3.1: "Error: Session not found", exit 1, no stdout).
pub const SESSION_NOT_FOUND: &str = "Session not found";

use crate::adapters::wire_util;
pub use crate::adapters::wire_util::lenient;

/// The outcome of reading one stdout line.
pub type Parsed = wire_util::Parsed<Line>;

/// Parse one stdout line (without its `\n`). Never fails, never panics.
pub fn parse(line: &[u8]) -> Parsed {
    wire_util::parse(line)
}

/// The `sessionID` every line carries (`ses_…`), read from the parsed tree.
pub fn session_id(raw: &Value) -> Option<&str> {
    raw.get("sessionID").and_then(Value::as_str)
}

/// A record's body, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Line {
    /// An LLM call starts (also once per silent retry, fixture `06`).
    #[serde(rename = "step_start")]
    StepStart { part: StepPart },
    /// A finished text part (never streamed in run mode).
    #[serde(rename = "text")]
    Text { part: TextPart },
    /// A finished reasoning part (only with `--thinking`).
    #[serde(rename = "reasoning")]
    Reasoning { part: TextPart },
    /// A tool call that has finished (completed, failed or refused).
    #[serde(rename = "tool_use")]
    ToolUse { part: ToolPart },
    /// An LLM call ended; carries its tokens and cost.
    #[serde(rename = "step_finish")]
    StepFinish { part: StepFinishPart },
    /// The turn failed (API error after the CLI's own retries, …).
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        error: ErrorBody,
    },
    /// Any other `type` (future records).
    #[serde(other)]
    Unknown,
}

/// `step_start.part`.
#[derive(Debug, Deserialize)]
pub struct StepPart {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, rename = "messageID", deserialize_with = "lenient")]
    pub message_id: Option<String>,
}

/// `text.part` / `reasoning.part`.
#[derive(Debug, Deserialize)]
pub struct TextPart {
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub text: Option<String>,
}

/// `tool_use.part` (`part.type` is `"tool"`).
#[derive(Debug, Deserialize)]
pub struct ToolPart {
    /// The model's tool-use id (`toolu_…`).
    #[serde(default, rename = "callID", deserialize_with = "lenient")]
    pub call_id: Option<String>,
    /// The part id (`prt_…`), used when `callID` is missing.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    /// opencode's tool name (`bash`, `write`, `edit`, `read`, …).
    #[serde(default, deserialize_with = "lenient")]
    pub tool: Option<String>,
    #[serde(default)]
    pub state: ToolState,
}

/// `tool_use.part.state`.
#[derive(Debug, Default, Deserialize)]
pub struct ToolState {
    /// [`TOOL_COMPLETED`] or [`TOOL_ERROR`] (a tool line appears only once
    /// the tool finished).
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(default)]
    pub input: Value,
    /// Set when completed.
    #[serde(default)]
    pub output: Value,
    /// Set when failed or refused ("The user rejected permission …").
    #[serde(default)]
    pub error: Value,
}

/// `step_finish.part`.
#[derive(Debug, Deserialize)]
pub struct StepFinishPart {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, rename = "messageID", deserialize_with = "lenient")]
    pub message_id: Option<String>,
    /// `stop`, `tool-calls`, …
    #[serde(default, deserialize_with = "lenient")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub tokens: Option<Tokens>,
    /// Dollars for this step, from opencode's price table.
    #[serde(default, deserialize_with = "lenient")]
    pub cost: Option<f64>,
}

/// `step_finish.part.tokens`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Tokens {
    #[serde(default, deserialize_with = "lenient")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub input: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub output: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub reasoning: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub cache: Option<CacheTokens>,
}

/// `tokens.cache`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct CacheTokens {
    #[serde(default, deserialize_with = "lenient")]
    pub read: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub write: Option<u64>,
}

/// `error` of an `error` line: `{name, data:{message, statusCode?, isRetryable?, …}}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// `APIError`, `UnknownError`, `ProviderAuthError`, …
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub data: Option<ErrorData>,
}

/// `error.data`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorData {
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, rename = "statusCode", deserialize_with = "lenient")]
    pub status_code: Option<u64>,
    #[serde(default, rename = "isRetryable", deserialize_with = "lenient")]
    pub is_retryable: Option<bool>,
}
