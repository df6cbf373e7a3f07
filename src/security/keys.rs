//! JWT verification keys (security.md §1.3 "Keys", S3, S10): PEM
//! SubjectPublicKeyInfo files (`security.jwt.public_keys[]`) and a local JWKS
//! file (`security.jwt.jwks_file`), reduced to `(kid, uncompressed P-256 point)`
//! pairs. Only public ES256 keys ever come out; anything else is an error
//! naming the key and the reason (RSA entries of a shared JWKS are skipped
//! with a warning).
//!
//! Owns: file formats, the fixed SPKI prefix, the on-curve check (one ECDH
//! with a fresh ephemeral key, since ring checks points only when verifying),
//! the 32-key and unique-kid rules. Must not: fetch anything over the network,
//! follow `jku`/`x5u`-style references, keep or accept private key material,
//! or log (callers turn errors and warnings into config lines).

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ring::agreement;
use ring::rand::SystemRandom;
use serde_json::Value;

use super::b64;
use crate::config::Jwt;
use crate::protocol::strict_json;

/// Most keys over `public_keys` and the JWKS together (S3).
pub const MAX_KEYS: usize = 32;
/// Largest `kid` in bytes.
pub const MAX_KID_BYTES: usize = 128;
/// Largest key or JWKS file read.
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// DER SubjectPublicKeyInfo of an id-ecPublicKey / prime256v1 key up to the BIT STRING content.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// JWKS members that carry private or symmetric key material (S10).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// One usable verification key: its `kid` and the 65-byte point `04‖X‖Y` ring wants.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtKey {
    pub kid: String,
    pub point: [u8; 65],
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwtKey({:?}, P-256)", self.kid)
    }
}

impl JwtKey {
    /// The key as a PEM SubjectPublicKeyInfo (what `hotplex token keygen` writes to FILE.pub).
    pub fn to_pem(&self) -> String {
        spki_pem(&self.point)
    }
}

/// PEM of the SPKI for an uncompressed P-256 point.
pub fn spki_pem(point: &[u8; 65]) -> String {
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    pem("PUBLIC KEY", &der)
}

/// A PEM block with 64-character lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = b64::encode_std(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Whether `point` (uncompressed, 65 bytes) is on P-256: ECDH with a fresh ephemeral key fails otherwise.
pub fn on_curve(point: &[u8; 65]) -> bool {
    let rng = SystemRandom::new();
    let Ok(mine) = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng) else { return false };
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &point[..]);
    agreement::agree_ephemeral(mine, &peer, |_| ()).is_ok()
}

/// One PEM block: its label and DER, from a file that must hold exactly that block.
pub(crate) fn parse_pem_block(text: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(text).map_err(|_| "not a PEM file (not UTF-8 text)".to_string())?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).peekable();
    let labels = pem_labels(text);
    let first = lines.next().unwrap_or_default();
    let Some(label) = first.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
        return Err(if labels.is_empty() { "not a PEM file" } else { "data before the PEM block" }.to_string());
    };
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    loop {
        match lines.next() {
            None => return Err(format!("the {} block has no END line", printable(label))),
            Some(l) if l == end => break,
            Some(l) if l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') => {
                body.push_str(l)
            }
            Some(_) => return Err("invalid characters inside the PEM block".to_string()),
        }
    }
    let rest: Vec<&str> = lines.collect();
    if !(rest.is_empty() || rest == [""]) {
        return Err(if labels.len() > 1 { "more than one PEM block" } else { "data after the PEM block" }.to_string());
    }
    let der = b64::decode_std(body.as_bytes()).map_err(|_| "the PEM body is not canonical base64".to_string())?;
    Ok((label.to_string(), der))
}

/// Labels of every `-----BEGIN …-----` line.
fn pem_labels(text: &str) -> Vec<&str> {
    text.split('\n')
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .collect()
}

fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// A PEM file holding exactly one P-256 SubjectPublicKeyInfo with an uncompressed point on the curve.
pub fn parse_pem_public_key(text: &[u8]) -> Result<[u8; 65], String> {
    if pem_labels(&String::from_utf8_lossy(text)).iter().any(|l| l.contains("PRIVATE KEY")) {
        return Err("holds a private key; the gateway only ever holds public keys (S10)".to_string());
    }
    let (label, der) = parse_pem_block(text)?;
    if label != "PUBLIC KEY" {
        return Err(format!("expected a PUBLIC KEY block, found {}", printable(&label)));
    }
    if der.len() == 91 && der.starts_with(&P256_SPKI_PREFIX) && der[26] == 0x04 {
        let mut point = [0u8; 65];
        point.copy_from_slice(&der[26..]);
        if !on_curve(&point) {
            return Err("the point is not on the P-256 curve".to_string());
        }
        return Ok(point);
    }
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    Err(if has(OID_RSA) {
        "an RSA key; only EC P-256 (ES256) keys are accepted".to_string()
    } else if has(OID_EC_PUBLIC_KEY) && has(OID_P256) {
        if der.len() == 59 && matches!(der.get(26), Some(0x02 | 0x03)) {
            "a compressed P-256 point; an uncompressed point is required".to_string()
        } else {
            "not a well-formed P-256 SubjectPublicKeyInfo".to_string()
        }
    } else if has(OID_EC_PUBLIC_KEY) {
        "an EC key on another curve; only P-256 (ES256) is accepted".to_string()
    } else {
        "not an EC P-256 public key".to_string()
    })
}

/// Usable keys of a JWKS and what was skipped.
#[derive(Debug, Default)]
pub struct Jwks {
    pub keys: Vec<JwtKey>,
    /// Entries skipped (not EC P-256), as messages.
    pub warnings: Vec<String>,
}

fn kid_ok(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_BYTES
}

/// A local JWKS document (security.md §1.3 table, row JWKS).
pub fn parse_jwks(bytes: &[u8]) -> Result<Jwks, String> {
    let doc = strict_json::parse(bytes, 16).map_err(|e| format!("not valid JSON ({e})"))?;
    let Some(Value::Array(entries)) = doc.as_object().and_then(|o| o.get("keys")) else {
        return Err("the top level must be an object with a `keys` array".to_string());
    };
    if entries.len() > MAX_KEYS {
        return Err(format!("more than {MAX_KEYS} keys (S3)"));
    }
    let mut out = Jwks::default();
    for (i, e) in entries.iter().enumerate() {
        let Some(e) = e.as_object() else { return Err(format!("keys[{i}] is not an object")) };
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| e.contains_key(**m)) {
            return Err(format!("keys[{i}] holds private key material (`{m}`); only public keys are accepted (S10)"));
        }
        let s = |name: &str| e.get(name).and_then(Value::as_str);
        let kid_shown = s("kid").map(|k| format!(" (kid {:?})", printable(k))).unwrap_or_default();
        if s("kty") != Some("EC") || s("crv") != Some("P-256") {
            out.warnings.push(format!("keys[{i}]{kid_shown} skipped: not an EC P-256 key"));
            continue;
        }
        let kid = match e.get("kid") {
            Some(Value::String(k)) if kid_ok(k) => k.clone(),
            Some(_) => return Err(format!("keys[{i}]: kid must be a string of 1–{MAX_KID_BYTES} bytes")),
            None => return Err(format!("keys[{i}] has no kid")),
        };
        match e.get("alg") {
            None => {}
            Some(Value::String(a)) if a == "ES256" => {}
            Some(_) => return Err(format!("keys[{i}]{kid_shown}: alg must be ES256")),
        }
        match e.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(_) => return Err(format!("keys[{i}]{kid_shown}: use must be sig")),
        }
        match e.get("key_ops") {
            None => {}
            Some(Value::Array(ops)) if ops.iter().all(Value::is_string) && ops.iter().any(|o| o == "verify") => {}
            Some(_) => return Err(format!("keys[{i}]{kid_shown}: key_ops must be a list containing verify")),
        }
        let coord = |name: &str| -> Result<Vec<u8>, String> {
            match s(name).map(|v| b64::decode_url(v.as_bytes())) {
                Some(Ok(b)) if b.len() == 32 => Ok(b),
                Some(Ok(b)) => Err(format!("keys[{i}]{kid_shown}: {name} is {} bytes, not 32", b.len())),
                _ => Err(format!("keys[{i}]{kid_shown}: {name} must be strict base64url")),
            }
        };
        let (x, y) = (coord("x")?, coord("y")?);
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[1..33].copy_from_slice(&x);
        point[33..].copy_from_slice(&y);
        if !on_curve(&point) {
            return Err(format!("keys[{i}]{kid_shown}: the point is not on the P-256 curve"));
        }
        if out.keys.iter().any(|k| k.kid == kid) {
            return Err(format!("keys[{i}]: duplicate kid {:?} (S3)", printable(&kid)));
        }
        out.keys.push(JwtKey { kid, point });
    }
    if out.keys.is_empty() {
        return Err("no usable ES256 (EC P-256) key".to_string());
    }
    Ok(out)
}

/// Read a key file: a regular file, not world-writable, at most [`MAX_KEY_FILE_BYTES`].
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {} ({})", path.display(), e.kind()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(format!("{} is world-writable: anyone could replace the key", path.display()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {} ({})", path.display(), e.kind()))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!("{} is larger than {MAX_KEY_FILE_BYTES} bytes", path.display()));
    }
    Ok(bytes)
}

/// The outcome of loading `security.jwt` keys: keys, and errors/warnings as `(key path, message)`.
#[derive(Debug, Default)]
pub struct KeySetLoad {
    pub keys: Vec<JwtKey>,
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

/// Load every configured key (PEM files, then the JWKS); check the 32-key and unique-kid rules.
pub fn load_key_set(jwt: &Jwt) -> KeySetLoad {
    let mut out = KeySetLoad::default();
    let mut seen = HashSet::new();
    let mut add = |out: &mut KeySetLoad, key: &str, k: JwtKey| {
        if !seen.insert(k.kid.clone()) {
            out.errors.push((key.to_string(), format!("kid {:?} is configured twice (S3)", printable(&k.kid))));
        } else {
            out.keys.push(k);
        }
    };
    for (i, pk) in jwt.public_keys.iter().enumerate() {
        let key = format!("security.jwt.public_keys[{i}]");
        if !kid_ok(&pk.kid) {
            out.errors.push((format!("{key}.kid"), format!("must be 1–{MAX_KID_BYTES} bytes (S3)")));
            continue;
        }
        match read_key_file(&pk.file).and_then(|b| parse_pem_public_key(&b)) {
            Ok(point) => add(&mut out, &format!("{key}.kid"), JwtKey { kid: pk.kid.clone(), point }),
            Err(m) => out.errors.push((format!("{key}.file"), format!("{}: {m} (S3)", pk.file.display()))),
        }
    }
    if !jwt.jwks_file.as_os_str().is_empty() {
        let key = "security.jwt.jwks_file";
        match read_key_file(&jwt.jwks_file).and_then(|b| parse_jwks(&b)) {
            Ok(set) => {
                for w in set.warnings {
                    out.warnings.push((key.to_string(), format!("{}: {w}", jwt.jwks_file.display())));
                }
                for k in set.keys {
                    add(&mut out, key, k);
                }
            }
            Err(m) => out.errors.push((key.to_string(), format!("{}: {m} (S3)", jwt.jwks_file.display()))),
        }
    }
    if out.keys.len() > MAX_KEYS {
        out.errors.push(("security.jwt".to_string(), format!("more than {MAX_KEYS} keys in total (S3)")));
    }
    out
}
