//! Trace and span ids, span contexts and the W3C `traceparent` /
//! `tracestate` header values (operations.md §6.3). Pure data: parsing,
//! formatting and random generation (`ring::rand`); no I/O, no globals.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

/// A 16-byte trace id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// Longest `tracestate` value passed through (W3C: 32 members of ≤ 256 bytes;
/// we keep it short and drop anything longer rather than truncating members).
pub const MAX_TRACE_STATE: usize = 512;

fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Lower-case hex decoding of exactly `out.len()` bytes (W3C: lower-case only).
fn unhex(s: &str, out: &mut [u8]) -> bool {
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, o) in out.iter_mut().enumerate() {
        match (nib(b[2 * i]), nib(b[2 * i + 1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

impl TraceId {
    pub fn random(rng: &SystemRandom) -> TraceId {
        loop {
            let mut b = [0u8; 16];
            // getrandom does not fail on Linux after boot; an all-zero id is retried.
            let _ = rng.fill(&mut b);
            if b != [0; 16] {
                return TraceId(b);
            }
        }
    }

    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(32);
        hex_into(&mut s, &self.0);
        s
    }

    /// The low 8 bytes as an integer (the trace-id ratio sampler's input).
    pub fn low_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(b)
    }
}

impl SpanId {
    pub fn random(rng: &SystemRandom) -> SpanId {
        loop {
            let mut b = [0u8; 8];
            let _ = rng.fill(&mut b);
            if b != [0; 8] {
                return SpanId(b);
            }
        }
    }

    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(16);
        hex_into(&mut s, &self.0);
        s
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// What a child span or a link needs to know about another span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    /// Whether it came from a client (`traceparent`) rather than this process.
    pub remote: bool,
    /// W3C `tracestate`, passed through unchanged (only with a valid parent).
    pub trace_state: Option<Box<str>>,
}

/// Why a `traceparent` value was ignored (debug log only, never an error to the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentError {
    Shape,
    Version,
    Hex,
    ZeroId,
}

impl ParentError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParentError::Shape => "not version-traceid-spanid-flags",
            ParentError::Version => "unsupported version",
            ParentError::Hex => "not lower-case hex of the right length",
            ParentError::ZeroId => "all-zero trace or span id",
        }
    }
}

impl SpanContext {
    /// Parse a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). Version
    /// `ff` is invalid; a higher version than `00` is accepted when its first
    /// four fields have the version-00 shape (W3C forward compatibility).
    /// `trace_state` is kept only when the parent is valid, not empty, at
    /// most [`MAX_TRACE_STATE`] bytes and printable ASCII.
    pub fn from_traceparent(value: &str, trace_state: Option<&str>) -> Result<SpanContext, ParentError> {
        let v = value.trim_matches(|c| c == ' ' || c == '\t');
        let mut parts = v.split('-');
        let (Some(ver), Some(tid), Some(sid), Some(flags)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParentError::Shape);
        };
        let rest = parts.next();
        let mut version = [0u8; 1];
        if !unhex(ver, &mut version) {
            return Err(ParentError::Hex);
        }
        if version[0] == 0xff || (version[0] == 0 && rest.is_some()) {
            return Err(ParentError::Version);
        }
        let (mut t, mut s, mut f) = ([0u8; 16], [0u8; 8], [0u8; 1]);
        if !unhex(tid, &mut t) || !unhex(sid, &mut s) || !unhex(flags, &mut f) {
            return Err(ParentError::Hex);
        }
        if t == [0; 16] || s == [0; 8] {
            return Err(ParentError::ZeroId);
        }
        let trace_state = trace_state
            .map(str::trim)
            .filter(|ts| !ts.is_empty() && ts.len() <= MAX_TRACE_STATE && ts.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .map(Box::from);
        Ok(SpanContext { trace_id: TraceId(t), span_id: SpanId(s), sampled: f[0] & 1 == 1, remote: true, trace_state })
    }

    /// This context as a `traceparent` value (version 00).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.sampled as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn parses_the_w3c_example() {
        let c = SpanContext::from_traceparent(GOOD, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(c.trace_id.hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(c.span_id.hex(), "b7ad6b7169203331");
        assert!(c.sampled && c.remote);
        assert_eq!(c.trace_state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(c.traceparent(), GOOD);
        let unsampled = SpanContext::from_traceparent(&GOOD.replace("-01", "-00"), None).unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn rejects_malformed_values() {
        let bad = [
            "",
            "00",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
        ];
        for b in bad {
            assert!(SpanContext::from_traceparent(b, None).is_err(), "{b:?} accepted");
        }
        // a future version may carry more fields
        assert!(SpanContext::from_traceparent(&format!("cc{}-what", &GOOD[2..]), None).is_ok());
    }

    #[test]
    fn trace_state_is_filtered() {
        let long = "a=".to_string() + &"b".repeat(MAX_TRACE_STATE);
        assert!(SpanContext::from_traceparent(GOOD, Some(&long)).unwrap().trace_state.is_none());
        assert!(SpanContext::from_traceparent(GOOD, Some("a=1\r\nx: y")).unwrap().trace_state.is_none());
        assert!(SpanContext::from_traceparent(GOOD, Some("  ")).unwrap().trace_state.is_none());
    }

    #[test]
    fn random_ids_are_distinct_and_nonzero() {
        let rng = SystemRandom::new();
        let a = TraceId::random(&rng);
        let b = TraceId::random(&rng);
        assert_ne!(a, b);
        assert_ne!(a.0, [0; 16]);
        assert_eq!(a.hex().len(), 32);
        assert_eq!(SpanId::random(&rng).hex().len(), 16);
    }
}
