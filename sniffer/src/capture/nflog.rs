//! LINKTYPE_NFLOG (239), what `tcpdump -i nflog:N` and iptables NFLOG rules write: where
//! the logged packet is in a frame. Decoding and the filter both read frames this way.
//!
//! A frame is a 4-byte header (address family, version 0, resource id), then TLVs, each
//! padded to 4 bytes, whose length (header included) and type are in the capturing
//! host's byte order: either order is accepted, the one that makes sense (a type below
//! 256, a length within the frame) chosen per TLV. The packet is the `NFULA_PAYLOAD` TLV;
//! the others (prefix, marks, timestamps, uid, ...) are skipped. The frame's time is the
//! capture record's, as tcpdump shows it.

use std::ops::Range;

/// The TLV carrying the logged packet.
const NFULA_PAYLOAD: u16 = 9;

/// Linux's address families for IPv4 and IPv6.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What an NFLOG frame holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nflog {
    /// An IPv4 (`v6` false) or IPv6 packet at these bytes of the frame.
    Packet {
        /// IPv6.
        v6: bool,
        /// Where the packet is in the frame.
        at: Range<usize>,
    },
    /// A log message of another family, or without the packet (logged with a zero copy
    /// range).
    NoPacket,
    /// The frame ends inside its headers.
    Short(&'static str),
    /// Headers that make no sense.
    Malformed(&'static str),
}

/// Where the packet is in an NFLOG frame.
pub fn packet(data: &[u8]) -> Nflog {
    if data.len() < 4 {
        return Nflog::Short("frame shorter than its NFLOG header");
    }
    if data[1] != 0 {
        return Nflog::Malformed("unknown NFLOG version");
    }
    let v6 = match data[0] {
        AF_INET => false,
        AF_INET6 => true,
        _ => return Nflog::NoPacket,
    };
    let mut at = 4;
    while at < data.len() {
        let Some(h) = data.get(at..at + 4) else {
            return Nflog::Short("frame shorter than its NFLOG TLV header");
        };
        let fits = |len: u16, kind: u16| {
            len >= 4 && kind & 0x7fff < 0x100 && at + usize::from(len) <= data.len()
        };
        let le = (
            u16::from_le_bytes([h[0], h[1]]),
            u16::from_le_bytes([h[2], h[3]]),
        );
        let be = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        );
        let (len, kind) = if fits(le.0, le.1) {
            le
        } else if fits(be.0, be.1) {
            be
        } else if le.0 >= 4 || be.0 >= 4 {
            return Nflog::Short("frame shorter than its NFLOG TLV");
        } else {
            return Nflog::Malformed("NFLOG TLV shorter than its header");
        };
        let end = at + usize::from(len);
        if kind & 0x7fff == NFULA_PAYLOAD {
            return Nflog::Packet {
                v6,
                at: at + 4..end,
            };
        }
        at = (end + 3) & !3;
    }
    Nflog::NoPacket
}
