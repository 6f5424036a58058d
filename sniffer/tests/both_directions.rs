//! Issue 14: what crossed the wire, both ways. Generated captures (see `common::capture`)
//! run through the `sniffer` binary: uploads saved byte-exact with their direction,
//! forms split, HTTP/0.9 seen and saved, smuggled requests reported, bad input noted.

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use common::{
    capture::{Capture, Side, mp3_frames},
    sha256_hex,
};
use serde_json::Value;

struct Run {
    _tmp: tempfile::TempDir,
    out: PathBuf,
    /// index.jsonl.
    index: Vec<Value>,
    /// The `--json` transaction lines.
    transactions: Vec<Value>,
    stderr: String,
}

impl Run {
    fn file(&self, e: &Value) -> Vec<u8> {
        std::fs::read(self.out.join(e["file"].as_str().unwrap())).unwrap()
    }

    /// Every file in the output directory but the index, sorted.
    fn files_on_disk(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.out)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n != "index.jsonl")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn validator(kind: &str) -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/schema/{kind}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Each line of `text` as JSON, validated against the `kind` schema.
fn lines(text: &str, kind: &str) -> Vec<Value> {
    let v = validator(kind);
    text.lines()
        .map(|l| {
            let j: Value = serde_json::from_str(l).unwrap();
            let errors: Vec<String> = v.iter_errors(&j).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{l}");
            j
        })
        .collect()
}

/// Write `cap`, run `sniffer -r CAP --out DIR --json ARGS`.
fn sniff(cap: &Capture, args: &[&str]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("cap.pcap");
    cap.write(&pcap);
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .arg("-r")
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sniffer failed: {stderr}");
    let index = lines(
        &std::fs::read_to_string(out.join("index.jsonl")).unwrap_or_default(),
        "file",
    );
    let transactions = lines(&String::from_utf8(o.stdout).unwrap(), "transaction");
    Run {
        _tmp: tmp,
        out,
        index,
        transactions,
        stderr,
    }
}

/// `request` then `response` in one session on `port`, then FIN.
fn session(cap: &mut Capture, port: u16, request: &[u8], response: &[u8]) {
    let mut s = cap.session(port, 80);
    cap.send(&mut s, Side::Client, request);
    cap.send(&mut s, Side::Server, response);
    cap.close(&mut s);
}

const CREATED: &[u8] =
    b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn issue14_an_uploaded_mp3_is_saved_byte_exact_by_default_with_its_direction() {
    let song = mp3_frames(300_000, 7);
    let mut cap = Capture::default();
    let mut post = format!(
        "POST /upload/song.mp3 HTTP/1.1\r\nHost: up.test\r\nContent-Type: audio/mpeg\r\nContent-Length: {}\r\n\r\n",
        song.len()
    )
    .into_bytes();
    post.extend_from_slice(&song);
    session(&mut cap, 40000, &post, CREATED);
    // A PUT with Expect: 100-continue, chunked, typed generically: saved because its
    // bytes are MP3.
    let mut s = cap.session(40001, 80);
    cap.send(
        &mut s,
        Side::Client,
        b"PUT /put HTTP/1.1\r\nHost: up.test\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    );
    cap.send(&mut s, Side::Server, b"HTTP/1.1 100 Continue\r\n\r\n");
    let mut chunked = Vec::new();
    for piece in song.chunks(70_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    cap.send(&mut s, Side::Client, &chunked);
    cap.send(&mut s, Side::Server, CREATED);
    cap.close(&mut s);

    let r = sniff(&cap, &[]);
    assert_eq!(r.index.len(), 2, "{:#?}", r.index);
    for e in &r.index {
        assert_eq!(e["dir"], "orig");
        assert_eq!(
            e["status"],
            Value::Null,
            "saved before the response is known"
        );
        assert_eq!(e["sha256"], sha256_hex(&song));
        assert_eq!(r.file(e), song);
        assert!(e["file"].as_str().unwrap().starts_with("up-"), "{e}");
        assert_eq!(e["complete"], true);
    }
    assert_eq!(r.index[0]["content_type"], "audio/mpeg");
    assert_eq!(r.index[0]["method"], "POST");
    assert_eq!(r.index[1]["detected_type"], "audio/mpeg");
    assert_eq!(r.index[1]["method"], "PUT");
    assert_eq!(r.transactions.len(), 2);
    for (t, e) in r.transactions.iter().zip(&r.index) {
        assert_eq!(t["status"], 201);
        assert_eq!(t["request_size"], song.len());
        assert_eq!(t["request_files"], serde_json::json!([e["file"]]));
        assert_eq!(t["file"], Value::Null, "the response is not audio");
    }
    assert_eq!(r.transactions[0]["request_content_type"], "audio/mpeg");
}

#[test]
fn issue14_form_fields_are_saved_only_with_extract_all() {
    let form = b"user=alice&comment=hello+world";
    let mut cap = Capture::default();
    let mut post = format!(
        "POST /form HTTP/1.1\r\nHost: f.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    )
    .into_bytes();
    post.extend_from_slice(form);
    session(&mut cap, 40000, &post, CREATED);
    for args in [&[][..], &["--extract", "application/*"]] {
        let r = sniff(&cap, args);
        assert!(r.index.is_empty(), "{args:?}: {:#?}", r.index);
        assert_eq!(r.transactions[0]["request_size"], form.len());
    }
    let r = sniff(&cap, &["--extract-all"]);
    let up: Vec<&Value> = r.index.iter().filter(|e| e["dir"] == "orig").collect();
    assert_eq!(up.len(), 1, "{:#?}", r.index);
    assert_eq!(r.file(up[0]), form);
}

#[test]
fn issue14_http09_is_reported_and_its_audio_saved() {
    let song = mp3_frames(100_000, 3);
    let mut cap = Capture::default();
    session(&mut cap, 40000, b"GET /old.mp3\r\n", &song);
    // Garbage that starts like a request.
    session(
        &mut cap,
        40001,
        b"GET \x00\x01\x02\xfe\xff\x80\r\n\x00\x00",
        b"",
    );
    let r = sniff(&cap, &[]);
    assert_eq!(r.transactions.len(), 2, "{:#?}", r.transactions);
    let t = &r.transactions[0];
    assert_eq!(t["version"], "0.9");
    assert_eq!(t["status"], Value::Null);
    assert_eq!(t["size"], song.len());
    assert_eq!(t["complete"], true);
    assert!(
        t["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("HTTP/0.9 request")
    );
    assert_eq!(r.index.len(), 1);
    assert_eq!(r.index[0]["detected_type"], "audio/mpeg");
    assert_eq!(r.file(&r.index[0]), song);
    let g = &r.transactions[1];
    assert!(
        g["malformed"].as_str().unwrap().contains("not HTTP/0.9"),
        "{g}"
    );
    assert_eq!(r.files_on_disk().len(), 1);
}

/// The text line tells it too.
#[test]
fn issue14_http09_and_smuggling_in_the_text_output() {
    let mut cap = Capture::default();
    session(&mut cap, 40000, b"GET /old.txt\r\n", b"plain old text");
    let admin = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut post = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        5 + admin.len()
    )
    .into_bytes();
    post.extend_from_slice(admin);
    session(
        &mut cap,
        40001,
        &post,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("cap.pcap");
    cap.write(&pcap);
    let o = Command::new(env!("CARGO_BIN_EXE_sniffer"))
        .arg("-r")
        .arg(&pcap)
        .args(["--out", tmp.path().join("o").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("GET x.test") || lines[0].contains(" HTTP/0.9 "),
        "{text}"
    );
    assert!(lines[0].contains("(HTTP/0.9 request"), "{text}");
    assert!(
        lines[1].contains("(ambiguous framing: Content-Length"),
        "{text}"
    );
    assert!(
        lines[2].contains("/admin 403") && lines[2].contains("[smuggled]"),
        "{text}"
    );
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(stderr.contains("1 smuggled request"), "{stderr}");
    assert!(
        stderr.contains("1 message with ambiguous framing"),
        "{stderr}"
    );
    assert!(stderr.contains("1 HTTP/0.9 request"), "{stderr}");
}

#[test]
fn issue14_te_cl_smuggled_request_is_reported_in_json() {
    let inner = b"GPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1";
    let mut post =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    post.extend_from_slice(format!("{:x}\r\n", inner.len()).as_bytes());
    post.extend_from_slice(inner);
    post.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut cap = Capture::default();
    session(
        &mut cap,
        40000,
        &post,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    let r = sniff(&cap, &[]);
    let by_method: BTreeMap<&str, &Value> = r
        .transactions
        .iter()
        .map(|t| (t["method"].as_str().unwrap(), t))
        .collect();
    assert_eq!(by_method.len(), 2, "{:#?}", r.transactions);
    assert_eq!(by_method["GPOST"]["smuggled"], true);
    assert_eq!(by_method["GPOST"]["status"], Value::Null);
    assert_eq!(by_method["POST"]["smuggled"], false);
    assert_eq!(by_method["POST"]["status"], 200);
    assert_eq!(by_method["POST"]["request_size"], inner.len());
    assert!(r.stderr.contains("1 smuggled request"), "{}", r.stderr);
}
