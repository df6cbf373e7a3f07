//! `security.jwt.close_on_expiry` (security.md §1.3): a live connection
//! authenticated by a JWT is closed at `exp + leeway` with
//! `error{UNAUTHORIZED, "credential expired"}` and close 1008; its session
//! keeps running, the client reconnects with a fresh token and `last_seq`.
//!
//! Owns arming the deadline (once the connection is attached on its home
//! reactor, so the timer lives where the connection does) and acting on it.
//! The deadline itself is `Authenticator::close_deadline`'s. Must not touch
//! revocation (the admin path closes revoked connections).

use std::time::Duration;

use super::Reactor;
use super::client::Stage;
use super::timer::{Owner, TimerKind};
use super::token::Key;
use crate::protocol::{ErrorCode, close};

impl Reactor {
    /// Arm the expiry close of an attached connection, if its credential has one.
    pub fn arm_credential_expiry(&mut self, key: Key) {
        let Some(p) = self.client(key).and_then(|c| c.principal.as_ref()) else { return };
        let Some(deadline_s) = self.shared.auth().close_deadline(p) else { return };
        let delay_ms = deadline_s.saturating_mul(1000).saturating_sub(crate::protocol::now_ms());
        self.timers.after(Duration::from_millis(delay_ms), Owner::Conn(key.into()), TimerKind::CredentialExpiry);
    }

    /// The credential of an attached connection expired.
    pub fn on_credential_expiry(&mut self, key: Key) {
        let Some(c) = self.client(key) else { return };
        if c.conn.is_closing() || !matches!(c.stage, Stage::Attached { .. }) {
            return;
        }
        log::info!("credential expired: closing the connection (security.jwt.close_on_expiry)");
        self.send_error(key, ErrorCode::Unauthorized, "credential expired", None, None);
        self.close_client(key, close::POLICY, "credential expired", false);
    }
}
