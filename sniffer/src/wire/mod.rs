//! The ground floor: the words every layer uses to speak of what crossed the wire.
//!
//! - [`Timestamp`]: when a packet was captured;
//! - [`Direction`]: which way bytes flow in a session;
//! - [`FlowKey`]: between whom, the 4-tuple the same both ways (and [`KeyHasher`] for the
//!   tables keyed by it);
//! - [`SeqNum`]: which byte, a TCP sequence number with wraparound;
//! - [`community_id`]: the flow's name other tools share (Community ID v1).
//!
//! This module imports nothing of the crate; every other layer may import from it.

mod community_id;
mod direction;
mod endpoints;
mod seq;
mod time;

pub use community_id::community_id;
pub use direction::Direction;
pub use endpoints::{FlowKey, KeyHasher};
pub use seq::SeqNum;
pub use time::Timestamp;
