//! sniffer: see, and keep, what crossed the wire.
//!
//! One packet's path, each step in the module named after it:
//!
//! ```text
//! capture (live ring buffer | pcap/pcapng file) ─> Frame
//!   └─ decode (link layer → IP → TCP, defrag)   ─> Segment
//!       └─ flow (4-tuple → Session: reuse, orientation, eviction)
//!           └─ tcp (sequence numbers, reassembly, gaps)
//!               └─ listener events: session start · data · gap · monologue end · session end
//!                   ├─ http (transactions) ─> extract (files + index.jsonl)
//!                   └─ output (flows table, follow stream, JSON lines)
//! ```
//!
//! [`pipeline`] drives a [`capture::PacketSource`] through that chain into a
//! [`listener::Listener`]; live and offline input share everything below the source.

pub mod app;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod extract;
pub mod flow;
pub mod http;
pub mod listener;
pub mod output;
pub mod pipeline;
pub mod tcp;

pub use capture::{Frame, LinkType, PacketSource, Timestamp};
pub use decode::Segment;
pub use listener::{Direction, EndReason, Listener, SessionInfo};
