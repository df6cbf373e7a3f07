//! The key-path diff between two configurations and the restart/live
//! classification of operations.md §1.8.
//!
//! Owns: which leaf key paths differ (`limits.rate.conn_burst`,
//! `workers.claude_code.env.MY_VAR`), the table of restart-class keys, and
//! carrying the running values of those keys into a newly loaded config.
//! Secrets are compared by value (through `PartialEq` on the loaded values)
//! but only their key paths ever leave this module. Pure: no I/O, no logging.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::adapters::WorkerType;
use crate::config::Config;

/// Keys that only take effect at the next start (operations.md §1.8). A path
/// is restart-class when it equals one of these or lies below it.
pub const RESTART_KEYS: &[&str] = &[
    "gateway.listen",
    "gateway.reactors",
    "admin.listen",
    "store.path",
    "store.url",
    "store.auto_migrate",
    "store.synchronous",
    "store.busy_timeout",
    "store.read_connections",
    "store.queue_capacity",
    "store.journal_size_limit",
    "tracing.otlp_endpoint",
    "tracing.service_name",
    "tracing.export_interval",
    "tracing.max_queue_spans",
    "tracing.headers",
];

/// How a changed key is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Applied by the reload (what it affects: the §1.8 table).
    Live,
    /// Reported and left at its running value until a restart.
    Restart,
}

/// The class of a key path.
pub fn classify(path: &str) -> Class {
    let restart = RESTART_KEYS.iter().any(|k| path == *k || path.strip_prefix(k).is_some_and(|r| r.starts_with('.')));
    if restart { Class::Restart } else { Class::Live }
}

/// Every key path whose value differs between `old` and `new`, sorted.
/// Lists and scalars are leaves (`security.api_keys`, `gateway.listen`);
/// mappings, including user maps such as `workers.<type>.env`, are walked.
/// Secret values (API keys, admin tokens, worker env and tracing header
/// values, JWT key material) and resolved worker programs are compared as
/// loaded, so a changed `{file: …}` secret is seen although both sides
/// serialise as `"***"`.
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let mut out = BTreeSet::new();
    let a = serde_json::to_value(old).unwrap_or(Value::Null);
    let b = serde_json::to_value(new).unwrap_or(Value::Null);
    walk("", Some(&a), Some(&b), &mut out);
    secrets(old, new, &mut out);
    out.into_iter().collect()
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(&p, x.get(k), y.get(k), out);
            }
        }
        (x, y) if x == y => {}
        _ => {
            out.insert(path.to_owned());
        }
    }
}

/// What serialisation cannot show: loaded secret values, key material and
/// resolved worker programs.
fn secrets(a: &Config, b: &Config, out: &mut BTreeSet<String>) {
    if a.security.api_keys != b.security.api_keys {
        out.insert("security.api_keys".into());
    }
    if a.admin.tokens != b.admin.tokens {
        out.insert("admin.tokens".into());
    }
    for t in WorkerType::ALL {
        map_diff(&format!("workers.{}.env", t.as_str()), a.workers.env(t), b.workers.env(t), out);
        match (a.worker(t), b.worker(t)) {
            (None, None) => {}
            (Some(x), Some(y)) if x == y => {}
            (Some(_), Some(_)) => {
                out.insert(format!("workers.{}.command", t.as_str()));
            }
            // `enabled: auto` flips when the command appears or disappears.
            _ => {
                out.insert(format!("workers.{}.enabled", t.as_str()));
            }
        }
    }
    map_diff("tracing.headers", &a.tracing.headers, &b.tracing.headers, out);
    if a.jwt_keys() != b.jwt_keys() {
        let jwt = &b.security.jwt;
        if !jwt.public_keys.is_empty() || a.security.jwt.public_keys != jwt.public_keys {
            out.insert("security.jwt.public_keys".into());
        }
        if !jwt.jwks_file.as_os_str().is_empty() || a.security.jwt.jwks_file != jwt.jwks_file {
            out.insert("security.jwt.jwks_file".into());
        }
    }
}

fn map_diff<V: PartialEq>(prefix: &str, a: &BTreeMap<String, V>, b: &BTreeMap<String, V>, out: &mut BTreeSet<String>) {
    for k in a.keys().chain(b.keys()) {
        if a.get(k) != b.get(k) {
            out.insert(format!("{prefix}.{k}"));
        }
    }
}

/// Copy the running values of every restart-class key into `new`, so what
/// gets validated and published is what can actually run.
pub fn keep_restart_keys(new: &mut Config, running: &Config) {
    new.gateway.listen = running.gateway.listen;
    new.gateway.reactors = running.gateway.reactors;
    new.admin.listen = running.admin.listen;
    let (s, r) = (&mut new.store, &running.store);
    s.path = r.path.clone();
    s.url = r.url.clone();
    s.auto_migrate = r.auto_migrate;
    s.synchronous = r.synchronous;
    s.busy_timeout = r.busy_timeout;
    s.read_connections = r.read_connections;
    s.queue_capacity = r.queue_capacity;
    s.journal_size_limit = r.journal_size_limit;
    let (t, r) = (&mut new.tracing, &running.tracing);
    t.otlp_endpoint = r.otlp_endpoint.clone();
    t.service_name = r.service_name.clone();
    t.export_interval = r.export_interval;
    t.max_queue_spans = r.max_queue_spans;
    t.headers = r.headers.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SecretValue};
    use std::time::Duration;

    fn changed(f: impl FnOnce(&mut Config)) -> Vec<String> {
        let a = Config::default();
        let mut b = Config::default();
        f(&mut b);
        diff(&a, &b)
    }

    #[test]
    fn identical_configs_have_no_diff() {
        assert!(diff(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn leaf_paths_are_reported() {
        assert_eq!(changed(|c| c.limits.rate.conn_burst = 7), ["limits.rate.conn_burst"]);
        assert_eq!(changed(|c| c.sessions.max_per_owner = 1), ["sessions.max_per_owner"]);
        assert_eq!(
            changed(|c| {
                c.gateway.ping_interval = Duration::from_secs(5);
                c.log.targets.insert("hotplex::store".into(), crate::config::LogLevel::Debug);
            }),
            ["gateway.ping_interval", "log.targets.hotplex::store"]
        );
        // lists are leaves
        assert_eq!(changed(|c| c.security.tools.denied.push("Bash".into())), ["security.tools.denied"]);
    }

    #[test]
    fn secrets_are_compared_by_value_and_never_named_by_value() {
        let key = |v: &str| crate::config::ApiKey {
            owner: "alice".into(),
            env: None,
            file: Some("/run/k".into()),
            key: None,
            value: Some(Secret::new(v.into())),
        };
        let mut a = Config::default();
        a.security.api_keys.push(key("old-secret-value-0123456789abcdef"));
        let mut b = a.clone();
        b.security.api_keys[0] = key("new-secret-value-0123456789abcdef");
        // Both serialise alike ("file" only); the loaded values differ.
        assert_eq!(serde_json::to_value(&a).ok(), serde_json::to_value(&b).ok());
        let d = diff(&a, &b);
        assert_eq!(d, ["security.api_keys"]);
        assert!(!format!("{d:?}").contains("secret-value"));

        let mut c = Config::default();
        c.workers.claude_code.env.insert(
            "TOKEN".into(),
            SecretValue::File { file: "/run/t".into(), value: Some(Secret::new("one".into())) },
        );
        let mut e = c.clone();
        e.workers.claude_code.env.insert(
            "TOKEN".into(),
            SecretValue::File { file: "/run/t".into(), value: Some(Secret::new("two".into())) },
        );
        assert_eq!(diff(&c, &e), ["workers.claude_code.env.TOKEN"]);
    }

    #[test]
    fn classification_follows_the_table() {
        for k in RESTART_KEYS {
            assert_eq!(classify(k), Class::Restart, "{k}");
        }
        assert_eq!(classify("tracing.headers.authorization"), Class::Restart);
        for k in [
            "gateway.max_connections",
            "gateway.listen_backlog_is_not_a_key",
            "admin.tokens",
            "admin.rate_limit.burst",
            "store.batch_max_ops",
            "store.commit_interval",
            "store.retention",
            "store.replay_retention",
            "sessions.max_per_owner",
            "worker.kill_grace",
            "workers.claude_code.enabled",
            "security.api_keys",
            "limits.rate.conn_burst",
            "log.level",
            "tracing.sample_ratio",
            "reload.poll_interval",
        ] {
            assert_eq!(classify(k), Class::Live, "{k}");
        }
    }

    #[test]
    fn every_restart_key_is_carried_over() {
        let running = Config::default();
        let mut file = Config::default();
        file.gateway.listen = "127.0.0.1:1".parse().unwrap();
        file.gateway.reactors = 3;
        file.admin.listen = "127.0.0.1:2".parse().unwrap();
        file.store.path = "/elsewhere/db".into();
        file.store.url = "postgres://x".into();
        file.store.auto_migrate = false;
        file.store.synchronous = crate::config::Synchronous::Full;
        file.store.busy_timeout = Duration::from_secs(1);
        file.store.read_connections = 9;
        file.store.queue_capacity = 99;
        file.store.journal_size_limit = 1;
        file.tracing.otlp_endpoint = "http://127.0.0.1:4318".into();
        file.tracing.service_name = "x".into();
        file.tracing.export_interval = Duration::from_secs(9);
        file.tracing.max_queue_spans = 9;
        file.tracing.headers.insert("h".into(), SecretValue::Literal(Secret::new("v".into())));
        file.sessions.max_total = 5; // live: stays

        let d = diff(&running, &file);
        let restart: Vec<&str> = d.iter().filter(|k| classify(k) == Class::Restart).map(|k| k.as_str()).collect();
        // Every entry of the table is seen as changed (tracing.headers by its entry).
        for k in RESTART_KEYS {
            assert!(restart.iter().any(|r| r == k || r.starts_with(&format!("{k}."))), "{k} not detected: {d:?}");
        }

        keep_restart_keys(&mut file, &running);
        assert_eq!(diff(&running, &file), ["sessions.max_total"]);
    }
}
