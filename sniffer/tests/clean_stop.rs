//! Issue 12: one clean stop. Every command reading a capture stops the same way on SIGINT
//! and SIGTERM, wherever the signal lands: it stops reading, ends the open sessions (flow
//! rows printed, saved files finalised and indexed, a `capture -w` file left valid),
//! prints its summary saying "interrupted", and exits 0.
//!
//! The capture is fed through a pipe a piece at a time, so that a signal sent after a
//! random delay finds the command in the middle of its work.

mod common;

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

/// Run `args` on `capture` fed slowly on stdin; send `signal` after `delay`. Returns
/// (exit code, stdout, stderr).
fn interrupted_run(
    args: &[&str],
    capture: &Path,
    signal: libc::c_int,
    delay: Duration,
) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(args)
        .args(["-r", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(capture).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // About two seconds for the whole capture; the feeder stops when the reader goes.
    let feeder = thread::spawn(move || {
        for piece in data.chunks(16 << 10) {
            if stdin.write_all(piece).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    thread::sleep(delay);
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn issue12_every_command_stops_cleanly_on_sigint_and_sigterm_at_random_points() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    // Several files, some of them 206 parts, over two sessions.
    let capture = corpus.join("zeek__http__206_example_b.pcap");
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        for round in 0..2 {
            // The feed takes about 1.8 s: the signal always lands before its end.
            let delay = Duration::from_millis(rng.random_range(50..1500));
            let what = format!("signal {signal}, after {delay:?} (seed {seed}, round {round})");
            let tmp = tempfile::tempdir().unwrap();

            // http: every file that was started is finalised and indexed, none left .part.
            let out = tmp.path().join("out");
            let (code, _, err) = interrupted_run(
                &["--extract-all", "--out", out.to_str().unwrap()],
                &capture,
                signal,
                delay,
            );
            assert_eq!(code, Some(0), "http, {what}: {err}");
            assert!(err.contains("; interrupted"), "{what}: {err}");
            assert!(
                err.contains("HTTP transaction"),
                "http summary, {what}: {err}"
            );
            if out.exists() {
                let index = std::fs::read_to_string(out.join("index.jsonl")).unwrap_or_default();
                let mut files = 0;
                for entry in std::fs::read_dir(&out).unwrap() {
                    let name = entry.unwrap().file_name().into_string().unwrap();
                    assert!(!name.ends_with(".part"), "{name} left behind, {what}");
                    if name != "index.jsonl" {
                        files += 1;
                        assert!(
                            index.contains(&format!("\"file\":\"{name}\"")),
                            "{name} unindexed"
                        );
                    }
                }
                assert_eq!(index.lines().count(), files, "{what}: {index}");
                for line in index.lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    let bytes = std::fs::read(out.join(v["file"].as_str().unwrap())).unwrap();
                    assert_eq!(v["size"], bytes.len() as u64, "{what}: {line}");
                    assert_eq!(v["sha256"], common::sha256_hex(&bytes), "{what}: {line}");
                }
            }

            // flows: a row for every session, the open ones included.
            let (code, rows, err) = interrupted_run(&["flows", "--json"], &capture, signal, delay);
            assert_eq!(code, Some(0), "flows, {what}: {err}");
            assert!(err.contains("interrupted"), "flows, {what}: {err}");
            let sessions: u64 = err
                .lines()
                .find_map(|l| {
                    l.strip_prefix("sniffer: ")?
                        .split_once(" TCP session")?
                        .0
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no session count, {what}: {err}"));
            assert_eq!(
                rows.lines().count() as u64,
                sessions,
                "flows, {what}: {err}"
            );

            // follow: whatever was seen of the stream, and a clean exit.
            let (code, _, err) = interrupted_run(&["follow", "0"], &capture, signal, delay);
            assert_eq!(code, Some(0), "follow, {what}: {err}");
            assert!(err.contains("interrupted"), "follow, {what}: {err}");

            // capture: a valid file holding every packet the report says was written.
            for format in [&[][..], &["--pcapng"][..]] {
                let file = tmp.path().join("cap");
                let mut args = vec!["capture", "-w", file.to_str().unwrap()];
                args.extend_from_slice(format);
                let (code, _, err) = interrupted_run(&args, &capture, signal, delay);
                assert_eq!(code, Some(0), "capture {format:?}, {what}: {err}");
                assert!(err.contains("interrupted"), "capture, {what}: {err}");
                let written: u64 = err
                    .split_once(" written to ")
                    .and_then(|(a, _)| a.rsplit(' ').next()?.parse().ok())
                    .unwrap_or_else(|| panic!("no written count, {what}: {err}"));
                let read = Command::new(env!("CARGO_BIN_EXE_sniffer"))
                    .args(["capture", "-w", "/dev/null", "-r", file.to_str().unwrap()])
                    .output()
                    .unwrap();
                let report = String::from_utf8_lossy(&read.stderr);
                assert!(
                    read.status.success(),
                    "{format:?} not valid, {what}: {report}"
                );
                assert!(
                    report.contains(&format!("{written} packets received")),
                    "{format:?}, {what}: {report}"
                );
            }
        }
    }
}
