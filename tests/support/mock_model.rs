//! The model server the real agent CLIs talk to in tests. Prefers the team's
//! reference mock (`HOTPLEX_MOCK_LLM`, or `../shared/tools/mock_llm.py` next
//! to the checkout); falls back to the project's own `scripts/mock_model.py`.
//! Both speak the same `[[marker]]` scenarios and `/_mock/requests` log.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct MockModel {
    child: Child,
    pub port: u16,
}

fn script() -> PathBuf {
    if let Some(p) = std::env::var_os("HOTPLEX_MOCK_LLM").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/tools/mock_llm.py");
    if shared.exists() {
        return shared;
    }
    root.join("scripts/mock_model.py")
}

impl MockModel {
    pub fn start() -> MockModel {
        let mut child = Command::new("python3")
            .arg(script())
            .args(["--port", "0", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mock model (python3)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                for prefix in ["MOCK_LLM_LISTENING ", "MOCK_MODEL_LISTENING "] {
                    if let Some(p) = line.strip_prefix(prefix) {
                        let _ = tx.send(p.trim().parse::<u16>().unwrap_or(0));
                    }
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(10)).expect("mock model did not start");
        MockModel { child, port }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request the agents sent (JSON array).
    pub fn requests(&self) -> serde_json::Value {
        http_get(self.port, "/_mock/requests")
    }

    /// POST a JSON body to the mock; returns (HTTP status, parsed body).
    /// Lets a test ask the mock directly what it answers for a prompt.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        http_post(self.port, path, &body.to_string())
    }

    /// What the mock answers a fresh one-message conversation with `prompt`
    /// under `model` (a plain Messages API call): (HTTP status, body).
    pub fn answer(&self, model: &str, prompt: &str) -> (u16, serde_json::Value) {
        self.post(
            "/v1/messages",
            &serde_json::json!({"model": model, "max_tokens": 256,
                                "messages": [{"role": "user", "content": prompt}]}),
        )
    }

    /// The `ty` block (`text`, `thinking`) of [`MockModel::answer`]; fails
    /// unless the mock answers 200 with such a block.
    pub fn answer_block(&self, model: &str, prompt: &str, ty: &str) -> String {
        let (status, body) = self.answer(model, prompt);
        assert_eq!(status, 200, "mock answer to {prompt:?}: {body}");
        body["content"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["type"] == ty))
            .and_then(|b| b[ty].as_str())
            .unwrap_or_else(|| panic!("mock answer to {prompt:?} has no {ty} block: {body}"))
            .to_owned()
    }

    /// Requests an agent sent (not a test's own direct calls, which carry
    /// no key); with `skip_auxiliary`, not its background (title) requests
    /// either.
    pub fn agent_requests(&self, skip_auxiliary: bool) -> Vec<serde_json::Value> {
        let all = self.requests().as_array().cloned().unwrap_or_default();
        all.into_iter().filter(|r| r["auth"] != "none" && !(skip_auxiliary && r["scenario"] == "auxiliary")).collect()
    }

    /// The last conversation request (auxiliary ones aside) whose prompt is `prompt`.
    pub fn request_for(&self, prompt: &str) -> serde_json::Value {
        let reqs = self.agent_requests(true);
        reqs.iter()
            .rfind(|r| r["last_user_text"] == prompt)
            .cloned()
            .unwrap_or_else(|| panic!("the mock got no request for {prompt:?}: {reqs:#?}"))
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> serde_json::Value {
    http(port, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")).1
}

fn http_post(port: u16, path: &str, body: &str) -> (u16, serde_json::Value) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http(port, &req)
}

/// One request on a fresh connection (the mock answers with Content-Length
/// or closes the connection): (status, parsed JSON body or Null).
fn http(port: u16, request: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect mock");
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(request.as_bytes());
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}
