//! Audit rows written from reactor threads (security.md §10.3): auth
//! failures at the upgrade and at `init`, foreign-session probes, refused
//! `init.config` policies, permission decisions and rate-limit closes.
//!
//! Owns only the mapping from a reactor event to an [`AuditEntry`]; the
//! row model, redaction, flood control and the hash chain are
//! `security::audit`'s. Must not block: rows go through
//! [`audit::try_record`], which never waits (a full store queue drops the
//! row with an error log and a count — auth paths continue, §10.3).

use std::net::IpAddr;

use serde_json::json;

use super::Reactor;
use crate::reactor::token::Key;
use crate::security::audit::{self, ActorKind, AuditEntry, AuditKind, AuditOutcome, Detail};
use crate::security::{AuthFailure, Principal, PrincipalKind};

/// The audit actor of an authenticated principal.
pub fn actor_kind(p: &Principal) -> ActorKind {
    match p.kind {
        PrincipalKind::Anonymous => ActorKind::Anonymous,
        PrincipalKind::ApiKey => ActorKind::ApiKey,
        PrincipalKind::Jwt => ActorKind::Jwt,
    }
}

/// `auth_failure` for a refused credential on the gateway listener (`/ws` or `/api`).
pub fn auth_failure(f: &AuthFailure, ip: Option<IpAddr>, stage: &str) -> AuditEntry {
    let mut e = AuditEntry::new(AuditKind::AuthFailure, AuditOutcome::Denied, ActorKind::Unauthenticated)
        .reason(f.reason.code());
    if let Some(c) = &f.credential_id {
        e = e.credential(c);
    }
    if let Some(ip) = ip {
        e = e.client_ip(ip);
    }
    let mut d = json!({"listener": "gateway", "stage": stage});
    if let Some(s) = f.source {
        d["source"] = json!(s.as_str());
    }
    match Detail::from_value(d) {
        Some(d) => e.detail(d),
        None => e,
    }
}

impl Reactor {
    /// Queue an audit row; never waits.
    pub fn audit(&self, entry: AuditEntry) {
        audit::try_record(&self.shared.store, entry);
    }

    /// An audit entry whose actor is the connection's principal (or unauthenticated).
    pub fn audit_entry_for(&self, client: Key, kind: AuditKind, outcome: AuditOutcome) -> AuditEntry {
        let c = self.client(client);
        let principal = c.and_then(|c| c.principal.as_ref());
        let mut e = match principal {
            Some(p) => AuditEntry::new(kind, outcome, actor_kind(p)).actor(&p.owner),
            None => AuditEntry::new(kind, outcome, ActorKind::Unauthenticated),
        };
        if let Some(ip) = c.and_then(|c| c.rate.open_ip) {
            e = e.client_ip(ip);
        }
        e
    }

    /// A permission decision on `session`: `allowed`, `denied`, `timeout`,
    /// `policy_denied` or `cancelled`; `actor` is the answering client, if any.
    pub fn audit_permission(&self, session: &str, owner: &str, tool: &str, decision: &str, actor: Option<Key>) {
        let outcome = if decision == "allowed" { AuditOutcome::Ok } else { AuditOutcome::Denied };
        let e = match actor {
            Some(k) => self.audit_entry_for(k, AuditKind::PermissionDecision, outcome),
            None => AuditEntry::new(AuditKind::PermissionDecision, outcome, ActorKind::System).actor(owner),
        };
        let e = e.reason(decision).session(session);
        let e = match Detail::from_value(json!({"tool_name": tool})) {
            Some(d) => e.detail(d),
            None => e,
        };
        self.audit(e);
    }
}
