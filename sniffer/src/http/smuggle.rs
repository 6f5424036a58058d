//! Request smuggling: where another reading of an ambiguous request would find the next
//! request.
//!
//! When a request's framing is ambiguous (Content-Length with Transfer-Encoding, differing
//! Content-Lengths, framing headers folded over lines), the parser reads it as RFC 9112
//! §6.3 says, and a reader that chose the other framing (a proxy in front, a server
//! behind) would see the stream cut elsewhere. Two things follow, as Zeek and Suricata
//! report them:
//!
//! - at the offset where the other framing ends the body, a *probe* gathers the bytes; if
//!   they make a request head that this parser does not see there, that request is
//!   reported too, marked smuggled (the classic case: the other reader's body ends inside
//!   this parser's chunked body, and what follows is a request only it sees);
//! - requests this parser finds inside the span the other framing calls body are
//!   marked smuggled (the other reader never sees them as requests).

use std::collections::VecDeque;

use super::parser;

/// Where the other reading of request `number` puts the next request, and the bytes
/// gathered from there so far.
#[derive(Debug)]
struct Probe {
    at: u64,
    buf: Vec<u8>,
    scanned: usize,
    number: u64,
    length: u64,
}

/// A request head found by a probe.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// Its offset in the client's stream.
    pub(super) at: u64,
    /// The head, blank line included.
    pub(super) head: Vec<u8>,
    /// The ambiguous request whose other reading puts a request here.
    pub(super) number: u64,
    /// The body length of that other reading.
    pub(super) length: u64,
}

/// The span the other framing of request `number` calls body: requests this parser finds
/// starting inside it are invisible to the other reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Hidden {
    pub(super) end: u64,
    pub(super) number: u64,
    pub(super) length: u64,
}

/// The smuggling watch of one session's client side.
///
/// Invariants: at most [`MAX_PROBES`] probes; a probe's `buf` holds the bytes from `at` on,
/// contiguous, never more than the head limit plus one; `parsed` holds at most
/// [`RECENT_HEADS`] offsets.
#[derive(Debug, Default)]
pub(super) struct Smuggle {
    probes: Vec<Probe>,
    hidden: Option<Hidden>,
    parsed: VecDeque<u64>,
}

/// Probes kept at once; more other readings are not followed.
const MAX_PROBES: usize = 4;
/// Request head offsets remembered (a probe landing on one found nothing new).
const RECENT_HEADS: usize = 8;
/// A method token is at most this long before its space.
const MAX_METHOD: usize = 20;

/// Could `buf` (the first bytes at a probe) still be the start of a request line: a run of
/// upper-case letters (or `-`, `_`), then a space?
fn could_be_request(buf: &[u8]) -> bool {
    for (i, &b) in buf.iter().enumerate().take(MAX_METHOD + 1) {
        if b == b' ' {
            return i > 0;
        }
        if !(b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return false;
        }
    }
    buf.len() <= MAX_METHOD
}

impl Smuggle {
    /// Request `number`, whose body starts at `body_start`, could be read with each of
    /// `lengths` too.
    pub(super) fn other_readings(&mut self, number: u64, body_start: u64, lengths: &[u64]) {
        for &length in lengths {
            let at = body_start.saturating_add(length);
            if self.probes.len() < MAX_PROBES && !self.probes.iter().any(|p| p.at == at) {
                self.probes.push(Probe {
                    at,
                    buf: Vec::new(),
                    scanned: 0,
                    number,
                    length,
                });
            }
            if self.hidden.is_none_or(|h| h.end < at) {
                self.hidden = Some(Hidden {
                    end: at,
                    number,
                    length,
                });
            }
        }
    }

    /// This parser found a request head at `at`: is it inside another reading's body?
    pub(super) fn parsed_head(&mut self, at: u64) -> Option<Hidden> {
        if self.parsed.len() == RECENT_HEADS {
            self.parsed.pop_front();
        }
        self.parsed.push_back(at);
        self.hidden.filter(|h| at < h.end)
    }

    /// The client's bytes `[start, start + bytes.len())`: fill the probes they reach, and
    /// return the request heads found that this parser did not find at the same offset.
    pub(super) fn feed(&mut self, start: u64, bytes: &[u8], max_head: usize) -> Vec<Found> {
        let end = start + bytes.len() as u64;
        let mut found = Vec::new();
        self.probes.retain_mut(|p| {
            let want = p.at + p.buf.len() as u64;
            if want >= end {
                return true;
            }
            if want < start {
                // Its bytes went by in a gap.
                return false;
            }
            let from = (want - start) as usize;
            let take = (bytes.len() - from).min(max_head + 1 - p.buf.len());
            p.buf.extend_from_slice(&bytes[from..from + take]);
            if !could_be_request(&p.buf) {
                return false;
            }
            match parser::find_head_end(&p.buf, &mut p.scanned) {
                Some(head_end) if head_end <= max_head => {
                    found.push(Found {
                        at: p.at,
                        head: p.buf[..head_end].to_vec(),
                        number: p.number,
                        length: p.length,
                    });
                    false
                }
                _ => p.buf.len() <= max_head,
            }
        });
        found.retain(|f| !self.parsed.contains(&f.at));
        found
    }

    /// Whether nothing is watched any more (the watch can go).
    pub(super) fn is_idle(&self, next_offset: u64) -> bool {
        self.probes.is_empty() && self.hidden.is_none_or(|h| h.end <= next_offset)
    }

    /// Heap bytes held.
    pub(super) fn memory(&self) -> u64 {
        (size_of::<Self>()
            + self.probes.capacity() * size_of::<Probe>()
            + self.probes.iter().map(|p| p.buf.capacity()).sum::<usize>()
            + self.parsed.capacity() * size_of::<u64>()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_finds_a_request_split_over_calls() {
        let mut m = Smuggle::default();
        m.other_readings(0, 100, &[4]);
        assert!(m.feed(90, b"0123456789ab", 1024).is_empty());
        assert!(m.feed(102, b"cdGET /admin HTTP/1.1\r\nHo", 1024).is_empty());
        let found = m.feed(127, b"st: x\r\n\r\nrest", 1024);
        assert_eq!(
            found,
            [Found {
                at: 104,
                head: b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                number: 0,
                length: 4
            }]
        );
        assert!(m.is_idle(200));
    }

    #[test]
    fn a_probe_on_body_bytes_or_on_a_parsed_head_finds_nothing() {
        let mut m = Smuggle::default();
        m.other_readings(3, 0, &[2, 10]);
        assert!(m.feed(0, b"xx\x00\x01binary", 1024).is_empty());
        // A request this parser finds inside the other reading's body is hidden from it;
        // one at its end is not.
        assert_eq!(m.parsed_head(5).map(|h| h.number), Some(3));
        assert_eq!(m.parsed_head(10), None);
        // The other probe lands where this parser found a request itself.
        assert!(m.feed(10, b"GET / HTTP/1.1\r\n\r\n", 1024).is_empty());
        assert!(m.probes.is_empty());
        // Past the other reading's body, nothing is hidden.
        assert_eq!(m.parsed_head(40), None);
    }

    #[test]
    fn probes_and_memory_stay_bounded() {
        let mut m = Smuggle::default();
        for n in 0..100 {
            m.other_readings(n, 0, &[n]);
        }
        assert_eq!(m.probes.len(), MAX_PROBES);
        for at in 0..100 {
            m.parsed_head(at);
        }
        assert_eq!(m.parsed.len(), RECENT_HEADS);
        // A probe on an endless method-like run gives up.
        let mut m = Smuggle::default();
        m.other_readings(0, 0, &[0]);
        m.feed(0, &[b'A'; 64], 1024);
        assert!(m.probes.is_empty());
        // One on a head that never ends stops at the limit.
        let mut m = Smuggle::default();
        m.other_readings(0, 0, &[0]);
        m.feed(0, b"GET / HTTP/1.1\r\n", 64);
        m.feed(16, &[b'x'; 100], 64);
        assert!(m.probes.is_empty());
    }
}
