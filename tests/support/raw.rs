//! Raw-socket helpers for tests that must control bytes the WebSocket
//! library would refuse to produce or would answer on its own: hand-made HTTP
//! request heads, a manual upgrade, masked frames written byte by byte, and
//! a frame reader that never answers pings. Every read has a deadline.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A valid `Sec-WebSocket-Key` (the RFC 6455 example).
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// WebSocket opcodes.
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A parsed HTTP response (the server closes after each one).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// The head of a valid upgrade request for `/ws`, without the final blank
/// line, so a test can append or replace headers. `host` is the Host value.
pub fn upgrade_head(host: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
    )
}

/// A valid upgrade request where header `name` (if given) is replaced by
/// `value` (or removed when `value` is `None`), plus `extra` header lines.
pub fn upgrade_request(addr: SocketAddr, replace: Option<(&str, Option<&str>)>, extra: &[&str]) -> String {
    let mut out = String::new();
    for line in upgrade_head(&addr.to_string()).split("\r\n").filter(|l| !l.is_empty()) {
        match replace {
            Some((name, value)) if line.split(':').next().is_some_and(|n| n.eq_ignore_ascii_case(name)) => {
                if let Some(v) = value {
                    out.push_str(&format!("{name}: {v}\r\n"));
                }
            }
            _ => {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
    }
    for e in extra {
        out.push_str(e);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

/// Send `request` verbatim and read the whole response (until the server
/// closes, or the head and Content-Length body are complete).
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    // The server may answer (and close) before it has read everything.
    let _ = s.write_all(request);
    let raw = read_response(&mut s, Duration::from_secs(10));
    parse_response(&raw).unwrap_or_else(|| panic!("no HTTP response, got {:?}", String::from_utf8_lossy(&raw)))
}

/// `GET path` with a loopback Host.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_exchange(addr, req.as_bytes())
}

fn read_response(s: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(r) = parse_response(&buf) {
            let len = r.header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            if r.body.len() >= len {
                return buf;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return buf;
        }
        s.set_read_timeout(Some(left)).ok();
        match s.read(&mut chunk) {
            Ok(0) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return buf,
        }
    }
}

/// Parse a complete response head (and whatever body follows it).
pub fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let body = String::from_utf8_lossy(&raw[end + 4..]).into_owned();
    Some(HttpResponse { status, headers, body })
}

/// A WebSocket client on a bare `TcpStream`: nothing is sent unless the test
/// sends it (no automatic pong, no close reply).
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame read by [`RawWs`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// Close code of a close frame (1005 when it has no payload).
    pub fn close_code(&self) -> u16 {
        if self.payload.len() >= 2 { u16::from_be_bytes([self.payload[0], self.payload[1]]) } else { 1005 }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).expect("server frame is JSON")
    }
}

/// Why [`RawWs::read_frame`] returned no frame.
#[derive(Debug, PartialEq)]
pub enum RawEnd {
    Timeout,
    /// EOF or reset.
    Eof,
}

impl RawWs {
    /// Upgrade by hand; panics unless the answer is `101`.
    pub fn connect(addr: SocketAddr) -> RawWs {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        stream.write_all(upgrade_request(addr, None, &[]).as_bytes()).expect("send upgrade");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no upgrade response");
            stream.set_read_timeout(Some(left)).ok();
            match stream.read(&mut chunk) {
                Ok(0) => panic!("closed during upgrade: {:?}", String::from_utf8_lossy(&buf)),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
                Err(e) => panic!("upgrade read: {e}"),
            }
        };
        let resp = parse_response(&buf[..end]).expect("upgrade response");
        assert_eq!(resp.status, 101, "upgrade refused: {resp:?}");
        RawWs { stream, buf: buf[end..].to_vec() }
    }

    /// Write one final, masked frame.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let _ = self.stream.write_all(&masked_frame(opcode, payload));
    }

    /// Write raw bytes (frames made with [`encode_frame`]).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Read frames until a close frame; returns its code (pings and data skipped).
    pub fn expect_close(&mut self, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(f) if f.opcode == OP_CLOSE => return f.close_code(),
                Ok(_) => continue,
                Err(e) => panic!("expected a close frame, got {e:?}"),
            }
        }
    }

    /// Send a JSON text frame.
    pub fn send_json(&mut self, v: &Value) {
        self.send_frame(OP_TEXT, v.to_string().as_bytes());
    }

    /// Next frame within `timeout`; pings are returned like any frame.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<RawFrame, RawEnd> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RawEnd::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).ok();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RawEnd::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return Err(RawEnd::Timeout);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(RawEnd::Eof),
            }
        }
    }

    /// Next data frame parsed as JSON (skipping pings; panics on anything else).
    pub fn read_json(&mut self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(f) if f.opcode == OP_PING => continue,
                Ok(f) if f.opcode == OP_TEXT => return f.json(),
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }
}

/// Encode one final client frame with a fixed non-zero mask.
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(true, 0, opcode, true, payload)
}

/// Encode any frame, including ones RFC 6455 forbids a client to send
/// (unmasked, RSV bits set, reserved opcodes, fragmented control frames).
pub fn encode_frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | (rsv & 0x7) << 4 | (opcode & 0xf)];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Parse one unmasked server frame from the front of `buf`.
fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let data = buf.get(at..at + len)?;
    let payload = match mask {
        Some(m) => data.iter().enumerate().map(|(i, b)| b ^ m[i % 4]).collect(),
        None => data.to_vec(),
    };
    Some((RawFrame { opcode, payload }, at + len))
}

/// Percent-encode everything outside the URL unreserved set (query values).
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
