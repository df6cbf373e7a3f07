//! Durable sessions (operations.md §3): the SQLite schema and migrations,
//! the single writer thread (group commit, commit-before-send notices), the
//! reader pool, replay encoding and startup recovery. Nothing here runs on a
//! reactor thread; reactors only `try_send` ops and receive notices.

pub mod failpoint;
pub mod ops;
pub mod owner_uids;
pub mod queries;
pub mod reader;
pub mod recovery;
pub mod replay;
pub mod retention;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};

pub use ops::{Append, CommitSink, RevocationRow, SessionRow, SessionUpdate, Totals, WriteOp};
pub use queries::{AuditFilter, AuditPage, AuditRow, Page, SessionFilter, SessionList, StoredStats, TurnRow};
pub use reader::{Answer, EventRow, EventsPage, Query, Readers};
pub use recovery::Recovered;
pub use schema::{OpenError, StoreOptions};
pub use writer::{WriterConfig, WriterHandle, WriterTuning};

/// `store.path: ":memory:"`: a fresh database in a temp file, removed at exit
/// (operations.md §3.1: writer and readers must share it).
pub const MEMORY: &str = ":memory:";

/// An opened store: the writer and the readers.
pub struct Store {
    pub writer: WriterHandle,
    pub readers: Readers,
    pub path: PathBuf,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    /// Set when the database is a temp file to delete at exit.
    temp: bool,
}

impl Store {
    /// Open (and migrate) the database, run startup recovery, start the
    /// writer and the readers.
    pub fn open(
        path: &Path,
        opts: &StoreOptions,
        read_connections: usize,
        wcfg: WriterConfig,
        sink: Box<dyn CommitSink>,
    ) -> Result<(Store, Recovered), OpenError> {
        let (path, temp) = if path.as_os_str() == MEMORY {
            let p = std::env::temp_dir().join(format!(
                "hotplex-{}-{}.db",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            (p, true)
        } else {
            (path.to_path_buf(), false)
        };
        let mut conn = schema::open_writer(&path, opts)?;
        let recovered = recovery::recover(&mut conn)?;
        let readers = Readers::start(&path, opts, read_connections)?;
        let (writer, join) = writer::start(conn, wcfg, sink).map_err(OpenError::Io)?;
        Ok((Store { writer, readers, path, writer_thread: Some(join), temp }, recovered))
    }

    /// Flush and close: drain the queue, commit, checkpoint, mark the clean
    /// shutdown, join the writer.
    pub fn close(mut self, timeout: std::time::Duration) {
        if !self.writer.shutdown(timeout) {
            log::error!("store: the writer did not finish within {timeout:?}");
        } else if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
        self.remove_temp();
    }

    fn remove_temp(&self) {
        if self.temp {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.remove_temp();
    }
}
