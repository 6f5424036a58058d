//! Issue 12: memory bounded by what sessions really cost.
//!
//! Captures built here, around two real HTTP downloads whose bodies are known: a SYN flood
//! (1,000,000 or 300,000 SYNs from as many source address and port pairs, never answered,
//! before, during and after the downloads), or 100,000 sessions that each send one byte
//! and go silent. The `sniffer` binary reads them with default flags (and with a small
//! memcap); its peak RSS (`ru_maxrss` from `wait4`) must stay within the targets, both
//! bodies must be saved byte-exact, and every eviction and timeout must be counted.
//!
//! The first download starts before the flood and pauses for longer than the flood lasts,
//! so evicting the least recently active session first would cut it (as it did before).

mod common;

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use common::flood::{self, BASE, Crowd, Download};

const SEC: u64 = 1_000_000_000;
const MIB: u64 = 1 << 20;

/// Two downloads of known bodies. With `pauses`, the first starts 10 s before the
/// background and pauses 130 s, the second starts 60 s in and pauses 65 s, so both are
/// open, and quiet, when a 120 s flood ends.
fn downloads(pauses: bool) -> [Download; 2] {
    let pause = |p: u64| if pauses { p * SEC } else { 1_000_000 };
    [
        Download {
            client: ([10, 9, 0, 1], 40001),
            path: "/a.mp3",
            body: flood::body(1 << 20, 1),
            start: BASE - 10 * SEC,
            pace: 1_000_000,
            stall_at: 300,
            stall: pause(130),
        },
        Download {
            client: ([10, 9, 0, 2], 40002),
            path: "/b.mp3",
            body: flood::body((1 << 20) + 12345, 2),
            start: BASE + 60 * SEC,
            pace: 1_000_000,
            stall_at: 100,
            stall: pause(65),
        },
    ]
}

/// What a run left: its exit, its stderr, the rows of `flows` (state counts, and the rows
/// of the downloads' clients), and its peak RSS in bytes.
struct Run {
    ok: bool,
    stderr: String,
    states: std::collections::BTreeMap<String, u64>,
    download_rows: Vec<String>,
    max_rss: u64,
}

/// Run the sniffer with `args`, reading its stdout as it comes (a million rows are not
/// kept), and measure its peak RSS.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also reports its peak RSS"
)]
fn run(args: &[&OsStr]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sniffer");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut states = std::collections::BTreeMap::new();
    let mut download_rows = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("stream") {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if let Some(state) = cols.get(9).filter(|_| args[0] == "flows") {
            *states.entry((*state).to_owned()).or_default() += 1;
        }
        if line.contains("10.9.0.") {
            download_rows.push(line);
        }
    }
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; the pid is our child, not yet
    // waited for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: as above; wait4 writes only to the two pointers given.
    let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let stderr = err.join().unwrap();
    Run {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr,
        states,
        download_rows,
        max_rss: usage.ru_maxrss as u64 * 1024,
    }
}

/// The numbers of the closing summary's sessions line, in order: sessions, closed by FIN,
/// by RST, timed out, evicted (never answered, already closed, for memory), reused, open
/// at the end.
fn sessions_line(stderr: &str) -> [u64; 10] {
    let line = stderr
        .lines()
        .find(|l| l.contains(" TCP session"))
        .unwrap_or_else(|| panic!("no sessions line in {stderr}"));
    let line = line.split(';').next().unwrap();
    let line = line.strip_prefix("sniffer: ").unwrap_or(line);
    // "N TCP sessions: a closed by FIN, … d evicted (e never answered, …), …"; a counter
    // that is zero is left out of the line.
    let number_before = |label: &str| -> u64 {
        line.find(label).map_or(0, |at| {
            let digits: String = line[..at]
                .chars()
                .rev()
                .skip_while(|c| *c == ' ')
                .take_while(char::is_ascii_digit)
                .collect();
            digits.chars().rev().collect::<String>().parse().unwrap()
        })
    };
    [
        number_before(" TCP session"),
        number_before(" closed by FIN"),
        number_before(" closed by RST"),
        number_before(" timed out"),
        number_before(" evicted"),
        number_before(" never answered"),
        number_before(" already closed"),
        number_before(" for memory"),
        number_before(" ended by reuse"),
        number_before(" open at the end"),
    ]
}

/// Both bodies are in `out`, whole, and byte for byte what was served; the index says so.
fn assert_saved(out: &Path, downloads: &[Download; 2], stderr: &str) {
    let index = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{index}\n{stderr}");
    for d in downloads {
        let e = entries
            .iter()
            .find(|e| e["url"].as_str().unwrap().ends_with(d.path))
            .unwrap_or_else(|| panic!("{} not saved: {index}", d.path));
        let want = common::sha256_hex(&d.body);
        assert_eq!(e["complete"], true, "{e}");
        assert_eq!(e["sha256"], want.as_str(), "{e}");
        let file = std::fs::read(out.join(e["file"].as_str().unwrap())).unwrap();
        assert_eq!(common::sha256_hex(&file), want, "{}", d.path);
    }
}

fn os<'a>(args: &'a [&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(OsStr::new).collect()
}

/// Http mode on `pcap` into a fresh `out`, with extra `flags`.
fn http(pcap: &Path, out: &Path, flags: &[&str]) -> Run {
    let mut args = vec![
        OsStr::new("-r"),
        pcap.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(os(flags));
    run(&args)
}

fn flows(pcap: &Path, flags: &[&str]) -> Run {
    // The wide table: the state is its tenth column.
    let mut args = vec![
        OsStr::new("flows"),
        "--wide".as_ref(),
        "-r".as_ref(),
        pcap.as_os_str(),
    ];
    args.extend(os(flags));
    run(&args)
}

#[test]
fn issue12_a_million_syns_around_two_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("syn-1m.pcap");
    let downloads = downloads(true);
    flood::write(&pcap, Crowd::Syns, 1_000_000, 120 * SEC, &downloads);

    // Default flags: the table reaches its bound of 1,000,000 sessions while both
    // downloads are open and quiet; the two oldest SYNs make room, not the downloads.
    let expected = [1_000_002, 2, 0, 0, 2, 2, 0, 0, 0, 999_998];
    let out = tmp.path().join("out");
    let r = http(&pcap, &out, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_saved(&out, &downloads, &r.stderr);
    assert_eq!(sessions_line(&r.stderr), expected, "{}", r.stderr);
    assert!(
        r.max_rss <= 256 * MIB,
        "http: peak RSS {} MiB",
        r.max_rss / MIB
    );
    eprintln!("1M SYNs, http: peak RSS {} MiB", r.max_rss / MIB);

    let r = flows(&pcap, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(sessions_line(&r.stderr), expected, "{}", r.stderr);
    assert!(
        r.max_rss <= 256 * MIB,
        "flows: peak RSS {} MiB",
        r.max_rss / MIB
    );
    eprintln!("1M SYNs, flows: peak RSS {} MiB", r.max_rss / MIB);
    let rows: u64 = r.states.values().sum();
    assert_eq!(rows, 1_000_002);
    assert_eq!(r.states.get("evicted"), Some(&2), "{:?}", r.states);
    assert_eq!(r.states.get("fin"), Some(&2), "{:?}", r.states);
    assert_eq!(r.download_rows.len(), 2);
    for (row, d) in r.download_rows.iter().zip(&downloads) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[9], "fin", "{row}");
        let head = 63 + d.body.len().to_string().len() as u64;
        assert_eq!(cols[8], (head + d.body.len() as u64).to_string(), "{row}");
    }

    // A memcap of 48 MiB: SYNs are evicted for memory, the oldest first, and only SYNs.
    let out = tmp.path().join("out-48m");
    let r = http(&pcap, &out, &["--memcap", &(48 * MIB).to_string()]);
    assert!(r.ok, "{}", r.stderr);
    assert_saved(&out, &downloads, &r.stderr);
    let [
        sessions,
        fin,
        rst,
        timeout,
        evicted,
        unanswered,
        closed,
        memory,
        reused,
        open,
    ] = sessions_line(&r.stderr);
    assert_eq!(
        (sessions, fin, rst, timeout, closed, reused),
        (1_000_002, 2, 0, 0, 0, 0)
    );
    assert!(evicted > 600_000, "{}", r.stderr);
    assert_eq!((unanswered, memory), (evicted, evicted), "{}", r.stderr);
    assert_eq!(sessions, fin + evicted + open);
    assert!(r.max_rss <= 128 * MIB, "peak RSS {} MiB", r.max_rss / MIB);
    eprintln!(
        "1M SYNs, http, 48 MiB memcap: peak RSS {} MiB",
        r.max_rss / MIB
    );
}

#[test]
fn issue12_300k_syns_cost_less_than_128_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("syn-300k.pcap");
    let downloads = downloads(true);
    flood::write(&pcap, Crowd::Syns, 300_000, 120 * SEC, &downloads);
    let expected = [300_002, 2, 0, 0, 0, 0, 0, 0, 0, 300_000];
    let out = tmp.path().join("out");
    let r = http(&pcap, &out, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_saved(&out, &downloads, &r.stderr);
    assert_eq!(sessions_line(&r.stderr), expected, "{}", r.stderr);
    assert!(
        r.max_rss <= 128 * MIB,
        "http: peak RSS {} MiB",
        r.max_rss / MIB
    );
    eprintln!("300k SYNs, http: peak RSS {} MiB", r.max_rss / MIB);
    let r = flows(&pcap, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(sessions_line(&r.stderr), expected, "{}", r.stderr);
    assert!(
        r.max_rss <= 128 * MIB,
        "flows: peak RSS {} MiB",
        r.max_rss / MIB
    );
    eprintln!("300k SYNs, flows: peak RSS {} MiB", r.max_rss / MIB);
}

#[test]
fn issue12_100k_sessions_of_one_byte_then_silence() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("one-byte.pcap");
    // Downloads that do not pause: they stay the most recently active sessions.
    let downloads = downloads(false);
    const N: u64 = 100_000;
    const SPAN: u64 = 600 * SEC;
    flood::write(&pcap, Crowd::OneByte, N, SPAN, &downloads);

    // Default flags: over 600 s of capture the first half times out (idle 300 s), the
    // rest is open at the end; nothing is evicted. Session i is last heard at its byte,
    // 3 µs after its SYN, and the capture's last packet is session N - 1's byte.
    let last = BASE + (N - 1) * SPAN / N + 3000;
    let idle = 300 * SEC;
    let timed_out = (0..N)
        .filter(|i| BASE + i * SPAN / N + 3000 + idle < last)
        .count() as u64;
    let out = tmp.path().join("out");
    let r = http(&pcap, &out, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_saved(&out, &downloads, &r.stderr);
    assert_eq!(
        sessions_line(&r.stderr),
        [N + 2, 2, 0, timed_out, 0, 0, 0, 0, 0, N - timed_out],
        "{}",
        r.stderr
    );
    assert!(r.max_rss <= 128 * MIB, "peak RSS {} MiB", r.max_rss / MIB);
    eprintln!(
        "100k one-byte sessions, http: peak RSS {} MiB",
        r.max_rss / MIB
    );

    // A 12 MiB memcap: the least recently active of them are evicted for memory instead,
    // none of them counted as never answered (each completed its handshake).
    for mode in ["http", "flows"] {
        let cap = (12 * MIB).to_string();
        let out = tmp.path().join(format!("out-{mode}"));
        let r = if mode == "http" {
            http(&pcap, &out, &["--memcap", &cap])
        } else {
            flows(&pcap, &["--memcap", &cap])
        };
        assert!(r.ok, "{}", r.stderr);
        if mode == "http" {
            assert_saved(&out, &downloads, &r.stderr);
        }
        let [
            sessions,
            fin,
            rst,
            timeout,
            evicted,
            unanswered,
            closed,
            memory,
            reused,
            open,
        ] = sessions_line(&r.stderr);
        assert_eq!(
            (sessions, fin, rst, reused),
            (N + 2, 2, 0, 0),
            "{}",
            r.stderr
        );
        assert!(evicted > N / 2, "{}", r.stderr);
        assert_eq!((unanswered, memory), (0, evicted), "{}", r.stderr);
        assert_eq!(
            sessions,
            fin + timeout + evicted - closed + open,
            "{}",
            r.stderr
        );
        assert!(
            r.max_rss <= 48 * MIB,
            "{mode}: peak RSS {} MiB",
            r.max_rss / MIB
        );
        eprintln!(
            "100k one-byte sessions, {mode}, 12 MiB memcap: peak RSS {} MiB",
            r.max_rss / MIB
        );
    }
}
