//! The authenticator's decisions at the upgrade and at `init` (security.md §1.2,
//! §1.7, §1.8): the presentation vectors of tests/fixtures/jwt/README.md, the
//! API-key vectors, owner resolution (`via_key`), scopes, lockout, revocation of
//! live credentials, mode `none`, and building from a loaded config.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotplex::config::{self, AuthMode, LoadOptions, Secret};
use hotplex::net::http::{Head, HeadLimits, Request, parse_head};
use hotplex::protocol::{ErrorCode, Mode};
use hotplex::security::revocation::RevocationKind;
use hotplex::security::{
    AuthDecision, AuthSettings, Authenticator, JwtPolicy, KeyId, Lockout, LockoutPolicy, NoRevocations, PrincipalKind,
    Reason, RevocationTable, UnixTime, keys,
};

const ALICE_KEY: &str = "hpk_alice_0123456789abcdefghijklmnopqrstuvwxyz";
const BOT_KEY: &str = "hpk_cibot_0123456789abcdefghijklmnopqrstuvwxyz";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt")
}

fn token(name: &str) -> String {
    std::fs::read_to_string(dir().join("tokens").join(name)).unwrap()
}

fn settings(modes: &[AuthMode]) -> AuthSettings {
    let keys = keys::parse_jwks(&std::fs::read(dir().join("jwks.json")).unwrap()).unwrap().keys;
    AuthSettings {
        modes: modes.to_vec(),
        allow_query_credentials: true,
        jwt_keys: keys,
        jwt_policy: JwtPolicy {
            issuers: vec!["hotplex-test".into()],
            audiences: vec!["hotplex".into()],
            leeway_secs: 30,
            max_token_bytes: 8192,
            max_lifetime_secs: 0,
            default_scopes: vec!["aep:drive".into(), "aep:observe".into()],
            require_scopes: false,
        },
        api_keys: vec![("alice".into(), Secret::new(ALICE_KEY.into())), ("ci-bot".into(), Secret::new(BOT_KEY.into()))],
        close_on_expiry: false,
    }
}

fn auth(modes: &[AuthMode]) -> Authenticator {
    Authenticator::new(&settings(modes), Arc::new(NoRevocations)).unwrap()
}

fn req(target: &str, headers: &[(&str, &str)]) -> Request {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    match parse_head(raw.as_bytes(), &HeadLimits { max_header_bytes: 65536, ..HeadLimits::default() }) {
        Head::Complete(r, _) => r,
        h => panic!("{h:?}"),
    }
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn refused(d: &AuthDecision) -> Reason {
    d.failure().unwrap_or_else(|| panic!("not refused: {d:?}")).reason
}

fn owner(d: &AuthDecision) -> &str {
    d.owner().unwrap_or_else(|| panic!("not authenticated: {d:?}"))
}

const JWT: &[AuthMode] = &[AuthMode::Jwt];
const KEY: &[AuthMode] = &[AuthMode::ApiKey];
const BOTH: &[AuthMode] = &[AuthMode::ApiKey, AuthMode::Jwt];

/// The presentation vectors table of the fixture README (C1, real clock).
#[test]
fn presentation_vectors() {
    let a = auth(JWT);
    let (ta, te, tb) = (token("valid_k1.jwt"), token("expired.jwt"), token("scopes_observe_only.jwt"));
    let bearer = |t: &str| format!("Bearer {t}");
    // Bearer A at upgrade, then init without auth
    let up = a.upgrade(&req("/ws", &[("Authorization", &bearer(&ta))]), now());
    assert_eq!(owner(&up), "alice");
    assert_eq!(owner(&a.init(up.principal(), None, Mode::Drive, now())), "alice");
    // scheme case-insensitive; two spaces and Basic refused
    assert_eq!(owner(&a.upgrade(&req("/ws", &[("Authorization", &format!("bearer {ta}"))]), now())), "alice");
    let two = a.upgrade(&req("/ws", &[("Authorization", &format!("Bearer  {ta}"))]), now());
    assert_eq!(refused(&two), Reason::BadAuthorization);
    assert_eq!(refused(&a.upgrade(&req("/ws", &[("Authorization", "Basic YTpi")]), now())), Reason::BadAuthorization);
    // ?token=
    assert_eq!(owner(&a.upgrade(&req(&format!("/ws?token={ta}"), &[]), now())), "alice");
    // more than one credential / repeated source
    let both = a.upgrade(&req(&format!("/ws?token={ta}"), &[("Authorization", &bearer(&ta))]), now());
    assert_eq!(refused(&both), Reason::AmbiguousCredentials);
    let twice = a.upgrade(&req("/ws", &[("Authorization", &bearer(&ta)), ("Authorization", &bearer(&ta))]), now());
    assert_eq!(refused(&twice), Reason::AmbiguousCredentials);
    // Bearer E → 401 with the expired message
    let exp = a.upgrade(&req("/ws", &[("Authorization", &bearer(&te))]), now());
    let f = exp.failure().unwrap();
    assert_eq!((f.reason, f.http_status(), f.label()), (Reason::Expired, 401, "expired"));
    let resp = String::from_utf8(f.http_response()).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401 "), "{resp}");
    assert!(resp.contains("\r\nWWW-Authenticate: Bearer realm=\"hotplex\", error=\"invalid_token\"\r\n"), "{resp}");
    assert!(resp.contains("credential expired") && !resp.contains(&te), "{resp}");
    // no credential at upgrade, init with "Bearer A"
    let pre = a.upgrade(&req("/ws", &[]), now());
    assert_eq!(pre, AuthDecision::PreAuth);
    assert_eq!(owner(&a.init(None, Some(&bearer(&ta)), Mode::Drive, now())), "alice");
    // … init with E
    let d = a.init(None, Some(&te), Mode::Drive, now());
    let f = d.failure().unwrap();
    assert_eq!((f.aep_code(), f.client_message()), (ErrorCode::Unauthorized, "credential expired"));
    // … init without auth
    let d = a.init(None, None, Mode::Drive, now());
    assert_eq!((refused(&d), d.failure().unwrap().aep_code()), (Reason::Missing, ErrorCode::AuthRequired));
    assert_eq!(d.failure().unwrap().label(), "missing");
    // upgrade with A (alice), init with B (bob): owners differ
    let d = a.init(up.principal(), Some(&tb), Mode::Observe, now());
    assert_eq!((refused(&d), d.failure().unwrap().aep_code()), (Reason::OwnerMismatch, ErrorCode::Unauthorized));
    // B: drive needs aep:drive; observe is fine
    let d = a.init(None, Some(&tb), Mode::Drive, now());
    assert_eq!((refused(&d), d.failure().unwrap().label()), (Reason::MissingScope, "scope"));
    assert_eq!(owner(&a.init(None, Some(&tb), Mode::Observe, now())), "bob");
    // A as X-API-Key in mode [jwt]: ignored → pre-auth, then AUTH_REQUIRED
    assert_eq!(a.upgrade(&req("/ws", &[("X-API-Key", &ta)]), now()), AuthDecision::PreAuth);
    // Bearer not-a-jwt in [jwt]: evaluated as a JWT
    assert_eq!(refused(&a.upgrade(&req("/ws", &[("Authorization", "Bearer not-a-jwt")]), now())), Reason::Malformed);
    // init token of 8193 bytes
    let big = token("size_over_limit.jwt");
    assert_eq!(big.len(), 8193);
    assert_eq!(refused(&a.init(None, Some(&big), Mode::Drive, now())), Reason::TooLarge);
}

/// security.md §1.8, API-key rows and mixed modes.
#[test]
fn api_key_vectors() {
    let a = auth(KEY);
    let up = a.upgrade(&req("/ws", &[("X-API-Key", ALICE_KEY)]), now());
    assert_eq!(owner(&up), "alice");
    let p = up.principal().unwrap();
    assert_eq!((p.kind, p.credential_id()), (PrincipalKind::ApiKey, KeyId::of(ALICE_KEY).to_string()));
    assert_eq!(owner(&a.init(up.principal(), None, Mode::Drive, now())), "alice");
    assert_eq!(owner(&a.upgrade(&req(&format!("/ws?api_key={ALICE_KEY}"), &[]), now())), "alice");
    let bearer = format!("Bearer {ALICE_KEY}");
    assert_eq!(owner(&a.upgrade(&req("/ws", &[("Authorization", &bearer)]), now())), "alice");
    let amb = a.upgrade(&req(&format!("/ws?api_key={ALICE_KEY}"), &[("X-API-Key", ALICE_KEY)]), now());
    assert_eq!(refused(&amb), Reason::AmbiguousCredentials);
    let wrong = a.upgrade(&req("/ws", &[("X-API-Key", "wrong-but-well-formed-key-000000000000000")]), now());
    assert_eq!((refused(&wrong), wrong.failure().unwrap().label()), (Reason::UnknownKey, "unknown_key"));
    let long = "a".repeat(300);
    let f = a.upgrade(&req("/ws", &[("X-API-Key", &long)]), now());
    assert_eq!((refused(&f), f.failure().unwrap().credential_id.clone()), (Reason::KeyMalformed, None));
    // key at upgrade, another owner's key at init
    let d = a.init(up.principal(), Some(BOT_KEY), Mode::Drive, now());
    assert_eq!(refused(&d), Reason::OwnerMismatch);
    assert_eq!(owner(&a.init(up.principal(), Some(ALICE_KEY), Mode::Drive, now())), "alice");

    let a = auth(BOTH);
    // ci-bot key + Bearer valid_k1 → owner alice via the ci-bot key
    let jwt = format!("Bearer {}", token("valid_k1.jwt"));
    let d = a.upgrade(&req("/ws", &[("X-API-Key", BOT_KEY), ("Authorization", &jwt)]), now());
    let p = d.principal().unwrap();
    assert_eq!((&*p.owner, p.kind), ("alice", PrincipalKind::Jwt));
    assert_eq!(p.via_key, Some(KeyId::of(BOT_KEY)));
    assert!(p.via_key.as_ref().unwrap().as_str().starts_with("ak_"));
    assert_eq!(p.credential_id(), "k1:valid_k1");
    // valid key + Bearer expired → 401
    let e = format!("Bearer {}", token("expired.jwt"));
    assert_eq!(
        refused(&a.upgrade(&req("/ws", &[("X-API-Key", BOT_KEY), ("Authorization", &e)]), now())),
        Reason::Expired
    );
    // the SDK pattern: key at upgrade, JWT in init
    let up = a.upgrade(&req("/ws", &[("X-API-Key", BOT_KEY)]), now());
    assert_eq!(owner(&up), "ci-bot");
    let d = a.init(up.principal(), Some(&token("valid_k2.jwt")), Mode::Drive, now());
    let p = d.principal().unwrap();
    assert_eq!((&*p.owner, p.via_key.clone()), ("alice", Some(KeyId::of(BOT_KEY))));
    // shape decides in [api_key, jwt]: a key-shaped bearer is a key, a JWT-shaped one a JWT
    assert_eq!(owner(&a.upgrade(&req(&format!("/ws?token={ALICE_KEY}"), &[]), now())), "alice");
    assert_eq!(refused(&a.upgrade(&req("/ws?token=a.b.c", &[]), now())), Reason::Malformed);
    // JWT at upgrade and JWT at init must agree; scopes narrow to the intersection
    let up = a.upgrade(&req("/ws", &[("Authorization", &jwt)]), now());
    let d = a.init(up.principal(), Some(&token("valid_scope_string.jwt")), Mode::Observe, now());
    assert_eq!(d.principal().unwrap().scopes, vec!["aep:observe".to_string()]);
    let d = a.init(up.principal(), Some(&token("valid_scope_string.jwt")), Mode::Drive, now());
    assert_eq!(refused(&d), Reason::MissingScope);
}

#[test]
fn query_credentials_can_be_disabled() {
    let mut s = settings(BOTH);
    s.allow_query_credentials = false;
    let a = Authenticator::new(&s, Arc::new(NoRevocations)).unwrap();
    let d = a.upgrade(&req(&format!("/ws?api_key={ALICE_KEY}"), &[]), now());
    assert_eq!(refused(&d), Reason::QueryCredentialsDisabled);
    assert_eq!(owner(&a.upgrade(&req("/ws", &[("X-API-Key", ALICE_KEY)]), now())), "alice");
}

/// 10 wrong keys from one IP within 5 minutes, then the right key: the 11th request gets
/// 429 with Retry-After without its key being evaluated.
#[test]
fn lockout_after_ten_failures() {
    let a = auth(KEY);
    let lockout = Lockout::new(LockoutPolicy {
        max_failures: 10,
        window: Duration::from_secs(300),
        lockout: Duration::from_secs(300),
    });
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let t0 = Instant::now();
    let failures = std::cell::Cell::new(0);
    let attempt = |key: &str, at: Instant| -> Result<AuthDecision, hotplex::security::LockedOut> {
        lockout.check(ip, at)?;
        let d = a.upgrade(&req("/ws", &[("X-API-Key", key)]), now());
        if d.failure().is_some() {
            failures.set(failures.get() + 1);
            lockout.record_failure(ip, at);
        }
        Ok(d)
    };
    for i in 0..10 {
        let d = attempt("wrong-but-well-formed-key-000000000000000", t0 + Duration::from_secs(i * 20)).unwrap();
        assert_eq!(refused(&d), Reason::UnknownKey);
    }
    let locked = attempt(ALICE_KEY, t0 + Duration::from_secs(201)).unwrap_err();
    assert_eq!(locked.retry_after_secs(), 279); // locked at the 10th failure (t0+180s) for 300s
    assert!(String::from_utf8(locked.response()).unwrap().contains("Retry-After: 279"));
    assert_eq!(failures.get(), 10);
    assert_eq!(owner(&attempt(ALICE_KEY, t0 + Duration::from_secs(481)).unwrap()), "alice");
}

#[test]
fn revocations_at_authentication_and_for_live_connections() {
    let table = Arc::new(RevocationTable::new());
    let a = Authenticator::new(&settings(BOTH), table.clone()).unwrap();
    let up = a.upgrade(&req("/ws", &[("Authorization", &format!("Bearer {}", token("revoked_jti.jwt")))]), now());
    let p = up.principal().unwrap().clone();
    assert!(!a.revoked(&p, now()));
    table.insert(RevocationKind::Jti, "revoked-jti-0001".into(), now().ms() + 60_000);
    assert!(a.revoked(&p, now()) && p.revoked_by(RevocationKind::Jti, "revoked-jti-0001"));
    let again = a.upgrade(&req("/ws", &[("Authorization", &format!("Bearer {}", token("revoked_jti.jwt")))]), now());
    assert_eq!(refused(&again), Reason::Revoked);
    // API keys are revoked by key id
    let id = KeyId::of(ALICE_KEY);
    table.insert(RevocationKind::ApiKey, id.to_string(), now().ms() + 60_000);
    let d = a.upgrade(&req("/ws", &[("X-API-Key", ALICE_KEY)]), now());
    assert_eq!((refused(&d), d.failure().unwrap().credential_id.clone()), (Reason::Revoked, Some(id.to_string())));
    assert_eq!(owner(&a.upgrade(&req("/ws", &[("X-API-Key", BOT_KEY)]), now())), "ci-bot");
}

#[test]
fn mode_none_ignores_credentials() {
    let a = auth(&[AuthMode::None]);
    assert!(a.is_open());
    for r in
        [req("/ws", &[]), req("/ws?token=garbage&token=twice", &[("Authorization", "Basic x"), ("X-API-Key", "x")])]
    {
        let d = a.upgrade(&r, now());
        assert_eq!((owner(&d), d.principal().unwrap().kind), ("anonymous", PrincipalKind::Anonymous));
    }
    assert_eq!(owner(&a.init(None, Some("garbage"), Mode::Drive, now())), "anonymous");
}

#[test]
fn close_on_expiry_deadline_and_sharing() {
    let mut s = settings(JWT);
    s.close_on_expiry = true;
    let a = Arc::new(Authenticator::new(&s, Arc::new(NoRevocations)).unwrap());
    let d = a.init(None, Some(&token("valid_k1.jwt")), Mode::Drive, now());
    assert_eq!(a.close_deadline(d.principal().unwrap()), Some(4_070_908_800 + 30));
    // shareable across reactor threads, swapped whole on reload
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&a);
    let handle = std::thread::spawn({
        let a = a.clone();
        move || a.init(None, Some(&token("valid_k2.jwt")), Mode::Drive, UnixTime::now()).owner().map(|o| o.to_string())
    });
    assert_eq!(handle.join().unwrap().as_deref(), Some("alice"));
    let reloaded: Arc<Authenticator> = Arc::new(auth(&[AuthMode::None]));
    assert!(reloaded.is_open() && !a.is_open());
    let dbg = format!("{:?}", auth(BOTH));
    assert!(!dbg.contains(ALICE_KEY) && dbg.contains("ak_"), "{dbg}");
}

/// `AuthSettings::from_config` on a config loaded from YAML (keys from the JWKS file,
/// API keys from the environment).
#[test]
fn built_from_a_loaded_config() {
    let cwd = std::env::temp_dir().join(format!("hotplex-auth-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).unwrap();
    let file = cwd.join("config.yaml");
    let yaml = format!(
        "security:\n  auth: {{modes: [api_key, jwt]}}\n  api_keys: [{{owner: alice, env: HX_TEST_ALICE_KEY}}]\n  jwt:\n    jwks_file: '{}'\n    issuer: hotplex-test\n    audience: hotplex\nworkers: {{claude_code: {{enabled: false}}}}\nstore: {{path: '{}'}}\n",
        dir().join("jwks.json").display(),
        cwd.join("db/hotplex.db").display()
    );
    std::fs::write(&file, yaml).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let env = vec![("HX_TEST_ALICE_KEY".to_string(), ALICE_KEY.to_string())];
    let loaded =
        config::load_in(&LoadOptions { path: Some(file), dev: false, env }, &cwd).unwrap_or_else(|e| panic!("{e}"));
    let a = Authenticator::from_config(&loaded.config, Arc::new(NoRevocations)).unwrap();
    assert_eq!(a.jwt().key_count(), 2);
    assert_eq!(owner(&a.upgrade(&req("/ws", &[("X-API-Key", ALICE_KEY)]), now())), "alice");
    let d = a.upgrade(&req("/ws", &[("Authorization", &format!("Bearer {}", token("valid_k2.jwt")))]), now());
    assert_eq!(owner(&d), "alice");
    std::fs::remove_dir_all(&cwd).unwrap();
}
