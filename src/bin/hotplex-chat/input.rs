//! Input side: a stdin-reader thread, a lazily opened /dev/tty reader (for
//! permission answers when stdin is a pipe), and slash-command parsing.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::sync::mpsc::Sender;

/// What the input threads send to the main loop.
pub enum In {
    /// One line of stdin (without its line ending).
    Line(String),
    /// Stdin is exhausted (or unreadable).
    Eof,
    /// One line typed on /dev/tty.
    Tty(String),
    /// /dev/tty was closed.
    TtyGone,
}

fn read_lines(r: impl BufRead, tx: &Sender<In>, wrap: fn(String) -> In) -> std::io::Result<()> {
    let mut r = r;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                if tx.send(wrap(line)).is_err() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn spawn_stdin(tx: Sender<In>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        if let Err(e) = read_lines(stdin.lock(), &tx, In::Line) {
            eprintln!("hotplex-chat: reading stdin failed: {e}");
        }
        let _ = tx.send(In::Eof);
    });
}

/// The controlling terminal: a writer for prompts; lines arrive as `In::Tty`.
pub struct Tty {
    out: File,
}

impl Tty {
    /// Open /dev/tty and start its reader thread; `None` without a terminal.
    pub fn open(tx: Sender<In>) -> Option<Tty> {
        let f = OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
        let reader = f.try_clone().ok()?;
        std::thread::spawn(move || {
            let _ = read_lines(BufReader::new(reader), &tx, In::Tty);
            let _ = tx.send(In::TtyGone);
        });
        Some(Tty { out: f })
    }

    pub fn write(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }
}

/// One line of input, interpreted.
#[derive(Debug, PartialEq)]
pub enum Cmd {
    Prompt(String),
    Interrupt,
    Terminate,
    Reset,
    Delete,
    Ping,
    Quit,
    Help,
    Unknown(String),
}

/// `None` for a blank line. `//text` sends the prompt `/text`.
pub fn parse_line(line: &str) -> Option<Cmd> {
    if line.trim().is_empty() {
        return None;
    }
    if line.starts_with("//") {
        return Some(Cmd::Prompt(line[1..].to_string()));
    }
    let Some(cmd) = line.strip_prefix('/') else { return Some(Cmd::Prompt(line.to_string())) };
    Some(match cmd.trim() {
        "interrupt" | "int" => Cmd::Interrupt,
        "terminate" => Cmd::Terminate,
        "reset" => Cmd::Reset,
        "delete" => Cmd::Delete,
        "ping" => Cmd::Ping,
        "quit" | "exit" | "q" => Cmd::Quit,
        "help" | "h" | "?" => Cmd::Help,
        other => Cmd::Unknown(other.to_string()),
    })
}

/// A yes/no answer: only "y" or "yes" allows.
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_commands() {
        assert_eq!(parse_line("   "), None);
        assert_eq!(parse_line("hello"), Some(Cmd::Prompt("hello".into())));
        assert_eq!(parse_line("//etc"), Some(Cmd::Prompt("/etc".into())));
        assert_eq!(parse_line("/interrupt"), Some(Cmd::Interrupt));
        assert_eq!(parse_line("/quit "), Some(Cmd::Quit));
        assert_eq!(parse_line("/nope"), Some(Cmd::Unknown("nope".into())));
        assert!(is_yes(" Y ") && is_yes("yes") && !is_yes("") && !is_yes("no") && !is_yes("yep"));
    }
}
