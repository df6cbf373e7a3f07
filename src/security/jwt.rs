//! JWT verification, ES256 only (security.md §1.3): the twenty steps in their
//! order, the first failure deciding the [`Reason`]. Keys come from
//! [`super::keys`]; the clock and the revocation table are parameters, so the
//! verifier is a pure function of (token, keys, policy, now, revocations).
//!
//! Owns: the verification order, claim typing (NumericDate, `scopes`/`scope`,
//! `aud` arrays), scope defaults. Must not: fetch or build keys from header
//! members (`jku`, `jwk`, `x5u`, `x5c`, … are ignored), fall back to another key
//! when a `kid` matches none, key anything on the token string (ECDSA
//! signatures are malleable), log, or put token text into an error.

use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::keys::{JwtKey, MAX_KID_BYTES};
use super::owner::valid_credential_owner;
use super::reason::Reason;
use super::revocation::{RevocationKind, Revocations};
use super::{UnixTime, b64};
use crate::config::Jwt;
use crate::protocol::strict_json;

/// Largest NumericDate accepted (2^53, the exact-integer range of an f64).
const MAX_NUMERIC_DATE: u64 = 1 << 53;
/// `scopes` entries: at most this many, each 1–[`MAX_SCOPE_BYTES`] bytes.
pub const MAX_SCOPES: usize = 64;
pub const MAX_SCOPE_BYTES: usize = 128;
/// Largest `jti` in bytes.
pub const MAX_JTI_BYTES: usize = 128;
/// Most entries of an `aud` array.
pub const MAX_AUD_ENTRIES: usize = 16;
/// Nesting limit for header and payload JSON.
const MAX_DEPTH: usize = 32;
/// `typ` values accepted (case-insensitive).
const TYPES: [&str; 3] = ["JWT", "at+jwt", "application/at+jwt"];

/// What `security.jwt` asks of a token, apart from the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtPolicy {
    /// Empty = `iss` not checked.
    pub issuers: Vec<String>,
    /// Empty = every token fails `wrong_audience` (config validation refuses that in jwt mode).
    pub audiences: Vec<String>,
    pub leeway_secs: u64,
    pub max_token_bytes: usize,
    /// 0 = off.
    pub max_lifetime_secs: u64,
    pub default_scopes: Vec<String>,
    pub require_scopes: bool,
}

impl JwtPolicy {
    pub fn from_config(jwt: &Jwt) -> JwtPolicy {
        JwtPolicy {
            issuers: jwt.issuer.clone(),
            audiences: jwt.audience.clone(),
            leeway_secs: jwt.leeway.as_secs(),
            max_token_bytes: usize::try_from(jwt.max_token_bytes).unwrap_or(usize::MAX),
            max_lifetime_secs: jwt.max_lifetime.as_secs(),
            default_scopes: jwt.default_scopes.clone(),
            require_scopes: jwt.require_scopes,
        }
    }
}

/// The verified claims a connection is authenticated with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The owner id (§2.1).
    pub sub: String,
    /// `scopes`, else `scope` split on spaces, else `default_scopes`.
    pub scopes: Vec<String>,
    pub jti: Option<String>,
    /// Expiry, unix seconds (floored).
    pub exp: u64,
    pub iat: Option<u64>,
    pub nbf: Option<u64>,
    pub iss: Option<String>,
    /// The `kid` of the header (absent when the only key was used without one).
    pub kid: Option<String>,
}

impl Claims {
    /// `kid:jti` for audit rows (`-` for an absent part), printable ASCII only.
    pub fn credential_id(&self) -> String {
        credential_id(self.kid.as_deref(), self.jti.as_deref())
    }
}

/// A refused token: the reason and what is known to identify it in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtError {
    pub reason: Reason,
    /// The header `kid` once the header was parsed and the kid well-formed.
    pub kid: Option<String>,
    /// The `jti` once the payload was parsed (only after the signature verified).
    pub jti: Option<String>,
}

impl JwtError {
    /// The metric label (operations.md §5.2).
    pub fn label(&self) -> &'static str {
        self.reason.label()
    }

    /// `kid:jti` for audit rows (`k1:-` when the payload was not parsed).
    pub fn credential_id(&self) -> String {
        credential_id(self.kid.as_deref(), self.jti.as_deref())
    }
}

pub(crate) fn credential_id(kid: Option<&str>, jti: Option<&str>) -> String {
    let clean = |s: Option<&str>| match s {
        None => "-".to_string(),
        Some(s) => s.chars().map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect(),
    };
    format!("{}:{}", clean(kid), clean(jti))
}

struct VerifyKey {
    kid: String,
    key: UnparsedPublicKey<[u8; 65]>,
}

/// An ES256 verifier over a fixed key set and policy. Cheap to share (`Send + Sync`).
pub struct JwtVerifier {
    keys: Vec<VerifyKey>,
    policy: JwtPolicy,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("JwtVerifier").field("kids", &kids).field("policy", &self.policy).finish()
    }
}

/// Parse a JSON object with duplicate-key rejection and the depth limit.
fn json_object(segment: &[u8]) -> Option<Map<String, Value>> {
    let bytes = b64::decode_url(segment).ok()?;
    match strict_json::parse(&bytes, MAX_DEPTH) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// A NumericDate: a finite JSON number in 0..=2^53, floored to whole seconds.
fn numeric_date(v: &Value) -> Option<u64> {
    let Value::Number(n) = v else { return None };
    if let Some(u) = n.as_u64() {
        return (u <= MAX_NUMERIC_DATE).then_some(u);
    }
    if n.is_i64() {
        return None; // negative integer
    }
    let f = n.as_f64()?;
    (f.is_finite() && (0.0..=MAX_NUMERIC_DATE as f64).contains(&f)).then(|| f.floor() as u64)
}

fn scope_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SCOPE_BYTES
}

impl JwtVerifier {
    pub fn new(keys: &[JwtKey], policy: JwtPolicy) -> JwtVerifier {
        let keys = keys
            .iter()
            .map(|k| VerifyKey { kid: k.kid.clone(), key: UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.point) })
            .collect();
        JwtVerifier { keys, policy }
    }

    pub fn policy(&self) -> &JwtPolicy {
        &self.policy
    }

    /// Number of keys loaded.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verify `token` (the compact serialisation, exactly as received) at `now`.
    pub fn verify(&self, token: &[u8], now: UnixTime, revocations: &dyn Revocations) -> Result<Claims, JwtError> {
        let mut kid: Option<String> = None;
        let mut jti: Option<String> = None;
        macro_rules! fail {
            ($r:expr) => {
                return Err(JwtError { reason: $r, kid, jti })
            };
        }
        // 1. size, before any decoding
        if token.len() > self.policy.max_token_bytes {
            fail!(Reason::TooLarge);
        }
        // 2. shape and alphabet
        let mut parts = token.split(|&b| b == b'.');
        let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            fail!(Reason::Malformed)
        };
        let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        if h64.is_empty() || p64.is_empty() || !token.iter().all(|b| *b == b'.' || alphabet(b)) {
            fail!(Reason::Malformed);
        }
        // 3. header: strict base64url, JSON object, no duplicate keys
        let Some(header) = json_object(h64) else { fail!(Reason::Malformed) };
        // 4. alg
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            fail!(Reason::AlgRejected);
        }
        // 5. typ
        match header.get("typ") {
            None => {}
            Some(Value::String(t)) if TYPES.iter().any(|ok| t.eq_ignore_ascii_case(ok)) => {}
            Some(_) => fail!(Reason::TypRejected),
        }
        // 6. crit
        if header.contains_key("crit") {
            fail!(Reason::CritRejected);
        }
        // 7. kid
        match header.get("kid") {
            None => {}
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID_BYTES => kid = Some(k.clone()),
            Some(_) => fail!(Reason::Malformed),
        }
        // 8. key: exact kid, no fallback; no kid only with exactly one key
        let key = match &kid {
            Some(k) => match self.keys.iter().find(|v| v.kid.as_bytes() == k.as_bytes()) {
                Some(v) => v,
                None => fail!(Reason::UnknownKid),
            },
            None => match self.keys.as_slice() {
                [only] => only,
                [] => fail!(Reason::UnknownKid),
                _ => fail!(Reason::KidRequired),
            },
        };
        // 9. signature: strict base64url, raw r‖s of 64 bytes, over the received bytes
        let Ok(sig) = b64::decode_url(s64) else { fail!(Reason::Malformed) };
        if sig.len() != 64 {
            fail!(Reason::BadSignature);
        }
        let signed = &token[..h64.len() + 1 + p64.len()];
        if key.key.verify(signed, &sig).is_err() {
            fail!(Reason::BadSignature);
        }
        // 10. payload, only now
        let Some(claims) = json_object(p64) else { fail!(Reason::MalformedClaims) };
        if let Some(Value::String(j)) = claims.get("jti") {
            if j.len() <= MAX_JTI_BYTES {
                jti = Some(j.clone());
            }
        }
        // 11. required claims
        let (Some(exp_v), Some(sub_v)) = (claims.get("exp"), claims.get("sub")) else { fail!(Reason::MissingClaim) };
        let has_scopes = claims.contains_key("scopes") || claims.contains_key("scope");
        if self.policy.require_scopes && !has_scopes {
            fail!(Reason::MissingClaim);
        }
        // 12. claim types
        let Some(exp) = numeric_date(exp_v) else { fail!(Reason::MalformedClaims) };
        let date = |name: &str| -> Result<Option<u64>, ()> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => numeric_date(v).map(Some).ok_or(()),
            }
        };
        let (Ok(nbf), Ok(iat)) = (date("nbf"), date("iat")) else { fail!(Reason::MalformedClaims) };
        let scopes: Option<Vec<String>> = match (claims.get("scopes"), claims.get("scope")) {
            (Some(Value::Array(a)), _) => {
                let list: Vec<String> = a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
                if list.len() != a.len() || a.len() > MAX_SCOPES || !list.iter().all(|s| scope_ok(s)) {
                    fail!(Reason::MalformedClaims);
                }
                Some(list)
            }
            (Some(_), _) => fail!(Reason::MalformedClaims),
            (None, Some(Value::String(s))) => {
                let list: Vec<String> = s.split(' ').filter(|p| !p.is_empty()).map(str::to_string).collect();
                if list.len() > MAX_SCOPES || !list.iter().all(|s| scope_ok(s)) {
                    fail!(Reason::MalformedClaims);
                }
                Some(list)
            }
            (None, Some(_)) => fail!(Reason::MalformedClaims),
            (None, None) => None,
        };
        match claims.get("jti") {
            None => {}
            Some(Value::String(j)) if j.len() <= MAX_JTI_BYTES => {}
            Some(_) => fail!(Reason::MalformedClaims),
        }
        let now_s = now.secs();
        let leeway = self.policy.leeway_secs;
        // 13–15. time
        if now_s >= exp.saturating_add(leeway) {
            fail!(Reason::Expired);
        }
        if nbf.is_some_and(|nbf| now_s.saturating_add(leeway) < nbf) {
            fail!(Reason::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now_s.saturating_add(leeway)) {
            fail!(Reason::IatFuture);
        }
        // 16. issuer
        let iss = claims.get("iss").and_then(Value::as_str).map(str::to_string);
        if !self.policy.issuers.is_empty() && !iss.as_ref().is_some_and(|i| self.policy.issuers.contains(i)) {
            fail!(Reason::WrongIssuer);
        }
        // 17. audience
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.policy.audiences.contains(a),
            Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_AUD_ENTRIES => {
                list.iter().all(Value::is_string)
                    && list.iter().filter_map(Value::as_str).any(|a| self.policy.audiences.iter().any(|c| c == a))
            }
            _ => false,
        };
        if !audience_ok {
            fail!(Reason::WrongAudience);
        }
        // 18. subject
        let sub = match sub_v {
            Value::String(s) if valid_credential_owner(s) => s.clone(),
            _ => fail!(Reason::BadSubject),
        };
        // 19. lifetime
        if self.policy.max_lifetime_secs > 0 {
            match iat {
                Some(iat) if exp.saturating_sub(iat) <= self.policy.max_lifetime_secs => {}
                _ => fail!(Reason::LifetimeExceeded),
            }
        }
        // 20. revocation
        let revoked = jti.as_deref().is_some_and(|j| revocations.is_revoked(RevocationKind::Jti, j, now))
            || revocations.is_revoked(RevocationKind::Sub, &sub, now);
        if revoked {
            fail!(Reason::Revoked);
        }
        let scopes = scopes.unwrap_or_else(|| self.policy.default_scopes.clone());
        Ok(Claims { sub, scopes, jti, exp, iat, nbf, iss, kid })
    }
}

/// A value is JWT-shaped when it contains exactly two `.` (security.md §1.2).
pub fn is_jwt_shaped(value: &str) -> bool {
    value.bytes().filter(|&b| b == b'.').count() == 2
}

/// The public points of fixture keys k1 and k2 (tests/fixtures/jwt/jwks.json), for [`fuzz_jwt`].
const FUZZ_KEYS: [(&str, &str, &str); 2] = [
    ("k1", "4A_a2xAuadh1DPJaoPCEXaybCNnjtEUWtTjTlpHASh8", "w55rydBSjJQxcpZX7yVnJMccHpzl6ObOkGdDZnTCFMo"),
    ("k2", "5qi_1tkFH6mAyRzn8iXEF5Cni1qzFg-hlNEVdQF3iew", "P7YsUZCOqA2TBx2HwP_0ozKmRgA4FqYOT_-0kGPdzDQ"),
];
/// The fixture clock T.
pub const FUZZ_CLOCK_T: u64 = 1_900_000_000;

fn fuzz_verifier() -> &'static JwtVerifier {
    static V: std::sync::OnceLock<JwtVerifier> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let keys: Vec<JwtKey> = FUZZ_KEYS
            .iter()
            .filter_map(|(kid, x, y)| {
                let (x, y) = (b64::decode_url(x.as_bytes()).ok()?, b64::decode_url(y.as_bytes()).ok()?);
                let mut point = [4u8; 65];
                point[1..33].copy_from_slice(x.get(..32)?);
                point[33..].copy_from_slice(y.get(..32)?);
                Some(JwtKey { kid: kid.to_string(), point })
            })
            .collect();
        let policy = JwtPolicy {
            issuers: vec!["hotplex-test".into()],
            audiences: vec!["hotplex".into()],
            leeway_secs: 30,
            max_token_bytes: 8192,
            max_lifetime_secs: 0,
            default_scopes: vec!["aep:drive".into(), "aep:observe".into()],
            require_scopes: false,
        };
        JwtVerifier::new(&keys, policy)
    })
}

/// `cargo fuzz` entry (`jwt_verify`): any bytes as a token against the fixture keys (config C1)
/// at clock T. Never panics; an accepted token always has a valid subject and an expiry after T.
pub fn fuzz_jwt(bytes: &[u8]) {
    let now = UnixTime::from_secs(FUZZ_CLOCK_T);
    if let Ok(claims) = fuzz_verifier().verify(bytes, now, &super::revocation::NoRevocations) {
        assert!(valid_credential_owner(&claims.sub));
        assert!(claims.exp + 30 > FUZZ_CLOCK_T);
        assert!(bytes.len() <= 8192);
    }
}
