//! Session endpoints of the admin API (operations.md §4.2): listing, one
//! session with its live part from the home reactor, the events page,
//! terminate and delete. Rows come from the reader pool; the live part and
//! every state change from the session's home reactor; a change is answered
//! after it is committed (a writer `Barrier`).

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::query::Params;
use super::server::{ReqId, Response, Server, Step};
use super::shapes::{self, View};
use crate::reactor::admin::{DeleteBy, Ended};
use crate::store::{Answer, Query, SessionFilter, SessionRow};

/// `GET /admin/sessions` `limit`: 1–500, default 50.
const LIST_MAX: u64 = 500;
const LIST_DEFAULT: u64 = 50;
/// Events page `limit`: 1–1000, default 100.
const EVENTS_MAX: u64 = 1000;
const EVENTS_DEFAULT: u64 = 100;
const STATES: [&str; 5] = ["created", "idle", "running", "terminated", "deleted"];
/// `reason` of a terminate request (audit only).
const MAX_REASON_BYTES: usize = 256;

/// A session id in a path: a lowercase UUID (else 400 `invalid_parameter`).
fn parse_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    crate::session::identity::parse_server_id(raw).ok_or_else(|| ApiError::invalid_parameter("id"))
}

fn home(srv: &Server, id: &uuid::Uuid) -> usize {
    crate::session::identity::home(id, srv.ctx.shared.reactors.len())
}

fn live_state(row: &SessionRow) -> bool {
    matches!(row.state.as_str(), "created" | "idle" | "running")
}

/// Only the listed keys may appear in a body.
fn body_keys(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid_parameter(k)),
        None => Ok(()),
    }
}

impl Server {
    pub fn list_sessions(&mut self, id: ReqId, query: Option<&str>) -> Step {
        let parsed = (|| {
            let mut p = Params::parse(query)?;
            let owner = p.take("owner");
            let states =
                p.list("state", &STATES)?.unwrap_or_else(|| STATES[..4].iter().map(|s| s.to_string()).collect());
            let types: Vec<&str> = crate::adapters::WorkerType::ALL.iter().map(|t| t.as_str()).collect();
            let worker_types = p.list("worker_type", &types)?.unwrap_or_default();
            let limit = p.int("limit", 1, LIST_MAX, LIST_DEFAULT)? as usize;
            let offset = p.int("offset", 0, i64::MAX as u64, 0)? as usize;
            p.finish()?;
            Ok::<_, ApiError>(SessionFilter { owner, states, worker_types, limit, offset })
        })();
        let filter = match parsed {
            Ok(f) => f,
            Err(e) => return e.into(),
        };
        let (limit, offset) = (filter.limit, filter.offset);
        self.read(id, Query::ListSessions(filter), move |srv, _, answer| match answer {
            Answer::Sessions(l) => {
                let sessions = l.rows.iter().map(|r| shapes::session_json(r, None, View::Admin)).collect();
                Step::Done(Response::json(200, &shapes::list_json(sessions, l.total, limit, offset)))
            }
            other => srv.internal(&format!("session listing failed: {other:?}")),
        })
    }

    pub fn get_session(&mut self, id: ReqId, raw: &str, query: Option<&str>) -> Step {
        let sid = match parse_id(raw).and_then(|sid| Params::parse(query)?.finish().map(|_| sid)) {
            Ok(s) => s,
            Err(e) => return e.into(),
        };
        self.read(id, Query::Session(sid.to_string()), move |srv, id, answer| {
            let row = match answer {
                Answer::Session(Some(row)) => row,
                Answer::Session(None) => return ApiError::session_not_found().into(),
                other => return srv.internal(&format!("session lookup failed: {other:?}")),
            };
            if !live_state(&row) {
                return Step::Done(Response::json(200, &shapes::session_json(&row, None, View::Admin)));
            }
            let n = home(srv, &sid);
            srv.ask(
                id,
                n,
                move |r, reply| reply.send(r.live_snapshot(&sid)),
                move |_, _, live| {
                    let live = live.flatten();
                    Step::Done(Response::json(200, &shapes::session_json(&row, live.as_ref(), View::Admin)))
                },
            )
        })
    }

    pub fn session_events(&mut self, id: ReqId, raw: &str, query: Option<&str>) -> Step {
        let parsed = (|| {
            let sid = parse_id(raw)?;
            let mut p = Params::parse(query)?;
            let after_seq = p.int("after_seq", 0, i64::MAX as u64, 0)?;
            let limit = p.int("limit", 1, EVENTS_MAX, EVENTS_DEFAULT)? as usize;
            p.finish()?;
            Ok::<_, ApiError>((sid, after_seq, limit))
        })();
        let (sid, after_seq, limit) = match parsed {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        let q = Query::EventsPage {
            session: sid.to_string(),
            after_seq,
            limit,
            max_bytes: crate::reactor::api::EVENTS_PAGE_BYTES,
        };
        self.read(id, q, move |srv, _, answer| match answer {
            Answer::Page(page) => match page.row.as_ref() {
                Some(row) if row.state != "deleted" => {
                    Step::Done(Response::json(200, &shapes::events_page_json(&row.id, &page, after_seq)))
                }
                _ => ApiError::session_not_found().into(),
            },
            other => srv.internal(&format!("events page failed: {other:?}")),
        })
    }

    /// `POST /admin/sessions/{id}/terminate`: idempotent; answered with the
    /// session after the transition is committed.
    pub fn terminate_session(&mut self, id: ReqId, raw: &str, query: Option<&str>, body: Map<String, Value>) -> Step {
        let parsed = (|| {
            let sid = parse_id(raw)?;
            Params::parse(query)?.finish()?;
            body_keys(&body, &["reason"])?;
            match body.get("reason") {
                None => {}
                Some(Value::String(s)) if s.len() <= MAX_REASON_BYTES => {}
                Some(_) => return Err(ApiError::invalid_parameter("reason")),
            }
            Ok::<_, ApiError>(sid)
        })();
        let sid = match parsed {
            Ok(s) => s,
            Err(e) => return e.into(),
        };
        self.read(id, Query::Session(sid.to_string()), move |srv, id, answer| {
            match answer {
                Answer::Session(Some(row)) if row.state != "deleted" => {}
                Answer::Session(_) => return ApiError::session_not_found().into(),
                other => return srv.internal(&format!("session lookup failed: {other:?}")),
            }
            let n = home(srv, &sid);
            srv.ask(
                id,
                n,
                move |r, reply| r.admin_terminate(sid, reply),
                move |srv, id, ended| match ended {
                    Some(Ended::Terminated) | Some(Ended::NotLive) => srv.after_commit(id, move |srv, id| {
                        srv.read(id, Query::Session(sid.to_string()), |srv, _, answer| match answer {
                            Answer::Session(Some(row)) if row.state != "deleted" => {
                                Step::Done(Response::json(200, &shapes::session_json(&row, None, View::Admin)))
                            }
                            Answer::Session(_) => ApiError::session_not_found().into(),
                            other => srv.internal(&format!("session lookup failed: {other:?}")),
                        })
                    }),
                    Some(Ended::NotFound) | Some(Ended::Deleted) => ApiError::session_not_found().into(),
                    Some(Ended::Failed) | None => srv.internal("terminate did not complete"),
                },
            )
        })
    }

    /// `DELETE /admin/sessions/{id}`: worker killed, tombstone, log deleted;
    /// answered after the tombstone is committed.
    pub fn delete_session(&mut self, id: ReqId, raw: &str, query: Option<&str>, body: Map<String, Value>) -> Step {
        let sid = match parse_id(raw).and_then(|s| Params::parse(query)?.finish().map(|_| s)) {
            Ok(s) => s,
            Err(e) => return e.into(),
        };
        if let Err(e) = body_keys(&body, &[]) {
            return e.into();
        }
        self.read(id, Query::Session(sid.to_string()), move |srv, id, answer| {
            match answer {
                Answer::Session(Some(row)) if row.state != "deleted" => {}
                Answer::Session(_) => return ApiError::session_not_found().into(),
                other => return srv.internal(&format!("session lookup failed: {other:?}")),
            }
            let n = home(srv, &sid);
            srv.ask(
                id,
                n,
                move |r, reply| r.admin_delete(sid, DeleteBy::Admin, reply),
                move |srv, id, ended| match ended {
                    Some(Ended::Deleted) => srv.after_commit(id, move |_, _| {
                        Step::Done(Response::json(200, &json!({"id": sid.to_string(), "state": "deleted"})))
                    }),
                    Some(Ended::NotFound) => ApiError::session_not_found().into(),
                    other => srv.internal(&format!("delete did not complete: {other:?}")),
                },
            )
        })
    }
}
