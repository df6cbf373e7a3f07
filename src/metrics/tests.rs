//! `render()` against the §5.2 catalogue, read back with a small OpenMetrics
//! text parser (written here, so the test does not trust the encoder).

use std::collections::{BTreeMap, BTreeSet};

use super::labels as l;

/// One parsed exposition: `# TYPE` per family and every sample.
#[derive(Debug, Default)]
pub struct Exposition {
    pub types: BTreeMap<String, String>,
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
    pub eof: bool,
}

/// Parse OpenMetrics text; panics on a malformed line (the encoder's output must be well formed).
pub fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        assert!(!e.eof, "text after # EOF: {line}");
        if line == "# EOF" {
            e.eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE name type");
            assert!(e.types.insert(name.to_string(), ty.to_string()).is_none(), "family {name} twice");
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (head, value) = line.rsplit_once(' ').expect("sample value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "quoted value in {line}");
                    let mut val = String::new();
                    loop {
                        match chars.next().expect("unterminated label value") {
                            '\\' => val.push(chars.next().expect("escape")),
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    assert!(labels.insert(key.clone(), val).is_none(), "label {key} twice in {line}");
                }
                (n.to_string(), labels)
            }
        };
        e.samples.push((name, labels, value));
    }
    e
}

impl Exposition {
    /// Samples of one series name.
    pub fn series(&self, name: &str) -> Vec<&(String, BTreeMap<String, String>, f64)> {
        self.samples.iter().filter(|s| s.0 == name).collect()
    }

    /// The value of `name{labels}` (labels given must match exactly).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.0 == name && s.1 == want).map(|s| s.2)
    }
}

/// (family as in `# TYPE`, type, closed label sets (key, values) — empty for
/// none; `None` for open-ended labels).
type Family = (&'static str, &'static str, Option<Vec<(&'static str, Vec<&'static str>)>>);

fn closed(sets: &[(&'static str, &[&'static str])]) -> Option<Vec<(&'static str, Vec<&'static str>)>> {
    Some(sets.iter().map(|(k, v)| (*k, v.to_vec())).collect())
}

/// Every metric of operations.md §5.2 and §5.1's process metrics.
pub fn catalogue() -> Vec<Family> {
    let wt = ("worker_type", l::WORKER_TYPES);
    let none = || closed(&[]);
    vec![
        ("hotplex_build", "info", None),
        ("hotplex_start_time_seconds", "gauge", none()),
        ("hotplex_ws_connections", "gauge", closed(&[("phase", l::CONN_PHASES)])),
        ("hotplex_ws_connections_opened", "counter", none()),
        ("hotplex_ws_connections_closed", "counter", closed(&[("reason", l::CLOSE_REASONS)])),
        ("hotplex_ws_upgrade_rejections", "counter", closed(&[("reason", l::UPGRADE_REJECTIONS)])),
        ("hotplex_ws_bytes", "counter", closed(&[("direction", l::DIRECTIONS)])),
        ("hotplex_ws_send_queue_bytes", "gauge", none()),
        ("hotplex_sessions", "gauge", closed(&[("state", l::SESSION_STATES)])),
        ("hotplex_sessions_created", "counter", closed(&[wt])),
        ("hotplex_sessions_resumed", "counter", closed(&[wt])),
        ("hotplex_sessions_terminated", "counter", closed(&[wt, ("reason", l::TERM_REASONS)])),
        ("hotplex_sessions_deleted", "counter", closed(&[("source", l::DELETE_SOURCES)])),
        ("hotplex_init_failures", "counter", closed(&[("code", l::INIT_FAILURE_CODES)])),
        ("hotplex_turns", "counter", closed(&[wt, ("outcome", l::TURN_OUTCOMES)])),
        ("hotplex_turn_duration_seconds", "histogram", closed(&[wt])),
        ("hotplex_turn_first_delta_seconds", "histogram", closed(&[wt])),
        ("hotplex_turn_tokens", "counter", closed(&[wt, ("kind", l::TOKEN_KINDS)])),
        ("hotplex_turn_cost_usd", "counter", closed(&[wt])),
        ("hotplex_session_events", "counter", closed(&[("type", l::EVENT_TYPES)])),
        ("hotplex_events_sent", "counter", closed(&[("type", l::EVENT_TYPES)])),
        ("hotplex_events_received", "counter", closed(&[("type", l::CLIENT_EVENT_TYPES)])),
        ("hotplex_aep_errors", "counter", closed(&[("code", l::error_codes())])),
        ("hotplex_frames_coalesced", "counter", none()),
        ("hotplex_slow_consumer_disconnects", "counter", none()),
        ("hotplex_line_to_frame_seconds", "histogram", none()),
        ("hotplex_replay_requests", "counter", closed(&[("result", l::REPLAY_RESULTS)])),
        ("hotplex_replay_events", "counter", none()),
        ("hotplex_worker_spawns", "counter", closed(&[wt, ("result", l::SPAWN_RESULTS)])),
        ("hotplex_worker_exits", "counter", closed(&[wt, ("class", l::EXIT_CLASSES)])),
        ("hotplex_worker_processes", "gauge", closed(&[wt])),
        ("hotplex_worker_io_bytes", "counter", closed(&[wt, ("stream", l::STREAMS)])),
        ("hotplex_worker_unmapped_lines", "counter", closed(&[wt])),
        ("hotplex_worker_output_limit", "counter", closed(&[wt])),
        ("hotplex_permission_requests", "counter", closed(&[wt])),
        ("hotplex_permission_decisions", "counter", closed(&[wt, ("decision", l::DECISIONS)])),
        ("hotplex_permission_wait_seconds", "histogram", none()),
        ("hotplex_store_queue_depth", "gauge", none()),
        ("hotplex_store_queue_capacity", "gauge", none()),
        ("hotplex_store_batch_ops", "histogram", none()),
        ("hotplex_store_commit_seconds", "histogram", none()),
        ("hotplex_store_ops", "counter", closed(&[("op", l::STORE_OPS)])),
        ("hotplex_store_deltas_merged", "counter", none()),
        ("hotplex_store_backpressure", "counter", none()),
        ("hotplex_store_blocked_sessions", "gauge", none()),
        ("hotplex_store_errors", "counter", closed(&[("op", l::STORE_ERROR_OPS)])),
        ("hotplex_store_purged", "counter", closed(&[("what", l::PURGED)])),
        ("hotplex_store_db_bytes", "gauge", none()),
        ("hotplex_store_wal_bytes", "gauge", none()),
        ("hotplex_auth_failures", "counter", closed(&[("listener", l::LISTENERS), ("reason", l::AUTH_REASONS)])),
        ("hotplex_rate_limited_frames", "counter", none()),
        ("hotplex_throttle_notices", "counter", none()),
        ("hotplex_admin_requests", "counter", None),
        ("hotplex_reactor_iterations", "counter", None),
        ("hotplex_reactor_busy_seconds", "counter", None),
        ("hotplex_reactor_timer_lag_seconds", "histogram", none()),
        ("hotplex_config_reloads", "counter", closed(&[("result", l::RELOAD_RESULTS)])),
        ("hotplex_config_generation", "gauge", none()),
        ("hotplex_config_restart_pending", "gauge", none()),
        ("hotplex_ready", "gauge", none()),
        ("hotplex_draining", "gauge", none()),
        ("hotplex_log_lines_dropped", "counter", none()),
        ("hotplex_tracing_spans_dropped", "counter", none()),
        ("hotplex_tracing_export_errors", "counter", none()),
        ("hotplex_security_shared_worker_uid", "gauge", none()),
        ("process_cpu_seconds", "counter", none()),
        ("process_resident_memory_bytes", "gauge", none()),
        ("process_virtual_memory_bytes", "gauge", none()),
        ("process_open_fds", "gauge", none()),
        ("process_max_fds", "gauge", none()),
        ("process_threads", "gauge", none()),
        ("process_start_time_seconds", "gauge", none()),
    ]
}

/// The sample name of a family's single value (`_total` for counters).
fn sample_name(family: &str, ty: &str) -> String {
    match ty {
        "counter" => format!("{family}_total"),
        "info" => format!("{family}_info"),
        _ => family.to_string(),
    }
}

/// Every closed label combination of a family.
fn combinations(sets: &[(&'static str, Vec<&'static str>)]) -> Vec<BTreeMap<String, String>> {
    let mut out = vec![BTreeMap::new()];
    for (k, values) in sets {
        out = out
            .iter()
            .flat_map(|m| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    m.insert(k.to_string(), v.to_string());
                    m
                })
            })
            .collect();
    }
    out
}

/// Checks shared with the black-box test: every family with its type, every
/// closed combination present; histograms with ascending cumulative buckets.
pub fn check_catalogue(e: &Exposition) {
    assert!(e.eof, "exposition must end with # EOF");
    for (family, ty, sets) in catalogue() {
        assert_eq!(e.types.get(family).map(String::as_str), Some(ty), "# TYPE {family} {ty}");
        let Some(sets) = sets else { continue };
        for combo in combinations(&sets) {
            if ty == "histogram" {
                let buckets: Vec<_> = e
                    .series(&format!("{family}_bucket"))
                    .into_iter()
                    .filter(|s| combo.iter().all(|(k, v)| s.1.get(k) == Some(v)))
                    .collect();
                assert!(!buckets.is_empty(), "{family} {combo:?} has buckets");
                assert_eq!(buckets.last().map(|b| b.1["le"].as_str()), Some("+Inf"), "{family} ends with +Inf");
                assert!(buckets.windows(2).all(|w| w[0].2 <= w[1].2), "{family} buckets are cumulative");
                let count = e.value(&format!("{family}_count"), &combo_ref(&combo));
                assert_eq!(count, Some(buckets.last().map(|b| b.2).unwrap_or(-1.0)), "{family} count = +Inf bucket");
                assert!(e.value(&format!("{family}_sum"), &combo_ref(&combo)).is_some(), "{family}_sum {combo:?}");
            } else {
                let name = sample_name(family, ty);
                assert!(e.value(&name, &combo_ref(&combo)).is_some(), "{name} {combo:?} present");
            }
        }
        if ty != "histogram" {
            // nothing beyond the closed set
            let name = sample_name(family, ty);
            assert_eq!(e.series(&name).len(), combinations(&sets).len(), "{name}: only the closed label set");
        }
    }
}

fn combo_ref(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn every_catalogue_metric_is_exposed_with_its_type_and_closed_labels() {
    let e = parse(&super::render());
    check_catalogue(&e);
    let info = e.series("hotplex_build_info");
    assert_eq!(info.len(), 1);
    let keys: BTreeSet<&str> = info[0].1.keys().map(String::as_str).collect();
    assert_eq!(keys, ["git_sha", "pgo", "profile", "rustc", "target", "version"].into_iter().collect());
    assert_eq!(info[0].1["version"], env!("CARGO_PKG_VERSION"));
    assert!(matches!(info[0].1["pgo"].as_str(), "true" | "false"));
    assert_eq!(info[0].2, 1.0);
    // series nobody else in this test binary touches start at 0
    assert_eq!(e.value("hotplex_config_reloads_total", &[("result", "invalid")]), Some(0.0));
    assert_eq!(e.value("hotplex_auth_failures_total", &[("listener", "admin"), ("reason", "revoked")]), Some(0.0));
    assert_eq!(e.value("hotplex_sessions_deleted_total", &[("source", "api")]), Some(0.0));
    assert!(e.value("process_threads", &[]).is_some_and(|v| v >= 1.0));
    assert!(e.value("process_cpu_seconds_total", &[]).is_some());
}

#[test]
fn bumps_show_in_the_next_scrape() {
    use crate::adapters::WorkerType;
    let before = parse(&super::render());
    super::config_reloaded(super::ReloadResult::Unchanged);
    super::auth_failure(super::Listener::Api, "expired");
    super::auth_failure(super::Listener::Api, "no_such_label");
    crate::otel::SPANS_DROPPED.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
    super::worker_spawned(WorkerType::Acpx, false);
    super::admin_request("/admin/sessions/{id}", 404);
    let stats = crate::protocol::Stats {
        input_tokens: Some(10),
        output_tokens: Some(5),
        cost_usd: Some(0.25),
        ..Default::default()
    };
    let started = std::time::Instant::now() - std::time::Duration::from_millis(1500);
    super::turn_ended(WorkerType::Pi, started, super::TurnOutcome::Success, Some(&stats));
    let after = parse(&super::render());
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels).unwrap_or(f64::NAN) - before.value(name, labels).unwrap_or(0.0)
    };
    assert_eq!(delta("hotplex_config_reloads_total", &[("result", "unchanged")]), 1.0);
    assert_eq!(delta("hotplex_auth_failures_total", &[("listener", "api"), ("reason", "expired")]), 1.0);
    // otel unit tests bump the same counter concurrently
    assert!(delta("hotplex_tracing_spans_dropped_total", &[]) >= 3.0);
    assert_eq!(delta("hotplex_worker_spawns_total", &[("worker_type", "acpx"), ("result", "error")]), 1.0);
    assert_eq!(delta("hotplex_admin_requests_total", &[("route", "/admin/sessions/{id}"), ("status", "404")]), 1.0);
    assert_eq!(delta("hotplex_turns_total", &[("worker_type", "pi"), ("outcome", "success")]), 1.0);
    assert_eq!(delta("hotplex_turn_tokens_total", &[("worker_type", "pi"), ("kind", "output")]), 5.0);
    assert!((delta("hotplex_turn_cost_usd_total", &[("worker_type", "pi")]) - 0.25).abs() < 1e-9);
    assert_eq!(delta("hotplex_turn_duration_seconds_bucket", &[("worker_type", "pi"), ("le", "2.5")]), 1.0);
    assert_eq!(delta("hotplex_turn_duration_seconds_bucket", &[("worker_type", "pi"), ("le", "1.0")]), 0.0);
    assert_eq!(delta("hotplex_turn_duration_seconds_count", &[("worker_type", "pi")]), 1.0);
    assert_eq!(after.types.get("hotplex_admin_requests").map(String::as_str), Some("counter"));
}

#[test]
fn gauges_follow_their_guards() {
    use crate::protocol::SessionState;
    let value = |e: &Exposition, state: &str| e.value("hotplex_sessions", &[("state", state)]).unwrap_or(f64::NAN);
    // other tests in this binary create sessions concurrently: compare our own changes only
    let mut g = super::SessionGauge::new(SessionState::Created);
    let created_with = super::state::SESSIONS_LIVE[0].load(std::sync::atomic::Ordering::Relaxed);
    assert!(created_with >= 1);
    g.set(SessionState::Running);
    g.set(SessionState::Terminated);
    drop(g);
    let e = parse(&super::render());
    assert!(value(&e, "created") >= 0.0 && value(&e, "running") >= 0.0);
    super::set_config_generation(7);
    super::set_draining(true);
    let e = parse(&super::render());
    assert_eq!(e.value("hotplex_config_generation", &[]), Some(7.0));
    assert_eq!(e.value("hotplex_draining", &[]), Some(1.0));
    assert_eq!(e.value("hotplex_ready", &[]), Some(0.0), "never ready while draining");
    super::set_draining(false);
    super::set_config_generation(1);
}
