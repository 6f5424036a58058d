//! Issue 13, `-i any`: every device at once. In the client's namespace the sniffer listens
//! on `any` while curl fetches one song from nginx across the veth pair and another from a
//! server on the namespace's own loopback. Both must be saved byte-exact, and loopback's
//! packets must be seen once (libpcap skips their outgoing copies): no byte counted as
//! retransmitted.
//! Needs root; skipped with a message otherwise.

mod support;

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    time::Duration,
};

use sniffer::{
    capture::{
        KernelFilter,
        live::{ANY, LiveOptions},
    },
    extract::ExtractConfig,
};
use support::{Counted, Sniffer, curl, index};
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
    let out = tempfile::tempdir().unwrap();
    let sniffer = Sniffer::start(
        &client,
        &config,
        ExtractConfig {
            dir: out.path().to_owned(),
            globs: vec![glob::Pattern::new("audio/*").unwrap()],
            ..ExtractConfig::default()
        },
    );
    for url in [
        format!("http://{}/far.mp3", veth.a_v4),
        "http://127.0.0.1/near.mp3".to_owned(),
    ] {
        curl(&client, &[&url]);
    }
    let Counted {
        pipeline: stats,
        http,
        saved,
    } = sniffer.stop();
    assert_eq!(http.transactions, 2, "{http:?}");
    assert_eq!(saved.saved, 2, "{saved:?}");
    assert_eq!(saved.incomplete, 0, "{saved:?}");
    assert_eq!(
        stats.flow.retransmitted, 0,
        "a packet seen twice: {:?}",
        stats.flow
    );
    assert_eq!(stats.flow.gaps, 0, "{:?}", stats.flow);

    let index = index(out.path());
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
