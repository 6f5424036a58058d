//! Issue 3 benchmark: decoding alone (read, decode, count) against tcpdump and tshark
//! reading the same capture in the same run, and memory as the input grows.
//!
//! - sniffer: `target/release/examples/decode_count FILE` (pcap-parser + etherparse decode
//!   to TCP segments, counting payload bytes);
//! - the same with a five-term filter expression in front of decode ([`FILTER`]), which
//!   selects every TCP packet of the benchmark capture: what userspace filtering costs
//!   (the budget is 5%);
//! - `tcpdump -r FILE -w /dev/null` (libpcap read and write, no dissection);
//! - `tshark -r FILE -T fields -e frame.number` (full dissection).
//!
//! Every tool runs at least 3 times from a warm page cache; medians and ratios are printed.
//! sniffer with and without the filter run in turn, 15 times each, for their ratio.
//! Max RSS is measured on a ~100 MB prefix of the capture and on the whole capture: flat
//! memory means both are about the same.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::{RUNS, TSHARK_RUNS, example_bin};
use crate::util::{Measurement, measure, measure_alternating, workspace_root};

/// The issue's target: 3 GB/s on one core.
const TARGET_GB_PER_S: f64 = 3.0;
/// Five terms, each evaluated on every packet of the benchmark capture (nginx on port 80),
/// all of which it selects: the decode work stays the same, the difference is the filter.
pub(crate) const FILTER: &str = "(port 80 or port 8080) and not host 10.0.0.5 and not net 192.168.0.0/16 \
                      and not src portrange 1-10";
/// The issue's budget for userspace filtering: 5% of the decode time.
const FILTER_BUDGET: f64 = 0.05;
/// Runs of decoding with and without the filter, alternating.
const FILTER_RUNS: usize = 15;
/// Size of the prefix used for the memory comparison.
const PREFIX_BYTES: u64 = 100_000_000;

/// Benchmark decoding of `capture` (a classic pcap) and print the comparison.
///
/// # Errors
/// A tool that fails, a missing binary, or a capture that is not classic pcap.
pub fn run(capture: &Path) -> anyhow::Result<()> {
    let decode_count = example_bin("decode_count");
    if !decode_count.exists() {
        bail!(
            "{} missing: build it with `cargo build --release -p sniffer --examples`",
            decode_count.display()
        );
    }
    let size = std::fs::metadata(capture)
        .with_context(|| capture.display().to_string())?
        .len();
    let prefix = prefix_capture(capture, PREFIX_BYTES)?;
    let prefix_size = std::fs::metadata(&prefix)?.len();

    // One checked run: the example must read the whole file without damage.
    let out = Command::new(&decode_count)
        .arg(capture)
        .output()
        .with_context(|| format!("running {}", decode_count.display()))?;
    if !out.status.success() {
        bail!(
            "decode_count failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "xtask bench decode: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );

    warm(capture)?;
    // In turn, and more runs than the others: the filter's budget is a few percent of a
    // tenth of a second.
    let (ours, filtered) = measure_alternating(
        FILTER_RUNS,
        || {
            let mut c = Command::new(&decode_count);
            c.arg(capture);
            c
        },
        || {
            let mut c = Command::new(&decode_count);
            c.arg(capture).args(["--filter", FILTER]);
            c
        },
    )?;
    let tcpdump = measure(RUNS, || {
        let mut c = Command::new("tcpdump");
        c.arg("-r").arg(capture).args(["-w", "/dev/null"]);
        c
    })?;
    let tshark = measure(TSHARK_RUNS, || {
        let mut c = Command::new("tshark");
        c.arg("-r")
            .arg(capture)
            .args(["-T", "fields", "-e", "frame.number"]);
        c
    })?;
    warm(&prefix)?;
    let ours_prefix = measure(RUNS, || {
        let mut c = Command::new(&decode_count);
        c.arg(&prefix);
        c
    })?;

    let secs = |m: &Measurement| m.median().as_secs_f64();
    let gbps = |m: &Measurement, bytes: u64| bytes as f64 / secs(m) / 1e9;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!(
        "decode: read + decode + count, {} ({:.0} MB), warm page cache, medians",
        capture.display(),
        size as f64 / 1e6
    );
    println!(
        "  {:<42} {:>5} {:>9} {:>9} {:>9} {:>10} {:>14}",
        "tool", "runs", "median s", "cpu s", "GB/s", "max RSS", "time / ours"
    );
    for (name, m) in [
        ("sniffer (examples/decode_count)", &ours),
        ("sniffer, 5-term filter (--filter)", &filtered),
        ("tcpdump -r FILE -w /dev/null", &tcpdump),
        ("tshark -r FILE -T fields -e frame.number", &tshark),
    ] {
        println!(
            "  {:<42} {:>5} {:>9.3} {:>9.3} {:>9.2} {:>7.1} MiB {:>13.1}x",
            name,
            m.times.len(),
            secs(m),
            m.cpu.as_secs_f64(),
            gbps(m, size),
            mib(m.max_rss_kib),
            secs(m) / secs(&ours)
        );
    }
    println!(
        "  all runs (s): sniffer {}; with the filter {}; tcpdump {}; tshark {}",
        list(&ours.times),
        list(&filtered.times),
        list(&tcpdump.times),
        list(&tshark.times)
    );
    let overhead = secs(&filtered) / secs(&ours) - 1.0;
    println!(
        "filter: {FILTER:?} costs {:+.1}% of the decode time (budget {:.0}%): {}",
        overhead * 100.0,
        FILTER_BUDGET * 100.0,
        if overhead <= FILTER_BUDGET {
            "met"
        } else {
            "NOT MET"
        }
    );
    println!(
        "memory: sniffer max RSS {:.1} MiB on {:.0} MB, {:.1} MiB on {:.0} MB ({:.2}x the input for {:.2}x the RSS)",
        mib(ours_prefix.max_rss_kib),
        prefix_size as f64 / 1e6,
        mib(ours.max_rss_kib),
        size as f64 / 1e6,
        size as f64 / prefix_size as f64,
        ours.max_rss_kib as f64 / ours_prefix.max_rss_kib.max(1) as f64
    );
    let rate = gbps(&ours, size);
    println!(
        "target: >= {TARGET_GB_PER_S} GB/s on one core: {rate:.2} GB/s ({:.3} s per GB): {}",
        1.0 / rate,
        if rate >= TARGET_GB_PER_S {
            "met"
        } else {
            "NOT MET"
        }
    );
    Ok(())
}

fn list(times: &[Duration]) -> String {
    times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read the file once so every tool starts from the page cache.
fn warm(path: &Path) -> anyhow::Result<()> {
    let mut f = File::open(path).with_context(|| path.display().to_string())?;
    std::io::copy(&mut f, &mut std::io::sink())?;
    Ok(())
}

/// The first whole records of a classic pcap, about `bytes` long, cached beside the
/// benchmark inputs.
fn prefix_capture(capture: &Path, bytes: u64) -> anyhow::Result<PathBuf> {
    let stem = capture.file_stem().map_or_else(
        || "capture".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let out = workspace_root()
        .join("target/bench")
        .join(format!("{stem}.prefix-{}M.pcap", bytes / 1_000_000));
    let fresh = |o: &Path| -> std::io::Result<bool> {
        Ok(std::fs::metadata(o)?.modified()? >= std::fs::metadata(capture)?.modified()?)
    };
    if fresh(&out).unwrap_or(false) {
        return Ok(out);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let mut input = BufReader::with_capacity(
        1 << 20,
        File::open(capture).with_context(|| capture.display().to_string())?,
    );
    let mut header = [0u8; 24];
    input
        .read_exact(&mut header)
        .context("capture shorter than a pcap header")?;
    let big_endian = match header[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
        _ => bail!(
            "{}: not a classic pcap (the generator writes pcap)",
            capture.display()
        ),
    };
    let tmp = out.with_extension("tmp");
    let mut output = BufWriter::new(File::create(&tmp).with_context(|| tmp.display().to_string())?);
    output.write_all(&header)?;
    let mut written = header.len() as u64;
    let mut record = vec![0u8; 16];
    while written < bytes {
        if input.read_exact(&mut record[..16]).is_err() {
            break;
        }
        let b = [record[8], record[9], record[10], record[11]];
        let caplen = if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        } as usize;
        record.resize(16 + caplen, 0);
        input
            .read_exact(&mut record[16..])
            .context("capture cut short")?;
        output.write_all(&record)?;
        written += record.len() as u64;
    }
    output.flush()?;
    drop(output);
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}
