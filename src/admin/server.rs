//! The `admin` thread's event loop: its own `mio::Poll` on `admin.listen`,
//! HTTP/1.1 keep-alive connections (≤ 100 requests, 30 s idle), request
//! heads through `net::http`, bodies by `Content-Length` only, deadlines,
//! and the requests in flight.
//!
//! A request is answered at once or parked (`Step::Wait`) while it waits for
//! a store reader, a reactor or a commit. Answers come back as continuations
//! (`Cont`) through the admin inbox (crossbeam channel + `mio::Waker`); a
//! continuation runs on this thread and may park the request again. A
//! request not answered within `admin.request_timeout` gets 500
//! `request timed out`; a late continuation for it is dropped. Nothing here
//! takes a lock a reactor holds, and nothing a reactor does waits for this
//! thread.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, unbounded};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::Value;
use slab::Slab;

use super::error::ApiError;
use super::settings::AdminSettings;
use crate::net::http::{self, Head, Request};
use crate::rate::{Bucket, Charge};
use crate::reactor::shared::Shared;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Keep-alive: requests per connection, and idle time between them (operations.md §4.1).
pub const MAX_REQUESTS_PER_CONN: usize = 100;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the peer's FIN.
const LINGER: Duration = Duration::from_secs(1);
/// The longest poll sleep (deadlines and the stop flag are checked this often).
const MAX_POLL: Duration = Duration::from_millis(250);
/// Poll interval while a commit barrier is awaited.
const BARRIER_POLL: Duration = Duration::from_millis(2);
/// Store heartbeat cadence (`/ready` wants a commit at least every 5 s).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Per-IP rate buckets kept at most (older ones are forgotten first).
const MAX_RATE_ENTRIES: usize = 4096;

/// A request in flight.
pub type ReqId = u64;

/// The rest of a request's work, run on the admin thread.
pub type Cont = Box<dyn FnOnce(&mut Server, ReqId) -> Step + Send>;

/// What a handler or continuation did with a request.
pub enum Step {
    Done(Response),
    /// Parked: a continuation will finish it.
    Wait,
}

/// A complete answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(status: u16, v: &Value) -> Response {
        Response { status, content_type: "application/json", body: v.to_string().into_bytes(), headers: Vec::new() }
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        Response { status: e.status, content_type: "application/json", body: e.body().into_bytes(), headers: e.headers }
    }
}

impl From<ApiError> for Step {
    fn from(e: ApiError) -> Step {
        Step::Done(e.into())
    }
}

/// Sends a continuation for request `id` back to the admin thread.
#[derive(Clone)]
pub struct Resume {
    id: ReqId,
    tx: Sender<(ReqId, Cont)>,
    waker: Arc<Waker>,
}

impl Resume {
    pub fn then(self, f: impl FnOnce(&mut Server, ReqId) -> Step + Send + 'static) {
        if self.tx.send((self.id, Box::new(f))).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Where a connection is.
enum Phase {
    /// Reading a request (or idle between requests).
    Open,
    /// A request is being worked on.
    Waiting(ReqId),
    /// Final answer written; waiting for the peer's FIN until the deadline.
    Linger(Instant),
}

struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    generation: u64,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    phase: Phase,
    served: usize,
    write_armed: bool,
    close_after_write: bool,
    /// The peer closed its side.
    eof: bool,
    /// First byte of the current request.
    started: Option<Instant>,
    idle_since: Instant,
}

struct Pending {
    conn: usize,
    generation: u64,
    deadline: Instant,
    keep_alive: bool,
    /// Templated path for `hotplex_admin_requests_total{route}`.
    route: &'static str,
}

/// What the handlers can reach.
pub struct Ctx {
    pub settings: Arc<RwLock<Arc<AdminSettings>>>,
    pub shared: Arc<Shared>,
    pub reloader: Arc<crate::reload::Reloader>,
    pub workers: Vec<super::probe::WorkerInfo>,
    pub started: Instant,
}

impl Ctx {
    pub fn settings(&self) -> Arc<AdminSettings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Everything a request's handler sees about it.
pub struct Call {
    pub req: Request,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

pub struct Server {
    poll: Poll,
    listener: TcpListener,
    waker: Arc<Waker>,
    tx: Sender<(ReqId, Cont)>,
    rx: Receiver<(ReqId, Cont)>,
    conns: Slab<Conn>,
    next_generation: u64,
    pending: HashMap<ReqId, Pending>,
    next_id: ReqId,
    barriers: Vec<(ReqId, Receiver<()>, Cont)>,
    rate: HashMap<IpAddr, (Bucket, Instant)>,
    stop: Arc<AtomicBool>,
    last_heartbeat: Instant,
    pub ctx: Ctx,
}

/// Stops the admin thread from another thread.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

impl Server {
    /// Bind `addr` (port 0 picks a free port); the real address is returned.
    pub fn bind(addr: SocketAddr, ctx: Ctx) -> io::Result<(Server, SocketAddr, Stopper)> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(std_listener);
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = Stopper { flag: stop.clone(), waker: waker.clone() };
        let server = Server {
            poll,
            listener,
            waker,
            tx,
            rx,
            conns: Slab::new(),
            next_generation: 0,
            pending: HashMap::new(),
            next_id: 1,
            barriers: Vec::new(),
            rate: HashMap::new(),
            stop,
            last_heartbeat: Instant::now(),
            ctx,
        };
        Ok((server, local, stopper))
    }

    /// A handle to continue request `id` later from any thread.
    pub fn resume(&self, id: ReqId) -> Resume {
        Resume { id, tx: self.tx.clone(), waker: self.waker.clone() }
    }

    /// Continue `id` once everything queued to the store so far is committed.
    pub fn after_commit(&mut self, id: ReqId, then: impl FnOnce(&mut Server, ReqId) -> Step + Send + 'static) -> Step {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.ctx.shared.store.try_send(crate::store::WriteOp::Barrier(tx)).is_err() {
            return self.internal("store queue full (barrier)");
        }
        self.barriers.push((id, rx, Box::new(then)));
        Step::Wait
    }

    /// A 500 with a request id; `cause` goes to the log only.
    pub fn internal(&self, cause: &str) -> Step {
        let rid = super::error::request_id();
        log::error!("admin request failed request_id={rid}: {cause}");
        ApiError::internal(&rid).into()
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        self.send_heartbeat();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let timeout = if self.barriers.is_empty() { MAX_POLL } else { BARRIER_POLL };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("admin poll failed: {e}");
                    return;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        let writable = ev.is_writable() || ev.is_write_closed();
                        self.on_conn_event(t - FIRST_CONN, readable, writable);
                    }
                }
            }
            self.drain_inbox();
            self.poll_barriers();
            self.check_deadlines();
            self.heartbeat();
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, peer)) => {
                    let max = self.ctx.settings().max_connections;
                    if self.conns.len() >= max {
                        log::debug!("admin: connection limit reached, closing at once");
                        continue; // accepted and closed (security.md §9.3)
                    }
                    let _ = sock.set_nodelay(true);
                    self.next_generation += 1;
                    let entry = self.conns.vacant_entry();
                    let idx = entry.key();
                    if self.poll.registry().register(&mut sock, Token(idx + FIRST_CONN), Interest::READABLE).is_err() {
                        continue;
                    }
                    entry.insert(Conn {
                        sock,
                        peer,
                        generation: self.next_generation,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        phase: Phase::Open,
                        served: 0,
                        write_armed: false,
                        close_after_write: false,
                        eof: false,
                        started: None,
                        idle_since: Instant::now(),
                    });
                    self.on_conn_event(idx, true, false);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) => {
                    log::warn!("admin accept: out of file descriptors");
                    return;
                }
                Err(e) => {
                    log::debug!("admin accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_conn_event(&mut self, idx: usize, readable: bool, writable: bool) {
        if !self.conns.contains(idx) {
            return;
        }
        if writable {
            self.flush(idx);
        }
        if readable {
            self.read_conn(idx);
            self.progress(idx);
        }
    }

    /// Read what the socket has (bounded by what one request may need).
    fn read_conn(&mut self, idx: usize) {
        let s = self.ctx.settings();
        let cap = s.head_limits.max_request_line + s.head_limits.max_header_bytes + s.max_body_bytes + 4096;
        let Some(c) = self.conns.get_mut(idx) else { return };
        if let Phase::Linger(_) = c.phase {
            let mut sink = [0u8; 4096];
            loop {
                match c.sock.read(&mut sink) {
                    Ok(0) => return self.drop_conn(idx),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => return self.drop_conn(idx),
                }
            }
        }
        let mut chunk = [0u8; 8192];
        while c.inbuf.len() < cap {
            match c.sock.read(&mut chunk) {
                Ok(0) => {
                    c.eof = true;
                    break;
                }
                Ok(n) => {
                    if c.started.is_none() {
                        c.started = Some(Instant::now());
                    }
                    c.inbuf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    c.eof = true;
                    break;
                }
            }
        }
    }

    /// Parse and dispatch buffered requests until one waits or bytes run out.
    fn progress(&mut self, idx: usize) {
        loop {
            let Some(c) = self.conns.get_mut(idx) else { return };
            if !matches!(c.phase, Phase::Open) {
                return;
            }
            if c.inbuf.is_empty() {
                if c.eof && c.out.is_empty() {
                    self.drop_conn(idx);
                }
                return;
            }
            let settings = self.ctx.settings();
            let (req, head_len) = match http::parse_head(&c.inbuf, &settings.head_limits) {
                Head::Partial => {
                    if c.eof {
                        self.drop_conn(idx);
                    }
                    return;
                }
                Head::Reject(status) => {
                    let e = ApiError::new(status, http::default_code(status), http::reason(status));
                    return self.answer_and_close(idx, e.into());
                }
                Head::Complete(req, len) => (req, len),
            };
            let body_len = match framing(&req, settings.max_body_bytes) {
                Ok(n) => n,
                Err(e) => return self.answer_and_close(idx, e.into()),
            };
            if c.inbuf.len() < head_len + body_len {
                if c.eof {
                    self.drop_conn(idx);
                } else {
                    // the rest of the body may be waiting behind the read cap
                    self.read_conn(idx);
                    let more = self.conns.get(idx).is_some_and(|c| c.inbuf.len() >= head_len + body_len);
                    if more {
                        continue;
                    }
                }
                return;
            }
            let body = c.inbuf[head_len..head_len + body_len].to_vec();
            c.inbuf.drain(..head_len + body_len);
            c.started = if c.inbuf.is_empty() { None } else { Some(Instant::now()) };
            let wants_close = req.header_all("connection").any(|v| has_token(v, "close"));
            let keep_alive = !wants_close && !c.eof && c.served + 1 < MAX_REQUESTS_PER_CONN;
            let id = self.next_id;
            self.next_id += 1;
            let peer = c.peer;
            let generation = c.generation;
            let deadline = Instant::now() + settings.request_timeout;
            let route = super::routes::template(&req.path);
            self.pending.insert(id, Pending { conn: idx, generation, deadline, keep_alive, route });
            match self.dispatch(id, Call { req, body, peer }) {
                Step::Done(resp) => self.finish(id, resp),
                Step::Wait => {
                    if let Some(p) = self.pending.get(&id) {
                        if let Some(c) = self.conns.get_mut(p.conn).filter(|c| c.generation == p.generation) {
                            c.phase = Phase::Waiting(id);
                        }
                    }
                    return;
                }
            }
            // After a read cap was hit, more may be waiting in the socket.
            self.read_conn(idx);
        }
    }

    /// Answer request `id` (if its connection is still there).
    pub fn finish(&mut self, id: ReqId, resp: Response) {
        let Some(p) = self.pending.remove(&id) else { return };
        crate::metrics::admin_request(p.route, resp.status);
        let Some(c) = self.conns.get_mut(p.conn).filter(|c| c.generation == p.generation) else { return };
        let keep = p.keep_alive && resp.status != 500;
        let headers: Vec<(&str, &str)> = resp.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.out.extend_from_slice(&http::response(resp.status, resp.content_type, &resp.body, &headers, keep));
        c.served += 1;
        c.phase = Phase::Open;
        c.idle_since = Instant::now();
        if !keep {
            c.close_after_write = true;
            c.inbuf.clear();
        }
        self.flush(p.conn);
    }

    /// An answer after which the connection cannot be trusted (framing errors).
    fn answer_and_close(&mut self, idx: usize, resp: Response) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        let headers: Vec<(&str, &str)> = resp.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.out.extend_from_slice(&http::response(resp.status, resp.content_type, &resp.body, &headers, false));
        c.close_after_write = true;
        c.inbuf.clear();
        self.flush(idx);
    }

    fn flush(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        while !c.out.is_empty() {
            match c.sock.write(&c.out) {
                Ok(0) => return self.drop_conn(idx),
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.drop_conn(idx),
            }
        }
        let want_write = !c.out.is_empty();
        if want_write != c.write_armed {
            c.write_armed = want_write;
            let interest = if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            let _ = self.poll.registry().reregister(&mut c.sock, Token(idx + FIRST_CONN), interest);
        }
        if c.out.is_empty() && c.close_after_write && !matches!(c.phase, Phase::Linger(_)) {
            let _ = c.sock.shutdown(Shutdown::Write);
            c.phase = Phase::Linger(Instant::now() + LINGER);
            if c.eof {
                self.drop_conn(idx);
            }
        }
    }

    fn drop_conn(&mut self, idx: usize) {
        if !self.conns.contains(idx) {
            return;
        }
        let mut c = self.conns.remove(idx);
        let _ = self.poll.registry().deregister(&mut c.sock);
        if let Phase::Waiting(id) = c.phase {
            self.pending.remove(&id);
        }
    }

    fn drain_inbox(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok((id, cont)) => self.run_cont(id, cont),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
    }

    fn run_cont(&mut self, id: ReqId, cont: Cont) {
        if !self.pending.contains_key(&id) {
            return; // timed out or its connection went away
        }
        match cont(self, id) {
            Step::Wait => {}
            Step::Done(resp) => {
                let conn = self.pending.get(&id).map(|p| p.conn);
                self.finish(id, resp);
                if let Some(idx) = conn {
                    self.progress(idx);
                }
            }
        }
    }

    fn poll_barriers(&mut self) {
        if self.barriers.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.barriers.len() {
            match self.barriers[i].1.try_recv() {
                Err(TryRecvError::Empty) => i += 1,
                Ok(()) => {
                    let (id, _, cont) = self.barriers.swap_remove(i);
                    ready.push((id, Some(cont)));
                }
                Err(TryRecvError::Disconnected) => {
                    let (id, _, _) = self.barriers.swap_remove(i);
                    ready.push((id, None));
                }
            }
        }
        for (id, cont) in ready {
            match cont {
                Some(c) => self.run_cont(id, c),
                None => {
                    let step = self.internal("store writer gone (barrier)");
                    self.run_cont(id, Box::new(move |_, _| step));
                }
            }
        }
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        let expired: Vec<ReqId> = self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let rid = super::error::request_id();
            log::error!("admin request failed request_id={rid}: request timed out");
            let e = ApiError::internal(&rid);
            let e = ApiError { message: "request timed out".into(), ..e };
            self.barriers.retain(|(b, _, _)| *b != id);
            self.finish(id, e.into());
        }
        let timeout = self.ctx.settings().request_timeout;
        let dead: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| match c.phase {
                Phase::Linger(until) => until <= now,
                Phase::Open if c.out.is_empty() => match c.started {
                    Some(t) => now.duration_since(t) >= timeout,
                    None => now.duration_since(c.idle_since) >= IDLE_TIMEOUT,
                },
                _ => false,
            })
            .map(|(i, _)| i)
            .collect();
        for idx in dead {
            self.drop_conn(idx);
        }
        if self.rate.len() > MAX_RATE_ENTRIES {
            self.rate.retain(|_, (_, seen)| now.duration_since(*seen) < Duration::from_secs(60));
            if self.rate.len() > MAX_RATE_ENTRIES {
                self.rate.clear();
            }
        }
    }

    /// The store heartbeat `/ready` checks (operations.md §4.2).
    fn heartbeat(&mut self) {
        if self.last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
            self.send_heartbeat();
        }
    }

    fn send_heartbeat(&mut self) {
        self.last_heartbeat = Instant::now();
        let op = crate::store::WriteOp::Heartbeat { at_ms: crate::protocol::now_ms() };
        let _ = self.ctx.shared.store.try_send(op);
    }

    /// `admin.rate_limit` for one client IP; `Err` carries `Retry-After` seconds.
    pub fn charge_rate(&mut self, ip: IpAddr, settings: &AdminSettings) -> Result<(), u64> {
        let now = Instant::now();
        let (bucket, seen) =
            self.rate.entry(ip).or_insert_with(|| (Bucket::new(settings.rate_per_sec, settings.rate_burst, now), now));
        *seen = now;
        if bucket.charge(now, 0.0) == Charge::Empty {
            let wait = bucket.until_one(now);
            return Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1));
        }
        Ok(())
    }
}

/// Body framing (security.md §9.4): no `Transfer-Encoding`, one well-formed
/// `Content-Length` at most `max` bytes. Returns the body length.
fn framing(req: &Request, max: usize) -> Result<usize, ApiError> {
    if req.header_all("transfer-encoding").next().is_some() {
        return Err(ApiError::bad_request("Transfer-Encoding is not allowed"));
    }
    let n = match req.header_one("content-length") {
        Err(_) => return Err(ApiError::bad_request("duplicate Content-Length")),
        Ok(None) => 0,
        Ok(Some(v)) => {
            let t = std::str::from_utf8(v).map(str::trim).unwrap_or("x");
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request("malformed Content-Length"));
            }
            t.parse::<u64>().unwrap_or(u64::MAX)
        }
    };
    if n > max as u64 {
        return Err(ApiError::payload_too_large());
    }
    Ok(n as usize)
}

fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::HeadLimits;

    fn req(extra: &str) -> Request {
        let raw = format!("POST /admin/drain HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n");
        match http::parse_head(raw.as_bytes(), &HeadLimits::default()) {
            Head::Complete(r, _) => r,
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn body_framing() {
        assert_eq!(framing(&req(""), 10), Ok(0));
        assert_eq!(framing(&req("Content-Length: 10\r\n"), 10), Ok(10));
        assert_eq!(framing(&req("Content-Length: 11\r\n"), 10).unwrap_err().status, 413);
        assert_eq!(framing(&req("Content-Length: 99999999999999999999999\r\n"), 10).unwrap_err().status, 413);
        assert_eq!(framing(&req("Transfer-Encoding: chunked\r\n"), 10).unwrap_err().status, 400);
        assert_eq!(framing(&req("Content-Length: 1\r\nContent-Length: 1\r\n"), 10).unwrap_err().status, 400);
        assert_eq!(framing(&req("Content-Length: -1\r\n"), 10).unwrap_err().status, 400);
        assert!(has_token(b"keep-alive, Close", "close"));
    }
}
