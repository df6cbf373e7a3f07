//! The `otlp` thread (operations.md §6.4): takes finished spans from a
//! bounded queue (`tracing.max_queue_spans`; producers `try_send` and count a
//! full queue as dropped), batches up to [`MAX_BATCH`] spans or
//! `tracing.export_interval`, POSTs each batch as OTLP/JSON, retries
//! 429/502/503/504 up to [`MAX_RETRIES`] times (honouring `Retry-After`,
//! else exponential backoff), then drops and counts. Shutdown drains and
//! flushes within a deadline. It owns its socket; nothing else waits on it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use super::encode;
use super::http::{self, Endpoint};
use super::span::{KeyValue, SpanData};

/// Spans per request.
pub const MAX_BATCH: usize = 512;
/// Retries after the first attempt, for retryable statuses only.
pub const MAX_RETRIES: u32 = 3;
/// First backoff without `Retry-After`; doubles per retry.
const BACKOFF: Duration = Duration::from_millis(500);
/// Connect / read / write timeout of one request (operations.md §6.1).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the exporter needs to know.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub endpoint: Endpoint,
    pub headers: Vec<(String, String)>,
    pub interval: Duration,
    /// `security.ssrf.allow` (validated at config load).
    pub ssrf: crate::security::ssrf::SsrfPolicy,
    pub resource: Vec<KeyValue>,
}

/// Control messages (separate from the span queue so a full queue never blocks them).
pub enum Control {
    /// Export everything queued, then reply and stop; give up at the deadline.
    Stop { deadline: Instant, done: Sender<()> },
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

pub struct Exporter {
    cfg: ExportConfig,
    spans: Receiver<Box<SpanData>>,
    control: Receiver<Control>,
    /// Log the first failure of a run of failures only.
    failing: bool,
}

impl Exporter {
    pub fn new(cfg: ExportConfig, spans: Receiver<Box<SpanData>>, control: Receiver<Control>) -> Exporter {
        Exporter { cfg, spans, control, failing: false }
    }

    pub fn run(mut self) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(64);
        let mut due = Instant::now() + self.cfg.interval;
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            select! {
                recv(self.spans) -> s => match s {
                    Ok(s) => {
                        batch.push(*s);
                        if batch.len() >= MAX_BATCH {
                            self.export(std::mem::take(&mut batch), None);
                            due = Instant::now() + self.cfg.interval;
                        }
                    }
                    Err(_) => {
                        self.export(std::mem::take(&mut batch), None);
                        return;
                    }
                },
                recv(self.control) -> c => {
                    let Ok(Control::Stop { deadline, done }) = c else { return };
                    self.drain(batch, deadline);
                    let _ = done.send(());
                    return;
                }
                default(wait) => {
                    if !batch.is_empty() {
                        self.export(std::mem::take(&mut batch), None);
                    }
                    due = Instant::now() + self.cfg.interval;
                }
            }
        }
    }

    /// Shutdown: everything queued, in batches, until the deadline.
    fn drain(&mut self, mut batch: Vec<SpanData>, deadline: Instant) {
        loop {
            while batch.len() < MAX_BATCH {
                match self.spans.recv_timeout(Duration::ZERO) {
                    Ok(s) => batch.push(*s),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let left = batch.len() + self.spans.len();
                super::SPANS_DROPPED.fetch_add(left as u64, Ordering::Relaxed);
                log::warn!("tracing: shutdown flush deadline reached; {left} spans dropped");
                return;
            }
            self.export(std::mem::take(&mut batch), Some(deadline));
        }
    }

    /// POST one batch with retries; on final failure drop and count it.
    fn export(&mut self, batch: Vec<SpanData>, deadline: Option<Instant>) {
        if batch.is_empty() {
            return;
        }
        let body = encode::request(&self.cfg.resource, &batch);
        let mut backoff = BACKOFF;
        let mut attempt = 0;
        loop {
            let timeout = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(IO_TIMEOUT),
                None => IO_TIMEOUT,
            };
            let result = http::post(&self.cfg.endpoint, &self.cfg.ssrf, &self.cfg.headers, &body, timeout);
            let retry_in = match result {
                Ok(r) if (200..300).contains(&r.status) => {
                    if std::mem::take(&mut self.failing) {
                        log::info!("tracing: export to the collector works again");
                    }
                    return;
                }
                Ok(r) => {
                    super::EXPORT_ERRORS.fetch_add(1, Ordering::Relaxed);
                    if retryable(r.status) && attempt < MAX_RETRIES {
                        Some(r.retry_after.unwrap_or(backoff))
                    } else {
                        self.note_failure(&format!("the collector answered HTTP {}", r.status));
                        None
                    }
                }
                Err(e) => {
                    super::EXPORT_ERRORS.fetch_add(1, Ordering::Relaxed);
                    // Connection failures are not retried: the next batch tries again.
                    self.note_failure(&e.to_string());
                    None
                }
            };
            let Some(wait) = retry_in else { break };
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                break;
            }
            std::thread::sleep(wait);
            backoff *= 2;
            attempt += 1;
        }
        super::SPANS_DROPPED.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }

    fn note_failure(&mut self, what: &str) {
        if !std::mem::replace(&mut self.failing, true) {
            log::warn!("tracing: export failed: {what}; spans of failed batches are dropped");
        } else {
            log::debug!("tracing: export failed: {what}");
        }
    }
}
