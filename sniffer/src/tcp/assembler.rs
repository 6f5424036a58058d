//! Reassembly of one direction of a TCP stream, in 64-bit stream offsets.
//!
//! The assembler knows nothing of sequence numbers, flags or sessions: [`super::stream`]
//! maps sequence numbers to offsets (64-bit, so streams over 4 GiB work) and feeds it.
//!
//! # Rules
//! - **In order**: a segment that starts at the next expected offset while nothing is
//!   buffered goes straight to the [`Sink`] by reference. Nothing is copied except into
//!   the small retransmission check window (see below).
//! - **Out of order**: a segment beyond the next expected offset is buffered until the hole
//!   before it fills. Buffered runs that touch are merged (small into large, so any
//!   arrival order costs O(n log n), never O(n²)).
//! - **First wins**: bytes already buffered, or already delivered, are never replaced. A
//!   segment that overlaps them is a retransmission: its overlapping bytes are counted as
//!   retransmitted, and those that differ from what was kept are counted as conflicts and
//!   reported with their offset ([`Sink::conflict`]).
//! - **Delivered bytes** are checked against a window of the last [`CHECK_WINDOW`] bytes
//!   delivered; retransmissions of older bytes are counted as unverified.
//! - **Gaps**: a hole is declared a gap ([`Sink::gap`]) only when asked: the peer ACKed past
//!   it ([`Assembler::gap_to`]), the buffer went over its bound ([`CapacityError`] then
//!   [`Assembler::skip_hole`]), or the stream ends ([`Assembler::finish`]). Bytes of a
//!   declared gap that arrive later are counted as late, never delivered.
//! - A segment's missing tail (cut by the snap length) is a hole like any other:
//!   [`Assembler::note_extent`] records how far the stream is known to reach.

use std::collections::{BTreeMap, VecDeque};

/// Delivered bytes kept per direction to check retransmissions for conflicts.
pub const CHECK_WINDOW: usize = 8 << 10;

/// What one buffered chunk costs beside its bytes: its key and deque in the tree, and the
/// tree's nodes around them (a B-tree node holds up to 11 entries of 40 bytes).
pub const CHUNK_OVERHEAD: u64 = 64;

/// Receives what the assembler produces, in stream order.
pub trait Sink {
    /// `bytes` are the stream at `offset`, contiguous with everything delivered before.
    fn data(&mut self, offset: u64, bytes: &[u8]);
    /// `len` bytes at `offset` will never be delivered.
    fn gap(&mut self, offset: u64, len: u64);
    /// A retransmission carried `len` bytes, the first at `offset`, that differ from the
    /// bytes kept (first wins).
    fn conflict(&mut self, _offset: u64, _len: u64) {}
}

/// The out-of-order buffer holds more than its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "out-of-order buffer over its bound: {buffered} bytes buffered beyond offset {next}, limit {limit}"
)]
pub struct CapacityError {
    /// The next expected offset (where the first hole starts).
    pub next: u64,
    /// Bytes buffered.
    pub buffered: u64,
    /// The bound.
    pub limit: u64,
}

/// What one direction's assembler counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AssemblerStats {
    /// Bytes delivered.
    pub delivered: u64,
    /// Gaps declared.
    pub gaps: u64,
    /// Bytes in declared gaps.
    pub gap_bytes: u64,
    /// Bytes received more than once (overlapping buffered or delivered bytes).
    pub retransmitted: u64,
    /// Retransmitted bytes that differ from the bytes kept.
    pub conflicts: u64,
    /// Offset of the first conflicting byte.
    pub first_conflict: Option<u64>,
    /// Retransmitted bytes too old for the check window: not compared.
    pub unverified: u64,
    /// Bytes that arrived after their place was declared a gap: not delivered.
    pub late: u64,
    /// Segments that had to be buffered.
    pub out_of_order: u64,
}

/// Reassembles one direction.
///
/// # Invariant
/// - Everything below `next` was delivered or declared a gap; nothing below it is buffered.
/// - `chunks` maps a start offset to the bytes buffered there. Chunks are non-empty, do not
///   overlap, and every chunk starts strictly above `next` (a chunk at `next` is delivered
///   at once).
/// - `buffered` is the sum of chunk lengths; `heap` the sum of their capacities plus
///   [`CHUNK_OVERHEAD`] per chunk.
/// - `recent` holds the last delivered bytes (up to [`CHECK_WINDOW`]); it ends at `next`.
#[derive(Debug, Default)]
pub struct Assembler {
    next: u64,
    chunks: BTreeMap<u64, VecDeque<u8>>,
    buffered: u64,
    heap: u64,
    limit: u64,
    extent: u64,
    gap_marks: Vec<(u64, u64)>,
    recent: Recent,
    stats: AssemblerStats,
}

impl Assembler {
    /// An empty stream at offset 0 that buffers at most `limit` out-of-order bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// The next offset expected: everything before it was delivered or declared a gap.
    pub const fn next(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes buffered.
    pub const fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Heap memory held: the buffered chunks (their capacity and bookkeeping) and the
    /// check window. O(1).
    pub fn memory(&self) -> u64 {
        self.heap + self.recent.buf.capacity() as u64
    }

    /// What was counted so far.
    pub const fn stats(&self) -> &AssemblerStats {
        &self.stats
    }

    /// The stream is known to reach at least `end` (a segment's wire length, when the
    /// capture cut its tail): [`Self::finish`] declares a gap up to it.
    pub fn note_extent(&mut self, end: u64) {
        self.extent = self.extent.max(end);
    }

    /// Move everything buffered `delta` bytes later: the stream turned out to start
    /// earlier than assumed. Only possible (and `true`) while nothing was delivered or
    /// declared a gap.
    pub fn shift(&mut self, delta: u64) -> bool {
        if self.next != 0 || self.stats.delivered != 0 || self.stats.gaps != 0 {
            return false;
        }
        self.chunks = std::mem::take(&mut self.chunks)
            .into_iter()
            .map(|(k, v)| (k + delta, v))
            .collect();
        if self.extent > 0 {
            self.extent += delta;
        }
        true
    }

    /// Add the bytes at `offset`.
    ///
    /// # Errors
    /// [`CapacityError`] when the out-of-order buffer is now over its bound. The bytes were
    /// kept; call [`Self::skip_hole`] until it returns `false` or the buffer fits.
    pub fn insert(
        &mut self,
        offset: u64,
        bytes: &[u8],
        sink: &mut impl Sink,
    ) -> Result<(), CapacityError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let end = offset + bytes.len() as u64;
        self.note_extent(end);
        let (mut start, mut bytes) = (offset, bytes);
        if start < self.next {
            let old = ((self.next - start) as usize).min(bytes.len());
            self.check_old(start, &bytes[..old], sink);
            bytes = &bytes[old..];
            start += old as u64;
            if bytes.is_empty() {
                return Ok(());
            }
        }
        if start == self.next {
            // In order: deliver by reference up to the first buffered chunk.
            let upto = match self.chunks.first_key_value() {
                None => bytes.len(),
                Some((&c, _)) => ((c - start) as usize).min(bytes.len()),
            };
            self.deliver(start, &bytes[..upto], sink);
            bytes = &bytes[upto..];
            start += upto as u64;
        }
        if !bytes.is_empty() {
            self.stats.out_of_order += 1;
            self.buffer(start, bytes, sink);
        }
        self.drain(sink);
        if self.buffered > self.limit {
            return Err(CapacityError {
                next: self.next,
                buffered: self.buffered,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Declare the first hole a gap and deliver what follows it. `false` when nothing is
    /// buffered (there is no hole with data behind it).
    pub fn skip_hole(&mut self, sink: &mut impl Sink) -> bool {
        let Some((&c, _)) = self.chunks.first_key_value() else {
            return false;
        };
        self.declare_gap(c, sink);
        self.drain(sink);
        true
    }

    /// The peer acknowledged everything before `offset`: any hole below it is a gap.
    pub fn gap_to(&mut self, offset: u64, sink: &mut impl Sink) {
        while self.next < offset {
            let stop = self
                .chunks
                .first_key_value()
                .map_or(offset, |(&c, _)| c.min(offset));
            self.declare_gap(stop, sink);
            self.drain(sink);
        }
    }

    /// The stream is over: declare every remaining hole a gap, deliver everything buffered,
    /// and declare a gap up to `end` (the FIN's offset, or the extent known from truncated
    /// segments) when the stream stops short of it. Frees the check window.
    pub fn finish(&mut self, end: Option<u64>, sink: &mut impl Sink) {
        while self.skip_hole(sink) {}
        let end = end.unwrap_or(self.extent);
        if end > self.next {
            self.declare_gap(end, sink);
        }
        self.recent = Recent::default();
    }

    fn deliver(&mut self, offset: u64, bytes: &[u8], sink: &mut impl Sink) {
        debug_assert_eq!(offset, self.next);
        if bytes.is_empty() {
            return;
        }
        sink.data(offset, bytes);
        self.recent.push(bytes);
        self.next += bytes.len() as u64;
        self.stats.delivered += bytes.len() as u64;
    }

    fn declare_gap(&mut self, to: u64, sink: &mut impl Sink) {
        debug_assert!(to > self.next);
        let len = to - self.next;
        sink.gap(self.next, len);
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        // Remember the latest gaps, so bytes that turn up later count as late, not as
        // retransmissions (a few suffice: late bytes come soon after the gap).
        if self.gap_marks.len() == 8 {
            self.gap_marks.remove(0);
        }
        self.gap_marks.push((self.next, to));
        self.next = to;
        self.recent.clear();
    }

    /// Deliver the chunk at `next`, if any (there is at most one: chunks that touch are
    /// merged).
    fn drain(&mut self, sink: &mut impl Sink) {
        while let Some(entry) = self.chunks.first_entry() {
            if *entry.key() != self.next {
                debug_assert!(*entry.key() > self.next);
                return;
            }
            let mut chunk = entry.remove();
            self.buffered -= chunk.len() as u64;
            self.heap -= chunk.capacity() as u64 + CHUNK_OVERHEAD;
            let bytes = chunk.make_contiguous();
            let offset = self.next;
            self.deliver(offset, bytes, sink);
        }
    }

    /// Bytes below `next`: compare them with the check window.
    fn check_old(&mut self, offset: u64, bytes: &[u8], sink: &mut impl Sink) {
        let end = offset + bytes.len() as u64;
        let late: u64 = self
            .gap_marks
            .iter()
            .map(|&(a, b)| end.min(b).saturating_sub(offset.max(a)))
            .sum();
        self.stats.late += late;
        let seen = bytes.len() as u64 - late;
        self.stats.retransmitted += seen;
        let win_start = self.next - self.recent.len as u64;
        let from = offset.max(win_start);
        if from >= end {
            self.stats.unverified += seen;
            return;
        }
        self.stats.unverified += seen.saturating_sub(end - from);
        let mut first = None;
        let mut count = 0u64;
        for (i, &b) in bytes[(from - offset) as usize..].iter().enumerate() {
            let at = from + i as u64;
            if self.recent.get(at, self.next) != b {
                first.get_or_insert(at);
                count += 1;
            }
        }
        if let Some(first) = first {
            self.conflict(first, count, sink);
        }
    }

    fn conflict(&mut self, offset: u64, len: u64, sink: &mut impl Sink) {
        self.stats.conflicts += len;
        self.stats.first_conflict.get_or_insert(offset);
        sink.conflict(offset, len);
    }

    /// Buffer `bytes` at `start > next`, first wins against buffered chunks.
    fn buffer(&mut self, start: u64, bytes: &[u8], sink: &mut impl Sink) {
        let end = start + bytes.len() as u64;
        // Chunks overlapping [start, end), ascending.
        let mut overlapping: Vec<(u64, u64)> = self
            .chunks
            .range(..end)
            .rev()
            .map(|(&c, v)| (c, c + v.len() as u64))
            .take_while(|&(_, ce)| ce > start)
            .collect();
        overlapping.reverse();
        let mut pos = start;
        let mut fills: Vec<(u64, u64)> = Vec::new();
        for &(cs, ce) in &overlapping {
            if cs > pos {
                fills.push((pos, cs));
            }
            let (a, b) = (cs.max(start), ce.min(end));
            self.stats.retransmitted += b - a;
            let chunk = &self.chunks[&cs];
            let kept = chunk.range((a - cs) as usize..(b - cs) as usize);
            let new = &bytes[(a - start) as usize..(b - start) as usize];
            let mut first = None;
            let mut count = 0u64;
            for (i, (k, n)) in kept.zip(new).enumerate() {
                if k != n {
                    first.get_or_insert(a + i as u64);
                    count += 1;
                }
            }
            if let Some(first) = first {
                self.conflict(first, count, sink);
            }
            pos = pos.max(ce);
        }
        if pos < end {
            fills.push((pos, end));
        }
        for (a, b) in fills {
            self.put(a, &bytes[(a - start) as usize..(b - start) as usize]);
        }
    }

    /// Store a piece that overlaps nothing, merging it with chunks it touches.
    fn put(&mut self, at: u64, bytes: &[u8]) {
        let end = at + bytes.len() as u64;
        self.buffered += bytes.len() as u64;
        // Append to the chunk that ends where this piece starts, else start a new chunk.
        let prev = self
            .chunks
            .range_mut(..at)
            .next_back()
            .filter(|(c, v)| **c + v.len() as u64 == at)
            .map(|(&c, _)| c);
        let key = if let Some(c) = prev {
            let chunk = self.chunks.get_mut(&c).expect("found above");
            let before = chunk.capacity();
            // Extending from `slice::Iter<&u8>` copies the slice whole (`copied()` would go
            // byte by byte).
            chunk.extend(bytes);
            self.heap += (chunk.capacity() - before) as u64;
            c
        } else {
            let chunk = VecDeque::from(bytes.to_vec());
            self.heap += chunk.capacity() as u64 + CHUNK_OVERHEAD;
            self.chunks.insert(at, chunk);
            at
        };
        // Merge with the chunk that starts where this one now ends: small into large.
        if let Some(mut after) = self.chunks.remove(&end) {
            let here = self.chunks.get_mut(&key).expect("inserted above");
            let before = (here.capacity() + after.capacity()) as u64 + CHUNK_OVERHEAD;
            if here.len() >= after.len() {
                here.append(&mut after);
            } else {
                for &b in here.iter().rev() {
                    after.push_front(b);
                }
                *here = after;
            }
            self.heap = self.heap - before + here.capacity() as u64;
        }
    }
}

/// A ring of the last delivered bytes, ending at the assembler's `next`.
#[derive(Debug, Default)]
struct Recent {
    buf: Vec<u8>,
    /// Valid bytes (at most `CHECK_WINDOW`).
    len: usize,
    /// Where the byte for the next delivered offset goes.
    head: usize,
}

impl Recent {
    fn push(&mut self, bytes: &[u8]) {
        if self.buf.len() < CHECK_WINDOW {
            // Grow lazily: short streams never hold a full window.
            let want = (self.buf.len() + bytes.len()).min(CHECK_WINDOW);
            if want > self.buf.len() && self.head == self.buf.len() {
                self.buf.resize(want, 0);
            } else if want > self.buf.len() {
                // Wrapped before reaching full size: unroll and grow.
                self.buf.rotate_left(self.head);
                self.head = self.buf.len();
                self.buf.resize(want, 0);
            }
        }
        let cap = self.buf.len();
        let tail = if bytes.len() > cap {
            &bytes[bytes.len() - cap..]
        } else {
            bytes
        };
        let first = tail.len().min(cap - self.head);
        self.buf[self.head..self.head + first].copy_from_slice(&tail[..first]);
        self.buf[..tail.len() - first].copy_from_slice(&tail[first..]);
        self.head = (self.head + tail.len()) % cap;
        self.len = (self.len + tail.len()).min(cap);
    }

    /// The byte at stream offset `at`, which must be within the window ending at `end`.
    fn get(&self, at: u64, end: u64) -> u8 {
        let back = (end - at) as usize;
        debug_assert!(back >= 1 && back <= self.len);
        let cap = self.buf.len();
        self.buf[(self.head + cap - back) % cap]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

    /// Records events; `stream` is the delivered bytes with gaps as `None`.
    #[derive(Default, Debug)]
    struct Rec {
        stream: Vec<Option<u8>>,
        gaps: Vec<(u64, u64)>,
        conflicts: Vec<(u64, u64)>,
        calls: usize,
    }

    impl Sink for Rec {
        fn data(&mut self, offset: u64, bytes: &[u8]) {
            assert_eq!(offset, self.stream.len() as u64, "data out of order");
            self.stream.extend(bytes.iter().map(|&b| Some(b)));
            self.calls += 1;
        }
        fn gap(&mut self, offset: u64, len: u64) {
            assert_eq!(offset, self.stream.len() as u64, "gap out of order");
            self.stream.extend(std::iter::repeat_n(None, len as usize));
            self.gaps.push((offset, len));
        }
        fn conflict(&mut self, offset: u64, len: u64) {
            self.conflicts.push((offset, len));
        }
    }

    impl Assembler {
        /// `heap` counted from scratch.
        fn recount(&self) -> u64 {
            self.chunks
                .values()
                .map(|c| c.capacity() as u64 + CHUNK_OVERHEAD)
                .sum()
        }
    }

    impl Rec {
        fn bytes(&self) -> Vec<u8> {
            self.stream.iter().map(|b| b.expect("no gap")).collect()
        }
    }

    fn run(segments: &[(u64, &[u8])]) -> (Assembler, Rec) {
        let mut a = Assembler::new(1 << 20);
        let mut r = Rec::default();
        for &(o, b) in segments {
            a.insert(o, b, &mut r).unwrap();
        }
        a.finish(None, &mut r);
        (a, r)
    }

    #[test]
    fn in_order_is_delivered_by_reference_one_call_each() {
        let (a, r) = run(&[(0, b"GET "), (4, b"/ HTTP"), (10, b"/1.1")]);
        assert_eq!(r.bytes(), b"GET / HTTP/1.1");
        assert_eq!(r.calls, 3);
        assert_eq!(a.stats().out_of_order, 0);
        assert_eq!(a.buffered(), 0);
    }

    #[test]
    fn reversed_and_shuffled() {
        let text = b"0123456789abcdefghij";
        let segs: Vec<(u64, &[u8])> = (0..10)
            .map(|i| (i * 2, &text[i as usize * 2..][..2]))
            .collect();
        let mut rev = segs.clone();
        rev.reverse();
        let (a, r) = run(&rev);
        assert_eq!(r.bytes(), text);
        assert_eq!(a.stats().out_of_order, 9);
        assert_eq!(r.calls, 2, "the first segment, then one merged chunk");
        let mut shuffled = segs.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(4));
        let (_, r) = run(&shuffled);
        assert_eq!(r.bytes(), text);
    }

    #[test]
    fn duplicate_and_overlaps_first_wins() {
        // Duplicate of delivered data.
        let (a, r) = run(&[(0, b"abcd"), (0, b"abcd"), (4, b"ef")]);
        assert_eq!(r.bytes(), b"abcdef");
        assert_eq!(a.stats().retransmitted, 4);
        assert_eq!(a.stats().conflicts, 0);
        // Partial overlap of buffered data, both sides.
        let (a, r) = run(&[(4, b"efgh"), (2, b"cdef"), (6, b"ghij"), (0, b"ab")]);
        assert_eq!(r.bytes(), b"abcdefghij");
        assert_eq!(a.stats().retransmitted, 4);
        // Full overlap: a large segment covering two buffered ones.
        let (a, r) = run(&[(3, b"d"), (6, b"g"), (1, b"bcdefgh"), (0, b"a")]);
        assert_eq!(r.bytes(), b"abcdefgh");
        assert_eq!(a.stats().retransmitted, 2);
        assert!(r.conflicts.is_empty());
    }

    #[test]
    fn issue4_good_then_evil_keeps_good_and_counts_conflict() {
        // Buffered (out of order) and delivered (in order) both keep the first bytes.
        let (a, r) = run(&[(4, b"GOOD"), (4, b"EVIL"), (0, b"get ")]);
        assert_eq!(r.bytes(), b"get GOOD");
        assert_eq!(a.stats().conflicts, 4);
        assert_eq!(r.conflicts, vec![(4, 4)]);
        let (a, r) = run(&[(0, b"GOOD"), (0, b"EVIL"), (2, b"OD!")]);
        assert_eq!(r.bytes(), b"GOOD!");
        assert_eq!(a.stats().conflicts, 4);
        assert_eq!(a.stats().first_conflict, Some(0));
        // Only differing bytes count: "GOAD" differs from "GOOD" in one byte, at offset 2.
        let (a, r) = run(&[(0, b"GOOD"), (0, b"GOAD")]);
        assert_eq!((a.stats().conflicts, r.conflicts), (1, vec![(2, 1)]));
    }

    #[test]
    fn hole_that_never_fills_is_a_gap_at_finish() {
        let (a, r) = run(&[(0, b"ab"), (5, b"fg")]);
        assert_eq!(r.gaps, vec![(2, 3)]);
        assert_eq!(r.stream.len(), 7);
        assert_eq!(a.stats().gap_bytes, 3);
        // Late bytes of the declared gap are not delivered.
        let mut a = a;
        let mut r = r;
        a.insert(2, b"cde", &mut r).unwrap();
        assert_eq!(a.stats().late, 3);
        assert_eq!(r.stream.len(), 7);
    }

    #[test]
    fn ack_past_a_hole_and_truncated_tail() {
        let mut a = Assembler::new(1 << 20);
        let mut r = Rec::default();
        a.insert(0, b"ab", &mut r).unwrap();
        a.insert(6, b"gh", &mut r).unwrap();
        a.gap_to(10, &mut r);
        assert_eq!(r.gaps, vec![(2, 4), (8, 2)]);
        assert_eq!(a.next(), 10);
        // A segment whose last 5 bytes were cut: the hole is declared at finish.
        a.note_extent(20);
        a.insert(10, b"01234", &mut r).unwrap();
        a.finish(None, &mut r);
        assert_eq!(r.gaps.last(), Some(&(15, 5)));
    }

    #[test]
    fn over_the_bound_declares_a_gap() {
        let mut a = Assembler::new(4);
        let mut r = Rec::default();
        a.insert(10, b"abc", &mut r).unwrap();
        let e = a.insert(13, b"de", &mut r).unwrap_err();
        assert_eq!((e.buffered, e.limit, e.next), (5, 4, 0));
        assert!(a.skip_hole(&mut r));
        assert_eq!(r.gaps, vec![(0, 10)]);
        assert_eq!(a.next(), 15);
        assert!(!a.skip_hole(&mut r));
    }

    #[test]
    fn issue4_million_one_byte_segments_reversed() {
        const N: u64 = 1_000_000;
        let mut a = Assembler::new(4 << 20);
        let mut r = Count::default();
        for i in (0..N).rev() {
            a.insert(i, &[(i % 251) as u8], &mut r).unwrap();
            assert!(a.chunks.len() <= 1, "touching pieces are merged");
        }
        assert_eq!(r.bytes, N);
        assert_eq!(r.sum, (0..N).map(|i| i % 251).sum::<u64>());
        assert_eq!(a.buffered(), 0);
    }

    #[test]
    fn issue4_data_one_gigabyte_ahead() {
        let mut a = Assembler::new(4 << 20);
        let mut r = Count::default();
        a.insert(1 << 30, b"far", &mut r).unwrap();
        assert_eq!(
            a.memory(),
            3 + CHUNK_OVERHEAD,
            "nothing sized by the offset"
        );
        a.finish(None, &mut r);
        assert_eq!((r.gap, r.bytes), (1 << 30, 3));
    }

    #[derive(Default)]
    struct Count {
        bytes: u64,
        sum: u64,
        gap: u64,
    }
    impl Sink for Count {
        fn data(&mut self, _: u64, bytes: &[u8]) {
            self.bytes += bytes.len() as u64;
            self.sum += bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        fn gap(&mut self, _: u64, len: u64) {
            self.gap += len;
        }
    }

    /// The obviously correct model: a byte map, first write wins.
    #[test]
    fn randomized_against_a_byte_map() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for round in 0..300 {
            let len = rng.random_range(1..400u64);
            let truth: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut model: BTreeMap<u64, u8> = BTreeMap::new();
            let mut a = Assembler::new(1 << 20);
            let mut r = Rec::default();
            let mut conflicts = 0u64;
            for _ in 0..rng.random_range(1..60) {
                let s = rng.random_range(0..len);
                let e = rng.random_range(s + 1..=len.min(s + 50));
                let evil = rng.random_ratio(1, 5);
                let seg: Vec<u8> = (s..e)
                    .map(|i| {
                        if evil {
                            truth[i as usize] ^ 0x55
                        } else {
                            truth[i as usize]
                        }
                    })
                    .collect();
                for (i, &b) in (s..e).zip(&seg) {
                    match model.get(&i) {
                        Some(&k) if k != b && i >= a.next() - a.recent.len as u64 => conflicts += 1,
                        Some(_) => {}
                        None => {
                            model.insert(i, b);
                        }
                    }
                }
                a.insert(s, &seg, &mut r).unwrap();
                assert_eq!(a.heap, a.recount(), "round {round}");
                // Everything contiguous from 0 in the model is delivered.
                let contiguous = (0..).take_while(|i| model.contains_key(i)).count();
                assert_eq!(r.stream.len(), contiguous, "round {round}");
            }
            a.finish(Some(len), &mut r);
            assert_eq!((a.heap, a.memory()), (0, 0), "round {round}");
            assert_eq!(r.stream.len() as u64, len);
            for (i, b) in r.stream.iter().enumerate() {
                assert_eq!(
                    *b,
                    model.get(&(i as u64)).copied(),
                    "round {round} byte {i}"
                );
            }
            assert_eq!(a.stats().conflicts, conflicts, "round {round}");
            let gap: u64 = r.gaps.iter().map(|g| g.1).sum();
            assert_eq!(gap, len - model.len() as u64);
        }
    }
}
