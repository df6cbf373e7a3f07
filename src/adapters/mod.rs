//! Agent adapters: sans-IO translators between one agent CLI's wire format
//! and AEP events (workers.md §1.1). An adapter never touches a file
//! descriptor, a clock or a thread: it gets lines, inputs and replies, and
//! returns [`Action`]s for the session to carry out. Adding an agent means
//! adding a folder here (`wire.rs` for the CLI's own types, `translate.rs`
//! for the mapping) and one arm in [`create`]; the session and reactor code
//! do not change.
//!
//! Agents that speak HTTP (a local server the gateway starts, workers.md §4)
//! declare [`Adapter::managed_server`]: the session then picks a free
//! loopback port and a password per process ([`LaunchSpec::endpoint`]), and
//! the reactor carries out [`Action::Http`] / [`Action::HttpStream`] against
//! that endpoint only (security.md §8.3), answering with
//! [`Adapter::on_http_response`], [`Adapter::on_http_error`] and
//! [`Adapter::on_sse`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::protocol::{Event, Stats};

pub mod acp;
pub mod claude;
pub mod opencode_cli;
pub mod opencode_config;
pub mod opencode_server;
pub mod pi;
pub mod wire_util;

/// The five worker types (aep-v1.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerType {
    ClaudeCode,
    OpencodeCli,
    OpencodeServer,
    Acpx,
    Pi,
}

impl WorkerType {
    pub const ALL: [WorkerType; 5] =
        [WorkerType::ClaudeCode, WorkerType::OpencodeCli, WorkerType::OpencodeServer, WorkerType::Acpx, WorkerType::Pi];

    /// The environment variable naming the agent's state directory when
    /// `workers.<type>.state_dir` is configured.
    pub fn state_dir_env(self) -> &'static str {
        match self {
            WorkerType::Pi => "PI_CODING_AGENT_DIR",
            _ => "CLAUDE_CONFIG_DIR",
        }
    }

    /// Parse an `init.worker_type` (accepts the `pi-mono` alias).
    pub fn parse(s: &str) -> Option<WorkerType> {
        Some(match s {
            "claude_code" => WorkerType::ClaudeCode,
            "opencode_cli" => WorkerType::OpencodeCli,
            "opencode_server" => WorkerType::OpencodeServer,
            "acpx" => WorkerType::Acpx,
            "pi" | "pi-mono" => WorkerType::Pi,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkerType::ClaudeCode => "claude_code",
            WorkerType::OpencodeCli => "opencode_cli",
            WorkerType::OpencodeServer => "opencode_server",
            WorkerType::Acpx => "acpx",
            WorkerType::Pi => "pi",
        }
    }
}

/// How an agent's processes relate to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessModel {
    /// One process for the session's live period (claude, ACP agents, pi, `opencode serve`).
    Persistent,
    /// One process per turn (`opencode run`): none between turns; the
    /// adapter ends the turn when that process exits.
    PerTurn,
}

/// What the adapter learns when its process is running.
#[derive(Clone, Copy, Debug)]
pub struct Started<'a> {
    /// The canonical work dir the process runs in.
    pub work_dir: &'a std::path::Path,
    pub pid: i32,
}

/// What an adapter can do; reported in `init_ack.server_caps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub supports_resume: bool,
    pub supports_permissions: bool,
    pub supports_interrupt: bool,
    pub supports_delta: bool,
    pub supports_tool_call: bool,
}

/// How a client `system_prompt` combines with the operator's (security.md §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemPromptMode {
    Append,
    Replace,
}

/// Everything an adapter needs to build its command line. All values are
/// already validated against policy; the adapter only formats them.
#[derive(Clone, Debug, Default)]
pub struct LaunchSpec {
    /// Canonical absolute work dir (the child `fchdir`s to it).
    pub work_dir: PathBuf,
    /// Effective model (client choice or the worker type's default).
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub system_prompt_mode: Option<SystemPromptMode>,
    /// Effective allow list (tools usable without asking); empty = none.
    pub allowed_tools: Vec<String>,
    /// Effective deny list (server ∪ client).
    pub disallowed_tools: Vec<String>,
    pub permission_mode: Option<String>,
    pub max_turns: Option<u64>,
    /// Agent-side session id to resume; `None` starts a fresh agent session.
    pub resume: Option<String>,
    /// `workers.<type>.mcp_config` when set.
    pub mcp_config: Option<PathBuf>,
    /// Turns this session started before this process (its stored `turns`):
    /// lets an adapter number what it makes (message ids) uniquely within
    /// the session across processes and gateway restarts.
    pub turn_base: u64,
    /// `workers.<type>.agent` when set (opencode prompt body `agent`).
    pub agent: Option<String>,
    /// The loopback port and password the gateway chose for this process
    /// (adapters with [`Adapter::managed_server`] only).
    pub endpoint: Option<ServerEndpoint>,
}

/// Where a managed server must listen and the password it must require.
/// The port was free a moment ago on 127.0.0.1 (bind-probe, workers.md
/// §4.1); the password is 32 random bytes in hex, for this process only.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerEndpoint {
    pub port: u16,
    pub password: String,
}

impl std::fmt::Debug for ServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEndpoint").field("port", &self.port).field("password", &"<redacted>").finish()
    }
}

/// An adapter whose worker is a local HTTP server the gateway manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManagedServer {
    /// User name of the HTTP Basic credentials the server expects.
    pub basic_user: &'static str,
    /// The server reads its password from this variable; the gateway sets
    /// it (after every other variable, so configuration cannot replace it).
    pub password_env: &'static str,
}

/// A request to the worker's managed endpoint. The reactor adds `Host`,
/// `Authorization: Basic`, `Content-Length` and `Connection: close` (one
/// request per connection); the adapter gives everything else.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    /// Path and query (`/session/ses_1/message?x=1`), starting with `/`.
    pub path: String,
    /// Further header fields (`Content-Type`, `Accept`); names and values
    /// must not contain CR or LF, and must not be one the reactor adds.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Deadline for the response once connected (`None`: none, e.g. a
    /// request that lasts a whole turn). Connecting is always bounded.
    pub timeout: Option<Duration>,
}

impl HttpRequest {
    pub fn get(path: impl Into<String>) -> Self {
        HttpRequest { method: "GET", path: path.into(), headers: Vec::new(), body: Vec::new(), timeout: None }
    }

    /// A `POST` with a JSON body.
    pub fn post_json(path: impl Into<String>, body: Vec<u8>) -> Self {
        let headers = vec![("Content-Type", "application/json".to_owned())];
        HttpRequest { method: "POST", path: path.into(), headers, body, timeout: None }
    }

    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

/// Why a request to the managed endpoint ended without a response (or, for
/// a stream, why the stream ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Not sent: the worker has no running endpoint, or the request was malformed.
    NotSent,
    /// The connection could not be made or was refused.
    Connect,
    /// The connect deadline or the request's own timeout passed.
    Timeout,
    /// The connection ended before the response was complete; for a stream,
    /// the stream ended (the adapter decides whether to reconnect).
    Closed,
    /// The response was malformed or over its bounds.
    BadResponse,
}

impl HttpError {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpError::NotSent => "not_sent",
            HttpError::Connect => "connect",
            HttpError::Timeout => "timeout",
            HttpError::Closed => "closed",
            HttpError::BadResponse => "bad_response",
        }
    }
}

/// Gateway configuration an adapter needs beyond [`LaunchSpec`]: values of
/// `workers.<type>` that only one agent understands. Never client input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdapterConfig {
    /// `workers.pi` (provider, gated tools, the permission-gate extension).
    pub pi: pi::PiConfig,
}

/// The adapter's part of a spawn: arguments after the program name and the
/// worker-specific environment (workers.md §1.5 row 2b / 5).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Launch {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// An agent session id the adapter chose itself (claude `--session-id`).
    pub agent_session_id: Option<String>,
    /// Variables carrying the gateway's policy (e.g. the tool ceiling as
    /// an agent permission config): set after the configured worker env and
    /// its deny list, so configuration cannot replace them.
    pub policy_env: Vec<(String, String)>,
}

/// A permission request the agent is waiting on. The session adds
/// `expires_at`, tracks it, and emits the `permission_request` event.
#[derive(Clone, Debug, PartialEq)]
pub struct PermissionAsk {
    pub id: String,
    pub tool_name: String,
    pub description: String,
    pub input: Option<Value>,
    pub args: Option<Vec<String>>,
    pub options: Option<Value>,
}

/// The client's (or the gateway's) answer to a [`PermissionAsk`].
#[derive(Clone, Debug, PartialEq)]
pub struct PermissionReply {
    pub id: String,
    pub allow: bool,
    pub reason: Option<String>,
    /// The client asked to remember the decision, and policy allows widening.
    pub remember: bool,
}

/// How the worker process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The gateway sent a signal to the group before this exit.
    pub signalled_by_gateway: bool,
}

/// What the session must do after an adapter call, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A session event (message*, reasoning, tool_*, step, error{AGENT_ERROR}, …).
    Emit(Event),
    /// Worker output the adapter could not map; emitted as `raw` only when
    /// `gateway.emit_raw` is on, counted either way.
    Unmapped { kind: String, raw: Value },
    /// The agent asks for permission.
    Permission(PermissionAsk),
    /// The agent withdrew a pending request (no event; later answers are invalid).
    PermissionCancelled { id: String },
    /// The agent-side session id, as soon as it is known (persisted for resume).
    AgentSessionId(String),
    /// The turn is over; the session emits exactly one `done` and `state{idle}`.
    TurnEnd { success: bool, stats: Stats },
    /// The agent refused to resume its conversation (workers.md: resume
    /// failure; operations.md §2.1). Replaces the turn's AGENT_ERROR; when an
    /// input had started a turn, a `TurnEnd{success:false}` follows.
    ResumeFailed { message: String },
    /// Bytes for the worker's stdin (whole lines).
    Stdin(Vec<u8>),
    /// Close the worker's stdin once everything queued for it is written.
    CloseStdin,
    /// Stop the worker process (SIGTERM to its group, SIGKILL after
    /// `worker.kill_grace`, then the sweep of escaped descendants).
    Kill,
    /// The startup handshake is done (for adapters whose `needs_ready` is
    /// true): the session becomes `idle` and waiting `init`s are answered.
    Ready,
    /// Call [`Adapter::on_timer`] with `id` after `after`.
    Timer { id: u32, after: Duration },
    /// Send a request to the worker's managed endpoint; answered once by
    /// [`Adapter::on_http_response`] or [`Adapter::on_http_error`] with `id`
    /// (never from inside the call that asked).
    Http { id: u64, request: HttpRequest },
    /// Open a long-lived request whose 2xx body is a server-sent event
    /// stream: each event's data goes to [`Adapter::on_sse`]; its end (or a
    /// failure) to [`Adapter::on_http_error`]; a non-2xx response to
    /// [`Adapter::on_http_response`]. No reconnect: the adapter decides.
    HttpStream { id: u64, request: HttpRequest },
    /// Drop a request or stream in flight; nothing more is delivered for it.
    HttpCancel { id: u64 },
}

/// Collects [`Action`]s.
#[derive(Debug, Default)]
pub struct Out {
    pub actions: Vec<Action>,
}

impl Out {
    pub fn emit(&mut self, ev: Event) {
        self.actions.push(Action::Emit(ev));
    }
    pub fn push(&mut self, a: Action) {
        self.actions.push(a);
    }
    pub fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }
}

/// A sans-IO agent adapter (workers.md §1.1). One instance per live worker
/// process lifetime of a session; `launch` may be called again for a reset.
pub trait Adapter: Send {
    fn worker_type(&self) -> WorkerType;
    fn caps(&self) -> Caps;
    /// One process per session (default) or per turn.
    fn process_model(&self) -> ProcessModel {
        ProcessModel::Persistent
    }
    /// The worker must answer a startup handshake (`Action::Ready`) before
    /// the session is `idle`; bounded by `worker.start_timeout`.
    fn needs_ready(&self) -> bool {
        false
    }
    /// The worker is a local HTTP server the gateway manages (port,
    /// password, the only endpoint the adapter's requests may reach).
    fn managed_server(&self) -> Option<ManagedServer> {
        None
    }
    /// Command-line arguments and env for a new worker process (for
    /// `PerTurn` adapters: the process of the turn being started).
    fn launch(&mut self, spec: &LaunchSpec) -> Launch;
    /// The process is running and its pipes are connected.
    fn on_started(&mut self, _started: &Started<'_>, _out: &mut Out) {}
    /// Start one turn with the client's input.
    fn on_input(&mut self, text: &str, out: &mut Out);
    /// Deliver a permission decision for a pending request.
    fn on_permission(&mut self, reply: &PermissionReply, out: &mut Out);
    /// Ask the agent to stop the current turn (it must still end with `TurnEnd`).
    fn on_interrupt(&mut self, out: &mut Out);
    /// One stdout line without its `\n` (and without a trailing `\r`).
    fn on_line(&mut self, line: &[u8], out: &mut Out);
    /// Bytes the worker wrote to stderr, as read (any chunking). Some CLIs
    /// report a refused resume only there (opencode "Session not found").
    fn on_stderr(&mut self, _bytes: &[u8], _out: &mut Out) {}
    fn on_timer(&mut self, _id: u32, _out: &mut Out) {}
    /// The worker exited; stdout has been fully drained before this call.
    fn on_exit(&mut self, _exit: &ExitInfo, _out: &mut Out) {}
    /// The gateway ends the running turn itself (terminate, reset, delete,
    /// turn timeout, failed resume — the worker is then stopped — or an
    /// output-limit interrupt the agent did not answer, where the worker
    /// stays): emit whatever closes what the turn left open (a started text
    /// message gets its `message.end` + `message`, workers.md §1.2) and
    /// forget the turn. After this call the turn's `done` is sent.
    fn on_turn_aborted(&mut self, _out: &mut Out) {}
    /// A complete response to [`Action::Http`] (or a non-2xx answer to
    /// [`Action::HttpStream`]); `body` is bounded by `worker.max_line_bytes`.
    fn on_http_response(&mut self, _id: u64, _status: u16, _body: &[u8], _out: &mut Out) {}
    /// A request or stream ended without (more) response.
    fn on_http_error(&mut self, _id: u64, _error: HttpError, _out: &mut Out) {}
    /// One server-sent event's data from [`Action::HttpStream`] `id`.
    fn on_sse(&mut self, _id: u64, _data: &[u8], _out: &mut Out) {}
}

/// Build the adapter for a worker type (every type has one).
pub fn create(worker_type: WorkerType, config: &AdapterConfig) -> Option<Box<dyn Adapter>> {
    match worker_type {
        WorkerType::ClaudeCode => Some(Box::new(claude::ClaudeAdapter::new())),
        WorkerType::Acpx => Some(Box::new(acp::AcpAdapter::new())),
        WorkerType::Pi => Some(Box::new(pi::PiAdapter::new(config.pi.clone()))),
        WorkerType::OpencodeCli => Some(Box::new(opencode_cli::OpencodeCliAdapter::new())),
        WorkerType::OpencodeServer => Some(Box::new(opencode_server::OpencodeServerAdapter::new())),
    }
}

/// Robustness check shared by the adapters' unit tests: every fixture line
/// under `tests/fixtures/<fixture_dir>`, every prefix of it, and the line with
/// its quotes mangled are fed to a running adapter (a fresh one per file);
/// nothing may panic.
#[cfg(test)]
pub(crate) fn feed_every_fixture_prefix<A: Adapter>(fixture_dir: &str, mut running: impl FnMut() -> A) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture_dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("fixtures").flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    for f in files {
        let text = std::fs::read(&f).expect("read");
        let mut a = running();
        let mut out = Out::default();
        for line in text.split(|b| *b == b'\n') {
            let step = (line.len() / 64).max(1);
            for cut in (0..line.len()).step_by(step) {
                a.on_line(&line[..cut], &mut out);
            }
            a.on_line(line, &mut out);
            // JSON strings turned into bare tokens: values of the wrong type.
            let mangled: Vec<u8> = line.iter().map(|b| if *b == b'"' { b'\'' } else { *b }).collect();
            a.on_line(&mangled, &mut out);
            out.take();
        }
    }
}
