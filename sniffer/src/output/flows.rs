//! `sniffer flows`: one row per TCP session (like `tshark -z conv,tcp`), as a table or JSON
//! lines, and optionally each direction of each session written to its own file.
//!
//! Rows come out in stream-index order: a session that ends before an earlier one waits in
//! a reorder buffer until the earlier one has been printed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{
    listener::{Direction, EndReason, Listener, SessionInfo, SessionState, SessionStats},
    pipeline::PipelineStats,
    wire::Timestamp,
};

/// One session's row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FlowRow {
    /// Stream index (Wireshark's `tcp.stream`).
    pub stream: u64,
    /// Client endpoint.
    pub client: SocketAddr,
    /// Server endpoint.
    pub server: SocketAddr,
    /// First packet, seconds since the epoch (`SECS.MICROS`).
    pub start: String,
    /// Last packet minus first, in seconds.
    pub duration: f64,
    /// Packets client → server.
    pub orig_packets: u64,
    /// Payload bytes client → server (as on the wire, retransmissions included).
    pub orig_bytes: u64,
    /// Packets server → client.
    pub resp_packets: u64,
    /// Payload bytes server → client.
    pub resp_bytes: u64,
    /// How the session ended.
    pub state: SessionState,
    /// SYN and SYN-ACK seen.
    pub handshake: bool,
    /// First seen without SYN.
    pub midstream: bool,
    /// Bytes declared missing, both ways.
    pub gap_bytes: u64,
    /// Conflicting overlap bytes, both ways (first wins).
    pub overlap_conflicts: u64,
    /// Retransmitted bytes, both ways.
    pub retransmitted_bytes: u64,
    /// Bytes delivered (reassembled) client → server.
    pub orig_delivered: u64,
    /// Bytes delivered server → client.
    pub resp_delivered: u64,
}

impl FlowRow {
    /// The row for a session that left the table.
    pub fn new(info: &SessionInfo, st: &SessionStats) -> Self {
        let both = |f: fn(&crate::listener::DirStats) -> u64| f(&st.orig) + f(&st.resp);
        Self {
            stream: info.stream,
            client: info.client,
            server: info.server,
            start: info.start.to_string(),
            duration: st.last.0.saturating_sub(info.start.0) as f64 / 1e9,
            orig_packets: st.orig.packets,
            orig_bytes: st.orig.bytes,
            resp_packets: st.resp.packets,
            resp_bytes: st.resp.bytes,
            state: st.state,
            handshake: st.handshake,
            midstream: info.midstream,
            gap_bytes: both(|d| d.asm.gap_bytes),
            overlap_conflicts: both(|d| d.asm.conflicts),
            retransmitted_bytes: both(|d| d.asm.retransmitted),
            orig_delivered: st.orig.asm.delivered,
            resp_delivered: st.resp.asm.delivered,
        }
    }
}

const HEADER: &str = "stream  client                                    server                                    start              duration  c>s_pkts   c>s_bytes  s>c_pkts   s>c_bytes  state    hs  gap_bytes  conflicts  retrans";

/// Writes rows in stream order as sessions leave the table.
pub struct FlowsPrinter<W: Write> {
    out: W,
    json: bool,
    next: u64,
    pending: BTreeMap<u64, FlowRow>,
    header_done: bool,
    writer: Option<FlowFiles>,
    error: Option<io::Error>,
}

impl<W: Write> FlowsPrinter<W> {
    /// Print to `out` (JSON lines if `json`); write per-direction files into `dir` if given.
    ///
    /// # Errors
    /// Creating `dir`.
    pub fn new(out: W, json: bool, dir: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            out,
            json,
            next: 0,
            pending: BTreeMap::new(),
            header_done: false,
            writer: dir.map(FlowFiles::new).transpose()?,
            error: None,
        })
    }

    fn emit(&mut self, row: &FlowRow) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, row)?;
            return writeln!(self.out);
        }
        if !self.header_done {
            writeln!(self.out, "{HEADER}")?;
            self.header_done = true;
        }
        writeln!(
            self.out,
            "{:<6}  {:<40}  {:<40}  {:<17}  {:>8.3}  {:>8}  {:>10}  {:>8}  {:>10}  {:<7}  {:<2}  {:>9}  {:>9}  {:>7}",
            row.stream,
            row.client.to_string(),
            row.server.to_string(),
            row.start,
            row.duration,
            row.orig_packets,
            row.orig_bytes,
            row.resp_packets,
            row.resp_bytes,
            row.state.to_string(),
            if row.handshake { "y" } else { "n" },
            row.gap_bytes,
            row.overlap_conflicts,
            row.retransmitted_bytes,
        )
    }

    fn drain(&mut self) -> io::Result<()> {
        while let Some(row) = self.pending.remove(&self.next) {
            self.emit(&row)?;
            self.next += 1;
        }
        Ok(())
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// Print whatever is still waiting, flush, and report the first I/O error.
    ///
    /// # Errors
    /// The first write error met on the way.
    pub fn finish(mut self) -> io::Result<W> {
        let rows: Vec<FlowRow> = std::mem::take(&mut self.pending).into_values().collect();
        for row in &rows {
            let r = self.emit(row);
            self.keep(r);
        }
        if let Some(w) = self.writer.take() {
            let r = w.finish();
            self.keep(r);
        }
        let r = self.out.flush();
        self.keep(r);
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

impl<W: Write> Listener for FlowsPrinter<W> {
    fn data(&mut self, s: &SessionInfo, dir: Direction, offset: u64, bytes: &[u8], _: Timestamp) {
        if let Some(w) = self.writer.as_mut() {
            let r = w.data(s, dir, offset, bytes);
            self.keep(r);
        }
    }

    fn gap(&mut self, s: &SessionInfo, dir: Direction, offset: u64, len: u64, _: Timestamp) {
        if let Some(w) = self.writer.as_mut() {
            let r = w.gap(s, dir, offset, len);
            self.keep(r);
        }
    }

    fn session_end(&mut self, s: &SessionInfo, _: EndReason, _: Timestamp) {
        if let Some(w) = self.writer.as_mut() {
            let r = w.close(s.stream);
            self.keep(r);
        }
    }

    fn session_stats(&mut self, s: &SessionInfo, st: &SessionStats) {
        self.pending.insert(s.stream, FlowRow::new(s, st));
        let r = self.drain();
        self.keep(r);
    }

    fn should_stop(&self) -> bool {
        self.error.is_some()
    }
}

/// An endpoint in a file name, tcpflow-style: `010.000.000.001.40000`, or for IPv6 the
/// address with `:` → `-` (`fd00--1.00080`) so names stay portable.
fn endpoint_name(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => {
            let o = v4.ip().octets();
            format!(
                "{:03}.{:03}.{:03}.{:03}.{:05}",
                o[0],
                o[1],
                o[2],
                o[3],
                v4.port()
            )
        }
        SocketAddr::V6(v6) => format!("{}.{:05}", v6.ip().to_string().replace(':', "-"), v6.port()),
    }
}

/// The file name of one direction of one session: `s000007-SRC-DST`.
pub fn flow_file_name(s: &SessionInfo, dir: Direction) -> String {
    let (src, dst) = match dir {
        Direction::Orig => (s.client, s.server),
        Direction::Resp => (s.server, s.client),
    };
    format!(
        "s{:06}-{}-{}",
        s.stream,
        endpoint_name(src),
        endpoint_name(dst)
    )
}

/// At most this many flow files are open at once; others are reopened to append.
const MAX_OPEN: usize = 128;

struct OpenFile {
    file: Option<BufWriter<File>>,
    written: u64,
    gaps: Option<BufWriter<File>>,
}

/// tcpflow-style files: the bytes of each direction, never zero-filled; each gap is a line
/// `stream_offset  length  file_offset` in the sidecar `NAME.gaps.tsv`.
struct FlowFiles {
    dir: PathBuf,
    open: HashMap<(u64, Direction), OpenFile>,
    /// Entries of `open` whose `file` is `Some`.
    n_open: usize,
}

impl FlowFiles {
    fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            open: HashMap::new(),
            n_open: 0,
        })
    }

    fn entry(&mut self, s: &SessionInfo, dir: Direction) -> io::Result<&mut OpenFile> {
        let key = (s.stream, dir);
        if self.open.get(&key).is_some_and(|f| f.file.is_some()) {
            return Ok(self.open.get_mut(&key).expect("just found"));
        }
        if self.n_open >= MAX_OPEN {
            // Close one other file; it is reopened in append mode when needed.
            if let Some(f) = self.open.values_mut().find(|f| f.file.is_some())
                && let Some(mut w) = f.file.take()
            {
                w.flush()?;
                self.n_open -= 1;
            }
        }
        let path = self.dir.join(flow_file_name(s, dir));
        let f = self.open.entry(key).or_insert(OpenFile {
            file: None,
            written: 0,
            gaps: None,
        });
        if f.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(f.written > 0)
                .write(true)
                .truncate(f.written == 0)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            f.file = Some(BufWriter::with_capacity(64 << 10, file));
            self.n_open += 1;
        }
        Ok(f)
    }

    fn data(
        &mut self,
        s: &SessionInfo,
        dir: Direction,
        _offset: u64,
        bytes: &[u8],
    ) -> io::Result<()> {
        let f = self.entry(s, dir)?;
        f.file.as_mut().expect("opened").write_all(bytes)?;
        f.written += bytes.len() as u64;
        Ok(())
    }

    fn gap(&mut self, s: &SessionInfo, dir: Direction, offset: u64, len: u64) -> io::Result<()> {
        let path = self
            .dir
            .join(format!("{}.gaps.tsv", flow_file_name(s, dir)));
        let f = self.entry(s, dir)?;
        if f.gaps.is_none() {
            let mut w = BufWriter::new(File::create(&path)?);
            writeln!(w, "stream_offset\tlength\tfile_offset")?;
            f.gaps = Some(w);
        }
        let written = f.written;
        writeln!(
            f.gaps.as_mut().expect("created"),
            "{offset}\t{len}\t{written}"
        )
    }

    fn close(&mut self, stream: u64) -> io::Result<()> {
        for dir in [Direction::Orig, Direction::Resp] {
            if let Some(f) = self.open.remove(&(stream, dir)) {
                self.n_open -= usize::from(f.file.is_some());
                for w in [f.file, f.gaps].into_iter().flatten() {
                    w.into_inner().map_err(io::IntoInnerError::into_error)?;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        let streams: Vec<u64> = self.open.keys().map(|k| k.0).collect();
        for s in streams {
            self.close(s)?;
        }
        Ok(())
    }
}

/// The closing report for stderr: what every stage dropped or could not see.
pub fn closing_summary(stats: &PipelineStats) -> String {
    let d = &stats.decode;
    let f = &stats.flow;
    let skipped = d.non_tcp
        + d.not_ip
        + d.wlan_protected
        + d.truncated_headers
        + d.unsupported_link_types.values().sum::<u64>()
        + d.malformed.values().sum::<u64>()
        + d.defrag_timeouts
        + d.defrag_overflows
        + d.defrag_errors;
    let frames = match &stats.filter {
        Some(f) => format!(
            "{} frames matched the filter ({} did not)",
            d.frames, f.rejected
        ),
        None => format!("{} frames", d.frames),
    };
    let mut s = format!(
        "{frames}, {} TCP segments ({} truncated by the snap length), {} frames skipped",
        d.tcp_segments, d.truncated_segments, skipped
    );
    let mut why: Vec<String> = Vec::new();
    for (n, what) in [
        (d.non_tcp, "not TCP"),
        (d.not_ip, "not IP"),
        (d.wlan_protected, "encrypted 802.11"),
        (d.truncated_headers, "headers cut short"),
        (
            d.defrag_timeouts + d.defrag_overflows + d.defrag_errors,
            "fragments not reassembled",
        ),
    ] {
        if n > 0 {
            why.push(format!("{n} {what}"));
        }
    }
    for (k, n) in &d.malformed {
        why.push(format!("{n} malformed: {k}"));
    }
    for (k, n) in &d.unsupported_link_types {
        why.push(format!("{n} of link type {k}"));
    }
    if !why.is_empty() {
        s += &format!(" ({})", why.join(", "));
    }
    s += &format!(
        "\n{} sessions: {} closed by FIN, {} by RST, {} timed out, {} evicted ({} for memory), {} reused, {} open at the end\n\
         {} gaps ({} bytes missing), {} retransmitted bytes, {} conflicting overlap bytes, {} bytes after close dropped, {} out-of-order overflows",
        f.sessions,
        f.ended_fin,
        f.ended_rst,
        f.timed_out,
        f.evicted + f.evicted_memcap,
        f.evicted_memcap,
        f.reused,
        f.open_at_end,
        f.gaps,
        f.gap_bytes,
        f.retransmitted,
        f.conflicts,
        f.after_close,
        f.ooo_overflows,
    );
    if let Some(k) = &stats.source.kernel {
        s += &format!(
            "\nkernel: {} packets seen, {} matched, {} lost (ring full), {} copy failures, {} truncated",
            k.seen, k.matched, k.ring_full, k.copy_failed, k.truncated
        );
    }
    if stats.stopped_early {
        s += "\nstopped before the end of the input";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_endpoints_and_stream() {
        let s = SessionInfo {
            stream: 7,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "[fd00::2]:80".parse().unwrap(),
            start: Timestamp(0),
            midstream: false,
        };
        assert_eq!(
            flow_file_name(&s, Direction::Orig),
            "s000007-010.000.000.001.40000-fd00--2.00080"
        );
        assert_eq!(
            flow_file_name(&s, Direction::Resp),
            "s000007-fd00--2.00080-010.000.000.001.40000"
        );
    }

    fn stats(state: SessionState, orig: u64, resp: u64) -> SessionStats {
        let mut st = SessionStats {
            orig: crate::listener::DirStats::default(),
            resp: crate::listener::DirStats::default(),
            handshake: true,
            state,
            last: Timestamp(2_500_000_000),
        };
        st.orig.packets = 3;
        st.orig.bytes = orig;
        st.orig.asm.delivered = orig;
        st.resp.packets = 4;
        st.resp.bytes = resp;
        st.resp.asm.delivered = resp - 3;
        st.resp.asm.gap_bytes = 3;
        st.resp.asm.retransmitted = 7;
        st
    }

    #[test]
    fn rows_in_stream_order_and_files_with_gap_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = FlowsPrinter::new(Vec::new(), true, Some(dir.path())).unwrap();
        let t = Timestamp(1_000_000_000);
        let info = |stream, port| SessionInfo {
            stream,
            client: SocketAddr::from(([10, 0, 0, 1], port)),
            server: "10.0.0.2:80".parse().unwrap(),
            start: t,
            midstream: false,
        };
        let (a, b) = (info(0, 40000), info(1, 40001));
        p.data(&a, Direction::Orig, 0, b"GET", t);
        p.data(&b, Direction::Orig, 0, b"HEAD", t);
        p.data(&a, Direction::Resp, 0, b"ab", t);
        p.gap(&a, Direction::Resp, 2, 3, t);
        p.data(&a, Direction::Resp, 5, b"f", t);
        // Session 1 ends first: its row waits for session 0's.
        p.session_end(&b, EndReason::Rst, t);
        p.session_stats(&b, &stats(SessionState::Rst, 4, 3));
        assert!(p.out.is_empty());
        p.session_end(&a, EndReason::Fin, t);
        p.session_stats(&a, &stats(SessionState::Fin, 3, 6));
        let out = p.finish().unwrap();
        let rows: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0]["stream"].as_u64(), rows[1]["stream"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(rows[0]["state"], "fin");
        assert_eq!(rows[0]["gap_bytes"], 3);
        assert_eq!(rows[0]["duration"], 1.5);
        assert_eq!(rows[1]["client"], "10.0.0.1:40001");
        let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
        assert_eq!(read(&flow_file_name(&a, Direction::Orig)), b"GET");
        assert_eq!(
            read(&flow_file_name(&a, Direction::Resp)),
            b"abf",
            "never zero-filled"
        );
        assert_eq!(read(&flow_file_name(&b, Direction::Orig)), b"HEAD");
        assert_eq!(
            read(&format!("{}.gaps.tsv", flow_file_name(&a, Direction::Resp))),
            b"stream_offset\tlength\tfile_offset\n2\t3\t2\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
