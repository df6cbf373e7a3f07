//! The [`Authenticator`]: built once from a validated config (keys loaded, API
//! keys hashed), `Send + Sync`, shared by the reactors as an `Arc` and replaced
//! whole on reload. It answers two questions with an [`AuthDecision`]:
//!
//! * at the upgrade ([`Authenticator::upgrade`]): 401, pre-auth (no credential),
//!   or an authenticated [`Principal`];
//! * at `init` ([`Authenticator::init`]): `AUTH_REQUIRED`, `UNAUTHORIZED`, or the
//!   connection's principal, combining the upgrade's credentials with slot I
//!   under rule 6 of security.md §1.2 and checking the scope `mode` needs.
//!
//! Owns: evaluation of extracted credentials, owner resolution (`via_key`),
//! scopes. Must not: read the clock (callers pass `now`), count failures (the
//! caller feeds [`super::Lockout`] with every refusal), write audit rows, or log
//! credential values.

use std::sync::Arc;

use crate::config::{AuthMode, Config, Secret};
use crate::net::http::{Request, error_response};
use crate::protocol::{ErrorCode, Mode};

use super::apikey::{ApiKeys, KeyId, RandomUnavailable};
use super::credentials::{Modes, Presented, Slot, extract_init, extract_upgrade};
use super::jwt::{JwtPolicy, JwtVerifier};
use super::keys::JwtKey;
use super::owner::ANONYMOUS;
use super::reason::Reason;
use super::revocation::{RevocationKind, Revocations};
use super::{UnixTime, credentials};

/// Scope needed by `init.data.mode = drive`.
pub const SCOPE_DRIVE: &str = "aep:drive";
/// Scope for `observe` (`aep:drive` also allows observing).
pub const SCOPE_OBSERVE: &str = "aep:observe";

/// `audit_log.actor_kind` of an authenticated connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    Anonymous,
    ApiKey,
    Jwt,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Anonymous => "anonymous",
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Jwt => "jwt",
        }
    }
}

/// One verified credential of a connection (never the secret itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Jwt { kid: Option<String>, jti: Option<String>, sub: Arc<str>, exp: u64, scopes: Vec<String> },
    ApiKey { id: KeyId, owner: Arc<str> },
}

/// Who a connection is, over all its credentials (upgrade and `init`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// JWT `sub`, API-key owner, or `anonymous`.
    pub owner: Arc<str>,
    pub kind: PrincipalKind,
    /// An API key presented alongside a JWT: it identifies the calling app (rule 6).
    pub via_key: Option<KeyId>,
    /// JWT scopes (the intersection when several JWTs were presented); both AEP scopes
    /// for API keys and `anonymous`.
    pub scopes: Vec<String>,
    /// Earliest `exp` of the JWTs presented (unix seconds).
    pub expires_at: Option<u64>,
    pub credentials: Vec<Credential>,
}

fn full_scopes() -> Vec<String> {
    vec![SCOPE_DRIVE.to_string(), SCOPE_OBSERVE.to_string()]
}

impl Principal {
    /// Mode `none`.
    pub fn anonymous() -> Principal {
        Principal {
            owner: Arc::from(ANONYMOUS),
            kind: PrincipalKind::Anonymous,
            via_key: None,
            scopes: full_scopes(),
            expires_at: None,
            credentials: Vec::new(),
        }
    }

    /// Whether the scopes allow `init.data.mode` (`drive` needs `aep:drive`; `observe` needs
    /// `aep:observe` or `aep:drive`).
    pub fn allows(&self, mode: Mode) -> bool {
        let has = |s: &str| self.scopes.iter().any(|x| x == s);
        match mode {
            Mode::Drive => has(SCOPE_DRIVE),
            Mode::Observe => has(SCOPE_OBSERVE) || has(SCOPE_DRIVE),
        }
    }

    /// `audit_log.credential_id`: `kid:jti` of the (first) JWT, else the key id, else `-`.
    pub fn credential_id(&self) -> String {
        let jwt = self.credentials.iter().find_map(|c| match c {
            Credential::Jwt { kid, jti, .. } => Some(super::jwt::credential_id(kid.as_deref(), jti.as_deref())),
            Credential::ApiKey { .. } => None,
        });
        jwt.or_else(|| self.via_key.as_ref().map(|k| k.to_string()))
            .or_else(|| {
                self.credentials.iter().find_map(|c| match c {
                    Credential::ApiKey { id, .. } => Some(id.to_string()),
                    Credential::Jwt { .. } => None,
                })
            })
            .unwrap_or_else(|| "-".to_string())
    }

    /// Whether a revocation `(kind, value)` hits one of this connection's credentials
    /// (live connections are closed within 1 s of a revocation, security.md §1.3).
    pub fn revoked_by(&self, kind: RevocationKind, value: &str) -> bool {
        self.credentials.iter().any(|c| match (kind, c) {
            (RevocationKind::Jti, Credential::Jwt { jti: Some(j), .. }) => j == value,
            (RevocationKind::Sub, Credential::Jwt { sub, .. }) => &**sub == value,
            (RevocationKind::ApiKey, Credential::ApiKey { id, .. }) => id.as_str() == value,
            _ => false,
        })
    }

    /// Rule 6 over a list of verified credentials: any JWT decides the owner and all JWTs
    /// must share it (keys alongside become `via_key`); without a JWT all keys must map to
    /// one owner.
    fn resolve(credentials: Vec<Credential>) -> Result<Principal, Reason> {
        let mut subs = credentials.iter().filter_map(|c| match c {
            Credential::Jwt { sub, .. } => Some(sub),
            Credential::ApiKey { .. } => None,
        });
        let mut keys = credentials.iter().filter_map(|c| match c {
            Credential::ApiKey { id, owner } => Some((id, owner)),
            Credential::Jwt { .. } => None,
        });
        if let Some(sub) = subs.next() {
            if subs.any(|s| s != sub) {
                return Err(Reason::OwnerMismatch);
            }
            let mut scopes: Option<Vec<String>> = None;
            let mut expires_at = u64::MAX;
            for c in &credentials {
                if let Credential::Jwt { scopes: s, exp, .. } = c {
                    expires_at = expires_at.min(*exp);
                    scopes = Some(match scopes {
                        None => s.clone(),
                        Some(prev) => prev.into_iter().filter(|x| s.contains(x)).collect(),
                    });
                }
            }
            return Ok(Principal {
                owner: sub.clone(),
                kind: PrincipalKind::Jwt,
                via_key: keys.next().map(|(id, _)| id.clone()),
                scopes: scopes.unwrap_or_default(),
                expires_at: Some(expires_at),
                credentials,
            });
        }
        let Some((_, owner)) = keys.next() else { return Err(Reason::Missing) };
        if keys.any(|(_, o)| o != owner) {
            return Err(Reason::OwnerMismatch);
        }
        Ok(Principal {
            owner: owner.clone(),
            kind: PrincipalKind::ApiKey,
            via_key: None,
            scopes: full_scopes(),
            expires_at: None,
            credentials,
        })
    }
}

/// A refusal: the reason and an identifier for the audit row (never a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    pub reason: Reason,
    /// `kid:jti` or `ak_…` when known.
    pub credential_id: Option<String>,
    /// Where the refused credential came from, when one was evaluated.
    pub source: Option<credentials::Source>,
}

impl AuthFailure {
    fn new(reason: Reason) -> AuthFailure {
        AuthFailure { reason, credential_id: None, source: None }
    }

    /// `hotplex_auth_failures_total{reason}`.
    pub fn label(&self) -> &'static str {
        self.reason.label()
    }

    /// 401 (429 for a lockout) at the upgrade.
    pub fn http_status(&self) -> u16 {
        self.reason.http_status()
    }

    /// `AUTH_REQUIRED` or `UNAUTHORIZED` at init.
    pub fn aep_code(&self) -> ErrorCode {
        self.reason.aep_code()
    }

    /// The fixed client message (`invalid credential`, `credential expired`, …).
    pub fn client_message(&self) -> &'static str {
        self.reason.client_message()
    }

    /// The complete HTTP 401 response of security.md §1.7 (short fixed body).
    pub fn http_response(&self) -> Vec<u8> {
        error_response(
            401,
            "invalid_credentials",
            self.client_message(),
            &[("WWW-Authenticate", r#"Bearer realm="hotplex", error="invalid_token""#)],
        )
    }
}

/// The answer at the upgrade or at init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthDecision {
    /// Authenticated; at init this is the connection's owner from now on.
    Authenticated(Principal),
    /// Upgrade only: no credential presented; the upgrade proceeds as pre-auth (§9.3) and
    /// `init` must carry one.
    PreAuth,
    /// Upgrade: HTTP [`AuthFailure::http_response`]. Init: `error{aep_code, client_message}`
    /// + close 1008. Either way: count a failure for the client IP and write an audit row.
    Refused(AuthFailure),
}

impl AuthDecision {
    pub fn owner(&self) -> Option<&Arc<str>> {
        match self {
            AuthDecision::Authenticated(p) => Some(&p.owner),
            _ => None,
        }
    }

    pub fn principal(&self) -> Option<&Principal> {
        match self {
            AuthDecision::Authenticated(p) => Some(p),
            _ => None,
        }
    }

    pub fn failure(&self) -> Option<&AuthFailure> {
        match self {
            AuthDecision::Refused(f) => Some(f),
            _ => None,
        }
    }
}

/// Everything the authenticator needs, separated from `Config` so tests can build one.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub modes: Vec<AuthMode>,
    pub allow_query_credentials: bool,
    pub jwt_keys: Vec<JwtKey>,
    pub jwt_policy: JwtPolicy,
    /// `(owner, key)` pairs; hashed by [`Authenticator::new`].
    pub api_keys: Vec<(String, Secret)>,
    pub close_on_expiry: bool,
}

impl AuthSettings {
    /// From a config returned by [`crate::config::load`] (JWT keys were loaded and API keys
    /// fetched during validation).
    pub fn from_config(cfg: &Config) -> AuthSettings {
        let s = &cfg.security;
        AuthSettings {
            modes: s.auth.modes.clone(),
            allow_query_credentials: s.auth.allow_query_credentials,
            jwt_keys: cfg.jwt_keys().to_vec(),
            jwt_policy: JwtPolicy::from_config(&s.jwt),
            api_keys: s.api_keys.iter().filter_map(|k| Some((k.owner.clone(), k.value.clone()?))).collect(),
            close_on_expiry: s.jwt.close_on_expiry,
        }
    }
}

/// Authentication for one config generation. `Send + Sync`; share as `Arc<Authenticator>`.
pub struct Authenticator {
    open: bool,
    modes: Modes,
    allow_query: bool,
    jwt: JwtVerifier,
    keys: ApiKeys,
    revocations: Arc<dyn Revocations>,
    close_on_expiry: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("open", &self.open)
            .field("modes", &self.modes)
            .field("allow_query", &self.allow_query)
            .field("jwt", &self.jwt)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Authenticator {
    /// Build from settings; the only failure is an unavailable system RNG (HMAC key).
    pub fn new(settings: &AuthSettings, revocations: Arc<dyn Revocations>) -> Result<Authenticator, RandomUnavailable> {
        let modes =
            Modes { jwt: settings.modes.contains(&AuthMode::Jwt), api_key: settings.modes.contains(&AuthMode::ApiKey) };
        let keys = if modes.api_key {
            ApiKeys::new(settings.api_keys.iter().map(|(o, k)| (o.as_str(), k)))?
        } else {
            ApiKeys::new(std::iter::empty())?
        };
        let jwt_keys: &[JwtKey] = if modes.jwt { &settings.jwt_keys } else { &[] };
        Ok(Authenticator {
            open: settings.modes.contains(&AuthMode::None),
            modes,
            allow_query: settings.allow_query_credentials,
            jwt: JwtVerifier::new(jwt_keys, settings.jwt_policy.clone()),
            keys,
            revocations,
            close_on_expiry: settings.close_on_expiry,
        })
    }

    /// `Authenticator::new(&AuthSettings::from_config(cfg), revocations)`.
    pub fn from_config(cfg: &Config, revocations: Arc<dyn Revocations>) -> Result<Authenticator, RandomUnavailable> {
        Authenticator::new(&AuthSettings::from_config(cfg), revocations)
    }

    /// Auth mode `none`: every connection is `anonymous`, credentials are ignored.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Evaluate the credentials of an upgrade request (security.md §1.2 rule 10: call after
    /// the Host/Origin checks and after [`super::Lockout::check`]).
    pub fn upgrade(&self, req: &Request, now: UnixTime) -> AuthDecision {
        if self.open {
            return AuthDecision::Authenticated(Principal::anonymous());
        }
        let slots = match extract_upgrade(req, self.modes, self.allow_query) {
            Ok(s) => s,
            Err(r) => return AuthDecision::Refused(AuthFailure::new(r)),
        };
        let mut creds = Vec::with_capacity(2);
        for (slot, p) in [(Slot::Jwt, &slots.jwt), (Slot::Key, &slots.key)] {
            if let Some(p) = p {
                match self.evaluate(slot, p, now) {
                    Ok(c) => creds.push(c),
                    Err(f) => return AuthDecision::Refused(f),
                }
            }
        }
        if creds.is_empty() {
            return AuthDecision::PreAuth;
        }
        match Principal::resolve(creds) {
            Ok(p) => AuthDecision::Authenticated(p),
            Err(r) => AuthDecision::Refused(AuthFailure::new(r)),
        }
    }

    /// Decide `init`: `upgraded` is the principal of the upgrade (`None` = pre-auth),
    /// `token` is `init.data.auth.token`, `mode` the effective `init.data.mode`.
    pub fn init(&self, upgraded: Option<&Principal>, token: Option<&str>, mode: Mode, now: UnixTime) -> AuthDecision {
        if self.open {
            return AuthDecision::Authenticated(Principal::anonymous());
        }
        let principal = match (upgraded, token.map(|t| extract_init(t, self.modes))) {
            (None, None) => return AuthDecision::Refused(AuthFailure::new(Reason::Missing)),
            (Some(p), None) => p.clone(),
            (before, Some((slot, presented))) => {
                let cred = match self.evaluate(slot, &presented, now) {
                    Ok(c) => c,
                    Err(f) => return AuthDecision::Refused(f),
                };
                let mut all = before.map(|p| p.credentials.clone()).unwrap_or_default();
                all.push(cred);
                match Principal::resolve(all) {
                    Ok(p) => p,
                    Err(r) => return AuthDecision::Refused(AuthFailure::new(r)),
                }
            }
        };
        if !principal.allows(mode) {
            let mut f = AuthFailure::new(Reason::MissingScope);
            f.credential_id = Some(principal.credential_id());
            return AuthDecision::Refused(f);
        }
        AuthDecision::Authenticated(principal)
    }

    /// Evaluate one presented value in its slot.
    fn evaluate(&self, slot: Slot, p: &Presented, now: UnixTime) -> Result<Credential, AuthFailure> {
        let value = p.value.expose();
        let fail = |reason: Reason, credential_id: Option<String>| AuthFailure {
            reason,
            credential_id,
            source: Some(p.source),
        };
        match slot {
            Slot::Jwt => match self.jwt.verify(value.as_bytes(), now, &*self.revocations) {
                Ok(c) => {
                    Ok(Credential::Jwt { kid: c.kid, jti: c.jti, sub: Arc::from(c.sub), exp: c.exp, scopes: c.scopes })
                }
                Err(e) => Err(fail(e.reason, Some(e.credential_id()))),
            },
            Slot::Key => match self.keys.lookup(value) {
                Ok(m) if self.revocations.is_revoked(RevocationKind::ApiKey, m.id.as_str(), now) => {
                    Err(fail(Reason::Revoked, Some(m.id.to_string())))
                }
                Ok(m) => Ok(Credential::ApiKey { id: m.id, owner: m.owner }),
                Err(Reason::UnknownKey) => Err(fail(Reason::UnknownKey, Some(KeyId::of(value).to_string()))),
                Err(r) => Err(fail(r, None)),
            },
        }
    }

    /// Whether any credential of `p` is revoked at `now` (for the live-connection sweep).
    pub fn revoked(&self, p: &Principal, now: UnixTime) -> bool {
        p.credentials.iter().any(|c| match c {
            Credential::Jwt { jti, sub, .. } => {
                jti.as_deref().is_some_and(|j| self.revocations.is_revoked(RevocationKind::Jti, j, now))
                    || self.revocations.is_revoked(RevocationKind::Sub, sub, now)
            }
            Credential::ApiKey { id, .. } => self.revocations.is_revoked(RevocationKind::ApiKey, id.as_str(), now),
        })
    }

    /// With `security.jwt.close_on_expiry`: when to close the connection (`exp + leeway`,
    /// unix seconds); `None` otherwise or for credentials without expiry.
    pub fn close_deadline(&self, p: &Principal) -> Option<u64> {
        if !self.close_on_expiry {
            return None;
        }
        p.expires_at.map(|e| e.saturating_add(self.jwt.policy().leeway_secs))
    }

    /// The JWT verifier (for tools and tests).
    pub fn jwt(&self) -> &JwtVerifier {
        &self.jwt
    }
}
