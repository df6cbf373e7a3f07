//! `hotplex token` (operations.md §8): mint an ES256 JWT for development and
//! tests from a PKCS#8 PEM private key, and generate a key pair
//! (`hotplex token keygen --out FILE`: FILE is the PKCS#8 PEM, mode 0600,
//! FILE.pub the SPKI PEM the gateway loads).
//!
//! Owns: claim layout of minted tokens (`iat` = now, `exp` = now + ttl ≤ 24 h,
//! `jti` = UUID v4) and key file writing. Must not: run inside the gateway
//! (the gateway never holds a private key, S10), overwrite an existing key
//! file, or print anything but the token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Map, Value, json};

use super::jwt::{MAX_SCOPE_BYTES, MAX_SCOPES};
use super::keys::{self, JwtKey, MAX_KID_BYTES};
use super::owner::valid_credential_owner;
use super::{UnixTime, b64};
use crate::config::{Config, Secret};

/// Longest lifetime `hotplex token` mints.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Why minting failed; [`MintError::exit_code`] follows operations.md §8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintError {
    /// Bad arguments (exit 2).
    Usage(String),
    /// Key file unreadable or unusable, output not writable (exit 1).
    Failed(String),
}

impl MintError {
    pub fn exit_code(&self) -> i32 {
        match self {
            MintError::Usage(_) => 2,
            MintError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for MintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MintError::Usage(m) | MintError::Failed(m) => f.write_str(m),
        }
    }
}

/// What to put in the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintOptions {
    pub sub: String,
    pub ttl: Duration,
    /// One value → a string `aud`; several → an array. Required.
    pub aud: Vec<String>,
    pub iss: Option<String>,
    /// Empty: no `scopes` claim (the gateway's `default_scopes` apply).
    pub scopes: Vec<String>,
    pub bot_id: Option<String>,
    /// Header `kid`; `None`: omitted (accepted only by a gateway with exactly one key).
    pub kid: Option<String>,
}

impl MintOptions {
    /// Fill `aud`, `iss` and `kid` from a loaded config where not given: the first configured
    /// audience and issuer, and the kid of the configured key matching `public`.
    pub fn defaults_from(&mut self, cfg: &Config, public: &[u8; 65]) {
        let jwt = &cfg.security.jwt;
        if self.aud.is_empty() {
            self.aud.extend(jwt.audience.first().cloned());
        }
        if self.iss.is_none() {
            self.iss = jwt.issuer.first().cloned();
        }
        if self.kid.is_none() {
            self.kid = cfg.jwt_keys().iter().find(|k| &k.point == public).map(|k| k.kid.clone());
        }
    }
}

/// A P-256 private key for signing (PKCS#8). Never part of the gateway.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// From a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM.
    pub fn from_pem(text: &[u8]) -> Result<SigningKey, MintError> {
        let (label, mut der) = keys::parse_pem_block(text).map_err(|m| MintError::Failed(format!("key file: {m}")))?;
        let result = match label.as_str() {
            "PRIVATE KEY" => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
                .map(|pair| SigningKey { pair })
                .map_err(|e| MintError::Failed(format!("key file: not a P-256 PKCS#8 private key ({e})"))),
            "EC PRIVATE KEY" => Err(MintError::Failed(
                "key file: a SEC1 key; convert it with `openssl pkcs8 -topk8 -nocrypt`".to_string(),
            )),
            _ => Err(MintError::Failed("key file: expected a PRIVATE KEY (PKCS#8) PEM block".to_string())),
        };
        der.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&der);
        result
    }

    /// Read and parse a key file.
    pub fn read(path: &Path) -> Result<SigningKey, MintError> {
        let mut bytes = keys::read_key_file(path).map_err(MintError::Failed)?;
        let key = SigningKey::from_pem(&bytes);
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
        key
    }

    /// The uncompressed public point.
    pub fn public_point(&self) -> [u8; 65] {
        let mut p = [0u8; 65];
        let raw = self.pair.public_key().as_ref();
        if raw.len() == 65 {
            p.copy_from_slice(raw);
        }
        p
    }

    /// The public key as a [`JwtKey`] with `kid`.
    pub fn public_key(&self, kid: &str) -> JwtKey {
        JwtKey { kid: kid.to_string(), point: self.public_point() }
    }
}

fn usage(m: impl Into<String>) -> MintError {
    MintError::Usage(m.into())
}

/// Mint a compact ES256 JWT.
pub fn mint(key: &SigningKey, opts: &MintOptions, now: UnixTime) -> Result<String, MintError> {
    if !valid_credential_owner(&opts.sub) {
        return Err(usage(
            "--sub must be 1–256 bytes, no surrounding whitespace or control characters, not `anonymous`",
        ));
    }
    if opts.ttl.is_zero() || opts.ttl > MAX_TTL {
        return Err(usage("--ttl must be more than 0s and at most 24h"));
    }
    if opts.aud.is_empty() || opts.aud.iter().any(String::is_empty) {
        return Err(usage("--aud is required (or --config with security.jwt.audience)"));
    }
    if opts.scopes.len() > MAX_SCOPES || opts.scopes.iter().any(|s| s.is_empty() || s.len() > MAX_SCOPE_BYTES) {
        return Err(usage(format!("--scope: at most {MAX_SCOPES} scopes of 1–{MAX_SCOPE_BYTES} bytes")));
    }
    if opts.kid.as_ref().is_some_and(|k| k.is_empty() || k.len() > MAX_KID_BYTES) {
        return Err(usage(format!("--kid must be 1–{MAX_KID_BYTES} bytes")));
    }
    let mut header = Map::new();
    header.insert("alg".into(), json!("ES256"));
    header.insert("typ".into(), json!("JWT"));
    if let Some(kid) = &opts.kid {
        header.insert("kid".into(), json!(kid));
    }
    let iat = now.secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(opts.sub));
    claims.insert("iat".into(), json!(iat));
    claims.insert("exp".into(), json!(iat + opts.ttl.as_secs()));
    claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
    claims.insert("aud".into(), if opts.aud.len() == 1 { json!(opts.aud[0]) } else { json!(opts.aud) });
    if let Some(iss) = &opts.iss {
        claims.insert("iss".into(), json!(iss));
    }
    if !opts.scopes.is_empty() {
        claims.insert("scopes".into(), json!(opts.scopes));
    }
    if let Some(b) = &opts.bot_id {
        claims.insert("bot_id".into(), json!(b));
    }
    let signing_input = format!(
        "{}.{}",
        b64::encode_url(Value::Object(header).to_string().as_bytes()),
        b64::encode_url(Value::Object(claims).to_string().as_bytes())
    );
    let sig = key
        .pair
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| MintError::Failed("signing failed (system random generator unavailable)".to_string()))?;
    Ok(format!("{signing_input}.{}", b64::encode_url(sig.as_ref())))
}

/// A fresh key pair: (PKCS#8 PEM, SPKI PEM).
pub fn keygen() -> Result<(Secret, String), MintError> {
    let rng = SystemRandom::new();
    let fail = || MintError::Failed("key generation failed (system random generator unavailable)".to_string());
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| fail())?;
    let private = Secret::new(keys::pem("PRIVATE KEY", doc.as_ref()));
    let pair = SigningKey::from_pem(private.expose().as_bytes())?;
    Ok((private, keys::spki_pem(&pair.public_point())))
}

/// `FILE.pub` next to `FILE`.
pub fn pub_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn create_new(path: &Path, mode: u32, content: &[u8]) -> Result<(), MintError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| MintError::Failed(format!("cannot create {} ({})", path.display(), e.kind())))?;
    f.write_all(content)
        .and_then(|_| f.sync_all())
        .map_err(|e| MintError::Failed(format!("cannot write {} ({})", path.display(), e.kind())))
}

/// `hotplex token keygen --out FILE`: FILE (PKCS#8 PEM, 0600) and FILE.pub (SPKI PEM, 0644).
/// Refuses to overwrite either.
pub fn write_keypair(out: &Path) -> Result<PathBuf, MintError> {
    let public_path = pub_path(out);
    for p in [out, public_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(MintError::Failed(format!("{} exists; not overwriting a key", p.display())));
        }
    }
    let (private, public) = keygen()?;
    create_new(out, 0o600, private.expose().as_bytes())?;
    if let Err(e) = create_new(&public_path, 0o644, public.as_bytes()) {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    Ok(public_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::jwt::{JwtPolicy, JwtVerifier};
    use crate::security::revocation::NoRevocations;

    fn policy() -> JwtPolicy {
        JwtPolicy {
            issuers: vec!["iss-1".into()],
            audiences: vec!["hotplex".into()],
            leeway_secs: 30,
            max_token_bytes: 8192,
            max_lifetime_secs: 86_400,
            default_scopes: vec!["aep:drive".into()],
            require_scopes: false,
        }
    }

    fn opts() -> MintOptions {
        MintOptions {
            sub: "alice".into(),
            ttl: DEFAULT_TTL,
            aud: vec!["hotplex".into()],
            iss: Some("iss-1".into()),
            scopes: vec!["aep:observe".into()],
            bot_id: Some("bot-7".into()),
            kid: Some("dev".into()),
        }
    }

    #[test]
    fn minted_tokens_verify() {
        let (private, public) = keygen().unwrap();
        assert!(private.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let point = keys::parse_pem_public_key(public.as_bytes()).unwrap();
        let key = SigningKey::from_pem(private.expose().as_bytes()).unwrap();
        assert_eq!(key.public_point(), point);
        let v = JwtVerifier::new(&[key.public_key("dev")], policy());
        let now = UnixTime::from_secs(1_900_000_000);
        let token = mint(&key, &opts(), now).unwrap();
        let c = v.verify(token.as_bytes(), now, &NoRevocations).unwrap();
        assert_eq!((c.sub.as_str(), c.exp, c.scopes.clone()), ("alice", 1_900_003_600, vec!["aep:observe".into()]));
        assert_eq!(c.jti.as_deref().map(str::len), Some(36));
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn argument_rules() {
        let (private, _) = keygen().unwrap();
        let key = SigningKey::from_pem(private.expose().as_bytes()).unwrap();
        let now = UnixTime::from_secs(1_900_000_000);
        let over = MintOptions { ttl: MAX_TTL + Duration::from_secs(1), ..opts() };
        assert_eq!(mint(&key, &over, now).unwrap_err().exit_code(), 2);
        assert!(mint(&key, &MintOptions { ttl: MAX_TTL, ..opts() }, now).is_ok());
        assert!(mint(&key, &MintOptions { aud: vec![], ..opts() }, now).is_err());
        assert!(mint(&key, &MintOptions { sub: "anonymous".into(), ..opts() }, now).is_err());
        assert_eq!(
            SigningKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err()
                .exit_code(),
            1
        );
    }

    #[test]
    fn keygen_writes_files_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hotplex-mint-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("dev.pem");
        let public_path = write_keypair(&out).unwrap();
        assert_eq!(public_path, dir.join("dev.pem.pub"));
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        let key = SigningKey::read(&out).unwrap();
        let point = keys::parse_pem_public_key(&std::fs::read(&public_path).unwrap()).unwrap();
        assert_eq!(key.public_point(), point);
        assert!(write_keypair(&out).is_err(), "never overwrites");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
