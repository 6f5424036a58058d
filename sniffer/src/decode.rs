//! Frames to TCP segments: link layer → IP (with defragmentation) → TCP.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
};

use etherparse::{LaxSlicedPacket, TcpSlice, defrag::IpDefragPayloadVec, defrag::IpDefragPool};

use crate::{
    capture::{Frame, Timestamp},
    tcp::SeqNum,
};

/// TCP header flags, as the bits of byte 13 of the header.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    /// Whether all bits of `flag` are set.
    pub const fn has(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

impl std::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (i, name) in names.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// One TCP segment, borrowed from the frame (or from the defragmenter's buffer).
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (or of the SYN/FIN).
    pub seq: SeqNum,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: SeqNum,
    /// Header flags.
    pub flags: TcpFlags,
    /// Receive window (unscaled).
    pub window: u16,
    /// Urgent pointer (meaningful when URG is set).
    pub urgent: u16,
    /// The captured payload. Ethernet padding is never part of it: its length comes from
    /// the IP header.
    pub payload: &'a [u8],
    /// The payload's length on the wire. Larger than `payload.len()` when the frame was cut
    /// by the snap length: the missing tail is unknown, never data.
    pub payload_len: u32,
}

impl Segment<'_> {
    /// The capture cut this segment's payload short.
    pub const fn is_truncated(&self) -> bool {
        (self.payload.len() as u64) < self.payload_len as u64
    }
}

/// What the decoder counted. Nothing it drops goes uncounted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Frames seen.
    pub frames: u64,
    /// TCP segments delivered (reassembled datagrams count once).
    pub tcp_segments: u64,
    /// Captured TCP payload bytes delivered.
    pub tcp_payload_bytes: u64,
    /// Delivered segments whose payload the capture cut short (`payload_len > payload.len()`).
    pub truncated_segments: u64,
    /// IP packets that are not TCP (UDP, ICMP, ...).
    pub non_tcp: u64,
    /// Frames that carry no IP: ARP, LLDP, 802.11 management and control, other EtherTypes.
    pub not_ip: u64,
    /// Encrypted 802.11 data frames (their payload cannot be read).
    pub wlan_protected: u64,
    /// Frames of link types this decoder does not read, by LINKTYPE number.
    pub unsupported_link_types: BTreeMap<u32, u64>,
    /// Frames cut by the snap length inside their headers: nothing usable, dropped.
    pub truncated_headers: u64,
    /// Frames whose headers make no sense, by reason.
    pub malformed: BTreeMap<&'static str, u64>,
    /// IP fragments seen (of any protocol).
    pub ip_fragments: u64,
    /// TCP datagrams rebuilt from fragments.
    pub reassembled_datagrams: u64,
    /// Partial datagrams dropped because no fragment came for [`DEFRAG_TIMEOUT_NS`].
    pub defrag_timeouts: u64,
    /// Partial datagrams dropped to stay within [`DEFRAG_MAX_DATAGRAMS`].
    pub defrag_overflows: u64,
    /// Fragments the defragmenter refused (overlapping ends, bad alignment, too big) or
    /// that were cut by the snap length.
    pub defrag_errors: u64,
    /// Partial datagrams held right now (at the end: fragments whose datagram never
    /// completed).
    pub defrag_in_flight: u64,
}

/// Partial IP datagrams are dropped after this long without a new fragment (capture time;
/// Linux's `ipfrag_time` default).
pub const DEFRAG_TIMEOUT_NS: u64 = 30_000_000_000;
/// At most this many partial datagrams are held (each at most 64 KiB): 16 MiB.
pub const DEFRAG_MAX_DATAGRAMS: usize = 256;

/// Frames to TCP segments: one decoder per pipeline.
///
/// Invariants: `defrag.inflight` mirrors exactly the partial datagrams held by
/// `defrag.pool` (same keys, same latest `(time, serial)` stamps), so its length bounds the
/// pool's memory; `defrag.out` holds the last reassembled datagram, which the returned
/// segment may borrow until the next call.
pub struct Decoder {
    stats: DecodeStats,
    defrag: Defrag,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("stats", &self.stats)
            .field("fragments_in_flight", &self.defrag.inflight.len())
            .finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with zeroed counters.
    pub fn new() -> Self {
        Self {
            stats: DecodeStats::default(),
            defrag: Defrag {
                pool: IpDefragPool::new(),
                inflight: HashMap::new(),
                serial: 0,
                out: None,
                last_sweep: 0,
            },
        }
    }

    /// What was counted so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The TCP segment in `frame`, or `None` (counted in [`DecodeStats`]) for anything else:
    /// other protocols, unsupported link types, damaged or truncated headers, and fragments
    /// of datagrams not yet complete.
    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Option<Segment<'a>> {
        self.stats.frames += 1;
        if !self.defrag.inflight.is_empty() {
            self.defrag.expire(frame.ts.0, &mut self.stats);
        }
        let ip = match link::network(frame.link_type, frame.data) {
            Ok(ip) => ip,
            Err(skip) => {
                self.skipped(skip, frame);
                return None;
            }
        };
        self.ip(frame, ip)
    }

    fn skipped(&mut self, skip: link::Skip, frame: &Frame<'_>) {
        use link::Skip;
        match skip {
            Skip::NotIp => self.stats.not_ip += 1,
            Skip::Protected => self.stats.wlan_protected += 1,
            Skip::Unsupported(n) => {
                let count = self.stats.unsupported_link_types.entry(n).or_insert(0);
                if *count == 0 {
                    log::warn!(
                        "link type {n} is not supported: its packets are skipped (and counted)"
                    );
                }
                *count += 1;
            }
            Skip::Short(what) => self.short(frame, what),
            Skip::Malformed(why) => self.malformed(why),
        }
    }

    /// Headers end past the captured bytes: truncation if the capture cut the frame,
    /// damage otherwise.
    fn short(&mut self, frame: &Frame<'_>, what: &'static str) {
        if frame.is_truncated() {
            self.stats.truncated_headers += 1;
        } else {
            self.malformed(what);
        }
    }

    fn malformed(&mut self, why: &'static str) {
        *self.stats.malformed.entry(why).or_insert(0) += 1;
    }

    fn ip<'a>(&'a mut self, frame: &Frame<'a>, ip: &'a [u8]) -> Option<Segment<'a>> {
        use etherparse::{LaxNetSlice, TransportSlice, err::ip::LaxHeaderSliceError};
        let sliced = match LaxSlicedPacket::from_ip(ip) {
            Ok(s) => s,
            Err(LaxHeaderSliceError::Len(_)) => {
                self.short(frame, "IP header longer than the frame");
                return None;
            }
            Err(LaxHeaderSliceError::Content(_)) => {
                self.malformed("invalid IP header");
                return None;
            }
        };
        let (src, dst, wire_len, payload) = match &sliced.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                let h = v4.header();
                let total = usize::from(h.total_len());
                let wire = if total >= h.slice().len() {
                    total
                } else {
                    ip.len()
                };
                (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                    wire,
                    v4.payload(),
                )
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                let h = v6.header();
                let declared = usize::from(h.payload_length());
                let wire = if declared == 0 {
                    ip.len()
                } else {
                    40 + declared
                };
                (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                    wire,
                    v6.payload(),
                )
            }
            _ => {
                self.stats.not_ip += 1;
                return None;
            }
        };
        if payload.fragmented {
            self.stats.ip_fragments += 1;
            if payload.ip_number != etherparse::IpNumber::TCP {
                self.stats.non_tcp += 1;
                return None;
            }
            if payload.incomplete {
                self.stats.defrag_errors += 1;
                return None;
            }
            return self.defragment(frame, ip, src, dst);
        }
        if payload.ip_number != etherparse::IpNumber::TCP {
            self.stats.non_tcp += 1;
            return None;
        }
        let tcp = match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => tcp,
            _ => {
                // The TCP header did not fit in the captured bytes, or is invalid.
                match sliced.stop_err {
                    Some((etherparse::err::packet::SliceError::Len(_), _)) => {
                        self.short(frame, "TCP header longer than the frame");
                    }
                    _ => self.malformed("invalid TCP header or IPv6 extension header"),
                }
                return None;
            }
        };
        let data = tcp.payload();
        let offset = data.as_ptr() as usize - ip.as_ptr() as usize;
        let payload_len = wire_len.saturating_sub(offset).max(data.len());
        Some(deliver(
            &mut self.stats,
            frame.ts,
            src,
            dst,
            tcp,
            payload_len,
        ))
    }

    fn defragment<'a>(
        &'a mut self,
        frame: &Frame<'a>,
        ip: &'a [u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Option<Segment<'a>> {
        let Ok(sliced) = etherparse::SlicedPacket::from_ip(ip) else {
            self.malformed("invalid IP fragment");
            return None;
        };
        let id = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(v4)) => u32::from(v4.header().identification()),
            Some(etherparse::NetSlice::Ipv6(v6)) => v6
                .extensions()
                .clone()
                .into_iter()
                .find_map(|e| match e {
                    etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f.identification()),
                    _ => None,
                })
                .unwrap_or(0),
            _ => return None,
        };
        let key = FragKey { src, dst, id };
        let d = &mut self.defrag;
        if !d.inflight.contains_key(&key) && d.inflight.len() >= DEFRAG_MAX_DATAGRAMS {
            d.evict_oldest();
            self.stats.defrag_overflows += 1;
            self.stats.defrag_in_flight = d.inflight.len() as u64;
        }
        if let Some(done) = d.out.take() {
            d.pool.return_buf(done);
        }
        d.serial += 1;
        let stamp = (frame.ts.0, d.serial);
        match d.pool.process_sliced_packet(&sliced, stamp, ()) {
            Ok(None) => {
                d.inflight.insert(key, stamp);
                self.stats.defrag_in_flight = d.inflight.len() as u64;
                None
            }
            Ok(Some(datagram)) => {
                d.inflight.remove(&key);
                self.stats.defrag_in_flight = d.inflight.len() as u64;
                self.stats.reassembled_datagrams += 1;
                let d = &mut self.defrag;
                let datagram = d.out.insert(datagram);
                match TcpSlice::from_slice(&datagram.payload) {
                    Ok(tcp) => {
                        let len = tcp.payload().len();
                        Some(deliver(&mut self.stats, frame.ts, src, dst, &tcp, len))
                    }
                    Err(_) => {
                        *self
                            .stats
                            .malformed
                            .entry("invalid TCP header in reassembled datagram")
                            .or_insert(0) += 1;
                        None
                    }
                }
            }
            Err(_) => {
                self.stats.defrag_errors += 1;
                None
            }
        }
    }
}

/// Count and build a delivered segment.
fn deliver<'a>(
    stats: &mut DecodeStats,
    ts: Timestamp,
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpSlice<'a>,
    payload_len: usize,
) -> Segment<'a> {
    let payload = tcp.payload();
    stats.tcp_segments += 1;
    stats.tcp_payload_bytes += payload.len() as u64;
    if payload_len > payload.len() {
        stats.truncated_segments += 1;
    }
    Segment {
        ts,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: SeqNum(tcp.sequence_number()),
        ack: SeqNum(tcp.acknowledgment_number()),
        flags: TcpFlags(tcp.header_slice()[13]),
        window: tcp.window_size(),
        urgent: tcp.urgent_pointer(),
        payload,
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
    }
}

/// One partial datagram's identity (the pool's key, minus what is always empty here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
}

/// etherparse's defragmenter, bounded in time and count.
struct Defrag {
    /// Stamps are (capture time in ns, serial of the latest fragment).
    pool: IpDefragPool<(u64, u64), ()>,
    inflight: HashMap<FragKey, (u64, u64)>,
    serial: u64,
    out: Option<IpDefragPayloadVec>,
    last_sweep: u64,
}

impl Defrag {
    /// Drop partial datagrams idle for [`DEFRAG_TIMEOUT_NS`] (checked once a second).
    fn expire(&mut self, now: u64, stats: &mut DecodeStats) {
        if now < self.last_sweep.saturating_add(1_000_000_000) {
            return;
        }
        self.last_sweep = now;
        let cutoff = now.saturating_sub(DEFRAG_TIMEOUT_NS);
        let before = self.inflight.len();
        self.inflight.retain(|_, &mut (t, _)| t >= cutoff);
        let expired = before - self.inflight.len();
        if expired > 0 {
            self.pool.retain(|&(t, _)| t >= cutoff);
            stats.defrag_timeouts += expired as u64;
            stats.defrag_in_flight = self.inflight.len() as u64;
        }
    }

    /// Make room: drop the partial datagram that waited longest.
    fn evict_oldest(&mut self) {
        let Some((&key, &(_, serial))) = self.inflight.iter().min_by_key(|(_, stamp)| **stamp)
        else {
            return;
        };
        self.inflight.remove(&key);
        self.pool.retain(|&(_, s)| s != serial);
    }
}

/// Link layers: from a frame to the bytes of its IP header.
mod link {
    use etherparse::{
        EtherType, Ethernet2Slice, LinuxSllProtocolType, LinuxSllSlice, SingleVlanSlice,
    };

    use crate::capture::LinkType;

    /// Why a frame carries no IP packet we can read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Skip {
        /// A link type not handled, by number.
        Unsupported(u32),
        /// No IP inside (ARP, 802.11 management, ...).
        NotIp,
        /// Encrypted 802.11.
        Protected,
        /// Headers longer than the captured bytes.
        Short(&'static str),
        /// Headers that make no sense.
        Malformed(&'static str),
    }

    const PPPOE_SESSION: EtherType = EtherType(0x8864);
    const PPP_IPV4: u16 = 0x0021;
    const PPP_IPV6: u16 = 0x0057;
    /// BSD address families for IPv4 and IPv6 (Linux, the BSDs, macOS).
    const AF_INET: u32 = 2;
    const AF_INET6: [u32; 4] = [10, 24, 28, 30];

    /// The bytes from the IP header on.
    pub(super) fn network(link_type: LinkType, data: &[u8]) -> Result<&[u8], Skip> {
        match link_type {
            LinkType::Ethernet => {
                let eth = Ethernet2Slice::from_slice_without_fcs(data)
                    .map_err(|_| Skip::Short("frame shorter than its Ethernet header"))?;
                ether(eth.ether_type(), eth.payload_slice())
            }
            LinkType::LinuxSll => {
                let sll = LinuxSllSlice::from_slice(data).map_err(|e| match e {
                    etherparse::err::linux_sll::HeaderSliceError::Len(_) => {
                        Skip::Short("frame shorter than its Linux cooked header")
                    }
                    etherparse::err::linux_sll::HeaderSliceError::Content(_) => {
                        Skip::Malformed("invalid Linux cooked header")
                    }
                })?;
                match sll.protocol_type() {
                    LinuxSllProtocolType::EtherType(et) => ether(et, sll.payload_slice()),
                    _ => Err(Skip::NotIp),
                }
            }
            LinkType::LinuxSll2 => {
                // Protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet type (1),
                // address length (1), address (8).
                if data.len() < 20 {
                    return Err(Skip::Short("frame shorter than its Linux cooked v2 header"));
                }
                ether(
                    EtherType(u16::from_be_bytes([data[0], data[1]])),
                    &data[20..],
                )
            }
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Ok(data),
            LinkType::Null | LinkType::Loop => {
                if data.len() < 4 {
                    return Err(Skip::Short("frame shorter than its loopback header"));
                }
                // The family is in the capturing host's byte order (NULL) or in network
                // order (LOOP): accept either.
                let b = [data[0], data[1], data[2], data[3]];
                let ip = [u32::from_le_bytes(b), u32::from_be_bytes(b)]
                    .iter()
                    .any(|f| *f == AF_INET || AF_INET6.contains(f));
                if ip { Ok(&data[4..]) } else { Err(Skip::NotIp) }
            }
            LinkType::Ieee80211Radiotap => {
                if data.len() < 8 {
                    return Err(Skip::Short("frame shorter than its radiotap header"));
                }
                if data[0] != 0 {
                    return Err(Skip::Malformed("unknown radiotap version"));
                }
                let len = usize::from(u16::from_le_bytes([data[2], data[3]]));
                if len < 8 {
                    return Err(Skip::Malformed("radiotap header shorter than 8 bytes"));
                }
                let rest = data
                    .get(len..)
                    .ok_or(Skip::Short("frame shorter than its radiotap header"))?;
                wlan(rest)
            }
            LinkType::Ieee80211 => wlan(data),
            LinkType::Other(n) => Err(Skip::Unsupported(n)),
        }
    }

    /// Follow VLAN tags (802.1Q, QinQ) and a PPPoE session header to IP.
    fn ether(mut ether_type: EtherType, mut payload: &[u8]) -> Result<&[u8], Skip> {
        for _ in 0..4 {
            match ether_type {
                EtherType::IPV4 | EtherType::IPV6 => return Ok(payload),
                EtherType::VLAN_TAGGED_FRAME
                | EtherType::PROVIDER_BRIDGING
                | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                    let vlan = SingleVlanSlice::from_slice(payload)
                        .map_err(|_| Skip::Short("frame shorter than its VLAN tag"))?;
                    ether_type = vlan.ether_type();
                    payload = vlan.payload_slice();
                }
                PPPOE_SESSION => {
                    // ver/type 0x11, code 0, session id (2), length (2), then the PPP
                    // protocol: 2 bytes, or 1 when compressed (PFC: an odd first byte).
                    if payload.len() < 8 {
                        return Err(Skip::Short("frame shorter than its PPPoE header"));
                    }
                    if payload[0] != 0x11 || payload[1] != 0 {
                        return Err(Skip::Malformed("invalid PPPoE session header"));
                    }
                    let (protocol, header) = if payload[6] & 1 == 1 {
                        (u16::from(payload[6]), 7)
                    } else {
                        (u16::from_be_bytes([payload[6], payload[7]]), 8)
                    };
                    return match protocol {
                        PPP_IPV4 | PPP_IPV6 => Ok(&payload[header..]),
                        _ => Err(Skip::NotIp),
                    };
                }
                _ => return Err(Skip::NotIp),
            }
        }
        Err(Skip::Malformed("more than 3 VLAN tags"))
    }

    /// An 802.11 frame: data frames carrying LLC/SNAP with an EtherType.
    fn wlan(frame: &[u8]) -> Result<&[u8], Skip> {
        if frame.len() < 24 {
            return Err(Skip::Short("frame shorter than its 802.11 header"));
        }
        let (fc0, fc1) = (frame[0], frame[1]);
        if fc0 & 0x03 != 0 {
            return Err(Skip::Malformed("unknown 802.11 protocol version"));
        }
        let kind = (fc0 >> 2) & 0x03;
        let subtype = fc0 >> 4;
        if kind != 2 || subtype & 0x04 != 0 {
            // Management, control, or a data frame without data (null function).
            return Err(Skip::NotIp);
        }
        if fc1 & 0x40 != 0 {
            return Err(Skip::Protected);
        }
        let more_fragments = fc1 & 0x04 != 0;
        let fragment_number = frame[22] & 0x0f;
        if more_fragments || fragment_number != 0 {
            // 802.11 fragmentation is rare and not reassembled here.
            return Err(Skip::NotIp);
        }
        let mut header = 24;
        if fc1 & 0x03 == 0x03 {
            header += 6; // address 4 (WDS)
        }
        if subtype & 0x08 != 0 {
            if frame.len() >= header + 2 && frame[header] & 0x80 != 0 {
                return Err(Skip::NotIp); // A-MSDU aggregate
            }
            header += 2; // QoS control
            if fc1 & 0x80 != 0 {
                header += 4; // HT control
            }
        }
        let llc = frame
            .get(header..header + 8)
            .ok_or(Skip::Short("frame shorter than its 802.11 LLC header"))?;
        // LLC/SNAP: DSAP AA, SSAP AA, control 03, OUI 000000 (RFC 1042) or 0000F8 (802.1H).
        if llc[..3] != [0xaa, 0xaa, 0x03] || (llc[3..6] != [0, 0, 0] && llc[3..6] != [0, 0, 0xf8]) {
            return Err(Skip::NotIp);
        }
        ether(
            EtherType(u16::from_be_bytes([llc[6], llc[7]])),
            &frame[header + 8..],
        )
    }
}
