//! `cargo xtask bench`: offline benchmarks on one generated capture, each comparing
//! sniffer with its peers (tcpdump, tshark, tcpflow) on the same input in the same run.
//!
//! The input comes from `../shared/tools/http-capture-gen` (real kernel TCP between nginx and
//! curl, with loss and reordering), made once and cached under `target/bench/`.

pub mod decode;
pub mod flows;
pub mod http;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use crate::util::{Measurement, cargo, is_root, run_loud, target_dir, workspace_root};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Read + decode only (issue 3).
    Decode,
    /// Reassembly + `sniffer flows` (issue 4).
    Flows,
    /// `--extract-all` end to end (issue 5).
    Http,
}

#[derive(Debug, Args)]
pub struct Options {
    /// Approximate response-body bytes in the generated capture.
    #[arg(long, default_value_t = 900_000_000)]
    pub bytes: u64,
    /// Generator seed (0 reproduces the reference capture's web root and jobs).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use this capture instead of generating one.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Only these benchmarks (default: all).
    #[arg(long, value_enum)]
    pub only: Vec<Which>,
    /// HTTP: also run with `--events redis://…` against a local redis-server, and report
    /// the ratio to the run without events and the event rate Redis took.
    #[arg(long)]
    pub events: bool,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let capture = match &options.capture {
        Some(p) => p.clone(),
        None => generated_capture(options.bytes, options.seed)?,
    };
    let size = std::fs::metadata(&capture)
        .with_context(|| capture.display().to_string())?
        .len();
    eprintln!(
        "xtask bench: input {} ({:.1} MB)",
        capture.display(),
        size as f64 / 1e6
    );
    run_loud(cargo().args([
        "build",
        "--release",
        "--package",
        "sniffer",
        "--bins",
        "--examples",
    ]))?;
    let all = options.only.is_empty();
    let wants = |w| all || options.only.contains(&w);
    if wants(Which::Http) {
        http::run(&capture, options.events)?;
    }
    if wants(Which::Flows) {
        flows::run(&capture)?;
    }
    if wants(Which::Decode) {
        decode::run(&capture)?;
    }
    Ok(())
}

/// Runs per fast tool; benchmarks report the median.
pub const RUNS: usize = 5;
/// tshark takes 15-30 s and 1.5-2 GB per run on 1 GB: fewer runs, still a median.
pub const TSHARK_RUNS: usize = 3;

/// The release binary of sniffer.
pub fn sniffer_bin() -> PathBuf {
    target_dir().join("release/sniffer")
}

/// A release example binary.
pub fn example_bin(name: &str) -> PathBuf {
    target_dir().join("release/examples").join(name)
}

/// Run `bench(capture, capture size, sniffer binary, scratch dir on tmpfs)` and remove the
/// scratch directory afterwards, whatever happened.
pub fn with_scratch(
    name: &str,
    capture: &Path,
    bench: impl FnOnce(&Path, u64, &Path, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let sniffer = sniffer_bin();
    if !sniffer.exists() {
        bail!(
            "{} missing: build it with `cargo build --release -p sniffer`",
            sniffer.display()
        );
    }
    let size = std::fs::metadata(capture)
        .with_context(|| capture.display().to_string())?
        .len();
    let shm = PathBuf::from(format!(
        "/dev/shm/sniffer-bench-{name}-{}",
        std::process::id()
    ));
    let result = bench(capture, size, &sniffer, &shm);
    let _ = std::fs::remove_dir_all(&shm);
    result
}

/// A fresh, empty directory at `path`.
pub fn fresh(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("clearing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// Throughput in GB/s.
pub fn gbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

/// One result line: median time, throughput, CPU, max RSS.
pub fn line(name: &str, m: &Measurement, bytes: u64) -> String {
    format!(
        "  {name:<36} median {:>7.3} s  {:>5.2} GB/s  cpu {:>7.3} s  max RSS {:>7.1} MiB  ({} runs)",
        m.median().as_secs_f64(),
        gbps(bytes, m.median()),
        m.cpu.as_secs_f64(),
        m.max_rss_kib as f64 / 1024.0,
        m.times.len()
    )
}

/// How a target line reads.
pub fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

/// Make (once) and return a capture of about `bytes` response bytes.
pub fn generated_capture(bytes: u64, seed: u64) -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/bench");
    let pcap = dir.join(format!("gen-{bytes}-{seed}.pcap"));
    if pcap.exists()
        && dir
            .join(format!("gen-{bytes}-{seed}.manifest.tsv"))
            .exists()
    {
        return Ok(pcap);
    }
    generate(&pcap, bytes, seed)?;
    Ok(pcap)
}

/// Run the generator (needs root) to write `out` and its sidecar files.
pub fn generate(out: &Path, bytes: u64, seed: u64) -> anyhow::Result<()> {
    if !is_root() {
        bail!("generating a capture needs root (network namespaces, nginx, tcpdump)");
    }
    let script = workspace_root().join("../shared/tools/http-capture-gen/generate.sh");
    if !script.exists() {
        bail!(
            "{} not found: the generator lives in ../shared beside the repository",
            script.display()
        );
    }
    run_loud(
        Command::new("bash")
            .arg(script)
            .arg("--out")
            .arg(out)
            .args(["--bytes", &bytes.to_string(), "--seed", &seed.to_string()]),
    )
}
