//! What the user sees: flow tables, followed streams, JSON lines.

pub mod flows;
pub mod follow;
pub mod jsonl;
pub mod stats;
