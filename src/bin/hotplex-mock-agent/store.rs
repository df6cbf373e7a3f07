//! Per-session transcript/journal (`$HOME/.mock-agent/<session>.jsonl`) and
//! id generation. The transcript is how `recall` works across `--resume` in a
//! new process, and doubles as a journal tests can read: one JSON object per
//! line with a `kind` of `start`, `user`, `permission`, `interrupt`, `result`
//! or `crash` (see `main.rs`).

use std::cell::Cell;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::json::J;

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    u64::from_le_bytes(b) ^ t ^ (u64::from(std::process::id()) << 32)
}

/// splitmix64: fast, good enough for ids (not for secrets).
pub fn rand64() -> u64 {
    RNG.with(|c| {
        let mut z = c.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        c.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A random version-4 UUID, lowercase.
pub fn uuid() -> String {
    let (a, b) = (rand64(), rand64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn sessions_dir() -> PathBuf {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".mock-agent")
}

pub fn session_path(id: &str) -> PathBuf {
    // Ids are UUIDs for --session-id; a --resume value is only used if the
    // file exists, but keep it from escaping the directory anyway.
    let safe: String = id.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect();
    sessions_dir().join(format!("{safe}.jsonl"))
}

/// Reads every JSON record of a transcript (missing file = none).
pub fn read_records(path: &PathBuf) -> Vec<Value> {
    let Ok(text) = fs::read_to_string(path) else { return Vec::new() };
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

pub struct Transcript {
    pub path: PathBuf,
    /// Records waiting for the file to be created. A new session's file is
    /// created at its first input (like the real CLI), so a worker killed
    /// before any input leaves nothing behind and its id stays reusable.
    deferred: Vec<Vec<u8>>,
    created: bool,
}

impl Transcript {
    pub fn new(path: PathBuf, exists: bool) -> Transcript {
        Transcript { path, deferred: Vec::new(), created: exists }
    }

    /// Appends now, or defers until the file exists when `defer` is set and
    /// the file has not been created yet.
    pub fn record(&mut self, rec: &J, defer: bool) {
        let mut line = rec.to_bytes();
        line.push(b'\n');
        if defer && !self.created {
            self.deferred.push(line);
            return;
        }
        let mut all = std::mem::take(&mut self.deferred).concat();
        all.extend_from_slice(&line);
        if let Some(dir) = self.path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        match OpenOptions::new().create(true).append(true).open(&self.path) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(&all) {
                    eprintln!("mock-agent: cannot write {}: {e}", self.path.display());
                }
                self.created = true;
            }
            Err(e) => eprintln!("mock-agent: cannot open {}: {e}", self.path.display()),
        }
    }

    /// Texts of all `user` records so far, oldest first.
    pub fn user_inputs(&self) -> Vec<String> {
        read_records(&self.path)
            .into_iter()
            .filter(|r| r["kind"] == "user")
            .filter_map(|r| r["text"].as_str().map(str::to_string))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        for _ in 0..100 {
            let u = uuid();
            assert!(is_uuid(&u), "{u}");
            assert_eq!(&u[14..15], "4");
            assert!("89ab".contains(&u[19..20]), "{u}");
        }
        assert!(!is_uuid("test-1"));
    }
}
