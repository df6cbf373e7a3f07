//! End-to-end tests of the configuration layer: shipped files, layering,
//! overrides, error lines and the security refusals. Every test passes its own
//! environment snapshot and working directory, so none depends on the host's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::resolve::testutil::{TempDir, stub, temp_dir};
use super::*;
use crate::adapters::WorkerType;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A temp working directory with a `bin/` holding stubs for `names`; returns (cwd, PATH).
fn sandbox(tag: &str, names: &[&str]) -> (TempDir, String) {
    let cwd = temp_dir(tag);
    let bin = cwd.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    for n in names {
        stub(&bin, n);
    }
    (cwd, bin.display().to_string())
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Loads `yaml` (written to a file) in a sandbox; mode none by default so that
/// the only errors are the ones under test.
fn load_yaml(yaml: &str, extra_env: &[(&str, &str)]) -> (Result<Loaded, ConfigErrors>, TempDir) {
    let (cwd, path) = sandbox("load", &["claude"]);
    let file = write_config(&cwd, yaml);
    let mut e = env(&[("PATH", &path)]);
    e.extend(env(extra_env));
    let r = load_in(&LoadOptions { path: Some(file), dev: false, env: e }, &cwd);
    (r, cwd)
}

fn lines(e: &ConfigErrors) -> Vec<String> {
    e.errors.iter().map(|e| e.to_string()).collect()
}

const NONE_MODE: &str = "security: {auth: {modes: [none]}}\n";

#[test]
fn shipped_config_yaml_is_the_defaults() {
    let text = std::fs::read_to_string(shipped("config.yaml")).unwrap();
    let mut expected = Config::default();
    expected.workers.claude_code.enabled = Enabled::True;
    // Straight through serde-saphyr …
    let direct: Config = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(direct, expected);
    // … and through the layered tree.
    let node = tree::parse_yaml(&text, &|l, c| tree::Src::File(l, c)).unwrap();
    let layered: Config = de::from_node(&node).unwrap();
    assert_eq!(layered, expected);
    // Every key of the defaults is spelled out in the file.
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut keys = Vec::new();
    collect_keys(&defaults, String::new(), &mut keys);
    for key in keys {
        let path = tree::parse_path(&key);
        assert!(node.lookup(&path).is_some(), "configs/config.yaml lacks {key}");
    }
}

fn collect_keys(v: &serde_json::Value, prefix: String, out: &mut Vec<String>) {
    if let serde_json::Value::Object(m) = v {
        for (k, v) in m {
            let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            // user maps: their default entries are examples, not keys
            if !(p.ends_with(".env") || p == "log.targets" || p == "tracing.headers") {
                collect_keys(v, p.clone(), out);
            }
            out.push(p);
        }
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(rel)
}

fn s3_line(l: &str) -> bool {
    l.starts_with(&format!("config error: security.jwt: {S3_MESSAGE}"))
}

#[test]
fn shipped_config_yaml_fails_only_on_s3() {
    let (cwd, path) = sandbox("shipped", &["claude"]);
    let opts = LoadOptions { path: Some(shipped("config.yaml")), dev: false, env: env(&[("PATH", &path)]) };
    let err = load_in(&opts, &cwd).unwrap_err();
    let l = lines(&err);
    assert_eq!(l.len(), 1, "{l:#?}");
    assert!(
        l[0].starts_with(
            "config error: security.jwt: auth mode jwt needs a usable key and a non-empty audience (S3) ["
        ),
        "{}",
        l[0]
    );
    assert!(l[0].contains("config.yaml:"), "source is the file position: {}", l[0]);
    // A key alone or an audience alone is not enough.
    let key = format!("[{{kid: k1, file: '{}'}}]", fixture("keys/k1.public.pem").display());
    for extra in
        [("HOTPLEX__SECURITY__JWT__PUBLIC_KEYS", key.as_str()), ("HOTPLEX__SECURITY__JWT__AUDIENCE", "hotplex")]
    {
        let mut o = opts.clone();
        o.env.push((extra.0.into(), extra.1.into()));
        let l = lines(&load_in(&o, &cwd).unwrap_err());
        assert!(l.len() == 1 && s3_line(&l[0]), "{l:#?}");
    }
    // With a key and an audience supplied through HOTPLEX__ overrides it loads (operations.md §1.6).
    let mut o = opts.clone();
    o.env.push(("HOTPLEX__SECURITY__JWT__PUBLIC_KEYS".into(), key.clone()));
    o.env.push(("HOTPLEX__SECURITY__JWT__AUDIENCE".into(), "hotplex".into()));
    let loaded = load_in(&o, &cwd).unwrap_or_else(|e| panic!("{e}"));
    let kids: Vec<&str> = loaded.config.jwt_keys().iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k1"]);
    assert_eq!(loaded.config.security.jwt.audience, vec!["hotplex".to_string()]);
    assert!(
        loaded.warnings.iter().any(|w| w.to_string().contains("security.jwt.issuer: empty")),
        "{:?}",
        loaded.warnings
    );
    // With mode none supplied by the environment it loads, and claude is resolved.
    let mut opts = opts;
    opts.env.push(("HOTPLEX__SECURITY__AUTH__MODES".into(), "[none]".into()));
    let loaded = load_in(&opts, &cwd).unwrap();
    let claude = loaded.config.worker(WorkerType::ClaudeCode).unwrap();
    assert_eq!(claude.program, std::fs::canonicalize(cwd.join("bin/claude")).unwrap());
    assert!(loaded.config.worker(WorkerType::Pi).is_none());
    assert_eq!(loaded.config.store.path, cwd.join("data/hotplex.db"));
    assert_eq!(loaded.file, Some(shipped("config.yaml")));
    assert!(loaded.config.jwt_keys().is_empty());
}

#[test]
fn dev_profile_validates() {
    // As a file and as --dev, with no agent installed (auto → warnings only) …
    let (cwd, path) = sandbox("dev", &[]);
    for opts in [
        LoadOptions { path: Some(shipped("config-dev.yaml")), dev: false, env: env(&[("PATH", &path)]) },
        LoadOptions { path: None, dev: true, env: env(&[("PATH", &path)]) },
    ] {
        let loaded = load_in(&opts, &cwd).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.config.enabled_workers().is_empty());
        assert!(loaded.warnings.iter().any(|w| w.to_string().contains("no worker type is enabled")));
        assert_eq!(loaded.config.security.auth.modes, vec![AuthMode::None]);
        assert_eq!(loaded.config.worker.work_dir_roots, vec![cwd.join("data/work")]);
        assert_eq!(loaded.config.dev(), opts.dev);
    }
    // … and with every agent installed.
    let (cwd, path) = sandbox("dev2", &["claude", "opencode", "claude-code-acp", "pi"]);
    let loaded = load_in(&LoadOptions { path: None, dev: true, env: env(&[("PATH", &path)]) }, &cwd).unwrap();
    assert_eq!(loaded.config.enabled_workers().len(), 5);
    let acpx = loaded.config.worker(WorkerType::Acpx).unwrap();
    assert!(acpx.program.ends_with("claude-code-acp"));
    assert_eq!(acpx.agents.len(), 2);
    assert_eq!(std::fs::read_to_string(shipped("config-dev.yaml")).unwrap(), DEV_PROFILE);
}

#[test]
fn dev_flag_requires_loopback() {
    let (cwd, path) = sandbox("devlo", &[]);
    let file = write_config(&cwd, "gateway: {listen: '0.0.0.0:8888'}\n");
    let err = load_in(&LoadOptions { path: Some(file), dev: true, env: env(&[("PATH", &path)]) }, &cwd).unwrap_err();
    assert!(lines(&err).iter().any(|l| l.contains("gateway.listen: --dev requires a loopback address")), "{err}");
}

#[test]
fn unknown_key_suggestion_with_position() {
    let (r, cwd) = load_yaml(&format!("{NONE_MODE}gatway:\n  listen: 1\ngateway:\n  ping_intreval: 30s\n"), &[]);
    let l = lines(&r.unwrap_err());
    let file = cwd.join("config.yaml");
    assert!(
        l.contains(&format!("config error: gatway: unknown key (did you mean `gateway`?) [{}:2:1]", file.display())),
        "{l:#?}"
    );
    assert!(
        l.contains(&format!(
            "config error: gateway.ping_intreval: unknown key (did you mean `ping_interval`?) [{}:5:3]",
            file.display()
        )),
        "{l:#?}"
    );
}

#[test]
fn all_type_errors_are_reported() {
    let yaml = format!(
        "{NONE_MODE}gateway:\n  ping_interval: 30\n  max_message_bytes: 1MB\n  reactors: lots\nlog: {{level: loud}}\nworkers: {{claude_code: {{enabled: yes}}}}\n"
    );
    let (r, _) = load_yaml(&yaml, &[]);
    let l = lines(&r.unwrap_err());
    assert_eq!(l.len(), 5, "{l:#?}");
    assert!(l.iter().any(|x| x.contains("gateway.ping_interval: durations need a unit, e.g. \"30s\" [")), "{l:#?}");
    assert!(l.iter().any(|x| x.contains("gateway.max_message_bytes:") && x.contains("ambiguous")));
    assert!(l.iter().any(|x| x.contains("gateway.reactors:")));
    assert!(l.iter().any(|x| x.contains("log.level: unknown value `loud`")));
    assert!(l.iter().any(|x| x.contains("workers.claude_code.enabled: expected true, false or \"auto\"")));
}

#[test]
fn duplicate_keys_are_errors() {
    let (r, _) = load_yaml("log: {level: info}\nlog: {level: debug}\n", &[]);
    let l = lines(&r.unwrap_err());
    assert_eq!(l.len(), 1);
    assert!(l[0].contains("duplicate key `log`") && l[0].contains("config.yaml:2:1"), "{}", l[0]);
}

#[test]
fn env_overrides() {
    let (r, _) = load_yaml(
        NONE_MODE,
        &[
            ("HOTPLEX__GATEWAY__PING_INTERVAL", "45s"),
            ("HOTPLEX__Log__Level", "debug"),
            ("HOTPLEX__SECURITY__ALLOWED_ORIGINS", "[\"https://a.example\"]"),
            ("HOTPLEX__WORKERS__PI__ENV__PI_LOG", "1"),
            ("HOTPLEX__WORKERS__CLAUDE_CODE__ENABLED", "auto"),
            ("HOTPLEX__SECURITY__WORKER__UMASK", "0027"),
            ("HOTPLEX_CONFIG", "/not/an/override"),
        ],
    );
    let cfg = r.unwrap_or_else(|e| panic!("{e}")).config;
    assert_eq!(cfg.gateway.ping_interval, Duration::from_secs(45));
    assert_eq!(cfg.log.level, LogLevel::Debug);
    assert_eq!(cfg.security.allowed_origins, vec!["https://a.example".to_string()]);
    assert_eq!(cfg.workers.pi.env.get("PI_LOG").and_then(|v| v.value()).map(Secret::expose), Some("1"));
    assert_eq!(cfg.workers.claude_code.enabled, Enabled::Auto);
    assert_eq!(cfg.security.worker.umask, Umask(0o027));
}

#[test]
fn env_override_errors_name_the_variable() {
    let (r, _) = load_yaml(NONE_MODE, &[("HOTPLEX__GATEWAY__LISTN", "1"), ("HOTPLEX__GATEWAY__MISSED_PONGS", "many")]);
    let l = lines(&r.unwrap_err());
    assert!(
        l.contains(&"config error: gateway.listn: HOTPLEX__GATEWAY__LISTN names no configuration key; did you mean `listen`? [HOTPLEX__GATEWAY__LISTN]".to_string()),
        "{l:#?}"
    );
    assert!(
        l.iter().any(|x| x.starts_with("config error: gateway.missed_pongs: ")
            && x.ends_with("[HOTPLEX__GATEWAY__MISSED_PONGS]"))
    );
}

#[test]
fn semantic_errors_name_key_and_source() {
    let (r, cwd) =
        load_yaml(&format!("{NONE_MODE}gateway:\n  ping_interval: 0s\n"), &[("HOTPLEX__GATEWAY__MISSED_PONGS", "11")]);
    let l = lines(&r.unwrap_err());
    let file = cwd.join("config.yaml");
    assert!(
        l.contains(&format!(
            "config error: gateway.ping_interval: must be between 1s and 10m (got \"0s\") [{}:3:18]",
            file.display()
        )),
        "{l:#?}"
    );
    assert!(
        l.contains(
            &"config error: gateway.missed_pongs: must be between 1 and 10 (got 11) [HOTPLEX__GATEWAY__MISSED_PONGS]"
                .to_string()
        ),
        "{l:#?}"
    );
}

#[test]
fn s2_none_mode_needs_loopback() {
    let (r, _) =
        load_yaml(&format!("{NONE_MODE}gateway: {{listen: '0.0.0.0:8888', trusted_proxies: [127.0.0.1/32]}}\n"), &[]);
    let l = lines(&r.unwrap_err());
    assert!(
        l.iter().any(|x| x.starts_with(
            "config error: gateway.listen: auth mode none requires a loopback listener (got 0.0.0.0:8888) (S2)"
        )),
        "{l:#?}"
    );
    assert!(
        l.iter().any(|x| x.starts_with("config error: gateway.trusted_proxies: must be empty with auth mode none")),
        "{l:#?}"
    );
}

#[test]
fn s1_modes() {
    let (r, _) = load_yaml("security: {auth: {modes: []}}\n", &[]);
    assert!(lines(&r.unwrap_err())[0].contains("must name at least one mode"));
    let (r, _) = load_yaml("security: {auth: {modes: [none, jwt]}}\n", &[]);
    assert!(lines(&r.unwrap_err())[0].contains("none cannot be combined"));
    let (r, _) = load_yaml("security: {auth: {modes: [api_key, jwt]}}\n", &[]);
    let l = lines(&r.unwrap_err());
    assert_eq!(l.len(), 2, "{l:#?}");
    assert!(l.iter().any(|x| s3_line(x)), "{l:#?}");
    assert!(l.iter().any(|x| x.contains("security.api_keys: auth mode api_key needs at least one key (S4)")));
}

#[test]
fn s3_s10_jwt_keys() {
    let jwt = |keys: &str| {
        format!("security: {{auth: {{modes: [jwt]}}, jwt: {{audience: hotplex, issuer: hotplex-test, {keys}}}}}\n")
    };
    let pem = |kid: &str, rel: &str| format!("{{kid: {kid}, file: '{}'}}", fixture(rel).display());
    // the C1 key set, and PEM + JWKS together
    let (r, _) = load_yaml(&jwt(&format!("jwks_file: '{}'", fixture("jwks.json").display())), &[]);
    let cfg = r.unwrap_or_else(|e| panic!("{e}")).config;
    assert_eq!(cfg.jwt_keys().iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["k1", "k2"]);
    let (r, _) = load_yaml(
        &jwt(&format!(
            "public_keys: [{}], jwks_file: '{}'",
            pem("p1", "keys/k1.public.pem"),
            fixture("jwks/with_rsa.json").display()
        )),
        &[],
    );
    let loaded = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.jwt_keys().len(), 2);
    assert!(loaded.warnings.iter().any(|w| w.to_string().contains("skipped: not an EC P-256 key")));
    // refusals
    for (keys, needle) in [
        (
            format!("public_keys: [{}]", pem("k1", "pem/k1.private.pem")),
            "holds a private key; the gateway only ever holds public keys (S10)",
        ),
        (format!("jwks_file: '{}'", fixture("jwks/private_d.json").display()), "private key material (`d`)"),
        (format!("public_keys: [{}]", pem("k1", "pem/k1.public.compressed.pem")), "compressed"),
        (format!("public_keys: [{}]", pem("k1", "pem/rsa.public.pem")), "RSA"),
        (
            format!("public_keys: [{}, {}]", pem("k1", "keys/k1.public.pem"), pem("k1", "keys/k2.public.pem")),
            "kid \"k1\" is configured twice (S3)",
        ),
        (
            format!(
                "public_keys: [{}], jwks_file: '{}'",
                pem("k1", "keys/k2.public.pem"),
                fixture("jwks.json").display()
            ),
            "configured twice (S3)",
        ),
        (format!("jwks_file: '{}'", fixture("jwks/only_p384.json").display()), "no usable ES256"),
        (
            format!("public_keys: [{}]", pem("\"\"", "keys/k1.public.pem")),
            "public_keys[0].kid: must be 1–128 bytes (S3)",
        ),
        (format!("public_keys: [{}]", pem("k1", "missing.pem")), "cannot read"),
    ] {
        let (r, _) = load_yaml(&jwt(&keys), &[]);
        let l = lines(&r.unwrap_err());
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
    let many: Vec<String> = (0..33).map(|i| pem(&format!("k{i}"), "keys/k1.public.pem")).collect();
    let (r, _) = load_yaml(&jwt(&format!("public_keys: [{}]", many.join(", "))), &[]);
    assert!(lines(&r.unwrap_err()).iter().any(|x| x.contains("more than 32 keys in total (S3)")));
    // S15 still applies
    let (r, _) =
        load_yaml(&jwt(&format!("public_keys: [{}], max_token_bytes: 65537", pem("k1", "keys/k1.public.pem"))), &[]);
    assert!(lines(&r.unwrap_err()).iter().any(|x| x.contains("max_token_bytes: must be between 1 and 65536")));
}

#[test]
fn s4_s9_s16_api_keys() {
    let (cwd, path) = sandbox("apikeys", &["claude"]);
    let open = cwd.join("open.key");
    std::fs::write(&open, "o".repeat(40)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let good = "g".repeat(40);
    let yaml = format!(
        "security:\n  auth: {{modes: [api_key]}}\n  api_keys:\n    - {{owner: alice, env: K_SHORT}}\n    - {{owner: alice, env: K_DOT}}\n    - {{owner: bob, env: K_PLUS}}\n    - {{owner: dev, key: inline-{good}}}\n    - {{owner: x, env: K_UNSET}}\n    - {{owner: y, file: '{}'}}\n    - {{owner: anonymous, env: K_GOOD}}\n    - {{owner: ' carol', env: K_GOOD2}}\n    - {{owner: dave, env: K_GOOD3}}\nadmin: {{tokens: [{{name: ops, scopes: [admin], env: K_GOOD3}}]}}\n",
        open.display()
    );
    let file = write_config(&cwd, &yaml);
    let dot = format!("{}.", "a".repeat(32));
    let plus = format!("{}+", "a".repeat(32));
    let e = env(&[
        ("PATH", &path),
        ("K_SHORT", &"a".repeat(31)),
        ("K_DOT", &dot),
        ("K_PLUS", &plus),
        ("K_GOOD", &good),
        ("K_GOOD2", &good),
        ("K_GOOD3", &"h".repeat(40)),
    ]);
    let l = lines(&load_in(&LoadOptions { path: Some(file), dev: false, env: e }, &cwd).unwrap_err());
    for needle in [
        "security.api_keys[0].env: the key must be 32–256 characters of [A-Za-z0-9_-] (S4)",
        "security.api_keys[1].env: the key must be 32–256 characters",
        "security.api_keys[2].env: the key must be 32–256 characters",
        "security.api_keys[3].key: an inline key needs security.dev_mode (use env or file) (S4)",
        "security.api_keys[4].env: environment variable K_UNSET is not set (S16)",
        "security.api_keys[5].file: secret file",
        "group- or world-writable",
        "security.api_keys[6].owner: `anonymous` is reserved for auth mode none (S4)",
        "security.api_keys[7].owner: must be 1–256 bytes",
        "security.api_keys[7]: the same key as security.api_keys[6] (S4)",
        "admin.tokens[0]: the token equals an API key (S9)",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
    for secret in [good.as_str(), &"a".repeat(31), &dot, &"h".repeat(40)] {
        assert!(!l.iter().any(|x| x.contains(secret)), "value echoed: {l:#?}");
    }
    // Inline keys are fine with dev_mode on loopback; the values reach the config.
    let (r, _) = load_yaml(
        &format!("security: {{dev_mode: true, auth: {{modes: [api_key]}}, api_keys: [{{owner: dev, key: {good}}}]}}\n"),
        &[],
    );
    let cfg = r.unwrap_or_else(|e| panic!("{e}")).config;
    assert_eq!(cfg.security.api_keys[0].value.as_ref().map(Secret::expose), Some(good.as_str()));
}

#[test]
fn worker_enabled_true_but_missing() {
    let (r, _) = load_yaml(
        NONE_MODE,
        &[("HOTPLEX__WORKERS__PI__ENABLED", "true"), ("HOTPLEX__WORKERS__PI__UNRESTRICTED_TOOLS", "true")],
    );
    let l = lines(&r.unwrap_err());
    assert_eq!(
        l,
        vec![
            "config error: workers.pi.command: \"pi\" not found on PATH (enabled: true, S12) [HOTPLEX__WORKERS__PI__ENABLED]"
        ]
    );
    let (r, _) =
        load_yaml(&format!("{NONE_MODE}workers: {{claude_code: {{enabled: true, command: ./claude}}}}\n"), &[]);
    assert!(lines(&r.unwrap_err())[0].contains("relative path"));
}

#[test]
fn pi_needs_unrestricted_tools_and_acpx_agent_must_exist() {
    let (cwd, path) = sandbox("pi", &["pi"]);
    let file = write_config(
        &cwd,
        &format!("{NONE_MODE}workers: {{pi: {{enabled: auto}}, acpx: {{enabled: auto, agent: gemini}}}}\n"),
    );
    let err = load_in(&LoadOptions { path: Some(file), dev: false, env: env(&[("PATH", &path)]) }, &cwd).unwrap_err();
    let l = lines(&err);
    assert!(l.iter().any(|x| x.starts_with("config error: workers.pi.unrestricted_tools: must be true")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("config error: workers.acpx.agent: \"gemini\" is not a key")), "{l:#?}");
}

#[test]
fn pi_mode_provider_and_gated_tools_are_checked() {
    let (cwd, path) = sandbox("pi-values", &["pi"]);
    let file = write_config(
        &cwd,
        &format!(
            "{NONE_MODE}workers: {{pi: {{enabled: true, unrestricted_tools: true, mode: json, provider: 'a b', gated_tools: [bash, 'x,y', '*']}}}}\n"
        ),
    );
    let err = load_in(&LoadOptions { path: Some(file), dev: false, env: env(&[("PATH", &path)]) }, &cwd).unwrap_err();
    let l = lines(&err);
    assert!(l.iter().any(|x| x.starts_with("config error: workers.pi.mode: \"json\" is not supported")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("config error: workers.pi.provider: \"a b\"")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("config error: workers.pi.gated_tools: \"x,y\"")), "{l:#?}");
    assert_eq!(l.len(), 3, "{l:#?}");
}

#[test]
fn secrets_are_redacted_everywhere() {
    let token = "tok_0123456789abcdefghijklmnopqrstuvwxyz";
    let (cwd, path) = sandbox("secret", &[]);
    let tokfile = cwd.join("metrics.token");
    std::fs::write(&tokfile, format!("{token}-file\n")).unwrap();
    std::fs::set_permissions(&tokfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let yaml = format!(
        "{NONE_MODE}admin:\n  tokens:\n    - {{name: ops, scopes: [admin], env: OPS_TOKEN}}\n    - {{name: prom, scopes: [session:read], file: metrics.token}}\n    - {{name: h, scopes: [read], sha256: {}}}\nworkers: {{pi: {{env: {{LITERAL: inline-secret-value, FROM: {{env: PROVIDER_KEY}}}}}}}}\n",
        "ab".repeat(32)
    );
    let file = write_config(&cwd, &yaml);
    let e = env(&[("PATH", &path), ("OPS_TOKEN", token), ("PROVIDER_KEY", "provider-secret-value")]);
    let loaded = load_in(&LoadOptions { path: Some(file), dev: false, env: e }, &cwd).unwrap_or_else(|e| panic!("{e}"));
    let cfg = &loaded.config;
    assert_eq!(cfg.admin.tokens[0].credential, Some(AdminCredential::Token(Secret::new(token.to_string()))));
    assert_eq!(cfg.admin.tokens[1].credential, Some(AdminCredential::Token(Secret::new(format!("{token}-file")))));
    assert_eq!(cfg.admin.tokens[1].scope(), Some(AdminScope::Read));
    assert!(matches!(cfg.admin.tokens[2].credential, Some(AdminCredential::Sha256(d)) if d[0] == 0xab));
    for text in [print_json(cfg), format!("{cfg:?}"), format!("{loaded:?}")] {
        assert!(!text.contains(token), "secret leaked");
        assert!(!text.contains("inline-secret-value"), "secret leaked");
        assert!(!text.contains("provider-secret-value"), "secret leaked");
        assert!(!text.contains(&"ab".repeat(32)), "digest leaked");
    }
    assert!(print_json(cfg).contains("\"***\""));
    let from = cfg.workers.pi.env.get("FROM").and_then(|v| v.value()).map(Secret::expose);
    assert_eq!(from, Some("provider-secret-value"));
    assert!(print_json(cfg).contains("\"env\": \"OPS_TOKEN\""));
}

#[test]
fn s9_s16_admin_tokens() {
    let yaml = format!(
        "{NONE_MODE}admin:\n  tokens:\n    - {{name: a, scopes: [root], env: SHORT}}\n    - {{name: a, scopes: [read], env: UNSET}}\n    - {{name: c, scopes: [read], sha256: xyz}}\n    - {{name: d, scopes: [read], env: X, file: /y}}\n"
    );
    let (r, _) = load_yaml(&yaml, &[("SHORT", "abc")]);
    let l = lines(&r.unwrap_err());
    for needle in [
        "admin.tokens[0].scopes[0]: \"root\" is not read, write, admin or an alias (S9)",
        "admin.tokens[0].env: the token must be 32–256 characters",
        "admin.tokens[1].name: \"a\" is used by another token",
        "admin.tokens[1].env: environment variable UNSET is not set (S16)",
        "admin.tokens[2].sha256: must be 64 hexadecimal characters (S9)",
        "admin.tokens[3]: give exactly one of env, file or sha256",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
    assert!(!l.iter().any(|x| x.contains("abc")), "value echoed: {l:#?}");
}

#[test]
fn s5_s6_s7_s8() {
    let (r, _) = load_yaml(
        "security: {auth: {modes: [none]}, dev_mode: false, allowed_origins: ['*', 'null', 'http://ok.example']}\n",
        &[],
    );
    let l = lines(&r.unwrap_err());
    assert_eq!(l.len(), 2, "{l:#?}");
    assert!(l[0].contains("security.allowed_origins[0]") && l[0].contains("(S6)"));
    assert!(l[1].contains("security.allowed_origins[1]") && l[1].contains("(S6)"));
    let (r, _) = load_yaml(
        "security: {auth: {modes: [jwt]}, dev_mode: true}\ngateway: {listen: '0.0.0.0:1'}\nadmin: {listen: '10.0.0.1:2'}\n",
        &[],
    );
    let l = lines(&r.unwrap_err());
    for needle in [
        "(S5)",
        "(S7)",
        "admin.allow_non_loopback is false (S8)",
        "admin.tokens: admin.listen 10.0.0.1:2 is not loopback",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
}

#[test]
fn s13_env_names() {
    let yaml = format!(
        "{NONE_MODE}admin: {{tokens: [{{name: a, scopes: [read], env: ADMIN_SRC}}]}}\nworkers:\n  claude_code:\n    env_passthrough: [ADMIN_SRC, 'LD_*', OTEL_*]\n    env: {{NODE_OPTIONS: x, FOO: {{env: HOTPLEX_API_KEY_ALICE}}, BAR: {{env: SOME_KEY}}}}\n"
    );
    let long = "a".repeat(40);
    let (r, _) = load_yaml(&yaml, &[("ADMIN_SRC", &long), ("SOME_KEY", "v"), ("HOTPLEX_API_KEY_ALICE", "k")]);
    let l = lines(&r.unwrap_err());
    assert_eq!(l.len(), 4, "{l:#?}");
    for needle in [
        "workers.claude_code.env_passthrough[0]: ADMIN_SRC is a gateway secret name",
        "workers.claude_code.env_passthrough[1]: LD_* can make a worker load code",
        "workers.claude_code.env.FOO.env: HOTPLEX_API_KEY_ALICE is a gateway secret name",
        "workers.claude_code.env.NODE_OPTIONS: NODE_OPTIONS can make a worker load code",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
    let yaml2 = "security: {auth: {modes: [none]}, env: {allow_dangerous: [NODE_OPTIONS]}}\n\
                 workers: {claude_code: {env: {NODE_OPTIONS: x}}}\n";
    assert!(load_yaml(yaml2, &[]).0.is_ok());
}

#[test]
fn s14_s15() {
    let (r, _) = load_yaml(
        "security: {auth: {modes: [none]}, worker: {run_as: {uid: 0, gid: 5}}, jwt: {leeway: 301s}}\n\
         limits: {max_tools: 0, auth_lockout: 0s, worker: {rlimit_nofile: 0}}\n",
        &[],
    );
    let l = lines(&r.unwrap_err());
    assert_eq!(l.len(), 4, "{l:#?}");
    for needle in [
        "security.worker.run_as.uid: workers never run as uid 0 (S14)",
        "security.jwt.leeway: must be at most 300s (S15)",
        "limits.max_tools: must not be 0 (S15)",
        "limits.auth_lockout: must not be 0s (S15)",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
}

#[test]
fn s11_work_dir_roots() {
    let (cwd, path) = sandbox("s11", &[]);
    let open = cwd.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let yaml = format!(
        "{NONE_MODE}worker:\n  create_work_dir: false\n  work_dir_roots: ['/', '{open}', 'missing/{{owner_hash}}', '{cwd}']\n  default_work_dir: '/elsewhere/{{owner_hash}}'\n",
        open = open.display(),
        cwd = cwd.display()
    );
    let file = write_config(&cwd, &yaml);
    let err = load_in(&LoadOptions { path: Some(file), dev: false, env: env(&[("PATH", &path)]) }, &cwd).unwrap_err();
    let l = lines(&err);
    for needle in [
        "worker.work_dir_roots[0]: /: a work-dir root must not be / (S11)",
        "worker.work_dir_roots[1]:",
        "world-writable without the sticky bit (S11)",
        "does not exist and worker.create_work_dir is false (S11)",
        "contains the gateway's data directory",
        "contains the config file",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
    // A missing root that create_work_dir would create is fine.
    let (cwd, path) = sandbox("s11b", &[]);
    let file = write_config(
        &cwd,
        &format!(
            "{NONE_MODE}worker: {{work_dir_roots: ['w/{{owner_hash}}'], default_work_dir: 'w/{{owner_hash}}/{{session_id}}'}}\n"
        ),
    );
    let opts = LoadOptions { path: Some(file), dev: false, env: env(&[("PATH", &path)]) };
    load_in(&opts, &cwd).unwrap_or_else(|e| panic!("{e}"));
    // The default work dir must lie inside the owner's root.
    let mut opts = opts;
    opts.env.push(("HOTPLEX__WORKER__DEFAULT_WORK_DIR".into(), "/elsewhere/{owner_hash}".into()));
    let l = lines(&load_in(&opts, &cwd).unwrap_err());
    assert_eq!(
        l,
        vec![
            "config error: worker.default_work_dir: /elsewhere/{owner_hash} does not lie inside the owner's expanded worker.work_dir_roots [HOTPLEX__WORKER__DEFAULT_WORK_DIR]"
        ]
    );
}

#[test]
fn cross_field_rules() {
    let yaml = format!(
        "{NONE_MODE}gateway: {{send_queue_high_water: 4MiB, shutdown_timeout: 10s}}\nadmin: {{listen: 'localhost:8888'}}\nstore: {{url: 'postgres://x', batch_max_ops: 100, queue_capacity: 10}}\nsessions: {{max_total: 5, max_per_owner: 6, idle_timeout: 5s}}\ntracing: {{otlp_endpoint: 'https://c.example:4318', sample_ratio: 1.5}}\n"
    );
    let (r, _) = load_yaml(&yaml, &[]);
    let l = lines(&r.unwrap_err());
    for needle in [
        "gateway.send_queue_high_water: must be less than gateway.send_queue_bytes",
        "gateway.shutdown_timeout: must be at least drain_timeout + worker.kill_grace + 5s = 20s",
        "admin.listen: must differ from gateway.listen",
        "store.url: the PostgreSQL store is not available in this version",
        "store.queue_capacity: must be at least store.batch_max_ops",
        "sessions.max_per_owner: must not exceed sessions.max_total",
        "sessions.idle_timeout: must be \"0s\" (never) or at least 10s",
        "tracing.otlp_endpoint: https is not supported: send to a local OpenTelemetry Collector over http",
        "tracing.sample_ratio: must be between 0.0 and 1.0",
    ] {
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
}

#[test]
fn print_json_round_trips_the_defaults() {
    let d = Config::default();
    let json = print_json(&d);
    let back: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    assert!(json.contains("\"ping_interval\": \"30s\""));
}

#[test]
fn config_path_falls_back_to_env() {
    let e = env(&[("HOTPLEX_CONFIG", "/etc/hotplex/config.yaml")]);
    assert_eq!(config_path(None, &e), Some(PathBuf::from("/etc/hotplex/config.yaml")));
    assert_eq!(config_path(Some("x.yaml".into()), &e), Some(PathBuf::from("x.yaml")));
    assert_eq!(config_path(None, &env(&[("HOTPLEX_CONFIG", "")])), None);
}

#[test]
fn file_level_errors() {
    let (r, _) = load_yaml("- a\n- b\n", &[]);
    assert!(lines(&r.unwrap_err())[0].contains("must be a mapping of sections"));
    let (cwd, _) = sandbox("nofile", &[]);
    let err = load_in(&LoadOptions { path: Some("nope.yaml".into()), dev: false, env: vec![] }, &cwd).unwrap_err();
    assert!(lines(&err)[0].contains("cannot read the config file"));
    // An empty file is the defaults.
    let (r, _) = load_yaml("", &[]);
    assert!(s3_line(&lines(&r.unwrap_err())[0]));
}

#[test]
fn shipped_config_prod_validates_with_its_secrets() {
    // Absolute paths moved under a temp root, secrets provided (operations.md §1.6).
    let (root, path) = sandbox("prod", &["claude"]);
    let secret_file = |name: &str, content: &str| {
        let p = root.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    let metrics = secret_file("metrics.token", &format!("{}\n", "m".repeat(40)));
    let alice = secret_file("alice.key", &"k".repeat(40));
    let idp = secret_file("idp-2025.pub.pem", &std::fs::read_to_string(fixture("keys/k1.public.pem")).unwrap());
    let r = root.display().to_string();
    let tokens = format!(
        "[{{name: ops, scopes: [admin], env: HOTPLEX_ADMIN_TOKEN}}, {{name: prometheus, scopes: [read], file: '{metrics}'}}]"
    );
    let keys = format!("[{{owner: ci-bot, env: HOTPLEX_API_KEY_CI_BOT}}, {{owner: alice, file: '{alice}'}}]");
    let vars = [
        ("PATH", path.clone()),
        ("HOTPLEX_ADMIN_TOKEN", "a".repeat(40)),
        ("HOTPLEX_API_KEY_CI_BOT", "c".repeat(40)),
        ("HOTPLEX__ADMIN__TOKENS", tokens),
        ("HOTPLEX__SECURITY__API_KEYS", keys),
        ("HOTPLEX__SECURITY__JWT__PUBLIC_KEYS", format!("[{{kid: idp-2025, file: '{idp}'}}]")),
        ("HOTPLEX__STORE__PATH", format!("{r}/var/hotplex.db")),
        ("HOTPLEX__WORKER__WORK_DIR_ROOTS", format!("['{r}/work/{{owner_hash}}']")),
        ("HOTPLEX__WORKER__DEFAULT_WORK_DIR", format!("{r}/work/{{owner_hash}}")),
    ];
    let e: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let opts = LoadOptions { path: Some(shipped("config-prod.yaml")), dev: false, env: e };
    let loaded = load_in(&opts, &root).unwrap_or_else(|e| panic!("{e}"));
    let cfg = &loaded.config;
    assert_eq!(cfg.security.auth.modes, vec![AuthMode::ApiKey, AuthMode::Jwt]);
    assert_eq!(cfg.jwt_keys().iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["idp-2025"]);
    assert_eq!(cfg.security.jwt.issuer, vec!["https://idp.example.com/".to_string()]);
    let owners: Vec<&str> = cfg.security.api_keys.iter().map(|k| k.owner.as_str()).collect();
    assert_eq!(owners, ["ci-bot", "alice"]);
    assert!(cfg.security.api_keys.iter().all(|k| k.value.is_some()));
    // Without the JWT key file (the shipped path does not exist here) it is refused, naming the key.
    let mut o = opts.clone();
    o.env.retain(|(k, _)| k != "HOTPLEX__SECURITY__JWT__PUBLIC_KEYS");
    let l = lines(&load_in(&o, &root).unwrap_err());
    assert_eq!(l.len(), 1, "{l:#?}");
    assert!(
        l[0].starts_with("config error: security.jwt.public_keys[0].file: /etc/hotplex/jwt/idp-2025.pub.pem"),
        "{}",
        l[0]
    );
}

#[test]
fn empty_sections_keep_defaults() {
    let (r, _) = load_yaml(&format!("{NONE_MODE}gateway:\nlog:\n  # level: debug\n"), &[]);
    let cfg = r.unwrap_or_else(|e| panic!("{e}")).config;
    assert_eq!(cfg.gateway, Gateway::default());
}

#[test]
fn load_options_debug_hides_values() {
    let opts = LoadOptions { path: None, dev: false, env: env(&[("HOTPLEX_ADMIN_TOKEN", "very-secret")]) };
    let text = format!("{opts:?}");
    assert!(text.contains("HOTPLEX_ADMIN_TOKEN") && !text.contains("very-secret"));
}

/// `store.path: ":memory:"` names a temp database (operations.md §3.1): it is
/// neither made absolute against the config's directory nor taken as the
/// data directory that work dirs must stay out of.
#[test]
fn memory_store_path_is_kept_as_is() {
    let (r, _cwd) = load_yaml(&format!("{NONE_MODE}store: {{path: ':memory:'}}\n"), &[]);
    let loaded = r.unwrap_or_else(|e| panic!("{:?}", lines(&e)));
    assert_eq!(loaded.config.store.path, PathBuf::from(":memory:"));
    let s = crate::settings::Settings::from_config(&loaded.config, &[]);
    assert!(s.store.temp_data_dir.as_ref().is_some_and(|d| d.starts_with(std::env::temp_dir())), "{:?}", s.store);
    assert!(s.sandbox.denied_paths.iter().all(|p| !p.as_os_str().is_empty()), "{:?}", s.sandbox.denied_paths);
}

#[test]
fn run_as_user_is_resolved_at_load() {
    for (user, needle) in [
        ("hotplex-no-such-user-x", "security.worker.run_as.user: no such user"),
        ("root", "security.worker.run_as.user: workers never run as root (S14)"),
    ] {
        let yaml = format!("security: {{auth: {{modes: [none]}}, worker: {{run_as: {{user: {user}}}}}}}\n");
        let (r, _) = load_yaml(&yaml, &[]);
        let l = lines(&r.unwrap_err());
        assert!(l.iter().any(|x| x.contains(needle)), "missing {needle}: {l:#?}");
    }
    // A real account (every Linux system has `nobody` or `daemon`).
    if let Some(user) =
        ["nobody", "daemon"].into_iter().find(|u| crate::sys::user_ids(u).is_some_and(|(u, g)| u != 0 && g != 0))
    {
        let yaml = format!("security: {{auth: {{modes: [none]}}, worker: {{run_as: {{user: {user}}}}}}}\n");
        let (r, _) = load_yaml(&yaml, &[]);
        assert!(r.is_ok(), "{user}: {:?}", r.err().map(|e| lines(&e)));
    }
}
