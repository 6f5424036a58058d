//! Issue 13: filter expressions select exactly the packets `tcpdump -r FILE 'tcp and (EXPR)'`
//! selects, packet by packet (by index in the file), on the external corpus and on
//! generated captures of every link type the filter reads, IPv4 and IPv6.
//!
//! The two documented differences are tested as such:
//! - VLAN tags and PPPoE: sniffer looks through them, tcpdump needs `vlan and …` and
//!   `pppoes and …`. tcpdump's selection is the union of its runs with each prefix the
//!   file needs (`vlan and `, `vlan and vlan and `, `pppoes and `, …): on a frame, only
//!   the prefix that fits its encapsulation can match.
//! - IPv6 extension headers: sniffer follows them to TCP. In the generated captures each
//!   such packet has a twin without them (a non-first fragment keeps its fragment
//!   header), and tcpdump runs on the file of twins.
//!
//! Needs tcpdump (installed by `cargo xtask setup`) and, for the corpus part, the corpus;
//! skips, saying why, otherwise (fails instead under `cargo xtask test`).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
};

use sniffer::{
    LinkType, PacketSource, Timestamp,
    capture::{
        Frame,
        file::FileSource,
        writer::{Format, PcapWriter},
    },
    decode::Decoder,
    filter::Filter,
};

/// A frame read from a file, owned.
#[derive(Clone, Debug)]
struct Owned {
    ts: Timestamp,
    link: LinkType,
    data: Vec<u8>,
    orig_len: u32,
}

impl Owned {
    fn frame(&self) -> Frame<'_> {
        Frame {
            ts: self.ts,
            link_type: self.link,
            data: &self.data,
            orig_len: self.orig_len,
        }
    }
}

/// Every frame, up to the end or to damage (a capture cut short: tcpdump reads the same).
fn read_source(mut src: FileSource) -> Vec<Owned> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = src.next_frame() {
        out.push(Owned {
            ts: f.ts,
            link: f.link_type,
            data: f.data.to_vec(),
            orig_len: f.orig_len,
        });
    }
    out
}

fn read(path: &Path) -> Vec<Owned> {
    read_source(FileSource::open(&[path.to_owned()]).unwrap())
}

/// Whether tcpdump can run; if not, the test is skipped (or fails when strict).
fn have_tcpdump() -> bool {
    let ok = Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip("tcpdump is not installed (`cargo xtask setup` installs it)");
    }
    ok
}

/// Seconds of the timestamp of the first frame in the files tcpdump reads: frame `i` is
/// stamped `INDEX_BASE + i` seconds, so tcpdump's output names the frames it selected.
const INDEX_BASE: u32 = 1_000_000_000;

/// Writes `frames` (all of link type `link`) to `path`, frame `i` stamped `INDEX_BASE + i`
/// seconds: the packets unchanged, their identity in the timestamp.
fn write_indexed(path: &Path, link: LinkType, frames: &[Owned]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(
        std::io::BufWriter::new(file),
        Format::Pcap,
        262_144,
        link,
        None,
    );
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.link, link, "one link type per file");
        let mut f = f.clone();
        f.ts = Timestamp::from_parts(u64::from(INDEX_BASE) + i as u64, 0);
        w.write_frame(&f.frame()).unwrap();
    }
    w.finish().unwrap();
}

/// The indices of the packets tcpdump selects with `filter` in the file `path` (written by
/// [`write_indexed`]); `Err` with its message if it refuses the filter.
fn tcpdump(path: &Path, filter: &str) -> Result<BTreeSet<usize>, String> {
    let out = Command::new("tcpdump")
        .arg("-r")
        .arg(path)
        .args(["-w", "-", filter])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    // A pcap file: the 24-byte header, then records of 16-byte headers (seconds, fraction,
    // captured length, wire length) and data.
    let d = out.stdout;
    assert!(d.len() >= 24, "tcpdump wrote no pcap header");
    let le = d[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || d[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let u32_at = |at: usize| {
        let b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut picked = BTreeSet::new();
    let mut at = 24;
    while at + 16 <= d.len() {
        let index = u32_at(at) - INDEX_BASE;
        assert!(picked.insert(index as usize), "frame {index} twice");
        at += 16 + u32_at(at + 8) as usize;
    }
    assert_eq!(at, d.len(), "tcpdump's output ends inside a record");
    Ok(picked)
}

fn select(frames: &[Owned], filter: &Filter) -> BTreeSet<usize> {
    frames
        .iter()
        .enumerate()
        .filter(|(_, f)| filter.matches(&f.frame()))
        .map(|(i, _)| i)
        .collect()
}

const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// The tcpdump prefix that fits a frame's encapsulation: VLAN tags, then PPPoE.
fn prefix(f: &Owned) -> String {
    let (mut ethertype, mut at) = match f.link {
        LinkType::Ethernet if f.data.len() >= 14 => (be16(&f.data, 12), 14),
        LinkType::LinuxSll if f.data.len() >= 16 => (be16(&f.data, 14), 16),
        _ => return String::new(),
    };
    let mut p = String::new();
    for _ in 0..2 {
        if !VLAN_TPIDS.contains(&ethertype) || f.data.len() < at + 4 {
            break;
        }
        p += "vlan and ";
        ethertype = be16(&f.data, at + 2);
        at += 4;
    }
    if ethertype == 0x8864 {
        p += "pppoes and ";
    }
    p
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Compares sniffer's selection on `frames` with tcpdump's on the file `tcpdump_file`
/// (written by [`write_indexed`] from `tcpdump_frames`: the same packets, or their
/// twins), for `expr`. Returns the number selected, or a description of the disagreement.
fn compare(
    label: &str,
    frames: &[Owned],
    tcpdump_file: &Path,
    tcpdump_frames: &[Owned],
    expr: &str,
) -> Result<usize, String> {
    let filter = Filter::parse(expr).map_err(|e| format!("{label}: {expr:?}: sniffer: {e}"))?;
    let ours = select(frames, &filter);
    let prefixes: BTreeSet<String> = tcpdump_frames.iter().map(prefix).collect();
    let mut theirs = BTreeSet::new();
    for p in &prefixes {
        let picked = tcpdump(tcpdump_file, &format!("{p}tcp and ({expr})"))
            .map_err(|e| format!("{label}: {expr:?}: tcpdump refused it: {e}"))?;
        theirs.extend(picked);
    }
    if ours == theirs {
        return Ok(ours.len());
    }
    let only_ours: Vec<usize> = ours.difference(&theirs).copied().collect();
    let only_theirs: Vec<usize> = theirs.difference(&ours).copied().collect();
    let mut msg = format!(
        "{label}: {expr:?}: sniffer selects {} packets, tcpdump {}; only sniffer: {:?}, only \
         tcpdump: {:?}",
        ours.len(),
        theirs.len(),
        &only_ours[..only_ours.len().min(10)],
        &only_theirs[..only_theirs.len().min(10)]
    );
    if let Some(&i) = only_ours.first().or(only_theirs.first()) {
        let hex: String = frames[i]
            .data
            .iter()
            .take(96)
            .fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
        let _ = write!(msg, "\n  frame {i} ({:?}): {hex}", frames[i].link);
    }
    Err(msg)
}

/// Expressions that mean something on most captures, IPv4 and IPv6.
const FIXED: &[&str] = &[
    "tcp",
    "port 80",
    "port 80 or 8080",
    "not port 80",
    "port http",
    "portrange 1-1023",
    "portrange 1024-65535 and not port 8080",
    "src port 80",
    "dst port 80",
    "src or dst port 80",
    "src and dst port 80",
    "net 10.0.0.0/8",
    "net 192.168.0.0/16",
    "net 172.16.0.0/12",
    "not net 10.0.0.0/8 and not net 192.168.0.0/16",
    "ip",
    "ip6",
    "ip6 and port 80",
    "ip and not port 80",
    "net 0.0.0.0/0",
    "net 2000::/3",
    "net fe80::/10 or net fd00::/8",
    "host 10",
    "net 10",
    "host 192.168",
    "net 192.168.0.0 mask 255.255.0.0",
    "net 10.0.0.0 mask 255.0.255.0",
    "port 80 or port 8080 and not host 10.0.0.5",
    "(port 80 or port 8080) and not (src net 10.0.0.0/8)",
    "! port 80 && ! port 443 || ip6",
    "tcp port 80 or 443 or 8080",
    "port 80 and not src port 80",
    "portrange 80-8080 and ip6",
    "src net 192.168.0.0/16 or dst net 10.0.0.0/8 and port 80",
];

/// Expressions built from a capture's own addresses and ports: `a`, `b` its two most
/// frequent addresses, `p`, `c` its two most frequent ports.
fn derived(a: IpAddr, b: IpAddr, p: u16, c: u16) -> Vec<String> {
    let (net_wide, net_narrow, fam) = match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            (
                format!("{}.{}.0.0/16", o[0], o[1]),
                format!("{}.{}.{}.0/24", o[0], o[1], o[2]),
                "ip",
            )
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            (
                format!("{:x}:{:x}::/32", s[0], s[1]),
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]),
                "ip6",
            )
        }
    };
    let mask = match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("net {}.{}.{}.0 mask 255.255.255.0", o[0], o[1], o[2])
        }
        IpAddr::V6(_) => format!("net {net_narrow}"),
    };
    vec![
        format!("host {a}"),
        format!("src host {a}"),
        format!("dst host {a}"),
        format!("host {a} and host {b}"),
        format!("src {a} and dst {b}"),
        format!("src and dst net {net_wide}"),
        format!("net {net_narrow}"),
        format!("not net {net_wide}"),
        format!("port {p}"),
        format!("src port {p}"),
        format!("dst port {c}"),
        format!("port {p} and not port {c}"),
        format!("portrange {}-{}", c.saturating_sub(3), c.saturating_add(3)),
        format!("port {p} or {c}"),
        format!("host {a} and port {p}"),
        format!("not host {a} or port {c}"),
        format!("(host {a} or {b}) and not src port {p}"),
        format!("host {a} or {b} and port {p}"),
        format!("{fam} host {a}"),
        format!("{fam} and not host {b}"),
        mask,
        format!("host {a} and not dst port {p} or src host {b}"),
    ]
}

/// The two most frequent addresses and ports of a capture's TCP segments.
fn most_frequent(frames: &[Owned]) -> Option<(IpAddr, IpAddr, u16, u16)> {
    let mut decoder = Decoder::new();
    let mut addrs: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut ports: BTreeMap<u16, usize> = BTreeMap::new();
    for f in frames {
        if let Some(s) = decoder.decode(&f.frame()) {
            for e in [s.src, s.dst] {
                *addrs.entry(e.ip()).or_default() += 1;
                *ports.entry(e.port()).or_default() += 1;
            }
        }
    }
    fn top<K: Ord + Copy>(m: BTreeMap<K, usize>) -> Vec<K> {
        let mut v: Vec<(K, usize)> = m.into_iter().collect();
        v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        v.into_iter().map(|(k, _)| k).collect()
    }
    let (a, p) = (top(addrs), top(ports));
    Some((*a.first()?, *a.get(1)?, *p.first()?, *p.get(1)?))
}

/// Runs `jobs` on two threads; returns the failures, each a line.
fn run_all(jobs: Vec<Box<dyn FnOnce() -> Vec<String> + Send + '_>>) -> Vec<String> {
    let jobs = std::sync::Mutex::new(jobs);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let job = jobs.lock().unwrap().pop();
                        match job {
                            Some(job) => failures.extend(job()),
                            None => return failures,
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

#[test]
fn issue13_corpus_selections_equal_tcpdumps_packet_by_packet() {
    let Some(dir) = common::corpus() else { return };
    if !have_tcpdump() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "tsv" && e != "md"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 40, "the corpus has 40 captures");
    let totals = std::sync::Mutex::new((0_usize, 0_usize, BTreeSet::new()));
    let tmp = tempfile::tempdir().unwrap();
    let jobs: Vec<Box<dyn FnOnce() -> Vec<String> + Send + '_>> = files
        .iter()
        .map(|path| {
            let (totals, tmp) = (&totals, tmp.path());
            Box::new(move || {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                // Every frame up to the end (or the damage in the one capture cut short),
                // copied unchanged with its index as its timestamp.
                let frames = read(path);
                let copy = tmp.join(format!("{name}.pcap"));
                write_indexed(&copy, frames[0].link, &frames);
                let mut exprs: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
                if let Some((a, b, p, c)) = most_frequent(&frames) {
                    exprs.extend(derived(a, b, p, c));
                }
                let mut failures = Vec::new();
                let (mut runs, mut selected) = (0, 0);
                for e in &exprs {
                    match compare(&name, &frames, &copy, &frames, e) {
                        Ok(n) => {
                            runs += 1;
                            selected += n;
                        }
                        Err(m) => failures.push(m),
                    }
                }
                let mut t = totals.lock().unwrap();
                t.0 += runs;
                t.1 += selected;
                t.2.extend(exprs);
                failures
            }) as Box<dyn FnOnce() -> Vec<String> + Send + '_>
        })
        .collect();
    let failures = run_all(jobs);
    let (runs, selected, exprs) = totals.into_inner().unwrap();
    eprintln!(
        "{runs} comparisons ({} distinct expressions) on 40 captures, {selected} packets \
         selected in all",
        exprs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every file got the fixed and derived expressions, and they selected real traffic.
    assert!(runs >= 40 * (FIXED.len() + 10), "{runs}");
    assert!(selected > 100_000, "{selected}");
}

// ---- generated captures ----

/// A small deterministic generator (xorshift), so the captures are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const V4: [[u8; 4]; 5] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 1, 2, 3],
    [192, 168, 1, 10],
    [172, 16, 5, 4],
];
const V6: [&str; 4] = ["fd00::1", "fd00::2", "2001:db8:1::7", "fe80::1"];
const PORTS: [u16; 7] = [80, 443, 8080, 22, 51000, 1023, 1024];

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0, 0, 0, 0, 0]);
    t.extend_from_slice(b"hello!");
    t
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 14, 0, 0]);
    t.extend_from_slice(b"hello!");
    t
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, ihl: u8, payload: &[u8]) -> Vec<u8> {
    let hlen = usize::from(ihl.max(5)) * 4;
    let total = (hlen + payload.len()) as u16;
    let mut h = vec![0x40 | ihl, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.resize(hlen, 1);
    h.extend_from_slice(payload);
    h
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(rest);
    h
}

/// An IPv6 extension header of `kind` (0, 43, 60: 8 bytes; 51: 12 bytes; 44: fragment
/// at `offset` 8-byte units) announcing `next`.
fn ext(kind: u8, next: u8, offset: u16) -> Vec<u8> {
    match kind {
        44 => {
            let mut h = vec![next, 0];
            h.extend_from_slice(&((offset << 3) | 1).to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 9]);
            h
        }
        51 => vec![next, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        _ => vec![next, 0, 1, 4, 0, 0, 0, 0],
    }
}

/// One network-layer packet and its tcpdump twin (equal unless it has IPv6 extension
/// headers).
struct Net {
    ours: Vec<u8>,
    twin: Vec<u8>,
    v6: bool,
}

fn random_net(rng: &mut Rng) -> Net {
    let (sp, dp) = (*rng.pick(&PORTS), *rng.pick(&PORTS));
    let v6_packet = rng.chance(45);
    if !v6_packet {
        let (s, d) = (*rng.pick(&V4), *rng.pick(&V4));
        let p = match rng.below(20) {
            0 => ipv4(s, d, 17, 0, 5, &udp(sp, dp)),
            1 => ipv4(s, d, 1, 0, 5, &[8, 0, 0, 0, 0, 1, 0, 1]),
            2 => ipv4(s, d, 6, 0x2000, 5, &tcp(sp, dp)), // first fragment
            3 => ipv4(s, d, 6, 0x00b9, 5, &tcp(sp, dp)), // later fragment
            4 => ipv4(s, d, 6, 0, 6, &tcp(sp, dp)),      // options
            5 => ipv4(s, d, 6, 0, 4, &tcp(sp, dp)),      // a bogus IHL, read as it is
            _ => ipv4(s, d, 6, 0, 5, &tcp(sp, dp)),
        };
        return Net {
            twin: p.clone(),
            ours: p,
            v6: false,
        };
    }
    let (s, d) = (v6(rng.pick::<&str>(&V6)), v6(rng.pick::<&str>(&V6)));
    match rng.below(12) {
        0 => {
            let p = ipv6(s, d, 17, &udp(sp, dp));
            Net {
                twin: p.clone(),
                ours: p,
                v6: true,
            }
        }
        1..=4 => {
            // A chain of 1..=4 extension headers, perhaps with a fragment header; after a
            // later fragment's header only data follows, so it announces TCP.
            let n = 1 + rng.below(4);
            let kinds: Vec<u8> = (0..n).map(|_| *rng.pick(&[0, 43, 60, 51, 44])).collect();
            let later = rng.chance(40) && kinds.contains(&44);
            let mut bytes = Vec::new();
            for (i, &k) in kinds.iter().enumerate() {
                if k == 44 && later {
                    bytes.extend(ext(44, 6, 100));
                    break;
                }
                bytes.extend(ext(k, kinds.get(i + 1).copied().unwrap_or(6), 0));
            }
            bytes.extend(tcp(sp, dp));
            let twin = if later {
                ipv6(s, d, 44, &[ext(44, 6, 100), tcp(sp, dp)].concat())
            } else {
                ipv6(s, d, 6, &tcp(sp, dp))
            };
            Net {
                ours: ipv6(s, d, kinds[0], &bytes),
                twin,
                v6: true,
            }
        }
        5 => {
            // Seven headers: more than sniffer follows, so not TCP; the twin says so
            // with "no next header".
            let mut bytes = Vec::new();
            for i in 0..7 {
                bytes.extend(ext(60, if i == 6 { 6 } else { 60 }, 0));
            }
            bytes.extend(tcp(sp, dp));
            Net {
                ours: ipv6(s, d, 60, &bytes),
                twin: ipv6(s, d, 59, &tcp(sp, dp)),
                v6: true,
            }
        }
        _ => {
            let p = ipv6(s, d, 6, &tcp(sp, dp));
            Net {
                twin: p.clone(),
                ours: p,
                v6: true,
            }
        }
    }
}

/// A generated capture: one link type, our frames and tcpdump's twins.
struct Generated {
    name: &'static str,
    link: LinkType,
    ours: Vec<Vec<u8>>,
    twins: Vec<Vec<u8>>,
    /// Captured length of each frame, when cut short (the rest is lost).
    cut: Vec<Option<usize>>,
}

impl Generated {
    fn new(name: &'static str, link: LinkType) -> Self {
        Self {
            name,
            link,
            ours: Vec::new(),
            twins: Vec::new(),
            cut: Vec::new(),
        }
    }

    fn push(&mut self, head: &[u8], net: &Net, tail: &[u8]) {
        self.ours.push([head, &net.ours, tail].concat());
        self.twins.push([head, &net.twin, tail].concat());
        self.cut.push(None);
    }

    fn push_raw(&mut self, frame: Vec<u8>) {
        self.ours.push(frame.clone());
        self.twins.push(frame);
        self.cut.push(None);
    }

    /// Our frames, and tcpdump's twins written to a file for it: (ours, twins file,
    /// twins).
    fn write(&self, dir: &Path) -> (Vec<Owned>, PathBuf, Vec<Owned>) {
        let owned = |frames: &[Vec<u8>]| -> Vec<Owned> {
            frames
                .iter()
                .zip(&self.cut)
                .enumerate()
                .map(|(i, (data, cut))| Owned {
                    ts: Timestamp::from_parts(u64::from(INDEX_BASE) + i as u64, 0),
                    link: self.link,
                    data: data[..cut.unwrap_or(data.len()).min(data.len())].to_vec(),
                    orig_len: data.len() as u32,
                })
                .collect()
        };
        let (ours, twins) = (owned(&self.ours), owned(&self.twins));
        let path = dir.join(format!("{}-twins.pcap", self.name));
        write_indexed(&path, self.link, &twins);
        (ours, path, twins)
    }
}

const ETH: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

fn ethertype(v6: bool) -> [u8; 2] {
    if v6 { [0x86, 0xdd] } else { [0x08, 0x00] }
}

fn generate() -> Vec<Generated> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut eth = Generated::new("ethernet", LinkType::Ethernet);
    for _ in 0..600 {
        let net = random_net(&mut rng);
        let et = ethertype(net.v6);
        let ppp = if net.v6 { [0, 0x57] } else { [0, 0x21] };
        let pppoe = [&[0x88, 0x64, 0x11, 0, 0, 1, 0, 40][..], &ppp].concat();
        let head: Vec<u8> = match rng.below(10) {
            0 => [&ETH[..], &[0x81, 0, 0, 5], &et].concat(),
            1 => [&ETH[..], &[0x88, 0xa8, 0, 5, 0x81, 0, 0, 6], &et].concat(),
            2 => [&ETH[..], &[0x91, 0, 0, 5, 0x81, 0, 0, 6], &et].concat(),
            3 => [&ETH[..], &pppoe].concat(),
            4 => [&ETH[..], &[0x81, 0, 0, 5], &pppoe].concat(),
            _ => [&ETH[..], &et].concat(),
        };
        eth.push(&head, &net, &[]);
    }
    // Not IP, and not TCP at all.
    eth.push_raw([&ETH[..], &[0x08, 0x06], &[0; 28]].concat());
    eth.push_raw([&ETH[..], &[0x88, 0xcc], &[0; 20]].concat());
    // Three VLAN tags: more than looked through.
    eth.push_raw(
        [
            &ETH[..],
            &[0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0],
            &ipv4(V4[0], V4[1], 6, 0, 5, &tcp(80, 51000)),
        ]
        .concat(),
    );
    // Cut by the snap length: before the IP protocol (never TCP), and after the ports
    // (enough for every test). In between the answer may depend on the order in which
    // tcpdump's program reads the fields; sniffer then never matches (see the unit tests).
    for (cut_at, v6) in [(14 + 8, false), (14 + 20 + 4, false), (14 + 40 + 4, true)] {
        let p = if v6 {
            ipv6(v6_addr(0), v6_addr(1), 6, &tcp(80, 1024))
        } else {
            ipv4(V4[0], V4[1], 6, 0, 5, &tcp(80, 1024))
        };
        eth.push_raw([&ETH[..], &ethertype(v6), &p].concat());
        *eth.cut.last_mut().unwrap() = Some(cut_at);
    }

    let mut raw = Generated::new("raw", LinkType::Raw);
    let mut null = Generated::new("null", LinkType::Null);
    let mut lo = Generated::new("loop", LinkType::Loop);
    let mut sll = Generated::new("sll", LinkType::LinuxSll);
    let mut sll2 = Generated::new("sll2", LinkType::LinuxSll2);
    for _ in 0..300 {
        let net = random_net(&mut rng);
        raw.push(&[], &net, &[]);
        let af: u32 = if net.v6 { *rng.pick(&[24, 28, 30]) } else { 2 };
        null.push(&af.to_le_bytes(), &net, &[]);
        lo.push(&af.to_be_bytes(), &net, &[]);
        let et = ethertype(net.v6);
        sll.push(
            &[&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0][..], &et].concat(),
            &net,
            &[],
        );
        sll2.push(
            &[
                &et[..],
                &[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0],
            ]
            .concat(),
            &net,
            &[],
        );
    }
    // A Linux AF_INET6 (10) on a BSD loopback header: libpcap knows only 24, 28, 30.
    let net = random_net(&mut rng);
    null.push(&10_u32.to_le_bytes(), &net, &[]);

    let mut radiotap = Generated::new("radiotap", LinkType::Ieee80211Radiotap);
    let mut wlan = Generated::new("wlan", LinkType::Ieee80211);
    for _ in 0..400 {
        let net = random_net(&mut rng);
        // Frame control: data, QoS data, null data (no body, still "data"), beacon.
        let fc = *rng.pick(&[0x08_u8, 0x08, 0x88, 0x88, 0x48, 0x80]);
        let mut mac = vec![fc, 0x01, 0, 0];
        mac.extend_from_slice(&[2; 18]);
        mac.extend_from_slice(&[0x10, 0]);
        if fc & 0x80 != 0 && fc & 0x0c == 0x08 {
            mac.extend_from_slice(&[0, 0]); // QoS control
        }
        let snap = [&[0xaa, 0xaa, 0x03, 0, 0, 0][..], &ethertype(net.v6)].concat();
        wlan.push(&[mac.clone(), snap.clone()].concat(), &net, &[]);
        // Radiotap: none of the flags, flags, flags with data padding, TSFT + flags with
        // padding, or padding announced beyond an extended present word (which libpcap
        // does not look at).
        let (rt, pads): (Vec<u8>, bool) = match rng.below(5) {
            0 => (vec![0, 0, 8, 0, 0, 0, 0, 0], false),
            1 => (vec![0, 0, 10, 0, 2, 0, 0, 0, 0x00, 0], false),
            2 => (vec![0, 0, 10, 0, 2, 0, 0, 0, 0x20, 0], true),
            3 => (
                [&[0, 0, 18, 0, 3, 0, 0, 0][..], &[7; 8], &[0x20, 0]].concat(),
                true,
            ),
            _ => (vec![0, 0, 14, 0, 2, 0, 0, 0x80, 0, 0, 0, 0, 0x20, 0], false),
        };
        let mut head = [rt.clone(), mac].concat();
        if pads {
            while head.len() % 4 != 0 {
                head.push(0);
            }
        }
        head.extend_from_slice(&snap);
        radiotap.push(&head, &net, &[]);
    }
    vec![eth, raw, null, lo, sll, sll2, radiotap, wlan]
}

fn v6_addr(i: usize) -> [u8; 16] {
    v6(V6[i])
}

/// Random expressions over the generated captures' addresses and ports.
fn random_exprs(rng: &mut Rng, n: usize) -> Vec<String> {
    fn prim(rng: &mut Rng) -> String {
        let dir = *rng.pick(&["", "src ", "dst ", "src and dst ", "src or dst "]);
        match rng.below(11) {
            0 => (*rng.pick(&["ip", "ip6", "tcp"])).to_owned(),
            1..=3 => format!("{dir}port {}", rng.pick(&PORTS)),
            4 => format!(
                "{dir}portrange {}",
                rng.pick(&["1-1023", "1024-8080", "443-80"])
            ),
            5 | 6 => {
                let a = rng.pick(&V4);
                format!("{dir}host {}.{}.{}.{}", a[0], a[1], a[2], a[3])
            }
            7 => format!(
                "{dir}net {}",
                rng.pick(&[
                    "10.0.0.0/8",
                    "10.0.0.0/24",
                    "192.168.0.0/16",
                    "172.16.0.0 mask 255.240.0.0",
                    "10.0.0.0 mask 255.0.255.0",
                    "10"
                ])
            ),
            8 => format!("{dir}host {}", rng.pick(&V6)),
            9 => format!(
                "{dir}net {}",
                rng.pick(&[
                    "fd00::/8",
                    "fd00::/64",
                    "2001:db8::/32",
                    "fe80::/10",
                    "::/0"
                ])
            ),
            _ => format!("{}port {} or {}", dir, rng.pick(&PORTS), rng.pick(&PORTS)),
        }
    }
    fn expr(rng: &mut Rng, depth: u32) -> String {
        if depth == 0 || rng.chance(30) {
            return prim(rng);
        }
        let (a, b) = (expr(rng, depth - 1), expr(rng, depth - 1));
        match rng.below(6) {
            0 => format!("not ({a})"),
            1 => format!("{a} and {b}"),
            2 => format!("{a} or {b}"),
            3 => format!("({a}) and ({b})"),
            4 => format!("({a}) or not ({b})"),
            _ => format!("! ({a}) && ({b}) || ({b})"),
        }
    }
    (0..n).map(|_| expr(rng, 3)).collect()
}

#[test]
fn issue13_generated_captures_selections_equal_tcpdumps_packet_by_packet() {
    if !have_tcpdump() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let mut exprs: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
    exprs.extend(derived(
        "10.0.0.1".parse().unwrap(),
        "192.168.1.10".parse().unwrap(),
        80,
        1024,
    ));
    exprs.extend(derived(
        "fd00::1".parse().unwrap(),
        "2001:db8:1::7".parse().unwrap(),
        443,
        51000,
    ));
    exprs.extend(random_exprs(&mut rng, 60));
    let captures = generate();
    let counts = std::sync::Mutex::new(BTreeMap::new());
    let jobs: Vec<Box<dyn FnOnce() -> Vec<String> + Send + '_>> = captures
        .iter()
        .map(|g| {
            let (dir, exprs, counts) = (dir.path(), &exprs, &counts);
            Box::new(move || {
                let (ours, twins_path, twins) = g.write(dir);
                let mut failures = Vec::new();
                let mut selected = 0;
                for e in exprs {
                    match compare(g.name, &ours, &twins_path, &twins, e) {
                        Ok(n) => selected += n,
                        // tcpdump refuses a filter that can never match; so must sniffer
                        // select nothing with it.
                        Err(m) if m.contains("rejects all packets") => {
                            if let Ok(f) = Filter::parse(e) {
                                let n = select(&ours, &f).len();
                                if n > 0 {
                                    failures.push(format!(
                                        "{}: {e:?}: tcpdump: matches nothing; sniffer: {n}",
                                        g.name
                                    ));
                                }
                            }
                        }
                        Err(m) => failures.push(m),
                    }
                }
                counts
                    .lock()
                    .unwrap()
                    .insert(g.name, (ours.len(), selected));
                failures
            }) as Box<dyn FnOnce() -> Vec<String> + Send + '_>
        })
        .collect();
    let failures = run_all(jobs);
    let counts = counts.into_inner().unwrap();
    eprintln!(
        "{} expressions; (frames, packets selected) per capture: {counts:?}",
        exprs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(counts.len(), 8);
    // Every capture had packets selected many times over: the comparisons mean something.
    for (name, (frames, selected)) in &counts {
        assert!(
            *selected > 5 * frames,
            "{name}: {frames} frames, {selected} selected"
        );
    }
}
