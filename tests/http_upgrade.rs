//! Transport rules against the real binary with hand-made requests: the
//! HTTP upgrade (security.md §9.4, §1.5: paths, methods, versions, keys,
//! Host and Origin), head limits, the handshake deadline and the WebSocket
//! heartbeat (aep-v1.md §1).
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use support::raw::*;
use support::*;

/// Pins every value the tests below rely on.
const YAML: &str = r#"gateway:
  handshake_timeout: "1s"
security:
  allowed_origins: ["http://localhost:3000", "https://app.example"]
limits:
  http_max_request_line_bytes: 8192
  http_max_header_bytes: 16384
  http_max_headers: 64
"#;

/// `Sec-WebSocket-Accept` for [`WS_KEY`] (RFC 6455 §1.3).
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn status(addr: SocketAddr, req: &str) -> HttpResponse {
    http_exchange(addr, req.as_bytes())
}

fn assert_json_error(r: &HttpResponse, code: u16) {
    assert_eq!(r.status, code, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert!(r.json()["error"]["code"].is_string(), "JSON error body: {r:?}");
}

#[test]
fn paths_methods_and_health() {
    let gw = Gateway::start_yaml(YAML);
    let a = gw.addr;
    let r = http_get(a, "/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok"}));

    assert_json_error(&http_get(a, "/nope"), 404);
    assert_json_error(&status(a, &upgrade_request(a, None, &[]).replacen("GET /ws", "GET /wss", 1)), 404);
    assert_json_error(&status(a, &upgrade_request(a, None, &[]).replacen("GET /ws", "POST /ws", 1)), 405);
    assert_json_error(&status(a, &upgrade_request(a, None, &[]).replacen("HTTP/1.1", "HTTP/1.0", 1)), 400);
    assert_json_error(&status(a, &upgrade_request(a, None, &["Transfer-Encoding: chunked"])), 400);
    assert_json_error(&status(a, &upgrade_request(a, None, &["Content-Length: 5"])), 400);
    assert_json_error(&status(a, &upgrade_request(a, Some(("Upgrade", None)), &[])), 400);
    assert_json_error(&status(a, &upgrade_request(a, Some(("Connection", None)), &[])), 400);
}

#[test]
fn websocket_version_and_key() {
    let gw = Gateway::start_yaml(YAML);
    let a = gw.addr;
    let r = status(a, &upgrade_request(a, Some(("Sec-WebSocket-Version", Some("8"))), &[]));
    assert_json_error(&r, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    for key in ["short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ==AA", "!!!!!!!!!!!!!!!!!!!!!!=="] {
        let r = status(a, &upgrade_request(a, Some(("Sec-WebSocket-Key", Some(key))), &[]));
        assert_json_error(&r, 400);
    }
    assert_json_error(&status(a, &upgrade_request(a, Some(("Sec-WebSocket-Key", None)), &[])), 400);
    let dup_key = format!("Sec-WebSocket-Key: {WS_KEY}");
    assert_json_error(&status(a, &upgrade_request(a, None, &[&dup_key])), 400);

    // The valid request: 101 with the RFC accept value, no extension even when offered.
    let r =
        status(a, &upgrade_request(a, None, &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]));
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.header("sec-websocket-accept"), Some(WS_ACCEPT));
    assert!(r.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert_eq!(r.header("sec-websocket-extensions"), None, "no permessage-deflate");
}

#[test]
fn host_and_origin_checks() {
    let gw = Gateway::start_yaml(YAML);
    let a = gw.addr;
    // DNS rebinding: mode none on loopback requires a loopback Host.
    for host in ["evil.example", "evil.example:8888", "10.0.0.1", "localhost.evil.example"] {
        let r = status(a, &upgrade_request(a, Some(("Host", Some(host))), &[]));
        assert_json_error(&r, 403);
    }
    for host in ["localhost", "LOCALHOST:1234", "127.0.0.1", "[::1]:8888"] {
        let r = status(a, &upgrade_request(a, Some(("Host", Some(host))), &[]));
        assert_eq!(r.status, 101, "Host {host}: {r:?}");
    }
    assert_json_error(&status(a, &upgrade_request(a, None, &["Host: localhost"])), 400);
    assert_json_error(&status(a, &upgrade_request(a, Some(("Host", None)), &[])), 400);

    for origin in ["https://evil.example", "http://localhost:3001", "null", "https://app.example.evil"] {
        let r = status(a, &upgrade_request(a, None, &[&format!("Origin: {origin}")]));
        assert_json_error(&r, 403);
    }
    for origin in ["http://localhost:3000", "HTTP://LOCALHOST:3000", "https://app.example:443"] {
        let r = status(a, &upgrade_request(a, None, &[&format!("Origin: {origin}")]));
        assert_eq!(r.status, 101, "Origin {origin}: {r:?}");
    }
    // A real client from a listed origin gets a working session.
    let mut c = Client::connect_with(&gw.url(), &[("Origin", "http://localhost:3000")]).expect("listed origin");
    c.init(json!({"worker_type": "claude_code"}));
    assert_eq!(Client::connect_with(&gw.url(), &[("Origin", "https://evil.example")]).err(), Some(403));
}

#[test]
fn head_limits() {
    let gw = Gateway::start_yaml(YAML);
    let a = gw.addr;
    let long_target = format!("GET /ws?pad={} HTTP/1.1", "a".repeat(8200));
    let req = upgrade_request(a, None, &[]).replacen("GET /ws HTTP/1.1", &long_target, 1);
    assert_json_error(&status(a, &req), 414);

    let many: Vec<String> = (0..65).map(|i| format!("X-Pad-{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_json_error(&status(a, &upgrade_request(a, None, &many)), 431);
    // 64 headers in all are fine (the upgrade itself uses 5).
    let ok: Vec<&str> = many[..59].to_vec();
    assert_eq!(status(a, &upgrade_request(a, None, &ok)).status, 101);

    let big = format!("X-Big: {}", "b".repeat(17 * 1024));
    assert_json_error(&status(a, &upgrade_request(a, None, &[&big])), 431);
}

/// A client that sends half a request head is dropped, without a
/// response, once `gateway.handshake_timeout` has passed since accept.
#[test]
fn slow_request_head_is_dropped() {
    let gw = Gateway::start_yaml(YAML);
    let mut s = TcpStream::connect(gw.addr).expect("connect");
    let t0 = Instant::now();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webso").expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = [0u8; 256];
    let n = match s.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("not dropped within 5 s: {e}"),
    };
    let took = t0.elapsed();
    assert_eq!(n, 0, "dropped without a response, got {:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "dropped after {took:?}");
    // The listener is unaffected.
    assert_eq!(http_get(gw.addr, "/health").status, 200);
}

const HEARTBEAT: &str = "gateway:\n  ping_interval: \"1s\"\n  missed_pongs: 2\n  init_timeout: \"10s\"\n";

/// A client that answers pings (and sends nothing else) stays connected.
#[test]
fn heartbeat_keeps_answering_client() {
    let gw = Gateway::start_yaml(HEARTBEAT);
    let mut c = gw.connect();
    c.init(json!({"worker_type": "claude_code"}));
    // recv answers the server's pings while it waits.
    c.expect_silence(Duration::from_millis(3500));
    c.send("ping", json!({}));
    assert_eq!(ev_type(&c.recv()), "pong");
}

/// A client that stops answering is closed 1001 after `missed_pongs`
/// intervals of silence (within one more interval of timer granularity).
#[test]
fn heartbeat_closes_silent_client() {
    let gw = Gateway::start_yaml(HEARTBEAT);
    let mut w = RawWs::connect(gw.addr);
    w.send_json(&json!({"version": "aep/v1", "event": {"type": "init", "data": {"worker_type": "claude_code"}}}));
    let t0 = Instant::now();
    assert_eq!(ev_type(&w.read_json(WAIT)), "init_ack");
    let mut pings = 0;
    let close = loop {
        match w.read_frame(Duration::from_secs(6)) {
            Ok(f) if f.opcode == OP_PING => pings += 1,
            Ok(f) if f.opcode == OP_CLOSE => break f,
            other => panic!("expected pings then a close, got {other:?}"),
        }
    };
    let took = t0.elapsed();
    assert_eq!(close.close_code(), 1001);
    assert!(pings >= 1, "the server pinged before giving up");
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(4), "closed after {took:?}");
}

/// RFC 6455 framing violations close 1002 (security.md §9.1); a message
/// whose fragments add up past max_message_bytes closes 1009 (§9.5);
/// legal fragmentation with interleaved control frames is reassembled.
#[test]
fn websocket_framing_rules() {
    let gw = Gateway::start_yaml("gateway:\n  max_message_bytes: \"1MiB\"\n");
    let init = json!({"version": "aep/v1", "event": {"type": "init", "data": {"worker_type": "claude_code"}}});
    let init = init.to_string().into_bytes();
    let violations: [(&str, Vec<u8>); 5] = [
        ("unmasked client frame", encode_frame(true, 0, OP_TEXT, false, &init)),
        ("RSV1 without an extension", encode_frame(true, 4, OP_TEXT, true, &init)),
        ("reserved opcode 0x3", encode_frame(true, 0, 0x3, true, b"{}")),
        ("fragmented ping", encode_frame(false, 0, OP_PING, true, b"x")),
        ("continuation without a start", encode_frame(true, 0, 0x0, true, &init)),
    ];
    for (what, bytes) in violations {
        let mut w = RawWs::connect(gw.addr);
        w.send_raw(&bytes);
        assert_eq!(w.expect_close(WAIT), 1002, "{what}");
    }

    // 1 MiB + 1 byte in 1000 fragments.
    let mut w = RawWs::connect(gw.addr);
    let total: usize = 1024 * 1024 + 1;
    let chunk = total.div_ceil(1000);
    let body = vec![b' '; total];
    for (i, part) in body.chunks(chunk).enumerate() {
        let op = if i == 0 { OP_TEXT } else { 0x0 };
        w.send_raw(&encode_frame((i + 1) * chunk >= total, 0, op, true, part));
    }
    assert_eq!(w.expect_close(WAIT), 1009, "fragments beyond max_message_bytes");

    // init in three fragments with a ping in between → init_ack (and the pong).
    let mut w = RawWs::connect(gw.addr);
    let (a, rest) = init.split_at(10);
    let (b, c) = rest.split_at(10);
    w.send_raw(&encode_frame(false, 0, OP_TEXT, true, a));
    w.send_raw(&encode_frame(true, 0, OP_PING, true, b"mid"));
    w.send_raw(&encode_frame(false, 0, 0x0, true, b));
    w.send_raw(&encode_frame(true, 0, 0x0, true, c));
    let mut got_pong = false;
    let ack = loop {
        let f = w.read_frame(WAIT).expect("frame");
        match f.opcode {
            OP_PONG => {
                assert_eq!(f.payload, b"mid");
                got_pong = true;
            }
            OP_TEXT => break f.json(),
            OP_PING => {}
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(ev_type(&ack), "init_ack", "{ack}");
    assert!(got_pong || w.read_frame(WAIT).is_ok_and(|f| f.opcode == OP_PONG), "the ping was answered");
}
