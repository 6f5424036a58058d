//! The kernel program: an eBPF socket filter that selects TCP packets by port and copies
//! them into a ring buffer. It returns 0, so its socket itself receives nothing.
//!
//! Per packet:
//! 1. skip loopback's outgoing copies (`FLAG_SKIP_OUTGOING`), count the rest (`Seen`);
//! 2. find the network header: Ethernet with up to two 802.1Q/802.1ad tags, or, with
//!    `FLAG_NO_L2`, the packet itself (by `skb->protocol`, else the IP version nibble);
//! 3. IPv4: non-first fragments are counted and not matched; IPv6: up to
//!    [`MAX_IPV6_EXT`] extension headers are skipped;
//! 4. TCP: match if either port is in `PORTS` (or `FLAG_ALL_TCP`);
//! 5. a match reserves a record in `RECORDS` of `RecordHeader::LEN + C` bytes, `C` the
//!    smallest of the constant size classes ([`CLASSES`], 128 … 65536) that holds
//!    `cap_len = min(len, snaplen)` (`bpf_ringbuf_reserve` takes only constant sizes),
//!    writes the [`RecordHeader`] at its start and copies the `cap_len` packet bytes after
//!    it with `bpf_skb_load_bytes`, straight into the ring: one copy per packet, no
//!    staging buffer. Userspace takes the length from `RecordHeader::cap_len`; the rest of
//!    the class is slack. A full ring counts `RingFull`; a failed copy discards the
//!    record and counts `CopyFailed`. The reader is woken each time the waiting bytes
//!    cross a multiple of `Config::wakeup_bytes`; it polls for smaller batches. A reader
//!    that stopped polling because the ring stayed empty (`Config::reader_asleep`) is
//!    woken by every record instead, until it is up again.
//!
//! All packet reads go through `bpf_skb_load_bytes`: socket filters have no direct packet
//! access. `skb->data` starts at the link-layer header for an AF_PACKET SOCK_RAW socket.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        bindings::{
            __sk_buff, BPF_F_MMAPABLE, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
        },
        helpers::generated::{bpf_ktime_get_ns, bpf_skb_load_bytes},
        macros::{map, socket_filter},
        maps::{Array, HashMap, PerCpuArray, RingBuf},
        programs::SkBuffContext,
    };
    use aya_log_ebpf::debug;
    use sniffer_ebpf::{
        Config, Counter, FLAG_ALL_TCP, FLAG_NO_L2, FLAG_SKIP_OUTGOING, MAX_SNAPLEN, RecordHeader,
    };

    /// How many IPv6 extension headers are skipped before giving up on the packet.
    const MAX_IPV6_EXT: usize = 6;
    /// `PACKET_OUTGOING` from `<linux/if_packet.h>`.
    const PACKET_OUTGOING: u32 = 4;
    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86DD;
    const ETH_P_8021Q: u16 = 0x8100;
    const ETH_P_8021AD: u16 = 0x88A8;
    /// The pre-standard QinQ outer tag some switches still send.
    const ETH_P_QINQ1: u16 = 0x9100;
    const IPPROTO_TCP: u8 = 6;

    /// Matched packets; userspace sizes it (`--ring-mib`).
    #[map(name = "RECORDS")]
    static RECORDS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

    /// TCP ports that match, host byte order; the value is unused.
    #[map(name = "PORTS")]
    static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

    /// One [`Config`]; index 0. Mmapable: userspace flips `reader_asleep` in place.
    #[map(name = "CONFIG")]
    static CONFIG: Array<Config> = Array::with_max_entries(1, BPF_F_MMAPABLE);

    /// Per-CPU counters indexed by [`Counter`].
    #[map(name = "COUNTERS")]
    static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

    #[inline(always)]
    fn count(counter: Counter, n: u64) {
        if let Some(p) = COUNTERS.get_ptr_mut(counter as u32) {
            // SAFETY: a valid per-CPU map value; only this CPU touches it, and socket
            // filters do not nest on one CPU.
            unsafe { *p += n };
        }
    }

    /// Reads `T` at `offset` from the packet.
    #[inline(always)]
    fn load<T>(ctx: &SkBuffContext, offset: u32) -> Option<T> {
        ctx.load::<T>(offset as usize).ok()
    }

    #[inline(always)]
    fn load_be16(ctx: &SkBuffContext, offset: u32) -> Option<u16> {
        load::<[u8; 2]>(ctx, offset).map(u16::from_be_bytes)
    }

    #[socket_filter]
    pub fn sniffer(ctx: SkBuffContext) -> i64 {
        let Some(cfg) = CONFIG.get(0).copied() else {
            return 0;
        };
        let skb: *mut __sk_buff = ctx.skb.skb;
        // SAFETY: the context pointer the kernel passed; these fields are readable by
        // socket filters.
        let (pkt_type, protocol_raw, ifindex) =
            unsafe { ((*skb).pkt_type, (*skb).protocol, (*skb).ifindex) };
        if cfg.flags & FLAG_SKIP_OUTGOING != 0 && pkt_type == PACKET_OUTGOING {
            return 0;
        }
        count(Counter::Seen, 1);
        // skb->protocol is kept in network byte order in the low 16 bits.
        let protocol_be = protocol_raw as u16;
        let Some(l4) = find_tcp(&ctx, cfg.flags, u16::from_be(protocol_be)) else {
            return 0;
        };
        let Some(ports) = load::<[u8; 4]>(&ctx, l4) else {
            return 0;
        };
        let sport = u16::from_be_bytes([ports[0], ports[1]]);
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        let matched = cfg.flags & FLAG_ALL_TCP != 0
            // SAFETY: the values are only tested for presence.
            || unsafe { PORTS.get(sport).is_some() || PORTS.get(dport).is_some() };
        if !matched {
            return 0;
        }
        let wire_len = ctx.len();
        count(Counter::Matched, 1);
        count(Counter::MatchedBytes, u64::from(wire_len));
        debug!(&ctx, "match {}:{} len {}", sport, dport, wire_len);
        output(&ctx, &cfg, wire_len, ifindex, pkt_type, protocol_be);
        0
    }

    /// The offset of the TCP header, or `None` if this is not a matchable TCP packet.
    #[inline(always)]
    fn find_tcp(ctx: &SkBuffContext, flags: u32, skb_protocol: u16) -> Option<u32> {
        let (ethertype, l3) = if flags & FLAG_NO_L2 != 0 {
            let ethertype = match skb_protocol {
                ETH_P_IP | ETH_P_IPV6 => skb_protocol,
                _ => match load::<u8>(ctx, 0)? >> 4 {
                    4 => ETH_P_IP,
                    6 => ETH_P_IPV6,
                    _ => return None,
                },
            };
            (ethertype, 0)
        } else {
            let mut ethertype = load_be16(ctx, 12)?;
            let mut l3 = 14;
            // Up to two VLAN tags (802.1Q, QinQ). Tags the NIC stripped into skb->vlan_tci
            // are not in the data and need no skipping.
            if matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1) {
                ethertype = load_be16(ctx, l3 + 2)?;
                l3 += 4;
                if matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1) {
                    ethertype = load_be16(ctx, l3 + 2)?;
                    l3 += 4;
                }
            }
            (ethertype, l3)
        };
        match ethertype {
            ETH_P_IP => ipv4_tcp(ctx, l3),
            ETH_P_IPV6 => ipv6_tcp(ctx, l3),
            _ => None,
        }
    }

    #[inline(always)]
    fn ipv4_tcp(ctx: &SkBuffContext, l3: u32) -> Option<u32> {
        // version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol.
        let h = load::<[u8; 10]>(ctx, l3)?;
        if h[0] >> 4 != 4 {
            return None;
        }
        let ihl = u32::from(h[0] & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        if h[9] != IPPROTO_TCP {
            return None;
        }
        let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
        if frag_offset != 0 {
            count(Counter::NonFirstFragment, 1);
            return None;
        }
        Some(l3 + ihl)
    }

    #[inline(always)]
    fn ipv6_tcp(ctx: &SkBuffContext, l3: u32) -> Option<u32> {
        let first = load::<u8>(ctx, l3)?;
        if first >> 4 != 6 {
            return None;
        }
        let mut next = load::<u8>(ctx, l3 + 6)?;
        let mut off = l3 + 40;
        for _ in 0..MAX_IPV6_EXT {
            match next {
                IPPROTO_TCP => return Some(off),
                // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
                0 | 43 | 60 => {
                    let h = load::<[u8; 2]>(ctx, off)?;
                    next = h[0];
                    off += (u32::from(h[1]) + 1) * 8;
                }
                // Fragment: 8 bytes; only the first fragment has the TCP header.
                44 => {
                    let h = load::<[u8; 4]>(ctx, off)?;
                    if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
                        count(Counter::NonFirstFragment, 1);
                        return None;
                    }
                    next = h[0];
                    off += 8;
                }
                // Authentication header: (len + 2) * 4 bytes.
                51 => {
                    let h = load::<[u8; 2]>(ctx, off)?;
                    next = h[0];
                    off += (u32::from(h[1]) + 2) * 4;
                }
                _ => return None,
            }
        }
        (next == IPPROTO_TCP).then_some(off)
    }

    /// Packet-byte capacities of the record size classes, ascending. `bpf_ringbuf_reserve`
    /// takes only a constant size, so a record reserves `RecordHeader::LEN + C` for the
    /// smallest class `C >= cap_len`, and userspace reads the real length from the header.
    /// Steps of at most 1.5x (1536 holds an MTU-sized Ethernet frame, 1514 bytes), and of
    /// 8 KiB above 32 KiB where TSO/GSO skbs land: the ring wastes at most a third.
    const CLASSES: [u32; 18] = [
        128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 40960,
        49152, 57344, 65536,
    ];
    const _: () = assert!(CLASSES[CLASSES.len() - 1] == MAX_SNAPLEN);

    /// Writes the record for a matched packet straight into the ring: one copy.
    #[inline(always)]
    fn output(
        ctx: &SkBuffContext,
        cfg: &Config,
        wire_len: u32,
        ifindex: u32,
        pkt_type: u32,
        protocol_be: u16,
    ) {
        let mut cap_len = wire_len;
        if cap_len > cfg.snaplen {
            cap_len = cfg.snaplen;
            count(Counter::Truncated, 1);
        }
        // The bound the verifier needs to see on the copy's size: 1..=class, proved per
        // class by this check and the comparisons of the ladder below.
        if cap_len == 0 || cap_len > MAX_SNAPLEN {
            count(Counter::CopyFailed, 1);
            return;
        }
        let header = RecordHeader {
            // SAFETY: a helper without preconditions.
            ts_mono_ns: unsafe { bpf_ktime_get_ns() },
            wire_len,
            cap_len,
            ifindex,
            pkt_type: pkt_type as u16,
            protocol_be,
        };
        // A ladder of constant sizes (unrolled: each class gets its own reserve call with a
        // constant size, which is what the verifier accepts).
        macro_rules! ladder {
            ($($i:literal)*) => {
                $(
                    if cap_len <= CLASSES[$i] {
                        record::<{ CLASSES[$i] }>(ctx, cfg, &header);
                        return;
                    }
                )*
            };
        }
        ladder!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17);
    }

    /// Reserves a record of `RecordHeader::LEN + CAP` bytes, writes the header and
    /// `header.cap_len` (1..=CAP) packet bytes into it, and submits it.
    #[inline(always)]
    fn record<const CAP: u32>(ctx: &SkBuffContext, cfg: &Config, header: &RecordHeader) {
        let size = RecordHeader::LEN + CAP as usize;
        // Wake the reader once per batch: only the record that makes the waiting data
        // cross a multiple of `wakeup_bytes` wakes it (each wakeup is an irq_work, i.e. a
        // self-IPI); smaller batches are drained on the reader's poll interval. A reader
        // that is awake drains until the ring is empty before it sleeps, so it misses
        // nothing. Every multiple, not only the first: two CPUs that query before either
        // reserves can step over a crossing together, and a reader that is woken but not
        // yet running is woken again while the ring fills.
        let wakeup = if cfg.wakeup_bytes == 0 {
            0
        } else {
            let waiting = RECORDS.query(u64::from(BPF_RB_AVAIL_DATA));
            let threshold = u64::from(cfg.wakeup_bytes);
            if waiting / threshold != (waiting + size as u64) / threshold {
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            }
        };
        let Some(mut entry) = RECORDS.reserve_bytes(size, 0) else {
            count(Counter::RingFull, 1);
            return;
        };
        let base = entry.as_mut_ptr();
        // SAFETY: the reservation is `size` >= RecordHeader::LEN bytes (write_unaligned:
        // ring records are 8-aligned anyway, but say nothing about it).
        unsafe { base.cast::<RecordHeader>().write_unaligned(*header) };
        // SAFETY: 1 <= cap_len <= CAP (the caller's ladder), so the bytes fit after the
        // header in the reservation.
        let ret = unsafe {
            bpf_skb_load_bytes(
                ctx.skb.skb.cast(),
                0,
                base.add(RecordHeader::LEN).cast(),
                header.cap_len,
            )
        };
        if ret != 0 {
            entry.discard(u64::from(BPF_RB_NO_WAKEUP));
            count(Counter::CopyFailed, 1);
            return;
        }
        // A sleeping reader has no poll interval left to pick up a small batch: wake it.
        let wakeup = if reader_asleep() {
            BPF_RB_FORCE_WAKEUP
        } else {
            wakeup
        };
        entry.submit(u64::from(wakeup));
    }

    /// Whether the reader sleeps until a record wakes it, read fresh (not from the copy
    /// taken when the program started) just before the record is submitted, so that a
    /// reader going to sleep and a record going in can only cross within a few
    /// instructions; the reader waits one more poll interval after setting the flag to
    /// cover that.
    #[inline(always)]
    fn reader_asleep() -> bool {
        match CONFIG.get_ptr(0) {
            // SAFETY: a valid map value; the field is an aligned u32, which userspace
            // writes whole through its mapping.
            Some(p) => (unsafe { core::ptr::read_volatile(&raw const (*p).reader_asleep) }) != 0,
            None => false,
        }
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

/// On the host this binary is an empty stub, so `cargo build --workspace` and clippy work;
/// the real program is built for the bpf target by `sniffer/build.rs`.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
