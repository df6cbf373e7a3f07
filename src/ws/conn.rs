//! One client connection: its socket, the HTTP head while upgrading, the
//! tungstenite protocol context once upgraded, and the outbound queue. This
//! module reads and writes the socket and reports what arrived; what to do
//! with a message (sessions, errors) is the reactor's business.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Bytes, Error as WsError, Message};

use crate::metrics::CloseReason;
use crate::net::http::{self, Head, HeadLimits, Request};
use crate::protocol::close;

use super::frame;
use super::outq::OutQueue;

/// Where the connection is in its life.
pub enum Phase {
    /// Reading the HTTP request head (bytes so far).
    Http(Vec<u8>),
    /// Upgraded; frames flow.
    Ws(Box<WebSocketContext>),
    /// A final response or close frame is queued; once written we shut down
    /// our side and wait briefly for the peer to close.
    Closing,
}

/// Why reading stopped for good.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer closed (close frame or EOF) or the socket failed.
    Gone,
    /// We must close with this code and reason.
    Close(u16, &'static str),
}

/// What one read pass produced.
#[derive(Default)]
pub struct WsRead {
    /// Complete data messages (UTF-8 JSON text), in order.
    pub messages: Vec<Bytes>,
    /// The read budget ran out before the socket would block.
    pub more: bool,
    pub end: Option<ReadEnd>,
    /// A pong or any frame arrived (heartbeat liveness).
    pub alive: bool,
}

/// Outcome of reading the HTTP head.
pub enum HttpRead {
    Partial,
    Complete(Request, Vec<u8>),
    Reject(u16),
    Gone,
}

/// Adapter letting tungstenite read from the socket while everything it
/// writes (pongs, close replies) lands in a buffer we queue ourselves.
struct Shim<'a> {
    sock: &'a mut TcpStream,
    ctrl: &'a mut Vec<u8>,
}

impl Read for Shim<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.sock.read(buf);
        if let Ok(n) = r {
            crate::metrics::ws_bytes_in(n);
        }
        r
    }
}

impl Write for Shim<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ctrl.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Conn {
    pub sock: TcpStream,
    pub peer: SocketAddr,
    pub phase: Phase,
    pub out: OutQueue,
    pub opened: Instant,
    pub last_rx: Instant,
    /// WRITABLE interest is registered (the socket would block).
    pub write_armed: bool,
    /// Reading is suspended (init in progress, or closing).
    pub read_paused: bool,
    /// Last time the socket took bytes, or the queue became non-empty.
    pub last_write: Instant,
    /// Phase and close reason for `hotplex_ws_connections*` (counts the close when dropped).
    pub gauge: crate::metrics::ConnGauge,
}

impl Conn {
    pub fn new(sock: TcpStream, peer: SocketAddr) -> Conn {
        let now = Instant::now();
        Conn {
            sock,
            peer,
            phase: Phase::Http(Vec::new()),
            out: OutQueue::default(),
            opened: now,
            last_rx: now,
            write_armed: false,
            read_paused: false,
            last_write: now,
            gauge: crate::metrics::ConnGauge::default(),
        }
    }

    pub fn is_ws(&self) -> bool {
        matches!(self.phase, Phase::Ws(_))
    }

    pub fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing)
    }

    /// Read until the request head is complete (bounded by the limits).
    pub fn read_http(&mut self, limits: &HeadLimits) -> HttpRead {
        let Phase::Http(buf) = &mut self.phase else { return HttpRead::Partial };
        let cap = limits.max_request_line + limits.max_header_bytes + 1;
        let mut chunk = [0u8; 4096];
        loop {
            match self.sock.read(&mut chunk) {
                Ok(0) => return HttpRead::Gone,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    match http::parse_head(buf, limits) {
                        Head::Partial if buf.len() >= cap => return HttpRead::Reject(431),
                        Head::Partial => {}
                        Head::Complete(req, len) => {
                            let rest = buf.split_off(len);
                            return HttpRead::Complete(req, rest);
                        }
                        Head::Reject(status) => return HttpRead::Reject(status),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HttpRead::Partial,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return HttpRead::Gone,
            }
        }
    }

    /// Switch to WebSocket framing; `leftover` are bytes read past the head.
    pub fn upgrade(&mut self, leftover: Vec<u8>, max_message_bytes: usize) {
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message_bytes))
            .max_frame_size(Some(max_message_bytes))
            .write_buffer_size(0);
        let ctx = WebSocketContext::from_partially_read(leftover, Role::Server, Some(config));
        self.phase = Phase::Ws(Box::new(ctx));
        self.gauge.upgraded();
    }

    /// Change the inbound message bound of an upgraded connection (a
    /// config reload); it applies to messages read from now on.
    pub fn set_max_message_bytes(&mut self, max: usize) {
        if let Phase::Ws(ctx) = &mut self.phase {
            ctx.set_config(|c| {
                c.max_message_size = Some(max);
                c.max_frame_size = Some(max);
            });
        }
    }

    /// Read up to `budget` messages.
    pub fn read_ws(&mut self, budget: usize) -> WsRead {
        let mut r = WsRead::default();
        let Phase::Ws(ctx) = &mut self.phase else { return r };
        let mut ctrl = Vec::new();
        let mut shim = Shim { sock: &mut self.sock, ctrl: &mut ctrl };
        loop {
            if r.messages.len() >= budget {
                r.more = true;
                break;
            }
            match ctx.read(&mut shim) {
                Ok(Message::Text(t)) => {
                    r.alive = true;
                    r.messages.push(Bytes::from(t));
                }
                Ok(Message::Binary(b)) => {
                    r.alive = true;
                    if std::str::from_utf8(&b).is_err() {
                        r.end = Some(ReadEnd::Close(close::BAD_DATA, "invalid UTF-8"));
                        break;
                    }
                    r.messages.push(b);
                }
                Ok(Message::Close(_)) => {
                    let _ = ctx.flush(&mut shim);
                    self.gauge.closing(CloseReason::ClientClose);
                    r.end = Some(ReadEnd::Gone);
                    break;
                }
                Ok(_) => r.alive = true,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(WsError::Capacity(_)) => {
                    r.end = Some(ReadEnd::Close(close::TOO_BIG, "message too big"));
                    break;
                }
                Err(WsError::Utf8(_)) => {
                    r.end = Some(ReadEnd::Close(close::BAD_DATA, "invalid UTF-8"));
                    break;
                }
                Err(WsError::Protocol(p)) => {
                    use tungstenite::error::ProtocolError as P;
                    r.end = Some(match p {
                        P::ResetWithoutClosingHandshake | P::ReceivedAfterClosing => {
                            self.gauge.closing(CloseReason::ClientClose);
                            ReadEnd::Gone
                        }
                        _ => ReadEnd::Close(close::PROTOCOL, "protocol error"),
                    });
                    break;
                }
                Err(_) => {
                    self.gauge.closing(CloseReason::IoError);
                    r.end = Some(ReadEnd::Gone);
                    break;
                }
            }
        }
        if !ctrl.is_empty() {
            self.out.push_raw(ctrl);
        }
        r
    }

    /// Discard whatever the peer sends while we are closing; true on EOF.
    pub fn drain_closing(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.sock.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Queue a close frame (WS) and enter `Closing`. `drop_pending` discards
    /// queued frames first (slow consumer).
    pub fn start_close(&mut self, code: u16, reason: &str, drop_pending: bool) {
        if self.is_closing() {
            return;
        }
        self.gauge.closing(crate::metrics::close_reason(code, reason));
        if drop_pending {
            self.out.clear_pending();
        }
        if self.is_ws() {
            self.out.push_raw(frame::close(code, reason));
        }
        self.phase = Phase::Closing;
        self.read_paused = true;
    }

    /// Queue an HTTP response and enter `Closing`.
    pub fn respond_and_close(&mut self, response: Vec<u8>) {
        self.out.push_raw(response);
        self.phase = Phase::Closing;
        self.read_paused = true;
    }

    /// Write queued bytes. `Ok(true)` when the queue is empty.
    pub fn flush(&mut self) -> io::Result<bool> {
        let was_empty_before = self.out.is_empty();
        let n = match self.out.write_to(&mut self.sock) {
            Ok(n) => n,
            Err(e) => {
                self.gauge.closing(CloseReason::IoError);
                return Err(e);
            }
        };
        if self.gauge.is_upgraded() {
            crate::metrics::ws_bytes_out(n);
        }
        if n > 0 || was_empty_before {
            self.last_write = Instant::now();
        }
        Ok(self.out.is_empty())
    }

    /// Data is pending and the socket has taken nothing for `limit`.
    pub fn write_stalled(&self, limit: std::time::Duration) -> bool {
        !self.out.is_empty() && self.last_write.elapsed() >= limit
    }

    /// Half-close our side once everything is written.
    pub fn shutdown_write(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}
