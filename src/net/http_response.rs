//! HTTP/1.1 responses for the gateway's own outbound client
//! (`reactor::http_client`): the status line and headers (httparse, head ≤
//! [`MAX_HEAD_BYTES`], security.md §8.1 step 6), then the body framed by
//! `Content-Length`, the chunked transfer coding or the end of the
//! connection (RFC 9112 §6.3). Sans-IO: bytes in, [`Item`]s out; it never
//! buffers a body (the caller collects or streams it) and keeps at most one
//! response head in memory.

use std::fmt;

/// A response head larger than this is refused (security.md §8.1 step 6).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Header fields parsed per response head.
pub const MAX_HEADERS: usize = 64;
/// A chunk-size line (hex size + extensions) longer than this is malformed.
pub const MAX_CHUNK_LINE: usize = 1024;
/// The trailer section after the last chunk is bounded by this.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Interim (1xx) responses skipped before the final one.
pub const MAX_INTERIM: usize = 8;

/// Why a response could not be read. Each says what went wrong with the
/// peer's bytes; the caller drops the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpFault {
    /// The head did not end within [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// The status line or a header is not HTTP/1.x.
    BadHead(&'static str),
    /// The chunked framing is broken.
    BadChunk(&'static str),
    /// The body exceeds the caller's bound.
    BodyTooLarge,
    /// The connection ended before the response was complete.
    Truncated,
}

impl HttpFault {
    /// A short, fixed reason (log fields, metric labels).
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpFault::HeadTooLarge => "head_too_large",
            HttpFault::BadHead(_) => "bad_head",
            HttpFault::BadChunk(_) => "bad_chunk",
            HttpFault::BodyTooLarge => "body_too_large",
            HttpFault::Truncated => "truncated",
        }
    }
}

impl fmt::Display for HttpFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpFault::BadHead(m) | HttpFault::BadChunk(m) => write!(f, "{}: {m}", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// What [`ResponseReader::feed`] found, in order: one `Head`, any number of
/// `Body` slices (already de-chunked), then `End` once the body is complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Head { status: u16 },
    Body(&'a [u8]),
    End,
}

/// How the body of the final response is delimited.
#[derive(Debug)]
enum Framing {
    /// `Content-Length` bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Everything until the peer closes.
    UntilClose,
}

#[derive(Debug)]
enum State {
    Head,
    Body(Framing),
    Done,
}

/// Incremental reader of one response. See the module docs.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    head: Vec<u8>,
    /// The request was `HEAD`: no body whatever the headers say.
    head_request: bool,
    /// Body bound (`None`: unbounded, for event streams whose events are bounded elsewhere).
    max_body: Option<u64>,
    body_seen: u64,
    interim: usize,
}

impl ResponseReader {
    pub fn new(head_request: bool, max_body: Option<usize>) -> Self {
        ResponseReader {
            state: State::Head,
            head: Vec::new(),
            head_request,
            max_body: max_body.map(|m| m as u64),
            body_seen: 0,
            interim: 0,
        }
    }

    /// The whole response has been read (`Item::End` was produced).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feed bytes read from the connection. Bytes after the end of the
    /// response are ignored (the gateway always sends `Connection: close`).
    pub fn feed(&mut self, input: &[u8], on: &mut dyn FnMut(Item<'_>)) -> Result<(), HttpFault> {
        let mut input = input;
        while !input.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Head => {
                    let room = MAX_HEAD_BYTES.saturating_sub(self.head.len());
                    let take = input.len().min(room);
                    self.head.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    match self.parse_head(on)? {
                        None if self.head.len() >= MAX_HEAD_BYTES => return Err(HttpFault::HeadTooLarge),
                        None => {}
                        Some(used) => {
                            // Bytes past the head belong to the body (or the next head).
                            let rest = self.head.split_off(used);
                            self.head.clear();
                            if !rest.is_empty() {
                                self.feed(&rest, on)?;
                            }
                        }
                    }
                }
                State::Body(_) => {
                    let State::Body(mut framing) = std::mem::replace(&mut self.state, State::Done) else {
                        return Ok(());
                    };
                    let (used, done) = match &mut framing {
                        Framing::Length(left) => {
                            let n = input.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                            *left -= n as u64;
                            self.body(&input[..n], on)?;
                            (n, *left == 0)
                        }
                        Framing::UntilClose => {
                            self.body(input, on)?;
                            (input.len(), false)
                        }
                        Framing::Chunked(c) => {
                            let mut ranges: Vec<(usize, usize)> = Vec::new();
                            let (used, done) = c.feed(input, &mut ranges)?;
                            for (a, b) in ranges {
                                self.body(&input[a..b], on)?;
                            }
                            (used, done)
                        }
                    };
                    if done {
                        self.finish_body(on);
                    } else {
                        self.state = State::Body(framing);
                    }
                    input = &input[used..];
                }
            }
        }
        Ok(())
    }

    /// The peer closed the connection: complete a body delimited by the
    /// close, or report the truncation.
    pub fn finish(&mut self, on: &mut dyn FnMut(Item<'_>)) -> Result<(), HttpFault> {
        match &self.state {
            State::Done => Ok(()),
            State::Body(Framing::UntilClose) => {
                self.finish_body(on);
                Ok(())
            }
            _ => Err(HttpFault::Truncated),
        }
    }

    fn body(&mut self, bytes: &[u8], on: &mut dyn FnMut(Item<'_>)) -> Result<(), HttpFault> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.body_seen += bytes.len() as u64;
        if self.max_body.is_some_and(|m| self.body_seen > m) {
            return Err(HttpFault::BodyTooLarge);
        }
        on(Item::Body(bytes));
        Ok(())
    }

    fn finish_body(&mut self, on: &mut dyn FnMut(Item<'_>)) {
        self.state = State::Done;
        on(Item::End);
    }

    /// Parse the buffered head; `Some(len)` when a complete head was consumed.
    fn parse_head(&mut self, on: &mut dyn FnMut(Item<'_>)) -> Result<Option<usize>, HttpFault> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let used = match resp.parse(&self.head) {
            Ok(httparse::Status::Partial) => return Ok(None),
            Ok(httparse::Status::Complete(n)) => n,
            Err(httparse::Error::TooManyHeaders) => return Err(HttpFault::BadHead("too many header fields")),
            Err(_) => return Err(HttpFault::BadHead("malformed status line or header")),
        };
        let status = resp.code.ok_or(HttpFault::BadHead("no status code"))?;
        if !(100..=599).contains(&status) {
            return Err(HttpFault::BadHead("status code out of range"));
        }
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(HttpFault::BadHead("unexpected protocol switch"));
            }
            self.interim += 1;
            if self.interim > MAX_INTERIM {
                return Err(HttpFault::BadHead("too many interim responses"));
            }
            return Ok(Some(used)); // an interim response: the final head follows
        }
        let framing = framing(resp.headers, status, self.head_request)?;
        if let (Some(Framing::Length(n)), Some(max)) = (&framing, self.max_body) {
            if *n > max {
                return Err(HttpFault::BodyTooLarge);
            }
        }
        on(Item::Head { status });
        match framing {
            None | Some(Framing::Length(0)) => self.finish_body(on),
            Some(f) => self.state = State::Body(f),
        }
        Ok(Some(used))
    }
}

/// RFC 9112 §6.3 body length rules; `None`: no body.
fn framing(headers: &[httparse::Header<'_>], status: u16, head_request: bool) -> Result<Option<Framing>, HttpFault> {
    if head_request || status == 204 || status == 304 {
        return Ok(None);
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut coded = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value).map_err(|_| HttpFault::BadHead("transfer-encoding not ASCII"))?;
            for coding in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                coded = true;
                // chunked must be the final coding; nothing else is supported.
                chunked = coding.eq_ignore_ascii_case("chunked");
                if !chunked {
                    return Err(HttpFault::BadHead("unsupported transfer coding"));
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| HttpFault::BadHead("content-length not ASCII"))?;
            let v = v.trim();
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpFault::BadHead("invalid content-length"));
            }
            let n: u64 = v.parse().map_err(|_| HttpFault::BadHead("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpFault::BadHead("conflicting content-length"));
            }
            length = Some(n);
        }
    }
    Ok(Some(if coded && chunked {
        Framing::Chunked(Chunked::default())
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    }))
}

/// Where the chunked decoder is within the framing.
#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size (and, after `;` or whitespace, extensions).
    #[default]
    Size,
    /// Saw `\r` after the size line, want `\n`.
    SizeLf,
    /// This many data bytes are left in the chunk.
    Data(u64),
    /// After the data: want `\r\n` (a bare `\n` is tolerated).
    DataCr,
    DataLf,
    /// Trailer lines until an empty line.
    Trailer,
}

/// The chunked transfer coding decoder (RFC 9112 §7.1).
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    size: u64,
    digits: usize,
    in_ext: bool,
    line_len: usize,
    trailer_total: usize,
}

impl Chunked {
    /// Consume framing from `input`; data ranges go to `out`. Returns the
    /// bytes consumed and whether the last chunk and trailer were read.
    fn feed(&mut self, input: &[u8], out: &mut Vec<(usize, usize)>) -> Result<(usize, bool), HttpFault> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Data(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.push((i, i + n));
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 { ChunkState::DataCr } else { ChunkState::Data(left) };
                    continue;
                }
                ChunkState::Size => {
                    self.line_len += 1;
                    if self.line_len > MAX_CHUNK_LINE {
                        return Err(HttpFault::BadChunk("chunk size line too long"));
                    }
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' => self.size_line_done()?,
                        b';' | b' ' | b'\t' => self.in_ext = true,
                        _ if self.in_ext => {}
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(HttpFault::BadChunk("bad chunk size"))?;
                            self.digits += 1;
                            if self.digits > 16 {
                                return Err(HttpFault::BadChunk("chunk size too large"));
                            }
                            self.size = (self.size << 4) | u64::from(d);
                        }
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(HttpFault::BadChunk("CR without LF after chunk size"));
                    }
                    self.size_line_done()?;
                }
                ChunkState::DataCr => match b {
                    b'\r' => self.state = ChunkState::DataLf,
                    b'\n' => self.state = ChunkState::Size,
                    _ => return Err(HttpFault::BadChunk("chunk data longer than its size")),
                },
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(HttpFault::BadChunk("CR without LF after chunk data"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    self.trailer_total += 1;
                    if self.trailer_total > MAX_TRAILER_BYTES {
                        return Err(HttpFault::BadChunk("trailer section too large"));
                    }
                    match b {
                        b'\n' if self.line_len == 0 => return Ok((i + 1, true)),
                        b'\n' => self.line_len = 0,
                        b'\r' => {}
                        _ => self.line_len += 1,
                    }
                }
            }
            i += 1;
        }
        Ok((i, false))
    }

    /// A size line ended: start its data, or the trailer after the last chunk.
    fn size_line_done(&mut self) -> Result<(), HttpFault> {
        if self.digits == 0 {
            return Err(HttpFault::BadChunk("missing chunk size"));
        }
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        self.in_ext = false;
        self.line_len = 0;
        self.state = if size == 0 { ChunkState::Trailer } else { ChunkState::Data(size) };
        Ok(())
    }
}

#[cfg(test)]
#[path = "http_response_tests.rs"]
mod tests;
