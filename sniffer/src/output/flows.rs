//! `sniffer flows`: one row per TCP session (like `tshark -z conv,tcp`), as a table or JSON
//! lines, and optionally each direction of each session written to its own file.
//!
//! Rows come out in stream-index order: a session that ends before an earlier one waits in
//! a reorder buffer until the earlier one has been printed. The buffer holds at most
//! [`MAX_WAITING`] rows, so that a session open for days cannot make it grow without end
//! (a flood of short sessions behind it): beyond that the rows waiting are printed, and
//! the late session's row comes when it ends, out of order (its stream index says where
//! it belongs).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{
    listener::{DirStats, Direction, EndReason, Listener, SessionInfo, SessionStats},
    output::count,
    pipeline::PipelineStats,
    records::{Endpoints, FlowRecord, Record as _},
    wire::{Timestamp, community_id},
};

/// The row (and JSON record) of a session that left the table, with its Community ID
/// from `seed`.
pub fn flow_record(info: &SessionInfo, st: &SessionStats, seed: u16) -> FlowRecord {
    let both = |f: fn(&DirStats) -> u64| f(&st.orig) + f(&st.resp);
    FlowRecord {
        ts: info.start,
        duration: st.last.0.saturating_sub(info.start.0) as f64 / 1e9,
        stream: info.stream,
        endpoints: Endpoints::new(info.client, info.server),
        community_id: community_id(seed, info.client, info.server),
        orig_packets: st.orig.packets,
        orig_bytes: st.orig.bytes,
        resp_packets: st.resp.packets,
        resp_bytes: st.resp.bytes,
        orig_delivered_bytes: st.orig.asm.delivered,
        resp_delivered_bytes: st.resp.asm.delivered,
        state: st.state.to_string(),
        handshake: st.handshake,
        midstream: info.midstream,
        gap_bytes: both(|d| d.asm.gap_bytes),
        conflict_bytes: both(|d| d.asm.conflicts),
        retransmitted_bytes: both(|d| d.asm.retransmitted),
    }
}

/// How `flows` prints its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowsFormat {
    /// JSON lines ([`FlowRecord`]) instead of a table.
    pub json: bool,
    /// Every column (packets, handshake, conflicts, retransmissions, delivered bytes).
    pub wide: bool,
    /// Start times since the epoch instead of since the first packet.
    pub absolute_time: bool,
    /// The Community ID seed of the JSON records.
    pub community_id_seed: u16,
}
/// Rows that may wait behind a session still open.
pub const MAX_WAITING: usize = 10_000;

/// Writes rows in stream order as sessions leave the table.
pub struct FlowsPrinter<W: Write> {
    out: W,
    format: FlowsFormat,
    next: u64,
    pending: BTreeMap<u64, FlowRecord>,
    /// Start of the first row printed: the origin of relative times.
    origin: Option<Timestamp>,
    header_done: bool,
    writer: Option<FlowFiles>,
    error: Option<io::Error>,
}

impl<W: Write> FlowsPrinter<W> {
    /// Print to `out` as `format` says; write per-direction files into `dir` if given.
    ///
    /// # Errors
    /// Creating `dir`.
    pub fn new(out: W, format: FlowsFormat, dir: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            out,
            format,
            next: 0,
            pending: BTreeMap::new(),
            origin: None,
            header_done: false,
            writer: dir.map(FlowFiles::new).transpose()?,
            error: None,
        })
    }

    fn emit(&mut self, row: &FlowRecord) -> io::Result<()> {
        if self.format.json {
            return row.write_line(&mut self.out);
        }
        let wide = self.format.wide;
        if !self.header_done {
            if wide {
                writeln!(
                    self.out,
                    "{:<6}  {:<40}  {:<40}  {:>17}  {:>8}  {:>8}  {:>12}  {:>8}  {:>12}  {:<7}  {:>9}  {:<2}  {:>9}  {:>9}  {:>12}  {:>12}",
                    "stream",
                    "client",
                    "server",
                    "start",
                    "duration",
                    "c>s pkts",
                    "c>s bytes",
                    "s>c pkts",
                    "s>c bytes",
                    "state",
                    "missing",
                    "hs",
                    "conflicts",
                    "retrans",
                    "c>s deliv",
                    "s>c deliv",
                )?;
            } else {
                writeln!(
                    self.out,
                    "{:<6}  {:<21}  {:<21}  {:>9}  {:>8}  {:>11}  {:>11}  {:<7}  {:>9}",
                    "stream",
                    "client",
                    "server",
                    "start",
                    "duration",
                    "c>s bytes",
                    "s>c bytes",
                    "state",
                    "missing",
                )?;
            }
            self.header_done = true;
        }
        let origin = *self.origin.get_or_insert(row.ts);
        let start = if self.format.absolute_time {
            row.ts.to_string()
        } else {
            format!("{:.3}", row.ts.0.saturating_sub(origin.0) as f64 / 1e9)
        };
        let (client, server) = (
            row.endpoints.client().to_string(),
            row.endpoints.server().to_string(),
        );
        if wide {
            writeln!(
                self.out,
                "{:<6}  {:<40}  {:<40}  {:>17}  {:>8.3}  {:>8}  {:>12}  {:>8}  {:>12}  {:<7}  {:>9}  {:<2}  {:>9}  {:>9}  {:>12}  {:>12}",
                row.stream,
                client,
                server,
                start,
                row.duration,
                row.orig_packets,
                row.orig_bytes,
                row.resp_packets,
                row.resp_bytes,
                row.state,
                row.gap_bytes,
                if row.handshake { "y" } else { "n" },
                row.conflict_bytes,
                row.retransmitted_bytes,
                row.orig_delivered_bytes,
                row.resp_delivered_bytes,
            )
        } else {
            writeln!(
                self.out,
                "{:<6}  {:<21}  {:<21}  {:>9}  {:>8.3}  {:>11}  {:>11}  {:<7}  {:>9}",
                row.stream,
                client,
                server,
                start,
                row.duration,
                row.orig_bytes,
                row.resp_bytes,
                row.state,
                row.gap_bytes,
            )
        }
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
        let rows: Vec<FlowRecord> = std::mem::take(&mut self.pending).into_values().collect();
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
        let row = flow_record(s, st, self.format.community_id_seed);
        if s.stream < self.next {
            // The rows behind it could not wait any longer: its place has passed.
            let r = self.emit(&row);
            self.keep(r);
            return;
        }
        self.pending.insert(s.stream, row);
        let mut r = self.drain();
        while r.is_ok() && self.pending.len() > MAX_WAITING {
            let (stream, row) = self.pending.pop_first().expect("over the bound");
            r = self.emit(&row);
            self.next = stream + 1;
            if r.is_ok() {
                r = self.drain();
            }
        }
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

/// The closing report for stderr, a line each: what was read, the sessions, what was
/// missing, and (live) what the kernel counted. Counters that are zero and mean nothing
/// are left out; losses are always said, even when there were none.
pub fn closing_summary(stats: &PipelineStats) -> Vec<String> {
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
            "{} the filter ({} did not)",
            count(d.frames, "frame matched", "frames matched"),
            f.rejected
        ),
        None => count(d.frames, "frame", "frames"),
    };
    let mut read = format!(
        "{frames}, {}",
        count(d.tcp_segments, "TCP segment", "TCP segments")
    );
    if d.truncated_segments > 0 {
        read += &format!(" ({} cut by the snap length)", d.truncated_segments);
    }
    if skipped > 0 {
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
        read += &format!(
            "; {} skipped ({})",
            count(skipped, "frame", "frames"),
            why.join(", ")
        );
    }
    let mut lines = vec![read];

    let mut ends = Vec::new();
    for (n, what) in [
        (f.ended_fin, "closed by FIN".to_owned()),
        (f.ended_rst, "closed by RST".to_owned()),
        (f.timed_out, "timed out".to_owned()),
        (f.evicted + f.evicted_memcap, {
            let mut why = Vec::new();
            for (n, what) in [
                (f.evicted_unanswered, "never answered"),
                (f.evicted_closed, "already closed"),
                (f.evicted_memcap, "for memory"),
            ] {
                if n > 0 {
                    why.push(format!("{n} {what}"));
                }
            }
            if why.is_empty() {
                "evicted".to_owned()
            } else {
                format!("evicted ({})", why.join(", "))
            }
        }),
        (f.reused, "ended by reuse of their 4-tuple".to_owned()),
        (f.open_at_end, "open at the end".to_owned()),
    ] {
        if n > 0 {
            ends.push(format!("{n} {what}"));
        }
    }
    let mut sessions = count(f.sessions, "TCP session", "TCP sessions");
    if !ends.is_empty() {
        sessions += &format!(": {}", ends.join(", "));
    }
    sessions += &format!(
        "; at most {:.1} MiB held",
        f.max_memory_bytes as f64 / f64::from(1 << 20)
    );
    lines.push(sessions);

    let mut missing = if f.gaps == 0 {
        "no bytes missing".to_owned()
    } else {
        format!(
            "{} ({} missing)",
            count(f.gaps, "gap", "gaps"),
            count(f.gap_bytes, "byte", "bytes")
        )
    };
    for (n, what) in [
        (f.retransmitted, "retransmitted bytes"),
        (
            f.conflicts,
            "conflicting overlap bytes (the first copy kept)",
        ),
        (f.after_close, "bytes after close dropped"),
        (f.ooo_overflows, "out-of-order overflows"),
    ] {
        if n > 0 {
            missing += &format!(", {n} {what}");
        }
    }
    lines.push(missing);

    if let Some(k) = &stats.source.kernel {
        let mut kernel = format!(
            "kernel: {} seen, {} matched, {} lost (ring buffer full)",
            count(k.seen, "packet", "packets"),
            k.matched,
            k.ring_full
        );
        for (n, what) in [
            (k.copy_failed, "copy failures"),
            (k.truncated, "cut at the snap length"),
        ] {
            if n > 0 {
                kernel += &format!(", {n} {what}");
            }
        }
        lines.push(kernel);
    }
    if stats.stopped_early {
        lines.push("stopped before the end of the input".to_owned());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::SessionState;

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
            orig: DirStats::default(),
            resp: DirStats::default(),
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
        let json = FlowsFormat {
            json: true,
            ..FlowsFormat::default()
        };
        let mut p = FlowsPrinter::new(Vec::new(), json, Some(dir.path())).unwrap();
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
        assert_eq!(rows[1]["orig_ip"], "10.0.0.1");
        assert_eq!(rows[1]["orig_port"], 40001);
        assert_eq!(
            (rows[1]["v"].as_u64(), rows[1]["type"].as_str()),
            (Some(1), Some("flow"))
        );
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

    #[test]
    fn issue13_the_default_table_fits_120_columns_with_relative_times() {
        let widest = |stream, start: u64| {
            let mut st = stats(SessionState::Timeout, 9_999_999_999, 9_999_999_999);
            st.last = Timestamp(start + 99_999_000_000_000);
            st.resp.asm.gap_bytes = 999_999_999;
            (
                SessionInfo {
                    stream,
                    client: "255.255.255.255:65535".parse().unwrap(),
                    server: "255.255.255.254:65535".parse().unwrap(),
                    start: Timestamp(start),
                    midstream: false,
                },
                st,
            )
        };
        for absolute_time in [false, true] {
            let format = FlowsFormat {
                absolute_time,
                ..FlowsFormat::default()
            };
            let mut p = FlowsPrinter::new(Vec::new(), format, None).unwrap();
            for (stream, start) in [
                (0, 1_700_000_000_000_000_000),
                (999_999, 1_700_000_012_345_678_000),
            ] {
                let (info, st) = widest(stream, start);
                p.session_stats(&info, &st);
            }
            let text = String::from_utf8(p.finish().unwrap()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 3, "{text}");
            if !absolute_time {
                for l in &lines {
                    assert!(l.len() <= 120, "{} columns: {l}", l.len());
                }
                assert!(lines[1].contains(" 0.000 "), "{}", lines[1]);
                assert!(lines[2].contains(" 12.346 "), "{}", lines[2]);
            } else {
                assert!(lines[2].contains(" 1700000012.345678 "), "{}", lines[2]);
            }
        }
    }

    /// A session open for a long time holds back at most MAX_WAITING rows; its own row
    /// comes when it ends.
    #[test]
    fn issue12_rows_behind_a_long_session_wait_a_bounded_while() {
        let json = FlowsFormat {
            json: true,
            ..FlowsFormat::default()
        };
        let mut p = FlowsPrinter::new(Vec::new(), json, None).unwrap();
        let info = |stream: u64| SessionInfo {
            stream,
            client: SocketAddr::from(([10, 0, 0, 1], 1000 + stream as u16)),
            server: "10.0.0.2:80".parse().unwrap(),
            start: Timestamp(0),
            midstream: false,
        };
        let streams = |out: &[u8]| -> Vec<u64> {
            String::from_utf8_lossy(out)
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["stream"].as_u64().unwrap()
                })
                .collect()
        };
        // Rows 1.. wait for session 0 until there are too many; then they all go, and
        // the rest as they come.
        let total = MAX_WAITING as u64 + 5;
        for stream in 1..=total {
            p.session_stats(&info(stream), &stats(SessionState::Evicted, 0, 3));
            let waiting = if stream as usize > MAX_WAITING {
                0
            } else {
                stream as usize
            };
            assert_eq!(p.pending.len(), waiting);
        }
        assert_eq!(streams(&p.out), (1..=total).collect::<Vec<_>>());
        p.session_stats(&info(0), &stats(SessionState::Fin, 1, 3));
        let out = p.finish().unwrap();
        let mut want: Vec<u64> = (1..=total).collect();
        want.push(0);
        assert_eq!(streams(&out), want);
    }
}
