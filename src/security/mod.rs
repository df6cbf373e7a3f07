//! Security mechanisms (security.md): SSRF guard, audit log.
pub mod audit;
pub mod ssrf;
