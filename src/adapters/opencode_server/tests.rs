//! Tests of the `opencode_server` adapter: golden transcripts over the real
//! server's event streams (tests/fixtures/opencode_server/*.sse, framed by
//! the gateway's own SSE framer at several chunk sizes), the startup
//! handshake, resume, stream gaps, and the pure mappings.
//!
//! The captures were made with `prompt_async`; the harness plays the
//! blocking `POST …/message` the adapter uses: it answers it with the
//! turn's completed assistant message at the first `session.idle` after
//! that message completed (the stale `session.idle` of fixture 03 comes
//! before it). Inputs are given where the capture shows a new user message
//! (while a turn runs the gateway would refuse it as SESSION_BUSY),
//! interrupts just before the server's `MessageAbortedError`, permission
//! answers as the capture's driver gave them.

use std::collections::VecDeque;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::adapters::{ServerEndpoint, Started};
use crate::net::sse::{SseFramer, SseItem};
use crate::protocol::Event;

const DIR: &str = "tests/fixtures/opencode_server";

fn spec(resume: Option<&str>) -> LaunchSpec {
    LaunchSpec {
        work_dir: "/srv/project".into(),
        resume: resume.map(str::to_owned),
        endpoint: Some(ServerEndpoint { port: 4097, password: "pw".into() }),
        ..LaunchSpec::default()
    }
}

// ------------------------------------------------------------ rendering

fn short(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// One line per action; consecutive deltas of one id merged (`×n` = count).
fn render(actions: &[Action]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut merge: Option<(String, String, usize, String)> = None; // (kind, id, n, text)
    let flush = |m: &mut Option<(String, String, usize, String)>, lines: &mut Vec<String>| {
        if let Some((k, id, n, text)) = m.take() {
            lines.push(format!("{k} {id} x{n} {}", short(&text)));
        }
    };
    for a in actions {
        let piece = match a {
            Action::Emit(Event::MessageDelta { message_id, content, .. }) => Some(("delta", message_id, content)),
            Action::Emit(Event::Reasoning { id, content, delta: Some(true) }) => Some(("reasoning", id, content)),
            _ => None,
        };
        if let Some((k, id, text)) = piece {
            match merge.as_mut() {
                Some((mk, mid, n, t)) if mk == k && mid == id => {
                    *n += 1;
                    t.push_str(text);
                }
                _ => {
                    flush(&mut merge, &mut lines);
                    merge = Some((k.to_owned(), id.clone(), 1, text.clone()));
                }
            }
            continue;
        }
        flush(&mut merge, &mut lines);
        lines.push(match a {
            Action::Emit(Event::MessageStart { id, .. }) => format!("message.start {id}"),
            Action::Emit(Event::MessageEnd { message_id }) => format!("message.end {message_id}"),
            Action::Emit(Event::Message { id, content, .. }) => format!("message {id} {}", short(content)),
            Action::Emit(Event::ToolCall { id, name, input, .. }) => format!("tool_call {id} {name} {input}"),
            Action::Emit(Event::ToolResult { id, output, is_error }) => {
                format!("tool_result {id} {} {output}", if *is_error { "error" } else { "ok" })
            }
            Action::Emit(Event::Error { code, message, details, .. }) => {
                format!("error {} {} {}", code.as_str(), short(message), details.clone().unwrap_or(Value::Null))
            }
            Action::Emit(other) => format!("event {other:?}"),
            Action::Permission(p) => {
                format!(
                    "permission {} {} {} {}",
                    p.id,
                    p.tool_name,
                    short(&p.description),
                    p.input.clone().unwrap_or_default()
                )
            }
            Action::PermissionCancelled { id } => format!("permission_cancelled {id}"),
            Action::AgentSessionId(id) => format!("agent_session_id {id}"),
            Action::TurnEnd { success, stats } => {
                format!("done success={success} {}", serde_json::to_string(stats).unwrap_or_default())
            }
            Action::ResumeFailed { message } => format!("resume_failed {}", short(message)),
            Action::Ready => "ready".to_owned(),
            Action::Kill => "kill".to_owned(),
            Action::Unmapped { kind, .. } => format!("unmapped {kind}"),
            Action::Timer { id, .. } => format!("timer {}", id & 0xf),
            Action::Http { request: r, .. } | Action::HttpStream { request: r, .. } => {
                let stream = if matches!(a, Action::HttpStream { .. }) { "stream " } else { "" };
                format!("http {stream}{} {} {}", r.method, r.path, String::from_utf8_lossy(&r.body))
            }
            Action::HttpCancel { id } => format!("http_cancel {id}"),
            other => format!("{other:?}"),
        });
    }
    flush(&mut merge, &mut lines);
    lines
}

// ------------------------------------------------------------ harness

/// Plays the HTTP side of the server around an adapter.
struct Harness {
    a: OpencodeServerAdapter,
    actions: Vec<Action>,
    /// Requests waiting for an answer from the harness.
    pending: VecDeque<(u64, HttpRequest)>,
    /// Requests the harness does not answer by itself (the test does).
    held: VecDeque<(u64, HttpRequest)>,
    events: Option<u64>,
    prompt: Option<u64>,
    session_id: String,
    /// Answers for permission requests, in order: (allow, reason).
    answers: VecDeque<(bool, Option<&'static str>)>,
}

impl Harness {
    fn new(session_id: &str, resume: bool) -> Harness {
        let mut a = OpencodeServerAdapter::new();
        let launch = a.launch(&spec(resume.then_some(session_id)));
        assert_eq!(launch.args, ["serve", "--hostname=127.0.0.1", "--port=4097"]);
        let mut h = Harness {
            a,
            actions: Vec::new(),
            pending: VecDeque::new(),
            held: VecDeque::new(),
            events: None,
            prompt: None,
            session_id: session_id.to_owned(),
            answers: VecDeque::new(),
        };
        h.call(|a, out| a.on_started(&Started { work_dir: Path::new("/srv/project"), pid: 1 }, out));
        h.call(|a, out| a.on_line(b"opencode server listening on http://127.0.0.1:4097", out));
        h
    }

    /// Run an adapter call, then answer what it asked for until nothing is left.
    fn call(&mut self, f: impl FnOnce(&mut OpencodeServerAdapter, &mut Out)) {
        let mut out = Out::default();
        f(&mut self.a, &mut out);
        self.absorb(out);
        while let Some((id, req)) = self.pending.pop_front() {
            let answer = match (req.method, req.path.as_str()) {
                ("POST", "/session") => Some((200, json!({"id": self.session_id}).to_string())),
                ("GET", p) if p.starts_with("/session/ses_") && !p.contains("/message") => {
                    Some((200, json!({"id": self.session_id}).to_string()))
                }
                ("POST", p) if p.ends_with("/abort") || p.ends_with("/reply") => Some((200, "true".to_owned())),
                _ => None,
            };
            match answer {
                Some((status, body)) => {
                    let mut out = Out::default();
                    self.a.on_http_response(id, status, body.as_bytes(), &mut out);
                    self.absorb(out);
                }
                None => self.held.push_back((id, req)),
            }
        }
    }

    fn absorb(&mut self, mut out: Out) {
        for act in out.take() {
            match &act {
                Action::HttpStream { id, .. } => self.events = Some(*id),
                Action::Http { id, request } if request.path.ends_with("/message") && request.method == "POST" => {
                    self.prompt = Some(*id)
                }
                Action::Http { id, request } => self.pending.push_back((*id, request.clone())),
                _ => {}
            }
            let ask = match &act {
                Action::Permission(p) => Some(p.id.clone()),
                _ => None,
            };
            self.actions.push(act);
            if let Some(id) = ask {
                let (allow, reason) = self.answers.pop_front().unwrap_or((false, None));
                let reply = PermissionReply { id, allow, reason: reason.map(str::to_owned), remember: false };
                let mut out = Out::default();
                self.a.on_permission(&reply, &mut out);
                self.absorb(out);
            }
        }
    }

    fn sse(&mut self, data: &[u8]) {
        let id = self.events.expect("event stream open");
        self.call(|a, out| a.on_sse(id, data, out));
    }

    fn answer_prompt(&mut self, status: u16, body: &str) {
        let id = self.prompt.take().expect("a prompt in flight");
        self.call(|a, out| a.on_http_response(id, status, body.as_bytes(), out));
    }

    /// Fire the last timer of `kind` the adapter armed.
    fn fire(&mut self, kind: u32) {
        let id = self.actions.iter().rev().find_map(|a| match a {
            Action::Timer { id, .. } if id & 0xf == kind => Some(*id),
            _ => None,
        });
        let id = id.unwrap_or_else(|| panic!("no timer {kind} armed"));
        self.call(|a, out| a.on_timer(id, out));
    }

    /// Answer the prompt; if the stream has not caught up, let the grace run out.
    fn answer_and_wait(&mut self, status: u16, body: &str) {
        let n = self.actions.len();
        self.answer_prompt(status, body);
        if self.actions[n..].iter().any(|a| matches!(a, Action::Timer { id, .. } if id & 0xf == T_CATCH_UP)) {
            self.fire(T_CATCH_UP);
        }
    }
}

/// The server-sent events of a fixture, framed with `chunk`-byte reads.
fn fixture_events(name: &str, chunk: usize) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(format!("{name}.sse"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut f = SseFramer::new(10 << 20);
    let mut events = Vec::new();
    for c in bytes.chunks(chunk) {
        f.feed(c, &mut |item| match item {
            SseItem::Event(d) => events.push(d.to_vec()),
            SseItem::Oversize { len } => panic!("oversize event {len}"),
        });
    }
    events
}

/// Play a fixture through the adapter; the rendered actions.
fn play(name: &str, resume: bool, answers: &[(bool, Option<&'static str>)], chunk: usize) -> Vec<String> {
    let events = fixture_events(name, chunk);
    let first: Value = events
        .iter()
        .filter_map(|e| serde_json::from_slice::<Value>(e).ok())
        .find(|v| v.pointer("/properties/sessionID").is_some())
        .expect("a session event");
    let sid = first.pointer("/properties/sessionID").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut h = Harness::new(&sid, resume);
    h.answers = answers.iter().copied().collect();
    let parsed: Vec<Value> = events.iter().map(|e| serde_json::from_slice(e).unwrap_or(Value::Null)).collect();
    let mut seen_users: Vec<String> = Vec::new();
    let mut turn_user: Option<String> = None;
    let mut finished: Option<Value> = None;
    for (i, ev) in parsed.iter().enumerate() {
        let ty = ev["type"].as_str().unwrap_or("");
        let info = &ev["properties"]["info"];
        if ty == "message.updated" && info["role"] == "user" {
            let uid = info["id"].as_str().unwrap_or_default().to_owned();
            if !seen_users.contains(&uid) {
                seen_users.push(uid.clone());
                if turn_user.is_none() {
                    let text = parsed[i..]
                        .iter()
                        .find(|e| e["type"] == "message.part.updated" && e["properties"]["part"]["messageID"] == uid)
                        .and_then(|e| e["properties"]["part"]["text"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    h.call(|a, out| a.on_input(&text, out));
                    turn_user = Some(uid);
                }
            }
        }
        if ty == "session.error" && ev["properties"]["error"]["name"] == wire::ABORTED && turn_user.is_some() {
            h.call(|a, out| a.on_interrupt(out));
        }
        h.sse(&events[i]);
        if ty == "message.updated"
            && info["role"] == "assistant"
            && info["parentID"].as_str() == turn_user.as_deref()
            && info["time"]["completed"].is_number()
        {
            finished = Some(info.clone());
        }
        if ty == "session.idle" {
            if let Some(info) = finished.take() {
                h.answer_prompt(200, &json!({"info": info, "parts": []}).to_string());
                turn_user = None;
            }
        }
    }
    let exit = ExitInfo { code: None, signal: Some(15), signalled_by_gateway: true };
    h.call(|a, out| a.on_exit(&exit, out));
    render(&h.actions)
}

/// Compare with the committed golden file (`HOTPLEX_BLESS=1` rewrites it).
fn golden(name: &str, resume: bool, answers: &[(bool, Option<&'static str>)]) {
    let got = play(name, resume, answers, usize::MAX);
    for chunk in [1, 7, 4096] {
        assert_eq!(play(name, resume, answers, chunk), got, "{name}: framing with {chunk}-byte reads differs");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(format!("{name}.golden"));
    let text = got.join("\n") + "\n";
    if std::env::var_os("HOTPLEX_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if want != text {
        panic!("{name}: transcript differs from {}\n--- got ---\n{text}", path.display());
    }
}

#[test]
fn golden_01_new_turn() {
    golden("01_new_turn", false, &[]);
}

#[test]
fn golden_02_permission_once_then_reject() {
    golden("02_permission_once_then_reject", false, &[(true, None), (false, Some("denied by test"))]);
}

#[test]
fn golden_03_abort_stream_and_tool() {
    golden("03_abort_stream_and_tool", false, &[(true, None)]);
}

#[test]
fn golden_04_error_400() {
    golden("04_error_400", false, &[]);
}

#[test]
fn golden_05_resume_after_server_restart() {
    golden("05_resume_after_server_restart", true, &[]);
}

#[test]
fn golden_06_sync_message_abort_busy() {
    golden("06_sync_message_abort_busy", false, &[]);
}

#[path = "tests_flow.rs"]
mod flow;
