//! Compiling a filter for the kernel program: its distinct primitive tests become the
//! program's tests (at most [`MAX_TESTS`]), and the expression over them a truth table of
//! `2^n` bits, so any and/or/not over them is decided exactly in the kernel.
//!
//! A filter with more distinct tests, or with a test the kernel cannot express (an IPv4
//! `mask` that is not a prefix), is compiled as a superset: the first expressible tests
//! go to the kernel, the others count as unknown, and a mask's bit is set unless the
//! expression is false whatever the unknowns are (three-valued logic). Userspace then
//! applies the whole filter to what the kernel lets through.

use sniffer_ebpf::{
    ADDR_KEY_AT, ADDR_KEY_BYTES, ADDR_KEY_PREFIX, DIR_BOTH, DIR_DST, DIR_EITHER, DIR_SRC,
    FAMILY_V4, FAMILY_V6, FilterProgram, MAX_TESTS, NEED_ADDRS, NEED_PORTS, TEST_ADDR, TEST_FAMILY,
    TEST_NET, TEST_PORT, Test, addr_tag,
};

use super::{Dir, Family, Filter, Net, Prim};
use crate::capture::{KernelFilter, kernel_filter::port_words};

/// A filter split for live capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePlan {
    /// What the kernel program selects: exactly the filter, or a superset of it.
    pub kernel: KernelFilter,
    /// `None` when the kernel decides exactly; otherwise the filter userspace applies to
    /// every packet the kernel lets through.
    pub userspace: Option<Filter>,
}

impl LivePlan {
    /// The kernel decides every packet itself.
    pub fn kernel_is_exact(&self) -> bool {
        self.userspace.is_none()
    }
}

/// Whether the kernel program can evaluate `p` exactly.
fn expressible(p: &Prim) -> bool {
    match p {
        Prim::Family(_) | Prim::Ports { .. } => true,
        Prim::Addrs { nets, .. } => nets.iter().all(|n| n.prefix_len().is_some()),
    }
}

fn dir_code(dir: Dir) -> u8 {
    match dir {
        Dir::Either => DIR_EITHER,
        Dir::Src => DIR_SRC,
        Dir::Dst => DIR_DST,
        Dir::Both => DIR_BOTH,
    }
}

fn family_code(f: Family) -> u8 {
    match f {
        Family::V4 => FAMILY_V4,
        Family::V6 => FAMILY_V6,
    }
}

/// 16 address bytes in network order, IPv4 in the first 4: an address as it lies in an
/// `ADDRS` key.
fn address_bytes(family: Family, a: u128) -> [u8; 16] {
    let mut b = [0_u8; 16];
    match family {
        Family::V4 => b[..4].copy_from_slice(&(a as u32).to_be_bytes()),
        Family::V6 => b = a.to_be_bytes(),
    }
    b
}

/// 16 address bytes as the kernel program reads them from its key: two native words.
fn words(b: [u8; 16]) -> [u64; 2] {
    let (lo, hi) = b.split_at(8);
    [
        u64::from_ne_bytes(lo.try_into().unwrap_or_default()),
        u64::from_ne_bytes(hi.try_into().unwrap_or_default()),
    ]
}

/// The `ADDRS` entry of network `net` in test `test`.
fn addr_entry(test: usize, net: &Net) -> Option<(u32, [u8; ADDR_KEY_BYTES])> {
    let len = net.prefix_len()?;
    let (family, addr) = match *net {
        Net::V4 { addr, .. } => (Family::V4, u128::from(addr)),
        Net::V6 { addr, .. } => (Family::V6, addr),
    };
    let mut data = [0_u8; ADDR_KEY_BYTES];
    data[0] = addr_tag(test, family == Family::V6);
    data[ADDR_KEY_AT..].copy_from_slice(&address_bytes(family, addr));
    Some((ADDR_KEY_PREFIX + len, data))
}

/// The net test of one network: its family, network and mask in the kernel's form.
fn net_test(dir: Dir, net: &Net) -> Test {
    let (family, addr, mask) = match *net {
        Net::V4 { addr, mask } => (Family::V4, u128::from(addr), u128::from(mask)),
        Net::V6 { addr, mask } => (Family::V6, addr, mask),
    };
    Test {
        kind: TEST_NET,
        dir: dir_code(dir),
        family: family_code(family),
        net: words(address_bytes(family, addr)),
        mask: words(address_bytes(family, mask)),
        ..Test::default()
    }
}

pub(super) fn plan(filter: &Filter) -> LivePlan {
    let distinct = &filter.prims;
    let tests: Vec<&Prim> = distinct
        .iter()
        .filter(|p| expressible(p))
        .take(MAX_TESTS)
        .collect();
    let exact = tests.len() == distinct.len();

    let mut program = FilterProgram {
        n_tests: tests.len() as u32,
        ..FilterProgram::default()
    };
    let mut port_bits = Vec::new();
    let mut addrs = Vec::new();
    for (i, prim) in tests.iter().enumerate() {
        program.tests[i] = match prim {
            Prim::Family(f) => Test {
                kind: TEST_FAMILY,
                dir: DIR_EITHER,
                family: family_code(*f),
                ..Test::default()
            },
            Prim::Ports { dir, ranges } => {
                program.needs |= NEED_PORTS;
                port_bits.extend(port_words(i, ranges.iter().copied()));
                Test {
                    kind: TEST_PORT,
                    dir: dir_code(*dir),
                    ..Test::default()
                }
            }
            // One network: compared inline, cheaper than a trie lookup per address.
            Prim::Addrs { dir, nets } if nets.len() == 1 => {
                program.needs |= NEED_ADDRS;
                net_test(*dir, &nets[0])
            }
            Prim::Addrs { dir, nets } => {
                program.needs |= NEED_ADDRS;
                addrs.extend(nets.iter().filter_map(|n| addr_entry(i, n)));
                Test {
                    kind: TEST_ADDR,
                    dir: dir_code(*dir),
                    ..Test::default()
                }
            }
        };
    }
    for mask in 0_usize..1 << tests.len() {
        let value = filter.expr.kleene(&|p: &Prim| {
            tests
                .iter()
                .position(|t| *t == p)
                .map(|i| mask & (1 << i) != 0)
        });
        if value != Some(false) {
            program.truth |= 1 << mask;
        }
    }
    LivePlan {
        kernel: KernelFilter {
            program: Box::new(program),
            port_words: port_bits,
            addrs,
        },
        userspace: (!exact).then(|| filter.clone()),
    }
}

/// The kernel program's decision on `p`, computed from the tables as the program does
/// (an address matches a test when one of the test's prefixes covers it).
#[cfg(test)]
pub(super) fn kernel_decides(k: &KernelFilter, p: &super::packet::Packet) -> bool {
    use sniffer_ebpf::PORT_WORDS;
    let f = &k.program;
    let port_in = |i: usize, port: u16| {
        let index = i as u32 * PORT_WORDS + u32::from(port >> 6);
        k.port_words
            .iter()
            .any(|&(at, w)| at == index && (w >> (port & 63)) & 1 != 0)
    };
    let v6 = p.family == Family::V6;
    let addr_in = |i: usize, a: u128| {
        let tag = addr_tag(i, v6);
        let bytes = address_bytes(p.family, a);
        k.addrs.iter().any(|(len, data)| {
            let bits = (*len - ADDR_KEY_PREFIX) as usize;
            data[0] == tag
                && data[1..ADDR_KEY_AT] == [0; ADDR_KEY_AT - 1]
                && (0..bits).all(|b| {
                    let bit = |x: u8| (x >> (7 - b % 8)) & 1;
                    bit(data[ADDR_KEY_AT + b / 8]) == bit(bytes[b / 8])
                })
        })
    };
    let net_in = |t: &Test, a: u128| {
        let w = words(address_bytes(p.family, a));
        w[0] & t.mask[0] == t.net[0] && w[1] & t.mask[1] == t.net[1]
    };
    let pair = |dir: u8, s: bool, d: bool| (dir >> (u8::from(s) << 1 | u8::from(d))) & 1 != 0;
    let mut mask = 0_usize;
    for i in 0..f.n_tests as usize {
        let t = f.tests[i];
        let hit = match t.kind {
            TEST_FAMILY => t.family == if v6 { FAMILY_V6 } else { FAMILY_V4 },
            TEST_PORT => p
                .ports
                .is_some_and(|(s, d)| pair(t.dir, port_in(i, s), port_in(i, d))),
            TEST_ADDR => pair(t.dir, addr_in(i, p.src), addr_in(i, p.dst)),
            TEST_NET => {
                t.family == family_code(p.family)
                    && pair(t.dir, net_in(&t, p.src), net_in(&t, p.dst))
            }
            _ => false,
        };
        if hit {
            mask |= 1 << i;
        }
    }
    (f.truth >> mask) & 1 != 0
}
