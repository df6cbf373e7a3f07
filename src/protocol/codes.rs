//! AEP error codes (aep-v1.md §8), session states (§5.1) and WebSocket close
//! codes (§1). The only place these wire strings are spelled.

use serde::Serialize;

/// Every `error.code` the gateway may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ProtocolError,
    InvalidMessage,
    VersionMismatch,
    AuthRequired,
    Unauthorized,
    ConfigInvalid,
    SessionNotFound,
    SessionBusy,
    SessionTerminated,
    SessionExpired,
    SessionInvalidated,
    GatewayOverload,
    RateLimitExceeded,
    WorkerStartFailed,
    AgentError,
    WorkerCrash,
    WorkerOom,
    WorkerTimeout,
    ExecutionTimeout,
    WorkerOutputLimit,
    #[serde(rename = "PROCESS_SIGTERM")]
    ProcessSigterm,
    #[serde(rename = "PROCESS_SIGKILL")]
    ProcessSigkill,
    ReconnectRequired,
    InternalError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::ProtocolError,
        ErrorCode::InvalidMessage,
        ErrorCode::VersionMismatch,
        ErrorCode::AuthRequired,
        ErrorCode::Unauthorized,
        ErrorCode::ConfigInvalid,
        ErrorCode::SessionNotFound,
        ErrorCode::SessionBusy,
        ErrorCode::SessionTerminated,
        ErrorCode::SessionExpired,
        ErrorCode::SessionInvalidated,
        ErrorCode::GatewayOverload,
        ErrorCode::RateLimitExceeded,
        ErrorCode::WorkerStartFailed,
        ErrorCode::AgentError,
        ErrorCode::WorkerCrash,
        ErrorCode::WorkerOom,
        ErrorCode::WorkerTimeout,
        ErrorCode::ExecutionTimeout,
        ErrorCode::WorkerOutputLimit,
        ErrorCode::ProcessSigterm,
        ErrorCode::ProcessSigkill,
        ErrorCode::ReconnectRequired,
        ErrorCode::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::VersionMismatch => "VERSION_MISMATCH",
            ErrorCode::AuthRequired => "AUTH_REQUIRED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::ConfigInvalid => "CONFIG_INVALID",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SessionBusy => "SESSION_BUSY",
            ErrorCode::SessionTerminated => "SESSION_TERMINATED",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::SessionInvalidated => "SESSION_INVALIDATED",
            ErrorCode::GatewayOverload => "GATEWAY_OVERLOAD",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::WorkerStartFailed => "WORKER_START_FAILED",
            ErrorCode::AgentError => "AGENT_ERROR",
            ErrorCode::WorkerCrash => "WORKER_CRASH",
            ErrorCode::WorkerOom => "WORKER_OOM",
            ErrorCode::WorkerTimeout => "WORKER_TIMEOUT",
            ErrorCode::ExecutionTimeout => "EXECUTION_TIMEOUT",
            ErrorCode::WorkerOutputLimit => "WORKER_OUTPUT_LIMIT",
            ErrorCode::ProcessSigterm => "PROCESS_SIGTERM",
            ErrorCode::ProcessSigkill => "PROCESS_SIGKILL",
            ErrorCode::ReconnectRequired => "RECONNECT_REQUIRED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The close code used when this error ends a connection at init (§4.2).
    pub fn init_close_code(self) -> u16 {
        if self == ErrorCode::InternalError { close::INTERNAL } else { close::POLICY }
    }
}

/// Session states (aep-v1.md §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Created,
    Idle,
    Running,
    Terminated,
    Deleted,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Created => "created",
            SessionState::Idle => "idle",
            SessionState::Running => "running",
            SessionState::Terminated => "terminated",
            SessionState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<SessionState> {
        Some(match s {
            "created" => SessionState::Created,
            "idle" => SessionState::Idle,
            "running" => SessionState::Running,
            "terminated" => SessionState::Terminated,
            "deleted" => SessionState::Deleted,
            _ => return None,
        })
    }

    pub fn is_live(self) -> bool {
        matches!(self, SessionState::Created | SessionState::Idle | SessionState::Running)
    }
}

/// WebSocket close codes (aep-v1.md §1, plus RFC 6455 1002).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const BAD_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
}
