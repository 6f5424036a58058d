//! Issue 14: NFLOG captures (link type 239, what `tcpdump -i nflog:N` and iptables NFLOG
//! rules write). A capture made here holds one HTTP download over IPv4 and one over IPv6,
//! each packet wrapped in netfilter log TLVs; the bodies must be saved byte-exact, and
//! tcpdump must agree on what the file holds.

use std::{io::Write as _, path::Path, process::Command};

use etherparse::PacketBuilder;
use sha2::{Digest as _, Sha256};

/// One frame: the NFLOG header and TLVs (little-endian, as an x86 host writes them)
/// around `packet`.
fn nflog(family: u8, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![family, 0, 0, 1];
    let mut tlv = |kind: u16, value: &[u8]| {
        f.extend_from_slice(&(4 + value.len() as u16).to_le_bytes());
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(value);
        while !f.len().is_multiple_of(4) {
            f.push(0);
        }
    };
    tlv(1, &[0x08, 0x00, 1, 0]); // NFULA_PACKET_HDR
    tlv(10, b"http\0"); // NFULA_PREFIX
    tlv(3, &[0; 16]); // NFULA_TIMESTAMP
    tlv(9, packet); // NFULA_PAYLOAD
    f
}

/// The packets of one download: handshake, GET, the response in pieces, FIN both ways.
fn download(v6: bool, path: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let ip = |from_client: bool| {
        let (a, b) = if v6 {
            let c = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            let s = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
            if from_client { (c, s) } else { (s, c) }
        } else {
            let mut c = [0; 16];
            c[..4].copy_from_slice(&[10, 9, 0, 1]);
            let mut s = [0; 16];
            s[..4].copy_from_slice(&[10, 9, 0, 2]);
            if from_client { (c, s) } else { (s, c) }
        };
        (a, b)
    };
    let seg = |from_client: bool, seq: u32, ack: Option<u32>, syn: bool, fin: bool, data: &[u8]| {
        let (src, dst) = ip(from_client);
        let (sp, dp) = if from_client {
            (40000, 80)
        } else {
            (80, 40000)
        };
        let builder = if v6 {
            PacketBuilder::ipv6(src, dst, 64)
        } else {
            PacketBuilder::ipv4(
                [src[0], src[1], src[2], src[3]],
                [dst[0], dst[1], dst[2], dst[3]],
                64,
            )
        };
        let mut b = builder.tcp(sp, dp, seq, 65535);
        if syn {
            b = b.syn();
        }
        if fin {
            b = b.fin();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut v = Vec::new();
        b.write(&mut v, data).unwrap();
        v
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: nflog.test\r\n\r\n").into_bytes();
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    let (c0, s0) = (1000u32, 5000u32);
    let mut p = vec![
        seg(true, c0, None, true, false, &[]),
        seg(false, s0, Some(c0 + 1), true, false, &[]),
        seg(true, c0 + 1, Some(s0 + 1), false, false, &[]),
        seg(true, c0 + 1, Some(s0 + 1), false, false, &req),
    ];
    let c1 = c0 + 1 + req.len() as u32;
    let mut at = 0;
    for piece in resp.chunks(1200) {
        p.push(seg(false, s0 + 1 + at, Some(c1), false, false, piece));
        at += piece.len() as u32;
    }
    let s1 = s0 + 1 + at;
    p.push(seg(false, s1, Some(c1), false, true, &[]));
    p.push(seg(true, c1, Some(s1 + 1), false, true, &[]));
    p.push(seg(false, s1 + 1, Some(c1 + 1), false, false, &[]));
    p
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = std::fs::File::create(path).unwrap();
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&239u32.to_le_bytes());
    out.write_all(&header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let mut rec = Vec::new();
        rec.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        rec.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        rec.extend_from_slice(&(f.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(f.len() as u32).to_le_bytes());
        rec.extend_from_slice(f);
        out.write_all(&rec).unwrap();
    }
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn issue14_nflog_capture_downloads_saved_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (b4, b6) = (body(50_000, 1), body(30_001, 2));
    let mut frames: Vec<Vec<u8>> = download(false, "/four.mp3", &b4)
        .iter()
        .map(|p| nflog(2, p))
        .collect();
    frames.extend(download(true, "/six.mp3", &b6).iter().map(|p| nflog(10, p)));
    let pcap = tmp.path().join("nflog.pcap");
    write_pcap(&pcap, &frames);

    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .arg("-r")
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("not supported"), "{err}");
    assert!(
        err.contains(&format!(
            "{} frames, {} TCP segments",
            frames.len(),
            frames.len()
        )),
        "{err}"
    );
    let index = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    let mut got: Vec<(String, String)> = index
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let bytes = std::fs::read(out.join(v["file"].as_str().unwrap())).unwrap();
            assert_eq!(v["complete"], true, "{l}");
            (
                v["url"].as_str().unwrap().to_owned(),
                format!("{:x}", Sha256::digest(&bytes)),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "http://nflog.test/four.mp3".to_owned(),
                format!("{:x}", Sha256::digest(&b4))
            ),
            (
                "http://nflog.test/six.mp3".to_owned(),
                format!("{:x}", Sha256::digest(&b6))
            ),
        ]
    );

    // tcpdump reads the same file the same way: every frame, as NFLOG.
    let td = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .output()
        .expect("tcpdump (cargo xtask setup installs it)");
    let text = String::from_utf8_lossy(&td.stdout);
    let head = String::from_utf8_lossy(&td.stderr);
    assert!(head.contains("NFLOG"), "{head}");
    assert_eq!(text.lines().count(), frames.len(), "{text}");
}
