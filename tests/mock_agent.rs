//! Black-box tests of `hotplex-mock-agent`: the binary runs as a child with
//! pipes, every read has a deadline (reader thread + channel), no sleeps.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hotplex-mock-agent");
const T: Duration = Duration::from_secs(10);

/// A fresh HOME (and work dir) per test, removed on drop.
struct TempHome(PathBuf);

impl std::ops::Deref for TempHome {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_home() -> TempHome {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "hotplex-mock-agent-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempHome(dir)
}

fn uuid4() -> String {
    // Good enough for test ids: time + counter, formatted as a v4 UUID.
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let n = u64::from(N.fetch_add(1, Ordering::Relaxed)) ^ (u64::from(std::process::id()) << 20);
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", t as u32, (t >> 32) as u16, n & 0xfff, (n >> 12) & 0xfff, t >> 16)
}

const BASE_ARGS: &[&str] = &[
    "--print",
    "--verbose",
    "--output-format",
    "stream-json",
    "--input-format",
    "stream-json",
    "--include-partial-messages",
    "--permission-prompt-tool",
    "stdio",
];

struct Mock {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// The stderr reader; joined (it ends at EOF) before stderr is read.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    fn spawn(home: &Path, extra: &[&str]) -> Mock {
        Self::spawn_with(home, extra, |c| {
            c.env("HOME", home);
        })
    }

    fn spawn_with(home: &Path, extra: &[&str], env: impl FnOnce(&mut Command)) -> Mock {
        let mut cmd = Command::new(BIN);
        cmd.args(BASE_ARGS).args(extra).current_dir(home);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        env(&mut cmd);
        let mut child = cmd.spawn().expect("spawn mock agent");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err_pipe, err_buf) = (child.stderr.take().unwrap(), stderr.clone());
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                let mut b = err_buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        Mock { stdin: child.stdin.take(), child, lines, stderr, stderr_reader: Some(stderr_reader) }
    }

    fn send(&mut self, v: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    }

    fn user(&mut self, text: &str) {
        self.send(json!({"type":"user","message":{"role":"user","content":[{"type":"text","text":text}]}}));
    }

    fn interrupt(&mut self, id: &str) {
        self.send(json!({"type":"control_request","request_id":id,"request":{"subtype":"interrupt"}}));
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Next raw stdout line; `None` at EOF. Panics after `T`.
    fn raw_line(&self) -> Option<String> {
        match self.lines.recv_timeout(T) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no stdout line within {T:?}"),
        }
    }

    fn line(&self) -> Value {
        let l = self.raw_line().expect("stdout closed");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    }

    /// Lines up to and including the first one matching `pred`.
    fn until(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.line();
            let done = pred(&v);
            out.push(v);
            if done {
                return out;
            }
        }
    }

    fn turn(&self) -> Vec<Value> {
        self.until(|v| v["type"] == "result")
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + T;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "mock agent did not exit within {T:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stdout to EOF (after the process ended).
    fn rest(&self) -> Vec<String> {
        std::iter::from_fn(|| self.raw_line()).collect()
    }

    /// Everything the process wrote to stderr. Call after `wait_exit`: it
    /// waits for the reader thread to reach EOF, so no late line is missed.
    fn stderr(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_event(v: &Value, ty: &str) -> bool {
    v["type"] == "stream_event" && v["event"]["type"] == ty
}

fn text_deltas(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|v| is_event(v, "content_block_delta") && v["event"]["delta"]["type"] == "text_delta")
        .map(|v| v["event"]["delta"]["text"].as_str().unwrap().to_string())
        .collect()
}

fn pos(lines: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    lines.iter().position(pred).unwrap_or_else(|| panic!("line not found in {lines:#?}"))
}

fn result(lines: &[Value]) -> &Value {
    let r = lines.last().unwrap();
    assert_eq!(r["type"], "result", "{r}");
    r
}

fn journal(home: &Path, sid: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(home.join(".mock-agent").join(format!("{sid}.jsonl"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn echo_turn_shape() {
    let home = temp_home();
    let sid = uuid4();
    let mut m = Mock::spawn(&home, &["--session-id", &sid, "--model=claude-opus-4-8[1m]"]);
    m.user("hello mock world");
    let t = m.turn();

    assert_eq!(t[0]["type"], "system");
    assert_eq!(t[0]["subtype"], "init");
    assert_eq!(t[0]["model"], "claude-opus-4-8[1m]");
    assert_eq!(t[0]["permissionMode"], "default");
    assert!(t[0]["tools"].as_array().unwrap().iter().any(|x| x == "Bash"));
    assert_eq!(t[0]["cwd"].as_str().unwrap(), std::fs::canonicalize(&*home).unwrap().to_str().unwrap());
    for v in &t {
        assert_eq!(v["session_id"], sid.as_str(), "{v}");
        assert!(v["uuid"].is_string(), "{v}");
    }
    assert_eq!(t.iter().filter(|v| v["type"] == "result").count(), 1);

    let start = pos(&t, |v| is_event(v, "message_start"));
    let block = pos(&t, |v| is_event(v, "content_block_start"));
    let first_delta = pos(&t, |v| is_event(v, "content_block_delta"));
    let assistant = pos(&t, |v| v["type"] == "assistant");
    let stop = pos(&t, |v| is_event(v, "content_block_stop"));
    let mdelta = pos(&t, |v| is_event(v, "message_delta"));
    let mstop = pos(&t, |v| is_event(v, "message_stop"));
    assert!(start < block && block < first_delta && first_delta < assistant && assistant < stop);
    assert!(stop < mdelta && mdelta < mstop && mstop == t.len() - 2);

    let deltas = text_deltas(&t);
    assert!(deltas.len() >= 3, "{deltas:?}");
    let text = deltas.concat();
    assert_eq!(text, "echo: hello mock world");
    let msg_id = t[start]["event"]["message"]["id"].as_str().unwrap();
    assert_eq!(t[assistant]["message"]["id"], msg_id);
    assert_eq!(t[assistant]["message"]["content"][0]["text"], text.as_str());

    let r = result(&t);
    assert_eq!(r["subtype"], "success");
    assert_eq!(r["is_error"], false);
    assert_eq!(r["result"], text.as_str());
    assert!(r["duration_ms"].as_u64().unwrap() >= 1);
    assert!(r["total_cost_usd"].as_f64().unwrap() > 0.0);
    for k in ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] {
        assert!(r["usage"][k].is_u64(), "usage.{k} in {r}");
    }
    assert!(r["modelUsage"]["claude-opus-4-8[1m]"]["contextWindow"].is_u64());

    m.close_stdin();
    assert_eq!(m.wait_exit().code(), Some(0));
}

#[test]
fn nothing_before_input_and_eof_exits_zero() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.close_stdin();
    assert_eq!(m.wait_exit().code(), Some(0));
    assert!(m.rest().is_empty());
}

#[test]
fn two_turns_cumulative_cost() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.user("first");
    let r1 = result(&m.turn()).clone();
    m.user("second turn");
    let r2 = result(&m.turn()).clone();
    let (c1, c2) = (r1["total_cost_usd"].as_f64().unwrap(), r2["total_cost_usd"].as_f64().unwrap());
    assert!(c2 > c1 && c1 > 0.0, "{c1} {c2}");
    let model = r2["modelUsage"].as_object().unwrap().keys().next().unwrap().clone();
    let mu = &r2["modelUsage"][&model];
    let sum = |k: &str| r1["usage"][k].as_u64().unwrap() + r2["usage"][k].as_u64().unwrap();
    assert_eq!(mu["inputTokens"].as_u64().unwrap(), sum("input_tokens"));
    assert_eq!(mu["outputTokens"].as_u64().unwrap(), sum("output_tokens"));
    assert_eq!(mu["cacheReadInputTokens"].as_u64().unwrap(), sum("cache_read_input_tokens"));
    assert!((mu["costUSD"].as_f64().unwrap() - c2).abs() < 1e-12);
}

#[test]
fn permission_allow_deny_and_malformed() {
    let home = temp_home();
    let sid = uuid4();
    let mut m = Mock::spawn(&home, &["--session-id", &sid]);

    // allow
    m.user("permission");
    let before = m.until(|v| v["type"] == "control_request");
    let tool_use = before.iter().find(|v| v["type"] == "assistant" && v["message"]["content"][0]["type"] == "tool_use");
    let tool_use_id = tool_use.expect("tool_use before the prompt")["message"]["content"][0]["id"].clone();
    let req = before.last().unwrap();
    let rid = req["request_id"].as_str().unwrap().to_string();
    assert_eq!(req["request"]["subtype"], "can_use_tool");
    assert_eq!(req["request"]["tool_name"], "Write");
    assert_eq!(req["request"]["tool_use_id"], tool_use_id);
    assert!(req["request"]["description"].is_string());
    assert_eq!(
        req["request"]["permission_suggestions"][0],
        json!({"type":"setMode","mode":"acceptEdits","destination":"session"})
    );
    let input = req["request"]["input"].clone();
    m.send(json!({"type":"control_response","response":{"subtype":"success","request_id":rid,
        "response":{"behavior":"allow","updatedInput":input}}}));
    let t = m.turn();
    let tr = t.iter().find(|v| v["type"] == "user").expect("tool_result");
    assert_eq!(tr["message"]["content"][0]["type"], "tool_result");
    assert_eq!(tr["message"]["content"][0]["tool_use_id"], tool_use_id);
    assert_eq!(tr["message"]["content"][0]["is_error"], false);
    let r = result(&t);
    assert_eq!(r["result"], "allowed");
    assert_eq!(r["is_error"], false);
    assert_eq!(r["permission_denials"], json!([]));

    // deny
    m.user("permission Bash");
    let req = m.until(|v| v["type"] == "control_request").pop().unwrap();
    assert_eq!(req["request"]["tool_name"], "Bash");
    let rid = req["request_id"].as_str().unwrap().to_string();
    // A reply for another id is ignored.
    m.send(json!({"type":"control_response","response":{"subtype":"success","request_id":"nonexistent",
        "response":{"behavior":"allow","updatedInput":{}}}}));
    m.send(json!({"type":"control_response","response":{"subtype":"success","request_id":rid,
        "response":{"behavior":"deny","message":"not today"}}}));
    let t = m.turn();
    let tr = &t.iter().find(|v| v["type"] == "user").unwrap()["message"]["content"][0];
    assert_eq!(tr["is_error"], true);
    assert_eq!(tr["content"], "not today");
    let r = result(&t);
    assert_eq!(r["result"], "denied: not today");
    assert_eq!(r["is_error"], false);
    assert_eq!(r["permission_denials"].as_array().unwrap().len(), 1);

    // allow without updatedInput: the tool fails with a ZodError, the turn goes on
    m.user("permission");
    let rid = m.until(|v| v["type"] == "control_request").pop().unwrap()["request_id"].as_str().unwrap().to_string();
    m.send(json!({"type":"control_response","response":{"subtype":"success","request_id":rid,
        "response":{"behavior":"allow"}}}));
    let t = m.turn();
    let tr = &t.iter().find(|v| v["type"] == "user").unwrap()["message"]["content"][0];
    assert_eq!(tr["is_error"], true);
    assert!(tr["content"].as_str().unwrap().contains("ZodError"));
    assert_eq!(result(&t)["subtype"], "success");

    let decisions: Vec<String> = journal(&home, &sid)
        .iter()
        .filter(|r| r["kind"] == "permission")
        .map(|r| r["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "invalid"]);
}

#[test]
fn interrupt_pending_permission() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.user("permission Bash");
    let rid = m.until(|v| v["type"] == "control_request").pop().unwrap()["request_id"].as_str().unwrap().to_string();
    m.interrupt("int_1");
    let t = m.turn();
    assert_eq!(t[0]["type"], "control_cancel_request");
    assert_eq!(t[0]["request_id"], rid.as_str());
    assert_eq!(t[1]["type"], "control_response");
    assert_eq!(t[1]["response"]["request_id"], "int_1");
    assert_eq!(t[2]["message"]["content"][0]["is_error"], true);
    assert_eq!(t[3]["message"]["content"][0]["text"], "[Request interrupted by user for tool use]");
    let r = result(&t);
    assert_eq!(r["subtype"], "error_during_execution");
    assert_eq!(r["is_error"], true);
}

/// Checks the fixture-03 interrupt sequence and returns the partial text.
fn expect_interrupt_sequence(t: &[Value], req: &str) -> Option<String> {
    assert_eq!(t[0]["type"], "control_response", "{t:#?}");
    assert_eq!(t[0]["response"]["subtype"], "success");
    assert_eq!(t[0]["response"]["request_id"], req);
    let mut i = 1;
    let partial = if t[1]["type"] == "assistant" {
        i = 2;
        Some(t[1]["message"]["content"][0]["text"].as_str().unwrap().to_string())
    } else {
        None
    };
    assert_eq!(t[i]["type"], "user");
    assert_eq!(t[i]["message"]["content"][0]["text"], "[Request interrupted by user]");
    assert_eq!(t.len(), i + 2, "{t:#?}");
    let r = result(t);
    assert_eq!(r["subtype"], "error_during_execution");
    assert_eq!(r["is_error"], true);
    assert!(r["errors"].is_array());
    partial
}

#[test]
fn interrupt_hang_then_next_turn() {
    let home = temp_home();
    let sid = uuid4();
    let mut m = Mock::spawn(&home, &["--session-id", &sid]);
    m.user("hang");
    m.until(|v| v["subtype"] == "init");
    m.interrupt("req_int_1");
    let t = m.until(|v| v["type"] == "result");
    let t: Vec<Value> = t.into_iter().filter(|v| v["subtype"] != "status").collect();
    assert_eq!(expect_interrupt_sequence(&t, "req_int_1"), None);
    // Idle interrupt: just acknowledged.
    m.interrupt("idle_1");
    let ack = m.line();
    assert_eq!(ack["type"], "control_response");
    assert_eq!(ack["response"]["request_id"], "idle_1");
    // The process survives.
    m.user("again");
    assert_eq!(result(&m.turn())["result"], "echo: again");
    let kinds: Vec<Value> = journal(&home, &sid).into_iter().filter(|r| r["kind"] == "interrupt").collect();
    assert_eq!(kinds.len(), 2);
    assert_eq!(kinds[0]["during"], "turn");
    assert_eq!(kinds[1]["during"], "idle");
}

#[test]
fn interrupt_slow_midstream() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    let t0 = Instant::now();
    m.user("slow 30");
    let before = m.until(|v| is_event(v, "content_block_delta"));
    m.interrupt("req_slow");
    let t = m.until(|v| v["type"] == "result");
    assert!(t0.elapsed() < Duration::from_secs(5), "interrupt took {:?}", t0.elapsed());
    // Deltas written before the interrupt was read may still arrive first.
    let (deltas, rest): (Vec<Value>, Vec<Value>) = t.into_iter().partition(|v| is_event(v, "content_block_delta"));
    let streamed = text_deltas(&before).concat() + &text_deltas(&deltas).concat();
    let partial = expect_interrupt_sequence(&rest, "req_slow").expect("partial assistant block");
    assert_eq!(partial, streamed);
    assert!(partial.starts_with("slow-01 "));
}

#[test]
fn stream_sizes_and_interrupt_with_rate() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.user("stream 5 12");
    let t = m.turn();
    let d = text_deltas(&t);
    assert_eq!(d.len(), 5);
    assert!(d.iter().all(|x| x.len() == 12), "{d:?}");
    assert_eq!(d[0], "tok-0001... ");
    assert_eq!(result(&t)["result"], d.concat().as_str());
    assert_eq!(t.iter().filter(|v| v["type"] == "assistant").count(), 1);

    m.user("stream 1000 0 20");
    m.until(|v| is_event(v, "content_block_delta"));
    m.interrupt("req_stream");
    let t = m.until(|v| v["type"] == "result");
    let rest: Vec<Value> = t.into_iter().filter(|v| !is_event(v, "content_block_delta")).collect();
    let partial = expect_interrupt_sequence(&rest, "req_stream").unwrap();
    assert!(partial.starts_with("tok-0001 "));
}

#[test]
fn crash_code_3() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.user("crash code 3");
    let st = m.wait_exit();
    assert_eq!(st.code(), Some(3));
    let out: Vec<Value> = m.rest().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out[0]["subtype"], "init");
    assert!(out.iter().any(|v| is_event(v, "content_block_delta")));
    assert!(!out.iter().any(|v| v["type"] == "result"));
}

#[test]
fn crash_signal_11() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.user("crash signal 11");
    let st = m.wait_exit();
    assert_eq!(st.signal(), Some(11), "{st:?}");
    assert_eq!(st.code(), None);
}

#[test]
fn resume_recall_across_processes() {
    let home = temp_home();
    let sid = uuid4();
    let mut a = Mock::spawn(&home, &["--session-id", &sid]);
    a.user("remember PINEAPPLE");
    a.turn();
    a.user("exit");
    assert_eq!(result(&a.turn())["result"], "bye");
    assert_eq!(a.wait_exit().code(), Some(0));

    // The id is taken now.
    let mut dup = Mock::spawn(&home, &["--session-id", &sid]);
    assert_eq!(dup.wait_exit().code(), Some(1));
    assert!(dup.rest().is_empty());
    let err = dup.stderr();
    assert!(err.contains(&format!("Error: Session ID {sid} is already in use.")), "{err}");

    let mut b = Mock::spawn(&home, &["--resume", &sid]);
    b.user("recall");
    let t = b.turn();
    assert!(t.iter().all(|v| v["session_id"] == sid.as_str()));
    assert_eq!(result(&t)["result"], "Earlier prompts: 'remember PINEAPPLE' | 'exit'");
    b.close_stdin();
    assert_eq!(b.wait_exit().code(), Some(0));

    let starts: Vec<Value> = journal(&home, &sid).into_iter().filter(|r| r["kind"] == "start").collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["resumed"], false);
    assert_eq!(starts[1]["resumed"], true);
}

#[test]
fn unknown_resume_fails() {
    let home = temp_home();
    let sid = uuid4();
    let mut m = Mock::spawn(&home, &["--resume", &sid]);
    m.user("unknown");
    let r = m.line();
    assert_eq!(r["type"], "result");
    assert_eq!(r["subtype"], "error_during_execution");
    assert_eq!(r["is_error"], true);
    assert_eq!(r["session_id"], sid.as_str());
    assert_eq!(r["errors"][0], format!("No conversation found with session ID: {sid}").as_str());
    assert_eq!(m.wait_exit().code(), Some(1));
    assert!(m.rest().is_empty());
}

#[test]
fn env_dumps_environment() {
    let home = temp_home();
    let mut m = Mock::spawn_with(&home, &["--session-id", &uuid4()], |c| {
        c.env_clear().env("HOME", &*home).env("PATH", "/usr/bin:/bin").env("MOCK_PROBE", "é \"q\"");
    });
    m.user("env");
    let t = m.turn();
    let d = text_deltas(&t);
    assert_eq!(d.len(), 1);
    let env: Value = serde_json::from_str(&d[0]).unwrap();
    assert_eq!(env, json!({"HOME": home.to_str().unwrap(), "MOCK_PROBE": "é \"q\"", "PATH": "/usr/bin:/bin"}));
}

#[test]
fn giant_line_length() {
    let home = temp_home();
    let mut m = Mock::spawn(&home, &["--session-id", &uuid4()]);
    m.user("giant 2000000");
    let mut giant = None;
    loop {
        let l = m.raw_line().expect("stdout open");
        let v: Value = serde_json::from_str(&l).unwrap();
        if l.len() > 1_000_000 {
            giant = Some((l.len(), v["type"].as_str().unwrap().to_string()));
        }
        if v["type"] == "result" {
            assert_eq!(v["is_error"], false);
            break;
        }
    }
    assert_eq!(giant, Some((2_000_000, "assistant".to_string())));
}
