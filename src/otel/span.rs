//! Spans as this process records them: the in-flight [`Span`] handle (a
//! `None` when tracing is off or the span is not sampled, so a disabled
//! tracer costs one branch and no allocation), its attributes, events,
//! links and status, and the sampler (parent-based, else trace-id ratio;
//! operations.md §6.3). Finished spans go to the exporter queue; nothing
//! here does I/O.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::ids::{SpanContext, SpanId, TraceId};

/// Most span events kept per span (operations.md §6.2); later ones are counted as dropped.
pub const MAX_EVENTS: usize = 128;

/// OTLP `Span.SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value (OTLP `AnyValue` subset).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Box<str>),
    Static(&'static str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    pub key: &'static str,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub time_ns: u64,
    pub attrs: Vec<KeyValue>,
}

/// OTLP `Status`: unset, or ERROR with a description (the aep code).
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Unset,
    Error(Box<str>),
}

/// A recorded span (finished once `end_ns` is set).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanData {
    pub name: &'static str,
    pub kind: Kind,
    pub context: SpanContext,
    pub parent: Option<SpanId>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub dropped_events: u32,
    pub links: Vec<SpanContext>,
    pub status: Status,
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// An in-flight span. `Span::default()` (= [`Span::NONE`]) records nothing;
/// every method is then a no-op. Dropping a span without [`Span::end`]
/// discards it (nothing is exported).
#[derive(Debug, Default)]
pub struct Span(pub(super) Option<Box<SpanData>>);

impl Span {
    pub const NONE: Span = Span(None);

    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// The context children and links use (`None` when not recording).
    pub fn context(&self) -> Option<&SpanContext> {
        self.0.as_ref().map(|d| &d.context)
    }

    fn put(&mut self, key: &'static str, value: Value) {
        if let Some(d) = self.0.as_mut() {
            match d.attrs.iter_mut().find(|kv| kv.key == key) {
                Some(kv) => kv.value = value,
                None => d.attrs.push(KeyValue { key, value }),
            }
        }
    }

    /// Set a string attribute (copied only when recording).
    pub fn set_str(&mut self, key: &'static str, v: &str) {
        if self.0.is_some() {
            self.put(key, Value::Str(Box::from(v)));
        }
    }

    pub fn set_static(&mut self, key: &'static str, v: &'static str) {
        self.put(key, Value::Static(v));
    }

    pub fn set_int(&mut self, key: &'static str, v: i64) {
        self.put(key, Value::Int(v));
    }

    pub fn set_u64(&mut self, key: &'static str, v: u64) {
        self.put(key, Value::Int(v.min(i64::MAX as u64) as i64));
    }

    pub fn set_f64(&mut self, key: &'static str, v: f64) {
        if v.is_finite() {
            self.put(key, Value::Double(v));
        }
    }

    pub fn set_bool(&mut self, key: &'static str, v: bool) {
        self.put(key, Value::Bool(v));
    }

    /// Whether an attribute is already set (tests, and "set once" rules).
    pub fn has_attr(&self, key: &str) -> bool {
        self.0.as_ref().is_some_and(|d| d.attrs.iter().any(|kv| kv.key == key))
    }

    /// Add a span event now; past [`MAX_EVENTS`] it is counted as dropped.
    /// `attrs` is only called when the event is kept.
    pub fn event(&mut self, name: &'static str, attrs: impl FnOnce() -> Vec<KeyValue>) {
        if let Some(d) = self.0.as_mut() {
            if d.events.len() >= MAX_EVENTS {
                d.dropped_events = d.dropped_events.saturating_add(1);
                return;
            }
            d.events.push(SpanEvent { name, time_ns: now_ns(), attrs: attrs() });
        }
    }

    /// Link another span (e.g. a turn root to its session's attach span).
    pub fn link(&mut self, other: Option<&SpanContext>) {
        if let (Some(d), Some(o)) = (self.0.as_mut(), other) {
            d.links.push(o.clone());
        }
    }

    /// Mark the operation failed; `code` is the aep error code (status description).
    pub fn error(&mut self, code: &str) {
        if let Some(d) = self.0.as_mut() {
            d.status = Status::Error(Box::from(code));
        }
    }

    pub fn is_error(&self) -> bool {
        self.0.as_ref().is_some_and(|d| matches!(d.status, Status::Error(_)))
    }

    /// Start time (ns since the epoch) while recording.
    pub fn start_ns(&self) -> Option<u64> {
        self.0.as_ref().map(|d| d.start_ns)
    }

    /// Move the start time back to `ns` (a span opened after the fact, e.g.
    /// `session.end` starting when the stop was requested).
    pub fn started_at(&mut self, ns: u64) {
        if let Some(d) = self.0.as_mut() {
            d.start_ns = ns.min(d.start_ns);
        }
    }

    /// Finish the span and queue it for export (no-op when not recording).
    pub fn end(self) {
        if let Some(t) = super::tracer() {
            t.finish(self);
        }
    }

    /// Take the finished data out (the exporter side; tests).
    pub(super) fn finish_data(mut self) -> Option<Box<SpanData>> {
        let mut d = self.0.take()?;
        d.end_ns = now_ns().max(d.start_ns);
        Some(d)
    }

    /// ` trace_id=… span_id=…` for a log line while this span is recording, else nothing.
    pub fn log_ids(&self) -> LogIds<'_> {
        LogIds(self.context())
    }
}

/// Display helper for log correlation (operations.md §6.3, §7).
pub struct LogIds<'a>(pub Option<&'a SpanContext>);

impl fmt::Display for LogIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) if c.sampled => write!(f, " trace_id={} span_id={}", c.trace_id, c.span_id),
            _ => Ok(()),
        }
    }
}

/// Where a new span hangs.
#[derive(Clone, Copy, Debug)]
pub enum Parent<'a> {
    /// A new trace, sampled by `sample_ratio`.
    Root,
    /// A new trace, sampled by `store_sample_ratio`.
    StoreRoot,
    /// A child; sampled exactly when the parent is (parent-based).
    Of(&'a SpanContext),
}

/// Whether a new root trace is sampled at `ratio` (trace-id ratio: the low
/// 8 bytes of the random trace id against `ratio · 2^64`).
pub fn ratio_sampled(trace_id: &TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * u64::MAX as f64) as u64;
    trace_id.low_u64() < bound
}

pub(super) fn new_span(
    rng: &ring::rand::SystemRandom,
    name: &'static str,
    kind: Kind,
    parent: Parent<'_>,
    ratios: (f64, f64),
) -> Span {
    let (trace_id, parent_id, sampled, remote_state) = match parent {
        Parent::Of(p) => (p.trace_id, Some(p.span_id), p.sampled, p.trace_state.clone()),
        Parent::Root | Parent::StoreRoot => {
            let ratio = if matches!(parent, Parent::Root) { ratios.0 } else { ratios.1 };
            let t = TraceId::random(rng);
            (t, None, ratio_sampled(&t, ratio), None)
        }
    };
    if !sampled {
        return Span::NONE;
    }
    let context =
        SpanContext { trace_id, span_id: SpanId::random(rng), sampled: true, remote: false, trace_state: remote_state };
    Span(Some(Box::new(SpanData {
        name,
        kind,
        context,
        parent: parent_id,
        start_ns: now_ns(),
        end_ns: 0,
        attrs: Vec::with_capacity(8),
        events: Vec::new(),
        dropped_events: 0,
        links: Vec::new(),
        status: Status::Unset,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> ring::rand::SystemRandom {
        ring::rand::SystemRandom::new()
    }

    #[test]
    fn ratio_sampler_bounds() {
        let lo = TraceId([0xff; 16]);
        assert!(ratio_sampled(&lo, 1.0));
        assert!(!ratio_sampled(&TraceId([1; 16]), 0.0));
        let mut small = [0u8; 16];
        small[15] = 1;
        assert!(ratio_sampled(&TraceId(small), 0.001));
        assert!(!ratio_sampled(&lo, 0.999));
        // roughly the ratio over random ids
        let r = rng();
        let hits = (0..4000).filter(|_| ratio_sampled(&TraceId::random(&r), 0.25)).count();
        assert!((700..1300).contains(&hits), "{hits} of 4000 at 0.25");
    }

    #[test]
    fn parent_based_sampling() {
        let r = rng();
        let parent = SpanContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None)
            .map(|mut c| {
                c.trace_state = Some("k=v".into());
                c
            })
            .unwrap();
        // a sampled parent is always sampled, even at ratio 0
        let child = new_span(&r, "c", Kind::Internal, Parent::Of(&parent), (0.0, 0.0));
        let d = child.0.as_ref().unwrap();
        assert_eq!(d.context.trace_id, parent.trace_id);
        assert_eq!(d.parent, Some(parent.span_id));
        assert_ne!(d.context.span_id, parent.span_id);
        assert_eq!(d.context.trace_state.as_deref(), Some("k=v"));
        // an unsampled one never, even at ratio 1
        let unsampled = SpanContext { sampled: false, ..parent.clone() };
        assert!(!new_span(&r, "c", Kind::Internal, Parent::Of(&unsampled), (1.0, 1.0)).is_recording());
        assert!(new_span(&r, "r", Kind::Internal, Parent::Root, (1.0, 0.0)).is_recording());
        assert!(!new_span(&r, "s", Kind::Internal, Parent::StoreRoot, (1.0, 0.0)).is_recording());
    }

    #[test]
    fn events_are_capped_and_noop_spans_do_nothing() {
        let mut s = new_span(&rng(), "t", Kind::Server, Parent::Root, (1.0, 1.0));
        for _ in 0..(MAX_EVENTS + 5) {
            s.event("tool_call", Vec::new);
        }
        s.set_u64("n", u64::MAX);
        s.set_f64("nan", f64::NAN);
        s.error("WORKER_CRASH");
        let d = s.finish_data().unwrap();
        assert_eq!(d.events.len(), MAX_EVENTS);
        assert_eq!(d.dropped_events, 5);
        assert_eq!(d.attrs, vec![KeyValue { key: "n", value: Value::Int(i64::MAX) }]);
        assert_eq!(d.status, Status::Error("WORKER_CRASH".into()));
        assert!(d.end_ns >= d.start_ns);

        let mut none = Span::NONE;
        none.set_str("k", "v");
        none.event("e", || panic!("attrs must not be built for a span that records nothing"));
        assert!(!none.is_recording());
        assert_eq!(none.log_ids().to_string(), "");
    }
}
