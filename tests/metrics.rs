//! Black-box: `GET /metrics` on the admin listener of the real binary, read
//! with a small OpenMetrics parser written here, while a real client drives
//! a session on the mock agent. Asserts what an operator would look for:
//! the whole catalogue at startup, and each metric moving when the thing it
//! describes happens (operations.md §5).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Client, Gateway, Options, WAIT, eventually, is_state, raw};

/// `/metrics` public on the admin listener (the harness binds it and reads
/// its address from stderr), its rate limit lifted for polling scrapes; the
/// admin tokens of `support::admin` too.
const ADMIN_YAML: &str = "admin:\n  metrics_public: true\n  rate_limit: {requests_per_second: 10000, burst: 10000}\n";

fn start(extra: &str, mut env: Vec<(String, String)>) -> (Gateway, SocketAddr) {
    env.extend(support::admin::tokens_env());
    let yaml = format!("{}{ADMIN_YAML}{extra}", support::admin::tokens_yaml());
    let gw = Gateway::start_with(Options { yaml, env, ..Options::default() });
    let admin = gw.admin_addr;
    (gw, admin)
}

/// One scrape: `# TYPE` per family and every sample.
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn parse(text: &str) -> Scrape {
    let mut s = Scrape { types: BTreeMap::new(), samples: Vec::new() };
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "text after # EOF");
        if line == "# EOF" {
            eof = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("# TYPE name type");
            s.types.insert(name.to_owned(), ty.to_owned());
        } else if !line.starts_with('#') {
            let (head, value) = line.rsplit_once(' ').expect("sample value");
            let value = if value == "+Inf" { f64::INFINITY } else { value.parse().expect("numeric value") };
            let (name, labels) = match head.split_once('{') {
                None => (head, BTreeMap::new()),
                Some((n, body)) => {
                    let body = body.strip_suffix('}').expect("closing brace");
                    // label values here never hold quotes, commas or escapes
                    let labels = body
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label k=v");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (n, labels)
                }
            };
            s.samples.push((name.to_owned(), labels, value));
        }
    }
    assert!(eof, "exposition ends with # EOF");
    s
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.0 == name && s.1 == want).map(|s| s.2)
    }

    /// The value, which must be present.
    fn v(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("{name}{labels:?} is not exposed"))
    }

    /// Sum over every series of `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.0 == name && labels.iter().all(|(k, v)| s.1.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.2)
            .sum()
    }
}

fn scrape(admin: SocketAddr) -> Scrape {
    let r = raw::http_get(admin, "/metrics");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.body);
    parse(&r.body)
}

/// Scrape until `pred` holds (the gauges and counters move on other threads).
fn scrape_until(admin: SocketAddr, what: &str, pred: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(admin);
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} never showed in /metrics");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// (family as in `# TYPE`, type) of every metric in operations.md §5.2 and §5.1.
const FAMILIES: &[(&str, &str)] = &[
    ("hotplex_build", "info"),
    ("hotplex_start_time_seconds", "gauge"),
    ("hotplex_ws_connections", "gauge"),
    ("hotplex_ws_connections_opened", "counter"),
    ("hotplex_ws_connections_closed", "counter"),
    ("hotplex_ws_upgrade_rejections", "counter"),
    ("hotplex_ws_bytes", "counter"),
    ("hotplex_ws_send_queue_bytes", "gauge"),
    ("hotplex_sessions", "gauge"),
    ("hotplex_sessions_created", "counter"),
    ("hotplex_sessions_resumed", "counter"),
    ("hotplex_sessions_terminated", "counter"),
    ("hotplex_sessions_deleted", "counter"),
    ("hotplex_init_failures", "counter"),
    ("hotplex_turns", "counter"),
    ("hotplex_turn_duration_seconds", "histogram"),
    ("hotplex_turn_first_delta_seconds", "histogram"),
    ("hotplex_turn_tokens", "counter"),
    ("hotplex_turn_cost_usd", "counter"),
    ("hotplex_session_events", "counter"),
    ("hotplex_events_sent", "counter"),
    ("hotplex_events_received", "counter"),
    ("hotplex_aep_errors", "counter"),
    ("hotplex_frames_coalesced", "counter"),
    ("hotplex_slow_consumer_disconnects", "counter"),
    ("hotplex_line_to_frame_seconds", "histogram"),
    ("hotplex_replay_requests", "counter"),
    ("hotplex_replay_events", "counter"),
    ("hotplex_worker_spawns", "counter"),
    ("hotplex_worker_exits", "counter"),
    ("hotplex_worker_processes", "gauge"),
    ("hotplex_worker_io_bytes", "counter"),
    ("hotplex_worker_unmapped_lines", "counter"),
    ("hotplex_worker_output_limit", "counter"),
    ("hotplex_permission_requests", "counter"),
    ("hotplex_permission_decisions", "counter"),
    ("hotplex_permission_wait_seconds", "histogram"),
    ("hotplex_store_queue_depth", "gauge"),
    ("hotplex_store_queue_capacity", "gauge"),
    ("hotplex_store_batch_ops", "histogram"),
    ("hotplex_store_commit_seconds", "histogram"),
    ("hotplex_store_ops", "counter"),
    ("hotplex_store_deltas_merged", "counter"),
    ("hotplex_store_backpressure", "counter"),
    ("hotplex_store_blocked_sessions", "gauge"),
    ("hotplex_store_errors", "counter"),
    ("hotplex_store_purged", "counter"),
    ("hotplex_store_db_bytes", "gauge"),
    ("hotplex_store_wal_bytes", "gauge"),
    ("hotplex_auth_failures", "counter"),
    ("hotplex_rate_limited_frames", "counter"),
    ("hotplex_throttle_notices", "counter"),
    ("hotplex_admin_requests", "counter"),
    ("hotplex_reactor_iterations", "counter"),
    ("hotplex_reactor_busy_seconds", "counter"),
    ("hotplex_reactor_timer_lag_seconds", "histogram"),
    ("hotplex_config_reloads", "counter"),
    ("hotplex_config_generation", "gauge"),
    ("hotplex_config_restart_pending", "gauge"),
    ("hotplex_ready", "gauge"),
    ("hotplex_draining", "gauge"),
    ("hotplex_log_lines_dropped", "counter"),
    ("hotplex_tracing_spans_dropped", "counter"),
    ("hotplex_tracing_export_errors", "counter"),
    ("hotplex_security_shared_worker_uid", "gauge"),
    ("process_cpu_seconds", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_threads", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

#[test]
fn the_first_scrape_shows_the_whole_catalogue_with_closed_series_at_zero() {
    let (gw, admin) = start("store:\n  queue_capacity: 4096\n", vec![]);
    let s = scrape(admin);
    for (family, ty) in FAMILIES {
        assert_eq!(s.types.get(*family).map(String::as_str), Some(*ty), "# TYPE {family} {ty}");
    }
    let info = s.samples.iter().find(|x| x.0 == "hotplex_build_info").expect("build info");
    assert_eq!(info.1["version"], env!("CARGO_PKG_VERSION"));
    for k in ["git_sha", "rustc", "target", "profile", "pgo"] {
        assert!(!info.1[k].is_empty(), "build_info {k}");
    }
    // closed label sets: every combination is a series, already at 0
    for state in ["created", "idle", "running", "terminated"] {
        assert_eq!(s.v("hotplex_sessions", &[("state", state)]), 0.0, "sessions {state}");
    }
    for reason in ["client_close", "init_failed", "slow_consumer", "shutdown", "internal_error"] {
        assert_eq!(s.v("hotplex_ws_connections_closed_total", &[("reason", reason)]), 0.0);
    }
    for wt in ["claude_code", "opencode_cli", "opencode_server", "acpx", "pi"] {
        assert_eq!(s.v("hotplex_worker_processes", &[("worker_type", wt)]), 0.0);
        for outcome in ["success", "error", "interrupted", "timeout", "terminated"] {
            assert_eq!(s.v("hotplex_turns_total", &[("worker_type", wt), ("outcome", outcome)]), 0.0);
        }
        assert_eq!(s.v("hotplex_turn_duration_seconds_count", &[("worker_type", wt)]), 0.0);
    }
    assert_eq!(s.v("hotplex_auth_failures_total", &[("listener", "ws"), ("reason", "missing")]), 0.0);
    assert_eq!(s.v("hotplex_aep_errors_total", &[("code", "WORKER_OOM")]), 0.0);
    assert_eq!(s.v("hotplex_events_received_total", &[("type", "other")]), 0.0);
    assert_eq!(s.v("hotplex_store_queue_capacity", &[]), 4096.0);
    assert_eq!(s.v("hotplex_ready", &[]), 1.0);
    assert_eq!(s.v("hotplex_draining", &[]), 0.0);
    assert_eq!(s.v("hotplex_ws_connections", &[("phase", "attached")]), 0.0);
    assert_eq!(s.v("hotplex_security_shared_worker_uid", &[]), 0.0, "one anonymous owner");
    assert!(s.v("hotplex_store_db_bytes", &[]) > 0.0, "the database file exists");
    assert!(s.v("process_resident_memory_bytes", &[]) > 0.0);
    assert!(s.v("process_open_fds", &[]) > 0.0);
    let started = s.v("process_start_time_seconds", &[]);
    assert_eq!(s.v("hotplex_start_time_seconds", &[]), started);
    // every reactor shows up, and its loop turns (a poll sleeps at most 250 ms)
    // (a reactor thread registers its series as it starts: polled, not raced)
    scrape_until(admin, "both reactors iterating", |s| {
        ["0", "1"].iter().all(|r| {
            s.get("hotplex_reactor_busy_seconds_total", &[("reactor", r)]).is_some()
                && s.get("hotplex_reactor_iterations_total", &[("reactor", r)]).is_some_and(|v| v > 0.0)
        })
    });
    drop(gw);
}

#[test]
fn a_session_turn_and_close_move_the_metrics() {
    let (gw, admin) = start("", vec![]);
    let mut c = gw.connect();
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "metrics-1"}));
    assert_eq!(ack["event"]["data"]["state"], "idle");
    let cc = [("worker_type", "claude_code")];
    let s = scrape_until(admin, "the attached idle session", |s| {
        s.get("hotplex_sessions", &[("state", "idle")]) == Some(1.0)
            && s.get("hotplex_ws_connections", &[("phase", "attached")]) == Some(1.0)
    });
    assert_eq!(s.v("hotplex_sessions", &[("state", "created")]), 0.0);
    assert_eq!(s.v("hotplex_worker_processes", &cc), 1.0);
    assert_eq!(s.v("hotplex_sessions_created_total", &cc), 1.0);
    assert_eq!(s.v("hotplex_worker_spawns_total", &[cc[0], ("result", "ok")]), 1.0);
    assert_eq!(s.v("hotplex_ws_connections_opened_total", &[]), 1.0);
    assert_eq!(s.v("hotplex_events_received_total", &[("type", "init")]), 1.0);
    assert_eq!(s.v("hotplex_events_sent_total", &[("type", "init_ack")]), 1.0);

    let frames = c.turn("stream 20");
    assert!(frames.iter().any(|f| f["event"]["type"] == "message.delta"), "the turn streamed deltas");
    let deltas = frames.iter().filter(|f| f["event"]["type"] == "message.delta").count() as f64;
    // a frame's latency is observed just after its last byte left (the client
    // may read it first): polled together with the turn count
    let s = scrape_until(admin, "the finished turn, its frames written", |s| {
        s.get("hotplex_turns_total", &[cc[0], ("outcome", "success")]) == Some(1.0)
            && s.get("hotplex_line_to_frame_seconds_count", &[]).is_some_and(|n| n > deltas)
    });
    assert_eq!(s.v("hotplex_turn_duration_seconds_count", &cc), 1.0);
    assert_eq!(s.v("hotplex_turn_first_delta_seconds_count", &cc), 1.0);
    assert!(s.v("hotplex_turn_tokens_total", &[cc[0], ("kind", "output")]) > 0.0, "the mock reports usage");
    assert!(s.v("hotplex_session_events_total", &[("type", "message.delta")]) >= deltas);
    // one connection: every delta it received was sent to it (coalesced ones are not frames)
    assert_eq!(
        s.v("hotplex_events_sent_total", &[("type", "message.delta")]),
        s.v("hotplex_session_events_total", &[("type", "message.delta")]) - s.v("hotplex_frames_coalesced_total", &[])
    );
    assert_eq!(s.v("hotplex_events_received_total", &[("type", "input")]), 1.0);
    let line_frames = s.v("hotplex_line_to_frame_seconds_count", &[]);
    assert!(line_frames > deltas, "every delta from a worker line reached the socket: {line_frames}");
    assert!(s.v("hotplex_store_batch_ops_count", &[]) > 0.0, "group commits happened");
    assert!(s.v("hotplex_store_batch_ops_sum", &[]) >= s.v("hotplex_store_batch_ops_count", &[]));
    assert!(s.v("hotplex_store_commit_seconds_count", &[]) > 0.0);
    assert!(s.v("hotplex_store_ops_total", &[("op", "append_event")]) >= deltas);
    assert!(s.v("hotplex_store_ops_total", &[("op", "turn")]) >= 2.0, "turn start and end");
    assert!(s.v("hotplex_worker_io_bytes_total", &[cc[0], ("stream", "stdout")]) > 0.0);
    assert!(s.v("hotplex_worker_io_bytes_total", &[cc[0], ("stream", "stdin")]) > 0.0);
    assert!(s.v("hotplex_ws_bytes_total", &[("direction", "in")]) > 0.0);
    assert!(
        s.v("hotplex_ws_bytes_total", &[("direction", "out")]) > s.v("hotplex_ws_bytes_total", &[("direction", "in")])
    );
    assert_eq!(s.v("hotplex_sessions", &[("state", "running")]), 0.0);

    // terminate: the worker is reaped, the session leaves the live states
    c.send("control", json!({"action": "terminate"}));
    c.until(WAIT, |v| is_state(v, "terminated"));
    let s = scrape_until(admin, "the terminated session", |s| {
        s.get("hotplex_worker_processes", &cc) == Some(0.0)
            && s.get("hotplex_sessions_terminated_total", &[cc[0], ("reason", "client_terminate")]) == Some(1.0)
    });
    assert_eq!(s.v("hotplex_sessions", &[("state", "idle")]), 0.0);
    assert_eq!(s.sum("hotplex_worker_exits_total", &cc), 1.0, "one exit");
    let by_us = s.v("hotplex_worker_exits_total", &[cc[0], ("class", "signal_gateway")])
        + s.v("hotplex_worker_exits_total", &[cc[0], ("class", "exit_0")]);
    assert_eq!(by_us, 1.0, "a terminated worker exits by our signal or cleanly");

    // a resume: a new worker, counted as resumed, not created
    let mut c2 = gw.connect();
    let ack = c2.init(json!({"worker_type": "claude_code", "session_id": "metrics-1", "last_seq": 0}));
    assert_eq!(ack["event"]["data"]["resumed"], true);
    // the replay sends the deltas again
    let s = scrape_until(admin, "the resumed session and its replay", |s| {
        s.get("hotplex_sessions_resumed_total", &cc) == Some(1.0)
            && s.get("hotplex_replay_requests_total", &[("result", "ok")]) == Some(1.0)
            && s.get("hotplex_events_sent_total", &[("type", "message.delta")]).is_some_and(|n| n >= 2.0 * deltas)
    });
    assert_eq!(s.v("hotplex_sessions_created_total", &cc), 1.0);
    assert!(
        s.v("hotplex_line_to_frame_seconds_count", &[]) < line_frames + deltas,
        "replayed frames are not line-to-frame latencies"
    );
    // the first connection is still open: two attached… until it is superseded
    let (code, _) = c.expect_close();
    assert_eq!(code, 1008, "superseded");
    let s = scrape_until(admin, "the superseded close", |s| {
        s.get("hotplex_ws_connections_closed_total", &[("reason", "superseded")]) == Some(1.0)
    });
    assert_eq!(s.v("hotplex_ws_connections", &[("phase", "attached")]), 1.0);
    assert_eq!(s.v("hotplex_aep_errors_total", &[("code", "SESSION_INVALIDATED")]), 1.0);

    // the client closes: counted as a client close, nothing attached any more
    c2.ws.close(None).expect("close");
    let _ = c2.recv_within(Duration::from_secs(5));
    let s = scrape_until(admin, "the client close", |s| {
        s.get("hotplex_ws_connections_closed_total", &[("reason", "client_close")]) == Some(1.0)
    });
    assert!(eventually(WAIT, || scrape(admin).get("hotplex_ws_connections", &[("phase", "attached")]) == Some(0.0)));
    assert_eq!(s.v("hotplex_ws_connections", &[("phase", "pre_init")]), 0.0);
    assert_eq!(s.v("hotplex_sessions", &[("state", "idle")]), 1.0, "the session lives on without a client");
    assert_eq!(s.v("hotplex_ws_send_queue_bytes", &[]), 0.0, "no connection, nothing queued");
    assert_eq!(s.v("hotplex_store_blocked_sessions", &[]), 0.0);
    drop(gw);
}

#[test]
fn refused_upgrades_and_credentials_are_counted() {
    let (gw, admin) = start(&support::sec::auth_yaml("[api_key]", 100), support::sec::api_key_env());
    // no credential at the upgrade (allowed: pre-auth), none at init either
    let mut c = gw.connect();
    support::sec::init_refused(&mut c, json!({"worker_type": "claude_code"}), "AUTH_REQUIRED");
    let s = scrape_until(admin, "the missing credential", |s| {
        s.get("hotplex_auth_failures_total", &[("listener", "ws"), ("reason", "missing")]) == Some(1.0)
    });
    assert_eq!(s.v("hotplex_init_failures_total", &[("code", "AUTH_REQUIRED")]), 1.0);
    assert_eq!(s.v("hotplex_aep_errors_total", &[("code", "AUTH_REQUIRED")]), 1.0);
    let s = scrape_until(admin, "the init_failed close", |s| {
        s.get("hotplex_ws_connections_closed_total", &[("reason", "init_failed")]) == Some(1.0)
    });
    assert_eq!(s.v("hotplex_ws_connections", &[("phase", "pre_init")]), 0.0);
    // a wrong key at the upgrade: 401, unknown_key
    let wrong = Client::connect_with(&gw.url(), &[("Authorization", "Bearer hpk_nobody_0123456789abcdefghijklmnopq")]);
    assert_eq!(wrong.err(), Some(401));
    // an upgrade without its WebSocket headers: 400
    let r = raw::http_get(gw.addr, "/ws");
    assert_eq!(r.status, 400);
    let s = scrape_until(admin, "the refused upgrades", |s| {
        s.get("hotplex_ws_upgrade_rejections_total", &[("reason", "bad_request")]) == Some(1.0)
            && s.get("hotplex_ws_upgrade_rejections_total", &[("reason", "unauthorized")]) == Some(1.0)
    });
    assert_eq!(s.v("hotplex_auth_failures_total", &[("listener", "ws"), ("reason", "unknown_key")]), 1.0);
    assert_eq!(s.v("hotplex_ws_connections_opened_total", &[]), 1.0, "refused upgrades never open");
    assert_eq!(s.v("hotplex_security_shared_worker_uid", &[]), 1.0, "alice's and bob's workers share a uid");
    drop(gw);
}

/// Identifiers starting `hotplex_` or `process_` anywhere in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        if word_start && (rest.starts_with("hotplex_") || rest.starts_with("process_")) {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.insert(rest[..end].to_owned());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

/// The shipped dashboard and alert rules query only series the binary
/// exposes, and `tests/deploy_files.rs`'s catalogue list is exactly what a
/// scrape shows (so neither can drift from the code).
#[test]
fn deployment_files_and_the_deploy_catalogue_match_the_exposition() {
    let (gw, admin) = start("", vec![]);
    let s = scrape(admin);
    let mut exposed: BTreeSet<String> = s.samples.iter().map(|x| x.0.clone()).collect();
    for (family, ty) in &s.types {
        if ty == "histogram" {
            exposed.insert(family.clone());
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    for file in ["configs/grafana/hotplex.json", "configs/prometheus/alerts.yml"] {
        let used = names_in(&read(file));
        assert!(!used.is_empty(), "{file} queries metrics");
        let missing: Vec<_> = used.difference(&exposed).collect();
        assert!(missing.is_empty(), "{file} uses series the gateway does not expose: {missing:?}");
    }
    // tests/deploy_files.rs: `const CATALOGUE: &[&str] = &[ … ];`
    let deploy = read("tests/deploy_files.rs");
    let start_at = deploy.find("const CATALOGUE: &[&str] = &[").expect("CATALOGUE in tests/deploy_files.rs");
    let list = &deploy[start_at..];
    let list = &list[..list.find("];").expect("end of CATALOGUE")];
    let listed = names_in(list);
    // the catalogue names families by their exposed sample name (counters
    // with `_total`, the info metric with `_info`, histograms bare)
    let families: BTreeSet<String> = s
        .types
        .iter()
        .map(|(family, ty)| match ty.as_str() {
            "counter" => format!("{family}_total"),
            "info" => format!("{family}_info"),
            _ => family.clone(),
        })
        .collect();
    assert_eq!(listed, families, "tests/deploy_files.rs CATALOGUE vs the families a scrape shows");
    drop(gw);
}

/// The admin listener's own metrics: requests by templated route and status,
/// admin credential failures, a drain, a config reload.
#[test]
fn admin_requests_drain_and_reload_are_counted() {
    use support::admin::{OPS, call};
    let (gw, admin) = start("", vec![]);
    let _ = scrape(admin);
    // a request without a token, and one with a wrong token, on a session route
    assert_eq!(call(admin, "GET", "/admin/sessions/some-session-id", None, None).status, 401);
    let wrong = "wrong_token_0123456789abcdefghijklmnopqrstuv";
    assert_eq!(call(admin, "GET", "/admin/sessions/some-session-id", Some(wrong), None).status, 401);
    let s = scrape(admin);
    assert!(s.v("hotplex_admin_requests_total", &[("route", "/metrics"), ("status", "200")]) >= 1.0);
    assert_eq!(s.v("hotplex_admin_requests_total", &[("route", "/admin/sessions/{id}"), ("status", "401")]), 2.0);
    assert!(!s.samples.iter().any(|x| x.1.values().any(|v| v.contains("some-session-id"))), "no id in a label");
    assert_eq!(s.v("hotplex_auth_failures_total", &[("listener", "admin"), ("reason", "missing")]), 1.0);
    assert_eq!(s.v("hotplex_auth_failures_total", &[("listener", "admin"), ("reason", "unknown_key")]), 1.0);
    assert_eq!(s.v("hotplex_config_generation", &[]), 1.0);

    // a reload of the unchanged file
    let r = call(admin, "POST", "/admin/config/reload", Some(OPS), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = scrape(admin);
    assert_eq!(s.v("hotplex_config_reloads_total", &[("result", "unchanged")]), 1.0);
    assert_eq!(s.v("hotplex_config_restart_pending", &[]), 0.0);

    // a drain and its end
    assert_eq!(s.v("hotplex_draining", &[]), 0.0);
    assert_eq!(s.v("hotplex_ready", &[]), 1.0);
    let r = call(admin, "POST", "/admin/drain", Some(OPS), Some(&json!({})));
    assert_eq!(r.status, 202, "{}", r.body);
    let s = scrape(admin);
    assert_eq!(s.v("hotplex_draining", &[]), 1.0);
    assert_eq!(s.v("hotplex_ready", &[]), 0.0);
    let r = raw::http_get(gw.addr, "/ws");
    assert_eq!(r.status, 503, "a draining gateway refuses upgrades");
    let s = scrape(admin);
    assert_eq!(s.v("hotplex_ws_upgrade_rejections_total", &[("reason", "draining")]), 1.0);
    let r = call(admin, "DELETE", "/admin/drain", Some(OPS), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = scrape(admin);
    assert_eq!(s.v("hotplex_draining", &[]), 0.0);
    assert_eq!(s.v("hotplex_admin_requests_total", &[("route", "/admin/drain"), ("status", "202")]), 1.0);
    drop(gw);
}
