//! Issue 5 against the external corpus (`../shared/captures`, or `SNIFFER_CORPUS`):
//! every response body TShark decoded (`ref/messages.tsv`) must be extracted byte-exact,
//! paired with its request, and suricata-verify's expectations (`expected/`) must hold.
//! Where a reference is wrong or we deliberately differ, the test says so and why.
//!
//! Skips, saying so, when the corpus is absent.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

mod common;
use common::{corpus, sha256_hex};

use sniffer::{
    capture::{self, Input},
    extract::{ExtractConfig, Extractor},
    flow::FlowConfig,
    http::{HttpAnalyzer, Limits},
    pipeline,
};

/// A saved file as `index.jsonl` lists it.
#[derive(Debug, Clone)]
struct Saved {
    url: String,
    /// `resp`, or `orig` for a request body.
    dir: String,
    status: u64,
    size: u64,
    sha256: String,
    complete: bool,
    gaps: serde_json::Value,
    file: String,
    merged_from: Vec<String>,
    /// For a part of a multipart body: (its number, the client's file name).
    part: Option<(u64, Option<String>)>,
    data: Vec<u8>,
}

/// Extract every response body of `capture` into a fresh directory; the index lines.
fn extract_all(capture: &Path) -> Vec<Saved> {
    let mut all = extract_both(capture);
    all.retain(|s| s.dir == "resp");
    all
}

/// Extract every body of `capture`, both ways, into a fresh directory; the index lines.
fn extract_both(capture: &Path) -> Vec<Saved> {
    let out = tempfile::tempdir().unwrap();
    let ex = Extractor::new(ExtractConfig {
        dir: out.path().to_owned(),
        globs: Vec::new(),
        all: true,
        ..ExtractConfig::default()
    })
    .unwrap();
    let mut analyzer = HttpAnalyzer::new(ex, Limits::default());
    let mut source = capture::open(&Input::Files(vec![capture.to_owned()])).unwrap();
    // A damaged tail (suricata-verify http-mime-truncated is cut mid-record) is reported
    // by the pipeline; everything before it still counts.
    let _ = pipeline::run(source.as_mut(), &FlowConfig::default(), &mut analyzer);
    analyzer.finish();
    analyzer.listener_mut().finish();
    // No body saved, no index: the directory is made with the first file.
    let index = std::fs::read_to_string(out.path().join("index.jsonl")).unwrap_or_default();
    let saved: Vec<Saved> = index
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let file = out.path().join(v["file"].as_str().unwrap());
            let bytes = std::fs::read(&file).unwrap();
            assert_eq!(bytes.len() as u64, v["size"].as_u64().unwrap(), "{file:?}");
            assert_eq!(sha256_hex(&bytes), v["sha256"], "{file:?}");
            Saved {
                url: v["url"].as_str().unwrap_or_default().to_owned(),
                dir: v["dir"].as_str().unwrap().to_owned(),
                status: v["status"].as_u64().unwrap_or(0),
                size: v["size"].as_u64().unwrap(),
                sha256: v["sha256"].as_str().unwrap().to_owned(),
                complete: v["complete"].as_bool().unwrap(),
                gaps: v["gaps"].clone(),
                file: v["file"].as_str().unwrap().to_owned(),
                merged_from: v
                    .get("merged_from")
                    .and_then(|m| m.as_array())
                    .map(|m| m.iter().map(|f| f.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default(),
                part: v["part"]
                    .as_u64()
                    .map(|p| (p, v["filename"].as_str().map(str::to_owned))),
                data: bytes,
            }
        })
        .collect();
    saved
}

/// Path and query of a URL (TShark writes some as full URLs, some as paths).
fn path_of(url: &str) -> &str {
    match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("/", |j| &url[i + 3 + j..]),
        None => url,
    }
}

/// `ref/messages.tsv` responses with a body: file → (uri, sha256).
fn tshark_responses(corpus: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(corpus.join("ref/messages.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, kind, uri, sha) = (
        col("file"),
        col("kind"),
        col("uri"),
        col("decoded_body_sha256"),
    );
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f[kind] == "resp" && !f[sha].is_empty() {
            out.entry(f[file].to_owned())
                .or_default()
                .push((f[uri].to_owned(), f[sha].to_owned()));
        }
    }
    out
}

#[test]
fn issue5_corpus_bodies_match_tshark_byte_exact_and_paired() {
    let Some(corpus) = corpus() else { return };
    let expected = tshark_responses(&corpus);
    let (mut total, mut found, mut paired) = (0, 0, 0);
    let mut missing = Vec::new();
    let mut mispaired: BTreeMap<String, usize> = BTreeMap::new();
    for (file, responses) in &expected {
        let saved = extract_all(&corpus.join(file));
        let mut by_sha: HashMap<&str, usize> = HashMap::new();
        let mut by_pair: HashMap<(&str, &str), usize> = HashMap::new();
        for s in &saved {
            *by_sha.entry(&s.sha256).or_default() += 1;
            *by_pair.entry((&s.sha256, path_of(&s.url))).or_default() += 1;
        }
        for (uri, sha) in responses {
            total += 1;
            match by_sha.get_mut(sha.as_str()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    found += 1;
                }
                _ => missing.push(format!("{file}: {uri} {sha}")),
            }
            match by_pair.get_mut(&(sha.as_str(), path_of(uri))) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    paired += 1;
                }
                _ => *mispaired.entry(file.clone()).or_default() += 1,
            }
        }
    }
    eprintln!("bodies: {found}/{total} byte-exact; paired with TShark's request: {paired}/{total}");
    // Deliberate difference: suricata-verify http-evader-311 sends
    // `Transfer-Encoding:\x7fchunked`. httparse cannot parse that line; TShark drops it and
    // saves the still-chunked bytes read until close (158 bytes: "4\r\nX5O!\r\n..."), which
    // is not the entity either way. Issue 5 says malformed framing is refused, never
    // guessed: we refuse it and count it.
    assert_eq!(
        missing,
        ["suricata-verify__http-evader-311__input.pcap: \
             http://evader.example.com/broken/eicar.txt/te%3A%5C177chunked;do_chunked \
             b82e6a661e10e5f1fe94cc21351257f3e95253c4001f595f11d31ee937121520"]
    );
    assert_eq!(total, 1250);
    // Known limit: in nDPI__1kxun.pcap, five mid-stream sessions (e.g. stream 51) miss the
    // server's first response; the reassembler declares that hole only when the session
    // ends, after every request was parsed, so the next responses pair one request early
    // (the bodies themselves are byte-exact). TShark pairs by frame order.
    //
    // Reference wrong: suricata-verify http-protocol-nodup pipelines 40 requests on one
    // connection; TShark's `http.response_for.uri` names the last request it had seen for
    // 37 of the 40 identical 404 responses (a known TShark limit with pipelining). The
    // packets pair them in order, as we do: 40 requests, 40 responses, in sequence.
    let mut want = BTreeMap::new();
    want.insert("nDPI__1kxun.pcap".to_owned(), 5);
    want.insert(
        "suricata-verify__http-protocol-nodup__input.pcap".to_owned(),
        37,
    );
    want.insert("suricata-verify__http-evader-311__input.pcap".to_owned(), 1);
    assert_eq!(mispaired, want);
}

/// suricata-verify `expected/*.yaml`, checked where they name file sizes and states.
#[test]
fn issue5_suricata_verify_expectations() {
    let Some(corpus) = corpus() else { return };
    let run = |name: &str| extract_all(&corpus.join(name));

    // http-gap-simple: three responses; /2 (Content-Length 70) loses 14 bytes.
    // Suricata expects the two others at 14 bytes; their Content-Length is 12 and the two
    // extra bytes are a CRLF after the body (TShark also says 12). We follow the header.
    let s = run("suricata-verify__http-gap-simple__input.pcap");
    let got: Vec<_> = s
        .iter()
        .map(|s| (path_of(&s.url).to_owned(), s.size, s.complete))
        .collect();
    assert_eq!(
        got,
        [
            ("/1".to_owned(), 12, true),
            ("/2".to_owned(), 70, false),
            ("/3".to_owned(), 12, true)
        ]
    );
    assert_eq!(s[1].gaps, serde_json::json!([[14, 28]]));

    // http-pipeline-files-with-gap: three files, one of 733 bytes truncated with gaps
    // (Suricata's sha256 there is of nothing; ours is of the zero padding, declared).
    let s = run("suricata-verify__http-pipeline-files-with-gap__input.pcap");
    assert_eq!(s.len(), 3);
    let truncated: Vec<_> = s.iter().filter(|s| !s.complete).collect();
    assert_eq!(truncated.len(), 1);
    assert_eq!(truncated[0].size, 733);
    assert_eq!(truncated[0].gaps, serde_json::json!([[0, 733]]));

    // http-brotli-ce: two files, 121 bytes (95 compressed) and 1743, both decoded.
    let s = run("suricata-verify__http-brotli-ce__input.pcap");
    let mut sizes: Vec<u64> = s.iter().map(|s| s.size).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [121, 1743]);

    // http-evader-181: `Content-Encoding:: gzip` over a plain body: the unknown coding
    // is kept as sent, so eicar.txt is saved whole.
    let s = run("suricata-verify__http-evader-181__input.pcap");
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].sha256,
        sha256_hex(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
    );

    // http-protocol-nodup: 40 transactions, one file each.
    assert_eq!(
        run("suricata-verify__http-protocol-nodup__input.pcap").len(),
        40
    );
    // bug-4810 (PPPoE), http-ipv6, 2008.mp4, the PDF: one response each, 200, complete.
    for name in [
        "suricata-verify__bug-4810__pppoe-session-http.pcap",
        "suricata-verify__http-ipv6__input.pcap",
        "suricata-verify__bug-2558-02__2008.mp4.pcap",
        "suricata-verify__filestore-v2.1-forced__suricata-update-pdf.pcap",
    ] {
        let s = run(name);
        assert_eq!(s.len(), 1, "{name}");
        assert!(s[0].complete && s[0].status == 200, "{name}: {s:?}");
    }
    // http-mime-truncated: its eight responses are all whole (Suricata's expected file is
    // a part of a multipart upload: see issue14_corpus_request_bodies).
    let s = run("suricata-verify__http-mime-truncated__input.pcap");
    assert_eq!(s.len(), 8);
    assert!(s.iter().all(|s| s.complete));
}

/// The command line: `--json` prints one parseable line per transaction, the default
/// `audio/*` saves only audio, and `--once` stops after the first saved file.
#[test]
fn issue5_cli_json_default_glob_and_once() {
    let Some(corpus) = corpus() else { return };
    let capture = corpus.join("nDPI__1kxun.pcap");
    let run = |args: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_sniffer"))
            .arg("-r")
            .arg(&capture)
            .arg("--out")
            .arg(out.path())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let index = std::fs::read_to_string(out.path().join("index.jsonl")).unwrap_or_default();
        let dirs: Vec<String> = index
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["dir"].as_str().unwrap().to_owned()
            })
            .collect();
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
            dirs,
        )
    };
    let (json, stderr, dirs) = run(&["--json", "--extract-all"]);
    let saved_all = dirs.len();
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each transaction line names its response's file and its request's files.
    let with_file = records.iter().filter(|r| !r["file"].is_null()).count();
    assert_eq!(with_file, dirs.iter().filter(|d| *d == "resp").count());
    let uploads: usize = records
        .iter()
        .map(|r| r["request_files"].as_array().unwrap().len())
        .sum();
    assert_eq!(uploads, dirs.iter().filter(|d| *d == "orig").count());
    assert!(uploads >= 8, "{uploads}");
    assert!(saved_all > 100, "{saved_all}");
    assert!(
        stderr.contains(&format!("{} HTTP transactions", records.len())),
        "{stderr}"
    );
    // Nothing in this capture is audio: the default saves nothing, but still lists all.
    let (text, _, saved_default) = run(&[]);
    assert!(saved_default.is_empty());
    assert_eq!(text.lines().count(), records.len());
    // --once: one file, and the capture stopped early.
    let (_, _, saved_once) = run(&["--extract-all", "--once"]);
    assert_eq!(saved_once.len(), 1);
}

/// zeek http/206_example_b: a Windows update fetched in two ranges (0-816895 and
/// 816896-1022919 of 1022920) on one connection, the second range again on another. The
/// parts are saved with their ranges, and merged once into the whole file.
#[test]
fn issue5_zeek_206_parts_merged_into_whole() {
    let Some(corpus) = corpus() else { return };
    let s = extract_all(&corpus.join("zeek__http__206_example_b.pcap"));
    assert_eq!(
        s.len(),
        4,
        "{:?}",
        s.iter().map(|s| &s.file).collect::<Vec<_>>()
    );
    let merged: Vec<&Saved> = s.iter().filter(|s| !s.merged_from.is_empty()).collect();
    assert_eq!(merged.len(), 1);
    let m = merged[0];
    assert_eq!(m.size, 1_022_920);
    assert!(m.complete);
    let whole: Vec<u8> = m
        .merged_from
        .iter()
        .flat_map(|f| s.iter().find(|p| &p.file == f).unwrap().data.clone())
        .collect();
    assert_eq!(whole, m.data);
    assert!(s.iter().filter(|p| p.status == 206).all(|p| p.complete));
}

/// `ref/messages.tsv` requests with a body: file → (uri, content type, sha256).
fn tshark_requests(corpus: &Path) -> BTreeMap<String, Vec<(String, String, String)>> {
    let text = std::fs::read_to_string(corpus.join("ref/messages.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, kind, uri, ct, sha) = (
        col("file"),
        col("kind"),
        col("uri"),
        col("content_type"),
        col("decoded_body_sha256"),
    );
    let mut out: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f[kind] == "req" && !f[sha].is_empty() {
            out.entry(f[file].to_owned()).or_default().push((
                f[uri].to_owned(),
                f[ct].to_owned(),
                f[sha].to_owned(),
            ));
        }
    }
    out
}

/// Issue 14: every request body TShark decoded is saved byte-exact with `--extract-all`,
/// with its direction and URL. (Multipart forms are saved part by part instead: their
/// parts are checked against Suricata's expectations in `issue14_corpus_form_parts`.)
#[test]
fn issue14_corpus_request_bodies_match_tshark() {
    let Some(corpus) = corpus() else { return };
    let (mut total, mut found) = (0, 0);
    let mut missing = Vec::new();
    for (file, requests) in tshark_requests(&corpus) {
        let saved = extract_both(&corpus.join(&file));
        let mut by_pair: HashMap<(&str, &str), usize> = HashMap::new();
        for s in saved.iter().filter(|s| s.dir == "orig") {
            *by_pair.entry((&s.sha256, path_of(&s.url))).or_default() += 1;
        }
        for (uri, ct, sha) in &requests {
            if ct.starts_with("multipart/") {
                continue;
            }
            total += 1;
            match by_pair.get_mut(&(sha.as_str(), path_of(uri))) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    found += 1;
                }
                _ => missing.push(format!("{file}: {uri} {sha}")),
            }
        }
    }
    eprintln!("request bodies: {found}/{total} byte-exact, paired with their URL");
    assert_eq!(total, 21);
    assert!(missing.is_empty(), "{missing:#?}");
}

/// Issue 14: the stealer's upload in suricata-verify http-mime-truncated is a
/// multipart/form-data POST of ten fields and a zip. Its file part is saved on its own,
/// named from its file name. Suricata's expected result is the file's first 101,422
/// bytes, TRUNCATED: its default request-body limit (100 KiB) cut it. The packets hold
/// the whole part (the close delimiter follows it, the zip's end-of-central-directory
/// record is there), so the part is saved whole and complete; its first 101,422 bytes
/// are Suricata's file, byte for byte.
#[test]
fn issue14_corpus_form_parts() {
    let Some(corpus) = corpus() else { return };
    let saved = extract_both(&corpus.join("suricata-verify__http-mime-truncated__input.pcap"));
    let parts: Vec<&Saved> = saved
        .iter()
        .filter(|s| s.dir == "orig" && s.part.is_some())
        .collect();
    assert_eq!(parts.len(), 11, "ten fields and a file");
    let zip = parts
        .iter()
        .find(|s| s.part.as_ref().is_some_and(|(_, f)| f.is_some()))
        .unwrap();
    assert_eq!(
        zip.part,
        Some((
            11,
            Some("US_b6a20f7b-65fe-4514-b5e1-bc5ca5f55b786602772428.zip".to_owned())
        ))
    );
    assert_eq!(
        zip.file,
        "up-0-7-p11-US_b6a20f7b-65fe-4514-b5e1-bc5ca5f55b786602772428.zip"
    );
    assert!(zip.complete);
    assert_eq!(zip.size, 133_722);
    assert_eq!(
        sha256_hex(&zip.data[..101_422]),
        "0adad78526c1b9c35f349a2cc7014c458aa87adcb9ec86f052fd8a9a80584e39"
    );
    // The zip's end of central directory: the last 22 bytes, no comment.
    assert_eq!(&zip.data[zip.data.len() - 22..][..4], b"PK\x05\x06");
    // The first POST's body is only a close delimiter: an empty form, nothing saved.
    assert!(
        !saved
            .iter()
            .any(|s| s.dir == "orig" && s.url.ends_with("/288")),
        "an empty form has no part to save"
    );
}
