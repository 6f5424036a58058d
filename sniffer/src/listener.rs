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
//! use sniffer::{capture, config, pipeline};
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
//! let mut source = capture::open(&config::Input::Files(vec!["dump.pcap".into()]))?;
//! let stats = pipeline::run(source.as_mut(), &config::FlowConfig::default(), &mut Counter::default())?;
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

use crate::capture::Timestamp;

/// Which way bytes flow in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the client (originator) to the server: ctos.
    Orig,
    /// From the server (responder) to the client: stoc.
    Resp,
}

impl Direction {
    /// The other direction.
    pub const fn reverse(self) -> Self {
        match self {
            Self::Orig => Self::Resp,
            Self::Resp => Self::Orig,
        }
    }
    /// 0 for `Orig`, 1 for `Resp`: an index into per-direction arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Orig => "orig",
            Self::Resp => "resp",
        })
    }
}

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
    fn session_stats(&mut self, _session: &SessionInfo, _stats: &crate::flow::SessionStats) {}

    /// Checked after every packet: `true` stops the capture early (the pipeline then ends
    /// every open session as at the end of the capture). For `--once`-style consumers.
    fn should_stop(&self) -> bool {
        false
    }
}
