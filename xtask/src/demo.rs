//! `cargo xtask demo`: the main job, end to end, live (needs root).
//!
//! 1. two network namespaces joined by a veth pair;
//! 2. nginx in one serves a generated MP3-like file (ID3 tag, MPEG frames of noise);
//! 3. `target/debug/sniffer -i VETH --out DIR` runs live in the other;
//! 4. curl fetches the file plain, then gzip (`--compressed`), then chunked;
//! 5. curl listens to a radio station (an Icecast-style server in the same namespace,
//!    port 8000) that streams four titled tracks with ICY metadata and never hangs up;
//!    Ctrl-C stops the sniffer;
//! 6. the sniffer's output is printed, each saved file's sha256 is compared with the
//!    served file's, and the radio's track files, concatenated, with the audio sent.
//!
//! Everything it creates (namespaces, veth, nginx, temporary files) is removed by guards
//! on drop, also on failure.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args;
use tests::{
    Child, Netns, VethPair,
    audio::{AudioServer, fetches, write_mp3_like},
    radio::{Programme, RadioServer},
};

use crate::util::{cargo, is_root, run_loud, target_dir};

#[derive(Debug, Args)]
pub struct Options {
    /// Size of the served MP3-like file, in MiB.
    #[arg(long, default_value_t = 4)]
    pub size_mib: usize,
    /// Keep the saved files here (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.get(..64)
        .map(str::to_owned)
        .with_context(|| format!("sha256sum {}: {text}", path.display()))
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    if !is_root() {
        bail!("cargo xtask demo needs root: network namespaces, veth, and the eBPF filter");
    }
    // The live sniffer needs its eBPF program: build without AYA_BUILD_SKIP.
    run_loud(
        cargo()
            .args(["build", "--package", "sniffer", "--bin", "sniffer"])
            .env_remove("AYA_BUILD_SKIP"),
    )?;
    let sniffer = target_dir().join("debug/sniffer");
    if !sniffer.exists() {
        bail!("{} was not built", sniffer.display());
    }

    let work = tempfile::tempdir()?;
    let www = work.path().join("www");
    std::fs::create_dir(&www)?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| work.path().join("sniffed"));
    let song = www.join("song.mp3");
    write_mp3_like(&song, options.size_mib << 20, 0x5EED)?;
    let served = sha256(&song)?;
    println!(
        "demo: serving {} ({} bytes, sha256 {served})",
        song.display(),
        std::fs::metadata(&song)?.len()
    );

    let server_ns = Netns::new("ds")?;
    let client = Netns::new("dc")?;
    let veth = VethPair::new(&server_ns, &client)?;
    veth.set_offloads(false)?;
    let _server = AudioServer::start(&server_ns, &www)?;
    println!(
        "demo: nginx in netns {} at {}; sniffer in netns {} on {}",
        server_ns.name(),
        veth.a_v4,
        client.name(),
        veth.b_if
    );
    let programme = Programme {
        station: "Test Radio".into(),
        metaint: 16000,
        tracks: [
            "Artist One - First Song",
            "Artist Two - Second Song",
            "Artist Three - Third Song",
            "Artist Four - Fourth Song",
        ]
        .iter()
        .map(|t| ((*t).to_owned(), 400_000))
        .collect(),
        seed: 0x5EED,
    };
    let (radio_audio, _) = programme.audio();
    let radio_addr = std::net::SocketAddr::new(veth.a_v4.into(), 8000);
    let radio = RadioServer::start(&server_ns, radio_addr, programme.clone())?;
    println!(
        "demo: radio \"{}\" at http://{radio_addr}/stream: {} tracks, {} audio bytes, a metadata block every {} bytes",
        programme.station,
        programme.tracks.len(),
        radio_audio.len(),
        programme.metaint
    );

    let stdout_path = work.path().join("sniffer.out");
    let stderr_path = work.path().join("sniffer.err");
    let out_s = out.to_string_lossy().into_owned();
    let sniffer_s = sniffer.to_string_lossy().into_owned();
    let mut cmd = client.command(&[
        &sniffer_s, "-i", &veth.b_if, "--port", "80", "--port", "8000", "--out", &out_s,
    ]);
    cmd.stdout(Stdio::from(std::fs::File::create(&stdout_path)?))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path)?));
    println!(
        "demo: $ ip netns exec {} {sniffer_s} -i {} --port 80 --port 8000 --out {out_s}",
        client.name(),
        veth.b_if
    );
    let mut child = Child::spawn(cmd)?;
    // Give it a moment to load and attach the filter.
    thread::sleep(Duration::from_millis(1500));
    if let Some(status) = child.inner().try_wait()? {
        bail!(
            "the sniffer exited early ({status}):\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
    }

    let host = veth.a_v4.to_string();
    for (label, extra, url) in fetches(&host, "song.mp3") {
        let mut args = vec![
            "curl",
            "-sS",
            "--http1.1",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
        ];
        args.extend(extra.iter().copied());
        args.push(&url);
        println!("demo: curl {label}: $ {}", args.join(" "));
        client
            .run(&args)
            .with_context(|| format!("curl {label} failed"))?;
    }
    let radio_url = format!("http://{radio_addr}/stream");
    let listen = [
        "curl",
        "-sS",
        "--http1.1",
        "-H",
        "Icy-MetaData: 1",
        "-o",
        "/dev/null",
        &radio_url,
    ];
    println!(
        "demo: curl radio: $ {} (the stream stays open)",
        listen.join(" ")
    );
    let listener = Child::spawn(client.command(&listen))?;
    radio
        .wait_sent(Duration::from_secs(60))
        .context("the radio stream did not reach curl")?;
    thread::sleep(Duration::from_millis(700));
    println!("demo: Ctrl-C to the sniffer while the radio still plays");
    child.signal(libc::SIGINT)?;
    let status = child
        .wait_timeout(Duration::from_secs(15))
        .context("waiting for the sniffer to stop")?;

    println!("\n--- sniffer output ---");
    print!(
        "{}",
        std::fs::read_to_string(&stdout_path).unwrap_or_default()
    );
    print!(
        "{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    println!("--- end ---\n");
    drop(listener);
    if !status.success() {
        bail!("the sniffer failed: {status}");
    }

    let index = std::fs::read_to_string(out.join("index.jsonl"))
        .with_context(|| format!("{}/index.jsonl", out.display()))?;
    let mut equal = 0;
    let mut lines = 0;
    println!("served file                         sha256 {served}");
    let mut tracks = Vec::new();
    for line in index.lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        if e.get("station").is_some() {
            tracks.push(e);
            continue;
        }
        lines += 1;
        let file = out.join(e["file"].as_str().context("index line without a file")?);
        let got = sha256(&file)?;
        let same = got == served;
        equal += usize::from(same);
        println!(
            "{:<35} sha256 {got} {} (encoding {}, complete {})",
            e["file"].as_str().unwrap_or_default(),
            if same { "EQUAL" } else { "DIFFERENT" },
            e["content_encoding"].as_str().unwrap_or("none"),
            e["complete"]
        );
    }
    if lines != 3 || equal != 3 {
        bail!("expected 3 saved files equal to the served file; {equal} of {lines} are");
    }
    println!(
        "demo: all 3 transfers (plain, gzip, chunked) saved byte-exact in {}",
        out.display()
    );

    println!(
        "\nradio track                                                  bytes  complete  title"
    );
    let mut joined = Vec::new();
    for e in &tracks {
        let name = e["file"].as_str().context("index line without a file")?;
        let bytes = std::fs::read(out.join(name))?;
        println!(
            "{name:<58} {:>7}  {:<8}  {}",
            bytes.len(),
            e["complete"].as_bool().unwrap_or(false),
            e["title"].as_str().unwrap_or("-")
        );
        joined.extend(bytes);
    }
    let titles: Vec<&str> = tracks.iter().filter_map(|e| e["title"].as_str()).collect();
    let want: Vec<&str> = programme.tracks.iter().map(|t| t.0.as_str()).collect();
    if titles != want {
        bail!("radio: expected the titles {want:?}, the index has {titles:?}");
    }
    if joined != radio_audio {
        bail!(
            "radio: the {} tracks concatenated ({} bytes) differ from the audio sent ({} bytes)",
            tracks.len(),
            joined.len(),
            radio_audio.len()
        );
    }
    println!(
        "demo: the radio saved as {} titled tracks whose concatenation EQUALS the {} audio bytes sent (metadata removed)",
        tracks.len(),
        radio_audio.len()
    );
    Ok(())
}
