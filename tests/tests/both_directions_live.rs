//! Issue 14, live: what crossed the wire, both ways, with a real client and real servers
//! in network namespaces. curl uploads an MP3 as a form (`curl -F`) to a small upload
//! handler, and asks nginx for two ranges at once (`curl -r A-B,C-D`: a 206
//! `multipart/byteranges` answer) and for the rest as single ranges. The sniffer, on the
//! client's veth end, must save the form's file part, each byterange part, and the file
//! merged from all the parts, each byte-exact against the source.
//! Needs root; skipped with a message otherwise.

mod support;

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    time::Duration,
};

use sniffer::{
    capture::{KernelFilter, live::LiveOptions},
    extract::ExtractConfig,
};
use support::{Counted, Sniffer, curl, index};
use tests::{
    Child, Netns, VethPair,
    audio::{AudioServer, write_mp3_like},
    require_root,
};

const SONG_LEN: usize = 1024 * 1024 + 333;

/// An upload handler: reads the request body (after `100 Continue` when asked) and
/// answers 201 with its length.
const UPLOADER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = 0
        while got < n:
            b = self.rfile.read(min(65536, n - got))
            if not b:
                break
            got += len(b)
        body = str(got).encode()
        self.send_response(201)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

#[test]
fn issue14_live_form_upload_and_multi_range_answer_saved_byte_exact() {
    if !require_root("issue14_live_form_upload_and_multi_range_answer_saved_byte_exact") {
        return;
    }
    let server_ns = Netns::new("bs").unwrap();
    let client = Netns::new("bc").unwrap();
    let veth = VethPair::new(&server_ns, &client).unwrap();
    veth.set_offloads(false).unwrap();
    let www = tempfile::tempdir().unwrap();
    let song_path = www.path().join("song.mp3");
    let song = write_mp3_like(&song_path, SONG_LEN, 1414).unwrap();
    let _nginx = AudioServer::start(&server_ns, www.path()).unwrap();
    let mut py = server_ns.command(&["python3", "-c", UPLOADER]);
    py.stdout(Stdio::null());
    let _uploader = Child::spawn(py).unwrap();
    server_ns
        .wait_for_tcp(
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080),
            Duration::from_secs(10),
        )
        .unwrap();

    let config = LiveOptions {
        iface: veth.b_if.clone(),
        filter: KernelFilter::ports(&[80, 8080]),
        snaplen: 65536,
        ring_bytes: 64 << 20,
    };
    let out = tempfile::tempdir().unwrap();
    let sniffer = Sniffer::start(
        &client,
        &config,
        // The program's default selection: audio.
        ExtractConfig {
            dir: out.path().to_owned(),
            globs: vec![glob::Pattern::new("audio/*").unwrap()],
            ..ExtractConfig::default()
        },
    );

    let host = veth.a_v4.to_string();
    let file_arg = format!("file=@{}", song_path.display());
    let upload_url = format!("http://{host}:8080/upload");
    let song_url = format!("http://{host}/song.mp3");
    curl(
        &client,
        &["-F", "title=a song", "-F", &file_arg, &upload_url],
    );
    curl(&client, &["-r", "0-99999,200000-299999", &song_url]);
    curl(&client, &["-r", "100000-199999", &song_url]);
    curl(&client, &["-r", "300000-", &song_url]);
    let Counted { http, saved, .. } = sniffer.stop();
    assert_eq!(http.transactions, 4, "{http:?}");
    assert_eq!(http.request_bodies, 1, "{http:?}");
    assert_eq!(saved.merged, 1, "{saved:?}");
    assert_eq!(saved.incomplete, 0, "{saved:?}");

    let index = index(out.path());
    let read = |e: &serde_json::Value| {
        std::fs::read(out.path().join(e["file"].as_str().unwrap())).unwrap()
    };
    // The form: its file part only (the title is a field, and not audio).
    let up: Vec<&serde_json::Value> = index.iter().filter(|e| e["dir"] == "orig").collect();
    assert_eq!(up.len(), 1, "{index:#?}");
    assert_eq!(up[0]["part"], 2);
    assert_eq!(up[0]["form_field"], "file");
    assert_eq!(up[0]["filename"], "song.mp3");
    assert_eq!(up[0]["detected_type"], "audio/mpeg");
    assert_eq!(up[0]["complete"], true);
    assert!(
        read(up[0]) == song,
        "the uploaded part differs from the file"
    );

    // The two parts of the multi-range answer, at their ranges.
    let parts: Vec<&serde_json::Value> = index
        .iter()
        .filter(|e| e["dir"] == "resp" && e["part"].is_u64())
        .collect();
    assert_eq!(parts.len(), 2, "{index:#?}");
    for (e, (first, last)) in parts.iter().zip([(0, 99_999), (200_000, 299_999)]) {
        assert_eq!(
            e["content_range"],
            format!("bytes {first}-{last}/{}", song.len())
        );
        assert!(read(e) == song[first..=last], "part {first}-{last} differs");
    }
    // And the whole file, merged from them and the two single ranges.
    let merged: Vec<&serde_json::Value> = index
        .iter()
        .filter(|e| e["merged_from"].is_array())
        .collect();
    assert_eq!(merged.len(), 1, "{index:#?}");
    assert_eq!(merged[0]["merged_from"].as_array().unwrap().len(), 4);
    assert_eq!(merged[0]["complete"], true);
    assert!(
        read(merged[0]) == song,
        "the merged file differs from the source"
    );
}
