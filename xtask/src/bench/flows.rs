//! Issue 4 benchmark: reassembly + `sniffer flows` on the generated capture, against
//! `tcpflow -r FILE -o DIR` and `tshark -q -z conv,tcp` on the same input in the same run.
//!
//! Measured: `sniffer flows` (the table: every session reassembled, nothing written but
//! the rows), `sniffer flows --write-flows` to tmpfs (the same work as tcpflow: every
//! direction written to its own file), tcpflow to tmpfs, and tshark's conversation table.
//! Medians of several runs from a warm page cache; max RSS from `wait4`. Before timing, one
//! checked run: sniffer's session count equals tshark's conversation count, and the bytes
//! sniffer writes equal the bytes it reports delivered.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

use super::{RUNS, TSHARK_RUNS, fresh, gbps, line, mark};
use crate::util::measure;

/// Targets from the issue.
const TARGET_GB_PER_S: f64 = 2.0;
const TARGET_RSS_MIB: f64 = 64.0;

/// Total size of the regular files directly in `dir` whose name passes `keep`.
fn dir_bytes(dir: &Path, keep: impl Fn(&str) -> bool) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| keep(&e.file_name().to_string_lossy()))
            .filter_map(|e| e.metadata().ok())
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len())
            .sum()
    })
}

/// Benchmark reassembly on `capture` and print the comparison.
///
/// # Errors
/// A tool that fails or is missing, an unreadable capture, or a failed sanity check.
pub fn run(capture: &Path) -> anyhow::Result<()> {
    super::with_scratch("flows", capture, run_in)
}

fn run_in(capture: &Path, size: u64, sniffer: &Path, shm: &Path) -> anyhow::Result<()> {
    eprintln!(
        "xtask bench flows: {} ({:.1} MB), files on {}",
        capture.display(),
        size as f64 / 1e6,
        shm.display()
    );
    // Checked run: JSON rows, and the files.
    let s_out = shm.join("sniffer");
    fresh(&s_out)?;
    let out = Command::new(sniffer)
        .args(["flows", "--json", "-r"])
        .arg(capture)
        .arg("--write-flows")
        .arg(&s_out)
        .output()
        .context("running sniffer flows")?;
    if !out.status.success() {
        bail!(
            "sniffer flows failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut sessions = 0u64;
    let (mut delivered, mut gap_bytes, mut retrans, mut conflicts) = (0u64, 0u64, 0u64, 0u64);
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let row: serde_json::Value = serde_json::from_str(l).context("a flows --json row")?;
        sessions += 1;
        let n = |k: &str| row[k].as_u64().unwrap_or(0);
        delivered += n("orig_delivered_bytes") + n("resp_delivered_bytes");
        gap_bytes += n("gap_bytes");
        retrans += n("retransmitted_bytes");
        conflicts += n("conflict_bytes");
    }
    let written = dir_bytes(&s_out, |n| !n.ends_with(".gaps.tsv"));
    if written != delivered {
        bail!("sniffer wrote {written} bytes but reports {delivered} delivered");
    }
    let conv = Command::new("tshark")
        .args(["-q", "-z", "conv,tcp", "-r"])
        .arg(capture)
        .output()
        .context("running tshark")?;
    let tshark_convs = String::from_utf8_lossy(&conv.stdout)
        .lines()
        .filter(|l| l.contains("<->"))
        .count() as u64;
    if tshark_convs != sessions {
        bail!("sniffer found {sessions} sessions, tshark {tshark_convs} conversations");
    }

    let table = measure(RUNS, || {
        let mut c = Command::new(sniffer);
        c.args(["flows", "-r"]).arg(capture);
        c
    })?;
    let files = measure(RUNS, || {
        let _ = fresh(&s_out);
        let mut c = Command::new(sniffer);
        c.args(["flows", "-r"])
            .arg(capture)
            .arg("--write-flows")
            .arg(&s_out);
        c
    })?;
    let t_out = shm.join("tcpflow");
    let tcpflow = measure(3, || {
        let _ = fresh(&t_out);
        let mut c = Command::new("tcpflow");
        c.arg("-r").arg(capture).arg("-o").arg(&t_out);
        c
    })?;
    let tcpflow_bytes = dir_bytes(&t_out, |n| n.contains('-') && !n.ends_with(".xml"));
    let (same, compared) = same_files(&s_out, &t_out)?;
    let _ = std::fs::remove_dir_all(&t_out);
    let tshark = measure(TSHARK_RUNS, || {
        let mut c = Command::new("tshark");
        c.args(["-q", "-z", "conv,tcp", "-r"]).arg(capture);
        c
    })?;

    println!(
        "TCP reassembly, {:.1} MB capture, {sessions} sessions:",
        size as f64 / 1e6
    );
    println!("{}", line("sniffer flows", &table, size));
    println!(
        "{}",
        line("sniffer flows --write-flows (tmpfs)", &files, size)
    );
    println!("{}", line("tcpflow -r -o (tmpfs)", &tcpflow, size));
    println!("{}", line("tshark -q -z conv,tcp", &tshark, size));
    let sn = table.median().as_secs_f64();
    let sw = files.median().as_secs_f64();
    println!(
        "  ratio: sniffer flows is {:.2}x tcpflow, {:.2}x tshark; with files {:.2}x tcpflow (median wall time)",
        tcpflow.median().as_secs_f64() / sn,
        tshark.median().as_secs_f64() / sn,
        tcpflow.median().as_secs_f64() / sw,
    );
    println!(
        "  checked: {sessions} sessions = tshark's conversations; {delivered} bytes delivered = bytes written \
         (tcpflow wrote {tcpflow_bytes}); {gap_bytes} gap bytes, {retrans} retransmitted, {conflicts} conflicting"
    );
    println!("  {same} of {compared} flow files byte-identical to tcpflow's (by endpoints)");
    let rss = table.max_rss_kib.max(files.max_rss_kib) as f64 / 1024.0;
    let speed = gbps(size, table.median());
    println!(
        "  targets: {speed:.2} GB/s (>= {TARGET_GB_PER_S}) {}, max RSS {rss:.1} MiB (< {TARGET_RSS_MIB}) {}",
        mark(speed >= TARGET_GB_PER_S),
        mark(rss < TARGET_RSS_MIB),
    );
    Ok(())
}

/// Compare sniffer's flow files with tcpflow's of the same endpoints (sniffer's names are
/// tcpflow's with an `sNNNNNN-` stream prefix): (identical, compared).
fn same_files(ours: &Path, theirs: &Path) -> anyhow::Result<(usize, usize)> {
    let (mut same, mut compared) = (0, 0);
    for e in std::fs::read_dir(ours)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".gaps.tsv") {
            continue;
        }
        let Some((_, endpoints)) = name.split_once('-') else {
            continue;
        };
        let other = theirs.join(endpoints);
        if !other.exists() {
            continue;
        }
        compared += 1;
        if std::fs::read(e.path())? == std::fs::read(&other)? {
            same += 1;
        } else {
            eprintln!("  differs from tcpflow: {name}");
        }
    }
    Ok((same, compared))
}
