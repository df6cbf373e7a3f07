//! The `log` backend: formats a line on the calling thread (text or JSON)
//! and hands it to a `log` thread that writes stderr, so a stalled stderr
//! never stalls a reactor. The queue is bounded; overflow drops lines and
//! counts them (the only place dropping is allowed).

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use log::{Level, LevelFilter, Log, Metadata, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text = 0,
    Json = 1,
}

struct Logger {
    tx: Sender<String>,
    /// 0 = text, 1 = JSON (switchable by a config reload).
    format: AtomicU8,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
/// Lines dropped because the log queue was full.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Install the logger (once). Returns the writer thread handle on first call.
pub fn init(level: LevelFilter, format: Format) -> Option<std::thread::JoinHandle<()>> {
    let (tx, rx) = bounded::<String>(16_384);
    if LOGGER.set(Logger { tx, format: AtomicU8::new(format as u8) }).is_err() {
        log::set_max_level(level);
        set_format(format);
        return None;
    }
    if let Some(l) = LOGGER.get() {
        let _ = log::set_logger(l);
    }
    log::set_max_level(level);
    std::thread::Builder::new().name("log".into()).spawn(move || writer(rx)).ok()
}

pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// The filter for `log.level`.
pub fn level_of(l: crate::config::LogLevel) -> LevelFilter {
    use crate::config::LogLevel;
    match l {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// The line format for `log.format`.
pub fn format_of(f: crate::config::LogFormat) -> Format {
    match f {
        crate::config::LogFormat::Text => Format::Text,
        crate::config::LogFormat::Json => Format::Json,
    }
}

/// Switch the line format (a config reload changed `log.format`).
pub fn set_format(format: Format) {
    if let Some(l) = LOGGER.get() {
        l.format.store(format as u8, Ordering::Relaxed);
    }
}

fn writer(rx: Receiver<String>) {
    let stderr = std::io::stderr();
    while let Ok(line) = rx.recv() {
        let mut out = stderr.lock();
        let _ = out.write_all(line.as_bytes());
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
    }
}

/// Block until queued lines are written (best effort, bounded wait).
pub fn flush() {
    if let Some(l) = LOGGER.get() {
        for _ in 0..100 {
            if l.tx.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let ms = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // civil-from-days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let thread = std::thread::current();
        let tname = thread.name().unwrap_or("-");
        let format =
            if self.format.load(Ordering::Relaxed) == Format::Json as u8 { Format::Json } else { Format::Text };
        let line = match format {
            Format::Text => {
                format!("{} {:<5} {} [{}] {}\n", timestamp(), record.level(), record.target(), tname, record.args())
            }
            Format::Json => {
                let msg = record.args().to_string();
                let mut v = serde_json::json!({
                    "ts": timestamp(),
                    "level": level_str(record.level()),
                    "target": record.target(),
                    "thread": tname,
                    "service": "hotplex",
                });
                for (k, val) in fields(&msg) {
                    v[k] = serde_json::Value::String(val.to_owned());
                }
                v["msg"] = serde_json::Value::String(msg);
                format!("{v}\n")
            }
        };
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self) {}
}

/// `key=value` tokens of a message that JSON lines also carry as fields,
/// so a log pipeline can filter by session or worker type.
const FIELDS: [&str; 5] = ["session_id", "worker_type", "trace_id", "span_id", "owner_hash"];

/// The [`FIELDS`] found as whitespace-separated `key=value` tokens of `msg`
/// (first occurrence of each key).
fn fields(msg: &str) -> Vec<(&'static str, &str)> {
    let mut out: Vec<(&'static str, &str)> = Vec::new();
    for token in msg.split_ascii_whitespace() {
        let Some((k, v)) = token.split_once('=') else { continue };
        if let Some(&key) = FIELDS.iter().find(|f| **f == k) {
            if !v.is_empty() && !out.iter().any(|(seen, _)| *seen == key) {
                out.push((key, v));
            }
        }
    }
    out
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_key_value_tokens_become_fields() {
        let f = super::fields("worker started session_id=abc worker_type=pi pid=7 session_id=dup trace_id=");
        assert_eq!(f, vec![("session_id", "abc"), ("worker_type", "pi")]);
        assert!(super::fields("no pairs here").is_empty());
    }

    #[test]
    fn timestamp_shape() {
        let t = super::timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "T");
    }
}
