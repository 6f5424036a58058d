//! Session lifecycle tests, from segments built here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const S: u8 = TcpFlags::SYN;
const A: u8 = TcpFlags::ACK;
const F: u8 = TcpFlags::FIN;
const R: u8 = TcpFlags::RST;
const P: u8 = TcpFlags::PSH;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn seg<'a>(
    t: u64,
    src: &str,
    dst: &str,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &'a [u8],
) -> Segment<'a> {
    Segment {
        ts: Timestamp(t * 1_000_000_000),
        src: addr(src),
        dst: addr(dst),
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: TcpFlags(flags),
        window: 65535,
        urgent: 0,
        payload,
        payload_len: payload.len() as u32,
    }
}

/// Everything a listener sees, in order.
#[derive(Default, Debug)]
struct Rec {
    log: Vec<String>,
    data: BTreeMap<(u64, Direction), Vec<u8>>,
    gaps: Vec<(u64, Direction, u64, u64)>,
    conflicts: Vec<(u64, Direction, u64, u64)>,
    infos: Vec<SessionInfo>,
    stats: BTreeMap<u64, SessionStats>,
}

impl Listener for Rec {
    fn session_start(&mut self, s: &SessionInfo, _: Timestamp) {
        self.log.push(format!("start {}", s.stream));
        self.infos.push(s.clone());
    }
    fn data(&mut self, s: &SessionInfo, d: Direction, off: u64, b: &[u8], _: Timestamp) {
        let v = self.data.entry((s.stream, d)).or_default();
        assert_eq!(
            off,
            v.len() as u64
                + self
                    .gaps
                    .iter()
                    .filter(|g| g.0 == s.stream && g.1 == d)
                    .map(|g| g.3)
                    .sum::<u64>()
        );
        v.extend_from_slice(b);
        self.log.push(format!(
            "data {} {d} {}",
            s.stream,
            String::from_utf8_lossy(b)
        ));
    }
    fn gap(&mut self, s: &SessionInfo, d: Direction, off: u64, len: u64, _: Timestamp) {
        self.gaps.push((s.stream, d, off, len));
        self.log.push(format!("gap {} {d} {off}+{len}", s.stream));
    }
    fn overlap_conflict(
        &mut self,
        s: &SessionInfo,
        d: Direction,
        off: u64,
        len: u64,
        _: Timestamp,
    ) {
        self.conflicts.push((s.stream, d, off, len));
    }
    fn monologue_end(&mut self, s: &SessionInfo, d: Direction, _: Timestamp) {
        self.log.push(format!("mono {} {d}", s.stream));
    }
    fn session_end(&mut self, s: &SessionInfo, r: EndReason, _: Timestamp) {
        self.log.push(format!("end {} {r}", s.stream));
    }
    fn session_stats(&mut self, s: &SessionInfo, st: &SessionStats) {
        assert!(
            self.stats.insert(s.stream, st.clone()).is_none(),
            "stats once"
        );
    }
}

impl Rec {
    fn text(&self, stream: u64, d: Direction) -> String {
        String::from_utf8_lossy(self.data.get(&(stream, d)).map_or(&[][..], |v| v)).into()
    }
}

const C: &str = "10.0.0.1:40000";
const SV: &str = "10.0.0.2:80";

/// A full exchange on the C/SV tuple: handshake, request, response, FIN each way, last ACK.
fn exchange<'a>(t: u64, ci: u32, si: u32, req: &'a [u8], resp: &'a [u8]) -> Vec<Segment<'a>> {
    let (rq, rs) = (req.len() as u32, resp.len() as u32);
    let c = |n: u32| ci.wrapping_add(n);
    let v = |n: u32| si.wrapping_add(n);
    vec![
        seg(t, C, SV, ci, 0, S, b""),
        seg(t, SV, C, si, c(1), S | A, b""),
        seg(t, C, SV, c(1), v(1), A, b""),
        seg(t, C, SV, c(1), v(1), A | P, req),
        seg(t, SV, C, v(1), c(1 + rq), A | P, resp),
        seg(t, C, SV, c(1 + rq), v(1 + rs), A | F, b""),
        seg(t, SV, C, v(1 + rs), c(2 + rq), A | F, b""),
        seg(t, C, SV, c(2 + rq), v(2 + rs), A, b""),
    ]
}

fn run(cfg: &FlowConfig, segs: &[Segment<'_>]) -> (FlowTable, Rec) {
    let mut t = FlowTable::new(cfg);
    let mut r = Rec::default();
    for s in segs {
        t.process(s, &mut r);
    }
    let end = segs.last().map_or(Timestamp(0), |s| s.ts);
    t.finish(end, &mut r);
    (t, r)
}

#[test]
fn handshake_fin_each_way_and_events_in_order() {
    let (t, r) = run(
        &FlowConfig::default(),
        &exchange(1, 100, 900, b"GET", b"OK"),
    );
    assert_eq!(
        r.log,
        [
            "start 0",
            "data 0 orig GET",
            "mono 0 orig",
            "data 0 resp OK",
            "mono 0 resp",
            "end 0 fin"
        ]
    );
    let st = &r.stats[&0];
    assert!(st.handshake);
    assert_eq!(st.state, SessionState::Fin);
    assert_eq!(
        (st.orig.packets, st.resp.packets),
        (5, 3),
        "last ACK counted"
    );
    assert_eq!((st.orig.bytes, st.resp.bytes), (3, 2));
    assert_eq!(r.infos[0].client, addr(C));
    assert!(!r.infos[0].midstream);
    assert_eq!((t.stats().sessions, t.stats().ended_fin), (1, 1));
}

#[test]
fn rst_ends_the_session_and_its_payload_is_not_data() {
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(1, SV, C, 900, 101, S | A, b""),
        seg(1, C, SV, 101, 901, A | P, b"GET"),
        seg(1, SV, C, 901, 104, R | A, b"go away"),
        seg(1, C, SV, 104, 901, A | P, b"more"),
    ];
    let (t, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(
        r.log,
        ["start 0", "data 0 orig GET", "mono 0 orig", "end 0 rst"]
    );
    let st = &r.stats[&0];
    assert_eq!(st.state, SessionState::Rst);
    assert_eq!((st.resp.after_close, st.orig.after_close), (7, 4));
    assert_eq!(
        t.stats().sessions,
        1,
        "packets after the RST stay in the session"
    );
}

#[test]
fn reuse_of_a_four_tuple_three_times() {
    let mut segs = exchange(1, 100, 900, b"one", b"1");
    // A retransmitted SYN of the first session (same ISN): not a new session.
    segs.push(seg(2, C, SV, 100, 0, S, b""));
    segs.extend(exchange(3, 5000, 7000, b"two", b"2"));
    segs.extend(exchange(4, u32::MAX - 1, 3, b"three", b"3"));
    let (t, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(t.stats().sessions, 3);
    assert_eq!(t.stats().reused, 2);
    for (i, (q, a)) in [("one", "1"), ("two", "2"), ("three", "3")]
        .iter()
        .enumerate()
    {
        assert_eq!(r.text(i as u64, Direction::Orig), *q);
        assert_eq!(r.text(i as u64, Direction::Resp), *a);
        assert_eq!(r.stats[&(i as u64)].state, SessionState::Fin);
    }
    assert_eq!(
        r.stats[&0].orig.packets, 6,
        "the retransmitted SYN counts in session 0"
    );
}

#[test]
fn midstream_pickup_oriented_by_well_known_port() {
    let segs = [
        seg(1, SV, C, 5000, 100, A | P, b"HTTP/1.1 200"),
        seg(1, C, SV, 100, 5012, A | P, b"GET /next"),
        seg(1, SV, C, 5012, 109, A | P, b" OK"),
    ];
    let (_, r) = run(&FlowConfig::default(), &segs);
    let info = &r.infos[0];
    assert!(info.midstream);
    assert_eq!((info.client, info.server), (addr(C), addr(SV)));
    assert_eq!(r.text(0, Direction::Resp), "HTTP/1.1 200 OK");
    assert_eq!(r.text(0, Direction::Orig), "GET /next");
    assert_eq!(r.stats[&0].state, SessionState::Open);
    assert!(!r.stats[&0].handshake);
}

#[test]
fn one_sided_capture_reassembles_and_ends_with_a_gap() {
    // Only server → client, reordered, one segment never seen.
    let segs = [
        seg(1, SV, C, 10, 1, A, b"abc"),
        seg(1, SV, C, 16, 1, A, b"ghi"),
        seg(1, SV, C, 13, 1, A, b"def"),
        seg(1, SV, C, 22, 1, A, b"mno"),
    ];
    let (_, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(r.text(0, Direction::Resp), "abcdefghimno");
    assert_eq!(r.gaps, [(0, Direction::Resp, 9, 3)]);
    assert_eq!(r.stats[&0].resp.asm.gap_bytes, 3);
}

#[test]
fn ack_past_a_hole_declares_the_gap_at_once() {
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(1, SV, C, 900, 101, S | A, b""),
        seg(1, SV, C, 901, 101, A, b"ab"),
        seg(1, SV, C, 905, 101, A, b"ef"),
        seg(1, C, SV, 101, 907, A, b""),
    ];
    let mut t = FlowTable::new(&FlowConfig::default());
    let mut r = Rec::default();
    for s in &segs {
        t.process(s, &mut r);
    }
    assert_eq!(r.gaps, [(0, Direction::Resp, 2, 2)]);
    assert_eq!(r.text(0, Direction::Resp), "abef");
}

#[test]
fn issue4_good_then_evil_through_the_table() {
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(1, C, SV, 101, 0, A, b"GOOD"),
        seg(1, C, SV, 101, 0, A, b"EVIL"),
    ];
    let (t, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(r.text(0, Direction::Orig), "GOOD");
    assert_eq!(r.conflicts, [(0, Direction::Orig, 0, 4)]);
    assert_eq!(r.stats[&0].orig.asm.conflicts, 4);
    assert_eq!(t.stats().conflicts, 4);
}

#[test]
fn issue4_syn_flood_keeps_the_table_at_its_cap() {
    let cfg = FlowConfig {
        max_sessions: 1000,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(&cfg);
    #[derive(Default)]
    struct Ends(u64, u64);
    impl Listener for Ends {
        fn session_end(&mut self, _: &SessionInfo, r: EndReason, _: Timestamp) {
            self.0 += 1;
            assert_eq!(r, EndReason::Evicted);
        }
        fn session_stats(&mut self, _: &SessionInfo, st: &SessionStats) {
            assert_eq!(st.state, SessionState::Evicted);
            self.1 += 1;
        }
    }
    let mut l = Ends::default();
    const N: u32 = 1_000_000;
    for i in 0..N {
        let src = SocketAddr::from((
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            1024 + (i % 60000) as u16,
        ));
        let s = Segment {
            src,
            ..seg(1, C, SV, i, 0, S, b"")
        };
        t.process(&s, &mut l);
        assert!(t.len() <= 1000);
    }
    assert_eq!(t.len(), 1000);
    assert_eq!(t.stats().evicted, u64::from(N) - 1000);
    assert_eq!((l.0, l.1), (u64::from(N) - 1000, u64::from(N) - 1000));
}

#[test]
fn idle_timeout_ends_and_a_later_packet_opens_a_new_session() {
    let cfg = FlowConfig {
        idle_timeout: Duration::from_secs(60),
        ..FlowConfig::default()
    };
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(2, C, SV, 101, 0, A, b"a"),
        seg(100, C, SV, 102, 0, A, b"b"),
    ];
    let (t, r) = run(&cfg, &segs);
    assert_eq!(
        r.log[..4],
        ["start 0", "data 0 orig a", "mono 0 orig", "end 0 timeout"]
    );
    assert_eq!(r.stats[&0].state, SessionState::Timeout);
    assert!(r.infos[1].midstream);
    assert_eq!((t.stats().sessions, t.stats().timed_out), (2, 1));
}

#[test]
fn ooo_bound_and_memcap_end_in_counted_gaps_and_evictions() {
    let cfg = FlowConfig {
        max_ooo_bytes: 8,
        memcap: 12,
        ..FlowConfig::default()
    };
    let c2 = "10.0.0.3:40000";
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(1, C, SV, 111, 0, A, b"0123456789"), // 10 > 8: gap of 10 at once
        seg(1, c2, SV, 100, 0, S, b""),
        seg(1, c2, SV, 111, 0, A, b"abcdef"),
        seg(1, C, SV, 200, 0, A, b"ABCDEFGH"), // 14 buffered in all > 12
    ];
    let (t, r) = run(&cfg, &segs);
    assert_eq!(t.stats().ooo_overflows, 1);
    assert_eq!(r.gaps[0], (0, Direction::Orig, 0, 10));
    assert_eq!(r.text(0, Direction::Orig), "0123456789ABCDEFGH");
    assert_eq!(t.stats().memcap_flushes, 1);
    assert_eq!(t.stats().evicted_memcap, 0, "flushing session 0 was enough");
    assert_eq!(r.text(1, Direction::Orig), "abcdef");
    assert_eq!(t.memory(), 0);
}

#[test]
fn synack_first_then_late_syn_with_the_same_isn() {
    // As in arkime's synthetic capture, connection 9: the SYN comes last.
    let segs = [
        seg(1, SV, C, 31000, 30001, S | A, b""),
        seg(1, C, SV, 30001, 31001, A | P, b"GET"),
        seg(1, SV, C, 31001, 30004, A | P, b"OK"),
        seg(1, C, SV, 30004, 31003, A | F, b""),
        seg(1, SV, C, 31003, 30005, A | F, b""),
        seg(1, C, SV, 30000, 0, S, b""),
    ];
    let (t, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(t.stats().sessions, 1);
    assert_eq!(r.infos[0].client, addr(C));
    assert_eq!(r.text(0, Direction::Orig), "GET");
    assert_eq!(r.text(0, Direction::Resp), "OK");
    assert_eq!(r.stats[&0].state, SessionState::Fin);
}

#[test]
fn syn_data_is_stream_data() {
    let segs = [
        seg(1, C, SV, 100, 0, S, b"GET / HTTP/1.1\r\n"),
        seg(1, SV, C, 900, 117, S | A, b""),
        seg(1, C, SV, 117, 901, A, b"\r\n"),
    ];
    let (_, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(r.text(0, Direction::Orig), "GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn rst_far_outside_the_stream_is_ignored() {
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(1, SV, C, 900, 101, S | A, b""),
        seg(1, C, SV, 101, 901, A | P, b"GET"),
        // A blind RST, 2^30 away from the server's next byte: ignored.
        seg(1, SV, C, 901 + (1 << 30), 104, R, b""),
        seg(1, SV, C, 901, 104, A | P, b"OK"),
    ];
    let (_, r) = run(&FlowConfig::default(), &segs);
    assert_eq!(r.text(0, Direction::Resp), "OK");
    assert_eq!(r.stats[&0].resp.rst_ignored, 1);
    assert_eq!(r.stats[&0].state, SessionState::Open);
}
