//! Issue 11, live: a radio server in one namespace streams MPEG frames with a metadata
//! block every 16000 bytes and three title changes; curl (`Icy-MetaData: 1`) listens in
//! the other while `sniffer -i VETH` runs live there. The stream never ends by itself:
//! Ctrl-C stops the sniffer, which closes the last track. The tracks saved must
//! concatenate to exactly the audio sent, each with its title in its index line. Needs
//! root; skipped with a message otherwise.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use tests::{
    Child, Netns, VethPair,
    radio::{Programme, RadioServer},
    require_root,
};

/// The `sniffer` binary of this build (built with cargo if this run did not build it).
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

#[test]
fn issue11_radio_tracks_saved_live_concatenate_to_the_audio_sent() {
    if !require_root("issue11_radio_tracks_saved_live_concatenate_to_the_audio_sent") {
        return;
    }
    let server_ns = Netns::new("rs").unwrap();
    let client = Netns::new("rc").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(false).unwrap();
    let titles = [
        "Artist One - First Song",
        "Artist Two - Second Song",
        "Artist Three - Third Song",
        "Artist Four - Fourth Song",
    ];
    let programme = Programme {
        station: "Test Radio".into(),
        metaint: 16000,
        tracks: titles.iter().map(|t| ((*t).to_owned(), 300_000)).collect(),
        seed: 0x5EED,
    };
    let (audio, _) = programme.audio();
    let addr = SocketAddr::new(veth.a_v4.into(), 8000);
    let server = RadioServer::start(&server_ns, addr, programme).unwrap();

    // A directory the sniffer makes (and gives to the user it drops to).
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let bin = sniffer_bin();
    let mut cmd = client.command(&[
        bin.to_str().unwrap(),
        "-i",
        &veth.b_if,
        "--port",
        "8000",
        "--out",
        out.to_str().unwrap(),
    ]);
    cmd.env("RUST_LOG", "sniffer::capture::live=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut sniffer = Child::spawn(cmd).unwrap();
    let stderr = sniffer.inner().stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut said = String::new();
    loop {
        let start = said.len();
        assert!(
            reader.read_line(&mut said).unwrap() > 0,
            "sniffer exited: {said}"
        );
        if said[start..].contains("capturing on") {
            break;
        }
    }

    let url = format!("http://{addr}/stream");
    let curl = Child::spawn(client.command(&[
        "curl",
        "-sS",
        "--http1.1",
        "-H",
        "Icy-MetaData: 1",
        "-o",
        "/dev/null",
        &url,
    ]))
    .unwrap();
    let sent = server.wait_sent(Duration::from_secs(60)).unwrap();
    assert!(sent > audio.len());
    // Everything sent has reached the sniffer; the stream stays open, as radio does.
    thread::sleep(Duration::from_millis(700));
    sniffer.signal(libc::SIGINT).unwrap();
    let status = sniffer.wait_timeout(Duration::from_secs(20)).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(status.success(), "{status}: {said}{rest}");
    drop(curl);

    let index = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(got, titles, "{index}");
    let mut all = Vec::new();
    for (k, e) in entries.iter().enumerate() {
        let bytes = std::fs::read(out.join(e["file"].as_str().unwrap())).unwrap();
        assert_eq!(e["offset"], all.len() as u64);
        assert_eq!(e["track"], k as u64 + 1);
        assert_eq!(e["station"]["name"], "Test Radio");
        assert_eq!(e["complete"], k != 0 && k + 1 != entries.len(), "{e}");
        all.extend(bytes);
    }
    assert!(
        all == audio,
        "the tracks saved live differ from the audio sent ({} vs {} bytes)",
        all.len(),
        audio.len()
    );
    let last = entries.last().unwrap();
    assert!(last["notes"].to_string().contains("cut off"), "{last}");
}
