//! Connection and rate limits (security.md §9.3): the per-connection rate
//! state a client carries (also across a hand-over), the tables shared by
//! all reactors (per IP, per owner; touched per accept, upgrade, init, close
//! and client frame — never per worker event), and the throttle-then-reject
//! admission of client frames, which runs before any session logic (so an
//! over-rate `input` gets RATE_LIMIT_EXCEEDED, never SESSION_BUSY).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::protocol::{ErrorCode, Event, ThrottleSuggestion, close};
use crate::rate::{Bucket, Charge, Violations};
use crate::settings::RateSettings;

use super::Reactor;
use super::token::Key;

/// Tables beyond this many entries drop their idle ones.
const MAX_ENTRIES: usize = 65_536;
/// RATE_LIMIT_EXCEEDED errors per second and connection (beyond: dropped silently).
const MAX_RATE_ERRORS_PER_SEC: u32 = 10;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

struct IpEntry {
    open: usize,
    preinit: usize,
    handshakes: Bucket,
}

struct OwnerEntry {
    connections: usize,
    frames: Bucket,
    inputs: Bucket,
    creates: Bucket,
    api: Bucket,
}

/// Limits that span reactors.
#[derive(Default)]
pub struct Limiter {
    ips: Mutex<HashMap<IpAddr, IpEntry>>,
    owners: Mutex<HashMap<String, OwnerEntry>>,
    preinit: AtomicUsize,
}

/// Why a connection is refused before it gets anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refuse {
    /// Accepted and closed at once (`max_preinit_*`).
    Close,
    /// HTTP 429 (`max_connections_per_ip`, handshake rate).
    TooMany,
}

impl Limiter {
    fn ip_entry<'a>(
        m: &'a mut HashMap<IpAddr, IpEntry>,
        ip: IpAddr,
        r: &RateSettings,
        now: Instant,
    ) -> &'a mut IpEntry {
        if m.len() >= MAX_ENTRIES && !m.contains_key(&ip) {
            m.retain(|_, e| e.open > 0 || e.preinit > 0);
        }
        let e = m.entry(ip).or_insert_with(|| IpEntry {
            open: 0,
            preinit: 0,
            handshakes: Bucket::new(r.handshakes_per_sec, r.handshakes_burst, now),
        });
        // Limits apply at once after a reload, also to existing entries.
        e.handshakes.retune(r.handshakes_per_sec, r.handshakes_burst);
        e
    }

    fn owner_entry<'a>(
        m: &'a mut HashMap<String, OwnerEntry>,
        owner: &str,
        r: &RateSettings,
        now: Instant,
    ) -> &'a mut OwnerEntry {
        if m.len() >= MAX_ENTRIES && !m.contains_key(owner) {
            m.retain(|_, e| e.connections > 0);
        }
        let e = m.entry(owner.to_owned()).or_insert_with(|| OwnerEntry {
            connections: 0,
            frames: Bucket::new(r.owner_per_sec, r.owner_burst, now),
            inputs: Bucket::new(r.inputs_per_min / 60.0, r.inputs_per_min, now),
            creates: Bucket::new(r.creates_per_min / 60.0, r.creates_per_min, now),
            api: Bucket::new(r.api_per_sec, r.api_burst, now),
        });
        e.frames.retune(r.owner_per_sec, r.owner_burst);
        e.inputs.retune(r.inputs_per_min / 60.0, r.inputs_per_min);
        e.creates.retune(r.creates_per_min / 60.0, r.creates_per_min);
        e.api.retune(r.api_per_sec, r.api_burst);
        e
    }

    /// A TCP connection was accepted (`peer_ip` is `None` for a trusted proxy).
    pub fn accept(&self, peer_ip: Option<IpAddr>, r: &RateSettings) -> Result<(), Refuse> {
        if self.preinit.fetch_add(1, Ordering::Relaxed) >= r.max_preinit {
            self.preinit.fetch_sub(1, Ordering::Relaxed);
            return Err(Refuse::Close);
        }
        if let Some(ip) = peer_ip {
            let mut m = lock(&self.ips);
            let e = Self::ip_entry(&mut m, ip, r, Instant::now());
            if e.preinit >= r.max_preinit_per_ip {
                drop(m);
                self.preinit.fetch_sub(1, Ordering::Relaxed);
                return Err(Refuse::Close);
            }
            e.preinit += 1;
        }
        Ok(())
    }

    /// The connection left the pre-init phase (its init arrived, or it closed).
    pub fn end_preinit(&self, peer_ip: Option<IpAddr>) {
        let _ = self.preinit.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        if let Some(ip) = peer_ip {
            if let Some(e) = lock(&self.ips).get_mut(&ip) {
                e.preinit = e.preinit.saturating_sub(1);
            }
        }
    }

    /// A WebSocket upgrade from `ip`: handshake rate, then open connections.
    pub fn upgrade(&self, ip: IpAddr, r: &RateSettings) -> Result<(), Refuse> {
        let mut m = lock(&self.ips);
        let e = Self::ip_entry(&mut m, ip, r, Instant::now());
        if e.handshakes.charge(Instant::now(), 0.0) == Charge::Empty || e.open >= r.max_connections_per_ip {
            return Err(Refuse::TooMany);
        }
        e.open += 1;
        Ok(())
    }

    pub fn connection_closed(&self, ip: IpAddr) {
        if let Some(e) = lock(&self.ips).get_mut(&ip) {
            e.open = e.open.saturating_sub(1);
        }
    }

    /// A connection of `owner` initialises (`max_connections_per_owner`).
    pub fn owner_attach(&self, owner: &str, r: &RateSettings) -> bool {
        let mut m = lock(&self.owners);
        let e = Self::owner_entry(&mut m, owner, r, Instant::now());
        if r.max_connections_per_owner > 0 && e.connections >= r.max_connections_per_owner {
            return false;
        }
        e.connections += 1;
        true
    }

    pub fn owner_detach(&self, owner: &str) {
        if let Some(e) = lock(&self.owners).get_mut(owner) {
            e.connections = e.connections.saturating_sub(1);
        }
    }

    pub fn owner_frame(&self, owner: &str, r: &RateSettings, now: Instant) -> (Charge, f64, Duration) {
        let mut m = lock(&self.owners);
        let e = Self::owner_entry(&mut m, owner, r, now);
        let c = e.frames.charge(now, r.throttle_threshold);
        (c, e.frames.rate(), e.frames.until_one(now))
    }

    pub fn owner_input(&self, owner: &str, r: &RateSettings, now: Instant) -> (Charge, f64, Duration) {
        let mut m = lock(&self.owners);
        let e = Self::owner_entry(&mut m, owner, r, now);
        let c = e.inputs.charge(now, r.throttle_threshold);
        (c, e.inputs.rate(), e.inputs.until_one(now))
    }

    /// A session create of `owner` (`session_creates_per_min_per_owner`).
    pub fn owner_create(&self, owner: &str, r: &RateSettings) -> bool {
        let now = Instant::now();
        let mut m = lock(&self.owners);
        Self::owner_entry(&mut m, owner, r, now).creates.charge(now, 0.0) != Charge::Empty
    }
}

impl Limiter {
    /// One `/api/…` request of `owner`; `Err` carries the wait until a token is back.
    pub fn owner_api(&self, owner: &str, r: &RateSettings) -> Result<(), Duration> {
        let now = Instant::now();
        let mut m = lock(&self.owners);
        let b = &mut Self::owner_entry(&mut m, owner, r, now).api;
        if b.charge(now, 0.0) == Charge::Empty { Err(b.until_one(now)) } else { Ok(()) }
    }
}

/// What a client frame costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameClass {
    /// `control` and `permission_response`: their own bucket, so a
    /// throttled client can still stop its agent.
    Control,
    Input,
    Data,
}

/// Per-connection rate state (travels with a connection handed to another reactor).
pub struct ClientRate {
    pub conn: Bucket,
    pub control: Bucket,
    pub violations: Violations,
    pub last_throttle: Option<Instant>,
    /// (second, errors sent in it)
    pub errors: (Instant, u32),
    /// Counted toward the pre-init tables (per-IP part when `Some`).
    pub preinit: Option<Option<IpAddr>>,
    /// Counted in the per-IP open connections.
    pub open_ip: Option<IpAddr>,
    /// Counted in the owner's connections.
    pub owner: Option<std::sync::Arc<str>>,
}

impl ClientRate {
    pub fn new(r: &RateSettings, now: Instant) -> ClientRate {
        ClientRate {
            conn: Bucket::new(r.conn_per_sec, r.conn_burst, now),
            control: Bucket::new(r.control_per_sec, r.control_burst, now),
            violations: Violations::default(),
            last_throttle: None,
            errors: (now, 0),
            preinit: None,
            open_ip: None,
            owner: None,
        }
    }

    /// Give back every slot this connection holds in the shared tables.
    pub fn release(&mut self, l: &Limiter) {
        if let Some(p) = self.preinit.take() {
            l.end_preinit(p);
        }
        if let Some(ip) = self.open_ip.take() {
            l.connection_closed(ip);
        }
        if let Some(o) = self.owner.take() {
            l.owner_detach(&o);
        }
    }
}

impl Reactor {
    /// Charge a client frame; false when it must be dropped (the error, the
    /// throttle notice or the close are sent here).
    pub fn admit_frame(&mut self, key: Key, class: FrameClass, event_id: Option<String>) -> bool {
        let r = &self.s.rate;
        let now = Instant::now();
        let Some(c) = self.clients.get_mut(key.idx).filter(|c| c.generation == key.generation) else { return false };
        let owner = match c.stage {
            super::client::Stage::Attached { .. } => c.owner.clone(),
            _ => None,
        };
        let mut worst = Charge::Ok;
        let mut rate = r.conn_per_sec;
        let mut wait = Duration::ZERO;
        c.rate.conn.retune(r.conn_per_sec, r.conn_burst);
        c.rate.control.retune(r.control_per_sec, r.control_burst);
        let mut half = c.rate.conn.half_refill();
        let own = match class {
            FrameClass::Control => &mut c.rate.control,
            _ => &mut c.rate.conn,
        };
        let charge = own.charge(now, r.throttle_threshold);
        if charge != Charge::Ok {
            worst = charge;
            rate = own.rate();
            wait = own.until_one(now);
            half = own.half_refill();
        }
        if let (Some(o), FrameClass::Data | FrameClass::Input) = (&owner, class) {
            let (oc, orate, owait) = self.shared.limiter.owner_frame(o, r, now);
            if rank(oc) > rank(worst) {
                (worst, rate, wait) = (oc, orate, owait);
            }
            if class == FrameClass::Input && worst != Charge::Empty {
                let (ic, irate, iwait) = self.shared.limiter.owner_input(o, r, now);
                if rank(ic) > rank(worst) {
                    (worst, rate, wait) = (ic, irate, iwait);
                }
            }
        }
        match worst {
            Charge::Ok => true,
            Charge::Low => {
                self.maybe_throttle(key, rate, half, wait, now);
                true
            }
            Charge::Empty => {
                crate::metrics::rate_limited_frame();
                self.reject_frame(key, wait, event_id, now);
                false
            }
        }
    }

    fn maybe_throttle(&mut self, key: Key, rate: f64, half: Duration, wait: Duration, now: Instant) {
        let Some(c) = self.client_mut(key) else { return };
        if c.rate.last_throttle.is_some_and(|t| now.saturating_duration_since(t) < half) {
            return;
        }
        c.rate.last_throttle = Some(now);
        crate::metrics::throttle_notice();
        let ev = Event::Control {
            action: "throttle",
            reason: "rate_limit_exceeded".into(),
            delay_ms: None,
            resume_session: None,
            recoverable: None,
            suggestion: Some(ThrottleSuggestion {
                max_message_rate: rate,
                backoff_ms: half.as_millis() as u64,
                retry_after: wait.as_secs_f64().ceil() as u64,
            }),
            details: None,
        };
        self.send_local(key, &ev);
    }

    fn reject_frame(&mut self, key: Key, wait: Duration, event_id: Option<String>, now: Instant) {
        let max = self.s.rate.max_violations_per_min;
        let Some(c) = self.client_mut(key) else { return };
        let n = c.rate.violations.record(now);
        if n > max {
            log::warn!("closing a connection over the rate limit");
            let e = self.audit_entry_for(
                key,
                crate::security::audit::AuditKind::RateLimitClose,
                crate::security::audit::AuditOutcome::Denied,
            );
            self.audit(e.reason("frames"));
            return self.close_client(key, close::POLICY, "rate limit", false);
        }
        if now.saturating_duration_since(c.rate.errors.0) >= Duration::from_secs(1) {
            c.rate.errors = (now, 0);
        }
        if c.rate.errors.1 >= MAX_RATE_ERRORS_PER_SEC {
            return;
        }
        c.rate.errors.1 += 1;
        let details = Some(json!({"retry_after_ms": wait.as_millis() as u64}));
        self.send_error(key, ErrorCode::RateLimitExceeded, "rate limit exceeded", event_id, details);
    }
}

fn rank(c: Charge) -> u8 {
    match c {
        Charge::Ok => 0,
        Charge::Low => 1,
        Charge::Empty => 2,
    }
}
