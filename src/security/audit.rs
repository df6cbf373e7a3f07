//! The audit log (security.md §10.3): the row model, redaction, the hash
//! chain, flood control, chain verification and the purge job.
//!
//! Owns: what an audit row may contain ([`AuditEntry`]: closed sets of
//! kinds, outcomes and actor kinds; every text field capped, stripped of
//! control characters and token-like strings; `detail` a redacted JSON object
//! of at most [`MAX_DETAIL_BYTES`]), the chain hash
//! `SHA-256(prev_hash ‖ len-prefixed fields)`, and the SQL that inserts,
//! verifies and prunes rows.
//!
//! Must not: write from any thread but the store writer ([`insert`] is
//! called inside the writer's `BEGIN IMMEDIATE` batch, so the chain has one
//! writer and the hash is computed in the same transaction as the insert), or
//! block a reactor (reactors call [`try_record`], which never waits).
//! The hash covers every column but `id`: ids are AUTOINCREMENT and carry no
//! evidence beyond the order, which the chain itself fixes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

use crate::store::{WriteOp, WriterHandle};

#[cfg(test)]
mod tests;

/// `detail` JSON limit.
pub const MAX_DETAIL_BYTES: usize = 4096;
/// Limit of every other text field (and of each string inside `detail`).
pub const MAX_FIELD_BYTES: usize = 256;
/// Flood control: rows per (kind, client IP) per window.
pub const FLOOD_ROWS_PER_WINDOW: u32 = 10;
/// Flood control window.
pub const FLOOD_WINDOW_MS: u64 = 60_000;
/// Flood control tracks at most this many (kind, client IP) keys; past it,
/// rows of new keys are written unthrottled.
pub const FLOOD_MAX_KEYS: usize = 4096;
/// Rows per purge transaction (operations.md §3.6).
pub const PURGE_CHUNK: usize = 5000;
/// Rows per page while verifying.
const VERIFY_PAGE: usize = 1000;
/// `prev_hash` of the first row ever written.
pub const GENESIS: [u8; 32] = [0; 32];

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($var),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The stored string (security.md §10.3 schema comment).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
        }
    };
}

wire_enum!(
    /// `audit_log.kind`.
    AuditKind {
        AuthFailure = "auth_failure",
        AuthSuccess = "auth_success",
        AdminAction = "admin_action",
        AdminAuthFailure = "admin_auth_failure",
        PolicyViolation = "policy_violation",
        SessionForeignProbe = "session_foreign_probe",
        PermissionDecision = "permission_decision",
        Revocation = "revocation",
        ConfigReload = "config_reload",
        Startup = "startup",
        Shutdown = "shutdown",
        RateLimitClose = "rate_limit_close",
        AuditSummary = "audit_summary",
    }
);

wire_enum!(
    /// `audit_log.outcome`.
    AuditOutcome { Ok = "ok", Denied = "denied", Error = "error" }
);

wire_enum!(
    /// `audit_log.actor_kind`.
    ActorKind {
        Unauthenticated = "unauthenticated",
        Anonymous = "anonymous",
        ApiKey = "api_key",
        Jwt = "jwt",
        AdminToken = "admin_token",
        System = "system",
    }
);

impl AuditKind {
    /// Kinds subject to flood control. Operator and lifecycle records
    /// (admin mutations, revocations, reloads, startup/shutdown) are always
    /// written: an admin mutation whose row is not stored must be refused.
    pub fn flood_controlled(self) -> bool {
        !matches!(
            self,
            AuditKind::AdminAction
                | AuditKind::Revocation
                | AuditKind::ConfigReload
                | AuditKind::Startup
                | AuditKind::Shutdown
                | AuditKind::AuditSummary
        )
    }
}

// ---------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------

/// `detail` keys whose values are secrets or user content: replaced by `"***"`.
const REDACTED_KEYS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "content",
    "cookie",
    "credential",
    "data",
    "env",
    "input",
    "key",
    "output",
    "password",
    "private_key",
    "prompt",
    "secret",
    "set-cookie",
    "stderr",
    "stdout",
    "system_prompt",
    "text",
    "token",
    "tool_input",
    "x-api-key",
];

/// Replace JWT-like runs (`eyJ…​.…​.…`) with `***` (security.md §10.1 filter).
pub fn redact_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let tok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 3 <= b.len() {
        if &b[i..i + 3] == b"eyJ" && (i == 0 || !tok(b[i - 1])) {
            // segment 1, '.', segment 2, '.': then the signature run
            let mut j = i;
            while j < b.len() && tok(b[j]) {
                j += 1;
            }
            if j < b.len() && b[j] == b'.' {
                let mut k = j + 1;
                while k < b.len() && tok(b[k]) {
                    k += 1;
                }
                if k < b.len() && b[k] == b'.' {
                    let mut end = k + 1;
                    while end < b.len() && (tok(b[end]) || b[end] == b'.') {
                        end += 1;
                    }
                    out.push_str(&s[copied..i]);
                    out.push_str("***");
                    copied = end;
                    i = end;
                    continue;
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// A text field for a row: control characters removed, tokens redacted, at
/// most `max` bytes (cut on a char boundary).
pub fn clean_text(s: &str, max: usize) -> String {
    let stripped: String = s.chars().filter(|c| !c.is_control()).collect();
    let mut t = redact_tokens(&stripped);
    if t.len() > max {
        let mut cut = max;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
    }
    t
}

/// A redacted JSON object of at most [`MAX_DETAIL_BYTES`] (serialized).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail(String);

impl Detail {
    /// Redact `map`: secret/content keys become `"***"`, strings are cleaned
    /// and capped, nesting is cut at depth 3 and arrays at 32 items; members
    /// that do not fit are dropped and `"truncated": true` is added.
    pub fn from_map(map: Map<String, Value>) -> Detail {
        let mut out = String::from("{");
        let mut truncated = false;
        for (k, v) in map {
            let key = clean_text(&k, 64);
            let v = if REDACTED_KEYS.iter().any(|r| key.eq_ignore_ascii_case(r)) {
                Value::String("***".into())
            } else {
                redact_value(v, 1)
            };
            let member = format!("{}:{}", Value::String(key), v);
            // room for ',' + member + ',"truncated":true}'
            if out.len() + member.len() + 1 + 19 > MAX_DETAIL_BYTES {
                truncated = true;
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&member);
        }
        if truncated {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str("\"truncated\":true");
        }
        out.push('}');
        Detail(out)
    }

    /// `Some` for a JSON object, `None` for anything else.
    pub fn from_value(v: Value) -> Option<Detail> {
        match v {
            Value::Object(m) => Some(Detail::from_map(m)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn redact_value(v: Value, depth: usize) -> Value {
    match v {
        Value::String(s) => Value::String(clean_text(&s, MAX_FIELD_BYTES)),
        Value::Array(a) if depth < 3 => {
            Value::Array(a.into_iter().take(32).map(|x| redact_value(x, depth + 1)).collect())
        }
        Value::Object(m) if depth < 3 => Value::Object(
            m.into_iter()
                .take(32)
                .map(|(k, x)| {
                    let k = clean_text(&k, 64);
                    if REDACTED_KEYS.iter().any(|r| k.eq_ignore_ascii_case(r)) {
                        (k, Value::String("***".into()))
                    } else {
                        (k, redact_value(x, depth + 1))
                    }
                })
                .collect(),
        ),
        Value::Array(_) | Value::Object(_) => Value::String("…".into()),
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------

/// The content of one `audit_log` row (everything but `id` and the hashes).
/// Built with [`AuditEntry::new`] and the setters, which clean every value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub ts_ms: u64,
    pub kind: AuditKind,
    pub outcome: AuditOutcome,
    reason: Option<String>,
    pub actor_kind: ActorKind,
    actor_id: Option<String>,
    credential_id: Option<String>,
    pub client_ip: Option<IpAddr>,
    session_id: Option<String>,
    detail: Option<Detail>,
}

impl AuditEntry {
    /// A row stamped now.
    pub fn new(kind: AuditKind, outcome: AuditOutcome, actor_kind: ActorKind) -> AuditEntry {
        AuditEntry {
            ts_ms: crate::protocol::now_ms(),
            kind,
            outcome,
            reason: None,
            actor_kind,
            actor_id: None,
            credential_id: None,
            client_ip: None,
            session_id: None,
            detail: None,
        }
    }

    /// Machine code (`expired`, `unknown_kid`, `work_dir_escape`, …).
    pub fn reason(mut self, r: &str) -> Self {
        self.reason = Some(clean_text(r, MAX_FIELD_BYTES));
        self
    }
    /// Owner id or admin token name.
    pub fn actor(mut self, id: &str) -> Self {
        self.actor_id = Some(clean_text(id, MAX_FIELD_BYTES));
        self
    }
    /// `ak_…`, `kid:jti`, token name — never a secret (token-like values are redacted).
    pub fn credential(mut self, id: &str) -> Self {
        self.credential_id = Some(clean_text(id, MAX_FIELD_BYTES));
        self
    }
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(crate::security::ssrf::normalize(ip));
        self
    }
    pub fn session(mut self, id: &str) -> Self {
        self.session_id = Some(clean_text(id, MAX_FIELD_BYTES));
        self
    }
    pub fn detail(mut self, d: Detail) -> Self {
        self.detail = Some(d);
        self
    }
    pub fn at(mut self, ts_ms: u64) -> Self {
        self.ts_ms = ts_ms;
        self
    }

    pub fn reason_str(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    pub fn actor_id(&self) -> Option<&str> {
        self.actor_id.as_deref()
    }
    pub fn credential_id(&self) -> Option<&str> {
        self.credential_id.as_deref()
    }
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
    pub fn detail_str(&self) -> Option<&str> {
        self.detail.as_ref().map(Detail::as_str)
    }
}

/// What a writer op carries: the row and, for callers that must know it was
/// stored (admin mutations), where to say so after the commit.
#[derive(Debug)]
pub struct AuditRecord {
    pub entry: AuditEntry,
    pub ack: Option<Sender<AuditAck>>,
}

/// The writer's answer to an acknowledged [`AuditRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAck {
    /// Committed.
    Stored,
    /// Dropped by flood control (counted in the window's `audit_summary`).
    Suppressed,
    /// The insert failed; nothing was stored.
    Failed,
}

/// Why [`record_sync`] could not confirm a stored row (admin: answer 503).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditError {
    /// Queue full or no commit within the timeout.
    Timeout,
    /// The insert failed or the writer is gone.
    Failed,
}

/// Reactors: enqueue without waiting. On a full queue the row is dropped, an
/// error is logged and `false` returned (auth paths continue, §10.3).
pub fn try_record(w: &WriterHandle, entry: AuditEntry) -> bool {
    let kind = entry.kind;
    match w.try_send(WriteOp::Audit(Box::new(AuditRecord { entry, ack: None }))) {
        Ok(()) => true,
        Err(_) => {
            w.stats.audit_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::error!("audit: store queue full, {} row dropped", kind.as_str());
            false
        }
    }
}

/// Threads that may wait (admin): enqueue and wait until the row is
/// committed, at most `timeout` in total.
pub fn record_sync(w: &WriterHandle, entry: AuditEntry, timeout: Duration) -> Result<AuditAck, AuditError> {
    let deadline = std::time::Instant::now() + timeout;
    let (tx, rx) = bounded(1);
    w.send_timeout(WriteOp::Audit(Box::new(AuditRecord { entry, ack: Some(tx) })), timeout)
        .map_err(|_| AuditError::Timeout)?;
    match rx.recv_deadline(deadline) {
        Ok(AuditAck::Failed) => Err(AuditError::Failed),
        Ok(ack) => Ok(ack),
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(AuditError::Timeout),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(AuditError::Failed),
    }
}

// ---------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------

/// The hashed columns of a row, as stored (text as UTF-8 bytes).
struct Fields<'a> {
    ts_ms: i64,
    text: [Option<&'a [u8]>; 9],
}

/// `SHA-256(prev ‖ ts_ms ‖ field…)`: `ts_ms` as 8 bytes big-endian, then each
/// text column (kind, outcome, reason, actor_kind, actor_id, credential_id,
/// client_ip, session_id, detail) as `0x00` when NULL or `0x01 ‖ u32 BE
/// length ‖ bytes`. `prev` itself is length-prefixed too.
fn chain_hash(prev: &[u8], f: &Fields<'_>) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(prev.len() as u32).to_be_bytes());
    ctx.update(prev);
    ctx.update(&f.ts_ms.to_be_bytes());
    for t in &f.text {
        match t {
            None => ctx.update(&[0]),
            Some(b) => {
                ctx.update(&[1]);
                ctx.update(&(b.len() as u32).to_be_bytes());
                ctx.update(b);
            }
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The hash of the newest row, else the anchor of the last purge, else zeros.
fn chain_head(conn: &Connection) -> rusqlite::Result<Vec<u8>> {
    if let Some(h) = conn
        .prepare_cached("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
    {
        return Ok(h);
    }
    Ok(anchor(conn)?.map(|a| a.to_vec()).unwrap_or_else(|| GENESIS.to_vec()))
}

fn anchor(conn: &Connection) -> rusqlite::Result<Option<[u8; 32]>> {
    let raw: Option<Vec<u8>> = conn
        .prepare_cached("SELECT last_pruned_hash FROM audit_anchor WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(raw.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()))
}

/// Store writer only, inside its transaction: append `e` to the chain.
/// Returns the new row id.
pub(crate) fn insert(tx: &Connection, e: &AuditEntry) -> rusqlite::Result<i64> {
    let prev = chain_head(tx)?;
    let ip = e.client_ip.map(|ip| ip.to_string());
    let f = Fields {
        ts_ms: e.ts_ms as i64,
        text: [
            Some(e.kind.as_str().as_bytes()),
            Some(e.outcome.as_str().as_bytes()),
            e.reason.as_deref().map(str::as_bytes),
            Some(e.actor_kind.as_str().as_bytes()),
            e.actor_id.as_deref().map(str::as_bytes),
            e.credential_id.as_deref().map(str::as_bytes),
            ip.as_deref().map(str::as_bytes),
            e.session_id.as_deref().map(str::as_bytes),
            e.detail_str().map(str::as_bytes),
        ],
    };
    let hash = chain_hash(&prev, &f);
    tx.prepare_cached(
        "INSERT INTO audit_log(ts_ms, kind, outcome, reason, actor_kind, actor_id, credential_id, client_ip, \
         session_id, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        e.ts_ms as i64,
        e.kind.as_str(),
        e.outcome.as_str(),
        e.reason,
        e.actor_kind.as_str(),
        e.actor_id,
        e.credential_id,
        ip,
        e.session_id,
        e.detail_str(),
        prev,
        &hash[..],
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Outcome of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyResult {
    pub ok: bool,
    pub rows_checked: u64,
    /// The first row whose `prev_hash` does not continue the chain or whose
    /// `hash` does not match its columns.
    pub first_bad_id: Option<i64>,
    /// `audit_anchor.last_pruned_hash` the walk started from (`None`: from zeros).
    pub anchor: Option<[u8; 32]>,
}

impl VerifyResult {
    pub fn anchor_hex(&self) -> Option<String> {
        self.anchor.map(|a| a.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Re-walk the chain from the anchor (or zeros), in pages of short read
/// transactions. A purge that moves the anchor during the walk makes it
/// start over (at most three times); a gap anywhere but at the anchor is a
/// bad row.
pub fn verify(conn: &Connection) -> rusqlite::Result<VerifyResult> {
    for _ in 0..3 {
        let start = anchor(conn)?;
        let r = walk(conn, start)?;
        if r.ok || anchor(conn)? == start {
            return Ok(r);
        }
    }
    walk(conn, anchor(conn)?)
}

fn walk(conn: &Connection, start_anchor: Option<[u8; 32]>) -> rusqlite::Result<VerifyResult> {
    let mut expected: Vec<u8> = start_anchor.map(|a| a.to_vec()).unwrap_or_else(|| GENESIS.to_vec());
    let mut after = i64::MIN;
    let mut checked = 0u64;
    let mut stmt = conn.prepare_cached(
        "SELECT id, ts_ms, kind, outcome, reason, actor_kind, actor_id, credential_id, client_ip, session_id, \
         detail, prev_hash, hash FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let result = |ok, checked, bad| VerifyResult { ok, rows_checked: checked, first_bad_id: bad, anchor: start_anchor };
    loop {
        let mut page = 0usize;
        let mut rows = stmt.query(params![after, VERIFY_PAGE as i64])?;
        while let Some(r) = rows.next()? {
            page += 1;
            let id: i64 = r.get(0)?;
            after = id;
            let ts_ms = match r.get_ref(1)? {
                ValueRef::Integer(i) => Some(i),
                _ => None,
            };
            let mut text: [Option<&[u8]>; 9] = [None; 9];
            let mut well_typed = ts_ms.is_some();
            for (i, slot) in text.iter_mut().enumerate() {
                match r.get_ref(2 + i)? {
                    ValueRef::Text(t) => *slot = Some(t),
                    ValueRef::Null => {}
                    _ => well_typed = false,
                }
            }
            let (Some(prev), Some(hash)) = (blob(r.get_ref(11)?), blob(r.get_ref(12)?)) else {
                return Ok(result(false, checked, Some(id)));
            };
            let fields = Fields { ts_ms: ts_ms.unwrap_or(0), text };
            if !well_typed || prev != expected.as_slice() || chain_hash(prev, &fields).as_slice() != hash {
                return Ok(result(false, checked, Some(id)));
            }
            expected = hash.to_vec();
            checked += 1;
        }
        if page < VERIFY_PAGE {
            return Ok(result(true, checked, None));
        }
    }
}

fn blob(v: ValueRef<'_>) -> Option<&[u8]> {
    match v {
        ValueRef::Blob(b) => Some(b),
        _ => None,
    }
}

/// The audit purge job (operations.md §3.6): delete the oldest rows while
/// they are older than `before_ms`, at most [`PURGE_CHUNK`] per transaction,
/// storing the last pruned hash in `audit_anchor` in the same transaction.
/// Only a prefix of the chain is ever removed (a row newer than the cutoff
/// stops the purge even if older rows follow it after a clock step).
pub fn purge(conn: &mut Connection, before_ms: u64) -> rusqlite::Result<u64> {
    let mut total = 0u64;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let keep_from: Option<i64> =
            tx.query_row("SELECT MIN(id) FROM audit_log WHERE ts_ms >= ?1", params![before_ms as i64], |r| r.get(0))?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT id, hash FROM (SELECT id, hash FROM audit_log WHERE id < ?1 ORDER BY id LIMIT ?2) \
                 ORDER BY id DESC LIMIT 1",
                params![keep_from.unwrap_or(i64::MAX), PURGE_CHUNK as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((last_id, last_hash)) = last else {
            tx.commit()?;
            return Ok(total);
        };
        let n = tx.execute("DELETE FROM audit_log WHERE id <= ?1", params![last_id])?;
        tx.execute(
            "INSERT INTO audit_anchor(id, last_pruned_hash) VALUES (1, ?1) \
             ON CONFLICT(id) DO UPDATE SET last_pruned_hash = excluded.last_pruned_hash",
            params![last_hash],
        )?;
        tx.commit()?;
        total += n as u64;
        if n < PURGE_CHUNK {
            return Ok(total);
        }
    }
}

// ---------------------------------------------------------------------------
// Flood control
// ---------------------------------------------------------------------------

struct Window {
    start_ms: u64,
    written: u32,
    suppressed: u64,
}

/// Per (kind, client IP): at most [`FLOOD_ROWS_PER_WINDOW`] rows per
/// [`FLOOD_WINDOW_MS`], then one `audit_summary` row when the window closes
/// with the number suppressed. Owned by the store writer (one instance, so
/// the limit is global, not per reactor). Sans-IO: the caller passes `now`.
#[derive(Default)]
pub struct FloodControl {
    windows: HashMap<(AuditKind, Option<IpAddr>), Window>,
}

impl FloodControl {
    pub fn new() -> FloodControl {
        FloodControl::default()
    }

    /// Whether `e` is written (`false`: counted for the summary). Call
    /// [`FloodControl::due`] with the same `now` first.
    pub fn admit(&mut self, e: &AuditEntry, now_ms: u64) -> bool {
        if !e.kind.flood_controlled() {
            return true;
        }
        let key = (e.kind, e.client_ip);
        if !self.windows.contains_key(&key) && self.windows.len() >= FLOOD_MAX_KEYS {
            self.windows.retain(|_, w| now_ms < w.start_ms + FLOOD_WINDOW_MS || w.suppressed > 0);
            if self.windows.len() >= FLOOD_MAX_KEYS {
                return true;
            }
        }
        let w = self.windows.entry(key).or_insert(Window { start_ms: now_ms, written: 0, suppressed: 0 });
        if now_ms >= w.start_ms + FLOOD_WINDOW_MS {
            *w = Window { start_ms: now_ms, written: 0, suppressed: 0 };
        }
        if w.written < FLOOD_ROWS_PER_WINDOW {
            w.written += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }

    /// Summary rows of every window that closed by `now` with suppressed rows;
    /// closed windows are forgotten.
    pub fn due(&mut self, now_ms: u64) -> Vec<AuditEntry> {
        self.take(|w| now_ms >= w.start_ms + FLOOD_WINDOW_MS, now_ms)
    }

    /// Every pending summary, windows open or not (shutdown).
    pub fn drain(&mut self, now_ms: u64) -> Vec<AuditEntry> {
        self.take(|_| true, now_ms)
    }

    /// When the next summary falls due (ms), if one is pending.
    pub fn next_due(&self) -> Option<u64> {
        self.windows.values().filter(|w| w.suppressed > 0).map(|w| w.start_ms + FLOOD_WINDOW_MS).min()
    }

    fn take(&mut self, closed: impl Fn(&Window) -> bool, now_ms: u64) -> Vec<AuditEntry> {
        let mut out = Vec::new();
        self.windows.retain(|(kind, ip), w| {
            if !closed(w) {
                return true;
            }
            if w.suppressed > 0 {
                let mut d = Map::new();
                d.insert("kind".into(), kind.as_str().into());
                d.insert("count".into(), w.suppressed.into());
                d.insert("window_start_ms".into(), w.start_ms.into());
                d.insert("window_ms".into(), FLOOD_WINDOW_MS.into());
                let mut e = AuditEntry::new(AuditKind::AuditSummary, AuditOutcome::Ok, ActorKind::System)
                    .at(now_ms)
                    .reason(kind.as_str())
                    .detail(Detail::from_map(d));
                e.client_ip = *ip;
                out.push(e);
            }
            false
        });
        out.sort_by(|a, b| (a.reason_str(), a.client_ip).cmp(&(b.reason_str(), b.client_ip)));
        out
    }
}
