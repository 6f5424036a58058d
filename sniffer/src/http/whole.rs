//! Whole bodies for code that wants them in one piece, as Net::Analysis listeners got
//! them: [`WholeBodies`] gathers each wanted body (within a bound) and calls back once per
//! transaction with request head, response head and body. Response bodies only: a
//! request body (an upload) is streamed by [`HttpListener::request_body`], not gathered.

use std::collections::HashMap;

use super::{BodyEvent, HttpListener, Transaction};

/// A body as [`WholeBodies`] hands it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// The whole body: decoded when it was content-coded and decoding worked, as sent
    /// otherwise (see `tx.body.decode_error`). Gaps are zero bytes, listed in
    /// `tx.body.gaps`.
    Whole(&'a [u8]),
    /// Not gathered: the callback did not want it, or there was none.
    Skipped,
    /// Larger than the bound: nothing of it is held.
    TooLarge,
}

#[derive(Default)]
struct Gathering {
    raw: Vec<u8>,
    decoded: Vec<u8>,
    decode_failed: bool,
    too_large: bool,
}

impl Gathering {
    fn memory(&self) -> u64 {
        (size_of::<((u64, u64), Self)>() * 2 + self.raw.capacity() + self.decoded.capacity()) as u64
    }
}

/// An [`HttpListener`] that gathers wanted bodies up to `max_body` bytes and calls
/// `on_transaction(tx, body)` once per transaction.
///
/// Invariant: `memory` is the sum of [`Gathering::memory`] over `open`.
pub struct WholeBodies<W, F> {
    want: W,
    on_transaction: F,
    max_body: usize,
    open: HashMap<(u64, u64), Gathering>,
    memory: u64,
}

impl<W, F> WholeBodies<W, F>
where
    W: FnMut(&Transaction) -> bool,
    F: FnMut(&Transaction, Body<'_>),
{
    /// `want(tx)` picks bodies at the response head; `on_transaction` gets every
    /// transaction; bodies over `max_body` bytes are dropped as they grow.
    pub fn new(want: W, on_transaction: F, max_body: usize) -> Self {
        Self {
            want,
            on_transaction,
            max_body,
            open: HashMap::new(),
            memory: 0,
        }
    }
}

fn push(buf: &mut Vec<u8>, offset: u64, bytes: &[u8], max: usize, too_large: &mut bool) {
    let end = offset as usize + bytes.len();
    if *too_large || end > max {
        *too_large = true;
        *buf = Vec::new();
        return;
    }
    if buf.len() < offset as usize {
        buf.resize(offset as usize, 0);
    }
    buf.truncate(offset as usize);
    buf.extend_from_slice(bytes);
}

impl<W, F> HttpListener for WholeBodies<W, F>
where
    W: FnMut(&Transaction) -> bool,
    F: FnMut(&Transaction, Body<'_>),
{
    fn response_head(&mut self, tx: &Transaction) -> bool {
        let wanted = (self.want)(tx);
        if wanted {
            let g = Gathering::default();
            self.memory += g.memory();
            if let Some(old) = self.open.insert((tx.stream, tx.number), g) {
                self.memory -= old.memory();
            }
        }
        wanted
    }

    fn body(&mut self, tx: &Transaction, event: BodyEvent<'_>) {
        let Some(g) = self.open.get_mut(&(tx.stream, tx.number)) else {
            return;
        };
        self.memory -= g.memory();
        let max = self.max_body;
        match event {
            BodyEvent::Raw { offset, bytes } => {
                push(&mut g.raw, offset, bytes, max, &mut g.too_large)
            }
            BodyEvent::Decoded { offset, bytes } => {
                push(&mut g.decoded, offset, bytes, max, &mut g.too_large);
            }
            BodyEvent::Gap { offset, len } => {
                let end = (offset + len) as usize;
                if end > max {
                    g.too_large = true;
                    g.raw = Vec::new();
                    g.decoded = Vec::new();
                } else if !g.too_large && g.raw.len() < end {
                    g.raw.resize(end, 0);
                }
            }
            BodyEvent::DecodeFailed { .. } => {
                g.decode_failed = true;
                g.decoded = Vec::new();
            }
        }
        if g.too_large {
            g.raw = Vec::new();
            g.decoded = Vec::new();
        }
        self.memory += g.memory();
    }

    fn http_transaction(&mut self, tx: &Transaction) {
        let g = self.open.remove(&(tx.stream, tx.number));
        if let Some(g) = &g {
            self.memory -= g.memory();
        }
        match g {
            None => (self.on_transaction)(tx, Body::Skipped),
            Some(g) if g.too_large => (self.on_transaction)(tx, Body::TooLarge),
            Some(g) => {
                let decoded = !tx.body.codings.is_empty()
                    && !g.decode_failed
                    && tx.body.decode_error.is_none();
                let body = if decoded { &g.decoded } else { &g.raw };
                (self.on_transaction)(tx, Body::Whole(body));
            }
        }
    }

    fn memory_in_use(&self) -> u64 {
        self.memory
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::{
        http::{HttpAnalyzer, Limits},
        listener::{Direction, EndReason, Listener as _, SessionInfo},
        wire::Timestamp,
    };

    #[test]
    fn whole_bodies_decoded_bounded_and_skipped() {
        let mut got: Vec<(String, Option<Vec<u8>>, bool)> = Vec::new();
        {
            let listener = WholeBodies::new(
                |tx: &Transaction| tx.url().is_some_and(|u| !u.ends_with("/skip")),
                |tx: &Transaction, body: Body<'_>| {
                    let url = tx.url().unwrap_or_default();
                    got.push(match body {
                        Body::Whole(b) => (url, Some(b.to_vec()), false),
                        Body::Skipped => (url, None, false),
                        Body::TooLarge => (url, None, true),
                    });
                },
                1000,
            );
            let mut a = HttpAnalyzer::new(listener, Limits::default());
            let s = SessionInfo {
                stream: 0,
                client: "10.0.0.1:1000".parse().unwrap(),
                server: "10.0.0.2:80".parse().unwrap(),
                start: Timestamp(0),
                midstream: false,
            };
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&[b'z'; 900]).unwrap();
            let gz = gz.finish().unwrap();
            let req = b"GET /a HTTP/1.1\r\n\r\nGET /skip HTTP/1.1\r\n\r\nGET /big HTTP/1.1\r\n\r\nGET /gz HTTP/1.1\r\n\r\n";
            let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyzHTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n".to_vec();
            resp.extend_from_slice(&[7; 2000]);
            resp.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                    gz.len()
                )
                .as_bytes(),
            );
            resp.extend_from_slice(&gz);
            a.session_start(&s, Timestamp(0));
            a.data(&s, Direction::Orig, 0, req, Timestamp(0));
            for (i, c) in resp.chunks(100).enumerate() {
                a.data(&s, Direction::Resp, i as u64 * 100, c, Timestamp(0));
            }
            a.session_end(&s, EndReason::Fin, Timestamp(0));
        }
        let urls: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(urls.len(), 4, "{urls:?}");
        assert_eq!(got[0].1.as_deref(), Some(&b"abc"[..]));
        assert_eq!(got[1].1, None);
        assert!(!got[1].2);
        assert!(got[2].2, "2000 bytes is over the 1000-byte bound");
        assert_eq!(got[3].1.as_deref(), Some(&[b'z'; 900][..]));
    }
}
