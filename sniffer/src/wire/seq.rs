//! TCP sequence numbers: 32-bit, compared with wraparound (RFC 793 §3.3, RFC 1982).

use core::{cmp::Ordering, fmt, ops};

/// A TCP sequence number. Ordering is by wrapping distance, so it is only meaningful
/// between numbers less than 2^31 apart; that is why `SeqNum` is `PartialOrd` only.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance from `other` to `self` (`self - other`), in `-2^31..2^31`.
    pub const fn distance_from(self, other: Self) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.distance_from(*other).cmp(&0))
    }
}

impl ops::Add<u32> for SeqNum {
    type Output = Self;
    fn add(self, rhs: u32) -> Self {
        Self(self.0.wrapping_add(rhs))
    }
}

impl ops::Sub<u32> for SeqNum {
    type Output = Self;
    fn sub(self, rhs: u32) -> Self {
        Self(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNum({})", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::SeqNum;

    #[test]
    fn compares_across_the_wrap() {
        let near_top = SeqNum(u32::MAX - 10);
        let wrapped = near_top + 20;
        assert_eq!(wrapped, SeqNum(9));
        assert!(wrapped > near_top);
        assert!(near_top < wrapped);
        assert_eq!(wrapped.distance_from(near_top), 20);
        assert_eq!(near_top.distance_from(wrapped), -20);
    }

    #[test]
    fn plain_order_without_wrap() {
        assert!(SeqNum(5) < SeqNum(6));
        assert!(SeqNum(6) >= SeqNum(6));
        assert_eq!(SeqNum(0) - 1, SeqNum(u32::MAX));
    }
}
