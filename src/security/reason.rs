//! Why a credential was refused: one closed set of machine codes (security.md
//! §1.3 JWT reasons, §1.2 presentation, §1.4 API keys, §1.7 init and lockout),
//! each mapped once to the `hotplex_auth_failures_total{reason}` label of
//! operations.md §5.2, the HTTP status, the AEP error code and the fixed
//! client message (security.md §10.2).
//!
//! Owns: these names and mappings. Must not: carry any credential text.

use crate::protocol::codes::ErrorCode;

/// A refusal reason. [`Reason::code`] goes to logs and the audit row; clients see only
/// [`Reason::client_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    // JWT verification, security.md §1.3 steps 1–20
    TooLarge,
    Malformed,
    AlgRejected,
    TypRejected,
    CritRejected,
    UnknownKid,
    KidRequired,
    BadSignature,
    MalformedClaims,
    MissingClaim,
    Expired,
    NotYetValid,
    IatFuture,
    WrongIssuer,
    WrongAudience,
    BadSubject,
    LifetimeExceeded,
    Revoked,
    // API keys, §1.4
    /// Wrong length or characters (a value over 256 bytes is refused before hashing).
    KeyMalformed,
    /// Well-formed, matches no configured key.
    UnknownKey,
    // presentation, §1.2
    /// A slot filled twice or a source repeated (rule 1).
    AmbiguousCredentials,
    /// `Authorization` that is not exactly `Bearer <token68>` (rule 2).
    BadAuthorization,
    /// A credential query value with an invalid escape or not UTF-8 (rule 3).
    BadQueryEncoding,
    /// `?token=`/`?api_key=` while `security.auth.allow_query_credentials` is false.
    QueryCredentialsDisabled,
    // init and connection-level, §1.2 rules 6–8, §1.7
    /// No credential where one is needed (`AUTH_REQUIRED`).
    Missing,
    /// Credentials of one connection resolve to different owners (rule 6).
    OwnerMismatch,
    /// The credential lacks the scope `init.data.mode` needs.
    MissingScope,
    /// The client IP is locked out (429).
    LockedOut,
}

impl Reason {
    /// Every reason, for metric pre-registration and tests.
    pub const ALL: [Reason; 28] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::AlgRejected,
        Reason::TypRejected,
        Reason::CritRejected,
        Reason::UnknownKid,
        Reason::KidRequired,
        Reason::BadSignature,
        Reason::MalformedClaims,
        Reason::MissingClaim,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::IatFuture,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::BadSubject,
        Reason::LifetimeExceeded,
        Reason::Revoked,
        Reason::KeyMalformed,
        Reason::UnknownKey,
        Reason::AmbiguousCredentials,
        Reason::BadAuthorization,
        Reason::BadQueryEncoding,
        Reason::QueryCredentialsDisabled,
        Reason::Missing,
        Reason::OwnerMismatch,
        Reason::MissingScope,
        Reason::LockedOut,
    ];

    /// The machine code for logs and `audit_log.reason`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::AlgRejected => "alg_rejected",
            Reason::TypRejected => "typ_rejected",
            Reason::CritRejected => "crit_rejected",
            Reason::UnknownKid => "unknown_kid",
            Reason::KidRequired => "kid_required",
            Reason::BadSignature => "bad_signature",
            Reason::MalformedClaims => "malformed_claims",
            Reason::MissingClaim => "missing_claim",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IatFuture => "iat_future",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::BadSubject => "bad_subject",
            Reason::LifetimeExceeded => "lifetime_exceeded",
            Reason::Revoked => "revoked",
            Reason::KeyMalformed => "key_malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::AmbiguousCredentials => "ambiguous_credentials",
            Reason::BadAuthorization => "bad_authorization",
            Reason::BadQueryEncoding => "bad_query_encoding",
            Reason::QueryCredentialsDisabled => "query_credentials_disabled",
            Reason::Missing => "missing",
            Reason::OwnerMismatch => "owner_mismatch",
            Reason::MissingScope => "missing_scope",
            Reason::LockedOut => "locked_out",
        }
    }

    /// The closed `reason` label of `hotplex_auth_failures_total` (operations.md §5.2 table).
    pub fn label(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::TooLarge
            | Reason::Malformed
            | Reason::MalformedClaims
            | Reason::MissingClaim
            | Reason::AlgRejected
            | Reason::TypRejected
            | Reason::CritRejected
            | Reason::KidRequired
            | Reason::BadSubject
            | Reason::AmbiguousCredentials
            | Reason::BadAuthorization
            | Reason::BadQueryEncoding
            | Reason::QueryCredentialsDisabled
            | Reason::KeyMalformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::Expired | Reason::LifetimeExceeded => "expired",
            Reason::NotYetValid | Reason::IatFuture => "not_yet_valid",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::Revoked => "revoked",
            Reason::UnknownKid | Reason::UnknownKey => "unknown_key",
            Reason::OwnerMismatch | Reason::MissingScope => "scope",
            Reason::LockedOut => "ip",
        }
    }

    /// The only text a client sees (security.md §10.2).
    pub fn client_message(self) -> &'static str {
        match self {
            Reason::Expired => "credential expired",
            Reason::Missing => "authentication required",
            Reason::LockedOut => "too many failed authentication attempts",
            _ => "invalid credential",
        }
    }

    /// HTTP status when refused at the upgrade (or on `/api/…`).
    pub fn http_status(self) -> u16 {
        match self {
            Reason::LockedOut => 429,
            _ => 401,
        }
    }

    /// AEP error code when refused at `init` (security.md §1.7).
    pub fn aep_code(self) -> ErrorCode {
        match self {
            Reason::Missing => ErrorCode::AuthRequired,
            _ => ErrorCode::Unauthorized,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Labels allowed by operations.md §5.2 for `hotplex_auth_failures_total{reason}`.
pub const LABELS: [&str; 11] = [
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "revoked",
    "unknown_key",
    "scope",
    "ip",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_closed_set_and_codes_unique() {
        let mut codes = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(LABELS.contains(&r.label()), "{r}");
            assert!(codes.insert(r.code()), "duplicate code {r}");
        }
        for l in LABELS {
            assert!(Reason::ALL.iter().any(|r| r.label() == l), "label {l} unused");
        }
        assert_eq!(Reason::Expired.client_message(), "credential expired");
        assert_eq!(Reason::WrongAudience.client_message(), "invalid credential");
        assert_eq!(Reason::Missing.aep_code(), ErrorCode::AuthRequired);
        assert_eq!(Reason::BadSignature.aep_code(), ErrorCode::Unauthorized);
    }
}
