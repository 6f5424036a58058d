//! Issue 5 benchmark: `sniffer --extract-all` end to end on the generated capture, against
//! `tcpflow -e http` and `tshark --export-objects http` on the same input in the same run,
//! every tool writing to the same tmpfs (`/dev/shm`) so the disk does not decide.
//!
//! Also measured: sniffer writing to disk (`target/bench/`), and an index-only run
//! (`--extract` matching nothing) that shows the pipeline's cost without writes.
//! Recovery is counted by the generator's `check-extraction.py` with the map built from
//! `index.jsonl`. Medians of several runs from a warm page cache; max RSS from `wait4`.
//!
//! With `--events`, the same extraction also sends every record to a Redis Stream on a
//! local `redis-server` (no persistence), and the ratio of its median to the run without
//! events is checked against the issue's bound (within 10%), with the rate of events Redis
//! took.
//!
//! Last, the floor ([`crate::floor`]): the CPU time no extractor can avoid on this machine
//! (the index-only run's pipeline, sha256 of every body, writing every body into the
//! tmpfs), spread over all CPUs. It bounds the speed and the ratio to tcpflow reachable
//! here, so a missed target can be told apart from one out of reach.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

use super::{RUNS, TSHARK_RUNS, fresh, gbps, line, mark};
use crate::{
    floor,
    util::{measure, workspace_root},
};

/// Targets from the issues.
const TARGET_EVENTS_SLOWDOWN: f64 = 1.10;
const TARGET_GB_PER_S: f64 = 1.5;
const TARGET_VS_TCPFLOW: f64 = 5.0;
const TARGET_RSS_MIB: f64 = 64.0;

/// Score an extraction directory with check-extraction.py; returns its RESULT line.
fn recovery(capture: &Path, out: &Path) -> anyhow::Result<String> {
    let index = std::fs::read_to_string(out.join("index.jsonl"))
        .with_context(|| format!("{}/index.jsonl", out.display()))?;
    let mut map = String::new();
    for l in index.lines() {
        let e: serde_json::Value = serde_json::from_str(l).context("index.jsonl line")?;
        if e.get("merged_from").is_some() {
            continue;
        }
        let range = if e["status"] == 206 {
            e["range"].clone()
        } else {
            serde_json::Value::Null
        };
        map += &serde_json::json!({
            "path": e["url"], "status": e["status"], "file": e["file"], "range": range,
        })
        .to_string();
        map.push('\n');
    }
    let map_path = out.with_extension("map.jsonl");
    std::fs::write(&map_path, map)?;
    let checker = workspace_root().join("../shared/tools/http-capture-gen/check-extraction.py");
    let out = Command::new("python3")
        .arg(checker)
        .arg(capture)
        .arg(out)
        .arg("--map")
        .arg(&map_path)
        .output()
        .context("running check-extraction.py")?;
    let report = String::from_utf8_lossy(&out.stdout);
    report
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .map(str::to_owned)
        .with_context(|| format!("no RESULT line from check-extraction.py:\n{report}"))
}

/// Count regular files under `dir` (recursively).
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .map(|e| {
                let p = e.path();
                if p.is_dir() { count_files(&p) } else { 1 }
            })
            .sum()
    })
}

/// Benchmark HTTP extraction on `capture` and print the comparison.
///
/// # Errors
/// A tool that fails or is missing, or an unreadable capture.
pub fn run(capture: &Path, events: bool) -> anyhow::Result<()> {
    super::with_scratch("http", capture, |capture, size, sniffer, shm| {
        run_in(capture, size, sniffer, shm, events)
    })
}

/// `(sent, dropped)` from the summary line of the events to `url`.
fn event_counts(stderr: &str, url: &str) -> anyhow::Result<(u64, u64)> {
    let prefix = format!("sniffer: events to {url}: ");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .with_context(|| format!("no events summary in:\n{stderr}"))?;
    let mut n = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(str::parse::<u64>);
    match (n.next(), n.next()) {
        (Some(Ok(sent)), Some(Ok(dropped))) => Ok((sent, dropped)),
        _ => bail!("unreadable events summary: {line}"),
    }
}

/// `--events redis://…` against a private redis-server: one checked run for the counts
/// and the event rate, then the median of [`RUNS`]; the lines to print beside `without`.
fn with_events(
    make: &dyn Fn(&[&str]) -> Command,
    out: &Path,
    without: &crate::util::Measurement,
    size: u64,
) -> anyhow::Result<Vec<String>> {
    let redis = ::tests::redis::RedisServer::start(&["--appendonly", "no"])
        .context("starting redis-server (cargo xtask setup installs it)")?;
    let url = format!("redis://127.0.0.1:{}/bench", redis.port);
    let args = [
        "--extract-all",
        "--events",
        &url,
        "--events-stats-interval",
        "0",
    ];
    fresh(out)?;
    let start = std::time::Instant::now();
    let checked = make(&args).stdout(std::process::Stdio::null()).output()?;
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&checked.stderr);
    if !checked.status.success() {
        bail!("sniffer --events failed: {}\n{stderr}", checked.status);
    }
    let (sent, dropped) = event_counts(&stderr, &url)?;
    let measured = measure(RUNS, || {
        let _ = fresh(out);
        make(&args)
    })?;
    let ratio = measured.median().as_secs_f64() / without.median().as_secs_f64();
    Ok(vec![
        line("sniffer --extract-all --events redis", &measured, size),
        format!(
            "  events: {sent} sent, {dropped} dropped in {secs:.3} s: Redis took {:.0} events/s over \
             the run (the rate the capture made, not its limit); stream length {}",
            sent as f64 / secs,
            redis.cli(&["XLEN", "bench"])?.trim()
        ),
        format!(
            "  target: with events {ratio:.3}x the time without (<= {TARGET_EVENTS_SLOWDOWN}) \
             {}, {dropped} dropped (0) {}",
            mark(ratio <= TARGET_EVENTS_SLOWDOWN),
            mark(dropped == 0),
        ),
    ])
}

fn run_in(
    capture: &Path,
    size: u64,
    sniffer: &Path,
    shm: &Path,
    events: bool,
) -> anyhow::Result<()> {
    eprintln!(
        "xtask bench http: {} ({:.1} MB), output on {}",
        capture.display(),
        size as f64 / 1e6,
        shm.display()
    );
    let s_out = shm.join("sniffer");
    let sniffer_cmd = |out: &Path, extra: &[&str]| {
        let mut c = Command::new(sniffer);
        c.arg("-r").arg(capture).arg("--out").arg(out).args(extra);
        c
    };

    // One checked run first: every response recovered byte-exact.
    fresh(&s_out)?;
    let status = sniffer_cmd(&s_out, &["--extract-all"])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("sniffer --extract-all failed: {status}");
    }
    let result = recovery(capture, &s_out)?;
    eprintln!("  recovery (check-extraction.py --map): {result}");
    let bodies = body_bytes(&s_out)?;

    let tmpfs = measure(RUNS, || {
        let _ = fresh(&s_out);
        sniffer_cmd(&s_out, &["--extract-all"])
    })?;
    let events_lines = if events {
        with_events(&|extra| sniffer_cmd(&s_out, extra), &s_out, &tmpfs, size)?
    } else {
        Vec::new()
    };
    let index_only = measure(RUNS, || {
        let _ = fresh(&s_out);
        sniffer_cmd(&s_out, &["--extract", "none/none"])
    })?;
    let disk_out = workspace_root().join("target/bench/http-extract-out");
    let disk = measure(3, || {
        let _ = fresh(&disk_out);
        sniffer_cmd(&disk_out, &["--extract-all"])
    })?;
    let _ = std::fs::remove_dir_all(&disk_out);

    let t_out = shm.join("tcpflow");
    let tcpflow = measure(3, || {
        let _ = fresh(&t_out);
        let mut c = Command::new("tcpflow");
        c.args(["-e", "http", "-r"])
            .arg(capture)
            .arg("-o")
            .arg(&t_out);
        c
    })?;
    let tcpflow_files = count_files(&t_out);
    let _ = std::fs::remove_dir_all(&t_out);

    let k_out = shm.join("tshark");
    let tshark = measure(TSHARK_RUNS, || {
        let _ = fresh(&k_out);
        let mut c = Command::new("tshark");
        c.args(["-q", "-r"])
            .arg(capture)
            .arg("--export-objects")
            .arg(format!("http,{}", k_out.display()));
        c
    })?;
    let tshark_files = count_files(&k_out);
    let _ = std::fs::remove_dir_all(&k_out);

    let sn = tmpfs.median().as_secs_f64();
    println!(
        "HTTP extraction, {:.1} MB capture, output on tmpfs unless said:",
        size as f64 / 1e6
    );
    println!("{}", line("sniffer --extract-all", &tmpfs, size));
    for l in &events_lines {
        println!("{l}");
    }
    println!("{}", line("sniffer --extract-all (disk)", &disk, size));
    println!(
        "{}",
        line("sniffer index only (no writes)", &index_only, size)
    );
    println!(
        "{}  [{tcpflow_files} files]",
        line("tcpflow -e http", &tcpflow, size)
    );
    println!(
        "{}  [{tshark_files} files]",
        line("tshark --export-objects http", &tshark, size)
    );
    let vs_tcpflow = tcpflow.median().as_secs_f64() / sn;
    let vs_tshark = tshark.median().as_secs_f64() / sn;
    println!(
        "  ratio: sniffer is {vs_tcpflow:.2}x tcpflow, {vs_tshark:.2}x tshark (median wall time)"
    );
    // On a shared machine wall time follows the load; CPU time is the steadier figure.
    println!(
        "  ratio by CPU time: {:.2}x tcpflow, {:.2}x tshark; index only uses {:.2}x less CPU than tcpflow",
        tcpflow.cpu.as_secs_f64() / tmpfs.cpu.as_secs_f64(),
        tshark.cpu.as_secs_f64() / tmpfs.cpu.as_secs_f64(),
        tcpflow.cpu.as_secs_f64() / index_only.cpu.as_secs_f64(),
    );
    println!("  recovery: {result}");
    let rss = tmpfs.max_rss_kib as f64 / 1024.0;
    let speed = gbps(size, tmpfs.median());

    let sha = floor::sha256_secs_per_gb()?;
    let write = floor::write_secs_per_gb(shm)?;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let floor_cpu = index_only.cpu.as_secs_f64() + bodies as f64 / 1e9 * (sha + write);
    let floor_wall = floor_cpu / cpus as f64;
    let best_speed = size as f64 / 1e9 / floor_wall;
    let best_vs_tcpflow = tcpflow.median().as_secs_f64() / floor_wall;
    println!(
        "  floor on this machine: sha256 {sha:.3} s/GB, tmpfs writes {write:.3} s/GB, pipeline \
         without writes {:.3} s of CPU; for {:.1} MB of bodies at least {floor_cpu:.3} s of CPU, \
         on {cpus} CPUs at least {floor_wall:.3} s: at best {best_speed:.2} GB/s, \
         {best_vs_tcpflow:.1}x tcpflow",
        index_only.cpu.as_secs_f64(),
        bodies as f64 / 1e6,
    );
    let reach = |met: bool, best: f64, target: f64| match (met, best >= target) {
        (true, _) => "met",
        (false, true) => "NOT MET",
        (false, false) => "NOT MET, out of reach here",
    };
    println!(
        "  targets: {speed:.2} GB/s (>= {TARGET_GB_PER_S}) {}, {vs_tcpflow:.1}x tcpflow (>= {TARGET_VS_TCPFLOW}) {}, \
         max RSS {rss:.1} MiB (< {TARGET_RSS_MIB}) {}",
        reach(speed >= TARGET_GB_PER_S, best_speed, TARGET_GB_PER_S),
        reach(
            vs_tcpflow >= TARGET_VS_TCPFLOW,
            best_vs_tcpflow,
            TARGET_VS_TCPFLOW
        ),
        mark(rss < TARGET_RSS_MIB),
    );
    Ok(())
}

/// The bytes of every body saved in `out`, from its `index.jsonl` (merged files are
/// copies of their parts and not counted).
fn body_bytes(out: &Path) -> anyhow::Result<u64> {
    let index = std::fs::read_to_string(out.join("index.jsonl"))
        .with_context(|| format!("{}/index.jsonl", out.display()))?;
    let mut total = 0;
    for l in index.lines() {
        let e: serde_json::Value = serde_json::from_str(l).context("index.jsonl line")?;
        if e.get("merged_from").is_none() {
            total += e["size"].as_u64().context("index.jsonl: size")?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::body_bytes;

    #[test]
    fn body_bytes_counts_saved_bodies_not_merged_copies() {
        let dir = tempfile::tempdir().unwrap();
        let index = [
            r#"{"file":"0-0-a.mp3","size":1000,"status":206}"#,
            r#"{"file":"1-0-a.mp3","size":500,"status":206}"#,
            r#"{"file":"a.mp3","size":1500,"status":200,"merged_from":["0-0-a.mp3","1-0-a.mp3"]}"#,
            r#"{"file":"2-0-b.html","size":7,"status":200}"#,
        ]
        .join("\n");
        std::fs::write(dir.path().join("index.jsonl"), index).unwrap();
        assert_eq!(body_bytes(dir.path()).unwrap(), 1507);
        std::fs::write(dir.path().join("index.jsonl"), r#"{"file":"x"}"#).unwrap();
        assert!(
            body_bytes(dir.path()).is_err(),
            "a line without a size is an error"
        );
    }
}
