//! Issue 4: reassembly speed on segments prepared in memory (no file, no decoding).
//!
//! - `reassembly/in_order`: 8 sessions of MTU-sized segments through the flow table to a
//!   listener that touches every byte: the fast path (delivered by reference).
//! - `reassembly/pairs_swapped`: the same with every pair of segments swapped, so half of
//!   them are buffered out of order.
//! - `reassembly/reverse_one_byte`: the assembler alone, 100 000 one-byte segments in
//!   reverse order (the worst case for naive buffers; here O(n log n)).
//!
//! Throughput is in payload bytes. The end-to-end comparison with tcpflow and tshark on a
//! real 1 GB capture is `cargo xtask bench --only flows`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sniffer::{
    Direction, Listener, Segment, SessionInfo, Timestamp,
    decode::TcpFlags,
    flow::{FlowConfig, FlowTable},
    tcp::{Assembler, SeqNum, Sink},
};

const SEGMENTS: usize = 20_000;
const SESSIONS: usize = 8;

struct Sum(u64);
impl Listener for Sum {
    fn data(&mut self, _: &SessionInfo, _: Direction, _: u64, b: &[u8], _: Timestamp) {
        self.0 += u64::from(b[0]) + u64::from(b[b.len() - 1]) + b.len() as u64;
    }
}
impl Sink for Sum {
    fn data(&mut self, _: u64, b: &[u8]) {
        self.0 += b.len() as u64;
    }
    fn gap(&mut self, _: u64, _: u64) {}
}

fn segments(payload: &[u8], swap: bool) -> Vec<Segment<'_>> {
    let server = "10.201.1.1:80".parse().unwrap();
    let client = |i: usize| format!("10.201.2.1:{}", 40000 + i).parse().unwrap();
    let mut v = Vec::new();
    for s in 0..SESSIONS {
        v.push(Segment {
            ts: Timestamp(1),
            src: server,
            dst: client(s),
            seq: SeqNum(1000),
            ack: SeqNum(1),
            flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
            window: 65535,
            urgent: 0,
            payload: &[],
            payload_len: 0,
        });
    }
    let mut data: Vec<Segment<'_>> = (0..SEGMENTS)
        .map(|i| {
            let n = (i / SESSIONS) as u32;
            Segment {
                ts: Timestamp(2 + i as u64),
                src: server,
                dst: client(i % SESSIONS),
                seq: SeqNum(1001u32.wrapping_add(n * payload.len() as u32)),
                ack: SeqNum(1),
                flags: TcpFlags(TcpFlags::ACK),
                window: 65535,
                urgent: 0,
                payload,
                payload_len: payload.len() as u32,
            }
        })
        .collect();
    if swap {
        for pair in data.chunks_mut(2 * SESSIONS) {
            if pair.len() == 2 * SESSIONS {
                let (a, b) = pair.split_at_mut(SESSIONS);
                a.swap_with_slice(b);
            }
        }
    }
    v.extend(data);
    v
}

fn bench(c: &mut Criterion) {
    let payload: Vec<u8> = (0..1460u32).map(|i| (i % 251) as u8).collect();
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes((SEGMENTS * payload.len()) as u64));
    for (name, swap) in [("in_order", false), ("pairs_swapped", true)] {
        let segs = segments(&payload, swap);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut t = FlowTable::new(&FlowConfig::default());
                let mut l = Sum(0);
                for s in &segs {
                    t.process(s, &mut l);
                }
                t.finish(Timestamp(u64::MAX / 2), &mut l);
                black_box(l.0)
            });
        });
    }
    const N: u64 = 100_000;
    g.throughput(Throughput::Bytes(N));
    g.bench_function("reverse_one_byte", |b| {
        b.iter(|| {
            let mut a = Assembler::new(4 << 20);
            let mut s = Sum(0);
            for i in (0..N).rev() {
                let _ = a.insert(i, &[i as u8], &mut s);
            }
            assert_eq!(s.0, N);
            black_box(s.0)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
