//! One session of the flow table: a small entry for every session, and the reassembly
//! state, allocated only once the session needs it.
//!
//! A SYN flood opens a session per SYN, so what a session costs before it carries data is
//! what a flood costs. The entry holds only what every session needs (who, when, packet
//! counts, ISNs, last ACKs, flags); both directions' reassembly and the rarer counters
//! live in [`Streams`], boxed, created by the first packet that carries data, a FIN, an
//! ACK that declares a gap, or anything else that needs them. Until then the light answers
//! of [`HalfStream::fresh_rst_plausible`] and [`HalfStream::fresh_ack_declares_gap`] stand
//! in for a stream that has seen nothing but its ISN.

use std::mem::size_of;

use super::FlowStats;
use crate::{
    decode::{Segment, TcpFlags},
    listener::{DirStats, Direction, EndReason, Listener, SessionInfo, SessionState, SessionStats},
    tcp::{HalfStream, Sink},
    wire::{SeqNum, Timestamp},
};

/// End of an eviction list, or no slot.
pub(super) const NIL: u32 = u32::MAX;

/// Which eviction list a session is on, in the order the lists give sessions up when a
/// bound is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// Ended by FIN or RST and lingering for its last packets: all its events are out.
    Closed = 0,
    /// Never answered: one side has sent nothing but SYNs (or nothing at all). A SYN flood
    /// is made of these, as are Zeek's connection attempts.
    Attempt = 1,
    /// Established (both sides have spoken) and open.
    Live = 2,
}

impl Class {
    /// Every class, in eviction order.
    pub(super) const ALL: [Self; 3] = [Self::Closed, Self::Attempt, Self::Live];
}

/// Per-session flags, two bits per direction-dependent flag (bit `<< d` for direction `d`).
#[derive(Clone, Copy, Debug, Default)]
struct Flags(u16);

impl Flags {
    /// A SYN was sent this way.
    const SYN: u16 = 1;
    /// A FIN was sent this way.
    const FIN: u16 = 1 << 2;
    /// This side sent something other than a bare SYN (it answered, or it talks).
    const SPOKE: u16 = 1 << 4;
    /// This side's ISN is known (`Session::isn`).
    const ISN: u16 = 1 << 6;
    /// This side sent an ACK (`Session::acked`).
    const ACKED: u16 = 1 << 8;
    /// A SYN-ACK was seen (not per direction).
    const SYNACK: u16 = 1 << 10;
    /// The session was reset (not per direction).
    const RST: u16 = 1 << 11;

    const fn has(self, flag: u16, d: usize) -> bool {
        self.0 & (flag << d) != 0
    }

    const fn set(&mut self, flag: u16, d: usize) {
        self.0 |= flag << d;
    }
}

/// What only a session that carries data needs: both directions' reassembly and the
/// counters that only such sessions move.
#[derive(Debug)]
pub(super) struct Streams {
    half: [HalfStream; 2],
    /// Payload bytes sent each way, as on the wire.
    bytes: [u64; 2],
    /// Payload bytes dropped after the session closed, or carried by a RST.
    after_close: [u64; 2],
    /// RSTs ignored as implausible.
    rst_ignored: [u64; 2],
    /// What [`Session::memory`] counted for the streams when the table last asked.
    counted: u64,
}

impl Streams {
    fn new(max_ooo: u64, isn: [Option<SeqNum>; 2]) -> Box<Self> {
        let mut half = [HalfStream::new(max_ooo), HalfStream::new(max_ooo)];
        for (h, isn) in half.iter_mut().zip(isn) {
            if let Some(isn) = isn {
                h.set_isn(isn);
            }
        }
        Box::new(Self {
            half,
            bytes: [0; 2],
            after_close: [0; 2],
            rst_ignored: [0; 2],
            counted: 0,
        })
    }
}

/// The streams of a session, allocated on first use with the ISNs known so far (a stream
/// that has seen only `set_isn` is exactly a new one given its first ISN).
#[inline]
fn streams_of(
    streams: &mut Option<Box<Streams>>,
    max_ooo: u64,
    isn: [Option<SeqNum>; 2],
) -> &mut Streams {
    streams.get_or_insert_with(|| Streams::new(max_ooo, isn))
}

/// One session in the table.
///
/// # Invariant
/// - Until `streams` is allocated, each direction's stream would be a new [`HalfStream`]
///   given the ISN in `isn` (if [`Flags::ISN`]): nothing but `set_isn` has touched it.
/// - `prev`/`next` link the session into the list of its `class`.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) info: SessionInfo,
    pub(super) last_ts: Timestamp,
    packets: [u64; 2],
    streams: Option<Box<Streams>>,
    isn: [SeqNum; 2],
    /// Last ACK number sent by each direction (acknowledging the other).
    acked: [SeqNum; 2],
    pub(super) prev: u32,
    pub(super) next: u32,
    flags: Flags,
    /// `session_end` was emitted.
    pub(super) ended: Option<EndReason>,
    last_dir: Option<Direction>,
    pub(super) class: Class,
}

/// What a session costs in the table before it carries data: its slot, and its share of
/// the hash index (a `u32` and a control byte per bucket; buckets are at most twice the
/// sessions).
pub const SESSION_ENTRY_BYTES: u64 =
    (size_of::<Option<Session>>() + 2 * (size_of::<u32>() + 1)) as u64;

// What a SYN flood costs per SYN: within about 200 bytes, all included.
const _: () = assert!(SESSION_ENTRY_BYTES <= 200);

/// What a session's reassembly state adds once it carries data, beside the bytes its
/// assemblers hold ([`crate::tcp::Assembler::memory`]).
pub const SESSION_STREAMS_BYTES: u64 = size_of::<Streams>() as u64;

/// Forwards one direction's reassembly events to the listener, with monologue tracking.
struct Emit<'a, L: Listener + ?Sized> {
    listener: &'a mut L,
    info: &'a SessionInfo,
    last_dir: &'a mut Option<Direction>,
    dir: Direction,
    ts: Timestamp,
}

impl<L: Listener + ?Sized> Emit<'_, L> {
    fn turn(&mut self) {
        if *self.last_dir != Some(self.dir) {
            if let Some(d) = *self.last_dir {
                self.listener.monologue_end(self.info, d, self.ts);
            }
            *self.last_dir = Some(self.dir);
        }
    }
}

impl<L: Listener + ?Sized> Sink for Emit<'_, L> {
    fn data(&mut self, offset: u64, bytes: &[u8]) {
        self.turn();
        self.listener
            .data(self.info, self.dir, offset, bytes, self.ts);
    }
    fn gap(&mut self, offset: u64, len: u64) {
        self.turn();
        self.listener.gap(self.info, self.dir, offset, len, self.ts);
    }
    fn conflict(&mut self, offset: u64, len: u64) {
        self.listener
            .overlap_conflict(self.info, self.dir, offset, len, self.ts);
    }
}

macro_rules! emit {
    ($s:expr, $l:expr, $dir:expr, $ts:expr) => {
        Emit {
            listener: &mut *$l,
            info: &$s.info,
            last_dir: &mut $s.last_dir,
            dir: $dir,
            ts: $ts,
        }
    };
}

pub(super) const fn dir_of(i: usize) -> Direction {
    if i == 0 {
        Direction::Orig
    } else {
        Direction::Resp
    }
}

impl Session {
    pub(super) fn new(info: SessionInfo, ts: Timestamp) -> Self {
        Self {
            info,
            last_ts: ts,
            packets: [0; 2],
            streams: None,
            isn: [SeqNum(0); 2],
            acked: [SeqNum(0); 2],
            prev: NIL,
            next: NIL,
            flags: Flags::default(),
            ended: None,
            last_dir: None,
            class: Class::Attempt,
        }
    }

    /// Whether this is the session of a packet between `a` and `b`.
    #[inline]
    pub(super) fn is_between(&self, a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
        (self.info.client == a && self.info.server == b)
            || (self.info.client == b && self.info.server == a)
    }

    /// This side's ISN, once known.
    pub(super) const fn isn(&self, d: usize) -> Option<SeqNum> {
        if self.flags.has(Flags::ISN, d) {
            Some(self.isn[d])
        } else {
            None
        }
    }

    const fn acked(&self, d: usize) -> Option<SeqNum> {
        if self.flags.has(Flags::ACKED, d) {
            Some(self.acked[d])
        } else {
            None
        }
    }

    /// The first ISN seen for a side wins, as in [`HalfStream::set_isn`].
    fn set_isn(&mut self, d: usize, isn: SeqNum) {
        if !self.flags.has(Flags::ISN, d) {
            self.isn[d] = isn;
            self.flags.set(Flags::ISN, d);
        }
        if let Some(st) = self.streams.as_deref_mut() {
            st.half[d].set_isn(isn);
        }
    }

    const fn isns(&self) -> [Option<SeqNum>; 2] {
        [self.isn(0), self.isn(1)]
    }

    /// The streams, allocated if they were not.
    fn streams(&mut self, max_ooo: u64) -> &mut Streams {
        let isns = self.isns();
        streams_of(&mut self.streams, max_ooo, isns)
    }

    pub(super) const fn closed(&self) -> bool {
        self.flags.has(Flags::RST, 0)
            || self.flags.has(Flags::FIN, 0)
            || self.flags.has(Flags::FIN, 1)
    }

    /// The eviction list this session belongs on.
    #[inline]
    pub(super) const fn class(&self) -> Class {
        if self.ended.is_some() {
            Class::Closed
        } else if self.flags.has(Flags::SPOKE, 0) && self.flags.has(Flags::SPOKE, 1) {
            Class::Live
        } else {
            Class::Attempt
        }
    }

    /// Memory this session holds, as last counted by [`Self::recount`]: its entry, and
    /// its streams with what they buffer.
    #[inline]
    pub(super) fn memory(&self) -> u64 {
        SESSION_ENTRY_BYTES + self.streams.as_ref().map_or(0, |st| st.counted)
    }

    /// Count the memory held now; returns what was counted before and what is now, for
    /// the table's total. O(1).
    #[inline]
    pub(super) fn recount(&mut self) -> (u64, u64) {
        match self.streams.as_deref_mut() {
            None => (SESSION_ENTRY_BYTES, SESSION_ENTRY_BYTES),
            Some(st) => {
                let now = SESSION_STREAMS_BYTES
                    + st.half[0].assembler().memory()
                    + st.half[1].assembler().memory();
                let before = std::mem::replace(&mut st.counted, now);
                (SESSION_ENTRY_BYTES + before, SESSION_ENTRY_BYTES + now)
            }
        }
    }

    /// Out-of-order bytes buffered, both ways.
    pub(super) fn buffered(&self) -> u64 {
        self.streams.as_ref().map_or(0, |st| {
            st.half[0].assembler().buffered() + st.half[1].assembler().buffered()
        })
    }

    /// Process one segment. Returns `true` when this closed the session.
    pub(super) fn segment<L: Listener + ?Sized>(
        &mut self,
        seg: &Segment<'_>,
        max_ooo: u64,
        stats: &mut FlowStats,
        l: &mut L,
    ) -> bool {
        let d = usize::from(seg.src != self.info.client);
        let o = 1 - d;
        let (dir, odir, ts, f) = (dir_of(d), dir_of(o), seg.ts, seg.flags);
        let wire = u64::from(seg.payload_len).max(seg.payload.len() as u64);
        self.packets[d] += 1;
        if !f.has(TcpFlags::SYN) || f.has(TcpFlags::ACK) {
            self.flags.set(Flags::SPOKE, d);
        }
        // Capture time running backwards means the capture itself reordered packets (a
        // shuffled or merged file): an ACK then proves nothing about what is still to
        // come, so it declares no gap.
        let in_time = ts >= self.last_ts;
        self.last_ts = self.last_ts.max(ts);
        if (self.ended.is_some() || f.has(TcpFlags::RST)) && wire > 0 {
            let st = self.streams(max_ooo);
            st.bytes[d] += wire;
            st.after_close[d] += wire;
        }
        if self.ended.is_some() {
            return false;
        }
        if f.has(TcpFlags::RST) {
            let plausible = match self.streams.as_deref() {
                Some(st) => st.half[d].rst_plausible(seg.seq),
                None => HalfStream::fresh_rst_plausible(self.isn(d), seg.seq),
            };
            if !plausible {
                self.streams(max_ooo).rst_ignored[d] += 1;
                return false;
            }
            self.flags.set(Flags::RST, 0);
            self.end(EndReason::Rst, ts, l);
            return true;
        }
        if f.has(TcpFlags::SYN) {
            self.flags.set(Flags::SYN, d);
            self.set_isn(d, seg.seq);
            if f.has(TcpFlags::ACK) {
                self.flags.set(Flags::SYNACK, 0);
                self.set_isn(o, seg.ack - 1);
            }
        }
        if wire > 0 || f.has(TcpFlags::FIN) {
            let peer_acked = self.acked(o);
            let isns = self.isns();
            let st = streams_of(&mut self.streams, max_ooo, isns);
            st.bytes[d] += wire;
            if !f.has(TcpFlags::SYN) && st.half[d].base().is_none() {
                // Mid-stream: start where the peer said it expects us, if that is not
                // after this segment; else here.
                let start = match peer_acked {
                    Some(a) if (0..1 << 30).contains(&seg.seq.distance_from(a)) => a,
                    _ => seg.seq,
                };
                st.half[d].pick_up_at(start);
            }
            let data_seq = if f.has(TcpFlags::SYN) {
                seg.seq + 1
            } else {
                seg.seq
            };
            if wire > 0 {
                let mut e = emit!(self, l, dir, ts);
                if st.half[d]
                    .data(data_seq, seg.payload, seg.payload_len, &mut e)
                    .is_err()
                {
                    stats.ooo_overflows += 1;
                    while st.half[d].assembler().buffered() > max_ooo
                        && st.half[d].skip_hole(&mut e)
                    {}
                }
            }
            if f.has(TcpFlags::FIN) {
                self.flags.set(Flags::FIN, d);
                st.half[d].fin_at(data_seq + seg.payload_len.max(seg.payload.len() as u32));
            }
        }
        if f.has(TcpFlags::ACK) {
            self.acked[d] = seg.ack;
            self.flags.set(Flags::ACKED, d);
            if in_time
                && self.streams.is_none()
                && HalfStream::fresh_ack_declares_gap(self.isn(o), seg.ack)
            {
                self.streams(max_ooo);
            }
            if in_time && let Some(st) = self.streams.as_deref_mut() {
                let mut e = emit!(self, l, odir, ts);
                st.half[o].ack(seg.ack, &mut e);
            }
        }
        if self
            .streams
            .as_deref()
            .is_some_and(|st| st.half[0].is_done() && st.half[1].is_done())
        {
            self.end(EndReason::Fin, ts, l);
            return true;
        }
        false
    }

    /// Flush both directions (gaps for what is missing) and emit the end events, once.
    pub(super) fn end<L: Listener + ?Sized>(
        &mut self,
        reason: EndReason,
        ts: Timestamp,
        l: &mut L,
    ) {
        if self.ended.is_some() {
            return;
        }
        if let Some(st) = self.streams.as_deref_mut() {
            for (i, half) in st.half.iter_mut().enumerate() {
                let mut e = emit!(self, l, dir_of(i), ts);
                half.finish(&mut e);
            }
        }
        if let Some(d) = self.last_dir {
            l.monologue_end(&self.info, d, ts);
        }
        l.session_end(&self.info, reason, ts);
        self.ended = Some(reason);
    }

    /// Deliver what is buffered, declaring the holes before it gaps (memory pressure).
    pub(super) fn flush<L: Listener + ?Sized>(&mut self, ts: Timestamp, l: &mut L) {
        if let Some(st) = self.streams.as_deref_mut() {
            for (i, half) in st.half.iter_mut().enumerate() {
                let mut e = emit!(self, l, dir_of(i), ts);
                while half.skip_hole(&mut e) {}
            }
        }
    }

    pub(super) fn final_stats(&self, state: SessionState) -> SessionStats {
        let dir = |d: usize| {
            let mut x = DirStats {
                packets: self.packets[d],
                syn: self.flags.has(Flags::SYN, d),
                fin: self.flags.has(Flags::FIN, d),
                ..DirStats::default()
            };
            if let Some(st) = self.streams.as_deref() {
                let h = &st.half[d];
                x.bytes = st.bytes[d];
                x.asm = h.assembler().stats().clone();
                x.after_close = st.after_close[d] + h.after_fin;
                x.before_start = h.before_start;
                x.rst_ignored = st.rst_ignored[d];
            }
            x
        };
        SessionStats {
            orig: dir(0),
            resp: dir(1),
            handshake: self.flags.has(Flags::SYN, 0) && self.flags.has(Flags::SYNACK, 0),
            state,
            last: self.last_ts,
        }
    }
}
