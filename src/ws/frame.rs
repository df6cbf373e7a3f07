//! Server → client WebSocket frames, encoded once with tungstenite's frame
//! header codec. Server frames are unmasked, so one encoded frame can be
//! shared by every connection that receives the same event.

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader { opcode, ..FrameHeader::default() };
    let mut out = Vec::with_capacity(header.len(payload.len() as u64) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A final text frame holding `payload` (UTF-8 JSON).
pub fn text(payload: &[u8]) -> Vec<u8> {
    frame(OpCode::Data(Data::Text), payload)
}

pub fn ping(payload: &[u8]) -> Vec<u8> {
    frame(OpCode::Control(Control::Ping), payload)
}

/// A close frame with a status code and a short reason (≤ 123 bytes).
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(OpCode::Control(Control::Close), &payload)
}

/// Bytes to reserve in front of a payload for [`text_in_place`].
pub const MAX_HEADER: usize = 10;

/// Turn `buf` — [`MAX_HEADER`] reserved bytes followed by a UTF-8 payload —
/// into a text frame without copying the payload: the header is written
/// right before it. Returns the offset where the frame starts.
pub fn text_in_place(buf: &mut [u8]) -> usize {
    let len = buf.len().saturating_sub(MAX_HEADER);
    let hlen = header_len(len);
    let off = MAX_HEADER - hlen;
    let header = FrameHeader { opcode: OpCode::Data(Data::Text), ..FrameHeader::default() };
    let mut h = Vec::with_capacity(hlen);
    // Writing into a Vec cannot fail.
    let _ = header.format(len as u64, &mut h);
    buf[off..MAX_HEADER].copy_from_slice(&h);
    off
}

/// Length of the frame header that precedes a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes() {
        assert_eq!(text(b"hi"), vec![0x81, 2, b'h', b'i']);
        assert_eq!(text(&[b'a'; 200]).len(), 204);
        assert_eq!(text(&vec![b'a'; 70000]).len(), 70010);
        for n in [0, 125, 126, 65535, 65536] {
            assert_eq!(text(&vec![b'x'; n]).len(), header_len(n) + n);
        }
        for n in [0, 125, 126, 65535, 65536] {
            let payload = vec![b'y'; n];
            let mut buf = vec![0u8; MAX_HEADER];
            buf.extend_from_slice(&payload);
            let off = text_in_place(&mut buf);
            assert_eq!(&buf[off..], &text(&payload)[..]);
        }
        let c = close(1008, "slow consumer");
        assert_eq!(c[0], 0x88);
        assert_eq!(&c[2..4], &1008u16.to_be_bytes());
    }
}
