//! Per-connection outbound queue (aep-v1.md §5.4): frames in creation order,
//! bounded in bytes, with consecutive `message.delta` frames of one message
//! coalesced while the queue is above its high-water mark. Session frames
//! are encoded once and shared (`Arc`) by every connection that receives
//! them; only a coalesced frame is re-encoded, for this connection alone.
//! A single frame counts at most `high_water` bytes toward the bound, so a
//! large frame alone never makes a reader a slow consumer
//! (docs/adr/send-queue-accounting.md). Pure memory: the reactor decides
//! when to write.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::{Event, Priority, encode};
use crate::protocol::{encode_into, new_event_id};

use super::frame;

/// The text of one `message.delta`, kept beside its encoding for coalescing.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    pub message_id: String,
    pub content: String,
    pub content_type: Option<String>,
}

/// One session event, encoded as a complete WebSocket text frame.
#[derive(Debug)]
pub struct SessionFrame {
    pub seq: u64,
    pub timestamp_ms: u64,
    pub session_id: Arc<str>,
    pub type_name: &'static str,
    pub priority: Priority,
    /// Reserved header space, then the JSON payload; the frame starts at `off`.
    buf: Vec<u8>,
    off: usize,
    pub payload_len: usize,
    /// Range of `event.data` inside the JSON payload.
    pub data_range: std::ops::Range<usize>,
    pub delta: Option<Delta>,
    /// Metric index of `type_name` (`metrics::event_type_index`).
    pub type_idx: u8,
    /// When the worker output this frame came from was read (`hotplex_line_to_frame_seconds`).
    pub origin: Option<Instant>,
}

pub type SharedFrame = Arc<SessionFrame>;

impl SessionFrame {
    /// Encode `event` as the session event `seq`.
    pub fn new(seq: u64, timestamp_ms: u64, session_id: Arc<str>, event: &Event) -> SessionFrame {
        // One buffer: header space, then the envelope (no copy into a frame).
        let mut buf = vec![0u8; frame::MAX_HEADER];
        let range = encode_into(&mut buf, &new_event_id(), seq, &session_id, timestamp_ms, event);
        let data_range = range.start - frame::MAX_HEADER..range.end - frame::MAX_HEADER;
        let payload_len = buf.len() - frame::MAX_HEADER;
        let off = frame::text_in_place(&mut buf);
        let delta = match event {
            Event::MessageDelta { message_id, content, content_type } => Some(Delta {
                message_id: message_id.clone(),
                content: content.clone(),
                content_type: content_type.clone(),
            }),
            _ => None,
        };
        SessionFrame {
            seq,
            timestamp_ms,
            session_id,
            type_name: event.type_name(),
            priority: event.priority(),
            payload_len,
            buf,
            off,
            data_range,
            delta,
            type_idx: crate::metrics::event_type_index(event.type_name()),
            origin: crate::metrics::line_origin(),
        }
    }

    /// The complete WebSocket frame.
    pub fn wire(&self) -> &[u8] {
        &self.buf[self.off..]
    }

    /// The JSON envelope without the WebSocket header.
    pub fn json(&self) -> &[u8] {
        &self.buf[frame::MAX_HEADER..]
    }

    /// `event.data` as sent (JSON object text).
    pub fn data_json(&self) -> &[u8] {
        &self.json()[self.data_range.clone()]
    }
}

enum Item {
    /// A shared session frame; `counted` = its bytes toward the
    /// slow-consumer bound (0: control priority or replay); `live` = sent as
    /// it happened (a replayed frame is not a line→frame latency).
    Shared { frame: SharedFrame, counted: usize, live: bool },
    /// Several deltas of one message merged for this connection.
    Coalesced {
        seq: u64,
        timestamp_ms: u64,
        session_id: Arc<str>,
        delta: Delta,
        wire: Option<Vec<u8>>,
        origin: Option<Instant>,
    },
    /// Bytes that never count: HTTP responses, control frames, connection-local frames.
    Raw(Vec<u8>),
}

impl Item {
    fn bytes(&self) -> &[u8] {
        match self {
            Item::Shared { frame, .. } => frame.wire(),
            Item::Coalesced { wire, .. } => wire.as_deref().unwrap_or(&[]),
            Item::Raw(b) => b,
        }
    }

    /// When the worker output behind this item was read.
    fn origin(&self) -> Option<Instant> {
        match self {
            Item::Shared { frame, live: true, .. } => frame.origin,
            Item::Shared { .. } => None,
            Item::Coalesced { origin, .. } => *origin,
            Item::Raw(_) => None,
        }
    }

    /// Bytes this item counts toward the bound (an estimate for an unencoded merge).
    fn counted_len(&self) -> usize {
        match self {
            Item::Shared { counted, .. } => *counted,
            Item::Coalesced { delta, .. } => delta.content.len() + delta.message_id.len() + 160,
            _ => 0,
        }
    }

    fn encode(&mut self) {
        if let Item::Coalesced { seq, timestamp_ms, session_id, delta, wire, .. } = self {
            if wire.is_none() {
                let ev = Event::MessageDelta {
                    message_id: delta.message_id.clone(),
                    content: delta.content.clone(),
                    content_type: delta.content_type.clone(),
                };
                *wire = Some(frame::text(&encode(*seq, session_id, *timestamp_ms, &ev)));
            }
        }
    }
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        self.set_total(0);
    }
}

/// What happened to a pushed session frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Merged into the previous delta (one frame absorbed).
    Coalesced,
    /// The queue already held its bound: the connection must close `slow consumer`.
    OverBound,
}

/// Bounded outbound queue for one connection.
#[derive(Default)]
pub struct OutQueue {
    items: VecDeque<Item>,
    /// Bytes of the head item already written.
    head_off: usize,
    counted: usize,
    total: usize,
}

impl OutQueue {
    /// Every change of `total` goes through here (`hotplex_ws_send_queue_bytes`).
    fn set_total(&mut self, total: usize) {
        crate::metrics::send_queue_delta(total as i64 - self.total as i64);
        self.total = total;
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes waiting (all items).
    pub fn total_bytes(&self) -> usize {
        self.total
    }

    /// Bytes counted toward the slow-consumer bound.
    pub fn counted_bytes(&self) -> usize {
        self.counted
    }

    /// Queue a session frame. `high_water`/`bound` are `gateway.send_queue_high_water`
    /// and `gateway.send_queue_bytes`; `exempt` frames (replay) never count.
    pub fn push_frame(&mut self, f: &SharedFrame, high_water: usize, bound: usize, exempt: bool) -> Pushed {
        let counts = f.priority == Priority::Data && !exempt;
        if counts && self.counted >= bound {
            return Pushed::OverBound;
        }
        if counts && self.counted > high_water {
            if let Some(d) = &f.delta {
                if self.try_merge(f, d) {
                    crate::metrics::frame_coalesced();
                    return Pushed::Coalesced;
                }
            }
        }
        // A frame above the high-water mark counts as high_water: one large
        // frame (a big tool_result) is not a slow consumer; the frames that
        // pile up behind it while it is being written are.
        let counted = if counts { f.wire().len().min(high_water.max(1)) } else { 0 };
        let item = Item::Shared { frame: f.clone(), counted, live: !exempt };
        self.counted += item.counted_len();
        self.set_total(self.total + f.wire().len());
        self.items.push_back(item);
        crate::metrics::frame_sent(f.type_idx);
        Pushed::Queued
    }

    fn try_merge(&mut self, f: &SharedFrame, d: &Delta) -> bool {
        let tail_is_head_in_flight = self.items.len() == 1 && self.head_off > 0;
        if tail_is_head_in_flight {
            return false;
        }
        let Some(tail) = self.items.back_mut() else { return false };
        let before = tail.counted_len();
        let before_total = tail.bytes().len();
        match tail {
            Item::Shared { frame: prev, counted, .. } if *counted > 0 => {
                let Some(pd) = &prev.delta else { return false };
                if pd.message_id != d.message_id || pd.content_type != d.content_type {
                    return false;
                }
                let mut merged = pd.clone();
                merged.content.push_str(&d.content);
                *tail = Item::Coalesced {
                    seq: f.seq,
                    timestamp_ms: f.timestamp_ms,
                    session_id: f.session_id.clone(),
                    delta: merged,
                    wire: None,
                    origin: prev.origin.or(f.origin),
                };
            }
            Item::Coalesced { seq, timestamp_ms, delta, wire, origin, .. } => {
                if delta.message_id != d.message_id || delta.content_type != d.content_type {
                    return false;
                }
                delta.content.push_str(&d.content);
                *seq = f.seq;
                *timestamp_ms = f.timestamp_ms;
                *wire = None;
                *origin = origin.or(f.origin);
            }
            _ => return false,
        }
        self.counted = self.counted - before + tail.counted_len();
        self.set_total(self.total - before_total);
        true
    }

    /// Queue bytes that never count toward the bound (HTTP, control and local frames).
    pub fn push_raw(&mut self, bytes: Vec<u8>) {
        self.set_total(self.total + bytes.len());
        self.items.push_back(Item::Raw(bytes));
    }

    /// Drop every item not yet started (used before a slow-consumer close).
    pub fn clear_pending(&mut self) {
        let keep_head = self.head_off > 0;
        let head = if keep_head { self.items.pop_front() } else { None };
        self.items.clear();
        self.counted = 0;
        self.set_total(0);
        if let Some(h) = head {
            // The head stays counted until `consume` pops it.
            self.set_total(h.bytes().len() - self.head_off);
            self.counted = h.counted_len();
            self.items.push_back(h);
        }
    }

    /// Write as much as the socket takes. Returns bytes written; `Ok` with
    /// the queue non-empty means the socket would block.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut written_total = 0;
        while !self.items.is_empty() {
            let mut grown = 0;
            for item in self.items.iter_mut().take(32) {
                let before = item.bytes().len();
                item.encode();
                grown += item.bytes().len() - before;
            }
            self.set_total(self.total + grown);
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(32);
            for (i, item) in self.items.iter().take(32).enumerate() {
                let b = item.bytes();
                slices.push(IoSlice::new(if i == 0 { &b[self.head_off..] } else { b }));
            }
            let n = match w.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written_total),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            drop(slices);
            written_total += n;
            self.consume(n);
        }
        Ok(written_total)
    }

    fn consume(&mut self, mut n: usize) {
        self.set_total(self.total.saturating_sub(n));
        let mut now = None;
        while n > 0 {
            let Some(head) = self.items.front() else { break };
            let left = head.bytes().len() - self.head_off;
            if n >= left {
                n -= left;
                self.counted -= head.counted_len();
                if let Some(origin) = head.origin() {
                    crate::metrics::line_to_frame(origin, *now.get_or_insert_with(Instant::now));
                }
                self.items.pop_front();
                self.head_off = 0;
            } else {
                self.head_off += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(seq: u64, mid: &str, text: &str) -> SharedFrame {
        Arc::new(SessionFrame::new(seq, 1, Arc::from("sid"), &Event::message_delta(mid, text)))
    }

    /// A writer that accepts at most `cap` bytes per call, then blocks.
    struct Sink {
        out: Vec<u8>,
        budget: usize,
    }
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.budget);
            self.budget -= n;
            self.out.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn frames(bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (len, hdr) = match rest[1] & 0x7f {
                126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                127 => (u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize, 10),
                n => (n as usize, 2),
            };
            out.push(serde_json::from_slice(&rest[hdr..hdr + len]).unwrap());
            rest = &rest[hdr + len..];
        }
        out
    }

    #[test]
    fn coalesces_only_above_high_water_and_keeps_text() {
        let mut q = OutQueue::default();
        for i in 1..=10 {
            q.push_frame(&delta(i, "m", &format!("{i},")), 0, 1 << 20, false);
        }
        let mut s = Sink { out: vec![], budget: usize::MAX };
        q.write_to(&mut s).unwrap();
        let fs = frames(&s.out);
        // nothing was written yet, so all ten merge into one frame carrying the last seq
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0]["event"]["data"]["content"], "1,2,3,4,5,6,7,8,9,10,");
        assert_eq!(fs[0]["seq"], 10);
    }

    #[test]
    fn no_coalescing_below_high_water_or_across_messages() {
        let mut q = OutQueue::default();
        for i in 1..=4 {
            q.push_frame(&delta(i, if i % 2 == 0 { "a" } else { "b" }, "x"), 0, 1 << 20, false);
        }
        for i in 5..=7 {
            q.push_frame(&delta(i, "c", "y"), 1 << 20, 1 << 21, false);
        }
        let mut s = Sink { out: vec![], budget: usize::MAX };
        q.write_to(&mut s).unwrap();
        assert_eq!(frames(&s.out).len(), 7);
    }

    #[test]
    fn partial_writes_resume_and_head_in_flight_is_not_merged() {
        let mut q = OutQueue::default();
        q.push_frame(&delta(1, "m", "hello"), 0, 1 << 20, false);
        let mut s = Sink { out: vec![], budget: 5 };
        assert_eq!(q.write_to(&mut s).unwrap(), 5);
        q.push_frame(&delta(2, "m", " world"), 0, 1 << 20, false);
        s.budget = usize::MAX;
        q.write_to(&mut s).unwrap();
        assert!(q.is_empty());
        let fs = frames(&s.out);
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0]["event"]["data"]["content"], "hello");
        assert_eq!(fs[1]["event"]["data"]["content"], " world");
        assert_eq!(q.counted_bytes(), 0);
        assert_eq!(q.total_bytes(), 0);
    }

    #[test]
    fn clear_pending_keeps_the_head_in_flight_and_its_count() {
        let mut q = OutQueue::default();
        q.push_frame(&delta(1, "m", "hello"), 1 << 20, 1 << 20, false);
        q.push_frame(&delta(2, "m", " world"), 1 << 20, 1 << 20, false);
        let mut s = Sink { out: vec![], budget: 5 };
        q.write_to(&mut s).unwrap();
        q.clear_pending();
        s.budget = usize::MAX;
        q.write_to(&mut s).unwrap();
        assert!(q.is_empty());
        assert_eq!(q.counted_bytes(), 0);
        let fs = frames(&s.out);
        assert_eq!(fs.len(), 1, "the frame in flight is completed, the rest dropped");
        assert_eq!(fs[0]["event"]["data"]["content"], "hello");
    }

    /// Random pushes, partial writes and a final slow-consumer clear keep
    /// both byte counts equal to what the queue holds.
    #[test]
    fn accounting_stays_exact_under_merges_and_partial_writes() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        let check = |q: &OutQueue| {
            let held: usize = q.items.iter().map(|i| i.bytes().len()).sum();
            assert_eq!(q.total, held - q.head_off);
            assert_eq!(q.counted, q.items.iter().map(Item::counted_len).sum::<usize>());
        };
        for _ in 0..300 {
            let mut q = OutQueue::default();
            for seq in 1..80 {
                match next(10) {
                    0..6 => {
                        let text = "x".repeat(next(60) as usize + 1);
                        q.push_frame(&delta(seq, if next(8) == 0 { "n" } else { "m" }, &text), 200, 1 << 20, false);
                    }
                    6..9 => {
                        q.write_to(&mut Sink { out: vec![], budget: next(400) as usize }).unwrap();
                    }
                    _ => q.push_raw(vec![0x8a, 0]),
                }
                check(&q);
            }
            q.clear_pending();
            check(&q);
            q.write_to(&mut Sink { out: vec![], budget: usize::MAX }).unwrap();
            assert!(q.is_empty());
            assert_eq!((q.total, q.counted), (0, 0));
        }
    }

    #[test]
    fn a_frame_above_high_water_counts_as_high_water() {
        let mut q = OutQueue::default();
        let big = delta(1, "m", &"x".repeat(5000));
        assert_eq!(q.push_frame(&big, 500, 1000, false), Pushed::Queued);
        assert_eq!(q.counted_bytes(), 500);
        // What piles up behind it still closes a consumer that does not read.
        let mut n = 2;
        while q.push_frame(&delta(n, &format!("m{n}"), "y"), 500, 1000, false) != Pushed::OverBound {
            n += 1;
            assert!(n < 100, "never over the bound");
        }
        assert!(q.counted_bytes() >= 1000);
    }

    #[test]
    fn over_bound_and_exemptions() {
        let mut q = OutQueue::default();
        let big = delta(1, "m", &"x".repeat(3000));
        assert_eq!(q.push_frame(&big, 1 << 20, 1000, false), Pushed::Queued);
        assert_eq!(q.push_frame(&delta(2, "n", "y"), 1 << 20, 1000, false), Pushed::OverBound);
        assert_eq!(q.push_frame(&delta(3, "n", "y"), 1 << 20, 1000, true), Pushed::Queued);
        let done = Arc::new(SessionFrame::new(4, 1, Arc::from("s"), &Event::Done { success: true, stats: None }));
        assert_eq!(q.push_frame(&done, 1 << 20, 1000, false), Pushed::Queued);
        q.clear_pending();
        assert!(q.is_empty());
    }
}
