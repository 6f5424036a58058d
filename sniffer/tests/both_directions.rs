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

/// A multipart body of `parts` (head lines, data) with `boundary`, closed or not.
fn multipart(boundary: &str, parts: &[(&str, &[u8])], close: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (head, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n{head}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    if close {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    body
}

/// A request with `body`, of type `content_type`.
fn request(method: &str, uri: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {uri} HTTP/1.1\r\nHost: up.test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

const BOUNDARY: &str = "------------------------d74496d66958873e";

fn form_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

fn orig(r: &Run) -> Vec<&Value> {
    r.index.iter().filter(|e| e["dir"] == "orig").collect()
}

#[test]
fn issue14_multipart_form_parts_are_files_with_their_own_types_and_safe_names() {
    let song = mp3_frames(200_000, 11);
    let picture = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR rest of a picture".to_vec();
    let blob = mp3_frames(50_000, 12);
    let body = multipart(
        BOUNDARY,
        &[
            ("Content-Disposition: form-data; name=\"title\"", b"My song"),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"song.mp3\"\r\nContent-Type: audio/mpeg",
                &song,
            ),
            (
                "Content-Disposition: form-data; name=\"pic\"; filename=\"cover.png\"\r\nContent-Type: image/png",
                &picture,
            ),
            // A generic type: the bytes decide. A name that tries to leave the directory.
            (
                "Content-Disposition: form-data; name=\"other\"; filename=\"../../../etc/evil\0.mp3\"\r\nContent-Type: application/octet-stream",
                &blob,
            ),
        ],
        true,
    );
    let mut cap = Capture::default();
    session(
        &mut cap,
        40000,
        &request("POST", "/upload", &form_type(BOUNDARY), &body),
        CREATED,
    );

    // By default: the audio parts only.
    let r = sniff(&cap, &[]);
    let up = orig(&r);
    assert_eq!(up.len(), 2, "{:#?}", r.index);
    assert_eq!(up[0]["file"], "up-0-0-p2-song.mp3");
    assert_eq!(up[0]["part"], 2);
    assert_eq!(up[0]["form_field"], "file");
    assert_eq!(up[0]["filename"], "song.mp3");
    assert_eq!(up[0]["content_type"], "audio/mpeg");
    assert_eq!(up[0]["complete"], true);
    assert_eq!(up[0]["sha256"], sha256_hex(&song));
    assert_eq!(r.file(up[0]), song);
    let evil = up[1];
    assert_eq!(evil["file"], "up-0-0-p4-evil_.mp3");
    assert_eq!(evil["filename"], "../../../etc/evil\0.mp3");
    assert_eq!(evil["detected_type"], "audio/mpeg");
    assert!(
        evil["notes"][0]
            .as_str()
            .unwrap()
            .contains("not a safe name"),
        "{evil}"
    );
    assert_eq!(r.file(evil), blob);
    assert_eq!(
        r.files_on_disk(),
        ["up-0-0-p2-song.mp3", "up-0-0-p4-evil_.mp3"]
    );
    let t = &r.transactions[0];
    assert_eq!(
        t["request_files"],
        serde_json::json!(["up-0-0-p2-song.mp3", "up-0-0-p4-evil_.mp3"])
    );

    // Everything: the field and the picture too, each byte-exact.
    let r = sniff(&cap, &["--extract-all"]);
    let up = orig(&r);
    let by_part: BTreeMap<u64, &Value> = up
        .iter()
        .map(|e| (e["part"].as_u64().unwrap(), *e))
        .collect();
    assert_eq!(by_part.len(), 4, "{:#?}", r.index);
    assert_eq!(r.file(by_part[&1]), b"My song");
    assert_eq!(by_part[&1]["form_field"], "title");
    assert_eq!(by_part[&1]["filename"], Value::Null);
    assert_eq!(r.file(by_part[&2]), song);
    assert_eq!(r.file(by_part[&3]), picture);
    assert_eq!(by_part[&3]["file"], "up-0-0-p3-cover.png");
    assert_eq!(r.file(by_part[&4]), blob);
}

#[test]
fn issue14_bad_multipart_bodies_are_noted_and_keep_what_is_known() {
    let song = mp3_frames(60_000, 21);
    let file_head = "Content-Disposition: form-data; name=\"f\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg";
    let mut cap = Capture::default();
    // 1. No final boundary.
    let open = multipart(BOUNDARY, &[(file_head, &song)], false);
    session(
        &mut cap,
        40000,
        &request("POST", "/open", &form_type(BOUNDARY), &open),
        CREATED,
    );
    // 2. A boundary of 71 characters: saved as it is, noted.
    let long = "b".repeat(71);
    let long_body = multipart(&long, &[(file_head, &song)], true);
    session(
        &mut cap,
        40001,
        &request("POST", "/long", &form_type(&long), &long_body),
        CREATED,
    );
    // 3. 100,000 parts, fields without file names.
    let mut many = Vec::new();
    for i in 0..100_000 {
        many.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n")
                .as_bytes(),
        );
    }
    many.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    session(
        &mut cap,
        40002,
        &request("POST", "/many", &form_type(BOUNDARY), &many),
        CREATED,
    );
    let r = sniff(&cap, &[]);
    let up = orig(&r);
    assert_eq!(up.len(), 2, "{:#?}", r.index);

    let cut = up
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/open"))
        .unwrap();
    // The part is what was sent (with the line end that would have started the final
    // delimiter: nothing says it is not data), marked as possibly cut.
    assert_eq!(cut["complete"], false);
    assert!(
        cut["notes"].to_string().contains("no final boundary"),
        "{cut}"
    );
    let kept = r.file(cut);
    assert!(
        kept == [&song[..], b"\r\n"].concat(),
        "{} bytes",
        kept.len()
    );

    let whole = up
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/long"))
        .unwrap();
    assert!(
        whole["notes"].to_string().contains("longer than the 70"),
        "{whole}"
    );
    assert!(r.file(whole) == long_body, "{whole}");

    let t = r
        .transactions
        .iter()
        .find(|t| t["url"].as_str().unwrap().ends_with("/many"))
        .unwrap();
    assert!(
        t["notes"]
            .to_string()
            .contains("90000 parts beyond the limit of 10000"),
        "{t}"
    );
    // Nothing outside the directory, nothing else inside.
    assert_eq!(r.files_on_disk().len(), 2, "{:?}", r.files_on_disk());
}

/// A 206 multipart/byteranges response with `parts` ((first, last) of `resource`).
fn byteranges(resource: &[u8], parts: &[(usize, usize)], mime: &str) -> Vec<u8> {
    let b = "3d6b6a416f9b5";
    let mut body = Vec::new();
    for &(first, last) in parts {
        body.extend_from_slice(
            format!(
                "\r\n--{b}\r\nContent-Type: {mime}\r\nContent-Range: bytes {first}-{last}/{}\r\n\r\n",
                resource.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(&resource[first..=last]);
    }
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let mut r = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary={b}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    r
}

fn single_range(resource: &[u8], first: usize, last: usize, mime: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Type: {mime}\r\nContent-Range: bytes {first}-{last}/{}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n\r\n",
        resource.len(),
        last - first + 1
    )
    .into_bytes();
    r.extend_from_slice(&resource[first..=last]);
    r
}

#[test]
fn issue14_byteranges_parts_are_placed_and_merged_with_single_ranges() {
    let song = mp3_frames(40_000, 31);
    let n = song.len();
    let mut cap = Capture::default();
    session(
        &mut cap,
        40000,
        b"GET /a/song.mp3 HTTP/1.1\r\nHost: r.test\r\nRange: bytes=0-9999,20000-29999\r\n\r\n",
        &byteranges(&song, &[(0, 9_999), (20_000, 29_999)], "audio/mpeg"),
    );
    session(
        &mut cap,
        40001,
        b"GET /a/song.mp3 HTTP/1.1\r\nHost: r.test\r\nRange: bytes=10000-19999\r\n\r\n",
        &single_range(&song, 10_000, 19_999, "audio/mpeg"),
    );
    session(
        &mut cap,
        40002,
        b"GET /a/song.mp3 HTTP/1.1\r\nHost: r.test\r\nRange: bytes=30000-\r\n\r\n",
        &single_range(&song, 30_000, n - 1, "audio/mpeg"),
    );
    let r = sniff(&cap, &[]);
    let parts: Vec<&Value> = r.index.iter().filter(|e| e["part"].is_u64()).collect();
    assert_eq!(parts.len(), 2, "{:#?}", r.index);
    assert_eq!(parts[0]["content_range"], format!("bytes 0-9999/{n}"));
    assert_eq!(r.file(parts[0]), &song[..10_000]);
    assert_eq!(parts[1]["content_range"], format!("bytes 20000-29999/{n}"));
    assert_eq!(r.file(parts[1]), &song[20_000..30_000]);
    assert_eq!(parts[1]["status"], 206);
    let merged: Vec<&Value> = r
        .index
        .iter()
        .filter(|e| !e["merged_from"].is_null())
        .collect();
    assert_eq!(merged.len(), 1, "{:#?}", r.index);
    assert_eq!(merged[0]["size"], n);
    assert_eq!(merged[0]["complete"], true);
    assert_eq!(merged[0]["merged_from"].as_array().unwrap().len(), 4);
    assert_eq!(merged[0]["sha256"], sha256_hex(&song));
    assert_eq!(r.file(merged[0]), song);
}

#[test]
fn issue14_byteranges_that_disagree_or_lie_are_noted() {
    let song = mp3_frames(20_000, 41);
    let n = song.len();
    let mut other = song.clone();
    for b in &mut other[5_000..6_000] {
        *b ^= 0xff;
    }
    let mut cap = Capture::default();
    // The first response says the bytes 0-9999; a second, 5000-n, disagrees on 5000-5999.
    session(
        &mut cap,
        40000,
        b"GET /s.mp3 HTTP/1.1\r\nHost: r.test\r\nRange: bytes=0-9999\r\n\r\n",
        &byteranges(&song, &[(0, 9_999)], "audio/mpeg"),
    );
    session(
        &mut cap,
        40001,
        b"GET /s.mp3 HTTP/1.1\r\nHost: r.test\r\nRange: bytes=5000-\r\n\r\n",
        &byteranges(&other, &[(5_000, n - 1)], "audio/mpeg"),
    );
    // A part beyond the stated length.
    let mut liar = byteranges(&song, &[(0, 999)], "audio/mpeg");
    let at = liar
        .windows(b"bytes 0-999/".len())
        .position(|w| w == b"bytes 0-999/")
        .unwrap();
    let stated = format!("bytes 0-999/{n}");
    liar.splice(
        at..at + stated.len(),
        b"bytes 0-999/0500".iter().copied().take(stated.len()),
    );
    session(
        &mut cap,
        40002,
        b"GET /liar.mp3 HTTP/1.1\r\nHost: r.test\r\nRange: bytes=0-999\r\n\r\n",
        &liar,
    );
    let r = sniff(&cap, &[]);
    let merged: Vec<&Value> = r
        .index
        .iter()
        .filter(|e| !e["merged_from"].is_null())
        .collect();
    assert_eq!(merged.len(), 1, "{:#?}", r.index);
    assert!(
        merged[0]["notes"].to_string().contains("disagree"),
        "{}",
        merged[0]
    );
    // First saved wins.
    assert_eq!(r.file(merged[0]), song);
    let lie = r
        .index
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/liar.mp3"))
        .unwrap();
    assert!(
        lie["notes"]
            .to_string()
            .contains("within the stated length"),
        "{lie}"
    );
    assert!(r.file(lie) == song[..1000], "{lie}");
    assert_eq!(
        r.index
            .iter()
            .filter(|e| !e["merged_from"].is_null())
            .count(),
        1
    );
}

/// A capture gap inside a form's first file: that part ends at the gap, marked
/// incomplete with a note; the next part is found at its boundary and saved whole.
#[test]
fn issue14_a_gap_cuts_one_part_and_the_next_is_saved_whole() {
    let one = mp3_frames(40_000, 51);
    let two = mp3_frames(30_000, 52);
    let body = multipart(
        BOUNDARY,
        &[
            (
                "Content-Disposition: form-data; name=\"a\"; filename=\"one.mp3\"\r\nContent-Type: audio/mpeg",
                &one,
            ),
            (
                "Content-Disposition: form-data; name=\"b\"; filename=\"two.mp3\"\r\nContent-Type: audio/mpeg",
                &two,
            ),
        ],
        true,
    );
    let req = request("POST", "/up", &form_type(BOUNDARY), &body);
    let cut = req.len() - body.len() + 20_000;
    let mut cap = Capture::default();
    let mut s = cap.session(40000, 80);
    cap.send(&mut s, Side::Client, &req[..cut]);
    cap.lose(&mut s, Side::Client, 1_000);
    cap.send(&mut s, Side::Client, &req[cut + 1_000..]);
    cap.send(&mut s, Side::Server, CREATED);
    cap.close(&mut s);
    let r = sniff(&cap, &[]);
    let up = orig(&r);
    assert_eq!(up.len(), 2, "{:#?}", r.index);
    assert_eq!(up[0]["filename"], "one.mp3");
    assert_eq!(up[0]["complete"], false);
    assert!(
        up[0]["notes"].to_string().contains("capture gap"),
        "{}",
        up[0]
    );
    let first = r.file(up[0]);
    let offset_in_one = 20_000 - (BOUNDARY.len() + 4 + 2 + 89 + 4);
    assert!(
        first.len() <= one.len() && first == one[..first.len()],
        "{}",
        first.len()
    );
    assert!(
        first.len() >= offset_in_one.saturating_sub(100),
        "{}",
        first.len()
    );
    assert_eq!(up[1]["filename"], "two.mp3");
    assert_eq!(up[1]["complete"], true);
    assert!(r.file(up[1]) == two, "{}", up[1]);
}
