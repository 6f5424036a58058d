//! The flow table: 4-tuple → session, with reuse, orientation, timeouts and eviction.
//!
//! # Rules
//! - **Keys**: the 4-tuple, direction-free ([`FlowKey`]), in a hash map seeded at random.
//! - **Stream index**: numbered as Wireshark's `tcp.stream`, in order of first packet, from 0.
//! - **Reuse**: a SYN (without ACK) whose ISN differs from the session's known ISN, on a
//!   session closed by FIN or RST, ends it ([`EndReason::Reused`]) and opens a new session
//!   with a new index. A retransmitted SYN (same ISN) does not. A timed-out session is gone
//!   already, so any packet of its 4-tuple opens a new session.
//! - **Orientation** (client → server): the sender of a SYN is the client, the sender of a
//!   SYN-ACK the server; otherwise the side on a well-known port (below 1024, or a usual
//!   HTTP alternative such as 8080) is the server (the lower port if both are); otherwise
//!   the first packet's sender is the client.
//! - **Mid-stream pickup**: a session first seen without SYN is marked `midstream` and
//!   reassembled from its first byte (see [`crate::tcp::stream`]).
//! - **Closing**: a RST ends the session at once, unless its sequence number is far from
//!   the stream (then it is ignored and counted, see [`HalfStream::rst_plausible`]). FINs
//!   both ways end it once both directions are complete up to their FIN. The session then
//!   lingers in the table (no more events, its last ACKs still counted) for
//!   [`CLOSED_LINGER`] of capture time.
//! - **ACKs** declare the holes below them gaps (see [`crate::tcp::stream`]), except an ACK
//!   stamped earlier than a packet already seen in its session: capture time running
//!   backwards means the capture reordered packets, and the hole may still fill.
//! - **Bounds** ([`FlowConfig`]): a direction whose out-of-order buffer exceeds
//!   `max_ooo_bytes` declares its first hole a gap; when all sessions together hold more
//!   than `memcap`, the session that pushed over it flushes its buffers (gaps), then the
//!   least recently active sessions are evicted; beyond `max_sessions` the least recently
//!   active one is evicted; a session idle for `idle_timeout` ends with "timeout". Every
//!   one of these is counted in [`FlowStats`].
//!
//!   Defaults ([`FlowConfig::default`], and the CLI's): 4 MiB out of order per direction
//!   (libnids drops at 64 KiB, Zeek worries at 16 KiB; MiBs ride out a long loss burst on
//!   a fast link), 256 MiB memcap (Suricata's reassembly default), 1 000 000 sessions, 300 s
//!   idle (Zeek's 5 minutes). The retransmission check window adds at most
//!   2 × [`crate::tcp::assembler::CHECK_WINDOW`] per session, grown only as data flows.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::listener::{DirStats, SessionState, SessionStats};
pub use crate::wire::{FlowKey, KeyHasher};
use crate::{
    decode::{Segment, TcpFlags},
    listener::{Direction, EndReason, Listener, SessionInfo},
    tcp::{HalfStream, Sink},
    wire::{SeqNum, Timestamp},
};

/// Reassembly bounds: the flow table's own settings (defaults in the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Out-of-order bytes per direction.
    pub max_ooo_bytes: u64,
    /// Bytes buffered across all sessions.
    pub memcap: u64,
    /// Live sessions.
    pub max_sessions: usize,
    /// Idle timeout.
    pub idle_timeout: Duration,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_ooo_bytes: 4 << 20,
            memcap: 256 << 20,
            max_sessions: 1_000_000,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// How long a closed session stays in the table to absorb its last packets (at most the
/// idle timeout).
pub const CLOSED_LINGER: Duration = Duration::from_secs(30);

/// What the table counted over all sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowStats {
    /// Sessions opened.
    pub sessions: u64,
    /// Most sessions live at once.
    pub max_live: u64,
    /// Sessions ended by FIN both ways.
    pub ended_fin: u64,
    /// Sessions ended by RST.
    pub ended_rst: u64,
    /// Sessions ended by the idle timeout.
    pub timed_out: u64,
    /// Sessions evicted to stay within `max_sessions`.
    pub evicted: u64,
    /// Sessions evicted to stay within `memcap`.
    pub evicted_memcap: u64,
    /// Sessions ended because a new SYN reused their 4-tuple.
    pub reused: u64,
    /// Sessions still open at the end of the capture.
    pub open_at_end: u64,
    /// Gaps declared.
    pub gaps: u64,
    /// Bytes in declared gaps.
    pub gap_bytes: u64,
    /// Gaps declared because a direction's out-of-order buffer went over its bound.
    pub ooo_overflows: u64,
    /// Sessions whose buffers were flushed (as gaps) because of the memcap.
    pub memcap_flushes: u64,
    /// Retransmitted bytes.
    pub retransmitted: u64,
    /// Conflicting overlap bytes (first wins).
    pub conflicts: u64,
    /// Bytes dropped after a FIN or RST, or on a RST.
    pub after_close: u64,
    /// Segments delivered to the table.
    pub segments: u64,
}

const NIL: u32 = u32::MAX;

/// One session in the table.
#[derive(Debug)]
struct Session {
    info: SessionInfo,
    half: [HalfStream; 2],
    dirs: [DirStats; 2],
    synack: bool,
    rst: bool,
    /// `session_end` was emitted.
    ended: Option<EndReason>,
    /// Last ACK number sent by each direction (acknowledging the other).
    acked: [Option<SeqNum>; 2],
    last_dir: Option<Direction>,
    last_ts: Timestamp,
    /// Memory accounted to this session in the table's total.
    mem: u64,
    prev: u32,
    next: u32,
}

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

const fn dir_of(i: usize) -> Direction {
    if i == 0 {
        Direction::Orig
    } else {
        Direction::Resp
    }
}

fn well_known(port: u16) -> bool {
    port < 1024 || matches!(port, 3128 | 8000 | 8008 | 8080 | 8443 | 8888)
}

/// Client and server of a session whose first packet is `seg`.
fn orient(seg: &Segment<'_>) -> (SocketAddr, SocketAddr) {
    let (s, d) = (seg.src, seg.dst);
    if seg.flags.has(TcpFlags::SYN) {
        return if seg.flags.has(TcpFlags::ACK) {
            (d, s)
        } else {
            (s, d)
        };
    }
    match (well_known(s.port()), well_known(d.port())) {
        (true, false) => (d, s),
        (false, true) => (s, d),
        (true, true) if s.port() < d.port() => (d, s),
        _ => (s, d),
    }
}

impl Session {
    fn new(info: SessionInfo, max_ooo: u64) -> Self {
        Self {
            info,
            half: [HalfStream::new(max_ooo), HalfStream::new(max_ooo)],
            dirs: [DirStats::default(), DirStats::default()],
            synack: false,
            rst: false,
            ended: None,
            acked: [None, None],
            last_dir: None,
            last_ts: Timestamp(0),
            mem: 0,
            prev: NIL,
            next: NIL,
        }
    }

    fn closed(&self) -> bool {
        self.rst || self.dirs[0].fin || self.dirs[1].fin
    }

    /// Out-of-order bytes buffered, both ways: what the memcap bounds. (The retransmission
    /// check windows, at most 2 × [`crate::tcp::assembler::CHECK_WINDOW`] per session, are
    /// bounded by `max_sessions` instead.)
    fn memory(&self) -> u64 {
        self.half[0].assembler().buffered() + self.half[1].assembler().buffered()
    }

    /// Process one segment. Returns `true` when this closed the session.
    fn segment<L: Listener + ?Sized>(
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
        self.dirs[d].packets += 1;
        self.dirs[d].bytes += wire;
        // Capture time running backwards means the capture itself reordered packets (a
        // shuffled or merged file): an ACK then proves nothing about what is still to
        // come, so it declares no gap.
        let in_time = ts >= self.last_ts;
        self.last_ts = self.last_ts.max(ts);
        if self.ended.is_some() {
            self.dirs[d].after_close += wire;
            return false;
        }
        if f.has(TcpFlags::RST) {
            self.dirs[d].after_close += wire;
            if !self.half[d].rst_plausible(seg.seq) {
                self.dirs[d].rst_ignored += 1;
                return false;
            }
            self.rst = true;
            self.end(EndReason::Rst, ts, l);
            return true;
        }
        if f.has(TcpFlags::SYN) {
            self.dirs[d].syn = true;
            self.half[d].set_isn(seg.seq);
            if f.has(TcpFlags::ACK) {
                self.synack = true;
                self.half[o].set_isn(seg.ack - 1);
            }
        } else if self.half[d].base().is_none() && (wire > 0 || f.has(TcpFlags::FIN)) {
            // Mid-stream: start where the peer said it expects us, if that is not after
            // this segment; else here.
            let start = match self.acked[o] {
                Some(a) if (0..1 << 30).contains(&seg.seq.distance_from(a)) => a,
                _ => seg.seq,
            };
            self.half[d].pick_up_at(start);
        }
        let data_seq = if f.has(TcpFlags::SYN) {
            seg.seq + 1
        } else {
            seg.seq
        };
        if wire > 0 {
            let mut e = emit!(self, l, dir, ts);
            if self.half[d]
                .data(data_seq, seg.payload, seg.payload_len, &mut e)
                .is_err()
            {
                stats.ooo_overflows += 1;
                while self.half[d].assembler().buffered() > max_ooo
                    && self.half[d].skip_hole(&mut e)
                {}
            }
        }
        if f.has(TcpFlags::FIN) {
            self.dirs[d].fin = true;
            self.half[d].fin_at(data_seq + seg.payload_len.max(seg.payload.len() as u32));
        }
        if f.has(TcpFlags::ACK) {
            self.acked[d] = Some(seg.ack);
        }
        if f.has(TcpFlags::ACK) && in_time {
            let mut e = emit!(self, l, odir, ts);
            self.half[o].ack(seg.ack, &mut e);
        }
        if self.half[0].is_done() && self.half[1].is_done() {
            self.end(EndReason::Fin, ts, l);
            return true;
        }
        false
    }

    /// Flush both directions (gaps for what is missing) and emit the end events, once.
    fn end<L: Listener + ?Sized>(&mut self, reason: EndReason, ts: Timestamp, l: &mut L) {
        if self.ended.is_some() {
            return;
        }
        for i in 0..2 {
            let mut e = emit!(self, l, dir_of(i), ts);
            self.half[i].finish(&mut e);
        }
        if let Some(d) = self.last_dir {
            l.monologue_end(&self.info, d, ts);
        }
        l.session_end(&self.info, reason, ts);
        self.ended = Some(reason);
    }

    /// Deliver what is buffered, declaring the holes before it gaps (memory pressure).
    fn flush<L: Listener + ?Sized>(&mut self, ts: Timestamp, l: &mut L) {
        for i in 0..2 {
            let mut e = emit!(self, l, dir_of(i), ts);
            while self.half[i].skip_hole(&mut e) {}
        }
    }

    fn final_stats(&self, state: SessionState) -> SessionStats {
        let mut dirs = self.dirs.clone();
        for (i, d) in dirs.iter_mut().enumerate() {
            d.asm = self.half[i].assembler().stats().clone();
            d.after_close += self.half[i].after_fin;
            d.before_start = self.half[i].before_start;
        }
        let [orig, resp] = dirs;
        SessionStats {
            orig,
            resp,
            handshake: self.dirs[0].syn && self.synack,
            state,
            last: self.last_ts,
        }
    }
}

/// The session table. Feed it segments with [`FlowTable::process`]; call
/// [`FlowTable::finish`] at the end of the capture.
///
/// # Invariant
/// - `map` and the occupied `slots` hold the same sessions; `free` lists the empty slots.
/// - The LRU list (`head` = most recently active … `tail`) links every occupied slot once.
/// - `memory` is the sum of each session's `mem`, which is its buffered bytes as of its
///   last packet.
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    map: HashMap<FlowKey, u32, KeyHasher>,
    slots: Vec<Option<Session>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    /// Closed sessions: (deadline, slot, stream), roughly in deadline order.
    closed: VecDeque<(Timestamp, u32, u64)>,
    next_stream: u64,
    memory: u64,
    stats: FlowStats,
}

impl FlowTable {
    /// An empty table with these bounds.
    pub fn new(cfg: &FlowConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            map: HashMap::with_hasher(KeyHasher::default()),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            closed: VecDeque::new(),
            next_stream: 0,
            memory: 0,
            stats: FlowStats::default(),
        }
    }

    /// What was counted so far.
    pub const fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Sessions in the table (closed ones lingering included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes buffered across all sessions.
    pub const fn memory(&self) -> u64 {
        self.memory
    }

    fn session(&mut self, i: u32) -> &mut Session {
        self.slots[i as usize].as_mut().expect("occupied slot")
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = {
            let s = self.session(i);
            (s.prev, s.next)
        };
        if p == NIL {
            self.head = n;
        } else {
            self.session(p).next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.session(n).prev = p;
        }
    }

    fn push_front(&mut self, i: u32) {
        let h = self.head;
        {
            let s = self.session(i);
            s.prev = NIL;
            s.next = h;
        }
        if h == NIL {
            self.tail = i;
        } else {
            self.session(h).prev = i;
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// Process one segment: sessions that timed out before it end first.
    pub fn process<L: Listener + ?Sized>(&mut self, seg: &Segment<'_>, l: &mut L) {
        self.stats.segments += 1;
        self.expire(seg.ts, l);
        let key = FlowKey::new(seg.src, seg.dst);
        let syn_only = seg.flags.has(TcpFlags::SYN) && !seg.flags.has(TcpFlags::ACK);
        let i = match self.map.get(&key).copied() {
            Some(i) => {
                let s = self.session(i);
                let d = usize::from(seg.src != s.info.client);
                if syn_only && s.closed() && s.half[d].isn() != Some(seg.seq) {
                    self.stats.reused += 1;
                    self.remove(i, EndReason::Reused, seg.ts, l);
                    self.create(key, seg, l)
                } else {
                    i
                }
            }
            None => self.create(key, seg, l),
        };
        self.touch(i);
        let max_ooo = self.cfg.max_ooo_bytes;
        let linger = Timestamp(CLOSED_LINGER.min(self.cfg.idle_timeout).as_nanos() as u64);
        let s = self.slots[i as usize].as_mut().expect("occupied slot");
        if s.segment(seg, max_ooo, &mut self.stats, l) {
            self.closed
                .push_back((Timestamp(seg.ts.0 + linger.0), i, s.info.stream));
        }
        let mem = s.memory();
        self.memory = self.memory - s.mem + mem;
        s.mem = mem;
        if self.memory > self.cfg.memcap {
            self.relieve(i, seg.ts, l);
        }
    }

    /// Over the memcap: flush session `i`, then evict the least recently active others.
    fn relieve<L: Listener + ?Sized>(&mut self, i: u32, ts: Timestamp, l: &mut L) {
        self.stats.memcap_flushes += 1;
        let s = self.session(i);
        s.flush(ts, l);
        let mem = s.memory();
        let old = std::mem::replace(&mut s.mem, mem);
        self.memory = self.memory - old + mem;
        while self.memory > self.cfg.memcap && self.tail != i && self.tail != NIL {
            self.stats.evicted_memcap += 1;
            self.remove(self.tail, EndReason::Evicted, ts, l);
        }
    }

    fn create<L: Listener + ?Sized>(&mut self, key: FlowKey, seg: &Segment<'_>, l: &mut L) -> u32 {
        if self.map.len() >= self.cfg.max_sessions && self.tail != NIL {
            self.stats.evicted += 1;
            self.remove(self.tail, EndReason::Evicted, seg.ts, l);
        }
        let (client, server) = orient(seg);
        let info = SessionInfo {
            stream: self.next_stream,
            client,
            server,
            start: seg.ts,
            midstream: !seg.flags.has(TcpFlags::SYN),
        };
        self.next_stream += 1;
        self.stats.sessions += 1;
        l.session_start(&info, seg.ts);
        let mut s = Session::new(info, self.cfg.max_ooo_bytes);
        s.last_ts = seg.ts;
        let i = if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(s);
            i
        } else {
            self.slots.push(Some(s));
            (self.slots.len() - 1) as u32
        };
        self.map.insert(key, i);
        self.push_front(i);
        self.stats.max_live = self.stats.max_live.max(self.map.len() as u64);
        i
    }

    /// End session `i` (if it has not ended) and take it out of the table.
    fn remove<L: Listener + ?Sized>(
        &mut self,
        i: u32,
        reason: EndReason,
        ts: Timestamp,
        l: &mut L,
    ) {
        self.unlink(i);
        let mut s = self.slots[i as usize].take().expect("occupied slot");
        self.free.push(i);
        self.map.remove(&FlowKey::new(s.info.client, s.info.server));
        self.memory -= s.mem;
        let state = match s.ended {
            Some(EndReason::Fin) => SessionState::Fin,
            Some(EndReason::Rst) => SessionState::Rst,
            _ => match reason {
                EndReason::Timeout => SessionState::Timeout,
                EndReason::Evicted => SessionState::Evicted,
                _ => SessionState::Open,
            },
        };
        match s.ended {
            Some(EndReason::Fin) => self.stats.ended_fin += 1,
            Some(EndReason::Rst) => self.stats.ended_rst += 1,
            _ => match reason {
                EndReason::Timeout => self.stats.timed_out += 1,
                EndReason::EndOfCapture => self.stats.open_at_end += 1,
                _ => {}
            },
        }
        s.end(reason, ts, l);
        let st = s.final_stats(state);
        for d in [&st.orig, &st.resp] {
            self.stats.gaps += d.asm.gaps;
            self.stats.gap_bytes += d.asm.gap_bytes;
            self.stats.retransmitted += d.asm.retransmitted;
            self.stats.conflicts += d.asm.conflicts;
            self.stats.after_close += d.after_close;
        }
        l.session_stats(&s.info, &st);
    }

    /// End sessions idle since before `now - idle_timeout`, and closed sessions whose
    /// linger is over.
    pub fn expire<L: Listener + ?Sized>(&mut self, now: Timestamp, l: &mut L) {
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        while self.tail != NIL {
            let t = self.tail;
            let last = self.session(t).last_ts;
            if last.0.saturating_add(idle) >= now.0 {
                break;
            }
            self.remove(t, EndReason::Timeout, now, l);
        }
        while let Some(&(deadline, i, stream)) = self.closed.front() {
            if deadline >= now {
                break;
            }
            self.closed.pop_front();
            let linger = CLOSED_LINGER.min(self.cfg.idle_timeout).as_nanos() as u64;
            let Some(s) = self.slots[i as usize].as_ref() else {
                continue;
            };
            if s.info.stream != stream {
                continue;
            }
            let due = Timestamp(s.last_ts.0 + linger);
            if due >= now {
                self.closed.push_back((due, i, stream));
            } else {
                let reason = s.ended.unwrap_or(EndReason::Timeout);
                self.remove(i, reason, now, l);
            }
        }
    }

    /// End of capture: end every session still in the table, flushing gaps. In order of
    /// stream index.
    pub fn finish<L: Listener + ?Sized>(&mut self, now: Timestamp, l: &mut L) {
        let mut live: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.info.stream, i as u32)))
            .collect();
        live.sort_unstable();
        for (_, i) in live {
            let ts = now.max(self.session(i).last_ts);
            self.remove(i, EndReason::EndOfCapture, ts, l);
        }
        self.closed.clear();
    }
}

#[cfg(test)]
mod tests;
