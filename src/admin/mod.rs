//! The admin listener (operations.md §4.1–4.3): a dedicated `admin` thread
//! with its own `mio::Poll` on `admin.listen`, plain HTTP/1.1, Bearer-token
//! authentication with scopes, and the endpoints for health, readiness,
//! metrics, stats, sessions, drain, configuration, workers, audit and
//! revocations. Also the JSON shapes and error bodies the user session API
//! on the gateway listener (`reactor::api`) shares with it.
//!
//! Owns: admin connections, requests in flight and their deadlines, the
//! per-IP admin rate buckets, the worker probe results. Must not: touch a
//! reactor's sessions or connections except by message (`Msg::Call`) with a
//! reply; query SQLite itself (the reader pool does); block for long (a
//! request waits parked, not the thread; the one synchronous wait is a
//! config reload, which the admin thread orchestrates by design).
//!
//! Files: `server.rs` (loop, connections, continuations), `routes.rs`
//! (common rules and routing), `settings.rs` (tokens and limits),
//! `calls.rs` (asking readers and reactors), `sessions.rs`, `ops.rs`,
//! `revocations.rs`, `audit.rs` (endpoints), `shapes.rs`, `error.rs`,
//! `query.rs` (shared with `/api`), `probe.rs` (worker versions).

pub mod audit;
pub mod calls;
pub mod error;
pub mod ops;
pub mod probe;
pub mod query;
pub mod revocations;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod shapes;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

pub use settings::AdminSettings;

/// What `main` prepares for the admin listener from the config.
pub struct AdminSetup {
    pub listen: SocketAddr,
    pub settings: AdminSettings,
    /// Every worker type as configured (probed at startup).
    pub workers: Vec<probe::WorkerSpec>,
}

/// Replaces the admin settings of a running listener (config reload:
/// `admin.*` except `listen` applies to the next request).
#[derive(Clone)]
pub struct AdminControl {
    settings: Arc<RwLock<Arc<AdminSettings>>>,
}

impl AdminControl {
    pub fn set_settings(&self, s: AdminSettings) {
        match self.settings.write() {
            Ok(mut g) => *g = Arc::new(s),
            Err(p) => *p.into_inner() = Arc::new(s),
        }
    }
}

/// The running admin thread.
pub struct Admin {
    /// The bound address (`admin.listen` with the real port).
    pub addr: SocketAddr,
    pub control: AdminControl,
    stopper: server::Stopper,
    join: JoinHandle<()>,
}

impl Admin {
    /// Bind `admin.listen` and start the `admin` thread.
    pub fn start(
        listen: SocketAddr,
        settings: AdminSettings,
        workers: Vec<probe::WorkerInfo>,
        shared: Arc<crate::reactor::shared::Shared>,
        reloader: Arc<crate::reload::Reloader>,
    ) -> std::io::Result<Admin> {
        let settings = Arc::new(RwLock::new(Arc::new(settings)));
        let ctx =
            server::Ctx { settings: settings.clone(), shared, reloader, workers, started: std::time::Instant::now() };
        let (srv, addr, stopper) = server::Server::bind(listen, ctx)?;
        let join = std::thread::Builder::new().name("admin".into()).spawn(move || srv.run())?;
        Ok(Admin { addr, control: AdminControl { settings }, stopper, join })
    }

    /// Stop the thread and wait for it.
    pub fn stop(self) {
        self.stopper.stop();
        let _ = self.join.join();
    }
}
