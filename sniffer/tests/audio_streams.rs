//! Issue 11: audio as it really streams. Generated captures (see `common::capture`) of
//! SHOUTcast and Icecast radio, audio served with generic types, and HLS, run through the
//! `sniffer` binary: the tracks must be byte-exact, titled, and concatenate to exactly the
//! audio sent; bad input gets notes, safe names and bounded output.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{
    capture::{Capture, Side, exchange, icy_block, icy_body, mp3_frames},
    sha256_hex,
};
use serde_json::Value;

struct Run {
    _tmp: tempfile::TempDir,
    out: PathBuf,
    index: Vec<Value>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn file(&self, e: &Value) -> Vec<u8> {
        std::fs::read(self.out.join(e["file"].as_str().unwrap())).unwrap()
    }
}

/// Write `cap`, run `sniffer -r CAP --out DIR --json ARGS`, read the index (validated
/// against the file schema).
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
    let text = std::fs::read_to_string(out.join("index.jsonl")).unwrap_or_default();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema/file.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let index: Vec<Value> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{l}");
            v
        })
        .collect();
    Run {
        _tmp: tmp,
        out,
        index,
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr,
    }
}

const REQUEST: &[u8] = b"GET /stream HTTP/1.0\r\nHost: radio.test\r\nIcy-MetaData: 1\r\n\r\n";

fn icecast_head(metaint: usize) -> Vec<u8> {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: Test Radio\r\n\
         icy-genre: Jazz\r\nicy-url: http://radio.test/\r\nicy-br: 128\r\nicy-metaint: {metaint}\r\n\r\n"
    )
    .into_bytes()
}

/// The tracks of one stream: titled, numbered from 1, following each other, byte-exact
/// against the audio, cut at frame starts; first and last incomplete.
fn assert_tracks(r: &Run, audio: &[u8], titles: &[&str]) {
    let tracks: Vec<&Value> = r
        .index
        .iter()
        .filter(|e| e.get("track").is_some())
        .collect();
    let got_titles: Vec<&str> = tracks
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(got_titles, titles, "{:#?}", r.index);
    let mut all = Vec::new();
    for (k, e) in tracks.iter().enumerate() {
        let bytes = r.file(e);
        let offset = e["offset"].as_u64().unwrap() as usize;
        assert_eq!(
            offset,
            all.len(),
            "track {k} does not follow the one before"
        );
        assert_eq!(e["track"], k as u64 + 1);
        assert_eq!(e["size"], bytes.len() as u64);
        assert_eq!(
            e["sha256"],
            sha256_hex(&audio[offset..offset + bytes.len()])
        );
        assert_eq!(e["station"]["name"], "Test Radio");
        assert_eq!(e["content_type"], "audio/mpeg");
        assert_eq!(e["detected_type"], "audio/mpeg");
        assert_eq!(&bytes[..2], [0xFF, 0xFB], "track {k} starts on a frame");
        let edge = k == 0 || k + 1 == tracks.len();
        assert_eq!(e["complete"], !edge, "track {k}: {e}");
        all.extend_from_slice(&bytes);
    }
    assert!(
        all == audio,
        "the tracks concatenated differ from the audio sent"
    );
}

#[test]
fn issue11_icecast_stream_is_split_into_titled_byte_exact_tracks() {
    let audio = mp3_frames(2_000_000, 11);
    let metaint = 16000;
    let song = |i: usize| Some(format!("Artist {} - Song {}", i / 40, i / 40));
    let body = icy_body(&audio, metaint, song);
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        REQUEST,
        &[icecast_head(metaint), body].concat(),
        &[],
    );
    let r = sniff(&cap, &[]);
    let titles: Vec<String> = (0..4).map(|i| format!("Artist {i} - Song {i}")).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    assert_tracks(&r, &audio, &titles);
    let e = &r.index[1];
    assert_eq!(e["file"], "0-0-Test_Radio-002-Artist_1_-_Song_1.mp3");
    assert_eq!(e["station"]["genre"], "Jazz");
    assert_eq!(e["station"]["bitrate"], 128);
    assert_eq!(e["url"], "http://radio.test/stream");
    // The transaction's line names the last track and says how many there are.
    let tx: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(tx["file"], r.index[3]["file"]);
    assert!(
        tx["notes"].to_string().contains("saved as 4 tracks"),
        "{tx}"
    );
    assert!(
        r.stderr.contains("1 radio stream had its metadata removed"),
        "{}",
        r.stderr
    );
}

#[test]
fn issue11_shoutcast_icy_200_and_no_split() {
    let audio = mp3_frames(600_000, 12);
    let metaint = 8192;
    let body = icy_body(&audio, metaint, |i| Some(format!("Song {}", i / 30)));
    let head = format!(
        "ICY 200 OK\r\nicy-notice1: <BR>This stream requires Winamp<BR>\r\nicy-name: Test Radio\r\n\
         content-type: audio/mpeg\r\nicy-metaint: {metaint}\r\n\r\n"
    );
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        REQUEST,
        &[head.as_bytes(), &body].concat(),
        &[],
    );
    let r = sniff(&cap, &[]);
    assert_tracks(&r, &audio, &["Song 0", "Song 1", "Song 2"]);
    assert!(!r.stderr.contains("not HTTP"), "{}", r.stderr);
    assert!(r.index.last().unwrap()["notes"].to_string().contains("ICY"));
    // --no-split: one file, exactly the audio, titles in its notes.
    let r = sniff(&cap, &["--no-split"]);
    assert_eq!(r.index.len(), 1);
    assert!(r.file(&r.index[0]) == audio);
    assert_eq!(r.index[0]["track"], Value::Null);
    assert_eq!(r.index[0]["title"], "Song 0");
    assert!(r.index[0]["notes"].to_string().contains("Song 2"));
    assert_eq!(r.index[0]["file"], "0-0-Test_Radio.mp3");
}

#[test]
fn issue11_shoutcast_without_metadata_is_one_file_as_sent() {
    let audio = mp3_frames(100_000, 13);
    let head =
        "ICY 200 OK\r\nicy-name: Test Radio\r\nicy-br: 128\r\ncontent-type: audio/mpeg\r\n\r\n";
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        REQUEST,
        &[head.as_bytes(), &audio].concat(),
        &[],
    );
    let r = sniff(&cap, &[]);
    assert_eq!(r.index.len(), 1);
    let e = &r.index[0];
    assert!(r.file(e) == audio);
    assert_eq!(e["complete"], true);
    assert_eq!(e["station"]["name"], "Test Radio");
    assert_eq!(e["track"], Value::Null);
}

#[test]
fn issue11_chunked_icecast_is_dechunked_before_the_metadata_is_removed() {
    let audio = mp3_frames(300_000, 14);
    let metaint = 16000;
    let body = icy_body(&audio, metaint, |i| Some(format!("Song {}", i / 8)));
    let mut chunked = Vec::new();
    for c in body.chunks(7000) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nTransfer-Encoding: chunked\r\n\
         icy-name: Test Radio\r\nicy-metaint: {metaint}\r\n\r\n"
    );
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        b"GET /s HTTP/1.1\r\nHost: h\r\nIcy-MetaData: 1\r\n\r\n",
        &[head.as_bytes(), &chunked].concat(),
        &[],
    );
    let r = sniff(&cap, &[]);
    assert_tracks(&r, &audio, &["Song 0", "Song 1", "Song 2"]);
}

#[test]
fn issue11_losses_keep_or_find_the_place_and_are_declared() {
    let audio = mp3_frames(800_000, 15);
    let metaint = 16000;
    let body = icy_body(&audio, metaint, |i| Some(format!("Song {}", i / 10)));
    let head = icecast_head(metaint);
    let h = head.len();
    // Body offsets of period k: audio at k * (metaint + block), block after it; blocks
    // are 33 bytes ("StreamTitle='Song N';" is 21 bytes, padded to 32).
    let period = metaint + 33;
    // A loss inside the audio of period 2, and one over the length byte of period 25.
    let in_audio = h + 2 * period + 5000..h + 2 * period + 8000;
    let over_len = h + 25 * period + metaint - 10..h + 25 * period + metaint + 20;
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        REQUEST,
        &[head.clone(), body].concat(),
        &[in_audio, over_len],
    );
    let r = sniff(&cap, &[]);
    let first = &r.index[0];
    assert_eq!(
        first["gaps"],
        serde_json::json!([[37000, 40000]]),
        "{first}"
    );
    let mut want = audio[..37000].to_vec();
    want.extend([0; 3000]);
    want.extend_from_slice(&audio[40000..first["size"].as_u64().unwrap() as usize]);
    assert!(
        r.file(first) == want,
        "the first track, zeros where the loss was"
    );
    let notes = r
        .index
        .iter()
        .map(|e| e["notes"].to_string())
        .collect::<String>();
    assert!(notes.contains("place of the blocks was lost"), "{notes}");
    assert!(notes.contains("found the metadata blocks again"), "{notes}");
    assert!(
        r.stderr
            .contains("of radio streams could not be placed after a loss"),
        "{}",
        r.stderr
    );
    // After the resync every byte is in place again: the last track is the audio's end.
    let last = r.index.last().unwrap();
    let bytes = r.file(last);
    assert!(audio.ends_with(&bytes));
    let titles: Vec<&str> = r
        .index
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.last(), Some(&"Song 4"));
}

#[test]
fn issue11_bad_metaint_and_hostile_titles() {
    let audio = mp3_frames(200_000, 16);
    let mut cap = Capture::default();
    for (i, metaint) in ["0", "99999999", "lots"].iter().enumerate() {
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-metaint: {metaint}\r\n\r\n"
        );
        exchange(
            &mut cap,
            40000 + i as u16,
            REQUEST,
            &[head.as_bytes(), &audio].concat(),
            &[],
        );
    }
    // Titles that are not text, or hold / .. and control characters.
    let hostile: [&[u8]; 4] = [
        b"../../etc/passwd",
        b"a/b\x01\x1b[2J",
        b"Caf\xe9 \xff\xfe",
        b".",
    ];
    let mut body = Vec::new();
    for (i, piece) in audio.chunks(20_000).enumerate() {
        body.extend_from_slice(piece);
        if piece.len() == 20_000 {
            let t = hostile[(i / 2) % hostile.len()];
            let text = [b"StreamTitle='".as_slice(), t, b"';"].concat();
            let l = text.len().div_ceil(16);
            body.push(l as u8);
            body.extend_from_slice(&text);
            body.resize(body.len() + 16 * l - text.len(), 0);
        }
    }
    let head = "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: ../\x01evil/\r\nicy-metaint: 20000\r\n\r\n";
    exchange(
        &mut cap,
        41000,
        REQUEST,
        &[head.as_bytes(), &body].concat(),
        &[],
    );
    let r = sniff(&cap, &[]);
    for e in &r.index[..3] {
        assert!(
            r.file(e) == audio,
            "a refused metaint keeps the body as sent"
        );
        assert!(e["notes"].to_string().contains("icy-metaint"), "{e}");
    }
    let tracks = &r.index[3..];
    let titles: Vec<&str> = tracks
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles[0], "../../etc/passwd");
    assert!(titles.contains(&"Caf\u{e9} \u{ff}\u{fe}"), "{titles:?}");
    let mut all = Vec::new();
    for e in tracks {
        let name = e["file"].as_str().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))
                && !name.contains(".."),
            "{name}"
        );
        all.extend(r.file(e));
    }
    assert!(all == audio);
    let names: Vec<String> = std::fs::read_dir(&r.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), r.index.len() + 1, "{names:?}");
}

#[test]
fn issue11_a_title_every_100_ms_makes_a_bounded_number_of_files() {
    let audio = mp3_frames(1_000_000, 17);
    let body = icy_body(&audio, 1600, |i| Some(format!("t{i}")));
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        REQUEST,
        &[icecast_head(1600), body].concat(),
        &[],
    );
    let r = sniff(&cap, &[]);
    assert!(
        r.index.len() <= 1_000_000 / 16384 + 1,
        "{} files",
        r.index.len()
    );
    let all: Vec<u8> = r.index.iter().flat_map(|e| r.file(e)).collect();
    assert!(all == audio);
    assert!(r.index[0]["notes"].to_string().contains("not split off"));
}

fn adts(frames: usize, seed: u8) -> Vec<u8> {
    let len = 300usize;
    let mut out = Vec::new();
    for i in 0..frames {
        out.extend_from_slice(&[
            0xFF,
            0xF1,
            0x50,
            0x80 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1F,
            0xFC,
        ]);
        out.extend((7..len).map(|j| ((i * 13 + j) as u8 ^ seed) & 0x7F));
    }
    out
}

fn id3_priv(ts: u64) -> Vec<u8> {
    let owner = b"com.apple.streaming.transportStreamTimestamp\0";
    let frame_len = owner.len() + 8;
    let mut t = b"ID3\x04\x00\x00".to_vec();
    let size = 10 + frame_len;
    t.extend([0, 0, (size >> 7) as u8 & 0x7F, size as u8 & 0x7F]);
    t.extend_from_slice(b"PRIV");
    t.extend([
        0,
        0,
        (frame_len >> 7) as u8 & 0x7F,
        frame_len as u8 & 0x7F,
        0,
        0,
    ]);
    t.extend_from_slice(owner);
    t.extend(ts.to_be_bytes());
    t
}

fn response(ct: Option<&str>, body: &[u8]) -> Vec<u8> {
    let ct = ct.map_or_else(String::new, |c| format!("Content-Type: {c}\r\n"));
    [
        format!(
            "HTTP/1.1 200 OK\r\n{ct}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: cdn.test\r\n\r\n").into_bytes()
}

#[test]
fn issue11_audio_known_by_its_bytes() {
    let mp3 = mp3_frames(50_000, 18);
    let aac = [id3_priv(9000), adts(100, 3)].concat();
    let png = [b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".as_slice(), &[7; 2000]].concat();
    let fake = [[0xFF, 0xFB, 0x90, 0x64].as_slice(), &[0x42; 3000]].concat();
    let mut cap = Capture::default();
    let cases: [(&str, Option<&str>, &[u8]); 6] = [
        ("/stream.php?id=4", Some("application/octet-stream"), &mp3),
        ("/dl", None, &mp3),
        ("/x.txt", Some("text/plain"), &aac),
        ("/img", Some("application/octet-stream"), &png),
        ("/fake", Some("application/octet-stream"), &fake),
        ("/song", Some("audio/mpeg"), &png),
    ];
    for (i, (path, ct, body)) in cases.iter().enumerate() {
        exchange(
            &mut cap,
            40000 + i as u16,
            &get(path),
            &response(*ct, body),
            &[],
        );
    }
    // Default audio/*: the three audio bodies, plus the one declared audio.
    let r = sniff(&cap, &[]);
    let files: Vec<(&str, &str)> = r
        .index
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap(),
                e["detected_type"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("0-0-stream.php.mp3", "audio/mpeg"),
            ("1-0-dl.mp3", "audio/mpeg"),
            ("2-0-x.txt.aac", "audio/aac"),
            ("5-0-song.png", "image/png"),
        ]
    );
    assert!(r.file(&r.index[0]) == mp3 && r.file(&r.index[2]) == aac);
    assert_eq!(r.index[0]["content_type"], "application/octet-stream");
    // Everything, each with the extension of what it is; the fake MP3 is not audio.
    let r = sniff(&cap, &["--extract-all"]);
    let fake_entry = r
        .index
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/fake"))
        .unwrap();
    assert_eq!(fake_entry["detected_type"], Value::Null);
    assert_eq!(fake_entry["file"], "4-0-fake.bin");
    let img = r
        .index
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/img"))
        .unwrap();
    assert_eq!(img["file"], "3-0-img.png");
    // --extract image/png matches the detected type of a generic body.
    let r = sniff(&cap, &["--extract", "image/png"]);
    assert_eq!(r.index.len(), 1, "{:?}", r.index);
    assert_eq!(r.index[0]["file"], "3-0-img.png");
}

#[test]
fn issue11_hls_segments_joined_in_order_over_several_connections() {
    // Live playlist fetched twice (a sliding window), ADTS segments with their ID3 PRIV
    // timestamp: fetched out of order, one twice, one never, over several connections;
    // a discontinuity starts a second file.
    let seg = |n: u64| [id3_priv(n * 90_000), adts(20, n as u8)].concat();
    let first = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
        #EXTINF:2,\nseg10.aac\n#EXTINF:2,\nseg11.aac\n#EXTINF:2,\nseg12.aac\n";
    let second = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:12\n\
        #EXTINF:2,\nseg12.aac\n#EXTINF:2,\nseg13.aac\n#EXTINF:2,\nseg14.aac\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:2,\n/live/b/seg15.aac\n#EXTINF:2,\n/live/b/seg16.aac\n";
    let mut cap = Capture::default();
    let playlist_ct = Some("application/vnd.apple.mpegurl");
    exchange(
        &mut cap,
        40000,
        &get("/live/radio.m3u8"),
        &response(playlist_ct, first.as_bytes()),
        &[],
    );
    let mut s = cap.session(40001, 80);
    for n in [11, 10, 11] {
        cap.send(&mut s, Side::Client, &get(&format!("/live/seg{n}.aac")));
        cap.send(&mut s, Side::Server, &response(Some("audio/aac"), &seg(n)));
    }
    cap.close(&mut s);
    exchange(
        &mut cap,
        40002,
        &get("/live/radio.m3u8"),
        &response(playlist_ct, second.as_bytes()),
        &[],
    );
    // Segment 12 is never fetched: a hole.
    for n in [14, 13] {
        exchange(
            &mut cap,
            40003 + n as u16,
            &get(&format!("/live/seg{n}.aac")),
            &response(Some("audio/aac"), &seg(n)),
            &[],
        );
    }
    for n in [15, 16] {
        exchange(
            &mut cap,
            40100 + n as u16,
            &get(&format!("/live/b/seg{n}.aac")),
            &response(Some("audio/aac"), &seg(n)),
            &[],
        );
    }
    let r = sniff(&cap, &[]);
    let joined: Vec<&Value> = r
        .index
        .iter()
        .filter(|e| e.get("playlist").is_some())
        .collect();
    assert_eq!(joined.len(), 2, "{:#?}", r.index);
    let strip = |n: u64| adts(20, n as u8);
    let want: Vec<u8> = [10, 11, 13, 14].into_iter().flat_map(strip).collect();
    assert!(
        r.file(joined[0]) == want,
        "segments 10, 11, 13, 14 without their ID3 tags"
    );
    assert_eq!(joined[0]["holes"], serde_json::json!([[12, 12]]));
    assert_eq!(joined[0]["segments"], 4);
    assert_eq!(joined[0]["complete"], false);
    assert_eq!(joined[0]["playlist"], "http://cdn.test/live/radio.m3u8");
    assert_eq!(joined[0]["file"], "joined-0-0-radio.aac");
    let want2: Vec<u8> = [15, 16].into_iter().flat_map(strip).collect();
    assert!(r.file(joined[1]) == want2);
    assert_eq!(joined[1]["complete"], true);
    assert_eq!(joined[1]["file"], "joined-0-0-radio-2.aac");
    // The single segments stay saved as they came (7 fetches), tags and all.
    let singles = r
        .index
        .iter()
        .filter(|e| e["content_type"] == "audio/aac" && e.get("playlist").is_none())
        .count();
    assert_eq!(singles, 7);
    assert!(
        r.stderr.contains("2 joined from HLS segments"),
        "{}",
        r.stderr
    );
}

#[test]
fn issue11_hls_playlist_of_100000_segments_that_never_arrive() {
    let mut text = String::from("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n");
    for i in 0..100_000 {
        text.push_str(&format!("#EXTINF:2,\ns{i}.ts\n"));
    }
    let mut cap = Capture::default();
    exchange(
        &mut cap,
        40000,
        &get("/big.m3u8"),
        &response(None, text.as_bytes()),
        &[],
    );
    exchange(
        &mut cap,
        40001,
        &get("/s0.aac"),
        &response(Some("audio/aac"), &adts(5, 1)),
        &[],
    );
    let r = sniff(&cap, &["--extract-all"]);
    // The playlist itself (it has no declared type) and one segment; nothing joined.
    assert_eq!(r.index.len(), 2, "{:#?}", r.index);
    assert_eq!(r.index[0]["detected_type"], "application/vnd.apple.mpegurl");
    assert_eq!(r.index[0]["file"], "0-0-big.m3u8");
    let notes = r.index[0]["notes"].to_string();
    assert!(notes.contains("only its start was read"), "{notes}");
    assert!(
        notes.contains("segments listed, media sequence 0 to"),
        "{notes}"
    );
    assert!(notes.contains("were not tracked for joining"), "{notes}");
}

#[test]
fn issue11_block_split_at_every_packet_boundary_over_the_wire() {
    // One small stream, sent in segments of every size from 1 to 40 bytes: the block
    // straddles every possible packet boundary.
    let audio = mp3_frames(40_000, 19);
    let metaint = 4000;
    let body = icy_body(&audio, metaint, |i| {
        if i == 0 { Some("A".into()) } else { None }
    });
    let _ = icy_block(None);
    let mut cap = Capture::default();
    for mss in 1..=40 {
        let mut s = cap.session(30000 + mss as u16, 80);
        cap.send(&mut s, Side::Client, REQUEST);
        cap.send_mss(
            &mut s,
            Side::Server,
            &[icecast_head(metaint), body.clone()].concat(),
            mss,
        );
        cap.close(&mut s);
    }
    let r = sniff(&cap, &[]);
    assert_eq!(r.index.len(), 40);
    for e in &r.index {
        assert!(r.file(e) == audio, "{}", e["file"]);
        assert_eq!(e["title"], "A");
    }
}

/// An MPEG-TS segment: PAT, a PMT listing one ADTS audio stream, then `n` packets of
/// audio PES payload (stand-in bytes) on PID 0x100.
fn ts_segment(n: usize, seed: u8) -> Vec<u8> {
    let packet = |pid: u16, start: bool, payload: &[u8]| {
        let mut p = vec![
            0x47,
            (u8::from(start) << 6) | (pid >> 8) as u8,
            pid as u8,
            0x10,
        ];
        p.extend_from_slice(payload);
        p.resize(188, 0xFF);
        p
    };
    let pat = [
        0, 0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00, 0, 0, 0, 0,
    ];
    let pmt = [
        0, 0x02, 0xB0, 18, 0, 1, 0xC1, 0, 0, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x00, 0xF0, 0x00,
        0, 0, 0, 0,
    ];
    let mut out = [packet(0, true, &pat), packet(0x1000, true, &pmt)].concat();
    for i in 0..n {
        let body: Vec<u8> = (0..184).map(|j| (i * 7 + j) as u8 ^ seed).collect();
        out.extend(packet(0x100, i == 0, &body));
    }
    out
}

#[test]
fn issue11_hls_transport_stream_radio_is_audio_and_joined_as_is() {
    let playlist = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2,\na1.ts\n#EXTINF:2,\na2.ts\n#EXTINF:2,\na3.ts\n";
    let mut cap = Capture::default();
    // Served by path only, no playlist type.
    exchange(
        &mut cap,
        40000,
        &get("/r/live.m3u8"),
        &response(Some("text/plain"), playlist.as_bytes()),
        &[],
    );
    for n in 1..=3u8 {
        exchange(
            &mut cap,
            40000 + u16::from(n),
            &get(&format!("/r/a{n}.ts")),
            &response(Some("video/mp2t"), &ts_segment(30, n)),
            &[],
        );
    }
    // A video TS is not audio.
    let mut video = ts_segment(3, 9);
    video[188 + 5 + 12] = 0x1B;
    exchange(
        &mut cap,
        40010,
        &get("/v.ts"),
        &response(Some("video/mp2t"), &video),
        &[],
    );
    let r = sniff(&cap, &[]);
    let segments: Vec<&Value> = r
        .index
        .iter()
        .filter(|e| e["detected_type"] == "audio/mp2t" && e.get("playlist").is_none())
        .collect();
    assert_eq!(segments.len(), 3, "{:#?}", r.index);
    assert_eq!(segments[0]["file"], "1-0-a1.ts");
    let joined = r
        .index
        .iter()
        .find(|e| e.get("playlist").is_some())
        .expect("a joined file");
    let want: Vec<u8> = (1..=3).flat_map(|n| ts_segment(30, n)).collect();
    assert!(r.file(joined) == want, "TS segments are joined as they are");
    assert_eq!(joined["complete"], true);
    assert_eq!(joined["file"], "joined-0-0-live.ts");
    assert!(
        !r.index
            .iter()
            .any(|e| e["url"].as_str().unwrap().ends_with("/v.ts"))
    );
}
