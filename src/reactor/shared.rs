//! What reactor threads share: their inboxes (crossbeam channel + mio waker),
//! the spawner's command channel, the settings, and a few global counters.
//! Nothing here is touched per event on the hot path except atomics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use mio::Waker;
use mio::net::TcpStream;

use crate::child::supervisor::{Command, Notice};
use crate::protocol::InitRequest;
use crate::settings::Settings;
use crate::ws::conn::Conn;

/// A message into a reactor's inbox.
pub enum Msg {
    /// A freshly accepted socket.
    Accept(TcpStream, SocketAddr),
    /// A connection whose `init` belongs to a session homed here.
    Adopt(Box<Adoption>),
    /// A spawn result or a worker exit from the spawner.
    Child(Notice),
    /// Terminate every session and stop.
    Shutdown,
    /// The store committed events of these sessions up to these seqs.
    Committed(Vec<(Arc<str>, u64)>),
    /// The store could not write this event (dropped).
    StoreFailed(Arc<str>, u64),
    /// The store queue has room again.
    StoreWritable,
    /// A store read finished (session lookup, replay page).
    Read(Box<ReadDone>),
    /// A config reload published new settings: swap them at the end of
    /// this loop iteration (operations.md §1.8).
    Reload(Arc<Settings>),
    /// Run this on the reactor: admin requests, user-API steps, answers
    /// routed back from readers or other reactors (`reactor::admin`).
    Call(ReactorCall),
}

/// Work another thread asks a reactor to do on its own thread; it must not block.
pub type ReactorCall = Box<dyn FnOnce(&mut super::Reactor) + Send>;

/// A finished store read, routed back to the reactor that asked.
pub enum ReadDone {
    /// Lookup of a session that is not in memory, for an `init`.
    InitLookup { client: crate::reactor::token::Key, pending: Box<PendingInit>, answer: crate::store::Answer },
    /// One page of replay for a connection.
    Replay {
        client: crate::reactor::token::Key,
        session: crate::reactor::token::Key,
        /// The replay ends at this seq (the committed top at attach).
        top: u64,
        /// This page holds rows after this seq.
        after: u64,
        first: bool,
        answer: crate::store::Answer,
    },
}

/// An `init` waiting for a store lookup.
pub struct PendingInit {
    pub frame_id: Option<String>,
    pub init: Box<InitRequest>,
    pub candidate: Candidate,
}

/// How an init's session id is still to be resolved on the home reactor.
#[derive(Clone, Debug)]
pub enum Candidate {
    /// A brand-new session with this id.
    New(uuid::Uuid),
    /// The client sent a UUID: an existing server id of the caller, or else a client key.
    MaybeServerId(uuid::Uuid, String),
    /// A client key and the id derived from it.
    Derived(uuid::Uuid, String),
}

impl Candidate {
    pub fn id(&self) -> uuid::Uuid {
        match self {
            Candidate::New(u) | Candidate::MaybeServerId(u, _) | Candidate::Derived(u, _) => *u,
        }
    }
}

/// A connection travelling to the reactor that homes its session.
pub struct Adoption {
    pub conn: Conn,
    pub owner: Arc<str>,
    pub frame_id: Option<String>,
    pub init: Box<InitRequest>,
    pub candidate: Candidate,
    /// Frames that arrived after `init`, to run once it completes.
    pub deferred: Vec<tungstenite::Bytes>,
    pub rate: super::limits::ClientRate,
    pub principal: Option<crate::security::Principal>,
    pub attach_span: crate::otel::Span,
}

/// A reactor's inbox.
#[derive(Clone)]
pub struct ReactorHandle {
    pub tx: Sender<Msg>,
    pub waker: Arc<Waker>,
}

impl ReactorHandle {
    pub fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Where the spawner takes commands.
pub trait SpawnerClient: Send + Sync {
    fn send(&self, cmd: Command);
    /// SIGKILL every worker now (forced shutdown).
    fn kill_all(&self);
}

/// Counters for limits that span reactors (sessions, connections).
#[derive(Default)]
pub struct Counters {
    pub live_sessions: AtomicUsize,
    pub connections: AtomicUsize,
    pub per_owner: Mutex<HashMap<String, usize>>,
}

impl Counters {
    /// Reserve a live-session slot for `owner`; false when a limit is reached (0 = unlimited).
    pub fn try_add_session(&self, owner: &str, max_total: usize, max_per_owner: usize) -> bool {
        let mut per = match self.per_owner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let total = self.live_sessions.load(Ordering::Relaxed);
        let mine = per.get(owner).copied().unwrap_or(0);
        if (max_total > 0 && total >= max_total) || (max_per_owner > 0 && mine >= max_per_owner) {
            return false;
        }
        self.live_sessions.fetch_add(1, Ordering::Relaxed);
        *per.entry(owner.to_owned()).or_insert(0) += 1;
        true
    }

    pub fn remove_session(&self, owner: &str) {
        let mut per = match self.per_owner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let _ = self.live_sessions.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        if let Some(n) = per.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(owner);
            }
        }
    }
}

/// Liveness and drain state shared with the admin thread (`/ready`,
/// `/admin/drain`): one heartbeat per reactor, stored once per loop iteration.
pub struct Liveness {
    base: std::time::Instant,
    /// Milliseconds after `base` of each reactor's last loop iteration.
    heartbeats: Vec<std::sync::atomic::AtomicU64>,
    /// `POST /admin/drain` is in force (operations.md §2.6).
    pub draining: AtomicBool,
    /// Bumped by every drain start and end, so a drain's deadline timers
    /// know whether they still apply.
    pub drain_epoch: std::sync::atomic::AtomicU64,
    /// Startup is complete (every listener bound).
    pub started: AtomicBool,
}

impl Liveness {
    pub fn new(reactors: usize) -> Liveness {
        Liveness {
            base: std::time::Instant::now(),
            heartbeats: (0..reactors).map(|_| std::sync::atomic::AtomicU64::new(0)).collect(),
            draining: AtomicBool::new(false),
            drain_epoch: std::sync::atomic::AtomicU64::new(0),
            started: AtomicBool::new(false),
        }
    }

    /// Reactor `id` completed a loop iteration.
    pub fn beat(&self, id: usize) {
        if let Some(h) = self.heartbeats.get(id) {
            h.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Age of the oldest reactor heartbeat.
    pub fn oldest_heartbeat(&self) -> std::time::Duration {
        let now = self.base.elapsed().as_millis() as u64;
        let oldest = self.heartbeats.iter().map(|h| h.load(Ordering::Relaxed)).min().unwrap_or(now);
        std::time::Duration::from_millis(now.saturating_sub(oldest))
    }
}

pub struct Shared {
    /// The current settings; replaced whole by a config reload. Reactors
    /// keep their own copy (`Reactor::s`), swapped through `Msg::Reload`.
    pub settings: std::sync::RwLock<Arc<Settings>>,
    pub reactors: Vec<ReactorHandle>,
    pub spawner: Box<dyn SpawnerClient>,
    pub store: crate::store::WriterHandle,
    pub readers: crate::store::Readers,
    pub counters: Counters,
    pub limiter: super::limits::Limiter,
    /// Swapped whole on a config reload; live connections keep their principal.
    pub auth: std::sync::RwLock<Arc<crate::security::Authenticator>>,
    pub lockout: crate::security::Lockout,
    pub revocations: Arc<crate::security::RevocationTable>,
    pub shutting_down: AtomicBool,
    pub liveness: Liveness,
}

impl Shared {
    /// The current settings (threads other than the reactors).
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The current authenticator.
    pub fn auth(&self) -> Arc<crate::security::Authenticator> {
        match self.auth.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
