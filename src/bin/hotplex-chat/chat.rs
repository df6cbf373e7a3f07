//! The chat loop: one thread polls the socket (short read timeout) and
//! drains stdin lines from a channel; it queues prompts while a turn runs,
//! answers permission requests and decides when to exit.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::args::Args;
use crate::conn::{self, Recv, Ws};
use crate::input::{self, Cmd, In, Tty};
use crate::json_line;
use crate::render::{self, Screen};

/// A replay that goes silent this long before reaching `init_ack.last_seq` is
/// considered complete anyway.
const CATCH_UP_GRACE: Duration = Duration::from_secs(3);
/// An expected reply (pong, state) that has not come after this is forgotten.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(30);

const COMMANDS: &str = "commands: /interrupt /terminate /reset /delete /ping /help /quit · //text sends \"/text\"";

/// Connection-local errors that answer (and reject) an `input`.
const INPUT_REJECTED: &[&str] =
    &["SESSION_BUSY", "SESSION_TERMINATED", "INVALID_MESSAGE", "RATE_LIMIT_EXCEEDED", "UNAUTHORIZED", "PROTOCOL_ERROR"];

#[derive(Clone, Copy, PartialEq)]
enum Source {
    Stdin,
    Tty,
}

pub struct Chat {
    a: Args,
    ws: Ws,
    screen: Screen,
    tx: Sender<In>,
    rx: Receiver<In>,
    /// stdin is a terminal: commands run at once, answers come from stdin.
    interactive: bool,
    queue: VecDeque<Cmd>,
    stdin_eof: bool,
    session_id: String,
    state: String,
    /// An `input` was sent and neither its `state{running}`, its `done` nor a rejection came yet.
    input_pending: bool,
    /// A turn is running (from `state{running}` / `init_ack` until `done`).
    in_turn: bool,
    /// Replies a sent command should produce (`pong`, a state name), oldest first.
    expect: Vec<&'static str>,
    expect_since: Instant,
    /// The replay (if any) has reached `init_ack.last_seq`.
    caught_up: bool,
    catch_up_to: u64,
    last_frame: Instant,
    max_seq: u64,
    /// `permission_request` data not yet answered.
    perms: VecDeque<Value>,
    asking: Option<(Value, Source)>,
    tty: Option<Tty>,
    tty_tried: bool,
    deleting: bool,
}

impl Chat {
    pub fn new(a: Args, ws: Ws, screen: Screen, tx: Sender<In>, rx: Receiver<In>, ack: &Value) -> Chat {
        let d = &ack["event"]["data"];
        let session_id = d["session_id"].as_str().unwrap_or("").to_string();
        let state = d["state"].as_str().unwrap_or("idle").to_string();
        let log_pos = d["last_seq"].as_u64().unwrap_or(0);
        let caught_up = match a.last_seq {
            Some(n) => n >= log_pos,
            None => true,
        };
        let mut chat = Chat {
            interactive: std::io::stdin().is_terminal(),
            queue: VecDeque::new(),
            stdin_eof: false,
            in_turn: state == "running",
            session_id,
            state,
            input_pending: false,
            expect: Vec::new(),
            expect_since: Instant::now(),
            caught_up,
            catch_up_to: log_pos,
            last_frame: Instant::now(),
            max_seq: a.last_seq.unwrap_or(0),
            perms: VecDeque::new(),
            asking: None,
            tty: None,
            tty_tried: false,
            deleting: false,
            a,
            ws,
            screen,
            tx,
            rx,
        };
        let resumed = if d["resumed"].as_bool() == Some(true) { "resumed" } else { "new" };
        let worker = d["server_caps"]["worker_type"].as_str().unwrap_or(&chat.a.worker).to_string();
        let mode = if chat.a.observe { " · observing (read-only)" } else { "" };
        let status = format!("● session {} · {} · {resumed} · {worker}{mode}", chat.session_id, chat.state);
        chat.note(&status);
        if !chat.a.json {
            let help = if chat.a.observe {
                "  Watching the session. /ping, /help, /quit; Ctrl-D or /quit to leave."
            } else {
                "  Type a prompt and press Enter. /help lists the commands; Ctrl-D finishes."
            };
            chat.screen.info(help);
        }
        if !chat.caught_up {
            let from = chat.a.last_seq.unwrap_or(0);
            chat.note(&format!("· replaying events {}..={log_pos}", from + 1));
        }
        chat
    }

    /// A status line: stdout normally, stderr in --json mode (stdout is JSON only).
    fn note(&mut self, s: &str) {
        if self.a.json {
            eprintln!("{s}");
        } else {
            self.screen.info(s);
        }
    }

    fn warn(&mut self, s: &str) {
        if self.a.json {
            eprintln!("hotplex-chat: {s}");
        } else {
            self.screen.warn(s);
        }
    }

    fn send(&mut self, ty: &str, data: Value) -> Result<(), i32> {
        conn::send(&mut self.ws, ty, data).map_err(|e| {
            eprintln!("hotplex-chat: {e}");
            1
        })
    }

    pub fn run(&mut self) -> Result<(), i32> {
        loop {
            while let Ok(i) = self.rx.try_recv() {
                self.on_input(i)?;
            }
            if !self.expect.is_empty() && self.expect_since.elapsed() > EXPECT_TIMEOUT {
                self.expect.clear();
            }
            self.pump()?;
            if self.asking.is_none() && self.caught_up {
                if let Some(p) = self.perms.pop_front() {
                    self.ask(p)?;
                }
            }
            if self.finished() {
                if !self.a.json {
                    self.screen.break_line();
                }
                conn::close(&mut self.ws);
                return Ok(());
            }
            let show_prompt = self.interactive && !self.a.json && !self.a.observe && !self.stdin_eof;
            if show_prompt && !self.screen.prompt_shown && self.ready() && self.queue.is_empty() {
                self.screen.prompt();
            }
            match conn::recv(&mut self.ws) {
                Recv::Frame(t) => self.on_frame(&t)?,
                Recv::Idle => {
                    if !self.caught_up && self.last_frame.elapsed() > CATCH_UP_GRACE {
                        self.caught_up = true;
                    }
                }
                Recv::Closed(code, reason) => return self.on_close(code, &reason),
                Recv::Lost(e) => {
                    self.screen.break_line();
                    eprintln!("hotplex-chat: connection to the gateway lost: {e}");
                    self.resume_hint();
                    return Err(1);
                }
            }
        }
    }

    /// Idle and nothing outstanding: the next queued line may go.
    fn ready(&self) -> bool {
        self.caught_up
            && !self.input_pending
            && !self.in_turn
            && self.state != "running"
            && self.expect.is_empty()
            && self.asking.is_none()
            && self.perms.is_empty()
    }

    fn finished(&self) -> bool {
        self.stdin_eof && self.queue.is_empty() && !self.deleting && self.ready()
    }

    fn on_input(&mut self, i: In) -> Result<(), i32> {
        match i {
            In::Line(line) => {
                if self.interactive {
                    self.screen.input_echoed();
                }
                if matches!(self.asking, Some((_, Source::Stdin))) {
                    return self.answer(&line);
                }
                let Some(cmd) = input::parse_line(&line) else { return Ok(()) };
                if self.interactive && !matches!(cmd, Cmd::Prompt(_)) {
                    return self.exec(cmd);
                }
                if self.interactive && !self.ready() {
                    self.screen.info("(queued: it is sent when the current turn is done)");
                }
                self.queue.push_back(cmd);
            }
            In::Eof => {
                self.stdin_eof = true;
                if matches!(self.asking, Some((_, Source::Stdin))) {
                    self.deny("stdin closed before an answer")?;
                }
            }
            In::Tty(line) => {
                if matches!(self.asking, Some((_, Source::Tty))) {
                    return self.answer(&line);
                }
            }
            In::TtyGone => {
                self.tty = None;
                if matches!(self.asking, Some((_, Source::Tty))) {
                    self.deny("the terminal was closed before an answer")?;
                }
            }
        }
        Ok(())
    }

    /// Run queued lines in order while the session allows.
    fn pump(&mut self) -> Result<(), i32> {
        while let Some(front) = self.queue.front() {
            let go = match front {
                Cmd::Interrupt | Cmd::Help | Cmd::Unknown(_) => self.caught_up,
                _ => self.ready(),
            };
            if !go {
                break;
            }
            if let Some(cmd) = self.queue.pop_front() {
                self.exec(cmd)?;
            }
        }
        Ok(())
    }

    fn exec(&mut self, cmd: Cmd) -> Result<(), i32> {
        let read_only = self.a.observe && !matches!(cmd, Cmd::Ping | Cmd::Help | Cmd::Quit | Cmd::Unknown(_));
        if read_only {
            self.warn("observe mode is read-only: only /ping, /help and /quit work");
            return Ok(());
        }
        match cmd {
            Cmd::Prompt(text) => {
                self.send("input", json!({"content": text}))?;
                self.input_pending = true;
            }
            Cmd::Interrupt => self.send("control", json!({"action": "interrupt"}))?,
            Cmd::Terminate => {
                self.send("control", json!({"action": "terminate"}))?;
                self.expect_reply("terminated");
            }
            Cmd::Reset => {
                self.send("control", json!({"action": "reset"}))?;
                self.expect_reply("idle");
            }
            Cmd::Delete => {
                self.send("control", json!({"action": "delete"}))?;
                self.deleting = true;
            }
            Cmd::Ping => {
                self.send("ping", json!({}))?;
                self.expect_reply("pong");
            }
            Cmd::Quit => {
                conn::close(&mut self.ws);
                if !self.a.observe {
                    self.note(&format!("· disconnected; session {} keeps running", self.session_id));
                    self.resume_hint();
                }
                return Err(0);
            }
            Cmd::Help => {
                let s = format!("  {COMMANDS}");
                self.note(&s);
            }
            Cmd::Unknown(c) => {
                self.warn(&format!("unknown command /{c} — /help lists them; //{c} sends it as a prompt"))
            }
        }
        Ok(())
    }

    fn expect_reply(&mut self, what: &'static str) {
        if self.expect.is_empty() {
            self.expect_since = Instant::now();
        }
        self.expect.push(what);
    }

    fn got_reply(&mut self, what: &str) {
        if let Some(i) = self.expect.iter().position(|e| *e == what) {
            self.expect.remove(i);
        }
    }

    fn on_frame(&mut self, text: &str) -> Result<(), i32> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.warn("ignoring a frame that is not JSON");
            return Ok(());
        };
        self.last_frame = Instant::now();
        let seq = v["seq"].as_u64().unwrap_or(0);
        let was_caught_up = self.caught_up;
        if seq > 0 {
            self.max_seq = self.max_seq.max(seq);
            if !self.caught_up && seq >= self.catch_up_to {
                self.caught_up = true;
            }
        }
        let ty = v["event"]["type"].as_str().unwrap_or("");
        let d = &v["event"]["data"];
        if self.a.json {
            self.screen.raw(&json_line(text, &v));
        } else if ty == "permission_request" {
            let tool = d["tool_name"].as_str().unwrap_or("a tool");
            let desc = d["description"].as_str().unwrap_or("");
            self.screen.warn(&format!("? {tool} asks for permission: {desc}"));
            let input = render::summarize(&d["input"], 160);
            if !input.is_empty() && input != "{}" {
                self.screen.info(&format!("  {input}"));
            }
        } else {
            self.screen.event(ty, d);
        }
        match ty {
            "state" => {
                let st = d["state"].as_str().unwrap_or("").to_string();
                self.in_turn = st == "running";
                if self.in_turn {
                    self.input_pending = false;
                }
                self.got_reply(&st);
                if st == "terminated" && was_caught_up && !self.a.json && !self.a.observe {
                    self.screen.info("  the worker is stopped: /reset starts a fresh one; reconnecting resumes it");
                }
                self.state = st;
            }
            "done" => {
                self.in_turn = false;
                self.input_pending = false;
                self.perms.clear();
                if self.asking.take().is_some() {
                    self.note("  (the permission request ended with the turn)");
                }
            }
            "pong" => self.got_reply("pong"),
            "error" => {
                let code = d["code"].as_str().unwrap_or("");
                if seq == 0 && INPUT_REJECTED.contains(&code) {
                    self.input_pending = false;
                    self.expect.clear();
                }
            }
            "permission_request" if !self.a.observe => self.perms.push_back(d.clone()),
            _ => {}
        }
        if self.caught_up && !was_caught_up {
            self.note("· replay complete; live from here");
        }
        Ok(())
    }

    /// Start answering one permission request.
    fn ask(&mut self, p: Value) -> Result<(), i32> {
        let tool = p["tool_name"].as_str().unwrap_or("a tool").to_string();
        if self.a.yes {
            self.respond(&p, true, None)?;
            self.note(&format!("✓ allowed {tool} (--yes)"));
            return Ok(());
        }
        let desc = p["description"].as_str().unwrap_or("");
        // In --json mode the request itself was a JSON line: say what it is.
        let question = if self.a.json { format!("? {tool}: {desc} — allow? [y/N] ") } else { "allow? [y/N] ".into() };
        if self.interactive && !self.stdin_eof {
            if self.a.json {
                eprint!("{question}");
            } else {
                let q = self.screen.styled_question(&question);
                self.screen.break_line();
                self.screen.raw(&q);
                self.screen.prompt_shown = true;
            }
            self.asking = Some((p, Source::Stdin));
            return Ok(());
        }
        if !self.tty_tried {
            self.tty_tried = true;
            self.tty = Tty::open(self.tx.clone());
        }
        match self.tty.as_mut() {
            Some(tty) => {
                self.screen.break_line();
                let q = if self.a.json { question } else { format!("? {tool}: {desc} — {question}") };
                tty.write(&self.screen.styled_question(&q));
                self.asking = Some((p, Source::Tty));
                Ok(())
            }
            None => {
                self.asking = Some((p, Source::Tty));
                self.deny("no terminal to ask (run with --yes to allow)")
            }
        }
    }

    fn answer(&mut self, line: &str) -> Result<(), i32> {
        let Some((p, _)) = self.asking.take() else { return Ok(()) };
        let tool = p["tool_name"].as_str().unwrap_or("a tool").to_string();
        if input::is_yes(line) {
            self.respond(&p, true, None)?;
            self.note(&format!("✓ allowed {tool}"));
        } else {
            self.respond(&p, false, Some("the user denied this in hotplex-chat"))?;
            self.note(&format!("✗ denied {tool}"));
        }
        Ok(())
    }

    fn deny(&mut self, why: &str) -> Result<(), i32> {
        let Some((p, _)) = self.asking.take() else { return Ok(()) };
        let tool = p["tool_name"].as_str().unwrap_or("a tool").to_string();
        self.respond(&p, false, Some(&format!("denied by hotplex-chat: {why}")))?;
        self.warn(&format!("✗ denied {tool}: {why}"));
        Ok(())
    }

    fn respond(&mut self, p: &Value, allowed: bool, reason: Option<&str>) -> Result<(), i32> {
        let mut data = json!({"id": p["id"].as_str().unwrap_or(""), "allowed": allowed});
        if let Some(r) = reason {
            data["reason"] = json!(r);
        }
        self.send("permission_response", data)
    }

    fn on_close(&mut self, code: u16, reason: &str) -> Result<(), i32> {
        self.screen.break_line();
        if self.deleting && code == 1000 {
            self.note(&format!("· session {} deleted", self.session_id));
            return Ok(());
        }
        let reason = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
        eprintln!("hotplex-chat: the gateway closed the connection: code {code}{reason}");
        self.resume_hint();
        Err(1)
    }

    /// How to come back to this session.
    fn resume_hint(&mut self) {
        if self.a.json || self.deleting || self.session_id.is_empty() {
            return;
        }
        let mut cmd = String::from("hotplex-chat");
        if self.a.url != Args::default().url {
            cmd.push_str(&format!(" --url {}", self.a.url));
        }
        if self.a.worker != Args::default().worker {
            cmd.push_str(&format!(" --worker {}", self.a.worker));
        }
        cmd.push_str(&format!(" --session {}", self.session_id));
        if self.max_seq > 0 {
            cmd.push_str(&format!(" --last-seq {}", self.max_seq));
        }
        eprintln!("  resume with: {cmd}");
    }
}
