//! `hotplex token` and `hotplex token keygen` (operations.md §8) through the real binary:
//! minted tokens verify against the matching public key; ttl over 24 h is a usage error.

use std::path::{Path, PathBuf};
use std::process::Command;

use hotplex::security::keys::{self, JwtKey};
use hotplex::security::{JwtPolicy, JwtVerifier, NoRevocations, UnixTime};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotplex"));
    c.env_remove("HOTPLEX_CONFIG");
    c
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(rel)
}

fn policy() -> JwtPolicy {
    JwtPolicy {
        issuers: vec!["hotplex-test".into()],
        audiences: vec!["hotplex".into()],
        leeway_secs: 30,
        max_token_bytes: 8192,
        max_lifetime_secs: 86_400,
        default_scopes: vec!["aep:drive".into(), "aep:observe".into()],
        require_scopes: false,
    }
}

#[test]
fn keygen_then_mint_then_verify() {
    let dir = std::env::temp_dir().join(format!("hotplex-token-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("dev.pem");
    let out = bin().args(["token", "keygen", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    let point = keys::parse_pem_public_key(&std::fs::read(dir.join("dev.pem.pub")).unwrap()).unwrap();
    // a second keygen never overwrites
    assert_eq!(bin().args(["token", "keygen", "--out"]).arg(&key).output().unwrap().status.code(), Some(1));

    let out = bin()
        .args(["token", "--key"])
        .arg(&key)
        .args(["--sub", "alice", "--aud", "hotplex", "--iss", "hotplex-test", "--kid", "dev", "--scope", "aep:observe"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.strip_suffix('\n').unwrap();
    let v = JwtVerifier::new(&[JwtKey { kid: "dev".into(), point }], policy());
    let c = v.verify(token.as_bytes(), UnixTime::now(), &NoRevocations).unwrap();
    assert_eq!((c.sub.as_str(), c.scopes.clone()), ("alice", vec!["aep:observe".to_string()]));
    assert_eq!(c.exp - c.iat.unwrap(), 3600);

    // ttl > 24h refused (usage error, exit 2); missing audience too
    let over = bin().args(["token", "--key"]).arg(&key).args(["--sub", "a", "--aud", "x", "--ttl", "25h"]).output();
    assert_eq!(over.unwrap().status.code(), Some(2));
    let no_aud = bin().args(["token", "--key"]).arg(&key).args(["--sub", "a"]).output().unwrap();
    assert_eq!(no_aud.status.code(), Some(2));
    // an unreadable key file is an operational failure (exit 1); a public key is not a signing key
    let missing = bin().args(["token", "--key", "/nonexistent.pem", "--sub", "a", "--aud", "x"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let public =
        bin().args(["token", "--key"]).arg(dir.join("dev.pem.pub")).args(["--sub", "a", "--aud", "x"]).output();
    assert_eq!(public.unwrap().status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With `--config`, `aud`, `iss` and the `kid` of the matching configured key are defaults.
#[test]
fn defaults_from_config() {
    let dir = std::env::temp_dir().join(format!("hotplex-token-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.yaml");
    let yaml = format!(
        "security:\n  jwt: {{jwks_file: '{}', issuer: hotplex-test, audience: hotplex}}\nworkers: {{claude_code: {{enabled: false}}}}\nstore: {{path: '{}'}}\n",
        fixture("jwks.json").display(),
        dir.join("db/hotplex.db").display()
    );
    std::fs::write(&cfg, yaml).unwrap();
    let out = bin()
        .args(["token", "--key"])
        .arg(fixture("keys/k2.private.pem"))
        .args(["--sub", "bob", "--ttl", "10m", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let jwks = keys::parse_jwks(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let c = JwtVerifier::new(&jwks.keys, policy()).verify(token.trim_end().as_bytes(), UnixTime::now(), &NoRevocations);
    let c = c.unwrap();
    assert_eq!((c.sub.as_str(), c.kid.as_deref(), c.iss.as_deref()), ("bob", Some("k2"), Some("hotplex-test")));
    std::fs::remove_dir_all(&dir).unwrap();
}
