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
//!   `max_ooo_bytes` declares its first hole a gap; a session idle for `idle_timeout` ends
//!   with "timeout". `memcap` bounds all the memory sessions hold: the table's entries,
//!   reassembly state and buffered bytes, plus what the listener holds for them
//!   ([`Listener::memory_in_use`]: HTTP parser state, bodies being written).
//!   Beyond `max_sessions` sessions, or over the memcap, sessions are evicted in this
//!   order, the least recently active first within each kind: sessions already closed
//!   (lingering for their last packets), then sessions never answered (one side sent
//!   nothing but SYNs: a SYN flood, Zeek's connection attempts), then (memcap only) the
//!   session that pushed over the cap flushes its buffers as gaps, then established
//!   sessions. So a flood of SYNs displaces itself, not the downloads around it, as
//!   Suricata's emergency mode prunes new flows first. Every one of these is counted in
//!   [`FlowStats`].
//!
//!   A session costs [`SESSION_ENTRY_BYTES`] until it carries data (no reassembly state
//!   is allocated before that, and the HTTP analyzer allocates nothing before data
//!   either); then [`SESSION_STREAMS_BYTES`] more, plus what it buffers.
//!
//!   Defaults ([`FlowConfig::default`], and the CLI's): 4 MiB out of order per direction
//!   (libnids drops at 64 KiB, Zeek worries at 16 KiB; MiBs ride out a long loss burst on
//!   a fast link), 256 MiB memcap (Suricata's reassembly default, here for everything a
//!   session holds), 1 000 000 sessions, 300 s idle (Zeek's 5 minutes).

mod session;

use std::hash::BuildHasher as _;
use std::net::SocketAddr;
use std::time::Duration;

use hashbrown::HashTable;

pub use crate::listener::{DirStats, SessionState, SessionStats};
pub use crate::wire::{FlowKey, KeyHasher};
use crate::{
    decode::{Segment, TcpFlags},
    listener::{EndReason, Listener, SessionInfo},
    wire::Timestamp,
};
use session::{Class, NIL, Session};
pub use session::{SESSION_ENTRY_BYTES, SESSION_STREAMS_BYTES};

/// Reassembly bounds: the flow table's own settings (defaults in the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Out-of-order bytes per direction.
    pub max_ooo_bytes: u64,
    /// Memory held for all sessions: the table's and the listener's.
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
    /// Of the sessions evicted (for either bound), those never answered.
    pub evicted_unanswered: u64,
    /// Of the sessions evicted (for either bound), those already closed by FIN or RST and
    /// lingering for their last packets (they are also counted as closed).
    pub evicted_closed: u64,
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
    /// Most memory held at once, as the memcap counts it (the table's and the listener's).
    pub max_memory_bytes: u64,
    /// Retransmitted bytes.
    pub retransmitted: u64,
    /// Conflicting overlap bytes (first wins).
    pub conflicts: u64,
    /// Bytes dropped after a FIN or RST, or on a RST.
    pub after_close: u64,
    /// Segments delivered to the table.
    pub segments: u64,
}

/// Which bound an eviction keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Sessions,
    Memory,
}

/// One eviction list: `head` is the most recently active session, `tail` the least.
#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
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

fn well_known(port: u16) -> bool {
    port < 1024 || matches!(port, 3128 | 8000 | 8008 | 8080 | 8443 | 8888)
}

/// The session table. Feed it segments with [`FlowTable::process`]; call
/// [`FlowTable::finish`] at the end of the capture.
///
/// # Invariant
/// - `index` holds the slot of every occupied slot of `slots`, once, under the hash of
///   its 4-tuple; `free` lists the empty slots.
/// - Each occupied slot is linked into exactly one of `lists`, the one of its `class`,
///   each list ordered from most (`head`) to least (`tail`) recently active.
/// - `memory` is the sum of [`Session::memory`] over the occupied slots.
/// - `due` is at most the deadline of every list's tail (see [`Self::deadline`]): until
///   then nothing can expire.
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    /// The idle timeout and the linger of closed sessions, in ns.
    idle: u64,
    linger: u64,
    due: u64,
    hasher: KeyHasher,
    index: HashTable<u32>,
    slots: Vec<Option<Session>>,
    free: Vec<u32>,
    /// By [`Class`].
    lists: [List; 3],
    next_stream: u64,
    memory: u64,
    stats: FlowStats,
}

impl FlowTable {
    /// An empty table with these bounds.
    pub fn new(cfg: &FlowConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            idle: cfg.idle_timeout.as_nanos() as u64,
            linger: CLOSED_LINGER.min(cfg.idle_timeout).as_nanos() as u64,
            due: u64::MAX,
            hasher: KeyHasher::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 3],
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
        self.index.len()
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Memory the table holds for its sessions: entries, reassembly state, buffered bytes
    /// (the listener's share is not included).
    pub const fn memory(&self) -> u64 {
        self.memory
    }

    fn session(&mut self, i: u32) -> &mut Session {
        self.slots[i as usize].as_mut().expect("occupied slot")
    }

    fn hash(&self, a: SocketAddr, b: SocketAddr) -> u64 {
        self.hasher.hash_one(FlowKey::new(a, b))
    }

    /// When session `i`, last active at its `last_ts`, expires in its list.
    fn deadline(&self, i: u32) -> u64 {
        let s = self.slots[i as usize].as_ref().expect("occupied slot");
        let wait = if s.class == Class::Closed {
            self.linger
        } else {
            self.idle
        };
        s.last_ts.0.saturating_add(wait)
    }

    fn unlink(&mut self, i: u32) {
        let (p, n, c) = {
            let s = self.session(i);
            (s.prev, s.next, s.class as usize)
        };
        if p == NIL {
            self.lists[c].head = n;
        } else {
            self.session(p).next = n;
        }
        if n == NIL {
            self.lists[c].tail = p;
            if p != NIL {
                self.due = self.due.min(self.deadline(p));
            }
        } else {
            self.session(n).prev = p;
        }
    }

    fn push_front(&mut self, i: u32, class: Class) {
        let c = class as usize;
        let h = self.lists[c].head;
        {
            let s = self.session(i);
            s.prev = NIL;
            s.next = h;
            s.class = class;
        }
        if h == NIL {
            self.lists[c].tail = i;
            self.due = self.due.min(self.deadline(i));
        } else {
            self.session(h).prev = i;
        }
        self.lists[c].head = i;
    }

    /// Session `i` was active: to the front of the list of its (maybe new) class.
    fn touch(&mut self, i: u32, class: Class) {
        let s = self.session(i);
        if s.class != class || self.lists[class as usize].head != i {
            self.unlink(i);
            self.push_front(i, class);
        }
    }

    /// Process one segment: sessions that timed out before it end first.
    pub fn process<L: Listener + ?Sized>(&mut self, seg: &Segment<'_>, l: &mut L) {
        self.stats.segments += 1;
        self.expire(seg.ts, l);
        let hash = self.hash(seg.src, seg.dst);
        let syn_only = seg.flags.has(TcpFlags::SYN) && !seg.flags.has(TcpFlags::ACK);
        let slots = &self.slots;
        let found = self
            .index
            .find(hash, |&j| {
                slots[j as usize]
                    .as_ref()
                    .is_some_and(|s| s.is_between(seg.src, seg.dst))
            })
            .copied();
        let i = match found {
            Some(i) => {
                let s = self.session(i);
                let d = usize::from(seg.src != s.info.client);
                if syn_only && s.closed() && s.isn(d) != Some(seg.seq) {
                    self.stats.reused += 1;
                    self.remove(i, EndReason::Reused, seg.ts, l);
                    self.create(hash, seg, l)
                } else {
                    i
                }
            }
            None => self.create(hash, seg, l),
        };
        let max_ooo = self.cfg.max_ooo_bytes;
        let s = self.slots[i as usize].as_mut().expect("occupied slot");
        s.segment(seg, max_ooo, &mut self.stats, l);
        let (before, after) = s.recount();
        let class = s.class();
        self.memory = self.memory - before + after;
        self.touch(i, class);
        self.check_memory(i, seg.ts, l);
    }

    /// Over the memcap, give sessions up in the order of the module docs; session `i`,
    /// the one that pushed over, stays.
    fn check_memory<L: Listener + ?Sized>(&mut self, i: u32, ts: Timestamp, l: &mut L) {
        let mut total = self.memory + l.memory_in_use();
        self.stats.max_memory_bytes = self.stats.max_memory_bytes.max(total);
        let mut flushed = false;
        while total > self.cfg.memcap {
            if let Some(v) = self.victim(i, &[Class::Closed, Class::Attempt]) {
                self.evict(v, Bound::Memory, ts, l);
            } else if !flushed {
                flushed = true;
                let s = self.session(i);
                if s.buffered() > 0 {
                    s.flush(ts, l);
                    let (before, after) = s.recount();
                    self.memory = self.memory - before + after;
                    self.stats.memcap_flushes += 1;
                }
            } else if let Some(v) = self.victim(i, &[Class::Live]) {
                self.evict(v, Bound::Memory, ts, l);
            } else {
                break;
            }
            total = self.memory + l.memory_in_use();
        }
    }

    /// The least recently active session of the first of `classes` that has one, other
    /// than `keep`. (`keep` was just moved to the front of its list: if it is a tail, it is
    /// alone there.)
    fn victim(&self, keep: u32, classes: &[Class]) -> Option<u32> {
        classes
            .iter()
            .map(|&c| self.lists[c as usize].tail)
            .find(|&t| t != NIL && t != keep)
    }

    fn evict<L: Listener + ?Sized>(&mut self, v: u32, bound: Bound, ts: Timestamp, l: &mut L) {
        match bound {
            Bound::Sessions => self.stats.evicted += 1,
            Bound::Memory => self.stats.evicted_memcap += 1,
        }
        match self.session(v).class {
            Class::Closed => self.stats.evicted_closed += 1,
            Class::Attempt => self.stats.evicted_unanswered += 1,
            Class::Live => {}
        }
        self.remove(v, EndReason::Evicted, ts, l);
    }

    fn create<L: Listener + ?Sized>(&mut self, hash: u64, seg: &Segment<'_>, l: &mut L) -> u32 {
        if self.index.len() >= self.cfg.max_sessions
            && let Some(v) = self.victim(NIL, &Class::ALL)
        {
            self.evict(v, Bound::Sessions, seg.ts, l);
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
        let s = Session::new(info, seg.ts);
        self.memory += s.memory();
        let i = if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(s);
            i
        } else {
            self.slots.push(Some(s));
            (self.slots.len() - 1) as u32
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            let s = slots[j as usize].as_ref().expect("indexed slot");
            hasher.hash_one(FlowKey::new(s.info.client, s.info.server))
        });
        self.push_front(i, Class::Attempt);
        self.stats.max_live = self.stats.max_live.max(self.index.len() as u64);
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
        let hash = self.hash(s.info.client, s.info.server);
        self.index
            .find_entry(hash, |&j| j == i)
            .expect("indexed slot")
            .remove();
        self.memory -= s.memory();
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
    /// linger is over, those that expired first first. O(1) while nothing is due.
    pub fn expire<L: Listener + ?Sized>(&mut self, now: Timestamp, l: &mut L) {
        if self.due >= now.0 {
            return;
        }
        loop {
            // The earliest deadline among the lists' tails.
            let mut first: Option<(u64, u32)> = None;
            for class in Class::ALL {
                let t = self.lists[class as usize].tail;
                if t != NIL {
                    let at = self.deadline(t);
                    if first.is_none_or(|(d, _)| at < d) {
                        first = Some((at, t));
                    }
                }
            }
            match first {
                Some((at, t)) if at < now.0 => {
                    let reason = self.session(t).ended.unwrap_or(EndReason::Timeout);
                    self.remove(t, reason, now, l);
                }
                _ => {
                    self.due = first.map_or(u64::MAX, |(at, _)| at);
                    break;
                }
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
    }
}

#[cfg(test)]
mod tests;
