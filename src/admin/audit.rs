//! Audit rows of the admin API (security.md §1.6, §10.3; operations.md
//! §4.2): one `admin_action` row before every mutation and every
//! `admin`-scope GET (a mutation whose row cannot be written is refused
//! with 503), an `admin_auth_failure` row per refused token, and the
//! `/admin/audit` and `/admin/audit/verify` endpoints.
//!
//! The hash-chained log itself belongs to `security::audit` (the store
//! writer computes the chain); until it is merged the rows are logged only.

use std::net::IpAddr;

use super::error::ApiError;
use super::server::{ReqId, Server, Step};
use super::settings::Actor;

/// The audit row could not be written (a mutation is refused with 503).
#[derive(Debug)]
pub struct AuditUnavailable;

/// The `admin_action` row written before the request's effect.
pub fn admin_action(
    _srv: &mut Server,
    actor: &Actor,
    ip: IpAddr,
    method: &str,
    path: &str,
) -> Result<(), AuditUnavailable> {
    log::info!("audit admin_action actor={} ip={ip} method={method} path={path}", actor.name);
    Ok(())
}

/// An `admin_auth_failure` row (flood-controlled by the writer; never blocks).
pub fn auth_failure(_srv: &mut Server, ip: IpAddr, reason: &str) {
    log::debug!("audit admin_auth_failure ip={ip} reason={reason}");
}

impl Server {
    pub fn audit_page(&mut self, _id: ReqId, _query: Option<&str>) -> Step {
        ApiError::new(503, "audit_unavailable", "the audit log is not available in this build").into()
    }

    pub fn audit_verify(&mut self, _id: ReqId, _query: Option<&str>) -> Step {
        ApiError::new(503, "audit_unavailable", "the audit log is not available in this build").into()
    }
}
