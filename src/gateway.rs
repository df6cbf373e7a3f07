//! Startup and shutdown orchestration: threads, listeners, signals. `main`
//! parses argv and loads the config; this module wires the runtime:
//! reactors, the acceptor, the spawner, and the signal loop on the main
//! thread (SIGTERM/SIGINT/SIGHUP are blocked in every thread and taken with
//! `sigtimedwait` here).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use mio::{Poll, Waker};

use crate::child::supervisor::{Command, Notice, NoticeSink, Supervisor};
use crate::net::acceptor::Acceptor;
use crate::reactor::Reactor;
use crate::reactor::shared::{Counters, Msg, ReactorHandle, Shared, SpawnerClient};
use crate::reactor::token;
use crate::reload::{ReloadError, Reloader, Trigger};
use crate::security::audit::{ActorKind, AuditEntry, AuditKind, AuditOutcome, Detail};
use crate::settings::Settings;
use crate::store::{CommitSink, Recovered, Store};
use crate::sys;

/// Exit codes (operations.md §8).
pub const EXIT_OK: i32 = 0;
pub const EXIT_STARTUP: i32 = 3;
pub const EXIT_FORCED: i32 = 4;

struct Sink(ReactorHandle);

impl NoticeSink for Sink {
    fn notify(&self, notice: Notice) {
        self.0.send(Msg::Child(notice));
    }
}

/// Commit notices from the store writer into the reactors' inboxes.
struct CommitRouter(Vec<ReactorHandle>);

impl CommitSink for CommitRouter {
    fn committed(&self, reactor: usize, sessions: Vec<(Arc<str>, u64)>) {
        if let Some(h) = self.0.get(reactor) {
            h.send(Msg::Committed(sessions));
        }
    }
    fn failed(&self, reactor: usize, session: Arc<str>, seq: u64) {
        if let Some(h) = self.0.get(reactor) {
            h.send(Msg::StoreFailed(session, seq));
        }
    }
    fn writable(&self, reactor: usize) {
        if let Some(h) = self.0.get(reactor) {
            h.send(Msg::StoreWritable);
        }
    }
}

struct SpawnerHandle(Supervisor);

impl SpawnerClient for SpawnerHandle {
    fn send(&self, cmd: Command) {
        self.0.send(cmd);
    }
    fn kill_all(&self) {
        self.0.handle().kill_all();
    }
}

/// Signals the gateway takes synchronously: SIGTERM/SIGINT/SIGHUP in the
/// signal loop, SIGCHLD through the spawner's signalfd.
const SYNC_SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD];

/// Block [`SYNC_SIGNALS`] in the calling thread. `main` calls it before the
/// first thread (the log writer) starts, so every thread inherits the mask:
/// a thread with them unblocked would take a process-directed SIGCHLD away
/// from the spawner's signalfd (exits then wait for its safety tick) or die
/// of a SIGTERM outside the signal loop.
pub fn block_signals() -> std::io::Result<()> {
    sys::block_signals(&SYNC_SIGNALS)
}

/// Authentication state built from the config at startup.
pub struct SecurityState {
    pub auth: crate::security::Authenticator,
    pub lockout: crate::security::Lockout,
    pub revocations: Arc<crate::security::RevocationTable>,
    /// SHA-256 (hex) of the config file as read, for the startup audit row.
    pub config_sha256: Option<String>,
}

/// Run the gateway until a shutdown signal; returns the process exit code.
/// `reloader` owns the running config: SIGHUP and the file poll (both on
/// this thread's signal loop) reload through it, and so does the admin API.
pub fn run(
    settings: Settings,
    security: SecurityState,
    listen: SocketAddr,
    admin: crate::admin::AdminSetup,
    reloader: Arc<Reloader>,
) -> i32 {
    if let Err(e) = sys::prepare_process() {
        log::error!("process setup failed: {e}");
        return EXIT_STARTUP;
    }
    let settings = Arc::new(settings);
    let n = settings.reactors.max(1);
    let mut polls = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    let mut inboxes = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = match Poll::new() {
            Ok(p) => p,
            Err(e) => {
                log::error!("cannot create a poll instance: {e}");
                return EXIT_STARTUP;
            }
        };
        let waker = match Waker::new(poll.registry(), token::WAKER) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                log::error!("cannot create a waker: {e}");
                return EXIT_STARTUP;
            }
        };
        let (tx, rx) = unbounded();
        handles.push(ReactorHandle { tx, waker });
        inboxes.push(rx);
        polls.push(poll);
    }
    // The store first: recovery runs before anything accepts (operations.md §2.5).
    let st = &settings.store;
    let temp_data_dir = st.temp_data_dir.clone();
    let router = Box::new(CommitRouter(handles.clone()));
    let (store, recovered) = match Store::open(&st.path, &st.options, st.read_connections, st.writer.clone(), router) {
        Ok(v) => v,
        Err(e) => {
            log::error!("cannot open the store {}: {e}", st.path.display());
            return EXIT_STARTUP;
        }
    };
    log::info!(
        "store open path={} clean_shutdown={} recovered_sessions={} removed_created={}",
        store.path.display(),
        recovered.clean_shutdown,
        recovered.terminated,
        recovered.created_removed
    );
    crate::child::set_instance_id(&recovered.instance_id);
    let startup = lifecycle_audit(
        AuditKind::Startup,
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config_sha256": security.config_sha256,
            "previous_shutdown_clean": recovered.clean_shutdown,
            "recovered_sessions": recovered.terminated,
        }),
    );
    crate::security::audit::try_record(&store.writer, startup);
    kill_orphans(&recovered, &settings.sandbox);
    match crate::admin::revocations::load(&store.readers, &security.revocations) {
        Ok(n) => log::info!("revocations loaded count={n}"),
        Err(e) => {
            log::error!("cannot load the revocations table: {e}");
            return EXIT_STARTUP;
        }
    }
    // Worker versions (operations.md §2.5 step 6), before the spawner starts reaping children.
    let workers = crate::admin::probe::probe_all(admin.workers, &settings.sandbox.base_env);
    for w in workers.iter().filter(|w| w.spec.enabled) {
        match (&w.probe.version, &w.probe.probe_error) {
            (Some(v), _) => log::info!("worker version worker_type={} version={v}", w.spec.worker_type.as_str()),
            (None, e) => log::warn!(
                "worker version probe failed worker_type={} error={}",
                w.spec.worker_type.as_str(),
                e.as_deref().unwrap_or("unknown")
            ),
        }
    }
    let exporter = crate::otel::init(&settings.tracing, &recovered.instance_id);
    if let Some(ws) = settings.worker(crate::adapters::WorkerType::Pi) {
        let path = &ws.adapter.pi.extension;
        if let Err(e) = install_pi_extension(path) {
            log::error!("cannot write the pi permission-gate extension {}: {e}", path.display());
            return EXIT_STARTUP;
        }
    }
    let sinks: Vec<Box<dyn NoticeSink>> =
        handles.iter().map(|h| Box::new(Sink(h.clone())) as Box<dyn NoticeSink>).collect();
    // security.md §3 "Identity": the owner → uid map, loaded before any spawn
    // (also without uid_per_owner: a reload may turn it on).
    let uids = match crate::store::owner_uids::load(&store.path, &st.options) {
        Ok(rows) => {
            log::info!("owner uids loaded count={}", rows.len());
            let book = Box::new(crate::store::owner_uids::WriterBook(store.writer.clone()));
            Some(crate::child::UidAllocator::new(rows, book))
        }
        Err(e) => {
            log::error!("cannot load the owner_uids table: {e}");
            return EXIT_STARTUP;
        }
    };
    if let Err(e) = open_data_dir_to_workers(&settings) {
        log::error!("cannot make the data dir traversable for worker uids: {e}");
        return EXIT_STARTUP;
    }
    let opts = crate::child::SupervisorOptions::default();
    let supervisor = match Supervisor::start_with_uids(sinks, opts, uids) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start the spawner: {e}");
            return EXIT_STARTUP;
        }
    };
    let (acceptor, local, stop_accept) = match Acceptor::bind(listen, handles.clone()) {
        Ok(v) => v,
        Err(e) => {
            log::error!("cannot bind gateway.listen {listen}: {e}");
            supervisor.shutdown(Duration::ZERO);
            return EXIT_STARTUP;
        }
    };
    let shared = Arc::new(Shared {
        settings: std::sync::RwLock::new(settings.clone()),
        reactors: handles.clone(),
        spawner: Box::new(SpawnerHandle(supervisor)),
        store: store.writer.clone(),
        readers: store.readers.clone(),
        counters: Counters::default(),
        limiter: Default::default(),
        auth: std::sync::RwLock::new(Arc::new(security.auth)),
        lockout: security.lockout,
        revocations: security.revocations,
        shutting_down: AtomicBool::new(false),
        liveness: crate::reactor::shared::Liveness::new(n),
        spawn_pace: Default::default(),
        creates_in_flight: Default::default(),
        send_queues: crate::reactor::sendq::SendQueues::new(n),
    });
    reloader.attach(&shared);
    let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(n);
    for (i, (poll, rx)) in polls.into_iter().zip(inboxes).enumerate() {
        let reactor = Reactor::new(i, poll, rx, shared.clone());
        match std::thread::Builder::new().name(format!("reactor-{i}")).spawn(move || reactor.run()) {
            Ok(h) => threads.push(h),
            Err(e) => {
                log::error!("cannot start reactor {i}: {e}");
                return EXIT_STARTUP;
            }
        }
    }
    let admin =
        match crate::admin::Admin::start(admin.listen, admin.settings, workers, shared.clone(), reloader.clone()) {
            Ok(a) => a,
            Err(e) => {
                log::error!("cannot bind admin.listen {}: {e}", admin.listen);
                return EXIT_STARTUP;
            }
        };
    reloader.attach_admin(admin.control.clone());
    let stop2 = stop_accept.clone();
    let acceptor_thread = std::thread::Builder::new().name("acceptor".into()).spawn(move || acceptor.run(stop2));
    shared.liveness.started.store(true, std::sync::atomic::Ordering::SeqCst);
    crate::metrics::set_ready(true);
    log::info!("ready gateway={local} admin={} reactors={n}", admin.addr);
    // Tests parse these two lines (admin first).
    eprintln!("hotplex listening admin={}", admin.addr);
    eprintln!("hotplex listening gateway={local}");
    crate::sd_notify::notify("READY=1");

    // Signal loop.
    let mut deadline: Option<Instant> = None;
    loop {
        match sys::wait_signal(Duration::from_millis(200)) {
            Some(sig) if sig == libc::SIGTERM || sig == libc::SIGINT => {
                if deadline.is_some() {
                    log::warn!("second signal during shutdown: forcing exit");
                    return force_exit(&shared, exporter);
                }
                log::info!("shutdown requested (signal {sig})");
                crate::metrics::set_draining(true);
                crate::sd_notify::notify("STOPPING=1");
                let row = lifecycle_audit(AuditKind::Shutdown, serde_json::json!({"signal": sig}));
                crate::security::audit::try_record(&shared.store, row);
                stop_accept.stop();
                for h in &shared.reactors {
                    h.send(Msg::Shutdown);
                }
                deadline = Some(Instant::now() + reloader.config().gateway.shutdown_timeout);
            }
            Some(sig) if sig == libc::SIGHUP && deadline.is_none() => on_sighup(&reloader),
            _ => {}
        }
        if deadline.is_none() {
            reloader.tick(Instant::now());
        }
        if let Some(d) = deadline {
            if threads.iter().all(|t| t.is_finished()) {
                break;
            }
            if Instant::now() >= d {
                log::error!("shutdown exceeded gateway.shutdown_timeout");
                return force_exit(&shared, exporter);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    if let Ok(t) = acceptor_thread {
        let _ = t.join();
    }
    admin.stop();
    drop(shared);
    store.close(Duration::from_secs(10));
    if let Some(d) = temp_data_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    if let Some(e) = exporter {
        e.shutdown(crate::otel::SHUTDOWN_FLUSH);
    }
    log::info!("stopped");
    crate::logging::flush();
    EXIT_OK
}

/// Write pi's permission-gate extension (embedded in the binary, so it
/// always matches the adapter answering it) to `path`, unless it already
/// holds exactly that text. Written to a temporary file and renamed, so a
/// pi starting meanwhile never loads half a file; readable by workers.
pub fn install_pi_extension(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let source = crate::adapters::pi::PERMISSION_GATE_SOURCE;
    if std::fs::read(path).is_ok_and(|b| b == source.as_bytes()) {
        return Ok(());
    }
    let dir = path.parent().ok_or_else(|| std::io::Error::other("the extension path has no directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    let tmp = dir.join(format!(".{}.{}", crate::adapters::pi::PERMISSION_GATE_FILE, std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    f.write_all(source.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// With a worker identity other than the gateway's (`run_as`,
/// `uid_per_owner`), the per-owner HOME and per-session TMPDIR roots live
/// under the data dir by default, which the store creates 0700: give it
/// search permission only (0711), so a worker uid can reach its own
/// directory but not list the data dir; the database files stay 0600.
fn open_data_dir_to_workers(settings: &Settings) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let sb = &settings.sandbox;
    if sb.run_as.is_none() && sb.uid_per_owner.is_none() {
        return Ok(());
    }
    let Some(data) = settings.store.path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    let under = |p: &std::path::Path| p.starts_with(data);
    if !under(&sb.home_root) && !sb.tmp_root.as_deref().is_some_and(under) {
        return Ok(());
    }
    let m = std::fs::metadata(data)?;
    if m.uid() == sys::getuid() && m.mode() & 0o011 != 0o011 {
        std::fs::set_permissions(data, std::fs::Permissions::from_mode((m.mode() & 0o7777) | 0o011))?;
    }
    Ok(())
}

/// Worker groups recorded for sessions that were live when the previous
/// process stopped: kill them if they (still the same processes) survived,
/// and any process still carrying one of those sessions' ids together with
/// this store's instance id (another gateway's workers may share a session id).
///
/// Workers under another uid (`run_as`, `uid_per_owner`) are not found by
/// environ (never read for other uids): the members of their recorded
/// groups are killed by group id and uid instead ([`crate::child::kill_group_members`]).
/// A descendant of such a worker that left its group (`setsid`) before the
/// crash is left to the service manager's cgroup kill (security.md §3).
fn kill_orphans(r: &Recovered, sandbox: &crate::settings::Sandbox) {
    let (run_as, range) = (sandbox.run_as.as_ref().map(|r| r.uid), sandbox.uid_per_owner);
    let me = sys::getuid();
    let is_worker_uid = move |uid: u32| {
        uid != me && (run_as == Some(uid) || range.is_some_and(|r| uid >= r.first_uid && uid - r.first_uid < r.count))
    };
    for (pid, ticks) in &r.orphans {
        if crate::child::kill_group_of(*pid, *ticks, libc::SIGKILL).unwrap_or(false) {
            log::warn!("killed orphaned worker group pid={pid}");
        }
        if run_as.is_some() || range.is_some() {
            let n = crate::child::kill_group_members(*pid, *ticks, &is_worker_uid);
            if n > 0 {
                log::warn!("killed {n} orphaned process(es) of worker group pid={pid}");
            }
        }
    }
    for sid in &r.session_ids {
        for (pid, ticks) in crate::child::procfs::processes_with_env(&[
            (crate::child::SESSION_ENV, sid),
            (crate::child::INSTANCE_ENV, &r.instance_id),
        ]) {
            if crate::child::kill_process(pid, ticks, libc::SIGKILL).unwrap_or(false) {
                log::warn!("killed orphaned worker process pid={pid} session_id={sid}");
            }
        }
    }
}

/// SIGHUP: reload the config, bracketed for systemd (operations.md §1.8).
/// The outcome is logged by the reloader.
fn on_sighup(reloader: &Reloader) {
    crate::sd_notify::reloading();
    if let Err(ReloadError::InProgress) = reloader.reload(Trigger::Signal) {
        log::info!("SIGHUP: a reload is already in progress");
    }
    crate::sd_notify::notify("READY=1");
}

/// A `startup`/`shutdown` row (security.md §10.3), actor `system`.
fn lifecycle_audit(kind: AuditKind, detail: serde_json::Value) -> AuditEntry {
    let e = AuditEntry::new(kind, AuditOutcome::Ok, ActorKind::System);
    match Detail::from_value(detail) {
        Some(d) => e.detail(d),
        None => e,
    }
}

fn force_exit(shared: &Shared, exporter: Option<crate::otel::ExporterHandle>) -> i32 {
    shared.spawner.kill_all();
    // The spawner SIGKILLs every group and sweeps; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    if let Some(e) = exporter {
        e.shutdown(Duration::from_secs(1));
    }
    crate::logging::flush();
    EXIT_FORCED
}
