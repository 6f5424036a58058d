//! Filter expressions: tcpdump's pcap-filter syntax for the TCP/IP subset that users type.
//!
//! ```text
//! expr     := operand (("and" | "&&" | "or" | "||") operand)*   and, or: equal precedence,
//!                                                               left to right
//! operand  := ("not" | "!") operand | "(" expr ")" | term | id  (id: continues the last
//!                                                               qualifier, `port 80 or 8080`)
//! term     := [tcp | ip | ip6] [src | dst | src or dst | src and dst]
//!             [host | net | port | portrange] id
//!           | tcp | ip | ip6
//! id       := address | address/len | address mask address | number | service | range
//! ```
//!
//! sniffer sees TCP only, so a filter `EXPR` means `tcp and (EXPR)`, and selects the packets
//! `tcpdump -r FILE 'tcp and (EXPR)'` selects, with two deliberate differences that only
//! let it see more:
//! - it looks through up to two VLAN tags and a PPPoE session header on Ethernet and
//!   Linux cooked captures, where tcpdump needs `vlan and …`, `pppoes and …`;
//! - it follows IPv6 extension headers (up to six) to TCP, where tcpdump's `tcp` looks only
//!   at the first next header (and one fragment header) and its port tests only at TCP
//!   right after the fixed header. A packet with extension headers is treated as tcpdump
//!   treats it without them (a non-first fragment has no ports).
//!
//! The filter reads the raw frame, before decoding ([`Filter::matches`]), so fragments
//! behave as in tcpdump: a non-first fragment is TCP (it matches `host`, `net`, `ip`) but
//! has no ports (it never matches `port`). A frame cut by the snap length before a field
//! the filter reads does not match.
//!
//! [`Filter::live`] splits a filter between the kernel program (its tests and truth
//! table, [`crate::capture::KernelFilter`]) and what userspace must still check.

mod eval;
mod kernel;
mod packet;
mod parse;
#[cfg(test)]
mod tests;

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

pub use kernel::LivePlan;

use crate::capture::Frame;

/// A filter expression that could not be used: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The words do not form an expression (a missing operand, an unmatched parenthesis).
    #[error("column {column}: {message}")]
    Syntax {
        /// 1-based character column of the token, in the expression as one string.
        column: usize,
        /// The token (empty at the end of the expression).
        token: String,
        /// What was expected, and what was found.
        message: String,
    },
    /// A pcap-filter keyword or construct outside the supported subset.
    #[error("column {column}: {message}")]
    Unsupported {
        /// 1-based character column of the token.
        column: usize,
        /// The token.
        token: String,
        /// What is not supported, and what to do instead.
        message: String,
    },
    /// A value that is not valid where it stands: an address, a port, a mask.
    #[error("column {column}: {message}")]
    Invalid {
        /// 1-based character column of the token.
        column: usize,
        /// The token.
        token: String,
        /// Why the value is refused.
        message: String,
    },
    /// The expression can never match a TCP packet (tcpdump refuses such filters too).
    #[error("column 1: this filter matches no TCP packet")]
    MatchesNothing,
}

impl FilterError {
    /// The 1-based column the error points at.
    pub fn column(&self) -> usize {
        match self {
            Self::Syntax { column, .. }
            | Self::Unsupported { column, .. }
            | Self::Invalid { column, .. } => *column,
            Self::MatchesNothing => 1,
        }
    }

    /// The token the error points at (empty at the end of the expression).
    pub fn token(&self) -> &str {
        match self {
            Self::Syntax { token, .. }
            | Self::Unsupported { token, .. }
            | Self::Invalid { token, .. } => token,
            Self::MatchesNothing => "",
        }
    }
}

/// Which end of a packet a test looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// The source or the destination (the default, and `src or dst`).
    Either,
    /// The source (`src`).
    Src,
    /// The destination (`dst`).
    Dst,
    /// Both the source and the destination (`src and dst`).
    Both,
}

impl Dir {
    /// `src`, `dst` and `src and dst` as written before a qualifier (`""` for either).
    fn prefix(self) -> &'static str {
        match self {
            Self::Either => "",
            Self::Src => "src ",
            Self::Dst => "dst ",
            Self::Both => "src and dst ",
        }
    }

    /// The test of both ends, from the test of one end.
    #[inline]
    fn test(self, src: impl Fn() -> bool, dst: impl Fn() -> bool) -> bool {
        match self {
            Self::Either => src() || dst(),
            Self::Src => src(),
            Self::Dst => dst(),
            Self::Both => src() && dst(),
        }
    }
}

/// An IP version, as the link layer announces it (`ip`, `ip6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// An address and its mask: a host (all ones) or a network.
///
/// Invariant: `addr & !mask == 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Net {
    /// IPv4, as a big-endian number.
    V4 {
        /// The network address.
        addr: u32,
        /// The mask (any bits, as pcap-filter's `mask` allows).
        mask: u32,
    },
    /// IPv6, as a big-endian number.
    V6 {
        /// The network address.
        addr: u128,
        /// The mask (contiguous: IPv6 takes only `/len`).
        mask: u128,
    },
}

impl Net {
    /// Whether an address of `family` (IPv4 in the low 32 bits) is in this network.
    #[inline]
    fn contains(&self, family: Family, address: u128) -> bool {
        match (*self, family) {
            (Self::V4 { addr, mask }, Family::V4) => address as u32 & mask == addr,
            (Self::V6 { addr, mask }, Family::V6) => address & mask == addr,
            _ => false,
        }
    }

    /// The prefix length, if the mask is a prefix (contiguous ones, then zeros).
    pub fn prefix_len(&self) -> Option<u32> {
        match *self {
            Self::V4 { mask, .. } => {
                (mask.leading_ones() + mask.trailing_zeros() == 32).then_some(mask.leading_ones())
            }
            Self::V6 { mask, .. } => {
                (mask.leading_ones() + mask.trailing_zeros() == 128).then_some(mask.leading_ones())
            }
        }
    }

    /// The family of the address.
    pub fn family(&self) -> Family {
        match self {
            Self::V4 { .. } => Family::V4,
            Self::V6 { .. } => Family::V6,
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (*self, self.prefix_len()) {
            (Self::V4 { addr, .. }, Some(32)) => write!(f, "host {}", Ipv4Addr::from(addr)),
            (Self::V6 { addr, .. }, Some(128)) => write!(f, "host {}", Ipv6Addr::from(addr)),
            (Self::V4 { addr, .. }, Some(len)) => write!(f, "net {}/{len}", Ipv4Addr::from(addr)),
            (Self::V6 { addr, .. }, Some(len)) => write!(f, "net {}/{len}", Ipv6Addr::from(addr)),
            (Self::V4 { addr, mask }, None) => write!(
                f,
                "net {} mask {}",
                Ipv4Addr::from(addr),
                Ipv4Addr::from(mask)
            ),
            (Self::V6 { addr, mask }, None) => {
                write!(
                    f,
                    "net {} mask {}",
                    Ipv6Addr::from(addr),
                    Ipv6Addr::from(mask)
                )
            }
        }
    }
}

/// A primitive test on a TCP packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Prim {
    /// The link layer says this family (`ip`, `ip6`).
    Family(Family),
    /// A port in one of the inclusive ranges (`port`, `portrange`; after normalisation,
    /// several of them joined by `or`). A packet without ports (a non-first fragment)
    /// never matches.
    Ports {
        /// Which port.
        dir: Dir,
        /// Sorted, disjoint, not adjacent.
        ranges: Vec<(u16, u16)>,
    },
    /// An address in one of the networks (`host`, `net`; after normalisation, several).
    Addrs {
        /// Which address.
        dir: Dir,
        /// Sorted, without duplicates.
        nets: Vec<Net>,
    },
}

impl Prim {
    fn ports(dir: Dir, lo: u16, hi: u16) -> Self {
        Self::Ports {
            dir,
            ranges: vec![(lo.min(hi), lo.max(hi))],
        }
    }

    fn addrs(dir: Dir, net: Net) -> Self {
        Self::Addrs {
            dir,
            nets: vec![net],
        }
    }

    #[inline]
    fn matches(&self, p: &packet::Packet) -> bool {
        match self {
            Self::Family(f) => p.family == *f,
            Self::Ports { dir, ranges } => p
                .ports
                .is_some_and(|(s, d)| dir.test(|| in_ranges(ranges, s), || in_ranges(ranges, d))),
            Self::Addrs { dir, nets } => dir.test(
                || nets.iter().any(|n| n.contains(p.family, p.src)),
                || nets.iter().any(|n| n.contains(p.family, p.dst)),
            ),
        }
    }
}

/// Whether `port` is in the sorted, disjoint `ranges`.
#[inline]
fn in_ranges(ranges: &[(u16, u16)], port: u16) -> bool {
    if ranges.len() <= 8 {
        ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    } else {
        let i = ranges.partition_point(|&(_, hi)| hi < port);
        ranges.get(i).is_some_and(|&(lo, _)| lo <= port)
    }
}

impl fmt::Display for Prim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: Vec<String>| {
            if items.len() == 1 {
                f.write_str(&items[0])
            } else {
                write!(f, "({})", items.join(" or "))
            }
        };
        match self {
            Self::Family(Family::V4) => f.write_str("ip"),
            Self::Family(Family::V6) => f.write_str("ip6"),
            Self::Ports { dir, ranges } => list(
                f,
                ranges
                    .iter()
                    .map(|&(lo, hi)| {
                        if lo == hi {
                            format!("{}port {lo}", dir.prefix())
                        } else {
                            format!("{}portrange {lo}-{hi}", dir.prefix())
                        }
                    })
                    .collect(),
            ),
            Self::Addrs { dir, nets } => list(
                f,
                nets.iter()
                    .map(|n| format!("{}{n}", dir.prefix()))
                    .collect(),
            ),
        }
    }
}

/// A filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Always (`tcp`) or never.
    Const(bool),
    /// A primitive test.
    Prim(Prim),
    /// Negation.
    Not(Box<Self>),
    /// Every operand.
    And(Vec<Self>),
    /// Any operand.
    Or(Vec<Self>),
}

impl Expr {
    #[inline]
    fn matches(&self, p: &packet::Packet) -> bool {
        match self {
            Self::Const(b) => *b,
            Self::Prim(prim) => prim.matches(p),
            Self::Not(e) => !e.matches(p),
            Self::And(es) => es.iter().all(|e| e.matches(p)),
            Self::Or(es) => es.iter().any(|e| e.matches(p)),
        }
    }

    /// Three-valued (Kleene) evaluation: `known` gives a primitive's value or `None`
    /// for unknown; the result is `None` when the unknowns decide it.
    fn kleene(&self, known: &impl Fn(&Prim) -> Option<bool>) -> Option<bool> {
        match self {
            Self::Const(b) => Some(*b),
            Self::Prim(p) => known(p),
            Self::Not(e) => e.kleene(known).map(|b| !b),
            Self::And(es) => {
                let mut all = Some(true);
                for e in es {
                    match e.kleene(known) {
                        Some(false) => return Some(false),
                        None => all = None,
                        Some(true) => {}
                    }
                }
                all
            }
            Self::Or(es) => {
                let mut any = Some(false);
                for e in es {
                    match e.kleene(known) {
                        Some(true) => return Some(true),
                        None => any = None,
                        Some(false) => {}
                    }
                }
                any
            }
        }
    }

    /// Every primitive, in order of appearance.
    fn prims<'a>(&'a self, out: &mut Vec<&'a Prim>) {
        match self {
            Self::Const(_) => {}
            Self::Prim(p) => out.push(p),
            Self::Not(e) => e.prims(out),
            Self::And(es) | Self::Or(es) => es.iter().for_each(|e| e.prims(out)),
        }
    }

    /// The same test, simpler: nested and/or flattened, constants folded, double
    /// negations removed, and, under an `or`, the port tests of one direction merged
    /// into one set, and the address tests likewise (`port 80 or port 8080` is one test
    /// of the set {80, 8080}). `src and dst` tests are never merged: "both ends in the
    /// set" is not "both ends equal to one member".
    pub fn normalize(self) -> Self {
        match self {
            Self::Const(_) | Self::Prim(_) => self,
            Self::Not(e) => match e.normalize() {
                Self::Const(b) => Self::Const(!b),
                Self::Not(inner) => *inner,
                e => Self::Not(Box::new(e)),
            },
            Self::And(es) => {
                let mut out = Vec::new();
                for e in es {
                    match e.normalize() {
                        Self::Const(true) => {}
                        Self::Const(false) => return Self::Const(false),
                        Self::And(inner) => out.extend(inner),
                        e => out.push(e),
                    }
                }
                match out.len() {
                    0 => Self::Const(true),
                    1 => out.pop().unwrap_or(Self::Const(true)),
                    _ => Self::And(out),
                }
            }
            Self::Or(es) => {
                let mut out: Vec<Self> = Vec::new();
                for e in es {
                    let flat = match e.normalize() {
                        Self::Const(false) => Vec::new(),
                        Self::Const(true) => return Self::Const(true),
                        Self::Or(inner) => inner,
                        e => vec![e],
                    };
                    for e in flat {
                        if !merge_into(&mut out, &e) {
                            out.push(e);
                        }
                    }
                }
                match out.len() {
                    0 => Self::Const(false),
                    1 => out.pop().unwrap_or(Self::Const(false)),
                    _ => Self::Or(out),
                }
            }
        }
    }
}

/// Merges the primitive `e` into a primitive of the same kind and direction already in
/// `out` (the operands of an `or`); false if there is none.
fn merge_into(out: &mut [Expr], e: &Expr) -> bool {
    let Expr::Prim(new) = e else { return false };
    for old in out.iter_mut() {
        let Expr::Prim(old) = old else { continue };
        match (old, new) {
            (
                Prim::Ports { dir, ranges },
                Prim::Ports {
                    dir: d,
                    ranges: more,
                },
            ) if dir == d && *dir != Dir::Both => {
                ranges.extend_from_slice(more);
                *ranges = merge_ranges(std::mem::take(ranges));
                return true;
            }
            (Prim::Addrs { dir, nets }, Prim::Addrs { dir: d, nets: more })
                if dir == d && *dir != Dir::Both =>
            {
                nets.extend_from_slice(more);
                nets.sort_unstable();
                nets.dedup();
                return true;
            }
            (old, new) if *old == *new => return true,
            _ => {}
        }
    }
    false
}

/// Sorted, disjoint, non-adjacent ranges covering the same ports.
fn merge_ranges(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

impl fmt::Display for Expr {
    /// pcap-filter syntax, every `and`/`or` operand that is itself one parenthesised.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, e: &Self| match e {
            Self::And(_) | Self::Or(_) => write!(f, "({e})"),
            _ => write!(f, "{e}"),
        };
        match self {
            Self::Const(true) => f.write_str("tcp"),
            Self::Const(false) => f.write_str("not tcp"),
            Self::Prim(p) => write!(f, "{p}"),
            Self::Not(e) => {
                f.write_str("not ")?;
                operand(f, e)
            }
            Self::And(es) | Self::Or(es) => {
                let op = if matches!(self, Self::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    operand(f, e)?;
                }
                Ok(())
            }
        }
    }
}

/// What a filter reads of a packet beyond deciding that it is TCP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Needs {
    ports: bool,
    addrs: bool,
}

impl Needs {
    fn of(expr: &Expr) -> Self {
        let mut prims = Vec::new();
        expr.prims(&mut prims);
        Self {
            ports: prims.iter().any(|p| matches!(p, Prim::Ports { .. })),
            addrs: prims.iter().any(|p| matches!(p, Prim::Addrs { .. })),
        }
    }
}

/// A parsed, normalised filter, ready to test frames.
///
/// Invariant: `expr` is normalised; `needs` is [`Needs::of`] it; `prims` are its distinct
/// primitives in order of appearance, and `program` was built from `expr` and `prims`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    text: String,
    expr: Expr,
    needs: Needs,
    prims: Vec<Prim>,
    program: eval::Program,
    /// Recent verdicts on common frames, by their addresses and ports.
    recent: eval::Recent,
    /// The last verdict on any other frame, for the next packet of the same flow.
    memo: eval::Memo<packet::Packet>,
}

impl Filter {
    /// Parse a pcap-filter expression (several command-line words joined by spaces).
    ///
    /// # Errors
    /// [`FilterError`], naming the token and its column: a syntax error, a keyword outside
    /// the subset, an invalid value, or an expression that can match nothing.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let expr = parse::parse(text)?.normalize();
        if expr == Expr::Const(false) {
            return Err(FilterError::MatchesNothing);
        }
        Ok(Self::from_expr(text.to_owned(), expr))
    }

    /// `port A or port B …`: what `--port A --port B` means.
    pub fn ports(ports: &[u16]) -> Self {
        let text = ports
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let expr = Expr::Or(
            ports
                .iter()
                .map(|&p| Expr::Prim(Prim::ports(Dir::Either, p, p)))
                .collect(),
        )
        .normalize();
        Self::from_expr(text, expr)
    }

    fn from_expr(text: String, expr: Expr) -> Self {
        let needs = Needs::of(&expr);
        let mut all = Vec::new();
        expr.prims(&mut all);
        let mut prims: Vec<Prim> = Vec::new();
        for p in all {
            if !prims.contains(p) {
                prims.push(p.clone());
            }
        }
        let program = eval::Program::new(&expr, &prims);
        Self {
            text,
            expr,
            needs,
            prims,
            program,
            recent: eval::Recent::default(),
            memo: eval::Memo::default(),
        }
    }

    /// The expression as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The normalised expression (without the implied `tcp and`).
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the frame is a TCP packet the expression selects: pcap-filter's
    /// `tcp and (EXPR)` on the raw frame, with the differences in the module docs.
    /// Allocates nothing.
    #[inline]
    pub fn matches(&self, frame: &Frame<'_>) -> bool {
        let eval = |p: &packet::Packet| self.program.matches(&self.expr, p);
        if let Some(key) = packet::Key::of(frame) {
            return self.recent.get_or(key, || {
                packet::Packet::read(frame, self.needs).is_some_and(|p| eval(&p))
            });
        }
        packet::Packet::read(frame, self.needs).is_some_and(|p| self.memo.get_or(p, || eval(&p)))
    }

    /// The split for live capture: what the kernel program decides, and, when it cannot
    /// decide everything, the filter userspace must still apply.
    pub fn live(&self) -> LivePlan {
        kernel::plan(self)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a userspace filter counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FilterStats {
    /// Frames that matched and went on.
    pub matched: u64,
    /// Frames that did not match: not TCP, or not selected by the expression.
    pub rejected: u64,
}
