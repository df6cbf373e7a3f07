//! The JSON shapes of operations.md §4.3 shared by the admin API and the user
//! session API: the session object (admin and `/api` variants), the list
//! envelope and the events page. Pure functions over store rows and a
//! reactor's live snapshot; no I/O.

use serde_json::{Map, Value, json};

use crate::reactor::admin::LiveSnapshot;
use crate::store::{Page, SessionRow, TurnRow};

/// Which variant of the session object: the `/api` one omits `owner`,
/// `work_dir`, `live.reactor` and `live.worker_pid` (and `config.work_dir`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Admin,
    Owner,
}

/// The session object. For a live session the reactor's snapshot is
/// authoritative for state, turns, seq and stats (the row may lag by one
/// commit); `live` is `null` otherwise.
pub fn session_json(row: &SessionRow, live: Option<&LiveSnapshot>, view: View) -> Value {
    let (state, state_reason, turns, last_seq, worker_session_id, totals) = match live {
        Some(l) => (
            l.state.as_str().to_owned(),
            l.state_reason.clone(),
            l.turns,
            l.last_seq.max(row.last_seq),
            l.worker_session_id.clone(),
            &l.totals,
        ),
        None => (
            row.state.clone(),
            row.state_reason.clone(),
            row.turns,
            row.last_seq,
            row.worker_session_id.clone(),
            &row.totals,
        ),
    };
    let mut o = Map::new();
    o.insert("id".into(), json!(row.id));
    if view == View::Admin {
        o.insert("owner".into(), json!(row.owner));
    }
    o.insert("owner_hash".into(), json!(crate::session::identity::owner_hash(&row.owner)));
    o.insert("worker_type".into(), json!(row.worker_type));
    o.insert("client_session_id".into(), json!(row.client_session_id));
    o.insert("worker_session_id".into(), json!(worker_session_id));
    if view == View::Admin {
        o.insert("work_dir".into(), json!(row.work_dir));
    }
    o.insert("state".into(), json!(state));
    o.insert("state_reason".into(), json!(state_reason));
    o.insert("created_at".into(), json!(row.created_at));
    o.insert("updated_at".into(), json!(row.updated_at));
    o.insert("last_active_at".into(), json!(row.last_active_at));
    o.insert("terminated_at".into(), json!(row.terminated_at));
    o.insert("turns".into(), json!(turns));
    o.insert("last_seq".into(), json!(last_seq));
    o.insert(
        "stats".into(),
        json!({
            "input_tokens": totals.input_tokens,
            "output_tokens": totals.output_tokens,
            "cache_read_tokens": totals.cache_read_tokens,
            "cache_write_tokens": totals.cache_write_tokens,
            "cost_usd": totals.cost_usd,
            "tool_calls": totals.tool_calls,
            "turn_ms": totals.turn_ms,
        }),
    );
    o.insert("config".into(), config_json(&row.config_json, view));
    o.insert(
        "live".into(),
        match live {
            None => Value::Null,
            Some(l) => {
                let mut m = Map::new();
                if view == View::Admin {
                    m.insert("reactor".into(), json!(l.reactor));
                }
                m.insert("drivers".into(), json!(l.drivers));
                m.insert("observers".into(), json!(l.observers));
                if view == View::Admin {
                    m.insert("worker_pid".into(), json!(l.worker_pid));
                }
                m.insert("turn_running".into(), json!(l.turn_started_at.is_some()));
                m.insert("turn_started_at".into(), json!(l.turn_started_at));
                m.insert("pending_permissions".into(), json!(l.pending_permissions));
                Value::Object(m)
            }
        },
    );
    Value::Object(o)
}

/// The stored `init.config` as shown: `system_prompt` replaced by its byte
/// length, `work_dir` only in the admin view.
fn config_json(stored: &str, view: View) -> Value {
    let mut m = match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(p) = m.remove("system_prompt") {
        m.insert("system_prompt_bytes".into(), json!(p.as_str().map(str::len).unwrap_or(0)));
    }
    if view == View::Owner {
        m.remove("work_dir");
    }
    Value::Object(m)
}

/// `{"sessions":[…],"total","limit","offset"}`.
pub fn list_json(sessions: Vec<Value>, total: u64, limit: usize, offset: usize) -> Value {
    json!({"sessions": sessions, "total": total, "limit": limit, "offset": offset})
}

/// The events page: envelopes exactly as a replay from the store would send
/// them (fresh envelope ids, a merged delta row cut at `after_seq`), the
/// turns starting in the returned range, and the paging fields.
pub fn events_page_json(session_id: &str, page: &Page, after_seq: u64) -> Value {
    let mut events = Vec::with_capacity(page.events.rows.len());
    let mut next_after = after_seq;
    for row in &page.events.rows {
        if let Some(bytes) = crate::store::replay::envelope(row, session_id, after_seq.max(next_after)) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                events.push(v);
            }
        }
        next_after = next_after.max(row.seq);
    }
    let oldest = page.events.oldest_seq;
    let last_seq = page.row.as_ref().map(|r| r.last_seq).unwrap_or(0).max(next_after);
    json!({
        "session_id": session_id,
        "events": events,
        "turns": page.turns.iter().map(turn_json).collect::<Vec<_>>(),
        "oldest_seq": oldest,
        "last_seq": last_seq,
        "next_after_seq": next_after,
        "has_more": page.events.has_more,
        "truncated": oldest.is_some_and(|o| after_seq.saturating_add(1) < o),
    })
}

fn turn_json(t: &TurnRow) -> Value {
    let mut input = serde_json::from_str::<Value>(&t.input).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut input {
        m.retain(|_, v| !v.is_null());
    }
    json!({"turn": t.turn, "start_seq": t.start_seq, "end_seq": t.end_seq, "started_at": t.started_at, "input": input})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventRow, EventsPage};

    fn row() -> SessionRow {
        SessionRow {
            id: "s".into(),
            owner: "alice".into(),
            worker_type: "claude_code".into(),
            work_dir: "/w".into(),
            state: "terminated".into(),
            config_json: r#"{"model":"m","system_prompt":"abcd","work_dir":"/w/x"}"#.into(),
            last_seq: 7,
            ..SessionRow::default()
        }
    }

    #[test]
    fn admin_and_owner_views() {
        let a = session_json(&row(), None, View::Admin);
        assert_eq!(a["owner"], "alice");
        assert_eq!(a["work_dir"], "/w");
        assert_eq!(a["config"], json!({"model": "m", "system_prompt_bytes": 4, "work_dir": "/w/x"}));
        assert!(a["live"].is_null());
        let o = session_json(&row(), None, View::Owner);
        assert!(o.get("owner").is_none() && o.get("work_dir").is_none());
        assert_eq!(o["config"], json!({"model": "m", "system_prompt_bytes": 4}));
        assert_eq!(o["owner_hash"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn page_fields() {
        let ev = |seq, first: Option<u64>, data: &str, splits: Option<Vec<usize>>| EventRow {
            seq,
            seq_first: first,
            event_type: "message.delta".into(),
            ts: 1,
            data: data.into(),
            splits,
        };
        let page = Page {
            row: Some(row()),
            events: EventsPage {
                rows: vec![ev(5, Some(3), r#"{"message_id":"m","content":"aabbcc"}"#, Some(vec![2, 2, 2]))],
                oldest_seq: Some(3),
                snapshots: vec![],
                has_more: true,
            },
            turns: vec![TurnRow {
                turn: 1,
                start_seq: 2,
                end_seq: None,
                started_at: 9,
                input: r#"{"content":"hi","metadata":null}"#.into(),
            }],
        };
        let v = events_page_json("s", &page, 3);
        assert_eq!(v["events"][0]["event"]["data"]["content"], "bbcc");
        assert_eq!(v["events"][0]["seq"], 5);
        assert_eq!(v["next_after_seq"], 5);
        assert_eq!(v["last_seq"], 7);
        assert_eq!(v["truncated"], false);
        assert_eq!(v["turns"][0]["input"], json!({"content": "hi"}));
        assert_eq!(events_page_json("s", &page, 2)["truncated"], false);
        assert_eq!(events_page_json("s", &page, 0)["truncated"], true, "seqs 1-2 were trimmed");
        let mut p2 = page.clone();
        p2.events.oldest_seq = Some(9);
        assert_eq!(events_page_json("s", &p2, 3)["truncated"], true);
    }
}
