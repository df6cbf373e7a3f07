//! S→C envelope encoding (aep-v1.md §2). One encoding per event; the bytes
//! are shared by every connection that receives it.

use std::io::Write;

use super::events::{Event, Priority};

pub const VERSION: &str = "aep/v1";

/// A fresh envelope id: `evt_<uuid v4>`.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Encode one envelope as compact JSON text (no trailing newline).
///
/// `seq` is 0 for connection-local frames (aep-v1.md §5.2).
pub fn encode(seq: u64, session_id: &str, timestamp_ms: u64, event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    encode_into(&mut out, &new_event_id(), seq, session_id, timestamp_ms, event);
    out
}

/// Encode one envelope and return, with it, the byte range of `event.data`
/// inside it (the store keeps `data` exactly as sent).
pub fn encode_with_data(
    seq: u64,
    session_id: &str,
    timestamp_ms: u64,
    event: &Event,
) -> (Vec<u8>, std::ops::Range<usize>) {
    let mut out = Vec::with_capacity(160);
    let range = encode_into(&mut out, &new_event_id(), seq, session_id, timestamp_ms, event);
    (out, range)
}

/// Encode with a given envelope id into `out`; returns the range of `event.data`.
pub fn encode_into(
    out: &mut Vec<u8>,
    id: &str,
    seq: u64,
    session_id: &str,
    timestamp_ms: u64,
    event: &Event,
) -> std::ops::Range<usize> {
    out.extend_from_slice(b"{\"version\":\"aep/v1\",\"id\":");
    write_json_str(out, id);
    let _ = write!(out, ",\"seq\":{seq}");
    if event.priority() == Priority::Control {
        out.extend_from_slice(b",\"priority\":\"control\"");
    }
    out.extend_from_slice(b",\"session_id\":");
    write_json_str(out, session_id);
    let _ = write!(out, ",\"timestamp\":{timestamp_ms},\"event\":");
    let event_start = out.len();
    // Serialising our own types into a Vec cannot fail (no maps with non-string keys).
    let _ = serde_json::to_writer(&mut *out, event);
    // The event serialises as {"type":"<t>","data":<data>}; type names need no escaping.
    let data = event_start + 18 + event.type_name().len()..out.len() - 1;
    out.push(b'}');
    data
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::SessionState;

    #[test]
    fn envelope_shape() {
        let bytes =
            encode(7, "b5484126-5dd8-578f-aac8-698921a4afc9", 1710000000123, &Event::message_delta("m1", "Hel"));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["version"], "aep/v1");
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(v["seq"], 7);
        assert!(v.get("priority").is_none());
        assert_eq!(v["timestamp"], 1710000000123u64);
        assert_eq!(v["event"]["type"], "message.delta");
        assert_eq!(v["event"]["data"]["message_id"], "m1");
        assert_eq!(v["event"]["data"]["content"], "Hel");
    }

    #[test]
    fn data_range_is_exactly_event_data() {
        let evs = [
            Event::message_delta("m", "a\"b"),
            Event::state(SessionState::Terminated, Some("x")),
            Event::Done { success: true, stats: None },
            Event::ToolResult { id: "t".into(), output: serde_json::json!("o"), is_error: false },
        ];
        for ev in evs {
            let (bytes, r) = encode_with_data(3, "s", 1, &ev);
            let data: serde_json::Value = serde_json::from_slice(&bytes[r]).unwrap();
            let full: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(data, full["event"]["data"]);
        }
    }

    #[test]
    fn control_priority_on_control_frames() {
        for ev in [Event::Pong { state: SessionState::Idle }, Event::Done { success: true, stats: None }] {
            let v: serde_json::Value = serde_json::from_slice(&encode(0, "", 1, &ev)).unwrap();
            assert_eq!(v["priority"], "control");
        }
    }
}
