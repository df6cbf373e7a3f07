//! Table `owner_uids` (security.md §3 "Identity", `security.worker.uid_per_owner`;
//! created by migration 0001).
//!
//! Owns: loading every `owner → uid` row at startup (a short-lived read
//! connection on the main thread, before the spawner starts) and
//! [`WriterBook`], through which the spawner's allocator records a new row
//! with the store writer and waits for its commit.
//!
//! Must not: be used from a reactor thread ([`WriterBook::record`] blocks
//! until the writer commits); delete rows (a freed uid could still own files).

use std::path::Path;
use std::time::Duration;

use crossbeam_channel::bounded;

use super::schema::{OpenError, StoreOptions, open_reader};
use super::{WriteOp, WriterHandle};

/// How long the spawner waits to queue the row, then for its commit.
const QUEUE_WAIT: Duration = Duration::from_secs(5);
const COMMIT_WAIT: Duration = Duration::from_secs(30);

/// Every recorded `(owner, uid)`.
pub fn load(path: &Path, o: &StoreOptions) -> Result<Vec<(String, u32)>, OpenError> {
    let conn = open_reader(path, o)?;
    let mut stmt = conn.prepare("SELECT owner, uid FROM owner_uids")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (owner, uid) = row?;
        // Only rows this gateway wrote exist; anything else is skipped, not trusted.
        if let Ok(uid) = u32::try_from(uid) {
            out.push((owner, uid));
        }
    }
    Ok(out)
}

/// Records rows through the store writer (the only write connection).
pub struct WriterBook(pub WriterHandle);

impl crate::child::UidBook for WriterBook {
    fn record(&mut self, owner: &str, uid: u32) -> Result<(), String> {
        let (tx, rx) = bounded(1);
        let op = WriteOp::OwnerUid { owner: owner.to_owned(), uid, reply: tx };
        self.0.send_timeout(op, QUEUE_WAIT).map_err(|_| "the store queue stayed full".to_string())?;
        match rx.recv_timeout(COMMIT_WAIT) {
            Ok(true) => Ok(()),
            Ok(false) => Err("the store refused the row".into()),
            Err(_) => Err("the store did not commit in time".into()),
        }
    }
}
