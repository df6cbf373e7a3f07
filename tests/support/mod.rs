//! Black-box test harness: starts the real `hotplex` binary on a free port
//! with a generated config, and speaks AEP v1 to it over real WebSockets.
//! Every wait has a deadline; nothing sleeps to synchronise.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub mod admin;
pub mod faults;
pub mod mock_model;
pub mod raw;
pub mod sec;
pub mod store;
pub mod tools;
pub mod turns;

/// Default deadline for one expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("hotplex-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn hotplex_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hotplex")
}

pub fn mock_agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hotplex-mock-agent")
}

/// How to start a gateway.
pub struct Options {
    /// Extra YAML appended to the generated base config (later keys of a
    /// section must not repeat keys of the base; use `gateway_extra` etc.).
    pub yaml: String,
    /// The claude_code worker command (default: the mock agent).
    pub worker_command: String,
    /// Extra environment for the gateway process.
    pub env: Vec<(String, String)>,
    /// Reactor threads.
    pub reactors: u32,
    /// Extra command-line arguments (e.g. `--dev`).
    pub args: Vec<String>,
    /// A command the gateway is started through (program and its arguments,
    /// the hotplex binary appended), e.g. `setpriv` with a uid and ambient
    /// capabilities; empty = run it directly.
    pub launcher: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            yaml: String::new(),
            worker_command: mock_agent_bin().to_string(),
            env: vec![],
            reactors: 2,
            args: vec![],
            launcher: vec![],
        }
    }
}

/// A running gateway process.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: SocketAddr,
    pub dir: TempDir,
    pub config_path: PathBuf,
    log: Arc<Mutex<String>>,
}

/// The base config every test starts from (every test client connects from
/// 127.0.0.1, so per-IP and per-owner limits — and the global spawn rate — are
/// lifted here; tests of those limits pin their own values); `sections` maps a top-level key
/// to extra YAML lines (indented by the caller with two spaces).
pub fn base_config(dir: &Path, opts: &Options) -> String {
    format!(
        r#"gateway:
  listen: "127.0.0.1:0"
  reactors: {reactors}
admin:
  listen: "127.0.0.1:0"
store:
  path: "{dir}/data/hotplex.db"
worker:
  work_dir_roots: ["{dir}/work/{{owner_hash}}"]
  default_work_dir: "{dir}/work/{{owner_hash}}"
security:
  auth:
    modes: [none]
log:
  level: debug
limits:
  max_connections_per_ip: 100000
  max_preinit_connections: 100000
  max_preinit_per_ip: 100000
  max_connections_per_owner: 100000
  max_spawns_per_second: 100000
  rate:
    handshakes_per_ip_per_sec: 100000
    handshakes_burst: 100000
    session_creates_per_min_per_owner: 100000
    inputs_per_min_per_owner: 100000
    owner_frames_per_sec: 100000
    owner_burst: 100000
    conn_frames_per_sec: 100000
    conn_burst: 100000
workers:
  claude_code:
    enabled: true
    command: "{cmd}"
"#,
        reactors = opts.reactors,
        dir = dir.display(),
        cmd = opts.worker_command
    )
}

/// Merge YAML documents: top-level sections of `extra` are merged key by key into `base`.
fn merge_yaml(base: &str, extra: &str) -> String {
    // Simple line-based merge: sections are "name:" at column 0, keys indented.
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for doc in [base, extra] {
        let mut current: Option<usize> = None;
        let mut insert_at: Option<usize> = None;
        for line in doc.lines() {
            if line.trim().is_empty() {
                continue;
            }
            if !line.starts_with(' ') {
                let name = line.trim_end().to_string();
                let idx = match sections.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        sections.push((name, Vec::new()));
                        sections.len() - 1
                    }
                };
                current = Some(idx);
                insert_at = None;
            } else if let Some(i) = current {
                let key = line.trim_start().split(':').next().unwrap_or("").to_string();
                let indent = line.len() - line.trim_start().len();
                let body = &mut sections[i].1;
                if indent == 2 {
                    // replace a two-space key (and its nested lines) if it already exists
                    if let Some(pos) = body.iter().position(|l| {
                        l.len() - l.trim_start().len() == 2 && l.trim_start().split(':').next() == Some(key.as_str())
                    }) {
                        let mut end = pos + 1;
                        while end < body.len() && body[end].len() - body[end].trim_start().len() > 2 {
                            end += 1;
                        }
                        body.drain(pos..end);
                        body.insert(pos, line.to_string());
                        insert_at = Some(pos + 1);
                    } else {
                        body.push(line.to_string());
                        insert_at = Some(body.len());
                    }
                } else {
                    // nested lines stay with the key they belong to
                    let at = insert_at.unwrap_or(body.len()).min(body.len());
                    body.insert(at, line.to_string());
                    insert_at = Some(at + 1);
                }
            }
        }
    }
    let mut out = String::new();
    for (name, body) in sections {
        out.push_str(&name);
        out.push('\n');
        for l in body {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

impl Gateway {
    pub fn start() -> Gateway {
        Gateway::start_with(Options::default())
    }

    pub fn start_yaml(yaml: &str) -> Gateway {
        Gateway::start_with(Options { yaml: yaml.to_string(), ..Options::default() })
    }

    pub fn start_with(opts: Options) -> Gateway {
        let dir = TempDir::new("gw");
        Gateway::start_in(dir, opts)
    }

    /// Start in an existing directory (restart on the same data).
    pub fn start_in(dir: TempDir, opts: Options) -> Gateway {
        let config = merge_yaml(&base_config(dir.path(), &opts), &opts.yaml);
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, &config).expect("write config");
        let mut cmd = match opts.launcher.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(hotplex_bin());
                c
            }
            None => Command::new(hotplex_bin()),
        };
        cmd.arg("--config").arg(&config_path).args(&opts.args);
        cmd.env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
        cmd.env("HOME", dir.path());
        cmd.env("LANG", "C.UTF-8");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn hotplex");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut admin: Option<SocketAddr> = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("hotplex listening admin=") {
                    admin = rest.trim().parse::<SocketAddr>().ok();
                }
                if let Some(rest) = line.strip_prefix("hotplex listening gateway=") {
                    if let (Some(t), Ok(a), Some(adm)) = (tx.take(), rest.trim().parse::<SocketAddr>(), admin) {
                        let _ = t.send((a, adm));
                    }
                }
                if let Ok(mut l) = log2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let (addr, admin_addr) = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gateway did not start; config:\n{config}\nstderr:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Gateway { child, addr, admin_addr, dir, config_path, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until stderr contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The gateway process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Open a WebSocket (no Origin header, like a non-browser client).
    pub fn connect(&self) -> Client {
        Client::connect(&self.url())
    }

    /// Send a signal without waiting.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Send a signal and wait for exit (with a deadline).
    pub fn signal_and_wait(&mut self, sig: i32, timeout: Duration) -> Option<ExitStatus> {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        wait_child(&mut self.child, timeout)
    }

    /// SIGTERM the gateway, wait for its exit (deadline `timeout`) and return
    /// the exit status (`None`: it did not exit in time and was SIGKILLed)
    /// and its directory for a restart.
    pub fn stop(mut self, timeout: Duration) -> (Option<ExitStatus>, TempDir) {
        let status = self.signal_and_wait(libc::SIGTERM, timeout);
        let dir = self.kill9();
        (status, dir)
    }

    /// Wait for the gateway to exit on its own.
    pub fn child_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// SIGKILL the gateway and return its directory for a restart.
    pub fn kill9(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, TempDir(PathBuf::new()));
        std::mem::forget(self);
        dir
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Why `recv` returned no frame.
#[derive(Debug, PartialEq)]
pub enum RecvError {
    Timeout,
    /// The server closed with this code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Gone(String),
}

/// A blocking AEP client.
pub struct Client {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// Every frame received, in order.
    pub seen: Vec<Value>,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        Client::connect_with(url, &[]).expect("websocket connect")
    }

    /// Connect with extra request headers; `Err` carries the HTTP status on refusal.
    pub fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
        use tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                tungstenite::http::HeaderValue::from_str(v).expect("header value"),
            );
        }
        match tungstenite::connect(req) {
            Ok((ws, _)) => Ok(Client { ws, seen: Vec::new() }),
            Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("connect failed: {e}"),
        }
    }

    fn set_timeout(&mut self, d: Option<Duration>) {
        if let MaybeTlsStream::Plain(s) = self.ws.get_mut() {
            let _ = s.set_read_timeout(d);
        }
    }

    /// Send one envelope.
    pub fn send(&mut self, ty: &str, data: Value) {
        let env = json!({"version": "aep/v1", "event": {"type": ty, "data": data}});
        self.send_text(&env.to_string());
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    pub fn send_msg(&mut self, m: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(m)
    }

    /// Next frame within `timeout` (pings are answered and skipped).
    pub fn recv_within(&mut self, timeout: Duration) -> Result<Value, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.set_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("server sent invalid JSON");
                    self.seen.push(v.clone());
                    return Ok(v);
                }
                Ok(Message::Close(f)) => {
                    let (code, reason) = close_parts(f);
                    return Err(RecvError::Closed(code, reason));
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(RecvError::Timeout);
                }
                Err(e) => return Err(RecvError::Gone(e.to_string())),
            }
        }
    }

    pub fn recv(&mut self) -> Value {
        match self.recv_within(WAIT) {
            Ok(v) => v,
            Err(e) => panic!("expected a frame, got {e:?}; seen so far: {:#?}", self.seen),
        }
    }

    /// Receive until a frame of `ty` arrives; returns it.
    pub fn expect(&mut self, ty: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(v) if v["event"]["type"] == ty => return v,
                Ok(_) => continue,
                Err(e) => panic!("waiting for {ty}: {e:?}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Receive frames until `pred` holds for one; returns all frames received including it.
    pub fn until(&mut self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(v) => {
                    let stop = pred(&v);
                    got.push(v);
                    if stop {
                        return got;
                    }
                }
                Err(e) => panic!("condition not met: {e:?}; got: {got:#?}"),
            }
        }
    }

    /// `init` and return the `init_ack` (panics on an error frame).
    pub fn init(&mut self, data: Value) -> Value {
        self.send("init", data);
        let v = self.recv();
        assert_eq!(v["event"]["type"], "init_ack", "init failed: {v}");
        v
    }

    /// Init a claude_code session with a client key.
    pub fn init_key(&mut self, key: &str) -> Value {
        self.init(json!({"worker_type": "claude_code", "session_id": key}))
    }

    /// Send `input` and collect frames through `done` and the following `state{idle}`.
    pub fn turn(&mut self, text: &str) -> Vec<Value> {
        self.turn_within(text, Duration::from_secs(30))
    }

    pub fn turn_within(&mut self, text: &str, timeout: Duration) -> Vec<Value> {
        self.send("input", json!({"content": text}));
        let mut done = false;
        self.until(timeout, |v| {
            if v["event"]["type"] == "done" {
                done = true;
            }
            done && is_state(v, "idle")
        })
    }

    /// Send one final data frame holding arbitrary bytes (`binary` picks the
    /// opcode); a text frame may carry invalid UTF-8 this way.
    pub fn send_bytes(&mut self, binary: bool, bytes: Vec<u8>) -> Result<(), tungstenite::Error> {
        use tungstenite::protocol::frame::Frame;
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        let op = OpCode::Data(if binary { Data::Binary } else { Data::Text });
        self.ws.send(Message::Frame(Frame::message(bytes, op, true)))
    }

    /// The next frame must be a connection-local `error{code}`; returns it.
    pub fn expect_error(&mut self, code: &str) -> Value {
        let v = self.recv();
        assert_eq!(ev_type(&v), "error", "expected error {code}, got {v}");
        assert_eq!(v["event"]["data"]["code"], code, "wrong error code: {v}");
        assert_eq!(v["seq"], 0, "a reply to the connection's own frame is connection-local: {v}");
        v
    }

    /// Nothing may arrive within `d` (the connection stays open and silent).
    pub fn expect_silence(&mut self, d: Duration) {
        match self.recv_within(d) {
            Err(RecvError::Timeout) => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }

    /// The server closes without sending any frame first; returns (code, reason).
    pub fn expect_close_only(&mut self) -> (u16, String) {
        match self.recv_within(WAIT) {
            Err(RecvError::Closed(c, r)) => (c, r),
            other => panic!("expected a close and no frame, got {other:?}"),
        }
    }

    /// Wait for the server to close; returns (code, reason).
    pub fn expect_close(&mut self) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(_) => continue,
                Err(RecvError::Closed(c, r)) => return (c, r),
                Err(e) => panic!("expected a close, got {e:?}; seen: {:#?}", self.seen),
            }
        }
    }
}

fn close_parts(f: Option<CloseFrame>) -> (u16, String) {
    match f {
        Some(f) => (u16::from(f.code), f.reason.to_string()),
        None => (1005, String::new()),
    }
}

pub fn ev_type(v: &Value) -> &str {
    v["event"]["type"].as_str().unwrap_or("")
}

pub fn is_state(v: &Value, state: &str) -> bool {
    v["event"]["type"] == "state" && v["event"]["data"]["state"] == state
}

/// Concatenated `message.delta` content of frames.
pub fn delta_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|v| v["event"]["type"] == "message.delta")
        .filter_map(|v| v["event"]["data"]["content"].as_str())
        .collect()
}

/// Live processes whose environment carries `HOTPLEX_SESSION_ID=<sid>`.
pub fn processes_of_session(sid: &str) -> Vec<i32> {
    let needle = format!("HOTPLEX_SESSION_ID={sid}");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // skip zombies: they hold no resources and have no environ
            if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
                continue;
            }
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

/// Wait until `f` returns true.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Open file descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Direct children of a process (from /proc/*/stat).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                if fields.get(1).and_then(|f| f.parse::<i32>().ok()) == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Resident set size of a process in bytes.
pub fn rss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Claude's own transcript of a session (under the owner's private HOME in
/// the gateway's data dir `dir`, `.claude/projects/<cwd>/<id>.jsonl`) holds
/// `text` and an assistant reply. Claude persists it asynchronously after a
/// turn's result (also behind claude-code-acp).
pub fn transcript_has(dir: &Path, text: &str) -> bool {
    fn walk(d: &Path, text: &str) -> bool {
        let Ok(rd) = std::fs::read_dir(d) else { return false };
        rd.flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p, text)
            } else {
                p.extension().is_some_and(|x| x == "jsonl")
                    && std::fs::read_to_string(&p)
                        .is_ok_and(|t| t.contains(text) && t.contains("\"type\":\"assistant\""))
            }
        })
    }
    walk(&dir.join("data/homes"), text)
}
