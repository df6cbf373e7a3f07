//! Stdin reader thread (parses each line once and hands it over a channel, so
//! a turn can notice an interrupt while it streams or sleeps) and the stdout
//! line writer. A blocked stdout write simply blocks the agent, like a real
//! CLI whose reader is slow.

use std::io::{BufRead, Write};
use std::sync::mpsc::{self, Receiver};

use serde_json::Value;

use crate::json::J;

pub enum Inbound {
    Line(Value),
    /// A stdin line that is not JSON (logged to stderr and otherwise ignored).
    Bad(String),
    Eof,
}

pub fn spawn_reader() -> Receiver<Inbound> {
    // Unbounded on purpose: a test binary, and the gateway bounds what it
    // writes; the reader must never stall the gateway's stdin writes.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut r = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let msg = match serde_json::from_str::<Value>(line) {
                Ok(v) => Inbound::Line(v),
                Err(_) => Inbound::Bad(line.chars().take(200).collect()),
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        let _ = tx.send(Inbound::Eof);
    });
    rx
}

pub struct Out {
    w: std::io::StdoutLock<'static>,
    buf: Vec<u8>,
}

impl Out {
    pub fn new() -> Out {
        Out { w: std::io::stdout().lock(), buf: Vec::with_capacity(4096) }
    }

    /// Writes one JSON line and flushes it.
    pub fn line(&mut self, j: &J) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        j.write_to(&mut buf);
        buf.push(b'\n');
        self.raw(&buf);
        self.buf = buf;
    }

    /// Writes bytes as they are (they should end with `\n`) and flushes.
    pub fn raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.w.write_all(bytes).and_then(|_| self.w.flush()) {
            // Nobody reads our stdout any more (EPIPE): nothing useful left to do.
            eprintln!("mock-agent: stdout write failed: {e}");
            std::process::exit(1);
        }
    }
}
