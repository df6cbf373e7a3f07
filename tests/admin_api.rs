//! Black-box tests of the admin listener (operations.md §4.1–4.3, §2.6;
//! security.md §1.3, §1.6, §9.4): the real binary, real sockets, the mock
//! agent for sessions. Every wait has a deadline.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::admin::{ALIAS_ADMIN, ALIAS_WRITE, DEPLOY, OPS, READER, assert_error, call, call_raw, gateway_with};
use support::raw::{http_exchange, parse_response};
use support::{Client, Gateway, RecvError, WAIT, eventually, is_state, processes_of_session};

fn get(gw: &Gateway, path: &str, token: Option<&str>) -> support::raw::HttpResponse {
    call(gw.admin_addr, "GET", path, token, None)
}

/// A gateway with the admin tokens.
fn admin_gw(extra: &str) -> Gateway {
    gateway_with(extra, vec![])
}

/// A claude_code session driven by a new connection (client key `key`).
fn session(gw: &Gateway, key: &str) -> (Client, String) {
    let mut c = gw.connect();
    let ack = c.init_key(key);
    let sid = ack["event"]["data"]["session_id"].as_str().expect("session id").to_owned();
    (c, sid)
}

/// `/ready` reports ready (the first store heartbeat may still be in flight right after start).
fn wait_ready(gw: &Gateway) {
    assert!(eventually(WAIT, || get(gw, "/ready", None).status == 200), "not ready: {}", get(gw, "/ready", None).body);
}

#[test]
fn health_ready_metrics_and_common_headers() {
    let gw = admin_gw("");
    let h = get(&gw, "/health", None);
    assert_eq!(h.status, 200);
    assert_eq!(h.body, r#"{"status":"ok"}"#, "exactly the status, nothing else (security.md §1.6)");
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(h.header("cache-control"), Some("no-store"));
    assert_eq!(h.header("x-content-type-options"), Some("nosniff"));
    assert!(h.header("access-control-allow-origin").is_none(), "no CORS on the admin listener");
    wait_ready(&gw);
    let r = get(&gw, "/ready", None).json();
    assert_eq!(
        r,
        json!({"ready": true, "checks": {"startup": "ok", "store": "ok", "reactors": "ok", "draining": "ok"}})
    );
    // metrics needs scope read by default
    let m = get(&gw, "/metrics", None);
    assert_error(&m, 401, "missing_admin_token");
    assert_eq!(m.header("www-authenticate"), Some(r#"Bearer realm="hotplex-admin""#));
    let m = get(&gw, "/metrics", Some(READER));
    assert_eq!(m.status, 200);
    assert_eq!(m.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert!(m.body.trim_end().ends_with("# EOF"), "{}", m.body);
    assert_error(&get(&gw, "/health?verbose=1", None), 400, "invalid_parameter");
    assert_error(&call(gw.admin_addr, "POST", "/health", None, None), 405, "method_not_allowed");
}

#[test]
fn tokens_scopes_aliases_and_refusals() {
    let gw = admin_gw("admin:\n  max_body_bytes: 1KiB\n");
    let a = gw.admin_addr;
    let unknown = "/admin/sessions/00000000-0000-4000-8000-000000000000";
    // 401 shapes
    assert_error(&get(&gw, "/admin/stats", None), 401, "missing_admin_token");
    let bad = assert_error(
        &get(&gw, "/admin/stats", Some("not-a-real-token-0123456789abcdefghij")),
        401,
        "invalid_admin_token",
    );
    assert!(bad["error"].get("details").is_none());
    assert_error(&get(&gw, &format!("/metrics?access_token={OPS}"), None), 401, "missing_admin_token");
    let basic = call_raw(a, "GET", "/admin/stats", &[("Authorization", &format!("Basic {OPS}"))], b"");
    assert_error(&basic, 401, "invalid_admin_token");
    // scopes: read < write < admin
    assert_eq!(get(&gw, "/admin/stats", Some(READER)).status, 200);
    let e = assert_error(&call(a, "DELETE", unknown, Some(READER), None), 403, "permission_denied");
    assert_eq!(e["error"]["details"]["required_scope"], "write");
    assert_error(&call(a, "DELETE", unknown, Some(DEPLOY), None), 404, "session_not_found");
    let e = assert_error(&get(&gw, "/admin/audit", Some(DEPLOY)), 403, "permission_denied");
    assert_eq!(e["error"]["details"]["required_scope"], "admin");
    assert_error(&get(&gw, "/admin/sessions/not-a-uuid", Some(READER)), 400, "invalid_parameter");
    // aliases: session:kill → write, config:read → admin
    assert_error(&call(a, "DELETE", unknown, Some(ALIAS_WRITE), None), 404, "session_not_found");
    assert_error(&get(&gw, &format!("{unknown}/events"), Some(ALIAS_WRITE)), 403, "permission_denied");
    assert_eq!(get(&gw, "/admin/config", Some(ALIAS_ADMIN)).status, 200);
    // Origin and Host (security.md §1.5–1.6)
    let auth = format!("Bearer {OPS}");
    let evil = call_raw(a, "GET", "/admin/stats", &[("Authorization", &auth), ("Origin", "https://evil.example")], b"");
    assert_error(&evil, 403, "permission_denied");
    let req = format!(
        "GET /admin/stats HTTP/1.1\r\nHost: evil.example\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    assert_error(&http_exchange(a, req.as_bytes()), 403, "permission_denied");
    let req = format!("GET /health HTTP/1.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    assert_error(&http_exchange(a, req.as_bytes()), 400, "bad_request");
    // routes and methods
    assert_error(&get(&gw, "/nope", Some(OPS)), 404, "not_found");
    let r = call(a, "PUT", "/admin/drain", Some(OPS), None);
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST, DELETE"));
    // bodies: JSON objects with the right media type, bounded
    let text = call_raw(a, "POST", "/admin/drain", &[("Authorization", &auth), ("Content-Type", "text/plain")], b"{}");
    assert_error(&text, 415, "unsupported_media_type");
    let arr =
        call_raw(a, "POST", "/admin/drain", &[("Authorization", &auth), ("Content-Type", "application/json")], b"[1]");
    assert_error(&arr, 400, "bad_request");
    let big = format!(r#"{{"kind":"jti","value":"{}"}}"#, "v".repeat(2000));
    let r = call_raw(
        a,
        "POST",
        "/admin/revocations",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        big.as_bytes(),
    );
    assert_error(&r, 413, "payload_too_large");
    let chunked = format!(
        "POST /admin/drain HTTP/1.1\r\nHost: {a}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    assert_error(&http_exchange(a, chunked.as_bytes()), 400, "bad_request");
    assert_error(&get(&gw, "/admin/sessions?bogus=1", Some(READER)), 400, "invalid_parameter");
    // head limits (security.md §9.4)
    let long = format!("GET /health?{} HTTP/1.1\r\nHost: {a}\r\n\r\n", "x".repeat(9 * 1024));
    assert_eq!(http_exchange(a, long.as_bytes()).status, 414);
    let mut many = format!("GET /health HTTP/1.1\r\nHost: {a}\r\n");
    for i in 0..65 {
        many.push_str(&format!("X-H{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(http_exchange(a, many.as_bytes()).status, 431);
    let fat = format!("GET /health HTTP/1.1\r\nHost: {a}\r\nX-Big: {}\r\n\r\n", "y".repeat(17 * 1024));
    assert_eq!(http_exchange(a, fat.as_bytes()).status, 431);
    assert!(gw.stderr().lines().all(|l| !l.contains(OPS) && !l.contains(DEPLOY)), "a token reached the log");
}

#[test]
fn client_cidr_rate_limit_and_lockout() {
    // A trusted proxy on 127.0.0.1 lets the test pick client IPs with X-Forwarded-For.
    let yaml = format!(
        "{}gateway:\n  trusted_proxies: [127.0.0.1/32]\nadmin:\n  allowed_cidrs: [127.0.0.0/8]\n  rate_limit: {{requests_per_second: 1, burst: 5}}\n",
        support::sec::auth_yaml("[api_key]", 3)
    );
    let gw = gateway_with(&yaml, support::sec::api_key_env());
    let a = gw.admin_addr;
    let from = |ip: &str, path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
        let mut h = vec![("X-Forwarded-For", ip)];
        if token.is_some() {
            h.push(("Authorization", auth.as_str()));
        }
        call_raw(a, "GET", path, &h, b"")
    };
    assert_error(&from("10.1.2.3", "/health", None), 403, "ip_not_allowed");
    assert_eq!(from("127.0.0.5", "/health", None).status, 200);
    for _ in 0..5 {
        let r = from("127.0.0.5", "/admin/stats", Some(READER));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = from("127.0.0.5", "/admin/stats", Some(READER));
    assert_error(&r, 429, "rate_limit_exceeded");
    let secs: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=2).contains(&secs), "one token refills in a second: {secs}");
    assert_eq!(from("127.0.0.5", "/health", None).status, 200, "/health skips the rate limit");
    assert_eq!(from("127.0.0.6", "/admin/stats", Some(READER)).status, 200, "buckets are per client IP");
    // three refused tokens lock the client out: the right token is then not even looked at
    for _ in 0..3 {
        let wrong = from("127.0.0.7", "/admin/stats", Some("wrong-token-0123456789abcdefghijklmn"));
        assert_error(&wrong, 401, "invalid_admin_token");
    }
    let r = from("127.0.0.7", "/admin/stats", Some(READER));
    assert_error(&r, 429, "rate_limit_exceeded");
    let secs: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!(secs > 60, "the lockout (limits.auth_lockout), not the rate bucket: {secs}");
    assert_eq!(from("127.0.0.8", "/admin/stats", Some(READER)).status, 200, "other clients are unaffected");
}

/// Read one response from a keep-alive connection (head + Content-Length body).
fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> support::raw::HttpResponse {
    let deadline = Instant::now() + WAIT;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_response(&buf[..end + 4]).expect("response head");
            let len: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let resp = parse_response(&buf[..end + 4 + len]).expect("response");
                buf.drain(..end + 4 + len);
                return resp;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no complete response: {:?}", String::from_utf8_lossy(buf));
        s.set_read_timeout(Some(left)).ok();
        match s.read(&mut chunk) {
            Ok(0) => panic!("closed before a complete response"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(WAIT)).ok();
    let mut b = [0u8; 16];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn keep_alive_pipelining_and_request_cap() {
    let gw = admin_gw("");
    let a = gw.admin_addr;
    let mut s = TcpStream::connect(a).expect("connect");
    let mut buf = Vec::new();
    let one = format!("GET /health HTTP/1.1\r\nHost: {a}\r\n\r\n");
    // two requests in one write: answered in order on the same connection
    s.write_all(
        format!("{one}GET /admin/stats HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {READER}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let r1 = read_one(&mut s, &mut buf);
    assert_eq!((r1.status, r1.header("connection")), (200, Some("keep-alive")));
    let r2 = read_one(&mut s, &mut buf);
    assert_eq!(r2.status, 200);
    assert!(r2.json()["reactors"].is_array());
    // an error that does not break framing keeps the connection
    s.write_all(format!("GET /nope HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s, &mut buf).status, 404);
    // 100 requests per connection: the 100th answer closes
    for i in 4..=100 {
        s.write_all(one.as_bytes()).unwrap();
        let r = read_one(&mut s, &mut buf);
        assert_eq!(r.status, 200);
        let want = if i == 100 { "close" } else { "keep-alive" };
        assert_eq!(r.header("connection"), Some(want), "request {i}");
    }
    assert!(closed_by_peer(&mut s));
    // Connection: close is honoured
    let mut s = TcpStream::connect(a).expect("connect");
    s.write_all(format!("GET /health HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_one(&mut s, &mut buf).header("connection"), Some("close"));
    assert!(closed_by_peer(&mut s));
    // a framing error closes at once
    let mut s = TcpStream::connect(a).expect("connect");
    s.write_all(format!("POST /admin/drain HTTP/1.1\r\nHost: {a}\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_one(&mut s, &mut buf).status, 400);
    assert!(closed_by_peer(&mut s));
}

#[test]
fn admin_max_connections_accepts_and_closes() {
    let gw = admin_gw("admin:\n  max_connections: 2\n");
    let a = gw.admin_addr;
    let _held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(a).expect("connect")).collect();
    // the held ones are accepted before the third arrives
    assert!(eventually(WAIT, || {
        let mut s = TcpStream::connect(a).expect("connect");
        let _ = s.write_all(format!("GET /health HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes());
        closed_by_peer(&mut s)
    }));
    drop(_held);
    // the server notices the held connections' FIN on its own time: probe without panicking
    assert!(eventually(WAIT, || {
        let Ok(mut s) = TcpStream::connect(a) else { return false };
        let _ = s.write_all(format!("GET /health HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes());
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        parse_response(&raw).is_some_and(|r| r.status == 200)
    }));
}

#[test]
fn sessions_listing_live_part_and_pagination() {
    let gw = admin_gw("");
    let (mut c1, s1) = session(&gw, "list-a");
    let (_c2, s2) = session(&gw, "list-b");
    let (mut c3, s3) = session(&gw, "list-c");
    c3.turn("hello");
    c1.send("control", json!({"action": "terminate"}));
    c1.until(WAIT, |v| is_state(v, "terminated"));
    let list = |q: &str| {
        let r = get(&gw, &format!("/admin/sessions{q}"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let ids = |v: &Value| -> Vec<String> {
        v["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
    };
    assert!(eventually(WAIT, || list("")["total"] == 3));
    let all = list("");
    assert_eq!((all["limit"].as_u64(), all["offset"].as_u64()), (Some(50), Some(0)));
    let updated: Vec<u64> =
        all["sessions"].as_array().unwrap().iter().map(|s| s["updated_at"].as_u64().unwrap()).collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "order updated_at DESC: {updated:?}");
    assert!(ids(&all).contains(&s1) && ids(&all).contains(&s2) && ids(&all).contains(&s3));
    let first = list("?limit=2");
    let rest = list("?limit=2&offset=2");
    assert_eq!((first["total"].as_u64(), rest["total"].as_u64()), (Some(3), Some(3)));
    let mut paged = ids(&first);
    paged.extend(ids(&rest));
    assert_eq!(paged, ids(&all), "pages partition the listing");
    let past = list("?offset=10");
    assert_eq!((past["sessions"].as_array().unwrap().len(), past["total"].as_u64()), (0, Some(3)));
    assert_eq!(ids(&list("?state=terminated")), vec![s1.clone()]);
    assert_eq!(list("?state=idle,running")["total"], 2);
    assert_eq!(list("?owner=anonymous&worker_type=claude_code")["total"], 3);
    assert_eq!(list("?owner=nobody")["total"], 0);
    for bad in ["?limit=0", "?limit=501", "?offset=-1", "?state=sleeping", "?worker_type=x", "?limit=1&limit=2", "?x=1"]
    {
        assert_error(&get(&gw, &format!("/admin/sessions{bad}"), Some(READER)), 400, "invalid_parameter");
    }
    // one session: the store row plus the home reactor's live part
    let one = get(&gw, &format!("/admin/sessions/{s3}"), Some(READER)).json();
    assert_eq!(one["id"], s3.as_str());
    assert_eq!(
        (one["owner"].as_str(), one["state"].as_str(), one["turns"].as_u64()),
        (Some("anonymous"), Some("idle"), Some(1))
    );
    assert_eq!(one["client_session_id"], "list-c");
    assert!(one["work_dir"].as_str().is_some_and(|w| w.starts_with('/')));
    assert_eq!(one["owner_hash"].as_str().map(str::len), Some(16));
    let live = &one["live"];
    assert_eq!((live["drivers"].as_u64(), live["observers"].as_u64()), (Some(1), Some(0)));
    assert_eq!(live["turn_running"], false);
    assert!(live["worker_pid"].as_i64().is_some_and(|p| p > 0) && live["reactor"].is_u64(), "{live}");
    assert!(one["stats"]["turn_ms"].is_u64() && one["config"].is_object());
    let gone = get(&gw, &format!("/admin/sessions/{s1}"), Some(READER)).json();
    assert_eq!((gone["state"].as_str(), gone["state_reason"].as_str()), (Some("terminated"), Some("client_terminate")));
    assert!(gone["live"].is_null());
    assert_error(
        &get(&gw, "/admin/sessions/00000000-0000-4000-8000-000000000000", Some(READER)),
        404,
        "session_not_found",
    );
}

fn events(gw: &Gateway, sid: &str, q: &str) -> Value {
    let r = get(gw, &format!("/admin/sessions/{sid}/events{q}"), Some(OPS));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn events_pages_match_what_the_client_saw() {
    let gw = admin_gw("");
    let (mut c, sid) = session(&gw, "pages");
    let mut seen = Vec::new();
    for input in ["stream 12", "tool", "say done"] {
        seen.extend(c.turn(input));
    }
    let logged: Vec<&Value> = seen.iter().filter(|f| f["seq"].as_u64().unwrap_or(0) > 0).collect();
    let top = logged.last().and_then(|f| f["seq"].as_u64()).expect("session events");
    assert_error(&get(&gw, &format!("/admin/sessions/{sid}/events"), Some(READER)), 403, "permission_denied");
    let mut after = 0;
    let mut got: Vec<Value> = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    loop {
        let p = events(&gw, &sid, &format!("?after_seq={after}&limit=4"));
        assert_eq!(p["session_id"], sid.as_str());
        assert_eq!(p["truncated"], false);
        assert_eq!(p["oldest_seq"], 1);
        let evs = p["events"].as_array().unwrap();
        assert!(evs.len() <= 4 && !evs.is_empty());
        let last = evs.last().unwrap()["seq"].as_u64().unwrap();
        assert_eq!(p["next_after_seq"].as_u64(), Some(last));
        for t in p["turns"].as_array().unwrap() {
            let s = t["start_seq"].as_u64().unwrap();
            assert!(s > after && s <= last, "turn {t} outside ({after}, {last}]");
            turns.push(t.clone());
        }
        got.extend(evs.iter().cloned());
        after = last;
        if p["has_more"] == false {
            assert_eq!(p["last_seq"].as_u64(), Some(top));
            break;
        }
    }
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), top);
    // every event is an aep envelope as replay sends it; non-delta events equal what the client got
    for e in &got {
        assert_eq!(e["version"], "aep/v1");
        assert!(e["id"].as_str().is_some_and(|i| i.starts_with("evt_")));
        assert_eq!(e["session_id"], sid.as_str());
        if e["event"]["type"] != "message.delta" {
            let mine = logged.iter().find(|f| f["seq"] == e["seq"]).expect("the client saw this seq");
            assert_eq!((&mine["event"], &mine["timestamp"]), (&e["event"], &e["timestamp"]));
        }
    }
    let delta_text = |v: &[&Value]| -> String {
        v.iter()
            .filter(|f| f["event"]["type"] == "message.delta")
            .filter_map(|f| f["event"]["data"]["content"].as_str())
            .collect()
    };
    assert_eq!(delta_text(&got.iter().collect::<Vec<_>>()), delta_text(&logged));
    let inputs: Vec<&str> = turns.iter().map(|t| t["input"]["content"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["stream 12", "tool", "say done"]);
    assert!(turns.iter().all(|t| t["end_seq"].as_u64() > t["start_seq"].as_u64() && t["started_at"].is_u64()));
    let past = events(&gw, &sid, &format!("?after_seq={}", top + 10));
    assert_eq!((past["events"].as_array().unwrap().len(), &past["has_more"]), (0, &json!(false)));
    for bad in ["?limit=0", "?limit=1001", "?after_seq=x"] {
        assert_error(&get(&gw, &format!("/admin/sessions/{sid}/events{bad}"), Some(OPS)), 400, "invalid_parameter");
    }
}

#[test]
fn events_page_reports_a_trimmed_range() {
    let gw = admin_gw("store:\n  replay_retention: 1s\n  replay_retention_events: 100\nsessions:\n  gc_interval: 1s\n");
    let (mut c, sid) = session(&gw, "trim");
    for _ in 0..15 {
        c.turn("tool");
    }
    // the writer trims events older than 1 s beyond the last 100 at its next job run
    let mut page = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            page = events(&gw, &sid, "?after_seq=0&limit=1000");
            page["truncated"] == true
        }),
        "never trimmed: {page}"
    );
    let oldest = page["oldest_seq"].as_u64().expect("oldest_seq");
    assert!(oldest > 1);
    assert!(page["events"][0]["seq"].as_u64().unwrap() >= oldest);
    let from_oldest = events(&gw, &sid, &format!("?after_seq={}", oldest - 1));
    assert_eq!(from_oldest["truncated"], false);
}

fn ev<'a>(v: &'a Value, ty: &str) -> Option<&'a Value> {
    (v["event"]["type"] == ty).then_some(&v["event"]["data"])
}

#[test]
fn terminate_a_running_session_for_its_clients() {
    let gw = admin_gw("");
    let (mut c, sid) = session(&gw, "term");
    c.send("input", json!({"content": "hang"}));
    c.until(WAIT, |v| is_state(v, "running"));
    assert!(eventually(WAIT, || !processes_of_session(&sid).is_empty()));
    let path = format!("/admin/sessions/{sid}/terminate");
    assert_error(&call(gw.admin_addr, "POST", &path, Some(READER), None), 403, "permission_denied");
    let bad = json!({"reason": "x".repeat(300)});
    assert_error(&call(gw.admin_addr, "POST", &path, Some(DEPLOY), Some(&bad)), 400, "invalid_parameter");
    let r = call(gw.admin_addr, "POST", &path, Some(DEPLOY), Some(&json!({"reason": "maintenance"})));
    assert_eq!(r.status, 200, "{}", r.body);
    let s = r.json();
    assert_eq!((s["state"].as_str(), s["state_reason"].as_str()), (Some("terminated"), Some("admin_terminate")));
    assert!(s["live"].is_null() && s["terminated_at"].is_u64());
    // answered after the reap: the worker is gone already
    assert!(processes_of_session(&sid).is_empty(), "worker still alive after the answer");
    // the attached client: error + done for the turn, state{terminated}, session_invalid; still connected
    let frames = c.until(WAIT, |v| ev(v, "control").is_some_and(|d| d["action"] == "session_invalid"));
    let kinds: Vec<&str> = frames.iter().map(|f| f["event"]["type"].as_str().unwrap_or("")).collect();
    let err = frames.iter().find_map(|f| ev(f, "error")).expect("error frame");
    assert_eq!((err["code"].as_str(), &err["details"]), (Some("SESSION_TERMINATED"), &json!({"by": "admin"})));
    let done = frames.iter().find_map(|f| ev(f, "done")).expect("done frame");
    assert_eq!(done["success"], false);
    let term = frames.iter().find(|f| is_state(f, "terminated")).expect("state{terminated}");
    assert_eq!(term["event"]["data"]["message"], "admin_terminate");
    let inv = ev(frames.last().unwrap(), "control").unwrap();
    assert_eq!((inv["reason"].as_str(), &inv["recoverable"]), (Some("admin_killed"), &json!(true)));
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("error") < pos("done") && pos("done") < kinds.iter().rposition(|x| *x == "state").unwrap());
    assert!(frames.iter().all(|f| f["seq"].as_u64().unwrap_or(0) > 0), "all are session events: {frames:#?}");
    c.send("ping", json!({}));
    assert_eq!(c.expect("pong")["event"]["data"]["state"], "terminated", "the connection stays open");
    // idempotent
    let again = call(gw.admin_addr, "POST", &path, Some(DEPLOY), None);
    assert_eq!((again.status, again.json()["state"].as_str()), (200, Some("terminated")));
    c.expect_silence(Duration::from_millis(300));
    // resumable
    let mut c2 = gw.connect();
    let ack = c2.init(json!({"worker_type": "claude_code", "session_id": sid}));
    assert_eq!(ack["event"]["data"]["resumed"], true);
    assert_error(
        &call(
            gw.admin_addr,
            "POST",
            "/admin/sessions/00000000-0000-4000-8000-000000000000/terminate",
            Some(DEPLOY),
            None,
        ),
        404,
        "session_not_found",
    );
}

#[test]
fn delete_a_live_session_closes_its_clients() {
    let gw = admin_gw("");
    let (mut c, sid) = session(&gw, "del");
    c.turn("hello");
    let mut obs = gw.connect();
    obs.init(json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe"}));
    let path = format!("/admin/sessions/{sid}");
    let r = call(gw.admin_addr, "DELETE", &path, Some(DEPLOY), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"id": sid, "state": "deleted"}));
    assert!(processes_of_session(&sid).is_empty(), "worker still alive after the answer");
    for client in [&mut c, &mut obs] {
        let mut frames = Vec::new();
        let code = loop {
            match client.recv_within(WAIT) {
                Ok(v) => frames.push(v),
                Err(RecvError::Closed(code, _)) => break code,
                Err(e) => panic!("{e:?}; {frames:#?}"),
            }
        };
        assert_eq!(code, 1008);
        let kinds: Vec<&str> = frames.iter().map(|f| f["event"]["type"].as_str().unwrap_or("")).collect();
        assert_eq!(kinds, ["state", "control", "error"], "{frames:#?}");
        assert_eq!(frames[0]["event"]["data"]["state"], "deleted");
        let inv = &frames[1]["event"]["data"];
        assert_eq!(
            (inv["action"].as_str(), inv["reason"].as_str(), &inv["recoverable"]),
            (Some("session_invalid"), Some("admin_killed"), &json!(false))
        );
        assert_eq!(frames[2]["event"]["data"]["code"], "SESSION_INVALIDATED");
    }
    // the tombstone is visible to the admin; the id is gone for clients
    let t = get(&gw, &path, Some(READER)).json();
    assert_eq!(t["state"], "deleted");
    assert_error(&call(gw.admin_addr, "DELETE", &path, Some(DEPLOY), None), 404, "session_not_found");
    assert_error(&get(&gw, &format!("{path}/events"), Some(OPS)), 404, "session_not_found");
    let mut again = gw.connect();
    again.send("init", json!({"worker_type": "claude_code", "session_id": sid}));
    again.expect_error("SESSION_NOT_FOUND");
}

#[test]
fn delete_a_session_that_is_not_in_memory() {
    let gw = admin_gw("");
    let (c, sid) = session(&gw, "cold");
    drop(c);
    // restart on the same data: the session is only in the store now
    let opts = support::Options {
        yaml: support::admin::tokens_yaml(),
        env: support::admin::tokens_env(),
        ..support::Options::default()
    };
    let (_, dir) = gw.stop(WAIT);
    let gw = Gateway::start_in(dir, opts);
    let path = format!("/admin/sessions/{sid}");
    assert_eq!(get(&gw, &path, Some(READER)).json()["state"], "terminated");
    let r = call(gw.admin_addr, "DELETE", &path, Some(DEPLOY), None);
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("deleted")), "{}", r.body);
    assert_eq!(get(&gw, &path, Some(READER)).json()["state"], "deleted");
    let mut again = gw.connect();
    again.send("init", json!({"worker_type": "claude_code", "session_id": sid}));
    again.expect_error("SESSION_NOT_FOUND");
}

#[test]
fn drain_notifies_refuses_upgrades_and_ends() {
    let gw = admin_gw("gateway:\n  reconnect_deadline: 2s\n");
    wait_ready(&gw);
    let (mut c, sid) = session(&gw, "drain");
    let (mut early, _) = session(&gw, "drain-2");
    let r = call(
        gw.admin_addr,
        "POST",
        "/admin/drain",
        Some(DEPLOY),
        Some(&json!({"reason": "version_upgrade", "delay_ms": 1234})),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json(), json!({"draining": true, "connections_notified": 2}));
    let n = c.expect("control");
    assert_eq!(n["seq"], 0, "control.reconnect is connection-local");
    let d = &n["event"]["data"];
    assert_eq!(
        (d["action"].as_str(), d["reason"].as_str(), d["delay_ms"].as_u64(), &d["resume_session"]),
        (Some("reconnect"), Some("version_upgrade"), Some(1234), &json!(true))
    );
    early.expect("control");
    // readiness drops; new upgrades are refused with Retry-After; nothing stops
    let ready = get(&gw, "/ready", None);
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["checks"]["draining"], "draining");
    assert_eq!(get(&gw, "/admin/stats", Some(READER)).json()["draining"], true);
    let refused = support::raw::http_exchange(gw.addr, support::raw::upgrade_request(gw.addr, None, &[]).as_bytes());
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert!(Client::connect_with(&gw.url(), &[]).is_err_and(|s| s == 503));
    let again = call(gw.admin_addr, "POST", "/admin/drain", Some(DEPLOY), None);
    assert_eq!((again.status, again.json()), (202, json!({"draining": true, "connections_notified": 0})));
    // a connection ignoring the notice is closed at reconnect_deadline
    early.send("ping", json!({}));
    early.expect("pong");
    let frames = early.until(Duration::from_secs(6), |v| v["event"]["type"] == "error");
    assert_eq!(frames.last().unwrap()["event"]["data"]["code"], "RECONNECT_REQUIRED");
    assert_eq!(early.expect_close().0, 1001);
    c.expect_close();
    assert!(!processes_of_session(&sid).is_empty(), "a drain stops no worker");
    // end the drain: upgrades work, the session is still live and resumable
    let end = call(gw.admin_addr, "DELETE", "/admin/drain", Some(DEPLOY), None);
    assert_eq!((end.status, end.json()), (200, json!({"draining": false})));
    assert_eq!(call(gw.admin_addr, "DELETE", "/admin/drain", Some(DEPLOY), None).status, 200, "idempotent");
    wait_ready(&gw);
    let mut back = gw.connect();
    let ack = back.init(json!({"worker_type": "claude_code", "session_id": sid}));
    assert_eq!(
        (ack["event"]["data"]["resumed"].as_bool(), ack["event"]["data"]["state"].as_str()),
        (Some(true), Some("idle"))
    );
    back.turn("still here");
}

#[test]
fn shutdown_keeps_health_and_refuses_a_drain() {
    let mut gw = admin_gw("gateway:\n  drain_timeout: 3s\n  shutdown_timeout: 20s\n");
    let (mut c, _sid) = session(&gw, "stopping");
    c.send("input", json!({"content": "hang"}));
    c.until(WAIT, |v| is_state(v, "running"));
    gw.signal(libc::SIGTERM);
    c.expect("control");
    assert!(eventually(WAIT, || get(&gw, "/health", None).json()["status"] == "stopping"));
    let ready = get(&gw, "/ready", None);
    assert_eq!((ready.status, ready.json()["ready"].as_bool()), (503, Some(false)));
    assert_error(&call(gw.admin_addr, "POST", "/admin/drain", Some(DEPLOY), None), 409, "shutting_down");
    assert_eq!(get(&gw, "/metrics", Some(READER)).status, 200);
    assert!(gw.child_wait(Duration::from_secs(20)).is_some_and(|s| s.success()));
}

/// The `jti` claim of a compact JWT.
fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = hotplex::security::b64::decode_url(payload.as_bytes()).expect("base64url");
    let v: Value = serde_json::from_slice(&bytes).expect("claims");
    v["jti"].as_str().expect("jti").to_owned()
}

fn jwt_gateway_in(dir: Option<support::TempDir>) -> Gateway {
    let opts = support::Options {
        yaml: format!("{}{}", support::admin::tokens_yaml(), support::sec::auth_yaml("[jwt]", 100)),
        env: support::admin::tokens_env(),
        ..support::Options::default()
    };
    match dir {
        Some(d) => Gateway::start_in(d, opts),
        None => Gateway::start_with(opts),
    }
}

/// Fixture config C4 (tests/fixtures/jwt/README.md): C1 plus a revocation of
/// jti `revoked-jti-0001`. `revoked_jti.jwt` is accepted under C1 and, once
/// the revocation is posted, refused at the upgrade (401) and in
/// `init.auth.token` (UNAUTHORIZED) through the real WebSocket path.
#[test]
fn fixture_c4_revoked_jti_vector() {
    let gw = jwt_gateway_in(None);
    let token = support::sec::fixture_token("tokens/revoked_jti.jwt");
    assert_eq!(jti_of(&token), "revoked-jti-0001");
    let mut c = support::sec::connect_bearer(&gw, &token).expect("C1: accepted");
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "c4"}));
    assert_eq!(
        ack["event"]["data"]["session_id"].as_str(),
        Some(support::sec::session_id("alice", "claude_code", "c4").as_str()),
        "C1: owner alice"
    );
    drop(c);
    let r = call(
        gw.admin_addr,
        "POST",
        "/admin/revocations",
        Some(OPS),
        Some(&json!({"kind": "jti", "value": "revoked-jti-0001"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(support::sec::connect_bearer(&gw, &token).err(), Some(401), "C4: refused at the upgrade");
    let mut c = Client::connect(&gw.url());
    support::sec::init_refused(&mut c, support::sec::init_data("c4", Some(&token), "drive"), "UNAUTHORIZED");
}

#[test]
fn revocation_closes_live_connections_and_persists() {
    let gw = jwt_gateway_in(None);
    let token = support::sec::mint("alice", &[]);
    let other = support::sec::mint("alice", &[]);
    let jti = jti_of(&token);
    let mut c = support::sec::connect_bearer(&gw, &token).expect("upgrade");
    let ack = c.init(json!({"worker_type": "claude_code", "session_id": "rev"}));
    let sid = ack["event"]["data"]["session_id"].as_str().unwrap().to_owned();
    let mut c2 = support::sec::connect_bearer(&gw, &other).expect("upgrade");
    c2.init(json!({"worker_type": "claude_code", "session_id": "rev-2"}));
    let a = gw.admin_addr;
    for bad in [
        json!({"kind": "email", "value": "x"}),
        json!({"kind": "jti"}),
        json!({"kind": "jti", "value": ""}),
        json!({"kind": "jti", "value": "x", "until_ms": "soon"}),
        json!({"kind": "jti", "value": "x", "extra": 1}),
    ] {
        assert_error(&call(a, "POST", "/admin/revocations", Some(OPS), Some(&bad)), 400, "invalid_parameter");
    }
    assert_error(
        &call(a, "POST", "/admin/revocations", Some(DEPLOY), Some(&json!({"kind": "jti", "value": jti}))),
        403,
        "permission_denied",
    );
    let t0 = Instant::now();
    let r = call(a, "POST", "/admin/revocations", Some(OPS), Some(&json!({"kind": "jti", "value": jti})));
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r.json();
    assert_eq!((body["connections_closed"].as_u64(), body["sessions_terminated"].as_u64()), (Some(1), Some(0)));
    let rev = &body["revocation"];
    assert_eq!(
        (rev["kind"].as_str(), rev["value"].as_str(), rev["actor"].as_str()),
        (Some("jti"), Some(jti.as_str()), Some("ops"))
    );
    assert!(rev["until_ms"].is_null() && rev["created_ms"].is_u64());
    // that connection: SESSION_INVALIDATED + 1008 within 1 s; the session keeps running
    let e = c.recv_within(Duration::from_secs(1)).expect("error frame");
    assert_eq!(
        (e["event"]["type"].as_str(), e["event"]["data"]["code"].as_str()),
        (Some("error"), Some("SESSION_INVALIDATED"))
    );
    assert_eq!(e["event"]["data"]["message"], "credential revoked");
    assert_eq!(c.expect_close().0, 1008);
    assert!(t0.elapsed() < Duration::from_secs(2));
    c2.send("ping", json!({}));
    c2.expect("pong");
    assert_eq!(get(&gw, &format!("/admin/sessions/{sid}"), Some(READER)).json()["state"], "idle");
    // new authentications with it fail
    assert_eq!(support::sec::connect_bearer(&gw, &token).err(), Some(401));
    let list = get(&gw, "/admin/revocations", Some(OPS)).json();
    assert_eq!(list["revocations"].as_array().unwrap().len(), 1);
    assert_eq!(list["revocations"][0]["value"], jti.as_str());
    // sub + terminate_sessions: every live session of alice ends
    let r = call(
        a,
        "POST",
        "/admin/revocations",
        Some(OPS),
        Some(&json!({"kind": "sub", "value": "alice", "terminate_sessions": true})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!((r.json()["connections_closed"].as_u64(), r.json()["sessions_terminated"].as_u64()), (Some(1), Some(2)));
    assert_eq!(c2.expect_close().0, 1008);
    assert!(
        eventually(WAIT, || get(&gw, &format!("/admin/sessions/{sid}"), Some(READER)).json()["state"] == "terminated")
    );
    // an expired entry is stored but not listed
    let old = call(
        a,
        "POST",
        "/admin/revocations",
        Some(OPS),
        Some(&json!({"kind": "api_key", "value": "ak_0000000000000000", "until_ms": 1})),
    );
    assert_eq!((old.status, old.json()["connections_closed"].as_u64()), (201, Some(0)));
    assert_eq!(get(&gw, "/admin/revocations", Some(OPS)).json()["revocations"].as_array().unwrap().len(), 2);
    // persisted: a restart loads them
    let (_, dir) = gw.stop(WAIT);
    let gw = jwt_gateway_in(Some(dir));
    assert_eq!(support::sec::connect_bearer(&gw, &token).err(), Some(401), "revocations survive a restart");
    let q = "/admin/revocations?kind=sub&value=alice".to_string();
    let del = call(gw.admin_addr, "DELETE", &q, Some(OPS), None);
    assert_eq!((del.status, del.json()), (200, json!({"kind": "sub", "value": "alice", "deleted": true})));
    assert_error(&call(gw.admin_addr, "DELETE", &q, Some(OPS), None), 404, "not_found");
    assert_error(
        &call(gw.admin_addr, "DELETE", "/admin/revocations?kind=sub", Some(OPS), None),
        400,
        "invalid_parameter",
    );
    let del = call(gw.admin_addr, "DELETE", &format!("/admin/revocations?kind=jti&value={jti}"), Some(OPS), None);
    assert_eq!(del.status, 200);
    assert!(support::sec::connect_bearer(&gw, &token).is_ok(), "allowed again");
}

#[test]
fn config_reload_workers_and_stats() {
    let gw = admin_gw("");
    wait_ready(&gw);
    let r = call(gw.admin_addr, "POST", "/admin/config/reload", Some(OPS), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let rep = r.json();
    assert!(rep["generation"].is_u64() && rep["changed"].is_boolean(), "{rep}");
    assert!(rep["applied"].is_array() && rep["restart_required"].is_array(), "{rep}");
    assert_error(&call(gw.admin_addr, "POST", "/admin/config/reload", Some(DEPLOY), None), 403, "permission_denied");
    let cfg = get(&gw, "/admin/config", Some(OPS)).json();
    assert!(cfg["generation"].is_u64(), "{cfg}");
    let (mut c, _) = session(&gw, "stats");
    c.turn("hi");
    let w = get(&gw, "/admin/workers", Some(READER)).json();
    let list = w["workers"].as_array().unwrap();
    assert_eq!(list.len(), 5, "every worker type");
    let cc = list.iter().find(|x| x["type"] == "claude_code").unwrap();
    assert_eq!((cc["enabled"].as_bool(), cc["enabled_setting"].as_str()), (Some(true), Some("true")));
    assert_eq!(cc["version"], "2.1.197 (Claude Code)");
    assert!(
        cc["path"].as_str().is_some_and(|p| p.starts_with('/'))
            && cc["probed_at"].is_u64()
            && cc["probe_error"].is_null()
    );
    assert_eq!((cc["processes"].as_u64(), cc["sessions"]["idle"].as_u64()), (Some(1), Some(1)));
    assert_eq!(cc["capabilities"]["supports_resume"], true);
    let pi = list.iter().find(|x| x["type"] == "pi").unwrap();
    assert_eq!((pi["enabled"].as_bool(), &pi["version"], &pi["path"]), (Some(false), &Value::Null, &Value::Null));
    let s = get(&gw, "/admin/stats", Some(READER)).json();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!((s["draining"].as_bool(), s["sessions"]["idle"].as_u64()), (Some(false), Some(1)));
    assert_eq!(s["sessions"]["max_total"], 1000);
    assert_eq!((s["connections"]["drivers"].as_u64(), s["connections"]["observers"].as_u64()), (Some(1), Some(0)));
    assert!(s["connections"]["opened_total"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(s["workers"]["claude_code"]["processes"], 1);
    let st = &s["store"];
    assert!(st["db_bytes"].as_u64().is_some_and(|b| b > 0) && st["queue_capacity"] == 65536, "{st}");
    assert!(st["last_commit_age_ms"].as_u64().is_some_and(|a| a < 5000) && st["blocked_sessions"] == 0, "{st}");
    let reactors = s["reactors"].as_array().unwrap();
    assert_eq!(reactors.len(), 2);
    assert!(reactors.iter().all(|r| r["busy_ratio"].as_f64().is_some_and(|b| (0.0..=1.0).contains(&b))));
    assert_eq!(reactors.iter().map(|r| r["sessions"].as_u64().unwrap()).sum::<u64>(), 1);
}

#[test]
fn dev_mode_disables_admin_auth() {
    let gw = Gateway::start_with(support::Options { args: vec!["--dev".into()], ..support::Options::default() });
    assert_eq!(get(&gw, "/admin/stats", None).status, 200);
    assert_eq!(get(&gw, "/admin/config", None).status, 200);
    assert_eq!(get(&gw, "/metrics", None).status, 200);
}

/// Every entry of `/admin/audit` with these query parameters (pages of 2).
fn audit_all(gw: &Gateway, q: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let r = get(gw, &format!("/admin/audit?limit=2&after_id={after}{q}"), Some(OPS));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let page = v["entries"].as_array().expect("entries").clone();
        assert!(page.len() <= 2);
        out.extend(page.iter().cloned());
        if !v["has_more"].as_bool().expect("has_more") {
            assert_eq!(v["next_after_id"], out.last().map_or(json!(after), |e| e["id"].clone()));
            return out;
        }
        assert_eq!(page.len(), 2, "a page with has_more is full");
        after = v["next_after_id"].as_i64().expect("next_after_id");
        assert_eq!(after, page[1]["id"].as_i64().unwrap());
    }
}

#[test]
fn audit_rows_for_admin_actions_pages_and_verify() {
    let gw = admin_gw("");
    let (mut c, sid) = session(&gw, "audited");
    // a read-scope GET writes no row; a mutation, an admin GET and a bad token do
    assert_eq!(get(&gw, "/admin/stats", Some(READER)).status, 200);
    assert_eq!(
        call(
            gw.admin_addr,
            "POST",
            &format!("/admin/sessions/{sid}/terminate"),
            Some(DEPLOY),
            Some(&json!({"reason": "maint"}))
        )
        .status,
        200
    );
    c.until(WAIT, |f| is_state(f, "terminated"));
    assert_eq!(get(&gw, "/admin/config", Some(OPS)).status, 200);
    assert_eq!(get(&gw, "/admin/stats", Some("not_a_token_0123456789abcdefghijklmnopq")).status, 401);
    // the audit page of this very request is written before it reads
    let actions = audit_all(&gw, "&kind=admin_action");
    let rows: Vec<(&str, &str)> =
        actions.iter().map(|e| (e["actor_id"].as_str().unwrap_or(""), e["reason"].as_str().unwrap_or(""))).collect();
    assert!(!rows.iter().any(|(_, r)| r.contains("/admin/stats")), "read GETs are not audited: {rows:?}");
    let term = actions
        .iter()
        .find(|e| e["reason"] == "POST /admin/sessions/{id}/terminate")
        .unwrap_or_else(|| panic!("terminate row: {rows:?}"));
    assert_eq!(term["actor_kind"], "admin_token");
    assert_eq!(term["actor_id"], "deploy");
    assert_eq!(term["session_id"], sid.as_str());
    assert_eq!(term["outcome"], "ok");
    assert_eq!(term["client_ip"], "127.0.0.1");
    assert_eq!(term["detail"]["reason"], "maint");
    assert!(term["hash"].as_str().is_some_and(|h| h.len() == 64));
    assert!(rows.contains(&("ops", "GET /admin/config")), "{rows:?}");
    assert!(rows.contains(&("ops", "GET /admin/audit")), "{rows:?}");
    // ids ascend; the kind filter holds
    let ids: Vec<i64> = actions.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(actions.iter().all(|e| e["kind"] == "admin_action"));
    let failures = audit_all(&gw, "&kind=admin_auth_failure");
    assert!(failures.iter().any(|e| e["reason"] == "invalid_token" && e["actor_kind"] == "unauthenticated"));
    let mine = audit_all(&gw, &format!("&session_id={sid}"));
    assert!(!mine.is_empty() && mine.iter().all(|e| e["session_id"] == sid.as_str()));
    assert!(audit_all(&gw, &format!("&since_ms={}", u64::MAX >> 2)).is_empty());
    // a page past the end
    let v = get(&gw, "/admin/audit?after_id=999999999", Some(OPS)).json();
    assert_eq!((v["entries"].as_array().map(Vec::len), &v["has_more"]), (Some(0), &json!(false)));
    assert_eq!(v["next_after_id"], 999999999);
    // parameters, scope
    for q in ["limit=0", "limit=1001", "kind=bogus", "session_id=nope", "since_ms=x", "after_id=-1", "foo=1"] {
        let e = assert_error(&get(&gw, &format!("/admin/audit?{q}"), Some(OPS)), 400, "invalid_parameter");
        assert!(e["error"]["details"]["parameter"].is_string(), "{q}");
    }
    assert_error(&get(&gw, "/admin/audit", Some(DEPLOY)), 403, "permission_denied");
    assert_error(&get(&gw, "/admin/audit/verify", Some(READER)), 403, "permission_denied");
    // the chain verifies, until a row is edited behind the gateway's back
    let v = get(&gw, "/admin/audit/verify", Some(OPS)).json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["rows_checked"].as_u64().unwrap() >= actions.len() as u64);
    assert_eq!(v["first_bad_id"], Value::Null);
    let db = rusqlite::Connection::open(support::store::db_path(gw.dir.path())).expect("open db");
    db.busy_timeout(WAIT).expect("busy timeout");
    db.execute("UPDATE audit_log SET detail = '{\"forged\":true}' WHERE id = ?1", [term["id"].as_i64().unwrap()])
        .expect("tamper");
    drop(db);
    let v = get(&gw, "/admin/audit/verify", Some(OPS)).json();
    assert_eq!((v["ok"].clone(), v["first_bad_id"].clone()), (json!(false), term["id"].clone()), "{v}");
}

#[test]
fn a_mutation_whose_audit_row_fails_is_refused() {
    let gw = admin_gw("");
    wait_ready(&gw);
    let db = rusqlite::Connection::open(support::store::db_path(gw.dir.path())).expect("open db");
    db.busy_timeout(WAIT).expect("busy timeout");
    db.execute_batch("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'no'); END;")
        .expect("trigger");
    let r = call(gw.admin_addr, "POST", "/admin/drain", Some(DEPLOY), None);
    assert_error(&r, 503, "audit_unavailable");
    // nothing was changed: not draining, upgrades still accepted
    assert_eq!(get(&gw, "/admin/stats", Some(READER)).json()["draining"], false);
    assert_eq!(get(&gw, "/ready", None).status, 200);
    let _c = gw.connect();
    // an audited GET still answers
    assert_eq!(get(&gw, "/admin/config", Some(OPS)).status, 200);
    db.execute_batch("DROP TRIGGER no_audit;").expect("drop trigger");
    let r = call(gw.admin_addr, "POST", "/admin/drain", Some(DEPLOY), None);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(get(&gw, "/admin/stats", Some(READER)).json()["draining"], true);
}
