//! The error answers of both HTTP APIs (operations.md §4.1, §4.4): status,
//! machine code, a fixed human message and optional details, rendered as
//! `{"error":{"code","message","details"?}}`. Messages never carry paths,
//! SQL, OS errors or request bytes (security.md §10.2); a 500 names only a
//! request id that the log line with the real cause also carries.

use serde_json::{Value, json};

/// One error answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`, `X-Request-Id`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None, headers: Vec::new() }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// Malformed HTTP or JSON.
    pub fn bad_request(message: &str) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    /// A query or body parameter that is unknown, repeated, or out of range.
    pub fn invalid_parameter(parameter: &str) -> ApiError {
        ApiError::new(400, "invalid_parameter", format!("invalid parameter: {}", printable(parameter)))
            .with_details(json!({ "parameter": printable(parameter) }))
    }

    /// No such route.
    pub fn not_found() -> ApiError {
        ApiError::new(404, "not_found", "no such resource")
    }

    pub fn session_not_found() -> ApiError {
        ApiError::new(404, "session_not_found", "session not found")
    }

    /// The route exists with other methods (`allow`: e.g. `GET, DELETE`).
    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        ApiError::new(405, "method_not_allowed", "method not allowed").with_header("Allow", allow)
    }

    pub fn payload_too_large() -> ApiError {
        ApiError::new(413, "payload_too_large", "request body too large")
    }

    pub fn rate_limited(retry_after_secs: u64) -> ApiError {
        ApiError::new(429, "rate_limit_exceeded", "rate limit exceeded")
            .with_header("Retry-After", retry_after_secs.max(1).to_string())
    }

    /// 500 with a fresh request id; the caller logs the cause with the same id.
    pub fn internal(request_id: &str) -> ApiError {
        ApiError::new(500, "internal_error", "internal error").with_header("X-Request-Id", request_id)
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        crate::net::http::error_body(self.code, &self.message, self.details.clone())
    }
}

/// A fresh request id for a 500 (`X-Request-Id`).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A caller-supplied name, cut to 64 printable ASCII characters (it is echoed back).
fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let e = ApiError::invalid_parameter("limit");
        let v: Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "invalid_parameter");
        assert_eq!(v["error"]["details"]["parameter"], "limit");
        let v: Value = serde_json::from_str(&ApiError::not_found().body()).unwrap();
        assert!(v["error"].get("details").is_none());
        assert_eq!(ApiError::invalid_parameter("a\r\nb").details.unwrap()["parameter"], "ab");
    }
}
