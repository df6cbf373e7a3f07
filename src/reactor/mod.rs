//! A reactor thread: one `mio::Poll` multiplexing client sockets, the pipes
//! of the workers of the sessions homed here, an inbox (crossbeam + waker)
//! and a timer heap. Owns its slabs; talks to other threads only through
//! channels. Nothing here blocks: no disk, no DNS, no `wait()`.

pub mod admin;
pub mod api;
pub mod audit;
pub mod client;
pub mod expiry;
pub mod http_client;
pub mod limits;
pub mod sendq;
pub mod shared;
pub mod spawn_pace;
pub mod timer;
pub mod token;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll};
use slab::Slab;

use crate::session::Session;
use crate::settings::Settings;

use client::Client;
use shared::{Msg, Shared};
use timer::{Owner, TimerKind, Timers};
use token::{Key, Kind};

/// The longest a poll may sleep, so heartbeats and shutdown are noticed.
const MAX_POLL: Duration = Duration::from_millis(250);

pub struct Reactor {
    pub id: usize,
    pub poll: Poll,
    pub inbox: Receiver<Msg>,
    pub shared: Arc<Shared>,
    pub s: Arc<Settings>,
    pub clients: Slab<Client>,
    pub sessions: Slab<Session>,
    pub by_id: HashMap<uuid::Uuid, usize>,
    /// Deleted session ids (SESSION_NOT_FOUND until forgotten).
    pub tombstones: HashMap<uuid::Uuid, Instant>,
    pub timers: Timers,
    /// Clients with queued output to write at the end of this iteration.
    pub dirty: Vec<Key>,
    /// Sources whose read budget ran out: read again without waiting.
    pub again: Vec<(Kind, Key)>,
    /// Outbound HTTP to managed worker endpoints.
    pub http: http_client::HttpClients,
    generation: u32,
    /// Shutdown requested: terminate sessions, then exit the loop.
    pub stopping: bool,
    /// Settings published by a reload, swapped in at the end of the iteration.
    next_settings: Option<Arc<Settings>>,
    /// Connections accepted so far (`/admin/stats` `opened_total`).
    pub opened: u64,
    /// Time spent outside `poll` (`/admin/stats` `busy_ratio`).
    pub busy: admin::BusyMeter,
    /// Since when the global send-queue total is above its limit (`sendq.rs`).
    pub sendq_over_since: Option<Instant>,
}

impl Reactor {
    pub fn new(id: usize, poll: Poll, inbox: Receiver<Msg>, shared: Arc<Shared>) -> Reactor {
        let s = shared.settings();
        Reactor {
            id,
            poll,
            inbox,
            shared,
            s,
            clients: Slab::new(),
            sessions: Slab::new(),
            by_id: HashMap::new(),
            tombstones: HashMap::new(),
            timers: Timers::default(),
            dirty: Vec::new(),
            again: Vec::new(),
            http: http_client::HttpClients::default(),
            generation: 0,
            stopping: false,
            next_settings: None,
            opened: 0,
            busy: admin::BusyMeter::new(),
            sendq_over_since: None,
        }
    }

    pub fn next_gen(&mut self) -> u32 {
        token::next_gen(&mut self.generation)
    }

    /// Run until shutdown completes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        self.timers.after(self.s.sessions.gc_interval, Owner::Reactor, TimerKind::Gc);
        let mut meter = crate::metrics::ReactorMeter::start(self.id);
        loop {
            let now = Instant::now();
            let idle = self.again.is_empty() && !self.http.has_deferred();
            let timeout = if idle { self.timers.timeout(now, MAX_POLL) } else { Duration::ZERO };
            self.shared.liveness.beat(self.id);
            let polled = self.poll.poll(&mut events, Some(timeout));
            self.busy.idle(now.elapsed());
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("reactor {} poll failed: {e}", self.id);
                    return;
                }
            }
            meter.woke();
            for ev in events.iter() {
                let Some((kind, key)) = token::split(ev.token()) else { continue };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_write_closed();
                match kind {
                    Kind::Waker => {}
                    Kind::Conn => self.on_client_event(key, readable, writable),
                    Kind::Stdout | Kind::Stderr | Kind::Stdin => self.on_pipe_event(kind, key, readable, writable),
                    Kind::Http => self.on_http_event(key, readable, writable),
                }
            }
            self.drain_inbox();
            let again = std::mem::take(&mut self.again);
            for (kind, key) in again {
                match kind {
                    Kind::Conn => self.on_client_event(key, true, false),
                    Kind::Stdout | Kind::Stderr => self.on_pipe_event(kind, key, true, false),
                    Kind::Http => self.on_http_event(key, true, false),
                    _ => {}
                }
            }
            self.http_flush_deferred();
            self.fire_timers();
            self.flush_dirty();
            if let Some(s) = self.next_settings.take() {
                self.swap_settings(s);
            }
            self.enforce_total_send_queue();
            meter.idle();
            if self.stopping && self.sessions.is_empty() {
                // Nothing left to drain: the remaining connections had their notice.
                if !self.clients.is_empty() && self.dirty.is_empty() {
                    self.close_for_reconnect();
                    self.flush_dirty();
                }
                if self.clients.is_empty() {
                    return;
                }
            }
        }
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                Msg::Accept(sock, peer) => self.accept(sock, peer),
                Msg::Adopt(a) => self.adopt(*a),
                Msg::Child(n) => self.on_child_notice(n),
                Msg::Shutdown => self.begin_shutdown(),
                Msg::Committed(list) => self.on_committed(list),
                Msg::StoreFailed(sid, seq) => self.on_store_failed(sid, seq),
                Msg::StoreWritable => self.on_store_writable(),
                Msg::Read(done) => self.on_read_done(*done),
                Msg::Reload(s) => self.next_settings = Some(s),
                Msg::Call(f) => f(self),
            }
        }
    }

    /// Take the settings of a config reload (operations.md §1.8). Most keys
    /// are read where they are used (next enqueue, next timer armed, next
    /// spawn, next init); what a live connection holds itself — tungstenite's
    /// message bound — is updated here. Authenticated connections are not
    /// re-checked and live sessions are never evicted.
    fn swap_settings(&mut self, s: Arc<Settings>) {
        if s.max_message_bytes != self.s.max_message_bytes {
            for (_, c) in self.clients.iter_mut() {
                c.conn.set_max_message_bytes(s.max_message_bytes);
            }
        }
        self.s = s;
    }

    fn on_read_done(&mut self, done: shared::ReadDone) {
        match done {
            shared::ReadDone::InitLookup { client, pending, answer } => self.on_init_lookup(client, *pending, answer),
            shared::ReadDone::StoredCount { client, pending, owner, in_flight, answer } => {
                self.on_stored_count(client, *pending, owner, in_flight, answer)
            }
            shared::ReadDone::Replay { client, session, top, after, first, answer } => {
                self.on_replay_page(client, session, top, after, first, answer)
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((deadline, owner, kind)) = self.timers.pop_due(now) {
            crate::metrics::timer_lag(now, deadline);
            match owner {
                Owner::Conn(k) => self.on_client_timer(k.into(), kind),
                Owner::Session(k) => self.on_session_timer(k.into(), kind),
                Owner::Http(k) => self.on_http_timer(k.into(), kind),
                Owner::Reactor => match kind {
                    TimerKind::Gc if !self.stopping => {
                        self.gc_sweep();
                        self.timers.after(self.s.sessions.gc_interval, Owner::Reactor, TimerKind::Gc);
                    }
                    TimerKind::DrainDeadline => {
                        let keys: Vec<Key> = self.sessions.iter().map(|(i, s)| s.key(i)).collect();
                        for k in keys {
                            self.shutdown_session(k);
                        }
                    }
                    TimerKind::ReconnectDeadline => self.close_for_reconnect(),
                    TimerKind::DrainClose(epoch) => self.drain_deadline(epoch),
                    _ => {}
                },
            }
        }
    }

    /// Write queued output of every client touched in this iteration.
    pub fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for key in dirty {
            self.flush_client(key);
        }
    }

    pub fn mark_dirty(&mut self, key: Key) {
        self.dirty.push(key);
    }

    /// Register a socket or pipe for readable (+ writable) readiness.
    pub fn interest(writable: bool) -> Interest {
        if writable { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE }
    }

    /// Graceful shutdown (operations.md §2.4): every connection gets
    /// `control.reconnect`; idle sessions stop now, running turns may finish
    /// until `gateway.drain_timeout`; connections still open at
    /// `gateway.reconnect_deadline` get RECONNECT_REQUIRED and close 1001.
    fn begin_shutdown(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        let notice = crate::protocol::Event::reconnect("server_maintenance", self.s.reconnect_delay.as_millis() as u64);
        let clients: Vec<Key> = self.clients.iter().map(|(i, c)| Key { idx: i, generation: c.generation }).collect();
        for k in clients {
            match self.client(k).map(|c| c.stage.clone()) {
                Some(client::Stage::Http | client::Stage::Api) => self.drop_client(k),
                Some(client::Stage::Closing) | None => {}
                Some(_) => self.send_local(k, &notice),
            }
        }
        let keys: Vec<Key> = self.sessions.iter().map(|(i, s)| s.key(i)).collect();
        for k in keys {
            if self.session(k).is_some_and(|s| s.turn.is_none()) {
                self.shutdown_session(k);
            }
        }
        self.timers.after(self.s.drain_timeout, Owner::Reactor, TimerKind::DrainDeadline);
        self.timers.after(self.s.reconnect_deadline, Owner::Reactor, TimerKind::ReconnectDeadline);
    }

    /// Close every connection that is still open with RECONNECT_REQUIRED (1001).
    pub fn close_for_reconnect(&mut self) {
        let clients: Vec<Key> = self.clients.iter().map(|(i, c)| Key { idx: i, generation: c.generation }).collect();
        for k in clients {
            if self.client(k).is_some_and(|c| c.stage != client::Stage::Closing && c.conn.is_ws()) {
                self.send_error(
                    k,
                    crate::protocol::ErrorCode::ReconnectRequired,
                    "reconnect to another server",
                    None,
                    None,
                );
                self.close_client(k, crate::protocol::close::GOING_AWAY, "server shutting down", false);
            }
        }
    }
}
