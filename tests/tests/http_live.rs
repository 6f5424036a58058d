//! Issue 5, the main job as an assertion, live: nginx serves a multi-megabyte MP3 in one
//! namespace; the sniffer captures on the client's veth end in the other; curl fetches
//! the file plain, gzip-encoded (chunked) and chunked. Every saved file must equal the
//! served bytes, and index.jsonl must say so (sha256, complete, encoding). IPv4 and IPv6.
//! Needs root; skipped with a message otherwise.

mod support;

use std::{path::Path, process::Command};

use sniffer::{
    capture::{KernelFilter, live::LiveOptions},
    extract::ExtractConfig,
};
use support::{Counted, Sniffer, curl, index};
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
            // Only the song is served: save everything, and check it was all audio.
            globs: Vec::new(),
            all: true,
            ..ExtractConfig::default()
        },
    );

    let host = if v6 {
        format!("[{}]", veth.a_v6)
    } else {
        veth.a_v4.to_string()
    };
    for (_, extra, url) in fetches(&host, "song.mp3") {
        let mut args: Vec<&str> = extra;
        args.push(&url);
        curl(&client, &args);
    }
    let Counted { http, saved, .. } = sniffer.stop();
    assert_eq!(http.transactions, 3, "{http:?}");
    assert_eq!(http.malformed, 0, "{http:?}");
    assert_eq!(saved.saved, 3, "{saved:?}");
    assert_eq!(saved.incomplete, 0, "{saved:?}");

    let entries = index(out.path());
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
