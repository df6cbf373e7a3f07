//! The agent's state machine: idle loop, stdin dispatch (turn inputs, control
//! requests), interruptible waits, and the line emitters shared by every
//! script (system/init, stream events, assistant/user lines, results). The
//! scripts themselves live in `scripts.rs`.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::io::{Inbound, Out};
use crate::json::{J, NULL};
use crate::store::{Transcript, now_ms, rand64, uuid};

/// How long a turn that waits for the gateway (`hang`, a pending permission)
/// keeps waiting after stdin reached EOF before the process gives up and
/// exits 0. Long enough that a gateway's kill escalation is what ends it in
/// tests; short enough that a leaked mock does not live forever.
pub const EOF_HANG_CAP: Duration = Duration::from_secs(60);

/// Tools listed in `system/init` (Claude Code 2.1.197), minus `--disallowed-tools`.
const TOOLS: &[&str] = &[
    "Task",
    "AskUserQuestion",
    "Bash",
    "Edit",
    "EnterPlanMode",
    "ExitPlanMode",
    "NotebookEdit",
    "Read",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Write",
];

/// What a wait returned.
pub enum Ctl {
    /// `control_request{subtype:"interrupt"}` with this request id.
    Interrupt(String),
    /// A `control_response` line from the gateway (as received).
    Response(Value),
    Timeout,
}

/// Why a turn stopped before its normal end.
pub enum Stop {
    /// An interrupt arrived; its `control_response` is not written yet.
    Interrupt(String),
    /// Interrupt handled up to (excluding) the `[Request interrupted…]` user
    /// line and the result; `tool` selects the "for tool use" wording.
    Aborted { tool: bool },
}

/// Pacing of deltas inside a block.
#[derive(Clone, Copy)]
pub enum Pace {
    /// As fast as stdout takes them (still polls for an interrupt per delta).
    Fast,
    /// Delta `i` (0-based) is written at `start + i * interval`.
    Every { start: Instant, interval: Duration },
}

#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl Usage {
    fn add(&mut self, o: &Usage) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_creation += o.cache_creation;
    }

    /// Opus prices ($5 / $25 per Mtok, cache write $6.25, cache read $0.50),
    /// which reproduce the fixtures' numbers (1667 in + 4 out = 0.008435).
    fn cost(&self) -> f64 {
        (self.input as f64 * 5.0
            + self.output as f64 * 25.0
            + self.cache_creation as f64 * 6.25
            + self.cache_read as f64 * 0.5)
            / 1_000_000.0
    }
}

/// One simulated API call (= one assistant message).
pub struct Msg {
    pub id: String,
    next_index: u32,
    start_usage: Usage,
    output: u64,
}

impl Msg {
    pub fn take_index(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index - 1
    }
}

#[derive(Default)]
pub struct Turn {
    pub input: String,
    start: Option<Instant>,
    usage: Usage,
    api_calls: u32,
    pub denials: Vec<J>,
}

/// Static settings from the command line.
pub struct Config {
    pub sid: String,
    pub model: String,
    pub perm_mode: String,
    pub prompt_tool: bool,
    pub partial: bool,
    pub allowed: Vec<String>,
    pub disallowed: Vec<String>,
    pub cwd: String,
}

pub struct Agent {
    pub out: Out,
    rx: Receiver<Inbound>,
    queue: VecDeque<String>,
    eof_at: Option<Instant>,
    pub cfg: Config,
    pub transcript: Transcript,
    cum: Usage,
    cost: f64,
    msg_seq: u64,
    in_turn: bool,
    pub exit_after_turn: bool,
    pub turn: Turn,
}

pub fn text_of(v: &Value) -> String {
    match &v["message"]["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// Splits `text` into word deltas (each keeps its trailing space); texts of
/// fewer than 3 words are cut into 3 pieces on char boundaries instead, so a
/// reply always streams as several deltas.
pub fn pieces(text: &str) -> Vec<String> {
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
    let n = text.chars().count();
    if words.len() >= 3 || n < 3 {
        return words;
    }
    let cuts = [n / 3, 2 * n / 3];
    let mut out = vec![String::new()];
    for (i, c) in text.chars().enumerate() {
        if cuts.contains(&i) && !out.last().is_some_and(String::is_empty) {
            out.push(String::new());
        }
        out.last_mut().expect("non-empty").push(c);
    }
    out
}

pub fn iso_now() -> String {
    let ms = now_ms();
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let r = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", r / 3600, r % 3600 / 60, r % 60, ms % 1000)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `start + d`, saturating far in the future instead of panicking.
pub fn at(start: Instant, d: Duration) -> Instant {
    start.checked_add(d).unwrap_or_else(|| start + Duration::from_secs(10_000_000))
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

impl Agent {
    pub fn new(out: Out, rx: Receiver<Inbound>, cfg: Config, transcript: Transcript) -> Agent {
        Agent {
            out,
            rx,
            queue: VecDeque::new(),
            eof_at: None,
            cfg,
            transcript,
            cum: Usage::default(),
            cost: 0.0,
            msg_seq: 0,
            in_turn: false,
            exit_after_turn: false,
            turn: Turn::default(),
        }
    }

    pub fn quit(&mut self, code: i32) -> ! {
        std::process::exit(code)
    }

    /// Idle loop: one turn per queued input; EOF while idle exits 0.
    pub fn run(mut self) -> ! {
        loop {
            if let Some(text) = self.queue.pop_front() {
                self.run_turn(text);
                continue;
            }
            if self.eof_at.is_some() {
                self.quit(0);
            }
            let m = self.rx.recv().unwrap_or(Inbound::Eof);
            if let Some(Ctl::Interrupt(rid)) = self.dispatch(m) {
                // Nothing running: acknowledge and stay idle.
                self.control_ok(&rid, None);
            }
        }
    }

    fn run_turn(&mut self, input: String) {
        self.transcript.record(&o! {"kind" => "user", "ts_ms" => now_ms(), "text" => &input}, false);
        self.turn = Turn { input: input.clone(), start: Some(Instant::now()), ..Turn::default() };
        self.in_turn = true;
        self.system_init();
        match crate::scripts::run(self, &input) {
            Ok(Some(text)) => self.result_success(&text),
            Ok(None) => {}
            Err(Stop::Interrupt(rid)) => {
                self.control_ok(&rid, None);
                self.result_interrupted(false);
            }
            Err(Stop::Aborted { tool }) => self.result_interrupted(tool),
        }
        self.in_turn = false;
        if self.exit_after_turn {
            self.quit(0);
        }
    }

    /// Handles one inbound item; returns what a waiting turn must see.
    fn dispatch(&mut self, m: Inbound) -> Option<Ctl> {
        match m {
            Inbound::Line(v) => match v["type"].as_str() {
                Some("user") => {
                    // Queued like the real CLI: it runs after the current turn.
                    self.queue.push_back(text_of(&v));
                    None
                }
                Some("control_request") => self.control_request(&v).map(Ctl::Interrupt),
                Some("control_response") => Some(Ctl::Response(v)),
                other => {
                    eprintln!("mock-agent: ignoring stdin line of type {other:?}");
                    None
                }
            },
            Inbound::Bad(s) => {
                eprintln!("mock-agent: stdin line is not JSON: {s}");
                None
            }
            Inbound::Eof => {
                self.eof_at.get_or_insert_with(Instant::now);
                None
            }
        }
    }

    /// Answers control requests at once; returns the request id of an interrupt.
    fn control_request(&mut self, v: &Value) -> Option<String> {
        let rid = v["request_id"].as_str().unwrap_or_default().to_string();
        let req = &v["request"];
        match req["subtype"].as_str().unwrap_or_default() {
            "interrupt" => {
                let during = if self.in_turn { "turn" } else { "idle" };
                self.transcript.record(
                    &o! {"kind" => "interrupt", "ts_ms" => now_ms(), "request_id" => &rid, "during" => during},
                    true,
                );
                return Some(rid);
            }
            "initialize" => {
                let resp = o! {
                    "commands" => a![], "agents" => a![], "output_style" => "default",
                    "available_output_styles" => a!["default"],
                    "models" => a![o!{"value" => "default", "resolvedModel" => &self.cfg.model,
                        "displayName" => "Default (recommended)", "description" => "mock model"}],
                    "account" => o!{"tokenSource" => "none", "apiKeySource" => api_key_source(),
                        "apiProvider" => "firstParty"},
                    "pid" => std::process::id(),
                };
                self.control_ok(&rid, Some(resp));
            }
            "set_permission_mode" => {
                if let Some(m) = req["mode"].as_str() {
                    self.cfg.perm_mode = m.to_string();
                }
                self.control_ok(&rid, None);
            }
            "set_model" => {
                if let Some(m) = req["model"].as_str() {
                    self.cfg.model = m.to_string();
                }
                self.control_ok(&rid, None);
            }
            other => {
                let err = format!("Unsupported control request subtype: {other}");
                self.emit(o! {"type" => "control_response",
                "response" => o!{"subtype" => "error", "request_id" => &rid, "error" => err}});
            }
        }
        None
    }

    /// Waits for the next interrupt or control_response until `deadline`
    /// (`None` = forever). Turn inputs arriving meanwhile are queued, other
    /// control requests answered. After stdin EOF: sleeps to the deadline, or
    /// with no deadline exits 0 after [`EOF_HANG_CAP`].
    pub fn next(&mut self, deadline: Option<Instant>) -> Ctl {
        loop {
            if let Some(t0) = self.eof_at {
                match deadline {
                    Some(d) => {
                        sleep_until(d);
                        return Ctl::Timeout;
                    }
                    None => {
                        sleep_until(at(t0, EOF_HANG_CAP));
                        eprintln!("mock-agent: stdin closed and nothing to wait for; exiting");
                        self.quit(0);
                    }
                }
            }
            let m = match deadline {
                None => self.rx.recv().unwrap_or(Inbound::Eof),
                Some(d) => {
                    let now = Instant::now();
                    let r = if d <= now {
                        self.rx.try_recv().map_err(|e| e == TryRecvError::Disconnected)
                    } else {
                        self.rx.recv_timeout(d - now).map_err(|e| e == RecvTimeoutError::Disconnected)
                    };
                    match r {
                        Ok(m) => m,
                        Err(true) => Inbound::Eof,
                        Err(false) => return Ctl::Timeout,
                    }
                }
            };
            if let Some(c) = self.dispatch(m) {
                return c;
            }
        }
    }

    /// Sleeps until `t` unless interrupted (stray control_responses are ignored).
    pub fn pause_until(&mut self, t: Instant) -> Result<(), Stop> {
        loop {
            match self.next(Some(t)) {
                Ctl::Interrupt(rid) => return Err(Stop::Interrupt(rid)),
                Ctl::Response(_) => {}
                Ctl::Timeout => return Ok(()),
            }
        }
    }

    /// Non-blocking interrupt check.
    pub fn poll(&mut self) -> Result<(), Stop> {
        self.pause_until(Instant::now())
    }

    /// Waits until interrupted (or killed).
    pub fn hang(&mut self) -> Stop {
        loop {
            if let Ctl::Interrupt(rid) = self.next(None) {
                return Stop::Interrupt(rid);
            }
        }
    }

    // ---- line emitters -------------------------------------------------

    pub fn emit(&mut self, j: J) {
        self.out.line(&j);
    }

    pub fn api_model(&self) -> String {
        self.cfg.model.trim_end_matches("[1m]").to_string()
    }

    pub fn system_init(&mut self) {
        let tools: Vec<J> =
            TOOLS.iter().filter(|t| !self.cfg.disallowed.iter().any(|d| d == *t)).map(|t| J::from(*t)).collect();
        self.emit(o! {
            "type" => "system", "subtype" => "init", "cwd" => &self.cfg.cwd, "session_id" => &self.cfg.sid,
            "tools" => tools, "mcp_servers" => a![], "model" => &self.cfg.model,
            "permissionMode" => &self.cfg.perm_mode, "slash_commands" => a![],
            "apiKeySource" => api_key_source(), "claude_code_version" => "2.1.197", "output_style" => "default",
            "agents" => a![], "skills" => a![], "plugins" => a![], "uuid" => uuid(), "fast_mode_state" => "off",
        });
    }

    pub fn system(&mut self, subtype: &str, mut fields: J) {
        let mut j = o! {"type" => "system", "subtype" => subtype};
        if let (J::O(dst), J::O(src)) = (&mut j, &mut fields) {
            dst.append(src);
        }
        j.push("session_id", &self.cfg.sid);
        j.push("uuid", uuid());
        self.emit(j);
    }

    pub fn status_requesting(&mut self) {
        self.system("status", o! {"status" => "requesting"});
    }

    /// A `stream_event` line (only with `--include-partial-messages`).
    pub fn se(&mut self, event: J) {
        if self.cfg.partial {
            let j = o! {"type" => "stream_event", "event" => event, "session_id" => &self.cfg.sid,
            "parent_tool_use_id" => NULL, "uuid" => uuid()};
            self.emit(j);
        }
    }

    pub fn control_ok(&mut self, rid: &str, response: Option<J>) {
        let mut r = o! {"subtype" => "success", "request_id" => rid};
        if let Some(resp) = response {
            r.push("response", resp);
        }
        self.emit(o! {"type" => "control_response", "response" => r});
    }

    pub fn assistant_j(&self, m: &Msg, block: J) -> J {
        o! {
            "type" => "assistant",
            "message" => o!{"id" => &m.id, "type" => "message", "role" => "assistant", "model" => self.api_model(),
                "content" => a![block], "stop_reason" => NULL, "stop_sequence" => NULL,
                "usage" => msg_usage(&m.start_usage), "context_management" => NULL},
            "parent_tool_use_id" => NULL, "session_id" => &self.cfg.sid, "uuid" => uuid(),
        }
    }

    pub fn assistant(&mut self, m: &Msg, block: J) {
        let j = self.assistant_j(m, block);
        self.emit(j);
    }

    pub fn user_line(&mut self, content: J, tool_use_result: Option<J>) {
        let mut j = o! {"type" => "user", "message" => o!{"role" => "user", "content" => content},
        "parent_tool_use_id" => NULL, "session_id" => &self.cfg.sid, "uuid" => uuid(), "timestamp" => iso_now()};
        if let Some(t) = tool_use_result {
            j.push("tool_use_result", t);
        }
        self.emit(j);
    }

    pub fn tool_result(&mut self, tool_use_id: &str, content: &str, is_error: bool, tool_use_result: J) {
        let block =
            o! {"type" => "tool_result", "tool_use_id" => tool_use_id, "content" => content, "is_error" => is_error};
        self.user_line(a![block], Some(tool_use_result));
    }

    // ---- messages and blocks ------------------------------------------

    /// Starts an API call: `system/status`, `message_start`.
    pub fn msg_begin(&mut self) -> Msg {
        self.status_requesting();
        self.msg_seq += 1;
        self.turn.api_calls += 1;
        let first = self.msg_seq == 1;
        let start_usage = Usage {
            input: 1600 + self.turn.input.len() as u64 / 4 + 100 * u64::from(self.turn.api_calls - 1),
            output: 1,
            cache_creation: if first { 128 } else { 0 },
            cache_read: if first { 0 } else { 128 },
        };
        let id = format!("msg_mock_{:04}_{:08x}", self.msg_seq, rand64() as u32);
        self.se(o! {"type" => "message_start", "message" => o!{
        "id" => &id, "type" => "message", "role" => "assistant", "model" => self.api_model(),
        "content" => a![], "stop_reason" => NULL, "stop_sequence" => NULL, "usage" => msg_usage(&start_usage)}});
        Msg { id, next_index: 0, start_usage, output: 0 }
    }

    /// Ends an API call (`message_delta`, `message_stop`) and books its usage.
    pub fn msg_end(&mut self, m: Msg, stop_reason: &str) {
        let output = m.output.max(1);
        self.se(o! {"type" => "message_delta", "delta" => o!{"stop_reason" => stop_reason, "stop_sequence" => NULL},
        "usage" => o!{"output_tokens" => output}});
        self.se(o! {"type" => "message_stop"});
        let u = Usage { output, ..m.start_usage };
        self.turn.usage.add(&u);
        self.cum.add(&u);
        self.cost += u.cost();
    }

    pub fn block_start(&mut self, index: u32, block: J) {
        self.se(o! {"type" => "content_block_start", "index" => index, "content_block" => block});
    }

    pub fn block_delta(&mut self, index: u32, delta: J) {
        self.se(o! {"type" => "content_block_delta", "index" => index, "delta" => delta});
    }

    pub fn block_stop(&mut self, index: u32) {
        self.se(o! {"type" => "content_block_stop", "index" => index});
    }

    /// A streamed text block. On interrupt: `control_response`, then the
    /// partial `assistant` block (if any text went out), like the real CLI.
    pub fn text_block<I: IntoIterator<Item = String>>(
        &mut self,
        m: &mut Msg,
        pieces: I,
        pace: Pace,
    ) -> Result<String, Stop> {
        let index = m.take_index();
        self.block_start(index, o! {"type" => "text", "text" => ""});
        let mut full = String::new();
        for (i, piece) in pieces.into_iter().enumerate() {
            let waited = match pace {
                Pace::Fast => self.poll(),
                Pace::Every { start, interval } => self.pause_until(at(start, interval.mul_f64(i as f64))),
            };
            if let Err(stop) = waited {
                if let Stop::Interrupt(rid) = stop {
                    self.control_ok(&rid, None);
                    if !full.is_empty() {
                        self.assistant(m, o! {"type" => "text", "text" => &full});
                    }
                    return Err(Stop::Aborted { tool: false });
                }
                return Err(stop);
            }
            self.block_delta(index, o! {"type" => "text_delta", "text" => &piece});
            full.push_str(&piece);
        }
        self.assistant(m, o! {"type" => "text", "text" => &full});
        self.block_stop(index);
        m.output += (full.len() as u64).div_ceil(4);
        Ok(full)
    }

    pub fn thinking_block(&mut self, m: &mut Msg, text: &str) {
        let index = m.take_index();
        self.block_start(index, o! {"type" => "thinking", "thinking" => "", "signature" => ""});
        for p in pieces(text) {
            self.block_delta(index, o! {"type" => "thinking_delta", "thinking" => p});
        }
        self.block_delta(index, o! {"type" => "signature_delta", "signature" => "mocksig"});
        self.assistant(m, o! {"type" => "thinking", "thinking" => text, "signature" => "mocksig"});
        self.block_stop(index);
        m.output += (text.len() as u64).div_ceil(4);
    }

    /// A `tool_use` block; returns the tool_use id.
    pub fn tool_block(&mut self, m: &mut Msg, name: &str, input: &Value) -> String {
        let index = m.take_index();
        let id = format!("toolu_mock_{:04}_{:08x}", self.msg_seq, rand64() as u32);
        self.block_start(index, o! {"type" => "tool_use", "id" => &id, "name" => name, "input" => o!{}});
        let s = input.to_string();
        let mut cut = s.len() / 2;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        for part in [&s[..cut], &s[cut..]] {
            self.block_delta(index, o! {"type" => "input_json_delta", "partial_json" => part});
        }
        self.assistant(m, o! {"type" => "tool_use", "id" => &id, "name" => name, "input" => input});
        self.block_stop(index);
        m.output += 16;
        id
    }

    /// The interrupt sequence for a turn cut while a tool was pending.
    pub fn tool_interrupted(&mut self, rid: &str, tool_use_id: &str) -> Stop {
        self.control_ok(rid, None);
        self.tool_result(tool_use_id, REJECTED, true, J::from("User rejected tool use"));
        Stop::Aborted { tool: true }
    }

    // ---- results -------------------------------------------------------

    fn duration_ms(&self) -> u64 {
        // Never 0: a gateway may treat 0 as "unknown".
        self.turn.start.map_or(1, |s| (s.elapsed().as_millis() as u64).max(1))
    }

    fn usage_j(u: &Usage) -> J {
        o! {"input_tokens" => u.input, "cache_creation_input_tokens" => u.cache_creation,
        "cache_read_input_tokens" => u.cache_read, "output_tokens" => u.output,
        "server_tool_use" => o!{"web_search_requests" => 0u64, "web_fetch_requests" => 0u64},
        "service_tier" => "standard",
        "cache_creation" => o!{"ephemeral_1h_input_tokens" => 0u64, "ephemeral_5m_input_tokens" => u.cache_creation},
        "inference_geo" => "", "iterations" => a![], "speed" => "standard"}
    }

    fn model_usage_j(&self) -> J {
        let window: u64 = if self.cfg.model.ends_with("[1m]") { 1_000_000 } else { 200_000 };
        let c = &self.cum;
        J::O(vec![(
            self.cfg.model.clone(),
            o! {"inputTokens" => c.input, "outputTokens" => c.output, "cacheReadInputTokens" => c.cache_read,
            "cacheCreationInputTokens" => c.cache_creation, "webSearchRequests" => 0u64, "costUSD" => self.cost,
            "contextWindow" => window, "maxOutputTokens" => 64_000u64},
        )])
    }

    /// Common tail of every result line.
    fn result_tail(&mut self, j: &mut J, terminal_reason: &str) {
        j.push("session_id", &self.cfg.sid);
        j.push("total_cost_usd", self.cost);
        j.push("usage", Self::usage_j(&self.turn.usage));
        j.push("modelUsage", self.model_usage_j());
        j.push("permission_denials", J::A(std::mem::take(&mut self.turn.denials)));
        j.push("terminal_reason", terminal_reason);
        j.push("fast_mode_state", "off");
        j.push("uuid", uuid());
    }

    fn journal_result(&mut self, subtype: &str, is_error: bool) {
        self.transcript
            .record(&o! {"kind" => "result", "ts_ms" => now_ms(), "subtype" => subtype, "is_error" => is_error}, false);
    }

    pub fn result_success(&mut self, text: &str) {
        let d = self.duration_ms();
        let mut j = o! {"type" => "result", "subtype" => "success", "is_error" => false, "api_error_status" => NULL,
        "duration_ms" => d, "duration_api_ms" => d, "num_turns" => self.turn.api_calls, "result" => text,
        "stop_reason" => "end_turn"};
        self.result_tail(&mut j, "completed");
        self.emit(j);
        self.journal_result("success", false);
    }

    /// The agent-side API failure result (fixture 04).
    pub fn result_api_error(&mut self, status: u16, text: &str) {
        let d = self.duration_ms();
        let mut j = o! {"type" => "result", "subtype" => "success", "is_error" => true, "api_error_status" => status,
        "duration_ms" => d, "duration_api_ms" => d, "num_turns" => self.turn.api_calls.max(1), "result" => text,
        "stop_reason" => "stop_sequence"};
        self.result_tail(&mut j, "completed");
        self.emit(j);
        self.journal_result("success", true);
    }

    /// `[Request interrupted by user]` + `result{error_during_execution}` (fixture 03).
    pub fn result_interrupted(&mut self, tool: bool) {
        let text = if tool { "[Request interrupted by user for tool use]" } else { "[Request interrupted by user]" };
        self.user_line(a![o! {"type" => "text", "text" => text}], None);
        let d = self.duration_ms();
        let stop = if tool { J::from("tool_use") } else { NULL };
        let diag = format!(
            "[ede_diagnostic] result_type=user last_content_type=n/a stop_reason={}",
            if tool { "tool_use" } else { "null" }
        );
        let mut j = o! {"type" => "result", "subtype" => "error_during_execution", "duration_ms" => d,
        "duration_api_ms" => d, "is_error" => true, "num_turns" => self.turn.api_calls.max(1),
        "stop_reason" => stop};
        self.result_tail(&mut j, if tool { "aborted_tools" } else { "aborted_streaming" });
        j.push("errors", a![diag]);
        self.emit(j);
        self.journal_result("error_during_execution", true);
    }
}

pub const REJECTED: &str = "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.";

fn msg_usage(u: &Usage) -> J {
    o! {"input_tokens" => u.input, "output_tokens" => 1u64, "cache_creation_input_tokens" => u.cache_creation,
    "cache_read_input_tokens" => u.cache_read}
}

pub fn api_key_source() -> &'static str {
    if std::env::var_os("ANTHROPIC_API_KEY").is_some() { "ANTHROPIC_API_KEY" } else { "none" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate() {
        for t in ["", "a", "ab", "abc", "echo: hi", "é 😀 \u{2028} \u{2029} \" \\", "one two three four"] {
            let p = pieces(t);
            assert_eq!(p.concat(), t);
            if t.chars().count() >= 3 {
                assert!(p.len() >= 3, "{t:?} -> {p:?}");
            }
        }
    }

    #[test]
    fn civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
