//! Extraction tests: stream bytes in, files and index lines out.

use std::io::Write as _;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::{
    http::{HttpAnalyzer, Limits},
    listener::{Direction, EndReason, Listener as _, SessionInfo},
    wire::Timestamp,
};

fn sha(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn analyzer(dir: &Path, globs: &[&str], all: bool) -> HttpAnalyzer<Extractor> {
    let ex = Extractor::new(ExtractConfig {
        dir: dir.to_owned(),
        globs: globs
            .iter()
            .map(|g| glob::Pattern::new(g).unwrap())
            .collect(),
        all,
        community_id_seed: 0,
    })
    .unwrap();
    HttpAnalyzer::new(ex, Limits::default())
}

/// One session: the request bytes, then the response bytes (`None` = a lost run of that
/// many bytes), then the end.
fn run(a: &mut HttpAnalyzer<Extractor>, stream: u64, req: &[u8], resp: &[Result<&[u8], u64>]) {
    let s = SessionInfo {
        stream,
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:80".parse().unwrap(),
        start: Timestamp(0),
        midstream: false,
    };
    a.session_start(&s, Timestamp(1));
    a.data(&s, Direction::Orig, 0, req, Timestamp(1));
    let mut off = 0;
    for piece in resp {
        match piece {
            Ok(b) => {
                for c in b.chunks(1448) {
                    a.data(&s, Direction::Resp, off, c, Timestamp(2));
                    off += c.len() as u64;
                }
            }
            Err(n) => {
                a.gap(&s, Direction::Resp, off, *n, Timestamp(2));
                off += n;
            }
        }
    }
    a.session_end(&s, EndReason::Fin, Timestamp(3));
    // Files are written on the writer thread: wait for it before looking.
    a.listener().sync();
}

fn index(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("index.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn response(headers: &str, body: &[u8]) -> Vec<u8> {
    [format!("HTTP/1.1 200 OK\r\n{headers}\r\n").as_bytes(), body].concat()
}

#[test]
fn saves_matching_bodies_with_index_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = analyzer(tmp.path(), &["audio/*"], false);
    let mp3: Vec<u8> = [b"ID3\x04".as_slice(), &[0x5a; 100_000]].concat();
    let html = b"<html></html>";
    let resp = [
        response(
            &format!(
                "Content-Type: audio/mpeg\r\nContent-Length: {}\r\n",
                mp3.len()
            ),
            &mp3,
        ),
        response("Content-Type: text/html\r\nContent-Length: 13\r\n", html),
    ]
    .concat();
    run(
        &mut a,
        4,
        b"GET /music/track01.mp3 HTTP/1.1\r\nHost: example.org\r\n\r\nGET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n",
        &[Ok(&resp)],
    );
    let idx = index(tmp.path());
    assert_eq!(idx.len(), 1);
    let e = &idx[0];
    assert_eq!(e["file"], "4-0-track01.mp3");
    assert_eq!(e["url"], "http://example.org/music/track01.mp3");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["status"], 200);
    assert_eq!(e["content_type"], "audio/mpeg");
    assert_eq!(e["size"], mp3.len());
    assert_eq!(e["sha256"], sha(&mp3));
    assert_eq!(e["complete"], true);
    assert_eq!(
        std::fs::read(tmp.path().join("4-0-track01.mp3")).unwrap(),
        mp3
    );
    assert_eq!(a.listener().stats().saved, 1);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn never_overwrites_nor_follows_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("1-0-a.mp3"), b"old").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("1-0-a~1.mp3")).unwrap();
    let mut a = analyzer(&out, &["audio/*"], false);
    run(
        &mut a,
        1,
        b"GET /a.mp3 HTTP/1.1\r\n\r\n",
        &[Ok(&response(
            "Content-Type: audio/mpeg\r\nContent-Length: 3\r\n",
            b"new",
        ))],
    );
    assert_eq!(std::fs::read(out.join("1-0-a.mp3")).unwrap(), b"old");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert_eq!(std::fs::read(out.join("1-0-a~2.mp3")).unwrap(), b"new");
    assert_eq!(index(&out)[0]["file"], "1-0-a~2.mp3");
}

#[test]
fn hostile_uris_and_hosts_write_only_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = analyzer(&out, &[], true);
    let long = format!("/{}", "a".repeat(4096));
    let uris: Vec<Vec<u8>> = vec![
        b"/../../../../tmp/evil".to_vec(),
        b"/%2e%2e/%2e%2e/evil".to_vec(),
        b"/x%00y/..%2f..%2fevil".to_vec(),
        long.into_bytes(),
        b"/\xff\xfe/\xc3.mp3".to_vec(),
    ];
    for (i, uri) in uris.iter().enumerate() {
        let req = [
            b"GET ".as_slice(),
            uri,
            b" HTTP/1.1\r\nHost: ../../etc\0/\r\n\r\n",
        ]
        .concat();
        run(
            &mut a,
            i as u64,
            &req,
            &[Ok(&response(
                "Content-Type: audio/mpeg\r\nContent-Length: 2\r\n",
                b"hi",
            ))],
        );
    }
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // Only the files and the index, all plain names in `out`; nothing next to it.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    for n in &names {
        assert!(naming::is_safe(n), "{n:?}");
    }
    let idx = index(&out);
    // Requests httparse refuses (raw non-UTF-8 bytes) still give a saved response.
    assert_eq!(idx.len(), uris.len(), "{names:?}");
    assert!(idx.iter().all(|e| e["sha256"] == sha(b"hi")));
}

#[test]
fn gzip_saved_decoded_and_failure_keeps_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = analyzer(tmp.path(), &["text/*"], false);
    let plain = b"line of text\n".repeat(10_000);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&plain).unwrap();
    let gz = e.finish().unwrap();
    let mut chunked = Vec::new();
    for c in gz.chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let resp = [
        response(
            "Content-Type: text/plain\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            &chunked,
        ),
        response(
            "Content-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: 7\r\n",
            b"garbage",
        ),
    ]
    .concat();
    run(
        &mut a,
        0,
        b"GET /big.log HTTP/1.1\r\n\r\nGET /bad.txt HTTP/1.1\r\n\r\n",
        &[Ok(&resp)],
    );
    let idx = index(tmp.path());
    assert_eq!(idx.len(), 2);
    assert_eq!(idx[0]["sha256"], sha(&plain));
    assert_eq!(idx[0]["content_encoding"], "gzip");
    assert_eq!(idx[0]["complete"], true);
    assert_eq!(idx[1]["sha256"], sha(b"garbage"));
    assert!(
        idx[1]["notes"][0]
            .as_str()
            .unwrap()
            .contains("raw body is kept")
    );
    // The raw copy of the good body and the partial decoded bad one are gone.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["0-0-big.log.txt", "index.jsonl", "raw-0-1-bad.txt"]);
    assert_eq!(a.listener().stats().kept_raw, 1);
}

#[test]
fn gap_padded_and_declared() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = analyzer(tmp.path(), &["audio/*"], false);
    let head = response("Content-Type: audio/mpeg\r\nContent-Length: 10\r\n", b"");
    run(
        &mut a,
        2,
        b"GET /s.mp3 HTTP/1.1\r\n\r\n",
        &[Ok(&head), Ok(b"0123"), Err(3), Ok(b"789")],
    );
    let idx = index(tmp.path());
    assert_eq!(idx[0]["complete"], false);
    assert_eq!(idx[0]["gaps"], serde_json::json!([[4, 7]]));
    assert_eq!(
        std::fs::read(tmp.path().join("2-0-s.mp3")).unwrap(),
        [b"0123".as_slice(), &[0; 3], b"789"].concat()
    );
    assert_eq!(a.listener().stats().incomplete, 1);
}

#[test]
fn partial_content_saved_and_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = analyzer(tmp.path(), &["audio/*"], false);
    let whole: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
    let part = |first: usize, last: usize| {
        [
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Type: audio/mpeg\r\nETag: \"v1\"\r\nContent-Range: bytes {first}-{last}/5000\r\nContent-Length: {}\r\n\r\n",
                last + 1 - first
            )
            .as_bytes(),
            &whole[first..=last],
        ]
        .concat()
    };
    let req = |r: &str| format!("GET /t.mp3 HTTP/1.1\r\nHost: h\r\nRange: bytes={r}\r\n\r\n");
    run(&mut a, 0, req("0-1999").as_bytes(), &[Ok(&part(0, 1999))]);
    run(&mut a, 1, req("3000-").as_bytes(), &[Ok(&part(3000, 4999))]);
    assert_eq!(index(tmp.path()).len(), 2);
    run(
        &mut a,
        2,
        req("1500-3499").as_bytes(),
        &[Ok(&part(1500, 3499))],
    );
    let idx = index(tmp.path());
    assert_eq!(idx.len(), 4);
    assert_eq!(idx[0]["range"], "bytes=0-1999");
    assert_eq!(idx[0]["content_range"], "bytes 0-1999/5000");
    assert_eq!(idx[0]["sha256"], sha(&whole[..2000]));
    let merged = &idx[3];
    assert_eq!(merged["sha256"], sha(&whole));
    assert_eq!(merged["size"], 5000);
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 3);
    let name = merged["file"].as_str().unwrap();
    assert!(name.starts_with("full-"), "{name}");
    assert_eq!(std::fs::read(tmp.path().join(name)).unwrap(), whole);
    assert_eq!(a.listener().stats().merged, 1);
}

#[test]
fn interrupted_capture_flushes_open_bodies_as_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = analyzer(tmp.path(), &["audio/*"], false);
    let s = SessionInfo {
        stream: 9,
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:80".parse().unwrap(),
        start: Timestamp(0),
        midstream: false,
    };
    a.session_start(&s, Timestamp(0));
    a.data(
        &s,
        Direction::Orig,
        0,
        b"GET /x.mp3 HTTP/1.1\r\n\r\n",
        Timestamp(0),
    );
    let r = response(
        "Content-Type: audio/mpeg\r\nContent-Length: 1000000\r\n",
        b"partial",
    );
    a.data(&s, Direction::Resp, 0, &r, Timestamp(0));
    a.finish();
    a.listener_mut().finish();
    let idx = index(tmp.path());
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0]["complete"], false);
    assert_eq!(idx[0]["size"], 7);
    assert_eq!(idx[0]["gaps"], serde_json::json!([[7, 1000000]]));
    assert!(
        idx[0]["notes"][0]
            .as_str()
            .unwrap()
            .contains("end_of_capture")
    );
}

#[test]
fn malformed_wanted_response_refused_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = analyzer(tmp.path(), &["audio/*"], false);
    run(
        &mut a,
        0,
        b"GET /x.mp3 HTTP/1.1\r\n\r\n",
        &[Ok(&response(
            "Content-Type: audio/mpeg\r\nContent-Length: 3\r\nContent-Length: 4\r\n",
            b"abcd",
        ))],
    );
    assert!(index(tmp.path()).is_empty());
    assert_eq!(a.listener().stats().refused, 1);
    assert_eq!(a.stats().malformed, 1);
}
