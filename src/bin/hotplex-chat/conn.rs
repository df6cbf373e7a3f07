//! The WebSocket connection: connect (no Origin header), envelopes, reads
//! with a short timeout so one loop can also serve stdin.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use crate::args::Args;

pub type Ws = WebSocket<TcpStream>;

/// How long connecting and the HTTP upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The poll interval of the main loop (socket read timeout).
pub const POLL: Duration = Duration::from_millis(40);

/// Open the WebSocket. Errors are complete sentences for the user.
pub fn connect(url: &str) -> Result<Ws, String> {
    let req = url.into_client_request().map_err(|e| format!("invalid URL '{url}': {e}"))?;
    match req.uri().scheme_str() {
        Some("ws") => {}
        Some("wss") => {
            return Err(format!(
                "'{url}': wss:// is not supported by hotplex-chat (no TLS); use ws:// or a local TLS-terminating proxy"
            ));
        }
        _ => return Err(format!("'{url}' is not a ws:// URL (example: ws://127.0.0.1:8888/ws)")),
    }
    let host = req.uri().host().ok_or_else(|| format!("'{url}' has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    let addrs: Vec<_> =
        (host.as_str(), port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?.collect();
    let mut last_err = format!("{host}:{port} resolved to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = format!("cannot connect to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(last_err)?;
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(|e| format!("socket setup failed: {e}"))?;
    stream.set_write_timeout(Some(Duration::from_secs(30))).map_err(|e| format!("socket setup failed: {e}"))?;
    let (ws, _resp) = tungstenite::client(req, stream).map_err(|e| match e {
        HandshakeError::Interrupted(_) => {
            format!("no WebSocket upgrade from {url} within {}s", CONNECT_TIMEOUT.as_secs())
        }
        HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).trim().to_string()).unwrap_or_default();
            let status = resp.status();
            let hint = match status.as_u16() {
                401 => " (the gateway wants credentials)",
                403 => " (origin or credential refused)",
                404 => " (is the path /ws?)",
                _ => "",
            };
            if body.is_empty() {
                format!("the gateway refused the WebSocket upgrade: HTTP {status}{hint}")
            } else {
                format!("the gateway refused the WebSocket upgrade: HTTP {status}{hint}: {body}")
            }
        }
        HandshakeError::Failure(e) => format!("WebSocket handshake with {url} failed: {e}"),
    })?;
    ws.get_ref().set_read_timeout(Some(POLL)).map_err(|e| format!("socket setup failed: {e}"))?;
    Ok(ws)
}

/// One client→server envelope.
pub fn envelope(ty: &str, data: Value) -> String {
    json!({"version": "aep/v1", "event": {"type": ty, "data": data}}).to_string()
}

/// `init.data` from the command line.
pub fn init_data(a: &Args) -> Value {
    let mut d = json!({
        "worker_type": a.worker,
        "mode": if a.observe { "observe" } else { "drive" },
    });
    if let Some(k) = &a.session {
        d["session_id"] = json!(k);
    }
    if let Some(n) = a.last_seq {
        d["last_seq"] = json!(n);
    }
    if a.model.is_some() || a.work_dir.is_some() {
        let mut c = json!({});
        if let Some(m) = &a.model {
            c["model"] = json!(m);
        }
        if let Some(w) = &a.work_dir {
            c["work_dir"] = json!(w);
        }
        d["config"] = c;
    }
    d
}

/// What one poll of the socket produced.
pub enum Recv {
    /// A text (or UTF-8 binary) frame.
    Frame(String),
    /// Nothing within the poll interval.
    Idle,
    /// The server sent a close frame: code and reason.
    Closed(u16, String),
    /// The connection ended without a close frame.
    Lost(String),
}

pub fn recv(ws: &mut Ws) -> Recv {
    loop {
        return match ws.read() {
            Ok(Message::Text(t)) => Recv::Frame(t.as_str().to_string()),
            Ok(Message::Binary(b)) => match String::from_utf8(b.to_vec()) {
                Ok(s) => Recv::Frame(s),
                Err(_) => continue,
            },
            Ok(Message::Close(f)) => match f {
                Some(f) => Recv::Closed(u16::from(f.code), f.reason.to_string()),
                None => Recv::Closed(1005, String::new()),
            },
            // pings are answered by tungstenite on the next read/flush
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Recv::Idle
            }
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                Recv::Lost("connection closed".into())
            }
            Err(e) => Recv::Lost(e.to_string()),
        };
    }
}

pub fn send(ws: &mut Ws, ty: &str, data: Value) -> Result<(), String> {
    ws.send(Message::text(envelope(ty, data))).map_err(|e| format!("connection lost while sending {ty}: {e}"))
}

/// Close normally and wait (briefly) for the server's close reply.
pub fn close(ws: &mut Ws) {
    let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }));
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let _ = ws.flush();
                continue;
            }
            Err(_) => break,
        }
    }
}
