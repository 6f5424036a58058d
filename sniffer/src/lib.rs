//! sniffer: see, and keep, what crossed the wire.
//!
//! One packet's path, each step in the module named after it:
//!
//! ```text
//! capture (live ring buffer | pcap/pcapng file) ─> Frame
//!   └─ filter (pcap-filter expression, `tcp and (EXPR)`; live: mostly in the kernel)
//!   └─ decode (link layer → IP → TCP, defrag)   ─> Segment
//!       └─ flow (4-tuple → Session: reuse, orientation, eviction)
//!           └─ tcp (sequence numbers, reassembly, gaps)
//!               └─ listener events: session start · data · gap · monologue end · session end
//!                   ├─ http (transactions) ─> extract (files + index.jsonl)
//!                   └─ output (flows table, follow stream, JSON lines)
//!                       └─ events (Redis Streams, rotated JSON-lines files)
//! ```
//!
//! [`pipeline`] drives a [`capture::PacketSource`] through that chain into a
//! [`listener::Listener`]; live and offline input share everything below the source.
//!
//! # Layers
//!
//! The modules below are declared lowest layer first. A module imports only from the
//! layers declared before it (`cargo xtask layers` checks this), so imports run one way,
//! down: the ground floor [`wire`] imports nothing of the crate, and nothing imports
//! [`output`]. Each layer's settings are defined beside it ([`capture::LiveOptions`],
//! [`flow::FlowConfig`], [`http::Limits`], [`extract::ExtractConfig`]). The command line
//! is the binary's (`src/main.rs` and `src/app/`), not the library's.

// Ground floor: Timestamp, Direction, FlowKey, SeqNum.
pub mod wire;

// The JSON vocabulary: every record written as a JSON line.
pub mod records;

// Frames from a live device or from capture files.
pub mod capture;

// pcap-filter expressions on raw frames; their compilation for the kernel program.
pub mod filter;

// Frames to TCP segments.
pub mod decode;

// Reassembly of one direction, in offsets and sequence numbers.
pub mod tcp;

// The event API: Listener, SessionInfo, the per-session counters it hands out.
pub mod listener;

// The session table: segments in, listener events out.
pub mod flow;

// Source → decode → flow table → listener.
pub mod pipeline;

// HTTP/1.x transactions, a Listener.
pub mod http;

// Saving bodies as files, an HttpListener.
pub mod extract;

// What the user sees: flow tables, followed streams, JSON lines.
pub mod output;

// Every record also to Redis Streams and rotated files, never blocking the packet path.
pub mod events;

// Old paths, kept working for code written before the settings moved beside their layers.
pub mod config;

pub use capture::{Frame, LinkType, PacketSource};
pub use decode::Segment;
pub use listener::{EndReason, Listener, SessionInfo};
pub use wire::{Direction, Timestamp};
