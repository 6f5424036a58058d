//! Issue 12: the disk's truth. A full disk, a read-only or forbidden output directory, an
//! output path that is a file, a `.part` left by a killed run, a kill in the middle of a
//! body, a disk budget and dedup: each gets an honest index, a clear message and the
//! right exit code, and every index line without an error is true of the file on disk.
//!
//! Mounting a small tmpfs and running as another user need root; these tests say why
//! and skip otherwise (and fail under `cargo xtask test`, which runs them as root).

mod common;

use std::{
    io::Write as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::Duration,
};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        common::skip("needs root (mounting a small tmpfs, running as nobody)");
    }
    root
}

/// The corpus capture with four files (two 206 parts of one resource, merged, and a copy
/// of one part on a second connection): 2.2 MB of bodies.
fn capture() -> Option<PathBuf> {
    Some(common::corpus()?.join("zeek__http__206_example_b.pcap"))
}

fn sniffer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(args)
        .output()
        .unwrap()
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str, options: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}{options}"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs failed");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Every index line of `dir`, each checked against the disk: a `file` line's size and
/// sha256 describe the file as it is (with or without an error); an `evicted` file is gone.
fn checked_index(dir: &Path) -> Vec<serde_json::Value> {
    let index = std::fs::read_to_string(dir.join("index.jsonl")).unwrap_or_default();
    let lines: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for v in &lines {
        let name = v["file"].as_str().unwrap();
        match v["type"].as_str() {
            Some("evicted") => continue,
            Some("file") => {}
            other => panic!("unexpected record type {other:?}"),
        }
        let evicted_later = lines
            .iter()
            .any(|e| e["type"] == "evicted" && e["file"] == name);
        if evicted_later {
            assert!(!dir.join(name).exists(), "{name} evicted, yet there");
            continue;
        }
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v["size"], bytes.len() as u64, "{v}");
        assert_eq!(v["sha256"], common::sha256_hex(&bytes), "{v}");
    }
    lines
}

#[test]
fn issue12_a_full_disk_is_reported_never_as_saved() {
    let Some(capture) = capture() else { return };
    if !root() {
        return;
    }
    // Room for the index and some of the bodies, not all of them.
    let fs = Tmpfs::mount("1200k", "");
    let out = fs.path().join("o");
    let o = sniffer(&[
        "-r",
        capture.to_str().unwrap(),
        "--extract-all",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("could not be written whole"), "{err}");
    assert!(err.contains("failed"), "{err}");
    assert!(
        text.contains("[not saved whole: No space left on device"),
        "{text}"
    );
    let lines = checked_index(&out);
    let failed: Vec<_> = lines.iter().filter(|v| !v["error"].is_null()).collect();
    assert!(!failed.is_empty(), "no failed file indexed: {lines:?}");
    for v in &failed {
        assert_eq!(v["complete"], false);
        assert!(
            v["error"].as_str().unwrap().contains("No space left"),
            "{v}"
        );
    }
    // The summary counts no failed file as saved.
    let saved = lines.iter().filter(|v| v["error"].is_null()).count();
    assert!(
        err.contains(&format!("; {saved} file")),
        "{saved} saved: {err}"
    );
}

#[test]
fn issue12_read_only_forbidden_and_not_a_directory() {
    let Some(capture) = capture() else { return };
    if !root() {
        return;
    }
    let cap = capture.to_str().unwrap();
    // A read-only file system.
    let fs = Tmpfs::mount("1m", ",ro");
    let out = fs.path().join("o");
    let o = sniffer(&["-r", cap, "--extract-all", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    // Three bodies; the fourth file, their merge, never had its parts.
    assert!(err.contains("3 files could not be written whole"), "{err}");
    assert_eq!(
        err.matches("Read-only file system").count(),
        1,
        "said once: {err}"
    );

    // A directory the user may not write to: run as nobody.
    let tmp = tempfile::tempdir().unwrap();
    let forbidden = tmp.path().join("forbidden");
    std::fs::create_dir(&forbidden).unwrap();
    let readable = tmp.path().join("c.pcap");
    std::fs::copy(&capture, &readable).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = tmp.path().join("sniffer");
    let status = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_sniffer"))
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success());
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("-r")
        .arg(&readable)
        .args(["--extract-all", "--out"])
        .arg(&forbidden)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("could not be written whole"), "{err}");

    // An output path that is a file: a usage error, before anything is read.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = sniffer(&["-r", cap, "--out", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("exists and is not a directory"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn issue12_a_killed_run_leaves_part_files_and_the_next_run_says_so() {
    let Some(capture) = capture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    // Killed with SIGKILL in the middle of the first body (fed slowly on a pipe).
    let mut child = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(["-r", "-", "--extract-all", "--out", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let data = std::fs::read(&capture).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The first body is 816,896 bytes: stop feeding after half a megabyte.
    stdin.write_all(&data[..512 << 10]).unwrap();
    let mut parts = Vec::new();
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(50));
        parts = std::fs::read_dir(&out)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.ends_with(".part"))
                    .collect()
            })
            .unwrap_or_default();
        if !parts.is_empty() {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(parts.len(), 1, "a body in progress is a .part file");
    let final_name = parts[0].strip_suffix(".part").unwrap();
    assert!(!out.join(final_name).exists(), "nothing looks complete");
    assert!(
        out.join(&parts[0]).exists(),
        "the .part stays after SIGKILL"
    );

    // The next run into the same directory reports the leftover and overwrites nothing.
    let left = std::fs::read(out.join(&parts[0])).unwrap();
    let o = sniffer(&[
        "-r",
        capture.to_str().unwrap(),
        "--extract-all",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 leftover .part file from an earlier run"),
        "{err}"
    );
    assert!(
        err.contains(".part file(s) left by an earlier run"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join(&parts[0])).unwrap(), left);
    let lines = checked_index(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[test]
fn issue12_disk_budget_evicts_oldest_first_and_dedup_links_copies() {
    let Some(capture) = capture() else { return };
    let cap = capture.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // Budget: 1 MiB for 2.2 MB of bodies.
    let out = tmp.path().join("budget");
    let o = sniffer(&[
        "-r",
        cap,
        "--extract-all",
        "--max-disk",
        "1M",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let lines = checked_index(&out);
    let evicted: Vec<&str> = lines
        .iter()
        .filter(|v| v["type"] == "evicted")
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    let saved: Vec<&str> = lines
        .iter()
        .filter(|v| v["type"] == "file")
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    assert!(!evicted.is_empty(), "{lines:?}");
    // Oldest first: evictions follow the order the files were saved in.
    let order: Vec<usize> = evicted
        .iter()
        .map(|e| saved.iter().position(|s| s == e).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(err.contains("for the disk budget"), "{err}");
    let on_disk: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "index.jsonl")
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // Within the budget, give or take the buffers in flight when the last file grew.
    assert!(on_disk <= (1 << 20) + (2 << 20), "{on_disk} bytes on disk");

    // Dedup: the part fetched again on the second connection is stored once.
    let out = tmp.path().join("dedup");
    let o = sniffer(&[
        "-r",
        cap,
        "--extract-all",
        "--dedup",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let lines = checked_index(&out);
    assert_eq!(lines.len(), 4, "every copy keeps its own line");
    let linked: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| {
            v["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().starts_with("stored once"))
        })
        .collect();
    assert_eq!(linked.len(), 1, "{lines:?}");
    let copy = linked[0];
    let first = lines
        .iter()
        .find(|v| v["sha256"] == copy["sha256"] && v["file"] != copy["file"])
        .unwrap();
    let ino = |v: &serde_json::Value| {
        std::fs::metadata(out.join(v["file"].as_str().unwrap()))
            .unwrap()
            .ino()
    };
    assert_eq!(ino(copy), ino(first), "a hard link");
    assert!(err.contains("1 stored as links to a copy"), "{err}");
}
