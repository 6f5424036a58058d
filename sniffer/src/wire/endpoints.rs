//! Between whom: the 4-tuple of a session, the same whichever way a packet goes.

use std::net::SocketAddr;

/// A TCP 4-tuple with its endpoints in canonical order, so both directions of a session
/// map to the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    lo: SocketAddr,
    hi: SocketAddr,
}

impl FlowKey {
    /// The key of a packet from `a` to `b` (or from `b` to `a`).
    pub fn new(a: SocketAddr, b: SocketAddr) -> Self {
        if a <= b {
            Self { lo: a, hi: b }
        } else {
            Self { lo: b, hi: a }
        }
    }

    /// The two endpoints, in canonical order.
    pub const fn endpoints(&self) -> (SocketAddr, SocketAddr) {
        (self.lo, self.hi)
    }

    /// The flow's Community ID v1 with `seed` ([`super::community_id`]).
    pub fn community_id(&self, seed: u16) -> String {
        super::community_id(seed, self.lo, self.hi)
    }
}

/// The hasher for session tables: foldhash seeded at random per table, so crafted
/// 4-tuples cannot be made to collide on purpose.
pub type KeyHasher = foldhash::fast::RandomState;

#[cfg(test)]
mod tests {
    use super::FlowKey;

    #[test]
    fn both_directions_share_a_key() {
        let a = "10.0.0.1:5000".parse().unwrap();
        let b = "10.0.0.2:80".parse().unwrap();
        assert_eq!(FlowKey::new(a, b), FlowKey::new(b, a));
        assert_ne!(
            FlowKey::new(a, b),
            FlowKey::new(a, "10.0.0.2:81".parse().unwrap())
        );
        assert_eq!(
            FlowKey::new(b, a).community_id(0),
            super::super::community_id(0, a, b)
        );
    }
}
