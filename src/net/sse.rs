//! Server-sent events framing (the WHATWG "event stream" interpretation):
//! lines end with CRLF, LF or CR (also when the pair is split across reads),
//! `data:` lines of one event are joined with `\n`, a blank line dispatches
//! the event, `:` lines are comments, a leading UTF-8 BOM is skipped.
//! `event`, `id` and `retry` fields are read and dropped: the workers the
//! gateway speaks to put everything in `data` (workers.md §4.3).
//!
//! Sans-IO and bounded: a line or an event's data longer than `max` bytes
//! (`worker.max_line_bytes`) is discarded up to the event's end and reported
//! once as [`SseItem::Oversize`]; memory never exceeds about `2 × max`.

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// One event's data (the `data:` lines joined with `\n`).
    Event(&'a [u8]),
    /// An event was dropped because a line or its data exceeded the bound;
    /// `len` counts the bytes seen of it (at least `max + 1`).
    Oversize { len: usize },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// See the module docs.
#[derive(Debug)]
pub struct SseFramer {
    max: usize,
    /// The current line (without its terminator).
    line: Vec<u8>,
    /// The current line was over `max`: its bytes are being skipped.
    line_over: bool,
    /// Data of the current event, each `data` value followed by `\n`.
    data: Vec<u8>,
    /// The current event is being dropped (oversize); bytes seen of it.
    dropped: Option<usize>,
    /// The previous byte was a CR: a following LF belongs to it.
    after_cr: bool,
    /// Bytes of a possible leading BOM seen so far; `None` once decided.
    bom: Option<usize>,
}

impl SseFramer {
    pub fn new(max: usize) -> Self {
        SseFramer {
            max: max.max(1),
            line: Vec::new(),
            line_over: false,
            data: Vec::new(),
            dropped: None,
            after_cr: false,
            bom: Some(0),
        }
    }

    /// Feed body bytes; complete events are passed to `on` in order.
    pub fn feed(&mut self, mut bytes: &[u8], on: &mut dyn FnMut(SseItem<'_>)) {
        if let Some(seen) = self.bom {
            let n = bytes.len().min(BOM.len() - seen);
            if bytes[..n] == BOM[seen..seen + n] {
                bytes = &bytes[n..];
                self.bom = if seen + n == BOM.len() { None } else { Some(seen + n) };
                if self.bom.is_some() {
                    return; // still a BOM prefix: wait for more
                }
            } else {
                // Not a BOM: the bytes already matched are ordinary data.
                self.bom = None;
                self.take(&BOM[..seen], on);
            }
        }
        self.take(bytes, on);
    }

    fn take(&mut self, mut bytes: &[u8], on: &mut dyn FnMut(SseItem<'_>)) {
        while !bytes.is_empty() {
            if std::mem::take(&mut self.after_cr) && bytes[0] == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            match bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
                None => {
                    self.push_line(bytes);
                    return;
                }
                Some(i) => {
                    self.push_line(&bytes[..i]);
                    self.after_cr = bytes[i] == b'\r';
                    bytes = &bytes[i + 1..];
                    self.end_line(on);
                }
            }
        }
    }

    fn push_line(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        if self.line_over {
            self.count_dropped(part.len());
            return;
        }
        if self.line.len() + part.len() > self.max {
            self.line_over = true;
            self.count_dropped(self.line.len() + part.len());
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(part);
    }

    fn count_dropped(&mut self, n: usize) {
        let seen = self.dropped.unwrap_or(self.data.len());
        self.dropped = Some(seen.saturating_add(n));
        self.data.clear();
    }

    fn end_line(&mut self, on: &mut dyn FnMut(SseItem<'_>)) {
        if std::mem::take(&mut self.line_over) {
            return; // the event is already marked dropped
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return self.dispatch(on);
        }
        if line[0] == b':' {
            self.line = line;
            self.line.clear();
            return; // comment
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        if field == b"data" {
            if self.dropped.is_some() || self.data.len() + value.len() > self.max {
                self.count_dropped(value.len() + 1);
            } else {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
        }
        // Reuse the line's allocation for the next line.
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, on: &mut dyn FnMut(SseItem<'_>)) {
        if let Some(len) = self.dropped.take() {
            self.data.clear();
            on(SseItem::Oversize { len });
            return;
        }
        if self.data.is_empty() {
            return; // no data lines: nothing to dispatch
        }
        self.data.pop(); // the `\n` after the last data line
        on(SseItem::Event(&self.data));
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(framer: &mut SseFramer, pieces: &[&[u8]]) -> Vec<Result<String, usize>> {
        let mut out = Vec::new();
        for p in pieces {
            framer.feed(p, &mut |item| match item {
                SseItem::Event(d) => out.push(Ok(String::from_utf8_lossy(d).into_owned())),
                SseItem::Oversize { len } => out.push(Err(len)),
            });
        }
        out
    }

    /// The same stream split in two at every index, and byte by byte, gives `want`.
    fn every_split(stream: &[u8], max: usize, want: &[Result<&str, usize>]) {
        let want: Vec<Result<String, usize>> = want.iter().map(|r| r.map(str::to_owned)).collect();
        for cut in 0..=stream.len() {
            let got = events(&mut SseFramer::new(max), &[&stream[..cut], &stream[cut..]]);
            assert_eq!(got, want, "split at {cut}");
        }
        let singles: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&mut SseFramer::new(max), &singles), want, "byte by byte");
    }

    #[test]
    fn opencode_framing_at_every_boundary() {
        let stream = b"data: {\"type\":\"server.connected\",\"properties\":{}}\n\ndata: {\"a\":1}\n\n";
        every_split(stream, 1024, &[Ok(r#"{"type":"server.connected","properties":{}}"#), Ok(r#"{"a":1}"#)]);
    }

    #[test]
    fn line_endings_fields_comments_and_multiline_data() {
        let stream =
            b": comment\r\nevent: x\r\nid: 7\r\nretry: 10\r\ndata:one\r\ndata:  two\rdata\n\r\n\n\ndata: last\r\r";
        every_split(stream, 1024, &[Ok("one\n two\n"), Ok("last")]);
    }

    #[test]
    fn events_without_data_and_unterminated_events_are_not_dispatched() {
        every_split(b"event: ping\n\nid: 1\n\ndata: tail-without-blank-line\n", 1024, &[]);
    }

    #[test]
    fn leading_bom_is_skipped_once() {
        every_split(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n", 1024, &[Ok("a")]);
        every_split(b"\xEF\xBBdata: a\n\n", 1024, &[]);
        every_split(b"\xEFdata: a\n\ndata: b\n\n", 1024, &[Ok("b")]);
        every_split(b"data: c\n\n", 1024, &[Ok("c")]);
    }

    #[test]
    fn oversize_line_and_oversize_event_are_dropped_once_each() {
        // max 16: lines fit, the second event's data (9 + 1 + 8 bytes) does not
        every_split(
            b"data: 12345678\n\ndata:123456789\ndata:12345678\n\ndata: ok\n\n",
            16,
            &[Ok("12345678"), Err(19), Ok("ok")],
        );
        // a single line over the bound
        every_split(b"data: 0123456789abcdef\n\ndata: ok\n\n", 8, &[Err(22), Ok("ok")]);
        // several data lines whose sum exceeds the bound
        // data of exactly the bound passes, one more line drops the event
        every_split(
            b"data:1234\ndata:1234\n\ndata:1234\ndata:1234\ndata:1\n\ndata: ok\n\n",
            9,
            &[Ok("1234\n1234"), Err(12), Ok("ok")],
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let mut f = SseFramer::new(64);
        let chunk = [b'x'; 4096];
        let mut got = Vec::new();
        f.feed(b"data: ", &mut |_| {});
        for _ in 0..256 {
            f.feed(&chunk, &mut |i| got.push(format!("{i:?}")));
            assert!(f.line.capacity() <= 128 && f.data.capacity() <= 128);
        }
        f.feed(b"\n\n", &mut |i| got.push(format!("{i:?}")));
        assert_eq!(got, vec![format!("{:?}", SseItem::Oversize { len: 6 + 256 * 4096 })]);
    }

    #[test]
    fn malformed_bytes_do_not_panic() {
        let mut f = SseFramer::new(32);
        let junk: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for cut in [1, 7, 31, 32, 33, 4999] {
            for c in junk.chunks(cut) {
                f.feed(c, &mut |_| {});
            }
        }
    }
}
