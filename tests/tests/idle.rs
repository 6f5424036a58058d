//! Issue 12, idle is free: on a device with no matching traffic the sniffer sleeps until a
//! record comes or the once-a-second tick is due (`capture`: until a record comes), and a
//! record after a quiet spell wakes it by itself.
//!
//! These count wakeups (context switches, from `/proc`) and check that something happens
//! at all; they time nothing. Needs root; skipped with a message otherwise.

use std::{
    io::{BufRead as _, BufReader},
    net::{SocketAddr, TcpStream},
    process::Stdio,
    sync::mpsc,
    thread,
    time::Duration,
};

use sniffer::{
    PacketSource as _,
    capture::{
        KernelFilter,
        live::{LiveOptions, LiveSource},
    },
};
use tests::{
    Child, Netns, VethPair,
    process::{context_switches, sniffer_bin, wait_for_threads},
    require_root,
};

/// How long the wakeups are counted.
const WINDOW: Duration = Duration::from_secs(5);
/// At most this many wakeups a second per process (the tick is one).
const MAX_PER_SECOND: u64 = 2;

/// Counts the context switches of `pid`'s threads over [`WINDOW`], after letting it
/// settle, and checks the rate.
fn assert_sleeps(pid: u32, what: &str) {
    // Long enough for the reader to stop polling (two poll intervals) and to leave start-up.
    thread::sleep(Duration::from_secs(1));
    let before = context_switches(pid).unwrap();
    thread::sleep(WINDOW);
    let woke = context_switches(pid).unwrap() - before;
    eprintln!("{what}: {woke} context switches in {WINDOW:?}");
    assert!(
        woke <= MAX_PER_SECOND * WINDOW.as_secs(),
        "{what} woke {woke} times in {WINDOW:?} on an idle device (at most {MAX_PER_SECOND}/s)"
    );
}

/// An idle veth pair: nothing is sent on it.
fn idle_link() -> (VethPair, Netns, Netns) {
    let a = Netns::new("ia").unwrap();
    let b = Netns::new("ib").unwrap();
    let veth = VethPair::new(&a, &b).unwrap();
    (veth, a, b)
}

#[test]
fn issue12_idle_http_mode_wakes_at_most_twice_a_second() {
    if !require_root("issue12_idle_http_mode_wakes_at_most_twice_a_second") {
        return;
    }
    let (veth, _a, b) = idle_link();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sniffed");
    let bin = sniffer_bin();
    let mut cmd = b.command(&[
        bin.to_str().unwrap(),
        "-i",
        &veth.b_if,
        "--out",
        out.to_str().unwrap(),
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = Child::spawn(cmd).unwrap();
    // Running once the capture is open and the privileges dropped (assert_sleeps lets
    // start-up pass); the extractor's thread only starts with the first saved file.
    wait_for_threads(child.id(), Duration::from_secs(20), |ts| {
        ts.iter().all(|t| t.uids[0] != 0)
    })
    .unwrap();
    assert_sleeps(child.id(), "sniffer -i (http)");
}

#[test]
fn issue12_idle_capture_wakes_at_most_twice_a_second() {
    if !require_root("issue12_idle_capture_wakes_at_most_twice_a_second") {
        return;
    }
    let (veth, _a, b) = idle_link();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("idle.pcap");
    let bin = sniffer_bin();
    let mut cmd = b.command(&[
        bin.to_str().unwrap(),
        "capture",
        "-i",
        &veth.b_if,
        "-w",
        file.to_str().unwrap(),
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = Child::spawn(cmd).unwrap();
    let mut stderr = BufReader::new(child.inner().stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("capturing on") {
        assert!(
            stderr.read_line(&mut said).unwrap() > 0,
            "exited early: {said}"
        );
    }
    assert_sleeps(child.id(), "sniffer capture -i");
}

/// A reader asleep without a tick (`next_frame`) is woken by the kernel for the first
/// record after a quiet spell: without that wakeup it would sleep until the stop.
#[test]
fn issue12_a_record_wakes_a_sleeping_reader() {
    if !require_root("issue12_a_record_wakes_a_sleeping_reader") {
        return;
    }
    let (veth, a, b) = idle_link();
    let config = LiveOptions {
        iface: veth.b_if.clone(),
        filter: KernelFilter::ports(&[80]),
        snaplen: 65536,
        ring_bytes: 1 << 20,
    };
    let mut source = b.enter(|| LiveSource::open(&config)).unwrap().unwrap();
    let stop = source.stop_handle();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut n = 0_u64;
        while source.next_frame().unwrap().is_some() {
            n += 1;
            if tx.send(n).is_err() {
                break;
            }
        }
        n
    });
    for round in 0..3 {
        // Quiet for longer than polling and arming take: the reader is asleep.
        thread::sleep(Duration::from_millis(300));
        // One SYN to port 80 on the other end (nothing listens: a RST comes back).
        let to = SocketAddr::new(veth.b_v4.into(), 80);
        a.enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(1)))
            .unwrap()
            .unwrap_err();
        // Generous: this only guards against sleeping until the stop.
        let got = rx.recv_timeout(Duration::from_secs(10));
        assert!(
            got.is_ok(),
            "round {round}: the first record after a quiet spell was not read"
        );
        while rx.try_recv().is_ok() {}
    }
    stop.stop();
    assert!(reader.join().unwrap() >= 3);
}
