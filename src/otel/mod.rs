//! OpenTelemetry tracing (operations.md §6): a small hand-written OTLP/HTTP
//! JSON exporter. Owns span ids and W3C propagation ([`ids`]), in-flight
//! spans and sampling ([`span`]), the OTLP/JSON encoding ([`encode`]), the
//! `otlp` exporter thread ([`export`]) and its HTTP client ([`http`]), and
//! the session/turn/worker span hooks called from the session code
//! ([`session`]).
//!
//! The tracer is process-wide and set once at startup (like the logger):
//! with `tracing.otlp_endpoint` empty it is never set, and every span
//! constructor returns [`Span::NONE`] after one `OnceLock` load — no
//! allocation, no clock read, no channel. Spans are finished on the thread
//! that ran the operation and `try_send` to the exporter; nothing here ever
//! blocks a reactor. Spans carry no content (prompts, outputs, tool input),
//! no credentials and no raw owner (only `owner_hash`).

pub mod encode;
pub mod export;
pub mod http;
pub mod ids;
pub mod session;
pub mod span;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError, bounded};
use ring::rand::SystemRandom;

pub use ids::{SpanContext, SpanId, TraceId};
pub use session::SessionTrace;
pub use span::{KeyValue, Kind, LogIds, Parent, Span, SpanData, Value};

/// Spans lost: exporter queue full, or their batch failed for good
/// (`hotplex_tracing_spans_dropped_total`).
pub static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Failed OTLP POST attempts (`hotplex_tracing_export_errors_total`).
pub static EXPORT_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Shutdown flush bound (operations.md §2.4).
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// The `tracing:` section as the runtime needs it (secrets resolved).
#[derive(Clone, Debug, Default)]
pub struct TraceConfig {
    /// Empty = tracing off.
    pub endpoint: String,
    pub service_name: String,
    pub sample_ratio: f64,
    pub store_sample_ratio: f64,
    pub export_interval: Duration,
    pub max_queue_spans: usize,
    /// Extra request headers (values are secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// `security.ssrf.allow`.
    pub ssrf_allow: Vec<String>,
}

impl TraceConfig {
    pub fn from_config(cfg: &crate::config::Config) -> TraceConfig {
        let t = &cfg.tracing;
        TraceConfig {
            endpoint: t.otlp_endpoint.clone(),
            service_name: t.service_name.clone(),
            sample_ratio: t.sample_ratio,
            store_sample_ratio: t.store_sample_ratio,
            export_interval: t.export_interval,
            max_queue_spans: t.max_queue_spans.max(1) as usize,
            headers: t
                .headers
                .iter()
                .filter_map(|(k, v)| v.value().map(|s| (k.clone(), s.expose().to_owned())))
                .collect(),
            ssrf_allow: cfg.security.ssrf.allow.clone(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.endpoint.is_empty()
    }
}

/// Creates spans and hands finished ones to the exporter queue.
pub struct Tracer {
    rng: SystemRandom,
    /// `sample_ratio` / `store_sample_ratio` as f64 bits (live-reloadable).
    ratio: AtomicU64,
    store_ratio: AtomicU64,
    tx: Sender<Box<SpanData>>,
}

impl Tracer {
    pub fn new(tx: Sender<Box<SpanData>>, sample_ratio: f64, store_sample_ratio: f64) -> Tracer {
        Tracer {
            rng: SystemRandom::new(),
            ratio: AtomicU64::new(sample_ratio.to_bits()),
            store_ratio: AtomicU64::new(store_sample_ratio.to_bits()),
            tx,
        }
    }

    pub fn set_ratios(&self, sample_ratio: f64, store_sample_ratio: f64) {
        self.ratio.store(sample_ratio.to_bits(), Ordering::Relaxed);
        self.store_ratio.store(store_sample_ratio.to_bits(), Ordering::Relaxed);
    }

    fn ratios(&self) -> (f64, f64) {
        (f64::from_bits(self.ratio.load(Ordering::Relaxed)), f64::from_bits(self.store_ratio.load(Ordering::Relaxed)))
    }

    /// A new span (recording only if sampled).
    pub fn start(&self, name: &'static str, kind: Kind, parent: Parent<'_>) -> Span {
        span::new_span(&self.rng, name, kind, parent, self.ratios())
    }

    /// End `span` now and queue it; a full queue drops it (counted).
    pub fn finish(&self, span: Span) {
        let Some(d) = span.finish_data() else { return };
        match self.tx.try_send(d) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                SPANS_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The process tracer, if tracing is on.
#[inline]
pub fn tracer() -> Option<&'static Tracer> {
    TRACER.get()
}

/// A span under `parent` (no-op when tracing is off).
#[inline]
pub fn start(name: &'static str, kind: Kind, parent: Parent<'_>) -> Span {
    match tracer() {
        Some(t) => t.start(name, kind, parent),
        None => Span::NONE,
    }
}

/// A span continuing a client's W3C trace when `traceparent` is valid,
/// else a new root (an invalid value is ignored with a debug log).
pub fn start_remote(name: &'static str, kind: Kind, traceparent: Option<&str>, tracestate: Option<&str>) -> Span {
    let Some(t) = tracer() else { return Span::NONE };
    match traceparent.map(|tp| SpanContext::from_traceparent(tp, tracestate)) {
        Some(Ok(parent)) => t.start(name, kind, Parent::Of(&parent)),
        Some(Err(e)) => {
            log::debug!("ignoring an invalid trace_parent for {name}: {}", e.as_str());
            t.start(name, kind, Parent::Root)
        }
        None => t.start(name, kind, Parent::Root),
    }
}

/// Live `tracing.sample_ratio` / `store_sample_ratio` change (config reload).
pub fn set_sample_ratios(sample_ratio: f64, store_sample_ratio: f64) {
    if let Some(t) = tracer() {
        t.set_ratios(sample_ratio, store_sample_ratio);
    }
}

/// `hotplex.admin.request` (operations.md §6.2), for the admin listener:
/// call at the start of a request; returns a recording span only for
/// mutating methods when tracing is on.
pub fn admin_request_start(method: &str) -> Span {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return Span::NONE;
    }
    let mut s = start("hotplex.admin.request", Kind::Server, Parent::Root);
    s.set_str("http.request.method", method);
    s
}

/// Finish an admin request span: the templated route (e.g.
/// `/admin/sessions/{id}`, never a raw id) and the response status; 5xx
/// marks the span failed with `code` (an aep or admin error code).
pub fn admin_request_end(mut span: Span, route: &str, status: u16, code: Option<&str>) {
    if !span.is_recording() {
        return;
    }
    span.set_str("http.route", route);
    span.set_int("http.response.status_code", status as i64);
    if status >= 500 {
        span.error(code.unwrap_or("INTERNAL_ERROR"));
    }
    span.end();
}

/// The running exporter thread.
pub struct ExporterHandle {
    control: Sender<export::Control>,
    thread: Option<JoinHandle<()>>,
}

impl ExporterHandle {
    /// Flush what is queued (bounded by `within`) and stop the thread.
    pub fn shutdown(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        let (done_tx, done_rx) = bounded(1);
        if self.control.send(export::Control::Stop { deadline, done: done_tx }).is_ok()
            && done_rx.recv_timeout(within + Duration::from_millis(200)).is_ok()
        {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            log::warn!("tracing: the exporter did not finish its flush in {within:?}");
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Resource attributes (operations.md §6.2).
pub fn resource(service_name: &str, instance_id: &str) -> Vec<KeyValue> {
    let kv = |key, value| KeyValue { key, value };
    vec![
        kv("service.name", Value::Str(service_name.into())),
        kv("service.version", Value::Static(env!("CARGO_PKG_VERSION"))),
        kv("service.instance.id", Value::Str(instance_id.into())),
        kv("host.name", Value::Str(host_name().into())),
        kv("process.pid", Value::Int(std::process::id() as i64)),
    ]
}

/// Start the `otlp` thread and install the process tracer. `None` when
/// tracing is off (empty endpoint) or cannot start (logged).
pub fn init(cfg: &TraceConfig, instance_id: &str) -> Option<ExporterHandle> {
    if !cfg.enabled() {
        return None;
    }
    let endpoint = match http::Endpoint::parse(&cfg.endpoint) {
        Ok(e) => e,
        Err(e) => {
            log::error!("tracing disabled: tracing.otlp_endpoint: {e}");
            return None;
        }
    };
    let (headers, bad) = http::sanitize_headers(cfg.headers.clone());
    for name in bad {
        log::warn!("tracing.headers: {name:?} is not a valid or allowed HTTP header; not sent");
    }
    let ssrf = match crate::security::ssrf::SsrfPolicy::from_config(
        &cfg.ssrf_allow,
        crate::security::ssrf::ManagedEndpoints::new(),
    ) {
        Ok(p) => p,
        Err(e) => {
            log::error!("tracing disabled: security.ssrf.allow: {e}");
            return None;
        }
    };
    let (tx, rx) = bounded(cfg.max_queue_spans.max(1));
    let (ctl_tx, ctl_rx) = bounded(1);
    let ecfg = export::ExportConfig {
        endpoint,
        headers,
        interval: cfg.export_interval.max(Duration::from_millis(10)),
        ssrf,
        resource: resource(&cfg.service_name, instance_id),
    };
    let exporter = export::Exporter::new(ecfg, rx, ctl_rx);
    let thread = match std::thread::Builder::new().name("otlp".into()).spawn(move || exporter.run()) {
        Ok(t) => t,
        Err(e) => {
            log::error!("tracing disabled: cannot start the otlp thread: {e}");
            return None;
        }
    };
    if TRACER.set(Tracer::new(tx, cfg.sample_ratio, cfg.store_sample_ratio)).is_err() {
        log::warn!("tracing: a tracer was already installed in this process");
    }
    log::info!(
        "tracing on: OTLP/JSON to {} sample_ratio={} store_sample_ratio={}",
        cfg.endpoint,
        cfg.sample_ratio,
        cfg.store_sample_ratio
    );
    Some(ExporterHandle { control: ctl_tx, thread: Some(thread) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, rx) = bounded(1);
        let t = Tracer::new(tx, 1.0, 1.0);
        let before = SPANS_DROPPED.load(Ordering::Relaxed);
        t.finish(t.start("a", Kind::Internal, Parent::Root));
        t.finish(t.start("b", Kind::Internal, Parent::Root));
        assert_eq!(rx.len(), 1);
        assert!(SPANS_DROPPED.load(Ordering::Relaxed) > before);
        let got = rx.try_recv().unwrap();
        assert_eq!(got.name, "a");
        assert!(got.end_ns >= got.start_ns && got.start_ns > 0);
    }

    #[test]
    fn disabled_means_no_spans() {
        // The process tracer is never installed in unit tests.
        assert!(!start("x", Kind::Internal, Parent::Root).is_recording());
        assert!(
            !start_remote("x", Kind::Server, Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), None)
                .is_recording()
        );
        assert!(!admin_request_start("POST").is_recording());
        assert!(init(&TraceConfig::default(), "i").is_none());
    }

    #[test]
    fn resource_has_the_spec_keys() {
        let r = resource("svc", "inst");
        let keys: Vec<_> = r.iter().map(|kv| kv.key).collect();
        assert_eq!(keys, ["service.name", "service.version", "service.instance.id", "host.name", "process.pid"]);
    }
}
