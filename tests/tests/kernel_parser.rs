//! Issue 2: the kernel program's parser, fed crafted frames. Frames are sent through an
//! AF_PACKET socket on one veth end and captured (as outgoing copies, tags still in the
//! data) on the same end; raw-IP packets are written into a tun device. Each case is
//! known to match or not, so the counters are checked exactly. Needs root.

use std::{
    io::Write,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    thread,
    time::Duration,
};

use sniffer::{
    LinkType, PacketSource,
    capture::{
        KernelFilter, SourceStats,
        live::{LiveOptions, LiveSource},
    },
};
use tests::{Netns, VethPair, require_root};

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&1000_u32.to_be_bytes()); // seq
    t.extend_from_slice(&0_u32.to_be_bytes()); // ack
    t.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]); // len 20, PSH|ACK
    t.extend_from_slice(b"hello");
    t
}

/// IPv4 with `options` words of options, the given fragment field, protocol and payload.
fn ipv4(options: usize, frag: u16, proto: u8, payload: &[u8]) -> Vec<u8> {
    let ihl = 5 + options;
    let total = (ihl * 4 + payload.len()) as u16;
    let mut h = vec![0x40 | ihl as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.resize(ihl * 4, 1); // NOP options
    h.extend_from_slice(payload);
    h
}

/// IPv6 whose first next-header is `next`, followed by `rest` (extension headers + L4).
fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend_from_slice(rest);
    h
}

/// An 8-byte IPv6 option header (hop-by-hop or destination options) saying `next` follows.
fn opt8(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0] // PadN
}

fn frag6(next: u8, offset_words: u16, more: bool) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset_words << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 7]);
    h
}

/// Ethernet with the given tags (TPID, TCI) before `ethertype`.
fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for &tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0, 5]); // VLAN 5
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const IP: u16 = 0x0800;
const IP6: u16 = 0x86dd;

/// Runs a capture with port {80} while `send` runs in `ns`; returns frames and stats.
fn capture_while(
    ns: &Netns,
    iface: &str,
    send: impl FnOnce() + Send,
) -> (Vec<(LinkType, Vec<u8>)>, SourceStats) {
    let config = LiveOptions {
        iface: iface.to_owned(),
        filter: KernelFilter::ports(&[80]),
        snaplen: 65536,
        ring_bytes: 1 << 20,
    };
    let mut source = ns.enter(|| LiveSource::open(&config)).unwrap().unwrap();
    let stop = source.stop_handle();
    thread::scope(|s| {
        let h = s.spawn(move || {
            let mut frames = Vec::new();
            while let Some(f) = source.next_frame().unwrap() {
                frames.push((f.link_type, f.data.to_vec()));
            }
            (frames, source.stats())
        });
        send();
        thread::sleep(Duration::from_millis(200));
        stop.stop();
        h.join().unwrap()
    })
}

#[test]
fn issue2_kernel_parser_vlan_qinq_ipv6_extensions_fragments() {
    if !require_root("issue2_kernel_parser_vlan_qinq_ipv6_extensions_fragments") {
        return;
    }
    let ns_a = Netns::new("pa").unwrap();
    let ns_b = Netns::new("pb").unwrap();
    let veth = VethPair::new(&ns_a, &ns_b).unwrap();

    // (frame, expected to match)
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (eth(&[0x8100], IP, &ipv4(0, 0, 6, &tcp(40000, 80))), true),
        (
            eth(&[0x88a8, 0x8100], IP, &ipv4(0, 0, 6, &tcp(80, 40000))),
            true,
        ),
        (eth(&[0x9100, 0x8100], IP6, &ipv6(6, &tcp(40001, 80))), true),
        (eth(&[], IP, &ipv4(2, 0, 6, &tcp(40002, 80))), true),
        // First fragment (MF set, offset 0): has the TCP header.
        (eth(&[], IP, &ipv4(0, 0x2000, 6, &tcp(40003, 80))), true),
        // Non-first fragment whose bytes look like port 80: counted, not matched.
        (eth(&[], IP, &ipv4(0, 185, 6, &tcp(80, 80))), false),
        (eth(&[], IP, &ipv4(0, 0, 6, &tcp(40004, 81))), false),
        (eth(&[], IP, &ipv4(0, 0, 17, &tcp(40005, 80))), false), // UDP
        (
            eth(
                &[],
                IP6,
                &ipv6(0, &[opt8(60), opt8(6), tcp(40006, 80)].concat()),
            ),
            true,
        ),
        (
            eth(
                &[],
                IP6,
                &ipv6(44, &[frag6(6, 0, true), tcp(40007, 80)].concat()),
            ),
            true,
        ),
        (
            eth(
                &[],
                IP6,
                &ipv6(44, &[frag6(6, 100, false), tcp(80, 80)].concat()),
            ),
            false,
        ),
        (eth(&[], IP6, &ipv6(6, &tcp(40008, 8080))), false),
        // Seven option headers: more than the program skips.
        (
            eth(
                &[],
                IP6,
                &ipv6(60, &[opt8(60).repeat(6), opt8(6), tcp(40009, 80)].concat()),
            ),
            false,
        ),
        (eth(&[], 0x0806, &[0; 28]), false), // ARP
    ];

    let iface = veth.b_if.clone();
    let (frames, stats) = capture_while(&ns_b, &iface, || {
        let sock = ns_b.enter(|| packet_socket(&iface)).unwrap();
        for (frame, _) in &cases {
            send_frame(&sock, &iface, frame);
        }
    });

    let expected: Vec<Vec<u8>> = cases
        .iter()
        .filter(|(_, m)| *m)
        .map(|(f, _)| f.clone())
        .collect();
    let got: Vec<Vec<u8>> = frames.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got, expected, "matched frames, byte for byte, in order");
    assert!(frames.iter().all(|(lt, _)| *lt == LinkType::Ethernet));
    let k = stats.kernel.unwrap();
    assert_eq!(k.matched, expected.len() as u64, "{k:?}");
    assert_eq!(k.non_first_fragment, 2, "{k:?}");
    assert!(k.seen >= cases.len() as u64, "{k:?}");
}

#[test]
fn issue2_kernel_parser_raw_ip_tun_device() {
    if !require_root("issue2_kernel_parser_raw_ip_tun_device") {
        return;
    }
    let ns = Netns::new("t").unwrap();
    let name = tests::unique_name("stun");
    ns.run(&["ip", "tuntap", "add", "dev", &name, "mode", "tun"])
        .unwrap();
    ns.run(&["ip", "link", "set", &name, "up"]).unwrap();
    let packets: Vec<(Vec<u8>, bool)> = vec![
        (ipv4(0, 0, 6, &tcp(40000, 80)), true),
        (ipv4(0, 0, 6, &tcp(40000, 81)), false),
        (ipv6(6, &tcp(80, 40001)), true),
        (ipv6(0, &[opt8(6), tcp(40002, 80)].concat()), true),
    ];
    let tun_name = name.clone();
    let (frames, stats) = capture_while(&ns, &name, || {
        let mut tun = ns.enter(|| open_tun(&tun_name)).unwrap();
        for (p, _) in &packets {
            tun.write_all(p).unwrap();
        }
    });
    let expected: Vec<Vec<u8>> = packets
        .iter()
        .filter(|(_, m)| *m)
        .map(|(p, _)| p.clone())
        .collect();
    let got: Vec<Vec<u8>> = frames.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got, expected);
    assert!(frames.iter().all(|(lt, _)| *lt == LinkType::Raw));
    assert_eq!(stats.kernel.unwrap().matched, 3);
}

fn ifindex(iface: &str) -> i32 {
    let c = std::ffi::CString::new(iface).unwrap();
    // SAFETY: a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(i > 0, "{iface}: {}", std::io::Error::last_os_error());
    i as i32
}

fn packet_socket(iface: &str) -> (OwnedFd, i32) {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor.
    (unsafe { OwnedFd::from_raw_fd(fd) }, ifindex(iface))
}

fn send_frame(sock: &(OwnedFd, i32), _iface: &str, frame: &[u8]) {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = sock.1;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: valid buffer and address.
    let n = unsafe {
        libc::sendto(
            sock.0.as_raw_fd(),
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

/// Attaches to the persistent tun device `name`; writes inject packets as if received.
fn open_tun(name: &str) -> std::fs::File {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap();
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads a valid ifreq.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut req) };
    assert!(
        r == 0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    file
}
