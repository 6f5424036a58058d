//! One direction of a TCP session: sequence numbers mapped onto the 64-bit offsets of an
//! [`Assembler`].
//!
//! # Policy
//! - Offset 0 is the byte after the SYN (`ISN + 1`). Without a SYN it is the peer's last
//!   ACK if one was seen, else the first sequence number seen (mid-stream pickup).
//! - A sequence number is placed relative to the next expected byte, by signed 32-bit
//!   distance, so wraparound at 2^32 is invisible and offsets keep growing past 4 GiB.
//! - **SYN data** (TCP Fast Open) is stream data at offset 0: the receiving kernel hands it
//!   to the application, so it is part of the stream.
//! - **Urgent data** stays inline, where it was sent (as with `SO_OOBINLINE`, and as
//!   Wireshark and tcpflow show it): the urgent pointer is not interpreted.
//! - **RST**: its payload (a diagnostic text at most) is never stream data; the caller
//!   counts it and does not pass it here.
//! - **FIN**: the first FIN fixes where the stream ends; bytes beyond it are counted in
//!   [`HalfStream::after_fin`] and dropped.
//! - **ACKs** from the peer declare holes below them gaps: the peer got those bytes, the
//!   capture did not. An ACK more than 1 GiB beyond the next expected byte is ignored as
//!   bogus.

use super::{Assembler, CapacityError, Sink};
use crate::wire::SeqNum;

/// ACKs further than this beyond the next expected byte are ignored.
const MAX_ACK_JUMP: i64 = 1 << 30;

/// An ACK `rel` bytes beyond the next expected byte declares the hole before it a gap.
const fn ack_moves(rel: i64) -> bool {
    rel > 0 && rel <= MAX_ACK_JUMP
}

/// A RST `rel` bytes from the next expected byte is in the window a stack would accept.
const fn rst_in_window(rel: i64) -> bool {
    rel >= -(1 << 16) && rel <= 1 << 24
}

/// One direction's reassembly state.
///
/// # Invariant
/// When `base` is `Some`, offset `o` of the assembler is sequence number `base + o` (mod
/// 2^32); before it is set nothing has been inserted.
#[derive(Debug)]
pub struct HalfStream {
    base: Option<SeqNum>,
    isn: Option<SeqNum>,
    fin: Option<u64>,
    asm: Assembler,
    /// Bytes sent after this direction's FIN: dropped.
    pub after_fin: u64,
    /// Bytes before offset 0 (before the ISN, or before a mid-stream pickup): dropped.
    pub before_start: u64,
}

impl HalfStream {
    /// A direction whose out-of-order buffer holds at most `max_ooo` bytes.
    pub fn new(max_ooo: u64) -> Self {
        Self {
            base: None,
            isn: None,
            fin: None,
            asm: Assembler::new(max_ooo),
            after_fin: 0,
            before_start: 0,
        }
    }

    /// Sequence number of offset 0, once known.
    pub const fn base(&self) -> Option<SeqNum> {
        self.base
    }

    /// Initial sequence number, from this side's SYN or the peer's SYN-ACK.
    pub const fn isn(&self) -> Option<SeqNum> {
        self.isn
    }

    /// Offset of the FIN, once seen.
    pub const fn fin(&self) -> Option<u64> {
        self.fin
    }

    /// The reassembler underneath.
    pub const fn assembler(&self) -> &Assembler {
        &self.asm
    }

    /// This side's ISN is known (SYN, or the peer's SYN-ACK acknowledging `isn + 1`).
    ///
    /// A mid-stream pickup that has delivered nothing yet (a capture whose packets came out
    /// of order: FIN or later data before the SYN) is moved back to the ISN; what it
    /// buffered keeps its place.
    pub fn set_isn(&mut self, isn: SeqNum) {
        if self.isn.is_none() {
            self.isn = Some(isn);
        }
        let start = isn + 1;
        match self.base {
            None => self.base = Some(start),
            Some(old) if self.isn == Some(isn) && old != start && self.asm.next() == 0 => {
                let delta = old.distance_from(start);
                if delta > 0 && self.asm.shift(delta as u64) {
                    self.base = Some(start);
                    self.fin = self.fin.map(|f| f + delta as u64);
                }
            }
            Some(_) => {}
        }
    }

    /// Start a mid-stream pickup at `seq`, unless the start is known already.
    pub fn pick_up_at(&mut self, seq: SeqNum) {
        if self.base.is_none() {
            self.base = Some(seq);
        }
    }

    /// Offset of `seq`, relative to the next expected byte (`None` before `base` is set).
    fn offset(&self, seq: SeqNum) -> Option<i64> {
        let base = self.base?;
        let next = self.asm.next();
        let next_seq = base + next as u32;
        Some(next as i64 + i64::from(seq.distance_from(next_seq)))
    }

    /// Payload at `seq`: `payload` captured, `wire_len` on the wire (more when truncated).
    ///
    /// # Errors
    /// [`CapacityError`] when the out-of-order buffer went over its bound: call
    /// [`Self::skip_hole`].
    pub fn data(
        &mut self,
        seq: SeqNum,
        payload: &[u8],
        wire_len: u32,
        sink: &mut impl Sink,
    ) -> Result<(), CapacityError> {
        let wire_len = u64::from(wire_len).max(payload.len() as u64);
        if wire_len == 0 {
            return Ok(());
        }
        let Some(mut off) = self.offset(seq) else {
            return Ok(());
        };
        let mut payload = payload;
        let mut end = off + wire_len as i64;
        if end <= 0 {
            self.before_start += wire_len;
            return Ok(());
        }
        if off < 0 {
            let cut = (-off) as u64;
            self.before_start += cut;
            payload = payload.get(cut as usize..).unwrap_or_default();
            off = 0;
        }
        if let Some(f) = self.fin {
            let f = f as i64;
            if end > f {
                self.after_fin += (end - off.max(f)) as u64;
                end = f.max(off);
                let keep = ((end - off) as usize).min(payload.len());
                payload = &payload[..keep];
            }
        }
        let (off, end) = (off as u64, end as u64);
        if end > off + payload.len() as u64 {
            self.asm.note_extent(end);
        }
        self.asm.insert(off, payload, sink)
    }

    /// A FIN at `seq` (the sequence number after the segment's payload).
    pub fn fin_at(&mut self, seq: SeqNum) {
        if self.fin.is_some() {
            return;
        }
        if let Some(off) = self.offset(seq) {
            self.fin = Some(off.max(0) as u64);
        }
    }

    /// The peer acknowledged up to `ack`: holes below it are gaps.
    pub fn ack(&mut self, ack: SeqNum, sink: &mut impl Sink) {
        let Some(off) = self.offset(ack) else {
            return;
        };
        let next = self.asm.next() as i64;
        if !ack_moves(off - next) {
            return;
        }
        let mut to = off as u64;
        if let Some(f) = self.fin {
            to = to.min(f);
        }
        self.asm.gap_to(to, sink);
    }

    /// Declare the first hole a gap (after a [`CapacityError`]); `false` if none.
    pub fn skip_hole(&mut self, sink: &mut impl Sink) -> bool {
        self.asm.skip_hole(sink)
    }

    /// The stream is over: flush buffered data, declare the remaining holes gaps.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        if self.base.is_some() {
            self.asm.finish(self.fin, sink);
        }
    }

    /// Whether a RST at `seq` is believable: within 64 KiB behind or 16 MiB ahead of the
    /// next expected byte (a receiving stack accepts only in-window RSTs, RFC 5961; one far
    /// off is blind injection or garbage and must not end the session). Always `true` while
    /// the stream's start is unknown.
    pub fn rst_plausible(&self, seq: SeqNum) -> bool {
        self.offset(seq)
            .is_none_or(|off| rst_in_window(off - self.asm.next() as i64))
    }

    /// [`Self::rst_plausible`] for a stream that has seen nothing but its ISN (if that):
    /// what the flow table asks of a session whose reassembly state is not allocated yet.
    pub fn fresh_rst_plausible(isn: Option<SeqNum>, seq: SeqNum) -> bool {
        isn.is_none_or(|isn| rst_in_window(i64::from(seq.distance_from(isn + 1))))
    }

    /// Whether [`Self::ack`] would declare a gap on a stream that has seen nothing but its
    /// ISN (if that): only then does the flow table allocate the stream for a bare ACK.
    pub fn fresh_ack_declares_gap(isn: Option<SeqNum>, ack: SeqNum) -> bool {
        isn.is_some_and(|isn| ack_moves(i64::from(ack.distance_from(isn + 1))))
    }

    /// Everything up to the FIN was delivered or declared a gap.
    pub fn is_done(&self) -> bool {
        self.fin.is_some_and(|f| self.asm.next() >= f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec(Vec<u8>, Vec<(u64, u64)>);
    impl Sink for Rec {
        fn data(&mut self, _: u64, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
        fn gap(&mut self, o: u64, l: u64) {
            self.1.push((o, l));
        }
    }

    #[test]
    fn isn_near_the_top_wraps_at_2_pow_32() {
        let mut h = HalfStream::new(1 << 20);
        let mut r = Rec::default();
        h.set_isn(SeqNum(u32::MAX - 2));
        // Offset 0 is u32::MAX - 1; the third segment starts past the wrap.
        h.data(SeqNum(6), b"89", 2, &mut r).unwrap();
        h.data(SeqNum(u32::MAX - 1), b"0123", 4, &mut r).unwrap();
        h.data(SeqNum(2), b"4567", 4, &mut r).unwrap();
        assert_eq!(r.0, b"0123456789");
        assert_eq!(h.assembler().next(), 10);
    }

    #[test]
    fn offsets_grow_past_four_gibibytes() {
        let mut h = HalfStream::new(1 << 20);
        let mut r = Rec::default();
        h.set_isn(SeqNum(7));
        let chunk = vec![b'x'; 1 << 16];
        let mut seq = SeqNum(8);
        for _ in 0..(1u64 << 32) / (1 << 16) + 1 {
            h.data(seq, &chunk, chunk.len() as u32, &mut r).unwrap();
            seq = seq + chunk.len() as u32;
            r.0.clear();
        }
        assert_eq!(h.assembler().next(), (1 << 32) + (1 << 16));
        assert!(r.1.is_empty());
    }

    #[test]
    fn data_after_fin_and_before_start_is_dropped() {
        let mut h = HalfStream::new(1 << 20);
        let mut r = Rec::default();
        h.set_isn(SeqNum(99));
        h.data(SeqNum(100), b"abc", 3, &mut r).unwrap();
        h.fin_at(SeqNum(103));
        h.data(SeqNum(102), b"cXY", 3, &mut r).unwrap();
        h.data(SeqNum(90), b"0123456789", 10, &mut r).unwrap();
        assert_eq!(r.0, b"abc");
        assert_eq!((h.after_fin, h.before_start), (2, 10));
        assert!(h.is_done());
    }

    #[test]
    fn truncated_segment_leaves_a_hole_for_its_tail() {
        let mut h = HalfStream::new(1 << 20);
        let mut r = Rec::default();
        h.set_isn(SeqNum(0));
        h.data(SeqNum(1), b"ab", 6, &mut r).unwrap();
        h.finish(&mut r);
        assert_eq!(
            (r.0.as_slice(), r.1.as_slice()),
            (&b"ab"[..], &[(2, 4)][..])
        );
    }

    /// The light answers for an unallocated stream agree with a real stream that has seen
    /// only its ISN, or nothing.
    #[test]
    fn fresh_answers_match_a_real_fresh_stream() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(12);
        for i in 0..20_000 {
            let isn = (i % 3 != 0).then(|| SeqNum(rng.random()));
            // Near the ISN, near the window edges, and anywhere.
            let base = isn.map_or(0, |s| s.0);
            let seq = SeqNum(match i % 4 {
                0 => base.wrapping_add(rng.random_range(0..4u32)),
                1 => base
                    .wrapping_add(1 << 24)
                    .wrapping_add(rng.random_range(0..4u32)),
                2 => base
                    .wrapping_sub(1 << 16)
                    .wrapping_add(rng.random_range(0..4u32)),
                _ => rng.random(),
            });
            let mut h = HalfStream::new(1 << 20);
            if let Some(isn) = isn {
                h.set_isn(isn);
            }
            assert_eq!(
                HalfStream::fresh_rst_plausible(isn, seq),
                h.rst_plausible(seq)
            );
            let mut r = Rec::default();
            h.ack(seq, &mut r);
            assert_eq!(
                HalfStream::fresh_ack_declares_gap(isn, seq),
                !r.1.is_empty(),
                "isn {isn:?} ack {seq:?}"
            );
        }
    }

    #[test]
    fn ack_past_fin_is_capped_and_bogus_ack_ignored() {
        let mut h = HalfStream::new(1 << 20);
        let mut r = Rec::default();
        h.set_isn(SeqNum(0));
        h.data(SeqNum(1), b"ab", 2, &mut r).unwrap();
        h.ack(SeqNum(1 << 31), &mut r);
        assert!(r.1.is_empty());
        h.fin_at(SeqNum(5));
        h.ack(SeqNum(6), &mut r);
        assert_eq!(r.1, vec![(2, 2)]);
    }
}
