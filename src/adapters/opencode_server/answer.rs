//! The end of a turn of `opencode serve` (workers.md §4.4): the blocking
//! call's answer, the bounded wait for the event stream to catch up with
//! it, the gap fill from `GET /session/{id}/message`, and the single
//! `TurnEnd`. Part of [`OpencodeServerAdapter`]; no state of its own.

use super::turn::Turn;
use super::wire::{self, MessageWithParts};
use super::{
    CATCH_UP_GRACE, GAP_FETCH_LIMIT, MAX_CLOSED_IDS, OpencodeServerAdapter, REQUEST_TIMEOUT, Req, T_CATCH_UP, translate,
};
use crate::adapters::{Action, HttpRequest, Out};
use crate::protocol::Stats;

impl OpencodeServerAdapter {
    /// The blocking `POST …/message` answered.
    pub(super) fn on_prompt_answer(&mut self, status: u16, body: &[u8], out: &mut Out) {
        let Some(t) = self.turn.as_mut() else { return };
        if status != 200 {
            let msg = translate::error_message(body).unwrap_or_else(|| format!("the server answered {status}"));
            if !t.agent_error {
                t.agent_error = true;
                out.emit(translate::transport_error(&msg, Some(status)));
            }
            return self.end_turn(None, out);
        }
        let answer: MessageWithParts = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(_) => {
                if !t.agent_error {
                    t.agent_error = true;
                    out.emit(translate::transport_error("the server's answer to the prompt is malformed", None));
                }
                return self.end_turn(None, out);
            }
        };
        t.parent = answer.info.parent_id.clone();
        if !t.gap {
            if t.saw_completed(&answer.info.id) {
                t.reconcile(&answer.info, &answer.parts, out);
                return self.end_turn(Some(&answer.info), out);
            }
            // Wait (bounded) for the stream's events of this answer.
            self.answered = Some(answer);
            return self.timer(T_CATCH_UP, CATCH_UP_GRACE, out);
        }
        t.reconcile(&answer.info, &answer.parts, out);
        if t.gap {
            if let Some(session) = self.session.clone() {
                let path = format!("/session/{session}/message?limit={GAP_FETCH_LIMIT}");
                let req = HttpRequest::get(path).with_timeout(REQUEST_TIMEOUT);
                self.pending_end = Some(answer.info);
                if self.request(Req::Messages, req, out).is_some() {
                    return;
                }
                let info = self.pending_end.take();
                return self.end_turn(info.as_ref(), out);
            }
        }
        self.end_turn(Some(&answer.info), out);
    }

    /// The answer kept for the stream to catch up: map what the stream did
    /// not deliver and end the turn.
    pub(super) fn finish_answered(&mut self, out: &mut Out) {
        let Some(answer) = self.answered.take() else { return };
        if let Some(t) = self.turn.as_mut() {
            t.reconcile(&answer.info, &answer.parts, out);
        }
        self.end_turn(Some(&answer.info), out);
    }

    /// `GET …/message` after a stream gap: map what the stream missed.
    pub(super) fn on_messages_answer(&mut self, status: u16, body: &[u8], out: &mut Out) {
        let info = self.pending_end.take();
        if let (200, Some(t)) = (status, self.turn.as_mut()) {
            let list: Vec<MessageWithParts> = serde_json::from_slice(body).unwrap_or_default();
            let parent = t.parent.clone();
            for m in list.iter().filter(|m| m.info.parent_id.is_some() && m.info.parent_id == parent) {
                t.reconcile(&m.info, &m.parts, out);
            }
        }
        self.end_turn(info.as_ref(), out);
    }

    /// The turn is over: close open messages, report an agent error the
    /// answer carries, withdraw pending permissions, `TurnEnd`.
    pub(super) fn end_turn(&mut self, info: Option<&wire::MessageInfo>, out: &mut Out) {
        let Some(mut t) = self.turn.take() else { return };
        self.pending_end = None;
        self.answered = None;
        t.finish(out);
        let error = info.and_then(|i| i.error.as_ref());
        let mut success = !t.interrupted && !t.agent_error && info.is_some();
        if let Some(e) = error {
            success = false;
            if e.name != wire::ABORTED && !t.agent_error {
                out.emit(translate::agent_error(e));
            }
        }
        let mut stats: Stats = t.stats();
        if stats.model.is_none() {
            stats.model = info.and_then(|i| Some(format!("{}/{}", i.provider_id.as_ref()?, i.model_id.as_ref()?)));
        }
        self.forget_turn(&t, info);
        for id in self.perms.drain(..) {
            out.push(Action::PermissionCancelled { id });
        }
        out.push(Action::TurnEnd { success, stats });
    }

    /// Remember the turn's message ids, so their late events are dropped.
    pub(super) fn forget_turn(&mut self, t: &Turn, info: Option<&wire::MessageInfo>) {
        let ids: Vec<String> = t.message_ids().cloned().chain(info.map(|i| i.id.clone())).collect();
        for id in ids {
            if !self.is_closed(&id) {
                if self.closed.len() >= MAX_CLOSED_IDS {
                    self.closed.pop_front();
                }
                self.closed.push_back(id);
            }
        }
    }
}
