//! The in-memory replay window of one session (aep-v1.md §5.3 within the
//! gateway's lifetime): the most recent session frames, bounded in count and
//! bytes. Durable replay across restarts is the store's job.

use std::collections::VecDeque;

use crate::ws::outq::SharedFrame;

pub struct ReplayRing {
    frames: VecDeque<SharedFrame>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

/// What a reconnecting client gets.
pub enum Replay<'a> {
    /// Every frame with seq > last_seq is still held.
    Complete(Vec<&'a SharedFrame>),
    /// Older frames were dropped: `oldest_seq` is the first one still held.
    Expired { oldest_seq: u64, frames: Vec<&'a SharedFrame> },
}

impl ReplayRing {
    pub fn new(max_events: usize, max_bytes: usize) -> ReplayRing {
        ReplayRing { frames: VecDeque::new(), bytes: 0, max_events: max_events.max(1), max_bytes }
    }

    pub fn push(&mut self, f: SharedFrame) {
        self.bytes += f.wire().len();
        self.frames.push_back(f);
        while self.frames.len() > self.max_events || (self.bytes > self.max_bytes && self.frames.len() > 1) {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.wire().len();
            }
        }
    }

    pub fn oldest_seq(&self) -> Option<u64> {
        self.frames.front().map(|f| f.seq)
    }

    /// Frames after `last_seq` up to `top` (the session's position). A
    /// `last_seq` above `top` means the client knew an earlier incarnation:
    /// everything is replayed.
    pub fn since(&self, last_seq: u64, top: u64) -> Replay<'_> {
        let from = if last_seq > top { 0 } else { last_seq };
        let frames: Vec<_> = self.frames.iter().filter(|f| f.seq > from).collect();
        match self.oldest_seq() {
            Some(oldest) if from + 1 < oldest => Replay::Expired { oldest_seq: oldest, frames },
            None if from < top => Replay::Expired { oldest_seq: top + 1, frames },
            _ => Replay::Complete(frames),
        }
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Event;
    use crate::ws::outq::SessionFrame;
    use std::sync::Arc;

    fn f(seq: u64) -> SharedFrame {
        Arc::new(SessionFrame::new(seq, 0, Arc::from("s"), &Event::message_delta("m", "x")))
    }

    #[test]
    fn bounded_and_expiry() {
        let mut r = ReplayRing::new(3, 1 << 20);
        for s in 1..=5 {
            r.push(f(s));
        }
        assert_eq!(r.oldest_seq(), Some(3));
        match r.since(4, 5) {
            Replay::Complete(v) => assert_eq!(v.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![5]),
            _ => panic!(),
        }
        match r.since(2, 5) {
            Replay::Complete(v) => assert_eq!(v.len(), 3),
            _ => panic!(),
        }
        match r.since(1, 5) {
            Replay::Expired { oldest_seq, frames } => {
                assert_eq!(oldest_seq, 3);
                assert_eq!(frames.len(), 3);
            }
            _ => panic!(),
        }
        match r.since(99, 5) {
            Replay::Expired { frames, .. } => assert_eq!(frames.len(), 3),
            _ => panic!(),
        }
    }

    #[test]
    fn byte_bound() {
        let one = f(1).wire().len();
        let mut r = ReplayRing::new(100, one * 2);
        for s in 1..=4 {
            r.push(f(s));
        }
        assert_eq!(r.oldest_seq(), Some(3));
    }
}
