//! Sessions (aep-v1.md §4–§7): identity, the state machine, seq, the turn,
//! pending permissions, the replay window, and the drive/observe fan-out.
//! A session lives on one reactor with its worker's pipes. The logic is
//! written as methods of the reactor (`flow`, `init`, `worker`) because a
//! session event touches both the session and its connections; this file
//! holds the session's own state and pure helpers.

pub mod flow;
pub mod identity;
pub mod init;
pub mod persist;
pub mod replay;
pub mod stored;
pub mod worker;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::adapters::{Adapter, LaunchSpec, WorkerType};
use crate::child::lines::{LineSplitter, TailBuffer};
use crate::protocol::{InitConfig, SessionState};
use crate::reactor::token::Key;

use replay::ReplayRing;

/// Why a session is being (or was) terminated; the `message` of
/// `state{terminated}` and the error a running turn gets (operations.md §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermReason {
    ClientTerminate,
    ClientGc,
    IdleTimeout,
    MaxLifetime,
    WorkerExit,
    StallTimeout,
    TurnTimeout,
    Shutdown,
    /// `POST /admin/sessions/{id}/terminate` (and a revocation with `terminate_sessions`).
    AdminTerminate,
}

impl TermReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TermReason::ClientTerminate => "client_terminate",
            TermReason::ClientGc => "session_archived",
            TermReason::IdleTimeout => "idle_timeout",
            TermReason::MaxLifetime => "max_lifetime",
            TermReason::WorkerExit => "worker_exit",
            TermReason::StallTimeout => "stall_timeout",
            TermReason::TurnTimeout => "turn_timeout",
            TermReason::Shutdown => "shutdown",
            TermReason::AdminTerminate => "admin_terminate",
        }
    }
}

/// What the session does once its worker has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Terminate(TermReason),
    Delete,
    /// Restart the worker as a fresh agent session.
    Reset,
}

/// The worker process of a live session and its pipes (owned by the reactor poll).
pub struct Worker {
    pub pid: i32,
    /// `/proc/<pid>/stat` starttime (pid-reuse guard for orphan cleanup).
    pub start_ticks: u64,
    /// Distinguishes pipes of successive workers of one session in tokens.
    pub generation: u32,
    pub stdin: Option<OwnedFd>,
    pub stdin_buf: Vec<u8>,
    pub stdin_armed: bool,
    /// Close stdin once `stdin_buf` is empty (`Action::CloseStdin`).
    pub stdin_close: bool,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub lines: LineSplitter,
    pub stderr_tail: TailBuffer,
    /// The gateway sent SIGTERM/SIGKILL to the group.
    pub signalled: bool,
    /// Counts this process in `hotplex_worker_processes` while it lives.
    pub gauge: crate::metrics::ProcessGauge,
}

/// A running turn (aep-v1.md §3.3).
pub struct Turn {
    pub n: u64,
    pub started: Instant,
    pub tool_calls: u64,
    pub interrupting: bool,
    pub last_output: Instant,
    pub output_bytes: u64,
    /// The turn-timeout error was already sent.
    pub timed_out: bool,
    pub saw_content: bool,
}

/// A permission request waiting for the client.
pub struct PendingPermission {
    pub id: String,
    pub serial: u64,
    pub tool_name: String,
    pub expires: Instant,
    /// When the request went out (`hotplex_permission_wait_seconds`).
    pub asked: Instant,
}

/// An `init` waiting for the worker to start.
pub struct Waiter {
    pub client: Key,
    pub frame_id: Option<String>,
    pub last_seq: Option<u64>,
    pub resumed: bool,
}

pub struct Session {
    pub generation: u32,
    pub id: uuid::Uuid,
    pub id_str: Arc<str>,
    pub owner: Arc<str>,
    pub owner_hash: String,
    pub worker_type: WorkerType,
    pub client_key: Option<String>,
    pub state: SessionState,
    /// Mirrors `state` into `hotplex_sessions` (set it with every change of `state`).
    pub gauge: crate::metrics::SessionGauge,
    /// Highest seq assigned (the log position).
    pub seq: u64,
    /// `init.config` as accepted at creation (compared on resume).
    pub config: InitConfig,
    /// Effective launch values (policy applied); `resume` filled per spawn.
    pub launch: LaunchSpec,
    /// Requested work dir (client's, validated again at every spawn).
    pub requested_work_dir: Option<String>,
    pub work_dir: Option<PathBuf>,
    pub agent_session_id: Option<String>,
    pub completed_turns: u64,
    pub adapter: Box<dyn Adapter>,
    pub worker: Option<Worker>,
    pub worker_gen: u32,
    /// A spawn request is in flight.
    pub spawning: bool,
    /// Waiting for a spawn slot (`limits.max_spawns_per_second`); `spawning` is set too.
    pub spawn_wait: bool,
    /// The worker runs but has not finished its startup handshake.
    pub awaiting_ready: bool,
    pub driver: Option<Key>,
    pub observers: Vec<Key>,
    pub turn: Option<Turn>,
    pub turns_started: u64,
    pub perms: Vec<PendingPermission>,
    pub perm_serial: u64,
    pub replay: ReplayRing,
    pub ending: Option<Ending>,
    /// Connections that repeated `terminate`/`gc` (true = gc) while the
    /// worker was still stopping: their connection-local `state{terminated}`
    /// waits for the real one (aep-v1.md §6: never before the group is reaped).
    /// At most one entry per (connection, action): bounded by the attached connections.
    pub term_replies: Vec<(Key, bool)>,
    pub waiters: Vec<Waiter>,
    pub last_active: Instant,
    pub live_since: Instant,
    pub detached_since: Option<Instant>,
    /// When the session last entered `terminated`.
    pub terminated_at: Option<Instant>,
    /// The last turn ended with the agent's own error (no crash error on a following exit).
    pub last_turn_agent_error: bool,
    /// The live-session counter holds a slot for this session.
    pub counted: bool,
    /// Whether the next spawn resumes the agent conversation.
    pub resume_next: bool,
    /// Log writes and commit-before-send hold-back.
    pub persist: persist::Persist,
    /// Creation time (ms).
    pub created_ms: u64,
    /// Stats totals summed over turns.
    pub totals: crate::store::Totals,
    /// `state_reason` of the last termination.
    pub state_reason: Option<String>,
    /// Start of the current live period (ms); `None` while not live.
    pub live_since_ms: Option<u64>,
    /// When the session entered terminated/deleted (ms).
    pub terminated_ms: Option<u64>,
    /// Admin/API requests answered once the current ending is committed
    /// (`reactor::admin`); bounded by the admin's connection limit.
    pub end_waiters: Vec<crate::reactor::admin::Reply<crate::reactor::admin::Ended>>,
    /// The pending delete came from the admin API (close 1008 and `session_invalid`).
    pub admin_delete: bool,
    /// Spans in flight and the attach span turns link to (operations.md §6.2).
    pub trace: crate::otel::SessionTrace,
}

impl Session {
    /// A session record in `created` with nothing attached and no worker.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        generation: u32,
        id: uuid::Uuid,
        owner: Arc<str>,
        worker_type: WorkerType,
        adapter: Box<dyn Adapter>,
        config: InitConfig,
        launch: LaunchSpec,
        limits: &crate::settings::SessionLimits,
    ) -> Session {
        let now = Instant::now();
        Session {
            generation,
            id,
            id_str: Arc::from(id.to_string()),
            owner_hash: identity::owner_hash(&owner),
            owner,
            worker_type,
            client_key: None,
            state: SessionState::Created,
            gauge: crate::metrics::SessionGauge::new(SessionState::Created),
            seq: 0,
            config,
            launch,
            requested_work_dir: None,
            work_dir: None,
            agent_session_id: None,
            completed_turns: 0,
            adapter,
            worker: None,
            worker_gen: 0,
            spawning: false,
            spawn_wait: false,
            awaiting_ready: false,
            driver: None,
            observers: Vec::new(),
            turn: None,
            turns_started: 0,
            perms: Vec::new(),
            perm_serial: 0,
            replay: ReplayRing::new(limits.replay_events, limits.replay_bytes),
            ending: None,
            term_replies: Vec::new(),
            waiters: Vec::new(),
            last_active: now,
            live_since: now,
            detached_since: None,
            terminated_at: None,
            last_turn_agent_error: false,
            counted: false,
            resume_next: false,
            persist: persist::Persist::default(),
            created_ms: crate::protocol::now_ms(),
            totals: Default::default(),
            state_reason: None,
            live_since_ms: None,
            terminated_ms: None,
            end_waiters: Vec::new(),
            admin_delete: false,
            trace: Default::default(),
        }
    }

    pub fn key(&self, idx: usize) -> Key {
        Key { idx, generation: self.generation }
    }

    /// Every attached connection, driver first.
    pub fn attached(&self) -> Vec<Key> {
        let mut v = Vec::with_capacity(1 + self.observers.len());
        v.extend(self.driver);
        v.extend(self.observers.iter().copied());
        v
    }

    /// Whether the session can take an input now: a running worker (or,
    /// for a per-turn agent, no process between turns), nothing starting.
    pub fn can_take_input(&self) -> bool {
        let worker_ok = match self.adapter.process_model() {
            crate::adapters::ProcessModel::Persistent => self.worker.is_some() && !self.awaiting_ready,
            crate::adapters::ProcessModel::PerTurn => self.worker.is_none() && self.work_dir.is_some(),
        };
        worker_ok && self.state == SessionState::Idle && self.turn.is_none() && self.ending.is_none() && !self.spawning
    }

    pub fn has_connections(&self) -> bool {
        self.driver.is_some() || !self.observers.is_empty()
    }

    pub fn detach(&mut self, client: Key) {
        if self.driver == Some(client) {
            self.driver = None;
        }
        self.observers.retain(|k| *k != client);
        if !self.has_connections() {
            self.detached_since = Some(Instant::now());
        }
    }
}
