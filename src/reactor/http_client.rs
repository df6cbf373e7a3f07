//! The gateway's own HTTP/1.1 client on a reactor, for adapters whose worker
//! is a local HTTP server (workers.md §4): carries out [`Action::Http`] and
//! [`Action::HttpStream`] and answers the adapter.
//!
//! Owns the outbound connections (a slab, `Kind::Http` tokens), the
//! managed-endpoint table (security.md §8.3: loopback is reachable only as
//! the (127.0.0.1, port) pair of a session's running server, filled when its
//! worker is spawned and emptied when it exits) and failures waiting to be
//! delivered. One request per connection (`Connection: close`), connect
//! completed by writability under a reactor-timer deadline, response parsing
//! by `net::http_response`, event streams framed by `net::sse`, every buffer
//! bounded (`worker.max_line_bytes`). Must not: resolve names, block, follow
//! redirects, reach any address but the session's own endpoint, or outlive
//! the worker it talks to.
//!
//! [`Action::Http`]: crate::adapters::Action::Http
//! [`Action::HttpStream`]: crate::adapters::Action::HttpStream

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use mio::Interest;
use mio::net::TcpStream;
use slab::Slab;

use crate::adapters::{HttpError, HttpRequest, Out, ServerEndpoint};
use crate::net::http_response::{HttpFault, Item, ResponseReader};
use crate::net::sse::{SseFramer, SseItem};

use super::Reactor;
use super::timer::{Owner, TimerKind};
use super::token::{self, Key, Kind};

/// Deadline for a TCP connect to the managed endpoint (security.md §8.1 step 4).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from one connection per wake-up before yielding.
const READ_BUDGET: usize = 256 * 1024;
/// Connections one session may have open at once; more are refused (`NotSent`).
pub const MAX_CONNS_PER_SESSION: usize = 16;
/// Request limits (the adapter's own values; a violation is a bug, not input).
const MAX_PATH_BYTES: usize = 8192;
const MAX_REQUEST_HEADERS: usize = 16;
const MAX_HEADER_VALUE_BYTES: usize = 8192;
/// Header fields the reactor writes itself.
const RESERVED_HEADERS: [&str; 5] = ["host", "authorization", "content-length", "connection", "transfer-encoding"];
/// Times a server that lost its port to another process is started again.
pub const MAX_PORT_RETRIES: u32 = 3;

/// A session's managed endpoint (security.md §8.3).
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `Basic <base64(user:password)>`; never logged.
    authorization: String,
    /// Generation of the worker serving it, once spawned.
    pub worker_gen: Option<u32>,
}

/// One outbound request (or event stream) in flight.
pub struct HttpConn {
    generation: u32,
    session: Key,
    worker_gen: u32,
    id: u64,
    stream: bool,
    sock: TcpStream,
    addr: SocketAddr,
    connected: bool,
    out: Vec<u8>,
    written: usize,
    reader: ResponseReader,
    status: Option<u16>,
    body: Vec<u8>,
    sse: Option<SseFramer>,
}

/// The per-reactor client state (one field of [`Reactor`]).
#[derive(Default)]
pub struct HttpClients {
    conns: Slab<HttpConn>,
    endpoints: HashMap<Key, Endpoint>,
    /// Failures to report after the current adapter call has returned.
    deferred: Vec<(Key, u64, HttpError)>,
    /// Port retries already used by a session's server startup.
    retries: HashMap<Key, u32>,
}

impl HttpClients {
    /// Open connections (all sessions of this reactor).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Failures are waiting to be reported (the reactor must not sleep).
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Whether `addr` is the managed endpoint of a running server here.
    pub fn is_managed(&self, addr: SocketAddr) -> bool {
        self.endpoints.values().any(|e| e.addr == addr && e.worker_gen.is_some())
    }
}

/// What one read produced, handed to the session after the connection's
/// borrow ended.
enum Delivery {
    Event(Vec<u8>),
    Oversize(usize),
}

enum Finish {
    Response(u16, Vec<u8>),
    Failed(HttpError),
}

impl HttpConn {
    /// Feed bytes read (or the end of the connection); returns events and,
    /// when the request is over, how it ended.
    fn absorb(&mut self, bytes: &[u8], eof: bool, max: usize) -> (Vec<Delivery>, Option<Finish>) {
        let HttpConn { reader, status, body, sse, stream, .. } = self;
        let mut events = Vec::new();
        let mut ended = false;
        let mut too_big = false;
        let mut on = |item: Item<'_>| match item {
            Item::Head { status: s } => {
                *status = Some(s);
                if *stream && (200..300).contains(&s) {
                    *sse = Some(SseFramer::new(max));
                }
            }
            Item::Body(b) => match sse.as_mut() {
                Some(f) => f.feed(b, &mut |ev| match ev {
                    SseItem::Event(d) => events.push(Delivery::Event(d.to_vec())),
                    SseItem::Oversize { len } => events.push(Delivery::Oversize(len)),
                }),
                None if body.len() + b.len() > max => too_big = true,
                None => body.extend_from_slice(b),
            },
            Item::End => ended = true,
        };
        let res = if eof { reader.finish(&mut on) } else { reader.feed(bytes, &mut on) };
        let streaming = sse.is_some();
        let finish = match res {
            _ if too_big => Some(Finish::Failed(HttpError::BadResponse)),
            Err(HttpFault::Truncated) => Some(Finish::Failed(HttpError::Closed)),
            Err(f) => {
                log::debug!("managed endpoint sent a bad response: {f}");
                Some(Finish::Failed(HttpError::BadResponse))
            }
            Ok(()) if ended && streaming => Some(Finish::Failed(HttpError::Closed)),
            Ok(()) if ended => Some(Finish::Response(status.unwrap_or(0), std::mem::take(body))),
            Ok(()) => None,
        };
        (events, finish)
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// 32 random bytes as 64 lowercase hex characters.
fn random_password() -> io::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| io::Error::other("no system randomness"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A loopback port that was free just now (bind to port 0, read it, close).
fn free_port() -> io::Result<u16> {
    let l = std::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// Another process holds `port` on 127.0.0.1 (after our server exited).
pub fn port_taken(port: u16) -> bool {
    matches!(
        std::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse
    )
}

/// The request line, the reactor's own header fields, the adapter's, and the body.
fn request_bytes(req: &HttpRequest, ep: &Endpoint) -> Result<Vec<u8>, &'static str> {
    let m = req.method;
    if m.is_empty() || m.len() > 16 || !m.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("bad method");
    }
    let p = req.path.as_bytes();
    if p.first() != Some(&b'/') || p.len() > MAX_PATH_BYTES || !p.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err("bad path");
    }
    if req.headers.len() > MAX_REQUEST_HEADERS {
        return Err("too many header fields");
    }
    let mut out = format!(
        "{m} {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n",
        req.path, ep.addr, ep.authorization
    );
    for (name, value) in &req.headers {
        let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !name_ok || RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err("bad or reserved header name");
        }
        if value.len() > MAX_HEADER_VALUE_BYTES || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err("bad header value");
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !req.body.is_empty() || matches!(m, "POST" | "PUT" | "PATCH") {
        out.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&req.body);
    Ok(bytes)
}

/// The live connection `key` (field-level borrow, so the poll stays usable).
fn conn_mut(http: &mut HttpClients, key: Key) -> Option<&mut HttpConn> {
    http.conns.get_mut(key.idx).filter(|c| c.generation == key.generation)
}

impl Reactor {
    fn http_conn_mut(&mut self, key: Key) -> Option<&mut HttpConn> {
        conn_mut(&mut self.http, key)
    }

    /// Choose the port and password of a session's next server process and
    /// record it as the session's managed endpoint (not yet reachable: the
    /// worker is not running).
    pub fn http_endpoint_open(&mut self, skey: Key, basic_user: &str) -> io::Result<ServerEndpoint> {
        let port = free_port()?;
        let password = random_password()?;
        let authorization = format!("Basic {}", base64(format!("{basic_user}:{password}").as_bytes()));
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        self.http.endpoints.insert(skey, Endpoint { addr, authorization, worker_gen: None });
        Ok(ServerEndpoint { port, password })
    }

    /// The session's server process is running (its requests may go out).
    pub fn http_endpoint_started(&mut self, skey: Key, worker_gen: u32) {
        if let Some(e) = self.http.endpoints.get_mut(&skey) {
            e.worker_gen = Some(worker_gen);
        }
    }

    /// The session's worker is gone (or never started): close its
    /// connections and forget its endpoint. Returns the endpoint's port.
    pub fn http_worker_gone(&mut self, skey: Key) -> Option<u16> {
        let keys: Vec<Key> = self
            .http
            .conns
            .iter()
            .filter(|(_, c)| c.session == skey)
            .map(|(i, c)| Key { idx: i, generation: c.generation })
            .collect();
        for k in keys {
            self.http_drop(k);
        }
        self.http.deferred.retain(|(s, _, _)| *s != skey);
        self.http.endpoints.remove(&skey).map(|e| e.addr.port())
    }

    /// A server exited before it was ready: if another process holds its
    /// port (lost bind race), allow one more start on a fresh port.
    pub fn http_should_retry_port(&mut self, skey: Key, port: u16) -> bool {
        let used = self.http.retries.get(&skey).copied().unwrap_or(0);
        if used >= MAX_PORT_RETRIES || !port_taken(port) {
            self.http.retries.remove(&skey);
            return false;
        }
        self.http.retries.insert(skey, used + 1);
        true
    }

    /// The session left memory: nothing of it may remain here.
    pub fn http_forget_session(&mut self, skey: Key) {
        self.http_worker_gone(skey);
        self.http.retries.remove(&skey);
    }

    /// Start a request (`stream`: an event stream) for the session's adapter.
    pub fn http_request(&mut self, skey: Key, id: u64, req: HttpRequest, stream: bool) {
        let worker_gen = self.session(skey).and_then(|s| s.worker.as_ref()).map(|w| w.generation);
        let Some(ep) = self.http.endpoints.get(&skey).filter(|e| e.worker_gen.is_some() && e.worker_gen == worker_gen)
        else {
            return self.http.deferred.push((skey, id, HttpError::NotSent));
        };
        let open = self.http.conns.iter().filter(|(_, c)| c.session == skey).count();
        if open >= MAX_CONNS_PER_SESSION {
            log::warn!("http request refused: {open} connections open for one session");
            return self.http.deferred.push((skey, id, HttpError::NotSent));
        }
        let bytes = match request_bytes(&req, ep) {
            Ok(b) => b,
            Err(why) => {
                log::warn!("http request refused: {why} ({} {})", req.method, req.path);
                return self.http.deferred.push((skey, id, HttpError::NotSent));
            }
        };
        let addr = ep.addr;
        // security.md §8.3: a blocked range (loopback) only as this session's running managed server.
        if crate::security::ssrf::blocked_range(addr.ip()).is_some() && !self.http.is_managed(addr) {
            log::warn!("http request refused: {addr} is not a managed endpoint");
            return self.http.deferred.push((skey, id, HttpError::NotSent));
        }
        let worker_gen = worker_gen.unwrap_or(0);
        // No name resolution: the endpoint is a checked address (security.md §8.1 step 4).
        let sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("http connect to the managed endpoint failed: {e}");
                return self.http.deferred.push((skey, id, HttpError::Connect));
            }
        };
        let max = self.s.worker.max_line_bytes;
        let generation = self.next_gen();
        let conn = HttpConn {
            generation,
            session: skey,
            worker_gen,
            id,
            stream,
            sock,
            addr,
            connected: false,
            out: bytes,
            written: 0,
            reader: ResponseReader::new(req.method == "HEAD", if stream { None } else { Some(max) }),
            status: None,
            body: Vec::new(),
            sse: None,
        };
        let idx = self.http.conns.insert(conn);
        let key = Key { idx, generation };
        let tok = token::make(Kind::Http, key);
        let registered = match self.http.conns.get_mut(idx) {
            Some(c) => self.poll.registry().register(&mut c.sock, tok, Interest::READABLE | Interest::WRITABLE),
            None => return,
        };
        if registered.is_err() {
            self.http_drop(key);
            return self.http.deferred.push((skey, id, HttpError::Connect));
        }
        self.timers.after(CONNECT_TIMEOUT, Owner::Http(key.into()), TimerKind::HttpConnect);
        if let Some(t) = req.timeout {
            self.timers.after(t, Owner::Http(key.into()), TimerKind::HttpDeadline);
        }
    }

    /// Drop a request of the session's adapter; nothing is delivered for it.
    pub fn http_cancel(&mut self, skey: Key, id: u64) {
        let found = self
            .http
            .conns
            .iter()
            .find(|(_, c)| c.session == skey && c.id == id)
            .map(|(i, c)| Key { idx: i, generation: c.generation });
        if let Some(k) = found {
            self.http_drop(k);
        }
        self.http.deferred.retain(|(s, i, _)| !(*s == skey && *i == id));
    }

    /// Report failures of requests that could not even start.
    pub fn http_flush_deferred(&mut self) {
        for (skey, id, err) in std::mem::take(&mut self.http.deferred) {
            self.with_adapter(skey, |a, out| a.on_http_error(id, err, out));
        }
    }

    /// The store accepts writes again: resume reading the session's event streams.
    pub fn http_resume(&mut self, skey: Key) {
        for (i, c) in self.http.conns.iter() {
            if c.session == skey && c.sse.is_some() {
                self.again.push((Kind::Http, Key { idx: i, generation: c.generation }));
            }
        }
    }

    fn http_drop(&mut self, key: Key) {
        if conn_mut(&mut self.http, key).is_none() {
            return;
        }
        let mut c = self.http.conns.remove(key.idx);
        let _ = self.poll.registry().deregister(&mut c.sock);
    }

    /// End a request with an error and tell the adapter.
    fn http_fail(&mut self, key: Key, err: HttpError) {
        let Some(c) = self.http_conn_mut(key) else { return };
        let (skey, worker_gen, id) = (c.session, c.worker_gen, c.id);
        self.http_drop(key);
        self.http_to_adapter(skey, worker_gen, |a, out| a.on_http_error(id, err, out));
    }

    /// Run an adapter callback if the worker the request belonged to is still the session's.
    fn http_to_adapter(
        &mut self,
        skey: Key,
        worker_gen: u32,
        f: impl FnOnce(&mut dyn crate::adapters::Adapter, &mut Out),
    ) {
        let current = self.session(skey).and_then(|s| s.worker.as_ref()).is_some_and(|w| w.generation == worker_gen);
        if current {
            self.with_adapter(skey, f);
        }
    }

    pub(super) fn on_http_event(&mut self, key: Key, readable: bool, writable: bool) {
        let Some(c) = self.http_conn_mut(key) else { return };
        if !c.connected {
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return self.http_fail(key, HttpError::Connect),
            }
            match c.sock.peer_addr() {
                // security.md §8.1 step 4: connected to exactly the checked address.
                Ok(a) => match crate::security::ssrf::verify_peer(a, c.addr) {
                    Ok(()) => c.connected = true,
                    Err(_) => return self.http_fail(key, HttpError::Connect),
                },
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if readable {
                        return self.http_fail(key, HttpError::Connect);
                    }
                    return; // still connecting
                }
                Err(_) => return self.http_fail(key, HttpError::Connect),
            }
        }
        if (writable || readable) && !self.http_write(key) {
            return;
        }
        if readable {
            self.http_read(key);
        }
    }

    /// Write what is left of the request; false if the connection failed.
    fn http_write(&mut self, key: Key) -> bool {
        let Some(c) = conn_mut(&mut self.http, key) else { return false };
        if c.out.is_empty() {
            return true;
        }
        while c.written < c.out.len() {
            match c.sock.write(&c.out[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.http_fail(key, HttpError::Closed);
                    return false;
                }
            }
        }
        c.out = Vec::new();
        let tok = token::make(Kind::Http, key);
        let _ = self.poll.registry().reregister(&mut c.sock, tok, Interest::READABLE);
        true
    }

    fn http_read(&mut self, key: Key) {
        let mut buf = vec![0u8; 64 * 1024];
        let max = self.s.worker.max_line_bytes;
        let mut total = 0;
        loop {
            let Some(c) = self.http_conn_mut(key) else { return };
            let (skey, worker_gen, id) = (c.session, c.worker_gen, c.id);
            if c.sse.is_some() && self.session(skey).is_some_and(|s| s.persist.blocked()) {
                return; // resumed by http_resume once the store has room
            }
            let Some(c) = self.http_conn_mut(key) else { return };
            let (events, finish) = match c.sock.read(&mut buf) {
                Ok(0) => c.absorb(&[], true, max),
                Ok(n) => {
                    total += n;
                    c.absorb(&buf[..n], false, max)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => (Vec::new(), Some(Finish::Failed(HttpError::Closed))),
            };
            for ev in events {
                self.http_event(skey, worker_gen, id, ev);
            }
            if let Some(f) = finish {
                self.http_drop(key);
                match f {
                    Finish::Response(status, body) => {
                        self.http_to_adapter(skey, worker_gen, |a, out| a.on_http_response(id, status, &body, out))
                    }
                    Finish::Failed(err) => {
                        self.http_to_adapter(skey, worker_gen, |a, out| a.on_http_error(id, err, out))
                    }
                }
                return;
            }
            if total >= READ_BUDGET {
                self.again.push((Kind::Http, key));
                return;
            }
        }
    }

    /// One server-sent event to the adapter. It counts as worker output
    /// (stall clock, `max_turn_output_bytes`) only if the adapter made
    /// something of it, so keep-alive events do not hide a stalled turn.
    fn http_event(&mut self, skey: Key, worker_gen: u32, id: u64, ev: Delivery) {
        let current = self.session(skey).and_then(|s| s.worker.as_ref()).is_some_and(|w| w.generation == worker_gen);
        if !current {
            return;
        }
        match ev {
            Delivery::Event(data) => {
                let Some(s) = self.session_mut(skey) else { return };
                let mut out = Out::default();
                s.adapter.on_sse(id, &data, &mut out);
                let actions = out.take();
                if !actions.is_empty() {
                    self.count_output(skey, data.len() as u64);
                }
                self.apply_actions(skey, actions);
            }
            Delivery::Oversize(len) => self.output_oversize(skey, len),
        }
    }

    pub(super) fn on_http_timer(&mut self, key: Key, kind: TimerKind) {
        let Some(c) = self.http_conn_mut(key) else { return };
        match kind {
            TimerKind::HttpConnect if !c.connected => self.http_fail(key, HttpError::Timeout),
            TimerKind::HttpDeadline => self.http_fail(key, HttpError::Timeout),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(b"opencode:pw123"), "b3BlbmNvZGU6cHcxMjM=");
    }

    #[test]
    fn passwords_are_random_hex() {
        let (a, b) = (random_password().unwrap(), random_password().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    fn ep() -> Endpoint {
        Endpoint {
            addr: "127.0.0.1:4097".parse().unwrap(),
            authorization: "Basic b3BlbmNvZGU6cHcxMjM=".into(),
            worker_gen: Some(1),
        }
    }

    #[test]
    fn request_bytes_carry_the_reactor_headers() {
        let req = HttpRequest::post_json("/session/ses_1/message", br#"{"a":1}"#.to_vec());
        let got = String::from_utf8(request_bytes(&req, &ep()).unwrap()).unwrap();
        assert_eq!(
            got,
            "POST /session/ses_1/message HTTP/1.1\r\nHost: 127.0.0.1:4097\r\nAuthorization: Basic b3BlbmNvZGU6cHcxMjM=\r\n\
             Connection: close\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        );
        let get = String::from_utf8(request_bytes(&HttpRequest::get("/event"), &ep()).unwrap()).unwrap();
        assert!(get.starts_with("GET /event HTTP/1.1\r\n") && !get.contains("Content-Length"), "{get}");
        let empty_post = HttpRequest::post_json("/session/ses_1/abort", Vec::new());
        assert!(String::from_utf8(request_bytes(&empty_post, &ep()).unwrap()).unwrap().contains("Content-Length: 0"));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let mut r = HttpRequest::get("/x y");
        assert!(request_bytes(&r, &ep()).is_err());
        r.path = "http://evil/".into();
        assert!(request_bytes(&r, &ep()).is_err());
        r.path = "/ok".into();
        r.headers = vec![("Host", "evil".into())];
        assert!(request_bytes(&r, &ep()).is_err());
        r.headers = vec![("X-A", "a\r\nInjected: 1".into())];
        assert!(request_bytes(&r, &ep()).is_err());
        r.headers = vec![("Bad Name", "v".into())];
        assert!(request_bytes(&r, &ep()).is_err());
        r.headers = vec![];
        r.method = "get";
        assert!(request_bytes(&r, &ep()).is_err());
    }

    #[test]
    fn ports_are_free_loopback_ports_and_a_held_port_is_seen() {
        let p = free_port().unwrap();
        assert_ne!(p, 0);
        let holder = std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        assert!(port_taken(p));
        drop(holder);
        assert!(!port_taken(p));
    }
}
