//! Audit rows of the admin API (security.md §1.6, §10.3; operations.md
//! §4.2): one `admin_action` row before every mutation and every
//! `admin`-scope GET, an `admin_auth_failure` row per refused token, a
//! `revocation` row per revocation change, and the `/admin/audit` and
//! `/admin/audit/verify` endpoints.
//!
//! Owns the mapping from an admin request to an [`AuditEntry`] and the wait
//! for its commit. The row model, redaction, flood control and the hash
//! chain are `security::audit`'s; the SQL of a page is `store::queries`'.
//! Must not: block the admin thread on the writer (the row's acknowledgement
//! is awaited like a store barrier: the request is parked, the loop runs on).

use std::net::IpAddr;

use crossbeam_channel::{Receiver, TryRecvError};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::query::Params;
use super::server::{Cont, ReqId, Response, Server, Step};
use super::settings::Actor;
use crate::security::audit::{self, ActorKind, AuditAck, AuditEntry, AuditKind, AuditOutcome, AuditRecord, Detail};
use crate::store::{Answer, AuditFilter, AuditRow, Query, WriteOp};

/// `limit` of `/admin/audit`: 1–1000, default 100 (operations.md §4.2).
const PAGE_MAX: u64 = 1000;
const PAGE_DEFAULT: u64 = 100;

fn with_detail(e: AuditEntry, v: Value) -> AuditEntry {
    match Detail::from_value(v) {
        Some(d) => e.detail(d),
        None => e,
    }
}

/// The `admin_action` row of a request: actor = the token's name, reason =
/// the action (`"<METHOD> <route>"` with ids left out), session = the id in
/// the path, detail = method, path and the body's `reason` if any.
pub fn admin_action(actor: &Actor, ip: IpAddr, method: &str, path: &str, body: &Map<String, Value>) -> AuditEntry {
    let e = AuditEntry::new(AuditKind::AdminAction, AuditOutcome::Ok, ActorKind::AdminToken)
        .actor(&actor.name)
        .credential(&actor.name)
        .client_ip(ip)
        .reason(&action(method, path));
    let e = match session_in_path(path) {
        Some(sid) => e.session(sid),
        None => e,
    };
    let mut d = json!({"method": method, "path": path});
    if let Some(Value::String(r)) = body.get("reason") {
        d["reason"] = json!(r);
    }
    with_detail(e, d)
}

/// `POST /admin/sessions/{id}/terminate` → `POST /admin/sessions/{id}/terminate`
/// with `{id}` literally: a closed set of action names.
fn action(method: &str, path: &str) -> String {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let shape: Vec<&str> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| if i == 2 && segs.get(1) == Some(&"sessions") { "{id}" } else { s })
        .collect();
    format!("{method} /{}", shape.join("/"))
}

fn session_in_path(path: &str) -> Option<&str> {
    match path.trim_start_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        ["admin", "sessions", id, ..] if !id.is_empty() => Some(id),
        _ => None,
    }
}

/// An `admin_auth_failure` row (flood-controlled by the writer; never waits).
pub fn auth_failure(srv: &Server, ip: IpAddr, reason: &str) {
    let e = AuditEntry::new(AuditKind::AdminAuthFailure, AuditOutcome::Denied, ActorKind::Unauthenticated)
        .reason(reason)
        .client_ip(ip);
    audit::try_record(&srv.ctx.shared.store, with_detail(e, json!({"listener": "admin"})));
}

/// A `revocation` row after a change was committed (never waits: the
/// request's own `admin_action` row was already stored before the change).
pub fn revocation(srv: &Server, actor: &Actor, action: &str, kind: &str, value: &str, until_ms: Option<u64>) {
    let e = AuditEntry::new(AuditKind::Revocation, AuditOutcome::Ok, ActorKind::AdminToken)
        .actor(&actor.name)
        .credential(&actor.name)
        .reason(action);
    let d = json!({"kind": kind, "value": value, "until_ms": until_ms});
    audit::try_record(&srv.ctx.shared.store, with_detail(e, d));
}

fn unavailable() -> Step {
    ApiError::new(503, "audit_unavailable", "the audit log is unavailable; nothing was changed").into()
}

fn row_json(r: &AuditRow) -> Value {
    let detail = r
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "id": r.id, "ts_ms": r.ts_ms, "kind": r.kind, "outcome": r.outcome, "reason": r.reason,
        "actor_kind": r.actor_kind, "actor_id": r.actor_id, "credential_id": r.credential_id,
        "client_ip": r.client_ip, "session_id": r.session_id, "detail": detail, "hash": r.hash,
    })
}

fn page_filter(query: Option<&str>) -> Result<AuditFilter, ApiError> {
    let mut p = Params::parse(query)?;
    let after_id = p.int("after_id", 0, i64::MAX as u64, 0)? as i64;
    let limit = p.int("limit", 1, PAGE_MAX, PAGE_DEFAULT)? as usize;
    let kinds: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
    let kinds = p.list("kind", &kinds)?.unwrap_or_default();
    let session_id = match p.take("session_id") {
        None => None,
        Some(s) => Some(
            crate::session::identity::parse_server_id(&s)
                .ok_or_else(|| ApiError::invalid_parameter("session_id"))?
                .to_string(),
        ),
    };
    let since_ms = match p.take("since_ms") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= i64::MAX as u64 && !v.starts_with('+'))
                .ok_or_else(|| ApiError::invalid_parameter("since_ms"))?,
        ),
    };
    p.finish()?;
    Ok(AuditFilter { after_id, limit, kinds, session_id, since_ms })
}

impl Server {
    /// Write `entry` and continue with `then` once it is committed. A row
    /// that cannot be written refuses a `mutation` with 503; an audited GET
    /// goes on (the failure is logged).
    pub fn audited(&mut self, id: ReqId, entry: AuditEntry, mutation: bool, then: Cont) -> Step {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let op = WriteOp::Audit(Box::new(AuditRecord { entry, ack: Some(tx) }));
        if self.ctx.shared.store.try_send(op).is_err() {
            log::error!("audit: store queue full, admin_action row not written");
            return if mutation { unavailable() } else { then(self, id) };
        }
        self.after_commit(id, move |srv, id| match acked(&rx) {
            true => then(srv, id),
            false if mutation => unavailable(),
            false => {
                log::error!("audit: admin_action row of a GET not written");
                then(srv, id)
            }
        })
    }

    /// `GET /admin/audit`: rows in `id` order after `after_id`.
    pub fn audit_page(&mut self, id: ReqId, query: Option<&str>) -> Step {
        let f = match page_filter(query) {
            Ok(f) => f,
            Err(e) => return e.into(),
        };
        let after = f.after_id;
        self.read(id, Query::AuditPage(f), move |srv, _, answer| match answer {
            Answer::AuditPage(page) => {
                let next = page.rows.last().map_or(after, |r| r.id);
                let entries: Vec<Value> = page.rows.iter().map(row_json).collect();
                let body = json!({"entries": entries, "next_after_id": next, "has_more": page.has_more});
                Step::Done(Response::json(200, &body))
            }
            other => srv.internal(&format!("audit read failed: {other:?}")),
        })
    }

    /// `GET /admin/audit/verify`: a broken chain is a 200 with `ok:false`.
    pub fn audit_verify(&mut self, id: ReqId, query: Option<&str>) -> Step {
        if let Err(e) = Params::parse(query).and_then(Params::finish) {
            return e.into();
        }
        self.read(id, Query::AuditVerify, |srv, _, answer| match answer {
            Answer::AuditVerify(v) => {
                let body = json!({
                    "ok": v.ok, "rows_checked": v.rows_checked,
                    "first_bad_id": v.first_bad_id, "anchor": v.anchor_hex(),
                });
                Step::Done(Response::json(200, &body))
            }
            other => srv.internal(&format!("audit verify failed: {other:?}")),
        })
    }
}

/// The writer acknowledged the row as stored (its batch committed before
/// the barrier that resumed us, so the answer is already there).
fn acked(rx: &Receiver<AuditAck>) -> bool {
    match rx.try_recv() {
        Ok(AuditAck::Stored) => true,
        Ok(AuditAck::Suppressed) | Ok(AuditAck::Failed) => false,
        Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_hide_ids() {
        assert_eq!(action("POST", "/admin/sessions/abc/terminate"), "POST /admin/sessions/{id}/terminate");
        assert_eq!(action("DELETE", "/admin/sessions/abc"), "DELETE /admin/sessions/{id}");
        assert_eq!(action("POST", "/admin/drain"), "POST /admin/drain");
        assert_eq!(session_in_path("/admin/sessions/abc/events"), Some("abc"));
        assert_eq!(session_in_path("/admin/drain"), None);
    }

    #[test]
    fn page_parameters() {
        let f = page_filter(Some("after_id=5&limit=2&kind=admin_action,auth_failure&since_ms=10")).unwrap();
        assert_eq!((f.after_id, f.limit, f.kinds.len(), f.since_ms), (5, 2, 2, Some(10)));
        assert_eq!(page_filter(None).unwrap().limit, 100);
        for bad in ["limit=0", "limit=1001", "kind=nope", "session_id=x", "since_ms=-1", "after_id=a", "x=1"] {
            assert_eq!(page_filter(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
