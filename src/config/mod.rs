//! Configuration: raw YAML, the `--dev` profile and `HOTPLEX__…` overrides in,
//! a validated [`Config`] out (operations.md §1, security.md §0.1).
//!
//! ```no_run
//! use hotplex::adapters::WorkerType;
//! use hotplex::config::{self, LoadOptions};
//!
//! let opts = LoadOptions::from_process(None, false); // --config falls back to HOTPLEX_CONFIG
//! match config::load(&opts) {
//!     Ok(loaded) => {
//!         for w in &loaded.warnings { eprintln!("{w}"); }
//!         let cfg = loaded.config;
//!         let _ping = cfg.gateway.ping_interval;                      // Duration
//!         let _claude = cfg.worker(WorkerType::ClaudeCode).map(|w| &w.program);
//!         let _modes = &cfg.security.auth.modes;                      // [AuthMode::None]
//!     }
//!     Err(errors) => { eprintln!("{errors}"); std::process::exit(2) }
//! }
//! ```
//!
//! Files: `types*.rs` (shape and defaults), `units.rs` (durations, sizes,
//! addresses, CIDRs), `secret.rs` (redacted secrets), `tree.rs` (YAML layers
//! and merge), `de.rs` (located deserialisation), `env.rs` (overrides),
//! `load.rs` (pipeline), `validate*.rs` (rules), `resolve.rs` (worker programs,
//! file system checks), `error.rs` (error lines).
//!
//! This module must not do I/O beyond reading the config file, secret files
//! and JWT key files, and stat-ing paths and commands; it never logs and never puts a
//! secret value into an error, a `Debug` string or serialised output.

mod de;
mod env;
mod error;
mod load;
mod resolve;
mod secret;
mod tree;
mod types;
mod types_security;
mod types_workers;
mod units;
mod validate;
mod validate_security;

#[cfg(test)]
mod tests;

pub use env::PREFIX as ENV_PREFIX;
pub use error::{ConfigError, ConfigErrors, ConfigWarning, did_you_mean, edit_distance};
pub use load::{CONFIG_ENV, DEV_PROFILE, LoadOptions, Loaded, config_path, load, load_adjusted, load_in};
pub use resolve::{ResolveError, ResolvedWorker, resolve_command};
pub use secret::{Secret, SecretSource, SecretValue};
pub use types::*;
pub use units::{
    Cidr, DURATION_NEEDS_UNIT, Enabled, Umask, format_duration, is_loopback, parse_duration, parse_listen, parse_size,
};
pub use validate::{OWNER_HASH, SESSION_ID};
pub use validate_security::S3_MESSAGE;

use crate::adapters::WorkerType;

impl Config {
    /// The resolved worker of an enabled type (`None`: disabled, or `auto` and not found).
    /// Only meaningful on a config returned by [`load`].
    pub fn worker(&self, t: WorkerType) -> Option<&ResolvedWorker> {
        self.resolved.workers.iter().find(|w| w.worker_type == t)
    }

    /// Every enabled worker type with its pinned program.
    pub fn enabled_workers(&self) -> &[ResolvedWorker] {
        &self.resolved.workers
    }

    /// Loaded with `--dev`: admin authentication is disabled (listeners are loopback-only).
    pub fn dev(&self) -> bool {
        self.resolved.dev
    }

    /// The JWT verification keys loaded from `security.jwt.public_keys` and `jwks_file`
    /// during validation (S3). Only meaningful on a config returned by [`load`].
    pub fn jwt_keys(&self) -> &[crate::security::JwtKey] {
        &self.resolved.jwt_keys
    }
}

/// The effective configuration as pretty JSON, secrets shown as `"***"` (`--print-config`,
/// `GET /admin/config`).
pub fn print_json(cfg: &Config) -> String {
    match serde_json::to_string_pretty(cfg) {
        Ok(s) => s,
        Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
    }
}
