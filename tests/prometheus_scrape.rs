//! A real Prometheus (Debian package `prometheus`) runs the shipped scrape
//! config (`configs/prometheus/prometheus.yml`, with only the target, the
//! token file, the interval and the rules path rewritten) against the admin
//! listener of the real gateway. PromQL over what it scraped must show the
//! sessions a client opened, the target up with the `read`-scope bearer
//! token, and the shipped alert rules loaded.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::raw::{http_exchange, pct};
use support::tools::{find_tool, free_port};
use support::*;

struct Prometheus {
    child: Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replace `from` (which must occur exactly `n` times) in the shipped config.
fn rewrite(text: &str, from: &str, to: &str, n: usize) -> String {
    assert_eq!(text.matches(from).count(), n, "{from:?} must occur {n} times in configs/prometheus/prometheus.yml");
    text.replace(from, to)
}

impl Prometheus {
    fn start(dir: &Path, admin: std::net::SocketAddr, token: &str) -> Prometheus {
        let bin = find_tool("HOTPLEX_PROMETHEUS", &["prometheus"])
            .expect("prometheus is missing: scripts/test.sh installs the Debian package");
        let token_file = dir.join("metrics.token");
        std::fs::write(&token_file, token).expect("token file");
        let shipped =
            std::fs::read_to_string(repo().join("configs/prometheus/prometheus.yml")).expect("shipped config");
        let cfg = rewrite(&shipped, "scrape_interval: 15s", "scrape_interval: 1s", 2);
        let cfg = rewrite(&cfg, "\"127.0.0.1:9999\"", &format!("\"{admin}\""), 1);
        let cfg = rewrite(&cfg, "/etc/prometheus/hotplex-metrics.token", &token_file.display().to_string(), 1);
        let rules = repo().join("configs/prometheus/alerts.yml");
        let cfg = rewrite(&cfg, "[\"alerts.yml\"]", &format!("[\"{}\"]", rules.display()), 1);
        let cfg_path = dir.join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).expect("prometheus.yml");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, log }
    }

    fn get(&self, path: &str) -> support::raw::HttpResponse {
        // HTTP/1.0: a plain body, never chunked.
        let req = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        http_exchange(self.addr, req.as_bytes())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(self.addr).is_ok() && self.get("/-/ready").status == 200 {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("prometheus exited ({st}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The instant vector of a PromQL query.
    fn query(&self, promql: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/query?query={}", pct(promql)));
        assert_eq!(r.status, 200, "{promql}: {r:?}");
        let v: Value = serde_json::from_str(&r.body).expect("query JSON");
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Poll a scalar-valued query until it equals `want` (scrapes run every second).
    fn wait_value(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(promql);
            let got = last.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse::<f64>().ok());
            if got == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{promql} never became {want}; last result {last:?}; prometheus log: {}", self.log());
    }
}

#[test]
fn real_prometheus_scrapes_the_admin_listener_with_the_shipped_config() {
    let gw = support::admin::gateway_with("", vec![]);
    let dir = TempDir::new("prometheus");
    let mut prom = Prometheus::start(dir.path(), gw.admin_addr, support::admin::READER);
    prom.wait_ready();

    // Scraped with the read-scope token: the target is up.
    prom.wait_value("up{job=\"hotplex\"}", 1.0);
    prom.wait_value("sum(hotplex_sessions{state=\"idle\"})", 0.0);

    // Two sessions a client opened (and keeps open) show up in PromQL.
    let mut a = gw.connect();
    a.init(json!({"worker_type": "claude_code", "session_id": "prom-a"}));
    let mut b = gw.connect();
    b.init(json!({"worker_type": "claude_code", "session_id": "prom-b"}));
    prom.wait_value("sum(hotplex_sessions{state=\"idle\"})", 2.0);
    prom.wait_value("sum(hotplex_sessions_created_total)", 2.0);

    // One ends: the gauge follows.
    b.send("control", json!({"action": "terminate"}));
    b.until(WAIT, |v| is_state(v, "terminated"));
    prom.wait_value("sum(hotplex_sessions{state=\"idle\"})", 1.0);

    // The shipped alert rules were loaded from the rewritten path.
    let r = prom.get("/api/v1/rules");
    let rules: Value = serde_json::from_str(&r.body).expect("rules JSON");
    let groups = rules["data"]["groups"].as_array().cloned().unwrap_or_default();
    assert!(
        groups.iter().any(|g| g["rules"].as_array().is_some_and(|r| !r.is_empty())),
        "no alert rules loaded: {rules}"
    );
    drop(a);
}
