//! Unit tests of the HTTP rules, fed with stream bytes directly (no packets).

use std::io::Write as _;

use super::*;

/// What a test listener saw of one transaction.
#[derive(Debug, Default, Clone)]
struct Seen {
    tx: Option<Transaction>,
    raw: Vec<u8>,
    decoded: Vec<u8>,
    gaps: Vec<(u64, u64)>,
    decode_failed: Option<String>,
}

#[derive(Default)]
struct Rec {
    want: bool,
    open: Vec<Seen>,
    done: Vec<Seen>,
    /// Request bodies, each with the `tx` of its `request_done`.
    uploads: Vec<Seen>,
}

impl HttpListener for Rec {
    fn response_head(&mut self, _tx: &Transaction) -> bool {
        self.open.push(Seen::default());
        self.want
    }
    fn body(&mut self, _tx: &Transaction, event: BodyEvent<'_>) {
        let s = self.open.last_mut().expect("head first");
        match event {
            BodyEvent::Raw { offset, bytes } => {
                assert_eq!(
                    offset,
                    s.raw.len() as u64 + s.gaps.iter().map(|g| g.1).sum::<u64>()
                );
                s.raw.extend_from_slice(bytes);
            }
            BodyEvent::Decoded { offset, bytes } => {
                assert_eq!(offset, s.decoded.len() as u64);
                s.decoded.extend_from_slice(bytes);
            }
            BodyEvent::Gap { offset, len } => s.gaps.push((offset, len)),
            BodyEvent::DecodeFailed { reason } => s.decode_failed = Some(reason.to_owned()),
        }
    }
    fn request_head(&mut self, tx: &Transaction) -> bool {
        assert!(tx.response.is_none() && tx.request.is_some());
        self.uploads.push(Seen::default());
        self.want
    }
    fn request_body(&mut self, _tx: &Transaction, event: BodyEvent<'_>) {
        let s = self.uploads.last_mut().expect("head first");
        match event {
            BodyEvent::Raw { bytes, .. } => s.raw.extend_from_slice(bytes),
            BodyEvent::Decoded { bytes, .. } => s.decoded.extend_from_slice(bytes),
            BodyEvent::Gap { offset, len } => s.gaps.push((offset, len)),
            BodyEvent::DecodeFailed { reason } => s.decode_failed = Some(reason.to_owned()),
        }
    }
    fn request_done(&mut self, tx: &Transaction) {
        let s = self.uploads.last_mut().expect("head first");
        assert!(s.tx.is_none(), "one request_done per body");
        s.tx = Some(tx.clone());
    }
    fn http_transaction(&mut self, tx: &Transaction) {
        let mut s = if tx.response.is_some() && tx.malformed.is_none() {
            self.open.pop().unwrap_or_default()
        } else {
            Seen::default()
        };
        s.tx = Some(tx.clone());
        self.done.push(s);
    }
}

fn info(stream: u64, midstream: bool) -> SessionInfo {
    SessionInfo {
        stream,
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:80".parse().unwrap(),
        start: Timestamp(0),
        midstream,
    }
}

/// Drives one session: pieces of each direction in order, split into `piece`-byte data
/// events.
struct Driver {
    a: HttpAnalyzer<Rec>,
    s: SessionInfo,
    off: [u64; 2],
}

impl Driver {
    fn new(midstream: bool) -> Self {
        let mut a = HttpAnalyzer::new(
            Rec {
                want: true,
                ..Rec::default()
            },
            Limits::default(),
        );
        let s = info(7, midstream);
        a.session_start(&s, Timestamp(1));
        Self { a, s, off: [0; 2] }
    }
    fn send(&mut self, dir: Direction, bytes: &[u8], piece: usize) -> &mut Self {
        for p in bytes.chunks(piece.max(1)) {
            self.a
                .data(&self.s, dir, self.off[dir.index()], p, Timestamp(2));
            self.off[dir.index()] += p.len() as u64;
        }
        self
    }
    fn req(&mut self, bytes: &[u8]) -> &mut Self {
        self.send(Direction::Orig, bytes, usize::MAX)
    }
    fn resp(&mut self, bytes: &[u8]) -> &mut Self {
        self.send(Direction::Resp, bytes, usize::MAX)
    }
    fn lose(&mut self, dir: Direction, len: u64) -> &mut Self {
        self.a
            .gap(&self.s, dir, self.off[dir.index()], len, Timestamp(3));
        self.off[dir.index()] += len;
        self
    }
    fn end(&mut self, reason: EndReason) -> Vec<Seen> {
        self.a.session_end(&self.s, reason, Timestamp(9));
        std::mem::take(&mut self.a.listener_mut().done)
    }
}

fn status(s: &Seen) -> Option<u16> {
    s.tx.as_ref()?.response.as_ref().map(|r| r.status)
}

fn uri(s: &Seen) -> String {
    s.tx.as_ref()
        .and_then(|t| t.request.as_ref())
        .map(|r| String::from_utf8_lossy(&r.uri).into_owned())
        .unwrap_or_default()
}

#[test]
fn heads_split_across_segments_any_size() {
    let req = b"GET /a.mp3 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n";
    let resp =
        b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: 11\r\n\r\nhello world";
    for piece in 1..resp.len() {
        let mut d = Driver::new(false);
        d.send(Direction::Orig, req, piece)
            .send(Direction::Resp, resp, piece);
        let seen = d.end(EndReason::Fin);
        assert_eq!(seen.len(), 1, "piece {piece}");
        assert_eq!(seen[0].raw, b"hello world", "piece {piece}");
        let tx = seen[0].tx.as_ref().unwrap();
        assert!(tx.body.complete);
        assert_eq!(tx.url().unwrap(), "http://example.org/a.mp3");
        assert_eq!(
            tx.response.as_ref().unwrap().content_type().as_deref(),
            Some("audio/mpeg")
        );
    }
}

#[test]
fn keep_alive_and_pipelining_pair_in_order() {
    let mut d = Driver::new(false);
    d.req(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nBB");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n");
    d.req(b"GET /4 HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop");
    let seen = d.end(EndReason::Fin);
    let got: Vec<_> = seen
        .iter()
        .map(|s| (uri(s), status(s), s.raw.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/1".into(), Some(200), b"A".to_vec()),
            ("/2".into(), Some(200), b"BB".to_vec()),
            ("/3".into(), Some(200), vec![]),
            ("/4".into(), Some(404), b"nop".to_vec()),
        ]
    );
    assert!(seen.iter().all(|s| s.tx.as_ref().unwrap().body.complete));
    assert_eq!(
        seen.iter()
            .map(|s| s.tx.as_ref().unwrap().number)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn http10_read_until_close() {
    let mut d = Driver::new(false);
    d.req(b"GET /old HTTP/1.0\r\n\r\n");
    d.resp(b"HTTP/1.0 200 OK\r\nContent-Type: audio/ogg\r\n\r\nfirst ");
    d.resp(b"second");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen[0].raw, b"first second");
    assert!(seen[0].tx.as_ref().unwrap().body.complete);

    // Ended by RST: the body may be cut short, so it is not called complete.
    let mut d = Driver::new(false);
    d.req(b"GET /old HTTP/1.0\r\n\r\n");
    d.resp(b"HTTP/1.0 200 OK\r\n\r\nabc");
    let seen = d.end(EndReason::Rst);
    let body = &seen[0].tx.as_ref().unwrap().body;
    assert!(!body.complete);
    assert!(body.notes[0].contains("rst"), "{:?}", body.notes);
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    for piece in [1, 2, 3, 7, 1000] {
        let mut d = Driver::new(false);
        d.req(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        d.send(Direction::Resp, resp, piece);
        let seen = d.end(EndReason::Fin);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].raw, b"Wikipedia", "piece {piece}");
        assert_eq!(status(&seen[1]), Some(204));
        assert!(seen.iter().all(|s| s.tx.as_ref().unwrap().body.complete));
    }
}

#[test]
fn no_body_for_head_1xx_204_304_and_100_continue() {
    let mut d = Driver::new(false);
    d.req(b"HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    d.req(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    d.resp(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n");
    d.resp(b"HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n");
    d.resp(b"HTTP/1.1 100 Continue\r\n\r\n");
    d.req(b"data");
    d.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    let seen = d.end(EndReason::Fin);
    let got: Vec<_> = seen
        .iter()
        .map(|s| (uri(s), status(s), s.raw.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/h".into(), Some(200), 0),
            ("/n".into(), Some(304), 0),
            ("/c".into(), Some(204), 0),
            ("/up".into(), Some(201), 2),
        ]
    );
    assert_eq!(d.a.stats().interim, 1);
}

#[test]
fn connect_and_upgrade_stop_parsing() {
    let mut d = Driver::new(false);
    d.req(b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    d.resp(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    d.req(b"\x81\x05hello GET /x HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nX");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.len(), 1);
    assert_eq!(status(&seen[0]), Some(101));
    assert_eq!(d.a.stats().tunnels, 1);

    let mut d = Driver::new(false);
    d.req(b"CONNECT example.org:443 HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01 tls bytes");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].raw, b"");

    // A refused upgrade: the client keeps speaking HTTP.
    let mut d = Driver::new(false);
    d.req(b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
    d.resp(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    d.req(b"GET /next HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nN");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.iter().map(uri).collect::<Vec<_>>(), ["/chat", "/next"]);
}

#[test]
fn midstream_response_without_request_is_still_delivered() {
    let mut d = Driver::new(true);
    // The capture starts inside an earlier body.
    d.resp(b"tail of an earlier body\r\nHTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: 4\r\n\r\nID3!");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].raw, b"ID3!");
    let tx = seen[0].tx.as_ref().unwrap();
    assert!(tx.request.is_none());
    assert!(tx.body.complete);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn content_encoding_decoded_streaming() {
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8).collect();
    let gz = gzip(&plain);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: x-gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    resp.extend_from_slice(&gz);
    let mut d = Driver::new(false);
    d.req(b"GET /g HTTP/1.1\r\n\r\n");
    d.send(Direction::Resp, &resp, 1448);
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen[0].raw, gz);
    assert_eq!(seen[0].decoded, plain);
    let body = &seen[0].tx.as_ref().unwrap().body;
    assert_eq!(body.codings, [Coding::Gzip]);
    assert_eq!(body.decoded_len, plain.len() as u64);
    assert!(body.decode_error.is_none());
}

#[test]
fn decode_failure_keeps_raw_and_says_why() {
    let mut d = Driver::new(false);
    d.req(b"GET /g HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen[0].raw, b"not gzip!");
    assert!(seen[0].decode_failed.is_some());
    let body = &seen[0].tx.as_ref().unwrap().body;
    assert!(body.complete);
    assert!(
        body.decode_error
            .as_ref()
            .unwrap()
            .contains("content decoding failed")
    );
    assert_eq!(d.a.stats().decode_failures, 1);
}

#[test]
fn malformed_framing_refused_and_counted() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "conflicting Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            "chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfoo\r\n",
            "bad chunk-size line",
        ),
    ];
    for (resp, why) in cases {
        let mut d = Driver::new(false);
        d.req(b"GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n");
        d.resp(resp);
        d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let seen = d.end(EndReason::Fin);
        assert_eq!(d.a.stats().malformed, 1, "{why}");
        let first = seen[0].tx.as_ref().unwrap();
        let said = first
            .malformed
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| first.body.notes.first().cloned())
            .unwrap();
        assert!(said.contains(why), "{said} vs {why}");
        assert!(!first.body.complete, "{why}");
        // Parsing picked up again at the next response.
        assert_eq!(seen[1].raw, b"ok", "{why}");
    }
}

#[test]
fn endless_head_refused() {
    let mut d = Driver::new(false);
    d.req(b"GET /x HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\n");
    let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    for _ in 0..2000 {
        d.resp(line);
    }
    assert_eq!(d.a.stats().malformed, 1);
    assert!(d.a.core.stats.resyncs >= 1);
    // The buffered head never grew past the limit.
    let s = d.a.sessions.get(&7).unwrap();
    assert!(s.sides[1].head.capacity() <= 2 * Limits::default().max_head_bytes + 4096);
}

#[test]
fn transactions_per_session_capped() {
    let mut a = HttpAnalyzer::new(
        Rec::default(),
        Limits {
            max_transactions: 3,
            ..Limits::default()
        },
    );
    let s = info(1, false);
    a.session_start(&s, Timestamp(0));
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".repeat(10);
    a.data(&s, Direction::Resp, 0, &resp, Timestamp(0));
    a.session_end(&s, EndReason::Fin, Timestamp(0));
    assert_eq!(a.listener().done.len(), 3);
    assert_eq!(a.stats().capped_sessions, 1);
}

#[test]
fn gap_inside_body_marks_incomplete_with_ranges() {
    let mut d = Driver::new(false);
    d.req(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123");
    d.lose(Direction::Resp, 3);
    d.resp(b"789HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen[0].raw, b"0123789");
    assert_eq!(seen[0].gaps, [(4, 3)]);
    let body = &seen[0].tx.as_ref().unwrap().body;
    assert!(!body.complete);
    assert_eq!(body.gaps, [(4, Some(7))]);
    assert_eq!(body.raw_len, 10);
    // Content-Length framing survives the gap: the next response is found in place.
    assert_eq!(seen[1].raw, b"ok");
    assert!(seen[1].tx.as_ref().unwrap().body.complete);
}

#[test]
fn gap_in_chunked_data_keeps_framing_but_gap_in_size_line_loses_it() {
    let mut d = Driver::new(false);
    d.req(b"GET /a HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01");
    d.lose(Direction::Resp, 4);
    d.resp(b"6789\r\n0\r\n\r\n");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen[0].raw, b"016789");
    assert_eq!(seen[0].tx.as_ref().unwrap().body.gaps, [(2, Some(6))]);

    let mut d = Driver::new(false);
    d.req(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n01\r\n");
    d.lose(Direction::Resp, 10);
    d.resp(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let seen = d.end(EndReason::Fin);
    let body = &seen[0].tx.as_ref().unwrap().body;
    assert!(!body.complete);
    assert_eq!(body.gaps, [(2, None)]);
    assert_eq!(seen[1].raw, b"ok");
}

#[test]
fn gap_in_gzip_body_stops_decoding_keeps_raw() {
    let gz = gzip(&[7u8; 5000]);
    let mut d = Driver::new(false);
    d.req(b"GET /a HTTP/1.1\r\n\r\n");
    d.resp(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .as_bytes(),
    );
    d.resp(&gz[..10]);
    d.lose(Direction::Resp, 5);
    d.resp(&gz[15..]);
    let seen = d.end(EndReason::Fin);
    assert!(seen[0].decode_failed.as_ref().unwrap().contains("gap"));
    assert_eq!(seen[0].raw.len(), gz.len() - 5);
}

#[test]
fn lost_request_does_not_shift_pairing() {
    let mut d = Driver::new(false);
    d.req(b"GET /1 HTTP/1.1\r\n\r\n");
    d.lose(Direction::Orig, 19);
    d.req(b"GET /3 HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3");
    let seen = d.end(EndReason::Fin);
    let got: Vec<_> = seen.iter().map(|s| (uri(s), s.raw.clone())).collect();
    assert_eq!(got[0], ("/1".into(), b"1".to_vec()));
    assert_eq!(got[1].1, b"2");
    assert!(got[1].0.contains("lost"));
    assert_eq!(got[2], ("/3".into(), b"3".to_vec()));
}

#[test]
fn unanswered_requests_reported_at_session_end() {
    let mut d = Driver::new(false);
    d.req(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.len(), 2);
    assert!(seen[1].tx.as_ref().unwrap().response.is_none());
    assert_eq!(d.a.stats().unanswered, 1);
}

#[test]
fn end_of_capture_flushes_open_body_incomplete() {
    let mut d = Driver::new(false);
    d.req(b"GET /1 HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
    d.a.finish();
    let seen = std::mem::take(&mut d.a.listener_mut().done);
    let body = &seen[0].tx.as_ref().unwrap().body;
    assert!(!body.complete);
    assert_eq!(body.gaps, [(3, Some(100))]);
    assert_eq!(d.a.open_sessions(), 0);
}

#[test]
fn not_http_left_alone() {
    let mut d = Driver::new(false);
    d.req(b"\x16\x03\x01\x02\x00 binary tls hello\r\n\r\n");
    d.resp(b"\x16\x03\x03 more\r\n\r\n");
    let seen = d.end(EndReason::Fin);
    assert!(seen.is_empty());
    assert_eq!(d.a.stats().not_http, 1);
    assert_eq!(d.a.stats().malformed, 0);
}

/// Property: any split of a well-formed exchange into data events gives the same bodies
/// as the whole (the slow model: one event per direction).
#[test]
fn any_split_same_result() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let gz = gzip(&b"abcdefgh".repeat(3000));
    let mut resp = Vec::new();
    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    resp.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n",
    );
    for c in gz.chunks(333) {
        resp.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        resp.extend_from_slice(c);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n");
    resp.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nuntil close");
    let req = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\nGET /4 HTTP/1.1\r\n\r\n";
    let model = {
        let mut d = Driver::new(false);
        d.req(req).resp(&resp);
        d.end(EndReason::Fin)
    };
    assert_eq!(model.len(), 4);
    assert_eq!(model[1].decoded, b"abcdefgh".repeat(3000));
    for _ in 0..200 {
        let mut d = Driver::new(false);
        // Requests before responses, as on the wire; each cut at random places.
        let mut i = 0;
        while i < req.len() {
            let n = rng.random_range(1..=40).min(req.len() - i);
            d.send(Direction::Orig, &req[i..i + n], n);
            i += n;
        }
        let mut j = 0;
        while j < resp.len() {
            let n = rng.random_range(1..=2000).min(resp.len() - j);
            d.send(Direction::Resp, &resp[j..j + n], n);
            j += n;
        }
        let seen = d.end(EndReason::Fin);
        assert_eq!(seen.len(), model.len());
        for (a, b) in seen.iter().zip(&model) {
            assert_eq!(a.raw, b.raw);
            assert_eq!(a.decoded, b.decoded);
            assert_eq!(uri(a), uri(b));
        }
    }
}

/// nDPI__1kxun.pcap stream 51: the capture lost the start of the server's side (the
/// response to the first request); the next response must pair with its own request.
#[test]
fn response_lost_in_gap_does_not_shift_pairing() {
    let mut d = Driver::new(false);
    d.req(b"GET /app.js HTTP/1.1\r\n\r\n");
    d.lose(Direction::Resp, 4320);
    d.resp(b"...tail of app.js\n");
    d.req(b"GET /home.png HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nPNG");
    d.req(b"GET /bar.png HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nBAR");
    let seen = d.end(EndReason::Fin);
    let got: Vec<_> = seen
        .iter()
        .map(|s| (uri(s), status(s), s.raw.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/app.js".into(), None, vec![]),
            ("/home.png".into(), Some(200), b"PNG".to_vec()),
            ("/bar.png".into(), Some(200), b"BAR".to_vec()),
        ]
    );
    assert_eq!(d.a.stats().unanswered, 1);
}

#[test]
fn issue11_shoutcast_icy_status_line_is_http_1_0_until_close() {
    let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    for piece in [1, 3, 7, 1448] {
        let mut d = Driver::new(false);
        d.req(b"GET /stream HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n");
        let resp = [
            b"ICY 200 OK\r\nicy-name: Test Radio\r\nicy-metaint: 8192\r\ncontent-type: audio/mpeg\r\n\r\n"
                .as_slice(),
            &body,
        ]
        .concat();
        d.send(Direction::Resp, &resp, piece);
        let done = d.end(EndReason::Fin);
        assert_eq!(done.len(), 1, "piece {piece}");
        let tx = done[0].tx.as_ref().unwrap();
        let r = tx.response.as_ref().unwrap();
        assert_eq!((r.status, r.head.version), (200, Version::Http10));
        assert_eq!(tx.body.framing, Some(Framing::UntilClose));
        assert!(tx.body.complete);
        assert!(tx.body.notes.iter().any(|n| n.contains("ICY")), "{tx:?}");
        assert_eq!(done[0].raw, body, "piece {piece}");
        assert_eq!(d.a.stats().not_http, 0);
    }
}

#[test]
fn issue11_resync_finds_an_icy_status_line() {
    // Picked up mid-stream: the first thing seen is the tail of a request's answer, then a
    // new connection's worth of ICY answer on its own line.
    let mut d = Driver::new(true);
    d.req(b"GET / HTTP/1.0\r\n\r\n");
    d.resp(b"tail of something\r\nICY 200 OK\r\nicy-name: X\r\n\r\nAUDIO");
    let done = d.end(EndReason::Fin);
    assert_eq!(done.len(), 1);
    assert_eq!(status(&done[0]), Some(200));
    assert_eq!(done[0].raw, b"AUDIO");
}

/// A listener that stops wanting the body after its first piece.
#[derive(Default)]
struct StopsEarly {
    pieces: usize,
    done: usize,
    times: Vec<Timestamp>,
}

impl HttpListener for StopsEarly {
    fn response_head(&mut self, _tx: &Transaction) -> bool {
        true
    }
    fn body(&mut self, _tx: &Transaction, _event: BodyEvent<'_>) {
        self.pieces += 1;
    }
    fn wants_more_body(&mut self, _tx: &Transaction) -> bool {
        false
    }
    fn http_transaction(&mut self, tx: &Transaction) {
        assert!(tx.body.complete);
        assert_eq!(tx.body.raw_len, 3000);
        self.done += 1;
    }
    fn packet_time(&mut self, ts: Timestamp) {
        self.times.push(ts);
    }
}

#[test]
fn issue11_a_listener_can_stop_a_body_it_no_longer_wants() {
    let mut a = HttpAnalyzer::new(StopsEarly::default(), Limits::default());
    let s = info(1, false);
    a.session_start(&s, Timestamp(1));
    a.data(
        &s,
        Direction::Orig,
        0,
        b"GET / HTTP/1.1\r\n\r\n",
        Timestamp(2),
    );
    let resp = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".as_slice(),
        &[0x55; 3000],
    ]
    .concat();
    let mut off = 0;
    for (i, p) in resp.chunks(1000).enumerate() {
        a.data(&s, Direction::Resp, off, p, Timestamp(10 + i as u64));
        off += p.len() as u64;
    }
    a.session_end(&s, EndReason::Fin, Timestamp(99));
    let l = a.listener();
    assert_eq!(l.pieces, 1, "only the first piece is delivered");
    assert_eq!(l.done, 1);
    assert_eq!(l.times.first(), Some(&Timestamp(2)));
    assert_eq!(l.times.last(), Some(&Timestamp(99)));
}

/// A session costs the analyzer nothing until its first byte; then its memory is counted
/// as its state grows (pending requests, a head being gathered, a body's decoder), and
/// given back when it ends.
#[test]
fn issue12_state_is_lazy_and_its_memory_counted_and_returned() {
    let mut a = HttpAnalyzer::new(Rec::default(), Limits::default());
    for stream in 0..1000 {
        a.session_start(&info(stream, false), Timestamp(1));
    }
    assert_eq!(
        (a.open_sessions(), a.memory(), a.memory_in_use()),
        (0, 0, 0)
    );
    for stream in 0..1000 {
        a.session_end(&info(stream, false), EndReason::Timeout, Timestamp(2));
    }
    assert_eq!(a.listener().done.len(), 0);

    let s = info(1000, false);
    a.session_start(&s, Timestamp(1));
    a.data(&s, Direction::Orig, 0, b"G", Timestamp(2));
    let one_byte = a.memory();
    assert!(one_byte >= SESSION_BYTES, "{one_byte}");
    assert_eq!(a.open_sessions(), 1);
    // Three pipelined requests wait for their responses: their heads are counted.
    let req = b"GET /a HTTP/1.1\r\nHost: example\r\n\r\n";
    a.data(&s, Direction::Orig, 1, &req[1..], Timestamp(2));
    a.data(&s, Direction::Orig, req.len() as u64, req, Timestamp(2));
    a.data(&s, Direction::Orig, 2 * req.len() as u64, req, Timestamp(2));
    let three = a.memory();
    assert!(
        three > one_byte + 3 * size_of::<Request>() as u64,
        "{three}"
    );
    // A gzip body streaming: its decoder is counted until the body ends.
    let head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 100\r\n\r\n";
    a.listener_mut().want = true;
    a.data(&s, Direction::Resp, 0, head, Timestamp(3));
    assert!(a.memory() > three + body::DEFLATE_LAYER_BYTES / 2);
    a.session_end(&s, EndReason::Fin, Timestamp(4));
    assert_eq!((a.open_sessions(), a.memory()), (0, 0));
    assert_eq!(a.listener().done.len(), 3, "one cut short, two unanswered");
}

fn notes(s: &Seen) -> Vec<String> {
    let tx = s.tx.as_ref().unwrap();
    let mut n = tx
        .request
        .as_ref()
        .map(|r| r.notes.clone())
        .unwrap_or_default();
    n.extend(tx.body.notes.iter().cloned());
    n
}

fn smuggled(s: &Seen) -> bool {
    s.tx.as_ref()
        .and_then(|t| t.request.as_ref())
        .is_some_and(|r| r.smuggled)
}

/// Issue 14: request bodies (length, chunked, gzip) reach the listener whole, however the
/// stream is cut; each transaction carries its request body's summary, and requests are
/// numbered as their transactions.
#[test]
fn issue14_request_bodies_reach_the_listener_in_any_split() {
    let form = b"a=1&b=2";
    let zipped = gzip(b"uploaded bytes, gzipped");
    let mut client = Vec::new();
    client.extend_from_slice(b"POST /form HTTP/1.1\r\nContent-Length: 7\r\n\r\n");
    client.extend_from_slice(form);
    client.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
    client.extend_from_slice(
        b"PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    );
    client.extend_from_slice(
        format!(
            "POST /z HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            zipped.len()
        )
        .as_bytes(),
    );
    client.extend_from_slice(&zipped);
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for piece in [1, 2, 3, 7, 64, usize::MAX] {
        let mut d = Driver::new(false);
        d.send(Direction::Orig, &client, piece);
        for _ in 0..4 {
            d.send(Direction::Resp, ok, piece);
        }
        let seen = d.end(EndReason::Fin);
        let uploads = std::mem::take(&mut d.a.listener_mut().uploads);
        assert_eq!(uploads.len(), 3, "piece {piece}");
        assert_eq!(uploads[0].raw, form);
        assert_eq!(uploads[1].raw, b"abcdefg");
        assert_eq!(uploads[2].raw, zipped);
        assert_eq!(uploads[2].decoded, b"uploaded bytes, gzipped");
        let numbers: Vec<u64> = uploads
            .iter()
            .map(|u| u.tx.as_ref().unwrap().number)
            .collect();
        assert_eq!(numbers, [0, 2, 3]);
        assert!(uploads.iter().all(|u| u.tx.as_ref().unwrap().body.complete));
        assert_eq!(seen.len(), 4);
        for (i, s) in seen.iter().enumerate() {
            let tx = s.tx.as_ref().unwrap();
            assert_eq!(tx.number, i as u64);
            assert_eq!(status(s), Some(200));
        }
        let req_body = |i: usize| {
            seen[i]
                .tx
                .as_ref()
                .unwrap()
                .request
                .as_ref()
                .unwrap()
                .body
                .clone()
        };
        assert_eq!((req_body(0).raw_len, req_body(0).complete), (7, true));
        assert_eq!(req_body(1).raw_len, 0);
        assert_eq!(req_body(2).raw_len, 7);
        assert_eq!(req_body(3).decoded_len, 23);
        assert_eq!(d.a.stats().request_bodies, 3);
    }
}

/// Issue 14: `Expect: 100-continue`: the interim answer comes between head and body.
#[test]
fn issue14_expect_100_continue() {
    let mut d = Driver::new(false);
    d.req(b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    d.resp(b"HTTP/1.1 100 Continue\r\n\r\n");
    d.req(b"hello");
    d.resp(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    let seen = d.end(EndReason::Fin);
    let up = &d.a.listener().uploads;
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].raw, b"hello");
    assert_eq!(seen.len(), 1);
    assert_eq!(status(&seen[0]), Some(201));
    assert_eq!(d.a.stats().interim, 1);
}

/// Issue 14: a request body cut by the end of the session, or by a gap, is said so.
#[test]
fn issue14_request_body_cut_short_is_incomplete() {
    let mut d = Driver::new(false);
    d.req(b"POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    d.lose(Direction::Orig, 2);
    d.req(b"fg");
    let seen = d.end(EndReason::Rst);
    let up = &d.a.listener().uploads[0];
    let body = &up.tx.as_ref().unwrap().body;
    assert!(!body.complete);
    assert_eq!(up.gaps, [(3, 2)]);
    assert_eq!(body.gaps, [(3, Some(5)), (7, Some(10))]);
    assert!(
        body.notes[0].contains("3 bytes of it never came"),
        "{:?}",
        body.notes
    );
    assert_eq!(seen.len(), 1, "reported unanswered");
}

/// Issue 14: HTTP/0.9: a request line without a version; the server's bytes until it
/// closes are the response.
#[test]
fn issue14_http09_request_and_raw_response() {
    for piece in [1, 5, usize::MAX] {
        let mut d = Driver::new(false);
        d.send(Direction::Orig, b"GET /song.mp3\r\n", piece);
        d.send(Direction::Resp, b"\xff\xfbraw audio bytes", piece);
        let seen = d.end(EndReason::Fin);
        assert_eq!(seen.len(), 1);
        let tx = seen[0].tx.as_ref().unwrap();
        assert_eq!(tx.version(), Some(Version::Http09));
        assert_eq!(uri(&seen[0]), "/song.mp3");
        assert_eq!(seen[0].raw, b"\xff\xfbraw audio bytes");
        assert!(tx.body.complete);
        assert_eq!(d.a.stats().http09, 1);
    }
    // An HTTP/1.0 answer to it is read as such.
    let mut d = Driver::new(false);
    d.req(b"GET /\r\n");
    d.resp(b"HTTP/1.0 200 OK\r\n\r\nhi");
    let seen = d.end(EndReason::Fin);
    assert_eq!(
        (status(&seen[0]), seen[0].raw.as_slice()),
        (Some(200), &b"hi"[..])
    );
}

/// Issue 14: `GET ` and binary bytes is neither HTTP/0.9 nor anything else: reported as
/// a malformed transaction, not dropped silently.
#[test]
fn issue14_http09_garbage_is_reported() {
    let mut d = Driver::new(false);
    d.req(b"GET \x00\x01\xfe\xff\x10\r\nmore garbage");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.len(), 1);
    let tx = seen[0].tx.as_ref().unwrap();
    assert!(
        tx.malformed
            .as_ref()
            .unwrap()
            .to_string()
            .contains("not HTTP/0.9")
    );
    assert!(tx.request.is_none());
    assert_eq!(d.a.stats().malformed, 1);
}

/// Issue 14: CL.TE: read as chunked, the request after the chunked body lies inside the
/// body as Content-Length reads it: reported, marked smuggled.
#[test]
fn issue14_cl_te_smuggled_request_is_marked() {
    let admin = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let body_len = 5 + admin.len();
    let mut client = format!(
        "POST / HTTP/1.1\r\nContent-Length: {body_len}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    .into_bytes();
    client.extend_from_slice(admin);
    client.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
    for piece in [1, 9, usize::MAX] {
        let mut d = Driver::new(false);
        d.send(Direction::Orig, &client, piece);
        let seen = d.end(EndReason::Fin);
        assert_eq!(seen.len(), 3, "piece {piece}");
        assert!(notes(&seen[0])[0].starts_with("ambiguous framing: Content-Length"));
        assert!(!smuggled(&seen[0]));
        assert_eq!(uri(&seen[1]), "/admin");
        assert!(smuggled(&seen[1]), "{:?}", notes(&seen[1]));
        assert!(notes(&seen[1])[0].contains("inside the body of request 0"));
        // Both readings agree where /next starts.
        assert!(!smuggled(&seen[2]));
        assert_eq!(d.a.stats().smuggled, 1);
        assert_eq!(d.a.stats().ambiguous_framing, 1);
    }
}

/// Issue 14: TE.CL: read as chunked, the request Content-Length would find inside the
/// chunked body is reported as well, marked smuggled.
#[test]
fn issue14_te_cl_hidden_request_is_reported() {
    let inner = b"GPOST / HTTP/1.1\r\nContent-Length: 15\r\n\r\nx=1";
    let mut client =
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    client.extend_from_slice(format!("{:x}\r\n", inner.len()).as_bytes());
    client.extend_from_slice(inner);
    client.extend_from_slice(b"\r\n0\r\n\r\n");
    for piece in [1, 4, 13, usize::MAX] {
        let mut d = Driver::new(false);
        d.send(Direction::Orig, &client, piece);
        d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let seen = d.end(EndReason::Fin);
        assert_eq!(seen.len(), 2, "piece {piece}");
        // Reported as it was found (at once), before its carrier's transaction.
        let (hidden, carrier) = (&seen[0], &seen[1]);
        assert_eq!(uri(hidden), "/");
        let req = hidden.tx.as_ref().unwrap().request.as_ref().unwrap();
        assert_eq!(req.method, Method::Other("GPOST".into()));
        assert!(req.smuggled);
        assert!(notes(hidden)[0].contains("request 0 read with Content-Length 4"));
        assert!(hidden.tx.as_ref().unwrap().response.is_none());
        assert_eq!(status(carrier), Some(200));
        assert_eq!(
            carrier
                .tx
                .as_ref()
                .unwrap()
                .request
                .as_ref()
                .unwrap()
                .body
                .raw_len,
            inner.len() as u64
        );
    }
}

/// Issue 14: differing Content-Lengths in a request: read with the first, noted; the
/// request the first length finds inside the second's body is marked smuggled.
#[test]
fn issue14_differing_content_lengths() {
    let next = b"GET /a HTTP/1.1\r\n\r\n";
    let second = 5 + next.len();
    let mut client =
        format!("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: {second}\r\n\r\nhello")
            .into_bytes();
    client.extend_from_slice(next);
    client.extend_from_slice(b"GET /b HTTP/1.1\r\n\r\n");
    let mut d = Driver::new(false);
    d.req(&client);
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen.len(), 3);
    assert!(notes(&seen[0])[0].contains("differing Content-Length values 5, 24"));
    assert_eq!(d.a.listener().uploads[0].raw, b"hello");
    assert!(smuggled(&seen[1]) && !smuggled(&seen[2]));
}

/// Issue 14: a framing header folded over two lines (obs-fold) is unfolded, and a reader
/// that drops the fold frames the request otherwise: noted.
#[test]
fn issue14_obs_fold_in_a_request() {
    let mut d = Driver::new(false);
    d.req(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let seen = d.end(EndReason::Fin);
    assert_eq!(d.a.listener().uploads[0].raw, b"abc");
    let n = notes(&seen[0]);
    assert!(n.iter().any(|n| n.starts_with("obs-fold")), "{n:?}");
    assert!(
        n.iter().any(|n| n.starts_with("ambiguous framing")),
        "{n:?}"
    );
}

/// Issue 14: a response with Content-Length and Transfer-Encoding is read chunked (RFC
/// 9112 §6.3), with a note, no longer refused.
#[test]
fn issue14_response_with_length_and_chunked_is_read_chunked() {
    let mut d = Driver::new(false);
    d.req(b"GET / HTTP/1.1\r\n\r\n");
    d.resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let seen = d.end(EndReason::Fin);
    assert_eq!(seen[0].raw, b"hello");
    assert!(seen[0].tx.as_ref().unwrap().body.complete);
    assert!(notes(&seen[0])[0].contains("read as chunked"));
    assert_eq!(d.a.stats().malformed, 0);
}
