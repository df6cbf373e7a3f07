//! The shipped deployment files (operations.md §10): the Grafana dashboard
//! and the alert rules use only metric names of the §5.2 catalogue, the
//! Prometheus config and rules pass `promtool`, the systemd unit passes
//! `systemd-analyze verify` and keeps the §10.1 hardening, the Dockerfile
//! passes hadolint and has the §10.2 shape. (The image itself needs a Docker
//! engine: see `docs/operations.md`.)

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::TempDir;

/// Every exposed name of the §5.2 catalogue (operations.md), plus the
/// standard process metrics of §5.1.
const CATALOGUE: &[&str] = &[
    "hotplex_build_info",
    "hotplex_start_time_seconds",
    "hotplex_ws_connections",
    "hotplex_ws_connections_opened_total",
    "hotplex_ws_connections_closed_total",
    "hotplex_ws_upgrade_rejections_total",
    "hotplex_ws_bytes_total",
    "hotplex_ws_send_queue_bytes",
    "hotplex_sessions",
    "hotplex_sessions_created_total",
    "hotplex_sessions_resumed_total",
    "hotplex_sessions_terminated_total",
    "hotplex_sessions_deleted_total",
    "hotplex_init_failures_total",
    "hotplex_turns_total",
    "hotplex_turn_duration_seconds",
    "hotplex_turn_first_delta_seconds",
    "hotplex_turn_tokens_total",
    "hotplex_turn_cost_usd_total",
    "hotplex_session_events_total",
    "hotplex_events_sent_total",
    "hotplex_events_received_total",
    "hotplex_aep_errors_total",
    "hotplex_frames_coalesced_total",
    "hotplex_slow_consumer_disconnects_total",
    "hotplex_line_to_frame_seconds",
    "hotplex_replay_requests_total",
    "hotplex_replay_events_total",
    "hotplex_worker_spawns_total",
    "hotplex_worker_exits_total",
    "hotplex_worker_processes",
    "hotplex_worker_io_bytes_total",
    "hotplex_worker_unmapped_lines_total",
    "hotplex_worker_output_limit_total",
    "hotplex_permission_requests_total",
    "hotplex_permission_decisions_total",
    "hotplex_permission_wait_seconds",
    "hotplex_store_queue_depth",
    "hotplex_store_queue_capacity",
    "hotplex_store_batch_ops",
    "hotplex_store_commit_seconds",
    "hotplex_store_ops_total",
    "hotplex_store_deltas_merged_total",
    "hotplex_store_backpressure_total",
    "hotplex_store_blocked_sessions",
    "hotplex_store_errors_total",
    "hotplex_store_purged_total",
    "hotplex_store_db_bytes",
    "hotplex_store_wal_bytes",
    "hotplex_auth_failures_total",
    "hotplex_rate_limited_frames_total",
    "hotplex_throttle_notices_total",
    "hotplex_admin_requests_total",
    "hotplex_reactor_iterations_total",
    "hotplex_reactor_busy_seconds_total",
    "hotplex_reactor_timer_lag_seconds",
    "hotplex_config_reloads_total",
    "hotplex_config_generation",
    "hotplex_config_restart_pending",
    "hotplex_ready",
    "hotplex_draining",
    "hotplex_log_lines_dropped_total",
    "hotplex_tracing_spans_dropped_total",
    "hotplex_tracing_export_errors_total",
    "hotplex_security_shared_worker_uid",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_threads",
    "process_start_time_seconds",
];

/// Catalogue entries of type histogram (only they have `_bucket`/`_sum`/`_count` series).
const HISTOGRAMS: &[&str] = &[
    "hotplex_turn_duration_seconds",
    "hotplex_turn_first_delta_seconds",
    "hotplex_line_to_frame_seconds",
    "hotplex_permission_wait_seconds",
    "hotplex_store_batch_ops",
    "hotplex_store_commit_seconds",
    "hotplex_reactor_timer_lag_seconds",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Metric names in a PromQL expression: identifiers starting `hotplex_` or
/// `process_`, or `up`, outside label matchers and strings.
fn metric_names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut depth, mut in_str) = (0, 0usize, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            _ if (c.is_ascii_alphabetic() || c == b'_') && depth == 0 => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                let word = &expr[start..i];
                let prev = expr[..start].trim_end();
                // `by (le)`, `without (x)`: label lists, not metrics
                let label_list = prev.ends_with('(') && {
                    let before = prev[..prev.len() - 1].trim_end();
                    before.ends_with(" by") || before.ends_with(" without") || before == "by" || before == "without"
                };
                if !label_list && (word.starts_with("hotplex_") || word.starts_with("process_") || word == "up") {
                    out.push(word.to_string());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `name` is a catalogue metric, or a histogram's `_bucket`/`_sum`/`_count` series.
fn in_catalogue(name: &str) -> bool {
    if CATALOGUE.contains(&name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s).is_some_and(|base| HISTOGRAMS.contains(&base)))
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_exprs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_name_extractor_finds_metrics_and_skips_labels() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(hotplex_line_to_frame_seconds_bucket{instance=~"$instance"}[5m])))"#
        ),
        ["hotplex_line_to_frame_seconds_bucket"]
    );
    assert_eq!(
        metric_names(r#"hotplex_ready == 0 and hotplex_draining{x="hotplex_fake"} == 0"#),
        ["hotplex_ready", "hotplex_draining"]
    );
    assert_eq!(metric_names(r#"up{job="hotplex"} == 0"#), ["up"]);
    assert!(in_catalogue("hotplex_store_batch_ops_sum"));
    assert!(!in_catalogue("hotplex_turns_total_bucket"));
    assert!(!in_catalogue("hotplex_no_such_metric"));
}

#[test]
fn grafana_dashboard_uses_only_catalogue_metrics() {
    let text = std::fs::read_to_string(root().join("configs/grafana/hotplex.json")).expect("read the dashboard");
    let d: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(d["uid"], "hotplex");
    assert_eq!(d["refresh"], "10s");
    let vars = d["templating"]["list"].as_array().expect("templating variables");
    let instance = vars.iter().find(|v| v["name"] == "instance").expect("an `instance` variable");
    assert_eq!(instance["definition"], "label_values(hotplex_build_info, instance)");
    let titles: BTreeSet<&str> = d["panels"].as_array().unwrap().iter().filter_map(|p| p["title"].as_str()).collect();
    for t in [
        "Build",
        "Connections",
        "Closes by reason",
        "Sessions by state",
        "Session churn",
        "Turns by outcome",
        "Turn duration p50/p95/p99",
        "Time to first delta p95",
        "Events sent by type",
        "Line→frame p99",
        "Backpressure",
        "Bytes",
        "Workers",
        "Permissions",
        "Store",
        "Errors",
        "Reactor utilisation",
        "Tokens and cost",
        "Process",
    ] {
        assert!(titles.contains(t), "panel {t:?} of operations.md §10.5 missing; have {titles:?}");
    }
    let mut exprs = Vec::new();
    collect_exprs(&d["panels"], &mut exprs);
    assert!(exprs.len() >= 30, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "no metric in {e:?}");
        for n in names {
            assert!(in_catalogue(&n), "{n} (in {e:?}) is not in the operations.md §5.2 catalogue");
            used.insert(n);
        }
        // every selector filters the instance variable
        assert_eq!(e.matches(r#"instance=~"$instance""#).count(), e.matches('{').count(), "{e}");
    }
    assert!(used.len() >= 30, "{used:?}");
}

#[test]
fn alert_rules_use_only_catalogue_metrics() {
    let text = std::fs::read_to_string(root().join("configs/prometheus/alerts.yml")).expect("read alerts.yml");
    let v: Value = serde_saphyr::from_str(&text).expect("alerts.yml is YAML");
    let rules = v["groups"][0]["rules"].as_array().expect("rules");
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    let want = [
        "HotplexDown",
        "HotplexNotReady",
        "HotplexStoreBacklog",
        "HotplexWorkerCrashes",
        "HotplexSlowConsumers",
        "HotplexReactorSaturated",
        "HotplexLatencyP99",
    ];
    assert_eq!(names, want.into_iter().collect(), "the §10.4 alert set");
    for r in rules {
        let e = r["expr"].as_str().expect("expr");
        for n in metric_names(e) {
            assert!(n == "up" || in_catalogue(&n), "{n} (alert {}) is not in the catalogue", r["alert"]);
        }
    }
}

fn tool(env: &str, names: &[&str]) -> Option<PathBuf> {
    support::tools::find_tool(env, names)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    let promtool = tool("HOTPLEX_PROMTOOL", &["promtool"])
        .expect("promtool is missing: install the Debian package `prometheus` (scripts/test.sh does)");
    let dir = root().join("configs/prometheus");
    let (ok, out) =
        run(Command::new(&promtool).args(["check", "config", "--syntax-only"]).arg(dir.join("prometheus.yml")));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new(&promtool).args(["check", "rules"]).arg(dir.join("alerts.yml")));
    assert!(ok && out.contains("7 rules found"), "{out}");

    // The full check (rule files and the credentials file resolved): a copy
    // whose only change is the token path.
    let tmp = TempDir::new("promtool");
    let token = tmp.path().join("hotplex-metrics.token");
    std::fs::write(&token, "x".repeat(40)).unwrap();
    let cfg = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    assert_eq!(cfg.matches("/etc/prometheus/hotplex-metrics.token").count(), 1);
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        cfg.replace("/etc/prometheus/hotplex-metrics.token", token.to_str().unwrap()),
    )
    .unwrap();
    std::fs::copy(dir.join("alerts.yml"), tmp.path().join("alerts.yml")).unwrap();
    let (ok, out) = run(Command::new(&promtool).args(["check", "config"]).arg(tmp.path().join("prometheus.yml")));
    assert!(ok && out.contains("SUCCESS: 7 rules found"), "{out}");

    // Two alerts behave as documented on synthetic series.
    let tests = r#"rule_files: ["alerts.yml"]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hotplex_store_queue_depth{instance="a"}'
        values: '10+0x10 9000+0x10'
      - series: 'hotplex_store_queue_capacity{instance="a"}'
        values: '16384+0x20'
      - series: 'hotplex_ready{instance="a"}'
        values: '0+0x20'
      - series: 'hotplex_draining{instance="a"}'
        values: '1+0x20'
    alert_rule_test:
      - eval_time: 9m
        alertname: HotplexStoreBacklog
        exp_alerts: []
      - eval_time: 14m
        alertname: HotplexStoreBacklog
        exp_alerts:
          - exp_labels: {severity: warn, instance: a}
            exp_annotations: {summary: "hotplex a: store writer queue above half full"}
      - eval_time: 20m
        alertname: HotplexNotReady
        exp_alerts: []
"#;
    std::fs::write(tmp.path().join("alerts_test.yml"), tests).unwrap();
    let (ok, out) = run(Command::new(&promtool).args(["test", "rules"]).arg(tmp.path().join("alerts_test.yml")));
    assert!(ok, "{out}");
}

#[test]
fn systemd_unit_verifies_and_keeps_its_hardening() {
    let unit = std::fs::read_to_string(root().join("scripts/hotplex.service")).expect("read the unit");
    for line in [
        "User=hotplex",
        "Group=hotplex",
        "StateDirectory=hotplex",
        "StateDirectoryMode=0700",
        "KillMode=mixed",
        "TimeoutStopSec=45",
        "Restart=on-failure",
        "LimitNOFILE=1048576",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/hotplex /srv/hotplex/work",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "ExecStart=/usr/local/bin/hotplex run --config /etc/hotplex/config.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "{line:?} missing from scripts/hotplex.service");
    }
    assert!(!unit.lines().any(|l| l.starts_with("MemoryDenyWriteExecute")), "Node agents JIT");
    // Type=notify only once the gateway sends READY=1 (it does not yet).
    assert!(unit.lines().any(|l| l == "Type=simple") && !unit.contains("\nWatchdogSec"), "see the unit's header");

    let Some(analyze) = tool("HOTPLEX_SYSTEMD_ANALYZE", &["systemd-analyze"]) else {
        println!("skipped systemd-analyze verify: systemd-analyze is not installed here");
        return;
    };
    // verify checks that executables exist: point them at the built binary.
    let tmp = TempDir::new("unit");
    let copy = unit.replace("/usr/local/bin/hotplex", env!("CARGO_BIN_EXE_hotplex"));
    let path = tmp.path().join("hotplex.service");
    std::fs::write(&path, copy).unwrap();
    let (ok, out) = run(Command::new(analyze).arg("verify").arg(&path));
    assert!(ok && out.trim().is_empty(), "systemd-analyze verify: {out}");
}

#[test]
fn dockerfile_lints_clean_and_has_the_spec_shape() {
    let path = root().join("scripts/Dockerfile");
    let text = std::fs::read_to_string(&path).expect("read the Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms, ["FROM rust:1.95-bookworm AS build", "FROM node:22-bookworm-slim"]);
    for needle in [
        "cargo build --release --locked --bin hotplex",
        "ARG HOTPLEX_GIT_SHA",
        "ARG PGO",
        "ARG AGENTS",
        "apt-get install -y --no-install-recommends ca-certificates tini curl",
        "--uid 10001",
        "COPY configs/config-prod.yaml /etc/hotplex/config.yaml",
        r#"VOLUME ["/var/lib/hotplex", "/srv/hotplex/work"]"#,
        "EXPOSE 8888 9999",
        "HOTPLEX__ADMIN__ALLOW_NON_LOOPBACK=true",
        "HEALTHCHECK --interval=15s --timeout=3s CMD curl -fsS http://127.0.0.1:9999/ready || exit 1",
        r#"ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/hotplex"]"#,
        r#"CMD ["run", "--config", "/etc/hotplex/config.yaml"]"#,
    ] {
        assert!(text.contains(needle), "{needle:?} missing from scripts/Dockerfile");
    }
    // every COPY source exists in the build context (and is not excluded)
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore at the root");
    for src in ["configs/config-prod.yaml", "Cargo.lock", "src", "build.rs"] {
        assert!(Path::new(&root().join(src)).exists());
        assert!(!ignore.lines().any(|l| l.trim() == src), "{src} is excluded from the context");
    }
    let hadolint = tool("HOTPLEX_HADOLINT", &["hadolint"])
        .expect("hadolint is missing: run scripts/install-py-tools.sh (scripts/test.sh does)");
    let (ok, out) = run(Command::new(hadolint).arg(&path));
    assert!(ok && out.trim().is_empty(), "hadolint: {out}");
}
