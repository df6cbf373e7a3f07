-- Migration 0001: the initial schema (operations.md §3.2). Never edit after release;
-- add 0002_*.sql instead.

CREATE TABLE schema_version (
  version     INTEGER PRIMARY KEY,      -- 1, 2, …
  name        TEXT    NOT NULL,         -- "0001_init"
  applied_at  INTEGER NOT NULL,         -- unix ms
  app_version TEXT    NOT NULL          -- hotplex version that applied it
) STRICT;

CREATE TABLE meta (                     -- instance_id, clean_shutdown ('0'|'1'), started_at, heartbeat
  key TEXT PRIMARY KEY, value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE sessions (
  id                 TEXT    PRIMARY KEY,           -- lowercase UUID
  owner              TEXT    NOT NULL,              -- authenticated principal
  worker_type        TEXT    NOT NULL,              -- claude_code | opencode_cli | opencode_server | acpx | pi
  client_session_id  TEXT,                          -- client key from init; NULL if server-generated
  worker_session_id  TEXT,                          -- agent-side conversation id (resume)
  work_dir           TEXT    NOT NULL,              -- canonical absolute path
  state              TEXT    NOT NULL CHECK (state IN ('created','idle','running','terminated','deleted')),
  state_reason       TEXT,                          -- §2.1 reasons
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  last_active_at     INTEGER NOT NULL,
  live_since         INTEGER,                       -- start of the current live period
  terminated_at      INTEGER,                       -- entering terminated / deleted
  turns              INTEGER NOT NULL DEFAULT 0,
  last_seq           INTEGER NOT NULL DEFAULT 0,    -- highest seq assigned (persisted or not)
  config_json        TEXT    NOT NULL DEFAULT '{}', -- effective init.config after policy
  worker_pid         INTEGER,                       -- process-group leader of the live worker
  worker_start_ticks INTEGER,                       -- /proc/<pid>/stat starttime (pid-reuse guard)
  input_tokens       INTEGER NOT NULL DEFAULT 0,    -- stats totals, summed from done.stats
  output_tokens      INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
  cache_write_tokens INTEGER NOT NULL DEFAULT 0,
  cost_usd           REAL    NOT NULL DEFAULT 0,
  tool_calls         INTEGER NOT NULL DEFAULT 0,
  turn_ms            INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX sessions_owner_updated ON sessions(owner, updated_at DESC);
CREATE INDEX sessions_state_active  ON sessions(state, last_active_at);
CREATE INDEX sessions_terminated    ON sessions(terminated_at) WHERE terminated_at IS NOT NULL;

CREATE TABLE events (                   -- S→C session events (not connection-local ones)
  session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  seq        INTEGER NOT NULL,          -- for a merged row: the last absorbed seq
  seq_first  INTEGER,                   -- merged message.delta rows: first absorbed seq
  type       TEXT    NOT NULL,          -- aep event.type
  ts         INTEGER NOT NULL,          -- envelope timestamp (ms)
  data       TEXT    NOT NULL,          -- event.data JSON exactly as sent (merged: content concatenated)
  splits     TEXT,                      -- merged rows: JSON array of part byte lengths
  PRIMARY KEY (session_id, seq)
) STRICT;                               -- rowid table: payloads can be MBs (tool output); inserts stay appends

CREATE TABLE turns (
  session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  turn       INTEGER NOT NULL,          -- 1-based
  start_seq  INTEGER NOT NULL,          -- seq of the state{running} that opened it
  end_seq    INTEGER,                   -- seq of its done
  started_at INTEGER NOT NULL,
  ended_at   INTEGER,
  input      TEXT    NOT NULL,          -- {"content":…, "metadata":…} as accepted
  success    INTEGER,                   -- 0/1; NULL while running
  stats      TEXT,                      -- done.stats JSON
  PRIMARY KEY (session_id, turn)
) STRICT;

CREATE TABLE message_snapshots (        -- full text of messages whose deltas were trimmed (§3.6)
  session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  message_id TEXT    NOT NULL,
  last_seq   INTEGER NOT NULL,          -- seq of the last delta folded in
  content    TEXT    NOT NULL,
  PRIMARY KEY (session_id, message_id)
) STRICT;

-- Security-owned tables: security.md's schemas verbatim (§10.3 audit_log/audit_anchor,
-- §1.3 revocations, §3 owner_uids); that file defines their semantics.
CREATE TABLE audit_log (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  ts_ms         INTEGER NOT NULL,
  kind          TEXT NOT NULL,   -- auth_failure, auth_success, admin_action, admin_auth_failure,
                                 -- policy_violation, session_foreign_probe, permission_decision,
                                 -- revocation, config_reload, startup, shutdown, rate_limit_close,
                                 -- audit_summary
  outcome       TEXT NOT NULL,   -- ok | denied | error
  reason        TEXT,            -- machine code, e.g. expired, unknown_kid, work_dir_escape
  actor_kind    TEXT NOT NULL,   -- unauthenticated | anonymous | api_key | jwt | admin_token | system
  actor_id      TEXT,            -- owner id or admin token name
  credential_id TEXT,            -- ak_…, kid:jti, token name; never a secret
  client_ip     TEXT,
  session_id    TEXT,
  detail        TEXT,            -- JSON object ≤ 4 KiB, redacted, no content
  prev_hash     BLOB NOT NULL,   -- 32 bytes, zeros for the first row
  hash          BLOB NOT NULL    -- SHA-256(prev_hash ‖ len-prefixed fields of this row)
);
CREATE INDEX audit_ts ON audit_log(ts_ms);
CREATE INDEX audit_session ON audit_log(session_id, ts_ms);
CREATE TABLE audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1), last_pruned_hash BLOB NOT NULL);

CREATE TABLE revocations(kind TEXT CHECK(kind IN ('jti','sub','api_key')),
  value TEXT, until_ms INTEGER, created_ms INTEGER, actor TEXT, PRIMARY KEY(kind, value));

CREATE TABLE owner_uids(owner TEXT PRIMARY KEY, uid INTEGER UNIQUE);
