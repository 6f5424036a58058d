//! The event API: the Rust heir of Perl's Net::Analysis listeners.
//!
//! Implement [`Listener`] and hand it to [`crate::pipeline`]. Every callback has a
//! default that does nothing, so a listener implements only what it needs.
//!
//! Counting the bytes of every session (the whole program is `examples/count_bytes.rs`):
//!
//! ```no_run
//! use std::collections::HashMap;
//! use sniffer::{Direction, EndReason, Listener, SessionInfo, Timestamp};
//! use sniffer::{capture, flow, pipeline};
//!
//! #[derive(Default)]
//! struct Counter(HashMap<u64, [u64; 2]>);
//!
//! impl Listener for Counter {
//!     fn data(&mut self, s: &SessionInfo, dir: Direction, _: u64, data: &[u8], _: Timestamp) {
//!         self.0.entry(s.stream).or_default()[dir.index()] += data.len() as u64;
//!     }
//!     fn session_end(&mut self, s: &SessionInfo, why: EndReason, _: Timestamp) {
//!         let [up, down] = self.0.remove(&s.stream).unwrap_or_default();
//!         println!("{} {} > {}: {up} up, {down} down ({why})", s.stream, s.client, s.server);
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut source = capture::open(&capture::Input::Files(vec!["dump.pcap".into()]))?;
//! let stats = pipeline::run(source.as_mut(), &flow::FlowConfig::default(), &mut Counter::default())?;
//! eprintln!("{} sessions, {} bytes missing", stats.flow.sessions, stats.flow.gap_bytes);
//! # Ok(())
//! # }
//! ```
//!
//! Events of one session come in this order: `session_start`; `data` and `gap` per
//! direction in offset order, with `monologue_end` whenever the talking side changes and
//! once more before the end; `session_end`; then `session_stats` when the session leaves
//! the table (a closed session lingers briefly to absorb its last ACKs).

use std::{fmt, net::SocketAddr};

use crate::tcp::AssemblerStats;
pub use crate::wire::{Direction, Timestamp};

/// Who talks in a session, fixed when the session starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Stream index, numbered as Wireshark's `tcp.stream`: in order of first packet, from 0.
    pub stream: u64,
    /// The client (sender of the SYN, or the side not on a well-known port).
    pub client: SocketAddr,
    /// The server.
    pub server: SocketAddr,
    /// First packet's time.
    pub start: Timestamp,
    /// The session was first seen without its SYN (picked up mid-stream).
    pub midstream: bool,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Both sides sent FIN.
    Fin,
    /// A RST was seen.
    Rst,
    /// Idle for longer than the idle timeout.
    Timeout,
    /// Evicted to stay within the session or memory bounds.
    Evicted,
    /// The 4-tuple was reused by a new SYN (new ISN) after this session closed.
    Reused,
    /// The capture ended (end of file, or Ctrl-C) with the session still open.
    EndOfCapture,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fin => "fin",
            Self::Rst => "rst",
            Self::Timeout => "timeout",
            Self::Evicted => "evicted",
            Self::Reused => "reused",
            Self::EndOfCapture => "end_of_capture",
        })
    }
}

/// Receives the events of reassembled TCP sessions, in capture order.
///
/// For each session: one `session_start`, then `data` and `gap` calls per direction in
/// stream order, `monologue_end` whenever the talking side changes, and one `session_end`.
pub trait Listener {
    /// A new session was seen.
    fn session_start(&mut self, _session: &SessionInfo, _ts: Timestamp) {}

    /// Contiguous bytes of one direction, starting at stream `offset` (0 = first byte
    /// after the SYN, or the first byte seen for a mid-stream pickup).
    fn data(
        &mut self,
        _session: &SessionInfo,
        _dir: Direction,
        _offset: u64,
        _bytes: &[u8],
        _ts: Timestamp,
    ) {
    }

    /// `len` bytes at `offset` of one direction will never arrive.
    fn gap(
        &mut self,
        _session: &SessionInfo,
        _dir: Direction,
        _offset: u64,
        _len: u64,
        _ts: Timestamp,
    ) {
    }

    /// `dir` stopped talking: the next data is from the other side (or the session ends).
    fn monologue_end(&mut self, _session: &SessionInfo, _dir: Direction, _ts: Timestamp) {}

    /// The session is over; no more events for it.
    fn session_end(&mut self, _session: &SessionInfo, _reason: EndReason, _ts: Timestamp) {}

    /// A retransmission carried `len` bytes, the first at `offset`, that differ from the
    /// bytes already delivered or buffered there. The first bytes won (they are the ones
    /// delivered); this only reports the disagreement.
    fn overlap_conflict(
        &mut self,
        _session: &SessionInfo,
        _dir: Direction,
        _offset: u64,
        _len: u64,
        _ts: Timestamp,
    ) {
    }

    /// The session left the table: its final counters. Called once per session, after
    /// `session_end` (a closed session lingers a while so its last ACKs count in it).
    fn session_stats(&mut self, _session: &SessionInfo, _stats: &SessionStats) {}

    /// Checked after every packet: `true` stops the capture early (the pipeline then ends
    /// every open session as at the end of the capture). For `--once`-style consumers.
    fn should_stop(&self) -> bool {
        false
    }

    /// Bytes this listener holds for the sessions it follows (parser state, bodies being
    /// gathered or written), which ending those sessions would free.
    ///
    /// The flow table adds it to its own memory when it checks the memcap, after every
    /// packet: keep a running count and return it, in O(1). Memory that ending sessions
    /// cannot free (output buffers, totals) does not belong here: evicting sessions to make
    /// room for it would only empty the table.
    fn memory_in_use(&self) -> u64 {
        0
    }
}

/// How a session ended up, for `flows`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Still open when it left the table (end of capture, or evicted while open).
    Open,
    /// Closed by FIN both ways.
    Fin,
    /// Closed by RST.
    Rst,
    /// Ended by the idle timeout.
    Timeout,
    /// Evicted to stay within the bounds.
    Evicted,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Fin => "fin",
            Self::Rst => "rst",
            Self::Timeout => "timeout",
            Self::Evicted => "evicted",
        })
    }
}

/// One direction's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirStats {
    /// Packets sent this way.
    pub packets: u64,
    /// Payload bytes sent this way, as on the wire (retransmissions included).
    pub bytes: u64,
    /// Reassembly counters (delivered, gaps, retransmitted, conflicts, ...).
    #[serde(flatten)]
    pub asm: AssemblerStats,
    /// Payload bytes after the FIN, on a RST, or after the session closed: dropped.
    pub after_close: u64,
    /// Payload bytes before the stream's start: dropped.
    pub before_start: u64,
    /// SYN seen from this side.
    pub syn: bool,
    /// FIN seen from this side.
    pub fin: bool,
    /// RSTs ignored: sequence number far outside the stream (blind injection).
    pub rst_ignored: u64,
}

/// A session's final counters, handed to [`Listener::session_stats`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SessionStats {
    /// Client → server.
    pub orig: DirStats,
    /// Server → client.
    pub resp: DirStats,
    /// SYN and SYN-ACK were both seen.
    pub handshake: bool,
    /// How it ended.
    pub state: SessionState,
    /// Time of the last packet.
    #[serde(skip)]
    pub last: Timestamp,
}

impl SessionStats {
    /// One direction's counters.
    pub const fn dir(&self, dir: Direction) -> &DirStats {
        match dir {
            Direction::Orig => &self.orig,
            Direction::Resp => &self.resp,
        }
    }
}

/// Two listeners fed the same events, `first` before `second` for each one: e.g. the HTTP
/// analyzer and a listener that reports every session as it leaves the table. Stops when
/// either asks to.
#[derive(Debug, Default)]
pub struct Tee<A, B> {
    /// Gets every event first.
    pub first: A,
    /// Gets every event second.
    pub second: B,
}

impl<A, B> Tee<A, B> {
    /// Feed both.
    pub const fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: Listener, B: Listener> Listener for Tee<A, B> {
    fn session_start(&mut self, s: &SessionInfo, ts: Timestamp) {
        self.first.session_start(s, ts);
        self.second.session_start(s, ts);
    }

    fn data(&mut self, s: &SessionInfo, dir: Direction, offset: u64, bytes: &[u8], ts: Timestamp) {
        self.first.data(s, dir, offset, bytes, ts);
        self.second.data(s, dir, offset, bytes, ts);
    }

    fn gap(&mut self, s: &SessionInfo, dir: Direction, offset: u64, len: u64, ts: Timestamp) {
        self.first.gap(s, dir, offset, len, ts);
        self.second.gap(s, dir, offset, len, ts);
    }

    fn monologue_end(&mut self, s: &SessionInfo, dir: Direction, ts: Timestamp) {
        self.first.monologue_end(s, dir, ts);
        self.second.monologue_end(s, dir, ts);
    }

    fn session_end(&mut self, s: &SessionInfo, reason: EndReason, ts: Timestamp) {
        self.first.session_end(s, reason, ts);
        self.second.session_end(s, reason, ts);
    }

    fn overlap_conflict(
        &mut self,
        s: &SessionInfo,
        dir: Direction,
        offset: u64,
        len: u64,
        ts: Timestamp,
    ) {
        self.first.overlap_conflict(s, dir, offset, len, ts);
        self.second.overlap_conflict(s, dir, offset, len, ts);
    }

    fn session_stats(&mut self, s: &SessionInfo, stats: &SessionStats) {
        self.first.session_stats(s, stats);
        self.second.session_stats(s, stats);
    }

    fn should_stop(&self) -> bool {
        self.first.should_stop() || self.second.should_stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes down every event it gets, by name.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Listener for Log {
        fn session_start(&mut self, s: &SessionInfo, _: Timestamp) {
            self.0.push(format!("start {}", s.stream));
        }
        fn data(&mut self, _: &SessionInfo, d: Direction, o: u64, b: &[u8], _: Timestamp) {
            self.0.push(format!("data {d} {o} {}", b.len()));
        }
        fn gap(&mut self, _: &SessionInfo, d: Direction, o: u64, n: u64, _: Timestamp) {
            self.0.push(format!("gap {d} {o} {n}"));
        }
        fn monologue_end(&mut self, _: &SessionInfo, d: Direction, _: Timestamp) {
            self.0.push(format!("monologue {d}"));
        }
        fn session_end(&mut self, _: &SessionInfo, r: EndReason, _: Timestamp) {
            self.0.push(format!("end {r}"));
        }
        fn overlap_conflict(
            &mut self,
            _: &SessionInfo,
            d: Direction,
            o: u64,
            n: u64,
            _: Timestamp,
        ) {
            self.0.push(format!("conflict {d} {o} {n}"));
        }
        fn session_stats(&mut self, _: &SessionInfo, st: &SessionStats) {
            self.0.push(format!("stats {}", st.state));
        }
        fn should_stop(&self) -> bool {
            self.0.len() >= 8
        }
    }

    #[test]
    fn issue15_a_tee_hands_every_event_to_both_in_order() {
        let s = SessionInfo {
            stream: 4,
            client: "10.0.0.1:5000".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            start: Timestamp(1),
            midstream: false,
        };
        let t = Timestamp(2);
        let mut tee = Tee::new(Log::default(), Log::default());
        tee.session_start(&s, t);
        tee.data(&s, Direction::Orig, 0, b"GET", t);
        tee.gap(&s, Direction::Resp, 10, 5, t);
        tee.monologue_end(&s, Direction::Orig, t);
        tee.overlap_conflict(&s, Direction::Resp, 3, 2, t);
        tee.session_end(&s, EndReason::Fin, t);
        assert!(!tee.should_stop());
        tee.session_stats(
            &s,
            &SessionStats {
                orig: DirStats::default(),
                resp: DirStats::default(),
                handshake: true,
                state: SessionState::Fin,
                last: t,
            },
        );
        let want = [
            "start 4",
            "data orig 0 3",
            "gap resp 10 5",
            "monologue orig",
            "conflict resp 3 2",
            "end fin",
            "stats fin",
        ];
        assert_eq!(tee.first.0, want);
        assert_eq!(tee.second.0, want);
        tee.second.0.push("one more".into());
        assert!(tee.should_stop(), "the second one asks to stop");
    }
}
