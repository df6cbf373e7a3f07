//! C→S frame decoding (aep-v1.md §2, §3.1, §4; security.md §9): strict JSON,
//! typed fields, size limits. Returns a typed frame or the error the spec
//! prescribes. Connection state (before/after init) is the caller's concern.

use serde_json::{Map, Value};

use super::codes::ErrorCode;
use super::envelope::VERSION;
use super::strict_json::{self, JsonError};

/// Limits the decoder enforces (from `limits.*` in the config).
#[derive(Clone, Debug)]
pub struct DecodeLimits {
    pub max_json_depth: usize,
    pub max_input_bytes: usize,
    pub max_id_bytes: usize,
    pub max_reason_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_client_caps: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_json_depth: 32,
            max_input_bytes: 512 * 1024,
            max_id_bytes: 128,
            max_reason_bytes: 1024,
            max_metadata_bytes: 16 * 1024,
            max_client_caps: 64,
        }
    }
}

/// A rejected frame: answer `error{code, message, event_id}`.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    /// The frame's envelope `id`, when it could be read.
    pub event_id: Option<String>,
}

/// A decoded client frame.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientFrame {
    /// Envelope `id` (echoed as `error.event_id`).
    pub id: Option<String>,
    pub event: ClientEvent,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    Init(Box<InitRequest>),
    Input {
        content: String,
        metadata: Option<Value>,
    },
    PermissionResponse {
        id: String,
        allowed: bool,
        reason: Option<String>,
        remember: bool,
    },
    Control {
        action: ControlAction,
        reason: Option<String>,
    },
    Ping,
    /// `custom.*` / `vendor.*`: ignored after init.
    Extension(String),
    /// Any other type (including server-only types sent by a client).
    Unknown(String),
}

impl ClientEvent {
    /// The wire type, for metrics (unknown types collapse to `other`).
    pub fn metric_type(&self) -> &'static str {
        match self {
            ClientEvent::Init(_) => "init",
            ClientEvent::Input { .. } => "input",
            ClientEvent::PermissionResponse { .. } => "permission_response",
            ClientEvent::Control { .. } => "control",
            ClientEvent::Ping => "ping",
            ClientEvent::Extension(_) | ClientEvent::Unknown(_) => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAction {
    Interrupt,
    Terminate,
    Gc,
    Reset,
    Delete,
    Unknown(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Drive,
    Observe,
}

/// `init.data` (aep-v1.md §4).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InitRequest {
    pub worker_type: String,
    /// Empty string is normalised to `None`.
    pub session_id: Option<String>,
    pub last_seq: Option<u64>,
    pub mode: Option<Mode>,
    pub auth_token: Option<String>,
    pub config: Option<InitConfig>,
    pub trace_parent: Option<String>,
    pub trace_state: Option<String>,
}

/// `init.data.config`; policy checks happen later (CONFIG_INVALID).
#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct InitConfig {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disallowed_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub work_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub permission_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_turns: Option<u64>,
}

struct Ctx {
    event_id: Option<String>,
}

impl Ctx {
    fn invalid(&self, message: impl Into<String>) -> DecodeError {
        DecodeError { code: ErrorCode::InvalidMessage, message: message.into(), event_id: self.event_id.clone() }
    }
}

/// Decode one C→S text payload (already known to be valid UTF-8).
pub fn decode(text: &[u8], limits: &DecodeLimits) -> Result<ClientFrame, DecodeError> {
    let root = match strict_json::parse(text, limits.max_json_depth) {
        Ok(v) => v,
        Err(JsonError::TooDeep) => {
            return Err(DecodeError {
                code: ErrorCode::InvalidMessage,
                message: format!("JSON nesting deeper than {}", limits.max_json_depth),
                event_id: None,
            });
        }
        Err(JsonError::Syntax(m)) => {
            return Err(DecodeError {
                code: ErrorCode::InvalidMessage,
                message: format!("invalid JSON: {m}"),
                event_id: None,
            });
        }
    };
    let Value::Object(mut env) = root else {
        return Err(DecodeError {
            code: ErrorCode::InvalidMessage,
            message: "frame must be a JSON object".into(),
            event_id: None,
        });
    };

    // The id first, so later errors can echo it.
    let mut ctx = Ctx { event_id: None };
    match env.remove("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if s.len() > limits.max_id_bytes {
                return Err(ctx.invalid(format!("id longer than {} bytes", limits.max_id_bytes)));
            }
            ctx.event_id = Some(s);
        }
        Some(_) => return Err(ctx.invalid("id must be a string")),
    }

    let version = match env.remove("version") {
        None => return Err(ctx.invalid("version is required")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(ctx.invalid("version must be a string")),
    };
    // seq, session_id, timestamp, priority: ignored (lenient), whatever their type.

    let Some(event) = env.remove("event") else {
        return Err(ctx.invalid("event is required"));
    };
    let Value::Object(mut event) = event else {
        return Err(ctx.invalid("event must be an object"));
    };
    let ty = match event.remove("type") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ctx.invalid("event.type must be a string")),
        None => return Err(ctx.invalid("event.type is required")),
    };
    let data = match event.remove("data") {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ctx.invalid("event.data must be an object")),
        None => return Err(ctx.invalid("event.data is required")),
    };

    if version != VERSION {
        return Err(DecodeError {
            code: ErrorCode::VersionMismatch,
            message: format!("unsupported version; this server speaks {VERSION}"),
            event_id: ctx.event_id,
        });
    }

    let event = decode_event(&ctx, &ty, data, limits)?;
    Ok(ClientFrame { id: ctx.event_id, event })
}

fn decode_event(
    ctx: &Ctx,
    ty: &str,
    mut d: Map<String, Value>,
    limits: &DecodeLimits,
) -> Result<ClientEvent, DecodeError> {
    Ok(match ty {
        "init" => ClientEvent::Init(Box::new(decode_init(ctx, d, limits)?)),
        "input" => {
            let content = req_str(ctx, &mut d, "content")?;
            if content.trim().is_empty() {
                return Err(ctx.invalid("input.content must not be empty"));
            }
            if content.len() > limits.max_input_bytes {
                return Err(ctx.invalid(format!("input.content larger than {} bytes", limits.max_input_bytes)));
            }
            if content.contains('\0') {
                return Err(ctx.invalid("input.content must not contain NUL"));
            }
            let metadata = match d.remove("metadata") {
                None | Some(Value::Null) => None,
                Some(v @ Value::Object(_)) => {
                    let size = serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(usize::MAX);
                    if size > limits.max_metadata_bytes {
                        return Err(
                            ctx.invalid(format!("input.metadata larger than {} bytes", limits.max_metadata_bytes))
                        );
                    }
                    Some(v)
                }
                Some(_) => return Err(ctx.invalid("input.metadata must be an object")),
            };
            ClientEvent::Input { content, metadata }
        }
        "permission_response" => {
            let id = req_str(ctx, &mut d, "id")?;
            if id.is_empty() || id.len() > limits.max_id_bytes {
                return Err(ctx.invalid("permission_response.id has a bad length"));
            }
            let allowed = match d.remove("allowed") {
                Some(Value::Bool(b)) => b,
                Some(_) => return Err(ctx.invalid("permission_response.allowed must be a boolean")),
                None => return Err(ctx.invalid("permission_response.allowed is required")),
            };
            let reason = opt_reason(ctx, &mut d, limits)?;
            let remember = match d.remove("remember") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(_) => return Err(ctx.invalid("permission_response.remember must be a boolean")),
            };
            ClientEvent::PermissionResponse { id, allowed, reason, remember }
        }
        "control" => {
            let action = req_str(ctx, &mut d, "action")?;
            let reason = opt_reason(ctx, &mut d, limits)?;
            let action = match action.as_str() {
                "interrupt" => ControlAction::Interrupt,
                "terminate" => ControlAction::Terminate,
                "gc" => ControlAction::Gc,
                "reset" => ControlAction::Reset,
                "delete" => ControlAction::Delete,
                _ => ControlAction::Unknown(truncate(&action, 64)),
            };
            ClientEvent::Control { action, reason }
        }
        "ping" => ClientEvent::Ping,
        t if t.starts_with("custom.") || t.starts_with("vendor.") => ClientEvent::Extension(truncate(t, 64)),
        t => ClientEvent::Unknown(truncate(t, 64)),
    })
}

fn decode_init(ctx: &Ctx, mut d: Map<String, Value>, limits: &DecodeLimits) -> Result<InitRequest, DecodeError> {
    let mut req = InitRequest::default();
    match d.remove("version") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == VERSION => {}
        Some(Value::String(_)) => {
            return Err(DecodeError {
                code: ErrorCode::VersionMismatch,
                message: format!("unsupported version; this server speaks {VERSION}"),
                event_id: ctx.event_id.clone(),
            });
        }
        Some(_) => return Err(ctx.invalid("init.version must be a string")),
    }
    req.worker_type = req_str(ctx, &mut d, "worker_type")?;
    req.session_id = match opt_str(ctx, &mut d, "session_id")? {
        Some(s) if s.is_empty() => None,
        other => other,
    };
    req.last_seq = match d.remove("last_seq") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= i64::MAX as u64 => Some(v),
            _ => return Err(ctx.invalid("init.last_seq must be an integer between 0 and 2^63-1")),
        },
        Some(_) => return Err(ctx.invalid("init.last_seq must be an integer")),
    };
    req.mode = match opt_str(ctx, &mut d, "mode")?.as_deref() {
        None => None,
        Some("drive") => Some(Mode::Drive),
        Some("observe") => Some(Mode::Observe),
        Some(_) => return Err(ctx.invalid("init.mode must be \"drive\" or \"observe\"")),
    };
    req.auth_token = match d.remove("auth") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut a)) => opt_str(ctx, &mut a, "token")?,
        Some(_) => return Err(ctx.invalid("init.auth must be an object")),
    };
    req.config = match d.remove("config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => Some(decode_config(ctx, c)?),
        Some(_) => return Err(ctx.invalid("init.config must be an object")),
    };
    match d.remove("client_caps") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::Array(a)) => {
            if a.len() > limits.max_client_caps {
                return Err(ctx.invalid(format!("init.client_caps has more than {} entries", limits.max_client_caps)));
            }
        }
        Some(_) => return Err(ctx.invalid("init.client_caps must be an array or an object")),
    }
    req.trace_parent = opt_str(ctx, &mut d, "trace_parent")?;
    req.trace_state = opt_str(ctx, &mut d, "trace_state")?;
    Ok(req)
}

fn decode_config(ctx: &Ctx, mut c: Map<String, Value>) -> Result<InitConfig, DecodeError> {
    let tools = |c: &mut Map<String, Value>, key: &str| -> Result<Option<Vec<String>>, DecodeError> {
        match c.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(ctx.invalid(format!("init.config.{key} must be an array of strings"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ctx.invalid(format!("init.config.{key} must be an array of strings"))),
        }
    };
    Ok(InitConfig {
        model: opt_str_cfg(ctx, &mut c, "model")?,
        system_prompt: opt_str_cfg(ctx, &mut c, "system_prompt")?,
        allowed_tools: tools(&mut c, "allowed_tools")?,
        disallowed_tools: tools(&mut c, "disallowed_tools")?,
        work_dir: opt_str_cfg(ctx, &mut c, "work_dir")?,
        permission_mode: opt_str_cfg(ctx, &mut c, "permission_mode")?,
        max_turns: match c.remove("max_turns") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Some(v),
                // A number of the right JSON type but outside 1..ceiling is a policy matter.
                None => Some(0),
            },
            Some(_) => return Err(ctx.invalid("init.config.max_turns must be an integer")),
        },
    })
}

fn req_str(ctx: &Ctx, d: &mut Map<String, Value>, key: &str) -> Result<String, DecodeError> {
    match d.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ctx.invalid(format!("{key} must be a string"))),
        None => Err(ctx.invalid(format!("{key} is required"))),
    }
}

fn opt_str(ctx: &Ctx, d: &mut Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match d.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ctx.invalid(format!("{key} must be a string"))),
    }
}

fn opt_str_cfg(ctx: &Ctx, d: &mut Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
    opt_str(ctx, d, key).map_err(|_| ctx.invalid(format!("init.config.{key} must be a string")))
}

fn opt_reason(ctx: &Ctx, d: &mut Map<String, Value>, limits: &DecodeLimits) -> Result<Option<String>, DecodeError> {
    let r = opt_str(ctx, d, "reason")?;
    if let Some(r) = &r {
        if r.len() > limits.max_reason_bytes {
            return Err(ctx.invalid(format!("reason longer than {} bytes", limits.max_reason_bytes)));
        }
    }
    Ok(r)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<ClientFrame, DecodeError> {
        decode(s.as_bytes(), &DecodeLimits::default())
    }

    fn code(s: &str) -> ErrorCode {
        dec(s).unwrap_err().code
    }

    #[test]
    fn init_minimal_and_full() {
        let f = dec(r#"{"version":"aep/v1","event":{"type":"init","data":{"worker_type":"claude_code"}}}"#).unwrap();
        match f.event {
            ClientEvent::Init(i) => {
                assert_eq!(i.worker_type, "claude_code");
                assert_eq!(i.session_id, None);
            }
            e => panic!("{e:?}"),
        }
        let f = dec(r#"{"version":"aep/v1","id":"c1","seq":"x","session_id":5,"event":{"type":"init","data":{
            "worker_type":"claude_code","session_id":"my-chat","last_seq":12,"mode":"observe","auth":{"token":"t"},
            "config":{"model":"m","allowed_tools":["Read"],"max_turns":3,"unknown":1},"client_caps":["message"],
            "trace_parent":"00-x","future":true}}}"#)
        .unwrap();
        assert_eq!(f.id.as_deref(), Some("c1"));
        let ClientEvent::Init(i) = f.event else { panic!() };
        assert_eq!(i.session_id.as_deref(), Some("my-chat"));
        assert_eq!(i.last_seq, Some(12));
        assert_eq!(i.mode, Some(Mode::Observe));
        assert_eq!(i.auth_token.as_deref(), Some("t"));
        let c = i.config.unwrap();
        assert_eq!(c.model.as_deref(), Some("m"));
        assert_eq!(c.allowed_tools, Some(vec!["Read".to_string()]));
        assert_eq!(c.max_turns, Some(3));
    }

    #[test]
    fn validation_order_and_codes() {
        assert_eq!(code("{}"), ErrorCode::InvalidMessage);
        assert_eq!(code("hello"), ErrorCode::InvalidMessage);
        assert_eq!(code("[1]"), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"event":{"type":"ping","data":{}}}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"version":"aep/v2","event":{"type":"ping","data":{}}}"#), ErrorCode::VersionMismatch);
        assert_eq!(code(r#"{"version":"aep/v2","event":{"type":"ping","data":[]}}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"version":"aep/v1","event":{"type":"ping"}}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"version":"aep/v1","version":"aep/v1","event":{"type":"ping","data":{}}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(
                r#"{"version":"aep/v1","event":{"type":"init","data":{"worker_type":"claude_code","version":"aep/v9"}}}"#
            ),
            ErrorCode::VersionMismatch
        );
    }

    #[test]
    fn error_echoes_event_id() {
        let e = dec(r#"{"version":"aep/v1","id":"abc","event":{"type":"input","data":{"content":5}}}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        assert_eq!(e.event_id.as_deref(), Some("abc"));
    }

    #[test]
    fn input_rules() {
        let ok =
            dec(r#"{"version":"aep/v1","event":{"type":"input","data":{"content":"hi","metadata":{"k":1}}}}"#).unwrap();
        assert!(matches!(ok.event, ClientEvent::Input { .. }));
        assert_eq!(
            code(r#"{"version":"aep/v1","event":{"type":"input","data":{"content":"  \n"}}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"version":"aep/v1","event":{"type":"input","data":{"content":"a\u0000b"}}}"#),
            ErrorCode::InvalidMessage
        );
        let big = format!(
            r#"{{"version":"aep/v1","event":{{"type":"input","data":{{"content":"{}"}}}}}}"#,
            "x".repeat(512 * 1024 + 1)
        );
        assert_eq!(code(&big), ErrorCode::InvalidMessage);
    }

    #[test]
    fn permission_response_types() {
        let ok = dec(r#"{"version":"aep/v1","event":{"type":"permission_response","data":{"id":"p1","allowed":true,"remember":true}}}"#)
            .unwrap();
        assert_eq!(
            ok.event,
            ClientEvent::PermissionResponse { id: "p1".into(), allowed: true, reason: None, remember: true }
        );
        assert_eq!(
            code(r#"{"version":"aep/v1","event":{"type":"permission_response","data":{"id":"p1","allowed":"true"}}}"#),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn control_and_unknown_types() {
        let f = dec(r#"{"version":"aep/v1","event":{"type":"control","data":{"action":"explode"}}}"#).unwrap();
        assert_eq!(f.event, ClientEvent::Control { action: ControlAction::Unknown("explode".into()), reason: None });
        let f = dec(r#"{"version":"aep/v1","event":{"type":"tool_call","data":{}}}"#).unwrap();
        assert_eq!(f.event, ClientEvent::Unknown("tool_call".into()));
        let f = dec(r#"{"version":"aep/v1","event":{"type":"custom.x","data":{"a":[1]}}}"#).unwrap();
        assert_eq!(f.event, ClientEvent::Extension("custom.x".into()));
    }

    #[test]
    fn last_seq_bounds() {
        assert_eq!(
            code(r#"{"version":"aep/v1","event":{"type":"init","data":{"worker_type":"x","last_seq":-1}}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"version":"aep/v1","event":{"type":"init","data":{"worker_type":"x","last_seq":1.5}}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"version":"aep/v1","event":{"type":"init","data":{"worker_type":"x","last_seq":"3"}}}"#),
            ErrorCode::InvalidMessage
        );
    }
}
