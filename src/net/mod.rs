//! Network plumbing: the acceptor thread, HTTP request-head parsing for the
//! listeners, and the sans-IO response reader and SSE framer of the
//! gateway's own outbound client. No protocol decisions beyond HTTP itself.

pub mod acceptor;
pub mod client_ip;
pub mod http;
pub mod http_response;
pub mod sse;
