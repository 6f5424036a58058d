//! The ABI shared by the kernel program (`src/main.rs`, built for the bpf target by
//! `sniffer/build.rs`) and userspace (`sniffer::capture::live`).
//!
//! Every type here is `#[repr(C)]`, has no implicit padding (checked by the const
//! assertions below), and is `aya::Pod` when the `user` feature is on.
#![no_std]

/// Names of the maps and the program inside the object, so both sides agree.
pub mod names {
    /// The socket filter program.
    pub const PROGRAM: &str = "sniffer";
    /// `RingBuf`: one [`RecordHeader`](super::RecordHeader) + packet bytes (+ slack up to
    /// the record's size class) per matched packet.
    pub const RECORDS: &str = "RECORDS";
    /// `Array<Config>` with one entry, created `BPF_F_MMAPABLE`: userspace writes
    /// [`Config::reader_asleep`](super::Config::reader_asleep) through a shared mapping,
    /// which needs no `bpf()` call (and so no capability) after the privilege drop.
    pub const CONFIG: &str = "CONFIG";
    /// `Array<FilterProgram>` with one entry: the tests and the truth table of the
    /// compiled filter.
    pub const FILTER: &str = "FILTER";
    /// `Array<u64>` of [`MAX_TESTS`](super::MAX_TESTS) × [`PORT_WORDS`](super::PORT_WORDS)
    /// words: test `i`'s port set is the bit set in words `i * PORT_WORDS ..`, bit
    /// `port % 64` of word `port / 64`.
    pub const PORT_BITS: &str = "PORT_BITS";
    /// `LpmTrie<[u8; ADDR_KEY_BYTES], u8>`: the address prefixes of every address test, keyed
    /// by [`addr_tag`](super::addr_tag) then the address (see [`ADDR_KEY_BYTES`](super::ADDR_KEY_BYTES)).
    pub const ADDRS: &str = "ADDRS";
    /// `PerCpuArray<u64>` indexed by [`Counter`](super::Counter).
    pub const COUNTERS: &str = "COUNTERS";
}

/// Largest number of packet bytes copied per record (the largest record size class the
/// kernel program reserves, after the header).
pub const MAX_SNAPLEN: u32 = 65536;

/// What precedes each packet in the ring buffer. A record is this header, `cap_len`
/// packet bytes, then slack: the kernel reserves records in constant size classes, so a
/// record may be longer than `LEN + cap_len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_mono_ns: u64,
    /// `skb->len`: the packet's length as the device saw it.
    pub wire_len: u32,
    /// Bytes of packet that follow this header (`min(wire_len, snaplen)`).
    pub cap_len: u32,
    /// `skb->ifindex`.
    pub ifindex: u32,
    /// `skb->pkt_type` (PACKET_HOST = 0 … PACKET_OUTGOING = 4).
    pub pkt_type: u16,
    /// `skb->protocol`, in network byte order as the kernel keeps it.
    pub protocol_be: u16,
}

impl RecordHeader {
    /// Size on the wire of the ring buffer.
    pub const LEN: usize = size_of::<Self>();
}

/// What userspace tells the program; one entry in the `CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Bytes of each packet to copy, 1..=[`MAX_SNAPLEN`].
    pub snaplen: u32,
    /// Bit set of `FLAG_*`.
    pub flags: u32,
    /// Wake the reader when the bytes waiting in the ring cross a multiple of this
    /// threshold (0: the kernel's default, a wakeup whenever the reader has caught up).
    /// Smaller batches are drained on the reader's poll interval: one wakeup per batch,
    /// not one per packet.
    pub wakeup_bytes: u32,
    /// Nonzero while the reader sleeps without a poll interval, because the ring has been
    /// empty for a while: every record then wakes it, so the first packets after a quiet
    /// spell are not left waiting. Written by userspace through the map's shared mapping
    /// (the field is an aligned `u32`, so neither side can see it torn); read by the
    /// program just before each record is submitted.
    pub reader_asleep: u32,
}

/// The device has no link-layer header: packets start with IPv4/IPv6 (tun, wireguard, ARPHRD_NONE).
pub const FLAG_NO_L2: u32 = 1 << 1;
/// Skip PACKET_OUTGOING copies (loopback shows every packet twice otherwise, as libpcap knows).
pub const FLAG_SKIP_OUTGOING: u32 = 1 << 2;
/// Skip PACKET_OUTGOING copies on the loopback device only (ifindex
/// [`LOOPBACK_IFINDEX`]): for `-i any`, where the other devices' outgoing packets count.
pub const FLAG_SKIP_LO_OUTGOING: u32 = 1 << 3;
/// The loopback device's ifindex, in every network namespace (the kernel's
/// `LOOPBACK_IFINDEX`).
pub const LOOPBACK_IFINDEX: u32 = 1;

/// Per-CPU counters kept by the program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets the filter examined (loopback's outgoing duplicates not included).
    Seen = 0,
    /// Packets that matched the filter (and were handed to the ring buffer).
    Matched = 1,
    /// Matched bytes (wire length).
    MatchedBytes = 2,
    /// Records lost because the ring buffer was full.
    RingFull = 3,
    /// `bpf_skb_load_bytes` failures.
    CopyFailed = 4,
    /// Records whose capture was cut at the snap length.
    Truncated = 5,
    /// TCP fragments other than the first, IPv4 or IPv6: no TCP header, so port tests
    /// are false for them (address tests still apply).
    NonFirstFragment = 6,
}

impl Counter {
    /// Number of counters; the size of the `COUNTERS` map.
    pub const COUNT: u32 = 7;
    /// All counters in index order.
    pub const ALL: [Self; Self::COUNT as usize] = [
        Self::Seen,
        Self::Matched,
        Self::MatchedBytes,
        Self::RingFull,
        Self::CopyFailed,
        Self::Truncated,
        Self::NonFirstFragment,
    ];
}

/// The most primitive tests the kernel evaluates per packet; a filter with more is
/// evaluated in the kernel as a superset and exactly in userspace. Six tests make a truth
/// table of 64 bits, one word.
pub const MAX_TESTS: usize = 6;
/// 64-bit words of one test's port bit set (65536 bits).
pub const PORT_WORDS: u32 = 65536 / 64;
/// Bytes of an address key's data in `ADDRS`: the tag byte, three zero bytes, then 16
/// address bytes at [`ADDR_KEY_AT`] (an IPv4 address takes the first 4, the rest is zero).
/// With the trie key's 4-byte prefix length in front, the key is three aligned 64-bit
/// words and the address the last two. The trie's prefix length counts the tag and the
/// zeros: [`ADDR_KEY_PREFIX`] + network bits.
pub const ADDR_KEY_BYTES: usize = 20;
/// Where the address starts in an address key's data.
pub const ADDR_KEY_AT: usize = 4;
/// Prefix bits of an address key before the address: the tag byte and the three zeros.
pub const ADDR_KEY_PREFIX: u32 = 8 * ADDR_KEY_AT as u32;
/// How many IPv6 extension headers are followed to find TCP.
pub const MAX_IPV6_EXT: usize = 6;

/// The tag byte of an `ADDRS` key: the test's index and the address family, so that the
/// prefixes of different tests and families never match each other's keys.
pub const fn addr_tag(test: usize, v6: bool) -> u8 {
    ((test as u8) << 1) | v6 as u8
}

/// [`Test::kind`]: the family the link layer announced is [`Test::family`] (`ip`, `ip6`).
pub const TEST_FAMILY: u8 = 1;
/// [`Test::kind`]: a port in the test's set in `PORT_BITS` (`port`, `portrange`).
pub const TEST_PORT: u8 = 2;
/// [`Test::kind`]: an address under one of the test's prefixes in `ADDRS` (`host`, `net`).
pub const TEST_ADDR: u8 = 3;
/// [`Test::kind`]: an address of family [`Test::family`] under the one prefix
/// [`Test::net`]/[`Test::mask`] (`host`, `net` of one network): a mask and a compare,
/// no map lookup.
pub const TEST_NET: u8 = 4;

// [`Test::dir`] values are the direction's own truth table: bit `2 * s + d` is the test's
// result when the source gave `s` and the destination `d` (0 or 1). The kernel combines
// the two halves with a shift, without branching on the direction.
/// [`Test::dir`]: the source or the destination (pcap-filter's default, `src or dst`).
pub const DIR_EITHER: u8 = 0b1110;
/// [`Test::dir`]: the source (`src`).
pub const DIR_SRC: u8 = 0b1100;
/// [`Test::dir`]: the destination (`dst`).
pub const DIR_DST: u8 = 0b1010;
/// [`Test::dir`]: both the source and the destination (`src and dst`).
pub const DIR_BOTH: u8 = 0b1000;

/// [`Test::family`] of IPv4.
pub const FAMILY_V4: u8 = 4;
/// [`Test::family`] of IPv6.
pub const FAMILY_V6: u8 = 6;

/// One primitive test of the compiled filter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Test {
    /// `TEST_*`.
    pub kind: u8,
    /// `DIR_*` (a family test uses [`DIR_EITHER`]: both halves are the same answer).
    pub dir: u8,
    /// `FAMILY_*` (family and net tests).
    pub family: u8,
    /// Zero.
    pub reserved: u8,
    /// Zero.
    pub reserved2: u32,
    /// A net test's network: its 16 address bytes (IPv4 in the first 4) in network order,
    /// read as two native-order words, as the address lies in an `ADDRS` key.
    pub net: [u64; 2],
    /// The network's mask, in the same form; `net & !mask` is zero.
    pub mask: [u64; 2],
}

/// The compiled filter: the kernel evaluates tests `0..n_tests` of a TCP packet into the
/// bits of a mask (bit `i` = test `i`), and accepts the packet when bit `mask` of `truth`
/// is set. Any and/or/not over at most [`MAX_TESTS`] tests is exact this way.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterProgram {
    /// Bit `m`: accept when the tests gave mask `m`.
    pub truth: u64,
    /// The tests; only the first `n_tests` are used.
    pub tests: [Test; MAX_TESTS],
    /// 0..=[`MAX_TESTS`].
    pub n_tests: u32,
    /// `NEED_*`: which packet fields the tests read. A packet too short to hold one of
    /// them is not matched.
    pub needs: u32,
}

/// [`FilterProgram::needs`]: the TCP ports (for packets that have them).
pub const NEED_PORTS: u32 = 1 << 0;
/// [`FilterProgram::needs`]: the IP addresses.
pub const NEED_ADDRS: u32 = 1 << 1;

// No implicit padding: the sizes are the sums of the field sizes.
const _: () = assert!(RecordHeader::LEN == 8 + 4 + 4 + 4 + 2 + 2);
const _: () = assert!(size_of::<Config>() == 4 + 4 + 4 + 4);
const _: () = assert!(size_of::<Test>() == 4 + 4 + 16 + 16);
const _: () = assert!(size_of::<FilterProgram>() == 8 + MAX_TESTS * size_of::<Test>() + 4 + 4);
const _: () = assert!(size_of::<FilterProgram>().is_multiple_of(8));
// The mask of MAX_TESTS bits indexes the 64-bit truth table; tags fit a byte.
const _: () = assert!(1 << MAX_TESTS == u64::BITS);
const _: () = assert!(MAX_TESTS * 2 <= 256);

#[cfg(all(feature = "user", not(target_arch = "bpf")))]
mod pod {
    // SAFETY: repr(C), no padding (asserted above), every bit pattern is valid.
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Test {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FilterProgram {}
}
