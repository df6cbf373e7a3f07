//! `GET/POST/DELETE /admin/revocations` (security.md §1.3, operations.md
//! §4.2–4.3). A change is committed to the store's `revocations` table
//! first, then applied to the in-memory `RevocationTable` the verifiers
//! consult (new authentications fail at once), then every reactor closes
//! the live connections of that credential (and, when asked, terminates
//! their sessions) — within a second of the request.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::query::Params;
use super::server::{ReqId, Response, Server, Step};
use super::settings::Actor;
use crate::security::RevocationKind;
use crate::store::{Answer, Query, RevocationRow, WriteOp};

/// `value` is at most this long.
const MAX_VALUE_BYTES: usize = 256;

fn row_json(r: &RevocationRow) -> Value {
    json!({"kind": r.kind, "value": r.value, "until_ms": r.until_ms, "created_ms": r.created_ms, "actor": r.actor})
}

fn kind_of(v: Option<&str>) -> Result<RevocationKind, ApiError> {
    v.and_then(RevocationKind::parse).ok_or_else(|| ApiError::invalid_parameter("kind"))
}

fn value_of(v: Option<&str>) -> Result<String, ApiError> {
    match v {
        Some(s) if !s.is_empty() && s.len() <= MAX_VALUE_BYTES && !s.chars().any(char::is_control) => Ok(s.to_owned()),
        _ => Err(ApiError::invalid_parameter("value")),
    }
}

/// Load the `revocations` table into memory (startup); blocks until the reader answers.
pub fn load(readers: &crate::store::Readers, table: &crate::security::RevocationTable) -> Result<usize, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    readers.submit(Query::Revocations { now_ms: None }, Box::new(move |a| drop(tx.send(a))));
    match rx.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(Answer::Revocations(rows)) => {
            let n = rows.len();
            let rows = rows
                .into_iter()
                .filter_map(|r| Some((RevocationKind::parse(&r.kind)?, r.value, r.until_ms.unwrap_or(u64::MAX))));
            match table.replace(rows) {
                Ok(()) => Ok(n),
                Err(dropped) => Err(format!("{dropped} revocations beyond the in-memory limit were not loaded")),
            }
        }
        Ok(other) => Err(format!("{other:?}")),
        Err(_) => Err("the store did not answer".into()),
    }
}

impl Server {
    pub fn list_revocations(&mut self, id: ReqId, query: Option<&str>) -> Step {
        if let Err(e) = Params::parse(query).and_then(Params::finish) {
            return e.into();
        }
        let now = crate::protocol::now_ms();
        self.read(id, Query::Revocations { now_ms: Some(now) }, |srv, _, answer| match answer {
            Answer::Revocations(rows) => {
                let list: Vec<Value> = rows.iter().map(row_json).collect();
                Step::Done(Response::json(200, &json!({ "revocations": list })))
            }
            other => srv.internal(&format!("revocations read failed: {other:?}")),
        })
    }

    /// `POST /admin/revocations`: 201 with the entry and what it closed.
    pub fn revoke(&mut self, id: ReqId, query: Option<&str>, body: Map<String, Value>, actor: &Actor) -> Step {
        let parsed = (|| {
            Params::parse(query)?.finish()?;
            if let Some(k) =
                body.keys().find(|k| !matches!(k.as_str(), "kind" | "value" | "until_ms" | "terminate_sessions"))
            {
                return Err(ApiError::invalid_parameter(k));
            }
            let kind = kind_of(body.get("kind").and_then(Value::as_str))?;
            let value = value_of(body.get("value").and_then(Value::as_str))?;
            let until_ms = match body.get("until_ms") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .filter(|u| *u <= i64::MAX as u64)
                        .ok_or_else(|| ApiError::invalid_parameter("until_ms"))?,
                ),
            };
            let terminate = match body.get("terminate_sessions") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(ApiError::invalid_parameter("terminate_sessions")),
            };
            Ok::<_, ApiError>((kind, value, until_ms, terminate))
        })();
        let (kind, value, until_ms, terminate) = match parsed {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        let row = RevocationRow {
            kind: kind.as_str().to_owned(),
            value: value.clone(),
            until_ms,
            created_ms: crate::protocol::now_ms(),
            actor: Some(actor.name.clone()),
        };
        if self.ctx.shared.store.try_send(WriteOp::Revoke(Box::new(row.clone()))).is_err() {
            return self.internal("store queue full (revocation)");
        }
        log::info!("revocation kind={} actor={} terminate_sessions={terminate}", kind.as_str(), actor.name);
        let actor = actor.clone();
        self.after_commit(id, move |srv, id| {
            super::audit::revocation(srv, &actor, "added", kind.as_str(), &value, until_ms);
            if !srv.ctx.shared.revocations.insert(kind, value.clone(), until_ms.unwrap_or(u64::MAX)) {
                return srv.internal("the in-memory revocation table is full");
            }
            let in_force = until_ms.is_none_or(|u| u > crate::protocol::now_ms());
            if !in_force {
                let body = json!({"revocation": row_json(&row), "connections_closed": 0, "sessions_terminated": 0});
                return Step::Done(Response::json(201, &body));
            }
            srv.ask_all(
                id,
                move |r| r.revoke(kind, &value, terminate),
                move |_, _, answers| {
                    let (closed, terminated) =
                        answers.into_iter().flatten().fold((0, 0), |(a, b), (c, t)| (a + c, b + t));
                    let body = json!({
                        "revocation": row_json(&row),
                        "connections_closed": closed,
                        "sessions_terminated": terminated,
                    });
                    Step::Done(Response::json(201, &body))
                },
            )
        })
    }

    /// `DELETE /admin/revocations?kind=&value=`.
    pub fn unrevoke(&mut self, id: ReqId, query: Option<&str>, body: Map<String, Value>, actor: &Actor) -> Step {
        let parsed = (|| {
            if let Some(k) = body.keys().next() {
                return Err(ApiError::invalid_parameter(k));
            }
            let mut p = Params::parse(query)?;
            let kind = kind_of(p.take("kind").as_deref())?;
            let value = value_of(p.take("value").as_deref())?;
            p.finish()?;
            Ok::<_, ApiError>((kind, value))
        })();
        let (kind, value) = match parsed {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        let op = WriteOp::Unrevoke { kind: kind.as_str().to_owned(), value: value.clone() };
        if self.ctx.shared.store.try_send(op).is_err() {
            return self.internal("store queue full (revocation)");
        }
        let actor = actor.clone();
        self.after_commit(id, move |srv, _| {
            if !srv.ctx.shared.revocations.remove(kind, &value) {
                return ApiError::not_found().into();
            }
            super::audit::revocation(srv, &actor, "removed", kind.as_str(), &value, None);
            log::info!("revocation removed kind={}", kind.as_str());
            Step::Done(Response::json(200, &json!({"kind": kind.as_str(), "value": value, "deleted": true})))
        })
    }
}
