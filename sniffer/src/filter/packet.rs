//! A raw frame as the filter sees it: is it TCP (pcap-filter's `tcp`), and if so its
//! family, addresses and ports.
//!
//! The link layers are read as libpcap's filter compiler reads them, offset by offset, so
//! that the selection is tcpdump's; the two deliberate differences (VLAN tags and PPPoE
//! looked through, IPv6 extension headers followed) are the kernel program's too, and
//! are described in the module above. A field the filter needs that lies past the
//! captured bytes makes the frame not match, as a load past the end makes a BPF filter
//! reject the packet.

use sniffer_ebpf::MAX_IPV6_EXT;

use super::{Family, Needs};
use crate::capture::{Frame, LinkType};

const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// 802.1Q, 802.1ad and the pre-standard QinQ tag: the TPIDs libpcap's `vlan` knows.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
const PPP_IP: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// `AF_INET` on every BSD-derived loopback header.
const BSD_AF_INET: u32 = 2;
/// `AF_INET6` of NetBSD/OpenBSD, FreeBSD and Darwin, the values libpcap's `ip6` accepts
/// on DLT_NULL and DLT_LOOP.
const BSD_AF_INET6: [u32; 3] = [24, 28, 30];
const IPPROTO_TCP: u8 = 6;

/// A TCP packet's fields, as far as the filter needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packet {
    /// The family the link layer announced.
    pub family: Family,
    /// Source port and destination port; `None` for a non-first fragment, or when the
    /// filter has no port test.
    pub ports: Option<(u16, u16)>,
    /// The source address (IPv4 in the low 32 bits); 0 when the filter has no address test.
    pub src: u128,
    /// The destination address, likewise.
    pub dst: u128,
}

impl Packet {
    /// The frame as a TCP packet, reading what `needs` asks for; `None` if it is not TCP,
    /// or a field it needs was not captured.
    #[inline(always)]
    pub(crate) fn read(frame: &Frame<'_>, needs: Needs) -> Option<Self> {
        let d = frame.data;
        // The common case first: untagged Ethernet.
        let (family, l3) = match (frame.link_type, d.get(12..14)) {
            (LinkType::Ethernet, Some([0x08, 0x00])) => (Family::V4, 14),
            (LinkType::Ethernet, Some([0x86, 0xdd])) => (Family::V6, 14),
            _ => network(frame.link_type, d)?,
        };
        let (l4, l3) = match family {
            Family::V4 => (ipv4_tcp(d, l3)?, l3),
            Family::V6 => (ipv6_tcp(d, l3)?, l3),
        };
        let ports = match l4 {
            Some(l4) if needs.ports => {
                let p: [u8; 4] = d.get(l4..l4 + 4)?.try_into().ok()?;
                Some((
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                ))
            }
            _ => None,
        };
        let (src, dst) = if !needs.addrs {
            (0, 0)
        } else if family == Family::V4 {
            let a: [u8; 8] = d.get(l3 + 12..l3 + 20)?.try_into().ok()?;
            (
                u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]])),
                u128::from(u32::from_be_bytes([a[4], a[5], a[6], a[7]])),
            )
        } else {
            let a = d.get(l3 + 8..l3 + 40)?;
            (
                u128::from_be_bytes(a[..16].try_into().ok()?),
                u128::from_be_bytes(a[16..].try_into().ok()?),
            )
        };
        Some(Self {
            family,
            ports,
            src,
            dst,
        })
    }
}

/// The common frame's addresses and ports as they lie in it: untagged Ethernet, IPv4
/// with a 20-byte header (version and IHL byte 0x45), protocol TCP, not a later fragment,
/// and at least 38 bytes captured. For such a frame, [`Packet::read`] gives family V4,
/// the addresses from bytes 26..34 and the ports from bytes 34..38, whatever it needs:
/// its verdict is a function of this key alone. Other frames have no key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    /// Bytes 26..34: source and destination address, in the machine's byte order.
    addrs: u64,
    /// Bytes 34..38: source and destination port, likewise.
    ports: u32,
}

impl Key {
    #[inline(always)]
    pub(crate) fn of(frame: &Frame<'_>) -> Option<Self> {
        let d: &[u8; 38] = frame.data.get(..38)?.try_into().ok()?;
        let common = frame.link_type == LinkType::Ethernet
            && d[12..15] == [0x08, 0x00, 0x45]
            && d[23] == IPPROTO_TCP
            && u16::from_be_bytes([d[20], d[21]]) & 0x1fff == 0;
        common.then(|| Self {
            addrs: u64::from_ne_bytes(d[26..34].try_into().unwrap_or_default()),
            ports: u32::from_ne_bytes(d[34..38].try_into().unwrap_or_default()),
        })
    }

    /// A slot among `2^bits`, from every byte of the key.
    #[inline(always)]
    pub(crate) fn slot(self, bits: u32) -> usize {
        let mixed = (self.addrs ^ u64::from(self.ports).rotate_left(23))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> (64 - bits)) as usize
    }
}

#[inline]
fn byte(d: &[u8], at: usize) -> Option<u8> {
    d.get(at).copied()
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

/// The family the link layer announces and the offset of the network header.
#[inline]
fn network(link: LinkType, d: &[u8]) -> Option<(Family, usize)> {
    match link {
        LinkType::Ethernet => ether(d, be16(d, 12)?, 14),
        // Packet type, ARPHRD, address length, address (8), protocol.
        LinkType::LinuxSll => ether(d, be16(d, 14)?, 16),
        // Protocol, reserved, ifindex, ARPHRD, packet type, address length, address (8).
        LinkType::LinuxSll2 => ether(d, be16(d, 0)?, 20),
        // No type field: the IP version nibble decides, as libpcap's `ip` does there.
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => match byte(d, 0)? >> 4 {
            4 => Some((Family::V4, 0)),
            6 => Some((Family::V6, 0)),
            _ => None,
        },
        // The address family, in the capturing host's byte order (NULL) or in network
        // order (LOOP). libpcap compares in the file's byte order; a frame has forgotten
        // it, so either order is taken.
        LinkType::Null | LinkType::Loop => {
            let b: [u8; 4] = d.get(..4)?.try_into().ok()?;
            let af = [u32::from_le_bytes(b), u32::from_be_bytes(b)];
            if af.contains(&BSD_AF_INET) {
                Some((Family::V4, 4))
            } else if af.iter().any(|f| BSD_AF_INET6.contains(f)) {
                Some((Family::V6, 4))
            } else {
                None
            }
        }
        LinkType::Ieee80211Radiotap => {
            let radiotap = usize::from(u16::from_le_bytes([byte(d, 2)?, byte(d, 3)?]));
            wlan(d, radiotap, true)
        }
        LinkType::Ieee80211 => wlan(d, 0, false),
        LinkType::Nflog => match crate::capture::nflog::packet(d) {
            crate::capture::nflog::Nflog::Packet { v6, at } => {
                Some((if v6 { Family::V6 } else { Family::V4 }, at.start))
            }
            _ => None,
        },
        LinkType::Other(_) => None,
    }
}

/// An EtherType at `at - 2`: up to two VLAN tags, then a PPPoE session header, are looked
/// through (tcpdump's `vlan and vlan and pppoes and …`).
#[inline]
fn ether(d: &[u8], mut ethertype: u16, mut at: usize) -> Option<(Family, usize)> {
    for _ in 0..2 {
        if !VLAN_TPIDS.contains(&ethertype) {
            break;
        }
        ethertype = be16(d, at + 2)?;
        at += 4;
    }
    if ethertype == ETHERTYPE_PPPOE_SESSION {
        // Version/type, code, session id, length: 6 bytes, then the PPP protocol (not
        // compressed: libpcap's `pppoes` reads two bytes there).
        ethertype = match be16(d, at + 6)? {
            PPP_IP => ETHERTYPE_IP,
            PPP_IPV6 => ETHERTYPE_IPV6,
            _ => return None,
        };
        at += 8;
    }
    match ethertype {
        ETHERTYPE_IP => Some((Family::V4, at)),
        ETHERTYPE_IPV6 => Some((Family::V6, at)),
        _ => None,
    }
}

/// An 802.11 frame after `radiotap` bytes of radiotap header, read as libpcap 1.10 reads
/// it: a data frame's header is 24 bytes, 26 with QoS; with radiotap's "data pad" flag
/// the payload starts at the next multiple of 4 (counted from the frame's start); the
/// LLC/SNAP header's last two bytes are the EtherType (the rest of it is not checked).
#[inline]
fn wlan(d: &[u8], radiotap: usize, has_radiotap: bool) -> Option<(Family, usize)> {
    let fc = byte(d, radiotap)?;
    // Type (bits 2-3) must be data (2).
    if fc & 0x0c != 0x08 {
        return None;
    }
    let mut header = radiotap + 24;
    if fc & 0x80 != 0 {
        header += 2; // QoS control
    }
    if has_radiotap {
        // The radiotap "present" word, little-endian: bit 1 Flags, bit 0 TSFT (8 bytes
        // before Flags), bit 31 more present words (libpcap then does not look for Flags).
        let present = u32::from_le_bytes(d.get(4..8)?.try_into().ok()?);
        if present & 0x2 != 0 && present & 0x8000_0000 == 0 {
            let flags = byte(d, if present & 0x1 != 0 { 16 } else { 8 })?;
            if flags & 0x20 != 0 {
                header = (header + 3) & !3;
            }
        }
    }
    match be16(d, header + 6)? {
        ETHERTYPE_IP => Some((Family::V4, header + 8)),
        ETHERTYPE_IPV6 => Some((Family::V6, header + 8)),
        _ => None,
    }
}

/// IPv4 at `l3`: TCP if the protocol is 6, whatever the version and IHL say (as in
/// pcap-filter). `Some(Some(ports offset))` for a first or only fragment,
/// `Some(None)` for a later one.
#[inline]
fn ipv4_tcp(d: &[u8], l3: usize) -> Option<Option<usize>> {
    let h = d.get(l3..l3 + 10)?;
    if h[9] != IPPROTO_TCP {
        return None;
    }
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    Some((frag_offset == 0).then_some(l3 + usize::from(h[0] & 0x0f) * 4))
}

/// IPv6 at `l3`: TCP after up to [`MAX_IPV6_EXT`] extension headers (hop-by-hop, routing,
/// destination options, fragment, authentication); a non-first fragment whose next
/// header is TCP is TCP without ports. As [`ipv4_tcp`] for the result.
#[inline]
fn ipv6_tcp(d: &[u8], l3: usize) -> Option<Option<usize>> {
    let mut next = byte(d, l3 + 6)?;
    let mut off = l3 + 40;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPPROTO_TCP => return Some(Some(off)),
            0 | 43 | 60 => {
                let h = d.get(off..off + 2)?;
                next = h[0];
                off += (usize::from(h[1]) + 1) * 8;
            }
            44 => {
                let h = d.get(off..off + 4)?;
                next = h[0];
                if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
                    return (next == IPPROTO_TCP).then_some(None);
                }
                off += 8;
            }
            51 => {
                let h = d.get(off..off + 2)?;
                next = h[0];
                off += (usize::from(h[1]) + 2) * 4;
            }
            _ => return None,
        }
    }
    (next == IPPROTO_TCP).then_some(Some(off))
}
