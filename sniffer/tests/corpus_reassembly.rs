//! Issue 4: reassembly over the shared corpus of real captures, against what TShark saw
//! (`ref/summary.tsv`, `ref/tcp_extents.tsv`) and against the bytes the packets imply.
//!
//! The corpus is read from `../shared/captures` relative to the workspace root, or from
//! `SNIFFER_CORPUS`; when it is absent each test says so and passes without checking.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

mod common;
use common::{corpus, sha256_hex as sha, tsv};

use sniffer::{
    capture::{self, Input, Timestamp},
    flow::{FlowConfig, SessionStats},
    listener::{Direction, Listener, SessionInfo},
    pipeline,
};

/// One direction of one session, as reassembled.
#[derive(Default, Debug, Clone)]
struct Dir {
    bytes: Vec<u8>,
    gap_bytes: u64,
    gaps: Vec<(u64, u64)>,
    end: u64,
}

#[derive(Default)]
struct Collect {
    infos: BTreeMap<u64, SessionInfo>,
    dirs: BTreeMap<(u64, Direction), Dir>,
    stats: BTreeMap<u64, SessionStats>,
}

impl Listener for Collect {
    fn session_start(&mut self, s: &SessionInfo, _: Timestamp) {
        self.infos.insert(s.stream, s.clone());
    }
    fn data(&mut self, s: &SessionInfo, d: Direction, off: u64, b: &[u8], _: Timestamp) {
        let e = self.dirs.entry((s.stream, d)).or_default();
        assert_eq!(off, e.end, "stream {} {d}: data in order", s.stream);
        e.bytes.extend_from_slice(b);
        e.end += b.len() as u64;
    }
    fn gap(&mut self, s: &SessionInfo, d: Direction, off: u64, len: u64, _: Timestamp) {
        let e = self.dirs.entry((s.stream, d)).or_default();
        assert_eq!(off, e.end, "stream {} {d}: gap in order", s.stream);
        e.gap_bytes += len;
        e.gaps.push((off, len));
        e.end += len;
    }
    fn session_stats(&mut self, s: &SessionInfo, st: &SessionStats) {
        self.stats.insert(s.stream, st.clone());
    }
}

fn reassemble(path: &Path) -> Collect {
    let mut source = capture::open(&Input::Files(vec![path.to_owned()]))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = Collect::default();
    if let Err(e) = pipeline::run(source.as_mut(), &FlowConfig::default(), &mut c) {
        // A damaged tail is the file's fault; what came before it must still be right.
        eprintln!("{}: {e} (kept what came before)", path.display());
    }
    c
}

#[test]
fn issue4_stream_count_matches_tshark() {
    let Some(dir) = corpus() else { return };
    let mut checked = 0;
    for row in tsv(&dir.join("ref/summary.tsv")) {
        let file = &row["file"];
        let mut want: u64 = row["tshark_tcp_streams"].parse().unwrap();
        if file == "tcpflow__test5-lines-randomized.pcap" {
            // TShark counts 2: the shuffled capture has the SYN after the FINs, and TShark
            // opens a new stream for it. The SYN's ISN (2447886535) is the one the SYN-ACK
            // acknowledges, so it is the same connection: one session.
            want = 1;
        }
        let c = reassemble(&dir.join(file));
        assert_eq!(c.infos.len() as u64, want, "{file}: TCP sessions");
        checked += 1;
    }
    assert!(checked >= 40, "summary.tsv lists the 40 captures");
}

#[test]
fn issue4_extents_match_tshark() {
    let Some(dir) = corpus() else { return };
    let rows = tsv(&dir.join("ref/tcp_extents.tsv"));
    let mut by_file: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for r in rows {
        by_file.entry(r["file"].clone()).or_default().push(r);
    }
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let mut fin_with_data = 0;
    for (file, rows) in by_file {
        if file == "tcpflow__test5-lines-randomized.pcap" {
            // TShark splits this shuffled capture in two streams (see the stream count
            // test), so its per-stream extents describe a different split; the bytes are
            // checked against the ordered original instead.
            continue;
        }
        let c = reassemble(&dir.join(&file));
        for r in rows {
            let stream: u64 = r["tcp_stream"].parse().unwrap();
            let (ip, port) = r["src"].rsplit_once(':').unwrap();
            let src = SocketAddr::new(ip.parse().unwrap(), port.parse().unwrap());
            let info = &c.infos[&stream];
            let d = if src == info.client {
                Direction::Orig
            } else {
                Direction::Resp
            };
            let want: u64 = r["tshark_max_relseq_extent"].parse().unwrap();
            let got = c.dirs.get(&(stream, d)).map_or(0, |x| x.end);
            let retrans: u64 = r["tshark_retrans_bytes"].parse().unwrap();
            let our_retrans = c.stats[&stream].dir(d).asm.retransmitted;
            checked += 1;
            // TShark's extent counts the FIN's sequence number when the FIN segment carries
            // data (its last segment's nxtseq includes the FIN); the packets show the data
            // ends one byte earlier, e.g. jpegs.cap stream 1: 5 bytes at relative seq 2680
            // with FIN end at 2684, not 2685. These are the captures where that happens.
            if got + 1 == want
                && [
                    "tcpflow__samplePcaps__jpegs.cap",
                    "suricata-verify__http-protocol-nodup__input.pcap",
                ]
                .contains(&file.as_str())
            {
                fin_with_data += 1;
                continue;
            }
            if got != want {
                mismatches.push(format!(
                    "{file} stream {stream} {d}: extent ours {got} tshark {want} (retrans ours {our_retrans} tshark {retrans}; gaps {})",
                    c.dirs.get(&(stream, d)).map_or(0, |x| x.gap_bytes)
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{checked} checked:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(
        checked, 452,
        "every row of tcp_extents.tsv but the 2 of the shuffled capture"
    );
    assert_eq!(
        fin_with_data, 16,
        "rows where TShark counts a data-bearing FIN"
    );
}

#[test]
fn issue4_randomized_capture_reassembles_to_the_ordered_bytes() {
    let Some(dir) = corpus() else { return };
    let ordered = reassemble(&dir.join("tcpflow__test5-lines.pcap"));
    let shuffled = reassemble(&dir.join("tcpflow__test5-lines-randomized.pcap"));
    assert_eq!(ordered.infos.len(), 1);
    assert_eq!(shuffled.infos.len(), 1);
    for d in [Direction::Orig, Direction::Resp] {
        let a = &ordered.dirs[&(0, d)];
        let b = &shuffled.dirs[&(0, d)];
        assert_eq!((a.gap_bytes, b.gap_bytes), (0, 0), "{d}: no gaps");
        assert_eq!(sha(&a.bytes), sha(&b.bytes), "{d}: same bytes");
    }
    assert_eq!(ordered.dirs[&(0, Direction::Orig)].bytes.len(), 120);
    assert_eq!(ordered.dirs[&(0, Direction::Resp)].bytes.len(), 1884);
}

/// The 11 connections of Arkime's synthetic capture, each named by its request's path.
#[test]
fn issue4_arkime_synthetic_connections_give_their_labelled_bytes() {
    let Some(dir) = corpus() else { return };
    let c = reassemble(&dir.join("arkime__tcp-reassembly-synthetic.pcap"));
    let get = |p: &str| format!("GET /{p} HTTP/1.0\r\nHost: test\r\n\r\n");
    let hex32 = "0123456789abcdef0123456789abcdef";
    let ok = "HTTP/1.0 200 OK\r\n\r\nok\r\n";
    // (stream, request, response, response gap bytes, response retransmitted bytes)
    let want: [(u64, String, &str, u64, u64); 11] = [
        (0, get("tcp-normal"), hex32, 0, 0),
        // The same 16 bytes sent twice: deduplicated.
        (1, get("tcp-fullretrans"), hex32, 0, 16),
        // 20 bytes, then 16 from offset 16: 4 bytes overlap, identical.
        (2, get("tcp-partial-retrans"), hex32, 0, 4),
        // The second 16 bytes arrive first.
        (3, get("tcp-outoforder"), hex32, 0, 0),
        // Bytes 8..16 never sent: a gap of 8 between the two runs (the collector here
        // joins the runs; the gap event sits between them).
        (4, get("tcp-gap"), "012345670123456789abcdef", 8, 0),
        (5, get("tcp-partial-cascade"), hex32, 0, 4),
        (6, get("tcp-multi-partial"), hex32, 0, 12),
        // The server's FIN frame carries 4 bytes of Ethernet padding ("ok\r\n") beyond the
        // IP length: tcpflow writes them into the stream; they are not data.
        (7, get("tcp-reuse"), ok, 0, 0),
        // The same 4-tuple reused with a new ISN (22000): a new session; no response.
        (8, get("tcp-reuse"), "", 0, 0),
        // SYN-ACK first, the SYN (same ISN) last: one session.
        (9, get("tcp-reuse"), ok, 0, 0),
        // The client's ISN-side wraps through 2^32 in its ACKs; its request is whole. Its
        // second ACK (0) acknowledges one server byte (seq 4294967295) that the capture
        // does not hold: one byte missing, by the packets.
        (
            10,
            "GET /wrap HTTP/1.0\r\nHost: t\r\n\r\n".to_owned(),
            "",
            1,
            0,
        ),
    ];
    assert_eq!(c.infos.len(), 11);
    for (stream, req, resp, gap, retrans) in want {
        let o = c
            .dirs
            .get(&(stream, Direction::Orig))
            .cloned()
            .unwrap_or_default();
        let r = c
            .dirs
            .get(&(stream, Direction::Resp))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&o.bytes),
            req,
            "stream {stream} request"
        );
        assert_eq!(o.gap_bytes, 0, "stream {stream} request gaps");
        assert_eq!(
            String::from_utf8_lossy(&r.bytes),
            resp,
            "stream {stream} response"
        );
        assert_eq!(r.gap_bytes, gap, "stream {stream} response gaps");
        let st = &c.stats[&stream];
        assert_eq!(
            st.resp.asm.retransmitted, retrans,
            "stream {stream} retransmitted"
        );
        assert_eq!(
            st.resp.asm.conflicts + st.orig.asm.conflicts,
            0,
            "stream {stream}"
        );
    }
    assert_eq!(c.dirs[&(4, Direction::Resp)].gaps, [(8, 8)]);
    assert_eq!(c.dirs[&(10, Direction::Resp)].gaps, [(0, 1)]);
    assert_eq!(
        c.infos[&8].client, c.infos[&7].client,
        "same 4-tuple, new session"
    );
}

/// The commands end to end: `flows --json`, `follow --format raw`, a missing stream.
#[test]
fn issue4_flows_and_follow_commands() {
    let Some(dir) = corpus() else { return };
    let file = dir.join("arkime__tcp-reassembly-synthetic.pcap");
    let sniffer = env!("CARGO_BIN_EXE_sniffer");
    let run = |args: &[&str]| {
        std::process::Command::new(sniffer)
            .args(args)
            .arg("-r")
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = run(&["flows", "--json"]);
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 11);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, r)| r["stream"] == i as u64)
    );
    assert_eq!(rows[4]["gap_bytes"], 8);
    assert_eq!(rows[7]["state"], "fin");
    assert_eq!(rows[8]["state"], "open");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(
        summary.contains("11 TCP sessions: 9 closed by FIN"),
        "{summary}"
    );
    assert!(summary.contains("2 gaps (9 bytes missing)"), "{summary}");

    // Exact bytes, without the Ethernet padding of the FIN frame.
    let out = run(&["follow", "--format", "raw", "--dir", "resp", "7"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"HTTP/1.0 200 OK\r\n\r\nok\r\n");
    let out = run(&["follow", "--flow", "10.180.156.2:80-10.180.156.1:40005"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("=== resp [8 bytes missing] at offset 8 ==="),
        "{text}"
    );

    // A stream that is not in the input is a usage error (issue 13), like any bad argument.
    let out = run(&["follow", "99"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no stream 99 in the input (11 TCP sessions"),
        "{err}"
    );
}
