//! Helpers shared by the tasks: paths, running commands loudly, measuring them.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Where cargo puts build output: `CARGO_TARGET_DIR`, or `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The cargo that runs us (so `cargo +nightly xtask` stays on nightly).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Print a command, run it, fail if it fails.
pub fn run_loud(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed: {status}", display(cmd));
    }
    Ok(())
}

/// Run a command quietly and tell whether it succeeded (false if it cannot start).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command as a shell-like line, for messages.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Whether we run as root (the live tests, the demo and the generator need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The result of running a command several times.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Wall-clock time of each run.
    pub times: Vec<Duration>,
    /// Largest max-RSS over the runs, in KiB.
    pub max_rss_kib: u64,
    /// User + system CPU time of the median run.
    pub cpu: Duration,
}

impl Measurement {
    /// Median wall-clock time.
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
}

/// GNU time, which reports its child's max RSS: `wait4`'s own `ru_maxrss` counts the
/// memory a child had before `exec`, a copy of ours, so every tool would seem to use at
/// least as much as this process does (tens of MiB after the HTTP benchmark).
const GNU_TIME: &str = "/usr/bin/time";

/// `cmd` run by [`GNU_TIME`], which writes the max RSS in KiB to `rss_file`.
fn under_time(cmd: &Command, rss_file: &Path) -> Command {
    let mut timed = Command::new(GNU_TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(rss_file)
        .arg(cmd.get_program());
    timed.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    timed
}

/// Run `make()` `runs` times (stdout/stderr discarded) and measure wall time and CPU time
/// of each child with `wait4`, and its max RSS with [`GNU_TIME`]. Fails if any run fails.
pub fn measure(runs: usize, mut make: impl FnMut() -> Command) -> anyhow::Result<Measurement> {
    ensure!(
        Path::new(GNU_TIME).exists(),
        "{GNU_TIME} is missing: run `cargo xtask setup` (Debian package `time`)"
    );
    let rss_file = tempfile::NamedTempFile::new()?;
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut max_rss_kib = 0;
    for _ in 0..runs.max(1) {
        let mut cmd = under_time(&make(), rss_file.path());
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start `{}`", display(&cmd)))?;
        let (status, usage) = wait4(child.id())?;
        times.push(start.elapsed());
        if status != 0 {
            bail!("`{}` failed with wait status {status}", display(&cmd));
        }
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        cpus.push(tv(usage.ru_utime) + tv(usage.ru_stime));
        let rss = std::fs::read_to_string(rss_file.path())?;
        let rss: u64 = rss
            .trim()
            .parse()
            .with_context(|| format!("{GNU_TIME} wrote {rss:?}, not a max RSS"))?;
        max_rss_kib = max_rss_kib.max(rss);
    }
    let mut sorted = cpus.clone();
    sorted.sort();
    Ok(Measurement {
        times,
        max_rss_kib,
        cpu: sorted[sorted.len() / 2],
    })
}

/// [`measure`] two commands in turn, `runs` times each (a, b, a, b, …), so that both see
/// the same moments of a noisy machine: for a ratio between them.
pub fn measure_alternating(
    runs: usize,
    mut a: impl FnMut() -> Command,
    mut b: impl FnMut() -> Command,
) -> anyhow::Result<(Measurement, Measurement)> {
    let (mut ma, mut mb) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        ma.push(measure(1, &mut a)?);
        mb.push(measure(1, &mut b)?);
    }
    let merge = |ms: Vec<Measurement>| {
        let mut cpus: Vec<Duration> = ms.iter().map(|m| m.cpu).collect();
        cpus.sort();
        Measurement {
            times: ms.iter().flat_map(|m| m.times.iter().copied()).collect(),
            max_rss_kib: ms.iter().map(|m| m.max_rss_kib).max().unwrap_or(0),
            cpu: cpus[cpus.len() / 2],
        }
    };
    Ok((merge(ma), merge(mb)))
}

fn wait4(pid: u32) -> anyhow::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; the pointers are valid for the call.
    let r = unsafe { libc::wait4(pid as i32, &raw mut status, 0, &raw mut usage) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("wait4");
    }
    Ok((status, usage))
}
