//! The evaluator: a filter's distinct primitives compiled into flat tests, each evaluated
//! into one bit of a mask, and the mask looked up in a truth table, as the kernel program
//! does. No allocation, no recursion, and a handful of compares per test: a five-term
//! filter costs a few nanoseconds per frame beyond reading its headers.
//!
//! Filters with more than [`TABLE_TESTS`] distinct primitives walk the expression tree
//! instead.

use std::cell::Cell;

use super::{
    Dir, Expr, Family, Net, Prim,
    packet::{Key, Packet},
};

/// Up to this many distinct primitives, a filter is evaluated through a truth table of
/// `2^TABLE_TESTS` bits (128 bytes).
pub(super) const TABLE_TESTS: usize = 10;

/// One primitive, in the form cheapest to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    Family(Family),
    /// One port range (a single port: `lo == hi`).
    Port {
        dir: u8,
        lo: u16,
        span: u16,
    },
    Ports {
        dir: u8,
        ranges: Box<[(u16, u16)]>,
    },
    /// One IPv4 network (a host: all-ones mask).
    Net4 {
        dir: u8,
        addr: u32,
        mask: u32,
    },
    Net6 {
        dir: u8,
        addr: u128,
        mask: u128,
    },
    Nets {
        dir: u8,
        nets: Box<[Net]>,
    },
}

/// A direction as its own truth table: bit `2 * s + d` is the test's result when the
/// source gave `s` and the destination `d` (the kernel's `DIR_*` values).
const fn dir_table(dir: Dir) -> u8 {
    match dir {
        Dir::Either => 0b1110,
        Dir::Src => 0b1100,
        Dir::Dst => 0b1010,
        Dir::Both => 0b1000,
    }
}

#[inline(always)]
fn combine(dir: u8, s: bool, d: bool) -> bool {
    (dir >> ((usize::from(s) << 1) | usize::from(d))) & 1 != 0
}

impl Test {
    fn new(p: &Prim) -> Self {
        match p {
            Prim::Family(f) => Self::Family(*f),
            Prim::Ports { dir, ranges } => match ranges[..] {
                [(lo, hi)] => Self::Port {
                    dir: dir_table(*dir),
                    lo,
                    span: hi - lo,
                },
                _ => Self::Ports {
                    dir: dir_table(*dir),
                    ranges: ranges.clone().into(),
                },
            },
            Prim::Addrs { dir, nets } => match nets[..] {
                [Net::V4 { addr, mask }] => Self::Net4 {
                    dir: dir_table(*dir),
                    addr,
                    mask,
                },
                [Net::V6 { addr, mask }] => Self::Net6 {
                    dir: dir_table(*dir),
                    addr,
                    mask,
                },
                _ => Self::Nets {
                    dir: dir_table(*dir),
                    nets: nets.clone().into(),
                },
            },
        }
    }

    #[inline(always)]
    fn matches(&self, p: &Packet) -> bool {
        match self {
            Self::Family(f) => p.family == *f,
            Self::Port { dir, lo, span } => p.ports.is_some_and(|(s, d)| {
                let inside = |x: u16| x.wrapping_sub(*lo) <= *span;
                combine(*dir, inside(s), inside(d))
            }),
            Self::Ports { dir, ranges } => p.ports.is_some_and(|(s, d)| {
                combine(
                    *dir,
                    super::in_ranges(ranges, s),
                    super::in_ranges(ranges, d),
                )
            }),
            Self::Net4 { dir, addr, mask } => {
                p.family == Family::V4
                    && combine(
                        *dir,
                        p.src as u32 & mask == *addr,
                        p.dst as u32 & mask == *addr,
                    )
            }
            Self::Net6 { dir, addr, mask } => {
                p.family == Family::V6
                    && combine(*dir, p.src & mask == *addr, p.dst & mask == *addr)
            }
            Self::Nets { dir, nets } => combine(
                *dir,
                nets.iter().any(|n| n.contains(p.family, p.src)),
                nets.iter().any(|n| n.contains(p.family, p.dst)),
            ),
        }
    }
}

/// A filter's evaluator.
///
/// Invariant: `table`, when present, has bit `m` set exactly when the expression is true
/// for the values of `tests` given by the bits of `m` (`tests` in the order of the
/// distinct primitives it was built from); it is present when there are at most
/// [`TABLE_TESTS`] of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Program {
    tests: Box<[Test]>,
    table: Option<Box<[u64]>>,
}

impl Program {
    /// The evaluator of `expr`, whose distinct primitives are `prims`.
    pub(super) fn new(expr: &Expr, prims: &[Prim]) -> Self {
        let table = (prims.len() <= TABLE_TESTS).then(|| {
            let mut table = vec![0_u64; (1_usize << prims.len()).div_ceil(64)];
            for mask in 0..1_usize << prims.len() {
                let value = expr.kleene(&|p: &Prim| {
                    prims
                        .iter()
                        .position(|q| q == p)
                        .map(|i| mask & (1 << i) != 0)
                });
                if value == Some(true) {
                    table[mask / 64] |= 1 << (mask % 64);
                }
            }
            table.into_boxed_slice()
        });
        Self {
            tests: prims.iter().map(Test::new).collect(),
            table,
        }
    }

    /// Whether the expression `expr` (the one this was built from) holds for `p`.
    #[inline]
    pub(super) fn matches(&self, expr: &Expr, p: &Packet) -> bool {
        let Some(table) = &self.table else {
            return expr.matches(p);
        };
        let mut mask = 0_usize;
        for (i, test) in self.tests.iter().enumerate() {
            mask |= usize::from(test.matches(p)) << i;
        }
        (table[mask / 64] >> (mask % 64)) & 1 != 0
    }

    /// Whether the truth table is used (for the tests).
    #[cfg(test)]
    pub(super) fn has_table(&self) -> bool {
        self.table.is_some()
    }
}

/// The last verdict, with the fields `K` it was given for (a [`Packet`], or a [`Key`]).
/// The verdict is a function of those fields alone, and consecutive packets mostly belong
/// to one flow (a download is a burst of packets with one 4-tuple), so comparing the
/// fields (a few instructions) usually replaces evaluating the tests (about a hundred).
/// Never part of a filter's identity: any two memos are equal.
#[derive(Clone, Debug)]
pub(super) struct Memo<K: Copy>(Cell<Option<(K, bool)>>);

impl<K: Copy> Default for Memo<K> {
    fn default() -> Self {
        Self(Cell::new(None))
    }
}

impl<K: Copy + PartialEq> Memo<K> {
    /// The verdict on `k`: the last one if `k` is the same, else `eval`'s.
    #[inline(always)]
    pub(super) fn get_or(&self, k: K, eval: impl FnOnce() -> bool) -> bool {
        if let Some((last, verdict)) = self.0.get()
            && last == k
        {
            return verdict;
        }
        let verdict = eval();
        self.0.set(Some((k, verdict)));
        verdict
    }
}

impl<K: Copy> PartialEq for Memo<K> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<K: Copy> Eq for Memo<K> {}

/// log2 of the number of [`Recent`] slots.
const RECENT_BITS: u32 = 6;

/// The verdicts on the last packets with a [`Key`] (untagged Ethernet, plain IPv4 TCP:
/// nearly every packet of a typical capture), one [`Memo`] per key hash. A capture
/// interleaves flows and directions (data one way, acknowledgements the other), so one
/// remembered verdict answers two packets in three; 64 slots answer all but about one in
/// a thousand. A hit costs a load, a hash and a compare, against reading the headers and
/// evaluating the tests. Equal to any other, as its memos are.
///
/// Invariant: a slot holds a key only with the verdict the filter gave a frame with that
/// key (which, by [`Key`]'s contract, is the verdict on every frame with that key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recent(Box<[Memo<Key>]>);

impl Default for Recent {
    fn default() -> Self {
        Self((0..1 << RECENT_BITS).map(|_| Memo::default()).collect())
    }
}

impl Recent {
    /// The verdict on a frame with `key`: a remembered one, else `eval`'s.
    #[inline(always)]
    pub(super) fn get_or(&self, key: Key, eval: impl FnOnce() -> bool) -> bool {
        self.0[key.slot(RECENT_BITS)].get_or(key, eval)
    }
}
