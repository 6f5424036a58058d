//! Issue 13, `-i any`: every device at once. In the client's namespace the sniffer listens
//! on `any` while curl fetches one song from nginx across the veth pair and another from a
//! server on the namespace's own loopback. Both must be saved byte-exact, and loopback's
//! packets must be seen once (libpcap skips their outgoing copies): no byte counted as
//! retransmitted.
//! Needs root; skipped with a message otherwise.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    thread,
    time::Duration,
};

use sniffer::{
    capture::{
        KernelFilter,
        live::{ANY, LiveOptions, LiveSource},
    },
    extract::{ExtractConfig, ExtractStats, Extractor},
    flow::FlowConfig,
    http::{HttpAnalyzer, HttpStats, Limits},
    pipeline::{self, PipelineStats},
};
use tests::{
    Child, Netns, VethPair,
    audio::{AudioServer, write_mp3_like},
    require_root,
};

#[test]
fn issue13_any_captures_every_device_and_loopback_once() {
    if !require_root("issue13_any_captures_every_device_and_loopback_once") {
        return;
    }
    let server_ns = Netns::new("as").unwrap();
    let client = Netns::new("ac").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(false).unwrap();
    let www = tempfile::tempdir().unwrap();
    let far = write_mp3_like(&www.path().join("far.mp3"), 700_000, 131).unwrap();
    let _nginx = AudioServer::start(&server_ns, www.path()).unwrap();
    let local = tempfile::tempdir().unwrap();
    let near = write_mp3_like(&local.path().join("near.mp3"), 500_000, 132).unwrap();
    client.run(&["ip", "link", "set", "lo", "up"]).unwrap();
    let dir = local.path().to_string_lossy().into_owned();
    let mut py = client.command(&[
        "python3",
        "-m",
        "http.server",
        "80",
        "--bind",
        "127.0.0.1",
        "--directory",
        &dir,
    ]);
    py.stdout(Stdio::null()).stderr(Stdio::null());
    let _local_server = Child::spawn(py).unwrap();
    client
        .wait_for_tcp(
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 80),
            Duration::from_secs(10),
        )
        .unwrap();

    let config = LiveOptions {
        iface: ANY.to_owned(),
        filter: KernelFilter::ports(&[80]),
        snaplen: 65536,
        ring_bytes: 64 << 20,
    };
    let source = client.enter(|| LiveSource::open(&config)).unwrap().unwrap();
    let stop = source.stop_handle();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_owned();
    let sniffer = thread::spawn(move || -> (PipelineStats, HttpStats, ExtractStats) {
        let mut source = source;
        let ex = Extractor::new(ExtractConfig {
            dir: out_dir,
            globs: vec![glob::Pattern::new("audio/*").unwrap()],
            ..ExtractConfig::default()
        })
        .unwrap();
        let mut analyzer = HttpAnalyzer::new(ex, Limits::default());
        let stats = pipeline::run(&mut source, &FlowConfig::default(), &mut analyzer).unwrap();
        analyzer.finish();
        let http = analyzer.stats().clone();
        let mut ex = analyzer.into_listener();
        ex.finish();
        (stats, http, ex.stats())
    });
    for url in [
        format!("http://{}/far.mp3", veth.a_v4),
        "http://127.0.0.1/near.mp3".to_owned(),
    ] {
        let done = client.run(&["curl", "-sS", "--max-time", "30", "-o", "/dev/null", &url]);
        assert!(done.is_ok(), "curl {url}: {done:?}");
    }
    thread::sleep(Duration::from_millis(500));
    stop.stop();
    let (stats, http, saved) = sniffer.join().unwrap();
    assert_eq!(http.transactions, 2, "{http:?}");
    assert_eq!(saved.saved, 2, "{saved:?}");
    assert_eq!(saved.incomplete, 0, "{saved:?}");
    assert_eq!(
        stats.flow.retransmitted, 0,
        "a packet seen twice: {:?}",
        stats.flow
    );
    assert_eq!(stats.flow.gaps, 0, "{:?}", stats.flow);

    let index: Vec<serde_json::Value> = std::fs::read_to_string(out.path().join("index.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (name, body) in [("far.mp3", &far), ("near.mp3", &near)] {
        let e = index
            .iter()
            .find(|e| e["url"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not saved: {index:#?}"));
        assert_eq!(e["complete"], true);
        let got = std::fs::read(out.path().join(e["file"].as_str().unwrap())).unwrap();
        assert!(&got == body, "{name} differs from the served file");
    }
}
