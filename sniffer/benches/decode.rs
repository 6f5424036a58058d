//! Issue 3: decoding speed on an in-memory synthetic capture of MTU-sized Ethernet frames.
//!
//! - `decode/frames`: the decoder alone over prepared frames (link layer → IP → TCP).
//! - `decode/pcap_read_decode`: pcap parsing (FileSource over an in-memory reader) plus
//!   decoding: the offline pipeline up to segments.
//!
//! Throughput is in captured bytes; the target is ≥ 3 GB/s on one core. The end-to-end
//! comparison with tcpdump and tshark on a real 1 GB capture is `cargo xtask bench decode`.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sniffer::{
    PacketSource as _,
    capture::{Frame, LinkType, Timestamp, file::FileSource},
    decode::Decoder,
};

const FRAMES: usize = 20_000;

/// MTU-sized Ethernet/IPv4/TCP frames (1514 bytes), a few connections, rising sequence.
fn frames() -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..1460u32).map(|i| (i % 251) as u8).collect();
    (0..FRAMES)
        .map(|i| {
            let builder = etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
                .ipv4([10, 201, 1, 1], [10, 201, 2, 1], 64)
                .tcp(
                    80,
                    40000 + (i % 8) as u16,
                    (i as u32).wrapping_mul(1460),
                    65535,
                )
                .ack(1);
            let mut f = Vec::with_capacity(builder.size(payload.len()));
            builder.write(&mut f, &payload).unwrap();
            f
        })
        .collect()
}

/// The frames as a little-endian µs pcap file.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 262_144, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [
            1_700_000_000 + (i / 1000) as u32,
            (i % 1000) as u32 * 1000,
            f.len() as u32,
            f.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let file: Arc<[u8]> = pcap(&frames).into();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("frames", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new();
            let mut payload = 0usize;
            for (i, data) in frames.iter().enumerate() {
                let frame = Frame {
                    ts: Timestamp(i as u64),
                    link_type: LinkType::Ethernet,
                    data,
                    orig_len: data.len() as u32,
                };
                if let Some(seg) = decoder.decode(&frame) {
                    payload += seg.payload.len();
                }
            }
            assert_eq!(payload, FRAMES * 1460);
            black_box(payload)
        });
    });
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function("pcap_read_decode", |b| {
        b.iter(|| {
            let mut source =
                FileSource::from_reader("bench", std::io::Cursor::new(Arc::clone(&file))).unwrap();
            let mut decoder = Decoder::new();
            let mut payload = 0usize;
            while let Some(frame) = source.next_frame().unwrap() {
                if let Some(seg) = decoder.decode(&frame) {
                    payload += seg.payload.len();
                }
            }
            assert_eq!(payload, FRAMES * 1460);
            black_box(payload)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
