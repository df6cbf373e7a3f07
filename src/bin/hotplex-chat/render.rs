//! Human-readable output: streamed text, tool lines, turn summaries.

use std::collections::HashSet;
use std::io::{ErrorKind, IsTerminal, Write};

use serde_json::Value;

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

#[derive(PartialEq)]
enum Stream {
    None,
    Text,
    Reasoning,
}

/// Stdout, tracking whether the cursor is at the start of a line so
/// one-line notices never glue onto streamed text.
pub struct Screen {
    color: bool,
    at_line_start: bool,
    stream: Stream,
    /// Message / reasoning ids whose text arrived as increments (their
    /// complete `message` / block is then not printed again).
    streamed: HashSet<String>,
    /// A `> ` input prompt is showing.
    pub prompt_shown: bool,
}

impl Screen {
    pub fn new() -> Screen {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Screen { color, at_line_start: true, stream: Stream::None, streamed: HashSet::new(), prompt_shown: false }
    }

    /// Write and flush; a closed stdout (`| head`) ends the program quietly.
    pub fn raw(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
            if e.kind() != ErrorKind::BrokenPipe {
                eprintln!("hotplex-chat: writing to stdout failed: {e}");
            }
            std::process::exit(if e.kind() == ErrorKind::BrokenPipe { 0 } else { 1 });
        }
        self.at_line_start = s.ends_with('\n');
        self.prompt_shown = false;
    }

    fn paint(&self, style: &str, s: &str) -> String {
        if self.color { format!("{style}{s}{RESET}") } else { s.to_string() }
    }

    /// Start a fresh line if the cursor is mid-line.
    pub fn break_line(&mut self) {
        if !self.at_line_start {
            self.raw("\n");
        }
        self.stream = Stream::None;
    }

    /// One complete line in `style` (`""` for none).
    pub fn line(&mut self, style: &str, s: &str) {
        self.break_line();
        let body = if style.is_empty() { s.to_string() } else { self.paint(style, s) };
        self.raw(&format!("{body}\n"));
    }

    pub fn info(&mut self, s: &str) {
        self.line(DIM, s);
    }

    pub fn warn(&mut self, s: &str) {
        self.line(YELLOW, s);
    }

    pub fn error(&mut self, s: &str) {
        self.line(RED, s);
    }

    pub fn prompt(&mut self) {
        self.break_line();
        let p = self.paint(BOLD, "> ");
        self.raw(&p);
        self.prompt_shown = true;
    }

    /// The user pressed Enter on the terminal: its echo moved the cursor to a new line.
    pub fn input_echoed(&mut self) {
        self.at_line_start = true;
        self.prompt_shown = false;
        self.stream = Stream::None;
    }

    /// Text to the tty prompt helper: same styling rules.
    pub fn styled_question(&self, s: &str) -> String {
        self.paint(YELLOW, s)
    }

    fn text(&mut self, s: &str) {
        if self.stream != Stream::Text {
            self.break_line();
            self.stream = Stream::Text;
        }
        self.raw(s);
    }

    fn reasoning(&mut self, s: &str) {
        if self.stream != Stream::Reasoning {
            self.break_line();
            let p = self.paint(DIM, "thinking: ");
            self.raw(&p);
            self.stream = Stream::Reasoning;
        }
        let body = self.paint(DIM, s);
        self.raw(&body);
    }

    /// Show one server event (everything but `permission_request`, which
    /// the main loop handles with its prompt).
    pub fn event(&mut self, ty: &str, d: &Value) {
        match ty {
            "message.delta" => {
                if let Some(id) = d["message_id"].as_str() {
                    self.streamed.insert(id.to_string());
                }
                self.text(d["content"].as_str().unwrap_or(""));
            }
            "message" => {
                let id = d["id"].as_str().unwrap_or("");
                if !self.streamed.contains(id) {
                    self.text(d["content"].as_str().unwrap_or(""));
                }
                self.break_line();
            }
            "message.end" => self.break_line(),
            "reasoning" => {
                let id = d["id"].as_str().unwrap_or("").to_string();
                let content = d["content"].as_str().unwrap_or("");
                if d["delta"].as_bool() == Some(true) {
                    self.streamed.insert(id);
                    self.reasoning(content);
                } else if !self.streamed.contains(&id) {
                    self.reasoning(content);
                    self.break_line();
                }
            }
            "tool_call" => {
                let name = d["name"].as_str().unwrap_or("tool");
                let head = self.paint(CYAN, &format!("⚙ {name}"));
                let body = summarize(&d["input"], 160);
                self.line("", &format!("{head} {body}"));
            }
            "tool_result" => {
                let is_error = d["is_error"].as_bool().unwrap_or(false);
                let text = output_preview(&d["output"], 3, 200);
                let (mark, style) = if is_error { ("✗", RED) } else { ("→", DIM) };
                let mut lines = text.lines();
                let first = lines.next().unwrap_or("");
                self.line(style, &format!("{mark} {first}"));
                for l in lines {
                    self.line(style, &format!("  {l}"));
                }
            }
            "error" => {
                let code = d["code"].as_str().unwrap_or("ERROR");
                let msg = d["message"].as_str().unwrap_or("");
                let extra = match d["details"]["oldest_seq"].as_u64() {
                    Some(n) => format!(" (oldest retained seq {n})"),
                    None => String::new(),
                };
                self.error(&format!("[{code}] {msg}{extra}"));
            }
            "state" => {
                let st = d["state"].as_str().unwrap_or("?");
                match d["message"].as_str() {
                    Some(m) if !m.is_empty() => self.info(&format!("· {st} ({m})")),
                    _ => self.info(&format!("· {st}")),
                }
            }
            "done" => {
                let line = done_summary(d);
                let style = if d["success"].as_bool() == Some(true) { GREEN } else { RED };
                self.line(style, &line);
                self.streamed.clear();
            }
            "pong" => self.info(&format!("· pong (state {})", d["state"].as_str().unwrap_or("?"))),
            "control" => {
                let action = d["action"].as_str().unwrap_or("?");
                let reason = d["reason"].as_str().unwrap_or("");
                let mut s = match action {
                    "reconnect" => format!("⟳ the gateway asks clients to reconnect ({reason})"),
                    "session_invalid" => format!("! the session cannot continue ({reason})"),
                    "throttle" => format!("! slow down: {reason}"),
                    _ => format!("! control {action}: {reason}"),
                };
                if let Some(ms) = d["delay_ms"].as_u64() {
                    s.push_str(&format!(", in {ms} ms"));
                }
                if let Some(ms) = d["suggestion"]["backoff_ms"].as_u64() {
                    s.push_str(&format!(", back off {ms} ms"));
                }
                self.warn(&s);
            }
            "raw" => {
                self.info(&format!("· raw {}: {}", d["kind"].as_str().unwrap_or("?"), cut(&d["raw"].to_string(), 160)))
            }
            // message.start, step, unknown types: nothing to show
            _ => {}
        }
    }
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `{command: "echo hi", timeout: 5}` — one line, at most `max` characters.
pub fn summarize(v: &Value, max: usize) -> String {
    let s = match v {
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    let val = match v {
                        Value::String(s) => Value::String(cut(s, 60)).to_string(),
                        other => cut(&other.to_string(), 60),
                    };
                    format!("{k}: {val}")
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Null => String::new(),
        other => other.to_string(),
    };
    cut(&s, max)
}

/// The first `max_lines` lines of a tool output (strings, content-block
/// arrays or any JSON), each cut to `width`, with a count of what was left.
pub fn output_preview(v: &Value, max_lines: usize, width: usize) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i.get("text").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    if lines.is_empty() {
        return "(no output)".into();
    }
    let mut out: Vec<String> = lines.iter().take(max_lines).map(|l| cut(l, width)).collect();
    if lines.len() > max_lines {
        out.push(format!("… ({} more lines)", lines.len() - max_lines));
    }
    out.join("\n")
}

/// `✓ done · 1.2k in / 56 out tokens · $0.0123 · 2.3s`
pub fn done_summary(d: &Value) -> String {
    let ok = d["success"].as_bool() == Some(true);
    let mut parts = vec![if ok { "✓ done".to_string() } else { "✗ done (unsuccessful)".to_string() }];
    let s = &d["stats"];
    match (s["input_tokens"].as_u64(), s["output_tokens"].as_u64()) {
        (Some(i), Some(o)) => parts.push(format!("{i} in / {o} out tokens")),
        (Some(i), None) => parts.push(format!("{i} in tokens")),
        (None, Some(o)) => parts.push(format!("{o} out tokens")),
        (None, None) => {}
    }
    if let Some(n) = s["tool_calls"].as_u64().filter(|n| *n > 0) {
        parts.push(format!("{n} tool call{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(c) = s["cost_usd"].as_f64() {
        parts.push(format!("${c:.4}"));
    }
    if let Some(ms) = s["duration_ms"].as_u64() {
        parts.push(if ms < 1000 { format!("{ms}ms") } else { format!("{:.1}s", ms as f64 / 1000.0) });
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries() {
        assert_eq!(summarize(&json!({"command": "echo hi", "n": 2}), 100), r#"{command: "echo hi", n: 2}"#);
        assert_eq!(summarize(&json!({"a": "x".repeat(200)}), 20).chars().count(), 20);
        assert_eq!(output_preview(&json!("a\nb\nc\nd\ne"), 3, 10), "a\nb\nc\n… (2 more lines)");
        assert_eq!(output_preview(&json!([{"type": "text", "text": "one"}]), 3, 10), "one");
        assert_eq!(output_preview(&json!(""), 3, 10), "(no output)");
        let d = json!({"success": true, "stats": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01, "duration_ms": 1500}});
        assert_eq!(done_summary(&d), "✓ done · 10 in / 5 out tokens · $0.0100 · 1.5s");
        assert_eq!(
            done_summary(&json!({"success": false, "stats": {"duration_ms": 12}})),
            "✗ done (unsuccessful) · 12ms"
        );
        assert_eq!(cut("héllo", 3), "hé…");
    }
}
