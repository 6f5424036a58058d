//! Issue 5 at scale: a real capture of nginx and curl with known ground truth, from
//! `../shared/tools/http-capture-gen` (full 200s, gzip + chunked, 206 ranges, HTTP/1.0,
//! pipelining, random loss with retransmissions and reordering). Every response must be
//! recovered byte-exact, as the generator's own `check-extraction.py` counts it.
//!
//! Needs root (network namespaces) and the generator; skips, saying so, otherwise.

mod common;

use std::{path::Path, process::Command};

#[test]
fn issue5_generated_capture_every_response_recovered_byte_exact() {
    let generator = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tools/http-capture-gen")
        .canonicalize();
    let Ok(generator) = generator else {
        common::skip("../shared/tools/http-capture-gen is absent");
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("generating a capture needs root (network namespaces)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("gen.pcap");
    let status = Command::new(generator.join("generate.sh"))
        .args(["--out".as_ref(), pcap.as_os_str()])
        .args(["--bytes", "30000000"])
        .status()
        .expect("run generate.sh");
    assert!(status.success(), "generate.sh failed: {status}");

    let out = tmp.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .args(["-r".as_ref(), pcap.as_os_str()])
        .args(["--out".as_ref(), out.as_os_str()])
        .args(["--extract-all", "--json"])
        .output()
        .expect("run sniffer");
    assert!(
        run.status.success(),
        "sniffer failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines = String::from_utf8(run.stdout).unwrap();

    // The map check-extraction.py wants: which request each saved file answers. Files
    // merged from 206 parts answer no single request and are left out.
    let index = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    let mut map = String::new();
    let mut saved = 0;
    for line in index.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e.get("merged_from").is_some() {
            continue;
        }
        saved += 1;
        assert_eq!(e["complete"], true, "{line}");
        let range = if e["status"] == 206 {
            e["range"].clone()
        } else {
            serde_json::Value::Null
        };
        map += &serde_json::json!({
            "path": e["url"], "status": e["status"], "file": e["file"], "range": range,
        })
        .to_string();
        map.push('\n');
    }
    let map_path = tmp.path().join("map.jsonl");
    std::fs::write(&map_path, map).unwrap();

    let check = Command::new("python3")
        .arg(generator.join("check-extraction.py"))
        .arg(&pcap)
        .arg(&out)
        .args(["--map".as_ref(), map_path.as_os_str()])
        .output()
        .expect("run check-extraction.py");
    let report = String::from_utf8_lossy(&check.stdout);
    eprintln!("{report}");
    let result = report
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line");
    let field = |name: &str| -> u64 {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (recovered, expected) = (field("recovered"), field("expected"));
    assert!(expected > 50, "{result}");
    assert_eq!(recovered, expected, "{result}");
    assert_eq!(field("bytes_recovered"), field("bytes_expected"));
    assert!(check.status.success());
    // One transaction line per response, and one saved file per response.
    assert_eq!(lines.lines().count() as u64, expected);
    assert_eq!(saved, expected);
}
