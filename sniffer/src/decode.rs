//! Frames to TCP segments: link layer → IP (with defragmentation) → TCP.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
};

use etherparse::{
    IpFragOffset, IpNumber, LaxSlicedPacket, TcpSlice,
    defrag::{IpDefragBuf, IpFragRange},
};

use crate::{
    capture::Frame,
    wire::{SeqNum, Timestamp},
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
/// Invariants: `defrag.partial` never holds more than [`DEFRAG_MAX_DATAGRAMS`] datagrams
/// (each at most 64 KiB), none idle longer than [`DEFRAG_TIMEOUT_NS`] past the last sweep;
/// `defrag.out` holds the last reassembled datagram, which the returned segment may borrow
/// until the next call.
pub struct Decoder {
    stats: DecodeStats,
    defrag: Defrag,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("stats", &self.stats)
            .field("fragments_in_flight", &self.defrag.partial.len())
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
                partial: HashMap::new(),
                spare: Vec::new(),
                out: Vec::new(),
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
        if !self.defrag.partial.is_empty() {
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
            if payload.ip_number != IpNumber::TCP {
                self.stats.non_tcp += 1;
                return None;
            }
            if payload.incomplete {
                self.stats.defrag_errors += 1;
                return None;
            }
            let fragment = match &sliced.net {
                Some(LaxNetSlice::Ipv4(v4)) => {
                    let h = v4.header();
                    Some(Fragment {
                        id: u32::from(h.identification()),
                        offset: h.fragments_offset().value(),
                        more: h.more_fragments(),
                    })
                }
                // Read from the raw header: etherparse 0.19 swaps the offset's low bits
                // and the M flag of IPv6 fragment headers (fixed in 0.21).
                Some(LaxNetSlice::Ipv6(v6)) => {
                    v6.extensions().clone().into_iter().find_map(|e| match e {
                        etherparse::Ipv6ExtensionSlice::Fragment(f) => {
                            let b = f.slice();
                            Some(Fragment {
                                id: f.identification(),
                                offset: u16::from_be_bytes([b[2], b[3]]) >> 3,
                                more: b[3] & 1 == 1,
                            })
                        }
                        _ => None,
                    })
                }
                _ => None,
            };
            let Some(fragment) = fragment else {
                self.malformed("fragmented payload without a fragment header");
                return None;
            };
            return self.defragment(frame.ts, src, dst, fragment, payload.payload);
        }
        if payload.ip_number != IpNumber::TCP {
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
        ts: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        fragment: Fragment,
        data: &[u8],
    ) -> Option<Segment<'a>> {
        let key = FragKey {
            src,
            dst,
            id: fragment.id,
        };
        let d = &mut self.defrag;
        if !d.partial.contains_key(&key) && d.partial.len() >= DEFRAG_MAX_DATAGRAMS {
            d.evict_oldest();
            self.stats.defrag_overflows += 1;
        }
        let Defrag { partial, spare, .. } = d;
        let entry = partial.entry(key).or_insert_with(|| {
            let (data, sections) = spare.pop().unwrap_or_default();
            Partial {
                buf: IpDefragBuf::new(IpNumber::TCP, data, sections),
                last_seen: ts.0,
            }
        });
        entry.last_seen = ts.0;
        let added = match IpFragOffset::try_new(fragment.offset) {
            Ok(offset) => entry.buf.add(offset, fragment.more, data).is_ok(),
            Err(_) => false,
        };
        let complete = added && entry.buf.is_complete();
        if (!added || complete)
            && let Some(p) = d.partial.remove(&key)
        {
            let (mut bytes, sections) = p.buf.take_bufs();
            if complete {
                // The datagram becomes `out`; the previous `out` goes back for reuse.
                std::mem::swap(&mut d.out, &mut bytes);
            }
            d.recycle(bytes, sections);
        }
        self.stats.defrag_in_flight = d.partial.len() as u64;
        if !added {
            self.stats.defrag_errors += 1;
            return None;
        }
        if !complete {
            return None;
        }
        self.stats.reassembled_datagrams += 1;
        match TcpSlice::from_slice(&self.defrag.out) {
            Ok(tcp) => {
                let len = tcp.payload().len();
                Some(deliver(&mut self.stats, ts, src, dst, &tcp, len))
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

/// Where a fragment goes in its datagram.
#[derive(Clone, Copy, Debug)]
struct Fragment {
    id: u32,
    /// In 8-byte units.
    offset: u16,
    more: bool,
}

/// A datagram being rebuilt: etherparse's defragmentation buffer and when it last grew.
struct Partial {
    buf: IpDefragBuf,
    last_seen: u64,
}

/// Spare buffers kept for reuse (each at most 64 KiB).
const DEFRAG_SPARE_BUFFERS: usize = 8;

/// IP defragmentation (TCP only), bounded in time and count, on etherparse's
/// [`IpDefragBuf`] (which merges ranges and rejects conflicting ends).
struct Defrag {
    partial: HashMap<FragKey, Partial>,
    spare: Vec<(Vec<u8>, Vec<IpFragRange>)>,
    /// The last reassembled TCP segment (header and payload).
    out: Vec<u8>,
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
        let expired: Vec<FragKey> = self
            .partial
            .iter()
            .filter(|(_, p)| p.last_seen < cutoff)
            .map(|(k, _)| *k)
            .collect();
        for key in &expired {
            self.drop_partial(key);
        }
        stats.defrag_timeouts += expired.len() as u64;
        stats.defrag_in_flight = self.partial.len() as u64;
    }

    /// Make room: drop the partial datagram that waited longest.
    fn evict_oldest(&mut self) {
        if let Some(key) = self
            .partial
            .iter()
            .min_by_key(|(_, p)| p.last_seen)
            .map(|(k, _)| *k)
        {
            self.drop_partial(&key);
        }
    }

    fn drop_partial(&mut self, key: &FragKey) {
        if let Some(p) = self.partial.remove(key) {
            let (bytes, sections) = p.buf.take_bufs();
            self.recycle(bytes, sections);
        }
    }

    fn recycle(&mut self, bytes: Vec<u8>, sections: Vec<IpFragRange>) {
        if self.spare.len() < DEFRAG_SPARE_BUFFERS {
            self.spare.push((bytes, sections));
        }
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
            LinkType::Nflog => nflog(data),
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

    /// The packet in an NFLOG frame ([`crate::capture::nflog`]).
    fn nflog(data: &[u8]) -> Result<&[u8], Skip> {
        use crate::capture::nflog::{Nflog, packet};
        match packet(data) {
            Nflog::Packet { at, .. } => Ok(&data[at]),
            Nflog::NoPacket => Err(Skip::NotIp),
            Nflog::Short(what) => Err(Skip::Short(what)),
            Nflog::Malformed(what) => Err(Skip::Malformed(what)),
        }
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

#[cfg(test)]
mod tests {
    use etherparse::{PacketBuilder, VlanId};

    use super::*;
    use crate::capture::LinkType;

    const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    const V4_SRC: [u8; 4] = [192, 168, 1, 10];
    const V4_DST: [u8; 4] = [93, 184, 216, 34];
    const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn frame(link_type: LinkType, data: &[u8]) -> Frame<'_> {
        Frame {
            ts: Timestamp(7),
            link_type,
            data,
            orig_len: data.len() as u32,
        }
    }

    fn build(builder: etherparse::PacketBuilderStep<etherparse::TcpHeader>) -> Vec<u8> {
        let mut out = Vec::with_capacity(builder.size(PAYLOAD.len()));
        builder.write(&mut out, PAYLOAD).unwrap();
        out
    }

    /// Raw IPv4 + TCP 51000 → 80 with PAYLOAD, seq 1000, ack 77, PSH|ACK.
    fn ipv4_tcp() -> Vec<u8> {
        build(
            PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        )
    }

    fn ipv6_tcp() -> Vec<u8> {
        build(
            PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        )
    }

    fn assert_v4(seg: &Segment<'_>) {
        assert_eq!(seg.src, "192.168.1.10:51000".parse().unwrap());
        assert_eq!(seg.dst, "93.184.216.34:80".parse().unwrap());
        assert_common(seg);
    }

    fn assert_v6(seg: &Segment<'_>) {
        assert_eq!(seg.src, "[2001:db8::1]:51000".parse().unwrap());
        assert_eq!(seg.dst, "[2001:db8::2]:80".parse().unwrap());
        assert_common(seg);
    }

    fn assert_common(seg: &Segment<'_>) {
        assert_eq!(seg.payload, PAYLOAD);
        assert_eq!(seg.payload_len as usize, PAYLOAD.len());
        assert!(!seg.is_truncated());
        assert_eq!(seg.seq, SeqNum(1000));
        assert_eq!(seg.ack, SeqNum(77));
        assert_eq!(seg.flags, TcpFlags(TcpFlags::PSH | TcpFlags::ACK));
        assert_eq!(seg.window, 4096);
        assert_eq!(seg.ts, Timestamp(7));
    }

    fn ethernet(ether_type: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ether_type.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    fn decode_one(link_type: LinkType, data: &[u8], check: impl Fn(&Segment<'_>)) -> DecodeStats {
        let mut d = Decoder::new();
        let seg = d.decode(&frame(link_type, data)).expect("a TCP segment");
        check(&seg);
        let stats = d.stats().clone();
        assert_eq!(stats.tcp_segments, 1);
        stats
    }

    /// An NFLOG frame: header, a prefix TLV, then the packet, TLVs in `order`.
    fn nflog(family: u8, packet: &[u8], big_endian: bool) -> Vec<u8> {
        let tlv = |f: &mut Vec<u8>, kind: u16, value: &[u8]| {
            let len = 4 + value.len() as u16;
            let (l, k) = if big_endian {
                (len.to_be_bytes(), kind.to_be_bytes())
            } else {
                (len.to_le_bytes(), kind.to_le_bytes())
            };
            f.extend_from_slice(&l);
            f.extend_from_slice(&k);
            f.extend_from_slice(value);
            while !f.len().is_multiple_of(4) {
                f.push(0);
            }
        };
        let mut f = vec![family, 0, 0, 5];
        tlv(&mut f, 1, &[0x08, 0x00, 3, 0]); // NFULA_PACKET_HDR: hw protocol, hook
        tlv(&mut f, 10, b"web-in\0"); // NFULA_PREFIX, 7 bytes: padded
        tlv(&mut f, 9, packet); // NFULA_PAYLOAD
        tlv(&mut f, 11, &1000u32.to_be_bytes()); // NFULA_UID after it
        f
    }

    #[test]
    fn issue14_nflog_ipv4_and_ipv6_either_byte_order() {
        assert_eq!(LinkType::from_linktype(239), LinkType::Nflog);
        assert_eq!(LinkType::Nflog.linktype(), 239);
        for big_endian in [false, true] {
            decode_one(
                LinkType::Nflog,
                &nflog(2, &ipv4_tcp(), big_endian),
                assert_v4,
            );
            decode_one(
                LinkType::Nflog,
                &nflog(10, &ipv6_tcp(), big_endian),
                assert_v6,
            );
        }
        let mut d = Decoder::new();
        // A message without the packet, another protocol family, a TLV running past the
        // frame: skipped and counted, never misread.
        let mut no_payload = vec![2, 0, 0, 5];
        no_payload.extend_from_slice(&[8, 0, 10, 0, b'a', b'b', b'c', 0]);
        assert!(d.decode(&frame(LinkType::Nflog, &no_payload)).is_none());
        assert!(
            d.decode(&frame(LinkType::Nflog, &[7, 0, 0, 5, 4, 0, 9, 0]))
                .is_none()
        );
        let mut cut = nflog(2, &ipv4_tcp(), false);
        cut.truncate(30);
        assert!(d.decode(&frame(LinkType::Nflog, &cut)).is_none());
        assert!(d.decode(&frame(LinkType::Nflog, &[2, 1, 0, 5])).is_none());
        let st = d.stats();
        assert_eq!(st.not_ip, 2, "{st:?}");
        assert_eq!(st.malformed.values().sum::<u64>(), 2, "{st:?}");
    }

    #[test]
    fn issue3_ethernet_ipv4_and_ipv6() {
        let v4 = build(
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .ipv4(V4_SRC, V4_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        );
        decode_one(LinkType::Ethernet, &v4, assert_v4);
        let v6 = build(
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .ipv6(V6_SRC, V6_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        );
        decode_one(LinkType::Ethernet, &v6, assert_v6);
    }

    #[test]
    fn issue3_vlan_and_qinq() {
        let single = build(
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .single_vlan(VlanId::try_new(100).unwrap())
                .ipv4(V4_SRC, V4_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        );
        assert_eq!(&single[12..14], &[0x81, 0x00]);
        decode_one(LinkType::Ethernet, &single, assert_v4);
        let double = build(
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
                .ipv6(V6_SRC, V6_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        );
        decode_one(LinkType::Ethernet, &double, assert_v6);
        // 802.1ad outer tag (0x88a8) as zeek's QinQ capture has it.
        let mut ad = double.clone();
        ad[12..14].copy_from_slice(&[0x88, 0xa8]);
        decode_one(LinkType::Ethernet, &ad, assert_v6);
    }

    #[test]
    fn issue3_pppoe_session_both_protocol_field_sizes() {
        for compressed in [false, true] {
            let ip = ipv4_tcp();
            let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
            let proto: &[u8] = if compressed { &[0x21] } else { &[0x00, 0x21] };
            pppoe.extend_from_slice(&((ip.len() + proto.len()) as u16).to_be_bytes());
            pppoe.extend_from_slice(proto);
            pppoe.extend_from_slice(&ip);
            decode_one(LinkType::Ethernet, &ethernet(0x8864, &pppoe), assert_v4);
        }
        let ip6 = ipv6_tcp();
        let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
        pppoe.extend_from_slice(&((ip6.len() + 2) as u16).to_be_bytes());
        pppoe.extend_from_slice(&[0x00, 0x57]);
        pppoe.extend_from_slice(&ip6);
        decode_one(LinkType::Ethernet, &ethernet(0x8864, &pppoe), assert_v6);
    }

    #[test]
    fn issue3_linux_cooked_v1_and_v2() {
        let sll = build(
            PacketBuilder::linux_sll(etherparse::LinuxSllPacketType::OUTGOING, 6, [2; 8])
                .ipv4(V4_SRC, V4_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        );
        decode_one(LinkType::LinuxSll, &sll, assert_v4);

        let ip6 = ipv6_tcp();
        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(&ip6);
        decode_one(LinkType::LinuxSll2, &sll2, assert_v6);
    }

    #[test]
    fn issue3_raw_ip_linktypes() {
        for lt in [LinkType::Raw, LinkType::Ipv4] {
            decode_one(lt, &ipv4_tcp(), assert_v4);
        }
        for lt in [LinkType::Raw, LinkType::Ipv6] {
            decode_one(lt, &ipv6_tcp(), assert_v6);
        }
        assert_eq!(LinkType::from_linktype(12), LinkType::Raw);
        assert_eq!(LinkType::from_linktype(14), LinkType::Raw);
    }

    #[test]
    fn issue3_bsd_null_and_loop() {
        // NULL: host byte order (little-endian capture host); LOOP: network order.
        let mut null4 = 2u32.to_le_bytes().to_vec();
        null4.extend_from_slice(&ipv4_tcp());
        decode_one(LinkType::Null, &null4, assert_v4);
        for family in [10u32, 24, 28, 30] {
            let mut null6 = family.to_le_bytes().to_vec();
            null6.extend_from_slice(&ipv6_tcp());
            decode_one(LinkType::Null, &null6, assert_v6);
        }
        let mut loop6 = 30u32.to_be_bytes().to_vec();
        loop6.extend_from_slice(&ipv6_tcp());
        decode_one(LinkType::Loop, &loop6, assert_v6);
        // An unknown family is not IP.
        let mut other = 7u32.to_le_bytes().to_vec();
        other.extend_from_slice(&ipv4_tcp());
        let mut d = Decoder::new();
        assert!(d.decode(&frame(LinkType::Null, &other)).is_none());
        assert_eq!(d.stats().not_ip, 1);
    }

    /// Radiotap (8-byte header, no fields) + 802.11 header + LLC/SNAP + `ip`.
    fn wlan(fc0: u8, fc1: u8, qos: bool, ether_type: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 8, 0, 0, 0, 0, 0];
        f.extend_from_slice(&[fc0, fc1, 0, 0]);
        f.extend_from_slice(&[0xaa; 18]); // three addresses
        f.extend_from_slice(&[0x10, 0x00]); // sequence control: fragment 0
        if fc1 & 0x03 == 0x03 {
            f.extend_from_slice(&[0xbb; 6]);
        }
        if qos {
            f.extend_from_slice(&[0x00, 0x00]);
        }
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0]);
        f.extend_from_slice(&ether_type.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn issue3_80211_radiotap_data_frames() {
        // Data to the AP (ToDS), QoS data from the AP (FromDS), and a WDS frame.
        decode_one(
            LinkType::Ieee80211Radiotap,
            &wlan(0x08, 0x01, false, 0x0800, &ipv4_tcp()),
            assert_v4,
        );
        decode_one(
            LinkType::Ieee80211Radiotap,
            &wlan(0x88, 0x02, true, 0x86dd, &ipv6_tcp()),
            assert_v6,
        );
        decode_one(
            LinkType::Ieee80211Radiotap,
            &wlan(0x08, 0x03, false, 0x0800, &ipv4_tcp()),
            assert_v4,
        );
        // Without radiotap.
        let plain = wlan(0x08, 0x01, false, 0x0800, &ipv4_tcp());
        decode_one(LinkType::Ieee80211, &plain[8..], assert_v4);

        let mut d = Decoder::new();
        // Beacon (management), protected data, and a null-function frame.
        assert!(
            d.decode(&frame(
                LinkType::Ieee80211Radiotap,
                &wlan(0x80, 0x00, false, 0x0800, &ipv4_tcp())
            ))
            .is_none()
        );
        assert!(
            d.decode(&frame(
                LinkType::Ieee80211Radiotap,
                &wlan(0x08, 0x41, false, 0x0800, &ipv4_tcp())
            ))
            .is_none()
        );
        assert!(
            d.decode(&frame(
                LinkType::Ieee80211Radiotap,
                &wlan(0x48, 0x01, false, 0x0800, &ipv4_tcp())
            ))
            .is_none()
        );
        assert_eq!(d.stats().not_ip, 2);
        assert_eq!(d.stats().wlan_protected, 1);
    }

    #[test]
    fn issue3_ethernet_padding_is_not_payload() {
        let mut tiny = build(
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .ipv4(V4_SRC, V4_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .ack(77),
        );
        // build() wrote PAYLOAD; rebuild without it and pad to the 60-byte minimum.
        tiny.truncate(14 + 20 + 20);
        let total = (20u16 + 20).to_be_bytes();
        tiny[16..18].copy_from_slice(&total);
        tiny.resize(60, 0xee);
        let mut d = Decoder::new();
        let seg = d.decode(&frame(LinkType::Ethernet, &tiny)).unwrap();
        assert_eq!(seg.payload, b"");
        assert_eq!(seg.payload_len, 0);
    }

    #[test]
    fn issue3_snaplen_truncation_is_marked_never_complete() {
        let full = build(
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .ipv4(V4_SRC, V4_DST, 64)
                .tcp(51000, 80, 1000, 4096)
                .psh()
                .ack(77),
        );
        let cut = &full[..14 + 20 + 20 + 5];
        let f = Frame {
            ts: Timestamp(7),
            link_type: LinkType::Ethernet,
            data: cut,
            orig_len: full.len() as u32,
        };
        let mut d = Decoder::new();
        let seg = d.decode(&f).unwrap();
        assert_eq!(seg.payload, &PAYLOAD[..5]);
        assert_eq!(seg.payload_len as usize, PAYLOAD.len());
        assert!(seg.is_truncated());
        assert_eq!(d.stats().truncated_segments, 1);

        // Cut inside the TCP header: nothing usable, counted as truncated, not malformed.
        let f = Frame {
            data: &full[..14 + 20 + 10],
            ..f
        };
        assert!(d.decode(&f).is_none());
        assert_eq!(d.stats().truncated_headers, 1);
        assert!(d.stats().malformed.is_empty());
    }

    #[test]
    fn issue3_ipv6_extension_headers() {
        // Insert a hop-by-hop header (8 bytes, PadN) and a destination-options header.
        let plain = ipv6_tcp();
        let mut ip = plain[..40].to_vec();
        ip[6] = 0; // next header: hop-by-hop
        let payload_len = u16::from_be_bytes([ip[4], ip[5]]) + 16;
        ip[4..6].copy_from_slice(&payload_len.to_be_bytes());
        ip.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HBH → dest opts
        ip.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // dest opts → TCP
        ip.extend_from_slice(&plain[40..]);
        decode_one(LinkType::Raw, &ip, assert_v6);
    }

    #[test]
    fn issue3_non_tcp_unsupported_and_malformed_are_counted() {
        let mut d = Decoder::new();
        let udp = {
            let b = PacketBuilder::ipv4(V4_SRC, V4_DST, 64).udp(53, 53);
            let mut out = Vec::new();
            b.write(&mut out, b"dns").unwrap();
            out
        };
        assert!(d.decode(&frame(LinkType::Raw, &udp)).is_none());
        let arp = ethernet(0x0806, &[0; 28]);
        assert!(d.decode(&frame(LinkType::Ethernet, &arp)).is_none());
        for _ in 0..3 {
            assert!(
                d.decode(&frame(LinkType::Other(147), &ipv4_tcp()))
                    .is_none()
            );
        }
        assert!(d.decode(&frame(LinkType::Raw, &[0x45, 0, 0])).is_none());
        assert!(d.decode(&frame(LinkType::Raw, &[0x75; 40])).is_none());
        let s = d.stats();
        assert_eq!(
            (s.frames, s.non_tcp, s.not_ip, s.tcp_segments),
            (7, 1, 1, 0)
        );
        assert_eq!(s.unsupported_link_types, BTreeMap::from([(147, 3)]));
        assert_eq!(s.malformed.values().sum::<u64>(), 2, "{:?}", s.malformed);
    }

    /// The IPv4 datagram `ip` split into fragments of `chunk` payload bytes (a multiple of 8).
    fn fragments(ip: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let body = &ip[ihl..];
        body.chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let mut f = ip[..ihl].to_vec();
                f.extend_from_slice(part);
                let more = (i + 1) * chunk < body.len();
                let offset = (i * chunk / 8) as u16 | if more { 0x2000 } else { 0 };
                f[6..8].copy_from_slice(&offset.to_be_bytes());
                let len = f.len() as u16;
                f[2..4].copy_from_slice(&len.to_be_bytes());
                f
            })
            .collect()
    }

    fn big_tcp(id: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
            .tcp(51000, 80, 1000, 4096)
            .psh()
            .ack(77);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out[4..6].copy_from_slice(&id.to_be_bytes());
        out
    }

    #[test]
    fn issue3_ipv4_defragmentation_in_any_order() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut frags = fragments(&big_tcp(42, &payload), 1200);
        assert_eq!(frags.len(), 3);
        frags.swap(0, 2);
        let mut d = Decoder::new();
        assert!(d.decode(&frame(LinkType::Raw, &frags[0])).is_none());
        assert!(d.decode(&frame(LinkType::Raw, &frags[1])).is_none());
        assert_eq!(d.stats().defrag_in_flight, 1);
        let seg = d
            .decode(&frame(LinkType::Raw, &frags[2]))
            .expect("reassembled");
        assert_eq!(seg.payload, payload.as_slice());
        assert_eq!(seg.payload_len, 3000);
        assert_eq!(seg.src, "192.168.1.10:51000".parse().unwrap());
        assert_eq!(seg.seq, SeqNum(1000));
        let s = d.stats();
        assert_eq!(
            (
                s.ip_fragments,
                s.reassembled_datagrams,
                s.tcp_segments,
                s.defrag_in_flight
            ),
            (3, 1, 1, 0)
        );
    }

    #[test]
    fn issue3_ipv6_fragments_are_reassembled() {
        let payload: Vec<u8> = (0..2500u32).map(|i| (i % 239) as u8).collect();
        let b = PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
            .tcp(51000, 80, 1000, 4096)
            .psh()
            .ack(77);
        let mut whole = Vec::new();
        b.write(&mut whole, &payload).unwrap();
        let body = &whole[40..];
        let chunk = 1232;
        let mut frags: Vec<Vec<u8>> = body
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let mut f = whole[..40].to_vec();
                f[6] = 44; // next header: fragment
                f[4..6].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
                let more = (i + 1) * chunk < body.len();
                let offset = ((i * chunk / 8) as u16) << 3 | u16::from(more);
                f.extend_from_slice(&[6, 0]);
                f.extend_from_slice(&offset.to_be_bytes());
                f.extend_from_slice(&0xdead_beefu32.to_be_bytes());
                f.extend_from_slice(part);
                f
            })
            .collect();
        assert_eq!(frags.len(), 3);
        frags.reverse();
        let mut d = Decoder::new();
        assert!(d.decode(&frame(LinkType::Raw, &frags[0])).is_none());
        assert!(d.decode(&frame(LinkType::Raw, &frags[1])).is_none());
        let got = d
            .decode(&frame(LinkType::Raw, &frags[2]))
            .map(|seg| (seg.src, seg.payload.to_vec()));
        let (src, data) = got.unwrap_or_else(|| panic!("not reassembled: {:?}", d.stats()));
        assert_eq!(src, "[2001:db8::1]:51000".parse().unwrap());
        assert_eq!(data, payload);
        assert_eq!(d.stats().reassembled_datagrams, 1);
    }

    #[test]
    fn issue3_defragmentation_is_bounded_in_time_and_count() {
        let payload = [7u8; 2000];
        let mut d = Decoder::new();
        // One fragment each of DEFRAG_MAX_DATAGRAMS + 1 datagrams: the oldest is evicted.
        for id in 0..=DEFRAG_MAX_DATAGRAMS as u16 {
            let first = fragments(&big_tcp(id, &payload), 1016).remove(0);
            let f = Frame {
                ts: Timestamp(u64::from(id)),
                ..frame(LinkType::Raw, &first)
            };
            assert!(d.decode(&f).is_none());
        }
        assert_eq!(d.stats().defrag_overflows, 1);
        assert_eq!(d.stats().defrag_in_flight, DEFRAG_MAX_DATAGRAMS as u64);
        // Datagram 0 was evicted: its second fragment alone completes nothing, and as a new
        // partial datagram it evicts the now oldest, datagram 1.
        let second = fragments(&big_tcp(0, &payload), 1016).remove(1);
        assert!(d.decode(&frame(LinkType::Raw, &second)).is_none());
        assert_eq!(d.stats().defrag_overflows, 2);
        let second = fragments(&big_tcp(1, &payload), 1016).remove(1);
        assert!(d.decode(&frame(LinkType::Raw, &second)).is_none());
        assert_eq!(d.stats().defrag_overflows, 3);
        // Datagram 3 is still whole.
        let second = fragments(&big_tcp(3, &payload), 1016).remove(1);
        let seg = d
            .decode(&frame(LinkType::Raw, &second))
            .expect("datagram 3 completes");
        assert_eq!(seg.payload, payload.as_slice());
        assert_eq!(d.stats().defrag_in_flight, DEFRAG_MAX_DATAGRAMS as u64 - 1);
        // Past the timeout, every partial datagram is dropped and counted.
        let unfragmented = ipv4_tcp();
        let late = Frame {
            ts: Timestamp(DEFRAG_TIMEOUT_NS + 1_000_000_000),
            ..frame(LinkType::Raw, &unfragmented)
        };
        assert!(d.decode(&late).is_some());
        let s = d.stats();
        assert_eq!(s.defrag_timeouts, DEFRAG_MAX_DATAGRAMS as u64 - 1);
        assert_eq!(s.defrag_in_flight, 0);
    }
}
