//! Captures for the memory tests, written here rather than kept as files: a SYN flood (or
//! a crowd of sessions that each send one byte and go silent) around two real HTTP
//! downloads whose bodies are known.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
};

use etherparse::PacketBuilder;

/// The server every session talks to.
pub const SERVER: ([u8; 4], u16) = ([10, 0, 0, 1], 80);
const MSS: usize = 1448;
const MS: u64 = 1_000_000;
/// Capture time of the first packet (ns since the epoch).
pub const BASE: u64 = 1_700_000_000 * 1_000_000_000;

/// A classic pcap file (nanosecond timestamps, Ethernet).
pub struct Pcap {
    out: BufWriter<File>,
    /// Frames written.
    pub frames: u64,
}

impl Pcap {
    /// Create `path` and write the file header.
    pub fn create(path: &Path) -> Self {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
        for field in [0xa1b2_3c4d_u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4]] {
            out.write_all(&field).unwrap();
        }
        out.write_all(&65535u32.to_le_bytes()).unwrap();
        out.write_all(&1u32.to_le_bytes()).unwrap();
        Self { out, frames: 0 }
    }

    /// One frame at `ts` (ns).
    pub fn frame(&mut self, ts: u64, data: &[u8]) {
        let len = (data.len() as u32).to_le_bytes();
        self.out
            .write_all(&((ts / 1_000_000_000) as u32).to_le_bytes())
            .unwrap();
        self.out
            .write_all(&((ts % 1_000_000_000) as u32).to_le_bytes())
            .unwrap();
        self.out.write_all(&len).unwrap();
        self.out.write_all(&len).unwrap();
        self.out.write_all(data).unwrap();
        self.frames += 1;
    }

    /// Flush and close.
    pub fn finish(mut self) {
        self.out.flush().unwrap();
    }
}

/// TCP flags of a generated segment.
#[derive(Clone, Copy, Default)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// The acknowledgment number, if ACK is set.
    pub ack: Option<u32>,
}

/// An Ethernet frame carrying one TCP segment from `src` to `dst`.
pub fn segment(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 65535);
    if flags.syn {
        b = b.syn();
    }
    if flags.fin {
        b = b.fin();
    }
    if let Some(a) = flags.ack {
        b = b.ack(a);
    }
    if !payload.is_empty() {
        b = b.psh();
    }
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

/// Deterministic pseudo-random bytes (xorshift), so each body has a known hash.
pub fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A complete HTTP download: handshake, GET, a 200 `audio/mpeg` response with
/// Content-Length, FIN both ways. The server sends a segment every `pace` ns; after
/// `stall_at` segments it pauses for `stall` ns (a download that waits, as a player does).
pub struct Download {
    /// The client.
    pub client: ([u8; 4], u16),
    /// The request path.
    pub path: &'static str,
    /// The response body.
    pub body: Vec<u8>,
    /// Time of the SYN (ns).
    pub start: u64,
    /// Time between server segments (ns).
    pub pace: u64,
    /// Segments before the pause.
    pub stall_at: usize,
    /// Length of the pause (ns).
    pub stall: u64,
}

impl Download {
    /// Its packets, in time order.
    pub fn packets(&self) -> Vec<(u64, Vec<u8>)> {
        let (c, s) = (self.client, SERVER);
        let (cisn, sisn) = (0x1000_0000_u32, 0x8000_0000_u32);
        let mut t = self.start;
        let mut out = Vec::new();
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        out.push((t, segment(c, s, cisn, syn, &[])));
        t += MS;
        let synack = Flags {
            syn: true,
            ack: Some(cisn + 1),
            ..Flags::default()
        };
        out.push((t, segment(s, c, sisn, synack, &[])));
        t += MS;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: 10.0.0.1\r\nUser-Agent: player\r\n\r\n",
            self.path
        );
        let ack = |n: u32| Flags {
            ack: Some(n),
            ..Flags::default()
        };
        let mut cseq = cisn + 1;
        out.push((t, segment(c, s, cseq, ack(sisn + 1), &[])));
        t += MS;
        out.push((t, segment(c, s, cseq, ack(sisn + 1), req.as_bytes())));
        cseq += req.len() as u32;
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: {}\r\n\r\n",
            self.body.len()
        )
        .into_bytes();
        resp.extend_from_slice(&self.body);
        let mut sseq = sisn + 1;
        for (k, chunk) in resp.chunks(MSS).enumerate() {
            t += if k == self.stall_at {
                self.stall
            } else {
                self.pace
            };
            out.push((t, segment(s, c, sseq, ack(cseq), chunk)));
            sseq += chunk.len() as u32;
            if k % 2 == 1 {
                out.push((t + 10_000, segment(c, s, cseq, ack(sseq), &[])));
            }
        }
        t += MS;
        let fin = |n: u32| Flags {
            fin: true,
            ack: Some(n),
            ..Flags::default()
        };
        out.push((t, segment(s, c, sseq, fin(cseq), &[])));
        t += MS;
        out.push((t, segment(c, s, cseq, fin(sseq + 1), &[])));
        t += MS;
        out.push((t, segment(s, c, sseq + 1, ack(cseq + 1), &[])));
        out
    }
}

/// The client of background session `i`: a different address for every 64 sessions,
/// a different port within them.
pub fn crowd_client(i: u64) -> ([u8; 4], u16) {
    let ip = 0xac10_0000_u32 + (i >> 6) as u32;
    (ip.to_be_bytes(), 20000 + (i & 63) as u16)
}

/// What the background sessions do.
#[derive(Clone, Copy)]
pub enum Crowd {
    /// One SYN each, never answered.
    Syns,
    /// A full handshake and one byte of data each, then silence.
    OneByte,
}

/// Write `n` background sessions spread evenly over `span` ns from [`BASE`], merged in
/// time order with the packets of `downloads`. Returns the frames written.
pub fn write(path: &Path, crowd: Crowd, n: u64, span: u64, downloads: &[Download]) -> u64 {
    let mut fg: Vec<(u64, Vec<u8>)> = downloads.iter().flat_map(Download::packets).collect();
    fg.sort_by_key(|p| p.0);
    let mut fg = fg.into_iter().peekable();
    let mut pcap = Pcap::create(path);
    for i in 0..n {
        let t = BASE + i * span / n;
        while let Some((ts, _)) = fg.peek()
            && *ts <= t
        {
            let (ts, p) = fg.next().unwrap();
            pcap.frame(ts, &p);
        }
        let c = crowd_client(i);
        let isn = (i as u32).wrapping_mul(2_654_435_761);
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        pcap.frame(t, &segment(c, SERVER, isn, syn, &[]));
        if let Crowd::OneByte = crowd {
            let sisn = isn ^ 0x5555_5555;
            let synack = Flags {
                syn: true,
                ack: Some(isn.wrapping_add(1)),
                ..Flags::default()
            };
            pcap.frame(t + 1000, &segment(SERVER, c, sisn, synack, &[]));
            let ack = Flags {
                ack: Some(sisn.wrapping_add(1)),
                ..Flags::default()
            };
            let seq = isn.wrapping_add(1);
            pcap.frame(t + 2000, &segment(c, SERVER, seq, ack, &[]));
            pcap.frame(t + 3000, &segment(c, SERVER, seq, ack, b"G"));
        }
    }
    for (ts, p) in fg {
        pcap.frame(ts, &p);
    }
    let frames = pcap.frames;
    pcap.finish();
    frames
}
