//! `limits.max_total_send_queue_bytes` (security.md §9): the bytes queued
//! for writing over every connection of every reactor. Above the limit the
//! connection with the largest queue is closed 1008 `slow consumer` once the
//! total has stayed above the limit for [`GRACE`]
//! (aep-v1.md §5.4 semantics: drivers and observers alike, the session keeps
//! running).
//!
//! A queue is measured like the per-connection bound (`ws/outq.rs`
//! `counted_bytes`): session data frames, one frame counting at most
//! `gateway.send_queue_high_water`, replay and control frames not at all; so
//! a client that reads is never the one closed for a single large frame.
//!
//! Owns the global total and each reactor's published largest queue (atomics
//! in [`Shared`](super::shared::Shared)). A connection's queue is counted
//! after every flush (every push marks the connection dirty, so it is
//! flushed at the end of the same loop iteration) and uncounted when the
//! connection is dropped. Each reactor over the limit publishes its largest
//! queue and closes it only when no other reactor published a larger one;
//! reactors wake at least every 250 ms, so the reactor holding the largest
//! queue acts within that. No locks, no messages between reactors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Reactor;
use super::token::Key;

/// The total must stay above the limit this long before a queue is closed:
/// a session's frames are released to every attached connection in one
/// batch (at commit), so for a moment a client that reads holds as much as
/// one that does not; within the grace the reader drains, the others do not.
pub const GRACE: Duration = Duration::from_millis(250);

/// Global send-queue accounting.
pub struct SendQueues {
    total: AtomicUsize,
    largest: Vec<AtomicUsize>,
}

impl SendQueues {
    pub fn new(reactors: usize) -> SendQueues {
        SendQueues { total: AtomicUsize::new(0), largest: (0..reactors).map(|_| AtomicUsize::new(0)).collect() }
    }

    /// Bytes queued over every connection.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// A queue went from `was` to `now` bytes.
    pub fn update(&self, was: usize, now: usize) {
        if now > was {
            self.total.fetch_add(now - was, Ordering::Relaxed);
        } else if was > now {
            let _ =
                self.total.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_sub(was - now)));
        }
    }

    /// Publish reactor `me`'s largest queue; true when no other reactor
    /// published a larger one (ties go to the lower reactor id).
    fn publish_and_check(&self, me: usize, bytes: usize) -> bool {
        if let Some(slot) = self.largest.get(me) {
            slot.store(bytes, Ordering::Relaxed);
        }
        self.largest.iter().enumerate().all(|(i, l)| {
            let other = l.load(Ordering::Relaxed);
            i == me || other < bytes || (other == bytes && me < i)
        })
    }
}

impl Reactor {
    /// Count a connection's queue after it changed (after a flush).
    pub fn account_send_queue(&mut self, key: Key) {
        let Some(c) = self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation) else { return };
        let now = c.conn.out.counted_bytes();
        if now != c.sendq_counted {
            self.shared.send_queues.update(c.sendq_counted, now);
            c.sendq_counted = now;
        }
    }

    /// Above `limits.max_total_send_queue_bytes`: close this reactor's
    /// largest queue if it is the largest of all reactors.
    pub fn enforce_total_send_queue(&mut self) {
        let max = self.s.guards.max_total_send_queue_bytes;
        let total = self.shared.send_queues.total();
        if total <= max {
            self.sendq_over_since = None;
            return;
        }
        let now = Instant::now();
        match self.sendq_over_since {
            None => {
                self.sendq_over_since = Some(now);
                return;
            }
            Some(t) if now.duration_since(t) < GRACE => return,
            Some(_) => {}
        }
        let largest = self
            .clients
            .iter()
            .map(|(i, c)| (c.sendq_counted, Key { idx: i, generation: c.generation }))
            .max_by_key(|(b, _)| *b);
        let (bytes, key) = largest.unwrap_or((0, Key { idx: usize::MAX, generation: 0 }));
        // Scan again only after another grace period (not on every loop).
        self.sendq_over_since = Some(now);
        if !self.shared.send_queues.publish_and_check(self.id, bytes) || bytes == 0 {
            return;
        }
        if self.client(key).is_some_and(|c| c.conn.is_closing()) {
            // Already closed, but the frame it is being written (a whole
            // coalesced message) still holds the bytes and its close frame
            // waits behind it: drop the socket.
            log::warn!(
                "total send queue {total} bytes over limits.max_total_send_queue_bytes ({max}): dropping a closing connection holding {bytes} bytes"
            );
            return self.drop_client(key);
        }
        log::warn!(
            "total send queue {total} bytes over limits.max_total_send_queue_bytes ({max}): closing the largest queue ({bytes} bytes) as a slow consumer"
        );
        self.close_client(key, crate::protocol::close::POLICY, "slow consumer", true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_largest() {
        let q = SendQueues::new(2);
        q.update(0, 100);
        q.update(0, 50);
        q.update(100, 30);
        assert_eq!(q.total(), 80);
        q.update(500, 0);
        assert_eq!(q.total(), 0, "never below zero");
        assert!(q.publish_and_check(0, 10));
        assert!(q.publish_and_check(1, 20));
        assert!(!q.publish_and_check(0, 10), "reactor 1 holds the larger queue");
        assert!(q.publish_and_check(0, 20), "ties go to the lower id");
        assert!(!q.publish_and_check(1, 20));
    }
}
