//! Client connections on a reactor: accept, HTTP upgrade, frame dispatch to
//! sessions, heartbeat, connection-local frames, writing and closing. The
//! protocol decisions per frame type follow aep-v1.md §2 and §3.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use tungstenite::Bytes;

use crate::net::http;
use crate::protocol::{self, ClientEvent, ControlAction, ErrorCode, Event, Mode, SessionState, close};
use crate::session::identity;
use crate::ws::conn::{Conn, HttpRead, Phase, ReadEnd};
use crate::ws::{frame, handshake};

use super::Reactor;
use super::limits::FrameClass;
use super::shared::{Adoption, Candidate};
use super::timer::{Owner, TimerKind};
use super::token::{self, Key, Kind};
use crate::metrics::UpgradeRejection as Rejection;
use crate::security::AuthDecision;

/// Messages read per wake-up before yielding to other sources.
const READ_BUDGET: usize = 64;
/// How long a closing connection waits for the peer's FIN.
const LINGER: Duration = Duration::from_secs(2);

/// Where a client is in the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    Http,
    /// A user-API request waits for a store read or another reactor (`api.rs`).
    Api,
    AwaitInit,
    /// `init` accepted, its session is being attached (worker spawning).
    InitPending,
    Attached {
        session: Key,
        mode: Mode,
    },
    Closing,
}

pub struct Client {
    pub generation: u32,
    pub conn: Conn,
    pub stage: Stage,
    pub owner: Option<Arc<str>>,
    /// Frames that arrived behind an `init`, processed once it completes.
    pub deferred: Vec<Bytes>,
    pub lingering: bool,
    pub upgraded_at: Option<Instant>,
    /// While a replay from the store is in flight: live frames held back
    /// until the replayed ones have been queued (aep-v1.md §5.3).
    pub replay_hold: Option<Vec<crate::ws::outq::SharedFrame>>,
    /// The next replay page to read once the queue has drained: (session, top, after).
    pub replay_next: Option<(Key, u64, u64)>,
    /// Rate buckets and the limiter slots this connection holds.
    pub rate: super::limits::ClientRate,
    /// Who authenticated (at upgrade, then at init); `None` = pre-auth.
    pub principal: Option<crate::security::Principal>,
    /// The `hotplex.session.attach` span of an init in progress.
    pub attach_span: crate::otel::Span,
    /// Queue bytes counted in the global total (`reactor/sendq.rs`).
    pub sendq_counted: usize,
}

impl Reactor {
    pub fn client(&self, key: Key) -> Option<&Client> {
        self.clients.get(key.idx).filter(|c| c.generation == key.generation)
    }

    pub fn client_mut(&mut self, key: Key) -> Option<&mut Client> {
        self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation)
    }

    pub(super) fn accept(&mut self, sock: TcpStream, peer: SocketAddr) {
        let r = &self.s.rate;
        let peer_ip = crate::net::client_ip::normalize(peer.ip());
        let per_ip = (!crate::net::client_ip::is_trusted(peer_ip, &r.trusted_proxies)).then_some(peer_ip);
        if self.shared.limiter.accept(per_ip, r).is_err() {
            log::debug!("pre-init connection limit reached: closing at once");
            return; // dropping the socket closes it
        }
        let mut rate = super::limits::ClientRate::new(r, Instant::now());
        rate.preinit = Some(per_ip);
        let generation = self.next_gen();
        let client = Client {
            generation,
            conn: Conn::new(sock, peer),
            stage: Stage::Http,
            owner: None,
            deferred: Vec::new(),
            lingering: false,
            upgraded_at: None,
            replay_hold: None,
            replay_next: None,
            rate,
            principal: None,
            attach_span: crate::otel::Span::NONE,
            sendq_counted: 0,
        };
        let idx = self.clients.insert(client);
        self.opened += 1;
        let key = Key { idx, generation };
        let registered = match self.clients.get_mut(idx) {
            Some(c) => {
                self.poll.registry().register(&mut c.conn.sock, token::make(Kind::Conn, key), Reactor::interest(false))
            }
            None => return,
        };
        if registered.is_err() {
            self.drop_client(key);
            return;
        }
        self.timers.after(self.s.handshake_timeout, Owner::Conn(key.into()), TimerKind::Handshake);
        // Data may already be waiting (edge-triggered): read now.
        self.on_client_event(key, true, false);
    }

    /// A connection handed over by another reactor after its `init`.
    pub(super) fn adopt(&mut self, a: Adoption) {
        let generation = self.next_gen();
        let Adoption { conn, owner, frame_id, init, candidate, deferred, rate, principal, attach_span } = a;
        let client = Client {
            generation,
            conn,
            stage: Stage::InitPending,
            owner: Some(owner),
            deferred,
            lingering: false,
            upgraded_at: Some(Instant::now()),
            replay_hold: None,
            replay_next: None,
            rate,
            principal,
            attach_span,
            sendq_counted: 0,
        };
        let idx = self.clients.insert(client);
        let key = Key { idx, generation };
        let ok = match self.clients.get_mut(idx) {
            Some(c) => self
                .poll
                .registry()
                .register(&mut c.conn.sock, token::make(Kind::Conn, key), Reactor::interest(!c.conn.out.is_empty()))
                .is_ok(),
            None => false,
        };
        if !ok {
            self.drop_client(key);
            return;
        }
        self.timers.after(self.s.ping_interval, Owner::Conn(key.into()), TimerKind::Heartbeat);
        self.init_on_home(key, frame_id, init, candidate);
    }

    pub(super) fn on_client_event(&mut self, key: Key, readable: bool, writable: bool) {
        if writable {
            self.flush_client(key);
        }
        if !readable {
            return;
        }
        let Some(c) = self.client_mut(key) else { return };
        match c.stage {
            Stage::Http => self.read_http(key),
            Stage::AwaitInit | Stage::Attached { .. } => self.read_frames(key),
            Stage::InitPending | Stage::Api => {}
            Stage::Closing => {
                if c.conn.drain_closing() {
                    self.drop_client(key);
                }
            }
        }
    }

    fn read_http(&mut self, key: Key) {
        let limits = self.s.head_limits;
        let Some(c) = self.client_mut(key) else { return };
        match c.conn.read_http(&limits) {
            HttpRead::Partial => {}
            HttpRead::Gone => self.drop_client(key),
            HttpRead::Reject(status) => {
                crate::metrics::upgrade_rejected(if status == 431 {
                    Rejection::HeaderTooLarge
                } else {
                    Rejection::BadRequest
                });
                let resp = http::error_response(status, http::default_code(status), http::reason(status), &[]);
                self.respond(key, resp);
            }
            HttpRead::Complete(req, rest) => self.route_http(key, req, rest),
        }
    }

    fn route_http(&mut self, key: Key, req: http::Request, rest: Vec<u8>) {
        match req.path.as_str() {
            "/ws" => {}
            "/health" if req.method == "GET" || req.method == "HEAD" => {
                let resp = http::json_response(200, r#"{"status":"ok"}"#, &[]);
                return self.respond(key, resp);
            }
            "/health" => {
                let resp = http::error_response(405, "method_not_allowed", "only GET", &[("Allow", "GET")]);
                return self.respond(key, resp);
            }
            p if p == "/api" || p.starts_with("/api/") => return self.api_request(key, req),
            _ => {
                let resp = http::error_response(404, "not_found", "no such path", &[]);
                return self.respond(key, resp);
            }
        }
        if self.stopping || self.shared.liveness.draining.load(Ordering::Relaxed) {
            crate::metrics::upgrade_rejected(Rejection::Draining);
            // operations.md §2.6: refused with Retry-After = gateway.reconnect_delay
            let secs = self.s.reconnect_delay.as_secs_f64().ceil().max(1.0).to_string();
            let resp =
                http::error_response(503, "draining", "server draining; reconnect later", &[("Retry-After", &secs)]);
            return self.respond(key, resp);
        }
        let r = &self.s.rate;
        let peer = match self.client(key) {
            Some(c) => c.conn.peer.ip(),
            None => return,
        };
        let ip = match crate::net::client_ip::client_ip(peer, &r.trusted_proxies, req.header_all(&r.client_ip_header)) {
            Ok(ip) => ip,
            Err(_) => {
                crate::metrics::upgrade_rejected(Rejection::BadRequest);
                let resp = http::error_response(400, "bad_request", "malformed client IP header", &[]);
                return self.respond(key, resp);
            }
        };
        match handshake::check_upgrade(&req, &self.s.upgrade) {
            Err(refusal) => {
                crate::metrics::upgrade_rejected(crate::metrics::labels::upgrade_rejection(refusal.reason));
                log::debug!("upgrade refused: {} {}", refusal.status, refusal.message);
                let resp = http::error_response(
                    refusal.status,
                    refusal.code,
                    refusal.message,
                    handshake::refusal_headers(&refusal),
                );
                self.respond(key, resp);
            }
            Ok(_) if self.shared.lockout.check(ip, Instant::now()).is_err() => {
                crate::metrics::upgrade_rejected(Rejection::Unauthorized);
                crate::metrics::auth_failure(crate::metrics::Listener::Ws, "ip");
                let resp = match self.shared.lockout.check(ip, Instant::now()) {
                    Err(locked) => locked.response(),
                    Ok(()) => http::error_response(429, "rate_limit_exceeded", "locked out", &[]),
                };
                self.respond(key, resp);
            }
            Ok(_) if self.shared.limiter.upgrade(ip, r).is_err() => {
                crate::metrics::upgrade_rejected(Rejection::BadRequest);
                let resp =
                    http::error_response(429, "rate_limit_exceeded", "too many connections", &[("Retry-After", "1")]);
                self.respond(key, resp);
            }
            Ok(accept) => {
                if let Some(c) = self.client_mut(key) {
                    c.rate.open_ip = Some(ip);
                }
                // Credentials last (security.md §1.2 rule 10).
                let principal = match self.shared.auth().upgrade(&req, crate::security::UnixTime::now()) {
                    AuthDecision::Authenticated(p) => Some(p),
                    AuthDecision::PreAuth => None,
                    AuthDecision::Refused(f) => {
                        crate::metrics::upgrade_rejected(Rejection::Unauthorized);
                        crate::metrics::auth_failure(crate::metrics::Listener::Ws, f.label());
                        log::warn!("authentication failed at upgrade reason={} ip={ip}", f.label());
                        self.shared.lockout.record_failure(ip, Instant::now());
                        self.audit(super::audit::auth_failure(&f, Some(ip), "upgrade"));
                        return self.respond(key, f.http_response());
                    }
                };
                let max = self.s.max_message_bytes;
                let Some(c) = self.client_mut(key) else { return };
                c.conn.out.push_raw(handshake::accept_response(&accept));
                c.conn.upgrade(rest, max);
                c.stage = Stage::AwaitInit;
                c.upgraded_at = Some(Instant::now());
                c.owner = principal.as_ref().map(|p| p.owner.clone());
                c.principal = principal;
                self.mark_dirty(key);
                if !self.admit_connection() {
                    // gateway.max_connections: the upgrade completes, then GATEWAY_OVERLOAD (operations.md §4.4)
                    self.send_error(key, ErrorCode::GatewayOverload, "too many connections", None, None);
                    return self.close_client(key, close::POLICY, "overload", false);
                }
                self.timers.after(self.s.init_timeout, Owner::Conn(key.into()), TimerKind::Init);
                self.timers.after(self.s.ping_interval, Owner::Conn(key.into()), TimerKind::Heartbeat);
                self.read_frames(key);
            }
        }
    }

    fn read_frames(&mut self, key: Key) {
        let Some(c) = self.client_mut(key) else { return };
        if c.conn.read_paused {
            return;
        }
        let r = c.conn.read_ws(READ_BUDGET);
        if r.alive || !r.messages.is_empty() {
            c.conn.last_rx = Instant::now();
        }
        let had_ctrl = !c.conn.out.is_empty();
        if had_ctrl {
            self.mark_dirty(key);
        }
        let mut msgs = r.messages.into_iter();
        while let Some(m) = msgs.next() {
            let Some(c) = self.client_mut(key) else { return };
            if c.stage == Stage::InitPending {
                c.deferred.push(m);
                c.deferred.extend(msgs);
                return;
            }
            if matches!(c.stage, Stage::Closing) {
                return;
            }
            self.on_frame(key, &m);
        }
        match r.end {
            Some(ReadEnd::Gone) => {
                let had_output = self.client(key).is_some_and(|c| !c.conn.out.is_empty());
                if had_output {
                    // a close reply is queued: send it, then drop
                    if let Some(c) = self.client_mut(key) {
                        c.conn.phase = Phase::Closing;
                        c.conn.read_paused = true;
                        c.stage = Stage::Closing;
                    }
                    self.detach_client(key);
                    self.mark_dirty(key);
                } else {
                    self.drop_client(key);
                }
            }
            Some(ReadEnd::Close(code, reason)) => self.close_client(key, code, reason, false),
            None => {
                if r.more {
                    self.again.push((Kind::Conn, key));
                }
            }
        }
    }

    /// Run frames deferred behind an `init` (now attached or closing).
    pub fn run_deferred(&mut self, key: Key) {
        let Some(c) = self.client_mut(key) else { return };
        c.conn.read_paused = false;
        let deferred = std::mem::take(&mut c.deferred);
        for m in deferred {
            let Some(c) = self.client(key) else { return };
            if !matches!(c.stage, Stage::Attached { .. }) {
                return;
            }
            self.on_frame(key, &m);
        }
        // more may be waiting in the socket (we stopped reading while pending)
        self.again.push((Kind::Conn, key));
    }

    fn on_frame(&mut self, key: Key, bytes: &[u8]) {
        let decoded = protocol::decode(bytes, &self.s.decode);
        crate::metrics::event_received(decoded.as_ref().map_or("other", |f| f.event.metric_type()));
        // Rate limits run before anything else (security.md §9.3).
        let (class, event_id) = match &decoded {
            Ok(f) => (
                match f.event {
                    ClientEvent::Control { .. } | ClientEvent::PermissionResponse { .. } => FrameClass::Control,
                    ClientEvent::Input { .. } => FrameClass::Input,
                    _ => FrameClass::Data,
                },
                f.id.clone(),
            ),
            Err(e) => (FrameClass::Data, e.event_id.clone()),
        };
        if !self.admit_frame(key, class, event_id) {
            return;
        }
        let Some(c) = self.client(key) else { return };
        match c.stage.clone() {
            Stage::AwaitInit => match decoded {
                Err(e) => self.fail_init(key, e.code, &e.message, e.event_id),
                Ok(f) => match f.event {
                    ClientEvent::Init(req) => self.begin_init(key, f.id, req),
                    other => {
                        let msg = format!("the first frame must be init, got {}", other.metric_type());
                        self.fail_init(key, ErrorCode::ProtocolError, &msg, f.id);
                    }
                },
            },
            Stage::Attached { session, mode } => match decoded {
                Err(e) if e.code == ErrorCode::VersionMismatch => {
                    self.send_error(
                        key,
                        e.code,
                        &e.message,
                        e.event_id,
                        Some(serde_json::json!({"max_supported": protocol::VERSION})),
                    );
                    self.close_client(key, close::POLICY, "version mismatch", false);
                }
                Err(e) => self.send_error(key, e.code, &e.message, e.event_id, None),
                Ok(f) => match f.event {
                    ClientEvent::Init(_) => self.send_error(
                        key,
                        ErrorCode::ProtocolError,
                        "init was already received on this connection",
                        f.id,
                        None,
                    ),
                    ClientEvent::Ping => {
                        let state = self.session(session).map(|s| s.state).unwrap_or(SessionState::Terminated);
                        self.send_local(key, &Event::Pong { state });
                    }
                    ClientEvent::Extension(_) => {}
                    ClientEvent::Unknown(t) => {
                        self.send_error(key, ErrorCode::ProtocolError, &format!("unknown event type: {t}"), f.id, None)
                    }
                    _ if mode == Mode::Observe => {
                        self.send_error(key, ErrorCode::Unauthorized, "observers may only send ping", f.id, None)
                    }
                    ClientEvent::Input { content, metadata } => self.on_input(session, key, f.id, content, metadata),
                    ClientEvent::PermissionResponse { id, allowed, reason, remember } => {
                        self.on_permission_response(session, key, f.id, id, allowed, reason, remember)
                    }
                    ClientEvent::Control { action: ControlAction::Unknown(a), .. } => self.send_error(
                        key,
                        ErrorCode::ProtocolError,
                        &format!("unknown control action: {a}"),
                        f.id,
                        None,
                    ),
                    ClientEvent::Control { action, .. } => self.on_control(session, key, f.id, action),
                },
            },
            _ => {}
        }
    }

    /// An init failure: one error frame, then close (aep-v1.md §4.2).
    pub fn fail_init(&mut self, key: Key, code: ErrorCode, message: &str, event_id: Option<String>) {
        let details = if code == ErrorCode::VersionMismatch {
            Some(serde_json::json!({"max_supported": protocol::VERSION}))
        } else {
            None
        };
        crate::metrics::init_failed(code);
        self.trace_init_failed(key, code);
        self.send_error(key, code, message, event_id, details);
        self.close_client(key, code.init_close_code(), "init failed", false);
    }

    /// A connection-local `error` (seq 0).
    pub fn send_error(
        &mut self,
        key: Key,
        code: ErrorCode,
        message: &str,
        event_id: Option<String>,
        details: Option<serde_json::Value>,
    ) {
        let ev = Event::Error { code, message: message.to_owned(), event_id, details };
        self.send_local(key, &ev);
    }

    /// Queue a connection-local frame (seq 0, not logged). For an attached
    /// connection it waits behind its session's frames still awaiting commit
    /// (aep-v1.md §5.2: never sent ahead of them).
    pub fn send_local(&mut self, key: Key, ev: &Event) {
        let Some(c) = self.client(key) else { return };
        if c.conn.is_closing() {
            return;
        }
        crate::metrics::local_event_sent(ev);
        let session = match &c.stage {
            Stage::Attached { session, .. } => Some(*session),
            _ => None,
        };
        let sid = session.and_then(|sk| self.session(sk)).map(|s| s.id_str.to_string()).unwrap_or_default();
        let bytes = frame::text(&protocol::encode(0, &sid, protocol::now_ms(), ev));
        if let Some(s) = session.and_then(|sk| self.session_mut(sk)) {
            if !s.persist.pending.is_empty() {
                s.persist.pending.push_back(crate::session::persist::Pending::Local(key, bytes));
                return;
            }
        }
        self.push_now(key, bytes);
    }

    /// Queue bytes on a connection now (nothing to wait for).
    pub fn push_now(&mut self, key: Key, bytes: Vec<u8>) {
        if let Some(c) = self.client_mut(key) {
            if !c.conn.is_closing() {
                c.conn.out.push_raw(bytes);
                self.mark_dirty(key);
            }
        }
    }

    fn respond(&mut self, key: Key, resp: Vec<u8>) {
        if let Some(c) = self.client_mut(key) {
            c.conn.respond_and_close(resp);
            c.stage = Stage::Closing;
            self.mark_dirty(key);
        }
    }

    /// Close with a WebSocket close code (after queued frames, unless `drop_pending`).
    ///
    /// A normal close of an attached connection waits behind the session's
    /// frames still awaiting commit, like any connection-local frame (so an
    /// error sent just before it is not overtaken by the close).
    pub fn close_client(&mut self, key: Key, code: u16, reason: &str, drop_pending: bool) {
        if !drop_pending {
            let session = match self.client(key).map(|c| (&c.stage, c.conn.is_closing())) {
                Some((Stage::Attached { session, .. }, false)) => Some(*session),
                _ => None,
            };
            if let Some(s) = session.and_then(|sk| self.session_mut(sk)) {
                if !s.persist.pending.is_empty() {
                    s.persist.pending.push_back(crate::session::persist::Pending::Close(key, code, reason.to_owned()));
                    if let Some(c) = self.client_mut(key) {
                        c.conn.read_paused = true;
                    }
                    return;
                }
            }
        }
        self.close_now(key, code, reason, drop_pending);
    }

    /// Queue the close frame now and stop using the connection.
    pub fn close_now(&mut self, key: Key, code: u16, reason: &str, drop_pending: bool) {
        self.detach_client(key);
        let Some(c) = self.client_mut(key) else { return };
        if c.conn.is_closing() {
            return;
        }
        c.conn.start_close(code, reason, drop_pending);
        c.stage = Stage::Closing;
        c.deferred.clear();
        self.mark_dirty(key);
    }

    /// Remove a client from its session (driver or observer).
    pub fn detach_client(&mut self, key: Key) {
        let Some(c) = self.client_mut(key) else { return };
        if let Stage::Attached { session, .. } = c.stage {
            c.stage = Stage::Closing;
            if let Some(s) = self.session_mut(session) {
                s.detach(key);
            }
        }
    }

    /// Forget a client now (socket closed by dropping it).
    pub fn drop_client(&mut self, key: Key) {
        self.detach_client(key);
        if self.client(key).is_none() {
            return;
        }
        let mut c = self.clients.remove(key.idx);
        self.shared.send_queues.update(c.sendq_counted, 0);
        let _ = self.poll.registry().deregister(&mut c.conn.sock);
        c.rate.release(&self.shared.limiter);
        if c.upgraded_at.is_some() {
            self.shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Write queued output; handle the end of a closing connection; count
    /// what is left toward the global send-queue total.
    pub fn flush_client(&mut self, key: Key) {
        self.flush_client_queue(key);
        self.account_send_queue(key);
    }

    fn flush_client_queue(&mut self, key: Key) {
        let Some(c) = self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation) else { return };
        let tok = token::make(Kind::Conn, key);
        match c.conn.flush() {
            Err(_) => self.drop_client(key),
            Ok(true) => {
                if c.replay_next.is_some() {
                    self.continue_replay(key);
                }
                let Some(c) = self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation) else { return };
                if c.conn.write_armed {
                    c.conn.write_armed = false;
                    let _ = self.poll.registry().reregister(&mut c.conn.sock, tok, Reactor::interest(false));
                }
                if c.conn.is_closing() && !c.lingering {
                    c.lingering = true;
                    c.conn.shutdown_write();
                    let peer_gone = c.conn.drain_closing();
                    self.timers.after(LINGER, Owner::Conn(key.into()), TimerKind::Linger);
                    if peer_gone {
                        self.drop_client(key);
                    }
                }
            }
            Ok(false) => {
                if c.replay_next.is_some() {
                    self.continue_replay(key);
                }
                let Some(c) = self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation) else { return };
                if !c.conn.write_armed {
                    c.conn.write_armed = true;
                    let _ = self.poll.registry().reregister(&mut c.conn.sock, tok, Reactor::interest(true));
                }
            }
        }
    }

    pub(super) fn on_client_timer(&mut self, key: Key, kind: TimerKind) {
        let Some(c) = self.client(key) else { return };
        match kind {
            TimerKind::Handshake if c.stage == Stage::Http => {
                crate::metrics::upgrade_rejected(Rejection::HandshakeTimeout);
                self.drop_client(key)
            }
            TimerKind::Handshake if c.stage == Stage::Api => self.api_timed_out(key),
            TimerKind::Init if c.stage == Stage::AwaitInit => {
                self.close_client(key, close::POLICY, "init timeout", false)
            }
            TimerKind::Linger => self.drop_client(key),
            TimerKind::CredentialExpiry => self.on_credential_expiry(key),
            TimerKind::Heartbeat => {
                if c.lingering {
                    return;
                }
                if c.conn.is_closing() {
                    // Closing, but the peer reads nothing: its close frame
                    // never goes out and linger never starts. Drop it.
                    if c.conn.write_stalled(self.s.write_stall_timeout) {
                        return self.drop_client(key);
                    }
                    self.timers.after(self.s.ping_interval, Owner::Conn(key.into()), TimerKind::Heartbeat);
                    return;
                }
                if !c.conn.is_ws() {
                    return;
                }
                if c.conn.write_stalled(self.s.write_stall_timeout) {
                    // slow-read defence (limits.write_stall_timeout); the
                    // next tick drops it if the close cannot go out either
                    log::info!("closing a connection whose socket took nothing for limits.write_stall_timeout");
                    self.close_client(key, close::POLICY, "write stalled", true);
                    self.timers.after(self.s.ping_interval, Owner::Conn(key.into()), TimerKind::Heartbeat);
                    return;
                }
                let silence = c.conn.last_rx.elapsed();
                let limit = self.s.ping_interval * self.s.missed_pongs;
                if silence >= limit {
                    self.close_client(key, close::GOING_AWAY, "heartbeat timeout", false);
                    self.timers.after(self.s.ping_interval, Owner::Conn(key.into()), TimerKind::Heartbeat);
                    return;
                }
                if let Some(c) = self.client_mut(key) {
                    c.conn.out.push_raw(frame::ping(b"hb"));
                }
                self.mark_dirty(key);
                self.timers.after(self.s.ping_interval, Owner::Conn(key.into()), TimerKind::Heartbeat);
            }
            _ => {}
        }
    }

    /// Count an upgraded connection against `gateway.max_connections`.
    pub fn admit_connection(&self) -> bool {
        let n = self.shared.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        n <= self.s.max_connections
    }

    /// Hand a connection to the reactor homing `candidate`'s session.
    pub fn hand_over(
        &mut self,
        key: Key,
        frame_id: Option<String>,
        init: Box<protocol::InitRequest>,
        candidate: Candidate,
    ) {
        let home = identity::home(&candidate.id(), self.shared.reactors.len());
        if self.client(key).is_none() {
            return;
        }
        let mut c = self.clients.remove(key.idx);
        // The home reactor counts the queue again at its first flush.
        self.shared.send_queues.update(c.sendq_counted, 0);
        let _ = self.poll.registry().deregister(&mut c.conn.sock);
        c.conn.write_armed = false;
        let owner = c.owner.clone().unwrap_or_else(|| Arc::from(identity::ANONYMOUS));
        let adoption = Adoption {
            conn: c.conn,
            owner,
            frame_id,
            init,
            candidate,
            deferred: c.deferred,
            rate: c.rate,
            principal: c.principal,
            attach_span: c.attach_span,
        };
        self.shared.reactors[home].send(super::shared::Msg::Adopt(Box::new(adoption)));
    }
}
