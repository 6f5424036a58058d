//! Which flow, in words other tools share: the Community ID v1 of a TCP 4-tuple
//! (<https://github.com/corelight/community-id-spec>), so sniffer's records join with Zeek,
//! Suricata and Arkime records of the same flow.
//!
//! The ID is `1:` and the base64 of SHA-1 over the seed (2 bytes, big-endian), the two
//! addresses, the protocol (6), a zero pad byte and the two ports, the endpoints ordered
//! so both directions give the same ID. The `community-id` crate computes it; this module
//! fixes the protocol to TCP and the inputs to the endpoints a session has.

use std::net::{IpAddr, SocketAddr};

/// IANA protocol number of TCP.
const TCP: u8 = 6;

/// The Community ID v1 of the TCP flow between `a` and `b`, whichever is the client: both
/// orders give the same ID. `seed` separates domains of use; it is 0 unless the sensors
/// and the tools whose records are joined agree on another.
///
/// Both ends of a TCP flow have the same address family; should they not, the IPv4 one is
/// taken as its IPv4-mapped IPv6 address, so an ID is still returned.
pub fn community_id(seed: u16, a: SocketAddr, b: SocketAddr) -> String {
    let (ip_a, ip_b) = match (a.ip(), b.ip()) {
        (IpAddr::V4(x), IpAddr::V6(y)) => (IpAddr::V6(x.to_ipv6_mapped()), IpAddr::V6(y)),
        (IpAddr::V6(x), IpAddr::V4(y)) => (IpAddr::V6(x), IpAddr::V6(y.to_ipv6_mapped())),
        same => same,
    };
    community_id::calculate_community_id(
        seed,
        ip_a,
        ip_b,
        Some(a.port()),
        Some(b.port()),
        TCP,
        false,
    )
    .expect("TCP with both ports and one address family always has an ID")
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use base64::Engine as _;
    use rand::{Rng as _, SeedableRng as _};
    use sha1::{Digest as _, Sha1};

    use super::*;

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The TCP vectors published with the specification (`baseline/baseline_deflt.json`
    /// and `baseline_seed1.json`, and the README's example), each in both orientations.
    #[test]
    fn issue15_the_specifications_test_vectors_both_ways() {
        let vectors = [
            // (seed, source, destination, ID)
            (
                0,
                "128.232.110.120:34855",
                "66.35.250.204:80",
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                1,
                "128.232.110.120:34855",
                "66.35.250.204:80",
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            (
                0,
                "[2001:470:e5bf:dead:4957:2174:e82c:4887]:63943",
                "[2607:f8b0:400c:c03::1a]:25",
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
            (
                1,
                "[2001:470:e5bf:dead:4957:2174:e82c:4887]:63943",
                "[2607:f8b0:400c:c03::1a]:25",
                "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
            ),
            (
                0,
                "1.2.3.4:1122",
                "5.6.7.8:3344",
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
        ];
        for (seed, src, dst, id) in vectors {
            assert_eq!(
                community_id(seed, sock(src), sock(dst)),
                id,
                "{src} -> {dst}"
            );
            assert_eq!(
                community_id(seed, sock(dst), sock(src)),
                id,
                "{dst} -> {src}"
            );
        }
    }

    /// The specification written out plainly: the bytes hashed, byte by byte.
    fn model(seed: u16, a: SocketAddr, b: SocketAddr) -> String {
        let bytes = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        // The smaller address first; the smaller port first when the addresses are equal.
        let (lo, hi) = if (bytes(a.ip()), a.port()) <= (bytes(b.ip()), b.port()) {
            (a, b)
        } else {
            (b, a)
        };
        let mut input = seed.to_be_bytes().to_vec();
        input.extend(bytes(lo.ip()));
        input.extend(bytes(hi.ip()));
        input.extend([TCP, 0]);
        input.extend(lo.port().to_be_bytes());
        input.extend(hi.port().to_be_bytes());
        format!(
            "1:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&input))
        )
    }

    #[test]
    fn issue15_random_flows_match_the_plain_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for i in 0..2000 {
            let v6 = i % 2 == 1;
            // Few distinct addresses, so equal addresses (ordered by port) come up.
            let mut end = || -> SocketAddr {
                let (x, y): (u8, u8) = (rng.random_range(0..3), rng.random_range(0..2));
                let ip: IpAddr = if v6 {
                    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, x.into(), y.into()).into()
                } else {
                    Ipv4Addr::new(10, 0, x, y).into()
                };
                SocketAddr::new(ip, rng.random_range(0..4))
            };
            let (a, b) = (end(), end());
            let seed = rng.random_range(0..3);
            let want = model(seed, a, b);
            assert_eq!(community_id(seed, a, b), want, "{seed} {a} {b}");
            assert_eq!(community_id(seed, b, a), want, "{seed} {b} {a}");
        }
    }
}
