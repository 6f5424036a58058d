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
    /// `HashMap<u16, u8>`: the TCP ports that match (host byte order keys).
    pub const PORTS: &str = "PORTS";
    /// `Array<Config>` with one entry, created `BPF_F_MMAPABLE`: userspace writes
    /// [`Config::reader_asleep`](super::Config::reader_asleep) through a shared mapping,
    /// which needs no `bpf()` call (and so no capability) after the privilege drop.
    pub const CONFIG: &str = "CONFIG";
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

/// Match every TCP packet, ignoring `PORTS`.
pub const FLAG_ALL_TCP: u32 = 1 << 0;
/// The device has no link-layer header: packets start with IPv4/IPv6 (tun, wireguard, ARPHRD_NONE).
pub const FLAG_NO_L2: u32 = 1 << 1;
/// Skip PACKET_OUTGOING copies (loopback shows every packet twice otherwise, as libpcap knows).
pub const FLAG_SKIP_OUTGOING: u32 = 1 << 2;

/// Per-CPU counters kept by the program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets the filter examined (loopback's outgoing duplicates not included).
    Seen = 0,
    /// Packets that matched the port set.
    Matched = 1,
    /// Matched bytes (wire length).
    MatchedBytes = 2,
    /// Records lost because the ring buffer was full.
    RingFull = 3,
    /// `bpf_skb_load_bytes` failures.
    CopyFailed = 4,
    /// Records whose capture was cut at the snap length.
    Truncated = 5,
    /// IPv4 fragments other than the first (no TCP header to match on).
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

// No implicit padding: the sizes are the sums of the field sizes.
const _: () = assert!(RecordHeader::LEN == 8 + 4 + 4 + 4 + 2 + 2);
const _: () = assert!(size_of::<Config>() == 4 + 4 + 4 + 4);

#[cfg(all(feature = "user", not(target_arch = "bpf")))]
mod pod {
    // SAFETY: repr(C), no padding (asserted above), every bit pattern is valid.
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
}
