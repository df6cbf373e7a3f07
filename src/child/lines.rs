//! Sans-IO framing of worker output (workers.md §1.4 items 4 and 5).
//!
//! Owns: [`LineSplitter`], which turns stdout byte chunks into `\n`-delimited
//! records with a hard per-line bound, and [`TailBuffer`], which keeps the last
//! bytes of stderr for crash reports.
//!
//! Must not: touch fds, decode UTF-8 or JSON, or split on anything but `\n`
//! (U+2028/U+2029 are ordinary bytes inside a JSON string); never hold more
//! than `max_line_bytes` of a pending line, whatever the worker writes.

use std::collections::VecDeque;

/// Default `worker.max_line_bytes` (10 MiB; claude `initialize` responses are
/// ~50 KB, pi repeats whole partial messages).
pub const DEFAULT_MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

/// Default stderr tail kept for `details.stderr_tail` (8 KiB).
pub const DEFAULT_STDERR_TAIL_BYTES: usize = 8 * 1024;

/// Above this capacity the pending-line buffer is released when it empties,
/// so one huge line does not pin its allocation for the life of the worker.
const RETAIN_CAPACITY: usize = 64 * 1024;

/// One record produced by [`LineSplitter`], in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A complete line without its `\n` and without one trailing `\r`.
    Line(&'a [u8]),
    /// A line longer than the limit, dropped. Reported once, as soon as the
    /// limit is crossed; `len` is the number of its bytes seen at that point
    /// (exact when the whole line arrived in one chunk, else a lower bound).
    /// The rest of the line, up to its `\n`, is discarded silently.
    Oversize { len: usize },
}

/// Splits a byte stream into lines, bounded by `max_line_bytes`.
///
/// Lengths are counted before the trailing `\r` is removed and exclude the
/// `\n`; a line of exactly `max_line_bytes` bytes is accepted.
#[derive(Debug)]
pub struct LineSplitter {
    /// Bytes of the pending (unterminated) line; never more than `max`.
    buf: Vec<u8>,
    max: usize,
    /// True while dropping the remainder of an oversize line.
    discarding: bool,
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl LineSplitter {
    /// A splitter accepting lines of up to `max_line_bytes` bytes (at least 1).
    pub fn new(max_line_bytes: usize) -> LineSplitter {
        LineSplitter { buf: Vec::new(), max: max_line_bytes.max(1), discarding: false }
    }

    /// The configured limit.
    pub fn max_line_bytes(&self) -> usize {
        self.max
    }

    /// Bytes of the pending, unterminated line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// True while the rest of an oversize line is being dropped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Feeds one chunk; `out` gets every item it completes, in order. Lines
    /// wholly inside `chunk` are passed without copying.
    pub fn feed(&mut self, chunk: &[u8], mut out: impl FnMut(Item<'_>)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                self.feed_partial(rest, &mut out);
                return;
            };
            let part = &rest[..nl];
            rest = &rest[nl + 1..];
            if self.discarding {
                // The `\n` of the oversize line: already reported.
                self.discarding = false;
                continue;
            }
            let total = self.buf.len() + part.len();
            if total > self.max {
                self.clear_buf();
                out(Item::Oversize { len: total });
            } else if self.buf.is_empty() {
                out(Item::Line(strip_cr(part)));
            } else {
                self.buf.extend_from_slice(part);
                out(Item::Line(strip_cr(&self.buf)));
                self.clear_buf();
            }
        }
    }

    /// Bytes without a `\n`: buffer them, or start discarding.
    fn feed_partial(&mut self, part: &[u8], out: &mut impl FnMut(Item<'_>)) {
        if self.discarding {
            return;
        }
        let total = self.buf.len() + part.len();
        if total > self.max {
            self.clear_buf();
            self.discarding = true;
            out(Item::Oversize { len: total });
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    fn clear_buf(&mut self) {
        if self.buf.capacity() > RETAIN_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    /// End of stream: a final line without `\n` is produced as a line (its
    /// trailing `\r` stripped). Resets the splitter.
    pub fn finish(&mut self, mut out: impl FnMut(Item<'_>)) {
        if !self.buf.is_empty() {
            out(Item::Line(strip_cr(&self.buf)));
        }
        self.clear_buf();
        self.discarding = false;
    }
}

/// The last `cap` bytes written to it (e.g. a worker's stderr).
#[derive(Debug)]
pub struct TailBuffer {
    buf: VecDeque<u8>,
    cap: usize,
    total: u64,
}

impl TailBuffer {
    pub fn new(cap: usize) -> TailBuffer {
        TailBuffer { buf: VecDeque::with_capacity(cap.min(RETAIN_CAPACITY)), cap, total: 0 }
    }

    /// Appends `bytes`, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.cap == 0 {
            return;
        }
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(bytes);
    }

    /// Bytes currently held (≤ capacity).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Everything ever pushed, including dropped bytes.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The held bytes, oldest first.
    pub fn to_vec(&self) -> Vec<u8> {
        self.buf.iter().copied().collect()
    }

    /// The held bytes as text: a UTF-8 sequence cut by the window start is
    /// dropped, other invalid bytes become U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        let bytes = self.to_vec();
        // Skip at most 3 continuation bytes left over from a cut character.
        let skip = if self.total > self.buf.len() as u64 {
            bytes.iter().take(3).take_while(|&&b| b & 0xC0 == 0x80).count()
        } else {
            0
        };
        String::from_utf8_lossy(&bytes[skip..]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Own {
        L(Vec<u8>),
        Big(usize),
    }

    fn collect(sp: &mut LineSplitter, chunks: &[&[u8]], finish: bool) -> Vec<Own> {
        let mut v = Vec::new();
        let mut push = |it: Item<'_>| {
            v.push(match it {
                Item::Line(l) => Own::L(l.to_vec()),
                Item::Oversize { len } => Own::Big(len),
            })
        };
        for c in chunks {
            sp.feed(c, &mut push);
        }
        if finish {
            sp.finish(&mut push);
        }
        v
    }

    fn l(s: &str) -> Own {
        Own::L(s.as_bytes().to_vec())
    }

    /// Every way of cutting `input` into two or three chunks gives `expected`.
    fn all_splits(max: usize, input: &[u8], expected: &[Own]) {
        let n = input.len();
        for i in 0..=n {
            for j in i..=n {
                let mut sp = LineSplitter::new(max);
                let got = collect(&mut sp, &[&input[..i], &input[i..j], &input[j..]], true);
                assert_eq!(got, expected, "cuts at {i},{j} of {:?}", String::from_utf8_lossy(input));
                assert!(sp.pending() == 0 && !sp.is_discarding());
            }
        }
        // And byte by byte.
        let mut sp = LineSplitter::new(max);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(collect(&mut sp, &bytes, true), expected, "byte by byte");
    }

    #[test]
    fn simple_lines_at_every_boundary() {
        all_splits(64, b"a\nbc\n\ndef\n", &[l("a"), l("bc"), l(""), l("def")]);
    }

    #[test]
    fn crlf_is_stripped_once() {
        all_splits(64, b"a\r\nb\r\r\n\r\n", &[l("a"), l("b\r"), l("")]);
        // A lone \r inside a line stays.
        all_splits(64, b"x\ry\n", &[l("x\ry")]);
    }

    #[test]
    fn final_line_without_newline_needs_finish() {
        let mut sp = LineSplitter::new(64);
        assert_eq!(collect(&mut sp, &[b"one\ntw", b"o"], false), vec![l("one")]);
        assert_eq!(sp.pending(), 3);
        assert_eq!(collect(&mut sp, &[], true), vec![l("two")]);
        all_splits(64, b"one\ntwo\r", &[l("one"), l("two")]);
        // finish on empty state produces nothing.
        assert!(collect(&mut LineSplitter::new(4), &[], true).is_empty());
    }

    #[test]
    fn never_splits_on_unicode_separators() {
        let input = "{\"t\":\"a\u{2028}b\u{2029}c\u{85}d\"}\n".as_bytes();
        let expected = [Own::L(input[..input.len() - 1].to_vec())];
        all_splits(64, input, &expected);
    }

    #[test]
    fn oversize_then_normal_line() {
        // Limit 4: "abcde" (5) is oversize whichever way it is cut; the report
        // comes once and the next line is intact.
        let input = b"ok\nabcdefgh\nnext\n";
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut sp = LineSplitter::new(4);
                let got = collect(&mut sp, &[&input[..i], &input[i..j], &input[j..]], true);
                assert_eq!(got.len(), 3, "cuts {i},{j}: {got:?}");
                assert_eq!(got[0], l("ok"));
                assert!(matches!(got[1], Own::Big(n) if (5..=8).contains(&n)), "cuts {i},{j}: {got:?}");
                assert_eq!(got[2], l("next"));
            }
        }
        // Whole line in one chunk: exact length.
        let mut sp = LineSplitter::new(4);
        assert_eq!(collect(&mut sp, &[input], true), vec![l("ok"), Own::Big(8), l("next")]);
    }

    #[test]
    fn exact_limit_is_accepted_and_cr_counts() {
        all_splits(4, b"abcd\n", &[l("abcd")]);
        all_splits(4, b"abc\r\n", &[l("abc")]);
        let mut sp = LineSplitter::new(4);
        assert_eq!(collect(&mut sp, &[b"abcd\r\n"], true), vec![Own::Big(5)]);
    }

    #[test]
    fn oversize_without_newline_is_bounded_and_reported_once() {
        let mut sp = LineSplitter::new(8);
        let mut reports = 0;
        for _ in 0..1000 {
            sp.feed(&[b'x'; 100], |it| {
                assert!(matches!(it, Item::Oversize { .. }));
                reports += 1;
            });
            assert!(sp.pending() <= 8);
        }
        assert_eq!(reports, 1);
        assert!(sp.is_discarding());
        // EOF inside the oversize line: nothing more.
        assert!(collect(&mut sp, &[], true).is_empty());
        // After finish the splitter is fresh.
        assert_eq!(collect(&mut sp, &[b"hi\n"], true), vec![l("hi")]);
    }

    #[test]
    fn oversize_cut_exactly_at_newline() {
        let mut sp = LineSplitter::new(3);
        // Buffered "abc" (at the limit), then "d" pushes it over, then "\n".
        assert_eq!(collect(&mut sp, &[b"abc", b"d", b"\nz\n"], true), vec![Own::Big(4), l("z")]);
        // Over the limit exactly when the newline arrives.
        assert_eq!(collect(&mut sp, &[b"ab", b"cd\ny\n"], true), vec![Own::Big(4), l("y")]);
    }

    #[test]
    fn tail_buffer_keeps_last_bytes() {
        let mut t = TailBuffer::new(5);
        assert!(t.is_empty());
        t.push(b"abc");
        assert_eq!(t.to_vec(), b"abc");
        t.push(b"def");
        assert_eq!(t.to_vec(), b"bcdef");
        t.push(b"0123456789");
        assert_eq!(t.to_vec(), b"56789");
        t.push(b"");
        assert_eq!(t.len(), 5);
        assert_eq!(t.total_bytes(), 16);
        let mut z = TailBuffer::new(0);
        z.push(b"abc");
        assert!(z.is_empty());
    }

    #[test]
    fn tail_buffer_lossy_drops_cut_character() {
        let mut t = TailBuffer::new(4);
        t.push("xé€".as_bytes()); // 1 + 2 + 3 bytes; window = [0xA9, €]
        assert_eq!(t.to_string_lossy(), "€");
        let mut u = TailBuffer::new(16);
        u.push(b"ok \xff");
        assert_eq!(u.to_string_lossy(), "ok \u{fffd}");
    }
}
