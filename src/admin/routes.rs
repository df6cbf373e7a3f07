//! Routing and the common rules every admin request passes, in order
//! (operations.md §4.1, security.md §1.5–§1.6): client IP (trusted proxies
//! only) → `admin.allowed_cidrs` (403 `ip_not_allowed`) → Host on a
//! loopback listener and Origin (403) → route (404/405) → per-IP rate limit
//! (429; not for `/health` and `/ready`) → lockout (429) → Bearer token
//! (401, counted toward the lockout) → scope (403) → body (415, 400) →
//! audit row, committed before the handler runs (503 `audit_unavailable`
//! for a mutation whose row cannot be written) → handler.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::server::{Call, ReqId, Server, Step};
use super::settings::{Actor, AdminAuth};
use crate::config::AdminScope;

/// The admin endpoints (operations.md §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Metrics,
    Stats,
    Sessions,
    Session(String),
    DeleteSession(String),
    Events(String),
    Terminate(String),
    DrainStart,
    DrainEnd,
    Config,
    Reload,
    Workers,
    Audit,
    AuditVerify,
    Revocations,
    Revoke,
    Unrevoke,
}

/// What a route needs before its handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// `/health`, `/ready`: nothing, or `read` with `admin.health_public: false`.
    Health,
    /// `/metrics`: `read`, or nothing with `admin.metrics_public`.
    Metrics,
    Scope(AdminScope),
}

/// `path` with its ids replaced, for `hotplex_admin_requests_total{route}`
/// (operations.md §5.2); a path that is no endpoint is `other`, so the label
/// set stays bounded whatever clients send.
pub fn template(path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["health"] => "/health",
        ["ready"] => "/ready",
        ["metrics"] => "/metrics",
        ["admin", "stats"] => "/admin/stats",
        ["admin", "sessions"] => "/admin/sessions",
        ["admin", "sessions", id] if !id.is_empty() => "/admin/sessions/{id}",
        ["admin", "sessions", id, "events"] if !id.is_empty() => "/admin/sessions/{id}/events",
        ["admin", "sessions", id, "terminate"] if !id.is_empty() => "/admin/sessions/{id}/terminate",
        ["admin", "drain"] => "/admin/drain",
        ["admin", "config"] => "/admin/config",
        ["admin", "config", "reload"] => "/admin/config/reload",
        ["admin", "workers"] => "/admin/workers",
        ["admin", "audit"] => "/admin/audit",
        ["admin", "audit", "verify"] => "/admin/audit/verify",
        ["admin", "revocations"] => "/admin/revocations",
        _ => "other",
    }
}

fn route(method: &str, path: &str) -> Result<(Route, Need), ApiError> {
    use AdminScope::{Admin, Read, Write};
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let only = |m: &str, allow: &'static str, r: Route, n: Need| {
        if method == m { Ok((r, n)) } else { Err(ApiError::method_not_allowed(allow)) }
    };
    match segs.as_slice() {
        ["health"] => only("GET", "GET", Route::Health, Need::Health),
        ["ready"] => only("GET", "GET", Route::Ready, Need::Health),
        ["metrics"] => only("GET", "GET", Route::Metrics, Need::Metrics),
        ["admin", "stats"] => only("GET", "GET", Route::Stats, Need::Scope(Read)),
        ["admin", "sessions"] => only("GET", "GET", Route::Sessions, Need::Scope(Read)),
        ["admin", "sessions", id] if !id.is_empty() => match method {
            "GET" => Ok((Route::Session((*id).into()), Need::Scope(Read))),
            "DELETE" => Ok((Route::DeleteSession((*id).into()), Need::Scope(Write))),
            _ => Err(ApiError::method_not_allowed("GET, DELETE")),
        },
        ["admin", "sessions", id, "events"] if !id.is_empty() => {
            only("GET", "GET", Route::Events((*id).into()), Need::Scope(Admin))
        }
        ["admin", "sessions", id, "terminate"] if !id.is_empty() => {
            only("POST", "POST", Route::Terminate((*id).into()), Need::Scope(Write))
        }
        ["admin", "drain"] => match method {
            "POST" => Ok((Route::DrainStart, Need::Scope(Write))),
            "DELETE" => Ok((Route::DrainEnd, Need::Scope(Write))),
            _ => Err(ApiError::method_not_allowed("POST, DELETE")),
        },
        ["admin", "config"] => only("GET", "GET", Route::Config, Need::Scope(Admin)),
        ["admin", "config", "reload"] => only("POST", "POST", Route::Reload, Need::Scope(Admin)),
        ["admin", "workers"] => only("GET", "GET", Route::Workers, Need::Scope(Read)),
        ["admin", "audit"] => only("GET", "GET", Route::Audit, Need::Scope(Admin)),
        ["admin", "audit", "verify"] => only("GET", "GET", Route::AuditVerify, Need::Scope(Admin)),
        ["admin", "revocations"] => match method {
            "GET" => Ok((Route::Revocations, Need::Scope(Admin))),
            "POST" => Ok((Route::Revoke, Need::Scope(Admin))),
            "DELETE" => Ok((Route::Unrevoke, Need::Scope(Admin))),
            _ => Err(ApiError::method_not_allowed("GET, POST, DELETE")),
        },
        _ => Err(ApiError::not_found()),
    }
}

fn scope_name(s: AdminScope) -> &'static str {
    match s {
        AdminScope::Read => "read",
        AdminScope::Write => "write",
        AdminScope::Admin => "admin",
    }
}

/// A body's `Content-Type` is `application/json` (parameters allowed).
fn is_json(req: &crate::net::http::Request) -> bool {
    req.header_str("content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

impl Server {
    /// Run the common rules, then the route's handler.
    pub fn dispatch(&mut self, id: ReqId, call: Call) -> Step {
        let s = self.ctx.settings();
        let req = &call.req;
        let ip = match crate::net::client_ip::client_ip(
            call.peer.ip(),
            &s.trusted_proxies,
            req.header_all(&s.client_ip_header),
        ) {
            Ok(ip) => ip,
            Err(_) => return ApiError::bad_request("malformed client IP header").into(),
        };
        if !s.ip_allowed(ip) {
            crate::metrics::auth_failure(crate::metrics::Listener::Admin, "ip");
            return ApiError::new(403, "ip_not_allowed", "client address not allowed").into();
        }
        match req.header_one("host") {
            Ok(Some(h)) => {
                if s.require_loopback_host && !crate::ws::handshake::is_loopback_host(h) {
                    return ApiError::new(403, "permission_denied", "Host not allowed").into();
                }
            }
            _ => return ApiError::bad_request("exactly one Host header is required").into(),
        }
        if let Some(origin) = req.header_all("origin").next() {
            if !crate::ws::handshake::origin_allowed(origin, &s.allowed_origins) {
                return ApiError::new(403, "permission_denied", "Origin not allowed").into();
            }
        }
        let (route, need) = match route(&req.method, &req.path) {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        let public = match need {
            Need::Health => s.health_public,
            Need::Metrics => s.metrics_public,
            Need::Scope(_) => false,
        };
        if need != Need::Health {
            if let Err(secs) = self.charge_rate(ip, &s) {
                return ApiError::rate_limited(secs).into();
            }
        }
        let actor = if public {
            None
        } else {
            if let Err(locked) = self.ctx.shared.lockout.check(ip, std::time::Instant::now()) {
                crate::metrics::auth_failure(crate::metrics::Listener::Admin, "ip");
                return ApiError::rate_limited(locked.retry_after_secs()).into();
            }
            match s.authenticate(req) {
                AdminAuth::Granted(a) => Some(a),
                refused => {
                    self.ctx.shared.lockout.record_failure(ip, std::time::Instant::now());
                    let missing = refused == AdminAuth::Missing;
                    let reason = if missing { "missing" } else { "unknown_key" };
                    crate::metrics::auth_failure(crate::metrics::Listener::Admin, reason);
                    super::audit::auth_failure(self, ip, if missing { "missing" } else { "invalid_token" });
                    log::warn!("admin authentication failed ip={ip} missing={missing}");
                    let (code, msg) = if missing {
                        ("missing_admin_token", "an admin token is required")
                    } else {
                        ("invalid_admin_token", "invalid admin token")
                    };
                    return ApiError::new(401, code, msg)
                        .with_header("WWW-Authenticate", r#"Bearer realm="hotplex-admin""#)
                        .into();
                }
            }
        };
        let required = match need {
            Need::Scope(sc) => sc,
            Need::Health | Need::Metrics => AdminScope::Read,
        };
        if let Some(a) = &actor {
            if a.scope < required {
                return ApiError::new(403, "permission_denied", "insufficient scope")
                    .with_details(json!({"required_scope": scope_name(required)}))
                    .into();
            }
        }
        let body = if call.body.is_empty() {
            Map::new()
        } else if !is_json(req) {
            return ApiError::new(415, "unsupported_media_type", "the body must be application/json").into();
        } else {
            match serde_json::from_slice::<Value>(&call.body) {
                Ok(Value::Object(m)) => m,
                _ => return ApiError::bad_request("the body must be a JSON object").into(),
            }
        };
        let audited = req.method != "GET" || required == AdminScope::Admin;
        let actor = actor.unwrap_or(Actor { name: "-".into(), scope: AdminScope::Read });
        if audited && !public {
            log::info!("admin request actor={} method={} path={}", actor.name, req.method, req.path);
            let entry = super::audit::admin_action(&actor, ip, &req.method, &req.path, &body);
            let mutation = req.method != "GET";
            return self.audited(
                id,
                entry,
                mutation,
                Box::new(move |srv: &mut Server, id| srv.handle(id, route, &call, &actor, body)),
            );
        }
        self.handle(id, route, &call, &actor, body)
    }

    fn handle(&mut self, id: ReqId, route: Route, call: &Call, actor: &Actor, body: Map<String, Value>) -> Step {
        let query = call.req.query.as_deref();
        match route {
            Route::Health => self.health(query),
            Route::Ready => self.ready(query),
            Route::Metrics => self.metrics(query),
            Route::Stats => self.stats(id, query),
            Route::Sessions => self.list_sessions(id, query),
            Route::Session(sid) => self.get_session(id, &sid, query),
            Route::DeleteSession(sid) => self.delete_session(id, &sid, query, body),
            Route::Events(sid) => self.session_events(id, &sid, query),
            Route::Terminate(sid) => self.terminate_session(id, &sid, query, body),
            Route::DrainStart => self.drain_start(id, query, body),
            Route::DrainEnd => self.drain_end(query, body),
            Route::Config => self.config(query),
            Route::Reload => self.reload(query, body),
            Route::Workers => self.workers(id, query),
            Route::Audit => self.audit_page(id, query),
            Route::AuditVerify => self.audit_verify(id, query),
            Route::Revocations => self.list_revocations(id, query),
            Route::Revoke => self.revoke(id, query, body, actor),
            Route::Unrevoke => self.unrevoke(id, query, body, actor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_scopes() {
        let ok = |m, p| route(m, p).unwrap();
        assert_eq!(ok("GET", "/health"), (Route::Health, Need::Health));
        assert_eq!(ok("GET", "/metrics"), (Route::Metrics, Need::Metrics));
        assert_eq!(
            ok("DELETE", "/admin/sessions/x"),
            (Route::DeleteSession("x".into()), Need::Scope(AdminScope::Write))
        );
        assert_eq!(ok("GET", "/admin/sessions/x/events").1, Need::Scope(AdminScope::Admin));
        assert_eq!(ok("POST", "/admin/revocations").1, Need::Scope(AdminScope::Admin));
        let e = route("PUT", "/admin/drain").unwrap_err();
        assert_eq!((e.status, e.headers[0].1.as_str()), (405, "POST, DELETE"));
        assert_eq!(route("GET", "/admin/nope").unwrap_err().status, 404);
        assert_eq!(route("GET", "/admin/sessions/").unwrap_err().status, 404);
        assert_eq!(route("POST", "/health").unwrap_err().status, 405);
    }

    #[test]
    fn metric_route_templates_hide_ids_and_stay_bounded() {
        assert_eq!(template("/admin/sessions/3f2a"), "/admin/sessions/{id}");
        assert_eq!(template("/admin/sessions/3f2a/events"), "/admin/sessions/{id}/events");
        assert_eq!(template("/admin/sessions/"), "other");
        assert_eq!(template("/admin/x/../../etc"), "other");
        // every routable path has its own template
        for p in [
            "/health",
            "/ready",
            "/metrics",
            "/admin/stats",
            "/admin/drain",
            "/admin/config/reload",
            "/admin/revocations",
        ] {
            assert_eq!(template(p), p);
        }
    }
}
