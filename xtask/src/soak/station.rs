//! The soak's endless stream: an Icecast-style station that never stops playing. It
//! answers `GET` with `HTTP/1.0 200 OK`, `icy-metaint: METAINT` (the client asks for
//! metadata) and MPEG audio frames paced at [`RATE`] bytes a second, with a metadata block
//! after every [`METAINT`] audio bytes naming the track playing; a new track begins every
//! [`TRACK_BYTES`]. The audio is a function of its offset ([`Audio`]), so what the
//! sniffer saved can be checked against it without keeping what was sent:
//! [`check`] compares every track file with the audio at its `offset`, and checks that
//! the tracks follow each other without a byte lost or doubled.

use std::{
    collections::BTreeSet,
    io::{self, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use ::tests::{Netns, radio::read_request_head};

/// Audio bytes between metadata blocks.
pub const METAINT: usize = 16_000;
/// Audio bytes per track (a title change after each).
pub const TRACK_BYTES: u64 = 96_000;
/// Audio bytes a second: 256 kbit/s, a generous radio stream.
pub const RATE: usize = 32_000;
/// The station's port.
pub const PORT: u16 = 8000;

/// The station's audio: MPEG-1 Layer III frame headers (128 kbit/s, 44.1 kHz, padded every
/// third frame) with seeded noise, as long as it is asked for. The same bytes at the same
/// offsets every time.
pub struct Audio {
    x: u64,
    frames: u32,
    /// The current frame, and how much of it was handed out.
    frame: Vec<u8>,
    at: usize,
}

impl Audio {
    pub fn new() -> Self {
        Self {
            x: 0x50A4_D10E_5EED_0001,
            frames: 0,
            frame: Vec::new(),
            at: 0,
        }
    }

    /// The next `out.len()` bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            if self.at == self.frame.len() {
                self.next_frame();
            }
            let n = (self.frame.len() - self.at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.frame[self.at..self.at + n]);
            self.at += n;
            done += n;
        }
    }

    fn next_frame(&mut self) {
        let pad = u8::from(self.frames % 3 == 2);
        self.frames += 1;
        self.frame.clear();
        self.frame
            .extend_from_slice(&[0xFF, 0xFB, 0x90 | pad << 1, 0x64]);
        for _ in 0..413 + usize::from(pad) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            self.frame.push((self.x >> 33) as u8 & 0x7F);
        }
        self.at = 0;
    }
}

/// The title of the track playing at audio offset `at`.
fn title_at(at: u64) -> String {
    format!("Soak Radio - Song {}", at / TRACK_BYTES + 1)
}

/// The station, serving every client the stream from its start. Stopped on drop.
pub struct Station {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Station {
    /// Listen on `0.0.0.0:PORT` inside `ns`.
    pub fn start(ns: &Netns) -> io::Result<Self> {
        let addr = SocketAddr::from(([0, 0, 0, 0], PORT));
        let listener = ns.enter(|| TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("station".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let flag = Arc::clone(&flag);
                            thread::spawn(move || {
                                let _ = play(conn, &flag);
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => return,
                    }
                }
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One listener: the head, then the stream until the client leaves or the station stops.
fn play(mut conn: TcpStream, stop: &AtomicBool) -> io::Result<()> {
    read_request_head(&mut conn)?;
    conn.write_all(
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: Soak Radio\r\n\
             icy-genre: Test\r\nicy-br: 256\r\nicy-metaint: {METAINT}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let mut audio = Audio::new();
    let mut sent: u64 = 0;
    let mut block = vec![0u8; METAINT];
    // Each metadata interval in eight paced pieces.
    let piece = METAINT / 8;
    let pause = Duration::from_secs_f64(piece as f64 / RATE as f64);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        audio.fill(&mut block);
        for chunk in block.chunks(piece) {
            conn.write_all(chunk)?;
            next += pause;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        sent += METAINT as u64;
        let text = format!("StreamTitle='{}';", title_at(sent - 1));
        let l = text.len().div_ceil(16);
        let mut meta = vec![l as u8];
        meta.extend_from_slice(text.as_bytes());
        meta.resize(1 + 16 * l, 0);
        conn.write_all(&meta)?;
    }
    Ok(())
}

/// The station's track files in the index (`lines`, with the names `evicted` removed):
/// each file that is still there equals the audio at its offset, and the tracks follow
/// each other from offset 0 with no byte lost or doubled. Returns the problems, and the
/// tracks and audio bytes checked.
pub fn check(
    out: &Path,
    lines: &[serde_json::Value],
    evicted: &BTreeSet<String>,
) -> (Vec<String>, u64, u64) {
    let mut problems = Vec::new();
    let mut tracks: Vec<&serde_json::Value> = lines.iter().collect();
    tracks.sort_by_key(|v| v["offset"].as_u64().unwrap_or(0));
    let mut audio = Audio::new();
    let mut expected_at = 0_u64;
    let mut scratch = Vec::new();
    let mut checked = 0;
    for v in &tracks {
        let (Some(offset), Some(size), Some(file)) =
            (v["offset"].as_u64(), v["size"].as_u64(), v["file"].as_str())
        else {
            problems.push(format!("a stream line without offset, size or file: {v}"));
            continue;
        };
        if offset != expected_at {
            problems.push(format!(
                "stream tracks not contiguous: {file} starts at {offset}, the one before ends at {expected_at}"
            ));
        }
        // Bring the generator to `offset` (the tracks are in offset order).
        if offset > expected_at {
            scratch.resize((offset - expected_at) as usize, 0);
            audio.fill(&mut scratch);
        }
        expected_at = offset.max(expected_at) + size;
        scratch.resize(size as usize, 0);
        audio.fill(&mut scratch);
        match std::fs::read(out.join(file)) {
            Ok(bytes) => {
                if bytes != scratch {
                    problems.push(format!(
                        "stream track {file} differs from the audio sent at offset {offset}"
                    ));
                }
                checked += 1;
            }
            Err(_) if evicted.contains(file) => {}
            Err(e) => problems.push(format!("stream track {file}: {e}, and not evicted")),
        }
        if v["title"].is_null() && offset > 0 {
            problems.push(format!("stream track {file} has no title"));
        }
    }
    if tracks.len() < 3 {
        problems.push(format!(
            "the endless stream gave {} track files: expected several",
            tracks.len()
        ));
    }
    (problems, checked, expected_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tracks cut from the audio at uneven places, as the sniffer might cut them.
    fn saved(dir: &Path, cuts: &[u64]) -> Vec<serde_json::Value> {
        let mut audio = Audio::new();
        let mut lines = Vec::new();
        for (i, w) in cuts.windows(2).enumerate() {
            let mut bytes = vec![0; (w[1] - w[0]) as usize];
            audio.fill(&mut bytes);
            let file = format!("t{i}.mp3");
            std::fs::write(dir.join(&file), &bytes).unwrap();
            lines.push(serde_json::json!({
                "file": file, "offset": w[0], "size": bytes.len(), "title": title_at(w[0]),
            }));
        }
        lines
    }

    #[test]
    fn issue12_stream_tracks_checked_against_the_audio_sent() {
        let dir = tempfile::tempdir().unwrap();
        let lines = saved(dir.path(), &[0, 95_900, 192_417, 250_000]);
        let none = BTreeSet::new();
        let (problems, checked, audio) = check(dir.path(), &lines, &none);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((checked, audio), (3, 250_000));

        // One byte changed.
        let mut bytes = std::fs::read(dir.path().join("t1.mp3")).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(dir.path().join("t1.mp3"), &bytes).unwrap();
        assert_eq!(check(dir.path(), &lines, &none).0.len(), 1);
        // Evicted: not there, and said so.
        std::fs::remove_file(dir.path().join("t1.mp3")).unwrap();
        assert_eq!(check(dir.path(), &lines, &none).0.len(), 1);
        let evicted = BTreeSet::from(["t1.mp3".to_owned()]);
        assert!(check(dir.path(), &lines, &evicted).0.is_empty());
        // A byte lost between tracks.
        let mut gap = lines.clone();
        gap[2]["offset"] = serde_json::json!(192_418);
        assert!(!check(dir.path(), &gap, &evicted).0.is_empty());
    }
}
