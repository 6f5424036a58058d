//! Issue 13: filter expressions in live capture. The kernel program decides what the
//! userspace filter decides (crafted frames, many expressions, exact and superset
//! compilations), and a host/net/port/not expression selects exactly the expected
//! sessions out of real traffic, the others dropped in the kernel (counters: seen vs
//! matched). Needs root.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    thread,
    time::Duration,
};

use sniffer::{
    LinkType, Listener, PacketSource, SessionInfo, Timestamp,
    capture::{
        Frame, SourceStats,
        live::{LiveOptions, LiveSource},
    },
    filter::{Filter, LivePlan},
    flow::FlowConfig,
    pipeline,
};
use tests::{HttpServer, Netns, VethPair, require_root, write_pattern_file};

// ---- the kernel against the userspace evaluator, on crafted frames ----

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[
        0, 0, 3, 0xe8, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    t.extend_from_slice(b"hello");
    t
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
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

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

const V4: [[u8; 4]; 4] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 1, 2, 3],
    [192, 168, 1, 10],
];
const V6: [&str; 3] = ["fd00::1", "fd00::2", "2001:db8:1::7"];
const PORTS: [u16; 5] = [80, 443, 8080, 22, 51000];

/// Every combination of encapsulation, family, addresses and ports worth telling apart,
/// a few hundred frames.
fn crafted() -> Vec<Vec<u8>> {
    let mac = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    let mut frames = Vec::new();
    let mut n = 0_usize;
    for (si, s4) in V4.iter().enumerate() {
        for (di, d4) in V4.iter().enumerate() {
            for (pi, &sp) in PORTS.iter().enumerate() {
                let dp = PORTS[(pi + si + di) % PORTS.len()];
                n += 1;
                let (net, et) = if n.is_multiple_of(3) {
                    let s = v6(V6[si % V6.len()]);
                    let d = v6(V6[di % V6.len()]);
                    let p = match n % 4 {
                        0 => ipv6(
                            s,
                            d,
                            0,
                            &[&[6, 0, 1, 4, 0, 0, 0, 0][..], &tcp(sp, dp)].concat(),
                        ),
                        1 => ipv6(
                            s,
                            d,
                            44,
                            &[&[6, 0, 0x03, 0x20, 0, 0, 0, 1][..], &tcp(sp, dp)].concat(),
                        ),
                        2 => ipv6(s, d, 17, &tcp(sp, dp)),
                        _ => ipv6(s, d, 6, &tcp(sp, dp)),
                    };
                    (p, [0x86, 0xdd])
                } else {
                    let p = match n % 5 {
                        0 => ipv4(*s4, *d4, 6, 0x00b9, &tcp(sp, dp)), // later fragment
                        1 => ipv4(*s4, *d4, 17, 0, &tcp(sp, dp)),
                        _ => ipv4(*s4, *d4, 6, 0, &tcp(sp, dp)),
                    };
                    (p, [0x08, 0x00])
                };
                let ppp = if et == [0x08, 0x00] {
                    [0, 0x21]
                } else {
                    [0, 0x57]
                };
                let head: Vec<u8> = match n % 6 {
                    0 => [&mac[..], &[0x81, 0, 0, 5], &et].concat(),
                    1 => [&mac[..], &[0x88, 0xa8, 0, 5, 0x81, 0, 0, 6], &et].concat(),
                    2 => [&mac[..], &[0x88, 0x64, 0x11, 0, 0, 1, 0, 40], &ppp].concat(),
                    _ => [&mac[..], &et].concat(),
                };
                frames.push([head, net].concat());
            }
        }
    }
    frames.push([&mac[..], &[0x08, 0x06], &[0; 28]].concat());
    frames
}

const EXPRESSIONS: &[&str] = &[
    "tcp",
    "port 80",
    "port 80 or 8080 and not src host 10.0.0.1",
    "src port 443 or dst portrange 8000-9000",
    "src and dst net 10.0.0.0/8",
    "host 10.1.2.3 or net fd00::/64 and not port 22",
    "ip6 and not port 80",
    "ip and (src net 192.168.0.0/16 or dst host 10.0.0.2)",
    "not (port 80 or port 443) and not ip6",
    "dst host fd00::2 or src host 2001:db8:1::7 and dst port 51000",
    // Seven tests: the kernel takes six, userspace decides.
    "src port 80 or dst port 443 or src and dst port 22 or host 10.0.0.1 or src net 10.1.0.0/16 \
     or dst host fd00::1 or ip6 and src host 192.168.1.10",
    // A mask the trie cannot hold: userspace decides.
    "net 10.0.0.0 mask 255.0.255.0 and port 80 or dst port 22",
];

/// Sends `frames` out of `iface` (in `ns`) through a packet socket, one by one.
fn send(ns: &Netns, iface: &str, frames: &[Vec<u8>]) {
    let iface = iface.to_owned();
    ns.enter(move || {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0);
        for frame in frames {
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: a valid buffer and address.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(
                n,
                frame.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
        }
    })
    .unwrap();
}

fn as_frame(data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Timestamp(0),
        link_type: LinkType::Ethernet,
        data,
        orig_len: data.len() as u32,
    }
}

#[test]
fn issue13_the_kernel_decides_as_userspace_does() {
    if !require_root("issue13_the_kernel_decides_as_userspace_does") {
        return;
    }
    let ns_a = Netns::new("fa").unwrap();
    let ns_b = Netns::new("fb").unwrap();
    let veth = VethPair::new(&ns_a, &ns_b).unwrap();
    let frames = crafted();
    let (mut exact, mut superset) = (0, 0);
    for expr in EXPRESSIONS {
        let filter = Filter::parse(expr).unwrap();
        let LivePlan { kernel, userspace } = filter.live();
        let wanted: Vec<&Vec<u8>> = frames
            .iter()
            .filter(|f| filter.matches(&as_frame(f)))
            .collect();
        let options = LiveOptions {
            iface: veth.b_if.clone(),
            filter: kernel,
            snaplen: 65536,
            ring_bytes: 1 << 20,
        };
        let mut source = ns_b.enter(|| LiveSource::open(&options)).unwrap().unwrap();
        let stop = source.stop_handle();
        let (got, stats): (Vec<Vec<u8>>, SourceStats) = thread::scope(|s| {
            let h = s.spawn(move || {
                let mut got = Vec::new();
                while let Some(f) = source.next_frame().unwrap() {
                    got.push(f.data.to_vec());
                }
                (got, source.stats())
            });
            send(&ns_b, &veth.b_if, &frames);
            thread::sleep(Duration::from_millis(200));
            stop.stop();
            h.join().unwrap()
        });
        let k = stats.kernel.unwrap();
        assert_eq!(k.matched, got.len() as u64, "{expr}: {k:?}");
        assert!(k.seen >= frames.len() as u64, "{expr}: {k:?}");
        // What the kernel let through, filtered by what userspace still has to do, is
        // exactly what the filter selects, in order.
        let after: Vec<&Vec<u8>> = got
            .iter()
            .filter(|f| userspace.as_ref().is_none_or(|u| u.matches(&as_frame(f))))
            .collect();
        assert_eq!(after, wanted, "{expr}");
        match userspace {
            None => {
                exact += 1;
                assert_eq!(got.len(), wanted.len(), "{expr}: the kernel alone decides");
            }
            Some(_) => superset += 1,
        }
        // The ARP and UDP frames, at least, stayed in the kernel.
        assert!(k.seen > k.matched, "{expr}: {k:?}");
        eprintln!(
            "{expr:?}: {} of {} crafted frames selected; kernel: {} seen, {} matched",
            wanted.len(),
            frames.len(),
            k.seen,
            k.matched
        );
    }
    assert_eq!((exact, superset), (EXPRESSIONS.len() - 2, 2));
}

// ---- sessions out of real traffic ----

/// The client and server of each session, as the flow table saw them begin.
#[derive(Default)]
struct Sessions(BTreeSet<(SocketAddr, SocketAddr)>);

impl Listener for Sessions {
    fn session_start(&mut self, s: &SessionInfo, _: Timestamp) {
        self.0.insert((s.client, s.server));
    }
}

const BODY_LEN: usize = 1 << 20;

#[test]
fn issue13_live_expression_selects_exactly_the_expected_sessions() {
    if !require_root("issue13_live_expression_selects_exactly_the_expected_sessions") {
        return;
    }
    let server_ns = Netns::new("fs").unwrap();
    let client = Netns::new("fc").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(false).unwrap();
    let www = tempfile::tempdir().unwrap();
    write_pattern_file(&www.path().join("f.bin"), BODY_LEN).unwrap();
    let _server = HttpServer::start(&server_ns, www.path(), &[80, 8080]).unwrap();

    let v6_net = {
        let s = veth.a_v6.segments();
        format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
    };
    // IPv4 port 8080 from the client, and IPv6 to anything but 8080: of the four fetches
    // (v4 and v6, ports 80 and 8080), two. (Without the parentheses, pcap-filter's equal
    // precedence would make it `(… or net …) and not port 8080`.)
    let exact = format!(
        "host {} and port 8080 or (net {v6_net} and not port 8080)",
        veth.b_v4
    );
    // The same, and six tests nothing matches: eight tests, more than the kernel takes.
    let superset = format!(
        "{exact} or dst host 10.254.0.1 or src host 10.254.0.2 or src port 9 or dst port 10 \
         or src and dst port 11 or src net 10.253.0.0/16"
    );
    for (expr, kernel_exact) in [(exact, true), (superset, false)] {
        let filter = Filter::parse(&expr).unwrap();
        let plan = filter.live();
        assert_eq!(plan.kernel_is_exact(), kernel_exact, "{expr}");
        let options = LiveOptions {
            iface: veth.a_if.clone(),
            filter: plan.kernel,
            snaplen: 65536,
            ring_bytes: 16 << 20,
        };
        let source = server_ns
            .enter(|| LiveSource::open(&options))
            .unwrap()
            .unwrap();
        let stop = source.stop_handle();
        let userspace = plan.userspace;
        let run = thread::spawn(move || {
            let mut source = source;
            let mut sessions = Sessions::default();
            let stats = pipeline::run_filtered(
                &mut source,
                userspace.as_ref(),
                &FlowConfig::default(),
                &mut sessions,
            )
            .unwrap();
            (sessions.0, stats)
        });
        let mut expected = BTreeSet::new();
        for (v6, port) in [(false, 80), (false, 8080), (true, 80), (true, 8080)] {
            let host = if v6 {
                format!("[{}]", veth.a_v6)
            } else {
                veth.a_v4.to_string()
            };
            let out = client
                .run(&[
                    "curl",
                    "-sS",
                    "--http1.1",
                    "--max-time",
                    "30",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{local_port} %{size_download}",
                    &format!("http://{host}:{port}/f.bin"),
                ])
                .unwrap();
            let out = String::from_utf8(out.stdout).unwrap();
            let (local_port, size) = out.split_once(' ').unwrap();
            assert_eq!(size, BODY_LEN.to_string(), "{out}");
            if (!v6 && port == 8080) || (v6 && port != 8080) {
                let local_port: u16 = local_port.parse().unwrap();
                expected.insert((
                    SocketAddr::new(veth.b_addr(v6), local_port),
                    SocketAddr::new(veth.a_addr(v6), port),
                ));
            }
        }
        thread::sleep(Duration::from_millis(200));
        stop.stop();
        let (sessions, stats) = run.join().unwrap();
        assert_eq!(sessions, expected, "{expr}");
        let k = stats.source.kernel.clone().unwrap();
        assert_eq!(k.matched, stats.source.frames, "{expr}: {k:?}");
        assert_eq!((k.ring_full, k.copy_failed), (0, 0), "{expr}: {k:?}");
        // A 1 MiB transfer is some 700 MTU-sized segments.
        let one_transfer = (BODY_LEN / 1500) as u64;
        if kernel_exact {
            // Two of the four transfers never left the kernel.
            assert!(stats.filter.is_none(), "{expr}");
            assert!(k.seen >= k.matched + 2 * one_transfer, "{expr}: {k:?}");
            assert!(k.matched >= 2 * one_transfer, "{expr}: {k:?}");
        } else {
            // The kernel let all four through; userspace dropped two.
            let f = stats.filter.clone().unwrap();
            assert_eq!(f.matched + f.rejected, stats.source.frames, "{expr}: {f:?}");
            assert!(f.rejected >= 2 * one_transfer, "{expr}: {f:?}");
            assert!(k.matched >= 4 * one_transfer, "{expr}: {k:?}");
        }
        eprintln!(
            "{expr:?}: kernel {k:?}, userspace filter {:?}",
            stats.filter
        );
    }
}
