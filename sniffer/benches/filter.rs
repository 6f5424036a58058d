//! Issue 13: what a userspace filter costs per frame, on the decode benchmark's frames
//! (MTU-sized Ethernet/IPv4/TCP), with a five-term expression.
//!
//! - `filter/matches`: the filter alone;
//! - `filter/decode` and `filter/filter_then_decode`: the decoder without and with the
//!   filter in front, as `pipeline::run_filtered` runs them. The budget is 5% of the
//!   decode benchmark (`cargo xtask bench decode`, 1 GB).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sniffer::{
    capture::{Frame, LinkType, Timestamp},
    decode::Decoder,
    filter::Filter,
};

/// As many frames as the decode benchmark: 30 MB, more than the caches hold, so each
/// frame's first touch is a miss whoever makes it.
const FRAMES: usize = 20_000;
/// A few frames, read over and over from the cache: the filter's own cost.
const HOT: usize = 64;

/// Five terms; every frame matches, and none short-cuts past the address tests.
const EXPRESSION: &str =
    "port 80 or port 8080 and not host 10.0.0.5 and net 10.201.0.0/16 or src portrange 40000-40007";

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

fn frame(i: usize, data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Timestamp(i as u64),
        link_type: LinkType::Ethernet,
        data,
        orig_len: data.len() as u32,
    }
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let filter = Filter::parse(EXPRESSION).unwrap();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Bytes(bytes));
    let hot = &frames[..HOT];
    group.throughput(Throughput::Elements(HOT as u64));
    group.bench_function("matches_in_cache", |b| {
        b.iter(|| {
            let n = hot
                .iter()
                .enumerate()
                .filter(|(i, d)| filter.matches(&frame(*i, d)))
                .count();
            assert_eq!(n, HOT);
            black_box(n)
        });
    });
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("matches", |b| {
        b.iter(|| {
            let n = frames
                .iter()
                .enumerate()
                .filter(|(i, d)| filter.matches(&frame(*i, d)))
                .count();
            assert_eq!(n, FRAMES);
            black_box(n)
        });
    });
    for (name, filtered) in [("decode", false), ("filter_then_decode", true)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut decoder = Decoder::new();
                let mut payload = 0usize;
                for (i, data) in frames.iter().enumerate() {
                    let f = frame(i, data);
                    if filtered && !filter.matches(&f) {
                        continue;
                    }
                    if let Some(seg) = decoder.decode(&f) {
                        payload += seg.payload.len();
                    }
                }
                assert_eq!(payload, FRAMES * 1460);
                black_box(payload)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
