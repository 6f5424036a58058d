//! The main job's scenery (issue 5): an MP3-like file and an nginx that serves it as
//! `audio/mpeg` three ways: plain (Content-Length), gzip (`--compressed`; chunked), and
//! chunked without gzip. Used by `cargo xtask demo` and `tests/tests/http_live.rs`.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::{Child, Netns};

/// Writes an MP3-like file of about `len` bytes: an ID3v2.4 tag with a title, then
/// MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes each) of pseudo-random bytes
/// from `seed`. Players accept the headers; the content is noise. Returns the bytes.
///
/// # Errors
/// Writing failed.
pub fn write_mp3_like(path: &Path, len: usize, seed: u64) -> io::Result<Vec<u8>> {
    let title = b"\x03sniffer demo";
    let mut data = Vec::with_capacity(len + 417);
    data.extend_from_slice(b"ID3\x04\x00\x00");
    data.extend_from_slice(&syncsafe(10 + title.len() as u32));
    data.extend_from_slice(b"TIT2");
    data.extend_from_slice(&syncsafe(title.len() as u32));
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(title);
    let mut x = seed | 1;
    while data.len() < len {
        data.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        for _ in 0..413 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 32) as u8);
        }
    }
    std::fs::write(path, &data)?;
    Ok(data)
}

fn syncsafe(n: u32) -> [u8; 4] {
    [
        (n >> 21 & 0x7f) as u8,
        (n >> 14 & 0x7f) as u8,
        (n >> 7 & 0x7f) as u8,
        (n & 0x7f) as u8,
    ]
}

/// A marker that never occurs in served files: `sub_filter` looks for it, finds nothing,
/// and so changes no byte, but it makes nginx drop Content-Length and send chunked.
const NEVER: &str = "sniffer-no-such-string-7f3a9c";

/// nginx in a namespace serving `root` on port 80 (IPv4 and IPv6):
/// - `/NAME.mp3`: `audio/mpeg`, with Content-Length, or gzip + chunked when the client
///   accepts gzip;
/// - `/chunked/NAME.mp3`: the same file, chunked, never gzip.
///
/// Stopped (and its temporary directory removed) on drop.
#[derive(Debug)]
pub struct AudioServer {
    // Field order: the process stops before its directory is removed.
    _child: Child,
    dir: tempfile::TempDir,
}

impl AudioServer {
    /// Starts nginx in `ns` and waits until it accepts on port 80.
    ///
    /// # Errors
    /// nginx is missing, or did not come up within five seconds.
    pub fn start(ns: &Netns, root: &Path) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let r = root.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log {d}/access.log;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               types {{ audio/mpeg mp3; text/html html; }}\n\
               default_type application/octet-stream;\n\
               sendfile on;\n\
               gzip on;\n  gzip_types audio/mpeg;\n  gzip_min_length 0;\n  gzip_comp_level 1;\n\
               server {{\n\
                 listen 0.0.0.0:80;\n    listen [::]:80;\n    root {r};\n\
                 location /chunked/ {{\n\
                   alias {r}/;\n      gzip off;\n\
                   sub_filter_types audio/mpeg;\n      sub_filter '{NEVER}' '';\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        let child = crate::spawn_nginx(ns, dir.path(), &conf, &[80])?;
        Ok(Self { _child: child, dir })
    }

    /// nginx's access log (one line per request).
    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }
}

/// The three ways the demo fetches `name` from `host` (`10.0.0.1` or `[fd00::1]`):
/// (label, extra curl arguments, URL).
pub fn fetches(host: &str, name: &str) -> [(&'static str, Vec<&'static str>, String); 3] {
    [
        ("plain", vec![], format!("http://{host}/{name}")),
        (
            "gzip",
            vec!["--compressed"],
            format!("http://{host}/{name}"),
        ),
        ("chunked", vec![], format!("http://{host}/chunked/{name}")),
    ]
}
