//! The kernel program: an eBPF socket filter that selects TCP packets with the compiled
//! filter (pcap-filter's `tcp and (EXPR)`) and copies them into a ring buffer. It returns
//! 0, so its socket itself receives nothing.
//!
//! Per packet:
//! 1. skip loopback's outgoing copies (`FLAG_SKIP_OUTGOING` on `lo`; with `-i any`,
//!    `FLAG_SKIP_LO_OUTGOING`, the outgoing copies of packets on `lo` only), count the rest
//!    (`Seen`);
//! 2. find the network header: Ethernet with up to two 802.1Q/802.1ad tags and a PPPoE
//!    session header, or, with `FLAG_NO_L2`, the packet itself (by `skb->protocol`, else
//!    the IP version nibble);
//! 3. decide that it is TCP as pcap-filter's `tcp` does: IPv4 protocol 6 (non-first
//!    fragments included, counted, without ports); IPv6 next header 6 after up to
//!    [`MAX_IPV6_EXT`] extension headers (a non-first fragment is TCP without ports);
//! 4. evaluate the filter's tests (`FILTER`): each gives one bit of a mask; ports are
//!    looked up in the test's bit set in `PORT_BITS`, addresses in the `ADDRS` trie; the
//!    packet matches if bit `mask` of the truth table is set;
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
//! The same decisions are made in userspace by `sniffer::filter` for capture files (and
//! for live packets when the filter has more tests than the kernel takes): the two must
//! agree, and the tests check that they do.
//!
//! All packet reads go through `bpf_skb_load_bytes`: socket filters have no direct packet
//! access. `skb->data` starts at the link-layer header for an AF_PACKET SOCK_RAW socket,
//! and at the network header for the SOCK_DGRAM socket of `-i any` (`FLAG_NO_L2`).
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
        maps::{Array, LpmTrie, PerCpuArray, RingBuf, lpm_trie::Key},
        programs::SkBuffContext,
    };
    use aya_log_ebpf::debug;
    use sniffer_ebpf::{
        ADDR_KEY_AT, ADDR_KEY_BYTES, ADDR_KEY_PREFIX, Config, Counter, FAMILY_V4, FAMILY_V6,
        FLAG_NO_L2, FLAG_SKIP_LO_OUTGOING, FLAG_SKIP_OUTGOING, FilterProgram, LOOPBACK_IFINDEX,
        MAX_IPV6_EXT, MAX_SNAPLEN, MAX_TESTS, NEED_ADDRS, NEED_PORTS, PORT_WORDS, RecordHeader,
        TEST_ADDR, TEST_FAMILY, TEST_NET, TEST_PORT, Test, addr_tag,
    };

    /// `PACKET_OUTGOING` from `<linux/if_packet.h>`.
    const PACKET_OUTGOING: u32 = 4;
    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86DD;
    const ETH_P_8021Q: u16 = 0x8100;
    const ETH_P_8021AD: u16 = 0x88A8;
    /// The pre-standard QinQ outer tag some switches still send.
    const ETH_P_QINQ1: u16 = 0x9100;
    const ETH_P_PPP_SES: u16 = 0x8864;
    const PPP_IP: u16 = 0x0021;
    const PPP_IPV6: u16 = 0x0057;
    const IPPROTO_TCP: u8 = 6;

    /// Matched packets; userspace sizes it (`--ring-mib`).
    #[map(name = "RECORDS")]
    static RECORDS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

    /// One [`Config`]; index 0. Mmapable: userspace flips `reader_asleep` in place.
    #[map(name = "CONFIG")]
    static CONFIG: Array<Config> = Array::with_max_entries(1, BPF_F_MMAPABLE);

    /// One [`FilterProgram`]; index 0.
    #[map(name = "FILTER")]
    static FILTER: Array<FilterProgram> = Array::with_max_entries(1, 0);

    /// The port bit sets, [`PORT_WORDS`] words per test.
    #[map(name = "PORT_BITS")]
    static PORT_BITS: Array<u64> = Array::with_max_entries(MAX_TESTS as u32 * PORT_WORDS, 0);

    /// The address prefixes, keyed by tag byte then address; userspace sizes it.
    #[map(name = "ADDRS")]
    static ADDRS: LpmTrie<[u8; ADDR_KEY_BYTES], u8> = LpmTrie::with_max_entries(1, 0);

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

    /// A TCP packet, as far as the filter needs to know it.
    struct Tcp {
        v6: bool,
        /// Offset of the IP header.
        l3: u32,
        /// Offset of the TCP header; `None` for a non-first fragment, which has no ports.
        l4: Option<u32>,
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
        if pkt_type == PACKET_OUTGOING
            && (cfg.flags & FLAG_SKIP_OUTGOING != 0
                || (cfg.flags & FLAG_SKIP_LO_OUTGOING != 0 && ifindex == LOOPBACK_IFINDEX))
        {
            return 0;
        }
        count(Counter::Seen, 1);
        // skb->protocol is kept in network byte order in the low 16 bits.
        let protocol_be = protocol_raw as u16;
        let Some(tcp) = find_tcp(&ctx, cfg.flags, u16::from_be(protocol_be)) else {
            return 0;
        };
        let Some(filter) = FILTER.get(0) else {
            return 0;
        };
        if !accept(&ctx, filter, &tcp) {
            return 0;
        }
        let wire_len = ctx.len();
        count(Counter::Matched, 1);
        count(Counter::MatchedBytes, u64::from(wire_len));
        output(&ctx, &cfg, wire_len, ifindex, pkt_type, protocol_be);
        // Last: the log record's pointer must not share a stack slot with a later
        // counter's key, which the verifier refuses without CAP_PERFMON.
        debug!(&ctx, "match len {}", wire_len);
        0
    }

    /// Evaluates the filter's tests into a mask and looks it up in the truth table. A
    /// packet too short for a field the tests read is not accepted.
    ///
    /// Verifier-friendly: the [`MAX_TESTS`] tests are unrolled, and the mask is only
    /// ever combined arithmetically (each test's bit from its two halves by a shift of
    /// the direction's table, the mask into the truth table by a shift), never branched
    /// on or used as an offset, so the verifier keeps it imprecise and the states of the
    /// paths through each test prune into one.
    #[inline(always)]
    fn accept(ctx: &SkBuffContext, filter: &FilterProgram, tcp: &Tcp) -> bool {
        // The ports; no port test matches without them (all values initialised: the
        // verifier refuses to read a register an undefined Option payload left unset).
        let (mut has_ports, mut sport, mut dport) = (false, 0_u16, 0_u16);
        if filter.needs & NEED_PORTS != 0
            && let Some(l4) = tcp.l4
        {
            let Some(p) = load::<[u8; 4]>(ctx, l4) else {
                return false;
            };
            has_ports = true;
            sport = u16::from_be_bytes([p[0], p[1]]);
            dport = u16::from_be_bytes([p[2], p[3]]);
        }
        let prefix_len = ADDR_KEY_PREFIX + if tcp.v6 { 128 } else { 32 };
        let mut src = AddrKey { words: [1; 3] };
        let mut dst = AddrKey { words: [1; 3] };
        src.init(prefix_len);
        dst.init(prefix_len);
        if filter.needs & NEED_ADDRS != 0 {
            let (at, len) = if tcp.v6 { (8, 16) } else { (12, 4) };
            if !src.load(ctx, tcp.l3 + at, len) || !dst.load(ctx, tcp.l3 + at + len, len) {
                return false;
            }
        }
        let family = if tcp.v6 { FAMILY_V6 } else { FAMILY_V4 };
        let mut mask = 0_u64;
        // Unrolled, so that each test is read at a constant offset in the map value: a
        // loop's variable offset is pointer arithmetic whose Spectre masking differs from
        // one iteration to the next, which the verifier refuses without CAP_PERFMON.
        macro_rules! tests {
            ($($i:literal)*) => {$(
                if $i < filter.n_tests {
                    let test = &filter.tests[$i];
                    let (s, d) = match test.kind {
                        TEST_FAMILY => {
                            let b = u64::from(test.family == family);
                            (b, b)
                        }
                        TEST_PORT if has_ports => (port_bit($i, sport), port_bit($i, dport)),
                        TEST_ADDR => {
                            let tag = addr_tag($i, tcp.v6);
                            (src.lookup(tag), dst.lookup(tag))
                        }
                        TEST_NET => {
                            let f = u64::from(test.family == family);
                            (f & src.within(test), f & dst.within(test))
                        }
                        _ => (0, 0),
                    };
                    let hit = (u64::from(test.dir) >> ((s << 1 | d) & 3)) & 1;
                    mask |= hit << $i;
                }
            )*};
        }
        const _: () = assert!(MAX_TESTS == 6, "one line of `tests!` per test");
        tests!(0 1 2 3 4 5);
        (filter.truth >> (mask & 63)) & 1 != 0
    }

    /// 1 if `port` is in test `test`'s port set, else 0.
    #[inline(always)]
    fn port_bit(test: usize, port: u16) -> u64 {
        let index = test as u32 * PORT_WORDS + u32::from(port >> 6);
        PORT_BITS
            .get(index)
            .map_or(0, |word| (*word >> (port & 63)) & 1)
    }

    /// An `ADDRS` lookup key on the stack, in `Key<[u8; ADDR_KEY_BYTES]>`'s layout: the
    /// prefix length (4 bytes, native order), the tag byte, three zeros, the address (16
    /// bytes: words 1 and 2). Kept as three words, built with word stores: zeroing a byte
    /// array becomes a call to a `memset` loop, whose pointer arithmetic the verifier
    /// refuses without CAP_PERFMON.
    struct AddrKey {
        words: [u64; 3],
    }

    const _: () = assert!(size_of::<Key<[u8; ADDR_KEY_BYTES]>>() == 4 + ADDR_KEY_BYTES);
    const _: () = assert!(size_of::<AddrKey>() == 4 + ADDR_KEY_BYTES);
    const _: () = assert!(4 + ADDR_KEY_AT == 8);

    impl AddrKey {
        /// Byte offset of the tag.
        const TAG: usize = 4;
        /// Byte offset of the address: the start of word 1.
        const ADDR: usize = Self::TAG + ADDR_KEY_AT;

        /// A key for `prefix_len` bits, the tag and address zero. Built in place: copying
        /// it would be a `memcpy`/`memset` call again.
        #[inline(always)]
        fn init(&mut self, prefix_len: u32) {
            // The prefix length in the first 4 bytes in native order, the rest zero.
            let first = if cfg!(target_endian = "little") {
                u64::from(prefix_len)
            } else {
                u64::from(prefix_len) << 32
            };
            // Volatile: LLVM would merge plain zero stores into a `memset` call.
            // SAFETY: the three words are inside `self`.
            unsafe {
                core::ptr::write_volatile(&raw mut self.words[0], first);
                core::ptr::write_volatile(&raw mut self.words[1], 0);
                core::ptr::write_volatile(&raw mut self.words[2], 0);
            }
        }

        fn bytes(&mut self) -> *mut u8 {
            self.words.as_mut_ptr().cast()
        }

        /// Loads `len` (4 or 16) address bytes from the packet at `offset` into the key's
        /// address.
        #[inline(always)]
        fn load(&mut self, ctx: &SkBuffContext, offset: u32, len: u32) -> bool {
            // SAFETY: the 16 address bytes are inside `words`, and `len` <= 16.
            unsafe {
                bpf_skb_load_bytes(
                    ctx.skb.skb.cast(),
                    offset,
                    self.bytes().add(Self::ADDR).cast(),
                    len,
                ) == 0
            }
        }

        /// 1 if the address is under one of the prefixes tagged `tag`, else 0 (the trie's
        /// values are 1).
        #[inline(always)]
        fn lookup(&mut self, tag: u8) -> u64 {
            // SAFETY: the tag byte is inside `words`; a `Key<[u8; ADDR_KEY_BYTES]>` (packed,
            // alignment 1) is a prefix of `words`' bytes.
            let key = unsafe {
                *self.bytes().add(Self::TAG) = tag;
                &*self.bytes().cast::<Key<[u8; ADDR_KEY_BYTES]>>()
            };
            ADDRS.get(key).map_or(0, |v| u64::from(*v) & 1)
        }

        /// 1 if the address is under net test `t`'s network, else 0 (the family is the
        /// caller's to check).
        #[inline(always)]
        fn within(&self, t: &Test) -> u64 {
            u64::from(
                self.words[1] & t.mask[0] == t.net[0] && self.words[2] & t.mask[1] == t.net[1],
            )
        }
    }

    /// The packet as TCP, or `None` if it is not TCP (for pcap-filter's `tcp`).
    #[inline(always)]
    fn find_tcp(ctx: &SkBuffContext, flags: u32, skb_protocol: u16) -> Option<Tcp> {
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
            // A PPPoE session: 6 bytes of PPPoE header, then the 2-byte PPP protocol.
            if ethertype == ETH_P_PPP_SES {
                ethertype = match load_be16(ctx, l3 + 6)? {
                    PPP_IP => ETH_P_IP,
                    PPP_IPV6 => ETH_P_IPV6,
                    _ => return None,
                };
                l3 += 8;
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
    fn ipv4_tcp(ctx: &SkBuffContext, l3: u32) -> Option<Tcp> {
        // version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol. As in
        // pcap-filter, the protocol decides; the version and IHL are taken as they are.
        let h = load::<[u8; 10]>(ctx, l3)?;
        if h[9] != IPPROTO_TCP {
            return None;
        }
        let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
        let l4 = if frag_offset == 0 {
            Some(l3 + u32::from(h[0] & 0x0f) * 4)
        } else {
            count(Counter::NonFirstFragment, 1);
            None
        };
        Some(Tcp { v6: false, l3, l4 })
    }

    #[inline(always)]
    fn ipv6_tcp(ctx: &SkBuffContext, l3: u32) -> Option<Tcp> {
        let mut next = load::<u8>(ctx, l3 + 6)?;
        let mut off = l3 + 40;
        for _ in 0..MAX_IPV6_EXT {
            match next {
                IPPROTO_TCP => {
                    return Some(Tcp {
                        v6: true,
                        l3,
                        l4: Some(off),
                    });
                }
                // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
                0 | 43 | 60 => {
                    let h = load::<[u8; 2]>(ctx, off)?;
                    next = h[0];
                    off += (u32::from(h[1]) + 1) * 8;
                }
                // Fragment: 8 bytes; only the first fragment has the TCP header.
                44 => {
                    let h = load::<[u8; 4]>(ctx, off)?;
                    next = h[0];
                    if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
                        if next != IPPROTO_TCP {
                            return None;
                        }
                        count(Counter::NonFirstFragment, 1);
                        return Some(Tcp {
                            v6: true,
                            l3,
                            l4: None,
                        });
                    }
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
        (next == IPPROTO_TCP).then_some(Tcp {
            v6: true,
            l3,
            l4: Some(off),
        })
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
