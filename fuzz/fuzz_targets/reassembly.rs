//! Sequences of segments, twice over:
//! 1. the assembler alone, against an obviously correct model (a byte map, first wins);
//! 2. the flow table with a tiny configuration, checking the event contract: per session
//!    one start, data and gaps contiguous in offset order per direction, one end, one
//!    stats call, nothing after the end; the table never above its caps (over the memcap
//!    only when the one session left holds more than it).
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sniffer::{
    Direction, EndReason, Listener, Segment, SessionInfo, Timestamp,
    decode::TcpFlags,
    flow::{FlowConfig, FlowTable, SessionStats},
    tcp::{Assembler, SeqNum, Sink},
};

/// The byte the honest sender has at `pos`.
fn truth(pos: u64) -> u8 {
    (pos.wrapping_mul(31) >> 3) as u8
}

struct Op {
    kind: u8,
    off: u64,
    len: usize,
    flags: u8,
    ack: u64,
    misc: u8,
}

fn ops(data: &[u8]) -> impl Iterator<Item = Op> + '_ {
    data.chunks_exact(8).map(|c| Op {
        kind: c[0],
        off: u64::from(u16::from_be_bytes([c[1], c[2]])) % 2048,
        len: usize::from(c[3]) % 96,
        flags: c[4],
        ack: u64::from(u16::from_be_bytes([c[5], c[6]])) % 2048,
        misc: c[7],
    })
}

fn payload(op: &Op) -> Vec<u8> {
    let evil = if op.kind & 0x10 != 0 { op.misc | 1 } else { 0 };
    (0..op.len as u64)
        .map(|i| truth(op.off + i) ^ evil)
        .collect()
}

#[derive(Default)]
struct Stream(Vec<Option<u8>>);
impl Sink for Stream {
    fn data(&mut self, offset: u64, bytes: &[u8]) {
        assert_eq!(offset, self.0.len() as u64);
        self.0.extend(bytes.iter().map(|&b| Some(b)));
    }
    fn gap(&mut self, offset: u64, len: u64) {
        assert_eq!(offset, self.0.len() as u64);
        assert!(len > 0);
        self.0.extend(std::iter::repeat_n(None, len as usize));
    }
}

/// First-wins byte map with a next pointer.
#[derive(Default)]
struct Model {
    map: BTreeMap<u64, u8>,
    next: u64,
    out: Vec<Option<u8>>,
}
impl Model {
    fn advance(&mut self) {
        while let Some(&b) = self.map.get(&self.next) {
            self.out.push(Some(b));
            self.next += 1;
        }
    }
    fn insert(&mut self, off: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let p = off + i as u64;
            if p >= self.next {
                self.map.entry(p).or_insert(b);
            }
        }
        self.advance();
    }
    fn gap_to(&mut self, to: u64) {
        while self.next < to {
            if self.map.contains_key(&self.next) {
                self.advance();
            } else {
                self.out.push(None);
                self.next += 1;
            }
        }
        self.advance();
    }
    fn buffered(&self) -> u64 {
        self.map.range(self.next..).count() as u64
    }
    fn skip_hole(&mut self) -> bool {
        match self.map.range(self.next..).next() {
            Some((&k, _)) => {
                self.gap_to(k);
                true
            }
            None => false,
        }
    }
}

fn assembler(data: &[u8]) {
    const LIMIT: u64 = 300;
    let mut a = Assembler::new(LIMIT);
    let mut s = Stream::default();
    let mut m = Model::default();
    for op in ops(data) {
        if op.kind % 5 == 4 {
            a.gap_to(op.ack, &mut s);
            m.gap_to(op.ack);
        } else {
            let p = payload(&op);
            m.insert(op.off, &p);
            if a.insert(op.off, &p, &mut s).is_err() {
                while a.buffered() > LIMIT && a.skip_hole(&mut s) {}
                while m.buffered() > LIMIT && m.skip_hole() {}
            }
        }
        assert_eq!(s.0, m.out);
        assert_eq!(a.buffered(), m.buffered());
        let st = a.stats();
        assert!(st.conflicts <= st.retransmitted + st.late);
    }
    a.finish(None, &mut s);
    while m.skip_hole() {}
    assert_eq!(s.0, m.out);
}

#[derive(Default)]
struct Check {
    started: HashMap<u64, SessionInfo>,
    ended: HashMap<u64, EndReason>,
    stats: HashMap<u64, ()>,
    end: HashMap<(u64, Direction), u64>,
}
impl Check {
    fn live(&self, s: &SessionInfo) {
        assert_eq!(self.started.get(&s.stream), Some(s));
        assert!(
            !self.ended.contains_key(&s.stream),
            "event after session_end"
        );
    }
}
impl Listener for Check {
    fn session_start(&mut self, s: &SessionInfo, _: Timestamp) {
        assert!(self.started.insert(s.stream, s.clone()).is_none());
    }
    fn data(&mut self, s: &SessionInfo, d: Direction, off: u64, b: &[u8], _: Timestamp) {
        self.live(s);
        assert!(!b.is_empty());
        let e = self.end.entry((s.stream, d)).or_default();
        assert_eq!(off, *e);
        *e += b.len() as u64;
    }
    fn gap(&mut self, s: &SessionInfo, d: Direction, off: u64, len: u64, _: Timestamp) {
        self.live(s);
        assert!(len > 0);
        let e = self.end.entry((s.stream, d)).or_default();
        assert_eq!(off, *e);
        *e += len;
    }
    fn monologue_end(&mut self, s: &SessionInfo, _: Direction, _: Timestamp) {
        self.live(s);
    }
    fn session_end(&mut self, s: &SessionInfo, r: EndReason, _: Timestamp) {
        self.live(s);
        self.ended.insert(s.stream, r);
    }
    fn session_stats(&mut self, s: &SessionInfo, st: &SessionStats) {
        assert!(self.ended.contains_key(&s.stream), "stats after the end");
        assert!(self.stats.insert(s.stream, ()).is_none(), "stats once");
        for d in [Direction::Orig, Direction::Resp] {
            let x = st.dir(d);
            let end = self.end.get(&(s.stream, d)).copied().unwrap_or(0);
            assert_eq!(x.asm.delivered + x.asm.gap_bytes, end);
        }
    }
}

/// Room for two sessions with reassembly state and a few hundred bytes buffered.
const MEMCAP: u64 = 2 * (sniffer::flow::SESSION_ENTRY_BYTES + sniffer::flow::SESSION_STREAMS_BYTES) + 600;

fn table(data: &[u8]) {
    let cfg = FlowConfig {
        max_ooo_bytes: 200,
        memcap: MEMCAP,
        max_sessions: 3,
        idle_timeout: Duration::from_secs(20),
    };
    let mut t = FlowTable::new(&cfg);
    let mut c = Check::default();
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let mut ts = 0u64;
    for op in ops(data) {
        let client = SocketAddr::from(([10, 0, 0, 1], 40000 + u16::from(op.misc % 5)));
        let to_server = op.kind & 0x20 == 0;
        let (src, dst) = if to_server {
            (client, server)
        } else {
            (server, client)
        };
        let isn: u32 = if to_server { 0xffff_ff00 } else { 1000 };
        let isn = isn.wrapping_add(u32::from(op.kind >> 6) * 0x10000);
        // Time mostly moves forward, sometimes jumps past the idle timeout or back.
        ts = match op.kind & 0x0c {
            0x0c => ts + 30_000_000_000,
            0x08 => ts.saturating_sub(1_000_000_000),
            _ => ts + 1_000_000,
        };
        let p = payload(&op);
        let seg = Segment {
            ts: Timestamp(ts),
            src,
            dst,
            seq: SeqNum(isn.wrapping_add(op.off as u32)),
            ack: SeqNum(if to_server { 1000u32 } else { 0xffff_ff00 }.wrapping_add(op.ack as u32)),
            flags: TcpFlags(op.flags),
            window: 1000,
            urgent: 0,
            payload: &p,
            payload_len: p.len() as u32 + u32::from(op.kind & 1) * 7,
        };
        t.process(&seg, &mut c);
        assert!(t.len() <= 3);
        assert!(t.memory() <= MEMCAP || t.len() == 1, "{} held", t.memory());
    }
    t.finish(Timestamp(ts), &mut c);
    assert!(t.is_empty());
    assert_eq!(c.started.len(), c.ended.len());
    assert_eq!(c.started.len(), c.stats.len());
}

fuzz_target!(|data: &[u8]| {
    assembler(data);
    table(data);
});
