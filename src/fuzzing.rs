//! Fuzz entry points (security.md §13). Each function takes arbitrary bytes,
//! drives one parser the way the gateway does and asserts the target's
//! invariants; a panic is a finding. They are called by the cargo-fuzz
//! targets in `fuzz/` and, on stable, by `tests/fuzz_corpus.rs` over the
//! committed seeds and every past crash (`fuzz/regressions/`).
//!
//! Must not: do I/O, sleep, or keep state between calls.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde_json::{Value, json};

use crate::adapters::{Action, Adapter, ExitInfo, LaunchSpec, Out, PermissionReply};
use crate::child::lines::{Item, LineSplitter};
use crate::net::http::{Head, HeadLimits, error_response, parse_head};
use crate::protocol::{ClientEvent, ClientFrame, ControlAction, DecodeLimits, Mode, VERSION, decode};
use crate::security::ssrf::{self, Host, Resolver, SsrfError, SsrfPolicy};
use crate::ws::handshake::{UpgradePolicy, accept_response, check_upgrade, refusal_headers};

/// A fuzz entry function.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus test.
pub const TARGETS: &[(&str, Target)] = &[
    ("aep_decode", aep_decode),
    ("http_head", http_head),
    ("ws_handshake", ws_handshake),
    ("claude_line", claude_line),
    ("line_splitter", line_splitter),
    ("ssrf_url", ssrf_url),
];

/// One WebSocket text message through `protocol::decode`. Accepted frames
/// respect the limits, and re-encoding one decodes to the same value.
pub fn aep_decode(data: &[u8]) {
    if std::str::from_utf8(data).is_err() {
        return; // the WS layer only hands over valid UTF-8 text
    }
    let limits = DecodeLimits::default();
    let Ok(frame) = decode(data, &limits) else { return };
    assert!(!crate::protocol::strict_json::depth_exceeds(data, limits.max_json_depth));
    assert!(frame.id.as_ref().is_none_or(|id| id.len() <= limits.max_id_bytes));
    match &frame.event {
        ClientEvent::Input { content, .. } => assert!(content.len() <= limits.max_input_bytes),
        ClientEvent::PermissionResponse { id, reason, .. } => {
            assert!(!id.is_empty() && id.len() <= limits.max_id_bytes);
            assert!(reason.as_ref().is_none_or(|r| r.len() <= limits.max_reason_bytes));
        }
        ClientEvent::Control { reason, .. } => {
            assert!(reason.as_ref().is_none_or(|r| r.len() <= limits.max_reason_bytes))
        }
        _ => {}
    }
    if let Some(v) = reencode(&frame) {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        assert_eq!(decode(&bytes, &limits).as_ref(), Ok(&frame), "re-encoded frame decodes differently");
    }
}

/// A client frame as a client would send it (`None` for types whose value
/// the decoder truncates).
fn reencode(f: &ClientFrame) -> Option<Value> {
    let (ty, data) = match &f.event {
        ClientEvent::Input { content, metadata } => ("input", json!({"content": content, "metadata": metadata})),
        ClientEvent::PermissionResponse { id, allowed, reason, remember } => {
            ("permission_response", json!({"id": id, "allowed": allowed, "reason": reason, "remember": remember}))
        }
        ClientEvent::Control { action, reason } => {
            let action = match action {
                ControlAction::Interrupt => "interrupt",
                ControlAction::Terminate => "terminate",
                ControlAction::Gc => "gc",
                ControlAction::Reset => "reset",
                ControlAction::Delete => "delete",
                ControlAction::Unknown(_) => return None,
            };
            ("control", json!({"action": action, "reason": reason}))
        }
        ClientEvent::Ping => ("ping", json!({})),
        ClientEvent::Init(r) => (
            "init",
            json!({
                "worker_type": r.worker_type,
                "session_id": r.session_id,
                "last_seq": r.last_seq,
                "mode": r.mode.map(|m| if m == Mode::Drive { "drive" } else { "observe" }),
                "auth": r.auth_token.as_ref().map(|t| json!({"token": t})),
                "config": r.config,
                "trace_parent": r.trace_parent,
                "trace_state": r.trace_state,
            }),
        ),
        ClientEvent::Extension(_) | ClientEvent::Unknown(_) => return None,
    };
    Some(json!({"version": VERSION, "id": f.id, "event": {"type": ty, "data": data}}))
}

/// Bytes read so far on a listener through `net::http::parse_head`.
pub fn http_head(data: &[u8]) {
    let limits = HeadLimits::default();
    match parse_head(data, &limits) {
        Head::Complete(req, len) => {
            assert!(len <= data.len());
            assert!(len <= limits.max_request_line + limits.max_header_bytes);
            assert!(req.headers.len() <= limits.max_headers);
            for (name, value) in &req.headers {
                assert!(!name.bytes().any(|b| b == b'\r' || b == b'\n' || b == b':'));
                assert!(!value.iter().any(|b| *b == b'\r' || *b == b'\n'));
            }
            // the head alone (without what followed it) parses the same
            assert_eq!(parse_head(&data[..len], &limits), Head::Complete(req, len));
        }
        Head::Partial => assert!(data.len() <= limits.max_request_line + limits.max_header_bytes),
        Head::Reject(status) => assert!(matches!(status, 400 | 414 | 431), "status {status}"),
    }
}

/// An upgrade request through `parse_head` and `check_upgrade` under a
/// strict and a permissive policy; both possible responses stay well formed.
pub fn ws_handshake(data: &[u8]) {
    let Head::Complete(req, _) = parse_head(data, &HeadLimits::default()) else { return };
    let policies = [
        UpgradePolicy::default(),
        UpgradePolicy { allowed_origins: vec!["https://app.example".into()], require_loopback_host: true },
        UpgradePolicy { allowed_origins: vec!["*".into()], require_loopback_host: false },
    ];
    for policy in &policies {
        let response = match check_upgrade(&req, policy) {
            Ok(accept) => {
                assert_eq!(req.method, "GET");
                assert_eq!(accept.len(), 28);
                assert!(matches!(req.header_one("host"), Ok(Some(_))));
                accept_response(&accept)
            }
            Err(r) => error_response(r.status, r.code, r.message, refusal_headers(&r)),
        };
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(matches!(resp.parse(&response), Ok(httparse::Status::Complete(_))), "malformed response");
        // nothing from the request reaches the response head
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
        let crlf = response[..head_end].windows(2).filter(|w| *w == b"\r\n").count();
        assert_eq!(crlf, resp.headers.len(), "a header line was injected");
    }
}

/// Worker stdout lines through the claude adapter. Bytes `0x01`, `0x02`,
/// `0x03` at the start of a line stand for the session's calls (input,
/// interrupt, answer the oldest pending permission) so turns interleave
/// with output. Invariants: every event encodes to JSON; a turn ends only
/// while one is open, at most once per input.
pub fn claude_line(data: &[u8]) {
    let mut a = crate::adapters::claude::ClaudeAdapter::new();
    let _ = a.launch(&LaunchSpec::default());
    let mut out = Out::default();
    let mut turn_open = false;
    let mut pending: Vec<String> = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        match line.first() {
            Some(1) if !turn_open => {
                turn_open = true;
                a.on_input(&String::from_utf8_lossy(&line[1..]), &mut out);
            }
            Some(2) if turn_open => a.on_interrupt(&mut out),
            Some(3) if !pending.is_empty() => {
                let id = pending.remove(0);
                let reply = PermissionReply { id, allow: line.len() % 2 == 0, reason: None, remember: false };
                a.on_permission(&reply, &mut out);
            }
            _ => a.on_line(line, &mut out),
        }
        check_actions(&mut out, &mut turn_open, &mut pending);
    }
    a.on_exit(&ExitInfo { code: Some(1), signal: None, signalled_by_gateway: false }, &mut out);
    check_actions(&mut out, &mut turn_open, &mut pending);
    if turn_open {
        a.on_turn_aborted(&mut out);
        check_actions(&mut out, &mut turn_open, &mut pending);
    }
}

fn check_actions(out: &mut Out, turn_open: &mut bool, pending: &mut Vec<String>) {
    for act in out.take() {
        match act {
            Action::Emit(ev) => {
                let frame = crate::protocol::encode(1, "s", 0, &ev);
                assert!(serde_json::from_slice::<Value>(&frame).is_ok(), "event does not encode to JSON");
            }
            Action::TurnEnd { .. } => {
                assert!(*turn_open, "TurnEnd without an open turn");
                *turn_open = false;
            }
            Action::Permission(p) => pending.push(p.id),
            Action::PermissionCancelled { id } => pending.retain(|p| *p != id),
            _ => {}
        }
    }
}

/// `LineSplitter` over arbitrary chunking against a reference split. The
/// first byte picks the line limit (1–64), the next ones the chunk sizes.
pub fn line_splitter(data: &[u8]) {
    let Some((&max, rest)) = data.split_first() else { return };
    let max = usize::from(max % 64) + 1;
    let Some((&seed, stream)) = rest.split_first() else { return };
    let mut expected: Vec<Option<Vec<u8>>> = Vec::new(); // None = oversize
    let mut parts = stream.split(|b| *b == b'\n').peekable();
    while let Some(p) = parts.next() {
        let last = parts.peek().is_none();
        if p.len() > max {
            expected.push(None);
        } else if !last || !p.is_empty() {
            expected.push(Some(p.strip_suffix(b"\r").unwrap_or(p).to_vec()));
        }
    }
    let mut got: Vec<Option<Vec<u8>>> = Vec::new();
    let mut s = LineSplitter::new(max);
    let mut sink = |it: Item<'_>| match it {
        Item::Line(l) => got.push(Some(l.to_vec())),
        Item::Oversize { len } => {
            assert!(len > max);
            got.push(None)
        }
    };
    let mut x = u32::from(seed) | 1;
    let mut i = 0;
    while i < stream.len() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x as usize % 9).min(stream.len() - i).max(1);
        s.feed(&stream[i..i + n], &mut sink);
        assert!(s.pending() <= max);
        i += n;
    }
    s.finish(&mut sink);
    assert_eq!(got, expected);
}

/// A URL (first line) and resolver answers (the rest: 1 tag byte + 16
/// address bytes each) through the SSRF check with no allow rules. Allowed
/// ⇒ every address is outside §8.2 and came from the answers; a host that
/// `inet_aton` reads as IPv4 is refused or means the same address.
pub fn ssrf_url(data: &[u8]) {
    let (url, answers) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(url) = std::str::from_utf8(url) else { return };
    let addrs: Vec<IpAddr> = answers
        .chunks_exact(17)
        .map(|c| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&c[1..]);
            if c[0] & 1 == 0 {
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            } else {
                IpAddr::V6(Ipv6Addr::from(b))
            }
        })
        .collect();
    struct Fixed(Vec<IpAddr>);
    impl Resolver for Fixed {
        fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
        }
    }
    let resolver = Fixed(addrs.clone());
    match ssrf::check_blocking(url, &SsrfPolicy::default(), &resolver) {
        Ok(c) => {
            for a in c.addrs() {
                assert!(ssrf::blocked_range(a.ip()).is_none(), "{a} allowed");
                assert_eq!(a.port(), c.url.port);
            }
            if let Host::Name(n) = &c.url.host {
                assert!(n.is_ascii() && !n.is_empty());
                assert!(c.addrs().iter().all(|a| addrs.iter().any(|r| ssrf::normalize(*r) == a.ip())));
            }
            assert!(!c.url.target.bytes().any(|b| b <= b' ' || b == 0x7f));
        }
        Err(SsrfError::OnEventLoop) => unreachable!("fuzzing runs on no reactor"),
        Err(_) => {}
    }
    // differential: what inet_aton makes of the host part
    if let Ok(u) = ssrf::parse_url(url) {
        let authority = url.split_once("://").map(|x| x.1).unwrap_or("");
        let host = authority.split(['/', '?', ':']).next().unwrap_or("");
        if let (Some(legacy), Host::Ip(IpAddr::V4(ours))) = (inet_aton(host), &u.host) {
            assert_eq!(legacy, *ours, "{host} differs from inet_aton");
        } else if let (Some(legacy), Host::Name(n)) = (inet_aton(host), &u.host) {
            panic!("{n} is a name for us but {legacy} for inet_aton");
        }
    }
}

/// A port of glibc's `inet_aton` (what resolvers apply to numeric hosts):
/// 1–4 parts, each read like `strtoul(…, 0)` (decimal, `0` octal, `0x`
/// hex), the last part filling the remaining bytes; trailing whitespace ends
/// the address. `tests/fuzz_corpus.rs` checks it against glibc itself.
pub fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let b = host.as_bytes();
    let mut parts: Vec<u64> = Vec::with_capacity(3);
    let mut i = 0;
    loop {
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let hex_prefix = b[i] == b'0'
            && matches!(b.get(i + 1), Some(b'x' | b'X'))
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let base: u64 = if hex_prefix {
            i += 2;
            16
        } else if b[i] == b'0' {
            8
        } else {
            10
        };
        let mut val: u64 = 0;
        while let Some(d) = b.get(i).and_then(|c| char::from(*c).to_digit(base as u32)) {
            val = val * base + u64::from(d);
            if val > u64::from(u32::MAX) {
                return None;
            }
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            if parts.len() > 2 || val > 0xff {
                return None;
            }
            parts.push(val);
            i += 1;
            continue;
        }
        if b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
            return None;
        }
        let max_last = [u64::from(u32::MAX), 0xff_ffff, 0xffff, 0xff][parts.len()];
        if val > max_last {
            return None;
        }
        let mut addr = val;
        for (k, p) in parts.iter().enumerate() {
            addr |= p << (24 - 8 * k);
        }
        return Some(Ipv4Addr::from(addr as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_aton_reads_legacy_forms() {
        let v = |s: &str| inet_aton(s).map(|a| a.to_string());
        for s in ["127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "127.0.1", "0x7f000001", "127.0.0.1 x"] {
            assert_eq!(v(s).as_deref(), Some("127.0.0.1"), "{s}");
        }
        assert_eq!(v("010.0.0.1").as_deref(), Some("8.0.0.1"));
        for s in ["08.0.0.1", "1.2.3.256", "1.2.3.4.5", "0x", "a.b", "", "1..2", "4294967296", "256.1"] {
            assert_eq!(v(s), None, "{s}");
        }
    }

    #[test]
    fn every_target_accepts_empty_input() {
        for (_, t) in TARGETS {
            t(b"");
        }
    }
}
