//! What the kernel program selects, as plain data: the contents of its `FILTER`,
//! `PORT_BITS` and `ADDRS` maps. `sniffer::filter` compiles pcap-filter expressions into
//! this; live capture only loads it into the maps.
//!
//! The kernel evaluates each test of [`FilterProgram::tests`] on a TCP packet into one bit
//! of a mask and accepts the packet when that mask's bit in the truth table is set (see
//! `sniffer_ebpf::FilterProgram`).

use sniffer_ebpf::{
    ADDR_KEY_BYTES, DIR_EITHER, FilterProgram, NEED_PORTS, PORT_WORDS, TEST_PORT, Test,
};

/// The kernel program's filter tables.
///
/// Invariants: `program.n_tests <= MAX_TESTS`; every `port_words` index is below
/// `MAX_TESTS * PORT_WORDS` and belongs to a port test; every `addrs` key's tag byte
/// (`sniffer_ebpf::addr_tag`) names an address test (`TEST_ADDR`; a net test,
/// `TEST_NET`, carries its one network itself), and its prefix length is
/// `ADDR_KEY_PREFIX +` at most 32 (IPv4) or 128 (IPv6) network bits, with the bits past
/// it zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelFilter {
    /// The tests and the truth table (boxed: 256 bytes, most of them net tests' words).
    pub program: Box<FilterProgram>,
    /// The non-zero words of `PORT_BITS`: (index, word).
    pub port_words: Vec<(u32, u64)>,
    /// The entries of `ADDRS`: (prefix length in bits, tag and zero bytes included; key
    /// data).
    pub addrs: Vec<(u32, [u8; ADDR_KEY_BYTES])>,
}

impl KernelFilter {
    /// Every TCP packet (pcap-filter's `tcp`).
    pub fn all_tcp() -> Self {
        Self {
            // No tests: the mask is always 0, and mask 0 accepts.
            program: Box::new(FilterProgram {
                truth: 1,
                ..FilterProgram::default()
            }),
            port_words: Vec::new(),
            addrs: Vec::new(),
        }
    }

    /// TCP packets from or to any of `ports` (`tcp and (port A or port B …)`); no port
    /// selects nothing.
    pub fn ports(ports: &[u16]) -> Self {
        let mut program = FilterProgram {
            // Mask 1 (the port test true) accepts.
            truth: 1 << 1,
            n_tests: 1,
            needs: NEED_PORTS,
            ..FilterProgram::default()
        };
        program.tests[0] = Test {
            kind: TEST_PORT,
            dir: DIR_EITHER,
            ..Test::default()
        };
        Self {
            program: Box::new(program),
            port_words: port_words(0, ports.iter().map(|&p| (p, p))),
            addrs: Vec::new(),
        }
    }
}

/// The non-zero `PORT_BITS` words of test `test` for the port ranges `ranges` (inclusive).
pub fn port_words(test: usize, ranges: impl IntoIterator<Item = (u16, u16)>) -> Vec<(u32, u64)> {
    let mut words = vec![0_u64; PORT_WORDS as usize];
    for (lo, hi) in ranges {
        for port in lo..=hi {
            words[usize::from(port >> 6)] |= 1 << (port & 63);
        }
    }
    let base = test as u32 * PORT_WORDS;
    words
        .into_iter()
        .enumerate()
        .filter(|&(_, w)| w != 0)
        .map(|(i, w)| (base + i as u32, w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_set_their_bits() {
        let k = KernelFilter::ports(&[80, 8080, 81]);
        assert_eq!(
            k.port_words,
            vec![
                (1, (1 << (80 - 64)) | (1 << (81 - 64))),
                (126, 1 << (8080 - 126 * 64))
            ]
        );
        assert_eq!(k.program.n_tests, 1);
        assert_eq!(k.program.truth, 2);
        let all = port_words(2, [(0, 65535)]);
        assert_eq!(all.len(), PORT_WORDS as usize);
        assert!(
            all.iter()
                .all(|&(i, w)| w == u64::MAX && i >= 2 * PORT_WORDS)
        );
    }
}
