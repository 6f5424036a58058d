//! Issue 3: the capture-file reader and the decoder over arbitrary bytes.
//!
//! The input is read as a capture file (pcap, pcapng, gzip: whatever its magic says) and
//! every frame is decoded; then the input itself is decoded as one frame of every link
//! type. Nothing may panic, hang or allocate without bound, and every delivered segment
//! must be consistent with its frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sniffer::{
    PacketSource as _,
    capture::{Frame, LinkType, Timestamp, file::FileSource},
    decode::Decoder,
};

const LINK_TYPES: [LinkType; 11] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Loop,
    LinkType::Ieee80211Radiotap,
    LinkType::Ieee80211,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Other(147),
];

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    if let Ok(mut source) = FileSource::from_reader("fuzz", std::io::Cursor::new(data.to_vec())) {
        let mut frames = 0u64;
        while let Ok(Some(frame)) = source.next_frame() {
            frames += 1;
            assert!(frame.data.len() as u64 <= u64::from(frame.orig_len));
            if let Some(segment) = decoder.decode(&frame) {
                assert!(segment.payload.len() as u64 <= u64::from(segment.payload_len));
            }
        }
        assert_eq!(source.stats().frames, frames);
    }
    for link_type in LINK_TYPES {
        let frame = Frame {
            ts: Timestamp(u64::from(data.first().copied().unwrap_or(0)) << 32),
            link_type,
            data,
            orig_len: data.len() as u32,
        };
        if let Some(segment) = decoder.decode(&frame) {
            assert!(segment.payload.len() <= data.len());
            assert!(segment.payload.len() as u64 <= u64::from(segment.payload_len));
        }
    }
    let stats = decoder.stats();
    assert!(stats.defrag_in_flight <= sniffer::decode::DEFRAG_MAX_DATAGRAMS as u64);
});
