//! Backpressure (aep-v1.md §5.4): a client that stops reading is closed
//! `1008 slow consumer` once its bounded queue overflows, without slowing
//! other sessions or growing the gateway's memory; its session keeps
//! running and the client resumes with `last_seq` without losing text.
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::faults::*;
use support::*;

const DELTAS: usize = 20_000;
const WIDTH: usize = 1024;

/// The text `stream N 1024` produces (mock agent script table): delta i is
/// `tok-000i` padded with dots to exactly 1024 bytes, ending in a space.
fn stream_text(n: usize) -> String {
    let mut s = String::with_capacity(n * WIDTH);
    for i in 1..=n {
        let head = format!("tok-{i:04}");
        s.push_str(&head);
        s.extend(std::iter::repeat_n('.', WIDTH - head.len() - 1));
        s.push(' ');
    }
    s
}

/// Samples a process's RSS until dropped; keeps the maximum.
struct RssWatch {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: i32) -> RssWatch {
        let max = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssWatch { max, stop, thread: Some(thread) }
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Text of the `message.delta`s of message `id`.
fn text_of(frames: &[Value], id: &str) -> String {
    frames
        .iter()
        .filter(|v| ev_type(v) == "message.delta" && v["event"]["data"]["message_id"] == id)
        .filter_map(|v| v["event"]["data"]["content"].as_str())
        .collect()
}

/// The session's state as an observer's `init_ack` reports it (aep §4.2,
/// §7). An observer attaching mid-stream may itself be closed as a slow
/// consumer before it reads its ack (the stream is unpaced): "" then.
fn session_state(gw: &Gateway, sid: &str) -> String {
    let mut o = connect_large(gw);
    o.send("init", json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe"}));
    match o.recv_within(Duration::from_secs(10)) {
        Ok(ack) if ev_type(&ack) == "init_ack" => ack["event"]["data"]["state"].as_str().unwrap_or("").to_string(),
        Ok(other) => panic!("observer init: {other}"),
        Err(RecvError::Closed(1008, reason)) if reason == "slow consumer" => String::new(),
        Err(e) => panic!("observer init: {e:?}"),
    }
}

const YAML: &str = r#"gateway:
  send_queue_bytes: "1MiB"
  send_queue_high_water: "256KiB"
worker:
  max_line_bytes: "64MiB"
"#;

/// Peak RSS growth of a fresh gateway while a client that keeps reading
/// receives the same stream: the cost of the stream itself (the agent also
/// sends the whole 20 MB text in one final line), with no slow consumer.
fn baseline_growth() -> u64 {
    // A calibration, not the claim under test: when the test's own reader is
    // starved of CPU (4 suites on 2 cores) it falls behind the unpaced stream
    // and the gateway rightly closes it as a slow consumer; measure again.
    for attempt in 1..=3 {
        if let Some(growth) = baseline_attempt() {
            return growth;
        }
        eprintln!("baseline: the reading client fell behind (attempt {attempt}); measuring again");
    }
    panic!("the reading client could not keep up with the stream in three attempts");
}

/// RSS growth while a reading client receives the whole stream, or `None`
/// if the client was closed as a slow consumer.
fn baseline_attempt() -> Option<u64> {
    let gw = Gateway::start_yaml(YAML);
    let mut a = connect_large(&gw);
    init_new(&mut a);
    assert_eq!(delta_text(&a.turn("warm up")), "echo: warm up");
    let rss0 = rss_bytes(gw.pid());
    let watch = RssWatch::start(gw.pid());
    a.send("input", json!({"content": format!("stream {DELTAS} {WIDTH} 0")}));
    let mut dones = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match a.recv_within(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) if ev_type(&v) == "done" => dones += 1,
            Ok(v) if dones == 1 && is_state(&v, "idle") => break,
            Ok(_) => {}
            Err(RecvError::Closed(1008, reason)) if reason == "slow consumer" => return None,
            Err(e) => panic!("baseline stream: {e:?}"),
        }
    }
    Some(watch.max().saturating_sub(rss0))
}

/// The two 20 MB streaming tests run one at a time: on two shared cores the
/// other's stream can slow the baseline's reading client past its 1 MiB bound.
static STREAMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn slow_consumer_is_closed_alone_and_resumes_without_loss() {
    let _one_stream = STREAMING.lock().unwrap_or_else(|p| p.into_inner());
    let baseline = baseline_growth();
    let gw = Gateway::start_yaml(YAML);
    let mut a = connect_large(&gw);
    let (_, sid_a) = init_new(&mut a);
    let mut b = gw.connect();
    init_new(&mut b);
    assert_eq!(delta_text(&b.turn("warm up")), "echo: warm up");

    let rss0 = rss_bytes(gw.pid());
    let watch = RssWatch::start(gw.pid());
    // A asks for ~20 MB of deltas and stops reading.
    a.send("input", json!({"content": format!("stream {DELTAS} {WIDTH} 0")}));

    // Meanwhile B's turns on another session stay fast.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let t0 = Instant::now();
        let frames = b.turn_within(&format!("ping {i}"), Duration::from_secs(5));
        slowest = slowest.max(t0.elapsed());
        assert_eq!(delta_text(&frames), format!("echo: ping {i}"));
        assert_eq!(of_type(&frames, "done").len(), 1);
    }
    assert!(slowest < Duration::from_secs(1), "slowest echo turn of B took {slowest:?}");

    // The session keeps running without A: its turn completes (an observer
    // attaching meanwhile sees `running`, then `idle`).
    let finished = eventually(Duration::from_secs(60), || session_state(&gw, &sid_a) == "idle");
    assert!(finished, "A's turn never completed");
    let stream_growth = watch.max().saturating_sub(rss0);

    // A reads again: what was queued before the gateway gave up on it
    // (its queue, not its memory, is the bound), then the close.
    let mut seen_a = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let close = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match a.recv_within(left) {
            Ok(v) => seen_a.push(v),
            Err(e) => break e,
        }
    };
    assert_eq!(close, RecvError::Closed(1008, "slow consumer".into()), "after {} frames", seen_a.len());
    let last_seq = max_seq(&seen_a);
    let seqs: Vec<u64> = seen_a.iter().filter_map(|v| v["seq"].as_u64()).filter(|s| *s > 0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "A's seq strictly increases");
    let msg_id = seen_a
        .iter()
        .find(|v| ev_type(v) == "message.delta")
        .map(|v| v["event"]["data"]["message_id"].as_str().unwrap().to_string())
        .expect("A got some deltas before it stopped reading");

    // Resume from what A saw.
    let mut a2 = connect_large(&gw);
    let ack = a2.init(json!({"worker_type": "claude_code", "session_id": sid_a, "last_seq": last_seq}));
    assert_eq!(ack["event"]["data"]["resumed"], true);
    let rest = until_done_and_state(&mut a2, Duration::from_secs(60));
    let growth = watch.max().saturating_sub(rss0);
    drop(watch);
    eprintln!(
        "slow consumer: A saw {} frames up to seq {last_seq}; slowest B turn {slowest:?}; RSS growth {} MiB while streaming, \
         {} MiB incl. the resume (baseline with a reading client {} MiB)",
        seen_a.len(),
        stream_growth >> 20,
        growth >> 20,
        baseline >> 20
    );
    // The slow client must not make the gateway hold the stream for it: the
    // cost over the same stream with a reading client stays within a few
    // queue bounds (1 MiB each here) plus allocator noise, not 20 MB.
    assert!(
        stream_growth < baseline + (32 << 20),
        "gateway RSS grew by {} MiB with a slow consumer vs {} MiB without",
        stream_growth >> 20,
        baseline >> 20
    );
    // The resume replays the log in ~1 MiB pages as A reads; its one large
    // row is the 20 MB `message` (SQLite's copy, the row string, the framed
    // envelope, A's queue): bounded by that row, not by the backlog.
    let largest_row = (DELTAS * WIDTH) as u64;
    assert!(growth < baseline + 5 * largest_row, "RSS grew by {} MiB incl. the resume", growth >> 20);

    assert!(of_type(&rest, "error").is_empty(), "no SESSION_EXPIRED or other error: {:?}", shape(&rest));
    // Replay starts right after A's last event, or with the remainder of a
    // stored (merged) delta row that A's last event fell into: such a row
    // carries the seq of its last delta, the one legal gap (aep-v1.md §5.3).
    let first = rest[0]["seq"].as_u64().unwrap_or(0);
    assert!(
        first == last_seq + 1 || (first > last_seq && ev_type(&rest[0]) == "message.delta"),
        "replay starts right after A's last event ({last_seq}), got {first} {}",
        ev_type(&rest[0])
    );
    let seqs: Vec<u64> = rest.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "replayed then live events in seq order");
    let done = of_type(&rest, "done");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["event"]["data"]["success"], true, "A's turn completed while A was away");
    assert_eq!(shape(&rest).last().map(String::as_str), Some("state:idle"));

    let expected = stream_text(DELTAS);
    let got = text_of(&seen_a, &msg_id) + &text_of(&rest, &msg_id);
    assert_eq!(got.len(), expected.len(), "delta text length (coalesced deltas lose nothing)");
    assert!(got == expected, "delta text differs from what the worker streamed");
    let complete = seen_a.iter().chain(&rest).find(|v| ev_type(v) == "message" && v["event"]["data"]["id"] == msg_id);
    let complete = complete.expect("the complete `message` follows the deltas");
    assert!(complete["event"]["data"]["content"].as_str() == Some(expected.as_str()), "complete message text");

    assert_eq!(delta_text(&a2.turn("after the flood")), "echo: after the flood");
    assert_eq!(delta_text(&b.turn("B still fine")), "echo: B still fine");
}

#[test]
fn a_frame_larger_than_the_queue_bound_reaches_a_client_that_reads() {
    // One tool_result of 3 MB (worker line well under max_line_bytes) to a
    // client that reads all the time: large, not slow.
    let gw = Gateway::start_yaml(YAML);
    let mut c = connect_large(&gw);
    init_new(&mut c);
    let frames = c.turn_within("tool 3000000", Duration::from_secs(30));
    let results = of_type(&frames, "tool_result");
    assert_eq!(results.len(), 1);
    let output = &results[0]["event"]["data"]["output"];
    assert_eq!(output.as_str().map(str::len), Some(3_000_000), "the whole tool output arrives");
    assert_eq!(shape(&frames), ["state:running", "done:true", "state:idle"]);
    assert_eq!(delta_text(&c.turn("and after")), "echo: and after");
}

/// `limits.max_total_send_queue_bytes` (256 KiB here, far below the
/// per-connection bound of 64 MiB): a driver and an observer that stop
/// reading during a 20 MB stream are closed 1008 `slow consumer` (or reset,
/// see below) — each in turn holds the largest queue — while an observer
/// that reads receives the whole stream and its turn end, and the session
/// keeps running.
#[test]
fn total_send_queue_limit_closes_the_largest_queue() {
    let _one_stream = STREAMING.lock().unwrap_or_else(|p| p.into_inner());
    let gw = Gateway::start_yaml(
        "gateway:\n  send_queue_bytes: \"64MiB\"\n  send_queue_high_water: \"64KiB\"\nworker:\n  max_line_bytes: \"64MiB\"\nlimits:\n  max_total_send_queue_bytes: \"256KiB\"\n",
    );
    let mut driver = connect_large(&gw);
    let (_, sid) = init_new(&mut driver);
    let observe = json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe"});
    let mut idle_observer = connect_large(&gw);
    idle_observer.init(observe.clone());
    let mut reader = connect_large(&gw);
    reader.init(observe);
    let reading = std::thread::spawn(move || until_done_and_state(&mut reader, Duration::from_secs(90)));
    driver.send("input", json!({"content": format!("stream {DELTAS} {WIDTH} 0")}));

    let frames = reading.join().unwrap_or_else(|_| panic!("reader thread failed; log:\n{}", gw.stderr()));
    assert_eq!(of_type(&frames, "done").len(), 1, "{:?}", shape(&frames));
    let msg_id = frames
        .iter()
        .find(|v| ev_type(v) == "message.delta")
        .and_then(|v| v["event"]["data"]["message_id"].as_str())
        .expect("the reader got deltas")
        .to_string();
    assert_eq!(text_of(&frames, &msg_id), stream_text(DELTAS), "the reading observer lost nothing");
    for (who, c) in [("driver", &mut driver), ("idle observer", &mut idle_observer)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let end = loop {
            match c.recv_within(deadline.saturating_duration_since(Instant::now())) {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        // The close frame waits behind the frame being written; when that
        // frame (a whole coalesced message) alone keeps the total over the
        // limit, the closing connection is dropped: a reset.
        let closed = end == RecvError::Closed(1008, "slow consumer".into());
        assert!(closed || matches!(end, RecvError::Gone(_)), "{who}: {end:?}");
    }
    assert!(gw.wait_log("max_total_send_queue_bytes", Duration::from_secs(5)), "the close is logged");
    assert_eq!(session_state(&gw, &sid), "idle", "the session keeps running");
}

/// `limits.write_stall_timeout` (slow-read defence): a client that stops
/// reading while a large stream is queued for it (its queue bound set far
/// above the stream, so the slow-consumer close does not come first) is
/// closed once the socket has taken nothing for the timeout, and — since it
/// will not read its close frame either — its connection is dropped; the
/// session keeps running for others.
#[test]
fn a_client_that_stops_reading_is_dropped_after_the_write_stall_timeout() {
    let _one_stream = STREAMING.lock().unwrap_or_else(|p| p.into_inner());
    let gw = Gateway::start_yaml(
        "gateway:\n  send_queue_bytes: \"64MiB\"\n  send_queue_high_water: \"32MiB\"\n  ping_interval: \"1s\"\n\
         worker:\n  max_line_bytes: \"64MiB\"\nlimits:\n  write_stall_timeout: \"1s\"\n",
    );
    let mut a = connect_large(&gw);
    // Loopback buffers here can hold the whole stream (tcp_rmem up to
    // 32 MiB): pin A's receive buffer small so the gateway's writes stall.
    if let tungstenite::stream::MaybeTlsStream::Plain(sock) = a.ws.get_ref() {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 64 * 1024;
        // SAFETY: a valid socket fd and a c_int option value of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF");
    }
    let (_, sid) = init_new(&mut a);
    let before = tcp_connections(gw.pid());
    assert!(before >= 1, "the client's connection is counted");
    a.send("input", json!({"content": format!("stream {DELTAS} {WIDTH} 0")}));
    // A reads nothing from here on.
    let dropped = eventually(Duration::from_secs(20), || tcp_connections(gw.pid()) < before);
    assert!(dropped, "the stalled connection is still open after 20 s");
    assert!(gw.wait_log("write_stall_timeout", WAIT), "the close is logged");
    // The session did not go with it.
    let mut o = gw.connect();
    o.send("init", json!({"worker_type": "claude_code", "session_id": sid, "mode": "observe"}));
    let ack = o.expect("init_ack");
    assert!(matches!(ack["event"]["data"]["state"].as_str(), Some("running" | "idle")), "{ack}");
    drop(a);
}
