//! The user session API on the gateway listener (operations.md §4.4):
//! `GET /api/sessions`, `GET /api/sessions/{id}/events`,
//! `DELETE /api/sessions/{id}`, and the CORS preflight. Same credentials as
//! the WebSocket upgrade; the principal is the owner, and another owner's
//! session is reported exactly like a missing one (404, security.md §2.3).
//!
//! Order: route (404/405) → framing (400, 413 over 4 KiB) → Host and Origin
//! (403) → drain (503) → lockout (429) → credentials (401) → per-principal
//! rate (429) → parameters (400) → handler. Store reads go to the reader pool
//! and their answers come back to this reactor as `Msg::Call`; a delete is
//! carried out by the session's home reactor. Nothing here blocks. Every
//! answer closes the connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use crate::admin::error::ApiError;
use crate::admin::query::Params;
use crate::admin::shapes::{self, View};
use crate::net::http;
use crate::security::audit::{ActorKind, AuditEntry, AuditKind, AuditOutcome};
use crate::security::{AuthDecision, UnixTime};
use crate::store::{Answer, Query, SessionFilter};

use super::Reactor;
use super::admin::{DeleteBy, Ended, Reply};
use super::client::Stage;
use super::shared::Msg;
use super::token::Key;

/// Any request body larger than this → 413.
pub const MAX_BODY_BYTES: u64 = 4096;
/// `GET /api/sessions` `limit`: 1–100, default 20.
const LIST_MAX: u64 = 100;
const LIST_DEFAULT: u64 = 20;
/// Events page `limit`: 1–1000, default 100.
const EVENTS_MAX: u64 = 1000;
const EVENTS_DEFAULT: u64 = 100;
/// About this many bytes of event data per page (at least one row).
pub const EVENTS_PAGE_BYTES: usize = 4 << 20;
/// States a listing may ask for (`deleted` never shows on `/api`).
const LISTABLE: [&str; 4] = ["created", "idle", "running", "terminated"];

/// What a request asks for.
enum Route {
    List,
    Events(String),
    Delete(String),
}

/// `(name, value)` headers added to every answer of an allowed browser origin.
type Cors = Option<String>;

fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "sessions"] => match method {
            "GET" => Ok(Route::List),
            _ => Err(ApiError::method_not_allowed("GET, OPTIONS")),
        },
        ["api", "sessions", id] if !id.is_empty() => match method {
            "DELETE" => Ok(Route::Delete((*id).to_owned())),
            _ => Err(ApiError::method_not_allowed("DELETE, OPTIONS")),
        },
        ["api", "sessions", id, "events"] if !id.is_empty() => match method {
            "GET" => Ok(Route::Events((*id).to_owned())),
            _ => Err(ApiError::method_not_allowed("GET, OPTIONS")),
        },
        _ => Err(ApiError::not_found()),
    }
}

/// The query parameters of a request, without the credentials (`token`,
/// `api_key`: the authenticator read them, security.md §1.2).
fn params(query: Option<&str>) -> Result<Params, ApiError> {
    let mut p = Params::parse(query)?;
    p.take("token");
    p.take("api_key");
    Ok(p)
}

/// A session id in a path: a lowercase UUID (anything else names no session).
fn session_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    crate::session::identity::parse_server_id(raw).ok_or_else(|| ApiError::invalid_parameter("id"))
}

impl Reactor {
    /// A request for `/api…` (head complete, body not read).
    pub(super) fn api_request(&mut self, key: Key, req: http::Request) {
        let cors = match self.api_origin(&req) {
            Ok(c) => c,
            Err(e) => return self.api_error(key, &e, &None),
        };
        if req.method == "OPTIONS" {
            return self.api_preflight(key, &cors);
        }
        let r = match route(&req.method, &req.path) {
            Ok(r) => r,
            Err(e) => return self.api_error(key, &e, &cors),
        };
        if let Err(e) = self.api_checks(&req) {
            return self.api_error(key, &e, &cors);
        }
        let Some(peer) = self.client(key).map(|c| c.conn.peer.ip()) else { return };
        let settings = self.s.clone();
        let rs = &settings.rate;
        let ip = match crate::net::client_ip::client_ip(peer, &rs.trusted_proxies, req.header_all(&rs.client_ip_header))
        {
            Ok(ip) => ip,
            Err(_) => return self.api_error(key, &ApiError::bad_request("malformed client IP header"), &cors),
        };
        if let Err(locked) = self.shared.lockout.check(ip, Instant::now()) {
            crate::metrics::auth_failure(crate::metrics::Listener::Api, "ip");
            return self.api_error(key, &ApiError::rate_limited(locked.retry_after_secs()), &cors);
        }
        let (owner, actor): (Arc<str>, ActorKind) = match self.shared.auth().upgrade(&req, UnixTime::now()) {
            AuthDecision::Authenticated(p) => (p.owner.clone(), super::audit::actor_kind(&p)),
            AuthDecision::PreAuth => {
                crate::metrics::auth_failure(crate::metrics::Listener::Api, "missing");
                self.shared.lockout.record_failure(ip, Instant::now());
                let e = ApiError::new(401, "missing_credentials", "a credential is required")
                    .with_header("WWW-Authenticate", r#"Bearer realm="hotplex""#);
                return self.api_error(key, &e, &cors);
            }
            AuthDecision::Refused(f) => {
                crate::metrics::auth_failure(crate::metrics::Listener::Api, f.label());
                log::warn!("authentication failed on /api reason={} ip={ip}", f.label());
                self.audit(super::audit::auth_failure(&f, Some(ip), "api"));
                self.shared.lockout.record_failure(ip, Instant::now());
                let e = ApiError::new(401, "invalid_credentials", f.client_message())
                    .with_header("WWW-Authenticate", r#"Bearer realm="hotplex", error="invalid_token""#);
                return self.api_error(key, &e, &cors);
            }
        };
        if let Err(wait) = self.shared.limiter.owner_api(&owner, &settings.rate) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return self.api_error(key, &ApiError::rate_limited(secs), &cors);
        }
        let result = match r {
            Route::List => self.api_list(key, req.query.as_deref(), owner, cors.clone()),
            Route::Events(id) => self.api_events(key, &id, req.query.as_deref(), (owner, actor), ip, cors.clone()),
            Route::Delete(id) => self.api_delete(key, &id, req.query.as_deref(), (owner, actor), ip, cors.clone()),
        };
        if let Err(e) = result {
            self.api_error(key, &e, &cors);
        }
    }

    /// Origin (security.md §1.5): absent → no CORS; listed → echoed; else 403.
    fn api_origin(&self, req: &http::Request) -> Result<Cors, ApiError> {
        let Some(origin) = req.header_all("origin").next() else { return Ok(None) };
        if !crate::ws::handshake::origin_allowed(origin, &self.s.upgrade.allowed_origins) {
            return Err(ApiError::new(403, "origin_forbidden", "Origin not allowed"));
        }
        let text = std::str::from_utf8(origin).unwrap_or_default();
        Ok(crate::ws::handshake::normalize_origin(text))
    }

    /// Framing, Host and drain checks.
    fn api_checks(&self, req: &http::Request) -> Result<(), ApiError> {
        if req.header_all("transfer-encoding").next().is_some() {
            return Err(ApiError::bad_request("Transfer-Encoding is not allowed"));
        }
        match req.header_one("content-length") {
            Err(_) => return Err(ApiError::bad_request("duplicate Content-Length")),
            Ok(Some(v)) => match std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) if n > MAX_BODY_BYTES => return Err(ApiError::payload_too_large()),
                Some(_) => {}
                None => return Err(ApiError::bad_request("malformed Content-Length")),
            },
            Ok(None) => {}
        }
        match req.header_one("host") {
            Ok(Some(h)) => {
                if self.s.upgrade.require_loopback_host && !crate::ws::handshake::is_loopback_host(h) {
                    return Err(ApiError::new(403, "forbidden", "Host must be a loopback address"));
                }
            }
            _ => return Err(ApiError::bad_request("exactly one Host header is required")),
        }
        if self.stopping || self.shared.liveness.draining.load(Ordering::Relaxed) {
            let secs = self.s.reconnect_delay.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::new(503, "draining", "server draining; retry later")
                .with_header("Retry-After", secs.to_string()));
        }
        Ok(())
    }

    fn api_preflight(&mut self, key: Key, cors: &Cors) {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Access-Control-Allow-Methods", "GET, DELETE, OPTIONS"),
            ("Access-Control-Allow-Headers", "Authorization, X-API-Key, Content-Type"),
            ("Access-Control-Max-Age", "600"),
        ];
        if let Some(o) = cors {
            headers.push(("Access-Control-Allow-Origin", o));
            headers.push(("Vary", "Origin"));
        }
        let resp = http::response(204, "application/json", b"", &headers, false);
        self.api_respond(key, resp);
    }

    fn api_list(&mut self, key: Key, query: Option<&str>, owner: Arc<str>, cors: Cors) -> Result<(), ApiError> {
        let mut p = params(query)?;
        let states = p.list("state", &LISTABLE)?.unwrap_or_else(|| LISTABLE.map(String::from).to_vec());
        let types: Vec<&str> = crate::adapters::WorkerType::ALL.iter().map(|t| t.as_str()).collect();
        let worker_types = p.list("worker_type", &types)?.unwrap_or_default();
        let limit = p.int("limit", 1, LIST_MAX, LIST_DEFAULT)? as usize;
        let offset = p.int("offset", 0, i64::MAX as u64, 0)? as usize;
        p.finish()?;
        let filter = SessionFilter { owner: Some(owner.to_string()), states, worker_types, limit, offset };
        self.api_read(key, Query::ListSessions(filter), move |r, answer| {
            let body = match answer {
                Answer::Sessions(l) => {
                    let sessions = l.rows.iter().map(|row| shapes::session_json(row, None, View::Owner)).collect();
                    shapes::list_json(sessions, l.total, limit, offset)
                }
                _ => return r.api_internal(key, "session listing failed", &cors),
            };
            r.api_json(key, 200, &body, &cors);
        });
        Ok(())
    }

    fn api_events(
        &mut self,
        key: Key,
        raw_id: &str,
        query: Option<&str>,
        (owner, actor): (Arc<str>, ActorKind),
        ip: std::net::IpAddr,
        cors: Cors,
    ) -> Result<(), ApiError> {
        let id = session_id(raw_id)?;
        let mut p = params(query)?;
        let after_seq = p.int("after_seq", 0, i64::MAX as u64, 0)?;
        let limit = p.int("limit", 1, EVENTS_MAX, EVENTS_DEFAULT)? as usize;
        p.finish()?;
        let q = Query::EventsPage { session: id.to_string(), after_seq, limit, max_bytes: EVENTS_PAGE_BYTES };
        self.api_read(key, q, move |r, answer| {
            let page = match answer {
                Answer::Page(p) => p,
                _ => return r.api_internal(key, "events page failed", &cors),
            };
            match page.row.as_ref() {
                Some(row) if row.owner == *owner && row.state != "deleted" => {
                    let body = shapes::events_page_json(&row.id, &page, after_seq);
                    r.api_json(key, 200, &body, &cors);
                }
                found => {
                    if found.is_some_and(|row| row.state != "deleted") {
                        r.foreign_api_probe(ip, &id, &owner, actor);
                    }
                    r.api_error(key, &ApiError::session_not_found(), &cors);
                }
            }
        });
        Ok(())
    }

    fn api_delete(
        &mut self,
        key: Key,
        raw_id: &str,
        query: Option<&str>,
        (owner, actor): (Arc<str>, ActorKind),
        ip: std::net::IpAddr,
        cors: Cors,
    ) -> Result<(), ApiError> {
        let id = session_id(raw_id)?;
        params(query)?.finish()?;
        self.api_read(key, Query::Session(id.to_string()), move |r, answer| {
            let row = match answer {
                Answer::Session(row) => row,
                _ => return r.api_internal(key, "session lookup failed", &cors),
            };
            match row {
                Some(row) if row.owner == *owner && row.state != "deleted" => {}
                found => {
                    if found.is_some_and(|row| row.state != "deleted") {
                        r.foreign_api_probe(ip, &id, &owner, actor);
                    }
                    return r.api_error(key, &ApiError::session_not_found(), &cors);
                }
            }
            // the closed kind set (security.md §10.3) has no session-delete kind:
            // an `admin_action` row whose actor is the owner, not an admin token
            let row = AuditEntry::new(AuditKind::AdminAction, AuditOutcome::Ok, actor)
                .actor(&owner)
                .client_ip(ip)
                .session(&id.to_string())
                .reason("DELETE /api/sessions/{id}");
            r.audit(row);
            log::info!("session delete requested via /api session_id={id}");
            let back = r.shared.reactors[r.id].clone();
            let reply = Reply::new(move |ended: Option<Ended>| {
                back.send(Msg::Call(Box::new(move |r: &mut Reactor| match ended {
                    Some(Ended::Deleted) => {
                        r.api_json(key, 200, &json!({"id": id.to_string(), "state": "deleted"}), &cors)
                    }
                    Some(Ended::NotFound) => r.api_error(key, &ApiError::session_not_found(), &cors),
                    _ => r.api_internal(key, "session delete failed", &cors),
                })))
            });
            let home = crate::session::identity::home(&id, r.shared.reactors.len());
            r.shared.reactors[home]
                .send(Msg::Call(Box::new(move |h: &mut Reactor| h.admin_delete(id, DeleteBy::Owner(owner), reply))));
        });
        Ok(())
    }

    /// Another owner's existing session named on `/api`: answered like a
    /// missing one, but counted toward the IP's lockout (security.md §2.3).
    fn foreign_api_probe(&mut self, ip: std::net::IpAddr, id: &uuid::Uuid, owner: &str, actor: ActorKind) {
        log::info!("foreign session probe via /api session_id={id}");
        let row = AuditEntry::new(AuditKind::SessionForeignProbe, AuditOutcome::Denied, actor)
            .actor(owner)
            .client_ip(ip)
            .session(&id.to_string());
        self.audit(row);
        self.shared.lockout.record_failure(ip, Instant::now());
    }

    /// Submit a store read whose answer continues on this reactor.
    fn api_read(&mut self, key: Key, q: Query, then: impl FnOnce(&mut Reactor, Answer) + Send + 'static) {
        if let Some(c) = self.client_mut(key) {
            c.stage = Stage::Api;
            c.conn.read_paused = true;
        }
        let home = self.shared.reactors[self.id].clone();
        self.shared
            .readers
            .submit(q, Box::new(move |answer| home.send(Msg::Call(Box::new(move |r: &mut Reactor| then(r, answer))))));
    }

    fn api_json(&mut self, key: Key, status: u16, body: &serde_json::Value, cors: &Cors) {
        let headers = cors_headers(cors);
        let resp = http::response(status, "application/json", body.to_string().as_bytes(), &headers, false);
        self.api_respond(key, resp);
    }

    pub(super) fn api_error(&mut self, key: Key, e: &ApiError, cors: &Cors) {
        let mut headers = cors_headers(cors);
        headers.extend(e.headers.iter().map(|(k, v)| (*k, v.as_str())));
        let resp = http::response(e.status, "application/json", e.body().as_bytes(), &headers, false);
        self.api_respond(key, resp);
    }

    /// The answer did not come within `gateway.handshake_timeout` of the accept.
    pub(super) fn api_timed_out(&mut self, key: Key) {
        self.api_internal(key, "request timed out", &None);
    }

    fn api_internal(&mut self, key: Key, cause: &str, cors: &Cors) {
        let rid = crate::admin::error::request_id();
        log::error!("/api request failed request_id={rid}: {cause}");
        self.api_error(key, &ApiError::internal(&rid), cors);
    }

    /// Queue the answer and close (only while the request is still waiting for it).
    fn api_respond(&mut self, key: Key, resp: Vec<u8>) {
        if let Some(c) = self.client_mut(key) {
            if matches!(c.stage, Stage::Http | Stage::Api) {
                c.conn.respond_and_close(resp);
                c.stage = Stage::Closing;
                self.mark_dirty(key);
            }
        }
    }
}

fn cors_headers(cors: &Cors) -> Vec<(&str, &str)> {
    match cors {
        Some(o) => vec![("Access-Control-Allow-Origin", o.as_str()), ("Vary", "Origin")],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("GET", "/api/sessions"), Ok(Route::List)));
        assert!(matches!(route("GET", "/api/sessions/x/events"), Ok(Route::Events(id)) if id == "x"));
        assert!(matches!(route("DELETE", "/api/sessions/x"), Ok(Route::Delete(id)) if id == "x"));
        assert_eq!(route("POST", "/api/sessions").err().unwrap().status, 405);
        assert_eq!(route("GET", "/api/sessions/x").err().unwrap().status, 405);
        assert_eq!(route("GET", "/api/nope").err().unwrap().status, 404);
        assert_eq!(route("GET", "/api/sessions//events").err().unwrap().status, 404);
        assert!(session_id("BBD854A2-0A27-5677-893E-276FA6B73AFD").is_err());
    }
}
