//! Turning stored rows back into envelopes for replay (aep-v1.md §5.3): a
//! fresh envelope id per replayed frame (clients de-duplicate by seq), and a
//! merged delta row cut at the client's resume point.

use std::io::Write;

use crate::protocol::new_event_id;

use super::reader::EventRow;

fn is_control(event_type: &str) -> bool {
    matches!(event_type, "control" | "error" | "done" | "pong" | "init_ack")
}

/// The JSON envelope for one stored row, or `None` when nothing of it lies
/// after `after_seq` (a merged row fully seen already).
pub fn envelope(row: &EventRow, session_id: &str, after_seq: u64) -> Option<Vec<u8>> {
    envelope_after(row, session_id, after_seq, 0)
}

/// [`envelope`] written after `reserve` leading bytes (room for a WebSocket
/// header, see `ws::frame::text_in_place`), so a large row is copied once.
pub fn envelope_after(row: &EventRow, session_id: &str, after_seq: u64, reserve: usize) -> Option<Vec<u8>> {
    if row.seq <= after_seq {
        return None;
    }
    let cut;
    let data: &str = match (row.seq_first, &row.splits) {
        (Some(first), Some(splits)) if after_seq >= first => {
            // Skip the parts the client already has (their seqs are first..=after_seq).
            let seen = (after_seq - first + 1) as usize;
            // saturating: `splits` is read back from the database (an edited row
            // cuts past the end, so `get` below answers `None`, never an overflow)
            let skip = splits.iter().take(seen).fold(0usize, |a, b| a.saturating_add(*b));
            let mut v: serde_json::Value = serde_json::from_str(&row.data).ok()?;
            let content = v.get("content")?.as_str()?;
            let rest = content.get(skip..)?.to_owned();
            v["content"] = serde_json::Value::String(rest);
            cut = v.to_string();
            &cut
        }
        _ => &row.data,
    };
    let mut out = vec![0u8; reserve];
    write_envelope(&mut out, row.seq, &row.event_type, row.ts, data, session_id);
    Some(out)
}

/// An envelope around an already-serialised `data` object.
pub fn envelope_raw(seq: u64, event_type: &str, ts: u64, data: &str, session_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 200);
    write_envelope(&mut out, seq, event_type, ts, data, session_id);
    out
}

fn write_envelope(out: &mut Vec<u8>, seq: u64, event_type: &str, ts: u64, data: &str, session_id: &str) {
    out.reserve(data.len() + 200);
    let _ = write!(out, "{{\"version\":\"aep/v1\",\"id\":\"{}\",\"seq\":{seq}", new_event_id());
    if is_control(event_type) {
        out.extend_from_slice(b",\"priority\":\"control\"");
    }
    out.extend_from_slice(b",\"session_id\":");
    let _ = serde_json::to_writer(&mut *out, session_id);
    let _ = write!(out, ",\"timestamp\":{ts},\"event\":{{\"type\":");
    let _ = serde_json::to_writer(&mut *out, event_type);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged() -> EventRow {
        EventRow {
            seq: 12,
            seq_first: Some(10),
            event_type: "message.delta".into(),
            ts: 5,
            data: r#"{"message_id":"m","content":"aabbbc"}"#.into(),
            splits: Some(vec![2, 3, 1]),
        }
    }

    fn content(bytes: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v["event"]["data"]["content"].as_str().unwrap().to_owned()
    }

    #[test]
    fn merged_row_is_cut_at_the_resume_point() {
        let r = merged();
        assert_eq!(content(&envelope(&r, "s", 9).unwrap()), "aabbbc");
        assert_eq!(content(&envelope(&r, "s", 10).unwrap()), "bbbc");
        assert_eq!(content(&envelope(&r, "s", 11).unwrap()), "c");
        assert!(envelope(&r, "s", 12).is_none());
        let v: serde_json::Value = serde_json::from_slice(&envelope(&r, "s", 10).unwrap()).unwrap();
        assert_eq!(v["seq"], 12);
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    }

    /// Edited `splits` (read back from the database) never panic the cut: a
    /// cut past the end or inside a character leaves nothing to send.
    #[test]
    fn edited_splits_do_not_overflow() {
        let mut r = merged();
        r.splits = Some(vec![usize::MAX, 5, 1]);
        assert!(envelope(&r, "s", 11).is_none());
        r.splits = Some(vec![1, 1, 1]);
        r.data = r#"{"message_id":"m","content":"éé"}"#.into();
        assert!(envelope(&r, "s", 10).is_none(), "a cut inside a character");
        assert_eq!(content(&envelope(&r, "s", 11).unwrap()), "éé"[2..].to_owned());
    }

    #[test]
    fn control_types_get_priority() {
        let row = EventRow {
            seq: 3,
            seq_first: None,
            event_type: "done".into(),
            ts: 1,
            data: r#"{"success":true}"#.into(),
            splits: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&envelope(&row, "s", 0).unwrap()).unwrap();
        assert_eq!(v["priority"], "control");
        assert_eq!(v["event"]["data"]["success"], true);
    }
}
