//! Unit tests of [`super::ResponseReader`]: every framing at every chunk
//! boundary, byte by byte, oversize and malformed input.

use super::*;

#[derive(Debug, Default, PartialEq)]
struct Got {
    status: Option<u16>,
    body: Vec<u8>,
    ended: bool,
    heads: usize,
}

fn collect(got: &mut Got) -> impl FnMut(Item<'_>) + '_ {
    move |item| match item {
        Item::Head { status } => {
            got.status = Some(status);
            got.heads += 1;
        }
        Item::Body(b) => {
            assert!(!got.ended, "body after end");
            got.body.extend_from_slice(b);
        }
        Item::End => {
            assert!(!got.ended, "two ends");
            got.ended = true;
        }
    }
}

/// Feed `pieces` in order, then (if `eof`) the close; the first fault wins.
fn run(pieces: &[&[u8]], eof: bool, max_body: Option<usize>) -> (Got, Result<(), HttpFault>) {
    let mut r = ResponseReader::new(false, max_body);
    let mut got = Got::default();
    let mut res = Ok(());
    for p in pieces {
        res = r.feed(p, &mut collect(&mut got));
        if res.is_err() {
            return (got, res);
        }
    }
    if eof {
        res = r.finish(&mut collect(&mut got));
    }
    (got, res)
}

/// The same bytes split in two at every index and fed byte by byte all
/// give `want`.
fn every_split(bytes: &[u8], eof: bool, want: &Got) {
    for cut in 0..=bytes.len() {
        let (got, res) = run(&[&bytes[..cut], &bytes[cut..]], eof, Some(1 << 20));
        assert_eq!(res, Ok(()), "split at {cut}");
        assert_eq!(&got, want, "split at {cut}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    let (got, res) = run(&singles, eof, Some(1 << 20));
    assert_eq!(res, Ok(()), "byte by byte");
    assert_eq!(&got, want, "byte by byte");
}

fn ok(status: u16, body: &[u8]) -> Got {
    Got { status: Some(status), body: body.to_vec(), ended: true, heads: 1 }
}

#[test]
fn content_length_at_every_boundary() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n{\"healthy\":true,\"version\":\"1.18.33\"}";
    every_split(resp, false, &ok(200, br#"{"healthy":true,"version":"1.18.33"}"#));
}

#[test]
fn chunked_with_extensions_and_trailer_at_every_boundary() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n1\r\n \r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
    every_split(resp, false, &ok(200, b"hello 0123456789"));
}

#[test]
fn chunked_tolerates_bare_lf() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n";
    every_split(resp, false, &ok(200, b"abc"));
}

#[test]
fn chunked_event_stream_never_ends_by_itself() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n4\r\n{}\n\n\r\n";
    let (got, res) = run(&[resp], false, None);
    assert_eq!(res, Ok(()));
    assert_eq!(got, Got { status: Some(200), body: b"data: {}\n\n".to_vec(), ended: false, heads: 1 });
    // the peer closing mid-stream is a truncation
    let (_, res) = run(&[resp], true, None);
    assert_eq!(res, Err(HttpFault::Truncated));
}

#[test]
fn body_until_close() {
    let resp = b"HTTP/1.0 200 OK\r\n\r\nall of it";
    every_split(resp, true, &ok(200, b"all of it"));
    // without the close it is not complete
    let (got, res) = run(&[resp], false, None);
    assert_eq!(res, Ok(()));
    assert!(!got.ended);
}

#[test]
fn no_body_statuses_and_interim_responses() {
    every_split(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, &ok(204, b""));
    every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &ok(200, b""));
    let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
    every_split(interim, false, &ok(404, b"{}"));
    let mut r = ResponseReader::new(true, None);
    let mut got = Got::default();
    assert_eq!(r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &mut collect(&mut got)), Ok(()));
    assert_eq!(got, ok(200, b""), "a HEAD response has no body");
}

#[test]
fn bytes_after_the_end_are_ignored() {
    let (got, res) = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE"], true, None);
    assert_eq!(res, Ok(()));
    assert_eq!(got, ok(200, b"ok"));
}

#[test]
fn oversize_head_and_body() {
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    while big.len() <= MAX_HEAD_BYTES {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(run(&[&big], false, None).1, Err(HttpFault::BadHead("too many header fields")));
    let mut long = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
    long.resize(MAX_HEAD_BYTES + 10, b'a');
    assert_eq!(run(&[&long], false, None).1, Err(HttpFault::HeadTooLarge));
    // a head of exactly the maximum still parses
    let mut exact = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ".to_vec();
    exact.resize(MAX_HEAD_BYTES - 4, b'a');
    exact.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exact.len(), MAX_HEAD_BYTES);
    assert_eq!(run(&[&exact], false, None), (ok(200, b""), Ok(())));

    let declared = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(run(&[declared], false, Some(10)).1, Err(HttpFault::BodyTooLarge));
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n";
    assert_eq!(run(&[chunked], false, Some(10)).1, Err(HttpFault::BodyTooLarge));
    let close = b"HTTP/1.1 200 OK\r\n\r\n0123456789A";
    assert_eq!(run(&[close], true, Some(10)).1, Err(HttpFault::BodyTooLarge));
    assert_eq!(run(&[close], true, Some(11)).1, Ok(()));
}

#[test]
fn malformed_heads() {
    for bad in [
        &b"HTTP/2 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ] {
        let (_, res) = run(&[bad], false, None);
        assert!(matches!(res, Err(HttpFault::BadHead(_))), "{:?}: {res:?}", String::from_utf8_lossy(bad));
    }
    // the same Content-Length twice is fine
    let (got, res) = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"], false, None);
    assert_eq!((got, res), (ok(200, b"x"), Ok(())));
    let mut interims = Vec::new();
    for _ in 0..=MAX_INTERIM {
        interims.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    assert!(matches!(run(&[&interims], false, None).1, Err(HttpFault::BadHead(_))));
}

#[test]
fn malformed_chunks() {
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in ["zz\r\n", "\r\n", "3\r\nabcd\r\n", "3\r\nabc\rX", "3\rX", "11111111111111111\r\n"] {
        let resp = format!("{head}{body}");
        let (_, res) = run(&[resp.as_bytes()], false, None);
        assert!(matches!(res, Err(HttpFault::BadChunk(_))), "{body:?}: {res:?}");
    }
    let long_ext = format!("{head}1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
    assert!(matches!(run(&[long_ext.as_bytes()], false, None).1, Err(HttpFault::BadChunk(_))));
    let big_trailer = format!("{head}0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILER_BYTES));
    assert!(matches!(run(&[big_trailer.as_bytes()], false, None).1, Err(HttpFault::BadChunk(_))));
}

#[test]
fn truncations() {
    for (bytes, eof_ok) in [
        (&b""[..], false),
        (b"HTTP/1.1 200 OK\r\nContent-Le", false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", false),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", true),
    ] {
        let (_, res) = run(&[bytes], true, None);
        assert_eq!(res.is_ok(), eof_ok, "{:?}: {res:?}", String::from_utf8_lossy(bytes));
        if !eof_ok {
            assert_eq!(res, Err(HttpFault::Truncated));
        }
    }
}

#[test]
fn fault_reasons_are_fixed_strings() {
    assert_eq!(HttpFault::BadChunk("x").as_str(), "bad_chunk");
    assert_eq!(HttpFault::BadChunk("x").to_string(), "bad_chunk: x");
    assert_eq!(HttpFault::Truncated.to_string(), "truncated");
}
