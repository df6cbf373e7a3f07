//! Every vector of tests/fixtures/jwt/vectors.json (a copy of shared/fixtures/jwt)
//! through the verifier with an injected clock (security.md §1.8): 69 tokens under
//! configs C1–C4 at clock T (and the wall-clock-safe ones also at the real time),
//! and the 18 key-file vectors through the loaders. Plus the fuzz entry points over
//! the fixture corpus and mutations of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotplex::config::{Jwt, JwtPublicKey};
use hotplex::security::keys::{self, JwtKey};
use hotplex::security::revocation::{RevocationKind, Revocations};
use hotplex::security::{JwtPolicy, JwtVerifier, NoRevocations, UnixTime, fuzz_b64url, fuzz_jwt, fuzz_key_file};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt")
}

fn vectors() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// A verifier and revocation hook for one named config of vectors.json.
fn config(name: &str, cfg: &Value) -> (JwtVerifier, Arc<dyn Revocations>) {
    let keys: Vec<JwtKey> = if name == "C2" {
        let point = keys::parse_pem_public_key(&std::fs::read(dir().join("pem/k1.public.pem")).unwrap()).unwrap();
        vec![JwtKey { kid: "k1".into(), point }]
    } else {
        assert_eq!(cfg["keys"], "jwks.json");
        keys::parse_jwks(&std::fs::read(dir().join("jwks.json")).unwrap()).unwrap().keys
    };
    let policy = JwtPolicy {
        issuers: strings(&cfg["issuer"]),
        audiences: strings(&cfg["audience"]),
        leeway_secs: cfg["leeway_s"].as_u64().unwrap(),
        max_token_bytes: cfg["max_token_bytes"].as_u64().unwrap() as usize,
        max_lifetime_secs: cfg["max_lifetime_s"].as_u64().unwrap_or(0),
        default_scopes: strings(&cfg["default_scopes"]),
        require_scopes: false,
    };
    let (jtis, subs) = (strings(&cfg["revoked_jti"]), strings(&cfg["revoked_sub"]));
    // The revocation hook as a closure (rows valid until far in the future).
    let rev = move |kind: RevocationKind, value: &str, _now: UnixTime| match kind {
        RevocationKind::Jti => jtis.iter().any(|j| j == value),
        RevocationKind::Sub => subs.iter().any(|s| s == value),
        RevocationKind::ApiKey => false,
    };
    (JwtVerifier::new(&keys, policy), Arc::new(rev))
}

#[test]
fn every_token_vector() {
    let v = vectors();
    let t = UnixTime::from_secs(v["clock_T"].as_u64().unwrap());
    let configs = v["configs"].as_object().unwrap();
    let mut checked = 0;
    let mut rows = Vec::new();
    for tok in v["tokens"].as_array().unwrap() {
        let file = tok["file"].as_str().unwrap();
        let token = std::fs::read(dir().join(file)).unwrap();
        for check in tok["checks"].as_array().unwrap() {
            let name = check["config"].as_str().unwrap();
            let (verifier, rev) = config(name, &configs[name]);
            let mut clocks = vec![("T", t)];
            if tok["wall_clock_safe"].as_bool().unwrap() {
                clocks.push(("now", UnixTime::now()));
            }
            for (clock, now) in clocks {
                let got = verifier.verify(&token, now, &*rev);
                let ctx = format!("{file} under {name} at {clock}");
                match check["expect"].as_str().unwrap() {
                    "accept" => {
                        let c = got.unwrap_or_else(|e| panic!("{ctx}: rejected {}", e.reason));
                        assert_eq!(c.sub, check["owner"].as_str().unwrap(), "{ctx}");
                        assert_eq!(c.scopes, strings(&check["scopes"]), "{ctx}");
                        rows.push(format!("{file} {name}@{clock}: accept owner={}", c.sub));
                    }
                    "reject" => {
                        let e = got.err().unwrap_or_else(|| panic!("{ctx}: accepted"));
                        assert_eq!(e.reason.code(), check["reason"].as_str().unwrap(), "{ctx}");
                        assert!(!e.label().is_empty());
                        rows.push(format!("{file} {name}@{clock}: reject {}", e.reason.code()));
                    }
                    other => panic!("unknown expectation {other}"),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(v["tokens"].as_array().unwrap().len(), 69);
    assert!(checked >= 75 + 60, "{checked} checks");
    if std::env::var_os("HOTPLEX_PRINT_VECTORS").is_some() {
        println!("{}", rows.join("\n"));
    }
}

#[test]
fn reasons_listed_are_the_verifier_codes() {
    let v = vectors();
    let codes: Vec<&str> = hotplex::security::Reason::ALL.iter().map(|r| r.code()).collect();
    for r in v["reasons"].as_array().unwrap() {
        assert!(codes.contains(&r.as_str().unwrap()), "{r}");
    }
}

#[test]
fn revocation_by_subject_and_expired_rows() {
    let v = vectors();
    let (verifier, _) = config("C1", &v["configs"]["C1"]);
    let t = UnixTime::from_secs(v["clock_T"].as_u64().unwrap());
    let table = hotplex::security::RevocationTable::new();
    table.insert(RevocationKind::Sub, "bob".into(), t.ms() + 1);
    table.insert(RevocationKind::Jti, "revoked-jti-0001".into(), t.ms()); // until = now: no longer revoked
    let bob = std::fs::read(dir().join("tokens/scopes_observe_only.jwt")).unwrap();
    assert_eq!(verifier.verify(&bob, t, &table).unwrap_err().reason.code(), "revoked");
    let r = std::fs::read(dir().join("tokens/revoked_jti.jwt")).unwrap();
    assert!(verifier.verify(&r, t, &table).is_ok());
}

#[test]
fn audit_credential_ids() {
    let v = vectors();
    let (verifier, _) = config("C1", &v["configs"]["C1"]);
    let now = UnixTime::now();
    let read = |f: &str| std::fs::read(dir().join("tokens").join(f)).unwrap();
    // security.md §10.4: kid:jti, and k1:- when the payload was not parsed
    let e = verifier.verify(&read("wrong_aud.jwt"), now, &NoRevocations).unwrap_err();
    assert_eq!((e.reason.code(), e.credential_id().as_str()), ("wrong_audience", "k1:wrong_aud"));
    let e = verifier.verify(&read("tampered_signature.jwt"), now, &NoRevocations).unwrap_err();
    assert_eq!(e.credential_id(), "k1:-");
    let e = verifier.verify(&read("alg_none.jwt"), now, &NoRevocations).unwrap_err();
    assert_eq!(e.credential_id(), "-:-");
    let c = verifier.verify(&read("valid_k2.jwt"), now, &NoRevocations).unwrap();
    assert_eq!(c.credential_id(), "k2:valid_k2");
}

#[test]
fn every_key_file_vector() {
    let v = vectors();
    let files = v["key_files"].as_array().unwrap();
    assert_eq!(files.len(), 18);
    for kf in files {
        let file = kf["file"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let expect: Option<Vec<String>> = kf["expect_kids"].as_array().map(|_| strings(&kf["expect_kids"]));
        // the parser …
        let parsed: Result<Vec<String>, String> = match kf["loader"].as_str().unwrap() {
            "jwks" => keys::parse_jwks(&bytes).map(|s| s.keys.into_iter().map(|k| k.kid).collect()),
            "pem" => keys::parse_pem_public_key(&bytes).map(|_| vec!["k1".to_string()]),
            l => panic!("loader {l}"),
        };
        match (&expect, &parsed) {
            (Some(kids), Ok(got)) => assert_eq!(got, kids, "{file}"),
            (None, Err(msg)) => assert!(!msg.is_empty(), "{file}"),
            _ => panic!("{file}: expected {expect:?}, got {parsed:?} ({})", kf["expect"]),
        }
        // … and the config loader with its file checks
        let mut jwt = Jwt::default();
        if kf["loader"] == "jwks" {
            jwt.jwks_file = dir().join(file);
        } else {
            jwt.public_keys = vec![JwtPublicKey { kid: "k1".into(), file: dir().join(file) }];
        }
        let load = keys::load_key_set(&jwt);
        assert_eq!(load.errors.is_empty(), expect.is_some(), "{file}: {:?}", load.errors);
        if file == "jwks/with_rsa.json" {
            assert_eq!(load.warnings.len(), 1, "RSA entry skipped with a warning");
        }
        for (key, msg) in &load.errors {
            assert!(key.starts_with("security.jwt") && msg.contains("(S3)"), "{key}: {msg}");
        }
    }
    // the specific reasons for the refusals named in the fixture README
    let err = |f: &str| {
        let b = std::fs::read(dir().join(f)).unwrap();
        if f.ends_with(".json") {
            keys::parse_jwks(&b).unwrap_err()
        } else {
            keys::parse_pem_public_key(&b).unwrap_err()
        }
    };
    for (f, needle) in [
        ("jwks/private_d.json", "(`d`)"),
        ("jwks/dup_kid.json", "duplicate kid"),
        ("jwks/bad_x_len.json", "31 bytes"),
        ("jwks/not_on_curve.json", "not on the P-256 curve"),
        ("jwks/missing_kid.json", "no kid"),
        ("jwks/only_p384.json", "no usable ES256"),
        ("jwks/alg_rs256_on_ec.json", "alg must be ES256"),
        ("jwks/not_object.json", "object with a `keys` array"),
        ("pem/k1.public.compressed.pem", "compressed"),
        ("pem/p384.public.pem", "another curve"),
        ("pem/rsa.public.pem", "RSA"),
        ("pem/k1.private.pem", "private key"),
        ("pem/k1.public.with_garbage.pem", "data after the PEM block"),
        ("pem/two_keys.pem", "more than one PEM block"),
        ("keys/k1.private.pem", "(S10)"),
        ("keys/rsa.private.pem", "(S10)"),
    ] {
        let m = err(f);
        assert!(m.contains(needle), "{f}: {m}");
    }
}

/// The fuzz entry points never panic on the corpus and on simple mutations of it.
#[test]
fn fuzz_entry_points_over_the_corpus() {
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for sub in ["tokens", "jwks", "pem", "keys"] {
        for e in std::fs::read_dir(dir().join(sub)).unwrap() {
            corpus.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    corpus.push(std::fs::read(dir().join("jwks.json")).unwrap());
    let mut n = 0;
    for seed in &corpus {
        let mut inputs = vec![seed.clone()];
        for cut in [1, seed.len() / 2, seed.len().saturating_sub(1)] {
            inputs.push(seed[..cut.min(seed.len())].to_vec());
        }
        for i in (0..seed.len()).step_by(7) {
            let mut m = seed.clone();
            m[i] ^= 0x21;
            inputs.push(m);
        }
        let parts: Vec<&[u8]> = seed.split(|&b| b == b'.').collect();
        if parts.len() == 3 {
            inputs.push([parts[1], b".", parts[0], b".", parts[2]].concat());
            inputs.push([parts[0], b"..", parts[2]].concat());
            inputs.push([parts[0], b".", parts[1], b"."].concat());
            inputs.extend(parts.iter().map(|p| p.to_vec()));
        }
        for input in &inputs {
            fuzz_jwt(input);
            fuzz_b64url(input);
            fuzz_key_file(input);
            n += 1;
        }
    }
    for b in [&b""[..], b"\xff\xfe", b"....", b"{\"keys\":[{}]}", b"-----BEGIN PUBLIC KEY-----\n", &[b'['; 100_000]] {
        fuzz_jwt(b);
        fuzz_b64url(b);
        fuzz_key_file(b);
    }
    assert!(n > 1000, "{n}");
}
