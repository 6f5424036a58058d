//! Unit tests of the filter: the parser from literals (precedence, continuation, errors
//! with columns), normalisation, the kernel compilation, and the evaluator and the
//! kernel tables against a slow, obvious model on random packets and expressions.

use std::net::IpAddr;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

use super::{
    Dir, Expr, Family, Filter, FilterError, Net, Prim,
    kernel::kernel_decides,
    packet::{Key, Packet},
    parse::parse,
};
use crate::{
    capture::{Frame, KernelFilter, LinkType},
    wire::Timestamp,
};

fn port(dir: Dir, p: u16) -> Expr {
    Expr::Prim(Prim::ports(dir, p, p))
}

fn host4(dir: Dir, a: [u8; 4]) -> Expr {
    Expr::Prim(Prim::addrs(
        dir,
        Net::V4 {
            addr: u32::from_be_bytes(a),
            mask: u32::MAX,
        },
    ))
}

fn net4(a: [u8; 4], len: u32) -> Expr {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Expr::Prim(Prim::addrs(
        Dir::Either,
        Net::V4 {
            addr: u32::from_be_bytes(a),
            mask,
        },
    ))
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(vec![a, b])
}

fn or(a: Expr, b: Expr) -> Expr {
    Expr::Or(vec![a, b])
}

fn not(a: Expr) -> Expr {
    Expr::Not(Box::new(a))
}

fn p(text: &str) -> Expr {
    parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

const E: Dir = Dir::Either;

#[test]
fn and_or_have_equal_precedence_left_to_right_and_not_binds_tightest() {
    let (a, b, c) = (port(E, 1), port(E, 2), port(E, 3));
    assert_eq!(
        p("port 1 or port 2 and port 3"),
        and(or(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        p("port 1 and port 2 or port 3"),
        or(and(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        p("port 1 or (port 2 and port 3)"),
        or(a.clone(), and(b.clone(), c.clone()))
    );
    assert_eq!(p("not port 1 or port 2"), or(not(a.clone()), b.clone()));
    assert_eq!(
        p("! port 1 && ! ( port 2 || port 3 )"),
        and(not(a.clone()), not(or(b.clone(), c.clone())))
    );
    assert_eq!(p("not not port 1"), not(not(a.clone())));
    // The example: (port 80 or port 8080) and not host 10.0.0.5.
    assert_eq!(
        p("port 80 or port 8080 and not host 10.0.0.5"),
        and(or(port(E, 80), port(E, 8080)), not(host4(E, [10, 0, 0, 5])))
    );
}

#[test]
fn a_bare_id_continues_the_qualifiers_before_it() {
    assert_eq!(p("port 80 or 8080"), or(port(E, 80), port(E, 8080)));
    assert_eq!(
        p("tcp dst port 80 or 443"),
        or(port(Dir::Dst, 80), port(Dir::Dst, 443))
    );
    assert_eq!(
        p("src host 10.0.0.1 or 10.0.0.2 and not 10.0.0.3"),
        and(
            or(
                host4(Dir::Src, [10, 0, 0, 1]),
                host4(Dir::Src, [10, 0, 0, 2])
            ),
            not(host4(Dir::Src, [10, 0, 0, 3]))
        )
    );
    // The last operand's qualifiers: host, then port.
    assert_eq!(
        p("host 10.0.0.1 and port 80 or 81"),
        or(and(host4(E, [10, 0, 0, 1]), port(E, 80)), port(E, 81))
    );
    assert_eq!(
        p("not port 80 or 8080"),
        or(not(port(E, 80)), port(E, 8080))
    );
    // After a parenthesis: the qualifiers in force before it (libpcap's $<blk>0).
    assert_eq!(
        p("port 80 or (host 1.2.3.4) or 8080"),
        or(or(port(E, 80), host4(E, [1, 2, 3, 4])), port(E, 8080))
    );
    // A qualifier over a parenthesised list.
    assert_eq!(
        p("host (10.0.0.1 or 10.0.0.2)"),
        or(host4(E, [10, 0, 0, 1]), host4(E, [10, 0, 0, 2]))
    );
    assert_eq!(
        p("port 80 and (8080 or 443)"),
        and(port(E, 80), or(port(E, 8080), port(E, 443)))
    );
    assert_eq!(p("host not 10.0.0.1"), not(host4(E, [10, 0, 0, 1])));
}

#[test]
fn directions_protocols_and_values() {
    assert_eq!(p("src or dst port 80"), port(E, 80));
    assert_eq!(p("dst or src port 80"), port(E, 80));
    assert_eq!(p("src and dst port 80"), port(Dir::Both, 80));
    assert_eq!(p("dst and src port 80"), port(Dir::Both, 80));
    assert_eq!(p("src port 80"), port(Dir::Src, 80));
    assert_eq!(p("dst 10.0.0.1"), host4(Dir::Dst, [10, 0, 0, 1]));
    assert_eq!(p("tcp"), Expr::Const(true));
    assert_eq!(p("ip"), Expr::Prim(Prim::Family(Family::V4)));
    assert_eq!(p("ip6"), Expr::Prim(Prim::Family(Family::V6)));
    assert_eq!(p("ip host 10.0.0.1"), host4(E, [10, 0, 0, 1]));
    assert_eq!(p("tcp port 80"), port(E, 80));
    // Numbers: octal with a leading zero, hexadecimal; address parts are decimal.
    assert_eq!(p("port 010"), port(E, 8));
    assert_eq!(p("port 0x50"), port(E, 80));
    assert_eq!(p("host 010.0.0.1"), host4(E, [10, 0, 0, 1]));
    // Short forms, as libpcap promotes them.
    assert_eq!(p("host 10.1"), net4([10, 1, 0, 0], 16));
    assert_eq!(p("net 10"), net4([10, 0, 0, 0], 8));
    assert_eq!(p("net 172.16"), net4([172, 16, 0, 0], 16));
    assert_eq!(p("host 10"), host4(E, [0, 0, 0, 10]));
    assert_eq!(p("net 10.1.2.3"), host4(E, [10, 1, 2, 3]));
    assert_eq!(p("net 192.168.0.0/16"), net4([192, 168, 0, 0], 16));
    assert_eq!(p("net 0.0.0.0/0"), net4([0, 0, 0, 0], 0));
    assert_eq!(p("net 10.0.0.0 mask 255.0.0.0"), net4([10, 0, 0, 0], 8));
    assert_eq!(
        p("net 10.0.0.0 mask 255.0.255.0"),
        Expr::Prim(Prim::addrs(
            E,
            Net::V4 {
                addr: 0x0a00_0000,
                mask: 0xff00_ff00
            }
        ))
    );
    let v6 = |s: &str, len: u32| {
        Expr::Prim(Prim::addrs(
            E,
            Net::V6 {
                addr: u128::from(s.parse::<std::net::Ipv6Addr>().unwrap()),
                mask: if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                },
            },
        ))
    };
    assert_eq!(p("host ::1"), v6("::1", 128));
    assert_eq!(p("host ::1/128"), v6("::1", 128));
    assert_eq!(p("ip6 net fe80::/10"), v6("fe80::", 10));
    assert_eq!(p("net 2001:db8:: / 32"), v6("2001:db8::", 32));
    assert_eq!(p("port http"), port(E, 80));
    assert_eq!(
        p("portrange http-https"),
        Expr::Prim(Prim::ports(E, 80, 443))
    );
    assert_eq!(p("portrange 90-80"), Expr::Prim(Prim::ports(E, 80, 90)));
    assert_eq!(
        p("portrange http-alt-9000"),
        Expr::Prim(Prim::ports(E, 8080, 9000))
    );
    assert_eq!(p("portrange 81"), port(E, 81));
    assert_eq!(p(""), Expr::Const(true));
    assert_eq!(p("  "), Expr::Const(true));
}

/// (expression, column, token, kind, a piece of the message)
#[test]
fn errors_name_the_token_and_its_column() {
    #[rustfmt::skip]
    let cases: &[(&str, usize, &str, &str, &str)] = &[
        ("port http2", 6, "http2", "syntax", "expected a port number after 'port', found 'http2'"),
        ("port 80 or", 11, "", "syntax", "ends early"),
        ("port", 5, "", "syntax", "expected a port number after 'port'"),
        ("udp port 53", 1, "udp", "unsupported", "sees only TCP"),
        ("vlan and port 80", 1, "vlan", "unsupported", "look through VLAN tags"),
        ("tcp[13] & 2 != 0", 4, "[", "unsupported", "byte offsets"),
        ("port 80 & port 81", 9, "&", "unsupported", "arithmetic"),
        ("net 10.1.2.3/8", 5, "10.1.2.3", "invalid", "bits set beyond"),
        ("host 10.0.0.0/8", 14, "/", "invalid", "needs 'net'"),
        ("src 10.0.0.0/8", 13, "/", "invalid", "needs 'net'"),
        ("net 10/8", 5, "10", "invalid", "dotted form"),
        ("10.0.0.1", 1, "10.0.0.1", "syntax", "needs a qualifier"),
        ("ip and 10.0.0.1", 8, "10.0.0.1", "syntax", "needs a qualifier"),
        ("(host 1.2.3.4) or 8080", 19, "8080", "syntax", "needs a qualifier"),
        ("(port 80", 1, "(", "syntax", "never closed"),
        ("port 80)", 8, ")", "syntax", "no matching '('"),
        ("port 80 host 1.2.3.4", 9, "host", "syntax", "expected 'and' or 'or' before 'host'"),
        ("port 65536", 6, "65536", "invalid", "out of range"),
        ("port 08", 6, "08", "invalid", "not a port number"),
        ("ip port 80", 1, "ip", "invalid", "'ip' cannot qualify 'port'"),
        ("ip6 host 1.2.3.4", 1, "ip6", "invalid", "IPv4 address '1.2.3.4'"),
        ("ip host ::1", 1, "ip", "invalid", "IPv6 address '::1'"),
        ("ip host 1.2.3.4 or ::1", 1, "ip", "invalid", "IPv6 address '::1'"),
        ("tcp host 1.2.3.4", 1, "tcp", "invalid", "cannot qualify an address"),
        ("host example.com", 6, "example.com", "unsupported", "not looked up"),
        ("host 1.2.3.256", 6, "1.2.3.256", "invalid", "not an IPv4 address"),
        ("host fe80::1::2", 6, "fe80::1::2", "invalid", "not an IPv4 or IPv6 address"),
        ("net fe80::1/10", 5, "fe80::1", "invalid", "bits set beyond"),
        ("net ::/129", 8, "129", "invalid", "at most 128"),
        ("net 10.0.0.0/33", 14, "33", "invalid", "at most 32"),
        ("host port 80", 6, "port", "syntax", "expected an address after 'host', found 'port'"),
        ("port 80 and or port 81", 13, "or", "syntax", "expected a test"),
        ("mask 255.0.0.0", 1, "mask", "syntax", "must follow a network address"),
        ("portrange 80-x", 11, "80-x", "syntax", "port range"),
        ("port 80 or ()", 13, ")", "syntax", "expected a test"),
        ("port 80/8", 8, "/", "syntax", "no '/'"),
        ("port 80 or gateway x", 12, "gateway", "unsupported", "not supported"),
    ];
    for &(text, column, token, kind, piece) in cases {
        let e = Filter::parse(text).expect_err(text);
        let k = match &e {
            FilterError::Syntax { .. } => "syntax",
            FilterError::Unsupported { .. } => "unsupported",
            FilterError::Invalid { .. } => "invalid",
            FilterError::MatchesNothing => "nothing",
        };
        assert_eq!(
            (e.column(), e.token(), k),
            (column, token, kind),
            "{text:?}: {e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(piece), "{text:?}: {msg}");
        assert!(msg.starts_with(&format!("column {column}: ")), "{msg}");
    }
    assert_eq!(Filter::parse("not tcp"), Err(FilterError::MatchesNothing));
    assert_eq!(
        Filter::parse("tcp and not tcp"),
        Err(FilterError::MatchesNothing)
    );
}

#[test]
fn normalisation_merges_sets_of_one_direction() {
    let f = Filter::parse("port 80 or port 8080 or portrange 81-90 or src port 1").unwrap();
    assert_eq!(
        f.expr,
        Expr::Or(vec![
            Expr::Prim(Prim::Ports {
                dir: E,
                ranges: vec![(80, 90), (8080, 8080)]
            }),
            port(Dir::Src, 1),
        ])
    );
    // "both ends in {80, 81}" is not "both ends 80, or both ends 81".
    let f = Filter::parse("src and dst port 80 or src and dst port 81").unwrap();
    assert_eq!(
        f.expr,
        or(port(Dir::Both, 80), port(Dir::Both, 81)).normalize()
    );
    assert!(matches!(&f.expr, Expr::Or(v) if v.len() == 2));
    let f = Filter::parse("tcp and (not not port 80)").unwrap();
    assert_eq!(f.expr, port(E, 80));
    assert_eq!(
        Filter::parse("port 80 or tcp").unwrap().expr,
        Expr::Const(true)
    );
    assert_eq!(
        Filter::parse("host 10.0.0.2 or host 10.0.0.1 or host 10.0.0.2")
            .unwrap()
            .expr
            .to_string(),
        "(host 10.0.0.1 or host 10.0.0.2)"
    );
    assert_eq!(
        Filter::parse("ip and ip or ip6").unwrap().expr.to_string(),
        "(ip and ip) or ip6"
    );
}

#[test]
fn the_port_shorthand_compiles_to_the_kernel_port_set() {
    let f = Filter::ports(&[80, 8080]);
    assert_eq!(f.text(), "port 80 or port 8080");
    assert_eq!(f, Filter::parse("port 80 or port 8080").unwrap());
    let plan = f.live();
    assert!(plan.kernel_is_exact());
    assert_eq!(plan.kernel, KernelFilter::ports(&[80, 8080]));
    let all = Filter::parse("tcp").unwrap().live();
    assert_eq!(all.kernel, KernelFilter::all_tcp());
}

#[test]
fn too_many_tests_or_a_non_prefix_mask_leave_work_to_userspace() {
    let six = "port 1 and src port 2 or dst port 3 and host 10.0.0.1 or src net 10.0.0.0/8 or ip6";
    let plan = Filter::parse(six).unwrap().live();
    assert!(plan.kernel_is_exact());
    assert_eq!(plan.kernel.program.n_tests, 6);
    let seven = format!("{six} or dst host 10.0.0.9");
    let plan = Filter::parse(&seven).unwrap().live();
    assert!(!plan.kernel_is_exact());
    assert_eq!(plan.kernel.program.n_tests, 6);
    let plan = Filter::parse("net 10.0.0.0 mask 255.0.255.0 and port 80")
        .unwrap()
        .live();
    assert!(!plan.kernel_is_exact());
    assert_eq!(plan.kernel.program.n_tests, 1);
    // port 80 known true, the mask test unknown: maybe; port 80 false: no.
    assert_eq!(plan.kernel.program.truth, 0b10);
}

/// A test of one network carries it (a mask and a compare in the kernel); a test of
/// several networks looks them up in the trie.
#[test]
fn one_network_is_compared_inline_several_are_looked_up() {
    use sniffer_ebpf::{TEST_ADDR, TEST_NET};
    let plan = Filter::parse("src net 192.168.0.0/16 and not host fd00::1")
        .unwrap()
        .live();
    let tests = &plan.kernel.program.tests;
    assert_eq!((tests[0].kind, tests[1].kind), (TEST_NET, TEST_NET));
    assert!(plan.kernel.addrs.is_empty());
    // 192.168/16 as it lies in the key: bytes c0 a8 00 00, mask ff ff 00 00.
    assert_eq!(
        tests[0].net[0].to_ne_bytes(),
        [0xc0, 0xa8, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        tests[0].mask[0].to_ne_bytes(),
        [0xff, 0xff, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!((tests[0].net[1], tests[0].mask[1]), (0, 0));
    assert_eq!((tests[1].mask[0], tests[1].mask[1]), (u64::MAX, u64::MAX));
    let plan = Filter::parse("host 10.0.0.1 or host 10.0.0.2")
        .unwrap()
        .live();
    assert_eq!(plan.kernel.program.tests[0].kind, TEST_ADDR);
    assert_eq!(plan.kernel.addrs.len(), 2);
}

// ---- the slow, obvious model ----

/// What the model knows of a packet, from etherparse.
#[derive(Debug)]
struct Fields {
    src: IpAddr,
    dst: IpAddr,
    /// None for a non-first fragment.
    ports: Option<(u16, u16)>,
}

/// The packet's fields if it is TCP, parsed by etherparse.
fn model_fields(link: LinkType, frame: &[u8]) -> Option<Fields> {
    let sliced = match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame).ok()?,
        _ => SlicedPacket::from_ip(frame).ok()?,
    };
    let (src, dst, proto, fragmented, first) = match sliced.net? {
        etherparse::NetSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.protocol(),
                h.is_fragmenting_payload(),
                h.fragments_offset().value() == 0,
            )
        }
        etherparse::NetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.next_header(),
                false,
                true,
            )
        }
        _ => return None,
    };
    if proto != etherparse::IpNumber::TCP {
        return None;
    }
    let ports = if fragmented && !first {
        None
    } else {
        match sliced.transport {
            Some(TransportSlice::Tcp(t)) => Some((t.source_port(), t.destination_port())),
            // A first fragment: etherparse leaves the transport alone; read it by hand.
            _ => {
                let t = &frame[frame.len() - TCP_LEN..];
                Some((
                    u16::from_be_bytes([t[0], t[1]]),
                    u16::from_be_bytes([t[2], t[3]]),
                ))
            }
        }
    };
    Some(Fields { src, dst, ports })
}

/// Bytes of TCP header and payload in the random packets; IPv4's header sits just before.
const TCP_LEN: usize = 20 + 4;
const IP4_OFF: usize = 20;

fn model_net(n: &Net, a: IpAddr) -> bool {
    match (n, a) {
        (Net::V4 { addr, mask }, IpAddr::V4(x)) => u32::from(x) & mask == *addr,
        (Net::V6 { addr, mask }, IpAddr::V6(x)) => u128::from(x) & mask == *addr,
        _ => false,
    }
}

fn model_dir(dir: Dir, s: bool, d: bool) -> bool {
    match dir {
        Dir::Src => s,
        Dir::Dst => d,
        Dir::Either => s || d,
        Dir::Both => s && d,
    }
}

fn model(e: &Expr, f: &Fields) -> bool {
    match e {
        Expr::Const(b) => *b,
        Expr::Not(x) => !model(x, f),
        Expr::And(xs) => xs.iter().all(|x| model(x, f)),
        Expr::Or(xs) => xs.iter().any(|x| model(x, f)),
        Expr::Prim(Prim::Family(Family::V4)) => f.src.is_ipv4(),
        Expr::Prim(Prim::Family(Family::V6)) => f.src.is_ipv6(),
        Expr::Prim(Prim::Ports { dir, ranges }) => match f.ports {
            None => false,
            Some((s, d)) => {
                let inside = |p: u16| ranges.iter().any(|&(lo, hi)| lo <= p && p <= hi);
                model_dir(*dir, inside(s), inside(d))
            }
        },
        Expr::Prim(Prim::Addrs { dir, nets }) => model_dir(
            *dir,
            nets.iter().any(|n| model_net(n, f.src)),
            nets.iter().any(|n| model_net(n, f.dst)),
        ),
    }
}

const V4S: [[u8; 4]; 5] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 0, 1, 1],
    [192, 168, 1, 1],
    [192, 168, 2, 7],
];
const V6S: [&str; 4] = ["fd00::1", "fd00::2", "fd00:1::1", "2001:db8::5"];
const PORTS: [u16; 6] = [80, 443, 8080, 1234, 50000, 0];

/// A random frame: Ethernet (maybe VLAN-tagged) or raw IP, IPv4 or IPv6, TCP mostly,
/// sometimes UDP, sometimes an IPv4 fragment.
fn random_frame(rng: &mut StdRng) -> (LinkType, Vec<u8>) {
    let v6 = rng.random_bool(0.4);
    let (sp, dp) = (*PORTS.choose(rng).unwrap(), *PORTS.choose(rng).unwrap());
    let payload = [0x11_u8; 4];
    let mut out = Vec::new();
    let udp = rng.random_bool(0.1);
    let link = if rng.random_bool(0.7) {
        LinkType::Ethernet
    } else {
        LinkType::Raw
    };
    macro_rules! finish {
        ($ip:expr) => {{
            let b = $ip;
            if udp {
                b.udp(sp, dp).write(&mut out, &payload).unwrap();
            } else {
                b.tcp(sp, dp, 7, 1000).write(&mut out, &payload).unwrap();
            }
        }};
    }
    macro_rules! ip {
        ($l2:expr) => {{
            if v6 {
                let s: std::net::Ipv6Addr = V6S.choose(rng).unwrap().parse().unwrap();
                let d: std::net::Ipv6Addr = V6S.choose(rng).unwrap().parse().unwrap();
                finish!($l2.ipv6(s.octets(), d.octets(), 64));
            } else {
                let s = *V4S.choose(rng).unwrap();
                let d = *V4S.choose(rng).unwrap();
                finish!($l2.ipv4(s, d, 64));
            }
        }};
    }
    match link {
        LinkType::Ethernet if rng.random_bool(0.3) => ip!(PacketBuilder::ethernet2([2; 6], [4; 6])
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())),
        LinkType::Ethernet => ip!(PacketBuilder::ethernet2([2; 6], [4; 6])),
        _ => {
            // PacketBuilder starts raw IP with `ip`; build Ethernet and strip it.
            ip!(PacketBuilder::ethernet2([2; 6], [4; 6]));
            out.drain(..14);
        }
    }
    if !v6 && !udp && rng.random_bool(0.15) {
        // An IPv4 fragment: first (MF set) or a later one.
        let ip = out.len() - TCP_LEN - IP4_OFF;
        let field: u16 = if rng.random_bool(0.5) { 0x2000 } else { 0x0010 };
        out[ip + 6..ip + 8].copy_from_slice(&field.to_be_bytes());
    }
    (link, out)
}

fn random_prim(rng: &mut StdRng) -> Expr {
    let dir = *[Dir::Either, Dir::Src, Dir::Dst, Dir::Both]
        .choose(rng)
        .unwrap();
    let v4 = |a: [u8; 4], len: u32| Net::V4 {
        addr: u32::from_be_bytes(a) & (u32::MAX.checked_shl(32 - len).unwrap_or(0)),
        mask: u32::MAX.checked_shl(32 - len).unwrap_or(0),
    };
    let v6 = |s: &str, len: u32| Net::V6 {
        addr: u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
            & u128::MAX.checked_shl(128 - len).unwrap_or(0),
        mask: u128::MAX.checked_shl(128 - len).unwrap_or(0),
    };
    let prim = match rng.random_range(0..10) {
        0 => return Expr::Const(true),
        1 => Prim::Family(if rng.random() { Family::V4 } else { Family::V6 }),
        2 | 3 => {
            let p = *PORTS.choose(rng).unwrap();
            Prim::ports(dir, p, p)
        }
        4 => [Prim::ports(dir, 1000, 9000), Prim::ports(dir, 0, 100)]
            .choose(rng)
            .unwrap()
            .clone(),
        5 | 6 => Prim::addrs(dir, v4(*V4S.choose(rng).unwrap(), 32)),
        7 => Prim::addrs(
            dir,
            *[
                v4([10, 0, 0, 0], 24),
                v4([10, 0, 0, 0], 16),
                v4([192, 168, 0, 0], 16),
                Net::V4 {
                    addr: 0x0a00_0000,
                    mask: 0xff00_ff00,
                },
                v4([0, 0, 0, 0], 0),
            ]
            .choose(rng)
            .unwrap(),
        ),
        8 => Prim::addrs(dir, v6(V6S.choose(rng).unwrap(), 128)),
        _ => Prim::addrs(
            dir,
            *[v6("fd00::", 16), v6("fd00::", 32), v6("2001:db8::", 32)]
                .choose(rng)
                .unwrap(),
        ),
    };
    Expr::Prim(prim)
}

fn random_expr(rng: &mut StdRng, depth: u32) -> Expr {
    if depth == 0 || rng.random_bool(0.3) {
        return random_prim(rng);
    }
    match rng.random_range(0..5) {
        0 => not(random_expr(rng, depth - 1)),
        1 | 2 => and(random_expr(rng, depth - 1), random_expr(rng, depth - 1)),
        _ => or(random_expr(rng, depth - 1), random_expr(rng, depth - 1)),
    }
}

/// pcap-filter text with as few parentheses as its grammar allows: `and` and `or` group
/// left to right with equal precedence, so only a right operand that is itself an
/// `and`/`or` needs them, and an operand of `not` that is.
fn minimal(e: &Expr) -> String {
    let wrap = |e: &Expr| match e {
        Expr::And(_) | Expr::Or(_) => format!("({})", minimal(e)),
        _ => minimal(e),
    };
    match e {
        Expr::And(v) | Expr::Or(v) => {
            let op = if matches!(e, Expr::And(_)) {
                "and"
            } else {
                "or"
            };
            format!("{} {op} {}", minimal(&v[0]), wrap(&v[1]))
        }
        Expr::Not(x) => format!("not {}", wrap(x)),
        _ => e.to_string(),
    }
}

#[test]
fn random_expressions_parse_back_and_match_as_the_model_says() {
    let mut rng = StdRng::seed_from_u64(13);
    let frames: Vec<(LinkType, Vec<u8>)> = (0..300).map(|_| random_frame(&mut rng)).collect();
    let fields: Vec<Option<Fields>> = frames.iter().map(|(l, f)| model_fields(*l, f)).collect();
    assert!(fields.iter().filter(|f| f.is_some()).count() > 200);
    let (mut exact, mut superset, mut selected) = (0, 0, 0);
    let (mut table, mut tree) = (0, 0);
    for _ in 0..600 {
        let expr = random_expr(&mut rng, 4);
        // Fully parenthesised and minimal text both parse back to the same tree.
        for text in [expr.to_string(), minimal(&expr)] {
            assert_eq!(parse(&text).unwrap(), expr, "{text}");
        }
        let text = minimal(&expr);
        let filter = match Filter::parse(&text) {
            Ok(f) => f,
            Err(FilterError::MatchesNothing) => {
                assert!(fields.iter().flatten().all(|f| !model(&expr, f)), "{text}");
                continue;
            }
            Err(e) => panic!("{text}: {e}"),
        };
        let plan = filter.live();
        if plan.kernel_is_exact() {
            exact += 1;
        } else {
            superset += 1;
        }
        if filter.program.has_table() {
            table += 1;
        } else {
            tree += 1;
        }
        let all = super::Needs {
            ports: true,
            addrs: true,
        };
        for ((link, data), f) in frames.iter().zip(&fields) {
            let frame = Frame {
                ts: Timestamp(0),
                link_type: *link,
                data,
                orig_len: data.len() as u32,
            };
            let want = f.as_ref().is_some_and(|f| model(&expr, f));
            assert_eq!(filter.matches(&frame), want, "{text} on {f:?}");
            // Again: the same fields, answered from the memo.
            assert_eq!(filter.matches(&frame), want, "memo: {text} on {f:?}");
            selected += usize::from(want);
            let kernel =
                Packet::read(&frame, all).is_some_and(|p| kernel_decides(&plan.kernel, &p));
            if plan.kernel_is_exact() {
                assert_eq!(kernel, want, "kernel: {text} on {f:?}");
            } else {
                assert!(kernel || !want, "kernel superset: {text} on {f:?}");
            }
        }
    }
    // The run means something: both kernel modes, both evaluators, and selections of
    // every size.
    assert!(exact > 300 && superset > 10, "{exact} {superset}");
    assert!(table > 300 && tree > 5, "{table} {tree}");
    assert!(selected > 10_000, "{selected}");
}

/// A frame cut before a field the filter reads does not match, whatever the expression
/// says about that field (a BPF filter's load past the end rejects the packet too).
#[test]
fn a_frame_cut_before_a_field_the_filter_reads_does_not_match() {
    let mut full = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1, 1000)
        .write(&mut full, b"data")
        .unwrap();
    let frame = |len: usize| Frame {
        ts: Timestamp(0),
        link_type: LinkType::Ethernet,
        data: &full[..len],
        orig_len: full.len() as u32,
    };
    let matches = |expr: &str, len: usize| Filter::parse(expr).unwrap().matches(&frame(len));
    // Cut after the ports: everything is there.
    for expr in ["port 80", "not port 81", "host 10.0.0.1", "ip"] {
        assert!(matches(expr, 14 + 20 + 4), "{expr}");
    }
    // Cut inside the ports: tests that read them never match, negated or not; the
    // others still do.
    assert!(!matches("port 80", 14 + 20 + 3));
    assert!(!matches("not port 81", 14 + 20 + 3));
    assert!(!matches("ip or port 80", 14 + 20 + 3));
    assert!(matches("host 10.0.0.1", 14 + 20 + 3));
    assert!(matches("ip", 14 + 20 + 3));
    // Cut inside the addresses.
    assert!(!matches("not host 10.9.9.9", 14 + 19));
    assert!(matches("tcp", 14 + 19));
    // Cut before the protocol: not known to be TCP.
    assert!(!matches("tcp", 14 + 9));
}

/// What the filter's verdict cache relies on: frames with one [`Key`] read as one packet
/// (so they get one verdict), and frames outside the common shape have no key.
#[test]
fn frames_with_one_key_read_as_one_packet() {
    let mut rng = StdRng::seed_from_u64(14);
    let all = super::Needs {
        ports: true,
        addrs: true,
    };
    let mut seen: Vec<(Key, Packet)> = Vec::new();
    let (mut keyed, mut repeated, mut unkeyed) = (0, 0, 0);
    for _ in 0..6000 {
        let (link, data) = random_frame(&mut rng);
        let frame = Frame {
            ts: Timestamp(0),
            link_type: link,
            data: &data,
            orig_len: data.len() as u32,
        };
        let Some(key) = Key::of(&frame) else {
            unkeyed += 1;
            continue;
        };
        keyed += 1;
        let read = Packet::read(&frame, all).expect("a keyed frame is TCP");
        assert_eq!(read.family, Family::V4);
        assert!(read.ports.is_some(), "a keyed frame has ports");
        match seen.iter().find(|(k, _)| *k == key) {
            Some((_, first)) => {
                repeated += 1;
                assert_eq!(*first, read, "one key, two packets");
            }
            None => seen.push((key, read)),
        }
    }
    // Both paths, and keys met again.
    assert!(keyed > 1000 && unkeyed > 1000, "{keyed} {unkeyed}");
    assert!(repeated > 300, "{repeated}");
    // Different packets have different keys: every distinct key read differently.
    for (i, (_, a)) in seen.iter().enumerate() {
        assert!(seen[i + 1..].iter().all(|(_, b)| a != b), "{a:?}");
    }
}
