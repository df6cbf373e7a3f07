//! Opening the SQLite database (operations.md §3.1) and forward-only
//! migrations (§3.3). Used by the writer at startup, by readers, and by
//! `--check-config`. Never called on a reactor thread.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

/// Every migration, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "0001_init", include_str!("migrations/0001_init.sql"))];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Why the store could not be opened.
#[derive(Debug)]
pub enum OpenError {
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
    /// The file's schema is newer than this binary knows.
    TooNew {
        found: i64,
        supported: i64,
    },
    /// Migrations are pending and `store.auto_migrate` is false.
    Pending {
        found: i64,
        supported: i64,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Sqlite(e) => write!(f, "sqlite: {e}"),
            OpenError::Io(e) => write!(f, "{e}"),
            OpenError::TooNew { found, supported } => write!(
                f,
                "database schema version {found} is newer than this binary supports ({supported}); upgrade hotplex"
            ),
            OpenError::Pending { found, supported } => write!(
                f,
                "store: schema {found}, binary supports {supported}: {} migration(s) pending; run hotplex migrate",
                supported - found
            ),
        }
    }
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        OpenError::Sqlite(e)
    }
}

/// Connection settings from `store.*`.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub synchronous_full: bool,
    pub busy_timeout: Duration,
    pub journal_size_limit: u64,
    pub auto_migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous_full: false,
            busy_timeout: Duration::from_secs(5),
            journal_size_limit: 64 << 20,
            auto_migrate: true,
        }
    }
}

/// Open (creating 0700/0600 as needed) the write connection and migrate.
pub fn open_writer(path: &Path, o: &StoreOptions) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(OpenError::Io)?;
    }
    let fresh = !path.exists();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    if fresh {
        set_mode_0600(path);
    }
    conn.busy_timeout(o.busy_timeout)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={}; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; \
         PRAGMA cache_size=-32768; PRAGMA journal_size_limit={};",
        if o.synchronous_full { "FULL" } else { "NORMAL" },
        o.journal_size_limit
    ))?;
    migrate(&conn, o.auto_migrate)?;
    Ok(conn)
}

/// A read-only connection (readers, `--check-config`).
pub fn open_reader(path: &Path, o: &StoreOptions) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(o.busy_timeout)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous={}; PRAGMA foreign_keys=ON; PRAGMA cache_size=-8192; PRAGMA query_only=ON;",
        if o.synchronous_full { "FULL" } else { "NORMAL" }
    ))?;
    Ok(conn)
}

/// The applied schema version (0 for an empty database).
pub fn current_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))
}

/// Apply pending migrations, each in its own `BEGIN IMMEDIATE` transaction.
pub fn migrate(conn: &Connection, auto: bool) -> Result<(), OpenError> {
    let found = current_version(conn)?;
    let supported = latest_version();
    if found > supported {
        return Err(OpenError::TooNew { found, supported });
    }
    if found < supported && !auto && found != 0 {
        return Err(OpenError::Pending { found, supported });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn.execute_batch(sql).and_then(|_| {
            conn.execute(
                "INSERT INTO schema_version(version, name, applied_at, app_version) VALUES (?1, ?2, ?3, ?4)",
                params![version, name, crate::protocol::now_ms() as i64, env!("CARGO_PKG_VERSION")],
            )
        });
        match applied {
            Ok(_) => {
                conn.execute_batch("COMMIT")?;
                conn.pragma_update(None, "user_version", version)?;
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                crate::metrics::store_error(crate::metrics::StoreErrorOp::Migrate);
                return Err(e.into());
            }
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn set_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_an_empty_database_once() {
        let dir = std::env::temp_dir().join(format!("hotplex-schema-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("db/hotplex.db");
        let conn = open_writer(&path, &StoreOptions::default()).unwrap();
        assert_eq!(current_version(&conn).unwrap(), latest_version());
        let uv: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(uv, latest_version());
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        drop(conn);
        // reopening is a no-op
        let conn = open_writer(&path, &StoreOptions::default()).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("db")).unwrap().permissions().mode() & 0o777, 0o700);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = std::env::temp_dir().join(format!("hotplex-schema-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("hotplex.db");
        let conn = open_writer(&path, &StoreOptions::default()).unwrap();
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0, 'x')", []).unwrap();
        drop(conn);
        match open_writer(&path, &StoreOptions::default()) {
            Err(OpenError::TooNew { found: 99, .. }) => {}
            other => panic!("{:?}", other.err()),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
