//! `sniffer follow`: one session's dialogue, like Wireshark's Follow TCP Stream.
//!
//! Each monologue is printed as a block headed by its direction and byte count; a
//! monologue longer than [`BLOCK_MAX`] is printed as several blocks of the same direction,
//! so memory stays bounded. Gaps appear in place as `[N bytes missing]`. `raw` writes the
//! exact bytes of one direction and reports gaps on stderr (never zero-filled).

use std::io::{self, Write};
use std::net::SocketAddr;

use crate::{
    listener::{Direction, EndReason, Listener, SessionInfo},
    records::{self, Endpoints, Record as _},
    wire::Timestamp,
};

/// Which session to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowSelector {
    /// By stream index.
    Stream(u64),
    /// By its two endpoints, in either order.
    Endpoints(SocketAddr, SocketAddr),
}

/// How the followed session is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FollowFormat {
    /// Printable ASCII, other bytes as `.`.
    #[default]
    Ascii,
    /// Hex dump.
    Hex,
    /// Exact bytes of one direction.
    Raw,
    /// JSON lines, one per monologue or gap.
    Json,
}

/// A gap seen in the followed session: direction, stream offset, length.
pub type GapRecord = (Direction, u64, u64);

/// Bytes of one monologue buffered before a block is printed.
pub const BLOCK_MAX: usize = 1 << 20;

/// Prints the selected session.
pub struct Follower<W: Write> {
    out: W,
    select: FlowSelector,
    format: FollowFormat,
    only: Option<Direction>,
    /// The session followed, once found.
    session: Option<SessionInfo>,
    done: bool,
    block: Vec<u8>,
    block_dir: Direction,
    block_offset: u64,
    /// Capture time of the block's first bytes.
    block_ts: Timestamp,
    /// Gaps seen.
    pub gaps: Vec<GapRecord>,
    error: Option<io::Error>,
}

impl<W: Write> Follower<W> {
    /// Follow the session `select` picks, printing `format` to `out` (only direction
    /// `only` if given).
    pub fn new(
        out: W,
        select: FlowSelector,
        format: FollowFormat,
        only: Option<Direction>,
    ) -> Self {
        Self {
            out,
            select,
            format,
            only,
            session: None,
            done: false,
            block: Vec::new(),
            block_dir: Direction::Orig,
            block_offset: 0,
            block_ts: Timestamp(0),
            gaps: Vec::new(),
            error: None,
        }
    }

    /// The session followed, if it was found.
    pub const fn session(&self) -> Option<&SessionInfo> {
        self.session.as_ref()
    }

    fn mine(&self, s: &SessionInfo) -> bool {
        self.session.as_ref().is_some_and(|m| m.stream == s.stream)
    }

    fn wanted(&self, dir: Direction) -> bool {
        self.only.is_none_or(|d| d == dir)
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    fn endpoints(&self, dir: Direction) -> (SocketAddr, SocketAddr) {
        let s = self.session.as_ref().expect("following");
        match dir {
            Direction::Orig => (s.client, s.server),
            Direction::Resp => (s.server, s.client),
        }
    }

    /// Print the buffered block, if any.
    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::take(&mut self.block);
        let (dir, offset) = (self.block_dir, self.block_offset);
        let (src, dst) = self.endpoints(dir);
        let stream = self.session.as_ref().expect("following").stream;
        match self.format {
            FollowFormat::Raw => unreachable!("raw is never buffered"),
            FollowFormat::Ascii => {
                writeln!(
                    self.out,
                    "=== {dir} {src} > {dst}: {} bytes at offset {offset} ===",
                    block.len()
                )?;
                let mut text = Vec::with_capacity(block.len() + 1);
                for (i, &b) in block.iter().enumerate() {
                    match b {
                        b'\r' if block.get(i + 1) == Some(&b'\n') => {}
                        b'\n' | b'\t' | 0x20..=0x7e => text.push(b),
                        _ => text.push(b'.'),
                    }
                }
                if text.last() != Some(&b'\n') {
                    text.push(b'\n');
                }
                self.out.write_all(&text)?;
            }
            FollowFormat::Hex => {
                writeln!(
                    self.out,
                    "=== {dir} {src} > {dst}: {} bytes at offset {offset} ===",
                    block.len()
                )?;
                for (i, line) in block.chunks(16).enumerate() {
                    let at = offset + (i * 16) as u64;
                    write!(self.out, "{at:08x}  ")?;
                    for j in 0..16 {
                        match line.get(j) {
                            Some(b) => write!(self.out, "{b:02x} ")?,
                            None => write!(self.out, "   ")?,
                        }
                        if j == 7 {
                            write!(self.out, " ")?;
                        }
                    }
                    let ascii: String = line
                        .iter()
                        .map(|&b| {
                            if (0x20..0x7f).contains(&b) {
                                b as char
                            } else {
                                '.'
                            }
                        })
                        .collect();
                    writeln!(self.out, " |{ascii}|")?;
                }
            }
            FollowFormat::Json => records::DataRecord {
                ts: self.block_ts,
                stream,
                dir,
                endpoints: self.record_endpoints(),
                offset,
                size: block.len() as u64,
                hex: hex(&block),
            }
            .write_line(&mut self.out)?,
        }
        self.block = block;
        self.block.clear();
        Ok(())
    }

    fn record_endpoints(&self) -> Endpoints {
        let s = self.session.as_ref().expect("following");
        Endpoints::new(s.client, s.server)
    }

    fn on_data(
        &mut self,
        dir: Direction,
        offset: u64,
        bytes: &[u8],
        ts: Timestamp,
    ) -> io::Result<()> {
        if self.format == FollowFormat::Raw {
            return self.out.write_all(bytes);
        }
        if !self.block.is_empty() && (self.block_dir != dir || self.block.len() >= BLOCK_MAX) {
            self.flush_block()?;
        }
        if self.block.is_empty() {
            self.block_dir = dir;
            self.block_offset = offset;
            self.block_ts = ts;
        }
        self.block.extend_from_slice(bytes);
        Ok(())
    }

    fn on_gap(&mut self, dir: Direction, offset: u64, len: u64, ts: Timestamp) -> io::Result<()> {
        self.gaps.push((dir, offset, len));
        match self.format {
            FollowFormat::Raw => Ok(()),
            FollowFormat::Json => {
                self.flush_block()?;
                records::GapRecord {
                    ts,
                    stream: self.session.as_ref().expect("following").stream,
                    dir,
                    endpoints: self.record_endpoints(),
                    offset,
                    size: len,
                }
                .write_line(&mut self.out)
            }
            FollowFormat::Ascii | FollowFormat::Hex => {
                self.flush_block()?;
                writeln!(
                    self.out,
                    "=== {dir} [{len} bytes missing] at offset {offset} ==="
                )
            }
        }
    }

    /// Flush, and report the first I/O error met.
    ///
    /// # Errors
    /// The first write error.
    pub fn finish(mut self) -> io::Result<(W, Option<SessionInfo>, Vec<GapRecord>)> {
        let r = self.flush_block();
        self.keep(r);
        let r = self.out.flush();
        self.keep(r);
        match self.error {
            Some(e) => Err(e),
            None => Ok((self.out, self.session, self.gaps)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl<W: Write> Listener for Follower<W> {
    fn session_start(&mut self, s: &SessionInfo, _: Timestamp) {
        if self.session.is_some() {
            return;
        }
        let hit = match &self.select {
            FlowSelector::Stream(n) => s.stream == *n,
            FlowSelector::Endpoints(a, b) => {
                (s.client == *a && s.server == *b) || (s.client == *b && s.server == *a)
            }
        };
        if hit {
            self.session = Some(s.clone());
        }
    }

    fn data(&mut self, s: &SessionInfo, dir: Direction, offset: u64, bytes: &[u8], ts: Timestamp) {
        if self.mine(s) && self.wanted(dir) {
            let r = self.on_data(dir, offset, bytes, ts);
            self.keep(r);
        }
    }

    fn gap(&mut self, s: &SessionInfo, dir: Direction, offset: u64, len: u64, ts: Timestamp) {
        if self.mine(s) && self.wanted(dir) {
            let r = self.on_gap(dir, offset, len, ts);
            self.keep(r);
        }
    }

    fn monologue_end(&mut self, s: &SessionInfo, _: Direction, _: Timestamp) {
        if self.mine(s) && self.format != FollowFormat::Raw {
            let r = self.flush_block();
            self.keep(r);
        }
    }

    fn session_end(&mut self, s: &SessionInfo, _: EndReason, _: Timestamp) {
        if self.mine(s) {
            self.done = true;
        }
    }

    fn should_stop(&self) -> bool {
        self.done || self.error.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(stream: u64) -> SessionInfo {
        SessionInfo {
            stream,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            start: Timestamp(0),
            midstream: false,
        }
    }

    /// Session 1 of two: request in two pieces, a response with a gap in it.
    fn play(f: &mut Follower<Vec<u8>>) {
        let (s0, s1, t) = (info(0), info(1), Timestamp(0));
        use Direction::{Orig, Resp};
        for s in [&s0, &s1] {
            f.session_start(s, t);
            f.data(s, Orig, 0, b"GET / HTTP/1.1\r\n", t);
            f.data(s, Orig, 16, b"\r\n", t);
            f.monologue_end(s, Orig, t);
            f.data(s, Resp, 0, b"HTTP/1.1 200 OK\r\n\r\nab", t);
            f.gap(s, Resp, 21, 5, t);
            f.data(s, Resp, 26, b"\x00z", t);
            f.monologue_end(s, Resp, t);
            f.session_end(s, EndReason::Fin, t);
        }
    }

    #[test]
    fn ascii_blocks_headed_by_direction_and_count_with_gaps_in_place() {
        let mut f = Follower::new(
            Vec::new(),
            FlowSelector::Stream(1),
            FollowFormat::Ascii,
            None,
        );
        play(&mut f);
        assert!(f.should_stop(), "the followed session ended");
        let (out, s, gaps) = f.finish().unwrap();
        assert_eq!(s.unwrap().stream, 1);
        assert_eq!(gaps, [(Direction::Resp, 21, 5)]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "=== orig 10.0.0.1:40000 > 10.0.0.2:80: 18 bytes at offset 0 ===\n\
             GET / HTTP/1.1\n\n\
             === resp 10.0.0.2:80 > 10.0.0.1:40000: 21 bytes at offset 0 ===\n\
             HTTP/1.1 200 OK\n\nab\n\
             === resp [5 bytes missing] at offset 21 ===\n\
             === resp 10.0.0.2:80 > 10.0.0.1:40000: 2 bytes at offset 26 ===\n\
             .z\n"
        );
    }

    #[test]
    fn raw_writes_exact_bytes_of_one_direction() {
        let sel = FlowSelector::Endpoints(
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.1:40000".parse().unwrap(),
        );
        let mut f = Follower::new(Vec::new(), sel, FollowFormat::Raw, Some(Direction::Resp));
        play(&mut f);
        let (out, s, gaps) = f.finish().unwrap();
        assert_eq!(
            s.unwrap().stream,
            0,
            "the first session with these endpoints"
        );
        assert_eq!(out, b"HTTP/1.1 200 OK\r\n\r\nab\x00z");
        assert_eq!(gaps, [(Direction::Resp, 21, 5)]);
    }

    #[test]
    fn json_and_hex() {
        let mut f = Follower::new(
            Vec::new(),
            FlowSelector::Stream(0),
            FollowFormat::Json,
            None,
        );
        play(&mut f);
        let (out, _, _) = f.finish().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["hex"], hex(b"GET / HTTP/1.1\r\n\r\n"));
        assert_eq!(
            (lines[2]["type"].as_str(), lines[2]["size"].as_u64()),
            (Some("gap"), Some(5))
        );
        assert_eq!(lines[0]["type"], "data");
        assert_eq!(
            (lines[0]["v"].as_u64(), lines[0]["dir"].as_str()),
            (Some(1), Some("orig"))
        );
        assert_eq!(lines[0]["resp_ip"], "10.0.0.2");
        let mut f = Follower::new(
            Vec::new(),
            FlowSelector::Stream(0),
            FollowFormat::Hex,
            Some(Direction::Orig),
        );
        play(&mut f);
        let (out, _, _) = f.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|\n"
            ),
            "{text}"
        );
        assert!(text.contains("00000010  0d 0a "), "{text}");
    }

    #[test]
    fn long_monologue_is_cut_into_bounded_blocks() {
        let mut f = Follower::new(
            Vec::new(),
            FlowSelector::Stream(0),
            FollowFormat::Ascii,
            None,
        );
        let (s, t) = (info(0), Timestamp(0));
        f.session_start(&s, t);
        let chunk = vec![b'x'; 1 << 16];
        for i in 0..20u64 {
            f.data(&s, Direction::Resp, i << 16, &chunk, t);
            assert!(f.block.len() <= BLOCK_MAX + chunk.len());
        }
        let (out, _, _) = f.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("=== resp").count(), 2);
        assert!(text.contains(&format!(": {} bytes at offset 0 ===", BLOCK_MAX)));
    }
}
