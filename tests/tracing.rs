//! OpenTelemetry tracing end to end (operations.md §6): the real gateway
//! exports OTLP/JSON to a fake collector (`scripts/otlp_receiver.py`), which
//! parses every body into an `ExportTraceServiceRequest` with the official
//! protobuf types and records the spans it got. Asserted: span names and
//! parentage (a client's `trace_parent`, turn roots linked to the attach
//! span), 16/8-byte ids, resource attributes, no prompt text in any body,
//! trace ids in log lines, parent-based sampling, retries after 503, and no
//! exporter at all when tracing is off.
//!
//! The collector needs the pinned Python packages of
//! `scripts/install-py-tools.sh` (scripts/test.sh installs them); without
//! them every test fails with that instruction — a silent skip would hide a
//! broken setup.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const T_PARENT: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S_PARENT: &str = "00f067aa0ba902b7";

fn python() -> PathBuf {
    let p = std::env::var_os("HOTPLEX_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/py/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-py-tools.sh (scripts/test.sh does) to install the fake \
         OTLP collector's pinned packages",
        p.display()
    );
    p
}

/// The fake collector process and the file it records into.
struct Collector {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: TempDir,
}

impl Collector {
    fn start(extra: &[&str]) -> Collector {
        let dir = TempDir::new("otlp");
        let out = dir.path().join("otlp.jsonl");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/otlp_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", "0", "--out"])
            .arg(&out)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the fake collector");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("OTLP_RECEIVER_LISTENING ") {
                    let _ = tx.send(p.trim().parse::<u16>().unwrap_or(0));
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(15)).expect("the fake collector did not start");
        Collector { child, port, out, _dir: dir }
    }

    fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn requests(&self) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["kind"] == "request").collect()
    }

    fn spans(&self) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["kind"] == "span").collect()
    }

    /// Spans named `name`, waiting until at least `n` arrived.
    fn wait_spans(&self, name: &str, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        let ok = eventually(Duration::from_secs(15), || {
            got = self.spans().into_iter().filter(|s| s["name"] == name).collect();
            got.len() >= n
        });
        assert!(ok, "expected {n} {name} span(s); collector saw: {:#?}", self.records());
        got
    }

    /// Gateway YAML exporting here.
    fn yaml(&self, extra_tracing: &str) -> String {
        format!(
            "tracing:\n  otlp_endpoint: \"http://127.0.0.1:{p}\"\n  service_name: \"hotplex-test\"\n  export_interval: \"100ms\"\n{extra_tracing}security:\n  ssrf:\n    allow: [\"127.0.0.1:{p}\"]\n",
            p = self.port
        )
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names of the gateway's threads.
fn thread_names(pid: i32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

fn one<'a>(spans: &'a [Value], pred: impl Fn(&Value) -> bool, what: &str) -> &'a Value {
    let hits: Vec<&Value> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(hits.len(), 1, "expected exactly one {what}; spans: {spans:#?}");
    hits[0]
}

fn check_ids(s: &Value) {
    assert_eq!(s["trace_id_len"], 16, "{s}");
    assert_eq!(s["span_id_len"], 8, "{s}");
    assert!(s["parent_span_id_len"] == 0 || s["parent_span_id_len"] == 8, "{s}");
}

#[test]
fn spans_follow_the_client_trace_and_carry_no_content() {
    let col = Collector::start(&[]);
    let yaml = col.yaml("  store_sample_ratio: 1.0\n  headers:\n    X-Collector-Tenant: \"probe-7\"\n");
    let gw = Gateway::start_yaml(&yaml);
    // A new thread names itself once it runs: poll rather than race it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !thread_names(gw.pid()).iter().any(|t| t == "otlp") {
        assert!(std::time::Instant::now() < deadline, "the otlp thread runs when tracing is on");
        std::thread::sleep(Duration::from_millis(10));
    }

    let canary = format!("PROMPT-CANARY-{}", std::process::id());
    let mut c = gw.connect();
    let ack = c.init(json!({
        "worker_type": "claude_code",
        "trace_parent": format!("00-{T_PARENT}-{S_PARENT}-01"),
        "trace_state": "vendor=abc",
    }));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("session id").to_string();
    // Turn 1: no trace_parent → a new root linked to the attach span.
    let frames = c.turn(&format!("say {canary}"));
    assert!(delta_text(&frames).contains(&canary));
    // Turn 2: continues the client's own trace; calls a tool.
    let t2 = "0af7651916cd43dd8448eb211c80319c";
    let p2 = "b7ad6b7169203331";
    c.send("input", json!({"content": "tool", "metadata": {"trace_parent": format!("00-{t2}-{p2}-01")}}));
    c.until(Duration::from_secs(30), |v| is_state(v, "idle"));
    // Turn 3: a permission round trip.
    c.send("input", json!({"content": "permission"}));
    let req = c.expect("permission_request");
    c.send("permission_response", json!({"id": req["event"]["data"]["id"], "allowed": true}));
    c.until(Duration::from_secs(30), |v| is_state(v, "idle"));
    c.send("control", json!({"action": "terminate"}));
    c.until(Duration::from_secs(20), |v| is_state(v, "terminated"));

    let attach = col.wait_spans("hotplex.session.attach", 1);
    let spawn = col.wait_spans("hotplex.worker.spawn", 1);
    let turns = col.wait_spans("hotplex.turn", 3);
    let end = col.wait_spans("hotplex.session.end", 1);
    let batches = col.wait_spans("hotplex.store.batch", 1);
    let all = col.spans();
    for s in &all {
        check_ids(s);
        let r = &s["resource"];
        assert_eq!(r["service.name"], "hotplex-test", "{s}");
        assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"), "{s}");
        assert_eq!(r["service.instance.id"].as_str().map(str::len), Some(36), "a UUID: {s}");
        assert!(r["host.name"].as_str().is_some_and(|h| !h.is_empty()), "{s}");
        assert_eq!(r["process.pid"], gw.pid(), "{s}");
        assert_eq!(s["scope"], "hotplex");
    }

    // attach: a child of the client's span, tracestate passed through
    let a = &attach[0];
    assert_eq!(a["trace_id"], T_PARENT);
    assert_eq!(a["parent_span_id"], S_PARENT);
    assert_eq!(a["trace_state"], "vendor=abc");
    assert_eq!(attr(a, "hotplex.session_id"), sid.as_str());
    assert_eq!(attr(a, "hotplex.worker_type"), "claude_code");
    assert_eq!(attr(a, "hotplex.owner_hash"), hotplex::session::identity::owner_hash("anonymous").as_str());
    assert_eq!(attr(a, "hotplex.resumed"), false);
    assert_eq!(attr(a, "hotplex.outcome"), "ok");
    let attach_id = a["span_id"].as_str().expect("span id").to_string();

    // the worker start hangs under the attach span
    let w = &spawn[0];
    assert_eq!(w["trace_id"], T_PARENT);
    assert_eq!(w["parent_span_id"], attach_id.as_str());
    assert_eq!(attr(w, "process.executable.name"), "hotplex-mock-agent");
    assert!(attr(w, "process.pid").as_i64().is_some_and(|p| p > 1), "{w}");
    assert_eq!(attr(w, "hotplex.outcome"), "ok");
    assert!(attr(w, "hotplex.ready_ms").is_i64(), "{w}");

    // turn 1: a new root with a link to the attach span, stats from done
    let t1 = one(&turns, |s| attr(s, "hotplex.turn") == 1, "turn 1");
    assert_eq!(t1["parent_span_id"], "", "a root: {t1}");
    assert_ne!(t1["trace_id"], T_PARENT);
    assert_eq!(
        t1["links"],
        json!([{"trace_id": T_PARENT, "trace_id_len": 16, "span_id": attach_id, "span_id_len": 8}])
    );
    assert_eq!(attr(t1, "hotplex.session_id"), sid.as_str());
    assert_eq!(attr(t1, "hotplex.outcome"), "success");
    assert!(attr(t1, "hotplex.tokens.input").is_i64() && attr(t1, "hotplex.tokens.output").is_i64(), "{t1}");
    assert!(attr(t1, "hotplex.cost_usd").is_number(), "{t1}");
    assert_eq!(attr(t1, "hotplex.tool_calls"), 0);
    assert_eq!(t1["events"][0]["name"], "first_delta", "{t1}");
    assert_eq!(t1["status"]["code"], 0);

    // turn 2: continues the input's trace; one tool_call event, name only
    let t2s = one(&turns, |s| attr(s, "hotplex.turn") == 2, "turn 2");
    assert_eq!(t2s["trace_id"], t2);
    assert_eq!(t2s["parent_span_id"], p2);
    assert_eq!(t2s["links"], json!([]));
    let tools: Vec<&Value> = t2s["events"].as_array().unwrap().iter().filter(|e| e["name"] == "tool_call").collect();
    assert_eq!(tools.len(), 1, "{t2s}");
    assert_eq!(tools[0]["attributes"], json!({"hotplex.tool_name": "Bash"}));
    assert_eq!(attr(t2s, "hotplex.tool_calls"), 1);

    // turn 3: permission request and decision as span events
    let t3 = one(&turns, |s| attr(s, "hotplex.turn") == 3, "turn 3");
    let names: Vec<&str> = t3["events"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    let (rq, dec) =
        (names.iter().position(|n| *n == "permission_request"), names.iter().position(|n| *n == "permission_decision"));
    assert!(rq.is_some() && dec.is_some() && rq < dec, "{names:?}");
    let decision = t3["events"].as_array().unwrap().iter().find(|e| e["name"] == "permission_decision").unwrap();
    assert_eq!(decision["attributes"], json!({"hotplex.decision": "allowed"}));

    // the end links to the attach span
    let e = &end[0];
    assert_eq!(e["parent_span_id"], "");
    assert_eq!(e["links"][0]["span_id"], attach_id.as_str());
    assert_eq!(attr(e, "hotplex.session_id"), sid.as_str());
    assert_eq!(attr(e, "hotplex.reason"), "client_terminate");
    assert!(attr(e, "hotplex.exit_class").as_str().is_some_and(|c| c.starts_with("exit_") || c == "signal_gateway"));
    assert!(attr(e, "hotplex.kill_ms").is_i64(), "{e}");

    // store batches are their own roots
    let b = &batches[0];
    assert_eq!(b["parent_span_id"], "");
    for k in ["hotplex.ops", "hotplex.events", "hotplex.merged", "hotplex.bytes", "hotplex.commit_us"] {
        assert!(attr(b, k).is_i64(), "{k} missing: {b}");
    }

    // log lines inside sampled spans carry their ids
    let log = gw.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("session attached") && l.contains(&format!("trace_id={T_PARENT} span_id={attach_id}"))),
        "attach log line without trace ids:\n{log}"
    );
    let t1_ids = format!("trace_id={} span_id={}", t1["trace_id"].as_str().unwrap(), t1["span_id"].as_str().unwrap());
    assert!(log.lines().any(|l| l.contains("turn started") && l.contains(&t1_ids)), "{log}");

    let (status, _dir) = gw.stop(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let requests = col.requests();
    assert!(requests.iter().all(|r| r["status"] == 200), "{requests:#?}");
    for r in &requests {
        let body = r["body"].as_str().unwrap_or_default();
        assert!(!body.contains(&canary), "prompt text in a span body: {body}");
        assert!(!body.contains("echo mock"), "tool input in a span body: {body}");
        assert!(!body.contains("anonymous"), "raw owner in a span body: {body}");
        assert_eq!(r["headers"]["x-collector-tenant"], "probe-7", "tracing.headers are sent: {r}");
        assert_eq!(r["headers"]["content-type"], "application/json");
        // OTLP/JSON wire rules: hex ids (the collector converted them), 64-bit ints as strings
        assert!(body.contains("\"traceId\":\"") && body.contains("\"startTimeUnixNano\":\""), "{body}");
        assert!(
            body.contains("\"intValue\":\"") && !(0..10).any(|d| body.contains(&format!("\"intValue\":{d}"))),
            "{body}"
        );
    }
}

#[test]
fn sampling_is_parent_based() {
    let col = Collector::start(&[]);
    let gw = Gateway::start_yaml(&col.yaml("  sample_ratio: 0.0\n  store_sample_ratio: 0.0\n"));
    let unsampled = "11111111111111111111111111111111";
    let sampled = "22222222222222222222222222222222";
    let mut a = gw.connect();
    a.init(json!({"worker_type": "claude_code", "trace_parent": format!("00-{unsampled}-{S_PARENT}-00")}));
    a.turn("hello");
    let mut b = gw.connect();
    // An invalid value is ignored, never an error: the init succeeds.
    b.init(json!({"worker_type": "claude_code", "trace_parent": "00-not-a-trace-parent"}));
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code", "trace_parent": format!("00-{sampled}-{S_PARENT}-01")}));
    // a sampled turn parent is recorded even at ratio 0
    c.send("input", json!({"content": "hi", "metadata": {"trace_parent": format!("00-{sampled}-{S_PARENT}-03")}}));
    c.until(Duration::from_secs(30), |v| is_state(v, "idle"));
    col.wait_spans("hotplex.turn", 1);
    let (status, _dir) = gw.stop(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let spans = col.spans();
    let names: Vec<(&str, &str)> =
        spans.iter().map(|s| (s["name"].as_str().unwrap(), s["trace_id"].as_str().unwrap())).collect();
    let mut want =
        vec![("hotplex.session.attach", sampled), ("hotplex.worker.spawn", sampled), ("hotplex.turn", sampled)];
    let mut got: Vec<(&str, &str)> = names.iter().copied().filter(|(n, _)| *n != "hotplex.session.end").collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "only the sampled parent's spans (ratio 0 drops roots): {spans:#?}");
}

/// `tracing.sample_ratio` is live (operations.md §1.8): a config reload from
/// 0.0 to 1.0 samples the root spans of sessions attached after it, without
/// a restart; what ran before stays unsampled.
#[test]
fn sample_ratio_is_reloaded_live() {
    let col = Collector::start(&[]);
    let mut yaml = col.yaml("  sample_ratio: 0.0\n  store_sample_ratio: 0.0\n");
    yaml.push_str("reload:\n  poll_interval: 1s\n");
    let gw = Gateway::start_yaml(&yaml);
    let mut a = gw.connect();
    let before = a.init(json!({"worker_type": "claude_code"}))["event"]["data"]["session_id"].clone();
    a.turn("unsampled");

    let text = std::fs::read_to_string(&gw.config_path).expect("read config");
    assert!(text.contains("  sample_ratio: 0.0\n"), "{text}");
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, text.replacen("  sample_ratio: 0.0\n", "  sample_ratio: 1.0\n", 1)).expect("write");
    std::fs::rename(&tmp, &gw.config_path).expect("rename");
    let ok = eventually(Duration::from_secs(15), || gw.stderr().contains("applied=[tracing.sample_ratio]"));
    assert!(ok, "no reload of tracing.sample_ratio: {}", gw.stderr());

    let mut b = gw.connect();
    let after = b.init(json!({"worker_type": "claude_code"}))["event"]["data"]["session_id"].clone();
    b.turn("sampled");
    let attach = col.wait_spans("hotplex.session.attach", 1);
    col.wait_spans("hotplex.turn", 1);
    // Spans are exported in order: the earlier session's would have arrived first.
    let sessions: Vec<&Value> = attach.iter().map(|s| attr(s, "hotplex.session_id")).collect();
    assert_eq!(sessions, vec![&after], "only the session attached after the reload is sampled (not {before})");
}

#[test]
fn export_is_retried_after_503() {
    let col = Collector::start(&["--fail-first", "1", "--fail-status", "503", "--retry-after", "1"]);
    let gw = Gateway::start_yaml(&col.yaml("  store_sample_ratio: 0.0\n"));
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code"}));
    let attach = col.wait_spans("hotplex.session.attach", 1);
    let requests = col.requests();
    assert_eq!(requests[0]["status"], 503, "{requests:#?}");
    assert_eq!(requests[1]["status"], 200, "{requests:#?}");
    assert_eq!(requests[0]["body"], requests[1]["body"], "the same batch is sent again");
    assert_eq!(attach.len(), 1, "the retried batch arrives once");
    drop(c);
    let (status, _dir) = gw.stop(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[test]
fn disabled_tracer_starts_no_exporter_and_connects_nowhere() {
    let col = Collector::start(&[]);
    // The collector is allowed, but no endpoint is configured.
    let gw = Gateway::start_yaml(&format!("security:\n  ssrf:\n    allow: [\"127.0.0.1:{}\"]\n", col.port));
    assert!(!thread_names(gw.pid()).iter().any(|t| t == "otlp"), "{:?}", thread_names(gw.pid()));
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code", "trace_parent": format!("00-{T_PARENT}-{S_PARENT}-01")}));
    c.turn("hello");
    let log = gw.stderr();
    assert!(!log.contains("trace_id="), "no trace ids in logs when tracing is off:\n{log}");
    let (status, _dir) = gw.stop(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(col.requests().is_empty(), "{:#?}", col.requests());
}
