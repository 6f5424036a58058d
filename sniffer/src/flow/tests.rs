//! Session lifecycle tests, from segments built here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::{listener::Direction, wire::SeqNum};

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
fn ooo_bound_ends_in_a_counted_gap() {
    let cfg = FlowConfig {
        max_ooo_bytes: 8,
        ..FlowConfig::default()
    };
    let segs = [
        seg(1, C, SV, 100, 0, S, b""),
        seg(1, C, SV, 111, 0, A, b"0123456789"), // 10 > 8: gap of 10 at once
    ];
    let (t, r) = run(&cfg, &segs);
    assert_eq!(t.stats().ooo_overflows, 1);
    assert_eq!(r.gaps, [(0, Direction::Orig, 0, 10)]);
    assert_eq!(r.text(0, Direction::Orig), "0123456789");
    assert_eq!(t.memory(), 0);
}

const C2: &str = "10.0.0.3:40000";

/// Handshakes of C and C2 with SV (ISNs 100 and 900), both established.
fn two_established<'a>() -> Vec<Segment<'a>> {
    let mut v = Vec::new();
    for c in [C, C2] {
        v.push(seg(1, c, SV, 100, 0, S, b""));
        v.push(seg(1, SV, c, 900, 101, S | A, b""));
        v.push(seg(1, c, SV, 101, 901, A, b""));
    }
    v
}

#[test]
fn memcap_flushes_the_session_over_it_then_evicts_the_least_recent_established() {
    let mut t = FlowTable::new(&FlowConfig::default());
    let mut r = Rec::default();
    for s in &two_established() {
        t.process(s, &mut r);
    }
    assert_eq!(
        t.memory(),
        2 * SESSION_ENTRY_BYTES,
        "no data yet, no streams"
    );
    t.process(&seg(1, C, SV, 101, 901, A, b"0123"), &mut r);
    // The next segment of C comes out of order; its 8 bytes and their chunk go over.
    t.cfg.memcap = t.memory() + 40;
    t.process(&seg(1, C, SV, 111, 901, A, b"ABCDEFGH"), &mut r);
    assert_eq!(t.stats().memcap_flushes, 1);
    assert_eq!(t.stats().evicted_memcap, 0, "flushing C was enough");
    assert_eq!(r.gaps, [(0, Direction::Orig, 4, 6)]);
    assert_eq!(r.text(0, Direction::Orig), "0123ABCDEFGH");
    assert!(t.memory() <= t.cfg.memcap);
    // Now C2 talks, over a cap lowered below what is held: nothing to flush in C2, so C,
    // the least recently active established session, goes.
    t.cfg.memcap = t.memory() - 1;
    t.process(&seg(2, C2, SV, 101, 901, A, b"x"), &mut r);
    assert_eq!(
        (t.stats().evicted_memcap, t.stats().evicted_unanswered),
        (1, 0)
    );
    assert_eq!(r.stats[&0].state, SessionState::Evicted);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.memory(),
        t.slots.iter().flatten().map(Session::memory).sum::<u64>()
    );
}

/// Client `i` of a flood.
fn flooder(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1024 + (i % 60000) as u16))
}

/// A download, established and carrying data, then silent, then a flood of SYNs: under
/// either bound the flood displaces itself, never the download. (Least recently active
/// alone would have evicted the download first.)
#[test]
fn a_syn_flood_displaces_itself_not_a_quiet_download() {
    for by_memory in [false, true] {
        let mut t = FlowTable::new(&FlowConfig::default());
        let mut r = Rec::default();
        for s in &exchange(1, 100, 900, b"GET /song", b"ID3")[..5] {
            t.process(s, &mut r);
        }
        const KEEP: u64 = 50;
        if by_memory {
            t.cfg.memcap = t.memory() + KEEP * SESSION_ENTRY_BYTES;
        } else {
            t.cfg.max_sessions = KEEP as usize + 1;
        }
        const N: u32 = 5000;
        for i in 0..N {
            t.process(&seg(2, &flooder(i).to_string(), SV, i, 0, S, b""), &mut r);
            assert!(t.len() as u64 <= KEEP + 1);
            assert!(t.memory() <= t.cfg.memcap);
        }
        let st = t.stats().clone();
        let evicted = u64::from(N) - KEEP;
        assert_eq!(st.evicted_unanswered, evicted, "by memory: {by_memory}");
        assert_eq!(st.evicted_closed, 0);
        if by_memory {
            assert_eq!((st.evicted, st.evicted_memcap), (0, evicted));
        } else {
            assert_eq!((st.evicted, st.evicted_memcap), (evicted, 0));
        }
        // The oldest SYNs went first: streams 1 ..= N - KEEP.
        let gone: Vec<u64> = r.stats.keys().copied().collect();
        assert_eq!(gone, (1..=evicted).collect::<Vec<_>>());
        // The download is still there, and ends whole.
        let rest = &exchange(1, 100, 900, b"GET /song", b"ID3")[5..];
        for s in rest {
            t.process(
                &Segment {
                    ts: Timestamp(3_000_000_000),
                    ..*s
                },
                &mut r,
            );
        }
        t.finish(Timestamp(3_000_000_000), &mut r);
        assert_eq!(r.stats[&0].state, SessionState::Fin);
        assert_eq!(r.text(0, Direction::Resp), "ID3");
    }
}

#[test]
fn closed_sessions_go_before_attempts_and_attempts_before_established() {
    let cfg = FlowConfig {
        max_sessions: 3,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(&cfg);
    let mut r = Rec::default();
    // Stream 0: a whole exchange, closed and lingering.
    for s in &exchange(1, 100, 900, b"GET", b"OK") {
        t.process(s, &mut r);
    }
    // Stream 1: established, quiet. Stream 2: a SYN.
    let (c1, c2) = ("10.0.0.5:1000", "10.0.0.6:1000");
    t.process(&seg(1, c1, SV, 5, 0, S, b""), &mut r);
    t.process(&seg(1, SV, c1, 7, 6, S | A, b""), &mut r);
    t.process(&seg(1, c1, SV, 6, 8, A, b""), &mut r);
    t.process(&seg(2, c2, SV, 5, 0, S, b""), &mut r);
    let evicted = |r: &Rec| -> Vec<u64> {
        r.log
            .iter()
            .filter_map(|l| {
                l.strip_suffix(" evicted")?
                    .strip_prefix("end ")?
                    .parse()
                    .ok()
            })
            .collect()
    };
    // Each new SYN needs a place: the closed session first (its end was already told, so
    // it is not ended again), then the oldest attempt, then the established one.
    let syn = |i: u32| seg(3, &flooder(i).to_string(), SV, 1, 0, S, b"");
    t.process(&syn(0), &mut r);
    assert!(r.stats.contains_key(&0));
    assert_eq!(r.stats[&0].state, SessionState::Fin);
    assert_eq!((t.stats().evicted, t.stats().evicted_closed), (1, 1));
    t.process(&syn(1), &mut r);
    t.process(&syn(2), &mut r);
    assert_eq!(evicted(&r), [2, 3]);
    assert_eq!(t.stats().evicted_unanswered, 2);
    assert!(!r.stats.contains_key(&1), "the established session stays");
    // Only established sessions left besides the new SYN... none: make stream 1 the
    // oldest of two established ones, then flood once more.
    t.process(
        &seg(4, flooder(2).to_string().as_str(), SV, 1, 0, S, b""),
        &mut r,
    );
    let sv_syn_ack = seg(4, SV, &flooder(2).to_string(), 50, 2, S | A, b"");
    t.process(&sv_syn_ack, &mut r);
    t.process(&seg(4, &flooder(2).to_string(), SV, 2, 51, A, b""), &mut r);
    t.process(&syn(3), &mut r);
    assert_eq!(
        evicted(&r),
        [2, 3, 4],
        "the attempt before anything established"
    );
    // Stream 6, syn(3), answers too: established sessions only, 1 the least recent.
    t.process(
        &seg(4, SV, &flooder(3).to_string(), 50, 2, S | A, b""),
        &mut r,
    );
    t.process(&seg(4, &flooder(3).to_string(), SV, 2, 51, A, b""), &mut r);
    t.process(&syn(4), &mut r);
    assert_eq!(evicted(&r), [2, 3, 4, 1], "then the least recently active");
    assert_eq!(t.stats().evicted, 5);
    assert_eq!(t.stats().evicted_unanswered, 3);
}

/// A capture whose time runs backwards: the list's tail is not always the oldest session.
/// What becomes the tail still expires when its time comes, as the idle check of the tail
/// has always done.
#[test]
fn expiry_follows_the_tail_when_capture_time_runs_backwards() {
    let cfg = FlowConfig {
        idle_timeout: Duration::from_secs(60),
        ..FlowConfig::default()
    };
    let (a, b, c) = ("10.0.0.7:1000", "10.0.0.8:1000", "10.0.0.9:1000");
    let segs = [
        seg(100, a, SV, 1, 0, S, b""),
        seg(50, b, SV, 1, 0, S, b""),  // stamped earlier, touched later
        seg(101, a, SV, 1, 0, S, b""), // a to the front: b is the tail, due at 110
        seg(111, c, SV, 1, 0, S, b""),
    ];
    let mut t = FlowTable::new(&cfg);
    let mut r = Rec::default();
    for s in &segs {
        t.process(s, &mut r);
    }
    assert_eq!(r.log, ["start 0", "start 1", "end 1 timeout", "start 2"]);
    assert_eq!(t.stats().timed_out, 1);
}

#[test]
fn a_syn_only_session_costs_its_entry_and_nothing_more() {
    let mut t = FlowTable::new(&FlowConfig::default());
    let mut r = Rec::default();
    t.process(&seg(1, C, SV, 100, 0, S, b""), &mut r);
    t.process(&seg(2, C, SV, 100, 0, S, b""), &mut r);
    assert_eq!(t.memory(), SESSION_ENTRY_BYTES);
    // A SYN-ACK and the ACK of the handshake allocate nothing either.
    t.process(&seg(2, SV, C, 900, 101, S | A, b""), &mut r);
    t.process(&seg(2, C, SV, 101, 901, A, b""), &mut r);
    assert_eq!(t.memory(), SESSION_ENTRY_BYTES);
    // Data does.
    t.process(&seg(2, C, SV, 101, 901, A, b"G"), &mut r);
    assert!(t.memory() > SESSION_ENTRY_BYTES + SESSION_STREAMS_BYTES);
    t.finish(Timestamp(3_000_000_000), &mut r);
    assert_eq!(t.memory(), 0);
    assert_eq!(r.text(0, Direction::Orig), "G");
}

/// The flow table against an obviously correct model of its eviction and expiry order:
/// sessions that only handshake, talk without data and close by RST, in random order, as
/// time moves on (sometimes past the linger of closed sessions, or the idle timeout),
/// under a session bound and then a memory bound.
#[test]
fn eviction_order_randomized_against_a_model() {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    #[derive(Clone, Debug)]
    struct M {
        stream: u64,
        client: u32,
        synack: bool,
        spoke: [bool; 2],
        closed: bool,
        isn: u32,
        touched: u64,
        last: u64,
    }
    impl M {
        fn deadline(&self) -> u64 {
            self.last + if self.closed { 30 } else { 60 }
        }
        fn rank(&self) -> u8 {
            if self.closed {
                0
            } else if self.spoke[0] && self.spoke[1] {
                2
            } else {
                1
            }
        }
    }
    /// Sessions leaving the table, in order: evicted, reused or expired.
    #[derive(Default)]
    struct Left(Vec<u64>);
    impl Listener for Left {
        fn session_stats(&mut self, s: &SessionInfo, _: &SessionStats) {
            self.0.push(s.stream);
        }
    }

    let mut rng = StdRng::seed_from_u64(0x12);
    for round in 0..200 {
        let by_memory = round % 2 == 1;
        let cap = rng.random_range(1..8usize);
        let cfg = FlowConfig {
            max_sessions: if by_memory { usize::MAX } else { cap },
            memcap: if by_memory {
                cap as u64 * SESSION_ENTRY_BYTES + SESSION_ENTRY_BYTES / 2
            } else {
                u64::MAX
            },
            idle_timeout: Duration::from_secs(60),
            ..FlowConfig::default()
        };
        let mut t = FlowTable::new(&cfg);
        let mut l = Left::default();
        let mut now = 1;
        let mut model: Vec<M> = Vec::new();
        let (mut expected, mut closed_ev, mut attempt_ev) = (Vec::new(), 0, 0);
        let mut next_stream = 0;
        let clients = rng.random_range(2..14u32);
        for step in 0..300u64 {
            now += [0, 0, 0, 1, 5, 20, 31, 61][rng.random_range(0..8)];
            // Expired first: the earliest deadline, closed before the rest, then the least
            // recently active.
            while let Some(k) = model
                .iter()
                .enumerate()
                .filter(|(_, m)| m.deadline() < now)
                .min_by_key(|(_, m)| (m.deadline(), m.rank(), m.touched))
                .map(|(k, _)| k)
            {
                expected.push(model.remove(k).stream);
            }
            let c = rng.random_range(0..clients);
            let client = SocketAddr::from(([10, 2, 0, c as u8], 5000));
            let cs = client.to_string();
            let live = model.iter().position(|m| m.client == c);
            let kind = rng.random_range(0..6);
            let new_isn = rng.random::<u32>();
            // What the table is sent, and what the model expects of it.
            let (segment, new_session) = match live.map(|k| model[k].clone()) {
                None => (seg(now, &cs, SV, new_isn, 0, S, b""), true),
                Some(m) => match kind {
                    0 => (seg(now, &cs, SV, m.isn, 0, S, b""), false),
                    1 => (
                        seg(now, &cs, SV, new_isn, 0, S, b""),
                        m.closed && new_isn != m.isn,
                    ),
                    2 => (
                        seg(now, SV, &cs, 7000, m.isn.wrapping_add(1), S | A, b""),
                        false,
                    ),
                    3 => (
                        seg(now, &cs, SV, m.isn.wrapping_add(1), 7001, A, b""),
                        false,
                    ),
                    4 => (seg(now, SV, &cs, 7001, 0, R, b""), false),
                    _ => (
                        seg(now, SV, &cs, 7001, m.isn.wrapping_add(1), A, b""),
                        false,
                    ),
                },
            };
            if let Some(k) = live.filter(|_| new_session) {
                expected.push(model.remove(k).stream); // reused: ended, not evicted
            }
            let victim = |model: &Vec<M>, keep: Option<u64>| {
                model
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| Some(m.stream) != keep)
                    .min_by_key(|(_, m)| (m.rank(), m.touched))
                    .map(|(k, _)| k)
            };
            let mut evict = |model: &mut Vec<M>, k: usize| {
                let m = model.remove(k);
                match m.rank() {
                    0 => closed_ev += 1,
                    1 => attempt_ev += 1,
                    _ => {}
                }
                expected.push(m.stream);
            };
            let k = if new_session {
                if !by_memory && model.len() >= cap {
                    let v = victim(&model, None).unwrap();
                    evict(&mut model, v);
                }
                model.push(M {
                    stream: next_stream,
                    client: c,
                    synack: false,
                    spoke: [false; 2],
                    closed: false,
                    isn: segment.seq.0,
                    touched: 0,
                    last: now,
                });
                next_stream += 1;
                model.len() - 1
            } else {
                live.unwrap()
            };
            let m = &mut model[k];
            m.touched = step + 1;
            m.last = now;
            let f = segment.flags;
            let from_client = segment.src == client;
            let d = usize::from(!from_client);
            if !f.has(S) || f.has(A) {
                m.spoke[d] = true;
            }
            if f.has(S | A) {
                m.synack = true;
            }
            if f.has(R) && !m.closed {
                m.closed = true;
            }
            let current = m.stream;
            t.process(&segment, &mut l);
            if by_memory {
                while model.len() > cap {
                    let v = victim(&model, Some(current)).unwrap();
                    evict(&mut model, v);
                }
            }
            assert_eq!(l.0, expected, "round {round} step {step}");
            assert_eq!(t.len(), model.len(), "round {round} step {step}");
            assert_eq!(
                t.memory(),
                SESSION_ENTRY_BYTES * model.len() as u64,
                "nothing here carries data"
            );
        }
        let st = t.stats();
        assert_eq!(
            st.evicted + st.evicted_memcap + st.reused + st.timed_out + st.ended_rst,
            expected.len() as u64 + st.evicted_closed + st.reused,
        );
        assert_eq!(
            (st.evicted_closed, st.evicted_unanswered),
            (closed_ev, attempt_ev)
        );
    }
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
