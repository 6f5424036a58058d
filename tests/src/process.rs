//! The sniffer as a process: where its binary is, and what `/proc` says about each of
//! its threads (ids, capabilities, context switches).

use std::{
    io,
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

/// The `sniffer` binary of this build: next to the test executable's `deps/` directory;
/// built with cargo if this run did not build it.
pub fn sniffer_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/PROFILE/deps/TEST");
    let bin = profile_dir.join("sniffer");
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("target/PROFILE");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "sniffer", "--bin", "sniffer", "--target-dir"])
            .arg(target_dir)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the sniffer binary failed");
    }
    bin
}

/// One thread as `/proc/PID/task/TID/status` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadStatus {
    /// Thread id.
    pub tid: u32,
    /// `Name:`.
    pub name: String,
    /// `Uid:` real, effective, saved, filesystem.
    pub uids: Vec<u32>,
    /// `Gid:` real, effective, saved, filesystem.
    pub gids: Vec<u32>,
    /// `CapInh:`.
    pub cap_inh: u64,
    /// `CapPrm:`.
    pub cap_prm: u64,
    /// `CapEff:`.
    pub cap_eff: u64,
    /// `CapBnd:`.
    pub cap_bnd: u64,
    /// `CapAmb:`.
    pub cap_amb: u64,
    /// `NoNewPrivs:`.
    pub no_new_privs: bool,
    /// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches`.
    pub switches: u64,
}

impl ThreadStatus {
    /// Parses the text of a status file.
    pub fn parse(tid: u32, text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(str::trim)
            })
        };
        let ids = |name| -> Option<Vec<u32>> {
            field(name)?
                .split_whitespace()
                .map(|x| x.parse().ok())
                .collect()
        };
        let hex = |name| u64::from_str_radix(field(name)?, 16).ok();
        let num = |name| field(name)?.parse::<u64>().ok();
        Some(Self {
            tid,
            name: field("Name")?.to_owned(),
            uids: ids("Uid")?,
            gids: ids("Gid")?,
            cap_inh: hex("CapInh")?,
            cap_prm: hex("CapPrm")?,
            cap_eff: hex("CapEff")?,
            cap_bnd: hex("CapBnd")?,
            cap_amb: hex("CapAmb")?,
            no_new_privs: field("NoNewPrivs")? == "1",
            switches: num("voluntary_ctxt_switches")? + num("nonvoluntary_ctxt_switches")?,
        })
    }
}

/// Every thread of process `pid` (threads that end while this reads are left out).
///
/// # Errors
/// The process does not exist.
pub fn threads(pid: u32) -> io::Result<Vec<ThreadStatus>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if let Some(t) = ThreadStatus::parse(tid, &text) {
            out.push(t);
        }
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// Context switches of every thread of `pid`, summed: how often it woke up.
///
/// # Errors
/// As [`threads`].
pub fn context_switches(pid: u32) -> io::Result<u64> {
    Ok(threads(pid)?.iter().map(|t| t.switches).sum())
}

/// Waits until `ready` holds for `pid`'s threads (e.g. the privilege drop happened).
///
/// # Errors
/// The process is gone, or `ready` did not hold within `timeout`.
pub fn wait_for_threads(
    pid: u32,
    timeout: Duration,
    ready: impl Fn(&[ThreadStatus]) -> bool,
) -> io::Result<Vec<ThreadStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        let ts = threads(pid)?;
        if !ts.is_empty() && ready(&ts) {
            return Ok(ts);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "process {pid} did not get there within {timeout:?}: {ts:#?}"
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_this_thread_parses() {
        let text = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let t = ThreadStatus::parse(1, &text).unwrap();
        assert_eq!(t.uids.len(), 4);
        assert_eq!(t.gids.len(), 4);
        assert!(!threads(std::process::id()).unwrap().is_empty());
    }
}
