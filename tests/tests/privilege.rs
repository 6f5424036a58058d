//! Issue 12, least privilege, live: nginx serves an MP3 in one namespace, the sniffer binary
//! captures on the client's veth end in the other.
//!
//! - Started as root, every thread of the sniffer runs as `nobody` with no capability and
//!   `no_new_privs` while it captures, and the files it saves are still byte-exact (and
//!   belong to `nobody`, as does the output directory it created).
//! - A copy of the binary with only the file capabilities `cap_bpf,cap_net_raw`, run as
//!   `nobody`, captures too, and drops those capabilities once the capture is open.
//! - `capture -i DEV -w FILE` drops the same way and still writes its file.
//!
//! Needs root; skipped with a message otherwise.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::Stdio,
    thread,
    time::Duration,
};

use tests::{
    Child, Netns, VethPair,
    audio::{AudioServer, fetches, write_mp3_like},
    process::{ThreadStatus, sniffer_bin, threads, wait_for_threads},
    require_root,
};

/// `nobody`'s uid and `nogroup`'s gid on Debian.
const NOBODY: u32 = 65534;

const SONG_LEN: usize = 2 * 1024 * 1024 + 333;

/// Namespaces, link, server and the served song.
struct Lab {
    // Drop order: server, then link, then namespaces.
    _server: AudioServer,
    veth: VethPair,
    client: Netns,
    _server_ns: Netns,
    song: Vec<u8>,
    _www: tempfile::TempDir,
}

fn lab(seed: u64) -> Lab {
    let server_ns = Netns::new("ps").unwrap();
    let client = Netns::new("pc").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(false).unwrap();
    let www = tempfile::tempdir().unwrap();
    let song = write_mp3_like(&www.path().join("song.mp3"), SONG_LEN, seed).unwrap();
    let server = AudioServer::start(&server_ns, www.path()).unwrap();
    Lab {
        _server: server,
        veth,
        client,
        _server_ns: server_ns,
        song,
        _www: www,
    }
}

/// Fetches the song plain, gzip-encoded and chunked.
fn fetch_all(lab: &Lab) {
    for (label, extra, url) in fetches(&lab.veth.a_v4.to_string(), "song.mp3") {
        let mut args = vec!["curl", "-sS", "--http1.1", "--max-time", "30"];
        args.extend(["-o", "/dev/null"]);
        args.extend(extra);
        args.push(&url);
        let done = lab.client.run(&args);
        assert!(done.is_ok(), "curl {label}: {done:?}");
    }
}

/// Every thread runs as `uid` (real, effective, saved and filesystem ids) with no
/// capability in any set but the bounding one, and with `no_new_privs`.
fn assert_unprivileged(threads: &[ThreadStatus], uid: u32) {
    assert!(!threads.is_empty());
    for t in threads {
        assert!(
            t.uids.iter().all(|&u| u == uid)
                && t.gids.iter().all(|&g| g != 0)
                && t.cap_eff == 0
                && t.cap_prm == 0
                && t.cap_inh == 0
                && t.cap_amb == 0
                && t.no_new_privs,
            "thread {} ({}) keeps privileges: {t:?}",
            t.tid,
            t.name
        );
    }
}

/// Dropped: the main thread has no effective capability left and runs as `uid`.
fn dropped(uid: u32) -> impl Fn(&[ThreadStatus]) -> bool {
    move |ts| ts[0].cap_eff == 0 && ts[0].uids.iter().all(|&u| u == uid)
}

/// Stops the sniffer with SIGINT and returns what it said on stderr.
fn stop(mut child: Child) -> String {
    child.signal(libc::SIGINT).unwrap();
    let status = child.wait_timeout(Duration::from_secs(15)).unwrap();
    let mut stderr = String::new();
    child
        .inner()
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    stderr
}

/// The three fetches were saved byte-exact in `out`, by `owner`.
fn assert_saved(out: &Path, song: &[u8], owner: u32) {
    let index = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "{index}");
    for e in &entries {
        let file = out.join(e["file"].as_str().unwrap());
        assert!(
            std::fs::read(&file).unwrap() == song,
            "{} differs from the served file",
            file.display()
        );
        assert_eq!(e["complete"], true, "{e}");
        assert_eq!(std::fs::metadata(&file).unwrap().uid(), owner);
    }
}

#[test]
fn issue12_root_runs_as_nobody_in_every_thread_and_still_saves_byte_exact() {
    if !require_root("issue12_root_runs_as_nobody_in_every_thread_and_still_saves_byte_exact") {
        return;
    }
    let lab = lab(12);
    // A private (0700, root's) directory: the sniffer creates `sniffed` inside while it is
    // root, gives it to nobody, and creates files through the open descriptor afterwards.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sniffed");
    let bin = sniffer_bin();
    let mut cmd = lab.client.command(&[
        bin.to_str().unwrap(),
        "-i",
        &lab.veth.b_if,
        "--out",
        out.to_str().unwrap(),
        "--stats-interval",
        "1",
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = Child::spawn(cmd).unwrap();
    let pid = child.id();
    let ts = wait_for_threads(pid, Duration::from_secs(20), dropped(NOBODY)).unwrap();
    assert_unprivileged(&ts, NOBODY);

    fetch_all(&lab);
    // Long enough for a health line or two after the downloads.
    thread::sleep(Duration::from_millis(2500));
    // While it works, the extractor's hasher thread included (it starts with the first
    // saved file, after the drop): still nobody everywhere.
    let ts = threads(pid).unwrap();
    assert!(ts.len() >= 2, "the hasher thread: {ts:#?}");
    assert_unprivileged(&ts, NOBODY);

    let stderr = stop(child);
    assert!(stderr.contains("3 files saved"), "{stderr}");
    // The kernel counters are still read after the drop.
    let kernel = stderr
        .lines()
        .find(|l| l.starts_with("sniffer: kernel: "))
        .unwrap_or_else(|| panic!("no kernel counters in: {stderr}"));
    assert!(kernel.contains(" 0 lost (ring buffer full)"), "{kernel}");
    // So are they for the health lines, once a second.
    let health: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!health.is_empty(), "no health line in: {stderr}");
    for h in &health {
        assert_eq!(h["type"], "stats", "{h}");
        assert!(h["kernel_seen"].as_u64().is_some(), "{h}");
        assert_eq!(h["dropped_packets"], 0, "{h}");
        assert_eq!(h["memcap_bytes"], 256 << 20, "{h}");
        assert!(h["files"].as_u64().unwrap() <= 3, "{h}");
    }
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), NOBODY);
    assert_saved(&out, &lab.song, NOBODY);
}

#[test]
fn issue12_nobody_with_file_capabilities_captures_and_drops_them() {
    if !require_root("issue12_nobody_with_file_capabilities_captures_and_drops_them") {
        return;
    }
    let lab = lab(13);
    // A copy nobody can reach, with only the capabilities live capture needs here.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("sniffer");
    std::fs::copy(sniffer_bin(), &bin).unwrap();
    tests::run_args(&["setcap", "cap_bpf,cap_net_raw+ep", bin.to_str().unwrap()]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = tmp.path().join("sniffed");

    let mut cmd = lab.client.command(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin.to_str().unwrap(),
        "-i",
        &lab.veth.b_if,
        "--out",
        out.to_str().unwrap(),
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = Child::spawn(cmd).unwrap();
    let pid = child.id();
    // Before the capture is open the process has CAP_BPF and CAP_NET_RAW; after, none.
    let ts = wait_for_threads(pid, Duration::from_secs(20), dropped(NOBODY)).unwrap();
    assert_unprivileged(&ts, NOBODY);

    fetch_all(&lab);
    thread::sleep(Duration::from_millis(500));
    assert_unprivileged(&threads(pid).unwrap(), NOBODY);
    let stderr = stop(child);
    assert!(stderr.contains("3 files saved"), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("sniffer: kernel: ")),
        "{stderr}"
    );
    assert_saved(&out, &lab.song, NOBODY);
}

#[test]
fn issue12_capture_to_a_file_drops_too() {
    if !require_root("issue12_capture_to_a_file_drops_too") {
        return;
    }
    let lab = lab(14);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("out.pcap");
    let bin = sniffer_bin();
    let mut cmd = lab.client.command(&[
        bin.to_str().unwrap(),
        "capture",
        "-i",
        &lab.veth.b_if,
        "-w",
        file.to_str().unwrap(),
    ]);
    cmd.stderr(Stdio::piped());
    let mut child = Child::spawn(cmd).unwrap();
    // "capturing on" comes once the device and the file are open and the drop is done.
    let mut stderr = BufReader::new(child.inner().stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("capturing on") {
        assert!(
            stderr.read_line(&mut said).unwrap() > 0,
            "exited early: {said}"
        );
    }
    assert_unprivileged(&threads(child.id()).unwrap(), NOBODY);
    fetch_all(&lab);
    thread::sleep(Duration::from_millis(300));
    child.signal(libc::SIGINT).unwrap();
    let status = child.wait_timeout(Duration::from_secs(15)).unwrap();
    stderr.read_to_string(&mut said).unwrap();
    assert!(status.success(), "{status}: {said}");
    assert!(said.contains("kernel filter: "), "{said}");
    // Every packet received was written, and the file holds the three downloads.
    let written: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("sniffer: userspace: "))
        .and_then(|l| l.split(", ").last())
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no userspace line in: {said}"));
    assert!(written > 0, "{said}");
    assert!(
        std::fs::metadata(&file).unwrap().len() > 2 * SONG_LEN as u64,
        "{said}"
    );
}
