//! The closed label value sets of operations.md §5.2 and the mappings from
//! gateway types onto them. The one place these label strings are spelled.
//! Every index returned here is a position in the matching `const` array.

use crate::adapters::WorkerType;
use crate::protocol::{ErrorCode, Event, close};

pub const WORKER_TYPES: &[&str] = &["claude_code", "opencode_cli", "opencode_server", "acpx", "pi"];

pub fn worker_type(wt: WorkerType) -> usize {
    match wt {
        WorkerType::ClaudeCode => 0,
        WorkerType::OpencodeCli => 1,
        WorkerType::OpencodeServer => 2,
        WorkerType::Acpx => 3,
        WorkerType::Pi => 4,
    }
}

pub const CONN_PHASES: &[&str] = &["pre_init", "attached"];

/// Why a WebSocket connection closed (`hotplex_ws_connections_closed_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    ClientClose,
    HeartbeatTimeout,
    InitTimeout,
    InitFailed,
    ProtocolError,
    MessageTooBig,
    InvalidUtf8,
    SlowConsumer,
    Superseded,
    SessionDeleted,
    ReconnectRequired,
    Overload,
    Shutdown,
    IoError,
    InternalError,
}

pub const CLOSE_REASONS: &[&str] = &[
    "client_close",
    "heartbeat_timeout",
    "init_timeout",
    "init_failed",
    "protocol_error",
    "message_too_big",
    "invalid_utf8",
    "slow_consumer",
    "superseded",
    "session_deleted",
    "reconnect_required",
    "overload",
    "shutdown",
    "io_error",
    "internal_error",
];

/// The reason behind a close the gateway starts: the close frame's reason
/// text as the reactor spells it (reactor/client.rs, session/*), else its code.
pub fn close_reason(code: u16, text: &str) -> CloseReason {
    match text {
        "init timeout" => CloseReason::InitTimeout,
        "init failed" => CloseReason::InitFailed,
        "heartbeat timeout" => CloseReason::HeartbeatTimeout,
        // the queue bound (aep §5.4) and the slow-read defence (limits.write_stall_timeout)
        "slow consumer" | "write stalled" => CloseReason::SlowConsumer,
        // both end with SESSION_INVALIDATED + 1008: the connection lost its
        // right to the session (a newer driver, or its credential was revoked)
        "superseded" | "credential revoked" => CloseReason::Superseded,
        "session deleted" => CloseReason::SessionDeleted,
        // gateway.max_connections, and a client over its rate limits for too long
        "overload" | "rate limit" => CloseReason::Overload,
        "version mismatch" | "protocol error" => CloseReason::ProtocolError,
        "message too big" => CloseReason::MessageTooBig,
        "invalid UTF-8" => CloseReason::InvalidUtf8,
        // every "server shutting down" close follows RECONNECT_REQUIRED
        "server shutting down" => CloseReason::ReconnectRequired,
        "session closed" => CloseReason::Shutdown,
        _ => match code {
            close::TOO_BIG => CloseReason::MessageTooBig,
            close::BAD_DATA => CloseReason::InvalidUtf8,
            close::PROTOCOL => CloseReason::ProtocolError,
            close::GOING_AWAY => CloseReason::Shutdown,
            close::NORMAL => CloseReason::ClientClose,
            _ => CloseReason::InternalError,
        },
    }
}

/// `hotplex_ws_upgrade_rejections_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeRejection {
    BadRequest,
    Unauthorized,
    OriginForbidden,
    Draining,
    HandshakeTimeout,
    HeaderTooLarge,
}

pub const UPGRADE_REJECTIONS: &[&str] =
    &["bad_request", "unauthorized", "origin_forbidden", "draining", "handshake_timeout", "header_too_large"];

/// A refusal label as spelled by `ws::handshake::Refusal::reason`.
pub fn upgrade_rejection(label: &str) -> UpgradeRejection {
    match label {
        "unauthorized" => UpgradeRejection::Unauthorized,
        "origin_forbidden" => UpgradeRejection::OriginForbidden,
        "draining" => UpgradeRejection::Draining,
        "handshake_timeout" => UpgradeRejection::HandshakeTimeout,
        "header_too_large" => UpgradeRejection::HeaderTooLarge,
        _ => UpgradeRejection::BadRequest,
    }
}

pub const DIRECTIONS: &[&str] = &["in", "out"];

pub const SESSION_STATES: &[&str] = &["created", "idle", "running", "terminated"];

/// operations.md §2.1 termination reasons.
pub const TERM_REASONS: &[&str] = &[
    "client_terminate",
    "client_gc",
    "admin_terminate",
    "idle_timeout",
    "max_lifetime",
    "worker_exit",
    "stall_timeout",
    "turn_timeout",
    "shutdown",
    "restart_recovery",
];

/// A termination's `state{terminated}` message → its label (`control.gc`
/// announces itself as `session_archived`, aep §6).
pub fn term_reason(message: &str) -> Option<usize> {
    let label = if message == "session_archived" { "client_gc" } else { message };
    TERM_REASONS.iter().position(|r| *r == label)
}

/// `hotplex_sessions_deleted_total{source}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteSource {
    Client,
    Api,
    Admin,
}

pub const DELETE_SOURCES: &[&str] = &["client", "api", "admin"];

/// aep §4.2 init failure codes.
pub const INIT_FAILURE_CODES: &[&str] = &[
    "VERSION_MISMATCH",
    "INVALID_MESSAGE",
    "PROTOCOL_ERROR",
    "AUTH_REQUIRED",
    "UNAUTHORIZED",
    "SESSION_NOT_FOUND",
    "CONFIG_INVALID",
    "GATEWAY_OVERLOAD",
    "WORKER_START_FAILED",
    "INTERNAL_ERROR",
];

pub fn init_failure_code(code: ErrorCode) -> Option<usize> {
    INIT_FAILURE_CODES.iter().position(|c| *c == code.as_str())
}

/// `hotplex_turns_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnOutcome {
    Success,
    Error,
    Interrupted,
    Timeout,
    Terminated,
}

pub const TURN_OUTCOMES: &[&str] = &["success", "error", "interrupted", "timeout", "terminated"];

/// How a turn ended. `error` is the error the gateway closed it with (its
/// own abort), `None` when the agent ended it or the gateway closed it silently.
pub fn turn_outcome(success: bool, interrupting: bool, timed_out: bool, error: Option<ErrorCode>) -> TurnOutcome {
    if success {
        return TurnOutcome::Success;
    }
    if timed_out {
        return TurnOutcome::Timeout;
    }
    match error {
        Some(ErrorCode::WorkerTimeout | ErrorCode::ExecutionTimeout) => TurnOutcome::Timeout,
        Some(
            ErrorCode::SessionTerminated
            | ErrorCode::SessionExpired
            | ErrorCode::ProcessSigterm
            | ErrorCode::ProcessSigkill
            | ErrorCode::ReconnectRequired,
        ) => TurnOutcome::Terminated,
        Some(_) => TurnOutcome::Error,
        None if interrupting => TurnOutcome::Interrupted,
        None => TurnOutcome::Error,
    }
}

pub const TOKEN_KINDS: &[&str] = &["input", "output", "cache_read", "cache_write"];

/// S→C event types (aep §3.2) plus `other`.
pub const EVENT_TYPES: &[&str] = &[
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
    "other",
];

/// Index of an S→C event type name (`other` for anything else).
pub fn event_type(name: &str) -> usize {
    EVENT_TYPES.iter().position(|t| *t == name).unwrap_or(EVENT_TYPES.len() - 1)
}

/// C→S event types (aep §3.1); `custom.*`, `vendor.*` and unknown types are `other`.
pub const CLIENT_EVENT_TYPES: &[&str] = &["init", "input", "permission_response", "control", "ping", "other"];

pub fn client_event_type(name: &str) -> usize {
    CLIENT_EVENT_TYPES.iter().position(|t| *t == name).unwrap_or(CLIENT_EVENT_TYPES.len() - 1)
}

/// Every aep §8 error code, in `ErrorCode::ALL` order.
pub fn error_codes() -> &'static [&'static str] {
    static CODES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    CODES.get_or_init(|| ErrorCode::ALL.iter().map(|c| c.as_str()).collect())
}

pub fn error_code(code: ErrorCode) -> usize {
    ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0)
}

/// The error code of an `error` event.
pub fn error_of(ev: &Event) -> Option<ErrorCode> {
    match ev {
        Event::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// Whether an event is turn content for `hotplex_turn_first_delta_seconds`.
pub fn is_content(ev: &Event) -> bool {
    matches!(ev, Event::MessageDelta { .. } | Event::Message { .. } | Event::Reasoning { .. } | Event::ToolCall { .. })
}

pub const REPLAY_RESULTS: &[&str] = &["ok", "expired"];

pub const SPAWN_RESULTS: &[&str] = &["ok", "error"];

/// `hotplex_worker_exits_total{class}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    Exit0,
    ExitNonzero,
    SignalGateway,
    SignalOom,
    SignalCrash,
    SignalOther,
}

pub const EXIT_CLASSES: &[&str] =
    &["exit_0", "exit_nonzero", "signal_gateway", "signal_oom", "signal_crash", "signal_other"];

/// Classify a worker exit (`by_gateway`: the gateway signalled its group).
pub fn exit_class(code: Option<i32>, signal: Option<i32>, by_gateway: bool) -> ExitClass {
    match signal {
        Some(_) if by_gateway => ExitClass::SignalGateway,
        Some(libc::SIGKILL) => ExitClass::SignalOom,
        Some(
            libc::SIGSEGV | libc::SIGABRT | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS,
        ) => ExitClass::SignalCrash,
        Some(_) => ExitClass::SignalOther,
        None => match code {
            Some(0) => ExitClass::Exit0,
            Some(137) if !by_gateway => ExitClass::SignalOom,
            _ => ExitClass::ExitNonzero,
        },
    }
}

/// `hotplex_worker_io_bytes_total{stream}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

pub const STREAMS: &[&str] = &["stdin", "stdout", "stderr"];

/// `hotplex_permission_decisions_total{decision}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    Timeout,
    PolicyDenied,
    Cancelled,
}

pub const DECISIONS: &[&str] = &["allowed", "denied", "timeout", "policy_denied", "cancelled"];

pub const STORE_OPS: &[&str] =
    &["append_event", "seq_bump", "session_insert", "session_update", "turn", "delete", "audit"];

pub fn store_op(label: &str) -> Option<usize> {
    STORE_OPS.iter().position(|o| *o == label)
}

/// `hotplex_store_errors_total{op}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorOp {
    Commit,
    Read,
    Migrate,
    Purge,
}

pub const STORE_ERROR_OPS: &[&str] = &["commit", "read", "migrate", "purge"];

pub const PURGED: &[&str] = &["events", "sessions", "tombstones", "audit"];

pub fn purged(what: &str) -> Option<usize> {
    PURGED.iter().position(|p| *p == what)
}

/// `hotplex_auth_failures_total{listener}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Ws,
    Api,
    Admin,
}

pub const LISTENERS: &[&str] = &["ws", "api", "admin"];

/// The closed `reason` set (security.md reason codes map onto it with
/// `security::Reason::label`).
pub const AUTH_REASONS: &[&str] = &crate::security::reason::LABELS;

pub fn auth_reason(label: &str) -> Option<usize> {
    AUTH_REASONS.iter().position(|r| *r == label)
}

/// `hotplex_config_reloads_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Unchanged,
    Invalid,
}

pub const RELOAD_RESULTS: &[&str] = &["applied", "unchanged", "invalid"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_match_their_label_arrays() {
        assert_eq!(CLOSE_REASONS[CloseReason::InternalError as usize], "internal_error");
        assert_eq!(CLOSE_REASONS[CloseReason::SlowConsumer as usize], "slow_consumer");
        assert_eq!(UPGRADE_REJECTIONS[UpgradeRejection::HeaderTooLarge as usize], "header_too_large");
        assert_eq!(TURN_OUTCOMES[TurnOutcome::Terminated as usize], "terminated");
        assert_eq!(EXIT_CLASSES[ExitClass::SignalOther as usize], "signal_other");
        assert_eq!(DECISIONS[Decision::Cancelled as usize], "cancelled");
        assert_eq!(STORE_ERROR_OPS[StoreErrorOp::Purge as usize], "purge");
        assert_eq!(LISTENERS[Listener::Admin as usize], "admin");
        assert_eq!(RELOAD_RESULTS[ReloadResult::Invalid as usize], "invalid");
        assert_eq!(STREAMS[Stream::Stderr as usize], "stderr");
        assert_eq!(DELETE_SOURCES[DeleteSource::Admin as usize], "admin");
        for wt in WorkerType::ALL {
            assert_eq!(WORKER_TYPES[worker_type(wt)], wt.as_str());
        }
    }

    #[test]
    fn every_close_the_reactor_starts_has_its_label() {
        let cases = [
            (close::POLICY, "overload", "overload"),
            (close::POLICY, "version mismatch", "protocol_error"),
            (close::POLICY, "init failed", "init_failed"),
            (close::INTERNAL, "init failed", "init_failed"),
            (close::POLICY, "init timeout", "init_timeout"),
            (close::POLICY, "write stalled", "slow_consumer"),
            (close::POLICY, "slow consumer", "slow_consumer"),
            (close::GOING_AWAY, "heartbeat timeout", "heartbeat_timeout"),
            (close::GOING_AWAY, "server shutting down", "reconnect_required"),
            (close::POLICY, "rate limit", "overload"),
            (close::POLICY, "superseded", "superseded"),
            (close::POLICY, "credential revoked", "superseded"),
            (close::NORMAL, "session deleted", "session_deleted"),
            (close::GOING_AWAY, "session closed", "shutdown"),
            (close::BAD_DATA, "invalid UTF-8", "invalid_utf8"),
            (close::TOO_BIG, "message too big", "message_too_big"),
            (close::PROTOCOL, "protocol error", "protocol_error"),
            (4999, "?", "internal_error"),
        ];
        for (code, text, label) in cases {
            assert_eq!(CLOSE_REASONS[close_reason(code, text) as usize], label, "{text}");
        }
    }

    #[test]
    fn turn_outcomes() {
        assert_eq!(turn_outcome(true, true, true, None), TurnOutcome::Success);
        assert_eq!(turn_outcome(false, true, true, None), TurnOutcome::Timeout);
        assert_eq!(turn_outcome(false, true, false, None), TurnOutcome::Interrupted);
        assert_eq!(turn_outcome(false, false, false, None), TurnOutcome::Error);
        assert_eq!(turn_outcome(false, false, false, Some(ErrorCode::SessionTerminated)), TurnOutcome::Terminated);
        assert_eq!(turn_outcome(false, false, false, Some(ErrorCode::ExecutionTimeout)), TurnOutcome::Timeout);
        assert_eq!(turn_outcome(false, false, false, Some(ErrorCode::WorkerCrash)), TurnOutcome::Error);
    }

    #[test]
    fn exit_classes() {
        assert_eq!(exit_class(Some(0), None, false), ExitClass::Exit0);
        assert_eq!(exit_class(Some(0), None, true), ExitClass::Exit0);
        assert_eq!(exit_class(Some(3), None, false), ExitClass::ExitNonzero);
        assert_eq!(exit_class(Some(137), None, false), ExitClass::SignalOom);
        assert_eq!(exit_class(Some(137), None, true), ExitClass::ExitNonzero);
        assert_eq!(exit_class(None, Some(libc::SIGKILL), false), ExitClass::SignalOom);
        assert_eq!(exit_class(None, Some(libc::SIGKILL), true), ExitClass::SignalGateway);
        assert_eq!(exit_class(None, Some(libc::SIGSEGV), false), ExitClass::SignalCrash);
        assert_eq!(exit_class(None, Some(libc::SIGUSR1), false), ExitClass::SignalOther);
    }

    #[test]
    fn auth_reasons_cover_the_security_mapping() {
        assert_eq!(AUTH_REASONS, &crate::security::reason::LABELS[..]);
        for r in crate::security::Reason::ALL {
            assert!(auth_reason(r.label()).is_some(), "{r:?}");
        }
    }

    #[test]
    fn term_reasons_cover_the_session_reasons() {
        use crate::session::TermReason as T;
        for r in [
            T::ClientTerminate,
            T::ClientGc,
            T::IdleTimeout,
            T::MaxLifetime,
            T::WorkerExit,
            T::StallTimeout,
            T::TurnTimeout,
            T::Shutdown,
        ] {
            assert!(term_reason(r.as_str()).is_some(), "{r:?}");
        }
        assert_eq!(TERM_REASONS[term_reason("session_archived").unwrap()], "client_gc");
        assert!(term_reason("restart_recovery").is_some());
    }

    #[test]
    fn event_types_cover_the_server_events() {
        for t in crate::protocol::events::SERVER_EVENT_TYPES {
            assert_eq!(EVENT_TYPES[event_type(t)], *t);
        }
        assert_eq!(EVENT_TYPES[event_type("custom.x")], "other");
        assert_eq!(CLIENT_EVENT_TYPES[client_event_type("vendor.y")], "other");
        assert_eq!(error_codes().len(), 24);
    }
}
