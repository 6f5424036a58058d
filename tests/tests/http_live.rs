//! Issue 5, the main job as an assertion, live: nginx serves a multi-megabyte MP3 in one
//! namespace; the sniffer captures on the client's veth end in the other; curl fetches
//! the file plain, gzip-encoded (chunked) and chunked. Every saved file must equal the
//! served bytes, and index.jsonl must say so (sha256, complete, encoding). IPv4 and IPv6.
//! Needs root; skipped with a message otherwise.

use std::{path::Path, process::Command, thread, time::Duration};

use sniffer::{
    capture::live::{LiveOptions, LiveSource},
    extract::{ExtractConfig, ExtractStats, Extractor},
    flow::FlowConfig,
    http::{HttpAnalyzer, HttpStats, Limits},
    pipeline,
};
use tests::{
    Netns, VethPair,
    audio::{AudioServer, fetches, write_mp3_like},
    require_root,
};

const SONG_LEN: usize = 3 * 1024 * 1024 + 777;

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn main_job(v6: bool) {
    let server_ns = Netns::new("hs").unwrap();
    let client = Netns::new("hc").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(false).unwrap();
    let www = tempfile::tempdir().unwrap();
    let song = www.path().join("song.mp3");
    let body = write_mp3_like(&song, SONG_LEN, 42 + u64::from(v6)).unwrap();
    let song_sha = sha256_of(&song);
    let _server = AudioServer::start(&server_ns, www.path()).unwrap();

    let config = LiveOptions {
        iface: veth.b_if.clone(),
        ports: vec![80],
        all_tcp: false,
        snaplen: 65536,
        ring_bytes: 64 << 20,
    };
    let source = client.enter(|| LiveSource::open(&config)).unwrap().unwrap();
    let stop = source.stop_handle();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_owned();
    let sniffer = thread::spawn(move || -> (HttpStats, ExtractStats) {
        let mut source = source;
        let ex = Extractor::new(ExtractConfig {
            dir: out_dir,
            // Only the song is served: save everything, and check it was all audio.
            globs: Vec::new(),
            all: true,
            community_id_seed: 0,
        })
        .unwrap();
        let mut analyzer = HttpAnalyzer::new(ex, Limits::default());
        pipeline::run(&mut source, &FlowConfig::default(), &mut analyzer).unwrap();
        analyzer.finish();
        let stats = analyzer.stats().clone();
        let mut ex = analyzer.into_listener();
        ex.finish();
        (stats, ex.stats())
    });

    let host = if v6 {
        format!("[{}]", veth.a_v6)
    } else {
        veth.a_v4.to_string()
    };
    for (label, extra, url) in fetches(&host, "song.mp3") {
        let mut args = vec![
            "curl",
            "-sS",
            "--http1.1",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
        ];
        args.extend(extra);
        args.push(&url);
        let done = client.run(&args);
        assert!(done.is_ok(), "curl {label}: {done:?}");
    }
    // The last ACKs and FINs reach the ring buffer within moments.
    thread::sleep(Duration::from_millis(500));
    stop.stop();
    let (http, saved) = sniffer.join().unwrap();
    assert_eq!(http.transactions, 3, "{http:?}");
    assert_eq!(http.malformed, 0, "{http:?}");
    assert_eq!(saved.saved, 3, "{saved:?}");
    assert_eq!(saved.incomplete, 0, "{saved:?}");

    let index = std::fs::read_to_string(out.path().join("index.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3);
    let mut encodings = Vec::new();
    for e in &entries {
        let file = out.path().join(e["file"].as_str().unwrap());
        assert!(
            std::fs::read(&file).unwrap() == body,
            "{} differs from the served file",
            file.display()
        );
        assert_eq!(e["sha256"], song_sha.as_str());
        assert_eq!(e["size"], body.len());
        assert_eq!(e["complete"], true);
        assert_eq!(e["content_type"], "audio/mpeg");
        assert_eq!(e["status"], 200);
        encodings.push(e["content_encoding"].as_str().map(str::to_owned));
    }
    encodings.sort();
    assert_eq!(encodings, [None, None, Some("gzip".to_owned())]);
}

#[test]
fn issue5_main_job_live_ipv4() {
    if require_root("issue5_main_job_live_ipv4") {
        main_job(false);
    }
}

#[test]
fn issue5_main_job_live_ipv6() {
    if require_root("issue5_main_job_live_ipv6") {
        main_job(true);
    }
}
