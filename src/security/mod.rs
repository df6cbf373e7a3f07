//! Authentication (security.md §1): JWT (ES256) and API-key verification,
//! where credentials may be presented, owner resolution, the per-IP failure
//! lockout, and `hotplex token` minting. Pure, sans-IO modules: time comes in
//! as a parameter, revocations through a caller-supplied [`Revocations`].
//!
//! At the upgrade (after path/method/WS headers, Host and Origin, rule 10 of §1.2):
//!
//! ```no_run
//! # use std::sync::Arc; use std::time::Instant;
//! # use hotplex::security::*;
//! # fn f(auth: &Arc<Authenticator>, lockout: &Lockout, req: &hotplex::net::http::Request, ip: std::net::IpAddr) {
//! if let Err(locked) = lockout.check(ip, Instant::now()) {
//!     let _resp: Vec<u8> = locked.response(); // 429 + Retry-After, nothing evaluated
//!     return;
//! }
//! match auth.upgrade(req, UnixTime::now()) {
//!     AuthDecision::Authenticated(_principal) => { /* 101; keep the principal for init */ }
//!     AuthDecision::PreAuth => { /* 101; pre-auth connection, init must authenticate */ }
//!     AuthDecision::Refused(failure) => {
//!         lockout.record_failure(ip, Instant::now());
//!         let _resp: Vec<u8> = failure.http_response(); // 401, audit reason failure.reason.code()
//!     }
//! }
//! # }
//! ```
//!
//! At `init`: `auth.init(upgrade_principal.as_ref(), init.auth_token.as_deref(), mode, UnixTime::now())`
//! gives `Authenticated(principal)` (the owner from now on) or `Refused(f)` →
//! `error{f.aep_code(), f.client_message()}` + close 1008, and a lockout failure.
//!
//! Files: `b64.rs` (strict base64), `keys.rs` (PEM/JWKS loading), `jwt.rs`
//! (verification), `apikey.rs` (keyed-hash lookup), `credentials.rs`
//! (presentation rules), `authenticator.rs` (decisions, owners, scopes),
//! `lockout.rs`, `revocation.rs`, `reason.rs` (codes → metric labels),
//! `owner.rs` (§2.1), `mint.rs` (`hotplex token`); `audit.rs` (§10.3
//! hash-chained audit rows) and `ssrf.rs` (§8 outbound URL guard).
//!
//! Must not: do network I/O, log or `Debug`-print a credential, or compare a
//! secret in variable time.

pub mod apikey;
pub mod audit;
pub mod authenticator;
pub mod b64;
pub mod credentials;
pub mod jwt;
pub mod keys;
pub mod lockout;
pub mod mint;
pub mod owner;
pub mod reason;
pub mod revocation;
pub mod ssrf;

pub use apikey::{ApiKeys, KeyId, KeyMatch};
pub use authenticator::{
    AuthDecision, AuthFailure, AuthSettings, Authenticator, Credential, Principal, PrincipalKind, SCOPE_DRIVE,
    SCOPE_OBSERVE,
};
pub use jwt::{Claims, JwtError, JwtPolicy, JwtVerifier, fuzz_jwt};
pub use keys::JwtKey;
pub use lockout::{LockedOut, Lockout, LockoutPolicy};
pub use reason::Reason;
pub use revocation::{NoRevocations, RevocationKind, RevocationTable, Revocations};

/// Wall-clock time in milliseconds since the Unix epoch, passed in by callers (tests inject it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(u64);

impl UnixTime {
    pub fn from_secs(secs: u64) -> UnixTime {
        UnixTime(secs.saturating_mul(1000))
    }

    pub fn from_millis(ms: u64) -> UnixTime {
        UnixTime(ms)
    }

    /// The system clock (a clock before 1970 reads as 0).
    pub fn now() -> UnixTime {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        UnixTime(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Whole seconds (floored): the `now` of JWT time checks.
    pub fn secs(self) -> u64 {
        self.0 / 1000
    }

    pub fn ms(self) -> u64 {
        self.0
    }
}

/// `cargo fuzz` entry (`b64url`): strict decoding accepts only canonical input.
pub fn fuzz_b64url(bytes: &[u8]) {
    if let Ok(decoded) = b64::decode_url(bytes) {
        assert_eq!(b64::encode_url(&decoded).as_bytes(), bytes, "accepted a non-canonical encoding");
    }
    if let Ok(decoded) = b64::decode_std(bytes) {
        assert_eq!(b64::encode_std(&decoded).as_bytes(), bytes, "accepted a non-canonical encoding");
    }
}

/// `cargo fuzz` entry (`jwks_pem_load`): any file bytes as a JWKS and as a PEM key.
/// Accepted ⇒ only public P-256 keys with unique kids.
pub fn fuzz_key_file(bytes: &[u8]) {
    if let Ok(set) = keys::parse_jwks(bytes) {
        let mut kids = std::collections::HashSet::new();
        assert!(set.keys.len() <= keys::MAX_KEYS);
        assert!(set.keys.iter().all(|k| k.point[0] == 4 && kids.insert(k.kid.clone())));
    }
    if let Ok(point) = keys::parse_pem_public_key(bytes) {
        assert_eq!(point[0], 4);
    }
}
