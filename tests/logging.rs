//! Log lines as an operator's pipeline sees them (operations.md logging):
//! with `log.format: json` every stderr line of the real binary is one JSON
//! object, and session lines carry `session_id` / `worker_type` as fields.
//! No credential reaches the log.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::sec::*;
use support::*;

#[test]
fn json_lines_carry_session_fields_and_no_secrets() {
    let mut env = api_key_env();
    env.push(("HOTPLEX__LOG__FORMAT".into(), "json".into()));
    let gw = Gateway::start_with(Options { yaml: auth_yaml("[api_key]", 100), env, ..Options::default() });
    let mut c = Client::connect_with(&gw.url(), &[("X-API-Key", ALICE_KEY)]).expect("alice");
    let ack = c.init(init_data("logged", None, "drive"));
    let sid = ack["event"]["data"]["session_id"].as_str().expect("session id").to_string();
    assert_eq!(delta_text(&c.turn("hello")), "echo: hello");
    assert_eq!(
        Client::connect_with(&gw.url(), &[("X-API-Key", "hpk_wrong_0123456789abcdefghijklmnopqrstuvwxyz")]).err(),
        Some(401)
    );

    // The worker's start line, as a parsed object with the fields lifted out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        let lines: Vec<Value> = gw
            .stderr()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if let Some(v) = lines.iter().find(|v| v["msg"].as_str().is_some_and(|m| m.starts_with("worker started"))) {
            break v.clone();
        }
        assert!(Instant::now() < deadline, "no worker start line: {}", gw.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(started["session_id"], json!(sid), "{started}");
    assert_eq!(started["worker_type"], "claude_code", "{started}");
    assert_eq!(started["service"], "hotplex");
    assert!(started["level"].is_string() && started["ts"].is_string(), "{started}");

    // Every line from the logger is JSON; neither key appears anywhere.
    let log = gw.stderr();
    for l in log.lines().filter(|l| !l.starts_with("hotplex listening")) {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "not a JSON line: {l}");
    }
    assert!(!log.contains(ALICE_KEY) && !log.contains("hpk_wrong_"), "a key reached the log");
}
