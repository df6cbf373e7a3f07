//! The reactor's timer queue: a min-heap of deadlines with lazy cancellation
//! (a fired timer is checked against its owner's current state, so nothing
//! needs to be removed from the heap).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::token::Key;

/// What a timer is for. Owners validate on fire (stale timers are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// Request head must be complete (gateway.handshake_timeout).
    Handshake,
    /// First frame must arrive (gateway.init_timeout).
    Init,
    /// Ping / liveness check (gateway.ping_interval).
    Heartbeat,
    /// Close linger: drop the socket if the peer never closes.
    Linger,
    /// worker.turn_timeout for turn number `n`.
    Turn(u64),
    /// worker.stall_timeout check.
    Stall,
    /// A permission request expires (its serial).
    Permission(u64),
    /// An adapter-requested timer.
    Adapter(u32),
    /// Interrupt after turn_timeout did not end the turn within kill_grace.
    TurnKill(u64),
    /// An output-limit interrupt did not end the turn within kill_grace: the
    /// gateway closes it (the worker stays).
    TurnClose(u64),
    /// A worker's startup handshake deadline (`worker.start_timeout`; its generation).
    StartTimeout(u32),
    /// Periodic GC sweep of this reactor's sessions.
    Gc,
    /// Shutdown: running turns had their time; stop every worker.
    DrainDeadline,
    /// Shutdown: connections that ignored `control.reconnect` are closed.
    ReconnectDeadline,
    /// Admin drain (its epoch): connections still open at `reconnect_deadline` are closed.
    DrainClose(u64),
    /// An outbound HTTP connect must complete (`http_client::CONNECT_TIMEOUT`).
    HttpConnect,
    /// An outbound HTTP request's own deadline.
    HttpDeadline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Conn(KeyOrd),
    Session(KeyOrd),
    /// An outbound HTTP connection (`http_client`).
    Http(KeyOrd),
    Reactor,
}

/// `Key` with an ordering (heap entries need `Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyOrd {
    pub idx: usize,
    pub generation: u32,
}

impl From<Key> for KeyOrd {
    fn from(k: Key) -> Self {
        KeyOrd { idx: k.idx, generation: k.generation }
    }
}

impl From<KeyOrd> for Key {
    fn from(k: KeyOrd) -> Self {
        Key { idx: k.idx, generation: k.generation }
    }
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Owner, TimerKind)>>,
}

impl Timers {
    pub fn at(&mut self, when: Instant, owner: Owner, kind: TimerKind) {
        self.heap.push(Reverse((when, owner, kind)));
    }

    pub fn after(&mut self, d: Duration, owner: Owner, kind: TimerKind) {
        self.at(Instant::now() + d, owner, kind);
    }

    /// Time until the next deadline, capped at `max`.
    pub fn timeout(&self, now: Instant, max: Duration) -> Duration {
        match self.heap.peek() {
            Some(Reverse((when, _, _))) => when.saturating_duration_since(now).min(max),
            None => max,
        }
    }

    /// Pop one timer due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Owner, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((when, _, _))) if *when <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.at(now + Duration::from_millis(30), Owner::Reactor, TimerKind::Gc);
        t.at(now + Duration::from_millis(10), Owner::Reactor, TimerKind::Stall);
        assert_eq!(t.timeout(now, Duration::from_secs(1)), Duration::from_millis(10));
        assert!(t.pop_due(now).is_none());
        let later = now + Duration::from_millis(40);
        assert_eq!(t.pop_due(later).unwrap().2, TimerKind::Stall);
        assert_eq!(t.pop_due(later).unwrap().2, TimerKind::Gc);
        assert!(t.is_empty());
    }
}
