//! Issue 2: kernel-filtered live capture, end to end, over a veth pair between two network
//! namespaces, with nginx serving a multi-megabyte file on ports 80 and 8080 and curl
//! fetching it from both. The sniffer runs on the server's veth end with the default port
//! set {80}. Needs root; skipped with a message otherwise.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use sniffer::{
    PacketSource,
    capture::{
        KernelCounters, KernelFilter, SourceStats,
        live::{LiveOptions, LiveSource, StopHandle},
    },
};
use tests::{Child, HttpServer, Netns, VethPair, require_root, write_pattern_file};

/// The file served: a few megabytes, so a transfer spans many (and, with TSO, large) skbs.
const BODY_LEN: usize = 3 * 1024 * 1024 + 123;

/// What a capture thread returns: (wire length, bytes) per frame, and the source's stats.
type Captured = (Vec<(u32, Vec<u8>)>, SourceStats);

/// Every skb, even a 64 KiB GSO one, is captured whole.
const SNAPLEN: u32 = 65536;

/// One side of the test setup: namespaces, link, server, content.
struct Lab {
    // Drop order: server, then link, then namespaces.
    _server: HttpServer,
    veth: VethPair,
    client: Netns,
    server_ns: Netns,
    body: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn lab(offloads: bool) -> Lab {
    let server_ns = Netns::new("s").unwrap();
    let client = Netns::new("c").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(offloads).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_pattern_file(&dir.path().join("big.bin"), BODY_LEN).unwrap();
    let body = std::fs::read(dir.path().join("big.bin")).unwrap();
    let server = HttpServer::start(&server_ns, dir.path(), &[80, 8080]).unwrap();
    Lab {
        _server: server,
        veth,
        client,
        server_ns,
        body,
        _dir: dir,
    }
}

/// What curl reports about one fetch.
#[derive(Debug)]
struct Fetch {
    request_bytes: u64,
    header_bytes: u64,
    body_bytes: u64,
}

fn fetch(lab: &Lab, v6: bool, port: u16) -> Fetch {
    let host = if v6 {
        format!("[{}]", lab.veth.a_v6)
    } else {
        lab.veth.a_v4.to_string()
    };
    let url = format!("http://{host}:{port}/big.bin");
    let out = lab
        .client
        .run(&[
            "curl",
            "-sS",
            "--http1.1",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{size_request} %{size_header} %{size_download}",
            &url,
        ])
        .unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let f = Fetch {
        request_bytes: v[0],
        header_bytes: v[1],
        body_bytes: v[2],
    };
    assert_eq!(f.body_bytes, BODY_LEN as u64, "curl {url}: {f:?}");
    f
}

/// Starts live capture on the server's veth end (inside its namespace) in a thread that
/// collects owned frames until stopped.
fn start_capture(lab: &Lab) -> (StopHandle, thread::JoinHandle<Captured>) {
    let config = LiveOptions {
        iface: lab.veth.a_if.clone(),
        filter: KernelFilter::ports(&[80]),
        snaplen: SNAPLEN,
        ring_bytes: 64 << 20,
    };
    let source = lab
        .server_ns
        .enter(|| LiveSource::open(&config))
        .unwrap()
        .unwrap();
    let stop = source.stop_handle();
    let handle = thread::spawn(move || {
        let mut source = source;
        let mut frames = Vec::new();
        while let Some(f) = source.next_frame().unwrap() {
            frames.push((f.orig_len, f.data.to_vec()));
        }
        let stats = source.stats();
        (frames, stats)
    });
    (stop, handle)
}

/// A TCP segment as the tests look at it.
struct Seg {
    sport: u16,
    dport: u16,
    seq: u32,
    syn: bool,
    payload: Vec<u8>,
}

fn parse(frame: &[u8]) -> Seg {
    let p = SlicedPacket::from_ethernet(frame).expect("an Ethernet frame");
    assert!(
        matches!(p.net, Some(NetSlice::Ipv4(_) | NetSlice::Ipv6(_))),
        "not IP"
    );
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("a non-TCP frame left the kernel");
    };
    Seg {
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        payload: tcp.payload().to_vec(),
    }
}

/// The stream of one direction, rebuilt from unique payload bytes by sequence number
/// (relative to the SYN), so a retransmission counts once. Panics on a hole.
fn stream(segs: &[&Seg]) -> Vec<u8> {
    let isn = segs
        .iter()
        .find(|s| s.syn)
        .expect("the SYN was captured")
        .seq;
    let mut bytes: BTreeMap<u32, u8> = BTreeMap::new();
    for s in segs {
        let start = s.seq.wrapping_sub(isn.wrapping_add(1));
        for (i, &b) in s.payload.iter().enumerate() {
            bytes.entry(start.wrapping_add(i as u32)).or_insert(b);
        }
    }
    let len = bytes.len() as u32;
    assert!(
        bytes.keys().copied().eq(0..len),
        "the captured stream has holes"
    );
    bytes.into_values().collect()
}

fn assert_counters_agree(stats: &SourceStats, frames: &[(u32, Vec<u8>)]) -> KernelCounters {
    let k = stats
        .kernel
        .clone()
        .expect("live capture reports kernel counters");
    let n = frames.len() as u64;
    assert_eq!(stats.frames, n);
    assert_eq!(k.ring_full, 0, "{k:?}");
    assert_eq!(k.copy_failed, 0, "{k:?}");
    assert_eq!(k.truncated, 0, "{k:?}");
    assert_eq!(stats.truncated, 0);
    assert_eq!(k.matched, n, "kernel matched vs userspace received: {k:?}");
    let wire: u64 = frames.iter().map(|(len, _)| u64::from(*len)).sum();
    assert_eq!(k.matched_bytes, wire, "{k:?}");
    assert_eq!(stats.bytes, wire);
    assert!(frames.iter().all(|(len, d)| *len as usize == d.len()));
    k
}

/// The port-filter test, parameterised by address family and offloads.
fn port_filter(v6: bool, offloads: bool) {
    let lab = lab(offloads);
    let (stop, handle) = start_capture(&lab);
    let f80 = fetch(&lab, v6, 80);
    let f8080 = fetch(&lab, v6, 8080);
    // Let the last ACK/FIN cross the link before stopping.
    thread::sleep(Duration::from_millis(200));
    stop.stop();
    let (frames, stats) = handle.join().unwrap();

    let k = assert_counters_agree(&stats, &frames);
    let segs: Vec<Seg> = frames.iter().map(|(_, d)| parse(d)).collect();
    for s in &segs {
        assert!(s.sport == 80 || s.dport == 80, "{}->{}", s.sport, s.dport);
        assert!(s.sport != 8080 && s.dport != 8080);
    }
    // The 8080 transfer was seen by the filter and rejected in the kernel.
    assert!(
        k.seen >= k.matched + (BODY_LEN / 65536) as u64,
        "the 8080 transfer should have been seen and not matched: {k:?}"
    );
    // Either family only.
    for (_, d) in &frames {
        let p = SlicedPacket::from_ethernet(d).unwrap();
        assert_eq!(matches!(p.net, Some(NetSlice::Ipv6(_))), v6);
    }

    let to_server: Vec<&Seg> = segs.iter().filter(|s| s.dport == 80).collect();
    let to_client: Vec<&Seg> = segs.iter().filter(|s| s.sport == 80).collect();
    let request = stream(&to_server);
    let response = stream(&to_client);
    assert_eq!(request.len() as u64, f80.request_bytes, "request bytes");
    assert_eq!(
        response.len() as u64,
        f80.header_bytes + f80.body_bytes,
        "response bytes"
    );
    assert!(request.starts_with(b"GET /big.bin HTTP/1.1\r\n"));
    assert_eq!(&response[f80.header_bytes as usize..], &lab.body[..]);
    assert_eq!(f8080.body_bytes, BODY_LEN as u64);

    let largest = frames.iter().map(|(len, _)| *len).max().unwrap();
    if offloads {
        assert!(
            largest > 1514,
            "with TSO/GSO on, skbs larger than one MTU are expected (largest {largest})"
        );
    } else {
        assert!(
            largest <= 1514,
            "with TSO/GSO off, MTU-sized frames are expected (largest {largest})"
        );
    }
    eprintln!(
        "v6={v6} offloads={offloads}: {} frames, largest {largest} bytes, {k:?}",
        frames.len()
    );
}

#[test]
fn issue2_port_filter_ipv4_offloads_on() {
    if require_root("issue2_port_filter_ipv4_offloads_on") {
        port_filter(false, true);
    }
}

#[test]
fn issue2_port_filter_ipv4_offloads_off() {
    if require_root("issue2_port_filter_ipv4_offloads_off") {
        port_filter(false, false);
    }
}

#[test]
fn issue2_port_filter_ipv6_offloads_on() {
    if require_root("issue2_port_filter_ipv6_offloads_on") {
        port_filter(true, true);
    }
}

#[test]
fn issue2_port_filter_ipv6_offloads_off() {
    if require_root("issue2_port_filter_ipv6_offloads_off") {
        port_filter(true, false);
    }
}

/// The `sniffer` binary of this build: next to the test executable's `deps/` directory;
/// built with cargo if this run did not build it.
fn sniffer_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("sniffer");
    if !bin.exists() {
        let target_dir = profile_dir.parent().unwrap();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "sniffer", "--bin", "sniffer", "--target-dir"])
            .arg(target_dir)
            .status()
            .unwrap();
        assert!(status.success(), "building the sniffer binary failed");
    }
    bin
}

/// Reads `sniffer capture`'s stderr until the line that says capture started.
fn wait_started(child: &mut Child) -> BufReader<std::process::ChildStderr> {
    let stderr = child.inner().stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut said = String::new();
    loop {
        let start = said.len();
        assert!(
            reader.read_line(&mut said).unwrap() > 0,
            "sniffer exited before capturing; it said:\n{said}"
        );
        if said[start..].contains("capturing on") {
            return reader;
        }
    }
}

/// `tshark -r` on the file, one [`Seg`] per packet.
fn tshark_segments(path: &Path) -> Vec<Seg> {
    #[rustfmt::skip]
    let out = tests::run_args(&[
        "tshark", "-r", path.to_str().unwrap(), "-T", "fields",
        "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq_raw", "-e", "tcp.flags.syn",
        "-e", "tcp.payload",
    ])
    .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let hex = f.get(4).copied().unwrap_or("").replace(':', "");
            Seg {
                sport: f[0].parse().unwrap(),
                dport: f[1].parse().unwrap(),
                seq: f[2].parse().unwrap(),
                syn: matches!(f[3], "1" | "True"),
                payload: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            }
        })
        .collect()
}

fn cli_write(pcapng: bool) {
    let lab = lab(true);
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir
        .path()
        .join(if pcapng { "out.pcapng" } else { "out.pcap" });
    let bin = sniffer_bin();
    let snaplen = SNAPLEN.to_string();
    let mut args = vec![
        bin.to_str().unwrap(),
        "capture",
        "-i",
        &lab.veth.a_if,
        "--snaplen",
        &snaplen,
        "-w",
        file.to_str().unwrap(),
    ];
    if pcapng {
        args.push("--pcapng");
    }
    let mut cmd = lab.server_ns.command(&args);
    cmd.stderr(Stdio::piped());
    let mut child = Child::spawn(cmd).unwrap();
    let mut stderr = wait_started(&mut child);
    let f = fetch(&lab, false, 80);
    fetch(&lab, false, 8080);
    thread::sleep(Duration::from_millis(200));
    // `ip netns exec` execs the sniffer, so this is the sniffer's pid.
    child.signal(libc::SIGINT).unwrap();
    let status = child.wait_timeout(Duration::from_secs(10)).unwrap();
    let mut report = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut report).unwrap();
    assert!(status.success(), "{status}: {report}");

    // "sniffer: userspace: N packets received (...), N written to FILE"
    let written: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("sniffer: userspace: "))
        .and_then(|l| l.split(", ").last())
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no userspace line in: {report}"));
    assert!(report.contains(" 0 ring-buffer drops"), "{report}");

    let segs = tshark_segments(&file);
    assert_eq!(segs.len(), written, "tshark packet count vs sniffer's");
    assert!(segs.iter().all(|s| s.sport == 80 || s.dport == 80));
    let to_server: Vec<&Seg> = segs.iter().filter(|s| s.dport == 80).collect();
    let to_client: Vec<&Seg> = segs.iter().filter(|s| s.sport == 80).collect();
    let request = stream(&to_server);
    let response = stream(&to_client);
    assert_eq!(request.len() as u64, f.request_bytes);
    assert_eq!(response.len() as u64, f.header_bytes + f.body_bytes);
    assert_eq!(&response[f.header_bytes as usize..], &lab.body[..]);
}

#[test]
fn issue2_capture_pcap_reads_back_in_tshark() {
    if require_root("issue2_capture_pcap_reads_back_in_tshark") {
        cli_write(false);
    }
}

#[test]
fn issue2_capture_pcapng_reads_back_in_tshark() {
    if require_root("issue2_capture_pcapng_reads_back_in_tshark") {
        cli_write(true);
    }
}

#[test]
fn issue2_missing_device_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(sniffer_bin())
        .args(["capture", "-i", "nosuchdev0", "-w"])
        .arg(dir.path().join("x.pcap"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no such device: nosuchdev0"),
        "unclear error: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

/// Runs the sniffer binary as user `nobody` with only the given capabilities (none, or
/// e.g. `+bpf,+net_raw`), on `lo` for `secs` seconds; returns (exit code, stderr).
fn run_as_nobody(caps: &str, secs: &str) -> (Option<i32>, String) {
    use std::os::unix::fs::PermissionsExt as _;
    // A copy nobody can reach (the target directory may not be).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = dir.path().join("sniffer");
    // Copied by another process: a copy written by this one could leave the file open for
    // writing in a child that another test thread forks meanwhile, and exec would then fail
    // with "Text file busy".
    let status = Command::new("cp")
        .arg(sniffer_bin())
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success(), "copying the binary failed");
    let out = Command::new("timeout")
        .args([
            "-s",
            "INT",
            secs,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args(["--clear-groups", "--inh-caps", caps, "--ambient-caps", caps])
        .arg(&bin)
        .args(["capture", "-i", "lo", "-w"])
        .arg(dir.path().join("out.pcap"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn issue2_unprivileged_gets_a_clear_permission_error() {
    if !require_root("issue2_unprivileged_gets_a_clear_permission_error") {
        return;
    }
    let (code, stderr) = run_as_nobody("-all", "10");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("permission denied") && stderr.contains("CAP_BPF and CAP_NET_RAW"),
        "the error should name the cause and the fix: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn issue2_cap_bpf_and_cap_net_raw_suffice() {
    if !require_root("issue2_cap_bpf_and_cap_net_raw_suffice") {
        return;
    }
    // Stopped by SIGINT after two seconds: a clean stop with the closing report.
    let (code, stderr) = run_as_nobody("+bpf,+net_raw", "2");
    // timeout(1) reports 124 when it had to send the signal; the sniffer itself exited 0.
    assert_eq!(code, Some(124), "{stderr}");
    assert!(stderr.contains("capturing on lo"), "{stderr}");
    assert!(stderr.contains("kernel filter: "), "{stderr}");
}
