//! `cargo xtask soak --minutes N`: sniffer as a monitor, live, under mixed traffic, for N
//! minutes (needs root).
//!
//! Two namespaces joined by veth; nginx serves MP3-like files in one; the release
//! `sniffer -i VETH` runs in the other, saving audio, while these run until the end:
//! - keep-alive downloads: two files over one connection, plain or gzip;
//! - pipelined downloads: three requests written at once on one connection;
//! - aborted downloads: a large file cut off by the client after a second;
//! - 4-tuple reuse: HTTP/1.0 downloads from the same two client ports again and again;
//! - a burst of SYN flood every minute: thousands of connection attempts to an address
//!   whose port 80 drops everything, never answered;
//! - an endless radio stream ([`station`], port 8000), listened to from start to end:
//!   metadata removed, cut into one file per title.
//!
//! The sniffer runs with the filter `port 80 or port 8000` and `--stats-interval`. Every
//! `--sample-secs` the soak samples its RSS, open descriptors and CPU, and the packets it
//! lost (ring buffer full, copy failures, and drops, from its last health line). It fails
//! when RSS or descriptors keep growing after warm-up (the last third's peak above the
//! middle third's by more than 10% and 4 MiB; descriptors by more than 2), when a served
//! file's download was not saved byte-exact, when an aborted one is not marked
//! incomplete, or when the stream's tracks are not exactly the audio sent, in order.
//! `cargo xtask test` runs a 2-minute soak.

mod station;

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use ::tests::{
    Child, Netns, VethPair,
    audio::{AudioServer, write_mp3_like},
};
use anyhow::{Context as _, bail};
use clap::Args;

use crate::util::{cargo, is_root, run_loud, target_dir};

#[derive(Debug, Args)]
pub struct Options {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 2.0)]
    pub minutes: f64,
    /// Seconds between samples of the sniffer's RSS, descriptors and CPU.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
}

/// The files served: name and size in bytes. `big.mp3` is only ever fetched to be cut off.
const FILES: [(&str, usize); 5] = [
    ("a.mp3", 300 << 10),
    ("b.mp3", 1 << 20),
    ("c.mp3", 3 << 20),
    ("d.mp3", 64 << 10),
    ("big.mp3", 64 << 20),
];

/// One sample of the sniffer process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    cpu_ticks: u64,
}

fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let cpu_ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Sample {
        at,
        rss_kib,
        fds,
        cpu_ticks,
    })
}

/// Counts of what the traffic did, for the report.
#[derive(Default)]
struct Counts {
    keepalive: AtomicU64,
    pipelined: AtomicU64,
    aborted: AtomicU64,
    reused: AtomicU64,
    syns: AtomicU64,
    /// Client failures: keep-alive, pipelined, aborted, reused.
    failures: [AtomicU64; 4],
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    if !is_root() {
        bail!("cargo xtask soak needs root: network namespaces, veth, and the eBPF filter");
    }
    run_loud(
        cargo()
            .args([
                "build",
                "--release",
                "--package",
                "sniffer",
                "--bin",
                "sniffer",
            ])
            .env_remove("AYA_BUILD_SKIP"),
    )?;
    let sniffer = target_dir().join("release/sniffer");
    let duration = Duration::from_secs_f64(options.minutes * 60.0);

    let work = tempfile::tempdir()?;
    let www = work.path().join("www");
    std::fs::create_dir(&www)?;
    let mut served = BTreeMap::new();
    for (i, (name, len)) in FILES.iter().enumerate() {
        let data = write_mp3_like(&www.join(name), *len, 0x50A4 + i as u64)?;
        served.insert(format!("/{name}"), sha256_hex(&data));
    }
    let out = work.path().join("sniffed");

    let server_ns = Netns::new("ks")?;
    let client = Arc::new(Netns::new("kc")?);
    let veth = VethPair::new(&server_ns, &client)?;
    let _server = AudioServer::start(&server_ns, &www)?;
    let _station = station::Station::start(&server_ns)?;
    // A second server address whose port 80 drops every packet: SYNs to it are never
    // answered (the sniffer sees them on the client's device before anything drops them).
    let octets = veth.a_v4.octets();
    let blackhole = std::net::Ipv4Addr::new(octets[0], octets[1], octets[2], 3);
    server_ns.run(&[
        "ip",
        "addr",
        "add",
        &format!("{blackhole}/24"),
        "dev",
        &veth.a_if,
    ])?;
    for rule in [
        "add table inet soak",
        "add chain inet soak input { type filter hook input priority 0 ; }",
        &format!("add rule inet soak input ip daddr {blackhole} tcp dport 80 drop"),
    ] {
        let mut args = vec!["nft"];
        args.extend(rule.split(' '));
        server_ns
            .run(&args)
            .with_context(|| format!("nft {rule}"))?;
    }

    let stdout_path = work.path().join("sniffer.out");
    let stderr_path = work.path().join("sniffer.err");
    let args = [
        sniffer.to_str().context("path")?,
        "-i",
        &veth.b_if,
        "--out",
        out.to_str().context("path")?,
        "--max-disk",
        "256M",
        // Sessions that only sent a SYN end within the run, so memory reaches its
        // steady state in minutes, not after the default five.
        "--idle-timeout",
        "30",
        "--stats-interval",
        "10",
        "-q",
        "port 80 or port 8000",
    ];
    let mut cmd = client.command(&args);
    cmd.stdout(Stdio::from(std::fs::File::create(&stdout_path)?))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path)?));
    eprintln!(
        "xtask soak: $ ip netns exec {} {}",
        client.name(),
        args.join(" ")
    );
    let mut child = Child::spawn(cmd)?;
    thread::sleep(Duration::from_millis(1500));
    if let Some(status) = child.inner().try_wait()? {
        bail!(
            "the sniffer exited early ({status}):\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
    }
    let pid = child.id();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let host = veth.a_v4.to_string();
    let server: SocketAddr = SocketAddr::new(veth.a_v4.into(), 80);
    let mut workers = Vec::new();
    let names: Vec<&str> = FILES
        .iter()
        .map(|f| f.0)
        .filter(|n| *n != "big.mp3")
        .collect();

    // Keep-alive: two files, one connection, plain or gzip.
    {
        let (stop, counts, client_ns, host, names) = (
            Arc::clone(&stop),
            Arc::clone(&counts),
            client.name().to_owned(),
            host.clone(),
            names.clone(),
        );
        workers.push(thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = (names[i % names.len()], names[(i + 1) % names.len()]);
                let mut args = vec!["--http1.1", "--max-time", "30"];
                if i % 2 == 1 {
                    args.push("--compressed");
                }
                let (ua, ub) = (format!("http://{host}/{a}"), format!("http://{host}/{b}"));
                args.extend(["-o", "/dev/null", &ua, "-o", "/dev/null", &ub]);
                let ok = curl(&client_ns, &args).status().is_ok_and(|s| s.success());
                let c = if ok {
                    &counts.keepalive
                } else {
                    &counts.failures[0]
                };
                c.fetch_add(1, Ordering::Relaxed);
                i += 1;
                thread::sleep(Duration::from_millis(300));
            }
        }));
    }
    // Pipelined: three GETs written at once.
    {
        let (stop, counts, names) = (Arc::clone(&stop), Arc::clone(&counts), names.clone());
        let ns = Arc::clone(&client);
        workers.push(thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let picks = [0, 1, 2].map(|k| names[(i + k) % names.len()]);
                let ok = ns
                    .enter(|| pipelined(server, &picks))
                    .is_ok_and(|r| r.is_ok());
                let c = if ok {
                    &counts.pipelined
                } else {
                    &counts.failures[1]
                };
                c.fetch_add(1, Ordering::Relaxed);
                i += 1;
                thread::sleep(Duration::from_millis(700));
            }
        }));
    }
    // Aborted: the big file, cut off after a second at 4 MB/s.
    {
        let (stop, counts, client_ns, host) = (
            Arc::clone(&stop),
            Arc::clone(&counts),
            client.name().to_owned(),
            host.clone(),
        );
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let url = format!("http://{host}/big.mp3");
                let status = curl(
                    &client_ns,
                    &[
                        "--http1.1",
                        "--limit-rate",
                        "4M",
                        "--max-time",
                        "1",
                        "-o",
                        "/dev/null",
                        &url,
                    ],
                )
                .stderr(Stdio::null())
                .status();
                // curl's 28: the time limit cut it off, as meant.
                let c = if status.is_ok_and(|s| s.code() == Some(28)) {
                    &counts.aborted
                } else {
                    &counts.failures[2]
                };
                c.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_secs(3));
            }
        }));
    }
    // 4-tuple reuse: HTTP/1.0 (the server closes first) from one client port.
    {
        let (stop, counts, client_ns, host) = (
            Arc::clone(&stop),
            Arc::clone(&counts),
            client.name().to_owned(),
            host.clone(),
        );
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let url = format!("http://{host}/d.mp3");
                let ok = curl(
                    &client_ns,
                    &[
                        "--http1.0",
                        "--local-port",
                        "45000",
                        "--max-time",
                        "10",
                        "-o",
                        "/dev/null",
                        &url,
                    ],
                )
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
                let c = if ok {
                    &counts.reused
                } else {
                    &counts.failures[3]
                };
                c.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_secs(2));
            }
        }));
    }
    // SYN bursts: once after warm-up, then every minute.
    {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        let ns = Arc::clone(&client);
        let target = SocketAddr::new(blackhole.into(), 80);
        workers.push(thread::spawn(move || {
            let mut next = Instant::now() + Duration::from_secs(15);
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    if let Ok(Ok(n)) = ns.enter(|| syn_burst(target, 5000)) {
                        counts.syns.fetch_add(n, Ordering::Relaxed);
                    }
                    next += Duration::from_secs(60);
                }
                thread::sleep(Duration::from_millis(200));
            }
        }));
    }

    // The endless stream: one listener from start to end.
    {
        let (stop, client_ns, host) = (Arc::clone(&stop), client.name().to_owned(), host.clone());
        workers.push(thread::spawn(move || {
            let url = format!("http://{host}:{}/stream", station::PORT);
            let listener = curl(
                &client_ns,
                &[
                    "--http1.1",
                    "-H",
                    "Icy-MetaData: 1",
                    "-o",
                    "/dev/null",
                    &url,
                ],
            )
            .stderr(Stdio::null())
            .spawn();
            let Ok(mut listener) = listener else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(200));
            }
            let _ = listener.kill();
            let _ = listener.wait();
        }));
    }

    // Sample while the traffic runs.
    let mut samples = Vec::new();
    while start.elapsed() < duration {
        if let Some(s) = sample(pid, start.elapsed()) {
            let lost = lost_packets(&stderr_path);
            eprintln!(
                "xtask soak: {:>6.0} s  RSS {:>7.1} MiB  fds {:>3}  cpu {:>6.1} s  lost {}",
                s.at.as_secs_f64(),
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.cpu_ticks as f64 / ticks_per_second(),
                lost.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            );
            samples.push(s);
        } else {
            bail!(
                "the sniffer is gone:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        let left = duration.saturating_sub(start.elapsed());
        thread::sleep(left.min(Duration::from_secs(options.sample_secs)));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    thread::sleep(Duration::from_secs(1));
    child.signal(libc::SIGINT)?;
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .context("waiting for the sniffer to stop")?;
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let summary: String = stderr
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    eprintln!("--- sniffer's summary ---\n{summary}--- end ---");
    if !status.success() {
        bail!("the sniffer failed: {status}");
    }

    let c = &counts;
    eprintln!(
        "xtask soak: traffic: {} keep-alive pairs, {} pipelined triples, {} aborted, {} reused \
         4-tuples, {} unanswered SYNs; client failures (keep-alive, pipelined, aborted, \
         reused): {:?}",
        c.keepalive.load(Ordering::Relaxed),
        c.pipelined.load(Ordering::Relaxed),
        c.aborted.load(Ordering::Relaxed),
        c.reused.load(Ordering::Relaxed),
        c.syns.load(Ordering::Relaxed),
        c.failures.each_ref().map(|f| f.load(Ordering::Relaxed)),
    );
    let mut problems = check_files(&out, &served)?;
    problems.extend(check_growth(&samples));
    if problems.is_empty() {
        eprintln!(
            "xtask soak: passed: {:.1} minutes, memory and descriptors flat, every file true",
            options.minutes
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("xtask soak: {p}");
        }
        bail!("soak failed: {} problem(s)", problems.len())
    }
}

/// `curl -sS ARGS` inside the network namespace `ns`.
fn curl(ns: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-sS"]).args(args);
    cmd
}

/// Packets the sniffer lost so far, from its last health line on stderr: the ring buffer
/// full, failed copies, and drops. `None` before the first line.
fn lost_packets(stderr: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stderr).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(r#""type":"stats""#))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(
        ["kernel_ring_full", "kernel_copy_failed", "dropped_packets"]
            .iter()
            .map(|k| v[k].as_u64().unwrap_or(0))
            .sum(),
    )
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Three requests written at once on one connection (the last asks to close); reads the
/// three responses to the end.
fn pipelined(server: SocketAddr, names: &[&str; 3]) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = String::new();
    for (i, n) in names.iter().enumerate() {
        let close = if i == 2 { "Connection: close\r\n" } else { "" };
        req += &format!("GET /{n} HTTP/1.1\r\nHost: soak\r\n{close}\r\n");
    }
    s.write_all(req.as_bytes())?;
    let mut sink = Vec::new();
    s.read_to_end(&mut sink)?;
    Ok(())
}

/// `n` connection attempts to `target` that nothing answers: non-blocking connects, held
/// for a second, then dropped. Returns how many were sent.
fn syn_burst(target: SocketAddr, n: usize) -> std::io::Result<u64> {
    let mut held = Vec::with_capacity(n);
    let mut sent = 0;
    for _ in 0..n {
        // SAFETY: plain socket calls on a descriptor owned here; the address is valid for
        // the call.
        unsafe {
            let fd = libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            );
            if fd < 0 {
                break;
            }
            let SocketAddr::V4(v4) = target else {
                libc::close(fd);
                break;
            };
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            libc::connect(
                fd,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            held.push(fd);
            sent += 1;
        }
    }
    thread::sleep(Duration::from_secs(1));
    for fd in held {
        // SAFETY: each descriptor was opened above and is closed once.
        unsafe { libc::close(fd) };
    }
    Ok(sent)
}

/// Every index line against the served files: a whole download saved byte-exact, an
/// aborted one (big.mp3) marked incomplete; the stream's tracks against the station's
/// audio.
fn check_files(out: &Path, served: &BTreeMap<String, String>) -> anyhow::Result<Vec<String>> {
    let index = std::fs::read_to_string(out.join("index.jsonl"))
        .with_context(|| format!("{}/index.jsonl", out.display()))?;
    let mut problems = Vec::new();
    let (mut whole, mut cut) = (0, 0);
    let mut evicted = std::collections::BTreeSet::new();
    let mut stream = Vec::new();
    for line in index.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["type"] == "evicted" {
            evicted.insert(v["file"].as_str().unwrap_or_default().to_owned());
            continue;
        }
        let url = v["url"].as_str().unwrap_or_default();
        if url.ends_with(&format!(":{}/stream", station::PORT)) {
            stream.push(v);
            continue;
        }
        let path = url.rsplit_once('/').map(|(_, p)| format!("/{p}"));
        let Some(want) = path.as_ref().and_then(|p| served.get(p)) else {
            problems.push(format!("a file for an unknown URL: {line}"));
            continue;
        };
        if path.as_deref() == Some("/big.mp3") {
            cut += 1;
            if v["complete"] != false {
                problems.push(format!("an aborted download not marked incomplete: {line}"));
            }
        } else {
            whole += 1;
            if v["complete"] != true || v["sha256"] != want.as_str() || !v["error"].is_null() {
                problems.push(format!("a download not saved byte-exact: {line}"));
            }
        }
    }
    let (stream_problems, tracks, audio) = station::check(out, &stream, &evicted);
    problems.extend(stream_problems);
    eprintln!(
        "xtask soak: index: {whole} whole downloads and {cut} aborted ones checked against the \
         served files; the endless stream: {} tracks, {tracks} still on disk checked, {audio} \
         audio bytes in order; {} files evicted for the disk budget",
        stream.len(),
        evicted.len()
    );
    if whole == 0 {
        problems.push("no download was saved".into());
    }
    Ok(problems)
}

/// Growth after warm-up: the last third's peak against the middle third's.
fn check_growth(samples: &[Sample]) -> Vec<String> {
    let mut problems = Vec::new();
    if samples.len() < 6 {
        problems.push(format!(
            "only {} samples: run longer to judge growth",
            samples.len()
        ));
        return problems;
    }
    let third = samples.len() / 3;
    let middle = &samples[third..2 * third];
    let last = &samples[2 * third..];
    let peak = |s: &[Sample], f: fn(&Sample) -> u64| s.iter().map(f).max().unwrap_or(0);
    let (rss_mid, rss_last) = (peak(middle, |s| s.rss_kib), peak(last, |s| s.rss_kib));
    if rss_last > rss_mid + rss_mid / 10 + 4096 {
        problems.push(format!(
            "RSS keeps growing: peak {rss_mid} KiB in the middle third, {rss_last} KiB in the last"
        ));
    }
    let (fds_mid, fds_last) = (peak(middle, |s| s.fds), peak(last, |s| s.fds));
    if fds_last > fds_mid + 2 {
        problems.push(format!(
            "open descriptors keep growing: {fds_mid} in the middle third, {fds_last} in the last"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(rss_kib: u64, fds: u64) -> Sample {
        Sample {
            at: Duration::ZERO,
            rss_kib,
            fds,
            cpu_ticks: 0,
        }
    }

    #[test]
    fn issue12_growth_after_warm_up_fails_and_flat_passes() {
        let flat: Vec<Sample> = [9, 30, 31, 30, 32, 31, 30, 31, 32]
            .map(|m| s(m << 10, 12))
            .to_vec();
        assert!(check_growth(&flat).is_empty());
        let leaking: Vec<Sample> = (0..9).map(|i| s((30 + 10 * i) << 10, 12)).collect();
        assert_eq!(check_growth(&leaking).len(), 1);
        let fds: Vec<Sample> = (0..9).map(|i| s(30 << 10, 10 + i)).collect();
        assert_eq!(check_growth(&fds).len(), 1);
        assert_eq!(
            check_growth(&flat[..3]).len(),
            1,
            "too few samples to judge"
        );
    }
}
