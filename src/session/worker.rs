//! A session's worker process on the reactor: building the spawn plan (argv
//! from the adapter, environment per security.md §5), registering its pipes,
//! feeding stdout lines to the adapter, writing stdin, stopping it, and
//! turning its exit into session events (aep-v1.md §8 exit classification).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use mio::unix::SourceFd;
use serde_json::{Value, json};

use crate::adapters::{ExitInfo, ProcessModel, Started, WorkerType};
use crate::child::supervisor::{Command, Notice, SpawnPlan};
use crate::child::{LineItem, LineSplitter, SpawnError, SpawnedWorker, TailBuffer, WorkDirRequest};
use crate::protocol::{ErrorCode, Event, Mode, SessionState};
use crate::reactor::Reactor;
use crate::reactor::spawn_pace::Slot;
use crate::reactor::timer::{Owner, TimerKind};
use crate::reactor::token::{self, Key, Kind};
use crate::sys;

use super::{Ending, Worker};

/// Bytes read from a worker's stdout per wake-up before yielding.
const STDOUT_BUDGET: usize = 256 * 1024;

pub fn tag_of(k: Key) -> u64 {
    ((k.idx as u64) << 32) | k.generation as u64
}

pub fn key_of(tag: u64) -> Key {
    Key { idx: (tag >> 32) as usize, generation: tag as u32 }
}

/// Expand `{owner_hash}` / `{session_id}` in a configured path template.
pub fn expand(template: &str, owner_hash: &str, session_id: &str) -> String {
    template.replace("{owner_hash}", owner_hash).replace("{session_id}", session_id)
}

/// Classify an exit the gateway did not ask for (aep-v1.md §8, workers.md §1.4 item 6).
pub fn classify_exit(code: Option<i32>, signal: Option<i32>, gateway_signal: Option<i32>) -> (ErrorCode, Value) {
    if let Some(sent) = gateway_signal {
        let by_kill = signal == Some(libc::SIGKILL) || sent == libc::SIGKILL;
        let code = if by_kill { ErrorCode::ProcessSigkill } else { ErrorCode::ProcessSigterm };
        return (code, json!({"exit_code": code_json(code_of(code)), "signal": signal}));
    }
    let sig = signal.or_else(|| code.filter(|c| *c > 128 && *c < 128 + 65).map(|c| c - 128));
    match sig {
        Some(s) if s == libc::SIGKILL => (ErrorCode::WorkerOom, json!({"signal": s, "exit_code": code})),
        Some(s) => (ErrorCode::WorkerCrash, json!({"signal": s, "exit_code": code})),
        None => (ErrorCode::WorkerCrash, json!({"exit_code": code})),
    }
}

fn code_of(_c: ErrorCode) -> Option<i32> {
    None
}

fn code_json(c: Option<i32>) -> Value {
    c.map(Value::from).unwrap_or(Value::Null)
}

impl Reactor {
    /// Make the session live (new, resumed or reset): spawn its worker, or
    /// for a per-turn agent only prepare HOME and the work dir.
    ///
    /// A process spawn takes a slot of `limits.max_spawns_per_second`
    /// (`reactor/spawn_pace.rs`): a later slot is awaited on the timer heap
    /// (the session counts as spawning meanwhile); none within 5 s fails the
    /// waiting inits with `GATEWAY_OVERLOAD`.
    pub fn spawn_worker(&mut self, skey: Key) {
        let per_turn = self.session(skey).is_some_and(|s| s.adapter.process_model() == ProcessModel::PerTurn);
        if !per_turn {
            let rate = self.s.guards.max_spawns_per_second;
            match self.shared.spawn_pace.reserve(std::time::Instant::now(), rate) {
                Slot::Now => {}
                Slot::At(when) => {
                    let Some(s) = self.session_mut(skey) else { return };
                    s.spawning = true;
                    s.spawn_wait = true;
                    return self.timers.at(when, Owner::Session(skey.into()), TimerKind::SpawnSlot);
                }
                Slot::Overloaded => {
                    if let Some(s) = self.session(skey) {
                        log::warn!("worker spawn refused: limits.max_spawns_per_second session_id={}", s.id_str);
                    }
                    return self.abort_spawn(skey, ErrorCode::GatewayOverload, "too many worker starts, retry later");
                }
            }
        }
        self.send_spawn(skey, per_turn);
    }

    /// A session's spawn slot arrived.
    pub fn on_spawn_slot(&mut self, skey: Key) {
        let Some(s) = self.session_mut(skey) else { return };
        if !s.spawn_wait {
            return;
        }
        s.spawn_wait = false;
        if let Some(Ending::Terminate(_)) | Some(Ending::Delete) = s.ending {
            // terminate/delete arrived while waiting: nothing was started
            s.spawning = false;
            return self.finish_ending(skey, None);
        }
        self.send_spawn(skey, false);
    }

    /// Start the process of a per-turn agent's turn.
    pub fn spawn_turn_process(&mut self, skey: Key) {
        self.send_spawn(skey, false);
    }

    fn send_spawn(&mut self, skey: Key, prepare_only: bool) {
        if !prepare_only {
            self.trace_spawn_begin(skey);
        }
        let s_settings = self.s.clone();
        // A managed HTTP server gets a fresh loopback port and password per process.
        let managed = self.session(skey).and_then(|s| s.adapter.managed_server()).filter(|_| !prepare_only);
        let endpoint = match managed {
            None => None,
            Some(m) => match self.http_endpoint_open(skey, m.basic_user) {
                Ok(e) => Some((m, e)),
                Err(e) => return self.spawn_failed(skey, SpawnError::Setup(e)),
            },
        };
        let Some(s) = self.session_mut(skey) else { return };
        let Some(ws) = s_settings.live_worker(s.worker_type) else { return };
        let per_turn = s.adapter.process_model() == ProcessModel::PerTurn;
        let (args, adapter_env, policy_env) = if prepare_only {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            let mut launch = s.launch.clone();
            // Per-turn agents continue their conversation on every turn;
            // persistent ones resume only a terminated session.
            launch.resume = if per_turn || s.resume_next { s.agent_session_id.clone() } else { None };
            if launch.resume.is_none() {
                s.agent_session_id = None;
            }
            launch.work_dir = s.work_dir.clone().unwrap_or_default();
            launch.mcp_config = ws.mcp_config.clone();
            launch.turn_base = s.turns_started;
            launch.agent = ws.agent.clone();
            launch.endpoint = endpoint.as_ref().map(|(_, e)| e.clone());
            let l = s.adapter.launch(&launch);
            if let Some(id) = &l.agent_session_id {
                s.agent_session_id = Some(id.clone());
            }
            let mut args = l.args;
            args.extend(ws.args.iter().cloned());
            (args, l.env, l.policy_env)
        };
        let mut env = worker_env(&s_settings, s.worker_type, &s.owner_hash, &s.id_str, &adapter_env);
        // Last, so neither configuration nor the deny list can replace them.
        if let Some((m, e)) = &endpoint {
            set_env(&mut env, m.password_env, &e.password);
        }
        for (k, v) in &policy_env {
            set_env(&mut env, k, v);
        }
        let sandbox = &s_settings.sandbox;
        let roots: Vec<PathBuf> =
            sandbox.work_dir_roots.iter().map(|r| PathBuf::from(expand(r, &s.owner_hash, &s.id_str))).collect();
        let default_dir = PathBuf::from(expand(&sandbox.default_work_dir, &s.owner_hash, &s.id_str));
        // A resumed session keeps its canonical work dir (checked again).
        let requested = match &s.work_dir {
            Some(p) => Some(p.to_string_lossy().into_owned()),
            None => s.requested_work_dir.clone(),
        };
        let home = sandbox.private_home.then(|| sandbox.home_root.join(&s.owner_hash));
        let tmp = sandbox.tmp_root.as_ref().map(|r| r.join(&*s.id_str));
        let plan = SpawnPlan {
            work_dir: WorkDirRequest {
                requested,
                roots,
                default_dir,
                create: sandbox.create_work_dir,
                max_bytes: s_settings.policy.max_work_dir_bytes,
                owner: None,
                deny: sandbox.denied_paths.clone(),
            },
            home_dir: home,
            tmp_dir: tmp,
            program: ws.program.clone(),
            args: args.into_iter().map(OsString::from).collect(),
            env: env.into_iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect(),
            run_as: sandbox.run_as.clone(),
            per_owner: sandbox.uid_per_owner.map(|range| crate::child::PerOwner { owner: s.owner.to_string(), range }),
            limits: sandbox.rlimits.clone(),
            umask: sandbox.umask,
            session_id: s.id_str.to_string(),
        };
        s.spawning = true;
        // security.md §5.3: a loaded API key or admin token in any env value (an
        // operator copied one into a provider variable) refuses the spawn; the
        // log names the variable, never the value. Answered like any spawn failure.
        let secret_in = |v: &OsString| {
            let v = v.to_string_lossy();
            sandbox.secret_values.iter().any(|sec| v.contains(sec.expose()))
        };
        let leak = if prepare_only { None } else { plan.env.iter().find(|(_, v)| secret_in(v)) };
        if let Some((name, _)) = leak {
            log::error!(
                "worker env variable {} contains a gateway secret; spawn refused session_id={}",
                name.to_string_lossy(),
                s.id_str
            );
            let result = Err(SpawnError::InvalidRequest("a worker env value contains a gateway secret"));
            let notice = Notice::Spawned { tag: tag_of(skey), result };
            self.shared.reactors[self.id].send(crate::reactor::shared::Msg::Child(notice));
            return;
        }
        let (reactor, tag, plan) = (self.id, tag_of(skey), Box::new(plan));
        let cmd =
            if prepare_only { Command::Prepare { reactor, tag, plan } } else { Command::Spawn { reactor, tag, plan } };
        self.shared.spawner.send(cmd);
    }

    pub fn on_child_notice(&mut self, n: Notice) {
        match n {
            Notice::Spawned { tag, result } => self.on_spawned(key_of(tag), result),
            Notice::Prepared { tag, result } => self.on_prepared(key_of(tag), result),
            Notice::Exited { tag, pid, code, signal, gateway_signal } => {
                self.on_exited(key_of(tag), pid, code, signal, gateway_signal)
            }
        }
    }

    fn on_spawned(&mut self, skey: Key, result: Result<(SpawnedWorker, PathBuf), SpawnError>) {
        let Some(s) = self.session_mut(skey) else {
            // The session vanished meanwhile: stop the orphan worker.
            if let Ok((w, _)) = result {
                self.shared.spawner.send(Command::Kill { reactor: self.id, tag: tag_of(skey), pid: w.pid });
            }
            return;
        };
        s.spawning = false;
        crate::metrics::worker_spawned(s.worker_type, result.is_ok());
        let (w, work_dir) = match result {
            Ok(v) => v,
            Err(e) => {
                self.http_worker_gone(skey);
                return self.spawn_failed(skey, e);
            }
        };
        s.worker_gen = s.worker_gen.wrapping_add(1) & 0x0fff_ffff;
        let wgen = s.worker_gen;
        s.work_dir = Some(work_dir);
        let process = crate::metrics::ProcessGauge::new(s.worker_type);
        let max_line = self.s.worker.max_line_bytes;
        let tail = self.s.worker.stderr_tail_bytes;
        let mut worker = Worker {
            pid: w.pid,
            start_ticks: w.start_ticks,
            generation: wgen,
            stdin: Some(w.stdin),
            stdin_buf: Vec::new(),
            stdin_armed: false,
            stdin_close: false,
            stdout: Some(w.stdout),
            stderr: Some(w.stderr),
            lines: LineSplitter::new(max_line),
            stderr_tail: TailBuffer::new(tail),
            signalled: false,
            gauge: process,
        };
        let pk = Key { idx: skey.idx, generation: wgen };
        let reg = self.poll.registry();
        let mut ok = true;
        if let Some(fd) = &worker.stdout {
            ok &= reg
                .register(&mut SourceFd(&fd.as_raw_fd()), token::make(Kind::Stdout, pk), mio::Interest::READABLE)
                .is_ok();
        }
        if let Some(fd) = &worker.stderr {
            ok &= reg
                .register(&mut SourceFd(&fd.as_raw_fd()), token::make(Kind::Stderr, pk), mio::Interest::READABLE)
                .is_ok();
        }
        if !ok {
            worker.stdin = None;
        }
        let now = std::time::Instant::now();
        self.http_endpoint_started(skey, wgen);
        let Some(s) = self.session_mut(skey) else { return };
        s.worker = Some(worker);
        log::info!(
            "worker started session_id={} worker_type={} pid={}{}",
            s.id_str,
            s.worker_type.as_str(),
            w.pid,
            s.trace.spawn.log_ids()
        );
        let per_turn = s.adapter.process_model() == ProcessModel::PerTurn;
        if !per_turn {
            // A per-turn session's live period began when it was prepared.
            s.live_since = now;
        }
        if per_turn && s.ending.is_some() {
            // terminate/reset/delete arrived while the turn's process was
            // spawning (its turn is already closed): do not give it the prompt.
            return self.stop_worker(skey, false);
        }
        let needs_ready = !per_turn && s.adapter.needs_ready();
        // Set before on_started: an adapter may finish its handshake at once.
        s.awaiting_ready = needs_ready;
        if let Some(work_dir) = s.work_dir.clone() {
            let started = Started { work_dir: &work_dir, pid: w.pid };
            self.with_adapter(skey, |a, out| a.on_started(&started, out));
        }
        // Unread output may already be waiting.
        self.again.push((Kind::Stdout, pk));
        self.trace_spawned(skey, w.pid, per_turn);
        if per_turn {
            return; // a turn's process: the turn is already running
        }
        let ending = self.session(skey).and_then(|s| s.ending);
        if let Some(Ending::Terminate(_)) | Some(Ending::Delete) = ending {
            // terminate/delete arrived while spawning
            return self.stop_worker(skey, false);
        }
        if needs_ready {
            if self.session(skey).is_some_and(|s| s.awaiting_ready) {
                let t = self.s.worker.start_timeout;
                self.timers.after(t, Owner::Session(skey.into()), TimerKind::StartTimeout(wgen));
            }
            return; // live once the adapter reports `Ready`
        }
        self.session_live(skey);
    }

    /// A per-turn agent's session was prepared (HOME, work dir): it is live.
    fn on_prepared(&mut self, skey: Key, result: Result<PathBuf, SpawnError>) {
        let Some(s) = self.session_mut(skey) else { return };
        s.spawning = false;
        match result {
            Ok(work_dir) => {
                s.work_dir = Some(work_dir);
                s.live_since = std::time::Instant::now();
                self.session_live(skey);
            }
            Err(e) => self.spawn_failed(skey, e),
        }
    }

    /// The adapter finished its startup handshake.
    pub fn worker_ready(&mut self, skey: Key) {
        let Some(s) = self.session_mut(skey) else { return };
        if !s.awaiting_ready {
            return;
        }
        s.awaiting_ready = false;
        self.session_live(skey);
    }

    /// The worker (or, per-turn, the prepared work dir) is ready: `idle`,
    /// answer waiting inits, announce a resume or reset.
    fn session_live(&mut self, skey: Key) {
        self.trace_spawn_end(skey, None);
        let Some(s) = self.session_mut(skey) else { return };
        let was = s.state;
        let ending = s.ending;
        if let Some(Ending::Terminate(_)) | Some(Ending::Delete) = ending {
            // terminate/delete arrived while starting
            if s.worker.is_some() {
                return self.stop_worker(skey, false);
            }
            return self.finish_ending(skey, None);
        }
        let reset = ending == Some(Ending::Reset);
        if !reset && matches!(was, SessionState::Created | SessionState::Terminated) {
            crate::metrics::session_live(s.worker_type, was == SessionState::Terminated);
        }
        s.ending = None;
        s.state = SessionState::Idle;
        s.gauge.set(SessionState::Idle);
        s.state_reason = None;
        s.terminated_ms = None;
        s.live_since_ms = Some(crate::protocol::now_ms());
        self.persist_session(skey);
        let Some(s) = self.session_mut(skey) else { return };
        let waiters = std::mem::take(&mut s.waiters);
        for wt in waiters {
            let resumed = wt.resumed || was != SessionState::Created;
            self.complete_attach(wt.client, skey, wt.frame_id, wt.last_seq, resumed, Mode::Drive, SessionState::Idle);
        }
        if reset {
            self.emit(skey, Event::state(SessionState::Idle, Some("context_reset")));
        } else if was == SessionState::Terminated {
            self.emit(skey, Event::state(SessionState::Idle, None));
        }
    }

    /// The startup handshake did not finish within `worker.start_timeout`.
    pub fn start_timed_out(&mut self, skey: Key, worker_gen: u32) {
        let Some(s) = self.session(skey) else { return };
        if !s.awaiting_ready || s.worker.as_ref().is_none_or(|w| w.generation != worker_gen) {
            return;
        }
        log::warn!("worker start timed out session_id={}", s.id_str);
        self.stop_worker(skey, true);
    }

    fn spawn_failed(&mut self, skey: Key, e: SpawnError) {
        let (code, msg) = if matches!(e, SpawnError::WorkDir(_)) {
            (ErrorCode::ConfigInvalid, "init.config.work_dir not allowed")
        } else if matches!(e, SpawnError::Identity(crate::child::UidError::Exhausted)) {
            // security.md §3 "Identity": no uid left for a new owner.
            (ErrorCode::GatewayOverload, "no worker identity available")
        } else {
            (ErrorCode::WorkerStartFailed, "worker failed to start")
        };
        if let Some(s) = self.session(skey) {
            log::warn!(
                "worker spawn failed session_id={} worker_type={} reason={}",
                s.id_str,
                s.worker_type.as_str(),
                e.reason()
            );
        }
        self.abort_spawn(skey, code, msg);
    }

    /// The session's worker will not run: answer waiting inits with `code`,
    /// release its live-session slot, drop a never-acknowledged record.
    fn abort_spawn(&mut self, skey: Key, code: ErrorCode, msg: &'static str) {
        self.trace_spawn_end(skey, Some(code));
        let Some(s) = self.session_mut(skey) else { return };
        s.spawning = false;
        if s.adapter.process_model() == ProcessModel::PerTurn && s.state != SessionState::Created {
            // A turn's process (the session itself was prepared): the turn
            // fails, the session stays as it was (or completes its ending).
            let (ending, running) = (s.ending, s.turn.is_some());
            if running {
                self.abort_turn(skey, Some((code, msg, None)));
            }
            return match ending {
                Some(_) => self.finish_ending(skey, None),
                None => self.emit_state(skey, SessionState::Idle, None),
            };
        }
        let created = s.state == SessionState::Created;
        let reset = s.ending == Some(Ending::Reset);
        s.ending = None;
        if s.counted {
            s.counted = false;
            let owner = s.owner.clone();
            self.shared.counters.remove_session(&owner);
        }
        self.fail_waiters(skey, code, msg);
        if created {
            // The record never got an ack: remove it (a retry may create it again).
            if let Some(id) = self.session(skey).map(|s| s.id_str.clone()) {
                self.store_op(skey, crate::store::WriteOp::Forget { session: id });
            }
            self.forget_session(skey);
        } else if reset {
            let targets = self.session(skey).map(|s| s.attached()).unwrap_or_default();
            for c in targets {
                self.send_error(c, code, msg, None, None);
            }
            if let Some(s) = self.session_mut(skey) {
                s.state = SessionState::Terminated;
                s.gauge.set(SessionState::Terminated);
            }
            self.emit(skey, Event::state(SessionState::Terminated, Some("worker_exit")));
        }
    }

    /// Ask the spawner to stop the worker (SIGTERM → grace → SIGKILL, or SIGKILL now).
    pub fn stop_worker(&mut self, skey: Key, force: bool) {
        let grace = self.s.worker.kill_grace;
        let id = self.id;
        self.trace_stop_requested(skey);
        let Some(s) = self.session_mut(skey) else { return };
        let Some(w) = s.worker.as_mut() else { return };
        w.signalled = true;
        w.stdin = None;
        let pid = w.pid;
        let tag = tag_of(skey);
        let cmd = if force {
            Command::Kill { reactor: id, tag, pid }
        } else {
            Command::Terminate { reactor: id, tag, pid, grace }
        };
        self.shared.spawner.send(cmd);
    }

    pub fn on_pipe_event(&mut self, kind: Kind, pk: Key, readable: bool, writable: bool) {
        let Some(s) = self.sessions.get(pk.idx) else { return };
        if s.worker.as_ref().is_none_or(|w| w.generation != pk.generation) {
            return;
        }
        let skey = s.key(pk.idx);
        match kind {
            Kind::Stdout if readable => self.read_stdout(skey, STDOUT_BUDGET, false),
            Kind::Stderr if readable => self.read_stderr(skey),
            Kind::Stdin if writable => self.flush_stdin(skey),
            _ => {}
        }
    }

    /// Read worker stdout, split lines, feed the adapter. `budget` bounds one
    /// call. Lines go to the adapter straight from the read buffer or the
    /// splitter's own buffer (no copy), with the splitter lent out meanwhile.
    /// `drain` reads even while the store is back-pressuring (the worker
    /// exited: what is left in the pipe is bounded and must not be lost).
    fn read_stdout(&mut self, skey: Key, budget: usize, drain: bool) {
        let origin = crate::metrics::LineOrigin::begin();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let Some(s) = self.session_mut(skey) else { return };
            if s.persist.blocked() && !drain {
                return; // resumed by on_store_writable
            }
            let Some(w) = s.worker.as_mut() else { return };
            let Some(fd) = w.stdout.as_ref() else { return };
            let read = sys::read_fd(fd.as_fd(), &mut buf);
            let mut splitter = std::mem::replace(&mut w.lines, LineSplitter::new(1));
            let worker_gen = w.generation;
            let n = match read {
                Ok(0) => {
                    splitter.finish(|item| self.handle_line(skey, item));
                    self.close_pipe(skey, Kind::Stdout);
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    self.put_splitter(skey, worker_gen, splitter);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return,
                        io::ErrorKind::Interrupted => continue,
                        _ => return self.close_pipe(skey, Kind::Stdout),
                    }
                }
            };
            origin.mark();
            self.count_output(skey, n as u64);
            splitter.feed(&buf[..n], |item| self.handle_line(skey, item));
            self.put_splitter(skey, worker_gen, splitter);
            total += n;
            if total >= budget {
                self.again.push((Kind::Stdout, Key { idx: skey.idx, generation: worker_gen }));
                return;
            }
        }
    }

    /// Give the line splitter back to the worker it was lent from.
    fn put_splitter(&mut self, skey: Key, worker_gen: u32, splitter: LineSplitter) {
        if let Some(w) = self.session_mut(skey).and_then(|s| s.worker.as_mut()).filter(|w| w.generation == worker_gen) {
            w.lines = splitter;
        }
    }

    /// Worker output of the running turn: the stall clock restarts and
    /// `limits.max_turn_output_bytes` is enforced.
    pub(crate) fn count_output(&mut self, skey: Key, n: u64) {
        let max = self.s.worker.max_turn_output_bytes;
        let Some(s) = self.session_mut(skey) else { return };
        crate::metrics::worker_io(s.worker_type, crate::metrics::Stream::Stdout, n as usize);
        let Some(t) = s.turn.as_mut() else { return };
        t.last_output = std::time::Instant::now();
        let before = t.output_bytes;
        t.output_bytes += n;
        if before <= max && t.output_bytes > max {
            self.emit(
                skey,
                Event::error(ErrorCode::WorkerOutputLimit, "the turn's output exceeded limits.max_turn_output_bytes"),
            );
            self.interrupt_for_output_limit(skey);
        }
    }

    fn handle_line(&mut self, skey: Key, item: LineItem<'_>) {
        match item {
            LineItem::Line(bytes) => self.with_adapter(skey, |a, out| a.on_line(bytes, out)),
            LineItem::Oversize { len } => self.output_oversize(skey, len),
        }
    }

    /// A worker output record (stdout line, server-sent event) over
    /// `worker.max_line_bytes` was dropped: WORKER_OUTPUT_LIMIT, interrupt.
    pub(crate) fn output_oversize(&mut self, skey: Key, len: usize) {
        if let Some(s) = self.session(skey) {
            crate::metrics::worker_output_limit(s.worker_type);
        }
        log::warn!("worker output record over worker.max_line_bytes dropped len={len}");
        self.emit(
            skey,
            Event::error(
                ErrorCode::WorkerOutputLimit,
                "a worker output line exceeded worker.max_line_bytes and was dropped",
            ),
        );
        self.interrupt_for_output_limit(skey);
    }

    /// WORKER_OUTPUT_LIMIT interrupts the turn. The dropped line may have
    /// been the agent's own end of turn (then the interrupt reaches an idle
    /// agent and nothing more comes): if the turn is still open after
    /// `kill_grace`, the gateway closes it (`TimerKind::TurnClose`).
    fn interrupt_for_output_limit(&mut self, skey: Key) {
        let Some(n) = self.session(skey).and_then(|s| s.turn.as_ref()).map(|t| t.n) else { return };
        self.interrupt(skey);
        let grace = self.s.worker.kill_grace;
        self.timers.after(grace, Owner::Session(skey.into()), TimerKind::TurnClose(n));
    }

    fn read_stderr(&mut self, skey: Key) {
        let mut buf = [0u8; 8192];
        loop {
            let Some(s) = self.session_mut(skey) else { return };
            let wt = s.worker_type;
            let Some(w) = s.worker.as_mut() else { return };
            let Some(fd) = w.stderr.as_ref() else { return };
            match sys::read_fd(fd.as_fd(), &mut buf) {
                Ok(0) => return self.close_pipe(skey, Kind::Stderr),
                Ok(n) => {
                    crate::metrics::worker_io(wt, crate::metrics::Stream::Stderr, n);
                    w.stderr_tail.push(&buf[..n]);
                    log::debug!("worker stderr: {}", String::from_utf8_lossy(&buf[..n]).trim_end());
                    self.with_adapter(skey, |a, out| a.on_stderr(&buf[..n], out));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close_pipe(skey, Kind::Stderr),
            }
        }
    }

    fn close_pipe(&mut self, skey: Key, kind: Kind) {
        let Some(w) =
            self.sessions.get_mut(skey.idx).filter(|s| s.generation == skey.generation).and_then(|s| s.worker.as_mut())
        else {
            return;
        };
        let fd: Option<OwnedFd> = match kind {
            Kind::Stdout => w.stdout.take(),
            Kind::Stderr => w.stderr.take(),
            Kind::Stdin => w.stdin.take(),
            _ => None,
        };
        if let Some(fd) = fd {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
    }

    pub fn write_stdin(&mut self, skey: Key, bytes: Vec<u8>) {
        let Some(w) = self.session_mut(skey).and_then(|s| s.worker.as_mut()) else { return };
        if w.stdin.is_none() {
            return;
        }
        w.stdin_buf.extend_from_slice(&bytes);
        self.flush_stdin(skey);
    }

    fn flush_stdin(&mut self, skey: Key) {
        let Some(s) = self.sessions.get_mut(skey.idx).filter(|s| s.generation == skey.generation) else { return };
        let wt = s.worker_type;
        let Some(w) = s.worker.as_mut() else { return };
        let Some(fd) = w.stdin.as_ref() else { return };
        while !w.stdin_buf.is_empty() {
            match sys::write_fd(fd.as_fd(), &w.stdin_buf) {
                Ok(n) => {
                    crate::metrics::worker_io(wt, crate::metrics::Stream::Stdin, n);
                    w.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    w.stdin_buf.clear();
                    break;
                }
            }
        }
        let want = !w.stdin_buf.is_empty();
        let tok = token::make(Kind::Stdin, Key { idx: skey.idx, generation: w.generation });
        let raw = fd.as_raw_fd();
        let reg = self.poll.registry();
        if !want && w.stdin_close {
            // everything queued is written: the deferred close (close_stdin)
            if w.stdin_armed {
                let _ = reg.deregister(&mut SourceFd(&raw));
                w.stdin_armed = false;
            }
            w.stdin = None;
            return;
        }
        if want && !w.stdin_armed {
            w.stdin_armed = reg.register(&mut SourceFd(&raw), tok, mio::Interest::WRITABLE).is_ok();
        } else if !want && w.stdin_armed {
            let _ = reg.deregister(&mut SourceFd(&raw));
            w.stdin_armed = false;
        }
    }

    /// Close the worker's stdin once everything queued for it is written
    /// (a prompt larger than the pipe buffer is still being flushed).
    pub fn close_stdin(&mut self, skey: Key) {
        let Some(w) = self.session_mut(skey).and_then(|s| s.worker.as_mut()) else { return };
        w.stdin_close = true;
        self.flush_stdin(skey);
    }

    fn on_exited(&mut self, skey: Key, pid: i32, code: Option<i32>, signal: Option<i32>, gateway_signal: Option<i32>) {
        let Some(s) = self.session(skey) else { return };
        if s.worker.as_ref().is_none_or(|w| w.pid != pid) {
            return;
        }
        // Everything the worker wrote before dying is in the pipe now.
        self.read_stdout(skey, usize::MAX, true);
        self.read_stderr(skey);
        let Some(s) = self.sessions.get_mut(skey.idx).filter(|s| s.generation == skey.generation) else { return };
        let Some(mut w) = s.worker.take() else { return };
        let reg = self.poll.registry();
        for fd in [w.stdout.take(), w.stderr.take()].into_iter().flatten() {
            let _ = reg.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        if let Some(fd) = w.stdin.take() {
            if w.stdin_armed {
                let _ = reg.deregister(&mut SourceFd(&fd.as_raw_fd()));
            }
        }
        let signalled = w.signalled || gateway_signal.is_some();
        crate::metrics::worker_exited(s.worker_type, code, signal, signalled);
        let info = ExitInfo { code, signal, signalled_by_gateway: signalled };
        let port = self.http_worker_gone(skey);
        let Some(s) = self.sessions.get_mut(skey.idx).filter(|s| s.generation == skey.generation) else { return };
        log::info!(
            "worker exited session_id={} pid={pid} code={code:?} signal={signal:?} gateway_signal={gateway_signal:?}",
            s.id_str
        );
        if code.is_some_and(|c| c != 0) || signal.is_some() {
            let tail = String::from_utf8_lossy(&w.stderr_tail.to_vec()).into_owned();
            if !tail.is_empty() {
                log::debug!("worker stderr tail session_id={}: {}", s.id_str, tail.trim_end());
            }
        }
        self.trace_exited(skey, code, signal, signalled);
        self.with_adapter(skey, |a, out| a.on_exit(&info, out));
        let Some(s) = self.session_mut(skey) else { return };
        if std::mem::take(&mut s.awaiting_ready) {
            // A managed server that lost its port to another process gets another one.
            let retry = !signalled && s.ending.is_none();
            if let Some(port) = port.filter(|_| retry) {
                if self.http_should_retry_port(skey, port) {
                    log::warn!("worker lost its port {port} to another process; starting it on a new port");
                    return self.send_spawn(skey, false);
                }
            }
            return self
                .spawn_failed(skey, SpawnError::Setup(io::Error::other("the worker exited during its startup")));
        }
        if s.adapter.process_model() == ProcessModel::PerTurn && s.ending.is_none() {
            // A turn's process ended; the session stays live. If the adapter
            // did not end the turn, the process died under it.
            if s.turn.is_some() {
                let error = if signalled {
                    None
                } else {
                    let (code, details) = classify_exit(code, signal, None);
                    Some((code, "the worker exited unexpectedly", Some(details)))
                };
                self.abort_turn(skey, error);
                self.emit_state(skey, SessionState::Idle, None);
            }
            return;
        }
        let crash = if s.ending.is_none() { Some(classify_exit(code, signal, None)) } else { None };
        let shutdown_kill = matches!(
            (s.ending, signal),
            (Some(super::Ending::Terminate(super::TermReason::Shutdown)), Some(libc::SIGKILL))
        );
        if shutdown_kill && s.turn.is_some() {
            // the grace ran out during shutdown
            let details = Some(json!({"signal": libc::SIGKILL}));
            self.abort_turn(skey, Some((ErrorCode::ProcessSigkill, "worker killed at shutdown", details)));
        }
        self.finish_ending(skey, crash);
    }
}

/// Set `name` in a built environment, replacing an earlier value.
fn set_env(env: &mut Vec<(String, String)>, name: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value.to_owned(),
        None => env.push((name.to_owned(), value.to_owned())),
    }
}

/// The worker environment (security.md §5.1), later rows overriding earlier.
pub fn worker_env(
    s: &crate::settings::Settings,
    wt: WorkerType,
    owner_hash: &str,
    session_id: &str,
    adapter_env: &[(String, String)],
) -> Vec<(String, String)> {
    let sb = &s.sandbox;
    let mut env: Vec<(String, String)> = sb.base_env.clone();
    if sb.private_home {
        env.push(("HOME".into(), sb.home_root.join(owner_hash).to_string_lossy().into_owned()));
    }
    if let Some(tmp) = &sb.tmp_root {
        env.push(("TMPDIR".into(), tmp.join(session_id).to_string_lossy().into_owned()));
    }
    env.push(("LANG".into(), "C.UTF-8".into()));
    env.push(("TERM".into(), "dumb".into()));
    env.extend(adapter_env.iter().cloned());
    if let Some(ws) = s.live_worker(wt) {
        env.extend(ws.env.iter().cloned());
    }
    env.retain(|(k, _)| !sb.denied_env.iter().any(|d| d == k) && !k.starts_with("HOTPLEX_"));
    // The adapter's own `HOTPLEX_*` variables (built from gateway config,
    // e.g. pi's gated tool list) survive; config and passthrough ones never do.
    env.extend(adapter_env.iter().filter(|(k, _)| k.starts_with("HOTPLEX_")).cloned());
    env.push(("HOTPLEX_SESSION_ID".into(), session_id.into()));
    env.push(("HOTPLEX_WORKER_TYPE".into(), wt.as_str().into()));
    if let Some(dir) = s.live_worker(wt).and_then(|w| w.state_dir.as_ref()) {
        env.push((wt.state_dir_env().into(), expand(dir, owner_hash, session_id)));
    }
    // last one wins, keep first-seen order
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (k, v) in env {
        if let Some(slot) = out.iter_mut().find(|(ok, _)| *ok == k) {
            slot.1 = v;
        } else {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_classification() {
        assert_eq!(classify_exit(Some(1), None, None).0, ErrorCode::WorkerCrash);
        assert_eq!(classify_exit(None, Some(9), None).0, ErrorCode::WorkerOom);
        assert_eq!(classify_exit(Some(137), None, None).0, ErrorCode::WorkerOom);
        assert_eq!(classify_exit(Some(143), None, None).0, ErrorCode::WorkerCrash);
        assert_eq!(classify_exit(None, Some(11), None).1["signal"], 11);
        assert_eq!(classify_exit(None, Some(15), Some(15)).0, ErrorCode::ProcessSigterm);
        assert_eq!(classify_exit(None, Some(9), Some(15)).0, ErrorCode::ProcessSigkill);
        assert_eq!(classify_exit(Some(0), None, None).0, ErrorCode::WorkerCrash);
    }

    #[test]
    fn tags_round_trip() {
        let k = Key { idx: 77, generation: 12345 };
        assert_eq!(key_of(tag_of(k)), k);
    }
}
