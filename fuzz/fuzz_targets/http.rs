//! Arbitrary stream bytes into the HTTP layer, with the event contract checked:
//! body pieces arrive in offset order without holes (gaps included), decoded pieces
//! likewise, every response head gets exactly one `http_transaction`, and the same
//! bytes cut differently give the same transactions and bodies.
//!
//! Input: a sequence of `[op][len][len bytes]` records. `op & 1` is the direction,
//! `op & 2` turns the record into a gap of `len` bytes, `op & 4` splits the record's
//! bytes into single-byte events. A final session end uses `op >> 4` as the reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sniffer::{
    Direction, EndReason, Listener, SessionInfo, Timestamp,
    http::{BodyEvent, HttpAnalyzer, HttpListener, Limits, Transaction},
};

#[derive(Default)]
struct Check {
    /// (stream offset expected next, decoded offset expected next) of the open body.
    open: Option<(u64, u64)>,
    heads: u64,
    done_with_head: u64,
    /// Per transaction: number, status, raw body, decoded body (`None` when decoding
    /// failed: the decoded prefix before a failure is unspecified, and the raw body is
    /// what is kept then).
    log: Vec<(u64, Option<u16>, Vec<u8>, Option<Vec<u8>>)>,
    raw: Vec<u8>,
    decoded: Vec<u8>,
    decode_failed: bool,
}

impl HttpListener for Check {
    fn response_head(&mut self, tx: &Transaction) -> bool {
        assert!(self.open.is_none(), "two bodies open in one session");
        assert!(tx.response.is_some());
        self.heads += 1;
        self.open = Some((0, 0));
        self.raw.clear();
        self.decoded.clear();
        self.decode_failed = false;
        true
    }

    fn body(&mut self, _tx: &Transaction, event: BodyEvent<'_>) {
        let (raw, dec) = self.open.as_mut().expect("body event without a head");
        match event {
            BodyEvent::Raw { offset, bytes } => {
                assert_eq!(offset, *raw);
                *raw += bytes.len() as u64;
                self.raw.extend_from_slice(bytes);
            }
            BodyEvent::Gap { offset, len } => {
                assert_eq!(offset, *raw);
                *raw += len;
            }
            BodyEvent::Decoded { offset, bytes } => {
                assert_eq!(offset, *dec);
                *dec += bytes.len() as u64;
                self.decoded.extend_from_slice(bytes);
            }
            BodyEvent::DecodeFailed { reason } => {
                assert!(!reason.is_empty());
                self.decode_failed = true;
            }
        }
    }

    fn http_transaction(&mut self, tx: &Transaction) {
        if let Some((raw, _)) = self.open.take() {
            self.done_with_head += 1;
            assert_eq!(raw, tx.body.raw_len);
            assert!(tx.body.decoded_len <= Limits::default().max_decoded_bytes);
        }
        let decoded = std::mem::take(&mut self.decoded);
        let failed = std::mem::take(&mut self.decode_failed);
        self.log.push((
            tx.number,
            tx.response.as_ref().map(|r| r.status),
            std::mem::take(&mut self.raw),
            (!failed).then_some(decoded),
        ));
    }
}

fn session() -> SessionInfo {
    SessionInfo {
        stream: 1,
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:80".parse().unwrap(),
        start: Timestamp(0),
        midstream: false,
    }
}

/// Feed the records; `split` forces one-byte events everywhere.
fn run(data: &[u8], split: bool) -> Check {
    let s = session();
    let mut a = HttpAnalyzer::new(Check::default(), Limits::default());
    a.session_start(&s, Timestamp(0));
    let mut off = [0u64; 2];
    let mut rest = data;
    let mut reason = EndReason::Fin;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], usize::from(rest[1]));
        rest = &rest[2..];
        let dir = if op & 1 == 0 {
            Direction::Orig
        } else {
            Direction::Resp
        };
        let d = dir.index();
        if op & 2 != 0 {
            a.gap(&s, dir, off[d], len as u64 * 7 + 1, Timestamp(1));
            off[d] += len as u64 * 7 + 1;
            continue;
        }
        let bytes = &rest[..len.min(rest.len())];
        rest = &rest[bytes.len()..];
        let piece = if split || op & 4 != 0 {
            1
        } else {
            bytes.len().max(1)
        };
        for p in bytes.chunks(piece) {
            a.data(&s, dir, off[d], p, Timestamp(1));
            off[d] += p.len() as u64;
        }
        reason = match op >> 4 {
            0 => EndReason::Fin,
            1 => EndReason::Rst,
            2 => EndReason::Timeout,
            _ => EndReason::EndOfCapture,
        };
    }
    a.session_end(&s, reason, Timestamp(2));
    a.finish();
    let c = a.into_listener();
    assert!(c.open.is_none(), "a body left open after the session ended");
    assert_eq!(c.heads, c.done_with_head);
    c
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, false);
    let bytewise = run(data, true);
    assert_eq!(
        whole.log, bytewise.log,
        "cutting the stream changed the result"
    );
});
