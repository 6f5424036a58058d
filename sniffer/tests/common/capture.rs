//! Synthetic captures for the integration tests: TCP sessions (handshake, the request
//! and the response in segments, FIN both ways) written as pcap, so a test can make any
//! HTTP exchange, with losses where it wants them, and run the `sniffer` binary on it.
//!
//! ```ignore
//! let mut cap = Capture::default();
//! let mut s = cap.session(40000, 80);
//! cap.send(&mut s, Side::Client, b"GET / HTTP/1.0\r\n\r\n");
//! cap.send(&mut s, Side::Server, &response);
//! cap.close(&mut s);
//! cap.write(&path);
//! ```

use std::path::Path;

use etherparse::PacketBuilder;
use sniffer::{
    Timestamp,
    capture::{
        Frame, LinkType,
        writer::{Format, PcapWriter},
    },
};

/// Which end sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client (10.0.0.1).
    Client,
    /// The server (10.0.0.2).
    Server,
}

/// One TCP session's sequence numbers.
#[derive(Debug)]
pub struct Session {
    client_port: u16,
    server_port: u16,
    /// Next sequence number of the client and of the server.
    seq: [u32; 2],
}

/// Frames in the order they were "captured", one millisecond apart.
#[derive(Debug, Default)]
pub struct Capture {
    frames: Vec<(Timestamp, Vec<u8>)>,
    ms: u64,
}

/// Payload bytes per segment.
pub const MSS: usize = 1448;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

impl Capture {
    fn frame(&mut self, s: &Session, from: Side, flags: &str, payload: &[u8]) {
        let (src, dst, sport, dport, i) = match from {
            Side::Client => (CLIENT, SERVER, s.client_port, s.server_port, 0),
            Side::Server => (SERVER, CLIENT, s.server_port, s.client_port, 1),
        };
        let mut b = PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, s.seq[i], 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(s.seq[1 - i]);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('P') {
            b = b.psh();
        }
        let mut out = Vec::with_capacity(64 + payload.len());
        b.write(&mut out, payload).expect("a packet");
        self.ms += 1;
        let ts = Timestamp::from_parts(
            1_700_000_000 + self.ms / 1000,
            (self.ms % 1000) as u32 * 1_000_000,
        );
        self.frames.push((ts, out));
    }

    /// A new session from client port `client_port` to server port `server_port`, its
    /// three-way handshake written.
    pub fn session(&mut self, client_port: u16, server_port: u16) -> Session {
        let mut s = Session {
            client_port,
            server_port,
            seq: [1000, 500_000],
        };
        self.frame(&s, Side::Client, "S", &[]);
        s.seq[0] += 1;
        self.frame(&s, Side::Server, "SA", &[]);
        s.seq[1] += 1;
        self.frame(&s, Side::Client, "A", &[]);
        s
    }

    /// `bytes` from `from`, in segments of at most [`MSS`] bytes.
    pub fn send(&mut self, s: &mut Session, from: Side, bytes: &[u8]) {
        self.send_mss(s, from, bytes, MSS);
    }

    /// `bytes` from `from`, in segments of at most `mss` bytes.
    pub fn send_mss(&mut self, s: &mut Session, from: Side, bytes: &[u8], mss: usize) {
        let i = usize::from(from == Side::Server);
        for seg in bytes.chunks(mss.max(1)) {
            self.frame(s, from, "AP", seg);
            s.seq[i] = s.seq[i].wrapping_add(seg.len() as u32);
        }
    }

    /// `n` bytes from `from` that were sent but never captured (the sequence numbers
    /// move on, no frame is written).
    pub fn lose(&mut self, s: &mut Session, from: Side, n: usize) {
        let i = usize::from(from == Side::Server);
        s.seq[i] = s.seq[i].wrapping_add(n as u32);
    }

    /// FIN from the server, FIN from the client, last ACK.
    pub fn close(&mut self, s: &mut Session) {
        self.frame(s, Side::Server, "FA", &[]);
        s.seq[1] = s.seq[1].wrapping_add(1);
        self.frame(s, Side::Client, "FA", &[]);
        s.seq[0] = s.seq[0].wrapping_add(1);
        self.frame(s, Side::Server, "A", &[]);
    }

    /// Write the capture as pcap.
    pub fn write(&self, path: &Path) {
        let f = std::fs::File::create(path).expect("create the capture");
        let mut w = PcapWriter::new(
            std::io::BufWriter::new(f),
            Format::Pcap,
            65535,
            LinkType::Ethernet,
            None,
        );
        for (ts, data) in &self.frames {
            w.write_frame(&Frame {
                ts: *ts,
                link_type: LinkType::Ethernet,
                data,
                orig_len: data.len() as u32,
            })
            .expect("write a frame");
        }
        w.finish().expect("finish the capture");
    }
}

/// One HTTP exchange in its own session: `request`, then `response` (with `lost` byte
/// ranges of the response never captured), then FIN.
pub fn exchange(
    cap: &mut Capture,
    client_port: u16,
    request: &[u8],
    response: &[u8],
    lost: &[std::ops::Range<usize>],
) {
    let mut s = cap.session(client_port, 80);
    cap.send(&mut s, Side::Client, request);
    let mut at = 0;
    for r in lost {
        cap.send(&mut s, Side::Server, &response[at..r.start]);
        cap.lose(&mut s, Side::Server, r.len());
        at = r.end;
    }
    cap.send(&mut s, Side::Server, &response[at..]);
    cap.close(&mut s);
}

/// MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 or 418 bytes) of noise from
/// `seed`, about `len` bytes, ending on a frame boundary; the frame bodies hold no 0xFF
/// byte, so no false sync word is inside.
pub fn mp3_frames(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 418);
    let mut n = 0u32;
    while out.len() < len {
        // The padding bit on every third frame, as encoders do at 44.1 kHz.
        let pad = u8::from(n % 3 == 2);
        n += 1;
        out.extend_from_slice(&[0xFF, 0xFB, 0x90 | pad << 1, 0x64]);
        for _ in 0..413 + usize::from(pad) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push((x >> 33) as u8 & 0x7F);
        }
    }
    out
}

/// An ICY body: `audio` with a metadata block after every `metaint` bytes; block `i`
/// carries `titles(i)` (`None`: an empty block).
pub fn icy_body(audio: &[u8], metaint: usize, titles: impl Fn(usize) -> Option<String>) -> Vec<u8> {
    let mut body = Vec::with_capacity(audio.len() + audio.len() / metaint * 64);
    for (i, piece) in audio.chunks(metaint).enumerate() {
        body.extend_from_slice(piece);
        if piece.len() == metaint {
            body.extend(icy_block(titles(i).as_deref()));
        }
    }
    body
}

/// One metadata block: `StreamTitle='…';` padded to 16 bytes (or a lone 0).
pub fn icy_block(title: Option<&str>) -> Vec<u8> {
    let Some(t) = title else { return vec![0] };
    let text = format!("StreamTitle='{t}';");
    let l = text.len().div_ceil(16);
    let mut b = vec![l as u8];
    b.extend_from_slice(text.as_bytes());
    b.resize(1 + 16 * l, 0);
    b
}
