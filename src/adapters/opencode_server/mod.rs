//! `opencode_server`: one `opencode serve` process per session, driven over
//! HTTP and its server-sent event stream (workers.md §4).
//!
//! Owns the protocol state of one server process: its startup (the
//! "listening" line, or `GET /global/health` polled as a fallback; then
//! `GET /event`, then `POST /session` or, on resume, `GET /session/{id}`),
//! the requests in flight, the event stream (reconnected with backoff when
//! it drops; liveness from the ~10 s `server.heartbeat`), the running turn,
//! and the permission requests the server is waiting on. Sans-IO: the
//! reactor's HTTP client carries out [`Action::Http`] / [`Action::HttpStream`]
//! against the endpoint the gateway chose ([`LaunchSpec::endpoint`]); this
//! module never sees a socket, a clock or the password.
//!
//! Turn shape (workers.md §4.4): the blocking `POST /session/{id}/message`
//! is the end-of-turn signal, never `session.idle` (a stale one follows an
//! aborted turn); events are filtered by the agent session id and by the
//! turn's own messages (user parts and late updates of earlier turns are
//! dropped). The server flushes its event stream in batches, typically a
//! few tens of milliseconds *after* the blocking call has answered: the
//! answer ends the turn, but `done` waits until the stream has caught up
//! with it (the `message.updated` that completes the answer's message),
//! at most [`CATCH_UP_GRACE`], so the turn's text still streams as deltas.
//! The answer is then reconciled with what the stream delivered (a missing
//! tail becomes one more delta), and after a stream gap
//! `GET /session/{id}/message` fills in what was missed.
//!
//! Choices where the spec is silent:
//! * Tool policy: `OPENCODE_PERMISSION` (see [`translate::PERMISSION_ENV`]):
//!   `"*":"ask"`, allowed tools `allow`, denied tools `deny`, `question` deny.
//! * A resumed session whose `ses_…` the server does not know (404) is
//!   still reported ready; the first input then gets
//!   [`Action::ResumeFailed`] + `TurnEnd{success:false}` (operations.md
//!   §2.1: `running` → `terminated`).
//! * A failed startup request (session create/check, event stream refused)
//!   stops the worker ([`Action::Kill`]): the session reports
//!   WORKER_START_FAILED.
//! * If the blocking call fails at the transport level and the process does
//!   not exit within [`PROMPT_LOST_GRACE`], the turn ends with AGENT_ERROR.

mod answer;
mod translate;
mod turn;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

use super::{
    Action, Adapter, Caps, ExitInfo, HttpError, HttpRequest, Launch, LaunchSpec, ManagedServer, Out, PermissionReply,
    Started, WorkerType,
};
use crate::protocol::Stats;

pub use translate::{permission_config, permission_key};
use turn::Turn;
use wire::MessageWithParts;

/// First health poll after the process started, and the poll interval.
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
/// Timeout of small control requests (health, session, permission reply, abort).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Event-stream liveness check interval (the server sends a heartbeat every ~10 s).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(25);
/// Consecutive event-stream failures before the server is given up.
pub const MAX_STREAM_FAILURES: u32 = 8;
/// How long a finished turn waits for the event stream to deliver its last events.
pub const CATCH_UP_GRACE: Duration = Duration::from_secs(5);
/// Timeout of a health poll (the server may accept before it answers).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a turn whose blocking call broke waits for the process to exit.
pub const PROMPT_LOST_GRACE: Duration = Duration::from_secs(3);
/// Permission requests tracked; more are rejected at once.
pub const MAX_PENDING_PERMISSIONS: usize = 64;
/// Requests in flight; a request beyond it is not made (logged).
pub const MAX_REQUESTS: usize = 64;
/// Message ids of finished turns remembered (their late events are dropped).
pub const MAX_CLOSED_IDS: usize = 256;
/// Messages fetched to fill a stream gap.
pub const GAP_FETCH_LIMIT: u32 = 50;

/// `kind` values of [`Action::Unmapped`].
pub mod unmapped {
    /// An event that is not JSON or lacks what its `type` promises.
    pub const MALFORMED: &str = "malformed";
}

// Timer ids: launch epoch (20 bits) | turn number (8 bits) | kind (4 bits),
// so a timer of an earlier process or turn is recognised and ignored.
const T_HEALTH: u32 = 1;
const T_RECONNECT: u32 = 2;
const T_WATCH: u32 = 3;
const T_PROMPT_LOST: u32 = 4;
const T_CATCH_UP: u32 = 5;

/// Where the server process is in its startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No process (before launch, after exit).
    Down,
    /// Started, not yet accepting connections.
    Starting,
    /// Listening; the event stream is being opened.
    Connecting,
    /// Session create / check in flight.
    Opening,
    Ready,
    /// Startup failed; the process is being stopped.
    Failed,
}

/// What a request in flight is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    Health,
    Events,
    Create,
    Check,
    Prompt,
    Messages,
    Reply,
    Abort,
}

/// The `opencode_server` adapter. See the module docs.
#[derive(Debug)]
pub struct OpencodeServerAdapter {
    epoch: u32,
    phase: Phase,
    port: u16,
    resume: Option<String>,
    model: Option<String>,
    system: Option<String>,
    agent: Option<String>,
    /// The agent session (`ses_…`) in use.
    session: Option<String>,
    /// The resumed session is unknown to the server (reported at the first input).
    resume_failed: Option<String>,
    next_id: u64,
    requests: Vec<(u64, Req)>,
    /// The open event stream's request id.
    events: Option<u64>,
    /// `server.connected` came on the current stream.
    events_up: bool,
    /// Events on the current stream since the last liveness check.
    events_seen: u64,
    /// Inputs of this process (tags turn timers).
    turns: u64,
    stream_failures: u32,
    turn: Option<Turn>,
    /// The final answer of a turn whose gap is being filled.
    pending_end: Option<wire::MessageInfo>,
    /// The blocking call's answer, waiting for the event stream to catch up.
    answered: Option<MessageWithParts>,
    /// Message ids of earlier turns.
    closed: VecDeque<String>,
    /// Permission requests waiting for the client.
    perms: Vec<String>,
}

impl Default for OpencodeServerAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl OpencodeServerAdapter {
    pub fn new() -> Self {
        OpencodeServerAdapter {
            epoch: 0,
            phase: Phase::Down,
            port: 0,
            resume: None,
            model: None,
            system: None,
            agent: None,
            session: None,
            resume_failed: None,
            next_id: 0,
            requests: Vec::new(),
            events: None,
            events_up: false,
            events_seen: 0,
            turns: 0,
            stream_failures: 0,
            turn: None,
            pending_end: None,
            answered: None,
            closed: VecDeque::new(),
            perms: Vec::new(),
        }
    }

    fn timer(&self, kind: u32, after: Duration, out: &mut Out) {
        let id = ((self.epoch & 0xf_ffff) << 12) | ((self.turns as u32 & 0xff) << 4) | kind;
        out.push(Action::Timer { id, after });
    }

    /// Make a request (`stream`: the event stream) and remember what it is for.
    fn request(&mut self, req: Req, http: HttpRequest, out: &mut Out) -> Option<u64> {
        if self.requests.len() >= MAX_REQUESTS {
            log::warn!("opencode: {} requests in flight; {req:?} not sent", self.requests.len());
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.requests.push((id, req));
        if req == Req::Events {
            out.push(Action::HttpStream { id, request: http });
        } else {
            out.push(Action::Http { id, request: http });
        }
        Some(id)
    }

    fn take_request(&mut self, id: u64) -> Option<Req> {
        let i = self.requests.iter().position(|(r, _)| *r == id)?;
        Some(self.requests.swap_remove(i).1)
    }

    fn fail_startup(&mut self, why: &str, out: &mut Out) {
        log::warn!("opencode: server startup failed: {why}");
        self.phase = Phase::Failed;
        out.push(Action::Kill);
    }

    /// The server accepts connections: open the event stream first, so no
    /// event of the session is missed.
    fn server_up(&mut self, out: &mut Out) {
        if self.phase != Phase::Starting {
            return;
        }
        log::debug!("opencode: server listening on port {}", self.port);
        self.phase = Phase::Connecting;
        self.open_events(out);
        self.timer(T_WATCH, WATCH_INTERVAL, out);
    }

    fn open_events(&mut self, out: &mut Out) {
        let mut req = HttpRequest::get("/event");
        req.headers.push(("Accept", "text/event-stream".to_owned()));
        self.events = self.request(Req::Events, req, out);
        self.events_up = false;
        self.events_seen = 0;
    }

    /// The event stream is up: create (or check) the agent session.
    fn open_session(&mut self, out: &mut Out) {
        self.phase = Phase::Opening;
        match self.resume.clone() {
            // No timeout of their own: a freshly started server answers its
            // first request slowly under load; `worker.start_timeout` bounds startup.
            Some(id) => {
                self.request(Req::Check, HttpRequest::get(format!("/session/{id}")), out);
            }
            None => {
                self.request(Req::Create, HttpRequest::post_json("/session", b"{}".to_vec()), out);
            }
        }
    }

    fn session_ready(&mut self, id: String, out: &mut Out) {
        log::debug!("opencode: agent session {id} ready");
        self.session = Some(id.clone());
        self.phase = Phase::Ready;
        out.push(Action::AgentSessionId(id));
        out.push(Action::Ready);
    }

    fn on_session_answer(&mut self, req: Req, status: u16, body: &[u8], out: &mut Out) {
        if self.phase != Phase::Opening {
            return;
        }
        match (req, status) {
            (_, 200) => match serde_json::from_slice::<wire::SessionInfo>(body) {
                Ok(info) if translate::valid_id(&info.id) => self.session_ready(info.id, out),
                _ => self.fail_startup("the session answer has no usable id", out),
            },
            (Req::Check, 404) => {
                let msg = translate::error_message(body).unwrap_or_else(|| "Session not found".to_owned());
                log::info!("opencode: resumed session unknown to the server: {msg}");
                self.resume_failed = Some(msg);
                let id = self.resume.clone().unwrap_or_default();
                self.session_ready(id, out);
            }
            _ => self.fail_startup(&format!("session request answered {status}"), out),
        }
    }

    fn event_stream_ended(&mut self, fatal: bool, out: &mut Out) {
        self.events = None;
        self.events_up = false;
        // Nothing more will come for an answered turn: finish it from the answer.
        self.finish_answered(out);
        if matches!(self.phase, Phase::Down | Phase::Failed) {
            return;
        }
        self.stream_failures += 1;
        if fatal || self.stream_failures > MAX_STREAM_FAILURES {
            return self.fail_or_kill("the event stream cannot be opened", out);
        }
        if let Some(t) = self.turn.as_mut() {
            t.gap = true;
        }
        let backoff = Duration::from_millis(100u64 << self.stream_failures.min(5));
        self.timer(T_RECONNECT, backoff, out);
    }

    fn fail_or_kill(&mut self, why: &str, out: &mut Out) {
        if self.phase == Phase::Ready {
            log::warn!("opencode: {why}; stopping the server");
            self.phase = Phase::Failed;
            out.push(Action::Kill);
        } else {
            self.fail_startup(why, out);
        }
    }

    // ---- events --------------------------------------------------------

    fn ours(&self, session_id: Option<&str>) -> bool {
        self.session.is_some() && session_id == self.session.as_deref()
    }

    fn is_closed(&self, id: &str) -> bool {
        self.closed.iter().any(|c| c == id)
    }

    fn on_event(&mut self, data: &[u8], out: &mut Out) {
        let ev: wire::Event = match serde_json::from_slice(data) {
            Ok(e) => e,
            Err(_) => {
                let raw = serde_json::from_slice::<Value>(data)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&data[..data.len().min(4096)]).into()));
                return out.push(Action::Unmapped { kind: unmapped::MALFORMED.to_owned(), raw });
            }
        };
        use wire::Event as E;
        match ev {
            E::ServerConnected {} => {
                self.stream_failures = 0;
                self.events_up = true;
                if self.phase == Phase::Connecting {
                    self.open_session(out);
                }
            }
            E::MessageUpdated { properties: m } => {
                if !self.ours(m.session_id.as_deref().or(m.info.session_id.as_deref())) || self.is_closed(&m.info.id) {
                    return;
                }
                if let Some(t) = self.turn.as_mut() {
                    t.on_message(&m.info);
                }
                // The stream caught up with the turn's answer: finish it now.
                let caught_up = self.answered.as_ref().is_some_and(|a| a.info.id == m.info.id);
                if caught_up && m.info.completed() {
                    log::debug!("opencode: the event stream caught up with the turn's answer");
                    self.finish_answered(out);
                }
            }
            E::PartUpdated { properties: p } => {
                if self.ours(p.session_id.as_deref()) {
                    if let Some(t) = self.turn.as_mut() {
                        t.on_part(&p.part, out);
                    }
                }
            }
            E::PartDelta { properties: d } => {
                if self.ours(d.session_id.as_deref()) {
                    if let Some(t) = self.turn.as_mut() {
                        t.on_delta(&d, out);
                    }
                }
            }
            E::PermissionAsked { properties: p } => {
                if self.ours(p.session_id.as_deref()) {
                    self.on_permission_asked(&p, out);
                }
            }
            E::PermissionReplied { properties: r } => {
                // Answered by someone else (not through us): withdraw it.
                if let Some(i) = self.perms.iter().position(|p| *p == r.request_id) {
                    let id = self.perms.swap_remove(i);
                    out.push(Action::PermissionCancelled { id });
                }
            }
            E::SessionError { properties: e } => {
                let Some(err) = e.error.filter(|_| self.ours(e.session_id.as_deref())) else { return };
                if let Some(t) = self.turn.as_mut().filter(|t| !t.agent_error && err.name != wire::ABORTED) {
                    t.agent_error = true;
                    out.emit(translate::agent_error(&err));
                }
            }
            E::ServerHeartbeat {} | E::Other => {}
        }
    }

    fn on_permission_asked(&mut self, p: &wire::PermissionAsked, out: &mut Out) {
        if !translate::valid_id(&p.id) || self.perms.contains(&p.id) {
            return;
        }
        let refuse = if self.turn.is_none() {
            Some("no turn is running")
        } else if self.perms.len() >= MAX_PENDING_PERMISSIONS {
            Some("too many pending permission requests")
        } else {
            None
        };
        if let Some(reason) = refuse {
            let reply =
                PermissionReply { id: p.id.clone(), allow: false, reason: Some(reason.into()), remember: false };
            return self.send_reply(&reply, out);
        }
        self.perms.push(p.id.clone());
        out.push(Action::Permission(translate::permission_ask(p)));
    }

    fn send_reply(&mut self, reply: &PermissionReply, out: &mut Out) {
        let path = format!("/permission/{}/reply", reply.id);
        let req = HttpRequest::post_json(path, translate::permission_reply(reply)).with_timeout(REQUEST_TIMEOUT);
        self.request(Req::Reply, req, out);
    }
}

impl Adapter for OpencodeServerAdapter {
    fn worker_type(&self) -> WorkerType {
        WorkerType::OpencodeServer
    }

    fn caps(&self) -> Caps {
        Caps {
            supports_resume: true,
            supports_permissions: true,
            supports_interrupt: true,
            supports_delta: true,
            supports_tool_call: true,
        }
    }

    fn needs_ready(&self) -> bool {
        true
    }

    fn managed_server(&self) -> Option<ManagedServer> {
        Some(ManagedServer { basic_user: translate::BASIC_USER, password_env: translate::PASSWORD_ENV })
    }

    /// `opencode serve` on the gateway's port; the tool policy as
    /// `OPENCODE_PERMISSION` (set last, configuration cannot replace it).
    fn launch(&mut self, spec: &LaunchSpec) -> Launch {
        let epoch = (self.epoch + 1) & 0x0fff_ffff;
        let closed = std::mem::take(&mut self.closed);
        *self = Self::new();
        self.epoch = epoch;
        self.closed = closed;
        self.phase = Phase::Starting;
        self.port = match &spec.endpoint {
            Some(e) => e.port,
            None => {
                log::error!("opencode: launched without a managed endpoint");
                0
            }
        };
        self.resume = spec.resume.clone().filter(|id| {
            let ok = translate::valid_id(id);
            if !ok {
                log::warn!("opencode: discarding invalid agent session id for resume: {id:?}");
            }
            ok
        });
        self.model = spec.model.clone().filter(|m| {
            let ok = translate::split_model(m).is_some();
            if !ok {
                log::warn!("opencode: model {m:?} is not provider/model; the server's default is used");
            }
            ok
        });
        self.system = spec.system_prompt.clone();
        self.agent = spec.agent.clone();
        let permission = translate::permission_config(&spec.allowed_tools, &spec.disallowed_tools, true);
        Launch {
            args: translate::args(self.port),
            env: translate::ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            agent_session_id: None,
            policy_env: vec![(translate::PERMISSION_ENV.to_owned(), permission)],
        }
    }

    fn on_started(&mut self, _started: &Started<'_>, out: &mut Out) {
        self.timer(T_HEALTH, HEALTH_INTERVAL, out);
    }

    fn on_input(&mut self, text: &str, out: &mut Out) {
        if let Some(message) = self.resume_failed.take() {
            out.push(Action::ResumeFailed { message });
            out.push(Action::TurnEnd { success: false, stats: Stats::default() });
            return;
        }
        let Some(session) = self.session.clone().filter(|_| self.phase == Phase::Ready) else {
            out.emit(translate::transport_error("the opencode server is not ready", None));
            out.push(Action::TurnEnd { success: false, stats: Stats::default() });
            return;
        };
        if self.turn.is_some() {
            log::warn!("opencode: input while a turn is running; the session should have refused it");
        }
        let body = translate::prompt_body(text, self.model.as_deref(), self.system.as_deref(), self.agent.as_deref());
        let req = HttpRequest::post_json(format!("/session/{session}/message"), body);
        self.turns += 1;
        // Without a connected stream the turn's events are missed: fill in at its end.
        let mut t = Turn::default();
        t.gap = !self.events_up;
        t.prompt = self.request(Req::Prompt, req, out);
        let sent = t.prompt.is_some();
        self.turn = Some(t);
        if !sent {
            out.emit(translate::transport_error("too many requests in flight", None));
            self.end_turn(None, out);
        }
    }

    fn on_permission(&mut self, reply: &PermissionReply, out: &mut Out) {
        let Some(i) = self.perms.iter().position(|p| *p == reply.id) else {
            log::debug!("opencode: permission reply for unknown request {:?} ignored", reply.id);
            return;
        };
        self.perms.swap_remove(i);
        self.send_reply(reply, out);
    }

    fn on_interrupt(&mut self, out: &mut Out) {
        let Some(session) = self.session.clone() else { return };
        let Some(t) = self.turn.as_mut().filter(|t| !t.interrupted) else { return };
        t.interrupted = true;
        let req = HttpRequest::post_json(format!("/session/{session}/abort"), Vec::new()).with_timeout(REQUEST_TIMEOUT);
        self.request(Req::Abort, req, out);
    }

    /// Startup output; the only line that matters says the server listens.
    fn on_line(&mut self, line: &[u8], out: &mut Out) {
        if line.starts_with(translate::LISTENING) {
            self.server_up(out);
        } else if !line.is_empty() {
            log::debug!("opencode stdout: {}", String::from_utf8_lossy(&line[..line.len().min(512)]));
        }
    }

    fn on_timer(&mut self, id: u32, out: &mut Out) {
        if id >> 12 != self.epoch & 0xf_ffff || matches!(self.phase, Phase::Down | Phase::Failed) {
            return; // a timer of an earlier process
        }
        let this_turn = (id >> 4) & 0xff == self.turns as u32 & 0xff;
        match id & 0xf {
            T_HEALTH if self.phase == Phase::Starting => {
                let req = HttpRequest::get("/global/health").with_timeout(HEALTH_TIMEOUT);
                self.request(Req::Health, req, out);
            }
            T_RECONNECT if self.events.is_none() => self.open_events(out),
            T_WATCH => {
                if let Some(id) = self.events.filter(|_| self.events_seen == 0) {
                    // Not even a heartbeat: the stream is dead without having ended.
                    log::warn!("opencode: event stream silent; reconnecting");
                    out.push(Action::HttpCancel { id });
                    self.take_request(id);
                    self.event_stream_ended(false, out);
                }
                self.events_seen = 0;
                self.timer(T_WATCH, WATCH_INTERVAL, out);
            }
            T_CATCH_UP if this_turn && self.answered.is_some() => {
                log::debug!("opencode: the event stream did not catch up with the turn's answer in time");
                self.finish_answered(out);
            }
            T_PROMPT_LOST if this_turn && self.turn.as_ref().is_some_and(|t| t.prompt_lost) => {
                out.emit(translate::transport_error("lost the connection to the opencode server", None));
                if let Some(t) = self.turn.as_mut() {
                    t.agent_error = true;
                }
                self.end_turn(None, out);
            }
            _ => {}
        }
    }

    fn on_http_response(&mut self, id: u64, status: u16, body: &[u8], out: &mut Out) {
        let Some(req) = self.take_request(id) else { return };
        match req {
            Req::Health => {
                let healthy = status == 200 && serde_json::from_slice::<wire::Health>(body).is_ok_and(|h| h.healthy);
                if healthy {
                    self.server_up(out);
                } else if self.phase == Phase::Starting {
                    self.timer(T_HEALTH, HEALTH_INTERVAL, out);
                }
            }
            // A stream answered without an event stream (401, 404, …).
            Req::Events => {
                log::warn!("opencode: GET /event answered {status}");
                self.event_stream_ended(true, out);
            }
            Req::Create | Req::Check => self.on_session_answer(req, status, body, out),
            Req::Prompt => {
                if self.turn.as_ref().is_some_and(|t| t.prompt == Some(id)) {
                    self.on_prompt_answer(status, body, out);
                }
            }
            Req::Messages => self.on_messages_answer(status, body, out),
            Req::Reply | Req::Abort => {
                if status != 200 {
                    log::debug!("opencode: {req:?} answered {status}: {}", String::from_utf8_lossy(body));
                }
            }
        }
    }

    fn on_http_error(&mut self, id: u64, error: HttpError, out: &mut Out) {
        let Some(req) = self.take_request(id) else { return };
        log::debug!("opencode: {req:?} request failed: {}", error.as_str());
        match req {
            Req::Health => {
                if self.phase == Phase::Starting {
                    self.timer(T_HEALTH, HEALTH_INTERVAL, out);
                }
            }
            Req::Events => {
                if self.events == Some(id) {
                    self.event_stream_ended(false, out);
                }
            }
            Req::Create | Req::Check => {
                if self.phase == Phase::Opening {
                    self.fail_startup(&format!("session request failed: {}", error.as_str()), out);
                }
            }
            Req::Prompt => {
                if let Some(t) = self.turn.as_mut().filter(|t| t.prompt == Some(id)) {
                    // Usually the server is dying: its exit ends the turn with WORKER_CRASH.
                    t.prompt_lost = true;
                    self.timer(T_PROMPT_LOST, PROMPT_LOST_GRACE, out);
                }
            }
            Req::Messages => {
                let info = self.pending_end.take();
                self.end_turn(info.as_ref(), out);
            }
            Req::Reply | Req::Abort => {}
        }
    }

    fn on_sse(&mut self, id: u64, data: &[u8], out: &mut Out) {
        if self.events != Some(id) {
            return;
        }
        self.events_seen += 1;
        self.on_event(data, out);
    }

    /// The gateway ends the turn itself: close open messages, stop the
    /// server's turn if it may still run, drop the turn's late events.
    fn on_turn_aborted(&mut self, out: &mut Out) {
        let Some(mut t) = self.turn.take() else { return };
        t.finish(out);
        let running = t.prompt.is_some_and(|p| self.requests.iter().any(|(id, _)| *id == p));
        if running && !t.interrupted && self.phase == Phase::Ready {
            if let Some(session) = self.session.clone() {
                let req = HttpRequest::post_json(format!("/session/{session}/abort"), Vec::new())
                    .with_timeout(REQUEST_TIMEOUT);
                self.request(Req::Abort, req, out);
            }
        }
        self.forget_turn(&t, None);
        self.pending_end = None;
        self.answered = None;
        self.perms.clear();
    }

    /// Close open messages and withdraw pending prompts; the session
    /// synthesises the crash error and `done` (workers.md §1.1).
    fn on_exit(&mut self, _exit: &ExitInfo, out: &mut Out) {
        if let Some(mut t) = self.turn.take() {
            t.finish(out);
            self.forget_turn(&t, None);
        }
        for id in self.perms.drain(..) {
            out.push(Action::PermissionCancelled { id });
        }
        self.phase = Phase::Down;
        self.events = None;
        self.requests.clear();
        self.pending_end = None;
        self.answered = None;
    }
}
